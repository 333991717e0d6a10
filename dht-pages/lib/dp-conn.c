#include "dp-conn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "vc-error.h"
#include "vc-frame.h"

gboolean
dp_write_all(int fd, const guint8 *data, gsize len, GError **error)
{
    g_autoptr(GError) local = NULL;

    /* Callers tell I/O failures from protocol errors by DP_ERROR_IO. */
    if (!vc_write_all(fd, data, len, &local)) {
        g_set_error(error, DP_ERROR, DP_ERROR_IO, "%s", local->message);
        return FALSE;
    }
    return TRUE;
}

/* Past @n bytes written from *@iov. */
static void
iov_advance(struct iovec **iov, gsize *n_iov, gsize n)
{
    while (*n_iov > 0 && n >= (*iov)->iov_len) {
        n -= (*iov)->iov_len;
        (*iov)++;
        (*n_iov)--;
    }
    if (n > 0) {
        (*iov)->iov_base = (guint8 *)(*iov)->iov_base + n;
        (*iov)->iov_len -= n;
    }
}

gboolean
dp_writev_all(int fd, struct iovec *iov, gsize n_iov, GError **error)
{
    while (n_iov > 0) {
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = MIN(n_iov, IOV_MAX)};
        /* sendmsg() where it can: a closed peer is an error, not SIGPIPE. */
        ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);

        if (n < 0 && errno == ENOTSOCK) {
            n = writev(fd, iov, (int)mh.msg_iovlen);
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            g_set_error(error, DP_ERROR, DP_ERROR_IO,
                        "cannot write frame: %s", g_strerror(errno));
            return FALSE;
        }
        iov_advance(&iov, &n_iov, (gsize)n);
    }
    return TRUE;
}

gboolean
dp_splicev_all(int fd, const int *pipe_fds, struct iovec *iov, gsize n_iov,
               GError **error)
{
    gboolean sent = FALSE;

    while (n_iov > 0) {
        /* As much as the pipe holds; it is empty after each pass. */
        ssize_t n = vmsplice(pipe_fds[1], iov, MIN(n_iov, IOV_MAX), 0);
        gsize left;

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            g_set_error(error, DP_ERROR, sent ? DP_ERROR_IO : DP_ERROR_UNAVAILABLE,
                        "cannot splice frame: %s",
                        n < 0 ? g_strerror(errno) : "pipe full");
            return FALSE;
        }
        iov_advance(&iov, &n_iov, (gsize)n);
        for (left = (gsize)n; left > 0;) {
            ssize_t m = splice(pipe_fds[0], NULL, fd, NULL, left,
                               SPLICE_F_MOVE);

            if (m < 0 && errno == EINTR) {
                continue;
            }
            if (m <= 0) {
                /* Nothing reached the socket: the pipe is still full,
                 * but the caller drops it. */
                g_set_error(error, DP_ERROR,
                            !sent && m < 0 && (errno == EINVAL || errno == ENOSYS)
                                ? DP_ERROR_UNAVAILABLE
                                : DP_ERROR_IO,
                            "cannot write frame: %s",
                            m < 0 ? g_strerror(errno) : "nothing written");
                return FALSE;
            }
            sent = TRUE;
            left -= (gsize)m;
        }
    }
    return TRUE;
}

gboolean
dp_unread_bytes(int fd, gsize *len, GError **error)
{
    int n = 0;

    if (ioctl(fd, SIOCOUTQ, &n) < 0 || n < 0) {
        g_set_error(error, DP_ERROR, DP_ERROR_IO,
                    "cannot read the socket's queue length: %s",
                    g_strerror(errno));
        return FALSE;
    }
    *len = (gsize)n;
    return TRUE;
}

guint32
dp_frame_len(const guint8 *hdr)
{
    return (guint32)hdr[0] << 24 | (guint32)hdr[1] << 16 |
           (guint32)hdr[2] << 8 | hdr[3];
}

gboolean
dp_msg_read(int fd, DpMsg *msg, GBytes **payload, GError **error)
{
    g_autoptr(GError) local = NULL;

    if (!vc_frame_read_fd(fd, DP_MAX_PAYLOAD, payload, &local)) {
        if (!local) {
            g_set_error(error, DP_ERROR, DP_ERROR_IO, "connection closed");
        } else {
            g_set_error(error, DP_ERROR,
                        g_error_matches(local, VC_ERROR, VC_ERROR_IO) ? DP_ERROR_IO
                        : g_error_matches(local, VC_ERROR, VC_ERROR_TOO_LARGE)
                            ? DP_ERROR_LIMIT
                            : DP_ERROR_PROTOCOL,
                        "%s", local->message);
        }
        return FALSE;
    }
    return dp_msg_decode(g_bytes_get_data(*payload, NULL),
                         g_bytes_get_size(*payload), msg, error);
}

void
dp_send_error(int fd, guint32 id, guint32 code, const char *message)
{
    g_autoptr(GByteArray) out = g_byte_array_new();

    dp_encode_error(out, id, code, message);
    dp_write_all(fd, out->data, out->len, NULL);
}

