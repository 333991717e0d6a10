/*
 * ssid: the SSI daemon of a cluster member (ssi-guest/README.md).
 */
#include "ssid.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "vc-log.h"

Ssid S;

static char *arg_config = (char *)"/etc/ssi/ssid.conf";
static gboolean arg_debug;
static gboolean arg_check;

static char *
eth0_address(void)
{
    struct ifaddrs *ifa = NULL;
    char buf[16];
    char *r = NULL;

    if (getifaddrs(&ifa) < 0) {
        return NULL;
    }
    for (struct ifaddrs *i = ifa; i && !r; i = i->ifa_next) {
        if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET &&
            strcmp(i->ifa_name, "lo") != 0) {
            inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr,
                      buf, sizeof(buf));
            r = g_strdup(buf);
        }
    }
    freeifaddrs(ifa);
    return r;
}

static gboolean
valid_ip(const char *s)
{
    struct in_addr a;

    return inet_pton(AF_INET, s, &a) == 1;
}

/* ssid.conf: key=value lines, '#' comments; unknown keys are errors. */
static gboolean
load_config(const char *path, GError **error)
{
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;
    gboolean have_key = FALSE;
    char *join = NULL;
    int n = 0;

    if (!g_file_get_contents(path, &text, NULL, error)) {
        return FALSE;
    }
    lines = g_strsplit(text, "\n", -1);
    for (char **l = lines; *l; l++) {
        char *line = g_strstrip(*l), *eq, *v;

        n++;
        if (!*line || line[0] == '#') {
            continue;
        }
        eq = strchr(line, '=');
        if (!eq) {
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                        "%s:%d: not key=value", path, n);
            return FALSE;
        }
        *eq = 0;
        v = eq + 1;
        if (strcmp(line, "cluster") == 0) {
            if (!g_regex_match_simple("^[a-z0-9-]{1,32}$", v, 0, 0)) {
                g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                            "%s:%d: cluster name '%s' is not [a-z0-9-]{1,32}",
                            path, n, v);
                return FALSE;
            }
            g_free(S.cluster);
            S.cluster = g_strdup(v);
        } else if (strcmp(line, "key") == 0) {
            if (!ssi_key_parse(v, S.key, error)) {
                g_prefix_error(error, "%s:%d: ", path, n);
                return FALSE;
            }
            have_key = TRUE;
        } else if (strcmp(line, "address") == 0) {
            if (!valid_ip(v)) {
                g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                            "%s:%d: '%s' is not an IPv4 address", path, n, v);
                return FALSE;
            }
            g_free(S.address);
            S.address = g_strdup(v);
        } else if (strcmp(line, "join") == 0) {
            g_free(join);
            join = g_strdup(v);
        } else if (strcmp(line, "sched") == 0) {
            g_free(S.sched);
            S.sched = g_strdup(v);
        } else if (strcmp(line, "mem_donate") == 0 ||
                   strcmp(line, "mem_borrow") == 0) {
            if (!mem_conf(line, v, error)) {
                g_prefix_error(error, "%s:%d: ", path, n);
                return FALSE;
            }
        } else if (strcmp(line, "policy") == 0) {
            g_free(S.policy);
            S.policy = g_strdup(v);
        } else {
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                        "%s:%d: unknown key '%s'", path, n, line);
            return FALSE;
        }
    }
    if (!S.cluster || !have_key || !join) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                    "%s: cluster, key and join are required", path);
        g_free(join);
        return FALSE;
    }
    if (strcmp(join, "found") == 0) {
        S.join = SSID_JOIN_FOUND;
    } else if (strcmp(join, "wait") == 0) {
        S.join = SSID_JOIN_WAIT;
    } else {
        S.join = SSID_JOIN_SEEDS;
        S.seeds = g_strsplit(join, ",", 64);
        for (char **s = S.seeds; *s; s++) {
            if (!valid_ip(*s)) {
                g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                            "%s: join: '%s' is not found, wait or an IPv4 "
                            "address",
                            path, *s);
                g_free(join);
                return FALSE;
            }
        }
    }
    g_free(join);
    if (!S.address) {
        S.address = eth0_address();
        if (!S.address) {
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                        "%s: no address set and none found", path);
            return FALSE;
        }
    }
    return TRUE;
}

