#include "kget-proto.h"

#include <errno.h>
#include <nettle/hmac.h>
#include <string.h>

#include "vc-frame.h"

/* The first argument is stringified as it is written. */
/* clang-format off */
G_DEFINE_QUARK(kget-error-quark, kget_error)
/* clang-format on */

G_STATIC_ASSERT(sizeof(VcPageHash) == VC_PAGE_HASH_LEN);
G_STATIC_ASSERT(KGET_MAC_LEN == SHA256_DIGEST_SIZE);
G_STATIC_ASSERT(KGET_MAX_PAYLOAD <= G_MAXUINT32);

#define MAX_BLOCKS (KGET_MAX_ITEM_SIZE / VC_PAGE_SIZE)

static const struct {
    guint8 type;
    const char *name;
} msg_names[] = {
    {KGET_MSG_HAVE, "HAVE"},
    {KGET_REPLY(KGET_MSG_HAVE), "HAVE-REPLY"},
    {KGET_MSG_CREDIT, "CREDIT"},
    {KGET_MSG_GRANT, "GRANT"},
    {KGET_MSG_PUT, "PUT"},
    {KGET_REPLY(KGET_MSG_PUT), "PUT-REPLY"},
    {KGET_MSG_ITEM_BEGIN, "ITEM_BEGIN"},
    {KGET_REPLY(KGET_MSG_ITEM_BEGIN), "ITEM_BEGIN-REPLY"},
    {KGET_MSG_ITEM_BLOCKS, "ITEM_BLOCKS"},
    {KGET_REPLY(KGET_MSG_ITEM_BLOCKS), "ITEM_BLOCKS-REPLY"},
    {KGET_MSG_ITEM_END, "ITEM_END"},
    {KGET_REPLY(KGET_MSG_ITEM_END), "ITEM_END-REPLY"},
    {KGET_MSG_SEAL, "SEAL"},
    {KGET_REPLY(KGET_MSG_SEAL), "SEAL-REPLY"},
    {KGET_MSG_LIST, "LIST"},
    {KGET_REPLY(KGET_MSG_LIST), "LIST-REPLY"},
    {KGET_MSG_GET_ITEM, "GET_ITEM"},
    {KGET_REPLY(KGET_MSG_GET_ITEM), "GET_ITEM-REPLY"},
    {KGET_MSG_GET, "GET"},
    {KGET_REPLY(KGET_MSG_GET), "GET-REPLY"},
    {KGET_MSG_VERIFY, "VERIFY"},
    {KGET_REPLY(KGET_MSG_VERIFY), "VERIFY-REPLY"},
    {KGET_MSG_GC, "GC"},
    {KGET_REPLY(KGET_MSG_GC), "GC-REPLY"},
    {KGET_MSG_RM, "RM"},
    {KGET_REPLY(KGET_MSG_RM), "RM-REPLY"},
    {KGET_MSG_HELLO, "HELLO"},
    {KGET_REPLY(KGET_MSG_HELLO), "HELLO-REPLY"},
    {KGET_MSG_AUTH, "AUTH"},
    {KGET_REPLY(KGET_MSG_AUTH), "AUTH-REPLY"},
    {KGET_MSG_ERROR, "ERROR"},
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
kget_msg_type_name(guint8 type)
{
    const char *name = known_type_name(type);

    return name ? name : "unknown";
}

static gboolean
is_empty_type(guint8 type)
{
    return type == KGET_REPLY(KGET_MSG_AUTH) || type == KGET_MSG_ITEM_END ||
           type == KGET_REPLY(KGET_MSG_ITEM_BEGIN) ||
           type == KGET_REPLY(KGET_MSG_ITEM_BLOCKS) ||
           type == KGET_REPLY(KGET_MSG_SEAL) || type == KGET_REPLY(KGET_MSG_RM);
}

/* Replies made of u64 counters, and how many. */
static guint
n_counters(guint8 type)
{
    switch (type) {
    case KGET_REPLY(KGET_MSG_PUT):
    case KGET_REPLY(KGET_MSG_ITEM_END):
        return 2;
    case KGET_REPLY(KGET_MSG_VERIFY):
        return 3;
    case KGET_REPLY(KGET_MSG_GC):
        return 4;
    default:
        return 0;
    }
}

/* Names */

static gboolean
chars_valid(const char *s, gsize len, const char *extra)
{
    for (gsize i = 0; i < len; i++) {
        if (!g_ascii_isalnum(s[i]) && (s[i] == '\0' || !strchr(extra, s[i]))) {
            return FALSE;
        }
    }
    return TRUE;
}

gboolean
kget_group_name_valid(const char *name)
{
    gsize len = strnlen(name, KGET_MAX_GROUP_LEN + 1);

    return len >= 1 && len <= KGET_MAX_GROUP_LEN &&
           chars_valid(name, len, "._-");
}

gboolean
kget_snapshot_name_split(const char *name, char *group, guint32 *seq)
{
    const char *at = strchr(name, '@');
    const char *digits;
    gsize glen, dlen;
    guint64 v = 0;

    if (!at) {
        return FALSE;
    }
    glen = (gsize)(at - name);
    digits = at + 1;
    dlen = strnlen(digits, 11);
    /* Canonical decimal, so that one snapshot has one name. */
    if (glen < 1 || glen > KGET_MAX_GROUP_LEN || !chars_valid(name, glen, "._-") ||
        dlen < 1 || dlen > 10 || (dlen > 1 && digits[0] == '0')) {
        return FALSE;
    }
    for (gsize i = 0; i < dlen; i++) {
        if (!g_ascii_isdigit(digits[i])) {
            return FALSE;
        }
        v = v * 10 + (guint64)(digits[i] - '0');
    }
    if (v > G_MAXUINT32) {
        return FALSE;
    }
    if (group) {
        memcpy(group, name, glen);
        group[glen] = '\0';
    }
    if (seq) {
        *seq = (guint32)v;
    }
    return TRUE;
}

gboolean
kget_snapshot_name_valid(const char *name)
{
    return kget_snapshot_name_split(name, NULL, NULL);
}

gboolean
kget_item_name_valid(const char *name)
{
    gsize len = strnlen(name, KGET_MAX_ITEM_LEN + 1);

    return len >= 1 && len <= KGET_MAX_ITEM_LEN &&
           chars_valid(name, len, "._:/-") && !strstr(name, "..");
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
    g_set_error(error, KGET_ERROR, KGET_ERROR_PROTOCOL,
                "%s body of %zu bytes is too short for %s", d->name,
                d->body_len, what);
    return FALSE;
}

static gboolean
dec_limit(Decoder *d, const char *what, guint64 v, guint64 min, guint64 max,
          GError **error)
{
    if (v >= min && v <= max) {
        return TRUE;
    }
    g_set_error(error, KGET_ERROR, KGET_ERROR_LIMIT,
                "%s %s %" G_GUINT64_FORMAT " is not in %" G_GUINT64_FORMAT
                "..%" G_GUINT64_FORMAT,
                d->name, what, v, min, max);
    return FALSE;
}

static gboolean
dec_u64(Decoder *d, const char *what, guint64 min, guint64 max, guint64 *v,
        GError **error)
{
    if (!vc_cursor_u64(&d->c, v)) {
        return dec_truncated(d, what, error);
    }
    return dec_limit(d, what, *v, min, max, error);
}

static gboolean
dec_u32(Decoder *d, const char *what, guint32 min, guint32 max, guint32 *v,
        GError **error)
{
    if (!vc_cursor_u32(&d->c, v)) {
        return dec_truncated(d, what, error);
    }
    return dec_limit(d, what, *v, min, max, error);
}

static gboolean
dec_flag(Decoder *d, const char *what, gboolean *v, GError **error)
{
    guint8 b;

    if (!vc_cursor_u8(&d->c, &b)) {
        return dec_truncated(d, what, error);
    }
    if (b > 1) {
        g_set_error(error, KGET_ERROR, KGET_ERROR_PROTOCOL,
                    "%s %s %u is neither 0 nor 1", d->name, what, b);
        return FALSE;
    }
    *v = b;
    return TRUE;
}

/* A u8-length name of at most @max bytes into @out, checked by @valid
 * unless it is empty and @empty_ok. */
static gboolean
dec_name(Decoder *d, const char *what, gsize max, gboolean empty_ok,
         gboolean (*valid)(const char *), char *out, GError **error)
{
    const guint8 *p;
    guint8 n;

    if (!vc_cursor_u8(&d->c, &n)) {
        return dec_truncated(d, what, error);
    }
    if (n > max) {
        g_set_error(error, KGET_ERROR, KGET_ERROR_LIMIT,
                    "%s %s of %u bytes exceeds %zu", d->name, what, n, max);
        return FALSE;
    }
    if (!vc_cursor_bytes(&d->c, n, &p)) {
        return dec_truncated(d, what, error);
    }
    memcpy(out, p, n);
    out[n] = '\0';
    if ((n == 0 && empty_ok) || (memchr(p, 0, n) == NULL && valid(out))) {
        return TRUE;
    }
    g_set_error(error, KGET_ERROR, KGET_ERROR_PROTOCOL, "%s %s is not valid",
                d->name, what);
    return FALSE;
}

static gboolean
dec_snapshot(Decoder *d, gboolean empty_ok, KgetMsg *msg, GError **error)
{
    return dec_name(d, "snapshot name", KGET_MAX_SNAPSHOT_LEN, empty_ok,
                    kget_snapshot_name_valid, msg->snapshot, error);
}

static gboolean
dec_item(Decoder *d, KgetMsg *msg, GError **error)
{
    return dec_name(d, "item name", KGET_MAX_ITEM_LEN, FALSE,
                    kget_item_name_valid, msg->item, error);
}

static gboolean
dec_bytes(Decoder *d, gsize len, const char *what, const guint8 **p,
          GError **error)
{
    if (vc_cursor_bytes(&d->c, len, p)) {
        return TRUE;
    }
    return dec_truncated(d, what, error);
}

static gboolean
dec_hashes(Decoder *d, guint32 min, KgetMsg *msg, GError **error)
{
    const guint8 *p;

    if (!dec_u32(d, "count", min, KGET_MAX_BATCH, &msg->count, error) ||
        !dec_bytes(d, (gsize)msg->count * VC_PAGE_HASH_LEN, "its hashes", &p,
                   error)) {
        return FALSE;
    }
    msg->hashes = (const VcPageHash *)p;
    return TRUE;
}

static gboolean
dec_have_reply(Decoder *d, KgetMsg *msg, GError **error)
{
    gsize n;

    if (!dec_u32(d, "count", 1, KGET_MAX_BATCH, &msg->count, error)) {
        return FALSE;
    }
    n = (msg->count + 7) / 8;
    if (!dec_bytes(d, n, "its bitmap", &msg->bitmap, error)) {
        return FALSE;
    }
    if (msg->count % 8 && (msg->bitmap[n - 1] >> (msg->count % 8)) != 0) {
        g_set_error(error, KGET_ERROR, KGET_ERROR_PROTOCOL,
                    "%s bitmap has bits set past its count", d->name);
        return FALSE;
    }
    return TRUE;
}

/* PUT (with hashes) or GET reply (without; length 0 allowed). */
static gboolean
dec_chunks(Decoder *d, gboolean with_hash, KgetMsg *msg, GError **error)
{
    const guint8 *start;

    if (!dec_u32(d, "count", 1, KGET_MAX_BATCH, &msg->count, error)) {
        return FALSE;
    }
    start = d->c.data;
    for (guint32 i = 0; i < msg->count; i++) {
        const guint8 *p;
        guint16 len;

        if ((with_hash && !vc_cursor_bytes(&d->c, VC_PAGE_HASH_LEN, &p)) ||
            !vc_cursor_u16(&d->c, &len)) {
            return dec_truncated(d, "its chunk headers", error);
        }
        if (len > KGET_CHUNK_MAX || (with_hash && len == 0)) {
            g_set_error(error, KGET_ERROR, KGET_ERROR_LIMIT,
                        "%s chunk %u has length %u", d->name, i, len);
            return FALSE;
        }
        if (!vc_cursor_bytes(&d->c, len, &p)) {
            return dec_truncated(d, "its chunk data", error);
        }
    }
    msg->records = start;
    msg->records_len = (gsize)(d->c.data - start);
    return TRUE;
}

static gboolean
dec_seal(Decoder *d, KgetMsg *msg, GError **error)
{
    const guint8 *start, *p;

    if (!dec_snapshot(d, FALSE, msg, error) ||
        !dec_u32(d, "item count", 1, KGET_MAX_BATCH, &msg->count, error)) {
        return FALSE;
    }
    start = d->c.data;
    for (guint32 i = 0; i < msg->count; i++) {
        if (!dec_item(d, msg, error)) {
            return FALSE;
        }
    }
    msg->records = start;
    msg->records_len = (gsize)(d->c.data - start);
    msg->item[0] = '\0';
    if (!dec_u32(d, "metadata length", 0, KGET_MAX_META_LEN, &msg->meta_len,
                 error) ||
        !dec_bytes(d, msg->meta_len, "its metadata", &p, error)) {
        return FALSE;
    }
    if (!g_utf8_validate_len((const char *)p, msg->meta_len, NULL)) {
        g_set_error(error, KGET_ERROR, KGET_ERROR_PROTOCOL,
                    "%s metadata is not valid UTF-8", d->name);
        return FALSE;
    }
    msg->meta = (const char *)p;
    return TRUE;
}

static gboolean
dec_list_entry(Decoder *d, KgetListEntry *e, GError **error)
{
    guint64 t;

    if (!dec_name(d, "snapshot name", KGET_MAX_SNAPSHOT_LEN, FALSE,
                  kget_snapshot_name_valid, e->name, error) ||
        !dec_flag(d, "sealed flag", &e->sealed, error) ||
        !dec_u64(d, "sealed time", 0, G_MAXINT64, &t, error) ||
        !dec_u32(d, "item count", 0, G_MAXUINT32, &e->n_items, error) ||
        !dec_u64(d, "bytes", 0, G_MAXUINT64, &e->bytes, error) ||
        !dec_u64(d, "stored bytes", 0, G_MAXUINT64, &e->stored_bytes, error) ||
        !dec_u64(d, "new bytes", 0, G_MAXUINT64, &e->new_bytes, error)) {
        return FALSE;
    }
    e->sealed_time = (gint64)t;
    return TRUE;
}

static gboolean
dec_list_reply(Decoder *d, KgetMsg *msg, GError **error)
{
    gboolean truncated;
    KgetListEntry e;
    const guint8 *start;

    if (!dec_u64(d, "chunks", 0, G_MAXUINT64, &msg->n1, error) ||
        !dec_u64(d, "bytes", 0, G_MAXUINT64, &msg->n2, error) ||
        !dec_flag(d, "truncated flag", &truncated, error) ||
        !dec_u32(d, "count", 0, KGET_MAX_LIST, &msg->count, error)) {
        return FALSE;
    }
    msg->n3 = truncated;
    start = d->c.data;
    for (guint32 i = 0; i < msg->count; i++) {
        if (!dec_list_entry(d, &e, error)) {
            return FALSE;
        }
    }
    msg->records = start;
    msg->records_len = (gsize)(d->c.data - start);
    return TRUE;
}

static gboolean
dec_get_item_reply(Decoder *d, KgetMsg *msg, GError **error)
{
    guint64 blocks;

    if (!dec_u64(d, "size", 0, KGET_MAX_ITEM_SIZE, &msg->size, error)) {
        return FALSE;
    }
    blocks = (msg->size + VC_PAGE_SIZE - 1) / VC_PAGE_SIZE;
    if (!dec_u64(d, "first block", 0, blocks, &msg->first, error) ||
        !dec_hashes(d, 0, msg, error)) {
        return FALSE;
    }
    return dec_limit(d, "last block", msg->first + msg->count, 0, blocks,
                     error);
}

static gboolean
dec_counters(Decoder *d, KgetMsg *msg, GError **error)
{
    guint64 *v[] = {&msg->n1, &msg->n2, &msg->n3, &msg->n4};
    guint n = n_counters(msg->type);

    for (guint i = 0; i < n; i++) {
        if (!vc_cursor_u64(&d->c, v[i])) {
            return dec_truncated(d, "its counters", error);
        }
    }
    switch (msg->type) {
    case KGET_REPLY(KGET_MSG_PUT):
        return dec_limit(d, "new chunks", msg->n1, 0, KGET_MAX_BATCH, error) &&
               dec_limit(d, "new bytes", msg->n2, 0, msg->n1 * KGET_CHUNK_MAX,
                         error);
    case KGET_REPLY(KGET_MSG_ITEM_END):
        return dec_limit(d, "stored bytes", msg->n2, 0, KGET_MAX_ITEM_SIZE,
                         error) &&
               dec_limit(d, "new bytes", msg->n1, 0, msg->n2, error);
    case KGET_REPLY(KGET_MSG_VERIFY):
        return dec_limit(d, "corrupt chunks", msg->n2, 0, msg->n1, error);
    default:
        return TRUE;
    }
}

static gboolean
dec_error(Decoder *d, KgetMsg *msg, GError **error)
{
    const guint8 *text;
    guint16 n;

    if (!dec_u32(d, "code", KGET_ERROR_PROTOCOL, KGET_ERROR_LAST_WIRE,
                 &msg->error_code, error)) {
        return FALSE;
    }
    if (!vc_cursor_u16(&d->c, &n)) {
        return dec_truncated(d, "its message length", error);
    }
    if (!dec_limit(d, "message length", n, 0, KGET_MAX_ERROR_LEN, error) ||
        !dec_bytes(d, n, "its message", &text, error)) {
        return FALSE;
    }
    /* g_utf8_validate_len() also rejects NUL bytes. */
    if (!g_utf8_validate_len((const char *)text, n, NULL)) {
        g_set_error(error, KGET_ERROR, KGET_ERROR_PROTOCOL,
                    "%s message is not valid UTF-8", d->name);
        return FALSE;
    }
    memcpy(msg->error_message, text, n);
    msg->error_message[n] = '\0';
    return TRUE;
}

static gboolean
dec_fixed(Decoder *d, guint8 *out, gsize len, const char *what,
          GError **error)
{
    const guint8 *p;

    if (!dec_bytes(d, len, what, &p, error)) {
        return FALSE;
    }
    memcpy(out, p, len);
    return TRUE;
}

static gboolean
dec_body(Decoder *d, KgetMsg *msg, GError **error)
{
    if (is_empty_type(msg->type)) {
        return TRUE;
    }
    if (n_counters(msg->type) > 0) {
        return dec_counters(d, msg, error);
    }
    switch (msg->type) {
    case KGET_MSG_HELLO:
        return dec_fixed(d, msg->nonce, KGET_NONCE_LEN, "its nonce", error);
    case KGET_REPLY(KGET_MSG_HELLO):
        return dec_fixed(d, msg->nonce, KGET_NONCE_LEN, "its nonce", error) &&
               dec_fixed(d, msg->mac, KGET_MAC_LEN, "its proof", error);
    case KGET_MSG_AUTH:
        return dec_fixed(d, msg->mac, KGET_MAC_LEN, "its proof", error);
    case KGET_MSG_HAVE:
    case KGET_MSG_GET:
        return dec_hashes(d, 1, msg, error);
    case KGET_REPLY(KGET_MSG_HAVE):
        return dec_have_reply(d, msg, error);
    case KGET_MSG_CREDIT:
    case KGET_MSG_GRANT:
        return dec_u64(d, "bytes", 1, KGET_MAX_CREDIT, &msg->bytes, error);
    case KGET_MSG_PUT:
        return dec_chunks(d, TRUE, msg, error);
    case KGET_REPLY(KGET_MSG_GET):
        return dec_chunks(d, FALSE, msg, error);
    case KGET_MSG_ITEM_BEGIN:
        return dec_snapshot(d, FALSE, msg, error) && dec_item(d, msg, error) &&
               dec_u64(d, "size", 0, KGET_MAX_ITEM_SIZE, &msg->size, error);
    case KGET_MSG_ITEM_BLOCKS:
        return dec_u64(d, "first block", 0, MAX_BLOCKS, &msg->first, error) &&
               dec_hashes(d, 1, msg, error) &&
               dec_limit(d, "last block", msg->first + msg->count, 0,
                         MAX_BLOCKS, error);
    case KGET_MSG_SEAL:
        return dec_seal(d, msg, error);
    case KGET_MSG_LIST:
        return dec_flag(d, "pending flag", &msg->pending, error) &&
               dec_name(d, "group name", KGET_MAX_GROUP_LEN, TRUE,
                        kget_group_name_valid, msg->group, error);
    case KGET_REPLY(KGET_MSG_LIST):
        return dec_list_reply(d, msg, error);
    case KGET_MSG_GET_ITEM:
        return dec_snapshot(d, FALSE, msg, error) && dec_item(d, msg, error) &&
               dec_u64(d, "first block", 0, MAX_BLOCKS, &msg->first, error) &&
               dec_u32(d, "count", 1, KGET_MAX_BATCH, &msg->count, error);
    case KGET_REPLY(KGET_MSG_GET_ITEM):
        return dec_get_item_reply(d, msg, error);
    case KGET_MSG_VERIFY:
        return dec_snapshot(d, TRUE, msg, error);
    case KGET_MSG_RM:
        return dec_snapshot(d, FALSE, msg, error);
    case KGET_MSG_GC:
        return dec_u32(d, "keep", 0, KGET_MAX_KEEP, &msg->keep, error);
    case KGET_MSG_ERROR:
        return dec_error(d, msg, error);
    default:
        /* Unreachable: known_type_name() let only the types above in. */
        g_set_error(error, KGET_ERROR, KGET_ERROR_PROTOCOL,
                    "%s cannot be decoded", d->name);
        return FALSE;
    }
}

gboolean
kget_msg_decode(const guint8 *payload, gsize len, KgetMsg *msg,
                GError **error)
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
    if (vc_cursor_u8(&d.c, &version) && version != KGET_PROTO_VERSION) {
        g_set_error(error, KGET_ERROR, KGET_ERROR_VERSION,
                    "protocol version %u is not supported (want %u)", version,
                    KGET_PROTO_VERSION);
        return FALSE;
    }
    if (!vc_cursor_u8(&d.c, &msg->type) || !vc_cursor_u16(&d.c, &flags) ||
        !vc_cursor_u32(&d.c, &msg->id)) {
        g_set_error(error, KGET_ERROR, KGET_ERROR_PROTOCOL,
                    "payload of %zu bytes is shorter than the %u-byte header",
                    len, KGET_HEADER_LEN);
        msg->type = 0;
        msg->id = 0;
        return FALSE;
    }
    d.name = known_type_name(msg->type);
    if (!d.name) {
        g_set_error(error, KGET_ERROR, KGET_ERROR_PROTOCOL,
                    "message type 0x%02x is unknown", msg->type);
        return FALSE;
    }
    if (flags != 0) {
        g_set_error(error, KGET_ERROR, KGET_ERROR_PROTOCOL,
                    "%s flags 0x%04x are not 0", d.name, flags);
        return FALSE;
    }
    d.body_len = d.c.left;
    if (!dec_body(&d, msg, error)) {
        return FALSE;
    }
    if (d.c.left > 0) {
        g_set_error(error, KGET_ERROR, KGET_ERROR_PROTOCOL,
                    "%s has %zu trailing bytes", d.name, d.c.left);
        return FALSE;
    }
    return TRUE;
}

