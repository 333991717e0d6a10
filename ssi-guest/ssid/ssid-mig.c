/*
 * Migration, checkpoint and restart with CRIU (ssid.h).
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
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHUNK (1024 * 1024)
#define IMAGE_MAX (2ull * 1024 * 1024 * 1024)

static double
secs(gint64 us)
{
    return (double)us / 1e6;
}

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
static gboolean
check_movable(guint32 gpid, pid_t shim, gboolean forking, GPtrArray *files,
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
        /* Not ssid's: SIGPIPE ignored, its high priority. */
        signal(SIGPIPE, SIG_DFL);
        setpriority(PRIO_PROCESS, 0, 0);
        for (int i = 0; fds && i < 3; i++) {
            if (fds[i] >= 0) {
                dup2(fds[i], 3 + i); /* clears O_CLOEXEC */
            }
        }
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

static gboolean
dump(guint32 gpid, pid_t shim, const char *dir, gboolean leave_running,
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
    if (meta->stdin_eof || meta->fork) {
        ssi_out_u32(m, SSI_F_FLAGS,
                    (meta->stdin_eof ? SSI_FLAG_STDIN_EOF : 0) |
                        (meta->fork ? SSI_FLAG_FORK : 0));
    }
    if (meta->inner && meta->inner != meta->gpid) {
        ssi_out_u32(m, SSI_F_PID, meta->inner);
    }
}

/* Send the images in @dir and the files in @files (pairs: content
 * source, original path). */
static gboolean
send_image(SsiConn *c, const SsidProcMeta *meta, const char *dir,
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
static gboolean
recv_files(SsiConn *c, const char *dir, const char *files_dir, GError **error)
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
static gboolean
restore_here(const SsidProcMeta *meta, const char *dir, GError **error)
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

static void
rm_rf(const char *dir)
{
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    const char *e;

    while (d && (e = g_dir_read_name(d))) {
        g_autofree char *p = g_build_filename(dir, e, NULL);

        if (g_file_test(p, G_FILE_TEST_IS_DIR) &&
            !g_file_test(p, G_FILE_TEST_IS_SYMLINK)) {
            rm_rf(p);
        } else {
            unlink(p);
        }
    }
    rmdir(dir);
}

static char *
work_dir(const char *what, guint32 gpid)
{
    return g_strdup_printf("%s/%s-%u-%08x", SSID_STATE_DIR, what, gpid,
                           g_random_int());
}

gboolean
mig_fork(const SsidProcInfo *parent, pid_t child, guint32 inner, guint32 copy,
         guint32 node, GError **error)
{
    g_autofree char *dir = work_dir("fork", copy);
    g_autofree char *cmdp = g_strdup_printf("/proc/%d/cmdline", child);
    g_autofree char *cmd = NULL;
    g_autoptr(GPtrArray) files = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GPtrArray) pairs = g_ptr_array_new();
    g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(SsiConn) c = NULL;
    g_autoptr(SsiMsg) r = NULL;
    SsidProcMeta meta = {0};
    gsize clen = 0;
    guint64 bytes = 0;
    gint64 t0 = g_get_monotonic_time();
    gboolean ok;

    if (!check_movable(parent->gpid, parent->shim, TRUE, files, error)) {
        return FALSE;
    }
    /* The whole namespace, consistent, left running (the child stays
     * stopped); its ghosts let go of it meanwhile. */
    spread_pause_ghosts();
    ok = dump(parent->gpid, parent->shim, dir, TRUE, error);
    spread_resume_ghosts();
    if (!ok) {
        rm_rf(dir);
        return FALSE;
    }
    if (g_file_get_contents(cmdp, &cmd, &clen, NULL) && clen > 0) {
        for (gsize i = 0; i < clen;) {
            g_ptr_array_add(argv, g_strdup(cmd + i));
            i += strlen(cmd + i) + 1;
        }
    } else {
        g_ptr_array_add(argv, g_strdup("fork"));
    }
    g_ptr_array_add(argv, NULL);
    meta.gpid = copy;
    meta.inner = inner;
    meta.fork = TRUE;
    meta.launcher = member_ident().node;
    meta.argv = g_strdupv((char **)argv->pdata);
    meta.inode[1] = parent->inode[1];
    meta.inode[2] = parent->inode[2];
    for (guint i = 0; i < files->len; i++) {
        g_ptr_array_add(pairs, g_ptr_array_index(files, i));
        g_ptr_array_add(pairs, g_ptr_array_index(files, i));
    }
    if (!spread_ghost(child, copy, node, error)) {
        ssi_proc_meta_clear(&meta);
        rm_rf(dir);
        return FALSE;
    }
    c = peer_connect(node, error);
    ok = c && send_image(c, &meta, dir, pairs, &bytes, error) &&
         (r = ssi_conn_recv(c, 120000, error)) != NULL;
    if (ok && r->hdr.type == SSI_FAIL) {
        g_autofree char *t = ssi_msg_str(r, SSI_F_TEXT, 4096);

        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s",
                    t ? t : "restore failed");
        ok = FALSE;
    }
    if (!ok) {
        if (error && !*error) {
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                        "node %u closed the connection", node);
        }
        spread_cancel(copy);
    } else {
        g_message("GPID %u: its child PID %u runs on node %u as GPID %u "
                  "(distant fork, %.2f s, %.1f MiB)",
                  parent->gpid, inner, node, copy,
                  (double)(g_get_monotonic_time() - t0) / 1e6,
                  (double)bytes / 1048576.0);
    }
    ssi_proc_meta_clear(&meta);
    rm_rf(dir);
    return ok;
}

