/*
 * The SSI message codec (ssi-proto.h).
 */
#include "ssi-proto.h"

#include <nettle/hmac.h>
#include <nettle/memops.h>
#include <nettle/sha2.h>
#include <string.h>

#include "vc-error.h"
#include "vc-frame.h"

static const guint8 magic[3] = {'S', 'S', 'I'};

SsiMsgOut *
ssi_out_new(SsiType type)
{
    SsiMsgOut *m = g_new0(SsiMsgOut, 1);

    m->hdr.type = type;
    m->body = g_byte_array_new();
    return m;
}

void
ssi_out_free(SsiMsgOut *m)
{
    if (!m) {
        return;
    }
    g_byte_array_unref(m->body);
    g_free(m);
}

void
ssi_out_bytes(SsiMsgOut *m, SsiField tag, const void *data, gsize len)
{
    g_return_if_fail(len <= SSI_MSG_MAX);
    vc_put_u8(m->body, tag);
    vc_put_u32(m->body, (guint32)len);
    if (len) {
        g_byte_array_append(m->body, data, (guint)len);
    }
}

void
ssi_out_u32(SsiMsgOut *m, SsiField tag, guint32 v)
{
    guint8 b[4] = {v >> 24, v >> 16, v >> 8, v};

    ssi_out_bytes(m, tag, b, sizeof(b));
}

void
ssi_out_u64(SsiMsgOut *m, SsiField tag, guint64 v)
{
    guint8 b[8];

    for (int i = 0; i < 8; i++) {
        b[i] = v >> (56 - 8 * i);
    }
    ssi_out_bytes(m, tag, b, sizeof(b));
}

void
ssi_out_str(SsiMsgOut *m, SsiField tag, const char *s)
{
    ssi_out_bytes(m, tag, s, strlen(s));
}

static void
mac_compute(const guint8 *key, const guint8 *nonce, const guint8 *data,
            gsize len, guint8 mac[SSI_MAC_LEN])
{
    static const guint8 zero[SSI_NONCE_LEN];
    struct hmac_sha256_ctx ctx;

    hmac_sha256_set_key(&ctx, SSI_KEY_LEN, key);
    hmac_sha256_update(&ctx, SSI_NONCE_LEN, nonce ? nonce : zero);
    hmac_sha256_update(&ctx, len, data);
    hmac_sha256_digest(&ctx, SSI_MAC_LEN, mac);
}

GBytes *
ssi_out_encode(SsiMsgOut *m, const guint8 *key, const guint8 *nonce,
               GError **error)
{
    gsize total = SSI_HEADER_LEN + m->body->len + (key ? SSI_MAC_LEN : 0);
    GByteArray *out;

    if (total > SSI_MSG_MAX) {
        g_set_error(error, VC_ERROR, VC_ERROR_INVALID,
                    "%s message of %zu bytes is over the %u-byte limit",
                    ssi_type_name(m->hdr.type), total, SSI_MSG_MAX);
        return NULL;
    }
    out = g_byte_array_sized_new((guint)total);
    g_byte_array_append(out, magic, sizeof(magic));
    vc_put_u8(out, SSI_PROTO_VERSION);
    vc_put_u8(out, m->hdr.type);
    vc_put_u8(out, m->hdr.flags);
    vc_put_u16(out, m->hdr.node);
    vc_put_u64(out, m->hdr.cluster);
    vc_put_u64(out, m->hdr.incarnation);
    vc_put_u64(out, m->hdr.seq);
    vc_put_u64(out, m->hdr.time_ms);
    vc_put_u32(out, m->body->len);
    g_byte_array_append(out, m->body->data, m->body->len);
    if (key) {
        guint8 mac[SSI_MAC_LEN];

        mac_compute(key, nonce, out->data, out->len, mac);
        g_byte_array_append(out, mac, sizeof(mac));
    }
    return g_byte_array_free_to_bytes(out);
}

void
ssi_msg_free(SsiMsg *m)
{
    if (!m) {
        return;
    }
    if (m->fields) {
        g_array_unref(m->fields);
    }
    if (m->raw) {
        g_bytes_unref(m->raw);
    }
    g_free(m);
}

static gboolean
bad(GError **error, const char *what)
{
    g_set_error(error, VC_ERROR, VC_ERROR_INVALID, "bad SSI message: %s", what);
    return FALSE;
}

