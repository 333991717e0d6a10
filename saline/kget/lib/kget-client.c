#include "kget-client.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vc-error.h"
#include "vc-frame.h"

/* Batches in flight between the caller and the sender thread: one being
 * filled, one being sent. */
#define N_BATCHES 2
/* Replies a pipelined sequence leaves unread at most. */
#define MAX_UNREAD 64

struct KgetClient {
    int fd;
    char *address;
    guint32 next_id;
    guint unread_puts;   /* PUT replies not read yet */
    guint unread_empty;  /* ITEM_BLOCKS replies not read yet */
    KgetItemStats *sink; /* where PUT replies are counted */
    GMutex *sink_lock;
};

typedef struct {
    guint n;
    gboolean last; /* the end marker, no chunks */
    VcPageHash hashes[KGET_MAX_BATCH];
    guint16 lens[KGET_MAX_BATCH];
    guint8 *data; /* KGET_MAX_BATCH x KGET_CHUNK_MAX */
} Batch;

struct KgetItemWriter {
    KgetClient *client;
    char *snapshot;
    char *item;
    guint64 size;        /* KGET_SIZE_UNKNOWN while streaming */
    GArray *blocks;      /* VcPageHash per block */
    GArray *put;         /* gboolean per block: put already */
    guint64 last_len;    /* of the highest block put */
    gboolean short_seen; /* streaming: a block under 4096 came */
    GHashTable *queued;  /* VcPageHash * (owned): chunks sent or queued */
    Batch *filling;
    GAsyncQueue *to_send;
    GAsyncQueue *free;
    GThread *sender;
    GMutex lock; /* the stats and the sender's error */
    KgetItemStats stats;
    GError *error;
    gint failed;
    KgetProgressFunc progress;
    gpointer progress_data;
    guint64 done;
    gboolean finished;
};

static const VcPageHash zero_hash;

static gboolean
is_zero(const guint8 *data, gsize len)
{
    return len == 0 || (data[0] == 0 && memcmp(data, data + 1, len - 1) == 0);
}

/* Wire */

static gboolean
send_frame(KgetClient *c, GByteArray *out, GError **error)
{
    g_autoptr(GError) local = NULL;

    if (!vc_write_all(c->fd, out->data, out->len, &local)) {
        g_set_error(error, KGET_ERROR, KGET_ERROR_IO, "kget-store at '%s': %s",
                    c->address, local->message);
        return FALSE;
    }
    g_byte_array_set_size(out, 0);
    return TRUE;
}

static gboolean
read_msg(KgetClient *c, KgetMsg *m, GBytes **payload, GError **error)
{
    g_autoptr(GError) local = NULL;

    g_clear_pointer(payload, g_bytes_unref);
    if (!vc_frame_read_fd(c->fd, KGET_MAX_PAYLOAD, payload, &local)) {
        g_set_error(error, KGET_ERROR, KGET_ERROR_IO, "kget-store at '%s': %s",
                    c->address,
                    local ? local->message : "connection closed by the store");
        return FALSE;
    }
    if (!kget_msg_decode(g_bytes_get_data(*payload, NULL),
                         g_bytes_get_size(*payload), m, &local)) {
        g_set_error(error, KGET_ERROR, KGET_ERROR_PROTOCOL,
                    "kget-store at '%s': %s", c->address, local->message);
        return FALSE;
    }
    if (m->type == KGET_MSG_ERROR) {
        /* The store's message is the whole story: no prefix. */
        g_set_error_literal(error, KGET_ERROR, (gint)m->error_code,
                            m->error_message);
        return FALSE;
    }
    return TRUE;
}

/* Reads the replies left unread by pipelined requests, then the next
 * one, which must be of type @want. */
static gboolean
read_reply(KgetClient *c, guint8 want, KgetMsg *m, GBytes **payload,
           GError **error)
{
    while (c->unread_puts + c->unread_empty > 0) {
        if (!read_msg(c, m, payload, error)) {
            return FALSE;
        }
        if (m->type == KGET_REPLY(KGET_MSG_PUT) && c->unread_puts > 0) {
            c->unread_puts--;
            if (c->sink) {
                g_mutex_lock(c->sink_lock);
                c->sink->chunks_new += m->n1;
                c->sink->bytes_new += m->n2;
                g_mutex_unlock(c->sink_lock);
            }
        } else if ((m->type == KGET_REPLY(KGET_MSG_ITEM_BLOCKS) ||
                    m->type == KGET_REPLY(KGET_MSG_ITEM_BEGIN)) &&
                   c->unread_empty > 0) {
            c->unread_empty--;
        } else {
            goto unexpected;
        }
    }
    if (want == 0) {
        return TRUE;
    }
    if (!read_msg(c, m, payload, error)) {
        return FALSE;
    }
    if (m->type == want) {
        return TRUE;
    }
unexpected:
    g_set_error(error, KGET_ERROR, KGET_ERROR_PROTOCOL,
                "kget-store at '%s' sent an unexpected %s", c->address,
                kget_msg_type_name(m->type));
    return FALSE;
}

