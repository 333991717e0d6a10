/*
 * OAR mode: OAR owns the nodes, salined asks it for them (saline/README.md,
 * "OAR mode"; the job script's messages are in docs/protocols.md, "Saline
 * OAR job notices").
 *
 * Every Saline job that needs nodes gets one OAR job named saline-<id>
 * (oarsub through the configured command prefix: ssh to the frontend).
 * Its script, saline-oarjob, tells salined when it starts on the first
 * node and when OAR's checkpoint signal reaches it; those notices only
 * wake salined up. What salined acts on is what oarstat says: the OAR
 * job's state, its hosts and its events (CHECKPOINT). So a notice from
 * anyone else costs one poll and decides nothing.
 *
 * The decisions are level-triggered, from the store and the last poll,
 * like the rest of the core:
 *   - a job that needs nodes (pending, or suspended and not held) with no
 *     live OAR job adopts a live one named after it (OAR's own
 *     resubmission of an idempotent best-effort job, or one submitted
 *     before a crash), else gets one submitted;
 *   - once that OAR job runs, the VMs are placed on its hosts, VM i on
 *     host i (modulo their number);
 *   - a running best-effort job whose OAR job got the checkpoint signal
 *     is suspended: final snapshot, VMs removed; then its OAR job is
 *     deleted so the nodes go back to OAR before its kill;
 *   - a job whose OAR job ended under it (killed without notice, deleted
 *     by an admin) lost its nodes: a best-effort job goes back to its
 *     latest snapshot, an idempotent one is requeued, any other fails;
 *   - a live OAR job named saline-<id> that no job needs any more (ended,
 *     held, or a duplicate) is deleted.
 * Nothing is decided before a poll has succeeded, and a failed poll
 * changes nothing: an unreachable OAR leaves running jobs alone.
 */
#include "sald-core-internal.h"

#include <string.h>

#include <json-glib/json-glib.h>

#define NOTICE_MAX 512
#define OAR_NAME_PREFIX "saline-"

struct SaldOar {
    SaldCore *core;
    const SaldOarConf *conf;
    GHashTable *jobs;  /* OAR id -> SaldOarJob *: live ones, last poll */
    GHashTable *ended; /* OAR id -> SaldOarJob *: ended for good */
    gboolean polled;   /* a poll has succeeded since start */
    char *error;       /* why the last poll failed, or NULL */
    gboolean polling;
    gboolean poll_again;
    gint64 last_poll;         /* monotonic, us */
    GHashTable *submitting;   /* Saline ids with an oarsub in flight */
    GHashTable *submitted_at; /* Saline id -> monotonic us of its last */
    GHashTable *deleting;     /* OAR ids with an oardel in flight */
    GHashTable *deleted;      /* OAR id -> monotonic us of its oardel */
    GSocketService *listener;
};

void
sald_oar_job_free(SaldOarJob *job)
{
    if (job) {
        g_free(job->name);
        g_free(job->state);
        g_free(job->owner);
        g_clear_pointer(&job->hosts, g_ptr_array_unref);
        g_free(job);
    }
}

GHashTable *
sald_oar_job_table_new(void)
{
    return g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free,
                                 (GDestroyNotify)sald_oar_job_free);
}

static gboolean
oar_state_live(const char *state)
{
    return !g_str_equal(state, "Terminated") && !g_str_equal(state, "Error");
}

/* The Saline job id in OAR job name @name, or 0. */
static gint64
name_job_id(const char *name)
{
    guint64 id = 0;

    if (!name || !g_str_has_prefix(name, OAR_NAME_PREFIX) ||
        !g_ascii_string_to_unsigned(name + strlen(OAR_NAME_PREFIX), 10, 1,
                                    G_MAXINT64, &id, NULL)) {
        return 0;
    }
    return (gint64)id;
}

/* ---- oarstat's JSON ---- */

/* The string @node holds, or NULL: oarstat's output is read, not
 * trusted, so a field of another type counts as absent. */
static const char *
node_string(JsonNode *node)
{
    if (!node || !JSON_NODE_HOLDS_VALUE(node) ||
        json_node_get_value_type(node) != G_TYPE_STRING) {
        return NULL;
    }
    return json_node_get_string(node);
}

static const char *
member_string(JsonObject *o, const char *name)
{
    return node_string(json_object_get_member(o, name));
}

/* Member @name of @o if it is an array, else NULL. */
static JsonArray *
member_array(JsonObject *o, const char *name)
{
    JsonNode *node = json_object_get_member(o, name);

    return node && JSON_NODE_HOLDS_ARRAY(node) ? json_node_get_array(node)
                                               : NULL;
}

/* Element @i of @a as a string: itself (@field NULL), or its member
 * @field if it is an object; NULL otherwise. */
static const char *
element_string(JsonArray *a, guint i, const char *field)
{
    JsonNode *e = json_array_get_element(a, i);

    if (!field) {
        return node_string(e);
    }
    return JSON_NODE_HOLDS_OBJECT(e)
               ? member_string(json_node_get_object(e), field)
               : NULL;
}