void
kget_msg_chunks(const KgetMsg *msg, KgetChunk *out)
{
    gboolean with_hash = msg->type == KGET_MSG_PUT;
    VcCursor c;

    g_return_if_fail(with_hash || msg->type == KGET_REPLY(KGET_MSG_GET));

    /* kget_msg_decode() walked these records already. */
    vc_cursor_init(&c, msg->records, msg->records_len);
    for (guint32 i = 0; i < msg->count; i++) {
        const guint8 *p = NULL;

        if (with_hash) {
            vc_cursor_bytes(&c, VC_PAGE_HASH_LEN, &p);
        }
        out[i].hash = (const VcPageHash *)p;
        vc_cursor_u16(&c, &out[i].len);
        vc_cursor_bytes(&c, out[i].len, &out[i].data);
    }
}

char **
kget_msg_seal_items(const KgetMsg *msg)
{
    GPtrArray *names = g_ptr_array_new();
    VcCursor c;

    g_return_val_if_fail(msg->type == KGET_MSG_SEAL, NULL);

    vc_cursor_init(&c, msg->records, msg->records_len);
    for (guint32 i = 0; i < msg->count; i++) {
        const guint8 *p;
        guint8 n;

        vc_cursor_u8(&c, &n);
        vc_cursor_bytes(&c, n, &p);
        g_ptr_array_add(names, g_strndup((const char *)p, n));
    }
    g_ptr_array_add(names, NULL);
    return (char **)g_ptr_array_free(names, FALSE);
}

