/*
 * Bounded content-addressed page cache: pages published to this node
 * (they arrived here in migrations). Least recently used pages are
 * evicted first. The caller verifies hashes before dp_store_put. Not
 * thread-safe: the daemon serialises access.
 */
#pragma once

#include "dp-proto.h"

typedef struct DpStore DpStore;

/* Called for each page evicted, so the daemon can withdraw it from the
 * index. */
typedef void (*DpStoreEvictFunc)(const VcPageHash *h, gpointer data);

DpStore *dp_store_new(gsize max_pages, DpStoreEvictFunc evicted,
                      gpointer data);
void dp_store_free(DpStore *store);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(DpStore, dp_store_free)

/* Returns FALSE if the page was already there (it becomes most recent). */
gboolean dp_store_put(DpStore *store, const VcPageHash *h,
                      const guint8 *page);
/* Copies the page into @out and makes it most recent. */
gboolean dp_store_get(DpStore *store, const VcPageHash *h, guint8 *out);
gboolean dp_store_contains(DpStore *store, const VcPageHash *h);
gsize dp_store_count(DpStore *store);
guint64 dp_store_evictions(DpStore *store);
void dp_store_foreach(DpStore *store,
                      void (*func)(const VcPageHash *h, gpointer data),
                      gpointer data);
