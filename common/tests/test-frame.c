#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vc-error.h"
#include "vc-frame.h"

static GByteArray *
make_stream(void)
{
    GByteArray *s = g_byte_array_new();

    vc_frame_append(s, (const guint8 *)"hello", 5);
    vc_frame_append(s, (const guint8 *)"", 0);
    vc_frame_append(s, (const guint8 *)"world!", 6);
    return s;
}

static void
expect_frame(VcFrameReader *r, const char *text)
{
    g_autoptr(GBytes) p = NULL;
    g_autoptr(GError) error = NULL;
    gsize len;
    const char *data;

    g_assert_true(vc_frame_reader_next(r, &p, &error));
    g_assert_no_error(error);
    g_assert_nonnull(p);
    data = g_bytes_get_data(p, &len);
    g_assert_cmpmem(data, len, text, strlen(text));
}

static void
test_whole(void)
{
    g_autoptr(GByteArray) s = make_stream();
    g_autoptr(VcFrameReader) r = vc_frame_reader_new(64);
    g_autoptr(GBytes) p = NULL;

    g_assert_cmpuint(s->len, ==, 4 + 5 + 4 + 0 + 4 + 6);
    g_assert_cmpmem(s->data, 4, "\0\0\0\5", 4);
    vc_frame_reader_feed(r, s->data, s->len);
    expect_frame(r, "hello");
    expect_frame(r, "");
    expect_frame(r, "world!");
    g_assert_true(vc_frame_reader_next(r, &p, NULL));
    g_assert_null(p);
    g_assert_cmpuint(vc_frame_reader_pending(r), ==, 0);
}

static void
test_byte_by_byte(void)
{
    g_autoptr(GByteArray) s = make_stream();
    g_autoptr(VcFrameReader) r = vc_frame_reader_new(64);
    guint frames = 0;

    for (guint i = 0; i < s->len; i++) {
        g_autoptr(GBytes) p = NULL;

        vc_frame_reader_feed(r, &s->data[i], 1);
        g_assert_true(vc_frame_reader_next(r, &p, NULL));
        if (p) {
            frames++;
        }
    }
    g_assert_cmpuint(frames, ==, 3);
    g_assert_cmpuint(vc_frame_reader_pending(r), ==, 0);
}

static void
test_truncated(void)
{
    g_autoptr(GByteArray) s = make_stream();
    g_autoptr(VcFrameReader) r = vc_frame_reader_new(64);
    g_autoptr(GBytes) p = NULL;

    /* Header plus part of the payload: nothing yet, bytes kept. */
    vc_frame_reader_feed(r, s->data, 7);
    g_assert_true(vc_frame_reader_next(r, &p, NULL));
    g_assert_null(p);
    g_assert_cmpuint(vc_frame_reader_pending(r), ==, 7);
}

static void
test_oversized(void)
{
    g_autoptr(VcFrameReader) r = vc_frame_reader_new(16);
    g_autoptr(GBytes) p = NULL;
    g_autoptr(GError) error = NULL;
    const guint8 hdr[] = {0x00, 0x00, 0x00, 0x11};
    const guint8 huge[] = {0xff, 0xff, 0xff, 0xff};

    /* Rejected on the header alone, before any payload is buffered. */
    vc_frame_reader_feed(r, hdr, sizeof(hdr));
    g_assert_false(vc_frame_reader_next(r, &p, &error));
    g_assert_error(error, VC_ERROR, VC_ERROR_TOO_LARGE);
    g_assert_null(p);
    g_clear_error(&error);

    g_autoptr(VcFrameReader) r2 = vc_frame_reader_new(16);
    vc_frame_reader_feed(r2, huge, sizeof(huge));
    g_assert_false(vc_frame_reader_next(r2, &p, &error));
    g_assert_error(error, VC_ERROR, VC_ERROR_TOO_LARGE);
}

static void
test_fd(void)
{
    int sv[2];
    g_autoptr(GBytes) p = NULL;
    g_autoptr(GError) error = NULL;
    const guint8 partial[] = {0, 0, 0, 9, 'a', 'b'};

    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
                    ==, 0);
    g_assert_true(vc_frame_write_fd(sv[0], (const guint8 *)"ping", 4, NULL));
    g_assert_true(vc_frame_read_fd(sv[1], 64, &p, &error));
    g_assert_no_error(error);
    g_assert_cmpmem(g_bytes_get_data(p, NULL), g_bytes_get_size(p), "ping",
                    4);
    g_clear_pointer(&p, g_bytes_unref);

    /* A frame cut short by the peer is an error, not a frame. */
    g_assert_cmpint(write(sv[0], partial, sizeof(partial)), ==,
                    sizeof(partial));
    close(sv[0]);
    g_assert_false(vc_frame_read_fd(sv[1], 64, &p, &error));
    g_assert_error(error, VC_ERROR, VC_ERROR_INVALID);
    g_assert_null(p);
    g_clear_error(&error);

    /* Then a clean EOF: FALSE without an error. */
    g_assert_false(vc_frame_read_fd(sv[1], 64, &p, &error));
    g_assert_no_error(error);
    close(sv[1]);
}

static void
test_cursor(void)
{
    g_autoptr(GByteArray) out = g_byte_array_new();
    VcCursor c;
    guint8 a;
    guint16 b;
    guint32 d;
    guint64 e;
    const guint8 *bytes;

    vc_put_u8(out, 0xab);
    vc_put_u16(out, 0x1234);
    vc_put_u32(out, 0xdeadbeef);
    vc_put_u64(out, G_GUINT64_CONSTANT(0x0102030405060708));
    g_byte_array_append(out, (const guint8 *)"xy", 2);

    vc_cursor_init(&c, out->data, out->len);
    g_assert_true(vc_cursor_u8(&c, &a));
    g_assert_cmphex(a, ==, 0xab);
    g_assert_true(vc_cursor_u16(&c, &b));
    g_assert_cmphex(b, ==, 0x1234);
    g_assert_true(vc_cursor_u32(&c, &d));
    g_assert_cmphex(d, ==, 0xdeadbeef);
    g_assert_true(vc_cursor_u64(&c, &e));
    g_assert_cmphex(e, ==, G_GUINT64_CONSTANT(0x0102030405060708));
    /* Never past the end. */
    g_assert_false(vc_cursor_bytes(&c, 3, &bytes));
    g_assert_false(vc_cursor_u32(&c, &d));
    g_assert_true(vc_cursor_bytes(&c, 2, &bytes));
    g_assert_cmpmem(bytes, 2, "xy", 2);
    g_assert_false(vc_cursor_u8(&c, &a));
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/frame/whole", test_whole);
    g_test_add_func("/frame/byte-by-byte", test_byte_by_byte);
    g_test_add_func("/frame/truncated", test_truncated);
    g_test_add_func("/frame/oversized", test_oversized);
    g_test_add_func("/frame/fd", test_fd);
    g_test_add_func("/frame/cursor", test_cursor);
    return g_test_run();
}
