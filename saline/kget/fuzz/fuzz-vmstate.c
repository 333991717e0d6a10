/*
 * libFuzzer harness for kget-vmstate: the QEMU migration stream parser
 * (fed what `kget snapshot --vmstate` reads from QEMU) and the
 * device-state item decoder (fed what the store gives back).
 *
 * The first input byte picks where the stream is cut in two feeds, so
 * the parser's resumption is fuzzed too. A stream that parses must give a
 * device-state item that decodes, and rebuilding it must give a stream
 * that parses again to the same RAM size.
 */
#include <stdlib.h>
#include <string.h>

#include "kget-vmstate.h"

static gboolean
on_ram_size(guint64 ram_size, gpointer data, GError **error)
{
    return TRUE;
}

static gboolean
on_page(guint64 offset, const guint8 *page, gpointer data, GError **error)
{
    if (offset >= *(guint64 *)data) {
        abort(); /* the parser checks offsets against its blocks */
    }
    return TRUE;
}

static gboolean
zero_page(guint64 offset, guint8 *buf, gboolean *zero, gpointer data,
          GError **error)
{
    *zero = TRUE;
    return TRUE;
}

static gboolean
collect(const guint8 *data, gsize len, gpointer out, GError **error)
{
    g_byte_array_append(out, data, (guint)len);
    return TRUE;
}

static GBytes *
parse(const guint8 *data, gsize len, gsize cut, guint64 *ram_size)
{
    static const KgetVmstateParserFuncs funcs = {on_ram_size, on_page};
    guint64 limit = G_MAXUINT64;
    g_autoptr(KgetVmstateParser) p = kget_vmstate_parser_new(&funcs, &limit);
    GBytes *item;

    cut = MIN(cut, len);
    if (!kget_vmstate_parser_feed(p, data, cut, NULL) ||
        !kget_vmstate_parser_feed(p, data + cut, len - cut, NULL)) {
        return NULL;
    }
    item = kget_vmstate_parser_finish(p, NULL);
    *ram_size = kget_vmstate_parser_get_ram_size(p);
    return item;
}

int LLVMFuzzerTestOneInput(const guint8 *data, size_t size);

int
LLVMFuzzerTestOneInput(const guint8 *data, size_t size)
{
    g_autoptr(GBytes) raw = NULL;
    g_autoptr(GBytes) item = NULL;
    g_autoptr(KgetVmstateDeviceState) ds = NULL;
    g_autoptr(GByteArray) rebuilt = NULL;
    guint64 ram_size = 0, again = 0;

    if (size < 1) {
        return 0;
    }
    /* The input as a stored device-state item. */
    raw = g_bytes_new(data + 1, size - 1);
    g_clear_pointer(&ds, kget_vmstate_device_state_free);
    ds = kget_vmstate_device_state_new(raw, NULL);
    g_clear_pointer(&ds, kget_vmstate_device_state_free);

    /* The input as a migration stream. */
    item = parse(data + 1, size - 1, (gsize)data[0] * 7, &ram_size);
    if (!item) {
        return 0;
    }
    ds = kget_vmstate_device_state_new(item, NULL);
    if (!ds) {
        abort(); /* the parser's own item must decode */
    }
    /* Rebuilding walks every page: only small RAM is worth it here. */
    if (ram_size > (G_GUINT64_CONSTANT(64) << 20)) {
        return 0;
    }
    rebuilt = g_byte_array_new();
    if (!kget_vmstate_rebuild(ds, zero_page, collect, rebuilt, NULL)) {
        abort();
    }
    g_clear_pointer(&item, g_bytes_unref);
    item = parse(rebuilt->data, rebuilt->len, rebuilt->len / 2, &again);
    if (!item || again != ram_size) {
        abort();
    }
    return 0;
}
