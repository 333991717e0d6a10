#include "dp-proto.h"

#include <nettle/hmac.h>
#include <string.h>

#include "vc-frame.h"

/* The first argument is stringified as it is written. */
/* clang-format off */
G_DEFINE_QUARK(dp-error-quark, dp_error)
/* clang-format on */

G_STATIC_ASSERT(sizeof(VcPageHash) == VC_PAGE_HASH_LEN);
G_STATIC_ASSERT(sizeof(DpNodeId) == DP_NODE_ID_LEN);
G_STATIC_ASSERT(DP_MAC_LEN == SHA256_DIGEST_SIZE);
/* hit_rank[] holds at most DP_MAX_BATCH - 1. */
G_STATIC_ASSERT(DP_MAX_BATCH - 1 <= G_MAXUINT16);

static const struct {
    guint8 type;
    const char *name;
} msg_names[] = {
    {DP_MSG_LOOKUP, "LOOKUP"},
    {DP_REPLY(DP_MSG_LOOKUP), "LOOKUP-REPLY"},
    {DP_MSG_PUBLISH, "PUBLISH"},
    {DP_REPLY(DP_MSG_PUBLISH), "PUBLISH-REPLY"},
    {DP_MSG_STATS, "STATS"},
    {DP_REPLY(DP_MSG_STATS), "STATS-REPLY"},
    {DP_MSG_HELLO, "HELLO"},
    {DP_REPLY(DP_MSG_HELLO), "HELLO-REPLY"},
    {DP_MSG_AUTH, "AUTH"},
    {DP_REPLY(DP_MSG_AUTH), "AUTH-REPLY"},
    {DP_MSG_INDEX_ADD, "INDEX_ADD"},
    {DP_REPLY(DP_MSG_INDEX_ADD), "INDEX_ADD-REPLY"},
    {DP_MSG_INDEX_DEL, "INDEX_DEL"},
    {DP_REPLY(DP_MSG_INDEX_DEL), "INDEX_DEL-REPLY"},
    {DP_MSG_INDEX_QUERY, "INDEX_QUERY"},
    {DP_REPLY(DP_MSG_INDEX_QUERY), "INDEX_QUERY-REPLY"},
    {DP_MSG_PAGE_GET, "PAGE_GET"},
    {DP_REPLY(DP_MSG_PAGE_GET), "PAGE_GET-REPLY"},
    {DP_MSG_PING, "PING"},
    {DP_REPLY(DP_MSG_PING), "PING-REPLY"},
    {DP_MSG_CLAIM, "CLAIM"},
    {DP_REPLY(DP_MSG_CLAIM), "CLAIM-REPLY"},
    {DP_MSG_CLAIM_DONE, "CLAIM_DONE"},
    {DP_REPLY(DP_MSG_CLAIM_DONE), "CLAIM_DONE-REPLY"},
    {DP_MSG_CLAIM_DROP, "CLAIM_DROP"},
    {DP_REPLY(DP_MSG_CLAIM_DROP), "CLAIM_DROP-REPLY"},
    {DP_MSG_ERROR, "ERROR"},
};

static const char *
known_type_name(guint8 type)
{
    for (gsize i = 0; i < G_N_ELEMENTS(msg_names); i++) {
        if (msg_names[i].type == type) {
            return msg_names[i].name;
        }
    }
    return NULL;
}

const char *
dp_msg_type_name(guint8 type)
{
    const char *name = known_type_name(type);

    return name ? name : "unknown";
}

/* The version of the protocol @type belongs to. */
static guint8
version_of(guint8 type)
{
    guint8 request = type & 0x7f;

    if (type == DP_MSG_ERROR || request < DP_MSG_HELLO) {
        return DP_RESOLVER_VERSION;
    }
    return DP_PEER_VERSION;
}

static gboolean
is_hashes_request(guint8 type)
{
    return type == DP_MSG_LOOKUP || type == DP_MSG_INDEX_ADD ||
           type == DP_MSG_INDEX_DEL || type == DP_MSG_INDEX_QUERY ||
           type == DP_MSG_PAGE_GET || type == DP_MSG_CLAIM_DONE ||
           type == DP_MSG_CLAIM_DROP;
}

static gboolean
is_pages_reply(guint8 type)
{
    return type == DP_REPLY(DP_MSG_LOOKUP) || type == DP_REPLY(DP_MSG_PAGE_GET);
}

static gboolean
is_count_reply(guint8 type)
{
    return type == DP_REPLY(DP_MSG_INDEX_ADD) ||
           type == DP_REPLY(DP_MSG_INDEX_DEL) ||
           type == DP_REPLY(DP_MSG_CLAIM_DONE) ||
           type == DP_REPLY(DP_MSG_CLAIM_DROP);
}

