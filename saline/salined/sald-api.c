#include "sald-api.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <libsoup/soup.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "sal-json.h"

struct SaldApi {
    SaldCore *core;
    char *path;
    GSocket *socket;
    SoupServer *server;
    /* Cancelled by sald_api_free(): log requests still in the core. */
    GCancellable *cancel;
};

typedef struct {
    SaldApi *api;
    SoupServerMessage *msg;
    guint32 uid;
    gint64 id; /* of the job the path names */
    GHashTable *query;
} Request;

typedef void (*RouteFunc)(Request *req);

/* ---- answers ---- */

static void
reply_json(SoupServerMessage *msg, guint status, JsonNode *node)
{
    char *text = sal_json_to_string(node);

    soup_server_message_set_status(msg, status, NULL);
    soup_server_message_set_response(msg, "application/json",
                                     SOUP_MEMORY_TAKE, text, strlen(text));
}

/* Answers @node, and drops it. */
static void
reply_take(SoupServerMessage *msg, guint status, JsonNode *node)
{
    reply_json(msg, status, node);
    json_node_unref(node);
}

static JsonNode *
object_node(JsonObject *o)
{
    JsonNode *node = json_node_new(JSON_NODE_OBJECT);

    json_node_take_object(node, o);
    return node;
}

/* Answers {"@name": @list}. */
static void
reply_array(SoupServerMessage *msg, const char *name, JsonArray *list)
{
    JsonObject *o = json_object_new();

    json_object_set_array_member(o, name, list);
    reply_take(msg, SOUP_STATUS_OK, object_node(o));
}

static void G_GNUC_PRINTF(3, 4)
reply_error(SoupServerMessage *msg, guint status, const char *format, ...)
{
    g_autofree char *message = NULL;
    JsonObject *o = json_object_new();
    va_list ap;

    va_start(ap, format);
    message = g_strdup_vprintf(format, ap);
    va_end(ap);
    g_debug("answer %u: %s", status, message);
    json_object_set_string_member(o, "error", message);
    reply_take(msg, status, object_node(o));
}

/* The statuses of sald-core.h. */
static guint
error_status(const GError *error)
{
    if (error->domain != SAL_ERROR) {
        return SOUP_STATUS_INTERNAL_SERVER_ERROR;
    }
    switch (error->code) {
    case SAL_ERROR_INVALID:
        return SOUP_STATUS_BAD_REQUEST;
    case SAL_ERROR_NOT_FOUND:
        return SOUP_STATUS_NOT_FOUND;
    case SAL_ERROR_STATE:
    case SAL_ERROR_CONFLICT:
        return SOUP_STATUS_CONFLICT;
    case SAL_ERROR_EXHAUSTED:
        return SOUP_STATUS_SERVICE_UNAVAILABLE;
    default:
        return SOUP_STATUS_INTERNAL_SERVER_ERROR;
    }
}

static void
reply_gerror(SoupServerMessage *msg, const GError *error)
{
    reply_error(msg, error_status(error), "%s", error->message);
}

/* ---- body limit ---- */

static void
too_large(SoupServerMessage *msg)
{
    SoupMessageBody *body = soup_server_message_get_request_body(msg);

    /* libsoup still reads the rest of the body: into nothing. */
    soup_message_body_set_accumulate(body, FALSE);
    soup_message_body_truncate(body);
    reply_error(msg, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE,
                "request body is larger than %d bytes", SAL_JSON_MAX_BODY);
}

static void
on_got_headers(SoupServerMessage *msg, gpointer data)
{
    SoupMessageHeaders *h = soup_server_message_get_request_headers(msg);

    if (soup_server_message_get_status(msg) == 0 &&
        soup_message_headers_get_encoding(h) == SOUP_ENCODING_CONTENT_LENGTH &&
        soup_message_headers_get_content_length(h) > SAL_JSON_MAX_BODY) {
        too_large(msg);
    }
}

/* Chunked bodies announce no length. */
static void
on_got_chunk(SoupServerMessage *msg, GBytes *chunk, gpointer data)
{
    SoupMessageBody *body = soup_server_message_get_request_body(msg);

    if (soup_server_message_get_status(msg) == 0 &&
        body->length > SAL_JSON_MAX_BODY) {
        too_large(msg);
    }
}

static void
on_request_started(SoupServer *server, SoupServerMessage *msg, gpointer data)
{
    g_signal_connect(msg, "got-headers", G_CALLBACK(on_got_headers), NULL);
    g_signal_connect(msg, "got-chunk", G_CALLBACK(on_got_chunk), NULL);
}

