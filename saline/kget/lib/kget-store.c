#include "kget-store.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vc-frame.h"

#define DEFAULT_PACK_MAX (G_GUINT64_CONSTANT(256) << 20)
#define RECORD_HEAD (VC_PAGE_HASH_LEN + 2)
#define ITEM_MAGIC "KGIT"
#define ITEM_VERSION 1
#define ITEM_HEAD (4 + 4 + 8 * 4)
#define MANIFEST_GROUP "snapshot"

typedef struct {
    VcPageHash hash; /* the key of store->index points here */
    guint32 pack;
    guint32 refs;  /* items whose block list holds it */
    guint64 off;   /* of the data, after the record head */
    guint16 len;
    gboolean fresh;   /* put or asked for since the last full gc */
    gboolean suspect; /* failed its hash: at open, or when read */
} Entry;

typedef struct {
    guint32 id;
    int fd;
    guint64 size;
    gboolean dirty;
} Pack;

typedef struct {
    char *name;
    guint64 size;
    guint64 n_blocks;
    guint64 new_bytes;
    guint64 stored_bytes;
} Item;

typedef struct {
    char *name;
    char group[KGET_MAX_GROUP_LEN + 1];
    guint32 seq;
    gboolean sealed;
    gint64 sealed_time;
    guint64 stored_bytes; /* sealed: distinct chunk bytes of its items */
    char *meta;
    GHashTable *items; /* name -> Item */
} Snap;

struct KgetStore {
    char *dir;
    char *packs_dir;
    char *items_dir;
    char *snaps_dir;
    guint64 pack_max;
    GHashTable *index; /* VcPageHash * -> Entry */
    GHashTable *packs; /* id -> Pack */
    Pack *active;
    guint32 next_pack;
    gboolean packs_dir_dirty;
    GHashTable *snaps; /* name -> Snap */
    guint64 bytes;
};

static const VcPageHash zero_hash;

static gboolean
is_zero_hash(const VcPageHash *h)
{
    return vc_page_hash_equal(h, &zero_hash);
}

static gboolean
io_error(GError **error, const char *what, const char *path)
{
    int e = errno;

    g_set_error(error, KGET_ERROR, KGET_ERROR_IO, "cannot %s '%s': %s", what,
                path, g_strerror(e));
    return FALSE;
}

static void
item_free(gpointer p)
{
    Item *it = p;

    g_free(it->name);
    g_free(it);
}

static void
snap_free(gpointer p)
{
    Snap *s = p;

    g_free(s->name);
    g_free(s->meta);
    g_hash_table_unref(s->items);
    g_free(s);
}

static void
pack_free(gpointer p)
{
    Pack *pack = p;

    if (pack->fd >= 0) {
        close(pack->fd);
    }
    g_free(pack);
}

/* Files */

static gboolean
fsync_dir(const char *path, GError **error)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    gboolean ok;

    if (fd < 0) {
        return io_error(error, "open directory", path);
    }
    ok = fsync(fd) == 0;
    if (!ok) {
        io_error(error, "fsync directory", path);
    }
    close(fd);
    return ok;
}

static gboolean
write_all_fd(int fd, const guint8 *data, gsize len, const char *path,
             GError **error)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return io_error(error, "write", path);
        }
        data += n;
        len -= (gsize)n;
    }
    return TRUE;
}

/* tmp + fsync + rename + fsync of the directory. */
static gboolean
write_atomic(const char *dir, const char *name, const guint8 *data, gsize len,
             GError **error)
{
    g_autofree char *path = g_build_filename(dir, name, NULL);
    g_autofree char *tmp = g_strconcat(path, ".tmp", NULL);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

    if (fd < 0) {
        return io_error(error, "create", tmp);
    }
    if (!write_all_fd(fd, data, len, tmp, error)) {
        close(fd);
        unlink(tmp);
        return FALSE;
    }
    if (fsync(fd) < 0) {
        io_error(error, "fsync", tmp);
        close(fd);
        unlink(tmp);
        return FALSE;
    }
    close(fd);
    if (rename(tmp, path) < 0) {
        io_error(error, "rename", tmp);
        unlink(tmp);
        return FALSE;
    }
    return fsync_dir(dir, error);
}

static gboolean
pread_all(int fd, guint8 *buf, gsize len, guint64 off)
{
    while (len > 0) {
        ssize_t n = pread(fd, buf, len, (off_t)off);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return FALSE;
        }
        buf += n;
        len -= (gsize)n;
        off += (guint64)n;
    }
    return TRUE;
}

/* Packs */

static char *
pack_path(KgetStore *store, guint32 id)
{
    g_autofree char *name = g_strdup_printf("%08u.pack", id);

    return g_build_filename(store->packs_dir, name, NULL);
}

static Pack *
pack_create(KgetStore *store, GError **error)
{
    g_autofree char *path = pack_path(store, store->next_pack);
    Pack *pack;
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

    if (fd < 0) {
        io_error(error, "create pack", path);
        return NULL;
    }
    pack = g_new0(Pack, 1);
    pack->id = store->next_pack++;
    pack->fd = fd;
    g_hash_table_insert(store->packs, GUINT_TO_POINTER(pack->id), pack);
    store->packs_dir_dirty = TRUE;
    return pack;
}

static void
index_add(KgetStore *store, const VcPageHash *hash, guint32 pack, guint64 off,
          guint16 len, gboolean fresh)
{
    Entry *e = g_new0(Entry, 1);

    e->hash = *hash;
    e->pack = pack;
    e->off = off;
    e->len = len;
    e->fresh = fresh;
    g_hash_table_insert(store->index, &e->hash, e);
    store->bytes += len;
}

/*
 * Indexes one pack's records. A torn or unframed tail is cut off. With
 * @rehash, a record whose data does not match its hash is left out of
 * the index (it is garbage for the next gc).
 */
