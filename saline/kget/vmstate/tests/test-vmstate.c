/*
 * kget-vmstate on synthetic QEMU 7.2 streams: every split, the two
 * layouts (precopy, background-snapshot), the rebuild, and every way a
 * stream or an item can be malformed.
 */
#include "kget-vmstate.h"

#include <string.h>

#include "vc-frame.h"

#define PAGE KGET_VMSTATE_PAGE_SIZE
#define RAM_ID 2

/* Flags of QEMU 7.2 (migration/ram.c). */
#define F_ZERO 0x02
#define F_MEM_SIZE 0x04
#define F_PAGE 0x08
#define F_EOS 0x10
#define F_CONTINUE 0x20

typedef struct {
    gboolean footers;
    gboolean config;
    gboolean end_section; /* precopy; background-snapshot has none */
} Layout;

static const Layout precopy = {TRUE, TRUE, TRUE};
static const Layout background = {TRUE, TRUE, FALSE};
static const Layout bare = {FALSE, FALSE, TRUE};

/* Where the parts of a built stream are. */
typedef struct {
    GByteArray *bytes;
    gsize head_len;
    gsize body_end; /* the tail starts here */
} Stream;

static void
stream_clear(Stream *s)
{
    g_clear_pointer(&s->bytes, g_byte_array_unref);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(Stream, stream_clear)

static void
put_str(GByteArray *b, const char *s)
{
    vc_put_u8(b, (guint8)strlen(s));
    g_byte_array_append(b, (const guint8 *)s, strlen(s));
}

static void
put_footer(GByteArray *b, const Layout *l, guint32 id)
{
    if (l->footers) {
        vc_put_u8(b, 0x7e);
        vc_put_u32(b, id);
    }
}

static void
put_page_data(GByteArray *b, guint8 seed)
{
    for (guint i = 0; i < PAGE; i++) {
        vc_put_u8(b, (guint8)(seed + i * 7));
    }
}

static void
put_head(GByteArray *b, const Layout *l)
{
    vc_put_u32(b, 0x5145564d);
    vc_put_u32(b, 3);
    if (l->config) {
        vc_put_u8(b, 0x07);
        vc_put_u32(b, 13);
        g_byte_array_append(b, (const guint8 *)"pc-i440fx-7.2", 13);
    }
    vc_put_u8(b, 0x01);
    vc_put_u32(b, RAM_ID);
    put_str(b, "ram");
    vc_put_u32(b, 0);
    vc_put_u32(b, 4);
    vc_put_u64(b, 5 * PAGE | F_MEM_SIZE);
    put_str(b, "pc.ram");
    vc_put_u64(b, 4 * PAGE);
    put_str(b, "/rom@etc/acpi/rsdp");
    vc_put_u64(b, PAGE);
    vc_put_u64(b, F_EOS);
    put_footer(b, l, RAM_ID);
}

static void
put_tail(GByteArray *b, const Layout *l)
{
    static const char desc[] = "{\"page_size\": 4096, \"devices\": []}";

    vc_put_u8(b, 0x04); /* a FULL section: opaque from here */
    vc_put_u32(b, 3);
    put_str(b, "timer");
    vc_put_u32(b, 0);
    vc_put_u32(b, 2);
    vc_put_u64(b, 0x1234);
    put_footer(b, l, 3);
    vc_put_u8(b, 0x00);
    vc_put_u8(b, 0x06);
    vc_put_u32(b, sizeof(desc) - 1);
    g_byte_array_append(b, (const guint8 *)desc, sizeof(desc) - 1);
}

/*
 * The RAM item it describes: pc.ram page 0 = seed 9 (sent twice, first 1),
 * page 1 zero, page 2 never sent, page 3 = seed 3; rsdp = seed 5.
 */
static Stream
build(const Layout *l)
{
    Stream s = {g_byte_array_new(), 0, 0};
    GByteArray *b = s.bytes;

    put_head(b, l);
    s.head_len = b->len;
    vc_put_u8(b, 0x02);
    vc_put_u32(b, RAM_ID);
    vc_put_u64(b, 0 | F_PAGE);
    put_str(b, "pc.ram");
    put_page_data(b, 1);
    vc_put_u64(b, PAGE | F_ZERO | F_CONTINUE);
    vc_put_u8(b, 0);
    vc_put_u64(b, 0 | F_PAGE);
    put_str(b, "/rom@etc/acpi/rsdp");
    put_page_data(b, 5);
    vc_put_u64(b, F_EOS);
    put_footer(b, l, RAM_ID);
    vc_put_u8(b, l->end_section ? 0x03 : 0x02);
    vc_put_u32(b, RAM_ID);
    vc_put_u64(b, 3 * PAGE | F_PAGE);
    put_str(b, "pc.ram");
    put_page_data(b, 3);
    vc_put_u64(b, 0 | F_PAGE | F_CONTINUE);
    put_page_data(b, 9);
    vc_put_u64(b, F_EOS);
    put_footer(b, l, RAM_ID);
    s.body_end = b->len;
    put_tail(b, l);
    return s;
}

static guint8 *
expected_ram(void)
{
    guint8 *ram = g_malloc0(5 * PAGE);
    g_autoptr(GByteArray) b = g_byte_array_new();

    put_page_data(b, 9);
    put_page_data(b, 3);
    put_page_data(b, 5);
    memcpy(ram, b->data, PAGE);
    memcpy(ram + 3 * PAGE, b->data + PAGE, PAGE);
    memcpy(ram + 4 * PAGE, b->data + 2 * PAGE, PAGE);
    return ram;
}

/* What the callbacks saw. */
typedef struct {
    guint64 ram_size;
    guint8 *ram;
    guint pages;
    guint zero_pages;
    gboolean fail_page; /* the page callback fails */
} Sink;

static void
sink_clear(Sink *s)
{
    g_clear_pointer(&s->ram, g_free);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(Sink, sink_clear)

static gboolean
on_ram_size(guint64 ram_size, gpointer user_data, GError **error)
{
    Sink *s = user_data;

    g_assert_cmpuint(s->ram_size, ==, 0);
    g_assert_cmpuint(ram_size, <=, 64 * PAGE);
    s->ram_size = ram_size;
    s->ram = g_malloc0(ram_size);
    return TRUE;
}

static gboolean
on_page(guint64 offset, const guint8 *data, gpointer user_data, GError **error)
{
    Sink *s = user_data;

    if (s->fail_page) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_NOSPC, "sink full");
        return FALSE;
    }
    g_assert_nonnull(s->ram);
    g_assert_cmpuint(offset % PAGE, ==, 0);
    g_assert_cmpuint(offset + PAGE, <=, s->ram_size);
    s->pages++;
    if (data) {
        memcpy(s->ram + offset, data, PAGE);
    } else {
        s->zero_pages++;
        memset(s->ram + offset, 0, PAGE);
    }
    return TRUE;
}

