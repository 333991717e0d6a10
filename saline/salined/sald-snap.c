#include "sald-snap.h"

#include <json-glib/json-glib.h>
#include <libvirt/libvirt-qemu.h>
#include <libvirt/virterror.h>

#define JOB_VDA "kget-vda"
#define JOB_VDB "kget-vdb"
#define POLL_US (100 * 1000)

static virDomainPtr
domain_get(virConnectPtr conn, const char *name, GError **error)
{
    virDomainPtr dom = virDomainLookupByName(conn, name);

    if (!dom) {
        sald_virt_error(error, "cannot look up domain '%s'", name);
    }
    return dom;
}

/* Runs QMP command @cmd (a JSON object) on @dom; its "return" member in
 * @ret if not NULL. */
static gboolean
qmp(virDomainPtr dom, JsonNode *cmd, JsonNode **ret, GError **error)
{
    g_autofree char *text = json_to_string(cmd, FALSE);
    g_autofree char *reply_text = NULL;
    g_autoptr(JsonParser) parser = json_parser_new();
    char *reply = NULL;
    JsonObject *obj;

    if (virDomainQemuMonitorCommand(dom, text, &reply, 0) < 0) {
        return sald_virt_error(error, "QMP command failed on '%s'",
                               virDomainGetName(dom));
    }
    reply_text = g_strdup(reply);
    free(reply);
    if (!json_parser_load_from_data(parser, reply_text, -1, error)) {
        g_prefix_error(error, "bad QMP reply from '%s': ",
                       virDomainGetName(dom));
        return FALSE;
    }
    obj = json_node_get_object(json_parser_get_root(parser));
    if (!obj) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_NODE,
                    "bad QMP reply from '%s'", virDomainGetName(dom));
        return FALSE;
    }
    if (json_object_has_member(obj, "error")) {
        JsonObject *e = json_object_get_object_member(obj, "error");

        g_set_error(error, SAL_ERROR, SAL_ERROR_NODE, "QEMU of '%s': %s",
                    virDomainGetName(dom),
                    e ? json_object_get_string_member_with_default(
                            e, "desc", "error")
                      : "error");
        return FALSE;
    }
    if (ret) {
        JsonNode *r = json_object_get_member(obj, "return");

        *ret = r ? json_node_copy(r) : json_node_new(JSON_NODE_NULL);
    }
    return TRUE;
}

/* A QMP command: {"execute": @name, "arguments": @args} (args taken). */
static JsonNode *
cmd_new(const char *name, JsonObject *args)
{
    JsonObject *obj = json_object_new();
    JsonNode *node = json_node_new(JSON_NODE_OBJECT);

    json_object_set_string_member(obj, "execute", name);
    if (args) {
        json_object_set_object_member(obj, "arguments", args);
    }
    json_node_take_object(node, obj);
    return node;
}

static gboolean
qmp_do(virDomainPtr dom, const char *name, JsonObject *args, JsonNode **ret,
       GError **error)
{
    g_autoptr(JsonNode) cmd = cmd_new(name, args);

    return qmp(dom, cmd, ret, error);
}

/* The block node and the file of the disk whose file name ends in
 * @suffix (libvirt names them; the overlay ends in .qcow2, the output
 * drive in .out). */
typedef struct {
    char *node;
    char *file;
    char *backing;
    gint64 size;
} Disk;

