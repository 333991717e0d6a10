/*
 * salined's REST API (saline/README.md, "REST API"): HTTP/1.1 + JSON on
 * a unix socket, served by libsoup in the thread-default main context of
 * the caller of sald_api_new(). The caller of each request is the uid of
 * the socket's peer.
 */
#pragma once

#include <gio/gio.h>

#include "sald-core.h"

typedef struct SaldApi SaldApi;

/*
 * Listens on @socket_path: creates its directory if needed, replaces a
 * stale socket (one nothing listens on) but refuses one in use or a file
 * that is not a socket, and makes it mode 0666 (every local user may
 * connect; the core decides what each may do). @core must outlive the
 * API.
 */
SaldApi *sald_api_new(SaldCore *core, const char *socket_path,
                      GError **error);
/* Stops listening, drops the connections, removes the socket. */
void sald_api_free(SaldApi *api);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SaldApi, sald_api_free)
