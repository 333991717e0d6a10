/*
 * Wire codecs of the resolver protocol (local clients <-> dht-pagesd, on a
 * unix socket) and the peer protocol (dht-pagesd <-> dht-pagesd, TCP).
 * docs/protocols.md is the specification; this is its implementation.
 *
 * Every message is one frame (common/vc-frame.h: be32 payload length,
 * then the payload). A payload starts with an 8-byte header:
 *   u8 version, u8 type, u16 flags (0), u32 id
 * and the reply to a request has type (request | 0x80) and the same id.
 * The version is that of the type's protocol (DP_RESOLVER_VERSION,
 * DP_PEER_VERSION); ERROR always has version 1.
 *
 * Decoding never copies bulk data: DpMsg points into the payload, which
 * must outlive it. Every count and length is checked against the limits
 * below and against the payload size; trailing bytes are an error.
 */
#pragma once

#include <glib.h>

#include "vc-pagehash.h"

#define DP_RESOLVER_VERSION 1
#define DP_PEER_VERSION 2
#define DP_HEADER_LEN 8
#define DP_MAX_BATCH 1024
#define DP_NODE_ID_LEN 16
#define DP_MAX_HOLDERS 8
#define DP_NONCE_LEN 32
#define DP_MAC_LEN 32
#define DP_MAX_SITE_LEN 64
#define DP_MAX_ERROR_LEN 256
#define DP_MAX_JSON_LEN (256 * 1024)
#define DP_MAX_WAIT_MS 10000
/* The largest payload: a batch of hashes with pages (PUBLISH). */
#define DP_MAX_PAYLOAD                                                       \
    (DP_HEADER_LEN + 4 + DP_MAX_BATCH * (VC_PAGE_HASH_LEN + VC_PAGE_SIZE + 1))

#define DP_ERROR (dp_error_quark())
GQuark dp_error_quark(void);

typedef enum {
    DP_ERROR_PROTOCOL = 1, /* malformed message from a peer or client */
    DP_ERROR_VERSION,      /* unsupported protocol version */
    DP_ERROR_AUTH,         /* peer authentication failed */
    DP_ERROR_LIMIT,        /* a count or size over its limit */
    DP_ERROR_UNAVAILABLE,  /* the daemon cannot serve this now */
    DP_ERROR_IO,           /* a socket failed or closed */
} DpErrorCode;

typedef enum {
    /* resolver: local client -> daemon */
    DP_MSG_LOOKUP = 0x01,
    DP_MSG_PUBLISH = 0x02,
    DP_MSG_STATS = 0x03,
    /* peer: daemon -> daemon */
    DP_MSG_HELLO = 0x20,
    DP_MSG_AUTH = 0x21,
    DP_MSG_INDEX_ADD = 0x22,
    DP_MSG_INDEX_DEL = 0x23,
    DP_MSG_INDEX_QUERY = 0x24,
    DP_MSG_PAGE_GET = 0x25,
    DP_MSG_PING = 0x26,
    DP_MSG_CLAIM = 0x27,
    DP_MSG_CLAIM_DONE = 0x28,
    DP_MSG_CLAIM_DROP = 0x29,
    /* either side, in reply to anything */
    DP_MSG_ERROR = 0x7f,
} DpMsgType;

#define DP_REPLY(type) ((type) | 0x80)

typedef struct {
    guint8 bytes[DP_NODE_ID_LEN];
} DpNodeId;

typedef enum {
    DP_PAGE_MISS = 0,
    DP_PAGE_HIT = 1,
} DpPageStatus;

/* What the claims arbiter says of a missing page (CLAIM reply). */
typedef enum {
    DP_CLAIM_FETCH = 0,     /* the asker holds the claim: it fetches it */
    DP_CLAIM_HELD = 1,      /* a node holds it: fetch it there */
    DP_CLAIM_UNCLAIMED = 2, /* the wait ran out: fetch it, unclaimed */
    DP_CLAIM_WAITING = 3,   /* not on the wire: still in flight */
} DpClaimState;

typedef struct {
    guint8 type;
    guint32 id;

    /* Requests with hashes: LOOKUP, INDEX_ADD, INDEX_DEL, INDEX_QUERY,
     * PAGE_GET, CLAIM, CLAIM_DONE, CLAIM_DROP; replies INDEX_ADD,
     * INDEX_DEL, CLAIM_DONE and CLAIM_DROP carry only count. */
    guint32 count;
    const VcPageHash *hashes;

    /* LOOKUP and PAGE_GET replies: count statuses (DpPageStatus), then
     * one page per hit, packed in order. INDEX_QUERY reply: count holder
     * numbers (<= DP_MAX_HOLDERS), then that many node ids in order.
     * CLAIM reply: count states (DpClaimState, at most DP_CLAIM_UNCLAIMED),
     * then one node id per DP_CLAIM_HELD, in order. */
    const guint8 *status;
    const guint8 *pages;
    guint32 n_hits;
    const DpNodeId *holders;
    guint32 n_holders;

    /* CLAIM: how long the asker waits at most, 1..DP_MAX_WAIT_MS. */
    guint32 wait_ms;

    /* PUBLISH: count records of a hash then its page. */
    const guint8 *records;
    /* PUBLISH reply. */
    guint32 stored;
    guint32 rejected;

    /* HELLO request and reply, AUTH. */
    DpNodeId node_id;
    guint8 nonce[DP_NONCE_LEN];
    guint8 mac[DP_MAC_LEN];
    guint16 port;
    char site[DP_MAX_SITE_LEN + 1];

    /* ERROR. */
    guint32 error_code;
    char error_message[DP_MAX_ERROR_LEN + 1];

    /* STATS reply: UTF-8 JSON, not NUL-terminated. */
    const char *json;
    guint32 json_len;

    /* LOOKUP and PAGE_GET replies: hits before status i, so that
     * dp_msg_reply_page() is O(1). Private to dp-proto.c. */
    guint16 hit_rank[DP_MAX_BATCH];
} DpMsg;