gboolean
mig_migrate(guint32 gpid, guint32 node, GString *report, GError **error)
{
    g_autofree char *dir = work_dir("out", gpid);
    g_autoptr(GPtrArray) files = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GPtrArray) pairs = g_ptr_array_new();
    g_autoptr(SsiConn) c = NULL;
    g_autoptr(SsiMsg) r = NULL;
    g_autoptr(GError) xerr = NULL;
    SsidProcMeta meta = {0};
    gint64 t0 = g_get_monotonic_time(), t_dump, t_end, restore_us = 0;
    guint64 bytes = 0;
    pid_t shim;
    guint32 self;

    if (!member_is_up(node)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                    "node %u is not an up member of the cluster", node);
        return FALSE;
    }
    g_mutex_lock(&S.lock);
    self = S.self;
    g_mutex_unlock(&S.lock);
    if (node == self) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_EXISTS,
                    "GPID %u already runs on node %u", gpid, node);
        return FALSE;
    }
    if (!proc_begin_move(gpid, &meta, &shim, error)) {
        return FALSE;
    }
    if (!check_movable(gpid, shim, FALSE, files, error) ||
        !dump(gpid, shim, dir, FALSE, error)) {
        proc_abort_move(gpid);
        ssi_proc_meta_clear(&meta);
        rm_rf(dir);
        return FALSE;
    }
    t_dump = g_get_monotonic_time();
    if (!proc_finish_move(gpid, &meta, &xerr)) {
        g_warning("%s", xerr->message);
        g_clear_error(&xerr);
    }
    for (guint i = 0; i < files->len; i++) {
        g_ptr_array_add(pairs, g_ptr_array_index(files, i));
        g_ptr_array_add(pairs, g_ptr_array_index(files, i));
    }
    c = peer_connect(node, &xerr);
    if (c && send_image(c, &meta, dir, pairs, &bytes, &xerr)) {
        r = ssi_conn_recv(c, 120000, &xerr);
        if (r && r->hdr.type == SSI_FAIL) {
            g_autofree char *t = ssi_msg_str(r, SSI_F_TEXT, 4096);

            g_set_error(&xerr, G_IO_ERROR, G_IO_ERROR_FAILED, "%s",
                        t ? t : "failed");
            g_clear_pointer(&r, ssi_msg_free);
        } else if (!r && !xerr) {
            g_set_error(&xerr, G_IO_ERROR, G_IO_ERROR_FAILED,
                        "node %u closed the connection", node);
        }
    }
    if (!r) {
        /* It must not be lost: restore it here again. */
        g_autoptr(GError) lerr = NULL;

        if (!restore_here(&meta, dir, &lerr)) {
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                        "migration of GPID %u to node %u failed (%s), and "
                        "so did its restore here (%s); images kept in %s",
                        gpid, node, xerr ? xerr->message : "?", lerr->message,
                        dir);
            ssi_proc_meta_clear(&meta);
            return FALSE;
        }
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                    "migration of GPID %u to node %u failed (%s); it runs "
                    "on here, on node %u",
                    gpid, node, xerr ? xerr->message : "?", self);
        ssi_proc_meta_clear(&meta);
        rm_rf(dir);
        return FALSE;
    }
    ssi_msg_u64(r, SSI_F_USEC, (guint64 *)&restore_us);
    t_end = g_get_monotonic_time();
    g_string_append_printf(report,
                           "GPID %u: node %u -> node %u in %.2f s (dump %.2f s,"
                           " transfer and restore %.2f s of which restore "
                           "%.2f s, %.1f MiB)",
                           gpid, self, node, secs(t_end - t0),
                           secs(t_dump - t0), secs(t_end - t_dump),
                           secs(restore_us), (double)bytes / 1048576.0);
    g_message("%s", report->str);
    ssi_proc_meta_clear(&meta);
    rm_rf(dir);
    return TRUE;
}

