/*
 * SSI processes: the ones running here (spawn, stdio relay to the
 * launcher, exit, kill, ps) and the ones launched from here (the `ssi
 * run` client's side of the stream).
 *
 * Stream contract between the member running a process (Y) and its
 * launcher (L): Y connects to L and sends ATTACH(gpid), then OUT/ERRDATA
 * as the process writes; L sends IN/IN_EOF/SIGNAL from the client. When
 * the process exits Y sends EXIT(status). When it is dumped for a
 * migration Y drains its pipes, sends DETACH and waits for L's OK before
 * the image leaves, so the next member's output comes after every byte
 * of this one's.
 */
#include "ssid.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define IN_RING_MAX (256 * 1024)
#define IN_PENDING_MAX (4 * 1024 * 1024)

typedef enum { PROC_RUN, PROC_MOVING, PROC_DUMPED } ProcState;

struct SsidProc {
    guint32 gpid;
    guint32 inner; /* the job's PID in its namespace: gpid, or a fork's */
    pid_t shim;
    char **argv;
    guint32 launcher;
    int in_w, out_r, err_r;
    guint64 inode[3];
    ProcState state;
    GByteArray *in_ring;    /* the last bytes written to its stdin */
    GByteArray *in_pending; /* stdin not written yet */
    gboolean in_eof;
    gboolean exited;
    gboolean reaped; /* died while a dump was under way */
    int status;
    gboolean detached;
    int wake[2];
    gint64 started_us;
    guint64 streamed; /* stdio bytes relayed (the comm probe), atomic */
    GCond cond;
    int refs;
};

static void
proc_unref(SsidProc *p)
{
    if (!p || --p->refs > 0) {
        return;
    }
    g_strfreev(p->argv);
    for (int i = 0; i < 2; i++) {
        if (p->wake[i] >= 0) {
            close(p->wake[i]);
        }
    }
    if (p->in_w >= 0) {
        close(p->in_w);
    }
    if (p->out_r >= 0) {
        close(p->out_r);
    }
    if (p->err_r >= 0) {
        close(p->err_r);
    }
    g_byte_array_unref(p->in_ring);
    g_byte_array_unref(p->in_pending);
    g_cond_clear(&p->cond);
    g_free(p);
}

void
proc_init(void)
{
    S.procs = g_hash_table_new(g_direct_hash, g_direct_equal);
    S.launches = g_hash_table_new(g_direct_hash, g_direct_equal);
    S.gpid_seq = g_random_int_range(0, 32768);
}

SsidProc *
proc_lookup(guint32 gpid)
{
    return g_hash_table_lookup(S.procs, GUINT_TO_POINTER(gpid));
}

guint
proc_count(void)
{
    return g_hash_table_size(S.procs);
}

guint32
proc_new_gpid(void)
{
    for (int tries = 0; tries < 32768; tries++) {
        guint32 g;

        gboolean launched;

        g_mutex_lock(&S.lock);
        S.gpid_seq = (S.gpid_seq + 1) % 32768;
        g = S.self * 65536 + 32768 + S.gpid_seq;
        launched = g_hash_table_contains(S.launches, GUINT_TO_POINTER(g));
        g_mutex_unlock(&S.lock);
        if (!launched && !member_find_gpid(g)) {
            return g;
        }
    }
    return 0;
}

static void
wake(SsidProc *p)
{
    if (write(p->wake[1], "x", 1) < 0) {
        /* The pipe is full: the relay is awake anyway. */
    }
}

static guint64
fd_inode(int fd)
{
    struct stat st;

    return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

char
proc_state(pid_t pid)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/stat", pid);
    g_autofree char *stat = NULL;
    const char *rp;

    if (!g_file_get_contents(path, &stat, NULL, NULL) ||
        !(rp = strrchr(stat, ')')) || !rp[1] || !rp[2]) {
        return 0;
    }
    return rp[2];
}

guint32
proc_ns_pid(pid_t pid)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/status", pid);
    g_autofree char *status = NULL;
    const char *l;
    char *end;

    if (!g_file_get_contents(path, &status, NULL, NULL) ||
        !(l = strstr(status, "\nNSpid:"))) {
        return 0;
    }
    /* "NSpid: host inner": the last is its own namespace's. */
    g_ascii_strtoull(l + 7, &end, 10);
    return (guint32)g_ascii_strtoull(end, NULL, 10);
}

