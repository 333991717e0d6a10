/*
 * salined: the Saline daemon. Runs jobs in VMs on the grid's nodes
 * (libvirt), keeps their state in SQLite and serves the REST API on a
 * unix socket. See saline/README.md.
 */
#include <glib-unix.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdio.h>

#include "sald-api.h"
#include "sald-core-private.h"
#include "vc-log.h"
#include "vc-notify.h"

#define DEFAULT_CONFIG "/etc/saline/salined.conf"
#define STATUS_INTERVAL_S 10

static char *arg_config;
static char *arg_socket;
static char *arg_state_dir;
static gboolean arg_check;
static gboolean arg_debug;

static const GOptionEntry entries[] = {
    {"config", 'f', 0, G_OPTION_ARG_FILENAME, &arg_config,
     "Configuration file (default " DEFAULT_CONFIG ", if it exists)", "FILE"},
    {"socket", 's', 0, G_OPTION_ARG_FILENAME, &arg_socket,
     "API socket, instead of the configuration's", "PATH"},
    {"state-dir", 'd', 0, G_OPTION_ARG_FILENAME, &arg_state_dir,
     "State directory, instead of the configuration's", "DIR"},
    {"check", 0, 0, G_OPTION_ARG_NONE, &arg_check,
     "Check the configuration and exit", NULL},
    {"debug", 0, 0, G_OPTION_ARG_NONE, &arg_debug, "Log debug messages", NULL},
    {NULL},
};

static const char description[] =
    "salined runs Saline jobs: each job is a set of VMs started through\n"
    "libvirt on the nodes the configuration lists, from an image's kernel,\n"
    "initramfs and a copy-on-write overlay of its disk. The job's command\n"
    "runs in every VM; its output and exit status come back through the\n"
    "VM's output drive. State is kept in STATE_DIR/saline.db (SQLite), so\n"
    "a restarted salined re-adopts the VMs that still run.\n"
    "\n"
    "It serves the REST API on a unix socket; use the `saline` command.\n"
    "SIGINT or SIGTERM stop salined and leave the jobs' VMs running.\n"
    "\n"
    "Configuration: salined.conf(5).\n"
    "Exit status: 0 stopped by a signal (or --check passed), 1 error,\n"
    "2 usage error.\n";

static gboolean
on_signal(gpointer data)
{
    g_message("stopping on signal; the jobs' VMs keep running");
    vc_notify_stopping("stopping; the jobs' VMs keep running");
    g_main_loop_quit(data);
    return G_SOURCE_CONTINUE;
}

/* The service manager's status line (systemctl status). */
static gboolean
on_status(gpointer data)
{
    SaldCore *core = data;
    g_autoptr(GPtrArray) jobs = sald_core_list_jobs(core, 0, FALSE, NULL, NULL);
    g_autoptr(GPtrArray) nodes = sald_core_list_nodes(core);
    guint up = 0;

    for (guint i = 0; i < nodes->len; i++) {
        up += ((SaldNodeInfo *)nodes->pdata[i])->up ? 1 : 0;
    }
    vc_notify_status("%u jobs not finished, %u of %u nodes up",
                     jobs ? jobs->len : 0, up, nodes->len);
    return G_SOURCE_CONTINUE;
}

/* libvirt reports through our own messages. */
static void
on_virt_error(void *data, virErrorPtr err)
{
}

int
main(int argc, char **argv)
{
    g_autoptr(GOptionContext) ctx = g_option_context_new("");
    g_autoptr(GError) error = NULL;
    g_autoptr(SaldConfig) config = NULL;
    g_autoptr(SaldCore) core = NULL;
    g_autoptr(GMainLoop) loop = NULL;
    SaldApi *api;
    const char *path;

    g_option_context_add_main_entries(ctx, entries, NULL);
    g_option_context_set_summary(ctx, "The Saline daemon: VM jobs on grid nodes.");
    g_option_context_set_description(ctx, description);
    if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
        fprintf(stderr, "salined: %s\n", error->message);
        return 2;
    }
    if (argc > 1) {
        fprintf(stderr, "salined: unexpected argument '%s'\n", argv[1]);
        return 2;
    }
    /* As the other daemons: records to journald under systemd. */
    vc_log_init("salined", arg_debug);
    path = arg_config;
    if (!path && g_file_test(DEFAULT_CONFIG, G_FILE_TEST_EXISTS)) {
        path = DEFAULT_CONFIG;
    }
    config = sald_config_load(path, &error);
    if (!config) {
        fprintf(stderr, "salined: %s\n", error->message);
        return 1;
    }
    if (arg_socket) {
        g_free(config->socket_path);
        config->socket_path = g_strdup(arg_socket);
    }
    if (arg_state_dir) {
        g_free(config->state_dir);
        config->state_dir = g_strdup(arg_state_dir);
    }
    if (arg_check) {
        printf("%u sites, %u nodes, %u images\n", config->sites->len,
               config->nodes->len, config->images->len);
        return 0;
    }
    if (virInitialize() < 0 || virEventRegisterDefaultImpl() < 0) {
        fprintf(stderr, "salined: cannot initialise libvirt: %s\n",
                virGetLastErrorMessage());
        return 1;
    }
    virSetErrorFunc(NULL, on_virt_error);
    core = sald_core_new(g_steal_pointer(&config), &error);
    if (!core) {
        fprintf(stderr, "salined: %s\n", error->message);
        return 1;
    }
    /* libvirt's GLib event loop is the default main context. */
    loop = g_main_loop_new(NULL, FALSE);
    api = sald_api_new(core, sald_core_socket_path(core), &error);
    if (!api) {
        fprintf(stderr, "salined: %s\n", error->message);
        return 1;
    }
    g_unix_signal_add(SIGINT, on_signal, loop);
    g_unix_signal_add(SIGTERM, on_signal, loop);
    sald_core_start(core);
    g_message("salined ready on '%s'", sald_core_socket_path(core));
    /* The API socket listens and the core runs: `saline` is served. */
    vc_notify_ready("serving the API on '%s'", sald_core_socket_path(core));
    if (vc_notify_enabled()) {
        g_timeout_add_seconds(STATUS_INTERVAL_S, on_status, core);
    }
    g_main_loop_run(loop);
    sald_api_free(api);
    return 0;
}
