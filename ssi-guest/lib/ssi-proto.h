/*
 * The SSI wire protocol (docs/protocols.md, "SSI protocol"): one message
 * format for the members' UDP datagrams, their TCP frames and the local
 * control socket of the `ssi` command.
 *
 * A message is a fixed header, a body of tagged fields and, between
 * members, an HMAC-SHA256 with the cluster key:
 *
 *   "SSI" version:u8 type:u8 flags:u8 node:u16 cluster:u64
 *   incarnation:u64 seq:u64 time_ms:u64 body_len:u32
 *   body: { tag:u8 len:u32 value[len] }*
 *   mac[32]   HMAC(key, nonce | header | body); absent on the control socket
 *
 * On TCP each side first sends HELLO with a fresh nonce; every later
 * message on that connection is authenticated with the nonce of the side
 * that receives it, so a frame cannot be replayed on another connection.
 * Datagrams use no nonce: their receiver checks time_ms and that seq
 * grows per sender address (and a new incarnation is newer in time).
 */
#pragma once

#include <gio/gio.h>

#define SSI_PROTO_VERSION 1
#define SSI_PORT 7470
#define SSI_KEY_LEN 32
#define SSI_NONCE_LEN 16
#define SSI_MAC_LEN 32
/* 3 + 1 + 1 + 1 + 2 + 4 * 8 + 4: magic to body_len, as laid out above. */
#define SSI_HEADER_LEN 44
/* A frame or datagram is at most this long, a field's value too. */
#define SSI_MSG_MAX (2u * 1024 * 1024)
#define SSI_FIELDS_MAX 4096
/* A HELLO frame: header, a NONCE field, MAC. */
#define SSI_HELLO_MAX 256
#define SSI_MAX_NODES 63

typedef enum {
    /* Datagrams between members. */
    SSI_HEARTBEAT = 1,
    SSI_JOIN = 2,
    SSI_INVITE = 3,
    SSI_LEAVE = 4,
    /* TCP between members, and the control socket. */
    SSI_HELLO = 10,
    SSI_OK = 11,
    SSI_FAIL = 12,
    SSI_EXEC = 13,
    SSI_ATTACH = 14,
    SSI_OUT = 15,
    SSI_ERRDATA = 16,
    SSI_IN = 17,
    SSI_IN_EOF = 18,
    SSI_SIGNAL = 19,
    SSI_EXIT = 20,
    SSI_DETACH = 21,
    SSI_KILL = 22,
    SSI_PS = 23,
    SSI_MIGRATE = 24,
    SSI_IMAGE = 25,
    SSI_FILE = 26,
    SSI_END = 27,
    SSI_CHECKPOINT = 28,
    SSI_EVICT = 29,
    SSI_ADD = 30,
    SSI_MEM = 31,
    /* Control socket only. */
    SSI_RUN = 40,
    SSI_RESTART = 41,
    SSI_POLICY = 43,
    SSI_STARTED = 44,
    SSI_SCHED = 45,
} SsiType;

typedef enum {
    SSI_F_EPOCH = 1,      /* u64 */
    SSI_F_NODE = 2,       /* u32 */
    SSI_F_ADDR = 3,       /* str: dotted IPv4 */
    SSI_F_GPID = 4,       /* u32 */
    SSI_F_ARG = 5,        /* str, repeated: argv */
    SSI_F_DATA = 6,       /* bytes */
    SSI_F_STATUS = 7,     /* u32: exit code, 128+N for signal N */
    SSI_F_SIGNAL = 8,     /* u32 */
    SSI_F_NONCE = 9,      /* bytes[16] */
    SSI_F_MEMBER = 10,    /* bytes, repeated: id:u32 addr:u32 state:u8 */
    SSI_F_LOAD = 11,      /* u32: runnable x1000 */
    SSI_F_MEMFREE = 12,   /* u64: KiB */
    SSI_F_GPIDS = 14,     /* bytes: u32 array */
    SSI_F_TEXT = 15,      /* str: an error or a report */
    SSI_F_PATH = 16,      /* str */
    SSI_F_MODE = 17,      /* u32 */
    SSI_F_OFFSET = 18,    /* u64 */
    SSI_F_INODE = 19,     /* u64, repeated: stdin, stdout, stderr pipes */
    SSI_F_USEC = 20,      /* u64, repeated: timings */
    SSI_F_FLAGS = 21,     /* u32 */
    SSI_F_NEXT_ID = 22,   /* u32 */
    SSI_F_ROW = 23,       /* str, repeated: a ps row */
    SSI_F_NAME = 24,      /* str */
    SSI_F_LAUNCHER = 25,  /* u32: node id of the launcher */
    SSI_F_PERIOD = 26,    /* u32: seconds between automatic checkpoints */
    SSI_F_PID = 27,       /* u32: in IMAGE, a fork to keep (distant fork) */
    SSI_F_BUSY = 28,      /* bytes: u32 array, the sender's CPU-bound GPIDs */
    SSI_F_SCHED = 29,     /* str: the scheduler's configuration */
    SSI_F_SCHED_VER = 30, /* u64: its version */
    SSI_F_GRACE = 31,     /* u32: ms of silence before the sender is failed */
} SsiField;

