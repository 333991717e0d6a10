#include "dp-store.h"

#include <string.h>

/*
 * One allocation per page: the hash (the table's key, first so that the
 * key pointer is the page pointer), the LRU link and the content. The
 * table is a set of these; the queue runs from most to least recent.
 */
typedef struct {
    VcPageHash hash;
    GList link;
    guint8 data[VC_PAGE_SIZE];
} StorePage;

G_STATIC_ASSERT(G_STRUCT_OFFSET(StorePage, hash) == 0);

struct DpStore {
    GHashTable *pages;   /* set of StorePage *, keyed by their hash */
    GQueue lru;          /* head: most recent */
    gsize max_pages;
    DpStoreEvictFunc evicted;
    gpointer data;
    guint64 evictions;
};

DpStore *
dp_store_new(gsize max_pages, DpStoreEvictFunc evicted, gpointer data)
{
    DpStore *store;

    g_return_val_if_fail(max_pages > 0, NULL);

    store = g_new0(DpStore, 1);
    store->pages = g_hash_table_new(vc_page_hash_hash, vc_page_hash_equal_func);
    g_queue_init(&store->lru);
    store->max_pages = max_pages;
    store->evicted = evicted;
    store->data = data;
    return store;
}

/* Pages still stored when the store is freed are not reported as
 * evicted. */
void
dp_store_free(DpStore *store)
{
    GList *l;

    if (!store) {
        return;
    }
    g_hash_table_unref(store->pages);
    while ((l = g_queue_pop_head_link(&store->lru))) {
        g_free(l->data);
    }
    g_free(store);
}

static StorePage *
page_find(DpStore *store, const VcPageHash *h)
{
    return g_hash_table_lookup(store->pages, h);
}

static void
page_touch(DpStore *store, StorePage *p)
{
    if (store->lru.head != &p->link) {
        g_queue_unlink(&store->lru, &p->link);
        g_queue_push_head_link(&store->lru, &p->link);
    }
}

static void
evict_oldest(DpStore *store)
{
    GList *l = g_queue_pop_tail_link(&store->lru);
    g_autofree StorePage *p = l->data;

    g_hash_table_remove(store->pages, p);
    store->evictions++;
    if (store->evicted) {
        store->evicted(&p->hash, store->data);
    }
}

gboolean
dp_store_put(DpStore *store, const VcPageHash *h, const guint8 *page)
{
    StorePage *p = page_find(store, h);

    if (p) {
        page_touch(store, p);
        return FALSE;
    }
    while (g_hash_table_size(store->pages) >= store->max_pages) {
        evict_oldest(store);
    }
    p = g_new(StorePage, 1);
    p->hash = *h;
    memcpy(p->data, page, VC_PAGE_SIZE);
    p->link.data = p;
    p->link.prev = p->link.next = NULL;
    g_queue_push_head_link(&store->lru, &p->link);
    g_hash_table_add(store->pages, p);
    return TRUE;
}

gboolean
dp_store_get(DpStore *store, const VcPageHash *h, guint8 *out)
{
    StorePage *p = page_find(store, h);

    if (!p) {
        return FALSE;
    }
    memcpy(out, p->data, VC_PAGE_SIZE);
    page_touch(store, p);
    return TRUE;
}

gboolean
dp_store_contains(DpStore *store, const VcPageHash *h)
{
    return page_find(store, h) != NULL;
}

gsize
dp_store_count(DpStore *store)
{
    return g_hash_table_size(store->pages);
}

guint64
dp_store_evictions(DpStore *store)
{
    return store->evictions;
}

/* Most recent first; @func must not change the store. */
void
dp_store_foreach(DpStore *store,
                 void (*func)(const VcPageHash *h, gpointer data),
                 gpointer data)
{
    for (GList *l = store->lru.head; l; l = l->next) {
        StorePage *p = l->data;

        func(&p->hash, data);
    }
}
