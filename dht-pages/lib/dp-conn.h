/*
 * Blocking connection helpers shared by dht-pagesd and its clients:
 * whole-frame reads and writes, and the two sides of the peer handshake
 * (docs/protocols.md, "Handshake").
 */
#pragma once

#include <sys/uio.h>

#include "dp-proto.h"

gboolean dp_write_all(int fd, const guint8 *data, gsize len, GError **error);
/* Write a frame whose parts are in several buffers, without assembling
 * it. @iov is consumed (entries advanced past what was written). */
gboolean dp_writev_all(int fd, struct iovec *iov, gsize n_iov, GError **error);
/* The same without copying the bytes: they are moved by reference into a
 * pipe (@pipe_fds, blocking, empty) and from there into the socket @fd,
 * so the caller must not change them until the peer has read them all
 * (dp_unread_bytes() is 0). Where @fd cannot take spliced pages, fails
 * with DP_ERROR_UNAVAILABLE having sent nothing: the caller then writes
 * the frame from its own iovecs (these were consumed) and drops the
 * pipe, which may hold some of it. */
gboolean dp_splicev_all(int fd, const int *pipe_fds, struct iovec *iov,
                        gsize n_iov, GError **error);
/* Bytes written to socket @fd that its peer has not read yet. */
gboolean dp_unread_bytes(int fd, gsize *len, GError **error);
/* Read one frame and decode it; *payload keeps the bytes @msg points
 * into. A clean close is a DP_ERROR_IO error "connection closed", a
 * close inside a frame a DP_ERROR_PROTOCOL one, a frame over the limit
 * a DP_ERROR_LIMIT one. */
gboolean dp_msg_read(int fd, DpMsg *msg, GBytes **payload, GError **error);
/* The payload length a frame header announces. */
guint32 dp_frame_len(const guint8 *hdr);
/* Best effort: tell the other side why we give up. */
void dp_send_error(int fd, guint32 id, guint32 code, const char *message);

/* Client side: on success *server is the authenticated server's id.
 * @verify_server is TRUE except in tests that probe how a server treats a
 * client with the wrong key (the client then sends its proof anyway). */
gboolean dp_handshake_client(int fd, const guint8 *key, gsize key_len,
                             const char *site, const DpNodeId *self,
                             guint16 self_port, gboolean verify_server,
                             DpNodeId *server, GError **error);
/* Server side: on success *client is the authenticated client's id.
 * Errors of code DP_ERROR_AUTH are failed authentications. */
gboolean dp_handshake_server(int fd, const guint8 *key, gsize key_len,
                             const char *site, const DpNodeId *self,
                             DpNodeId *client, GError **error);
