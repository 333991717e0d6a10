/*
 * temporary: replaced by the core's implementation on merge.
 *
 * The calls of sald-core.h the REST API makes before sald-core.c has
 * them, so salined links on the API's branch. Nothing but sald-api.c
 * calls them; this file goes away when the core lands.
 */
#include "sald-core.h"

static gboolean
not_implemented(GError **error)
{
    g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID, "not implemented");
    return FALSE;
}

gboolean
sald_core_suspend(SaldCore *core, guint32 uid, gint64 id, GError **error)
{
    return not_implemented(error);
}

gboolean
sald_core_resume(SaldCore *core, guint32 uid, gint64 id, GError **error)
{
    return not_implemented(error);
}

gboolean
sald_core_get_history(SaldCore *core, guint32 uid, gint64 id,
                      GPtrArray **snapshots, GPtrArray **events,
                      GError **error)
{
    return not_implemented(error);
}
