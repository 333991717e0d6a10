/*
 * Writes the seeds of fuzz-ssi (README.md) into DIR/corpus: one message
 * of each type as ssid builds it, without a MAC (the harness appends one),
 * a HEARTBEAT datagram MACed with the harness's key, and a framed ATTACH
 * stream as a member's connection carries it.
 *
 *   ssi-gen-corpus DIR
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz-ssi.h"
#include "vc-frame.h"

static char *arg_dir;

static void
write_seed(const char *name, const guint8 *data, gsize len)
{
    g_autofree char *path = g_build_filename(arg_dir, "corpus", name, NULL);
    g_autoptr(GError) error = NULL;

    if (!g_file_set_contents(path, (const char *)data, (gssize)len, &error)) {
        g_printerr("%s\n", error->message);
        exit(1);
    }
}

static GBytes *
encode(SsiMsgOut *m, const guint8 *key, const guint8 *nonce, guint64 seq)
{
    m->hdr.cluster = ssi_cluster_id(FUZZ_SSI_CLUSTER);
    m->hdr.node = 2;
    m->hdr.incarnation = 1765000000000;
    m->hdr.seq = seq;
    m->hdr.time_ms = 1765000000000 + seq * 200;
    return ssi_out_encode(m, key, nonce, NULL);
}

/* A message without a MAC, named after its type. */
static void
seed(SsiMsgOut *m, const char *suffix)
{
    g_autoptr(GBytes) b = encode(m, NULL, NULL, 7);
    g_autofree char *name = g_ascii_strdown(ssi_type_name(m->hdr.type), -1);
    g_autofree char *full = g_strconcat(name, suffix, NULL);

    write_seed(full, g_bytes_get_data(b, NULL), g_bytes_get_size(b));
}

static SsiMsgOut *
msg_gpid(SsiType type, guint32 gpid)
{
    SsiMsgOut *m = ssi_out_new(type);

    ssi_out_u32(m, SSI_F_GPID, gpid);
    return m;
}

static void
member(SsiMsgOut *m, guint32 id, guint32 addr, guint8 state)
{
    guint8 b[9] = {id >> 24,   id >> 16,  id >> 8, id,   addr >> 24,
                   addr >> 16, addr >> 8, addr,    state};

    ssi_out_bytes(m, SSI_F_MEMBER, b, sizeof(b));
}

static void
datagrams(void)
{
    g_autoptr(SsiMsgOut) hb = ssi_out_new(SSI_HEARTBEAT);
    g_autoptr(SsiMsgOut) view = ssi_out_new(SSI_HEARTBEAT);
    g_autoptr(SsiMsgOut) join = ssi_out_new(SSI_JOIN);
    g_autoptr(SsiMsgOut) invite = ssi_out_new(SSI_INVITE);
    g_autoptr(SsiMsgOut) leave = ssi_out_new(SSI_LEAVE);
    g_autoptr(SsiMsgOut) sched = ssi_out_new(SSI_HEARTBEAT);
    g_autoptr(SsiMsgOut) sched_req = ssi_out_new(SSI_SCHED);
    g_autoptr(GBytes) mac = NULL;
    const guint8 gpids[8] = {0, 0, 0x10, 1, 0, 0, 0x10, 2};

    ssi_out_u32(hb, SSI_F_LOAD, 1500);
    ssi_out_u64(hb, SSI_F_MEMFREE, 200000);
    ssi_out_bytes(hb, SSI_F_GPIDS, gpids, sizeof(gpids));
    ssi_out_u64(hb, SSI_F_EPOCH, 3);
    seed(hb, "");
    mac = encode(hb, fuzz_ssi_key, NULL, 8);
    write_seed("heartbeat-mac", g_bytes_get_data(mac, NULL),
               g_bytes_get_size(mac));

    ssi_out_u64(view, SSI_F_EPOCH, 4);
    ssi_out_u32(view, SSI_F_NEXT_ID, 4);
    member(view, 1, 0x0a000201, 1);
    member(view, 2, 0x0a000202, 1);
    member(view, 3, 0x0a000203, 1);
    seed(view, "-view");

    /* The scheduler's: BUSY, SCHED and its version. */
    ssi_out_bytes(sched, SSI_F_GPIDS, gpids, sizeof(gpids));
    ssi_out_bytes(sched, SSI_F_BUSY, gpids, 4);
    ssi_out_u64(sched, SSI_F_EPOCH, 3);
    ssi_out_str(sched, SSI_F_SCHED,
                "policies=cpu,together threshold=2 residence=5 budget=12 "
                "period=10 mem_high=850 together=4097,4098/4099");
    ssi_out_u64(sched, SSI_F_SCHED_VER, 1796580000000);
    seed(sched, "-sched");
    ssi_out_str(sched_req, SSI_F_NAME, "set");
    ssi_out_str(sched_req, SSI_F_ARG, "threshold=3");
    ssi_out_str(sched_req, SSI_F_ARG, "together=1,2/3");
    seed(sched_req, "");

    ssi_out_str(join, SSI_F_ADDR, "10.0.2.15");
    seed(join, "");
    ssi_out_str(invite, SSI_F_ADDR, "10.0.2.16");
    seed(invite, "");
    seed(leave, "");
}

