/*
 * dp-bench: load generator for the dht-pages benchmark (not a test; see
 * bench/dht-pages-bench.sh, which runs it side by side with OpenDHT and
 * Redis).
 *
 *   dp-bench lookup --socket PATH --hashes FILE [--batch B] [--conns C]
 *                   [--seconds T | --batches N] [--verify] [--json]
 *       LOOKUP batches of B hashes on C connections (one thread each, one
 *       request in flight per connection, as a migrating QEMU does), for
 *       T seconds or N batches in all. Prints hashes resolved per second,
 *       the hit ratio and the batch latency percentiles.
 *
 *   dp-bench opendht --bootstrap HOST:PORT [--keys K] [--window W] [--json]
 *       One OpenDHT node puts K values under K random keys (W puts in
 *       flight), then a second, empty node gets them one at a time, each
 *       get waiting for its done callback: the cost of "one DHT get per
 *       page hash".
 *
 * Output is one line of key=value on stdout (or a JSON object with
 * --json); progress and notes go to stderr.
 */
#include <errno.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <opendht/opendht_c.h>

#include "dp-conn.h"
#include "dp-proto.h"
#include "vc-pagehash.h"

/* Bounds on what the command line may ask for. */
#define MAX_HASHES (16 * 1024 * 1024)
#define MAX_CONNS 64
#define MAX_SECONDS 3600
#define MAX_KEYS 100000
#define MAX_WINDOW 256
#define DHT_CONNECT_TIMEOUT_S 10
#define DHT_PHASE_TIMEOUT_S 300
/* OpenDHT drops requests from one source address above its per-IP quota
 * (about 1024 requests/s); every get or put is several requests to each
 * of the closest nodes. */
#define OPENDHT_NOTE                                                           \
    "OpenDHT rate-limits each source IP (~1024 requests/s per node); keys "    \
    "kept modest, run from a node other than the bootstrap"

static char *arg_socket;
static char *arg_hashes;
static gint arg_batch = 256;
static gint arg_conns = 1;
static gint arg_seconds = 10;
static gint arg_batches = 0;
static gboolean arg_verify;
static char *arg_bootstrap;
static gint arg_keys = 2000;
static gint arg_window = 16;
static gint arg_value_size = 16;
static gboolean arg_json;
static char *arg_label;

static const GOptionEntry lookup_entries[] = {
    {"socket", 's', 0, G_OPTION_ARG_FILENAME, &arg_socket,
     "Resolver socket of the dht-pagesd to load (required)", "PATH"},
    {"hashes", 'H', 0, G_OPTION_ARG_FILENAME, &arg_hashes,
     "File of page hashes, one hex hash first on each line (required)", "FILE"},
    {"batch", 'b', 0, G_OPTION_ARG_INT, &arg_batch,
     "Hashes per LOOKUP, 1-1024 (default 256)", "B"},
    {"conns", 'c', 0, G_OPTION_ARG_INT, &arg_conns,
     "Concurrent connections, one thread each (default 1)", "C"},
    {"seconds", 't', 0, G_OPTION_ARG_INT, &arg_seconds,
     "Run for T seconds (default 10)", "T"},
    {"batches", 'n', 0, G_OPTION_ARG_INT, &arg_batches,
     "Stop after N batches in all instead of after T seconds", "N"},
    {"verify", 0, 0, G_OPTION_ARG_NONE, &arg_verify,
     "Re-hash every page received, as QEMU does (costs client CPU)", NULL},
    {NULL},
};

static const GOptionEntry opendht_entries[] = {
    {"bootstrap", 'B', 0, G_OPTION_ARG_STRING, &arg_bootstrap,
     "OpenDHT node to join (required)", "HOST:PORT"},
    {"keys", 'k', 0, G_OPTION_ARG_INT, &arg_keys,
     "Keys to put then get (default 2000)", "K"},
    {"window", 'w', 0, G_OPTION_ARG_INT, &arg_window,
     "Puts in flight (default 16)", "W"},
    {"value-size", 0, 0, G_OPTION_ARG_INT, &arg_value_size,
     "Bytes per value (default 16, a node id)", "BYTES"},
    {NULL},
};