/* ---- routes ---- */

static void
set_location(Request *req, gint64 id)
{
    g_autofree char *location =
        g_strdup_printf("/v1/jobs/%" G_GINT64_FORMAT, id);

    soup_message_headers_replace(
        soup_server_message_get_response_headers(req->msg), "Location",
        location);
}

static void job_reply(Request *req, guint status);

/*
 * @job was refused as a conflict: if its owner already has a job with
 * its idempotency key, the submission is a repeat (a client retrying
 * after a lost answer) and is answered that job, 200, or 409 if it
 * differs from what was submitted with the key then. FALSE if there is
 * no such job: the conflict was another one.
 *
 * A repeat is rare and the core has no lookup by key: the caller's jobs
 * are scanned, as GET /v1/jobs?all=1 does.
 */
static gboolean
submit_repeated(Request *req, const SalJob *job)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) jobs =
        sald_core_list_jobs(req->api->core, req->uid, TRUE, NULL, &error);
    const SalJob *stored = NULL;

    if (!jobs) {
        g_debug("cannot look up idempotency key '%s': %s", job->idempotency_key,
                error->message);
        return FALSE;
    }
    /* Root sees every job: the owner tells its own. */
    for (guint i = 0; i < jobs->len && !stored; i++) {
        const SalJob *j = g_ptr_array_index(jobs, i);

        if (j->owner_uid == job->owner_uid &&
            g_strcmp0(j->idempotency_key, job->idempotency_key) == 0) {
            stored = j;
        }
    }
    if (!stored) {
        return FALSE;
    }
    if (!sal_job_same_submission(stored, job)) {
        reply_error(req->msg, SOUP_STATUS_CONFLICT,
                    "idempotency key reused with a different submission "
                    "(job %" G_GINT64_FORMAT ")",
                    stored->id);
        return TRUE;
    }
    g_message("job %" G_GINT64_FORMAT ": submitted again by uid "
              "%" G_GUINT32_FORMAT " with its idempotency key, not stored "
              "again",
              stored->id, req->uid);
    req->id = stored->id;
    set_location(req, stored->id);
    job_reply(req, SOUP_STATUS_OK);
    return TRUE;
}

static void
jobs_submit(Request *req)
{
    SoupMessageBody *body = soup_server_message_get_request_body(req->msg);
    g_autoptr(GBytes) bytes = soup_message_body_flatten(body);
    g_autoptr(GError) error = NULL;
    g_autoptr(JsonNode) node = NULL;
    g_autoptr(SalJob) job = NULL;
    gsize len;
    const char *data = g_bytes_get_data(bytes, &len);

    node = sal_json_parse(data ? data : "", len, &error);
    if (node) {
        job = sal_job_from_submission(node, &error);
    }
    if (!job) {
        reply_gerror(req->msg, error);
        return;
    }
    /* The core sets it too; set here, a job it refuses still names the
     * owner a repeat is looked up for. */
    job->owner_uid = req->uid;
    if (!sald_core_submit(req->api->core, req->uid, job, &error)) {
        if (job->idempotency_key &&
            g_error_matches(error, SAL_ERROR, SAL_ERROR_CONFLICT) &&
            submit_repeated(req, job)) {
            return;
        }
        reply_gerror(req->msg, error);
        return;
    }
    set_location(req, job->id);
    reply_take(req->msg, SOUP_STATUS_CREATED, sal_job_to_json(job, NULL));
}

/* "all" of GET /v1/jobs: a boolean, no other parameter. */
static gboolean
query_all(Request *req, gboolean *all)
{
    GHashTableIter iter;
    const char *key, *value;

    *all = FALSE;
    if (!req->query) {
        return TRUE;
    }
    g_hash_table_iter_init(&iter, req->query);
    while (g_hash_table_iter_next(&iter, (gpointer *)&key, (gpointer *)&value)) {
        g_autofree char *k = g_strescape(key, NULL);
        g_autofree char *v = g_strescape(value, NULL);

        if (!g_str_equal(key, "all")) {
            reply_error(req->msg, SOUP_STATUS_BAD_REQUEST,
                        "unknown query parameter '%.64s'", k);
            return FALSE;
        }
        if (g_str_equal(value, "1") || g_str_equal(value, "true")) {
            *all = TRUE;
        } else if (!g_str_equal(value, "0") && !g_str_equal(value, "false")) {
            reply_error(req->msg, SOUP_STATUS_BAD_REQUEST,
                        "invalid value '%.64s' of 'all': use 1 or 0", v);
            return FALSE;
        }
    }
    return TRUE;
}

