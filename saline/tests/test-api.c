/*
 * salined's REST API over a real unix socket, against an in-memory core
 * (fake-core.c): the server runs in a thread of its own, requests are
 * real HTTP from this one.
 */
#include <gio/gunixsocketaddress.h>
#include <glib/gstdio.h>
#include <libsoup/soup.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api-server.h"
#include "fake-core.h"
#include "sal-json.h"
#include "sal-test.h"

typedef struct {
    char *dir;
    char *path; /* of the socket, in a directory the API creates */
    SaldCore *core;
    ApiServer *server;
    SoupSession *session;
} Fixture;

static void
setup(Fixture *f, gconstpointer data)
{
    g_autoptr(GSocketAddress) addr = NULL;

    f->dir = sal_test_tmpdir();
    f->path = g_build_filename(f->dir, "run", "saline.sock", NULL);
    f->core = fake_core_new();
    f->server = api_server_start(f->core, f->path);
    addr = g_unix_socket_address_new(f->path);
    f->session = soup_session_new_with_options("remote-connectable", addr,
                                               NULL);
}

static void
stop_server(Fixture *f)
{
    g_clear_pointer(&f->server, api_server_stop);
}

static void
teardown(Fixture *f, gconstpointer data)
{
    g_object_unref(f->session);
    stop_server(f);
    fake_core_free(f->core);
    {
        g_autofree char *run = g_path_get_dirname(f->path);

        g_assert_cmpint(g_rmdir(run), ==, 0);
    }
    g_free(f->path);
    sal_test_rmdir(f->dir);
    g_free(f->dir);
}

typedef struct {
    guint status;
    JsonNode *json;
    char *allow;
    char *location;
} Answer;

