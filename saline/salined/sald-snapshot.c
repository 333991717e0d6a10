/*
 * Best-effort jobs that lose no work: snapshots of a job's whole VM set
 * stored with Kget+ ([snapshots] in salined.conf; saline/kget/README.md),
 * and redeploys from the latest one.
 *
 *   running    -> a snapshot every interval (the job keeps running);
 *   running    -> suspending (preempted, or `saline suspend`): a final
 *                 snapshot, then its VMs are destroyed -> suspended; if
 *                 the snapshot fails the VMs are kept (running again), or
 *                 the job is killed if on-failure=kill;
 *   running    -> suspending when a VM dies without notice: the other VMs
 *                 are destroyed, no snapshot -> suspended, back to the
 *                 latest stored snapshot;
 *   suspended  -> resuming (placed by the scheduler, anywhere): the
 *                 snapshot is verified, every VM is loaded from it, paused,
 *                 then all are resumed together -> running. A snapshot
 *                 found corrupt is forgotten and the one before is used.
 *
 * A snapshot is one thread for the whole set (SnapJob): prepare every VM,
 * pause them all, start all their snapshots (each VM resumes as soon as
 * its device state is captured), wait, store the disk copies, then seal:
 * only a sealed snapshot, recorded in the database afterwards, is ever
 * redeployed from. Names: "saline-<job>@<seq>", items "vm<i>/state"
 * (+ ".ram"), "vm<i>/disk-vda", "vm<i>/disk-vdb".
 *
 * Kget+ is driven through its command (`kget`, the same on salined's host
 * and on the nodes, where QEMU runs it): its exit codes and --json output
 * are its contract.
 */
#include "sald-core-internal.h"

#include <fcntl.h>
#include <glib/gstdio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <json-glib/json-glib.h>

#include "sald-snap.h"

#define DISK_MAX (G_GUINT64_CONSTANT(16) << 30)
#define KGET_UNREACHABLE 3

gboolean
sald_snapshots_on(SaldCore *core)
{
    return core->config->kget_store != NULL;
}

void
sald_event(SaldCore *core, gint64 job_id, const char *fmt, ...)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *text = NULL;
    va_list ap;

    va_start(ap, fmt);
    text = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_message("job %" G_GINT64_FORMAT ": %s", job_id, text);
    if (!sal_store_add_event(core->store, job_id, sald_now_s(), text,
                             &error)) {
        g_warning("cannot record an event of job %" G_GINT64_FORMAT ": %s",
                  job_id, error->message);
    }
}

static char *
snapshot_name(gint64 job_id, guint seq)
{
    return g_strdup_printf("saline-%" G_GINT64_FORMAT "@%u", job_id, seq);
}

/* ---- the kget command ---- */

typedef struct {
    char *kget;
    char *store;
    char *key_file;
    guint keep;
    guint timeout_s;
} KgetConf;

static void
kget_conf_clear(KgetConf *k)
{
    g_clear_pointer(&k->kget, g_free);
    g_clear_pointer(&k->store, g_free);
    g_clear_pointer(&k->key_file, g_free);
}

static void
kget_conf_init(KgetConf *k, const SaldConfig *config)
{
    k->kget = g_strdup(config->kget_command);
    k->store = g_strdup(config->kget_store);
    k->key_file = g_strdup(config->kget_key_file);
    k->keep = config->snapshot_keep;
    k->timeout_s = config->snapshot_timeout_s;
}

/* The shell command a node's QEMU runs (exec:): no user-controlled text
 * in it, every part checked by the configuration or made here. */
static char *
kget_shell(const KgetConf *k, const char *args)
{
    g_autofree char *store = g_shell_quote(k->store);
    g_autofree char *key = g_shell_quote(k->key_file);

    return g_strdup_printf("%s --store %s --key-file %s -q %s", k->kget, store,
                           key, args);
}

static gboolean
kget_runv(const KgetConf *k, char **out, const char *const *args,
          GError **error)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_autofree char *stdout_text = NULL;
    g_autofree char *stderr_text = NULL;
    g_autoptr(GError) local = NULL;
    int status;

    g_ptr_array_add(argv, k->kget);
    g_ptr_array_add(argv, (gpointer) "--store");
    g_ptr_array_add(argv, k->store);
    g_ptr_array_add(argv, (gpointer) "--key-file");
    g_ptr_array_add(argv, k->key_file);
    g_ptr_array_add(argv, (gpointer) "-q");
    for (guint i = 0; args[i]; i++) {
        g_ptr_array_add(argv, (gpointer)args[i]);
    }
    g_ptr_array_add(argv, NULL);
    if (!g_spawn_sync(NULL, (char **)argv->pdata, NULL, G_SPAWN_SEARCH_PATH,
                      NULL, NULL, &stdout_text, &stderr_text, &status,
                      &local)) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_NODE, "cannot run '%s': %s",
                    k->kget, local->message);
        return FALSE;
    }
    if (!g_spawn_check_wait_status(status, NULL)) {
        g_autofree char *why = g_strstrip(g_strdup(stderr_text));
        char *nl = strrchr(why, '\n');

        g_set_error(error, SAL_ERROR,
                    WIFEXITED(status) && WEXITSTATUS(status) == KGET_UNREACHABLE
                        ? SAL_ERROR_NODE
                        : SAL_ERROR_NOT_FOUND,
                    "kget %s: %s", args[0][0] == '-' ? args[1] : args[0],
                    *why ? (nl ? nl + 1 : why) : "failed");
        return FALSE;
    }
    if (out) {
        *out = g_steal_pointer(&stdout_text);
    }
    return TRUE;
}

/*
 * Runs kget with the arguments after @error (NULL-terminated) after the
 * store options; its standard output in @out if not NULL. Failures:
 * SAL_ERROR_NODE when the store is unreachable (try again later),
 * SAL_ERROR_NOT_FOUND when kget refused (no such snapshot, a corrupt
 * chunk, ...).
 */