static gboolean
pack_scan(KgetStore *store, Pack *pack, gboolean rehash, GError **error)
{
    g_autofree char *path = pack_path(store, pack->id);
    g_autofree guint8 *buf = g_malloc(1 << 20);
    gsize have = 0, pos = 0;
    guint64 base = 0; /* file offset of buf[0] */
    gboolean eof = FALSE;
    struct stat st;

    if (fstat(pack->fd, &st) < 0) {
        return io_error(error, "stat", path);
    }
    for (;;) {
        guint8 *p;
        guint16 len;
        VcPageHash h;

        if (have - pos < RECORD_HEAD + KGET_CHUNK_MAX && !eof) {
            ssize_t n;

            memmove(buf, buf + pos, have - pos);
            base += pos;
            have -= pos;
            pos = 0;
            n = pread(pack->fd, buf + have, (1 << 20) - have,
                      (off_t)(base + have));
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                return io_error(error, "read pack", path);
            }
            eof = n == 0;
            have += (gsize)n;
            continue;
        }
        p = buf + pos;
        if (have - pos < RECORD_HEAD) {
            break;
        }
        len = (guint16)(p[VC_PAGE_HASH_LEN] << 8 | p[VC_PAGE_HASH_LEN + 1]);
        if (len == 0 || len > KGET_CHUNK_MAX || have - pos < (gsize)(RECORD_HEAD + len)) {
            break;
        }
        memcpy(h.bytes, p, VC_PAGE_HASH_LEN);
        /* Packs are scanned oldest first; a chunk stored twice is a good
         * copy put after the first was found corrupt: the later wins. */
        if (g_hash_table_contains(store->index, &h)) {
            Entry *old = g_hash_table_lookup(store->index, &h);

            store->bytes -= old->len;
            g_hash_table_remove(store->index, &h);
        }
        {
            VcPageHash check;

            index_add(store, &h, pack->id, base + pos + RECORD_HEAD, len,
                      FALSE);
            if (rehash) {
                vc_sha256(p + RECORD_HEAD, len, &check);
                if (!vc_page_hash_equal(&check, &h)) {
                    Entry *e = g_hash_table_lookup(store->index, &h);

                    e->suspect = TRUE;
                }
            }
        }
        pos += RECORD_HEAD + len;
    }
    pack->size = base + pos;
    if (pack->size < (guint64)st.st_size) {
        g_debug("pack '%s': dropping a torn tail of %" G_GUINT64_FORMAT
                " bytes",
                path, (guint64)st.st_size - pack->size);
        if (ftruncate(pack->fd, (off_t)pack->size) < 0 ||
            fsync(pack->fd) < 0) {
            return io_error(error, "truncate pack", path);
        }
    }
    return TRUE;
}

static gboolean
pack_append(KgetStore *store, const KgetChunk *c, Entry **entry,
            GError **error)
{
    guint8 head[RECORD_HEAD];
    Pack *pack = store->active;
    g_autofree char *path = NULL;

    if (pack && pack->size >= store->pack_max) {
        /* A pack is whole on disk before the next one starts (open
         * re-hashes only the newest). */
        if (pack->dirty && fdatasync(pack->fd) < 0) {
            path = pack_path(store, pack->id);
            return io_error(error, "fsync pack", path);
        }
        pack->dirty = FALSE;
        pack = NULL;
    }
    if (!pack) {
        pack = store->active = pack_create(store, error);
        if (!pack) {
            return FALSE;
        }
    }
    memcpy(head, c->hash->bytes, VC_PAGE_HASH_LEN);
    head[VC_PAGE_HASH_LEN] = (guint8)(c->len >> 8);
    head[VC_PAGE_HASH_LEN + 1] = (guint8)c->len;
    if (pwrite(pack->fd, head, RECORD_HEAD, (off_t)pack->size) !=
            RECORD_HEAD ||
        pwrite(pack->fd, c->data, c->len, (off_t)(pack->size + RECORD_HEAD)) !=
            c->len) {
        path = pack_path(store, pack->id);
        /* Whatever was written is a torn tail, cut at the next open. */
        return io_error(error, "write pack", path);
    }
    index_add(store, c->hash, pack->id, pack->size + RECORD_HEAD, c->len,
              TRUE);
    *entry = g_hash_table_lookup(store->index, c->hash);
    pack->size += RECORD_HEAD + c->len;
    pack->dirty = TRUE;
    return TRUE;
}

gboolean
kget_store_sync(KgetStore *store, GError **error)
{
    GHashTableIter it;
    Pack *pack;

    g_hash_table_iter_init(&it, store->packs);
    while (g_hash_table_iter_next(&it, NULL, (gpointer *)&pack)) {
        if (pack->dirty) {
            if (fdatasync(pack->fd) < 0) {
                g_autofree char *path = pack_path(store, pack->id);

                return io_error(error, "fsync pack", path);
            }
            pack->dirty = FALSE;
        }
    }
    if (store->packs_dir_dirty) {
        if (!fsync_dir(store->packs_dir, error)) {
            return FALSE;
        }
        store->packs_dir_dirty = FALSE;
    }
    return TRUE;
}

/* Item files */

static char *
item_file_name(const char *item)
{
    char *name = g_strconcat("i-", item, NULL);

    g_strdelimit(name, "/", '+');
    return name;
}

static char *
item_name_from_file(const char *file)
{
    char *name;

    if (!g_str_has_prefix(file, "i-") || g_str_has_suffix(file, ".tmp")) {
        return NULL;
    }
    name = g_strdup(file + 2);
    g_strdelimit(name, "+", '/');
    if (!kget_item_name_valid(name)) {
        g_free(name);
        return NULL;
    }
    return name;
}

static GByteArray *
item_encode(const Item *it, const VcPageHash *blocks)
{
    GByteArray *out = g_byte_array_sized_new(
        (guint)(ITEM_HEAD + it->n_blocks * VC_PAGE_HASH_LEN + 32));
    VcPageHash sum;

    g_byte_array_append(out, (const guint8 *)ITEM_MAGIC, 4);
    vc_put_u32(out, ITEM_VERSION);
    vc_put_u64(out, it->size);
    vc_put_u64(out, it->new_bytes);
    vc_put_u64(out, it->stored_bytes);
    vc_put_u64(out, it->n_blocks);
    if (it->n_blocks > 0) {
        g_byte_array_append(out, (const guint8 *)blocks,
                            (guint)(it->n_blocks * VC_PAGE_HASH_LEN));
    }
    vc_sha256(out->data, out->len, &sum);
    g_byte_array_append(out, sum.bytes, VC_PAGE_HASH_LEN);
    return out;
}

