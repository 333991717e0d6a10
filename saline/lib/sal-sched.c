#include "sal-sched.h"

#include <string.h>

#define ANY_SITE G_MAXUINT

/* Capacity of one node, or what is left of it. Signed: a node whose
 * configuration shrank under running VMs is overcommitted. */
typedef struct {
    gint64 cpus;
    gint64 mem;
} Cap;

typedef struct {
    GPtrArray *nodes; /* SalNode * */
    guint n;
    GHashTable *index; /* node name -> index + 1 */
    GPtrArray *sites;  /* site names (borrowed), in order of appearance */
    guint *site_of;    /* node index -> site index */
    Cap *total;
} Grid;

/* What a job takes: its VMs per node, until @end. */
typedef struct {
    const SalJob *job;
    guint *counts;
    gint64 end;
} Hold;

typedef struct {
    const Grid *g;
    gint64 now;
    Cap *free;             /* held by nothing */
    Cap *soon;             /* held by suspending and preempted jobs */
    GPtrArray *holds;      /* Hold *: everything else active, with its end */
    GPtrArray *besteffort; /* Hold *: running best-effort jobs still
                              preemptible, newest first */
    const SalJob *reserved;
    gint64 reserved_at;
    Cap *reserved_cap; /* room for regular jobs at reserved_at */
    SalSchedResult *result;
} Sched;

static void
hold_free(Hold *h)
{
    g_free(h->counts);
    g_free(h);
}

static Hold *
hold_new(const Grid *g, const SalJob *job, gint64 end)
{
    Hold *h = g_new0(Hold, 1);

    h->job = job;
    h->counts = g_new0(guint, g->n);
    h->end = end;
    return h;
}

static void
grid_init(Grid *g, GPtrArray *nodes)
{
    g->nodes = nodes;
    g->n = nodes->len;
    g->index = g_hash_table_new(g_str_hash, g_str_equal);
    g->sites = g_ptr_array_new();
    g->site_of = g_new0(guint, g->n);
    g->total = g_new0(Cap, g->n);
    for (guint i = 0; i < g->n; i++) {
        const SalNode *node = nodes->pdata[i];
        guint s;

        g_hash_table_insert(g->index, node->name, GUINT_TO_POINTER(i + 1));
        for (s = 0; s < g->sites->len; s++) {
            if (g_str_equal(g->sites->pdata[s], node->site)) {
                break;
            }
        }
        if (s == g->sites->len) {
            g_ptr_array_add(g->sites, node->site);
        }
        g->site_of[i] = s;
        g->total[i].cpus = node->cpus;
        g->total[i].mem = (gint64)MIN(node->mem_mib, (guint64)G_MAXINT64);
    }
}

static void
grid_clear(Grid *g)
{
    g_hash_table_unref(g->index);
    g_ptr_array_unref(g->sites);
    g_free(g->site_of);
    g_free(g->total);
}

static guint
grid_site(const Grid *g, const char *site)
{
    for (guint s = 0; s < g->sites->len; s++) {
        if (g_str_equal(g->sites->pdata[s], site)) {
            return s;
        }
    }
    return ANY_SITE;
}

static Cap *
cap_dup(const Grid *g, const Cap *c)
{
    return g_memdup2(c, g->n * sizeof(Cap));
}

/* @pool += @sign * what @job takes with @counts VMs per node. */
static void
cap_add(const Grid *g, Cap *pool, const SalJob *job, const guint *counts,
        gint sign)
{
    for (guint i = 0; i < g->n; i++) {
        pool[i].cpus += sign * (gint64)counts[i] * job->cpus;
        pool[i].mem += sign * (gint64)counts[i] * (gint64)job->mem_mib;
    }
}

static guint
node_fit(const SalJob *job, const Cap *c)
{
    if (c->cpus <= 0 || c->mem <= 0) {
        return 0;
    }
    return MIN(MIN(c->cpus / job->cpus, c->mem / (gint64)job->mem_mib),
               SAL_MAX_VMS);
}

