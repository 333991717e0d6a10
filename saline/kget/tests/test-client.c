/* The item reader of libkget against a store faked in-process: chunks
 * taken from a source (a site's page index) first, re-hashed, the rest
 * from the store; the resolver client against a fake dht-pagesd (which
 * gets the pages it missed published back), and without one. */
#include <errno.h>
#include <glib/gstdio.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "dp-conn.h"
#include "dp-proto.h"
#include "kget-client.h"
#include "kget-resolver.h"
#include "vc-frame.h"

/* Two batches and a bit; a short last block. */
#define N_BLOCKS (KGET_MAX_BATCH + 301)
#define TAIL 100
#define SIZE ((guint64)(N_BLOCKS - 1) * VC_PAGE_SIZE + TAIL)
/* The block whose page the sources get wrong. */
#define BAD_BLOCK 6

typedef struct {
    GBytes *key;
    guint8 *data; /* the item, SIZE bytes */
    VcPageHash blocks[N_BLOCKS];
    GHashTable *chunks; /* VcPageHash * -> block index + 1 */
    int listen_fd;
    guint16 port;
    GThread *store;
    guint64 served; /* chunks the store sent */
    GHashTable *asked; /* hashes the source was asked for */
} Fixture;

static gboolean
block_is_zero(guint i)
{
    return i % 5 == 3;
}

static gsize
block_len(guint i)
{
    return kget_block_len(SIZE, i);
}

static gpointer
store_thread(gpointer data)
{
    Fixture *f = data;
    gsize key_len;
    const guint8 *key = g_bytes_get_data(f->key, &key_len);
    guint8 client_nonce[KGET_NONCE_LEN], server_nonce[KGET_NONCE_LEN] = {7};
    int fd = accept4(f->listen_fd, NULL, NULL, SOCK_CLOEXEC);

    g_assert_cmpint(fd, >=, 0);
    for (;;) {
        g_autoptr(GBytes) payload = NULL;
        g_autoptr(GByteArray) out = g_byte_array_new();
        g_autoptr(GError) error = NULL;
        KgetChunk chunks[KGET_MAX_BATCH];
        guint8 mac[KGET_MAC_LEN];
        KgetMsg m;

        if (!vc_frame_read_fd(fd, KGET_MAX_PAYLOAD, &payload, NULL)) {
            break; /* the client is done */
        }
        g_assert_true(kget_msg_decode(g_bytes_get_data(payload, NULL),
                                      g_bytes_get_size(payload), &m, &error));
        switch (m.type) {
        case KGET_MSG_HELLO:
            memcpy(client_nonce, m.nonce, KGET_NONCE_LEN);
            kget_auth_proof(key, key_len, TRUE, client_nonce, server_nonce,
                            mac);
            kget_encode_hello_reply(out, m.id, server_nonce, mac);
            break;
        case KGET_MSG_AUTH:
            kget_encode_empty(out, KGET_REPLY(KGET_MSG_AUTH), m.id);
            break;
        case KGET_MSG_GET_ITEM: {
            guint32 n = (guint32)MIN((guint64)m.count, N_BLOCKS - m.first);

            kget_encode_get_item_reply(out, m.id, SIZE, m.first,
                                       f->blocks + m.first, n);
            break;
        }
        case KGET_MSG_GET:
            for (guint32 i = 0; i < m.count; i++) {
                guint b = GPOINTER_TO_UINT(
                    g_hash_table_lookup(f->chunks, &m.hashes[i]));

                g_assert_cmpuint(b, >, 0);
                chunks[i] = (KgetChunk){NULL,
                                        f->data + (gsize)(b - 1) * VC_PAGE_SIZE,
                                        (guint16)block_len(b - 1)};
            }
            f->served += m.count;
            kget_encode_get_reply(out, m.id, chunks, m.count);
            break;
        default:
            g_assert_not_reached();
        }
        g_assert_true(vc_write_all(fd, out->data, out->len, NULL));
    }
    close(fd);
    return NULL;
}

static void
setup(Fixture *f, gconstpointer data)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);

    f->key = g_bytes_new_static("a test key of 32 bytes, no less", 32);
    f->data = g_malloc0(SIZE);
    f->chunks = g_hash_table_new(vc_page_hash_hash, vc_page_hash_equal_func);
    f->asked = g_hash_table_new_full(vc_page_hash_hash,
                                     vc_page_hash_equal_func, g_free, NULL);
    for (guint i = 0; i < N_BLOCKS; i++) {
        guint8 *p = f->data + (gsize)i * VC_PAGE_SIZE;

        if (block_is_zero(i)) {
            continue; /* the zero hash */
        }
        for (gsize j = 0; j < block_len(i); j++) {
            p[j] = (guint8)(i * 31 + j / 16);
        }
        memcpy(p, &i, sizeof(i));
        vc_sha256(p, block_len(i), &f->blocks[i]);
        g_hash_table_insert(f->chunks, &f->blocks[i], GUINT_TO_POINTER(i + 1));
    }
    f->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_assert_cmpint(bind(f->listen_fd, (struct sockaddr *)&sa, sizeof(sa)),
                    ==, 0);
    g_assert_cmpint(listen(f->listen_fd, 1), ==, 0);
    g_assert_cmpint(getsockname(f->listen_fd, (struct sockaddr *)&sa, &len),
                    ==, 0);
    f->port = ntohs(sa.sin_port);
    f->store = g_thread_new("fake-store", store_thread, f);
}

