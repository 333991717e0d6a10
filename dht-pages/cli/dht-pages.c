/*
 * dht-pages: look at and use a node's dht-pagesd through its resolver
 * socket.
 *
 *   dht-pages status                 what the daemon knows, for people
 *   dht-pages stats [--json]         counters, for scripts
 *   dht-pages lookup HASH... | -     resolve page hashes (hit or miss)
 *   dht-pages publish FILE...        offer the pages of files to the site
 *   dht-pages hash FILE...           page hashes of files (no daemon)
 */
#include <errno.h>
#include <fcntl.h>
#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "dp-conn.h"
#include "dp-proto.h"
#include "vc-pagehash.h"

static char *arg_socket = NULL;
static gboolean arg_json;
static char *arg_output;
static gboolean arg_all;
static char *arg_site;
static char *arg_key_file;
static gboolean arg_no_verify;

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_MISSED = 3 };

static const GOptionEntry entries[] = {
    {"socket", 's', 0, G_OPTION_ARG_FILENAME, &arg_socket,
     "Resolver socket (default /run/dht-pages/resolver.sock)", "PATH"},
    {"json", 'j', 0, G_OPTION_ARG_NONE, &arg_json,
     "stats: print JSON", NULL},
    {"output", 'o', 0, G_OPTION_ARG_FILENAME, &arg_output,
     "lookup: write each page found to DIR/HASH", "DIR"},
    {"all", 0, 0, G_OPTION_ARG_NONE, &arg_all,
     "hash: include zero pages", NULL},
    {"site", 0, 0, G_OPTION_ARG_STRING, &arg_site,
     "check-peer: the site name", "NAME"},
    {"key-file", 0, 0, G_OPTION_ARG_FILENAME, &arg_key_file,
     "check-peer: the site key file", "FILE"},
    {"no-verify-server", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_NONE,
     &arg_no_verify, "check-peer (tests): send our proof even if the "
     "server's is wrong", NULL},
    {NULL},
};

