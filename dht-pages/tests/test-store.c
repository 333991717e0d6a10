#include <string.h>

#include "dp-store.h"

/* Page @n: filled with a pattern of @n, and its real hash. */
static void
make_page(guint n, guint8 *page, VcPageHash *h)
{
    for (guint i = 0; i < VC_PAGE_SIZE; i++) {
        page[i] = (guint8)(n * 31 + i);
    }
    memcpy(page, &n, sizeof(n));
    vc_page_hash(page, h);
}

static void
put_page(DpStore *store, guint n)
{
    g_autofree guint8 *page = g_malloc(VC_PAGE_SIZE);
    VcPageHash h;

    make_page(n, page, &h);
    g_assert_true(dp_store_put(store, &h, page));
}

static gboolean
has_page(DpStore *store, guint n)
{
    g_autofree guint8 *page = g_malloc(VC_PAGE_SIZE);
    VcPageHash h;

    make_page(n, page, &h);
    return dp_store_contains(store, &h);
}

static void
touch_page(DpStore *store, guint n)
{
    g_autofree guint8 *page = g_malloc(VC_PAGE_SIZE);
    g_autofree guint8 *out = g_malloc(VC_PAGE_SIZE);
    VcPageHash h;

    make_page(n, page, &h);
    g_assert_true(dp_store_get(store, &h, out));
    g_assert_cmpmem(out, VC_PAGE_SIZE, page, VC_PAGE_SIZE);
}

static void
collect_hash(const VcPageHash *h, gpointer data)
{
    g_array_append_val((GArray *)data, *h);
}

static void
test_put_get(void)
{
    g_autoptr(DpStore) store = dp_store_new(10, NULL, NULL);
    g_autofree guint8 *page = g_malloc(VC_PAGE_SIZE);
    g_autofree guint8 *out = g_malloc(VC_PAGE_SIZE);
    VcPageHash h, missing;

    make_page(1, page, &h);
    make_page(2, out, &missing);
    g_assert_cmpuint(dp_store_count(store), ==, 0);
    g_assert_true(dp_store_put(store, &h, page));
    g_assert_false(dp_store_put(store, &h, page));
    g_assert_cmpuint(dp_store_count(store), ==, 1);
    g_assert_true(dp_store_contains(store, &h));
    g_assert_false(dp_store_contains(store, &missing));

    /* The store keeps its own copy. */
    memset(out, 0, VC_PAGE_SIZE);
    g_assert_true(dp_store_get(store, &h, out));
    g_assert_cmpmem(out, VC_PAGE_SIZE, page, VC_PAGE_SIZE);
    page[0] ^= 1;
    memset(out, 0, VC_PAGE_SIZE);
    g_assert_true(dp_store_get(store, &h, out));
    g_assert_cmpuint(out[0], ==, page[0] ^ 1);

    g_assert_false(dp_store_get(store, &missing, out));
    g_assert_cmpuint(dp_store_evictions(store), ==, 0);
    dp_store_free(NULL);
}

typedef struct {
    GArray *evicted;  /* VcPageHash */
    DpStore *store;
} EvictLog;

static void
on_evict(const VcPageHash *h, gpointer data)
{
    EvictLog *log = data;

    /* Gone from the store by the time it is reported. */
    g_assert_false(dp_store_contains(log->store, h));
    g_array_append_val(log->evicted, *h);
}