static gboolean
call(KgetClient *c, GByteArray *out, guint8 want, KgetMsg *m,
     GBytes **payload, GError **error)
{
    return send_frame(c, out, error) && read_reply(c, want, m, payload, error);
}

/* Connection */

static int
connect_timeout(const char *host, guint16 port, guint timeout_ms,
                GError **error)
{
    g_autofree char *port_str = g_strdup_printf("%u", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    int rc, err = ECONNREFUSED, fd = -1;

    rc = getaddrinfo(host, port_str, &hints, &ai);
    if (rc != 0) {
        g_set_error(error, KGET_ERROR, KGET_ERROR_UNREACHABLE,
                    "cannot resolve '%s': %s", host, gai_strerror(rc));
        return -1;
    }
    for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
        struct pollfd p;
        socklen_t len = sizeof(err);

        fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    0);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
            err = errno;
            if (err == EINPROGRESS) {
                p = (struct pollfd){.fd = fd, .events = POLLOUT};
                rc = poll(&p, 1, (int)timeout_ms);
                err = rc == 0 ? ETIMEDOUT : rc < 0 ? errno : 0;
                if (err == 0 &&
                    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) {
                    err = errno;
                }
            }
            if (err != 0) {
                close(fd);
                fd = -1;
                continue;
            }
        }
        /* Blocking from now on. */
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    }
    freeaddrinfo(ai);
    if (fd < 0) {
        g_set_error(error, KGET_ERROR, KGET_ERROR_UNREACHABLE,
                    "cannot reach kget-store at '%s:%u': %s", host, port,
                    g_strerror(err));
    }
    return fd;
}

static gboolean
handshake(KgetClient *c, GBytes *key, GError **error)
{
    g_autoptr(GByteArray) out = g_byte_array_new();
    g_autoptr(GBytes) payload = NULL;
    g_autoptr(GError) local = NULL;
    guint8 nonce[KGET_NONCE_LEN], proof[KGET_MAC_LEN];
    gsize key_len;
    const guint8 *k = g_bytes_get_data(key, &key_len);
    KgetMsg m;

    if (getrandom(nonce, sizeof(nonce), 0) != sizeof(nonce)) {
        g_set_error(error, KGET_ERROR, KGET_ERROR_IO,
                    "cannot get random bytes");
        return FALSE;
    }
    kget_encode_hello(out, 0, nonce);
    if (!call(c, out, KGET_REPLY(KGET_MSG_HELLO), &m, &payload, &local)) {
        goto refused;
    }
    kget_auth_proof(k, key_len, TRUE, nonce, m.nonce, proof);
    if (!kget_auth_equal(proof, m.mac)) {
        g_set_error(error, KGET_ERROR, KGET_ERROR_AUTH,
                    "kget-store at '%s' failed to prove the site key",
                    c->address);
        return FALSE;
    }
    kget_auth_proof(k, key_len, FALSE, nonce, m.nonce, proof);
    kget_encode_auth(out, 0, proof);
    if (!call(c, out, KGET_REPLY(KGET_MSG_AUTH), &m, &payload, &local)) {
        goto refused;
    }
    return TRUE;
refused:
    g_set_error(error, KGET_ERROR, KGET_ERROR_AUTH,
                "kget-store at '%s' refused us: %s", c->address,
                local->message);
    return FALSE;
}

