/*
 * The global scheduler of running processes (ssi-guest/README.md,
 * "Global scheduler"). Every 500 ms this member samples its SSI
 * processes (CPU-bound or not, RSS), then asks the loaded policies, in
 * order, for one move of one of its own processes; the first proposal
 * that passes the anti-thrash rules (residence, budget, no retry of a
 * failed move within a period) is carried out with mig_migrate(). The
 * decision lives here, not in ssi.ko: it needs what only ssid knows
 * (GPIDs and where they run, arrivals, failures), and a move is a CRIU
 * dump only ssid can run.
 *
 * The configuration is the cluster's: the heartbeats carry it with its
 * version, and every member takes a newer one. Lock order: S.lock, then
 * this file's lock.
 */
#include "ssid.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define SCHED_TICK_MS 500
/* A move counts towards its target's cost until the target reports the
 * process busy, or for this long. */
#define SCHED_PENDING_US (5 * G_USEC_PER_SEC)
#define SCHED_MEM_MIN_KB 4096
/* Parallel dumps on one member gain nothing (they share its CPUs) and
 * make CRIU fail now and then: one move at a time. */
#define SCHED_PARALLEL 1
/* The nice of the member's other SSI processes while one is dumped. */
#define SCHED_YIELD_NICE 19

typedef struct {
    guint8 hist;      /* the last 3 samples, 1: a task in state R */
    gboolean seen;    /* in this round's sample */
    gint64 since_us;  /* first seen here, or arrival by migration */
    gboolean arrived; /* came here by migration */
    gint64 failed_us; /* last failed move, 0: none */
    guint64 rss_kb;
    guint32 launcher;
    guint64 streamed; /* stdio bytes relayed, as last sampled */
    guint64 rate[2];  /* bytes/s over the last two samples */
} Sample;

typedef struct {
    guint32 gpid;
    guint32 node;
    gint64 at_us;
} Pending;

/* A member as the policies see it: a copy, taken under S.lock. */
typedef struct {
    guint32 id;
    gboolean self;
    guint64 memfree;
    GArray *busy;  /* guint32 */
    GArray *gpids; /* guint32 */
} View;

typedef struct {
    const char *name;
    const char *description;
    /* A move of one of this member's processes: TRUE and @gpid, @node. */
    gboolean (*propose)(GArray *view, guint32 *gpid, guint32 *node);
} Policy;

static GMutex lock;
static SsiSched conf;
static guint64 conf_ver;
static GHashTable *samples; /* gpid -> Sample* */
static GArray *pending;     /* Pending */
static GArray *moves;       /* gint64: when this member's moves started */
static guint64 n_moved, n_failed;
static guint64 mem_pressure;
static guint in_flight; /* moves under way */

static gint64
now_us(void)
{
    return g_get_monotonic_time();
}

static gboolean
loaded(const char *name)
{
    for (guint i = 0; i < conf.n_policies; i++) {
        if (strcmp(conf.policies[i], name) == 0) {
            return TRUE;
        }
    }
    return FALSE;
}

static gboolean
has(GArray *a, guint32 v)
{
    for (guint i = 0; a && i < a->len; i++) {
        if (g_array_index(a, guint32, i) == v) {
            return TRUE;
        }
    }
    return FALSE;
}

static gboolean
is_busy(const Sample *s)
{
    guint8 h = s->hist & 7;

    return (h & 1) + ((h >> 1) & 1) + ((h >> 2) & 1) >= 2;
}

/* Lock held: not being moved (or just moved) by this member. */
static gboolean
movable_pending(guint32 gpid)
{
    for (guint i = 0; i < pending->len; i++) {
        if (g_array_index(pending, Pending, i).gpid == gpid) {
            return FALSE;
        }
    }
    return TRUE;
}

/* Lock held: may a policy move @gpid now? */
static gboolean
movable(guint32 gpid, const Sample *s)
{
    gint64 now = now_us();

    if (s->arrived &&
        now - s->since_us < (gint64)conf.residence * G_USEC_PER_SEC) {
        return FALSE;
    }
    if (s->failed_us &&
        now - s->failed_us < (gint64)conf.period * G_USEC_PER_SEC) {
        return FALSE;
    }
    return movable_pending(gpid);
}

