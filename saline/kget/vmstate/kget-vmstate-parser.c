/*
 * The incremental parser of a QEMU 7.2 migration stream, and the
 * device-state item it produces (kget-vmstate.h).
 *
 * The stream is cut into tokens of at most one RAM page record (a few KiB)
 * each; a token is parsed only once all its bytes are there, so a split
 * anywhere only delays it, and the bytes kept between two feeds are fewer
 * than one token.
 */
#include "kget-vmstate-private.h"

#include <stdarg.h>
#include <string.h>

#include "vc-frame.h"

G_DEFINE_QUARK(kget-vmstate-error-quark, kget_vmstate_error)

/* migration/savevm.c, migration/ram.c of QEMU 7.2 */
#define QEMU_VM_FILE_MAGIC 0x5145564d
#define QEMU_VM_FILE_VERSION_COMPAT 2
#define QEMU_VM_FILE_VERSION 3
#define QEMU_VM_SUBSECTION 0x05
#define QEMU_VM_CONFIGURATION 0x07
#define QEMU_VM_COMMAND 0x08

#define RAM_SAVE_FLAG_FULL 0x01
#define RAM_SAVE_FLAG_MEM_SIZE 0x04
#define RAM_SAVE_FLAG_XBZRLE 0x40
#define RAM_SAVE_FLAG_HOOK 0x80
#define RAM_SAVE_FLAG_COMPRESS_PAGE 0x100
#define RAM_SAVE_FLAG_MULTIFD_FLUSH 0x200 /* QEMU 8.0 */
#define RAM_SAVE_FLAG_HASH 0x400          /* qemu-patches/0002 */
#define RAM_SAVE_FLAG_HASH_SYNC 0x800     /* qemu-patches/0002 */

#define RAM_SECTION_IDSTR "ram"
#define RAM_SECTION_VERSION 4
#define TARGET_PAGE_BITS 12
#define PAGE_MASK ((guint64)KGET_VMSTATE_PAGE_SIZE - 1)

#define MAX_MACHINE_NAME 255
#define MAX_CAPABILITIES 64

#define DEVICE_STATE_MAGIC "KGVS"
#define DEVICE_STATE_VERSION 1

typedef enum {
    PHASE_HEAD, /* up to the end of the RAM setup section */
    PHASE_BODY, /* the RAM section's PART and END sections */
    PHASE_TAIL,
} Phase;

typedef enum {
    ST_FILE_HEADER,
    ST_SECTION,    /* the next section (or the configuration) */
    ST_SUBSECTION, /* the next subsection of the configuration, if any */
    ST_CAPABILITY,
    ST_RAM_RECORD,
    ST_BLOCK,  /* the next entry of the block list */
    ST_FOOTER, /* after a RAM section's EOS */
    ST_TAIL,
    ST_FINISHED,
    ST_FAILED,
} State;

typedef enum {
    STEP_DONE,
    STEP_MORE,
    STEP_FAIL,
} Step;

struct KgetVmstateParser {
    KgetVmstateParserFuncs funcs;
    gpointer user_data;

    State state;
    Phase phase;
    guint64 pos;         /* stream offset of the token being parsed */
    GByteArray *pending; /* the start of a token split by a feed */
    GByteArray *head;
    GByteArray *tail;

    int footers; /* -1 until known */
    gboolean have_config;
    guint32 caps_left;
    gboolean have_ram_section;
    guint32 ram_section_id;
    guint8 section_type; /* of the RAM section being parsed */
    gboolean ram_ended;  /* its END section has been parsed */

    GArray *blocks;    /* KgetVmstateBlock */
    GHashTable *index; /* idstr -> block number + 1 */
    guint64 ram_size;  /* once the block list is complete */
    guint64 list_size; /* announced by RAM_SAVE_FLAG_MEM_SIZE */
    guint64 list_left;
    gint last_block; /* of the last page record, for CONTINUE */
};

static Step fail(KgetVmstateParser *p, GError **error, int code,
                 const char *fmt, ...) G_GNUC_PRINTF(4, 5);

static Step
fail(KgetVmstateParser *p, GError **error, int code, const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(error, KGET_VMSTATE_ERROR, code,
                "migration stream at byte %" G_GUINT64_FORMAT ": %s", p->pos,
                msg);
    p->state = ST_FAILED;
    return STEP_FAIL;
}

