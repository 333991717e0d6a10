/*
 * Pages of local VMs: dht-pagesd maps the file-backed shared RAM of the
 * node's guests read-only and hashes it incrementally, chunk by chunk, for
 * the scanner (holdings.c), which paces it and announces the hashes to
 * their owners. Guest memory keeps changing, so every page is re-hashed
 * before it is served and the scanner keeps re-hashing in passes, moving
 * the index along with the guests.
 */
#include "pagesd.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK_PAGES 256
#define REPASS_INTERVAL_US (5 * G_USEC_PER_SEC)
#define MAX_REGION_BYTES (G_GUINT64_CONSTANT(1) << 40)

enum { PAGE_UNHASHED, PAGE_INDEXED, PAGE_SKIPPED };

typedef struct {
    guint id;
    char *path;
    dev_t dev;
    ino_t ino;
    const guint8 *map;
    gsize npages;
    VcPageHash *hashes;
    guint8 *state;
    gsize cursor;     /* next page of the current pass */
    gint64 pass_done; /* when the last pass finished, 0 if never */
    gint refs;
    gboolean gone;
} Region;

struct DpRam {
    GHashTable *by_path;   /* path -> Region* (live regions) */
    GHashTable *by_id;     /* id -> Region* (live and draining) */
    GHashTable *table;     /* VcPageHash* (in a region) -> id << 32 | page */
    guint next_id;
};

DpRam *
dp_ram_new(void)
{
    DpRam *ram = g_new0(DpRam, 1);

    ram->by_path = g_hash_table_new(g_str_hash, g_str_equal);
    ram->by_id = g_hash_table_new(g_direct_hash, g_direct_equal);
    ram->table = g_hash_table_new(vc_page_hash_hash, vc_page_hash_equal_func);
    ram->next_id = 1;
    return ram;
}

static void
region_free(Region *r)
{
    munmap((void *)r->map, r->npages * VC_PAGE_SIZE);
    g_free(r->path);
    g_free(r->hashes);
    g_free(r->state);
    g_free(r);
}

void
dp_ram_free(DpRam *ram)
{
    GHashTableIter it;
    Region *r;

    if (!ram) {
        return;
    }
    g_hash_table_iter_init(&it, ram->by_id);
    while (g_hash_table_iter_next(&it, NULL, (gpointer *)&r)) {
        region_free(r);
    }
    g_hash_table_unref(ram->by_path);
    g_hash_table_unref(ram->by_id);
    g_hash_table_unref(ram->table);
    g_free(ram);
}

static gpointer
location(guint id, gsize page)
{
    return GSIZE_TO_POINTER(((gsize)id << 32) | page);
}

/* Under the lock: is @h's table entry this region's page @i? */
static gboolean
entry_is(DpRam *ram, const VcPageHash *h, guint id, gsize i)
{
    gpointer v;

    return g_hash_table_lookup_extended(ram->table, h, NULL, &v) &&
           v == location(id, i);
}

/* Under the lock: drop a reference; a retired region goes with its
 * last one. */
static void
region_unref_locked(DpRam *ram, Region *r)
{
    if (--r->refs == 0 && r->gone) {
        g_hash_table_remove(ram->by_id, GUINT_TO_POINTER(r->id));
        region_free(r);
    }
}

const guint8 *
dp_ram_find_locked(DpDaemon *d, const VcPageHash *h, gpointer *region)
{
    DpRam *ram = d->ram;
    gpointer v;
    Region *r;

    if (!g_hash_table_lookup_extended(ram->table, h, NULL, &v)) {
        return NULL;
    }
    r = g_hash_table_lookup(ram->by_id,
                            GUINT_TO_POINTER(GPOINTER_TO_SIZE(v) >> 32));
    r->refs++;
    *region = r;
    return r->map + (GPOINTER_TO_SIZE(v) & 0xffffffffu) * VC_PAGE_SIZE;
}

void
dp_ram_release_locked(DpDaemon *d, gpointer region)
{
    region_unref_locked(d->ram, region);
}