static const GOptionEntry common_entries[] = {
    {"json", 'j', 0, G_OPTION_ARG_NONE, &arg_json, "Print a JSON object", NULL},
    {"label", 'l', 0, G_OPTION_ARG_STRING, &arg_label,
     "Label copied into the output", "TEXT"},
    {NULL},
};

/* ---- results ---- */

typedef struct {
    GPtrArray *keys;   /* char * */
    GPtrArray *values; /* char *, already formatted */
    GPtrArray *quoted; /* GINT_TO_POINTER(is a string) */
} Report;

static void
report_init(Report *r)
{
    r->keys = g_ptr_array_new_with_free_func(g_free);
    r->values = g_ptr_array_new_with_free_func(g_free);
    r->quoted = g_ptr_array_new();
}

static void
report_clear(Report *r)
{
    g_ptr_array_unref(r->keys);
    g_ptr_array_unref(r->values);
    g_ptr_array_unref(r->quoted);
}

static void
report_add(Report *r, const char *key, gboolean quoted, char *value)
{
    g_ptr_array_add(r->keys, g_strdup(key));
    g_ptr_array_add(r->values, value);
    g_ptr_array_add(r->quoted, GINT_TO_POINTER(quoted));
}

static void
report_str(Report *r, const char *key, const char *value)
{
    report_add(r, key, TRUE, g_strdup(value));
}

static void
report_int(Report *r, const char *key, guint64 value)
{
    report_add(r, key, FALSE, g_strdup_printf("%" G_GUINT64_FORMAT, value));
}

static void
report_num(Report *r, const char *key, const char *fmt, double value)
{
    char buf[G_ASCII_DTOSTR_BUF_SIZE];

    /* C locale decimal point whatever LC_NUMERIC says. */
    report_add(r, key, FALSE,
               g_strdup(g_ascii_formatd(buf, sizeof(buf), fmt, value)));
}

static void
report_print(Report *r)
{
    if (arg_json) {
        /* Numbers are printed as formatted above (json-glib would print
         * every number as a 17-digit double); strings go through
         * json-glib for escaping. */
        GString *out = g_string_new("{");

        for (guint i = 0; i < r->keys->len; i++) {
            const char *v = r->values->pdata[i];

            g_string_append_printf(out, "%s\"%s\": ", i ? ", " : "",
                                   (const char *)r->keys->pdata[i]);
            if (GPOINTER_TO_INT(r->quoted->pdata[i])) {
                g_autoptr(JsonNode) node =
                    json_node_init_string(json_node_alloc(), v);
                g_autofree char *text = json_to_string(node, FALSE);

                g_string_append(out, text);
            } else {
                g_string_append(out, v);
            }
        }
        g_string_append(out, "}");
        printf("%s\n", out->str);
        g_string_free(out, TRUE);
    } else {
        for (guint i = 0; i < r->keys->len; i++) {
            const char *v = r->values->pdata[i];

            /* Quote only what a shell word split would break. */
            if (GPOINTER_TO_INT(r->quoted->pdata[i]) && strchr(v, ' ')) {
                printf("%s%s=\"%s\"", i ? " " : "",
                       (const char *)r->keys->pdata[i], v);
            } else {
                printf("%s%s=%s", i ? " " : "", (const char *)r->keys->pdata[i],
                       v);
            }
        }
        printf("\n");
    }
    fflush(stdout);
}

