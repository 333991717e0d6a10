/*
 * A connection carrying SSI messages (ssi-proto.h) in vc-frame frames:
 * TCP between members (authenticated, HELLO nonces, seq counted per
 * direction) or the local control socket (no MAC). Blocking, with
 * timeouts; one sender at a time (a lock serialises senders) and one
 * receiver.
 */
#pragma once

#include "ssi-proto.h"

typedef struct {
    const guint8 *key; /* NULL: control socket */
    guint64 cluster;
    guint16 node;
    guint64 incarnation;
} SsiIdentity;

typedef struct SsiConn SsiConn;

/* Connect to a member's TCP port and exchange HELLO. */
SsiConn *ssi_conn_connect(const SsiIdentity *id, const char *address,
                          int timeout_ms, GError **error);
/* Take an accepted socket and exchange HELLO (@id->key NULL: control
 * connection, no HELLO). Takes @fd. */
SsiConn *ssi_conn_accept(const SsiIdentity *id, int fd, int timeout_ms,
                         GError **error);
/* Connect to a unix socket (control). */
SsiConn *ssi_conn_unix(const char *path, GError **error);
/* Connections are shared between threads by reference: ssi_conn_free()
 * drops one, and the socket closes with the last. */
SsiConn *ssi_conn_ref(SsiConn *c);
void ssi_conn_free(SsiConn *c);
/* Wake whoever waits on it: reads end, sends fail. */
void ssi_conn_shutdown(SsiConn *c);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SsiConn, ssi_conn_free)

int ssi_conn_fd(SsiConn *c);
/* The peer's node id from its HELLO (0 for the control socket). */
guint16 ssi_conn_peer_node(SsiConn *c);

gboolean ssi_conn_send(SsiConn *c, SsiMsgOut *m, GError **error);
/* Wait up to @timeout_ms (-1: forever) for a message. NULL with no error
 * on a clean end of stream. */
SsiMsg *ssi_conn_recv(SsiConn *c, int timeout_ms, GError **error);
/* Send, then receive one reply: OK comes back, FAIL becomes an error
 * carrying its text. */
SsiMsg *ssi_conn_call(SsiConn *c, SsiMsgOut *m, int timeout_ms, GError **error);
/* Reply helpers. */
gboolean ssi_conn_fail(SsiConn *c, const char *text, GError **error);
