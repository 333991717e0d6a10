/*
 * Claims on missing pages, as the site's claims arbiter keeps them
 * (docs/protocols.md, "Missing pages: claims"): which node fetches a page
 * that no member holds, and which requests wait for it.
 *
 * A request (an "ask": the hashes of one CLAIM) is decided at once, under
 * one lock, when it arrives: each hash is fetched by the asker (it now
 * holds the claim), held by a node already, or waited for. An ask only
 * waits for claims that existed when it was decided, and a lapsed claim
 * passes to its oldest waiter, so waits never form a cycle.
 *
 * Times are monotonic microseconds passed in by the caller, so that the
 * logic can be tested without sleeping; dp_claims_ask_wait() is the
 * blocking form the daemon uses. Thread-safe.
 */
#pragma once

#include "dp-proto.h"

typedef struct DpClaims DpClaims;
typedef struct DpClaimAsk DpClaimAsk;

DpClaims *dp_claims_new(void);
/* No ask may be alive any more. */
void dp_claims_free(DpClaims *c);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(DpClaims, dp_claims_free)

/* Decide @n hashes asked by @asker at @now_us: the ask waits at most
 * @wait_us for the hashes others fetch, and the claims it gets live
 * @claim_us (the time a fetch over the WAN may take). */
DpClaimAsk *dp_claims_ask(DpClaims *c, const DpNodeId *asker,
                          const VcPageHash *hashes, guint n, gint64 wait_us,
                          gint64 claim_us, gint64 now_us);
/* Settle what can be at @now_us (lapsed claims passed on, the ask's own
 * deadline). TRUE once every hash of the ask has its final state;
 * otherwise *wake_us is when something may change without a
 * dp_claims_done(). */
gboolean dp_claims_ask_settle(DpClaims *c, DpClaimAsk *a, gint64 now_us,
                              gint64 *wake_us);
/* Block until every hash of the ask has its final state (at most the
 * ask's @wait_us after it was decided). */
void dp_claims_ask_wait(DpClaims *c, DpClaimAsk *a);
/* The state of hash @i (DpClaimState once settled); *holder is set for
 * DP_CLAIM_HELD. */
guint8 dp_claims_ask_state(const DpClaimAsk *a, guint i, DpNodeId *holder);
/* Destructor; an ask still waiting leaves the queues it was in. */
void dp_claims_ask_free(DpClaims *c, DpClaimAsk *a);

/* @node holds @h now: its claim is fulfilled and its waiters released.
 * FALSE if @h had no claim (nothing changes). */
gboolean dp_claims_done(DpClaims *c, const DpNodeId *node,
                        const VcPageHash *h, gint64 now_us);
/* @node, which holds the claim on @h, will not fetch it (the page it got
 * from its source had changed): the claim lapses now and passes to the
 * oldest waiter. FALSE if @node did not hold an open claim on @h. */
gboolean dp_claims_drop(DpClaims *c, const DpNodeId *node,
                        const VcPageHash *h, gint64 now_us);
/* Forget the claims that lapsed, or were fulfilled more than their claim
 * time ago, and have no waiter; returns how many. */
guint dp_claims_expire(DpClaims *c, gint64 now_us);
/* Hashes with a claim. */
guint dp_claims_size(DpClaims *c);