/* Reads an item file; *blocks may be NULL when only the head is wanted. */
static gboolean
item_load(const char *path, Item *it, VcPageHash **blocks, GError **error)
{
    g_autofree char *data = NULL;
    gsize len = 0;
    VcCursor c;
    const guint8 *magic;
    guint32 version;
    VcPageHash sum;
    g_autoptr(GError) local = NULL;

    if (!g_file_get_contents(path, &data, &len, &local)) {
        g_set_error(error, KGET_ERROR, KGET_ERROR_IO, "%s", local->message);
        return FALSE;
    }
    vc_cursor_init(&c, (const guint8 *)data, len);
    if (len < ITEM_HEAD + VC_PAGE_HASH_LEN) {
        goto corrupt;
    }
    vc_sha256((const guint8 *)data, len - VC_PAGE_HASH_LEN, &sum);
    if (memcmp(sum.bytes, data + len - VC_PAGE_HASH_LEN, VC_PAGE_HASH_LEN)) {
        goto corrupt;
    }
    vc_cursor_bytes(&c, 4, &magic);
    vc_cursor_u32(&c, &version);
    vc_cursor_u64(&c, &it->size);
    vc_cursor_u64(&c, &it->new_bytes);
    vc_cursor_u64(&c, &it->stored_bytes);
    vc_cursor_u64(&c, &it->n_blocks);
    if (memcmp(magic, ITEM_MAGIC, 4) != 0 || version != ITEM_VERSION ||
        it->size > KGET_MAX_ITEM_SIZE || it->n_blocks != kget_n_blocks(it->size) ||
        c.left != it->n_blocks * VC_PAGE_HASH_LEN + VC_PAGE_HASH_LEN) {
        goto corrupt;
    }
    if (blocks) {
        *blocks = g_memdup2(c.data, it->n_blocks * VC_PAGE_HASH_LEN);
    }
    return TRUE;
corrupt:
    g_set_error(error, KGET_ERROR, KGET_ERROR_CORRUPT,
                "block list '%s' is corrupt", path);
    return FALSE;
}

static char *
item_path(KgetStore *store, const char *snapshot, const char *item)
{
    g_autofree char *file = item_file_name(item);

    return g_build_filename(store->items_dir, snapshot, file, NULL);
}

/* Distinct non-zero hashes of a block list, as a set of VcPageHash *
 * pointing into @blocks. */
static GHashTable *
distinct_hashes(const VcPageHash *blocks, guint64 n)
{
    GHashTable *set =
        g_hash_table_new(vc_page_hash_hash, vc_page_hash_equal_func);

    for (guint64 i = 0; i < n; i++) {
        if (!is_zero_hash(&blocks[i])) {
            g_hash_table_add(set, (gpointer)&blocks[i]);
        }
    }
    return set;
}

static void
refs_add(KgetStore *store, const VcPageHash *blocks, guint64 n, int delta)
{
    g_autoptr(GHashTable) set = distinct_hashes(blocks, n);
    GHashTableIter it;
    gpointer key;

    g_hash_table_iter_init(&it, set);
    while (g_hash_table_iter_next(&it, &key, NULL)) {
        Entry *e = g_hash_table_lookup(store->index, key);

        if (!e) {
            continue; /* a missing chunk: verify reports it */
        }
        if (delta > 0) {
            e->refs++;
        } else if (e->refs > 0) {
            e->refs--;
        }
    }
}

/* Snapshots */

static Snap *
snap_get(KgetStore *store, const char *name, gboolean create)
{
    Snap *s = g_hash_table_lookup(store->snaps, name);

    if (s || !create) {
        return s;
    }
    s = g_new0(Snap, 1);
    s->name = g_strdup(name);
    kget_snapshot_name_split(name, s->group, &s->seq);
    s->items = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, item_free);
    g_hash_table_insert(store->snaps, s->name, s);
    return s;
}

/* Drops one item: its file and its references. */
static gboolean
item_drop(KgetStore *store, Snap *s, const char *item, GError **error)
{
    g_autofree char *path = item_path(store, s->name, item);
    g_autofree VcPageHash *blocks = NULL;
    Item tmp;

    if (item_load(path, &tmp, &blocks, NULL)) {
        refs_add(store, blocks, tmp.n_blocks, -1);
    }
    if (unlink(path) < 0 && errno != ENOENT) {
        return io_error(error, "remove", path);
    }
    g_hash_table_remove(s->items, item);
    return TRUE;
}

static gboolean
snap_drop(KgetStore *store, Snap *s, GError **error)
{
    g_autofree char *manifest = g_build_filename(store->snaps_dir, s->name,
                                                 NULL);
    g_autofree char *dir = g_build_filename(store->items_dir, s->name, NULL);
    g_autofree char **names = NULL;

    /* The manifest first: a crash then leaves garbage, never a sealed
     * snapshot without its items. */
    if (s->sealed) {
        if (unlink(manifest) < 0 && errno != ENOENT) {
            return io_error(error, "remove", manifest);
        }
        if (!fsync_dir(store->snaps_dir, error)) {
            return FALSE;
        }
    }
    names = (char **)g_hash_table_get_keys_as_array(s->items, NULL);
    for (guint i = 0; names[i]; i++) {
        if (!item_drop(store, s, names[i], error)) {
            return FALSE;
        }
    }
    if (g_rmdir(dir) < 0 && errno != ENOENT) {
        return io_error(error, "remove", dir);
    }
    g_hash_table_remove(store->snaps, s->name);
    return fsync_dir(store->items_dir, error);
}

static gboolean
manifest_load(KgetStore *store, const char *name, GError **error)
{
    g_autofree char *path = g_build_filename(store->snaps_dir, name, NULL);
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autoptr(GError) local = NULL;
    g_auto(GStrv) items = NULL;
    Snap *s;

    if (!kget_snapshot_name_valid(name)) {
        g_debug("ignoring '%s' in the manifests", name);
        return TRUE;
    }
    if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, &local) ||
        !(items = g_key_file_get_string_list(kf, MANIFEST_GROUP, "items", NULL,
                                             &local))) {
        g_set_error(error, KGET_ERROR, KGET_ERROR_CORRUPT,
                    "manifest '%s' is corrupt: %s", path, local->message);
        return FALSE;
    }
    s = snap_get(store, name, TRUE);
    s->sealed = TRUE;
    s->sealed_time = g_key_file_get_int64(kf, MANIFEST_GROUP, "sealed", NULL);
    s->stored_bytes = g_key_file_get_uint64(kf, MANIFEST_GROUP, "stored", NULL);
    s->meta = g_key_file_get_string(kf, MANIFEST_GROUP, "meta", NULL);
    for (guint i = 0; items[i]; i++) {
        Item *it = g_new0(Item, 1);

        /* Filled in when the block list is loaded; n_blocks G_MAXUINT64
         * marks an item whose block list is missing. */
        it->name = g_strdup(items[i]);
        it->n_blocks = G_MAXUINT64;
        g_hash_table_insert(s->items, it->name, it);
    }
    return TRUE;
}