gboolean
dp_ram_forget(DpDaemon *d, const VcPageHash *h)
{
    DpRam *ram = d->ram;
    gpointer key, v;
    gboolean found = FALSE;

    g_mutex_lock(&d->lock);
    if (g_hash_table_lookup_extended(ram->table, h, &key, &v)) {
        Region *r = g_hash_table_lookup(
            ram->by_id, GUINT_TO_POINTER(GPOINTER_TO_SIZE(v) >> 32));

        g_hash_table_remove(ram->table, h);
        /* Re-hashed on its next pass. */
        r->state[GPOINTER_TO_SIZE(v) & 0xffffffffu] = PAGE_UNHASHED;
        found = TRUE;
    }
    g_mutex_unlock(&d->lock);
    return found;
}

gsize
dp_ram_pages(DpDaemon *d)
{
    return g_hash_table_size(d->ram->table);
}

gsize
dp_ram_regions(DpDaemon *d)
{
    return g_hash_table_size(d->ram->by_path);
}

void
dp_ram_collect_locked(DpDaemon *d, GArray *out)
{
    GHashTableIter it;
    gpointer key;

    g_hash_table_iter_init(&it, d->ram->table);
    while (g_hash_table_iter_next(&it, &key, NULL)) {
        g_array_append_vals(out, key, 1);
    }
}

/* Under the lock: retire a region; its hashes go to @withdrawn. */
static void
region_retire(DpDaemon *d, Region *r, GArray *withdrawn)
{
    DpRam *ram = d->ram;

    for (gsize i = 0; i < r->npages; i++) {
        if (r->state[i] == PAGE_INDEXED && entry_is(ram, &r->hashes[i], r->id, i)) {
            g_hash_table_remove(ram->table, &r->hashes[i]);
            g_array_append_val(withdrawn, r->hashes[i]);
        }
    }
    g_hash_table_remove(ram->by_path, r->path);
    r->gone = TRUE;
    if (r->refs == 0) {
        g_hash_table_remove(ram->by_id, GUINT_TO_POINTER(r->id));
        region_free(r);
    }
}

static Region *
region_open(const char *path, const struct stat *st, GError **error)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    void *map;
    Region *r;

    if (fd < 0) {
        g_set_error(error, DP_ERROR, DP_ERROR_IO, "cannot open '%s': %s",
                    path, g_strerror(errno));
        return NULL;
    }
    map = mmap(NULL, st->st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        g_set_error(error, DP_ERROR, DP_ERROR_IO, "cannot map '%s': %s", path,
                    g_strerror(errno));
        return NULL;
    }
    r = g_new0(Region, 1);
    r->path = g_strdup(path);
    r->dev = st->st_dev;
    r->ino = st->st_ino;
    r->map = map;
    r->npages = st->st_size / VC_PAGE_SIZE;
    r->hashes = g_new0(VcPageHash, r->npages);
    r->state = g_new0(guint8, r->npages);
    return r;
}

void
dp_ram_discover(DpDaemon *d, GArray *withdrawn)
{
    DpRam *ram = d->ram;
    g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal,
                                                       g_free, NULL);
    g_autoptr(GPtrArray) stale = g_ptr_array_new();
    GHashTableIter it;
    Region *r;

    for (char **pat = d->ram_globs; pat && *pat; pat++) {
        glob_t g = {0};

        if (glob(*pat, GLOB_NOSORT, NULL, &g) != 0) {
            globfree(&g);
            continue;
        }
        for (gsize i = 0; i < g.gl_pathc; i++) {
            const char *path = g.gl_pathv[i];
            struct stat st;
            g_autoptr(GError) error = NULL;

            if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) ||
                st.st_size < VC_PAGE_SIZE ||
                (guint64)st.st_size > MAX_REGION_BYTES) {
                continue;
            }
            g_hash_table_add(seen, g_strdup(path));
            g_mutex_lock(&d->lock);
            r = g_hash_table_lookup(ram->by_path, path);
            if (r && (r->dev != st.st_dev || r->ino != st.st_ino)) {
                region_retire(d, r, withdrawn);
                r = NULL;
            }
            g_mutex_unlock(&d->lock);
            if (r) {
                continue;
            }
            r = region_open(path, &st, &error);
            if (!r) {
                g_warning("%s", error->message);
                continue;
            }
            g_mutex_lock(&d->lock);
            r->id = ram->next_id++;
            g_hash_table_insert(ram->by_path, r->path, r);
            g_hash_table_insert(ram->by_id, GUINT_TO_POINTER(r->id), r);
            g_mutex_unlock(&d->lock);
            g_message("indexing guest RAM '%s' (%zu pages)", path, r->npages);
        }
        globfree(&g);
    }

    g_mutex_lock(&d->lock);
    g_hash_table_iter_init(&it, ram->by_path);
    while (g_hash_table_iter_next(&it, NULL, (gpointer *)&r)) {
        if (!g_hash_table_contains(seen, r->path)) {
            g_ptr_array_add(stale, r);
        }
    }
    for (guint i = 0; i < stale->len; i++) {
        r = stale->pdata[i];
        g_message("guest RAM '%s' went away", r->path);
        region_retire(d, r, withdrawn);
    }
    g_mutex_unlock(&d->lock);
}