static int
cmp_i64(gconstpointer a, gconstpointer b)
{
    gint64 x = *(const gint64 *)a, y = *(const gint64 *)b;

    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted microsecond samples, in ms. */
static double
percentile_ms(GArray *sorted, double p)
{
    gsize rank;

    if (sorted->len == 0) {
        return 0;
    }
    rank = (gsize)ceil(p / 100.0 * sorted->len);
    rank = CLAMP(rank, 1, sorted->len);
    return g_array_index(sorted, gint64, rank - 1) / 1000.0;
}

static void
report_latencies(Report *r, const char *prefix, GArray *us)
{
    g_autofree char *k50 = g_strdup_printf("%sp50_ms", prefix);
    g_autofree char *k99 = g_strdup_printf("%sp99_ms", prefix);
    g_autofree char *kmax = g_strdup_printf("%smax_ms", prefix);

    g_array_sort(us, cmp_i64);
    report_num(r, k50, "%.3f", percentile_ms(us, 50));
    report_num(r, k99, "%.3f", percentile_ms(us, 99));
    report_num(r, kmax, "%.3f", percentile_ms(us, 100));
}

/* ---- lookup ---- */

typedef struct {
    const VcPageHash *hashes;
    gsize n_hashes;
    gint64 deadline;   /* monotonic µs, 0 when counting batches */
    gint batches_left; /* atomic, when counting batches */
    gint stop;         /* atomic: a worker failed */
} LookupRun;

typedef struct {
    LookupRun *run;
    int fd;
    gsize cursor;
    guint64 batches;
    guint64 hashes;
    guint64 hits;
    guint64 bad;
    GArray *lat_us; /* gint64 per batch */
    GError *error;
} Worker;

static gboolean
read_hash_file(const char *path, GArray *out, GError **error)
{
    g_autofree char *text = NULL;
    gsize len;
    char *line, *next;
    guint lineno = 0;

    if (!g_file_get_contents(path, &text, &len, error)) {
        return FALSE;
    }
    for (line = text; line && *line; line = next) {
        VcPageHash h;

        lineno++;
        next = strchr(line, '\n');
        if (next) {
            *next++ = '\0';
        }
        line[strcspn(line, " \t\r")] = '\0';
        if (line[0] == '\0') {
            continue;
        }
        if (out->len >= MAX_HASHES) {
            g_set_error(error, DP_ERROR, DP_ERROR_LIMIT,
                        "'%s' has more than %d hashes", path, MAX_HASHES);
            return FALSE;
        }
        if (!vc_page_hash_from_hex(line, &h, error)) {
            g_prefix_error(error, "'%s' line %u: ", path, lineno);
            return FALSE;
        }
        g_array_append_val(out, h);
    }
    if (out->len == 0) {
        g_set_error(error, DP_ERROR, DP_ERROR_LIMIT, "no hashes in '%s'", path);
        return FALSE;
    }
    return TRUE;
}

static int
connect_resolver(const char *path, GError **error)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        g_set_error(error, DP_ERROR, DP_ERROR_IO,
                    "socket path '%s' is too long", path);
        return -1;
    }
    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        g_set_error(error, DP_ERROR, DP_ERROR_IO,
                    "cannot connect to resolver socket '%s': %s", path,
                    g_strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    return fd;
}

static gboolean
worker_more(Worker *w)
{
    LookupRun *run = w->run;

    if (g_atomic_int_get(&run->stop)) {
        return FALSE;
    }
    if (run->deadline) {
        return g_get_monotonic_time() < run->deadline;
    }
    /* Decrement only while positive: N batches in all, shared. */
    for (;;) {
        gint left = g_atomic_int_get(&run->batches_left);

        if (left <= 0) {
            return FALSE;
        }
        if (g_atomic_int_compare_and_exchange(&run->batches_left, left,
                                              left - 1)) {
            return TRUE;
        }
    }
}

