/*
 * ssi: the command of a virtual SSI cluster's users (ssi-guest/README.md,
 * "The `ssi` command"). It talks to the local ssid over its control
 * socket; `ssi nodes` reads the view from the kernel (/proc/ssi).
 *
 * Exit codes: 0 done; 1 refused or failed; 2 usage; 3 ssid unreachable.
 * `run` and `restart` exit with the process's status.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ssi-conn.h"
#include "vc-frame.h"

#define CONTROL "/run/ssid.sock"

static int sig_pipe[2] = {-1, -1};

static int usage_error(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
static int
usage_error(const char *fmt, ...)
{
    va_list ap;
    g_autofree char *m = NULL;

    va_start(ap, fmt);
    m = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_printerr("ssi: %s; see ssi --help\n", m);
    return 2;
}

static int
failed(const char *msg)
{
    g_printerr("ssi: %s\n", msg);
    return 1;
}

static const char help[] =
    "Usage: ssi COMMAND [ARG...]\n"
    "\n"
    "Use a virtual SSI cluster from any of its member VMs.\n"
    "\n"
    "  nodes [--json]              the membership view (from /proc/ssi)\n"
    "  ps [-a] [--json]            SSI processes cluster-wide (-a: every "
    "process)\n"
    "  top [-d SEC] [-n N]         ps, refreshed every SEC (default 2) N "
    "times\n"
    "  run [-n NODE] [-v] [--checkpoint-every SEC] CMD...\n"
    "                              run CMD on the member the placement "
    "policy\n"
    "                              picks (or NODE); its stdin, stdout, "
    "stderr,\n"
    "                              signals and exit status stay with this "
    "terminal;\n"
    "                              with --checkpoint-every, a member's "
    "failure\n"
    "                              restarts it from its latest checkpoint\n"
    "  kill [-SIG] GPID            send SIG (default TERM) wherever GPID "
    "runs\n"
    "  migrate GPID NODE           move a running process to NODE (CRIU)\n"
    "  checkpoint GPID -o DIR      save GPID into DIR on this member; it "
    "runs on\n"
    "  restart DIR [-n NODE] [-v]  continue a checkpoint; this terminal "
    "becomes\n"
    "                              its terminal\n"
    "  add ADDRESS                 invite a VM whose ssid waits (join=wait)\n"
    "  evict NODE                  move NODE's processes away, then remove "
    "it\n"
    "  policy [NAME]               show or select the placement policy\n"
    "  sched [ls] [--json]         the global scheduler: its settings, the\n"
    "                              policies loaded, this member's "
    "migrations\n"
    "  sched load|unload POLICY    load or unload a scheduling policy (cpu, "
    "mem,\n"
    "                              together) in the whole cluster\n"
    "  sched set KEY=VALUE...      change its settings in the whole "
    "cluster:\n"
    "                              threshold, residence, budget, period,\n"
    "                              mem_high, together=GPID,.../GPID,...\n"
    "  mem [ls] [--json]           cluster memory: each member's donated, "
    "lent,\n"
    "                              used and borrowed memory (MiB)\n"
    "  mem donate MIB              offer MIB MiB of this member's RAM to "
    "others\n"
    "                              (0: stop; what is lent moves away first)\n"
    "  mem borrow MIB              swap to MIB MiB of others' RAM, two "
    "copies\n"
    "                              of each page (0: give it back)\n"
    "\n"
    "A GPID is a cluster-wide PID: the process's own getpid() on any "
    "member.\n"
    "Exit status: 0 done, 1 refused or failed, 2 usage error, 3 ssid "
    "unreachable;\n"
    "run and restart exit with the process's status (128+N for signal N, "
    "255\n"
    "when it was lost with its member).\n";

static SsiConn *
control(int *rc)
{
    g_autoptr(GError) err = NULL;
    SsiConn *c = ssi_conn_unix(CONTROL, &err);

    if (!c) {
        g_printerr("ssi: ssid is not running on this member (%s)\n",
                   err->message);
        *rc = 3;
    }
    return c;
}

/* One request, one answer; prints the answer's text. */
static int
call(SsiMsgOut *m, int timeout_ms, SsiMsg **answer)
{
    int rc = 0;
    g_autoptr(SsiConn) c = control(&rc);
    g_autoptr(GError) err = NULL;
    SsiMsg *r;

    if (!c) {
        return rc;
    }
    r = ssi_conn_call(c, m, timeout_ms, &err);
    if (!r) {
        return failed(err->message);
    }
    if (answer) {
        *answer = r;
    } else {
        g_autofree char *t = ssi_msg_str(r, SSI_F_TEXT, 65536);

        if (t && *t) {
            g_print("%s%s", t, g_str_has_suffix(t, "\n") ? "" : "\n");
        }
        ssi_msg_free(r);
    }
    return 0;
}

