/*
 * A client of the node's dht-pagesd resolver socket (docs/protocols.md,
 * "Resolver protocol"): the chunk source of a restore at the site a VM is
 * redeployed at. Its pages are re-hashed by the item reader like any page
 * that did not come from the store.
 *
 * dht-pages is an optimisation, never a requirement: a resolver whose
 * socket cannot be reached, or that fails later, finds nothing from then
 * on and says why at debug level only.
 */
#pragma once

#include <glib.h>

#include "vc-pagehash.h"

#define KGET_RESOLVER_SOCKET "/run/dht-pages/resolver.sock"
/* A LOOKUP that gets no answer for this long ends the resolver's use: a
 * miss may legitimately wait for the coalescing hold time (2 s). */
#define KGET_RESOLVER_TIMEOUT_S 10

typedef struct KgetResolver KgetResolver;

/* Connects to @path (NULL: KGET_RESOLVER_SOCKET). Never fails. */
KgetResolver *kget_resolver_new(const char *path);
/* TRUE while the resolver is connected and has not failed. */
gboolean kget_resolver_usable(KgetResolver *r);
/* A KgetChunkSource (kget-client.h); @user_data is the resolver. LOOKUPs
 * in batches of up to 1024 hashes. */
guint kget_resolver_lookup(const VcPageHash *hashes, guint n, guint8 *pages,
                           gboolean *found, gpointer user_data);
/* A KgetChunkPublish: offers pages fetched from the store to the site
 * (PUBLISH), as the resolver protocol expects of a client told "miss";
 * other clients of the node asking for them wait for it. */
void kget_resolver_publish(const VcPageHash *hashes,
                           const guint8 *const *pages, guint n,
                           gpointer user_data);
void kget_resolver_free(KgetResolver *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KgetResolver, kget_resolver_free)
