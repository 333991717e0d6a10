#include <string.h>

#include "sal-output.h"

/* A header block: @line, then NUL bytes. */
static guint8 *
header_block(const char *line)
{
    guint8 *buf = g_new0(guint8, SAL_OUTPUT_HEADER_SIZE);
    gsize n = strlen(line);

    g_assert_cmpuint(n, <=, SAL_OUTPUT_HEADER_SIZE);
    memcpy(buf, line, n);
    return buf;
}

static gboolean
parse(const char *line, guint64 drive_size, SalOutputHeader *h, GError **error)
{
    g_autofree guint8 *buf = header_block(line);

    return sal_output_parse_header(buf, SAL_OUTPUT_HEADER_SIZE, drive_size, h,
                                   error);
}

static void
test_zero(void)
{
    g_autoptr(GError) error = NULL;
    guint8 buf[SAL_OUTPUT_DATA_OFFSET] = {0};
    SalOutputHeader h = {.started = TRUE, .exit_status = 7, .length = 9};

    /* A whole block, as salined downloads it, is fine too. */
    g_assert_true(sal_output_parse_header(buf, sizeof(buf),
                                          SAL_OUTPUT_DEFAULT_SIZE, &h, &error));
    g_assert_no_error(error);
    g_assert_false(h.started);
    g_assert_false(h.exited);
    g_assert_cmpint(h.exit_status, ==, 0);
    g_assert_cmpuint(h.length, ==, 0);
    g_assert_false(h.truncated);
}

static void
test_valid(void)
{
    static const struct {
        const char *line;
        gboolean exited;
        gint exit_status;
        guint64 length;
        gboolean truncated;
    } cases[] = {
        {"SALOUT1 state=running exit=-1 length=0 truncated=0\n", FALSE, -1, 0,
         FALSE},
        {"SALOUT1 state=running exit=-1 length=123 truncated=0\n", FALSE, -1,
         123, FALSE},
        {"SALOUT1 state=exited exit=0 length=6 truncated=0\n", TRUE, 0, 6,
         FALSE},
        {"SALOUT1 state=exited exit=3 length=42 truncated=0\n", TRUE, 3, 42,
         FALSE},
        {"SALOUT1 state=exited exit=255 length=67104768 truncated=1\n", TRUE,
         255, 67104768, TRUE},
        {"SALOUT1 state=exited exit=137 length=0 truncated=0\n", TRUE, 137, 0,
         FALSE},
    };

    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GError) error = NULL;
        SalOutputHeader h = {0};

        g_test_message("%s", cases[i].line);
        g_assert_true(
            parse(cases[i].line, SAL_OUTPUT_DEFAULT_SIZE, &h, &error));
        g_assert_no_error(error);
        g_assert_true(h.started);
        g_assert_cmpint(h.exited, ==, cases[i].exited);
        g_assert_cmpint(h.exit_status, ==, cases[i].exit_status);
        g_assert_cmpuint(h.length, ==, cases[i].length);
        g_assert_cmpint(h.truncated, ==, cases[i].truncated);
    }
}

/* The length must fit the drive when its size is known; without a size
 * any 64-bit length is taken. */