void
kget_msg_list_entries(const KgetMsg *msg, KgetListEntry *out)
{
    Decoder d = {.name = "LIST-REPLY"};

    g_return_if_fail(msg->type == KGET_REPLY(KGET_MSG_LIST));

    /* Decoding again cannot fail: kget_msg_decode() accepted it. */
    vc_cursor_init(&d.c, msg->records, msg->records_len);
    for (guint32 i = 0; i < msg->count; i++) {
        dec_list_entry(&d, &out[i], NULL);
    }
}

/* Encoding */

/* Starts a frame; returns where, for frame_end(). */
static guint
frame_begin(GByteArray *out, guint8 type, guint32 id, gsize body_len)
{
    guint start = out->len;

    /* Grow the allocation once for a large message. */
    g_byte_array_set_size(out, start + VC_FRAME_HEADER_LEN + KGET_HEADER_LEN +
                                   (guint)body_len);
    g_byte_array_set_size(out, start);
    vc_put_u32(out, 0); /* the length, patched by frame_end() */
    vc_put_u8(out, KGET_PROTO_VERSION);
    vc_put_u8(out, type);
    vc_put_u16(out, 0);
    vc_put_u32(out, id);
    return start;
}

static void
frame_end(GByteArray *out, guint start)
{
    gsize len = out->len - start - VC_FRAME_HEADER_LEN;
    guint8 *p = out->data + start;

    g_assert(len <= KGET_MAX_PAYLOAD);
    p[0] = (guint8)(len >> 24);
    p[1] = (guint8)(len >> 16);
    p[2] = (guint8)(len >> 8);
    p[3] = (guint8)len;
}