static gpointer
lookup_worker(gpointer data)
{
    Worker *w = data;
    LookupRun *run = w->run;
    guint32 b = (guint32)arg_batch;
    g_autofree VcPageHash *batch = g_new(VcPageHash, b);
    g_autoptr(GByteArray) req = g_byte_array_new();
    guint32 id = 0;

    while (worker_more(w)) {
        g_autoptr(GBytes) payload = NULL;
        DpMsg reply;
        gint64 t0;

        for (guint32 i = 0; i < b; i++) {
            batch[i] = run->hashes[w->cursor];
            w->cursor = (w->cursor + 1) % run->n_hashes;
        }
        g_byte_array_set_size(req, 0);
        dp_encode_hashes(req, DP_MSG_LOOKUP, ++id, batch, b);
        t0 = g_get_monotonic_time();
        if (!dp_write_all(w->fd, req->data, req->len, &w->error) ||
            !dp_msg_read(w->fd, &reply, &payload, &w->error)) {
            break;
        }
        if (reply.type != DP_REPLY(DP_MSG_LOOKUP) || reply.id != id ||
            reply.count != b) {
            g_set_error(&w->error, DP_ERROR, DP_ERROR_PROTOCOL,
                        "unexpected reply %s (id %u, count %u)%s%s",
                        dp_msg_type_name(reply.type), reply.id, reply.count,
                        reply.type == DP_MSG_ERROR ? ": " : "",
                        reply.type == DP_MSG_ERROR ? reply.error_message : "");
            break;
        }
        if (arg_verify) {
            for (guint32 i = 0; i < b; i++) {
                const guint8 *page = dp_msg_reply_page(&reply, i);
                VcPageHash check;

                if (!page) {
                    continue;
                }
                vc_page_hash(page, &check);
                if (!vc_page_hash_equal(&check, &batch[i])) {
                    w->bad++;
                }
            }
        }
        {
            gint64 dt = g_get_monotonic_time() - t0;

            g_array_append_val(w->lat_us, dt);
        }
        w->batches++;
        w->hashes += b;
        w->hits += reply.n_hits;
    }
    if (w->error) {
        g_atomic_int_set(&run->stop, 1);
    }
    return NULL;
}

static int
cmd_lookup(void)
{
    g_autoptr(GArray) hashes = g_array_new(FALSE, FALSE, sizeof(VcPageHash));
    g_autoptr(GArray) lat = g_array_new(FALSE, FALSE, sizeof(gint64));
    g_autoptr(GError) error = NULL;
    g_autofree Worker *workers = NULL;
    g_autofree GThread **threads = NULL;
    LookupRun run = {0};
    guint64 batches = 0, total = 0, hits = 0, bad = 0;
    gint64 t0, elapsed;
    Report r;
    int rc = 0;

    if (!arg_socket || !arg_hashes) {
        g_printerr("dp-bench: lookup needs --socket and --hashes\n");
        return 2;
    }
    if (arg_batch < 1 || arg_batch > DP_MAX_BATCH || arg_conns < 1 ||
        arg_conns > MAX_CONNS || arg_seconds < 1 || arg_seconds > MAX_SECONDS ||
        arg_batches < 0) {
        g_printerr("dp-bench: --batch 1-%d, --conns 1-%d, --seconds 1-%d, "
                   "--batches >= 0\n",
                   DP_MAX_BATCH, MAX_CONNS, MAX_SECONDS);
        return 2;
    }
    if (!read_hash_file(arg_hashes, hashes, &error)) {
        g_printerr("dp-bench: %s\n", error->message);
        return 1;
    }
    run.hashes = (const VcPageHash *)hashes->data;
    run.n_hashes = hashes->len;
    run.batches_left = arg_batches;

    workers = g_new0(Worker, arg_conns);
    threads = g_new0(GThread *, arg_conns);
    for (gint i = 0; i < arg_conns; i++) {
        workers[i].run = &run;
        /* Each connection walks its own part of the list first. */
        workers[i].cursor = (gsize)i * run.n_hashes / arg_conns;
        workers[i].lat_us = g_array_new(FALSE, FALSE, sizeof(gint64));
        workers[i].fd = connect_resolver(arg_socket, &error);
        if (workers[i].fd < 0) {
            g_printerr("dp-bench: %s\n", error->message);
            for (gint j = 0; j < i; j++) {
                close(workers[j].fd);
            }
            return 1;
        }
    }

    t0 = g_get_monotonic_time();
    run.deadline = arg_batches > 0 ? 0 : t0 + arg_seconds * G_USEC_PER_SEC;
    for (gint i = 0; i < arg_conns; i++) {
        threads[i] = g_thread_new("lookup", lookup_worker, &workers[i]);
    }
    for (gint i = 0; i < arg_conns; i++) {
        g_thread_join(threads[i]);
    }
    elapsed = MAX(g_get_monotonic_time() - t0, 1);

    for (gint i = 0; i < arg_conns; i++) {
        Worker *w = &workers[i];

        if (w->error) {
            g_printerr("dp-bench: connection %d: %s\n", i + 1,
                       w->error->message);
            g_clear_error(&w->error);
            rc = 1;
        }
        batches += w->batches;
        total += w->hashes;
        hits += w->hits;
        bad += w->bad;
        g_array_append_vals(lat, w->lat_us->data, w->lat_us->len);
        g_array_unref(w->lat_us);
        close(w->fd);
    }
    if (rc != 0) {
        return rc;
    }

    report_init(&r);
    report_str(&r, "mode", "lookup");
    if (arg_label) {
        report_str(&r, "label", arg_label);
    }
    report_int(&r, "conns", arg_conns);
    report_int(&r, "batch", arg_batch);
    report_int(&r, "distinct_hashes", run.n_hashes);
    report_int(&r, "batches", batches);
    report_int(&r, "lookups", total);
    report_num(&r, "seconds", "%.3f", elapsed / 1e6);
    report_num(&r, "lookups_per_s", "%.0f", total * 1e6 / elapsed);
    report_num(&r, "hit_ratio", "%.4f", total ? (double)hits / total : 0);
    report_num(&r, "page_mb_per_s", "%.1f",
               hits * (double)VC_PAGE_SIZE / elapsed);
    report_latencies(&r, "", lat);
    report_int(&r, "verify", arg_verify);
    report_int(&r, "bad_pages", bad);
    report_print(&r);
    report_clear(&r);
    return bad ? 1 : 0;
}

