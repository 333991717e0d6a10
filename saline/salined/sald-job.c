/*
 * The jobs of salined's core. sald_job_reconcile() looks at one job as
 * stored and at what its nodes run, and starts what is missing: create
 * a VM, collect one that ended, end the job, tear down the VMs of an
 * ended job, requeue it or release its addresses. The scheduling pass
 * starts pending jobs on the nodes that are up, and preempts best-effort
 * ones a regular job needs room from.
 */
#include "sald-core-internal.h"

#include "sal-sched.h"

/* ---- the store, with errors reported (the daemon's own decisions) ---- */

SalJob *
sald_job_load(SaldCore *core, gint64 id, GPtrArray **vms)
{
    g_autoptr(GError) error = NULL;
    SalJob *job = sal_store_load_job(core->store, id, vms, &error);

    if (!job) {
        g_warning("cannot load job %" G_GINT64_FORMAT ": %s", id,
                  error->message);
    }
    return job;
}

gboolean
sald_job_save(SaldCore *core, SalJob *job, GPtrArray *vms)
{
    g_autoptr(GError) error = NULL;

    if (!sal_store_save_job(core->store, job, vms, &error)) {
        g_warning("cannot save job %" G_GINT64_FORMAT ": %s", job->id,
                  error->message);
        return FALSE;
    }
    return TRUE;
}

SalVm *
sald_job_find_vm(GPtrArray *vms, guint index)
{
    for (guint i = 0; i < vms->len; i++) {
        SalVm *vm = vms->pdata[i];

        if (vm->index == index) {
            return vm;
        }
    }
    return NULL;
}

gboolean
sald_vm_final(const SalVm *vm)
{
    return vm->state == SAL_VM_STOPPED || vm->state == SAL_VM_DEAD;
}

/* Moves @job to @state (terminal: its VMs get torn down) and saves it
 * with @vms. */
void
sald_job_end(SaldCore *core, SalJob *job, GPtrArray *vms, SalJobState state,
             const char *failure)
{
    g_autoptr(GError) error = NULL;

    if (!sal_job_transition(job, state, &error)) {
        g_warning("job %" G_GINT64_FORMAT ": %s", job->id, error->message);
        return;
    }
    if (failure && !job->failure) {
        job->failure = g_strdup(failure);
    }
    if (!sald_job_save(core, job, vms)) {
        return;
    }
    g_message("job %" G_GINT64_FORMAT " %s%s%s", job->id,
              sal_job_state_to_string(state), job->failure ? ": " : "",
              job->failure ? job->failure : "");
    sald_id_set_add(core->teardown, job->id);
    g_hash_table_remove(core->requeue, &job->id);
    sald_job_schedule_soon(core);
}

/* ---- the job reconciler ---- */

gboolean
sald_job_busy(SaldCore *core, gint64 id)
{
    return g_hash_table_contains(core->busy, &id);
}

static gboolean
vm_domain_known(SaldNode *node, const SalVm *vm)
{
    return g_hash_table_contains(node->domains, vm->domain);
}

static void
job_requeue(SaldCore *core, SalJob *job)
{
    g_autoptr(GError) error = NULL;
    gboolean ok;

    if (!sal_store_begin(core->store, &error)) {
        g_warning("cannot requeue job %" G_GINT64_FORMAT ": %s", job->id,
                  error->message);
        return;
    }
    ok = sal_addr_release_job(core->addr, job->id, &error) &&
         sal_store_delete_vms(core->store, job->id, &error) &&
         sal_job_transition(job, SAL_JOB_PENDING, &error) &&
         sal_store_save_job(core->store, job, NULL, &error);
    if (!sal_store_end(core->store, ok, &error)) {
        g_warning("cannot requeue job %" G_GINT64_FORMAT ": %s", job->id,
                  error->message);
        return;
    }
    g_message("job %" G_GINT64_FORMAT " requeued", job->id);
    g_hash_table_remove(core->requeue, &job->id);
    sald_job_schedule_soon(core);
}

