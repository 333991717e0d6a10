#include <string.h>

#include "dp-partition.h"

static void
random_ids(DpNodeId *ids, guint n)
{
    for (guint i = 0; i < n; i++) {
        for (guint j = 0; j < DP_NODE_ID_LEN; j++) {
            ids[i].bytes[j] = (guint8)g_test_rand_int_range(0, 256);
        }
    }
}

static void
bucket_hash(guint bucket, VcPageHash *h)
{
    memset(h, 0xa5, sizeof(*h));
    h->bytes[0] = (guint8)(bucket >> 8);
    h->bytes[1] = (guint8)bucket;
}

/* Index of @id in @p, by value. */
static guint
member_index(const DpPartition *p, const DpNodeId *id)
{
    for (guint i = 0; i < dp_partition_n_members(p); i++) {
        if (memcmp(dp_partition_member(p, i), id, sizeof(*id)) == 0) {
            return i;
        }
    }
    g_assert_not_reached();
}

static void
test_bucket(void)
{
    VcPageHash h;

    memset(&h, 0xff, sizeof(h));
    h.bytes[0] = 0x12;
    h.bytes[1] = 0x34;
    g_assert_cmpuint(dp_partition_bucket(&h), ==, 0x1234);
    memset(&h, 0, sizeof(h));
    g_assert_cmpuint(dp_partition_bucket(&h), ==, 0);
    h.bytes[0] = 0xff;
    h.bytes[1] = 0xff;
    g_assert_cmpuint(dp_partition_bucket(&h), ==, DP_BUCKETS - 1);
}

/* Every daemon must compute the same owners: pin a few, computed
 * independently (Python) from the definition of mix64 documented in
 * dp-partition.c. The ids are sorted already, so member numbers are
 * input positions. */
static void
test_known_owners(void)
{
    DpNodeId ids[3];
    g_autoptr(DpPartition) p = NULL;
    VcPageHash h;
    guint owners[8];
    static const guint expected[8] = {1, 0, 2, 2, 0, 2, 1, 2};

    for (guint i = 0; i < 3; i++) {
        for (guint j = 0; j < DP_NODE_ID_LEN; j++) {
            ids[i].bytes[j] = (guint8)(i * 16 + j);
        }
    }
    p = dp_partition_new(ids, 3);
    for (guint b = 0; b < 8; b++) {
        bucket_hash(b * 8191, &h);
        owners[b] = dp_partition_owner(p, &h);
    }
    for (guint b = 0; b < 8; b++) {
        g_assert_cmpuint(owners[b], ==, expected[b]);
    }
}

static void
check_balance(guint n)
{
    g_autofree DpNodeId *ids = g_new(DpNodeId, n);
    g_autoptr(DpPartition) p = NULL;
    g_autofree guint *counts = g_new0(guint, n);
    double mean = (double)DP_BUCKETS / n;
    guint total = 0;
    VcPageHash h;

    random_ids(ids, n);
    p = dp_partition_new(ids, n);
    g_assert_cmpuint(dp_partition_n_members(p), ==, n);

    for (guint b = 0; b < DP_BUCKETS; b++) {
        guint o;

        bucket_hash(b, &h);
        o = dp_partition_owner(p, &h);
        g_assert_cmpuint(o, <, n);
        g_assert_true(dp_partition_owner_id(p, &h) ==
                      dp_partition_member(p, o));
        counts[o]++;
    }
    for (guint i = 0; i < n; i++) {
        g_assert_cmpuint(counts[i], ==, dp_partition_bucket_count(p, i));
        g_assert_cmpfloat(counts[i], >=, mean * 0.9);
        g_assert_cmpfloat(counts[i], <=, mean * 1.1);
        total += counts[i];
    }
    g_assert_cmpuint(total, ==, DP_BUCKETS);
}

static void
test_balance_4(void)
{
    check_balance(4);
}

static void
test_balance_8(void)
{
    check_balance(8);
}

static void
test_balance_16(void)
{
    check_balance(16);
}

static void
test_join(void)
{
    DpNodeId ids[9];
    g_autoptr(DpPartition) before = NULL;
    g_autoptr(DpPartition) after = NULL;
    guint moved = 0;
    guint newcomer;
    double frac;
    VcPageHash h;

    random_ids(ids, 9);
    before = dp_partition_new(ids, 8);
    after = dp_partition_new(ids, 9);
    newcomer = member_index(after, &ids[8]);

    for (guint b = 0; b < DP_BUCKETS; b++) {
        const DpNodeId *o1, *o2;

        bucket_hash(b, &h);
        o1 = dp_partition_owner_id(before, &h);
        o2 = dp_partition_owner_id(after, &h);
        if (memcmp(o1, o2, sizeof(*o1)) != 0) {
            /* Only the newcomer gains buckets. */
            g_assert_cmpuint(dp_partition_owner(after, &h), ==, newcomer);
            moved++;
        } else {
            g_assert_cmpuint(dp_partition_owner(after, &h), !=, newcomer);
        }
    }
    g_assert_cmpuint(moved, ==, dp_partition_bucket_count(after, newcomer));
    frac = (double)moved / DP_BUCKETS;
    g_assert_cmpfloat(frac, >=, 0.08);
    g_assert_cmpfloat(frac, <=, 0.15);
}

