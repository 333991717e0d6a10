/*
 * The scheduler: a pure function from the grid's state to decisions. It
 * keeps nothing between calls and touches no store, node or clock; the
 * daemon calls it whenever something changed (a submission, a job or VM
 * ending, a suspension completing, a timer) and carries out what it says.
 *
 * Input: the nodes; the jobs that are not terminal; the VMs of the active
 * ones (sal_store_load_active() gives exactly these); now.
 *   - pending and suspended jobs are the queue (a suspended job placed
 *     is to be resumed: leave out of @jobs those held suspended by their
 *     owner);
 *   - starting, running and resuming jobs hold the capacity of their
 *     VMs (vm->node; VMs on unknown nodes are ignored) until their
 *     expected end, sal_job_expected_end(); running best-effort jobs
 *     hold it only until a regular job wants it;
 *   - suspending jobs hold capacity that is being freed: it is not
 *     usable now, and it is never a reason to preempt anything else.
 *
 * Placement. A VM needs cpus and mem_mib of one node; a node never holds
 * more than its capacity. A job with a site goes to nodes of that site.
 * A job without one goes to the first site (in the order of @nodes) with
 * room for all its VMs, and spans sites only when no single site has
 * room. Within the chosen nodes VMs fill nodes in the order of @nodes
 * (first fit), which keeps jobs on few nodes and leaves whole nodes free.
 *
 * Regular jobs, in order of priority (higher first), then submit time,
 * then id, with EASY backfilling: each job that fits now starts, until
 * the first that does not; that one gets a reservation (the earliest
 * expected end of running work after which it fits). A later job then
 * starts now only if it ends before the reservation or leaves the
 * reserved job room at the reservation (if first fit would put it where
 * the reserved job will go, it tries the room the reserved job does not
 * need); so backfilling never delays the first job in the queue. Running
 * best-effort jobs count as free capacity for all of this.
 *
 * Preemption. A regular job that fits now only with capacity held by
 * running best-effort jobs gets it: the scheduler picks the jobs to
 * suspend, newest (latest start_time) first, then drops from the set
 * every job it can do without, oldest first, so that no job in the set
 * could be left running. The regular job is "held": its capacity is set
 * aside, nothing else gets it, and it is placed on a later call, once
 * the preempted jobs are suspended. Likewise a regular job that fits only
 * with capacity of suspending jobs is held, without preempting more.
 *
 * Best-effort jobs come last, in the same order, and start only on
 * capacity left free after all of the above, i.e. capacity no pending
 * regular job can use now. They get no reservation.
 *
 * A queued job that could not fit even on an empty grid (its site, or
 * the whole grid if it has none) is reported unschedulable with a reason
 * and otherwise ignored. sal_sched_unschedulable() is the same check for
 * one job, to reject it at submission.
 */
#pragma once

#include "sal-job.h"
#include "sal-node.h"

typedef struct {
    gint64 job_id;
    char **nodes; /* node of VM i, i < n_vms; NULL-terminated */
} SalPlacement;

typedef struct {
    gint64 job_id;
    char *reason;
} SalUnschedulable;

typedef struct {
    GPtrArray *start;         /* SalPlacement *: start or resume now */
    GArray *preempt;          /* gint64: running best-effort jobs to suspend */
    GArray *held;             /* gint64: regular jobs waiting for capacity
                                 being freed; placed on a later call */
    GPtrArray *unschedulable; /* SalUnschedulable * */
    gint64 reserved_job;      /* the job with the reservation, or 0 */
    gint64 reserved_start;    /* when it is expected to start */
} SalSchedResult;

/* @nodes: SalNode *; @jobs: SalJob *; @vms: SalVm *. Never fails. */
SalSchedResult *sal_sched_run(GPtrArray *nodes, GPtrArray *jobs, GPtrArray *vms,
                              gint64 now);
void sal_sched_result_free(SalSchedResult *result);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SalSchedResult, sal_sched_result_free)

/* Why @job could never run on @nodes, even all free, or NULL if it can. */
char *sal_sched_unschedulable(GPtrArray *nodes, const SalJob *job);

/* The placement of job @job_id in @result->start, or NULL. */
const SalPlacement *sal_sched_result_placement(const SalSchedResult *result,
                                               gint64 job_id);