/* The host PID of the process itself: the child of ssi-init whose PID in
 * the namespace is the GPID (ssi-init forks only it; orphans it adopts
 * have other PIDs). */
static pid_t
job_pid(SsidProc *p)
{
    g_autofree char *path =
        g_strdup_printf("/proc/%d/task/%d/children", p->shim, p->shim);
    g_autofree char *kids = NULL;
    g_auto(GStrv) list = NULL;

    if (!g_file_get_contents(path, &kids, NULL, NULL)) {
        return 0;
    }
    list = g_strsplit(g_strstrip(kids), " ", -1);
    for (char **k = list; *k && **k; k++) {
        pid_t pid = (pid_t)g_ascii_strtoll(*k, NULL, 10);

        if (proc_ns_pid(pid) == p->inner) {
            return pid;
        }
    }
    return 0;
}

static gboolean
send_data(SsiConn *c, SsiType type, guint32 gpid, const guint8 *data, gsize len)
{
    g_autoptr(SsiMsgOut) m = ssi_out_new(type);

    ssi_out_u32(m, SSI_F_GPID, gpid);
    if (data) {
        ssi_out_bytes(m, SSI_F_DATA, data, len);
    }
    return ssi_conn_send(c, m, NULL);
}

static SsiConn *
relay_connect(SsidProc *p)
{
    g_autofree char *addr = member_addr(p->launcher);
    SsiIdentity id = member_ident();
    SsiConn *c;

    if (!addr) {
        return NULL;
    }
    c = ssi_conn_connect(&id, addr, 3000, NULL);
    if (c && !send_data(c, SSI_ATTACH, p->gpid, NULL, 0)) {
        ssi_conn_free(c);
        return NULL;
    }
    return c;
}

/* Write pending stdin without blocking. */
static void
feed_stdin(SsidProc *p)
{
    while (p->state == PROC_RUN && p->in_w >= 0 && p->in_pending->len) {
        ssize_t n = write(p->in_w, p->in_pending->data, p->in_pending->len);

        if (n <= 0) {
            if (n < 0 && errno == EPIPE) {
                g_byte_array_set_size(p->in_pending, 0);
            }
            break;
        }
        g_byte_array_append(p->in_ring, p->in_pending->data, (guint)n);
        if (p->in_ring->len > IN_RING_MAX) {
            g_byte_array_remove_range(p->in_ring, 0,
                                      p->in_ring->len - IN_RING_MAX);
        }
        g_byte_array_remove_range(p->in_pending, 0, (guint)n);
    }
    if (p->state == PROC_RUN && p->in_eof && !p->in_pending->len &&
        p->in_w >= 0) {
        close(p->in_w);
        p->in_w = -1;
    }
}

static void
stream_message(SsidProc *p, SsiMsg *m)
{
    gsize len = 0;
    const guint8 *d;
    guint32 sig = 0;

    switch (m->hdr.type) {
    case SSI_IN:
        d = ssi_msg_bytes(m, SSI_F_DATA, &len);
        if (d) {
            g_byte_array_append(p->in_pending, d, (guint)len);
            __atomic_fetch_add(&p->streamed, len, __ATOMIC_RELAXED);
        }
        break;
    case SSI_IN_EOF:
        p->in_eof = TRUE;
        break;
    case SSI_SIGNAL:
        if (ssi_msg_u32(m, SSI_F_SIGNAL, &sig) && sig > 0 && sig < 65) {
            pid_t j = job_pid(p);

            if (j > 0) {
                kill(j, (int)sig);
            }
        }
        break;
    default:
        break;
    }
}

/*
 * The relay: the process's stdout/stderr to the launcher, its stdin from
 * there, until it exits or is dumped.
 */
