/*
 * saline: submit VM jobs to salined and follow them, as oarsub, oarstat
 * and oardel do for OAR jobs. Talks HTTP/1.1 + JSON to salined on its
 * unix socket (saline/README.md, "REST API").
 *
 * Everything a user typed is checked here first: a malformed request is
 * a usage error and nothing is sent.
 */
#include <gio/gunixsocketaddress.h>
#include <libsoup/soup.h>
#include <locale.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sal-json.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

#define DEFAULT_SOCKET "/run/saline/saline.sock"
#define TIMEOUT_S 300 /* a log read from running VMs may take a while */
/* A submission without an answer is sent again once salined listens,
 * waiting this long for a restart. */
#define RETRY_S 10
#define RETRY_PAUSE_MS 200

static char *arg_socket;
static gboolean arg_json; /* of the commands that have --json */

static const GOptionEntry global_entries[] = {
    {"socket", 0, 0, G_OPTION_ARG_FILENAME, &arg_socket,
     "salined's socket (default: $SALINE_SOCKET, else " DEFAULT_SOCKET ")",
     "PATH"},
    {NULL},
};

static const GOptionEntry json_entries[] = {
    {"json", 0, 0, G_OPTION_ARG_NONE, &arg_json,
     "Print salined's JSON answer instead", NULL},
    {NULL},
};

static const GOptionEntry no_entries[] = {{NULL}};

static const char exit_status_help[] =
    "Exit status:\n"
    "  0  done\n"
    "  1  salined refused or failed (its reason is printed)\n"
    "  2  usage error: nothing was sent\n"
    "  3  salined cannot be reached\n";

/* ---- talking to salined ---- */

static const char *
socket_path(void)
{
    const char *path = arg_socket;

    if (!path) {
        path = g_getenv("SALINE_SOCKET");
    }
    return path && *path ? path : DEFAULT_SOCKET;
}

/* One request to salined: the body of its answer and its @status, or
 * NULL with @error set if no full answer came back. */
static GBytes *
exchange(const char *method, const char *path, GBytes *body, guint *status,
         GError **error)
{
    g_autoptr(GSocketAddress) addr = g_unix_socket_address_new(socket_path());
    g_autoptr(SoupSession) session = soup_session_new_with_options(
        "remote-connectable", addr, "timeout", TIMEOUT_S, NULL);
    g_autofree char *uri = g_strconcat("http://localhost", path, NULL);
    g_autoptr(SoupMessage) msg = soup_message_new(method, uri);
    GBytes *bytes;

    if (body) {
        soup_message_set_request_body_from_bytes(msg, "application/json", body);
    }
    bytes = soup_session_send_and_read(session, msg, NULL, error);
    if (bytes) {
        *status = soup_message_get_status(msg);
    }
    return bytes;
}

/* Nobody listens on the socket (salined stopped, or restarting): nothing
 * was sent. */
static gboolean
not_listening(const GError *error)
{
    return g_error_matches(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND) ||
           g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED);
}

/* The connection ended before a full answer (salined killed or
 * restarted; a reset, or an end of stream in the answer's head or
 * body): the request may have been carried out or not. */
static gboolean
answer_cut(const GError *error)
{
    return g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED) ||
           g_error_matches(error, G_IO_ERROR, G_IO_ERROR_PARTIAL_INPUT) ||
           g_error_matches(error, SOUP_SESSION_ERROR,
                           SOUP_SESSION_ERROR_PARSING);
}

/* Reads salined's answer of @status: prints what goes wrong and returns
 * the exit status. @answer gets the JSON object of an answer of status
 * @expected, or @also if not 0. */
static int
answer_read(GBytes *bytes, guint status, guint expected, guint also,
            JsonNode **answer)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(JsonNode) node = NULL;
    gsize len;
    const char *data = g_bytes_get_data(bytes, &len);

    if (len > SAL_JSON_MAX_BODY * 1024) {
        g_printerr("saline: answer of salined is too large\n");
        return EXIT_FAIL;
    }
    node = sal_json_parse(data ? data : "", len, &error);
    if (!node || !JSON_NODE_HOLDS_OBJECT(node)) {
        g_printerr("saline: bad answer from salined (status %u): %s\n",
                   status, node ? "not a JSON object" : error->message);
        return EXIT_FAIL;
    }
    if (status != expected && (also == 0 || status != also)) {
        const char *message =
            json_object_get_string_member_with_default(
                json_node_get_object(node), "error", NULL);

        g_printerr("saline: %s\n",
                   message ? message : soup_status_get_phrase(status));
        return EXIT_FAIL;
    }
    *answer = g_steal_pointer(&node);
    return EXIT_OK;
}

static void
unreachable(const GError *error)
{
    g_printerr("saline: cannot reach salined at '%s': %s\n", socket_path(),
               error->message);
}

/* Asks salined; prints what goes wrong and returns the exit status.
 * @answer gets the JSON object of a successful answer. */
static int
call(const char *method, const char *path, JsonNode *body, guint expected,
     JsonNode **answer)
{
    g_autoptr(GBytes) request = NULL;
    g_autoptr(GBytes) bytes = NULL;
    g_autoptr(GError) error = NULL;
    guint status = 0;

    if (body) {
        char *text = sal_json_to_string(body);

        request = g_bytes_new_take(text, strlen(text));
    }
    bytes = exchange(method, path, request, &status, &error);
    if (!bytes) {
        unreachable(error);
        return EXIT_UNREACHABLE;
    }
    return answer_read(bytes, status, expected, 0, answer);
}

/*
 * POSTs the submission @body (which has an idempotency key, so salined
 * stores it once however often it comes) and prints what goes wrong.
 * When salined does not listen or the connection ends before its answer
 * (it is restarting: killed, or restarted by an operator), waits for it
 * up to RETRY_S and sends the submission once more.
 */
