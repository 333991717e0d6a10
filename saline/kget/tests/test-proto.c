/* The Kget+ wire codec (docs/protocols.md, "Kget+ protocol"). */
#include <string.h>

#include "kget-proto.h"
#include "vc-frame.h"

#define OFF_BODY (VC_FRAME_HEADER_LEN + KGET_HEADER_LEN)

static void
fill_hashes(VcPageHash *hashes, guint32 count, guint8 seed)
{
    for (guint32 i = 0; i < count; i++) {
        for (guint j = 0; j < VC_PAGE_HASH_LEN; j++) {
            hashes[i].bytes[j] = (guint8)(seed + i * 7 + j);
        }
    }
}

static void
decode_ok(const GByteArray *frame, KgetMsg *msg)
{
    g_autoptr(GError) error = NULL;
    guint32 len = (guint32)frame->data[0] << 24 | frame->data[1] << 16 |
                  frame->data[2] << 8 | frame->data[3];

    g_assert_cmpuint(len, ==, frame->len - VC_FRAME_HEADER_LEN);
    g_assert_true(kget_msg_decode(frame->data + VC_FRAME_HEADER_LEN, len, msg,
                                  &error));
    g_assert_no_error(error);
}

/* Decoding fails with @code; the frame's length prefix is not checked. */
static void
decode_bad(const guint8 *payload, gsize len, gint code)
{
    g_autoptr(GError) error = NULL;
    KgetMsg msg;

    g_assert_false(kget_msg_decode(payload, len, &msg, &error));
    g_assert_error(error, KGET_ERROR, code);
}

static void
frame_bad(const GByteArray *frame, gint code)
{
    decode_bad(frame->data + VC_FRAME_HEADER_LEN,
               frame->len - VC_FRAME_HEADER_LEN, code);
}

/* Every proper prefix of a valid payload is refused, and so is one
 * trailing byte. */
static void
check_truncations(const GByteArray *frame)
{
    const guint8 *p = frame->data + VC_FRAME_HEADER_LEN;
    gsize len = frame->len - VC_FRAME_HEADER_LEN;
    g_autofree guint8 *longer = g_malloc0(len + 1);

    for (gsize n = 0; n < len; n++) {
        g_autoptr(GError) error = NULL;
        KgetMsg msg;

        g_assert_false(kget_msg_decode(p, n, &msg, &error));
        g_assert_nonnull(error);
    }
    memcpy(longer, p, len);
    decode_bad(longer, len + 1, KGET_ERROR_PROTOCOL);
}

static void
test_handshake(void)
{
    g_autoptr(GByteArray) out = g_byte_array_new();
    guint8 nonce[KGET_NONCE_LEN], other[KGET_NONCE_LEN], mac[KGET_MAC_LEN];
    guint8 client[KGET_MAC_LEN], check[KGET_MAC_LEN];
    static const guint8 key[] = "0123456789abcdef";
    KgetMsg msg;

    memset(nonce, 1, sizeof(nonce));
    memset(other, 2, sizeof(other));
    kget_auth_proof(key, 16, TRUE, nonce, other, mac);
    kget_auth_proof(key, 16, FALSE, nonce, other, client);
    g_assert_false(kget_auth_equal(mac, client));
    kget_auth_proof(key, 16, TRUE, nonce, other, check);
    g_assert_true(kget_auth_equal(mac, check));
    kget_auth_proof(key, 15, TRUE, nonce, other, check);
    g_assert_false(kget_auth_equal(mac, check));

    kget_encode_hello(out, 0, nonce);
    decode_ok(out, &msg);
    g_assert_cmpuint(msg.type, ==, KGET_MSG_HELLO);
    g_assert_cmpmem(msg.nonce, KGET_NONCE_LEN, nonce, KGET_NONCE_LEN);
    check_truncations(out);

    g_byte_array_set_size(out, 0);
    kget_encode_hello_reply(out, 0, other, mac);
    decode_ok(out, &msg);
    g_assert_cmpmem(msg.nonce, KGET_NONCE_LEN, other, KGET_NONCE_LEN);
    g_assert_cmpmem(msg.mac, KGET_MAC_LEN, mac, KGET_MAC_LEN);
    check_truncations(out);

    g_byte_array_set_size(out, 0);
    kget_encode_auth(out, 0, client);
    decode_ok(out, &msg);
    g_assert_cmpmem(msg.mac, KGET_MAC_LEN, client, KGET_MAC_LEN);

    g_byte_array_set_size(out, 0);
    kget_encode_empty(out, KGET_REPLY(KGET_MSG_AUTH), 0);
    decode_ok(out, &msg);
    g_assert_cmpuint(msg.type, ==, KGET_REPLY(KGET_MSG_AUTH));
    check_truncations(out);
}

