/* TEMPORARY until saline-guest merges */
#pragma once
#include <glib.h>
#include "sal-error.h"
#define SAL_OUTPUT_HEADER_SIZE 512
#define SAL_OUTPUT_DATA_OFFSET 4096
typedef struct { gboolean started, exited; gint exit_status; guint64 length; gboolean truncated; } SalOutputHeader;
gboolean sal_output_parse_header(const guint8 *buf, gsize len, guint64 drive_size, SalOutputHeader *h, GError **error);
