/*
 * kget: put, seal, restore, list, verify and collect snapshots in a
 * kget-store (saline/kget/README.md, "kget").
 *
 * Exit codes: 0 ok, 1 refused or failed (one line on stderr), 2 usage,
 * 3 store unreachable.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kget-client.h"
#include "kget-resolver.h"
#include "kget-vmstate-io.h"
#include "vc-log.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

#define DEFAULT_STORE "localhost"
#define DEFAULT_KEY_FILE "/etc/kget/site.key"
#define CONNECT_TIMEOUT_MS 5000

static char *arg_store;
static char *arg_key_file;
static gboolean arg_json;
static gboolean arg_quiet;
static char *arg_meta;
static gboolean arg_no_seal;
static char *arg_output;
static gboolean arg_pending;
static gint arg_keep = -1;
static char *arg_vmstate;
static char *arg_resolver;
static char *arg_report;

static const GOptionEntry options[] = {
    {"store", 's', 0, G_OPTION_ARG_STRING, &arg_store,
     "The store (default $KGET_STORE, else localhost:7410)", "HOST[:PORT]"},
    {"key-file", 'k', 0, G_OPTION_ARG_FILENAME, &arg_key_file,
     "Site key (default $KGET_KEY_FILE, else " DEFAULT_KEY_FILE ")", "FILE"},
    {"json", 'j', 0, G_OPTION_ARG_NONE, &arg_json,
     "Print one JSON object per command", NULL},
    {"quiet", 'q', 0, G_OPTION_ARG_NONE, &arg_quiet,
     "No progress, no summary", NULL},
    {"meta", 'm', 0, G_OPTION_ARG_STRING, &arg_meta,
     "snapshot, seal: metadata (a JSON object, <= 64 KiB)", "JSON"},
    {"no-seal", 0, 0, G_OPTION_ARG_NONE, &arg_no_seal,
     "snapshot: put the items, leave the seal to 'kget seal'", NULL},
    {"vmstate", 0, 0, G_OPTION_ARG_STRING, &arg_vmstate,
     "snapshot: a QEMU migration stream into ITEM and ITEM.ram ('-': "
     "standard input); restore: rebuild the stream of ITEM",
     "ITEM[=FILE]"},
    {"output", 'o', 0, G_OPTION_ARG_FILENAME, &arg_output,
     "restore: where to write the item ('-': standard output)", "FILE"},
    {"report", 0, 0, G_OPTION_ARG_FILENAME, &arg_report,
     "restore: also write the --json answer to FILE (when standard output "
     "carries the item, as for QEMU)", "FILE"},
    {"resolver", 'r', 0, G_OPTION_ARG_FILENAME, &arg_resolver,
     "restore: take the pages this site's dht-pagesd has from its resolver "
     "socket (" KGET_RESOLVER_SOCKET "), the rest from the store",
     "SOCKET"},
    {"pending", 0, 0, G_OPTION_ARG_NONE, &arg_pending,
     "ls: list pending (unsealed) snapshots too", NULL},
    {"keep", 0, 0, G_OPTION_ARG_INT, &arg_keep,
     "gc: sealed snapshots kept per group (default: the store's)", "K"},
    {NULL},
};

static const char summary[] =
    "Commands:\n"
    "  snapshot NAME [ITEM=FILE...] [--vmstate ITEM=FILE|-] [--meta JSON]\n"
    "           [--no-seal]    put the items (FILE '-': standard input),\n"
    "                          then seal unless --no-seal; --vmstate reads\n"
    "                          a QEMU migration stream (QEMU's exec: target)\n"
    "                          into ITEM (device state) and ITEM.ram (RAM)\n"
    "  seal NAME ITEM... [--meta JSON]\n"
    "                          seal a snapshot whose items were put\n"
    "  restore NAME ITEM -o FILE|- [--resolver SOCKET]\n"
    "                          write one item back\n"
    "  restore NAME --vmstate ITEM -o FILE|- [--resolver SOCKET]\n"
    "                          the migration stream of ITEM and ITEM.ram,\n"
    "                          for QEMU's migrate-incoming exec:; with\n"
    "                          --resolver, pages the site's page index\n"
    "                          has come from it (re-hashed), the rest\n"
    "                          from the store, and stderr says how many\n"
    "  ls [GROUP] [--pending]  snapshots: name, items, bytes, stored and\n"
    "                          new bytes, sealed time\n"
    "  verify [NAME]           re-hash every chunk the snapshot(s) use\n"
    "  gc [--keep K]           keep the K newest sealed snapshots of each\n"
    "                          group, drop the rest and unused chunks\n"
    "  rm NAME                 delete one snapshot\n"
    "\n"
    "NAME is GROUP@SEQ; ITEM is 1-128 of [A-Za-z0-9._:/-].";

static const char description[] =
    "Exit status: 0 ok, 1 refused or failed, 2 usage, 3 store unreachable.\n"
    "Progress goes to a terminal's stderr only; --json prints one object\n"
    "per command on stdout.\n"
    "restore --resolver never fails for want of dht-pagesd: the store then\n"
    "sends every page. It ends with one line on stderr, even with -q:\n"
    "  kget: ITEM: N pages from the site (X MiB), M from the store (Y MiB)\n"
    "(ITEM.ram with --vmstate); --json adds the counts to the object.\n";

static int
usage(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

static int
usage(const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_printerr("kget: %s (see kget --help)\n", msg);
    return EXIT_USAGE;
}

static int
failed(const GError *error)
{
    g_printerr("kget: %s\n", error->message);
    if (g_error_matches(error, KGET_ERROR, KGET_ERROR_UNREACHABLE)) {
        return EXIT_UNREACHABLE;
    }
    return EXIT_FAIL;
}

static void
print_json(JsonBuilder *b)
{
    g_autoptr(JsonGenerator) gen = json_generator_new();
    g_autoptr(JsonNode) root = json_builder_get_root(b);
    g_autofree char *text = NULL;

    json_generator_set_root(gen, root);
    text = json_generator_to_data(gen, NULL);
    printf("%s\n", text);
}

static gboolean
write_report(JsonBuilder *b, GError **error)
{
    g_autoptr(JsonGenerator) gen = json_generator_new();
    g_autoptr(JsonNode) root = json_builder_get_root(b);
    g_autofree char *text = NULL;

    json_generator_set_root(gen, root);
    text = json_generator_to_data(gen, NULL);
    return g_file_set_contents_full(arg_report, text, -1,
                                    G_FILE_SET_CONTENTS_CONSISTENT, 0644,
                                    error);
}

static void
json_int(JsonBuilder *b, const char *name, guint64 v)
{
    json_builder_set_member_name(b, name);
    json_builder_add_int_value(b, (gint64)v);
}

static gboolean
show_progress(void)
{
    return !arg_quiet && !arg_json && isatty(STDERR_FILENO);
}

static void
on_progress(const KgetItemStats *s, guint64 done, gpointer data)
{
    g_printerr("\r\033[K%s: %.1f MiB, %" G_GUINT64_FORMAT " chunks sent (%.1f "
               "MiB), %" G_GUINT64_FORMAT " new",
               (const char *)data, done / 1048576.0, s->chunks_sent,
               s->bytes_sent / 1048576.0, s->chunks_new);
}

static KgetClient *
connect_store(GError **error)
{
    g_autoptr(GBytes) key = NULL;
    const char *store = arg_store ? arg_store : g_getenv("KGET_STORE");
    const char *key_file = arg_key_file ? arg_key_file
                                        : g_getenv("KGET_KEY_FILE");

    if (!kget_key_load(key_file ? key_file : DEFAULT_KEY_FILE, &key, error)) {
        return NULL;
    }
    return kget_client_connect(store ? store : DEFAULT_STORE, key,
                               CONNECT_TIMEOUT_MS, error);
}

static int
check_snapshot_name(const char *name)
{
    if (!kget_snapshot_name_valid(name)) {
        return usage("invalid snapshot name '%s', want GROUP@SEQ", name);
    }
    return EXIT_OK;
}

static int
check_item_name(const char *name)
{
    if (!kget_item_name_valid(name)) {
        return usage("invalid item name '%s'", name);
    }
    return EXIT_OK;
}

static int
check_meta(void)
{
    g_autoptr(JsonParser) parser = json_parser_new();

    if (!arg_meta) {
        return EXIT_OK;
    }
    if (strlen(arg_meta) > KGET_MAX_META_LEN ||
        !json_parser_load_from_data(parser, arg_meta, -1, NULL) ||
        !JSON_NODE_HOLDS_OBJECT(json_parser_get_root(parser))) {
        return usage("--meta is not a JSON object of at most 64 KiB");
    }
    return EXIT_OK;
}

static void
json_item_stats(JsonBuilder *b, const char *item, const KgetItemStats *s)
{
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "item");
    json_builder_add_string_value(b, item);
    json_int(b, "size", s->size);
    json_int(b, "blocks", s->blocks);
    json_int(b, "zero_blocks", s->zero_blocks);
    json_int(b, "chunks_sent", s->chunks_sent);
    json_int(b, "bytes_sent", s->bytes_sent);
    json_int(b, "chunks_new", s->chunks_new);
    json_int(b, "bytes_new", s->bytes_new);
    json_int(b, "stored_bytes", s->stored_bytes);
    json_builder_end_object(b);
}

static void
drain(int fd)
{
    char buf[65536];

    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));

        if (n == 0 || (n < 0 && errno != EINTR)) {
            break;
        }
    }
}

static int
cmd_snapshot(int argc, char **argv)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(GPtrArray) items = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GPtrArray) files = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(KgetClient) client = NULL;
    g_autoptr(GError) error = NULL;
    const char *name = argc > 1 ? argv[1] : NULL;
    gboolean stdin_used = FALSE;
    int rc;

    const char *vm_item = NULL, *vm_file = NULL;
    g_autofree char *vm_item_buf = NULL;

    if (!name || (argc < 3 && !arg_vmstate)) {
        return usage("snapshot needs NAME and at least one ITEM=FILE");
    }
    if (arg_vmstate) {
        const char *eq = strchr(arg_vmstate, '=');

        if (!eq || !eq[1]) {
            return usage("--vmstate '%s' is not ITEM=FILE", arg_vmstate);
        }
        vm_item = vm_item_buf = g_strndup(arg_vmstate, eq - arg_vmstate);
        vm_file = eq + 1;
        if ((rc = check_item_name(vm_item))) {
            return rc;
        }
        stdin_used = g_str_equal(vm_file, "-");
    }
    if ((rc = check_snapshot_name(name)) || (rc = check_meta())) {
        return rc;
    }
    for (int i = 2; i < argc; i++) {
        const char *eq = strchr(argv[i], '=');
        g_autofree char *item = eq ? g_strndup(argv[i], eq - argv[i]) : NULL;

        if (!eq || !eq[1]) {
            return usage("'%s' is not ITEM=FILE", argv[i]);
        }
        if ((rc = check_item_name(item))) {
            return rc;
        }
        if (g_str_equal(eq + 1, "-")) {
            if (stdin_used) {
                return usage("standard input can be read only once");
            }
            stdin_used = TRUE;
        }
        g_ptr_array_add(items, g_steal_pointer(&item));
        g_ptr_array_add(files, g_strdup(eq + 1));
    }
    client = connect_store(&error);
    if (!client) {
        if (vm_item && g_str_equal(vm_file, "-")) {
            /* QEMU's snapshot must run to its end (kget-vmstate-io.c). */
            drain(STDIN_FILENO);
        }
        return failed(error);
    }
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "snapshot");
    json_builder_add_string_value(b, name);
    json_builder_set_member_name(b, "items");
    json_builder_begin_array(b);
    for (guint i = 0; i < items->len; i++) {
        const char *item = items->pdata[i], *file = files->pdata[i];
        KgetItemStats s = {0};
        int fd = g_str_equal(file, "-") ? STDIN_FILENO
                                        : open(file, O_RDONLY | O_CLOEXEC);
        gboolean ok;

        if (fd < 0) {
            g_printerr("kget: cannot open '%s': %s\n", file, g_strerror(errno));
            return EXIT_FAIL;
        }
        ok = kget_client_put_fd(client, name, item, fd,
                                show_progress() ? on_progress : NULL,
                                (gpointer)item, &s, &error);
        if (fd != STDIN_FILENO) {
            close(fd);
        }
        if (show_progress()) {
            g_printerr("\r\033[K");
        }
        if (!ok) {
            g_prefix_error(&error, "%s: ", item);
            return failed(error);
        }
        json_item_stats(b, item, &s);
        if (!arg_json && !arg_quiet) {
            printf("%s: %" G_GUINT64_FORMAT " bytes, %" G_GUINT64_FORMAT
                   " blocks (%" G_GUINT64_FORMAT " zero), sent %" G_GUINT64_FORMAT
                   " chunks (%" G_GUINT64_FORMAT " bytes), %" G_GUINT64_FORMAT
                   " new (%" G_GUINT64_FORMAT " bytes)\n",
                   item, s.size, s.blocks, s.zero_blocks, s.chunks_sent,
                   s.bytes_sent, s.chunks_new, s.bytes_new);
        }
    }
    if (vm_item) {
        KgetItemStats st = {0}, ram = {0};
        g_autofree char *ram_item = g_strconcat(vm_item, ".ram", NULL);
        int fd = g_str_equal(vm_file, "-") ? STDIN_FILENO
                                           : open(vm_file, O_RDONLY | O_CLOEXEC);
        gboolean ok;

        if (fd < 0) {
            g_printerr("kget: cannot open '%s': %s\n", vm_file,
                       g_strerror(errno));
            return EXIT_FAIL;
        }
        ok = kget_vmstate_put(client, name, vm_item, fd, &st, &ram, &error);
        if (fd != STDIN_FILENO) {
            close(fd);
        }
        if (!ok) {
            g_prefix_error(&error, "%s: ", vm_item);
            return failed(error);
        }
        json_item_stats(b, vm_item, &st);
        json_item_stats(b, ram_item, &ram);
        if (!arg_json && !arg_quiet) {
            printf("%s: %" G_GUINT64_FORMAT " bytes of device state, %s: %"
                   G_GUINT64_FORMAT " bytes of RAM, sent %" G_GUINT64_FORMAT
                   " bytes, %" G_GUINT64_FORMAT " new\n",
                   vm_item, st.size, ram_item, ram.size,
                   st.bytes_sent + ram.bytes_sent, st.bytes_new + ram.bytes_new);
        }
        g_ptr_array_add(items, g_strdup(vm_item));
        g_ptr_array_add(items, g_steal_pointer(&ram_item));
    }
    json_builder_end_array(b);
    if (!arg_no_seal) {
        g_ptr_array_add(items, NULL);
        if (!kget_client_seal(client, name, (const char *const *)items->pdata,
                              items->len - 1, arg_meta, &error)) {
            return failed(error);
        }
        if (!arg_json && !arg_quiet) {
            printf("sealed %s\n", name);
        }
    }
    json_builder_set_member_name(b, "sealed");
    json_builder_add_boolean_value(b, !arg_no_seal);
    json_builder_end_object(b);
    if (arg_json) {
        print_json(b);
    }
    return EXIT_OK;
}

