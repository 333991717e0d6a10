/*
 * Membership: heartbeats, views, joins, failure detection, and the
 * view written into ssi.ko (ssid.h).
 *
 * The coordinator is the lowest node id of the view that this member
 * still hears from. Only the coordinator makes views: it numbers them
 * (epoch), puts the whole view in its heartbeats, and members take any
 * view with a higher epoch. It removes a member silent for
 * SSID_FAIL_MS, but only while it hears from a majority of the view (or
 * exactly half, holding its lowest id), so a partition cannot make two
 * clusters.
 */
#include "ssid.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vc-frame.h"

static int udp_fd = -1;
static guint64 udp_seq;
static GHashTable *replay; /* address -> SsiReplay */
static gint64 last_join_us;
static guint64 bad_messages;

static gint64
now_us(void)
{
    return g_get_monotonic_time();
}

static void
member_free(gpointer p)
{
    SsidMember *m = p;

    g_array_unref(m->gpids);
    g_array_unref(m->busy);
    g_array_unref(m->placed);
    g_free(m);
}

static SsidMember *
member_new(guint32 id, const char *addr)
{
    SsidMember *m = g_new0(SsidMember, 1);

    m->id = id;
    g_strlcpy(m->addr, addr, sizeof(m->addr));
    m->gpids = g_array_new(FALSE, FALSE, sizeof(guint32));
    m->busy = g_array_new(FALSE, FALSE, sizeof(guint32));
    m->placed = g_array_new(FALSE, FALSE, sizeof(SsidPlaced));
    m->heard_us = now_us();
    m->grace_ms = SSID_FAIL_MS;
    return m;
}

/* S.lock held: not heard from for its grace. */
static gboolean
silent(const SsidMember *m, gint64 now)
{
    return now - m->heard_us >= (gint64)MAX(m->grace_ms, SSID_FAIL_MS) * 1000;
}

static SsidMember *
find_id(guint32 id)
{
    for (guint i = 0; i < S.members->len; i++) {
        SsidMember *m = g_ptr_array_index(S.members, i);

        if (m->id == id) {
            return m;
        }
    }
    return NULL;
}

static SsidMember *
find_addr(const char *addr)
{
    for (guint i = 0; i < S.members->len; i++) {
        SsidMember *m = g_ptr_array_index(S.members, i);

        if (strcmp(m->addr, addr) == 0) {
            return m;
        }
    }
    return NULL;
}

char *
member_addr(guint32 id)
{
    SsidMember *m;
    char *r = NULL;

    g_mutex_lock(&S.lock);
    m = find_id(id);
    if (m) {
        r = g_strdup(m->addr);
    }
    g_mutex_unlock(&S.lock);
    return r;
}

gboolean
member_is_up(guint32 id)
{
    SsidMember *m;
    gboolean up;

    g_mutex_lock(&S.lock);
    m = find_id(id);
    up = m && !m->leaving && S.state == SSID_MEMBER;
    g_mutex_unlock(&S.lock);
    return up;
}

guint32
member_find_gpid(guint32 gpid)
{
    guint32 node = 0;

    g_mutex_lock(&S.lock);
    if (g_hash_table_contains(S.procs, GUINT_TO_POINTER(gpid))) {
        node = S.self;
    }
    for (guint i = 0; !node && i < S.members->len; i++) {
        SsidMember *m = g_ptr_array_index(S.members, i);

        for (guint j = 0; m->id != S.self && j < m->gpids->len; j++) {
            if (g_array_index(m->gpids, guint32, j) == gpid) {
                node = m->id;
                break;
            }
        }
    }
    g_mutex_unlock(&S.lock);
    return node;
}

SsiIdentity
member_ident(void)
{
    SsiIdentity id;

    g_mutex_lock(&S.lock);
    id = S.ident;
    id.node = (guint16)S.self;
    g_mutex_unlock(&S.lock);
    return id;
}

