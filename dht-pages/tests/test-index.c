#include <string.h>

#include "dp-index.h"

static void
make_id(guint n, DpNodeId *id)
{
    memset(id, 0, sizeof(*id));
    id->bytes[0] = 0x1d;
    id->bytes[DP_NODE_ID_LEN - 2] = (guint8)(n >> 8);
    id->bytes[DP_NODE_ID_LEN - 1] = (guint8)n;
}

static void
make_hash(guint n, VcPageHash *h)
{
    vc_sha256((const guint8 *)&n, sizeof(n), h);
}

static void
assert_holders(DpIndex *index, const VcPageHash *h, const guint *expected,
               guint n_expected)
{
    DpNodeId got[DP_MAX_HOLDERS];
    guint n = dp_index_lookup(index, h, got);

    g_assert_cmpuint(n, ==, n_expected);
    for (guint i = 0; i < n; i++) {
        DpNodeId id;

        make_id(expected[i], &id);
        g_assert_cmpmem(&got[i], sizeof(DpNodeId), &id, sizeof(DpNodeId));
    }
}

static void
test_add_lookup_order(void)
{
    g_autoptr(DpIndex) index = dp_index_new();
    VcPageHash h, other;
    DpNodeId id;
    DpNodeId got[DP_MAX_HOLDERS];

    make_hash(1, &h);
    make_hash(2, &other);
    g_assert_cmpuint(dp_index_lookup(index, &h, got), ==, 0);
    g_assert_cmpuint(dp_index_size(index), ==, 0);

    for (guint i = 1; i <= 3; i++) {
        make_id(i, &id);
        dp_index_add(index, &h, &id);
    }
    assert_holders(index, &h, (const guint[]){ 3, 2, 1 }, 3);
    g_assert_cmpuint(dp_index_size(index), ==, 1);
    g_assert_cmpuint(dp_index_lookup(index, &other, got), ==, 0);

    /* Re-adding moves to the front without duplicating. */
    make_id(1, &id);
    dp_index_add(index, &h, &id);
    assert_holders(index, &h, (const guint[]){ 1, 3, 2 }, 3);
    dp_index_add(index, &h, &id);
    assert_holders(index, &h, (const guint[]){ 1, 3, 2 }, 3);
    make_id(2, &id);
    dp_index_add(index, &h, &id);
    assert_holders(index, &h, (const guint[]){ 2, 1, 3 }, 3);
    g_assert_cmpuint(dp_index_size(index), ==, 1);
}

static void
test_overflow(void)
{
    g_autoptr(DpIndex) index = dp_index_new();
    VcPageHash h;
    DpNodeId id;

    make_hash(7, &h);
    for (guint i = 1; i <= DP_MAX_HOLDERS; i++) {
        make_id(i, &id);
        dp_index_add(index, &h, &id);
    }
    assert_holders(index, &h, (const guint[]){ 8, 7, 6, 5, 4, 3, 2, 1 }, 8);

    /* A ninth drops the oldest. */
    make_id(9, &id);
    dp_index_add(index, &h, &id);
    assert_holders(index, &h, (const guint[]){ 9, 8, 7, 6, 5, 4, 3, 2 }, 8);

    /* Refreshing the oldest saves it from the next overflow. */
    make_id(2, &id);
    dp_index_add(index, &h, &id);
    make_id(10, &id);
    dp_index_add(index, &h, &id);
    assert_holders(index, &h, (const guint[]){ 10, 2, 9, 8, 7, 6, 5, 4 }, 8);

    /* Holder 1 was pushed out everywhere, so dropping it changes nothing. */
    make_id(1, &id);
    g_assert_cmpuint(dp_index_drop_holder(index, &id), ==, 0);
}

static void
test_remove(void)
{
    g_autoptr(DpIndex) index = dp_index_new();
    VcPageHash h, other;
    DpNodeId id;

    make_hash(3, &h);
    make_hash(4, &other);
    for (guint i = 1; i <= 3; i++) {
        make_id(i, &id);
        dp_index_add(index, &h, &id);
    }
    make_id(1, &id);
    dp_index_add(index, &other, &id);

    make_id(2, &id);
    dp_index_remove(index, &h, &id);
    assert_holders(index, &h, (const guint[]){ 3, 1 }, 2);
    /* Removing what is not there is harmless. */
    dp_index_remove(index, &h, &id);
    dp_index_remove(index, &other, &id);
    make_id(99, &id);
    dp_index_remove(index, &h, &id);
    assert_holders(index, &h, (const guint[]){ 3, 1 }, 2);
    assert_holders(index, &other, (const guint[]){ 1 }, 1);

    make_id(3, &id);
    dp_index_remove(index, &h, &id);
    make_id(1, &id);
    dp_index_remove(index, &h, &id);
    assert_holders(index, &h, NULL, 0);
    g_assert_cmpuint(dp_index_size(index), ==, 1);
    assert_holders(index, &other, (const guint[]){ 1 }, 1);
}