void
mig_serve_image(SsiConn *c, SsiMsg *first)
{
    gboolean running;
    g_autofree char *dir = NULL;
    g_autoptr(GError) err = NULL;
    g_autoptr(SsiMsgOut) ok = ssi_out_new(SSI_OK);
    SsidProcMeta meta = {0};
    gint64 t0;

    if (!ssi_parse_proc_meta(first, &meta, &err)) {
        ssi_conn_fail(c, err->message, NULL);
        return;
    }
    dir = work_dir("in", meta.gpid);
    g_mkdir_with_parents(dir, 0700);
    g_mutex_lock(&S.lock);
    running = proc_lookup(meta.gpid) != NULL;
    g_mutex_unlock(&S.lock);
    if (running || !recv_files(c, dir, NULL, &err)) {
        if (!err) {
            g_set_error(&err, G_IO_ERROR, G_IO_ERROR_EXISTS,
                        "GPID %u runs here already", meta.gpid);
        }
        ssi_conn_fail(c, err->message, NULL);
        goto out;
    }
    t0 = g_get_monotonic_time();
    if (!restore_here(&meta, dir, &err)) {
        g_warning("%s", err->message);
        ssi_conn_fail(c, err->message, NULL);
        goto out;
    }
    ssi_out_u64(ok, SSI_F_USEC, (guint64)(g_get_monotonic_time() - t0));
    ssi_conn_send(c, ok, NULL);
    g_message("GPID %u restored here", meta.gpid);
out:
    ssi_proc_meta_clear(&meta);
    rm_rf(dir);
}

/* Dump @gpid leaving it running; @files gets the regular files. */
static gboolean
checkpoint_dump(guint32 gpid, const char *dir, SsidProcMeta *meta,
                GPtrArray *files, GError **error)
{
    pid_t shim;
    gboolean ok;

    if (!proc_begin_move(gpid, meta, &shim, error)) {
        return FALSE;
    }
    ok = check_movable(gpid, shim, FALSE, files, error) &&
         dump(gpid, shim, dir, TRUE, error);
    proc_abort_move(gpid);
    return ok;
}

