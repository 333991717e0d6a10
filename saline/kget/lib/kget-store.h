/*
 * The on-disk store of kget-store (README.md, "Guarantees of the store").
 *
 *   DIR/packs/NNNNNNNN.pack         chunks, append-only records:
 *                                   hash (32), be16 len, len bytes
 *   DIR/items/SNAPSHOT/i-ITEM       an item's block list ('/' of the
 *                                   item name as '+'), with a checksum
 *   DIR/snapshots/SNAPSHOT          the manifest of a sealed snapshot
 *
 * Block lists and manifests are written to a .tmp file, fsync'd, renamed
 * into place and their directory fsync'd; leftover .tmp files are
 * removed at open. The chunk index (hash -> pack, offset, length, number
 * of items using it) lives in memory and is rebuilt at open from the
 * packs and the block lists.
 *
 * At open, every pack's records are framed (a torn tail is cut off) but
 * only the newest pack is re-hashed: the older ones were fsync'd whole
 * before a newer one was started, while the newest may hold records a
 * power cut left half on disk that a later HAVE would otherwise report as
 * present (such a record, used by no item, is forgotten). Re-hashing
 * every pack at every start would cost minutes on a large store; older
 * packs are re-hashed lazily instead: on every read and by verify.
 *
 * Not thread-safe: one thread (kget-store's main loop) uses a store.
 */
#pragma once

#include <glib.h>

#include "kget-proto.h"

typedef struct KgetStore KgetStore;

typedef struct {
    guint64 pack_max;        /* bytes per pack file; 0: 256 MiB */
    gint64 pending_max_age;  /* s; older pending items go at open; <0 never */
} KgetStoreOptions;

typedef struct {
    guint64 checked;
    guint64 corrupt;
    guint64 missing;
    char *first_problem; /* NULL when all is well */
} KgetVerifyResult;

typedef struct {
    guint64 snapshots;
    guint64 items;
    guint64 chunks;
    guint64 bytes;
} KgetGcResult;

/* @options may be NULL for the defaults. */
KgetStore *kget_store_open(const char *dir, const KgetStoreOptions *options,
                           GError **error);
void kget_store_free(KgetStore *store);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KgetStore, kget_store_free)

/* Chunks and bytes held (distinct chunks). */
void kget_store_stats(KgetStore *store, guint64 *chunks, guint64 *bytes);

/* TRUE for the zero hash. A chunk found is kept by the next gc that is
 * told to keep fresh chunks (its sender is about to reference it). */
gboolean kget_store_has(KgetStore *store, const VcPageHash *hash);
/* Re-hashes every chunk first: a mismatch or an all-zero chunk stores
 * nothing (KGET_ERROR_REFUSED). Chunks are durable only after
 * kget_store_sync() (which kget_store_item_commit() calls). */
gboolean kget_store_put(KgetStore *store, const KgetChunk *chunks, guint n,
                        guint *n_new, guint64 *new_bytes, GError **error);
gboolean kget_store_sync(KgetStore *store, GError **error);
/* Reads and re-hashes one chunk into @buf (KGET_CHUNK_MAX bytes):
 * KGET_ERROR_NOT_FOUND, or KGET_ERROR_CORRUPT "corrupt chunk HASH". */
gboolean kget_store_get(KgetStore *store, const VcPageHash *hash, guint8 *buf,
                        guint16 *len, GError **error);

/* Stores an item's block list (the zero hash for a zero block) once its
 * chunks are all there with the right lengths and durable. */
gboolean kget_store_item_commit(KgetStore *store, const char *snapshot,
                                const char *item, guint64 size,
                                const VcPageHash *blocks, guint64 n_blocks,
                                guint64 *new_bytes, guint64 *stored_bytes,
                                GError **error);
/* The block list of an item of a sealed snapshot; *blocks is freed with
 * g_free(). */
gboolean kget_store_item_read(KgetStore *store, const char *snapshot,
                              const char *item, guint64 *size,
                              VcPageHash **blocks, guint64 *n_blocks,
                              GError **error);
gboolean kget_store_seal(KgetStore *store, const char *snapshot,
                         const char *const *items, guint n_items,
                         const char *meta, gsize meta_len, GError **error);
/* Snapshots sorted by group then sequence number; @group NULL or "" for
 * all. Returns the number of entries filled (at most @max), and sets
 * *total to the number that matched. */
guint kget_store_list(KgetStore *store, const char *group, gboolean pending,
                      KgetListEntry *out, guint max, guint *total);
/* The metadata of a sealed snapshot, or NULL. */
const char *kget_store_meta(KgetStore *store, const char *snapshot);
/* @snapshot NULL: every chunk of the store and every sealed snapshot's
 * references. */
gboolean kget_store_verify(KgetStore *store, const char *snapshot,
                           KgetVerifyResult *result, GError **error);
void kget_verify_result_clear(KgetVerifyResult *result);
/* Keeps the @keep newest sealed snapshots of each group; removes the
 * rest, the pending items of snapshots not in @busy (a set of names, or
 * NULL), then every chunk no item uses (but the fresh ones if
 * @keep_fresh), and compacts the packs that became mostly garbage. */
gboolean kget_store_gc(KgetStore *store, guint keep, GHashTable *busy,
                       gboolean keep_fresh, KgetGcResult *result,
                       GError **error);
/* Removes a snapshot, sealed or pending; its chunks go at the next gc. */
gboolean kget_store_rm(KgetStore *store, const char *snapshot,
                       GError **error);
