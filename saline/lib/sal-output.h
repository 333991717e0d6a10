/*
 * The output drive a VM's salguest writes (saline/README.md, "Output
 * drive format"): a 512-byte ASCII header, then the command's output
 * from byte 4096.
 *
 *   SALOUT1 state=<running|exited> exit=<n> length=<n> truncated=<0|1>\n
 *
 * then NUL bytes up to 512. An all-zero header means the guest has not
 * started the command.
 */
#pragma once

#include <glib.h>

#include "sal-error.h"

#define SAL_OUTPUT_HEADER_SIZE 512
#define SAL_OUTPUT_DATA_OFFSET 4096
#define SAL_OUTPUT_DEFAULT_SIZE (G_GUINT64_CONSTANT(64) << 20)

typedef struct {
    gboolean started; /* FALSE: all-zero header, the rest is zero too */
    gboolean exited;  /* state=exited */
    gint exit_status; /* -1 while running, else 0..255 */
    guint64 length;   /* output bytes from SAL_OUTPUT_DATA_OFFSET */
    gboolean truncated;
} SalOutputHeader;

/*
 * Parses the header in the first SAL_OUTPUT_HEADER_SIZE bytes of @buf
 * (@len at least that). @drive_size, if not 0, is the drive's size: a
 * length that does not fit after SAL_OUTPUT_DATA_OFFSET is refused.
 * Anything but the exact format is SAL_ERROR_INVALID.
 */
gboolean sal_output_parse_header(const guint8 *buf, gsize len,
                                 guint64 drive_size, SalOutputHeader *header,
                                 GError **error);