/* Loads the block lists of one snapshot directory. */
static gboolean
items_load_dir(KgetStore *store, const char *snapshot, gint64 max_age,
               GError **error)
{
    g_autofree char *dir = g_build_filename(store->items_dir, snapshot, NULL);
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    const char *file;
    Snap *s = snap_get(store, snapshot, FALSE);
    gboolean sealed = s && s->sealed;
    gint64 now = g_get_real_time() / G_USEC_PER_SEC;
    guint kept = 0;

    if (!d) {
        return TRUE;
    }
    while ((file = g_dir_read_name(d))) {
        g_autofree char *path = g_build_filename(dir, file, NULL);
        g_autofree char *name = item_name_from_file(file);
        g_autofree VcPageHash *blocks = NULL;
        g_autoptr(GError) local = NULL;
        Item *it, tmp = {0};
        struct stat st;

        if (!name || stat(path, &st) < 0) {
            unlink(path); /* a .tmp left by a crash */
            continue;
        }
        /* Not in a manifest: pending, or left by a seal that dropped it. */
        it = s ? g_hash_table_lookup(s->items, name) : NULL;
        if ((sealed && !it) ||
            (!sealed && max_age >= 0 && now - st.st_mtime > max_age)) {
            g_debug("removing stale item '%s'", path);
            unlink(path);
            continue;
        }
        if (!item_load(path, &tmp, &blocks, &local)) {
            g_debug("%s", local->message);
            if (!sealed) {
                unlink(path);
            }
            continue;
        }
        if (!it) {
            s = snap_get(store, snapshot, TRUE);
            it = g_new0(Item, 1);
            it->name = g_strdup(name);
            g_hash_table_insert(s->items, it->name, it);
        }
        tmp.name = it->name;
        *it = tmp;
        refs_add(store, blocks, it->n_blocks, +1);
        kept++;
    }
    if (kept == 0 && !sealed) {
        g_rmdir(dir);
    }
    return TRUE;
}

static void
remove_tmp_files(const char *dir)
{
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    const char *file;

    while (d && (file = g_dir_read_name(d))) {
        if (g_str_has_suffix(file, ".tmp")) {
            g_autofree char *path = g_build_filename(dir, file, NULL);

            unlink(path);
        }
    }
}

static gint
cmp_u32(gconstpointer a, gconstpointer b)
{
    guint32 x = *(const guint32 *)a, y = *(const guint32 *)b;

    return x < y ? -1 : x > y;
}

static gboolean
packs_load(KgetStore *store, GError **error)
{
    g_autoptr(GDir) d = g_dir_open(store->packs_dir, 0, NULL);
    g_autoptr(GArray) ids = g_array_new(FALSE, FALSE, sizeof(guint32));
    const char *file;

    while (d && (file = g_dir_read_name(d))) {
        guint64 id;
        char num[16];

        if (!g_str_has_suffix(file, ".pack") || strlen(file) != 13) {
            continue;
        }
        memcpy(num, file, 8);
        num[8] = '\0';
        if (g_ascii_string_to_unsigned(num, 10, 0, G_MAXUINT32 - 1, &id,
                                       NULL)) {
            guint32 v = (guint32)id;

            g_array_append_val(ids, v);
        }
    }
    g_array_sort(ids, cmp_u32);
    for (guint i = 0; i < ids->len; i++) {
        guint32 id = g_array_index(ids, guint32, i);
        g_autofree char *path = pack_path(store, id);
        Pack *pack = g_new0(Pack, 1);

        pack->id = id;
        pack->fd = open(path, O_RDWR | O_CLOEXEC);
        g_hash_table_insert(store->packs, GUINT_TO_POINTER(id), pack);
        if (pack->fd < 0) {
            return io_error(error, "open pack", path);
        }
        if (!pack_scan(store, pack, i + 1 == ids->len, error)) {
            return FALSE;
        }
        store->next_pack = id + 1;
        store->active = pack;
    }
    return TRUE;
}

/* A record of the newest pack that fails its hash and that no item uses
 * was cut short by a crash: forget it. One an item uses was on disk whole
 * (it was fsync'd before the item was stored) and rotted since: keep it,
 * so that reads and verify report it corrupt. */
static void
drop_suspects(KgetStore *store)
{
    GHashTableIter it;
    Entry *e;

    g_hash_table_iter_init(&it, store->index);
    while (g_hash_table_iter_next(&it, NULL, (gpointer *)&e)) {
        if (e->suspect && e->refs == 0) {
            store->bytes -= e->len;
            g_hash_table_iter_remove(&it);
        }
    }
}

KgetStore *
kget_store_open(const char *dir, const KgetStoreOptions *options,
                GError **error)
{
    g_autoptr(KgetStore) store = g_new0(KgetStore, 1);
    gint64 max_age = options ? options->pending_max_age : 3600;
    const char *subdirs[3];
    g_autoptr(GDir) d = NULL;
    const char *file;

    store->dir = g_strdup(dir);
    store->packs_dir = g_build_filename(dir, "packs", NULL);
    store->items_dir = g_build_filename(dir, "items", NULL);
    store->snaps_dir = g_build_filename(dir, "snapshots", NULL);
    store->pack_max = options && options->pack_max ? options->pack_max
                                                   : DEFAULT_PACK_MAX;
    store->index = g_hash_table_new_full(vc_page_hash_hash,
                                         vc_page_hash_equal_func, NULL, g_free);
    store->packs = g_hash_table_new_full(NULL, NULL, NULL, pack_free);
    store->snaps = g_hash_table_new_full(g_str_hash, g_str_equal, NULL,
                                         snap_free);
    store->next_pack = 1;
    subdirs[0] = store->packs_dir;
    subdirs[1] = store->items_dir;
    subdirs[2] = store->snaps_dir;
    for (guint i = 0; i < G_N_ELEMENTS(subdirs); i++) {
        if (g_mkdir_with_parents(subdirs[i], 0755) < 0) {
            io_error(error, "create directory", subdirs[i]);
            return NULL;
        }
        remove_tmp_files(subdirs[i]);
    }
    if (!packs_load(store, error)) {
        return NULL;
    }
    d = g_dir_open(store->snaps_dir, 0, NULL);
    while (d && (file = g_dir_read_name(d))) {
        if (!manifest_load(store, file, error)) {
            return NULL;
        }
    }
    g_clear_pointer(&d, g_dir_close);
    d = g_dir_open(store->items_dir, 0, NULL);
    while (d && (file = g_dir_read_name(d))) {
        g_autofree char *sub = g_build_filename(store->items_dir, file, NULL);

        remove_tmp_files(sub);
        if (!kget_snapshot_name_valid(file)) {
            continue;
        }
        if (!items_load_dir(store, file, max_age, error)) {
            return NULL;
        }
    }
    drop_suspects(store);
    return g_steal_pointer(&store);
}

