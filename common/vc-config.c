#include "vc-config.h"

#include <errno.h>

#include "vc-error.h"

typedef struct {
    const VcConfigKey *spec;
    char *value;
} ConfigEntry;

struct VcConfig {
    GHashTable *entries; /* "group/key" -> ConfigEntry */
};

static char *
entry_id(const char *group, const char *key)
{
    return g_strconcat(group, "/", key, NULL);
}

static void
config_entry_free(gpointer p)
{
    ConfigEntry *e = p;

    g_free(e->value);
    g_free(e);
}

VcConfig *
vc_config_new(const VcConfigKey *keys, gsize n_keys)
{
    VcConfig *config = g_new0(VcConfig, 1);

    config->entries = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                            config_entry_free);
    for (gsize i = 0; i < n_keys; i++) {
        ConfigEntry *e = g_new0(ConfigEntry, 1);

        e->spec = &keys[i];
        e->value = g_strdup(keys[i].default_value);
        g_hash_table_insert(config->entries,
                            entry_id(keys[i].group, keys[i].key), e);
    }
    return config;
}

void
vc_config_free(VcConfig *config)
{
    if (!config) {
        return;
    }
    g_hash_table_unref(config->entries);
    g_free(config);
}

static gboolean
parse_int(const char *s, gint64 *v)
{
    char *end = NULL;

    errno = 0;
    *v = g_ascii_strtoll(s, &end, 10);
    return errno == 0 && end != s && *end == '\0';
}

static gboolean
parse_bool(const char *s, gboolean *v)
{
    if (g_str_equal(s, "true") || g_str_equal(s, "1")) {
        *v = TRUE;
    } else if (g_str_equal(s, "false") || g_str_equal(s, "0")) {
        *v = FALSE;
    } else {
        return FALSE;
    }
    return TRUE;
}

static gboolean
check_value(const VcConfigKey *spec, const char *value, const char *origin,
            GError **error)
{
    gint64 i;
    gboolean b;

    switch (spec->type) {
    case VC_CONFIG_STRING:
        return TRUE;
    case VC_CONFIG_INT:
        if (!parse_int(value, &i)) {
            g_set_error(error, VC_ERROR, VC_ERROR_INVALID,
                        "%s: [%s] %s='%s' is not an integer", origin,
                        spec->group, spec->key, value);
            return FALSE;
        }
        if (i < spec->min || i > spec->max) {
            g_set_error(error, VC_ERROR, VC_ERROR_INVALID,
                        "%s: [%s] %s=%" G_GINT64_FORMAT
                        " is out of range %" G_GINT64_FORMAT
                        "..%" G_GINT64_FORMAT,
                        origin, spec->group, spec->key, i, spec->min,
                        spec->max);
            return FALSE;
        }
        return TRUE;
    case VC_CONFIG_BOOL:
        if (!parse_bool(value, &b)) {
            g_set_error(error, VC_ERROR, VC_ERROR_INVALID,
                        "%s: [%s] %s='%s' is not true or false", origin,
                        spec->group, spec->key, value);
            return FALSE;
        }
        return TRUE;
    }
    g_assert_not_reached();
}

gboolean
vc_config_load_data(VcConfig *config, const char *data, gsize len,
                    const char *origin, GError **error)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autoptr(GError) local = NULL;
    g_auto(GStrv) groups = NULL;
    g_autoptr(GPtrArray) values = NULL;
    g_autoptr(GPtrArray) targets = NULL;

    if (!g_key_file_load_from_data(kf, data, len, G_KEY_FILE_NONE, &local)) {
        g_set_error(error, VC_ERROR, VC_ERROR_INVALID, "%s: %s", origin,
                    local->message);
        return FALSE;
    }

    /* Validate everything first so a bad file changes nothing. */
    values = g_ptr_array_new_with_free_func(g_free);
    targets = g_ptr_array_new();
    groups = g_key_file_get_groups(kf, NULL);
    for (gsize g = 0; groups[g]; g++) {
        g_auto(GStrv) keys = g_key_file_get_keys(kf, groups[g], NULL, NULL);

        for (gsize k = 0; keys && keys[k]; k++) {
            g_autofree char *id = entry_id(groups[g], keys[k]);
            g_autofree char *value = NULL;
            ConfigEntry *e = g_hash_table_lookup(config->entries, id);

            if (!e) {
                g_set_error(error, VC_ERROR, VC_ERROR_INVALID,
                            "%s: unknown key '%s' in group [%s]", origin,
                            keys[k], groups[g]);
                return FALSE;
            }
            value = g_key_file_get_string(kf, groups[g], keys[k], &local);
            if (!value) {
                g_set_error(error, VC_ERROR, VC_ERROR_INVALID,
                            "%s: [%s] %s: %s", origin, groups[g], keys[k],
                            local->message);
                return FALSE;
            }
            if (!check_value(e->spec, value, origin, error)) {
                return FALSE;
            }
            g_ptr_array_add(targets, e);
            g_ptr_array_add(values, g_steal_pointer(&value));
        }
        if (!keys || !keys[0]) {
            /* An empty group must still be a known one. */
            GHashTableIter it;
            ConfigEntry *e;
            gboolean known = FALSE;

            g_hash_table_iter_init(&it, config->entries);
            while (g_hash_table_iter_next(&it, NULL, (gpointer *)&e)) {
                known = known || g_str_equal(e->spec->group, groups[g]);
            }
            if (!known) {
                g_set_error(error, VC_ERROR, VC_ERROR_INVALID,
                            "%s: unknown group [%s]", origin, groups[g]);
                return FALSE;
            }
        }
    }
    for (guint i = 0; i < targets->len; i++) {
        ConfigEntry *e = targets->pdata[i];

        g_free(e->value);
        e->value = g_steal_pointer(&values->pdata[i]);
    }
    return TRUE;
}

gboolean
vc_config_load_file(VcConfig *config, const char *path, gboolean optional,
                    GError **error)
{
    g_autofree char *data = NULL;
    gsize len = 0;
    g_autoptr(GError) local = NULL;

    if (!g_file_get_contents(path, &data, &len, &local)) {
        if (optional && g_error_matches(local, G_FILE_ERROR,
                                        G_FILE_ERROR_NOENT)) {
            return TRUE;
        }
        g_set_error(error, VC_ERROR, VC_ERROR_IO,
                    "cannot read config '%s': %s", path, local->message);
        return FALSE;
    }
    return vc_config_load_data(config, data, len, path, error);
}

static ConfigEntry *
lookup(VcConfig *config, const char *group, const char *key,
       VcConfigType type)
{
    g_autofree char *id = entry_id(group, key);
    ConfigEntry *e = g_hash_table_lookup(config->entries, id);

    if (!e || e->spec->type != type) {
        g_error("config key [%s] %s is not in the schema as that type", group,
                key);
    }
    return e;
}

const char *
vc_config_get_string(VcConfig *config, const char *group, const char *key)
{
    return lookup(config, group, key, VC_CONFIG_STRING)->value;
}

gint64
vc_config_get_int(VcConfig *config, const char *group, const char *key)
{
    ConfigEntry *e = lookup(config, group, key, VC_CONFIG_INT);
    gint64 v = 0;

    if (e->value) {
        parse_int(e->value, &v);
    }
    return v;
}

gboolean
vc_config_get_bool(VcConfig *config, const char *group, const char *key)
{
    ConfigEntry *e = lookup(config, group, key, VC_CONFIG_BOOL);
    gboolean v = FALSE;

    if (e->value) {
        parse_bool(e->value, &v);
    }
    return v;
}
