// SPDX-License-Identifier: GPL-2.0
/*
 * ssi.ko: the SSI cluster's identity, membership view, load probes and
 * placement, as /proc/ssi/ (ssi-guest/README.md, "Kernel interface").
 * This file: the module, /proc/ssi/cluster and the write helpers.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/ctype.h>
#include <linux/err.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "ssi-internal.h"

#define SSI_NAME_MAX	32

enum ssi_cluster_state {
	SSI_ALONE,
	SSI_JOINING,
	SSI_MEMBER,
};

static const char * const ssi_cluster_states[] = {
	[SSI_ALONE] = "alone",
	[SSI_JOINING] = "joining",
	[SSI_MEMBER] = "member",
};

DEFINE_SPINLOCK(ssi_lock);

/* Under ssi_lock. */
static char ssi_name[SSI_NAME_MAX + 1];
static u64 ssi_cluster_id;
static unsigned int ssi_node;
static enum ssi_cluster_state ssi_state = SSI_ALONE;

static struct proc_dir_entry *ssi_dir;

/*
 * The bytes of one write(2) from root, NUL-terminated, or an ERR_PTR.
 * A command is one write: no partial writes are put together.
 */
char *ssi_write_copy(const char __user *buf, size_t count)
{
	char *text;

	if (!capable(CAP_SYS_ADMIN))
		return ERR_PTR(-EPERM);
	if (count == 0 || count > SSI_WRITE_MAX)
		return ERR_PTR(-EINVAL);
	text = memdup_user_nul(buf, count);
	if (IS_ERR(text))
		return text;
	if (strlen(text) != count) {
		kfree(text);
		return ERR_PTR(-EINVAL);
	}
	return text;
}

/* A decimal number, digits only (no sign, no spaces), at most max. */
int ssi_parse_u64(const char *s, u64 max, u64 *val)
{
	const char *p;
	u64 v;

	if (!*s)
		return -EINVAL;
	for (p = s; *p; p++) {
		if (!isdigit(*p))
			return -EINVAL;
	}
	if (kstrtou64(s, 10, &v) || v > max)
		return -EINVAL;
	*val = v;
	return 0;
}

static int ssi_cluster_show(struct seq_file *m, void *v)
{
	spin_lock(&ssi_lock);
	seq_printf(m, "name %s\nid %016llx\nnode %u\nepoch %llu\nstate %s\n",
		   ssi_name, ssi_cluster_id, ssi_node, ssi_epoch,
		   ssi_cluster_states[ssi_state]);
	spin_unlock(&ssi_lock);
	return 0;
}

static bool ssi_name_valid(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > SSI_NAME_MAX)
		return false;
	for (; *s; s++) {
		if (!islower(*s) && !isdigit(*s) && *s != '-')
			return false;
	}
	return true;
}

/* Exactly 16 hex digits. */
static int ssi_parse_cluster_id(const char *s, u64 *id)
{
	const char *p;

	if (strlen(s) != 16)
		return -EINVAL;
	for (p = s; *p; p++) {
		if (!isxdigit(*p))
			return -EINVAL;
	}
	return kstrtou64(s, 16, id) ? -EINVAL : 0;
}

/* "name=NAME id=HEX node=N state=S": any non-empty subset, each once. */
static ssize_t ssi_cluster_write(struct file *file, const char __user *buf,
				 size_t count, loff_t *ppos)
{
	char *text, *p, *tok, *val;
	const char *name = NULL;
	bool have_id = false, have_node = false, have_state = false;
	u64 id = 0, node = 0;
	int state = 0;
	ssize_t ret = -EINVAL;

	text = ssi_write_copy(buf, count);
	if (IS_ERR(text))
		return PTR_ERR(text);
	p = text;
	if (p[count - 1] == '\n')
		p[count - 1] = '\0';
	if (!*p)
		goto out;
	while ((tok = strsep(&p, " ")) != NULL) {
		val = strchr(tok, '=');
		if (!val)
			goto out;
		*val++ = '\0';
		if (!strcmp(tok, "name") && !name) {
			if (!ssi_name_valid(val))
				goto out;
			name = val;
		} else if (!strcmp(tok, "id") && !have_id) {
			if (ssi_parse_cluster_id(val, &id))
				goto out;
			have_id = true;
		} else if (!strcmp(tok, "node") && !have_node) {
			if (ssi_parse_u64(val, SSI_MAX_NODE_ID, &node))
				goto out;
			have_node = true;
		} else if (!strcmp(tok, "state") && !have_state) {
			state = match_string(ssi_cluster_states,
					     ARRAY_SIZE(ssi_cluster_states),
					     val);
			if (state < 0)
				goto out;
			have_state = true;
		} else {
			goto out;
		}
	}

	spin_lock(&ssi_lock);
	if (name)
		strscpy(ssi_name, name, sizeof(ssi_name));
	if (have_id)
		ssi_cluster_id = id;
	if (have_node)
		ssi_node = node;
	if (have_state)
		ssi_state = state;
	spin_unlock(&ssi_lock);
	ret = count;
out:
	kfree(text);
	return ret;
}

SSI_PROC_FILE(ssi_cluster, ssi_cluster_write);

static const struct {
	const char *name;
	umode_t mode;
	const struct proc_ops *ops;
} ssi_files[] = {
	{ "cluster", 0644, &ssi_cluster_ops },
	{ "nodes", 0644, &ssi_nodes_ops },
	{ "load", 0444, &ssi_load_ops },
	{ "policy", 0644, &ssi_policy_ops },
	{ "place", 0444, &ssi_place_ops },
};

static int __init ssi_init(void)
{
	unsigned int i;

	ssi_dir = proc_mkdir("ssi", NULL);
	if (!ssi_dir)
		return -ENOMEM;
	for (i = 0; i < ARRAY_SIZE(ssi_files); i++) {
		if (!proc_create(ssi_files[i].name, ssi_files[i].mode, ssi_dir,
				 ssi_files[i].ops)) {
			proc_remove(ssi_dir);
			return -ENOMEM;
		}
	}
	ssi_probe_start();
	return 0;
}

static void __exit ssi_exit(void)
{
	/* No reader or writer is left in a file once this returns. */
	proc_remove(ssi_dir);
	ssi_probe_stop();
}

module_init(ssi_init);
module_exit(ssi_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("SSI cluster identity, view, load probes and placement");
