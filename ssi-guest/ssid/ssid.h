/*
 * ssid: the SSI daemon of one member (ssi-guest/README.md).
 *
 * Threads: the membership thread owns the UDP socket (heartbeats, views,
 * joins, failure detection); the listener accepts TCP connections from
 * members and control connections from `ssi`, one thread each; every
 * SSI process running here has a relay thread (stdio to its launcher)
 * and a waiter thread. All shared state is in `S`, under S.lock.
 */
#pragma once

#include <gio/gio.h>
#include <sys/types.h>

#include "ssi-conn.h"
#include "ssi-parse.h"

#define SSID_HEARTBEAT_MS 200
#define SSID_FAIL_MS 2000
/* The GRACE of a member that pages to cluster memory: paging over the
 * network can stall it for seconds (README, "Cluster memory"). */
#define SSID_FAIL_PAGING_MS 20000
#define SSID_STATE_DIR "/run/ssid"
#define SSID_CONTROL "/run/ssid.sock"

typedef enum { SSID_ALONE, SSID_JOINING, SSID_MEMBER } SsidState;
typedef enum { SSID_JOIN_FOUND, SSID_JOIN_SEEDS, SSID_JOIN_WAIT } SsidJoin;

typedef struct {
    guint32 id;
    char addr[16];
    gboolean leaving;
    guint32 load;
    guint64 memfree;
    gint64 heard_us; /* last heartbeat, monotonic */
    guint32 grace_ms; /* silence before it is failed (GRACE, at least
                       * SSID_FAIL_MS) */
    GArray *gpids;   /* guint32: its SSI processes, as last heard */
    GArray *busy;    /* guint32: the CPU-bound ones, as last heard */
    GArray *placed;  /* SsidPlaced: placed here, not yet in its heartbeats */
} SsidMember;

typedef struct {
    guint32 gpid;
    gint64 at_us;
} SsidPlaced;

typedef struct SsidProc SsidProc;
typedef struct SsidLaunch SsidLaunch;

typedef struct {
    GMutex lock;
    /* Configuration. */
    char *cluster;
    guint64 cluster_id;
    guint8 key[SSI_KEY_LEN];
    char *address;
    SsidJoin join;
    char **seeds;
    char *policy;
    char *sched;       /* scheduling policies at start, NULL: none */
    SsiIdentity ident; /* node is updated as the view changes */
    /* Membership. */
    SsidState state;
    guint32 self; /* node id, 0 when not a member */
    guint64 epoch;
    guint32 next_id;
    GPtrArray *members; /* SsidMember*, by id */
    gint64 joined_us;
    /* Processes. */
    GHashTable *procs;    /* gpid -> SsidProc*: running here */
    GHashTable *launches; /* gpid -> SsidLaunch*: launched from here */
    guint32 gpid_seq;
    gboolean kmod; /* /proc/ssi is there */
} Ssid;

extern Ssid S;

/* ssid-member.c */
gboolean member_start(GError **error);
/* A copy of a member's address; NULL if @id is not in the view. */
char *member_addr(guint32 id);
gboolean member_is_up(guint32 id);
/* The node running @gpid as far as heartbeats tell, 0 if none. */
guint32 member_find_gpid(guint32 gpid);
/* Choose a node for a new process (the kernel's policy), excluding
 * @exclude (0: none). 0 when there is no member. */
guint32 member_place(guint32 exclude, guint32 gpid);
void member_invite(const char *address);
/* Leave the cluster: LEAVE to the coordinator, until a view without us. */
gboolean member_leave(GError **error);
/* Before leaving: have the view show this member `leaving`, so that no
 * member places a process here any more. */
gboolean member_mark_leaving(void);
/* Write the view and identity to /proc/ssi (call with S.lock held). */
void member_write_kernel(void);
SsiIdentity member_ident(void);

/* ssid-proc.c */
void proc_init(void);
guint32 proc_new_gpid(void);
/* Start a process here for @launcher (node id). */
gboolean proc_exec(guint32 gpid, char **argv, guint32 launcher, GError **error);
gboolean proc_kill(guint32 gpid, int sig, GError **error);
/* ps rows of the processes here; @all: every process of this member. */
void proc_rows(GPtrArray *rows, gboolean all);
guint proc_count(void);
GArray *proc_gpids(void);
/* This member is out of the cluster (it left, or the others declared it
 * failed): the processes still here were reported lost or restarted
 * elsewhere, so they end; launches from here end too. Returns at once. */