KgetClient *
kget_client_connect(const char *address, GBytes *key, guint timeout_ms,
                    GError **error)
{
    g_autoptr(KgetClient) c = g_new0(KgetClient, 1);
    g_autofree char *host = NULL;
    guint16 port;

    c->fd = -1;
    c->address = g_strdup(address);
    if (!kget_parse_address(address, &host, &port, error)) {
        return NULL;
    }
    c->fd = connect_timeout(host, port, timeout_ms, error);
    if (c->fd < 0) {
        return NULL;
    }
    /* A store that stops answering is an error, not a hang: the sender
     * of a VM's state must get back to draining QEMU's stream. */
    {
        struct timeval tv = {.tv_sec = KGET_IO_TIMEOUT_S};

        setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
    if (!handshake(c, key, error)) {
        return NULL;
    }
    return g_steal_pointer(&c);
}

void
kget_client_free(KgetClient *c)
{
    if (!c) {
        return;
    }
    if (c->fd >= 0) {
        close(c->fd);
    }
    g_free(c->address);
    g_free(c);
}

static guint32
next_id(KgetClient *c)
{
    return ++c->next_id;
}

/* Writer: the sender thread */

/* Sends @n chunks of @b (indices @idx) against credit. */
static gboolean
send_chunks(KgetItemWriter *w, Batch *b, const guint *idx, guint n,
            GError **error)
{
    KgetClient *c = w->client;
    g_autoptr(GByteArray) out = g_byte_array_new();
    g_autoptr(GBytes) payload = NULL;
    KgetChunk chunks[KGET_MAX_BATCH];
    guint64 credit = 0, want = 0;
    guint done = 0;
    KgetMsg m;

    for (guint i = 0; i < n; i++) {
        want += b->lens[idx[i]];
    }
    while (done < n) {
        guint k = 0;
        guint64 bytes = 0;

        if (credit < b->lens[idx[done]]) {
            kget_encode_credit(out, KGET_MSG_CREDIT, next_id(c),
                               MIN(want, (guint64)KGET_MAX_CREDIT));
            if (!call(c, out, KGET_MSG_GRANT, &m, &payload, error)) {
                return FALSE;
            }
            credit += m.bytes;
        }
        while (done + k < n && bytes + b->lens[idx[done + k]] <= credit) {
            guint j = idx[done + k];

            chunks[k] = (KgetChunk){&b->hashes[j],
                                    b->data + (gsize)j * KGET_CHUNK_MAX,
                                    b->lens[j]};
            bytes += b->lens[j];
            k++;
        }
        if (k == 0) {
            continue; /* the grant was short of the next chunk: ask more */
        }
        kget_encode_put(out, next_id(c), chunks, k);
        if (!send_frame(c, out, error)) {
            return FALSE;
        }
        c->unread_puts++;
        credit -= bytes;
        want -= bytes;
        done += k;
        g_mutex_lock(&w->lock);
        w->stats.chunks_sent += k;
        w->stats.bytes_sent += bytes;
        g_mutex_unlock(&w->lock);
    }
    return TRUE;
}

static gboolean
send_batch(KgetItemWriter *w, Batch *b, GError **error)
{
    KgetClient *c = w->client;
    g_autoptr(GByteArray) out = g_byte_array_new();
    g_autoptr(GBytes) payload = NULL;
    guint idx[KGET_MAX_BATCH], n = 0;
    KgetMsg m;

    /* The PUT replies of the previous batch are read on the way. */
    kget_encode_hashes(out, KGET_MSG_HAVE, next_id(c), b->hashes, b->n);
    if (!call(c, out, KGET_REPLY(KGET_MSG_HAVE), &m, &payload, error)) {
        return FALSE;
    }
    if (m.count != b->n) {
        g_set_error(error, KGET_ERROR, KGET_ERROR_PROTOCOL,
                    "kget-store answered %u of %u hashes", m.count, b->n);
        return FALSE;
    }
    for (guint i = 0; i < b->n; i++) {
        if (m.bitmap[i / 8] & (1u << (i % 8))) {
            idx[n++] = i;
        }
    }
    return n == 0 || send_chunks(w, b, idx, n, error);
}

static gpointer
sender_thread(gpointer data)
{
    KgetItemWriter *w = data;

    for (;;) {
        Batch *b = g_async_queue_pop(w->to_send);
        g_autoptr(GError) error = NULL;

        if (b->last) {
            g_async_queue_push(w->free, b);
            break;
        }
        if (!g_atomic_int_get(&w->failed) && !send_batch(w, b, &error)) {
            g_mutex_lock(&w->lock);
            w->error = g_steal_pointer(&error);
            g_mutex_unlock(&w->lock);
            g_atomic_int_set(&w->failed, 1);
        }
        b->n = 0;
        g_async_queue_push(w->free, b);
    }
    return NULL;
}

/* Writer: the caller's side */

static void
batch_free(gpointer p)
{
    Batch *b = p;

    g_free(b->data);
    g_free(b);
}

KgetItemWriter *
kget_item_writer_new(KgetClient *client, const char *snapshot,
                     const char *item, guint64 size)
{
    KgetItemWriter *w = g_new0(KgetItemWriter, 1);

    g_return_val_if_fail(kget_snapshot_name_valid(snapshot), NULL);
    g_return_val_if_fail(kget_item_name_valid(item), NULL);

    w->client = client;
    w->snapshot = g_strdup(snapshot);
    w->item = g_strdup(item);
    w->size = size;
    w->blocks = g_array_new(FALSE, TRUE, sizeof(VcPageHash));
    w->put = g_array_new(FALSE, TRUE, sizeof(gboolean));
    if (size != KGET_SIZE_UNKNOWN && size <= KGET_MAX_ITEM_SIZE) {
        g_array_set_size(w->blocks, (guint)kget_n_blocks(size));
        g_array_set_size(w->put, (guint)kget_n_blocks(size));
    }
    w->queued = g_hash_table_new_full(vc_page_hash_hash,
                                      vc_page_hash_equal_func, g_free, NULL);
    w->to_send = g_async_queue_new();
    w->free = g_async_queue_new_full(batch_free);
    for (guint i = 0; i < N_BATCHES; i++) {
        Batch *b = g_new0(Batch, 1);

        b->data = g_malloc((gsize)KGET_MAX_BATCH * KGET_CHUNK_MAX);
        g_async_queue_push(w->free, b);
    }
    g_mutex_init(&w->lock);
    client->sink = &w->stats;
    client->sink_lock = &w->lock;
    w->sender = g_thread_new("kget-sender", sender_thread, w);
    return w;
}

void
kget_item_writer_set_progress(KgetItemWriter *w, KgetProgressFunc func,
                              gpointer user_data)
{
    w->progress = func;
    w->progress_data = user_data;
}

static gboolean
writer_failed(KgetItemWriter *w, GError **error)
{
    if (!g_atomic_int_get(&w->failed)) {
        return FALSE;
    }
    g_mutex_lock(&w->lock);
    if (w->error) {
        g_propagate_error(error, g_steal_pointer(&w->error));
    } else {
        g_set_error(error, KGET_ERROR, KGET_ERROR_IO, "the put failed");
    }
    g_mutex_unlock(&w->lock);
    return TRUE;
}

static void
writer_flush(KgetItemWriter *w)
{
    if (w->filling && w->filling->n > 0) {
        g_async_queue_push(w->to_send, g_steal_pointer(&w->filling));
    }
}

static void
writer_progress(KgetItemWriter *w)
{
    KgetItemStats now;

    if (!w->progress) {
        return;
    }
    g_mutex_lock(&w->lock);
    now = w->stats;
    g_mutex_unlock(&w->lock);
    w->progress(&now, w->done, w->progress_data);
}

gboolean
kget_item_writer_put_block(KgetItemWriter *w, guint64 index,
                           const guint8 *data, gsize len, GError **error)
{
    VcPageHash h;
    Batch *b;

    if (writer_failed(w, error)) {
        return FALSE;
    }
    if (w->size != KGET_SIZE_UNKNOWN) {
        if (index >= w->blocks->len || len != kget_block_len(w->size, index)) {
            g_set_error(error, KGET_ERROR, KGET_ERROR_REFUSED,
                        "block %" G_GUINT64_FORMAT " of %zu bytes is not "
                        "one of an item of %" G_GUINT64_FORMAT " bytes",
                        index, len, w->size);
            return FALSE;
        }
    } else {
        if (index != w->blocks->len || w->short_seen || len == 0 ||
            len > VC_PAGE_SIZE || index >= KGET_MAX_ITEM_SIZE / VC_PAGE_SIZE) {
            g_set_error(error, KGET_ERROR, KGET_ERROR_REFUSED,
                        "block %" G_GUINT64_FORMAT " of %zu bytes does not "
                        "follow the stream",
                        index, len);
            return FALSE;
        }
        g_array_set_size(w->blocks, (guint)index + 1);
        g_array_set_size(w->put, (guint)index + 1);
        w->short_seen = len < VC_PAGE_SIZE;
        w->last_len = len;
    }
    g_array_index(w->put, gboolean, index) = TRUE;
    w->done += len;
    if (is_zero(data, len)) {
        g_array_index(w->blocks, VcPageHash, index) = zero_hash;
        return TRUE;
    }
    vc_sha256(data, len, &h);
    g_array_index(w->blocks, VcPageHash, index) = h;
    if (g_hash_table_contains(w->queued, &h)) {
        return TRUE;
    }
    g_hash_table_add(w->queued, g_memdup2(&h, sizeof(h)));
    if (!w->filling) {
        /* Waits while both batches are out: the sender sets the pace. */
        w->filling = g_async_queue_pop(w->free);
        writer_progress(w);
    }
    b = w->filling;
    b->hashes[b->n] = h;
    b->lens[b->n] = (guint16)len;
    memcpy(b->data + (gsize)b->n * KGET_CHUNK_MAX, data, len);
    if (++b->n == KGET_MAX_BATCH) {
        writer_flush(w);
    }
    return TRUE;
}

/* Stops the sender thread once it has sent what is queued. */
static void
writer_join(KgetItemWriter *w)
{
    Batch *end;

    if (!w->sender) {
        return;
    }
    writer_flush(w);
    if (w->filling) {
        g_async_queue_push(w->free, g_steal_pointer(&w->filling));
    }
    end = g_async_queue_pop(w->free);
    end->last = TRUE;
    g_async_queue_push(w->to_send, end);
    g_thread_join(g_steal_pointer(&w->sender));
    end->last = FALSE;
}

static gboolean
send_block_list(KgetItemWriter *w, KgetItemStats *out_stats, GError **error)
{
    KgetClient *c = w->client;
    g_autoptr(GByteArray) out = g_byte_array_new();
    g_autoptr(GBytes) payload = NULL;
    guint64 n = w->blocks->len, size = w->size;
    KgetMsg m;

    if (size == KGET_SIZE_UNKNOWN) {
        size = n == 0 ? 0 : (n - 1) * VC_PAGE_SIZE + w->last_len;
    }
    w->stats.size = size;
    w->stats.blocks = n;
    for (guint64 i = 0; i < n; i++) {
        VcPageHash *h = &g_array_index(w->blocks, VcPageHash, i);

        w->stats.zero_blocks += vc_page_hash_equal(h, &zero_hash);
    }
    kget_encode_item_begin(out, next_id(c), w->snapshot, w->item, size);
    if (!send_frame(c, out, error)) {
        return FALSE;
    }
    c->unread_empty++;
    for (guint64 first = 0; first < n; first += KGET_MAX_BATCH) {
        guint32 count = (guint32)MIN((guint64)KGET_MAX_BATCH, n - first);

        kget_encode_item_blocks(out, next_id(c), first,
                                &g_array_index(w->blocks, VcPageHash, first),
                                count);
        if (!send_frame(c, out, error)) {
            return FALSE;
        }
        c->unread_empty++;
        /* Keep the store's replies from piling up unread. */
        if (c->unread_empty >= MAX_UNREAD &&
            !read_reply(c, 0, &m, &payload, error)) {
            return FALSE;
        }
    }
    kget_encode_empty(out, KGET_MSG_ITEM_END, next_id(c));
    if (!call(c, out, KGET_REPLY(KGET_MSG_ITEM_END), &m, &payload, error)) {
        return FALSE;
    }
    w->stats.stored_bytes = m.n2;
    if (out_stats) {
        *out_stats = w->stats;
    }
    return TRUE;
}

gboolean
kget_item_writer_finish(KgetItemWriter *w, KgetItemStats *stats,
                        GError **error)
{
    g_autoptr(GBytes) payload = NULL;
    KgetMsg m;

    g_return_val_if_fail(!w->finished, FALSE);
    w->finished = TRUE;
    writer_join(w);
    if (writer_failed(w, error) ||
        !read_reply(w->client, 0, &m, &payload, error)) {
        return FALSE;
    }
    writer_progress(w);
    return send_block_list(w, stats, error);
}

void
kget_item_writer_free(KgetItemWriter *w)
{
    if (!w) {
        return;
    }
    writer_join(w);
    w->client->sink = NULL;
    g_async_queue_unref(w->to_send);
    g_async_queue_unref(w->free);
    g_clear_error(&w->error);
    g_mutex_clear(&w->lock);
    g_hash_table_unref(w->queued);
    g_array_unref(w->blocks);
    g_array_unref(w->put);
    g_free(w->snapshot);
    g_free(w->item);
    g_free(w);
}

/* Reads up to @len bytes; fewer only at the end. */
static gssize
read_block(int fd, guint8 *buf, gsize len, GError **error)
{
    gsize got = 0;

    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            g_set_error(error, KGET_ERROR, KGET_ERROR_IO, "cannot read: %s",
                        g_strerror(errno));
            return -1;
        }
        if (n == 0) {
            break;
        }
        got += (gsize)n;
    }
    return (gssize)got;
}