static void
answer_clear(Answer *a)
{
    g_clear_pointer(&a->json, json_node_unref);
    g_free(a->allow);
    g_free(a->location);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(Answer, answer_clear)

/* @method @path with @body (NULL: none, @len -1: a string); every answer
 * is a JSON object. */
static void
request_len(Fixture *f, Answer *a, const char *method, const char *path,
            const char *body, gssize len)
{
    g_autofree char *uri = g_strconcat("http://localhost", path, NULL);
    g_autoptr(SoupMessage) msg = soup_message_new(method, uri);
    g_autoptr(GError) error = NULL;
    g_autoptr(GBytes) answer = NULL;
    SoupMessageHeaders *h;
    const char *data;
    gsize size;

    g_assert_nonnull(msg);
    if (body) {
        g_autoptr(GBytes) bytes =
            g_bytes_new(body, len < 0 ? strlen(body) : (gsize)len);

        soup_message_set_request_body_from_bytes(msg, "application/json",
                                                 bytes);
    }
    answer = soup_session_send_and_read(f->session, msg, NULL, &error);
    g_assert_no_error(error);
    a->status = soup_message_get_status(msg);
    h = soup_message_get_response_headers(msg);
    g_assert_cmpstr(soup_message_headers_get_content_type(h, NULL), ==,
                    "application/json");
    a->allow = g_strdup(soup_message_headers_get_one(h, "Allow"));
    a->location = g_strdup(soup_message_headers_get_one(h, "Location"));
    data = g_bytes_get_data(answer, &size);
    a->json = sal_json_parse(data, size, &error);
    g_assert_no_error(error);
    g_assert_true(JSON_NODE_HOLDS_OBJECT(a->json));
}

static void
request(Fixture *f, Answer *a, const char *method, const char *path,
        const char *body)
{
    request_len(f, a, method, path, body, -1);
}

static JsonObject *
obj(const Answer *a)
{
    return json_node_get_object(a->json);
}

/* Status @status, and one line of error that contains @part. */
static void
assert_error(const Answer *a, guint status, const char *part)
{
    const char *message;

    g_assert_cmpuint(a->status, ==, status);
    message = json_object_get_string_member(obj(a), "error");
    g_assert_nonnull(message);
    g_assert_null(strchr(message, '\n'));
    if (!strstr(message, part)) {
        g_error("error '%s' lacks '%s'", message, part);
    }
}

#define SUBMIT_OK                                                         \
    "{\"vms\": 2, \"cpus\": 1, \"mem_mib\": 512, \"image\": \"debian-12\", " \
    "\"walltime_s\": 600, \"command\": [\"/bin/sh\", \"-c\", \"echo hi\"]"

/* Submits a valid job, returns its id. */
static gint64
submit(Fixture *f)
{
    g_auto(Answer) a = {0};

    request(f, &a, "POST", "/v1/jobs", SUBMIT_OK "}");
    g_assert_cmpuint(a.status, ==, 201);
    return json_object_get_int_member(obj(&a), "id");
}

static void
test_submit(Fixture *f, gconstpointer data)
{
    g_auto(Answer) a = {0};
    g_autofree char *user = sal_uid_name(getuid());
    g_autoptr(GError) error = NULL;
    g_autoptr(SalJob) job = NULL;
    JsonArray *cmd;

    request(f, &a, "POST", "/v1/jobs",
            SUBMIT_OK ", \"name\": \"hello\", \"priority\": -5, "
                      "\"besteffort\": true, \"site\": \"rennes\"}");
    g_assert_cmpuint(a.status, ==, 201);
    g_assert_cmpuint(fake_core_last_uid(f->core), ==, getuid());
    g_assert_cmpint(json_object_get_int_member(obj(&a), "id"), ==, 1);
    g_assert_cmpstr(a.location, ==, "/v1/jobs/1");
    g_assert_cmpstr(json_object_get_string_member(obj(&a), "user"), ==, user);
    g_assert_cmpint(json_object_get_int_member(obj(&a), "owner_uid"), ==,
                    getuid());
    g_assert_cmpstr(json_object_get_string_member(obj(&a), "state"), ==,
                    "pending");
    g_assert_cmpstr(json_object_get_string_member(obj(&a), "name"), ==,
                    "hello");
    g_assert_true(json_object_get_null_member(obj(&a), "exit_status"));
    g_assert_true(json_object_get_null_member(obj(&a), "failure"));
    g_assert_false(json_object_get_boolean_member(obj(&a), "ssi"));
    g_assert_false(json_object_has_member(obj(&a), "ssi_key"));
    cmd = json_object_get_array_member(obj(&a), "command");
    g_assert_cmpuint(json_array_get_length(cmd), ==, 3);
    g_assert_cmpstr(json_array_get_string_element(cmd, 2), ==, "echo hi");

    /* What the CLI reads back. */
    job = sal_job_from_json(a.json, NULL, &error);
    g_assert_no_error(error);
    g_assert_cmpint(job->priority, ==, -5);
    g_assert_true(job->besteffort);
    g_assert_false(job->idempotent);
    g_assert_cmpuint(job->n_vms, ==, 2);
    g_assert_cmpuint(job->mem_mib, ==, 512);
    g_assert_cmpstr(job->site, ==, "rennes");
    g_assert_cmpint(job->exit_status, ==, -1);
}

static void
test_submit_default_name(Fixture *f, gconstpointer data)
{
    g_auto(Answer) a = {0};

    request(f, &a, "POST", "/v1/jobs", SUBMIT_OK ", \"site\": null}");
    g_assert_cmpuint(a.status, ==, 201);
    g_assert_cmpstr(json_object_get_string_member(obj(&a), "name"), ==, "sh");
    g_assert_true(json_object_get_null_member(obj(&a), "site"));
}

#define JOB_WITH(extra)                                                     \
    "{\"cpus\": 1, \"mem_mib\": 512, \"image\": \"debian-12\", "            \
    "\"command\": [\"true\"], " extra "}"

static void
test_submit_bad(Fixture *f, gconstpointer data)
{
    static const struct {
        const char *body;
        const char *error;
    } cases[] = {
        {"", "malformed JSON"},
        {"{", "malformed JSON"},
        {"{\"vms\": 1,}", "malformed JSON"},
        {"[1, 2]", "submission must be a JSON object"},
        {"\"job\"", "submission must be a JSON object"},
        {JOB_WITH("\"vms\": 1, \"walltime_s\": 60, \"colour\": \"red\""),
         "unknown field 'colour' in submission"},
        {JOB_WITH("\"vms\": 1, \"walltime_s\": 60, \"id\": 3"),
         "unknown field 'id' in submission"},
        {JOB_WITH("\"vms\": 1, \"walltime_s\": 60, \"state\": \"done\""),
         "unknown field 'state'"},
        {JOB_WITH("\"vms\": 1"), "missing field 'walltime_s'"},
        {"{\"vms\": 1, \"cpus\": 1, \"mem_mib\": 512, \"image\": \"x\", "
         "\"walltime_s\": 60}",
         "missing field 'command'"},
        {JOB_WITH("\"vms\": -1, \"walltime_s\": 60"),
         "vms -1 is out of range 1..1024"},
        {JOB_WITH("\"vms\": 0, \"walltime_s\": 60"), "vms 0 is out of range"},
        {JOB_WITH("\"vms\": 4294967297, \"walltime_s\": 60"),
         "vms 4294967297 is out of range"},
        {JOB_WITH("\"vms\": 1, \"walltime_s\": 99999999999"),
         "walltime_s 99999999999 is out of range 1..2592000"},
        {JOB_WITH("\"vms\": 1, \"walltime_s\": 9223372036854775807"),
         "walltime_s 9223372036854775807 is out of range"},
        {JOB_WITH("\"vms\": 1, \"walltime_s\": 99999999999999999999999"),
         "walltime_s"},
        {JOB_WITH("\"vms\": 1, \"walltime_s\": 60.5"),
         "'walltime_s' must be an integer"},
        {JOB_WITH("\"vms\": 1, \"walltime_s\": 6e1"),
         "'walltime_s' must be an integer"},
        {JOB_WITH("\"vms\": \"2\", \"walltime_s\": 60"),
         "'vms' must be an integer"},
        {JOB_WITH("\"vms\": null, \"walltime_s\": 60"),
         "'vms' must be an integer"},
        {JOB_WITH("\"vms\": 1, \"walltime_s\": 60, \"besteffort\": 1"),
         "'besteffort' must be true or false"},
        {JOB_WITH("\"vms\": 1, \"walltime_s\": 60, \"name\": 5"),
         "'name' must be a string or null"},
        {JOB_WITH("\"vms\": 1, \"walltime_s\": 60, \"priority\": 1001"),
         "priority 1001 is out of range -1000..1000"},
        {JOB_WITH("\"vms\": 1, \"walltime_s\": 60, \"site\": \"a b\""),
         "invalid site name 'a b'"},
        {JOB_WITH("\"vms\": 1, \"walltime_s\": 60, \"mem_mib\": -2"),
         "mem_mib -2 is out of range"},
        {"{\"vms\": 1, \"cpus\": 1, \"mem_mib\": 512, \"image\": \"x\", "
         "\"walltime_s\": 60, \"command\": []}",
         "'command' must be a non-empty array of strings"},
        {"{\"vms\": 1, \"cpus\": 1, \"mem_mib\": 512, \"image\": \"x\", "
         "\"walltime_s\": 60, \"command\": \"ls -l\"}",
         "'command' must be a non-empty array of strings"},
        {"{\"vms\": 1, \"cpus\": 1, \"mem_mib\": 512, \"image\": \"x\", "
         "\"walltime_s\": 60, \"command\": [\"ls\", 1]}",
         "'command' must be a non-empty array of strings"},
        {JOB_WITH("\"vms\": 1, \"walltime_s\": 60, \"image\": \"fedora\""),
         "unknown image 'fedora'"},
        {JOB_WITH("\"vms\": 1, \"walltime_s\": 60, "
                  "\"snapshot_interval_s\": 60"),
         "snapshot_interval_s is for best-effort jobs"},
        {JOB_WITH("\"vms\": 1, \"walltime_s\": 60, \"besteffort\": true, "
                  "\"snapshot_interval_s\": 4"),
         "snapshot interval (s) 4 is out of range 5..86400"},
        {JOB_WITH("\"vms\": 1, \"walltime_s\": 60, \"besteffort\": true, "
                  "\"snapshot_interval_s\": 86401"),
         "snapshot_interval_s 86401 is out of range"},
        {JOB_WITH("\"vms\": 1, \"walltime_s\": 60, \"ssi\": 1"),
         "'ssi' must be true or false"},
        {JOB_WITH("\"vms\": 64, \"walltime_s\": 60, \"ssi\": true"),
         "VM count of an SSI job 64 is out of range 1..63"},
        {JOB_WITH("\"vms\": 1, \"walltime_s\": 60, \"held\": true"),
         "unknown field 'held'"},
        {JOB_WITH("\"vms\": 1, \"walltime_s\": 60, \"snapshot_seq\": 1"),
         "unknown field 'snapshot_seq'"},
    };

    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_auto(Answer) a = {0};

        g_test_message("body: %s", cases[i].body);
        request(f, &a, "POST", "/v1/jobs", cases[i].body);
        assert_error(&a, 400, cases[i].error);
    }
    /* Nothing was created. */
    {
        g_auto(Answer) a = {0};

        request(f, &a, "GET", "/v1/jobs?all=1", NULL);
        g_assert_cmpuint(
            json_array_get_length(json_object_get_array_member(obj(&a), "jobs")),
            ==, 0);
    }
}