static gpointer
relay_thread(gpointer data)
{
    SsidProc *p = data;
    g_autoptr(SsiConn) c = NULL;
    gboolean out_eof = FALSE, err_eof = FALSE;
    gint64 retry = 0;
    guint8 buf[65536];
    /* Output read but not sent when the connection broke: it goes first
     * on the next one. */
    g_autoptr(GByteArray) unsent = g_byte_array_new();
    SsiType unsent_type = SSI_OUT;

    for (;;) {
        struct pollfd pf[5];
        int n = 0, ic = -1, iw = -1, io = -1, ie = -1;
        ProcState st;
        gboolean exited;

        if (!c && g_get_monotonic_time() >= retry) {
            c = relay_connect(p);
            retry = g_get_monotonic_time() + 1000 * 1000;
        }
        if (c && unsent->len) {
            if (send_data(c, unsent_type, p->gpid, unsent->data, unsent->len)) {
                g_byte_array_set_size(unsent, 0);
            } else {
                g_clear_pointer(&c, ssi_conn_free);
            }
        }
        g_mutex_lock(&S.lock);
        st = p->state;
        exited = p->exited;
        feed_stdin(p);
        g_mutex_unlock(&S.lock);
        /* Done when all output is out and EXIT or DETACH can go to the
         * launcher (or it is gone for good). */
        if (out_eof && err_eof && (exited || st == PROC_DUMPED) &&
            ((c && !unsent->len) || !member_is_up(p->launcher))) {
            break;
        }
        pf[n] = (struct pollfd){.fd = p->wake[0], .events = POLLIN};
        n++;
        /* Without a launcher to write to, output waits in the pipes
         * (up to their size), unless the launcher is gone for good. */
        if ((c && !unsent->len) || !member_is_up(p->launcher)) {
            if (!out_eof) {
                io = n;
                pf[n++] = (struct pollfd){.fd = p->out_r, .events = POLLIN};
            }
            if (!err_eof) {
                ie = n;
                pf[n++] = (struct pollfd){.fd = p->err_r, .events = POLLIN};
            }
        }
        g_mutex_lock(&S.lock);
        /* Stdin it has not taken yet holds the stream back (TCP pushes
         * back to the launcher and its client) rather than filling us. */
        if (c && p->in_pending->len < IN_PENDING_MAX) {
            ic = n;
            pf[n++] = (struct pollfd){.fd = ssi_conn_fd(c), .events = POLLIN};
        }
        if (p->state == PROC_RUN && p->in_w >= 0 && p->in_pending->len) {
            iw = n;
            pf[n++] = (struct pollfd){.fd = p->in_w, .events = POLLOUT};
        }
        g_mutex_unlock(&S.lock);
        if (poll(pf, n, 500) < 0 && errno != EINTR) {
            break;
        }
        if (pf[0].revents) {
            while (read(p->wake[0], buf, sizeof(buf)) > 0) {
            }
        }
        for (int k = 0; k < 2; k++) {
            int idx = k == 0 ? io : ie;
            int fd = k == 0 ? p->out_r : p->err_r;
            ssize_t r;

            if (idx < 0 || !pf[idx].revents) {
                continue;
            }
            r = read(fd, buf, sizeof(buf));
            if (r <= 0) {
                if (r == 0 || errno != EAGAIN) {
                    *(k == 0 ? &out_eof : &err_eof) = TRUE;
                }
                continue;
            }
            __atomic_fetch_add(&p->streamed, (guint64)r, __ATOMIC_RELAXED);
            if (c && !send_data(c, k == 0 ? SSI_OUT : SSI_ERRDATA, p->gpid, buf,
                                (gsize)r)) {
                g_clear_pointer(&c, ssi_conn_free);
                unsent_type = k == 0 ? SSI_OUT : SSI_ERRDATA;
                g_byte_array_append(unsent, buf, (guint)r);
                break;
            }
        }
        if (c && ic >= 0 && pf[ic].revents) {
            g_autoptr(GError) err = NULL;
            g_autoptr(SsiMsg) m = ssi_conn_recv(c, 0, &err);

            if (!m) {
                g_clear_pointer(&c, ssi_conn_free);
            } else {
                g_mutex_lock(&S.lock);
                stream_message(p, m);
                g_mutex_unlock(&S.lock);
            }
        }
        (void)iw;
    }
    g_mutex_lock(&S.lock);
    if (p->state == PROC_DUMPED) {
        /* Hand the stream over: DETACH, and wait until L has it all. */
        gboolean ok = FALSE;

        g_mutex_unlock(&S.lock);
        if (c && send_data(c, SSI_DETACH, p->gpid, NULL, 0)) {
            for (;;) {
                g_autoptr(SsiMsg) m = ssi_conn_recv(c, 10000, NULL);

                if (!m) {
                    break;
                }
                if (m->hdr.type == SSI_OK) {
                    ok = TRUE;
                    break;
                }
                g_mutex_lock(&S.lock);
                stream_message(p, m);
                g_mutex_unlock(&S.lock);
            }
        }
        g_mutex_lock(&S.lock);
        if (!ok) {
            g_message("GPID %u: the launcher did not take the stream over",
                      p->gpid);
        }
        p->detached = TRUE;
        g_cond_broadcast(&p->cond);
    } else {
        g_autoptr(SsiMsgOut) m = ssi_out_new(SSI_EXIT);

        g_hash_table_remove(S.procs, GUINT_TO_POINTER(p->gpid));
        g_message("GPID %u exited with status %d", p->gpid, p->status);
        ssi_out_u32(m, SSI_F_GPID, p->gpid);
        ssi_out_u32(m, SSI_F_STATUS, (guint32)p->status);
        g_mutex_unlock(&S.lock);
        if (c) {
            ssi_conn_send(c, m, NULL);
            /* Let L read it before the connection closes. */
            g_autoptr(SsiMsg) r = ssi_conn_recv(c, 2000, NULL);
        }
        g_mutex_lock(&S.lock);
        proc_unref(p); /* the table's reference */
    }
    proc_unref(p);
    g_mutex_unlock(&S.lock);
    return NULL;
}

