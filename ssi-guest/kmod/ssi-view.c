// SPDX-License-Identifier: GPL-2.0
/*
 * ssi.ko, /proc/ssi/nodes: the membership view ssid writes and every
 * program reads. The writer is root, but the text is checked as if it
 * came from anyone: bounded, strictly formatted, all or nothing.
 */
#include <linux/err.h>
#include <linux/kernel.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "ssi-internal.h"

/* Under ssi_lock. */
u64 ssi_epoch;
unsigned int ssi_nmembers;
struct ssi_member ssi_members[SSI_MAX_MEMBERS];

static const char * const ssi_member_states[] = {
	[SSI_MEMBER_UP] = "up",
	[SSI_MEMBER_LEAVING] = "leaving",
};

struct ssi_view {
	u64 epoch;
	unsigned int n;
	struct ssi_member members[SSI_MAX_MEMBERS];
};

static int ssi_nodes_show(struct seq_file *m, void *v)
{
	const struct ssi_member *mb;
	unsigned int i;

	spin_lock(&ssi_lock);
	seq_printf(m, "epoch %llu\n", ssi_epoch);
	for (i = 0; i < ssi_nmembers; i++) {
		mb = &ssi_members[i];
		seq_printf(m, "%u %pI4 %s %u %llu %u\n", mb->id, &mb->addr,
			   ssi_member_states[mb->state], mb->load,
			   mb->memfree_kb, mb->procs);
	}
	spin_unlock(&ssi_lock);
	return 0;
}

/* Dotted quad, four decimal octets of one to three digits each. */
static int ssi_parse_ipv4(char *s, __be32 *addr)
{
	u8 octets[4];
	char *tok;
	u64 v;
	int i;

	for (i = 0; i < 4; i++) {
		tok = strsep(&s, ".");
		if (!tok || strlen(tok) > 3 || ssi_parse_u64(tok, 255, &v))
			return -EINVAL;
		octets[i] = v;
	}
	if (s)
		return -EINVAL;
	memcpy(addr, octets, sizeof(*addr));
	return 0;
}

/* "ID ADDRESS STATE LOAD MEMFREE_KB PROCS", single spaces. */
static int ssi_parse_member(char *line, struct ssi_member *mb)
{
	char *f[6];
	u64 v;
	int i, state;

	for (i = 0; i < 6; i++) {
		f[i] = strsep(&line, " ");
		if (!f[i])
			return -EINVAL;
	}
	if (line)
		return -EINVAL;
	if (ssi_parse_u64(f[0], SSI_MAX_NODE_ID, &v) || v == 0)
		return -EINVAL;
	mb->id = v;
	if (ssi_parse_ipv4(f[1], &mb->addr))
		return -EINVAL;
	state = match_string(ssi_member_states, ARRAY_SIZE(ssi_member_states),
			     f[2]);
	if (state < 0)
		return -EINVAL;
	mb->state = state;
	if (ssi_parse_u64(f[3], U32_MAX, &v))
		return -EINVAL;
	mb->load = v;
	if (ssi_parse_u64(f[4], U64_MAX, &mb->memfree_kb))
		return -EINVAL;
	if (ssi_parse_u64(f[5], U32_MAX, &v))
		return -EINVAL;
	mb->procs = v;
	return 0;
}

/* The members, after the epoch line; IDs strictly ascending. */
static int ssi_parse_members(char *text, struct ssi_view *view)
{
	char *line;
	int ret;

	view->n = 0;
	while ((line = strsep(&text, "\n")) != NULL) {
		if (view->n == SSI_MAX_MEMBERS)
			return -EINVAL;
		ret = ssi_parse_member(line, &view->members[view->n]);
		if (ret)
			return ret;
		if (view->n > 0 &&
		    view->members[view->n].id <= view->members[view->n - 1].id)
			return -EINVAL;
		view->n++;
	}
	return 0;
}

/* A refresh of the current view: same members, addresses and states. */
static bool ssi_view_same_members(const struct ssi_view *view)
{
	unsigned int i;

	if (view->n != ssi_nmembers)
		return false;
	for (i = 0; i < view->n; i++) {
		if (view->members[i].id != ssi_members[i].id ||
		    view->members[i].addr != ssi_members[i].addr ||
		    view->members[i].state != ssi_members[i].state)
			return false;
	}
	return true;
}

static ssize_t ssi_nodes_write(struct file *file, const char __user *buf,
			       size_t count, loff_t *ppos)
{
	struct ssi_view *view = NULL;
	char *text, *p, *line;
	int parsed = -EINVAL;
	ssize_t ret = -EINVAL;

	text = ssi_write_copy(buf, count);
	if (IS_ERR(text))
		return PTR_ERR(text);
	view = kzalloc(sizeof(*view), GFP_KERNEL);
	if (!view) {
		ret = -ENOMEM;
		goto out;
	}
	p = text;
	if (p[count - 1] == '\n')
		p[count - 1] = '\0';

	/* The epoch first: a stale view is -ESTALE whatever follows. */
	line = strsep(&p, "\n");
	if (strncmp(line, "epoch ", 6) ||
	    ssi_parse_u64(line + 6, U64_MAX, &view->epoch))
		goto out;
	parsed = p ? ssi_parse_members(p, view) : 0;

	spin_lock(&ssi_lock);
	if (view->epoch < ssi_epoch) {
		ret = -ESTALE;
	} else if (parsed) {
		ret = parsed;
	} else if (view->epoch == ssi_epoch && !ssi_view_same_members(view)) {
		ret = -EINVAL;
	} else {
		ssi_epoch = view->epoch;
		ssi_nmembers = view->n;
		memcpy(ssi_members, view->members,
		       view->n * sizeof(view->members[0]));
		ret = count;
	}
	spin_unlock(&ssi_lock);
out:
	kfree(view);
	kfree(text);
	return ret;
}

SSI_PROC_FILE(ssi_nodes, ssi_nodes_write);
