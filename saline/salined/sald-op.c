/*
 * The operations of salined's core on a node, in worker threads, as
 * libvirt calls block: connect, list, create a VM, collect one (keep its
 * output, then destroy it), destroy a leftover, read the output so far.
 * An operation counts against its job (core->busy) until its result is
 * back in the main thread, the only one that touches the store.
 */
#include "sald-core-internal.h"

#include <glib/gstdio.h>

void
sald_op_free(SaldOp *op)
{
    if (op->conn) {
        virConnectClose(op->conn);
    }
    if (op->new_conn) {
        virConnectClose(op->new_conn);
    }
    g_free(op->node);
    g_free(op->uri);
    g_free(op->domain);
    g_free(op->spec_text);
    g_free(op->image_dir);
    g_free(op->mac);
    g_clear_pointer(&op->domains, g_hash_table_unref);
    g_clear_pointer(&op->volumes, g_hash_table_unref);
    g_clear_pointer(&op->output, g_bytes_unref);
    g_clear_pointer(&op->spec.overlay_data, g_bytes_unref);
    g_clear_pointer(&op->spec.output_data, g_bytes_unref);
    g_free(op->snapshot);
    g_free(op->work_dir);
    g_free(op);
}

SaldOp *
sald_op_new(SaldCore *core, SaldOpKind kind, SaldNode *node, gint64 job_id,
            guint index)
{
    SaldOp *op = g_new0(SaldOp, 1);

    op->kind = kind;
    op->core = core;
    op->node = g_strdup(node->conf->node->name);
    op->uri = g_strdup(node->conf->node->uri);
    if (node->conn) {
        virConnectRef(node->conn);
        op->conn = node->conn;
    }
    op->job_id = job_id;
    op->index = index;
    if (job_id > 0) {
        op->domain = sal_vm_domain_name(job_id, index);
    }
    op->seq = node->seq;
    return op;
}

static void
op_thread(GTask *task, gpointer source, gpointer data, GCancellable *cancel)
{
    SaldOp *op = data;
    GError *error = NULL;
    gboolean ok = FALSE;

    switch (op->kind) {
    case SALD_OP_CONNECT:
        op->new_conn = sald_virt_open(op->uri, &error);
        ok = op->new_conn &&
             sald_virt_list(op->new_conn, &op->domains, &op->volumes, &error);
        break;
    case SALD_OP_LIST:
        ok = sald_virt_list(op->conn, &op->domains, &op->volumes, &error);
        break;
    case SALD_OP_CREATE:
        ok = sald_virt_create(op->conn, &op->spec, &error);
        break;
    case SALD_OP_COLLECT:
    case SALD_OP_READ: {
        g_autoptr(GError) read_error = NULL;

        op->have_output =
            sald_virt_read_output(op->conn, op->domain, SALD_LOG_MAX_BYTES,
                                  &op->header, &op->output, &read_error);
        if (op->kind == SALD_OP_READ) {
            ok = op->have_output;
            if (!ok) {
                error = g_steal_pointer(&read_error);
            }
            break;
        }
        /* A drive that is gone or unreadable: the VM left no output. */
        if (read_error && !g_error_matches(read_error, SAL_ERROR,
                                           SAL_ERROR_NOT_FOUND)) {
            g_warning("cannot read the output of '%s' on node '%s': %s",
                      op->domain, op->node, read_error->message);
        }
        ok = sald_virt_destroy(op->conn, op->domain, &error);
        break;
    }
    case SALD_OP_DESTROY:
        ok = sald_virt_destroy(op->conn, op->domain, &error);
        break;
    case SALD_OP_RESTORE:
        ok = sald_op_restore(op, &error);
        break;
    }
    if (ok) {
        g_task_return_boolean(task, TRUE);
    } else {
        g_task_return_error(task, error);
    }
}