static gpointer
waiter_thread(gpointer data)
{
    SsidProc *p = data;
    int status = 0;
    pid_t r;

    do {
        r = waitpid(p->shim, &status, 0);
    } while (r < 0 && errno == EINTR);
    g_mutex_lock(&S.lock);
    if (r < 0) {
        p->status = 255;
    } else if (WIFSIGNALED(status)) {
        p->status = 128 + WTERMSIG(status);
    } else {
        p->status = WEXITSTATUS(status);
    }
    /* During a dump, whether it died or was dumped is decided when the
     * dump ends (proc_abort_move or proc_finish_move). */
    if (p->state == PROC_RUN) {
        p->exited = TRUE;
        wake(p);
    } else if (p->state == PROC_MOVING) {
        p->reaped = TRUE;
    }
    proc_unref(p);
    g_mutex_unlock(&S.lock);
    return NULL;
}

/* S.lock held. */
static SsidProc *
proc_add(guint32 gpid, guint32 inner, char **argv, guint32 launcher, pid_t shim,
         int in_w, int out_r, int err_r, const guint64 inode[3])
{
    SsidProc *p = g_new0(SsidProc, 1);

    p->gpid = gpid;
    p->inner = inner;
    p->argv = g_strdupv(argv);
    p->launcher = launcher;
    p->shim = shim;
    p->in_w = in_w;
    p->out_r = out_r;
    p->err_r = err_r;
    memcpy(p->inode, inode, sizeof(p->inode));
    p->in_ring = g_byte_array_new();
    p->in_pending = g_byte_array_new();
    p->started_us = g_get_real_time();
    g_cond_init(&p->cond);
    if (pipe2(p->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
        p->wake[0] = p->wake[1] = -1;
    }
    fcntl(in_w, F_SETFL, O_NONBLOCK);
    fcntl(out_r, F_SETFL, O_NONBLOCK);
    fcntl(err_r, F_SETFL, O_NONBLOCK);
    p->refs = 3; /* table, relay, waiter */
    g_hash_table_insert(S.procs, GUINT_TO_POINTER(gpid), p);
    g_thread_unref(g_thread_new("relay", relay_thread, p));
    g_thread_unref(g_thread_new("waiter", waiter_thread, p));
    return p;
}

typedef struct {
    int fds[3];
    char **args;
} SpawnArgs;

/* The init of the new PID namespace, before it execs ssi-init. Only
 * async-signal-safe calls: the parent has threads. */
static int
spawn_child(void *data)
{
    SpawnArgs *a = data;

    for (int i = 0; i < 3; i++) {
        if (dup2(a->fds[i], i) < 0) {
            _exit(126);
        }
    }
    if (chdir("/") < 0) {
        _exit(126);
    }
    /* Not ssid's: SIGPIPE ignored, its high priority, the fds its other
     * threads had open at the clone (GLib opens files without
     * O_CLOEXEC: a /proc file in the process made it unmovable). */
    signal(SIGPIPE, SIG_DFL);
    setpriority(PRIO_PROCESS, 0, 0);
    syscall(SYS_close_range, 3U, ~0U, 0U);
    execv("/sbin/ssi-init", a->args);
    _exit(126);
}

gboolean
proc_exec(guint32 gpid, char **argv, guint32 launcher, GError **error)
{
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
    g_autofree char *gpid_s = g_strdup_printf("%u", gpid);
    g_autoptr(GPtrArray) args = g_ptr_array_new();
    const gsize stack_size = 256 * 1024;
    g_autofree guint8 *stack = g_malloc(stack_size);
    SpawnArgs sa;
    guint64 inode[3];
    pid_t init;

    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 ||
        pipe2(err, O_CLOEXEC) < 0) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "pipe: %s",
                    g_strerror(errno));
        goto fail;
    }
    g_ptr_array_add(args, (char *)"/sbin/ssi-init");
    g_ptr_array_add(args, gpid_s);
    for (char **a = argv; *a; a++) {
        g_ptr_array_add(args, *a);
    }
    g_ptr_array_add(args, NULL);
    sa = (SpawnArgs){{in[0], out[1], err[1]}, (char **)args->pdata};
    inode[0] = fd_inode(in[0]);
    inode[1] = fd_inode(out[1]);
    inode[2] = fd_inode(err[1]);
    init = clone(spawn_child, stack + stack_size, CLONE_NEWPID | SIGCHLD, &sa);
    if (init < 0) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                    "cannot start a PID namespace for GPID %u: %s", gpid,
                    g_strerror(errno));
        goto fail;
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);
    g_mutex_lock(&S.lock);
    proc_add(gpid, gpid, argv, launcher, init, in[1], out[0], err[0], inode);
    g_mutex_unlock(&S.lock);
    g_message("GPID %u started (%s), launcher node %u", gpid, argv[0],
              launcher);
    return TRUE;
