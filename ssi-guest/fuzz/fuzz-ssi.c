/*
 * libFuzzer harness of the SSI codec (ssi-proto.c; README.md).
 *
 * Each input is decoded as a message without a key (the control socket),
 * with the fixed key as a datagram (no nonce) and as a TCP frame (the
 * fixed nonce), then once more after appending the MAC it lacks, so that
 * the field parser behind the MAC is reached; then fed to a VcFrameReader
 * and every frame decoded the same ways. A message that decodes is walked
 * with every getter, run through every parser of ssi-parse.c (what they
 * accept must hold their invariants), encoded again (it must come out
 * byte for byte) and checked against a replay window. Any inconsistency
 * aborts.
 */
#include <arpa/inet.h>
#include <nettle/hmac.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-ssi.h"
#include "ssi-parse.h"
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

/* A refusal is reported in the library's domain. */
static void
check_refusal(GError *error)
{
    if (!error || error->domain != VC_ERROR || !error->message[0]) {
        abort();
    }
}

static void
check_view(const SsiMsg *m)
{
    g_autoptr(GError) error = NULL;
    SsiView view;
    guint32 next_id = 0, prev = 0;

    if (!ssi_parse_view(m, &view, &error)) {
        check_refusal(error);
        if (view.n_members != 0) {
            abort();
        }
        return;
    }
    if (error || view.n_members == 0 || view.n_members > SSI_MAX_NODES ||
        view.n_members != ssi_msg_count(m, SSI_F_MEMBER) ||
        !ssi_msg_u32(m, SSI_F_NEXT_ID, &next_id) || next_id != view.next_id) {
        abort();
    }
    for (guint i = 0; i < view.n_members; i++) {
        const SsiViewMember *vm = &view.members[i];
        const SsiFieldRef *f = ssi_msg_nth(m, SSI_F_MEMBER, i);
        struct in_addr a;

        if (vm->id == 0 || vm->id > SSI_MAX_NODES || vm->id <= prev ||
            inet_pton(AF_INET, vm->addr, &a) != 1 || f->len != 9 ||
            memcmp(&a, f->value + 4, 4) != 0 ||
            vm->leaving != (f->value[8] != 0)) {
            abort();
        }
        prev = vm->id;
    }
}

static void
check_gpids(const SsiMsg *m)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GArray) gpids = ssi_parse_gpids(m, &error);
    gsize len = 0;
    const guint8 *b = ssi_msg_bytes(m, SSI_F_GPIDS, &len);

    if (!gpids) {
        check_refusal(error);
        return;
    }
    if (error || !b || len != gpids->len * 4u || gpids->len > SSI_GPIDS_MAX) {
        abort();
    }
    for (guint i = 0; i < gpids->len; i++) {
        const guint8 *p = b + 4 * i;
        guint32 v = (guint32)p[0] << 24 | (guint32)p[1] << 16 |
                    (guint32)p[2] << 8 | p[3];

        if (g_array_index(gpids, guint32, i) != v) {
            abort();
        }
    }
}

static void
check_busy(const SsiMsg *m)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GArray) busy = ssi_parse_busy(m, &error);
    gsize len = 0;
    const guint8 *b = ssi_msg_bytes(m, SSI_F_BUSY, &len);

    if (!busy) {
        check_refusal(error);
        return;
    }
    if (error || !b || len != busy->len * 4u || busy->len > SSI_GPIDS_MAX) {
        abort();
    }
}

/* A configuration that parses formats to a text that parses to it. */
static void
check_sched(const SsiMsg *m)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *text = ssi_msg_str(m, SSI_F_SCHED, SSI_SCHED_TEXT_MAX);
    g_autofree char *again = NULL;
    SsiSched s, back;

    if (!text) {
        return;
    }
    ssi_sched_init(&s);
    if (!ssi_sched_parse(text, &s, &error)) {
        check_refusal(error);
        return;
    }
    if (error || s.n_policies > SSI_SCHED_POLICIES_MAX ||
        s.n_groups > SSI_SCHED_GROUPS_MAX) {
        abort();
    }
    again = ssi_sched_format(&s);
    if (!ssi_sched_parse(again, &back, NULL) ||
        memcmp(&s, &back, sizeof(s)) != 0) {
        abort();
    }
}

