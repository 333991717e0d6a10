/*
 * libFuzzer harness for the peer protocol (what one dht-pagesd reads from
 * another over TCP, before and after the handshake).
 *
 * The input is decoded once as a bare payload, then as a stream of
 * frames through a VcFrameReader. Every message that decodes is encoded
 * again with its encoder and must come out byte for byte; replies with
 * pages are walked with dp_msg_reply_page(); handshake messages go
 * through the proof functions the way dp-conn.c uses them. Any
 * difference aborts. See README.md for how to build and run it.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz-driver.h"
#include "vc-frame.h"

static const guint8 site_key[] = "fuzz-site-key-0123456789";

static void
check_query_reply(const DpMsg *msg)
{
    guint32 total = 0;

    for (guint32 i = 0; i < msg->count; i++) {
        if (msg->status[i] > DP_MAX_HOLDERS) {
            abort();
        }
        total += msg->status[i];
    }
    if (total != msg->n_holders) {
        abort();
    }
}

static void
check_claim_reply(const DpMsg *msg)
{
    guint32 held = 0;

    for (guint32 i = 0; i < msg->count; i++) {
        if (msg->status[i] > DP_CLAIM_UNCLAIMED) {
            abort();
        }
        held += msg->status[i] == DP_CLAIM_HELD;
    }
    if (held != msg->n_holders) {
        abort();
    }
}

static void
check_node_id_hex(const DpNodeId *id)
{
    char hex[2 * DP_NODE_ID_LEN + 1];
    DpNodeId back;

    dp_node_id_to_hex(id, hex);
    if (strlen(hex) != 2 * DP_NODE_ID_LEN || !dp_node_id_from_hex(hex, &back) ||
        !dp_node_id_equal(id, &back)) {
        abort();
    }
}

/*
 * Plays the server's side of a HELLO and the client's side of its reply,
 * as dp-conn.c does: a proof made for a message must verify, a proof for
 * the other direction must not.
 */
static void
check_handshake(const DpMsg *msg)
{
    static const DpNodeId self = {{0x5e, 0x1f}};
    guint8 ours[DP_NONCE_LEN], server_proof[DP_MAC_LEN];
    guint8 client_proof[DP_MAC_LEN];
    g_autoptr(GByteArray) out = g_byte_array_new();
    DpMsg back;

    memset(ours, 0xa5, sizeof(ours));
    check_node_id_hex(&msg->node_id);
    switch (msg->type) {
    case DP_MSG_HELLO:
        /* We are the server; the HELLO came from the client. */
        dp_auth_proof(site_key, sizeof(site_key) - 1, TRUE, msg->nonce, ours,
                      &msg->node_id, &self, server_proof);
        dp_auth_proof(site_key, sizeof(site_key) - 1, FALSE, msg->nonce, ours,
                      &msg->node_id, &self, client_proof);
        dp_encode_hello_reply(out, msg->id, &self, ours, server_proof);
        if (!dp_msg_decode(out->data + VC_FRAME_HEADER_LEN,
                           out->len - VC_FRAME_HEADER_LEN, &back, NULL) ||
            back.type != DP_REPLY(DP_MSG_HELLO) ||
            !dp_auth_equal(back.mac, server_proof)) {
            abort();
        }
        break;
    case DP_REPLY(DP_MSG_HELLO):
        /* We are the client that sent HELLO with nonce @ours. */
        dp_auth_proof(site_key, sizeof(site_key) - 1, TRUE, ours, msg->nonce,
                      &self, &msg->node_id, server_proof);
        dp_auth_proof(site_key, sizeof(site_key) - 1, FALSE, ours, msg->nonce,
                      &self, &msg->node_id, client_proof);
        /* A fuzzer does not forge HMACs: only a replayed proof matches. */
        if (dp_auth_equal(msg->mac, server_proof) !=
            (memcmp(msg->mac, server_proof, DP_MAC_LEN) == 0)) {
            abort();
        }
        dp_encode_auth(out, msg->id, client_proof);
        if (!dp_msg_decode(out->data + VC_FRAME_HEADER_LEN,
                           out->len - VC_FRAME_HEADER_LEN, &back, NULL) ||
            back.type != DP_MSG_AUTH ||
            !dp_auth_equal(back.mac, client_proof)) {
            abort();
        }
        break;
    default:
        return;
    }
    if (dp_auth_equal(server_proof, client_proof)) {
        abort();
    }
}

