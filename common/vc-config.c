#include "vc-config.h"

#include <errno.h>
#include <string.h>

#include "vc-error.h"

typedef struct {
    const VcConfigKey *spec;
    char *value;
} ConfigEntry;

/* The keys of "PREFIX *" and the groups [PREFIX NAME] loaded. */
typedef struct {
    GPtrArray *specs; /* const VcConfigKey * */
    GPtrArray *names; /* char *, NULL-terminated, in file order */
} ConfigTemplate;

struct VcConfig {
    GHashTable *groups;    /* fixed group names, a set */
    GHashTable *templates; /* PREFIX -> ConfigTemplate */
    /* "group/key" -> ConfigEntry, of the fixed groups and of the named
     * groups loaded */
    GHashTable *entries;
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

static void
add_entry(VcConfig *config, const char *group, const VcConfigKey *spec)
{
    ConfigEntry *e = g_new0(ConfigEntry, 1);

    e->spec = spec;
    e->value = g_strdup(spec->default_value);
    g_hash_table_insert(config->entries, entry_id(group, spec->key), e);
}

static void
config_template_free(gpointer p)
{
    ConfigTemplate *t = p;

    g_ptr_array_unref(t->specs);
    g_ptr_array_unref(t->names);
    g_free(t);
}

VcConfig *
vc_config_new(const VcConfigKey *keys, gsize n_keys)
{
    VcConfig *config = g_new0(VcConfig, 1);

    config->groups = g_hash_table_new(g_str_hash, g_str_equal);
    config->templates = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                              config_template_free);
    config->entries = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                            config_entry_free);
    for (gsize i = 0; i < n_keys; i++) {
        const VcConfigKey *spec = &keys[i];
        g_autofree char *prefix = NULL;
        ConfigTemplate *t;

        if (!g_str_has_suffix(spec->group, " *")) {
            g_assert(!(spec->flags & VC_CONFIG_REQUIRED));
            g_hash_table_add(config->groups, (gpointer)spec->group);
            add_entry(config, spec->group, spec);
            continue;
        }
        prefix = g_strndup(spec->group, strlen(spec->group) - 2);
        t = g_hash_table_lookup(config->templates, prefix);
        if (!t) {
            t = g_new0(ConfigTemplate, 1);
            t->specs = g_ptr_array_new();
            t->names = g_ptr_array_new_null_terminated(0, g_free, TRUE);
            g_hash_table_insert(config->templates, g_steal_pointer(&prefix), t);
        }
        g_ptr_array_add(t->specs, (gpointer)spec);
    }
    return config;
}

