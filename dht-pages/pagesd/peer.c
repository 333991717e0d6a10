/* The peer server: serves site members' requests, one thread per
 * connection. */
#include "pagesd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dp-conn.h"

#define IO_TIMEOUT_S 10

typedef struct {
    DpDaemon *d;
    int fd;
    char *peer_addr;
    GByteArray *out;    /* the reply, or the head of a PAGE_GET reply */
    guint8 *pages;      /* the pages of a PAGE_GET reply */
    guint pages_room;
    guint8 status[DP_MAX_BATCH];
} ServerConn;

/* Serve one request: the reply goes to sc->out, followed by *pages_len
 * bytes of sc->pages (PAGE_GET). */
static gboolean
serve_request(ServerConn *sc, const DpNodeId *peer, const DpMsg *m,
              gsize *pages_len)
{
    DpDaemon *d = sc->d;
    GByteArray *out = sc->out;

    *pages_len = 0;
    switch (m->type) {
    case DP_MSG_INDEX_ADD:
    case DP_MSG_INDEX_DEL:
        g_mutex_lock(&d->lock);
        for (guint32 i = 0; i < m->count; i++) {
            if (m->type == DP_MSG_INDEX_ADD) {
                dp_index_add(d->index, &m->hashes[i], peer);
            } else {
                dp_index_remove(d->index, &m->hashes[i], peer);
            }
        }
        g_mutex_unlock(&d->lock);
        if (m->type == DP_MSG_INDEX_ADD) {
            dp_stat_add(d, index_adds_received, m->count);
        }
        dp_encode_count_reply(out, DP_REPLY(m->type), m->id, m->count);
        return TRUE;
    case DP_MSG_INDEX_QUERY: {
        guint8 *n = sc->status;
        g_autofree DpNodeId *holders =
            g_new(DpNodeId, (gsize)m->count * DP_MAX_HOLDERS);
        guint total = 0;

        g_mutex_lock(&d->lock);
        for (guint32 i = 0; i < m->count; i++) {
            n[i] = (guint8)dp_index_lookup(d->index, &m->hashes[i],
                                           &holders[total]);
            total += n[i];
        }
        g_mutex_unlock(&d->lock);
        dp_encode_query_reply(out, m->id, n, m->count, holders);
        return TRUE;
    }
    case DP_MSG_PAGE_GET: {
        guint served, n_ram;

        dp_note_lookup(d);
        if (m->count > sc->pages_room) {
            g_free(sc->pages);
            sc->pages = g_malloc((gsize)m->count * VC_PAGE_SIZE);
            sc->pages_room = m->count;
        }
        served = dp_local_pages(d, m->hashes, m->count, sc->status,
                                sc->pages, &n_ram);
        if (d->test_corrupt_pages) {
            for (guint k = 0; k < served; k++) {
                sc->pages[(gsize)k * VC_PAGE_SIZE] ^= 0xff; /* a liar */
            }
        }
        dp_stat_add(d, pages_served, served);
        dp_encode_pages_reply_head(out, DP_REPLY(DP_MSG_PAGE_GET), m->id,
                                   sc->status, m->count);
        *pages_len = (gsize)served * VC_PAGE_SIZE;
        return TRUE;
    }
    case DP_MSG_CLAIM: {
        /* Waits here, up to the asker's wait, for claims made before. */
        g_autofree DpNodeId *holders = g_new(DpNodeId, m->count);

        dp_arbiter_decide(d, peer, m->hashes, m->count, m->wait_ms,
                          sc->status, holders);
        dp_encode_claim_reply(out, m->id, sc->status, m->count, holders);
        return TRUE;
    }
    case DP_MSG_CLAIM_DONE:
        dp_arbiter_fulfil(d, peer, m->hashes, m->count);
        dp_encode_count_reply(out, DP_REPLY(m->type), m->id, m->count);
        return TRUE;
    case DP_MSG_CLAIM_DROP:
        dp_arbiter_release(d, peer, m->hashes, m->count);
        dp_encode_count_reply(out, DP_REPLY(m->type), m->id, m->count);
        return TRUE;
    case DP_MSG_PING:
        dp_encode_empty(out, DP_REPLY(DP_MSG_PING), m->id);
        return TRUE;
    default:
        return FALSE;
    }
}

