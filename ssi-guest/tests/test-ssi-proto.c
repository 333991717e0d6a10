/* The SSI codec and connections (ssi-proto.c, ssi-conn.c; docs/protocols.md,
 * "SSI protocol"). */
#include <string.h>
#include <sys/socket.h>

#include "ssi-conn.h"
#include "ssi-proto.h"
#include "vc-error.h"
#include "vc-frame.h"

#define OFF_BODY_LEN 40

static const guint8 key[SSI_KEY_LEN] = {
    1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
    17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
};
static const guint8 nonce[SSI_NONCE_LEN] = {
    0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
    0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
};
#define CLUSTER G_GUINT64_CONSTANT(0x0123456789abcdef)

/* A message holding every kind of field, a repeated one, an empty one. */
static SsiMsgOut *
sample(void)
{
    SsiMsgOut *m = ssi_out_new(SSI_EXEC);

    m->hdr.flags = 0x5a;
    m->hdr.node = 63;
    m->hdr.cluster = CLUSTER;
    m->hdr.incarnation = G_GUINT64_CONSTANT(0xfedcba9876543210);
    m->hdr.seq = 42;
    m->hdr.time_ms = G_GUINT64_CONSTANT(1765000000123);
    ssi_out_u32(m, SSI_F_GPID, 0xdeadbeef);
    ssi_out_u64(m, SSI_F_MEMFREE, G_GUINT64_CONSTANT(0x1122334455667788));
    ssi_out_str(m, SSI_F_ARG, "/bin/echo");
    ssi_out_str(m, SSI_F_ARG, "");
    ssi_out_str(m, SSI_F_ARG, "\xc3\xa9t\xc3\xa9");
    ssi_out_bytes(m, SSI_F_DATA, "\0\1\2\377", 4);
    ssi_out_bytes(m, SSI_F_GPIDS, NULL, 0);
    return m;
}

static GBytes *
encode_ok(SsiMsgOut *m, const guint8 *k, const guint8 *n)
{
    g_autoptr(GError) error = NULL;
    GBytes *b = ssi_out_encode(m, k, n, &error);

    g_assert_no_error(error);
    g_assert_nonnull(b);
    return b;
}

static SsiMsg *
decode_ok(GBytes *b, const guint8 *k, guint64 cluster, const guint8 *n)
{
    g_autoptr(GError) error = NULL;
    SsiMsg *m = ssi_msg_decode(b, k, cluster, n, &error);

    g_assert_no_error(error);
    g_assert_nonnull(m);
    return m;
}

static void
decode_bad(GBytes *b, const guint8 *k, guint64 cluster, const guint8 *n,
           const char *what)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(SsiMsg) m = ssi_msg_decode(b, k, cluster, n, &error);

    g_assert_null(m);
    g_assert_error(error, VC_ERROR, VC_ERROR_INVALID);
    if (what) {
        g_assert_nonnull(strstr(error->message, what));
    }
}

/* The first @len bytes of @b (zero-padded), bit @flip_bit flipped. */
static GBytes *
edited(GBytes *b, gsize len, gsize flip_bit)
{
    gsize n;
    const guint8 *d = g_bytes_get_data(b, &n);
    g_autofree guint8 *c = g_malloc0(MAX(len, 1));

    memcpy(c, d, MIN(n, len));
    if (flip_bit / 8 < len) {
        c[flip_bit / 8] ^= 1u << (flip_bit % 8);
    }
    return g_bytes_new(c, len);
}

