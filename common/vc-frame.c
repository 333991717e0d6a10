#include "vc-frame.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vc-error.h"

struct VcFrameReader {
    GByteArray *buf;
    gsize start; /* first unconsumed byte of buf */
    gsize max_payload;
};

VcFrameReader *
vc_frame_reader_new(gsize max_payload)
{
    VcFrameReader *reader = g_new0(VcFrameReader, 1);

    reader->buf = g_byte_array_new();
    reader->max_payload = max_payload;
    return reader;
}

void
vc_frame_reader_free(VcFrameReader *reader)
{
    if (!reader) {
        return;
    }
    g_byte_array_unref(reader->buf);
    g_free(reader);
}

void
vc_frame_reader_feed(VcFrameReader *reader, const guint8 *data, gsize len)
{
    /* Drop consumed bytes before growing, so the buffer stays bounded by
     * one frame plus one read. */
    if (reader->start > 0) {
        g_byte_array_remove_range(reader->buf, 0, reader->start);
        reader->start = 0;
    }
    g_byte_array_append(reader->buf, data, len);
}

static guint32
read_be32(const guint8 *p)
{
    return (guint32)p[0] << 24 | (guint32)p[1] << 16 | (guint32)p[2] << 8 |
           p[3];
}

gboolean
vc_frame_reader_next(VcFrameReader *reader, GBytes **payload, GError **error)
{
    gsize avail = reader->buf->len - reader->start;
    const guint8 *p;
    guint32 len;

    *payload = NULL;
    if (avail < VC_FRAME_HEADER_LEN) {
        return TRUE;
    }
    p = reader->buf->data + reader->start;
    len = read_be32(p);
    if (len > reader->max_payload) {
        g_set_error(error, VC_ERROR, VC_ERROR_TOO_LARGE,
                    "frame of %u bytes exceeds the limit of %zu", len,
                    reader->max_payload);
        return FALSE;
    }
    if (avail - VC_FRAME_HEADER_LEN < len) {
        return TRUE;
    }
    *payload = g_bytes_new(p + VC_FRAME_HEADER_LEN, len);
    reader->start += VC_FRAME_HEADER_LEN + len;
    return TRUE;
}

gsize
vc_frame_reader_pending(VcFrameReader *reader)
{
    return reader->buf->len - reader->start;
}

void
vc_frame_append(GByteArray *out, const guint8 *payload, gsize len)
{
    g_return_if_fail(len <= G_MAXUINT32);
    vc_put_u32(out, (guint32)len);
    g_byte_array_append(out, payload, len);
}

gboolean
vc_write_all(int fd, const guint8 *data, gsize len, GError **error)
{
    while (len > 0) {
        /* send() where it can: a closed peer is an error, not SIGPIPE. */
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);

        if (n < 0 && errno == ENOTSOCK) {
            n = write(fd, data, len);
        }

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            g_set_error(error, VC_ERROR, VC_ERROR_IO, "cannot write frame: %s",
                        g_strerror(errno));
            return FALSE;
        }
        data += n;
        len -= (gsize)n;
    }
    return TRUE;
}

gboolean
vc_frame_write_fd(int fd, const guint8 *payload, gsize len, GError **error)
{
    g_autoptr(GByteArray) out = g_byte_array_sized_new(len + 4);

    vc_frame_append(out, payload, len);
    return vc_write_all(fd, out->data, out->len, error);
}

/* Returns the number of bytes read (< len only at EOF), or -1. */
static gssize
read_full(int fd, guint8 *data, gsize len, GError **error)
{
    gsize got = 0;

    while (got < len) {
        ssize_t n = read(fd, data + got, len - got);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            g_set_error(error, VC_ERROR, VC_ERROR_IO, "cannot read frame: %s",
                        g_strerror(errno));
            return -1;
        }
        if (n == 0) {
            break;
        }
        got += (gsize)n;
    }
    return (gssize)got;
}

gboolean
vc_frame_read_fd(int fd, gsize max_payload, GBytes **payload, GError **error)
{
    guint8 hdr[VC_FRAME_HEADER_LEN];
    g_autofree guint8 *data = NULL;
    gssize n;
    guint32 len;

    *payload = NULL;
    n = read_full(fd, hdr, sizeof(hdr), error);
    if (n < 0) {
        return FALSE;
    }
    if (n == 0) {
        return FALSE; /* clean EOF */
    }
    if (n < (gssize)sizeof(hdr)) {
        g_set_error(error, VC_ERROR, VC_ERROR_INVALID,
                    "connection closed inside a frame header");
        return FALSE;
    }
    len = read_be32(hdr);
    if (len > max_payload) {
        g_set_error(error, VC_ERROR, VC_ERROR_TOO_LARGE,
                    "frame of %u bytes exceeds the limit of %zu", len,
                    max_payload);
        return FALSE;
    }
    data = g_malloc(len ? len : 1);
    n = read_full(fd, data, len, error);
    if (n < 0) {
        return FALSE;
    }
    if ((gsize)n < len) {
        g_set_error(error, VC_ERROR, VC_ERROR_INVALID,
                    "connection closed after %zd of %u frame bytes", n, len);
        return FALSE;
    }
    *payload = g_bytes_new_take(g_steal_pointer(&data), len);
    return TRUE;
}

void
vc_cursor_init(VcCursor *c, const guint8 *data, gsize len)
{
    c->data = data;
    c->left = len;
}

gboolean
vc_cursor_bytes(VcCursor *c, gsize len, const guint8 **v)
{
    if (c->left < len) {
        return FALSE;
    }
    *v = c->data;
    c->data += len;
    c->left -= len;
    return TRUE;
}

static gboolean
cursor_be(VcCursor *c, gsize len, guint64 *v)
{
    const guint8 *p;

    if (!vc_cursor_bytes(c, len, &p)) {
        return FALSE;
    }
    *v = 0;
    for (gsize i = 0; i < len; i++) {
        *v = *v << 8 | p[i];
    }
    return TRUE;
}

gboolean
vc_cursor_u8(VcCursor *c, guint8 *v)
{
    guint64 x;

    if (!cursor_be(c, 1, &x)) {
        return FALSE;
    }
    *v = (guint8)x;
    return TRUE;
}

gboolean
vc_cursor_u16(VcCursor *c, guint16 *v)
{
    guint64 x;

    if (!cursor_be(c, 2, &x)) {
        return FALSE;
    }
    *v = (guint16)x;
    return TRUE;
}

gboolean
vc_cursor_u32(VcCursor *c, guint32 *v)
{
    guint64 x;

    if (!cursor_be(c, 4, &x)) {
        return FALSE;
    }
    *v = (guint32)x;
    return TRUE;
}

gboolean
vc_cursor_u64(VcCursor *c, guint64 *v)
{
    return cursor_be(c, 8, v);
}

static void
put_be(GByteArray *out, guint64 v, gsize len)
{
    guint8 b[8];

    for (gsize i = 0; i < len; i++) {
        b[i] = (guint8)(v >> (8 * (len - 1 - i)));
    }
    g_byte_array_append(out, b, (guint)len);
}

void
vc_put_u8(GByteArray *out, guint8 v)
{
    put_be(out, v, 1);
}

void
vc_put_u16(GByteArray *out, guint16 v)
{
    put_be(out, v, 2);
}

void
vc_put_u32(GByteArray *out, guint32 v)
{
    put_be(out, v, 4);
}

void
vc_put_u64(GByteArray *out, guint64 v)
{
    put_be(out, v, 8);
}