void
mig_serve_checkpoint(SsiConn *c, SsiMsg *req)
{
    g_autofree char *dir = NULL;
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) files = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GPtrArray) pairs = g_ptr_array_new();
    SsidProcMeta meta = {0};
    guint32 gpid = 0;
    guint64 bytes = 0;

    if (!ssi_msg_u32(req, SSI_F_GPID, &gpid)) {
        ssi_conn_fail(c, "CHECKPOINT without a GPID", NULL);
        return;
    }
    dir = work_dir("ckpt", gpid);
    if (!checkpoint_dump(gpid, dir, &meta, files, &err)) {
        ssi_conn_fail(c, err->message, NULL);
        rm_rf(dir);
        return;
    }
    for (guint i = 0; i < files->len; i++) {
        g_ptr_array_add(pairs, g_ptr_array_index(files, i));
        g_ptr_array_add(pairs, g_ptr_array_index(files, i));
    }
    if (!send_image(c, &meta, dir, pairs, &bytes, &err)) {
        g_warning("GPID %u: cannot send the checkpoint: %s", gpid,
                  err->message);
    }
    ssi_proc_meta_clear(&meta);
    rm_rf(dir);
}

gboolean
mig_checkpoint_to(SsiConn *peer, guint32 gpid, const char *dir, GError **error)
{
    g_autoptr(SsiMsgOut) req = ssi_out_new(SSI_CHECKPOINT);
    g_autoptr(SsiMsg) first = NULL;
    g_autofree char *images = g_build_filename(dir, "images", NULL);
    g_autofree char *fdir = g_build_filename(dir, "files", NULL);
    g_autofree char *metap = g_build_filename(dir, "meta", NULL);
    g_autoptr(GKeyFile) kf = g_key_file_new();
    SsidProcMeta meta = {0};
    gboolean ok;

    if (g_file_test(metap, G_FILE_TEST_EXISTS)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_EXISTS,
                    "'%s' holds a checkpoint already", dir);
        return FALSE;
    }
    if (g_mkdir_with_parents(images, 0700) < 0 ||
        g_mkdir_with_parents(fdir, 0700) < 0) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                    "cannot create '%s': %s", dir, g_strerror(errno));
        return FALSE;
    }
    ssi_out_u32(req, SSI_F_GPID, gpid);
    first = ssi_conn_call(peer, req, 120000, error);
    if (!first) {
        return FALSE;
    }
    if (first->hdr.type != SSI_IMAGE ||
        !ssi_parse_proc_meta(first, &meta, error)) {
        if (error && !*error) {
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                        "unexpected answer to CHECKPOINT");
        }
        return FALSE;
    }
    ok = recv_files(peer, images, fdir, error);
    if (ok) {
        g_key_file_set_uint64(kf, "process", "gpid", meta.gpid);
        g_key_file_set_string_list(kf, "process", "argv",
                                   (const char *const *)meta.argv,
                                   g_strv_length(meta.argv));
        g_key_file_set_uint64(kf, "process", "stdin", meta.inode[0]);
        g_key_file_set_uint64(kf, "process", "stdout", meta.inode[1]);
        g_key_file_set_uint64(kf, "process", "stderr", meta.inode[2]);
        ok = g_key_file_save_to_file(kf, metap, error);
    }
    ssi_proc_meta_clear(&meta);
    return ok;
}

