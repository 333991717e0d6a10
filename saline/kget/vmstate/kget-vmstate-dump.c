/*
 * kget-vmstate-dump: look into a QEMU migration stream with kget-vmstate
 * (a debugging aid and the integration test's driver; not installed).
 *
 *   kget-vmstate-dump STREAM|-            blocks, pages, device state
 *   kget-vmstate-dump split STREAM|- RAM DEVSTATE
 *                                         write the two items
 *   kget-vmstate-dump rebuild DEVSTATE RAM OUT|-
 *                                         write the stream back
 */
#include "kget-vmstate.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum { PAGE_UNSENT, PAGE_ZERO, PAGE_DATA };

typedef struct {
    guint8 *pages; /* PAGE_* per page of the RAM item, for the summary */
    guint64 n_pages;
    guint64 records;
    int ram_fd; /* split: the RAM item being written, else -1 */
} Dump;

static gboolean
set_io_error(GError **error, const char *what, const char *path)
{
    int err = errno;

    g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(err),
                "cannot %s '%s': %s", what, path, g_strerror(err));
    return FALSE;
}

static gboolean
on_ram_size(guint64 ram_size, gpointer user_data, GError **error)
{
    Dump *d = user_data;

    d->n_pages = ram_size / KGET_VMSTATE_PAGE_SIZE;
    d->pages = g_malloc0(d->n_pages);
    if (d->ram_fd >= 0 && ftruncate(d->ram_fd, (off_t)ram_size) < 0) {
        return set_io_error(error, "resize", "RAM item");
    }
    return TRUE;
}

static gboolean
on_page(guint64 offset, const guint8 *data, gpointer user_data, GError **error)
{
    static const guint8 zero[KGET_VMSTATE_PAGE_SIZE];
    Dump *d = user_data;
    ssize_t n;

    d->records++;
    d->pages[offset / KGET_VMSTATE_PAGE_SIZE] = data ? PAGE_DATA : PAGE_ZERO;
    if (d->ram_fd < 0) {
        return TRUE;
    }
    n = pwrite(d->ram_fd, data ? data : zero, KGET_VMSTATE_PAGE_SIZE,
               (off_t)offset);
    if (n != KGET_VMSTATE_PAGE_SIZE) {
        return set_io_error(error, "write", "RAM item");
    }
    return TRUE;
}

static int
open_in(const char *path, GError **error)
{
    int fd;

    if (strcmp(path, "-") == 0) {
        return STDIN_FILENO;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        set_io_error(error, "open", path);
    }
    return fd;
}

static GBytes *
parse_stream(const char *path, Dump *d, GError **error)
{
    static const KgetVmstateParserFuncs funcs = {on_ram_size, on_page};
    g_autoptr(KgetVmstateParser) parser = kget_vmstate_parser_new(&funcs, d);
    g_autofree guint8 *buf = g_malloc(65536);
    int fd = open_in(path, error);
    GBytes *item = NULL;

    if (fd < 0) {
        return NULL;
    }
    for (;;) {
        ssize_t n = read(fd, buf, 65536);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            set_io_error(error, "read", path);
            break;
        }
        if (n == 0) {
            item = kget_vmstate_parser_finish(parser, error);
            break;
        }
        if (!kget_vmstate_parser_feed(parser, buf, n, error)) {
            break;
        }
    }
    if (fd != STDIN_FILENO) {
        close(fd);
    }
    return item;
}

static void
print_summary(KgetVmstateDeviceState *ds, const Dump *d)
{
    const KgetVmstateBlock *blocks;
    guint n_blocks;

    blocks = kget_vmstate_device_state_get_blocks(ds, &n_blocks);
    printf("ram: %" G_GUINT64_FORMAT " bytes, %u blocks, %" G_GUINT64_FORMAT
           " page records\n",
           kget_vmstate_device_state_get_ram_size(ds), n_blocks, d->records);
    for (guint i = 0; i < n_blocks; i++) {
        guint64 count[3] = {0};
        guint64 first = blocks[i].offset / KGET_VMSTATE_PAGE_SIZE;
        guint64 n = blocks[i].size / KGET_VMSTATE_PAGE_SIZE;

        for (guint64 p = first; p < first + n; p++) {
            count[d->pages[p]]++;
        }
        printf("block '%s': offset %" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT
               " bytes, pages: %" G_GUINT64_FORMAT " data, %" G_GUINT64_FORMAT
               " zero, %" G_GUINT64_FORMAT " unsent\n",
               blocks[i].idstr, blocks[i].offset, blocks[i].size,
               count[PAGE_DATA], count[PAGE_ZERO], count[PAGE_UNSENT]);
    }
    printf("device state: %" G_GSIZE_FORMAT " bytes head, %" G_GSIZE_FORMAT
           " bytes tail, RAM section %u, footers %s\n",
           g_bytes_get_size(kget_vmstate_device_state_get_head(ds)),
           g_bytes_get_size(kget_vmstate_device_state_get_tail(ds)),
           kget_vmstate_device_state_get_section_id(ds),
           kget_vmstate_device_state_get_footers(ds) ? "yes" : "no");
}