/* Header flags of SSI_LEAVE: only announce it (the view shows the
 * member `leaving`); without it, remove the member. */
#define SSI_LEAVE_INTENT 1u
/* SSI_F_FLAGS of SSI_PS: every process, not only SSI ones. */
#define SSI_FLAG_ALL 1u
/* SSI_F_FLAGS of SSI_IMAGE: the process's stdin ends after its DATA. */
#define SSI_FLAG_STDIN_EOF 2u
/* SSI_F_FLAGS of SSI_IMAGE: a distant fork: of the tree restored, keep
 * only ssi-init and PID (the rest is the parent's, left where it runs). */
#define SSI_FLAG_FORK 4u
/* SSI_F_FLAGS of SSI_IMAGE: a checkpoint, its processes dumped stopped:
 * continue them once restored. */
#define SSI_FLAG_THAW 8u
/* SSI_F_FLAGS of SSI_SCHED: the answer's TEXT is JSON. */
#define SSI_FLAG_JSON 16u

typedef struct {
    guint8 type;
    guint8 flags;
    guint16 node;
    guint64 cluster;
    guint64 incarnation;
    guint64 seq;
    guint64 time_ms;
} SsiHeader;

typedef struct {
    guint8 tag;
    guint32 len;
    const guint8 *value;
} SsiFieldRef;

/* A message being built. */
typedef struct {
    SsiHeader hdr;
    GByteArray *body;
} SsiMsgOut;

/* A message received: fields point into @raw. */
typedef struct {
    SsiHeader hdr;
    GBytes *raw;
    GArray *fields; /* SsiFieldRef */
} SsiMsg;

SsiMsgOut *ssi_out_new(SsiType type);
void ssi_out_free(SsiMsgOut *m);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SsiMsgOut, ssi_out_free)
void ssi_out_u32(SsiMsgOut *m, SsiField tag, guint32 v);
void ssi_out_u64(SsiMsgOut *m, SsiField tag, guint64 v);
void ssi_out_str(SsiMsgOut *m, SsiField tag, const char *s);
void ssi_out_bytes(SsiMsgOut *m, SsiField tag, const void *data, gsize len);

/*
 * Serialise with the header fields of @m->hdr. @key NULL: no MAC (the
 * control socket). @nonce NULL: datagram (or HELLO). The result is
 * never longer than SSI_MSG_MAX (FALSE and an error otherwise).
 */
GBytes *ssi_out_encode(SsiMsgOut *m, const guint8 *key, const guint8 *nonce,
                       GError **error);

/*
 * Parse and authenticate. @key NULL: no MAC expected. @cluster is
 * checked unless @key is NULL. Checks every bound; takes a reference on
 * @raw.
 */
SsiMsg *ssi_msg_decode(GBytes *raw, const guint8 *key, guint64 cluster,
                       const guint8 *nonce, GError **error);
void ssi_msg_free(SsiMsg *m);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SsiMsg, ssi_msg_free)

/* Typed getters: FALSE when the field is absent or has the wrong size. */
gboolean ssi_msg_u32(const SsiMsg *m, SsiField tag, guint32 *v);
gboolean ssi_msg_u64(const SsiMsg *m, SsiField tag, guint64 *v);
/* A new string: NULL when absent, not UTF-8, holds a NUL, or is longer
 * than @max. */
char *ssi_msg_str(const SsiMsg *m, SsiField tag, gsize max);
const guint8 *ssi_msg_bytes(const SsiMsg *m, SsiField tag, gsize *len);
/* Repeated fields: the @n-th occurrence (0-based). */
const SsiFieldRef *ssi_msg_nth(const SsiMsg *m, SsiField tag, guint n);
guint ssi_msg_count(const SsiMsg *m, SsiField tag);
/* All string occurrences of @tag, each checked as ssi_msg_str does;
 * NULL if any is bad or there are more than @max_count. */
GStrv ssi_msg_strv(const SsiMsg *m, SsiField tag, guint max_count,
                   gsize max_len);

/* The cluster id: the first 8 bytes of SHA-256(name), big-endian. */
guint64 ssi_cluster_id(const char *name);
/* Parse 64 hex digits into @key. */
gboolean ssi_key_parse(const char *hex, guint8 key[SSI_KEY_LEN],
                       GError **error);
const char *ssi_type_name(guint8 type);

/*
 * Replay window for datagrams: per sender, the newest incarnation and
 * the highest seq seen. A datagram is fresh when its time is within
 * @skew_ms of @now_ms and its seq grows (a new incarnation must be
 * newer in time than the last one seen).
 */
typedef struct {
    guint64 incarnation;
    guint64 seq;
    guint64 time_ms;
} SsiReplay;

gboolean ssi_replay_check(SsiReplay *r, const SsiHeader *h, guint64 now_ms,
                          guint64 skew_ms);
