#include "sald-config.h"

#include <string.h>

#define DEFAULT_STATE_DIR "/var/lib/saline"
#define DEFAULT_SOCKET "/run/saline/saline.sock"
#define DEFAULT_POOL_DIR "/var/lib/saline/pool"
#define MAX_PATH_LEN 4096

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
        g_clear_pointer(&config->sites, g_ptr_array_unref);
        g_clear_pointer(&config->nodes, g_ptr_array_unref);
        g_clear_pointer(&config->images, g_ptr_array_unref);
        g_free(config);
    }
}

static SaldConfig *
config_new(void)
{
    SaldConfig *config = g_new0(SaldConfig, 1);

    config->state_dir = g_strdup(DEFAULT_STATE_DIR);
    config->socket_path = g_strdup(DEFAULT_SOCKET);
    config->node_timeout_s = 60;
    config->output_bytes = G_GUINT64_CONSTANT(64) << 20;
    config->virt_type = SALD_VIRT_AUTO;
    config->sites = g_ptr_array_new_with_free_func((GDestroyNotify)site_free);
    config->nodes = g_ptr_array_new_with_free_func((GDestroyNotify)node_free);
    config->images = g_ptr_array_new_with_free_func((GDestroyNotify)image_free);
    return config;
}

/* Every key of @group is one of @known (NULL-terminated). */
static gboolean
check_keys(GKeyFile *kf, const char *group, const char *const *known,
           const char *origin, GError **error)
{
    g_auto(GStrv) keys = g_key_file_get_keys(kf, group, NULL, NULL);

    for (guint i = 0; keys && keys[i]; i++) {
        if (!g_strv_contains(known, keys[i])) {
            g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                        "%s: unknown key '%s' in group [%s]", origin, keys[i],
                        group);
            return FALSE;
        }
    }
    return TRUE;
}

/* The value of @key, or NULL (and no error) if it is absent. */
static char *
get_opt(GKeyFile *kf, const char *group, const char *key)
{
    char *value = g_key_file_get_string(kf, group, key, NULL);

    if (value) {
        g_strstrip(value);
    }
    return value;
}

static char *
get_required(GKeyFile *kf, const char *group, const char *key,
             const char *origin, GError **error)
{
    char *value = get_opt(kf, group, key);

    if (!value || !*value) {
        g_free(value);
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                    "%s: [%s] needs '%s'", origin, group, key);
        return NULL;
    }
    return value;
}

static gboolean
get_path(GKeyFile *kf, const char *group, const char *key, char **path,
         const char *origin, GError **error)
{
    g_autofree char *value = get_opt(kf, group, key);

    if (!value) {
        return TRUE;
    }
    if (!g_path_is_absolute(value) || strlen(value) > MAX_PATH_LEN) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                    "%s: [%s] %s must be an absolute path", origin, group, key);
        return FALSE;
    }
    g_free(*path);
    *path = g_steal_pointer(&value);
    return TRUE;
}

static gboolean
get_int(GKeyFile *kf, const char *group, const char *key, gint64 min,
        gint64 max, gint64 *out, const char *origin, GError **error)
{
    g_autofree char *value = get_opt(kf, group, key);
    g_autoptr(GError) local = NULL;
    gint64 n;

    if (!value) {
        return TRUE;
    }
    if (!g_ascii_string_to_signed(value, 10, min, max, &n, &local)) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID, "%s: [%s] %s: %s",
                    origin, group, key, local->message);
        return FALSE;
    }
    *out = n;
    return TRUE;
}