static void
check_sample(const SsiMsg *m)
{
    guint32 v32 = 0;
    guint64 v64 = 0;
    gsize len = 99;
    const guint8 *d;
    g_autofree char *s = NULL;
    g_auto(GStrv) argv = NULL;

    g_assert_cmpuint(m->hdr.type, ==, SSI_EXEC);
    g_assert_cmpstr(ssi_type_name(m->hdr.type), ==, "EXEC");
    g_assert_cmpuint(m->hdr.flags, ==, 0x5a);
    g_assert_cmpuint(m->hdr.node, ==, 63);
    g_assert_cmpuint(m->hdr.cluster, ==, CLUSTER);
    g_assert_cmpuint(m->hdr.incarnation, ==,
                     G_GUINT64_CONSTANT(0xfedcba9876543210));
    g_assert_cmpuint(m->hdr.seq, ==, 42);
    g_assert_cmpuint(m->hdr.time_ms, ==, G_GUINT64_CONSTANT(1765000000123));
    g_assert_cmpuint(m->fields->len, ==, 7);

    g_assert_true(ssi_msg_u32(m, SSI_F_GPID, &v32));
    g_assert_cmphex(v32, ==, 0xdeadbeef);
    g_assert_true(ssi_msg_u64(m, SSI_F_MEMFREE, &v64));
    g_assert_cmphex(v64, ==, G_GUINT64_CONSTANT(0x1122334455667788));
    /* The wrong width is "absent", and so is a missing field. */
    g_assert_false(ssi_msg_u64(m, SSI_F_GPID, &v64));
    g_assert_false(ssi_msg_u32(m, SSI_F_MEMFREE, &v32));
    g_assert_false(ssi_msg_u32(m, SSI_F_NODE, &v32));

    s = ssi_msg_str(m, SSI_F_ARG, 64);
    g_assert_cmpstr(s, ==, "/bin/echo");
    g_assert_cmpuint(ssi_msg_count(m, SSI_F_ARG), ==, 3);
    g_assert_cmpuint(ssi_msg_nth(m, SSI_F_ARG, 1)->len, ==, 0);
    g_assert_cmpuint(ssi_msg_nth(m, SSI_F_ARG, 2)->len, ==, 5);
    g_assert_null(ssi_msg_nth(m, SSI_F_ARG, 3));
    argv = ssi_msg_strv(m, SSI_F_ARG, 3, 64);
    g_assert_nonnull(argv);
    g_assert_cmpuint(g_strv_length(argv), ==, 3);
    g_assert_cmpstr(argv[0], ==, "/bin/echo");
    g_assert_cmpstr(argv[1], ==, "");
    g_assert_cmpstr(argv[2], ==, "\xc3\xa9t\xc3\xa9");

    d = ssi_msg_bytes(m, SSI_F_DATA, &len);
    g_assert_cmpmem(d, len, "\0\1\2\377", 4);
    /* An empty field is present, with length 0. */
    d = ssi_msg_bytes(m, SSI_F_GPIDS, &len);
    g_assert_nonnull(d);
    g_assert_cmpuint(len, ==, 0);
    g_assert_null(ssi_msg_bytes(m, SSI_F_TEXT, &len));
    g_assert_cmpuint(ssi_msg_count(m, SSI_F_TEXT), ==, 0);
}

static void
test_roundtrip(void)
{
    g_autoptr(SsiMsgOut) out = sample();
    g_autoptr(GBytes) plain = encode_ok(out, NULL, NULL);
    g_autoptr(GBytes) dgram = encode_ok(out, key, NULL);
    g_autoptr(GBytes) frame = encode_ok(out, key, nonce);
    g_autoptr(SsiMsg) m1 = decode_ok(plain, NULL, 0, NULL);
    g_autoptr(SsiMsg) m2 = decode_ok(dgram, key, CLUSTER, NULL);
    g_autoptr(SsiMsg) m3 = decode_ok(frame, key, CLUSTER, nonce);

    g_assert_cmpuint(g_bytes_get_size(plain), ==,
                     SSI_HEADER_LEN + out->body->len);
    g_assert_cmpuint(g_bytes_get_size(frame), ==,
                     SSI_HEADER_LEN + out->body->len + SSI_MAC_LEN);
    g_assert_cmpmem(g_bytes_get_data(plain, NULL), 4, "SSI\1", 4);
    check_sample(m1);
    check_sample(m2);
    check_sample(m3);
    g_assert_cmpstr(ssi_type_name(0), ==, "unknown");
    g_assert_cmpstr(ssi_type_name(255), ==, "unknown");
}