static void
test_drop_holder(void)
{
    g_autoptr(DpIndex) index = dp_index_new();
    DpNodeId a, b;
    VcPageHash h;

    make_id(1, &a);
    make_id(2, &b);
    for (guint i = 0; i < 1000; i++) {
        make_hash(i, &h);
        dp_index_add(index, &h, &a);
        if (i % 3 == 0) {
            dp_index_add(index, &h, &b);
        }
    }
    g_assert_cmpuint(dp_index_size(index), ==, 1000);
    /* 334 entries name b: all change, none disappears. */
    g_assert_cmpuint(dp_index_drop_holder(index, &b), ==, 334);
    g_assert_cmpuint(dp_index_size(index), ==, 1000);
    g_assert_cmpuint(dp_index_drop_holder(index, &b), ==, 0);
    /* a held everything: all 1000 change and disappear. */
    g_assert_cmpuint(dp_index_drop_holder(index, &a), ==, 1000);
    g_assert_cmpuint(dp_index_size(index), ==, 0);
    for (guint i = 0; i < 1000; i++) {
        make_hash(i, &h);
        assert_holders(index, &h, NULL, 0);
    }
    /* The table still works after shrinking. */
    make_hash(5, &h);
    dp_index_add(index, &h, &b);
    assert_holders(index, &h, (const guint[]){ 2 }, 1);
}

static gboolean
keep_even_byte(const VcPageHash *h, gpointer data)
{
    guint *calls = data;

    (*calls)++;
    return (h->bytes[31] & 1) == 0;
}

static void
test_retain(void)
{
    g_autoptr(DpIndex) index = dp_index_new();
    guint n_even = 0;
    guint calls = 0;
    DpNodeId id;
    VcPageHash h;

    make_id(1, &id);
    for (guint i = 0; i < 5000; i++) {
        make_hash(i, &h);
        dp_index_add(index, &h, &id);
        n_even += (h.bytes[31] & 1) == 0;
    }
    g_assert_cmpuint(dp_index_retain(index, keep_even_byte, &calls), ==,
                     5000 - n_even);
    g_assert_cmpuint(calls, >=, 5000);
    g_assert_cmpuint(dp_index_size(index), ==, n_even);
    for (guint i = 0; i < 5000; i++) {
        make_hash(i, &h);
        if ((h.bytes[31] & 1) == 0) {
            assert_holders(index, &h, (const guint[]){ 1 }, 1);
        } else {
            assert_holders(index, &h, NULL, 0);
        }
    }
}

/* Hashes that agree on their first 8 bytes are still told apart. */
static void
test_same_prefix(void)
{
    g_autoptr(DpIndex) index = dp_index_new();
    VcPageHash h[40];
    DpNodeId id;

    for (guint i = 0; i < G_N_ELEMENTS(h); i++) {
        memset(&h[i], 0x42, sizeof(h[i]));
        h[i].bytes[8 + i % 24] ^= (guint8)(1 + i / 24);
        make_id(i + 1, &id);
        dp_index_add(index, &h[i], &id);
    }
    g_assert_cmpuint(dp_index_size(index), ==, G_N_ELEMENTS(h));
    for (guint i = 0; i < G_N_ELEMENTS(h); i += 2) {
        make_id(i + 1, &id);
        dp_index_remove(index, &h[i], &id);
    }
    for (guint i = 0; i < G_N_ELEMENTS(h); i++) {
        if (i % 2 == 0) {
            assert_holders(index, &h[i], NULL, 0);
        } else {
            assert_holders(index, &h[i], (const guint[]){ i + 1 }, 1);
        }
    }
}

/* The stress test checks the index against this simple model. */
typedef struct {
    guint n;
    guint holders[DP_MAX_HOLDERS];
} ModelEntry;

static guint
hash_hash(gconstpointer p)
{
    guint v;

    memcpy(&v, p, sizeof(v));
    return v;
}

static gboolean
hash_eq(gconstpointer a, gconstpointer b)
{
    return memcmp(a, b, VC_PAGE_HASH_LEN) == 0;
}

static void
model_add(GHashTable *model, const VcPageHash *h, guint holder)
{
    ModelEntry *e = g_hash_table_lookup(model, h);
    guint k;

    if (!e) {
        e = g_new0(ModelEntry, 1);
        g_hash_table_insert(model, g_memdup2(h, sizeof(*h)), e);
    }
    for (k = 0; k < e->n && e->holders[k] != holder; k++) {
    }
    if (k == e->n) {
        if (e->n < DP_MAX_HOLDERS) {
            e->n++;
        }
        k = e->n - 1;
    }
    memmove(&e->holders[1], &e->holders[0], k * sizeof(guint));
    e->holders[0] = holder;
}