static void
put_name(GByteArray *out, const char *name)
{
    gsize n = strlen(name);

    g_assert(n <= G_MAXUINT8);
    vc_put_u8(out, (guint8)n);
    g_byte_array_append(out, (const guint8 *)name, (guint)n);
}

void
kget_encode_empty(GByteArray *out, guint8 type, guint32 id)
{
    g_return_if_fail(is_empty_type(type));

    frame_end(out, frame_begin(out, type, id, 0));
}

void
kget_encode_hello(GByteArray *out, guint32 id, const guint8 *nonce)
{
    guint start = frame_begin(out, KGET_MSG_HELLO, id, KGET_NONCE_LEN);

    g_byte_array_append(out, nonce, KGET_NONCE_LEN);
    frame_end(out, start);
}

void
kget_encode_hello_reply(GByteArray *out, guint32 id, const guint8 *nonce,
                        const guint8 *mac)
{
    guint start = frame_begin(out, KGET_REPLY(KGET_MSG_HELLO), id,
                              KGET_NONCE_LEN + KGET_MAC_LEN);

    g_byte_array_append(out, nonce, KGET_NONCE_LEN);
    g_byte_array_append(out, mac, KGET_MAC_LEN);
    frame_end(out, start);
}

void
kget_encode_auth(GByteArray *out, guint32 id, const guint8 *mac)
{
    guint start = frame_begin(out, KGET_MSG_AUTH, id, KGET_MAC_LEN);

    g_byte_array_append(out, mac, KGET_MAC_LEN);
    frame_end(out, start);
}