gboolean
kget_client_put_fd(KgetClient *client, const char *snapshot, const char *item,
                   int fd, KgetProgressFunc func, gpointer user_data,
                   KgetItemStats *stats, GError **error)
{
    g_autoptr(KgetItemWriter) w = NULL;
    guint8 buf[VC_PAGE_SIZE];
    guint64 size = KGET_SIZE_UNKNOWN;
    struct stat st;

    /* A file that grows while read is taken as a stream would be. */
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
        lseek(fd, 0, SEEK_CUR) == 0) {
        size = (guint64)st.st_size;
        if (size > KGET_MAX_ITEM_SIZE) {
            g_set_error(error, KGET_ERROR, KGET_ERROR_LIMIT,
                        "item of %" G_GUINT64_FORMAT " bytes exceeds 64 GiB",
                        size);
            return FALSE;
        }
    }
    w = kget_item_writer_new(client, snapshot, item, size);
    kget_item_writer_set_progress(w, func, user_data);
    for (guint64 i = 0;; i++) {
        gsize want = size == KGET_SIZE_UNKNOWN || i >= kget_n_blocks(size)
                         ? VC_PAGE_SIZE
                         : kget_block_len(size, i);
        gssize n = read_block(fd, buf, want, error);

        if (n < 0) {
            return FALSE;
        }
        if (size != KGET_SIZE_UNKNOWN && i < kget_n_blocks(size) &&
            (gsize)n < want) {
            g_set_error(error, KGET_ERROR, KGET_ERROR_IO,
                        "the file shrank while it was read");
            return FALSE;
        }
        if (n == 0 || (size != KGET_SIZE_UNKNOWN && i >= kget_n_blocks(size))) {
            break;
        }
        if (!kget_item_writer_put_block(w, i, buf, (gsize)n, error)) {
            return FALSE;
        }
        if ((gsize)n < VC_PAGE_SIZE) {
            break;
        }
    }
    return kget_item_writer_finish(w, stats, error);
}

