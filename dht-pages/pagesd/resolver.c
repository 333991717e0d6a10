/* The resolver socket: LOOKUP, PUBLISH and STATS for local clients. */
#include "pagesd.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "vc-frame.h"

/* Hashes a client was told are missing and has not published yet: it is
 * fetching them, so it must never wait on its own reservation. */
#define CLAIMED_MAX (1 << 18)

typedef struct {
    DpDaemon *d;
    int fd;
    guint serial;
    GHashTable *claimed; /* VcPageHash * (owned) */
} Client;

/* Ask the index owners who holds each unresolved hash. */
static void
query_holders(DpDaemon *d, const VcPageHash *hashes, const guint32 *todo,
              guint n_todo, DpNodeId *holders, guint8 *n_holders)
{
    g_autoptr(GHashTable) groups = dp_node_groups_new();
    GHashTableIter it;
    DpNodeId *owner;
    GArray *idx;

    g_mutex_lock(&d->lock);
    for (guint k = 0; k < n_todo; k++) {
        guint32 i = todo[k];
        const DpNodeId *o = dp_partition_owner_id(d->partition, &hashes[i]);

        if (!o) {
            continue;
        }
        if (dp_node_id_equal(o, &d->self)) {
            n_holders[i] = (guint8)dp_index_lookup(
                d->index, &hashes[i], &holders[(gsize)i * DP_MAX_HOLDERS]);
            continue;
        }
        dp_node_groups_add(groups, o, &i, sizeof(i));
    }
    g_mutex_unlock(&d->lock);

    g_hash_table_iter_init(&it, groups);
    while (g_hash_table_iter_next(&it, (gpointer *)&owner, (gpointer *)&idx)) {
        g_autoptr(GArray) q = g_array_sized_new(FALSE, FALSE,
                                                sizeof(VcPageHash), idx->len);
        g_autoptr(GByteArray) req = g_byte_array_new();
        g_autoptr(GBytes) payload = NULL;
        g_autoptr(GError) error = NULL;
        DpMsg reply;
        guint pos = 0;

        for (guint k = 0; k < idx->len; k++) {
            g_array_append_val(q, hashes[g_array_index(idx, guint32, k)]);
        }
        dp_encode_hashes(req, DP_MSG_INDEX_QUERY, 0,
                         (VcPageHash *)q->data, q->len);
        if (!dp_peer_call(d, owner, req, &reply, &payload, &error) ||
            reply.count != idx->len) {
            g_debug("index query failed: %s",
                    error ? error->message : "wrong count");
            continue;
        }
        for (guint k = 0; k < idx->len; k++) {
            guint32 i = g_array_index(idx, guint32, k);
            guint8 nh = reply.status[k];

            memcpy(&holders[(gsize)i * DP_MAX_HOLDERS], &reply.holders[pos],
                   nh * sizeof(DpNodeId));
            n_holders[i] = nh;
            pos += nh;
        }
    }
}

/* Fetch pages from holders, round by round (first holder, then the
 * next for what is still missing). Pages are verified before use. */
