/*
 * The nodes of salined's core: one libvirt connection each, opened and
 * listed in worker threads, watched through libvirt's lifecycle and
 * close callbacks. A listing is what the node runs: it sweeps away the
 * leftovers of ended jobs. A node down longer than node-timeout is lost:
 * its VMs are taken for dead.
 */
#include "sald-core-internal.h"

#include <libvirt/virterror.h>

#define RECONNECT_S 5
#define RELIST_S 10

SaldNode *
sald_node_new(SaldCore *core, const SaldNodeConf *conf)
{
    SaldNode *node = g_new0(SaldNode, 1);

    node->core = core;
    node->conf = conf;
    node->event_id = -1;
    node->down_since = sald_now_s();
    node->domains =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    return node;
}

void
sald_node_free(SaldNode *node)
{
    if (node) {
        if (node->conn) {
            if (node->event_id >= 0) {
                virConnectDomainEventDeregisterAny(node->conn, node->event_id);
            }
            virConnectClose(node->conn);
        }
        g_free(node->error);
        g_free(node->closed);
        g_hash_table_unref(node->domains);
        g_free(node);
    }
}

SaldNode *
sald_node_get(SaldCore *core, const char *name)
{
    return name ? g_hash_table_lookup(core->nodes, name) : NULL;
}

gboolean
sald_node_ready(const SaldNode *node)
{
    return node && node->conn && node->listed;
}

static void
node_set_down(SaldNode *node, const char *why)
{
    if (node->conn) {
        if (node->event_id >= 0) {
            virConnectDomainEventDeregisterAny(node->conn, node->event_id);
        }
        virConnectUnregisterCloseCallback(node->conn, NULL);
        virConnectClose(node->conn);
        node->conn = NULL;
        g_warning("node '%s' is down: %s", node->conf->node->name, why);
    }
    node->event_id = -1;
    node->listed = FALSE;
    if (!node->down_since) {
        node->down_since = sald_now_s();
    }
    g_free(node->error);
    node->error = g_strdup(why);
}

/* ---- node connections, events, sweeps ---- */

static gboolean
node_closed(gpointer data)
{
    SaldNode *node = data;
    g_autofree char *why = g_steal_pointer(&node->closed);

    if (why && node->conn) {
        node_set_down(node, why);
    }
    return G_SOURCE_REMOVE;
}

/* Called inside libvirt: the connection is let go of from the loop. */
static void
on_close(virConnectPtr conn, int reason, void *data)
{
    SaldNode *node = data;
    static const char *const reasons[] = {"connection error", "end of file",
                                          "keepalive timeout", "closed"};

    if (conn != node->conn || node->closed) {
        return;
    }
    node->closed = g_strdup(reason >= 0 && reason < (int)G_N_ELEMENTS(reasons)
                                ? reasons[reason]
                                : "connection lost");
    g_idle_add(node_closed, node);
}

static int
on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail,
             void *data)
{
    SaldNode *node = data;
    const char *name = virDomainGetName(dom);
    gint64 job_id;
    guint index;

    if (!name || !sald_virt_parse_domain(name, &job_id, &index)) {
        return 0;
    }
    if (event == VIR_DOMAIN_EVENT_STOPPED) {
        g_debug("domain '%s' stopped on node '%s' (%d)", name,
                node->conf->node->name, detail);
        g_hash_table_remove(node->domains, name);
        sald_job_reconcile(node->core, job_id);
    }
    return 0;
}

static void
destroy_done(GObject *source, GAsyncResult *result, gpointer data)
{
    SaldOp *op = g_task_get_task_data(G_TASK(result));
    g_autoptr(GError) error = NULL;

    if (!g_task_propagate_boolean(G_TASK(result), &error)) {
        g_warning("cannot remove '%s' on node '%s': %s", op->domain, op->node,
                  error->message);
    }
    sald_op_finish(op, sald_op_done(op));
}

/* What the node runs that no active VM placed on it explains: leftovers
 * of jobs that ended while salined was away or the node was cut off. */
static void
node_sweep(SaldCore *core, SaldNode *node, GHashTable *domains,
           GHashTable *volumes)
{
    g_autoptr(GHashTable) names =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    GHashTableIter iter;
    gpointer key;

    g_hash_table_iter_init(&iter, domains);
    while (g_hash_table_iter_next(&iter, &key, NULL)) {
        g_hash_table_add(names, g_strdup(key));
    }
    g_hash_table_iter_init(&iter, volumes);
    while (g_hash_table_iter_next(&iter, &key, NULL)) {
        g_hash_table_add(names, g_strdup(key));
    }
    g_hash_table_iter_init(&iter, names);
    while (g_hash_table_iter_next(&iter, &key, NULL)) {
        const char *name = key;
        g_autoptr(GPtrArray) vms = NULL;
        g_autoptr(SalJob) job = NULL;
        const SalVm *vm = NULL;
        gint64 job_id;
        guint index;

        if (!sald_virt_parse_domain(name, &job_id, &index)) {
            continue;
        }
        job = sal_store_load_job(core->store, job_id, &vms, NULL);
        vm = job ? sald_job_find_vm(vms, index) : NULL;
        if (vm && g_strcmp0(vm->node, node->conf->node->name) == 0 &&
            (!sald_vm_final(vm) || sald_job_busy(core, job_id))) {
            continue; /* its job's reconcile takes care of it */
        }
        g_message("removing leftover '%s' on node '%s'", name,
                  node->conf->node->name);
        sald_op_run(sald_op_new(core, SALD_OP_DESTROY, node, job_id, index),
                    destroy_done, NULL);
    }
}

