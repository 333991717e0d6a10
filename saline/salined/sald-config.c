#include "sald-config.h"

#include <string.h>

#include "vc-config.h"

#define MAX_PATH_LEN 4096

static const VcConfigKey schema[] = {
    {"salined", "state-dir", VC_CONFIG_STRING, "/var/lib/saline"},
    {"salined", "socket", VC_CONFIG_STRING, "/run/saline/saline.sock"},
    {"salined", "node-timeout", VC_CONFIG_INT, "60", 1, 24 * 3600},
    {"salined", "output-size", VC_CONFIG_STRING, "64M"},
    {"salined", "virt-type", VC_CONFIG_STRING, "auto"},
    {"salined", "emulator", VC_CONFIG_STRING, NULL},
    {"snapshots", "store", VC_CONFIG_STRING, NULL},
    {"snapshots", "key-file", VC_CONFIG_STRING, "/etc/kget/site.key"},
    {"snapshots", "kget", VC_CONFIG_STRING, "kget"},
    {"snapshots", "interval", VC_CONFIG_INT, "600", SAL_MIN_SNAPSHOT_INTERVAL_S,
     SAL_MAX_SNAPSHOT_INTERVAL_S},
    {"snapshots", "keep", VC_CONFIG_INT, "3", 1, 1000},
    {"snapshots", "timeout", VC_CONFIG_INT, "600", 5, 24 * 3600},
    {"snapshots", "on-failure", VC_CONFIG_STRING, "keep"},
    {"snapshots", "resolver", VC_CONFIG_STRING, NULL},
    {"oar", "server", VC_CONFIG_STRING, NULL},
    {"oar", "command", VC_CONFIG_STRING, NULL},
    {"oar", "user", VC_CONFIG_STRING, "saline"},
    {"oar", "notify", VC_CONFIG_STRING, NULL},
    {"oar", "job-command", VC_CONFIG_STRING, "/usr/lib/saline/saline-oarjob"},
    {"oar", "checkpoint", VC_CONFIG_INT, "60", 1, 24 * 3600},
    {"oar", "signal", VC_CONFIG_INT, "12", 1, 64},
    {"oar", "poll", VC_CONFIG_INT, "5", 1, 3600},
    {"oar", "timeout", VC_CONFIG_INT, "30", 1, 3600},
    {"oar", "walltime-margin", VC_CONFIG_INT, "300", 0, 24 * 3600},
    {"site *", "network", VC_CONFIG_STRING, NULL, 0, 0, VC_CONFIG_REQUIRED},
    {"site *", "range", VC_CONFIG_STRING, NULL},
    {"site *", "gateway", VC_CONFIG_STRING, NULL},
    {"node *", "site", VC_CONFIG_STRING, NULL, 0, 0, VC_CONFIG_REQUIRED},
    {"node *", "uri", VC_CONFIG_STRING, NULL, 0, 0, VC_CONFIG_REQUIRED},
    {"node *", "cpus", VC_CONFIG_INT, NULL, 1, SAL_MAX_CPUS,
     VC_CONFIG_REQUIRED},
    {"node *", "memory", VC_CONFIG_STRING, NULL, 0, 0, VC_CONFIG_REQUIRED},
    {"node *", "bridge", VC_CONFIG_STRING, "br0"},
    {"node *", "pool-dir", VC_CONFIG_STRING, "/var/lib/saline/pool"},
    {"image *", "dir", VC_CONFIG_STRING, NULL, 0, 0, VC_CONFIG_REQUIRED},
};

/* In SaldVirtType order. */
static const char *const virt_types[] = {"auto", "kvm", "qemu", NULL};

static void
site_free(SaldSiteConf *site)
{
    if (site) {
        g_free(site->name);
        g_free(site->network);
        g_free(site->range);
        g_free(site->gateway);
        g_free(site);
    }
}

static void
node_free(SaldNodeConf *node)
{
    if (node) {
        sal_node_free(node->node);
        g_free(node->bridge);
        g_free(node->pool_dir);
        g_free(node);
    }
}

static void
oar_free(SaldOarConf *oar)
{
    if (oar) {
        g_strfreev(oar->command);
        g_free(oar->user);
        g_free(oar->notify_host);
        g_free(oar->job_command);
        g_free(oar);
    }
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SaldOarConf, oar_free)