static gboolean
has_gpid(SsidMember *m, guint32 gpid)
{
    if (m->id == S.self) {
        return g_hash_table_contains(S.procs, GUINT_TO_POINTER(gpid));
    }
    for (guint i = 0; i < m->gpids->len; i++) {
        if (g_array_index(m->gpids, guint32, i) == gpid) {
            return TRUE;
        }
    }
    return FALSE;
}

/* Its SSI processes: as it last said, plus those placed there since
 * that it has not reported yet (for 10 s at most). */
static guint32
member_procs(SsidMember *m)
{
    guint32 n = m->id == S.self ? g_hash_table_size(S.procs) : m->gpids->len;
    gint64 now = now_us();

    for (guint i = 0; i < m->placed->len;) {
        SsidPlaced *p = &g_array_index(m->placed, SsidPlaced, i);

        if (now - p->at_us > 10 * G_USEC_PER_SEC || has_gpid(m, p->gpid)) {
            g_array_remove_index_fast(m->placed, i);
            continue;
        }
        n++;
        i++;
    }
    return n;
}

static void
member_add_placed(SsidMember *m, guint32 gpid)
{
    SsidPlaced p = {gpid, now_us()};

    g_array_append_val(m->placed, p);
}

/* S.lock held. */
void
member_write_kernel(void)
{
    g_autoptr(GString) v = g_string_new(NULL);
    int fd;

    if (!S.kmod) {
        return;
    }
    fd = open("/proc/ssi/cluster", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        g_autofree char *c = g_strdup_printf(
            "name=%s id=%016" G_GINT64_MODIFIER "x node=%u state=%s\n",
            S.cluster, S.cluster_id, S.self,
            S.state == SSID_MEMBER    ? "member"
            : S.state == SSID_JOINING ? "joining"
                                      : "alone");
        if (write(fd, c, strlen(c)) < 0) {
            g_warning("cannot write /proc/ssi/cluster: %s", g_strerror(errno));
        }
        close(fd);
    }
    if (S.state != SSID_MEMBER) {
        return;
    }
    g_string_append_printf(v, "epoch %" G_GUINT64_FORMAT "\n", S.epoch);
    for (guint i = 0; i < S.members->len; i++) {
        SsidMember *m = g_ptr_array_index(S.members, i);

        g_string_append_printf(v, "%u %s %s %u %" G_GUINT64_FORMAT " %u\n",
                               m->id, m->addr, m->leaving ? "leaving" : "up",
                               m->load, m->memfree, member_procs(m));
    }
    fd = open("/proc/ssi/nodes", O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, v->str, v->len) != (ssize_t)v->len) {
        g_warning("cannot write the view to /proc/ssi/nodes: %s",
                  g_strerror(errno));
    }
    if (fd >= 0) {
        close(fd);
    }
}

/* The local probes, from ssi.ko (or /proc when it is not loaded). */
static void
read_probes(guint32 *load, guint64 *memfree)
{
    g_autofree char *text = NULL;
    const char *file = S.kmod ? "/proc/ssi/load" : "/proc/meminfo";

    *load = 0;
    *memfree = 0;
    if (!g_file_get_contents(file, &text, NULL, NULL)) {
        return;
    }
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');

        if (nl) {
            *nl = 0;
        }
        if (S.kmod) {
            sscanf(line, "load %u", load);
            sscanf(line, "mem_available_kb %" G_GUINT64_FORMAT, memfree);
        } else {
            sscanf(line, "MemAvailable: %" G_GUINT64_FORMAT, memfree);
        }
        line = nl ? nl + 1 : NULL;
    }
    if (!S.kmod) {
        double l = 0;
        g_autofree char *la = NULL;

        if (g_file_get_contents("/proc/loadavg", &la, NULL, NULL)) {
            l = g_ascii_strtod(la, NULL);
        }
        *load = (guint32)(l * 1000);
    }
}