static const KgetVmstateParserFuncs sink_funcs = {on_ram_size, on_page};

/* Parse data fed in slices of at most step bytes, the first of first. */
static GBytes *
parse_split(const guint8 *data, gsize len, gsize first, gsize step, Sink *sink,
            GError **error)
{
    g_autoptr(KgetVmstateParser) p = kget_vmstate_parser_new(&sink_funcs, sink);
    gsize pos = MIN(first, len);

    if (!kget_vmstate_parser_feed(p, data, pos, error)) {
        return NULL;
    }
    while (pos < len) {
        gsize n = MIN(step, len - pos);

        if (!kget_vmstate_parser_feed(p, data + pos, n, error)) {
            return NULL;
        }
        pos += n;
    }
    return kget_vmstate_parser_finish(p, error);
}

static GBytes *
parse_all(const GByteArray *b, Sink *sink, GError **error)
{
    return parse_split(b->data, b->len, b->len, 1, sink, error);
}

static GBytes *
expected_item(const Stream *s, const Layout *l)
{
    GByteArray *item = g_byte_array_new();
    gsize tail_len = s->bytes->len - s->body_end;

    g_byte_array_append(item, (const guint8 *)"KGVS", 4);
    vc_put_u32(item, 1);
    vc_put_u32(item, RAM_ID);
    vc_put_u8(item, l->footers);
    vc_put_u32(item, (guint32)s->head_len);
    g_byte_array_append(item, s->bytes->data, s->head_len);
    vc_put_u32(item, (guint32)tail_len);
    g_byte_array_append(item, s->bytes->data + s->body_end, tail_len);
    return g_byte_array_free_to_bytes(item);
}