static void
image_free(SaldImageConf *image)
{
    if (image) {
        g_free(image->name);
        g_free(image->dir);
        g_free(image);
    }
}

void
sald_config_free(SaldConfig *config)
{
    if (config) {
        g_free(config->state_dir);
        g_free(config->socket_path);
        g_free(config->emulator);
        g_free(config->kget_store);
        g_free(config->kget_key_file);
        g_free(config->kget_command);
        g_free(config->kget_resolver);
        oar_free(config->oar);
        g_clear_pointer(&config->sites, g_ptr_array_unref);
        g_clear_pointer(&config->nodes, g_ptr_array_unref);
        g_clear_pointer(&config->images, g_ptr_array_unref);
        g_free(config);
    }
}

/* A copy of @key, which must be an absolute path if it is set. */
static gboolean
get_path(VcConfig *vc, const char *group, const char *key, char **path,
         const char *origin, GError **error)
{
    const char *value = vc_config_get_string(vc, group, key);

    if (value && (!g_path_is_absolute(value) || strlen(value) > MAX_PATH_LEN)) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                    "%s: [%s] %s must be an absolute path", origin, group, key);
        return FALSE;
    }
    *path = g_strdup(value);
    return TRUE;
}

static gboolean
load_snapshots(VcConfig *vc, SaldConfig *config, const char *origin,
               GError **error)
{
    const char *g = "snapshots";
    const char *policy = vc_config_get_string(vc, g, "on-failure");
    const char *kget = vc_config_get_string(vc, g, "kget");

    if (!get_path(vc, g, "key-file", &config->kget_key_file, origin, error) ||
        !get_path(vc, g, "resolver", &config->kget_resolver, origin, error)) {
        return FALSE;
    }
    /* QEMU runs it through the shell on the nodes: no metacharacters. */
    if (strlen(kget) > MAX_PATH_LEN ||
        kget[strspn(kget, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                          "0123456789/._-")] != '\0') {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                    "%s: [%s] kget: '%s' is not a plain path", origin, g, kget);
        return FALSE;
    }
    if (!g_str_equal(policy, "keep") && !g_str_equal(policy, "kill")) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                    "%s: [%s] on-failure: '%s' is neither keep nor kill",
                    origin, g, policy);
        return FALSE;
    }
    config->kget_store = g_strdup(vc_config_get_string(vc, g, "store"));
    config->kget_command = g_strdup(kget);
    config->snapshot_interval_s = vc_config_get_int(vc, g, "interval");
    config->snapshot_keep = (guint)vc_config_get_int(vc, g, "keep");
    config->snapshot_timeout_s = (guint)vc_config_get_int(vc, g, "timeout");
    config->snapshot_failure_kills = g_str_equal(policy, "kill");
    return TRUE;
}

/* [oar]: OAR mode when server= or command= is set. */
static gboolean
load_oar(VcConfig *vc, SaldConfig *config, const char *origin, GError **error)
{
    const char *g = "oar";
    const char *server = vc_config_get_string(vc, g, "server");
    const char *command = vc_config_get_string(vc, g, "command");
    const char *user = vc_config_get_string(vc, g, "user");
    const char *notify = vc_config_get_string(vc, g, "notify");
    g_autoptr(SaldOarConf) oar = NULL;
    g_autoptr(GError) local = NULL;
    const char *colon;
    guint64 port = 0;

    if (!server && !command) {
        return TRUE;
    }
    oar = g_new0(SaldOarConf, 1);
    if (server && command) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                    "%s: [oar] server and command: set one of them", origin);
        return FALSE;
    }
    if (!sal_name_validate("[oar] user", user, error)) {
        g_prefix_error(error, "%s: ", origin);
        return FALSE;
    }
    if (command && !g_shell_parse_argv(command, NULL, &oar->command, &local)) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                    "%s: [oar] command: %s", origin, local->message);
        return FALSE;
    }
    if (server) {
        if (!sal_name_validate("[oar] server", server, error)) {
            g_prefix_error(error, "%s: ", origin);
            return FALSE;
        }
        oar->command = g_new0(char *, 5);
        oar->command[0] = g_strdup("ssh");
        oar->command[1] = g_strdup("-o");
        oar->command[2] = g_strdup("BatchMode=yes");
        oar->command[3] = g_strdup_printf("%s@%s", user, server);
    }
    colon = notify ? strrchr(notify, ':') : NULL;
    if (!colon || colon == notify ||
        !g_ascii_string_to_unsigned(colon + 1, 10, 1, 65535, &port, NULL)) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                    "%s: [oar] notify: '%s' is not ADDR:PORT (where the OAR "
                    "jobs' scripts reach salined)",
                    origin, notify ? notify : "");
        return FALSE;
    }
    oar->notify_host = g_strndup(notify, (gsize)(colon - notify));
    oar->notify_port = (guint16)port;
    oar->user = g_strdup(user);
    if (!get_path(vc, g, "job-command", &oar->job_command, origin, error)) {
        return FALSE;
    }
    oar->checkpoint_s = (guint)vc_config_get_int(vc, g, "checkpoint");
    oar->signal = (guint)vc_config_get_int(vc, g, "signal");
    oar->poll_s = (guint)vc_config_get_int(vc, g, "poll");
    oar->timeout_s = (guint)vc_config_get_int(vc, g, "timeout");
    oar->walltime_margin_s = (guint)vc_config_get_int(vc, g, "walltime-margin");
    config->oar = g_steal_pointer(&oar);
    return TRUE;
}

