/* SPDX-License-Identifier: GPL-2.0 */
/* Shared state of the files of ssi.ko. */
#ifndef SSI_INTERNAL_H
#define SSI_INTERNAL_H

#include <linux/fs.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/spinlock.h>

#include "ssi.h"

/* Writes bigger than this are refused: a full view is ~4.5 KiB. */
#define SSI_WRITE_MAX		8192

/*
 * One lock for the identity, the view, the policies and the probes: the
 * files read consistent snapshots, and choose() sees a stable view.
 */
extern spinlock_t ssi_lock;

/* Under ssi_lock. */
extern u64 ssi_epoch;
extern unsigned int ssi_nmembers;
extern struct ssi_member ssi_members[SSI_MAX_MEMBERS];

extern const struct proc_ops ssi_cluster_ops;
extern const struct proc_ops ssi_nodes_ops;
extern const struct proc_ops ssi_load_ops;
extern const struct proc_ops ssi_policy_ops;
extern const struct proc_ops ssi_place_ops;

/*
 * NAME_ops for a /proc/ssi file whose whole text NAME_show() prints;
 * WRITE may be NULL.
 */
#define SSI_PROC_FILE(name, write)					\
static int name##_open(struct inode *inode, struct file *file)		\
{									\
	return single_open(file, name##_show, NULL);			\
}									\
const struct proc_ops name##_ops = {					\
	.proc_open = name##_open,					\
	.proc_read = seq_read,						\
	.proc_lseek = seq_lseek,					\
	.proc_release = single_release,					\
	.proc_write = write,						\
}

char *ssi_write_copy(const char __user *buf, size_t count);
int ssi_parse_u64(const char *s, u64 max, u64 *val);

void ssi_probe_start(void);
void ssi_probe_stop(void);

#endif /* SSI_INTERNAL_H */