static gboolean
is_empty_type(guint8 type)
{
    return type == DP_MSG_STATS || type == DP_MSG_PING ||
           type == DP_REPLY(DP_MSG_PING) || type == DP_REPLY(DP_MSG_AUTH);
}

static gboolean
site_name_valid(const char *site, gsize len)
{
    if (len < 1 || len > DP_MAX_SITE_LEN) {
        return FALSE;
    }
    for (gsize i = 0; i < len; i++) {
        char ch = site[i];

        if (!g_ascii_isalnum(ch) && ch != '.' && ch != '_' && ch != '-') {
            return FALSE;
        }
    }
    return TRUE;
}

/* Decoding */

typedef struct {
    VcCursor c;
    const char *name; /* of the message type, for errors */
    gsize body_len;
} Decoder;

static gboolean
dec_truncated(Decoder *d, const char *what, GError **error)
{
    g_set_error(error, DP_ERROR, DP_ERROR_PROTOCOL,
                "%s body of %zu bytes is too short for %s", d->name,
                d->body_len, what);
    return FALSE;
}

/* A count in @min..DP_MAX_BATCH. */
static gboolean
dec_count(Decoder *d, guint32 min, guint32 *count, GError **error)
{
    if (!vc_cursor_u32(&d->c, count)) {
        return dec_truncated(d, "its count", error);
    }
    if (*count > DP_MAX_BATCH) {
        g_set_error(error, DP_ERROR, DP_ERROR_LIMIT, "%s count %u exceeds %u",
                    d->name, *count, DP_MAX_BATCH);
        return FALSE;
    }
    if (*count < min) {
        g_set_error(error, DP_ERROR, DP_ERROR_LIMIT, "%s count %u is below %u",
                    d->name, *count, min);
        return FALSE;
    }
    return TRUE;
}

/* @n items of @size bytes; callers bound @n so that n * size fits. */
static gboolean
dec_array(Decoder *d, guint32 n, gsize size, const char *what, const guint8 **p,
          GError **error)
{
    g_autofree char *desc = NULL;

    if (vc_cursor_bytes(&d->c, (gsize)n * size, p)) {
        return TRUE;
    }
    desc = g_strdup_printf("%u %s", n, what);
    return dec_truncated(d, desc, error);
}

static gboolean
dec_hashes(Decoder *d, DpMsg *msg, GError **error)
{
    const guint8 *p;

    if (!dec_count(d, 1, &msg->count, error) ||
        !dec_array(d, msg->count, VC_PAGE_HASH_LEN, "hashes", &p, error)) {
        return FALSE;
    }
    msg->hashes = (const VcPageHash *)p;
    return TRUE;
}

static gboolean
dec_pages_reply(Decoder *d, DpMsg *msg, GError **error)
{
    guint32 hits = 0;

    if (!dec_count(d, 1, &msg->count, error) ||
        !dec_array(d, msg->count, 1, "status bytes", &msg->status, error)) {
        return FALSE;
    }
    for (guint32 i = 0; i < msg->count; i++) {
        if (msg->status[i] > DP_PAGE_HIT) {
            g_set_error(error, DP_ERROR, DP_ERROR_PROTOCOL,
                        "%s status %u of page %u is neither 0 nor 1", d->name,
                        msg->status[i], i);
            return FALSE;
        }
        msg->hit_rank[i] = (guint16)hits;
        hits += msg->status[i];
    }
    msg->n_hits = hits;
    return dec_array(d, hits, VC_PAGE_SIZE, "pages", &msg->pages, error);
}

/* The node ids that end INDEX_QUERY and CLAIM replies. */
static gboolean
dec_holders(Decoder *d, DpMsg *msg, guint32 n, GError **error)
{
    const guint8 *p;

    if (!dec_array(d, n, DP_NODE_ID_LEN, "holder ids", &p, error)) {
        return FALSE;
    }
    msg->holders = (const DpNodeId *)p;
    msg->n_holders = n;
    return TRUE;
}

static gboolean
dec_query_reply(Decoder *d, DpMsg *msg, GError **error)
{
    guint32 total = 0;

    if (!dec_count(d, 1, &msg->count, error) ||
        !dec_array(d, msg->count, 1, "holder counts", &msg->status, error)) {
        return FALSE;
    }
    for (guint32 i = 0; i < msg->count; i++) {
        if (msg->status[i] > DP_MAX_HOLDERS) {
            g_set_error(error, DP_ERROR, DP_ERROR_LIMIT,
                        "%s holder count %u of hash %u exceeds %u", d->name,
                        msg->status[i], i, DP_MAX_HOLDERS);
            return FALSE;
        }
        total += msg->status[i];
    }
    return dec_holders(d, msg, total, error);
}

