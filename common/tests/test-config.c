#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "vc-config.h"
#include "vc-error.h"
#include "vc-log.h"

static const VcConfigKey keys[] = {
    {"daemon", "socket", VC_CONFIG_STRING, "/run/x.sock", 0, 0},
    {"daemon", "threads", VC_CONFIG_INT, "2", 1, 64},
    {"daemon", "verbose", VC_CONFIG_BOOL, "false", 0, 0},
    {"site", "name", VC_CONFIG_STRING, NULL, 0, 0},
    {"node *", "uri", VC_CONFIG_STRING, NULL, 0, 0, VC_CONFIG_REQUIRED},
    {"node *", "cpus", VC_CONFIG_INT, "1", 1, 64},
    {"node *", "bridge", VC_CONFIG_STRING, NULL, 0, 0},
    /* [site] and [site NAME] live side by side. */
    {"site *", "network", VC_CONFIG_STRING, NULL, 0, 0, VC_CONFIG_REQUIRED},
};

static VcConfig *
load(const char *text, GError **error)
{
    g_autoptr(VcConfig) c = vc_config_new(keys, G_N_ELEMENTS(keys));

    if (!vc_config_load_data(c, text, strlen(text), "test.conf", error)) {
        return NULL;
    }
    return g_steal_pointer(&c);
}

static void
test_defaults(void)
{
    g_autoptr(VcConfig) c = load("", NULL);

    g_assert_nonnull(c);
    g_assert_cmpstr(vc_config_get_string(c, "daemon", "socket"), ==,
                    "/run/x.sock");
    g_assert_cmpint(vc_config_get_int(c, "daemon", "threads"), ==, 2);
    g_assert_false(vc_config_get_bool(c, "daemon", "verbose"));
    g_assert_null(vc_config_get_string(c, "site", "name"));
}

static void
test_values(void)
{
    g_autoptr(VcConfig) c = load("[daemon]\nthreads=8\nverbose=true\n"
                                 "[site]\nname=rennes\n",
                                 NULL);

    g_assert_nonnull(c);
    g_assert_cmpint(vc_config_get_int(c, "daemon", "threads"), ==, 8);
    g_assert_true(vc_config_get_bool(c, "daemon", "verbose"));
    g_assert_cmpstr(vc_config_get_string(c, "site", "name"), ==, "rennes");
    g_assert_cmpstr(vc_config_get_string(c, "daemon", "socket"), ==,
                    "/run/x.sock");
}

static void
expect_error(const char *text, const char *fragment)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(VcConfig) c = load(text, &error);

    g_assert_null(c);
    g_assert_error(error, VC_ERROR, VC_ERROR_INVALID);
    if (!strstr(error->message, fragment)) {
        g_error("'%s' does not mention '%s'", error->message, fragment);
    }
}

static void
test_rejects(void)
{
    expect_error("[daemon]\nthread=8\n", "unknown key 'thread'");
    expect_error("[deamon]\nthreads=8\n", "unknown group [deamon]");
    expect_error("[other]\n", "unknown group [other]");
    expect_error("[daemon]\nthreads=many\n", "not an integer");
    expect_error("[daemon]\nthreads=8x\n", "not an integer");
    expect_error("[daemon]\nthreads=65\n", "out of range 1..64");
    expect_error("[daemon]\nthreads=0\n", "out of range");
    expect_error("[daemon]\nverbose=yes\n", "not true or false");
    expect_error("threads=1\n", "test.conf");
}

static void
test_named(void)
{
    static const char *const nodes[] = {"b", "a.1", NULL};
    static const char *const sites[] = {"lyon", NULL};
    g_autoptr(VcConfig) c = load("[node b]\nuri=x\n"
                                 "[daemon]\nthreads=3\n"
                                 "[node a.1]\nuri=y\ncpus = 8 \n"
                                 "[site lyon]\nnetwork=10.0.0.0/8\n"
                                 "[site]\nname=rennes\n",
                                 NULL);

    g_assert_nonnull(c);
    /* File order, which salined keeps for its nodes. */
    g_assert_cmpstrv(vc_config_get_names(c, "node"), nodes);
    g_assert_cmpstrv(vc_config_get_names(c, "site"), sites);
    g_assert_cmpstr(vc_config_get_string(c, "node b", "uri"), ==, "x");
    g_assert_cmpint(vc_config_get_int(c, "node b", "cpus"), ==, 1);
    g_assert_null(vc_config_get_string(c, "node b", "bridge"));
    g_assert_cmpint(vc_config_get_int(c, "node a.1", "cpus"), ==, 8);
    g_assert_cmpstr(vc_config_get_string(c, "site lyon", "network"), ==,
                    "10.0.0.0/8");
    g_assert_cmpstr(vc_config_get_string(c, "site", "name"), ==, "rennes");
    g_assert_cmpint(vc_config_get_int(c, "daemon", "threads"), ==, 3);
}

static void
test_named_none(void)
{
    g_autoptr(VcConfig) c = load("", NULL);

    g_assert_nonnull(c);
    g_assert_null(vc_config_get_names(c, "node")[0]);
}