static int
cmd_seal(int argc, char **argv)
{
    g_autoptr(KgetClient) client = NULL;
    g_autoptr(GError) error = NULL;
    int rc;

    if (argc < 3) {
        return usage("seal needs NAME and at least one ITEM");
    }
    if ((rc = check_snapshot_name(argv[1])) || (rc = check_meta())) {
        return rc;
    }
    for (int i = 2; i < argc; i++) {
        if ((rc = check_item_name(argv[i]))) {
            return rc;
        }
    }
    client = connect_store(&error);
    if (!client || !kget_client_seal(client, argv[1],
                                     (const char *const *)argv + 2,
                                     (guint)argc - 2, arg_meta, &error)) {
        return failed(error);
    }
    if (arg_json) {
        g_autoptr(JsonBuilder) b = json_builder_new();

        json_builder_begin_object(b);
        json_builder_set_member_name(b, "snapshot");
        json_builder_add_string_value(b, argv[1]);
        json_builder_set_member_name(b, "sealed");
        json_builder_add_boolean_value(b, TRUE);
        json_int(b, "items", (guint64)argc - 2);
        json_builder_end_object(b);
        print_json(b);
    } else if (!arg_quiet) {
        printf("sealed %s\n", argv[1]);
    }
    return EXIT_OK;
}

