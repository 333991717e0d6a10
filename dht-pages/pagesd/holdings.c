/*
 * What this node holds, its guests' RAM (ram.c) and its page cache, as
 * the rest of the daemon sees it: the pages it can serve, re-hashed, and
 * the hashes it announces to their owners in the site index.
 */
#include "pagesd.h"

#include <string.h>

#define DISCOVER_INTERVAL_US (2 * G_USEC_PER_SEC)
/* While lookups are served (one came within LOOKUP_RECENT_US), re-passes
 * use at most 1/REPASS_YIELD of a core: the CPU goes to the lookups, a
 * migration waits on them, and pages that changed since are caught when
 * they are served anyway (they are re-hashed then). First passes do not
 * yield: until then the RAM is not in the index at all. */
#define LOOKUP_RECENT_US (200 * 1000)
#define REPASS_YIELD 8

static gboolean
dp_store_has(DpDaemon *d, const VcPageHash *h)
{
    gboolean has;

    g_mutex_lock(&d->lock);
    has = dp_store_contains(d->store, h);
    g_mutex_unlock(&d->lock);
    return has;
}

/* status[i] of a RAM page copied into its slot but not re-hashed yet, and
 * of one that no longer matched: both hold a slot until compaction. */
#define STATUS_UNCHECKED 2
#define STATUS_STALE 3

typedef struct {
    guint i;
    guint slot;
    const guint8 *src;
    gpointer region;
} RamPick;

/* Pages that changed under us: forget them and withdraw them from the
 * index unless the cache still holds them. */
static void
withdraw_stale(DpDaemon *d, const VcPageHash *h)
{
    dp_stat_add(d, stale_ram_pages, 1);
    if (dp_ram_forget(d, h) && !dp_store_has(d, h)) {
        dp_announce(d, DP_MSG_INDEX_DEL, h, 1);
    }
}

guint
dp_local_pages(DpDaemon *d, const VcPageHash *hashes, guint n,
               guint8 *status, guint8 *pages, guint *n_ram)
{
    g_autofree RamPick *picks = g_new(RamPick, n);
    guint slots = 0, n_picks = 0, stale = 0;

    g_mutex_lock(&d->lock);
    for (guint i = 0; i < n; i++) {
        RamPick *p = &picks[n_picks];

        /* Cache pages were verified when stored and are never modified. */
        if (dp_store_get(d->store, &hashes[i],
                         pages + (gsize)slots * VC_PAGE_SIZE)) {
            status[i] = DP_PAGE_HIT;
            slots++;
        } else if ((p->src = dp_ram_find_locked(d, &hashes[i], &p->region))) {
            p->i = i;
            p->slot = slots++;
            status[i] = STATUS_UNCHECKED;
            n_picks++;
        } else {
            status[i] = DP_PAGE_MISS;
        }
    }
    g_mutex_unlock(&d->lock);

    /* Guest memory changes under us: re-hash the copy we serve. */
    for (guint k = 0; k < n_picks; k++) {
        guint8 *page = pages + (gsize)picks[k].slot * VC_PAGE_SIZE;
        VcPageHash check;

        memcpy(page, picks[k].src, VC_PAGE_SIZE);
        vc_page_hash(page, &check);
        if (vc_page_hash_equal(&check, &hashes[picks[k].i])) {
            status[picks[k].i] = DP_PAGE_HIT;
        } else {
            status[picks[k].i] = STATUS_STALE;
            stale++;
        }
    }
    if (n_picks > 0) {
        g_mutex_lock(&d->lock);
        for (guint k = 0; k < n_picks; k++) {
            dp_ram_release_locked(d, picks[k].region);
        }
        g_mutex_unlock(&d->lock);
    }
    *n_ram = n_picks - stale;
    if (stale == 0) {
        return slots;
    }
    /* Close the holes the stale pages leave. */
    for (guint i = 0, from = 0, to = 0; i < n; i++) {
        if (status[i] == STATUS_STALE) {
            withdraw_stale(d, &hashes[i]);
            status[i] = DP_PAGE_MISS;
            from++;
        } else if (status[i] == DP_PAGE_HIT) {
            if (from != to) {
                memmove(pages + (gsize)to * VC_PAGE_SIZE,
                        pages + (gsize)from * VC_PAGE_SIZE, VC_PAGE_SIZE);
            }
            from++;
            to++;
        }
    }
    return slots - stale;
}

static void
collect_store_hash(const VcPageHash *h, gpointer data)
{
    g_array_append_vals(data, h, 1);
}

GArray *
dp_local_hashes(DpDaemon *d)
{
    GArray *out = g_array_new(FALSE, FALSE, sizeof(VcPageHash));

    g_mutex_lock(&d->lock);
    dp_ram_collect_locked(d, out);
    dp_store_foreach(d->store, collect_store_hash, out);
    g_mutex_unlock(&d->lock);
    return out;
}

GHashTable *
dp_node_groups_new(void)
{
    return g_hash_table_new_full(dp_node_id_hash, dp_node_id_equal_func,
                                 g_free, (GDestroyNotify)g_array_unref);
}

void
dp_node_groups_add(GHashTable *groups, const DpNodeId *node,
                   gconstpointer item, guint item_size)
{
    GArray *items = g_hash_table_lookup(groups, node);

    if (!items) {
        items = g_array_new(FALSE, FALSE, item_size);
        g_hash_table_insert(groups, g_memdup2(node, sizeof(*node)), items);
    }
    g_array_append_vals(items, item, 1);
}