static void
disk_clear(Disk *d)
{
    g_clear_pointer(&d->node, g_free);
    g_clear_pointer(&d->file, g_free);
    g_clear_pointer(&d->backing, g_free);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(Disk, disk_clear)

static gboolean
disk_find(virDomainPtr dom, const char *suffix, Disk *disk, GError **error)
{
    g_autoptr(JsonNode) ret = NULL;
    JsonArray *list;

    if (!qmp_do(dom, "query-block", NULL, &ret, error)) {
        return FALSE;
    }
    list = JSON_NODE_HOLDS_ARRAY(ret) ? json_node_get_array(ret) : NULL;
    for (guint i = 0; list && i < json_array_get_length(list); i++) {
        JsonObject *b = json_array_get_object_element(list, i);
        JsonObject *in = b && json_object_has_member(b, "inserted")
                             ? json_object_get_object_member(b, "inserted")
                             : NULL;
        JsonObject *img = in && json_object_has_member(in, "image")
                              ? json_object_get_object_member(in, "image")
                              : NULL;
        const char *file =
            in ? json_object_get_string_member_with_default(in, "file", NULL)
               : NULL;

        if (!file || !g_str_has_suffix(file, suffix) || !img) {
            continue;
        }
        disk->node = g_strdup(
            json_object_get_string_member_with_default(in, "node-name", ""));
        disk->file = g_strdup(file);
        disk->backing = g_strdup(json_object_get_string_member_with_default(
            img, "backing-filename", NULL));
        disk->size = json_object_get_int_member_with_default(
            img, "virtual-size", 0);
        return TRUE;
    }
    g_set_error(error, SAL_ERROR, SAL_ERROR_NODE,
                "domain '%s' has no disk '*%s'", virDomainGetName(dom),
                suffix);
    return FALSE;
}

static char *
copy_name(const char *domain, const char *suffix)
{
    return g_strconcat(domain, suffix, NULL);
}

static JsonObject *
file_node(const char *driver, const char *name, const char *path,
          gboolean no_backing)
{
    JsonObject *args = json_object_new();
    JsonObject *file = json_object_new();

    json_object_set_string_member(file, "driver", "file");
    json_object_set_string_member(file, "filename", path);
    json_object_set_string_member(args, "driver", driver);
    json_object_set_string_member(args, "node-name", name);
    json_object_set_object_member(args, "file", file);
    if (no_backing) {
        json_object_set_null_member(args, "backing");
    }
    return args;
}

gboolean
sald_snap_prepare(virConnectPtr conn, const char *domain,
                  const char *pool_dir, char **vda_node, char **vdb_node,
                  GError **error)
{
    g_auto(Disk) vda = {0};
    g_auto(Disk) vdb = {0};
    g_autofree char *vda_name = copy_name(domain, SALD_COPY_VDA_SUFFIX);
    g_autofree char *vdb_name = copy_name(domain, SALD_COPY_VDB_SUFFIX);
    g_autofree char *vda_path = NULL;
    g_autofree char *vdb_path = NULL;
    g_autofree char *xml = NULL;
    g_autofree char *backing = NULL;
    virStoragePoolPtr pool = NULL;
    virDomainPtr dom;
    JsonObject *args;
    JsonArray *caps;
    JsonObject *cap;
    gboolean ok = FALSE;

    dom = domain_get(conn, domain, error);
    if (!dom) {
        return FALSE;
    }
    sald_snap_abort(conn, domain); /* a leftover of an earlier attempt */
    if (!disk_find(dom, ".qcow2", &vda, error) ||
        !disk_find(dom, ".out", &vdb, error)) {
        goto out;
    }
    if (!vda.backing) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_NODE,
                    "the overlay of '%s' has no backing disk", domain);
        goto out;
    }
    pool = sald_virt_pool(conn, pool_dir, error);
    if (!pool) {
        goto out;
    }
    /* The overlay's copy is an overlay of the same image disk: a block
     * backup with sync=top fills it with what the guest wrote only. */
    backing = g_markup_escape_text(vda.backing, -1);
    xml = g_strdup_printf(
        "<volume><name>%s</name><capacity unit='bytes'>0</capacity>"
        "<target><format type='qcow2'/></target>"
        "<backingStore><path>%s</path><format type='qcow2'/></backingStore>"
        "</volume>",
        vda_name, backing);
    vda_path = sald_virt_volume_create(pool, vda_name, xml, error);
    if (!vda_path) {
        goto out;
    }
    g_free(xml);
    xml = g_strdup_printf(
        "<volume><name>%s</name>"
        "<capacity unit='bytes'>%" G_GINT64_FORMAT "</capacity>"
        "<allocation>0</allocation>"
        "<target><format type='raw'/></target></volume>",
        vdb_name, vdb.size);
    vdb_path = sald_virt_volume_create(pool, vdb_name, xml, error);
    if (!vdb_path ||
        !qmp_do(dom, "blockdev-add",
                file_node("qcow2", JOB_VDA, vda_path, TRUE), NULL, error) ||
        !qmp_do(dom, "blockdev-add",
                file_node("raw", JOB_VDB, vdb_path, FALSE), NULL, error)) {
        goto out;
    }
    caps = json_array_new();
    cap = json_object_new();
    json_object_set_string_member(cap, "capability", "background-snapshot");
    json_object_set_boolean_member(cap, "state", TRUE);
    json_array_add_object_element(caps, cap);
    args = json_object_new();
    json_object_set_array_member(args, "capabilities", caps);
    if (!qmp_do(dom, "migrate-set-capabilities", args, NULL, error)) {
        goto out;
    }
    /* QEMU's default is 32 MiB/s; the store paces the senders itself. */
    args = json_object_new();
    json_object_set_int_member(args, "max-bandwidth", G_GINT64_CONSTANT(1) << 40);
    ok = qmp_do(dom, "migrate-set-parameters", args, NULL, error);
    if (ok) {
        *vda_node = g_strdup(vda.node);
        *vdb_node = g_strdup(vdb.node);
    }