/* Puts up to n_vms VMs of @job on the nodes of site @site (ANY_SITE: of
 * all sites) in node order, and returns how many fit. @counts may be
 * NULL. */
static guint
fill(const Grid *g, const SalJob *job, const Cap *pool, guint site,
     guint *counts)
{
    guint left = job->n_vms;

    if (counts) {
        memset(counts, 0, g->n * sizeof(*counts));
    }
    for (guint i = 0; i < g->n && left > 0; i++) {
        guint k;

        if (site != ANY_SITE && g->site_of[i] != site) {
            continue;
        }
        k = MIN(node_fit(job, &pool[i]), left);
        if (counts) {
            counts[i] = k;
        }
        left -= k;
    }
    return job->n_vms - left;
}

/* The placement rule of sal-sched.h. On success @counts (if not NULL)
 * holds the VMs per node. */
static gboolean
place(const Grid *g, const SalJob *job, const Cap *pool, guint *counts)
{
    if (job->site) {
        guint s = grid_site(g, job->site);

        return s != ANY_SITE && fill(g, job, pool, s, counts) == job->n_vms;
    }
    for (guint s = 0; s < g->sites->len; s++) {
        if (fill(g, job, pool, s, NULL) == job->n_vms) {
            return fill(g, job, pool, s, counts) == job->n_vms;
        }
    }
    return fill(g, job, pool, ANY_SITE, counts) == job->n_vms;
}

static char *
unschedulable_reason(const Grid *g, const SalJob *job)
{
    g_autofree char *where = NULL;
    guint site = ANY_SITE;
    guint fit;

    if (job->n_vms == 0 || job->cpus == 0 || job->mem_mib == 0) {
        return g_strdup("it asks for no VM, CPU or memory");
    }
    if (job->site) {
        site = grid_site(g, job->site);
        if (site == ANY_SITE) {
            return g_strdup_printf("site '%s' has no nodes", job->site);
        }
    }
    if (place(g, job, g->total, NULL)) {
        return NULL;
    }
    where = job->site ? g_strdup_printf("site '%s'", job->site)
                      : g_strdup("the grid");
    fit = fill(g, job, g->total, site, NULL);
    if (fit == 0) {
        return g_strdup_printf(
            "no node of %s has %u CPUs and %" G_GUINT64_FORMAT
            " MiB for one VM",
            where, job->cpus, job->mem_mib);
    }
    return g_strdup_printf("%u VMs of %u CPUs and %" G_GUINT64_FORMAT
                           " MiB do not fit in %s, which holds %u",
                           job->n_vms, job->cpus, job->mem_mib, where, fit);
}

static void
placement_free(SalPlacement *p)
{
    g_strfreev(p->nodes);
    g_free(p);
}

static void
unschedulable_free(SalUnschedulable *u)
{
    g_free(u->reason);
    g_free(u);
}

static SalPlacement *
placement_new(const Grid *g, const SalJob *job, const guint *counts)
{
    SalPlacement *p = g_new0(SalPlacement, 1);
    guint k = 0;

    p->job_id = job->id;
    p->nodes = g_new0(char *, job->n_vms + 1);
    for (guint i = 0; i < g->n; i++) {
        const SalNode *node = g->nodes->pdata[i];

        for (guint j = 0; j < counts[i]; j++) {
            p->nodes[k++] = g_strdup(node->name);
        }
    }
    return p;
}

/* Regular jobs first; then priority, higher first; then FIFO. */
static gint
queue_cmp(gconstpointer a, gconstpointer b)
{
    const SalJob *x = *(const SalJob *const *)a;
    const SalJob *y = *(const SalJob *const *)b;

    if (x->besteffort != y->besteffort) {
        return x->besteffort ? 1 : -1;
    }
    if (x->priority != y->priority) {
        return x->priority > y->priority ? -1 : 1;
    }
    if (x->submit_time != y->submit_time) {
        return x->submit_time < y->submit_time ? -1 : 1;
    }
    return (x->id > y->id) - (x->id < y->id);
}

