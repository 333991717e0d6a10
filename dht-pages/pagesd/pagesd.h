/*
 * dht-pagesd internals: one daemon per node, serving its site's page
 * index, page cache and resolver socket. See docs/protocols.md.
 *
 * Threads: an accept thread per listening socket and one thread per
 * connection (few: local QEMUs and CLIs, and site peers), the RAM scanner,
 * the pinger, and OpenDHT's own threads. A resolver client's thread talks
 * to all the peers a LOOKUP needs at once (fetch.c). All shared state is
 * under d->lock, which is never held across I/O or hashing.
 */
#pragma once

#include <glib.h>

#include "dp-claims.h"
#include "dp-conn.h"
#include "dp-index.h"
#include "dp-partition.h"
#include "dp-proto.h"
#include "dp-store.h"

typedef struct DpRam DpRam;
typedef struct DpPeerConn DpPeerConn;

typedef struct {
    DpNodeId id;
    char *address;
    guint16 port;
    gint failures;       /* consecutive failed pings */
    GQueue idle;         /* DpPeerConn *, under the daemon lock */
} DpMember;

typedef struct {
    /* counters, updated with g_atomic_* (guint64 through the lock-free
     * 64-bit helpers below) */
    guint64 lookups;
    guint64 hits_cache;
    guint64 hits_ram;
    guint64 hits_peer;
    guint64 misses;
    guint64 coalesced_hits;  /* fetched from the node that brought it */
    guint64 coalesce_waits;  /* missing, and another node fetches it */
    guint64 claims_fetch;    /* missing: this node's client fetches it */
    guint64 claims_unasked;  /* missing, the arbiter unreachable: fetched */
    guint64 claims_decided;  /* as the site's claims arbiter */
    guint64 claims_fulfilled;
    guint64 claims_dropped;
    guint64 published;
    guint64 publish_rejected;
    guint64 bad_pages_from_peers;
    guint64 stale_ram_pages;
    guint64 peer_errors;
    guint64 bad_frames;
    guint64 auth_failures;
    guint64 pages_served;
    guint64 index_adds_received;
    guint64 rebalances;
    guint64 pages_hashed;
    guint64 ram_passes;
} DpStats;

#define dp_stat_add(d, field, n) __atomic_add_fetch(&(d)->stats.field, (n), __ATOMIC_RELAXED)
#define dp_stat_get(d, field) __atomic_load_n(&(d)->stats.field, __ATOMIC_RELAXED)
/* A batch of lookups or PAGE_GETs is being served: background work
 * yields to them for a while (ram.c). */
#define dp_note_lookup(d) \
    __atomic_store_n(&(d)->last_lookup_us, g_get_monotonic_time(), __ATOMIC_RELAXED)
#define dp_last_lookup(d) __atomic_load_n(&(d)->last_lookup_us, __ATOMIC_RELAXED)

typedef struct {
    /* configuration */
    char *site;
    guint8 *key;
    gsize key_len;
    char *address;
    guint16 peer_port;
    guint16 dht_port;
    char **bootstrap;
    char *resolver_path;
    char **ram_globs;
    guint64 hash_rate; /* bytes per second */
    gint64 coalesce_us;     /* lookups wait for others' fetches; 0: off */
    gint64 claim_us;        /* a claim to fetch a missing page lives */
    gboolean test_corrupt_pages;

    DpNodeId self;
    GMutex lock;
    GCond changed;          /* membership or rebalance state changed */
    GHashTable *members;    /* DpNodeId* -> DpMember*, excludes self */
    GHashTable *dead;       /* DpNodeId* -> itself: dropped, never re-added */
    DpPartition *partition; /* members + self */
    guint64 epoch;          /* partition changes */
    guint64 announced_epoch;/* epoch whose re-announce finished */
    DpIndex *index;
    DpStore *store;
    DpRam *ram;
    DpClaims *claims;       /* as the site's claims arbiter */
    DpStats stats;
    gint64 last_lookup_us;  /* monotonic, of the last batch served */
    gint64 started_us;
    volatile gint stopping;
} DpDaemon;

