#include "vc-notify.h"

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>

G_LOCK_DEFINE_STATIC(last_status);
static char *last_status;
#endif

/* @state ("" for none) and a STATUS= line from @fmt (NULL: none). */
static gboolean
notify_send(const char *state, const char *fmt, va_list ap, gboolean skip_same)
{
#ifdef HAVE_LIBSYSTEMD
    g_autoptr(GString) msg = g_string_new(state);
    g_autofree char *status = NULL;
    int r;

    if (!g_getenv("NOTIFY_SOCKET")) {
        return FALSE;
    }
    if (fmt) {
        status = g_strdup_vprintf(fmt, ap);
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
    va_list ap;
    gboolean sent;

    va_start(ap, fmt);
    sent = notify_send("READY=1", fmt, ap, FALSE);
    va_end(ap);
    return sent;
}

gboolean
vc_notify_status(const char *fmt, ...)
{
    va_list ap;
    gboolean sent;

    va_start(ap, fmt);
    sent = notify_send("", fmt, ap, TRUE);
    va_end(ap);
    return sent;
}

gboolean
vc_notify_stopping(const char *fmt, ...)
{
    va_list ap;
    gboolean sent;

    va_start(ap, fmt);
    sent = notify_send("STOPPING=1", fmt, ap, FALSE);
    va_end(ap);
    return sent;
}

/* A helper with a va_list to hand on, for the call without a format. */
static gboolean
notify_state(const char *state, ...)
{
    va_list ap;
    gboolean sent;

    va_start(ap, state);
    sent = notify_send(state, NULL, ap, FALSE);
    va_end(ap);
    return sent;
}

gboolean
vc_notify_reloading(void)
{
    return notify_state("RELOADING=1");
}
