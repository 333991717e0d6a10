/*
 * salined's core: the jobs' life, driven by the store.
 *
 * The store is the truth; memory holds only what a restart may forget
 * (connections, operations in flight, the domains each node runs). Every
 * decision is level-triggered: sald_job_reconcile() looks at a job as stored
 * and at what the nodes run, and starts what is missing (create a VM,
 * collect one that ended, tear down the VMs of an ended job, release its
 * addresses). It runs after every event, every operation and every tick,
 * and once for every job after a restart, which is how a killed salined
 * re-adopts its VMs: a VM whose domain still runs is simply left alone.
 *
 * libvirt calls block, so they run in worker threads (GTask); their
 * results come back to the main thread, the only one that touches the
 * store. A job with an operation in flight is not reconciled until the
 * operation is back, so two operations never race on one VM.
 *
 * This file holds the core's life (new, start, tick, free) and what the
 * API asks of it (sald-core.h). Its parts share sald-core-internal.h:
 * sald-job.c (reconcile, scheduling), sald-node.c (connections,
 * listings, leftovers, lost nodes), sald-op.c (worker-thread operations
 * on a node's VMs), sald-snapshot.c (best-effort jobs' snapshots and
 * redeploys), sald-oar.c (OAR mode: OAR allocates the nodes).
 */
#include "sald-core.h"
#include "sald-core-private.h"
#include "sald-core-internal.h"

#include <glib/gstdio.h>

#include "sal-sched.h"

#define TICK_S 2

gint64
sald_now_s(void)
{
    return g_get_real_time() / G_USEC_PER_SEC;
}

GHashTable *
sald_id_set_new(void)
{
    return g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
}

void
sald_id_set_add(GHashTable *set, gint64 id)
{
    g_hash_table_add(set, g_memdup2(&id, sizeof(id)));
}

/* ---- life of the core ---- */

static gboolean
core_load_pools(SaldCore *core, GError **error)
{
    for (guint i = 0; i < core->config->sites->len; i++) {
        const SaldSiteConf *s = core->config->sites->pdata[i];

        if (!sal_addr_add_pool(core->addr, s->name, s->network, s->range,
                               s->gateway, error)) {
            g_prefix_error(error, "site '%s': ", s->name);
            return FALSE;
        }
    }
    return TRUE;
}

/* Ended jobs whose VMs or addresses were not let go before a restart. */
static gboolean
core_find_teardown(SaldCore *core, GError **error)
{
    g_autoptr(GPtrArray) jobs = NULL;
    g_autoptr(GPtrArray) vms = NULL;
    g_autoptr(GPtrArray) leases = sal_addr_list(core->addr);
    g_autoptr(GHashTable) ended = sald_id_set_new();

    jobs = sal_store_load_jobs(core->store, TRUE, &vms, error);
    if (!jobs) {
        return FALSE;
    }
    for (guint i = 0; i < jobs->len; i++) {
        const SalJob *job = jobs->pdata[i];

        if (sal_job_state_is_terminal(job->state)) {
            sald_id_set_add(ended, job->id);
        }
    }
    for (guint i = 0; i < vms->len; i++) {
        const SalVm *vm = vms->pdata[i];

        if (!sald_vm_final(vm) && g_hash_table_contains(ended, &vm->job_id)) {
            sald_id_set_add(core->teardown, vm->job_id);
        }
    }
    for (guint i = 0; i < leases->len; i++) {
        const SalLease *lease = leases->pdata[i];

        if (g_hash_table_contains(ended, &lease->job_id)) {
            sald_id_set_add(core->teardown, lease->job_id);
        }
    }
    return TRUE;
}