/* Array @member of @o has an element (or an element's @field) @value. */
static gboolean
array_has(JsonObject *o, const char *member, const char *field,
          const char *value)
{
    JsonArray *a = member_array(o, member);

    for (guint i = 0; a && i < json_array_get_length(a); i++) {
        if (g_strcmp0(element_string(a, i, field), value) == 0) {
            return TRUE;
        }
    }
    return FALSE;
}

static SaldOarJob *
oar_job_from_json(gint64 id, JsonObject *o)
{
    SaldOarJob *job = g_new0(SaldOarJob, 1);
    JsonArray *hosts = member_array(o, "assigned_network_address");

    job->id = id;
    job->name = g_strdup(member_string(o, "name"));
    job->state =
        g_strdup(member_string(o, "state") ? member_string(o, "state") : "NA");
    job->owner =
        g_strdup(member_string(o, "owner") ? member_string(o, "owner") : "");
    job->hosts = g_ptr_array_new_with_free_func(g_free);
    job->besteffort = array_has(o, "types", NULL, "besteffort");
    job->checkpoint = array_has(o, "events", "type", "CHECKPOINT");
    for (guint i = 0; hosts && i < json_array_get_length(hosts); i++) {
        const char *h = element_string(hosts, i, NULL);

        if (h && !g_ptr_array_find_with_equal_func(job->hosts, h, g_str_equal,
                                                   NULL)) {
            g_ptr_array_add(job->hosts, g_strdup(h));
        }
    }
    return job;
}

/*
 * `oarstat -f -J` output: an object of job id -> job, or null (no job).
 * Adds each job to @into (OAR id -> SaldOarJob *).
 */
gboolean
sald_oar_parse_stat(const char *text, GHashTable *into, GError **error)
{
    g_autoptr(JsonParser) parser = json_parser_new_immutable();
    g_autoptr(GError) local = NULL;
    g_autofree char *trimmed = g_strstrip(g_strdup(text));
    JsonNode *root;
    JsonObjectIter iter;
    const char *key;
    JsonNode *value;

    if (*trimmed == '\0') {
        return TRUE;
    }
    if (!json_parser_load_from_data(parser, trimmed, -1, &local)) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_NODE,
                    "oarstat answered no JSON: %s", local->message);
        return FALSE;
    }
    root = json_parser_get_root(parser);
    if (JSON_NODE_HOLDS_NULL(root)) {
        return TRUE;
    }
    if (!JSON_NODE_HOLDS_OBJECT(root)) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_NODE,
                    "oarstat answered JSON that is not an object of jobs");
        return FALSE;
    }
    json_object_iter_init(&iter, json_node_get_object(root));
    while (json_object_iter_next(&iter, &key, &value)) {
        guint64 id;

        if (!g_ascii_string_to_unsigned(key, 10, 1, G_MAXINT64, &id, NULL) ||
            !JSON_NODE_HOLDS_OBJECT(value)) {
            g_set_error(error, SAL_ERROR, SAL_ERROR_NODE,
                        "oarstat answered a job that is not one ('%.32s')",
                        key);
            return FALSE;
        }
        g_hash_table_insert(
            into, g_memdup2(&id, sizeof(gint64)),
            oar_job_from_json((gint64)id, json_node_get_object(value)));
    }
    return TRUE;
}

/* ---- OAR's commands, in worker threads ---- */

/* The argv of OAR command @first (then the rest, NULL-terminated):
 * under `timeout`, through the configured prefix. Built in the main
 * thread, so a worker never reads the configuration. */
static GPtrArray *
oar_argv(const SaldOarConf *conf, const char *first, ...)
{
    GPtrArray *argv = g_ptr_array_new_with_free_func(g_free);
    const char *arg;
    va_list ap;

    g_ptr_array_add(argv, g_strdup("timeout"));
    g_ptr_array_add(argv, g_strdup("-k"));
    g_ptr_array_add(argv, g_strdup("5"));
    g_ptr_array_add(argv, g_strdup_printf("%u", conf->timeout_s));
    for (guint i = 0; conf->command[i]; i++) {
        g_ptr_array_add(argv, g_strdup(conf->command[i]));
    }
    va_start(ap, first);
    for (arg = first; arg; arg = va_arg(ap, const char *)) {
        g_ptr_array_add(argv, g_strdup(arg));
    }
    va_end(ap);
    return argv;
}

/* Runs @argv (from oar_argv(), NULL-terminated by now); its standard
 * output in @out. @what names it in errors. */