/* ---- opendht ---- */

/* Completion of one put or get; lives until the runners are deleted,
 * since a late callback may still arrive after we stopped waiting. */
typedef struct {
    GMutex *lock;
    GCond *cond;
    gint64 start;
    gint64 first_value; /* µs after start, -1 if none */
    gint64 done_at;     /* µs after start, -1 while pending */
    gboolean ok;
    gboolean found;
    const guint8 *expect;
    gsize expect_len;
    guint *in_flight; /* puts: window accounting */
} Op;

static bool
on_get_value(const dht_value *value, void *user_data)
{
    Op *op = user_data;
    dht_data_view v = dht_value_get_data(value);

    g_mutex_lock(op->lock);
    if (v.size == op->expect_len && memcmp(v.data, op->expect, v.size) == 0) {
        if (!op->found) {
            op->first_value = g_get_monotonic_time() - op->start;
        }
        op->found = TRUE;
    }
    g_mutex_unlock(op->lock);
    return true; /* keep going: we time the whole get, up to done */
}

static void
on_done(bool ok, void *user_data)
{
    Op *op = user_data;

    g_mutex_lock(op->lock);
    op->ok = ok;
    op->done_at = g_get_monotonic_time() - op->start;
    if (op->in_flight) {
        (*op->in_flight)--;
    }
    g_cond_broadcast(op->cond);
    g_mutex_unlock(op->lock);
}

typedef struct {
    GMutex lock;
    GCond cond;
    gboolean done;
    gboolean ok;
} Ping;

static void
on_ping(bool ok, void *user_data)
{
    Ping *p = user_data;

    g_mutex_lock(&p->lock);
    p->done = TRUE;
    p->ok = ok;
    g_cond_broadcast(&p->cond);
    g_mutex_unlock(&p->lock);
}