static void
fetch_from_holders(DpDaemon *d, const VcPageHash *hashes, guint32 count,
                   const DpNodeId *holders, const guint8 *n_holders,
                   guint8 *buf, const guint8 **out)
{
    for (guint round = 0; round < DP_MAX_HOLDERS; round++) {
        g_autoptr(GHashTable) groups = dp_node_groups_new();
        GHashTableIter it;
        DpNodeId *holder;
        GArray *idx;

        for (guint32 i = 0; i < count; i++) {
            const DpNodeId *h;

            if (out[i] || round >= n_holders[i]) {
                continue;
            }
            h = &holders[(gsize)i * DP_MAX_HOLDERS + round];
            if (dp_node_id_equal(h, &d->self)) {
                continue; /* we looked locally already: stale entry */
            }
            dp_node_groups_add(groups, h, &i, sizeof(i));
        }
        if (g_hash_table_size(groups) == 0) {
            return;
        }
        g_hash_table_iter_init(&it, groups);
        while (g_hash_table_iter_next(&it, (gpointer *)&holder,
                                      (gpointer *)&idx)) {
            g_autoptr(GArray) q = g_array_sized_new(
                FALSE, FALSE, sizeof(VcPageHash), idx->len);
            g_autoptr(GByteArray) req = g_byte_array_new();
            g_autoptr(GBytes) payload = NULL;
            g_autoptr(GError) error = NULL;
            DpMsg reply;

            for (guint k = 0; k < idx->len; k++) {
                g_array_append_val(q, hashes[g_array_index(idx, guint32, k)]);
            }
            dp_encode_hashes(req, DP_MSG_PAGE_GET, 0, (VcPageHash *)q->data,
                             q->len);
            if (!dp_peer_call(d, holder, req, &reply, &payload, &error) ||
                reply.count != idx->len) {
                g_debug("page fetch failed: %s",
                        error ? error->message : "wrong count");
                continue;
            }
            for (guint k = 0; k < idx->len; k++) {
                guint32 i = g_array_index(idx, guint32, k);
                const guint8 *page = dp_msg_reply_page(&reply, k);
                VcPageHash check;

                if (!page) {
                    continue;
                }
                vc_page_hash(page, &check);
                if (!vc_page_hash_equal(&check, &hashes[i])) {
                    char hex[2 * DP_NODE_ID_LEN + 1];

                    dp_node_id_to_hex(holder, hex);
                    dp_stat_add(d, bad_pages_from_peers, 1);
                    g_warning("peer %s sent a page that does not match its "
                              "hash; dropped", hex);
                    continue;
                }
                memcpy(buf + (gsize)i * VC_PAGE_SIZE, page, VC_PAGE_SIZE);
                out[i] = buf + (gsize)i * VC_PAGE_SIZE;
                dp_stat_add(d, hits_peer, 1);
            }
        }
    }
}

static void
handle_lookup(Client *c, const DpMsg *m, GByteArray *reply)
{
    DpDaemon *d = c->d;
    /* However many reservations it meets, one batch waits at most one
     * hold time in all. */
    gint64 batch_deadline = g_get_monotonic_time() + d->coalesce_us;
    guint32 n = m->count;
    g_autofree guint8 *buf = g_malloc((gsize)n * VC_PAGE_SIZE);
    g_autofree const guint8 **out = g_new0(const guint8 *, n);
    g_autofree DpNodeId *holders = g_new0(DpNodeId, (gsize)n * DP_MAX_HOLDERS);
    g_autofree guint8 *n_holders = g_new0(guint8, n);
    g_autofree guint32 *todo = g_new0(guint32, n);
    guint n_todo = 0;

    dp_stat_add(d, lookups, n);
    for (guint32 i = 0; i < n; i++) {
        gboolean from_ram;
        guint8 *page = buf + (gsize)i * VC_PAGE_SIZE;

        if (dp_local_page(d, &m->hashes[i], page, &from_ram)) {
            out[i] = page;
            if (from_ram) {
                dp_stat_add(d, hits_ram, 1);
            } else {
                dp_stat_add(d, hits_cache, 1);
            }
        } else {
            todo[n_todo++] = i;
        }
    }
    if (n_todo > 0) {
        query_holders(d, m->hashes, todo, n_todo, holders, n_holders);
        fetch_from_holders(d, m->hashes, n, holders, n_holders, buf, out);
    }
    /* Still missing: the first asker fetches it over the WAN and
     * publishes; later askers wait (bounded) for that publish. */
    for (guint32 i = 0; i < n; i++) {
        gint64 deadline;
        guint8 *page = buf + (gsize)i * VC_PAGE_SIZE;
        gboolean found;

        if (out[i]) {
            continue;
        }
        if (dp_coalescer_claim(d->coalescer, &m->hashes[i],
                               g_get_monotonic_time(), &deadline)) {
            if (g_hash_table_size(c->claimed) >= CLAIMED_MAX) {
                g_hash_table_remove_all(c->claimed);
            }
            g_hash_table_add(c->claimed,
                             g_memdup2(&m->hashes[i], sizeof(VcPageHash)));
        } else if (!g_hash_table_contains(c->claimed, &m->hashes[i]) &&
                   dp_coalescer_wait(d->coalescer, &m->hashes[i],
                                     MIN(deadline, batch_deadline))) {
            g_mutex_lock(&d->lock);
            found = dp_store_get(d->store, &m->hashes[i], page);
            g_mutex_unlock(&d->lock);
            if (found) {
                out[i] = page;
                dp_stat_add(d, coalesced_hits, 1);
                continue;
            }
        }
        dp_stat_add(d, misses, 1);
    }
    dp_encode_pages_reply(reply, DP_REPLY(DP_MSG_LOOKUP), m->id, out, n);
}