static void
teardown(Fixture *f, gconstpointer data)
{
    g_thread_join(f->store);
    close(f->listen_fd);
    g_hash_table_unref(f->asked);
    g_hash_table_unref(f->chunks);
    g_free(f->data);
    g_bytes_unref(f->key);
}

static KgetClient *
connect_store(Fixture *f)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *address = g_strdup_printf("127.0.0.1:%u", f->port);
    KgetClient *c = kget_client_connect(address, f->key, 5000, &error);

    g_assert_no_error(error);
    return c;
}

/* What the site has: the non-zero full blocks of even index, the page of
 * BAD_BLOCK with one bit flipped. */
static gboolean
site_has(Fixture *f, const VcPageHash *h, guint8 *page)
{
    guint b = GPOINTER_TO_UINT(g_hash_table_lookup(f->chunks, h));

    if (b == 0 || (b - 1) % 2 != 0) {
        return FALSE;
    }
    g_assert_cmpuint(block_len(b - 1), ==, VC_PAGE_SIZE);
    memcpy(page, f->data + (gsize)(b - 1) * VC_PAGE_SIZE, VC_PAGE_SIZE);
    if (b - 1 == BAD_BLOCK) {
        page[100] ^= 0x40;
    }
    return TRUE;
}

static guint
fake_source(const VcPageHash *hashes, guint n, guint8 *pages,
            gboolean *found, gpointer user_data)
{
    Fixture *f = user_data;
    guint hits = 0;

    g_assert_cmpuint(n, <=, KGET_MAX_BATCH);
    for (guint i = 0; i < n; i++) {
        g_assert_false(found[i]);
        g_hash_table_add(f->asked, g_memdup2(&hashes[i], sizeof(hashes[i])));
        found[i] = site_has(f, &hashes[i], pages + (gsize)i * VC_PAGE_SIZE);
        hits += found[i];
    }
    return hits;
}

/* Reads the whole item through a reader with @source and checks every
 * byte; returns where the chunks came from. */
static void
read_all(Fixture *f, KgetChunkSource source, KgetChunkPublish publish,
         gpointer source_data, KgetReaderStats *rs)
{
    g_autoptr(KgetClient) c = connect_store(f);
    g_autoptr(GError) error = NULL;
    g_autoptr(KgetItemReader) r = kget_item_reader_new(c, "t@1", "ram", &error);

    g_assert_no_error(error);
    kget_item_reader_set_source(r, source, source_data);
    kget_item_reader_set_publish(r, publish);
    g_assert_cmpuint(kget_item_reader_size(r), ==, SIZE);
    for (guint i = 0; i < N_BLOCKS; i++) {
        gsize len = 0;
        const guint8 *p = kget_item_reader_block(r, i, &len, &error);

        g_assert_no_error(error);
        g_assert_cmpuint(len, ==, block_len(i));
        g_assert_cmpmem(p, len, f->data + (gsize)i * VC_PAGE_SIZE, len);
    }
    kget_item_reader_stats(r, rs);
}

/* The chunks the site should provide, and those left to the store. */
static void
expected(guint64 *site, guint64 *store)
{
    *site = *store = 0;
    for (guint i = 0; i < N_BLOCKS; i++) {
        if (block_is_zero(i)) {
            continue;
        }
        if (i % 2 == 0 && i != BAD_BLOCK && block_len(i) == VC_PAGE_SIZE) {
            (*site)++;
        } else {
            (*store)++;
        }
    }
}

static void
test_no_source(Fixture *f, gconstpointer data)
{
    KgetReaderStats rs;
    guint64 site, store;

    read_all(f, NULL, NULL, NULL, &rs);
    expected(&site, &store);
    g_assert_cmpuint(rs.source_chunks, ==, 0);
    g_assert_cmpuint(rs.store_chunks, ==, site + store);
    g_assert_cmpuint(rs.store_bytes, ==, (site + store - 1) * VC_PAGE_SIZE + TAIL);
}

static void
test_source(Fixture *f, gconstpointer data)
{
    KgetReaderStats rs;
    guint64 site, store;

    read_all(f, fake_source, NULL, f, &rs);
    expected(&site, &store);
    g_assert_cmpuint(rs.source_chunks, ==, site);
    g_assert_cmpuint(rs.source_bytes, ==, site * VC_PAGE_SIZE);
    /* The wrong page was re-hashed, refused, and fetched from the store. */
    g_assert_cmpuint(rs.source_bad, ==, 1);
    g_assert_cmpuint(rs.store_chunks, ==, store);
    g_assert_cmpuint(rs.store_bytes, ==, (store - 1) * VC_PAGE_SIZE + TAIL);
    g_assert_cmpuint(f->served, ==, store);
    /* Zero blocks and the short last block are never asked for. */
    g_assert_false(g_hash_table_contains(f->asked, &f->blocks[N_BLOCKS - 1]));
    g_assert_cmpuint(g_hash_table_size(f->asked), ==, site + store - 1);
}