static int
submit_call(JsonNode *body, const char *key, JsonNode **answer)
{
    char *text = sal_json_to_string(body);
    g_autoptr(GBytes) request = g_bytes_new_take(text, strlen(text));
    g_autoptr(GBytes) bytes = NULL;
    g_autoptr(GError) error = NULL;
    gboolean sent = FALSE; /* salined may have the job */
    guint status = 0;

    bytes = exchange("POST", "/v1/jobs", request, &status, &error);
    sent = !bytes && !not_listening(error);
    if (!bytes && (not_listening(error) || answer_cut(error))) {
        gint64 until = g_get_monotonic_time() + RETRY_S * G_USEC_PER_SEC;

        if (isatty(STDERR_FILENO)) {
            g_printerr("saline: no answer from salined (%s); trying again\n",
                       error->message);
        }
        /* An attempt that cannot connect sends nothing: still once. */
        do {
            g_usleep(RETRY_PAUSE_MS * 1000);
            g_clear_error(&error);
            bytes = exchange("POST", "/v1/jobs", request, &status, &error);
        } while (!bytes && not_listening(error) &&
                 g_get_monotonic_time() < until);
        sent = sent || (!bytes && !not_listening(error));
    }
    if (!bytes) {
        if (sent) {
            g_printerr("saline: cannot reach salined at '%s': %s; it may have "
                       "the job: submit again with --idempotency-key %s\n",
                       socket_path(), error->message, key);
        } else {
            unreachable(error);
        }
        return EXIT_UNREACHABLE;
    }
    /* 200: a job stored by an attempt whose answer was lost. */
    return answer_read(bytes, status, SOUP_STATUS_CREATED, SOUP_STATUS_OK,
                       answer);
}

static void
print_json(JsonNode *node)
{
    g_autofree char *text = json_to_string(node, TRUE);

    printf("%s\n", text);
}

/* GETs @path; with --json prints the answer and leaves *@answer NULL. */
static int
get(const char *path, JsonNode **answer)
{
    g_autoptr(JsonNode) node = NULL;
    int rc = call("GET", path, NULL, SOUP_STATUS_OK, &node);

    if (rc == EXIT_OK && arg_json) {
        print_json(node);
    } else {
        *answer = g_steal_pointer(&node);
    }
    return rc;
}

/* The array member @name of the answer: salined's, so no type errors
 * but a missing one shows as empty. */
static JsonArray *
answer_array(JsonNode *node, const char *name)
{
    JsonNode *m = json_object_get_member(json_node_get_object(node), name);

    return m && JSON_NODE_HOLDS_ARRAY(m) ? json_node_get_array(m) : NULL;
}

static gint64
member_int(JsonObject *o, const char *name)
{
    return json_object_get_int_member_with_default(o, name, 0);
}

/* ---- parsing what users type ---- */

static gboolean
parse_number(const char *what, const char *text, gint64 min, gint64 max,
             gint64 *out, GError **error)
{
    if (!text || !g_ascii_string_to_signed(text, 10, min, max, out, NULL)) {
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                    "invalid %s '%s': expected a whole number from "
                    "%" G_GINT64_FORMAT " to %" G_GINT64_FORMAT,
                    what, text ? text : "", min, max);
        return FALSE;
    }
    return TRUE;
}

static gboolean
parse_job_id(const char *text, gint64 *id, GError **error)
{
    if (!g_ascii_isdigit(text[0])) {
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                    "invalid job id '%s'", text);
        return FALSE;
    }
    return parse_number("job id", text, 1, G_MAXINT64, id, error);
}

/* Parses the options of a command (@entries, --json if @json): "saline
 * CMD --help" prints @help; a usage error prints one line. */
static gboolean
parse_options(const char *cmd, const char *params, const char *summary,
              const char *help, const GOptionEntry *entries, gboolean json,
              gboolean posix, int *argc, char ***argv)
{
    g_autofree char *prgname = g_strdup_printf("saline %s", cmd);
    g_autoptr(GOptionContext) ctx = g_option_context_new(params);
    g_autofree char *description = g_strconcat(help, "\n", exit_status_help,
                                               NULL);
    g_autoptr(GError) error = NULL;

    g_set_prgname(prgname);
    g_option_context_add_main_entries(ctx, entries, NULL);
    if (json) {
        g_option_context_add_main_entries(ctx, json_entries, NULL);
    }
    g_option_context_add_main_entries(ctx, global_entries, NULL);
    g_option_context_set_summary(ctx, summary);
    g_option_context_set_description(ctx, description);
    g_option_context_set_strict_posix(ctx, posix);
    if (!g_option_context_parse(ctx, argc, argv, &error)) {
        g_printerr("saline: %s\n", error->message);
        return FALSE;
    }
    return TRUE;
}

static int
usage_error(GError *error)
{
    g_printerr("saline: %s\n", error->message);
    return EXIT_USAGE;
}

/* ---- submit ---- */

static gboolean arg_besteffort;
static gboolean arg_idempotent;
static gboolean arg_ssi;
static char *arg_priority;
static char *arg_name;
static char *arg_vms;
static char *arg_cpus;
static char *arg_mem;
static char *arg_image;
static char *arg_walltime;
static char *arg_site;
static char *arg_snapshot_interval;
static char *arg_idempotency_key;
static char **arg_command;

static const GOptionEntry submit_entries[] = {
    {"vms", 'n', 0, G_OPTION_ARG_STRING, &arg_vms,
     "Number of VMs, 1 to 1024 (required)", "VMS"},
    {"cpus", 'c', 0, G_OPTION_ARG_STRING, &arg_cpus,
     "CPUs of each VM, 1 to 1024 (required)", "CPUS"},
    {"mem", 'm', 0, G_OPTION_ARG_STRING, &arg_mem,
     "Memory of each VM: MiB, or with a unit: 512M, 2G (required)", "MEM"},
    {"image", 'i', 0, G_OPTION_ARG_STRING, &arg_image,
     "Image the VMs boot, by the name salined knows it (required)", "IMG"},
    {"walltime", 'w', 0, G_OPTION_ARG_STRING, &arg_walltime,
     "Running time allowed: H:M:S, H:M, H, or 90s, 15m, 2h, 3d (required)",
     "T"},
    {"name", 0, 0, G_OPTION_ARG_STRING, &arg_name,
     "Name of the job (default: the command's file name)", "N"},
    {"site", 's', 0, G_OPTION_ARG_STRING, &arg_site,
     "Run on nodes of site S only (default: any site)", "S"},
    {"priority", 'p', 0, G_OPTION_ARG_STRING, &arg_priority,
     "Priority, -1000 to 1000, higher first (default: 0)", "PRIO"},
    {"besteffort", 0, 0, G_OPTION_ARG_NONE, &arg_besteffort,
     "Run on idle capacity only; the job may be preempted", NULL},
    {"idempotent", 0, 0, G_OPTION_ARG_NONE, &arg_idempotent,
     "The command may run again from the start if the job is requeued", NULL},
    {"ssi", 0, 0, G_OPTION_ARG_NONE, &arg_ssi,
     "Run COMMAND in an SSI cluster of the job's VMs (at most 63), "
     "through 'ssi run'; IMG must have the SSI parts",
     NULL},
    {"snapshot-interval", 0, 0, G_OPTION_ARG_STRING, &arg_snapshot_interval,
     "With --besteffort: time between snapshots of the VMs, 5s to 24h: "
     "seconds, or 90s, 15m, 2h (default: salined's)",
     "D"},
    {"idempotency-key", 0, 0, G_OPTION_ARG_STRING, &arg_idempotency_key,
     "Key of this submission, 1 to 128 printable ASCII characters: "
     "submitting again with it gives the same job (default: a random one)",
     "KEY"},
    {G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_STRING_ARRAY, &arg_command, NULL,
     NULL},
    {NULL},
};