static void
node_learn(SaldNode *node, GHashTable *domains, guint64 since_seq)
{
    GHashTableIter iter;
    gpointer key, value;
    g_autoptr(GHashTable) known =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);

    /* Domains learnt after the listing started stay known. */
    g_hash_table_iter_init(&iter, node->domains);
    while (g_hash_table_iter_next(&iter, &key, &value)) {
        if (GPOINTER_TO_SIZE(value) > since_seq) {
            g_hash_table_replace(known, g_strdup(key), value);
        }
    }
    g_hash_table_iter_init(&iter, domains);
    while (g_hash_table_iter_next(&iter, &key, NULL)) {
        if (!g_hash_table_contains(known, key)) {
            g_hash_table_replace(known, g_strdup(key),
                                 GSIZE_TO_POINTER(since_seq));
        }
    }
    g_hash_table_unref(node->domains);
    node->domains = g_steal_pointer(&known);
}

static void
list_done(GObject *source, GAsyncResult *result, gpointer data)
{
    SaldOp *op = g_task_get_task_data(G_TASK(result));
    SaldCore *core = op->core;
    SaldNode *node = sald_node_get(core, op->node);
    g_autoptr(GError) error = NULL;
    gboolean ok = g_task_propagate_boolean(G_TASK(result), &error);

    node->listing = FALSE;
    if (op->kind == SALD_OP_CONNECT) {
        node->connecting = FALSE;
        if (!ok) {
            g_free(node->error);
            node->error = g_strdup(error->message);
            g_debug("node '%s': %s", op->node, error->message);
            sald_op_free(op);
            return;
        }
        node->conn = g_steal_pointer(&op->new_conn);
        virConnectRegisterCloseCallback(node->conn, on_close, node, NULL);
        node->event_id = virConnectDomainEventRegisterAny(
            node->conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
            VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), node, NULL);
        if (node->event_id < 0) {
            g_warning("node '%s': cannot watch domain events: %s", op->node,
                      virGetLastErrorMessage());
        }
        if (node->lost || node->down_since) {
            g_message("node '%s' is up", op->node);
        }
        node->down_since = 0;
        node->lost = FALSE;
        g_clear_pointer(&node->error, g_free);
        /* Nothing started on it since this listing: take it as it is. */
        g_hash_table_remove_all(node->domains);
    } else if (!ok) {
        g_warning("node '%s': %s", op->node, error->message);
        sald_op_free(op);
        return;
    }
    if (!node->conn || (op->conn != NULL && op->conn != node->conn)) {
        sald_op_free(op); /* a listing of a connection since replaced */
        return;
    }
    node->last_list = sald_now_s();
    node_learn(node, op->domains, op->seq);
    node->listed = TRUE;
    node_sweep(core, node, op->domains, op->volumes);
    sald_job_reconcile_all(core);
    sald_job_schedule_soon(core);
    sald_op_free(op);
}

void
sald_node_connect(SaldCore *core, SaldNode *node)
{
    node->connecting = TRUE;
    node->last_try = sald_now_s();
    sald_op_run(sald_op_new(core, SALD_OP_CONNECT, node, 0, 0), list_done,
                NULL);
}

static void
node_list(SaldCore *core, SaldNode *node)
{
    node->listing = TRUE;
    node->seq++;
    sald_op_run(sald_op_new(core, SALD_OP_LIST, node, 0, 0), list_done, NULL);
}

/* The node stayed away longer than node-timeout: the VMs on it are taken
 * for dead, their jobs fail (or are requeued when idempotent), and their
 * addresses go back to the pool. */
static void
node_lose(SaldCore *core, SaldNode *node)
{
    const char *name = node->conf->node->name;
    g_autofree char *why = g_strdup_printf(
        "node '%s' lost: %s", name, node->error ? node->error : "down");
    g_autoptr(GArray) ids = sald_job_list_ids(core);

    node->lost = TRUE;
    g_warning("%s", why);
    /* Operations in flight on the node fail and find their VM final;
     * their job is looked at again when they are back. */
    for (guint i = 0; i < ids->len; i++) {
        g_autoptr(GPtrArray) vms = NULL;
        g_autoptr(SalJob) job =
            sald_job_load(core, g_array_index(ids, gint64, i), &vms);
        gboolean hit = FALSE;

        for (guint j = 0; job && j < vms->len; j++) {
            SalVm *vm = vms->pdata[j];

            if (g_strcmp0(vm->node, name) == 0 && !sald_vm_final(vm)) {
                vm->state = SAL_VM_DEAD;
                hit = TRUE;
            }
        }
        if (!hit) {
            continue;
        }
        if (sal_job_state_is_active(job->state) && !job->idempotent) {
            sald_job_end(core, job, vms, SAL_JOB_FAILED, why);
        } else {
            if (sal_job_state_is_active(job->state)) {
                sald_id_set_add(core->requeue, job->id);
            }
            sald_job_save(core, job, vms);
        }
        sald_job_reconcile(core, job->id);
    }
}

void
sald_node_tick(SaldCore *core, SaldNode *node, gint64 now)
{
    if (!node->conn) {
        if (!node->connecting && now - node->last_try >= RECONNECT_S) {
            sald_node_connect(core, node);
        }
        if (!node->lost &&
            now - node->down_since >= core->config->node_timeout_s) {
            node_lose(core, node);
        }
    } else if (!node->listing && now - node->last_list >= RELIST_S) {
        node_list(core, node);
    }
}
