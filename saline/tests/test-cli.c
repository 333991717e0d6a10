/*
 * The saline program as users run it: usage errors send nothing, an
 * absent salined is exit 3, and against the API on a fake core, what
 * each command prints.
 */
#include <gio/gunixsocketaddress.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api-server.h"
#include "fake-core.h"
#include "sal-json.h"
#include "sal-test.h"

static const char *cli;

typedef struct {
    int status;
    char *out;
    char *err;
} Result;

static void
result_clear(Result *r)
{
    g_free(r->out);
    g_free(r->err);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(Result, result_clear)

/* Runs saline with SALINE_SOCKET=@socket and the NULL-terminated
 * arguments, times shown in UTC. */
static void
run(Result *r, const char *socket, ...)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_autoptr(GError) error = NULL;
    g_auto(GStrv) envp = g_get_environ();
    int wait_status = -1;
    const char *arg;
    va_list ap;

    g_ptr_array_add(argv, (char *)cli);
    va_start(ap, socket);
    while ((arg = va_arg(ap, const char *))) {
        g_ptr_array_add(argv, (char *)arg);
    }
    va_end(ap);
    g_ptr_array_add(argv, NULL);
    envp = g_environ_setenv(envp, "SALINE_SOCKET", socket, TRUE);
    envp = g_environ_setenv(envp, "TZ", "UTC", TRUE);
    g_assert_true(g_spawn_sync(NULL, (char **)argv->pdata, envp,
                               G_SPAWN_DEFAULT, NULL, NULL, &r->out, &r->err,
                               &wait_status, &error));
    g_assert_no_error(error);
    g_assert_true(WIFEXITED(wait_status));
    r->status = WEXITSTATUS(wait_status);
}

/* Exit @status, nothing on stdout, one line "saline: ...@part..." */
static void
assert_fails(const Result *r, int status, const char *part)
{
    g_assert_cmpint(r->status, ==, status);
    g_assert_cmpstr(r->out, ==, "");
    g_assert_true(g_str_has_prefix(r->err, "saline: "));
    g_assert_true(g_str_has_suffix(r->err, "\n"));
    g_assert_cmpint(strchr(r->err, '\n') - r->err, ==, strlen(r->err) - 1);
    if (!strstr(r->err, part)) {
        g_error("'%s' lacks '%s'", r->err, part);
    }
}

#define SUBMIT "submit", "-n", "2", "-c", "1", "-m", "1G", "--image"

