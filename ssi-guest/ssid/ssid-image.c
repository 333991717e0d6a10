/*
 * The image of an SSI process (ssid.h): what can move, its dump with
 * CRIU, the image stream between members, and its restore.
 *
 * A process is its PID namespace (ssi-init and what it started): CRIU
 * dumps it from ssi-init's PID. What goes from member to member is an
 * image stream on one connection: IMAGE (the process's record), FILE
 * messages (CRIU's image files by NAME, the regular files it has open by
 * absolute PATH, in chunks), END. The receiver writes them and restores
 * the namespace, giving CRIU new pipes for the stdio pipes the images
 * name (--inherit-fd), so the relay carries on.
 *
 * What cannot move is refused before anything happens: sockets (a TCP
 * connection to outside would break), terminals.
 */
#include "ssid.h"

#include "vc-frame.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHUNK (1024 * 1024)
#define IMAGE_MAX (2ull * 1024 * 1024 * 1024)

/* The processes of @shim's PID namespace. */
static GArray *
ns_pids(pid_t shim)
{
    GArray *pids = g_array_new(FALSE, FALSE, sizeof(pid_t));
    g_autofree char *l = g_strdup_printf("/proc/%d/ns/pid", shim);
    g_autofree char *ns = g_file_read_link(l, NULL);
    g_autoptr(GDir) d = g_dir_open("/proc", 0, NULL);
    const char *e;

    while (ns && d && (e = g_dir_read_name(d))) {
        g_autofree char *p = g_strdup_printf("/proc/%s/ns/pid", e);
        g_autofree char *n = NULL;

        if (!g_ascii_isdigit(e[0])) {
            continue;
        }
        n = g_file_read_link(p, NULL);
        if (n && strcmp(n, ns) == 0) {
            pid_t pid = (pid_t)g_ascii_strtoll(e, NULL, 10);

            g_array_append_val(pids, pid);
        }
    }
    return pids;
}

/* Refuse what cannot move; collect the regular files it has open. */
gboolean
image_check(guint32 gpid, pid_t shim, gboolean forking, GPtrArray *files,
            GError **error)
{
    g_autoptr(GArray) pids = ns_pids(shim);
    g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);

    for (guint i = 0; i < pids->len; i++) {
        pid_t pid = g_array_index(pids, pid_t, i);
        if (!forking && spread_is_ghost(pid)) {
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                        "GPID %u cannot move now: some of its children run "
                        "on other members (distant forks); it can once they "
                        "end",
                        gpid);
            return FALSE;
        }
        g_autofree char *dir = g_strdup_printf("/proc/%d/fd", pid);
        g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
        const char *e;

        while (d && (e = g_dir_read_name(d))) {
            g_autofree char *p = g_strdup_printf("%s/%s", dir, e);
            g_autofree char *t = g_file_read_link(p, NULL);
            struct stat st;

            if (!t) {
                continue;
            }
            if (g_str_has_prefix(t, "socket:")) {
                g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                            "GPID %u cannot migrate: it has a socket open "
                            "(fd %s of PID %d), which cannot follow it",
                            gpid, e, pid);
                return FALSE;
            }
            if (g_str_has_prefix(t, "/dev/pts/") ||
                g_str_has_prefix(t, "/dev/tty") ||
                g_str_has_prefix(t, "/dev/console")) {
                g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                            "GPID %u cannot migrate: it has the terminal "
                            "'%s' open (fd %s of PID %d)",
                            gpid, t, e, pid);
                return FALSE;
            }
            if (t[0] == '/' && stat(p, &st) == 0 && S_ISREG(st.st_mode) &&
                !g_str_has_suffix(t, " (deleted)") &&
                !g_hash_table_contains(seen, t)) {
                char *c = g_strdup(t);

                g_hash_table_add(seen, c);
                g_ptr_array_add(files, c);
            }
        }
    }
    return TRUE;
}

