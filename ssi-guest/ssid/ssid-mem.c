/*
 * Cluster memory (ssi-guest/README.md, "Cluster memory"): donors lend
 * legs of a tmpfs over NVMe/TCP (the kernel's nvmet), a borrower mirrors
 * and stripes them with md RAID10 and swaps on the array. ssid only sets
 * these parts up, keeps two copies of every page when a donor dies or
 * leaves, and answers `ssi mem`.
 *
 * One lock (mem_lock) for all of it: requests and the repair loop run one
 * at a time. It is never taken with S.lock held.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "ssid.h"

#define MEM_DIR SSID_STATE_DIR "/mem"
#define MEM_MD "/dev/md/ssi-mem"
#define MEM_PORT "4420"
#define MEM_NVMET "/sys/kernel/config/nvmet"
#define MEM_NQN "nqn.2014-08.org.vcluster:ssi"
#define MEM_DONORS_MAX 8
#define MEM_LEGS_MAX (2 * MEM_DONORS_MAX)
#define MEM_RESERVE_MIB 64   /* what a donor keeps for itself */
#define MEM_MIN_FREE_KB 16384 /* the borrower's reserve (README) */
#define MEM_TICK_MS 1000
/* A borrower out of the view may still be alive and paging (a member
 * that thrashes can miss heartbeats and be dropped): its legs stay this
 * long before they are freed. */
#define MEM_ORPHAN_US (120 * G_USEC_PER_SEC)
#define MEM_MOVE_TIMEOUT_US (900 * G_USEC_PER_SEC)

typedef struct {
    char *name;
    guint32 borrower;
    guint64 mib;
    gint64 orphan_us; /* when its borrower was first missing, 0: present */
} MemLent;

typedef struct {
    gboolean present;
    guint32 donor;
    char name[40];
    char nqn[160];
    char ctrl[16]; /* nvmeN */
    char blk[32];  /* nvmeXnY */
} MemLeg;

typedef struct {
    guint32 node;
    guint64 donated, lent;
} MemDonor;

static GMutex mem_lock;
static guint64 donate_mib;
static GHashTable *lent; /* name -> MemLent* */
static guint64 borrow_mib; /* the swap built, 0: none */
static guint nlegs;
static guint64 leg_mib;
static MemLeg legs[MEM_LEGS_MAX];
static guint leg_seq;
static char *md_dev; /* /dev/mdN, resolved from MEM_MD */
/* This member's `stat` row, refreshed under mem_lock, read without it:
 * two members repairing at once ask each other for it. */
static GMutex row_lock;
static char *row_cache;

/* --- small helpers --- */

static gboolean
sys_write(const char *path, const char *text, GError **error)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);

    if (fd < 0 || write(fd, text, strlen(text)) < 0) {
        int e = errno;

        if (fd >= 0) {
            close(fd);
        }
        g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e),
                    "cannot write '%s' to %s: %s", text, path, g_strerror(e));
        return FALSE;
    }
    close(fd);
    return TRUE;
}

static gboolean
write_at(const char *dir, const char *file, const char *text, GError **error)
{
    g_autofree char *p = g_build_filename(dir, file, NULL);

    return sys_write(p, text, error);
}

/* Run @argv (a program of the image); its first line of error in @error. */
static gboolean
run(const char *const *argv, GError **error)
{
    g_autofree char *out = NULL, *err = NULL;
    int status = 0;

    if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL,
                      NULL, &out, &err, &status, error)) {
        return FALSE;
    }
    if (!g_spawn_check_wait_status(status, NULL)) {
        g_auto(GStrv) lines = g_strsplit(err ? g_strstrip(err) : "", "\n", 2);

        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s failed: %s",
                    argv[0], lines[0] && *lines[0] ? lines[0] : "no message");
        return FALSE;
    }
    return TRUE;
}

static char *
cluster_hex(void)
{
    return g_strdup_printf("%016" G_GINT64_MODIFIER "x", S.cluster_id);
}

static char *
host_nqn(guint32 node)
{
    g_autofree char *c = cluster_hex();

    return g_strdup_printf(MEM_NQN ":%s:%u", c, node);
}

static char *
leg_nqn(guint32 donor, const char *name)
{
    g_autofree char *c = cluster_hex();

    return g_strdup_printf(MEM_NQN ":%s:%u:%s", c, donor, name);
}

static guint64
meminfo_kb(const char *key)
{
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;
    gsize klen = strlen(key);

    if (!g_file_get_contents("/proc/meminfo", &text, NULL, NULL)) {
        return 0;
    }
    lines = g_strsplit(text, "\n", -1);
    for (guint i = 0; lines[i]; i++) {
        if (strncmp(lines[i], key, klen) == 0 && lines[i][klen] == ':') {
            return g_ascii_strtoull(lines[i] + klen + 1, NULL, 10);
        }
    }
    return 0;
}

static guint32
self_id(void)
{
    return member_ident().node;
}

/* --- donor --- */

/* What is lent: MiB reserved, and (with @used_kib) the RAM the legs hold. */
static guint64
lent_totals(guint64 *used_kib)
{
    GHashTableIter it;
    gpointer k, v;
    guint64 mib = 0, kib = 0;

    if (!lent) {
        return 0;
    }
    g_hash_table_iter_init(&it, lent);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        mib += ((MemLent *)v)->mib;
        if (used_kib) {
            g_autofree char *p = g_build_filename(MEM_DIR, (char *)k, NULL);
            struct stat st;

            if (stat(p, &st) == 0) {
                kib += (guint64)st.st_blocks / 2;
            }
        }
    }
    if (used_kib) {
        *used_kib = kib;
    }
    return mib;
}

static guint64
lent_mib(void)
{
    return lent_totals(NULL);
}