static void
send_to(const char *addr, SsiMsgOut *m)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(SSI_PORT)};
    g_autoptr(GBytes) b = NULL;
    gsize len;
    const guint8 *data;

    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
        return;
    }
    m->hdr.cluster = S.cluster_id;
    m->hdr.node = (guint16)S.self;
    m->hdr.incarnation = S.ident.incarnation;
    m->hdr.seq = ++udp_seq;
    m->hdr.time_ms = (guint64)(g_get_real_time() / 1000);
    b = ssi_out_encode(m, S.key, NULL, NULL);
    if (!b) {
        return;
    }
    data = g_bytes_get_data(b, &len);
    sendto(udp_fd, data, len, MSG_DONTWAIT, (struct sockaddr *)&sa, sizeof(sa));
}

static void
put_view(SsiMsgOut *m)
{
    ssi_out_u64(m, SSI_F_EPOCH, S.epoch);
    ssi_out_u32(m, SSI_F_NEXT_ID, S.next_id);
    for (guint i = 0; i < S.members->len; i++) {
        SsidMember *mm = g_ptr_array_index(S.members, i);
        GByteArray *b = g_byte_array_new();
        struct in_addr a;

        inet_pton(AF_INET, mm->addr, &a);
        vc_put_u32(b, mm->id);
        g_byte_array_append(b, (guint8 *)&a.s_addr, 4);
        vc_put_u8(b, mm->leaving);
        ssi_out_bytes(m, SSI_F_MEMBER, b->data, b->len);
        g_byte_array_unref(b);
    }
}

static gboolean
is_coordinator(void)
{
    gint64 now = now_us();

    if (S.state != SSID_MEMBER) {
        return FALSE;
    }
    for (guint i = 0; i < S.members->len; i++) {
        SsidMember *m = g_ptr_array_index(S.members, i);

        if (m->id == S.self) {
            return TRUE;
        }
        if (!silent(m, now)) {
            return FALSE;
        }
    }
    return FALSE;
}

/* S.lock held. */
static void
send_heartbeats(void)
{
    g_autoptr(SsiMsgOut) m = ssi_out_new(SSI_HEARTBEAT);
    guint32 load;
    guint64 memfree;
    SsidMember *self;

    if (S.state != SSID_MEMBER) {
        return;
    }
    read_probes(&load, &memfree);
    self = find_id(S.self);
    if (self) {
        self->load = load;
        self->memfree = memfree;
    }
    ssi_out_u32(m, SSI_F_LOAD, load);
    ssi_out_u64(m, SSI_F_MEMFREE, memfree);
    if (mem_paging()) {
        ssi_out_u32(m, SSI_F_GRACE, SSID_FAIL_PAGING_MS);
    }
    GHashTableIter it;
    gpointer k;
    {
        GByteArray *b = g_byte_array_new();

        g_hash_table_iter_init(&it, S.procs);
        while (g_hash_table_iter_next(&it, &k, NULL) && b->len < 4 * 4096) {
            vc_put_u32(b, GPOINTER_TO_UINT(k));
        }
        ssi_out_bytes(m, SSI_F_GPIDS, b->data, b->len);
        g_byte_array_unref(b);
    }
    {
        g_autoptr(GArray) busy = sched_busy();
        g_autoptr(GByteArray) b = g_byte_array_new();
        guint64 ver = 0;
        g_autofree char *conf = sched_conf_text(&ver);

        for (guint i = 0; i < busy->len; i++) {
            vc_put_u32(b, g_array_index(busy, guint32, i));
        }
        ssi_out_bytes(m, SSI_F_BUSY, b->data, b->len);
        if (ver) {
            ssi_out_str(m, SSI_F_SCHED, conf);
            ssi_out_u64(m, SSI_F_SCHED_VER, ver);
        }
    }
    if (is_coordinator()) {
        put_view(m);
    } else {
        ssi_out_u64(m, SSI_F_EPOCH, S.epoch);
    }
    for (guint i = 0; i < S.members->len; i++) {
        SsidMember *mm = g_ptr_array_index(S.members, i);

        if (mm->id != S.self) {
            send_to(mm->addr, m);
        }
    }
}