static gboolean
load_main(VcConfig *vc, SaldConfig *config, const char *origin, GError **error)
{
    const char *g = "salined";
    const char *virt = vc_config_get_string(vc, g, "virt-type");
    guint64 mib;

    if (!get_path(vc, g, "state-dir", &config->state_dir, origin, error) ||
        !get_path(vc, g, "socket", &config->socket_path, origin, error) ||
        !get_path(vc, g, "emulator", &config->emulator, origin, error)) {
        return FALSE;
    }
    config->node_timeout_s = vc_config_get_int(vc, g, "node-timeout");
    if (!sal_mem_parse(vc_config_get_string(vc, g, "output-size"), &mib,
                       error)) {
        g_prefix_error(error, "%s: [%s] output-size: ", origin, g);
        return FALSE;
    }
    if (mib > 4096) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                    "%s: [%s] output-size: at most 4G", origin, g);
        return FALSE;
    }
    config->output_bytes = mib << 20;
    for (guint i = 0; virt_types[i]; i++) {
        if (g_str_equal(virt, virt_types[i])) {
            config->virt_type = i;
            return TRUE;
        }
    }
    g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                "%s: [%s] virt-type '%s' is not auto, kvm or qemu", origin, g,
                virt);
    return FALSE;
}

static void
load_site(VcConfig *vc, const char *name, SaldConfig *config)
{
    g_autofree char *group = g_strconcat("site ", name, NULL);
    SaldSiteConf *site = g_new0(SaldSiteConf, 1);

    g_ptr_array_add(config->sites, site);
    site->name = g_strdup(name);
    site->network = g_strdup(vc_config_get_string(vc, group, "network"));
    site->range = g_strdup(vc_config_get_string(vc, group, "range"));
    site->gateway = g_strdup(vc_config_get_string(vc, group, "gateway"));
}

static gboolean
load_node(VcConfig *vc, const char *name, SaldConfig *config,
          const char *origin, GError **error)
{
    g_autofree char *group = g_strconcat("node ", name, NULL);
    const char *site = vc_config_get_string(vc, group, "site");
    guint64 mem_mib;
    SaldNodeConf *node;

    if (!sal_mem_parse(vc_config_get_string(vc, group, "memory"), &mem_mib,
                       error)) {
        g_prefix_error(error, "%s: [%s] memory: ", origin, group);
        return FALSE;
    }
    node = g_new0(SaldNodeConf, 1);
    g_ptr_array_add(config->nodes, node);
    node->node =
        sal_node_new(name, site, vc_config_get_string(vc, group, "uri"),
                     (guint)vc_config_get_int(vc, group, "cpus"), mem_mib);
    node->bridge = g_strdup(vc_config_get_string(vc, group, "bridge"));
    if (!sal_node_validate(node->node, error) ||
        !sal_name_validate("bridge", node->bridge, error)) {
        g_prefix_error(error, "%s: [%s] ", origin, group);
        return FALSE;
    }
    if (!g_strv_contains(vc_config_get_names(vc, "site"), site)) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                    "%s: node '%s' is in site '%s', which has no [site %s]",
                    origin, name, site, site);
        return FALSE;
    }
    return get_path(vc, group, "pool-dir", &node->pool_dir, origin, error);
}