static gboolean
parse_uint(const char *s, guint64 max, guint32 *v)
{
    guint64 x;

    if (!g_ascii_string_to_unsigned(s, 10, 1, max, &x, NULL)) {
        return FALSE;
    }
    *v = (guint32)x;
    return TRUE;
}

static int
read_file(const char *path, char **text)
{
    g_autoptr(GError) err = NULL;

    if (!g_file_get_contents(path, text, NULL, &err)) {
        if (g_error_matches(err, G_FILE_ERROR, G_FILE_ERROR_NOENT)) {
            return failed("ssi.ko is not loaded (no /proc/ssi)");
        }
        return failed(err->message);
    }
    return 0;
}

static int
cmd_nodes(int argc, char **argv)
{
    g_autofree char *cluster = NULL, *nodes = NULL;
    g_auto(GStrv) lines = NULL;
    g_autofree char *name = NULL, *state = NULL;
    guint64 epoch = 0, self = 0;
    gboolean json = argc == 2 && strcmp(argv[1], "--json") == 0;
    int rc;

    if (argc > 2 || (argc == 2 && !json)) {
        return usage_error("nodes takes only --json");
    }
    if ((rc = read_file("/proc/ssi/cluster", &cluster)) ||
        (rc = read_file("/proc/ssi/nodes", &nodes))) {
        return rc;
    }
    lines = g_strsplit(cluster, "\n", -1);
    for (char **l = lines; *l; l++) {
        if (g_str_has_prefix(*l, "name ")) {
            name = g_strdup(*l + 5);
        } else if (g_str_has_prefix(*l, "state ")) {
            state = g_strdup(*l + 6);
        } else if (g_str_has_prefix(*l, "node ")) {
            self = g_ascii_strtoull(*l + 5, NULL, 10);
        }
    }
    if (!state || strcmp(state, "member") != 0) {
        g_printerr("ssi: this VM is not a member of an SSI cluster (%s)\n",
                   state ? state : "no state");
        return 1;
    }
    g_strfreev(lines);
    lines = g_strsplit(nodes, "\n", -1);
    if (!lines[0] ||
        sscanf(lines[0], "epoch %" G_GUINT64_FORMAT, &epoch) != 1) {
        return failed("/proc/ssi/nodes holds no view");
    }
    if (json) {
        g_print("{\"cluster\": \"%s\", \"epoch\": %" G_GUINT64_FORMAT
                ", \"self\": %" G_GUINT64_FORMAT ", \"nodes\": [",
                name, epoch, self);
    } else {
        g_print("cluster %s, view %" G_GUINT64_FORMAT
                ", this is node %" G_GUINT64_FORMAT "\n",
                name, epoch, self);
        g_print("%-3s %-15s %-7s %6s %9s %5s\n", "ID", "ADDRESS", "STATE",
                "LOAD", "MEMFREE", "PROCS");
    }
    for (guint i = 1, n = 0; lines[i]; i++) {
        guint id, procs;
        char addr[16], st[16];
        guint load;
        guint64 mem;

        if (sscanf(lines[i], "%u %15s %15s %u %" G_GUINT64_FORMAT " %u", &id,
                   addr, st, &load, &mem, &procs) != 6) {
            continue;
        }
        if (json) {
            g_print("%s{\"id\": %u, \"address\": \"%s\", \"state\": \"%s\", "
                    "\"load\": %.2f, \"memfree_kb\": %" G_GUINT64_FORMAT
                    ", \"procs\": %u}",
                    n++ ? ", " : "", id, addr, st, load / 1000.0, mem, procs);
        } else {
            g_print("%-3u %-15s %-7s %6.2f %5" G_GUINT64_FORMAT " MiB %5u\n",
                    id, addr, st, load / 1000.0, mem / 1024, procs);
        }
    }
    if (json) {
        g_print("]}\n");
    }
    return 0;
}

