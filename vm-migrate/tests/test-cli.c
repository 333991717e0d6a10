/*
 * The vm-migrate program as users run it: exit codes, one-line errors,
 * and the report of migrations that fail (libvirt's test driver cannot
 * migrate; real migrations are integration-tested with libvirtd).
 */
#include <json-glib/json-glib.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/wait.h>

#include "test-node.h"

static const char *cli;
static TestNode *node;

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

/* Run vm-migrate with the NULL-terminated arguments. */
static void
run(Result *r, ...)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_autoptr(GError) error = NULL;
    g_auto(GStrv) envp = g_get_environ();
    int wait_status = -1;
    const char *arg;
    va_list ap;

    g_ptr_array_add(argv, (char *)cli);
    va_start(ap, r);
    while ((arg = va_arg(ap, const char *))) {
        g_ptr_array_add(argv, (char *)arg);
    }
    va_end(ap);
    g_ptr_array_add(argv, NULL);
    envp = g_environ_unsetenv(envp, "LIBVIRT_DEFAULT_URI");
    g_assert_true(g_spawn_sync(NULL, (char **)argv->pdata, envp,
                               G_SPAWN_DEFAULT, NULL, NULL, &r->out, &r->err,
                               &wait_status, &error));
    g_assert_no_error(error);
    g_assert_true(WIFEXITED(wait_status));
    r->status = WEXITSTATUS(wait_status);
}

/* Exit 2, nothing on stdout, exactly "vm-migrate: @message" on stderr. */
static void
assert_usage_error(const Result *r, const char *message)
{
    g_autofree char *expected = g_strdup_printf("vm-migrate: %s\n", message);

    g_assert_cmpint(r->status, ==, 2);
    g_assert_cmpstr(r->out, ==, "");
    g_assert_cmpstr(r->err, ==, expected);
}

static void
test_usage(void)
{
    static const struct {
        const char *args[6];
        const char *message;
    } cases[] = {
        {{NULL}, "missing --to DEST_URI or --placement FILE; see --help"},
        {{"-t", "test:///default", "-p", "x.txt", "dom", NULL},
         "--to and --placement exclude each other"},
        {{"--to", "test:///default", NULL},
         "no DOMAIN to migrate to 'test:///default'"},
        {{"-j", "0", "-t", "test:///default", "d", NULL},
         "invalid --parallel '0': expected a whole number from 1 to 4096"},
        {{"-j", "two", "-t", "test:///default", "d", NULL},
         "invalid --parallel 'two': expected a whole number from 1 to 4096"},
        {{"--parallel=-1", "-t", "test:///default", "d", NULL},
         "invalid --parallel '-1': expected a whole number from 1 to 4096"},
        {{"-b", "0", "-t", "test:///default", "d", NULL},
         "invalid --bandwidth '0': expected a whole number from 1 to "
         "1048576"},
        {{"--timeout", "1.5", "-t", "test:///default", "d", NULL},
         "invalid --timeout '1.5': expected a whole number from 1 to "
         "604800"},
        {{"-p", "x.txt", "dom", NULL},
         "unexpected argument 'dom': with --placement, domains are in the "
         "file"},
        {{"-t", "test:///default", "a", "b", "a", NULL},
         "domain 'a' given twice"},
        {{"-t", "nowhere", "a", NULL},
         "destination URI 'nowhere' is not a libvirt URI like "
         "'qemu+tcp://HOST/system'"},
        {{"--probe-interval", "0", "-t", "test:///default", "d", NULL},
         "invalid --probe-interval '0': expected a whole number from 1 to "
         "1000"},
        {{"--probe-target", "10.0.0.1", "-t", "test:///default", "a", "b"},
         "--probe-target '10.0.0.1': name the domain (DOMAIN=ADDR) when "
         "several migrate"},
        {{"--probe-target", "c=10.0.0.1", "-t", "test:///default", "a",
          NULL},
         "--probe-target 'c=10.0.0.1': domain 'c' does not migrate"},
        {{"--probe-target", "a=10.0.0", "-t", "test:///default", "a", NULL},
         "--probe-target 'a=10.0.0': '10.0.0' is not an IPv4 or IPv6 "
         "address"},
        {{"--probe-target=fd00::1", "-c", "test:///default", "-t",
          "test:///default", "a"},
         NULL},
    };

    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        const char *const *a = cases[i].args;
        g_auto(Result) r = {0};

        g_test_message("case %u", i);
        run(&r, a[0], a[1], a[2], a[3], a[4], a[5], NULL);
        if (cases[i].message) {
            assert_usage_error(&r, cases[i].message);
        } else {
            /* A good target: on to the domain checks. */
            assert_usage_error(&r, "domain 'a' not found on "
                                   "'test:///default'");
        }
    }
}

