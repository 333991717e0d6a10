/*
 * kget-store: the snapshot store of Saline (saline/kget/README.md).
 *
 * One GMainLoop thread serves every connection with non-blocking sockets:
 * the handshake, then the requests of docs/protocols.md ("Kget+
 * protocol") on the store (kget-store.h). Admission control: the sum of
 * the credit granted and not yet spent stays under the window; CREDIT
 * requests wait in a queue served in turn, each getting at most its share
 * of the window, so concurrent senders alternate.
 */
#include <errno.h>
#include <glib-unix.h>
#include <netdb.h>
#include <signal.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kget-proto.h"
#include "kget-store.h"
#include "vc-config.h"
#include "vc-frame.h"
#include "vc-log.h"
#include "vc-notify.h"

#define DEFAULT_CONFIG "/etc/kget/kget-store.conf"
#define GROUP "kget-store"
#define MIN_GRANT (64 * 1024)
/* Stop reading a connection while this much waits to be sent to it. */
#define OUT_HIGH (8 * 1024 * 1024)
#define READ_SIZE (256 * 1024)
#define STOP_TIMEOUT_S 10
#define STATUS_INTERVAL_S 5

static char *arg_config;
static char *arg_dir;
static char *arg_listen;
static char *arg_key_file;
static gint64 arg_window = -1;
static gint arg_keep = -1;
static gboolean arg_debug;

static const GOptionEntry options[] = {
    {"config", 'c', 0, G_OPTION_ARG_FILENAME, &arg_config,
     "Configuration file (default " DEFAULT_CONFIG ", if present)", "FILE"},
    {"dir", 'd', 0, G_OPTION_ARG_FILENAME, &arg_dir,
     "Store directory (default /var/lib/kget)", "DIR"},
    {"listen", 'l', 0, G_OPTION_ARG_STRING, &arg_listen,
     "Address to serve on (default 0.0.0.0:7410)", "IP[:PORT]"},
    {"key-file", 'k', 0, G_OPTION_ARG_FILENAME, &arg_key_file,
     "Site key, >= 16 bytes (default /etc/kget/site.key)", "FILE"},
    {"window", 'w', 0, G_OPTION_ARG_INT64, &arg_window,
     "Ingest window: chunk bytes granted and not yet received "
     "(default 8388608)", "BYTES"},
    {"keep", 0, 0, G_OPTION_ARG_INT, &arg_keep,
     "Snapshots of a group gc keeps by default (default 3)", "K"},
    {"debug", 0, 0, G_OPTION_ARG_NONE, &arg_debug, "Debug messages", NULL},
    {NULL},
};

static const VcConfigKey config_keys[] = {
    {GROUP, "dir", VC_CONFIG_STRING, "/var/lib/kget", 0, 0},
    {GROUP, "listen", VC_CONFIG_STRING, "0.0.0.0", 0, 0},
    {GROUP, "key-file", VC_CONFIG_STRING, "/etc/kget/site.key", 0, 0},
    {GROUP, "window", VC_CONFIG_INT, "8388608", MIN_GRANT, 1 << 30},
    {GROUP, "keep", VC_CONFIG_INT, "3", 1, KGET_MAX_KEEP},
};

typedef struct Conn Conn;

typedef struct {
    KgetStore *store;
    GBytes *key;
    char *dir;
    char *listen;
    guint64 window;
    guint64 outstanding; /* granted, not yet spent */
    guint keep;
    GQueue waiters; /* Conn *, each with one CREDIT pending */
    GList *conns;
    int listen_fd;
    guint listen_src;
    gboolean stopping;
    GMainLoop *loop;
    guint8 *get_buf; /* KGET_MAX_BATCH chunks, for GET replies */
    /* Pending snapshot -> when an item was last put to it: a snapshot
     * sent by several short-lived senders (one per VM, then the seal)
     * is not garbage between two of them. */
    GHashTable *recent;
} Daemon;

/* How long a pending snapshot with no sender is kept from gc. */
#define PENDING_GRACE_US (G_USEC_PER_SEC * 600)

typedef enum {
    CONN_HELLO,
    CONN_AUTH,
    CONN_READY,
} ConnState;