static gboolean
dec_claim(Decoder *d, DpMsg *msg, GError **error)
{
    if (!vc_cursor_u32(&d->c, &msg->wait_ms)) {
        return dec_truncated(d, "its wait", error);
    }
    if (msg->wait_ms < 1 || msg->wait_ms > DP_MAX_WAIT_MS) {
        g_set_error(error, DP_ERROR, DP_ERROR_LIMIT,
                    "%s wait of %u ms is not within 1..%u", d->name,
                    msg->wait_ms, DP_MAX_WAIT_MS);
        return FALSE;
    }
    return dec_hashes(d, msg, error);
}

static gboolean
dec_claim_reply(Decoder *d, DpMsg *msg, GError **error)
{
    guint32 held = 0;

    if (!dec_count(d, 1, &msg->count, error) ||
        !dec_array(d, msg->count, 1, "states", &msg->status, error)) {
        return FALSE;
    }
    for (guint32 i = 0; i < msg->count; i++) {
        if (msg->status[i] > DP_CLAIM_UNCLAIMED) {
            g_set_error(error, DP_ERROR, DP_ERROR_PROTOCOL,
                        "%s state %u of hash %u is not 0, 1 or 2", d->name,
                        msg->status[i], i);
            return FALSE;
        }
        held += msg->status[i] == DP_CLAIM_HELD;
    }
    return dec_holders(d, msg, held, error);
}

static gboolean
dec_publish(Decoder *d, DpMsg *msg, GError **error)
{
    return dec_count(d, 1, &msg->count, error) &&
           dec_array(d, msg->count, VC_PAGE_HASH_LEN + VC_PAGE_SIZE, "records",
                     &msg->records, error);
}

static gboolean
dec_publish_reply(Decoder *d, DpMsg *msg, GError **error)
{
    if (!vc_cursor_u32(&d->c, &msg->stored) ||
        !vc_cursor_u32(&d->c, &msg->rejected)) {
        return dec_truncated(d, "its counts", error);
    }
    /* Both count pages of one PUBLISH. */
    if ((guint64)msg->stored + msg->rejected > DP_MAX_BATCH) {
        g_set_error(error, DP_ERROR, DP_ERROR_LIMIT,
                    "%s stored %u plus rejected %u exceeds %u", d->name,
                    msg->stored, msg->rejected, DP_MAX_BATCH);
        return FALSE;
    }
    return TRUE;
}

static gboolean
dec_stats_reply(Decoder *d, DpMsg *msg, GError **error)
{
    const guint8 *p;

    if (!vc_cursor_u32(&d->c, &msg->json_len)) {
        return dec_truncated(d, "its length", error);
    }
    if (msg->json_len > DP_MAX_JSON_LEN) {
        g_set_error(error, DP_ERROR, DP_ERROR_LIMIT,
                    "%s JSON of %u bytes exceeds %u", d->name, msg->json_len,
                    DP_MAX_JSON_LEN);
        return FALSE;
    }
    if (!vc_cursor_bytes(&d->c, msg->json_len, &p)) {
        return dec_truncated(d, "its JSON", error);
    }
    if (!g_utf8_validate_len((const char *)p, msg->json_len, NULL)) {
        g_set_error(error, DP_ERROR, DP_ERROR_PROTOCOL,
                    "%s JSON is not valid UTF-8", d->name);
        return FALSE;
    }
    msg->json = (const char *)p;
    return TRUE;
}

static gboolean
dec_hello(Decoder *d, DpMsg *msg, GError **error)
{
    const guint8 *id, *nonce, *site;
    guint8 n;

    if (!vc_cursor_bytes(&d->c, DP_NODE_ID_LEN, &id) ||
        !vc_cursor_bytes(&d->c, DP_NONCE_LEN, &nonce) ||
        !vc_cursor_u16(&d->c, &msg->port) || !vc_cursor_u8(&d->c, &n)) {
        return dec_truncated(d, "its fixed fields", error);
    }
    if (n == 0 || n > DP_MAX_SITE_LEN) {
        g_set_error(error, DP_ERROR, DP_ERROR_LIMIT,
                    "%s site name of %u bytes is not within 1..%u", d->name, n,
                    DP_MAX_SITE_LEN);
        return FALSE;
    }
    if (!vc_cursor_bytes(&d->c, n, &site)) {
        return dec_truncated(d, "its site name", error);
    }
    if (!site_name_valid((const char *)site, n)) {
        g_autofree char *raw = g_strndup((const char *)site, n);
        g_autofree char *shown = g_strescape(raw, NULL);

        g_set_error(error, DP_ERROR, DP_ERROR_PROTOCOL,
                    "%s site name '%s' has characters outside "
                    "[A-Za-z0-9._-]",
                    d->name, shown);
        return FALSE;
    }
    memcpy(msg->node_id.bytes, id, DP_NODE_ID_LEN);
    memcpy(msg->nonce, nonce, DP_NONCE_LEN);
    memcpy(msg->site, site, n);
    msg->site[n] = '\0';
    return TRUE;
}