static gboolean
kget_run(const KgetConf *k, char **out, GError **error, ...)
{
    g_autoptr(GPtrArray) args = g_ptr_array_new();
    const char *arg;
    va_list ap;

    va_start(ap, error);
    while ((arg = va_arg(ap, const char *))) {
        g_ptr_array_add(args, (gpointer)arg);
    }
    va_end(ap);
    g_ptr_array_add(args, NULL);
    return kget_runv(k, out, (const char *const *)args->pdata, error);
}

/* The logical and new bytes of sealed snapshot @name (kget ls --json). */
static gboolean
kget_sizes(const KgetConf *k, const char *name, guint64 *bytes,
           guint64 *bytes_new, GError **error)
{
    g_autofree char *group = g_strndup(name, strcspn(name, "@"));
    g_autofree char *out = NULL;
    g_autoptr(JsonParser) parser = json_parser_new();
    JsonNode *root;
    JsonArray *list = NULL;

    if (!kget_run(k, &out, error, "--json", "ls", group, NULL)) {
        return FALSE;
    }
    if (!json_parser_load_from_data(parser, out, -1, error)) {
        g_prefix_error(error, "kget ls: ");
        return FALSE;
    }
    root = json_parser_get_root(parser);
    if (JSON_NODE_HOLDS_OBJECT(root)) {
        JsonObject *o = json_node_get_object(root);

        if (json_object_has_member(o, "snapshots")) {
            list = json_object_get_array_member(o, "snapshots");
        }
    } else if (JSON_NODE_HOLDS_ARRAY(root)) {
        list = json_node_get_array(root);
    }
    for (guint i = 0; list && i < json_array_get_length(list); i++) {
        JsonObject *s = json_array_get_object_element(list, i);

        if (s && g_strcmp0(json_object_get_string_member_with_default(
                               s, "name", ""),
                           name) == 0) {
            *bytes = (guint64)json_object_get_int_member_with_default(
                s, "bytes", 0);
            *bytes_new = (guint64)json_object_get_int_member_with_default(
                s, "new_bytes", 0);
            return TRUE;
        }
    }
    g_set_error(error, SAL_ERROR, SAL_ERROR_NOT_FOUND,
                "snapshot '%s' is not listed by the store", name);
    return FALSE;
}

/* Writes @data to a new file under @dir; its path. */
static char *
temp_file(const char *dir, GBytes *data, GError **error)
{
    g_autofree char *path = g_build_filename(dir, "disk-XXXXXX", NULL);
    gsize len;
    const char *p = g_bytes_get_data(data, &len);
    int fd = g_mkstemp_full(path, O_RDWR | O_CLOEXEC, 0600);

    if (fd < 0) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_STORE,
                    "cannot create a file in '%s': %s", dir,
                    g_strerror(errno));
        return NULL;
    }
    close(fd);
    if (!g_file_set_contents(path, p, (gssize)len, error)) {
        g_unlink(path);
        return NULL;
    }
    return g_steal_pointer(&path);
}

/* ---- a snapshot of a job's VM set, in one worker thread ---- */

typedef struct {
    char *node;
    char *domain;
    char *pool_dir;
    char *vda_node;
    char *vdb_node;
    guint index;
    virConnectPtr conn;
    gint64 paused_at; /* monotonic, µs */
    gint64 pause_ms;
    SaldSnapStats stats;
    GError *error;
} SnapVm;

typedef struct {
    SaldCore *core;
    gint64 job_id;
    guint seq;
    gboolean final;
    char *name;
    char *work_dir;
    char *meta;
    KgetConf kget;
    GPtrArray *vms; /* SnapVm * */
    /* the pause barrier */
    GMutex lock;
    GCond cond;
    guint paused;
    gboolean pause_failed;
    /* results */
    gint64 pause_ms;
    guint64 bytes;
    guint64 bytes_new;
} SnapJob;

static void
snap_vm_free(SnapVm *vm)
{
    if (vm->conn) {
        virConnectClose(vm->conn);
    }
    g_free(vm->node);
    g_free(vm->domain);
    g_free(vm->pool_dir);
    g_free(vm->vda_node);
    g_free(vm->vdb_node);
    g_clear_error(&vm->error);
    g_free(vm);
}

static void
snap_job_free(SnapJob *sj)
{
    g_ptr_array_unref(sj->vms);
    kget_conf_clear(&sj->kget);
    g_free(sj->name);
    g_free(sj->work_dir);
    g_free(sj->meta);
    g_mutex_clear(&sj->lock);
    g_cond_clear(&sj->cond);
    g_free(sj);
}

/* Pauses one VM, waits until every VM of the set is paused, then starts
 * its snapshot (which resumes it). */
static gpointer
snap_vm_thread(gpointer data)
{
    SnapVm *vm = ((gpointer *)data)[0];
    SnapJob *sj = ((gpointer *)data)[1];
    g_autofree char *args = g_strdup_printf(
        "snapshot %s --no-seal --vmstate vm%u/state=-", sj->name, vm->index);
    g_autofree char *cmd = kget_shell(&sj->kget, args);
    gboolean ok;

    vm->paused_at = g_get_monotonic_time();
    ok = sald_snap_pause(vm->conn, vm->domain, &vm->error);
    g_mutex_lock(&sj->lock);
    sj->paused++;
    sj->pause_failed |= !ok;
    g_cond_broadcast(&sj->cond);
    while (sj->paused < sj->vms->len) {
        g_cond_wait(&sj->cond, &sj->lock);
    }
    ok = ok && !sj->pause_failed;
    g_mutex_unlock(&sj->lock);
    if (ok) {
        ok = sald_snap_start(vm->conn, vm->domain, vm->vda_node,
                             vm->vdb_node, cmd, &vm->error);
    }
    /* The guest runs again once QEMU has its device state: this bounds
     * the pause from above with QEMU's own stop time. */
    vm->pause_ms = (g_get_monotonic_time() - vm->paused_at) / 1000;
    if (!ok && !vm->error) {
        g_set_error(&vm->error, SAL_ERROR, SAL_ERROR_NODE,
                    "another VM of the job could not be paused");
    }
    return GINT_TO_POINTER(ok);
}

