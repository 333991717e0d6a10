/* What the parser and the rebuilder of kget-vmstate share. */
#pragma once

#include "kget-vmstate.h"

/* migration/savevm.h, migration/ram.c of QEMU 7.2 */
#define KGET_VMSTATE_EOF 0x00
#define KGET_VMSTATE_SECTION_START 0x01
#define KGET_VMSTATE_SECTION_PART 0x02
#define KGET_VMSTATE_SECTION_END 0x03
#define KGET_VMSTATE_SECTION_FULL 0x04
#define KGET_VMSTATE_SECTION_FOOTER 0x7e

#define KGET_VMSTATE_RAM_ZERO 0x02
#define KGET_VMSTATE_RAM_PAGE 0x08
#define KGET_VMSTATE_RAM_EOS 0x10
#define KGET_VMSTATE_RAM_CONTINUE 0x20

/* The fixed fields of a device-state item (kget-vmstate.h). */
#define KGET_VMSTATE_ITEM_OVERHEAD 21

GByteArray *kget_vmstate_item_encode(guint32 section_id, gboolean footers,
                                     const guint8 *head, gsize head_len,
                                     const guint8 *tail, gsize tail_len);
gboolean kget_vmstate_parse_head(const guint8 *head, gsize len,
                                 gboolean footers, guint32 section_id,
                                 GArray **blocks, guint64 *ram_size,
                                 GError **error);
