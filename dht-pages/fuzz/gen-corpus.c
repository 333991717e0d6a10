/*
 * Writes the seed corpora of the fuzz harnesses: one valid frame per
 * message type, and a few pipelined streams, made with the encoders.
 *
 *   gen-corpus DIR   writes DIR/corpus-resolver/ and DIR/corpus-peer/
 *
 * The committed seeds in this folder were written by it; rerun it after
 * a protocol change.
 */
#include <errno.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <string.h>

#include "dp-proto.h"

static gboolean
put(const char *dir, const char *name, const GByteArray *data, GError **error)
{
    g_autofree char *path = g_build_filename(dir, name, NULL);

    return g_file_set_contents(path, (const char *)data->data, data->len,
                               error);
}

typedef void (*Encode)(GByteArray *out);

static VcPageHash hashes[3];
static guint8 page_a[VC_PAGE_SIZE], page_b[VC_PAGE_SIZE];
static DpNodeId node_a = {{0xa1, 0xa2, 0xa3}}, node_b = {{0xb1, 0xb2, 0xb3}};
static guint8 nonce_a[DP_NONCE_LEN] = {1, 2, 3}, nonce_b[DP_NONCE_LEN] = {4};
static const guint8 key[] = "fuzz-site-key-0123456789";

static void
enc_lookup(GByteArray *out)
{
    dp_encode_hashes(out, DP_MSG_LOOKUP, 1, hashes, 3);
}

static void
enc_lookup_reply(GByteArray *out)
{
    const guint8 *pages[] = {page_a, NULL, page_b};

    dp_encode_pages_reply(out, DP_REPLY(DP_MSG_LOOKUP), 1, pages, 3);
}

static void
enc_lookup_miss(GByteArray *out)
{
    const guint8 *pages[] = {NULL, NULL};

    dp_encode_pages_reply(out, DP_REPLY(DP_MSG_LOOKUP), 2, pages, 2);
}

static void
enc_publish(GByteArray *out)
{
    const guint8 *pages[] = {page_a};

    dp_encode_publish(out, 3, hashes, pages, 1);
}

static void
enc_publish_reply(GByteArray *out)
{
    dp_encode_publish_reply(out, 3, 1, 0);
}

static void
enc_stats(GByteArray *out)
{
    dp_encode_empty(out, DP_MSG_STATS, 4);
}

static void
enc_stats_reply(GByteArray *out)
{
    static const char json[] =
        "{\"site\":\"lab\",\"node\":\"a1a2a3\",\"lookups\":3,\"hits\":2}";

    dp_encode_stats_reply(out, 4, json, strlen(json));
}

static void
enc_error(GByteArray *out)
{
    dp_encode_error(out, 5, DP_ERROR_LIMIT, "LOOKUP count 2000 exceeds 1024");
}

static void
enc_resolver_stream(GByteArray *out)
{
    enc_lookup(out);
    enc_stats(out);
    enc_publish_reply(out);
    enc_error(out);
}

static void
enc_hello(GByteArray *out)
{
    dp_encode_hello(out, 1, &node_a, nonce_a, 7400, "lab-1");
}

static void
enc_hello_reply(GByteArray *out)
{
    guint8 mac[DP_MAC_LEN];

    dp_auth_proof(key, sizeof(key) - 1, TRUE, nonce_a, nonce_b, &node_a,
                  &node_b, mac);
    dp_encode_hello_reply(out, 1, &node_b, nonce_b, mac);
}

static void
enc_auth(GByteArray *out)
{
    guint8 mac[DP_MAC_LEN];

    dp_auth_proof(key, sizeof(key) - 1, FALSE, nonce_a, nonce_b, &node_a,
                  &node_b, mac);
    dp_encode_auth(out, 2, mac);
}

static void
enc_auth_reply(GByteArray *out)
{
    dp_encode_empty(out, DP_REPLY(DP_MSG_AUTH), 2);
}

static void
enc_index_add(GByteArray *out)
{
    dp_encode_hashes(out, DP_MSG_INDEX_ADD, 3, hashes, 2);
}

static void
enc_index_add_reply(GByteArray *out)
{
    dp_encode_count_reply(out, DP_REPLY(DP_MSG_INDEX_ADD), 3, 2);
}

static void
enc_index_del(GByteArray *out)
{
    dp_encode_hashes(out, DP_MSG_INDEX_DEL, 4, hashes, 1);
}

static void
enc_index_del_reply(GByteArray *out)
{
    dp_encode_count_reply(out, DP_REPLY(DP_MSG_INDEX_DEL), 4, 0);
}

static void
enc_index_query(GByteArray *out)
{
    dp_encode_hashes(out, DP_MSG_INDEX_QUERY, 5, hashes, 3);
}

static void
enc_index_query_reply(GByteArray *out)
{
    static const guint8 n[] = {2, 0, 1};
    const DpNodeId holders[] = {node_a, node_b, node_b};

    dp_encode_query_reply(out, 5, n, 3, holders);
}

static void
enc_page_get(GByteArray *out)
{
    dp_encode_hashes(out, DP_MSG_PAGE_GET, 6, hashes, 2);
}

static void
enc_page_get_reply(GByteArray *out)
{
    const guint8 *pages[] = {NULL, page_b};

    dp_encode_pages_reply(out, DP_REPLY(DP_MSG_PAGE_GET), 6, pages, 2);
}

