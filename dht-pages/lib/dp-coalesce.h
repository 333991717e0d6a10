/*
 * Coalescing of lookups of the same missing page.
 *
 * When a local client is told a hash is missing, it will fetch the page
 * over the WAN and PUBLISH it. Another client asking for the same hash
 * shortly after should wait for that PUBLISH instead of also fetching it
 * over the WAN. Waits are bounded: after @hold_us the reservation lapses
 * and the next lookup is told "miss" (and becomes the new fetcher).
 *
 * Thread-safe: resolver client threads wait here.
 */
#pragma once

#include "dp-proto.h"

typedef struct DpCoalescer DpCoalescer;

DpCoalescer *dp_coalescer_new(gint64 hold_us);
void dp_coalescer_free(DpCoalescer *c);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(DpCoalescer, dp_coalescer_free)

/*
 * A lookup found no holder for @h at @now_us (monotonic). Returns TRUE if
 * the caller is the first to miss it (it must be told "miss" and is
 * expected to publish), FALSE if another caller already holds a live
 * reservation: then *deadline_us is when that reservation lapses and the
 * caller should dp_coalescer_wait() for it.
 */
gboolean dp_coalescer_claim(DpCoalescer *c, const VcPageHash *h,
                            gint64 now_us, gint64 *deadline_us);
/* Wait until @h is published or @deadline_us passes; TRUE if published. */
gboolean dp_coalescer_wait(DpCoalescer *c, const VcPageHash *h,
                           gint64 deadline_us);
/* @h was published: release its reservation and wake its waiters. */
void dp_coalescer_published(DpCoalescer *c, const VcPageHash *h);
/* Drop lapsed reservations; returns how many. */
guint dp_coalescer_expire(DpCoalescer *c, gint64 now_us);
/* Counters: lookups that waited, and of those, served by a publish. */
guint64 dp_coalescer_waits(DpCoalescer *c);
guint64 dp_coalescer_served(DpCoalescer *c);
