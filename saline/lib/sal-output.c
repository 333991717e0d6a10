#include "sal-output.h"

#include <string.h>

#define MAGIC "SALOUT1"

/* Skips @word at *@p. */
static gboolean
expect(const char **p, const char *word)
{
    gsize n = strlen(word);

    if (strncmp(*p, word, n) != 0) {
        return FALSE;
    }
    *p += n;
    return TRUE;
}

/* A decimal number as the guest prints it: digits, no sign, no leading
 * zero, at most @max. */
static gboolean
parse_number(const char **p, guint64 max, guint64 *value)
{
    const char *s = *p;
    guint64 v = 0;

    if (!g_ascii_isdigit(*s) || (s[0] == '0' && g_ascii_isdigit(s[1]))) {
        return FALSE;
    }
    for (; g_ascii_isdigit(*s); s++) {
        guint digit = (guint)(*s - '0');

        if (v > (max - digit) / 10) {
            return FALSE;
        }
        v = v * 10 + digit;
    }
    *p = s;
    *value = v;
    return TRUE;
}

static gboolean
parse_line(const char *line, SalOutputHeader *h, const char **why)
{
    const char *p = line;
    guint64 v;

    if (!expect(&p, MAGIC " state=")) {
        *why = "no '" MAGIC "' signature";
        return FALSE;
    }
    if (expect(&p, "running")) {
        h->exited = FALSE;
    } else if (expect(&p, "exited")) {
        h->exited = TRUE;
    } else {
        *why = "unknown state";
        return FALSE;
    }
    if (!expect(&p, " exit=")) {
        *why = "no exit status";
        return FALSE;
    }
    if (expect(&p, "-1")) {
        h->exit_status = -1;
    } else if (parse_number(&p, 255, &v)) {
        h->exit_status = (gint)v;
    } else {
        *why = "exit status is not -1 or 0..255";
        return FALSE;
    }
    if (h->exited != (h->exit_status >= 0)) {
        *why = h->exited ? "exited without an exit status"
                         : "running with an exit status";
        return FALSE;
    }
    if (!expect(&p, " length=") || !parse_number(&p, G_MAXUINT64, &h->length)) {
        *why = "no valid length";
        return FALSE;
    }
    if (!expect(&p, " truncated=") || (*p != '0' && *p != '1')) {
        *why = "truncated is not 0 or 1";
        return FALSE;
    }
    h->truncated = *p++ == '1';
    if (*p != '\0') {
        *why = "trailing characters";
        return FALSE;
    }
    return TRUE;
}

gboolean
sal_output_parse_header(const guint8 *buf, gsize len, guint64 drive_size,
                        SalOutputHeader *header, GError **error)
{
    char line[SAL_OUTPUT_HEADER_SIZE];
    SalOutputHeader h = {0};
    const char *why = NULL;
    gsize n, i;

    g_return_val_if_fail(buf != NULL && header != NULL, FALSE);

    if (len < SAL_OUTPUT_HEADER_SIZE) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                    "output header of %" G_GSIZE_FORMAT " bytes, not %d", len,
                    SAL_OUTPUT_HEADER_SIZE);
        return FALSE;
    }
    if (drive_size != 0 &&
        drive_size < SAL_OUTPUT_DATA_OFFSET + SAL_OUTPUT_HEADER_SIZE) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                    "output drive of %" G_GUINT64_FORMAT " bytes is too small",
                    drive_size);
        return FALSE;
    }
    for (n = 0; n < SAL_OUTPUT_HEADER_SIZE && buf[n] == 0; n++) {
    }
    if (n == SAL_OUTPUT_HEADER_SIZE) {
        *header = h;
        return TRUE;
    }

    /* One line of printable ASCII, then only NUL bytes. */
    for (n = 0; n < SAL_OUTPUT_HEADER_SIZE && buf[n] != '\n'; n++) {
        if (buf[n] < 0x20 || buf[n] > 0x7e) {
            why = "not a line of printable ASCII";
            break;
        }
    }
    if (!why && n == SAL_OUTPUT_HEADER_SIZE) {
        why = "no end of line";
    }
    for (i = n + 1; !why && i < SAL_OUTPUT_HEADER_SIZE; i++) {
        if (buf[i] != 0) {
            why = "bytes after the line";
        }
    }
    if (!why) {
        memcpy(line, buf, n);
        line[n] = '\0';
        if (parse_line(line, &h, &why) && drive_size != 0 &&
            h.length > drive_size - SAL_OUTPUT_DATA_OFFSET) {
            why = "length beyond the end of the drive";
        }
    }
    if (why) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                    "invalid output header: %s", why);
        return FALSE;
    }
    h.started = TRUE;
    *header = h;
    return TRUE;
}