static const char submit_help[] =
    "Description:\n"
    "  Submits a job of VMS identical VMs, each with CPUS CPUs and MEM of\n"
    "  memory, booted from image IMG. COMMAND runs in every VM as root, in\n"
    "  /job (the VM's own copy of the image's disk), with no shell unless\n"
    "  COMMAND starts one. Its environment has SALINE_JOB_ID,\n"
    "  SALINE_VM_INDEX (0-based), SALINE_VMS and SALINE_NODEFILE (the IPs\n"
    "  of the job's VMs, one a line, as OAR's $OAR_NODEFILE). Its output\n"
    "  is kept: see 'saline log'. The job is stopped once it has run for\n"
    "  T; a suspended job keeps the time it has used.\n"
    "\n"
    "  A best-effort job runs on capacity no regular job needs; when one\n"
    "  does, salined snapshots the job's VMs, removes them and redeploys\n"
    "  them from that snapshot later, so the command goes on where it was.\n"
    "  salined also snapshots them every D while they run (0: its\n"
    "  default), so a job whose node fails loses at most D of work.\n"
    "\n"
    "  With --ssi, the job's VMs form one virtual SSI cluster (an image\n"
    "  built with the SSI parts): COMMAND runs once, through 'ssi run' on\n"
    "  the member the cluster's policy picks, with cwd / and SALINE_JOB_ID,\n"
    "  SALINE_VMS and SALINE_NODEFILE; it may 'ssi run' more anywhere in\n"
    "  the cluster. Its output and exit status are VM 0's; the job ends\n"
    "  when it does. Each job is a cluster of its own, with its own key.\n"
    "\n"
    "  Options stop at COMMAND; put '--' before a COMMAND that starts with\n"
    "  '-'. Every value is checked before anything is sent. On success,\n"
    "  prints the job's id as oarsub does:\n"
    "    SALINE_JOB_ID=12\n"
    "\n"
    "  A submission carries a key, KEY or a random one, that salined keeps\n"
    "  with the job (it is about submitting, not about running the\n"
    "  command again: that is --idempotent). If salined does not answer\n"
    "  (it is not listening, or the connection breaks before its answer:\n"
    "  it may be restarting), saline waits up to 10 s for it and submits\n"
    "  once more with the same key: salined answers the job if it stored\n"
    "  it already, never stores it twice, and saline prints SALINE_JOB_ID\n"
    "  as for a first submission. If there is still no answer, the error\n"
    "  says the key to submit again with. Submitting again with a KEY you\n"
    "  used gives that job, or fails if the job submitted differs; keys\n"
    "  are per user.\n"
    "\n"
    "Examples:\n"
    "  saline submit -n 4 -c 2 -m 2G --image debian-12 --walltime 1:30 \\\n"
    "      -- mpirun -hostfile /run/saline/nodefile ./app\n"
    "  saline submit --besteffort --idempotent -n 1 -c 1 -m 512M \\\n"
    "      --image alpine --walltime 15m -- sh -c 'make test'\n"
    "  saline submit --besteffort --snapshot-interval 10m -n 2 -c 4 -m 8G \\\n"
    "      --image debian-12 --walltime 12h -- ./simulate\n"
    "  saline submit --ssi -n 3 -c 1 -m 256M --image saline-ssi \\\n"
    "      --walltime 10m -- sh -c 'ssi nodes; ssi run -n 2 hostname'\n";

static gboolean
build_job(SalJob *job, GError **error)
{
    gint64 v;

    if (!arg_vms || !arg_cpus || !arg_mem || !arg_image || !arg_walltime) {
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                    "missing %s; see 'saline submit --help'",
                    !arg_vms    ? "-n VMS"
                    : !arg_cpus ? "-c CPUS"
                    : !arg_mem  ? "-m MEM"
                    : !arg_image ? "--image IMG"
                                 : "--walltime T");
        return FALSE;
    }
    if (!arg_command || !arg_command[0]) {
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                    "missing COMMAND; see 'saline submit --help'");
        return FALSE;
    }
    if (!parse_number("VM count", arg_vms, 1, SAL_MAX_VMS, &v, error)) {
        return FALSE;
    }
    job->n_vms = (guint)v;
    if (!parse_number("CPU count", arg_cpus, 1, SAL_MAX_CPUS, &v, error)) {
        return FALSE;
    }
    job->cpus = (guint)v;
    if (arg_priority) {
        if (!parse_number("priority", arg_priority, SAL_PRIORITY_MIN,
                          SAL_PRIORITY_MAX, &v, error)) {
            return FALSE;
        }
        job->priority = (gint)v;
    }
    if (!sal_mem_parse(arg_mem, &job->mem_mib, error) ||
        !sal_walltime_parse(arg_walltime, &job->walltime_s, error)) {
        return FALSE;
    }
    if (arg_snapshot_interval) {
        if (!arg_besteffort) {
            g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                        "--snapshot-interval is for best-effort jobs: add "
                        "--besteffort");
            return FALSE;
        }
        if (!sal_duration_parse("snapshot interval", arg_snapshot_interval,
                                &job->snapshot_interval_s, error)) {
            return FALSE;
        }
    }
    job->besteffort = arg_besteffort;
    job->idempotent = arg_idempotent;
    job->ssi = arg_ssi;
    job->image = g_strdup(arg_image);
    job->site = g_strdup(arg_site);
    job->command = g_strdupv(arg_command);
    job->name = arg_name ? g_strdup(arg_name)
                         : sal_job_default_name(job->command);
    job->idempotency_key = arg_idempotency_key ? g_strdup(arg_idempotency_key)
                                               : g_uuid_string_random();
    return sal_job_validate(job, error);
}

