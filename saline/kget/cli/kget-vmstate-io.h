/*
 * QEMU migration streams to and from the store: `kget snapshot --vmstate`
 * and `kget restore --vmstate` (saline/kget/README.md). A stream becomes
 * two items, ITEM (device state) and ITEM.ram (guest RAM), sent while it
 * is read: never more than a batch of pages in memory.
 */
#pragma once

#include "kget-client.h"

/* Reads a stream from @fd to its end into items @item and @item.ram of
 * @snapshot; their stats in @state and @ram (may be NULL). */
gboolean kget_vmstate_put(KgetClient *client, const char *snapshot,
                          const char *item, int fd, KgetItemStats *state,
                          KgetItemStats *ram, GError **error);

/* Writes the stream rebuilt from @item and @item.ram to @fd. RAM pages
 * are asked of @source first when it is not NULL, and those it missed
 * handed to @publish (may be NULL); where they came from goes to
 * @ram_stats (may be NULL). */
gboolean kget_vmstate_get(KgetClient *client, const char *snapshot,
                          const char *item, int fd, KgetChunkSource source,
                          KgetChunkPublish publish, gpointer source_data,
                          KgetReaderStats *ram_stats, GError **error);