/* Newest first: latest start, then highest id. */
static gint
newest_cmp(gconstpointer a, gconstpointer b)
{
    const Hold *x = *(const Hold *const *)a;
    const Hold *y = *(const Hold *const *)b;

    if (x->job->start_time != y->job->start_time) {
        return x->job->start_time > y->job->start_time ? -1 : 1;
    }
    return (x->job->id < y->job->id) - (x->job->id > y->job->id);
}

static gint
end_cmp(gconstpointer a, gconstpointer b)
{
    const Hold *x = *(const Hold *const *)a;
    const Hold *y = *(const Hold *const *)b;

    return (x->end > y->end) - (x->end < y->end);
}

/* Sorts the active jobs' VMs into free/soon/holds/besteffort. */
static void
sched_load(Sched *s, GPtrArray *jobs, GPtrArray *vms)
{
    const Grid *g = s->g;
    g_autoptr(GHashTable) active =
        g_hash_table_new(g_int64_hash, g_int64_equal);
    GHashTableIter it;
    Hold *h;

    for (guint i = 0; i < jobs->len; i++) {
        const SalJob *job = jobs->pdata[i];

        if (sal_job_state_is_active(job->state) &&
            !g_hash_table_contains(active, &job->id)) {
            h = hold_new(g, job, sal_job_expected_end(job, s->now));
            g_hash_table_insert(active, (gpointer)&job->id, h);
        }
    }
    for (guint i = 0; i < vms->len; i++) {
        const SalVm *vm = vms->pdata[i];
        guint node;

        h = g_hash_table_lookup(active, &vm->job_id);
        node = vm->node
                   ? GPOINTER_TO_UINT(g_hash_table_lookup(g->index, vm->node))
                   : 0;
        if (h && node > 0) {
            h->counts[node - 1]++;
        }
    }

    s->free = cap_dup(g, g->total);
    s->soon = g_new0(Cap, g->n);
    g_hash_table_iter_init(&it, active);
    while (g_hash_table_iter_next(&it, NULL, (gpointer *)&h)) {
        cap_add(g, s->free, h->job, h->counts, -1);
        if (h->job->state == SAL_JOB_SUSPENDING) {
            cap_add(g, s->soon, h->job, h->counts, 1);
            hold_free(h);
        } else if (h->job->besteffort && h->job->state == SAL_JOB_RUNNING) {
            g_ptr_array_add(s->besteffort, h);
        } else {
            g_ptr_array_add(s->holds, h);
        }
    }
    g_ptr_array_sort(s->besteffort, newest_cmp);
}

/* @job takes @counts now: it starts (@start) or is held for capacity
 * being freed. */
static void
sched_take(Sched *s, const SalJob *job, guint *counts, gboolean start)
{
    Hold *h = hold_new(s->g, job, sal_job_expected_end(job, s->now));

    memcpy(h->counts, counts, s->g->n * sizeof(*counts));
    g_ptr_array_add(s->holds, h);
    cap_add(s->g, s->free, job, counts, -1);
    if (start) {
        g_ptr_array_add(s->result->start, placement_new(s->g, job, counts));
    } else {
        g_array_append_val(s->result->held, job->id);
    }
}

/* Room now once the suspending and preempted jobs are gone. */
static Cap *
usable_room(Sched *s)
{
    Cap *room = cap_dup(s->g, s->free);

    for (guint i = 0; i < s->g->n; i++) {
        room[i].cpus += s->soon[i].cpus;
        room[i].mem += s->soon[i].mem;
    }
    return room;
}

/* EASY: may @job take @counts now without delaying the reserved job? */
static gboolean
backfill_ok(Sched *s, const SalJob *job, const guint *counts)
{
    g_autofree Cap *left = NULL;

    if (!s->reserved || sal_job_expected_end(job, s->now) <= s->reserved_at) {
        return TRUE;
    }
    left = cap_dup(s->g, s->reserved_cap);
    cap_add(s->g, left, job, counts, -1);
    if (!place(s->g, s->reserved, left, NULL)) {
        return FALSE;
    }
    memcpy(s->reserved_cap, left, s->g->n * sizeof(Cap));
    return TRUE;
}