static void
put_hashes(GByteArray *out, const VcPageHash *hashes, guint32 count)
{
    vc_put_u32(out, count);
    if (count > 0) {
        g_byte_array_append(out, (const guint8 *)hashes,
                            count * VC_PAGE_HASH_LEN);
    }
}

void
kget_encode_hashes(GByteArray *out, guint8 type, guint32 id,
                   const VcPageHash *hashes, guint32 count)
{
    guint start;

    g_return_if_fail(type == KGET_MSG_HAVE || type == KGET_MSG_GET);
    g_return_if_fail(count >= 1 && count <= KGET_MAX_BATCH && hashes);

    start = frame_begin(out, type, id, 4 + (gsize)count * VC_PAGE_HASH_LEN);
    put_hashes(out, hashes, count);
    frame_end(out, start);
}

void
kget_encode_have_reply(GByteArray *out, guint32 id, guint32 count,
                       const guint8 *bitmap)
{
    guint n = (count + 7) / 8;
    guint start;

    g_return_if_fail(count >= 1 && count <= KGET_MAX_BATCH && bitmap);
    g_return_if_fail(count % 8 == 0 || (bitmap[n - 1] >> (count % 8)) == 0);

    start = frame_begin(out, KGET_REPLY(KGET_MSG_HAVE), id, 4 + n);
    vc_put_u32(out, count);
    g_byte_array_append(out, bitmap, n);
    frame_end(out, start);
}