void
dp_announce(DpDaemon *d, guint8 type, const VcPageHash *hashes, gsize n)
{
    g_autoptr(GHashTable) by_owner = dp_node_groups_new();
    GHashTableIter it;
    const DpNodeId *owner;
    GArray *batch;

    g_mutex_lock(&d->lock);
    for (gsize i = 0; i < n; i++) {
        const DpNodeId *o = dp_partition_owner_id(d->partition, &hashes[i]);

        if (!o || dp_node_id_equal(o, &d->self)) {
            if (type == DP_MSG_INDEX_ADD) {
                dp_index_add(d->index, &hashes[i], &d->self);
            } else {
                dp_index_remove(d->index, &hashes[i], &d->self);
            }
            continue;
        }
        dp_node_groups_add(by_owner, o, &hashes[i], sizeof(VcPageHash));
    }
    g_mutex_unlock(&d->lock);

    g_hash_table_iter_init(&it, by_owner);
    while (g_hash_table_iter_next(&it, (gpointer *)&owner,
                                  (gpointer *)&batch)) {
        for (guint off = 0; off < batch->len; off += DP_MAX_BATCH) {
            guint cnt = MIN(DP_MAX_BATCH, batch->len - off);
            g_autoptr(GByteArray) req = g_byte_array_new();
            g_autoptr(GBytes) payload = NULL;
            g_autoptr(GError) error = NULL;
            DpMsg reply;

            dp_encode_hashes(req, type, 0,
                             &g_array_index(batch, VcPageHash, off), cnt);
            if (!dp_peer_call(d, owner, req, &reply, &payload, &error)) {
                g_debug("announce to owner failed: %s", error->message);
                break;
            }
        }
    }
}

static gboolean
keep_owned(const VcPageHash *h, gpointer data)
{
    DpDaemon *d = data;
    const DpNodeId *owner = dp_partition_owner_id(d->partition, h);

    return owner && dp_node_id_equal(owner, &d->self);
}

void
dp_holdings_rebalance(DpDaemon *d, guint64 epoch)
{
    g_autoptr(GArray) local = dp_local_hashes(d);
    gsize dropped;

    dp_announce(d, DP_MSG_INDEX_ADD, (VcPageHash *)local->data, local->len);
    g_mutex_lock(&d->lock);
    dropped = dp_index_retain(d->index, keep_owned, d);
    d->announced_epoch = epoch;
    g_cond_broadcast(&d->changed);
    g_mutex_unlock(&d->lock);
    dp_stat_add(d, rebalances, 1);
    g_message("rebalanced for membership epoch %" G_GUINT64_FORMAT
              ": %u hashes announced, %zu index entries handed over",
              epoch, local->len, dropped);
}

/* Withdrawals first: a page that changed to content already indexed
 * elsewhere here is withdrawn and re-added, in that order. */
static void
announce_changes(DpDaemon *d, GArray *added, GArray *withdrawn)
{
    if (withdrawn && withdrawn->len > 0) {
        dp_announce(d, DP_MSG_INDEX_DEL, (VcPageHash *)withdrawn->data,
                    withdrawn->len);
    }
    if (added && added->len > 0) {
        dp_announce(d, DP_MSG_INDEX_ADD, (VcPageHash *)added->data,
                    added->len);
    }
}

/* The scanner: keeps the index in step with local RAM and membership. */
gpointer
dp_scanner_thread(gpointer data)
{
    DpDaemon *d = data;
    gint64 next_discover = 0;
    gint64 budget_start = g_get_monotonic_time();
    guint64 budget_bytes = 0;
    g_autoptr(GArray) added = g_array_new(FALSE, FALSE, sizeof(VcPageHash));
    g_autoptr(GArray) withdrawn = g_array_new(FALSE, FALSE,
                                              sizeof(VcPageHash));

    while (!g_atomic_int_get(&d->stopping)) {
        gint64 now = g_get_monotonic_time(), t0;
        guint64 epoch;
        gsize done;
        gboolean repass = FALSE;

        g_mutex_lock(&d->lock);
        epoch = d->epoch;
        g_mutex_unlock(&d->lock);
        if (epoch != d->announced_epoch) {
            dp_holdings_rebalance(d, epoch);
            continue;
        }
        if (now >= next_discover) {
            g_array_set_size(withdrawn, 0);
            dp_ram_discover(d, withdrawn);
            announce_changes(d, NULL, withdrawn);
            next_discover = now + DISCOVER_INTERVAL_US;
        }
        t0 = g_get_monotonic_time();
        g_array_set_size(added, 0);
        g_array_set_size(withdrawn, 0);
        done = dp_ram_hash_chunk(d, &repass, added, withdrawn);
        announce_changes(d, added, withdrawn);
        if (done == 0) {
            g_mutex_lock(&d->lock);
            if (d->epoch == d->announced_epoch) {
                g_cond_wait_until(&d->changed, &d->lock,
                                  g_get_monotonic_time() + 200000);
            }
            g_mutex_unlock(&d->lock);
            budget_start = g_get_monotonic_time();
            budget_bytes = 0;
            continue;
        }
        now = g_get_monotonic_time();
        if (repass && now - dp_last_lookup(d) < LOOKUP_RECENT_US) {
            g_usleep((now - t0) * (REPASS_YIELD - 1));
        }
        /* CPU bound: stay under hash_rate bytes per second. */
        budget_bytes += done;
        if (d->hash_rate > 0) {
            gint64 due = budget_start +
                         (gint64)(budget_bytes * G_USEC_PER_SEC / d->hash_rate);

            now = g_get_monotonic_time();
            if (due > now) {
                g_usleep(due - now);
            }
        }
    }
    return NULL;
}