/* Reader */

struct KgetItemReader {
    KgetClient *client;
    guint64 size;
    guint64 n_blocks;
    VcPageHash *blocks;
    /* The batch in hand: blocks [first, end). */
    guint64 first;
    guint64 end;
    guint8 *data;       /* (end - first) x 4096 */
    guint16 *lens;
    guint8 zero[VC_PAGE_SIZE];
    KgetChunkSource source;
    KgetChunkPublish publish;
    gpointer source_data;
    guint8 *source_pages; /* KGET_MAX_BATCH x 4096 */
    KgetReaderStats stats;
};

KgetItemReader *
kget_item_reader_new(KgetClient *client, const char *snapshot,
                     const char *item, GError **error)
{
    g_autoptr(KgetItemReader) r = g_new0(KgetItemReader, 1);
    g_autoptr(GByteArray) out = g_byte_array_new();
    g_autoptr(GBytes) payload = NULL;
    KgetMsg m;

    r->client = client;
    r->data = g_malloc((gsize)KGET_MAX_BATCH * VC_PAGE_SIZE);
    r->lens = g_new(guint16, KGET_MAX_BATCH);
    do {
        kget_encode_get_item(out, next_id(client), snapshot, item, r->end,
                             KGET_MAX_BATCH);
        if (!call(client, out, KGET_REPLY(KGET_MSG_GET_ITEM), &m, &payload,
                  error)) {
            return NULL;
        }
        if (!r->blocks) {
            r->size = m.size;
            r->n_blocks = kget_n_blocks(m.size);
            r->blocks = g_new(VcPageHash, MAX(r->n_blocks, 1));
        }
        if (m.size != r->size || m.first != r->end ||
            (m.count == 0 && r->end < r->n_blocks)) {
            g_set_error(error, KGET_ERROR, KGET_ERROR_PROTOCOL,
                        "kget-store sent a block list out of order");
            return NULL;
        }
        memcpy(r->blocks + r->end, m.hashes, (gsize)m.count * VC_PAGE_HASH_LEN);
        r->end += m.count;
    } while (r->end < r->n_blocks);
    r->first = r->end = 0;
    return g_steal_pointer(&r);
}

