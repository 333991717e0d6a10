/*
 * vm-migrate: live-migrate one VM or a whole virtual cluster between
 * hosts or sites through libvirt, with progress and a report.
 *
 * The main thread checks everything first, then runs a GLib main loop:
 * one thread per migration (blocked in virDomainMigrateToURI3), a 500 ms
 * tick that polls job statistics, samples page-hash counters, enforces
 * --timeout and draws progress, and signal handlers that abort.
 */
#include <glib-unix.h>
#include <libvirt/libvirt.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vmm-placement.h"
#include "vmm-probe.h"
#include "vmm-progress.h"
#include "vmm-report.h"
#include "vmm-virt.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

#define TICK_MS 500
#define PIPE_EVERY_TICKS 10 /* 5 s */
#define MAX_BANDWIDTH_MIB (1024 * 1024)
#define MAX_TIMEOUT_S (7 * 24 * 3600)

static char *arg_connect;
static char *arg_to;
static char *arg_placement;
static char *arg_bandwidth;
static char *arg_parallel;
static char *arg_timeout;
static gboolean arg_json;
static gboolean arg_quiet;
static gboolean arg_probe;
static char *arg_probe_interval;
static char **arg_probe_target;

static guint64 arg_bandwidth_mib; /* 0: no cap */
static guint arg_parallel_n;      /* 0: all */
static guint arg_timeout_s;       /* 0: none */
static guint arg_probe_interval_ms = VMM_PROBE_INTERVAL_MS;
static GHashTable *arg_probe_targets; /* domain -> address */

static const GOptionEntry entries[] = {
    {"connect", 'c', 0, G_OPTION_ARG_STRING, &arg_connect,
     "Source libvirt URI (default: $LIBVIRT_DEFAULT_URI, else "
     "qemu:///system)",
     "URI"},
    {"to", 't', 0, G_OPTION_ARG_STRING, &arg_to,
     "Destination libvirt URI of every DOMAIN given", "URI"},
    {"placement", 'p', 0, G_OPTION_ARG_FILENAME, &arg_placement,
     "Read 'DOMAIN DEST_URI [SOURCE_URI]' lines from FILE", "FILE"},
    {"bandwidth", 'b', 0, G_OPTION_ARG_STRING, &arg_bandwidth,
     "Cap each VM's migration at MIB MiB/s", "MIB"},
    {"parallel", 'j', 0, G_OPTION_ARG_STRING, &arg_parallel,
     "Migrate at most N VMs at once (default: all)", "N"},
    {"timeout", 0, 0, G_OPTION_ARG_STRING, &arg_timeout,
     "Abort a VM's migration after S seconds; it is reported failed", "S"},
    {"probe", 0, 0, G_OPTION_ARG_NONE, &arg_probe,
     "Ping each VM while it migrates and report its stall", NULL},
    {"probe-interval", 0, 0, G_OPTION_ARG_STRING, &arg_probe_interval,
     "Send a probe every MS milliseconds (default: 10)", "MS"},
    {"probe-target", 0, 0, G_OPTION_ARG_STRING_ARRAY, &arg_probe_target,
     "Probe DOMAIN at ADDR (DOMAIN= may be left out for one domain); "
     "implies --probe",
     "[DOMAIN=]ADDR"},
    {"json", 0, 0, G_OPTION_ARG_NONE, &arg_json,
     "Print the final report as JSON on stdout", NULL},
    {"quiet", 'q', 0, G_OPTION_ARG_NONE, &arg_quiet, "Show no progress",
     NULL},
    {NULL},
};

static const char summary[] =
    "Migrate running libvirt domains live to other hosts or sites: one VM,\n"
    "or a whole virtual cluster at once, with progress and a report.";

