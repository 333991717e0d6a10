/*
 * libFuzzer harness of the SSI codec (ssi-proto.c; README.md).
 *
 * Each input is decoded as a message without a key (the control socket),
 * with the fixed key as a datagram (no nonce) and as a TCP frame (the
 * fixed nonce), then once more after appending the MAC it lacks, so that
 * the field parser behind the MAC is reached; then fed to a VcFrameReader
 * and every frame decoded the same ways. A message that decodes is walked
 * with every getter, encoded again (it must come out byte for byte) and
 * checked against a replay window. Any inconsistency aborts.
 */
#include <nettle/hmac.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-ssi.h"
#include "vc-error.h"
#include "vc-frame.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const guint8 *data, size_t size);

/* Frames examined per input, tags walked per message: enough to reach
 * pipelined streams and repeated fields, few enough to stay fast. */
#define MAX_FRAMES 64
#define MAX_TAGS 32
#define SKEW_MS 30000

/* The offset of the cluster id in the header (ssi-proto.h). */
#define OFF_CLUSTER 8

static void
check_field(const SsiMsg *m, guint8 tag)
{
    guint n = ssi_msg_count(m, tag);
    const SsiFieldRef *first = ssi_msg_nth(m, tag, 0);
    guint32 v32;
    guint64 v64;
    gsize len = 0;
    const guint8 *b;
    g_autofree char *s = NULL;
    g_autofree char *s1 = NULL;
    g_auto(GStrv) v = NULL;
    g_auto(GStrv) v1 = NULL;

    if ((n == 0) != (first == NULL) || ssi_msg_nth(m, tag, n) != NULL) {
        abort();
    }
    for (guint i = 0; i < n; i++) {
        const SsiFieldRef *f = ssi_msg_nth(m, tag, i);

        if (!f || f->tag != tag) {
            abort();
        }
    }
    if (ssi_msg_u32(m, tag, &v32) != (first && first->len == 4) ||
        ssi_msg_u64(m, tag, &v64) != (first && first->len == 8)) {
        abort();
    }
    b = ssi_msg_bytes(m, tag, &len);
    if ((b == NULL) != (first == NULL) || (first && len != first->len) ||
        (first && len && memcmp(b, first->value, len) != 0)) {
        abort();
    }
    s = ssi_msg_str(m, tag, SSI_MSG_MAX);
    if (s && (!first || strlen(s) != first->len ||
              memcmp(s, first->value, first->len) != 0)) {
        abort();
    }
    /* A tighter bound only ever refuses more. */
    s1 = ssi_msg_str(m, tag, first && first->len ? first->len - 1 : 0);
    if (s1 && (!s || strcmp(s, s1) != 0)) {
        abort();
    }
    v = ssi_msg_strv(m, tag, SSI_FIELDS_MAX, SSI_MSG_MAX);
    if (v) {
        if (g_strv_length(v) != n || (n && (!s || strcmp(v[0], s) != 0))) {
            abort();
        }
    }
    v1 = ssi_msg_strv(m, tag, n ? n - 1 : 0, SSI_MSG_MAX);
    if (n && v1) {
        abort();
    }
}

static void
check_msg(const SsiMsg *m, const guint8 *key, const guint8 *nonce)
{
    g_autoptr(SsiMsgOut) out = ssi_out_new(m->hdr.type);
    g_autoptr(GBytes) again = NULL;
    g_autoptr(GError) error = NULL;
    guint8 seen[256] = {0};
    guint tags = 0;
    SsiReplay r = {0};

    if (!ssi_type_name(m->hdr.type)) {
        abort();
    }
    out->hdr = m->hdr;
    for (guint i = 0; i < m->fields->len; i++) {
        const SsiFieldRef *f = &g_array_index(m->fields, SsiFieldRef, i);

        ssi_out_bytes(out, f->tag, f->value, f->len);
        if (!seen[f->tag] && tags < MAX_TAGS) {
            seen[f->tag] = 1;
            tags++;
            check_field(m, f->tag);
        }
    }
    /* An absent tag answers "absent" everywhere. */
    if (!seen[0]) {
        check_field(m, 0);
    }

    again = ssi_out_encode(out, key, nonce, &error);
    if (!again || !g_bytes_equal(again, m->raw)) {
        abort();
    }

    /* At its own time a datagram is fresh once, then a replay. */
    if (ssi_replay_check(&r, &m->hdr, m->hdr.time_ms, SKEW_MS)) {
        if (ssi_replay_check(&r, &m->hdr, m->hdr.time_ms, SKEW_MS)) {
            abort();
        }
    } else if (m->hdr.incarnation != 0 || m->hdr.seq != 0) {
        /* Only seq 0 of incarnation 0 is stale in a fresh window. */
        if (m->hdr.time_ms + SKEW_MS >= m->hdr.time_ms) {
            abort();
        }
    }
}