static gboolean
dump(const char *stream, const char *ram_path, const char *ds_path,
     GError **error)
{
    g_autoptr(KgetVmstateDeviceState) ds = NULL;
    g_autoptr(GBytes) item = NULL;
    Dump d = {NULL, 0, 0, -1};
    gboolean ok = FALSE;

    if (ram_path) {
        d.ram_fd =
            open(ram_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (d.ram_fd < 0) {
            return set_io_error(error, "create", ram_path);
        }
    }
    item = parse_stream(stream, &d, error);
    if (item) {
        ds = kget_vmstate_device_state_new(item, error);
    }
    if (ds) {
        print_summary(ds, &d);
        printf("device-state item: %" G_GSIZE_FORMAT " bytes\n",
               g_bytes_get_size(item));
        ok = !ds_path ||
             g_file_set_contents(ds_path, g_bytes_get_data(item, NULL),
                                 (gssize)g_bytes_get_size(item), error);
    }
    if (d.ram_fd >= 0 && close(d.ram_fd) < 0 && ok) {
        ok = set_io_error(error, "close", ram_path);
    }
    g_free(d.pages);
    return ok;
}

static gboolean
read_ram_page(guint64 offset, guint8 *buf, gboolean *zero, gpointer user_data,
              GError **error)
{
    int fd = GPOINTER_TO_INT(user_data);
    ssize_t n = pread(fd, buf, KGET_VMSTATE_PAGE_SIZE, (off_t)offset);
    gsize i = 0;

    if (n != KGET_VMSTATE_PAGE_SIZE) {
        if (n >= 0) {
            errno = EIO;
        }
        return set_io_error(error, "read", "RAM item");
    }
    while (i < KGET_VMSTATE_PAGE_SIZE && buf[i] == 0) {
        i++;
    }
    *zero = i == KGET_VMSTATE_PAGE_SIZE;
    return TRUE;
}

static gboolean
rebuild(const char *ds_path, const char *ram_path, const char *out,
        GError **error)
{
    g_autoptr(KgetVmstateDeviceState) ds = NULL;
    g_autoptr(GBytes) item = NULL;
    g_autofree char *data = NULL;
    gsize len = 0;
    int ram_fd, out_fd = STDOUT_FILENO;
    gboolean ok;

    if (!g_file_get_contents(ds_path, &data, &len, error)) {
        return FALSE;
    }
    item = g_bytes_new_take(g_steal_pointer(&data), len);
    ds = kget_vmstate_device_state_new(item, error);
    if (!ds) {
        return FALSE;
    }
    ram_fd = open(ram_path, O_RDONLY | O_CLOEXEC);
    if (ram_fd < 0) {
        return set_io_error(error, "open", ram_path);
    }
    if (strcmp(out, "-") != 0) {
        out_fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (out_fd < 0) {
            close(ram_fd);
            return set_io_error(error, "create", out);
        }
    }
    ok = kget_vmstate_rebuild_to_fd(ds, read_ram_page, GINT_TO_POINTER(ram_fd),
                                    out_fd, error);
    close(ram_fd);
    if (out_fd != STDOUT_FILENO && close(out_fd) < 0 && ok) {
        ok = set_io_error(error, "close", out);
    }
    return ok;
}

int
main(int argc, char **argv)
{
    g_autoptr(GError) error = NULL;
    gboolean ok;

    if (argc == 2) {
        ok = dump(argv[1], NULL, NULL, &error);
    } else if (argc == 5 && strcmp(argv[1], "split") == 0) {
        ok = dump(argv[2], argv[3], argv[4], &error);
    } else if (argc == 5 && strcmp(argv[1], "rebuild") == 0) {
        ok = rebuild(argv[2], argv[3], argv[4], &error);
    } else {
        fprintf(stderr, "usage: kget-vmstate-dump [split] STREAM|- [RAM "
                        "DEVSTATE] | rebuild DEVSTATE RAM OUT|-\n");
        return 2;
    }
    if (!ok) {
        fprintf(stderr, "kget-vmstate-dump: %s\n", error->message);
        return 1;
    }
    return 0;
}