/* Messages without fields (END, LEAVE, IN_EOF) are the header alone. */
static void
test_empty_body(void)
{
    g_autoptr(SsiMsgOut) end = ssi_out_new(SSI_END);
    g_autoptr(SsiMsgOut) nodes = ssi_out_new(SSI_IN_EOF);
    g_autoptr(GBytes) frame = NULL;
    g_autoptr(GBytes) dgram = NULL;
    g_autoptr(GBytes) plain = NULL;
    g_autoptr(SsiMsg) m1 = NULL;
    g_autoptr(SsiMsg) m2 = NULL;
    g_autoptr(SsiMsg) m3 = NULL;

    end->hdr.cluster = CLUSTER;
    frame = encode_ok(end, key, nonce);
    dgram = encode_ok(end, key, NULL);
    plain = encode_ok(nodes, NULL, NULL);
    g_assert_cmpuint(g_bytes_get_size(frame), ==, 44 + SSI_MAC_LEN);
    g_assert_cmpuint(g_bytes_get_size(plain), ==, 44);
    m1 = decode_ok(frame, key, CLUSTER, nonce);
    m2 = decode_ok(dgram, key, CLUSTER, NULL);
    m3 = decode_ok(plain, NULL, 0, NULL);
    g_assert_cmpuint(m1->hdr.type, ==, SSI_END);
    g_assert_cmpuint(m1->fields->len, ==, 0);
    g_assert_cmpuint(m2->hdr.type, ==, SSI_END);
    g_assert_cmpuint(m3->hdr.type, ==, SSI_IN_EOF);
    g_assert_cmpuint(m3->fields->len, ==, 0);
}

static void
test_mac(void)
{
    g_autoptr(SsiMsgOut) out = sample();
    g_autoptr(GBytes) frame = encode_ok(out, key, nonce);
    g_autoptr(GBytes) dgram = encode_ok(out, key, NULL);
    guint8 other_key[SSI_KEY_LEN];
    guint8 other_nonce[SSI_NONCE_LEN];
    gsize len = g_bytes_get_size(frame);

    memcpy(other_key, key, sizeof(key));
    other_key[31] ^= 0x80;
    memcpy(other_nonce, nonce, sizeof(nonce));
    other_nonce[0] ^= 1;

    decode_bad(frame, other_key, CLUSTER, nonce, "MAC");
    decode_bad(frame, key, CLUSTER, other_nonce, "MAC");
    decode_bad(frame, key, CLUSTER, NULL, "MAC");
    decode_bad(dgram, key, CLUSTER, nonce, "MAC");
    decode_bad(frame, key, CLUSTER + 1, nonce, "another cluster");
    /* Without a key the MAC is trailing bytes the body length refuses. */
    decode_bad(frame, NULL, 0, NULL, "body length");

    /* Any one bit flipped, header, body or MAC, is refused. */
    for (gsize bit = 0; bit < len * 8; bit++) {
        g_autoptr(GBytes) b = edited(frame, len, bit);

        decode_bad(b, key, CLUSTER, nonce, NULL);
    }
}

/* A header announcing another cluster, with a valid MAC: the key holder
 * sent it, but for another cluster. */
static void
test_other_cluster(void)
{
    g_autoptr(SsiMsgOut) out = sample();
    g_autoptr(GBytes) b = NULL;

    out->hdr.cluster = ssi_cluster_id("other");
    b = encode_ok(out, key, nonce);
    decode_bad(b, key, CLUSTER, nonce, "another cluster");
}

static void
test_truncated(void)
{
    g_autoptr(SsiMsgOut) out = sample();
    g_autoptr(GBytes) plain = encode_ok(out, NULL, NULL);
    g_autoptr(GBytes) frame = encode_ok(out, key, nonce);
    g_autoptr(GBytes) longer = NULL;

    for (gsize n = 0; n < g_bytes_get_size(plain); n++) {
        g_autoptr(GBytes) b = edited(plain, n, G_MAXSIZE);

        decode_bad(b, NULL, 0, NULL, NULL);
    }
    for (gsize n = 0; n < g_bytes_get_size(frame); n++) {
        g_autoptr(GBytes) b = edited(frame, n, G_MAXSIZE);

        decode_bad(b, key, CLUSTER, nonce, NULL);
    }
    longer = edited(plain, g_bytes_get_size(plain) + 1, G_MAXSIZE);
    decode_bad(longer, NULL, 0, NULL, "body length");
}