KgetVmstateParser *
kget_vmstate_parser_new(const KgetVmstateParserFuncs *funcs, gpointer user_data)
{
    KgetVmstateParser *p = g_new0(KgetVmstateParser, 1);

    if (funcs) {
        p->funcs = *funcs;
    }
    p->user_data = user_data;
    p->state = ST_FILE_HEADER;
    p->phase = PHASE_HEAD;
    p->pending = g_byte_array_new();
    p->head = g_byte_array_new();
    p->tail = g_byte_array_new();
    p->footers = -1;
    p->blocks = g_array_new(FALSE, TRUE, sizeof(KgetVmstateBlock));
    p->index = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    p->last_block = -1;
    return p;
}

void
kget_vmstate_parser_free(KgetVmstateParser *p)
{
    if (!p) {
        return;
    }
    g_byte_array_unref(p->pending);
    g_byte_array_unref(p->head);
    g_byte_array_unref(p->tail);
    g_hash_table_unref(p->index);
    g_array_unref(p->blocks);
    g_free(p);
}

/*
 * An idstr as QEMU writes it: a length byte, then that many bytes. Returns
 * FALSE when they are not all there yet; *valid tells whether they are a
 * usable name (1..255 bytes, no NUL).
 */
static gboolean
cursor_idstr(VcCursor *c, char out[KGET_VMSTATE_MAX_IDSTR + 1], gboolean *valid)
{
    const guint8 *bytes;
    guint8 len;

    if (!vc_cursor_u8(c, &len) || !vc_cursor_bytes(c, len, &bytes)) {
        return FALSE;
    }
    memcpy(out, bytes, len);
    out[len] = '\0';
    *valid = len > 0 && memchr(bytes, '\0', len) == NULL;
    return TRUE;
}

static Step
step_file_header(KgetVmstateParser *p, VcCursor *c, GError **error)
{
    guint32 magic, version;

    if (!vc_cursor_u32(c, &magic) || !vc_cursor_u32(c, &version)) {
        return STEP_MORE;
    }
    if (magic != QEMU_VM_FILE_MAGIC) {
        return fail(p, error, KGET_VMSTATE_ERROR_INVALID,
                    "bad magic 0x%08x, not a QEMU migration stream", magic);
    }
    if (version == QEMU_VM_FILE_VERSION_COMPAT) {
        return fail(p, error, KGET_VMSTATE_ERROR_UNSUPPORTED,
                    "unsupported stream version 2 (QEMU before 0.13)");
    }
    if (version != QEMU_VM_FILE_VERSION) {
        return fail(p, error, KGET_VMSTATE_ERROR_INVALID,
                    "unknown stream version %u", version);
    }
    p->state = ST_SECTION;
    return STEP_DONE;
}

static Step
step_configuration(KgetVmstateParser *p, VcCursor *c, GError **error)
{
    const guint8 *name;
    guint32 len;
    guint8 type;

    if (!vc_cursor_u8(c, &type) || !vc_cursor_u32(c, &len)) {
        return STEP_MORE;
    }
    if (len > MAX_MACHINE_NAME) {
        return fail(p, error, KGET_VMSTATE_ERROR_TOO_LARGE,
                    "machine name of %u bytes in the configuration", len);
    }
    if (!vc_cursor_bytes(c, len, &name)) {
        return STEP_MORE;
    }
    p->have_config = TRUE;
    p->state = ST_SUBSECTION;
    return STEP_DONE;
}