fail:
    for (int i = 0; i < 2; i++) {
        if (in[i] >= 0) {
            close(in[i]);
        }
        if (out[i] >= 0) {
            close(out[i]);
        }
        if (err[i] >= 0) {
            close(err[i]);
        }
    }
    return FALSE;
}

gboolean
proc_kill(guint32 gpid, int sig, GError **error)
{
    SsidProc *p;
    pid_t j;

    g_mutex_lock(&S.lock);
    p = proc_lookup(gpid);
    if (!p || p->state != PROC_RUN) {
        g_mutex_unlock(&S.lock);
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                    p ? "GPID %u is being moved" : "no process with GPID %u",
                    gpid);
        return FALSE;
    }
    j = job_pid(p);
    if (j <= 0 || kill(j, sig) < 0) {
        g_mutex_unlock(&S.lock);
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                    "cannot signal GPID %u: %s", gpid,
                    j <= 0 ? "it is exiting" : g_strerror(errno));
        return FALSE;
    }
    g_mutex_unlock(&S.lock);
    return TRUE;
}

GArray *
proc_gpids(void)
{
    GArray *a = g_array_new(FALSE, FALSE, sizeof(guint32));
    GHashTableIter it;
    gpointer k;

    g_hash_table_iter_init(&it, S.procs);
    while (g_hash_table_iter_next(&it, &k, NULL)) {
        guint32 g = GPOINTER_TO_UINT(k);

        g_array_append_val(a, g);
    }
    return a;
}

/* One ps row: GPID NODE STATE %CPU RSS(KiB) COMMAND, from /proc/PID. */
static char *
proc_row(const char *gpid, pid_t pid)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/stat", pid);
    g_autofree char *stat = NULL;
    g_autofree char *cmd = NULL;
    gsize clen = 0;
    char state = '?';
    unsigned long long ut = 0, st = 0, start = 0, rss = 0;
    double up = 0, cpu = 0;
    g_autofree char *uptime = NULL;
    const char *rp;
    long hz = sysconf(_SC_CLK_TCK);

    if (!g_file_get_contents(path, &stat, NULL, NULL) ||
        !(rp = strrchr(stat, ')'))) {
        return NULL;
    }
    sscanf(rp + 2,
           "%c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d "
           "%*d %*d %*d %llu %*u %llu",
           &state, &ut, &st, &start, &rss);
    if (g_file_get_contents("/proc/uptime", &uptime, NULL, NULL)) {
        up = g_ascii_strtod(uptime, NULL);
    }
    if (up - (double)start / hz > 0.01) {
        cpu = 100.0 * (double)(ut + st) / hz / (up - (double)start / hz);
    }
    g_free(path);
    path = g_strdup_printf("/proc/%d/cmdline", pid);
    if (g_file_get_contents(path, &cmd, &clen, NULL) && clen > 0) {
        for (gsize i = 0; i + 1 < clen; i++) {
            if (cmd[i] == 0) {
                cmd[i] = ' ';
            }
        }
    } else {
        g_free(cmd);
        cmd = g_strdup("[kernel]");
    }
    return g_strdup_printf("%s %u %c %.1f %llu %s", gpid, S.self, state, cpu,
                           rss * (unsigned long long)(getpagesize() / 1024),
                           cmd);
}