static int
ps_once(gboolean all, gboolean json)
{
    g_autoptr(SsiMsgOut) m = ssi_out_new(SSI_PS);
    SsiMsg *r = NULL;
    int rc;

    ssi_out_u32(m, SSI_F_FLAGS, all ? SSI_FLAG_ALL : 0);
    if ((rc = call(m, 30000, &r))) {
        return rc;
    }
    if (json) {
        g_print("[");
    } else {
        g_print("%-9s %-4s %-5s %5s %8s  %s\n", "GPID", "NODE", "STATE", "%CPU",
                "RSS", "COMMAND");
    }
    for (guint i = 0; i < ssi_msg_count(r, SSI_F_ROW); i++) {
        const SsiFieldRef *f = ssi_msg_nth(r, SSI_F_ROW, i);
        g_autofree char *row = g_strndup((const char *)f->value, f->len);
        char gpid[32], st[4];
        guint node;
        double cpu;
        unsigned long long rss;
        int off = 0;

        if (sscanf(row, "%31s %u %3s %lf %llu %n", gpid, &node, st, &cpu, &rss,
                   &off) < 5 ||
            off == 0) {
            continue;
        }
        if (json) {
            g_autofree char *cmd = g_strescape(row + off, NULL);

            g_print("%s{\"gpid\": \"%s\", \"node\": %u, \"state\": \"%s\", "
                    "\"cpu\": %.1f, \"rss_kb\": %llu, \"command\": \"%s\"}",
                    i ? ", " : "", gpid, node, st, cpu, rss, cmd);
        } else {
            g_print("%-9s %-4u %-5s %5.1f %6lluK  %.60s\n", gpid, node, st, cpu,
                    rss, row + off);
        }
    }
    if (json) {
        g_print("]\n");
    }
    for (guint i = 0; i < ssi_msg_count(r, SSI_F_TEXT); i++) {
        const SsiFieldRef *f = ssi_msg_nth(r, SSI_F_TEXT, i);

        g_printerr("ssi: %.*s\n", (int)f->len, f->value);
    }
    ssi_msg_free(r);
    return 0;
}

static int
cmd_ps(int argc, char **argv)
{
    gboolean all = FALSE, json = FALSE;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-a") == 0) {
            all = TRUE;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = TRUE;
        } else {
            return usage_error("ps: unknown option '%s'", argv[i]);
        }
    }
    return ps_once(all, json);
}

static int
cmd_top(int argc, char **argv)
{
    guint32 delay = 2, n = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-d") == 0 && i + 1 < argc &&
            parse_uint(argv[i + 1], 3600, &delay)) {
            i++;
        } else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc &&
                   parse_uint(argv[i + 1], 1000000, &n)) {
            i++;
        } else {
            return usage_error("top: bad option '%s'", argv[i]);
        }
    }
    for (guint32 k = 0; n == 0 || k < n; k++) {
        int rc;

        if (isatty(1)) {
            g_print("\033[H\033[2J");
        }
        if ((rc = ps_once(FALSE, FALSE))) {
            return rc;
        }
        if (n == 0 || k + 1 < n) {
            sleep(delay);
        }
    }
    return 0;
}

static void
on_signal(int sig)
{
    guint8 s = (guint8)sig;

    if (write(sig_pipe[1], &s, 1) < 0) {
        /* nothing to do: the pipe is full */
    }
}

static gboolean
write_all(int fd, const guint8 *d, gsize len)
{
    return vc_write_all(fd, d, len, NULL);
}

/* Our stdin to the process, from its own thread: the main loop must
 * keep reading the process's output whatever stdin does. */
static gpointer
stdin_thread(gpointer data)
{
    SsiConn *c = data;
    guint8 buf[65536];

    for (;;) {
        ssize_t n = read(0, buf, sizeof(buf));

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            g_autoptr(SsiMsgOut) m = ssi_out_new(SSI_IN_EOF);

            ssi_conn_send(c, m, NULL);
            break;
        }
        g_autoptr(SsiMsgOut) m = ssi_out_new(SSI_IN);

        ssi_out_bytes(m, SSI_F_DATA, buf, (gsize)n);
        if (!ssi_conn_send(c, m, NULL)) {
            break;
        }
    }
    ssi_conn_free(c);
    return NULL;
}

/* Serve a started process: stdio and signals to it, until EXIT. Its
 * output may come before STARTED does. */