static char *
tail_of(const char *path)
{
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;
    guint n;

    if (!g_file_get_contents(path, &text, NULL, NULL)) {
        return g_strdup("(no log)");
    }
    lines = g_strsplit(g_strchomp(text), "\n", -1);
    n = g_strv_length(lines);
    for (guint i = n; i > 0; i--) {
        if (strstr(lines[i - 1], "Error") || strstr(lines[i - 1], "rror ")) {
            return g_strdup(g_strstrip(lines[i - 1]));
        }
    }
    return g_strdup(n ? g_strstrip(lines[n - 1]) : "(empty log)");
}

/* Run CRIU with @fds (may be NULL) as its fds 3, 4, 5. */
static gboolean
run_criu(const char *const *argv, const int *fds, const char *log,
         GError **error)
{
    pid_t pid = fork();
    int status = 0;

    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);

        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        /* Not ssid's SIGPIPE ignored. CRIU keeps ssid's high priority:
         * on a member busy with CPU-bound processes (the ones the
         * scheduler moves, from and to) it would get a small share of
         * the CPU and take seconds. The processes it restores get their
         * own priority back (CRIU restores each task's nice). */
        signal(SIGPIPE, SIG_DFL);
        for (int i = 0; fds && i < 3; i++) {
            if (fds[i] >= 0) {
                dup2(fds[i], 3 + i); /* clears O_CLOEXEC */
            }
        }
        /* Nothing else of ssid's (see spawn_child). */
        syscall(SYS_close_range, fds ? 6U : 3U, ~0U, 0U);
        execv("/usr/sbin/criu", (char **)argv);
        _exit(127);
    }
    if (pid < 0 || waitpid(pid, &status, 0) < 0) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "cannot run criu: %s",
                    g_strerror(errno));
        return FALSE;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        g_autofree char *t = tail_of(log);

        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "criu %s failed: %s",
                    argv[1], t);
        return FALSE;
    }
    return TRUE;
}

gboolean
image_dump(guint32 gpid, pid_t shim, const char *dir, gboolean leave_running,
           GError **error)
{
    g_autofree char *t = g_strdup_printf("%d", shim);
    g_autofree char *log = g_build_filename(dir, "dump.log", NULL);
    const char *argv[] = {"criu", "dump",
                          "-t",   t,
                          "-D",   dir,
                          "-o",   "dump.log",
                          "-v2",  leave_running ? "--leave-running" : NULL,
                          NULL};

    if (g_mkdir_with_parents(dir, 0700) < 0) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                    "cannot create '%s': %s", dir, g_strerror(errno));
        return FALSE;
    }
    if (!run_criu(argv, NULL, log, error)) {
        g_prefix_error(error, "GPID %u: ", gpid);
        return FALSE;
    }
    return TRUE;
}

static gboolean
send_file(SsiConn *c, SsiField key, const char *name, const char *src,
          guint64 *bytes, GError **error)
{
    int fd = open(src, O_RDONLY | O_CLOEXEC);
    g_autofree guint8 *buf = g_malloc(CHUNK);
    guint64 off = 0;
    struct stat st;

    if (fd < 0 || fstat(fd, &st) < 0) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                    "cannot read '%s': %s", src, g_strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return FALSE;
    }
    for (;;) {
        ssize_t n = read(fd, buf, CHUNK);
        g_autoptr(SsiMsgOut) m = ssi_out_new(SSI_FILE);

        if (n < 0) {
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                        "cannot read '%s': %s", src, g_strerror(errno));
            close(fd);
            return FALSE;
        }
        ssi_out_str(m, key, name);
        ssi_out_u32(m, SSI_F_MODE, st.st_mode & 07777);
        ssi_out_u64(m, SSI_F_OFFSET, off);
        ssi_out_bytes(m, SSI_F_DATA, buf, (gsize)n);
        if (!ssi_conn_send(c, m, error)) {
            close(fd);
            return FALSE;
        }
        off += (guint64)n;
        if (n == 0 || (guint64)n < CHUNK) {
            break;
        }
    }
    *bytes += off;
    close(fd);
    return TRUE;
}

