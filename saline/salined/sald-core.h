/*
 * What the REST API (sald-api.c) asks of the daemon's core (sald-core.c).
 *
 * Callers are identified by uid (socket peer credentials); uid 0 is
 * root. A user sees and changes only their own jobs: another user's job
 * is reported as not found, so its existence does not leak. Root sees
 * and changes all.
 *
 * Errors are SAL_ERROR codes; the API maps them to HTTP statuses:
 * INVALID 400, NOT_FOUND 404, STATE/CONFLICT 409, EXHAUSTED 503, others
 * 500.
 */
#pragma once

#include <gio/gio.h>

#include "sal-job.h"
#include "sal-store.h"

typedef struct SaldCore SaldCore;

/*
 * Accepts a job: validates it (sal_job_validate()), refuses an unknown
 * image or a job that could never fit the grid (SAL_ERROR_INVALID, with
 * a one-line reason), sets owner_uid to @uid, submit_time, state pending,
 * saves it and sets job->id. Nothing is created on failure.
 */
gboolean sald_core_submit(SaldCore *core, guint32 uid, SalJob *job,
                          GError **error);

/* The jobs @uid may see (root: all), by id; without @all only those not
 * finished (as oarstat). @vms (if not NULL) gets the VMs of those jobs
 * (SalVm *, by job then index). */
GPtrArray *sald_core_list_jobs(SaldCore *core, guint32 uid, gboolean all,
                               GPtrArray **vms, GError **error);

/* One job and its VMs (by index); SAL_ERROR_NOT_FOUND if there is no
 * such job or @uid may not see it. */
SalJob *sald_core_get_job(SaldCore *core, guint32 uid, gint64 id,
                          GPtrArray **vms, GError **error);

/* Cancels a job (pending: at once; running: its VMs are destroyed).
 * SAL_ERROR_STATE if it has already ended. Returns once the decision is
 * stored; the VMs go away shortly after. */
gboolean sald_core_cancel(SaldCore *core, guint32 uid, gint64 id,
                          GError **error);

/*
 * Suspends running best-effort job @id: a final snapshot of its VMs is
 * stored, then they are destroyed; the job stays suspended, "held",
 * until sald_core_resume(). SAL_ERROR_INVALID for a regular job or when
 * salined has no snapshot store, SAL_ERROR_STATE unless it is running.
 * Returns once the decision is stored; the snapshot follows.
 */
gboolean sald_core_suspend(SaldCore *core, guint32 uid, gint64 id,
                           GError **error);
/* Lets a held job be redeployed when capacity allows. SAL_ERROR_STATE
 * unless it is suspending or suspended and held. */
gboolean sald_core_resume(SaldCore *core, guint32 uid, gint64 id,
                          GError **error);
/* Job @id's snapshots (SalSnapshot *, by seq) and history (SalEvent *,
 * oldest first); SAL_ERROR_NOT_FOUND as sald_core_get_job(). */
gboolean sald_core_get_history(SaldCore *core, guint32 uid, gint64 id,
                               GPtrArray **snapshots, GPtrArray **events,
                               GError **error);

typedef struct {
    char *name;
    char *site;
    char *uri;
    guint cpus;
    guint64 mem_mib;
    gboolean up;       /* libvirt connection alive */
    char *error;       /* why it is down, or NULL */
    guint used_cpus;   /* by VMs of active jobs */
    guint64 used_mem_mib;
    guint n_vms;
} SaldNodeInfo;

void sald_node_info_free(SaldNodeInfo *info);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SaldNodeInfo, sald_node_info_free)

/* SaldNodeInfo *, in configuration order. */
GPtrArray *sald_core_list_nodes(SaldCore *core);

/* Names of the images jobs may use (char *), sorted. */
GPtrArray *sald_core_list_images(SaldCore *core);

typedef struct {
    guint index;
    char *node;        /* NULL if never placed */
    gint exit_status;  /* -1: still running or none */
    SalVmState state;  /* the VM's: dead means it ended without one */
    gboolean truncated; /* the guest's output drive filled up */
    GBytes *output;    /* stdout and stderr of the command, interleaved */
} SaldVmLog;

void sald_vm_log_free(SaldVmLog *log);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SaldVmLog, sald_vm_log_free)

/*
 * The output of job @id so far, per VM (SaldVmLog *, by index): read
 * from the VMs' output drives while the job runs (through libvirt, so
 * this may take a moment: hence async), from salined's state directory
 * once it has ended. SAL_ERROR_NOT_FOUND as sald_core_get_job().
 */
void sald_core_get_log_async(SaldCore *core, guint32 uid, gint64 id,
                             GCancellable *cancellable,
                             GAsyncReadyCallback callback, gpointer data);
GPtrArray *sald_core_get_log_finish(SaldCore *core, GAsyncResult *result,
                                    GError **error);