static void
job_release(SaldCore *core, gint64 id)
{
    g_autoptr(GError) error = NULL;

    if (!sal_addr_release_job(core->addr, id, &error)) {
        g_warning("cannot release the addresses of job %" G_GINT64_FORMAT
                  ": %s",
                  id, error->message);
        return;
    }
    g_hash_table_remove(core->teardown, &id);
    {
        g_autoptr(SalJob) job = sal_store_load_job(core->store, id, NULL, NULL);

        if (job && job->besteffort && job->snapshot_seq > 0) {
            sald_snapshots_forget(core, id);
        }
    }
    sald_job_schedule_soon(core);
}

/* Tears down every VM of @job that is not final; TRUE once all are. */
static gboolean
vms_teardown(SaldCore *core, GPtrArray *vms)
{
    gboolean all_final = TRUE;

    for (guint i = 0; i < vms->len; i++) {
        const SalVm *vm = vms->pdata[i];
        SaldNode *node = sald_node_get(core, vm->node);

        if (sald_vm_final(vm)) {
            continue;
        }
        all_final = FALSE;
        if (sald_node_ready(node)) {
            sald_vm_collect(core, node, vm);
        }
    }
    return all_final;
}

static void
job_reconcile_running(SaldCore *core, SalJob *job, GPtrArray *vms)
{
    gboolean any_dead = FALSE;
    gboolean all_stopped = TRUE;
    gint exit_status = 0;

    if (sal_job_run_time(job, sald_now_s()) >= job->walltime_s) {
        g_autofree char *wall = sal_walltime_format(job->walltime_s);
        g_autofree char *why = g_strdup_printf("walltime %s exceeded", wall);

        sald_job_end(core, job, vms, SAL_JOB_FAILED, why);
        sald_job_reconcile(core, job->id);
        return;
    }
    for (guint i = 0; i < vms->len; i++) {
        const SalVm *vm = vms->pdata[i];

        any_dead |= vm->state == SAL_VM_DEAD;
        all_stopped &= vm->state == SAL_VM_STOPPED;
        if (vm->state == SAL_VM_STOPPED && exit_status == 0) {
            exit_status = vm->exit_status;
        }
    }
    if (any_dead) {
        if (!sald_job_rollback(core, job, "a VM died")) {
            sald_job_end(core, job, vms, SAL_JOB_FAILED, "a VM died");
        }
        sald_job_reconcile(core, job->id);
        return;
    }
    if (sald_ssi_ended(job, vms, &exit_status) || all_stopped) {
        job->exit_status = exit_status;
        sald_job_end(core, job, vms, SAL_JOB_DONE, NULL);
        sald_job_reconcile(core, job->id);
        return;
    }
    for (guint i = 0; i < vms->len; i++) {
        const SalVm *vm = vms->pdata[i];
        SaldNode *node = sald_node_get(core, vm->node);

        if (vm->state == SAL_VM_RUNNING && sald_node_ready(node) &&
            !vm_domain_known(node, vm)) {
            /* Its domain is gone: it ended (or died) */
            sald_vm_collect(core, node, vm);
        }
    }
    if (!sald_job_busy(core, job->id)) {
        sald_snapshot_maybe(core, job, vms);
    }
}

static void
job_reconcile_starting(SaldCore *core, SalJob *job, GPtrArray *vms)
{
    gboolean all_running = TRUE;
    gboolean any_dead = FALSE;

    for (guint i = 0; i < vms->len; i++) {
        const SalVm *vm = vms->pdata[i];

        any_dead |= vm->state == SAL_VM_DEAD;
        all_running &= vm->state == SAL_VM_RUNNING;
    }
    if (any_dead) {
        sald_job_end(core, job, vms, SAL_JOB_FAILED, "a VM could not start");
        sald_job_reconcile(core, job->id);
        return;
    }
    if (all_running) {
        g_autoptr(GError) error = NULL;

        if (!sal_job_transition(job, SAL_JOB_RUNNING, &error)) {
            g_warning("job %" G_GINT64_FORMAT ": %s", job->id, error->message);
            return;
        }
        if (sald_job_save(core, job, NULL)) {
            g_message("job %" G_GINT64_FORMAT " running", job->id);
        }
        return;
    }
    for (guint i = 0; i < vms->len; i++) {
        const SalVm *vm = vms->pdata[i];
        SaldNode *node = sald_node_get(core, vm->node);

        if ((vm->state == SAL_VM_STARTING || vm->state == SAL_VM_PLACED) &&
            sald_node_ready(node)) {
            sald_vm_create(core, node, job, vms, vm);
        }
    }
}