void
kget_item_reader_set_source(KgetItemReader *r, KgetChunkSource func,
                            gpointer user_data)
{
    r->source = func;
    r->source_data = user_data;
    if (func && !r->source_pages) {
        r->source_pages = g_malloc((gsize)KGET_MAX_BATCH * VC_PAGE_SIZE);
    }
}

void
kget_item_reader_set_publish(KgetItemReader *r, KgetChunkPublish func)
{
    r->publish = func;
}

void
kget_item_reader_stats(KgetItemReader *r, KgetReaderStats *stats)
{
    *stats = r->stats;
}

guint64
kget_item_reader_size(KgetItemReader *r)
{
    return r->size;
}

guint64
kget_item_reader_n_blocks(KgetItemReader *r)
{
    return r->n_blocks;
}

/* Asks the source for the full chunks of @want[0..n) (blocks @where,
 * batch from @index) and keeps those that pass their hash; what is left
 * for the store is compacted to the front. Returns how many are left. */
static guint
reader_from_source(KgetItemReader *r, guint64 index, VcPageHash *want,
                   guint64 *where, guint n)
{
    VcPageHash ask[KGET_MAX_BATCH];
    guint at[KGET_MAX_BATCH];
    gboolean found[KGET_MAX_BATCH] = {FALSE};
    guint n_ask = 0, left = 0;

    for (guint k = 0; k < n; k++) {
        /* A short last block never matches a page. */
        if (r->lens[where[k] - index] == VC_PAGE_SIZE) {
            at[n_ask] = k;
            ask[n_ask++] = want[k];
        }
    }
    if (n_ask == 0 ||
        r->source(ask, n_ask, r->source_pages, found, r->source_data) == 0) {
        return n;
    }
    for (guint j = 0; j < n_ask; j++) {
        const guint8 *page = r->source_pages + (gsize)j * VC_PAGE_SIZE;
        guint k = at[j];
        VcPageHash check;

        if (!found[j]) {
            continue;
        }
        vc_page_hash(page, &check);
        if (!vc_page_hash_equal(&check, &ask[j])) {
            r->stats.source_bad++;
            continue;
        }
        memcpy(r->data + (where[k] - index) * VC_PAGE_SIZE, page,
               VC_PAGE_SIZE);
        r->stats.source_chunks++;
        r->stats.source_bytes += VC_PAGE_SIZE;
        where[k] = G_MAXUINT64; /* done */
    }
    for (guint k = 0; k < n; k++) {
        if (where[k] != G_MAXUINT64) {
            where[left] = where[k];
            want[left++] = want[k];
        }
    }
    return left;
}

