/*
 * Resolving the hashes of a LOOKUP that this node does not hold: ask the
 * owners of their buckets who holds them (INDEX_QUERY), then ask those
 * holders for the pages (PAGE_GET), trying the next holder of a hash when
 * one misses, fails or lies.
 *
 * Every peer at once: requests to all owners go out before any reply is
 * awaited, a holder is asked as soon as an owner names it, and PAGE_GETs
 * are cut in chunks, so that the holders hash the next pages while this
 * node verifies the ones received (one batch used to cost the sum of all
 * those round trips and hashes). Replies are read straight into buffers
 * that the LOOKUP reply is then sent from: pages are not copied here.
 */
#include "pagesd.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#include "vc-frame.h"

/* Pages per PAGE_GET: few enough that a holder and this node hash at the
 * same time, enough that frames and wake-ups stay few. */
#define CHUNK_PAGES 64
/* Peers that still owe replies after this long without any progress
 * fail (the blocking calls used a 10 s socket timeout). */
#define IO_TIMEOUT_MS 10000
/* Links kept from batch to batch; members come and go. */
#define MAX_LINKS 256

typedef struct {
    guint8 n_holders;
    guint8 next; /* the next holder to ask */
    DpNodeId holders[DP_MAX_HOLDERS];
} Item;

/* A request sent, whose reply is owed. */
typedef struct {
    guint8 type;
    guint32 id;
    guint first; /* its batch positions: f->req_items[first..first+count) */
    guint count;
} Pending;

typedef struct {
    guint8 *base;  /* page-aligned */
    guint8 *data;  /* the frame, after a pad that aligns its pages */
    gsize room;    /* from base */
    gboolean busy; /* a frame being read, or pages of this batch */
} Buf;

/* A site member this batch talks to, over one connection. */
typedef struct {
    DpNodeId id;
    gboolean used; /* in the current batch */
    gboolean failed;
    DpPeerConn *conn;
    int fd;
    GArray *staged_q; /* batch positions to ask the owner about */
    GArray *staged_p; /* batch positions to ask the holder for */
    GByteArray *out;  /* requests, sent up to out_off */
    gsize out_off;
    GArray *pending;  /* Pending, owed from pend_head on */
    guint pend_head;
    guint8 hdr[VC_FRAME_HEADER_LEN]; /* the reply being read */
    guint hdr_got;
    Buf *in;
    guint32 in_len;
    gsize in_got;
} Link;

struct DpFetch {
    DpDaemon *d;
    const VcPageHash *hashes; /* of the batch */
    const guint8 **out;
    guint found;                /* pages of this run */
    Item items[DP_MAX_BATCH];   /* by batch position */
    VcPageHash req_hashes[DP_MAX_BATCH];
    GArray *req_items;  /* guint32 batch positions of the requests */
    GHashTable *links;  /* DpNodeId * -> Link * */
    GPtrArray *active;  /* Link * used in this batch */
    GPtrArray *bufs;    /* Buf * */
    GArray *pfds;       /* struct pollfd */
    GPtrArray *polled;  /* Link * of each pollfd */
};

static void
link_free(gpointer p)
{
    Link *l = p;

    dp_peer_conn_free(l->conn);
    g_array_unref(l->staged_q);
    g_array_unref(l->staged_p);
    g_byte_array_unref(l->out);
    g_array_unref(l->pending);
    g_free(l);
}

static void
buf_free(gpointer p)
{
    Buf *b = p;

    g_aligned_free(b->base);
    g_free(b);
}

DpFetch *
dp_fetch_new(DpDaemon *d)
{
    DpFetch *f = g_new0(DpFetch, 1);

    f->d = d;
    f->req_items = g_array_new(FALSE, FALSE, sizeof(guint32));
    f->links = g_hash_table_new_full(dp_node_id_hash, dp_node_id_equal_func,
                                     NULL, link_free);
    f->active = g_ptr_array_new();
    f->bufs = g_ptr_array_new_with_free_func(buf_free);
    f->pfds = g_array_new(FALSE, FALSE, sizeof(struct pollfd));
    f->polled = g_ptr_array_new();
    return f;
}

