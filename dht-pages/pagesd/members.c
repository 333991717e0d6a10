/*
 * Site membership. Each daemon announces itself in OpenDHT under the
 * site's key (a permanent put, authenticated with an HMAC of the site
 * key) and listens there; a member that stops answering pings is dropped
 * at once, whatever OpenDHT still holds (permanent values outlive their
 * node for minutes). Each change rebuilds the partition; the scanner then
 * re-announces this node's hashes to their new owners.
 */
#include "pagesd.h"

#include <errno.h>
#include <string.h>

#include <nettle/hmac.h>
#include <opendht/opendht_c.h>

#define PING_INTERVAL_US G_USEC_PER_SEC
#define PING_FAILURES_MAX 3
#define ANNOUNCE_RETRY_US (2 * G_USEC_PER_SEC)
/* The membership text starts with the peer protocol's version: daemons
 * of another version ignore each other (docs/protocols.md, "Versions"). */
#define MEMBER_TAG "dp" G_STRINGIFY(DP_PEER_VERSION)

static dht_runner *runner;
static dht_infohash site_key;
static dht_op_token *listen_token;

guint
dp_node_id_hash(gconstpointer id)
{
    guint v;

    memcpy(&v, id, sizeof(v));
    return v;
}

gboolean
dp_node_id_equal_func(gconstpointer a, gconstpointer b)
{
    return dp_node_id_equal(a, b);
}

void
dp_member_free(DpMember *m)
{
    DpPeerConn *conn;

    while ((conn = g_queue_pop_head(&m->idle))) {
        dp_peer_conn_free(conn);
    }
    g_free(m->address);
    g_free(m);
}

void
dp_members_repartition_locked(DpDaemon *d)
{
    g_autoptr(GArray) ids = g_array_new(FALSE, FALSE, sizeof(DpNodeId));
    GHashTableIter it;
    DpMember *m;

    g_array_append_val(ids, d->self);
    g_hash_table_iter_init(&it, d->members);
    while (g_hash_table_iter_next(&it, NULL, (gpointer *)&m)) {
        g_array_append_val(ids, m->id);
    }
    dp_partition_free(d->partition);
    d->partition = dp_partition_new((DpNodeId *)ids->data, ids->len);
    d->epoch++;
    g_cond_broadcast(&d->changed);
}

void
dp_members_add(DpDaemon *d, const DpNodeId *id, const char *address,
               guint16 port)
{
    char hex[2 * DP_NODE_ID_LEN + 1];
    DpMember *m;

    if (dp_node_id_equal(id, &d->self)) {
        return;
    }
    g_mutex_lock(&d->lock);
    if (g_hash_table_contains(d->dead, id) ||
        g_hash_table_contains(d->members, id)) {
        g_mutex_unlock(&d->lock);
        return;
    }
    m = g_new0(DpMember, 1);
    m->id = *id;
    m->address = g_strdup(address);
    m->port = port;
    g_queue_init(&m->idle);
    g_hash_table_insert(d->members, &m->id, m);
    dp_members_repartition_locked(d);
    g_mutex_unlock(&d->lock);
    dp_node_id_to_hex(id, hex);
    g_message("member %s at %s:%u joined", hex, address, port);
}

void
dp_members_remove(DpDaemon *d, const DpNodeId *id, const char *why)
{
    char hex[2 * DP_NODE_ID_LEN + 1];
    DpMember *m;
    gsize dropped;

    g_mutex_lock(&d->lock);
    m = g_hash_table_lookup(d->members, id);
    if (!m) {
        g_mutex_unlock(&d->lock);
        return;
    }
    g_hash_table_steal(d->members, id);
    g_hash_table_add(d->dead, g_memdup2(id, sizeof(*id)));
    dropped = dp_index_drop_holder(d->index, id);
    dp_members_repartition_locked(d);
    g_mutex_unlock(&d->lock);
    dp_node_id_to_hex(id, hex);
    g_message("member %s left (%s): %zu index entries dropped", hex, why,
              dropped);
    dp_member_free(m);
}

static char *
announce_mac(DpDaemon *d, const char *text)
{
    struct hmac_sha256_ctx ctx;
    guint8 mac[SHA256_DIGEST_SIZE];
    char hex[2 * SHA256_DIGEST_SIZE + 1];

    hmac_sha256_set_key(&ctx, d->key_len, d->key);
    hmac_sha256_update(&ctx, strlen(text), (const guint8 *)text);
    hmac_sha256_digest(&ctx, sizeof(mac), mac);
    for (gsize i = 0; i < sizeof(mac); i++) {
        g_snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    }
    return g_strdup(hex);
}

static char *
announce_text(DpDaemon *d)
{
    char id[2 * DP_NODE_ID_LEN + 1];
    g_autofree char *body = NULL;
    g_autofree char *mac = NULL;

    dp_node_id_to_hex(&d->self, id);
    body = g_strdup_printf(MEMBER_TAG " %s %s %u", id, d->address,
                           d->peer_port);
    mac = announce_mac(d, body);
    return g_strdup_printf("%s %s", body, mac);
}

/* Constant-time comparison of two hex MACs. */
static gboolean
hex_equal(const char *a, const char *b)
{
    gsize la = strlen(a);
    guint8 diff = 0;

    if (la != strlen(b)) {
        return FALSE;
    }
    for (gsize i = 0; i < la; i++) {
        diff |= (guint8)(a[i] ^ b[i]);
    }
    return diff == 0;
}

/* Parse and authenticate "dp2 <id> <ip> <port> <mac>"; members of
 * another version of the peer protocol are not ours to talk to. */