static gboolean
load_main(GKeyFile *kf, SaldConfig *config, const char *origin, GError **error)
{
    static const char *const known[] = {"state-dir", "socket", "node-timeout",
                                        "output-size", "virt-type", "emulator",
                                        NULL};
    const char *g = "salined";
    g_autofree char *size = NULL;
    g_autofree char *virt = NULL;

    if (!g_key_file_has_group(kf, g)) {
        return TRUE;
    }
    if (!check_keys(kf, g, known, origin, error) ||
        !get_path(kf, g, "state-dir", &config->state_dir, origin, error) ||
        !get_path(kf, g, "socket", &config->socket_path, origin, error) ||
        !get_path(kf, g, "emulator", &config->emulator, origin, error) ||
        !get_int(kf, g, "node-timeout", 1, 24 * 3600, &config->node_timeout_s,
                 origin, error)) {
        return FALSE;
    }
    size = get_opt(kf, g, "output-size");
    if (size) {
        guint64 mib;

        if (!sal_mem_parse(size, &mib, error)) {
            g_prefix_error(error, "%s: [%s] output-size: ", origin, g);
            return FALSE;
        }
        if (mib > 4096) {
            g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                        "%s: [%s] output-size: at most 4G", origin, g);
            return FALSE;
        }
        config->output_bytes = mib << 20;
    }
    virt = get_opt(kf, g, "virt-type");
    if (virt) {
        if (g_str_equal(virt, "auto")) {
            config->virt_type = SALD_VIRT_AUTO;
        } else if (g_str_equal(virt, "kvm")) {
            config->virt_type = SALD_VIRT_KVM;
        } else if (g_str_equal(virt, "qemu")) {
            config->virt_type = SALD_VIRT_QEMU;
        } else {
            g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                        "%s: [%s] virt-type '%s' is not auto, kvm or qemu",
                        origin, g, virt);
            return FALSE;
        }
    }
    return TRUE;
}

static gboolean
load_site(GKeyFile *kf, const char *group, const char *name, SaldConfig *config,
          const char *origin, GError **error)
{
    static const char *const known[] = {"network", "range", "gateway", NULL};
    SaldSiteConf *site;

    if (!check_keys(kf, group, known, origin, error)) {
        return FALSE;
    }
    site = g_new0(SaldSiteConf, 1);
    g_ptr_array_add(config->sites, site);
    site->name = g_strdup(name);
    site->network = get_required(kf, group, "network", origin, error);
    site->range = get_opt(kf, group, "range");
    site->gateway = get_opt(kf, group, "gateway");
    return site->network != NULL;
}

static gboolean
load_node(GKeyFile *kf, const char *group, const char *name, SaldConfig *config,
          const char *origin, GError **error)
{
    static const char *const known[] = {"site",   "uri",      "cpus", "memory",
                                        "bridge", "pool-dir", NULL};
    g_autofree char *site = NULL;
    g_autofree char *uri = NULL;
    g_autofree char *memory = NULL;
    gint64 cpus = 0;
    guint64 mem_mib = 0;
    SaldNodeConf *node;

    if (!check_keys(kf, group, known, origin, error) ||
        !(site = get_required(kf, group, "site", origin, error)) ||
        !(uri = get_required(kf, group, "uri", origin, error)) ||
        !(memory = get_required(kf, group, "memory", origin, error))) {
        return FALSE;
    }
    if (!g_key_file_has_key(kf, group, "cpus", NULL)) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                    "%s: [%s] needs 'cpus'", origin, group);
        return FALSE;
    }
    if (!get_int(kf, group, "cpus", 1, SAL_MAX_CPUS, &cpus, origin, error)) {
        return FALSE;
    }
    if (!sal_mem_parse(memory, &mem_mib, error)) {
        g_prefix_error(error, "%s: [%s] memory: ", origin, group);
        return FALSE;
    }
    node = g_new0(SaldNodeConf, 1);
    g_ptr_array_add(config->nodes, node);
    node->node = sal_node_new(name, site, uri, (guint)cpus, mem_mib);
    node->bridge = get_opt(kf, group, "bridge");
    if (!node->bridge) {
        node->bridge = g_strdup("br0");
    }
    node->pool_dir = g_strdup(DEFAULT_POOL_DIR);
    if (!sal_node_validate(node->node, error) ||
        !sal_name_validate("bridge", node->bridge, error) ||
        !get_path(kf, group, "pool-dir", &node->pool_dir, origin, error)) {
        g_prefix_error(error, "%s: [%s] ", origin, group);
        return FALSE;
    }
    return TRUE;
}