static void
test_usage(void)
{
    static const struct {
        const char *args[16];
        const char *message;
    } cases[] = {
        {{NULL}, "missing COMMAND: submit"},
        {{"frob", NULL}, "unknown command 'frob'"},
        {{"--bogus", "stat", NULL}, "Unknown option --bogus"},
        {{"stat", "--bogus", NULL}, "Unknown option --bogus"},
        {{"stat", "abc", NULL}, "invalid job id 'abc'"},
        {{"stat", "-1", NULL}, "Unknown option -1"},
        {{"stat", "0", NULL}, "invalid job id '0'"},
        {{"stat", "99999999999999999999", NULL}, "invalid job id"},
        {{"stat", "1", "2", NULL}, "one JOB at most"},
        {{"stat", "--all", "1", NULL}, "--all lists jobs"},
        {{"del", NULL}, "missing JOB"},
        {{"del", "1", "x", NULL}, "invalid job id 'x'"},
        {{"log", NULL}, "missing JOB"},
        {{"log", "1", "--vm", "a", NULL}, "invalid VM index 'a'"},
        {{"log", "1", "--vm", "1024", NULL}, "invalid VM index '1024'"},
        {{"nodes", "x", NULL}, "unexpected argument 'x'"},
        {{"submit", "-c", "1", "-m", "1G", "--image", "d", "--walltime", "1",
          "--", "true", NULL},
         "missing -n VMS"},
        {{SUBMIT, "d", "--walltime", "1", NULL}, "missing COMMAND"},
        {{SUBMIT, "d", "--", "true", NULL}, "missing --walltime T"},
        {{SUBMIT, "d", "--walltime", "0", "true", NULL}, "walltime"},
        {{SUBMIT, "d", "--walltime", "31d", "true", NULL}, "walltime"},
        {{SUBMIT, "d", "--walltime", "1:61", "true", NULL}, "walltime"},
        {{"submit", "-n", "-3", "-c", "1", "-m", "1G", "--image", "d",
          "--walltime", "1", "true", NULL},
         "invalid VM count '-3'"},
        {{"submit", "-n", "1", "-c", "1025", "-m", "1G", "--image", "d",
          "--walltime", "1", "true", NULL},
         "invalid CPU count '1025'"},
        {{"submit", "-n", "1", "-c", "1", "-m", "2Q", "--image", "d",
          "--walltime", "1", "true", NULL},
         "invalid memory '2Q'"},
        {{SUBMIT, "d", "--walltime", "1", "-p", "5000", "true", NULL},
         "invalid priority '5000'"},
        {{SUBMIT, "d", "--walltime", "1", "--site", "a/b", "true", NULL},
         "invalid site name 'a/b'"},
        {{SUBMIT, "", "--walltime", "1", "true", NULL}, "image is empty"},
        {{SUBMIT, "d", "--walltime", "1", "--snapshot-interval", "90s", "true",
          NULL},
         "--snapshot-interval is for best-effort jobs: add --besteffort"},
        {{SUBMIT, "d", "--walltime", "1", "--besteffort", "--snapshot-interval",
          "4s", "true", NULL},
         "snapshot interval (s) 4 is out of range 5..86400"},
        {{SUBMIT, "d", "--walltime", "1", "--besteffort", "--snapshot-interval",
          "1:30", "true", NULL},
         "invalid snapshot interval '1:30'"},
        {{"suspend", NULL}, "missing JOB; see 'saline suspend --help'"},
        {{"suspend", "1", "x", NULL}, "invalid job id 'x'"},
        {{"resume", NULL}, "missing JOB; see 'saline resume --help'"},
        {{"resume", "0", NULL}, "invalid job id '0'"},
        {{SUBMIT, "d", "--walltime", "1", "--idempotency-key", "", "true",
          NULL},
         "idempotency key is empty"},
        {{SUBMIT, "d", "--walltime", "1", "--idempotency-key", "a\tb", "true",
          NULL},
         "idempotency key has a character that is not printable ASCII"},
        {{SUBMIT, "d", "--walltime", "1", "--idempotency-key",
          "0123456789012345678901234567890123456789012345678901234567890123"
          "456789012345678901234567890123456789012345678901234567890123456789",
          "true", NULL},
         "idempotency key is longer than 128 characters"},
    };
    g_autofree char *dir = sal_test_tmpdir();
    g_autofree char *path = g_build_filename(dir, "probe.sock", NULL);
    g_autoptr(GError) error = NULL;
    g_autoptr(GSocket) probe = g_socket_new(
        G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, 0, &error);
    g_autoptr(GSocketAddress) addr = g_unix_socket_address_new(path);

    /* A socket that would see any connection attempt. */
    g_assert_no_error(error);
    g_assert_true(g_socket_bind(probe, addr, FALSE, &error));
    g_assert_true(g_socket_listen(probe, &error));

    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        const char *const *a = cases[i].args;
        g_auto(Result) r = {0};

        g_test_message("case %u: %s", i, cases[i].message);
        run(&r, path, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8],
            a[9], a[10], a[11], a[12], a[13], a[14], a[15], NULL);
        assert_fails(&r, 2, cases[i].message);
        g_assert_cmpint(g_socket_condition_check(probe, G_IO_IN), ==, 0);
    }
    g_socket_close(probe, NULL);
    sal_test_rmdir(dir);
}

static void
test_unreachable(void)
{
    g_autofree char *dir = sal_test_tmpdir();
    g_autofree char *path = g_build_filename(dir, "none.sock", NULL);
    g_auto(Result) a = {0};
    g_auto(Result) b = {0};

    run(&a, path, "stat", NULL);
    assert_fails(&a, 3, "cannot reach salined at");
    g_assert_nonnull(strstr(a.err, path));
    /* --socket wins over the environment. */
    run(&b, "/nonexistent/x.sock", "--socket", path, SUBMIT, "d",
        "--walltime", "1", "true", NULL);
    assert_fails(&b, 3, path);
    {
        g_auto(Result) c = {0};

        run(&c, path, "suspend", "1", "2", NULL);
        assert_fails(&c, 3, "cannot reach salined at");
    }
    sal_test_rmdir(dir);
}

