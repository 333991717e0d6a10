#include "vc-pagehash.h"

#include <string.h>
#include <nettle/sha2.h>

#include "vc-error.h"

void
vc_sha256(const guint8 *data, gsize len, VcPageHash *out)
{
    struct sha256_ctx ctx;

    sha256_init(&ctx);
    sha256_update(&ctx, len, data);
    sha256_digest(&ctx, VC_PAGE_HASH_LEN, out->bytes);
}

void
vc_page_hash(const guint8 *page, VcPageHash *out)
{
    vc_sha256(page, VC_PAGE_SIZE, out);
}

gboolean
vc_page_hash_equal(const VcPageHash *a, const VcPageHash *b)
{
    return memcmp(a->bytes, b->bytes, VC_PAGE_HASH_LEN) == 0;
}

guint
vc_page_hash_hash(gconstpointer key)
{
    guint64 v;

    memcpy(&v, key, sizeof(v));
    return (guint)(v ^ (v >> 32));
}

gboolean
vc_page_hash_equal_func(gconstpointer a, gconstpointer b)
{
    return memcmp(a, b, VC_PAGE_HASH_LEN) == 0;
}

gboolean
vc_page_is_zero(const guint8 *page)
{
    /* Compare the page with itself shifted by one word: all zero iff the
     * first word is zero and every word equals its neighbour. */
    const guint64 *w = (const guint64 *)page;

    return w[0] == 0 && memcmp(page, page + 8, VC_PAGE_SIZE - 8) == 0;
}

void
vc_page_hash_to_hex(const VcPageHash *hash, char *hex)
{
    static const char digits[] = "0123456789abcdef";

    for (gsize i = 0; i < VC_PAGE_HASH_LEN; i++) {
        hex[2 * i] = digits[hash->bytes[i] >> 4];
        hex[2 * i + 1] = digits[hash->bytes[i] & 0xf];
    }
    hex[VC_PAGE_HASH_HEX_LEN] = '\0';
}

gboolean
vc_page_hash_from_hex(const char *hex, VcPageHash *out, GError **error)
{
    if (strlen(hex) != VC_PAGE_HASH_HEX_LEN) {
        g_set_error(error, VC_ERROR, VC_ERROR_INVALID,
                    "page hash '%.80s' is not %d hex digits", hex,
                    VC_PAGE_HASH_HEX_LEN);
        return FALSE;
    }
    for (gsize i = 0; i < VC_PAGE_HASH_LEN; i++) {
        int hi = g_ascii_xdigit_value(hex[2 * i]);
        int lo = g_ascii_xdigit_value(hex[2 * i + 1]);

        if (hi < 0 || lo < 0) {
            g_set_error(error, VC_ERROR, VC_ERROR_INVALID,
                        "page hash '%s' has a non-hex digit", hex);
            return FALSE;
        }
        out->bytes[i] = (guint8)(hi << 4 | lo);
    }
    return TRUE;
}
