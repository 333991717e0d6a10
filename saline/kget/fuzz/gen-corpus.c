/*
 * Writes the seed corpus of the Kget+ fuzz harness: one valid frame per
 * message type, and a few pipelined streams, made with the encoders.
 *
 *   gen-corpus DIR   writes DIR/corpus/
 *
 * The committed seeds in this folder were written by it; rerun it after
 * a protocol change.
 */
#include <glib/gstdio.h>
#include <stdio.h>
#include <string.h>

#include "kget-proto.h"

static VcPageHash hashes[3];
static guint8 data_a[VC_PAGE_SIZE], data_b[100];
static const guint8 nonce[KGET_NONCE_LEN] = {1, 2, 3};
static const guint8 key[] = "fuzz-site-key-0123456789";

static void
encode(const char *name, GByteArray *out)
{
    static const char *items[] = {"vm0/ram", "vm0/vmstate", "vm1/disk-vda"};
    static const char meta[] = "{\"vms\":2}";
    guint8 mac[KGET_MAC_LEN], bitmap[1] = {0x5};
    KgetChunk put[] = {{&hashes[0], data_a, VC_PAGE_SIZE},
                       {&hashes[1], data_b, sizeof(data_b)}};
    KgetChunk got[] = {{NULL, data_a, VC_PAGE_SIZE}, {NULL, NULL, 0}};
    KgetListEntry list[2] = {
        {"saline-42@1", TRUE, 1700000000, 2, 1 << 20, 600000, 400000},
        {"saline-42@2", FALSE, 0, 1, 4096, 4096, 0},
    };

    kget_auth_proof(key, sizeof(key) - 1, TRUE, nonce, nonce, mac);
    if (g_str_equal(name, "hello")) {
        kget_encode_hello(out, 0, nonce);
    } else if (g_str_equal(name, "hello-reply")) {
        kget_encode_hello_reply(out, 0, nonce, mac);
    } else if (g_str_equal(name, "auth")) {
        kget_encode_auth(out, 0, mac);
    } else if (g_str_equal(name, "auth-reply")) {
        kget_encode_empty(out, KGET_REPLY(KGET_MSG_AUTH), 0);
    } else if (g_str_equal(name, "have")) {
        kget_encode_hashes(out, KGET_MSG_HAVE, 1, hashes, 3);
    } else if (g_str_equal(name, "have-reply")) {
        kget_encode_have_reply(out, 1, 3, bitmap);
    } else if (g_str_equal(name, "credit")) {
        kget_encode_credit(out, KGET_MSG_CREDIT, 2, 8192);
    } else if (g_str_equal(name, "grant")) {
        kget_encode_credit(out, KGET_MSG_GRANT, 2, 4196);
    } else if (g_str_equal(name, "put")) {
        kget_encode_put(out, 3, put, 2);
    } else if (g_str_equal(name, "put-reply")) {
        kget_encode_counters(out, KGET_REPLY(KGET_MSG_PUT), 3, 1, 4096, 0, 0);
    } else if (g_str_equal(name, "item-begin")) {
        kget_encode_item_begin(out, 4, "saline-42@1", "vm0/ram", 12288);
    } else if (g_str_equal(name, "item-blocks")) {
        kget_encode_item_blocks(out, 5, 0, hashes, 3);
    } else if (g_str_equal(name, "item-end")) {
        kget_encode_empty(out, KGET_MSG_ITEM_END, 6);
    } else if (g_str_equal(name, "item-end-reply")) {
        kget_encode_counters(out, KGET_REPLY(KGET_MSG_ITEM_END), 6, 4096,
                             8192, 0, 0);
    } else if (g_str_equal(name, "seal")) {
        kget_encode_seal(out, 7, "saline-42@1", items, 3, meta,
                         sizeof(meta) - 1);
    } else if (g_str_equal(name, "list")) {
        kget_encode_list(out, 8, "saline-42", TRUE);
    } else if (g_str_equal(name, "list-reply")) {
        kget_encode_list_reply(out, 8, 100, 409600, FALSE, list, 2);
    } else if (g_str_equal(name, "get-item")) {
        kget_encode_get_item(out, 9, "saline-42@1", "vm0/ram", 0, 1024);
    } else if (g_str_equal(name, "get-item-reply")) {
        kget_encode_get_item_reply(out, 9, 12288, 0, hashes, 3);
    } else if (g_str_equal(name, "get")) {
        kget_encode_hashes(out, KGET_MSG_GET, 10, hashes, 2);
    } else if (g_str_equal(name, "get-reply")) {
        kget_encode_get_reply(out, 10, got, 2);
    } else if (g_str_equal(name, "verify")) {
        kget_encode_name(out, KGET_MSG_VERIFY, 11, "");
    } else if (g_str_equal(name, "verify-reply")) {
        kget_encode_counters(out, KGET_REPLY(KGET_MSG_VERIFY), 11, 10, 1, 0,
                             0);
    } else if (g_str_equal(name, "gc")) {
        kget_encode_gc(out, 12, 3);
    } else if (g_str_equal(name, "gc-reply")) {
        kget_encode_counters(out, KGET_REPLY(KGET_MSG_GC), 12, 1, 2, 3, 4);
    } else if (g_str_equal(name, "rm")) {
        kget_encode_name(out, KGET_MSG_RM, 13, "saline-42@1");
    } else if (g_str_equal(name, "error")) {
        kget_encode_error(out, 13, KGET_ERROR_NOT_FOUND,
                          "no snapshot 'saline-42@1'");
    } else {
        g_assert_not_reached();
    }
}

