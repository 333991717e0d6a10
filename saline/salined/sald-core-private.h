/* The daemon's side of the core: what salined.c drives. */
#pragma once

#include "sald-config.h"
#include "sald-core.h"

/* Takes @config. Opens the store in config->state_dir and loads the
 * address pools; connects to nothing yet. */
SaldCore *sald_core_new(SaldConfig *config, GError **error);
void sald_core_free(SaldCore *core);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SaldCore, sald_core_free)

/* Connects to the nodes and starts scheduling, in the thread-default
 * main context, which must be libvirt's event loop (the default one). */
void sald_core_start(SaldCore *core);

/* No connection, listing or job operation is in flight. */
gboolean sald_core_idle(SaldCore *core);

const char *sald_core_socket_path(SaldCore *core);
