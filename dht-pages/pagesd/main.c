/*
 * dht-pagesd: the per-node daemon of the site page index.
 *
 * It joins its site through OpenDHT, indexes the pages of local guests'
 * RAM, holds its share of the site index, caches pages published to it,
 * serves pages to authenticated site peers and resolves page hashes for
 * local clients (the patched QEMU) on a unix socket.
 */
#include "pagesd.h"

#include <errno.h>
#include <glib-unix.h>
#include <signal.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "vc-config.h"
#include "vc-log.h"
#include "vc-notify.h"

#define DEFAULT_CONFIG "/etc/dht-pages/dht-pagesd.conf"
#define STATUS_INTERVAL_S 5

static char *arg_config;
static char *arg_site;
static char *arg_key_file;
static char *arg_address;
static gint arg_peer_port = -1;
static gint arg_dht_port = -1;
static char **arg_bootstrap;
static char *arg_resolver;
static char **arg_ram_globs;
static gint arg_hash_rate = -1;
static gint arg_cache_pages = -1;
static gint arg_coalesce_ms = -1;
static gint arg_claim_ms = -1;
static gboolean arg_verbose;
static gboolean arg_test_corrupt;

static const GOptionEntry entries[] = {
    {"config", 'c', 0, G_OPTION_ARG_FILENAME, &arg_config,
     "Configuration file (default " DEFAULT_CONFIG ", if present)", "FILE"},
    {"site", 's', 0, G_OPTION_ARG_STRING, &arg_site,
     "Site name, shared by the site's daemons (required)", "NAME"},
    {"site-key-file", 'k', 0, G_OPTION_ARG_FILENAME, &arg_key_file,
     "File with the secret site key, >= 16 bytes (required)", "FILE"},
    {"address", 'a', 0, G_OPTION_ARG_STRING, &arg_address,
     "This node's IPv4 address on the site network (required)", "IP"},
    {"peer-port", 'p', 0, G_OPTION_ARG_INT, &arg_peer_port,
     "TCP port for site peers (default 7400)", "PORT"},
    {"dht-port", 0, 0, G_OPTION_ARG_INT, &arg_dht_port,
     "UDP port of the OpenDHT node (default 4222)", "PORT"},
    {"bootstrap", 'b', 0, G_OPTION_ARG_STRING_ARRAY, &arg_bootstrap,
     "OpenDHT node to join, repeatable", "HOST:PORT"},
    {"resolver-socket", 'r', 0, G_OPTION_ARG_FILENAME, &arg_resolver,
     "Unix socket for local clients (default "
     "/run/dht-pages/resolver.sock)", "PATH"},
    {"ram-glob", 'g', 0, G_OPTION_ARG_FILENAME_ARRAY, &arg_ram_globs,
     "Guest RAM files to index, repeatable (default "
     "/var/lib/libvirt/qemu/ram/*/pc.ram)", "PATTERN"},
    {"hash-rate", 0, 0, G_OPTION_ARG_INT, &arg_hash_rate,
     "MB/s of guest RAM hashed at most, 0 unlimited (default 512)", "MB"},
    {"cache-pages", 0, 0, G_OPTION_ARG_INT, &arg_cache_pages,
     "Pages kept in the published-page cache (default 65536)", "N"},
    {"coalesce-ms", 0, 0, G_OPTION_ARG_INT, &arg_coalesce_ms,
     "How long a lookup waits for a missing page another client of the "
     "site is fetching (default 500, at most 10000, 0: no waiting)", "MS"},
    {"claim-ms", 0, 0, G_OPTION_ARG_INT, &arg_claim_ms,
     "As the site's claims arbiter: how long a node told to fetch a missing "
     "page has to bring it before another is told (default 10000)", "MS"},
    {"verbose", 'v', 0, G_OPTION_ARG_NONE, &arg_verbose, "Debug messages",
     NULL},
    {"test-corrupt-pages", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_NONE,
     &arg_test_corrupt, "Test hook: serve peers corrupted pages", NULL},
    {NULL},
};

static const VcConfigKey config_keys[] = {
    {"dht-pagesd", "site", VC_CONFIG_STRING, NULL, 0, 0},
    {"dht-pagesd", "site_key_file", VC_CONFIG_STRING, NULL, 0, 0},
    {"dht-pagesd", "address", VC_CONFIG_STRING, NULL, 0, 0},
    {"dht-pagesd", "peer_port", VC_CONFIG_INT, "7400", 1, 65535},
    {"dht-pagesd", "dht_port", VC_CONFIG_INT, "4222", 0, 65535},
    {"dht-pagesd", "bootstrap", VC_CONFIG_STRING, "", 0, 0},
    {"dht-pagesd", "resolver_socket", VC_CONFIG_STRING,
     "/run/dht-pages/resolver.sock", 0, 0},
    {"dht-pagesd", "ram_glob", VC_CONFIG_STRING,
     "/var/lib/libvirt/qemu/ram/*/pc.ram", 0, 0},
    {"dht-pagesd", "hash_rate_mb", VC_CONFIG_INT, "512", 0, 1 << 20},
    {"dht-pagesd", "cache_pages", VC_CONFIG_INT, "65536", 16, 1 << 28},
    {"dht-pagesd", "coalesce_ms", VC_CONFIG_INT, "500", 0, DP_MAX_WAIT_MS},
    {"dht-pagesd", "claim_ms", VC_CONFIG_INT, "10000", 1, 60000},
};