static void
enc_ping(GByteArray *out)
{
    dp_encode_empty(out, DP_MSG_PING, 7);
}

static void
enc_ping_reply(GByteArray *out)
{
    dp_encode_empty(out, DP_REPLY(DP_MSG_PING), 7);
}

static void
enc_claim(GByteArray *out)
{
    dp_encode_claim(out, 8, 2000, hashes, 3);
}

static void
enc_claim_reply(GByteArray *out)
{
    static const guint8 states[] = {DP_CLAIM_FETCH, DP_CLAIM_HELD,
                                    DP_CLAIM_UNCLAIMED};

    dp_encode_claim_reply(out, 8, states, 3, &node_b);
}

static void
enc_claim_done(GByteArray *out)
{
    dp_encode_hashes(out, DP_MSG_CLAIM_DONE, 9, hashes, 2);
}

static void
enc_claim_done_reply(GByteArray *out)
{
    dp_encode_count_reply(out, DP_REPLY(DP_MSG_CLAIM_DONE), 9, 2);
}

static void
enc_claim_drop(GByteArray *out)
{
    dp_encode_hashes(out, DP_MSG_CLAIM_DROP, 10, hashes, 2);
}

static void
enc_claim_drop_reply(GByteArray *out)
{
    dp_encode_count_reply(out, DP_REPLY(DP_MSG_CLAIM_DROP), 10, 2);
}

static void
enc_peer_error(GByteArray *out)
{
    dp_encode_error(out, 0, DP_ERROR_AUTH, "wrong site");
}

static void
enc_handshake_stream(GByteArray *out)
{
    enc_hello(out);
    enc_auth(out);
    enc_index_query(out);
    enc_claim(out);
    enc_ping(out);
}

static void
enc_server_stream(GByteArray *out)
{
    enc_hello_reply(out);
    enc_auth_reply(out);
    enc_index_query_reply(out);
    enc_claim_reply(out);
    enc_ping_reply(out);
}

static const struct {
    const char *name;
    Encode encode;
} resolver_seeds[] =
    {
        {"lookup", enc_lookup},
        {"lookup-reply", enc_lookup_reply},
        {"lookup-reply-miss", enc_lookup_miss},
        {"publish", enc_publish},
        {"publish-reply", enc_publish_reply},
        {"stats", enc_stats},
        {"stats-reply", enc_stats_reply},
        {"error", enc_error},
        {"stream", enc_resolver_stream},
},
  peer_seeds[] = {
      {"hello", enc_hello},
      {"hello-reply", enc_hello_reply},
      {"auth", enc_auth},
      {"auth-reply", enc_auth_reply},
      {"index-add", enc_index_add},
      {"index-add-reply", enc_index_add_reply},
      {"index-del", enc_index_del},
      {"index-del-reply", enc_index_del_reply},
      {"index-query", enc_index_query},
      {"index-query-reply", enc_index_query_reply},
      {"page-get", enc_page_get},
      {"page-get-reply", enc_page_get_reply},
      {"claim", enc_claim},
      {"claim-reply", enc_claim_reply},
      {"claim-done", enc_claim_done},
      {"claim-done-reply", enc_claim_done_reply},
      {"claim-drop", enc_claim_drop},
      {"claim-drop-reply", enc_claim_drop_reply},
      {"ping", enc_ping},
      {"ping-reply", enc_ping_reply},
      {"error", enc_peer_error},
      {"client-stream", enc_handshake_stream},
      {"server-stream", enc_server_stream},
};

int
main(int argc, char **argv)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *rdir = NULL;
    g_autofree char *pdir = NULL;

    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    for (guint i = 0; i < VC_PAGE_SIZE; i++) {
        page_a[i] = (guint8)i;
        page_b[i] = (guint8)(i / 64);
    }
    vc_page_hash(page_a, &hashes[0]);
    vc_page_hash(page_b, &hashes[1]);
    memset(hashes[2].bytes, 0x42, VC_PAGE_HASH_LEN);

    rdir = g_build_filename(argv[1], "corpus-resolver", NULL);
    pdir = g_build_filename(argv[1], "corpus-peer", NULL);
    if (g_mkdir_with_parents(rdir, 0755) < 0 ||
        g_mkdir_with_parents(pdir, 0755) < 0) {
        fprintf(stderr, "gen-corpus: cannot create '%s': %s\n", argv[1],
                g_strerror(errno));
        return 1;
    }
    for (gsize i = 0; i < G_N_ELEMENTS(resolver_seeds); i++) {
        g_autoptr(GByteArray) out = g_byte_array_new();

        resolver_seeds[i].encode(out);
        if (!put(rdir, resolver_seeds[i].name, out, &error)) {
            fprintf(stderr, "gen-corpus: %s\n", error->message);
            return 1;
        }
    }
    for (gsize i = 0; i < G_N_ELEMENTS(peer_seeds); i++) {
        g_autoptr(GByteArray) out = g_byte_array_new();

        peer_seeds[i].encode(out);
        if (!put(pdir, peer_seeds[i].name, out, &error)) {
            fprintf(stderr, "gen-corpus: %s\n", error->message);
            return 1;
        }
    }
    return 0;
}