static void
test_have(void)
{
    g_autoptr(GByteArray) out = g_byte_array_new();
    VcPageHash hashes[KGET_MAX_BATCH];
    guint8 bitmap[KGET_MAX_BATCH / 8] = {0};
    KgetMsg msg;

    fill_hashes(hashes, KGET_MAX_BATCH, 3);
    kget_encode_hashes(out, KGET_MSG_HAVE, 77, hashes, KGET_MAX_BATCH);
    decode_ok(out, &msg);
    g_assert_cmpuint(msg.id, ==, 77);
    g_assert_cmpuint(msg.count, ==, KGET_MAX_BATCH);
    g_assert_cmpmem(msg.hashes, sizeof(hashes), hashes, sizeof(hashes));

    /* A count over the limit, and a count of 0. */
    out->data[OFF_BODY + 2] = 0x04;
    out->data[OFF_BODY + 3] = 0x01;
    frame_bad(out, KGET_ERROR_LIMIT);
    g_byte_array_set_size(out, 0);
    kget_encode_hashes(out, KGET_MSG_GET, 1, hashes, 1);
    check_truncations(out);
    memset(out->data + OFF_BODY, 0, 4);
    frame_bad(out, KGET_ERROR_LIMIT);

    /* The reply: 11 hashes, 2 bitmap bytes, bits past 11 must be 0. */
    bitmap[0] = 0x81;
    bitmap[1] = 0x04;
    g_byte_array_set_size(out, 0);
    kget_encode_have_reply(out, 77, 11, bitmap);
    decode_ok(out, &msg);
    g_assert_cmpuint(msg.count, ==, 11);
    g_assert_cmpuint(msg.bitmap[0], ==, 0x81);
    g_assert_cmpuint(msg.bitmap[1], ==, 0x04);
    check_truncations(out);
    out->data[out->len - 1] = 0x08;
    frame_bad(out, KGET_ERROR_PROTOCOL);
}

static void
test_credit(void)
{
    g_autoptr(GByteArray) out = g_byte_array_new();
    KgetMsg msg;

    kget_encode_credit(out, KGET_MSG_CREDIT, 5, KGET_MAX_CREDIT);
    decode_ok(out, &msg);
    g_assert_cmpuint(msg.bytes, ==, KGET_MAX_CREDIT);
    check_truncations(out);
    out->data[out->len - 1] = 1; /* 16 MiB + 1 */
    frame_bad(out, KGET_ERROR_LIMIT);
    memset(out->data + OFF_BODY, 0, 8);
    frame_bad(out, KGET_ERROR_LIMIT);

    g_byte_array_set_size(out, 0);
    kget_encode_credit(out, KGET_MSG_GRANT, 5, 4096);
    decode_ok(out, &msg);
    g_assert_cmpuint(msg.type, ==, KGET_MSG_GRANT);
    g_assert_cmpuint(msg.bytes, ==, 4096);
}