/* Options win over the configuration file, which wins over defaults. */
static gboolean
configure(DpDaemon *d, GError **error)
{
    g_autoptr(VcConfig) cfg =
        vc_config_new(config_keys, G_N_ELEMENTS(config_keys));
    g_autofree char *key = NULL;
    gsize key_len = 0;
    const char *key_file;
    gint64 v;

    if (!vc_config_load_file(cfg, arg_config ? arg_config : DEFAULT_CONFIG,
                             arg_config == NULL, error)) {
        return FALSE;
    }
#define PICK_STR(arg, name) ((arg) ? (arg) : vc_config_get_string(cfg, "dht-pagesd", name))
#define PICK_INT(arg, name) ((arg) >= 0 ? (gint64)(arg) : vc_config_get_int(cfg, "dht-pagesd", name))
    d->site = g_strdup(PICK_STR(arg_site, "site"));
    d->address = g_strdup(PICK_STR(arg_address, "address"));
    key_file = PICK_STR(arg_key_file, "site_key_file");
    if (!d->site || !vc_config_name_valid(d->site, DP_MAX_SITE_LEN)) {
        g_set_error(error, DP_ERROR, DP_ERROR_UNAVAILABLE,
                    d->site ? "site name '%s' is not 1-64 of [A-Za-z0-9._-]"
                            : "no site name (--site)%s", d->site ? d->site : "");
        return FALSE;
    }
    if (!d->address) {
        g_set_error(error, DP_ERROR, DP_ERROR_UNAVAILABLE,
                    "no node address (--address)");
        return FALSE;
    }
    if (!key_file) {
        g_set_error(error, DP_ERROR, DP_ERROR_UNAVAILABLE,
                    "no site key (--site-key-file)");
        return FALSE;
    }
    if (!g_file_get_contents(key_file, &key, &key_len, error)) {
        g_prefix_error(error, "cannot read site key: ");
        return FALSE;
    }
    while (key_len > 0 && g_ascii_isspace(key[key_len - 1])) {
        key_len--;
    }
    if (key_len < 16 || key_len > 4096) {
        g_set_error(error, DP_ERROR, DP_ERROR_UNAVAILABLE,
                    "site key in '%s' has %zu bytes, needs 16 to 4096",
                    key_file, key_len);
        return FALSE;
    }
    d->key = g_memdup2(key, key_len);
    d->key_len = key_len;

    v = PICK_INT(arg_peer_port, "peer_port");
    if (v < 1 || v > 65535) {
        g_set_error(error, DP_ERROR, DP_ERROR_UNAVAILABLE,
                    "peer port %" G_GINT64_FORMAT " is not 1-65535", v);
        return FALSE;
    }
    d->peer_port = (guint16)v;
    v = PICK_INT(arg_dht_port, "dht_port");
    if (v < 0 || v > 65535) {
        g_set_error(error, DP_ERROR, DP_ERROR_UNAVAILABLE,
                    "DHT port %" G_GINT64_FORMAT " is not 0-65535", v);
        return FALSE;
    }
    d->dht_port = (guint16)v;
    d->bootstrap = arg_bootstrap
                       ? g_strdupv(arg_bootstrap)
                       : g_strsplit_set(vc_config_get_string(cfg, "dht-pagesd",
                                                             "bootstrap"),
                                        "; ", -1);
    d->resolver_path = g_strdup(PICK_STR(arg_resolver, "resolver_socket"));
    d->ram_globs = arg_ram_globs
                       ? g_strdupv(arg_ram_globs)
                       : g_strsplit(vc_config_get_string(cfg, "dht-pagesd",
                                                         "ram_glob"),
                                    ";", -1);
    v = PICK_INT(arg_hash_rate, "hash_rate_mb");
    d->hash_rate = (guint64)v * 1000 * 1000;
    v = PICK_INT(arg_cache_pages, "cache_pages");
    if (v < 16) {
        g_set_error(error, DP_ERROR, DP_ERROR_UNAVAILABLE,
                    "cache of %" G_GINT64_FORMAT " pages is too small", v);
        return FALSE;
    }
    d->store = dp_store_new((gsize)v, NULL, NULL);
    v = PICK_INT(arg_coalesce_ms, "coalesce_ms");
    if (v < 0 || v > DP_MAX_WAIT_MS) {
        g_set_error(error, DP_ERROR, DP_ERROR_UNAVAILABLE,
                    "coalescing wait of %" G_GINT64_FORMAT " ms is not "
                    "0-%u", v, DP_MAX_WAIT_MS);
        return FALSE;
    }
    d->coalesce_us = v * G_TIME_SPAN_MILLISECOND;
    v = PICK_INT(arg_claim_ms, "claim_ms");
    if (v < 1 || v > 60000) {
        g_set_error(error, DP_ERROR, DP_ERROR_UNAVAILABLE,
                    "claim time of %" G_GINT64_FORMAT " ms is not 1-60000",
                    v);
        return FALSE;
    }
    d->claim_us = v * G_TIME_SPAN_MILLISECOND;
#undef PICK_STR
#undef PICK_INT
    d->test_corrupt_pages = arg_test_corrupt;
    return TRUE;
}

