/* Connections to site peers: authenticated, pooled per member. */
#include "pagesd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dp-conn.h"
#include "vc-frame.h"

#define CONNECT_TIMEOUT_MS 2000
#define IO_TIMEOUT_S 10

struct DpPeerConn {
    int fd;
    char *name; /* address:port, for messages */
};

static guint32 next_request_id = 1;

void
dp_peer_conn_free(DpPeerConn *conn)
{
    if (!conn) {
        return;
    }
    close(conn->fd);
    g_free(conn->name);
    g_free(conn);
}

int
dp_peer_conn_fd(DpPeerConn *conn)
{
    return conn->fd;
}

const char *
dp_peer_conn_name(DpPeerConn *conn)
{
    return conn->name;
}

guint32
dp_peer_request_id(void)
{
    return (guint32)g_atomic_int_add(&next_request_id, 1);
}

void
dp_peer_set_timeouts(int fd, int seconds)
{
    struct timeval tv = {.tv_sec = seconds};
    int one = 1;

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}
static DpPeerConn *
peer_connect(DpDaemon *d, const DpNodeId *member, const char *address,
             guint16 port, GError **error)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    struct pollfd pfd;
    int fd, err = 0;
    socklen_t el = sizeof(err);
    DpNodeId server;
    DpPeerConn *conn;

    if (inet_pton(AF_INET, address, &sa.sin_addr) != 1) {
        g_set_error(error, DP_ERROR, DP_ERROR_IO, "bad peer address '%s'",
                    address);
        return NULL;
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 &&
        errno != EINPROGRESS) {
        err = errno;
    } else {
        pfd = (struct pollfd){.fd = fd, .events = POLLOUT};
        if (poll(&pfd, 1, CONNECT_TIMEOUT_MS) != 1) {
            err = ETIMEDOUT;
        } else {
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
        }
    }
    if (err) {
        g_set_error(error, DP_ERROR, DP_ERROR_IO,
                    "cannot connect to peer %s:%u: %s", address, port,
                    g_strerror(err));
        close(fd);
        return NULL;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    dp_peer_set_timeouts(fd, IO_TIMEOUT_S);

    if (!dp_handshake_client(fd, d->key, d->key_len, d->site, &d->self,
                             d->peer_port, TRUE, &server, error)) {
        g_prefix_error(error, "peer %s:%u: ", address, port);
        if (g_error_matches(*error, DP_ERROR, DP_ERROR_AUTH)) {
            dp_stat_add(d, auth_failures, 1);
        }
        close(fd);
        return NULL;
    }
    if (!dp_node_id_equal(&server, member)) {
        g_set_error(error, DP_ERROR, DP_ERROR_AUTH,
                    "peer %s:%u is not the member expected there", address,
                    port);
        close(fd);
        return NULL;
    }
    conn = g_new0(DpPeerConn, 1);
    conn->fd = fd;
    conn->name = g_strdup_printf("%s:%u", address, port);
    return conn;
}

DpPeerConn *
dp_peer_take(DpDaemon *d, const DpNodeId *member, GError **error)
{
    DpPeerConn *conn = NULL;
    DpMember *m;
    g_autofree char *address = NULL;
    guint16 port = 0;

    g_mutex_lock(&d->lock);
    m = g_hash_table_lookup(d->members, member);
    if (m) {
        conn = g_queue_pop_head(&m->idle);
        address = g_strdup(m->address);
        port = m->port;
    }
    g_mutex_unlock(&d->lock);
    if (!address) {
        g_set_error(error, DP_ERROR, DP_ERROR_UNAVAILABLE,
                    "not a member any more");
        return NULL;
    }
    if (!conn) {
        conn = peer_connect(d, member, address, port, error);
        if (!conn) {
            dp_stat_add(d, peer_errors, 1);
        }
    }
    return conn;
}

void
dp_peer_give(DpDaemon *d, const DpNodeId *member, DpPeerConn *conn)
{
    DpMember *m;

    g_mutex_lock(&d->lock);
    m = g_hash_table_lookup(d->members, member);
    if (m && g_queue_get_length(&m->idle) < 8) {
        g_queue_push_head(&m->idle, g_steal_pointer(&conn));
    }
    g_mutex_unlock(&d->lock);
    dp_peer_conn_free(conn);
}

gboolean
dp_peer_call_timeout(DpDaemon *d, const DpNodeId *member, GByteArray *req,
                     int timeout_s, DpMsg *reply, GBytes **payload,
                     GError **error)
{
    DpPeerConn *conn;
    guint32 id = dp_peer_request_id();
    guint8 type = req->data[VC_FRAME_HEADER_LEN + 1];

    /* Stamp our request id into the header (offset 4 of the payload). */
    req->data[VC_FRAME_HEADER_LEN + 4] = (guint8)(id >> 24);
    req->data[VC_FRAME_HEADER_LEN + 5] = (guint8)(id >> 16);
    req->data[VC_FRAME_HEADER_LEN + 6] = (guint8)(id >> 8);
    req->data[VC_FRAME_HEADER_LEN + 7] = (guint8)id;

    conn = dp_peer_take(d, member, error);
    if (!conn) {
        return FALSE;
    }
    if (timeout_s != IO_TIMEOUT_S) {
        dp_peer_set_timeouts(conn->fd, timeout_s);
    }
    if (!dp_write_all(conn->fd, req->data, req->len, error) ||
        !dp_msg_read(conn->fd, reply, payload, error)) {
        g_prefix_error(error, "peer %s: ", conn->name);
        dp_peer_conn_free(conn);
        dp_stat_add(d, peer_errors, 1);
        return FALSE;
    }
    if (reply->id != id || (reply->type != DP_REPLY(type))) {
        g_set_error(error, DP_ERROR, DP_ERROR_PROTOCOL,
                    "peer %s answered %s%s%s to %s", conn->name,
                    dp_msg_type_name(reply->type),
                    reply->type == DP_MSG_ERROR ? ": " : "",
                    reply->type == DP_MSG_ERROR ? reply->error_message : "",
                    dp_msg_type_name(type));
        dp_peer_conn_free(conn);
        dp_stat_add(d, peer_errors, 1);
        return FALSE;
    }
    if (timeout_s != IO_TIMEOUT_S) {
        dp_peer_set_timeouts(conn->fd, IO_TIMEOUT_S);
    }
    dp_peer_give(d, member, conn);
    return TRUE;
}

gboolean
dp_peer_call(DpDaemon *d, const DpNodeId *member, GByteArray *req,
             DpMsg *reply, GBytes **payload, GError **error)
{
    return dp_peer_call_timeout(d, member, req, IO_TIMEOUT_S, reply, payload,
                                error);
}
