/*
 * What the parts of salined's core share, and nothing else includes:
 * the core's state, a node as the core sees it, an operation in a worker
 * thread, and the functions one part calls in another.
 */
#pragma once

#include "sal-addr.h"
#include "sal-sched.h"
#include "sal-store.h"
#include "sald-config.h"
#include "sald-core.h"
#include "sald-virt.h"

typedef struct SaldOar SaldOar;

/* The most output kept or shown per VM. */
#define SALD_LOG_MAX_BYTES (G_GUINT64_CONSTANT(64) << 20)

typedef struct {
    SaldCore *core;
    const SaldNodeConf *conf;
    virConnectPtr conn; /* NULL while down */
    int event_id;
    gboolean connecting;
    gboolean listing;
    gboolean listed;  /* domains is known since the last (re)connection */
    gint64 down_since; /* 0: up; else when it went down (or started down) */
    gint64 last_try;
    gint64 last_list;
    gboolean lost;     /* down longer than node-timeout: VMs declared dead */
    char *error;
    char *closed; /* why libvirt closed the connection, until handled */
    guint64 seq;
    GHashTable *domains; /* running saline domain -> seq when learnt */
} SaldNode;

struct SaldCore {
    SaldConfig *config;
    SalStore *store;
    SalAddr *addr;
    char *output_dir;
    GPtrArray *all_nodes; /* SalNode * (borrowed from config) */
    GHashTable *nodes;    /* name -> SaldNode * */
    GHashTable *busy;     /* job id -> operations in flight */
    GHashTable *teardown; /* ended jobs whose VMs or addresses remain */
    GHashTable *requeue;  /* jobs to requeue once their VMs are gone */
    /* sald-snapshot.c: job id -> when its next snapshot is due (gint64 *);
     * suspending jobs whose final snapshot started (-> the seq they had);
     * resuming jobs whose snapshot was refused. */
    GHashTable *snap_due;
    GHashTable *snap_final;
    GHashTable *snap_refused;
    /* Suspending jobs to take no final snapshot of: their nodes are no
     * longer theirs (sald-oar.c). */
    GHashTable *snap_skip;
    SaldOar *oar; /* NULL: salined's own scheduler places the jobs */
    guint tick_id;
    guint sched_id;
};

typedef enum {
    SALD_OP_CONNECT,
    SALD_OP_LIST,
    SALD_OP_CREATE,
    SALD_OP_COLLECT, /* read the output, destroy the domain and volumes */
    SALD_OP_DESTROY, /* an orphan: destroy without reading */
    SALD_OP_READ,    /* the output so far, for `saline log` */
    SALD_OP_RESTORE, /* create a VM from a snapshot, loaded and paused */
} SaldOpKind;

typedef struct {
    SaldOpKind kind;
    SaldCore *core;
    char *node;
    char *uri;
    virConnectPtr conn;
    gint64 job_id;
    guint index;
    char *domain;
    guint64 seq; /* node->seq when the operation started */
    SaldVmSpec spec;
    char *spec_text;
    char *image_dir;
    char *mac;
    /* results */
    virConnectPtr new_conn;
    GHashTable *domains;
    GHashTable *volumes;
    SalOutputHeader header;
    gboolean have_output;
    GBytes *output;
    /* SALD_OP_RESTORE */
    char *snapshot;
    const SaldConfig *config;
    char *work_dir;
    gboolean have_report; /* RAM bytes from the site's page index, and */
    guint64 site_bytes;   /* from the store, when [snapshots] resolver= */
    guint64 store_bytes;
} SaldOp;

/* sald-core.c: small helpers */
gint64 sald_now_s(void);
GHashTable *sald_id_set_new(void);
void sald_id_set_add(GHashTable *set, gint64 id);

/* sald-node.c: nodes */
SaldNode *sald_node_new(SaldCore *core, const SaldNodeConf *conf);
void sald_node_free(SaldNode *node);
SaldNode *sald_node_get(SaldCore *core, const char *name);
gboolean sald_node_ready(const SaldNode *node);
void sald_node_connect(SaldCore *core, SaldNode *node);
/* Reconnects, relists or gives up on @node, as its time has come. */
void sald_node_tick(SaldCore *core, SaldNode *node, gint64 now);

/* sald-op.c: operations in worker threads */
SaldOp *sald_op_new(SaldCore *core, SaldOpKind kind, SaldNode *node,
                    gint64 job_id, guint index);
void sald_op_free(SaldOp *op);
/* Runs @op in a worker thread; @done gets it back with
 * g_task_get_task_data(). */
void sald_op_run(SaldOp *op, GAsyncReadyCallback done, gpointer data);
/* Count an operation of job @id in flight that is not a SaldOp; remove
 * returns TRUE once none is left. */
void sald_job_busy_add(SaldCore *core, gint64 id);
gboolean sald_job_busy_remove(SaldCore *core, gint64 id);
/* A create (or restore) operation of @vm with its domain spec, or NULL
 * (the job was failed: its image is gone). */