/*
 * @job fits in @pool with @counts: may it take them? If they are in the
 * way of the reserved job, it may still take room of @pool the reserved
 * job does not need at its reservation (EASY's "extra" nodes); @counts
 * then says where.
 */
static gboolean
backfill_fit(Sched *s, const SalJob *job, const Cap *pool, guint *counts)
{
    g_autofree guint *reserved = NULL;
    g_autofree Cap *spare = NULL;

    if (backfill_ok(s, job, counts)) {
        return TRUE;
    }
    reserved = g_new0(guint, s->g->n);
    if (!place(s->g, s->reserved, s->reserved_cap, reserved)) {
        return FALSE;
    }
    spare = cap_dup(s->g, s->reserved_cap);
    cap_add(s->g, spare, s->reserved, reserved, -1);
    for (guint i = 0; i < s->g->n; i++) {
        spare[i].cpus = MIN(spare[i].cpus, pool[i].cpus);
        spare[i].mem = MIN(spare[i].mem, pool[i].mem);
    }
    return place(s->g, job, spare, counts) && backfill_ok(s, job, counts);
}

/* Room for regular jobs now if every preemptible job were suspended. */
static Cap *
regular_room(Sched *s)
{
    Cap *room = usable_room(s);

    for (guint k = 0; k < s->besteffort->len; k++) {
        Hold *h = s->besteffort->pdata[k];

        cap_add(s->g, room, h->job, h->counts, 1);
    }
    return room;
}

/* Gives @job the earliest expected end after which it fits. */
static void
sched_reserve(Sched *s, const SalJob *job)
{
    g_autofree Cap *room = regular_room(s);
    g_autoptr(GPtrArray) ends = g_ptr_array_sized_new(s->holds->len);

    g_ptr_array_extend(ends, s->holds, NULL, NULL);
    g_ptr_array_sort(ends, end_cmp);
    for (guint k = 0; k < ends->len; k++) {
        Hold *h = ends->pdata[k];

        cap_add(s->g, room, h->job, h->counts, 1);
        if (k + 1 < ends->len && ((Hold *)ends->pdata[k + 1])->end == h->end) {
            continue;
        }
        if (place(s->g, job, room, NULL)) {
            s->reserved = job;
            s->reserved_at = h->end;
            s->reserved_cap = g_steal_pointer(&room);
            s->result->reserved_job = job->id;
            s->result->reserved_start = h->end;
            return;
        }
    }
    /* Only VMs of unknown jobs or nodes could be in the way: no
     * reservation, the queue goes on. */
}

/*
 * Frees room for @job (which fits in @pool = free + soon only with more)
 * by preempting running best-effort jobs: newest first, then pruned
 * oldest first. Returns FALSE if even all of them would not do.
 */
static gboolean
sched_preempt(Sched *s, const SalJob *job, Cap *pool, guint *counts)
{
    g_autoptr(GPtrArray) chosen = g_ptr_array_new();
    gboolean fits = FALSE;

    for (guint k = 0; k < s->besteffort->len && !fits; k++) {
        Hold *h = s->besteffort->pdata[k];

        cap_add(s->g, pool, h->job, h->counts, 1);
        g_ptr_array_add(chosen, h);
        fits = place(s->g, job, pool, NULL);
    }
    if (!fits) {
        return FALSE;
    }
    for (guint k = chosen->len; k-- > 0;) {
        Hold *h = chosen->pdata[k];

        cap_add(s->g, pool, h->job, h->counts, -1);
        if (place(s->g, job, pool, NULL)) {
            g_ptr_array_remove_index(chosen, k);
        } else {
            cap_add(s->g, pool, h->job, h->counts, 1);
        }
    }
    place(s->g, job, pool, counts);
    if (!backfill_fit(s, job, pool, counts)) {
        return TRUE; /* it fits now, so no reservation; it just waits */
    }
    for (guint k = 0; k < chosen->len; k++) {
        Hold *h = chosen->pdata[k];

        g_array_append_val(s->result->preempt, h->job->id);
        cap_add(s->g, s->soon, h->job, h->counts, 1);
        g_ptr_array_remove(s->besteffort, h);
    }
    sched_take(s, job, counts, FALSE);
    return TRUE;
}