static void
test_body_length(void)
{
    g_autoptr(SsiMsgOut) out = sample();
    g_autoptr(GBytes) plain = encode_ok(out, NULL, NULL);
    gsize len;
    const guint8 *d = g_bytes_get_data(plain, &len);
    g_autofree guint8 *c = g_memdup2(d, len);
    g_autoptr(GBytes) more = NULL;
    g_autoptr(GBytes) less = NULL;
    g_autoptr(GBytes) cut = NULL;

    c[OFF_BODY_LEN + 3]++;
    more = g_bytes_new(c, len);
    decode_bad(more, NULL, 0, NULL, "body length");
    c[OFF_BODY_LEN + 3] -= 2;
    less = g_bytes_new(c, len);
    decode_bad(less, NULL, 0, NULL, "body length");

    /* A body length that matches, but a last field running past it. */
    c[OFF_BODY_LEN + 3]++;
    c[len - 1]++; /* the GPIDS field's length: 0 -> 1 */
    cut = g_bytes_new(c, len);
    decode_bad(cut, NULL, 0, NULL, "truncated field");
}

static void
test_fields_max(void)
{
    g_autoptr(SsiMsgOut) out = ssi_out_new(SSI_PS);
    g_autoptr(GBytes) ok = NULL;
    g_autoptr(GBytes) over = NULL;
    g_autoptr(SsiMsg) m = NULL;

    for (guint i = 0; i < SSI_FIELDS_MAX; i++) {
        ssi_out_u32(out, SSI_F_ROW, i);
    }
    ok = encode_ok(out, key, nonce);
    m = decode_ok(ok, key, 0, nonce);
    g_assert_cmpuint(ssi_msg_count(m, SSI_F_ROW), ==, SSI_FIELDS_MAX);
    g_assert_cmpuint(ssi_msg_nth(m, SSI_F_ROW, SSI_FIELDS_MAX - 1)->len, ==, 4);

    ssi_out_bytes(out, SSI_F_ROW, NULL, 0);
    over = encode_ok(out, key, nonce);
    decode_bad(over, key, 0, nonce, "too many fields");
}

static void
test_size_max(void)
{
    g_autoptr(SsiMsgOut) out = ssi_out_new(SSI_FILE);
    g_autofree guint8 *big = g_malloc0(SSI_MSG_MAX);
    g_autoptr(GError) error = NULL;
    g_autoptr(GBytes) b = NULL;
    g_autoptr(GBytes) huge = NULL;
    gsize room = SSI_MSG_MAX - SSI_HEADER_LEN - SSI_MAC_LEN - 5;

    /* The largest field that fits, MAC included. */
    ssi_out_bytes(out, SSI_F_DATA, big, room);
    b = encode_ok(out, key, nonce);
    g_assert_cmpuint(g_bytes_get_size(b), ==, SSI_MSG_MAX);
    g_clear_pointer(&b, g_bytes_unref);
    /* One byte more does not fit with the MAC, but does without. */
    g_byte_array_append(out->body, big, 1);
    b = ssi_out_encode(out, key, nonce, &error);
    g_assert_null(b);
    g_assert_error(error, VC_ERROR, VC_ERROR_INVALID);
    b = encode_ok(out, NULL, NULL);
    g_clear_pointer(&b, g_bytes_unref);

    /* The decoder bounds the input before reading it. */
    huge = g_bytes_new_take(g_malloc0(SSI_MSG_MAX + 1), SSI_MSG_MAX + 1);
    decode_bad(huge, NULL, 0, NULL, "wrong length");
}

