/* salined's API in a thread of its own, for tests that make requests
 * from the main thread (libsoup's synchronous client, or programs). */
#pragma once

#include "sald-api.h"

typedef struct ApiServer ApiServer;

/* Serves @core on @socket_path (asserts it could). */
ApiServer *api_server_start(SaldCore *core, const char *socket_path);
/* Stops the thread and frees the API: its socket is removed. NULL is
 * ignored. */
void api_server_stop(ApiServer *server);