static gboolean
dec_hello_reply(Decoder *d, DpMsg *msg, GError **error)
{
    const guint8 *id, *nonce, *mac;

    if (!vc_cursor_bytes(&d->c, DP_NODE_ID_LEN, &id) ||
        !vc_cursor_bytes(&d->c, DP_NONCE_LEN, &nonce) ||
        !vc_cursor_bytes(&d->c, DP_MAC_LEN, &mac)) {
        return dec_truncated(d, "its fixed fields", error);
    }
    memcpy(msg->node_id.bytes, id, DP_NODE_ID_LEN);
    memcpy(msg->nonce, nonce, DP_NONCE_LEN);
    memcpy(msg->mac, mac, DP_MAC_LEN);
    return TRUE;
}

static gboolean
dec_auth(Decoder *d, DpMsg *msg, GError **error)
{
    const guint8 *mac;

    if (!vc_cursor_bytes(&d->c, DP_MAC_LEN, &mac)) {
        return dec_truncated(d, "its proof", error);
    }
    memcpy(msg->mac, mac, DP_MAC_LEN);
    return TRUE;
}

static gboolean
dec_error(Decoder *d, DpMsg *msg, GError **error)
{
    const guint8 *text;
    guint16 n;

    if (!vc_cursor_u32(&d->c, &msg->error_code) || !vc_cursor_u16(&d->c, &n)) {
        return dec_truncated(d, "its code and length", error);
    }
    if (msg->error_code < DP_ERROR_PROTOCOL ||
        msg->error_code > DP_ERROR_UNAVAILABLE) {
        g_set_error(error, DP_ERROR, DP_ERROR_PROTOCOL, "%s code %u is unknown",
                    d->name, msg->error_code);
        return FALSE;
    }
    if (n > DP_MAX_ERROR_LEN) {
        g_set_error(error, DP_ERROR, DP_ERROR_LIMIT,
                    "%s message of %u bytes exceeds %u", d->name, n,
                    DP_MAX_ERROR_LEN);
        return FALSE;
    }
    if (!vc_cursor_bytes(&d->c, n, &text)) {
        return dec_truncated(d, "its message", error);
    }
    /* g_utf8_validate_len() also rejects NUL bytes. */
    if (!g_utf8_validate_len((const char *)text, n, NULL)) {
        g_set_error(error, DP_ERROR, DP_ERROR_PROTOCOL,
                    "%s message is not valid UTF-8", d->name);
        return FALSE;
    }
    memcpy(msg->error_message, text, n);
    msg->error_message[n] = '\0';
    return TRUE;
}

static gboolean
dec_body(Decoder *d, DpMsg *msg, GError **error)
{
    guint8 type = msg->type;

    if (is_hashes_request(type)) {
        return dec_hashes(d, msg, error);
    }
    if (is_pages_reply(type)) {
        return dec_pages_reply(d, msg, error);
    }
    if (is_count_reply(type)) {
        return dec_count(d, 0, &msg->count, error);
    }
    if (is_empty_type(type)) {
        return TRUE;
    }
    switch (type) {
    case DP_REPLY(DP_MSG_INDEX_QUERY):
        return dec_query_reply(d, msg, error);
    case DP_MSG_CLAIM:
        return dec_claim(d, msg, error);
    case DP_REPLY(DP_MSG_CLAIM):
        return dec_claim_reply(d, msg, error);
    case DP_MSG_PUBLISH:
        return dec_publish(d, msg, error);
    case DP_REPLY(DP_MSG_PUBLISH):
        return dec_publish_reply(d, msg, error);
    case DP_REPLY(DP_MSG_STATS):
        return dec_stats_reply(d, msg, error);
    case DP_MSG_HELLO:
        return dec_hello(d, msg, error);
    case DP_REPLY(DP_MSG_HELLO):
        return dec_hello_reply(d, msg, error);
    case DP_MSG_AUTH:
        return dec_auth(d, msg, error);
    case DP_MSG_ERROR:
        return dec_error(d, msg, error);
    default:
        /* Unreachable: known_type_name() let only the types above in. */
        g_set_error(error, DP_ERROR, DP_ERROR_PROTOCOL, "%s cannot be decoded",
                    d->name);
        return FALSE;
    }
}