static void
test_help(void)
{
    static const char *const cmds[] = {"submit", "stat",   "del", "suspend",
                                       "resume", "nodes", "log"};
    g_auto(Result) r = {0};

    run(&r, "/nonexistent", "--help", NULL);
    g_assert_cmpint(r.status, ==, 0);
    for (guint i = 0; i < G_N_ELEMENTS(cmds); i++) {
        g_auto(Result) c = {0};

        g_assert_nonnull(strstr(r.out, cmds[i]));
        run(&c, "/nonexistent", cmds[i], "--help", NULL);
        g_assert_cmpint(c.status, ==, 0);
        g_assert_nonnull(strstr(c.out, "Exit status:"));
        g_assert_nonnull(strstr(c.out, "--socket"));
        if (g_str_equal(cmds[i], "submit")) {
            g_assert_nonnull(strstr(c.out, "--idempotency-key=KEY"));
        }
    }
}

/* ---- against the API ---- */

typedef struct {
    char *dir;
    char *path;
    SaldCore *core;
    ApiServer *server;
} Fixture;

/* No salined yet: the test starts it. */
static void
setup_bare(Fixture *f, gconstpointer data)
{
    f->dir = sal_test_tmpdir();
    f->path = g_build_filename(f->dir, "saline.sock", NULL);
    f->core = fake_core_new();
}

static void
setup(Fixture *f, gconstpointer data)
{
    setup_bare(f, data);
    f->server = api_server_start(f->core, f->path);
}

static void
teardown(Fixture *f, gconstpointer data)
{
    api_server_stop(f->server);
    fake_core_free(f->core);
    g_free(f->path);
    sal_test_rmdir(f->dir);
    g_free(f->dir);
}

static void
submit(Fixture *f)
{
    g_auto(Result) r = {0};

    run(&r, f->path, SUBMIT, "debian-12", "--walltime", "1:30", "--name",
        "demo", "--", "sh", "-c", "echo hi", NULL);
    g_assert_cmpstr(r.err, ==, "");
    g_assert_cmpint(r.status, ==, 0);
}

static void
test_submit(Fixture *f, gconstpointer data)
{
    g_auto(Result) r = {0};
    g_auto(Result) bad = {0};
    g_auto(Result) st = {0};
    g_auto(Result) ssi = {0};
    g_auto(Result) ssi_st = {0};

    run(&r, f->path, SUBMIT, "debian-12", "--walltime", "1:30",
        "--besteffort", "-p", "-7", "ls", "-l", "/job", NULL);
    g_assert_cmpstr(r.err, ==, "");
    g_assert_cmpstr(r.out, ==, "SALINE_JOB_ID=1\n");
    g_assert_cmpint(r.status, ==, 0);

    run(&st, f->path, "stat", "1", NULL);
    g_assert_cmpint(st.status, ==, 0);
    g_assert_true(g_str_has_prefix(st.out, "Job_Id: 1\n"));
    g_assert_nonnull(strstr(st.out, "\n    name = ls\n"));
    g_assert_nonnull(strstr(st.out, "\n    command = ls -l /job\n"));
    g_assert_nonnull(strstr(st.out, "\n    besteffort = yes\n"));
    g_assert_nonnull(strstr(st.out, "\n    ssi = no\n"));
    g_assert_nonnull(strstr(st.out, "\n    priority = -7\n"));
    g_assert_nonnull(strstr(st.out, "\n    memory = 1G\n"));
    g_assert_nonnull(strstr(st.out, "\n    walltime = 1:30:00\n"));
    g_assert_nonnull(strstr(st.out, "\n    site = any\n"));
    g_assert_nonnull(strstr(st.out, "\n    exit_status = -\n"));
    g_assert_nonnull(strstr(st.out,
                            "\n    vm 1 = node=node-1 ip=10.0.1.3 "
                            "mac=52:54:00:00:00:01 domain=saline-1-1 "
                            "state=placed exit=-\n"));

    /* Refused by salined: its reason, exit 1. */
    run(&bad, f->path, SUBMIT, "fedora", "--walltime", "1", "true", NULL);
    assert_fails(&bad, 1, "saline: unknown image 'fedora'");

    /* An SSI job. */
    run(&ssi, f->path, SUBMIT, "debian-12", "--walltime", "1", "--ssi", "true",
        NULL);
    g_assert_cmpstr(ssi.out, ==, "SALINE_JOB_ID=2\n");
    run(&ssi_st, f->path, "stat", "2", NULL);
    g_assert_nonnull(strstr(ssi_st.out, "\n    ssi = yes\n"));
}

