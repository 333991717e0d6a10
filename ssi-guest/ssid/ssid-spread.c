/*
 * Distant fork, after the fact (ssid.h). Kerrighed forked a process
 * straight onto another node; a stock kernel cannot. Instead, when a
 * member runs more CPU-bound SSI processes than it has CPUs, this
 * spreader takes a busy child of an SSI process, copies its namespace
 * with CRIU to a less loaded member, keeps only the child there (a new
 * GPID; getpid() unchanged), and leaves the original child here as a
 * ghost: stopped, traced, it stands in for the copy towards its parent.
 * The copy's output goes into the ghost's stdout and stderr; when the
 * copy exits, the ghost is made to exit with the same status (an
 * exit_group injected with ptrace), so the parent's wait() sees it.
 *
 * While the ghosts of a namespace live, CRIU cannot dump it (they are
 * traced): a dump for another fork first detaches them (they stay
 * stopped), and the namespace itself cannot migrate or be checkpointed.
 */
#include "ssid.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

typedef enum { GHOST_WAIT, GHOST_EXIT, GHOST_CANCEL } GhostVerdict;

typedef struct {
    pid_t pid;
    guint32 copy;
    GhostVerdict verdict;
    guint32 status;
    gboolean attached;
} Ghost;

static GMutex lock;
static GCond cond;
static GHashTable *ghosts; /* pid -> Ghost* */
static gboolean pause_req;
static guint paused;

static void
ghost_exit_cb(guint32 status, gpointer data)
{
    Ghost *g = data;

    g_mutex_lock(&lock);
    if (g->verdict == GHOST_WAIT) {
        g->verdict = GHOST_EXIT;
        g->status = status;
    }
    g_cond_broadcast(&cond);
    g_mutex_unlock(&lock);
}

static gboolean
attach(pid_t pid)
{
    int st;

    if (ptrace(PTRACE_SEIZE, pid, 0, 0) < 0) {
        return FALSE;
    }
    ptrace(PTRACE_INTERRUPT, pid, 0, 0);
    return waitpid(pid, &st, __WALL) == pid;
}

