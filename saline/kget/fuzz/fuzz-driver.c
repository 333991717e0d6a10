/*
 * What the Kget+ harness shares with dht-pages' (dht-pages/fuzz): each
 * input is decoded once as a bare payload, then as a stream of frames
 * through a VcFrameReader; every message that decodes is encoded again
 * (fuzz_reencode) and must come out byte for byte. Any difference aborts.
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

static void
one_payload(const guint8 *payload, gsize len)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GByteArray) out = NULL;
    KgetMsg *msg = g_new(KgetMsg, 1);

    if (!kget_msg_decode(payload, len, msg, &error)) {
        /* A failure is always reported, in the library's domain. */
        if (!error || error->domain != KGET_ERROR || !error->message[0]) {
            abort();
        }
        g_free(msg);
        return;
    }
    if (error || g_str_equal(kget_msg_type_name(msg->type), "unknown")) {
        abort();
    }
    out = g_byte_array_new();
    if (fuzz_reencode(msg, out)) {
        check_same(out, payload, len);
    }
    g_free(msg);
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
    g_autoptr(VcFrameReader) reader = vc_frame_reader_new(KGET_MAX_PAYLOAD);

    one_payload(data, size);

    vc_frame_reader_feed(reader, data, size);
    for (guint n = 0; n < MAX_FRAMES; n++) {
        g_autoptr(GBytes) payload = NULL;
        g_autoptr(GError) error = NULL;

        if (!vc_frame_reader_next(reader, &payload, &error) || !payload) {
            break;
        }
        one_payload(g_bytes_get_data(payload, NULL), g_bytes_get_size(payload));
    }
    return 0;
}
