/*
 * libFuzzer harness for the Kget+ codec (kget-proto.c): what kget-store
 * reads from a client and what the client reads from the store.
 *
 * Every message that decodes is encoded again and must come out byte for
 * byte; PUT and GET replies are walked with kget_msg_chunks(), SEAL with
 * kget_msg_seal_items(), LIST replies with kget_msg_list_entries(), and
 * handshake messages go through the proof functions the way the store
 * and the client use them. See README.md for how to build and run it.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz-driver.h"

static const guint8 site_key[] = "fuzz-site-key-0123456789";

static void
check_handshake(const KgetMsg *msg)
{
    guint8 ours[KGET_NONCE_LEN], server[KGET_MAC_LEN], client[KGET_MAC_LEN];

    memset(ours, 0xa5, sizeof(ours));
    if (msg->type == KGET_MSG_HELLO) {
        kget_auth_proof(site_key, sizeof(site_key) - 1, TRUE, msg->nonce, ours,
                        server);
        kget_auth_proof(site_key, sizeof(site_key) - 1, FALSE, msg->nonce,
                        ours, client);
    } else {
        kget_auth_proof(site_key, sizeof(site_key) - 1, TRUE, ours, msg->nonce,
                        server);
        kget_auth_proof(site_key, sizeof(site_key) - 1, FALSE, ours,
                        msg->nonce, client);
        /* A fuzzer does not forge HMACs: only a replayed proof matches. */
        if (kget_auth_equal(msg->mac, server) !=
            (memcmp(msg->mac, server, KGET_MAC_LEN) == 0)) {
            abort();
        }
    }
    /* The two directions never share a proof. */
    if (kget_auth_equal(server, client)) {
        abort();
    }
}

static void
reencode_chunks(const KgetMsg *msg, GByteArray *out)
{
    g_autofree KgetChunk *chunks = g_new(KgetChunk, msg->count);
    gsize total = 0;

    kget_msg_chunks(msg, chunks);
    for (guint32 i = 0; i < msg->count; i++) {
        if (chunks[i].len > KGET_CHUNK_MAX ||
            (msg->type == KGET_MSG_PUT) != (chunks[i].hash != NULL)) {
            abort();
        }
        total += (chunks[i].hash ? VC_PAGE_HASH_LEN : 0) + 2 + chunks[i].len;
    }
    if (total != msg->records_len) {
        abort();
    }
    if (msg->type == KGET_MSG_PUT) {
        kget_encode_put(out, msg->id, chunks, msg->count);
    } else {
        kget_encode_get_reply(out, msg->id, chunks, msg->count);
    }
}

static void
reencode_seal(const KgetMsg *msg, GByteArray *out)
{
    g_auto(GStrv) items = kget_msg_seal_items(msg);

    if (g_strv_length(items) != msg->count) {
        abort();
    }
    kget_encode_seal(out, msg->id, msg->snapshot, (const char *const *)items,
                     msg->count, msg->meta, msg->meta_len);
}

static void
reencode_list_reply(const KgetMsg *msg, GByteArray *out)
{
    g_autofree KgetListEntry *entries = g_new0(KgetListEntry, msg->count + 1);

    kget_msg_list_entries(msg, entries);
    for (guint32 i = 0; i < msg->count; i++) {
        if (!kget_snapshot_name_valid(entries[i].name)) {
            abort();
        }
    }
    kget_encode_list_reply(out, msg->id, msg->n1, msg->n2, msg->n3 != 0,
                           entries, msg->count);
}

gboolean
fuzz_reencode(const KgetMsg *msg, GByteArray *out)
{
    switch (msg->type) {
    case KGET_MSG_HELLO:
        check_handshake(msg);
        kget_encode_hello(out, msg->id, msg->nonce);
        return TRUE;
    case KGET_REPLY(KGET_MSG_HELLO):
        check_handshake(msg);
        kget_encode_hello_reply(out, msg->id, msg->nonce, msg->mac);
        return TRUE;
    case KGET_MSG_AUTH:
        kget_encode_auth(out, msg->id, msg->mac);
        return TRUE;
    case KGET_MSG_HAVE:
    case KGET_MSG_GET:
        kget_encode_hashes(out, msg->type, msg->id, msg->hashes, msg->count);
        return TRUE;
    case KGET_REPLY(KGET_MSG_HAVE):
        kget_encode_have_reply(out, msg->id, msg->count, msg->bitmap);
        return TRUE;
    case KGET_MSG_CREDIT:
    case KGET_MSG_GRANT:
        kget_encode_credit(out, msg->type, msg->id, msg->bytes);
        return TRUE;
    case KGET_MSG_PUT:
    case KGET_REPLY(KGET_MSG_GET):
        reencode_chunks(msg, out);
        return TRUE;
    case KGET_MSG_ITEM_BEGIN:
        kget_encode_item_begin(out, msg->id, msg->snapshot, msg->item,
                               msg->size);
        return TRUE;
    case KGET_MSG_ITEM_BLOCKS:
        kget_encode_item_blocks(out, msg->id, msg->first, msg->hashes,
                                msg->count);
        return TRUE;
    case KGET_MSG_SEAL:
        reencode_seal(msg, out);
        return TRUE;
    case KGET_MSG_LIST:
        kget_encode_list(out, msg->id, msg->group, msg->pending);
        return TRUE;
    case KGET_REPLY(KGET_MSG_LIST):
        reencode_list_reply(msg, out);
        return TRUE;
    case KGET_MSG_GET_ITEM:
        kget_encode_get_item(out, msg->id, msg->snapshot, msg->item,
                             msg->first, msg->count);
        return TRUE;
    case KGET_REPLY(KGET_MSG_GET_ITEM):
        kget_encode_get_item_reply(out, msg->id, msg->size, msg->first,
                                   msg->hashes, msg->count);
        return TRUE;
    case KGET_MSG_VERIFY:
    case KGET_MSG_RM:
        kget_encode_name(out, msg->type, msg->id, msg->snapshot);
        return TRUE;
    case KGET_MSG_GC:
        kget_encode_gc(out, msg->id, msg->keep);
        return TRUE;
    case KGET_REPLY(KGET_MSG_PUT):
    case KGET_REPLY(KGET_MSG_ITEM_END):
    case KGET_REPLY(KGET_MSG_VERIFY):
    case KGET_REPLY(KGET_MSG_GC):
        kget_encode_counters(out, msg->type, msg->id, msg->n1, msg->n2,
                             msg->n3, msg->n4);
        return TRUE;
    case KGET_MSG_ERROR:
        if (strlen(msg->error_message) > KGET_MAX_ERROR_LEN) {
            abort();
        }
        kget_encode_error(out, msg->id, msg->error_code, msg->error_message);
        return TRUE;
    default:
        kget_encode_empty(out, msg->type, msg->id);
        return TRUE;
    }
}