gboolean
dp_msg_decode(const guint8 *payload, gsize len, DpMsg *msg, GError **error)
{
    Decoder d;
    guint8 version;
    guint16 flags;

    g_return_val_if_fail(payload != NULL || len == 0, FALSE);
    g_return_val_if_fail(msg != NULL, FALSE);
    g_return_val_if_fail(error == NULL || *error == NULL, FALSE);

    memset(msg, 0, sizeof(*msg));
    vc_cursor_init(&d.c, payload, len);
    /* The version first: another version may have another header. */
    if (vc_cursor_u8(&d.c, &version) && version != DP_RESOLVER_VERSION &&
        version != DP_PEER_VERSION) {
        g_set_error(error, DP_ERROR, DP_ERROR_VERSION,
                    "protocol version %u is not supported (want %u or %u)",
                    version, DP_RESOLVER_VERSION, DP_PEER_VERSION);
        return FALSE;
    }
    if (!vc_cursor_u8(&d.c, &msg->type) || !vc_cursor_u16(&d.c, &flags) ||
        !vc_cursor_u32(&d.c, &msg->id)) {
        g_set_error(error, DP_ERROR, DP_ERROR_PROTOCOL,
                    "payload of %zu bytes is shorter than the %u-byte "
                    "header",
                    len, DP_HEADER_LEN);
        msg->type = 0;
        msg->id = 0;
        return FALSE;
    }
    d.name = known_type_name(msg->type);
    if (!d.name) {
        g_set_error(error, DP_ERROR, DP_ERROR_PROTOCOL,
                    "message type 0x%02x is unknown", msg->type);
        return FALSE;
    }
    if (version != version_of(msg->type)) {
        g_set_error(error, DP_ERROR, DP_ERROR_VERSION,
                    "%s of protocol version %u is not supported (want %u)",
                    d.name, version, version_of(msg->type));
        return FALSE;
    }
    if (flags != 0) {
        g_set_error(error, DP_ERROR, DP_ERROR_PROTOCOL,
                    "%s flags 0x%04x are not 0", d.name, flags);
        return FALSE;
    }
    d.body_len = d.c.left;
    if (!dec_body(&d, msg, error)) {
        return FALSE;
    }
    if (d.c.left > 0) {
        g_set_error(error, DP_ERROR, DP_ERROR_PROTOCOL,
                    "%s has %zu trailing bytes", d.name, d.c.left);
        return FALSE;
    }
    return TRUE;
}

const guint8 *
dp_msg_reply_page(const DpMsg *msg, guint32 i)
{
    g_return_val_if_fail(msg != NULL, NULL);
    g_return_val_if_fail(is_pages_reply(msg->type), NULL);
    g_return_val_if_fail(i < msg->count, NULL);

    if (msg->status[i] != DP_PAGE_HIT) {
        return NULL;
    }
    return msg->pages + (gsize)msg->hit_rank[i] * VC_PAGE_SIZE;
}

/* Encoding */

/* Grow the allocation once for a large message. */
static void
reserve(GByteArray *out, gsize extra)
{
    guint len = out->len;

    g_byte_array_set_size(out, len + (guint)extra);
    g_byte_array_set_size(out, len);
}

/* Starts a frame; returns where, for frame_end(). */
static guint
frame_begin(GByteArray *out, guint8 type, guint32 id, gsize body_len)
{
    guint start = out->len;

    reserve(out, VC_FRAME_HEADER_LEN + DP_HEADER_LEN + body_len);
    vc_put_u32(out, 0); /* the length, patched by frame_end() */
    vc_put_u8(out, version_of(type));
    vc_put_u8(out, type);
    vc_put_u16(out, 0);
    vc_put_u32(out, id);
    return start;
}

static void
frame_set_len(guint8 *p, gsize len)
{
    g_assert(len <= DP_MAX_PAYLOAD);
    p[0] = (guint8)(len >> 24);
    p[1] = (guint8)(len >> 16);
    p[2] = (guint8)(len >> 8);
    p[3] = (guint8)len;
}

static void
frame_end(GByteArray *out, guint start)
{
    frame_set_len(out->data + start, out->len - start - VC_FRAME_HEADER_LEN);
}