static gboolean
restart(const char *dir, guint32 node, SsiConn *client, gboolean resume,
        guint32 *gpid_out, GError **error)
{
    g_autofree char *images = g_build_filename(dir, "images", NULL);
    g_autofree char *metap = g_build_filename(dir, "meta", NULL);
    g_autofree char *listp = g_build_filename(dir, "files.list", NULL);
    g_autofree char *list = NULL;
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autoptr(GPtrArray) pairs = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(SsiConn) c = NULL;
    g_autoptr(SsiMsg) r = NULL;
    g_auto(GStrv) lines = NULL;
    SsidProcMeta meta = {0};
    guint64 bytes = 0, v;
    guint32 where;
    gboolean ok = FALSE;

    if (!g_key_file_load_from_file(kf, metap, 0, NULL) ||
        !g_file_get_contents(listp, &list, NULL, NULL)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                    "'%s' is not a checkpoint (made by ssi checkpoint)", dir);
        return FALSE;
    }
    v = g_key_file_get_uint64(kf, "process", "gpid", NULL);
    meta.argv = g_key_file_get_string_list(kf, "process", "argv", NULL, NULL);
    if (v < 65536 || v > 4194303 || !meta.argv || !meta.argv[0]) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                    "'%s' holds a bad process record", metap);
        goto out;
    }
    meta.gpid = (guint32)v;
    meta.inode[0] = g_key_file_get_uint64(kf, "process", "stdin", NULL);
    meta.inode[1] = g_key_file_get_uint64(kf, "process", "stdout", NULL);
    meta.inode[2] = g_key_file_get_uint64(kf, "process", "stderr", NULL);
    where = resume ? 0 : member_find_gpid(meta.gpid);
    if (where) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_EXISTS,
                    "GPID %u is running on node %u: kill it before "
                    "restarting its checkpoint",
                    meta.gpid, where);
        goto out;
    }
    g_mutex_lock(&S.lock);
    meta.launcher = S.self;
    g_mutex_unlock(&S.lock);
    lines = g_strsplit(list, "\n", -1);
    for (char **l = lines; *l && **l; l++) {
        g_auto(GStrv) f = g_strsplit(*l, " ", 3);

        if (g_strv_length(f) != 3 || !ssi_parse_path_ok(f[2])) {
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                        "'%s' has a bad line", listp);
            goto out;
        }
        g_ptr_array_add(pairs, g_build_filename(dir, "files", f[0], NULL));
        g_ptr_array_add(pairs, g_strdup(f[2]));
    }
    c = peer_connect(node, error);
    if (!c) {
        goto out;
    }
    if (!resume && !launch_register(meta.gpid, node, client)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_EXISTS,
                    "GPID %u is being restarted already", meta.gpid);
        goto out;
    }
    if (!send_image(c, &meta, images, pairs, &bytes, error) ||
        !(r = ssi_conn_recv(c, 120000, error))) {
        if (!resume) {
            launch_unregister(meta.gpid);
        }
        goto out;
    }
    if (r->hdr.type == SSI_FAIL) {
        g_autofree char *t = ssi_msg_str(r, SSI_F_TEXT, 4096);

        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s",
                    t ? t : "restore failed");
        if (!resume) {
            launch_unregister(meta.gpid);
        }
        goto out;
    }
    *gpid_out = meta.gpid;
    ok = TRUE;
out:
    ssi_proc_meta_clear(&meta);
    return ok;
}

gboolean
mig_restart(const char *dir, guint32 node, SsiConn *client, guint32 *gpid_out,
            GError **error)
{
    return restart(dir, node, client, FALSE, gpid_out, error);
}

static char *
auto_dir(guint32 gpid)
{
    return g_strdup_printf("%s/auto/%u", SSID_STATE_DIR, gpid);
}

typedef struct {
    guint32 gpid;
    guint32 period;
} AutoCheckpoint;

