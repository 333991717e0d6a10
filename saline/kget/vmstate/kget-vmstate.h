/*
 * kget-vmstate: a QEMU 7.2 migration stream, turned into two items (the
 * guest's RAM and the device state) and back (README.md, "QEMU migration
 * streams").
 *
 * Supported streams: `migrate "exec:..."` of QEMU 7.2, plain precopy or
 * with the `background-snapshot` capability; x86 4 KiB target pages.
 * Refused: compressed pages, XBZRLE, RDMA hooks, multifd flushes,
 * page-hash records or capability, x-ignore-shared, postcopy and any
 * QEMU_VM_COMMAND, iterable sections other than "ram", unknown flags.
 *
 * Device-state item ("KGVS"), every integer big-endian:
 *
 *   offset  size  field
 *   0       4     "KGVS"
 *   4       4     version, 1
 *   8       4     section id of the "ram" section
 *   12      1     1 if the stream has section footers (0x7e id), else 0
 *   13      4     H, the length of the head
 *   17      H     head: the stream's bytes up to the end of the RAM setup
 *                 section (file header, configuration, the "ram" START
 *                 section with its block list, EOS and footer)
 *   17+H    4     T, the length of the tail (T >= 1)
 *   21+H    T     tail: the stream's bytes after the RAM section (device
 *                 state sections, EOF, VM description); it starts with
 *                 QEMU_VM_SECTION_FULL or QEMU_VM_EOF
 *
 * and nothing after: the item is exactly 21 + H + T bytes, at most
 * KGET_VMSTATE_MAX_DEVICE_STATE.
 *
 * RAM item: the blocks of the head's block list concatenated in that
 * order, each page at its offset.
 */
#pragma once

#include <glib.h>

#define KGET_VMSTATE_PAGE_SIZE 4096
#define KGET_VMSTATE_MAX_RAM (G_GUINT64_CONSTANT(1) << 40)
#define KGET_VMSTATE_MAX_DEVICE_STATE (64 * 1024 * 1024)
#define KGET_VMSTATE_MAX_BLOCKS 1024
#define KGET_VMSTATE_MAX_IDSTR 255

#define KGET_VMSTATE_ERROR (kget_vmstate_error_quark())

typedef enum {
    KGET_VMSTATE_ERROR_INVALID = 1, /* malformed or truncated stream/item */
    KGET_VMSTATE_ERROR_UNSUPPORTED, /* valid QEMU, but not handled here */
    KGET_VMSTATE_ERROR_TOO_LARGE,   /* a bounded size or count exceeded */
} KgetVmstateError;

GQuark kget_vmstate_error_quark(void);

typedef struct {
    char idstr[KGET_VMSTATE_MAX_IDSTR + 1];
    guint64 offset; /* in the RAM item */
    guint64 size;   /* the block's used_length, a multiple of the page */
} KgetVmstateBlock;

/* Parsing a stream. */

typedef struct KgetVmstateParser KgetVmstateParser;

typedef struct {
    /* The block list is known; called once, before any page. */
    gboolean (*ram_size)(guint64 ram_size, gpointer user_data, GError **error);
    /*
     * One page record, in stream order (a page may come several times:
     * the last one wins). @offset is in the RAM item; @data is the
     * page's KGET_VMSTATE_PAGE_SIZE bytes, valid during the call only,
     * or NULL for a zero page.
     */
    gboolean (*page)(guint64 offset, const guint8 *data, gpointer user_data,
                     GError **error);
} KgetVmstateParserFuncs;

/* @funcs (copied) and its members may be NULL. */
KgetVmstateParser *kget_vmstate_parser_new(const KgetVmstateParserFuncs *funcs,
                                           gpointer user_data);
void kget_vmstate_parser_free(KgetVmstateParser *parser);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KgetVmstateParser, kget_vmstate_parser_free)

/*
 * Feed the next @len bytes of the stream, split anywhere. A callback's
 * error, or a malformed stream, fails this call and every later one.
 */
gboolean kget_vmstate_parser_feed(KgetVmstateParser *parser, const guint8 *data,
                                  gsize len, GError **error);
/* The stream has ended: returns the device-state item. */
GBytes *kget_vmstate_parser_finish(KgetVmstateParser *parser, GError **error);

/* 0 until the block list has been read. */
guint64 kget_vmstate_parser_get_ram_size(KgetVmstateParser *parser);
const KgetVmstateBlock *
kget_vmstate_parser_get_blocks(KgetVmstateParser *parser, guint *n_blocks);

/* A device-state item, checked. */

typedef struct KgetVmstateDeviceState KgetVmstateDeviceState;

KgetVmstateDeviceState *kget_vmstate_device_state_new(GBytes *item,
                                                      GError **error);
void kget_vmstate_device_state_free(KgetVmstateDeviceState *ds);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KgetVmstateDeviceState,
                              kget_vmstate_device_state_free)

guint64 kget_vmstate_device_state_get_ram_size(KgetVmstateDeviceState *ds);
const KgetVmstateBlock *
kget_vmstate_device_state_get_blocks(KgetVmstateDeviceState *ds,
                                     guint *n_blocks);
guint32 kget_vmstate_device_state_get_section_id(KgetVmstateDeviceState *ds);
gboolean kget_vmstate_device_state_get_footers(KgetVmstateDeviceState *ds);
GBytes *kget_vmstate_device_state_get_head(KgetVmstateDeviceState *ds);
GBytes *kget_vmstate_device_state_get_tail(KgetVmstateDeviceState *ds);

/* Rebuilding a stream. */

/*
 * Fill @buf with the KGET_VMSTATE_PAGE_SIZE bytes at @offset of the RAM
 * item, or set *@zero (then @buf is ignored).
 */
typedef gboolean (*KgetVmstateReadPageFunc)(guint64 offset, guint8 *buf,
                                            gboolean *zero, gpointer user_data,
                                            GError **error);
typedef gboolean (*KgetVmstateWriteFunc)(const guint8 *data, gsize len,
                                         gpointer user_data, GError **error);

/*
 * Write the stream: the head, one RAM PART section holding every page of
 * every block in order, the RAM END section, the tail. Pages are read one
 * at a time and written in bounded batches.
 */
gboolean kget_vmstate_rebuild(KgetVmstateDeviceState *ds,
                              KgetVmstateReadPageFunc read_page,
                              KgetVmstateWriteFunc write, gpointer user_data,
                              GError **error);
gboolean kget_vmstate_rebuild_to_fd(KgetVmstateDeviceState *ds,
                                    KgetVmstateReadPageFunc read_page,
                                    gpointer user_data, int fd, GError **error);