void
dp_encode_hashes(GByteArray *out, guint8 type, guint32 id,
                 const VcPageHash *hashes, guint32 count)
{
    guint start;

    g_return_if_fail(is_hashes_request(type));
    g_return_if_fail(count >= 1 && count <= DP_MAX_BATCH);
    g_return_if_fail(hashes != NULL);

    start = frame_begin(out, type, id, 4 + (gsize)count * VC_PAGE_HASH_LEN);
    vc_put_u32(out, count);
    g_byte_array_append(out, (const guint8 *)hashes, count * VC_PAGE_HASH_LEN);
    frame_end(out, start);
}

void
dp_encode_pages_reply_head(GByteArray *out, guint8 type, guint32 id,
                           const guint8 *status, guint32 count)
{
    guint32 hits = 0;
    guint start;

    g_return_if_fail(is_pages_reply(type));
    g_return_if_fail(count >= 1 && count <= DP_MAX_BATCH);
    g_return_if_fail(status != NULL);

    for (guint32 i = 0; i < count; i++) {
        g_return_if_fail(status[i] <= DP_PAGE_HIT);
        hits += status[i];
    }
    start = frame_begin(out, type, id, 4 + count);
    vc_put_u32(out, count);
    g_byte_array_append(out, status, count);
    frame_end(out, start);
    /* The length counts the pages the caller sends after the head. */
    frame_set_len(out->data + start,
                  out->len - start - VC_FRAME_HEADER_LEN +
                      (gsize)hits * VC_PAGE_SIZE);
}

void
dp_encode_pages_reply(GByteArray *out, guint8 type, guint32 id,
                      const guint8 *const *pages, guint32 count)
{
    guint8 status[DP_MAX_BATCH];

    g_return_if_fail(count >= 1 && count <= DP_MAX_BATCH);
    g_return_if_fail(pages != NULL);

    for (guint32 i = 0; i < count; i++) {
        status[i] = pages[i] ? DP_PAGE_HIT : DP_PAGE_MISS;
    }
    dp_encode_pages_reply_head(out, type, id, status, count);
    for (guint32 i = 0; i < count; i++) {
        if (pages[i]) {
            g_byte_array_append(out, pages[i], VC_PAGE_SIZE);
        }
    }
}

void
dp_encode_publish(GByteArray *out, guint32 id, const VcPageHash *hashes,
                  const guint8 *const *pages, guint32 count)
{
    guint start;

    g_return_if_fail(count >= 1 && count <= DP_MAX_BATCH);
    g_return_if_fail(hashes != NULL && pages != NULL);

    start = frame_begin(out, DP_MSG_PUBLISH, id,
                        4 + (gsize)count * (VC_PAGE_HASH_LEN + VC_PAGE_SIZE));
    vc_put_u32(out, count);
    for (guint32 i = 0; i < count; i++) {
        g_byte_array_append(out, hashes[i].bytes, VC_PAGE_HASH_LEN);
        g_byte_array_append(out, pages[i], VC_PAGE_SIZE);
    }
    frame_end(out, start);
}

void
dp_encode_publish_reply(GByteArray *out, guint32 id, guint32 stored,
                        guint32 rejected)
{
    guint start;

    g_return_if_fail((guint64)stored + rejected <= DP_MAX_BATCH);

    start = frame_begin(out, DP_REPLY(DP_MSG_PUBLISH), id, 8);
    vc_put_u32(out, stored);
    vc_put_u32(out, rejected);
    frame_end(out, start);
}

void
dp_encode_count_reply(GByteArray *out, guint8 type, guint32 id, guint32 count)
{
    guint start;

    g_return_if_fail(is_count_reply(type));
    g_return_if_fail(count <= DP_MAX_BATCH);

    start = frame_begin(out, type, id, 4);
    vc_put_u32(out, count);
    frame_end(out, start);
}

/* INDEX_QUERY and CLAIM replies: a count, a byte per hash, then the
 * node ids those bytes call for. */
static void
encode_holders_reply(GByteArray *out, guint8 type, guint32 id,
                     const guint8 *bytes, guint32 count,
                     const DpNodeId *holders, guint32 n_holders)
{
    guint start = frame_begin(out, type, id,
                              4 + count + (gsize)n_holders * DP_NODE_ID_LEN);

    vc_put_u32(out, count);
    g_byte_array_append(out, bytes, count);
    if (n_holders > 0) {
        g_byte_array_append(out, (const guint8 *)holders,
                            n_holders * DP_NODE_ID_LEN);
    }
    frame_end(out, start);
}

