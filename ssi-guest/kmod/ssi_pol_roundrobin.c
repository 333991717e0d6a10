// SPDX-License-Identifier: GPL-2.0
/*
 * ssi_pol_roundrobin.ko: place a new process on the member after the one
 * chosen last (by ID, so members joining or leaving do not restart the
 * cycle), wrapping to the lowest ID.
 */
#include <linux/module.h>

#include "ssi.h"

/* Serialised by ssi.ko: choose() runs under its lock. */
static unsigned int roundrobin_last;

static unsigned int roundrobin_choose(const struct ssi_member *members,
				      unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		if (members[i].id > roundrobin_last)
			break;
	}
	if (i == n)
		i = 0;
	roundrobin_last = members[i].id;
	return i;
}

static struct ssi_policy roundrobin_policy = {
	.name = "roundrobin",
	.description = "next member after the last placement",
	.choose = roundrobin_choose,
};

module_ssi_policy(roundrobin_policy);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("SSI placement policy: round robin");