static int
cmd_submit(int argc, char **argv)
{
    g_autoptr(SalJob) job = sal_job_new();
    g_autoptr(GError) error = NULL;
    g_autoptr(JsonNode) body = NULL;
    g_autoptr(JsonNode) answer = NULL;
    int rc;

    if (!parse_options("submit",
                       "-n VMS -c CPUS -m MEM --image IMG --walltime T "
                       "[--] COMMAND...",
                       "Submit a job: VMs that run COMMAND.", submit_help,
                       submit_entries, FALSE, TRUE, &argc, &argv)) {
        return EXIT_USAGE;
    }
    if (!build_job(job, &error)) {
        return usage_error(error);
    }
    body = sal_job_to_submission(job);
    rc = submit_call(body, job->idempotency_key, &answer);
    if (rc != EXIT_OK) {
        return rc;
    }
    printf("SALINE_JOB_ID=%" G_GINT64_FORMAT "\n",
           json_object_get_int_member_with_default(
               json_node_get_object(answer), "id", 0));
    return EXIT_OK;
}

/* ---- stat ---- */

static gboolean arg_all;

static const GOptionEntry stat_entries[] = {
    {"all", 'a', 0, G_OPTION_ARG_NONE, &arg_all,
     "Also list finished jobs (done, failed, cancelled)", NULL},
    {NULL},
};

static const char stat_help[] =
    "Description:\n"
    "  Without JOB, lists your jobs that have not finished (all users' jobs\n"
    "  for root), one a line as oarstat does:\n"
    "    Job id    the job's number\n"
    "    Name      given at submission, or the command's file name\n"
    "    User      its owner\n"
    "    State     pending, starting, running, suspending, suspended,\n"
    "              resuming, done, failed or cancelled\n"
    "    VMs       number of VMs\n"
    "    Walltime  running time allowed, H:MM:SS\n"
    "    Used      running time used so far, H:MM:SS\n"
    "    Nodes     nodes its VMs are placed on, '-' while none\n"
    "    OAR job   when OAR owns the nodes: the OAR job that holds (or\n"
    "              waits for) them, as oarstat shows it; this column\n"
    "              appears only then\n"
    "\n"
    "  With JOB, lists all of that job, 'key = value' a line as oarstat -f\n"
    "  does, then one line per VM: its node, IP, MAC, libvirt domain, state\n"
    "  and the exit status of the command in it. For a best-effort job,\n"
    "  snapshot_interval is the time between snapshots of its VMs,\n"
    "  snapshot_seq the latest complete one it would be redeployed from,\n"
    "  and held says it was suspended by 'saline suspend' and waits for\n"
    "  'saline resume'. Then its history:\n"
    "    Snapshots  one a line: Seq (its number), Time (when complete),\n"
    "               Pause (the longest time a VM was paused for it), Sent\n"
    "               (bytes copied) and New (bytes not in the snapshot\n"
    "               before)\n"
    "    Events     what happened to the job, oldest first\n"
    "  With --json, the job's object gets two more members, \"snapshots\"\n"
    "  and \"events\", as salined's history answer has them.\n"
    "\n"
    "  Times are local; '-' is none or not yet.\n";

/* Running time used so far, as salined counts it. */
static gint64
job_used(const SalJob *job)
{
    return sal_job_run_time(job, g_get_real_time() / G_USEC_PER_SEC);
}

static char *
job_nodes(GPtrArray *vms)
{
    g_autoptr(GString) s = g_string_new(NULL);
    g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);

    for (guint i = 0; i < vms->len; i++) {
        const SalVm *vm = g_ptr_array_index(vms, i);

        if (vm->node && g_hash_table_add(seen, vm->node)) {
            g_string_append_printf(s, "%s%s", s->len ? "," : "", vm->node);
        }
    }
    return g_strdup(s->len ? s->str : "-");
}

static const char *
or_dash(const char *text)
{
    return text && *text ? text : "-";
}

static char *
format_time(gint64 t)
{
    g_autoptr(GDateTime) dt = NULL;

    if (t <= 0 || !(dt = g_date_time_new_from_unix_local(t))) {
        return g_strdup("-");
    }
    return g_date_time_format(dt, "%Y-%m-%d %H:%M:%S");
}

/* @arg as a shell reads it back: quoted only when it must be. */
static char *
shell_word(const char *arg)
{
    for (const char *p = arg; *p; p++) {
        if (!g_ascii_isalnum(*p) && !strchr("_@%+=:,./-", *p)) {
            return g_shell_quote(arg);
        }
    }
    return *arg ? g_strdup(arg) : g_shell_quote(arg);
}

static char *
format_exit(gint status)
{
    return status < 0 ? g_strdup("-") : g_strdup_printf("%d", status);
}

/* A table: rows of @n_cols strings, columns as wide as their widest. */
static void
print_table(GPtrArray *cells, guint n_cols)
{
    g_autofree guint *width = g_new0(guint, n_cols);

    for (guint i = 0; i < cells->len; i++) {
        guint len = g_utf8_strlen(g_ptr_array_index(cells, i), -1);

        width[i % n_cols] = MAX(width[i % n_cols], len);
    }
    for (guint i = 0; i < cells->len; i++) {
        const char *cell = g_ptr_array_index(cells, i);
        guint col = i % n_cols;

        if (col == n_cols - 1) {
            printf("%s\n", cell);
        } else {
            printf("%s%*s ", cell,
                   (int)(width[col] - g_utf8_strlen(cell, -1)), "");
        }
        /* A rule under the header row. */
        if (i == n_cols - 1) {
            for (guint c = 0; c < n_cols; c++) {
                g_autofree char *dashes = g_strnfill(width[c], '-');

                printf("%s%s", dashes, c == n_cols - 1 ? "\n" : " ");
            }
        }
    }
}

static void
add_cells(GPtrArray *cells, ...)
{
    va_list ap;
    char *cell;

    va_start(ap, cells);
    while ((cell = va_arg(ap, char *))) {
        g_ptr_array_add(cells, cell);
    }
    va_end(ap);
}

