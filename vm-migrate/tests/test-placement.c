#include <glib/gstdio.h>
#include <string.h>

#include "vmm-error.h"
#include "vmm-placement.h"

/* Parse @text; on failure return NULL with @error set. */
static VmmPlacement *
parse(const char *text, GError **error)
{
    return vmm_placement_parse(text, strlen(text), "c.txt", error);
}

static void
assert_entry(const VmmPlacement *p, guint i, const char *domain,
             const char *dest, const char *source, guint line)
{
    const VmmPlacementEntry *e = vmm_placement_get(p, i);

    g_assert_cmpstr(e->domain, ==, domain);
    g_assert_cmpstr(e->dest_uri, ==, dest);
    g_assert_cmpstr(e->source_uri, ==, source);
    g_assert_cmpuint(e->line, ==, line);
}

static void
test_good(void)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(VmmPlacement) p = parse(
        "# virtual cluster sim\n"
        "\n"
        "sim-0 qemu+tcp://10.77.2.1/system\n"
        "   \t\n"
        "sim-1\tqemu+tcp://10.77.2.2/system   # node 2\n"
        "  # indented comment\n"
        "sim-2  qemu+tcp://10.77.3.1/system  qemu+ssh://root@10.77.1.2/system"
        "?keyfile=/k\r\n"
        "sim-3 qemu:///system",
        &error);

    g_assert_no_error(error);
    g_assert_nonnull(p);
    g_assert_cmpuint(vmm_placement_size(p), ==, 4);
    assert_entry(p, 0, "sim-0", "qemu+tcp://10.77.2.1/system", NULL, 3);
    assert_entry(p, 1, "sim-1", "qemu+tcp://10.77.2.2/system", NULL, 5);
    assert_entry(p, 2, "sim-2", "qemu+tcp://10.77.3.1/system",
                 "qemu+ssh://root@10.77.1.2/system?keyfile=/k", 7);
    assert_entry(p, 3, "sim-3", "qemu:///system", NULL, 8);
}

/* Each bad file and the exact one-line error it must give. */
static void
test_bad(void)
{
    static const struct {
        const char *text;
        int code;
        const char *message;
    } cases[] = {
        {"a qemu:///system\n# c\nb qemu:///system\na qemu+tcp://h/system\n",
         VMM_ERROR_INVALID,
         "placement file 'c.txt' line 4: duplicate domain 'a' (first at "
         "line 1)"},
        {"a qemu:///system\n\nb qemu:///system qemu:///x extra\n",
         VMM_ERROR_INVALID,
         "placement file 'c.txt' line 3: too many fields, expected 'DOMAIN "
         "DEST_URI [SOURCE_URI]'"},
        {"a qemu:///system\nb   # forgot the URI\n", VMM_ERROR_INVALID,
         "placement file 'c.txt' line 2: missing destination URI for domain "
         "'b'"},
        {"a b\n", VMM_ERROR_INVALID,
         "placement file 'c.txt' line 1: destination URI 'b' is not a "
         "libvirt URI like 'qemu+tcp://HOST/system'"},
        {"a qemu:///system c\n", VMM_ERROR_INVALID,
         "placement file 'c.txt' line 1: source URI 'c' is not a libvirt "
         "URI like 'qemu+tcp://HOST/system'"},
        {"# nothing here\n\n", VMM_ERROR_INVALID,
         "placement file 'c.txt' places no domain"},
        {"", VMM_ERROR_INVALID, "placement file 'c.txt' places no domain"},
        {"a qemu:///system\n\xff\xfe qemu:///system\n", VMM_ERROR_INVALID,
         "placement file 'c.txt' line 2: domain name is not valid UTF-8"},
        {"a\x01z qemu:///system\n", VMM_ERROR_INVALID,
         "placement file 'c.txt' line 1: domain name has a control "
         "character"},
    };

    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GError) error = NULL;
        g_autoptr(VmmPlacement) p = parse(cases[i].text, &error);

        g_test_message("case %u", i);
        g_assert_null(p);
        g_assert_error(error, VMM_ERROR, cases[i].code);
        g_assert_cmpstr(error->message, ==, cases[i].message);
    }
}