void
dp_encode_query_reply(GByteArray *out, guint32 id, const guint8 *n_holders,
                      guint32 count, const DpNodeId *holders)
{
    guint32 total = 0;

    g_return_if_fail(count >= 1 && count <= DP_MAX_BATCH);
    g_return_if_fail(n_holders != NULL);

    for (guint32 i = 0; i < count; i++) {
        g_return_if_fail(n_holders[i] <= DP_MAX_HOLDERS);
        total += n_holders[i];
    }
    g_return_if_fail(total == 0 || holders != NULL);

    encode_holders_reply(out, DP_REPLY(DP_MSG_INDEX_QUERY), id, n_holders,
                         count, holders, total);
}

void
dp_encode_claim(GByteArray *out, guint32 id, guint32 wait_ms,
                const VcPageHash *hashes, guint32 count)
{
    guint start;

    g_return_if_fail(wait_ms >= 1 && wait_ms <= DP_MAX_WAIT_MS);
    g_return_if_fail(count >= 1 && count <= DP_MAX_BATCH);
    g_return_if_fail(hashes != NULL);

    start = frame_begin(out, DP_MSG_CLAIM, id,
                        8 + (gsize)count * VC_PAGE_HASH_LEN);
    vc_put_u32(out, wait_ms);
    vc_put_u32(out, count);
    g_byte_array_append(out, (const guint8 *)hashes, count * VC_PAGE_HASH_LEN);
    frame_end(out, start);
}

void
dp_encode_claim_reply(GByteArray *out, guint32 id, const guint8 *states,
                      guint32 count, const DpNodeId *holders)
{
    guint32 held = 0;

    g_return_if_fail(count >= 1 && count <= DP_MAX_BATCH);
    g_return_if_fail(states != NULL);

    for (guint32 i = 0; i < count; i++) {
        g_return_if_fail(states[i] <= DP_CLAIM_UNCLAIMED);
        held += states[i] == DP_CLAIM_HELD;
    }
    g_return_if_fail(held == 0 || holders != NULL);

    encode_holders_reply(out, DP_REPLY(DP_MSG_CLAIM), id, states, count,
                         holders, held);
}

void
dp_encode_empty(GByteArray *out, guint8 type, guint32 id)
{
    g_return_if_fail(is_empty_type(type));

    frame_end(out, frame_begin(out, type, id, 0));
}

void
dp_encode_stats_reply(GByteArray *out, guint32 id, const char *json, gsize len)
{
    guint start;

    g_return_if_fail(len <= DP_MAX_JSON_LEN);
    g_return_if_fail(json != NULL || len == 0);

    start = frame_begin(out, DP_REPLY(DP_MSG_STATS), id, 4 + len);
    vc_put_u32(out, (guint32)len);
    if (len > 0) {
        g_byte_array_append(out, (const guint8 *)json, (guint)len);
    }
    frame_end(out, start);
}

void
dp_encode_error(GByteArray *out, guint32 id, guint32 code, const char *message)
{
    const char *end = NULL;
    gsize len;
    guint start;

    g_return_if_fail(code >= DP_ERROR_PROTOCOL && code <= DP_ERROR_UNAVAILABLE);

    /* Messages are often an error->message that quotes peer input: cut it
     * to the limit and to its valid UTF-8 prefix rather than fail. */
    if (!message) {
        message = "";
    }
    len = strnlen(message, DP_MAX_ERROR_LEN);
    g_utf8_validate_len(message, len, &end);
    len = (gsize)(end - message);

    start = frame_begin(out, DP_MSG_ERROR, id, 6 + len);
    vc_put_u32(out, code);
    vc_put_u16(out, (guint16)len);
    g_byte_array_append(out, (const guint8 *)message, (guint)len);
    frame_end(out, start);
}

void
dp_encode_hello(GByteArray *out, guint32 id, const DpNodeId *node,
                const guint8 *nonce, guint16 port, const char *site)
{
    gsize site_len;
    guint start;

    g_return_if_fail(node != NULL && nonce != NULL && site != NULL);
    site_len = strnlen(site, DP_MAX_SITE_LEN + 1);
    g_return_if_fail(site_name_valid(site, site_len));

    start = frame_begin(out, DP_MSG_HELLO, id,
                        DP_NODE_ID_LEN + DP_NONCE_LEN + 3 + site_len);
    g_byte_array_append(out, node->bytes, DP_NODE_ID_LEN);
    g_byte_array_append(out, nonce, DP_NONCE_LEN);
    vc_put_u16(out, port);
    vc_put_u8(out, (guint8)site_len);
    g_byte_array_append(out, (const guint8 *)site, (guint)site_len);
    frame_end(out, start);
}