static void
jobs_list(Request *req)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) jobs = NULL;
    g_autoptr(GPtrArray) vms = NULL;
    g_autoptr(GPtrArray) job_vms = g_ptr_array_new();
    JsonArray *list;
    gboolean all;
    guint v = 0;

    if (!query_all(req, &all)) {
        return;
    }
    jobs = sald_core_list_jobs(req->api->core, req->uid, all, &vms, &error);
    if (!jobs) {
        reply_gerror(req->msg, error);
        return;
    }
    list = json_array_new();
    for (guint i = 0; i < jobs->len; i++) {
        const SalJob *job = g_ptr_array_index(jobs, i);

        /* The VMs come by job, in the order of the jobs. */
        g_ptr_array_set_size(job_vms, 0);
        while (vms && v < vms->len &&
               ((SalVm *)g_ptr_array_index(vms, v))->job_id == job->id) {
            g_ptr_array_add(job_vms, g_ptr_array_index(vms, v++));
        }
        json_array_add_element(list, sal_job_to_json(job, job_vms));
    }
    reply_array(req->msg, "jobs", list);
}

static void
job_reply(Request *req, guint status)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) vms = NULL;
    g_autoptr(SalJob) job =
        sald_core_get_job(req->api->core, req->uid, req->id, &vms, &error);

    if (!job) {
        reply_gerror(req->msg, error);
        return;
    }
    reply_take(req->msg, status, sal_job_to_json(job, vms));
}

static void
job_get(Request *req)
{
    job_reply(req, SOUP_STATUS_OK);
}

/* The core's calls that change a job and answer nothing. */
typedef gboolean (*JobActionFunc)(SaldCore *core, guint32 uid, gint64 id,
                                  GError **error);

/* Does @action to the job, answers the job as it is now. */
static void
job_act(Request *req, JobActionFunc action)
{
    g_autoptr(GError) error = NULL;

    if (!action(req->api->core, req->uid, req->id, &error)) {
        reply_gerror(req->msg, error);
        return;
    }
    job_reply(req, SOUP_STATUS_OK);
}

/* POSTs that carry no data: a body is a client that expects otherwise,
 * refused rather than ignored. */
static gboolean
body_empty(Request *req)
{
    SoupMessageBody *body = soup_server_message_get_request_body(req->msg);

    if (body->length > 0) {
        reply_error(req->msg, SOUP_STATUS_BAD_REQUEST,
                    "this request takes no body");
        return FALSE;
    }
    return TRUE;
}

static void
job_cancel(Request *req)
{
    job_act(req, sald_core_cancel);
}

static void
job_suspend(Request *req)
{
    if (body_empty(req)) {
        job_act(req, sald_core_suspend);
    }
}

static void
job_resume(Request *req)
{
    if (body_empty(req)) {
        job_act(req, sald_core_resume);
    }
}

static JsonArray *
snapshots_to_json(GPtrArray *snapshots)
{
    JsonArray *list = json_array_new();

    for (guint i = 0; snapshots && i < snapshots->len; i++) {
        const SalSnapshot *snap = g_ptr_array_index(snapshots, i);
        JsonObject *o = json_object_new();

        json_object_set_int_member(o, "seq", snap->seq);
        json_object_set_int_member(o, "time", snap->time);
        json_object_set_int_member(o, "pause_ms", snap->pause_ms);
        json_object_set_int_member(o, "bytes_sent",
                                   (gint64)MIN(snap->bytes_sent, G_MAXINT64));
        json_object_set_int_member(o, "bytes_new",
                                   (gint64)MIN(snap->bytes_new, G_MAXINT64));
        json_array_add_object_element(list, o);
    }
    return list;
}

static JsonArray *
events_to_json(GPtrArray *events)
{
    JsonArray *list = json_array_new();

    for (guint i = 0; events && i < events->len; i++) {
        const SalEvent *event = g_ptr_array_index(events, i);
        JsonObject *o = json_object_new();

        json_object_set_int_member(o, "time", event->time);
        json_object_set_string_member(o, "text", event->text);
        json_array_add_object_element(list, o);
    }
    return list;
}

