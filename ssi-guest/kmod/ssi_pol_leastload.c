// SPDX-License-Identifier: GPL-2.0
/*
 * ssi_pol_leastload.ko: place a new process on the member with the least
 * LOAD + 1000 x PROCS (its runnable-task average plus the SSI processes
 * it runs, both in thousandths of a task); ties go to the lowest ID.
 */
#include <linux/module.h>

#include "ssi.h"

static unsigned int leastload_choose(const struct ssi_member *members,
				     unsigned int n)
{
	unsigned int i, best = 0;
	u64 cost, best_cost = U64_MAX;

	/* Members come ID ascending: a strict < keeps the lowest ID. */
	for (i = 0; i < n; i++) {
		cost = members[i].load + 1000ULL * members[i].procs;
		if (cost < best_cost) {
			best_cost = cost;
			best = i;
		}
	}
	return best;
}

static struct ssi_policy leastload_policy = {
	.name = "leastload",
	.description = "least LOAD + 1000 x PROCS; ties to the lowest ID",
	.choose = leastload_choose,
};

module_ssi_policy(leastload_policy);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("SSI placement policy: least loaded member");