void
kget_store_free(KgetStore *store)
{
    if (!store) {
        return;
    }
    g_hash_table_unref(store->index);
    g_hash_table_unref(store->packs);
    g_hash_table_unref(store->snaps);
    g_free(store->dir);
    g_free(store->packs_dir);
    g_free(store->items_dir);
    g_free(store->snaps_dir);
    g_free(store);
}

void
kget_store_stats(KgetStore *store, guint64 *chunks, guint64 *bytes)
{
    *chunks = g_hash_table_size(store->index);
    *bytes = store->bytes;
}

gboolean
kget_store_has(KgetStore *store, const VcPageHash *hash)
{
    Entry *e;

    if (is_zero_hash(hash)) {
        return TRUE;
    }
    e = g_hash_table_lookup(store->index, hash);
    if (e) {
        e->fresh = TRUE;
    }
    return e != NULL && !e->suspect;
}

gboolean
kget_store_put(KgetStore *store, const KgetChunk *chunks, guint n,
               guint *n_new, guint64 *new_bytes, GError **error)
{
    char hex[VC_PAGE_HASH_HEX_LEN + 1];

    *n_new = 0;
    *new_bytes = 0;
    for (guint i = 0; i < n; i++) {
        VcPageHash check;

        g_return_val_if_fail(chunks[i].len >= 1 &&
                                 chunks[i].len <= KGET_CHUNK_MAX,
                             FALSE);
        vc_sha256(chunks[i].data, chunks[i].len, &check);
        if (!vc_page_hash_equal(&check, chunks[i].hash)) {
            vc_page_hash_to_hex(chunks[i].hash, hex);
            g_set_error(error, KGET_ERROR, KGET_ERROR_REFUSED,
                        "chunk %u does not match its hash %s", i, hex);
            return FALSE;
        }
        if (chunks[i].data[0] == 0 &&
            memcmp(chunks[i].data, chunks[i].data + 1, chunks[i].len - 1) ==
                0) {
            g_set_error(error, KGET_ERROR, KGET_ERROR_REFUSED,
                        "chunk %u is all zero bytes", i);
            return FALSE;
        }
    }
    for (guint i = 0; i < n; i++) {
        Entry *e = g_hash_table_lookup(store->index, chunks[i].hash);
        guint32 refs = 0;

        if (e && !e->suspect) {
            e->fresh = TRUE;
            continue;
        }
        if (e) {
            /* A good copy of a corrupt chunk: the items that use it are
             * whole again. The bad record is garbage for compaction. */
            refs = e->refs;
            store->bytes -= e->len;
            g_hash_table_remove(store->index, chunks[i].hash);
        }
        if (!pack_append(store, &chunks[i], &e, error)) {
            return FALSE;
        }
        e->refs = refs;
        (*n_new)++;
        *new_bytes += chunks[i].len;
    }
    return TRUE;
}

static gboolean
entry_read(KgetStore *store, Entry *e, guint8 *buf, GError **error)
{
    Pack *pack = g_hash_table_lookup(store->packs, GUINT_TO_POINTER(e->pack));
    char hex[VC_PAGE_HASH_HEX_LEN + 1];
    VcPageHash check;

    if (!pack || !pread_all(pack->fd, buf, e->len, e->off)) {
        g_autofree char *path = pack_path(store, e->pack);

        return io_error(error, "read pack", path);
    }
    vc_sha256(buf, e->len, &check);
    if (!vc_page_hash_equal(&check, &e->hash)) {
        /* Never deduplicated against again: the next sender of this
         * content is asked for it, and its copy replaces this one. */
        e->suspect = TRUE;
        vc_page_hash_to_hex(&e->hash, hex);
        g_set_error(error, KGET_ERROR, KGET_ERROR_CORRUPT, "corrupt chunk %s",
                    hex);
        return FALSE;
    }
    return TRUE;
}

gboolean
kget_store_get(KgetStore *store, const VcPageHash *hash, guint8 *buf,
               guint16 *len, GError **error)
{
    Entry *e = g_hash_table_lookup(store->index, hash);
    char hex[VC_PAGE_HASH_HEX_LEN + 1];

    if (!e) {
        vc_page_hash_to_hex(hash, hex);
        g_set_error(error, KGET_ERROR, KGET_ERROR_NOT_FOUND,
                    "no chunk %s in the store", hex);
        return FALSE;
    }
    *len = e->len;
    return entry_read(store, e, buf, error);
}

/* Items */

static gboolean
check_blocks(KgetStore *store, guint64 size, const VcPageHash *blocks,
             guint64 n, GError **error)
{
    guint64 missing = 0;

    if (n != kget_n_blocks(size)) {
        g_set_error(error, KGET_ERROR, KGET_ERROR_REFUSED,
                    "an item of %" G_GUINT64_FORMAT " bytes has %" G_GUINT64_FORMAT
                    " blocks, not %" G_GUINT64_FORMAT,
                    size, kget_n_blocks(size), n);
        return FALSE;
    }
    for (guint64 i = 0; i < n; i++) {
        Entry *e;

        if (is_zero_hash(&blocks[i])) {
            continue;
        }
        e = g_hash_table_lookup(store->index, &blocks[i]);
        if (!e) {
            missing++;
        } else if (e->len != kget_block_len(size, i)) {
            g_set_error(error, KGET_ERROR, KGET_ERROR_REFUSED,
                        "block %" G_GUINT64_FORMAT
                        " names a chunk of %u bytes, not %u",
                        i, e->len, kget_block_len(size, i));
            return FALSE;
        }
    }
    if (missing > 0) {
        g_set_error(error, KGET_ERROR, KGET_ERROR_NOT_FOUND,
                    "%" G_GUINT64_FORMAT " blocks name chunks the store lacks",
                    missing);
        return FALSE;
    }
    return TRUE;
}