/* The jobs the fake core holds, all users'. */
static GPtrArray *
core_jobs(Fixture *f)
{
    g_autoptr(GError) error = NULL;
    GPtrArray *jobs = sald_core_list_jobs(f->core, 0, TRUE, NULL, &error);

    g_assert_no_error(error);
    return jobs;
}

/* A key given is the job's; submitting again with it gives the same
 * job, unless the job differs. Without one, each submission has a key
 * of its own. */
static void
test_submit_key(Fixture *f, gconstpointer data)
{
    g_autoptr(GPtrArray) jobs = NULL;
    g_auto(Result) a = {0};
    g_auto(Result) b = {0};
    g_auto(Result) other = {0};
    g_auto(Result) st = {0};

    run(&a, f->path, SUBMIT, "debian-12", "--walltime", "1:30",
        "--idempotency-key", "nightly-2024-05-01", "--", "./build", NULL);
    g_assert_cmpstr(a.err, ==, "");
    g_assert_cmpstr(a.out, ==, "SALINE_JOB_ID=1\n");
    run(&b, f->path, SUBMIT, "debian-12", "--walltime", "1:30",
        "--idempotency-key", "nightly-2024-05-01", "--", "./build", NULL);
    g_assert_cmpstr(b.err, ==, "");
    g_assert_cmpstr(b.out, ==, "SALINE_JOB_ID=1\n");
    g_assert_cmpint(b.status, ==, 0);

    run(&other, f->path, SUBMIT, "debian-12", "--walltime", "2:00",
        "--idempotency-key", "nightly-2024-05-01", "--", "./build", NULL);
    assert_fails(&other, 1,
                 "saline: idempotency key reused with a different submission "
                 "(job 1)");

    run(&st, f->path, "stat", "1", NULL);
    g_assert_nonnull(
        strstr(st.out, "\n    idempotency_key = nightly-2024-05-01\n"));

    submit(f);
    submit(f);
    jobs = core_jobs(f);
    g_assert_cmpuint(jobs->len, ==, 3);
    for (guint i = 1; i < 3; i++) {
        const char *key = ((SalJob *)jobs->pdata[i])->idempotency_key;

        g_assert_nonnull(key);
        g_assert_true(g_uuid_string_is_valid(key));
    }
    g_assert_cmpstr(((SalJob *)jobs->pdata[1])->idempotency_key, !=,
                    ((SalJob *)jobs->pdata[2])->idempotency_key);
}

/*
 * A salined that dies with each request it reads: it accepts on the
 * fixture's socket, reads a request whole, stores a submission in the
 * core if @store, and closes the connection without an answer. With
 * @restart, the first request is the last: the socket goes away, and
 * a salined that answers comes back on it a moment later.
 */
typedef struct {
    Fixture *f;
    GSocket *listener;
    GCancellable *cancel;
    gboolean store;
    gboolean restart;
    gint n_requests;
    char *first_key; /* of the first submission */
} Cutter;

static char *
read_body(GSocket *conn)
{
    g_autoptr(GString) in = g_string_new(NULL);
    g_autofree char *head = NULL;
    const char *end, *field;
    gsize head_len;
    guint64 len;
    char buf[4096];

    while (!(end = strstr(in->str, "\r\n\r\n"))) {
        gssize n = g_socket_receive(conn, buf, sizeof(buf), NULL, NULL);

        g_assert_cmpint(n, >, 0);
        g_string_append_len(in, buf, n);
    }
    head_len = end + 4 - in->str;
    head = g_ascii_strdown(in->str, head_len);
    field = strstr(head, "\r\ncontent-length:");
    g_assert_nonnull(field);
    len = g_ascii_strtoull(field + 17, NULL, 10);
    while (in->len < head_len + len) {
        gssize n = g_socket_receive(conn, buf, sizeof(buf), NULL, NULL);

        g_assert_cmpint(n, >, 0);
        g_string_append_len(in, buf, n);
    }
    return g_strndup(in->str + head_len, len);
}