/* Lock held: moves to @node not in its BUSY yet. */
static guint
pending_to(guint32 node, GArray *busy)
{
    guint n = 0;

    for (guint i = 0; i < pending->len; i++) {
        Pending *p = &g_array_index(pending, Pending, i);

        n += p->node == node && !has(busy, p->gpid);
    }
    return n;
}

/* cpu: the member with the most CPU-bound processes gives one to the one
 * with the fewest, when they differ by `threshold` or more. */
static gboolean
cpu_propose(GArray *view, guint32 *gpid, guint32 *node)
{
    GHashTableIter it;
    gpointer k, v;
    guint mine = 0, best = G_MAXUINT;
    gint64 oldest = G_MAXINT64;
    gboolean together = loaded("together");

    *node = 0;
    *gpid = 0;
    for (guint i = 0; i < view->len; i++) {
        View *m = &g_array_index(view, View, i);
        guint cost = m->busy->len + pending_to(m->id, m->busy);

        if (!m->self && cost < best) {
            best = cost;
            *node = m->id;
        }
    }
    g_hash_table_iter_init(&it, samples);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        Sample *s = v;
        guint32 g = GPOINTER_TO_UINT(k);

        if (!is_busy(s) || !movable_pending(g)) {
            continue;
        }
        mine++;
        if (together && ssi_sched_group_of(&conf, g) >= 0) {
            continue;
        }
        if (movable(g, s) && s->since_us < oldest) {
            oldest = s->since_us;
            *gpid = g;
        }
    }
    return *node && *gpid && mine >= best + conf.threshold;
}

/* mem: under pressure, the biggest process goes to the member with the
 * most memory available, if that is more than twice its RSS. */
static gboolean
mem_propose(GArray *view, guint32 *gpid, guint32 *node)
{
    GHashTableIter it;
    gpointer k, v;
    guint64 biggest = 0, most = 0;

    *node = 0;
    *gpid = 0;
    /* One at a time: the pressure is sampled again after each. */
    if (mem_pressure < conf.mem_high || in_flight > 0) {
        return FALSE;
    }
    for (guint i = 0; i < view->len; i++) {
        View *m = &g_array_index(view, View, i);

        if (!m->self && m->memfree > most) {
            most = m->memfree;
            *node = m->id;
        }
    }
    g_hash_table_iter_init(&it, samples);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        Sample *s = v;

        if (s->rss_kb >= SCHED_MEM_MIN_KB && s->rss_kb > biggest &&
            movable(GPOINTER_TO_UINT(k), s)) {
            biggest = s->rss_kb;
            *gpid = GPOINTER_TO_UINT(k);
        }
    }
    return *node && *gpid && most > 2 * biggest;
}

/* comm: a process that streams to or from its launcher on another member
 * (its stdio, relayed by ssid over the network) at `comm_high` KiB/s or
 * more, over the last two samples, goes to its launcher's member. */
static gboolean
comm_propose(GArray *view, guint32 *gpid, guint32 *node)
{
    GHashTableIter it;
    gpointer k, v;
    guint64 best = 0, high = (guint64)conf.comm_high * 1024;
    guint32 self = 0;

    *node = 0;
    *gpid = 0;
    for (guint i = 0; i < view->len; i++) {
        View *m = &g_array_index(view, View, i);

        if (m->self) {
            self = m->id;
        }
    }
    g_hash_table_iter_init(&it, samples);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        Sample *s = v;
        guint64 rate = MIN(s->rate[0], s->rate[1]);
        gboolean up = FALSE;

        for (guint i = 0; i < view->len; i++) {
            up |= g_array_index(view, View, i).id == s->launcher;
        }
        if (!up || s->launcher == self || rate < high || rate <= best ||
            !movable(GPOINTER_TO_UINT(k), s)) {
            continue;
        }
        best = rate;
        *gpid = GPOINTER_TO_UINT(k);
        *node = s->launcher;
    }
    return *gpid != 0;
}