static void
put_meta(SsiMsgOut *m, const SsidProcMeta *meta)
{
    ssi_out_u32(m, SSI_F_GPID, meta->gpid);
    ssi_out_u32(m, SSI_F_LAUNCHER, meta->launcher);
    for (char **a = meta->argv; a && *a; a++) {
        ssi_out_str(m, SSI_F_ARG, *a);
    }
    for (int i = 0; i < 3; i++) {
        ssi_out_u64(m, SSI_F_INODE, meta->inode[i]);
    }
    if (meta->stdin_pending) {
        ssi_out_bytes(m, SSI_F_DATA, meta->stdin_pending->data,
                      meta->stdin_pending->len);
    }
    if (meta->stdin_eof || meta->fork || meta->thaw) {
        ssi_out_u32(m, SSI_F_FLAGS,
                    (meta->stdin_eof ? SSI_FLAG_STDIN_EOF : 0) |
                        (meta->fork ? SSI_FLAG_FORK : 0) |
                        (meta->thaw ? SSI_FLAG_THAW : 0));
    }
    if (meta->inner && meta->inner != meta->gpid) {
        ssi_out_u32(m, SSI_F_PID, meta->inner);
    }
}

/* Send the images in @dir and the files in @files (pairs: content
 * source, original path). */
gboolean
image_send(SsiConn *c, const SsidProcMeta *meta, const char *dir,
           GPtrArray *files, guint64 *bytes, GError **error)
{
    g_autoptr(SsiMsgOut) m = ssi_out_new(SSI_IMAGE);
    g_autoptr(GDir) d = g_dir_open(dir, 0, error);
    g_autoptr(SsiMsgOut) end = ssi_out_new(SSI_END);
    const char *e;

    if (!d) {
        return FALSE;
    }
    put_meta(m, meta);
    if (!ssi_conn_send(c, m, error)) {
        return FALSE;
    }
    while ((e = g_dir_read_name(d))) {
        g_autofree char *p = g_build_filename(dir, e, NULL);

        if (g_str_has_suffix(e, ".log") ||
            !g_file_test(p, G_FILE_TEST_IS_REGULAR)) {
            continue;
        }
        if (!send_file(c, SSI_F_NAME, e, p, bytes, error)) {
            return FALSE;
        }
    }
    for (guint i = 0; files && i + 1 < files->len; i += 2) {
        if (!send_file(c, SSI_F_PATH, g_ptr_array_index(files, i + 1),
                       g_ptr_array_index(files, i), bytes, error)) {
            return FALSE;
        }
    }
    return ssi_conn_send(c, end, error);
}

/*
 * Receive FILE messages until END. Images go into @dir; a file by PATH
 * goes to its path (@files_dir NULL) or into @files_dir as a numbered
 * copy listed in @files_dir/../files.list (a checkpoint).
 */
gboolean
image_recv(SsiConn *c, const char *dir, const char *files_dir, GError **error)
{
    g_autofree char *cur = NULL;
    g_autoptr(GString) list = g_string_new(NULL);
    int fd = -1;
    guint64 off = 0, total = 0;
    guint nfiles = 0;

    for (;;) {
        g_autoptr(SsiMsg) m = ssi_conn_recv(c, 60000, error);
        g_auto(SsiFileChunk) f = {0};
        g_autofree char *target = NULL;

        if (!m) {
            if (error && !*error) {
                g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                            "image stream ended early");
            }
            goto fail;
        }
        if (m->hdr.type == SSI_END) {
            break;
        }
        if (!ssi_parse_file(m, &f, error)) {
            goto fail;
        }
        if (f.name) {
            target = g_build_filename(dir, f.name, NULL);
        } else if (files_dir) {
            if (f.offset == 0) {
                g_string_append_printf(list, "%u %o %s\n", nfiles, f.mode,
                                       f.path);
                nfiles++;
            }
            target = g_strdup_printf("%s/%u", files_dir, nfiles - 1);
        } else {
            target = g_strdup(f.path);
        }
        if (f.offset == 0) {
            g_autofree char *parent = g_path_get_dirname(target);

            if (fd >= 0) {
                close(fd);
            }
            g_mkdir_with_parents(parent, 0755);
            /* A file the process has open is rewritten in place, as
             * the image expects it; never through a symlink someone
             * put there. */
            fd = open(target,
                      O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
                      f.mode);
            if (fd < 0) {
                g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                            "cannot write '%s': %s", target, g_strerror(errno));
                goto fail;
            }
            g_free(cur);
            cur = g_strdup(target);
            off = 0;
        } else if (fd < 0 || f.offset != off || g_strcmp0(cur, target) != 0) {
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                        "FILE chunk out of order in an image stream");
            goto fail;
        }
        total += f.len;
        if (total > IMAGE_MAX ||
            vc_write_all(fd, f.data, f.len, error) == FALSE) {
            if (error && !*error) {
                g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                            "image stream over %llu bytes", IMAGE_MAX);
            }
            goto fail;
        }
        off += f.len;
    }
    if (fd >= 0) {
        close(fd);
    }
    if (files_dir) {
        g_autofree char *lp =
            g_build_filename(files_dir, "..", "files.list", NULL);

        return g_file_set_contents(lp, list->str, (gssize)list->len, error);
    }
    return TRUE;