static const char description[] =
    "Description:\n"
    "  vm-migrate checks every DOMAIN before anything moves: it must exist\n"
    "  and be running on its source; its destination must be reachable,\n"
    "  differ from its source and hold no domain of that name. Any problem\n"
    "  is reported in one line and nothing is migrated (exit 2).\n"
    "\n"
    "  Then each VM migrates in its own thread through libvirt\n"
    "  (virDomainMigrateToURI3), live and peer-to-peer: the source host's\n"
    "  libvirtd connects to DEST_URI itself, so DEST_URI must work from the\n"
    "  source host as written. A persistent domain is defined on the\n"
    "  destination and undefined on the source, so it lives in exactly one\n"
    "  place; a transient domain stays transient.\n"
    "\n"
    "  With a page-hash QEMU (x-page-hash on at both ends), pages the\n"
    "  destination site already holds cross as hashes only; the report\n"
    "  counts them. Reading those counters runs query-migrate through\n"
    "  libvirt's QEMU monitor passthrough, which marks a domain tainted\n"
    "  (custom-monitor).\n"
    "\n"
    "Placement file (--placement):\n"
    "  One domain per line: DOMAIN DEST_URI [SOURCE_URI]. Fields are\n"
    "  separated by blanks, a field starting with '#' starts a comment,\n"
    "  blank lines are ignored. A domain may appear once. SOURCE_URI\n"
    "  overrides --connect for that domain.\n"
    "\n"
    "    # virtual cluster \"sim\": two nodes to site B, one to site C\n"
    "    sim-0  qemu+tcp://10.77.2.1/system\n"
    "    sim-1  qemu+tcp://10.77.2.2/system\n"
    "    sim-2  qemu+tcp://10.77.3.1/system  qemu+tcp://10.77.1.2/system\n"
    "\n"
    "Progress (stderr):\n"
    "  On a terminal, one line per VM redrawn twice a second: phase (pass\n"
    "  over guest memory), percent of guest memory sent, MiB sent, MiB/s and\n"
    "  MiB left. Otherwise one plain line per VM in flight every 5 s and one\n"
    "  when a VM ends, none with --json. --quiet shows nothing.\n"
    "\n"
    "Report (stdout, when every VM ended):\n"
    "  A table, one row per VM: domain, from, to, status, time s (libvirt's\n"
    "  job time), downtime ms, MiB sent, page hashes sent, hashes resolved\n"
    "  on the destination site, misses, full pages sent, MiB saved, and,\n"
    "  when QEMU counts them, MiB of the zstd stream that carried the pages\n"
    "  sent in full with page hashes, and hot pages (written again after\n"
    "  their hash went, so sent in full; the source counts them, and its\n"
    "  last sample is shown). Then a\n"
    "  total row: time from the first start to the last end, the largest\n"
    "  downtime, sums. Then the error of each VM that did not migrate.\n"
    "  '-' is unknown, 'n/a' means the VM's QEMU did no page-hash migration,\n"
    "  '~' marks page-hash counters sampled on the source while migrating\n"
    "  (the final ones were not readable).\n"
    "  --json prints {\"vms\": [...], \"total\": {...}} instead: bytes and\n"
    "  milliseconds as integers, null where unknown, \"error\" for each VM\n"
    "  that did not migrate.\n"
    "\n"
    "Probe (--probe):\n"
    "  While each VM migrates, vm-migrate sends it an ICMP echo request\n"
    "  every --probe-interval ms (default 10) from the host it runs on, and\n"
    "  reports the stall: the longest gap between two answers, which is what\n"
    "  a client of the VM sees around the switchover (downtime plus the time\n"
    "  the network takes to find the VM at its new place). Guests need\n"
    "  nothing but to answer ping. The socket is a ping socket where\n"
    "  net.ipv4.ping_group_range allows it, else a raw one (root).\n"
    "  After the migration ends, probing goes on until a new probe is\n"
    "  answered (then 0.2 s more), for 5 s at most.\n"
    "  The VM's address is the first IPv4 (else IPv6) address libvirt knows\n"
    "  of it, from its DHCP leases, its guest agent, or the ARP table of its\n"
    "  source host (virsh domifaddr --source lease|agent|arp), else the\n"
    "  address of one of its MACs in the ARP table of the host vm-migrate\n"
    "  runs on; give it with --probe-target DOMAIN=ADDR (repeatable) where\n"
    "  none of those knows it.\n"
    "  The report adds a STALL ms column: the stall, 'lost' if the VM\n"
    "  answered before and not after the migration (its address does not\n"
    "  reach its new place, as between routed sites), 'silent' if it never\n"
    "  answered, '-' if it could not be probed; and one line per VM: its\n"
    "  address and where it came from, the stall and when it began (from\n"
    "  the start of the migration), probes sent and lost, least RTT before\n"
    "  and after the switchover, or why there is no stall. In JSON, each\n"
    "  VM's \"probe\" object (null without --probe): status (ok,\n"
    "  unreachable, silent, no-address, failed), address, address_source\n"
    "  (option, lease, agent, arp, local-arp),\n"
    "  error, interval_ms, sent, answered, lost, stall_ms, stall_at_ms,\n"
    "  silent_ms, rtt_before_us, rtt_after_us; total.stall_max_ms.\n"
    "\n"
    "Signals:\n"
    "  SIGINT or SIGTERM aborts every migration in flight\n"
    "  (virDomainAbortJob), starts no other, waits for them, prints the\n"
    "  report and exits 1; those VMs keep running at their source. A second\n"
    "  signal stops waiting.\n"
    "\n"
    "Exit status:\n"
    "  0  every VM migrated\n"
    "  1  some VM did not migrate (failed, timed out, interrupted)\n"
    "  2  usage error or bad input: nothing was migrated\n"
    "\n"
    "Examples:\n"
    "  vm-migrate -c qemu+tcp://10.77.1.1/system \\\n"
    "             -t qemu+tcp://10.77.2.1/system web1 web2\n"
    "  vm-migrate -j 4 -b 100 --timeout 600 -p cluster.txt --json >r.json\n"
    "  vm-migrate --probe --probe-target web1=10.77.1.101 \\\n"
    "             -t qemu+tcp://10.77.2.1/system web1\n";

