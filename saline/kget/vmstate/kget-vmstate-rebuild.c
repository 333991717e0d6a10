/* A migration stream rebuilt from its two items (kget-vmstate.h). */
#include "kget-vmstate-private.h"

#include <string.h>

#include "vc-frame.h"

/* Writes go out in batches of about this size. */
#define BATCH (256 * 1024)

typedef struct {
    KgetVmstateWriteFunc write;
    gpointer user_data;
    GByteArray *buf;
} Writer;

static gboolean
writer_flush(Writer *w, GError **error)
{
    gboolean ok = TRUE;

    if (w->buf->len > 0) {
        ok = w->write(w->buf->data, w->buf->len, w->user_data, error);
        g_byte_array_set_size(w->buf, 0);
    }
    return ok;
}

static gboolean
writer_maybe_flush(Writer *w, GError **error)
{
    return w->buf->len < BATCH || writer_flush(w, error);
}

static void
put_section(Writer *w, guint8 type, KgetVmstateDeviceState *ds)
{
    vc_put_u8(w->buf, type);
    vc_put_u32(w->buf, kget_vmstate_device_state_get_section_id(ds));
}

static void
put_footer(Writer *w, KgetVmstateDeviceState *ds)
{
    if (kget_vmstate_device_state_get_footers(ds)) {
        put_section(w, KGET_VMSTATE_SECTION_FOOTER, ds);
    }
}

static gboolean
put_block(Writer *w, const KgetVmstateBlock *b,
          KgetVmstateReadPageFunc read_page, gpointer user_data, GError **error)
{
    g_autofree guint8 *page = g_malloc(KGET_VMSTATE_PAGE_SIZE);

    for (guint64 off = 0; off < b->size; off += KGET_VMSTATE_PAGE_SIZE) {
        gboolean zero = FALSE;
        guint64 record;
        gsize len;

        if (!read_page(b->offset + off, page, &zero, user_data, error)) {
            return FALSE;
        }
        record = off | (zero ? KGET_VMSTATE_RAM_ZERO : KGET_VMSTATE_RAM_PAGE);
        if (off > 0) {
            record |= KGET_VMSTATE_RAM_CONTINUE;
        }
        vc_put_u64(w->buf, record);
        if (off == 0) {
            len = strlen(b->idstr);
            vc_put_u8(w->buf, (guint8)len);
            g_byte_array_append(w->buf, (const guint8 *)b->idstr, len);
        }
        if (zero) {
            vc_put_u8(w->buf, 0);
        } else {
            g_byte_array_append(w->buf, page, KGET_VMSTATE_PAGE_SIZE);
        }
        if (!writer_maybe_flush(w, error)) {
            return FALSE;
        }
    }
    return TRUE;
}

static void
put_bytes(Writer *w, GBytes *bytes)
{
    gsize len;
    const guint8 *data = g_bytes_get_data(bytes, &len);

    g_byte_array_append(w->buf, data, len);
}

gboolean
kget_vmstate_rebuild(KgetVmstateDeviceState *ds,
                     KgetVmstateReadPageFunc read_page,
                     KgetVmstateWriteFunc write, gpointer user_data,
                     GError **error)
{
    g_autoptr(GByteArray) buf = g_byte_array_sized_new(BATCH + 8192);
    Writer w = {write, user_data, buf};
    const KgetVmstateBlock *blocks;
    guint n_blocks;

    blocks = kget_vmstate_device_state_get_blocks(ds, &n_blocks);
    put_bytes(&w, kget_vmstate_device_state_get_head(ds));
    put_section(&w, KGET_VMSTATE_SECTION_PART, ds);
    for (guint i = 0; i < n_blocks; i++) {
        if (!put_block(&w, &blocks[i], read_page, user_data, error)) {
            return FALSE;
        }
    }
    vc_put_u64(w.buf, KGET_VMSTATE_RAM_EOS);
    put_footer(&w, ds);
    put_section(&w, KGET_VMSTATE_SECTION_END, ds);
    vc_put_u64(w.buf, KGET_VMSTATE_RAM_EOS);
    put_footer(&w, ds);
    if (!writer_flush(&w, error)) {
        return FALSE;
    }
    return write(g_bytes_get_data(kget_vmstate_device_state_get_tail(ds), NULL),
                 g_bytes_get_size(kget_vmstate_device_state_get_tail(ds)),
                 user_data, error);
}

/* Both callbacks of kget_vmstate_rebuild() get the same user data. */
typedef struct {
    KgetVmstateReadPageFunc read_page;
    gpointer user_data;
    int fd;
} FdClosure;

static gboolean
read_page_fd(guint64 offset, guint8 *buf, gboolean *zero, gpointer data,
             GError **error)
{
    FdClosure *fc = data;

    return fc->read_page(offset, buf, zero, fc->user_data, error);
}

static gboolean
write_closure_fd(const guint8 *data, gsize len, gpointer user_data,
                 GError **error)
{
    FdClosure *fc = user_data;

    return vc_write_all(fc->fd, data, len, error);
}

gboolean
kget_vmstate_rebuild_to_fd(KgetVmstateDeviceState *ds,
                           KgetVmstateReadPageFunc read_page,
                           gpointer user_data, int fd, GError **error)
{
    FdClosure fc = {read_page, user_data, fd};

    return kget_vmstate_rebuild(ds, read_page_fd, write_closure_fd, &fc, error);
}