static Step
step_subsection(KgetVmstateParser *p, VcCursor *c, GError **error)
{
    char name[KGET_VMSTATE_MAX_IDSTR + 1];
    gboolean valid;
    guint32 version, value;
    const guint8 *uuid;
    guint8 type;

    if (c->left == 0) {
        return STEP_MORE;
    }
    if (c->data[0] != QEMU_VM_SUBSECTION) {
        /* The configuration ends where a section starts. */
        p->state = ST_SECTION;
        return STEP_DONE;
    }
    if (!vc_cursor_u8(c, &type) || !cursor_idstr(c, name, &valid) ||
        !vc_cursor_u32(c, &version)) {
        return STEP_MORE;
    }
    if (!valid || version != 1) {
        return fail(p, error, KGET_VMSTATE_ERROR_UNSUPPORTED,
                    "unknown configuration subsection '%s' version %u", name,
                    version);
    }
    if (strcmp(name, "configuration/target-page-bits") == 0) {
        if (!vc_cursor_u32(c, &value)) {
            return STEP_MORE;
        }
        if (value != TARGET_PAGE_BITS) {
            return fail(p, error, KGET_VMSTATE_ERROR_UNSUPPORTED,
                        "target pages of 2^%u bytes", value);
        }
    } else if (strcmp(name, "configuration/uuid") == 0) {
        if (!vc_cursor_bytes(c, 16, &uuid)) {
            return STEP_MORE;
        }
    } else if (strcmp(name, "configuration/capabilities") == 0) {
        if (!vc_cursor_u32(c, &value)) {
            return STEP_MORE;
        }
        if (value > MAX_CAPABILITIES) {
            return fail(p, error, KGET_VMSTATE_ERROR_TOO_LARGE,
                        "%u capabilities in the configuration", value);
        }
        p->caps_left = value;
        p->state = ST_CAPABILITY;
    } else {
        return fail(p, error, KGET_VMSTATE_ERROR_UNSUPPORTED,
                    "unknown configuration subsection '%s'", name);
    }
    return STEP_DONE;
}

static Step
step_capability(KgetVmstateParser *p, VcCursor *c, GError **error)
{
    char name[KGET_VMSTATE_MAX_IDSTR + 1];
    gboolean valid;

    if (p->caps_left == 0) {
        p->state = ST_SUBSECTION;
        return STEP_DONE;
    }
    if (!cursor_idstr(c, name, &valid)) {
        return STEP_MORE;
    }
    /* 7.2 lists only the capabilities that change the stream's layout:
     * x-ignore-shared leaves blocks out and adds a field to the block
     * list; the project's x-page-hash sends hashes instead of pages. */
    return fail(p, error, KGET_VMSTATE_ERROR_UNSUPPORTED,
                "unsupported capability '%s'", name);
}

static Step
step_section_start(KgetVmstateParser *p, VcCursor *c, GError **error)
{
    char idstr[KGET_VMSTATE_MAX_IDSTR + 1];
    guint32 section_id, instance_id, version_id;
    gboolean valid;
    guint8 type;

    if (!vc_cursor_u8(c, &type) || !vc_cursor_u32(c, &section_id) ||
        !cursor_idstr(c, idstr, &valid) || !vc_cursor_u32(c, &instance_id) ||
        !vc_cursor_u32(c, &version_id)) {
        return STEP_MORE;
    }
    if (!valid || strcmp(idstr, RAM_SECTION_IDSTR) != 0) {
        return fail(p, error, KGET_VMSTATE_ERROR_UNSUPPORTED,
                    "unsupported iterable section '%s'", idstr);
    }
    if (instance_id != 0 || version_id != RAM_SECTION_VERSION) {
        return fail(p, error, KGET_VMSTATE_ERROR_UNSUPPORTED,
                    "RAM section instance %u version %u, expected 0 and %u",
                    instance_id, version_id, RAM_SECTION_VERSION);
    }
    p->have_ram_section = TRUE;
    p->ram_section_id = section_id;
    p->section_type = type;
    p->state = ST_RAM_RECORD;
    return STEP_DONE;
}

static Step
step_section_part(KgetVmstateParser *p, VcCursor *c, GError **error)
{
    guint32 section_id;
    guint8 type;

    if (!vc_cursor_u8(c, &type) || !vc_cursor_u32(c, &section_id)) {
        return STEP_MORE;
    }
    if (section_id != p->ram_section_id) {
        return fail(p, error, KGET_VMSTATE_ERROR_UNSUPPORTED,
                    "section %u is not the RAM section (%u)", section_id,
                    p->ram_section_id);
    }
    if (p->ram_ended) {
        return fail(p, error, KGET_VMSTATE_ERROR_INVALID,
                    "RAM section continued after its end");
    }
    p->section_type = type;
    p->state = ST_RAM_RECORD;
    return STEP_DONE;
}

