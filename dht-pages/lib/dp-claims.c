#include "dp-claims.h"

#include <string.h>

/*
 * One entry per claimed hash: who holds the claim (the ask that made it,
 * by serial, so that a hash twice in one ask is not waited for by that
 * ask), until when, whether it was fulfilled and where, and the items of
 * asks waiting for it, oldest first. An entry lives until its deadline
 * has passed and nobody waits on it, so the table holds at most the
 * hashes claimed within one claim time.
 */
typedef struct {
    VcPageHash hash;
    guint64 serial;   /* of the ask holding the claim */
    DpNodeId claimant; /* its asker */
    gint64 deadline;  /* the claim lapses, or a fulfilled one is dropped */
    gint64 claim_us;
    gboolean held;
    DpNodeId holder;
    GQueue waiters;   /* AskItem *, oldest first */
} ClaimEntry;

G_STATIC_ASSERT(G_STRUCT_OFFSET(ClaimEntry, hash) == 0);

typedef struct {
    DpClaimAsk *ask;
    guint8 state;
    DpNodeId holder;
    ClaimEntry *entry; /* while waiting */
    GList *link;       /* in entry->waiters, while waiting */
} AskItem;

struct DpClaimAsk {
    DpNodeId asker;
    guint64 serial;
    gint64 claim_us;  /* of the claims it gets */
    gint64 deadline;  /* of its wait */
    guint n;
    guint waiting;
    AskItem items[];
};

/* Asks between opportunistic sweeps grow with the table, so a sweep
 * costs O(1) amortised. */
#define MIN_SWEEP 64

struct DpClaims {
    GMutex lock;
    GCond changed;
    GHashTable *entries; /* set of ClaimEntry *, keyed by hash */
    guint64 next_serial;
    guint sweep_at;
};

static void
entry_free(gpointer p)
{
    ClaimEntry *e = p;

    g_queue_clear(&e->waiters);
    g_free(e);
}

DpClaims *
dp_claims_new(void)
{
    DpClaims *c = g_new0(DpClaims, 1);

    g_mutex_init(&c->lock);
    g_cond_init(&c->changed);
    c->entries = g_hash_table_new_full(vc_page_hash_hash,
                                       vc_page_hash_equal_func, entry_free,
                                       NULL);
    c->next_serial = 1;
    c->sweep_at = MIN_SWEEP;
    return c;
}

void
dp_claims_free(DpClaims *c)
{
    if (!c) {
        return;
    }
    g_hash_table_unref(c->entries);
    g_cond_clear(&c->changed);
    g_mutex_clear(&c->lock);
    g_free(c);
}

static void
item_finish(AskItem *it, guint8 state, const DpNodeId *holder)
{
    it->state = state;
    if (holder) {
        it->holder = *holder;
    }
    it->entry = NULL;
    it->link = NULL;
    it->ask->waiting--;
}

static void
entry_claim(ClaimEntry *e, const DpClaimAsk *a, gint64 now_us)
{
    e->serial = a->serial;
    e->claimant = a->asker;
    e->deadline = now_us + a->claim_us;
    e->claim_us = a->claim_us;
}

/* Under the lock, @e lapsed unfulfilled: its claim goes to the oldest
 * waiter that still waits; waiters past their own deadline give up. */
static void
entry_hand_over(DpClaims *c, ClaimEntry *e, gint64 now_us)
{
    AskItem *it;

    while ((it = g_queue_pop_head(&e->waiters))) {
        if (it->ask->deadline <= now_us) {
            item_finish(it, DP_CLAIM_UNCLAIMED, NULL);
            continue;
        }
        item_finish(it, DP_CLAIM_FETCH, NULL);
        entry_claim(e, it->ask, now_us);
        /* The same hash twice in that ask: it waits no more on itself. */
        for (GList *l = e->waiters.head, *next; l; l = next) {
            AskItem *same = l->data;

            next = l->next;
            if (same->ask == it->ask) {
                g_queue_delete_link(&e->waiters, l);
                item_finish(same, DP_CLAIM_FETCH, NULL);
            }
        }
        break;
    }
    g_cond_broadcast(&c->changed);
}

static gboolean
entry_lapsed(const ClaimEntry *e, gint64 now_us)
{
    return !e->held && e->deadline <= now_us;
}

static guint
expire_locked(DpClaims *c, gint64 now_us)
{
    GHashTableIter iter;
    gpointer key;
    guint n = 0;

    g_hash_table_iter_init(&iter, c->entries);
    while (g_hash_table_iter_next(&iter, &key, NULL)) {
        ClaimEntry *e = key;

        if (e->deadline <= now_us && g_queue_is_empty(&e->waiters)) {
            g_hash_table_iter_remove(&iter);
            n++;
        }
    }
    return n;
}

