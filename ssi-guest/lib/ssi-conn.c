/*
 * SSI connections (ssi-conn.h).
 */
#include "ssi-conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "vc-error.h"
#include "vc-frame.h"

struct SsiConn {
    SsiIdentity id;
    int fd;
    GMutex send_lock;
    guint8 my_nonce[SSI_NONCE_LEN];
    guint8 peer_nonce[SSI_NONCE_LEN];
    guint64 send_seq;
    guint64 recv_seq;
    guint16 peer_node;
    gint refs;
};

static SsiConn *
conn_new(const SsiIdentity *id, int fd)
{
    SsiConn *c = g_new0(SsiConn, 1);

    c->id = *id;
    c->fd = fd;
    c->refs = 1;
    g_mutex_init(&c->send_lock);
    for (int i = 0; i < SSI_NONCE_LEN; i += 4) {
        guint32 r = g_random_int();

        memcpy(c->my_nonce + i, &r, 4);
    }
    return c;
}

SsiConn *
ssi_conn_ref(SsiConn *c)
{
    g_atomic_int_inc(&c->refs);
    return c;
}

void
ssi_conn_shutdown(SsiConn *c)
{
    shutdown(c->fd, SHUT_RDWR);
}

void
ssi_conn_free(SsiConn *c)
{
    if (!c || !g_atomic_int_dec_and_test(&c->refs)) {
        return;
    }
    if (c->fd >= 0) {
        close(c->fd);
    }
    g_mutex_clear(&c->send_lock);
    g_free(c);
}

int
ssi_conn_fd(SsiConn *c)
{
    return c->fd;
}

guint16
ssi_conn_peer_node(SsiConn *c)
{
    return c->peer_node;
}

static gboolean
wait_readable(int fd, int timeout_ms, GError **error)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r;

    do {
        r = poll(&p, 1, timeout_ms);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        g_set_error(error, VC_ERROR, VC_ERROR_IO, "poll: %s",
                    g_strerror(errno));
        return FALSE;
    }
    if (r == 0) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                    "no answer within %d ms", timeout_ms);
        return FALSE;
    }
    return TRUE;
}

gboolean
ssi_conn_send(SsiConn *c, SsiMsgOut *m, GError **error)
{
    g_autoptr(GBytes) b = NULL;
    gsize len;
    const guint8 *data;
    gboolean ok;

    g_mutex_lock(&c->send_lock);
    m->hdr.cluster = c->id.cluster;
    m->hdr.node = c->id.node;
    m->hdr.incarnation = c->id.incarnation;
    m->hdr.seq = ++c->send_seq;
    m->hdr.time_ms = (guint64)(g_get_real_time() / 1000);
    b = ssi_out_encode(
        m, c->id.key,
        c->id.key && m->hdr.type != SSI_HELLO ? c->peer_nonce : NULL, error);
    if (!b) {
        g_mutex_unlock(&c->send_lock);
        return FALSE;
    }
    data = g_bytes_get_data(b, &len);
    ok = vc_frame_write_fd(c->fd, data, len, error);
    g_mutex_unlock(&c->send_lock);
    return ok;
}

SsiMsg *
ssi_conn_recv(SsiConn *c, int timeout_ms, GError **error)
{
    g_autoptr(GBytes) raw = NULL;
    g_autoptr(SsiMsg) m = NULL;
    gboolean hello = c->id.key && c->recv_seq == 0;

    if (timeout_ms >= 0 && !wait_readable(c->fd, timeout_ms, error)) {
        return NULL;
    }
    /* Before the peer has proved it holds the key, only a HELLO's worth
     * is read. */
    if (!vc_frame_read_fd(c->fd, hello ? SSI_HELLO_MAX : SSI_MSG_MAX, &raw,
                          error) ||
        !raw) {
        return NULL;
    }
    m = ssi_msg_decode(raw, c->id.key, c->id.cluster,
                       hello ? NULL : c->my_nonce, error);
    if (!m) {
        return NULL;
    }
    if (m->hdr.seq != c->recv_seq + 1) {
        g_set_error(error, VC_ERROR, VC_ERROR_INVALID,
                    "SSI message out of sequence (%" G_GUINT64_FORMAT
                    " after %" G_GUINT64_FORMAT ")",
                    m->hdr.seq, c->recv_seq);
        return NULL;
    }
    c->recv_seq = m->hdr.seq;
    if (hello) {
        gsize len = 0;
        const guint8 *n = ssi_msg_bytes(m, SSI_F_NONCE, &len);

        if (m->hdr.type != SSI_HELLO || !n || len != SSI_NONCE_LEN) {
            g_set_error(error, VC_ERROR, VC_ERROR_INVALID,
                        "SSI connection did not start with HELLO");
            return NULL;
        }
        memcpy(c->peer_nonce, n, SSI_NONCE_LEN);
        c->peer_node = m->hdr.node;
    }
    return g_steal_pointer(&m);
}