static gboolean
parse_header(VcCursor *c, SsiHeader *h, guint32 *body_len, GError **error)
{
    const guint8 *mg;
    guint8 version;

    if (!vc_cursor_bytes(c, sizeof(magic), &mg) ||
        memcmp(mg, magic, sizeof(magic)) != 0) {
        return bad(error, "no SSI magic");
    }
    if (!vc_cursor_u8(c, &version) || version != SSI_PROTO_VERSION) {
        return bad(error, "unknown protocol version");
    }
    if (!vc_cursor_u8(c, &h->type) || !vc_cursor_u8(c, &h->flags) ||
        !vc_cursor_u16(c, &h->node) || !vc_cursor_u64(c, &h->cluster) ||
        !vc_cursor_u64(c, &h->incarnation) || !vc_cursor_u64(c, &h->seq) ||
        !vc_cursor_u64(c, &h->time_ms) || !vc_cursor_u32(c, body_len)) {
        return bad(error, "short header");
    }
    return TRUE;
}

SsiMsg *
ssi_msg_decode(GBytes *raw, const guint8 *key, guint64 cluster,
               const guint8 *nonce, GError **error)
{
    g_autoptr(SsiMsg) m = g_new0(SsiMsg, 1);
    gsize len;
    const guint8 *data = g_bytes_get_data(raw, &len);
    gsize mac_len = key ? SSI_MAC_LEN : 0;
    guint32 body_len;
    VcCursor c;

    m->raw = g_bytes_ref(raw);
    m->fields = g_array_new(FALSE, FALSE, sizeof(SsiFieldRef));
    if (len > SSI_MSG_MAX || len < SSI_HEADER_LEN + mac_len) {
        bad(error, "wrong length");
        return NULL;
    }
    vc_cursor_init(&c, data, len - mac_len);
    if (!parse_header(&c, &m->hdr, &body_len, error)) {
        return NULL;
    }
    if (body_len != c.left) {
        bad(error, "body length does not match");
        return NULL;
    }
    if (key) {
        guint8 mac[SSI_MAC_LEN];

        mac_compute(key, nonce, data, len - mac_len, mac);
        if (!memeql_sec(mac, data + len - mac_len, SSI_MAC_LEN)) {
            g_set_error(error, VC_ERROR, VC_ERROR_INVALID,
                        "SSI message with a wrong MAC (another cluster's key,"
                        " or forged)");
            return NULL;
        }
        if (m->hdr.cluster != cluster) {
            g_set_error(error, VC_ERROR, VC_ERROR_INVALID,
                        "SSI message for another cluster");
            return NULL;
        }
    }
    while (c.left > 0) {
        SsiFieldRef f;

        if (m->fields->len >= SSI_FIELDS_MAX) {
            bad(error, "too many fields");
            return NULL;
        }
        if (!vc_cursor_u8(&c, &f.tag) || !vc_cursor_u32(&c, &f.len) ||
            !vc_cursor_bytes(&c, f.len, &f.value)) {
            bad(error, "truncated field");
            return NULL;
        }
        g_array_append_val(m->fields, f);
    }
    return g_steal_pointer(&m);
}

const SsiFieldRef *
ssi_msg_nth(const SsiMsg *m, SsiField tag, guint n)
{
    for (guint i = 0; i < m->fields->len; i++) {
        const SsiFieldRef *f = &g_array_index(m->fields, SsiFieldRef, i);

        if (f->tag == tag && n-- == 0) {
            return f;
        }
    }
    return NULL;
}

guint
ssi_msg_count(const SsiMsg *m, SsiField tag)
{
    guint n = 0;

    for (guint i = 0; i < m->fields->len; i++) {
        n += g_array_index(m->fields, SsiFieldRef, i).tag == tag;
    }
    return n;
}

gboolean
ssi_msg_u32(const SsiMsg *m, SsiField tag, guint32 *v)
{
    const SsiFieldRef *f = ssi_msg_nth(m, tag, 0);
    VcCursor c;

    if (!f || f->len != 4) {
        return FALSE;
    }
    vc_cursor_init(&c, f->value, f->len);
    return vc_cursor_u32(&c, v);
}

gboolean
ssi_msg_u64(const SsiMsg *m, SsiField tag, guint64 *v)
{
    const SsiFieldRef *f = ssi_msg_nth(m, tag, 0);
    VcCursor c;

    if (!f || f->len != 8) {
        return FALSE;
    }
    vc_cursor_init(&c, f->value, f->len);
    return vc_cursor_u64(&c, v);
}

static char *
field_str(const SsiFieldRef *f, gsize max)
{
    if (!f || f->len > max || memchr(f->value, 0, f->len) ||
        !g_utf8_validate((const char *)f->value, f->len, NULL)) {
        return NULL;
    }
    return g_strndup((const char *)f->value, f->len);
}

char *
ssi_msg_str(const SsiMsg *m, SsiField tag, gsize max)
{
    return field_str(ssi_msg_nth(m, tag, 0), max);
}

