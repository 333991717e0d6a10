#include "dp-coalesce.h"

#include <string.h>

/*
 * One entry per hash with a reservation. A waiter names the reservation
 * it waits for by its deadline (what dp_coalescer_claim told it), so an
 * entry remembers the deadline of the last reservation that was
 * published: a waiter that arrives after the PUBLISH is still served.
 * Entries live until their deadline has passed and nobody waits on them,
 * so the table holds at most the hashes missed within one hold time.
 */
typedef struct {
    VcPageHash hash;
    gint64 deadline;            /* of the current reservation */
    gboolean published;         /* the current reservation was published */
    gint64 published_deadline;  /* deadline of the last one published */
    guint waiters;
    GCond cond;
} CoalesceEntry;

G_STATIC_ASSERT(G_STRUCT_OFFSET(CoalesceEntry, hash) == 0);

/* Claims between opportunistic sweeps grow with the table, so a sweep
 * costs O(1) amortised. */
#define MIN_SWEEP 64

struct DpCoalescer {
    GMutex lock;
    GHashTable *entries;   /* set of CoalesceEntry *, keyed by hash */
    gint64 hold_us;
    guint sweep_at;        /* table size that triggers a sweep in claim */
    guint64 waits;
    guint64 served;
};

static void
entry_free(gpointer p)
{
    CoalesceEntry *e = p;

    g_cond_clear(&e->cond);
    g_free(e);
}

DpCoalescer *
dp_coalescer_new(gint64 hold_us)
{
    DpCoalescer *c;

    g_return_val_if_fail(hold_us > 0, NULL);

    c = g_new0(DpCoalescer, 1);
    g_mutex_init(&c->lock);
    c->entries = g_hash_table_new_full(vc_page_hash_hash, vc_page_hash_equal_func,
                                       entry_free, NULL);
    c->hold_us = hold_us;
    c->sweep_at = MIN_SWEEP;
    return c;
}

/* No thread may be waiting any more. */
void
dp_coalescer_free(DpCoalescer *c)
{
    if (!c) {
        return;
    }
    g_hash_table_unref(c->entries);
    g_mutex_clear(&c->lock);
    g_free(c);
}

static gboolean
entry_lapsed(const CoalesceEntry *e, gint64 now_us)
{
    return e->waiters == 0 && e->deadline <= now_us;
}

static guint
expire_locked(DpCoalescer *c, gint64 now_us)
{
    GHashTableIter iter;
    gpointer key;
    guint n = 0;

    g_hash_table_iter_init(&iter, c->entries);
    while (g_hash_table_iter_next(&iter, &key, NULL)) {
        if (entry_lapsed(key, now_us)) {
            g_hash_table_iter_remove(&iter);
            n++;
        }
    }
    return n;
}

gboolean
dp_coalescer_claim(DpCoalescer *c, const VcPageHash *h, gint64 now_us,
                   gint64 *deadline_us)
{
    G_GNUC_UNUSED g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&c->lock);
    CoalesceEntry *e = g_hash_table_lookup(c->entries, h);

    if (e && !e->published && e->deadline > now_us) {
        *deadline_us = e->deadline;
        return FALSE;
    }
    if (!e) {
        if (g_hash_table_size(c->entries) >= c->sweep_at) {
            expire_locked(c, now_us);
            c->sweep_at = MAX(MIN_SWEEP, 2 * g_hash_table_size(c->entries));
        }
        e = g_new0(CoalesceEntry, 1);
        e->hash = *h;
        e->published_deadline = G_MININT64;
        g_cond_init(&e->cond);
        g_hash_table_add(c->entries, e);
    }
    /* A new reservation. Waiters of a lapsed one time out by themselves:
     * their deadline has passed. */
    e->deadline = now_us + c->hold_us;
    e->published = FALSE;
    *deadline_us = e->deadline;
    return TRUE;
}

gboolean
dp_coalescer_wait(DpCoalescer *c, const VcPageHash *h, gint64 deadline_us)
{
    G_GNUC_UNUSED g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&c->lock);
    CoalesceEntry *e = g_hash_table_lookup(c->entries, h);
    gboolean served = FALSE;

    c->waits++;
    if (!e) {
        /* Expired: its deadline, hence ours, has passed. */
        return FALSE;
    }
    e->waiters++;
    for (;;) {
        if (e->published_deadline == deadline_us) {
            served = TRUE;
            break;
        }
        if (e->deadline != deadline_us) {
            /* Replaced by a new reservation without a publish: ours
             * lapsed. */
            break;
        }
        if (!g_cond_wait_until(&e->cond, &c->lock, deadline_us) &&
            g_get_monotonic_time() >= deadline_us) {
            served = e->published_deadline == deadline_us;
            break;
        }
    }
    e->waiters--;
    if (served) {
        c->served++;
    }
    return served;
}

void
dp_coalescer_published(DpCoalescer *c, const VcPageHash *h)
{
    G_GNUC_UNUSED g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&c->lock);
    CoalesceEntry *e = g_hash_table_lookup(c->entries, h);

    if (!e || e->published) {
        return;
    }
    /* Kept until its deadline for waiters that have not arrived yet. */
    e->published = TRUE;
    e->published_deadline = e->deadline;
    g_cond_broadcast(&e->cond);
}

guint
dp_coalescer_expire(DpCoalescer *c, gint64 now_us)
{
    G_GNUC_UNUSED g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&c->lock);

    return expire_locked(c, now_us);
}

guint64
dp_coalescer_waits(DpCoalescer *c)
{
    G_GNUC_UNUSED g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&c->lock);

    return c->waits;
}

guint64
dp_coalescer_served(DpCoalescer *c)
{
    G_GNUC_UNUSED g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&c->lock);

    return c->served;
}