void
kget_encode_credit(GByteArray *out, guint8 type, guint32 id, guint64 bytes)
{
    guint start;

    g_return_if_fail(type == KGET_MSG_CREDIT || type == KGET_MSG_GRANT);
    g_return_if_fail(bytes >= 1 && bytes <= KGET_MAX_CREDIT);

    start = frame_begin(out, type, id, 8);
    vc_put_u64(out, bytes);
    frame_end(out, start);
}

static void
put_chunks(GByteArray *out, guint8 type, guint32 id, const KgetChunk *chunks,
           guint32 count, gboolean with_hash)
{
    gsize body = 4;
    guint start;

    g_return_if_fail(count >= 1 && count <= KGET_MAX_BATCH && chunks);
    for (guint32 i = 0; i < count; i++) {
        g_return_if_fail(chunks[i].len <= KGET_CHUNK_MAX);
        g_return_if_fail(!with_hash || (chunks[i].hash && chunks[i].len > 0));
        g_return_if_fail(chunks[i].len == 0 || chunks[i].data);
        body += (with_hash ? VC_PAGE_HASH_LEN : 0) + 2 + chunks[i].len;
    }
    start = frame_begin(out, type, id, body);
    vc_put_u32(out, count);
    for (guint32 i = 0; i < count; i++) {
        if (with_hash) {
            g_byte_array_append(out, chunks[i].hash->bytes, VC_PAGE_HASH_LEN);
        }
        vc_put_u16(out, chunks[i].len);
        if (chunks[i].len > 0) {
            g_byte_array_append(out, chunks[i].data, chunks[i].len);
        }
    }
    frame_end(out, start);
}

void
kget_encode_put(GByteArray *out, guint32 id, const KgetChunk *chunks,
                guint32 count)
{
    put_chunks(out, KGET_MSG_PUT, id, chunks, count, TRUE);
}

void
kget_encode_get_reply(GByteArray *out, guint32 id, const KgetChunk *chunks,
                      guint32 count)
{
    put_chunks(out, KGET_REPLY(KGET_MSG_GET), id, chunks, count, FALSE);
}

void
kget_encode_item_begin(GByteArray *out, guint32 id, const char *snapshot,
                       const char *item, guint64 size)
{
    guint start;

    g_return_if_fail(kget_snapshot_name_valid(snapshot));
    g_return_if_fail(kget_item_name_valid(item));
    g_return_if_fail(size <= KGET_MAX_ITEM_SIZE);

    start = frame_begin(out, KGET_MSG_ITEM_BEGIN, id,
                        2 + strlen(snapshot) + strlen(item) + 8);
    put_name(out, snapshot);
    put_name(out, item);
    vc_put_u64(out, size);
    frame_end(out, start);
}