gsize
dp_ram_hash_chunk(DpDaemon *d, gboolean *repass, GArray *added,
                  GArray *withdrawn)
{
    DpRam *ram = d->ram;
    GHashTableIter it;
    Region *r, *pick = NULL;
    gint64 now = g_get_monotonic_time();
    VcPageHash fresh[CHUNK_PAGES];
    guint8 zero[CHUNK_PAGES];
    gsize start, n;

    g_mutex_lock(&d->lock);
    g_hash_table_iter_init(&it, ram->by_path);
    /* First passes first: re-passes may be slowed down (holdings.c). */
    while (g_hash_table_iter_next(&it, NULL, (gpointer *)&r)) {
        if (r->pass_done == 0) {
            pick = r;
            break;
        }
        if (!pick && now - r->pass_done > REPASS_INTERVAL_US) {
            pick = r;
        }
    }
    if (!pick) {
        g_mutex_unlock(&d->lock);
        return 0;
    }
    r = pick;
    r->refs++;
    *repass = r->pass_done != 0;
    start = r->cursor;
    n = MIN(CHUNK_PAGES, r->npages - start);
    g_mutex_unlock(&d->lock);

    for (gsize i = 0; i < n; i++) {
        const guint8 *page = r->map + (start + i) * VC_PAGE_SIZE;

        zero[i] = vc_page_is_zero(page);
        if (!zero[i]) {
            vc_page_hash(page, &fresh[i]);
        }
    }

    g_mutex_lock(&d->lock);
    if (!r->gone) {
        for (gsize i = 0; i < n; i++) {
            gsize p = start + i;

            if (r->state[p] == PAGE_INDEXED) {
                if (!zero[i] && vc_page_hash_equal(&r->hashes[p], &fresh[i])) {
                    /* Unchanged; if it stood for a twin that changed, it
                     * now stands for itself. */
                    if (!g_hash_table_contains(ram->table, &r->hashes[p])) {
                        g_hash_table_insert(ram->table, &r->hashes[p],
                                            location(r->id, p));
                        g_array_append_val(added, fresh[i]);
                    }
                    continue;
                }
                if (entry_is(ram, &r->hashes[p], r->id, p)) {
                    g_hash_table_remove(ram->table, &r->hashes[p]);
                    g_array_append_val(withdrawn, r->hashes[p]);
                }
            }
            if (zero[i]) {
                r->state[p] = PAGE_SKIPPED;
                continue;
            }
            r->hashes[p] = fresh[i];
            r->state[p] = PAGE_INDEXED;
            if (!g_hash_table_contains(ram->table, &r->hashes[p])) {
                g_hash_table_insert(ram->table, &r->hashes[p],
                                    location(r->id, p));
                g_array_append_val(added, fresh[i]);
            }
        }
        r->cursor += n;
        if (r->cursor >= r->npages) {
            r->cursor = 0;
            r->pass_done = g_get_monotonic_time();
            dp_stat_add(d, ram_passes, 1);
        }
    }
    region_unref_locked(ram, r);
    g_mutex_unlock(&d->lock);
    dp_stat_add(d, pages_hashed, n);
    return n * VC_PAGE_SIZE;
}
