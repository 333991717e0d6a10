#include "dp-index.h"

#include <string.h>

/*
 * An open-addressing table (linear probing, backward-shift deletion, no
 * tombstones) of 48-byte entries: the full hash and up to DP_MAX_HOLDERS
 * holders as 16-bit numbers into an interned table of node ids. A site
 * has few members, so interning costs nothing and keeps an entry to
 * 48 bytes instead of 160. A parallel array of 32-bit tags (0 for an
 * empty slot) is what probing reads: a miss costs about one cache line
 * instead of several entries. About 52 bytes per slot, at most 3/4 full.
 *
 * Page hashes are uniformly random, but a guest chooses its page contents
 * and could craft pages whose hashes pile up in one probe chain; the first
 * 8 bytes are therefore mixed with a per-index random seed.
 */

#define MIN_CAPACITY 64
/* Holder number 0 marks an unused holder slot (and an unused entry). */
#define MAX_NODES G_MAXUINT16

typedef struct {
    guint64 key[4];                      /* the hash bytes */
    guint16 holders[DP_MAX_HOLDERS];     /* node number + 1, 0 ends it */
} IndexEntry;

G_STATIC_ASSERT(sizeof(IndexEntry) == 48);
G_STATIC_ASSERT(sizeof(VcPageHash) == sizeof(((IndexEntry *)0)->key));

struct DpIndex {
    IndexEntry *slots;
    guint32 *tags;       /* 0: empty slot, else tag_of() of its entry */
    gsize mask;          /* capacity - 1, capacity a power of two */
    gsize count;
    guint64 seed;

    /* Interned holders; number n is nodes[n - 1]. */
    GHashTable *node_numbers;   /* DpNodeId * (owned) -> number */
    DpNodeId *nodes;
    guint32 *node_refs;         /* entries naming each node */
    guint n_nodes;              /* numbers handed out so far */
    guint nodes_alloc;
    GArray *free_numbers;       /* guint16 numbers whose refs fell to 0 */
};