static gboolean
oar_run(GPtrArray *argv, const char *what, char **out, GError **error)
{
    g_autofree char *stdout_text = NULL;
    g_autofree char *stderr_text = NULL;
    g_autoptr(GError) local = NULL;
    int status;

    if (!g_spawn_sync("/", (char **)argv->pdata, NULL, G_SPAWN_SEARCH_PATH,
                      NULL, NULL, &stdout_text, &stderr_text, &status,
                      &local)) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_NODE, "cannot run %s: %s", what,
                    local->message);
        return FALSE;
    }
    if (!g_spawn_check_wait_status(status, NULL)) {
        g_autofree char *why = g_strstrip(g_strdup(stderr_text));
        char *nl = strchr(why, '\n');

        if (nl) {
            *nl = '\0';
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) == 124) {
            g_set_error(error, SAL_ERROR, SAL_ERROR_NODE,
                        "%s took too long (timed out)", what);
        } else {
            g_set_error(error, SAL_ERROR, SAL_ERROR_NODE, "%s failed: %s", what,
                        *why ? why : "no message");
        }
        return FALSE;
    }
    if (out) {
        *out = g_steal_pointer(&stdout_text);
    }
    return TRUE;
}

typedef struct {
    SaldCore *core;
    GPtrArray *list;  /* argv: oarstat of Saline's user's live jobs */
    GArray *ask;      /* gint64: bound OAR ids whose end to learn */
    GPtrArray *asks;  /* argv each: their oarstat -j */
    GHashTable *live; /* results */
    GHashTable *ended;
} OarPoll;

static void
oar_poll_free(OarPoll *poll)
{
    g_ptr_array_unref(poll->list);
    g_array_unref(poll->ask);
    g_ptr_array_unref(poll->asks);
    g_clear_pointer(&poll->live, g_hash_table_unref);
    g_clear_pointer(&poll->ended, g_hash_table_unref);
    g_free(poll);
}

static void
poll_thread(GTask *task, gpointer source, gpointer data, GCancellable *cancel)
{
    OarPoll *poll = data;
    g_autofree char *text = NULL;
    GError *error = NULL;

    if (!oar_run(poll->list, "oarstat", &text, &error) ||
        !sald_oar_parse_stat(text, poll->live, &error)) {
        g_task_return_error(task, error);
        return;
    }
    /* A bound job gone from the live list has ended: how, oarstat -j
     * says (events too). One call each, so one unknown id spoils none. */
    for (guint i = 0; i < poll->ask->len; i++) {
        gint64 id = g_array_index(poll->ask, gint64, i);
        g_autofree char *one_text = NULL;
        g_autoptr(GError) local = NULL;

        if (g_hash_table_contains(poll->live, &id)) {
            continue;
        }
        if (!oar_run(poll->asks->pdata[i], "oarstat", &one_text, &local) ||
            !sald_oar_parse_stat(one_text, poll->ended, &local) ||
            !g_hash_table_contains(poll->ended, &id)) {
            /* No such job for OAR: it is gone all the same. */
            SaldOarJob *gone = g_new0(SaldOarJob, 1);

            gone->id = id;
            gone->state = g_strdup("Error");
            gone->hosts = g_ptr_array_new_with_free_func(g_free);
            g_hash_table_replace(poll->ended, g_memdup2(&id, sizeof(id)), gone);
        }
    }
    g_task_return_boolean(task, TRUE);
}

static gboolean
job_needs_nodes(const SalJob *job)
{
    return job->state == SAL_JOB_PENDING ||
           (job->state == SAL_JOB_SUSPENDED && !job->held);
}

static gboolean
job_holds_nodes(const SalJob *job)
{
    return job->state == SAL_JOB_STARTING || job->state == SAL_JOB_RUNNING ||
           job->state == SAL_JOB_SUSPENDING || job->state == SAL_JOB_RESUMING;
}

static void oar_poll_start(SaldOar *oar);

static void
poll_done(GObject *source, GAsyncResult *result, gpointer data)
{
    OarPoll *poll = g_task_get_task_data(G_TASK(result));
    SaldCore *core = poll->core;
    SaldOar *oar = core->oar;
    g_autoptr(GError) error = NULL;
    GHashTableIter iter;
    gpointer key, value;

    oar->polling = FALSE;
    oar->last_poll = g_get_monotonic_time();
    if (!g_task_propagate_boolean(G_TASK(result), &error)) {
        if (g_strcmp0(oar->error, error->message) != 0) {
            g_warning("OAR is unreachable: %s", error->message);
        }
        g_free(oar->error);
        oar->error = g_strdup(error->message);
    } else {
        if (oar->error) {
            g_message("OAR is reachable again");
        }
        g_clear_pointer(&oar->error, g_free);
        g_hash_table_remove_all(oar->jobs);
        g_hash_table_iter_init(&iter, poll->live);
        while (g_hash_table_iter_next(&iter, &key, &value)) {
            SaldOarJob *job = value;

            /* Other users' jobs are not ours to look at. */
            if (g_strcmp0(job->owner, oar->conf->user) != 0 ||
                !oar_state_live(job->state)) {
                continue;
            }
            g_hash_table_iter_steal(&iter);
            g_hash_table_insert(oar->jobs, key, job);
        }
        g_hash_table_iter_init(&iter, poll->ended);
        while (g_hash_table_iter_next(&iter, &key, &value)) {
            SaldOarJob *job = value;

            if (oar_state_live(job->state)) {
                /* Listed live by -j but not by -u: not Saline's user. */
                continue;
            }
            g_hash_table_iter_steal(&iter);
            g_hash_table_replace(oar->ended, key, job);
        }
        oar->polled = TRUE;
        sald_job_schedule_soon(core);
    }
    if (oar->poll_again) {
        oar->poll_again = FALSE;
        oar_poll_start(oar);
    }
}

