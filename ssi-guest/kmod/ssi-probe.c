// SPDX-License-Identifier: GPL-2.0
/*
 * ssi.ko, /proc/ssi/load: this member's load and memory probes. nr_running
 * and the scheduler's averages are not exported to modules, so the probe
 * counts runnable tasks itself every 250 ms and averages them.
 */
#include <linux/cpumask.h>
#include <linux/mm.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/seq_file.h>
#include <linux/workqueue.h>

#include "ssi-internal.h"

#define SSI_PROBE_MS	250
/*
 * avg += (sample - avg) * (1 - e^(-250 ms / 1 s)): a time constant of
 * one second. Kept in millionths of a task so the average converges to
 * within a thousandth.
 */
#define SSI_EWMA_KEEP	779
#define SSI_EWMA_SCALE	1000

static void ssi_probe_fn(struct work_struct *work);
static DECLARE_DELAYED_WORK(ssi_probe_work, ssi_probe_fn);

/* Under ssi_lock. */
static u64 ssi_load_avg;	/* runnable tasks x 10^6 */
static unsigned int ssi_running;
static unsigned long ssi_mem_total_kb, ssi_mem_free_kb, ssi_mem_avail_kb;

/* Runnable tasks, not counting the probe's own worker. */
static unsigned int ssi_count_running(void)
{
	struct task_struct *g, *t;
	unsigned int n = 0;

	rcu_read_lock();
	for_each_process_thread(g, t) {
		if (t != current && task_is_running(t))
			n++;
	}
	rcu_read_unlock();
	return n;
}

static void ssi_probe_sample(void)
{
	unsigned int running = ssi_count_running();
	unsigned long avail = si_mem_available();
	struct sysinfo si;
	u64 target = (u64)running * 1000000;

	si_meminfo(&si);
	spin_lock(&ssi_lock);
	ssi_load_avg = (ssi_load_avg * SSI_EWMA_KEEP +
			target * (SSI_EWMA_SCALE - SSI_EWMA_KEEP)) /
		       SSI_EWMA_SCALE;
	ssi_running = running;
	ssi_mem_total_kb = si.totalram * (si.mem_unit >> 10);
	ssi_mem_free_kb = si.freeram * (si.mem_unit >> 10);
	ssi_mem_avail_kb = avail << (PAGE_SHIFT - 10);
	spin_unlock(&ssi_lock);
}

static void ssi_probe_fn(struct work_struct *work)
{
	ssi_probe_sample();
	schedule_delayed_work(&ssi_probe_work,
			      msecs_to_jiffies(SSI_PROBE_MS));
}

void ssi_probe_start(void)
{
	ssi_probe_sample();
	schedule_delayed_work(&ssi_probe_work,
			      msecs_to_jiffies(SSI_PROBE_MS));
}

void ssi_probe_stop(void)
{
	cancel_delayed_work_sync(&ssi_probe_work);
}

/*
 * Permille of memory not available. PSI would be finer, but its state
 * is not exported to modules; available memory is what a move relieves.
 * Under ssi_lock.
 */
static unsigned long ssi_mem_pressure(void)
{
	unsigned long avail = min(ssi_mem_avail_kb, ssi_mem_total_kb);

	if (!ssi_mem_total_kb)
		return 0;
	return 1000 - div_u64((u64)avail * 1000, ssi_mem_total_kb);
}

static int ssi_load_show(struct seq_file *m, void *v)
{
	spin_lock(&ssi_lock);
	seq_printf(m,
		   "load %llu\nrunning %u\ncpus %u\nmem_total_kb %lu\n"
		   "mem_free_kb %lu\nmem_available_kb %lu\nmem_pressure %lu\n",
		   div_u64(ssi_load_avg + 500, 1000), ssi_running,
		   num_online_cpus(), ssi_mem_total_kb, ssi_mem_free_kb,
		   ssi_mem_avail_kb, ssi_mem_pressure());
	spin_unlock(&ssi_lock);
	return 0;
}

SSI_PROC_FILE(ssi_load, NULL);