void
proc_rows(GPtrArray *rows, gboolean all)
{
    GHashTableIter it;
    gpointer v;
    g_autoptr(GHashTable) mine = g_hash_table_new(g_direct_hash, NULL);

    g_mutex_lock(&S.lock);
    g_hash_table_iter_init(&it, S.procs);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        SsidProc *p = v;
        pid_t j = job_pid(p);
        g_autofree char *g = g_strdup_printf("%u", p->gpid);
        char *row = j > 0 ? proc_row(g, j) : NULL;

        if (!row) {
            row = g_strdup_printf("%u %u %c 0.0 0 %s", p->gpid, S.self,
                                  p->state == PROC_RUN ? 'Z' : 'M', p->argv[0]);
        }
        g_ptr_array_add(rows, row);
        g_hash_table_add(mine, GINT_TO_POINTER(p->shim));
        if (j > 0) {
            g_hash_table_add(mine, GINT_TO_POINTER(j));
        }
    }
    g_mutex_unlock(&S.lock);
    if (all) {
        g_autoptr(GDir) d = g_dir_open("/proc", 0, NULL);
        const char *e;

        while (d && (e = g_dir_read_name(d))) {
            pid_t pid;
            char *row;

            if (!g_ascii_isdigit(e[0])) {
                continue;
            }
            pid = (pid_t)g_ascii_strtoll(e, NULL, 10);
            if (g_hash_table_contains(mine, GINT_TO_POINTER(pid))) {
                continue;
            }
            /* Not an SSI process: named by node and local PID. */
            g_autofree char *name = g_strdup_printf("%u:%d", S.self, pid);
            row = proc_row(name, pid);
            if (row) {
                g_ptr_array_add(rows, row);
            }
        }
    }
}

gboolean
proc_begin_move(guint32 gpid, SsidProcMeta *meta, pid_t *shim, GError **error)
{
    SsidProc *p;

    g_mutex_lock(&S.lock);
    p = proc_lookup(gpid);
    if (!p || p->state != PROC_RUN || p->exited) {
        g_mutex_unlock(&S.lock);
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                    p ? "GPID %u is exiting or being moved"
                      : "no process with GPID %u here",
                    gpid);
        return FALSE;
    }
    p->state = PROC_MOVING;
    meta->gpid = gpid;
    meta->inner = p->inner;
    meta->launcher = p->launcher;
    meta->argv = g_strdupv(p->argv);
    memcpy(meta->inode, p->inode, sizeof(meta->inode));
    *shim = p->shim;
    g_mutex_unlock(&S.lock);
    return TRUE;
}

void
proc_abort_move(guint32 gpid)
{
    SsidProc *p;

    g_mutex_lock(&S.lock);
    p = proc_lookup(gpid);
    if (p && p->state == PROC_MOVING) {
        p->state = PROC_RUN;
        p->exited = p->reaped;
        wake(p);
    }
    g_mutex_unlock(&S.lock);
}