struct Conn {
    Daemon *d;
    int fd;
    char *peer;
    guint src;
    GIOCondition cond;
    guint resume_src;
    ConnState state;
    guint8 client_nonce[KGET_NONCE_LEN];
    guint8 server_nonce[KGET_NONCE_LEN];
    VcFrameReader *reader;
    GByteArray *out;
    gsize out_off;
    gboolean closing; /* close once out is sent */
    guint64 credit;   /* granted, not yet spent */
    gboolean waiting; /* a CREDIT is queued */
    guint64 want;
    guint32 want_id;
    gboolean sent_data;
    GHashTable *touched; /* snapshot names it put items to */
    /* The open item. */
    char *item_snap;
    char *item_name;
    guint64 item_size;
    GByteArray *item_blocks;
    /* The block list GET_ITEM read last. */
    char *cache_key;
    VcPageHash *cache_blocks;
    guint64 cache_n;
    guint64 cache_size;
};

static void conn_update(Conn *c);
static void conn_process(Conn *c);

/* Connections */

static void
cache_clear(Conn *c)
{
    g_clear_pointer(&c->cache_key, g_free);
    g_clear_pointer(&c->cache_blocks, g_free);
}

static void
item_clear(Conn *c)
{
    g_clear_pointer(&c->item_snap, g_free);
    g_clear_pointer(&c->item_name, g_free);
    g_clear_pointer(&c->item_blocks, g_byte_array_unref);
}

static void
conn_free(Conn *c)
{
    Daemon *d = c->d;

    g_debug("%s: closed", c->peer);
    if (c->src) {
        g_source_remove(c->src);
    }
    if (c->resume_src) {
        g_source_remove(c->resume_src);
    }
    g_queue_remove(&d->waiters, c);
    /* Credit not spent goes back to the window. */
    d->outstanding -= c->credit;
    d->conns = g_list_remove(d->conns, c);
    close(c->fd);
    vc_frame_reader_free(c->reader);
    g_byte_array_unref(c->out);
    g_hash_table_unref(c->touched);
    item_clear(c);
    cache_clear(c);
    g_free(c->peer);
    g_free(c);
    if (d->stopping && !d->conns) {
        g_main_loop_quit(d->loop);
    }
}

static void
send_error(Conn *c, guint32 id, const GError *error)
{
    guint32 code = KGET_ERROR_UNAVAILABLE;

    if (error->domain == KGET_ERROR && error->code >= KGET_ERROR_PROTOCOL &&
        error->code <= KGET_ERROR_LAST_WIRE) {
        code = (guint32)error->code;
    }
    kget_encode_error(c->out, id, code, error->message);
    /* The first three codes mean the stream or the peer is not to be
     * trusted any more. */
    if (code <= KGET_ERROR_AUTH) {
        g_message("%s: %s", c->peer, error->message);
        c->closing = TRUE;
    } else {
        g_debug("%s: %s", c->peer, error->message);
    }
}

static void
fail(Conn *c, guint32 id, gint code, const char *message)
{
    g_autoptr(GError) error = g_error_new_literal(KGET_ERROR, code, message);

    send_error(c, id, error);
}

static gboolean
on_resume(gpointer data)
{
    Conn *c = data;

    c->resume_src = 0;
    conn_process(c);
    return G_SOURCE_REMOVE;
}

/* Admission control */

static void
grant_run(Daemon *d)
{
    while (!g_queue_is_empty(&d->waiters)) {
        Conn *c = g_queue_peek_head(&d->waiters);
        guint64 share = MAX(d->window / g_queue_get_length(&d->waiters),
                            (guint64)MIN_GRANT);
        guint64 free = d->outstanding < d->window
                           ? d->window - d->outstanding
                           : 0;
        guint64 grant = MIN(MIN(c->want, share), free);

        if (grant < MIN(c->want, (guint64)MIN_GRANT)) {
            return; /* wait for senders to spend theirs */
        }
        g_queue_pop_head(&d->waiters);
        c->credit += grant;
        d->outstanding += grant;
        c->waiting = FALSE;
        g_debug("%s: granted %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
                " bytes; %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
                " outstanding, %u waiting",
                c->peer, grant, c->want, d->outstanding, d->window,
                g_queue_get_length(&d->waiters));
        kget_encode_credit(c->out, KGET_MSG_GRANT, c->want_id, grant);
        if (!c->resume_src) {
            c->resume_src = g_idle_add(on_resume, c);
        }
        conn_update(c);
    }
}

/* Requests */