/* Hands the full chunks of @want[0..n) (blocks @where, now in the batch
 * from @index), all of which the source missed, to r->publish. */
static void
reader_publish(KgetItemReader *r, guint64 index, const VcPageHash *want,
               const guint64 *where, guint n)
{
    const guint8 *pages[KGET_MAX_BATCH];
    VcPageHash hashes[KGET_MAX_BATCH];
    guint k = 0;

    for (guint i = 0; i < n; i++) {
        if (r->lens[where[i] - index] == VC_PAGE_SIZE) {
            hashes[k] = want[i];
            pages[k++] = r->data + (where[i] - index) * VC_PAGE_SIZE;
        }
    }
    if (k > 0) {
        r->publish(hashes, pages, k, r->source_data);
    }
}

/* Fetches the batch of blocks from @index: up to KGET_MAX_BATCH blocks,
 * the zero ones free, those the source has from it. */
static gboolean
reader_fetch(KgetItemReader *r, guint64 index, GError **error)
{
    KgetClient *c = r->client;
    g_autoptr(GByteArray) out = g_byte_array_new();
    g_autoptr(GBytes) payload = NULL;
    VcPageHash want[KGET_MAX_BATCH];
    guint64 where[KGET_MAX_BATCH];
    KgetChunk chunks[KGET_MAX_BATCH];
    guint n = 0;
    guint64 end = MIN(r->n_blocks, index + KGET_MAX_BATCH);
    KgetMsg m;

    for (guint64 i = index; i < end; i++) {
        if (!vc_page_hash_equal(&r->blocks[i], &zero_hash)) {
            where[n] = i;
            want[n++] = r->blocks[i];
        } else {
            memset(r->data + (i - index) * VC_PAGE_SIZE, 0, VC_PAGE_SIZE);
        }
        r->lens[i - index] = (guint16)kget_block_len(r->size, i);
    }
    r->first = r->end = index;
    if (n > 0 && r->source) {
        n = reader_from_source(r, index, want, where, n);
    }
    if (n > 0) {
        kget_encode_hashes(out, KGET_MSG_GET, next_id(c), want, n);
        if (!call(c, out, KGET_REPLY(KGET_MSG_GET), &m, &payload, error)) {
            return FALSE;
        }
        if (m.count != n) {
            g_set_error(error, KGET_ERROR, KGET_ERROR_PROTOCOL,
                        "kget-store answered %u of %u chunks", m.count, n);
            return FALSE;
        }
        kget_msg_chunks(&m, chunks);
        for (guint k = 0; k < n; k++) {
            char hex[VC_PAGE_HASH_HEX_LEN + 1];
            VcPageHash check;

            vc_page_hash_to_hex(&want[k], hex);
            if (chunks[k].len == 0) {
                g_set_error(error, KGET_ERROR, KGET_ERROR_NOT_FOUND,
                            "chunk %s of block %" G_GUINT64_FORMAT
                            " is missing from the store",
                            hex, where[k]);
                return FALSE;
            }
            vc_sha256(chunks[k].data, chunks[k].len, &check);
            if (chunks[k].len != r->lens[where[k] - index] ||
                !vc_page_hash_equal(&check, &want[k])) {
                g_set_error(error, KGET_ERROR, KGET_ERROR_CORRUPT,
                            "corrupt chunk %s received", hex);
                return FALSE;
            }
            memcpy(r->data + (where[k] - index) * VC_PAGE_SIZE, chunks[k].data,
                   chunks[k].len);
            r->stats.store_chunks++;
            r->stats.store_bytes += chunks[k].len;
        }
        if (r->source && r->publish) {
            reader_publish(r, index, want, where, n);
        }
    }
    r->end = end;
    return TRUE;
}

const guint8 *
kget_item_reader_block(KgetItemReader *r, guint64 index, gsize *len,
                       GError **error)
{
    if (index >= r->n_blocks) {
        g_set_error(error, KGET_ERROR, KGET_ERROR_REFUSED,
                    "block %" G_GUINT64_FORMAT " is past the item's %" G_GUINT64_FORMAT,
                    index, r->n_blocks);
        return NULL;
    }
    if ((index < r->first || index >= r->end) &&
        !reader_fetch(r, index, error)) {
        return NULL;
    }
    *len = r->lens[index - r->first];
    return r->data + (index - r->first) * VC_PAGE_SIZE;
}

void
kget_item_reader_free(KgetItemReader *r)
{
    if (!r) {
        return;
    }
    g_free(r->blocks);
    g_free(r->data);
    g_free(r->source_pages);
    g_free(r->lens);
    g_free(r);
}