static void
test_unknown_option(void)
{
    g_auto(Result) r = {0};

    run(&r, "--frobnicate", NULL);
    g_assert_cmpint(r.status, ==, 2);
    g_assert_cmpstr(r.out, ==, "");
    g_assert_true(g_str_has_prefix(r.err, "vm-migrate: "));
    g_assert_nonnull(strstr(r.err, "--frobnicate"));
    g_assert_cmpuint(strlen(r.err), ==, strcspn(r.err, "\n") + 1);
}

static void
test_help(void)
{
    g_auto(Result) r = {0};

    run(&r, "--help", NULL);
    g_assert_cmpint(r.status, ==, 0);
    g_assert_nonnull(strstr(r.out, "--placement"));
    g_assert_nonnull(strstr(r.out, "Placement file"));
    g_assert_nonnull(strstr(r.out, "Exit status:"));
    g_assert_nonnull(strstr(r.out, "qemu+tcp://10.77.2.1/system"));
}

static void
test_unknown_domain(void)
{
    g_auto(Result) r = {0};

    run(&r, "-c", "test:///default", "-t", node->uri, "nosuch", NULL);
    assert_usage_error(&r, "domain 'nosuch' not found on 'test:///default'");
}

static void
test_not_running(void)
{
    g_auto(Result) r = {0};
    g_autofree char *message = g_strdup_printf(
        "domain 'idle1' on '%s' is shut off, not running", node->uri);

    run(&r, "-c", node->uri, "-t", "test:///default", "web1", "idle1", NULL);
    assert_usage_error(&r, message);
}

static void
test_default_source(void)
{
    g_auto(Result) r = {0};

    /* LIBVIRT_DEFAULT_URI unset, no -c: qemu:///system, where web1 is
     * not (or which has no libvirtd at all); the error names it. */
    run(&r, "-t", "test:///default", "web1", NULL);
    g_assert_cmpint(r.status, ==, 2);
    g_assert_cmpstr(r.out, ==, "");
    g_assert_true(g_str_has_prefix(r.err, "vm-migrate: "));
    g_assert_nonnull(strstr(r.err, " 'qemu:///system'"));
    g_assert_cmpuint(strlen(r.err), ==, strcspn(r.err, "\n") + 1);
}

static void
test_unreachable(void)
{
    g_auto(Result) r = {0};

    run(&r, "-c", node->uri, "-t", "qemu+tcp://127.0.0.1:1/system", "web1",
        NULL);
    g_assert_cmpint(r.status, ==, 2);
    g_assert_cmpstr(r.out, ==, "");
    g_assert_true(g_str_has_prefix(
        r.err,
        "vm-migrate: cannot connect to 'qemu+tcp://127.0.0.1:1/system': "));
    g_assert_cmpuint(strlen(r.err), ==, strcspn(r.err, "\n") + 1);
}

static char *
write_placement(const char *name, const char *text)
{
    char *path = g_build_filename(node->dir, name, NULL);

    g_assert_true(g_file_set_contents(path, text, -1, NULL));
    return path;
}