/* members.c */
gboolean dp_members_start(DpDaemon *d, GError **error);
void dp_members_stop(DpDaemon *d);
void dp_member_free(DpMember *m);
void dp_members_add(DpDaemon *d, const DpNodeId *id, const char *address,
                    guint16 port);
void dp_members_remove(DpDaemon *d, const DpNodeId *id, const char *why);
/* Called with d->lock held: rebuild the partition from the member set. */
void dp_members_repartition_locked(DpDaemon *d);
gpointer dp_pinger_thread(gpointer data);

/* peer.c: the server site members call. */
gboolean dp_peer_listen(DpDaemon *d, GError **error);

/* peer-client.c: calls to site members. */
/* One request to a member, reply decoded into @reply (pointing into
 * *@payload). Connections are pooled per member. */
gboolean dp_peer_call(DpDaemon *d, const DpNodeId *member, GByteArray *req,
                      DpMsg *reply, GBytes **payload, GError **error);
/* The same for a request whose reply may take long (CLAIM): the reply is
 * awaited up to @timeout_s. */
gboolean dp_peer_call_timeout(DpDaemon *d, const DpNodeId *member,
                              GByteArray *req, int timeout_s, DpMsg *reply,
                              GBytes **payload, GError **error);
void dp_peer_conn_free(DpPeerConn *conn);
/* A connection to @member for requests of one's own (an idle pooled one,
 * else a new authenticated one), and back to the pool when every reply
 * has been read; a failed one is freed instead. */
DpPeerConn *dp_peer_take(DpDaemon *d, const DpNodeId *member, GError **error);
void dp_peer_give(DpDaemon *d, const DpNodeId *member, DpPeerConn *conn);
int dp_peer_conn_fd(DpPeerConn *conn);
const char *dp_peer_conn_name(DpPeerConn *conn);
/* A fresh id for a request to a peer. */
guint32 dp_peer_request_id(void);
/* Send and receive timeouts of a peer socket (0: none), and no Nagle. */
void dp_peer_set_timeouts(int fd, int seconds);

/* holdings.c: what this node holds (local RAM and the page cache). */
/* Group @hashes by owner and send INDEX_ADD (or INDEX_DEL) batches;
 * entries owned by this node go straight into the local index. */
void dp_announce(DpDaemon *d, guint8 type, const VcPageHash *hashes,
                 gsize n);
/* The pages this node can serve for @hashes (cache or local RAM,
 * re-hashed), under one lock for the batch: status[i] says which, and the
 * hit pages are copied to @pages (room for @n), packed in order, so that
 * they can follow a reply head as they are. Returns the hits; *n_ram of
 * them came from local RAM. */
guint dp_local_pages(DpDaemon *d, const VcPageHash *hashes, guint n,
                     guint8 *status, guint8 *pages, guint *n_ram);
/* All hashes held locally (RAM and cache), for re-announcing. */
GArray *dp_local_hashes(DpDaemon *d);
/* After a membership change: announce everything held here to the new
 * owners and drop index entries for buckets this node no longer owns. */
void dp_holdings_rebalance(DpDaemon *d, guint64 epoch);
/* The scanner thread: hashes local RAM at the configured rate, announces
 * what changed, and rebalances after membership changes. */
gpointer dp_scanner_thread(gpointer data);

/* Work grouped by site member: DpNodeId * -> GArray of items of one
 * size (hashes to announce, indices of hashes to ask for). */
GHashTable *dp_node_groups_new(void);
void dp_node_groups_add(GHashTable *groups, const DpNodeId *node,
                        gconstpointer item, guint item_size);

/* fetch.c: the hashes of a LOOKUP this node does not hold, from peers.
 * One DpFetch per resolver client (it keeps buffers and connections). */
typedef struct DpFetch DpFetch;
DpFetch *dp_fetch_new(DpDaemon *d);
void dp_fetch_free(DpFetch *f);
/* A new LOOKUP: the pages the runs of the last one gave are given up. */
void dp_fetch_begin(DpFetch *f);
/* Resolve hashes[todo[k]] through the index owners and holders; out[i]
 * becomes a verified page for each found, valid until the next
 * dp_fetch_begin(). Returns how many were found. */
