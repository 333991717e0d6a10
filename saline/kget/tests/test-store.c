/* The on-disk store of kget-store: chunks, items, seals, gc, and what a
 * crash can leave behind. */
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utime.h>

#include "kget-store.h"

typedef struct {
    char *dir;
    KgetStore *store;
} Fixture;

static void
setup(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;

    f->dir = g_dir_make_tmp("test-kget-store-XXXXXX", &error);
    g_assert_no_error(error);
    f->store = kget_store_open(f->dir, NULL, &error);
    g_assert_no_error(error);
}

static void
rm_rf(const char *path)
{
    g_autoptr(GDir) d = g_dir_open(path, 0, NULL);
    const char *name;

    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *sub = g_build_filename(path, name, NULL);

        if (g_file_test(sub, G_FILE_TEST_IS_DIR)) {
            rm_rf(sub);
        } else {
            g_unlink(sub);
        }
    }
    g_rmdir(path);
}

static void
teardown(Fixture *f, gconstpointer data)
{
    kget_store_free(f->store);
    rm_rf(f->dir);
    g_free(f->dir);
}

static void
reopen(Fixture *f, const KgetStoreOptions *options)
{
    g_autoptr(GError) error = NULL;

    kget_store_free(f->store);
    f->store = kget_store_open(f->dir, options, &error);
    g_assert_no_error(error);
}

/* Block @i of a test item: its bytes name @tag and @i. */
static void
make_block(guint8 *buf, guint tag, guint64 i)
{
    for (guint j = 0; j < VC_PAGE_SIZE; j++) {
        buf[j] = (guint8)(tag * 13 + i * 7 + j / 64);
    }
    memcpy(buf, &i, sizeof(i));
    buf[8] = (guint8)tag;
}

/*
 * Puts an item of @n_blocks blocks of pattern @tag (every third block
 * zero, and the last @tail bytes long when @tail) and commits it.
 */
static void
put_item(KgetStore *store, const char *snap, const char *item, guint tag,
         guint64 n_blocks, guint tail, guint64 *new_bytes)
{
    g_autoptr(GError) error = NULL;
    g_autofree VcPageHash *blocks = g_new0(VcPageHash, n_blocks);
    guint8 buf[VC_PAGE_SIZE];
    guint64 size = n_blocks * VC_PAGE_SIZE - (tail ? VC_PAGE_SIZE - tail : 0);
    guint64 nb = 0, sb = 0;

    for (guint64 i = 0; i < n_blocks; i++) {
        guint16 len = (guint16)MIN((guint64)VC_PAGE_SIZE,
                                   size - i * VC_PAGE_SIZE);
        KgetChunk c = {&blocks[i], buf, len};
        guint n_new;
        guint64 bytes;

        if (i % 3 == 1) {
            continue; /* a zero block: the zero hash */
        }
        make_block(buf, tag, i);
        vc_sha256(buf, len, &blocks[i]);
        g_assert_true(kget_store_put(store, &c, 1, &n_new, &bytes, &error));
        g_assert_no_error(error);
    }
    g_assert_true(kget_store_item_commit(store, snap, item, size, blocks,
                                         n_blocks, &nb, &sb, &error));
    g_assert_no_error(error);
    if (new_bytes) {
        *new_bytes = nb;
    }
}

static void
seal(KgetStore *store, const char *snap, const char *item)
{
    g_autoptr(GError) error = NULL;
    const char *items[] = {item};

    g_assert_true(kget_store_seal(store, snap, items, 1, "{}", 2, &error));
    g_assert_no_error(error);
}

/* Reads an item back, block by block, as a restore does. */
static gboolean
read_item(KgetStore *store, const char *snap, const char *item, guint tag,
          GError **error)
{
    g_autofree VcPageHash *blocks = NULL;
    guint64 size, n;
    guint8 buf[KGET_CHUNK_MAX], want[VC_PAGE_SIZE];

    if (!kget_store_item_read(store, snap, item, &size, &blocks, &n, error)) {
        return FALSE;
    }
    for (guint64 i = 0; i < n; i++) {
        guint16 len;
        VcPageHash zero = {{0}};

        if (vc_page_hash_equal(&blocks[i], &zero)) {
            g_assert_cmpuint(i % 3, ==, 1);
            continue;
        }
        if (!kget_store_get(store, &blocks[i], buf, &len, error)) {
            return FALSE;
        }
        make_block(want, tag, i);
        g_assert_cmpmem(buf, len, want, len);
    }
    return TRUE;
}