static gboolean
configfs_ready(GError **error)
{
    if (g_file_test(MEM_NVMET, G_FILE_TEST_IS_DIR)) {
        return TRUE;
    }
    if (mount("configfs", "/sys/kernel/config", "configfs", 0, NULL) < 0 &&
        errno != EBUSY) {
        g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno),
                    "cannot mount configfs: %s", g_strerror(errno));
        return FALSE;
    }
    if (!g_file_test(MEM_NVMET, G_FILE_TEST_IS_DIR)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                    "no NVMe target in this kernel (nvmet-tcp not loaded)");
        return FALSE;
    }
    return TRUE;
}

/* The TCP port every leg of this donor is served on. */
static gboolean
port_ready(GError **error)
{
    const char *port = MEM_NVMET "/ports/1";

    if (!configfs_ready(error)) {
        return FALSE;
    }
    if (g_file_test(port, G_FILE_TEST_IS_DIR)) {
        return TRUE;
    }
    if (g_mkdir(port, 0755) < 0) {
        g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno),
                    "cannot make the NVMe port: %s", g_strerror(errno));
        return FALSE;
    }
    return write_at(port, "addr_trtype", "tcp", error) &&
           write_at(port, "addr_adrfam", "ipv4", error) &&
           write_at(port, "addr_traddr", S.address, error) &&
           write_at(port, "addr_trsvcid", MEM_PORT, error);
}

/* The tmpfs that holds the legs, @mib MiB. */
static gboolean
pool_size(guint64 mib, GError **error)
{
    g_autofree char *opts = g_strdup_printf("size=%" G_GUINT64_FORMAT "m,mode=0700", mib);
    gboolean mounted;
    struct stat a, b;

    g_mkdir_with_parents(MEM_DIR, 0700);
    mounted = stat(MEM_DIR, &a) == 0 && stat(SSID_STATE_DIR, &b) == 0 &&
              a.st_dev != b.st_dev;
    if (!mounted && mib == 0) {
        return TRUE;
    }
    if (mib == 0) {
        if (umount(MEM_DIR) < 0) {
            g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno),
                        "cannot unmount %s: %s", MEM_DIR, g_strerror(errno));
            return FALSE;
        }
        return TRUE;
    }
    if (mount("ssi-mem", MEM_DIR, "tmpfs", mounted ? MS_REMOUNT : 0, opts) < 0) {
        g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno),
                    "cannot size %s to %" G_GUINT64_FORMAT " MiB: %s", MEM_DIR,
                    mib, g_strerror(errno));
        return FALSE;
    }
    return TRUE;
}

static void
unlend(const char *name)
{
    MemLent *l = g_hash_table_lookup(lent, name);
    g_autofree char *nqn = NULL, *host = NULL, *sub = NULL, *p = NULL;

    if (!l) {
        return;
    }
    nqn = leg_nqn(self_id(), name);
    host = host_nqn(l->borrower);
    sub = g_build_filename(MEM_NVMET, "subsystems", nqn, NULL);
    p = g_build_filename(MEM_NVMET, "ports/1/subsystems", nqn, NULL);
    unlink(p);
    g_free(p);
    p = g_build_filename(sub, "namespaces/1/enable", NULL);
    sys_write(p, "0", NULL);
    g_free(p);
    p = g_build_filename(sub, "namespaces/1", NULL);
    rmdir(p);
    g_free(p);
    p = g_build_filename(sub, "allowed_hosts", host, NULL);
    unlink(p);
    rmdir(sub);
    g_free(p);
    p = g_build_filename(MEM_NVMET, "hosts", host, NULL);
    rmdir(p); /* EBUSY while another leg admits it */
    g_free(p);
    p = g_build_filename(MEM_DIR, name, NULL);
    unlink(p);
    g_message("mem: leg %s of node %u freed", name, l->borrower);
    g_hash_table_remove(lent, name);
}

static char *
lend(const char *name, guint64 mib, const char *host, guint32 borrower,
     GError **error)
{
    g_autofree char *nqn = leg_nqn(self_id(), name);
    g_autofree char *sub = g_build_filename(MEM_NVMET, "subsystems", nqn, NULL);
    g_autofree char *ns = g_build_filename(sub, "namespaces/1", NULL);
    g_autofree char *hostdir = g_build_filename(MEM_NVMET, "hosts", host, NULL);
    g_autofree char *allowed = g_build_filename(sub, "allowed_hosts", host, NULL);
    g_autofree char *link = g_build_filename(MEM_NVMET, "ports/1/subsystems", nqn, NULL);
    g_autofree char *file = g_build_filename(MEM_DIR, name, NULL);
    MemLent *l;
    int fd;

    if (!g_regex_match_simple("^[a-z0-9-]{1,32}$", name, 0, 0) || mib == 0 ||
        !g_str_has_prefix(host, MEM_NQN ":") || strlen(host) > 200) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "bad leg request");
        return NULL;
    }
    if (g_hash_table_contains(lent, name)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_EXISTS, "leg %s is already lent",
                    name);
        return NULL;
    }
    if (lent_mib() + mib > donate_mib) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                    "node %u has %" G_GUINT64_FORMAT " MiB of donation free, "
                    "not %" G_GUINT64_FORMAT,
                    self_id(), donate_mib - lent_mib(), mib);
        return NULL;
    }
    if (!port_ready(error)) {
        return NULL;
    }
    fd = open(file, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || ftruncate(fd, (off_t)(mib << 20)) < 0) {
        g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno),
                    "cannot make leg %s: %s", file, g_strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(file);
        }
        return NULL;
    }
    close(fd);
    l = g_new0(MemLent, 1);
    l->name = g_strdup(name);
    l->borrower = borrower;
    l->mib = mib;
    g_hash_table_insert(lent, l->name, l);
    if ((g_mkdir(hostdir, 0755) < 0 && errno != EEXIST) || g_mkdir(sub, 0755) < 0 ||
        !write_at(sub, "attr_allow_any_host", "0", error) ||
        symlink(hostdir, allowed) < 0 || g_mkdir(ns, 0755) < 0 ||
        !write_at(ns, "device_path", file, error) ||
        /* tmpfs has no O_DIRECT: the target must use the page cache,
         * which for tmpfs is the file itself. */
        !write_at(ns, "buffered_io", "1", error) ||
        !write_at(ns, "enable", "1", error) || symlink(sub, link) < 0) {
        if (error && !*error) {
            g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno),
                        "cannot export leg %s: %s", name, g_strerror(errno));
        }
        unlend(name);
        return NULL;
    }
    g_message("mem: leg %s of %" G_GUINT64_FORMAT " MiB lent to node %u", name,
              mib, borrower);
    return g_steal_pointer(&nqn);
}