static gpointer
cutter_thread(gpointer data)
{
    Cutter *c = data;
    GSocket *conn;

    while ((conn = g_socket_accept(c->listener, c->cancel, NULL))) {
        g_autofree char *body = read_body(conn);
        g_autoptr(GError) error = NULL;
        g_autoptr(JsonNode) node = sal_json_parse(body, strlen(body), &error);
        g_autoptr(SalJob) job = NULL;

        g_assert_no_error(error);
        job = sal_job_from_submission(node, &error);
        g_assert_no_error(error);
        if (!c->first_key) {
            c->first_key = g_strdup(job->idempotency_key);
        }
        g_atomic_int_inc(&c->n_requests);
        if (c->store) {
            g_assert_true(sald_core_submit(c->f->core, getuid(), job, &error));
        }
        g_socket_close(conn, NULL);
        g_object_unref(conn);
        if (c->restart) {
            g_socket_close(c->listener, NULL);
            g_assert_cmpint(g_unlink(c->f->path), ==, 0);
            g_usleep(300 * 1000);
            c->f->server = api_server_start(c->f->core, c->f->path);
            break;
        }
    }
    return NULL;
}

static GThread *
cutter_start(Cutter *c, Fixture *f)
{
    g_autoptr(GSocketAddress) addr = g_unix_socket_address_new(f->path);
    g_autoptr(GError) error = NULL;

    c->f = f;
    c->cancel = g_cancellable_new();
    c->listener =
        g_socket_new(G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, 0, &error);
    g_assert_no_error(error);
    g_assert_true(g_socket_bind(c->listener, addr, FALSE, &error));
    g_assert_true(g_socket_listen(c->listener, &error));
    return g_thread_new("cutter", cutter_thread, c);
}

/* Its findings stay: first_key is the caller's to free. */
static void
cutter_stop(Cutter *c, GThread *thread)
{
    g_cancellable_cancel(c->cancel);
    g_thread_join(thread);
    g_socket_close(c->listener, NULL);
    g_object_unref(c->listener);
    g_object_unref(c->cancel);
}

/*
 * salined stored the job and died before answering: saline waits for it
 * to come back and submits again with the same key, and salined answers
 * the job it has. The user sees a first-time success; one job.
 */
static void
test_submit_answer_lost(Fixture *f, gconstpointer data)
{
    Cutter c = {.store = TRUE, .restart = TRUE};
    GThread *thread = cutter_start(&c, f);
    g_autoptr(GPtrArray) jobs = NULL;
    g_auto(Result) r = {0};

    run(&r, f->path, SUBMIT, "debian-12", "--walltime", "1:30", "--", "true",
        NULL);
    g_assert_cmpstr(r.err, ==, "");
    g_assert_cmpstr(r.out, ==, "SALINE_JOB_ID=1\n");
    g_assert_cmpint(r.status, ==, 0);
    cutter_stop(&c, thread);
    g_assert_cmpint(c.n_requests, ==, 1);

    jobs = core_jobs(f);
    g_assert_cmpuint(jobs->len, ==, 1);
    g_assert_true(g_uuid_string_is_valid(c.first_key));
    g_assert_cmpstr(((SalJob *)jobs->pdata[0])->idempotency_key, ==,
                    c.first_key);
    g_free(c.first_key);
}

static gpointer
start_later(gpointer data)
{
    Fixture *f = data;

    g_usleep(G_USEC_PER_SEC);
    f->server = api_server_start(f->core, f->path);
    return NULL;
}