static gboolean
get_item(KgetClient *client, const char *snapshot, const char *item, int fd,
         KgetChunkSource source, gpointer source_data, KgetReaderStats *rs,
         GError **error)
{
    g_autoptr(KgetItemReader) r =
        kget_item_reader_new(client, snapshot, item, error);

    if (!r) {
        return FALSE;
    }
    kget_item_reader_set_source(r, source, source_data);
    kget_item_reader_set_publish(r, source ? kget_resolver_publish : NULL);
    if (!kget_item_reader_write_fd(r, fd, show_progress() ? on_progress : NULL,
                                   (gpointer)item, error)) {
        return FALSE;
    }
    kget_item_reader_stats(r, rs);
    return TRUE;
}

/* Where the pages came from: printed whatever -q says, for QEMU's log
 * (salined runs the restore as QEMU's incoming exec:). */
static void
print_sources(const char *item, const KgetReaderStats *rs)
{
    g_autoptr(GString) line = g_string_new(NULL);

    g_string_printf(line,
                    "kget: %s: %" G_GUINT64_FORMAT
                    " pages from the site (%.1f MiB), %" G_GUINT64_FORMAT
                    " from the store (%.1f MiB)",
                    item, rs->source_chunks, rs->source_bytes / 1048576.0,
                    rs->store_chunks, rs->store_bytes / 1048576.0);
    if (rs->source_bad > 0) {
        g_string_append_printf(line,
                               ", %" G_GUINT64_FORMAT
                               " from the site failed their hash",
                               rs->source_bad);
    }
    g_printerr("%s\n", line->str);
}

