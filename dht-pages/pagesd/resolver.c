/* The resolver socket: LOOKUP, PUBLISH and STATS for local clients. */
#include "pagesd.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

/* Hashes a client was told to fetch: it must never wait on its own
 * claim (it fetches the page only once its lookup is answered). */
#define CLAIMED_MAX (1 << 18)
/* QEMU publishes on a connection of its own for up to 1 s after its
 * migration ended (qemu-patches/0006): a client's claims still open this
 * long after it closed will not be fulfilled. */
#define RELEASE_GRACE_US (2 * G_USEC_PER_SEC)
/* A LOOKUP reply of 256 pages in one pass through the pipe, even if its
 * pages are not page-aligned in their buffers (each then takes two of
 * its slots). Without CAP_SYS_RESOURCE, fs.pipe-max-size (1 MiB by
 * default) is the limit. */
#define PIPE_BYTES (4 << 20)
#define PIPE_BYTES_UNPRIVILEGED (1 << 20)
/* How long a client may leave a reply unread once it sends another
 * request, or closes; its buffers are kept (leaked) past that. */
#define UNREAD_TIMEOUT_US (10 * G_USEC_PER_SEC)

typedef struct {
    DpDaemon *d;
    int fd;
    guint serial;
    GHashTable *claimed; /* VcPageHash * (owned) */
    DpFetch *fetch;
    GByteArray *head;    /* the reply, or the head of a LOOKUP reply */
    GArray *iov;         /* struct iovec: the pages after the head */
    guint8 *local;       /* pages found on this node, for the reply */
    guint local_room;
    /* LOOKUP replies are spliced through this pipe (-1: written): the
     * client's socket then refers to the pages in the fetch buffers and
     * in local, instead of holding copies. */
    int pipe_fds[2];
    gboolean lent;       /* a spliced reply may be unread yet */
    guint8 status[DP_MAX_BATCH];
    const guint8 *out[DP_MAX_BATCH];
    guint32 todo[DP_MAX_BATCH];
    /* Asking the claims arbiter: the hashes, their states, the holders,
     * and the hashes held elsewhere, by where. */
    VcPageHash asked[DP_MAX_BATCH];
    guint8 states[DP_MAX_BATCH];
    DpNodeId holders[DP_MAX_BATCH];
    guint32 held_peer[DP_MAX_BATCH];
    DpNodeId held_peer_at[DP_MAX_BATCH];
    VcPageHash held_here[DP_MAX_BATCH];
    guint32 held_here_pos[DP_MAX_BATCH];
} Client;

/* The LOOKUP reply's pages after its head, in order, in as few iovecs
 * as they are contiguous (the pages of one PAGE_GET reply usually are). */
static void
reply_pages(Client *c, guint32 n)
{
    struct iovec *last = NULL;

    for (guint32 i = 0; i < n; i++) {
        const guint8 *page = c->out[i];

        if (!page) {
            continue;
        }
        if (last && (const guint8 *)last->iov_base + last->iov_len == page) {
            last->iov_len += VC_PAGE_SIZE;
            continue;
        }
        g_array_set_size(c->iov, c->iov->len + 1);
        last = &g_array_index(c->iov, struct iovec, c->iov->len - 1);
        *last = (struct iovec){(guint8 *)page, VC_PAGE_SIZE};
    }
}

/* A spliced reply's pages must not change before the client has read
 * them: this is called before anything is written to the buffers again.
 * (Clients read the socket; one that spliced out of it would see later
 * changes, and re-hashes what it gets anyway, as every client must.) */
static gboolean
wait_read(Client *c)
{
    gint64 deadline = g_get_monotonic_time() + UNREAD_TIMEOUT_US;

    while (c->lent) {
        gsize unread;

        if (!dp_unread_bytes(c->fd, &unread, NULL) ||
            g_get_monotonic_time() > deadline) {
            return FALSE;
        }
        if (unread == 0) {
            c->lent = FALSE;
        } else {
            /* Rare: the client asks before it has read the last reply. */
            g_usleep(50);
        }
    }
    return TRUE;
}

static void
claimed_add(Client *c, const VcPageHash *h)
{
    if (g_hash_table_size(c->claimed) >= CLAIMED_MAX) {
        g_hash_table_remove_all(c->claimed);
    }
    g_hash_table_add(c->claimed, g_memdup2(h, sizeof(VcPageHash)));
}

