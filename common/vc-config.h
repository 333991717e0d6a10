/*
 * Configuration files: GKeyFile with a fixed schema.
 *
 * A program declares every group/key it knows with its type, bounds and
 * compiled-in default; loading rejects unknown groups and keys, values of
 * the wrong type and values out of bounds, so a typo never passes
 * silently. Without a file the defaults apply.
 */
#pragma once

#include <glib.h>

typedef enum {
    VC_CONFIG_STRING,
    VC_CONFIG_INT,
    VC_CONFIG_BOOL,
} VcConfigType;

typedef struct {
    const char *group;
    const char *key;
    VcConfigType type;
    const char *default_value; /* NULL: unset unless the file sets it */
    gint64 min;                /* VC_CONFIG_INT only */
    gint64 max;
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

/* Getters abort on a group/key that is not in the schema: that is a
 * programming error, not bad input. */
const char *vc_config_get_string(VcConfig *config, const char *group,
                                 const char *key);
gint64 vc_config_get_int(VcConfig *config, const char *group,
                         const char *key);
gboolean vc_config_get_bool(VcConfig *config, const char *group,
                            const char *key);