static int
session(SsiConn *c, gboolean verbose)
{
    int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
    g_autoptr(GError) err = NULL;
    gboolean started = FALSE;

    if (pipe(sig_pipe) < 0) {
        return failed("pipe failed");
    }
    for (guint i = 0; i < G_N_ELEMENTS(sigs); i++) {
        struct sigaction sa = {.sa_handler = on_signal};

        sigaction(sigs[i], &sa, NULL);
    }
    signal(SIGPIPE, SIG_IGN);
    for (;;) {
        struct pollfd p[2] = {
            {.fd = ssi_conn_fd(c), .events = POLLIN},
            {.fd = sig_pipe[0], .events = POLLIN},
        };
        g_autoptr(SsiMsg) m = NULL;
        gsize len = 0;
        const guint8 *d;
        guint32 status = 255, gpid = 0, node = 0;

        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            return failed("poll failed");
        }
        if (p[1].revents) {
            guint8 s;

            if (read(sig_pipe[0], &s, 1) == 1 && started) {
                g_autoptr(SsiMsgOut) f = ssi_out_new(SSI_SIGNAL);

                ssi_out_u32(f, SSI_F_SIGNAL, s);
                ssi_conn_send(c, f, NULL);
            }
        }
        if (!p[0].revents) {
            continue;
        }
        m = ssi_conn_recv(c, 0, &err);
        if (!m) {
            return failed(err ? err->message : "ssid closed the connection");
        }
        switch (m->hdr.type) {
        case SSI_FAIL: {
            g_autofree char *t = ssi_msg_str(m, SSI_F_TEXT, 4096);

            return failed(t ? t : "refused");
        }
        case SSI_STARTED:
            ssi_msg_u32(m, SSI_F_GPID, &gpid);
            ssi_msg_u32(m, SSI_F_NODE, &node);
            if (verbose) {
                g_printerr("ssi: GPID %u on node %u\n", gpid, node);
            }
            if (!started) {
                started = TRUE;
                g_thread_unref(
                    g_thread_new("stdin", stdin_thread, ssi_conn_ref(c)));
            }
            break;
        case SSI_OUT:
        case SSI_ERRDATA:
            d = ssi_msg_bytes(m, SSI_F_DATA, &len);
            if (d) {
                write_all(m->hdr.type == SSI_OUT ? 1 : 2, d, len);
            }
            break;
        case SSI_EXIT: {
            g_autofree char *t = ssi_msg_str(m, SSI_F_TEXT, 4096);

            if (t) {
                g_printerr("ssi: %s\n", t);
            }
            ssi_msg_u32(m, SSI_F_STATUS, &status);
            return status > 255 ? 255 : (int)status;
        }
        default:
            break;
        }
    }
}

static int
cmd_run(int argc, char **argv, gboolean restart)
{
    g_autoptr(SsiMsgOut) m = ssi_out_new(restart ? SSI_RESTART : SSI_RUN);
    g_autoptr(SsiConn) c = NULL;
    g_autoptr(GError) err = NULL;
    gboolean verbose = FALSE;
    guint32 node = 0, period = 0;
    int i, rc = 0;

    for (i = 1; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        } else if (strcmp(argv[i], "-v") == 0) {
            verbose = TRUE;
        } else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
            if (!parse_uint(argv[++i], 63, &node)) {
                return usage_error("'%s' is not a node id (1-63)", argv[i]);
            }
        } else if (!restart && strcmp(argv[i], "--checkpoint-every") == 0 &&
                   i + 1 < argc) {
            if (!parse_uint(argv[++i], 86400, &period)) {
                return usage_error("'%s' is not a number of seconds (1-86400)",
                                   argv[i]);
            }
        } else {
            return usage_error("%s: unknown option '%s'", argv[0], argv[i]);
        }
    }
    if (restart) {
        g_autofree char *dir = NULL;

        if (argc - i != 1) {
            return usage_error("restart takes one checkpoint directory");
        }
        dir = g_canonicalize_filename(argv[i], NULL);
        ssi_out_str(m, SSI_F_PATH, dir);
    } else {
        if (i >= argc) {
            return usage_error("run needs a command");
        }
        for (; i < argc; i++) {
            ssi_out_str(m, SSI_F_ARG, argv[i]);
        }
    }
    if (node) {
        ssi_out_u32(m, SSI_F_NODE, node);
    }
    if (period) {
        ssi_out_u32(m, SSI_F_PERIOD, period);
    }
    c = control(&rc);
    if (!c) {
        return rc;
    }
    if (!ssi_conn_send(c, m, &err)) {
        return failed(err->message);
    }
    return session(c, verbose);
}

