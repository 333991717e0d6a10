/* The parsers of SSI message contents (ssi-parse.c; docs/protocols.md,
 * "SSI protocol"): what each accepts, and each refusal. */
#include <string.h>

#include "ssi-parse.h"
#include "vc-error.h"

/* Through the codec without a MAC, as ssid receives it once decoded. */
static SsiMsg *
roundtrip(SsiMsgOut *out)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GBytes) b = ssi_out_encode(out, NULL, NULL, &error);
    SsiMsg *m;

    g_assert_no_error(error);
    m = ssi_msg_decode(b, NULL, 0, NULL, &error);
    g_assert_no_error(error);
    g_assert_nonnull(m);
    return m;
}

static void
member(SsiMsgOut *m, guint32 id, guint32 addr, guint8 leaving)
{
    guint8 b[9] = {id >> 24,   id >> 16,  id >> 8, id,     addr >> 24,
                   addr >> 16, addr >> 8, addr,    leaving};

    ssi_out_bytes(m, SSI_F_MEMBER, b, sizeof(b));
}

static SsiMsgOut *
view_msg(guint n)
{
    SsiMsgOut *m = ssi_out_new(SSI_HEARTBEAT);

    ssi_out_u64(m, SSI_F_EPOCH, 7);
    ssi_out_u32(m, SSI_F_NEXT_ID, n + 1);
    for (guint i = 1; i <= n; i++) {
        member(m, i, 0x0a000200 + i, i == 2);
    }
    return m;
}

static void
view_bad(SsiMsgOut *out)
{
    g_autoptr(SsiMsg) m = roundtrip(out);
    g_autoptr(GError) error = NULL;
    SsiView view;

    g_assert_false(ssi_parse_view(m, &view, &error));
    g_assert_error(error, VC_ERROR, VC_ERROR_INVALID);
    g_assert_cmpuint(view.n_members, ==, 0);
}

