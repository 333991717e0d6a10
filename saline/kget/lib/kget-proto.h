/*
 * Wire codec of the Kget+ protocol (kget <-> kget-store, TCP).
 * docs/protocols.md, "Kget+ protocol", is the specification.
 *
 * Framing and header are those of dht-pages: a be32 payload length, then
 *   u8 version (KGET_PROTO_VERSION), u8 type, u16 flags (0), u32 id
 * and the reply to a request has type (request | 0x80) and the same id.
 *
 * Decoding never copies bulk data: KgetMsg points into the payload, which
 * must outlive it. Every count and length is checked against the limits
 * below and against the payload size; trailing bytes are an error.
 */
#pragma once

#include <glib.h>

#include "vc-pagehash.h"

#define KGET_PROTO_VERSION 1
#define KGET_DEFAULT_PORT 7410
#define KGET_HEADER_LEN 8
#define KGET_MAX_BATCH 1024
#define KGET_CHUNK_MAX VC_PAGE_SIZE
#define KGET_NONCE_LEN 32
#define KGET_MAC_LEN 32
#define KGET_MAX_GROUP_LEN 64
/* GROUP@SEQ with SEQ a u32 in decimal. */
#define KGET_MAX_SNAPSHOT_LEN (KGET_MAX_GROUP_LEN + 1 + 10)
#define KGET_MAX_ITEM_LEN 128
#define KGET_MAX_ERROR_LEN 256
#define KGET_MAX_META_LEN (64 * 1024)
#define KGET_MAX_LIST 4096
/* The store keeps an item's block list in memory while it arrives. */
#define KGET_MAX_ITEM_SIZE (G_GUINT64_CONSTANT(64) << 30)
#define KGET_MAX_CREDIT (16 * 1024 * 1024)
#define KGET_MAX_KEEP 65535
/* The largest payload: a PUT of a full batch of full chunks. */
#define KGET_MAX_PAYLOAD                                                     \
    (KGET_HEADER_LEN + 4 +                                                   \
     KGET_MAX_BATCH * (VC_PAGE_HASH_LEN + 2 + KGET_CHUNK_MAX))

#define KGET_ERROR (kget_error_quark())
GQuark kget_error_quark(void);

/* Codes 1..8 travel in ERROR messages; the others are local. */
typedef enum {
    KGET_ERROR_PROTOCOL = 1, /* malformed message */
    KGET_ERROR_VERSION,      /* unsupported protocol version */
    KGET_ERROR_AUTH,         /* authentication failed */
    KGET_ERROR_LIMIT,        /* a count or size over its limit */
    KGET_ERROR_UNAVAILABLE,  /* the store cannot serve this now */
    KGET_ERROR_NOT_FOUND,    /* no such snapshot, item or chunk */
    KGET_ERROR_CORRUPT,      /* a stored chunk fails its hash */
    KGET_ERROR_REFUSED,      /* a valid request the store turns down */
    KGET_ERROR_IO,           /* a socket or file failed */
    KGET_ERROR_UNREACHABLE,  /* cannot connect to the store */
} KgetErrorCode;

#define KGET_ERROR_LAST_WIRE KGET_ERROR_REFUSED

typedef enum {
    KGET_MSG_HAVE = 0x01,
    KGET_MSG_CREDIT = 0x02, /* its reply is the GRANT */
    KGET_MSG_PUT = 0x03,
    KGET_MSG_ITEM_BEGIN = 0x04,
    KGET_MSG_ITEM_BLOCKS = 0x05,
    KGET_MSG_ITEM_END = 0x06,
    KGET_MSG_SEAL = 0x07,
    KGET_MSG_LIST = 0x08,
    KGET_MSG_GET_ITEM = 0x09,
    KGET_MSG_GET = 0x0a,
    KGET_MSG_VERIFY = 0x0b,
    KGET_MSG_GC = 0x0c,
    KGET_MSG_RM = 0x0d,
    KGET_MSG_HELLO = 0x20,
    KGET_MSG_AUTH = 0x21,
    KGET_MSG_ERROR = 0x7f,
} KgetMsgType;

#define KGET_REPLY(type) ((type) | 0x80)
#define KGET_MSG_GRANT KGET_REPLY(KGET_MSG_CREDIT)