static void
requests(void)
{
    g_autoptr(SsiMsgOut) hello = ssi_out_new(SSI_HELLO);
    g_autoptr(SsiMsgOut) ok = ssi_out_new(SSI_OK);
    g_autoptr(SsiMsgOut) fail = ssi_out_new(SSI_FAIL);
    g_autoptr(SsiMsgOut) exec = msg_gpid(SSI_EXEC, 0x1001);
    g_autoptr(SsiMsgOut) attach = msg_gpid(SSI_ATTACH, 0x1001);
    g_autoptr(SsiMsgOut) out = msg_gpid(SSI_OUT, 0x1001);
    g_autoptr(SsiMsgOut) err = msg_gpid(SSI_ERRDATA, 0x1001);
    g_autoptr(SsiMsgOut) in = msg_gpid(SSI_IN, 0x1001);
    g_autoptr(SsiMsgOut) in_eof = msg_gpid(SSI_IN_EOF, 0x1001);
    g_autoptr(SsiMsgOut) sig = msg_gpid(SSI_SIGNAL, 0x1001);
    g_autoptr(SsiMsgOut) exit_ = msg_gpid(SSI_EXIT, 0x1001);
    g_autoptr(SsiMsgOut) detach = msg_gpid(SSI_DETACH, 0x1001);
    g_autoptr(SsiMsgOut) kill = msg_gpid(SSI_KILL, 0x1001);
    g_autoptr(SsiMsgOut) ps = ssi_out_new(SSI_PS);
    g_autoptr(SsiMsgOut) ps_ok = ssi_out_new(SSI_OK);
    g_autoptr(SsiMsgOut) mig = msg_gpid(SSI_MIGRATE, 0x1001);
    g_autoptr(SsiMsgOut) image = msg_gpid(SSI_IMAGE, 0x1001);
    g_autoptr(SsiMsgOut) file = ssi_out_new(SSI_FILE);
    g_autoptr(SsiMsgOut) file_path = ssi_out_new(SSI_FILE);
    g_autoptr(SsiMsgOut) end = ssi_out_new(SSI_END);
    g_autoptr(SsiMsgOut) ckpt = msg_gpid(SSI_CHECKPOINT, 0x1001);
    g_autoptr(SsiMsgOut) evict = ssi_out_new(SSI_EVICT);
    g_autoptr(SsiMsgOut) add = ssi_out_new(SSI_ADD);
    g_autoptr(SsiMsgOut) run = ssi_out_new(SSI_RUN);
    g_autoptr(SsiMsgOut) restart = ssi_out_new(SSI_RESTART);
    g_autoptr(SsiMsgOut) nodes = ssi_out_new(SSI_IN_EOF);
    g_autoptr(SsiMsgOut) policy = ssi_out_new(SSI_POLICY);
    g_autoptr(SsiMsgOut) started = msg_gpid(SSI_STARTED, 0x1001);

    ssi_out_bytes(hello, SSI_F_NONCE, fuzz_ssi_nonce, SSI_NONCE_LEN);
    seed(hello, "");
    ssi_out_u64(ok, SSI_F_USEC, 123456);
    seed(ok, "");
    ssi_out_str(fail, SSI_F_TEXT, "no such process");
    seed(fail, "");
    ssi_out_u32(exec, SSI_F_LAUNCHER, 1);
    ssi_out_str(exec, SSI_F_ARG, "/bin/sh");
    ssi_out_str(exec, SSI_F_ARG, "-c");
    ssi_out_str(exec, SSI_F_ARG, "echo \xc3\xa9t\xc3\xa9");
    seed(exec, "");
    seed(attach, "");
    ssi_out_bytes(out, SSI_F_DATA, "hello\n", 6);
    seed(out, "");
    ssi_out_bytes(err, SSI_F_DATA, "oops\n", 5);
    seed(err, "");
    ssi_out_bytes(in, SSI_F_DATA, "input\n", 6);
    seed(in, "");
    seed(in_eof, "");
    ssi_out_u32(sig, SSI_F_SIGNAL, 15);
    seed(sig, "");
    ssi_out_u32(exit_, SSI_F_STATUS, 143);
    ssi_out_str(exit_, SSI_F_TEXT, "killed");
    seed(exit_, "");
    seed(detach, "");
    ssi_out_u32(kill, SSI_F_SIGNAL, 9);
    seed(kill, "");
    ssi_out_u32(ps, SSI_F_FLAGS, SSI_FLAG_ALL);
    seed(ps, "");
    ssi_out_str(ps_ok, SSI_F_ROW, "4097 1 2 R /bin/sh");
    ssi_out_str(ps_ok, SSI_F_ROW, "4098 1 3 S sleep 100");
    seed(ps_ok, "-ps");
    ssi_out_u32(mig, SSI_F_NODE, 3);
    seed(mig, "");
    ssi_out_u32(image, SSI_F_LAUNCHER, 1);
    ssi_out_str(image, SSI_F_ARG, "sleep");
    ssi_out_str(image, SSI_F_ARG, "100");
    ssi_out_u64(image, SSI_F_INODE, 1001);
    ssi_out_u64(image, SSI_F_INODE, 1002);
    ssi_out_u64(image, SSI_F_INODE, 1003);
    seed(image, "");
    /* A distant fork's image. */
    ssi_out_u32(image, SSI_F_FLAGS, SSI_FLAG_FORK | SSI_FLAG_STDIN_EOF);
    ssi_out_u32(image, SSI_F_PID, 4242);
    seed(image, "-fork");
    ssi_out_str(file, SSI_F_NAME, "pages-1.img");
    ssi_out_u32(file, SSI_F_MODE, 0600);
    ssi_out_u64(file, SSI_F_OFFSET, 1048576);
    ssi_out_bytes(file, SSI_F_DATA, "\0\1\2\3\4\5\6\7", 8);
    seed(file, "");
    ssi_out_str(file_path, SSI_F_PATH, "/tmp/ssi/work/out.txt");
    ssi_out_u32(file_path, SSI_F_MODE, 0644);
    ssi_out_u64(file_path, SSI_F_OFFSET, 0);
    ssi_out_bytes(file_path, SSI_F_DATA, "", 0);
    seed(file_path, "-path");
    seed(end, "");
    ssi_out_str(ckpt, SSI_F_PATH, "/var/lib/ssi/ckpt");
    seed(ckpt, "");
    ssi_out_u32(evict, SSI_F_NODE, 2);
    seed(evict, "");
    ssi_out_str(add, SSI_F_ADDR, "10.0.2.17");
    seed(add, "");
    ssi_out_str(run, SSI_F_ARG, "make");
    ssi_out_str(run, SSI_F_ARG, "-j4");
    ssi_out_u32(run, SSI_F_NODE, 0);
    ssi_out_str(run, SSI_F_PATH, "/home/user/src");
    seed(run, "");
    ssi_out_str(restart, SSI_F_PATH, "/var/lib/ssi/ckpt/4097");
    seed(restart, "");
    seed(nodes, "");
    ssi_out_str(policy, SSI_F_NAME, "leastload");
    seed(policy, "");
    ssi_out_u32(started, SSI_F_NODE, 3);
    seed(started, "");
}