static void
sched_regular(Sched *s, const SalJob *job)
{
    g_autofree guint *counts = g_new0(guint, s->g->n);
    g_autofree Cap *pool = NULL;

    if (place(s->g, job, s->free, counts)) {
        if (backfill_fit(s, job, s->free, counts)) {
            sched_take(s, job, counts, TRUE);
        }
        return;
    }
    pool = usable_room(s);
    if (place(s->g, job, pool, counts)) {
        if (backfill_fit(s, job, pool, counts)) {
            sched_take(s, job, counts, FALSE);
        }
        return;
    }
    if (!sched_preempt(s, job, pool, counts) && !s->reserved) {
        sched_reserve(s, job);
    }
}

SalSchedResult *
sal_sched_run(GPtrArray *nodes, GPtrArray *jobs, GPtrArray *vms, gint64 now)
{
    SalSchedResult *result = g_new0(SalSchedResult, 1);
    g_autoptr(GPtrArray) queue = g_ptr_array_new();
    Grid g;
    Sched s = {
        .g = &g,
        .now = now,
        .holds = g_ptr_array_new_with_free_func((GDestroyNotify)hold_free),
        .besteffort = g_ptr_array_new_with_free_func((GDestroyNotify)hold_free),
        .result = result,
    };

    result->start =
        g_ptr_array_new_with_free_func((GDestroyNotify)placement_free);
    result->preempt = g_array_new(FALSE, FALSE, sizeof(gint64));
    result->held = g_array_new(FALSE, FALSE, sizeof(gint64));
    result->unschedulable =
        g_ptr_array_new_with_free_func((GDestroyNotify)unschedulable_free);

    grid_init(&g, nodes);
    sched_load(&s, jobs, vms);

    for (guint i = 0; i < jobs->len; i++) {
        SalJob *job = jobs->pdata[i];
        char *reason;

        if (job->state != SAL_JOB_PENDING && job->state != SAL_JOB_SUSPENDED) {
            continue;
        }
        reason = unschedulable_reason(&g, job);
        if (reason) {
            SalUnschedulable *u = g_new0(SalUnschedulable, 1);

            u->job_id = job->id;
            u->reason = reason;
            g_ptr_array_add(result->unschedulable, u);
        } else {
            g_ptr_array_add(queue, job);
        }
    }
    g_ptr_array_sort(queue, queue_cmp);

    for (guint i = 0; i < queue->len; i++) {
        const SalJob *job = queue->pdata[i];
        g_autofree guint *counts = NULL;

        if (!job->besteffort) {
            sched_regular(&s, job);
            continue;
        }
        /* Best-effort: whatever is free after every regular job. */
        counts = g_new0(guint, g.n);
        if (place(&g, job, s.free, counts)) {
            sched_take(&s, job, counts, TRUE);
        }
    }

    g_free(s.free);
    g_free(s.soon);
    g_free(s.reserved_cap);
    g_ptr_array_unref(s.holds);
    g_ptr_array_unref(s.besteffort);
    grid_clear(&g);
    return result;
}

void
sal_sched_result_free(SalSchedResult *result)
{
    if (!result) {
        return;
    }
    g_ptr_array_unref(result->start);
    g_array_unref(result->preempt);
    g_array_unref(result->held);
    g_ptr_array_unref(result->unschedulable);
    g_free(result);
}

char *
sal_sched_unschedulable(GPtrArray *nodes, const SalJob *job)
{
    Grid g;
    char *reason;

    grid_init(&g, nodes);
    reason = unschedulable_reason(&g, job);
    grid_clear(&g);
    return reason;
}

const SalPlacement *
sal_sched_result_placement(const SalSchedResult *result, gint64 job_id)
{
    for (guint i = 0; i < result->start->len; i++) {
        const SalPlacement *p = result->start->pdata[i];

        if (p->job_id == job_id) {
            return p;
        }
    }
    return NULL;
}
