/*
 * page-zstd: what zstd makes of the pages a page-hash migration sends in
 * full, level by level, as the patched QEMU sends them (qemu-patches/0008:
 * one stream per migrating guest, flushed after each page, 8 MiB window).
 * A benchmark tool, nothing is asserted (bench/zstd-levels.sh runs it).
 *
 *   page-zstd [--levels 1,3] --site RAM [--site RAM]... --cluster RAM...
 *
 * Reads guest RAM files (4 KiB pages). The pages a guest of --cluster
 * misses are its non-zero pages whose content no --site guest holds, in
 * offset order (the order of its first round of hashes). For each level:
 * the bytes of each guest's stream, the compressor's CPU time (this
 * thread's), and also one zstd frame per page (no history) at the first
 * level, to show what the stream's history is worth. Delta encoding is
 * not built; what it could save is measured: each missing page as one
 * frame at the first level with the page at the same offset of the first
 * --site guest as zstd's reference (the look-alike a destination holds),
 * against one frame without, for the "other" pages (kernel and page-cache
 * data: neither random, a frame of at least 4000 bytes, nor sparse, at
 * least 90% zero bytes; bench/lower-bound.py sorts them alike). The
 * source does not hold that reference, so also what a delta costs that
 * does not need it (rsync's way): the destination sends a 16-bit sum of
 * each block of its look-alike (blocks of 32 to 256 bytes), the source sends
 * a bitmap of the blocks whose sums match its own and one frame of its
 * page with those blocks zeroed; a block whose sum matched but whose
 * bytes differ fails the rebuilt page's hash and costs the page again.
 * And a reference both ends hold: the migrating guest's own page before
 * it (sent or resolved before it, in offset order).
 * Prints key=value lines.
 */
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "vc-pagehash.h"

#define PAGE 4096
#define WINDOW_LOG 23 /* as the patched QEMU */

typedef struct {
    const char *path;
    const guint8 *ram;
    gsize pages;
} Ram;

static gboolean map_ram(Ram *r, const char *path, GError **error)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0 || fstat(fd, &st) < 0) {
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno),
                    "%s: %s", path, g_strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return FALSE;
    }
    r->path = path;
    r->pages = st.st_size / PAGE;
    r->ram = r->pages ? mmap(NULL, r->pages * PAGE, PROT_READ, MAP_SHARED,
                             fd, 0)
                      : NULL;
    close(fd);
    if (r->ram == MAP_FAILED) {
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno),
                    "%s: mmap: %s", path, g_strerror(errno));
        return FALSE;
    }
    return TRUE;
}

static gboolean is_zero(const guint8 *p)
{
    static const guint8 zero[PAGE];

    return memcmp(p, zero, PAGE) == 0;
}

static double cpu_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One stream, flushed after each page: the bytes it took. */
static gsize stream_bytes(ZSTD_CCtx *cc, int level, const guint8 *ram,
                          GArray *pages, guint8 *out, gsize out_size)
{
    gsize total = 0;

    ZSTD_CCtx_reset(cc, ZSTD_reset_session_and_parameters);
    ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, level);
    ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog, WINDOW_LOG);
    for (guint i = 0; i < pages->len; i++) {
        ZSTD_inBuffer in = {ram + g_array_index(pages, gsize, i) * PAGE,
                            PAGE, 0};
        ZSTD_outBuffer o = {out, out_size, 0};
        size_t left;

        do {
            left = ZSTD_compressStream2(cc, &o, &in, ZSTD_e_flush);
            g_assert(!ZSTD_isError(left));
        } while (left && o.pos < o.size);
        total += o.pos;
    }
    return total;
}

/*
 * One frame per page with the page at the same offset of @ref (a site
 * guest's RAM, @ref_pages long) as reference: the bytes they took.
 */
#define SIG_SIZES 4
static const gsize sig_block[SIG_SIZES] = {32, 64, 128, 256};

typedef struct {
    gsize pages;
    gsize frame_bytes; /* one frame per page, no reference */
    gsize delta_bytes; /* the same with the look-alike as reference */
    gsize prev_bytes;  /* with the guest's page before it as reference */
    /* Block sums (sig_block[k]): */
    gsize sig_up[SIG_SIZES];    /* sums sent by the destination */
    gsize sig_down[SIG_SIZES];  /* bitmap + frame, pages again on failure */
    gsize sig_failed[SIG_SIZES]; /* pages whose rebuilt hash would differ */
} Other;

static gsize one_frame(ZSTD_CCtx *cc, int level, const guint8 *page,
                       const guint8 *ref, guint8 *out, gsize out_size)
{
    size_t n;

    ZSTD_CCtx_reset(cc, ZSTD_reset_session_and_parameters);
    ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, level);
    if (ref) {
        ZSTD_CCtx_refPrefix(cc, ref, PAGE);
    }
    n = ZSTD_compress2(cc, out, out_size, page, PAGE);
    g_assert(!ZSTD_isError(n));
    return MIN(n, PAGE); /* a page that does not shrink goes raw */
}