static void
mem_lent_free(gpointer p)
{
    MemLent *l = p;

    g_free(l->name);
    g_free(l);
}

/* Ask each borrower of a leg here to move it away (S.lock not held). */
static gboolean vacate_all(GString *report, GError **error);

static gboolean
set_donate(guint64 mib, GString *report, GError **error)
{
    guint64 avail_mib = meminfo_kb("MemAvailable") / 1024;
    guint64 have = donate_mib;

    if (mib > have && (mib - have) + MEM_RESERVE_MIB > avail_mib) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                    "node %u can donate at most %" G_GUINT64_FORMAT
                    " MiB more (%" G_GUINT64_FORMAT " MiB available, %d kept)",
                    self_id(),
                    avail_mib > MEM_RESERVE_MIB ? avail_mib - MEM_RESERVE_MIB : 0,
                    avail_mib, MEM_RESERVE_MIB);
        return FALSE;
    }
    if (mib < lent_mib()) {
        if (!vacate_all(report, error)) {
            return FALSE;
        }
    }
    if (!pool_size(mib, error)) {
        return FALSE;
    }
    donate_mib = mib;
    g_message("mem: donating %" G_GUINT64_FORMAT " MiB", mib);
    return TRUE;
}

/* --- borrower --- */

/* Another member's `stat` row. */
static char *
stat_of(guint32 node, GError **error)
{
    g_autoptr(SsiMsgOut) q = ssi_out_new(SSI_MEM);
    g_autoptr(SsiMsg) a = NULL;

    ssi_out_str(q, SSI_F_NAME, "stat");
    a = peer_call(node, q, 5000, error);
    return a ? ssi_msg_str(a, SSI_F_TEXT, 4096) : NULL;
}

/* Up members other than this one, with their donation, most free first. */
static GArray *
donors(void)
{
    GArray *out = g_array_new(FALSE, TRUE, sizeof(MemDonor));
    g_autoptr(GArray) ids = g_array_new(FALSE, FALSE, sizeof(guint32));
    guint32 self = self_id();

    g_mutex_lock(&S.lock);
    for (guint i = 0; i < S.members->len; i++) {
        SsidMember *m = g_ptr_array_index(S.members, i);

        if (m->id != self && !m->leaving) {
            g_array_append_val(ids, m->id);
        }
    }
    g_mutex_unlock(&S.lock);
    for (guint i = 0; i < ids->len; i++) {
        MemDonor d = {.node = g_array_index(ids, guint32, i)};
        g_autofree char *row = stat_of(d.node, NULL);

        if (row && sscanf(row, "%*u %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT,
                          &d.donated, &d.lent) == 2 &&
            d.donated > d.lent) {
            g_array_append_val(out, d);
        }
    }
    for (guint i = 1; i < out->len; i++) { /* insertion sort, few members */
        for (guint k = i; k > 0; k--) {
            MemDonor *a = &g_array_index(out, MemDonor, k - 1);
            MemDonor *b = &g_array_index(out, MemDonor, k);

            if (a->donated - a->lent >= b->donated - b->lent) {
                break;
            }
            MemDonor t = *a;
            *a = *b;
            *b = t;
        }
    }
    return out;
}

/* The controller of a connected leg: its instance and namespace. */
static gboolean
find_blk(MemLeg *leg, GError **error)
{
    g_autofree char *dir = g_build_filename("/sys/class/nvme", leg->ctrl, NULL);

    for (int i = 0; i < 100; i++) {
        g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
        const char *e;
        unsigned x, c, n;

        while (d && (e = g_dir_read_name(d))) {
            g_autofree char *dev = NULL;

            if (sscanf(e, "nvme%uc%un%u", &x, &c, &n) == 3) {
                g_snprintf(leg->blk, sizeof(leg->blk), "nvme%un%u", x, n);
            } else if (sscanf(e, "nvme%un%u", &x, &n) == 2) {
                g_snprintf(leg->blk, sizeof(leg->blk), "%s", e);
            } else {
                continue;
            }
            dev = g_build_filename("/dev", leg->blk, NULL);
            if (g_file_test(dev, G_FILE_TEST_EXISTS)) {
                return TRUE;
            }
        }
        g_usleep(100 * 1000);
    }
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                "leg %s: no namespace on %s after 10 s", leg->name, leg->ctrl);
    return FALSE;
}

static gboolean
nvme_connect(MemLeg *leg, GError **error)
{
    g_autofree char *addr = member_addr(leg->donor);
    g_autofree char *host = host_nqn(self_id());
    g_autofree char *opts = NULL;
    char back[256] = "";
    int fd, inst = -1;
    ssize_t n;

    if (!addr) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                    "node %u is not a member", leg->donor);
        return FALSE;
    }
    /* The kernel must fail I/O to a dead donor by itself, within
     * seconds: the borrower's allocations wait for that I/O, so ssid may
     * not run until it fails (measured: a borrower froze for good with
     * the defaults). A 5 s keep-alive finds a silent donor; the I/O in
     * flight then fails at once (fast_io_fail_tmo=0) and md goes on with
     * the other copy. A donor only slowed down loses its controller for
     * nothing: md fails the leg and ssid replaces it. */
    opts = g_strdup_printf("transport=tcp,traddr=%s,trsvcid=" MEM_PORT
                           ",nqn=%s,hostnqn=%s,nr_io_queues=1,"
                           "keep_alive_tmo=5,fast_io_fail_tmo=0,"
                           "ctrl_loss_tmo=30,reconnect_delay=2",
                           addr, leg->nqn, host);
    fd = open("/dev/nvme-fabrics", O_RDWR | O_CLOEXEC);
    if (fd < 0 || write(fd, opts, strlen(opts)) < 0 ||
        (n = read(fd, back, sizeof(back) - 1)) <= 0 ||
        sscanf(back, "instance=%d", &inst) != 1 || inst < 0) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                    "cannot connect to leg %s on node %u: %s", leg->name,
                    leg->donor, fd < 0 ? "no /dev/nvme-fabrics (nvme-tcp)"
                                       : g_strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return FALSE;
    }
    close(fd);
    g_snprintf(leg->ctrl, sizeof(leg->ctrl), "nvme%d", inst);
    return find_blk(leg, error);
}

