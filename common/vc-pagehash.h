/*
 * Page hash: SHA-256 of one 4096-byte guest page.
 *
 * The QEMU patch and the daemons compute it the same way (nettle), so a
 * hash names page content across the whole system.
 */
#pragma once

#include <glib.h>

#define VC_PAGE_SIZE 4096
#define VC_PAGE_HASH_LEN 32
#define VC_PAGE_HASH_HEX_LEN (VC_PAGE_HASH_LEN * 2)

typedef struct {
    guint8 bytes[VC_PAGE_HASH_LEN];
} VcPageHash;

void vc_page_hash(const guint8 *page, VcPageHash *out);
void vc_sha256(const guint8 *data, gsize len, VcPageHash *out);
gboolean vc_page_hash_equal(const VcPageHash *a, const VcPageHash *b);
/* GHashTable functions for keys that point to a VcPageHash. SHA-256
 * output is uniform, so its first bytes serve as the table hash. */
guint vc_page_hash_hash(gconstpointer key);
gboolean vc_page_hash_equal_func(gconstpointer a, gconstpointer b);
gboolean vc_page_is_zero(const guint8 *page);

/* @hex must hold VC_PAGE_HASH_HEX_LEN + 1 bytes. */
void vc_page_hash_to_hex(const VcPageHash *hash, char *hex);
gboolean vc_page_hash_from_hex(const char *hex, VcPageHash *out,
                               GError **error);