gboolean
kget_item_reader_write_fd(KgetItemReader *r, int fd, KgetProgressFunc func,
                          gpointer user_data, GError **error)
{
    KgetItemStats stats = {0};

    stats.size = r->size;
    stats.blocks = r->n_blocks;
    for (guint64 i = 0; i < r->n_blocks; i++) {
        g_autoptr(GError) local = NULL;
        gsize len;
        const guint8 *data = kget_item_reader_block(r, i, &len, error);

        if (!data) {
            return FALSE;
        }
        if (!vc_write_all(fd, data, len, &local)) {
            g_set_error(error, KGET_ERROR, KGET_ERROR_IO, "%s", local->message);
            return FALSE;
        }
        if (func && (i + 1) % KGET_MAX_BATCH == 0) {
            func(&stats, (i + 1) * VC_PAGE_SIZE, user_data);
        }
    }
    if (func) {
        func(&stats, r->size, user_data);
    }
    return TRUE;
}

gboolean
kget_client_get_fd(KgetClient *client, const char *snapshot, const char *item,
                   int fd, KgetProgressFunc func, gpointer user_data,
                   GError **error)
{
    g_autoptr(KgetItemReader) r =
        kget_item_reader_new(client, snapshot, item, error);

    return r && kget_item_reader_write_fd(r, fd, func, user_data, error);
}

/* Small requests */

gboolean
kget_client_seal(KgetClient *client, const char *snapshot,
                 const char *const *items, guint n_items, const char *meta,
                 GError **error)
{
    g_autoptr(GByteArray) out = g_byte_array_new();
    g_autoptr(GBytes) payload = NULL;
    gsize meta_len = meta ? strlen(meta) : 0;
    KgetMsg m;

    if (meta_len > KGET_MAX_META_LEN || (meta && !g_utf8_validate(meta, -1, NULL))) {
        g_set_error(error, KGET_ERROR, KGET_ERROR_LIMIT,
                    "metadata must be UTF-8 of at most %u bytes",
                    KGET_MAX_META_LEN);
        return FALSE;
    }
    if (n_items < 1 || n_items > KGET_MAX_BATCH) {
        g_set_error(error, KGET_ERROR, KGET_ERROR_LIMIT,
                    "a snapshot holds 1 to %u items", KGET_MAX_BATCH);
        return FALSE;
    }
    kget_encode_seal(out, next_id(client), snapshot, items, n_items, meta,
                     meta_len);
    return call(client, out, KGET_REPLY(KGET_MSG_SEAL), &m, &payload, error);
}

gboolean
kget_client_list(KgetClient *client, const char *group, gboolean pending,
                 GArray **entries, gboolean *truncated, guint64 *chunks,
                 guint64 *bytes, GError **error)
{
    g_autoptr(GByteArray) out = g_byte_array_new();
    g_autoptr(GBytes) payload = NULL;
    GArray *a;
    KgetMsg m;

    kget_encode_list(out, next_id(client), group ? group : "", pending);
    if (!call(client, out, KGET_REPLY(KGET_MSG_LIST), &m, &payload, error)) {
        return FALSE;
    }
    a = g_array_sized_new(FALSE, TRUE, sizeof(KgetListEntry), m.count);
    g_array_set_size(a, m.count);
    kget_msg_list_entries(&m, (KgetListEntry *)a->data);
    *entries = a;
    *truncated = m.n3 != 0;
    *chunks = m.n1;
    *bytes = m.n2;
    return TRUE;
}

gboolean
kget_client_verify(KgetClient *client, const char *snapshot, guint64 *checked,
                   guint64 *corrupt, guint64 *missing, GError **error)
{
    g_autoptr(GByteArray) out = g_byte_array_new();
    g_autoptr(GBytes) payload = NULL;
    KgetMsg m;

    kget_encode_name(out, KGET_MSG_VERIFY, next_id(client),
                     snapshot ? snapshot : "");
    if (!call(client, out, KGET_REPLY(KGET_MSG_VERIFY), &m, &payload, error)) {
        return FALSE;
    }
    *checked = m.n1;
    *corrupt = m.n2;
    *missing = m.n3;
    return TRUE;
}

gboolean
kget_client_gc(KgetClient *client, guint keep, guint64 removed[4],
               GError **error)
{
    g_autoptr(GByteArray) out = g_byte_array_new();
    g_autoptr(GBytes) payload = NULL;
    KgetMsg m;

    kget_encode_gc(out, next_id(client), keep);
    if (!call(client, out, KGET_REPLY(KGET_MSG_GC), &m, &payload, error)) {
        return FALSE;
    }
    removed[0] = m.n1;
    removed[1] = m.n2;
    removed[2] = m.n3;
    removed[3] = m.n4;
    return TRUE;
}

gboolean
kget_client_rm(KgetClient *client, const char *snapshot, GError **error)
{
    g_autoptr(GByteArray) out = g_byte_array_new();
    g_autoptr(GBytes) payload = NULL;
    KgetMsg m;

    kget_encode_name(out, KGET_MSG_RM, next_id(client), snapshot);
    return call(client, out, KGET_REPLY(KGET_MSG_RM), &m, &payload, error);
}