static SsiMsg *
one_field(SsiField tag, const void *v, gsize len)
{
    g_autoptr(SsiMsgOut) out = ssi_out_new(SSI_FAIL);
    g_autoptr(GBytes) b = NULL;

    ssi_out_bytes(out, tag, v, len);
    b = encode_ok(out, NULL, NULL);
    return decode_ok(b, NULL, 0, NULL);
}

static void
test_str(void)
{
    g_autoptr(SsiMsg) nul = one_field(SSI_F_TEXT, "ab\0cd", 5);
    g_autoptr(SsiMsg) latin1 = one_field(SSI_F_TEXT, "caf\xe9", 4);
    g_autoptr(SsiMsg) cut = one_field(SSI_F_TEXT, "\xc3", 1);
    g_autoptr(SsiMsg) ok = one_field(SSI_F_TEXT, "\xc3\xa9t\xc3\xa9", 5);
    g_autoptr(SsiMsg) empty = one_field(SSI_F_TEXT, "", 0);
    g_autofree char *s = NULL;
    g_autofree char *e = NULL;
    g_autofree char *over = NULL;

    g_assert_null(ssi_msg_str(nul, SSI_F_TEXT, 4096));
    g_assert_null(ssi_msg_str(latin1, SSI_F_TEXT, 4096));
    g_assert_null(ssi_msg_str(cut, SSI_F_TEXT, 4096));
    g_assert_null(ssi_msg_str(ok, SSI_F_PATH, 4096));
    /* The bound is in bytes, and inclusive. */
    s = ssi_msg_str(ok, SSI_F_TEXT, 5);
    g_assert_cmpstr(s, ==, "\xc3\xa9t\xc3\xa9");
    over = ssi_msg_str(ok, SSI_F_TEXT, 4);
    g_assert_null(over);
    e = ssi_msg_str(empty, SSI_F_TEXT, 0);
    g_assert_cmpstr(e, ==, "");
}

static void
test_strv(void)
{
    g_autoptr(SsiMsgOut) out = ssi_out_new(SSI_RUN);
    g_autoptr(GBytes) b = NULL;
    g_autoptr(SsiMsg) m = NULL;
    g_autoptr(SsiMsg) bad = NULL;
    g_auto(GStrv) all = NULL;
    g_auto(GStrv) none = NULL;

    ssi_out_str(out, SSI_F_ARG, "a");
    ssi_out_str(out, SSI_F_ARG, "bbbb");
    ssi_out_str(out, SSI_F_ARG, "cc");
    b = encode_ok(out, NULL, NULL);
    m = decode_ok(b, NULL, 0, NULL);
    all = ssi_msg_strv(m, SSI_F_ARG, 3, 4);
    g_assert_nonnull(all);
    g_assert_cmpuint(g_strv_length(all), ==, 3);
    g_assert_cmpstr(all[1], ==, "bbbb");
    /* Too many, or one too long: nothing. */
    g_assert_null(ssi_msg_strv(m, SSI_F_ARG, 2, 4));
    g_assert_null(ssi_msg_strv(m, SSI_F_ARG, 3, 3));
    /* None is an empty vector, not a failure. */
    none = ssi_msg_strv(m, SSI_F_ROW, 3, 4);
    g_assert_nonnull(none);
    g_assert_cmpuint(g_strv_length(none), ==, 0);

    /* One bad element spoils the vector. */
    g_clear_pointer(&b, g_bytes_unref);
    ssi_out_bytes(out, SSI_F_ARG, "x\0y", 3);
    b = encode_ok(out, NULL, NULL);
    bad = decode_ok(b, NULL, 0, NULL);
    g_assert_null(ssi_msg_strv(bad, SSI_F_ARG, 10, 100));
}

static void
key_bad(const char *hex)
{
    g_autoptr(GError) error = NULL;
    guint8 k[SSI_KEY_LEN];

    g_assert_false(ssi_key_parse(hex, k, &error));
    g_assert_error(error, VC_ERROR, VC_ERROR_INVALID);
}

