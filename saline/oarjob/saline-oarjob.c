/*
 * saline-oarjob: the script of the OAR jobs salined submits in OAR mode.
 *
 * OAR runs it on the first node of the job (oarexec). It tells salined
 * that the job has started, with the nodes OAR gave ($OAR_NODEFILE), then
 * waits. When OAR's checkpoint signal reaches it (OAR is about to take a
 * best-effort job's nodes back), it tells salined, which snapshots the
 * job's VMs and frees the nodes. It ends on SIGTERM or when OAR kills the
 * job. The notices only wake salined up: salined checks everything with
 * oarstat (docs/protocols.md, "Saline OAR job notices").
 */
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <glib.h>

#define NOTICE_MAX 512
#define MAX_NODES_TEXT 256
#define TRIES 5

static char *arg_notify;
static int arg_signal = 12;
static gint64 arg_job;

static volatile sig_atomic_t got_checkpoint;
static volatile sig_atomic_t got_stop;

static void
on_checkpoint(int sig)
{
    got_checkpoint = 1;
}

static void
on_stop(int sig)
{
    got_stop = 1;
}

/* Sends @line to salined and waits for its "ok"; TRUE once answered. */
static gboolean
notice_send_once(const char *host, const char *port, const char *line)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    struct timeval tv = {.tv_sec = 5};
    char answer[16];
    gboolean ok = FALSE;
    ssize_t n;
    int fd = -1;

    if (getaddrinfo(host, port, &hints, &res) != 0) {
        return FALSE;
    }
    fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC,
                res->ai_protocol);
    if (fd >= 0 &&
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0 &&
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == 0 &&
        connect(fd, res->ai_addr, res->ai_addrlen) == 0 &&
        write(fd, line, strlen(line)) == (ssize_t)strlen(line)) {
        n = read(fd, answer, sizeof(answer) - 1);
        ok = n >= 2 && strncmp(answer, "ok", 2) == 0;
    }
    if (fd >= 0) {
        close(fd);
    }
    freeaddrinfo(res);
    return ok;
}

static void
notice_send(const char *event, const char *nodes)
{
    g_autofree char *host = NULL;
    const char *colon = strrchr(arg_notify, ':');
    const char *oar_id = g_getenv("OAR_JOB_ID");
    g_autofree char *line = NULL;

    host = g_strndup(arg_notify, (gsize)(colon - arg_notify));
    line = g_strdup_printf("saline-oarjob 1 %s job=%" G_GINT64_FORMAT
                           " oar=%s%s%s\n",
                           event, arg_job, oar_id ? oar_id : "-",
                           nodes ? " nodes=" : "", nodes ? nodes : "");
    if (strlen(line) > NOTICE_MAX) {
        line[NOTICE_MAX - 1] = '\n';
        line[NOTICE_MAX] = '\0';
    }
    for (int i = 0; i < TRIES; i++) {
        if (notice_send_once(host, colon + 1, line)) {
            fprintf(stderr, "saline-oarjob: told salined: %s", line);
            return;
        }
        if (got_stop) {
            return;
        }
        sleep(1);
    }
    fprintf(stderr, "saline-oarjob: cannot reach salined at %s for '%s'\n",
            arg_notify, event);
}

/* The unique node names of $OAR_NODEFILE, comma-separated (bounded). */
static char *
nodefile_nodes(void)
{
    const char *path = g_getenv("OAR_NODEFILE");
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;
    GString *out = g_string_new(NULL);
    g_autoptr(GPtrArray) seen = g_ptr_array_new();

    if (!path || !g_file_get_contents(path, &text, NULL, NULL)) {
        return g_string_free(out, FALSE);
    }
    lines = g_strsplit(text, "\n", -1);
    for (guint i = 0; lines[i]; i++) {
        char *name = g_strstrip(lines[i]);

        if (*name == '\0' ||
            g_ptr_array_find_with_equal_func(seen, name, g_str_equal, NULL) ||
            strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                         "0123456789.-_") != strlen(name)) {
            continue;
        }
        if (out->len + strlen(name) + 1 > MAX_NODES_TEXT) {
            break;
        }
        g_ptr_array_add(seen, name);
        g_string_append_printf(out, "%s%s", out->len ? "," : "", name);
    }
    return g_string_free(out, FALSE);
}

static GOptionEntry entries[] = {
    {"notify", 0, 0, G_OPTION_ARG_STRING, &arg_notify,
     "Where salined listens for notices ([oar] notify=)", "ADDR:PORT"},
    {"signal", 0, 0, G_OPTION_ARG_INT, &arg_signal,
     "OAR's checkpoint signal (default 12, SIGUSR2)", "N"},
    {"job", 0, 0, G_OPTION_ARG_INT64, &arg_job, "The Saline job's id", "ID"},
    {NULL},
};

int
main(int argc, char **argv)
{
    g_autoptr(GOptionContext) ctx = g_option_context_new("");
    g_autoptr(GError) error = NULL;
    g_autofree char *nodes = NULL;
    struct sigaction ck = {.sa_handler = on_checkpoint};
    struct sigaction stop = {.sa_handler = on_stop};
    sigset_t block, wait_mask;

    g_option_context_add_main_entries(ctx, entries, NULL);
    g_option_context_set_summary(
        ctx, "The script of Saline's OAR jobs: tells salined when the job "
             "starts and when OAR's checkpoint signal comes, then waits.\n"
             "salined puts it in the OAR jobs it submits; it is not meant "
             "to be run by hand.");
    if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
        fprintf(stderr, "saline-oarjob: %s\n", error->message);
        return 2;
    }
    if (!arg_notify || !strrchr(arg_notify, ':') || arg_notify[0] == ':' ||
        arg_job <= 0 || arg_signal < 1 || arg_signal > 64 ||
        arg_signal == SIGKILL || arg_signal == SIGSTOP) {
        fprintf(stderr, "saline-oarjob: needs --notify ADDR:PORT, --job ID "
                        "and a catchable --signal\n");
        return 2;
    }
    sigemptyset(&block);
    sigaddset(&block, arg_signal);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, &wait_mask);
    sigaction(arg_signal, &ck, NULL);
    sigaction(SIGTERM, &stop, NULL);
    sigaction(SIGINT, &stop, NULL);
    sigaction(SIGHUP, &stop, NULL);

    nodes = nodefile_nodes();
    notice_send("started", nodes);
    while (!got_stop) {
        sigsuspend(&wait_mask);
        if (got_checkpoint) {
            got_checkpoint = 0;
            /* OAR sends it again on each pass of its scheduler: each
             * is told, salined acts once. */
            notice_send("checkpoint", NULL);
        }
    }
    return 0;
}
