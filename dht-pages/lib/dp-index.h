/*
 * The part of the site page index a member owns: page hash -> the site
 * members that hold a page with that content (at most DP_MAX_HOLDERS, the
 * most recent kept). Not thread-safe: the daemon serialises access.
 */
#pragma once

#include "dp-proto.h"

typedef struct DpIndex DpIndex;

DpIndex *dp_index_new(void);
void dp_index_free(DpIndex *index);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(DpIndex, dp_index_free)

void dp_index_add(DpIndex *index, const VcPageHash *h, const DpNodeId *holder);
void dp_index_remove(DpIndex *index, const VcPageHash *h,
                     const DpNodeId *holder);
/* Fills @holders (room for DP_MAX_HOLDERS), most recent first; returns
 * how many. */
guint dp_index_lookup(DpIndex *index, const VcPageHash *h, DpNodeId *holders);
/* A member left or died: forget everything it held. Returns entries
 * changed. */
gsize dp_index_drop_holder(DpIndex *index, const DpNodeId *holder);
/* Keep only the entries for which @keep is TRUE (after a rebalance, the
 * buckets this member no longer owns). Returns entries removed. */
gsize dp_index_retain(DpIndex *index,
                      gboolean (*keep)(const VcPageHash *h, gpointer data),
                      gpointer data);
gsize dp_index_size(DpIndex *index);