static gboolean
snap_vms_store_disks(SnapJob *sj, SnapVm *vm, GError **error)
{
    g_autoptr(GBytes) vda = NULL;
    g_autoptr(GBytes) vdb = NULL;
    g_autofree char *vda_file = NULL;
    g_autofree char *vdb_file = NULL;
    g_autofree char *vda_arg = NULL;
    g_autofree char *vdb_arg = NULL;
    gboolean ok;

    if (!sald_snap_read_copies(vm->conn, vm->domain, DISK_MAX, &vda, &vdb,
                               error)) {
        return FALSE;
    }
    vda_file = temp_file(sj->work_dir, vda, error);
    vdb_file = vda_file ? temp_file(sj->work_dir, vdb, error) : NULL;
    if (!vdb_file) {
        if (vda_file) {
            g_unlink(vda_file);
        }
        return FALSE;
    }
    vda_arg = g_strdup_printf("vm%u/disk-vda=%s", vm->index, vda_file);
    vdb_arg = g_strdup_printf("vm%u/disk-vdb=%s", vm->index, vdb_file);
    ok = kget_run(&sj->kget, NULL, error, "snapshot", sj->name, "--no-seal",
                  vda_arg, vdb_arg, NULL);
    g_unlink(vda_file);
    g_unlink(vdb_file);
    return ok && sald_snap_drop_copies(vm->conn, vm->domain, error);
}

static gboolean
snap_seal(SnapJob *sj, GError **error)
{
    g_autoptr(GPtrArray) args = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GError) local = NULL;
    g_autofree char *keep = g_strdup_printf("%u", sj->kget.keep);

    g_ptr_array_add(args, g_strdup("seal"));
    g_ptr_array_add(args, g_strdup(sj->name));
    for (guint i = 0; i < sj->vms->len; i++) {
        const SnapVm *vm = sj->vms->pdata[i];
        static const char *const items[] = {"state", "state.ram", "disk-vda",
                                            "disk-vdb"};

        for (guint j = 0; j < G_N_ELEMENTS(items); j++) {
            g_ptr_array_add(args, g_strdup_printf("vm%u/%s", vm->index,
                                                  items[j]));
        }
    }
    g_ptr_array_add(args, g_strdup("--meta"));
    g_ptr_array_add(args, g_strdup(sj->meta));
    g_ptr_array_add(args, NULL);
    if (!kget_runv(&sj->kget, NULL, (const char *const *)args->pdata,
                   error)) {
        return FALSE;
    }
    /* Old snapshots go; the store keeps what newer ones still use. */
    if (!kget_run(&sj->kget, NULL, &local, "gc", "--keep", keep, NULL)) {
        g_warning("kget gc: %s", local->message);
    }
    return kget_sizes(&sj->kget, sj->name, &sj->bytes, &sj->bytes_new, error);
}

static void
snap_thread(GTask *task, gpointer source, gpointer data, GCancellable *cancel)
{
    SnapJob *sj = data;
    g_autoptr(GPtrArray) threads = g_ptr_array_new();
    g_autoptr(GPtrArray) args = g_ptr_array_new_with_free_func(g_free);
    GError *error = NULL;
    gboolean started = TRUE;

    /* A leftover of the same name (a salined killed mid-snapshot) goes. */
    kget_run(&sj->kget, NULL, NULL, "rm", sj->name, NULL);
    for (guint i = 0; i < sj->vms->len; i++) {
        SnapVm *vm = sj->vms->pdata[i];

        if (!sald_snap_prepare(vm->conn, vm->domain, vm->pool_dir,
                               &vm->vda_node, &vm->vdb_node, &error)) {
            goto fail;
        }
    }
    for (guint i = 0; i < sj->vms->len; i++) {
        gpointer *pair = g_new(gpointer, 2);

        pair[0] = sj->vms->pdata[i];
        pair[1] = sj;
        g_ptr_array_add(args, pair);
        g_ptr_array_add(threads, g_thread_new("snapshot", snap_vm_thread, pair));
    }
    for (guint i = 0; i < threads->len; i++) {
        started &= GPOINTER_TO_INT(g_thread_join(threads->pdata[i]));
    }
    for (guint i = 0; i < sj->vms->len; i++) {
        SnapVm *vm = sj->vms->pdata[i];

        if (vm->error && !error) {
            error = g_error_copy(vm->error);
        }
    }
    if (!started) {
        goto fail;
    }
    for (guint i = 0; i < sj->vms->len; i++) {
        SnapVm *vm = sj->vms->pdata[i];

        if (!sald_snap_wait(vm->conn, vm->domain, sj->kget.timeout_s,
                            &vm->stats, &error)) {
            goto fail;
        }
        /* QEMU's own stop (device state) may outlast our command. */
        vm->pause_ms = MAX(vm->pause_ms, vm->stats.downtime_ms);
        sj->pause_ms = MAX(sj->pause_ms, vm->pause_ms);
    }
    for (guint i = 0; i < sj->vms->len; i++) {
        if (!snap_vms_store_disks(sj, sj->vms->pdata[i], &error)) {
            goto fail;
        }
    }
    if (!snap_seal(sj, &error)) {
        goto fail;
    }
    g_task_return_boolean(task, TRUE);
    return;
fail:
    for (guint i = 0; i < sj->vms->len; i++) {
        SnapVm *vm = sj->vms->pdata[i];

        sald_snap_abort(vm->conn, vm->domain);
    }
    /* Nothing half-stored stays to be mistaken for a snapshot. */
    kget_run(&sj->kget, NULL, NULL, "rm", sj->name, NULL);
    g_task_return_error(task, error);
}

