/*
 * libFuzzer harness for the resolver protocol (what dht-pagesd reads from
 * local clients and what the CLI and the QEMU patch read back).
 *
 * The input is decoded once as a bare payload, then as a stream of
 * frames through a VcFrameReader. Every message that decodes is encoded
 * again with its encoder and must come out byte for byte; replies with
 * pages are walked with dp_msg_reply_page(). Any difference aborts.
 * See README.md for how to build and run it.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz-driver.h"
#include "vc-frame.h"

/* Re-encodes a resolver message; FALSE for a type of the peer protocol. */
gboolean
fuzz_reencode(const DpMsg *msg, GByteArray *out)
{
    switch (msg->type) {
    case DP_MSG_LOOKUP:
        dp_encode_hashes(out, msg->type, msg->id, msg->hashes, msg->count);
        return TRUE;
    case DP_REPLY(DP_MSG_LOOKUP):
        fuzz_check_pages_reply(msg, out);
        return TRUE;
    case DP_MSG_PUBLISH: {
        gsize rec = VC_PAGE_HASH_LEN + VC_PAGE_SIZE;
        g_autofree VcPageHash *hashes = g_new(VcPageHash, msg->count);
        g_autofree const guint8 **pages = g_new(const guint8 *, msg->count);

        for (guint32 i = 0; i < msg->count; i++) {
            memcpy(hashes[i].bytes, msg->records + i * rec, VC_PAGE_HASH_LEN);
            pages[i] = msg->records + i * rec + VC_PAGE_HASH_LEN;
        }
        dp_encode_publish(out, msg->id, hashes, pages, msg->count);
        return TRUE;
    }
    case DP_REPLY(DP_MSG_PUBLISH):
        dp_encode_publish_reply(out, msg->id, msg->stored, msg->rejected);
        return TRUE;
    case DP_MSG_STATS:
        dp_encode_empty(out, msg->type, msg->id);
        return TRUE;
    case DP_REPLY(DP_MSG_STATS):
        dp_encode_stats_reply(out, msg->id, msg->json, msg->json_len);
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