typedef struct Run Run;

typedef struct {
    Run *run;
    const VmmPlanItem *item;
    VmmVmReport *vm;
    GThread *thread;

    /* Written by the migration thread, read after it ended. */
    gboolean ok;
    char *error;
    gint64 end_us;
    VmmOutcome outcome;

    /* Main thread only. */
    VmmProgress progress;
    VmmProbe *probe;    /* probing; NULL when not or no longer */
    VmmPageHash sample; /* last page-hash counters seen at the source */
    gboolean sample_off;
    char *abort_reason; /* set once an abort was asked for */
} Job;

struct Run {
    /*
     * A context of our own: libvirt's event loop (keepalive) runs the
     * default one in a thread of its own (vmm_virt_init).
     */
    GMainContext *ctx;
    GMainLoop *loop;
    VmmReport *report;
    Job *jobs;
    guint n_jobs;
    guint next; /* first job not started */
    guint running;
    guint probing; /* probes still going after their migration ended */
    guint parallel;
    guint signals;
    gboolean tty;     /* redraw progress lines on stderr */
    gboolean plain;   /* plain progress lines on stderr */
    guint drawn;      /* lines drawn by the last redraw */
    guint ticks;
    guint name_width;
};

/* ---- options ---- */

/* Parse @text as an integer in [@min, @max] for option @name. */
static gboolean
parse_uint(const char *name, const char *text, guint64 min, guint64 max,
           guint64 *out, GError **error)
{
    if (!g_ascii_string_to_unsigned(text, 10, min, max, out, NULL)) {
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                    "invalid %s '%s': expected a whole number from "
                    "%" G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT,
                    name, text, min, max);
        return FALSE;
    }
    return TRUE;
}