static int
parse_signal(const char *s, int *sig)
{
    static const struct {
        const char *name;
        int sig;
    } names[] = {{"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT},
                 {"KILL", SIGKILL}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2},
                 {"TERM", SIGTERM}, {"STOP", SIGSTOP}, {"CONT", SIGCONT},
                 {"ALRM", SIGALRM}};
    guint32 n;

    if (g_str_has_prefix(s, "SIG")) {
        s += 3;
    }
    if (parse_uint(s, 64, &n)) {
        *sig = (int)n;
        return TRUE;
    }
    for (guint i = 0; i < G_N_ELEMENTS(names); i++) {
        if (g_ascii_strcasecmp(s, names[i].name) == 0) {
            *sig = names[i].sig;
            return TRUE;
        }
    }
    return FALSE;
}

static int
cmd_gpid(int argc, char **argv)
{
    const char *cmd = argv[0];
    g_autoptr(SsiMsgOut) m = NULL;
    guint32 gpid = 0, node = 0;
    int sig = SIGTERM;

    if (strcmp(cmd, "kill") == 0) {
        int i = 1;

        if (argc == 3 && argv[1][0] == '-') {
            if (!parse_signal(argv[1] + 1, &sig)) {
                return usage_error("'%s' is not a signal", argv[1]);
            }
            i = 2;
        }
        if (argc != i + 1) {
            return usage_error("usage: ssi kill [-SIG] GPID");
        }
        if (!parse_uint(argv[i], 4194303, &gpid)) {
            return usage_error("'%s' is not a GPID", argv[i]);
        }
        m = ssi_out_new(SSI_KILL);
        ssi_out_u32(m, SSI_F_GPID, gpid);
        ssi_out_u32(m, SSI_F_SIGNAL, (guint32)sig);
        return call(m, 30000, NULL);
    }
    if (strcmp(cmd, "migrate") == 0) {
        if (argc != 3) {
            return usage_error("usage: ssi migrate GPID NODE");
        }
        if (!parse_uint(argv[1], 4194303, &gpid)) {
            return usage_error("'%s' is not a GPID", argv[1]);
        }
        if (!parse_uint(argv[2], 63, &node)) {
            return usage_error("'%s' is not a node id (1-63)", argv[2]);
        }
        m = ssi_out_new(SSI_MIGRATE);
        ssi_out_u32(m, SSI_F_GPID, gpid);
        ssi_out_u32(m, SSI_F_NODE, node);
        return call(m, 600000, NULL);
    }
    /* checkpoint GPID -o DIR */
    if (argc != 4 || strcmp(argv[2], "-o") != 0) {
        return usage_error("usage: ssi checkpoint GPID -o DIR");
    }
    if (!parse_uint(argv[1], 4194303, &gpid)) {
        return usage_error("'%s' is not a GPID", argv[1]);
    }
    {
        g_autofree char *dir = g_canonicalize_filename(argv[3], NULL);

        m = ssi_out_new(SSI_CHECKPOINT);
        ssi_out_u32(m, SSI_F_GPID, gpid);
        ssi_out_str(m, SSI_F_PATH, dir);
        return call(m, 600000, NULL);
    }
}

/* ssi sched [ls] [--json] | load|unload POLICY | set KEY=VALUE... */
static int
cmd_sched(int argc, char **argv)
{
    g_autoptr(SsiMsgOut) m = ssi_out_new(SSI_SCHED);
    const char *verb = argc > 1 ? argv[1] : "ls";
    gboolean json = FALSE;
    int first = 2;

    if (strcmp(verb, "--json") == 0) {
        verb = "ls";
        json = TRUE;
        first = 1 + (argc > 1);
    } else if (strcmp(verb, "ls") == 0 && argc == 3 &&
               strcmp(argv[2], "--json") == 0) {
        json = TRUE;
        first = 3;
    }
    if (strcmp(verb, "ls") == 0) {
        if (argc > first) {
            return usage_error("usage: ssi sched [ls] [--json]");
        }
    } else if (strcmp(verb, "load") == 0 || strcmp(verb, "unload") == 0) {
        if (argc != 3) {
            return usage_error("usage: ssi sched %s POLICY", verb);
        }
    } else if (strcmp(verb, "set") == 0) {
        if (argc < 3 || argc > 66) {
            return usage_error("usage: ssi sched set KEY=VALUE...");
        }
        for (int i = 2; i < argc; i++) {
            if (!strchr(argv[i], '=')) {
                return usage_error("'%s' is not KEY=VALUE", argv[i]);
            }
        }
    } else {
        return usage_error("unknown sched command '%s'", verb);
    }
    ssi_out_str(m, SSI_F_NAME, verb);
    for (int i = first; i < argc; i++) {
        ssi_out_str(m, SSI_F_ARG, argv[i]);
    }
    if (json) {
        ssi_out_u32(m, SSI_F_FLAGS, SSI_FLAG_JSON);
    }
    return call(m, 10000, NULL);
}