static void
test_put_get(void)
{
    g_autoptr(GByteArray) out = g_byte_array_new();
    g_autofree guint8 *data = g_malloc(KGET_CHUNK_MAX);
    VcPageHash hashes[2];
    KgetChunk chunks[2], back[2];
    KgetMsg msg;

    memset(data, 0x5a, KGET_CHUNK_MAX);
    fill_hashes(hashes, 2, 9);
    chunks[0] = (KgetChunk){&hashes[0], data, KGET_CHUNK_MAX};
    chunks[1] = (KgetChunk){&hashes[1], data, 17};
    kget_encode_put(out, 3, chunks, 2);
    decode_ok(out, &msg);
    g_assert_cmpuint(msg.count, ==, 2);
    kget_msg_chunks(&msg, back);
    g_assert_cmpmem(back[0].hash, 32, &hashes[0], 32);
    g_assert_cmpuint(back[0].len, ==, KGET_CHUNK_MAX);
    g_assert_cmpmem(back[1].data, 17, data, 17);
    g_assert_cmpuint(back[1].len, ==, 17);
    check_truncations(out);
    /* A chunk of 0 bytes, then one of 4097 bytes. */
    out->data[OFF_BODY + 4 + 32] = 0;
    out->data[OFF_BODY + 4 + 33] = 0;
    frame_bad(out, KGET_ERROR_LIMIT);
    out->data[OFF_BODY + 4 + 32] = 0x10;
    out->data[OFF_BODY + 4 + 33] = 0x01;
    frame_bad(out, KGET_ERROR_LIMIT);

    /* The GET reply may say 0 bytes (missing). */
    chunks[0] = (KgetChunk){NULL, data, 100};
    chunks[1] = (KgetChunk){NULL, NULL, 0};
    g_byte_array_set_size(out, 0);
    kget_encode_get_reply(out, 4, chunks, 2);
    decode_ok(out, &msg);
    kget_msg_chunks(&msg, back);
    g_assert_null(back[0].hash);
    g_assert_cmpuint(back[0].len, ==, 100);
    g_assert_cmpuint(back[1].len, ==, 0);
    check_truncations(out);

    g_byte_array_set_size(out, 0);
    kget_encode_counters(out, KGET_REPLY(KGET_MSG_PUT), 3, 2, 4113, 0, 0);
    decode_ok(out, &msg);
    g_assert_cmpuint(msg.n1, ==, 2);
    g_assert_cmpuint(msg.n2, ==, 4113);
    check_truncations(out);
    /* More new bytes than the new chunks can hold. */
    out->data[out->len - 2] = 0x30;
    frame_bad(out, KGET_ERROR_LIMIT);
}

static void
test_item(void)
{
    g_autoptr(GByteArray) out = g_byte_array_new();
    VcPageHash hashes[3];
    KgetMsg msg;

    kget_encode_item_begin(out, 1, "saline-7@12", "vm0/ram", 3 * 4096 - 5);
    decode_ok(out, &msg);
    g_assert_cmpstr(msg.snapshot, ==, "saline-7@12");
    g_assert_cmpstr(msg.item, ==, "vm0/ram");
    g_assert_cmpuint(msg.size, ==, 3 * 4096 - 5);
    check_truncations(out);
    /* An item over 64 GiB. */
    out->data[out->len - 5] = 0x10;
    frame_bad(out, KGET_ERROR_LIMIT);
    /* A bad item name: "vm0/ram" -> "vm0.ram" is fine, "vm0 ram" is not. */
    g_byte_array_set_size(out, 0);
    kget_encode_item_begin(out, 1, "g@1", "vm0/ram", 1);
    out->data[OFF_BODY + 1 + 3 + 1 + 3] = ' ';
    frame_bad(out, KGET_ERROR_PROTOCOL);
    out->data[OFF_BODY + 1 + 3 + 1 + 3] = '.';
    out->data[OFF_BODY + 1 + 3 + 1 + 4] = '.';
    frame_bad(out, KGET_ERROR_PROTOCOL); /* "vm0..am" */

    fill_hashes(hashes, 3, 1);
    g_byte_array_set_size(out, 0);
    kget_encode_item_blocks(out, 2, 1024, hashes, 3);
    decode_ok(out, &msg);
    g_assert_cmpuint(msg.first, ==, 1024);
    g_assert_cmpuint(msg.count, ==, 3);
    check_truncations(out);

    g_byte_array_set_size(out, 0);
    kget_encode_empty(out, KGET_MSG_ITEM_END, 3);
    decode_ok(out, &msg);
    g_assert_cmpuint(msg.type, ==, KGET_MSG_ITEM_END);
    g_byte_array_set_size(out, 0);
    kget_encode_counters(out, KGET_REPLY(KGET_MSG_ITEM_END), 3, 10, 20, 0, 0);
    decode_ok(out, &msg);
    g_assert_cmpuint(msg.n1, ==, 10);
    g_assert_cmpuint(msg.n2, ==, 20);
    /* New bytes over the stored ones. */
    g_byte_array_set_size(out, 0);
    kget_encode_counters(out, KGET_REPLY(KGET_MSG_ITEM_END), 3, 30, 20, 0, 0);
    frame_bad(out, KGET_ERROR_LIMIT);

    g_byte_array_set_size(out, 0);
    kget_encode_get_item(out, 4, "g@1", "vm1/disk-vda", 7, 1024);
    decode_ok(out, &msg);
    g_assert_cmpstr(msg.item, ==, "vm1/disk-vda");
    g_assert_cmpuint(msg.first, ==, 7);
    g_assert_cmpuint(msg.count, ==, 1024);
    check_truncations(out);

    g_byte_array_set_size(out, 0);
    kget_encode_get_item_reply(out, 4, 3 * 4096, 1, hashes, 2);
    decode_ok(out, &msg);
    g_assert_cmpuint(msg.size, ==, 3 * 4096);
    g_assert_cmpuint(msg.first, ==, 1);
    g_assert_cmpuint(msg.count, ==, 2);
    check_truncations(out);
    /* Blocks past the item's end. */
    out->data[OFF_BODY + 15] = 2;
    frame_bad(out, KGET_ERROR_LIMIT);
}

