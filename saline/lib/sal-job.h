/*
 * Saline jobs and their VMs: the records the daemon keeps, the job state
 * machine, and the parsers of the quantities users type (walltime,
 * memory).
 *
 * A job is n_vms identical VMs (cpus, mem_mib, image) running a command
 * for at most walltime_s seconds of running time, owned by a uid. Times
 * are Unix seconds; 0 means "not yet".
 *
 * Job state machine (sal_job_transition() refuses everything else):
 *
 *   from        to
 *   pending     starting, cancelled,
 *               failed     (the grid shrank and it can never fit)
 *   starting    running, failed, cancelled,
 *               pending    (requeue: its VMs could not start)
 *   running     done, failed, cancelled, suspending,
 *               pending    (requeue, only if the job is idempotent: its
 *                           command runs again from the start)
 *   suspending  suspended, failed,
 *               running    (suspension aborted, the VMs still run)
 *   suspended   resuming, cancelled,
 *               failed     (the stored state is lost)
 *   resuming    running, failed, cancelled,
 *               suspended  (resume failed, the stored state is intact)
 *   done, failed, cancelled: terminal, no way out
 *
 * Time bookkeeping done by the transition: entering running sets
 * start_time (the start of the current running stretch); leaving running
 * adds the stretch to elapsed_s, so walltime counts running time only
 * and a suspended job keeps what it has used; entering pending (requeue)
 * resets start_time, elapsed_s, end_time, exit_status and failure;
 * entering a terminal state sets end_time.
 */
#pragma once

#include <glib.h>

#include "sal-error.h"
#include "sal-valid.h"

/* Bounds on what users submit (sal_job_validate). */
#define SAL_MAX_IMAGE_LEN 1024
#define SAL_MAX_ARGS 256
#define SAL_MAX_COMMAND_LEN 65536 /* all arguments together */
#define SAL_MAX_VMS 1024          /* per job */
#define SAL_MAX_CPUS 1024         /* per VM, and per node */
#define SAL_MAX_MEM_MIB (G_GUINT64_CONSTANT(16) << 20) /* 16 TiB */
#define SAL_MAX_WALLTIME_S (30 * 24 * 3600)
#define SAL_PRIORITY_MIN (-1000)
#define SAL_PRIORITY_MAX 1000
#define SAL_MIN_SNAPSHOT_INTERVAL_S 5
#define SAL_MAX_SNAPSHOT_INTERVAL_S (24 * 3600)
#define SAL_MAX_IDEMPOTENCY_KEY_LEN 128
#define SAL_MAX_SSI_VMS 63 /* an SSI cluster's members */

typedef enum {
    SAL_JOB_PENDING,
    SAL_JOB_STARTING,
    SAL_JOB_RUNNING,
    SAL_JOB_SUSPENDING,
    SAL_JOB_SUSPENDED,
    SAL_JOB_RESUMING,
    SAL_JOB_DONE,
    SAL_JOB_FAILED,
    SAL_JOB_CANCELLED,
    SAL_JOB_N_STATES,
} SalJobState;

typedef struct {
    gint64 id; /* 0 until the store assigns one */
    guint32 owner_uid;
    char *name;
    SalJobState state;
    gboolean besteffort; /* runs on idle capacity, preemptible */
    gboolean idempotent; /* may be requeued once it has run */
    gint priority;       /* higher first */
    guint n_vms;
    guint cpus;      /* per VM */
    guint64 mem_mib; /* per VM */
    char *image;
    gint64 walltime_s;
    char *site;     /* NULL: any site */
    char **command; /* argv, NULL-terminated */
    gint64 submit_time;
    gint64 start_time; /* start of the current running stretch */
    gint64 end_time;
    gint64 elapsed_s; /* running time before start_time */
    gint exit_status; /* -1: none */
    char *failure;    /* why it failed, or NULL */
    /* Best-effort jobs: seconds between snapshots of their VMs (0: the
     * daemon's default), the latest complete snapshot (0: none), and a
     * suspension a user asked for (not resumed until asked). */
    gint64 snapshot_interval_s;
    guint snapshot_seq;
    gboolean held;
    /* The client's name for its submission (NULL: none), unique per
     * owner: a submission repeated with it is answered the job stored,
     * not stored again. */
    char *idempotency_key;
    /* OAR mode: the OAR job that holds, or was asked for, the job's
     * nodes (0: none yet). */
    gint64 oar_job_id;
    /* An SSI job (saline/README.md, "SSI jobs"): its VMs form one SSI
     * cluster with this key (64 hex digits, made by salined; NULL until
     * then), never shown to clients. */
    gboolean ssi;
    char *ssi_key;
} SalJob;