static Step
step_section(KgetVmstateParser *p, VcCursor *c, GError **error)
{
    guint8 type;

    if (c->left == 0) {
        return STEP_MORE;
    }
    type = c->data[0];
    if (type == QEMU_VM_COMMAND) {
        return fail(p, error, KGET_VMSTATE_ERROR_UNSUPPORTED,
                    "QEMU_VM_COMMAND in the stream (postcopy, COLO or "
                    "return path)");
    }
    if (p->phase == PHASE_HEAD) {
        if (type == QEMU_VM_CONFIGURATION && !p->have_config && p->pos == 8) {
            return step_configuration(p, c, error);
        }
        if (type == KGET_VMSTATE_SECTION_START) {
            return step_section_start(p, c, error);
        }
        return fail(p, error, KGET_VMSTATE_ERROR_UNSUPPORTED,
                    "section type 0x%02x before the RAM setup section", type);
    }
    switch (type) {
    case KGET_VMSTATE_SECTION_PART:
    case KGET_VMSTATE_SECTION_END:
        return step_section_part(p, c, error);
    case KGET_VMSTATE_SECTION_FULL:
    case KGET_VMSTATE_EOF:
        /* The device state; with background-snapshot the RAM section
         * has no END section and this comes right after its last PART. */
        p->phase = PHASE_TAIL;
        p->state = ST_TAIL;
        return STEP_DONE;
    default:
        return fail(p, error, KGET_VMSTATE_ERROR_UNSUPPORTED,
                    "section type 0x%02x after the RAM setup section", type);
    }
}

static Step
mem_size(KgetVmstateParser *p, guint64 addr, GError **error)
{
    if (p->section_type != KGET_VMSTATE_SECTION_START || p->list_size > 0) {
        return fail(p, error, KGET_VMSTATE_ERROR_INVALID,
                    "RAM block list outside the RAM setup section");
    }
    if (addr == 0) {
        return fail(p, error, KGET_VMSTATE_ERROR_INVALID, "no guest RAM");
    }
    if (addr > KGET_VMSTATE_MAX_RAM) {
        return fail(p, error, KGET_VMSTATE_ERROR_TOO_LARGE,
                    "%" G_GUINT64_FORMAT " bytes of guest RAM", addr);
    }
    p->list_size = p->list_left = addr;
    p->state = ST_BLOCK;
    return STEP_DONE;
}

static Step
step_block(KgetVmstateParser *p, VcCursor *c, GError **error)
{
    KgetVmstateBlock b = {{0}};
    gboolean valid;

    if (!cursor_idstr(c, b.idstr, &valid) || !vc_cursor_u64(c, &b.size)) {
        return STEP_MORE;
    }
    if (!valid) {
        return fail(p, error, KGET_VMSTATE_ERROR_INVALID, "bad RAM block name");
    }
    if (p->blocks->len >= KGET_VMSTATE_MAX_BLOCKS) {
        return fail(p, error, KGET_VMSTATE_ERROR_TOO_LARGE,
                    "more than %d RAM blocks", KGET_VMSTATE_MAX_BLOCKS);
    }
    if (b.size == 0 || (b.size & PAGE_MASK) != 0 || b.size > p->list_left) {
        return fail(p, error, KGET_VMSTATE_ERROR_INVALID,
                    "RAM block '%s' of %" G_GUINT64_FORMAT
                    " bytes (%" G_GUINT64_FORMAT " left of the announced size)",
                    b.idstr, b.size, p->list_left);
    }
    if (g_hash_table_contains(p->index, b.idstr)) {
        return fail(p, error, KGET_VMSTATE_ERROR_INVALID,
                    "RAM block '%s' listed twice", b.idstr);
    }
    b.offset = p->list_size - p->list_left;
    p->list_left -= b.size;
    g_array_append_val(p->blocks, b);
    g_hash_table_insert(p->index, g_strdup(b.idstr),
                        GUINT_TO_POINTER(p->blocks->len));
    if (p->list_left > 0) {
        return STEP_DONE;
    }
    p->ram_size = p->list_size;
    p->state = ST_RAM_RECORD;
    if (p->funcs.ram_size &&
        !p->funcs.ram_size(p->ram_size, p->user_data, error)) {
        p->state = ST_FAILED;
        return STEP_FAIL;
    }
    return STEP_DONE;
}