static void
test_seal(void)
{
    g_autoptr(GByteArray) out = g_byte_array_new();
    const char *items[] = {"vm0/ram", "vm0/vmstate", "vm1/domain.xml", NULL};
    g_autofree char *big = g_malloc(KGET_MAX_META_LEN);
    g_auto(GStrv) back = NULL;
    KgetMsg msg;

    kget_encode_seal(out, 9, "saline-1@2", items, 3, "{\"a\":1}", 7);
    decode_ok(out, &msg);
    g_assert_cmpstr(msg.snapshot, ==, "saline-1@2");
    g_assert_cmpuint(msg.count, ==, 3);
    g_assert_cmpuint(msg.meta_len, ==, 7);
    g_assert_cmpmem(msg.meta, 7, "{\"a\":1}", 7);
    back = kget_msg_seal_items(&msg);
    g_assert_cmpstrv(back, items);
    check_truncations(out);
    /* Metadata that is not UTF-8. */
    out->data[out->len - 2] = 0xff;
    frame_bad(out, KGET_ERROR_PROTOCOL);

    memset(big, 'x', KGET_MAX_META_LEN);
    g_byte_array_set_size(out, 0);
    kget_encode_seal(out, 9, "g@1", items, 1, big, KGET_MAX_META_LEN);
    decode_ok(out, &msg);
    g_assert_cmpuint(msg.meta_len, ==, KGET_MAX_META_LEN);
    /* One byte more, announced. */
    out->data[out->len - KGET_MAX_META_LEN - 1] = 1;
    frame_bad(out, KGET_ERROR_LIMIT);
}

