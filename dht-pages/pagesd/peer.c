/* The peer protocol: server side, pooled client connections, announces. */
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

static void
set_timeouts(int fd, int seconds)
{
    struct timeval tv = {.tv_sec = seconds};
    int one = 1;

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* ---- server side ---- */

typedef struct {
    DpDaemon *d;
    int fd;
    char *peer_addr;
    GByteArray *out;    /* the reply, or the head of a PAGE_GET reply */
    guint8 *pages;      /* the pages of a PAGE_GET reply */
    guint pages_room;
    guint8 status[DP_MAX_BATCH];
} ServerConn;

static gboolean
dp_store_has(DpDaemon *d, const VcPageHash *h)
{
    gboolean has;

    g_mutex_lock(&d->lock);
    has = dp_store_contains(d->store, h);
    g_mutex_unlock(&d->lock);
    return has;
}

/* status[i] of a RAM page copied into its slot but not re-hashed yet, and
 * of one that no longer matched: both hold a slot until compaction. */
#define STATUS_UNCHECKED 2
#define STATUS_STALE 3

typedef struct {
    guint i;
    guint slot;
    const guint8 *src;
    gpointer region;
} RamPick;

/* Pages that changed under us: forget them and withdraw them from the
 * index unless the cache still holds them. */
static void
withdraw_stale(DpDaemon *d, const VcPageHash *h)
{
    dp_stat_add(d, stale_ram_pages, 1);
    if (dp_ram_forget(d, h) && !dp_store_has(d, h)) {
        dp_announce(d, DP_MSG_INDEX_DEL, h, 1);
    }
}

guint
dp_local_pages(DpDaemon *d, const VcPageHash *hashes, guint n,
               guint8 *status, guint8 *pages, guint *n_ram)
{
    g_autofree RamPick *picks = g_new(RamPick, n);
    guint slots = 0, n_picks = 0, stale = 0;

    g_mutex_lock(&d->lock);
    for (guint i = 0; i < n; i++) {
        RamPick *p = &picks[n_picks];

        /* Cache pages were verified when stored and are never modified. */
        if (dp_store_get(d->store, &hashes[i],
                         pages + (gsize)slots * VC_PAGE_SIZE)) {
            status[i] = DP_PAGE_HIT;
            slots++;
        } else if ((p->src = dp_ram_find_locked(d, &hashes[i], &p->region))) {
            p->i = i;
            p->slot = slots++;
            status[i] = STATUS_UNCHECKED;
            n_picks++;
        } else {
            status[i] = DP_PAGE_MISS;
        }
    }
    g_mutex_unlock(&d->lock);

    /* Guest memory changes under us: re-hash the copy we serve. */
    for (guint k = 0; k < n_picks; k++) {
        guint8 *page = pages + (gsize)picks[k].slot * VC_PAGE_SIZE;
        VcPageHash check;

        memcpy(page, picks[k].src, VC_PAGE_SIZE);
        vc_page_hash(page, &check);
        if (vc_page_hash_equal(&check, &hashes[picks[k].i])) {
            status[picks[k].i] = DP_PAGE_HIT;
        } else {
            status[picks[k].i] = STATUS_STALE;
            stale++;
        }
    }
    if (n_picks > 0) {
        g_mutex_lock(&d->lock);
        for (guint k = 0; k < n_picks; k++) {
            dp_ram_release_locked(d, picks[k].region);
        }
        g_mutex_unlock(&d->lock);
    }
    *n_ram = n_picks - stale;
    if (stale == 0) {
        return slots;
    }
    /* Close the holes the stale pages leave. */
    for (guint i = 0, from = 0, to = 0; i < n; i++) {
        if (status[i] == STATUS_STALE) {
            withdraw_stale(d, &hashes[i]);
            status[i] = DP_PAGE_MISS;
            from++;
        } else if (status[i] == DP_PAGE_HIT) {
            if (from != to) {
                memmove(pages + (gsize)to * VC_PAGE_SIZE,
                        pages + (gsize)from * VC_PAGE_SIZE, VC_PAGE_SIZE);
            }
            from++;
            to++;
        }
    }
    return slots - stale;
}

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

    set_timeouts(sc->fd, IO_TIMEOUT_S);
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
    set_timeouts(sc->fd, 0);
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

/* ---- client side ---- */

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
    set_timeouts(fd, IO_TIMEOUT_S);

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
dp_peer_call(DpDaemon *d, const DpNodeId *member, GByteArray *req,
             DpMsg *reply, GBytes **payload, GError **error)
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
    dp_peer_give(d, member, conn);
    return TRUE;
}

GHashTable *
dp_node_groups_new(void)
{
    return g_hash_table_new_full(dp_node_id_hash, dp_node_id_equal_func,
                                 g_free, (GDestroyNotify)g_array_unref);
}

void
dp_node_groups_add(GHashTable *groups, const DpNodeId *node,
                   gconstpointer item, guint item_size)
{
    GArray *items = g_hash_table_lookup(groups, node);

    if (!items) {
        items = g_array_new(FALSE, FALSE, item_size);
        g_hash_table_insert(groups, g_memdup2(node, sizeof(*node)), items);
    }
    g_array_append_vals(items, item, 1);
}

void
dp_announce(DpDaemon *d, guint8 type, const VcPageHash *hashes, gsize n)
{
    g_autoptr(GHashTable) by_owner = dp_node_groups_new();
    GHashTableIter it;
    const DpNodeId *owner;
    GArray *batch;

    g_mutex_lock(&d->lock);
    for (gsize i = 0; i < n; i++) {
        const DpNodeId *o = dp_partition_owner_id(d->partition, &hashes[i]);

        if (!o || dp_node_id_equal(o, &d->self)) {
            if (type == DP_MSG_INDEX_ADD) {
                dp_index_add(d->index, &hashes[i], &d->self);
            } else {
                dp_index_remove(d->index, &hashes[i], &d->self);
            }
            continue;
        }
        dp_node_groups_add(by_owner, o, &hashes[i], sizeof(VcPageHash));
    }
    g_mutex_unlock(&d->lock);

    g_hash_table_iter_init(&it, by_owner);
    while (g_hash_table_iter_next(&it, (gpointer *)&owner,
                                  (gpointer *)&batch)) {
        for (guint off = 0; off < batch->len; off += DP_MAX_BATCH) {
            guint cnt = MIN(DP_MAX_BATCH, batch->len - off);
            g_autoptr(GByteArray) req = g_byte_array_new();
            g_autoptr(GBytes) payload = NULL;
            g_autoptr(GError) error = NULL;
            DpMsg reply;

            dp_encode_hashes(req, type, 0,
                             &g_array_index(batch, VcPageHash, off), cnt);
            if (!dp_peer_call(d, owner, req, &reply, &payload, &error)) {
                g_debug("announce to owner failed: %s", error->message);
                break;
            }
        }
    }
}
