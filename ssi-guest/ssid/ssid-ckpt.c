/*
 * Checkpoints (ssid.h): `ssi checkpoint` into a directory of the
 * caller's member, `ssi restart` from one, and the automatic checkpoints
 * of `ssi run --checkpoint-every`, restarted when a member fails.
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

/*
 * Dump @gpid leaving it running; @pairs gets its regular files (a copy
 * taken with the dump, original path). It is stopped meanwhile, so that
 * the copies hold what the image expects: it goes on writing to them as
 * soon as the dump ends.
 */
static gboolean
checkpoint_dump(guint32 gpid, const char *dir, SsidProcMeta *meta,
                GPtrArray *pairs, GError **error)
{
    g_autoptr(GPtrArray) files = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GArray) stopped = NULL;
    pid_t shim;
    gboolean ok;

    if (!proc_begin_move(gpid, meta, &shim, error)) {
        return FALSE;
    }
    ok = image_check(gpid, shim, FALSE, files, error);
    if (ok) {
        stopped = image_freeze(shim);
        ok = image_copy_files(files, dir, pairs, error) &&
             image_dump(gpid, shim, dir, TRUE, error);
        image_thaw(stopped);
    }
    proc_abort_move(gpid);
    return ok;
}

void
mig_serve_checkpoint(SsiConn *c, SsiMsg *req)
{
    g_autofree char *dir = NULL;
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) pairs = g_ptr_array_new_with_free_func(g_free);
    SsidProcMeta meta = {0};
    guint32 gpid = 0;
    guint64 bytes = 0;

    if (!ssi_msg_u32(req, SSI_F_GPID, &gpid)) {
        ssi_conn_fail(c, "CHECKPOINT without a GPID", NULL);
        return;
    }
    dir = image_work_dir("ckpt", gpid);
    if (!checkpoint_dump(gpid, dir, &meta, pairs, &err)) {
        ssi_conn_fail(c, err->message, NULL);
        image_rm_rf(dir);
        return;
    }
    if (!image_send(c, &meta, dir, pairs, &bytes, &err)) {
        g_warning("GPID %u: cannot send the checkpoint: %s", gpid,
                  err->message);
    }
    ssi_proc_meta_clear(&meta);
    image_rm_rf(dir);
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
    ok = image_recv(peer, images, fdir, error);
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
    meta.thaw = TRUE; /* dumped stopped (checkpoint_dump) */
    if (!image_send(c, &meta, images, pairs, &bytes, error) ||
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
        image_rm_rf(tmp);
        c = peer_connect(node, &err);
        if (!c || !mig_checkpoint_to(c, a->gpid, tmp, &err)) {
            g_message("GPID %u: automatic checkpoint failed: %s", a->gpid,
                      err->message);
            continue;
        }
        image_rm_rf(dir);
        if (rename(tmp, dir) < 0) {
            g_warning("cannot rename '%s': %s", tmp, g_strerror(errno));
        }
    }
    /* Over: a restart may still be reading it; it is small. */
    if (!launch_node(a->gpid, &node)) {
        image_rm_rf(dir);
    }
    image_rm_rf(tmp);
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
    guint32 node = member_place(0, gpid);

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
