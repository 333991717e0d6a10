/* Checks of values users and peers control, before they are used. */
#pragma once

#include <glib.h>

#include "sal-error.h"

#define SAL_MAX_NAME_LEN 64 /* job, node and site names */

/* Free text shown in tables: 1..@max bytes of valid UTF-8 without
 * control characters. @what names the value in the error ("job name");
 * a value too long is not quoted back. */
gboolean sal_text_validate(const char *what, const char *text, gsize max,
                           GError **error);

/* min <= @value <= max. */
gboolean sal_range_validate(const char *what, gint64 value, gint64 min,
                            gint64 max, GError **error);

/* Site and node names: 1..SAL_MAX_NAME_LEN of [A-Za-z0-9._-]. @what
 * names the value in the error ("site", "node"). */
gboolean sal_name_validate(const char *what, const char *name, GError **error);