/* A job of an answer and its VMs; reports a malformed one. */
static SalJob *
read_job(JsonNode *node, GPtrArray **vms, const char **user)
{
    g_autoptr(GError) error = NULL;
    SalJob *job = sal_job_from_json(node, vms, &error);

    if (!job) {
        g_printerr("saline: bad answer from salined: %s\n", error->message);
        return NULL;
    }
    *user = JSON_NODE_HOLDS_OBJECT(node)
                ? json_object_get_string_member_with_default(
                      json_node_get_object(node), "user", "-")
                : "-";
    return job;
}

static int
stat_list(void)
{
    g_autoptr(JsonNode) answer = NULL;
    g_autoptr(GPtrArray) cells = g_ptr_array_new_with_free_func(g_free);
    JsonArray *jobs;
    gboolean with_oar = FALSE;
    int rc = get(arg_all ? "/v1/jobs?all=1" : "/v1/jobs", &answer);

    if (rc != EXIT_OK || !answer) {
        return rc;
    }
    add_cells(cells, g_strdup("Job id"), g_strdup("Name"), g_strdup("User"),
              g_strdup("State"), g_strdup("VMs"), g_strdup("Walltime"),
              g_strdup("Used"), g_strdup("Nodes"), NULL);
    jobs = answer_array(answer, "jobs");
    for (guint i = 0; jobs && i < json_array_get_length(jobs); i++) {
        JsonNode *j = json_array_get_element(jobs, i);

        if (JSON_NODE_HOLDS_OBJECT(j) &&
            json_object_get_int_member_with_default(json_node_get_object(j),
                                                    "oar_job_id", 0) > 0) {
            with_oar = TRUE;
        }
    }
    if (with_oar) {
        g_ptr_array_add(cells, g_strdup("OAR job"));
    }
    for (guint i = 0; jobs && i < json_array_get_length(jobs); i++) {
        g_autoptr(GPtrArray) vms = NULL;
        const char *user;
        g_autoptr(SalJob) job =
            read_job(json_array_get_element(jobs, i), &vms, &user);

        if (!job) {
            return EXIT_FAIL;
        }
        add_cells(cells, g_strdup_printf("%" G_GINT64_FORMAT, job->id),
                  g_strdup(or_dash(job->name)), g_strdup(user),
                  g_strdup(sal_job_state_to_string(job->state)),
                  g_strdup_printf("%u", job->n_vms),
                  sal_walltime_format(job->walltime_s),
                  sal_walltime_format(job_used(job)), job_nodes(vms), NULL);
        if (with_oar) {
            g_ptr_array_add(cells, job->oar_job_id > 0
                                       ? g_strdup_printf("%" G_GINT64_FORMAT,
                                                         job->oar_job_id)
                                       : g_strdup("-"));
        }
    }
    print_table(cells, with_oar ? 9 : 8);
    return EXIT_OK;
}

static char *
format_interval(const SalJob *job)
{
    if (!job->besteffort) {
        return g_strdup("-");
    }
    if (job->snapshot_interval_s == 0) {
        return g_strdup("default");
    }
    return sal_walltime_format(job->snapshot_interval_s);
}

/* "1.5 GiB": GLib's, with a plain space (it puts a no-break space, which
 * breaks "cut -d' '" and shows as '?' outside UTF-8 locales). */
static char *
format_bytes(gint64 bytes)
{
    g_autofree char *text =
        g_format_size_full((guint64)MAX(bytes, 0), G_FORMAT_SIZE_IEC_UNITS);
    GString *s = g_string_new(text);

    g_string_replace(s, "\u00a0", " ", 0);
    return g_string_free(s, FALSE);
}

static void
print_snapshots(JsonArray *snaps)
{
    g_autoptr(GPtrArray) cells = g_ptr_array_new_with_free_func(g_free);
    guint n = snaps ? json_array_get_length(snaps) : 0;

    if (n == 0) {
        printf("Snapshots: none\n");
        return;
    }
    printf("Snapshots:\n");
    add_cells(cells, g_strdup("Seq"), g_strdup("Time"), g_strdup("Pause"),
              g_strdup("Sent"), g_strdup("New"), NULL);
    for (guint i = 0; i < n; i++) {
        JsonObject *o = json_array_get_object_element(snaps, i);

        if (!o) {
            continue;
        }
        add_cells(cells,
                  g_strdup_printf("%" G_GINT64_FORMAT, member_int(o, "seq")),
                  format_time(member_int(o, "time")),
                  g_strdup_printf("%" G_GINT64_FORMAT " ms",
                                  member_int(o, "pause_ms")),
                  format_bytes(member_int(o, "bytes_sent")),
                  format_bytes(member_int(o, "bytes_new")), NULL);
    }
    print_table(cells, 5);
}

static void
print_events(JsonArray *events)
{
    guint n = events ? json_array_get_length(events) : 0;

    printf("Events:%s\n", n ? "" : " none");
    for (guint i = 0; i < n; i++) {
        JsonObject *o = json_array_get_object_element(events, i);
        g_autofree char *t = NULL;

        if (!o) {
            continue;
        }
        t = format_time(member_int(o, "time"));
        printf("    %s  %s\n", t,
               json_object_get_string_member_with_default(o, "text", ""));
    }
}

/* The job's object with the history's arrays added: salined's answers
 * are immutable, so a new object shares their members. */
static JsonNode *
job_with_history(JsonNode *job, JsonNode *history)
{
    JsonObject *o = json_object_new();
    JsonNode *node = json_node_new(JSON_NODE_OBJECT);
    static const char *const arrays[] = {"snapshots", "events"};
    JsonObjectIter iter;
    const char *name;
    JsonNode *member;

    json_object_iter_init(&iter, json_node_get_object(job));
    while (json_object_iter_next(&iter, &name, &member)) {
        json_object_set_member(o, name, json_node_ref(member));
    }
    for (guint i = 0; i < G_N_ELEMENTS(arrays); i++) {
        JsonArray *a = answer_array(history, arrays[i]);

        if (a) {
            json_object_set_array_member(o, arrays[i], json_array_ref(a));
        } else {
            json_object_set_array_member(o, arrays[i], json_array_new());
        }
    }
    json_node_take_object(node, o);
    return node;
}