/* Start an OpenDHT node and wait until the bootstrap node answers. */
static dht_runner *
dht_node_start(const char *host, const char *port, Ping *ping, GError **error)
{
    dht_runner *runner = dht_runner_new();
    dht_runner_config config;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_DGRAM};
    struct addrinfo *ai = NULL;
    gint64 deadline;
    int rc;

    dht_runner_config_default(&config);
    config.threaded = true;
    config.peer_discovery = false;
    config.peer_publish = false;
    rc = dht_runner_run_config(runner, 0, &config);
    if (rc != 0) {
        g_set_error(error, DP_ERROR, DP_ERROR_UNAVAILABLE,
                    "cannot start an OpenDHT node: %s",
                    g_strerror(rc < 0 ? -rc : rc));
        dht_runner_delete(runner);
        return NULL;
    }
    rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0) {
        g_set_error(error, DP_ERROR, DP_ERROR_UNAVAILABLE,
                    "cannot resolve '%s:%s': %s", host, port, gai_strerror(rc));
        dht_runner_delete(runner);
        return NULL;
    }
    dht_runner_bootstrap(runner, host, port);
    g_mutex_lock(&ping->lock);
    ping->done = FALSE;
    g_mutex_unlock(&ping->lock);
    dht_runner_ping(runner, ai->ai_addr, ai->ai_addrlen, on_ping, ping);
    freeaddrinfo(ai);
    deadline = g_get_monotonic_time() + DHT_CONNECT_TIMEOUT_S * G_USEC_PER_SEC;
    g_mutex_lock(&ping->lock);
    while (!ping->done) {
        if (!g_cond_wait_until(&ping->cond, &ping->lock, deadline)) {
            break;
        }
    }
    rc = ping->done && ping->ok;
    g_mutex_unlock(&ping->lock);
    if (!rc) {
        g_set_error(error, DP_ERROR, DP_ERROR_UNAVAILABLE,
                    "OpenDHT node '%s:%s' did not answer a ping", host, port);
        /* The ping's callback may still come: keep @ping alive (the
         * caller owns it until the process exits). */
        dht_runner_delete(runner);
        return NULL;
    }
    return runner;
}

/* Wait for @op's done callback, at most until @deadline. */
static gboolean
op_wait(Op *op, gint64 deadline)
{
    gboolean done;

    g_mutex_lock(op->lock);
    while (op->done_at < 0) {
        if (!g_cond_wait_until(op->cond, op->lock, deadline)) {
            break;
        }
    }
    done = op->done_at >= 0;
    g_mutex_unlock(op->lock);
    return done;
}

/* Warm-up get of a random key: fills the routing table, not timed. */
static void
dht_warm_up(dht_runner *runner, GMutex *lock, GCond *cond)
{
    dht_infohash key;
    Op *op = g_new0(Op, 1); /* leaked on purpose if it never completes */

    op->lock = lock;
    op->cond = cond;
    op->first_value = -1;
    op->done_at = -1;
    op->start = g_get_monotonic_time();
    dht_infohash_random(&key);
    dht_runner_get(runner, &key, on_get_value, on_done, op);
    if (op_wait(op, op->start + 30 * G_USEC_PER_SEC)) {
        g_free(op);
    }
}