void
sald_job_busy_add(SaldCore *core, gint64 id)
{
    guint n = GPOINTER_TO_UINT(g_hash_table_lookup(core->busy, &id));

    g_hash_table_replace(core->busy, g_memdup2(&id, sizeof(id)),
                         GUINT_TO_POINTER(n + 1));
}

gboolean
sald_job_busy_remove(SaldCore *core, gint64 id)
{
    guint n = GPOINTER_TO_UINT(g_hash_table_lookup(core->busy, &id));

    if (n <= 1) {
        g_hash_table_remove(core->busy, &id);
        return TRUE;
    }
    g_hash_table_replace(core->busy, g_memdup2(&id, sizeof(id)),
                         GUINT_TO_POINTER(n - 1));
    return FALSE;
}

void
sald_op_run(SaldOp *op, GAsyncReadyCallback done, gpointer data)
{
    g_autoptr(GTask) task = g_task_new(NULL, NULL, done, data);

    g_task_set_task_data(task, op, NULL);
    /* A leftover's destroy counts too: the job may be placed on the same
     * node again, under the same domain name. */
    if (op->job_id > 0 && op->kind != SALD_OP_READ) {
        sald_job_busy_add(op->core, op->job_id);
    }
    g_task_run_in_thread(task, op_thread);
}

/* The operation is back: unmark its job; TRUE if it is no longer busy. */
gboolean
sald_op_done(SaldOp *op)
{
    if (op->job_id <= 0 || op->kind == SALD_OP_READ) {
        return TRUE;
    }
    return sald_job_busy_remove(op->core, op->job_id);
}

/* Frees @op; its job is looked at again if no other operation of it is
 * in flight (@idle, from sald_op_done()). */
void
sald_op_finish(SaldOp *op, gboolean idle)
{
    if (idle && op->job_id > 0) {
        sald_job_reconcile(op->core, op->job_id);
    }
    sald_op_free(op);
}

/* ---- output kept by salined once a VM is collected ---- */

char *
sald_output_path(SaldCore *core, gint64 job_id, guint index, const char *suffix)
{
    g_autofree char *dir = g_strdup_printf("%" G_GINT64_FORMAT, job_id);
    g_autofree char *file = g_strdup_printf("%u.%s", index, suffix);

    return g_build_filename(core->output_dir, dir, file, NULL);
}

static void
output_save(SaldCore *core, const SaldOp *op)
{
    g_autofree char *data_path =
        sald_output_path(core, op->job_id, op->index, "out");
    g_autofree char *meta_path =
        sald_output_path(core, op->job_id, op->index, "meta");
    g_autofree char *dir = g_path_get_dirname(data_path);
    g_autofree char *meta = g_strdup_printf(
        "exit=%d truncated=%d\n",
        op->header.exited ? op->header.exit_status : -1,
        op->header.truncated || op->header.length > SALD_LOG_MAX_BYTES);
    g_autoptr(GError) error = NULL;
    gsize len = 0;
    const char *data = op->output ? g_bytes_get_data(op->output, &len) : "";

    if (g_mkdir_with_parents(dir, 0750) < 0 ||
        !g_file_set_contents_full(data_path, data, (gssize)len,
                                  G_FILE_SET_CONTENTS_CONSISTENT |
                                      G_FILE_SET_CONTENTS_DURABLE,
                                  0640, &error) ||
        !g_file_set_contents_full(meta_path, meta, -1,
                                  G_FILE_SET_CONTENTS_CONSISTENT |
                                      G_FILE_SET_CONTENTS_DURABLE,
                                  0640, &error)) {
        g_warning("cannot keep the output of '%s': %s", op->domain,
                  error ? error->message : g_strerror(errno));
    }
}

/* ---- VM operations and their results ---- */