static gboolean
random_bytes(guint8 *buf, gsize len, GError **error)
{
    while (len > 0) {
        ssize_t n = getrandom(buf, len, 0);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            g_set_error(error, DP_ERROR, DP_ERROR_IO,
                        "cannot get random bytes: %s", g_strerror(errno));
            return FALSE;
        }
        buf += n;
        len -= (gsize)n;
    }
    return TRUE;
}

static gboolean
refused(const DpMsg *m, guint8 want, GError **error)
{
    if (m->type == want) {
        return FALSE;
    }
    g_set_error(error, DP_ERROR, DP_ERROR_AUTH, "peer refused: %s%s%s",
                dp_msg_type_name(m->type),
                m->type == DP_MSG_ERROR ? ": " : "",
                m->type == DP_MSG_ERROR ? m->error_message : "");
    return TRUE;
}

gboolean
dp_handshake_client(int fd, const guint8 *key, gsize key_len,
                    const char *site, const DpNodeId *self, guint16 self_port,
                    gboolean verify_server, DpNodeId *server, GError **error)
{
    g_autoptr(GByteArray) out = g_byte_array_new();
    g_autoptr(GBytes) p1 = NULL;
    g_autoptr(GBytes) p2 = NULL;
    guint8 nonce[DP_NONCE_LEN], proof[DP_MAC_LEN];
    DpMsg reply;

    if (!random_bytes(nonce, sizeof(nonce), error)) {
        return FALSE;
    }
    dp_encode_hello(out, 0, self, nonce, self_port, site);
    if (!dp_write_all(fd, out->data, out->len, error) ||
        !dp_msg_read(fd, &reply, &p1, error) ||
        refused(&reply, DP_REPLY(DP_MSG_HELLO), error)) {
        return FALSE;
    }
    dp_auth_proof(key, key_len, TRUE, nonce, reply.nonce, self,
                  &reply.node_id, proof);
    if (verify_server && !dp_auth_equal(proof, reply.mac)) {
        g_set_error(error, DP_ERROR, DP_ERROR_AUTH,
                    "peer failed to prove the site key");
        return FALSE;
    }
    *server = reply.node_id;
    dp_auth_proof(key, key_len, FALSE, nonce, reply.nonce, self, server,
                  proof);
    g_byte_array_set_size(out, 0);
    dp_encode_auth(out, 0, proof);
    if (!dp_write_all(fd, out->data, out->len, error) ||
        !dp_msg_read(fd, &reply, &p2, error) ||
        refused(&reply, DP_REPLY(DP_MSG_AUTH), error)) {
        return FALSE;
    }
    return TRUE;
}

gboolean
dp_handshake_server(int fd, const guint8 *key, gsize key_len,
                    const char *site, const DpNodeId *self, DpNodeId *client,
                    GError **error)
{
    g_autoptr(GBytes) p1 = NULL;
    g_autoptr(GBytes) p2 = NULL;
    g_autoptr(GByteArray) out = g_byte_array_new();
    DpMsg hello, auth;
    guint8 nonce[DP_NONCE_LEN], proof[DP_MAC_LEN];

    if (!dp_msg_read(fd, &hello, &p1, error)) {
        /* A daemon of another version: tell it why, in an ERROR it reads. */
        if (error && g_error_matches(*error, DP_ERROR, DP_ERROR_VERSION)) {
            dp_send_error(fd, 0, DP_ERROR_VERSION, (*error)->message);
        }
        return FALSE;
    }
    if (hello.type != DP_MSG_HELLO) {
        g_set_error(error, DP_ERROR, DP_ERROR_PROTOCOL,
                    "expected HELLO, got %s", dp_msg_type_name(hello.type));
        dp_send_error(fd, hello.id, DP_ERROR_PROTOCOL, "expected HELLO");
        return FALSE;
    }
    if (!g_str_equal(hello.site, site)) {
        g_set_error(error, DP_ERROR, DP_ERROR_AUTH,
                    "peer is of site '%s', not '%s'", hello.site, site);
        dp_send_error(fd, hello.id, DP_ERROR_AUTH, "wrong site");
        return FALSE;
    }
    if (!random_bytes(nonce, sizeof(nonce), error)) {
        return FALSE;
    }
    dp_auth_proof(key, key_len, TRUE, hello.nonce, nonce, &hello.node_id,
                  self, proof);
    dp_encode_hello_reply(out, hello.id, self, nonce, proof);
    if (!dp_write_all(fd, out->data, out->len, error) ||
        !dp_msg_read(fd, &auth, &p2, error)) {
        return FALSE;
    }
    dp_auth_proof(key, key_len, FALSE, hello.nonce, nonce, &hello.node_id,
                  self, proof);
    if (auth.type != DP_MSG_AUTH || !dp_auth_equal(auth.mac, proof)) {
        g_set_error(error, DP_ERROR, DP_ERROR_AUTH,
                    "peer failed to prove the site key");
        dp_send_error(fd, auth.id, DP_ERROR_AUTH, "authentication failed");
        return FALSE;
    }
    g_byte_array_set_size(out, 0);
    dp_encode_empty(out, DP_REPLY(DP_MSG_AUTH), auth.id);
    if (!dp_write_all(fd, out->data, out->len, error)) {
        return FALSE;
    }
    *client = hello.node_id;
    return TRUE;
}