static void
check_parsed(GBytes *item, Sink *sink, const Stream *s, const Layout *l)
{
    g_autofree guint8 *ram = expected_ram();
    g_autoptr(GBytes) want = expected_item(s, l);

    g_assert_nonnull(item);
    g_assert_true(g_bytes_equal(item, want));
    g_assert_cmpuint(sink->ram_size, ==, 5 * PAGE);
    g_assert_cmpuint(sink->pages, ==, 5);
    g_assert_cmpuint(sink->zero_pages, ==, 1);
    g_assert_cmpmem(sink->ram, 5 * PAGE, ram, 5 * PAGE);
}

static void
test_layout(gconstpointer data)
{
    const Layout *l = data;
    g_auto(Stream) s = build(l);
    g_autoptr(GError) error = NULL;
    g_autoptr(KgetVmstateParser) p = kget_vmstate_parser_new(NULL, NULL);
    g_auto(Sink) sink = {0};
    g_autoptr(GBytes) item = parse_all(s.bytes, &sink, &error);
    const KgetVmstateBlock *blocks;
    guint n_blocks;

    g_assert_no_error(error);
    check_parsed(item, &sink, &s, l);

    /* The block list is there as soon as the head is. */
    g_assert_cmpuint(kget_vmstate_parser_get_ram_size(p), ==, 0);
    kget_vmstate_parser_get_blocks(p, &n_blocks);
    g_assert_cmpuint(n_blocks, ==, 0);
    g_assert_true(
        kget_vmstate_parser_feed(p, s.bytes->data, s.head_len + 1, &error));
    g_assert_cmpuint(kget_vmstate_parser_get_ram_size(p), ==, 5 * PAGE);
    blocks = kget_vmstate_parser_get_blocks(p, &n_blocks);
    g_assert_cmpuint(n_blocks, ==, 2);
    g_assert_cmpstr(blocks[0].idstr, ==, "pc.ram");
    g_assert_cmpuint(blocks[0].offset, ==, 0);
    g_assert_cmpuint(blocks[0].size, ==, 4 * PAGE);
    g_assert_cmpstr(blocks[1].idstr, ==, "/rom@etc/acpi/rsdp");
    g_assert_cmpuint(blocks[1].offset, ==, 4 * PAGE);
    g_assert_cmpuint(blocks[1].size, ==, PAGE);
}

static void
test_splits(void)
{
    g_auto(Stream) s = build(&precopy);

    /* One cut anywhere, then the rest in one slice. */
    for (gsize cut = 0; cut <= s.bytes->len; cut++) {
        g_autoptr(GError) error = NULL;
        g_auto(Sink) sink = {0};
        g_autoptr(GBytes) item = parse_split(s.bytes->data, s.bytes->len, cut,
                                             G_MAXSIZE, &sink, &error);

        g_assert_no_error(error);
        check_parsed(item, &sink, &s, &precopy);
    }
    /* Reads of every small size, 1-byte reads included. */
    for (gsize step = 1; step <= 17; step++) {
        g_autoptr(GError) error = NULL;
        g_auto(Sink) sink = {0};
        g_autoptr(GBytes) item =
            parse_split(s.bytes->data, s.bytes->len, 0, step, &sink, &error);

        g_assert_no_error(error);
        check_parsed(item, &sink, &s, &precopy);
    }
}