void
dp_fetch_free(DpFetch *f)
{
    if (!f) {
        return;
    }
    g_array_unref(f->req_items);
    g_hash_table_unref(f->links);
    g_ptr_array_unref(f->active);
    g_ptr_array_unref(f->bufs);
    g_array_unref(f->pfds);
    g_ptr_array_unref(f->polled);
    g_free(f);
}

static Buf *
buf_take(DpFetch *f, gsize len)
{
    /* A PAGE_GET reply's length is that of the part before its pages,
     * modulo a page: with this pad, its pages are page-aligned and the
     * resolver splices each to its client whole, not in two pieces. */
    gsize pad = (VC_PAGE_SIZE - len % VC_PAGE_SIZE) % VC_PAGE_SIZE;
    Buf *b = NULL;

    for (guint k = 0; k < f->bufs->len && !b; k++) {
        Buf *c = f->bufs->pdata[k];

        if (!c->busy) {
            b = c;
        }
    }
    if (!b) {
        b = g_new0(Buf, 1);
        g_ptr_array_add(f->bufs, b);
    }
    if (b->room < pad + len) {
        /* Nothing to keep: no realloc copy. */
        g_aligned_free(b->base);
        b->base = g_aligned_alloc(pad + MAX(len, 1), 1, VC_PAGE_SIZE);
        b->room = pad + len;
    }
    b->data = b->base + pad;
    b->busy = TRUE;
    return b;
}

/* The link to @id, joined to the current batch. */
static Link *
link_get(DpFetch *f, const DpNodeId *id)
{
    Link *l = g_hash_table_lookup(f->links, id);

    if (!l) {
        l = g_new0(Link, 1);
        l->id = *id;
        l->staged_q = g_array_new(FALSE, FALSE, sizeof(guint32));
        l->staged_p = g_array_new(FALSE, FALSE, sizeof(guint32));
        l->out = g_byte_array_new();
        l->pending = g_array_new(FALSE, FALSE, sizeof(Pending));
        g_hash_table_insert(f->links, &l->id, l);
    }
    if (!l->used) {
        l->used = TRUE;
        l->failed = FALSE;
        l->fd = -1;
        g_array_set_size(l->staged_q, 0);
        g_array_set_size(l->staged_p, 0);
        g_byte_array_set_size(l->out, 0);
        l->out_off = 0;
        g_array_set_size(l->pending, 0);
        l->pend_head = 0;
        l->hdr_got = 0;
        l->in = NULL;
        g_ptr_array_add(f->active, l);
    }
    return l;
}

static const char *
link_name(Link *l, char *hex)
{
    if (l->conn) {
        return dp_peer_conn_name(l->conn);
    }
    dp_node_id_to_hex(&l->id, hex);
    return hex;
}

/* Ask the next holder of the hash at @pos that may still have it. */
static void
item_advance(DpFetch *f, guint32 pos)
{
    Item *it = &f->items[pos];

    while (it->next < it->n_holders) {
        const DpNodeId *h = &it->holders[it->next++];
        Link *l;

        if (dp_node_id_equal(h, &f->d->self)) {
            continue; /* we looked locally already: a stale entry */
        }
        l = link_get(f, h);
        if (!l->failed) {
            g_array_append_val(l->staged_p, pos);
            return;
        }
    }
}

/* The peer is of no more use in this batch: what it owed goes to the next
 * holders, and its connection is closed. */