static void
job_history(Request *req)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) snapshots = NULL;
    g_autoptr(GPtrArray) events = NULL;
    JsonObject *o;

    if (!sald_core_get_history(req->api->core, req->uid, req->id, &snapshots,
                               &events, &error)) {
        reply_gerror(req->msg, error);
        return;
    }
    o = json_object_new();
    json_object_set_array_member(o, "snapshots", snapshots_to_json(snapshots));
    json_object_set_array_member(o, "events", events_to_json(events));
    reply_take(req->msg, SOUP_STATUS_OK, object_node(o));
}

typedef struct {
    SoupServerMessage *msg;
    SaldCore *core;
    GCancellable *cancel;
    gboolean gone; /* the message finished: the client left */
} LogRequest;

static void
on_log_msg_gone(SoupServerMessage *msg, gpointer data)
{
    LogRequest *lr = data;

    lr->gone = TRUE;
}

static JsonArray *
log_to_json(GPtrArray *logs)
{
    JsonArray *list = json_array_new();

    for (guint i = 0; i < logs->len; i++) {
        const SaldVmLog *log = g_ptr_array_index(logs, i);
        JsonObject *vm = json_object_new();
        gsize len = 0;
        const char *data =
            log->output ? g_bytes_get_data(log->output, &len) : NULL;
        g_autofree char *text = g_utf8_make_valid(data ? data : "", len);

        json_object_set_int_member(vm, "index", log->index);
        if (log->node) {
            json_object_set_string_member(vm, "node", log->node);
        } else {
            json_object_set_null_member(vm, "node");
        }
        if (log->exit_status >= 0) {
            json_object_set_int_member(vm, "exit_status", log->exit_status);
        } else {
            json_object_set_null_member(vm, "exit_status");
        }
        json_object_set_string_member(vm, "state",
                                      sal_vm_state_to_string(log->state));
        json_object_set_boolean_member(vm, "truncated", log->truncated);
        json_object_set_string_member(vm, "output", text);
        json_array_add_object_element(list, vm);
    }
    return list;
}

static void
on_log(GObject *source, GAsyncResult *result, gpointer data)
{
    LogRequest *lr = data;
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) logs =
        sald_core_get_log_finish(lr->core, result, &error);

    g_signal_handlers_disconnect_by_data(lr->msg, lr);
    /* Nobody to answer: the API is gone, or the client. */
    if (!g_cancellable_is_cancelled(lr->cancel) && !lr->gone) {
        if (logs) {
            reply_array(lr->msg, "vms", log_to_json(logs));
        } else {
            reply_gerror(lr->msg, error);
        }
        soup_server_message_unpause(lr->msg);
    }
    g_object_unref(lr->msg);
    g_object_unref(lr->cancel);
    g_free(lr);
}

static void
job_log(Request *req)
{
    LogRequest *lr = g_new0(LogRequest, 1);

    lr->msg = g_object_ref(req->msg);
    lr->core = req->api->core;
    lr->cancel = g_object_ref(req->api->cancel);
    g_signal_connect(lr->msg, "finished", G_CALLBACK(on_log_msg_gone), lr);
    g_signal_connect(lr->msg, "disconnected", G_CALLBACK(on_log_msg_gone), lr);
    soup_server_message_pause(req->msg);
    sald_core_get_log_async(req->api->core, req->uid, req->id, lr->cancel,
                            on_log, lr);
}

static void
nodes_list(Request *req)
{
    g_autoptr(GPtrArray) nodes = sald_core_list_nodes(req->api->core);
    JsonArray *list = json_array_new();

    for (guint i = 0; i < nodes->len; i++) {
        const SaldNodeInfo *n = g_ptr_array_index(nodes, i);
        JsonObject *no = json_object_new();

        json_object_set_string_member(no, "name", n->name);
        json_object_set_string_member(no, "site", n->site);
        json_object_set_string_member(no, "uri", n->uri);
        json_object_set_int_member(no, "cpus", n->cpus);
        json_object_set_int_member(no, "mem_mib", (gint64)n->mem_mib);
        json_object_set_boolean_member(no, "up", n->up);
        if (n->error) {
            json_object_set_string_member(no, "error", n->error);
        } else {
            json_object_set_null_member(no, "error");
        }
        json_object_set_int_member(no, "used_cpus", n->used_cpus);
        json_object_set_int_member(no, "used_mem_mib",
                                   (gint64)n->used_mem_mib);
        json_object_set_int_member(no, "vms", n->n_vms);
        json_array_add_object_element(list, no);
    }
    reply_array(req->msg, "nodes", list);
}