/*
 * The hashes[todo[k]] still missing: the site's claims arbiter says which
 * node fetches each over the WAN (this client, if it is told to: a miss,
 * and it publishes the page later), and where the others are once they
 * arrived there (waiting for them at most the hold time): those are
 * fetched from that node. Pages of this node's cache go to c->local from
 * slot @slot on. Returns the slots used.
 */
static guint
resolve_missing(Client *c, const VcPageHash *hashes, guint n_todo, guint slot)
{
    DpDaemon *d = c->d;
    guint n_peer = 0, n_here = 0, held = 0, hits = 0, here_hits, n_ram;

    for (guint k = 0; k < n_todo; k++) {
        c->asked[k] = hashes[c->todo[k]];
    }
    if (!dp_arbiter_ask(d, c->asked, n_todo, c->states, c->holders)) {
        dp_stat_add(d, claims_unasked, n_todo);
        dp_stat_add(d, misses, n_todo);
        return 0;
    }
    for (guint k = 0; k < n_todo; k++) {
        guint32 i = c->todo[k];

        if (c->states[k] == DP_CLAIM_FETCH) {
            claimed_add(c, &hashes[i]);
            dp_stat_add(d, claims_fetch, 1);
            continue;
        }
        dp_stat_add(d, coalesce_waits, 1);
        if (c->states[k] != DP_CLAIM_HELD) {
            continue; /* the wait ran out: a miss */
        }
        if (dp_node_id_equal(&c->holders[held], &d->self)) {
            c->held_here_pos[n_here] = i;
            c->held_here[n_here++] = hashes[i];
        } else {
            c->held_peer_at[n_peer] = c->holders[held];
            c->held_peer[n_peer++] = i;
        }
        held++;
    }
    /* Another client of this node brought it. */
    here_hits = n_here == 0 ? 0
                            : dp_local_pages(d, c->held_here, n_here, c->status,
                                             c->local +
                                                 (gsize)slot * VC_PAGE_SIZE,
                                             &n_ram);
    for (guint k = 0, rank = 0; k < n_here; k++) {
        if (c->status[k] == DP_PAGE_HIT) {
            c->out[c->held_here_pos[k]] =
                c->local + (gsize)(slot + rank++) * VC_PAGE_SIZE;
        }
    }
    if (n_peer > 0) {
        hits = dp_fetch_from(c->fetch, hashes, c->held_peer, n_peer,
                             c->held_peer_at, c->out);
    }
    dp_stat_add(d, coalesced_hits, here_hits + hits);
    dp_stat_add(d, misses, n_todo - here_hits - hits);
    return here_hits;
}

static void
handle_lookup(Client *c, const DpMsg *m)
{
    DpDaemon *d = c->d;
    guint32 n = m->count;
    guint n_todo = 0, local, n_ram;

    if (n > c->local_room) {
        /* Aligned: each page is spliced to the client whole. */
        g_aligned_free(c->local);
        c->local = g_aligned_alloc(n, VC_PAGE_SIZE, VC_PAGE_SIZE);
        c->local_room = n;
    }
    dp_stat_add(d, lookups, n);
    dp_note_lookup(d);
    dp_fetch_begin(c->fetch);
    /* Pages held here never cost a peer hop. */
    local = dp_local_pages(d, m->hashes, n, c->status, c->local, &n_ram);
    dp_stat_add(d, hits_ram, n_ram);
    dp_stat_add(d, hits_cache, local - n_ram);
    for (guint32 i = 0, rank = 0; i < n; i++) {
        if (c->status[i] == DP_PAGE_HIT) {
            c->out[i] = c->local + (gsize)rank++ * VC_PAGE_SIZE;
        } else {
            c->out[i] = NULL;
            c->todo[n_todo++] = i;
        }
    }
    if (n_todo > 0) {
        dp_stat_add(d, hits_peer,
                    dp_fetch_run(c->fetch, m->hashes, c->todo, n_todo, c->out));
    }
    /* Still missing: no member holds them. */
    n_todo = 0;
    for (guint32 i = 0; i < n; i++) {
        if (c->out[i]) {
            continue;
        }
        if (d->coalesce_us > 0 &&
            !g_hash_table_contains(c->claimed, &m->hashes[i])) {
            c->todo[n_todo++] = i;
        } else {
            dp_stat_add(d, misses, 1);
        }
    }
    if (n_todo > 0) {
        resolve_missing(c, m->hashes, n_todo, local);
    }
    for (guint32 i = 0; i < n; i++) {
        c->status[i] = c->out[i] ? DP_PAGE_HIT : DP_PAGE_MISS;
    }
    dp_encode_pages_reply_head(c->head, DP_REPLY(DP_MSG_LOOKUP), m->id,
                               c->status, n);
    reply_pages(c, n);
}

