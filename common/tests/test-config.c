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
    expect_error("[deamon]\nthreads=8\n", "unknown key 'threads' in group "
                                          "[deamon]");
    expect_error("[other]\n", "unknown group [other]");
    expect_error("[daemon]\nthreads=many\n", "not an integer");
    expect_error("[daemon]\nthreads=8x\n", "not an integer");
    expect_error("[daemon]\nthreads=65\n", "out of range 1..64");
    expect_error("[daemon]\nthreads=0\n", "out of range");
    expect_error("[daemon]\nverbose=yes\n", "not true or false");
    expect_error("threads=1\n", "test.conf");
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
    g_test_add_func("/config/bad-file-changes-nothing",
                    test_bad_file_changes_nothing);
    g_test_add_func("/config/file", test_file);
    g_test_add_func("/log/format", test_log_format);
    return g_test_run();
}