static void
snap_done(GObject *source, GAsyncResult *result, gpointer data)
{
    SnapJob *sj = g_task_get_task_data(G_TASK(result));
    SaldCore *core = sj->core;
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) vms = NULL;
    g_autoptr(SalJob) job = NULL;
    gboolean ok = g_task_propagate_boolean(G_TASK(result), &error);
    gboolean idle = sald_job_busy_remove(core, sj->job_id);

    job = sald_job_load(core, sj->job_id, &vms);
    if (!job) {
        goto out;
    }
    if (ok) {
        SalSnapshot snap = {
            .job_id = job->id,
            .seq = sj->seq,
            .time = sald_now_s(),
            .pause_ms = sj->pause_ms,
            .bytes_sent = sj->bytes_new,
            .bytes_new = sj->bytes_new,
        };
        g_autoptr(GError) store_error = NULL;

        if (!sal_store_add_snapshot(core->store, &snap, &store_error)) {
            g_warning("cannot record snapshot '%s': %s", sj->name,
                      store_error->message);
            goto out;
        }
        sald_event(core, job->id,
                   "snapshot %u stored: VMs paused %" G_GINT64_FORMAT
                   " ms, %" G_GUINT64_FORMAT " bytes, %" G_GUINT64_FORMAT
                   " new in the store",
                   sj->seq, sj->pause_ms, sj->bytes, sj->bytes_new);
        sald_snapshot_set_due(core, job);
        goto out;
    }
    sald_event(core, job->id, "snapshot %u failed: %s", sj->seq,
               error->message);
    sald_snapshot_set_due(core, job);
    g_hash_table_remove(core->snap_final, &job->id);
    if (sj->final && job->state == SAL_JOB_SUSPENDING) {
        if (core->config->snapshot_failure_kills) {
            g_autofree char *why =
                g_strdup_printf("killed: its final snapshot failed: %s",
                                error->message);

            sald_job_end(core, job, vms, SAL_JOB_FAILED, why);
        } else {
            g_autoptr(GError) state_error = NULL;

            /* on-failure=keep: the VMs run on; a later pass tries again if
             * the capacity is still wanted. */
            job->held = FALSE;
            if (sal_job_transition(job, SAL_JOB_RUNNING, &state_error)) {
                sald_job_save(core, job, NULL);
                sald_event(core, job->id,
                           "suspension aborted, the job keeps running "
                           "(on-failure=keep)");
            }
        }
    }
out:
    if (idle) {
        sald_job_reconcile(core, sj->job_id);
    }
    snap_job_free(sj);
}

/* The metadata sealed with a snapshot: what the VMs were. */
static char *
snap_meta(const SalJob *job, GPtrArray *vms)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(JsonNode) root = NULL;

    json_builder_begin_object(b);
    json_builder_set_member_name(b, "job");
    json_builder_add_int_value(b, job->id);
    json_builder_set_member_name(b, "vms");
    json_builder_begin_array(b);
    for (guint i = 0; i < vms->len; i++) {
        const SalVm *vm = vms->pdata[i];

        json_builder_begin_object(b);
        json_builder_set_member_name(b, "index");
        json_builder_add_int_value(b, vm->index);
        json_builder_set_member_name(b, "node");
        json_builder_add_string_value(b, vm->node);
        json_builder_set_member_name(b, "mac");
        json_builder_add_string_value(b, vm->mac);
        json_builder_set_member_name(b, "ip");
        json_builder_add_string_value(b, vm->ip);
        json_builder_end_object(b);
    }
    json_builder_end_array(b);
    json_builder_end_object(b);
    root = json_builder_get_root(b);
    return json_to_string(root, FALSE);
}

/* Starts a snapshot of @job's VMs (all running, on nodes that are up);
 * FALSE if it cannot start now. */
static gboolean
snapshot_start(SaldCore *core, SalJob *job, GPtrArray *vms, gboolean final)
{
    g_autoptr(GTask) task = NULL;
    SnapJob *sj;

    for (guint i = 0; i < vms->len; i++) {
        const SalVm *vm = vms->pdata[i];

        if (vm->state != SAL_VM_RUNNING ||
            !sald_node_ready(sald_node_get(core, vm->node))) {
            return FALSE;
        }
    }
    sj = g_new0(SnapJob, 1);
    sj->core = core;
    sj->job_id = job->id;
    sj->seq = job->snapshot_seq + 1;
    sj->final = final;
    sj->name = snapshot_name(job->id, sj->seq);
    sj->work_dir = g_strdup(core->output_dir);
    sj->meta = snap_meta(job, vms);
    kget_conf_init(&sj->kget, core->config);
    g_mutex_init(&sj->lock);
    g_cond_init(&sj->cond);
    sj->vms = g_ptr_array_new_with_free_func((GDestroyNotify)snap_vm_free);
    for (guint i = 0; i < vms->len; i++) {
        const SalVm *vm = vms->pdata[i];
        SaldNode *node = sald_node_get(core, vm->node);
        SnapVm *svm = g_new0(SnapVm, 1);

        svm->node = g_strdup(vm->node);
        svm->domain = g_strdup(vm->domain);
        svm->pool_dir = g_strdup(node->conf->pool_dir);
        svm->index = vm->index;
        virConnectRef(node->conn);
        svm->conn = node->conn;
        g_ptr_array_add(sj->vms, svm);
    }
    g_message("job %" G_GINT64_FORMAT ": %ssnapshot %u starting", job->id,
              final ? "final " : "", sj->seq);
    sald_job_busy_add(core, job->id);
    task = g_task_new(NULL, NULL, snap_done, NULL);
    g_task_set_task_data(task, sj, NULL);
    g_task_run_in_thread(task, snap_thread);
    return TRUE;
}