/* Decode one frame payload. */
gboolean dp_msg_decode(const guint8 *payload, gsize len, DpMsg *msg,
                       GError **error);

/* Page @i of a decoded LOOKUP/PAGE_GET reply, NULL for a miss. O(1) after
 * dp_msg_decode, which indexes the hits. */
const guint8 *dp_msg_reply_page(const DpMsg *msg, guint32 i);

/*
 * Encoders append one whole frame (length prefix included) to @out.
 * Counts must be within the limits (programming error otherwise).
 */
void dp_encode_hashes(GByteArray *out, guint8 type, guint32 id,
                      const VcPageHash *hashes, guint32 count);
/* LOOKUP or PAGE_GET reply: pages[i] is the page for a hit, NULL for a
 * miss. */
void dp_encode_pages_reply(GByteArray *out, guint8 type, guint32 id,
                           const guint8 *const *pages, guint32 count);
/* The same reply without its pages, so that they need not be copied into
 * the frame: the caller sends the hit pages (status[i] DP_PAGE_HIT), in
 * order, right after what this appends. The frame length counts them. */
void dp_encode_pages_reply_head(GByteArray *out, guint8 type, guint32 id,
                                const guint8 *status, guint32 count);
void dp_encode_publish(GByteArray *out, guint32 id, const VcPageHash *hashes,
                       const guint8 *const *pages, guint32 count);
void dp_encode_publish_reply(GByteArray *out, guint32 id, guint32 stored,
                             guint32 rejected);
/* INDEX_ADD, INDEX_DEL, CLAIM_DONE or CLAIM_DROP reply: a count. */
void dp_encode_count_reply(GByteArray *out, guint8 type, guint32 id,
                           guint32 count);
/* INDEX_QUERY reply: n_holders[i] holders of hash i, packed in @holders. */
void dp_encode_query_reply(GByteArray *out, guint32 id,
                           const guint8 *n_holders, guint32 count,
                           const DpNodeId *holders);
/* CLAIM, and its reply: states[i] of hash i, one holder per
 * DP_CLAIM_HELD packed in @holders. */
void dp_encode_claim(GByteArray *out, guint32 id, guint32 wait_ms,
                     const VcPageHash *hashes, guint32 count);
void dp_encode_claim_reply(GByteArray *out, guint32 id, const guint8 *states,
                           guint32 count, const DpNodeId *holders);
void dp_encode_empty(GByteArray *out, guint8 type, guint32 id);
void dp_encode_stats_reply(GByteArray *out, guint32 id, const char *json,
                           gsize len);
/* @message is cut to its longest valid UTF-8 prefix of at most
 * DP_MAX_ERROR_LEN bytes (it often quotes peer input). */
void dp_encode_error(GByteArray *out, guint32 id, guint32 code,
                     const char *message);
void dp_encode_hello(GByteArray *out, guint32 id, const DpNodeId *node,
                     const guint8 *nonce, guint16 port, const char *site);
void dp_encode_hello_reply(GByteArray *out, guint32 id, const DpNodeId *node,
                           const guint8 *nonce, const guint8 *mac);
void dp_encode_auth(GByteArray *out, guint32 id, const guint8 *mac);

/*
 * Peer authentication (HMAC-SHA256 with the shared site key):
 *   server proof = HMAC(key, "dp1-server" | client nonce | server nonce |
 *                            client id | server id)
 *   client proof = HMAC(key, "dp1-client" | server nonce | client nonce |
 *                            client id | server id)
 */
void dp_auth_proof(const guint8 *key, gsize key_len, gboolean for_server,
                   const guint8 *client_nonce, const guint8 *server_nonce,
                   const DpNodeId *client_id, const DpNodeId *server_id,
                   guint8 *mac);
/* Constant-time comparison of two DP_MAC_LEN proofs. */
gboolean dp_auth_equal(const guint8 *a, const guint8 *b);

void dp_node_id_to_hex(const DpNodeId *id, char *hex /* 33 bytes */);
gboolean dp_node_id_from_hex(const char *hex, DpNodeId *id);
gboolean dp_node_id_equal(const DpNodeId *a, const DpNodeId *b);
const char *dp_msg_type_name(guint8 type);