SaldCore *
sald_core_new(SaldConfig *config, GError **error)
{
    g_autoptr(SaldCore) core = g_new0(SaldCore, 1);
    g_autofree char *db = NULL;
    g_autoptr(GPtrArray) nodes = NULL;

    core->config = config;
    core->nodes = g_hash_table_new_full(g_str_hash, g_str_equal, NULL,
                                        (GDestroyNotify)sald_node_free);
    core->busy = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free,
                                       NULL);
    core->teardown = sald_id_set_new();
    core->requeue = sald_id_set_new();
    core->snap_due = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free,
                                           g_free);
    core->snap_final = g_hash_table_new_full(g_int64_hash, g_int64_equal,
                                             g_free, g_free);
    core->snap_refused = sald_id_set_new();
    core->snap_skip = sald_id_set_new();
    core->all_nodes = sald_config_sal_nodes(config);
    if (g_mkdir_with_parents(config->state_dir, 0750) < 0) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_STORE,
                    "cannot create state directory '%s': %s",
                    config->state_dir, g_strerror(errno));
        return NULL;
    }
    core->output_dir = g_build_filename(config->state_dir, "output", NULL);
    /* Snapshots stage disk copies there before any job has ended. */
    if (g_mkdir_with_parents(core->output_dir, 0750) < 0) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_STORE,
                    "cannot create output directory '%s': %s",
                    core->output_dir, g_strerror(errno));
        return NULL;
    }
    db = g_build_filename(config->state_dir, "saline.db", NULL);
    core->store = sal_store_open(db, error);
    if (!core->store || !sal_store_save_nodes(core->store, core->all_nodes,
                                              error)) {
        return NULL;
    }
    core->addr = sal_addr_new(core->store, error);
    if (!core->addr || !core_load_pools(core, error) ||
        !core_find_teardown(core, error)) {
        return NULL;
    }
    for (guint i = 0; i < config->nodes->len; i++) {
        const SaldNodeConf *conf = config->nodes->pdata[i];

        g_hash_table_insert(core->nodes, conf->node->name,
                            sald_node_new(core, conf));
    }
    if (config->oar) {
        core->oar = sald_oar_new(core, error);
        if (!core->oar) {
            return NULL;
        }
    }
    return g_steal_pointer(&core);
}

static gboolean
tick(gpointer data)
{
    SaldCore *core = data;
    gint64 now = sald_now_s();
    GHashTableIter iter;
    gpointer value;

    g_hash_table_iter_init(&iter, core->nodes);
    while (g_hash_table_iter_next(&iter, NULL, &value)) {
        sald_node_tick(core, value, now);
    }
    if (core->oar) {
        sald_oar_tick(core);
    }
    /* Walltimes, and anything an earlier pass could not finish. */
    sald_job_reconcile_all(core);
    sald_job_schedule_soon(core);
    return G_SOURCE_CONTINUE;
}

void
sald_core_start(SaldCore *core)
{
    GHashTableIter iter;
    gpointer value;

    g_hash_table_iter_init(&iter, core->nodes);
    while (g_hash_table_iter_next(&iter, NULL, &value)) {
        sald_node_connect(core, value);
    }
    core->tick_id = g_timeout_add_seconds(TICK_S, tick, core);
    if (core->oar) {
        sald_oar_tick(core);
    }
    sald_job_schedule_soon(core);
}

gboolean
sald_core_idle(SaldCore *core)
{
    GHashTableIter iter;
    gpointer value;

    g_hash_table_iter_init(&iter, core->nodes);
    while (g_hash_table_iter_next(&iter, NULL, &value)) {
        SaldNode *node = value;

        if (node->connecting || node->listing) {
            return FALSE;
        }
    }
    return g_hash_table_size(core->busy) == 0 &&
           (!core->oar || sald_oar_idle(core));
}