/* ---- an ended job's snapshots ---- */

typedef struct {
    KgetConf kget;
    char *group;
} Forget;

static void
forget_thread(GTask *task, gpointer source, gpointer data,
              GCancellable *cancel)
{
    Forget *f = data;
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) error = NULL;
    g_autofree char *out = NULL;
    JsonObject *root;
    JsonArray *list;

    if (!kget_run(&f->kget, &out, &error, "--json", "ls", "--pending",
                  f->group, NULL) ||
        !json_parser_load_from_data(parser, out, -1, &error)) {
        g_warning("cannot list the snapshots of '%s': %s", f->group,
                  error->message);
        g_task_return_boolean(task, FALSE);
        return;
    }
    root = JSON_NODE_HOLDS_OBJECT(json_parser_get_root(parser))
               ? json_node_get_object(json_parser_get_root(parser))
               : NULL;
    list = root && json_object_has_member(root, "snapshots")
               ? json_object_get_array_member(root, "snapshots")
               : NULL;
    for (guint i = 0; list && i < json_array_get_length(list); i++) {
        JsonObject *snap = json_array_get_object_element(list, i);
        const char *name =
            snap ? json_object_get_string_member_with_default(snap, "name", "")
                 : "";
        g_autoptr(GError) rm_error = NULL;

        if (g_str_has_prefix(name, f->group) && name[strlen(f->group)] == '@' &&
            !kget_run(&f->kget, NULL, &rm_error, "rm", name, NULL)) {
            g_warning("cannot remove snapshot '%s': %s", name,
                      rm_error->message);
        }
    }
    g_task_return_boolean(task, TRUE);
}

static void
forget_free(Forget *f)
{
    kget_conf_clear(&f->kget);
    g_free(f->group);
    g_free(f);
}

void
sald_snapshots_forget(SaldCore *core, gint64 job_id)
{
    g_autoptr(GTask) task = NULL;
    Forget *f;

    if (!sald_snapshots_on(core)) {
        return;
    }
    /* Nothing will be redeployed from them: the store may reclaim them
     * at its next gc instead of keeping the last ones for ever. */
    f = g_new0(Forget, 1);
    kget_conf_init(&f->kget, core->config);
    f->group = g_strdup_printf("saline-%" G_GINT64_FORMAT, job_id);
    task = g_task_new(NULL, NULL, NULL, NULL);
    g_task_set_task_data(task, f, (GDestroyNotify)forget_free);
    g_task_run_in_thread(task, forget_thread);
}

/* ---- when ---- */

static gint64
job_interval(SaldCore *core, const SalJob *job)
{
    return job->snapshot_interval_s > 0 ? job->snapshot_interval_s
                                        : core->config->snapshot_interval_s;
}

void
sald_snapshot_set_due(SaldCore *core, const SalJob *job)
{
    gint64 due = sald_now_s() + job_interval(core, job);

    g_hash_table_insert(core->snap_due, g_memdup2(&job->id, sizeof(job->id)),
                        g_memdup2(&due, sizeof(due)));
}

void
sald_snapshot_maybe(SaldCore *core, SalJob *job, GPtrArray *vms)
{
    const gint64 *due;

    if (!job->besteffort || !sald_snapshots_on(core)) {
        return;
    }
    due = g_hash_table_lookup(core->snap_due, &job->id);
    if (!due) {
        /* First look at this job since salined started. */
        sald_snapshot_set_due(core, job);
        return;
    }
    if (sald_now_s() >= *due) {
        snapshot_start(core, job, vms, FALSE);
    }
}

/* ---- suspension ---- */

gboolean
sald_job_suspend(SaldCore *core, SalJob *job, gboolean held, const char *why)
{
    g_autoptr(GError) error = NULL;

    if (!sal_job_transition(job, SAL_JOB_SUSPENDING, &error)) {
        g_warning("job %" G_GINT64_FORMAT ": %s", job->id, error->message);
        return FALSE;
    }
    job->held = held;
    if (!sald_job_save(core, job, NULL)) {
        return FALSE;
    }
    g_hash_table_remove(core->snap_final, &job->id);
    sald_event(core, job->id, "suspending: %s", why);
    return TRUE;
}

/* Destroys the VMs of a job being suspended, or whose redeploy failed
 * (their state is stored); suspended once all are gone. */
static void
suspend_destroy_done(GObject *source, GAsyncResult *result, gpointer data)
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

    if (!ok) {
        g_warning("cannot remove '%s' on node '%s': %s", op->domain, op->node,
                  error->message);
        goto out;
    }
    if (node) {
        g_hash_table_remove(node->domains, op->domain);
    }
    job = sald_job_load(core, op->job_id, &vms);
    vm = job ? sald_job_find_vm(vms, op->index) : NULL;
    if (vm && (job->state == SAL_JOB_SUSPENDING ||
               job->state == SAL_JOB_RESUMING)) {
        vm->state = SAL_VM_SUSPENDED;
        sald_job_save(core, job, vms);
    }
out:
    sald_op_finish(op, idle);
}

static void
suspended_teardown(SaldCore *core, SalJob *job, GPtrArray *vms)
{
    gboolean all_gone = TRUE;

    for (guint i = 0; i < vms->len; i++) {
        const SalVm *vm = vms->pdata[i];
        SaldNode *node = sald_node_get(core, vm->node);

        if (vm->state == SAL_VM_SUSPENDED) {
            continue;
        }
        all_gone = FALSE;
        if (sald_node_ready(node)) {
            sald_op_run(sald_op_new(core, SALD_OP_DESTROY, node, vm->job_id,
                                    vm->index),
                        suspend_destroy_done, NULL);
        }
    }
    if (all_gone) {
        g_autoptr(GError) error = NULL;

        if (!sal_job_transition(job, SAL_JOB_SUSPENDED, &error)) {
            g_warning("job %" G_GINT64_FORMAT ": %s", job->id, error->message);
            return;
        }
        if (sald_job_save(core, job, NULL)) {
            sald_event(core, job->id, "suspended at snapshot %u%s",
                       job->snapshot_seq,
                       job->held ? ", until resumed" : "");
        }
        sald_job_schedule_soon(core);
    }
}