static void
test_capacity_lru(void)
{
    EvictLog log = { g_array_new(FALSE, FALSE, sizeof(VcPageHash)), NULL };
    g_autoptr(DpStore) store = dp_store_new(4, on_evict, &log);
    g_autofree guint8 *page = g_malloc(VC_PAGE_SIZE);
    VcPageHash h;

    log.store = store;
    for (guint i = 0; i < 4; i++) {
        put_page(store, i);
    }
    g_assert_cmpuint(dp_store_count(store), ==, 4);
    g_assert_cmpuint(log.evicted->len, ==, 0);

    /* get refreshes 0, a repeated put refreshes 1: 2 is now the oldest. */
    touch_page(store, 0);
    make_page(1, page, &h);
    g_assert_false(dp_store_put(store, &h, page));

    put_page(store, 4);
    g_assert_cmpuint(dp_store_count(store), ==, 4);
    g_assert_cmpuint(log.evicted->len, ==, 1);
    make_page(2, page, &h);
    g_assert_cmpmem(&g_array_index(log.evicted, VcPageHash, 0),
                    sizeof(VcPageHash), &h, sizeof(VcPageHash));
    g_assert_false(has_page(store, 2));

    /* Then 3, then 0. */
    put_page(store, 5);
    put_page(store, 6);
    g_assert_cmpuint(log.evicted->len, ==, 3);
    make_page(3, page, &h);
    g_assert_cmpmem(&g_array_index(log.evicted, VcPageHash, 1),
                    sizeof(VcPageHash), &h, sizeof(VcPageHash));
    make_page(0, page, &h);
    g_assert_cmpmem(&g_array_index(log.evicted, VcPageHash, 2),
                    sizeof(VcPageHash), &h, sizeof(VcPageHash));
    g_assert_cmpuint(dp_store_evictions(store), ==, 3);

    g_assert_true(has_page(store, 1));
    g_assert_true(has_page(store, 4));
    g_assert_true(has_page(store, 5));
    g_assert_true(has_page(store, 6));
    g_assert_cmpuint(dp_store_count(store), ==, 4);

    /* contains does not refresh: 1 is still the oldest. */
    put_page(store, 7);
    g_assert_false(has_page(store, 1));
    g_assert_cmpuint(dp_store_evictions(store), ==, 4);
    g_array_unref(log.evicted);
}

static void
test_foreach(void)
{
    g_autoptr(DpStore) store = dp_store_new(100, NULL, NULL);
    g_autoptr(GArray) seen = g_array_new(FALSE, FALSE, sizeof(VcPageHash));
    g_autofree guint8 *page = g_malloc(VC_PAGE_SIZE);
    VcPageHash h;

    dp_store_foreach(store, collect_hash, seen);
    g_assert_cmpuint(seen->len, ==, 0);
    for (guint i = 0; i < 50; i++) {
        put_page(store, i);
    }
    touch_page(store, 10);
    dp_store_foreach(store, collect_hash, seen);
    g_assert_cmpuint(seen->len, ==, 50);
    /* Every page exactly once, most recent first. */
    make_page(10, page, &h);
    g_assert_cmpmem(&g_array_index(seen, VcPageHash, 0), sizeof(h), &h,
                    sizeof(h));
    make_page(49, page, &h);
    g_assert_cmpmem(&g_array_index(seen, VcPageHash, 1), sizeof(h), &h,
                    sizeof(h));
    for (guint i = 0; i < 50; i++) {
        guint found = 0;

        make_page(i, page, &h);
        for (guint k = 0; k < seen->len; k++) {
            found += memcmp(&g_array_index(seen, VcPageHash, k), &h,
                            sizeof(h)) == 0;
        }
        g_assert_cmpuint(found, ==, 1);
    }
}

static void
count_evict(const VcPageHash *h, gpointer data)
{
    (*(guint *)data)++;
}

static void
test_many(void)
{
    guint evicted = 0;
    g_autoptr(DpStore) store = dp_store_new(1000, count_evict, &evicted);

    for (guint i = 0; i < 5000; i++) {
        put_page(store, i);
        g_assert_cmpuint(dp_store_count(store), <=, 1000);
    }
    g_assert_cmpuint(dp_store_count(store), ==, 1000);
    g_assert_cmpuint(evicted, ==, 4000);
    g_assert_cmpuint(dp_store_evictions(store), ==, 4000);
    for (guint i = 0; i < 5000; i++) {
        g_assert_true(has_page(store, i) == (i >= 4000));
    }
    touch_page(store, 4500);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/store/put-get", test_put_get);
    g_test_add_func("/store/capacity-lru", test_capacity_lru);
    g_test_add_func("/store/foreach", test_foreach);
    g_test_add_func("/store/many", test_many);
    return g_test_run();
}
