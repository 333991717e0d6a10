#include "vc-log.h"

#include <stdio.h>
#include <unistd.h>

static char *log_ident;
static gboolean log_verbose;

static const char *
level_name(GLogLevelFlags level)
{
    switch (level & G_LOG_LEVEL_MASK) {
    case G_LOG_LEVEL_ERROR:
        return "fatal";
    case G_LOG_LEVEL_CRITICAL:
        return "critical";
    case G_LOG_LEVEL_WARNING:
        return "warning";
    case G_LOG_LEVEL_MESSAGE:
        return "notice";
    case G_LOG_LEVEL_INFO:
        return "info";
    default:
        return "debug";
    }
}

char *
vc_log_format(const char *ident, GLogLevelFlags level, const char *domain,
              const char *message)
{
    return g_strdup_printf("%s[%d]: %s: %s%s%s", ident, (int)getpid(),
                           level_name(level), domain ? domain : "",
                           domain ? ": " : "", message);
}

static GLogWriterOutput
vc_log_writer(GLogLevelFlags level, const GLogField *fields, gsize n_fields,
              gpointer user_data)
{
    const char *message = NULL;
    const char *domain = NULL;
    g_autofree char *line = NULL;

    for (gsize i = 0; i < n_fields; i++) {
        if (g_str_equal(fields[i].key, "MESSAGE")) {
            message = fields[i].value;
        } else if (g_str_equal(fields[i].key, "GLIB_DOMAIN")) {
            domain = fields[i].value;
        }
    }
    if ((level & (G_LOG_LEVEL_DEBUG | G_LOG_LEVEL_INFO)) && !log_verbose &&
        g_log_writer_default_would_drop(level, domain)) {
        return G_LOG_WRITER_HANDLED;
    }
    line = vc_log_format(log_ident ? log_ident : g_get_prgname(), level,
                         domain, message ? message : "(no message)");
    fprintf(stderr, "%s\n", line);
    return G_LOG_WRITER_HANDLED;
}

void
vc_log_init(const char *ident, gboolean verbose)
{
    g_free(log_ident);
    log_ident = g_strdup(ident);
    log_verbose = verbose;
    g_log_set_writer_func(vc_log_writer, NULL, NULL);
}