SaldOp *sald_op_prepare_create(SaldCore *core, SaldNode *node,
                               const SalJob *job, GPtrArray *vms,
                               const SalVm *vm, SaldOpKind kind);
gboolean sald_op_done(SaldOp *op);
void sald_op_finish(SaldOp *op, gboolean idle);
char *sald_output_path(SaldCore *core, gint64 job_id, guint index,
                       const char *suffix);
void sald_vm_create(SaldCore *core, SaldNode *node, const SalJob *job,
                    GPtrArray *vms, const SalVm *vm);
void sald_vm_collect(SaldCore *core, SaldNode *node, const SalVm *vm);

/* sald-job.c: jobs, their reconcile and scheduling */
SalJob *sald_job_load(SaldCore *core, gint64 id, GPtrArray **vms);
gboolean sald_job_save(SaldCore *core, SalJob *job, GPtrArray *vms);
SalVm *sald_job_find_vm(GPtrArray *vms, guint index);
gboolean sald_vm_final(const SalVm *vm);
void sald_job_end(SaldCore *core, SalJob *job, GPtrArray *vms,
                  SalJobState state, const char *failure);
gboolean sald_job_busy(SaldCore *core, gint64 id);
void sald_job_reconcile(SaldCore *core, gint64 id);
GArray *sald_job_list_ids(SaldCore *core);
void sald_job_reconcile_all(SaldCore *core);
void sald_job_schedule_soon(SaldCore *core);
/* Pending @job starts on @placement's nodes. */
void sald_job_start_on(SaldCore *core, SalJob *job,
                       const SalPlacement *placement);

/* sald-oar.c: OAR mode, when the configuration has [oar] */
SaldOar *sald_oar_new(SaldCore *core, GError **error);
void sald_oar_free(SaldOar *oar);
/* Polls OAR when it is time. */
void sald_oar_tick(SaldCore *core);
/* The decisions of OAR mode, from the store and the last poll: what
 * salined's own scheduling pass does without OAR. */
void sald_oar_schedule(SaldCore *core);
/* SAL_ERROR_EXHAUSTED when the last look at OAR failed. */
gboolean sald_oar_check_reachable(SaldCore *core, GError **error);
/* No OAR command in flight. */
gboolean sald_oar_idle(SaldCore *core);
/* An OAR job as oarstat shows it. */
typedef struct {
    gint64 id;
    char *name; /* NULL: none */
    char *state;
    char *owner;
    GPtrArray *hosts;    /* char *: assigned network addresses, once each */
    gboolean besteffort;
    gboolean checkpoint; /* a CHECKPOINT event: notice was given */
} SaldOarJob;

void sald_oar_job_free(SaldOarJob *job);
/* OAR id (gint64 *) -> SaldOarJob *. */
GHashTable *sald_oar_job_table_new(void);
/* `oarstat -f -J` output: adds its jobs to @into (from
 * sald_oar_job_table_new()). */
gboolean sald_oar_parse_stat(const char *text, GHashTable *into,
                             GError **error);

/* sald-snapshot.c: best-effort jobs' snapshots and redeploys */
gboolean sald_snapshots_on(SaldCore *core);
void sald_event(SaldCore *core, gint64 job_id, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);
void sald_snapshot_set_due(SaldCore *core, const SalJob *job);
/* A running job's periodic snapshot, if due. */
void sald_snapshot_maybe(SaldCore *core, SalJob *job, GPtrArray *vms);
/* running -> suspending (saved), with the reason in its history. */
gboolean sald_job_suspend(SaldCore *core, SalJob *job, gboolean held,
                          const char *why);
gboolean sald_job_rollback(SaldCore *core, SalJob *job, const char *why);
void sald_job_reconcile_suspending(SaldCore *core, SalJob *job,
                                   GPtrArray *vms);
void sald_job_reconcile_resuming(SaldCore *core, SalJob *job, GPtrArray *vms);
/* A suspended job placed by the scheduler: resuming there. */
void sald_job_resume_on(SaldCore *core, SalJob *job, GPtrArray *vms,
                        const SalPlacement *placement);
/* An ended job's snapshots go from the store (in a worker thread). */
void sald_snapshots_forget(SaldCore *core, gint64 job_id);
/* The body of SALD_OP_RESTORE, in its worker thread. */
gboolean sald_op_restore(SaldOp *op, GError **error);

/* sald-ssi.c: SSI jobs (saline/README.md, "SSI jobs") */
/* @image holds the SSI parts: its image.env says SSI=1. */
gboolean sald_ssi_check_image(const SaldImageConf *image, GError **error);
/* A new cluster key: 32 random bytes, 64 hex digits. */
char *sald_ssi_new_key(GError **error);
/* The job spec lines of an SSI job (none for another job). */
void sald_ssi_spec(GString *spec, const SalJob *job);
/* An SSI job ends when its VM 0 has stopped: TRUE then, with its exit
 * status. */
gboolean sald_ssi_ended(const SalJob *job, GPtrArray *vms, gint *exit_status);