static void
test_named_rejects(void)
{
    g_autofree char *long_group =
        g_strdup_printf("[node %0*d]\nuri=x\n", VC_CONFIG_MAX_NAME_LEN + 1, 0);

    expect_error("[node a]\nuri=x\ncolour=1\n",
                 "test.conf: unknown key 'colour' in group [node a]");
    expect_error("[node a]\ncpus=2\n", "test.conf: [node a] needs 'uri'");
    expect_error("[node a]\nuri= \n", "test.conf: [node a] needs 'uri'");
    expect_error("[node a]\n", "test.conf: [node a] needs 'uri'");
    expect_error("[node a]\nuri=x\ncpus=0\n",
                 "test.conf: [node a] cpus=0 is out of range 1..64");
    expect_error("[node a/b]\nuri=x\n",
                 "test.conf: invalid node name 'a/b' in [node a/b]");
    expect_error("[node ]\nuri=x\n", "invalid node name ''");
    expect_error("[node  a]\nuri=x\n", "invalid node name ' a'");
    expect_error(long_group, "invalid node name");
    expect_error("[node]\nuri=x\n",
                 "test.conf: group [node] needs a name: [node NAME]");
    expect_error("[nodes a]\nuri=x\n", "test.conf: unknown group [nodes a]");
    expect_error("[daemon x]\n", "unknown group [daemon x]");
}

static void
test_name_valid(void)
{
    g_assert_true(vc_config_name_valid("Rennes-1.a_b", 12));
    g_assert_false(vc_config_name_valid("Rennes-1.a_b", 11));
    g_assert_false(vc_config_name_valid("", 12));
    g_assert_false(vc_config_name_valid("a/b", 12));
    g_assert_false(vc_config_name_valid("caf\xc3\xa9", 12));
}

/* A second file adds groups and overrides keys, as for fixed groups. */
static void
test_named_second_file(void)
{
    static const char *const one[] = {"a", NULL};
    static const char *const two[] = {"a", "c", NULL};
    g_autoptr(VcConfig) c = load("[node a]\nuri=x\n", NULL);
    const char *bad = "[node b]\nuri=y\n[node a]\nbogus=1\n";
    const char *good = "[node a]\ncpus=4\n[node c]\nuri=z\n";

    g_assert_nonnull(c);
    g_assert_false(vc_config_load_data(c, bad, strlen(bad), "t", NULL));
    g_assert_cmpstrv(vc_config_get_names(c, "node"), one);
    /* [node a] has its uri from the first file. */
    g_assert_true(vc_config_load_data(c, good, strlen(good), "t", NULL));
    g_assert_cmpstrv(vc_config_get_names(c, "node"), two);
    g_assert_cmpstr(vc_config_get_string(c, "node a", "uri"), ==, "x");
    g_assert_cmpint(vc_config_get_int(c, "node a", "cpus"), ==, 4);
    g_assert_cmpstr(vc_config_get_string(c, "node c", "uri"), ==, "z");
}

static void
test_bad_file_changes_nothing(void)
{
    g_autoptr(VcConfig) c = vc_config_new(keys, G_N_ELEMENTS(keys));
    const char *text = "[daemon]\nthreads=9\nbogus=1\n";

    g_assert_false(vc_config_load_data(c, text, strlen(text), "t", NULL));
    g_assert_cmpint(vc_config_get_int(c, "daemon", "threads"), ==, 2);
}

static void
test_file(void)
{
    g_autoptr(VcConfig) c = vc_config_new(keys, G_N_ELEMENTS(keys));
    g_autoptr(GError) error = NULL;
    g_autofree char *dir = g_dir_make_tmp("vcconf-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "x.conf", NULL);

    /* A missing optional file leaves the defaults. */
    g_assert_true(vc_config_load_file(c, path, TRUE, &error));
    g_assert_no_error(error);
    g_assert_false(vc_config_load_file(c, path, FALSE, &error));
    g_assert_error(error, VC_ERROR, VC_ERROR_IO);
    g_clear_error(&error);

    g_assert_true(g_file_set_contents(path, "[site]\nname=lyon\n", -1, NULL));
    g_assert_true(vc_config_load_file(c, path, FALSE, &error));
    g_assert_cmpstr(vc_config_get_string(c, "site", "name"), ==, "lyon");
    g_unlink(path);
    g_rmdir(dir);
}

static void
test_log_format(void)
{
    g_autofree char *line =
        vc_log_format("dht-pagesd", G_LOG_LEVEL_WARNING, "dp", "bad frame");
    g_autofree char *expected =
        g_strdup_printf("dht-pagesd[%d]: warning: dp: bad frame", getpid());

    g_assert_cmpstr(line, ==, expected);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/config/defaults", test_defaults);
    g_test_add_func("/config/values", test_values);
    g_test_add_func("/config/rejects", test_rejects);
    g_test_add_func("/config/named", test_named);
    g_test_add_func("/config/named-none", test_named_none);
    g_test_add_func("/config/named-rejects", test_named_rejects);
    g_test_add_func("/config/name-valid", test_name_valid);
    g_test_add_func("/config/named-second-file", test_named_second_file);
    g_test_add_func("/config/bad-file-changes-nothing",
                    test_bad_file_changes_nothing);
    g_test_add_func("/config/file", test_file);
    g_test_add_func("/log/format", test_log_format);
    return g_test_run();
}