/* No salined yet (it is restarting): saline waits for it. */
static void
test_submit_waits(Fixture *f, gconstpointer data)
{
    GThread *thread = g_thread_new("later", start_later, f);
    g_autoptr(GPtrArray) jobs = NULL;
    g_auto(Result) r = {0};

    run(&r, f->path, SUBMIT, "debian-12", "--walltime", "1:30", "--", "true",
        NULL);
    g_thread_join(thread);
    g_assert_cmpstr(r.err, ==, "");
    g_assert_cmpstr(r.out, ==, "SALINE_JOB_ID=1\n");
    g_assert_cmpint(r.status, ==, 0);
    jobs = core_jobs(f);
    g_assert_cmpuint(jobs->len, ==, 1);
}

/* Sent again once only; then the user learns the key to submit with. */
static void
test_submit_retry_once(Fixture *f, gconstpointer data)
{
    Cutter c = {0};
    GThread *thread = cutter_start(&c, f);
    g_auto(Result) r = {0};

    run(&r, f->path, SUBMIT, "debian-12", "--walltime", "1:30",
        "--idempotency-key", "k-17", "--", "true", NULL);
    assert_fails(&r, 3, "cannot reach salined at");
    g_assert_true(g_str_has_suffix(
        r.err, "it may have the job: submit again with --idempotency-key "
               "k-17\n"));
    /* The second connection is cut before the CLI ends. */
    g_assert_cmpint(g_atomic_int_get(&c.n_requests), ==, 2);
    cutter_stop(&c, thread);
    g_assert_cmpstr(c.first_key, ==, "k-17");
    g_free(c.first_key);
}

static void
test_stat(Fixture *f, gconstpointer data)
{
    g_autofree char *user = sal_uid_name(getuid());
    g_autofree char *row = NULL;
    g_auto(Result) r = {0};
    g_auto(Result) all = {0};
    g_auto(Result) json = {0};
    g_auto(Result) none = {0};
    g_autoptr(JsonNode) node = NULL;
    g_autoptr(GError) error = NULL;
    g_auto(GStrv) lines = NULL;

    submit(f);
    submit(f);
    {
        g_auto(Result) d = {0};

        run(&d, f->path, "del", "1", NULL);
        g_assert_cmpstr(d.out, ==, "Job 1: cancelled\n");
    }
    run(&r, f->path, "stat", NULL);
    g_assert_cmpint(r.status, ==, 0);
    lines = g_strsplit(r.out, "\n", -1);
    g_assert_cmpuint(g_strv_length(lines), ==, 4);
    g_assert_true(g_str_has_prefix(lines[0], "Job id Name User"));
    g_assert_true(g_str_has_prefix(lines[1], "------ ---- ----"));
    row = g_strdup_printf("2      demo %s pending", user);
    g_assert_true(g_str_has_prefix(lines[2], row));
    g_assert_true(g_str_has_suffix(lines[2], "2   1:30:00  0:00:00 "
                                             "node-0,node-1"));

    run(&all, f->path, "stat", "--all", NULL);
    g_assert_nonnull(strstr(all.out, "cancelled"));

    run(&json, f->path, "stat", "--json", NULL);
    node = sal_json_parse(json.out, strlen(json.out), &error);
    g_assert_no_error(error);
    g_assert_cmpuint(json_array_get_length(json_object_get_array_member(
                         json_node_get_object(node), "jobs")),
                     ==, 1);

    run(&none, f->path, "stat", "9", NULL);
    assert_fails(&none, 1, "saline: no job 9");
}

static void
test_del(Fixture *f, gconstpointer data)
{
    g_auto(Result) r = {0};

    submit(f);
    run(&r, f->path, "del", "1", "7", "1", NULL);
    g_assert_cmpint(r.status, ==, 1);
    /* The others are cancelled all the same. */
    g_assert_cmpstr(r.out, ==, "Job 1: cancelled\n");
    g_assert_nonnull(strstr(r.err, "saline: no job 7\n"));
    g_assert_nonnull(strstr(r.err, "saline: job 1 cannot go from"));
}

/* Job 1: best-effort, snapshots every 2 minutes, running. */
static void
submit_besteffort_running(Fixture *f)
{
    g_auto(Result) r = {0};

    run(&r, f->path, SUBMIT, "debian-12", "--walltime", "1:30",
        "--besteffort", "--snapshot-interval", "2m", "--", "./simulate",
        NULL);
    g_assert_cmpstr(r.err, ==, "");
    g_assert_cmpstr(r.out, ==, "SALINE_JOB_ID=1\n");
    fake_core_start(f->core, 1);
}