void
vc_config_free(VcConfig *config)
{
    if (!config) {
        return;
    }
    g_hash_table_unref(config->groups);
    g_hash_table_unref(config->templates);
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
check_value(const VcConfigKey *spec, const char *group, const char *value,
            const char *origin, GError **error)
{
    gint64 i;
    gboolean b;

    switch (spec->type) {
    case VC_CONFIG_STRING:
        return TRUE;
    case VC_CONFIG_INT:
        if (!parse_int(value, &i)) {
            g_set_error(error, VC_ERROR, VC_ERROR_INVALID,
                        "%s: [%s] %s='%s' is not an integer", origin, group,
                        spec->key, value);
            return FALSE;
        }
        if (i < spec->min || i > spec->max) {
            g_set_error(error, VC_ERROR, VC_ERROR_INVALID,
                        "%s: [%s] %s=%" G_GINT64_FORMAT
                        " is out of range %" G_GINT64_FORMAT
                        "..%" G_GINT64_FORMAT,
                        origin, group, spec->key, i, spec->min, spec->max);
            return FALSE;
        }
        return TRUE;
    case VC_CONFIG_BOOL:
        if (!parse_bool(value, &b)) {
            g_set_error(error, VC_ERROR, VC_ERROR_INVALID,
                        "%s: [%s] %s='%s' is not true or false", origin, group,
                        spec->key, value);
            return FALSE;
        }
        return TRUE;
    }
    g_assert_not_reached();
}

gboolean
vc_config_name_valid(const char *name, gsize max_len)
{
    gsize len = strlen(name);

    if (len == 0 || len > max_len) {
        return FALSE;
    }
    for (const char *p = name; *p; p++) {
        if (!g_ascii_isalnum(*p) && !strchr("._-", *p)) {
            return FALSE;
        }
    }
    return TRUE;
}

/* Which group of the schema @group is: a fixed one (*t and *name NULL)
 * or [PREFIX NAME] of template *t. */
static gboolean
find_group(VcConfig *config, const char *group, ConfigTemplate **t,
           const char **name, const char *origin, GError **error)
{
    const char *space = strchr(group, ' ');
    g_autofree char *prefix = NULL;

    *t = NULL;
    *name = NULL;
    if (g_hash_table_contains(config->groups, group)) {
        return TRUE;
    }
    if (!space) {
        if (g_hash_table_contains(config->templates, group)) {
            g_set_error(error, VC_ERROR, VC_ERROR_INVALID,
                        "%s: group [%s] needs a name: [%s NAME]", origin, group,
                        group);
        } else {
            g_set_error(error, VC_ERROR, VC_ERROR_INVALID,
                        "%s: unknown group [%s]", origin, group);
        }
        return FALSE;
    }
    prefix = g_strndup(group, space - group);
    *t = g_hash_table_lookup(config->templates, prefix);
    if (!*t) {
        g_set_error(error, VC_ERROR, VC_ERROR_INVALID, "%s: unknown group [%s]",
                    origin, group);
        return FALSE;
    }
    *name = space + 1;
    if (!vc_config_name_valid(*name, VC_CONFIG_MAX_NAME_LEN)) {
        g_set_error(error, VC_ERROR, VC_ERROR_INVALID,
                    "%s: invalid %s name '%s' in [%s]: use 1 to %d letters, "
                    "digits, '.', '_' and '-'",
                    origin, prefix, *name, group, VC_CONFIG_MAX_NAME_LEN);
        return FALSE;
    }
    return TRUE;
}

static const VcConfigKey *
find_spec(VcConfig *config, ConfigTemplate *t, const char *group,
          const char *key)
{
    g_autofree char *id = NULL;
    ConfigEntry *e;

    if (t) {
        for (guint i = 0; i < t->specs->len; i++) {
            const VcConfigKey *spec = t->specs->pdata[i];

            if (g_str_equal(spec->key, key)) {
                return spec;
            }
        }
        return NULL;
    }
    id = entry_id(group, key);
    e = g_hash_table_lookup(config->entries, id);
    return e ? e->spec : NULL;
}

/* The value of @key, or NULL (and an error) if it is absent or not valid
 * UTF-8. */
static char *
get_value(GKeyFile *kf, const char *group, const char *key, const char *origin,
          GError **error)
{
    g_autoptr(GError) local = NULL;
    char *value = g_key_file_get_string(kf, group, key, &local);

    if (!value) {
        g_set_error(error, VC_ERROR, VC_ERROR_INVALID, "%s: [%s] %s: %s",
                    origin, group, key, local->message);
        return NULL;
    }
    return g_strstrip(value);
}

/* Whether [PREFIX NAME] has a non-empty @spec from this file or an earlier
 * one. */
static gboolean
has_value(VcConfig *config, GKeyFile *kf, const char *group,
          const VcConfigKey *spec)
{
    g_autofree char *value = get_value(kf, group, spec->key, NULL, NULL);
    g_autofree char *id = NULL;
    ConfigEntry *e;

    if (value) {
        return *value != '\0';
    }
    id = entry_id(group, spec->key);
    e = g_hash_table_lookup(config->entries, id);
    return e && e->value && *e->value;
}

static gboolean
check_group(VcConfig *config, GKeyFile *kf, const char *group,
            const char *origin, GError **error)
{
    g_auto(GStrv) keys = g_key_file_get_keys(kf, group, NULL, NULL);
    ConfigTemplate *t;
    const char *name;

    if (!find_group(config, group, &t, &name, origin, error)) {
        return FALSE;
    }
    for (gsize k = 0; keys && keys[k]; k++) {
        const VcConfigKey *spec = find_spec(config, t, group, keys[k]);
        g_autofree char *value = NULL;

        if (!spec) {
            g_set_error(error, VC_ERROR, VC_ERROR_INVALID,
                        "%s: unknown key '%s' in group [%s]", origin, keys[k],
                        group);
            return FALSE;
        }
        value = get_value(kf, group, keys[k], origin, error);
        if (!value || !check_value(spec, group, value, origin, error)) {
            return FALSE;
        }
    }
    for (guint i = 0; t && i < t->specs->len; i++) {
        const VcConfigKey *spec = t->specs->pdata[i];

        if ((spec->flags & VC_CONFIG_REQUIRED) &&
            !has_value(config, kf, group, spec)) {
            g_set_error(error, VC_ERROR, VC_ERROR_INVALID,
                        "%s: [%s] needs '%s'", origin, group, spec->key);
            return FALSE;
        }
    }
    return TRUE;
}

/* After check_group(): nothing can fail. */
static void
apply_group(VcConfig *config, GKeyFile *kf, const char *group)
{
    g_auto(GStrv) keys = g_key_file_get_keys(kf, group, NULL, NULL);
    ConfigTemplate *t;
    const char *name;

    find_group(config, group, &t, &name, NULL, NULL);
    if (t &&
        !g_ptr_array_find_with_equal_func(t->names, name, g_str_equal, NULL)) {
        for (guint i = 0; i < t->specs->len; i++) {
            add_entry(config, group, t->specs->pdata[i]);
        }
        g_ptr_array_add(t->names, g_strdup(name));
    }
    for (gsize k = 0; keys && keys[k]; k++) {
        g_autofree char *id = entry_id(group, keys[k]);
        ConfigEntry *e = g_hash_table_lookup(config->entries, id);

        g_free(e->value);
        e->value = get_value(kf, group, keys[k], NULL, NULL);
    }
}

gboolean
vc_config_load_data(VcConfig *config, const char *data, gsize len,
                    const char *origin, GError **error)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autoptr(GError) local = NULL;
    g_auto(GStrv) groups = NULL;

    if (!g_key_file_load_from_data(kf, data, len, G_KEY_FILE_NONE, &local)) {
        g_set_error(error, VC_ERROR, VC_ERROR_INVALID, "%s: %s", origin,
                    local->message);
        return FALSE;
    }
    groups = g_key_file_get_groups(kf, NULL);
    /* Check everything first so a bad file changes nothing. */
    for (gsize g = 0; groups[g]; g++) {
        if (!check_group(config, kf, groups[g], origin, error)) {
            return FALSE;
        }
    }
    for (gsize g = 0; groups[g]; g++) {
        apply_group(config, kf, groups[g]);
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
        if (optional &&
            g_error_matches(local, G_FILE_ERROR, G_FILE_ERROR_NOENT)) {
            return TRUE;
        }
        g_set_error(error, VC_ERROR, VC_ERROR_IO, "cannot read config '%s': %s",
                    path, local->message);
        return FALSE;
    }
    return vc_config_load_data(config, data, len, path, error);
}

const char *const *
vc_config_get_names(VcConfig *config, const char *prefix)
{
    static const char *const none[] = {NULL};
    ConfigTemplate *t = g_hash_table_lookup(config->templates, prefix);

    if (!t) {
        g_error("config group [%s NAME] is not in the schema", prefix);
    }
    /* A null-terminated GPtrArray has no pdata until its first element. */
    return t->names->len ? (const char *const *)t->names->pdata : none;
}

static ConfigEntry *
lookup(VcConfig *config, const char *group, const char *key, VcConfigType type)
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