/* S.lock held: a member removed from the view hears of it too (three
 * times: datagrams), so that it stops its processes. */
static void
tell_removed(const char *addr)
{
    g_autoptr(SsiMsgOut) m = ssi_out_new(SSI_HEARTBEAT);

    put_view(m);
    for (int i = 0; i < 3; i++) {
        send_to(addr, m);
    }
}

static void
new_view(const char *why)
{
    S.epoch++;
    g_message("view %" G_GUINT64_FORMAT ": %u members (%s)", S.epoch,
              S.members->len, why);
    member_write_kernel();
    send_heartbeats();
}

/* S.lock held: adopt the view in a coordinator's heartbeat. */
static void
adopt_view(SsiMsg *msg, guint64 epoch)
{
    g_autoptr(GPtrArray) members = g_ptr_array_new_with_free_func(member_free);
    g_autoptr(GError) err = NULL;
    guint32 next_id, self = 0;
    gboolean was_member = S.state == SSID_MEMBER;
    SsiView view;

    if (!ssi_parse_view(msg, &view, &err)) {
        g_warning("ignoring a malformed view of epoch %" G_GUINT64_FORMAT
                  ": %s",
                  epoch, err->message);
        return;
    }
    next_id = view.next_id;
    for (guint i = 0; i < view.n_members; i++) {
        const SsiViewMember *vm = &view.members[i];
        SsidMember *m = member_new(vm->id, vm->addr);
        SsidMember *old = find_id(vm->id);

        m->leaving = vm->leaving;
        if (old && strcmp(old->addr, vm->addr) == 0) {
            m->load = old->load;
            m->memfree = old->memfree;
            m->heard_us = old->heard_us;
            m->grace_ms = old->grace_ms;
            g_array_append_vals(m->gpids, old->gpids->data, old->gpids->len);
            g_array_append_vals(m->busy, old->busy->data, old->busy->len);
            g_array_append_vals(m->placed, old->placed->data, old->placed->len);
        }
        if (strcmp(vm->addr, S.address) == 0) {
            self = vm->id;
        }
        g_ptr_array_add(members, m);
    }
    if (self == 0) {
        if (was_member || S.state == SSID_JOINING) {
            if (was_member) {
                g_message("view %" G_GUINT64_FORMAT
                          " does not hold this member: left the cluster",
                          epoch);
                S.state = SSID_ALONE;
                S.self = 0;
                g_ptr_array_set_size(S.members, 0);
                member_write_kernel();
                proc_left_cluster();
            }
        }
        return;
    }
    /* Members that disappeared from the view: their processes are lost. */
    g_autoptr(GArray) gone = g_array_new(FALSE, FALSE, sizeof(guint32));
    for (guint i = 0; i < S.members->len; i++) {
        SsidMember *m = g_ptr_array_index(S.members, i);
        gboolean kept = FALSE;

        for (guint j = 0; j < members->len; j++) {
            kept |= ((SsidMember *)g_ptr_array_index(members, j))->id == m->id;
        }
        if (!kept) {
            g_array_append_val(gone, m->id);
        }
    }
    g_ptr_array_unref(S.members);
    S.members = g_steal_pointer(&members);
    S.epoch = epoch;
    S.next_id = next_id;
    if (S.state != SSID_MEMBER || S.self != self) {
        g_message("member %u of cluster '%s' at view %" G_GUINT64_FORMAT, self,
                  S.cluster, epoch);
        S.joined_us = now_us();
    }
    S.state = SSID_MEMBER;
    S.self = self;
    member_write_kernel();
    for (guint i = 0; i < gone->len; i++) {
        guint32 id = g_array_index(gone, guint32, i);

        g_mutex_unlock(&S.lock);
        launch_node_lost(id);
        g_mutex_lock(&S.lock);
    }
}