static void
handle_publish(Client *c, const DpMsg *m)
{
    GByteArray *reply = c->head;
    DpDaemon *d = c->d;
    g_autoptr(GArray) fresh = g_array_new(FALSE, FALSE, sizeof(VcPageHash));
    g_autoptr(GArray) stale = g_array_new(FALSE, FALSE, sizeof(VcPageHash));
    guint32 stored = 0, rejected = 0;

    for (guint32 i = 0; i < m->count; i++) {
        const guint8 *rec =
            m->records + (gsize)i * (VC_PAGE_HASH_LEN + VC_PAGE_SIZE);
        const VcPageHash *h = (const VcPageHash *)rec;
        const guint8 *page = rec + VC_PAGE_HASH_LEN;
        VcPageHash check;
        gboolean added;

        vc_page_hash(page, &check);
        if (!vc_page_hash_equal(&check, h)) {
            /* The page changed at its source since its hash was sent:
             * if this node had the claim on it, it will not come. */
            g_array_append_val(stale, *h);
            rejected++;
            continue;
        }
        g_mutex_lock(&d->lock);
        added = dp_store_put(d->store, h, page);
        g_mutex_unlock(&d->lock);
        if (added) {
            g_array_append_val(fresh, *h);
        }
        stored++;
    }
    dp_stat_add(d, published, stored);
    dp_stat_add(d, publish_rejected, rejected);
    if (fresh->len > 0) {
        dp_announce(d, DP_MSG_INDEX_ADD, (VcPageHash *)fresh->data,
                    fresh->len);
        /* After the index: whoever waits for them may fetch them here. */
        if (d->coalesce_us > 0) {
            dp_arbiter_done(d, (VcPageHash *)fresh->data, fresh->len);
        }
    }
    /* All of them: QEMU publishes on another connection than the one
     * that claimed, so this one cannot tell which were claimed here; the
     * arbiter ignores the hashes this node holds no claim on. */
    if (stale->len > 0 && d->coalesce_us > 0) {
        dp_arbiter_drop(d, (VcPageHash *)stale->data, stale->len);
    }
    dp_encode_publish_reply(reply, m->id, stored, rejected);
}

char *
dp_stats_json(DpDaemon *d)
{
    GString *s = g_string_new("{");
    char self[2 * DP_NODE_ID_LEN + 1];
    GHashTableIter it;
    DpMember *mb;
    gboolean first = TRUE;

    dp_node_id_to_hex(&d->self, self);
    g_mutex_lock(&d->lock);
    g_string_append_printf(
        s,
        "\"site\": \"%s\", \"node\": \"%s\", \"address\": \"%s:%u\", "
        "\"uptime_s\": %.1f, \"epoch\": %" G_GUINT64_FORMAT
        ", \"rebalanced\": %s, \"index_entries\": %zu, "
        "\"cache_pages\": %zu, \"cache_evictions\": %" G_GUINT64_FORMAT
        ", \"ram_regions\": %zu, \"ram_pages\": %zu, "
        "\"member_count\": %u, \"members\": [",
        d->site, self, d->address, d->peer_port,
        (g_get_monotonic_time() - d->started_us) / 1e6, d->epoch,
        d->epoch == d->announced_epoch ? "true" : "false",
        dp_index_size(d->index), dp_store_count(d->store),
        dp_store_evictions(d->store), dp_ram_regions(d), dp_ram_pages(d),
        g_hash_table_size(d->members));
    g_hash_table_iter_init(&it, d->members);
    while (g_hash_table_iter_next(&it, NULL, (gpointer *)&mb)) {
        char hex[2 * DP_NODE_ID_LEN + 1];

        dp_node_id_to_hex(&mb->id, hex);
        g_string_append_printf(s, "%s{\"node\": \"%s\", \"address\": \"%s:%u\"}",
                               first ? "" : ", ", hex, mb->address, mb->port);
        first = FALSE;
    }
    g_mutex_unlock(&d->lock);
#define STAT(name) \
    g_string_append_printf(s, ", \"" #name "\": %" G_GUINT64_FORMAT, \
                           dp_stat_get(d, name))
    g_string_append(s, "]");
    STAT(lookups);
    STAT(hits_cache);
    STAT(hits_ram);
    STAT(hits_peer);
    STAT(misses);
    STAT(coalesced_hits);
    STAT(coalesce_waits);
    STAT(claims_fetch);
    STAT(claims_unasked);
    STAT(claims_decided);
    STAT(claims_fulfilled);
    STAT(claims_dropped);
    STAT(published);
    STAT(publish_rejected);
    STAT(bad_pages_from_peers);
    STAT(stale_ram_pages);
    STAT(peer_errors);
    STAT(bad_frames);
    STAT(auth_failures);
    STAT(pages_served);
    STAT(index_adds_received);
    STAT(rebalances);
    STAT(pages_hashed);
    STAT(ram_passes);
#undef STAT
    g_string_append_printf(s, ", \"coalesce_served\": %" G_GUINT64_FORMAT
                              ", \"claims_live\": %u}",
                           dp_stat_get(d, coalesced_hits),
                           dp_claims_size(d->claims));
    return g_string_free(s, FALSE);
}