/* together: a group's processes go to the member running most of them. */
static gboolean
together_propose(GArray *view, guint32 *gpid, guint32 *node)
{
    for (guint g = 0; g < conf.n_groups; g++) {
        guint32 home = 0, self = 0;
        guint most = 0;

        for (guint i = 0; i < view->len; i++) {
            View *m = &g_array_index(view, View, i);
            guint n = 0;

            for (guint j = 0; j < conf.group_len[g]; j++) {
                n += has(m->gpids, conf.groups[g][j]);
            }
            if (n > most) {
                most = n;
                home = m->id;
            }
            if (m->self) {
                self = m->id;
            }
        }
        if (!home || home == self) {
            continue;
        }
        for (guint j = 0; j < conf.group_len[g]; j++) {
            Sample *s = g_hash_table_lookup(
                samples, GUINT_TO_POINTER(conf.groups[g][j]));

            if (s && movable(conf.groups[g][j], s)) {
                *gpid = conf.groups[g][j];
                *node = home;
                return TRUE;
            }
        }
    }
    return FALSE;
}

static const Policy policies[] = {
    {"cpu", "CPU load balancing: CPU-bound processes, hysteresis `threshold`",
     cpu_propose},
    {"mem", "memory pressure: the biggest process leaves at `mem_high`",
     mem_propose},
    {"comm", "communication: a process streaming at `comm_high` KiB/s goes "
             "to its launcher",
     comm_propose},
    {"together", "keep the groups of `together` on one member",
     together_propose},
};

/* The tasks of a namespace, from its init down: any running? RSS. */
static void
walk(pid_t pid, gboolean *running, guint64 *rss_kb, int depth)
{
    g_autofree char *kids_path =
        g_strdup_printf("/proc/%d/task/%d/children", pid, pid);
    g_autofree char *stat_path = g_strdup_printf("/proc/%d/stat", pid);
    g_autofree char *statm_path = g_strdup_printf("/proc/%d/statm", pid);
    g_autofree char *kids = NULL;
    g_autofree char *stat = NULL;
    g_autofree char *statm = NULL;
    g_auto(GStrv) list = NULL;
    const char *rp;
    unsigned long long pages = 0;

    if (depth > 32) {
        return;
    }
    if (g_file_get_contents(stat_path, &stat, NULL, NULL) &&
        (rp = strrchr(stat, ')')) && rp[1] == ' ' && rp[2] == 'R' &&
        !spread_is_ghost(pid)) {
        *running = TRUE;
    }
    if (g_file_get_contents(statm_path, &statm, NULL, NULL) &&
        sscanf(statm, "%*u %llu", &pages) == 1) {
        *rss_kb += pages * (guint64)(sysconf(_SC_PAGESIZE) / 1024);
    }
    if (!g_file_get_contents(kids_path, &kids, NULL, NULL)) {
        return;
    }
    list = g_strsplit(g_strstrip(kids), " ", -1);
    for (char **k = list; *k && **k; k++) {
        walk((pid_t)g_ascii_strtoll(*k, NULL, 10), running, rss_kb, depth + 1);
    }
}

static guint64
read_mem_pressure(void)
{
    g_autofree char *text = NULL;
    const char *l;
    guint64 v = 0;

    if (g_file_get_contents("/proc/ssi/load", &text, NULL, NULL) &&
        (l = strstr(text, "mem_pressure "))) {
        v = g_ascii_strtoull(l + strlen("mem_pressure "), NULL, 10);
    }
    return v;
}