static int
connect_daemon(GError **error)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    const char *path = arg_socket ? arg_socket : "/run/dht-pages/resolver.sock";
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        g_set_error(error, DP_ERROR, DP_ERROR_IO, "socket path '%s' too long",
                    path);
        return -1;
    }
    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        g_set_error(error, DP_ERROR, DP_ERROR_IO,
                    "cannot reach dht-pagesd at '%s': %s", path,
                    g_strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* Send one request frame and decode the reply into @reply. */
static gboolean
call(int fd, GByteArray *req, guint8 want, DpMsg *reply, GBytes **payload,
     GError **error)
{
    if (!dp_write_all(fd, req->data, req->len, error) ||
        !dp_msg_read(fd, reply, payload, error)) {
        g_prefix_error(error, "dht-pagesd: ");
        return FALSE;
    }
    if (reply->type == DP_MSG_ERROR) {
        g_set_error(error, DP_ERROR, reply->error_code, "dht-pagesd: %s",
                    reply->error_message);
        return FALSE;
    }
    if (reply->type != want) {
        g_set_error(error, DP_ERROR, DP_ERROR_PROTOCOL,
                    "unexpected %s from dht-pagesd",
                    dp_msg_type_name(reply->type));
        return FALSE;
    }
    return TRUE;
}

static char *
fetch_stats(GError **error)
{
    g_autoptr(GByteArray) req = g_byte_array_new();
    g_autoptr(GBytes) payload = NULL;
    DpMsg reply;
    int fd = connect_daemon(error);
    gboolean ok;

    if (fd < 0) {
        return NULL;
    }
    dp_encode_empty(req, DP_MSG_STATS, 1);
    ok = call(fd, req, DP_REPLY(DP_MSG_STATS), &reply, &payload, error);
    close(fd);
    return ok ? g_strndup(reply.json, reply.json_len) : NULL;
}

static int
cmd_stats(gboolean human)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *json = fetch_stats(&error);
    g_autoptr(JsonParser) parser = json_parser_new();
    JsonObject *o;
    g_autoptr(GList) members = NULL;

    if (!json) {
        g_printerr("dht-pages: %s\n", error->message);
        return EXIT_FAIL;
    }
    if (arg_json && !human) {
        printf("%s\n", json);
        return EXIT_OK;
    }
    if (!json_parser_load_from_data(parser, json, -1, &error)) {
        g_printerr("dht-pages: bad stats from dht-pagesd: %s\n",
                   error->message);
        return EXIT_FAIL;
    }
    o = json_node_get_object(json_parser_get_root(parser));
    if (!human) {
        members = json_object_get_members(o);
        for (GList *l = members; l; l = l->next) {
            JsonNode *n = json_object_get_member(o, l->data);

            if (JSON_NODE_HOLDS_VALUE(n)) {
                g_autofree char *s = json_to_string(n, FALSE);

                printf("%s: %s\n", (char *)l->data, s);
            }
        }
        return EXIT_OK;
    }
#define I(name) json_object_get_int_member_with_default(o, name, 0)
    printf("site %s, node %s at %s, up %.0f s\n",
           json_object_get_string_member(o, "site"),
           json_object_get_string_member(o, "node"),
           json_object_get_string_member(o, "address"),
           json_object_get_double_member(o, "uptime_s"));
    {
        JsonArray *a = json_object_get_array_member(o, "members");

        printf("members: %u others%s\n", json_array_get_length(a),
               json_object_get_boolean_member(o, "rebalanced")
                   ? ""
                   : " (rebalancing)");
        for (guint i = 0; i < json_array_get_length(a); i++) {
            JsonObject *m = json_array_get_object_element(a, i);

            printf("  %s  %s\n", json_object_get_string_member(m, "node"),
                   json_object_get_string_member(m, "address"));
        }
    }
    printf("index: %" G_GINT64_FORMAT " entries owned here\n",
           I("index_entries"));
    printf("local RAM: %" G_GINT64_FORMAT " regions, %" G_GINT64_FORMAT
           " distinct pages indexed\n",
           I("ram_regions"), I("ram_pages"));
    printf("cache: %" G_GINT64_FORMAT " pages, %" G_GINT64_FORMAT
           " evicted\n",
           I("cache_pages"), I("cache_evictions"));
    printf("lookups: %" G_GINT64_FORMAT " (hits: %" G_GINT64_FORMAT
           " RAM, %" G_GINT64_FORMAT " cache, %" G_GINT64_FORMAT
           " peers, %" G_GINT64_FORMAT " coalesced; %" G_GINT64_FORMAT
           " misses)\n",
           I("lookups"), I("hits_ram"), I("hits_cache"), I("hits_peer"),
           I("coalesced_hits"), I("misses"));
    printf("missing pages: %" G_GINT64_FORMAT " to fetch, %" G_GINT64_FORMAT
           " fetched by another node, %" G_GINT64_FORMAT
           " fetched with the arbiter unreachable; as the site's claims "
           "arbiter: %" G_GINT64_FORMAT " decided, %" G_GINT64_FORMAT
           " fulfilled, %" G_GINT64_FORMAT " live\n",
           I("claims_fetch"), I("coalesce_waits"), I("claims_unasked"),
           I("claims_decided"), I("claims_fulfilled"), I("claims_live"));
    printf("rejected: %" G_GINT64_FORMAT " bad pages from peers, %"
           G_GINT64_FORMAT " bad frames, %" G_GINT64_FORMAT
           " failed authentications\n",
           I("bad_pages_from_peers"), I("bad_frames"), I("auth_failures"));
#undef I
    return EXIT_OK;
}