gboolean
kget_store_item_commit(KgetStore *store, const char *snapshot,
                       const char *item, guint64 size,
                       const VcPageHash *blocks, guint64 n_blocks,
                       guint64 *new_bytes, guint64 *stored_bytes,
                       GError **error)
{
    g_autofree char *dir = NULL;
    g_autofree char *file = NULL;
    g_autoptr(GHashTable) set = NULL;
    g_autoptr(GByteArray) data = NULL;
    GHashTableIter iter;
    gpointer key;
    g_autofree char *old_path = NULL;
    g_autofree VcPageHash *old_blocks = NULL;
    Snap *s = snap_get(store, snapshot, FALSE);
    Item it = {0}, old = {0};
    gboolean new_dir;

    g_return_val_if_fail(kget_snapshot_name_valid(snapshot), FALSE);
    g_return_val_if_fail(kget_item_name_valid(item), FALSE);

    if (s && s->sealed) {
        g_set_error(error, KGET_ERROR, KGET_ERROR_REFUSED,
                    "snapshot '%s' is sealed", snapshot);
        return FALSE;
    }
    if (!check_blocks(store, size, blocks, n_blocks, error) ||
        !kget_store_sync(store, error)) {
        return FALSE;
    }
    it.size = size;
    it.n_blocks = n_blocks;
    set = distinct_hashes(blocks, n_blocks);
    g_hash_table_iter_init(&iter, set);
    while (g_hash_table_iter_next(&iter, &key, NULL)) {
        Entry *e = g_hash_table_lookup(store->index, key);

        it.stored_bytes += e->len;
        if (e->refs == 0) {
            it.new_bytes += e->len;
        }
    }
    dir = g_build_filename(store->items_dir, snapshot, NULL);
    new_dir = !g_file_test(dir, G_FILE_TEST_IS_DIR);
    if (new_dir && g_mkdir(dir, 0755) < 0 && errno != EEXIST) {
        return io_error(error, "create directory", dir);
    }
    if (new_dir && !fsync_dir(store->items_dir, error)) {
        return FALSE;
    }
    /* An item put again replaces the earlier one. */
    old_path = item_path(store, snapshot, item);
    if (s && g_hash_table_contains(s->items, item) &&
        !item_load(old_path, &old, &old_blocks, NULL)) {
        old.n_blocks = 0;
    }
    file = item_file_name(item);
    data = item_encode(&it, blocks);
    if (!write_atomic(dir, file, data->data, data->len, error)) {
        return FALSE;
    }
    if (old_blocks) {
        refs_add(store, old_blocks, old.n_blocks, -1);
    }
    refs_add(store, blocks, n_blocks, +1);
    s = snap_get(store, snapshot, TRUE);
    it.name = g_strdup(item);
    g_hash_table_replace(s->items, it.name, g_memdup2(&it, sizeof(it)));
    *new_bytes = it.new_bytes;
    *stored_bytes = it.stored_bytes;
    return TRUE;
}

static gboolean
sealed_item(KgetStore *store, const char *snapshot, const char *item,
            Item **out, GError **error)
{
    Snap *s = snap_get(store, snapshot, FALSE);
    Item *it;

    if (!s || !s->sealed) {
        g_set_error(error, KGET_ERROR, KGET_ERROR_NOT_FOUND,
                    "no sealed snapshot '%s'", snapshot);
        return FALSE;
    }
    it = g_hash_table_lookup(s->items, item);
    if (!it) {
        g_set_error(error, KGET_ERROR, KGET_ERROR_NOT_FOUND,
                    "snapshot '%s' has no item '%s'", snapshot, item);
        return FALSE;
    }
    *out = it;
    return TRUE;
}

gboolean
kget_store_item_read(KgetStore *store, const char *snapshot, const char *item,
                     guint64 *size, VcPageHash **blocks, guint64 *n_blocks,
                     GError **error)
{
    g_autofree char *path = NULL;
    Item *it, tmp;

    if (!sealed_item(store, snapshot, item, &it, error)) {
        return FALSE;
    }
    path = item_path(store, snapshot, item);
    if (!item_load(path, &tmp, blocks, error)) {
        g_prefix_error(error, "item '%s' of '%s': ", item, snapshot);
        return FALSE;
    }
    *size = tmp.size;
    *n_blocks = tmp.n_blocks;
    return TRUE;
}

gboolean
kget_store_seal(KgetStore *store, const char *snapshot,
                const char *const *items, guint n_items, const char *meta,
                gsize meta_len, GError **error)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autoptr(GHashTable) listed = g_hash_table_new(g_str_hash, g_str_equal);
    g_autoptr(GHashTable) chunks =
        g_hash_table_new(vc_page_hash_hash, vc_page_hash_equal_func);
    g_autoptr(GPtrArray) lists = g_ptr_array_new_with_free_func(g_free);
    g_autofree char *text = NULL;
    g_autofree char *meta_str = g_strndup(meta ? meta : "", meta_len);
    g_autofree char **names = NULL;
    Snap *s = snap_get(store, snapshot, FALSE);
    guint64 stored = 0;
    gint64 now = g_get_real_time() / G_USEC_PER_SEC;
    gsize len;

    if (!s) {
        g_set_error(error, KGET_ERROR, KGET_ERROR_NOT_FOUND,
                    "no item was put to snapshot '%s'", snapshot);
        return FALSE;
    }
    if (s->sealed) {
        g_set_error(error, KGET_ERROR, KGET_ERROR_REFUSED,
                    "snapshot '%s' is already sealed", snapshot);
        return FALSE;
    }
    for (guint i = 0; i < n_items; i++) {
        g_autofree char *path = NULL;
        VcPageHash *blocks = NULL;
        Item tmp;

        if (!g_hash_table_add(listed, (gpointer)items[i])) {
            g_set_error(error, KGET_ERROR, KGET_ERROR_REFUSED,
                        "item '%s' is listed twice", items[i]);
            return FALSE;
        }
        if (!g_hash_table_contains(s->items, items[i])) {
            g_set_error(error, KGET_ERROR, KGET_ERROR_NOT_FOUND,
                        "item '%s' of '%s' was not put", items[i], snapshot);
            return FALSE;
        }
        path = item_path(store, snapshot, items[i]);
        if (!item_load(path, &tmp, &blocks, error)) {
            return FALSE;
        }
        g_ptr_array_add(lists, blocks);
        for (guint64 b = 0; b < tmp.n_blocks; b++) {
            Entry *e;

            if (is_zero_hash(&blocks[b]) ||
                !g_hash_table_add(chunks, &blocks[b])) {
                continue;
            }
            e = g_hash_table_lookup(store->index, &blocks[b]);
            stored += e ? e->len : 0;
        }
    }
    g_key_file_set_string(kf, MANIFEST_GROUP, "name", snapshot);
    g_key_file_set_int64(kf, MANIFEST_GROUP, "sealed", now);
    g_key_file_set_uint64(kf, MANIFEST_GROUP, "stored", stored);
    g_key_file_set_string_list(kf, MANIFEST_GROUP, "items", items, n_items);
    g_key_file_set_string(kf, MANIFEST_GROUP, "meta", meta_str);
    text = g_key_file_to_data(kf, &len, NULL);
    if (!write_atomic(store->snaps_dir, snapshot, (const guint8 *)text, len,
                      error)) {
        return FALSE;
    }
    s->sealed = TRUE;
    s->sealed_time = now;
    s->stored_bytes = stored;
    s->meta = g_steal_pointer(&meta_str);
    /* Items put but not listed are not part of the snapshot. */
    names = (char **)g_hash_table_get_keys_as_array(s->items, NULL);
    for (guint i = 0; names[i]; i++) {
        if (!g_hash_table_contains(listed, names[i]) &&
            !item_drop(store, s, names[i], error)) {
            return FALSE;
        }
    }
    return TRUE;
}