static Step
unsupported_flags(KgetVmstateParser *p, guint flags, GError **error)
{
    static const struct {
        guint flag;
        const char *what;
    } names[] = {
        {RAM_SAVE_FLAG_COMPRESS_PAGE, "compressed page"},
        {RAM_SAVE_FLAG_XBZRLE, "XBZRLE page"},
        {RAM_SAVE_FLAG_HOOK, "RDMA hook"},
        {RAM_SAVE_FLAG_MULTIFD_FLUSH, "multifd flush"},
        {RAM_SAVE_FLAG_HASH, "page-hash record"},
        {RAM_SAVE_FLAG_HASH_SYNC, "page-hash sync"},
        {RAM_SAVE_FLAG_FULL, "obsolete full-page flag"},
    };

    for (gsize i = 0; i < G_N_ELEMENTS(names); i++) {
        if (flags & names[i].flag) {
            return fail(p, error, KGET_VMSTATE_ERROR_UNSUPPORTED,
                        "unsupported RAM record (%s, flags 0x%03x)",
                        names[i].what, flags);
        }
    }
    return fail(p, error, KGET_VMSTATE_ERROR_INVALID,
                "unknown RAM record flags 0x%03x", flags);
}

static Step
page_record(KgetVmstateParser *p, VcCursor *c, guint64 addr, guint flags,
            GError **error)
{
    char idstr[KGET_VMSTATE_MAX_IDSTR + 1];
    const KgetVmstateBlock *b;
    const guint8 *data;
    guint8 fill[KGET_VMSTATE_PAGE_SIZE];
    gboolean valid = TRUE;
    gint block = p->last_block;
    guint8 ch = 0;

    if (p->section_type == KGET_VMSTATE_SECTION_START) {
        return fail(p, error, KGET_VMSTATE_ERROR_UNSUPPORTED,
                    "RAM page in the RAM setup section");
    }
    if (!(flags & KGET_VMSTATE_RAM_CONTINUE) &&
        !cursor_idstr(c, idstr, &valid)) {
        return STEP_MORE;
    }
    if (flags & KGET_VMSTATE_RAM_ZERO) {
        if (!vc_cursor_u8(c, &ch)) {
            return STEP_MORE;
        }
    } else if (!vc_cursor_bytes(c, KGET_VMSTATE_PAGE_SIZE, &data)) {
        return STEP_MORE;
    }
    if (!(flags & KGET_VMSTATE_RAM_CONTINUE)) {
        block = valid
                    ? GPOINTER_TO_INT(g_hash_table_lookup(p->index, idstr)) - 1
                    : -1;
        if (block < 0) {
            return fail(p, error, KGET_VMSTATE_ERROR_INVALID,
                        "page of unknown RAM block '%s'", idstr);
        }
    } else if (block < 0) {
        return fail(p, error, KGET_VMSTATE_ERROR_INVALID,
                    "first page record continues no block");
    }
    b = &g_array_index(p->blocks, KgetVmstateBlock, block);
    if (addr >= b->size) {
        return fail(p, error, KGET_VMSTATE_ERROR_INVALID,
                    "page offset 0x%" G_GINT64_MODIFIER "x outside RAM block "
                    "'%s' of %" G_GUINT64_FORMAT " bytes",
                    addr, b->idstr, b->size);
    }
    p->last_block = block;
    if (flags & KGET_VMSTATE_RAM_ZERO) {
        /* 7.2 always sends 0; older QEMU filled the page with ch. */
        data = NULL;
        if (ch != 0) {
            memset(fill, ch, sizeof(fill));
            data = fill;
        }
    }
    if (p->funcs.page &&
        !p->funcs.page(b->offset + addr, data, p->user_data, error)) {
        p->state = ST_FAILED;
        return STEP_FAIL;
    }
    return STEP_DONE;
}

static Step
step_ram_record(KgetVmstateParser *p, VcCursor *c, GError **error)
{
    guint64 v, addr;
    guint flags;

    if (!vc_cursor_u64(c, &v)) {
        return STEP_MORE;
    }
    flags = (guint)(v & PAGE_MASK);
    addr = v & ~PAGE_MASK;
    switch (flags & ~KGET_VMSTATE_RAM_CONTINUE) {
    case RAM_SAVE_FLAG_MEM_SIZE:
        if (flags & KGET_VMSTATE_RAM_CONTINUE) {
            break;
        }
        return mem_size(p, addr, error);
    case KGET_VMSTATE_RAM_ZERO:
    case KGET_VMSTATE_RAM_PAGE:
        return page_record(p, c, addr, flags, error);
    case KGET_VMSTATE_RAM_EOS:
        if (v != KGET_VMSTATE_RAM_EOS) {
            break;
        }
        if (p->section_type == KGET_VMSTATE_SECTION_START && p->ram_size == 0) {
            return fail(p, error, KGET_VMSTATE_ERROR_INVALID,
                        "RAM setup section without a block list");
        }
        p->state = ST_FOOTER;
        return STEP_DONE;
    default:
        break;
    }
    return unsupported_flags(p, flags, error);
}

