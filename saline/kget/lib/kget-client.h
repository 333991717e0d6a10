/*
 * A blocking client of kget-store (docs/protocols.md, "Kget+ protocol").
 *
 * One client is one authenticated connection. Calls are made from one
 * thread at a time, and while an item writer or reader is open the client
 * serves only it.
 *
 * Putting an item: kget_item_writer_new(), then blocks in any order with
 * kget_item_writer_put_block() (the block list stays in memory), then
 * kget_item_writer_finish(). Blocks are hashed as they come; full batches
 * go to a sender thread that asks the store which chunks it lacks (HAVE),
 * asks for credit and sends only those (PUT), while the caller reads and
 * hashes the next batch. Zero blocks are never sent; a block never put is
 * a zero block.
 */
#pragma once

#include <glib.h>

#include "kget-proto.h"

#define KGET_SIZE_UNKNOWN G_MAXUINT64
/* A read or write on the store's socket that makes no progress for this
 * long fails (EAGAIN: KGET_ERROR_IO). */
#define KGET_IO_TIMEOUT_S 60

typedef struct KgetClient KgetClient;
typedef struct KgetItemWriter KgetItemWriter;
typedef struct KgetItemReader KgetItemReader;

typedef struct {
    guint64 size;
    guint64 blocks;
    guint64 zero_blocks;
    guint64 chunks_sent; /* chunks put on the wire */
    guint64 bytes_sent;  /* their bytes */
    guint64 chunks_new;  /* of those, chunks the store did not hold */
    guint64 bytes_new;
    guint64 stored_bytes; /* the item's distinct chunk bytes (ITEM_END) */
} KgetItemStats;

/* Called now and then with what is done so far. */
typedef void (*KgetProgressFunc)(const KgetItemStats *stats, guint64 done,
                                 gpointer user_data);

/* @address is HOST[:PORT]. Failing to connect within @timeout_ms is
 * KGET_ERROR_UNREACHABLE; a store that cannot prove the key, or refuses
 * ours, KGET_ERROR_AUTH. */
KgetClient *kget_client_connect(const char *address, GBytes *key,
                                guint timeout_ms, GError **error);
void kget_client_free(KgetClient *client);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KgetClient, kget_client_free)

/* @size may be KGET_SIZE_UNKNOWN: blocks then come in order, all full
 * but the last. */
KgetItemWriter *kget_item_writer_new(KgetClient *client, const char *snapshot,
                                     const char *item, guint64 size);
void kget_item_writer_set_progress(KgetItemWriter *w, KgetProgressFunc func,
                                   gpointer user_data);
/* @data is copied; @len is 4096 but for the last block. */
gboolean kget_item_writer_put_block(KgetItemWriter *w, guint64 index,
                                    const guint8 *data, gsize len,
                                    GError **error);
/* Sends what is left and the block list; returns once the store has the
 * item on disk. @stats may be NULL. */
gboolean kget_item_writer_finish(KgetItemWriter *w, KgetItemStats *stats,
                                 GError **error);
void kget_item_writer_free(KgetItemWriter *w);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KgetItemWriter, kget_item_writer_free)

/* Puts an item read from @fd to its end (a regular file, a pipe). */
gboolean kget_client_put_fd(KgetClient *client, const char *snapshot,
                            const char *item, int fd, KgetProgressFunc func,
                            gpointer user_data, KgetItemStats *stats,
                            GError **error);

/*
 * A place nearer than the store that may hold some of an item's chunks:
 * the page index of the site a VM is redeployed at (kget-resolver.h).
 * Asked for @n full 4096-byte chunks, it copies those it has to
 * @pages + 4096 i, sets @found[i] (all FALSE on entry) and returns how
 * many it found. It cannot fail: whatever it does not find comes from the
 * store.
 */
typedef guint (*KgetChunkSource)(const VcPageHash *hashes, guint n,
                                 guint8 *pages, gboolean *found,
                                 gpointer user_data);
/* Given the @n full chunks the source was asked for and did not have (or
 * got wrong), once fetched from the store and checked: a site's page
 * index wants them (its other clients wait for them), see
 * kget_resolver_publish(). */
typedef void (*KgetChunkPublish)(const VcPageHash *hashes,
                                 const guint8 *const *pages, guint n,
                                 gpointer user_data);

/* Where a reader's chunks came from (zero blocks are neither). */
typedef struct {
    guint64 source_chunks; /* found by the source and sound */
    guint64 source_bytes;
    guint64 source_bad;    /* found by the source but failing their hash */
    guint64 store_chunks;  /* fetched from the store */
    guint64 store_bytes;
} KgetReaderStats;

/* An item of a sealed snapshot, block by block: fetched in batches, each
 * chunk checked against its hash (KGET_ERROR_CORRUPT otherwise). */
KgetItemReader *kget_item_reader_new(KgetClient *client, const char *snapshot,
                                     const char *item, GError **error);
/* Each batch's full chunks are asked of @func first. A chunk it finds is
 * re-hashed, as anything not from the store is: a mismatch is a miss.
 * Only the rest are fetched from the store. */
void kget_item_reader_set_source(KgetItemReader *r, KgetChunkSource func,
                                 gpointer user_data);
/* @func (called with the source's @user_data) gets the chunks the source
 * missed, after the store sent them. */
void kget_item_reader_set_publish(KgetItemReader *r, KgetChunkPublish func);
guint64 kget_item_reader_size(KgetItemReader *r);
guint64 kget_item_reader_n_blocks(KgetItemReader *r);
/* Block @index (zero blocks too); valid until the next call. */
const guint8 *kget_item_reader_block(KgetItemReader *r, guint64 index,
                                     gsize *len, GError **error);
void kget_item_reader_stats(KgetItemReader *r, KgetReaderStats *stats);
/* Writes the whole item to @fd. */
gboolean kget_item_reader_write_fd(KgetItemReader *r, int fd,
                                   KgetProgressFunc func, gpointer user_data,
                                   GError **error);
void kget_item_reader_free(KgetItemReader *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KgetItemReader, kget_item_reader_free)

/* Writes an item to @fd. */
gboolean kget_client_get_fd(KgetClient *client, const char *snapshot,
                            const char *item, int fd, KgetProgressFunc func,
                            gpointer user_data, GError **error);

gboolean kget_client_seal(KgetClient *client, const char *snapshot,
                          const char *const *items, guint n_items,
                          const char *meta, GError **error);
/* *entries: KgetListEntry; *chunks and *bytes: the store's totals. */
gboolean kget_client_list(KgetClient *client, const char *group,
                          gboolean pending, GArray **entries,
                          gboolean *truncated, guint64 *chunks,
                          guint64 *bytes, GError **error);
/* @snapshot NULL: the whole store. */
gboolean kget_client_verify(KgetClient *client, const char *snapshot,
                            guint64 *checked, guint64 *corrupt,
                            guint64 *missing, GError **error);
/* @keep 0: the store's setting. @removed: snapshots, items, chunks,
 * bytes. */
gboolean kget_client_gc(KgetClient *client, guint keep, guint64 removed[4],
                        GError **error);
gboolean kget_client_rm(KgetClient *client, const char *snapshot,
                        GError **error);