/* An address of a `syscall` instruction in @pid: its vDSO has some. */
static guint64
syscall_insn(pid_t pid)
{
    g_autofree char *maps_path = g_strdup_printf("/proc/%d/maps", pid);
    g_autofree char *mem_path = g_strdup_printf("/proc/%d/mem", pid);
    g_autofree char *maps = NULL;
    g_auto(GStrv) lines = NULL;
    guint64 start = 0, end = 0;
    guint8 buf[16384];
    ssize_t n;
    int fd;

    if (!g_file_get_contents(maps_path, &maps, NULL, NULL)) {
        return 0;
    }
    lines = g_strsplit(maps, "\n", -1);
    for (char **l = lines; *l; l++) {
        if (g_str_has_suffix(*l, "[vdso]")) {
            sscanf(*l, "%" G_GINT64_MODIFIER "x-%" G_GINT64_MODIFIER "x",
                   &start, &end);
        }
    }
    if (!start || end <= start) {
        return 0;
    }
    fd = open(mem_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    n = pread(fd, buf, MIN(sizeof(buf), end - start), (off_t)start);
    close(fd);
    for (ssize_t i = 0; i + 1 < n; i++) {
        if (buf[i] == 0x0f && buf[i + 1] == 0x05) {
            return start + (guint64)i;
        }
    }
    return 0;
}

/* Make the ghost end as its copy did. */
static void
ghost_end(pid_t pid, guint32 status)
{
    struct user_regs_struct r;
    guint64 insn = status < 128 ? syscall_insn(pid) : 0;
    int st;

    if (status >= 128 || !insn || ptrace(PTRACE_GETREGS, pid, 0, &r) < 0) {
        /* A signal (or no way to run exit_group): deliver it. */
        int sig =
            status > 128 && status < 128 + 65 ? (int)status - 128 : SIGKILL;

        kill(pid, sig);
        ptrace(PTRACE_DETACH, pid, 0, 0);
        kill(pid, SIGCONT);
        if (sig != SIGKILL && status < 128) {
            kill(pid, SIGKILL);
        }
        return;
    }
    r.orig_rax = (guint64)-1; /* not in a syscall: no restart */
    r.rip = insn;
    r.rax = SYS_exit_group;
    r.rdi = status;
    ptrace(PTRACE_SETREGS, pid, 0, &r);
    for (int i = 0; i < 64; i++) {
        /* Signals pending for it are dropped on the way. */
        if (ptrace(PTRACE_CONT, pid, 0, 0) < 0 ||
            waitpid(pid, &st, __WALL) < 0 || WIFEXITED(st) || WIFSIGNALED(st)) {
            return;
        }
    }
    kill(pid, SIGKILL);
}

/* Tell the copy's member to end it: its ghost is gone. */
static void
kill_copy(guint32 copy)
{
    guint32 node = member_find_gpid(copy);
    g_autoptr(SsiMsgOut) m = ssi_out_new(SSI_KILL);
    g_autoptr(SsiConn) c = node ? peer_connect(node, NULL) : NULL;
    g_autoptr(SsiMsg) r = NULL;

    if (!c) {
        return;
    }
    ssi_out_u32(m, SSI_F_GPID, copy);
    ssi_out_u32(m, SSI_F_SIGNAL, SIGKILL);
    r = ssi_conn_call(c, m, 5000, NULL);
}

static gpointer
ghost_thread(gpointer data)
{
    Ghost *g = data;
    gboolean dead = FALSE;

    g_mutex_lock(&lock);
    g->attached = attach(g->pid);
    if (!g->attached) {
        g_warning("cannot trace PID %d to make it a ghost: %s", g->pid,
                  g_strerror(errno));
    }
    g_cond_broadcast(&cond);
    while (g->verdict == GHOST_WAIT && !dead) {
        int st;

        if (pause_req && g->attached) {
            ptrace(PTRACE_DETACH, g->pid, 0, 0); /* it stays stopped */
            g->attached = FALSE;
            paused++;
            g_cond_broadcast(&cond);
            while (pause_req) {
                g_cond_wait(&cond, &lock);
            }
            paused--;
            g->attached = attach(g->pid);
            continue;
        }
        g_cond_wait_until(&cond, &lock, g_get_monotonic_time() + 500 * 1000);
        if (g->attached && waitpid(g->pid, &st, WNOHANG | __WALL) == g->pid &&
            (WIFEXITED(st) || WIFSIGNALED(st))) {
            dead = TRUE;
        } else if (!g->attached && kill(g->pid, 0) < 0) {
            dead = TRUE;
        }
    }
    g_hash_table_remove(ghosts, GINT_TO_POINTER(g->pid));
    g_mutex_unlock(&lock);
    if (dead) {
        /* Killed here (its namespace ended, or SIGKILL): so is the copy. */
        g_message("ghost PID %d of GPID %u died: ending GPID %u", g->pid,
                  g->copy, g->copy);
        kill_copy(g->copy);
    } else if (g->verdict == GHOST_EXIT) {
        g_message("GPID %u exited with status %u: its ghost PID %d too",
                  g->copy, g->status, g->pid);
        ghost_end(g->pid, g->status);
    } else {
        ptrace(PTRACE_DETACH, g->pid, 0, 0);
        kill(g->pid, SIGCONT);
    }
    g_free(g);
    return NULL;
}

gboolean
spread_ghost(pid_t child, guint32 copy, guint32 node, GError **error)
{
    g_autofree char *out = g_strdup_printf("/proc/%d/fd/1", child);
    g_autofree char *err = g_strdup_printf("/proc/%d/fd/2", child);
    int out_fd = open(out, O_WRONLY | O_CLOEXEC);
    int err_fd = open(err, O_WRONLY | O_CLOEXEC);
    Ghost *g = g_new0(Ghost, 1);

    g->pid = child;
    g->copy = copy;
    if (!launch_register_fork(copy, node, out_fd, err_fd, ghost_exit_cb, g)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_EXISTS, "GPID %u is taken",
                    copy);
        if (out_fd >= 0) {
            close(out_fd);
        }
        if (err_fd >= 0) {
            close(err_fd);
        }
        g_free(g);
        return FALSE;
    }
    g_mutex_lock(&lock);
    g_hash_table_insert(ghosts, GINT_TO_POINTER(child), g);
    g_thread_unref(g_thread_new("ghost", ghost_thread, g));
    g_mutex_unlock(&lock);
    return TRUE;
}