/* Delete the leg's controller (I/O in flight fails; md marks the leg
 * faulty). Instance numbers are reused: check the NQN first. */
static void
nvme_disconnect(MemLeg *leg)
{
    g_autofree char *dir = g_build_filename("/sys/class/nvme", leg->ctrl, NULL);
    g_autofree char *nqnf = g_build_filename(dir, "subsysnqn", NULL);
    g_autofree char *nqn = NULL;

    if (!leg->ctrl[0] || !g_file_get_contents(nqnf, &nqn, NULL, NULL) ||
        strcmp(g_strstrip(nqn), leg->nqn) != 0) {
        return;
    }
    write_at(dir, "delete_controller", "1", NULL);
}

static void
free_on_donor(guint32 donor, const char *name)
{
    g_autoptr(SsiMsgOut) q = ssi_out_new(SSI_MEM);
    g_autoptr(SsiMsg) a = NULL;
    g_autoptr(GError) err = NULL;

    ssi_out_str(q, SSI_F_NAME, "free");
    ssi_out_str(q, SSI_F_PATH, name);
    a = peer_call(donor, q, 10000, &err);
    if (!a && member_is_up(donor)) {
        g_warning("mem: cannot free leg %s on node %u: %s", name, donor,
                  err->message);
    }
}

/* A new leg of leg_mib on @donor, connected. */
static gboolean
leg_new(MemLeg *leg, guint32 donor, GError **error)
{
    g_autoptr(SsiMsgOut) q = ssi_out_new(SSI_MEM);
    g_autoptr(SsiMsg) a = NULL;
    g_autofree char *host = host_nqn(self_id());
    g_autofree char *nqn = NULL;

    memset(leg, 0, sizeof(*leg));
    leg->donor = donor;
    g_snprintf(leg->name, sizeof(leg->name), "n%u-%u-%u", self_id(),
               (unsigned)(g_get_real_time() / G_USEC_PER_SEC % 1000000), ++leg_seq);
    ssi_out_str(q, SSI_F_NAME, "lend");
    ssi_out_str(q, SSI_F_PATH, leg->name);
    ssi_out_u64(q, SSI_F_OFFSET, leg_mib);
    ssi_out_str(q, SSI_F_TEXT, host);
    a = peer_call(donor, q, 10000, error);
    nqn = a ? ssi_msg_str(a, SSI_F_TEXT, 200) : NULL;
    if (!nqn) {
        if (a && error) {
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                        "node %u lent no NQN", donor);
        }
        return FALSE;
    }
    g_strlcpy(leg->nqn, nqn, sizeof(leg->nqn));
    if (!nvme_connect(leg, error)) {
        free_on_donor(donor, leg->name);
        return FALSE;
    }
    leg->present = TRUE;
    return TRUE;
}

static void
leg_drop(MemLeg *leg)
{
    nvme_disconnect(leg);
    free_on_donor(leg->donor, leg->name);
    leg->present = FALSE;
}

static char *
md_attr(const char *attr)
{
    g_autofree char *p = NULL;
    char *v = NULL;

    if (!md_dev) {
        return NULL;
    }
    p = g_strdup_printf("/sys/block/%s/md/%s", md_dev + strlen("/dev/"), attr);
    if (!g_file_get_contents(p, &v, NULL, NULL)) {
        return NULL;
    }
    return g_strstrip(v);
}

static gboolean
leg_faulty(const MemLeg *leg)
{
    g_autofree char *a = g_strdup_printf("dev-%s/state", leg->blk);
    g_autofree char *st = md_attr(a);

    return !st || strstr(st, "faulty") != NULL;
}

/* A donor for a new leg of slot @slot: up, not this member, not the
 * donor of the slot's mirror nor @avoid, with room; most room first. */
static guint32
pick_donor(guint slot, guint32 avoid)
{
    g_autoptr(GArray) ds = donors();
    guint32 partner = legs[slot ^ 1u].present ? legs[slot ^ 1u].donor : 0;

    for (guint i = 0; i < ds->len; i++) {
        MemDonor *d = &g_array_index(ds, MemDonor, i);

        if (d->node != partner && d->node != avoid &&
            d->donated - d->lent >= leg_mib) {
            return d->node;
        }
    }
    return 0;
}

static void
swap_reserve(void)
{
    g_autofree char *v = NULL;

    if (g_file_get_contents("/proc/sys/vm/min_free_kbytes", &v, NULL, NULL) &&
        g_ascii_strtoull(v, NULL, 10) < MEM_MIN_FREE_KB) {
        g_autofree char *t = g_strdup_printf("%d", MEM_MIN_FREE_KB);

        sys_write("/proc/sys/vm/min_free_kbytes", t, NULL);
    }
    /* zswap in front: compressible pages never leave the member. */
    sys_write("/sys/module/zswap/parameters/zpool", "zsmalloc", NULL);
    sys_write("/sys/module/zswap/parameters/enabled", "1", NULL);
}