static void
sample(void)
{
    g_autoptr(GArray) procs = proc_snapshot();
    guint64 pressure = read_mem_pressure();
    GHashTableIter it;
    gpointer v;

    /* Outside the lock: /proc reads. */
    g_autofree gboolean *running = g_new0(gboolean, procs->len + 1);
    g_autofree guint64 *rss = g_new0(guint64, procs->len + 1);

    for (guint i = 0; i < procs->len; i++) {
        walk(g_array_index(procs, SsidProcInfo, i).shim, &running[i], &rss[i],
             0);
    }
    g_mutex_lock(&lock);
    mem_pressure = pressure;
    g_hash_table_iter_init(&it, samples);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        ((Sample *)v)->seen = FALSE;
    }
    for (guint i = 0; i < procs->len; i++) {
        guint32 g = g_array_index(procs, SsidProcInfo, i).gpid;
        Sample *s = g_hash_table_lookup(samples, GUINT_TO_POINTER(g));

        if (!s) {
            s = g_new0(Sample, 1);
            s->since_us = now_us();
            g_hash_table_insert(samples, GUINT_TO_POINTER(g), s);
        }
        s->seen = TRUE;
        s->hist = (guint8)(((s->hist << 1) | (running[i] ? 1 : 0)) & 7);
        s->rss_kb = rss[i];
        {
            const SsidProcInfo *pi = &g_array_index(procs, SsidProcInfo, i);
            guint64 d = pi->streamed >= s->streamed ? pi->streamed - s->streamed
                                                    : 0;

            s->launcher = pi->launcher;
            s->rate[1] = s->rate[0];
            s->rate[0] = d * 1000 / SCHED_TICK_MS;
            s->streamed = pi->streamed;
        }
    }
    g_hash_table_iter_init(&it, samples);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        if (!((Sample *)v)->seen) {
            g_hash_table_iter_remove(&it);
        }
    }
    g_mutex_unlock(&lock);
}

static void
view_clear(gpointer p)
{
    View *m = p;

    g_array_unref(m->busy);
    g_array_unref(m->gpids);
}

/* The up members, this one included (its BUSY from the samples). */
static GArray *
view_copy(void)
{
    GArray *view = g_array_new(FALSE, TRUE, sizeof(View));

    g_array_set_clear_func(view, view_clear);
    g_mutex_lock(&S.lock);
    for (guint i = 0; S.state == SSID_MEMBER && i < S.members->len; i++) {
        SsidMember *m = g_ptr_array_index(S.members, i);
        View c = {m->id, m->id == S.self, m->memfree, NULL, NULL};

        if (m->leaving) {
            continue;
        }
        if (c.self) {
            c.busy = g_array_new(FALSE, FALSE, sizeof(guint32));
            c.gpids = proc_gpids();
        } else {
            c.busy = g_array_copy(m->busy);
            c.gpids = g_array_copy(m->gpids);
        }
        g_array_append_val(view, c);
    }
    g_mutex_unlock(&S.lock);
    return view;
}

/* Lock held. */
static void
prune(GArray *view)
{
    gint64 now = now_us();

    for (guint i = 0; i < pending->len;) {
        Pending *p = &g_array_index(pending, Pending, i);
        gboolean done = now - p->at_us > SCHED_PENDING_US;

        for (guint j = 0; !done && j < view->len; j++) {
            View *m = &g_array_index(view, View, j);

            done = m->id == p->node && has(m->busy, p->gpid);
        }
        if (done) {
            g_array_remove_index_fast(pending, i);
        } else {
            i++;
        }
    }
    while (moves->len > 0 && now - g_array_index(moves, gint64, 0) >=
                                 (gint64)conf.period * G_USEC_PER_SEC) {
        g_array_remove_index(moves, 0);
    }
}

typedef struct {
    const char *by;
    guint32 gpid;
    guint32 node;
} Move;

typedef struct {
    pid_t pid;
    int nice;
} Niced;

/*
 * While @gpid is dumped, the member's other SSI processes yield (nice
 * 19): CRIU's parasite runs in the dumped process, at its own priority,
 * and among a dozen CPU-bound processes a dump takes seconds instead of
 * a fraction of one. Their nice values, to put back.
 */
