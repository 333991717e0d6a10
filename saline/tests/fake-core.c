#include "fake-core.h"

#include <string.h>

/* A line of history, and whose. */
typedef struct {
    gint64 job_id;
    SalEvent event;
} FakeEvent;

struct SaldCore {
    GPtrArray *jobs;      /* SalJob * */
    GPtrArray *vms;       /* SalVm *, by job then index */
    GPtrArray *snapshots; /* SalSnapshot *, by job then seq */
    GPtrArray *events;    /* FakeEvent *, oldest first */
    gint64 next_id;
    gint64 uid_override;
    guint32 last_uid;
};

static void
fake_event_free(FakeEvent *e)
{
    g_free(e->event.text);
    g_free(e);
}

SaldCore *
fake_core_new(void)
{
    SaldCore *core = g_new0(SaldCore, 1);

    core->jobs = g_ptr_array_new_with_free_func((GDestroyNotify)sal_job_free);
    core->vms = g_ptr_array_new_with_free_func((GDestroyNotify)sal_vm_free);
    core->snapshots = g_ptr_array_new_with_free_func(g_free);
    core->events =
        g_ptr_array_new_with_free_func((GDestroyNotify)fake_event_free);
    core->next_id = 1;
    core->uid_override = -1;
    core->last_uid = G_MAXUINT32;
    return core;
}

void
fake_core_free(SaldCore *core)
{
    if (!core) {
        return;
    }
    g_ptr_array_unref(core->jobs);
    g_ptr_array_unref(core->vms);
    g_ptr_array_unref(core->snapshots);
    g_ptr_array_unref(core->events);
    g_free(core);
}

void
fake_core_set_uid(SaldCore *core, gint64 uid)
{
    core->uid_override = uid;
}

guint32
fake_core_last_uid(SaldCore *core)
{
    return core->last_uid;
}

/* Records the uid the API passed; the one to act as. */
static guint32
caller(SaldCore *core, guint32 uid)
{
    core->last_uid = uid;
    return core->uid_override >= 0 ? (guint32)core->uid_override : uid;
}

static SalJob *
find_job(SaldCore *core, guint32 uid, gint64 id, GError **error)
{
    for (guint i = 0; i < core->jobs->len; i++) {
        SalJob *job = g_ptr_array_index(core->jobs, i);

        if (job->id == id && (uid == 0 || job->owner_uid == uid)) {
            return job;
        }
    }
    g_set_error(error, SAL_ERROR, SAL_ERROR_NOT_FOUND,
                "no job %" G_GINT64_FORMAT, id);
    return NULL;
}

static void G_GNUC_PRINTF(4, 5)
add_event(SaldCore *core, gint64 id, gint64 time, const char *format, ...)
{
    FakeEvent *e = g_new0(FakeEvent, 1);
    va_list ap;

    e->job_id = id;
    e->event.time = time;
    va_start(ap, format);
    e->event.text = g_strdup_vprintf(format, ap);
    va_end(ap);
    g_ptr_array_add(core->events, e);
}

/* Every VM of job @id goes to @state. */
static void
set_vms_state(SaldCore *core, gint64 id, SalVmState state)
{
    for (guint i = 0; i < core->vms->len; i++) {
        SalVm *vm = g_ptr_array_index(core->vms, i);

        if (vm->job_id == id) {
            vm->state = state;
        }
    }
}

static GPtrArray *
vms_of(SaldCore *core, gint64 id, GPtrArray *into)
{
    for (guint i = 0; i < core->vms->len; i++) {
        SalVm *vm = g_ptr_array_index(core->vms, i);

        if (vm->job_id == id) {
            g_ptr_array_add(into, sal_vm_copy(vm));
        }
    }
    return into;
}

static GPtrArray *
vm_array(void)
{
    return g_ptr_array_new_with_free_func((GDestroyNotify)sal_vm_free);
}

gboolean
sald_core_submit(SaldCore *core, guint32 uid, SalJob *job, GError **error)
{
    uid = caller(core, uid);
    job->owner_uid = uid;
    if (!sal_job_validate(job, error)) {
        return FALSE;
    }
    if (!g_str_equal(job->image, "debian-12") &&
        !g_str_equal(job->image, "alpine")) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID, "unknown image '%s'",
                    job->image);
        return FALSE;
    }
    /* The store's UNIQUE index on (owner_uid, idempotency_key). */
    for (guint i = 0; job->idempotency_key && i < core->jobs->len; i++) {
        const SalJob *j = g_ptr_array_index(core->jobs, i);

        if (j->owner_uid == uid &&
            g_strcmp0(j->idempotency_key, job->idempotency_key) == 0) {
            g_set_error(error, SAL_ERROR, SAL_ERROR_CONFLICT,
                        "uid %" G_GUINT32_FORMAT " already has a job with "
                        "idempotency key '%s'",
                        uid, job->idempotency_key);
            return FALSE;
        }
    }
    job->id = core->next_id++;
    job->state = SAL_JOB_PENDING;
    job->submit_time = 1700000000;
    g_ptr_array_add(core->jobs, sal_job_copy(job));
    for (guint i = 0; i < job->n_vms; i++) {
        SalVm *vm = sal_vm_new(job->id, i);

        vm->node = g_strdup_printf("node-%u", i);
        vm->site = g_strdup("rennes");
        vm->ip = g_strdup_printf("10.0.%" G_GINT64_FORMAT ".%u", job->id,
                                 i + 2);
        vm->mac = g_strdup_printf("52:54:00:00:00:%02x", i);
        vm->domain = sal_vm_domain_name(job->id, i);
        vm->state = SAL_VM_PLACED;
        g_ptr_array_add(core->vms, vm);
    }
    add_event(core, job->id, job->submit_time, "submitted");
    return TRUE;
}