/* I/O to a leg times out in 10 s, not 30 (nvme_core's io_timeout,
 * read when a controller is made): a donor that stopped answering
 * but whose connection stays up. */
static void
nvme_tune(void)
{
    sys_write("/sys/module/nvme_core/parameters/io_timeout", "10", NULL);
}

static gboolean
build(guint64 mib, GError **error)
{
    g_autoptr(GArray) ds = donors();
    g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
    g_autofree char *mkswap_argv0 = NULL;
    guint p = MIN(ds->len, MEM_DONORS_MAX);
    gboolean ok = FALSE;

    for (; p >= 2; p--) {
        guint64 l = (mib + p - 1) / p;
        guint k;

        for (k = 0; k < p; k++) {
            MemDonor *d = &g_array_index(ds, MemDonor, k);

            if (d->donated - d->lent < 2 * l) {
                break;
            }
        }
        if (k == p) {
            leg_mib = l;
            break;
        }
    }
    if (p < 2) {
        GString *have = g_string_new(NULL);

        for (guint i = 0; i < ds->len; i++) {
            MemDonor *d = &g_array_index(ds, MemDonor, i);

            g_string_append_printf(have, "%snode %u %" G_GUINT64_FORMAT,
                                   i ? ", " : "", d->node, d->donated - d->lent);
        }
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                    "borrowing %" G_GUINT64_FORMAT " MiB needs %" G_GUINT64_FORMAT
                    " MiB of donations (two copies) spread evenly over 2 to %d "
                    "other members; free donations (MiB): %s",
                    mib, 2 * mib, MEM_DONORS_MAX, have->len ? have->str : "none");
        g_string_free(have, TRUE);
        return FALSE;
    }
    nlegs = 2 * p;
    nvme_tune();
    for (guint i = 0; i < nlegs; i++) {
        guint32 donor = g_array_index(ds, MemDonor, (i / 2 + i % 2) % p).node;

        if (!leg_new(&legs[i], donor, error)) {
            goto out;
        }
    }
    g_ptr_array_add(argv, g_strdup("mdadm"));
    g_ptr_array_add(argv, g_strdup("--create"));
    g_ptr_array_add(argv, g_strdup(MEM_MD));
    g_ptr_array_add(argv, g_strdup("--run"));
    g_ptr_array_add(argv, g_strdup("--level=10"));
    g_ptr_array_add(argv, g_strdup("--layout=n2"));
    g_ptr_array_add(argv, g_strdup("--chunk=64"));
    g_ptr_array_add(argv, g_strdup("--metadata=1.2"));
    /* The legs are new sparse files: all zeros, already alike. */
    g_ptr_array_add(argv, g_strdup("--assume-clean"));
    g_ptr_array_add(argv, g_strdup_printf("--raid-devices=%u", nlegs));
    for (guint i = 0; i < nlegs; i++) {
        g_ptr_array_add(argv, g_strdup_printf("/dev/%s", legs[i].blk));
    }
    g_ptr_array_add(argv, NULL);
    if (!run((const char *const *)argv->pdata, error)) {
        goto out;
    }
    g_free(md_dev);
    md_dev = g_file_read_link(MEM_MD, NULL);
    if (md_dev && !g_path_is_absolute(md_dev)) {
        char *abs = g_build_filename("/dev/md", md_dev, NULL);
        char *canon = g_canonicalize_filename(abs, NULL);

        g_free(abs);
        g_free(md_dev);
        md_dev = canon;
    }
    {
        const char *mk[] = {"mkswap", MEM_MD, NULL};

        if (!md_dev || !run(mk, error)) {
            const char *stop[] = {"mdadm", "--stop", MEM_MD, NULL};

            run(stop, NULL);
            goto out;
        }
    }
    swap_reserve();
    if (swapon(md_dev, SWAP_FLAG_DISCARD | SWAP_FLAG_PREFER | 10) < 0) {
        const char *stop[] = {"mdadm", "--stop", MEM_MD, NULL};

        g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno),
                    "swapon %s: %s", md_dev, g_strerror(errno));
        run(stop, NULL);
        goto out;
    }
    borrow_mib = leg_mib * p;
    ok = TRUE;
    g_message("mem: borrowing %" G_GUINT64_FORMAT " MiB: %u legs of %" G_GUINT64_FORMAT
              " MiB on %u donors, swap on %s",
              borrow_mib, nlegs, leg_mib, p, md_dev);
out:
    if (!ok) {
        for (guint i = 0; i < nlegs; i++) {
            if (legs[i].present) {
                leg_drop(&legs[i]);
            }
        }
        nlegs = 0;
    }
    return ok;
}

static gboolean
teardown(GError **error)
{
    const char *stop[] = {"mdadm", "--stop", MEM_MD, NULL};

    if (!borrow_mib) {
        return TRUE;
    }
    if (swapoff(md_dev) < 0 && errno != EINVAL) {
        g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno),
                    "cannot give the borrowed memory back (swapoff %s: %s); "
                    "end some processes first",
                    md_dev, g_strerror(errno));
        return FALSE;
    }
    if (!run(stop, error)) {
        return FALSE;
    }
    for (guint i = 0; i < nlegs; i++) {
        if (legs[i].present) {
            leg_drop(&legs[i]);
        }
    }
    g_message("mem: %" G_GUINT64_FORMAT " MiB borrowed given back", borrow_mib);
    borrow_mib = 0;
    nlegs = 0;
    return TRUE;
}

static gboolean
md_manage(const char *op, const char *dev, const char *with, GError **error)
{
    g_autofree char *d = g_strdup_printf("/dev/%s", dev);
    g_autofree char *w = with ? g_strdup_printf("/dev/%s", with) : NULL;
    const char *argv[] = {"mdadm", MEM_MD, op, d, w ? "--with" : NULL, w, NULL};

    return run(argv, error);
}

/* Replace the missing legs; a leg whose donor went or that md failed is
 * dropped first. */