static GArray *
yield_others(guint32 gpid)
{
    g_autoptr(GArray) procs = proc_snapshot();
    g_autoptr(GArray) pids = g_array_new(FALSE, FALSE, sizeof(pid_t));
    GArray *niced = g_array_new(FALSE, FALSE, sizeof(Niced));

    for (guint i = 0; i < procs->len; i++) {
        const SsidProcInfo *p = &g_array_index(procs, SsidProcInfo, i);

        if (p->gpid != gpid) {
            g_array_append_val(pids, p->shim);
            proc_descendants(p->shim, pids, 0);
        }
    }
    for (guint i = 0; i < pids->len; i++) {
        Niced n = {g_array_index(pids, pid_t, i), 0};

        errno = 0;
        n.nice = getpriority(PRIO_PROCESS, (id_t)n.pid);
        if (errno || n.nice >= SCHED_YIELD_NICE ||
            setpriority(PRIO_PROCESS, (id_t)n.pid, SCHED_YIELD_NICE) < 0) {
            continue;
        }
        g_array_append_val(niced, n);
    }
    return niced;
}

static void
yield_end(GArray *niced)
{
    for (guint i = 0; i < niced->len; i++) {
        Niced *n = &g_array_index(niced, Niced, i);

        setpriority(PRIO_PROCESS, (id_t)n->pid, n->nice);
    }
    g_array_unref(niced);
}

static gpointer
move_thread(gpointer data)
{
    Move *mv = data;
    g_autoptr(GString) report = g_string_new(NULL);
    g_autoptr(GError) err = NULL;
    GArray *niced = yield_others(mv->gpid);
    gboolean ok = mig_migrate(mv->gpid, mv->node, report, &err);

    yield_end(niced);
    g_mutex_lock(&lock);
    for (guint i = 0; i < pending->len; i++) {
        Pending *p = &g_array_index(pending, Pending, i);

        if (p->gpid != mv->gpid) {
            continue;
        }
        if (ok) {
            /* Its target reports it busy a second or so after. */
            p->at_us = now_us();
        } else {
            g_array_remove_index_fast(pending, i);
        }
        break;
    }
    if (ok) {
        n_moved++;
        g_message("sched: %s moves GPID %u to node %u: %s", mv->by, mv->gpid,
                  mv->node, report->str);
    } else {
        Sample *s = g_hash_table_lookup(samples, GUINT_TO_POINTER(mv->gpid));

        n_failed++;
        if (s) {
            s->failed_us = now_us();
        }
        g_message("sched: %s cannot move GPID %u to node %u: %s", mv->by,
                  mv->gpid, mv->node, err->message);
    }
    in_flight--;
    g_mutex_unlock(&lock);
    g_free(mv);
    return NULL;
}

/* Start the moves the policies propose, up to SCHED_PARALLEL at once. */
static void
decide(void)
{
    g_autoptr(GArray) view = view_copy();

    if (view->len < 2) {
        return;
    }
    g_mutex_lock(&lock);
    prune(view);
    while (in_flight < SCHED_PARALLEL && moves->len < conf.budget) {
        Move mv = {NULL, 0, 0};
        gint64 t = now_us();

        for (guint i = 0; i < conf.n_policies && !mv.by; i++) {
            for (guint p = 0; p < G_N_ELEMENTS(policies); p++) {
                if (strcmp(policies[p].name, conf.policies[i]) == 0 &&
                    policies[p].propose(view, &mv.gpid, &mv.node)) {
                    mv.by = policies[p].name;
                    break;
                }
            }
        }
        if (!mv.by) {
            break;
        }
        Pending p = {mv.gpid, mv.node, t};

        g_array_append_val(moves, t);
        g_array_append_val(pending, p);
        in_flight++;
        g_thread_unref(g_thread_new("sched-move", move_thread,
                                    g_memdup2(&mv, sizeof(mv))));
    }
    g_mutex_unlock(&lock);
}

static gpointer
sched_thread(gpointer data)
{
    for (;;) {
        g_usleep(SCHED_TICK_MS * 1000);
        sample();
        decide();
    }
    return NULL;
}

gboolean
sched_init(const char *policies_conf, GError **error)
{
    ssi_sched_init(&conf);
    samples =
        g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
    pending = g_array_new(FALSE, FALSE, sizeof(Pending));
    moves = g_array_new(FALSE, FALSE, sizeof(gint64));
    return !policies_conf ||
           ssi_sched_set(&conf, "policies", policies_conf, error);
}