/* ssi mem [ls] [--json] | donate MIB | borrow MIB */
static int
cmd_mem(int argc, char **argv)
{
    g_autoptr(SsiMsgOut) m = ssi_out_new(SSI_MEM);
    const char *verb = argc > 1 ? argv[1] : "ls";
    gboolean json = FALSE;
    guint32 mib;

    if (strcmp(verb, "--json") == 0 && argc == 2) {
        verb = "ls";
        json = TRUE;
    } else if (strcmp(verb, "ls") == 0) {
        if (argc > 3 || (argc == 3 && strcmp(argv[2], "--json") != 0)) {
            return usage_error("usage: ssi mem [ls] [--json]");
        }
        json = argc == 3;
    } else if (strcmp(verb, "donate") == 0 || strcmp(verb, "borrow") == 0) {
        if (argc != 3) {
            return usage_error("usage: ssi mem %s MIB", verb);
        }
        if (strcmp(argv[2], "0") != 0 && !parse_uint(argv[2], 1u << 20, &mib)) {
            return usage_error("'%s' is not a number of MiB (0-1048576)",
                               argv[2]);
        }
        ssi_out_str(m, SSI_F_ARG, argv[2]);
    } else {
        return usage_error("unknown mem command '%s'", verb);
    }
    ssi_out_str(m, SSI_F_NAME, verb);
    if (json) {
        ssi_out_u32(m, SSI_F_FLAGS, SSI_FLAG_JSON);
    }
    /* borrow and donate 0 wait for the array, or for legs to move. */
    return call(m, 1200000, NULL);
}

int
main(int argc, char **argv)
{
    const char *cmd;
    g_autoptr(SsiMsgOut) m = NULL;
    guint32 node;

    if (argc < 2) {
        return usage_error("a command is needed");
    }
    cmd = argv[1];
    argc--;
    argv++;
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 ||
        strcmp(cmd, "help") == 0) {
        g_print("%s", help);
        return 0;
    }
    if (strcmp(cmd, "nodes") == 0) {
        return cmd_nodes(argc, argv);
    }
    if (strcmp(cmd, "ps") == 0) {
        return cmd_ps(argc, argv);
    }
    if (strcmp(cmd, "top") == 0) {
        return cmd_top(argc, argv);
    }
    if (strcmp(cmd, "run") == 0 || strcmp(cmd, "restart") == 0) {
        return cmd_run(argc, argv, strcmp(cmd, "restart") == 0);
    }
    if (strcmp(cmd, "kill") == 0 || strcmp(cmd, "migrate") == 0 ||
        strcmp(cmd, "checkpoint") == 0) {
        return cmd_gpid(argc, argv);
    }
    if (strcmp(cmd, "add") == 0) {
        if (argc != 2) {
            return usage_error("usage: ssi add ADDRESS");
        }
        m = ssi_out_new(SSI_ADD);
        ssi_out_str(m, SSI_F_ADDR, argv[1]);
        return call(m, 60000, NULL);
    }
    if (strcmp(cmd, "evict") == 0) {
        if (argc != 2 || !parse_uint(argv[1], 63, &node)) {
            return usage_error("usage: ssi evict NODE (a node id, 1-63)");
        }
        m = ssi_out_new(SSI_EVICT);
        ssi_out_u32(m, SSI_F_NODE, node);
        return call(m, 900000, NULL);
    }
    if (strcmp(cmd, "policy") == 0) {
        if (argc > 2) {
            return usage_error("usage: ssi policy [NAME]");
        }
        m = ssi_out_new(SSI_POLICY);
        if (argc == 2) {
            ssi_out_str(m, SSI_F_NAME, argv[1]);
        }
        return call(m, 10000, NULL);
    }
    if (strcmp(cmd, "mem") == 0) {
        return cmd_mem(argc, argv);
    }
    if (strcmp(cmd, "sched") == 0) {
        return cmd_sched(argc, argv);
    }
    return usage_error("unknown command '%s'", cmd);
}