static void
link_fail(DpFetch *f, Link *l, gboolean count, const char *why)
{
    char hex[2 * DP_NODE_ID_LEN + 1];

    g_debug("peer %s: %s", link_name(l, hex), why);
    if (count) {
        dp_stat_add(f->d, peer_errors, 1);
    }
    l->failed = TRUE;
    g_clear_pointer(&l->conn, dp_peer_conn_free);
    l->fd = -1;
    if (l->in) {
        l->in->busy = FALSE;
        l->in = NULL;
    }
    g_byte_array_set_size(l->out, 0);
    l->out_off = 0;
    for (guint k = l->pend_head; k < l->pending->len; k++) {
        Pending *p = &g_array_index(l->pending, Pending, k);

        if (p->type != DP_MSG_PAGE_GET) {
            continue; /* an owner that did not answer: no holders */
        }
        for (guint j = 0; j < p->count; j++) {
            item_advance(f, g_array_index(f->req_items, guint32, p->first + j));
        }
    }
    l->pend_head = l->pending->len;
    for (guint j = 0; j < l->staged_p->len; j++) {
        item_advance(f, g_array_index(l->staged_p, guint32, j));
    }
    g_array_set_size(l->staged_p, 0);
    g_array_set_size(l->staged_q, 0);
}

static void
link_request(DpFetch *f, Link *l, guint8 type, const guint32 *pos,
             guint count)
{
    Pending p = {
        .type = type,
        .id = dp_peer_request_id(),
        .first = f->req_items->len,
        .count = count,
    };

    for (guint k = 0; k < count; k++) {
        f->req_hashes[k] = f->hashes[pos[k]];
    }
    g_array_append_vals(f->req_items, pos, count);
    dp_encode_hashes(l->out, type, p.id, f->req_hashes, count);
    g_array_append_val(l->pending, p);
}

static void
link_send(DpFetch *f, Link *l)
{
    while (l->out_off < l->out->len) {
        ssize_t n = send(l->fd, l->out->data + l->out_off,
                         l->out->len - l->out_off, MSG_DONTWAIT | MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                link_fail(f, l, TRUE, g_strerror(errno));
            }
            return;
        }
        l->out_off += (gsize)n;
    }
    g_byte_array_set_size(l->out, 0);
    l->out_off = 0;
}

/* Turn staged work into requests and send them. A link that cannot
 * connect passes its work on to other links, hence the passes. */
static void
flush_staged(DpFetch *f)
{
    gboolean again = TRUE;

    while (again) {
        again = FALSE;
        for (guint k = 0; k < f->active->len; k++) {
            Link *l = f->active->pdata[k];
            guint n = l->staged_p->len;
            const guint32 *pos = (const guint32 *)l->staged_p->data;
            g_autoptr(GError) error = NULL;

            if (l->failed || (n == 0 && l->staged_q->len == 0)) {
                continue;
            }
            if (!l->conn) {
                l->conn = dp_peer_take(f->d, &l->id, &error);
                if (!l->conn) {
                    /* dp_peer_take counted a failed connect already. */
                    link_fail(f, l, FALSE, error->message);
                    again = TRUE;
                    continue;
                }
                l->fd = dp_peer_conn_fd(l->conn);
            }
            if (l->staged_q->len > 0) {
                link_request(f, l, DP_MSG_INDEX_QUERY,
                             (const guint32 *)l->staged_q->data,
                             l->staged_q->len);
                g_array_set_size(l->staged_q, 0);
            }
            if (n > 0) {
                /* Chunks of even sizes. */
                guint chunks = (n + CHUNK_PAGES - 1) / CHUNK_PAGES;
                guint size = (n + chunks - 1) / chunks;

                for (guint off = 0; off < n; off += size) {
                    link_request(f, l, DP_MSG_PAGE_GET, pos + off,
                                 MIN(size, n - off));
                }
                g_array_set_size(l->staged_p, 0);
            }
            link_send(f, l);
        }
    }
}

static void
on_query_reply(DpFetch *f, const Pending *p, const DpMsg *m)
{
    guint at = 0;

    for (guint k = 0; k < p->count; k++) {
        guint32 pos = g_array_index(f->req_items, guint32, p->first + k);
        Item *it = &f->items[pos];

        it->n_holders = m->status[k];
        memcpy(it->holders, &m->holders[at], it->n_holders * sizeof(DpNodeId));
        at += it->n_holders;
        item_advance(f, pos);
    }
    /* The holders start on their pages while other replies come in. */
    flush_staged(f);
}