void
sched_start(void)
{
    g_thread_unref(g_thread_new("sched", sched_thread, NULL));
}

void
sched_note_arrival(guint32 gpid)
{
    Sample *s = g_new0(Sample, 1);

    s->since_us = now_us();
    s->arrived = TRUE;
    g_mutex_lock(&lock);
    g_hash_table_replace(samples, GUINT_TO_POINTER(gpid), s);
    g_mutex_unlock(&lock);
}

GArray *
sched_busy(void)
{
    GArray *a = g_array_new(FALSE, FALSE, sizeof(guint32));
    GHashTableIter it;
    gpointer k, v;

    g_mutex_lock(&lock);
    g_hash_table_iter_init(&it, samples);
    while (g_hash_table_iter_next(&it, &k, &v) && a->len < SSI_GPIDS_MAX) {
        if (is_busy(v)) {
            guint32 g = GPOINTER_TO_UINT(k);

            g_array_append_val(a, g);
        }
    }
    g_mutex_unlock(&lock);
    return a;
}

char *
sched_conf_text(guint64 *ver)
{
    char *t;

    g_mutex_lock(&lock);
    t = ssi_sched_format(&conf);
    *ver = conf_ver;
    g_mutex_unlock(&lock);
    return t;
}

void
sched_heard(const char *text, guint64 ver, guint32 from)
{
    g_autoptr(GError) err = NULL;
    SsiSched c;

    g_mutex_lock(&lock);
    if (ver <= conf_ver) {
        g_mutex_unlock(&lock);
        return;
    }
    if (!ssi_sched_parse(text, &c, &err)) {
        g_mutex_unlock(&lock);
        g_warning("sched: ignoring configuration version %" G_GUINT64_FORMAT
                  " from node %u: %s",
                  ver, from, err->message);
        return;
    }
    conf = c;
    conf_ver = ver;
    g_mutex_unlock(&lock);
    g_message("sched: configuration version %" G_GUINT64_FORMAT
              " from node %u: %s",
              ver, from, text);
}

static void
json_gpids(GString *t, const guint32 *g, guint n)
{
    g_string_append_c(t, '[');
    for (guint i = 0; i < n; i++) {
        g_string_append_printf(t, "%s%u", i ? ", " : "", g[i]);
    }
    g_string_append_c(t, ']');
}

/* Lock held. */
static char *
listing(gboolean json)
{
    GString *t = g_string_new(NULL);
    guint left = conf.budget > moves->len ? conf.budget - moves->len : 0;

    if (json) {
        g_string_append(t, "{\"policies\": [");
        for (guint i = 0; i < conf.n_policies; i++) {
            g_string_append_printf(t, "%s\"%s\"", i ? ", " : "",
                                   conf.policies[i]);
        }
        g_string_append(t, "], \"available\": [");
        for (guint i = 0; i < G_N_ELEMENTS(policies); i++) {
            g_string_append_printf(t, "%s\"%s\"", i ? ", " : "",
                                   policies[i].name);
        }
        g_string_append_printf(
            t,
            "], \"threshold\": %u, \"residence\": %u, \"budget\": %u, "
            "\"period\": %u, \"mem_high\": %u, \"comm_high\": %u, "
            "\"together\": [",
            conf.threshold, conf.residence, conf.budget, conf.period,
            conf.mem_high, conf.comm_high);
        for (guint g = 0; g < conf.n_groups; g++) {
            if (g) {
                g_string_append(t, ", ");
            }
            json_gpids(t, conf.groups[g], conf.group_len[g]);
        }
        g_string_append_printf(t,
                               "], \"version\": %" G_GUINT64_FORMAT
                               ", \"moved\": %" G_GUINT64_FORMAT
                               ", \"failed\": %" G_GUINT64_FORMAT
                               ", \"budget_left\": %u}\n",
                               conf_ver, n_moved, n_failed, left);
        return g_string_free(t, FALSE);
    }
    g_string_append(t, "policies");
    for (guint i = 0; i < conf.n_policies; i++) {
        g_string_append_printf(t, " %s", conf.policies[i]);
    }
    g_string_append(t, conf.n_policies ? "\navailable" : " none\navailable");
    for (guint i = 0; i < G_N_ELEMENTS(policies); i++) {
        g_string_append_printf(t, " %s", policies[i].name);
    }
    g_string_append_printf(
        t,
        "\nthreshold %u residence %u budget %u period %u mem_high %u "
        "comm_high %u\n",
        conf.threshold, conf.residence, conf.budget, conf.period,
        conf.mem_high, conf.comm_high);
    g_string_append(t, "together ");
    for (guint g = 0; g < conf.n_groups; g++) {
        for (guint i = 0; i < conf.group_len[g]; i++) {
            g_string_append_printf(t, "%s%u",
                                   i   ? ","
                                   : g ? "/"
                                       : "",
                                   conf.groups[g][i]);
        }
    }
    g_string_append_printf(t,
                           "\nversion %" G_GUINT64_FORMAT
                           "\nmoved %" G_GUINT64_FORMAT
                           " failed %" G_GUINT64_FORMAT " budget_left %u\n",
                           conf_ver, n_moved, n_failed, left);
    return g_string_free(t, FALSE);
}

