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

/* @state with the status @fmt formats (no STATUS= line if @fmt is NULL). */
static gboolean
notify_vsend(const char *state, gboolean skip_same, const char *fmt, va_list ap)
{
    g_autofree char *status = fmt ? g_strdup_vprintf(fmt, ap) : NULL;

    return notify_send(state, status, skip_same);
}

gboolean
vc_notify_ready(const char *fmt, ...)
{
    va_list ap;
    gboolean sent;

    va_start(ap, fmt);
    sent = notify_vsend("READY=1", FALSE, fmt, ap);
    va_end(ap);
    return sent;
}

gboolean
vc_notify_status(const char *fmt, ...)
{
    va_list ap;
    gboolean sent;

    va_start(ap, fmt);
    sent = notify_vsend("", TRUE, fmt, ap);
    va_end(ap);
    return sent;
}

gboolean
vc_notify_stopping(const char *fmt, ...)
{
    va_list ap;
    gboolean sent;

    va_start(ap, fmt);
    sent = notify_vsend("STOPPING=1", FALSE, fmt, ap);
    va_end(ap);
    return sent;
}

gboolean
vc_notify_reloading(void)
{
    return notify_send("RELOADING=1", NULL, FALSE);
}