out:
    if (pool) {
        virStoragePoolFree(pool);
    }
    virDomainFree(dom);
    if (!ok) {
        sald_snap_abort(conn, domain);
    }
    return ok;
}

gboolean
sald_snap_pause(virConnectPtr conn, const char *domain, GError **error)
{
    virDomainPtr dom = domain_get(conn, domain, error);
    gboolean ok;

    if (!dom) {
        return FALSE;
    }
    ok = virDomainSuspend(dom) == 0 ||
         sald_virt_error(error, "cannot pause '%s'", domain);
    virDomainFree(dom);
    return ok;
}

static JsonObject *
backup_action(const char *job, const char *device, const char *sync)
{
    JsonObject *action = json_object_new();
    JsonObject *data = json_object_new();

    json_object_set_string_member(data, "job-id", job);
    json_object_set_string_member(data, "device", device);
    json_object_set_string_member(data, "target", job);
    json_object_set_string_member(data, "sync", sync);
    json_object_set_boolean_member(data, "auto-dismiss", FALSE);
    json_object_set_string_member(action, "type", "blockdev-backup");
    json_object_set_object_member(action, "data", data);
    return action;
}

gboolean
sald_snap_start(virConnectPtr conn, const char *domain, const char *vda_node,
                const char *vdb_node, const char *vmstate_cmd, GError **error)
{
    g_autofree char *uri = g_strconcat("exec:", vmstate_cmd, NULL);
    virDomainPtr dom = domain_get(conn, domain, error);
    JsonObject *args;
    JsonArray *actions;
    gboolean ok = FALSE;

    if (!dom) {
        return FALSE;
    }
    /* One transaction: both disks as of the same instant. */
    actions = json_array_new();
    json_array_add_object_element(actions,
                                  backup_action(JOB_VDA, vda_node, "top"));
    json_array_add_object_element(actions,
                                  backup_action(JOB_VDB, vdb_node, "full"));
    args = json_object_new();
    json_object_set_array_member(args, "actions", actions);
    if (!qmp_do(dom, "transaction", args, NULL, error)) {
        goto out;
    }
    args = json_object_new();
    json_object_set_string_member(args, "uri", uri);
    ok = qmp_do(dom, "migrate", args, NULL, error);
out:
    virDomainFree(dom);
    return ok;
}

/* The migration's status and, once completed, its figures. */
static gboolean
migrate_status(virDomainPtr dom, char **status, SaldSnapStats *stats,
               GError **error)
{
    g_autoptr(JsonNode) ret = NULL;
    JsonObject *o;

    if (!qmp_do(dom, "query-migrate", NULL, &ret, error)) {
        return FALSE;
    }
    o = JSON_NODE_HOLDS_OBJECT(ret) ? json_node_get_object(ret) : NULL;
    *status = g_strdup(
        o ? json_object_get_string_member_with_default(o, "status", "none")
          : "none");
    if (o && stats) {
        JsonObject *ram = json_object_has_member(o, "ram")
                              ? json_object_get_object_member(o, "ram")
                              : NULL;

        stats->downtime_ms =
            json_object_get_int_member_with_default(o, "downtime", 0);
        stats->total_ms =
            json_object_get_int_member_with_default(o, "total-time", 0);
        stats->ram_bytes =
            ram ? (guint64)json_object_get_int_member_with_default(
                      ram, "transferred", 0)
                : 0;
    }
    return TRUE;
}

/* Concluded kget backup jobs are dismissed; FALSE with @error when one
 * failed. *@running: how many still run. */