void
sald_job_reconcile(SaldCore *core, gint64 id)
{
    g_autoptr(GPtrArray) vms = NULL;
    g_autoptr(SalJob) job = NULL;

    if (sald_job_busy(core, id)) {
        return;
    }
    job = sald_job_load(core, id, &vms);
    if (!job) {
        return;
    }
    /* Starting or running, to be requeued (its node was lost, or it was
     * preempted): its VMs go first. */
    if (g_hash_table_contains(core->requeue, &id) &&
        (job->state == SAL_JOB_STARTING || job->state == SAL_JOB_RUNNING)) {
        if (vms_teardown(core, vms)) {
            job_requeue(core, job);
        }
        return;
    }
    switch (job->state) {
    case SAL_JOB_STARTING:
        job_reconcile_starting(core, job, vms);
        break;
    case SAL_JOB_RUNNING:
        job_reconcile_running(core, job, vms);
        break;
    case SAL_JOB_SUSPENDING:
        sald_job_reconcile_suspending(core, job, vms);
        break;
    case SAL_JOB_RESUMING:
        sald_job_reconcile_resuming(core, job, vms);
        break;
    case SAL_JOB_DONE:
    case SAL_JOB_FAILED:
    case SAL_JOB_CANCELLED:
        if (vms_teardown(core, vms) && !sald_job_busy(core, id)) {
            job_release(core, id);
        }
        break;
    default:
        break;
    }
}

/* Every job not ended, and every ended one still tearing down: a copy,
 * as looking at them changes the teardown set. */
GArray *
sald_job_list_ids(SaldCore *core)
{
    g_autoptr(GPtrArray) jobs = sal_store_load_active(core->store, NULL, NULL);
    GArray *ids = g_array_new(FALSE, FALSE, sizeof(gint64));
    GHashTableIter iter;
    gpointer key;

    for (guint i = 0; jobs && i < jobs->len; i++) {
        g_array_append_val(ids, ((SalJob *)jobs->pdata[i])->id);
    }
    g_hash_table_iter_init(&iter, core->teardown);
    while (g_hash_table_iter_next(&iter, &key, NULL)) {
        g_array_append_val(ids, *(gint64 *)key);
    }
    return ids;
}

void
sald_job_reconcile_all(SaldCore *core)
{
    g_autoptr(GArray) ids = sald_job_list_ids(core);

    for (guint i = 0; i < ids->len; i++) {
        sald_job_reconcile(core, g_array_index(ids, gint64, i));
    }
}

/* ---- the scheduler ---- */

static GPtrArray *
up_nodes(SaldCore *core)
{
    GPtrArray *nodes = g_ptr_array_new();

    for (guint i = 0; i < core->all_nodes->len; i++) {
        SalNode *n = core->all_nodes->pdata[i];

        if (sald_node_ready(sald_node_get(core, n->name))) {
            g_ptr_array_add(nodes, n);
        }
    }
    return nodes;
}

void
sald_job_start_on(SaldCore *core, SalJob *job, const SalPlacement *placement)
{
    g_autoptr(GPtrArray) vms =
        g_ptr_array_new_with_free_func((GDestroyNotify)sal_vm_free);
    g_autoptr(GError) error = NULL;
    gboolean ok;

    for (guint i = 0; i < job->n_vms; i++) {
        SalVm *vm = sal_vm_new(job->id, i);
        const SaldNodeConf *node =
            sald_config_node(core->config, placement->nodes[i]);

        vm->node = g_strdup(placement->nodes[i]);
        vm->site = g_strdup(node->node->site);
        vm->domain = sal_vm_domain_name(job->id, i);
        vm->state = SAL_VM_STARTING;
        g_ptr_array_add(vms, vm);
    }
    /* State, VMs and addresses change together, or not at all. */
    if (!sal_store_begin(core->store, &error)) {
        g_warning("cannot start job %" G_GINT64_FORMAT ": %s", job->id,
                  error->message);
        return;
    }
    ok = sal_job_transition(job, SAL_JOB_STARTING, &error) &&
         sal_store_save_job(core->store, job, vms, &error) &&
         sal_addr_allocate_vms(core->addr, vms, &error);
    if (!sal_store_end(core->store, ok, &error)) {
        g_warning("cannot start job %" G_GINT64_FORMAT ": %s", job->id,
                  error->message);
        return;
    }
    g_message("job %" G_GINT64_FORMAT " starting on %u VMs", job->id,
              job->n_vms);
    sald_job_reconcile(core, job->id);
}