static gboolean
check_options(int argc, char **argv, GError **error)
{
    guint64 v;

    if (arg_to && arg_placement) {
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                    "--to and --placement exclude each other");
        return FALSE;
    }
    if (!arg_to && !arg_placement) {
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                    "missing --to DEST_URI or --placement FILE; see --help");
        return FALSE;
    }
    if (arg_to && argc < 2) {
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                    "no DOMAIN to migrate to '%s'", arg_to);
        return FALSE;
    }
    if (arg_placement && argc > 1) {
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                    "unexpected argument '%s': with --placement, domains "
                    "are in the file",
                    argv[1]);
        return FALSE;
    }
    if (arg_bandwidth) {
        if (!parse_uint("--bandwidth", arg_bandwidth, 1, MAX_BANDWIDTH_MIB,
                        &v, error)) {
            return FALSE;
        }
        arg_bandwidth_mib = v;
    }
    if (arg_parallel) {
        if (!parse_uint("--parallel", arg_parallel, 1,
                        VMM_PLACEMENT_MAX_DOMAINS, &v, error)) {
            return FALSE;
        }
        arg_parallel_n = (guint)v;
    }
    if (arg_timeout) {
        if (!parse_uint("--timeout", arg_timeout, 1, MAX_TIMEOUT_S, &v,
                        error)) {
            return FALSE;
        }
        arg_timeout_s = (guint)v;
    }
    if (arg_probe_interval) {
        if (!parse_uint("--probe-interval", arg_probe_interval, 1,
                        VMM_PROBE_INTERVAL_MAX_MS, &v, error)) {
            return FALSE;
        }
        arg_probe_interval_ms = (guint)v;
    }
    if (arg_probe_target) {
        arg_probe = TRUE;
    }
    return TRUE;
}

/* --probe-target values against the domains of @p: DOMAIN=ADDR, or ADDR
 * alone when one domain migrates. */
static gboolean
check_probe_targets(const VmmPlacement *p, GError **error)
{
    guint n = vmm_placement_size(p);

    arg_probe_targets = g_hash_table_new_full(g_str_hash, g_str_equal,
                                              g_free, g_free);
    for (guint i = 0; arg_probe_target && arg_probe_target[i]; i++) {
        const char *text = arg_probe_target[i];
        const char *eq = strrchr(text, '=');
        g_autofree char *domain =
            eq ? g_strndup(text, eq - text)
               : g_strdup(n == 1 ? vmm_placement_get(p, 0)->domain : "");
        const char *address = eq ? eq + 1 : text;
        gboolean known = FALSE;

        if (!*domain) {
            g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                        "--probe-target '%s': name the domain "
                        "(DOMAIN=ADDR) when several migrate",
                        text);
            return FALSE;
        }
        for (guint j = 0; j < n && !known; j++) {
            known = g_str_equal(vmm_placement_get(p, j)->domain, domain);
        }
        if (!known) {
            g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                        "--probe-target '%s': domain '%s' does not migrate",
                        text, domain);
            return FALSE;
        }
        if (!vmm_probe_address_valid(address)) {
            g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                        "--probe-target '%s': '%s' is not an IPv4 or IPv6 "
                        "address",
                        text, address);
            return FALSE;
        }
        if (g_hash_table_contains(arg_probe_targets, domain)) {
            g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                        "--probe-target: domain '%s' given twice", domain);
            return FALSE;
        }
        g_hash_table_insert(arg_probe_targets, g_steal_pointer(&domain),
                            g_strdup(address));
    }
    return TRUE;
}

static VmmPlacement *
build_placement(int argc, char **argv, GError **error)
{
    g_autoptr(VmmPlacement) p = NULL;

    if (arg_placement) {
        return vmm_placement_load(arg_placement, error);
    }
    p = vmm_placement_new();
    for (int i = 1; i < argc; i++) {
        if (!vmm_placement_add(p, argv[i], arg_to, NULL, 0, error)) {
            return NULL;
        }
    }
    return g_steal_pointer(&p);
}