static void
test_truncated(void)
{
    g_auto(Stream) s = build(&background);

    /* Every stream that stops before the device state starts. */
    for (gsize len = 0; len <= s.body_end; len++) {
        g_autoptr(GError) error = NULL;
        g_auto(Sink) sink = {0};
        g_autoptr(GBytes) item =
            parse_split(s.bytes->data, len, len, 1, &sink, &error);

        g_assert_null(item);
        g_assert_error(error, KGET_VMSTATE_ERROR, KGET_VMSTATE_ERROR_INVALID);
        g_assert_nonnull(strstr(error->message, "truncated"));
    }
}

/* The rebuilt stream's sink: the RAM item and the bytes written. */
typedef struct {
    const guint8 *ram;
    GByteArray *out;
    guint reads;
    guint zero_reads;
} Source;

static gboolean
read_page(guint64 offset, guint8 *buf, gboolean *zero, gpointer user_data,
          GError **error)
{
    Source *src = user_data;
    const guint8 *page = src->ram + offset;
    gsize i = 0;

    src->reads++;
    while (i < PAGE && page[i] == 0) {
        i++;
    }
    *zero = i == PAGE;
    if (*zero) {
        src->zero_reads++;
        memset(buf, 0xa5, PAGE); /* must be ignored */
    } else {
        memcpy(buf, page, PAGE);
    }
    return TRUE;
}

static gboolean
write_out(const guint8 *data, gsize len, gpointer user_data, GError **error)
{
    Source *src = user_data;

    g_byte_array_append(src->out, data, len);
    return TRUE;
}