void proc_left_cluster(void);
/* End every launch from here (status 255, @why to the client). */
void launch_end_all(const char *why);
/* A member failed: report the launches it ran as lost. */
void launch_node_lost(guint32 node);
/* The control side of `ssi run` / `ssi restart`: serve the client until
 * the process ends. */
void launch_serve(SsiConn *client, guint32 gpid, guint32 node);
SsidLaunch *launch_register(guint32 gpid, guint32 node, SsiConn *client);
void launch_unregister(guint32 gpid);
typedef void (*SsidLaunchExit)(guint32 status, gpointer data);
/* A distant fork's copy, launched from here: its stdout and stderr go
 * to @out_fd and @err_fd (taken), its exit status to @on_exit. */
gboolean launch_register_fork(guint32 gpid, guint32 node, int out_fd,
                              int err_fd, SsidLaunchExit on_exit,
                              gpointer data);
/* After STARTED went to @client: what waited for it follows. */
void launch_set_client(guint32 gpid, SsiConn *client);
/* A member's relay attached: serve the stream. */
void launch_attach(SsiConn *c, SsiMsg *first);
/* Where a launch from here runs: FALSE once it is over (0: moving). */
gboolean launch_node(guint32 gpid, guint32 *node);
/* Tell the client on its stderr. */
void launch_note(guint32 gpid, const char *text);
/* End it as lost (status 255). */
void launch_lost(guint32 gpid, const char *text);

/* Process records shared by proc and mig. */
SsidProc *proc_lookup(guint32 gpid);
typedef SsiProcMeta SsidProcMeta;
/* Freeze the process's stdio for a dump; FALSE if it cannot. */
gboolean proc_begin_move(guint32 gpid, SsidProcMeta *meta, pid_t *shim,
                         GError **error);
/* The dump failed: let it run on. */
void proc_abort_move(guint32 gpid);
/* The dump succeeded and killed it: drain its output to the launcher,
 * detach, collect unread stdin into @meta, forget it. */
gboolean proc_finish_move(guint32 gpid, SsidProcMeta *meta, GError **error);
/* Adopt a process CRIU restored (its namespace init is @shim). */
void proc_adopt(const SsidProcMeta *meta, pid_t shim, int fds[3]);

/* @pid's state letter from /proc/PID/stat, 0 if gone. */
char proc_state(pid_t pid);
/* @pid's PID in its own PID namespace (0 if gone). */
guint32 proc_ns_pid(pid_t pid);
/* What a distant fork needs of a process running here. */
typedef struct {
    guint32 gpid;
    guint32 inner;
    pid_t shim;
    guint32 launcher;
    guint64 inode[3];
    guint64 streamed; /* stdio bytes relayed to and from its launcher */
} SsidProcInfo;
/* The processes running here (SsidProcInfo), moving ones left out. */
GArray *proc_snapshot(void);
/* The descendants of @pid (pid_t), from /proc, into @out; @depth: 0. */
void proc_descendants(pid_t pid, GArray *out, int depth);

/* ssid-image.c */
/* Refuse what cannot move; collect into @files the regular files it has
 * open. @forking: its ghosts (distant forks) are allowed. */
gboolean image_check(guint32 gpid, pid_t shim, gboolean forking,
                     GPtrArray *files, GError **error);
/* CRIU dump of @shim's namespace into @dir. */
gboolean image_dump(guint32 gpid, pid_t shim, const char *dir,
                    gboolean leave_running, GError **error);
/* Send IMAGE, the files of @dir and @files (pairs: content source,
 * original path), END. */
gboolean image_send(SsiConn *c, const SsidProcMeta *meta, const char *dir,
                    GPtrArray *files, guint64 *bytes, GError **error);
/* Receive FILEs until END: images into @dir, files by PATH to their
 * path, or into @files_dir (a checkpoint). */
gboolean image_recv(SsiConn *c, const char *dir, const char *files_dir,
                    GError **error);
/* Restore the images in @dir here and adopt the process. */
gboolean image_restore(const SsidProcMeta *meta, const char *dir,
                       GError **error);
char *image_work_dir(const char *what, guint32 gpid);
/* Stop every process of @shim's namespace not stopped already; the ones
 * stopped, for image_thaw(). */
GArray *image_freeze(pid_t shim);
void image_thaw(GArray *stopped);
/* Copy @files into @dir/files/ and add (copy, original path) pairs to
 * @pairs (which frees its strings). */