void
spread_cancel(guint32 copy)
{
    GHashTableIter it;
    gpointer v;

    g_mutex_lock(&lock);
    g_hash_table_iter_init(&it, ghosts);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        Ghost *g = v;

        if (g->copy == copy && g->verdict == GHOST_WAIT) {
            g->verdict = GHOST_CANCEL;
        }
    }
    g_cond_broadcast(&cond);
    g_mutex_unlock(&lock);
    launch_unregister(copy);
}

gboolean
spread_is_ghost(pid_t pid)
{
    gboolean r;

    g_mutex_lock(&lock);
    r = ghosts && g_hash_table_contains(ghosts, GINT_TO_POINTER(pid));
    g_mutex_unlock(&lock);
    return r;
}

void
spread_pause_ghosts(void)
{
    g_mutex_lock(&lock);
    pause_req = TRUE;
    g_cond_broadcast(&cond);
    for (int i = 0; i < 50; i++) {
        guint attached = 0;
        GHashTableIter it;
        gpointer v;

        g_hash_table_iter_init(&it, ghosts);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
            attached += ((Ghost *)v)->attached;
        }
        if (!attached) {
            break;
        }
        g_cond_wait_until(&cond, &lock, g_get_monotonic_time() + 100 * 1000);
    }
    g_mutex_unlock(&lock);
}

void
spread_resume_ghosts(void)
{
    g_mutex_lock(&lock);
    pause_req = FALSE;
    g_cond_broadcast(&cond);
    g_mutex_unlock(&lock);
}

/* One process's state letter and CPU ticks, from /proc/PID/stat. */
static gboolean
proc_stat(pid_t pid, char *state, guint64 *ticks)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/stat", pid);
    g_autofree char *stat = NULL;
    const char *rp;
    unsigned long long ut = 0, st = 0;

    if (!g_file_get_contents(path, &stat, NULL, NULL) ||
        !(rp = strrchr(stat, ')'))) {
        return FALSE;
    }
    if (sscanf(rp + 2, "%c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
               state, &ut, &st) != 3) {
        return FALSE;
    }
    *ticks = ut + st;
    return TRUE;
}

static void
spread_once(void)
{
    g_autoptr(GArray) procs = proc_snapshot();
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    guint busy = 0;
    const SsidProcInfo *from = NULL;
    pid_t child = 0;
    guint32 inner = 0, node, copy;
    g_autoptr(GError) err = NULL;

    for (guint i = 0; i < procs->len; i++) {
        const SsidProcInfo *p = &g_array_index(procs, SsidProcInfo, i);
        g_autoptr(GArray) pids = g_array_new(FALSE, FALSE, sizeof(pid_t));

        proc_descendants(p->shim, pids, 0);
        for (guint k = 0; k < pids->len; k++) {
            pid_t pid = g_array_index(pids, pid_t, k);
            guint32 in = proc_ns_pid(pid);
            guint64 ticks = 0;
            char state = '?';

            if (!proc_stat(pid, &state, &ticks) || state != 'R' ||
                spread_is_ghost(pid)) {
                continue;
            }
            busy++;
            /* A child, busy for a while: not the process itself. */
            if (!child && in && in != p->inner &&
                ticks >= (guint64)sysconf(_SC_CLK_TCK) / 2) {
                from = p;
                child = pid;
                inner = in;
            }
        }
    }
    if (!child || busy <= (guint)MAX(ncpu, 1)) {
        return;
    }
    copy = proc_new_gpid();
    node = copy ? member_spread_target(busy, copy) : 0;
    if (!node || kill(child, SIGSTOP) < 0) {
        return;
    }
    /* Wait for it to stop before the dump. */
    for (int i = 0; i < 50; i++) {
        char state = '?';
        guint64 t;

        if (proc_stat(child, &state, &t) && (state == 'T' || state == 't')) {
            break;
        }
        g_usleep(20 * 1000);
    }
    if (!mig_fork(from, child, inner, copy, node, &err)) {
        g_message("GPID %u: PID %u stays here: %s", from->gpid, inner,
                  err->message);
        kill(child, SIGCONT);
        /* Do not try that one again and again. */
        g_usleep(5 * G_USEC_PER_SEC);
    }
}

static gpointer
spread_thread(gpointer data)
{
    for (;;) {
        g_usleep(700 * 1000);
        spread_once();
    }
    return NULL;
}

void
spread_start(void)
{
    ghosts = g_hash_table_new(g_direct_hash, g_direct_equal);
    g_thread_unref(g_thread_new("spread", spread_thread, NULL));
}