static void
oar_poll_start(SaldOar *oar)
{
    g_autoptr(GTask) task = g_task_new(NULL, NULL, poll_done, NULL);
    g_autoptr(GPtrArray) jobs = NULL;
    OarPoll *poll;

    if (oar->polling) {
        oar->poll_again = TRUE;
        return;
    }
    poll = g_new0(OarPoll, 1);
    poll->core = oar->core;
    poll->list =
        oar_argv(oar->conf, "oarstat", "-f", "-J", "-u", oar->conf->user, NULL);
    g_ptr_array_add(poll->list, NULL);
    poll->ask = g_array_new(FALSE, FALSE, sizeof(gint64));
    poll->asks =
        g_ptr_array_new_with_free_func((GDestroyNotify)g_ptr_array_unref);
    poll->live = sald_oar_job_table_new();
    poll->ended = sald_oar_job_table_new();
    /* Only a job that holds nodes acts on its OAR job's end (ended jobs'
     * OAR jobs matter only while live, and the listing has those). */
    jobs = sal_store_load_active(oar->core->store, NULL, NULL);
    for (guint i = 0; jobs && i < jobs->len; i++) {
        const SalJob *job = jobs->pdata[i];

        if (job->oar_job_id > 0 && job_holds_nodes(job) &&
            !g_hash_table_contains(oar->ended, &job->oar_job_id)) {
            g_autofree char *id =
                g_strdup_printf("%" G_GINT64_FORMAT, job->oar_job_id);
            GPtrArray *argv =
                oar_argv(oar->conf, "oarstat", "-f", "-J", "-j", id, NULL);

            g_ptr_array_add(argv, NULL);
            g_array_append_val(poll->ask, job->oar_job_id);
            g_ptr_array_add(poll->asks, argv);
        }
    }
    oar->polling = TRUE;
    g_task_set_task_data(task, poll, (GDestroyNotify)oar_poll_free);
    g_task_run_in_thread(task, poll_thread);
}

/* ---- submit and delete ---- */

typedef struct {
    SaldCore *core;
    gint64 job_id;
    gint64 oar_id;
    GPtrArray *argv; /* from oar_argv() */
    const char *what;
} OarCall;

static void
oar_call_free(OarCall *call)
{
    g_ptr_array_unref(call->argv);
    g_free(call);
}

static void
call_thread(GTask *task, gpointer source, gpointer data, GCancellable *cancel)
{
    OarCall *call = data;
    g_autofree char *out = NULL;
    GError *error = NULL;
    const char *line;

    if (!oar_run(call->argv, call->what, &out, &error)) {
        g_task_return_error(task, error);
        return;
    }
    line = out ? strstr(out, "OAR_JOB_ID=") : NULL;
    if (line) {
        guint64 id = 0;
        g_autofree char *digits =
            g_strndup(line + 11, strspn(line + 11, "0123456789"));

        if (g_ascii_string_to_unsigned(digits, 10, 1, G_MAXINT64, &id, NULL)) {
            call->oar_id = (gint64)id;
        }
    }
    g_task_return_boolean(task, TRUE);
}

/* Runs @argv (from oar_argv(), taken) in a worker thread. */
static void
oar_call(SaldCore *core, gint64 job_id, gint64 oar_id, GPtrArray *argv,
         const char *what, GAsyncReadyCallback done)
{
    g_autoptr(GTask) task = g_task_new(NULL, NULL, done, NULL);
    OarCall *call = g_new0(OarCall, 1);

    call->core = core;
    call->job_id = job_id;
    call->oar_id = oar_id;
    call->argv = argv;
    call->what = what;
    g_ptr_array_add(argv, NULL);
    g_task_set_task_data(task, call, (GDestroyNotify)oar_call_free);
    g_task_run_in_thread(task, call_thread);
}