const guint8 *
ssi_msg_bytes(const SsiMsg *m, SsiField tag, gsize *len)
{
    const SsiFieldRef *f = ssi_msg_nth(m, tag, 0);

    if (!f) {
        return NULL;
    }
    *len = f->len;
    /* A zero-length field still answers "present". */
    return f->len ? f->value : (const guint8 *)"";
}

GStrv
ssi_msg_strv(const SsiMsg *m, SsiField tag, guint max_count, gsize max_len)
{
    guint n = ssi_msg_count(m, tag);
    g_autoptr(GPtrArray) v = NULL;

    if (n > max_count) {
        return NULL;
    }
    v = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < n; i++) {
        char *s = field_str(ssi_msg_nth(m, tag, i), max_len);

        if (!s) {
            return NULL;
        }
        g_ptr_array_add(v, s);
    }
    g_ptr_array_add(v, NULL);
    return (GStrv)g_ptr_array_free(g_steal_pointer(&v), FALSE);
}

guint64
ssi_cluster_id(const char *name)
{
    struct sha256_ctx ctx;
    guint8 d[SHA256_DIGEST_SIZE];
    guint64 id = 0;

    sha256_init(&ctx);
    sha256_update(&ctx, strlen(name), (const guint8 *)name);
    sha256_digest(&ctx, sizeof(d), d);
    for (int i = 0; i < 8; i++) {
        id = id << 8 | d[i];
    }
    return id;
}

gboolean
ssi_key_parse(const char *hex, guint8 key[SSI_KEY_LEN], GError **error)
{
    if (strlen(hex) != 2 * SSI_KEY_LEN) {
        g_set_error(error, VC_ERROR, VC_ERROR_INVALID,
                    "the cluster key is not %d hex digits", 2 * SSI_KEY_LEN);
        return FALSE;
    }
    for (int i = 0; i < SSI_KEY_LEN; i++) {
        int hi = g_ascii_xdigit_value(hex[2 * i]);
        int lo = g_ascii_xdigit_value(hex[2 * i + 1]);

        if (hi < 0 || lo < 0) {
            g_set_error(error, VC_ERROR, VC_ERROR_INVALID,
                        "the cluster key holds a non-hex character");
            return FALSE;
        }
        key[i] = (guint8)(hi << 4 | lo);
    }
    return TRUE;
}

const char *
ssi_type_name(guint8 type)
{
    static const char *const names[] = {
        [SSI_HEARTBEAT] = "HEARTBEAT",
        [SSI_JOIN] = "JOIN",
        [SSI_INVITE] = "INVITE",
        [SSI_LEAVE] = "LEAVE",
        [SSI_HELLO] = "HELLO",
        [SSI_OK] = "OK",
        [SSI_FAIL] = "FAIL",
        [SSI_EXEC] = "EXEC",
        [SSI_ATTACH] = "ATTACH",
        [SSI_OUT] = "OUT",
        [SSI_ERRDATA] = "ERRDATA",
        [SSI_IN] = "IN",
        [SSI_IN_EOF] = "IN_EOF",
        [SSI_SIGNAL] = "SIGNAL",
        [SSI_EXIT] = "EXIT",
        [SSI_DETACH] = "DETACH",
        [SSI_KILL] = "KILL",
        [SSI_PS] = "PS",
        [SSI_MIGRATE] = "MIGRATE",
        [SSI_IMAGE] = "IMAGE",
        [SSI_FILE] = "FILE",
        [SSI_END] = "END",
        [SSI_CHECKPOINT] = "CHECKPOINT",
        [SSI_EVICT] = "EVICT",
        [SSI_ADD] = "ADD",
        [SSI_MEM] = "MEM",
        [SSI_RUN] = "RUN",
        [SSI_RESTART] = "RESTART",
        [SSI_POLICY] = "POLICY",
        [SSI_STARTED] = "STARTED",
        [SSI_SCHED] = "SCHED",
    };

    if (type < G_N_ELEMENTS(names) && names[type]) {
        return names[type];
    }
    return "unknown";
}

gboolean
ssi_replay_check(SsiReplay *r, const SsiHeader *h, guint64 now_ms,
                 guint64 skew_ms)
{
    if (h->time_ms + skew_ms < now_ms || h->time_ms > now_ms + skew_ms) {
        return FALSE;
    }
    if (h->incarnation == r->incarnation) {
        if (h->seq <= r->seq) {
            return FALSE;
        }
    } else if (r->incarnation != 0 && h->time_ms <= r->time_ms) {
        return FALSE;
    }
    r->incarnation = h->incarnation;
    r->seq = h->seq;
    r->time_ms = h->time_ms;
    return TRUE;
}