fail:
    if (fd >= 0) {
        close(fd);
    }
    return FALSE;
}

/* The PID in the host of @inner, a PID of @shim's namespace; 0 if none. */
static pid_t
ns_find(pid_t shim, guint32 inner)
{
    g_autoptr(GArray) pids = ns_pids(shim);

    for (guint i = 0; i < pids->len; i++) {
        pid_t pid = g_array_index(pids, pid_t, i);

        if (proc_ns_pid(pid) == inner) {
            return pid;
        }
    }
    return 0;
}

/*
 * A distant fork: CRIU restored the parent's whole namespace, stopped.
 * Keep its init and the child; the rest is the parent's, which runs on
 * where it was. The init then waits for the child (ssi-init.c).
 */
static gboolean
keep_fork(pid_t shim, const SsiProcMeta *meta, GError **error)
{
    g_autoptr(GArray) pids = ns_pids(shim);
    pid_t child = ns_find(shim, meta->inner);
    union sigval v = {.sival_int = (int)meta->inner};

    if (!child) {
        kill(shim, SIGKILL);
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                    "GPID %u: PID %u is not in the restored namespace",
                    meta->gpid, meta->inner);
        return FALSE;
    }
    sigqueue(shim, SIGUSR1, v);
    for (guint i = 0; i < pids->len; i++) {
        pid_t pid = g_array_index(pids, pid_t, i);

        if (pid != shim && pid != child) {
            kill(pid, SIGKILL);
        }
    }
    kill(shim, SIGCONT);
    kill(child, SIGCONT);
    return TRUE;
}

/* Restore the images in @dir here. */
gboolean
image_restore(const SsidProcMeta *meta, const char *dir, GError **error)
{
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
    g_autofree char *log = g_build_filename(dir, "restore.log", NULL);
    g_autofree char *pidfile = g_build_filename(dir, "restored.pid", NULL);
    g_autofree char *pidtext = NULL;
    g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
    int child[3], ours[3];
    gboolean ok = FALSE;

    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 ||
        pipe2(err, O_CLOEXEC) < 0) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "pipe: %s",
                    g_strerror(errno));
        goto out;
    }
    child[0] = in[0];
    child[1] = out[1];
    child[2] = err[1];
    ours[0] = meta->inode[0] ? in[1] : -1;
    ours[1] = out[0];
    ours[2] = err[0];
    for (const char *a[] = {"criu", "restore", "-D", dir, "-o", "restore.log",
                            "-v2", "-d", "--pidfile", pidfile, NULL},
                    **p = a;
         *p; p++) {
        g_ptr_array_add(argv, g_strdup(*p));
    }
    for (int i = 0; i < 3; i++) {
        if (meta->inode[i]) {
            g_ptr_array_add(argv, g_strdup("--inherit-fd"));
            g_ptr_array_add(
                argv, g_strdup_printf("fd[%d]:pipe:[%" G_GUINT64_FORMAT "]",
                                      3 + i, meta->inode[i]));
        }
    }
    if (meta->fork) {
        g_ptr_array_add(argv, g_strdup("--leave-stopped"));
    }
    g_ptr_array_add(argv, NULL);
    if (!run_criu((const char *const *)argv->pdata, child, log, error) ||
        !g_file_get_contents(pidfile, &pidtext, NULL, error)) {
        g_prefix_error(error, "GPID %u: ", meta->gpid);
        goto out;
    }
    if (meta->fork &&
        !keep_fork((pid_t)g_ascii_strtoll(pidtext, NULL, 10), meta, error)) {
        goto out;
    }
    if (meta->thaw && !meta->fork) {
        g_autoptr(GArray) pids =
            ns_pids((pid_t)g_ascii_strtoll(pidtext, NULL, 10));

        image_thaw(pids);
    }
    close(child[0]);
    close(child[1]);
    close(child[2]);
    in[0] = out[1] = err[1] = -1;
    if (ours[0] < 0 && in[1] >= 0) {
        close(in[1]);
    }
    in[1] = out[0] = err[0] = -1;
    proc_adopt(meta, (pid_t)g_ascii_strtoll(pidtext, NULL, 10), ours);
    ok = TRUE;