static void
on_heartbeat(SsiMsg *msg, const char *from)
{
    guint64 epoch = 0;
    SsidMember *m;
    g_autoptr(GArray) gpids = NULL;
    g_autoptr(GArray) busy = NULL;
    g_autofree char *sched = NULL;
    guint64 sched_ver = 0;

    if (!ssi_msg_u64(msg, SSI_F_EPOCH, &epoch)) {
        return;
    }
    if (ssi_msg_count(msg, SSI_F_MEMBER) > 0 && epoch > S.epoch) {
        adopt_view(msg, epoch);
    }
    m = find_id(msg->hdr.node);
    if (!m || strcmp(m->addr, from) != 0 || S.state != SSID_MEMBER) {
        return;
    }
    m->heard_us = now_us();
    ssi_msg_u32(msg, SSI_F_LOAD, &m->load);
    ssi_msg_u64(msg, SSI_F_MEMFREE, &m->memfree);
    if (!ssi_msg_u32(msg, SSI_F_GRACE, &m->grace_ms)) {
        m->grace_ms = SSID_FAIL_MS;
    }
    m->grace_ms = CLAMP(m->grace_ms, SSID_FAIL_MS, SSID_FAIL_PAGING_MS);
    gpids = ssi_parse_gpids(msg, NULL);
    if (gpids) {
        g_array_set_size(m->gpids, 0);
        g_array_append_vals(m->gpids, gpids->data, gpids->len);
    }
    busy = ssi_parse_busy(msg, NULL);
    if (busy) {
        g_array_set_size(m->busy, 0);
        g_array_append_vals(m->busy, busy->data, busy->len);
    }
    if (ssi_msg_u64(msg, SSI_F_SCHED_VER, &sched_ver) &&
        (sched = ssi_msg_str(msg, SSI_F_SCHED, SSI_SCHED_TEXT_MAX))) {
        sched_heard(sched, sched_ver, m->id);
    }
}

static void
on_join(SsiMsg *msg, const char *from)
{
    g_autofree char *addr = ssi_msg_str(msg, SSI_F_ADDR, 15);
    struct in_addr a;
    SsidMember *old;

    if (!addr || inet_pton(AF_INET, addr, &a) != 1 || S.state != SSID_MEMBER) {
        return;
    }
    if (!is_coordinator()) {
        /* Pass it on to the coordinator. */
        for (guint i = 0; i < S.members->len; i++) {
            SsidMember *m = g_ptr_array_index(S.members, i);

            if (m->id != S.self && !silent(m, now_us())) {
                g_autoptr(SsiMsgOut) f = ssi_out_new(SSI_JOIN);

                ssi_out_str(f, SSI_F_ADDR, addr);
                send_to(m->addr, f);
                break;
            }
        }
        return;
    }
    old = find_addr(addr);
    if (old) {
        /* Already in: it may have missed the view; resend. A member that
         * restarted comes back with JOIN after its old self was seen
         * silent, and is removed before it is added again. */
        send_heartbeats();
        return;
    }
    if (S.next_id > SSI_MAX_NODES || S.members->len >= SSI_MAX_NODES) {
        g_warning("cannot add '%s': node ids are used up", addr);
        return;
    }
    g_ptr_array_add(S.members, member_new(S.next_id++, addr));
    g_autofree char *why = g_strdup_printf("%s joined", addr);
    new_view(why);
    (void)from;
}

static void
on_leave(SsiMsg *msg, const char *from)
{
    SsidMember *m = find_id(msg->hdr.node);

    if (!m || strcmp(m->addr, from) != 0 || !is_coordinator()) {
        return;
    }
    if (msg->hdr.flags & SSI_LEAVE_INTENT) {
        if (!m->leaving) {
            g_autofree char *why = g_strdup_printf("node %u is leaving", m->id);

            m->leaving = TRUE;
            new_view(why);
        }
        return;
    }
    g_autofree char *why = g_strdup_printf("node %u left", m->id);
    g_autofree char *addr = g_strdup(m->addr);
    g_ptr_array_remove(S.members, m);
    new_view(why);
    tell_removed(addr);
}