guint dp_fetch_run(DpFetch *f, const VcPageHash *hashes, const guint32 *todo,
                   guint n_todo, const guint8 **out);
/* The same, asking holders[k] for hashes[todo[k]] (no owner asked). */
guint dp_fetch_from(DpFetch *f, const VcPageHash *hashes, const guint32 *todo,
                    guint n_todo, const DpNodeId *holders, const guint8 **out);

/* arbiter.c: claims on missing pages, site-wide. */
/* As the arbiter: decide @asker's CLAIM and wait until every hash has its
 * final state (at most @wait_ms); one holder per DP_CLAIM_HELD is packed
 * in @holders (room for @n). Returns how many. */
guint dp_arbiter_decide(DpDaemon *d, const DpNodeId *asker,
                        const VcPageHash *hashes, guint n, guint32 wait_ms,
                        guint8 *states, DpNodeId *holders);
/* As the arbiter: @holder has these pages now (CLAIM_DONE). */
void dp_arbiter_fulfil(DpDaemon *d, const DpNodeId *holder,
                       const VcPageHash *hashes, guint n);
/* Ask the site's arbiter about missing @hashes (1..DP_MAX_BATCH), waiting
 * the daemon's hold time at most; states and holders as
 * dp_arbiter_decide().
 * FALSE if the arbiter could not be asked: all are missing. */
gboolean dp_arbiter_ask(DpDaemon *d, const VcPageHash *hashes, guint n,
                        guint8 *states, DpNodeId *holders);
/* As the arbiter: @claimant will not fetch these pages (CLAIM_DROP). */
void dp_arbiter_release(DpDaemon *d, const DpNodeId *claimant,
                        const VcPageHash *hashes, guint n);
/* This node holds these pages now (its clients published them). */
void dp_arbiter_done(DpDaemon *d, const VcPageHash *hashes, gsize n);
/* This node will not fetch these pages after all: a client published
 * other content for them (the source's page had changed). */
void dp_arbiter_drop(DpDaemon *d, const VcPageHash *hashes, gsize n);

/* resolver.c */
gboolean dp_resolver_listen(DpDaemon *d, GError **error);
char *dp_stats_json(DpDaemon *d);

/* ram.c */
DpRam *dp_ram_new(void);
void dp_ram_free(DpRam *ram);
/* Find new RAM files and retire those that went away; the hashes of
 * retired pages go to @withdrawn. */
void dp_ram_discover(DpDaemon *d, GArray *withdrawn);
/* Hash up to a chunk of pages of one region that needs it; returns the
 * bytes hashed (0: nothing to do) and whether that was a re-pass. Hashes
 * that entered the RAM table go to @added, those that left it to
 * @withdrawn. */
gsize dp_ram_hash_chunk(DpDaemon *d, gboolean *repass, GArray *added,
                        GArray *withdrawn);
/* Under the daemon lock: where local RAM held @h when it was last
 * hashed (no hash check: guest memory changes), NULL if nowhere. The
 * mapping stays valid without the lock until
 * dp_ram_release_locked(@region). */
const guint8 *dp_ram_find_locked(DpDaemon *d, const VcPageHash *h,
                                 gpointer *region);
void dp_ram_release_locked(DpDaemon *d, gpointer region);
/* The page at @h's location no longer matches: forget it. Returns TRUE if
 * it was indexed (the caller withdraws it from the site index). */
gboolean dp_ram_forget(DpDaemon *d, const VcPageHash *h);
gsize dp_ram_pages(DpDaemon *d);
gsize dp_ram_regions(DpDaemon *d);
/* Under the daemon lock: append the hashes of local RAM to @out. */
void dp_ram_collect_locked(DpDaemon *d, GArray *out);

/* util */
guint dp_node_id_hash(gconstpointer id);
gboolean dp_node_id_equal_func(gconstpointer a, gconstpointer b);