static void
decode_one(GBytes *raw, const guint8 *key, guint64 cluster, const guint8 *nonce)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(SsiMsg) m = ssi_msg_decode(raw, key, cluster, nonce, &error);

    if (!m) {
        /* A failure is always reported, in the library's domain. */
        if (!error || error->domain != VC_ERROR || !error->message[0]) {
            abort();
        }
        return;
    }
    if (error || g_bytes_get_size(m->raw) != g_bytes_get_size(raw)) {
        abort();
    }
    check_msg(m, key, nonce);
}

static guint64
header_cluster(const guint8 *data, gsize len)
{
    guint64 id = 0;

    if (len < OFF_CLUSTER + 8) {
        return 0;
    }
    for (int i = 0; i < 8; i++) {
        id = id << 8 | data[OFF_CLUSTER + i];
    }
    return id;
}

/* The input as header and body, given the MAC it lacks. */
static void
decode_remac(const guint8 *data, gsize len, const guint8 *nonce)
{
    static const guint8 zero[SSI_NONCE_LEN];
    struct hmac_sha256_ctx ctx;
    GByteArray *a = g_byte_array_sized_new(len + SSI_MAC_LEN);
    guint8 mac[SSI_MAC_LEN];
    g_autoptr(GBytes) raw = NULL;

    hmac_sha256_set_key(&ctx, SSI_KEY_LEN, fuzz_ssi_key);
    hmac_sha256_update(&ctx, SSI_NONCE_LEN, nonce ? nonce : zero);
    hmac_sha256_update(&ctx, len, data);
    hmac_sha256_digest(&ctx, SSI_MAC_LEN, mac);
    g_byte_array_append(a, data, len);
    g_byte_array_append(a, mac, SSI_MAC_LEN);
    raw = g_byte_array_free_to_bytes(a);
    decode_one(raw, fuzz_ssi_key, header_cluster(data, len), nonce);
}

static void
decode_all(const guint8 *data, gsize len)
{
    g_autoptr(GBytes) raw = g_bytes_new(data, len);
    guint64 cluster = ssi_cluster_id(FUZZ_SSI_CLUSTER);

    decode_one(raw, NULL, 0, NULL);
    decode_one(raw, fuzz_ssi_key, cluster, NULL);
    decode_one(raw, fuzz_ssi_key, cluster, fuzz_ssi_nonce);
    /* The last byte picks the nonce, so that both stay reachable. */
    decode_remac(data, len, len && data[len - 1] & 1 ? fuzz_ssi_nonce : NULL);
}

/* The replay window over a sequence of headers cut from the input. */
static void
replay_walk(const guint8 *data, gsize len)
{
    SsiReplay r = {0};
    guint64 now = 0;
    VcCursor c;

    vc_cursor_init(&c, data, len);
    for (guint i = 0; i < 16; i++) {
        SsiHeader h = {0};
        SsiReplay before = r;
        guint8 step;

        if (!vc_cursor_u64(&c, &h.incarnation) || !vc_cursor_u8(&c, &step) ||
            !vc_cursor_u64(&c, &h.seq) || !vc_cursor_u64(&c, &h.time_ms)) {
            return;
        }
        now = now ? now + step : h.time_ms;
        if (ssi_replay_check(&r, &h, now, SKEW_MS)) {
            /* Accepted: the window moved to it, and it is stale now. */
            if (r.incarnation != h.incarnation || r.seq != h.seq ||
                r.time_ms != h.time_ms ||
                (h.incarnation == before.incarnation && h.seq <= before.seq) ||
                (h.incarnation != before.incarnation &&
                 before.incarnation != 0 && h.time_ms <= before.time_ms) ||
                ssi_replay_check(&r, &h, now, SKEW_MS)) {
                abort();
            }
        } else if (memcmp(&before, &r, sizeof(r)) != 0) {
            /* Refused: the window did not move. */
            abort();
        }
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
    g_autoptr(VcFrameReader) reader = vc_frame_reader_new(SSI_MSG_MAX);

    decode_all(data, size);
    replay_walk(data, size);

    vc_frame_reader_feed(reader, data, size);
    for (guint n = 0; n < MAX_FRAMES; n++) {
        g_autoptr(GBytes) payload = NULL;
        g_autoptr(GError) error = NULL;

        if (!vc_frame_reader_next(reader, &payload, &error) || !payload) {
            break;
        }
        decode_all(g_bytes_get_data(payload, NULL), g_bytes_get_size(payload));
    }
    return 0;
}