DpClaimAsk *
dp_claims_ask(DpClaims *c, const DpNodeId *asker, const VcPageHash *hashes,
              guint n, gint64 wait_us, gint64 claim_us, gint64 now_us)
{
    G_GNUC_UNUSED g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&c->lock);
    DpClaimAsk *a;

    g_return_val_if_fail(wait_us > 0 && claim_us > 0, NULL);

    a = g_malloc0(sizeof(DpClaimAsk) + (gsize)n * sizeof(AskItem));
    a->asker = *asker;
    a->serial = c->next_serial++;
    a->claim_us = claim_us;
    a->deadline = now_us + wait_us;
    a->n = n;
    if (g_hash_table_size(c->entries) >= c->sweep_at) {
        expire_locked(c, now_us);
        c->sweep_at = MAX(MIN_SWEEP, 2 * g_hash_table_size(c->entries));
    }
    for (guint i = 0; i < n; i++) {
        AskItem *it = &a->items[i];
        ClaimEntry *e = g_hash_table_lookup(c->entries, &hashes[i]);

        it->ask = a;
        if (e && entry_lapsed(e, now_us)) {
            entry_hand_over(c, e, now_us);
        }
        if (!e) {
            e = g_new0(ClaimEntry, 1);
            e->hash = hashes[i];
            g_queue_init(&e->waiters);
            g_hash_table_add(c->entries, e);
            entry_claim(e, a, now_us);
            it->state = DP_CLAIM_FETCH;
        } else if (e->held) {
            it->state = DP_CLAIM_HELD;
            it->holder = e->holder;
        } else if (e->serial == a->serial || entry_lapsed(e, now_us)) {
            /* Ours already (a hash twice in this ask), or lapsed with
             * nobody left waiting. */
            entry_claim(e, a, now_us);
            it->state = DP_CLAIM_FETCH;
        } else {
            it->state = DP_CLAIM_WAITING;
            it->entry = e;
            g_queue_push_tail(&e->waiters, it);
            it->link = e->waiters.tail;
            a->waiting++;
        }
    }
    return a;
}

static gboolean
settle_locked(DpClaims *c, DpClaimAsk *a, gint64 now_us, gint64 *wake_us)
{
    gint64 wake = a->deadline;

    for (guint i = 0; i < a->n && a->waiting > 0; i++) {
        AskItem *it = &a->items[i];
        ClaimEntry *e = it->entry;

        if (it->state != DP_CLAIM_WAITING) {
            continue;
        }
        if (entry_lapsed(e, now_us)) {
            entry_hand_over(c, e, now_us);
            if (it->state != DP_CLAIM_WAITING) {
                continue;
            }
        }
        if (a->deadline <= now_us) {
            g_queue_delete_link(&e->waiters, it->link);
            item_finish(it, DP_CLAIM_UNCLAIMED, NULL);
            continue;
        }
        wake = MIN(wake, e->deadline);
    }
    if (wake_us) {
        *wake_us = wake;
    }
    return a->waiting == 0;
}

gboolean
dp_claims_ask_settle(DpClaims *c, DpClaimAsk *a, gint64 now_us,
                     gint64 *wake_us)
{
    G_GNUC_UNUSED g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&c->lock);

    return settle_locked(c, a, now_us, wake_us);
}

void
dp_claims_ask_wait(DpClaims *c, DpClaimAsk *a)
{
    G_GNUC_UNUSED g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&c->lock);
    gint64 wake;

    while (!settle_locked(c, a, g_get_monotonic_time(), &wake)) {
        g_cond_wait_until(&c->changed, &c->lock, wake);
    }
}

guint8
dp_claims_ask_state(const DpClaimAsk *a, guint i, DpNodeId *holder)
{
    g_return_val_if_fail(i < a->n, DP_CLAIM_UNCLAIMED);

    if (a->items[i].state == DP_CLAIM_HELD && holder) {
        *holder = a->items[i].holder;
    }
    return a->items[i].state;
}

void
dp_claims_ask_free(DpClaims *c, DpClaimAsk *a)
{
    if (!a) {
        return;
    }
    g_mutex_lock(&c->lock);
    for (guint i = 0; i < a->n && a->waiting > 0; i++) {
        AskItem *it = &a->items[i];

        if (it->state == DP_CLAIM_WAITING) {
            g_queue_delete_link(&it->entry->waiters, it->link);
            item_finish(it, DP_CLAIM_UNCLAIMED, NULL);
        }
    }
    g_mutex_unlock(&c->lock);
    g_free(a);
}

gboolean
dp_claims_done(DpClaims *c, const DpNodeId *node, const VcPageHash *h,
               gint64 now_us)
{
    G_GNUC_UNUSED g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&c->lock);
    ClaimEntry *e = g_hash_table_lookup(c->entries, h);
    AskItem *it;

    if (!e) {
        return FALSE;
    }
    if (e->held) {
        return TRUE; /* the first holder stays */
    }
    e->held = TRUE;
    e->holder = *node;
    /* Later askers are told where it is for another claim time; then the
     * index answers for it. */
    e->deadline = MAX(e->deadline, now_us + e->claim_us);
    while ((it = g_queue_pop_head(&e->waiters))) {
        item_finish(it, DP_CLAIM_HELD, node);
    }
    g_cond_broadcast(&c->changed);
    return TRUE;
}

gboolean
dp_claims_drop(DpClaims *c, const DpNodeId *node, const VcPageHash *h,
               gint64 now_us)
{
    G_GNUC_UNUSED g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&c->lock);
    ClaimEntry *e = g_hash_table_lookup(c->entries, h);

    if (!e || e->held || e->deadline <= now_us ||
        memcmp(&e->claimant, node, sizeof(*node)) != 0) {
        return FALSE;
    }
    /* Lapsed now: the oldest waiter fetches it, or the next asker. */
    e->deadline = now_us;
    entry_hand_over(c, e, now_us);
    return TRUE;
}

guint
dp_claims_expire(DpClaims *c, gint64 now_us)
{
    G_GNUC_UNUSED g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&c->lock);

    return expire_locked(c, now_us);
}

guint
dp_claims_size(DpClaims *c)
{
    G_GNUC_UNUSED g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&c->lock);

    return g_hash_table_size(c->entries);
}