void
sald_job_reconcile_suspending(SaldCore *core, SalJob *job, GPtrArray *vms)
{
    gboolean any_dead = FALSE;
    gboolean any_running = FALSE;
    gboolean any_stopped = FALSE;
    gint64 *since;

    for (guint i = 0; i < vms->len; i++) {
        const SalVm *vm = vms->pdata[i];

        any_dead |= vm->state == SAL_VM_DEAD;
        any_running |= vm->state == SAL_VM_RUNNING;
        any_stopped |= vm->state == SAL_VM_STOPPED;
    }
    if (any_stopped && any_running && !any_dead) {
        g_autoptr(GError) error = NULL;

        /* Its command has ended in some VM: it is finishing, let it. */
        job->held = FALSE;
        if (sal_job_transition(job, SAL_JOB_RUNNING, &error) &&
            sald_job_save(core, job, NULL)) {
            sald_event(core, job->id,
                       "suspension aborted: the command has ended in a VM");
            sald_job_reconcile(core, job->id);
        }
        return;
    }
    /* A final snapshot of a set with a dead VM would store a broken
     * job: back to the last complete one instead. Likewise once the
     * final snapshot is recorded (its seq is newer than the suspension). */
    since = g_hash_table_lookup(core->snap_final, &job->id);
    if (any_dead || !any_running || (since && *since < job->snapshot_seq) ||
        g_hash_table_contains(core->snap_skip, &job->id)) {
        if (job->snapshot_seq == 0) {
            sald_job_end(core, job, vms, SAL_JOB_FAILED,
                         "a VM died and the job has no snapshot");
            sald_job_reconcile(core, job->id);
            return;
        }
        g_hash_table_remove(core->snap_final, &job->id);
        suspended_teardown(core, job, vms);
        return;
    }
    if (!since) {
        g_hash_table_insert(core->snap_final,
                            g_memdup2(&job->id, sizeof(job->id)),
                            g_memdup2(&(gint64){job->snapshot_seq},
                                      sizeof(gint64)));
    }
    snapshot_start(core, job, vms, TRUE);
}

/* A VM of running best-effort job @job died without notice: the job goes
 * back to its latest snapshot. FALSE if it has none (or snapshots are
 * off): the caller fails it. */
gboolean
sald_job_rollback(SaldCore *core, SalJob *job, const char *why)
{
    if (!job->besteffort || job->snapshot_seq == 0 || !sald_snapshots_on(core)) {
        return FALSE;
    }
    return sald_job_suspend(core, job, FALSE, why);
}

/* ---- redeploy ---- */

void
sald_job_resume_on(SaldCore *core, SalJob *job, GPtrArray *vms,
                   const SalPlacement *placement)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GString) where = g_string_new(NULL);

    for (guint i = 0; i < vms->len; i++) {
        SalVm *vm = vms->pdata[i];
        const SaldNodeConf *node =
            sald_config_node(core->config, placement->nodes[vm->index]);

        g_autofree char *out = sald_output_path(core, job->id, vm->index, "out");
        g_autofree char *meta =
            sald_output_path(core, job->id, vm->index, "meta");

        /* Output kept when a VM died is older than the snapshot's output
         * drive, which the VM gets back: `saline log` reads that. */
        g_unlink(out);
        g_unlink(meta);
        g_free(vm->node);
        g_free(vm->site);
        vm->node = g_strdup(node->node->name);
        vm->site = g_strdup(node->node->site);
        vm->state = SAL_VM_STARTING;
        g_string_append_printf(where, "%s%s", i ? " " : "", vm->node);
    }
    if (!sal_job_transition(job, SAL_JOB_RESUMING, &error)) {
        g_warning("job %" G_GINT64_FORMAT ": %s", job->id, error->message);
        return;
    }
    if (!sald_job_save(core, job, vms)) {
        return;
    }
    sald_event(core, job->id, "redeploying on %s from snapshot %u", where->str,
               job->snapshot_seq);
    sald_job_reconcile(core, job->id);
}

/* The node's kget report of a load (kget restore --report), if any:
 * a missing or unreadable one only means no figures. */
static void
restore_report(SaldOp *op)
{
    g_autofree char *name =
        g_strconcat(op->domain, SALD_RESTORE_REPORT_SUFFIX, NULL);
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GBytes) data = NULL;
    virStoragePoolPtr pool = virStoragePoolLookupByName(op->conn, SALD_POOL_NAME);
    virStorageVolPtr vol = NULL;
    JsonObject *root, *pages;
    gsize len;
    const char *text;

    if (!pool) {
        return;
    }
    virStoragePoolRefresh(pool, 0);
    vol = virStorageVolLookupByName(pool, name);
    if (vol && sald_virt_volume_read_all(op->conn, vol, name, 65536, &data,
                                         NULL)) {
        text = g_bytes_get_data(data, &len);
        if (json_parser_load_from_data(parser, text, (gssize)len, NULL) &&
            JSON_NODE_HOLDS_OBJECT(json_parser_get_root(parser))) {
            root = json_node_get_object(json_parser_get_root(parser));
            pages = json_object_has_member(root, "pages")
                        ? json_object_get_object_member(root, "pages")
                        : NULL;
            if (pages) {
                op->have_report = TRUE;
                op->site_bytes = (guint64)json_object_get_int_member_with_default(
                    pages, "site_bytes", 0);
                op->store_bytes = (guint64)json_object_get_int_member_with_default(
                    pages, "store_bytes", 0);
            }
        }
    }
    if (vol) {
        virStorageVolDelete(vol, 0);
        virStorageVolFree(vol);
    }
    virStoragePoolFree(pool);
}