static void
on_invite(const char *from)
{
    if (S.state == SSID_MEMBER) {
        return;
    }
    g_message("invited by %s", from);
    g_strfreev(S.seeds);
    S.seeds = g_new0(char *, 2);
    S.seeds[0] = g_strdup(from);
    S.state = SSID_JOINING;
    member_write_kernel();
    last_join_us = 0;
}

static void
receive(void)
{
    guint8 buf[65536];
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    char from[16];
    ssize_t n;

    while ((n = recvfrom(udp_fd, buf, sizeof(buf), MSG_DONTWAIT,
                         (struct sockaddr *)&sa, &sl)) > 0) {
        g_autoptr(GBytes) raw = g_bytes_new(buf, (gsize)n);
        g_autoptr(GError) err = NULL;
        g_autoptr(SsiMsg) msg = NULL;
        SsiReplay *r;

        inet_ntop(AF_INET, &sa.sin_addr, from, sizeof(from));
        sl = sizeof(sa);
        msg = ssi_msg_decode(raw, S.key, S.cluster_id, NULL, &err);
        if (!msg) {
            if (bad_messages++ % 100 == 0) {
                g_message("dropped a datagram from %s: %s (%" G_GUINT64_FORMAT
                          " so far)",
                          from, err->message, bad_messages);
            }
            continue;
        }
        r = g_hash_table_lookup(replay, from);
        if (!r) {
            r = g_new0(SsiReplay, 1);
            g_hash_table_insert(replay, g_strdup(from), r);
        }
        if (!ssi_replay_check(r, &msg->hdr, (guint64)(g_get_real_time() / 1000),
                              30000)) {
            continue;
        }
        g_mutex_lock(&S.lock);
        switch (msg->hdr.type) {
        case SSI_HEARTBEAT:
            on_heartbeat(msg, from);
            break;
        case SSI_JOIN:
            on_join(msg, from);
            break;
        case SSI_LEAVE:
            on_leave(msg, from);
            break;
        case SSI_INVITE:
            on_invite(from);
            break;
        default:
            break;
        }
        g_mutex_unlock(&S.lock);
    }
}

/* S.lock held: the coordinator removes silent members. */
static void
detect_failures(void)
{
    gint64 now = now_us();
    guint alive = 0, n = S.members->len;
    gboolean lowest_alive = FALSE;
    g_autoptr(GArray) dead = g_array_new(FALSE, FALSE, sizeof(guint32));

    if (!is_coordinator()) {
        return;
    }
    for (guint i = 0; i < n; i++) {
        SsidMember *m = g_ptr_array_index(S.members, i);

        if (m->id == S.self || !silent(m, now)) {
            alive++;
            lowest_alive |= i == 0;
        } else {
            g_array_append_val(dead, m->id);
        }
    }
    if (dead->len == 0) {
        return;
    }
    if (!(2 * alive > n || (2 * alive == n && lowest_alive))) {
        return;
    }
    g_autoptr(GPtrArray) addrs = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < dead->len; i++) {
        guint32 id = g_array_index(dead, guint32, i);
        SsidMember *d = find_id(id);

        g_ptr_array_add(addrs, g_strdup(d->addr));
        g_ptr_array_remove(S.members, d);
    }
    g_autofree char *why = g_strdup_printf(
        "%u member(s) silent for %d ms or their grace", dead->len, SSID_FAIL_MS);
    new_view(why);
    for (guint i = 0; i < addrs->len; i++) {
        tell_removed(g_ptr_array_index(addrs, i));
    }
    for (guint i = 0; i < dead->len; i++) {
        guint32 id = g_array_index(dead, guint32, i);

        g_message("node %u failed", id);
        g_mutex_unlock(&S.lock);
        launch_node_lost(id);
        g_mutex_lock(&S.lock);
    }
}