out:
    for (int i = 0; i < 2; i++) {
        for (int *f = (int[]){in[i], out[i], err[i]}, k = 0; k < 3; k++) {
            if (f[k] >= 0) {
                close(f[k]);
            }
        }
    }
    return ok;
}

void
image_rm_rf(const char *dir)
{
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    const char *e;

    while (d && (e = g_dir_read_name(d))) {
        g_autofree char *p = g_build_filename(dir, e, NULL);

        if (g_file_test(p, G_FILE_TEST_IS_DIR) &&
            !g_file_test(p, G_FILE_TEST_IS_SYMLINK)) {
            image_rm_rf(p);
        } else {
            unlink(p);
        }
    }
    rmdir(dir);
}

char *
image_work_dir(const char *what, guint32 gpid)
{
    return g_strdup_printf("%s/%s-%u-%08x", SSID_STATE_DIR, what, gpid,
                           g_random_int());
}

GArray *
image_freeze(pid_t shim)
{
    g_autoptr(GArray) pids = ns_pids(shim);
    GArray *stopped = g_array_new(FALSE, FALSE, sizeof(pid_t));

    for (guint i = 0; i < pids->len; i++) {
        pid_t pid = g_array_index(pids, pid_t, i);

        /* Those stopped already (a ghost, a fork under way) stay so. */
        if (proc_state(pid) != 'T' && proc_state(pid) != 't' &&
            kill(pid, SIGSTOP) == 0) {
            g_array_append_val(stopped, pid);
        }
    }
    for (guint i = 0; i < stopped->len; i++) {
        pid_t pid = g_array_index(stopped, pid_t, i);

        for (int k = 0; k < 100; k++) {
            char st = proc_state(pid);

            if (st == 'T' || st == 't' || st == 0) {
                break;
            }
            g_usleep(10 * 1000);
        }
    }
    return stopped;
}

void
image_thaw(GArray *stopped)
{
    for (guint i = 0; stopped && i < stopped->len; i++) {
        kill(g_array_index(stopped, pid_t, i), SIGCONT);
    }
}

gboolean
image_copy_files(GPtrArray *files, const char *dir, GPtrArray *pairs,
                 GError **error)
{
    g_autofree char *snap = g_build_filename(dir, "files", NULL);

    if (g_mkdir_with_parents(snap, 0700) < 0) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                    "cannot create '%s': %s", snap, g_strerror(errno));
        return FALSE;
    }
    for (guint i = 0; i < files->len; i++) {
        const char *path = g_ptr_array_index(files, i);
        g_autofree char *copy = g_strdup_printf("%s/%u", snap, i);
        g_autoptr(GFile) from = g_file_new_for_path(path);
        g_autoptr(GFile) to = g_file_new_for_path(copy);

        if (!g_file_copy(from, to,
                         G_FILE_COPY_OVERWRITE | G_FILE_COPY_NOFOLLOW_SYMLINKS,
                         NULL, NULL, NULL, error)) {
            g_prefix_error(error, "cannot copy '%s': ", path);
            return FALSE;
        }
        g_ptr_array_add(pairs, g_steal_pointer(&copy));
        g_ptr_array_add(pairs, g_strdup(path));
    }
    return TRUE;
}
