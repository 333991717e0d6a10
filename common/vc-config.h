/*
 * Configuration files: GKeyFile with a fixed schema.
 *
 * A program declares every group/key it knows with its type, bounds and
 * compiled-in default; loading rejects unknown groups and keys, values of
 * the wrong type and values out of bounds, so a typo never passes
 * silently. Without a file the defaults apply. Values are stripped of
 * surrounding white space, which GKeyFile keeps at the end of a line and
 * nobody means.
 *
 * Named groups are repeated groups with one key schema, such as salined's
 * [node NAME]: a key whose group is "PREFIX *" is a key of every group
 * [PREFIX NAME] in the file. NAME is 1..VC_CONFIG_MAX_NAME_LEN of
 * [A-Za-z0-9._-], so it can name files and appear in messages unquoted.
 * A file may hold any number of them (none included); each key not set
 * takes its default.
 */
#pragma once

#include <glib.h>

typedef enum {
    VC_CONFIG_STRING,
    VC_CONFIG_INT,
    VC_CONFIG_BOOL,
} VcConfigType;

typedef enum {
    VC_CONFIG_NONE = 0,
    /* Each [PREFIX NAME] must set the key to a non-empty value; only for
     * named groups, since a fixed group must work without a file. */
    VC_CONFIG_REQUIRED = 1 << 0,
} VcConfigFlags;

#define VC_CONFIG_MAX_NAME_LEN 64

typedef struct {
    const char *group; /* "GROUP", or "PREFIX *" for [PREFIX NAME] */
    const char *key;
    VcConfigType type;
    const char *default_value; /* NULL: unset unless the file sets it */
    gint64 min;                /* VC_CONFIG_INT only */
    gint64 max;
    VcConfigFlags flags;
} VcConfigKey;

typedef struct VcConfig VcConfig;

VcConfig *vc_config_new(const VcConfigKey *keys, gsize n_keys);
void vc_config_free(VcConfig *config);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VcConfig, vc_config_free)

/* A missing file is an error unless @optional. */
gboolean vc_config_load_file(VcConfig *config, const char *path,
                             gboolean optional, GError **error);
gboolean vc_config_load_data(VcConfig *config, const char *data, gsize len,
                             const char *origin, GError **error);

/* Whether @name is 1..@max_len of [A-Za-z0-9._-]: a NAME of [PREFIX NAME]
 * with VC_CONFIG_MAX_NAME_LEN, and a name safe in paths and messages for
 * the values that name things. */
gboolean vc_config_name_valid(const char *name, gsize max_len);

/* The NAMEs of the groups [@prefix NAME] loaded so far, in file order
 * (NULL-terminated, owned by @config, valid until the next load). Aborts
 * if "@prefix *" is not in the schema. */
const char *const *vc_config_get_names(VcConfig *config, const char *prefix);

/* @group is a fixed group or a named one, "PREFIX NAME", whose NAME
 * vc_config_get_names() returned. Getters abort on a group/key that is
 * not in the schema or not loaded: that is a programming error, not bad
 * input. */
const char *vc_config_get_string(VcConfig *config, const char *group,
                                 const char *key);
gint64 vc_config_get_int(VcConfig *config, const char *group, const char *key);
gboolean vc_config_get_bool(VcConfig *config, const char *group,
                            const char *key);
