/*
 * Readiness and status for the service manager (sd_notify(3)), so that
 * daemons run as Type=notify systemd units: READY=1 once they serve,
 * STATUS= lines, STOPPING=1 and RELOADING=1.
 *
 * Built without libsystemd, or run without NOTIFY_SOCKET (by hand, or not
 * as a Type=notify unit), every call does nothing and returns FALSE. A
 * failure to notify is logged at debug level and never stops a daemon.
 */
#pragma once

#include <glib.h>

/* Whether notifications go anywhere: a daemon need not compute a status
 * nobody reads. */
gboolean vc_notify_enabled(void);

/* Sends READY=1 and, with @fmt, a STATUS= line. */
gboolean vc_notify_ready(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

/* Sends a STATUS= line (newlines become spaces), unless it is the one
 * sent last: daemons may call it from a timer. */
gboolean vc_notify_status(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

/* Sends STOPPING=1 and, with @fmt, a STATUS= line. */
gboolean vc_notify_stopping(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

/* Sends RELOADING=1; a reload ends with vc_notify_ready(). */
gboolean vc_notify_reloading(void);