void
fake_core_start(SaldCore *core, gint64 id)
{
    SalJob *job = find_job(core, 0, id, NULL);

    g_assert_nonnull(job);
    g_assert_true(sal_job_transition_at(job, SAL_JOB_STARTING, 1700000010,
                                        NULL));
    g_assert_true(sal_job_transition_at(job, SAL_JOB_RUNNING, 1700000020,
                                        NULL));
    set_vms_state(core, id, SAL_VM_RUNNING);
    add_event(core, id, 1700000020, "started");
}

GPtrArray *
sald_core_list_jobs(SaldCore *core, guint32 uid, gboolean all,
                    GPtrArray **vms, GError **error)
{
    GPtrArray *jobs =
        g_ptr_array_new_with_free_func((GDestroyNotify)sal_job_free);
    GPtrArray *list = vm_array();

    uid = caller(core, uid);
    for (guint i = 0; i < core->jobs->len; i++) {
        SalJob *job = g_ptr_array_index(core->jobs, i);

        if ((uid == 0 || job->owner_uid == uid) &&
            (all || !sal_job_state_is_terminal(job->state))) {
            g_ptr_array_add(jobs, sal_job_copy(job));
            vms_of(core, job->id, list);
        }
    }
    if (vms) {
        *vms = list;
    } else {
        g_ptr_array_unref(list);
    }
    return jobs;
}

SalJob *
sald_core_get_job(SaldCore *core, guint32 uid, gint64 id, GPtrArray **vms,
                  GError **error)
{
    SalJob *job = find_job(core, caller(core, uid), id, error);

    if (!job) {
        return NULL;
    }
    if (vms) {
        *vms = vms_of(core, id, vm_array());
    }
    return sal_job_copy(job);
}

gboolean
sald_core_cancel(SaldCore *core, guint32 uid, gint64 id, GError **error)
{
    SalJob *job = find_job(core, caller(core, uid), id, error);

    return job && sal_job_transition_at(job, SAL_JOB_CANCELLED, 1700000100,
                                        error);
}

/* Stores a final snapshot at once, where salined takes a while: the job
 * is suspended, held, when this returns. */
gboolean
sald_core_suspend(SaldCore *core, guint32 uid, gint64 id, GError **error)
{
    SalJob *job = find_job(core, caller(core, uid), id, error);
    SalSnapshot *snap;

    if (!job) {
        return FALSE;
    }
    if (!job->besteffort) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                    "job %" G_GINT64_FORMAT " is not best-effort: only "
                    "best-effort jobs can be suspended",
                    id);
        return FALSE;
    }
    if (job->state != SAL_JOB_RUNNING) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_STATE,
                    "job %" G_GINT64_FORMAT " is %s, not running", id,
                    sal_job_state_to_string(job->state));
        return FALSE;
    }
    g_assert_true(sal_job_transition_at(job, SAL_JOB_SUSPENDING, 1700000200,
                                        NULL));
    snap = g_new0(SalSnapshot, 1);
    snap->job_id = id;
    snap->seq = job->snapshot_seq + 1;
    snap->time = 1700000210;
    snap->pause_ms = 840;
    snap->bytes_sent = G_GUINT64_CONSTANT(3) << 29; /* 1.5 GiB */
    snap->bytes_new = 200 * 1024 * 1024;
    g_ptr_array_add(core->snapshots, snap);
    job->snapshot_seq = snap->seq;
    g_assert_true(sal_job_transition_at(job, SAL_JOB_SUSPENDED, 1700000210,
                                        NULL));
    job->held = TRUE;
    set_vms_state(core, id, SAL_VM_SUSPENDED);
    add_event(core, id, 1700000200, "suspend asked by uid %" G_GUINT32_FORMAT,
              caller(core, uid));
    add_event(core, id, 1700000210, "suspended: snapshot %u", snap->seq);
    return TRUE;
}

/* The job stays suspended until the scheduler redeploys it, which the
 * fake never does. */