static gpointer
auto_checkpoint_thread(gpointer data)
{
    AutoCheckpoint *a = data;
    g_autofree char *dir = auto_dir(a->gpid);
    g_autofree char *tmp = g_strdup_printf("%s.new", dir);
    guint32 node = 0;

    for (;;) {
        g_autoptr(GError) err = NULL;
        g_autoptr(SsiConn) c = NULL;

        g_usleep((gulong)a->period * G_USEC_PER_SEC);
        if (!launch_node(a->gpid, &node)) {
            break;
        }
        if (!node) {
            continue; /* moving */
        }
        rm_rf(tmp);
        c = peer_connect(node, &err);
        if (!c || !mig_checkpoint_to(c, a->gpid, tmp, &err)) {
            g_message("GPID %u: automatic checkpoint failed: %s", a->gpid,
                      err->message);
            continue;
        }
        rm_rf(dir);
        if (rename(tmp, dir) < 0) {
            g_warning("cannot rename '%s': %s", tmp, g_strerror(errno));
        }
    }
    /* Over: a restart may still be reading it; it is small. */
    if (!launch_node(a->gpid, &node)) {
        rm_rf(dir);
    }
    rm_rf(tmp);
    g_free(a);
    return NULL;
}

void
mig_auto_checkpoint(guint32 gpid, guint32 period)
{
    AutoCheckpoint *a = g_new0(AutoCheckpoint, 1);
    g_autofree char *parent = g_strdup_printf("%s/auto", SSID_STATE_DIR);

    g_mkdir_with_parents(parent, 0700);
    a->gpid = gpid;
    a->period = period;
    g_thread_unref(g_thread_new("checkpoint", auto_checkpoint_thread, a));
}

static gpointer
auto_restart_thread(gpointer data)
{
    guint32 gpid = GPOINTER_TO_UINT(data), g = 0;
    g_autofree char *dir = auto_dir(gpid);
    g_autoptr(GError) err = NULL;
    guint32 node = member_place(0);

    if (!node || !restart(dir, node, NULL, TRUE, &g, &err)) {
        g_autofree char *t = g_strdup_printf(
            "GPID %u lost with its member, and its checkpoint could not be "
            "restarted: %s",
            gpid, err ? err->message : "no member left");
        launch_lost(gpid, t);
    } else {
        g_autofree char *t = g_strdup_printf(
            "GPID %u: its member failed; restarted on node %u from its "
            "latest checkpoint",
            gpid, node);
        g_message("%s", t);
        launch_note(gpid, t);
    }
    return NULL;
}

gboolean
mig_auto_restart(guint32 gpid)
{
    g_autofree char *dir = auto_dir(gpid);
    g_autofree char *meta = g_build_filename(dir, "meta", NULL);

    if (!g_file_test(meta, G_FILE_TEST_EXISTS)) {
        return FALSE;
    }
    g_thread_unref(
        g_thread_new("restart", auto_restart_thread, GUINT_TO_POINTER(gpid)));
    return TRUE;
}

gboolean
mig_evict_self(GString *report, GError **error)
{
    g_autoptr(GArray) gpids = NULL;
    guint moved = 0;

    if (!member_mark_leaving()) {
        g_message("the view does not show this member leaving yet");
    }
    g_mutex_lock(&S.lock);
    gpids = proc_gpids();
    g_mutex_unlock(&S.lock);
    for (guint i = 0; i < gpids->len; i++) {
        guint32 g = g_array_index(gpids, guint32, i);
        g_autoptr(GError) merr = NULL;
        g_autoptr(GString) r = g_string_new(NULL);
        guint32 self = member_ident().node;
        guint32 node = member_place(self);

        if (!node || node == self) {
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                        "no other member to move GPID %u to", g);
            return FALSE;
        }
        if (!mig_migrate(g, node, r, &merr)) {
            if (g_error_matches(merr, G_IO_ERROR, G_IO_ERROR_NOT_FOUND)) {
                continue; /* it ended meanwhile */
            }
            g_propagate_error(error, g_steal_pointer(&merr));
            g_prefix_error(error,
                           "eviction stopped, %u process(es) moved: ", moved);
            return FALSE;
        }
        moved++;
        g_string_append_printf(report, "%s\n", r->str);
    }
    if (!member_leave(error)) {
        return FALSE;
    }
    g_string_append_printf(report, "%u process(es) moved, left the cluster",
                           moved);
    return TRUE;
}