typedef enum {
    SAL_VM_PLACED, /* assigned to a node, no domain yet */
    SAL_VM_STARTING,
    SAL_VM_RUNNING,
    SAL_VM_SUSPENDED, /* state stored, domain gone */
    SAL_VM_STOPPED,   /* shut down with its job */
    SAL_VM_DEAD,      /* died, or never started */
    SAL_VM_N_STATES,
} SalVmState;

typedef struct {
    gint64 job_id;
    guint index; /* 0 .. n_vms - 1 */
    char *node;  /* NULL until placed */
    char *site;
    char *mac; /* set by the address manager (sal-addr.h) */
    char *ip;
    char *domain; /* libvirt domain name */
    SalVmState state;
    gint exit_status; /* of the command in this VM; -1: none */
} SalVm;

const char *sal_job_state_to_string(SalJobState state);
gboolean sal_job_state_from_string(const char *text, SalJobState *state,
                                   GError **error);
gboolean sal_job_state_is_terminal(SalJobState state);
/* The job holds node capacity: starting, running, suspending, resuming. */
gboolean sal_job_state_is_active(SalJobState state);
/* The table above, without the idempotence rule. */
gboolean sal_job_state_can_go(SalJobState from, SalJobState to);

const char *sal_vm_state_to_string(SalVmState state);
gboolean sal_vm_state_from_string(const char *text, SalVmState *state,
                                  GError **error);

/* A pending job with no exit status; the caller fills in the rest. */
SalJob *sal_job_new(void);
SalJob *sal_job_copy(const SalJob *job);
void sal_job_free(SalJob *job);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SalJob, sal_job_free)

/* Checks every field a user submits against the bounds above: name,
 * n_vms, cpus, mem_mib, image, walltime_s, site, command, priority,
 * snapshot_interval_s (0, or SAL_MIN_ to SAL_MAX_SNAPSHOT_INTERVAL_S for
 * a best-effort job only), idempotency_key (NULL, or 1 to
 * SAL_MAX_IDEMPOTENCY_KEY_LEN printable ASCII characters), ssi (at most
 * SAL_MAX_SSI_VMS VMs, not best-effort). */
gboolean sal_job_validate(const SalJob *job, GError **error);
/* @a and @b were submitted alike: every field a user submits but the
 * idempotency key is equal. */
gboolean sal_job_same_submission(const SalJob *a, const SalJob *b);

/* Moves @job to @state at the current time, or fails with
 * SAL_ERROR_STATE and leaves it untouched. */
gboolean sal_job_transition(SalJob *job, SalJobState state, GError **error);
gboolean sal_job_transition_at(SalJob *job, SalJobState state, gint64 now,
                               GError **error);

/* Running time used so far. */
gint64 sal_job_run_time(const SalJob *job, gint64 now);
/* When the walltime runs out if the job runs from now on (for a job that
 * is not running yet: as if it started at @now); never before @now. */
gint64 sal_job_expected_end(const SalJob *job, gint64 now);

SalVm *sal_vm_new(gint64 job_id, guint index);
SalVm *sal_vm_copy(const SalVm *vm);
void sal_vm_free(SalVm *vm);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SalVm, sal_vm_free)
/* "saline-<job>-<index>": unique per grid, as job ids are. */
char *sal_vm_domain_name(gint64 job_id, guint index);

/*
 * Walltime, OAR's convention: "H:M:S", "H:M" or "H" (so a bare number is
 * hours, as in oarsub), or a number with a unit: "90s", "15m", "2h",
 * "3d". M and S below 60. Zero and more than 30 days are refused.
 */
gboolean sal_walltime_parse(const char *text, gint64 *seconds, GError **error);
/* A duration in seconds, @what naming it in errors: "90" (seconds, unlike
 * a walltime), or a number with a unit as a walltime: "90s", "2m", "1h",
 * "1d". Bounds are the caller's. */
gboolean sal_duration_parse(const char *what, const char *text,
                            gint64 *seconds, GError **error);
/* "H:MM:SS", the form oarstat shows. */
char *sal_walltime_format(gint64 seconds);

/*
 * Memory in MiB: "1024" (MiB), or a number with a binary unit "M", "G",
 * "T" (also "MB"/"MiB", ..., any case): "512M", "2G". Zero and more than
 * SAL_MAX_MEM_MIB are refused.
 */
gboolean sal_mem_parse(const char *text, guint64 *mib, GError **error);
/* "2G" when a whole number of GiB, else "1536M". */
char *sal_mem_format(guint64 mib);