static void
test_key_parse(void)
{
    const char *hex =
        "000102030405060708090a0b0c0d0e0f101112131415161718191A1B1C1D1E1F";
    g_autoptr(GError) error = NULL;
    g_autofree char *odd = g_strconcat(hex, "0", NULL);
    g_autofree char *bad = g_strdup(hex);
    guint8 k[SSI_KEY_LEN];

    g_assert_true(ssi_key_parse(hex, k, &error));
    g_assert_no_error(error);
    for (guint i = 0; i < SSI_KEY_LEN; i++) {
        g_assert_cmpuint(k[i], ==, i);
    }
    key_bad("");
    key_bad("00");
    key_bad(odd);
    key_bad(hex + 2);
    bad[17] = 'g';
    key_bad(bad);
    bad[17] = ' ';
    key_bad(bad);
    bad[17] = '-';
    key_bad(bad);
}

static void
test_cluster_id(void)
{
    /* printf ssi | sha256sum: 5eb50a4eaeac6282 68d07200...;
     * printf lab | sha256sum: a51146d38077ff99 2eba84cf... */
    g_assert_cmphex(ssi_cluster_id("ssi"), ==,
                    G_GUINT64_CONSTANT(0x5eb50a4eaeac6282));
    g_assert_cmphex(ssi_cluster_id("lab"), ==,
                    G_GUINT64_CONSTANT(0xa51146d38077ff99));
}

static gboolean
fresh(SsiReplay *r, guint64 inc, guint64 seq, guint64 t, guint64 now)
{
    SsiHeader h = {.incarnation = inc, .seq = seq, .time_ms = t};
    SsiReplay before = *r;
    gboolean ok = ssi_replay_check(r, &h, now, 30000);

    if (!ok) {
        /* A refused datagram leaves the window where it was. */
        g_assert_cmpmem(&before, sizeof(before), r, sizeof(*r));
    }
    return ok;
}

static void
test_replay(void)
{
    const guint64 t = G_GUINT64_CONSTANT(1765000000000);
    SsiReplay r = {0};

    g_assert_true(fresh(&r, 100, 1, t, t));
    g_assert_false(fresh(&r, 100, 1, t, t));     /* same seq */
    g_assert_true(fresh(&r, 100, 5, t + 1, t));  /* seq may jump */
    g_assert_false(fresh(&r, 100, 4, t + 2, t)); /* older seq */
    /* The clock skew is 30 s either way, bounds included. */
    g_assert_true(fresh(&r, 100, 6, t - 30000, t));
    g_assert_false(fresh(&r, 100, 7, t - 30001, t));
    g_assert_true(fresh(&r, 100, 8, t + 30000, t));
    g_assert_false(fresh(&r, 100, 9, t + 30001, t));
    /* A new incarnation restarts seq, if it is newer in time... */
    g_assert_true(fresh(&r, 200, 1, t + 30000 + 1, t + 10));
    g_assert_cmpuint(r.incarnation, ==, 200);
    g_assert_cmpuint(r.seq, ==, 1);
    /* ...not if it is not: a datagram of the old one replayed. */
    g_assert_false(fresh(&r, 100, 10, t + 20000, t + 20));
    g_assert_false(fresh(&r, 300, 1, t + 30000 + 1, t + 20));
    g_assert_true(fresh(&r, 200, 2, t, t + 20));
}

/* Two ends of an authenticated connection over a socketpair. */
typedef struct {
    SsiIdentity id;
    int fd;
    SsiConn *conn;
    GError *error;
} Side;

static gpointer
accept_side(gpointer data)
{
    Side *s = data;

    s->conn = ssi_conn_accept(&s->id, s->fd, 5000, &s->error);
    return NULL;
}

static void
pair(guint16 node_a, guint16 node_b, SsiConn **a, SsiConn **b)
{
    int sv[2];
    Side sa = {{key, CLUSTER, node_a, 1000}, -1, NULL, NULL};
    Side sb = {{key, CLUSTER, node_b, 2000}, -1, NULL, NULL};
    GThread *t;

    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==,
                    0);
    sa.fd = sv[0];
    sb.fd = sv[1];
    t = g_thread_new("accept", accept_side, &sb);
    accept_side(&sa);
    g_thread_join(t);
    g_assert_no_error(sa.error);
    g_assert_no_error(sb.error);
    *a = sa.conn;
    *b = sb.conn;
}