static void
test_suspend_resume(Fixture *f, gconstpointer data)
{
    g_auto(Result) s = {0};
    g_auto(Result) again = {0};
    g_auto(Result) r = {0};
    g_auto(Result) r_again = {0};
    g_auto(Result) regular = {0};
    g_auto(Result) none = {0};

    submit_besteffort_running(f);
    submit(f);
    fake_core_start(f->core, 2);

    run(&s, f->path, "suspend", "1", NULL);
    g_assert_cmpstr(s.err, ==, "");
    g_assert_cmpstr(s.out, ==, "Job 1: suspended (held)\n");
    g_assert_cmpint(s.status, ==, 0);

    run(&again, f->path, "suspend", "1", NULL);
    assert_fails(&again, 1, "saline: job 1 is suspended, not running");

    run(&r, f->path, "resume", "1", NULL);
    g_assert_cmpstr(r.err, ==, "");
    g_assert_cmpstr(r.out, ==, "Job 1: suspended\n");
    g_assert_cmpint(r.status, ==, 0);

    run(&r_again, f->path, "resume", "1", NULL);
    assert_fails(&r_again, 1, "saline: job 1 is not held suspended");

    run(&regular, f->path, "suspend", "2", NULL);
    assert_fails(&regular, 1, "saline: job 2 is not best-effort");

    run(&none, f->path, "resume", "7", NULL);
    assert_fails(&none, 1, "saline: no job 7");
}

/* Each JOB in turn; a refusal does not stop the others. */
static void
test_suspend_several(Fixture *f, gconstpointer data)
{
    g_auto(Result) r = {0};

    submit_besteffort_running(f);
    run(&r, f->path, "suspend", "7", "1", NULL);
    g_assert_cmpint(r.status, ==, 1);
    g_assert_cmpstr(r.out, ==, "Job 1: suspended (held)\n");
    g_assert_cmpstr(r.err, ==, "saline: no job 7\n");
}

static void
test_stat_history(Fixture *f, gconstpointer data)
{
    g_auto(Result) before = {0};
    g_auto(Result) s = {0};
    g_auto(Result) st = {0};
    g_auto(Result) json = {0};
    g_autoptr(JsonNode) node = NULL;
    g_autoptr(GError) error = NULL;
    g_autofree char *asked =
        g_strdup_printf("\n    2023-11-14 22:16:40  suspend asked by uid %u\n",
                        (guint)getuid());
    JsonObject *o;
    JsonArray *snaps;

    submit_besteffort_running(f);
    run(&before, f->path, "stat", "1", NULL);
    g_assert_cmpint(before.status, ==, 0);
    g_assert_nonnull(strstr(before.out, "\n    snapshot_interval = 0:02:00\n"
                                        "    snapshot_seq = -\n"
                                        "    held = no\n"));
    g_assert_nonnull(strstr(before.out, "\nSnapshots: none\nEvents:\n"
                                        "    2023-11-14 22:13:20  submitted\n"
                                        "    2023-11-14 22:13:40  started\n"));

    run(&s, f->path, "suspend", "1", NULL);
    g_assert_cmpint(s.status, ==, 0);
    run(&st, f->path, "stat", "1", NULL);
    g_assert_cmpstr(st.err, ==, "");
    g_assert_cmpint(st.status, ==, 0);
    g_assert_nonnull(strstr(st.out, "\n    state = suspended\n"));
    g_assert_nonnull(strstr(st.out, "\n    snapshot_seq = 1\n"
                                    "    held = yes\n"));
    g_assert_nonnull(strstr(st.out, "state=suspended exit=-\n"));
    g_assert_nonnull(strstr(st.out,
                            "\nSnapshots:\n"
                            "Seq Time                Pause  Sent    New\n"
                            "--- ------------------- ------ ------- ---------\n"
                            "1   2023-11-14 22:16:50 840 ms 1.5 GiB 200.0 MiB\n"
                            "Events:\n"));
    g_assert_nonnull(strstr(st.out, asked));
    g_assert_true(g_str_has_suffix(st.out,
                                   "    2023-11-14 22:16:50  suspended: "
                                   "snapshot 1\n"));

    /* The job as salined answers it, plus its history. */
    run(&json, f->path, "stat", "1", "--json", NULL);
    g_assert_cmpint(json.status, ==, 0);
    node = sal_json_parse(json.out, strlen(json.out), &error);
    g_assert_no_error(error);
    o = json_node_get_object(node);
    g_assert_cmpstr(json_object_get_string_member(o, "state"), ==,
                    "suspended");
    g_assert_true(json_object_get_boolean_member(o, "held"));
    g_assert_cmpint(json_object_get_int_member(o, "snapshot_interval_s"), ==,
                    120);
    snaps = json_object_get_array_member(o, "snapshots");
    g_assert_cmpuint(json_array_get_length(snaps), ==, 1);
    g_assert_cmpint(json_object_get_int_member(
                        json_array_get_object_element(snaps, 0), "bytes_new"),
                    ==, 209715200);
    g_assert_cmpuint(
        json_array_get_length(json_object_get_array_member(o, "events")), ==,
        4);
}