static void
test_view(void)
{
    g_autoptr(SsiMsgOut) out = view_msg(3);
    g_autoptr(SsiMsg) m = roundtrip(out);
    g_autoptr(GError) error = NULL;
    SsiView view;

    g_assert_true(ssi_parse_view(m, &view, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(view.next_id, ==, 4);
    g_assert_cmpuint(view.n_members, ==, 3);
    g_assert_cmpuint(view.members[0].id, ==, 1);
    g_assert_cmpstr(view.members[0].addr, ==, "10.0.2.1");
    g_assert_false(view.members[0].leaving);
    g_assert_cmpuint(view.members[1].id, ==, 2);
    g_assert_true(view.members[1].leaving);
    g_assert_cmpstr(view.members[2].addr, ==, "10.0.2.3");

    /* The largest view, with gaps in the ids. */
    {
        g_autoptr(SsiMsgOut) full = ssi_out_new(SSI_HEARTBEAT);
        g_autoptr(SsiMsg) mf = NULL;

        ssi_out_u32(full, SSI_F_NEXT_ID, 64);
        for (guint i = 1; i <= SSI_MAX_NODES; i++) {
            member(full, i, 0x0a000000 + i, 0);
        }
        mf = roundtrip(full);
        g_assert_true(ssi_parse_view(mf, &view, NULL));
        g_assert_cmpuint(view.n_members, ==, SSI_MAX_NODES);
        g_assert_cmpuint(view.members[62].id, ==, 63);
    }
    {
        g_autoptr(SsiMsgOut) gaps = ssi_out_new(SSI_HEARTBEAT);
        g_autoptr(SsiMsg) mg = NULL;

        ssi_out_u32(gaps, SSI_F_NEXT_ID, 40);
        member(gaps, 5, 0xc0a80001, 0);
        member(gaps, 39, 0xffffffff, 3);
        mg = roundtrip(gaps);
        g_assert_true(ssi_parse_view(mg, &view, NULL));
        g_assert_cmpstr(view.members[1].addr, ==, "255.255.255.255");
        g_assert_true(view.members[1].leaving);
    }
}

static void
test_view_refused(void)
{
    const guint8 short_member[8] = {0, 0, 0, 1, 10, 0, 2, 1};
    guint8 long_member[10] = {0, 0, 0, 1, 10, 0, 2, 1, 0, 0};
    g_autoptr(SsiMsgOut) none = ssi_out_new(SSI_HEARTBEAT);
    g_autoptr(SsiMsgOut) too_many = view_msg(SSI_MAX_NODES);
    g_autoptr(SsiMsgOut) no_next = ssi_out_new(SSI_HEARTBEAT);
    g_autoptr(SsiMsgOut) next_u64 = ssi_out_new(SSI_HEARTBEAT);
    g_autoptr(SsiMsgOut) id0 = ssi_out_new(SSI_HEARTBEAT);
    g_autoptr(SsiMsgOut) id64 = ssi_out_new(SSI_HEARTBEAT);
    g_autoptr(SsiMsgOut) same = ssi_out_new(SSI_HEARTBEAT);
    g_autoptr(SsiMsgOut) down = ssi_out_new(SSI_HEARTBEAT);
    g_autoptr(SsiMsgOut) shrt = ssi_out_new(SSI_HEARTBEAT);
    g_autoptr(SsiMsgOut) lng = ssi_out_new(SSI_HEARTBEAT);

    ssi_out_u32(none, SSI_F_NEXT_ID, 1);
    view_bad(none);
    member(too_many, 64, 0x0a000240, 0);
    view_bad(too_many);
    member(no_next, 1, 0x0a000201, 0);
    view_bad(no_next);
    ssi_out_u64(next_u64, SSI_F_NEXT_ID, 2);
    member(next_u64, 1, 0x0a000201, 0);
    view_bad(next_u64);
    ssi_out_u32(id0, SSI_F_NEXT_ID, 2);
    member(id0, 0, 0x0a000201, 0);
    view_bad(id0);
    ssi_out_u32(id64, SSI_F_NEXT_ID, 65);
    member(id64, 64, 0x0a000201, 0);
    view_bad(id64);
    ssi_out_u32(same, SSI_F_NEXT_ID, 3);
    member(same, 2, 0x0a000201, 0);
    member(same, 2, 0x0a000202, 0);
    view_bad(same);
    ssi_out_u32(down, SSI_F_NEXT_ID, 4);
    member(down, 3, 0x0a000201, 0);
    member(down, 1, 0x0a000202, 0);
    view_bad(down);
    ssi_out_u32(shrt, SSI_F_NEXT_ID, 2);
    ssi_out_bytes(shrt, SSI_F_MEMBER, short_member, sizeof(short_member));
    view_bad(shrt);
    ssi_out_u32(lng, SSI_F_NEXT_ID, 2);
    ssi_out_bytes(lng, SSI_F_MEMBER, long_member, sizeof(long_member));
    view_bad(lng);
}

static void
test_gpids(void)
{
    const guint8 two[8] = {0, 0, 0x10, 1, 0xff, 0xff, 0xff, 0xfe};
    g_autoptr(SsiMsgOut) out = ssi_out_new(SSI_HEARTBEAT);
    g_autoptr(SsiMsgOut) empty = ssi_out_new(SSI_HEARTBEAT);
    g_autoptr(SsiMsgOut) full = ssi_out_new(SSI_HEARTBEAT);
    g_autofree guint8 *max = g_malloc0(4 * SSI_GPIDS_MAX);
    g_autoptr(SsiMsg) m = NULL;
    g_autoptr(SsiMsg) me = NULL;
    g_autoptr(SsiMsg) mf = NULL;
    g_autoptr(GArray) g = NULL;
    g_autoptr(GArray) ge = NULL;
    g_autoptr(GArray) gf = NULL;
    g_autoptr(GError) error = NULL;

    ssi_out_bytes(out, SSI_F_GPIDS, two, sizeof(two));
    m = roundtrip(out);
    g = ssi_parse_gpids(m, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(g->len, ==, 2);
    g_assert_cmpuint(g_array_index(g, guint32, 0), ==, 0x1001);
    g_assert_cmpuint(g_array_index(g, guint32, 1), ==, 0xfffffffe);

    /* No process runs there. */
    ssi_out_bytes(empty, SSI_F_GPIDS, NULL, 0);
    me = roundtrip(empty);
    ge = ssi_parse_gpids(me, NULL);
    g_assert_nonnull(ge);
    g_assert_cmpuint(ge->len, ==, 0);

    ssi_out_bytes(full, SSI_F_GPIDS, max, 4 * SSI_GPIDS_MAX);
    mf = roundtrip(full);
    gf = ssi_parse_gpids(mf, NULL);
    g_assert_nonnull(gf);
    g_assert_cmpuint(gf->len, ==, SSI_GPIDS_MAX);
}

static void
test_gpids_refused(void)
{
    g_autoptr(SsiMsgOut) absent = ssi_out_new(SSI_HEARTBEAT);
    g_autoptr(SsiMsgOut) odd = ssi_out_new(SSI_HEARTBEAT);
    g_autoptr(SsiMsgOut) big = ssi_out_new(SSI_HEARTBEAT);
    g_autofree guint8 *over = g_malloc0(4 * (SSI_GPIDS_MAX + 1));
    g_autoptr(SsiMsg) ma = NULL;
    g_autoptr(SsiMsg) mo = NULL;
    g_autoptr(SsiMsg) mb = NULL;
    g_autoptr(GError) e1 = NULL;
    g_autoptr(GError) e2 = NULL;
    g_autoptr(GError) e3 = NULL;

    ma = roundtrip(absent);
    g_assert_null(ssi_parse_gpids(ma, &e1));
    g_assert_error(e1, VC_ERROR, VC_ERROR_INVALID);
    ssi_out_bytes(odd, SSI_F_GPIDS, "\0\0\x10\x01\0", 5);
    mo = roundtrip(odd);
    g_assert_null(ssi_parse_gpids(mo, &e2));
    g_assert_error(e2, VC_ERROR, VC_ERROR_INVALID);
    ssi_out_bytes(big, SSI_F_GPIDS, over, 4 * (SSI_GPIDS_MAX + 1));
    mb = roundtrip(big);
    g_assert_null(ssi_parse_gpids(mb, &e3));
    g_assert_error(e3, VC_ERROR, VC_ERROR_TOO_LARGE);
}

static SsiMsgOut *
image_msg(gboolean args, guint inodes, gboolean data)
{
    SsiMsgOut *m = ssi_out_new(SSI_IMAGE);

    ssi_out_u32(m, SSI_F_GPID, 0x1001);
    ssi_out_u32(m, SSI_F_LAUNCHER, 2);
    if (args) {
        ssi_out_str(m, SSI_F_ARG, "sleep");
        ssi_out_str(m, SSI_F_ARG, "100");
    }
    for (guint i = 0; i < inodes; i++) {
        ssi_out_u64(m, SSI_F_INODE, 1001 + i);
    }
    if (data) {
        ssi_out_bytes(m, SSI_F_DATA, "typed\n", 6);
    }
    return m;
}

static void
meta_bad(SsiMsgOut *out, const char *what)
{
    g_autoptr(SsiMsg) m = roundtrip(out);
    g_autoptr(GError) error = NULL;
    g_auto(SsiProcMeta) meta = {0};

    g_assert_false(ssi_parse_proc_meta(m, &meta, &error));
    g_assert_error(error, VC_ERROR, VC_ERROR_INVALID);
    g_assert_nonnull(strstr(error->message, what));
    g_assert_null(meta.argv);
    g_assert_null(meta.stdin_pending);
}

static void
test_proc_meta(void)
{
    g_autoptr(SsiMsgOut) out = image_msg(TRUE, 3, TRUE);
    g_autoptr(SsiMsgOut) nodata = image_msg(TRUE, 3, FALSE);
    g_autoptr(SsiMsg) m = roundtrip(out);
    g_autoptr(SsiMsg) mn = roundtrip(nodata);
    g_autoptr(GError) error = NULL;
    g_auto(SsiProcMeta) meta = {0};
    g_auto(SsiProcMeta) meta2 = {0};

    g_assert_true(ssi_parse_proc_meta(m, &meta, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(meta.gpid, ==, 0x1001);
    g_assert_cmpuint(meta.launcher, ==, 2);
    g_assert_cmpuint(g_strv_length(meta.argv), ==, 2);
    g_assert_cmpstr(meta.argv[1], ==, "100");
    g_assert_cmpuint(meta.inode[0], ==, 1001);
    g_assert_cmpuint(meta.inode[2], ==, 1003);
    g_assert_cmpmem(meta.stdin_pending->data, meta.stdin_pending->len,
                    "typed\n", 6);

    g_assert_cmpuint(meta.inner, ==, 0x1001);
    g_assert_false(meta.fork);
    g_assert_false(meta.stdin_eof);

    /* No stdin pending: an empty buffer, not none. */
    g_assert_true(ssi_parse_proc_meta(mn, &meta2, NULL));
    g_assert_nonnull(meta2.stdin_pending);
    g_assert_cmpuint(meta2.stdin_pending->len, ==, 0);
}

/* A distant fork's image: the child's PID and the flags. */
static void
test_proc_meta_fork(void)
{
    g_autoptr(SsiMsgOut) out = image_msg(TRUE, 3, FALSE);
    g_autoptr(SsiMsgOut) low = image_msg(TRUE, 3, FALSE);
    g_autoptr(SsiMsgOut) high = image_msg(TRUE, 3, FALSE);
    g_autoptr(SsiMsgOut) wide = image_msg(TRUE, 3, FALSE);
    g_autoptr(SsiMsg) m = NULL;
    g_auto(SsiProcMeta) meta = {0};

    ssi_out_u32(out, SSI_F_FLAGS, SSI_FLAG_FORK | SSI_FLAG_STDIN_EOF);
    ssi_out_u32(out, SSI_F_PID, 4242);
    m = roundtrip(out);
    g_assert_true(ssi_parse_proc_meta(m, &meta, NULL));
    g_assert_cmpuint(meta.inner, ==, 4242);
    g_assert_true(meta.fork);
    g_assert_true(meta.stdin_eof);
    ssi_out_u32(low, SSI_F_PID, 1);
    meta_bad(low, "bad PID");
    ssi_out_u32(high, SSI_F_PID, 4194304);
    meta_bad(high, "bad PID");
    ssi_out_u64(wide, SSI_F_PID, 4242);
    meta_bad(wide, "bad PID");
}

static void
test_proc_meta_refused(void)
{
    g_autoptr(SsiMsgOut) noargs = image_msg(FALSE, 3, FALSE);
    g_autoptr(SsiMsgOut) two = image_msg(TRUE, 2, FALSE);
    g_autoptr(SsiMsgOut) four = image_msg(TRUE, 4, FALSE);
    g_autoptr(SsiMsgOut) nogpid = ssi_out_new(SSI_IMAGE);
    g_autoptr(SsiMsgOut) nolauncher = ssi_out_new(SSI_IMAGE);
    g_autoptr(SsiMsgOut) badarg = image_msg(TRUE, 3, FALSE);
    g_autoptr(SsiMsgOut) badinode = image_msg(TRUE, 2, FALSE);

    meta_bad(noargs, "process record");
    meta_bad(two, "process record");
    meta_bad(four, "process record");
    ssi_out_u32(nogpid, SSI_F_LAUNCHER, 1);
    ssi_out_str(nogpid, SSI_F_ARG, "sleep");
    for (int i = 0; i < 3; i++) {
        ssi_out_u64(nogpid, SSI_F_INODE, i);
    }
    meta_bad(nogpid, "process record");
    ssi_out_u32(nolauncher, SSI_F_GPID, 1);
    ssi_out_str(nolauncher, SSI_F_ARG, "sleep");
    for (int i = 0; i < 3; i++) {
        ssi_out_u64(nolauncher, SSI_F_INODE, i);
    }
    meta_bad(nolauncher, "process record");
    /* An argument that is not UTF-8. */
    ssi_out_bytes(badarg, SSI_F_ARG, "\xff", 1);
    meta_bad(badarg, "process record");
    ssi_out_u32(badinode, SSI_F_INODE, 3);
    meta_bad(badinode, "pipe inode");
}

static SsiMsgOut *
file_msg(const char *name, const char *path)
{
    SsiMsgOut *m = ssi_out_new(SSI_FILE);

    if (name) {
        ssi_out_str(m, SSI_F_NAME, name);
    }
    if (path) {
        ssi_out_str(m, SSI_F_PATH, path);
    }
    ssi_out_u64(m, SSI_F_OFFSET, 4096);
    ssi_out_bytes(m, SSI_F_DATA, "abc", 3);
    return m;
}

static void
file_bad(SsiMsgOut *out)
{
    g_autoptr(SsiMsg) m = roundtrip(out);
    g_autoptr(GError) error = NULL;
    g_auto(SsiFileChunk) f = {0};

    g_assert_false(ssi_parse_file(m, &f, &error));
    g_assert_error(error, VC_ERROR, VC_ERROR_INVALID);
    g_assert_null(f.name);
    g_assert_null(f.path);
    g_assert_null(f.data);
}

static void
test_file(void)
{
    g_autoptr(SsiMsgOut) byname = file_msg("pages-1.img", NULL);
    g_autoptr(SsiMsgOut) bypath = file_msg(NULL, "/tmp/work/out.txt");
    g_autoptr(SsiMsg) m1 = NULL;
    g_autoptr(SsiMsg) m2 = NULL;
    g_auto(SsiFileChunk) f1 = {0};
    g_auto(SsiFileChunk) f2 = {0};
    g_autoptr(GError) error = NULL;

    m1 = roundtrip(byname);
    g_assert_true(ssi_parse_file(m1, &f1, &error));
    g_assert_no_error(error);
    g_assert_cmpstr(f1.name, ==, "pages-1.img");
    g_assert_null(f1.path);
    g_assert_cmpuint(f1.offset, ==, 4096);
    g_assert_cmpmem(f1.data, f1.len, "abc", 3);
    g_assert_cmpuint(f1.mode, ==, 0600);

    /* The mode keeps its permission bits only. */
    ssi_out_u32(bypath, SSI_F_MODE, 04755 | 0170000);
    m2 = roundtrip(bypath);
    g_assert_true(ssi_parse_file(m2, &f2, NULL));
    g_assert_null(f2.name);
    g_assert_cmpstr(f2.path, ==, "/tmp/work/out.txt");
    g_assert_cmpuint(f2.mode, ==, 0755);
}

static void
test_file_refused(void)
{
    g_autofree char *long_name = g_strnfill(SSI_NAME_MAX + 1, 'a');
    g_autofree char *long_path = g_strnfill(SSI_PATH_MAX + 1, 'a');
    const char *names[] = {"", ".hidden", "..", "a/b", "/abs", long_name};
    const char *paths[] = {"relative", "",     "/a/../b", "/a/./b",
                           "/..",      "/a/.", long_path};
    g_autoptr(SsiMsgOut) both = file_msg("a.img", "/tmp/a");
    g_autoptr(SsiMsgOut) neither = file_msg(NULL, NULL);
    g_autoptr(SsiMsgOut) nodata = ssi_out_new(SSI_FILE);
    g_autoptr(SsiMsgOut) nooffset = ssi_out_new(SSI_FILE);
    g_autoptr(SsiMsgOut) wrongtype = file_msg("a.img", NULL);

    long_path[0] = '/';
    for (gsize i = 0; i < G_N_ELEMENTS(names); i++) {
        g_autoptr(SsiMsgOut) m = file_msg(names[i], NULL);

        file_bad(m);
    }
    for (gsize i = 0; i < G_N_ELEMENTS(paths); i++) {
        g_autoptr(SsiMsgOut) m = file_msg(NULL, paths[i]);

        file_bad(m);
    }
    file_bad(both);
    file_bad(neither);
    ssi_out_str(nodata, SSI_F_NAME, "a.img");
    ssi_out_u64(nodata, SSI_F_OFFSET, 0);
    file_bad(nodata);
    ssi_out_str(nooffset, SSI_F_NAME, "a.img");
    ssi_out_bytes(nooffset, SSI_F_DATA, "", 0);
    file_bad(nooffset);
    wrongtype->hdr.type = SSI_IMAGE;
    file_bad(wrongtype);
}

static void
test_path_ok(void)
{
    g_autofree char *max = g_strnfill(SSI_PATH_MAX, 'a');

    max[0] = '/';
    g_assert_true(ssi_parse_path_ok("/"));
    g_assert_true(ssi_parse_path_ok("/a//b/"));
    g_assert_true(ssi_parse_path_ok("/a/..b/.c/..."));
    g_assert_true(ssi_parse_path_ok(max));
    g_assert_false(ssi_parse_path_ok(""));
    g_assert_false(ssi_parse_path_ok("a/b"));
    g_assert_false(ssi_parse_path_ok("/a/.."));
    g_assert_false(ssi_parse_path_ok("/./a"));
}

static void
test_exec(void)
{
    g_autoptr(SsiMsgOut) out = ssi_out_new(SSI_EXEC);
    g_autoptr(SsiMsgOut) noarg = ssi_out_new(SSI_EXEC);
    g_autoptr(SsiMsgOut) nolauncher = ssi_out_new(SSI_EXEC);
    g_autoptr(SsiMsgOut) nogpid = ssi_out_new(SSI_EXEC);
    g_autoptr(SsiMsg) m = NULL;
    g_autoptr(SsiMsg) m1 = NULL;
    g_autoptr(SsiMsg) m2 = NULL;
    g_autoptr(SsiMsg) m3 = NULL;
    g_autoptr(GError) error = NULL;
    g_autoptr(GError) e1 = NULL;
    g_auto(SsiExecRequest) req = {0};
    g_auto(SsiExecRequest) bad = {0};

    ssi_out_u32(out, SSI_F_GPID, 0x1001);
    ssi_out_u32(out, SSI_F_LAUNCHER, 1);
    ssi_out_str(out, SSI_F_ARG, "/bin/sh");
    ssi_out_str(out, SSI_F_ARG, "");
    m = roundtrip(out);
    g_assert_true(ssi_parse_exec(m, &req, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(req.gpid, ==, 0x1001);
    g_assert_cmpuint(req.launcher, ==, 1);
    g_assert_cmpuint(g_strv_length(req.argv), ==, 2);
    g_assert_cmpstr(req.argv[1], ==, "");

    ssi_out_u32(noarg, SSI_F_GPID, 1);
    ssi_out_u32(noarg, SSI_F_LAUNCHER, 1);
    m1 = roundtrip(noarg);
    g_assert_false(ssi_parse_exec(m1, &bad, &e1));
    g_assert_error(e1, VC_ERROR, VC_ERROR_INVALID);
    g_assert_null(bad.argv);
    ssi_out_u32(nolauncher, SSI_F_GPID, 1);
    ssi_out_str(nolauncher, SSI_F_ARG, "true");
    m2 = roundtrip(nolauncher);
    g_assert_false(ssi_parse_exec(m2, &bad, NULL));
    g_assert_null(bad.argv);
    ssi_out_u32(nogpid, SSI_F_LAUNCHER, 1);
    ssi_out_str(nogpid, SSI_F_ARG, "true");
    m3 = roundtrip(nogpid);
    g_assert_false(ssi_parse_exec(m3, &bad, NULL));
    g_assert_null(bad.argv);
}

static void
test_kill_migrate(void)
{
    g_autoptr(SsiMsgOut) kill = ssi_out_new(SSI_KILL);
    g_autoptr(SsiMsgOut) kill65 = ssi_out_new(SSI_KILL);
    g_autoptr(SsiMsgOut) nosig = ssi_out_new(SSI_KILL);
    g_autoptr(SsiMsgOut) mig = ssi_out_new(SSI_MIGRATE);
    g_autoptr(SsiMsgOut) nonode = ssi_out_new(SSI_MIGRATE);
    g_autoptr(SsiMsg) m = NULL;
    g_autoptr(GError) error = NULL;
    guint32 gpid = 0, v = 0;

    ssi_out_u32(kill, SSI_F_GPID, 0x1001);
    ssi_out_u32(kill, SSI_F_SIGNAL, 64);
    m = roundtrip(kill);
    g_assert_true(ssi_parse_kill(m, &gpid, &v, NULL));
    g_assert_cmpuint(gpid, ==, 0x1001);
    g_assert_cmpuint(v, ==, 64);
    g_clear_pointer(&m, ssi_msg_free);

    ssi_out_u32(kill65, SSI_F_GPID, 0x1001);
    ssi_out_u32(kill65, SSI_F_SIGNAL, 65);
    m = roundtrip(kill65);
    g_assert_false(ssi_parse_kill(m, &gpid, &v, &error));
    g_assert_error(error, VC_ERROR, VC_ERROR_INVALID);
    g_clear_error(&error);
    g_clear_pointer(&m, ssi_msg_free);

    ssi_out_u32(nosig, SSI_F_GPID, 0x1001);
    m = roundtrip(nosig);
    g_assert_false(ssi_parse_kill(m, &gpid, &v, NULL));
    g_clear_pointer(&m, ssi_msg_free);

    ssi_out_u32(mig, SSI_F_GPID, 0x1002);
    ssi_out_u32(mig, SSI_F_NODE, 3);
    m = roundtrip(mig);
    g_assert_true(ssi_parse_migrate(m, &gpid, &v, NULL));
    g_assert_cmpuint(gpid, ==, 0x1002);
    g_assert_cmpuint(v, ==, 3);
    g_clear_pointer(&m, ssi_msg_free);

    ssi_out_u32(nonode, SSI_F_GPID, 0x1002);
    m = roundtrip(nonode);
    g_assert_false(ssi_parse_migrate(m, &gpid, &v, &error));
    g_assert_error(error, VC_ERROR, VC_ERROR_INVALID);
}

static void
test_sched(void)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *text = NULL;
    g_autofree char *big = NULL;
    SsiSched s, back;
    const char *bad[] = {
        "policies=cpu,nosuch", "policies=cpu,cpu", "threshold=0",
        "residence=3601",      "budget=x",         "period=0",
        "mem_high=1001",       "together=1,,2",    "together=1/1",
        "comm_high=0",
        "together=1//2",       "together=/1",      "together=4194304",
        "frobnicate=1",        "threshold",        "threshold=2  budget=3",
    };

    ssi_sched_init(&s);
    text = ssi_sched_format(&s);
    g_assert_cmpstr(text, ==,
                    "policies=none threshold=2 residence=5 budget=12 "
                    "period=10 mem_high=850 comm_high=64 together=");
    g_clear_pointer(&text, g_free);
    g_assert_true(ssi_sched_parse(
        "policies=together,cpu threshold=3 together=7,8/9", &s, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(s.n_policies, ==, 2);
    g_assert_cmpstr(s.policies[0], ==, "together");
    g_assert_cmpuint(s.threshold, ==, 3);
    g_assert_cmpuint(s.budget, ==, 12);
    g_assert_cmpint(ssi_sched_group_of(&s, 8), ==, 0);
    g_assert_cmpint(ssi_sched_group_of(&s, 9), ==, 1);
    g_assert_cmpint(ssi_sched_group_of(&s, 10), ==, -1);
    text = ssi_sched_format(&s);
    g_assert_true(ssi_sched_parse(text, &back, &error));
    g_assert_no_error(error);
    g_assert_cmpmem(&s, sizeof(s), &back, sizeof(back));
    /* A key set twice: the last one, as if set once. */
    g_assert_true(ssi_sched_parse("policies=together,cpu threshold=3 "
                                  "together=1,2,3/4 policies=together "
                                  "together=7,8/9 policies=together,cpu",
                                  &back, &error));
    g_assert_no_error(error);
    g_assert_cmpmem(&s, sizeof(s), &back, sizeof(back));
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_assert_false(ssi_sched_parse(bad[i], &back, &error));
        g_assert_nonnull(error);
        g_clear_error(&error);
        /* Unchanged on error. */
        g_assert_cmpmem(&s, sizeof(s), &back, sizeof(back));
    }
    g_assert_false(
        ssi_sched_set(&back, "policies", "a,b,c,d,e,f,g,h,i", &error));
    g_clear_error(&error);
    big = g_strnfill(SSI_SCHED_TEXT_MAX + 1, 'x');
    g_assert_false(ssi_sched_parse(big, &back, &error));
    g_clear_error(&error);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/ssi-parse/view", test_view);
    g_test_add_func("/ssi-parse/view-refused", test_view_refused);
    g_test_add_func("/ssi-parse/gpids", test_gpids);
    g_test_add_func("/ssi-parse/gpids-refused", test_gpids_refused);
    g_test_add_func("/ssi-parse/proc-meta", test_proc_meta);
    g_test_add_func("/ssi-parse/proc-meta-refused", test_proc_meta_refused);
    g_test_add_func("/ssi-parse/proc-meta-fork", test_proc_meta_fork);
    g_test_add_func("/ssi-parse/file", test_file);
    g_test_add_func("/ssi-parse/file-refused", test_file_refused);
    g_test_add_func("/ssi-parse/path-ok", test_path_ok);
    g_test_add_func("/ssi-parse/exec", test_exec);
    g_test_add_func("/ssi-parse/kill-migrate", test_kill_migrate);
    g_test_add_func("/ssi-parse/sched", test_sched);
    return g_test_run();
}