static gboolean
on_signal(gpointer loop)
{
    g_main_loop_quit(loop);
    return G_SOURCE_REMOVE;
}

/* The service manager's status line (systemctl status). */
static gboolean
on_status(gpointer data)
{
    DpDaemon *d = data;
    guint members;
    gsize regions, pages;

    g_mutex_lock(&d->lock);
    members = g_hash_table_size(d->members);
    regions = dp_ram_regions(d);
    pages = dp_ram_pages(d);
    g_mutex_unlock(&d->lock);
    vc_notify_status("site '%s': %u other members, %zu guest RAM files, "
                     "%zu pages indexed, %" G_GUINT64_FORMAT " lookups",
                     d->site, members, regions, pages, dp_stat_get(d, lookups));
    return G_SOURCE_CONTINUE;
}

int
main(int argc, char **argv)
{
    g_autoptr(GOptionContext) ctx =
        g_option_context_new("- site page index daemon for page-hash migration");
    g_autoptr(GError) error = NULL;
    g_autoptr(GMainLoop) loop = NULL;
    DpDaemon *d = g_new0(DpDaemon, 1);
    char self[2 * DP_NODE_ID_LEN + 1];

    g_option_context_add_main_entries(ctx, entries, NULL);
    g_option_context_set_description(
        ctx, "Each node of a site runs one dht-pagesd with the same --site and\n"
             "site key; --bootstrap names any other member's OpenDHT node.\n"
             "Local clients use the resolver socket (docs/protocols.md);\n"
             "'dht-pages status' shows what the daemon knows.\n");
    if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
        g_printerr("dht-pagesd: %s\n", error->message);
        return 2;
    }
    if (argc > 1) {
        g_printerr("dht-pagesd: unexpected argument '%s'\n", argv[1]);
        return 2;
    }
    vc_log_init("dht-pagesd", arg_verbose);
    signal(SIGPIPE, SIG_IGN);

    if (!configure(d, &error)) {
        g_printerr("dht-pagesd: %s\n", error->message);
        return 2;
    }
    if (getrandom(d->self.bytes, sizeof(d->self.bytes), 0) !=
        sizeof(d->self.bytes)) {
        g_printerr("dht-pagesd: cannot get random bytes\n");
        return 1;
    }
    g_mutex_init(&d->lock);
    g_cond_init(&d->changed);
    d->members = g_hash_table_new(dp_node_id_hash, dp_node_id_equal_func);
    d->dead = g_hash_table_new_full(dp_node_id_hash, dp_node_id_equal_func,
                                    g_free, NULL);
    d->index = dp_index_new();
    d->ram = dp_ram_new();
    d->claims = dp_claims_new();
    d->started_us = g_get_monotonic_time();
    g_mutex_lock(&d->lock);
    dp_members_repartition_locked(d);
    g_mutex_unlock(&d->lock);

    if (!dp_peer_listen(d, &error) || !dp_resolver_listen(d, &error) ||
        !dp_members_start(d, &error)) {
        g_printerr("dht-pagesd: %s\n", error->message);
        return 1;
    }
    g_thread_unref(g_thread_new("scanner", dp_scanner_thread, d));
    g_thread_unref(g_thread_new("pinger", dp_pinger_thread, d));
    dp_node_id_to_hex(&d->self, self);
    g_message("node %s of site '%s' serving peers on %s:%u, resolver on '%s'",
              self, d->site, d->address, d->peer_port, d->resolver_path);
    /* Both sockets listen: clients connecting now are served. */
    vc_notify_ready("site '%s': serving peers on %s:%u, resolver on '%s'",
                    d->site, d->address, d->peer_port, d->resolver_path);

    loop = g_main_loop_new(NULL, FALSE);
    g_unix_signal_add(SIGTERM, on_signal, loop);
    g_unix_signal_add(SIGINT, on_signal, loop);
    if (vc_notify_enabled()) {
        g_timeout_add_seconds(STATUS_INTERVAL_S, on_status, d);
    }
    g_main_loop_run(loop);

    g_message("stopping");
    vc_notify_stopping("stopping");
    g_atomic_int_set(&d->stopping, 1);
    unlink(d->resolver_path);
    dp_members_stop(d);
    /* Worker threads are detached and the process exits: the kernel
     * closes their sockets. */
    return 0;
}