static void
handle_publish(Client *c, const DpMsg *m, GByteArray *reply)
{
    DpDaemon *d = c->d;
    g_autoptr(GArray) fresh = g_array_new(FALSE, FALSE, sizeof(VcPageHash));
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
            rejected++;
            continue;
        }
        g_mutex_lock(&d->lock);
        added = dp_store_put(d->store, h, page);
        g_mutex_unlock(&d->lock);
        if (added) {
            g_array_append_val(fresh, *h);
        }
        dp_coalescer_published(d->coalescer, h);
        g_hash_table_remove(c->claimed, h);
        stored++;
    }
    dp_stat_add(d, published, stored);
    dp_stat_add(d, publish_rejected, rejected);
    if (fresh->len > 0) {
        dp_announce(d, DP_MSG_INDEX_ADD, (VcPageHash *)fresh->data,
                    fresh->len);
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
    g_string_append_printf(s, ", \"coalesce_waits\": %" G_GUINT64_FORMAT
                              ", \"coalesce_served\": %" G_GUINT64_FORMAT "}",
                           dp_coalescer_waits(d->coalescer),
                           dp_coalescer_served(d->coalescer));
    return g_string_free(s, FALSE);
}

static gpointer
client_thread(gpointer data)
{
    Client *c = data;
    DpDaemon *d = c->d;
    g_autoptr(VcFrameReader) reader = vc_frame_reader_new(DP_MAX_PAYLOAD);
    g_autoptr(GByteArray) reply = g_byte_array_new();
    g_autofree guint8 *in = g_malloc(1 << 16);

    for (;;) {
        g_autoptr(GBytes) payload = NULL;
        g_autoptr(GError) error = NULL;
        DpMsg m;
        ssize_t n;

        if (!vc_frame_reader_next(reader, &payload, &error)) {
            goto bad;
        }
        if (!payload) {
            n = read(c->fd, in, 1 << 16);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                if (vc_frame_reader_pending(reader) > 0) {
                    g_warning("resolver client %u: closed inside a frame",
                              c->serial);
                    dp_stat_add(d, bad_frames, 1);
                }
                break;
            }
            vc_frame_reader_feed(reader, in, n);
            continue;
        }
        if (!dp_msg_decode(g_bytes_get_data(payload, NULL),
                           g_bytes_get_size(payload), &m, &error)) {
            goto bad;
        }
        g_byte_array_set_size(reply, 0);
        switch (m.type) {
        case DP_MSG_LOOKUP:
            handle_lookup(c, &m, reply);
            break;
        case DP_MSG_PUBLISH:
            handle_publish(c, &m, reply);
            break;
        case DP_MSG_STATS: {
            g_autofree char *json = dp_stats_json(d);

            dp_encode_stats_reply(reply, m.id, json, strlen(json));
            break;
        }
        default:
            g_set_error(&error, DP_ERROR, DP_ERROR_PROTOCOL,
                        "%s is not a resolver request",
                        dp_msg_type_name(m.type));
            goto bad;
        }
        if (!dp_write_all(c->fd, reply->data, reply->len, NULL)) {
            break;
        }
        continue;
bad:
        dp_stat_add(d, bad_frames, 1);
        g_warning("resolver client %u: %s; closing", c->serial,
                  error->message);
        g_byte_array_set_size(reply, 0);
        dp_encode_error(reply, 0, error->domain == DP_ERROR ? error->code
                                                            : DP_ERROR_LIMIT,
                        error->message);
        dp_write_all(c->fd, reply->data, reply->len, NULL);
        break;
    }
    close(c->fd);
    g_hash_table_unref(c->claimed);
    g_free(c);
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