gboolean
proc_finish_move(guint32 gpid, SsidProcMeta *meta, GError **error)
{
    SsidProc *p;
    gint64 deadline = g_get_monotonic_time() + 30 * G_TIME_SPAN_SECOND;
    int unread = 0;

    g_mutex_lock(&S.lock);
    p = proc_lookup(gpid);
    g_assert(p && p->state == PROC_MOVING);
    p->state = PROC_DUMPED;
    wake(p);
    while (!p->detached) {
        if (!g_cond_wait_until(&p->cond, &S.lock, deadline)) {
            break;
        }
    }
    /* Bytes written to its stdin that it had not read: the tail of the
     * ring, still in the pipe. */
    meta->stdin_pending = g_byte_array_new();
    if (p->in_w >= 0 && ioctl(p->in_w, FIONREAD, &unread) == 0 && unread > 0 &&
        (guint)unread <= p->in_ring->len) {
        g_byte_array_append(meta->stdin_pending,
                            p->in_ring->data + p->in_ring->len - unread,
                            (guint)unread);
    }
    g_byte_array_append(meta->stdin_pending, p->in_pending->data,
                        p->in_pending->len);
    if (p->in_w < 0) {
        meta->inode[0] = 0; /* no stdin left to give */
    }
    meta->stdin_eof = p->in_eof;
    g_hash_table_remove(S.procs, GUINT_TO_POINTER(gpid));
    if (!p->detached) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                    "GPID %u: the output did not drain within 30 s", gpid);
    }
    {
        gboolean ok = p->detached;

        proc_unref(p);
        g_mutex_unlock(&S.lock);
        return ok;
    }
}

void
proc_adopt(const SsidProcMeta *meta, pid_t shim, int fds[3])
{
    guint64 inode[3];
    SsidProc *p;

    /* The next dump names the pipes it has now, not the ones it came
     * with. */
    for (int i = 0; i < 3; i++) {
        inode[i] = fds[i] >= 0 ? fd_inode(fds[i]) : 0;
    }
    g_mutex_lock(&S.lock);
    p = proc_add(meta->gpid, meta->inner, meta->argv, meta->launcher, shim,
                 fds[0], fds[1], fds[2], inode);
    if (meta->stdin_pending) {
        g_byte_array_append(p->in_pending, meta->stdin_pending->data,
                            meta->stdin_pending->len);
    }
    if (meta->inode[0] == 0 || meta->stdin_eof) {
        p->in_eof = TRUE;
    }
    g_mutex_unlock(&S.lock);
}

static gpointer
left_thread(gpointer data)
{
    g_autoptr(GArray) shims = g_array_new(FALSE, FALSE, sizeof(pid_t));
    GHashTableIter it;
    gpointer v;

    g_mutex_lock(&S.lock);
    g_hash_table_iter_init(&it, S.procs);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        SsidProc *p = v;

        if (p->state == PROC_RUN) {
            g_array_append_val(shims, p->shim);
            g_message("GPID %u ends: this member is out of the cluster, which "
                      "reported it lost or restarted it elsewhere",
                      p->gpid);
        }
    }
    g_mutex_unlock(&S.lock);
    /* The init of its namespace: everything in it ends. */
    for (guint i = 0; i < shims->len; i++) {
        kill(g_array_index(shims, pid_t, i), SIGKILL);
    }
    launch_end_all("this member left the cluster; its terminal link to the "
                   "process is gone");
    return NULL;
}

void
proc_left_cluster(void)
{
    g_thread_unref(g_thread_new("left", left_thread, NULL));
}

GArray *
proc_snapshot(void)
{
    GArray *a = g_array_new(FALSE, TRUE, sizeof(SsidProcInfo));
    GHashTableIter it;
    gpointer v;

    g_mutex_lock(&S.lock);
    g_hash_table_iter_init(&it, S.procs);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        SsidProc *p = v;
        SsidProcInfo i = {p->gpid, p->inner, p->shim, p->launcher, {0},
                          __atomic_load_n(&p->streamed, __ATOMIC_RELAXED)};

        if (p->state != PROC_RUN || p->exited) {
            continue;
        }
        memcpy(i.inode, p->inode, sizeof(i.inode));
        g_array_append_val(a, i);
    }
    g_mutex_unlock(&S.lock);
    return a;
}

/* The descendants of @pid (not @pid itself), depth first, into @out. */
void
proc_descendants(pid_t pid, GArray *out, int depth)
{
    g_autofree char *path =
        g_strdup_printf("/proc/%d/task/%d/children", pid, pid);
    g_autofree char *kids = NULL;
    g_auto(GStrv) list = NULL;

    if (depth > 32 || !g_file_get_contents(path, &kids, NULL, NULL)) {
        return;
    }
    list = g_strsplit(g_strstrip(kids), " ", -1);
    for (char **k = list; *k && **k; k++) {
        pid_t c = (pid_t)g_ascii_strtoll(*k, NULL, 10);

        g_array_append_val(out, c);
        proc_descendants(c, out, depth + 1);
    }
}