/* ---- progress ---- */

static void
terminal_size(guint *rows, guint *cols)
{
    struct winsize ws = {0};

    *rows = 24;
    *cols = 80;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row &&
        ws.ws_col) {
        *rows = ws.ws_row;
        *cols = ws.ws_col;
    }
}

static char *
job_line(const Job *job, guint width)
{
    return vmm_progress_format(job->vm->domain, job->vm->status,
                               &job->progress, width);
}

/* Redraw every VM's line, or the running ones and a count if the
 * terminal is too short. Lines never wrap, so moving up stays exact. */
static void
draw_tty(Run *run)
{
    g_autoptr(GPtrArray) lines = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GString) out = g_string_new(NULL);
    guint rows, cols;
    gboolean all;

    terminal_size(&rows, &cols);
    all = run->n_jobs < rows;
    for (guint i = 0; i < run->n_jobs; i++) {
        const Job *job = &run->jobs[i];

        /* Short of room, the running ones, and room for the count. */
        if (all || (job->vm->status == VMM_STATUS_RUNNING &&
                    lines->len + 2 < rows)) {
            g_ptr_array_add(lines, job_line(job, run->name_width));
        }
    }
    if (!all) {
        VmmTotals t;

        vmm_report_totals(run->report, &t);
        g_ptr_array_add(lines,
                        g_strdup_printf("%u running, %u queued, %u migrated, "
                                        "%u failed",
                                        run->running, run->n_jobs - run->next,
                                        t.migrated, t.failed));
    }
    if (run->drawn) {
        g_string_append_printf(out, "\033[%uA", run->drawn);
    }
    g_string_append(out, "\r\033[J");
    for (guint i = 0; i < lines->len; i++) {
        const char *line = g_ptr_array_index(lines, i);
        g_autofree char *cut = NULL;

        if ((guint)g_utf8_strlen(line, -1) >= cols) {
            cut = g_utf8_substring(line, 0, cols - 1);
            line = cut;
        }
        g_string_append_printf(out, "%s\n", line);
    }
    fputs(out->str, stderr);
    fflush(stderr);
    run->drawn = lines->len;
}

static void
draw_plain(Run *run)
{
    for (guint i = 0; i < run->n_jobs; i++) {
        const Job *job = &run->jobs[i];

        if (job->vm->status == VMM_STATUS_RUNNING) {
            g_autofree char *line = job_line(job, 0);

            g_printerr("vm-migrate: %s\n", line);
        }
    }
}

/* ---- jobs ---- */

static void
job_abort(Job *job, const char *reason)
{
    if (!job->abort_reason) {
        job->abort_reason = g_strdup(reason);
    }
    /* Fails harmlessly before libvirt started the job or after it ended;
     * the tick asks again until the migration call returned. */
    virDomainAbortJob(job->item->dom);
}

static void
job_poll(Job *job, gint64 now)
{
    g_autoptr(GError) error = NULL;
    VmmJobStats stats;
    VmmPageHash ph;

    if (job->abort_reason) {
        job_abort(job, job->abort_reason);
    } else if (arg_timeout_s &&
               now - job->vm->start_us >= arg_timeout_s * G_USEC_PER_SEC) {
        g_autofree char *reason =
            g_strdup_printf("timed out after %u s", arg_timeout_s);

        job_abort(job, reason);
    }
    if (vmm_job_stats_get(job->item->dom, 0, &stats, &error) &&
        stats.type != VIR_DOMAIN_JOB_NONE) {
        vmm_progress_update(&job->progress, &stats, now);
    }
    g_clear_error(&error);

    /* The patched QEMU reports page-hash counters at the source only, and
     * the source QEMU exits when the migration succeeds: keep the last
     * sample. A driver without QEMU passthrough fails at once. */
    if (job->sample_off) {
        return;
    }
    if (vmm_page_hash_query(job->item->dom, &ph, &error)) {
        if (ph.state == VMM_PAGE_HASH_PRESENT ||
            job->sample.state != VMM_PAGE_HASH_PRESENT) {
            job->sample = ph;
            job->sample.sampled = TRUE;
        }
    } else if (job->sample.state == VMM_PAGE_HASH_UNKNOWN) {
        g_debug("%s", error->message);
        job->sample_off = TRUE;
    }
}

