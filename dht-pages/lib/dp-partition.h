/*
 * Partition of the page-hash space over the members of a site.
 *
 * The space is cut into DP_BUCKETS buckets by the first 16 bits of the
 * hash; each bucket belongs to the member with the highest rendezvous
 * score (a 64-bit mix of bucket number and member id). Every member
 * computes the same table from the same member list, in any order, and a
 * join or leave moves only the buckets the new member wins or the old one
 * held (about 1/N of the space).
 */
#pragma once

#include "dp-proto.h"

#define DP_BUCKETS 65536

typedef struct DpPartition DpPartition;

/* @members need not be sorted; duplicates are ignored; n may be 0. */
DpPartition *dp_partition_new(const DpNodeId *members, guint n);
void dp_partition_free(DpPartition *p);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(DpPartition, dp_partition_free)

guint dp_partition_n_members(const DpPartition *p);
/* Members in the partition's own (sorted) order. */
const DpNodeId *dp_partition_member(const DpPartition *p, guint i);
guint dp_partition_bucket(const VcPageHash *h);
/* Owner of @h as a member number (see dp_partition_member); G_MAXUINT
 * when there are no members. */
guint dp_partition_owner(const DpPartition *p, const VcPageHash *h);
const DpNodeId *dp_partition_owner_id(const DpPartition *p,
                                      const VcPageHash *h);
/* Buckets owned by member @i (for balance checks and status). */
guint dp_partition_bucket_count(const DpPartition *p, guint i);