/* A 16-bit sum of @n bytes (FNV-1a folded). */
static guint16 block_sum(const guint8 *p, gsize n)
{
    guint32 h = 2166136261u;

    for (gsize i = 0; i < n; i++) {
        h = (h ^ p[i]) * 16777619u;
    }
    return (guint16)(h ^ (h >> 16));
}

/* What the delta by block sums of @page against @ref costs (see above). */
static void sig_delta(ZSTD_CCtx *cc, int level, const guint8 *page,
                      const guint8 *ref, gsize alone, guint8 *out,
                      gsize out_size, Other *o)
{
    for (guint k = 0; k < SIG_SIZES; k++) {
        gsize bs = sig_block[k], n = PAGE / bs;
        guint8 masked[PAGE];
        gboolean wrong = FALSE;

        memcpy(masked, page, PAGE);
        for (gsize b = 0; b < n; b++) {
            if (block_sum(page + b * bs, bs) == block_sum(ref + b * bs, bs)) {
                wrong |= memcmp(page + b * bs, ref + b * bs, bs) != 0;
                memset(masked + b * bs, 0, bs);
            }
        }
        o->sig_up[k] += n * 2;
        o->sig_down[k] +=
            n / 8 + one_frame(cc, level, masked, NULL, out, out_size);
        if (wrong) {
            o->sig_down[k] += alone;
            o->sig_failed[k]++;
        }
    }
}

static gsize zero_bytes(const guint8 *p)
{
    gsize n = 0;

    for (gsize i = 0; i < PAGE; i++) {
        n += !p[i];
    }
    return n;
}

/*
 * The "other" missing pages, one frame each, without and with the page
 * at the same offset of @ref (a site guest's RAM, @ref_pages long) as
 * reference.
 */
static void delta_other(ZSTD_CCtx *cc, int level, const guint8 *ram,
                        GArray *pages, const guint8 *ref, gsize ref_pages,
                        guint8 *out, gsize out_size, Other *o)
{
    for (guint i = 0; i < pages->len; i++) {
        gsize page = g_array_index(pages, gsize, i);
        const guint8 *p = ram + page * PAGE;
        gsize alone;

        if (zero_bytes(p) >= PAGE * 9 / 10) {
            continue;
        }
        alone = one_frame(cc, level, p, NULL, out, out_size);
        if (alone >= PAGE - 96 || page >= ref_pages) {
            continue;
        }
        o->pages++;
        o->frame_bytes += alone;
        o->delta_bytes += one_frame(cc, level, p, ref + page * PAGE, out,
                                    out_size);
        sig_delta(cc, level, p, ref + page * PAGE, alone, out, out_size, o);
        o->prev_bytes += page ? one_frame(cc, level, p, p - PAGE, out, out_size)
                              : alone;
    }
}

/* One frame per page: the bytes they took. */
static gsize frame_bytes(ZSTD_CCtx *cc, int level, const guint8 *ram,
                         GArray *pages, guint8 *out, gsize out_size)
{
    gsize total = 0;

    for (guint i = 0; i < pages->len; i++) {
        size_t n = ZSTD_compressCCtx(
            cc, out, out_size, ram + g_array_index(pages, gsize, i) * PAGE,
            PAGE, level);

        g_assert(!ZSTD_isError(n));
        total += MIN(n, PAGE); /* a page that does not shrink goes raw */
    }
    return total;
}

static gboolean parse_levels(const char *s, GArray *levels, GError **error)
{
    g_auto(GStrv) parts = g_strsplit(s, ",", -1);

    for (char **p = parts; *p; p++) {
        gint64 v;

        if (!g_ascii_string_to_signed(*p, 10, 1, ZSTD_maxCLevel(), &v,
                                      error)) {
            return FALSE;
        }
        g_array_append_val(levels, (int){v});
    }
    return levels->len > 0;
}