static gboolean
jobs_check(virDomainPtr dom, guint *running, GError **error)
{
    g_autoptr(JsonNode) ret = NULL;
    JsonArray *list;

    *running = 0;
    if (!qmp_do(dom, "query-jobs", NULL, &ret, error)) {
        return FALSE;
    }
    list = JSON_NODE_HOLDS_ARRAY(ret) ? json_node_get_array(ret) : NULL;
    for (guint i = 0; list && i < json_array_get_length(list); i++) {
        JsonObject *j = json_array_get_object_element(list, i);
        const char *id = json_object_get_string_member_with_default(j, "id", "");
        const char *st =
            json_object_get_string_member_with_default(j, "status", "");

        if (!g_str_has_prefix(id, "kget-")) {
            continue;
        }
        if (!g_str_equal(st, "concluded")) {
            (*running)++;
            continue;
        }
        if (json_object_has_member(j, "error")) {
            g_set_error(error, SAL_ERROR, SAL_ERROR_NODE,
                        "disk copy '%s' of '%s' failed: %s", id,
                        virDomainGetName(dom),
                        json_object_get_string_member_with_default(j, "error",
                                                                   "?"));
            return FALSE;
        }
        {
            JsonObject *args = json_object_new();

            json_object_set_string_member(args, "id", id);
            if (!qmp_do(dom, "job-dismiss", args, NULL, error)) {
                return FALSE;
            }
        }
    }
    return TRUE;
}

static void
blockdev_del(virDomainPtr dom, const char *node)
{
    JsonObject *args = json_object_new();

    json_object_set_string_member(args, "node-name", node);
    qmp_do(dom, "blockdev-del", args, NULL, NULL);
}

gboolean
sald_snap_wait(virConnectPtr conn, const char *domain, guint timeout_s,
               SaldSnapStats *stats, GError **error)
{
    virDomainPtr dom = domain_get(conn, domain, error);
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_s * G_USEC_PER_SEC;
    gboolean migrated = FALSE;
    gboolean ok = FALSE;
    guint running = 1;

    if (!dom) {
        return FALSE;
    }
    for (;;) {
        if (!migrated) {
            g_autofree char *status = NULL;

            if (!migrate_status(dom, &status, stats, error)) {
                break;
            }
            if (g_str_equal(status, "completed")) {
                migrated = TRUE;
            } else if (g_str_equal(status, "failed") ||
                       g_str_equal(status, "cancelled") ||
                       g_str_equal(status, "none")) {
                g_set_error(error, SAL_ERROR, SAL_ERROR_NODE,
                            "snapshot of '%s' %s (the store or the node's "
                            "kget failed; see the domain's log)",
                            domain, status);
                break;
            }
        }
        if (running > 0 && !jobs_check(dom, &running, error)) {
            break;
        }
        if (migrated && running == 0) {
            ok = TRUE;
            break;
        }
        if (g_get_monotonic_time() > deadline) {
            g_set_error(error, SAL_ERROR, SAL_ERROR_NODE,
                        "snapshot of '%s' not done after %u s", domain,
                        timeout_s);
            break;
        }
        g_usleep(POLL_US);
    }
    if (ok) {
        blockdev_del(dom, JOB_VDA);
        blockdev_del(dom, JOB_VDB);
    }
    virDomainFree(dom);
    if (!ok) {
        sald_snap_abort(conn, domain);
    }
    return ok;
}

void
sald_snap_abort(virConnectPtr conn, const char *domain)
{
    virDomainPtr dom = virDomainLookupByName(conn, domain);
    virDomainInfo info;

    if (dom) {
        g_autoptr(JsonNode) ret = NULL;
        const char *jobs[] = {JOB_VDA, JOB_VDB};

        qmp_do(dom, "migrate_cancel", NULL, NULL, NULL);
        for (guint i = 0; i < G_N_ELEMENTS(jobs); i++) {
            JsonObject *args = json_object_new();

            json_object_set_string_member(args, "id", jobs[i]);
            qmp_do(dom, "job-cancel", args, NULL, NULL);
            args = json_object_new();
            json_object_set_string_member(args, "id", jobs[i]);
            qmp_do(dom, "job-dismiss", args, NULL, NULL);
            blockdev_del(dom, jobs[i]);
        }
        /* Never leave a job's guest paused behind a failed snapshot. */
        if (virDomainGetInfo(dom, &info) == 0 &&
            info.state == VIR_DOMAIN_PAUSED) {
            virDomainResume(dom);
        }
        virDomainFree(dom);
    }
    sald_snap_drop_copies(conn, domain, NULL);
}