static void
repair(void)
{
    gboolean dropped = FALSE, member;

    /* Out of the cluster, no donor is "up": the legs still work. */
    g_mutex_lock(&S.lock);
    member = S.state == SSID_MEMBER;
    g_mutex_unlock(&S.lock);
    if (!member) {
        return;
    }

    for (guint i = 0; i < nlegs; i++) {
        MemLeg *leg = &legs[i];

        if (!leg->present || (member_is_up(leg->donor) && !leg_faulty(leg))) {
            continue;
        }
        g_message("mem: leg %u (%s) on node %u lost (%s): dropping it", i,
                  leg->name, leg->donor,
                  member_is_up(leg->donor) ? "md failed it" : "node gone");
        nvme_disconnect(leg);
        dropped = TRUE;
        leg->present = FALSE;
        free_on_donor(leg->donor, leg->name);
    }
    if (dropped) {
        const char *rm[] = {"mdadm", MEM_MD, "--remove", "failed",
                            "--remove", "detached", NULL};

        for (int t = 0; t < 20; t++) { /* until md has let go of them */
            g_autoptr(GError) err = NULL;

            if (run(rm, &err)) {
                break;
            }
            g_usleep(250 * 1000);
        }
    }
    for (guint i = 0; i < nlegs; i++) {
        MemLeg fresh;
        g_autoptr(GError) err = NULL;
        guint32 donor;

        if (legs[i].present) {
            continue;
        }
        donor = pick_donor(i, 0);
        if (!donor) {
            continue; /* tried again next tick */
        }
        if (!leg_new(&fresh, donor, &err) ||
            !md_manage("--add", fresh.blk, NULL, &err)) {
            g_warning("mem: leg %u: cannot re-replicate on node %u: %s", i,
                      donor, err->message);
            if (fresh.present) {
                leg_drop(&fresh);
            }
            continue;
        }
        legs[i] = fresh;
        g_message("mem: leg %u re-replicated on node %u (%s)", i, donor,
                  fresh.blk);
    }
}

/* Move every leg on @donor elsewhere, md copying onto the new one
 * before the old one goes. */
static gboolean
vacate(guint32 donor, GString *report, GError **error)
{
    guint moved = 0;

    for (guint i = 0; i < nlegs; i++) {
        MemLeg *old = &legs[i], fresh;
        guint32 to;
        gint64 t0 = g_get_monotonic_time();
        g_autofree char *a = NULL;

        if (!old->present || old->donor != donor) {
            continue;
        }
        to = pick_donor(i, donor);
        if (!to) {
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                        "node %u: no other donor with %" G_GUINT64_FORMAT
                        " MiB free for leg %u",
                        self_id(), leg_mib, i);
            return FALSE;
        }
        if (!leg_new(&fresh, to, error)) {
            return FALSE;
        }
        if (!md_manage("--add", fresh.blk, NULL, error) ||
            !md_manage("--replace", old->blk, fresh.blk, error)) {
            leg_drop(&fresh);
            return FALSE;
        }
        a = g_strdup_printf("dev-%s/state", old->blk);
        for (;;) {
            g_autofree char *st = md_attr(a);

            if (!st || strstr(st, "faulty")) {
                break;
            }
            if (g_get_monotonic_time() - t0 > MEM_MOVE_TIMEOUT_US) {
                g_set_error(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                            "leg %u: md did not finish copying to node %u", i, to);
                return FALSE;
            }
            g_usleep(500 * 1000);
        }
        md_manage("--remove", old->blk, NULL, NULL);
        leg_drop(old);
        legs[i] = fresh;
        moved++;
        g_string_append_printf(report,
                               "node %u: leg %u moved from node %u to node %u "
                               "in %.1f s\n",
                               self_id(), i, donor, to,
                               (g_get_monotonic_time() - t0) / 1e6);
    }
    g_message("mem: %u leg(s) moved off node %u", moved, donor);
    return TRUE;
}

static gboolean
vacate_all(GString *report, GError **error)
{
    g_autoptr(GArray) borrowers = g_array_new(FALSE, FALSE, sizeof(guint32));
    GHashTableIter it;
    gpointer v;

    g_hash_table_iter_init(&it, lent);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        guint32 b = ((MemLent *)v)->borrower;
        gboolean seen = FALSE;

        for (guint i = 0; i < borrowers->len; i++) {
            seen |= g_array_index(borrowers, guint32, i) == b;
        }
        if (!seen) {
            g_array_append_val(borrowers, b);
        }
    }
    for (guint i = 0; i < borrowers->len; i++) {
        guint32 b = g_array_index(borrowers, guint32, i);
        g_autoptr(SsiMsgOut) q = ssi_out_new(SSI_MEM);
        g_autoptr(SsiMsg) a = NULL;
        g_autofree char *t = NULL;

        if (!member_is_up(b)) {
            continue; /* its legs are orphans, freed by the loop */
        }
        ssi_out_str(q, SSI_F_NAME, "vacate");
        ssi_out_u32(q, SSI_F_NODE, self_id());
        /* The borrower asks this member to free: not under mem_lock. */
        g_mutex_unlock(&mem_lock);
        a = peer_call(b, q, (int)(MEM_MOVE_TIMEOUT_US / 1000) + 60000, error);
        g_mutex_lock(&mem_lock);
        if (!a) {
            g_prefix_error(error, "node %u could not move its legs: ", b);
            return FALSE;
        }
        t = ssi_msg_str(a, SSI_F_TEXT, 65536);
        g_string_append(report, t ? t : "");
    }
    return TRUE;
}

/* --- state, requests, the loop --- */