/* An ATTACH stream as the launcher receives it on a member connection:
 * frames MACed with the receiver's nonce, seq counting up from 2 (1 was
 * HELLO). */
static void
stream(void)
{
    g_autoptr(GByteArray) s = g_byte_array_new();
    SsiType types[] = {SSI_OK, SSI_OUT, SSI_ERRDATA, SSI_EXIT};

    for (guint i = 0; i < G_N_ELEMENTS(types); i++) {
        g_autoptr(SsiMsgOut) m = msg_gpid(types[i], 0x1001);
        g_autoptr(GBytes) b = NULL;

        if (types[i] == SSI_OUT || types[i] == SSI_ERRDATA) {
            ssi_out_bytes(m, SSI_F_DATA, "line\n", 5);
        } else if (types[i] == SSI_EXIT) {
            ssi_out_u32(m, SSI_F_STATUS, 0);
        }
        b = encode(m, fuzz_ssi_key, fuzz_ssi_nonce, i + 2);
        vc_frame_append(s, g_bytes_get_data(b, NULL), g_bytes_get_size(b));
    }
    write_seed("attach-stream", s->data, s->len);
}

int
main(int argc, char **argv)
{
    if (argc != 2) {
        g_printerr("usage: ssi-gen-corpus DIR\n");
        return 2;
    }
    arg_dir = argv[1];
    datagrams();
    requests();
    stream();
    return 0;
}
