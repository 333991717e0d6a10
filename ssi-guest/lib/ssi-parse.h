/*
 * Parsers of SSI message contents (docs/protocols.md, "SSI protocol"):
 * what ssid reads out of a decoded message beyond single fields, each
 * bound checked here so that the fuzzer reaches it (fuzz/README.md).
 * Every function takes a message ssi_msg_decode() accepted and fails
 * with a VC_ERROR.
 */
#pragma once

#include "ssi-proto.h"

/* GPIDS holds at most this many entries. */
#define SSI_GPIDS_MAX 4096
/* The bounds of a process record and of an EXEC request. */
#define SSI_ARGS_MAX 4096
#define SSI_ARG_LEN_MAX 65536
/* FILE: NAME and PATH lengths. */
#define SSI_NAME_MAX 255
#define SSI_PATH_MAX 4096
#define SSI_SIGNAL_MAX 64

typedef struct {
    guint32 id;
    char addr[16]; /* dotted IPv4 */
    gboolean leaving;
} SsiViewMember;

/* The view in a coordinator's HEARTBEAT: 1..SSI_MAX_NODES members, ids in
 * 1..SSI_MAX_NODES, ascending. */
typedef struct {
    guint32 next_id;
    guint n_members;
    SsiViewMember members[SSI_MAX_NODES];
} SsiView;

gboolean ssi_parse_view(const SsiMsg *m, SsiView *view, GError **error);

/* The GPIDS of a HEARTBEAT: a new array of guint32, or NULL when absent
 * or malformed. */
GArray *ssi_parse_gpids(const SsiMsg *m, GError **error);

/* The process record of an IMAGE message. */
typedef struct {
    guint32 gpid;
    guint32 launcher;
    char **argv;
    guint64 inode[3];
    GByteArray *stdin_pending;
    gboolean stdin_eof; /* its stdin ends after stdin_pending */
    /* Its PID inside its namespace: the GPID, or for a distant fork the
     * child's PID (the image holds its parent's whole tree). */
    guint32 inner;
    gboolean fork; /* SSI_FLAG_FORK */
    gboolean thaw; /* SSI_FLAG_THAW */
} SsiProcMeta;

/* Fills @meta (cleared first; on failure it holds nothing to free). */
gboolean ssi_parse_proc_meta(const SsiMsg *m, SsiProcMeta *meta,
                             GError **error);
void ssi_proc_meta_clear(SsiProcMeta *meta);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(SsiProcMeta, ssi_proc_meta_clear)

/* One FILE message of an image stream: either a NAME (an image file: no
 * '/', not empty, not starting with '.') or a PATH (ssi_parse_path_ok()).
 * @data points into the message. */
typedef struct {
    char *name;
    char *path;
    const guint8 *data;
    gsize len;
    guint64 offset;
    guint32 mode; /* 0600 when absent, masked with 0777 */
} SsiFileChunk;

gboolean ssi_parse_file(const SsiMsg *m, SsiFileChunk *f, GError **error);
void ssi_file_chunk_clear(SsiFileChunk *f);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(SsiFileChunk, ssi_file_chunk_clear)

/* Absolute, at most SSI_PATH_MAX bytes, no '.' or '..' component. */
gboolean ssi_parse_path_ok(const char *p);

/* Requests between members. */
typedef struct {
    guint32 gpid;
    guint32 launcher;
    char **argv; /* at least one argument */
} SsiExecRequest;

gboolean ssi_parse_exec(const SsiMsg *m, SsiExecRequest *req, GError **error);
void ssi_exec_request_clear(SsiExecRequest *req);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(SsiExecRequest, ssi_exec_request_clear)
gboolean ssi_parse_kill(const SsiMsg *m, guint32 *gpid, guint32 *signal,
                        GError **error);
gboolean ssi_parse_migrate(const SsiMsg *m, guint32 *gpid, guint32 *node,
                           GError **error);

/* BUSY: parsed as GPIDS, with the same bounds. */
GArray *ssi_parse_busy(const SsiMsg *m, GError **error);

/*
 * The global scheduler's configuration (ssi-guest/README.md, "Global
 * scheduler"): its text is `KEY=VALUE` words separated by one space,
 * at most SSI_SCHED_TEXT_MAX bytes; the same keys as `ssi sched set`,
 * plus `policies=NAME,...`.
 */
#define SSI_SCHED_TEXT_MAX 4096
#define SSI_SCHED_POLICIES_MAX 8
#define SSI_SCHED_NAME_MAX 15
#define SSI_SCHED_GROUPS_MAX 16
#define SSI_SCHED_GROUP_MAX 64

typedef struct {
    guint n_policies;
    char policies[SSI_SCHED_POLICIES_MAX][SSI_SCHED_NAME_MAX + 1];
    guint32 threshold;
    guint32 residence;
    guint32 budget;
    guint32 period;
    guint32 mem_high;
    guint32 comm_high; /* KiB/s */
    guint n_groups;
    guint group_len[SSI_SCHED_GROUPS_MAX];
    guint32 groups[SSI_SCHED_GROUPS_MAX][SSI_SCHED_GROUP_MAX];
} SsiSched;

/* The policies a configuration may name: cpu, mem, comm, together. */
gboolean ssi_sched_policy_known(const char *name);
/* The defaults: no policy, the settings' defaults, no group. */
void ssi_sched_init(SsiSched *s);
/* Set one key (`policies` too); @s is unchanged on error. */
gboolean ssi_sched_set(SsiSched *s, const char *key, const char *value,
                       GError **error);
/* Parse a whole text over the defaults; @s is unchanged on error. */
gboolean ssi_sched_parse(const char *text, SsiSched *s, GError **error);
/* The text of @s, every key, in a fixed order. */
char *ssi_sched_format(const SsiSched *s);
/* Which group of `together` holds @gpid: its index, -1 if none. */
int ssi_sched_group_of(const SsiSched *s, guint32 gpid);