void
sald_core_free(SaldCore *core)
{
    if (!core) {
        return;
    }
    g_clear_handle_id(&core->tick_id, g_source_remove);
    g_clear_handle_id(&core->sched_id, g_source_remove);
    g_clear_pointer(&core->nodes, g_hash_table_unref);
    g_clear_pointer(&core->busy, g_hash_table_unref);
    g_clear_pointer(&core->teardown, g_hash_table_unref);
    g_clear_pointer(&core->requeue, g_hash_table_unref);
    g_clear_pointer(&core->snap_due, g_hash_table_unref);
    g_clear_pointer(&core->snap_final, g_hash_table_unref);
    g_clear_pointer(&core->snap_refused, g_hash_table_unref);
    g_clear_pointer(&core->snap_skip, g_hash_table_unref);
    g_clear_pointer(&core->oar, sald_oar_free);
    g_clear_pointer(&core->all_nodes, g_ptr_array_unref);
    g_clear_pointer(&core->addr, sal_addr_unref);
    g_clear_pointer(&core->store, sal_store_free);
    g_free(core->output_dir);
    sald_config_free(core->config);
    g_free(core);
}

/* ---- what the API asks ---- */

static gboolean
may_see(guint32 uid, const SalJob *job)
{
    return uid == 0 || job->owner_uid == uid;
}

gboolean
sald_core_submit(SaldCore *core, guint32 uid, SalJob *job, GError **error)
{
    g_autofree char *why = NULL;
    const SaldImageConf *image;

    job->id = 0;
    job->owner_uid = uid;
    job->state = SAL_JOB_PENDING;
    job->submit_time = sald_now_s();
    if (!sal_job_validate(job, error)) {
        return FALSE;
    }
    image = sald_config_image(core->config, job->image);
    if (!image) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID, "unknown image '%s'",
                    job->image);
        return FALSE;
    }
    g_clear_pointer(&job->ssi_key, g_free);
    if (job->ssi && (!sald_ssi_check_image(image, error) ||
                     !(job->ssi_key = sald_ssi_new_key(error)))) {
        return FALSE;
    }
    why = sal_sched_unschedulable(core->all_nodes, job);
    if (why) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID, "%s", why);
        return FALSE;
    }
    if (core->oar && !sald_oar_check_reachable(core, error)) {
        return FALSE;
    }
    if (!sal_store_save_job(core->store, job, NULL, error)) {
        return FALSE;
    }
    g_message("job %" G_GINT64_FORMAT " submitted by uid %u", job->id, uid);
    sald_job_schedule_soon(core);
    return TRUE;
}

GPtrArray *
sald_core_list_jobs(SaldCore *core, guint32 uid, gboolean all,
                    GPtrArray **vms, GError **error)
{
    g_autoptr(GPtrArray) jobs = NULL;
    g_autoptr(GPtrArray) all_vms = NULL;
    g_autoptr(GPtrArray) out =
        g_ptr_array_new_with_free_func((GDestroyNotify)sal_job_free);
    g_autoptr(GHashTable) seen = sald_id_set_new();

    jobs = sal_store_load_jobs(core->store, all, &all_vms, error);
    if (!jobs) {
        return NULL;
    }
    for (guint i = 0; i < jobs->len; i++) {
        SalJob *job = jobs->pdata[i];

        if (may_see(uid, job)) {
            sald_id_set_add(seen, job->id);
            g_ptr_array_add(out, sal_job_copy(job));
        }
    }
    if (vms) {
        *vms = g_ptr_array_new_with_free_func((GDestroyNotify)sal_vm_free);
        for (guint i = 0; i < all_vms->len; i++) {
            const SalVm *vm = all_vms->pdata[i];

            if (g_hash_table_contains(seen, &vm->job_id)) {
                g_ptr_array_add(*vms, sal_vm_copy(vm));
            }
        }
    }
    return g_steal_pointer(&out);
}

SalJob *
sald_core_get_job(SaldCore *core, guint32 uid, gint64 id, GPtrArray **vms,
                  GError **error)
{
    g_autoptr(GPtrArray) job_vms = NULL;
    g_autoptr(SalJob) job = sal_store_load_job(core->store, id, &job_vms,
                                               error);

    if (vms) {
        *vms = NULL;
    }
    if (!job) {
        return NULL;
    }
    if (!may_see(uid, job)) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_NOT_FOUND,
                    "no job %" G_GINT64_FORMAT, id);
        return NULL;
    }
    if (vms) {
        *vms = g_steal_pointer(&job_vms);
    }
    return g_steal_pointer(&job);
}