static inline guint64
fmix64(guint64 z)
{
    z = (z ^ (z >> 30)) * G_GUINT64_CONSTANT(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * G_GUINT64_CONSTANT(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static inline guint64
mixed(const DpIndex *index, guint64 key0)
{
    return fmix64(key0 ^ index->seed);
}

/* Capacities stay far below 2^32, so home and tag use different bits. */
static inline gsize
home_of(const DpIndex *index, guint64 m)
{
    return (gsize)m & index->mask;
}

static inline guint32
tag_of(guint64 m)
{
    return (guint32)(m >> 32) | 1;
}

static inline gboolean
entry_has_holders(const IndexEntry *e)
{
    return e->holders[0] != 0;
}

static guint
node_id_hash(gconstpointer p)
{
    guint64 v;

    memcpy(&v, p, sizeof(v));
    return (guint)(v ^ (v >> 32));
}

static gboolean
node_id_eq(gconstpointer a, gconstpointer b)
{
    return memcmp(a, b, DP_NODE_ID_LEN) == 0;
}

DpIndex *
dp_index_new(void)
{
    DpIndex *index = g_new0(DpIndex, 1);

    index->mask = MIN_CAPACITY - 1;
    index->slots = g_new0(IndexEntry, MIN_CAPACITY);
    index->tags = g_new0(guint32, MIN_CAPACITY);
    index->seed = ((guint64)g_random_int() << 32) | g_random_int();
    index->node_numbers =
        g_hash_table_new_full(node_id_hash, node_id_eq, g_free, NULL);
    index->free_numbers = g_array_new(FALSE, FALSE, sizeof(guint16));
    return index;
}

void
dp_index_free(DpIndex *index)
{
    if (!index) {
        return;
    }
    g_free(index->slots);
    g_free(index->tags);
    g_hash_table_unref(index->node_numbers);
    g_free(index->nodes);
    g_free(index->node_refs);
    g_array_unref(index->free_numbers);
    g_free(index);
}

/* The number of @id, 0 if it is not interned. */
static guint16
node_find(DpIndex *index, const DpNodeId *id)
{
    return (guint16)GPOINTER_TO_UINT(
        g_hash_table_lookup(index->node_numbers, id));
}

/* The number of @id, interning it (with no references) if needed; 0 if
 * all numbers are taken. */
static guint16
node_intern(DpIndex *index, const DpNodeId *id)
{
    guint16 n = node_find(index, id);

    if (n != 0) {
        return n;
    }
    if (index->free_numbers->len > 0) {
        n = g_array_index(index->free_numbers, guint16,
                          index->free_numbers->len - 1);
        g_array_set_size(index->free_numbers, index->free_numbers->len - 1);
    } else if (index->n_nodes < MAX_NODES) {
        if (index->n_nodes == index->nodes_alloc) {
            index->nodes_alloc =
                MIN(MAX(8u, 2 * index->nodes_alloc), (guint)MAX_NODES);
            index->nodes =
                g_renew(DpNodeId, index->nodes, index->nodes_alloc);
            index->node_refs =
                g_renew(guint32, index->node_refs, index->nodes_alloc);
        }
        n = (guint16)++index->n_nodes;
    } else {
        g_debug("index: more than %u holders, ignoring one", MAX_NODES);
        return 0;
    }
    index->nodes[n - 1] = *id;
    index->node_refs[n - 1] = 0;
    g_hash_table_insert(index->node_numbers, g_memdup2(id, sizeof(*id)),
                        GUINT_TO_POINTER(n));
    return n;
}

static void
node_unref(DpIndex *index, guint16 n)
{
    g_assert(index->node_refs[n - 1] > 0);
    if (--index->node_refs[n - 1] == 0) {
        g_hash_table_remove(index->node_numbers, &index->nodes[n - 1]);
        g_array_append_val(index->free_numbers, n);
    }
}

static IndexEntry *
entry_find(DpIndex *index, const guint64 *key)
{
    guint64 m = mixed(index, key[0]);
    guint32 tag = tag_of(m);
    gsize i = home_of(index, m);

    for (;;) {
        guint32 t = index->tags[i];

        if (t == 0) {
            return NULL;
        }
        if (t == tag) {
            IndexEntry *e = &index->slots[i];

            if (e->key[0] == key[0] && e->key[1] == key[1] &&
                e->key[2] == key[2] && e->key[3] == key[3]) {
                return e;
            }
        }
        i = (i + 1) & index->mask;
    }
}

/* Place @e (used) in the table, which has room and does not hold it. */
static void
entry_place(DpIndex *index, const IndexEntry *e)
{
    guint64 m = mixed(index, e->key[0]);
    gsize i = home_of(index, m);

    while (index->tags[i] != 0) {
        i = (i + 1) & index->mask;
    }
    index->slots[i] = *e;
    index->tags[i] = tag_of(m);
}

static void
table_resize(DpIndex *index, gsize capacity)
{
    g_autofree IndexEntry *old = g_steal_pointer(&index->slots);
    g_autofree guint32 *old_tags = g_steal_pointer(&index->tags);
    gsize old_capacity = index->mask + 1;

    index->slots = g_new(IndexEntry, capacity);
    index->tags = g_new0(guint32, capacity);
    index->mask = capacity - 1;
    for (gsize i = 0; i < old_capacity; i++) {
        if (old_tags[i] != 0) {
            entry_place(index, &old[i]);
        }
    }
}

/* Load factor at most 3/4. */
static gsize
capacity_for(gsize count)
{
    gsize capacity = MIN_CAPACITY;

    while (count > capacity / 4 * 3) {
        capacity *= 2;
    }
    return capacity;
}

/* After bulk removals, give memory back once the table is mostly empty. */
static void
table_maybe_shrink(DpIndex *index)
{
    gsize capacity = index->mask + 1;

    if (capacity > MIN_CAPACITY && index->count < capacity / 8) {
        table_resize(index, capacity_for(index->count * 2));
    }
}

/* Empty slot @i, shifting back the entries of its probe chain. */
static void
entry_delete(DpIndex *index, gsize i)
{
    gsize j = i;

    for (;;) {
        gsize home;

        j = (j + 1) & index->mask;
        if (index->tags[j] == 0) {
            break;
        }
        /* The entry at j may fill the hole if the hole lies between its
         * home and j. */
        home = home_of(index, mixed(index, index->slots[j].key[0]));
        if (((j - home) & index->mask) >= ((j - i) & index->mask)) {
            index->slots[i] = index->slots[j];
            index->tags[i] = index->tags[j];
            i = j;
        }
    }
    index->tags[i] = 0;
    index->count--;
}

static guint
entry_n_holders(const IndexEntry *e)
{
    guint n = 0;

    while (n < DP_MAX_HOLDERS && e->holders[n] != 0) {
        n++;
    }
    return n;
}

/* Remove holder @n from @e; TRUE if it was there. */
static gboolean
entry_remove_holder(DpIndex *index, IndexEntry *e, guint16 n)
{
    guint count = entry_n_holders(e);

    for (guint k = 0; k < count; k++) {
        if (e->holders[k] == n) {
            memmove(&e->holders[k], &e->holders[k + 1],
                    (count - k - 1) * sizeof(guint16));
            e->holders[count - 1] = 0;
            node_unref(index, n);
            return TRUE;
        }
    }
    return FALSE;
}

static void
key_of(const VcPageHash *h, guint64 *key)
{
    memcpy(key, h->bytes, VC_PAGE_HASH_LEN);
}

void
dp_index_add(DpIndex *index, const VcPageHash *h, const DpNodeId *holder)
{
    guint64 key[4];
    IndexEntry *e;
    guint16 n;
    guint count;
    guint k;

    n = node_intern(index, holder);
    if (n == 0) {
        return;
    }
    key_of(h, key);
    e = entry_find(index, key);
    if (!e) {
        IndexEntry fresh = { 0 };

        if (index->count + 1 > (index->mask + 1) / 4 * 3) {
            table_resize(index, (index->mask + 1) * 2);
        }
        memcpy(fresh.key, key, sizeof(fresh.key));
        fresh.holders[0] = n;
        entry_place(index, &fresh);
        index->count++;
        index->node_refs[n - 1]++;
        return;
    }

    count = entry_n_holders(e);
    for (k = 0; k < count && e->holders[k] != n; k++) {
    }
    if (k == count) {
        /* A new holder: the oldest goes if the entry is full. */
        if (count == DP_MAX_HOLDERS) {
            node_unref(index, e->holders[DP_MAX_HOLDERS - 1]);
            k = DP_MAX_HOLDERS - 1;
        }
        index->node_refs[n - 1]++;
    }
    memmove(&e->holders[1], &e->holders[0], k * sizeof(guint16));
    e->holders[0] = n;
}

void
dp_index_remove(DpIndex *index, const VcPageHash *h, const DpNodeId *holder)
{
    guint16 n = node_find(index, holder);
    guint64 key[4];
    IndexEntry *e;

    if (n == 0) {
        return;
    }
    key_of(h, key);
    e = entry_find(index, key);
    if (e && entry_remove_holder(index, e, n) && !entry_has_holders(e)) {
        entry_delete(index, (gsize)(e - index->slots));
    }
}

guint
dp_index_lookup(DpIndex *index, const VcPageHash *h, DpNodeId *holders)
{
    guint64 key[4];
    const IndexEntry *e;
    guint k;

    key_of(h, key);
    e = entry_find(index, key);
    if (!e) {
        return 0;
    }
    for (k = 0; k < DP_MAX_HOLDERS && e->holders[k] != 0; k++) {
        holders[k] = index->nodes[e->holders[k] - 1];
    }
    return k;
}

gsize
dp_index_drop_holder(DpIndex *index, const DpNodeId *holder)
{
    guint16 n = node_find(index, holder);
    gsize changed = 0;
    gsize i = 0;

    if (n == 0) {
        return 0;
    }
    /* A deletion at i shifts a later entry into i, so look at i again.
     * Entries that wrap around from the start may be seen twice; the
     * holder is gone from them by then, so nothing is counted twice. */
    while (i <= index->mask && index->node_refs[n - 1] > 0) {
        IndexEntry *e = &index->slots[i];

        if (index->tags[i] != 0 && entry_remove_holder(index, e, n)) {
            changed++;
            if (!entry_has_holders(e)) {
                entry_delete(index, i);
                continue;
            }
        }
        i++;
    }
    table_maybe_shrink(index);
    return changed;
}

gsize
dp_index_retain(DpIndex *index,
                gboolean (*keep)(const VcPageHash *h, gpointer data),
                gpointer data)
{
    gsize removed = 0;
    gsize i = 0;

    /* As in dp_index_drop_holder: recheck i after a deletion. An entry
     * that wraps around is asked about twice, and kept both times. */
    while (i <= index->mask) {
        IndexEntry *e = &index->slots[i];
        VcPageHash h;

        if (index->tags[i] == 0) {
            i++;
            continue;
        }
        memcpy(h.bytes, e->key, sizeof(h.bytes));
        if (!keep(&h, data)) {
            guint count = entry_n_holders(e);

            for (guint k = 0; k < count; k++) {
                node_unref(index, e->holders[k]);
            }
            entry_delete(index, i);
            removed++;
            continue;
        }
        i++;
    }
    table_maybe_shrink(index);
    return removed;
}

gsize
dp_index_size(DpIndex *index)
{
    return index->count;
}