static void
test_placement_errors(void)
{
    g_autofree char *dup = write_placement(
        "dup.txt", "# cluster\nweb1 test:///default\n\nweb1 test:///x\n");
    g_autofree char *bad =
        write_placement("bad.txt", "web1 test:///default\ntr1\n");
    g_autofree char *dup_msg = g_strdup_printf(
        "placement file '%s' line 4: duplicate domain 'web1' (first at "
        "line 2)",
        dup);
    g_autofree char *bad_msg = g_strdup_printf(
        "placement file '%s' line 2: missing destination URI for domain "
        "'tr1'",
        bad);
    g_auto(Result) r1 = {0};
    g_auto(Result) r2 = {0};

    run(&r1, "-c", node->uri, "-p", dup, NULL);
    assert_usage_error(&r1, dup_msg);
    run(&r2, "-c", node->uri, "-p", bad, NULL);
    assert_usage_error(&r2, bad_msg);
    g_unlink(dup);
    g_unlink(bad);
}

/*
 * Both domains pass the checks, then each migration fails (the test
 * driver has no peer-to-peer migration): exit 1 and a JSON report with
 * every error; with --json and stderr not a terminal, stderr stays empty.
 */
static void
test_failed_json(void)
{
    g_autofree char *path = write_placement(
        "ok.txt", "web1 test:///default\ntr1 test:///default\n");
    g_auto(Result) r = {0};
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) error = NULL;
    JsonObject *root, *total;
    JsonArray *vms;

    run(&r, "-c", node->uri, "-p", path, "--json", "-j", "1", NULL);
    g_assert_cmpint(r.status, ==, 1);
    g_assert_cmpstr(r.err, ==, "");
    g_assert_true(json_parser_load_from_data(parser, r.out, -1, &error));
    g_assert_no_error(error);
    root = json_node_get_object(json_parser_get_root(parser));
    vms = json_object_get_array_member(root, "vms");
    g_assert_cmpuint(json_array_get_length(vms), ==, 2);
    for (guint i = 0; i < 2; i++) {
        JsonObject *vm = json_array_get_object_element(vms, i);

        g_assert_cmpstr(json_object_get_string_member(vm, "domain"), ==,
                        i ? "tr1" : "web1");
        g_assert_cmpstr(json_object_get_string_member(vm, "from"), ==,
                        node->uri);
        g_assert_cmpstr(json_object_get_string_member(vm, "to"), ==,
                        "test:///default");
        g_assert_cmpstr(json_object_get_string_member(vm, "status"), ==,
                        "failed");
        g_assert_cmpstr(json_object_get_string_member(vm, "error"), ==,
                        "argument unsupported: p2p migration is not "
                        "supported by the source host");
        g_assert_cmpstr(
            json_object_get_string_member(vm, "page_hash_status"), ==,
            "unknown");
        g_assert_true(json_object_get_null_member(vm, "page_hash"));
        g_assert_true(json_object_get_null_member(vm, "time_ms"));
    }
    total = json_object_get_object_member(root, "total");
    g_assert_cmpint(json_object_get_int_member(total, "vms"), ==, 2);
    g_assert_cmpint(json_object_get_int_member(total, "migrated"), ==, 0);
    g_assert_cmpint(json_object_get_int_member(total, "failed"), ==, 2);
    g_unlink(path);
}

/*
 * --probe: web1 probed at 127.0.0.1 (answers before and after its failed
 * migration: a finite stall), tr1's address unknown (the test driver's
 * domains have no interface).
 */