static gboolean
load_image(GKeyFile *kf, const char *group, const char *name,
           SaldConfig *config, const char *origin, GError **error)
{
    static const char *const known[] = {"dir", NULL};
    SaldImageConf *image;

    if (!check_keys(kf, group, known, origin, error)) {
        return FALSE;
    }
    image = g_new0(SaldImageConf, 1);
    g_ptr_array_add(config->images, image);
    image->name = g_strdup(name);
    if (!g_key_file_has_key(kf, group, "dir", NULL)) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                    "%s: [%s] needs 'dir'", origin, group);
        return FALSE;
    }
    return get_path(kf, group, "dir", &image->dir, origin, error);
}

static gint
image_cmp(gconstpointer a, gconstpointer b)
{
    return g_strcmp0((*(SaldImageConf *const *)a)->name,
                     (*(SaldImageConf *const *)b)->name);
}

static gboolean
check_config(SaldConfig *config, const char *origin, GError **error)
{
    for (guint i = 0; i < config->nodes->len; i++) {
        const SaldNodeConf *node = config->nodes->pdata[i];
        gboolean found = FALSE;

        for (guint j = 0; j < config->sites->len && !found; j++) {
            found = g_str_equal(
                ((SaldSiteConf *)config->sites->pdata[j])->name,
                node->node->site);
        }
        if (!found) {
            g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                        "%s: node '%s' is in site '%s', which has no [site %s]",
                        origin, node->node->name, node->node->site,
                        node->node->site);
            return FALSE;
        }
    }
    g_ptr_array_sort(config->images, image_cmp);
    return TRUE;
}

SaldConfig *
sald_config_load_data(const char *data, const char *origin, GError **error)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autoptr(SaldConfig) config = config_new();
    g_auto(GStrv) groups = NULL;
    g_autoptr(GError) local = NULL;

    if (!g_key_file_load_from_data(kf, data, -1, G_KEY_FILE_NONE, &local)) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID, "%s: %s", origin,
                    local->message);
        return NULL;
    }
    if (!load_main(kf, config, origin, error)) {
        return NULL;
    }
    groups = g_key_file_get_groups(kf, NULL);
    for (guint i = 0; groups[i]; i++) {
        const char *g = groups[i];
        const char *name = strchr(g, ' ');
        gboolean ok;

        if (g_str_equal(g, "salined")) {
            continue;
        }
        if (!name) {
            g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                        "%s: unknown group [%s]", origin, g);
            return NULL;
        }
        name++;
        if (g_str_has_prefix(g, "site ")) {
            ok = sal_name_validate("site", name, error) &&
                 load_site(kf, g, name, config, origin, error);
        } else if (g_str_has_prefix(g, "node ")) {
            ok = sal_name_validate("node", name, error) &&
                 load_node(kf, g, name, config, origin, error);
        } else if (g_str_has_prefix(g, "image ")) {
            ok = sal_name_validate("image", name, error) &&
                 load_image(kf, g, name, config, origin, error);
        } else {
            g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                        "%s: unknown group [%s]", origin, g);
            return NULL;
        }
        if (!ok) {
            return NULL;
        }
    }
    if (!check_config(config, origin, error)) {
        return NULL;
    }
    return g_steal_pointer(&config);
}

SaldConfig *
sald_config_load(const char *path, GError **error)
{
    g_autofree char *data = NULL;
    g_autoptr(GError) local = NULL;

    if (!path) {
        return config_new();
    }
    if (!g_file_get_contents(path, &data, NULL, &local)) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                    "cannot read configuration '%s': %s", path,
                    local->message);
        return NULL;
    }
    return sald_config_load_data(data, path, error);
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