static void
collect_done(GObject *source, GAsyncResult *result, gpointer data)
{
    SaldOp *op = g_task_get_task_data(G_TASK(result));
    SaldCore *core = op->core;
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) vms = NULL;
    g_autoptr(SalJob) job = NULL;
    gboolean idle = sald_op_done(op);
    SaldNode *node = sald_node_get(core, op->node);
    SalVm *vm;

    if (op->have_output) {
        output_save(core, op);
    }
    if (!g_task_propagate_boolean(G_TASK(result), &error)) {
        /* Left as it is: the next reconcile tries again. */
        g_warning("cannot remove '%s' on node '%s': %s", op->domain, op->node,
                  error->message);
        goto out;
    }
    if (node) {
        g_hash_table_remove(node->domains, op->domain);
    }
    job = sald_job_load(core, op->job_id, &vms);
    vm = job ? sald_job_find_vm(vms, op->index) : NULL;
    if (!vm || sald_vm_final(vm)) {
        goto out;
    }
    if (op->have_output && op->header.exited) {
        vm->state = SAL_VM_STOPPED;
        vm->exit_status = op->header.exit_status;
    } else {
        vm->state = SAL_VM_DEAD;
    }
    if (job->state == SAL_JOB_RUNNING && vm->state == SAL_VM_DEAD &&
        !g_hash_table_contains(core->requeue, &job->id)) {
        g_autofree char *why = g_strdup_printf(
            "VM %u on node '%s' stopped before its command ended", vm->index,
            op->node);

        /* A best-effort job goes back to its latest snapshot. */
        if (!sald_job_save(core, job, vms) ||
            !sald_job_rollback(core, job, why)) {
            sald_job_end(core, job, vms, SAL_JOB_FAILED, why);
        }
    } else {
        sald_job_save(core, job, vms);
    }
out:
    sald_op_finish(op, idle);
}

void
sald_vm_collect(SaldCore *core, SaldNode *node, const SalVm *vm)
{
    sald_op_run(sald_op_new(core, SALD_OP_COLLECT, node, vm->job_id, vm->index),
                collect_done, NULL);
}

static void
create_done(GObject *source, GAsyncResult *result, gpointer data)
{
    SaldOp *op = g_task_get_task_data(G_TASK(result));
    SaldCore *core = op->core;
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) vms = NULL;
    g_autoptr(SalJob) job = NULL;
    gboolean ok = g_task_propagate_boolean(G_TASK(result), &error);
    gboolean idle = sald_op_done(op);
    SaldNode *node = sald_node_get(core, op->node);
    SalVm *vm;

    job = sald_job_load(core, op->job_id, &vms);
    vm = job ? sald_job_find_vm(vms, op->index) : NULL;
    if (!vm) {
        goto out;
    }
    if (ok) {
        g_debug("VM '%s' runs on node '%s'", op->domain, op->node);
        if (node) {
            g_hash_table_replace(node->domains, g_strdup(op->domain),
                                 GSIZE_TO_POINTER(++node->seq));
        }
        if (vm->state == SAL_VM_STARTING) {
            vm->state = SAL_VM_RUNNING;
            sald_job_save(core, job, vms);
        }
        goto out;
    }
    g_warning("cannot start '%s' on node '%s': %s", op->domain, op->node,
              error->message);
    if (vm->state != SAL_VM_STARTING) {
        goto out;
    }
    vm->state = SAL_VM_DEAD;
    if (job->state == SAL_JOB_STARTING) {
        if (node && !node->conn && job->idempotent) {
            /* The node went away under us: not the job's fault. */
            sald_id_set_add(core->requeue, job->id);
            sald_job_save(core, job, vms);
        } else {
            g_autofree char *why =
                g_strdup_printf("cannot start VM %u on node '%s': %s",
                                vm->index, op->node, error->message);

            sald_job_end(core, job, vms, SAL_JOB_FAILED, why);
        }
    } else {
        sald_job_save(core, job, vms);
    }
out:
    sald_op_finish(op, idle);
}

static const SaldSiteConf *
site_conf(SaldCore *core, const char *site)
{
    for (guint i = 0; i < core->config->sites->len; i++) {
        const SaldSiteConf *s = core->config->sites->pdata[i];

        if (g_str_equal(s->name, site)) {
            return s;
        }
    }
    return NULL;
}