static void
model_remove(GHashTable *model, const VcPageHash *h, guint holder)
{
    ModelEntry *e = g_hash_table_lookup(model, h);

    if (!e) {
        return;
    }
    for (guint k = 0; k < e->n; k++) {
        if (e->holders[k] == holder) {
            memmove(&e->holders[k], &e->holders[k + 1],
                    (e->n - k - 1) * sizeof(guint));
            e->n--;
            break;
        }
    }
    if (e->n == 0) {
        g_hash_table_remove(model, h);
    }
}

static void
check_model(DpIndex *index, GHashTable *model)
{
    GHashTableIter iter;
    gpointer key, value;

    g_assert_cmpuint(dp_index_size(index), ==, g_hash_table_size(model));
    g_hash_table_iter_init(&iter, model);
    while (g_hash_table_iter_next(&iter, &key, &value)) {
        const ModelEntry *e = value;

        assert_holders(index, key, e->holders, e->n);
    }
}

static gboolean
keep_low_bucket(const VcPageHash *h, gpointer data)
{
    return h->bytes[0] < 0xa0;
}

static void
test_stress(void)
{
    const guint n_hashes = 500000;
    const guint n_nodes = 12;
    g_autoptr(DpIndex) index = dp_index_new();
    g_autoptr(GHashTable) model =
        g_hash_table_new_full(hash_hash, hash_eq, g_free, g_free);
    g_autofree VcPageHash *hashes = g_new(VcPageHash, n_hashes);
    GHashTableIter iter;
    gpointer key;
    DpNodeId id;
    gsize removed;

    for (guint i = 0; i < n_hashes; i++) {
        for (guint j = 0; j < VC_PAGE_HASH_LEN; j += 4) {
            guint32 r = g_test_rand_int();

            memcpy(&hashes[i].bytes[j], &r, 4);
        }
    }
    /* Adds, with repeats and overflows, then removals, interleaved. */
    for (guint round = 0; round < 3; round++) {
        for (guint i = 0; i < n_hashes; i++) {
            guint holder = (guint)g_test_rand_int_range(1, n_nodes + 1);

            if (round > 0 && g_test_rand_int_range(0, 4) == 0) {
                make_id(holder, &id);
                dp_index_remove(index, &hashes[i], &id);
                model_remove(model, &hashes[i], holder);
                continue;
            }
            make_id(holder, &id);
            dp_index_add(index, &hashes[i], &id);
            model_add(model, &hashes[i], holder);
            if (i % 16 == 0) {
                /* Crowd a few entries past DP_MAX_HOLDERS. */
                for (guint k = 1; k <= n_nodes; k++) {
                    make_id(k, &id);
                    dp_index_add(index, &hashes[i], &id);
                    model_add(model, &hashes[i], k);
                }
            }
        }
    }
    check_model(index, model);

    /* A member leaves. */
    make_id(5, &id);
    removed = dp_index_drop_holder(index, &id);
    g_assert_cmpuint(removed, >, 0);
    g_hash_table_iter_init(&iter, model);
    while (g_hash_table_iter_next(&iter, &key, NULL)) {
        ModelEntry *e = g_hash_table_lookup(model, key);

        for (guint k = 0; k < e->n; k++) {
            if (e->holders[k] == 5) {
                memmove(&e->holders[k], &e->holders[k + 1],
                        (e->n - k - 1) * sizeof(guint));
                e->n--;
                removed--;
                break;
            }
        }
        if (e->n == 0) {
            g_hash_table_iter_remove(&iter);
        }
    }
    g_assert_cmpuint(removed, ==, 0);
    check_model(index, model);

    /* A rebalance. */
    removed = dp_index_retain(index, keep_low_bucket, NULL);
    g_hash_table_iter_init(&iter, model);
    while (g_hash_table_iter_next(&iter, &key, NULL)) {
        if (!keep_low_bucket(key, NULL)) {
            g_hash_table_iter_remove(&iter);
            removed--;
        }
    }
    g_assert_cmpuint(removed, ==, 0);
    check_model(index, model);

    /* Nothing is found that was not added. */
    for (guint i = 0; i < 10000; i++) {
        DpNodeId got[DP_MAX_HOLDERS];
        VcPageHash h;

        make_hash(i, &h);
        g_assert_cmpuint(dp_index_lookup(index, &h, got), ==, 0);
    }
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/index/add-lookup-order", test_add_lookup_order);
    g_test_add_func("/index/overflow", test_overflow);
    g_test_add_func("/index/remove", test_remove);
    g_test_add_func("/index/drop-holder", test_drop_holder);
    g_test_add_func("/index/retain", test_retain);
    g_test_add_func("/index/same-prefix", test_same_prefix);
    g_test_add_func("/index/stress", test_stress);
    return g_test_run();
}