const char *
kget_store_meta(KgetStore *store, const char *snapshot)
{
    Snap *s = snap_get(store, snapshot, FALSE);

    return s && s->sealed ? s->meta : NULL;
}

static gint
snap_cmp(gconstpointer a, gconstpointer b)
{
    const Snap *x = *(Snap *const *)a, *y = *(Snap *const *)b;
    int c = strcmp(x->group, y->group);

    if (c != 0) {
        return c;
    }
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Snapshots sorted by group, then sequence. */
static GPtrArray *
snaps_sorted(KgetStore *store)
{
    GPtrArray *all = g_ptr_array_new();
    GHashTableIter it;
    Snap *s;

    g_hash_table_iter_init(&it, store->snaps);
    while (g_hash_table_iter_next(&it, NULL, (gpointer *)&s)) {
        g_ptr_array_add(all, s);
    }
    g_ptr_array_sort(all, snap_cmp);
    return all;
}

guint
kget_store_list(KgetStore *store, const char *group, gboolean pending,
                KgetListEntry *out, guint max, guint *total)
{
    g_autoptr(GPtrArray) all = snaps_sorted(store);
    guint n = 0;

    *total = 0;
    for (guint i = 0; i < all->len; i++) {
        Snap *s = all->pdata[i];
        KgetListEntry *e;
        GHashTableIter it;
        Item *item;

        if ((group && group[0] && !g_str_equal(group, s->group)) ||
            (!s->sealed && !pending)) {
            continue;
        }
        (*total)++;
        if (n >= max) {
            continue;
        }
        e = &out[n++];
        memset(e, 0, sizeof(*e));
        g_strlcpy(e->name, s->name, sizeof(e->name));
        e->sealed = s->sealed;
        e->sealed_time = s->sealed ? s->sealed_time : 0;
        e->n_items = g_hash_table_size(s->items);
        g_hash_table_iter_init(&it, s->items);
        while (g_hash_table_iter_next(&it, NULL, (gpointer *)&item)) {
            if (item->n_blocks == G_MAXUINT64) {
                continue; /* its block list is lost: verify says so */
            }
            e->bytes += item->size;
            e->new_bytes += item->new_bytes;
            e->stored_bytes += s->sealed ? 0 : item->stored_bytes;
        }
        if (s->sealed) {
            e->stored_bytes = s->stored_bytes;
        }
    }
    return n;
}

/* Verify */

static void
verify_note(KgetVerifyResult *r, char *problem)
{
    if (!r->first_problem) {
        r->first_problem = problem;
    } else {
        g_free(problem);
    }
}

static void
verify_chunk(KgetStore *store, const VcPageHash *hash, KgetVerifyResult *r)
{
    g_autoptr(GError) local = NULL;
    guint8 buf[KGET_CHUNK_MAX];
    guint16 len;

    r->checked++;
    if (!kget_store_get(store, hash, buf, &len, &local)) {
        if (g_error_matches(local, KGET_ERROR, KGET_ERROR_NOT_FOUND)) {
            r->missing++;
        } else {
            r->corrupt++;
        }
        verify_note(r, g_strdup(local->message));
    }
}

/* The distinct chunks of a sealed snapshot's items into @set (hashes
 * kept alive by @lists); missing block lists are counted. */
static void
snap_chunks(KgetStore *store, Snap *s, GHashTable *set, GPtrArray *lists,
            KgetVerifyResult *r)
{
    GHashTableIter it;
    Item *item;

    g_hash_table_iter_init(&it, s->items);
    while (g_hash_table_iter_next(&it, NULL, (gpointer *)&item)) {
        g_autofree char *path = item_path(store, s->name, item->name);
        g_autoptr(GError) local = NULL;
        VcPageHash *blocks = NULL;
        Item tmp;

        if (!item_load(path, &tmp, &blocks, &local)) {
            r->missing++;
            verify_note(r, g_strdup_printf("item '%s' of '%s': %s", item->name,
                                           s->name, local->message));
            continue;
        }
        g_ptr_array_add(lists, blocks);
        for (guint64 b = 0; b < tmp.n_blocks; b++) {
            if (!is_zero_hash(&blocks[b])) {
                g_hash_table_add(set, &blocks[b]);
            }
        }
    }
}

gboolean
kget_store_verify(KgetStore *store, const char *snapshot,
                  KgetVerifyResult *r, GError **error)
{
    g_autoptr(GHashTable) set =
        g_hash_table_new(vc_page_hash_hash, vc_page_hash_equal_func);
    g_autoptr(GPtrArray) lists = g_ptr_array_new_with_free_func(g_free);
    GHashTableIter it;
    gpointer key;
    Snap *s;

    memset(r, 0, sizeof(*r));
    if (snapshot && snapshot[0]) {
        s = snap_get(store, snapshot, FALSE);
        if (!s || !s->sealed) {
            g_set_error(error, KGET_ERROR, KGET_ERROR_NOT_FOUND,
                        "no sealed snapshot '%s'", snapshot);
            return FALSE;
        }
        snap_chunks(store, s, set, lists, r);
        g_hash_table_iter_init(&it, set);
        while (g_hash_table_iter_next(&it, &key, NULL)) {
            verify_chunk(store, key, r);
        }
        return TRUE;
    }
    /* Every chunk, then every reference of every sealed snapshot. */
    g_hash_table_iter_init(&it, store->index);
    while (g_hash_table_iter_next(&it, &key, NULL)) {
        verify_chunk(store, key, r);
    }
    g_hash_table_iter_init(&it, store->snaps);
    while (g_hash_table_iter_next(&it, NULL, (gpointer *)&s)) {
        if (s->sealed) {
            snap_chunks(store, s, set, lists, r);
        }
    }
    g_hash_table_iter_init(&it, set);
    while (g_hash_table_iter_next(&it, &key, NULL)) {
        if (!g_hash_table_contains(store->index, key)) {
            char hex[VC_PAGE_HASH_HEX_LEN + 1];

            vc_page_hash_to_hex(key, hex);
            r->missing++;
            verify_note(r, g_strdup_printf("no chunk %s in the store", hex));
        }
    }
    return TRUE;
}

void
kget_verify_result_clear(KgetVerifyResult *r)
{
    g_clear_pointer(&r->first_problem, g_free);
}

/* GC */

/* Rewrites @pack with only @live (Entry *), under a new number. */
static gboolean
pack_compact(KgetStore *store, Pack *pack, GPtrArray *live, GError **error)
{
    g_autofree char *old_path = pack_path(store, pack->id);
    g_autofree char *new_path = NULL;
    g_autofree char *tmp = NULL;
    g_autoptr(GByteArray) out = g_byte_array_new();
    guint32 id = store->next_pack++;
    Pack *fresh;
    int fd;

    if (live->len > 0) {
        new_path = pack_path(store, id);
        tmp = g_strconcat(new_path, ".tmp", NULL);
        for (guint i = 0; i < live->len; i++) {
            Entry *e = live->pdata[i];
            guint old_len = out->len;

            g_byte_array_append(out, e->hash.bytes, VC_PAGE_HASH_LEN);
            vc_put_u16(out, e->len);
            g_byte_array_set_size(out, old_len + RECORD_HEAD + e->len);
            /* Copied as it is: a corrupt chunk stays corrupt, for verify. */
            if (!pread_all(pack->fd, out->data + old_len + RECORD_HEAD, e->len,
                           e->off)) {
                return io_error(error, "read pack", old_path);
            }
        }
        fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            return io_error(error, "create", tmp);
        }
        if (!write_all_fd(fd, out->data, out->len, tmp, error) ||
            (fsync(fd) < 0 && !io_error(error, "fsync", tmp)) ||
            (rename(tmp, new_path) < 0 && !io_error(error, "rename", tmp)) ||
            !fsync_dir(store->packs_dir, error)) {
            close(fd);
            unlink(tmp);
            return FALSE;
        }
        fresh = g_new0(Pack, 1);
        fresh->id = id;
        fresh->fd = fd;
        fresh->size = out->len;
        g_hash_table_insert(store->packs, GUINT_TO_POINTER(id), fresh);
        for (guint64 i = 0, off = 0; i < live->len; i++) {
            Entry *e = live->pdata[i];

            e->pack = id;
            e->off = off + RECORD_HEAD;
            off += RECORD_HEAD + e->len;
        }
    }
    /* A crash before this leaves the chunks twice: the index keeps one
     * copy, the next gc drops the other pack. */
    if (store->active == pack) {
        store->active = NULL;
    }
    g_hash_table_remove(store->packs, GUINT_TO_POINTER(pack->id));
    if (unlink(old_path) < 0) {
        return io_error(error, "remove", old_path);
    }
    return fsync_dir(store->packs_dir, error);
}