static int
stat_job(const char *id_text)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(JsonNode) answer = NULL;
    g_autoptr(JsonNode) history = NULL;
    g_autoptr(GPtrArray) vms = NULL;
    g_autoptr(SalJob) job = NULL;
    g_autofree char *path = NULL;
    g_autofree char *history_path = NULL;
    g_autofree char *command = NULL;
    g_autofree char *mem = NULL, *wall = NULL, *used = NULL;
    g_autofree char *submit = NULL, *start = NULL, *end = NULL, *ex = NULL;
    g_autofree char *interval = NULL;
    const char *user;
    gint64 id;
    int rc;

    if (!parse_job_id(id_text, &id, &error)) {
        return usage_error(error);
    }
    path = g_strdup_printf("/v1/jobs/%" G_GINT64_FORMAT, id);
    history_path = g_strdup_printf("/v1/jobs/%" G_GINT64_FORMAT "/history", id);
    rc = call("GET", path, NULL, SOUP_STATUS_OK, &answer);
    if (rc != EXIT_OK) {
        return rc;
    }
    rc = call("GET", history_path, NULL, SOUP_STATUS_OK, &history);
    if (rc != EXIT_OK) {
        return rc;
    }
    if (arg_json) {
        g_autoptr(JsonNode) both = job_with_history(answer, history);

        print_json(both);
        return EXIT_OK;
    }
    job = read_job(answer, &vms, &user);
    if (!job) {
        return EXIT_FAIL;
    }
    {
        g_autoptr(GString) s = g_string_new(NULL);

        for (guint i = 0; job->command && job->command[i]; i++) {
            g_autofree char *q = shell_word(job->command[i]);

            g_string_append_printf(s, "%s%s", i ? " " : "", q);
        }
        command = g_string_free(g_steal_pointer(&s), FALSE);
    }
    mem = sal_mem_format(job->mem_mib);
    wall = sal_walltime_format(job->walltime_s);
    used = sal_walltime_format(job_used(job));
    submit = format_time(job->submit_time);
    start = format_time(job->start_time);
    end = format_time(job->end_time);
    ex = format_exit(job->exit_status);
    interval = format_interval(job);

    printf("Job_Id: %" G_GINT64_FORMAT "\n", job->id);
    printf("    name = %s\n", or_dash(job->name));
    printf("    user = %s (uid %" G_GUINT32_FORMAT ")\n", user,
           job->owner_uid);
    printf("    state = %s\n", sal_job_state_to_string(job->state));
    printf("    besteffort = %s\n", job->besteffort ? "yes" : "no");
    printf("    idempotent = %s\n", job->idempotent ? "yes" : "no");
    printf("    ssi = %s\n", job->ssi ? "yes" : "no");
    printf("    priority = %d\n", job->priority);
    printf("    vms = %u\n", job->n_vms);
    printf("    cpus = %u\n", job->cpus);
    printf("    memory = %s\n", mem);
    printf("    image = %s\n", or_dash(job->image));
    printf("    site = %s\n", job->site ? job->site : "any");
    printf("    command = %s\n", command);
    printf("    walltime = %s\n", wall);
    printf("    used = %s\n", used);
    printf("    submit_time = %s\n", submit);
    printf("    idempotency_key = %s\n", or_dash(job->idempotency_key));
    printf("    start_time = %s\n", start);
    printf("    end_time = %s\n", end);
    printf("    exit_status = %s\n", ex);
    printf("    failure = %s\n", or_dash(job->failure));
    printf("    snapshot_interval = %s\n", interval);
    if (job->snapshot_seq > 0) {
        printf("    snapshot_seq = %u\n", job->snapshot_seq);
    } else {
        printf("    snapshot_seq = -\n");
    }
    printf("    held = %s\n", job->held ? "yes" : "no");
    if (job->oar_job_id > 0) {
        printf("    oar_job_id = %" G_GINT64_FORMAT "\n", job->oar_job_id);
    } else {
        printf("    oar_job_id = -\n");
    }
    for (guint i = 0; i < vms->len; i++) {
        const SalVm *vm = g_ptr_array_index(vms, i);
        g_autofree char *vex = format_exit(vm->exit_status);

        printf("    vm %u = node=%s ip=%s mac=%s domain=%s state=%s exit=%s\n",
               vm->index, or_dash(vm->node), or_dash(vm->ip),
               or_dash(vm->mac), or_dash(vm->domain),
               sal_vm_state_to_string(vm->state), vex);
    }
    print_snapshots(answer_array(history, "snapshots"));
    print_events(answer_array(history, "events"));
    return EXIT_OK;
}

static int
cmd_stat(int argc, char **argv)
{
    if (!parse_options("stat", "[JOB]", "Show jobs, or one job in full.",
                       stat_help, stat_entries, TRUE, FALSE, &argc, &argv)) {
        return EXIT_USAGE;
    }
    if (argc > 2) {
        g_printerr("saline: unexpected argument '%s': one JOB at most\n",
                   argv[2]);
        return EXIT_USAGE;
    }
    if (argc == 2) {
        if (arg_all) {
            g_printerr("saline: --all lists jobs: give no JOB with it\n");
            return EXIT_USAGE;
        }
        return stat_job(argv[1]);
    }
    return stat_list();
}

/* ---- del, suspend, resume ---- */

/* A command that does one thing to each JOB. */
typedef struct {
    const char *name;
    const char *summary;
    const char *help;
    const char *method;
    const char *suffix; /* of the job's path */
} JobAction;

static const JobAction del_action = {
    "del", "Cancel jobs.",
    "Description:\n"
    "  Cancels each JOB: a pending job at once, a running or suspended one\n"
    "  by destroying its VMs (their output so far is kept: 'saline log').\n"
    "  Prints each job's new state. A job that has already ended cannot be\n"
    "  cancelled; the others are cancelled all the same (exit 1).\n",
    "DELETE", "",
};

static const JobAction suspend_action = {
    "suspend", "Suspend best-effort jobs until resumed.",
    "Description:\n"
    "  Suspends each JOB, a running best-effort job: salined takes a last\n"
    "  snapshot of its VMs, then removes them, and the job stays suspended\n"
    "  and held, using no node, until 'saline resume'. Its walltime does\n"
    "  not run meanwhile. Prints each job's new state ('suspending' while\n"
    "  the snapshot is taken, then 'suspended'), with '(held)'.\n"
    "\n"
    "  A regular job cannot be suspended, nor one that is not running, nor\n"
    "  any job when salined has no snapshot store; the other JOBs are\n"
    "  suspended all the same (exit 1).\n",
    "POST", "/suspend",
};