int main(int argc, char **argv)
{
    g_autofree char *arg_levels = NULL;
    g_auto(GStrv) arg_site = NULL;
    g_auto(GStrv) arg_cluster = NULL;
    const GOptionEntry entries[] = {
        {"levels", 0, 0, G_OPTION_ARG_STRING, &arg_levels,
         "zstd levels to measure, comma-separated (default 1,3)", "L,L"},
        {"site", 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &arg_site,
         "RAM file of a destination-site guest (repeat)", "RAM"},
        {"cluster", 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &arg_cluster,
         "RAM file of a migrating guest (repeat)", "RAM"},
        {NULL}};
    g_autoptr(GOptionContext) ctx =
        g_option_context_new("- zstd levels of the pages sent in full");
    g_autoptr(GError) error = NULL;
    g_autoptr(GArray) levels = g_array_new(FALSE, FALSE, sizeof(int));
    g_autoptr(GHashTable) site = NULL;
    g_autofree guint8 *out = NULL;
    gsize out_size = ZSTD_compressBound(PAGE) + 64;
    ZSTD_CCtx *cc;
    guint n_cluster;

    g_option_context_add_main_entries(ctx, entries, NULL);
    if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
        g_printerr("page-zstd: %s\n", error->message);
        return 2;
    }
    if (argc > 1) {
        g_printerr("page-zstd: unexpected argument '%s' (repeat --site and "
                   "--cluster for each file)\n", argv[1]);
        return 2;
    }
    if (!arg_site || !arg_cluster) {
        g_printerr("page-zstd: --site and --cluster are needed\n");
        return 2;
    }
    if (!parse_levels(arg_levels ? arg_levels : "1,3", levels, &error)) {
        g_printerr("page-zstd: --levels: %s\n",
                   error ? error->message : "empty");
        return 2;
    }

    site = g_hash_table_new_full(vc_page_hash_hash, vc_page_hash_equal_func,
                                 g_free, NULL);
    Ram ref = {0};
    for (char **p = arg_site; *p; p++) {
        Ram r;

        if (!map_ram(&r, *p, &error)) {
            g_printerr("page-zstd: %s\n", error->message);
            return 1;
        }
        for (gsize i = 0; i < r.pages; i++) {
            VcPageHash *h = g_new(VcPageHash, 1);

            vc_page_hash(r.ram + i * PAGE, h);
            g_hash_table_add(site, h);
        }
        if (!ref.ram) {
            ref = r;
        }
    }

    out = g_malloc(out_size);
    cc = ZSTD_createCCtx();
    n_cluster = g_strv_length(arg_cluster);
    g_autofree gsize *stream = g_new0(gsize, levels->len);
    g_autofree double *cpu = g_new0(double, levels->len);
    gsize missing = 0, frames = 0;
    Other other = {0};

    for (guint g = 0; g < n_cluster; g++) {
        g_autoptr(GArray) pages = g_array_new(FALSE, FALSE, sizeof(gsize));
        Ram r;

        if (!map_ram(&r, arg_cluster[g], &error)) {
            g_printerr("page-zstd: %s\n", error->message);
            return 1;
        }
        for (gsize i = 0; i < r.pages; i++) {
            VcPageHash h;

            if (is_zero(r.ram + i * PAGE)) {
                continue;
            }
            vc_page_hash(r.ram + i * PAGE, &h);
            if (!g_hash_table_contains(site, &h)) {
                g_array_append_val(pages, i);
            }
        }
        missing += pages->len;
        for (guint l = 0; l < levels->len; l++) {
            double t0 = cpu_now();

            stream[l] += stream_bytes(cc, g_array_index(levels, int, l),
                                      r.ram, pages, out, out_size);
            cpu[l] += cpu_now() - t0;
        }
        frames += frame_bytes(cc, g_array_index(levels, int, 0), r.ram,
                              pages, out, out_size);
        delta_other(cc, g_array_index(levels, int, 0), r.ram, pages,
                    ref.ram, ref.pages, out, out_size, &other);
        munmap((void *)r.ram, r.pages * PAGE);
    }
    ZSTD_freeCCtx(cc);

    printf("page_zstd guests=%u missing_pages=%zu raw_bytes=%zu "
           "frame_per_page_level=%d frame_per_page_bytes=%zu "
           "other_pages=%zu other_frame_bytes=%zu other_delta_bytes=%zu "
           "other_prev_bytes=%zu\n",
           n_cluster, missing, missing * PAGE, g_array_index(levels, int, 0),
           frames, other.pages, other.frame_bytes, other.delta_bytes,
           other.prev_bytes);
    for (guint k = 0; k < SIG_SIZES; k++) {
        printf("page_zstd_sig block=%zu up_bytes=%zu down_bytes=%zu "
               "failed_pages=%zu\n",
               sig_block[k], other.sig_up[k], other.sig_down[k],
               other.sig_failed[k]);
    }
    for (guint l = 0; l < levels->len; l++) {
        double mbps = cpu[l] > 0 ? missing * PAGE / cpu[l] / 1e6 : 0;

        printf("page_zstd_level level=%d bytes=%zu ratio=%.3f cpu_s=%.3f "
               "mb_per_cpu_s=%.0f\n",
               g_array_index(levels, int, l), stream[l],
               missing ? (double)stream[l] / (missing * PAGE) : 0, cpu[l],
               mbps);
    }
    return 0;
}