static gboolean
read_hashes(char **args, GArray *out, GError **error)
{
    for (char **a = args; *a; a++) {
        VcPageHash h;

        if (g_str_equal(*a, "-")) {
            char line[256];

            while (fgets(line, sizeof(line), stdin)) {
                g_strstrip(line);
                if (line[0] == '\0') {
                    continue;
                }
                line[strcspn(line, " \t")] = '\0';
                if (!vc_page_hash_from_hex(line, &h, error)) {
                    return FALSE;
                }
                g_array_append_val(out, h);
            }
            continue;
        }
        if (!vc_page_hash_from_hex(*a, &h, error)) {
            return FALSE;
        }
        g_array_append_val(out, h);
    }
    return TRUE;
}

static int
cmd_lookup(char **args)
{
    g_autoptr(GArray) hashes = g_array_new(FALSE, FALSE, sizeof(VcPageHash));
    g_autoptr(GError) error = NULL;
    guint hits = 0, misses = 0;
    int fd;

    if (!args[0]) {
        g_printerr("dht-pages: lookup needs hashes (or - for stdin)\n");
        return EXIT_USAGE;
    }
    if (!read_hashes(args, hashes, &error)) {
        g_printerr("dht-pages: %s\n", error->message);
        return EXIT_USAGE;
    }
    if (arg_output && g_mkdir_with_parents(arg_output, 0755) < 0) {
        g_printerr("dht-pages: cannot create '%s': %s\n", arg_output,
                   g_strerror(errno));
        return EXIT_FAIL;
    }
    fd = connect_daemon(&error);
    if (fd < 0) {
        g_printerr("dht-pages: %s\n", error->message);
        return EXIT_FAIL;
    }
    for (guint off = 0; off < hashes->len; off += DP_MAX_BATCH) {
        guint n = MIN(DP_MAX_BATCH, hashes->len - off);
        const VcPageHash *batch = &g_array_index(hashes, VcPageHash, off);
        g_autoptr(GByteArray) req = g_byte_array_new();
        g_autoptr(GBytes) payload = NULL;
        DpMsg reply;

        dp_encode_hashes(req, DP_MSG_LOOKUP, off + 1, batch, n);
        if (!call(fd, req, DP_REPLY(DP_MSG_LOOKUP), &reply, &payload,
                  &error) ||
            reply.count != n) {
            g_printerr("dht-pages: lookup failed: %s\n",
                       error ? error->message : "wrong count in reply");
            close(fd);
            return EXIT_FAIL;
        }
        for (guint i = 0; i < n; i++) {
            const guint8 *page = dp_msg_reply_page(&reply, i);
            char hex[VC_PAGE_HASH_HEX_LEN + 1];
            VcPageHash check;

            vc_page_hash_to_hex(&batch[i], hex);
            if (!page) {
                printf("%s miss\n", hex);
                misses++;
                continue;
            }
            /* Never trust a page without re-hashing it. */
            vc_page_hash(page, &check);
            if (!vc_page_hash_equal(&check, &batch[i])) {
                printf("%s bad\n", hex);
                g_printerr("dht-pages: page for %s does not match its hash\n",
                           hex);
                close(fd);
                return EXIT_FAIL;
            }
            printf("%s hit\n", hex);
            hits++;
            if (arg_output) {
                g_autofree char *path = g_build_filename(arg_output, hex, NULL);

                if (!g_file_set_contents(path, (const char *)page,
                                         VC_PAGE_SIZE, &error)) {
                    g_printerr("dht-pages: %s\n", error->message);
                    close(fd);
                    return EXIT_FAIL;
                }
            }
        }
    }
    close(fd);
    g_printerr("dht-pages: %u hits, %u misses\n", hits, misses);
    return misses ? EXIT_MISSED : EXIT_OK;
}

/* Calls @func for each 4 KiB page of @path (the last one zero-padded). */
static gboolean
foreach_page(const char *path,
             gboolean (*func)(const guint8 *page, guint64 off, gpointer data),
             gpointer data, GError **error)
{
    g_autofree char *contents = NULL;
    gsize len;
    guint8 page[VC_PAGE_SIZE];

    if (!g_file_get_contents(path, &contents, &len, error)) {
        return FALSE;
    }
    for (gsize off = 0; off < len; off += VC_PAGE_SIZE) {
        gsize n = MIN(VC_PAGE_SIZE, len - off);

        memcpy(page, contents + off, n);
        memset(page + n, 0, VC_PAGE_SIZE - n);
        if (!func(page, off, data)) {
            return FALSE;
        }
    }
    return TRUE;
}