gboolean
sald_core_cancel(SaldCore *core, guint32 uid, gint64 id, GError **error)
{
    g_autoptr(GPtrArray) vms = NULL;
    g_autoptr(SalJob) job = sald_core_get_job(core, uid, id, &vms, error);

    if (!job) {
        return FALSE;
    }
    if (sal_job_state_is_terminal(job->state)) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_STATE,
                    "job %" G_GINT64_FORMAT " has already ended (%s)", id,
                    sal_job_state_to_string(job->state));
        return FALSE;
    }
    if (!sal_job_transition(job, SAL_JOB_CANCELLED, error)) {
        return FALSE;
    }
    job->failure = g_strdup_printf("cancelled by uid %u", uid);
    if (!sal_store_save_job(core->store, job, NULL, error)) {
        return FALSE;
    }
    g_message("job %" G_GINT64_FORMAT " cancelled by uid %u", id, uid);
    sald_id_set_add(core->teardown, id);
    g_hash_table_remove(core->requeue, &id);
    sald_job_reconcile(core, id);
    sald_job_schedule_soon(core);
    return TRUE;
}

gboolean
sald_core_suspend(SaldCore *core, guint32 uid, gint64 id, GError **error)
{
    g_autoptr(SalJob) job = sald_core_get_job(core, uid, id, NULL, error);
    g_autofree char *why = NULL;

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
    if (!sald_snapshots_on(core)) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                    "salined has no snapshot store ([snapshots] store=)");
        return FALSE;
    }
    if (job->state != SAL_JOB_RUNNING) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_STATE,
                    "job %" G_GINT64_FORMAT " is %s, not running", id,
                    sal_job_state_to_string(job->state));
        return FALSE;
    }
    if (!sal_job_transition(job, SAL_JOB_SUSPENDING, error)) {
        return FALSE;
    }
    job->held = TRUE;
    if (!sal_store_save_job(core->store, job, NULL, error)) {
        return FALSE;
    }
    why = g_strdup_printf("suspending: asked by uid %u", uid);
    sald_event(core, id, "%s", why);
    sald_job_reconcile(core, id);
    return TRUE;
}

gboolean
sald_core_resume(SaldCore *core, guint32 uid, gint64 id, GError **error)
{
    g_autoptr(SalJob) job = sald_core_get_job(core, uid, id, NULL, error);

    if (!job) {
        return FALSE;
    }
    if (!job->held || (job->state != SAL_JOB_SUSPENDED &&
                       job->state != SAL_JOB_SUSPENDING)) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_STATE,
                    "job %" G_GINT64_FORMAT " is %s, not suspended by a user",
                    id, sal_job_state_to_string(job->state));
        return FALSE;
    }
    job->held = FALSE;
    if (!sal_store_save_job(core->store, job, NULL, error)) {
        return FALSE;
    }
    sald_event(core, id, "resume asked by uid %u", uid);
    sald_job_schedule_soon(core);
    return TRUE;
}

gboolean
sald_core_get_history(SaldCore *core, guint32 uid, gint64 id,
                      GPtrArray **snapshots, GPtrArray **events,
                      GError **error)
{
    g_autoptr(SalJob) job = sald_core_get_job(core, uid, id, NULL, error);
    g_autoptr(GPtrArray) snaps = NULL;

    if (!job) {
        return FALSE;
    }
    snaps = sal_store_load_snapshots(core->store, id, error);
    if (!snaps) {
        return FALSE;
    }
    *events = sal_store_load_events(core->store, id, error);
    if (!*events) {
        return FALSE;
    }
    *snapshots = g_steal_pointer(&snaps);
    return TRUE;
}

