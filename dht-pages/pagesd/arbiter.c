/*
 * Site-wide coalescing of missing pages (docs/protocols.md, "Missing
 * pages: claims"): one member, the claims arbiter, decides which node
 * fetches a page no member holds; the others wait until that node has it
 * and fetch it there. Both sides are here: deciding (for peers' CLAIM and
 * CLAIM_DONE, and for this node's own clients when it is the arbiter)
 * and asking.
 */
#include "pagesd.h"

#include <string.h>

/* The asker waits for the arbiter's reply this much longer than the wait
 * it asks for. */
#define CLAIM_MARGIN_S 5

/* The member whose id sorts first; TRUE if it is this node. */
static gboolean
arbiter_of_site(DpDaemon *d, DpNodeId *arbiter)
{
    g_mutex_lock(&d->lock);
    *arbiter = *dp_partition_member(d->partition, 0);
    g_mutex_unlock(&d->lock);
    return dp_node_id_equal(arbiter, &d->self);
}

guint
dp_arbiter_decide(DpDaemon *d, const DpNodeId *asker,
                  const VcPageHash *hashes, guint n, guint32 wait_ms,
                  guint8 *states, DpNodeId *holders)
{
    DpClaimAsk *a = dp_claims_ask(d->claims, asker, hashes, n,
                                  (gint64)wait_ms * G_TIME_SPAN_MILLISECOND,
                                  d->claim_us, g_get_monotonic_time());
    guint held = 0;

    dp_claims_ask_wait(d->claims, a);
    for (guint i = 0; i < n; i++) {
        states[i] = dp_claims_ask_state(a, i, &holders[held]);
        held += states[i] == DP_CLAIM_HELD;
    }
    dp_claims_ask_free(d->claims, a);
    dp_stat_add(d, claims_decided, n);
    return held;
}

typedef gboolean (*ClaimEnd)(DpClaims *c, const DpNodeId *node,
                             const VcPageHash *h, gint64 now_us);

/* End @node's claims on @hashes with @end; how many it ended. */
static guint64
end_claims(DpDaemon *d, ClaimEnd end, const DpNodeId *node,
           const VcPageHash *hashes, guint n)
{
    gint64 now = g_get_monotonic_time();
    guint64 ended = 0;

    for (guint i = 0; i < n; i++) {
        ended += end(d->claims, node, &hashes[i], now);
    }
    return ended;
}

void
dp_arbiter_fulfil(DpDaemon *d, const DpNodeId *holder,
                  const VcPageHash *hashes, guint n)
{
    dp_stat_add(d, claims_fulfilled,
                end_claims(d, dp_claims_done, holder, hashes, n));
}

void
dp_arbiter_release(DpDaemon *d, const DpNodeId *claimant,
                   const VcPageHash *hashes, guint n)
{
    dp_stat_add(d, claims_dropped,
                end_claims(d, dp_claims_drop, claimant, hashes, n));
}

gboolean
dp_arbiter_ask(DpDaemon *d, const VcPageHash *hashes, guint n,
               guint8 *states, DpNodeId *holders)
{
    guint32 wait_ms = (guint32)(d->coalesce_us / G_TIME_SPAN_MILLISECOND);
    g_autoptr(GByteArray) req = g_byte_array_new();
    g_autoptr(GBytes) payload = NULL;
    g_autoptr(GError) error = NULL;
    DpNodeId arbiter;
    DpMsg reply;

    g_return_val_if_fail(n >= 1 && n <= DP_MAX_BATCH, FALSE);

    if (arbiter_of_site(d, &arbiter)) {
        dp_arbiter_decide(d, &d->self, hashes, n, wait_ms, states, holders);
        return TRUE;
    }
    dp_encode_claim(req, 0, wait_ms, hashes, n);
    if (!dp_peer_call_timeout(d, &arbiter, req,
                              (int)(wait_ms / 1000) + CLAIM_MARGIN_S, &reply,
                              &payload, &error)) {
        g_debug("claims arbiter: %s", error->message);
        return FALSE;
    }
    if (reply.count != n) {
        g_debug("claims arbiter answered %u states for %u hashes",
                reply.count, n);
        dp_stat_add(d, peer_errors, 1);
        return FALSE;
    }
    memcpy(states, reply.status, n);
    memcpy(holders, reply.holders, (gsize)reply.n_holders * sizeof(DpNodeId));
    return TRUE;
}

/* Tell the site's arbiter about this node's claims on @hashes: @type is
 * CLAIM_DONE or CLAIM_DROP; @local does it when this node is the arbiter. */
static void
tell_arbiter(DpDaemon *d, guint8 type, const VcPageHash *hashes, gsize n,
             void (*local)(DpDaemon *, const DpNodeId *, const VcPageHash *,
                           guint))
{
    DpNodeId arbiter;

    if (arbiter_of_site(d, &arbiter)) {
        local(d, &d->self, hashes, (guint)n);
        return;
    }
    for (gsize off = 0; off < n; off += DP_MAX_BATCH) {
        g_autoptr(GByteArray) req = g_byte_array_new();
        g_autoptr(GBytes) payload = NULL;
        g_autoptr(GError) error = NULL;
        DpMsg reply;

        dp_encode_hashes(req, type, 0, hashes + off,
                         (guint32)MIN(DP_MAX_BATCH, n - off));
        if (!dp_peer_call(d, &arbiter, req, &reply, &payload, &error)) {
            g_debug("claims arbiter: %s", error->message);
            return;
        }
    }
}

void
dp_arbiter_done(DpDaemon *d, const VcPageHash *hashes, gsize n)
{
    tell_arbiter(d, DP_MSG_CLAIM_DONE, hashes, n, dp_arbiter_fulfil);
}

void
dp_arbiter_drop(DpDaemon *d, const VcPageHash *hashes, gsize n)
{
    tell_arbiter(d, DP_MSG_CLAIM_DROP, hashes, n, dp_arbiter_release);
}