/* S.lock held. */
static void
try_join(void)
{
    g_autoptr(SsiMsgOut) m = NULL;

    if (S.state != SSID_JOINING || now_us() - last_join_us < 500 * 1000) {
        return;
    }
    last_join_us = now_us();
    m = ssi_out_new(SSI_JOIN);
    ssi_out_str(m, SSI_F_ADDR, S.address);
    for (char **s = S.seeds; s && *s; s++) {
        send_to(*s, m);
    }
}

static gpointer
member_thread(gpointer data)
{
    gint64 next = 0;
    struct sched_param rt = {.sched_priority = 1};
    int e;

    /* Heartbeats before anything else of the member's: CPU-bound
     * processes and a member paging over the network must not make it
     * look dead (this thread sleeps in poll between beats). */
    e = pthread_setschedparam(pthread_self(), SCHED_RR, &rt);
    if (e) {
        g_warning("heartbeats at normal priority: %s", g_strerror(e));
    }

    for (;;) {
        struct pollfd p = {.fd = udp_fd, .events = POLLIN};
        gint64 wait = (next - now_us()) / 1000;

        if (poll(&p, 1, wait > 0 ? (int)wait : 0) > 0) {
            receive();
        }
        if (now_us() >= next) {
            g_mutex_lock(&S.lock);
            detect_failures();
            try_join();
            send_heartbeats();
            member_write_kernel();
            g_mutex_unlock(&S.lock);
            next = now_us() + SSID_HEARTBEAT_MS * 1000;
        }
    }
    return NULL;
}

guint32
member_place(guint32 exclude, guint32 gpid)
{
    guint32 node = 0;
    g_autofree char *text = NULL;
    gint64 best = G_MAXINT64;

    g_mutex_lock(&S.lock);
    if (S.state != SSID_MEMBER) {
        g_mutex_unlock(&S.lock);
        return 0;
    }
    if (S.kmod && exclude == 0) {
        member_write_kernel();
        if (g_file_get_contents("/proc/ssi/place", &text, NULL, NULL)) {
            node = (guint32)g_ascii_strtoull(text, NULL, 10);
        }
    }
    if (!node || !find_id(node)) {
        /* No kernel policy (or a member to avoid): least procs, then
         * least load. */
        node = 0;
        for (guint i = 0; i < S.members->len; i++) {
            SsidMember *m = g_ptr_array_index(S.members, i);
            gint64 score = (gint64)member_procs(m) * 1000 + m->load;

            if (m->id != exclude && !m->leaving && score < best) {
                best = score;
                node = m->id;
            }
        }
    }
    if (node) {
        member_add_placed(find_id(node), gpid);
    }
    g_mutex_unlock(&S.lock);
    return node;
}

void
member_invite(const char *address)
{
    g_autoptr(SsiMsgOut) m = ssi_out_new(SSI_INVITE);

    g_mutex_lock(&S.lock);
    send_to(address, m);
    g_mutex_unlock(&S.lock);
}

/* S.lock held: the coordinator leaves by handing the view without
 * itself to the others. */
static void
hand_over(void)
{
    g_autoptr(SsiMsgOut) m = ssi_out_new(SSI_HEARTBEAT);

    g_ptr_array_remove(S.members, find_id(S.self));
    S.epoch++;
    put_view(m);
    for (int round = 0; round < 3; round++) {
        for (guint i = 0; i < S.members->len; i++) {
            send_to(((SsidMember *)g_ptr_array_index(S.members, i))->addr, m);
        }
    }
    g_message("view %" G_GUINT64_FORMAT ": left the cluster", S.epoch);
    S.state = SSID_ALONE;
    S.self = 0;
    g_ptr_array_set_size(S.members, 0);
    member_write_kernel();
    proc_left_cluster();
}

