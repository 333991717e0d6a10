#include "dp-partition.h"

#include <stdlib.h>
#include <string.h>

/* The owner table stores member numbers as guint16. */
#define MAX_MEMBERS 65536

struct DpPartition {
    guint n;
    DpNodeId *members;  /* sorted by memcmp, no duplicates */
    guint16 *owner;     /* DP_BUCKETS member numbers */
    guint *counts;      /* buckets owned, per member */
};

/* The splitmix64 finaliser (Steele, Lea, Flood 2014): a bijection of
 * 64-bit words with full avalanche. */
static inline guint64
fmix64(guint64 z)
{
    z = (z ^ (z >> 30)) * G_GUINT64_CONSTANT(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * G_GUINT64_CONSTANT(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static guint64
read_le64(const guint8 *p)
{
    guint64 v = 0;

    for (guint i = 0; i < 8; i++) {
        v |= (guint64)p[i] << (8 * i);
    }
    return v;
}

/*
 * The rendezvous score of a member for a bucket, as docs/protocols.md
 * refers to it. Every member must compute exactly this:
 *
 *   lo = id bytes 0..7 read as a little-endian u64
 *   hi = id bytes 8..15 read as a little-endian u64
 *   mix64(bucket, id) = fmix64(fmix64(lo ^ (bucket * 0x9e3779b97f4a7c15))
 *                              ^ hi)
 *
 * with fmix64 the splitmix64 finaliser above and all arithmetic modulo
 * 2^64. The bucket is the first two hash bytes, big-endian (0..65535).
 * The highest score wins; on an exact tie the member that sorts first
 * (memcmp of the ids) wins.
 */
static guint64
mix64(guint bucket, guint64 lo, guint64 hi)
{
    guint64 b = (guint64)bucket * G_GUINT64_CONSTANT(0x9e3779b97f4a7c15);

    return fmix64(fmix64(lo ^ b) ^ hi);
}

static int
node_id_cmp(const void *a, const void *b)
{
    return memcmp(a, b, DP_NODE_ID_LEN);
}

DpPartition *
dp_partition_new(const DpNodeId *members, guint n)
{
    g_return_val_if_fail(n == 0 || members != NULL, NULL);
    g_return_val_if_fail(n <= MAX_MEMBERS, NULL);

    DpPartition *p = g_new0(DpPartition, 1);
    g_autofree guint64 *lo = NULL;
    g_autofree guint64 *hi = NULL;
    guint m = 0;

    p->members = g_new(DpNodeId, MAX(n, 1));
    if (n > 0) {
        memcpy(p->members, members, n * sizeof(DpNodeId));
        qsort(p->members, n, sizeof(DpNodeId), node_id_cmp);
    }
    for (guint i = 0; i < n; i++) {
        if (m == 0 || node_id_cmp(&p->members[m - 1], &p->members[i]) != 0) {
            p->members[m++] = p->members[i];
        }
    }
    p->n = m;
    p->counts = g_new0(guint, MAX(m, 1));
    p->owner = g_new0(guint16, DP_BUCKETS);
    if (m == 0) {
        return p;
    }

    lo = g_new(guint64, m);
    hi = g_new(guint64, m);
    for (guint i = 0; i < m; i++) {
        lo[i] = read_le64(p->members[i].bytes);
        hi[i] = read_le64(p->members[i].bytes + 8);
    }
    for (guint b = 0; b < DP_BUCKETS; b++) {
        guint best = 0;
        guint64 best_score = mix64(b, lo[0], hi[0]);

        for (guint i = 1; i < m; i++) {
            guint64 score = mix64(b, lo[i], hi[i]);

            if (score > best_score) {
                best_score = score;
                best = i;
            }
        }
        p->owner[b] = (guint16)best;
        p->counts[best]++;
    }
    return p;
}

void
dp_partition_free(DpPartition *p)
{
    if (!p) {
        return;
    }
    g_free(p->members);
    g_free(p->owner);
    g_free(p->counts);
    g_free(p);
}

guint
dp_partition_n_members(const DpPartition *p)
{
    return p->n;
}

const DpNodeId *
dp_partition_member(const DpPartition *p, guint i)
{
    g_return_val_if_fail(i < p->n, NULL);
    return &p->members[i];
}

guint
dp_partition_bucket(const VcPageHash *h)
{
    return ((guint)h->bytes[0] << 8) | h->bytes[1];
}

guint
dp_partition_owner(const DpPartition *p, const VcPageHash *h)
{
    if (p->n == 0) {
        return G_MAXUINT;
    }
    return p->owner[dp_partition_bucket(h)];
}

const DpNodeId *
dp_partition_owner_id(const DpPartition *p, const VcPageHash *h)
{
    if (p->n == 0) {
        return NULL;
    }
    return &p->members[p->owner[dp_partition_bucket(h)]];
}

guint
dp_partition_bucket_count(const DpPartition *p, guint i)
{
    g_return_val_if_fail(i < p->n, 0);
    return p->counts[i];
}