static void
pipe_close(Client *c)
{
    for (int k = 0; k < 2; k++) {
        if (c->pipe_fds[k] >= 0) {
            close(c->pipe_fds[k]);
            c->pipe_fds[k] = -1;
        }
    }
}

/* The reply in c->head and c->iov: the pages of a LOOKUP's (@n hashes)
 * by reference where the socket takes them, saving a copy of each. */
static gboolean
send_reply(Client *c, guint32 n)
{
    g_autoptr(GError) error = NULL;

    g_array_index(c->iov, struct iovec, 0) =
        (struct iovec){c->head->data, c->head->len};
    if (c->iov->len > 1 && c->pipe_fds[0] >= 0) {
        c->lent = TRUE;
        if (dp_splicev_all(c->fd, c->pipe_fds, (struct iovec *)c->iov->data,
                           c->iov->len, &error)) {
            return TRUE;
        }
        if (!g_error_matches(error, DP_ERROR, DP_ERROR_UNAVAILABLE)) {
            return FALSE;
        }
        g_debug("resolver client %u: %s; replies are copied", c->serial,
                error->message);
        /* Nothing was sent; what the pipe holds goes with it. */
        pipe_close(c);
        c->lent = FALSE;
        g_array_set_size(c->iov, 1);
        g_array_index(c->iov, struct iovec, 0) =
            (struct iovec){c->head->data, c->head->len};
        reply_pages(c, n);
    }
    return dp_writev_all(c->fd, (struct iovec *)c->iov->data, c->iov->len,
                         NULL);
}

/* After @c closed: its claims still open after the grace time pass to
 * their waiters now rather than when they lapse (the arbiter ignores the
 * ones that were fulfilled). */
static void
release_claims(Client *c)
{
    g_autoptr(GArray) hashes = NULL;
    GHashTableIter it;
    gpointer h;

    if (c->d->coalesce_us <= 0 || g_hash_table_size(c->claimed) == 0) {
        return;
    }
    hashes = g_array_sized_new(FALSE, FALSE, sizeof(VcPageHash),
                               g_hash_table_size(c->claimed));
    g_hash_table_iter_init(&it, c->claimed);
    while (g_hash_table_iter_next(&it, &h, NULL)) {
        g_array_append_vals(hashes, h, 1);
    }
    g_usleep(RELEASE_GRACE_US);
    dp_arbiter_drop(c->d, (VcPageHash *)hashes->data, hashes->len);
}

static void
client_free(Client *c)
{
    g_hash_table_unref(c->claimed);
    dp_fetch_free(c->fetch);
    g_byte_array_unref(c->head);
    g_array_unref(c->iov);
    g_aligned_free(c->local);
    g_free(c);
}

