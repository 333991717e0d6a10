/*
 * Logging for daemons and CLIs: GLib structured logging, written to
 * stderr as "ident[pid]: level: message". Libraries just call g_debug()
 * and friends (with G_LOG_DOMAIN set); programs call vc_log_init() once.
 *
 * When stderr is the journal (a systemd unit's default), records go to
 * journald through GLib's journald writer instead, with their fields
 * (PRIORITY, MESSAGE, GLIB_DOMAIN, CODE_FILE, CODE_LINE, CODE_FUNC) and
 * SYSLOG_IDENTIFIER; if journald cannot take one, it goes to stderr.
 */
#pragma once

#include <glib.h>

/* @verbose shows debug messages (as does G_MESSAGES_DEBUG). */
void vc_log_init(const char *ident, gboolean verbose);

/* Whether @fd is a stream to the journal: systemd's JOURNAL_STREAM
 * (device:inode) names it, or GLib recognises journald's socket as its
 * peer. Exposed for tests. */
gboolean vc_log_is_journal(int fd);

/* Format one record the way the writer prints it (no newline). Exposed
 * for tests. */
char *vc_log_format(const char *ident, GLogLevelFlags level,
                    const char *domain, const char *message);