static gboolean
print_hash(const guint8 *page, guint64 off, gpointer path)
{
    VcPageHash h;
    char hex[VC_PAGE_HASH_HEX_LEN + 1];

    if (!arg_all && vc_page_is_zero(page)) {
        return TRUE;
    }
    vc_page_hash(page, &h);
    vc_page_hash_to_hex(&h, hex);
    printf("%s %s %" G_GUINT64_FORMAT "\n", hex, (const char *)path, off);
    return TRUE;
}

static int
cmd_hash(char **args)
{
    if (!args[0]) {
        g_printerr("dht-pages: hash needs files\n");
        return EXIT_USAGE;
    }
    for (char **a = args; *a; a++) {
        g_autoptr(GError) error = NULL;

        if (!foreach_page(*a, print_hash, *a, &error)) {
            g_printerr("dht-pages: %s\n", error->message);
            return EXIT_FAIL;
        }
    }
    return EXIT_OK;
}

typedef struct {
    GArray *hashes;
    GByteArray *pages;
} PublishBatch;

static gboolean
add_page(const guint8 *page, guint64 off, gpointer data)
{
    PublishBatch *b = data;
    VcPageHash h;

    if (vc_page_is_zero(page)) {
        return TRUE;
    }
    vc_page_hash(page, &h);
    g_array_append_val(b->hashes, h);
    g_byte_array_append(b->pages, page, VC_PAGE_SIZE);
    return TRUE;
}

static int
cmd_publish(char **args)
{
    g_autoptr(GArray) hashes = g_array_new(FALSE, FALSE, sizeof(VcPageHash));
    g_autoptr(GByteArray) pages = g_byte_array_new();
    PublishBatch b = {hashes, pages};
    g_autoptr(GError) error = NULL;
    guint stored = 0, rejected = 0;
    int fd;

    if (!args[0]) {
        g_printerr("dht-pages: publish needs files\n");
        return EXIT_USAGE;
    }
    for (char **a = args; *a; a++) {
        if (!foreach_page(*a, add_page, &b, &error)) {
            g_printerr("dht-pages: %s\n", error->message);
            return EXIT_FAIL;
        }
    }
    fd = connect_daemon(&error);
    if (fd < 0) {
        g_printerr("dht-pages: %s\n", error->message);
        return EXIT_FAIL;
    }
    for (guint off = 0; off < hashes->len; off += DP_MAX_BATCH) {
        guint n = MIN(DP_MAX_BATCH, hashes->len - off);
        g_autofree const guint8 **ptrs = g_new(const guint8 *, n);
        g_autoptr(GByteArray) req = g_byte_array_new();
        g_autoptr(GBytes) payload = NULL;
        DpMsg reply;

        for (guint i = 0; i < n; i++) {
            ptrs[i] = pages->data + (gsize)(off + i) * VC_PAGE_SIZE;
        }
        dp_encode_publish(req, off + 1,
                          &g_array_index(hashes, VcPageHash, off), ptrs, n);
        if (!call(fd, req, DP_REPLY(DP_MSG_PUBLISH), &reply, &payload,
                  &error)) {
            g_printerr("dht-pages: publish failed: %s\n", error->message);
            close(fd);
            return EXIT_FAIL;
        }
        stored += reply.stored;
        rejected += reply.rejected;
    }
    close(fd);
    printf("%u pages stored, %u rejected\n", stored, rejected);
    return rejected ? EXIT_FAIL : EXIT_OK;
}