static void
handle_hello(Conn *c, const KgetMsg *m)
{
    gsize key_len;
    const guint8 *key = g_bytes_get_data(c->d->key, &key_len);
    guint8 proof[KGET_MAC_LEN];

    if (m->type != KGET_MSG_HELLO) {
        fail(c, m->id, KGET_ERROR_PROTOCOL, "expected HELLO");
        return;
    }
    if (getrandom(c->server_nonce, KGET_NONCE_LEN, 0) != KGET_NONCE_LEN) {
        fail(c, m->id, KGET_ERROR_UNAVAILABLE, "cannot get random bytes");
        c->closing = TRUE;
        return;
    }
    memcpy(c->client_nonce, m->nonce, KGET_NONCE_LEN);
    kget_auth_proof(key, key_len, TRUE, c->client_nonce, c->server_nonce,
                    proof);
    kget_encode_hello_reply(c->out, m->id, c->server_nonce, proof);
    c->state = CONN_AUTH;
}

static void
handle_auth(Conn *c, const KgetMsg *m)
{
    gsize key_len;
    const guint8 *key = g_bytes_get_data(c->d->key, &key_len);
    guint8 proof[KGET_MAC_LEN];

    if (m->type != KGET_MSG_AUTH) {
        fail(c, m->id, KGET_ERROR_PROTOCOL, "expected AUTH");
        return;
    }
    kget_auth_proof(key, key_len, FALSE, c->client_nonce, c->server_nonce,
                    proof);
    if (!kget_auth_equal(proof, m->mac)) {
        fail(c, m->id, KGET_ERROR_AUTH, "client failed to prove the site key");
        return;
    }
    kget_encode_empty(c->out, KGET_REPLY(KGET_MSG_AUTH), m->id);
    c->state = CONN_READY;
    g_debug("%s: authenticated", c->peer);
}

static void
handle_have(Conn *c, const KgetMsg *m)
{
    guint8 bitmap[KGET_MAX_BATCH / 8] = {0};

    c->sent_data = TRUE;
    for (guint32 i = 0; i < m->count; i++) {
        if (!kget_store_has(c->d->store, &m->hashes[i])) {
            bitmap[i / 8] |= (guint8)(1u << (i % 8));
        }
    }
    kget_encode_have_reply(c->out, m->id, m->count, bitmap);
}

static void
handle_put(Conn *c, const KgetMsg *m)
{
    g_autofree KgetChunk *chunks = g_new(KgetChunk, m->count);
    g_autoptr(GError) error = NULL;
    guint64 total = 0, new_bytes;
    guint n_new;

    kget_msg_chunks(m, chunks);
    for (guint32 i = 0; i < m->count; i++) {
        total += chunks[i].len;
    }
    if (total > c->credit) {
        g_autofree char *msg = g_strdup_printf(
            "PUT of %" G_GUINT64_FORMAT " bytes exceeds the credit of %" G_GUINT64_FORMAT,
            total, c->credit);

        fail(c, m->id, KGET_ERROR_LIMIT, msg);
        c->closing = TRUE;
        return;
    }
    c->credit -= total;
    c->d->outstanding -= total;
    c->sent_data = TRUE;
    if (!kget_store_put(c->d->store, chunks, m->count, &n_new, &new_bytes,
                        &error)) {
        send_error(c, m->id, error);
    } else {
        kget_encode_counters(c->out, KGET_REPLY(KGET_MSG_PUT), m->id, n_new,
                             new_bytes, 0, 0);
    }
    grant_run(c->d);
}

static void
handle_item_begin(Conn *c, const KgetMsg *m)
{
    if (c->item_snap) {
        fail(c, m->id, KGET_ERROR_REFUSED, "an item is already open");
        return;
    }
    c->item_snap = g_strdup(m->snapshot);
    c->item_name = g_strdup(m->item);
    c->item_size = m->size;
    c->item_blocks = g_byte_array_new();
    g_hash_table_add(c->touched, g_strdup(m->snapshot));
    kget_encode_empty(c->out, KGET_REPLY(KGET_MSG_ITEM_BEGIN), m->id);
}

static void
handle_item_blocks(Conn *c, const KgetMsg *m)
{
    guint64 have, n_blocks;

    if (!c->item_snap) {
        fail(c, m->id, KGET_ERROR_REFUSED, "no item is open");
        return;
    }
    have = c->item_blocks->len / VC_PAGE_HASH_LEN;
    n_blocks = (c->item_size + VC_PAGE_SIZE - 1) / VC_PAGE_SIZE;
    if (m->first != have || have + m->count > n_blocks) {
        g_autofree char *msg = g_strdup_printf(
            "blocks %" G_GUINT64_FORMAT "..%" G_GUINT64_FORMAT
            " do not follow the %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT,
            m->first, m->first + m->count, have, n_blocks);

        item_clear(c);
        fail(c, m->id, KGET_ERROR_REFUSED, msg);
        return;
    }
    g_byte_array_append(c->item_blocks, (const guint8 *)m->hashes,
                        m->count * VC_PAGE_HASH_LEN);
    kget_encode_empty(c->out, KGET_REPLY(KGET_MSG_ITEM_BLOCKS), m->id);
}

