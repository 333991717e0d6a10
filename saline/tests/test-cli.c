/*
 * The saline program as users run it: usage errors send nothing, an
 * absent salined is exit 3, and against the API on a fake core, what
 * each command prints.
 */
#include <gio/gunixsocketaddress.h>
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
        {{SUBMIT, "d", "--walltime", "1", "--besteffort",
          "--snapshot-interval", "4s", "true", NULL},
         "snapshot interval (s) 4 is out of range 5..86400"},
        {{SUBMIT, "d", "--walltime", "1", "--besteffort",
          "--snapshot-interval", "1:30", "true", NULL},
         "invalid snapshot interval '1:30'"},
        {{"suspend", NULL}, "missing JOB; see 'saline suspend --help'"},
        {{"suspend", "1", "x", NULL}, "invalid job id 'x'"},
        {{"resume", NULL}, "missing JOB; see 'saline resume --help'"},
        {{"resume", "0", NULL}, "invalid job id '0'"},
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
    }
}

/* ---- against the API ---- */

typedef struct {
    char *dir;
    char *path;
    SaldCore *core;
    ApiServer *server;
} Fixture;

static void
setup(Fixture *f, gconstpointer data)
{
    f->dir = sal_test_tmpdir();
    f->path = g_build_filename(f->dir, "saline.sock", NULL);
    f->core = fake_core_new();
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