/* S.lock held: LEAVE to every other member (only the coordinator acts
 * on it). */
static void
send_leave(guint8 flags)
{
    g_autoptr(SsiMsgOut) m = ssi_out_new(SSI_LEAVE);

    m->hdr.flags = flags;
    for (guint j = 0; j < S.members->len; j++) {
        SsidMember *c = g_ptr_array_index(S.members, j);

        if (c->id != S.self) {
            send_to(c->addr, m);
        }
    }
}

gboolean
member_mark_leaving(void)
{
    for (int i = 0; i < 25; i++) {
        SsidMember *self;

        g_mutex_lock(&S.lock);
        self = find_id(S.self);
        if (S.state != SSID_MEMBER || !self || self->leaving) {
            g_mutex_unlock(&S.lock);
            return self != NULL;
        }
        if (is_coordinator()) {
            self->leaving = TRUE;
            new_view("this node is leaving");
        } else {
            send_leave(SSI_LEAVE_INTENT);
        }
        g_mutex_unlock(&S.lock);
        g_usleep(200 * 1000);
    }
    return FALSE;
}

gboolean
member_leave(GError **error)
{
    for (int i = 0; i < 50; i++) {
        g_mutex_lock(&S.lock);
        if (S.state != SSID_MEMBER) {
            g_mutex_unlock(&S.lock);
            return TRUE;
        }
        if (S.members->len == 1) {
            g_mutex_unlock(&S.lock);
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                        "cannot evict the last member");
            return FALSE;
        }
        if (is_coordinator()) {
            hand_over();
        } else {
            send_leave(0);
        }
        g_mutex_unlock(&S.lock);
        g_usleep(200 * 1000);
    }
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                "the coordinator did not take the leave within 10 s");
    return FALSE;
}

gboolean
member_start(GError **error)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(SSI_PORT)};
    int one = 1;

    replay = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    S.members = g_ptr_array_new_with_free_func(member_free);
    inet_pton(AF_INET, S.address, &sa.sin_addr);
    udp_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    setsockopt(udp_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (udp_fd < 0 || bind(udp_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                    "cannot bind UDP %s:%d: %s", S.address, SSI_PORT,
                    g_strerror(errno));
        return FALSE;
    }
    S.kmod = g_file_test("/proc/ssi/nodes", G_FILE_TEST_EXISTS);
    if (!S.kmod) {
        g_warning("ssi.ko is not loaded: the view stays in ssid only");
    }
    g_mutex_lock(&S.lock);
    switch (S.join) {
    case SSID_JOIN_FOUND:
        S.self = 1;
        S.next_id = 2;
        S.state = SSID_MEMBER;
        g_ptr_array_add(S.members, member_new(1, S.address));
        S.joined_us = now_us();
        new_view("founded");
        break;
    case SSID_JOIN_SEEDS:
        S.state = SSID_JOINING;
        break;
    case SSID_JOIN_WAIT:
        S.state = SSID_ALONE;
        break;
    }
    member_write_kernel();
    g_mutex_unlock(&S.lock);
    g_thread_unref(g_thread_new("member", member_thread, NULL));
    return TRUE;
}

guint32
member_spread_target(guint busy, guint32 gpid)
{
    guint32 node = 0;
    gint64 best = G_MAXINT64;

    g_mutex_lock(&S.lock);
    for (guint i = 0; S.state == SSID_MEMBER && i < S.members->len; i++) {
        SsidMember *m = g_ptr_array_index(S.members, i);
        gint64 score = (gint64)member_procs(m) * 1000 + m->load;

        if (m->id != S.self && !m->leaving && score < best) {
            best = score;
            node = m->id;
        }
    }
    /* Only where it is clearly better: no ping-pong. */
    if (node && best + 1000 < (gint64)busy * 1000) {
        member_add_placed(find_id(node), gpid);
    } else {
        node = 0;
    }
    g_mutex_unlock(&S.lock);
    return node;
}