static void schedule(Run *run);

static gboolean
job_probed(gpointer data)
{
    Job *job = data;

    vmm_probe_join(g_steal_pointer(&job->probe), job->vm->start_us,
                   &job->vm->stall);
    job->run->probing--;
    schedule(job->run);
    return G_SOURCE_REMOVE;
}

static gboolean
job_done(gpointer data)
{
    Job *job = data;
    Run *run = job->run;
    VmmVmReport *vm = job->vm;

    g_thread_join(g_steal_pointer(&job->thread));
    run->running--;
    vm->end_us = job->end_us;
    vm->status = job->ok ? VMM_STATUS_MIGRATED : VMM_STATUS_FAILED;
    if (!job->ok) {
        vm->error = job->abort_reason ? g_strdup_printf("%s (%s)",
                                                        job->abort_reason,
                                                        job->error)
                                      : g_strdup(job->error);
    }
    if (job->outcome.have_stats) {
        vmm_job_stats_to_report(&job->outcome.stats, vm);
    }
    vm->page_hash = vmm_page_hash_merge(&job->outcome.dest_page_hash,
                                        &job->sample);
    if (job->probe) {
        run->probing++;
        vmm_probe_finish(job->probe, job->end_us, run->ctx, job_probed, job);
    }
    if (run->plain) {
        if (vm->error) {
            g_printerr("vm-migrate: %s: %s: %s\n", vm->domain,
                       vmm_status_name(vm->status), vm->error);
        } else {
            g_printerr("vm-migrate: %s: %s\n", vm->domain,
                       vmm_status_name(vm->status));
        }
    }
    schedule(run);
    if (run->tty) {
        draw_tty(run);
    }
    return G_SOURCE_REMOVE;
}

/* Attach @source with @func to the run's context; the context owns it. */
static GSource *
run_attach(Run *run, GSource *source, GSourceFunc func, gpointer data)
{
    g_source_set_callback(source, func, data, NULL);
    g_source_attach(source, run->ctx);
    g_source_unref(source);
    return source;
}

static gpointer
job_thread(gpointer data)
{
    Job *job = data;
    g_autoptr(GError) error = NULL;

    job->ok = vmm_migrate(job->item, arg_bandwidth_mib, &error);
    job->end_us = g_get_monotonic_time();
    if (!job->ok) {
        job->error = g_strdup(error->message);
    }
    vmm_outcome_collect(job->item, job->ok, &job->outcome);
    /* The main loop joins this thread and reads what it wrote. */
    run_attach(job->run, g_idle_source_new(), job_done, job);
    return NULL;
}

/* Probe the VM from now on, if asked and its address is known. */
static void
job_probe_start(Job *job)
{
    g_autoptr(GError) error = NULL;
    VmmStall *st = &job->vm->stall;

    if (st->state != VMM_STALL_FAILED || !st->address) {
        return;
    }
    g_clear_pointer(&st->error, g_free);
    job->probe = vmm_probe_start(st->address, arg_probe_interval_ms, &error);
    if (!job->probe) {
        st->error = g_strdup(error->message);
    }
}

static void
job_start(Run *run, Job *job)
{
    g_autoptr(GError) error = NULL;

    job->vm->status = VMM_STATUS_RUNNING;
    job->vm->start_us = g_get_monotonic_time();
    job_probe_start(job);
    job->thread = g_thread_try_new(job->vm->domain, job_thread, job,
                                   &error);
    if (!job->thread) {
        job->vm->status = VMM_STATUS_FAILED;
        job->vm->end_us = job->vm->start_us;
        job->vm->error =
            g_strdup_printf("cannot start a thread: %s", error->message);
        if (job->probe) {
            run->probing++;
            vmm_probe_finish(job->probe, job->vm->end_us, run->ctx,
                             job_probed, job);
        }
        return;
    }
    run->running++;
}