static const JobAction resume_action = {
    "resume", "Let suspended jobs run again.",
    "Description:\n"
    "  Releases each JOB held by 'saline suspend': salined redeploys its VMs\n"
    "  from their last snapshot when capacity allows, and the command goes\n"
    "  on where it was. Prints each job's new state: it stays 'suspended'\n"
    "  (no longer held) until it is redeployed. A job that is not held\n"
    "  cannot be resumed; the other JOBs are resumed all the same (exit 1).\n",
    "POST", "/resume",
};

static int
job_action(const JobAction *action, int argc, char **argv)
{
    g_autofree gint64 *ids = NULL;
    g_autoptr(GError) error = NULL;
    int rc = EXIT_OK;

    if (!parse_options(action->name, "JOB...", action->summary, action->help,
                       no_entries, FALSE, FALSE, &argc, &argv)) {
        return EXIT_USAGE;
    }
    if (argc < 2) {
        g_printerr("saline: missing JOB; see 'saline %s --help'\n",
                   action->name);
        return EXIT_USAGE;
    }
    ids = g_new(gint64, argc - 1);
    for (int i = 1; i < argc; i++) {
        if (!parse_job_id(argv[i], &ids[i - 1], &error)) {
            return usage_error(error);
        }
    }
    for (int i = 0; i < argc - 1; i++) {
        g_autofree char *path = g_strdup_printf(
            "/v1/jobs/%" G_GINT64_FORMAT "%s", ids[i], action->suffix);
        g_autoptr(JsonNode) answer = NULL;
        int r = call(action->method, path, NULL, SOUP_STATUS_OK, &answer);
        JsonObject *job;
        const char *state;
        SalJobState s;

        if (r == EXIT_UNREACHABLE) {
            return r;
        }
        if (r != EXIT_OK) {
            rc = r;
            continue;
        }
        job = json_node_get_object(answer);
        state = json_object_get_string_member_with_default(job, "state", "?");
        /* Held says something only while the job may still run. */
        printf("Job %" G_GINT64_FORMAT ": %s%s\n", ids[i], state,
               json_object_get_boolean_member_with_default(job, "held",
                                                           FALSE) &&
                       sal_job_state_from_string(state, &s, NULL) &&
                       !sal_job_state_is_terminal(s)
                   ? " (held)"
                   : "");
    }
    return rc;
}

static int
cmd_del(int argc, char **argv)
{
    return job_action(&del_action, argc, argv);
}

static int
cmd_suspend(int argc, char **argv)
{
    return job_action(&suspend_action, argc, argv);
}

static int
cmd_resume(int argc, char **argv)
{
    return job_action(&resume_action, argc, argv);
}

/* ---- nodes ---- */

static const char nodes_help[] =
    "Description:\n"
    "  Lists the nodes salined runs VMs on, in its configuration order:\n"
    "    Name, Site  the node, its site\n"
    "    State       up (salined's libvirt connection is alive) or down\n"
    "    CPUs        used by VMs of active jobs / the node's\n"
    "    Memory      used / the node's\n"
    "    VMs         VMs of active jobs on it\n"
    "    Error       why it is down\n";

static char *
used_of(gint64 used, gint64 total, gboolean mem)
{
    g_autofree char *u = mem && used > 0 ? sal_mem_format((guint64)used)
                             : g_strdup_printf("%" G_GINT64_FORMAT, used);
    g_autofree char *t = mem ? sal_mem_format((guint64)MAX(total, 0))
                             : g_strdup_printf("%" G_GINT64_FORMAT, total);

    return g_strdup_printf("%s/%s", u, t);
}

static int
cmd_nodes(int argc, char **argv)
{
    g_autoptr(JsonNode) answer = NULL;
    g_autoptr(GPtrArray) cells = g_ptr_array_new_with_free_func(g_free);
    JsonArray *nodes;
    int rc;

    if (!parse_options("nodes", "", "List the nodes and their use.",
                       nodes_help, no_entries, TRUE, FALSE, &argc, &argv)) {
        return EXIT_USAGE;
    }
    if (argc > 1) {
        g_printerr("saline: unexpected argument '%s'\n", argv[1]);
        return EXIT_USAGE;
    }
    rc = get("/v1/nodes", &answer);
    if (rc != EXIT_OK || !answer) {
        return rc;
    }
    add_cells(cells, g_strdup("Name"), g_strdup("Site"), g_strdup("State"),
              g_strdup("CPUs"), g_strdup("Memory"), g_strdup("VMs"),
              g_strdup("Error"), NULL);
    nodes = answer_array(answer, "nodes");
    for (guint i = 0; nodes && i < json_array_get_length(nodes); i++) {
        JsonObject *n = json_array_get_object_element(nodes, i);

        if (!n) {
            g_printerr("saline: bad answer from salined: node %u is not an "
                       "object\n", i);
            return EXIT_FAIL;
        }
        add_cells(
            cells,
            g_strdup(json_object_get_string_member_with_default(n, "name",
                                                                "-")),
            g_strdup(json_object_get_string_member_with_default(n, "site",
                                                                "-")),
            g_strdup(json_object_get_boolean_member_with_default(n, "up",
                                                                 FALSE)
                         ? "up"
                         : "down"),
            used_of(member_int(n, "used_cpus"), member_int(n, "cpus"), FALSE),
            used_of(member_int(n, "used_mem_mib"), member_int(n, "mem_mib"),
                    TRUE),
            g_strdup_printf("%" G_GINT64_FORMAT, member_int(n, "vms")),
            g_strdup(or_dash(json_object_get_string_member_with_default(
                n, "error", NULL))),
            NULL);
    }
    print_table(cells, 7);
    return EXIT_OK;
}

/* ---- log ---- */

static char *arg_vm;

static const GOptionEntry log_entries[] = {
    {"vm", 0, 0, G_OPTION_ARG_STRING, &arg_vm,
     "Only the output of VM I (0-based)", "I"},
    {NULL},
};

static const char log_help[] =
    "Description:\n"
    "  Prints the output (stdout and stderr, interleaved) of JOB's command\n"
    "  in each VM so far: read from the running VMs, or kept by salined\n"
    "  once the job ended. With several VMs, each line starts with\n"
    "  '[vm I] '. Bytes that are not UTF-8 show as U+FFFD.\n"
    "\n"
    "  Then on stderr, one line per VM: its node and the exit status of the\n"
    "  command ('running' while it has none), and whether the output was\n"
    "  cut because the VM's output drive filled up.\n";