static char *
array_state(void)
{
    g_autofree char *deg = NULL, *action = NULL, *done = NULL;
    guint n = 0, bad;

    if (!borrow_mib) {
        return g_strdup("-");
    }
    for (guint i = 0; i < nlegs; i++) {
        n += legs[i].present;
    }
    deg = md_attr("degraded");
    action = md_attr("sync_action");
    done = md_attr("sync_completed");
    bad = deg ? (guint)g_ascii_strtoull(deg, NULL, 10) : nlegs - n;
    bad = MIN(bad, nlegs);
    if (action && (strcmp(action, "recover") == 0 ||
                   strcmp(action, "resync") == 0)) {
        guint64 a = 0, b = 0;

        if (done && sscanf(done, "%" G_GUINT64_FORMAT " / %" G_GUINT64_FORMAT,
                           &a, &b) == 2 && b) {
            return g_strdup_printf("rebuilding %u/%u %u%%", nlegs - bad, nlegs,
                                   (guint)(a * 100 / b));
        }
        return g_strdup_printf("rebuilding %u/%u", nlegs - bad, nlegs);
    }
    if (bad || n < nlegs) {
        return g_strdup_printf("degraded %u/%u", MIN(nlegs - bad, n), nlegs);
    }
    return g_strdup_printf("ok %u/%u", nlegs, nlegs);
}

static guint64
swap_used_kib(void)
{
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;

    if (!md_dev || !g_file_get_contents("/proc/swaps", &text, NULL, NULL)) {
        return 0;
    }
    lines = g_strsplit(text, "\n", -1);
    for (guint i = 1; lines[i]; i++) {
        char dev[64];
        guint64 size, used;

        if (sscanf(lines[i], "%63s %*s %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT,
                   dev, &size, &used) == 3 &&
            strcmp(dev, md_dev) == 0) {
            return used;
        }
    }
    return 0;
}

/* This member's row: NODE DONATED LENT USED BORROWED SWAP_USED STATE. */
static char *
stat_row(void)
{
    g_autofree char *st = array_state();
    guint64 used = 0, lent_now = lent_totals(&used);

    return g_strdup_printf("%u %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT
                           " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT
                           " %" G_GUINT64_FORMAT " %s",
                           self_id(), donate_mib, lent_now,
                           (used + 1023) / 1024, borrow_mib,
                           (swap_used_kib() + 1023) / 1024, st);
}

/* mem_lock held. */
static void
refresh_row(void)
{
    char *r = stat_row();

    g_mutex_lock(&row_lock);
    g_free(row_cache);
    row_cache = r;
    g_mutex_unlock(&row_lock);
}

static char *
cached_row(void)
{
    char *r;

    g_mutex_lock(&row_lock);
    r = g_strdup(row_cache ? row_cache : "0 0 0 0 0 0 -");
    g_mutex_unlock(&row_lock);
    return r;
}

char *
mem_serve(SsiMsg *m, GError **error)
{
    g_autofree char *verb = ssi_msg_str(m, SSI_F_NAME, 16);
    g_autofree char *name = ssi_msg_str(m, SSI_F_PATH, 64);
    g_autofree char *host = ssi_msg_str(m, SSI_F_TEXT, 256);
    guint64 mib = 0;
    guint32 node = 0;
    char *out = NULL;

    if (verb && strcmp(verb, "stat") == 0) {
        return cached_row();
    }
    g_mutex_lock(&mem_lock);
    if (!verb) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "MEM without a NAME");
    } else if (strcmp(verb, "lend") == 0 && name && host &&
               ssi_msg_u64(m, SSI_F_OFFSET, &mib) && m->hdr.node) {
        out = lend(name, mib, host, m->hdr.node, error);
    } else if (strcmp(verb, "free") == 0 && name) {
        unlend(name);
        out = g_strdup("");
    } else if (strcmp(verb, "vacate") == 0 &&
               ssi_msg_u32(m, SSI_F_NODE, &node)) {
        GString *r = g_string_new(NULL);

        if (vacate(node, r, error)) {
            out = g_string_free(r, FALSE);
        } else {
            g_string_free(r, TRUE);
        }
    } else {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "bad MEM request '%s'", verb);
    }
    refresh_row();
    g_mutex_unlock(&mem_lock);
    return out;
}

static char *
listing(gboolean json, GError **error)
{
    g_autoptr(GArray) ids = g_array_new(FALSE, FALSE, sizeof(guint32));
    GString *out = g_string_new(json ? "{\"members\": [" : "");

    g_mutex_lock(&S.lock);
    for (guint i = 0; i < S.members->len; i++) {
        g_array_append_val(ids, ((SsidMember *)g_ptr_array_index(S.members, i))->id);
    }
    g_mutex_unlock(&S.lock);
    if (!json) {
        g_string_append(out, "NODE DONATED  LENT  USED BORROWED SWAP_USED STATE\n");
    }
    for (guint i = 0; i < ids->len; i++) {
        guint32 id = g_array_index(ids, guint32, i);
        g_autoptr(GError) err = NULL;
        g_autofree char *row = NULL;
        guint64 v[5] = {0};
        int state_at = 0;
        guint n = 0;

        if (id == self_id()) {
            row = cached_row();
        } else {
            row = stat_of(id, &err);
        }
        if (!row || sscanf(row,
                           "%u %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT
                           " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT
                           " %" G_GUINT64_FORMAT " %n",
                           &n, &v[0], &v[1], &v[2], &v[3], &v[4], &state_at) < 6 ||
            state_at == 0) {
            if (!json) {
                g_string_append_printf(out, "%u (no answer: %s)\n", id,
                                       err ? err->message : "bad row");
            }
            continue;
        }
        if (json) {
            g_autofree char *st = g_strescape(row + state_at, NULL);

            g_string_append_printf(
                out,
                "%s{\"node\": %u, \"donated_mib\": %" G_GUINT64_FORMAT
                ", \"lent_mib\": %" G_GUINT64_FORMAT
                ", \"used_mib\": %" G_GUINT64_FORMAT
                ", \"borrowed_mib\": %" G_GUINT64_FORMAT
                ", \"swap_used_mib\": %" G_GUINT64_FORMAT ", \"state\": \"%s\"}",
                out->str[out->len - 1] == '[' ? "" : ", ", n, v[0], v[1], v[2],
                v[3], v[4], st);
        } else {
            g_string_append_printf(out,
                                   "%-4u %7" G_GUINT64_FORMAT " %5" G_GUINT64_FORMAT
                                   " %5" G_GUINT64_FORMAT " %8" G_GUINT64_FORMAT
                                   " %9" G_GUINT64_FORMAT " %s\n",
                                   n, v[0], v[1], v[2], v[3], v[4], row + state_at);
        }
    }
    if (json) {
        g_string_append(out, "]}\n");
    }
    (void)error;
    return g_string_free(out, FALSE);
}

