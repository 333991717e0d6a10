/*
 * The daemon's state in SQLite: jobs, their VMs, the nodes, and the
 * address leases behind sal-addr.h.
 *
 * Durability: every write is on disk when the call that made it returns
 * (or, inside a transaction, when the outermost sal_store_commit()
 * returns). Atomicity: each write function is one transaction, so a job
 * and its VMs change together or not at all; to make several calls one
 * change (a job starting: job state, VMs, addresses), wrap them in
 * sal_store_begin()/sal_store_commit(). Transactions nest (inner levels
 * are savepoints): an inner failure rolled back leaves the outer
 * transaction usable, unless SQLite itself abandoned the transaction
 * (disk full, I/O error), in which case every level fails to commit.
 *
 * The schema is versioned (PRAGMA user_version); opening a database made
 * by an older version migrates it, all steps in one transaction, and a
 * database newer than this program is refused. One SalStore per process;
 * not thread-safe (the daemon is single-threaded).
 */
#pragma once

#include "sal-job.h"
#include "sal-node.h"

#define SAL_STORE_SCHEMA_VERSION 7

typedef struct SalStore SalStore;

/* A row of the addresses table: @ip/@mac belong to VM @vm_index of job
 * @job_id, in the pool of @site. */
typedef struct {
    char *site;
    char *ip;
    char *mac;
    gint64 job_id;
    guint vm_index;
} SalLease;

/* Creates the database if it does not exist, migrates an older one. */
SalStore *sal_store_open(const char *path, GError **error);
/* Rolls back a transaction left open. */
void sal_store_free(SalStore *store);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SalStore, sal_store_free)

/* The database's schema version (SAL_STORE_SCHEMA_VERSION once open). */
guint sal_store_schema_version(SalStore *store);

gboolean sal_store_begin(SalStore *store, GError **error);
/* On failure the level is rolled back, as by sal_store_rollback(). */
gboolean sal_store_commit(SalStore *store, GError **error);
void sal_store_rollback(SalStore *store);
/* Ends a level begun for a change: commits it if @ok (the change worked;
 * @error is still unset), else rolls it back (@error is already set). */
gboolean sal_store_end(SalStore *store, gboolean ok, GError **error);
gboolean sal_store_in_transaction(SalStore *store);
/* Inside a transaction: @undo(@data) runs if the level open now (or an
 * outer one) rolls back, so in-memory state can follow the database;
 * @destroy(@data) runs after it, or once the outermost level commits. */
typedef void (*SalStoreUndoFunc)(gpointer data);
void sal_store_on_rollback(SalStore *store, SalStoreUndoFunc undo,
                           gpointer data, GDestroyNotify destroy);

/*
 * Saves @job and, if @vms is not NULL, its VMs (SalVm *), in one
 * transaction. A job with id 0 is new: it is validated
 * (sal_job_validate()), inserted, and gets its id (job ids are never
 * reused), which is also set in each VM. VMs are inserted or updated by
 * (job, index); their ip and mac are not saved (they come from the
 * leases when VMs load). If the transaction rolls back, a new job's id is
 * set back to 0 (if the rollback happens in an outer transaction after
 * this returned, the ids it assigned are void: the caller resets them).
 * A job's idempotency key is unique per owner (a UNIQUE index, so no two
 * submissions can both store it): a new job whose owner already has a
 * job with its key is SAL_ERROR_CONFLICT, and nothing is stored.
 */
gboolean sal_store_save_job(SalStore *store, SalJob *job, GPtrArray *vms,
                            GError **error);
/* The VMs' addresses must have been released (SAL_ERROR_CONFLICT
 * otherwise): used when a job is requeued and placed anew. */
gboolean sal_store_delete_vms(SalStore *store, gint64 job_id, GError **error);
/* SAL_ERROR_NOT_FOUND if there is no such job. @vms (may be NULL) gets
 * its VMs by index. */
SalJob *sal_store_load_job(SalStore *store, gint64 id, GPtrArray **vms,
                           GError **error);
/* Every job not in a terminal state, by id, and (if @vms is not NULL)
 * their VMs: what the daemon re-adopts after a restart, and the input
 * of sal_sched_run(). */
GPtrArray *sal_store_load_active(SalStore *store, GPtrArray **vms,
                                 GError **error);

/* Every job (@all) or those not in a terminal state, by id, and (if @vms
 * is not NULL) their VMs. */
GPtrArray *sal_store_load_jobs(SalStore *store, gboolean all, GPtrArray **vms,
                               GError **error);

/* Replaces the nodes (SalNode *) with @nodes: the configuration the
 * daemon started with. */
gboolean sal_store_save_nodes(SalStore *store, GPtrArray *nodes,
                              GError **error);
GPtrArray *sal_store_load_nodes(SalStore *store, GError **error);

/*
 * Address leases: the rows behind sal-addr.h, which keeps them in memory
 * too; the daemon calls SalAddr, not these. The table's UNIQUE
 * constraints on ip and mac make a double allocation fail with
 * SAL_ERROR_CONFLICT, and a lease needs its VM saved first.
 */
gboolean sal_store_add_lease(SalStore *store, const SalLease *lease,
                             GError **error);
/* The leases of job @job_id: all if @vm_index < 0, else that VM's. */
gboolean sal_store_remove_leases(SalStore *store, gint64 job_id, gint vm_index,
                                 GError **error);
GPtrArray *sal_store_load_leases(SalStore *store, GError **error);

SalLease *sal_lease_copy(const SalLease *lease);
void sal_lease_free(SalLease *lease);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SalLease, sal_lease_free)

/* A complete snapshot of a job's VM set (stored with Kget+ as
 * "saline-<job>@<seq>"), and one line of a job's history. */
typedef struct {
    gint64 job_id;
    guint seq;
    gint64 time;
    gint64 pause_ms; /* the longest guest pause of the set */
    guint64 bytes_sent;
    guint64 bytes_new;
} SalSnapshot;

typedef struct {
    gint64 time;
    char *text;
} SalEvent;

/* Records @snap and makes it the job's snapshot to redeploy from
 * (jobs.snapshot_seq), in one transaction. */
gboolean sal_store_add_snapshot(SalStore *store, const SalSnapshot *snap,
                                GError **error);
/* Forgets the snapshots of job @job_id from @seq on (a corrupt one, and
 * anything newer), so the job goes back to the one before. */
gboolean sal_store_drop_snapshots(SalStore *store, gint64 job_id, guint seq,
                                  GError **error);
/* SalSnapshot *, by seq. */
GPtrArray *sal_store_load_snapshots(SalStore *store, gint64 job_id,
                                    GError **error);
gboolean sal_store_add_event(SalStore *store, gint64 job_id, gint64 time,
                             const char *text, GError **error);
/* SalEvent *, oldest first. */
GPtrArray *sal_store_load_events(SalStore *store, gint64 job_id,
                                 GError **error);
void sal_event_free(SalEvent *event);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SalEvent, sal_event_free)