static int
cmd_restore(int argc, char **argv)
{
    g_autoptr(KgetClient) client = NULL;
    g_autoptr(KgetResolver) resolver = NULL;
    g_autoptr(GError) error = NULL;
    g_autofree char *ram_item = NULL;
    KgetChunkSource source = NULL;
    KgetReaderStats rs = {0};
    const char *item;
    gboolean to_stdout;
    int rc, fd;

    if (argc != (arg_vmstate ? 2 : 3)) {
        return usage(arg_vmstate ? "restore --vmstate ITEM needs NAME only"
                                 : "restore needs NAME and ITEM");
    }
    if (!arg_output) {
        return usage("restore needs -o FILE|-");
    }
    to_stdout = g_str_equal(arg_output, "-");
    if (to_stdout && arg_json) {
        return usage("--json and -o - both use standard output");
    }
    if ((rc = check_snapshot_name(argv[1])) ||
        (rc = check_item_name(arg_vmstate ? arg_vmstate : argv[2]))) {
        return rc;
    }
    client = connect_store(&error);
    if (!client) {
        return failed(error);
    }
    fd = to_stdout ? STDOUT_FILENO
                   : open(arg_output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                          0644);
    if (fd < 0) {
        g_printerr("kget: cannot create '%s': %s\n", arg_output,
                   g_strerror(errno));
        return EXIT_FAIL;
    }
    if (arg_resolver) {
        resolver = kget_resolver_new(arg_resolver);
        source = kget_resolver_lookup;
    }
    if (arg_vmstate ? !kget_vmstate_get(client, argv[1], arg_vmstate, fd,
                                        source, kget_resolver_publish,
                                        resolver, &rs, &error)
                    : !get_item(client, argv[1], argv[2], fd, source, resolver,
                                &rs, &error)) {
        if (show_progress()) {
            g_printerr("\r\033[K");
        }
        if (!to_stdout) {
            close(fd);
            /* No half-restored file is left looking like the item. */
            unlink(arg_output);
        }
        return failed(error);
    }
    if (show_progress()) {
        g_printerr("\r\033[K");
    }
    if (!to_stdout && (fsync(fd) < 0 || close(fd) < 0)) {
        g_printerr("kget: cannot write '%s': %s\n", arg_output,
                   g_strerror(errno));
        return EXIT_FAIL;
    }
    item = arg_vmstate ? (ram_item = g_strconcat(arg_vmstate, ".ram", NULL))
                       : argv[2];
    if (resolver) {
        print_sources(item, &rs);
    }
    if (arg_json || arg_report) {
        g_autoptr(JsonBuilder) b = json_builder_new();

        json_builder_begin_object(b);
        json_builder_set_member_name(b, "snapshot");
        json_builder_add_string_value(b, argv[1]);
        json_builder_set_member_name(b, "item");
        json_builder_add_string_value(b, arg_vmstate ? arg_vmstate : argv[2]);
        json_builder_set_member_name(b, "output");
        json_builder_add_string_value(b, arg_output);
        if (resolver) {
            json_builder_set_member_name(b, "pages");
            json_builder_begin_object(b);
            json_builder_set_member_name(b, "item");
            json_builder_add_string_value(b, item);
            json_int(b, "site_chunks", rs.source_chunks);
            json_int(b, "site_bytes", rs.source_bytes);
            json_int(b, "site_bad", rs.source_bad);
            json_int(b, "store_chunks", rs.store_chunks);
            json_int(b, "store_bytes", rs.store_bytes);
            json_builder_end_object(b);
        }
        json_builder_end_object(b);
        if (arg_json) {
            print_json(b);
        }
        if (arg_report && !write_report(b, &error)) {
            return failed(error);
        }
    }
    return EXIT_OK;
}