/* A running best-effort job whose capacity a regular job needs:
 * suspended (snapshotted, redeployed later) when salined has a snapshot
 * store, else killed (requeued if idempotent). */
static void
job_preempt(SaldCore *core, gint64 id)
{
    g_autoptr(GPtrArray) vms = NULL;
    g_autoptr(SalJob) job = sald_job_load(core, id, &vms);

    if (!job || job->state != SAL_JOB_RUNNING ||
        g_hash_table_contains(core->requeue, &id) ||
        sald_job_busy(core, id)) {
        return;
    }
    if (sald_snapshots_on(core)) {
        for (guint i = 0; i < vms->len; i++) {
            /* Its command has ended somewhere: it is about to end. */
            if (((SalVm *)vms->pdata[i])->state == SAL_VM_STOPPED) {
                return;
            }
        }
        if (sald_job_suspend(core, job, FALSE,
                             "preempted: a regular job needs its capacity")) {
            sald_job_reconcile(core, id);
        }
        return;
    }
    if (job->idempotent) {
        g_message("job %" G_GINT64_FORMAT " preempted, to be requeued", id);
        sald_id_set_add(core->requeue, id);
        sald_job_reconcile(core, id);
        return;
    }
    sald_job_end(core, job, vms, SAL_JOB_FAILED,
                 "killed: a regular job needed its capacity (best-effort)");
    sald_job_reconcile(core, id);
}

static gboolean
schedule_run(gpointer data)
{
    SaldCore *core = data;
    g_autoptr(GPtrArray) nodes = up_nodes(core);
    g_autoptr(GPtrArray) jobs = NULL;
    g_autoptr(GPtrArray) vms = NULL;
    g_autoptr(SalSchedResult) result = NULL;
    g_autoptr(GError) error = NULL;

    core->sched_id = 0;
    if (core->oar) {
        sald_oar_schedule(core);
        return G_SOURCE_REMOVE;
    }
    jobs = sal_store_load_active(core->store, &vms, &error);
    if (!jobs) {
        g_warning("cannot load the jobs: %s", error->message);
        return G_SOURCE_REMOVE;
    }
    /* A job a user suspended waits for `saline resume`. */
    for (guint i = jobs->len; i-- > 0;) {
        const SalJob *job = jobs->pdata[i];

        if (job->state == SAL_JOB_SUSPENDED && job->held) {
            g_ptr_array_remove_index(jobs, i);
        }
    }
    result = sal_sched_run(nodes, jobs, vms, sald_now_s());
    for (guint i = 0; i < result->preempt->len; i++) {
        job_preempt(core, g_array_index(result->preempt, gint64, i));
    }
    for (guint i = 0; i < result->start->len; i++) {
        const SalPlacement *p = result->start->pdata[i];

        for (guint j = 0; j < jobs->len; j++) {
            SalJob *job = jobs->pdata[j];

            if (job->id == p->job_id && job->state == SAL_JOB_PENDING) {
                sald_job_start_on(core, job, p);
            } else if (job->id == p->job_id &&
                       job->state == SAL_JOB_SUSPENDED &&
                       !sald_job_busy(core, job->id)) {
                g_autoptr(GPtrArray) job_vms = NULL;
                g_autoptr(SalJob) fresh = sald_job_load(core, job->id,
                                                        &job_vms);

                if (fresh) {
                    sald_job_resume_on(core, fresh, job_vms, p);
                }
            }
        }
    }
    return G_SOURCE_REMOVE;
}

void
sald_job_schedule_soon(SaldCore *core)
{
    if (!core->sched_id) {
        core->sched_id = g_idle_add(schedule_run, core);
    }
}
