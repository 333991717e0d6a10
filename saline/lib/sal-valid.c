#include "sal-valid.h"

#include <string.h>

gboolean
sal_text_validate(const char *what, const char *text, gsize max, GError **error)
{
    gsize len = text ? strnlen(text, max + 1) : 0;
    g_autofree char *quoted = NULL;

    if (len == 0) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID, "%s is empty", what);
        return FALSE;
    }
    if (len > max) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                    "%s is longer than %" G_GSIZE_FORMAT " bytes", what, max);
        return FALSE;
    }
    if (g_utf8_validate(text, len, NULL)) {
        const char *p;

        for (p = text; *p; p = g_utf8_next_char(p)) {
            if (g_unichar_iscntrl(g_utf8_get_char(p))) {
                break;
            }
        }
        if (!*p) {
            return TRUE;
        }
    }
    quoted = g_strescape(text, NULL);
    g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                "%s '%s' has control characters or invalid UTF-8", what,
                quoted);
    return FALSE;
}

gboolean
sal_name_validate(const char *what, const char *name, GError **error)
{
    if (!sal_text_validate(what, name, SAL_MAX_NAME_LEN, error)) {
        return FALSE;
    }
    for (const char *p = name; *p; p++) {
        if (!g_ascii_isalnum(*p) && !strchr("._-", *p)) {
            g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                        "invalid %s name '%s': use letters, digits, '.', "
                        "'_' and '-'",
                        what, name);
            return FALSE;
        }
    }
    return TRUE;
}

gboolean
sal_range_validate(const char *what, gint64 value, gint64 min, gint64 max,
                   GError **error)
{
    if (value < min || value > max) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                    "%s %" G_GINT64_FORMAT " is out of range %" G_GINT64_FORMAT
                    "..%" G_GINT64_FORMAT,
                    what, value, min, max);
        return FALSE;
    }
    return TRUE;
}