/* A fake dht-pagesd: answers LOOKUPs on a unix socket from site_has(),
 * counts the pages published to it. */
typedef struct {
    Fixture *f;
    int listen_fd;
    guint lookups;
    guint published;
} FakePagesd;

static gpointer
pagesd_thread(gpointer data)
{
    FakePagesd *d = data;
    int fd = accept4(d->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    g_autofree guint8 *pages = g_malloc((gsize)DP_MAX_BATCH * VC_PAGE_SIZE);

    g_assert_cmpint(fd, >=, 0);
    for (;;) {
        g_autoptr(GBytes) payload = NULL;
        g_autoptr(GByteArray) out = g_byte_array_new();
        const guint8 *hit[DP_MAX_BATCH];
        DpMsg m;

        if (!dp_msg_read(fd, &m, &payload, NULL)) {
            break;
        }
        if (m.type == DP_MSG_PUBLISH) {
            for (guint32 i = 0; i < m.count; i++) {
                const guint8 *rec =
                    m.records + (gsize)i * (VC_PAGE_HASH_LEN + VC_PAGE_SIZE);
                VcPageHash check;

                vc_page_hash(rec + VC_PAGE_HASH_LEN, &check);
                g_assert_true(vc_page_hash_equal(&check,
                                                 (const VcPageHash *)rec));
            }
            d->published += m.count;
            dp_encode_publish_reply(out, m.id, m.count, 0);
            g_assert_true(dp_write_all(fd, out->data, out->len, NULL));
            continue;
        }
        g_assert_cmpuint(m.type, ==, DP_MSG_LOOKUP);
        d->lookups++;
        for (guint32 i = 0; i < m.count; i++) {
            guint8 *p = pages + (gsize)i * VC_PAGE_SIZE;

            hit[i] = site_has(d->f, &m.hashes[i], p) ? p : NULL;
        }
        dp_encode_pages_reply(out, DP_REPLY(DP_MSG_LOOKUP), m.id, hit, m.count);
        g_assert_true(dp_write_all(fd, out->data, out->len, NULL));
    }
    close(fd);
    return NULL;
}

static void
test_resolver(Fixture *f, gconstpointer data)
{
    g_autofree char *dir = g_dir_make_tmp("test-kget-client-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "resolver.sock", NULL);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    FakePagesd d = {f, socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), 0, 0};
    g_autoptr(KgetResolver) resolver = NULL;
    GThread *t;
    KgetReaderStats rs;
    guint64 site, store;

    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    g_assert_cmpint(bind(d.listen_fd, (struct sockaddr *)&sa, sizeof(sa)), ==,
                    0);
    g_assert_cmpint(listen(d.listen_fd, 1), ==, 0);
    t = g_thread_new("fake-pagesd", pagesd_thread, &d);
    resolver = kget_resolver_new(path);
    g_assert_true(kget_resolver_usable(resolver));
    read_all(f, kget_resolver_lookup, kget_resolver_publish, resolver, &rs);
    g_clear_pointer(&resolver, kget_resolver_free);
    g_thread_join(t);
    close(d.listen_fd);
    g_unlink(path);
    g_rmdir(dir);

    expected(&site, &store);
    g_assert_cmpuint(d.lookups, ==, 2); /* one per batch */
    g_assert_cmpuint(rs.source_chunks, ==, site);
    g_assert_cmpuint(rs.source_bad, ==, 1);
    g_assert_cmpuint(rs.store_chunks, ==, store);
    /* What the store sent, but for the short last block, is offered to
     * the site: the right page of the one it got wrong too. */
    g_assert_cmpuint(d.published, ==, store - 1);
}

/* No dht-pagesd: the restore goes on, all from the store. */
static void
test_resolver_absent(Fixture *f, gconstpointer data)
{
    g_autoptr(KgetResolver) resolver =
        kget_resolver_new("/nonexistent/dht-pages/resolver.sock");
    KgetReaderStats rs;
    guint64 site, store;

    g_assert_false(kget_resolver_usable(resolver));
    read_all(f, kget_resolver_lookup, kget_resolver_publish, resolver, &rs);
    expected(&site, &store);
    g_assert_cmpuint(rs.source_chunks, ==, 0);
    g_assert_cmpuint(rs.store_chunks, ==, site + store);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
#define ADD(path, fn) g_test_add(path, Fixture, NULL, setup, fn, teardown)
    ADD("/kget/reader/no-source", test_no_source);
    ADD("/kget/reader/source", test_source);
    ADD("/kget/reader/resolver", test_resolver);
    ADD("/kget/reader/resolver-absent", test_resolver_absent);
    return g_test_run();
}