static void
schedule(Run *run)
{
    while (!run->signals && run->next < run->n_jobs &&
           (!run->parallel || run->running < run->parallel)) {
        job_start(run, &run->jobs[run->next++]);
    }
    if (!run->running && !run->probing &&
        (run->signals || run->next >= run->n_jobs)) {
        g_main_loop_quit(run->loop);
    }
}

static gboolean
on_tick(gpointer data)
{
    Run *run = data;
    gint64 now = g_get_monotonic_time();

    for (guint i = 0; i < run->next; i++) {
        Job *job = &run->jobs[i];

        if (job->thread) {
            job_poll(job, now);
        }
    }
    run->ticks++;
    if (run->tty) {
        draw_tty(run);
    } else if (run->plain && run->ticks % PIPE_EVERY_TICKS == 0) {
        draw_plain(run);
    }
    return G_SOURCE_CONTINUE;
}

static gboolean
on_signal(gpointer data)
{
    Run *run = data;

    if (++run->signals > 1) {
        /* Stop waiting: the report shows those VMs still running. */
        g_main_loop_quit(run->loop);
        return G_SOURCE_CONTINUE;
    }
    for (guint i = run->next; i < run->n_jobs; i++) {
        run->jobs[i].vm->status = VMM_STATUS_SKIPPED;
        run->jobs[i].vm->error = g_strdup("not started: interrupted");
    }
    for (guint i = 0; i < run->next; i++) {
        if (run->jobs[i].thread) {
            job_abort(&run->jobs[i], "interrupted");
        }
    }
    if (!arg_quiet && run->running) {
        if (run->tty) {
            run->drawn = 0; /* keep the message above the lines */
        }
        g_printerr("vm-migrate: interrupted: aborting %u migration%s\n",
                   run->running, run->running == 1 ? "" : "s");
    }
    schedule(run);
    return G_SOURCE_CONTINUE;
}

/* Run every migration; TRUE if the main loop ended with all threads
 * joined (FALSE: a second signal abandoned some). */
static gboolean
run_all(Run *run)
{
    GSource *tick, *sigint, *sigterm;

    tick = run_attach(run, g_timeout_source_new(TICK_MS), on_tick, run);
    sigint = run_attach(run, g_unix_signal_source_new(SIGINT), on_signal, run);
    sigterm =
        run_attach(run, g_unix_signal_source_new(SIGTERM), on_signal, run);
    schedule(run);
    if (run->tty) {
        draw_tty(run);
    }
    if (run->running || run->probing) {
        g_main_loop_run(run->loop);
    }
    g_source_destroy(tick);
    g_source_destroy(sigint);
    g_source_destroy(sigterm);
    if (run->tty) {
        draw_tty(run);
    }
    return run->running == 0 && run->probing == 0;
}

static void
print_report(const VmmReport *report)
{
    g_autofree char *text =
        arg_json ? vmm_report_to_json(report) : vmm_report_to_text(report);

    fputs(text, stdout);
    fflush(stdout);
}

/*
 * The VM's address, from --probe-target or libvirt. Until its probe ran,
 * a VM's stall is FAILED: what a VM that could not be probed reports.
 */
static void
stall_prepare(VmmStall *st, const VmmPlanItem *item)
{
    g_autoptr(GError) error = NULL;
    const char *address =
        g_hash_table_lookup(arg_probe_targets, item->entry->domain);
    const char *source = "option";

    st->interval_ms = arg_probe_interval_ms;
    if (address) {
        st->address = g_strdup(address);
    } else {
        st->address = vmm_domain_address(item->dom, &source, &error);
    }
    if (!st->address) {
        st->state = VMM_STALL_NO_ADDRESS;
        st->error = g_strdup(error->message);
        return;
    }
    st->address_source = g_strdup(source);
    st->state = VMM_STALL_FAILED;
    st->error = g_strdup("not probed: the migration did not start");
}

