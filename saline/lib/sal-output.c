#include "sal-output.h"
gboolean sal_output_parse_header(const guint8 *buf, gsize len, guint64 drive_size, SalOutputHeader *h, GError **error) { return FALSE; }