void
kget_encode_item_blocks(GByteArray *out, guint32 id, guint64 first,
                        const VcPageHash *hashes, guint32 count)
{
    guint start;

    g_return_if_fail(count >= 1 && count <= KGET_MAX_BATCH && hashes);
    g_return_if_fail(first + count <= MAX_BLOCKS);

    start = frame_begin(out, KGET_MSG_ITEM_BLOCKS, id,
                        12 + (gsize)count * VC_PAGE_HASH_LEN);
    vc_put_u64(out, first);
    put_hashes(out, hashes, count);
    frame_end(out, start);
}

void
kget_encode_seal(GByteArray *out, guint32 id, const char *snapshot,
                 const char *const *items, guint32 n_items, const char *meta,
                 gsize meta_len)
{
    gsize body = 1 + strlen(snapshot) + 4 + 4 + meta_len;
    guint start;

    g_return_if_fail(kget_snapshot_name_valid(snapshot));
    g_return_if_fail(n_items >= 1 && n_items <= KGET_MAX_BATCH && items);
    g_return_if_fail(meta_len <= KGET_MAX_META_LEN);
    g_return_if_fail(meta_len == 0 ||
                     g_utf8_validate_len(meta, meta_len, NULL));
    for (guint32 i = 0; i < n_items; i++) {
        g_return_if_fail(kget_item_name_valid(items[i]));
        body += 1 + strlen(items[i]);
    }
    start = frame_begin(out, KGET_MSG_SEAL, id, body);
    put_name(out, snapshot);
    vc_put_u32(out, n_items);
    for (guint32 i = 0; i < n_items; i++) {
        put_name(out, items[i]);
    }
    vc_put_u32(out, (guint32)meta_len);
    if (meta_len > 0) {
        g_byte_array_append(out, (const guint8 *)meta, (guint)meta_len);
    }
    frame_end(out, start);
}

void
kget_encode_list(GByteArray *out, guint32 id, const char *group,
                 gboolean pending)
{
    guint start;

    g_return_if_fail(group != NULL);
    g_return_if_fail(group[0] == '\0' || kget_group_name_valid(group));

    start = frame_begin(out, KGET_MSG_LIST, id, 2 + strlen(group));
    vc_put_u8(out, pending ? 1 : 0);
    put_name(out, group);
    frame_end(out, start);
}

void
kget_encode_list_reply(GByteArray *out, guint32 id, guint64 chunks,
                       guint64 bytes, gboolean truncated,
                       const KgetListEntry *entries, guint32 count)
{
    guint start;

    g_return_if_fail(count <= KGET_MAX_LIST && (count == 0 || entries));
    for (guint32 i = 0; i < count; i++) {
        g_return_if_fail(kget_snapshot_name_valid(entries[i].name));
        g_return_if_fail(entries[i].sealed_time >= 0);
    }
    start = frame_begin(out, KGET_REPLY(KGET_MSG_LIST), id,
                        21 + (gsize)count * (KGET_MAX_SNAPSHOT_LEN + 42));
    vc_put_u64(out, chunks);
    vc_put_u64(out, bytes);
    vc_put_u8(out, truncated ? 1 : 0);
    vc_put_u32(out, count);
    for (guint32 i = 0; i < count; i++) {
        const KgetListEntry *e = &entries[i];

        put_name(out, e->name);
        vc_put_u8(out, e->sealed ? 1 : 0);
        vc_put_u64(out, (guint64)e->sealed_time);
        vc_put_u32(out, e->n_items);
        vc_put_u64(out, e->bytes);
        vc_put_u64(out, e->stored_bytes);
        vc_put_u64(out, e->new_bytes);
    }
    frame_end(out, start);
}

void
kget_encode_get_item(GByteArray *out, guint32 id, const char *snapshot,
                     const char *item, guint64 first, guint32 max)
{
    guint start;

    g_return_if_fail(kget_snapshot_name_valid(snapshot));
    g_return_if_fail(kget_item_name_valid(item));
    g_return_if_fail(first <= MAX_BLOCKS);
    g_return_if_fail(max >= 1 && max <= KGET_MAX_BATCH);

    start = frame_begin(out, KGET_MSG_GET_ITEM, id,
                        2 + strlen(snapshot) + strlen(item) + 12);
    put_name(out, snapshot);
    put_name(out, item);
    vc_put_u64(out, first);
    vc_put_u32(out, max);
    frame_end(out, start);
}

void
kget_encode_get_item_reply(GByteArray *out, guint32 id, guint64 size,
                           guint64 first, const VcPageHash *hashes,
                           guint32 count)
{
    guint64 blocks = (size + VC_PAGE_SIZE - 1) / VC_PAGE_SIZE;
    guint start;

    g_return_if_fail(size <= KGET_MAX_ITEM_SIZE);
    g_return_if_fail(count <= KGET_MAX_BATCH && (count == 0 || hashes));
    g_return_if_fail(first <= blocks && first + count <= blocks);

    start = frame_begin(out, KGET_REPLY(KGET_MSG_GET_ITEM), id,
                        20 + (gsize)count * VC_PAGE_HASH_LEN);
    vc_put_u64(out, size);
    vc_put_u64(out, first);
    put_hashes(out, hashes, count);
    frame_end(out, start);
}

void
kget_encode_name(GByteArray *out, guint8 type, guint32 id,
                 const char *snapshot)
{
    guint start;

    g_return_if_fail(type == KGET_MSG_VERIFY || type == KGET_MSG_RM);
    g_return_if_fail(kget_snapshot_name_valid(snapshot) ||
                     (type == KGET_MSG_VERIFY && snapshot[0] == '\0'));

    start = frame_begin(out, type, id, 1 + strlen(snapshot));
    put_name(out, snapshot);
    frame_end(out, start);
}