static void
test_body_limit(Fixture *f, gconstpointer data)
{
    g_autofree char *big = g_malloc(SAL_JSON_MAX_BODY + 1);
    g_auto(Answer) a = {0};
    g_auto(Answer) b = {0};

    /* At the limit: read, then refused for what it says. */
    memset(big, ' ', SAL_JSON_MAX_BODY + 1);
    memcpy(big, "{}", 2);
    request_len(f, &a, "POST", "/v1/jobs", big, SAL_JSON_MAX_BODY);
    assert_error(&a, 400, "missing field");

    request_len(f, &b, "POST", "/v1/jobs", big, SAL_JSON_MAX_BODY + 1);
    assert_error(&b, 413, "larger than 1048576 bytes");
}

/* A chunked body says no length up front. */
static void
test_body_limit_chunked(Fixture *f, gconstpointer data)
{
    g_autoptr(GSocketClient) client = g_socket_client_new();
    g_autoptr(GSocketAddress) addr = g_unix_socket_address_new(f->path);
    g_autoptr(GError) error = NULL;
    g_autoptr(GSocketConnection) conn = NULL;
    g_autoptr(GString) answer = g_string_new(NULL);
    g_autofree char *chunk = g_strnfill(65536, ' ');
    const char *head = "POST /v1/jobs HTTP/1.1\r\nHost: localhost\r\n"
                       "Transfer-Encoding: chunked\r\n"
                       "Connection: close\r\n\r\n";
    GOutputStream *out;
    GInputStream *in;
    char buf[4096];
    gssize n;

    conn = g_socket_client_connect(client, G_SOCKET_CONNECTABLE(addr), NULL,
                                   &error);
    g_assert_no_error(error);
    out = g_io_stream_get_output_stream(G_IO_STREAM(conn));
    in = g_io_stream_get_input_stream(G_IO_STREAM(conn));
    g_output_stream_write_all(out, head, strlen(head), NULL, NULL, &error);
    g_assert_no_error(error);
    for (guint i = 0; i < SAL_JSON_MAX_BODY / 65536 + 1; i++) {
        g_output_stream_write_all(out, "10000\r\n", 7, NULL, NULL, &error);
        g_output_stream_write_all(out, chunk, 65536, NULL, NULL, &error);
        g_output_stream_write_all(out, "\r\n", 2, NULL, NULL, &error);
        g_assert_no_error(error);
    }
    g_output_stream_write_all(out, "0\r\n\r\n", 5, NULL, NULL, &error);
    g_assert_no_error(error);
    while ((n = g_input_stream_read(in, buf, sizeof(buf), NULL, &error)) > 0) {
        g_string_append_len(answer, buf, n);
    }
    g_assert_no_error(error);
    g_assert_true(g_str_has_prefix(answer->str, "HTTP/1.1 413 "));
    g_assert_nonnull(strstr(answer->str, "larger than 1048576 bytes"));
}

static void
test_bad_id(Fixture *f, gconstpointer data)
{
    static const char *const paths[] = {
        "/v1/jobs/abc",
        "/v1/jobs/-1",
        "/v1/jobs/0",
        "/v1/jobs/+1",
        "/v1/jobs/1x",
        "/v1/jobs/%201",
        "/v1/jobs/9223372036854775808",
        "/v1/jobs/99999999999999999999999/log",
        "/v1/jobs/x/history",
    };

    submit(f);
    for (guint i = 0; i < G_N_ELEMENTS(paths); i++) {
        g_auto(Answer) a = {0};

        g_test_message("path: %s", paths[i]);
        request(f, &a, "GET", paths[i], NULL);
        assert_error(&a, 400, "invalid job id");
    }
}

