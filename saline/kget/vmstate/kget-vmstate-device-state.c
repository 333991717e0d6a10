/* A device-state item, decoded and checked (kget-vmstate.h). */
#include "kget-vmstate-private.h"

#include <string.h>

#include "vc-frame.h"

struct KgetVmstateDeviceState {
    guint32 section_id;
    gboolean footers;
    GBytes *head;
    GBytes *tail;
    GArray *blocks; /* KgetVmstateBlock */
    guint64 ram_size;
};

static KgetVmstateDeviceState *
invalid(GError **error, const char *what)
{
    g_set_error(error, KGET_VMSTATE_ERROR, KGET_VMSTATE_ERROR_INVALID,
                "bad device-state item: %s", what);
    return NULL;
}

KgetVmstateDeviceState *
kget_vmstate_device_state_new(GBytes *item, GError **error)
{
    g_autoptr(KgetVmstateDeviceState) ds = NULL;
    const guint8 *data, *magic, *head, *tail;
    guint32 version, head_len, tail_len;
    guint8 footers;
    gsize size;
    VcCursor c;

    data = g_bytes_get_data(item, &size);
    if (size > KGET_VMSTATE_MAX_DEVICE_STATE) {
        g_set_error(error, KGET_VMSTATE_ERROR, KGET_VMSTATE_ERROR_TOO_LARGE,
                    "device-state item of %" G_GSIZE_FORMAT " bytes", size);
        return NULL;
    }
    ds = g_new0(KgetVmstateDeviceState, 1);
    vc_cursor_init(&c, data, size);
    if (!vc_cursor_bytes(&c, 4, &magic) || !vc_cursor_u32(&c, &version) ||
        !vc_cursor_u32(&c, &ds->section_id) || !vc_cursor_u8(&c, &footers) ||
        !vc_cursor_u32(&c, &head_len) ||
        !vc_cursor_bytes(&c, head_len, &head) ||
        !vc_cursor_u32(&c, &tail_len) ||
        !vc_cursor_bytes(&c, tail_len, &tail)) {
        return invalid(error, "truncated");
    }
    if (memcmp(magic, "KGVS", 4) != 0) {
        return invalid(error, "bad magic");
    }
    if (version != 1) {
        return invalid(error, "unknown version");
    }
    if (footers > 1) {
        return invalid(error, "bad footers flag");
    }
    if (c.left != 0) {
        return invalid(error, "trailing bytes");
    }
    if (tail_len == 0 ||
        (tail[0] != KGET_VMSTATE_SECTION_FULL && tail[0] != KGET_VMSTATE_EOF)) {
        return invalid(error, "tail does not start with a device section");
    }
    ds->footers = footers;
    if (!kget_vmstate_parse_head(head, head_len, footers, ds->section_id,
                                 &ds->blocks, &ds->ram_size, error)) {
        g_prefix_error(error, "bad device-state item: ");
        return NULL;
    }
    ds->head = g_bytes_new_from_bytes(item, head - data, head_len);
    ds->tail = g_bytes_new_from_bytes(item, tail - data, tail_len);
    return g_steal_pointer(&ds);
}

void
kget_vmstate_device_state_free(KgetVmstateDeviceState *ds)
{
    if (!ds) {
        return;
    }
    g_clear_pointer(&ds->head, g_bytes_unref);
    g_clear_pointer(&ds->tail, g_bytes_unref);
    g_clear_pointer(&ds->blocks, g_array_unref);
    g_free(ds);
}

guint64
kget_vmstate_device_state_get_ram_size(KgetVmstateDeviceState *ds)
{
    return ds->ram_size;
}

const KgetVmstateBlock *
kget_vmstate_device_state_get_blocks(KgetVmstateDeviceState *ds,
                                     guint *n_blocks)
{
    *n_blocks = ds->blocks->len;
    return (const KgetVmstateBlock *)ds->blocks->data;
}

guint32
kget_vmstate_device_state_get_section_id(KgetVmstateDeviceState *ds)
{
    return ds->section_id;
}

gboolean
kget_vmstate_device_state_get_footers(KgetVmstateDeviceState *ds)
{
    return ds->footers;
}

GBytes *
kget_vmstate_device_state_get_head(KgetVmstateDeviceState *ds)
{
    return ds->head;
}

GBytes *
kget_vmstate_device_state_get_tail(KgetVmstateDeviceState *ds)
{
    return ds->tail;
}