void
kget_encode_gc(GByteArray *out, guint32 id, guint32 keep)
{
    guint start;

    g_return_if_fail(keep <= KGET_MAX_KEEP);

    start = frame_begin(out, KGET_MSG_GC, id, 4);
    vc_put_u32(out, keep);
    frame_end(out, start);
}

void
kget_encode_counters(GByteArray *out, guint8 type, guint32 id, guint64 n1,
                     guint64 n2, guint64 n3, guint64 n4)
{
    guint64 v[] = {n1, n2, n3, n4};
    guint n = n_counters(type);
    guint start;

    g_return_if_fail(n > 0);

    start = frame_begin(out, type, id, 8 * n);
    for (guint i = 0; i < n; i++) {
        vc_put_u64(out, v[i]);
    }
    frame_end(out, start);
}

void
kget_encode_error(GByteArray *out, guint32 id, guint32 code,
                  const char *message)
{
    const char *end = NULL;
    gsize len;
    guint start;

    g_return_if_fail(code >= KGET_ERROR_PROTOCOL &&
                     code <= KGET_ERROR_LAST_WIRE);

    /* Messages often quote peer input: cut to the limit and to valid
     * UTF-8 rather than fail. */
    if (!message) {
        message = "";
    }
    len = strnlen(message, KGET_MAX_ERROR_LEN);
    g_utf8_validate_len(message, len, &end);
    len = (gsize)(end - message);

    start = frame_begin(out, KGET_MSG_ERROR, id, 6 + len);
    vc_put_u32(out, code);
    vc_put_u16(out, (guint16)len);
    g_byte_array_append(out, (const guint8 *)message, (guint)len);
    frame_end(out, start);
}

/* Authentication */

void
kget_auth_proof(const guint8 *key, gsize key_len, gboolean for_server,
                const guint8 *client_nonce, const guint8 *server_nonce,
                guint8 *mac)
{
    static const char server_label[] = "kg1-server";
    static const char client_label[] = "kg1-client";
    const char *label = for_server ? server_label : client_label;
    struct hmac_sha256_ctx ctx;

    g_return_if_fail(key != NULL || key_len == 0);
    g_return_if_fail(client_nonce && server_nonce && mac);

    hmac_sha256_set_key(&ctx, key_len, key);
    hmac_sha256_update(&ctx, strlen(label), (const guint8 *)label);
    hmac_sha256_update(&ctx, KGET_NONCE_LEN,
                       for_server ? client_nonce : server_nonce);
    hmac_sha256_update(&ctx, KGET_NONCE_LEN,
                       for_server ? server_nonce : client_nonce);
    hmac_sha256_digest(&ctx, KGET_MAC_LEN, mac);
    /* The context holds key-derived state. */
    explicit_bzero(&ctx, sizeof(ctx));
}

gboolean
kget_auth_equal(const guint8 *a, const guint8 *b)
{
    volatile guint8 diff = 0;

    for (gsize i = 0; i < KGET_MAC_LEN; i++) {
        diff |= a[i] ^ b[i];
    }
    return diff == 0;
}

gboolean
kget_key_load(const char *path, GBytes **key, GError **error)
{
    g_autofree char *data = NULL;
    gsize len = 0;
    g_autoptr(GError) local = NULL;

    if (!g_file_get_contents(path, &data, &len, &local)) {
        g_set_error(error, KGET_ERROR, KGET_ERROR_IO,
                    "cannot read site key: %s", local->message);
        return FALSE;
    }
    while (len > 0 && g_ascii_isspace(data[len - 1])) {
        len--;
    }
    if (len < 16 || len > 4096) {
        explicit_bzero(data, len);
        g_set_error(error, KGET_ERROR, KGET_ERROR_IO,
                    "site key in '%s' has %zu bytes, needs 16 to 4096", path,
                    len);
        return FALSE;
    }
    *key = g_bytes_new(data, len);
    explicit_bzero(data, len);
    return TRUE;
}

gboolean
kget_parse_address(const char *address, char **host, guint16 *port,
                   GError **error)
{
    g_autofree char *h = NULL;
    const char *port_str = NULL;
    guint64 p = KGET_DEFAULT_PORT;

    if (address[0] == '[') {
        const char *end = strchr(address, ']');

        if (!end || (end[1] != '\0' && end[1] != ':')) {
            goto bad;
        }
        h = g_strndup(address + 1, (gsize)(end - address - 1));
        port_str = end[1] == ':' ? end + 2 : NULL;
    } else {
        const char *colon = strrchr(address, ':');

        /* More than one colon: a bare IPv6 address without a port. */
        if (colon && strchr(address, ':') == colon) {
            h = g_strndup(address, (gsize)(colon - address));
            port_str = colon + 1;
        } else {
            h = g_strdup(address);
        }
    }
    if (port_str && (!g_ascii_string_to_unsigned(port_str, 10, 1, 65535, &p,
                                                 NULL))) {
        goto bad;
    }
    if (h[0] == '\0') {
        goto bad;
    }
    *host = g_steal_pointer(&h);
    *port = (guint16)p;
    return TRUE;
bad:
    g_set_error(error, KGET_ERROR, KGET_ERROR_PROTOCOL,
                "address '%s' is not HOST[:PORT]", address);
    return FALSE;
}