static void
test_routes(Fixture *f, gconstpointer data)
{
    static const struct {
        const char *method;
        const char *path;
        guint status;
        const char *allow;
    } cases[] = {
        {"GET", "/", 404, NULL},
        {"GET", "/v2/jobs", 404, NULL},
        {"GET", "/v1/jobs/", 404, NULL},
        {"GET", "/v1/jobs//log", 404, NULL},
        {"GET", "/v1/jobs/1/output", 404, NULL},
        {"GET", "/v1/nodes/x", 404, NULL},
        {"PUT", "/v1/jobs", 405, "GET, POST"},
        {"DELETE", "/v1/jobs", 405, "GET, POST"},
        {"POST", "/v1/jobs/1", 405, "GET, DELETE"},
        {"DELETE", "/v1/jobs/1/log", 405, "GET"},
        {"GET", "/v1/jobs/1/suspend", 405, "POST"},
        {"DELETE", "/v1/jobs/1/resume", 405, "POST"},
        {"POST", "/v1/jobs/1/history", 405, "GET"},
        {"POST", "/v1/jobs/1/pause", 404, NULL},
        {"POST", "/v1/nodes", 405, "GET"},
        {"DELETE", "/v1/images", 405, "GET"},
        {"GET", "/v1/jobs?colour=red", 400, NULL},
        {"GET", "/v1/jobs?all=maybe", 400, NULL},
        {"GET", "/v1/jobs/7", 404, NULL},
        {"DELETE", "/v1/jobs/7", 404, NULL},
        {"GET", "/v1/jobs/7/log", 404, NULL},
        {"POST", "/v1/jobs/7/suspend", 404, NULL},
        {"POST", "/v1/jobs/7/resume", 404, NULL},
        {"GET", "/v1/jobs/7/history", 404, NULL},
    };

    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_auto(Answer) a = {0};

        g_test_message("%s %s", cases[i].method, cases[i].path);
        request(f, &a, cases[i].method, cases[i].path, NULL);
        assert_error(&a, cases[i].status, "");
        g_assert_cmpstr(a.allow, ==, cases[i].allow);
    }
}

static guint
n_jobs(Fixture *f, const char *path)
{
    g_auto(Answer) a = {0};

    request(f, &a, "GET", path, NULL);
    g_assert_cmpuint(a.status, ==, 200);
    return json_array_get_length(json_object_get_array_member(obj(&a), "jobs"));
}

static void
test_list(Fixture *f, gconstpointer data)
{
    g_auto(Answer) a = {0};
    g_auto(Answer) c = {0};
    JsonArray *jobs;
    JsonArray *vms;

    submit(f);
    submit(f);
    request(f, &c, "DELETE", "/v1/jobs/1", NULL);
    g_assert_cmpuint(c.status, ==, 200);

    g_assert_cmpuint(n_jobs(f, "/v1/jobs"), ==, 1);
    g_assert_cmpuint(n_jobs(f, "/v1/jobs?all=0"), ==, 1);
    g_assert_cmpuint(n_jobs(f, "/v1/jobs?all=1"), ==, 2);
    g_assert_cmpuint(n_jobs(f, "/v1/jobs?all=true"), ==, 2);

    request(f, &a, "GET", "/v1/jobs?all=1", NULL);
    jobs = json_object_get_array_member(obj(&a), "jobs");
    /* Each job has its own VMs. */
    for (guint i = 0; i < 2; i++) {
        JsonObject *job = json_array_get_object_element(jobs, i);

        vms = json_object_get_array_member(job, "vm_list");
        g_assert_cmpuint(json_array_get_length(vms), ==, 2);
        g_assert_cmpint(json_object_get_int_member(
                            json_array_get_object_element(vms, 1), "index"),
                        ==, 1);
        g_assert_cmpstr(json_object_get_string_member(
                            json_array_get_object_element(vms, 0), "domain"),
                        ==, i == 0 ? "saline-1-0" : "saline-2-0");
    }
}

static void
test_get_cancel(Fixture *f, gconstpointer data)
{
    gint64 id = submit(f);
    g_autofree char *path = g_strdup_printf("/v1/jobs/%" G_GINT64_FORMAT, id);
    g_auto(Answer) a = {0};
    g_auto(Answer) c = {0};
    g_auto(Answer) again = {0};
    g_autoptr(GPtrArray) vms = NULL;
    g_autoptr(GError) error = NULL;
    g_autoptr(SalJob) job = NULL;
    const SalVm *vm;

    request(f, &a, "GET", path, NULL);
    g_assert_cmpuint(a.status, ==, 200);
    job = sal_job_from_json(a.json, &vms, &error);
    g_assert_no_error(error);
    g_assert_cmpint(job->id, ==, id);
    g_assert_cmpuint(vms->len, ==, 2);
    vm = g_ptr_array_index(vms, 1);
    g_assert_cmpuint(vm->index, ==, 1);
    g_assert_cmpstr(vm->node, ==, "node-1");
    g_assert_cmpstr(vm->ip, ==, "10.0.1.3");
    g_assert_cmpstr(vm->mac, ==, "52:54:00:00:00:01");
    g_assert_cmpint(vm->state, ==, SAL_VM_PLACED);
    g_assert_cmpint(vm->exit_status, ==, -1);

    request(f, &c, "DELETE", path, NULL);
    g_assert_cmpuint(c.status, ==, 200);
    g_assert_cmpstr(json_object_get_string_member(obj(&c), "state"), ==,
                    "cancelled");
    g_assert_cmpint(json_object_get_int_member(obj(&c), "end_time"), ==,
                    1700000100);
    request(f, &again, "DELETE", path, NULL);
    assert_error(&again, 409, "cannot go from 'cancelled'");
}

/* The peer is always this process: the fake plays the other user. */
static void
test_other_user(Fixture *f, gconstpointer data)
{
    static const struct {
        const char *method;
        const char *path;
    } cases[] = {
        {"GET", "/v1/jobs/1"},
        {"DELETE", "/v1/jobs/1"},
        {"GET", "/v1/jobs/1/log"},
        {"POST", "/v1/jobs/1/suspend"},
        {"POST", "/v1/jobs/1/resume"},
        {"GET", "/v1/jobs/1/history"},
    };
    guint32 other = getuid() == 4242 ? 4243 : 4242;

    fake_core_set_uid(f->core, other);
    g_assert_cmpint(submit(f), ==, 1);
    g_assert_cmpuint(fake_core_last_uid(f->core), ==, getuid());

    fake_core_set_uid(f->core, getuid() == 0 ? 1000 : -1);
    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_auto(Answer) a = {0};

        request(f, &a, cases[i].method, cases[i].path, NULL);
        assert_error(&a, 404, "no job 1");
    }
    g_assert_cmpuint(n_jobs(f, "/v1/jobs?all=1"), ==, 0);

    /* Root sees it. */
    fake_core_set_uid(f->core, 0);
    g_assert_cmpuint(n_jobs(f, "/v1/jobs"), ==, 1);
}

