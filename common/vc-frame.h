/*
 * Bounded length-prefixed framing for wire protocols.
 *
 * A frame is a big-endian 32-bit payload length followed by the payload.
 * Every reader has a maximum frame size: a header announcing more is a
 * protocol error, detected before any payload is buffered.
 *
 * VcCursor reads fixed-size big-endian fields out of a payload without
 * ever reading past its end.
 */
#pragma once

#include <glib.h>

#define VC_FRAME_HEADER_LEN 4

typedef struct VcFrameReader VcFrameReader;

VcFrameReader *vc_frame_reader_new(gsize max_payload);
void vc_frame_reader_free(VcFrameReader *reader);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VcFrameReader, vc_frame_reader_free)

void vc_frame_reader_feed(VcFrameReader *reader, const guint8 *data,
                          gsize len);
/*
 * Take the next complete frame's payload. Returns TRUE and sets *payload
 * to NULL when no complete frame is buffered yet; returns FALSE when the
 * next frame is larger than the maximum (the stream cannot be resynced).
 */
gboolean vc_frame_reader_next(VcFrameReader *reader, GBytes **payload,
                              GError **error);
/* Bytes buffered that do not form a complete frame yet. */
gsize vc_frame_reader_pending(VcFrameReader *reader);

void vc_frame_append(GByteArray *out, const guint8 *payload, gsize len);

/* Blocking helpers for simple clients; they retry on EINTR. */
gboolean vc_write_all(int fd, const guint8 *data, gsize len, GError **error);
gboolean vc_frame_write_fd(int fd, const guint8 *payload, gsize len,
                           GError **error);
/* Returns FALSE with *payload NULL and no error on a clean EOF before a
 * header. A short read inside a frame is an error. */
gboolean vc_frame_read_fd(int fd, gsize max_payload, GBytes **payload,
                          GError **error);

typedef struct {
    const guint8 *data;
    gsize left;
} VcCursor;

void vc_cursor_init(VcCursor *c, const guint8 *data, gsize len);
gboolean vc_cursor_u8(VcCursor *c, guint8 *v);
gboolean vc_cursor_u16(VcCursor *c, guint16 *v);
gboolean vc_cursor_u32(VcCursor *c, guint32 *v);
gboolean vc_cursor_u64(VcCursor *c, guint64 *v);
/* Points *v into the payload; no copy. */
gboolean vc_cursor_bytes(VcCursor *c, gsize len, const guint8 **v);

void vc_put_u8(GByteArray *out, guint8 v);
void vc_put_u16(GByteArray *out, guint16 v);
void vc_put_u32(GByteArray *out, guint32 v);
void vc_put_u64(GByteArray *out, guint64 v);