static gboolean
load_image(VcConfig *vc, const char *name, SaldConfig *config,
           const char *origin, GError **error)
{
    g_autofree char *group = g_strconcat("image ", name, NULL);
    SaldImageConf *image = g_new0(SaldImageConf, 1);

    g_ptr_array_add(config->images, image);
    image->name = g_strdup(name);
    return get_path(vc, group, "dir", &image->dir, origin, error);
}

static gint
image_cmp(gconstpointer a, gconstpointer b)
{
    return g_strcmp0((*(SaldImageConf *const *)a)->name,
                     (*(SaldImageConf *const *)b)->name);
}

/* What salined makes of a loaded @vc, with the checks across keys and
 * groups that the schema cannot express. */
static SaldConfig *
config_from(VcConfig *vc, const char *origin, GError **error)
{
    g_autoptr(SaldConfig) config = g_new0(SaldConfig, 1);
    const char *const *names;

    config->sites = g_ptr_array_new_with_free_func((GDestroyNotify)site_free);
    config->nodes = g_ptr_array_new_with_free_func((GDestroyNotify)node_free);
    config->images = g_ptr_array_new_with_free_func((GDestroyNotify)image_free);
    if (!load_main(vc, config, origin, error) ||
        !load_snapshots(vc, config, origin, error) ||
        !load_oar(vc, config, origin, error)) {
        return NULL;
    }
    for (names = vc_config_get_names(vc, "site"); *names; names++) {
        load_site(vc, *names, config);
    }
    for (names = vc_config_get_names(vc, "node"); *names; names++) {
        if (!load_node(vc, *names, config, origin, error)) {
            return NULL;
        }
    }
    for (names = vc_config_get_names(vc, "image"); *names; names++) {
        if (!load_image(vc, *names, config, origin, error)) {
            return NULL;
        }
    }
    g_ptr_array_sort(config->images, image_cmp);
    return g_steal_pointer(&config);
}

/* salined and its tests know configuration errors as SAL_ERROR_INVALID,
 * whatever domain vc-config uses. */
static SaldConfig *
config_error(const GError *local, GError **error)
{
    g_set_error_literal(error, SAL_ERROR, SAL_ERROR_INVALID, local->message);
    return NULL;
}

SaldConfig *
sald_config_load_data(const char *data, const char *origin, GError **error)
{
    g_autoptr(VcConfig) vc = vc_config_new(schema, G_N_ELEMENTS(schema));
    g_autoptr(GError) local = NULL;

    if (!vc_config_load_data(vc, data, strlen(data), origin, &local)) {
        return config_error(local, error);
    }
    return config_from(vc, origin, error);
}

SaldConfig *
sald_config_load(const char *path, GError **error)
{
    g_autoptr(VcConfig) vc = vc_config_new(schema, G_N_ELEMENTS(schema));
    g_autoptr(GError) local = NULL;

    if (path && !vc_config_load_file(vc, path, FALSE, &local)) {
        return config_error(local, error);
    }
    return config_from(vc, path ? path : "defaults", error);
}

const SaldNodeConf *
sald_config_node(const SaldConfig *config, const char *name)
{
    for (guint i = 0; i < config->nodes->len; i++) {
        const SaldNodeConf *node = config->nodes->pdata[i];

        if (g_str_equal(node->node->name, name)) {
            return node;
        }
    }
    return NULL;
}

const SaldImageConf *
sald_config_image(const SaldConfig *config, const char *name)
{
    for (guint i = 0; i < config->images->len; i++) {
        const SaldImageConf *image = config->images->pdata[i];

        if (g_str_equal(image->name, name)) {
            return image;
        }
    }
    return NULL;
}

GPtrArray *
sald_config_sal_nodes(const SaldConfig *config)
{
    GPtrArray *nodes = g_ptr_array_new();

    for (guint i = 0; i < config->nodes->len; i++) {
        g_ptr_array_add(nodes,
                        ((SaldNodeConf *)config->nodes->pdata[i])->node);
    }
    return nodes;
}