/* In a worker thread (SALD_OP_RESTORE): the disks from the store, then
 * the VM loaded from it, paused. */
gboolean
sald_op_restore(SaldOp *op, GError **error)
{
    g_autofree char *vda_item = g_strdup_printf("vm%u/disk-vda", op->index);
    g_autofree char *vdb_item = g_strdup_printf("vm%u/disk-vdb", op->index);
    g_autofree char *dir = g_strdup(op->work_dir);
    g_autofree char *vda_file = g_build_filename(dir, "restore-XXXXXX", NULL);
    g_autofree char *vdb_file = NULL;
    g_autofree char *args = NULL;
    g_autofree char *cmd = NULL;
    g_autofree char *vda = NULL;
    g_autofree char *vdb = NULL;
    gsize vda_len = 0, vdb_len = 0;
    KgetConf k = {0};
    gboolean ok = FALSE;
    int fd;

    kget_conf_init(&k, op->config);
    fd = g_mkstemp_full(vda_file, O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_STORE,
                    "cannot create a file in '%s': %s", dir, g_strerror(errno));
        goto out;
    }
    close(fd);
    vdb_file = g_strconcat(vda_file, ".vdb", NULL);
    /* Every chunk re-hashed on the store first: a corrupt snapshot is
     * refused as a whole, never half loaded. */
    if (!kget_run(&k, NULL, error, "verify", op->snapshot, NULL)) {
        if (g_error_matches(*error, SAL_ERROR, SAL_ERROR_NOT_FOUND)) {
            kget_run(&k, NULL, NULL, "rm", op->snapshot, NULL);
        }
        goto out;
    }
    if (!kget_run(&k, NULL, error, "restore", op->snapshot, vda_item, "-o",
                  vda_file, NULL) ||
        !kget_run(&k, NULL, error, "restore", op->snapshot, vdb_item, "-o",
                  vdb_file, NULL) ||
        !g_file_get_contents(vda_file, &vda, &vda_len, error) ||
        !g_file_get_contents(vdb_file, &vdb, &vdb_len, error)) {
        goto out;
    }
    if (op->config->kget_resolver) {
        g_autofree char *sock = g_shell_quote(op->config->kget_resolver);
        g_autofree char *name =
            g_strconcat(op->domain, SALD_RESTORE_REPORT_SUFFIX, NULL);
        g_autofree char *path = g_build_filename(op->spec.pool_dir, name, NULL);
        g_autofree char *report = g_shell_quote(path);

        /* Pages the node's site holds come from there, not the WAN; how
         * many, the node's kget says in a pool volume salined reads. */
        args = g_strdup_printf("restore %s --vmstate vm%u/state -o - "
                               "--resolver %s --report %s",
                               op->snapshot, op->index, sock, report);
    } else {
        args = g_strdup_printf("restore %s --vmstate vm%u/state -o -",
                               op->snapshot, op->index);
    }
    cmd = kget_shell(&k, args);
    op->spec.overlay_data = g_bytes_new_take(g_steal_pointer(&vda), vda_len);
    op->spec.output_data = g_bytes_new_take(g_steal_pointer(&vdb), vdb_len);
    op->spec.incoming = cmd;
    ok = sald_snap_restore(op->conn, &op->spec, k.timeout_s, error);
    op->spec.incoming = NULL;
    if (ok && op->config->kget_resolver) {
        restore_report(op);
    }
out:
    g_unlink(vda_file);
    if (vdb_file) {
        g_unlink(vdb_file);
    }
    kget_conf_clear(&k);
    return ok;
}

/* The snapshot a resuming job is loading proved unusable: forget it (and
 * anything newer) and go back to suspended, or fail with none left. */
static void
snapshot_refused(SaldCore *core, SalJob *job, GPtrArray *vms, const char *why)
{
    g_autoptr(GError) error = NULL;
    guint bad = job->snapshot_seq;
    g_autoptr(SalJob) fresh = NULL;

    sald_event(core, job->id, "snapshot %u refused: %s", bad, why);
    if (!sal_store_drop_snapshots(core->store, job->id, bad, &error)) {
        g_warning("job %" G_GINT64_FORMAT ": %s", job->id, error->message);
        return;
    }
    /* The caller saves @job: with the snapshot it goes back to. */
    fresh = sal_store_load_job(core->store, job->id, NULL, &error);
    if (fresh) {
        job->snapshot_seq = fresh->snapshot_seq;
    }
    g_hash_table_insert(core->snap_refused,
                        g_memdup2(&job->id, sizeof(job->id)), NULL);
}

static void
restore_done(GObject *source, GAsyncResult *result, gpointer data)
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
    if (!vm || job->state != SAL_JOB_RESUMING) {
        goto out;
    }
    if (ok) {
        if (node) {
            g_hash_table_replace(node->domains, g_strdup(op->domain),
                                 GSIZE_TO_POINTER(++node->seq));
        }
        vm->state = SAL_VM_RUNNING; /* loaded, paused until all are */
        sald_job_save(core, job, vms);
        if (op->have_report) {
            sald_event(core, job->id,
                       "VM %u loaded on '%s': %.1f MiB of RAM from the "
                       "site's page index, %.1f MiB from the store",
                       vm->index, op->node, op->site_bytes / 1048576.0,
                       op->store_bytes / 1048576.0);
        }
        goto out;
    }
    g_warning("cannot redeploy '%s' on node '%s': %s", op->domain, op->node,
              error->message);
    /* Each VM's load checks the snapshot: refuse it once, not the one
     * before it too. */
    if (g_error_matches(error, SAL_ERROR, SAL_ERROR_NOT_FOUND) &&
        g_ascii_strtoull(strchr(op->snapshot, '@') + 1, NULL, 10) ==
            job->snapshot_seq) {
        snapshot_refused(core, job, vms, error->message);
    }
    vm->state = SAL_VM_DEAD;
    sald_job_save(core, job, vms);