static gpointer
client_thread(gpointer data)
{
    Client *c = data;
    DpDaemon *d = c->d;

    for (;;) {
        g_autoptr(GBytes) payload = NULL;
        g_autoptr(GError) error = NULL;
        DpMsg m;

        if (!dp_msg_read(c->fd, &m, &payload, &error)) {
            if (error->code == DP_ERROR_IO) {
                break; /* closed, or a socket error */
            }
            goto bad;
        }
        if (!wait_read(c)) {
            g_warning("resolver client %u does not read its replies; closing",
                      c->serial);
            break;
        }
        g_byte_array_set_size(c->head, 0);
        g_array_set_size(c->iov, 1); /* the head's, set once it is made */
        switch (m.type) {
        case DP_MSG_LOOKUP:
            handle_lookup(c, &m);
            break;
        case DP_MSG_PUBLISH:
            handle_publish(c, &m);
            break;
        case DP_MSG_STATS: {
            g_autofree char *json = dp_stats_json(d);

            dp_encode_stats_reply(c->head, m.id, json, strlen(json));
            break;
        }
        default:
            g_set_error(&error, DP_ERROR, DP_ERROR_PROTOCOL,
                        "%s is not a resolver request",
                        dp_msg_type_name(m.type));
            goto bad;
        }
        if (!send_reply(c, m.type == DP_MSG_LOOKUP ? m.count : 0)) {
            break;
        }
        continue;
bad:
        dp_stat_add(d, bad_frames, 1);
        g_warning("resolver client %u: %s; closing", c->serial,
                  error->message);
        dp_send_error(c->fd, 0, error->code, error->message);
        break;
    }
    pipe_close(c);
    /* A client that closed has dropped what it did not read. */
    if (!wait_read(c)) {
        g_warning("resolver client %u left a reply unread; its buffers are "
                  "not freed", c->serial);
        close(c->fd);
        return NULL;
    }
    close(c->fd);
    release_claims(c);
    client_free(c);
    return NULL;
}

static gpointer
accept_loop(gpointer data)
{
    DpDaemon *d = ((gpointer *)data)[0];
    int lfd = GPOINTER_TO_INT(((gpointer *)data)[1]);
    guint serial = 0;

    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        Client *c;

        if (fd < 0) {
            if (errno != EINTR && errno != ECONNABORTED) {
                g_warning("cannot accept resolver client: %s",
                          g_strerror(errno));
                g_usleep(100000);
            }
            continue;
        }
        c = g_new0(Client, 1);
        c->d = d;
        c->fd = fd;
        c->serial = ++serial;
        c->claimed = g_hash_table_new_full(vc_page_hash_hash, vc_page_hash_equal_func,
                                           g_free, NULL);
        c->fetch = dp_fetch_new(d);
        c->head = g_byte_array_new();
        c->iov = g_array_new(FALSE, FALSE, sizeof(struct iovec));
        if (pipe2(c->pipe_fds, O_CLOEXEC) < 0) {
            c->pipe_fds[0] = c->pipe_fds[1] = -1;
        } else if (fcntl(c->pipe_fds[1], F_SETPIPE_SZ, PIPE_BYTES) < 0) {
            /* More passes, the same bytes. */
            fcntl(c->pipe_fds[1], F_SETPIPE_SZ, PIPE_BYTES_UNPRIVILEGED);
        }
        g_thread_unref(g_thread_new("resolver-client", client_thread, c));
    }
    return NULL;
}

gboolean
dp_resolver_listen(DpDaemon *d, GError **error)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    g_autofree char *dir = g_path_get_dirname(d->resolver_path);
    gpointer *args;
    int fd;

    if (strlen(d->resolver_path) >= sizeof(sa.sun_path)) {
        g_set_error(error, DP_ERROR, DP_ERROR_UNAVAILABLE,
                    "resolver socket path '%s' is too long",
                    d->resolver_path);
        return FALSE;
    }
    g_strlcpy(sa.sun_path, d->resolver_path, sizeof(sa.sun_path));
    if (g_mkdir_with_parents(dir, 0755) < 0) {
        g_set_error(error, DP_ERROR, DP_ERROR_UNAVAILABLE,
                    "cannot create '%s': %s", dir, g_strerror(errno));
        return FALSE;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    /* A socket left by a previous daemon: replace it only if nobody
     * answers on it. */
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        close(fd);
        g_set_error(error, DP_ERROR, DP_ERROR_UNAVAILABLE,
                    "another daemon serves '%s'", d->resolver_path);
        return FALSE;
    }
    unlink(d->resolver_path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        chmod(d->resolver_path, 0660) < 0 || listen(fd, 64) < 0) {
        g_set_error(error, DP_ERROR, DP_ERROR_UNAVAILABLE,
                    "cannot listen on '%s': %s", d->resolver_path,
                    g_strerror(errno));
        close(fd);
        return FALSE;
    }
    args = g_new0(gpointer, 2);
    args[0] = d;
    args[1] = GINT_TO_POINTER(fd);
    g_thread_unref(g_thread_new("resolver-accept", accept_loop, args));
    return TRUE;
}
