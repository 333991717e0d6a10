// SPDX-License-Identifier: GPL-2.0
/*
 * ssi.ko: placement policies (ssi_policy_register), /proc/ssi/policy and
 * /proc/ssi/place. choose() runs under ssi_lock, which unregistering also
 * takes, so a policy module cannot be removed while it chooses.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/ctype.h>
#include <linux/err.h>
#include <linux/kernel.h>
#include <linux/list.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "ssi-internal.h"

/* Under ssi_lock. */
static LIST_HEAD(ssi_policies);
static struct ssi_policy *ssi_active;
static struct ssi_member ssi_up[SSI_MAX_MEMBERS];

static struct ssi_policy *ssi_policy_find(const char *name)
{
	struct ssi_policy *p;

	list_for_each_entry(p, &ssi_policies, list) {
		if (!strcmp(p->name, name))
			return p;
	}
	return NULL;
}

static bool ssi_policy_name_valid(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > SSI_POLICY_NAME_MAX || !strcmp(s, "none"))
		return false;
	for (; *s; s++) {
		if (!islower(*s) && !isdigit(*s) && *s != '_' && *s != '-')
			return false;
	}
	return true;
}

/* The first policy registered becomes active while none is. */
int ssi_policy_register(struct ssi_policy *policy)
{
	int ret = 0;

	if (!policy->name || !ssi_policy_name_valid(policy->name) ||
	    !policy->description || strchr(policy->description, '\n') ||
	    !policy->choose)
		return -EINVAL;
	spin_lock(&ssi_lock);
	if (ssi_policy_find(policy->name)) {
		ret = -EEXIST;
	} else {
		list_add_tail(&policy->list, &ssi_policies);
		if (!ssi_active)
			ssi_active = policy;
	}
	spin_unlock(&ssi_lock);
	if (!ret)
		pr_info("policy '%s' registered\n", policy->name);
	return ret;
}
EXPORT_SYMBOL_GPL(ssi_policy_register);

/* The active policy falls back to the first other one, or to none. */
void ssi_policy_unregister(struct ssi_policy *policy)
{
	spin_lock(&ssi_lock);
	list_del(&policy->list);
	if (ssi_active == policy)
		ssi_active = list_first_entry_or_null(&ssi_policies,
						      struct ssi_policy, list);
	spin_unlock(&ssi_lock);
	pr_info("policy '%s' unregistered\n", policy->name);
}
EXPORT_SYMBOL_GPL(ssi_policy_unregister);

static int ssi_policy_show(struct seq_file *m, void *v)
{
	struct ssi_policy *p;

	spin_lock(&ssi_lock);
	seq_printf(m, "active %s\n", ssi_active ? ssi_active->name : "none");
	list_for_each_entry(p, &ssi_policies, list)
		seq_printf(m, "%-10s %s\n", p->name, p->description);
	spin_unlock(&ssi_lock);
	return 0;
}

/* "NAME", an optional newline after it. */
static ssize_t ssi_policy_write(struct file *file, const char __user *buf,
				size_t count, loff_t *ppos)
{
	struct ssi_policy *p;
	char *text;
	ssize_t ret;

	text = ssi_write_copy(buf, count);
	if (IS_ERR(text))
		return PTR_ERR(text);
	if (text[count - 1] == '\n')
		text[count - 1] = '\0';
	if (!ssi_policy_name_valid(text)) {
		ret = -EINVAL;
		goto out;
	}
	spin_lock(&ssi_lock);
	p = ssi_policy_find(text);
	if (p) {
		ssi_active = p;
		ret = count;
	} else {
		ret = -ENOENT;
	}
	spin_unlock(&ssi_lock);
out:
	kfree(text);
	return ret;
}

SSI_PROC_FILE(ssi_policy, ssi_policy_write);

/*
 * Each read from the start is one placement (roundrobin moves on). The
 * active policy chooses among the members up; none: the lowest ID.
 */
static int ssi_place_show(struct seq_file *m, void *v)
{
	unsigned int i, n = 0, pick = 0, id;

	spin_lock(&ssi_lock);
	for (i = 0; i < ssi_nmembers; i++) {
		if (ssi_members[i].state == SSI_MEMBER_UP)
			ssi_up[n++] = ssi_members[i];
	}
	if (n == 0) {
		spin_unlock(&ssi_lock);
		return -EAGAIN;
	}
	if (ssi_active) {
		pick = ssi_active->choose(ssi_up, n);
		if (pick >= n) {
			pr_warn_ratelimited("policy '%s' chose %u of %u members\n",
					    ssi_active->name, pick, n);
			pick = 0;
		}
	}
	id = ssi_up[pick].id;
	spin_unlock(&ssi_lock);
	seq_printf(m, "%u\n", id);
	return 0;
}

SSI_PROC_FILE(ssi_place, NULL);