static void
test_log(Fixture *f, gconstpointer data)
{
    g_auto(Result) r = {0};
    g_auto(Result) one = {0};
    g_auto(Result) none = {0};

    submit(f);
    run(&r, f->path, "log", "1", NULL);
    g_assert_cmpint(r.status, ==, 0);
    g_assert_cmpstr(r.out, ==, "[vm 0] \xef\xbf\xbdvm 0\n[vm 1] vm 1\n");
    g_assert_cmpstr(r.err, ==,
                    "saline: vm 0 on node-0: exit 0, output truncated\n"
                    "saline: vm 1 on node-1: running\n");

    run(&one, f->path, "log", "1", "--vm", "1", NULL);
    g_assert_cmpint(one.status, ==, 0);
    g_assert_cmpstr(one.out, ==, "vm 1\n");
    g_assert_cmpstr(one.err, ==, "saline: vm 1 on node-1: running\n");

    run(&none, f->path, "log", "1", "--vm", "5", NULL);
    assert_fails(&none, 1, "job 1 has no VM 5");
}

static void
test_nodes(Fixture *f, gconstpointer data)
{
    g_auto(Result) r = {0};

    run(&r, f->path, "nodes", NULL);
    g_assert_cmpint(r.status, ==, 0);
    g_assert_cmpstr(r.out, ==,
                    "Name   Site   State CPUs Memory VMs Error\n"
                    "------ ------ ----- ---- ------ --- ------------------\n"
                    "node-0 rennes up    4/32 2G/64G 2   -\n"
                    "node-1 rennes down  0/32 0/64G  0   connection refused\n");
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_assert_cmpint(argc, ==, 2);
    cli = argv[1];
    g_test_add_func("/cli/usage", test_usage);
    g_test_add_func("/cli/unreachable", test_unreachable);
    g_test_add_func("/cli/help", test_help);
    g_test_add("/cli/submit", Fixture, NULL, setup, test_submit, teardown);
    g_test_add("/cli/submit-key", Fixture, NULL, setup, test_submit_key,
               teardown);
    g_test_add("/cli/submit-answer-lost", Fixture, NULL, setup_bare,
               test_submit_answer_lost, teardown);
    g_test_add("/cli/submit-waits", Fixture, NULL, setup_bare,
               test_submit_waits, teardown);
    g_test_add("/cli/submit-retry-once", Fixture, NULL, setup_bare,
               test_submit_retry_once, teardown);
    g_test_add("/cli/stat", Fixture, NULL, setup, test_stat, teardown);
    g_test_add("/cli/del", Fixture, NULL, setup, test_del, teardown);
    g_test_add("/cli/log", Fixture, NULL, setup, test_log, teardown);
    g_test_add("/cli/suspend-resume", Fixture, NULL, setup,
               test_suspend_resume, teardown);
    g_test_add("/cli/suspend-several", Fixture, NULL, setup,
               test_suspend_several, teardown);
    g_test_add("/cli/stat-history", Fixture, NULL, setup, test_stat_history,
               teardown);
    g_test_add("/cli/nodes", Fixture, NULL, setup, test_nodes, teardown);
    return g_test_run();
}