void
dp_encode_hello_reply(GByteArray *out, guint32 id, const DpNodeId *node,
                      const guint8 *nonce, const guint8 *mac)
{
    guint start;

    g_return_if_fail(node != NULL && nonce != NULL && mac != NULL);

    start = frame_begin(out, DP_REPLY(DP_MSG_HELLO), id,
                        DP_NODE_ID_LEN + DP_NONCE_LEN + DP_MAC_LEN);
    g_byte_array_append(out, node->bytes, DP_NODE_ID_LEN);
    g_byte_array_append(out, nonce, DP_NONCE_LEN);
    g_byte_array_append(out, mac, DP_MAC_LEN);
    frame_end(out, start);
}

void
dp_encode_auth(GByteArray *out, guint32 id, const guint8 *mac)
{
    guint start;

    g_return_if_fail(mac != NULL);

    start = frame_begin(out, DP_MSG_AUTH, id, DP_MAC_LEN);
    g_byte_array_append(out, mac, DP_MAC_LEN);
    frame_end(out, start);
}

/* Authentication */

void
dp_auth_proof(const guint8 *key, gsize key_len, gboolean for_server,
              const guint8 *client_nonce, const guint8 *server_nonce,
              const DpNodeId *client_id, const DpNodeId *server_id, guint8 *mac)
{
    static const char server_label[] = "dp1-server";
    static const char client_label[] = "dp1-client";
    struct hmac_sha256_ctx ctx;

    g_return_if_fail(key != NULL || key_len == 0);
    g_return_if_fail(client_nonce && server_nonce && client_id && server_id &&
                     mac);

    hmac_sha256_set_key(&ctx, key_len, key);
    if (for_server) {
        hmac_sha256_update(&ctx, sizeof(server_label) - 1,
                           (const guint8 *)server_label);
        hmac_sha256_update(&ctx, DP_NONCE_LEN, client_nonce);
        hmac_sha256_update(&ctx, DP_NONCE_LEN, server_nonce);
    } else {
        hmac_sha256_update(&ctx, sizeof(client_label) - 1,
                           (const guint8 *)client_label);
        hmac_sha256_update(&ctx, DP_NONCE_LEN, server_nonce);
        hmac_sha256_update(&ctx, DP_NONCE_LEN, client_nonce);
    }
    hmac_sha256_update(&ctx, DP_NODE_ID_LEN, client_id->bytes);
    hmac_sha256_update(&ctx, DP_NODE_ID_LEN, server_id->bytes);
    hmac_sha256_digest(&ctx, DP_MAC_LEN, mac);
    /* The context holds key-derived state. */
    explicit_bzero(&ctx, sizeof(ctx));
}

gboolean
dp_auth_equal(const guint8 *a, const guint8 *b)
{
    volatile guint8 diff = 0;

    for (gsize i = 0; i < DP_MAC_LEN; i++) {
        diff |= a[i] ^ b[i];
    }
    return diff == 0;
}

/* Node ids */

void
dp_node_id_to_hex(const DpNodeId *id, char *hex)
{
    static const char digits[] = "0123456789abcdef";

    for (gsize i = 0; i < DP_NODE_ID_LEN; i++) {
        hex[2 * i] = digits[id->bytes[i] >> 4];
        hex[2 * i + 1] = digits[id->bytes[i] & 0xf];
    }
    hex[2 * DP_NODE_ID_LEN] = '\0';
}

gboolean
dp_node_id_from_hex(const char *hex, DpNodeId *id)
{
    DpNodeId tmp;

    g_return_val_if_fail(hex != NULL && id != NULL, FALSE);

    /* Stops at the first non-digit, so never reads past a short string's
     * NUL. */
    for (gsize i = 0; i < DP_NODE_ID_LEN; i++) {
        int hi = g_ascii_xdigit_value(hex[2 * i]);
        int lo = hi < 0 ? -1 : g_ascii_xdigit_value(hex[2 * i + 1]);

        if (lo < 0) {
            return FALSE;
        }
        tmp.bytes[i] = (guint8)(hi << 4 | lo);
    }
    if (hex[2 * DP_NODE_ID_LEN] != '\0') {
        return FALSE;
    }
    *id = tmp;
    return TRUE;
}

gboolean
dp_node_id_equal(const DpNodeId *a, const DpNodeId *b)
{
    return memcmp(a->bytes, b->bytes, DP_NODE_ID_LEN) == 0;
}