static void
test_drive_size(void)
{
    g_autoptr(GError) error = NULL;
    SalOutputHeader h = {0};
    const char *full =
        "SALOUT1 state=exited exit=0 length=67104768 truncated=1\n";
    const char *over =
        "SALOUT1 state=exited exit=0 length=67104769 truncated=1\n";
    const char *huge = "SALOUT1 state=exited exit=0 "
                       "length=18446744073709551615 truncated=0\n";

    g_assert_true(parse(full, SAL_OUTPUT_DEFAULT_SIZE, &h, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(h.length, ==, SAL_OUTPUT_DEFAULT_SIZE - 4096);

    g_assert_false(parse(over, SAL_OUTPUT_DEFAULT_SIZE, &h, &error));
    g_assert_error(error, SAL_ERROR, SAL_ERROR_INVALID);
    g_clear_error(&error);

    g_assert_true(parse(huge, 0, &h, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(h.length, ==, G_MAXUINT64);
    g_assert_false(parse(huge, SAL_OUTPUT_DEFAULT_SIZE, &h, &error));
    g_assert_error(error, SAL_ERROR, SAL_ERROR_INVALID);
    g_clear_error(&error);

    /* A drive too small for header and data is refused outright. */
    g_assert_false(parse(full, 4096, &h, &error));
    g_assert_error(error, SAL_ERROR, SAL_ERROR_INVALID);
}

static void
test_invalid(void)
{
    static const char *const lines[] = {
        "\n",
        "garbage\n",
        "SALOUT2 state=exited exit=0 length=0 truncated=0\n",
        "salout1 state=exited exit=0 length=0 truncated=0\n",
        "SALOUT1 state=exited exit=0 length=0 truncated=0",
        "SALOUT1 state=done exit=0 length=0 truncated=0\n",
        "SALOUT1 state=exitedx exit=0 length=0 truncated=0\n",
        "SALOUT1 state= exit=0 length=0 truncated=0\n",
        "SALOUT1 state=exited exit=-1 length=0 truncated=0\n",
        "SALOUT1 state=running exit=0 length=0 truncated=0\n",
        "SALOUT1 state=exited exit=256 length=0 truncated=0\n",
        "SALOUT1 state=exited exit=-2 length=0 truncated=0\n",
        "SALOUT1 state=exited exit=+3 length=0 truncated=0\n",
        "SALOUT1 state=exited exit=03 length=0 truncated=0\n",
        "SALOUT1 state=exited exit=99999999999999999999 length=0 "
        "truncated=0\n",
        "SALOUT1 state=exited exit= length=0 truncated=0\n",
        "SALOUT1 state=exited exit=0 length=-1 truncated=0\n",
        "SALOUT1 state=exited exit=0 length=18446744073709551616 "
        "truncated=0\n",
        "SALOUT1 state=exited exit=0 length=1e3 truncated=0\n",
        "SALOUT1 state=exited exit=0 length=0x10 truncated=0\n",
        "SALOUT1 state=exited exit=0 length= truncated=0\n",
        "SALOUT1 state=exited exit=0 length=0 truncated=2\n",
        "SALOUT1 state=exited exit=0 length=0 truncated=\n",
        "SALOUT1 state=exited exit=0 length=0 truncated=00\n",
        "SALOUT1 state=exited exit=0 length=0 truncated=0 extra=1\n",
        "SALOUT1 state=exited exit=0 length=0 truncated=0 \n",
        "SALOUT1 state=exited exit=0 length=0 truncated=0\r\n",
        "SALOUT1  state=exited exit=0 length=0 truncated=0\n",
        "SALOUT1 state=exited length=0 exit=0 truncated=0\n",
        "SALOUT1 state=exited\texit=0 length=0 truncated=0\n",
        "SALOUT1 state=exited exit=0 length=0 truncated=0\nX",
        "SALOUT1 state=exited exit=0 length=0 truncated=0\n\n",
        "\nSALOUT1 state=exited exit=0 length=0 truncated=0\n",
        "SALOUT1 state=exited exit=0 length=0 truncated=0\xff\n",
    };

    for (guint i = 0; i < G_N_ELEMENTS(lines); i++) {
        g_autoptr(GError) error = NULL;
        SalOutputHeader h = {0};
        g_autofree char *quoted = g_strescape(lines[i], NULL);

        g_test_message("'%s'", quoted);
        g_assert_false(parse(lines[i], 0, &h, &error));
        g_assert_error(error, SAL_ERROR, SAL_ERROR_INVALID);
    }
}

static void
assert_refused(const guint8 *buf, gsize len)
{
    g_autoptr(GError) error = NULL;
    SalOutputHeader h = {0};

    g_assert_false(sal_output_parse_header(buf, len, 0, &h, &error));
    g_assert_error(error, SAL_ERROR, SAL_ERROR_INVALID);
}

/* Bytes no line can express: a NUL inside the line, garbage after the
 * padding has begun, no newline in the whole header, a short buffer. */
static void
test_adversarial(void)
{
    const char *good = "SALOUT1 state=exited exit=0 length=5 truncated=0\n";
    gsize n = strlen(good);
    g_autofree guint8 *buf = header_block(good);
    g_autofree guint8 *big = g_new0(guint8, SAL_OUTPUT_DATA_OFFSET + 16);
    g_autoptr(GError) error = NULL;
    SalOutputHeader h = {0};

    buf[10] = '\0';
    assert_refused(buf, SAL_OUTPUT_HEADER_SIZE);
    buf[10] = good[10];

    /* Garbage in the last byte of the padding. */
    buf[SAL_OUTPUT_HEADER_SIZE - 1] = 'x';
    assert_refused(buf, SAL_OUTPUT_HEADER_SIZE);
    buf[SAL_OUTPUT_HEADER_SIZE - 1] = 0;

    /* Bytes past the header are not the header's business. */
    memcpy(big, buf, SAL_OUTPUT_HEADER_SIZE);
    memset(big + SAL_OUTPUT_HEADER_SIZE, 'z',
           SAL_OUTPUT_DATA_OFFSET + 16 - SAL_OUTPUT_HEADER_SIZE);
    g_assert_true(sal_output_parse_header(big, SAL_OUTPUT_DATA_OFFSET + 16, 0,
                                          &h, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(h.length, ==, 5);

    /* 512 printable bytes and no newline: bounded, refused. */
    memset(buf, 'A', SAL_OUTPUT_HEADER_SIZE);
    assert_refused(buf, SAL_OUTPUT_HEADER_SIZE);

    /* A valid line without its newline, then zeros. */
    memset(buf, 0, SAL_OUTPUT_HEADER_SIZE);
    memcpy(buf, good, n - 1);
    assert_refused(buf, SAL_OUTPUT_HEADER_SIZE);

    /* Short buffers, even all zero, are not a header. */
    memset(buf, 0, SAL_OUTPUT_HEADER_SIZE);
    assert_refused(buf, SAL_OUTPUT_HEADER_SIZE - 1);
    assert_refused(buf, 0);
}

/* Every single-byte corruption of a valid header is either refused or
 * still parses to values within bounds. */
static void
test_mutations(void)
{
    const char *good = "SALOUT1 state=running exit=-1 length=4096 "
                       "truncated=0\n";
    g_autofree guint8 *buf = header_block(good);
    gsize n = strlen(good);
    guint accepted = 0;

    for (gsize i = 0; i < n + 2; i++) {
        for (guint b = 0; b < 256; b++) {
            g_autoptr(GError) error = NULL;
            guint8 saved = buf[i];
            SalOutputHeader h = {0};

            buf[i] = (guint8)b;
            if (sal_output_parse_header(buf, SAL_OUTPUT_HEADER_SIZE,
                                        SAL_OUTPUT_DEFAULT_SIZE, &h, &error)) {
                g_assert_no_error(error);
                g_assert_true(h.started);
                g_assert_cmpint(h.exit_status, >=, -1);
                g_assert_cmpint(h.exit_status, <=, 255);
                g_assert_cmpint(h.exited, ==, h.exit_status >= 0);
                g_assert_cmpuint(h.length, <=, SAL_OUTPUT_DEFAULT_SIZE - 4096);
                accepted++;
            } else {
                g_assert_error(error, SAL_ERROR, SAL_ERROR_INVALID);
            }
            buf[i] = saved;
        }
    }
    /* The original byte at each position; 8 other first digits of the
     * length (not 0), 9 others for each of the 3 next; truncated=1. */
    g_assert_cmpuint(accepted, ==, (n + 2) + 8 + 3 * 9 + 1);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/output/zero", test_zero);
    g_test_add_func("/output/valid", test_valid);
    g_test_add_func("/output/drive-size", test_drive_size);
    g_test_add_func("/output/invalid", test_invalid);
    g_test_add_func("/output/adversarial", test_adversarial);
    g_test_add_func("/output/mutations", test_mutations);
    return g_test_run();
}