/* Returns whether pages of @m are used (its buffer must stay). */
static gboolean
on_pages_reply(DpFetch *f, Link *l, const Pending *p, const DpMsg *m)
{
    guint hits = 0;

    for (guint k = 0; k < p->count; k++) {
        guint32 pos = g_array_index(f->req_items, guint32, p->first + k);
        const guint8 *page = dp_msg_reply_page(m, k);
        VcPageHash check;

        if (!page) {
            item_advance(f, pos);
            continue;
        }
        vc_page_hash(page, &check);
        if (!vc_page_hash_equal(&check, &f->hashes[pos])) {
            char hex[2 * DP_NODE_ID_LEN + 1];

            dp_node_id_to_hex(&l->id, hex);
            dp_stat_add(f->d, bad_pages_from_peers, 1);
            g_warning("peer %s sent a page that does not match its hash; "
                      "dropped", hex);
            item_advance(f, pos);
            continue;
        }
        f->out[pos] = page;
        hits++;
    }
    f->found += hits;
    return hits > 0;
}

/* A whole reply is in l->in. */
static void
on_reply(DpFetch *f, Link *l)
{
    g_autoptr(GError) error = NULL;
    /* A copy: new requests may move the array. */
    Pending p = g_array_index(l->pending, Pending, l->pend_head);
    Buf *b = g_steal_pointer(&l->in);
    DpMsg m;

    if (!dp_msg_decode(b->data, l->in_len, &m, &error)) {
        b->busy = FALSE;
        link_fail(f, l, TRUE, error->message);
        return;
    }
    if (m.id != p.id || m.type != DP_REPLY(p.type) || m.count != p.count) {
        g_autofree char *why = g_strdup_printf(
            "answered %s%s%s to %s", dp_msg_type_name(m.type),
            m.type == DP_MSG_ERROR ? ": " : "",
            m.type == DP_MSG_ERROR ? m.error_message : "",
            dp_msg_type_name(p.type));

        b->busy = FALSE;
        link_fail(f, l, TRUE, why);
        return;
    }
    l->pend_head++;
    if (p.type == DP_MSG_INDEX_QUERY) {
        on_query_reply(f, &p, &m);
        b->busy = FALSE;
    } else {
        b->busy = on_pages_reply(f, l, &p, &m);
    }
}

/* FALSE when the socket has nothing more for now or the link failed. */
static gboolean
recv_some(DpFetch *f, Link *l, guint8 *to, gsize len, gsize *got)
{
    ssize_t n;

    do {
        n = recv(l->fd, to, len, MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
        *got += (gsize)n;
        return TRUE;
    }
    if (n == 0) {
        link_fail(f, l, TRUE, "connection closed");
    } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
        link_fail(f, l, TRUE, g_strerror(errno));
    }
    return FALSE;
}

static void
link_recv(DpFetch *f, Link *l)
{
    while (!l->failed && l->pend_head < l->pending->len) {
        if (l->hdr_got < VC_FRAME_HEADER_LEN) {
            gsize got = l->hdr_got;

            if (!recv_some(f, l, l->hdr + got, VC_FRAME_HEADER_LEN - got,
                           &got)) {
                return;
            }
            l->hdr_got = (guint)got;
            if (l->hdr_got < VC_FRAME_HEADER_LEN) {
                continue;
            }
            l->in_len = dp_frame_len(l->hdr);
            if (l->in_len > DP_MAX_PAYLOAD) {
                link_fail(f, l, TRUE, "frame over the limit");
                return;
            }
            l->in = buf_take(f, l->in_len);
            l->in_got = 0;
        }
        if (l->in_got < l->in_len &&
            !recv_some(f, l, l->in->data + l->in_got, l->in_len - l->in_got,
                       &l->in_got)) {
            return;
        }
        if (l->in_got == l->in_len) {
            l->hdr_got = 0;
            on_reply(f, l);
        }
    }
}