static void
test_list(void)
{
    g_autoptr(GByteArray) out = g_byte_array_new();
    KgetListEntry entries[2] = {
        {"saline-1@1", TRUE, 1700000000, 3, 100000, 50000, 40000},
        {"saline-1@2", FALSE, 0, 1, 4096, 4096, 4096},
    };
    KgetListEntry back[2];
    KgetMsg msg;

    kget_encode_list(out, 1, "saline-1", TRUE);
    decode_ok(out, &msg);
    g_assert_cmpstr(msg.group, ==, "saline-1");
    g_assert_true(msg.pending);
    check_truncations(out);
    out->data[OFF_BODY] = 2;
    frame_bad(out, KGET_ERROR_PROTOCOL);
    g_byte_array_set_size(out, 0);
    kget_encode_list(out, 1, "", FALSE);
    decode_ok(out, &msg);
    g_assert_cmpstr(msg.group, ==, "");

    g_byte_array_set_size(out, 0);
    kget_encode_list_reply(out, 1, 42, 4242, TRUE, entries, 2);
    decode_ok(out, &msg);
    g_assert_cmpuint(msg.n1, ==, 42);
    g_assert_cmpuint(msg.n2, ==, 4242);
    g_assert_cmpuint(msg.n3, ==, 1);
    g_assert_cmpuint(msg.count, ==, 2);
    kget_msg_list_entries(&msg, back);
    g_assert_cmpstr(back[0].name, ==, "saline-1@1");
    g_assert_true(back[0].sealed);
    g_assert_cmpint(back[0].sealed_time, ==, 1700000000);
    g_assert_cmpuint(back[0].stored_bytes, ==, 50000);
    g_assert_cmpuint(back[1].new_bytes, ==, 4096);
    g_assert_false(back[1].sealed);
    check_truncations(out);
}

static void
test_names(void)
{
    g_autoptr(GByteArray) out = g_byte_array_new();
    KgetMsg msg;
    const char *good[] = {"a@0", "saline-42@4294967295", "x.y_z-1@7"};
    const char *bad[] = {"a", "@1", "a@", "a@01", "a@4294967296", "a b@1",
                         "a@1x", "a@@1", "a/b@1"};
    char group[KGET_MAX_GROUP_LEN + 1];
    guint32 seq;

    for (guint i = 0; i < G_N_ELEMENTS(good); i++) {
        g_assert_true(kget_snapshot_name_valid(good[i]));
    }
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_assert_false(kget_snapshot_name_valid(bad[i]));
    }
    g_assert_true(kget_snapshot_name_split("saline-9@12", group, &seq));
    g_assert_cmpstr(group, ==, "saline-9");
    g_assert_cmpuint(seq, ==, 12);
    g_assert_true(kget_item_name_valid("vm0/disk-vda"));
    g_assert_true(kget_item_name_valid("a:b.c"));
    g_assert_false(kget_item_name_valid(""));
    g_assert_false(kget_item_name_valid("../x"));
    g_assert_false(kget_item_name_valid("a+b"));

    kget_encode_name(out, KGET_MSG_RM, 1, "g@1");
    decode_ok(out, &msg);
    g_assert_cmpstr(msg.snapshot, ==, "g@1");
    check_truncations(out);
    /* An empty name is only for VERIFY. */
    out->data[OFF_BODY] = 0;
    g_byte_array_set_size(out, OFF_BODY + 1);
    decode_bad(out->data + VC_FRAME_HEADER_LEN, KGET_HEADER_LEN + 1,
               KGET_ERROR_PROTOCOL);
    out->data[VC_FRAME_HEADER_LEN + 1] = KGET_MSG_VERIFY;
    g_assert_true(kget_msg_decode(out->data + VC_FRAME_HEADER_LEN,
                                  KGET_HEADER_LEN + 1, &msg, NULL));
    g_assert_cmpstr(msg.snapshot, ==, "");
    /* A name with a NUL byte. */
    g_byte_array_set_size(out, 0);
    kget_encode_name(out, KGET_MSG_RM, 1, "g@1");
    out->data[OFF_BODY + 2] = 0;
    frame_bad(out, KGET_ERROR_PROTOCOL);
}