gboolean
sald_snap_read_copies(virConnectPtr conn, const char *domain, guint64 max,
                      GBytes **vda, GBytes **vdb, GError **error)
{
    const char *suffixes[] = {SALD_COPY_VDA_SUFFIX, SALD_COPY_VDB_SUFFIX};
    GBytes **out[] = {vda, vdb};
    virStoragePoolPtr pool = virStoragePoolLookupByName(conn, SALD_POOL_NAME);
    gboolean ok = TRUE;

    if (!pool) {
        return sald_virt_error(error, "cannot look up storage pool '%s'",
                               SALD_POOL_NAME);
    }
    virStoragePoolRefresh(pool, 0);
    for (guint i = 0; ok && i < G_N_ELEMENTS(suffixes); i++) {
        g_autofree char *name = copy_name(domain, suffixes[i]);
        virStorageVolPtr vol = virStorageVolLookupByName(pool, name);

        if (!vol) {
            ok = sald_virt_error(error, "cannot find volume '%s'", name);
            break;
        }
        ok = sald_virt_volume_read_all(conn, vol, name, max, out[i], error);
        virStorageVolFree(vol);
    }
    virStoragePoolFree(pool);
    return ok;
}

gboolean
sald_snap_drop_copies(virConnectPtr conn, const char *domain, GError **error)
{
    virStoragePoolPtr pool = virStoragePoolLookupByName(conn, SALD_POOL_NAME);
    g_autofree char *vda = copy_name(domain, SALD_COPY_VDA_SUFFIX);
    g_autofree char *vdb = copy_name(domain, SALD_COPY_VDB_SUFFIX);
    gboolean ok;

    if (!pool) {
        return TRUE;
    }
    ok = sald_virt_volume_delete(pool, vda, error) &&
         sald_virt_volume_delete(pool, vdb, error);
    virStoragePoolFree(pool);
    return ok;
}

/* The incoming migration of @dom is complete. */
static gboolean
loaded(virDomainPtr dom)
{
    g_autofree char *status = NULL;

    return migrate_status(dom, &status, NULL, NULL) &&
           g_str_equal(status, "completed");
}

gboolean
sald_snap_restore(virConnectPtr conn, const SaldVmSpec *spec,
                  guint timeout_s, GError **error)
{
    g_autofree char *uri = g_strconcat("exec:", spec->incoming, NULL);
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_s * G_USEC_PER_SEC;
    virDomainPtr dom = virDomainLookupByName(conn, spec->domain);
    JsonObject *args;
    gboolean ok = FALSE;

    if (dom && virDomainIsActive(dom) == 1) {
        if (loaded(dom)) {
            virDomainFree(dom);
            return TRUE;
        }
        /* Cut short while loading: start again. */
        if (virDomainDestroy(dom) < 0) {
            sald_virt_error(error, "cannot destroy domain '%s'", spec->domain);
            virDomainFree(dom);
            return FALSE;
        }
    }
    if (dom) {
        virDomainFree(dom);
    }
    if (!sald_virt_create(conn, spec, error)) {
        return FALSE;
    }
    dom = domain_get(conn, spec->domain, error);
    if (!dom) {
        return FALSE;
    }
    args = json_object_new();
    json_object_set_string_member(args, "uri", uri);
    if (!qmp_do(dom, "migrate-incoming", args, NULL, error)) {
        goto out;
    }
    for (;;) {
        g_autofree char *status = NULL;

        if (!migrate_status(dom, &status, NULL, error)) {
            goto out;
        }
        if (g_str_equal(status, "completed")) {
            break;
        }
        if (g_str_equal(status, "failed") || g_str_equal(status, "cancelled")) {
            g_set_error(error, SAL_ERROR, SAL_ERROR_NODE,
                        "loading '%s' from its snapshot %s (see the "
                        "domain's log)",
                        spec->domain, status);
            goto out;
        }
        if (g_get_monotonic_time() > deadline) {
            g_set_error(error, SAL_ERROR, SAL_ERROR_NODE,
                        "loading '%s' not done after %u s", spec->domain,
                        timeout_s);
            goto out;
        }
        g_usleep(POLL_US);
    }
    ok = TRUE;
out:
    if (!ok) {
        virDomainDestroy(dom);
    }
    virDomainFree(dom);
    return ok;
}

gboolean
sald_snap_run(virConnectPtr conn, const char *domain, GError **error)
{
    virDomainPtr dom = domain_get(conn, domain, error);
    virDomainInfo info;
    gboolean ok = TRUE;

    if (!dom) {
        return FALSE;
    }
    if (virDomainGetInfo(dom, &info) < 0) {
        ok = sald_virt_error(error, "cannot get the state of '%s'", domain);
    } else if (info.state == VIR_DOMAIN_PAUSED && virDomainResume(dom) < 0) {
        ok = sald_virt_error(error, "cannot resume '%s'", domain);
    }
    virDomainFree(dom);
    return ok;
}
