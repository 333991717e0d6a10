#include "vc-notify.h"

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>

G_LOCK_DEFINE_STATIC(last_status);
static char *last_status;
#endif

/* @state ("" for none) and a STATUS= line (NULL: none). */
static gboolean
notify_send(const char *state, char *status, gboolean skip_same)
{
#ifdef HAVE_LIBSYSTEMD
    g_autoptr(GString) msg = g_string_new(state);
    int r;

    if (!g_getenv("NOTIFY_SOCKET")) {
        return FALSE;
    }
    if (status) {
        /* One line: the protocol is newline-separated assignments. */
        g_strdelimit(status, "\n", ' ');
        G_LOCK(last_status);
        if (skip_same && g_strcmp0(status, last_status) == 0) {
            G_UNLOCK(last_status);
            return FALSE;
        }
        g_free(last_status);
        last_status = g_strdup(status);
        G_UNLOCK(last_status);
        g_string_append_printf(msg, "%sSTATUS=%s", msg->len ? "\n" : "",
                               status);
    }
    r = sd_notify(0, msg->str);
    if (r < 0) {
        g_debug("cannot notify the service manager: %s", g_strerror(-r));
    }
    return r > 0;
#else
    return FALSE;
#endif
}

gboolean
vc_notify_enabled(void)
{
#ifdef HAVE_LIBSYSTEMD
    return g_getenv("NOTIFY_SOCKET") != NULL;
#else
    return FALSE;
#endif
}

gboolean
vc_notify_ready(const char *fmt, ...)
{
    g_autofree char *status = NULL;
    va_list ap;

    if (fmt) {
        va_start(ap, fmt);
        status = g_strdup_vprintf(fmt, ap);
        va_end(ap);
    }
    return notify_send("READY=1", status, FALSE);
}

gboolean
vc_notify_status(const char *fmt, ...)
{
    g_autofree char *status = NULL;
    va_list ap;

    va_start(ap, fmt);
    status = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    return notify_send("", status, TRUE);
}

gboolean
vc_notify_stopping(const char *fmt, ...)
{
    g_autofree char *status = NULL;
    va_list ap;

    if (fmt) {
        va_start(ap, fmt);
        status = g_strdup_vprintf(fmt, ap);
        va_end(ap);
    }
    return notify_send("STOPPING=1", status, FALSE);
}

gboolean
vc_notify_reloading(void)
{
    return notify_send("RELOADING=1", NULL, FALSE);
}