/* Wait for and handle what the peers send until nothing is owed. */
static void
exchange(DpFetch *f)
{
    for (;;) {
        int rc;

        g_array_set_size(f->pfds, 0);
        g_ptr_array_set_size(f->polled, 0);
        for (guint k = 0; k < f->active->len; k++) {
            Link *l = f->active->pdata[k];
            struct pollfd pfd = {.fd = l->fd};

            if (l->failed) {
                continue;
            }
            if (l->out_off < l->out->len) {
                pfd.events |= POLLOUT;
            }
            if (l->pend_head < l->pending->len) {
                pfd.events |= POLLIN;
            }
            if (pfd.events) {
                g_array_append_val(f->pfds, pfd);
                g_ptr_array_add(f->polled, l);
            }
        }
        if (f->pfds->len == 0) {
            return;
        }
        rc = poll((struct pollfd *)f->pfds->data, f->pfds->len,
                  IO_TIMEOUT_MS);
        if (rc < 0 && errno == EINTR) {
            continue;
        }
        for (guint k = 0; k < f->pfds->len; k++) {
            struct pollfd *pfd = &g_array_index(f->pfds, struct pollfd, k);
            Link *l = f->polled->pdata[k];

            if (rc <= 0) {
                link_fail(f, l, TRUE, rc == 0 ? "timed out" : g_strerror(errno));
                continue;
            }
            if (pfd->revents & POLLOUT) {
                link_send(f, l);
            }
            if (pfd->revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) {
                link_recv(f, l);
            }
        }
        flush_staged(f);
    }
}

void
dp_fetch_begin(DpFetch *f)
{
    for (guint k = 0; k < f->bufs->len; k++) {
        ((Buf *)f->bufs->pdata[k])->busy = FALSE;
    }
    if (g_hash_table_size(f->links) > MAX_LINKS) {
        g_hash_table_remove_all(f->links);
    }
}

static void
run_prepare(DpFetch *f, const VcPageHash *hashes, const guint8 **out)
{
    f->hashes = hashes;
    f->out = out;
    f->found = 0;
    g_array_set_size(f->req_items, 0);
}

/* Ask until nothing is owed, then pool the connections again. */
static guint
run_exchange(DpFetch *f, const guint32 *todo, guint n_todo)
{
    for (guint k = 0; k < n_todo; k++) {
        item_advance(f, todo[k]);
    }
    flush_staged(f);
    exchange(f);

    for (guint k = 0; k < f->active->len; k++) {
        Link *l = f->active->pdata[k];

        l->used = FALSE;
        if (l->conn) {
            /* Every reply was read: the stream is clean for the next. */
            dp_peer_give(f->d, &l->id, g_steal_pointer(&l->conn));
        }
    }
    g_ptr_array_set_size(f->active, 0);
    return f->found;
}

guint
dp_fetch_run(DpFetch *f, const VcPageHash *hashes, const guint32 *todo,
             guint n_todo, const guint8 **out)
{
    DpDaemon *d = f->d;

    g_return_val_if_fail(n_todo <= DP_MAX_BATCH, 0);

    run_prepare(f, hashes, out);
    g_mutex_lock(&d->lock);
    for (guint k = 0; k < n_todo; k++) {
        guint32 i = todo[k];
        const DpNodeId *owner = dp_partition_owner_id(d->partition, &hashes[i]);

        f->items[i].n_holders = 0;
        f->items[i].next = 0;
        if (!owner) {
            continue;
        }
        if (dp_node_id_equal(owner, &d->self)) {
            f->items[i].n_holders = (guint8)dp_index_lookup(
                d->index, &hashes[i], f->items[i].holders);
            continue;
        }
        g_array_append_val(link_get(f, owner)->staged_q, i);
    }
    g_mutex_unlock(&d->lock);
    /* Holders this node knows of itself are asked at once. */
    return run_exchange(f, todo, n_todo);
}

guint
dp_fetch_from(DpFetch *f, const VcPageHash *hashes, const guint32 *todo,
              guint n_todo, const DpNodeId *holders, const guint8 **out)
{
    g_return_val_if_fail(n_todo <= DP_MAX_BATCH, 0);

    run_prepare(f, hashes, out);
    for (guint k = 0; k < n_todo; k++) {
        Item *it = &f->items[todo[k]];

        it->n_holders = 1;
        it->next = 0;
        it->holders[0] = holders[k];
    }
    return run_exchange(f, todo, n_todo);
}