static gboolean
parse_announce(DpDaemon *d, const guint8 *data, gsize len, DpNodeId *id,
               char **address, guint16 *port)
{
    g_autofree char *text = NULL;
    g_auto(GStrv) f = NULL;
    g_autofree char *body = NULL;
    g_autofree char *mac = NULL;
    guint64 p;

    if (len == 0 || len > 256 || memchr(data, '\0', len)) {
        return FALSE;
    }
    text = g_strndup((const char *)data, len);
    f = g_strsplit(text, " ", 0);
    if (g_strv_length(f) != 5 || !g_str_equal(f[0], MEMBER_TAG) ||
        !dp_node_id_from_hex(f[1], id) ||
        !g_ascii_string_to_unsigned(f[3], 10, 1, 65535, &p, NULL)) {
        return FALSE;
    }
    body = g_strdup_printf("%s %s %s %s", f[0], f[1], f[2], f[3]);
    mac = announce_mac(d, body);
    if (!hex_equal(mac, f[4])) {
        return FALSE;
    }
    *address = g_strdup(f[2]);
    *port = (guint16)p;
    return TRUE;
}

static bool
on_value(const dht_value *value, bool expired, void *user_data)
{
    DpDaemon *d = user_data;
    dht_data_view v = dht_value_get_data(value);
    g_autofree char *address = NULL;
    DpNodeId id;
    guint16 port;

    if (!parse_announce(d, v.data, v.size, &id, &address, &port)) {
        g_debug("ignoring a membership value that fails authentication");
        return true;
    }
    if (expired) {
        dp_members_remove(d, &id, "announcement expired");
    } else {
        dp_members_add(d, &id, address, port);
    }
    return true;
}

static void
on_put_done(bool ok, void *user_data)
{
    DpDaemon *d = user_data;

    if (!ok && !g_atomic_int_get(&d->stopping)) {
        g_debug("membership announce not stored yet; retrying");
    }
}

static void
announce(DpDaemon *d)
{
    g_autofree char *text = announce_text(d);
    dht_value *v = dht_value_new((const guint8 *)text, strlen(text));

    dht_runner_put(runner, &site_key, v, on_put_done, d, true);
    dht_value_unref(v);
}

gboolean
dp_members_start(DpDaemon *d, GError **error)
{
    g_autofree char *keytext = g_strdup_printf("dht-pages/site/%s", d->site);
    dht_runner_config config;
    int rc;

    runner = dht_runner_new();
    dht_runner_config_default(&config);
    config.threaded = true;
    config.peer_discovery = false;
    config.peer_publish = false;
    rc = dht_runner_run_config(runner, d->dht_port, &config);
    if (rc != 0) {
        g_set_error(error, DP_ERROR, DP_ERROR_UNAVAILABLE,
                    "cannot start OpenDHT node on port %u: %s", d->dht_port,
                    g_strerror(rc < 0 ? -rc : rc));
        return FALSE;
    }
    for (char **b = d->bootstrap; b && *b; b++) {
        g_autofree char *host = g_strdup(*b);
        char *colon = strrchr(host, ':');

        if (!colon) {
            g_set_error(error, DP_ERROR, DP_ERROR_UNAVAILABLE,
                        "bootstrap '%s' is not HOST:PORT", *b);
            return FALSE;
        }
        *colon = '\0';
        dht_runner_bootstrap(runner, host, colon + 1);
    }
    dht_infohash_get_from_string(&site_key, keytext);
    listen_token = dht_runner_listen(runner, &site_key, on_value, NULL, d);
    announce(d);
    return TRUE;
}

void
dp_members_stop(DpDaemon *d)
{
    if (!runner) {
        return;
    }
    if (listen_token) {
        dht_runner_cancel_listen(runner, &site_key, listen_token);
    }
    dht_runner_delete(runner); /* joins OpenDHT's threads */
    runner = NULL;
}

/* Pings every member each second; drops those that fail three in a row.
 * Also re-announces this node while it sees no members (OpenDHT drops a
 * put made before any peer was reachable). */
gpointer
dp_pinger_thread(gpointer data)
{
    DpDaemon *d = data;
    gint64 next_announce = g_get_monotonic_time() + ANNOUNCE_RETRY_US;

    while (!g_atomic_int_get(&d->stopping)) {
        g_autoptr(GArray) ids = g_array_new(FALSE, FALSE, sizeof(DpNodeId));
        GHashTableIter it;
        DpMember *m;

        g_usleep(PING_INTERVAL_US);
        g_mutex_lock(&d->lock);
        g_hash_table_iter_init(&it, d->members);
        while (g_hash_table_iter_next(&it, NULL, (gpointer *)&m)) {
            g_array_append_val(ids, m->id);
        }
        g_mutex_unlock(&d->lock);

        if (ids->len == 0 && g_get_monotonic_time() >= next_announce) {
            announce(d);
            next_announce = g_get_monotonic_time() + ANNOUNCE_RETRY_US;
        }
        for (guint i = 0; i < ids->len; i++) {
            const DpNodeId *id = &g_array_index(ids, DpNodeId, i);
            g_autoptr(GByteArray) req = g_byte_array_new();
            g_autoptr(GBytes) payload = NULL;
            g_autoptr(GError) error = NULL;
            DpMsg reply;
            gboolean ok;
            gint failures = 0;

            dp_encode_empty(req, DP_MSG_PING, 0);
            ok = dp_peer_call(d, id, req, &reply, &payload, &error);
            g_mutex_lock(&d->lock);
            m = g_hash_table_lookup(d->members, id);
            if (m) {
                m->failures = ok ? 0 : m->failures + 1;
                failures = m->failures;
            }
            g_mutex_unlock(&d->lock);
            if (!ok) {
                g_debug("ping failed (%d): %s", failures, error->message);
            }
            if (failures >= PING_FAILURES_MAX) {
                dp_members_remove(d, id, "stopped answering pings");
            }
        }
    }
    return NULL;
}