char *
sched_control(const char *verb, char **args, gboolean json, GError **error)
{
    g_autoptr(GError) e = NULL;
    SsiSched c;
    guint nargs = args ? g_strv_length(args) : 0;
    char *r;

    g_mutex_lock(&lock);
    c = conf;
    if (strcmp(verb, "ls") == 0 && nargs == 0) {
        r = listing(json);
        g_mutex_unlock(&lock);
        return r;
    }
    if ((strcmp(verb, "load") == 0 || strcmp(verb, "unload") == 0) &&
        nargs == 1) {
        gboolean load = verb[0] == 'l';
        guint at = c.n_policies;

        for (guint i = 0; i < c.n_policies; i++) {
            if (strcmp(c.policies[i], args[0]) == 0) {
                at = i;
            }
        }
        if (!ssi_sched_policy_known(args[0])) {
            g_set_error(&e, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                        "no scheduling policy '%s' (there are cpu, mem, "
                        "together)",
                        args[0]);
        } else if (load && at < c.n_policies) {
            g_set_error(&e, G_IO_ERROR, G_IO_ERROR_EXISTS,
                        "policy '%s' is loaded already", args[0]);
        } else if (!load && at == c.n_policies) {
            g_set_error(&e, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                        "policy '%s' is not loaded", args[0]);
        } else if (load) {
            g_strlcpy(c.policies[c.n_policies++], args[0],
                      SSI_SCHED_NAME_MAX + 1);
        } else {
            memmove(&c.policies[at], &c.policies[at + 1],
                    (c.n_policies - at - 1) * sizeof(c.policies[0]));
            c.n_policies--;
        }
    } else if (strcmp(verb, "set") == 0 && nargs >= 1) {
        for (guint i = 0; i < nargs; i++) {
            g_auto(GStrv) kv = g_strsplit(args[i], "=", 2);

            if (!kv[0] || !kv[1]) {
                g_set_error(&e, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                            "'%s' is not KEY=VALUE", args[i]);
                break;
            }
            if (strcmp(kv[0], "policies") == 0) {
                g_set_error(&e, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                            "policies are changed with load and unload");
                break;
            }
            if (!ssi_sched_set(&c, kv[0], kv[1], &e)) {
                break;
            }
        }
    } else {
        g_set_error(&e, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "bad scheduler request '%s' with %u argument(s)", verb,
                    nargs);
    }
    if (e) {
        g_mutex_unlock(&lock);
        g_propagate_error(error, g_steal_pointer(&e));
        return NULL;
    }
    conf = c;
    conf_ver = MAX(conf_ver + 1, (guint64)(g_get_real_time() / 1000));
    r = listing(json);
    g_mutex_unlock(&lock);
    g_message("sched: %s %s: version %" G_GUINT64_FORMAT, verb,
              nargs ? args[0] : "", conf_ver);
    return r;
}