static gboolean
hello(SsiConn *c, int timeout_ms, GError **error)
{
    g_autoptr(SsiMsgOut) m = ssi_out_new(SSI_HELLO);
    g_autoptr(SsiMsg) r = NULL;

    ssi_out_bytes(m, SSI_F_NONCE, c->my_nonce, SSI_NONCE_LEN);
    if (!ssi_conn_send(c, m, error)) {
        return FALSE;
    }
    r = ssi_conn_recv(c, timeout_ms, error);
    if (!r) {
        if (error && !*error) {
            g_set_error(error, VC_ERROR, VC_ERROR_IO,
                        "connection closed before HELLO");
        }
        return FALSE;
    }
    return TRUE;
}

SsiConn *
ssi_conn_accept(const SsiIdentity *id, int fd, int timeout_ms, GError **error)
{
    g_autoptr(SsiConn) c = conn_new(id, fd);
    struct timeval tv = {.tv_sec = timeout_ms / 1000,
                         .tv_usec = (timeout_ms % 1000) * 1000};
    struct timeval none = {0};

    /* A peer that sends part of a frame and stops must not hold the
     * thread: reads time out until HELLO is done. */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (id->key && !hello(c, timeout_ms, error)) {
        return NULL;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof(none));
    return g_steal_pointer(&c);
}

SsiConn *
ssi_conn_connect(const SsiIdentity *id, const char *address, int timeout_ms,
                 GError **error)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(SSI_PORT)};
    struct pollfd p;
    int fd, r, one = 1, err = 0;
    socklen_t elen = sizeof(err);
    g_autoptr(SsiConn) c = NULL;

    if (inet_pton(AF_INET, address, &sa.sin_addr) != 1) {
        g_set_error(error, VC_ERROR, VC_ERROR_INVALID,
                    "'%s' is not an IPv4 address", address);
        return NULL;
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        g_set_error(error, VC_ERROR, VC_ERROR_IO, "socket: %s",
                    g_strerror(errno));
        return NULL;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    if (r < 0 && errno == EINPROGRESS) {
        p = (struct pollfd){.fd = fd, .events = POLLOUT};
        do {
            r = poll(&p, 1, timeout_ms);
        } while (r < 0 && errno == EINTR);
        if (r == 0) {
            errno = ETIMEDOUT;
            r = -1;
        } else if (r > 0) {
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
            errno = err;
            r = err ? -1 : 0;
        }
    }
    if (r < 0) {
        g_set_error(error, VC_ERROR, VC_ERROR_IO,
                    "cannot connect to ssid at %s: %s", address,
                    g_strerror(errno));
        close(fd);
        return NULL;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    c = conn_new(id, fd);
    if (!hello(c, timeout_ms, error)) {
        g_prefix_error(error, "ssid at %s: ", address);
        return NULL;
    }
    return g_steal_pointer(&c);
}

SsiConn *
ssi_conn_unix(const char *path, GError **error)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    SsiIdentity id = {0};
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        g_set_error(error, VC_ERROR, VC_ERROR_INVALID,
                    "socket path '%s' is too long", path);
        return NULL;
    }
    strncpy(sa.sun_path, path, sizeof(sa.sun_path) - 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        g_set_error(error, VC_ERROR, VC_ERROR_IO, "cannot connect to '%s': %s",
                    path, g_strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return NULL;
    }
    return conn_new(&id, fd);
}

SsiMsg *
ssi_conn_call(SsiConn *c, SsiMsgOut *m, int timeout_ms, GError **error)
{
    g_autoptr(SsiMsg) r = NULL;

    if (!ssi_conn_send(c, m, error)) {
        return NULL;
    }
    r = ssi_conn_recv(c, timeout_ms, error);
    if (!r) {
        if (error && !*error) {
            g_set_error(error, VC_ERROR, VC_ERROR_IO,
                        "connection closed before the answer");
        }
        return NULL;
    }
    if (r->hdr.type == SSI_FAIL) {
        g_autofree char *t = ssi_msg_str(r, SSI_F_TEXT, 4096);

        g_set_error(error, VC_ERROR, VC_ERROR_INVALID, "%s", t ? t : "failed");
        return NULL;
    }
    return g_steal_pointer(&r);
}

gboolean
ssi_conn_fail(SsiConn *c, const char *text, GError **error)
{
    g_autoptr(SsiMsgOut) m = ssi_out_new(SSI_FAIL);

    ssi_out_str(m, SSI_F_TEXT, text);
    return ssi_conn_send(c, m, error);
}
