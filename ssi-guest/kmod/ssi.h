/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The kernel API of ssi.ko for placement policy modules
 * (ssi-guest/README.md, "Kernel interface").
 */
#ifndef SSI_H
#define SSI_H

#include <linux/device/driver.h>
#include <linux/list.h>
#include <linux/types.h>

#define SSI_MAX_NODE_ID		63
#define SSI_MAX_MEMBERS		63
#define SSI_POLICY_NAME_MAX	31

enum ssi_member_state {
	SSI_MEMBER_UP,
	SSI_MEMBER_LEAVING,
};

/* One member of the view, as the last view written by ssid says. */
struct ssi_member {
	unsigned int id;		/* 1..SSI_MAX_NODE_ID */
	__be32 addr;			/* IPv4, network order */
	enum ssi_member_state state;
	unsigned int load;		/* runnable tasks x1000 */
	u64 memfree_kb;
	unsigned int procs;		/* SSI processes it runs */
};

/*
 * A placement policy. choose() gets the members in state up, ID
 * ascending (n >= 1), and returns the index of the chosen one. It runs
 * under the view's spinlock: it must not sleep, and unregistering waits
 * for it, so the module cannot go away under it. Calls are serialised,
 * so a policy may keep state in its module without a lock of its own.
 */
struct ssi_policy {
	const char *name;		/* [a-z0-9_-]{1,31}, not "none" */
	const char *description;	/* one line */
	unsigned int (*choose)(const struct ssi_member *members,
			       unsigned int n);
	struct list_head list;		/* ssi.ko's, do not touch */
};

int ssi_policy_register(struct ssi_policy *policy);
void ssi_policy_unregister(struct ssi_policy *policy);

/* A policy module that only registers POLICY while it is loaded. */
#define module_ssi_policy(policy) \
	module_driver(policy, ssi_policy_register, ssi_policy_unregister)

#endif /* SSI_H */