static void
delete_done(GObject *source, GAsyncResult *result, gpointer data)
{
    OarCall *call = g_task_get_task_data(G_TASK(result));
    SaldOar *oar = call->core->oar;
    g_autoptr(GError) error = NULL;

    g_hash_table_remove(oar->deleting, &call->oar_id);
    /* OAR's answer when another kill (its own, or one of ours) is under
     * way: the job is going, as asked. */
    if (!g_task_propagate_boolean(G_TASK(result), &error) &&
        !strstr(error->message, "already killed")) {
        g_warning("cannot delete OAR job %" G_GINT64_FORMAT ": %s",
                  call->oar_id, error->message);
        return;
    }
    g_hash_table_insert(
        oar->deleted, g_memdup2(&call->oar_id, sizeof(gint64)),
        g_memdup2(&(gint64){g_get_monotonic_time()}, sizeof(gint64)));
    g_message("OAR job %" G_GINT64_FORMAT " deleted", call->oar_id);
    oar_poll_start(oar);
}

static void
oar_delete(SaldCore *core, gint64 oar_id, const char *why)
{
    SaldOar *oar = core->oar;
    g_autofree char *id = g_strdup_printf("%" G_GINT64_FORMAT, oar_id);
    gint64 *at = g_hash_table_lookup(oar->deleted, &oar_id);

    /* OAR takes a moment to end a job: one oardel, then one a minute
     * while OAR still lists it live. */
    if (g_hash_table_contains(oar->deleting, &oar_id) ||
        (at && g_get_monotonic_time() - *at < 60 * G_USEC_PER_SEC)) {
        return;
    }
    g_message("deleting OAR job %" G_GINT64_FORMAT ": %s", oar_id, why);
    sald_id_set_add(oar->deleting, oar_id);
    oar_call(core, 0, oar_id, oar_argv(oar->conf, "oardel", id, NULL), "oardel",
             delete_done);
}

static void
submit_done(GObject *source, GAsyncResult *result, gpointer data)
{
    OarCall *call = g_task_get_task_data(G_TASK(result));
    SaldCore *core = call->core;
    SaldOar *oar = core->oar;
    g_autoptr(GError) error = NULL;
    g_autoptr(SalJob) job = NULL;

    g_hash_table_remove(oar->submitting, &call->job_id);
    if (!g_task_propagate_boolean(G_TASK(result), &error)) {
        g_warning("job %" G_GINT64_FORMAT ": oarsub: %s", call->job_id,
                  error->message);
        sald_event(core, call->job_id, "cannot submit its OAR job: %s",
                   error->message);
        return;
    }
    if (call->oar_id == 0) {
        g_warning("job %" G_GINT64_FORMAT ": oarsub printed no OAR_JOB_ID",
                  call->job_id);
        return;
    }
    job = sald_job_load(core, call->job_id, NULL);
    if (!job) {
        return;
    }
    job->oar_job_id = call->oar_id;
    if (sald_job_save(core, job, NULL)) {
        sald_event(core, job->id, "OAR job %" G_GINT64_FORMAT " submitted",
                   call->oar_id);
    }
    /* Ended or held meanwhile: the next pass deletes it. */
    oar_poll_start(oar);
}

static char *
oar_walltime(const SaldOarConf *conf, const SalJob *job)
{
    gint64 s =
        MAX(job->walltime_s - job->elapsed_s, 1) + conf->walltime_margin_s;

    return g_strdup_printf("%" G_GINT64_FORMAT ":%02d:%02d", s / 3600,
                           (int)(s / 60 % 60), (int)(s % 60));
}

static void
oar_submit(SaldCore *core, const SalJob *job)
{
    SaldOar *oar = core->oar;
    const SaldOarConf *conf = oar->conf;
    GPtrArray *args = oar_argv(conf, "oarsub", NULL);
    g_autofree char *wall = oar_walltime(conf, job);
    g_autofree char *script = NULL;
    g_autofree char *q_cmd = g_shell_quote(conf->job_command);
    g_autofree char *q_notify =
        g_strdup_printf("%s:%u", conf->notify_host, conf->notify_port);
    g_autofree char *q_notify_quoted = g_shell_quote(q_notify);

    /* oarexec runs it with the user's login shell, and signals only the
     * process it started: exec, so that is saline-oarjob whatever the
     * shell (dash would fork it and die of the signal). */
    script = g_strdup_printf(
        "exec %s --notify %s --signal %u --job %" G_GINT64_FORMAT, q_cmd,
        q_notify_quoted, conf->signal, job->id);
    g_ptr_array_add(args, g_strdup("-n"));
    g_ptr_array_add(
        args, g_strdup_printf(OAR_NAME_PREFIX "%" G_GINT64_FORMAT, job->id));
    g_ptr_array_add(args, g_strdup("-l"));
    g_ptr_array_add(args, g_strdup_printf("/host=%u/core=%u,walltime=%s",
                                          job->n_vms, job->cpus, wall));
    g_ptr_array_add(args, g_strdup("-d"));
    g_ptr_array_add(args, g_strdup("/tmp"));
    g_ptr_array_add(args, g_strdup("-O"));
    g_ptr_array_add(args, g_strdup("/dev/null"));
    g_ptr_array_add(args, g_strdup("-E"));
    g_ptr_array_add(args, g_strdup("/dev/null"));
    if (job->besteffort) {
        g_ptr_array_add(args, g_strdup("-t"));
        g_ptr_array_add(args, g_strdup("besteffort"));
        g_ptr_array_add(args, g_strdup("-t"));
        g_ptr_array_add(args, g_strdup("idempotent"));
        g_ptr_array_add(args, g_strdup("--checkpoint"));
        g_ptr_array_add(args, g_strdup_printf("%u", conf->checkpoint_s));
        g_ptr_array_add(args, g_strdup("--signal"));
        g_ptr_array_add(args, g_strdup_printf("%u", conf->signal));
    }
    g_ptr_array_add(args, g_steal_pointer(&script));
    sald_id_set_add(oar->submitting, job->id);
    g_hash_table_insert(
        oar->submitted_at, g_memdup2(&job->id, sizeof(gint64)),
        g_memdup2(&(gint64){g_get_monotonic_time()}, sizeof(gint64)));
    g_message("job %" G_GINT64_FORMAT ": submitting its OAR job", job->id);
    oar_call(core, job->id, 0, args, "oarsub", submit_done);
}