static guint
list_count(KgetStore *store, gboolean pending)
{
    KgetListEntry e[8];
    guint total;

    return kget_store_list(store, NULL, pending, e, 8, &total);
}

static void
test_chunks(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    guint8 a[VC_PAGE_SIZE], zero[VC_PAGE_SIZE] = {0}, buf[KGET_CHUNK_MAX];
    VcPageHash ha, hz, hbad;
    KgetChunk c[2];
    guint n_new;
    guint64 bytes, chunks, total;
    guint16 len;

    make_block(a, 1, 1);
    vc_sha256(a, sizeof(a), &ha);
    vc_sha256(zero, sizeof(zero), &hz);
    hbad = ha;
    hbad.bytes[0] ^= 1;
    g_assert_false(kget_store_has(f->store, &ha));
    g_assert_true(kget_store_has(f->store, &(VcPageHash){{0}}));

    /* A mismatch anywhere in a batch stores nothing of it. */
    c[0] = (KgetChunk){&ha, a, VC_PAGE_SIZE};
    c[1] = (KgetChunk){&hbad, a, VC_PAGE_SIZE};
    g_assert_false(kget_store_put(f->store, c, 2, &n_new, &bytes, &error));
    g_assert_error(error, KGET_ERROR, KGET_ERROR_REFUSED);
    g_clear_error(&error);
    g_assert_false(kget_store_has(f->store, &ha));
    /* Zero chunks are never stored. */
    c[1] = (KgetChunk){&hz, zero, VC_PAGE_SIZE};
    g_assert_false(kget_store_put(f->store, c, 2, &n_new, &bytes, &error));
    g_assert_error(error, KGET_ERROR, KGET_ERROR_REFUSED);
    g_clear_error(&error);

    /* The same chunk twice is stored once. */
    c[1] = c[0];
    g_assert_true(kget_store_put(f->store, c, 2, &n_new, &bytes, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(n_new, ==, 1);
    g_assert_cmpuint(bytes, ==, VC_PAGE_SIZE);
    g_assert_true(kget_store_put(f->store, c, 1, &n_new, &bytes, &error));
    g_assert_cmpuint(n_new, ==, 0);
    kget_store_stats(f->store, &chunks, &total);
    g_assert_cmpuint(chunks, ==, 1);
    g_assert_cmpuint(total, ==, VC_PAGE_SIZE);
    g_assert_true(kget_store_get(f->store, &ha, buf, &len, &error));
    g_assert_cmpmem(buf, len, a, sizeof(a));
    g_assert_false(kget_store_get(f->store, &hbad, buf, &len, &error));
    g_assert_error(error, KGET_ERROR, KGET_ERROR_NOT_FOUND);
}

static void
test_items(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    KgetListEntry e[4];
    guint64 new1, new2;
    guint total;
    VcPageHash missing[1];
    const char *two[] = {"vm0/ram", "vm1/ram"};

    put_item(f->store, "job@1", "vm0/ram", 1, 10, 100, &new1);
    /* The same content again brings nothing new. */
    put_item(f->store, "job@1", "vm1/ram", 1, 10, 100, &new2);
    g_assert_cmpuint(new1, ==, 6 * VC_PAGE_SIZE + 100);
    g_assert_cmpuint(new2, ==, 0);
    g_assert_cmpuint(list_count(f->store, FALSE), ==, 0);
    g_assert_cmpuint(list_count(f->store, TRUE), ==, 1);

    /* Restores need a seal; a seal needs every item. */
    g_assert_false(read_item(f->store, "job@1", "vm0/ram", 1, &error));
    g_assert_error(error, KGET_ERROR, KGET_ERROR_NOT_FOUND);
    g_clear_error(&error);
    two[1] = "vm2/ram";
    g_assert_false(kget_store_seal(f->store, "job@1", two, 2, NULL, 0, &error));
    g_assert_error(error, KGET_ERROR, KGET_ERROR_NOT_FOUND);
    g_clear_error(&error);
    two[1] = "vm1/ram";
    g_assert_true(kget_store_seal(f->store, "job@1", two, 2, "{\"x\":1}", 7,
                                  &error));
    g_assert_no_error(error);
    g_assert_false(kget_store_seal(f->store, "job@1", two, 2, NULL, 0, &error));
    g_assert_error(error, KGET_ERROR, KGET_ERROR_REFUSED);
    g_clear_error(&error);

    g_assert_cmpuint(kget_store_list(f->store, "job", FALSE, e, 4, &total), ==,
                     1);
    g_assert_cmpstr(e[0].name, ==, "job@1");
    g_assert_true(e[0].sealed);
    g_assert_cmpuint(e[0].n_items, ==, 2);
    g_assert_cmpuint(e[0].bytes, ==, 2 * (9 * VC_PAGE_SIZE + 100));
    g_assert_cmpuint(e[0].stored_bytes, ==, new1);
    g_assert_cmpuint(e[0].new_bytes, ==, new1);
    g_assert_cmpuint(kget_store_list(f->store, "other", TRUE, e, 4, &total),
                     ==, 0);

    /* A missing chunk, and a sealed snapshot, are refused. */
    memset(missing, 0x77, sizeof(missing));
    g_assert_false(kget_store_item_commit(f->store, "job@2", "x", 10, missing,
                                          1, &new1, &new2, &error));
    g_assert_error(error, KGET_ERROR, KGET_ERROR_NOT_FOUND);
    g_clear_error(&error);
    g_assert_false(kget_store_item_commit(f->store, "job@1", "x", 0, NULL, 0,
                                          &new1, &new2, &error));
    g_assert_error(error, KGET_ERROR, KGET_ERROR_REFUSED);
    g_clear_error(&error);

    /* All of it survives a restart. */
    reopen(f, NULL);
    g_assert_true(read_item(f->store, "job@1", "vm1/ram", 1, &error));
    g_assert_no_error(error);
    g_assert_cmpstr(kget_store_meta(f->store, "job@1"), ==, "{\"x\":1}");
    g_assert_cmpuint(kget_store_list(f->store, NULL, FALSE, e, 4, &total), ==,
                     1);
    g_assert_cmpuint(e[0].stored_bytes, ==, 6 * VC_PAGE_SIZE + 100);
}

static char *
only_pack(Fixture *f)
{
    return g_build_filename(f->dir, "packs", "00000001.pack", NULL);
}

static void
test_torn_tail(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *pack = only_pack(f);
    KgetVerifyResult r;
    struct stat st;
    guint64 chunks, bytes;

    put_item(f->store, "job@1", "vm0/ram", 2, 6, 0, NULL);
    seal(f->store, "job@1", "vm0/ram");
    /* A put never committed, cut in the middle of its record. */
    put_item(f->store, "job@2", "vm0/ram", 3, 1, 0, NULL);
    g_assert_cmpint(g_stat(pack, &st), ==, 0);
    g_assert_cmpint(truncate(pack, st.st_size - 1000), ==, 0);

    reopen(f, NULL);
    kget_store_stats(f->store, &chunks, &bytes);
    g_assert_cmpuint(chunks, ==, 4);
    g_assert_cmpint(g_stat(pack, &st), ==, 0);
    g_assert_cmpint(st.st_size, ==, 4 * (34 + VC_PAGE_SIZE));
    g_assert_true(kget_store_verify(f->store, NULL, &r, &error));
    g_assert_cmpuint(r.checked, ==, 4);
    g_assert_cmpuint(r.corrupt, ==, 0);
    /* job@2's block list names a chunk that is gone. */
    g_assert_cmpuint(r.missing, ==, 0);
    g_assert_true(read_item(f->store, "job@1", "vm0/ram", 2, &error));
    kget_verify_result_clear(&r);
}

static void
test_leftovers(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *tmp_manifest =
        g_build_filename(f->dir, "snapshots", "job@3.tmp", NULL);
    g_autofree char *tmp_item =
        g_build_filename(f->dir, "items", "job@3", "i-vm0+ram.tmp", NULL);
    g_autofree char *item_dir = g_build_filename(f->dir, "items", "job@3", NULL);
    g_autofree char *old_item =
        g_build_filename(f->dir, "items", "job@4", "i-vm0+ram", NULL);
    KgetStoreOptions opts = {.pending_max_age = 3600};
    struct utimbuf old = {0, 0};

    put_item(f->store, "job@4", "vm0/ram", 4, 2, 0, NULL);
    /* A seal and an item put that a crash cut before their rename. */
    g_assert_true(g_file_set_contents(tmp_manifest, "[snapshot]\nitems=x;\n",
                                      -1, &error));
    g_assert_cmpint(g_mkdir(item_dir, 0755), ==, 0);
    g_assert_true(g_file_set_contents(tmp_item, "KGIT", 4, &error));
    reopen(f, &opts);
    g_assert_false(g_file_test(tmp_manifest, G_FILE_TEST_EXISTS));
    g_assert_false(g_file_test(tmp_item, G_FILE_TEST_EXISTS));
    g_assert_cmpuint(list_count(f->store, FALSE), ==, 0);
    g_assert_cmpuint(list_count(f->store, TRUE), ==, 1);

    /* A pending item older than an hour goes at start. */
    g_assert_cmpint(utime(old_item, &old), ==, 0);
    reopen(f, &opts);
    g_assert_cmpuint(list_count(f->store, TRUE), ==, 0);
    g_assert_false(g_file_test(old_item, G_FILE_TEST_EXISTS));
}

/* Flips one byte of a chunk in its pack, as disk rot would. */
static void
corrupt_chunk(Fixture *f, guint tag, guint64 i)
{
    g_autofree char *pack = only_pack(f);
    g_autofree char *data = NULL;
    gsize len;
    guint8 block[VC_PAGE_SIZE];
    char *at;

    make_block(block, tag, i);
    g_assert_true(g_file_get_contents(pack, &data, &len, NULL));
    at = memmem(data, len, block, sizeof(block));
    g_assert_nonnull(at);
    at[100] ^= 0x40;
    g_assert_true(g_file_set_contents(pack, data, (gssize)len, NULL));
}

static void
test_corrupt(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    KgetVerifyResult r;

    KgetStoreOptions opts = {.pack_max = 3 * VC_PAGE_SIZE,
                             .pending_max_age = -1};

    /* job@1's chunks fill the first pack; job@2's go to the next. */
    reopen(f, &opts);
    put_item(f->store, "job@1", "vm0/ram", 5, 4, 0, NULL);
    seal(f->store, "job@1", "vm0/ram");
    put_item(f->store, "job@2", "vm0/ram", 6, 4, 0, NULL);
    seal(f->store, "job@2", "vm0/ram");
    corrupt_chunk(f, 5, 3);
    /* Corruption in an old pack is found on read, not at open. */
    reopen(f, &opts);

    g_assert_false(read_item(f->store, "job@1", "vm0/ram", 5, &error));
    g_assert_error(error, KGET_ERROR, KGET_ERROR_CORRUPT);
    g_assert_true(g_str_has_prefix(error->message, "corrupt chunk "));
    g_clear_error(&error);
    g_assert_true(read_item(f->store, "job@2", "vm0/ram", 6, &error));

    g_assert_true(kget_store_verify(f->store, "job@1", &r, &error));
    g_assert_cmpuint(r.checked, ==, 3);
    g_assert_cmpuint(r.corrupt, ==, 1);
    g_assert_true(g_str_has_prefix(r.first_problem, "corrupt chunk "));
    kget_verify_result_clear(&r);
    g_assert_true(kget_store_verify(f->store, "job@2", &r, &error));
    g_assert_cmpuint(r.corrupt, ==, 0);
    kget_verify_result_clear(&r);
    g_assert_true(kget_store_verify(f->store, NULL, &r, &error));
    g_assert_cmpuint(r.corrupt, ==, 1);
    kget_verify_result_clear(&r);
    g_assert_false(kget_store_verify(f->store, "job@3", &r, &error));
    g_assert_error(error, KGET_ERROR, KGET_ERROR_NOT_FOUND);
    g_clear_error(&error);

    /* Found corrupt, the chunk is no longer offered for deduplication:
     * the next sender of that content is asked for it, and its good copy
     * makes job@1 whole again. */
    {
        guint8 block[VC_PAGE_SIZE];
        VcPageHash h;
        KgetChunk c = {&h, block, VC_PAGE_SIZE};
        guint n_new;
        guint64 bytes;

        make_block(block, 5, 3);
        vc_sha256(block, sizeof(block), &h);
        g_assert_false(kget_store_has(f->store, &h));
        g_assert_true(kget_store_put(f->store, &c, 1, &n_new, &bytes, &error));
        g_assert_no_error(error);
        g_assert_cmpuint(n_new, ==, 1);
        g_assert_true(kget_store_has(f->store, &h));
    }
    g_assert_true(read_item(f->store, "job@1", "vm0/ram", 5, &error));
    g_assert_no_error(error);
    g_assert_true(kget_store_verify(f->store, NULL, &r, &error));
    g_assert_cmpuint(r.corrupt, ==, 0);
    kget_verify_result_clear(&r);
    /* Still whole after a restart and a gc (the bad record is garbage). */
    reopen(f, &opts);
    g_assert_true(read_item(f->store, "job@1", "vm0/ram", 5, &error));
    g_assert_no_error(error);
}

static void
test_newest_pack_rehashed(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    KgetVerifyResult r;
    guint64 chunks, bytes;
    guint8 buf[2][VC_PAGE_SIZE];
    VcPageHash h[2];
    KgetChunk c[2];
    guint n_new;

    /* Records a power cut left with garbage data, in the newest pack and
     * used by no item: dropped at open, never reported present. */
    for (guint i = 0; i < 2; i++) {
        make_block(buf[i], 7, i);
        vc_sha256(buf[i], VC_PAGE_SIZE, &h[i]);
        c[i] = (KgetChunk){&h[i], buf[i], VC_PAGE_SIZE};
    }
    g_assert_true(kget_store_put(f->store, c, 2, &n_new, &bytes, &error));
    g_assert_true(kget_store_sync(f->store, &error));
    corrupt_chunk(f, 7, 1);
    reopen(f, NULL);
    kget_store_stats(f->store, &chunks, &bytes);
    g_assert_cmpuint(chunks, ==, 1);
    g_assert_true(kget_store_has(f->store, &h[0]));
    g_assert_false(kget_store_has(f->store, &h[1]));
    g_assert_true(kget_store_verify(f->store, NULL, &r, &error));
    g_assert_cmpuint(r.corrupt, ==, 0);
    kget_verify_result_clear(&r);

    /* One an item uses is kept, to be reported corrupt. */
    put_item(f->store, "job@1", "vm0/ram", 8, 1, 0, NULL);
    corrupt_chunk(f, 8, 0);
    reopen(f, NULL);
    g_assert_true(kget_store_verify(f->store, NULL, &r, &error));
    g_assert_cmpuint(r.corrupt, ==, 1);
    kget_verify_result_clear(&r);
}

static void
test_gc(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GHashTable) busy = g_hash_table_new(g_str_hash, g_str_equal);
    KgetGcResult r;
    KgetVerifyResult v;
    KgetListEntry e[8];
    guint total;
    guint64 chunks, bytes, chunks_before, bytes_before;

    for (guint seq = 1; seq <= 3; seq++) {
        g_autofree char *name = g_strdup_printf("job@%u", seq);

        put_item(f->store, name, "vm0/ram", 10 + seq, 30, 0, NULL);
        seal(f->store, name, "vm0/ram");
    }
    put_item(f->store, "other@1", "vm0/ram", 20, 3, 0, NULL);
    seal(f->store, "other@1", "vm0/ram");
    put_item(f->store, "job@4", "vm0/ram", 21, 3, 0, NULL); /* pending */
    put_item(f->store, "job@5", "vm0/ram", 22, 3, 0, NULL); /* busy */
    g_hash_table_add(busy, "job@5");
    kget_store_stats(f->store, &chunks_before, &bytes_before);

    g_assert_true(kget_store_gc(f->store, 1, busy, FALSE, &r, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(r.snapshots, ==, 2);
    g_assert_cmpuint(r.items, ==, 3);
    g_assert_cmpuint(r.chunks, ==, 20 + 20 + 2);
    kget_store_stats(f->store, &chunks, &bytes);
    g_assert_cmpuint(chunks, ==, chunks_before - r.chunks);
    g_assert_cmpuint(bytes, ==, bytes_before - r.bytes);
    g_assert_cmpuint(kget_store_list(f->store, NULL, TRUE, e, 8, &total), ==,
                     3);
    g_assert_cmpstr(e[0].name, ==, "job@3");
    g_assert_cmpstr(e[1].name, ==, "job@5");
    g_assert_cmpstr(e[2].name, ==, "other@1");

    /* Compacted: what is left reads back, also after a restart. */
    g_assert_true(read_item(f->store, "job@3", "vm0/ram", 13, &error));
    reopen(f, NULL);
    g_assert_true(read_item(f->store, "job@3", "vm0/ram", 13, &error));
    g_assert_true(read_item(f->store, "other@1", "vm0/ram", 20, &error));
    g_assert_no_error(error);
    kget_store_stats(f->store, &chunks, &bytes);
    g_assert_cmpuint(chunks, ==, chunks_before - r.chunks);
    g_assert_true(kget_store_verify(f->store, NULL, &v, &error));
    g_assert_cmpuint(v.corrupt + v.missing, ==, 0);
    kget_verify_result_clear(&v);

    /* rm, then gc frees its chunks. */
    g_assert_true(kget_store_rm(f->store, "other@1", &error));
    g_assert_false(kget_store_rm(f->store, "other@1", &error));
    g_assert_error(error, KGET_ERROR, KGET_ERROR_NOT_FOUND);
    g_clear_error(&error);
    g_assert_true(kget_store_gc(f->store, 3, busy, FALSE, &r, &error));
    g_assert_cmpuint(r.chunks, ==, 2);
    g_assert_true(read_item(f->store, "job@3", "vm0/ram", 13, &error));
    g_assert_no_error(error);
}

static void
test_fresh_kept(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    guint8 a[VC_PAGE_SIZE];
    VcPageHash h;
    KgetChunk c = {&h, a, VC_PAGE_SIZE};
    KgetGcResult r;
    guint n_new;
    guint64 bytes;

    /* A chunk put by a sender that has not sent its block list yet. */
    make_block(a, 30, 0);
    vc_sha256(a, sizeof(a), &h);
    g_assert_true(kget_store_put(f->store, &c, 1, &n_new, &bytes, &error));
    g_assert_true(kget_store_gc(f->store, 3, NULL, TRUE, &r, &error));
    g_assert_cmpuint(r.chunks, ==, 0);
    g_assert_true(kget_store_has(f->store, &h));
    g_assert_true(kget_store_gc(f->store, 3, NULL, FALSE, &r, &error));
    g_assert_cmpuint(r.chunks, ==, 1);
    g_assert_false(kget_store_has(f->store, &h));
}

static void
test_pack_rotation(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    KgetStoreOptions opts = {.pack_max = 3 * VC_PAGE_SIZE,
                             .pending_max_age = -1};
    g_autofree char *packs = g_build_filename(f->dir, "packs", NULL);
    g_autoptr(GDir) d = NULL;
    guint n = 0;

    reopen(f, &opts);
    put_item(f->store, "job@1", "vm0/ram", 40, 20, 0, NULL);
    seal(f->store, "job@1", "vm0/ram");
    d = g_dir_open(packs, 0, NULL);
    while (g_dir_read_name(d)) {
        n++;
    }
    g_assert_cmpuint(n, >, 3);
    reopen(f, &opts);
    g_assert_true(read_item(f->store, "job@1", "vm0/ram", 40, &error));
    g_assert_no_error(error);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
#define ADD(path, fn) g_test_add(path, Fixture, NULL, setup, fn, teardown)
    ADD("/kget-store/chunks", test_chunks);
    ADD("/kget-store/items", test_items);
    ADD("/kget-store/torn-tail", test_torn_tail);
    ADD("/kget-store/leftovers", test_leftovers);
    ADD("/kget-store/corrupt", test_corrupt);
    ADD("/kget-store/newest-pack-rehashed", test_newest_pack_rehashed);
    ADD("/kget-store/gc", test_gc);
    ADD("/kget-store/fresh-kept", test_fresh_kept);
    ADD("/kget-store/pack-rotation", test_pack_rotation);
#undef ADD
    return g_test_run();
}