#define SUBMIT_KEY(key) SUBMIT_OK ", \"idempotency_key\": \"" key "\"}"

/* POSTs @body into @a, expects @status and job @id. */
static void
submit_expect(Fixture *f, Answer *a, const char *body, guint status, gint64 id)
{
    g_autofree char *location =
        g_strdup_printf("/v1/jobs/%" G_GINT64_FORMAT, id);

    request(f, a, "POST", "/v1/jobs", body);
    g_assert_cmpuint(a->status, ==, status);
    g_assert_cmpint(json_object_get_int_member(obj(a), "id"), ==, id);
    g_assert_cmpstr(a->location, ==, location);
}

/*
 * A submission repeated with its idempotency key (its answer was lost)
 * is answered the job stored the first time, 200, with nothing new
 * stored: whatever the job's state, and whatever the form of the body
 * as long as it submits the same job. A different job under the same
 * key is 409.
 */
static void
test_idempotency_key(Fixture *f, gconstpointer data)
{
    g_auto(Answer) first = {0};
    g_auto(Answer) again = {0};
    g_auto(Answer) no_key = {0};
    g_auto(Answer) cancel = {0};
    g_auto(Answer) ended = {0};
    g_auto(Answer) named = {0};
    g_auto(Answer) other_key = {0};

    submit_expect(f, &first, SUBMIT_KEY("k1"), 201, 1);
    g_assert_cmpstr(
        json_object_get_string_member(obj(&first), "idempotency_key"), ==,
        "k1");

    submit_expect(f, &again, SUBMIT_KEY("k1"), 200, 1);
    g_assert_cmpstr(json_object_get_string_member(obj(&again), "state"), ==,
                    "pending");
    g_assert_cmpstr(
        json_object_get_string_member(obj(&again), "idempotency_key"), ==,
        "k1");
    g_assert_cmpuint(json_array_get_length(
                         json_object_get_array_member(obj(&again), "vm_list")),
                     ==, 2);
    g_assert_cmpuint(n_jobs(f, "/v1/jobs?all=1"), ==, 1);

    submit_expect(f, &no_key, SUBMIT_OK "}", 201, 2);
    g_assert_true(json_object_get_null_member(obj(&no_key), "idempotency_key"));
    submit_expect(f, &other_key, SUBMIT_KEY("k2"), 201, 3);

    /* An ended job keeps its key. */
    request(f, &cancel, "DELETE", "/v1/jobs/1", NULL);
    g_assert_cmpuint(cancel.status, ==, 200);
    submit_expect(f, &ended, SUBMIT_KEY("k1"), 200, 1);
    g_assert_cmpstr(json_object_get_string_member(obj(&ended), "state"), ==,
                    "cancelled");

    /* The same job, written otherwise: the name given is the default. */
    submit_expect(f, &named,
                  "{\"idempotency_key\": \"k1\", \"name\": \"sh\", "
                  "\"site\": null, \"besteffort\": false, \"priority\": 0, "
                  "\"command\": [\"/bin/sh\", \"-c\", \"echo hi\"], "
                  "\"walltime_s\": 600, \"image\": \"debian-12\", "
                  "\"mem_mib\": 512, \"cpus\": 1, \"vms\": 2}",
                  200, 1);
    g_assert_cmpuint(n_jobs(f, "/v1/jobs?all=1"), ==, 3);
}

/* A key reused for another job: refused, nothing stored. */
static void
test_idempotency_key_reused(Fixture *f, gconstpointer data)
{
    static const char *const bodies[] = {
        SUBMIT_OK ", \"idempotency_key\": \"k1\", \"name\": \"other\"}",
        SUBMIT_OK ", \"idempotency_key\": \"k1\", \"priority\": 1}",
        SUBMIT_OK ", \"idempotency_key\": \"k1\", \"site\": \"rennes\"}",
        SUBMIT_OK ", \"idempotency_key\": \"k1\", \"idempotent\": true}",
        SUBMIT_OK ", \"idempotency_key\": \"k1\", \"besteffort\": true}",
        "{\"vms\": 3, \"cpus\": 1, \"mem_mib\": 512, \"image\": "
        "\"debian-12\", \"walltime_s\": 600, \"command\": [\"/bin/sh\", "
        "\"-c\", \"echo hi\"], \"idempotency_key\": \"k1\"}",
        "{\"vms\": 2, \"cpus\": 1, \"mem_mib\": 512, \"image\": "
        "\"debian-12\", \"walltime_s\": 600, \"command\": [\"/bin/sh\", "
        "\"-c\", \"echo ho\"], \"idempotency_key\": \"k1\"}",
        "{\"vms\": 2, \"cpus\": 1, \"mem_mib\": 512, \"image\": \"alpine\", "
        "\"walltime_s\": 600, \"command\": [\"/bin/sh\", \"-c\", "
        "\"echo hi\"], \"idempotency_key\": \"k1\"}",
    };
    g_auto(Answer) first = {0};

    submit_expect(f, &first, SUBMIT_KEY("k1"), 201, 1);
    for (guint i = 0; i < G_N_ELEMENTS(bodies); i++) {
        g_auto(Answer) a = {0};

        g_test_message("body: %s", bodies[i]);
        request(f, &a, "POST", "/v1/jobs", bodies[i]);
        assert_error(&a, 409,
                     "idempotency key reused with a different submission "
                     "(job 1)");
        g_assert_null(a.location);
    }
    g_assert_cmpuint(n_jobs(f, "/v1/jobs?all=1"), ==, 1);
}