static int
cmd_opendht(void)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *host = NULL;
    g_autofree dht_infohash *keys = NULL;
    g_autofree guint8 *values = NULL;
    g_autofree Op *put_ops = NULL;
    g_autofree Op *get_ops = NULL;
    g_autoptr(GArray) put_lat = g_array_new(FALSE, FALSE, sizeof(gint64));
    g_autoptr(GArray) get_lat = g_array_new(FALSE, FALSE, sizeof(gint64));
    g_autoptr(GArray) first_lat = g_array_new(FALSE, FALSE, sizeof(gint64));
    static Ping ping; /* callbacks may outlive a failed wait */
    GMutex lock;
    GCond cond;
    dht_runner *putter, *getter;
    char *colon;
    guint in_flight = 0, put_ok = 0, put_done = 0, get_ok = 0;
    guint found = 0, gets_done = 0;
    gint64 t0, put_us, get_us, deadline;
    Report r;

    if (!arg_bootstrap) {
        g_printerr("dp-bench: opendht needs --bootstrap HOST:PORT\n");
        return 2;
    }
    if (arg_keys < 1 || arg_keys > MAX_KEYS || arg_window < 1 ||
        arg_window > MAX_WINDOW || arg_value_size < 1 ||
        arg_value_size > 1024) {
        g_printerr("dp-bench: --keys 1-%d, --window 1-%d, --value-size "
                   "1-1024\n",
                   MAX_KEYS, MAX_WINDOW);
        return 2;
    }
    host = g_strdup(arg_bootstrap);
    colon = strrchr(host, ':');
    if (!colon || colon == host || colon[1] == '\0') {
        g_printerr("dp-bench: bootstrap '%s' is not HOST:PORT\n",
                   arg_bootstrap);
        return 2;
    }
    *colon = '\0';
    g_printerr("dp-bench: note: %s\n", OPENDHT_NOTE);

    g_mutex_init(&lock);
    g_cond_init(&cond);
    g_mutex_init(&ping.lock);
    g_cond_init(&ping.cond);
    keys = g_new(dht_infohash, arg_keys);
    values = g_malloc((gsize)arg_keys * arg_value_size);
    put_ops = g_new0(Op, arg_keys);
    get_ops = g_new0(Op, arg_keys);
    for (gint i = 0; i < arg_keys; i++) {
        dht_infohash_random(&keys[i]);
        for (gint j = 0; j < arg_value_size; j++) {
            values[(gsize)i * arg_value_size + j] =
                (guint8)g_random_int_range(0, 256);
        }
    }

    putter = dht_node_start(host, colon + 1, &ping, &error);
    if (!putter) {
        g_printerr("dp-bench: %s\n", error->message);
        return 1;
    }
    dht_warm_up(putter, &lock, &cond);

    /* Puts, W in flight. */
    t0 = g_get_monotonic_time();
    deadline = t0 + DHT_PHASE_TIMEOUT_S * G_USEC_PER_SEC;
    for (gint i = 0; i < arg_keys; i++) {
        Op *op = &put_ops[i];
        dht_value *v;

        g_mutex_lock(&lock);
        while (in_flight >= (guint)arg_window &&
               g_cond_wait_until(&cond, &lock, deadline)) {
        }
        if (in_flight >= (guint)arg_window) {
            g_mutex_unlock(&lock);
            g_printerr("dp-bench: puts stalled; %d of %d sent\n", i, arg_keys);
            break;
        }
        in_flight++;
        op->lock = &lock;
        op->cond = &cond;
        op->in_flight = &in_flight;
        op->first_value = -1;
        op->done_at = -1;
        op->start = g_get_monotonic_time();
        g_mutex_unlock(&lock);
        v = dht_value_new(values + (gsize)i * arg_value_size, arg_value_size);
        dht_runner_put(putter, &keys[i], v, on_done, op, false);
        dht_value_unref(v);
    }
    g_mutex_lock(&lock);
    while (in_flight > 0 && g_cond_wait_until(&cond, &lock, deadline)) {
    }
    g_mutex_unlock(&lock);
    put_us = MAX(g_get_monotonic_time() - t0, 1);
    g_mutex_lock(&lock);
    for (gint i = 0; i < arg_keys; i++) {
        if (put_ops[i].done_at >= 0) {
            put_done++;
            put_ok += put_ops[i].ok;
            g_array_append_val(put_lat, put_ops[i].done_at);
        }
    }
    g_mutex_unlock(&lock);
    g_printerr("dp-bench: %u puts done (%u ok) in %.1f s\n", put_done, put_ok,
               put_us / 1e6);

    /* Gets from a second node that holds nothing: one at a time. */
    getter = dht_node_start(host, colon + 1, &ping, &error);
    if (!getter) {
        g_printerr("dp-bench: %s\n", error->message);
        dht_runner_delete(putter);
        return 1;
    }
    dht_warm_up(getter, &lock, &cond);
    t0 = g_get_monotonic_time();
    deadline = t0 + DHT_PHASE_TIMEOUT_S * G_USEC_PER_SEC;
    for (gint i = 0; i < arg_keys; i++) {
        Op *op = &get_ops[i];

        op->lock = &lock;
        op->cond = &cond;
        op->first_value = -1;
        op->done_at = -1;
        op->expect = values + (gsize)i * arg_value_size;
        op->expect_len = arg_value_size;
        op->start = g_get_monotonic_time();
        dht_runner_get(getter, &keys[i], on_get_value, on_done, op);
        if (!op_wait(op, deadline)) {
            g_printerr("dp-bench: gets timed out after %d of %d\n", i,
                       arg_keys);
            break;
        }
        g_mutex_lock(&lock);
        gets_done++;
        get_ok += op->ok;
        found += op->found;
        g_array_append_val(get_lat, op->done_at);
        if (op->first_value >= 0) {
            g_array_append_val(first_lat, op->first_value);
        }
        g_mutex_unlock(&lock);
    }
    get_us = MAX(g_get_monotonic_time() - t0, 1);

    /* Joins OpenDHT's threads: no callback runs after this. */
    dht_runner_delete(getter);
    dht_runner_delete(putter);

    report_init(&r);
    report_str(&r, "mode", "opendht");
    if (arg_label) {
        report_str(&r, "label", arg_label);
    }
    report_int(&r, "keys", arg_keys);
    report_int(&r, "value_bytes", arg_value_size);
    report_int(&r, "put_window", arg_window);
    report_int(&r, "puts_done", put_done);
    report_int(&r, "puts_ok", put_ok);
    report_num(&r, "put_seconds", "%.3f", put_us / 1e6);
    report_num(&r, "puts_per_s", "%.1f", put_done * 1e6 / put_us);
    report_latencies(&r, "put_", put_lat);
    report_int(&r, "gets", gets_done);
    report_int(&r, "gets_ok", get_ok);
    report_int(&r, "gets_found", found);
    report_num(&r, "get_seconds", "%.3f", get_us / 1e6);
    report_num(&r, "gets_per_s", "%.1f", gets_done * 1e6 / get_us);
    report_latencies(&r, "get_", get_lat);
    report_latencies(&r, "first_value_", first_lat);
    report_str(&r, "note", OPENDHT_NOTE);
    report_print(&r);
    report_clear(&r);
    return gets_done == (guint)arg_keys ? 0 : 1;
}