static void
test_nul(void)
{
    static const char text[] = "a qemu:///system\nb qemu:///sys\0tem\n";
    g_autoptr(GError) error = NULL;
    g_autoptr(VmmPlacement) p =
        vmm_placement_parse(text, sizeof(text) - 1, "c.txt", &error);

    g_assert_null(p);
    g_assert_error(error, VMM_ERROR, VMM_ERROR_INVALID);
    g_assert_cmpstr(error->message, ==,
                    "placement file 'c.txt' line 2: NUL byte");
}

static void
test_bounds(void)
{
    g_autoptr(GString) text = g_string_new(NULL);
    g_autoptr(GError) error = NULL;
    g_autoptr(VmmPlacement) p = NULL;
    g_autofree char *long_name = g_strnfill(VMM_FIELD_MAX + 1, 'x');
    g_autofree char *big = NULL;

    for (guint i = 0; i <= VMM_PLACEMENT_MAX_DOMAINS; i++) {
        g_string_append_printf(text, "vm%u qemu+tcp://h/system\n", i);
    }
    p = parse(text->str, &error);
    g_assert_null(p);
    g_assert_error(error, VMM_ERROR, VMM_ERROR_TOO_LARGE);
    g_assert_nonnull(strstr(error->message, "line 4097: more than 4096"));
    g_clear_error(&error);

    p = vmm_placement_new();
    g_assert_false(vmm_placement_add(p, long_name, "qemu:///system", NULL, 0,
                                     &error));
    g_assert_error(error, VMM_ERROR, VMM_ERROR_TOO_LARGE);
    g_clear_error(&error);

    big = g_strnfill(VMM_PLACEMENT_MAX_BYTES + 1, '#');
    g_clear_pointer(&p, vmm_placement_free);
    p = parse(big, &error);
    g_assert_null(p);
    g_assert_error(error, VMM_ERROR, VMM_ERROR_TOO_LARGE);
}

/* Domains from the command line: same checks, no line numbers. */
static void
test_args(void)
{
    g_autoptr(VmmPlacement) p = vmm_placement_new();
    g_autoptr(GError) error = NULL;

    g_assert_true(vmm_placement_add(p, "a", "qemu+tcp://h/system", NULL, 0,
                                    &error));
    g_assert_true(vmm_placement_add(p, "b", "qemu+tcp://h/system", NULL, 0,
                                    &error));
    g_assert_false(vmm_placement_add(p, "a", "qemu+tcp://h/system", NULL, 0,
                                     &error));
    g_assert_error(error, VMM_ERROR, VMM_ERROR_INVALID);
    g_assert_cmpstr(error->message, ==, "domain 'a' given twice");
    g_clear_error(&error);
    g_assert_false(vmm_placement_add(p, "", "qemu+tcp://h/system", NULL, 0,
                                     &error));
    g_assert_cmpstr(error->message, ==, "empty domain name");
    g_assert_cmpuint(vmm_placement_size(p), ==, 2);
}

static void
test_load(void)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *dir = g_dir_make_tmp("vmm-XXXXXX", &error);
    g_autofree char *path = g_build_filename(dir, "p.txt", NULL);
    g_autofree char *missing = g_build_filename(dir, "none.txt", NULL);
    g_autofree char *expected = NULL;
    g_autoptr(VmmPlacement) p = NULL;

    g_assert_no_error(error);
    g_assert_true(g_file_set_contents(path, "x qemu:///system\n", -1, NULL));
    p = vmm_placement_load(path, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(vmm_placement_size(p), ==, 1);

    g_clear_pointer(&p, vmm_placement_free);
    p = vmm_placement_load(missing, &error);
    g_assert_null(p);
    g_assert_error(error, VMM_ERROR, VMM_ERROR_IO);
    expected = g_strdup_printf("cannot read placement file '%s': ", missing);
    g_assert_true(g_str_has_prefix(error->message, expected));

    g_unlink(path);
    g_rmdir(dir);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/placement/good", test_good);
    g_test_add_func("/placement/bad", test_bad);
    g_test_add_func("/placement/nul", test_nul);
    g_test_add_func("/placement/bounds", test_bounds);
    g_test_add_func("/placement/args", test_args);
    g_test_add_func("/placement/load", test_load);
    return g_test_run();
}