/* One chunk of a PUT (hash set) or of a GET reply (hash NULL; len 0 for
 * a chunk the store does not hold). */
typedef struct {
    const VcPageHash *hash;
    const guint8 *data;
    guint16 len;
} KgetChunk;

/* One snapshot of a LIST reply. */
typedef struct {
    char name[KGET_MAX_SNAPSHOT_LEN + 1];
    gboolean sealed;
    gint64 sealed_time; /* unix seconds, 0 while pending */
    guint32 n_items;
    guint64 bytes;        /* sum of the items' sizes */
    guint64 stored_bytes; /* distinct chunk bytes the snapshot uses */
    guint64 new_bytes;    /* chunk bytes its items brought to the store */
} KgetListEntry;

typedef struct {
    guint8 type;
    guint32 id;

    /* HELLO, HELLO reply, AUTH. */
    guint8 nonce[KGET_NONCE_LEN];
    guint8 mac[KGET_MAC_LEN];

    /* HAVE, GET, ITEM_BLOCKS, GET_ITEM reply: count hashes. PUT, GET
     * reply: count chunks (kget_msg_chunks()). HAVE reply: count and a
     * bitmap of (count + 7) / 8 bytes, bit i set: hash i is missing.
     * GET_ITEM: count is the most hashes wanted. SEAL: count item names
     * (kget_msg_seal_items()). LIST reply: count entries
     * (kget_msg_list_entries()). */
    guint32 count;
    const VcPageHash *hashes;
    const guint8 *bitmap;
    const guint8 *records;
    gsize records_len;

    /* CREDIT and GRANT: bytes. */
    guint64 bytes;
    /* ITEM_BEGIN, GET_ITEM reply: item size. ITEM_BLOCKS, GET_ITEM and its
     * reply: index of the first block. */
    guint64 size;
    guint64 first;

    /* Names: ITEM_BEGIN, SEAL, GET_ITEM, VERIFY (may be empty: all), RM:
     * snapshot; ITEM_BEGIN, GET_ITEM: item; LIST: group (may be empty). */
    char snapshot[KGET_MAX_SNAPSHOT_LEN + 1];
    char item[KGET_MAX_ITEM_LEN + 1];
    char group[KGET_MAX_GROUP_LEN + 1];
    gboolean pending; /* LIST: include pending snapshots */

    /* SEAL: metadata, UTF-8, not NUL-terminated. */
    const char *meta;
    guint32 meta_len;

    /* GC: keep (0: the store's default). */
    guint32 keep;

    /* Replies with counters: PUT (n1 chunks new, n2 their bytes),
     * ITEM_END (n1 new bytes, n2 stored bytes), VERIFY (n1 chunks
     * checked, n2 corrupt, n3 missing), GC (n1 snapshots removed, n2
     * items removed, n3 chunks freed, n4 bytes freed), LIST (n1 chunks,
     * n2 bytes in the store, n3 1 if the list was cut). */
    guint64 n1, n2, n3, n4;

    /* ERROR. */
    guint32 error_code;
    char error_message[KGET_MAX_ERROR_LEN + 1];
} KgetMsg;

gboolean kget_msg_decode(const guint8 *payload, gsize len, KgetMsg *msg,
                         GError **error);
/* The chunks of a decoded PUT or GET reply: fills @out[0..count). */
void kget_msg_chunks(const KgetMsg *msg, KgetChunk *out);
/* The item names of a decoded SEAL, a NULL-terminated vector. */
char **kget_msg_seal_items(const KgetMsg *msg);
/* The entries of a decoded LIST reply: fills @out[0..count). */
void kget_msg_list_entries(const KgetMsg *msg, KgetListEntry *out);
const char *kget_msg_type_name(guint8 type);

/*
 * Encoders append one whole frame (length prefix included) to @out.
 * Arguments must be within the limits (programming error otherwise).
 */
void kget_encode_empty(GByteArray *out, guint8 type, guint32 id);
void kget_encode_hello(GByteArray *out, guint32 id, const guint8 *nonce);
void kget_encode_hello_reply(GByteArray *out, guint32 id,
                             const guint8 *nonce, const guint8 *mac);