static void
handle_item_end(Conn *c, const KgetMsg *m)
{
    g_autoptr(GError) error = NULL;
    guint64 new_bytes, stored_bytes;

    if (!c->item_snap) {
        fail(c, m->id, KGET_ERROR_REFUSED, "no item is open");
        return;
    }
    if (!kget_store_item_commit(c->d->store, c->item_snap, c->item_name,
                                c->item_size,
                                (const VcPageHash *)c->item_blocks->data,
                                c->item_blocks->len / VC_PAGE_HASH_LEN,
                                &new_bytes, &stored_bytes, &error)) {
        g_prefix_error(&error, "item '%s' of '%s': ", c->item_name,
                       c->item_snap);
        send_error(c, m->id, error);
    } else {
        g_debug("%s: stored item '%s' of '%s': %" G_GUINT64_FORMAT
                " bytes, %" G_GUINT64_FORMAT " new",
                c->peer, c->item_name, c->item_snap, c->item_size, new_bytes);
        kget_encode_counters(c->out, KGET_REPLY(KGET_MSG_ITEM_END), m->id,
                             new_bytes, stored_bytes, 0, 0);
        g_hash_table_insert(c->d->recent, g_strdup(c->item_snap),
                            g_memdup2(&(gint64){g_get_monotonic_time()},
                                      sizeof(gint64)));
    }
    item_clear(c);
}

static void
caches_clear(Daemon *d)
{
    for (GList *l = d->conns; l; l = l->next) {
        cache_clear(l->data);
    }
}

static void
handle_seal(Conn *c, const KgetMsg *m)
{
    g_autoptr(GError) error = NULL;
    g_auto(GStrv) items = kget_msg_seal_items(m);

    if (!kget_store_seal(c->d->store, m->snapshot, (const char *const *)items,
                         m->count, m->meta, m->meta_len, &error)) {
        send_error(c, m->id, error);
        return;
    }
    g_message("%s: sealed '%s' (%u items)", c->peer, m->snapshot, m->count);
    kget_encode_empty(c->out, KGET_REPLY(KGET_MSG_SEAL), m->id);
}

static void
handle_list(Conn *c, const KgetMsg *m)
{
    g_autofree KgetListEntry *entries = g_new(KgetListEntry, KGET_MAX_LIST);
    guint64 chunks, bytes;
    guint total, n;

    n = kget_store_list(c->d->store, m->group, m->pending, entries,
                        KGET_MAX_LIST, &total);
    kget_store_stats(c->d->store, &chunks, &bytes);
    kget_encode_list_reply(c->out, m->id, chunks, bytes, total > n, entries,
                           n);
}

static void
handle_get_item(Conn *c, const KgetMsg *m)
{
    g_autofree char *key = g_strconcat(m->snapshot, " ", m->item, NULL);
    g_autoptr(GError) error = NULL;
    guint32 count;

    if (!c->cache_key || !g_str_equal(c->cache_key, key)) {
        cache_clear(c);
        if (!kget_store_item_read(c->d->store, m->snapshot, m->item,
                                  &c->cache_size, &c->cache_blocks,
                                  &c->cache_n, &error)) {
            send_error(c, m->id, error);
            return;
        }
        c->cache_key = g_steal_pointer(&key);
    }
    if (m->first > c->cache_n) {
        fail(c, m->id, KGET_ERROR_REFUSED, "first block past the item's end");
        return;
    }
    count = (guint32)MIN((guint64)m->count, c->cache_n - m->first);
    kget_encode_get_item_reply(c->out, m->id, c->cache_size, m->first,
                               c->cache_blocks + m->first, count);
}