static void
end_section(KgetVmstateParser *p)
{
    if (p->section_type == KGET_VMSTATE_SECTION_START) {
        p->phase = PHASE_BODY;
    } else if (p->section_type == KGET_VMSTATE_SECTION_END) {
        p->ram_ended = TRUE;
    }
    p->state = ST_SECTION;
}

static Step
step_footer(KgetVmstateParser *p, VcCursor *c, GError **error)
{
    guint32 section_id;
    guint8 mark;

    if (p->footers < 0) {
        if (c->left == 0) {
            return STEP_MORE;
        }
        p->footers = c->data[0] == KGET_VMSTATE_SECTION_FOOTER;
    }
    if (p->footers) {
        if (!vc_cursor_u8(c, &mark) || !vc_cursor_u32(c, &section_id)) {
            return STEP_MORE;
        }
        if (mark != KGET_VMSTATE_SECTION_FOOTER ||
            section_id != p->ram_section_id) {
            return fail(p, error, KGET_VMSTATE_ERROR_INVALID,
                        "missing footer of the RAM section");
        }
    }
    end_section(p);
    return STEP_DONE;
}

static Step
step_tail(KgetVmstateParser *p, VcCursor *c, GError **error)
{
    if (c->left == 0) {
        return STEP_MORE;
    }
    if (p->head->len + p->tail->len + c->left + KGET_VMSTATE_ITEM_OVERHEAD >
        KGET_VMSTATE_MAX_DEVICE_STATE) {
        return fail(p, error, KGET_VMSTATE_ERROR_TOO_LARGE,
                    "device state larger than %d bytes",
                    KGET_VMSTATE_MAX_DEVICE_STATE);
    }
    g_byte_array_append(p->tail, c->data, c->left);
    c->left = 0;
    return STEP_DONE;
}

static Step
step(KgetVmstateParser *p, VcCursor *c, GError **error)
{
    switch (p->state) {
    case ST_FILE_HEADER:
        return step_file_header(p, c, error);
    case ST_SECTION:
        return step_section(p, c, error);
    case ST_SUBSECTION:
        return step_subsection(p, c, error);
    case ST_CAPABILITY:
        return step_capability(p, c, error);
    case ST_RAM_RECORD:
        return step_ram_record(p, c, error);
    case ST_BLOCK:
        return step_block(p, c, error);
    case ST_FOOTER:
        return step_footer(p, c, error);
    case ST_TAIL:
        return step_tail(p, c, error);
    case ST_FINISHED:
    case ST_FAILED:
    default:
        break;
    }
    g_assert_not_reached();
}

/* Parse the complete tokens of data; *done says how many bytes. */
static gboolean
parse(KgetVmstateParser *p, const guint8 *data, gsize len, gsize *done,
      GError **error)
{
    *done = 0;
    for (;;) {
        Phase phase = p->phase;
        VcCursor c;
        gsize used;

        vc_cursor_init(&c, data + *done, len - *done);
        switch (step(p, &c, error)) {
        case STEP_FAIL:
            return FALSE;
        case STEP_MORE:
            return TRUE;
        case STEP_DONE:
            break;
        }
        used = len - *done - c.left;
        if (phase == PHASE_HEAD) {
            if (p->head->len + used + KGET_VMSTATE_ITEM_OVERHEAD >
                KGET_VMSTATE_MAX_DEVICE_STATE) {
                fail(p, error, KGET_VMSTATE_ERROR_TOO_LARGE,
                     "stream head larger than %d bytes",
                     KGET_VMSTATE_MAX_DEVICE_STATE);
                return FALSE;
            }
            g_byte_array_append(p->head, data + *done, used);
        }
        *done += used;
        p->pos += used;
    }
}

gboolean
kget_vmstate_parser_feed(KgetVmstateParser *p, const guint8 *data, gsize len,
                         GError **error)
{
    gboolean buffered = p->pending->len > 0;
    gsize done;

    if (p->state == ST_FAILED || p->state == ST_FINISHED) {
        g_set_error(error, KGET_VMSTATE_ERROR, KGET_VMSTATE_ERROR_INVALID,
                    "migration stream parser already %s",
                    p->state == ST_FAILED ? "failed" : "finished");
        return FALSE;
    }
    if (buffered) {
        g_byte_array_append(p->pending, data, len);
        data = p->pending->data;
        len = p->pending->len;
    }
    if (!parse(p, data, len, &done, error)) {
        return FALSE;
    }
    if (buffered) {
        g_byte_array_remove_range(p->pending, 0, done);
    } else {
        g_byte_array_append(p->pending, data + done, len - done);
    }
    return TRUE;
}