static void
test_idempotency_key_bad(Fixture *f, gconstpointer data)
{
    g_autofree char *longest = g_strnfill(SAL_MAX_IDEMPOTENCY_KEY_LEN, 'k');
    g_autofree char *too_long =
        g_strnfill(SAL_MAX_IDEMPOTENCY_KEY_LEN + 1, 'k');
    g_autofree char *body_longest =
        g_strdup_printf(SUBMIT_OK ", \"idempotency_key\": \"%s\"}", longest);
    g_autofree char *body_too_long =
        g_strdup_printf(SUBMIT_OK ", \"idempotency_key\": \"%s\"}", too_long);
    const struct {
        const char *body;
        const char *error;
    } cases[] = {
        {SUBMIT_KEY(""), "idempotency key is empty"},
        {body_too_long, "idempotency key is longer than 128 characters"},
        {SUBMIT_KEY("a\\tb"), "not printable ASCII"},
        {SUBMIT_KEY("a\\nb"), "not printable ASCII"},
        {SUBMIT_KEY("caf\\u00e9"), "not printable ASCII"},
        {SUBMIT_KEY("caf\xc3\xa9"), "not printable ASCII"},
        {SUBMIT_OK ", \"idempotency_key\": 12}",
         "'idempotency_key' must be a string or null"},
        {SUBMIT_OK ", \"idempotency_key\": [\"k\"]}",
         "'idempotency_key' must be a string or null"},
        {SUBMIT_OK ", \"idempotency_key\": true}",
         "'idempotency_key' must be a string or null"},
    };
    g_auto(Answer) ok = {0};
    g_auto(Answer) null_key = {0};

    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_auto(Answer) a = {0};

        g_test_message("body: %s", cases[i].body);
        request(f, &a, "POST", "/v1/jobs", cases[i].body);
        assert_error(&a, 400, cases[i].error);
    }
    g_assert_cmpuint(n_jobs(f, "/v1/jobs?all=1"), ==, 0);

    submit_expect(f, &ok, body_longest, 201, 1);
    submit_expect(f, &null_key, SUBMIT_OK ", \"idempotency_key\": null}", 201,
                  2);
    g_assert_true(
        json_object_get_null_member(obj(&null_key), "idempotency_key"));
}

/* A key is its owner's: the same key from another uid is another job,
 * root's included (root sees every job, but its key is its own). */
static void
test_idempotency_key_owners(Fixture *f, gconstpointer data)
{
    static const struct {
        gint64 uid;
        guint status;
        gint64 id;
    } steps[] = {
        {4242, 201, 1}, {4243, 201, 2}, {4243, 200, 2}, {4242, 200, 1},
        {0, 201, 3},    {0, 200, 3},    {4242, 200, 1},
    };

    for (guint i = 0; i < G_N_ELEMENTS(steps); i++) {
        g_auto(Answer) a = {0};

        g_test_message("uid %" G_GINT64_FORMAT, steps[i].uid);
        fake_core_set_uid(f->core, steps[i].uid);
        submit_expect(f, &a, SUBMIT_KEY("shared"), steps[i].status,
                      steps[i].id);
        g_assert_cmpint(json_object_get_int_member(obj(&a), "owner_uid"), ==,
                        steps[i].uid);
    }
    fake_core_set_uid(f->core, 0);
    g_assert_cmpuint(n_jobs(f, "/v1/jobs?all=1"), ==, 3);
}

static void
test_log(Fixture *f, gconstpointer data)
{
    g_auto(Answer) a = {0};
    JsonArray *vms;
    JsonObject *vm;

    submit(f);
    request(f, &a, "GET", "/v1/jobs/1/log", NULL);
    g_assert_cmpuint(a.status, ==, 200);
    g_assert_cmpuint(fake_core_last_uid(f->core), ==, getuid());
    vms = json_object_get_array_member(obj(&a), "vms");
    g_assert_cmpuint(json_array_get_length(vms), ==, 2);
    vm = json_array_get_object_element(vms, 0);
    g_assert_cmpint(json_object_get_int_member(vm, "index"), ==, 0);
    g_assert_cmpstr(json_object_get_string_member(vm, "node"), ==, "node-0");
    g_assert_cmpint(json_object_get_int_member(vm, "exit_status"), ==, 0);
    g_assert_true(json_object_get_boolean_member(vm, "truncated"));
    g_assert_cmpstr(json_object_get_string_member(vm, "output"), ==,
                    "\xef\xbf\xbdvm 0\n");
    vm = json_array_get_object_element(vms, 1);
    g_assert_true(json_object_get_null_member(vm, "exit_status"));
    g_assert_false(json_object_get_boolean_member(vm, "truncated"));
    g_assert_cmpstr(json_object_get_string_member(vm, "output"), ==,
                    "vm 1\n");
}

/* Submits a valid best-effort job, returns its id. */
static gint64
submit_besteffort(Fixture *f)
{
    g_auto(Answer) a = {0};

    request(f, &a, "POST", "/v1/jobs",
            SUBMIT_OK ", \"besteffort\": true, \"snapshot_interval_s\": 90}");
    g_assert_cmpuint(a.status, ==, 201);
    return json_object_get_int_member(obj(&a), "id");
}

/* Submits a best-effort job (@besteffort) or a regular one and starts
 * it; returns its id. */
static gint64
submit_running(Fixture *f, gboolean besteffort)
{
    gint64 id = besteffort ? submit_besteffort(f) : submit(f);

    fake_core_start(f->core, id);
    return id;
}