static void
images_list(Request *req)
{
    g_autoptr(GPtrArray) images = sald_core_list_images(req->api->core);
    JsonArray *list = json_array_new();

    for (guint i = 0; i < images->len; i++) {
        json_array_add_string_element(list, g_ptr_array_index(images, i));
    }
    reply_array(req->msg, "images", list);
}

#define MAX_METHODS 2

/* '*' in a pattern is a job id. */
static const struct {
    const char *pattern;
    const char *allow;
    struct {
        const char *method;
        RouteFunc func;
    } methods[MAX_METHODS];
} routes[] = {
    {"/v1/jobs", "GET, POST", {{"GET", jobs_list}, {"POST", jobs_submit}}},
    {"/v1/jobs/*", "GET, DELETE", {{"GET", job_get}, {"DELETE", job_cancel}}},
    {"/v1/jobs/*/suspend", "POST", {{"POST", job_suspend}}},
    {"/v1/jobs/*/resume", "POST", {{"POST", job_resume}}},
    {"/v1/jobs/*/history", "GET", {{"GET", job_history}}},
    {"/v1/jobs/*/log", "GET", {{"GET", job_log}}},
    {"/v1/nodes", "GET", {{"GET", nodes_list}}},
    {"/v1/images", "GET", {{"GET", images_list}}},
};

/* @path matches @pattern; *@id_text is the segment '*' matched. */
static gboolean
path_match(const char *pattern, const char *path, const char **id_text,
           gsize *id_len)
{
    while (*pattern && *path) {
        if (*pattern == '*') {
            gsize n = strcspn(path, "/");

            if (n == 0) {
                return FALSE;
            }
            *id_text = path;
            *id_len = n;
            path += n;
            pattern++;
        } else if (*pattern++ != *path++) {
            return FALSE;
        }
    }
    return !*pattern && !*path;
}

/* A job id: decimal digits only, 1..G_MAXINT64. */
static gboolean
parse_id(const char *text, gsize len, gint64 *id)
{
    g_autofree char *s = g_strndup(text, len);
    guint64 v;

    if (!g_ascii_isdigit(s[0]) ||
        !g_ascii_string_to_unsigned(s, 10, 1, G_MAXINT64, &v, NULL)) {
        return FALSE;
    }
    *id = (gint64)v;
    return TRUE;
}

static gboolean
peer_uid(SoupServerMessage *msg, guint32 *uid, GError **error)
{
    GSocket *socket = soup_server_message_get_socket(msg);
    g_autoptr(GCredentials) cred = NULL;
    uid_t u;

    if (!socket) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "no socket");
        return FALSE;
    }
    cred = g_socket_get_credentials(socket, error);
    if (!cred) {
        return FALSE;
    }
    u = g_credentials_get_unix_user(cred, error);
    if (u == (uid_t)-1) {
        return FALSE;
    }
    *uid = u;
    return TRUE;
}

static void
handle(SoupServer *server, SoupServerMessage *msg, const char *path,
       GHashTable *query, gpointer data)
{
    g_autoptr(GError) error = NULL;
    const char *method = soup_server_message_get_method(msg);
    Request req = {.api = data, .msg = msg, .query = query};
    g_autofree char *shown = g_strescape(path, NULL);

    if (!peer_uid(msg, &req.uid, &error)) {
        reply_error(msg, SOUP_STATUS_INTERNAL_SERVER_ERROR,
                    "cannot identify the caller: %s", error->message);
        return;
    }
    g_debug("uid %" G_GUINT32_FORMAT ": %s %.200s", req.uid, method, shown);

    for (guint i = 0; i < G_N_ELEMENTS(routes); i++) {
        const char *id_text = NULL;
        gsize id_len = 0;

        if (!path_match(routes[i].pattern, path, &id_text, &id_len)) {
            continue;
        }
        for (guint m = 0; m < MAX_METHODS && routes[i].methods[m].method;
             m++) {
            if (!g_str_equal(routes[i].methods[m].method, method)) {
                continue;
            }
            if (id_text && !parse_id(id_text, id_len, &req.id)) {
                g_autofree char *bad = g_strndup(id_text, MIN(id_len, 64));
                g_autofree char *q = g_strescape(bad, NULL);

                reply_error(msg, SOUP_STATUS_BAD_REQUEST,
                            "invalid job id '%s'", q);
                return;
            }
            routes[i].methods[m].func(&req);
            return;
        }
        soup_message_headers_replace(
            soup_server_message_get_response_headers(msg), "Allow",
            routes[i].allow);
        reply_error(msg, SOUP_STATUS_METHOD_NOT_ALLOWED,
                    "method '%s' not allowed on '%.200s'", method, shown);
        return;
    }
    reply_error(msg, SOUP_STATUS_NOT_FOUND, "no such resource '%.200s'",
                shown);
}