static void
handle_get(Conn *c, const KgetMsg *m)
{
    KgetChunk chunks[KGET_MAX_BATCH];
    static const VcPageHash zero;

    for (guint32 i = 0; i < m->count; i++) {
        g_autoptr(GError) error = NULL;
        guint8 *buf = c->d->get_buf + (gsize)i * KGET_CHUNK_MAX;

        chunks[i] = (KgetChunk){NULL, buf, 0};
        if (vc_page_hash_equal(&m->hashes[i], &zero)) {
            fail(c, m->id, KGET_ERROR_REFUSED, "GET of the zero hash");
            return;
        }
        if (!kget_store_get(c->d->store, &m->hashes[i], buf, &chunks[i].len,
                            &error)) {
            if (g_error_matches(error, KGET_ERROR, KGET_ERROR_NOT_FOUND)) {
                chunks[i].len = 0;
                continue;
            }
            g_message("%s", error->message);
            send_error(c, m->id, error);
            return;
        }
    }
    kget_encode_get_reply(c->out, m->id, chunks, m->count);
}

static void
handle_verify(Conn *c, const KgetMsg *m)
{
    g_autoptr(GError) error = NULL;
    KgetVerifyResult r;

    if (!kget_store_verify(c->d->store, m->snapshot[0] ? m->snapshot : NULL,
                           &r, &error)) {
        send_error(c, m->id, error);
        return;
    }
    if (r.first_problem) {
        g_message("verify %s: %" G_GUINT64_FORMAT " corrupt, %" G_GUINT64_FORMAT
                  " missing; first: %s",
                  m->snapshot[0] ? m->snapshot : "(all)", r.corrupt, r.missing,
                  r.first_problem);
    }
    kget_encode_counters(c->out, KGET_REPLY(KGET_MSG_VERIFY), m->id, r.checked,
                         r.corrupt, r.missing, 0);
    kget_verify_result_clear(&r);
}

static void
handle_gc(Conn *c, const KgetMsg *m)
{
    g_autoptr(GHashTable) busy = g_hash_table_new(g_str_hash, g_str_equal);
    g_autoptr(GError) error = NULL;
    gboolean keep_fresh = FALSE;
    KgetGcResult r;
    guint keep = m->keep ? m->keep : c->d->keep;

    GHashTableIter rit;
    gpointer rname, rtime;

    /* A snapshot being sent, or sent a moment ago and not sealed yet. */
    g_hash_table_iter_init(&rit, c->d->recent);
    while (g_hash_table_iter_next(&rit, &rname, &rtime)) {
        if (g_get_monotonic_time() - *(gint64 *)rtime < PENDING_GRACE_US) {
            g_hash_table_add(busy, rname);
        } else {
            g_hash_table_iter_remove(&rit);
        }
    }
    /* What other senders are putting is not garbage yet. */
    for (GList *l = c->d->conns; l; l = l->next) {
        Conn *other = l->data;
        GHashTableIter it;
        gpointer name;

        if (other == c) {
            continue;
        }
        keep_fresh = keep_fresh || other->sent_data;
        g_hash_table_iter_init(&it, other->touched);
        while (g_hash_table_iter_next(&it, &name, NULL)) {
            g_hash_table_add(busy, name);
        }
    }
    caches_clear(c->d);
    if (!kget_store_gc(c->d->store, keep, busy, keep_fresh, &r, &error)) {
        send_error(c, m->id, error);
        return;
    }
    g_message("gc (keep %u): %" G_GUINT64_FORMAT " snapshots, %" G_GUINT64_FORMAT
              " items, %" G_GUINT64_FORMAT " chunks (%" G_GUINT64_FORMAT
              " bytes) removed",
              keep, r.snapshots, r.items, r.chunks, r.bytes);
    kget_encode_counters(c->out, KGET_REPLY(KGET_MSG_GC), m->id, r.snapshots,
                         r.items, r.chunks, r.bytes);
}

static void
handle_rm(Conn *c, const KgetMsg *m)
{
    g_autoptr(GError) error = NULL;

    caches_clear(c->d);
    if (!kget_store_rm(c->d->store, m->snapshot, &error)) {
        send_error(c, m->id, error);
        return;
    }
    g_message("%s: removed '%s'", c->peer, m->snapshot);
    kget_encode_empty(c->out, KGET_REPLY(KGET_MSG_RM), m->id);
}