static void
test_suspend_resume(Fixture *f, gconstpointer data)
{
    gint64 id = submit_running(f, TRUE);
    g_auto(Answer) s = {0};
    g_auto(Answer) again = {0};
    g_auto(Answer) r = {0};
    g_auto(Answer) r_again = {0};
    g_auto(Answer) g = {0};

    request(f, &s, "POST", "/v1/jobs/1/suspend", NULL);
    g_assert_cmpuint(s.status, ==, 200);
    g_assert_cmpuint(fake_core_last_uid(f->core), ==, getuid());
    g_assert_cmpint(json_object_get_int_member(obj(&s), "id"), ==, id);
    g_assert_cmpstr(json_object_get_string_member(obj(&s), "state"), ==,
                    "suspended");
    g_assert_true(json_object_get_boolean_member(obj(&s), "held"));
    g_assert_cmpint(json_object_get_int_member(obj(&s), "snapshot_seq"), ==,
                    1);
    g_assert_cmpint(
        json_object_get_int_member(obj(&s), "snapshot_interval_s"), ==, 90);
    g_assert_cmpstr(
        json_object_get_string_member(
            json_array_get_object_element(
                json_object_get_array_member(obj(&s), "vm_list"), 0),
            "state"),
        ==, "suspended");

    /* Already suspended. */
    request(f, &again, "POST", "/v1/jobs/1/suspend", NULL);
    assert_error(&again, 409, "job 1 is suspended, not running");

    request(f, &r, "POST", "/v1/jobs/1/resume", NULL);
    g_assert_cmpuint(r.status, ==, 200);
    g_assert_cmpstr(json_object_get_string_member(obj(&r), "state"), ==,
                    "suspended");
    g_assert_false(json_object_get_boolean_member(obj(&r), "held"));
    request(f, &r_again, "POST", "/v1/jobs/1/resume", NULL);
    assert_error(&r_again, 409, "job 1 is not held suspended");

    request(f, &g, "GET", "/v1/jobs/1", NULL);
    g_assert_false(json_object_get_boolean_member(obj(&g), "held"));
}

static void
test_suspend_refused(Fixture *f, gconstpointer data)
{
    static const struct {
        const char *path;
        const char *body;
        guint status;
        const char *error;
    } cases[] = {
        /* A regular job is never snapshotted. */
        {"/v1/jobs/1/suspend", NULL, 400, "job 1 is not best-effort"},
        /* Not running yet. */
        {"/v1/jobs/2/suspend", NULL, 409, "job 2 is pending, not running"},
        {"/v1/jobs/2/resume", NULL, 409, "job 2 is not held suspended"},
        {"/v1/jobs/3/resume", NULL, 409, "job 3 is not held suspended"},
        /* The body is refused before the job is looked at. */
        {"/v1/jobs/3/suspend", "{}", 400, "this request takes no body"},
        {"/v1/jobs/3/resume", "{\"force\": true}", 400,
         "this request takes no body"},
        {"/v1/jobs/9/suspend", " ", 400, "this request takes no body"},
        {"/v1/jobs/9/suspend", NULL, 404, "no job 9"},
        {"/v1/jobs/9/resume", NULL, 404, "no job 9"},
    };
    g_auto(Answer) g = {0};

    g_assert_cmpint(submit_running(f, FALSE), ==, 1);
    g_assert_cmpint(submit_besteffort(f), ==, 2);
    g_assert_cmpint(submit_running(f, TRUE), ==, 3);
    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_auto(Answer) a = {0};

        g_test_message("POST %s %s", cases[i].path,
                       cases[i].body ? cases[i].body : "");
        request(f, &a, "POST", cases[i].path, cases[i].body);
        assert_error(&a, cases[i].status, cases[i].error);
    }
    /* Nothing changed: job 3 still runs. */
    request(f, &g, "GET", "/v1/jobs/3", NULL);
    g_assert_cmpstr(json_object_get_string_member(obj(&g), "state"), ==,
                    "running");
    g_assert_false(json_object_get_boolean_member(obj(&g), "held"));
}

static void
test_history(Fixture *f, gconstpointer data)
{
    g_auto(Answer) s = {0};
    g_auto(Answer) h = {0};
    g_auto(Answer) fresh = {0};
    g_autofree char *asked =
        g_strdup_printf("suspend asked by uid %u", (guint)getuid());
    JsonArray *snaps, *events;
    JsonObject *o;

    submit_running(f, TRUE);
    g_assert_cmpint(submit(f), ==, 2);
    request(f, &s, "POST", "/v1/jobs/1/suspend", NULL);
    g_assert_cmpuint(s.status, ==, 200);

    request(f, &h, "GET", "/v1/jobs/1/history", NULL);
    g_assert_cmpuint(h.status, ==, 200);
    g_assert_cmpuint(json_object_get_size(obj(&h)), ==, 2);
    snaps = json_object_get_array_member(obj(&h), "snapshots");
    g_assert_cmpuint(json_array_get_length(snaps), ==, 1);
    o = json_array_get_object_element(snaps, 0);
    g_assert_cmpuint(json_object_get_size(o), ==, 5);
    g_assert_cmpint(json_object_get_int_member(o, "seq"), ==, 1);
    g_assert_cmpint(json_object_get_int_member(o, "time"), ==, 1700000210);
    g_assert_cmpint(json_object_get_int_member(o, "pause_ms"), ==, 840);
    g_assert_cmpint(json_object_get_int_member(o, "bytes_sent"), ==,
                    G_GINT64_CONSTANT(1610612736));
    g_assert_cmpint(json_object_get_int_member(o, "bytes_new"), ==,
                    209715200);

    events = json_object_get_array_member(obj(&h), "events");
    g_assert_cmpuint(json_array_get_length(events), ==, 4);
    o = json_array_get_object_element(events, 0);
    g_assert_cmpuint(json_object_get_size(o), ==, 2);
    g_assert_cmpint(json_object_get_int_member(o, "time"), ==, 1700000000);
    g_assert_cmpstr(json_object_get_string_member(o, "text"), ==,
                    "submitted");
    o = json_array_get_object_element(events, 2);
    g_assert_cmpstr(json_object_get_string_member(o, "text"), ==, asked);
    o = json_array_get_object_element(events, 3);
    g_assert_cmpstr(json_object_get_string_member(o, "text"), ==,
                    "suspended: snapshot 1");

    /* Another job's history is its own. */
    request(f, &fresh, "GET", "/v1/jobs/2/history", NULL);
    g_assert_cmpuint(fresh.status, ==, 200);
    g_assert_cmpuint(json_array_get_length(json_object_get_array_member(
                         obj(&fresh), "snapshots")),
                     ==, 0);
    g_assert_cmpuint(json_array_get_length(json_object_get_array_member(
                         obj(&fresh), "events")),
                     ==, 1);
}