static int
cmd_ls(int argc, char **argv)
{
    g_autoptr(KgetClient) client = NULL;
    g_autoptr(GError) error = NULL;
    g_autoptr(GArray) entries = NULL;
    g_autoptr(JsonBuilder) b = json_builder_new();
    const char *group = argc > 1 ? argv[1] : NULL;
    gboolean truncated;
    guint64 chunks, bytes;

    if (argc > 2) {
        return usage("ls takes at most one GROUP");
    }
    if (group && !kget_group_name_valid(group)) {
        return usage("invalid group name '%s'", group);
    }
    client = connect_store(&error);
    if (!client || !kget_client_list(client, group, arg_pending, &entries,
                                     &truncated, &chunks, &bytes, &error)) {
        return failed(error);
    }
    json_builder_begin_object(b);
    json_int(b, "chunks", chunks);
    json_int(b, "bytes", bytes);
    json_builder_set_member_name(b, "truncated");
    json_builder_add_boolean_value(b, truncated);
    json_builder_set_member_name(b, "snapshots");
    json_builder_begin_array(b);
    if (!arg_json && !arg_quiet) {
        printf("%-30s %5s %14s %14s %14s  %s\n", "NAME", "ITEMS", "BYTES",
               "STORED", "NEW", "SEALED");
    }
    for (guint i = 0; i < entries->len; i++) {
        KgetListEntry *e = &g_array_index(entries, KgetListEntry, i);
        g_autoptr(GDateTime) t = g_date_time_new_from_unix_utc(e->sealed_time);
        g_autofree char *when = e->sealed && t
                                    ? g_date_time_format_iso8601(t)
                                    : g_strdup("pending");

        json_builder_begin_object(b);
        json_builder_set_member_name(b, "name");
        json_builder_add_string_value(b, e->name);
        json_builder_set_member_name(b, "sealed");
        json_builder_add_boolean_value(b, e->sealed);
        json_int(b, "sealed_time", (guint64)e->sealed_time);
        json_int(b, "items", e->n_items);
        json_int(b, "bytes", e->bytes);
        json_int(b, "stored_bytes", e->stored_bytes);
        json_int(b, "new_bytes", e->new_bytes);
        json_builder_end_object(b);
        if (!arg_json && !arg_quiet) {
            printf("%-30s %5u %14" G_GUINT64_FORMAT " %14" G_GUINT64_FORMAT
                   " %14" G_GUINT64_FORMAT "  %s\n",
                   e->name, e->n_items, e->bytes, e->stored_bytes,
                   e->new_bytes, when);
        }
    }
    json_builder_end_array(b);
    json_builder_end_object(b);
    if (arg_json) {
        print_json(b);
    } else if (!arg_quiet) {
        printf("store: %" G_GUINT64_FORMAT " chunks, %" G_GUINT64_FORMAT
               " bytes%s\n",
               chunks, bytes, truncated ? " (list cut)" : "");
    }
    return EXIT_OK;
}