/* The text the guest reads from fw_cfg (saline/README.md). */
static char *
guest_spec(SaldCore *core, const SalJob *job, GPtrArray *vms, const SalVm *vm)
{
    g_autoptr(GString) spec = g_string_new("saline-job 1\n");
    /* VMs are placed on configured nodes, of configured sites (whose
     * network sal_addr_add_pool() checked: it has a prefix). */
    const SaldSiteConf *site = site_conf(core, vm->site);
    const char *prefix = strchr(site->network, '/') + 1;

    g_string_append_printf(spec,
                           "job=%" G_GINT64_FORMAT "\nvm=%u\nvms=%u\n"
                           "hostname=%s\nip=%s/%s\ngateway=%s\n",
                           job->id, vm->index, job->n_vms, vm->domain, vm->ip,
                           prefix, site->gateway ? site->gateway : "");
    for (guint i = 0; i < vms->len; i++) {
        const SalVm *peer = vms->pdata[i];

        g_string_append_printf(spec, "peer=%s\n", peer->ip ? peer->ip : "");
    }
    for (guint i = 0; job->command[i]; i++) {
        g_autofree char *b64 = g_base64_encode(
            (const guchar *)job->command[i], strlen(job->command[i]));

        g_string_append_printf(spec, "arg=%s\n", b64);
    }
    sald_ssi_spec(spec, job);
    return g_string_free(g_steal_pointer(&spec), FALSE);
}

SaldOp *
sald_op_prepare_create(SaldCore *core, SaldNode *node, const SalJob *job,
                       GPtrArray *vms, const SalVm *vm, SaldOpKind kind)
{
    const SaldImageConf *image = sald_config_image(core->config, job->image);
    SaldOp *op;

    if (!image) {
        /* The image left the configuration after the job was accepted. */
        g_autoptr(GPtrArray) all = NULL;
        g_autoptr(SalJob) copy = sald_job_load(core, job->id, &all);
        g_autofree char *why =
            g_strdup_printf("image '%s' is no longer configured", job->image);

        if (copy) {
            sald_job_end(core, copy, all, SAL_JOB_FAILED, why);
        }
        return NULL;
    }
    op = sald_op_new(core, kind, node, job->id, vm->index);
    op->spec_text = guest_spec(core, job, vms, vm);
    /* libvirt hands the text to -fw_cfg string= without escaping; all of
     * it is base64, numbers, addresses and names, so this never fires. */
    if (strchr(op->spec_text, ',')) {
        g_critical("job %" G_GINT64_FORMAT ": a comma in the guest spec",
                   job->id);
        sald_op_free(op);
        return NULL;
    }
    op->image_dir = g_strdup(image->dir);
    op->mac = g_strdup(vm->mac);
    op->spec = (SaldVmSpec){
        .domain = op->domain,
        .pool_dir = node->conf->pool_dir,
        .image_dir = op->image_dir,
        .bridge = node->conf->bridge,
        .mac = op->mac,
        .emulator = core->config->emulator,
        .virt_type = core->config->virt_type,
        .cpus = job->cpus,
        .mem_mib = job->mem_mib,
        .output_bytes = core->config->output_bytes,
        .spec = op->spec_text,
    };
    if (op->spec.virt_type == SALD_VIRT_AUTO) {
        g_autofree char *caps = virConnectGetCapabilities(node->conn);

        op->spec.virt_type = caps && strstr(caps, "<domain type='kvm'")
                                 ? SALD_VIRT_KVM
                                 : SALD_VIRT_QEMU;
    }
    return op;
}

void
sald_vm_create(SaldCore *core, SaldNode *node, const SalJob *job,
               GPtrArray *vms, const SalVm *vm)
{
    SaldOp *op = sald_op_prepare_create(core, node, job, vms, vm,
                                        SALD_OP_CREATE);

    if (op) {
        sald_op_run(op, create_done, NULL);
    }
}