static void
print_output(const char *text, const char *prefix)
{
    const char *line = text;

    if (!*prefix) {
        fputs(text, stdout);
        return;
    }
    while (*line) {
        const char *nl = strchr(line, '\n');
        gsize len = nl ? (gsize)(nl - line) : strlen(line);

        printf("%s%.*s\n", prefix, (int)len, line);
        line += len + (nl ? 1 : 0);
    }
}

static int
cmd_log(int argc, char **argv)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(JsonNode) answer = NULL;
    g_autofree char *path = NULL;
    JsonArray *vms;
    gint64 id, only = -1;
    guint shown = 0, n;
    int rc;

    if (!parse_options("log", "JOB", "Print the output of a job.", log_help,
                       log_entries, FALSE, FALSE, &argc, &argv)) {
        return EXIT_USAGE;
    }
    if (argc != 2) {
        g_printerr("saline: %s; see 'saline log --help'\n",
                   argc < 2 ? "missing JOB" : "one JOB only");
        return EXIT_USAGE;
    }
    if (!parse_job_id(argv[1], &id, &error) ||
        (arg_vm &&
         !parse_number("VM index", arg_vm, 0, SAL_MAX_VMS - 1, &only, &error))) {
        return usage_error(error);
    }
    path = g_strdup_printf("/v1/jobs/%" G_GINT64_FORMAT "/log", id);
    rc = call("GET", path, NULL, SOUP_STATUS_OK, &answer);
    if (rc != EXIT_OK) {
        return rc;
    }
    vms = answer_array(answer, "vms");
    n = vms ? json_array_get_length(vms) : 0;
    for (guint pass = 0; pass < 2; pass++) {
        for (guint i = 0; i < n; i++) {
            JsonObject *vm = json_array_get_object_element(vms, i);
            gint64 index = vm ? member_int(vm, "index") : -1;
            g_autofree char *prefix = NULL;

            if (!vm || (only >= 0 && index != only)) {
                continue;
            }
            if (pass == 0) {
                shown++;
                continue;
            }
            prefix = (only < 0 && n > 1)
                         ? g_strdup_printf("[vm %" G_GINT64_FORMAT "] ", index)
                         : g_strdup("");
            print_output(json_object_get_string_member_with_default(
                             vm, "output", ""),
                         prefix);
        }
        if (pass == 0 && shown == 0) {
            g_printerr("saline: job %" G_GINT64_FORMAT " has no VM %s\n", id,
                       arg_vm ? arg_vm : "");
            return EXIT_FAIL;
        }
    }
    fflush(stdout);
    for (guint i = 0; i < n; i++) {
        JsonObject *vm = json_array_get_object_element(vms, i);
        JsonNode *ex = vm ? json_object_get_member(vm, "exit_status") : NULL;

        if (!vm || (only >= 0 && member_int(vm, "index") != only)) {
            continue;
        }
        g_printerr("saline: vm %" G_GINT64_FORMAT " on %s: ",
                   member_int(vm, "index"),
                   or_dash(json_object_get_string_member_with_default(
                       vm, "node", NULL)));
        if (ex && JSON_NODE_HOLDS_VALUE(ex)) {
            g_printerr("exit %" G_GINT64_FORMAT, json_node_get_int(ex));
        } else if (g_strcmp0(json_object_get_string_member_with_default(
                                 vm, "state", NULL),
                             "dead") == 0) {
            g_printerr("no exit status, the VM died or was killed");
        } else {
            g_printerr("running");
        }
        g_printerr("%s\n", json_object_get_boolean_member_with_default(
                               vm, "truncated", FALSE)
                               ? ", output truncated"
                               : "");
    }
    return EXIT_OK;
}

/* ---- main ---- */

static const struct {
    const char *name;
    int (*func)(int argc, char **argv);
} commands[] = {
    {"submit", cmd_submit},   {"stat", cmd_stat},     {"del", cmd_del},
    {"suspend", cmd_suspend}, {"resume", cmd_resume}, {"nodes", cmd_nodes},
    {"log", cmd_log},
};

static const char main_help[] =
    "Commands:\n"
    "  submit   submit a job: VMs that run a command (as oarsub)\n"
    "  stat     show jobs, or one job in full (as oarstat)\n"
    "  del      cancel jobs (as oardel)\n"
    "  suspend  suspend best-effort jobs: snapshot, then free their nodes\n"
    "  resume   let suspended jobs run again from their snapshot\n"
    "  nodes    list the nodes and their use\n"
    "  log      print the output of a job's command in its VMs\n"
    "  'saline COMMAND --help' explains each.\n"
    "\n"
    "Description:\n"
    "  A Saline job is a set of identical QEMU VMs on the grid's nodes that\n"
    "  run one command, for at most a walltime. salined places and runs\n"
    "  them; this program asks it through its unix socket, which tells it\n"
    "  who you are: you see and cancel your own jobs (root: all).\n"
    "\n"
    "Environment:\n"
    "  SALINE_SOCKET  salined's socket, when --socket is not given\n"
    "\n";

int
main(int argc, char **argv)
{
    g_autoptr(GOptionContext) ctx =
        g_option_context_new("COMMAND [OPTION…] [ARG…]");
    g_autofree char *description =
        g_strconcat(main_help, exit_status_help, NULL);
    g_autoptr(GError) error = NULL;

    setlocale(LC_ALL, "");
    g_option_context_add_main_entries(ctx, global_entries, NULL);
    g_option_context_set_summary(
        ctx, "Submit VM jobs to salined and follow them.");
    g_option_context_set_description(ctx, description);
    /* Options after COMMAND are COMMAND's. */
    g_option_context_set_strict_posix(ctx, TRUE);
    if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
        return usage_error(error);
    }
    if (argc < 2) {
        g_printerr("saline: missing COMMAND: submit, stat, del, suspend, "
                   "resume, nodes or log; see --help\n");
        return EXIT_USAGE;
    }
    for (guint i = 0; i < G_N_ELEMENTS(commands); i++) {
        if (g_str_equal(argv[1], commands[i].name)) {
            return commands[i].func(argc - 1, argv + 1);
        }
    }
    g_printerr("saline: unknown command '%s'; see --help\n", argv[1]);
    return EXIT_USAGE;
}