static int
migrate(const VmmPlan *plan)
{
    g_autoptr(VmmReport) report = vmm_report_new();
    g_autoptr(GMainContext) ctx = g_main_context_new();
    g_autoptr(GMainLoop) loop = g_main_loop_new(ctx, FALSE);
    guint n = vmm_plan_size(plan);
    g_autofree Job *jobs = g_new0(Job, n);
    gboolean stderr_tty = isatty(STDERR_FILENO);
    Run run = {
        .ctx = ctx,
        .loop = loop,
        .report = report,
        .jobs = jobs,
        .n_jobs = n,
        .parallel = arg_parallel_n,
        .tty = !arg_quiet && stderr_tty,
        .plain = !arg_quiet && !stderr_tty && !arg_json,
    };
    VmmTotals t;

    for (guint i = 0; i < n; i++) {
        const VmmPlanItem *item = vmm_plan_get(plan, i);

        jobs[i].run = &run;
        jobs[i].item = item;
        jobs[i].vm = vmm_report_add(report, item->entry->domain,
                                    item->source_uri, item->entry->dest_uri);
        vmm_progress_init(&jobs[i].progress);
        if (arg_probe) {
            stall_prepare(&jobs[i].vm->stall, item);
        }
        run.name_width =
            MAX(run.name_width,
                MIN(32, (guint)g_utf8_strlen(item->entry->domain, -1)));
    }
    if (!run_all(&run)) {
        for (guint i = 0; i < n; i++) {
            if (jobs[i].thread) {
                jobs[i].vm->error =
                    g_strdup("abandoned while its migration was aborting");
            }
            if (jobs[i].probe) {
                jobs[i].vm->stall.error = g_strdup("probing abandoned");
            }
        }
        print_report(report);
        /* Threads are still inside libvirt with our connections: leave
         * without tearing anything down. */
        _exit(EXIT_FAIL);
    }
    print_report(report);
    for (guint i = 0; i < n; i++) {
        g_free(jobs[i].error);
        g_free(jobs[i].abort_reason);
    }
    vmm_report_totals(report, &t);
    return t.migrated == t.vms && !run.signals ? EXIT_OK : EXIT_FAIL;
}

int
main(int argc, char **argv)
{
    g_autoptr(GOptionContext) ctx =
        g_option_context_new("--to DEST_URI DOMAIN... | --placement FILE");
    g_autoptr(GError) error = NULL;
    g_autoptr(VmmPlacement) placement = NULL;
    g_autoptr(VmmPlan) plan = NULL;
    const char *source;

    setlocale(LC_ALL, "");
    g_option_context_add_main_entries(ctx, entries, NULL);
    g_option_context_set_summary(ctx, summary);
    g_option_context_set_description(ctx, description);
    if (!g_option_context_parse(ctx, &argc, &argv, &error) ||
        !check_options(argc, argv, &error)) {
        g_printerr("vm-migrate: %s\n", error->message);
        return EXIT_USAGE;
    }
    source = arg_connect;
    if (!source) {
        source = g_getenv("LIBVIRT_DEFAULT_URI");
    }
    if (!source || !*source) {
        source = "qemu:///system";
    }

    placement = build_placement(argc, argv, &error);
    if (!placement || !check_probe_targets(placement, &error)) {
        g_printerr("vm-migrate: %s\n", error->message);
        return EXIT_USAGE;
    }
    vmm_virt_init();
    plan = vmm_plan_check(placement, source, &error);
    if (!plan) {
        g_printerr("vm-migrate: %s\n", error->message);
        return EXIT_USAGE;
    }
    return migrate(plan);
}