/* ---- decisions ---- */

/* A live OAR job named after @job that no other job is bound to. */
static SaldOarJob *
find_adoptable(SaldOar *oar, const SalJob *job)
{
    GHashTableIter iter;
    gpointer value;
    SaldOarJob *best = NULL;

    g_hash_table_iter_init(&iter, oar->jobs);
    while (g_hash_table_iter_next(&iter, NULL, &value)) {
        SaldOarJob *o = value;

        if (name_job_id(o->name) == job->id && !o->checkpoint &&
            !g_hash_table_contains(oar->deleting, &o->id) &&
            (!best || o->id > best->id)) {
            best = o;
        }
    }
    return best;
}

static void
bind(SaldCore *core, SalJob *job, const SaldOarJob *o)
{
    job->oar_job_id = o->id;
    if (sald_job_save(core, job, NULL)) {
        sald_event(core, job->id, "OAR job %" G_GINT64_FORMAT " (%s) adopted",
                   o->id, o->state);
    }
}

/* Places @job's VMs on @o's hosts, if salined knows them all and they
 * are up. */
static void
place_on(SaldCore *core, SalJob *job, const SaldOarJob *o)
{
    g_autoptr(GPtrArray) vms = NULL;
    g_autoptr(SalJob) fresh = NULL;
    SalPlacement placement = {.job_id = job->id};
    g_autofree char **nodes = g_new0(char *, job->n_vms + 1);

    if (o->hosts->len == 0) {
        return;
    }
    for (guint i = 0; i < o->hosts->len; i++) {
        const char *h = o->hosts->pdata[i];

        if (!sald_config_node(core->config, h)) {
            g_autofree char *why = g_strdup_printf(
                "OAR job %" G_GINT64_FORMAT " got node '%s', which salined "
                "does not know ([node %s])",
                o->id, h, h);

            sald_event(core, job->id, "%s", why);
            sald_job_end(core, job, NULL, SAL_JOB_FAILED, why);
            return;
        }
        if (!sald_node_ready(sald_node_get(core, h))) {
            return; /* connecting: the next pass */
        }
    }
    for (guint i = 0; i < job->n_vms; i++) {
        nodes[i] = o->hosts->pdata[i % o->hosts->len];
    }
    placement.nodes = nodes;
    sald_event(core, job->id, "OAR job %" G_GINT64_FORMAT " runs on %u node%s",
               o->id, o->hosts->len, o->hosts->len == 1 ? "" : "s");
    if (job->state == SAL_JOB_PENDING) {
        sald_job_start_on(core, job, &placement);
        return;
    }
    fresh = sald_job_load(core, job->id, &vms);
    if (fresh && !sald_job_busy(core, job->id)) {
        sald_job_resume_on(core, fresh, vms, &placement);
    }
}

/* @job's OAR job ended under it: its nodes are OAR's again. */
static void
nodes_lost(SaldCore *core, SalJob *job, const SaldOarJob *o)
{
    g_autoptr(GPtrArray) vms = NULL;
    g_autoptr(SalJob) fresh = NULL;
    g_autofree char *why = g_strdup_printf("OAR job %" G_GINT64_FORMAT
                                           " ended (%s) without notice",
                                           o->id, o->state);

    if (job->state == SAL_JOB_SUSPENDING || sald_job_busy(core, job->id)) {
        return; /* its final snapshot goes on, or an operation is out */
    }
    if (job->state == SAL_JOB_RUNNING && sald_job_rollback(core, job, why)) {
        /* No final snapshot: the nodes are not ours to run it on. */
        sald_id_set_add(core->snap_skip, job->id);
        sald_job_reconcile(core, job->id);
        return;
    }
    if (job->idempotent &&
        (job->state == SAL_JOB_RUNNING || job->state == SAL_JOB_STARTING)) {
        g_message("job %" G_GINT64_FORMAT ": %s, to be requeued", job->id, why);
        sald_event(core, job->id, "%s: requeued", why);
        sald_id_set_add(core->requeue, job->id);
        sald_job_reconcile(core, job->id);
        return;
    }
    if (job->state == SAL_JOB_RESUMING) {
        return; /* its redeploy fails or runs on; decided once it has */
    }
    fresh = sald_job_load(core, job->id, &vms);
    if (fresh) {
        sald_job_end(core, fresh, vms, SAL_JOB_FAILED, why);
        sald_job_reconcile(core, fresh->id);
    }
}