static gpointer
server_conn_thread(gpointer data)
{
    ServerConn *sc = data;
    DpDaemon *d = sc->d;
    g_autoptr(GError) error = NULL;
    DpNodeId peer;
    char peer_hex[2 * DP_NODE_ID_LEN + 1];

    dp_peer_set_timeouts(sc->fd, IO_TIMEOUT_S);
    if (!dp_handshake_server(sc->fd, d->key, d->key_len, d->site, &d->self,
                             &peer, &error)) {
        if (error->code == DP_ERROR_AUTH) {
            dp_stat_add(d, auth_failures, 1);
        } else if (error->code != DP_ERROR_IO) {
            dp_stat_add(d, bad_frames, 1);
        }
        g_warning("peer %s rejected: %s", sc->peer_addr, error->message);
        goto out;
    }
    dp_node_id_to_hex(&peer, peer_hex);
    g_debug("peer %s authenticated as %s", sc->peer_addr, peer_hex);
    /* Pooled connections idle between requests: no read timeout. */
    dp_peer_set_timeouts(sc->fd, 0);
    sc->out = g_byte_array_new();
    for (;;) {
        g_autoptr(GBytes) payload = NULL;
        DpMsg m;
        gsize pages_len;
        struct iovec iov[2];

        if (!dp_msg_read(sc->fd, &m, &payload, &error)) {
            if (error->code != DP_ERROR_IO) {
                dp_stat_add(d, bad_frames, 1);
                g_warning("peer %s: bad frame: %s", sc->peer_addr,
                          error->message);
                dp_send_error(sc->fd, 0, DP_ERROR_PROTOCOL, error->message);
            }
            break;
        }
        g_byte_array_set_size(sc->out, 0);
        if (!serve_request(sc, &peer, &m, &pages_len)) {
            dp_stat_add(d, bad_frames, 1);
            g_warning("peer %s: unexpected %s", sc->peer_addr,
                      dp_msg_type_name(m.type));
            dp_send_error(sc->fd, m.id, DP_ERROR_PROTOCOL, "unexpected message");
            break;
        }
        iov[0] = (struct iovec){sc->out->data, sc->out->len};
        iov[1] = (struct iovec){sc->pages, pages_len};
        if (!dp_writev_all(sc->fd, iov, pages_len ? 2 : 1, NULL)) {
            break;
        }
    }
out:
    close(sc->fd);
    if (sc->out) {
        g_byte_array_unref(sc->out);
    }
    g_free(sc->pages);
    g_free(sc->peer_addr);
    g_free(sc);
    return NULL;
}

typedef struct {
    DpDaemon *d;
    int fd;
} Listener;

static gpointer
accept_loop(gpointer data)
{
    Listener *l = data;

    for (;;) {
        struct sockaddr_in sa;
        socklen_t sl = sizeof(sa);
        int fd = accept4(l->fd, (struct sockaddr *)&sa, &sl, SOCK_CLOEXEC);
        ServerConn *sc;
        char addr[INET_ADDRSTRLEN] = "?";
        GThread *t;

        if (fd < 0) {
            if (errno != EINTR && errno != ECONNABORTED) {
                g_warning("cannot accept peer: %s", g_strerror(errno));
                g_usleep(100000);
            }
            continue;
        }
        inet_ntop(AF_INET, &sa.sin_addr, addr, sizeof(addr));
        sc = g_new0(ServerConn, 1);
        sc->d = l->d;
        sc->fd = fd;
        sc->peer_addr = g_strdup_printf("%s:%u", addr, ntohs(sa.sin_port));
        t = g_thread_new("peer-conn", server_conn_thread, sc);
        g_thread_unref(t);
    }
    return NULL;
}

gboolean
dp_peer_listen(DpDaemon *d, GError **error)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(d->peer_port)};
    int one = 1;
    int fd;
    Listener *l;

    if (inet_pton(AF_INET, d->address, &sa.sin_addr) != 1) {
        g_set_error(error, DP_ERROR, DP_ERROR_UNAVAILABLE,
                    "address '%s' is not an IPv4 address", d->address);
        return FALSE;
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(fd, 64) < 0) {
        g_set_error(error, DP_ERROR, DP_ERROR_UNAVAILABLE,
                    "cannot listen on %s:%u: %s", d->address, d->peer_port,
                    g_strerror(errno));
        close(fd);
        return FALSE;
    }
    l = g_new0(Listener, 1);
    l->d = d;
    l->fd = fd;
    g_thread_unref(g_thread_new("peer-accept", accept_loop, l));
    return TRUE;
}