static void
test_nodes_images(Fixture *f, gconstpointer data)
{
    g_auto(Answer) a = {0};
    g_auto(Answer) b = {0};
    JsonArray *nodes, *images;
    JsonObject *n;

    request(f, &a, "GET", "/v1/nodes", NULL);
    g_assert_cmpuint(a.status, ==, 200);
    nodes = json_object_get_array_member(obj(&a), "nodes");
    g_assert_cmpuint(json_array_get_length(nodes), ==, 2);
    n = json_array_get_object_element(nodes, 0);
    g_assert_cmpstr(json_object_get_string_member(n, "name"), ==, "node-0");
    g_assert_cmpstr(json_object_get_string_member(n, "site"), ==, "rennes");
    g_assert_cmpstr(json_object_get_string_member(n, "uri"), ==,
                    "qemu+tcp://node-0/system");
    g_assert_cmpint(json_object_get_int_member(n, "cpus"), ==, 32);
    g_assert_cmpint(json_object_get_int_member(n, "mem_mib"), ==, 65536);
    g_assert_true(json_object_get_boolean_member(n, "up"));
    g_assert_true(json_object_get_null_member(n, "error"));
    g_assert_cmpint(json_object_get_int_member(n, "used_cpus"), ==, 4);
    g_assert_cmpint(json_object_get_int_member(n, "used_mem_mib"), ==, 2048);
    g_assert_cmpint(json_object_get_int_member(n, "vms"), ==, 2);
    n = json_array_get_object_element(nodes, 1);
    g_assert_false(json_object_get_boolean_member(n, "up"));
    g_assert_cmpstr(json_object_get_string_member(n, "error"), ==,
                    "connection refused");

    request(f, &b, "GET", "/v1/images", NULL);
    g_assert_cmpuint(b.status, ==, 200);
    images = json_object_get_array_member(obj(&b), "images");
    g_assert_cmpuint(json_array_get_length(images), ==, 2);
    g_assert_cmpstr(json_array_get_string_element(images, 0), ==, "alpine");
    g_assert_cmpstr(json_array_get_string_element(images, 1), ==, "debian-12");
}

/* The socket: mode, stale ones replaced, live ones and files kept. */
static void
test_socket(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GSocket) stale = NULL;
    g_autoptr(GSocketAddress) addr = NULL;
    g_autofree char *stale_path = g_build_filename(f->dir, "stale.sock", NULL);
    g_autofree char *file_path = g_build_filename(f->dir, "file", NULL);
    g_autoptr(GMainContext) ctx = g_main_context_new();
    SaldApi *api;
    struct stat st;

    g_assert_cmpint(stat(f->path, &st), ==, 0);
    g_assert_true(S_ISSOCK(st.st_mode));
    g_assert_cmpint(st.st_mode & 0777, ==, 0666);

    g_main_context_push_thread_default(ctx);

    /* In use: refused, and left alone. */
    api = sald_api_new(f->core, f->path, &error);
    g_assert_null(api);
    g_assert_error(error, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE);
    g_clear_error(&error);
    g_assert_cmpuint(n_jobs(f, "/v1/jobs"), ==, 0);

    /* Bound by a process that died: nothing listens. */
    stale = g_socket_new(G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM,
                         G_SOCKET_PROTOCOL_DEFAULT, &error);
    g_assert_no_error(error);
    addr = g_unix_socket_address_new(stale_path);
    g_assert_true(g_socket_bind(stale, addr, FALSE, &error));
    g_socket_close(stale, NULL);
    api = sald_api_new(f->core, stale_path, &error);
    g_assert_no_error(error);
    sald_api_free(api);
    g_assert_false(g_file_test(stale_path, G_FILE_TEST_EXISTS));

    g_assert_true(g_file_set_contents(file_path, "keep", -1, NULL));
    api = sald_api_new(f->core, file_path, &error);
    g_assert_null(api);
    g_assert_error(error, G_IO_ERROR, G_IO_ERROR_EXISTS);
    g_assert_true(g_file_test(file_path, G_FILE_TEST_IS_REGULAR));

    g_main_context_pop_thread_default(ctx);

    /* Freeing the API removes its socket. */
    stop_server(f);
    g_assert_false(g_file_test(f->path, G_FILE_TEST_EXISTS));
}

#define ADD(name, func)                                                     \
    g_test_add("/api/" name, Fixture, NULL, setup, func, teardown)

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    ADD("submit", test_submit);
    ADD("submit-default-name", test_submit_default_name);
    ADD("submit-bad", test_submit_bad);
    ADD("body-limit", test_body_limit);
    ADD("body-limit-chunked", test_body_limit_chunked);
    ADD("bad-id", test_bad_id);
    ADD("routes", test_routes);
    ADD("list", test_list);
    ADD("get-cancel", test_get_cancel);
    ADD("other-user", test_other_user);
    ADD("idempotency-key", test_idempotency_key);
    ADD("idempotency-key-reused", test_idempotency_key_reused);
    ADD("idempotency-key-bad", test_idempotency_key_bad);
    ADD("idempotency-key-owners", test_idempotency_key_owners);
    ADD("log", test_log);
    ADD("suspend-resume", test_suspend_resume);
    ADD("suspend-refused", test_suspend_refused);
    ADD("history", test_history);
    ADD("nodes-images", test_nodes_images);
    ADD("socket", test_socket);
    return g_test_run();
}
