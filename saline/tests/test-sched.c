#include <string.h>

#include "sal-sched.h"
#include "sal-test.h"

/* A grid and its jobs, as the daemon would pass them. */
typedef struct {
    GPtrArray *nodes; /* SalNode * */
    GPtrArray *jobs;  /* SalJob * */
    GPtrArray *vms;   /* SalVm * */
    gint64 next_id;
} World;

static World *
world_new(void)
{
    World *w = g_new0(World, 1);

    w->nodes = g_ptr_array_new_with_free_func((GDestroyNotify)sal_node_free);
    w->jobs = g_ptr_array_new_with_free_func((GDestroyNotify)sal_job_free);
    w->vms = g_ptr_array_new_with_free_func((GDestroyNotify)sal_vm_free);
    return w;
}

static void
world_free(World *w)
{
    g_ptr_array_unref(w->nodes);
    g_ptr_array_unref(w->jobs);
    g_ptr_array_unref(w->vms);
    g_free(w);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(World, world_free)

static void
world_node(World *w, const char *name, const char *site, guint cpus,
           guint64 mem_mib)
{
    g_autofree char *uri = g_strdup_printf("qemu+tcp://%s/system", name);

    g_ptr_array_add(w->nodes, sal_node_new(name, site, uri, cpus, mem_mib));
}

/* A pending job submitted at its id, 1 GiB per VM unless changed. */
static SalJob *
world_job(World *w, guint n_vms, guint cpus, gint64 walltime_s)
{
    SalJob *job = sal_test_job(n_vms, NULL);

    job->id = ++w->next_id;
    job->cpus = cpus;
    job->walltime_s = walltime_s;
    job->submit_time = job->id;
    g_ptr_array_add(w->jobs, job);
    return job;
}

static SalJob *
world_find(World *w, gint64 id)
{
    for (guint i = 0; i < w->jobs->len; i++) {
        SalJob *job = w->jobs->pdata[i];

        if (job->id == id) {
            return job;
        }
    }
    g_assert_not_reached();
}

/* @job runs since @start with its VMs on @nodes (comma-separated). */
static void
world_run(World *w, SalJob *job, const char *nodes, gint64 start)
{
    g_auto(GStrv) names = g_strsplit(nodes, ",", 0);

    g_assert_cmpuint(g_strv_length(names), ==, job->n_vms);
    job->state = SAL_JOB_RUNNING;
    job->start_time = start;
    for (guint i = 0; names[i]; i++) {
        SalVm *vm = sal_vm_new(job->id, i);

        vm->node = g_strdup(names[i]);
        vm->state = SAL_VM_RUNNING;
        g_ptr_array_add(w->vms, vm);
    }
}

/* The job ends: its VMs go. */
static void
world_end(World *w, SalJob *job)
{
    job->state = SAL_JOB_DONE;
    for (guint i = w->vms->len; i-- > 0;) {
        if (((SalVm *)w->vms->pdata[i])->job_id == job->id) {
            g_ptr_array_remove_index(w->vms, i);
        }
    }
}

static char *
joined(char **nodes)
{
    return g_strjoinv(",", nodes);
}

/* No node holds more than its capacity. */
static void
assert_capacity(World *w)
{
    for (guint n = 0; n < w->nodes->len; n++) {
        const SalNode *node = w->nodes->pdata[n];
        guint64 cpus = 0, mem = 0;

        for (guint i = 0; i < w->vms->len; i++) {
            const SalVm *vm = w->vms->pdata[i];
            const SalJob *job = world_find(w, vm->job_id);

            if (sal_job_state_is_active(job->state) &&
                g_str_equal(vm->node, node->name)) {
                cpus += job->cpus;
                mem += job->mem_mib;
            }
        }
        g_assert_cmpuint(cpus, <=, node->cpus);
        g_assert_cmpuint(mem, <=, node->mem_mib);
    }
}

/* Carries out @r: placed jobs run from @now, preempted ones are
 * suspending. */
static void
world_apply(World *w, const SalSchedResult *r, gint64 now)
{
    for (guint i = 0; i < r->start->len; i++) {
        const SalPlacement *p = r->start->pdata[i];
        g_autofree char *nodes = joined(p->nodes);

        world_run(w, world_find(w, p->job_id), nodes, now);
    }
    for (guint i = 0; i < r->preempt->len; i++) {
        world_find(w, g_array_index(r->preempt, gint64, i))->state =
            SAL_JOB_SUSPENDING;
    }
    assert_capacity(w);
}

/* "1,3": the ids of the jobs @r starts, in its order. */
static char *
started(const SalSchedResult *r)
{
    GString *s = g_string_new(NULL);

    for (guint i = 0; i < r->start->len; i++) {
        g_string_append_printf(s, "%s%" G_GINT64_FORMAT, i ? "," : "",
                               ((SalPlacement *)r->start->pdata[i])->job_id);
    }
    return g_string_free(s, FALSE);
}

static char *
ids(GArray *a)
{
    GString *s = g_string_new(NULL);

    for (guint i = 0; i < a->len; i++) {
        g_string_append_printf(s, "%s%" G_GINT64_FORMAT, i ? "," : "",
                               g_array_index(a, gint64, i));
    }
    return g_string_free(s, FALSE);
}

static char *
placed_on(const SalSchedResult *r, gint64 job_id)
{
    const SalPlacement *p = sal_sched_result_placement(r, job_id);

    return p ? joined(p->nodes) : g_strdup("-");
}

static SalSchedResult *
run(World *w, gint64 now)
{
    return sal_sched_run(w->nodes, w->jobs, w->vms, now);
}

/* Runs the scheduler again, after the world changed. */
static void
rerun(SalSchedResult **r, World *w, gint64 now)
{
    sal_sched_result_free(*r);
    *r = run(w, now);
}

#define assert_started(r, expected)                                            \
    do {                                                                       \
        g_autofree char *got_ = started(r);                                    \
        g_assert_cmpstr(got_, ==, expected);                                   \
    } while (0)

#define assert_ids(a, expected)                                                \
    do {                                                                       \
        g_autofree char *got_ = ids(a);                                        \
        g_assert_cmpstr(got_, ==, expected);                                   \
    } while (0)

#define assert_placed(r, id, expected)                                         \
    do {                                                                       \
        g_autofree char *got_ = placed_on(r, id);                              \
        g_assert_cmpstr(got_, ==, expected);                                   \
    } while (0)

static void
test_priority(void)
{
    g_autoptr(World) w = world_new();
    g_autoptr(SalSchedResult) r = NULL;
    SalJob *low, *high;

    world_node(w, "a1", "a", 4, 8192);
    low = world_job(w, 1, 4, 600);
    high = world_job(w, 1, 4, 600);
    high->priority = 5;

    r = run(w, 100);
    assert_started(r, "2");
    assert_placed(r, high->id, "a1");
    /* The other waits for it, with a reservation at its end. */
    g_assert_cmpint(r->reserved_job, ==, low->id);
    g_assert_cmpint(r->reserved_start, ==, 700);
    g_assert_cmpuint(r->unschedulable->len, ==, 0);
}

static void
test_fifo(void)
{
    g_autoptr(World) w = world_new();
    g_autoptr(SalSchedResult) r = NULL;
    SalJob *a, *b, *c;

    world_node(w, "a1", "a", 4, 8192);
    a = world_job(w, 1, 2, 600);
    b = world_job(w, 1, 2, 600);
    c = world_job(w, 1, 2, 600);
    /* Earlier submission first; the same second: lower id first. */
    a->submit_time = 50;
    b->submit_time = 10;
    c->submit_time = 10;

    r = run(w, 100);
    assert_started(r, "2,3");
    g_assert_cmpint(r->reserved_job, ==, a->id);
}

static void
test_capacity(void)
{
    g_autoptr(World) w = world_new();
    g_autoptr(SalSchedResult) r = NULL;
    SalJob *packed, *mem1, *mem2;

    world_node(w, "a1", "a", 4, 4096);
    world_node(w, "a2", "a", 4, 4096);
    world_node(w, "a3", "a", 8, 4096);
    /* First fit in node order: two VMs per 4-CPU node. */
    packed = world_job(w, 3, 2, 600);
    /* Memory binds before CPUs: a 3000 MiB VM goes where 3000 MiB are
     * left, whatever the CPUs. */
    mem1 = world_job(w, 1, 1, 600);
    mem1->mem_mib = 3000;
    mem2 = world_job(w, 2, 1, 600);
    mem2->mem_mib = 3000;

    r = run(w, 0);
    assert_placed(r, packed->id, "a1,a1,a2");
    assert_placed(r, mem1->id, "a2");
    assert_started(r, "1,2");
    world_apply(w, r, 0);

    /* Nothing more fits until something ends. */
    rerun(&r, w, 10);
    assert_started(r, "");
    g_assert_cmpint(r->reserved_job, ==, mem2->id);
    g_assert_cmpint(r->reserved_start, ==, 600);

    world_end(w, packed);
    rerun(&r, w, 20);
    assert_placed(r, mem2->id, "a1,a3");
    world_apply(w, r, 20);
}

static void
test_sites(void)
{
    g_autoptr(World) w = world_new();
    g_autoptr(SalSchedResult) r = NULL;
    SalJob *in_b, *span, *first_site;

    world_node(w, "a1", "a", 4, 8192);
    world_node(w, "a2", "a", 4, 8192);
    world_node(w, "b1", "b", 8, 8192);
    in_b = world_job(w, 2, 2, 600);
    in_b->site = g_strdup("b");
    r = run(w, 0);
    assert_placed(r, in_b->id, "b1,b1");
    in_b->state = SAL_JOB_DONE;

    /* No site holds 3 VMs of 4 CPUs: the job spans sites. */
    span = world_job(w, 3, 4, 600);
    rerun(&r, w, 0);
    assert_placed(r, span->id, "a1,a2,b1");
    span->state = SAL_JOB_DONE;

    /* One that fits in a site stays in the first that has room. */
    first_site = world_job(w, 2, 4, 600);
    rerun(&r, w, 0);
    assert_placed(r, first_site->id, "a1,a2");
    world_apply(w, r, 0);

    /* Site a is full now, so the next goes to b whole, not split. */
    first_site = world_job(w, 2, 4, 600);
    rerun(&r, w, 0);
    assert_placed(r, first_site->id, "b1,b1");
}

/*
 * a1 runs a job until 100; the first in the queue needs a1 and a2, so
 * it is reserved for 100. A job that ends before 100 may use a2 now, a
 * longer one may not, unless it uses a node the reserved job does not
 * need.
 */
static World *
backfill_world(gboolean third_node)
{
    World *w = world_new();
    SalJob *running, *wide;

    world_node(w, "a1", "a", 4, 8192);
    world_node(w, "a2", "a", 4, 8192);
    if (third_node) {
        world_node(w, "a3", "a", 2, 8192);
    }
    running = world_job(w, 1, 4, 100);
    world_run(w, running, "a1", 0);
    wide = world_job(w, 2, 4, 1000);
    wide->priority = 10;
    return w;
}

static void
test_backfill_short(void)
{
    g_autoptr(World) w = backfill_world(FALSE);
    g_autoptr(SalSchedResult) r = NULL;
    SalJob *shorter = world_job(w, 1, 2, 60);
    SalJob *exact = world_job(w, 1, 2, 80);

    r = run(w, 20);
    g_assert_cmpint(r->reserved_job, ==, 2);
    g_assert_cmpint(r->reserved_start, ==, 100);
    /* Both end by 100 (20 + 80 exactly at it). */
    assert_placed(r, shorter->id, "a2");
    assert_placed(r, exact->id, "a2");
    world_apply(w, r, 20);
}

static void
test_backfill_long(void)
{
    g_autoptr(World) w = backfill_world(FALSE);
    g_autoptr(SalSchedResult) r = NULL;
    SalJob *longer = world_job(w, 1, 2, 81);

    /* It would end at 101, on a2: refused. */
    r = run(w, 20);
    assert_placed(r, longer->id, "-");
    assert_started(r, "");
    g_assert_cmpint(r->reserved_job, ==, 2);
    g_assert_cmpint(r->reserved_start, ==, 100);

    /* At 100 the reserved job starts, as promised. */
    world_end(w, world_find(w, 1));
    rerun(&r, w, 100);
    assert_started(r, "2");
}

static void
test_backfill_beside(void)
{
    g_autoptr(World) w = backfill_world(TRUE);
    g_autoptr(SalSchedResult) r = NULL;
    SalJob *longer = world_job(w, 1, 2, 5000);
    SalJob *second = world_job(w, 1, 2, 5000);

    /* First fit would put it on a2, which the reserved job needs; a3 it
     * does not need: the long job takes it. A second long one finds
     * only a2 left, and may not take it. */
    r = run(w, 20);
    assert_placed(r, longer->id, "a3");
    assert_placed(r, second->id, "-");
    g_assert_cmpint(r->reserved_job, ==, 2);
}

static void
test_besteffort_idle(void)
{
    g_autoptr(World) w = world_new();
    g_autoptr(SalSchedResult) r = NULL;
    SalJob *be, *reg, *be2;

    world_node(w, "a1", "a", 4, 8192);
    /* A best-effort job earlier and of higher priority still comes after
     * a regular job that can use the capacity. */
    be = world_job(w, 1, 4, 600);
    be->besteffort = TRUE;
    be->priority = 100;
    reg = world_job(w, 1, 4, 600);

    r = run(w, 0);
    assert_started(r, "2");
    world_apply(w, r, 0);

    /* On an idle node it runs. */
    world_node(w, "a2", "a", 4, 8192);
    rerun(&r, w, 10);
    assert_placed(r, be->id, "a2");
    world_apply(w, r, 10);

    /* A regular job that has to wait for a1 leaves a2 to best effort,
     * idle until then. */
    world_end(w, be);
    reg = world_job(w, 2, 4, 600);
    be2 = world_job(w, 1, 2, 600);
    be2->besteffort = TRUE;
    rerun(&r, w, 20);
    g_assert_cmpint(r->reserved_job, ==, reg->id);
    assert_placed(r, be2->id, "a2");
    g_assert_cmpuint(r->preempt->len, ==, 0);
    world_apply(w, r, 20);

    /* At 600 the first job ends: the regular job preempts be2. */
    world_end(w, world_find(w, 2));
    rerun(&r, w, 600);
    assert_ids(r->preempt, "4");
    assert_ids(r->held, "3");
    assert_started(r, "");
}

/*
 * a1: old (8 CPUs, best effort, started at 10).
 * a2: new (4, best effort, started at 30) beside a regular job (4).
 * A regular job needs a whole node: greedy newest first takes new, then
 * old; new alone frees nothing useful, so pruning lets it run on.
 */
static void
test_preempt_prune(void)
{
    g_autoptr(World) w = world_new();
    g_autoptr(SalSchedResult) r = NULL;
    SalJob *old, *newer, *reg, *wanted;

    world_node(w, "a1", "a", 8, 16384);
    world_node(w, "a2", "a", 8, 16384);
    old = world_job(w, 1, 8, 1000);
    old->besteffort = TRUE;
    world_run(w, old, "a1", 10);
    newer = world_job(w, 1, 4, 1000);
    newer->besteffort = TRUE;
    world_run(w, newer, "a2", 30);
    reg = world_job(w, 1, 4, 1000);
    world_run(w, reg, "a2", 40);
    wanted = world_job(w, 1, 8, 100);

    r = run(w, 50);
    assert_ids(r->preempt, "1");
    assert_ids(r->held, "4");
    assert_started(r, "");
    world_apply(w, r, 50);

    /* While old is suspending, the job stays held and nothing more is
     * preempted. */
    rerun(&r, w, 55);
    assert_ids(r->preempt, "");
    assert_ids(r->held, "4");

    /* Suspended, old is queued to resume; the regular job goes first. */
    old->state = SAL_JOB_SUSPENDED;
    for (guint i = w->vms->len; i-- > 0;) {
        if (((SalVm *)w->vms->pdata[i])->job_id == old->id) {
            g_ptr_array_remove_index(w->vms, i);
        }
    }
    rerun(&r, w, 60);
    assert_placed(r, wanted->id, "a1");
    assert_placed(r, old->id, "-");
    world_apply(w, r, 60);

    /* When it ends, old resumes. */
    world_end(w, wanted);
    rerun(&r, w, 160);
    assert_placed(r, old->id, "a1");
}

/* Of several best-effort jobs, the newest go first, and only as many as
 * needed. */
static void
test_preempt_newest(void)
{
    g_autoptr(World) w = world_new();
    g_autoptr(SalSchedResult) r = NULL;
    SalJob *b[4];
    SalJob *need4, *need8;
    static const guint cpus[] = {4, 4, 4, 2};

    world_node(w, "a1", "a", 8, 16384);
    world_node(w, "a2", "a", 8, 16384);
    for (guint i = 0; i < 4; i++) {
        b[i] = world_job(w, 1, cpus[i], 1000);
        b[i]->besteffort = TRUE;
    }
    /* a1: b1 (10), b2 (20); a2: b3 (30), b4 (40); a2 has 2 CPUs free. */
    world_run(w, b[0], "a1", 10);
    world_run(w, b[1], "a1", 20);
    world_run(w, b[2], "a2", 30);
    world_run(w, b[3], "a2", 40);
    need4 = world_job(w, 1, 4, 100);

    r = run(w, 50);
    assert_ids(r->preempt, "4");
    assert_ids(r->held, "5");

    /* A whole node: the two newest, both on a2, not the older pair. */
    need4->state = SAL_JOB_CANCELLED;
    need8 = world_job(w, 1, 8, 100);
    rerun(&r, w, 50);
    assert_ids(r->preempt, "4,3");
    assert_ids(r->held, "6");
    g_assert_cmpint(need8->id, ==, 6);
}

static void
test_unschedulable(void)
{
    g_autoptr(World) w = world_new();
    g_autoptr(SalSchedResult) r = NULL;
    SalJob *nosite, *big_vm, *many, *spans, *mem;
    const SalUnschedulable *u;

    world_node(w, "a1", "a", 4, 8192);
    world_node(w, "a2", "a", 4, 8192);
    world_node(w, "b1", "b", 8, 8192);
    nosite = world_job(w, 1, 1, 60);
    nosite->site = g_strdup("x");
    big_vm = world_job(w, 1, 16, 60);
    many = world_job(w, 3, 4, 60);
    many->site = g_strdup("a");
    spans = world_job(w, 4, 4, 60);
    mem = world_job(w, 1, 1, 60);
    mem->mem_mib = 9000;
    mem->site = g_strdup("b");

    r = run(w, 0);
    g_assert_cmpuint(r->unschedulable->len, ==, 4);
    u = r->unschedulable->pdata[0];
    g_assert_cmpint(u->job_id, ==, nosite->id);
    g_assert_cmpstr(u->reason, ==, "site 'x' has no nodes");
    u = r->unschedulable->pdata[1];
    g_assert_cmpint(u->job_id, ==, big_vm->id);
    g_assert_cmpstr(u->reason, ==,
                    "no node of the grid has 16 CPUs and 1024 MiB for one VM");
    u = r->unschedulable->pdata[2];
    g_assert_cmpint(u->job_id, ==, many->id);
    g_assert_cmpstr(u->reason, ==,
                    "3 VMs of 4 CPUs and 1024 MiB do not fit in site 'a', "
                    "which holds 2");
    u = r->unschedulable->pdata[3];
    g_assert_cmpint(u->job_id, ==, mem->id);
    g_assert_cmpstr(u->reason, ==,
                    "no node of site 'b' has 1 CPUs and 9000 MiB for one VM");
    /* The same check, one job at a time, as at submission. */
    for (guint i = 0; i < r->unschedulable->len; i++) {
        g_autofree char *reason = NULL;

        u = r->unschedulable->pdata[i];
        reason = sal_sched_unschedulable(w->nodes, world_find(w, u->job_id));
        g_assert_cmpstr(reason, ==, u->reason);
    }
    g_assert_null(sal_sched_unschedulable(w->nodes, spans));

    /* A job that fits only across sites is fine, and starts. */
    assert_started(r, "4");
    assert_placed(r, spans->id, "a1,a2,b1,b1");
    /* Unschedulable jobs get no reservation and block nothing. */
    g_assert_cmpint(r->reserved_job, ==, 0);
}

/* Random grids and queues, run to completion: no node is ever
 * overcommitted, every job ends up run, each on the site it asked for. */
static void
test_random(void)
{
    g_autoptr(GRand) rand = g_rand_new_with_seed(20240611);
    guint n_started = 0, n_preempt = 0;

    for (guint round = 0; round < 40; round++) {
        g_autoptr(World) w = world_new();
        guint n_nodes = g_rand_int_range(rand, 1, 7);
        guint n_jobs = g_rand_int_range(rand, 1, 30);
        gint64 now = 0;
        guint done = 0;

        for (guint i = 0; i < n_nodes; i++) {
            g_autofree char *name = g_strdup_printf("n%u", i);

            world_node(w, name, i % 2 ? "b" : "a",
                       g_rand_int_range(rand, 1, 17),
                       1024 * g_rand_int_range(rand, 1, 33));
        }
        for (guint i = 0; i < n_jobs; i++) {
            SalJob *job = world_job(w, g_rand_int_range(rand, 1, 5),
                                    g_rand_int_range(rand, 1, 9),
                                    g_rand_int_range(rand, 1, 1000));

            job->mem_mib = 512 * g_rand_int_range(rand, 1, 17);
            job->priority = g_rand_int_range(rand, 0, 3);
            job->besteffort = g_rand_int_range(rand, 0, 4) == 0;
            if (g_rand_boolean(rand)) {
                job->site = g_strdup(g_rand_boolean(rand) ? "a" : "b");
            }
        }

        for (;;) {
            g_autoptr(SalSchedResult) r = run(w, now);
            gint64 next = G_MAXINT64;

            if (done + r->unschedulable->len == n_jobs) {
                break;
            }
            for (guint i = 0; i < r->start->len; i++) {
                const SalPlacement *p = r->start->pdata[i];
                const SalJob *job = world_find(w, p->job_id);

                g_assert_cmpuint(g_strv_length(p->nodes), ==, job->n_vms);
                for (guint k = 0; job->site && p->nodes[k]; k++) {
                    for (guint n = 0; n < w->nodes->len; n++) {
                        const SalNode *node = w->nodes->pdata[n];

                        if (g_str_equal(node->name, p->nodes[k])) {
                            g_assert_cmpstr(node->site, ==, job->site);
                        }
                    }
                }
            }
            n_preempt += r->preempt->len;
            n_started += r->start->len;
            world_apply(w, r, now);
            /* Preempted jobs are suspended at once. */
            for (guint i = 0; i < r->preempt->len; i++) {
                SalJob *job =
                    world_find(w, g_array_index(r->preempt, gint64, i));

                job->elapsed_s += now - job->start_time;
                world_end(w, job);
                job->state = SAL_JOB_SUSPENDED;
            }
            /* Time goes to the next end, where that job ends. */
            for (guint i = 0; i < w->jobs->len; i++) {
                const SalJob *job = w->jobs->pdata[i];

                if (job->state == SAL_JOB_RUNNING) {
                    next = MIN(next, sal_job_expected_end(job, now));
                }
            }
            if (next == G_MAXINT64) {
                /* Nothing runs: whatever waits must be unschedulable,
                 * or held (it will fit on the next call). */
                g_assert_cmpuint(r->start->len + r->held->len + r->preempt->len,
                                 >, 0);
                continue;
            }
            now = next;
            for (guint i = 0; i < w->jobs->len; i++) {
                SalJob *job = w->jobs->pdata[i];

                if (job->state == SAL_JOB_RUNNING &&
                    sal_job_expected_end(job, now) <= now) {
                    world_end(w, job);
                    done++;
                }
            }
        }
    }
    g_test_message("%u starts, %u preemptions", n_started, n_preempt);
    g_assert_cmpuint(n_preempt, >, 0);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/sched/priority", test_priority);
    g_test_add_func("/sched/fifo", test_fifo);
    g_test_add_func("/sched/capacity", test_capacity);
    g_test_add_func("/sched/sites", test_sites);
    g_test_add_func("/sched/backfill-short", test_backfill_short);
    g_test_add_func("/sched/backfill-long", test_backfill_long);
    g_test_add_func("/sched/backfill-beside", test_backfill_beside);
    g_test_add_func("/sched/besteffort-idle", test_besteffort_idle);
    g_test_add_func("/sched/preempt-prune", test_preempt_prune);
    g_test_add_func("/sched/preempt-newest", test_preempt_newest);
    g_test_add_func("/sched/unschedulable", test_unschedulable);
    g_test_add_func("/sched/random", test_random);
    return g_test_run();
}