static void
test_rebuild(gconstpointer data)
{
    const Layout *l = data;
    g_auto(Stream) s = build(l);
    g_autoptr(GError) error = NULL;
    g_auto(Sink) sink = {0};
    g_auto(Sink) again = {0};
    g_autoptr(GBytes) item = parse_all(s.bytes, &sink, &error);
    g_autoptr(GBytes) item2 = NULL;
    g_autoptr(KgetVmstateDeviceState) ds = NULL;
    g_autoptr(GByteArray) out = g_byte_array_new();
    Source src = {sink.ram, out, 0, 0};
    gsize expected_len;

    g_assert_no_error(error);
    ds = kget_vmstate_device_state_new(item, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(kget_vmstate_device_state_get_ram_size(ds), ==, 5 * PAGE);
    g_assert_cmpuint(kget_vmstate_device_state_get_section_id(ds), ==, RAM_ID);
    g_assert_cmpint(kget_vmstate_device_state_get_footers(ds), ==, l->footers);
    g_assert_true(kget_vmstate_rebuild(ds, read_page, write_out, &src, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(src.reads, ==, 5);
    g_assert_cmpuint(src.zero_reads, ==, 2);

    /* head, PART: 2 records with idstr, 3 continued, EOS; END: EOS */
    expected_len = s.head_len + 5 + (8 + 7 + PAGE) + 2 * (8 + 1) + (8 + PAGE) +
                   (8 + 19 + PAGE) + 8 + 5 + 8 + (s.bytes->len - s.body_end) +
                   (l->footers ? 10 : 0);
    g_assert_cmpuint(out->len, ==, expected_len);
    g_assert_cmpmem(out->data, s.head_len, s.bytes->data, s.head_len);

    /* It parses back into the same two items. */
    item2 = parse_all(out, &again, &error);
    g_assert_no_error(error);
    g_assert_true(g_bytes_equal(item, item2));
    g_assert_cmpuint(again.pages, ==, 5);
    g_assert_cmpmem(again.ram, 5 * PAGE, sink.ram, 5 * PAGE);
}

/* A malformed stream: the bytes to use instead of the valid ones. */
typedef struct {
    const char *name;
    void (*mutate)(GByteArray *b, const Stream *s);
    int code;            /* KgetVmstateError */
    const char *message; /* a part of the error message */
} Malformed;

static void
patch_u64(GByteArray *b, gsize at, guint64 v)
{
    for (int i = 0; i < 8; i++) {
        b->data[at + i] = (guint8)(v >> (56 - 8 * i));
    }
}

/* The first RAM record of the PART section. */
static gsize
first_record(const Stream *s)
{
    return s->head_len + 5;
}

static void
bad_magic(GByteArray *b, const Stream *s)
{
    b->data[0] = 'X';
}

static void
old_version(GByteArray *b, const Stream *s)
{
    b->data[7] = 2;
}

static void
record_flags(GByteArray *b, const Stream *s, guint64 flags)
{
    patch_u64(b, first_record(s), flags);
}

static void
unknown_flags(GByteArray *b, const Stream *s)
{
    record_flags(b, s, F_PAGE | F_ZERO);
}

static void
compressed(GByteArray *b, const Stream *s)
{
    record_flags(b, s, 0x100);
}

static void
xbzrle(GByteArray *b, const Stream *s)
{
    record_flags(b, s, 0x40);
}

static void
page_hash(GByteArray *b, const Stream *s)
{
    record_flags(b, s, 0x400);
}

static void
outside_block(GByteArray *b, const Stream *s)
{
    record_flags(b, s, 4 * PAGE | F_PAGE);
}

static void
continue_first(GByteArray *b, const Stream *s)
{
    record_flags(b, s, F_PAGE | F_CONTINUE);
}

static void
unknown_block(GByteArray *b, const Stream *s)
{
    b->data[first_record(s) + 9] = 'x'; /* "xc.ram" */
}

static void
eos_with_offset(GByteArray *b, const Stream *s)
{
    patch_u64(b, s->head_len - 13, PAGE | F_EOS);
}

/* The block list starts after the 13 bytes of the configuration. */
static gsize
mem_size_at(void)
{
    return 8 + 18 + 1 + 4 + 4 + 4 + 4;
}

static void
blocks_too_large(GByteArray *b, const Stream *s)
{
    patch_u64(b, mem_size_at() + 8 + 7 + 8 + 19, 2 * PAGE);
}

static void
ram_too_large(GByteArray *b, const Stream *s)
{
    patch_u64(b, mem_size_at(),
              ((G_GUINT64_CONSTANT(1) << 40) + PAGE) | F_MEM_SIZE);
}

static void
unaligned_block(GByteArray *b, const Stream *s)
{
    patch_u64(b, mem_size_at() + 8 + 7, 4 * PAGE - 512);
}

static void
duplicate_block(GByteArray *b, const Stream *s)
{
    const char *rsdp = "/rom@etc/acpi/rsdp";
    guint8 *name = memmem(b->data, s->head_len, rsdp, strlen(rsdp));

    /* Same length, so rename "pc.ram" the long way: reuse the first. */
    g_assert_nonnull(name);
    name[-1] = 6;
    memcpy(name, "pc.ram", 6);
    g_byte_array_remove_range(b, (guint)(name - b->data) + 6,
                              (guint)strlen(rsdp) - 6);
}

static void
other_iterable(GByteArray *b, const Stream *s)
{
    memcpy(b->data + 8 + 18 + 6, "rum", 3);
}

static void
command(GByteArray *b, const Stream *s)
{
    b->data[8 + 18] = 0x08;
}

static void
wrong_section(GByteArray *b, const Stream *s)
{
    b->data[s->head_len + 4] = RAM_ID + 1;
}

static void
bad_footer(GByteArray *b, const Stream *s)
{
    b->data[s->head_len - 1] = RAM_ID + 1;
}

static void
unknown_tail(GByteArray *b, const Stream *s)
{
    b->data[s->body_end] = 0x05;
}

static void
ignore_shared(GByteArray *b, const Stream *s)
{
    g_autoptr(GByteArray) sub = g_byte_array_new();

    vc_put_u8(sub, 0x05);
    put_str(sub, "configuration/capabilities");
    vc_put_u32(sub, 1);
    vc_put_u32(sub, 1);
    put_str(sub, "x-ignore-shared");
    g_byte_array_prepend(b, sub->data, sub->len);
    /* Move the file header back in front. */
    memmove(b->data, b->data + sub->len, 8 + 18);
    memcpy(b->data + 8 + 18, sub->data, sub->len);
}

static void
page_in_setup(GByteArray *b, const Stream *s)
{
    /* The setup's EOS becomes a continued zero page of rsdp. */
    patch_u64(b, s->head_len - 13, F_ZERO | F_CONTINUE);
}

static const Malformed malformed[] = {
    {"bad-magic", bad_magic, KGET_VMSTATE_ERROR_INVALID, "bad magic"},
    {"old-version", old_version, KGET_VMSTATE_ERROR_UNSUPPORTED, "version 2"},
    {"unknown-flags", unknown_flags, KGET_VMSTATE_ERROR_INVALID,
     "unknown RAM record flags 0x00a"},
    {"compressed", compressed, KGET_VMSTATE_ERROR_UNSUPPORTED,
     "compressed page"},
    {"xbzrle", xbzrle, KGET_VMSTATE_ERROR_UNSUPPORTED, "XBZRLE"},
    {"page-hash", page_hash, KGET_VMSTATE_ERROR_UNSUPPORTED, "page-hash"},
    {"outside-block", outside_block, KGET_VMSTATE_ERROR_INVALID,
     "outside RAM block 'pc.ram'"},
    {"continue-first", continue_first, KGET_VMSTATE_ERROR_INVALID,
     "continues no block"},
    {"unknown-block", unknown_block, KGET_VMSTATE_ERROR_INVALID,
     "unknown RAM block 'xc.ram'"},
    {"eos-with-offset", eos_with_offset, KGET_VMSTATE_ERROR_INVALID,
     "unknown RAM record flags 0x010"},
    {"blocks-too-large", blocks_too_large, KGET_VMSTATE_ERROR_INVALID,
     "RAM block '/rom@etc/acpi/rsdp'"},
    {"ram-too-large", ram_too_large, KGET_VMSTATE_ERROR_TOO_LARGE,
     "bytes of guest RAM"},
    {"unaligned-block", unaligned_block, KGET_VMSTATE_ERROR_INVALID,
     "RAM block 'pc.ram' of 15872 bytes"},
    {"duplicate-block", duplicate_block, KGET_VMSTATE_ERROR_INVALID,
     "listed twice"},
    {"other-iterable", other_iterable, KGET_VMSTATE_ERROR_UNSUPPORTED,
     "iterable section 'rum'"},
    {"command", command, KGET_VMSTATE_ERROR_UNSUPPORTED, "QEMU_VM_COMMAND"},
    {"wrong-section", wrong_section, KGET_VMSTATE_ERROR_UNSUPPORTED,
     "is not the RAM section"},
    {"bad-footer", bad_footer, KGET_VMSTATE_ERROR_INVALID, "footer"},
    {"unknown-tail", unknown_tail, KGET_VMSTATE_ERROR_UNSUPPORTED,
     "section type 0x05"},
    {"ignore-shared", ignore_shared, KGET_VMSTATE_ERROR_UNSUPPORTED,
     "capability 'x-ignore-shared'"},
    {"page-in-setup", page_in_setup, KGET_VMSTATE_ERROR_UNSUPPORTED,
     "setup section"},
};

static void
test_malformed(gconstpointer data)
{
    const Malformed *m = data;
    g_auto(Stream) s = build(&precopy);
    g_autoptr(GByteArray) b = g_byte_array_new();

    g_byte_array_append(b, s.bytes->data, s.bytes->len);
    m->mutate(b, &s);
    /* Whole, then byte by byte: the same refusal. */
    for (gsize step = b->len; step > 0; step = step > 1 ? 1 : 0) {
        g_autoptr(GError) error = NULL;
        g_auto(Sink) sink = {0};
        g_autoptr(GBytes) item =
            parse_split(b->data, b->len, 0, step, &sink, &error);

        g_assert_null(item);
        g_assert_error(error, KGET_VMSTATE_ERROR, m->code);
        if (!strstr(error->message, m->message)) {
            g_error("'%s' lacks '%s'", error->message, m->message);
        }
    }
}

static void
test_callback_error(void)
{
    g_auto(Stream) s = build(&precopy);
    g_autoptr(GError) error = NULL;
    g_auto(Sink) sink = {.fail_page = TRUE};
    g_autoptr(KgetVmstateParser) p =
        kget_vmstate_parser_new(&sink_funcs, &sink);

    g_assert_false(
        kget_vmstate_parser_feed(p, s.bytes->data, s.bytes->len, &error));
    g_assert_error(error, G_FILE_ERROR, G_FILE_ERROR_NOSPC);
    g_clear_error(&error);
    /* A failed parser stays failed. */
    g_assert_false(kget_vmstate_parser_feed(p, s.bytes->data, 1, &error));
    g_assert_error(error, KGET_VMSTATE_ERROR, KGET_VMSTATE_ERROR_INVALID);
    g_clear_error(&error);
    g_assert_null(kget_vmstate_parser_finish(p, &error));
    g_assert_error(error, KGET_VMSTATE_ERROR, KGET_VMSTATE_ERROR_INVALID);
}

static void
test_too_large(void)
{
    g_auto(Stream) s = build(&precopy);
    g_autoptr(GError) error = NULL;
    g_autoptr(KgetVmstateParser) p = kget_vmstate_parser_new(NULL, NULL);
    g_autofree guint8 *junk = g_malloc0(1024 * 1024);
    gboolean ok = TRUE;

    ok = kget_vmstate_parser_feed(p, s.bytes->data, s.bytes->len, &error);
    for (int i = 0; ok && i <= 64; i++) {
        ok = kget_vmstate_parser_feed(p, junk, 1024 * 1024, &error);
    }
    g_assert_false(ok);
    g_assert_error(error, KGET_VMSTATE_ERROR, KGET_VMSTATE_ERROR_TOO_LARGE);
}

/* Device-state items: the item of the precopy stream, altered. */
static void
check_bad_item(GByteArray *b, int code, const char *message)
{
    g_autoptr(GBytes) bytes = g_bytes_new(b->data, b->len);
    g_autoptr(GError) error = NULL;
    g_autoptr(KgetVmstateDeviceState) ds =
        kget_vmstate_device_state_new(bytes, &error);

    g_assert_null(ds);
    g_assert_error(error, KGET_VMSTATE_ERROR, code);
    if (!strstr(error->message, message)) {
        g_error("'%s' lacks '%s'", error->message, message);
    }
}

static void
test_bad_item(void)
{
    g_auto(Stream) s = build(&precopy);
    g_autoptr(GBytes) item = expected_item(&s, &precopy);
    gsize len;
    const guint8 *data = g_bytes_get_data(item, &len);
    g_autoptr(GByteArray) b = g_byte_array_new();

    for (gsize cut = 0; cut < len; cut++) {
        g_byte_array_set_size(b, 0);
        g_byte_array_append(b, data, cut);
        check_bad_item(b, KGET_VMSTATE_ERROR_INVALID, "truncated");
    }
    g_byte_array_set_size(b, 0);
    g_byte_array_append(b, data, len);
    vc_put_u8(b, 0);
    check_bad_item(b, KGET_VMSTATE_ERROR_INVALID, "trailing");

    b->len = len;
    b->data[0] = 'X';
    check_bad_item(b, KGET_VMSTATE_ERROR_INVALID, "magic");
    b->data[0] = 'K';
    b->data[7] = 2;
    check_bad_item(b, KGET_VMSTATE_ERROR_INVALID, "version");
    b->data[7] = 1;
    b->data[11] = RAM_ID + 1;
    check_bad_item(b, KGET_VMSTATE_ERROR_INVALID, "RAM section id");
    b->data[11] = RAM_ID;
    b->data[12] = 0; /* the head has footers */
    check_bad_item(b, KGET_VMSTATE_ERROR_INVALID, "RAM setup section");
    b->data[12] = 1;
    b->data[17 + s.head_len + 4] = 0x02;
    check_bad_item(b, KGET_VMSTATE_ERROR_INVALID, "tail");
}

static void
test_bad_item_head(void)
{
    g_auto(Stream) s = build(&precopy);
    g_autoptr(GByteArray) b = g_byte_array_new();
    gsize head_len = s.head_len - 5 + 1; /* stops inside the footer */

    g_byte_array_append(b, (const guint8 *)"KGVS", 4);
    vc_put_u32(b, 1);
    vc_put_u32(b, RAM_ID);
    vc_put_u8(b, 1);
    vc_put_u32(b, (guint32)head_len);
    g_byte_array_append(b, s.bytes->data, head_len);
    vc_put_u32(b, 1);
    vc_put_u8(b, 0x00);
    check_bad_item(b, KGET_VMSTATE_ERROR_INVALID, "RAM setup section");
}

int
main(int argc, char **argv)
{
    const char *seeds = g_getenv("KGET_VMSTATE_SEEDS");

    /* The fuzzer's seeds (saline/kget/fuzz/corpus-vmstate): these
     * streams, each after the byte the harness reads as its cut. */
    if (seeds) {
        static const struct {
            const char *name;
            const Layout *layout;
        } all[] = {{"precopy", &precopy},
                   {"background-snapshot", &background},
                   {"bare", &bare}};

        for (guint i = 0; i < G_N_ELEMENTS(all); i++) {
            g_auto(Stream) st = build(all[i].layout);
            g_autofree char *path =
                g_strdup_printf("%s/synthetic-%s", seeds, all[i].name);
            g_autoptr(GByteArray) seed = g_byte_array_new();

            g_byte_array_append(seed, (const guint8 *)"\x05", 1);
            g_byte_array_append(seed, st.bytes->data, st.bytes->len);
            g_assert_true(g_file_set_contents(path, (const char *)seed->data,
                                              seed->len, NULL));
        }
        return 0;
    }
    g_test_init(&argc, &argv, NULL);
    g_test_add_data_func("/vmstate/parse/precopy", &precopy, test_layout);
    g_test_add_data_func("/vmstate/parse/background-snapshot", &background,
                         test_layout);
    g_test_add_data_func("/vmstate/parse/bare", &bare, test_layout);
    g_test_add_func("/vmstate/parse/splits", test_splits);
    g_test_add_func("/vmstate/parse/truncated", test_truncated);
    g_test_add_func("/vmstate/parse/callback-error", test_callback_error);
    g_test_add_func("/vmstate/parse/too-large", test_too_large);
    for (gsize i = 0; i < G_N_ELEMENTS(malformed); i++) {
        g_autofree char *path =
            g_strdup_printf("/vmstate/malformed/%s", malformed[i].name);

        g_test_add_data_func(path, &malformed[i], test_malformed);
    }
    g_test_add_data_func("/vmstate/rebuild/precopy", &precopy, test_rebuild);
    g_test_add_data_func("/vmstate/rebuild/background-snapshot", &background,
                         test_rebuild);
    g_test_add_data_func("/vmstate/rebuild/bare", &bare, test_rebuild);
    g_test_add_func("/vmstate/item/bad", test_bad_item);
    g_test_add_func("/vmstate/item/bad-head", test_bad_item_head);
    return g_test_run();
}
