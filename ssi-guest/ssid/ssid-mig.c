/*
 * Moving processes (ssid.h): live migration, distant fork, eviction;
 * and serving the image stream that restores a process here. The
 * images themselves: ssid-image.c.
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static double
secs(gint64 us)
{
    return (double)us / 1e6;
}

gboolean
mig_fork(const SsidProcInfo *parent, pid_t child, guint32 inner, guint32 copy,
         guint32 node, GError **error)
{
    g_autofree char *dir = image_work_dir("fork", copy);
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

    if (!image_check(parent->gpid, parent->shim, TRUE, files, error)) {
        return FALSE;
    }
    /* The whole namespace, consistent, left running (the child stays
     * stopped); its ghosts let go of it meanwhile. */
    spread_pause_ghosts();
    ok = image_dump(parent->gpid, parent->shim, dir, TRUE, error);
    spread_resume_ghosts();
    if (!ok) {
        image_rm_rf(dir);
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
        image_rm_rf(dir);
        return FALSE;
    }
    c = peer_connect(node, error);
    ok = c && image_send(c, &meta, dir, pairs, &bytes, error) &&
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
    image_rm_rf(dir);
    return ok;
}

gboolean
mig_migrate(guint32 gpid, guint32 node, GString *report, GError **error)
{
    g_autofree char *dir = image_work_dir("out", gpid);
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
    if (!image_check(gpid, shim, FALSE, files, error) ||
        !image_dump(gpid, shim, dir, FALSE, error)) {
        proc_abort_move(gpid);
        ssi_proc_meta_clear(&meta);
        image_rm_rf(dir);
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
    if (c && image_send(c, &meta, dir, pairs, &bytes, &xerr)) {
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

        if (!image_restore(&meta, dir, &lerr)) {
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
        image_rm_rf(dir);
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
    image_rm_rf(dir);
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
    dir = image_work_dir("in", meta.gpid);
    g_mkdir_with_parents(dir, 0700);
    g_mutex_lock(&S.lock);
    running = proc_lookup(meta.gpid) != NULL;
    g_mutex_unlock(&S.lock);
    if (running || !image_recv(c, dir, NULL, &err)) {
        if (!err) {
            g_set_error(&err, G_IO_ERROR, G_IO_ERROR_EXISTS,
                        "GPID %u runs here already", meta.gpid);
        }
        ssi_conn_fail(c, err->message, NULL);
        goto out;
    }
    t0 = g_get_monotonic_time();
    if (!image_restore(&meta, dir, &err)) {
        g_warning("%s", err->message);
        ssi_conn_fail(c, err->message, NULL);
        goto out;
    }
    if (!meta.fork) {
        sched_note_arrival(meta.gpid);
    }
    ssi_out_u64(ok, SSI_F_USEC, (guint64)(g_get_monotonic_time() - t0));
    ssi_conn_send(c, ok, NULL);
    g_message("GPID %u restored here", meta.gpid);
out:
    ssi_proc_meta_clear(&meta);
    image_rm_rf(dir);
}

gboolean
mig_evict_self(GString *report, GError **error)
{
    g_autoptr(GArray) gpids = NULL;
    guint moved = 0;

    if (!member_mark_leaving()) {
        g_message("the view does not show this member leaving yet");
    }
    /* Memory first: what it lent is moved while it still answers. */
    if (!mem_leave(report, error)) {
        g_prefix_error(error, "eviction stopped: ");
        return FALSE;
    }
    g_mutex_lock(&S.lock);
    gpids = proc_gpids();
    g_mutex_unlock(&S.lock);
    for (guint i = 0; i < gpids->len; i++) {
        guint32 g = g_array_index(gpids, guint32, i);
        g_autoptr(GError) merr = NULL;
        g_autoptr(GString) r = g_string_new(NULL);
        guint32 self = member_ident().node;
        guint32 node = member_place(self, g);

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