/* ---- main ---- */

int
main(int argc, char **argv)
{
    g_autoptr(GOptionContext) ctx = NULL;
    g_autoptr(GError) error = NULL;
    const char *mode = argc > 1 ? argv[1] : NULL;
    gboolean lookup;

    if (!mode ||
        (!g_str_equal(mode, "lookup") && !g_str_equal(mode, "opendht"))) {
        g_printerr("dp-bench: usage: dp-bench lookup|opendht [OPTION...] "
                   "(--help after the mode for options)\n");
        return 2;
    }
    lookup = g_str_equal(mode, "lookup");
    ctx = g_option_context_new(lookup ? "lookup - load a resolver socket"
                                      : "opendht - time OpenDHT puts and gets");
    g_option_context_add_main_entries(
        ctx, lookup ? lookup_entries : opendht_entries, NULL);
    g_option_context_add_main_entries(ctx, common_entries, NULL);
    g_option_context_set_description(
        ctx, "A benchmark client, not a test: bench/dht-pages-bench.sh runs\n"
             "it against dht-pagesd, OpenDHT and Redis in one run and\n"
             "prints the ratios.\n");
    argc--;
    argv++;
    if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
        g_printerr("dp-bench: %s\n", error->message);
        return 2;
    }
    if (argc > 1) {
        g_printerr("dp-bench: unexpected argument '%s'\n", argv[1]);
        return 2;
    }
    return lookup ? cmd_lookup() : cmd_opendht();
}