static void
test_probe(void)
{
    g_auto(Result) r = {0};
    g_auto(Result) text = {0};
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) error = NULL;
    JsonObject *root, *p;
    JsonArray *vms;
    const char *status;

    run(&r, "-c", node->uri, "-t", "test:///default", "--json",
        "--probe-target", "web1=127.0.0.1", "--probe-interval", "5", "web1",
        "tr1", NULL);
    g_assert_cmpint(r.status, ==, 1);
    g_assert_true(json_parser_load_from_data(parser, r.out, -1, &error));
    g_assert_no_error(error);
    root = json_node_get_object(json_parser_get_root(parser));
    vms = json_object_get_array_member(root, "vms");

    p = json_object_get_object_member(json_array_get_object_element(vms, 0),
                                      "probe");
    g_assert_cmpstr(json_object_get_string_member(p, "address"), ==,
                    "127.0.0.1");
    g_assert_cmpstr(json_object_get_string_member(p, "address_source"), ==,
                    "option");
    g_assert_cmpint(json_object_get_int_member(p, "interval_ms"), ==, 5);
    status = json_object_get_string_member(p, "status");
    if (g_str_equal(status, "failed")) {
        /* Neither a ping socket nor a raw one may be opened here. */
        g_assert_true(g_str_has_prefix(
            json_object_get_string_member(p, "error"),
            "cannot open an ICMP socket: "));
    } else {
        g_assert_cmpstr(status, ==, "ok");
        g_assert_cmpint(json_object_get_int_member(p, "sent"), >, 0);
        g_assert_cmpint(json_object_get_int_member(p, "stall_ms"), >=, 0);
        g_assert_cmpint(json_object_get_int_member(
                            json_object_get_object_member(root, "total"),
                            "stall_max_ms"),
                        ==, json_object_get_int_member(p, "stall_ms"));
    }

    p = json_object_get_object_member(json_array_get_object_element(vms, 1),
                                      "probe");
    g_assert_cmpstr(json_object_get_string_member(p, "status"), ==,
                    "no-address");
    g_assert_true(json_object_get_null_member(p, "address"));
    g_assert_nonnull(strstr(json_object_get_string_member(p, "error"),
                            "domain 'tr1'"));

    run(&text, "-q", "-c", node->uri, "-t", "test:///default", "--probe",
        "tr1", NULL);
    g_assert_cmpint(text.status, ==, 1);
    g_assert_nonnull(strstr(text.out, "STALL ms"));
    g_assert_nonnull(strstr(text.out, "\ntr1: probe: address unknown: "));
    g_assert_nonnull(strstr(text.out, "give --probe-target tr1=ADDR\n"));
}

/* The text report, and plain progress lines on stderr (not a tty). */
static void
test_failed_text(void)
{
    g_auto(Result) r = {0};
    g_auto(Result) quiet = {0};
    static const char err_line[] =
        "web1: failed: argument unsupported: p2p migration is not supported "
        "by the source host\n";
    g_autofree char *progress = g_strconcat("vm-migrate: ", err_line, NULL);

    run(&r, "-c", node->uri, "-t", "test:///default", "-b", "50", "web1",
        NULL);
    g_assert_cmpint(r.status, ==, 1);
    g_assert_true(g_str_has_prefix(r.out, "DOMAIN  FROM"));
    g_assert_nonnull(strstr(r.out, "\ntotal "));
    g_assert_true(g_str_has_suffix(r.out, err_line));
    g_assert_cmpstr(r.err, ==, progress);

    run(&quiet, "-q", "-c", node->uri, "-t", "test:///default", "web1",
        NULL);
    g_assert_cmpint(quiet.status, ==, 1);
    g_assert_cmpstr(quiet.err, ==, "");
}

int
main(int argc, char **argv)
{
    g_autoptr(TestNode) n = NULL;

    g_test_init(&argc, &argv, NULL);
    if (argc != 2) {
        g_printerr("usage: %s PATH-TO-vm-migrate\n", argv[0]);
        return 2;
    }
    cli = argv[1];
    n = node = test_node_new();
    g_test_add_func("/cli/usage", test_usage);
    g_test_add_func("/cli/unknown-option", test_unknown_option);
    g_test_add_func("/cli/help", test_help);
    g_test_add_func("/cli/unknown-domain", test_unknown_domain);
    g_test_add_func("/cli/not-running", test_not_running);
    g_test_add_func("/cli/default-source", test_default_source);
    g_test_add_func("/cli/unreachable", test_unreachable);
    g_test_add_func("/cli/placement-errors", test_placement_errors);
    g_test_add_func("/cli/failed-json", test_failed_json);
    g_test_add_func("/cli/failed-text", test_failed_text);
    g_test_add_func("/cli/probe", test_probe);
    return g_test_run();
}
