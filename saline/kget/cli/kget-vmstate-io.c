#include "kget-vmstate-io.h"

#include <errno.h>
#include <unistd.h>

#include "kget-vmstate.h"
#include "vc-pagehash.h"

#define READ_BUF (256 * 1024)

typedef struct {
    KgetClient *client;
    const char *snapshot;
    char *ram_item;
    KgetItemWriter *ram;
} PutState;

static gboolean
put_ram_size(guint64 ram_size, gpointer user_data, GError **error)
{
    PutState *st = user_data;

    st->ram = kget_item_writer_new(st->client, st->snapshot, st->ram_item,
                                   ram_size);
    return TRUE;
}

static gboolean
put_page(guint64 offset, const guint8 *data, gpointer user_data,
         GError **error)
{
    static const guint8 zero[VC_PAGE_SIZE];
    PutState *st = user_data;

    /* A zero page is sent too: it may replace an earlier non-zero one
     * (the writer stores zero blocks as the zero hash, never as data). */
    return kget_item_writer_put_block(st->ram, offset / VC_PAGE_SIZE,
                                      data ? data : zero, VC_PAGE_SIZE,
                                      error);
}

static gboolean
put_bytes(KgetClient *client, const char *snapshot, const char *item,
          GBytes *bytes, KgetItemStats *stats, GError **error)
{
    gsize len;
    const guint8 *p = g_bytes_get_data(bytes, &len);
    g_autoptr(KgetItemWriter) w =
        kget_item_writer_new(client, snapshot, item, len);

    for (gsize off = 0; off < len; off += VC_PAGE_SIZE) {
        if (!kget_item_writer_put_block(w, off / VC_PAGE_SIZE, p + off,
                                        MIN(VC_PAGE_SIZE, len - off), error)) {
            return FALSE;
        }
    }
    return kget_item_writer_finish(w, stats, error);
}

gboolean
kget_vmstate_put(KgetClient *client, const char *snapshot, const char *item,
                 int fd, KgetItemStats *state, KgetItemStats *ram,
                 GError **error)
{
    static const KgetVmstateParserFuncs funcs = {put_ram_size, put_page};
    PutState st = {client, snapshot, g_strconcat(item, ".ram", NULL), NULL};
    g_autoptr(KgetVmstateParser) parser = kget_vmstate_parser_new(&funcs, &st);
    g_autofree guint8 *buf = g_malloc(READ_BUF);
    g_autoptr(GBytes) device = NULL;
    gboolean ok = FALSE;

    g_autoptr(GError) failure = NULL;

    for (;;) {
        ssize_t n = read(fd, buf, READ_BUF);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            g_set_error(error, KGET_ERROR, KGET_ERROR_IO,
                        "cannot read the migration stream: %s",
                        g_strerror(errno));
            goto out;
        }
        if (n == 0) {
            break;
        }
        /* After a failure the stream is still read to its end: QEMU's
         * background snapshot resolves the guest's write faults only as
         * it sends, so a sender that stops reading would freeze the guest
         * (and a QEMU 7.2 whose snapshot fails midway may never let go of
         * its write protection). The snapshot is then simply not stored. */
        if (!failure &&
            !kget_vmstate_parser_feed(parser, buf, (gsize)n, &failure)) {
            g_debug("draining the stream after: %s", failure->message);
        }
    }
    if (failure) {
        g_propagate_error(error, g_steal_pointer(&failure));
        goto out;
    }
    device = kget_vmstate_parser_finish(parser, error);
    if (!device) {
        goto out;
    }
    /* RAM first: the device state names the RAM layout it needs. */
    if (!st.ram) {
        g_set_error(error, KGET_ERROR, KGET_ERROR_PROTOCOL,
                    "the migration stream has no RAM section");
        goto out;
    }
    if (!kget_item_writer_finish(st.ram, ram, error)) {
        goto out;
    }
    ok = put_bytes(client, snapshot, item, device, state, error);
out:
    g_clear_pointer(&st.ram, kget_item_writer_free);
    g_free(st.ram_item);
    return ok;
}

static gboolean
get_page(guint64 offset, guint8 *buf, gboolean *zero, gpointer user_data,
         GError **error)
{
    KgetItemReader *r = user_data;
    gsize len = 0;
    const guint8 *data =
        kget_item_reader_block(r, offset / VC_PAGE_SIZE, &len, error);

    if (!data) {
        return FALSE;
    }
    if (len != VC_PAGE_SIZE) {
        g_set_error(error, KGET_ERROR, KGET_ERROR_PROTOCOL,
                    "RAM block at %" G_GUINT64_FORMAT " is %" G_GSIZE_FORMAT
                    " bytes",
                    offset, len);
        return FALSE;
    }
    *zero = vc_page_is_zero(data);
    if (!*zero) {
        memcpy(buf, data, VC_PAGE_SIZE);
    }
    return TRUE;
}

gboolean
kget_vmstate_get(KgetClient *client, const char *snapshot, const char *item,
                 int fd, KgetChunkSource source, KgetChunkPublish publish,
                 gpointer source_data, KgetReaderStats *ram_stats,
                 GError **error)
{
    g_autofree char *ram_item = g_strconcat(item, ".ram", NULL);
    g_autoptr(GByteArray) state = g_byte_array_new();
    g_autoptr(KgetVmstateDeviceState) ds = NULL;
    g_autoptr(KgetItemReader) ram = NULL;
    g_autoptr(GBytes) bytes = NULL;

    {
        g_autoptr(KgetItemReader) r =
            kget_item_reader_new(client, snapshot, item, error);
        guint64 n;

        if (!r) {
            return FALSE;
        }
        if (kget_item_reader_size(r) > KGET_VMSTATE_MAX_DEVICE_STATE) {
            g_set_error(error, KGET_ERROR, KGET_ERROR_PROTOCOL,
                        "item '%s' is too large for a device state", item);
            return FALSE;
        }
        n = kget_item_reader_n_blocks(r);
        for (guint64 i = 0; i < n; i++) {
            gsize len = 0;
            const guint8 *data = kget_item_reader_block(r, i, &len, error);

            if (!data) {
                return FALSE;
            }
            g_byte_array_append(state, data, (guint)len);
        }
    }
    bytes = g_byte_array_free_to_bytes(g_steal_pointer(&state));
    ds = kget_vmstate_device_state_new(bytes, error);
    if (!ds) {
        g_prefix_error(error, "item '%s': ", item);
        return FALSE;
    }
    ram = kget_item_reader_new(client, snapshot, ram_item, error);
    if (!ram) {
        return FALSE;
    }
    if (kget_item_reader_size(ram) !=
        kget_vmstate_device_state_get_ram_size(ds)) {
        g_set_error(error, KGET_ERROR, KGET_ERROR_PROTOCOL,
                    "item '%s' has %" G_GUINT64_FORMAT
                    " bytes, the device state expects %" G_GUINT64_FORMAT,
                    ram_item, kget_item_reader_size(ram),
                    kget_vmstate_device_state_get_ram_size(ds));
        return FALSE;
    }
    kget_item_reader_set_source(ram, source, source_data);
    kget_item_reader_set_publish(ram, publish);
    if (!kget_vmstate_rebuild_to_fd(ds, get_page, ram, fd, error)) {
        return FALSE;
    }
    if (ram_stats) {
        kget_item_reader_stats(ram, ram_stats);
    }
    return TRUE;
}