static int
cmd_verify(int argc, char **argv)
{
    g_autoptr(KgetClient) client = NULL;
    g_autoptr(GError) error = NULL;
    const char *name = argc > 1 ? argv[1] : NULL;
    guint64 checked, corrupt, missing;
    int rc;

    if (argc > 2) {
        return usage("verify takes at most one NAME");
    }
    if (name && (rc = check_snapshot_name(name))) {
        return rc;
    }
    client = connect_store(&error);
    if (!client || !kget_client_verify(client, name, &checked, &corrupt,
                                       &missing, &error)) {
        return failed(error);
    }
    if (arg_json) {
        g_autoptr(JsonBuilder) b = json_builder_new();

        json_builder_begin_object(b);
        json_int(b, "checked", checked);
        json_int(b, "corrupt", corrupt);
        json_int(b, "missing", missing);
        json_builder_set_member_name(b, "ok");
        json_builder_add_boolean_value(b, corrupt + missing == 0);
        json_builder_end_object(b);
        print_json(b);
    } else if (!arg_quiet) {
        printf("%" G_GUINT64_FORMAT " chunks checked, %" G_GUINT64_FORMAT
               " corrupt, %" G_GUINT64_FORMAT " missing\n",
               checked, corrupt, missing);
    }
    if (corrupt + missing > 0) {
        g_printerr("kget: verify %s: %" G_GUINT64_FORMAT " corrupt and %"
                   G_GUINT64_FORMAT " missing chunks\n",
                   name ? name : "of the store", corrupt, missing);
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

static int
cmd_gc(int argc, char **argv)
{
    g_autoptr(KgetClient) client = NULL;
    g_autoptr(GError) error = NULL;
    guint64 r[4];

    if (argc > 1) {
        return usage("gc takes no argument");
    }
    if (arg_keep != -1 && (arg_keep < 1 || arg_keep > KGET_MAX_KEEP)) {
        return usage("--keep %d is not in 1..%u", arg_keep, KGET_MAX_KEEP);
    }
    client = connect_store(&error);
    if (!client ||
        !kget_client_gc(client, arg_keep < 0 ? 0 : (guint)arg_keep, r,
                        &error)) {
        return failed(error);
    }
    if (arg_json) {
        g_autoptr(JsonBuilder) b = json_builder_new();

        json_builder_begin_object(b);
        json_int(b, "snapshots", r[0]);
        json_int(b, "items", r[1]);
        json_int(b, "chunks", r[2]);
        json_int(b, "bytes", r[3]);
        json_builder_end_object(b);
        print_json(b);
    } else if (!arg_quiet) {
        printf("removed %" G_GUINT64_FORMAT " snapshots, %" G_GUINT64_FORMAT
               " items, %" G_GUINT64_FORMAT " chunks (%" G_GUINT64_FORMAT
               " bytes)\n",
               r[0], r[1], r[2], r[3]);
    }
    return EXIT_OK;
}

static int
cmd_rm(int argc, char **argv)
{
    g_autoptr(KgetClient) client = NULL;
    g_autoptr(GError) error = NULL;
    int rc;

    if (argc != 2) {
        return usage("rm needs NAME");
    }
    if ((rc = check_snapshot_name(argv[1]))) {
        return rc;
    }
    client = connect_store(&error);
    if (!client || !kget_client_rm(client, argv[1], &error)) {
        return failed(error);
    }
    if (arg_json) {
        g_autoptr(JsonBuilder) b = json_builder_new();

        json_builder_begin_object(b);
        json_builder_set_member_name(b, "removed");
        json_builder_add_string_value(b, argv[1]);
        json_builder_end_object(b);
        print_json(b);
    }
    return EXIT_OK;
}

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
} commands[] = {
    {"snapshot", cmd_snapshot}, {"seal", cmd_seal}, {"restore", cmd_restore},
    {"ls", cmd_ls},             {"verify", cmd_verify}, {"gc", cmd_gc},
    {"rm", cmd_rm},
};

/* Options that only some commands take. */
static const char *
misplaced_option(const char *cmd)
{
    if (arg_no_seal && !g_str_equal(cmd, "snapshot")) {
        return "--no-seal";
    }
    if (arg_meta && !g_str_equal(cmd, "snapshot") && !g_str_equal(cmd, "seal")) {
        return "--meta";
    }
    if (arg_output && !g_str_equal(cmd, "restore")) {
        return "--output";
    }
    if (arg_report && !g_str_equal(cmd, "restore")) {
        return "--report";
    }
    if (arg_resolver && !g_str_equal(cmd, "restore")) {
        return "--resolver";
    }
    if (arg_pending && !g_str_equal(cmd, "ls")) {
        return "--pending";
    }
    if (arg_keep != -1 && !g_str_equal(cmd, "gc")) {
        return "--keep";
    }
    return NULL;
}

int
main(int argc, char **argv)
{
    g_autoptr(GOptionContext) ctx = g_option_context_new("COMMAND [ARG...]");
    g_autoptr(GError) error = NULL;
    const char *bad;

    /* Messages on stderr: stdout may be the stream QEMU restores from. */
    vc_log_init("kget", FALSE);
    g_option_context_add_main_entries(ctx, options, NULL);
    g_option_context_set_summary(ctx, summary);
    g_option_context_set_description(ctx, description);
    if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
        return usage("%s", error->message);
    }
    if (argc < 2) {
        return usage("no command");
    }
    for (guint i = 0; i < G_N_ELEMENTS(commands); i++) {
        if (g_str_equal(argv[1], commands[i].name)) {
            if ((bad = misplaced_option(argv[1]))) {
                return usage("%s is not an option of '%s'", bad, argv[1]);
            }
            return commands[i].run(argc - 1, argv + 1);
        }
    }
    return usage("unknown command '%s'", argv[1]);
}