void
sald_node_info_free(SaldNodeInfo *info)
{
    if (info) {
        g_free(info->name);
        g_free(info->site);
        g_free(info->uri);
        g_free(info->error);
        g_free(info);
    }
}

GPtrArray *
sald_core_list_nodes(SaldCore *core)
{
    GPtrArray *out =
        g_ptr_array_new_with_free_func((GDestroyNotify)sald_node_info_free);
    g_autoptr(GPtrArray) jobs = NULL;
    g_autoptr(GPtrArray) vms = NULL;

    jobs = sal_store_load_active(core->store, &vms, NULL);
    for (guint i = 0; i < core->all_nodes->len; i++) {
        const SalNode *n = core->all_nodes->pdata[i];
        SaldNode *node = sald_node_get(core, n->name);
        SaldNodeInfo *info = g_new0(SaldNodeInfo, 1);

        info->name = g_strdup(n->name);
        info->site = g_strdup(n->site);
        info->uri = g_strdup(n->uri);
        info->cpus = n->cpus;
        info->mem_mib = n->mem_mib;
        info->up = node && node->conn;
        info->error = node && !node->conn ? g_strdup(node->error) : NULL;
        for (guint j = 0; vms && j < vms->len; j++) {
            const SalVm *vm = vms->pdata[j];

            for (guint k = 0; k < jobs->len; k++) {
                const SalJob *job = jobs->pdata[k];

                if (job->id == vm->job_id && !sald_vm_final(vm) &&
                    g_strcmp0(vm->node, n->name) == 0 &&
                    sal_job_state_is_active(job->state)) {
                    info->used_cpus += job->cpus;
                    info->used_mem_mib += job->mem_mib;
                    info->n_vms++;
                }
            }
        }
        g_ptr_array_add(out, info);
    }
    return out;
}

GPtrArray *
sald_core_list_images(SaldCore *core)
{
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);

    for (guint i = 0; i < core->config->images->len; i++) {
        g_ptr_array_add(
            out, g_strdup(((SaldImageConf *)core->config->images->pdata[i])->name));
    }
    return out;
}

void
sald_vm_log_free(SaldVmLog *log)
{
    if (log) {
        g_free(log->node);
        g_clear_pointer(&log->output, g_bytes_unref);
        g_free(log);
    }
}

/* The kept output of VM @index, or NULL if there is none. */
static SaldVmLog *
log_from_files(SaldCore *core, const SalVm *vm)
{
    g_autofree char *data_path =
        sald_output_path(core, vm->job_id, vm->index, "out");
    g_autofree char *meta_path =
        sald_output_path(core, vm->job_id, vm->index, "meta");
    g_autofree char *data = NULL;
    g_autofree char *meta = NULL;
    gsize len = 0;
    SaldVmLog *log;
    int truncated = 0;
    int exit_status = -1;

    if (!g_file_get_contents(data_path, &data, &len, NULL)) {
        return NULL;
    }
    if (g_file_get_contents(meta_path, &meta, NULL, NULL)) {
        sscanf(meta, "exit=%d truncated=%d", &exit_status, &truncated);
    }
    log = g_new0(SaldVmLog, 1);
    log->index = vm->index;
    log->node = g_strdup(vm->node);
    log->exit_status = vm->exit_status >= 0 ? vm->exit_status : exit_status;
    log->state = vm->state;
    log->truncated = truncated != 0;
    log->output = g_bytes_new_take(g_steal_pointer(&data), len);
    return log;
}

typedef struct {
    GPtrArray *logs; /* SaldVmLog * by index; NULL until read */
    guint pending;
} LogRead;

static void
log_read_free(LogRead *read)
{
    g_ptr_array_unref(read->logs);
    g_free(read);
}