/* Authenticate to a peer port as a site member would. */
static int
cmd_check_peer(char **args)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *key = NULL;
    g_autofree char *host = NULL;
    struct sockaddr_in sa = {.sin_family = AF_INET};
    gsize key_len;
    guint64 port;
    char *colon;
    DpNodeId self, server;
    char hex[2 * DP_NODE_ID_LEN + 1];
    int fd;

    if (!args[0] || args[1] || !arg_site || !arg_key_file) {
        g_printerr("dht-pages: usage: check-peer --site NAME --key-file FILE "
                   "IP:PORT\n");
        return EXIT_USAGE;
    }
    host = g_strdup(args[0]);
    colon = strrchr(host, ':');
    if (!colon) {
        g_printerr("dht-pages: '%s' is not IP:PORT\n", args[0]);
        return EXIT_USAGE;
    }
    *colon = '\0';
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1 ||
        !g_ascii_string_to_unsigned(colon + 1, 10, 1, 65535, &port, NULL)) {
        g_printerr("dht-pages: '%s' is not IP:PORT\n", args[0]);
        return EXIT_USAGE;
    }
    sa.sin_port = htons((guint16)port);
    if (!g_file_get_contents(arg_key_file, &key, &key_len, &error)) {
        g_printerr("dht-pages: %s\n", error->message);
        return EXIT_FAIL;
    }
    while (key_len > 0 && g_ascii_isspace(key[key_len - 1])) {
        key_len--;
    }
    for (gsize i = 0; i < sizeof(self.bytes); i++) {
        self.bytes[i] = (guint8)g_random_int();
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        g_printerr("dht-pages: cannot connect to %s: %s\n", args[0],
                   g_strerror(errno));
        close(fd);
        return EXIT_FAIL;
    }
    if (!dp_handshake_client(fd, (const guint8 *)key, key_len, arg_site,
                             &self, 0, !arg_no_verify, &server, &error)) {
        g_printerr("dht-pages: %s: %s\n", args[0], error->message);
        close(fd);
        return EXIT_FAIL;
    }
    close(fd);
    dp_node_id_to_hex(&server, hex);
    printf("%s: authenticated node %s of site '%s'\n", args[0], hex,
           arg_site);
    return EXIT_OK;
}

int
main(int argc, char **argv)
{
    g_autoptr(GOptionContext) ctx = g_option_context_new("COMMAND [ARG...]");
    g_autoptr(GError) error = NULL;

    g_option_context_add_main_entries(ctx, entries, NULL);
    g_option_context_set_summary(
        ctx, "Commands:\n"
             "  status             members, index, cache and hit counts\n"
             "  stats [--json]     all counters (key: value, or JSON)\n"
             "  lookup HASH...|-   resolve page hashes (- reads stdin);\n"
             "                     prints 'HASH hit' or 'HASH miss'\n"
             "  publish FILE...    offer the non-zero pages of files\n"
             "  hash FILE...       print 'HASH FILE OFFSET' per non-zero "
             "page\n"
             "  check-peer --site NAME --key-file FILE IP:PORT\n"
             "                     authenticate to a daemon's peer port");
    g_option_context_set_description(
        ctx, "Exit status: 0 success, 1 failure, 2 usage error, 3 lookup "
             "with misses.\n");
    if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
        g_printerr("dht-pages: %s\n", error->message);
        return EXIT_USAGE;
    }
    if (argc < 2) {
        g_printerr("dht-pages: missing command; see --help\n");
        return EXIT_USAGE;
    }
    if (g_str_equal(argv[1], "status")) {
        return cmd_stats(TRUE);
    } else if (g_str_equal(argv[1], "stats")) {
        return cmd_stats(FALSE);
    } else if (g_str_equal(argv[1], "lookup")) {
        return cmd_lookup(argv + 2);
    } else if (g_str_equal(argv[1], "publish")) {
        return cmd_publish(argv + 2);
    } else if (g_str_equal(argv[1], "hash")) {
        return cmd_hash(argv + 2);
    } else if (g_str_equal(argv[1], "check-peer")) {
        return cmd_check_peer(argv + 2);
    }
    g_printerr("dht-pages: unknown command '%s'; see --help\n", argv[1]);
    return EXIT_USAGE;
}