/* ---- socket ---- */

/* Makes room for the socket at @path: refuses one in use. */
static gboolean
clear_stale(const char *path, GError **error)
{
    g_autoptr(GSocket) probe = NULL;
    g_autoptr(GSocketAddress) addr = NULL;
    g_autoptr(GError) local = NULL;
    struct stat st;

    if (lstat(path, &st) < 0) {
        if (errno == ENOENT) {
            return TRUE;
        }
        g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno),
                    "cannot stat '%s': %s", path, g_strerror(errno));
        return FALSE;
    }
    if (!S_ISSOCK(st.st_mode)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_EXISTS,
                    "'%s' exists and is not a socket", path);
        return FALSE;
    }
    probe = g_socket_new(G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM,
                         G_SOCKET_PROTOCOL_DEFAULT, error);
    if (!probe) {
        return FALSE;
    }
    addr = g_unix_socket_address_new(path);
    if (g_socket_connect(probe, addr, NULL, &local)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE,
                    "socket '%s' is in use: is salined already running?",
                    path);
        return FALSE;
    }
    if (!g_error_matches(local, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                    "cannot check socket '%s': %s", path, local->message);
        return FALSE;
    }
    if (g_unlink(path) < 0 && errno != ENOENT) {
        g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno),
                    "cannot remove stale socket '%s': %s", path,
                    g_strerror(errno));
        return FALSE;
    }
    return TRUE;
}

static GSocket *
listen_unix(const char *path, GError **error)
{
    g_autofree char *dir = g_path_get_dirname(path);
    g_autoptr(GSocket) socket = NULL;
    g_autoptr(GSocketAddress) addr = NULL;
    struct sockaddr_un sun;

    if (strlen(path) >= sizeof(sun.sun_path)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "socket path '%s' is longer than %zu bytes", path,
                    sizeof(sun.sun_path) - 1);
        return NULL;
    }
    if (g_mkdir_with_parents(dir, 0755) < 0) {
        g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno),
                    "cannot create directory '%s': %s", dir,
                    g_strerror(errno));
        return NULL;
    }
    if (!clear_stale(path, error)) {
        return NULL;
    }
    socket = g_socket_new(G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM,
                          G_SOCKET_PROTOCOL_DEFAULT, error);
    if (!socket) {
        return NULL;
    }
    addr = g_unix_socket_address_new(path);
    if (!g_socket_bind(socket, addr, FALSE, error)) {
        g_prefix_error(error, "cannot bind '%s': ", path);
        return NULL;
    }
    if (g_chmod(path, 0666) < 0) {
        g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno),
                    "cannot chmod socket '%s': %s", path, g_strerror(errno));
        g_unlink(path);
        return NULL;
    }
    if (!g_socket_listen(socket, error)) {
        g_prefix_error(error, "cannot listen on '%s': ", path);
        g_unlink(path);
        return NULL;
    }
    return g_steal_pointer(&socket);
}

SaldApi *
sald_api_new(SaldCore *core, const char *socket_path, GError **error)
{
    g_autoptr(GSocket) socket = listen_unix(socket_path, error);
    SaldApi *api;

    if (!socket) {
        return NULL;
    }
    api = g_new0(SaldApi, 1);
    api->core = core;
    api->path = g_strdup(socket_path);
    api->cancel = g_cancellable_new();
    api->server = soup_server_new("server-header", "salined", NULL);
    soup_server_add_handler(api->server, NULL, handle, api, NULL);
    g_signal_connect(api->server, "request-started",
                     G_CALLBACK(on_request_started), NULL);
    api->socket = g_steal_pointer(&socket);
    if (!soup_server_listen_socket(api->server, api->socket, 0, error)) {
        g_prefix_error(error, "cannot serve on '%s': ", socket_path);
        sald_api_free(api);
        return NULL;
    }
    return api;
}

void
sald_api_free(SaldApi *api)
{
    if (!api) {
        return;
    }
    g_cancellable_cancel(api->cancel);
    if (api->server) {
        soup_server_disconnect(api->server);
        g_object_unref(api->server);
    }
    if (api->socket) {
        g_socket_close(api->socket, NULL);
        g_object_unref(api->socket);
        g_unlink(api->path);
    }
    g_object_unref(api->cancel);
    g_free(api->path);
    g_free(api);
}