static void
job_pass(SaldCore *core, SalJob *job)
{
    SaldOar *oar = core->oar;
    SaldOarJob *o = job->oar_job_id
                        ? g_hash_table_lookup(oar->jobs, &job->oar_job_id)
                        : NULL;
    SaldOarJob *gone = job->oar_job_id
                           ? g_hash_table_lookup(oar->ended, &job->oar_job_id)
                           : NULL;

    if (job->state != SAL_JOB_SUSPENDING) {
        g_hash_table_remove(core->snap_skip, &job->id);
    }
    if (job_needs_nodes(job)) {
        if (o && o->checkpoint) {
            /* The nodes it gave up: back to OAR now, not at the kill. */
            oar_delete(core, o->id, "its job gave the nodes back");
            return;
        }
        if (!o) {
            SaldOarJob *adopt = find_adoptable(oar, job);
            gint64 *at = g_hash_table_lookup(oar->submitted_at, &job->id);

            if (adopt) {
                bind(core, job, adopt);
                o = adopt;
            } else if (!g_hash_table_contains(oar->submitting, &job->id) &&
                       (!at || g_get_monotonic_time() - *at >
                                   2 * oar->conf->poll_s * G_USEC_PER_SEC)) {
                oar_submit(core, job);
                return;
            } else {
                return;
            }
        }
        if (g_str_equal(o->state, "Running") && !sald_job_busy(core, job->id)) {
            place_on(core, job, o);
        }
        return;
    }
    if (!job_holds_nodes(job) || job->oar_job_id == 0) {
        return;
    }
    if (!o) {
        if (gone) {
            nodes_lost(core, job, gone);
        }
        return;
    }
    if (o->checkpoint && job->state == SAL_JOB_RUNNING && job->besteffort &&
        sald_snapshots_on(core) && !sald_job_busy(core, job->id)) {
        g_autofree char *why = g_strdup_printf(
            "OAR job %" G_GINT64_FORMAT " got the checkpoint signal: OAR "
            "takes the nodes back within %u s",
            o->id, oar->conf->checkpoint_s);

        if (sald_job_suspend(core, job, FALSE, why)) {
            sald_job_reconcile(core, job->id);
        }
    }
}

/* Live OAR jobs named saline-<id> that no job holds or waits on. */
static void
orphans_pass(SaldCore *core)
{
    SaldOar *oar = core->oar;
    GHashTableIter iter;
    gpointer value;

    g_hash_table_iter_init(&iter, oar->jobs);
    while (g_hash_table_iter_next(&iter, NULL, &value)) {
        SaldOarJob *o = value;
        gint64 id = name_job_id(o->name);
        g_autoptr(SalJob) job = NULL;

        if (id == 0 || g_hash_table_contains(oar->submitting, &id)) {
            continue;
        }
        job = sal_store_load_job(core->store, id, NULL, NULL);
        if (job && job->oar_job_id == o->id &&
            (job_holds_nodes(job) ||
             (job_needs_nodes(job) && !o->checkpoint))) {
            continue;
        }
        oar_delete(core, o->id,
                   !job                       ? "no such Saline job"
                   : job->oar_job_id != o->id ? "not the Saline job's own"
                   : sal_job_state_is_terminal(job->state)
                       ? "its Saline job has ended"
                       : "its Saline job does not need the nodes now");
    }
}

void
sald_oar_schedule(SaldCore *core)
{
    SaldOar *oar = core->oar;
    g_autoptr(GPtrArray) jobs = NULL;
    g_autoptr(GError) error = NULL;

    if (!oar->polled) {
        return;
    }
    jobs = sal_store_load_active(core->store, NULL, &error);
    if (!jobs) {
        g_warning("cannot load the jobs: %s", error->message);
        return;
    }
    for (guint i = 0; i < jobs->len; i++) {
        SalJob *job = jobs->pdata[i];

        if (!sald_job_busy(core, job->id)) {
            job_pass(core, job);
        }
    }
    orphans_pass(core);
}

/* ---- polls and notices ---- */

void
sald_oar_tick(SaldCore *core)
{
    SaldOar *oar = core->oar;

    if (!oar->polling && g_get_monotonic_time() - oar->last_poll >=
                             (gint64)oar->conf->poll_s * G_USEC_PER_SEC) {
        oar_poll_start(oar);
    }
}