int
main(int argc, char **argv)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GOptionContext) ctx = NULL;
    GOptionEntry entries[] = {
        {"config", 'c', 0, G_OPTION_ARG_FILENAME, &arg_config,
         "configuration file (default /etc/ssi/ssid.conf)", "FILE"},
        {"check", 0, 0, G_OPTION_ARG_NONE, &arg_check,
         "check the configuration and exit", NULL},
        {"debug", 'd', 0, G_OPTION_ARG_NONE, &arg_debug, "debug messages",
         NULL},
        {NULL},
    };

    ctx = g_option_context_new("- SSI cluster member daemon");
    g_option_context_set_summary(
        ctx, "Joins this VM to a virtual SSI cluster (membership, global "
             "PIDs, remote\nexecution, process migration and "
             "checkpoint/restart with CRIU).\nThe `ssi` command talks to it "
             "over " SSID_CONTROL ". See ssi-guest/README.md.");
    g_option_context_add_main_entries(ctx, entries, NULL);
    if (!g_option_context_parse(ctx, &argc, &argv, &err)) {
        g_printerr("ssid: %s\n", err->message);
        return 2;
    }
    vc_log_init("ssid", arg_debug);
    g_mutex_init(&S.lock);
    if (!load_config(arg_config, &err)) {
        g_printerr("ssid: %s\n", err->message);
        return 2;
    }
    if (!sched_init(S.sched, &err)) {
        g_printerr("ssid: %s: sched: %s\n", arg_config, err->message);
        return 2;
    }
    if (arg_check) {
        g_print("ssid: %s: cluster '%s', address %s\n", arg_config, S.cluster,
                S.address);
        return 0;
    }
    S.cluster_id = ssi_cluster_id(S.cluster);
    S.ident.key = S.key;
    S.ident.cluster = S.cluster_id;
    do {
        S.ident.incarnation = ((guint64)g_random_int() << 32) | g_random_int();
    } while (S.ident.incarnation == 0);
    /* Restored process trees are handed to us when CRIU exits. */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
        g_printerr("ssid: cannot become a child subreaper: %s\n",
                   g_strerror(errno));
        return 1;
    }
    /* Heartbeats must go out under CPU-bound load, and while the member
     * pages to cluster memory: ssid's pages are locked as they are
     * touched, so it never waits for its own pages to come back. */
    setpriority(PRIO_PROCESS, 0, -15);
    if (mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) < 0) {
        g_warning("cannot lock ssid's memory: %s", g_strerror(errno));
    }
    g_mkdir_with_parents(SSID_STATE_DIR, 0700);
    proc_init();
    if (S.policy && g_file_test("/proc/ssi/policy", G_FILE_TEST_EXISTS)) {
        if (!g_file_set_contents("/proc/ssi/policy", S.policy, -1, &err)) {
            g_warning("cannot select policy '%s': %s", S.policy, err->message);
            g_clear_error(&err);
        }
    }
    if (!member_start(&err) || !peer_start(&err)) {
        g_printerr("ssid: %s\n", err->message);
        return 1;
    }
    spread_start();
    sched_start();
    mem_start();
    g_message("cluster '%s' (%016" G_GINT64_MODIFIER "x), address %s, %s",
              S.cluster, S.cluster_id, S.address,
              S.join == SSID_JOIN_FOUND  ? "founding it"
              : S.join == SSID_JOIN_WAIT ? "waiting for an invitation"
                                         : "joining");
    for (;;) {
        pause();
    }
    return 0;
}