gboolean image_copy_files(GPtrArray *files, const char *dir, GPtrArray *pairs,
                          GError **error);
void image_rm_rf(const char *dir);

/* ssid-mig.c, ssid-ckpt.c */
/* Distant fork: move @child (a host PID, stopped, of @parent's
 * namespace) to @node as GPID @copy; its parent keeps a ghost here. */
gboolean mig_fork(const SsidProcInfo *parent, pid_t child, guint32 inner,
                  guint32 copy, guint32 node, GError **error);

/* ssid-spread.c */
/* The fork spreader: CPU-bound children of SSI processes go to less
 * loaded members, their parents keep ghosts (Kerrighed's distant fork,
 * after the fact). */
void spread_start(void);
/* Leave @child (stopped) as the ghost of GPID @copy, run on @node: it
 * exits with @copy's status. Signals sent to the ghost are not passed to
 * the copy (SIGKILL ends both). */
gboolean spread_ghost(pid_t child, guint32 copy, guint32 node, GError **error);
/* The copy could not start: the child runs on here. */
void spread_cancel(guint32 copy);
gboolean spread_is_ghost(pid_t pid);
/* Around a dump of a namespace that holds ghosts (they are traced). */
void spread_pause_ghosts(void);
void spread_resume_ghosts(void);
/* The member to move one of @busy CPU-bound processes to, 0 if none is
 * clearly less loaded. */
guint32 member_spread_target(guint busy, guint32 gpid);
gboolean mig_migrate(guint32 gpid, guint32 node, GString *report,
                     GError **error);
/* Checkpoint @gpid into @dir on this member (the caller's). */
gboolean mig_checkpoint_to(SsiConn *peer, guint32 gpid, const char *dir,
                           GError **error);
/* Serve a CHECKPOINT request: dump (leaving it running), send it back. */
void mig_serve_checkpoint(SsiConn *c, SsiMsg *req);
/* Serve an IMAGE stream: restore the process here. */
void mig_serve_image(SsiConn *c, SsiMsg *first);
/* Restart a checkpoint directory on @node for launcher @launcher. */
gboolean mig_restart(const char *dir, guint32 node, SsiConn *client,
                     guint32 *gpid_out, GError **error);
/* Checkpoint @gpid (launched from here) every @period s, into
 * SSID_STATE_DIR/auto/GPID. */
void mig_auto_checkpoint(guint32 gpid, guint32 period);
/* Its member failed: restart its latest automatic checkpoint on the
 * member the policy picks. FALSE if it has none. */
gboolean mig_auto_restart(guint32 gpid);
gboolean mig_evict_self(GString *report, GError **error);

/* ssid-sched.c: the global scheduler of running processes. */
/* The configuration at start: @policies as in ssid.conf's sched= (NULL:
 * none). */
gboolean sched_init(const char *policies, GError **error);
void sched_start(void);
/* @gpid was just restored here by a migration (its residence starts). */
void sched_note_arrival(guint32 gpid);
/* This member's CPU-bound SSI processes, for its heartbeats. */
GArray *sched_busy(void);
/* The configuration's text and version, for heartbeats. */
char *sched_conf_text(guint64 *ver);
/* A heartbeat carried configuration @text of version @ver. */
void sched_heard(const char *text, guint64 ver, guint32 from);
/* `ssi sched VERB ARG...`: the listing, or NULL and @error. */
char *sched_control(const char *verb, char **args, gboolean json,
                    GError **error);

/* ssid-mem.c: cluster memory (README, "Cluster memory"). */
/* ssid.conf's mem_donate= and mem_borrow=. */
gboolean mem_conf(const char *key, const char *value, GError **error);
void mem_start(void);
/* A MEM request from a member: the answer's TEXT, or NULL and @error. */
char *mem_serve(SsiMsg *m, GError **error);
/* `ssi mem ls|donate|borrow [MIB]`: the listing, or NULL and @error. */
char *mem_control(const char *verb, const char *arg, gboolean json,
                  GError **error);
/* This member swaps to cluster memory (its heartbeats ask for a grace). */
gboolean mem_paging(void);
/* Before leaving the cluster: give back, move away what was lent. */
gboolean mem_leave(GString *report, GError **error);

/* ssid-peer.c */
gboolean peer_start(GError **error);
/* Connect to member @node. */
SsiConn *peer_connect(guint32 node, GError **error);
/* One request to member @node, its answer (OK or an error). */
SsiMsg *peer_call(guint32 node, SsiMsgOut *m, int timeout_ms, GError **error);