static SsiMsg *
recv_ok(SsiConn *c)
{
    g_autoptr(GError) error = NULL;
    SsiMsg *m = ssi_conn_recv(c, 5000, &error);

    g_assert_no_error(error);
    g_assert_nonnull(m);
    return m;
}

static void
send_ok(SsiConn *c, SsiMsgOut *m)
{
    g_autoptr(GError) error = NULL;

    g_assert_true(ssi_conn_send(c, m, &error));
    g_assert_no_error(error);
}

/* Sends @m on @from, and reads the frame at @from's peer raw. */
static GBytes *
record(SsiConn *from, SsiConn *to, SsiMsgOut *m)
{
    g_autoptr(GError) error = NULL;
    GBytes *raw = NULL;

    send_ok(from, m);
    g_assert_true(vc_frame_read_fd(ssi_conn_fd(to), SSI_MSG_MAX, &raw, &error));
    g_assert_no_error(error);
    g_assert_nonnull(raw);
    return raw;
}

/* Writes @raw so that @to receives it, as if its peer had sent it. */
static void
inject(SsiConn *peer_of_to, GBytes *raw)
{
    g_autoptr(GError) error = NULL;
    gsize len;
    const guint8 *d = g_bytes_get_data(raw, &len);

    g_assert_true(vc_frame_write_fd(ssi_conn_fd(peer_of_to), d, len, &error));
    g_assert_no_error(error);
}

static void
test_conn(void)
{
    g_autoptr(SsiConn) a = NULL;
    g_autoptr(SsiConn) b = NULL;
    g_autoptr(SsiConn) c = NULL;
    g_autoptr(SsiConn) d = NULL;
    g_autoptr(SsiMsgOut) out = sample();
    g_autoptr(SsiMsgOut) ok = ssi_out_new(SSI_OK);
    g_autoptr(SsiMsg) m = NULL;
    g_autoptr(SsiMsg) r = NULL;
    g_autoptr(SsiMsg) m2 = NULL;
    g_autoptr(GBytes) raw = NULL;
    g_autoptr(GError) error = NULL;

    pair(1, 2, &a, &b);
    pair(1, 2, &c, &d);
    g_assert_cmpuint(ssi_conn_peer_node(a), ==, 2);
    g_assert_cmpuint(ssi_conn_peer_node(b), ==, 1);

    /* a's first frame to b, played on c->d where its seq (2) fits: d's
     * nonce is not b's, the MAC refuses it. */
    raw = record(a, b, out);
    inject(c, raw);
    g_assert_null(ssi_conn_recv(d, 5000, &error));
    g_assert_error(error, VC_ERROR, VC_ERROR_INVALID);
    g_assert_nonnull(strstr(error->message, "MAC"));
    g_clear_error(&error);

    /* On its own connection it passes once; the header is the sender's
     * identity. The same bytes again are out of sequence. */
    inject(a, raw);
    inject(a, raw);
    m = recv_ok(b);
    g_assert_cmpuint(m->hdr.type, ==, SSI_EXEC);
    g_assert_cmpuint(m->hdr.node, ==, 1);
    g_assert_cmpuint(m->hdr.incarnation, ==, 1000);
    g_assert_cmpuint(m->hdr.cluster, ==, CLUSTER);
    g_assert_cmpuint(m->hdr.seq, ==, 2); /* 1 was HELLO */
    g_assert_cmpuint(ssi_msg_count(m, SSI_F_ARG), ==, 3);
    g_assert_null(ssi_conn_recv(b, 5000, &error));
    g_assert_error(error, VC_ERROR, VC_ERROR_INVALID);
    g_assert_nonnull(strstr(error->message, "out of sequence"));
    g_clear_error(&error);

    /* The other direction. */
    ssi_out_str(ok, SSI_F_TEXT, "done");
    send_ok(b, ok);
    r = recv_ok(a);
    g_assert_cmpuint(r->hdr.type, ==, SSI_OK);
    g_assert_cmpuint(r->hdr.node, ==, 2);
    g_assert_cmpuint(r->hdr.incarnation, ==, 2000);

    /* c->d itself still works: the forged frame consumed no seq. */
    send_ok(c, out);
    m2 = recv_ok(d);
    g_assert_cmpuint(m2->hdr.seq, ==, 2);
}

