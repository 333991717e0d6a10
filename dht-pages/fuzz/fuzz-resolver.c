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

#include "dp-proto.h"
#include "vc-frame.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const guint8 *data, size_t size);

/* Frames examined per input: enough to reach pipelined sequences, few
 * enough that one input stays fast. */
#define MAX_FRAMES 64

static void
check_same(const GByteArray *out, const guint8 *payload, gsize len)
{
    guint32 prefix;

    if (out->len != VC_FRAME_HEADER_LEN + len) {
        abort();
    }
    prefix = (guint32)out->data[0] << 24 | (guint32)out->data[1] << 16 |
             (guint32)out->data[2] << 8 | out->data[3];
    if (prefix != len ||
        memcmp(out->data + VC_FRAME_HEADER_LEN, payload, len) != 0) {
        abort();
    }
}

static void
check_pages_reply(const DpMsg *msg, GByteArray *out)
{
    g_autofree const guint8 **pages = g_new0(const guint8 *, msg->count);
    guint32 hits = 0;

    for (guint32 i = 0; i < msg->count; i++) {
        pages[i] = dp_msg_reply_page(msg, i);
        if ((pages[i] != NULL) != (msg->status[i] == DP_PAGE_HIT)) {
            abort();
        }
        if (pages[i]) {
            /* Hits are packed in order, one page each. */
            if (pages[i] != msg->pages + (gsize)hits * VC_PAGE_SIZE) {
                abort();
            }
            hits++;
        }
    }
    if (hits != msg->n_hits) {
        abort();
    }
    dp_encode_pages_reply(out, msg->type, msg->id, pages, msg->count);
}

/* Re-encodes a resolver message; FALSE for a type of the peer protocol. */
static gboolean
reencode(const DpMsg *msg, GByteArray *out)
{
    switch (msg->type) {
    case DP_MSG_LOOKUP:
        dp_encode_hashes(out, msg->type, msg->id, msg->hashes, msg->count);
        return TRUE;
    case DP_REPLY(DP_MSG_LOOKUP):
        check_pages_reply(msg, out);
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

static void
one_payload(const guint8 *payload, gsize len)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GByteArray) out = NULL;
    DpMsg msg;

    if (!dp_msg_decode(payload, len, &msg, &error)) {
        /* A failure is always reported, in the library's domain. */
        if (!error || error->domain != DP_ERROR || !error->message[0]) {
            abort();
        }
        return;
    }
    if (error) {
        abort();
    }
    if (g_str_equal(dp_msg_type_name(msg.type), "unknown")) {
        abort();
    }
    out = g_byte_array_new();
    if (reencode(&msg, out)) {
        check_same(out, payload, len);
    }
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    /* An encoder refusing what the decoder accepted is a bug. */
    g_log_set_always_fatal(G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING);
    return 0;
}

int
LLVMFuzzerTestOneInput(const guint8 *data, size_t size)
{
    g_autoptr(VcFrameReader) reader = vc_frame_reader_new(DP_MAX_PAYLOAD);

    /* As one bare payload: reaches the decoder without a frame header. */
    one_payload(data, size);

    /* vc_frame_reader_next() on a reader never fed anything computes
     * NULL + 0, which UBSan reports: an issue of common/, not of the
     * protocol code under test here. */
    if (size == 0) {
        return 0;
    }
    vc_frame_reader_feed(reader, data, size);
    for (guint n = 0; n < MAX_FRAMES; n++) {
        g_autoptr(GBytes) payload = NULL;
        g_autoptr(GError) error = NULL;

        if (!vc_frame_reader_next(reader, &payload, &error)) {
            break; /* oversized frame: the stream is lost */
        }
        if (!payload) {
            break;
        }
        one_payload(g_bytes_get_data(payload, NULL), g_bytes_get_size(payload));
    }
    return 0;
}