static void
test_gc_verify_error(void)
{
    g_autoptr(GByteArray) out = g_byte_array_new();
    g_autofree char *long_msg = g_strnfill(400, 'e');
    KgetMsg msg;

    kget_encode_gc(out, 2, 3);
    decode_ok(out, &msg);
    g_assert_cmpuint(msg.keep, ==, 3);
    check_truncations(out);
    out->data[OFF_BODY + 1] = 1; /* 65539 */
    frame_bad(out, KGET_ERROR_LIMIT);

    g_byte_array_set_size(out, 0);
    kget_encode_counters(out, KGET_REPLY(KGET_MSG_GC), 2, 1, 2, 3, 4);
    decode_ok(out, &msg);
    g_assert_cmpuint(msg.n4, ==, 4);
    check_truncations(out);

    g_byte_array_set_size(out, 0);
    kget_encode_counters(out, KGET_REPLY(KGET_MSG_VERIFY), 2, 10, 11, 0, 0);
    frame_bad(out, KGET_ERROR_LIMIT); /* more corrupt than checked */

    g_byte_array_set_size(out, 0);
    kget_encode_error(out, 5, KGET_ERROR_CORRUPT, long_msg);
    decode_ok(out, &msg);
    g_assert_cmpuint(msg.error_code, ==, KGET_ERROR_CORRUPT);
    g_assert_cmpuint(strlen(msg.error_message), ==, KGET_MAX_ERROR_LEN);
    check_truncations(out);
    out->data[OFF_BODY + 3] = KGET_ERROR_IO; /* local only */
    frame_bad(out, KGET_ERROR_LIMIT);
}

static void
test_header(void)
{
    g_autoptr(GByteArray) out = g_byte_array_new();
    guint8 *p;

    kget_encode_gc(out, 2, 3);
    p = out->data + VC_FRAME_HEADER_LEN;
    p[0] = 2;
    frame_bad(out, KGET_ERROR_VERSION);
    p[0] = 1;
    p[3] = 1;
    frame_bad(out, KGET_ERROR_PROTOCOL); /* flags */
    p[3] = 0;
    p[1] = 0x42;
    frame_bad(out, KGET_ERROR_PROTOCOL); /* unknown type */
    p[1] = KGET_REPLY(KGET_MSG_ERROR);
    frame_bad(out, KGET_ERROR_PROTOCOL);
    decode_bad(p, 5, KGET_ERROR_PROTOCOL);
    g_assert_cmpstr(kget_msg_type_name(KGET_MSG_GRANT), ==, "GRANT");
    g_assert_cmpstr(kget_msg_type_name(0x42), ==, "unknown");
}

static void
test_address(void)
{
    g_autofree char *host = NULL;
    guint16 port = 0;
    const char *bad[] = {"", ":7410", "h:0", "h:70000", "h:x", "[::1", "[::1]x"};

    g_assert_true(kget_parse_address("store.lan", &host, &port, NULL));
    g_assert_cmpstr(host, ==, "store.lan");
    g_assert_cmpuint(port, ==, KGET_DEFAULT_PORT);
    g_clear_pointer(&host, g_free);
    g_assert_true(kget_parse_address("10.0.0.1:99", &host, &port, NULL));
    g_assert_cmpstr(host, ==, "10.0.0.1");
    g_assert_cmpuint(port, ==, 99);
    g_clear_pointer(&host, g_free);
    g_assert_true(kget_parse_address("[::1]:7411", &host, &port, NULL));
    g_assert_cmpstr(host, ==, "::1");
    g_assert_cmpuint(port, ==, 7411);
    g_clear_pointer(&host, g_free);
    g_assert_true(kget_parse_address("fe80::1", &host, &port, NULL));
    g_assert_cmpstr(host, ==, "fe80::1");
    g_clear_pointer(&host, g_free);
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GError) error = NULL;

        g_assert_false(kget_parse_address(bad[i], &host, &port, &error));
        g_assert_nonnull(error);
    }
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/kget-proto/handshake", test_handshake);
    g_test_add_func("/kget-proto/have", test_have);
    g_test_add_func("/kget-proto/credit", test_credit);
    g_test_add_func("/kget-proto/put-get", test_put_get);
    g_test_add_func("/kget-proto/item", test_item);
    g_test_add_func("/kget-proto/seal", test_seal);
    g_test_add_func("/kget-proto/list", test_list);
    g_test_add_func("/kget-proto/names", test_names);
    g_test_add_func("/kget-proto/gc-verify-error", test_gc_verify_error);
    g_test_add_func("/kget-proto/header", test_header);
    g_test_add_func("/kget-proto/address", test_address);
    return g_test_run();
}
