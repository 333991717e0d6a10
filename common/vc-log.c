#include "vc-log.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *log_ident;
static gboolean log_verbose;
static gboolean log_journal;

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

gboolean
vc_log_is_journal(int fd)
{
    const char *stream = g_getenv("JOURNAL_STREAM");
    struct stat st;

    if (stream && fstat(fd, &st) == 0) {
        char *end;
        guint64 dev = g_ascii_strtoull(stream, &end, 10);
        guint64 ino;

        if (end != stream && *end == ':') {
            const char *p = end + 1;

            ino = g_ascii_strtoull(p, &end, 10);
            if (end != p && *end == '\0' && dev == (guint64)st.st_dev &&
                ino == (guint64)st.st_ino) {
                return TRUE;
            }
        }
    }
    return g_log_writer_is_journald(fd);
}

/* The record with SYSLOG_IDENTIFIER (journalctl shows it, -t selects
 * it) to journald. */
static GLogWriterOutput
journal_write(GLogLevelFlags level, const GLogField *fields, gsize n_fields)
{
    GLogField *all = g_newa(GLogField, n_fields + 1);
    gboolean has_ident = FALSE;
    gsize n = n_fields;

    memcpy(all, fields, n_fields * sizeof(*fields));
    for (gsize i = 0; i < n_fields; i++) {
        has_ident =
            has_ident || g_str_equal(fields[i].key, "SYSLOG_IDENTIFIER");
    }
    if (!has_ident) {
        all[n++] = (GLogField){"SYSLOG_IDENTIFIER",
                               log_ident ? log_ident : g_get_prgname(), -1};
    }
    return g_log_writer_journald(level, all, n, NULL);
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
    if (log_journal &&
        journal_write(level, fields, n_fields) == G_LOG_WRITER_HANDLED) {
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
    log_journal = vc_log_is_journal(fileno(stderr));
    g_log_set_writer_func(vc_log_writer, NULL, NULL);
}