/* The control socket: no key, no HELLO, no MAC; the seq is checked. */
static void
test_control(void)
{
    const SsiIdentity id = {NULL, 0, 0, 0};
    g_autoptr(SsiConn) a = NULL;
    g_autoptr(SsiConn) b = NULL;
    g_autoptr(SsiMsgOut) run = ssi_out_new(SSI_RUN);
    g_autoptr(SsiMsgOut) ps = ssi_out_new(SSI_PS);
    g_autoptr(SsiMsg) m = NULL;
    g_autoptr(SsiMsg) r = NULL;
    g_autoptr(GError) error = NULL;
    g_auto(GStrv) argv = NULL;
    int sv[2];

    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==,
                    0);
    a = ssi_conn_accept(&id, sv[0], 1000, &error);
    g_assert_no_error(error);
    b = ssi_conn_accept(&id, sv[1], 1000, &error);
    g_assert_no_error(error);

    ssi_out_str(run, SSI_F_ARG, "sleep");
    ssi_out_str(run, SSI_F_ARG, "1");
    send_ok(a, run);
    m = recv_ok(b);
    g_assert_cmpuint(m->hdr.type, ==, SSI_RUN);
    g_assert_cmpuint(m->hdr.seq, ==, 1);
    g_assert_cmpuint(g_bytes_get_size(m->raw), ==,
                     SSI_HEADER_LEN + run->body->len);
    argv = ssi_msg_strv(m, SSI_F_ARG, 16, 64);
    g_assert_cmpstr(argv[0], ==, "sleep");
    g_assert_cmpstr(argv[1], ==, "1");

    /* A FAIL reply becomes the caller's error, with its text. */
    g_assert_true(ssi_conn_fail(b, "no such node", &error));
    g_assert_no_error(error);
    r = ssi_conn_call(a, ps, 1000, &error);
    g_assert_null(r);
    g_assert_error(error, VC_ERROR, VC_ERROR_INVALID);
    g_assert_cmpstr(error->message, ==, "no such node");
    g_clear_error(&error);
    g_clear_pointer(&m, ssi_msg_free);
    m = recv_ok(b);
    g_assert_cmpuint(m->hdr.type, ==, SSI_PS);

    /* A clean end of stream is NULL with no error. */
    g_clear_pointer(&a, ssi_conn_free);
    g_assert_null(ssi_conn_recv(b, 1000, &error));
    g_assert_no_error(error);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/ssi-proto/roundtrip", test_roundtrip);
    g_test_add_func("/ssi-proto/empty-body", test_empty_body);
    g_test_add_func("/ssi-proto/mac", test_mac);
    g_test_add_func("/ssi-proto/other-cluster", test_other_cluster);
    g_test_add_func("/ssi-proto/truncated", test_truncated);
    g_test_add_func("/ssi-proto/body-length", test_body_length);
    g_test_add_func("/ssi-proto/fields-max", test_fields_max);
    g_test_add_func("/ssi-proto/size-max", test_size_max);
    g_test_add_func("/ssi-proto/str", test_str);
    g_test_add_func("/ssi-proto/strv", test_strv);
    g_test_add_func("/ssi-proto/key-parse", test_key_parse);
    g_test_add_func("/ssi-proto/cluster-id", test_cluster_id);
    g_test_add_func("/ssi-proto/replay", test_replay);
    g_test_add_func("/ssi-conn/authenticated", test_conn);
    g_test_add_func("/ssi-conn/control", test_control);
    return g_test_run();
}