static void
log_finish_if_done(GTask *task)
{
    LogRead *read = g_task_get_task_data(task);
    GPtrArray *out;

    if (read->pending > 0) {
        return;
    }
    out = g_ptr_array_new_with_free_func((GDestroyNotify)sald_vm_log_free);
    for (guint i = 0; i < read->logs->len; i++) {
        if (read->logs->pdata[i]) {
            g_ptr_array_add(out, g_steal_pointer(&read->logs->pdata[i]));
        }
    }
    g_task_return_pointer(task, out, (GDestroyNotify)g_ptr_array_unref);
}

static void
log_read_done(GObject *source, GAsyncResult *result, gpointer data)
{
    g_autoptr(GTask) task = data;
    SaldOp *op = g_task_get_task_data(G_TASK(result));
    LogRead *read = g_task_get_task_data(task);
    g_autoptr(GError) error = NULL;
    SaldVmLog *log = g_new0(SaldVmLog, 1);

    log->index = op->index;
    log->node = g_strdup(op->node);
    log->exit_status = -1;
    log->state = SAL_VM_RUNNING;
    if (g_task_propagate_boolean(G_TASK(result), &error)) {
        log->exit_status = op->header.exited ? op->header.exit_status : -1;
        log->truncated =
            op->header.truncated || op->header.length > SALD_LOG_MAX_BYTES;
        log->output = g_steal_pointer(&op->output);
    }
    if (!log->output) {
        /* Collected meanwhile: its output is kept here now. */
        SalVm vm = {.job_id = op->job_id, .index = op->index,
                    .state = SAL_VM_STOPPED, .exit_status = -1};
        SaldVmLog *kept = log_from_files(op->core, &vm);

        if (kept) {
            sald_vm_log_free(log);
            log = kept;
        } else {
            log->output = g_bytes_new(NULL, 0);
        }
    }
    g_clear_pointer(&read->logs->pdata[op->index], sald_vm_log_free);
    read->logs->pdata[op->index] = log;
    read->pending--;
    log_finish_if_done(task);
    sald_op_free(op);
}

void
sald_core_get_log_async(SaldCore *core, guint32 uid, gint64 id,
                        GCancellable *cancellable,
                        GAsyncReadyCallback callback, gpointer data)
{
    g_autoptr(GTask) task = g_task_new(NULL, cancellable, callback, data);
    g_autoptr(GPtrArray) vms = NULL;
    g_autoptr(SalJob) job = NULL;
    GError *error = NULL;
    LogRead *read;

    job = sald_core_get_job(core, uid, id, &vms, &error);
    if (!job) {
        g_task_return_error(task, error);
        return;
    }
    read = g_new0(LogRead, 1);
    read->logs = g_ptr_array_new_with_free_func(
        (GDestroyNotify)sald_vm_log_free);
    g_ptr_array_set_size(read->logs, (guint)job->n_vms);
    g_task_set_task_data(task, read, (GDestroyNotify)log_read_free);
    for (guint i = 0; i < vms->len; i++) {
        const SalVm *vm = vms->pdata[i];
        SaldNode *node = sald_node_get(core, vm->node);
        SaldVmLog *kept = log_from_files(core, vm);

        if (kept || sald_vm_final(vm) || !node || !node->conn) {
            if (!kept) {
                kept = g_new0(SaldVmLog, 1);
                kept->index = vm->index;
                kept->node = g_strdup(vm->node);
                kept->exit_status = vm->exit_status;
                kept->state = vm->state;
                kept->output = g_bytes_new(NULL, 0);
            }
            read->logs->pdata[vm->index] = kept;
            continue;
        }
        read->pending++;
        sald_op_run(
            sald_op_new(core, SALD_OP_READ, node, vm->job_id, vm->index),
            log_read_done, g_object_ref(task));
    }
    log_finish_if_done(task);
}

GPtrArray *
sald_core_get_log_finish(SaldCore *core, GAsyncResult *result, GError **error)
{
    return g_task_propagate_pointer(G_TASK(result), error);
}

const char *
sald_core_socket_path(SaldCore *core)
{
    return core->config->socket_path;
}