static const char *const singles[] = {
    "hello", "hello-reply", "auth", "auth-reply", "have", "have-reply",
    "credit", "grant", "put", "put-reply", "item-begin", "item-blocks",
    "item-end", "item-end-reply", "seal", "list", "list-reply", "get-item",
    "get-item-reply", "get", "get-reply", "verify", "verify-reply", "gc",
    "gc-reply", "rm", "error",
};

static const char *const client_stream[] = {
    "hello", "auth", "have", "credit", "put", "item-begin", "item-blocks",
    "item-end", "seal", NULL,
};
static const char *const store_stream[] = {
    "hello-reply", "auth-reply", "have-reply", "grant", "put-reply",
    "item-end-reply", "list-reply", "get-reply", NULL,
};

static gboolean
put_file(const char *dir, const char *name, GByteArray *data, GError **error)
{
    g_autofree char *path = g_build_filename(dir, name, NULL);

    return g_file_set_contents(path, (const char *)data->data, data->len,
                               error);
}

int
main(int argc, char **argv)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *dir = NULL;
    const char *const *streams[] = {client_stream, store_stream};
    const char *stream_names[] = {"client-stream", "store-stream"};

    if (argc != 2) {
        fprintf(stderr, "usage: gen-corpus DIR\n");
        return 2;
    }
    for (guint i = 0; i < G_N_ELEMENTS(hashes); i++) {
        memset(hashes[i].bytes, 0x11 * (i + 1), VC_PAGE_HASH_LEN);
    }
    memset(data_a, 0xab, sizeof(data_a));
    memset(data_b, 0xcd, sizeof(data_b));
    dir = g_build_filename(argv[1], "corpus", NULL);
    g_mkdir_with_parents(dir, 0755);
    for (guint i = 0; i < G_N_ELEMENTS(singles); i++) {
        g_autoptr(GByteArray) out = g_byte_array_new();

        encode(singles[i], out);
        if (!put_file(dir, singles[i], out, &error)) {
            fprintf(stderr, "gen-corpus: %s\n", error->message);
            return 1;
        }
    }
    for (guint s = 0; s < G_N_ELEMENTS(streams); s++) {
        g_autoptr(GByteArray) out = g_byte_array_new();

        for (guint i = 0; streams[s][i]; i++) {
            encode(streams[s][i], out);
        }
        if (!put_file(dir, stream_names[s], out, &error)) {
            fprintf(stderr, "gen-corpus: %s\n", error->message);
            return 1;
        }
    }
    return 0;
}
