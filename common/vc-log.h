/*
 * Logging for daemons and CLIs: GLib structured logging, written to
 * stderr as "ident[pid]: level: message". Libraries just call g_debug()
 * and friends (with G_LOG_DOMAIN set); programs call vc_log_init() once.
 */
#pragma once

#include <glib.h>

/* @verbose shows debug messages (as does G_MESSAGES_DEBUG). */
void vc_log_init(const char *ident, gboolean verbose);

/* Format one record the way the writer prints it (no newline). Exposed
 * for tests. */
char *vc_log_format(const char *ident, GLogLevelFlags level,
                    const char *domain, const char *message);