gboolean
sald_oar_check_reachable(SaldCore *core, GError **error)
{
    SaldOar *oar = core->oar;

    if (oar->error) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_EXHAUSTED,
                    "OAR is unreachable, no job can be submitted now: %s",
                    oar->error);
        return FALSE;
    }
    return TRUE;
}

/* A notice wakes a poll up, in the main thread. */
static gboolean
notice_wake(gpointer data)
{
    SaldCore *core = data;

    oar_poll_start(core->oar);
    return G_SOURCE_REMOVE;
}

/* One line from a job script (docs/protocols.md, "Saline OAR job
 * notices"), in a service thread: read, logged, answered, then a poll. */
static gboolean
notice_run(GThreadedSocketService *service, GSocketConnection *connection,
           GObject *source, gpointer data)
{
    SaldCore *core = data;
    GSocket *socket = g_socket_connection_get_socket(connection);
    GInputStream *in = g_io_stream_get_input_stream(G_IO_STREAM(connection));
    GOutputStream *out = g_io_stream_get_output_stream(G_IO_STREAM(connection));
    char buf[NOTICE_MAX + 1];
    gsize got = 0;
    g_auto(GStrv) words = NULL;
    char *nl = NULL;

    g_socket_set_timeout(socket, 5);
    while (got < NOTICE_MAX && !nl) {
        gssize n =
            g_input_stream_read(in, buf + got, NOTICE_MAX - got, NULL, NULL);

        if (n <= 0) {
            return TRUE;
        }
        got += (gsize)n;
        buf[got] = '\0';
        nl = memchr(buf, '\n', got);
    }
    if (!nl) {
        return TRUE;
    }
    *nl = '\0';
    if (!g_str_is_ascii(buf)) {
        return TRUE;
    }
    words = g_strsplit(buf, " ", 8);
    if (g_strv_length(words) < 3 || !g_str_equal(words[0], "saline-oarjob") ||
        !g_str_equal(words[1], "1")) {
        g_output_stream_write_all(out, "error unknown notice\n", 21, NULL, NULL,
                                  NULL);
        return TRUE;
    }
    g_message("OAR job notice: %s", buf + strlen("saline-oarjob 1 "));
    g_output_stream_write_all(out, "ok\n", 3, NULL, NULL, NULL);
    g_main_context_invoke(NULL, notice_wake, core);
    return TRUE;
}

SaldOar *
sald_oar_new(SaldCore *core, GError **error)
{
    g_autoptr(GSocketAddress) address = NULL;
    g_autoptr(GInetAddress) inet = NULL;
    SaldOar *oar = g_new0(SaldOar, 1);

    oar->core = core;
    oar->conf = core->config->oar;
    oar->jobs = sald_oar_job_table_new();
    oar->ended = sald_oar_job_table_new();
    oar->submitting = sald_id_set_new();
    oar->submitted_at =
        g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, g_free);
    oar->deleting = sald_id_set_new();
    oar->deleted =
        g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, g_free);
    oar->last_poll =
        g_get_monotonic_time() - (gint64)oar->conf->poll_s * G_USEC_PER_SEC;
    inet = g_inet_address_new_from_string(oar->conf->notify_host);
    if (!inet) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                    "[oar] notify: '%s' is not an IP address",
                    oar->conf->notify_host);
        sald_oar_free(oar);
        return NULL;
    }
    address = g_inet_socket_address_new(inet, oar->conf->notify_port);
    oar->listener = g_threaded_socket_service_new(4);
    if (!g_socket_listener_add_address(
            G_SOCKET_LISTENER(oar->listener), address, G_SOCKET_TYPE_STREAM,
            G_SOCKET_PROTOCOL_TCP, NULL, NULL, error)) {
        g_prefix_error(error, "cannot listen on %s:%u for OAR job notices: ",
                       oar->conf->notify_host, oar->conf->notify_port);
        sald_oar_free(oar);
        return NULL;
    }
    g_signal_connect(oar->listener, "run", G_CALLBACK(notice_run), core);
    g_socket_service_start(oar->listener);
    return oar;
}

void
sald_oar_free(SaldOar *oar)
{
    if (!oar) {
        return;
    }
    if (oar->listener) {
        g_socket_service_stop(oar->listener);
        g_socket_listener_close(G_SOCKET_LISTENER(oar->listener));
        g_object_unref(oar->listener);
    }
    g_hash_table_unref(oar->jobs);
    g_hash_table_unref(oar->ended);
    g_hash_table_unref(oar->submitting);
    g_hash_table_unref(oar->submitted_at);
    g_hash_table_unref(oar->deleting);
    g_hash_table_unref(oar->deleted);
    g_free(oar->error);
    g_free(oar);
}

gboolean
sald_oar_idle(SaldCore *core)
{
    SaldOar *oar = core->oar;

    return !oar->polling && g_hash_table_size(oar->submitting) == 0 &&
           g_hash_table_size(oar->deleting) == 0;
}