/* Re-encodes a peer message; FALSE for a type of the resolver protocol. */
gboolean
fuzz_reencode(const DpMsg *msg, GByteArray *out)
{
    switch (msg->type) {
    case DP_MSG_HELLO:
        if (strlen(msg->site) < 1 || strlen(msg->site) > DP_MAX_SITE_LEN) {
            abort();
        }
        check_handshake(msg);
        dp_encode_hello(out, msg->id, &msg->node_id, msg->nonce, msg->port,
                        msg->site);
        return TRUE;
    case DP_REPLY(DP_MSG_HELLO):
        check_handshake(msg);
        dp_encode_hello_reply(out, msg->id, &msg->node_id, msg->nonce,
                              msg->mac);
        return TRUE;
    case DP_MSG_AUTH: {
        guint8 copy[DP_MAC_LEN];

        memcpy(copy, msg->mac, DP_MAC_LEN);
        if (!dp_auth_equal(msg->mac, copy)) {
            abort();
        }
        copy[msg->id % DP_MAC_LEN] ^= (guint8)(1u << (msg->id % 8));
        if (dp_auth_equal(msg->mac, copy)) {
            abort();
        }
        dp_encode_auth(out, msg->id, msg->mac);
        return TRUE;
    }
    case DP_MSG_INDEX_ADD:
    case DP_MSG_INDEX_DEL:
    case DP_MSG_INDEX_QUERY:
    case DP_MSG_PAGE_GET:
    case DP_MSG_CLAIM_DONE:
    case DP_MSG_CLAIM_DROP:
        dp_encode_hashes(out, msg->type, msg->id, msg->hashes, msg->count);
        return TRUE;
    case DP_MSG_CLAIM:
        if (msg->wait_ms < 1 || msg->wait_ms > DP_MAX_WAIT_MS) {
            abort();
        }
        dp_encode_claim(out, msg->id, msg->wait_ms, msg->hashes, msg->count);
        return TRUE;
    case DP_REPLY(DP_MSG_CLAIM):
        check_claim_reply(msg);
        dp_encode_claim_reply(out, msg->id, msg->status, msg->count,
                              msg->holders);
        return TRUE;
    case DP_REPLY(DP_MSG_INDEX_ADD):
    case DP_REPLY(DP_MSG_INDEX_DEL):
    case DP_REPLY(DP_MSG_CLAIM_DONE):
    case DP_REPLY(DP_MSG_CLAIM_DROP):
        dp_encode_count_reply(out, msg->type, msg->id, msg->count);
        return TRUE;
    case DP_REPLY(DP_MSG_INDEX_QUERY):
        check_query_reply(msg);
        dp_encode_query_reply(out, msg->id, msg->status, msg->count,
                              msg->holders);
        return TRUE;
    case DP_REPLY(DP_MSG_PAGE_GET):
        fuzz_check_pages_reply(msg, out);
        return TRUE;
    case DP_MSG_PING:
    case DP_REPLY(DP_MSG_PING):
    case DP_REPLY(DP_MSG_AUTH):
        dp_encode_empty(out, msg->type, msg->id);
        return TRUE;
    case DP_MSG_ERROR:
        if (strlen(msg->error_message) > DP_MAX_ERROR_LEN) {
            abort();
        }
        dp_encode_error(out, msg->id, msg->error_code, msg->error_message);
        return TRUE;
    default:
        return FALSE;
    }
}