void kget_encode_auth(GByteArray *out, guint32 id, const guint8 *mac);
/* HAVE or GET. */
void kget_encode_hashes(GByteArray *out, guint8 type, guint32 id,
                        const VcPageHash *hashes, guint32 count);
void kget_encode_have_reply(GByteArray *out, guint32 id, guint32 count,
                            const guint8 *bitmap);
/* CREDIT or GRANT. */
void kget_encode_credit(GByteArray *out, guint8 type, guint32 id,
                        guint64 bytes);
void kget_encode_put(GByteArray *out, guint32 id, const KgetChunk *chunks,
                     guint32 count);
void kget_encode_get_reply(GByteArray *out, guint32 id,
                           const KgetChunk *chunks, guint32 count);
void kget_encode_item_begin(GByteArray *out, guint32 id, const char *snapshot,
                            const char *item, guint64 size);
void kget_encode_item_blocks(GByteArray *out, guint32 id, guint64 first,
                             const VcPageHash *hashes, guint32 count);
void kget_encode_seal(GByteArray *out, guint32 id, const char *snapshot,
                      const char *const *items, guint32 n_items,
                      const char *meta, gsize meta_len);
void kget_encode_list(GByteArray *out, guint32 id, const char *group,
                      gboolean pending);
void kget_encode_list_reply(GByteArray *out, guint32 id, guint64 chunks,
                            guint64 bytes, gboolean truncated,
                            const KgetListEntry *entries, guint32 count);
void kget_encode_get_item(GByteArray *out, guint32 id, const char *snapshot,
                          const char *item, guint64 first, guint32 max);
void kget_encode_get_item_reply(GByteArray *out, guint32 id, guint64 size,
                                guint64 first, const VcPageHash *hashes,
                                guint32 count);
/* VERIFY ("" for every sealed snapshot) or RM. */
void kget_encode_name(GByteArray *out, guint8 type, guint32 id,
                      const char *snapshot);
void kget_encode_gc(GByteArray *out, guint32 id, guint32 keep);
/* Replies made of counters: PUT (2), ITEM_END (2), VERIFY (3), GC (4). */
void kget_encode_counters(GByteArray *out, guint8 type, guint32 id,
                          guint64 n1, guint64 n2, guint64 n3, guint64 n4);
/* @message is cut to its longest valid UTF-8 prefix of at most
 * KGET_MAX_ERROR_LEN bytes. */
void kget_encode_error(GByteArray *out, guint32 id, guint32 code,
                       const char *message);

/*
 * Authentication with the site key (HMAC-SHA256):
 *   server proof = HMAC(key, "kg1-server" | client nonce | server nonce)
 *   client proof = HMAC(key, "kg1-client" | server nonce | client nonce)
 */
void kget_auth_proof(const guint8 *key, gsize key_len, gboolean for_server,
                     const guint8 *client_nonce, const guint8 *server_nonce,
                     guint8 *mac);
gboolean kget_auth_equal(const guint8 *a, const guint8 *b);
/* Reads a site key file: at least 16 bytes once trailing white space is
 * cut, at most 4096. */
gboolean kget_key_load(const char *path, GBytes **key, GError **error);

/* Names (README.md, "Data model"). */
gboolean kget_snapshot_name_valid(const char *name);
/* Splits a valid snapshot name; @group must hold KGET_MAX_GROUP_LEN + 1. */
gboolean kget_snapshot_name_split(const char *name, char *group,
                                  guint32 *seq);
gboolean kget_group_name_valid(const char *name);
gboolean kget_item_name_valid(const char *name);

/* Block geometry of an item of @size bytes (README.md, "Data model"). */
static inline guint64
kget_n_blocks(guint64 size)
{
    return (size + VC_PAGE_SIZE - 1) / VC_PAGE_SIZE;
}

static inline guint16
kget_block_len(guint64 size, guint64 i)
{
    return (guint16)MIN((guint64)VC_PAGE_SIZE, size - i * VC_PAGE_SIZE);
}

/* HOST[:PORT] or [V6]:PORT; *host is newly allocated. */
gboolean kget_parse_address(const char *address, char **host, guint16 *port,
                            GError **error);