out:
    sald_op_finish(op, idle);
}

static void
vm_restore(SaldCore *core, SaldNode *node, const SalJob *job, GPtrArray *vms,
           const SalVm *vm)
{
    SaldOp *op =
        sald_op_prepare_create(core, node, job, vms, vm, SALD_OP_RESTORE);

    if (!op) {
        return;
    }
    op->snapshot = snapshot_name(job->id, job->snapshot_seq);
    op->config = core->config;
    op->work_dir = g_strdup(core->output_dir);
    sald_op_run(op, restore_done, NULL);
}

/* All VMs loaded: resume them together, in one thread. */
typedef struct {
    SaldCore *core;
    gint64 job_id;
    GPtrArray *conns;   /* virConnectPtr */
    GPtrArray *domains; /* char * */
} RunAll;

static void
run_all_free(RunAll *r)
{
    for (guint i = 0; i < r->conns->len; i++) {
        virConnectClose(r->conns->pdata[i]);
    }
    g_ptr_array_unref(r->conns);
    g_ptr_array_unref(r->domains);
    g_free(r);
}

static void
run_all_thread(GTask *task, gpointer source, gpointer data,
               GCancellable *cancel)
{
    RunAll *r = data;
    GError *error = NULL;

    for (guint i = 0; i < r->domains->len; i++) {
        if (!sald_snap_run(r->conns->pdata[i], r->domains->pdata[i], &error)) {
            g_task_return_error(task, error);
            return;
        }
    }
    g_task_return_boolean(task, TRUE);
}

static void
run_all_done(GObject *source, GAsyncResult *result, gpointer data)
{
    RunAll *r = g_task_get_task_data(G_TASK(result));
    SaldCore *core = r->core;
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) vms = NULL;
    g_autoptr(SalJob) job = NULL;
    gboolean ok = g_task_propagate_boolean(G_TASK(result), &error);
    gboolean idle = sald_job_busy_remove(core, r->job_id);

    job = sald_job_load(core, r->job_id, &vms);
    if (job && job->state == SAL_JOB_RESUMING) {
        g_autoptr(GError) state_error = NULL;

        if (!ok) {
            /* The VMs stay paused; the next pass tries again. */
            g_warning("job %" G_GINT64_FORMAT ": %s", job->id, error->message);
        } else if (sal_job_transition(job, SAL_JOB_RUNNING, &state_error) &&
                   sald_job_save(core, job, NULL)) {
            sald_event(core, job->id, "running again from snapshot %u",
                       job->snapshot_seq);
            sald_snapshot_set_due(core, job);
        }
    }
    if (idle) {
        sald_job_reconcile(core, r->job_id);
    }
    run_all_free(r);
}

static void
run_all(SaldCore *core, const SalJob *job, GPtrArray *vms)
{
    g_autoptr(GTask) task = g_task_new(NULL, NULL, run_all_done, NULL);
    RunAll *r = g_new0(RunAll, 1);

    r->core = core;
    r->job_id = job->id;
    r->conns = g_ptr_array_new();
    r->domains = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < vms->len; i++) {
        const SalVm *vm = vms->pdata[i];
        SaldNode *node = sald_node_get(core, vm->node);

        virConnectRef(node->conn);
        g_ptr_array_add(r->conns, node->conn);
        g_ptr_array_add(r->domains, g_strdup(vm->domain));
    }
    sald_job_busy_add(core, job->id);
    g_task_set_task_data(task, r, NULL);
    g_task_run_in_thread(task, run_all_thread);
}

void
sald_job_reconcile_resuming(SaldCore *core, SalJob *job, GPtrArray *vms)
{
    gboolean all_loaded = TRUE;
    gboolean any_dead = FALSE;
    gboolean all_ready = TRUE;

    for (guint i = 0; i < vms->len; i++) {
        const SalVm *vm = vms->pdata[i];

        /* Suspended: the teardown of a failed redeploy is under way. */
        any_dead |= vm->state == SAL_VM_DEAD || vm->state == SAL_VM_SUSPENDED;
        all_loaded &= vm->state == SAL_VM_RUNNING;
        all_ready &= sald_node_ready(sald_node_get(core, vm->node));
    }
    if (any_dead) {
        /* Back to suspended: the loaded VMs go, the stored state stays. */
        gboolean refused = g_hash_table_remove(core->snap_refused, &job->id);
        g_autoptr(SalJob) fresh = NULL;
        g_autoptr(GError) error = NULL;

        /* snapshot_seq may have moved back (a refused snapshot). */
        fresh = sal_store_load_job(core->store, job->id, NULL, &error);
        if (fresh) {
            job->snapshot_seq = fresh->snapshot_seq;
        }
        if (job->snapshot_seq == 0) {
            sald_job_end(core, job, vms, SAL_JOB_FAILED,
                         refused ? "no usable snapshot left"
                                 : "cannot redeploy: no snapshot");
            sald_job_reconcile(core, job->id);
            return;
        }
        sald_job_save(core, job, vms);
        suspended_teardown(core, job, vms);
        return;
    }
    if (all_loaded && all_ready) {
        run_all(core, job, vms);
        return;
    }
    for (guint i = 0; i < vms->len; i++) {
        const SalVm *vm = vms->pdata[i];
        SaldNode *node = sald_node_get(core, vm->node);

        if (vm->state == SAL_VM_STARTING && sald_node_ready(node)) {
            vm_restore(core, node, job, vms, vm);
        }
    }
}