char *
mem_control(const char *verb, const char *arg, gboolean json, GError **error)
{
    g_autoptr(GString) report = g_string_new(NULL);
    guint64 mib = 0;
    gboolean ok = TRUE;

    if (strcmp(verb, "ls") == 0) {
        return listing(json, error);
    }
    if (!arg || !g_ascii_string_to_unsigned(arg, 10, 0, 1u << 20, &mib, NULL)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "'%s' is not a number of MiB", arg ? arg : "");
        return NULL;
    }
    if (S.state != SSID_MEMBER) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED,
                    "this member is not in a cluster yet");
        return NULL;
    }
    g_mutex_lock(&mem_lock);
    if (strcmp(verb, "donate") == 0) {
        ok = set_donate(mib, report, error);
    } else if (strcmp(verb, "borrow") == 0) {
        if (mib == borrow_mib) {
            ok = TRUE;
        } else if (borrow_mib && mib) {
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_EXISTS,
                        "already borrowing %" G_GUINT64_FORMAT
                        " MiB; give it back first (ssi mem borrow 0)",
                        borrow_mib);
            ok = FALSE;
        } else {
            ok = mib ? build(mib, error) : teardown(error);
        }
    } else {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "unknown mem command '%s'", verb);
        ok = FALSE;
    }
    refresh_row();
    g_mutex_unlock(&mem_lock);
    if (!ok) {
        return NULL;
    }
    {
        g_autofree char *l = listing(json, error);

        g_string_append(report, l ? l : "");
    }
    return g_strdup(report->str);
}

gboolean
mem_paging(void)
{
    return __atomic_load_n(&borrow_mib, __ATOMIC_RELAXED) > 0;
}

/* Before this member leaves: give back what it borrowed, move what it
 * lent. */
gboolean
mem_leave(GString *report, GError **error)
{
    gboolean ok;

    g_mutex_lock(&mem_lock);
    ok = teardown(error) && (lent_mib() == 0 || vacate_all(report, error));
    if (ok) {
        donate_mib = 0;
    }
    refresh_row();
    g_mutex_unlock(&mem_lock);
    return ok;
}

static gpointer
mem_thread(gpointer data)
{
    (void)data;
    for (;;) {
        gint64 now = g_get_monotonic_time();
        GHashTableIter it;
        gpointer v;
        g_autoptr(GPtrArray) orphans = g_ptr_array_new_with_free_func(g_free);

        g_usleep(MEM_TICK_MS * 1000);
        if (S.state != SSID_MEMBER) {
            continue;
        }
        g_mutex_lock(&mem_lock);
        if (borrow_mib) {
            repair();
        }
        g_hash_table_iter_init(&it, lent);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
            MemLent *l = v;

            if (member_is_up(l->borrower)) {
                l->orphan_us = 0;
            } else if (!l->orphan_us) {
                l->orphan_us = now;
            } else if (now - l->orphan_us > MEM_ORPHAN_US) {
                g_ptr_array_add(orphans, g_strdup(l->name));
            }
        }
        for (guint i = 0; i < orphans->len; i++) {
            unlend(g_ptr_array_index(orphans, i));
        }
        refresh_row();
        g_mutex_unlock(&mem_lock);
    }
    return NULL;
}

/* At start: the configuration's donation and borrowing (mem_donate=,
 * mem_borrow=), applied once this member is in a cluster. */
static guint64 conf_donate, conf_borrow;

static gpointer
mem_conf_thread(gpointer data)
{
    gboolean donated = conf_donate == 0;

    (void)data;
    for (;;) {
        g_autoptr(GError) err = NULL;
        g_autofree char *t = NULL;

        g_usleep(2 * G_USEC_PER_SEC);
        if (S.state != SSID_MEMBER) {
            continue;
        }
        if (!donated) {
            g_autofree char *a = g_strdup_printf("%" G_GUINT64_FORMAT, conf_donate);

            t = mem_control("donate", a, FALSE, &err);
            donated = t != NULL;
            if (!t) {
                g_warning("mem: mem_donate=%" G_GUINT64_FORMAT ": %s",
                          conf_donate, err->message);
                return NULL;
            }
            g_clear_pointer(&t, g_free);
        }
        if (conf_borrow) {
            g_autofree char *a = g_strdup_printf("%" G_GUINT64_FORMAT, conf_borrow);

            t = mem_control("borrow", a, FALSE, &err);
            if (!t) {
                /* Donors may not be there yet: try again. */
                g_debug("mem: mem_borrow=%" G_GUINT64_FORMAT ": %s", conf_borrow,
                        err->message);
                continue;
            }
        }
        return NULL;
    }
}

gboolean
mem_conf(const char *key, const char *value, GError **error)
{
    guint64 v;

    if (!g_ascii_string_to_unsigned(value, 10, 0, 1u << 20, &v, NULL)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                    "%s '%s' is not a number of MiB", key, value);
        return FALSE;
    }
    if (strcmp(key, "mem_donate") == 0) {
        conf_donate = v;
    } else {
        conf_borrow = v;
    }
    return TRUE;
}

void
mem_start(void)
{
    lent = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, mem_lent_free);
    g_thread_unref(g_thread_new("mem", mem_thread, NULL));
    if (conf_donate || conf_borrow) {
        g_thread_unref(g_thread_new("mem-conf", mem_conf_thread, NULL));
    }
}