static void
handle(Conn *c, const KgetMsg *m)
{
    if (c->state == CONN_HELLO) {
        handle_hello(c, m);
        return;
    }
    if (c->state == CONN_AUTH) {
        handle_auth(c, m);
        return;
    }
    switch (m->type) {
    case KGET_MSG_HAVE:
        handle_have(c, m);
        break;
    case KGET_MSG_CREDIT:
        c->waiting = TRUE;
        c->want = m->bytes;
        c->want_id = m->id;
        g_queue_push_tail(&c->d->waiters, c);
        grant_run(c->d);
        break;
    case KGET_MSG_PUT:
        handle_put(c, m);
        break;
    case KGET_MSG_ITEM_BEGIN:
        handle_item_begin(c, m);
        break;
    case KGET_MSG_ITEM_BLOCKS:
        handle_item_blocks(c, m);
        break;
    case KGET_MSG_ITEM_END:
        handle_item_end(c, m);
        break;
    case KGET_MSG_SEAL:
        handle_seal(c, m);
        break;
    case KGET_MSG_LIST:
        handle_list(c, m);
        break;
    case KGET_MSG_GET_ITEM:
        handle_get_item(c, m);
        break;
    case KGET_MSG_GET:
        handle_get(c, m);
        break;
    case KGET_MSG_VERIFY:
        handle_verify(c, m);
        break;
    case KGET_MSG_GC:
        handle_gc(c, m);
        break;
    case KGET_MSG_RM:
        handle_rm(c, m);
        break;
    default:
        fail(c, m->id, KGET_ERROR_PROTOCOL, "unexpected message");
        break;
    }
}

/* Handles the frames already received, in order, until one must wait
 * (a CREDIT), the output backs up, or the connection is to be closed. */
static void
conn_process(Conn *c)
{
    while (!c->waiting && !c->closing && c->out->len - c->out_off < OUT_HIGH) {
        g_autoptr(GBytes) payload = NULL;
        g_autoptr(GError) error = NULL;
        KgetMsg *m;

        if (!vc_frame_reader_next(c->reader, &payload, &error)) {
            fail(c, 0, KGET_ERROR_LIMIT, error->message);
            c->closing = TRUE;
            break;
        }
        if (!payload) {
            break;
        }
        m = g_new(KgetMsg, 1);
        if (!kget_msg_decode(g_bytes_get_data(payload, NULL),
                             g_bytes_get_size(payload), m, &error)) {
            send_error(c, m->id, error);
            c->closing = TRUE;
        } else {
            handle(c, m);
        }
        g_free(m);
    }
    conn_update(c);
}

static gboolean
on_io(gint fd, GIOCondition cond, gpointer data)
{
    Conn *c = data;

    if (cond & G_IO_OUT) {
        ssize_t n = send(fd, c->out->data + c->out_off,
                         c->out->len - c->out_off, MSG_NOSIGNAL);

        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            g_debug("%s: cannot send: %s", c->peer, g_strerror(errno));
            c->src = 0;
            conn_free(c);
            return G_SOURCE_REMOVE;
        }
        if (n > 0) {
            c->out_off += (gsize)n;
        }
        if (c->out_off == c->out->len) {
            g_byte_array_set_size(c->out, 0);
            c->out_off = 0;
            if (c->closing) {
                c->src = 0;
                conn_free(c);
                return G_SOURCE_REMOVE;
            }
        }
    }
    if (cond & (G_IO_IN | G_IO_HUP | G_IO_ERR)) {
        g_autofree guint8 *buf = g_malloc(READ_SIZE);
        ssize_t n = recv(fd, buf, READ_SIZE, 0);

        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            c->src = 0;
            conn_free(c);
            return G_SOURCE_REMOVE;
        }
        if (n > 0) {
            vc_frame_reader_feed(c->reader, buf, (gsize)n);
        }
    }
    /* conn_update() adds the source the connection needs next. */
    c->src = 0;
    conn_process(c);
    return G_SOURCE_REMOVE;
}

static void
conn_update(Conn *c)
{
    GIOCondition want = 0;
    gsize backlog = c->out->len - c->out_off;

    if (backlog > 0) {
        want |= G_IO_OUT;
    }
    /* Read only what can be handled now: a waiting CREDIT holds the
     * requests after it, and so does a full output. */
    if (!c->waiting && !c->closing && backlog < OUT_HIGH &&
        vc_frame_reader_pending(c->reader) < KGET_MAX_PAYLOAD + READ_SIZE) {
        want |= G_IO_IN;
    }
    if (c->closing && backlog == 0) {
        /* Nothing left to say: close from the main loop. */
        want = G_IO_OUT;
    }
    if (c->src && c->cond == want) {
        return;
    }
    if (c->src) {
        g_source_remove(c->src);
        c->src = 0;
    }
    c->cond = want;
    if (want) {
        c->src = g_unix_fd_add(c->fd, want, on_io, c);
    }
}