gboolean
sald_core_resume(SaldCore *core, guint32 uid, gint64 id, GError **error)
{
    SalJob *job = find_job(core, caller(core, uid), id, error);

    if (!job) {
        return FALSE;
    }
    if ((job->state != SAL_JOB_SUSPENDING && job->state != SAL_JOB_SUSPENDED) ||
        !job->held) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_STATE,
                    "job %" G_GINT64_FORMAT " is not held suspended", id);
        return FALSE;
    }
    job->held = FALSE;
    add_event(core, id, 1700000300, "resume asked by uid %" G_GUINT32_FORMAT,
              caller(core, uid));
    return TRUE;
}

gboolean
sald_core_get_history(SaldCore *core, guint32 uid, gint64 id,
                      GPtrArray **snapshots, GPtrArray **events,
                      GError **error)
{
    g_autoptr(GPtrArray) snaps = NULL;
    g_autoptr(GPtrArray) evs = NULL;

    if (!find_job(core, caller(core, uid), id, error)) {
        return FALSE;
    }
    snaps = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < core->snapshots->len; i++) {
        const SalSnapshot *snap = g_ptr_array_index(core->snapshots, i);

        if (snap->job_id == id) {
            g_ptr_array_add(snaps, g_memdup2(snap, sizeof(*snap)));
        }
    }
    evs = g_ptr_array_new_with_free_func((GDestroyNotify)sal_event_free);
    for (guint i = 0; i < core->events->len; i++) {
        const FakeEvent *e = g_ptr_array_index(core->events, i);
        SalEvent *copy;

        if (e->job_id != id) {
            continue;
        }
        copy = g_new0(SalEvent, 1);
        copy->time = e->event.time;
        copy->text = g_strdup(e->event.text);
        g_ptr_array_add(evs, copy);
    }
    *snapshots = g_steal_pointer(&snaps);
    *events = g_steal_pointer(&evs);
    return TRUE;
}

void
sald_node_info_free(SaldNodeInfo *info)
{
    if (!info) {
        return;
    }
    g_free(info->name);
    g_free(info->site);
    g_free(info->uri);
    g_free(info->error);
    g_free(info);
}

static SaldNodeInfo *
node_info(const char *name, gboolean up, const char *error)
{
    SaldNodeInfo *n = g_new0(SaldNodeInfo, 1);

    n->name = g_strdup(name);
    n->site = g_strdup("rennes");
    n->uri = g_strdup_printf("qemu+tcp://%s/system", name);
    n->cpus = 32;
    n->mem_mib = 65536;
    n->up = up;
    n->error = g_strdup(error);
    n->used_cpus = up ? 4 : 0;
    n->used_mem_mib = up ? 2048 : 0;
    n->n_vms = up ? 2 : 0;
    return n;
}

GPtrArray *
sald_core_list_nodes(SaldCore *core)
{
    GPtrArray *nodes =
        g_ptr_array_new_with_free_func((GDestroyNotify)sald_node_info_free);

    g_ptr_array_add(nodes, node_info("node-0", TRUE, NULL));
    g_ptr_array_add(nodes, node_info("node-1", FALSE, "connection refused"));
    return nodes;
}

GPtrArray *
sald_core_list_images(SaldCore *core)
{
    GPtrArray *images = g_ptr_array_new_with_free_func(g_free);

    g_ptr_array_add(images, g_strdup("alpine"));
    g_ptr_array_add(images, g_strdup("debian-12"));
    return images;
}

void
sald_vm_log_free(SaldVmLog *log)
{
    if (!log) {
        return;
    }
    g_free(log->node);
    g_clear_pointer(&log->output, g_bytes_unref);
    g_free(log);
}

/* Each VM printed "vm I\n"; VM 0 also an invalid UTF-8 byte, exited 0 and
 * filled its drive; the others still run. */
void
sald_core_get_log_async(SaldCore *core, guint32 uid, gint64 id,
                        GCancellable *cancellable,
                        GAsyncReadyCallback callback, gpointer data)
{
    g_autoptr(GTask) task = g_task_new(NULL, cancellable, callback, data);
    g_autoptr(GError) error = NULL;
    SalJob *job = find_job(core, caller(core, uid), id, &error);
    GPtrArray *logs;

    if (!job) {
        g_task_return_error(task, g_steal_pointer(&error));
        return;
    }
    logs = g_ptr_array_new_with_free_func((GDestroyNotify)sald_vm_log_free);
    for (guint i = 0; i < job->n_vms; i++) {
        SaldVmLog *log = g_new0(SaldVmLog, 1);
        g_autofree char *text =
            g_strdup_printf("%svm %u\n", i == 0 ? "\xff" : "", i);

        log->index = i;
        log->node = g_strdup_printf("node-%u", i);
        log->exit_status = i == 0 ? 0 : -1;
        log->truncated = i == 0;
        log->output = g_bytes_new(text, strlen(text));
        g_ptr_array_add(logs, log);
    }
    g_task_return_pointer(task, logs, (GDestroyNotify)g_ptr_array_unref);
}

GPtrArray *
sald_core_get_log_finish(SaldCore *core, GAsyncResult *result,
                         GError **error)
{
    return g_task_propagate_pointer(G_TASK(result), error);
}