static void
test_leave(void)
{
    DpNodeId ids[8];
    DpNodeId rest[7];
    g_autoptr(DpPartition) before = NULL;
    g_autoptr(DpPartition) after = NULL;
    const guint gone = 3;
    guint moved = 0;
    VcPageHash h;

    random_ids(ids, 8);
    for (guint i = 0, j = 0; i < 8; i++) {
        if (i != gone) {
            rest[j++] = ids[i];
        }
    }
    before = dp_partition_new(ids, 8);
    after = dp_partition_new(rest, 7);

    for (guint b = 0; b < DP_BUCKETS; b++) {
        const DpNodeId *o1, *o2;

        bucket_hash(b, &h);
        o1 = dp_partition_owner_id(before, &h);
        o2 = dp_partition_owner_id(after, &h);
        g_assert_true(memcmp(o2, &ids[gone], sizeof(*o2)) != 0);
        if (memcmp(o1, o2, sizeof(*o1)) != 0) {
            /* Only the leaver's buckets move. */
            g_assert_true(memcmp(o1, &ids[gone], sizeof(*o1)) == 0);
            moved++;
        } else {
            g_assert_true(memcmp(o1, &ids[gone], sizeof(*o1)) != 0);
        }
    }
    g_assert_cmpuint(moved, ==,
                     dp_partition_bucket_count(before,
                                               member_index(before,
                                                            &ids[gone])));
}

static void
test_order_and_duplicates(void)
{
    DpNodeId ids[10];
    DpNodeId shuffled[13];
    g_autoptr(DpPartition) a = NULL;
    g_autoptr(DpPartition) b = NULL;
    VcPageHash h;

    random_ids(ids, 10);
    /* A permutation plus three duplicates. */
    for (guint i = 0; i < 10; i++) {
        shuffled[i] = ids[(i * 7 + 3) % 10];
    }
    shuffled[10] = ids[0];
    shuffled[11] = ids[5];
    shuffled[12] = ids[0];

    a = dp_partition_new(ids, 10);
    b = dp_partition_new(shuffled, 13);
    g_assert_cmpuint(dp_partition_n_members(b), ==, 10);
    for (guint i = 0; i < 10; i++) {
        g_assert_cmpmem(dp_partition_member(a, i), sizeof(DpNodeId),
                        dp_partition_member(b, i), sizeof(DpNodeId));
        if (i > 0) {
            g_assert_cmpint(memcmp(dp_partition_member(a, i - 1),
                                   dp_partition_member(a, i),
                                   sizeof(DpNodeId)), <, 0);
        }
    }
    for (guint bucket = 0; bucket < DP_BUCKETS; bucket++) {
        bucket_hash(bucket, &h);
        g_assert_cmpuint(dp_partition_owner(a, &h), ==,
                         dp_partition_owner(b, &h));
    }
}

static void
test_empty_and_single(void)
{
    g_autoptr(DpPartition) empty = dp_partition_new(NULL, 0);
    g_autoptr(DpPartition) one = NULL;
    DpNodeId id[2];
    VcPageHash h;

    g_assert_cmpuint(dp_partition_n_members(empty), ==, 0);
    bucket_hash(77, &h);
    g_assert_cmpuint(dp_partition_owner(empty, &h), ==, G_MAXUINT);
    g_assert_null(dp_partition_owner_id(empty, &h));

    random_ids(id, 1);
    id[1] = id[0];
    one = dp_partition_new(id, 2);
    g_assert_cmpuint(dp_partition_n_members(one), ==, 1);
    g_assert_cmpuint(dp_partition_bucket_count(one, 0), ==, DP_BUCKETS);
    for (guint b = 0; b < DP_BUCKETS; b += 97) {
        bucket_hash(b, &h);
        g_assert_cmpuint(dp_partition_owner(one, &h), ==, 0);
        g_assert_cmpmem(dp_partition_owner_id(one, &h), sizeof(DpNodeId),
                        &id[0], sizeof(DpNodeId));
    }
    dp_partition_free(NULL);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/partition/bucket", test_bucket);
    g_test_add_func("/partition/known-owners", test_known_owners);
    g_test_add_func("/partition/balance-4", test_balance_4);
    g_test_add_func("/partition/balance-8", test_balance_8);
    g_test_add_func("/partition/balance-16", test_balance_16);
    g_test_add_func("/partition/join", test_join);
    g_test_add_func("/partition/leave", test_leave);
    g_test_add_func("/partition/order-duplicates", test_order_and_duplicates);
    g_test_add_func("/partition/empty-single", test_empty_and_single);
    return g_test_run();
}
