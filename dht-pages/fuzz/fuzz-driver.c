/*
 * What the libFuzzer harnesses share: each input is decoded once as a
 * bare payload, then as a stream of frames through a VcFrameReader; every
 * message that decodes is encoded again by the harness (fuzz_reencode)
 * and must come out byte for byte. Any difference aborts.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz-driver.h"
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

void
fuzz_check_pages_reply(const DpMsg *msg, GByteArray *out)
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
    if (fuzz_reencode(&msg, out)) {
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