static const char *
state_where(KgetVmstateParser *p)
{
    switch (p->phase) {
    case PHASE_HEAD:
        return p->have_ram_section ? "in the RAM setup section"
                                   : "before the RAM section";
    case PHASE_BODY:
        return "in the RAM section";
    case PHASE_TAIL:
    default:
        return "in the device state";
    }
}

GBytes *
kget_vmstate_parser_finish(KgetVmstateParser *p, GError **error)
{
    GByteArray *item;

    if (p->state == ST_FAILED || p->state == ST_FINISHED) {
        g_set_error(error, KGET_VMSTATE_ERROR, KGET_VMSTATE_ERROR_INVALID,
                    "migration stream parser already %s",
                    p->state == ST_FAILED ? "failed" : "finished");
        return NULL;
    }
    if (p->state != ST_TAIL || p->tail->len == 0) {
        p->pos += p->pending->len;
        fail(p, error, KGET_VMSTATE_ERROR_INVALID, "truncated stream (%s)",
             state_where(p));
        return NULL;
    }
    p->state = ST_FINISHED;
    item = kget_vmstate_item_encode(p->ram_section_id, p->footers == 1,
                                    p->head->data, p->head->len, p->tail->data,
                                    p->tail->len);
    return g_byte_array_free_to_bytes(item);
}

guint64
kget_vmstate_parser_get_ram_size(KgetVmstateParser *p)
{
    return p->ram_size;
}

const KgetVmstateBlock *
kget_vmstate_parser_get_blocks(KgetVmstateParser *p, guint *n_blocks)
{
    *n_blocks = p->ram_size ? p->blocks->len : 0;
    return (const KgetVmstateBlock *)p->blocks->data;
}

GByteArray *
kget_vmstate_item_encode(guint32 section_id, gboolean footers,
                         const guint8 *head, gsize head_len, const guint8 *tail,
                         gsize tail_len)
{
    GByteArray *item = g_byte_array_sized_new(KGET_VMSTATE_ITEM_OVERHEAD +
                                              head_len + tail_len);

    g_byte_array_append(item, (const guint8 *)DEVICE_STATE_MAGIC, 4);
    vc_put_u32(item, DEVICE_STATE_VERSION);
    vc_put_u32(item, section_id);
    vc_put_u8(item, footers ? 1 : 0);
    vc_put_u32(item, (guint32)head_len);
    g_byte_array_append(item, head, head_len);
    vc_put_u32(item, (guint32)tail_len);
    g_byte_array_append(item, tail, tail_len);
    return item;
}

/*
 * The head of an item is parsed again, as a stream whose footer use is
 * known: it must stop exactly at the end of the RAM setup section.
 */
gboolean
kget_vmstate_parse_head(const guint8 *head, gsize len, gboolean footers,
                        guint32 section_id, GArray **blocks, guint64 *ram_size,
                        GError **error)
{
    g_autoptr(KgetVmstateParser) p = kget_vmstate_parser_new(NULL, NULL);
    g_autoptr(GError) local = NULL;

    p->footers = footers ? 1 : 0;
    if (!kget_vmstate_parser_feed(p, head, len, &local)) {
        g_set_error(error, KGET_VMSTATE_ERROR, KGET_VMSTATE_ERROR_INVALID,
                    "stream head: %s", local->message);
        return FALSE;
    }
    if (p->phase != PHASE_BODY || p->state != ST_SECTION ||
        p->pending->len > 0) {
        g_set_error(error, KGET_VMSTATE_ERROR, KGET_VMSTATE_ERROR_INVALID,
                    "stream head does not end with the RAM setup section");
        return FALSE;
    }
    if (p->ram_section_id != section_id) {
        g_set_error(error, KGET_VMSTATE_ERROR, KGET_VMSTATE_ERROR_INVALID,
                    "RAM section id %u, the item says %u", p->ram_section_id,
                    section_id);
        return FALSE;
    }
    *blocks = g_array_ref(p->blocks);
    *ram_size = p->ram_size;
    return TRUE;
}