static gboolean
packs_compact(KgetStore *store, GError **error)
{
    g_autoptr(GHashTable) live = g_hash_table_new_full(
        NULL, NULL, NULL, (GDestroyNotify)g_ptr_array_unref);
    g_autoptr(GList) packs = g_hash_table_get_values(store->packs);
    GHashTableIter it;
    Entry *e;

    if (!kget_store_sync(store, error)) {
        return FALSE;
    }
    g_hash_table_iter_init(&it, store->index);
    while (g_hash_table_iter_next(&it, NULL, (gpointer *)&e)) {
        GPtrArray *a = g_hash_table_lookup(live, GUINT_TO_POINTER(e->pack));

        if (!a) {
            a = g_ptr_array_new();
            g_hash_table_insert(live, GUINT_TO_POINTER(e->pack), a);
        }
        g_ptr_array_add(a, e);
    }
    for (GList *l = packs; l; l = l->next) {
        Pack *pack = l->data;
        GPtrArray *a = g_hash_table_lookup(live, GUINT_TO_POINTER(pack->id));
        g_autoptr(GPtrArray) none = g_ptr_array_new();
        guint64 live_bytes = 0;

        for (guint i = 0; a && i < a->len; i++) {
            live_bytes += RECORD_HEAD + ((Entry *)a->pdata[i])->len;
        }
        /* Worth a rewrite once a quarter of it is garbage. */
        if ((pack->size - live_bytes) * 4 < pack->size ||
            pack->size == live_bytes) {
            continue;
        }
        if (!pack_compact(store, pack, a ? a : none, error)) {
            return FALSE;
        }
    }
    return TRUE;
}

gboolean
kget_store_gc(KgetStore *store, guint keep, GHashTable *busy,
              gboolean keep_fresh, KgetGcResult *r, GError **error)
{
    g_autoptr(GPtrArray) all = snaps_sorted(store);
    g_autoptr(GPtrArray) doomed = g_ptr_array_new();
    g_autoptr(GPtrArray) freed = g_ptr_array_new();
    GHashTableIter it;
    Entry *e;

    memset(r, 0, sizeof(*r));
    /* Sorted by group then sequence: the newest of a group come last. */
    for (guint i = all->len, kept = 0; i-- > 0;) {
        Snap *s = all->pdata[i];
        Snap *next = i + 1 < all->len ? all->pdata[i + 1] : NULL;

        if (!next || strcmp(next->group, s->group) != 0) {
            kept = 0;
        }
        if (s->sealed) {
            if (kept++ >= keep) {
                g_ptr_array_add(doomed, s);
            }
        } else if (!busy || !g_hash_table_contains(busy, s->name)) {
            g_ptr_array_add(doomed, s);
        }
    }
    for (guint i = 0; i < doomed->len; i++) {
        Snap *s = doomed->pdata[i];

        r->snapshots += s->sealed;
        r->items += g_hash_table_size(s->items);
        g_debug("gc: removing %s snapshot '%s'",
                s->sealed ? "sealed" : "pending", s->name);
        if (!snap_drop(store, s, error)) {
            return FALSE;
        }
    }
    g_hash_table_iter_init(&it, store->index);
    while (g_hash_table_iter_next(&it, NULL, (gpointer *)&e)) {
        if (e->refs == 0 && !(keep_fresh && e->fresh)) {
            r->chunks++;
            r->bytes += e->len;
            store->bytes -= e->len;
            g_hash_table_iter_remove(&it);
        } else if (!keep_fresh) {
            e->fresh = FALSE;
        }
    }
    return packs_compact(store, error);
}

gboolean
kget_store_rm(KgetStore *store, const char *snapshot, GError **error)
{
    Snap *s = snap_get(store, snapshot, FALSE);

    if (!s) {
        g_set_error(error, KGET_ERROR, KGET_ERROR_NOT_FOUND,
                    "no snapshot '%s'", snapshot);
        return FALSE;
    }
    return snap_drop(store, s, error);
}