static void
check_proc_meta(const SsiMsg *m)
{
    g_autoptr(GError) error = NULL;
    g_auto(SsiProcMeta) meta = {0};
    gsize len = 0;
    const guint8 *d;

    if (!ssi_parse_proc_meta(m, &meta, &error)) {
        check_refusal(error);
        if (meta.argv || meta.stdin_pending) {
            abort();
        }
        return;
    }
    d = ssi_msg_bytes(m, SSI_F_DATA, &len);
    if (error || !meta.argv || !meta.argv[0] ||
        g_strv_length(meta.argv) != ssi_msg_count(m, SSI_F_ARG) ||
        g_strv_length(meta.argv) > SSI_ARGS_MAX ||
        ssi_msg_count(m, SSI_F_INODE) != 3 || !meta.stdin_pending ||
        meta.stdin_pending->len != (d ? len : 0) ||
        (len && memcmp(meta.stdin_pending->data, d, len) != 0)) {
        abort();
    }
}

static void
check_file(const SsiMsg *m)
{
    g_autoptr(GError) error = NULL;
    g_auto(SsiFileChunk) f = {0};

    if (!ssi_parse_file(m, &f, &error)) {
        check_refusal(error);
        if (f.name || f.path || f.data) {
            abort();
        }
        return;
    }
    if (error || m->hdr.type != SSI_FILE || !f.name == !f.path || !f.data ||
        f.mode > 0777) {
        abort();
    }
    if (f.name && (!f.name[0] || f.name[0] == '.' || strchr(f.name, '/') ||
                   strlen(f.name) > SSI_NAME_MAX)) {
        abort();
    }
    if (f.path) {
        gsize n = strlen(f.path);

        if (f.path[0] != '/' || n > SSI_PATH_MAX || strstr(f.path, "/../") ||
            strstr(f.path, "/./") || g_str_has_suffix(f.path, "/..") ||
            g_str_has_suffix(f.path, "/.") || !ssi_parse_path_ok(f.path)) {
            abort();
        }
    }
}

static void
check_requests(const SsiMsg *m)
{
    g_autoptr(GError) e_exec = NULL;
    g_autoptr(GError) e_kill = NULL;
    g_autoptr(GError) e_mig = NULL;
    g_auto(SsiExecRequest) req = {0};
    guint32 gpid = 0, v = 0, g2 = 0;

    if (ssi_parse_exec(m, &req, &e_exec)) {
        if (e_exec || !req.argv || !req.argv[0] ||
            g_strv_length(req.argv) != ssi_msg_count(m, SSI_F_ARG) ||
            !ssi_msg_u32(m, SSI_F_GPID, &g2) || g2 != req.gpid) {
            abort();
        }
    } else {
        check_refusal(e_exec);
        if (req.argv) {
            abort();
        }
    }
    if (ssi_parse_kill(m, &gpid, &v, &e_kill)) {
        if (e_kill || v > SSI_SIGNAL_MAX) {
            abort();
        }
    } else {
        check_refusal(e_kill);
    }
    if (ssi_parse_migrate(m, &gpid, &v, &e_mig)) {
        if (e_mig || !ssi_msg_u32(m, SSI_F_NODE, &g2) || g2 != v) {
            abort();
        }
    } else {
        check_refusal(e_mig);
    }
}

/* Every parser of ssi-parse.c, whatever the type: ssid picks them by
 * type, but none may trust it. */
static void
check_parsers(const SsiMsg *m)
{
    check_view(m);
    check_gpids(m);
    check_busy(m);
    check_sched(m);
    check_proc_meta(m);
    check_file(m);
    check_requests(m);
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
    check_parsers(m);

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
