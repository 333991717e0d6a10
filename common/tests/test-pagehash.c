#include <string.h>

#include "vc-pagehash.h"

/* Known answers computed independently with coreutils sha256sum. */
static void
check_hex(const VcPageHash *h, const char *expected)
{
    char hex[VC_PAGE_HASH_HEX_LEN + 1];

    vc_page_hash_to_hex(h, hex);
    g_assert_cmpstr(hex, ==, expected);
}

static void
test_sha256_vectors(void)
{
    VcPageHash h;

    vc_sha256((const guint8 *)"", 0, &h);
    check_hex(&h, "e3b0c44298fc1c149afbf4c8996fb924"
                  "27ae41e4649b934ca495991b7852b855");
    vc_sha256((const guint8 *)"abc", 3, &h);
    check_hex(&h, "ba7816bf8f01cfea414140de5dae2223"
                  "b00361a396177a9cb410ff61f20015ad");
}

static void
test_page_vectors(void)
{
    g_autofree guint8 *page = g_malloc0(VC_PAGE_SIZE);
    VcPageHash h;

    vc_page_hash(page, &h);
    check_hex(&h, "ad7facb2586fc6e966c004d7d1d16b02"
                  "4f5805ff7cb47c7a85dabd8b48892ca7");
    g_assert_true(vc_page_is_zero(page));

    memset(page, 'a', VC_PAGE_SIZE);
    vc_page_hash(page, &h);
    check_hex(&h, "c93eee2d0db02f10acc7460d9576e122"
                  "dcf8cd53c4bf8dfcae1b3e74ebcfff5a");
    g_assert_false(vc_page_is_zero(page));

    for (gsize i = 0; i < VC_PAGE_SIZE; i++) {
        page[i] = (guint8)i;
    }
    vc_page_hash(page, &h);
    check_hex(&h, "c8f5d0341d54d951a71b136e6e2afcb1"
                  "4d11ed8489a7ae126a8fee0df6ecf193");
}

static void
test_zero_detection(void)
{
    g_autofree guint8 *page = g_malloc0(VC_PAGE_SIZE);

    /* A single set byte anywhere makes the page non-zero. */
    for (gsize off = 0; off < VC_PAGE_SIZE; off += 511) {
        page[off] = 1;
        g_assert_false(vc_page_is_zero(page));
        page[off] = 0;
    }
    page[VC_PAGE_SIZE - 1] = 0x80;
    g_assert_false(vc_page_is_zero(page));
}

static void
test_hex_roundtrip(void)
{
    g_autoptr(GError) error = NULL;
    VcPageHash a, b;
    char hex[VC_PAGE_HASH_HEX_LEN + 1];

    vc_sha256((const guint8 *)"x", 1, &a);
    vc_page_hash_to_hex(&a, hex);
    g_assert_true(vc_page_hash_from_hex(hex, &b, &error));
    g_assert_no_error(error);
    g_assert_true(vc_page_hash_equal(&a, &b));

    /* Upper case is accepted. */
    for (char *p = hex; *p; p++) {
        *p = g_ascii_toupper(*p);
    }
    g_assert_true(vc_page_hash_from_hex(hex, &b, NULL));
    g_assert_true(vc_page_hash_equal(&a, &b));
}

static void
test_hex_bad(void)
{
    const char *bad[] = {
        "",
        "abc",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555",
        "g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85 ",
    };

    for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GError) error = NULL;
        VcPageHash h;

        g_assert_false(vc_page_hash_from_hex(bad[i], &h, &error));
        g_assert_nonnull(error);
    }
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/pagehash/sha256-vectors", test_sha256_vectors);
    g_test_add_func("/pagehash/page-vectors", test_page_vectors);
    g_test_add_func("/pagehash/zero", test_zero_detection);
    g_test_add_func("/pagehash/hex-roundtrip", test_hex_roundtrip);
    g_test_add_func("/pagehash/hex-bad", test_hex_bad);
    return g_test_run();
}