static gboolean
on_accept(gint fd, GIOCondition cond, gpointer data)
{
    Daemon *d = data;
    struct sockaddr_storage sa;
    socklen_t len = sizeof(sa);
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    Conn *c;
    int cfd = accept4(fd, (struct sockaddr *)&sa, &len,
                      SOCK_CLOEXEC | SOCK_NONBLOCK);

    if (cfd < 0) {
        if (errno != EAGAIN && errno != EINTR) {
            g_warning("cannot accept: %s", g_strerror(errno));
        }
        return G_SOURCE_CONTINUE;
    }
    c = g_new0(Conn, 1);
    c->d = d;
    c->fd = cfd;
    if (getnameinfo((struct sockaddr *)&sa, len, host, sizeof(host), serv,
                    sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
        c->peer = g_strdup_printf("%s:%s", host, serv);
    } else {
        c->peer = g_strdup("?");
    }
    c->reader = vc_frame_reader_new(KGET_MAX_PAYLOAD);
    c->out = g_byte_array_new();
    c->touched = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    d->conns = g_list_prepend(d->conns, c);
    g_debug("%s: connected", c->peer);
    conn_update(c);
    return G_SOURCE_CONTINUE;
}

static gboolean
listen_on(Daemon *d, GError **error)
{
    g_autofree char *host = NULL;
    g_autofree char *port_str = NULL;
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICHOST};
    struct addrinfo *ai = NULL;
    guint16 port;
    int one = 1, rc;

    if (!kget_parse_address(d->listen, &host, &port, error)) {
        return FALSE;
    }
    port_str = g_strdup_printf("%u", port);
    rc = getaddrinfo(host, port_str, &hints, &ai);
    if (rc != 0) {
        g_set_error(error, KGET_ERROR, KGET_ERROR_IO,
                    "cannot listen on '%s': %s", d->listen, gai_strerror(rc));
        return FALSE;
    }
    d->listen_fd = socket(ai->ai_family,
                          SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (d->listen_fd < 0 ||
        setsockopt(d->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one,
                   sizeof(one)) < 0 ||
        bind(d->listen_fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
        listen(d->listen_fd, 64) < 0) {
        g_set_error(error, KGET_ERROR, KGET_ERROR_IO,
                    "cannot listen on '%s': %s", d->listen, g_strerror(errno));
        freeaddrinfo(ai);
        return FALSE;
    }
    freeaddrinfo(ai);
    d->listen_src = g_unix_fd_add(d->listen_fd, G_IO_IN, on_accept, d);
    return TRUE;
}

/* Stop */

static gboolean
on_stop_timeout(gpointer data)
{
    Daemon *d = data;

    g_message("stopping with %u connections still open",
              g_list_length(d->conns));
    g_main_loop_quit(d->loop);
    return G_SOURCE_REMOVE;
}

static gboolean
on_signal(gpointer data)
{
    Daemon *d = data;

    if (d->stopping) {
        return G_SOURCE_CONTINUE;
    }
    g_message("stopping after the requests in flight");
    vc_notify_stopping("stopping after the requests in flight");
    d->stopping = TRUE;
    g_source_remove(d->listen_src);
    close(d->listen_fd);
    /* Requests already received are answered; a CREDIT that waits is
     * refused rather than waited for. */
    while (!g_queue_is_empty(&d->waiters)) {
        Conn *c = g_queue_pop_head(&d->waiters);

        c->waiting = FALSE;
        fail(c, c->want_id, KGET_ERROR_UNAVAILABLE, "the store is stopping");
    }
    for (GList *l = d->conns, *next; l; l = next) {
        Conn *c = l->data;

        next = l->next;
        conn_process(c);
        c->closing = TRUE;
        conn_update(c);
    }
    if (!d->conns) {
        g_main_loop_quit(d->loop);
    } else {
        g_timeout_add_seconds(STOP_TIMEOUT_S, on_stop_timeout, d);
    }
    return G_SOURCE_CONTINUE;
}

/* The service manager's status line (systemctl status). */
static gboolean
on_status(gpointer data)
{
    Daemon *d = data;
    guint64 chunks, bytes;

    kget_store_stats(d->store, &chunks, &bytes);
    vc_notify_status("serving '%s' on %s: %u connections, %" G_GUINT64_FORMAT
                     " chunks, %" G_GUINT64_FORMAT " bytes stored",
                     d->dir, d->listen, g_list_length(d->conns), chunks, bytes);
    return G_SOURCE_CONTINUE;
}

/* Options win over the configuration file, which wins over defaults. */
static gboolean
configure(Daemon *d, GError **error)
{
    g_autoptr(VcConfig) cfg =
        vc_config_new(config_keys, G_N_ELEMENTS(config_keys));
    const char *key_file;

    if (!vc_config_load_file(cfg, arg_config ? arg_config : DEFAULT_CONFIG,
                             arg_config == NULL, error)) {
        return FALSE;
    }
    d->dir = g_strdup(arg_dir ? arg_dir : vc_config_get_string(cfg, GROUP, "dir"));
    d->listen = g_strdup(arg_listen ? arg_listen
                                    : vc_config_get_string(cfg, GROUP, "listen"));
    key_file = arg_key_file ? arg_key_file
                            : vc_config_get_string(cfg, GROUP, "key-file");
    d->window = arg_window >= 0 ? (guint64)arg_window
                                : (guint64)vc_config_get_int(cfg, GROUP, "window");
    d->keep = arg_keep >= 0 ? (guint)arg_keep
                            : (guint)vc_config_get_int(cfg, GROUP, "keep");
    if (d->window < MIN_GRANT || d->window > (1u << 30)) {
        g_set_error(error, KGET_ERROR, KGET_ERROR_LIMIT,
                    "window of %" G_GUINT64_FORMAT
                    " bytes is not in 65536..1073741824",
                    d->window);
        return FALSE;
    }
    if (d->keep < 1 || d->keep > KGET_MAX_KEEP) {
        g_set_error(error, KGET_ERROR, KGET_ERROR_LIMIT,
                    "keep %u is not in 1..%u", d->keep, KGET_MAX_KEEP);
        return FALSE;
    }
    return kget_key_load(key_file, &d->key, error);
}

int
main(int argc, char **argv)
{
    g_autoptr(GOptionContext) ctx =
        g_option_context_new("- the Kget+ snapshot store of Saline");
    g_autoptr(GError) error = NULL;
    Daemon *d = g_new0(Daemon, 1);

    g_option_context_add_main_entries(ctx, options, NULL);
    g_option_context_set_description(
        ctx, "Configuration: group [kget-store] with keys dir, listen,\n"
             "key-file, window, keep; options override the file.\n"
             "Protocol: docs/protocols.md, \"Kget+ protocol\". SIGTERM stops\n"
             "the store after the requests in flight.\n");
    if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
        g_printerr("kget-store: %s\n", error->message);
        return 2;
    }
    if (argc > 1) {
        g_printerr("kget-store: unexpected argument '%s'\n", argv[1]);
        return 2;
    }
    vc_log_init("kget-store", arg_debug);
    signal(SIGPIPE, SIG_IGN);
    if (!configure(d, &error)) {
        g_printerr("kget-store: %s\n", error->message);
        return 2;
    }
    d->store = kget_store_open(d->dir, NULL, &error);
    if (!d->store || !listen_on(d, &error)) {
        g_printerr("kget-store: %s\n", error->message);
        return 1;
    }
    d->get_buf = g_malloc((gsize)KGET_MAX_BATCH * KGET_CHUNK_MAX);
    d->recent = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    g_queue_init(&d->waiters);
    d->loop = g_main_loop_new(NULL, FALSE);
    g_unix_signal_add(SIGTERM, on_signal, d);
    g_unix_signal_add(SIGINT, on_signal, d);
    g_message("serving '%s' on %s (window %" G_GUINT64_FORMAT " bytes)",
              d->dir, d->listen, d->window);
    /* The socket listens and the store is open: clients are served. */
    vc_notify_ready("serving '%s' on %s", d->dir, d->listen);
    if (vc_notify_enabled()) {
        g_timeout_add_seconds(STATUS_INTERVAL_S, on_status, d);
    }
    g_main_loop_run(d->loop);

    while (d->conns) {
        conn_free(d->conns->data);
    }
    if (!kget_store_sync(d->store, &error)) {
        g_printerr("kget-store: %s\n", error->message);
    }
    kget_store_free(d->store);
    g_main_loop_unref(d->loop);
    g_bytes_unref(d->key);
    g_free(d->get_buf);
    g_clear_pointer(&d->recent, g_hash_table_unref);
    g_free(d->dir);
    g_free(d->listen);
    g_free(d);
    g_message("stopped");
    return 0;
}
