#include <string.h>

#include "dp-claims.h"

/* Times are passed in: no test sleeps except the blocking one. Asks
 * wait as long as their claims live unless a test says otherwise. */
#define HOLD_US (2 * G_TIME_SPAN_SECOND)
#define T0 (1000 * G_TIME_SPAN_SECOND)

static void
make_hash(guint n, VcPageHash *h)
{
    vc_sha256((const guint8 *)&n, sizeof(n), h);
}

static DpNodeId
node(guint8 n)
{
    DpNodeId id = {{n}};

    return id;
}

/* One hash asked by @who at @now. */
static DpClaimAsk *
ask1(DpClaims *c, guint8 who, guint h, gint64 now)
{
    VcPageHash hash;
    DpNodeId id = node(who);

    make_hash(h, &hash);
    return dp_claims_ask(c, &id, &hash, 1, HOLD_US, HOLD_US, now);
}

static void
done1(DpClaims *c, guint8 who, guint h, gint64 now)
{
    VcPageHash hash;
    DpNodeId id = node(who);

    make_hash(h, &hash);
    g_assert_true(dp_claims_done(c, &id, &hash, now));
}

static void
assert_held_at(const DpClaimAsk *a, guint i, guint8 who)
{
    DpNodeId holder;
    DpNodeId want = node(who);

    g_assert_cmpuint(dp_claims_ask_state(a, i, &holder), ==, DP_CLAIM_HELD);
    g_assert_true(dp_node_id_equal(&holder, &want));
}

static void
test_first_fetches_others_wait(void)
{
    g_autoptr(DpClaims) c = dp_claims_new();
    DpClaimAsk *x = ask1(c, 1, 7, T0);
    DpClaimAsk *y = ask1(c, 2, 7, T0 + 10);
    DpClaimAsk *z;
    gint64 wake = 0;

    g_assert_true(dp_claims_ask_settle(c, x, T0, NULL));
    g_assert_cmpuint(dp_claims_ask_state(x, 0, NULL), ==, DP_CLAIM_FETCH);
    g_assert_false(dp_claims_ask_settle(c, y, T0 + 20, &wake));
    /* It looks again when X's claim would lapse, at the latest. */
    g_assert_cmpint(wake, ==, T0 + HOLD_US);
    g_assert_cmpuint(dp_claims_ask_state(y, 0, NULL), ==, DP_CLAIM_WAITING);

    /* X's client published it: Y fetches it from X. */
    done1(c, 1, 7, T0 + 500);
    g_assert_true(dp_claims_ask_settle(c, y, T0 + 500, NULL));
    assert_held_at(y, 0, 1);

    /* A later asker is told where it is at once. */
    z = ask1(c, 3, 7, T0 + 600);
    g_assert_true(dp_claims_ask_settle(c, z, T0 + 600, NULL));
    assert_held_at(z, 0, 1);
    dp_claims_ask_free(c, x);
    dp_claims_ask_free(c, y);
    dp_claims_ask_free(c, z);
}

static void
test_held_then_forgotten(void)
{
    g_autoptr(DpClaims) c = dp_claims_new();
    DpClaimAsk *x = ask1(c, 1, 7, T0);
    DpClaimAsk *y;

    done1(c, 1, 7, T0 + 100);
    g_assert_cmpuint(dp_claims_expire(c, T0 + 100 + HOLD_US - 1), ==, 0);
    g_assert_cmpuint(dp_claims_expire(c, T0 + 100 + HOLD_US), ==, 1);
    g_assert_cmpuint(dp_claims_size(c), ==, 0);
    /* Forgotten: the index answers for it now; a claim starts anew. */
    y = ask1(c, 2, 7, T0 + 200 + HOLD_US);
    g_assert_cmpuint(dp_claims_ask_state(y, 0, NULL), ==, DP_CLAIM_FETCH);
    dp_claims_ask_free(c, x);
    dp_claims_ask_free(c, y);
}

static void
test_lapsed_claim_goes_to_oldest_waiter(void)
{
    g_autoptr(DpClaims) c = dp_claims_new();
    DpClaimAsk *x = ask1(c, 1, 7, T0);
    DpClaimAsk *y = ask1(c, 2, 7, T0 + 100);
    DpClaimAsk *z = ask1(c, 3, 7, T0 + 200);
    gint64 wake;

    /* X never publishes. Z, though younger, looks first: the claim still
     * goes to Y, which waited longest. */
    g_assert_false(dp_claims_ask_settle(c, z, T0 + HOLD_US, &wake));
    g_assert_cmpuint(dp_claims_ask_state(y, 0, NULL), ==, DP_CLAIM_FETCH);
    g_assert_true(dp_claims_ask_settle(c, y, T0 + HOLD_US, NULL));
    /* Z waits on Y's claim now, until Z's own deadline at most. */
    g_assert_cmpint(wake, ==, T0 + 200 + HOLD_US);
    done1(c, 2, 7, T0 + HOLD_US + 50);
    g_assert_true(dp_claims_ask_settle(c, z, T0 + HOLD_US + 50, NULL));
    assert_held_at(z, 0, 2);
    dp_claims_ask_free(c, x);
    dp_claims_ask_free(c, y);
    dp_claims_ask_free(c, z);
}

/* The claimant got other content from its source: its claim passes at
 * once to the oldest waiter, not when it would lapse. Only the claimant
 * may drop it, and not once it is held. */
static void
test_dropped_claim_goes_to_oldest_waiter(void)
{
    g_autoptr(DpClaims) c = dp_claims_new();
    DpClaimAsk *x = ask1(c, 1, 7, T0);
    DpClaimAsk *y = ask1(c, 2, 7, T0 + 100);
    DpClaimAsk *z = ask1(c, 3, 7, T0 + 200);
    DpNodeId n1 = node(1), n2 = node(2);
    VcPageHash h;

    make_hash(7, &h);
    g_assert_false(dp_claims_drop(c, &n2, &h, T0 + 300));
    g_assert_false(dp_claims_ask_settle(c, y, T0 + 300, NULL));
    g_assert_true(dp_claims_drop(c, &n1, &h, T0 + 300));
    g_assert_true(dp_claims_ask_settle(c, y, T0 + 300, NULL));
    g_assert_cmpuint(dp_claims_ask_state(y, 0, NULL), ==, DP_CLAIM_FETCH);
    g_assert_false(dp_claims_ask_settle(c, z, T0 + 300, NULL));
    done1(c, 2, 7, T0 + 400);
    g_assert_false(dp_claims_drop(c, &n2, &h, T0 + 500));
    g_assert_true(dp_claims_ask_settle(c, z, T0 + 500, NULL));
    assert_held_at(z, 0, 2);
    dp_claims_ask_free(c, x);
    dp_claims_ask_free(c, y);
    dp_claims_ask_free(c, z);
}

/* Dropped with nobody waiting: the next asker fetches it. */
static void
test_dropped_claim_without_waiter(void)
{
    g_autoptr(DpClaims) c = dp_claims_new();
    DpClaimAsk *x = ask1(c, 1, 7, T0);
    DpClaimAsk *y;
    DpNodeId n1 = node(1);
    VcPageHash h;

    make_hash(7, &h);
    g_assert_true(dp_claims_drop(c, &n1, &h, T0 + 100));
    y = ask1(c, 2, 7, T0 + 200);
    g_assert_true(dp_claims_ask_settle(c, y, T0 + 200, NULL));
    g_assert_cmpuint(dp_claims_ask_state(y, 0, NULL), ==, DP_CLAIM_FETCH);
    dp_claims_ask_free(c, x);
    dp_claims_ask_free(c, y);
}

static void
test_wait_runs_out(void)
{
    g_autoptr(DpClaims) c = dp_claims_new();
    DpClaimAsk *x = ask1(c, 1, 7, T0);
    DpClaimAsk *y;
    VcPageHash h;
    DpNodeId y_id = node(2);

    /* Y waits less long than X's claim lives, and gives up first (a
     * fetch over a busy WAN may take longer than a lookup should wait). */
    make_hash(7, &h);
    y = dp_claims_ask(c, &y_id, &h, 1, HOLD_US / 4, HOLD_US, T0 + 100);
    g_assert_false(dp_claims_ask_settle(c, y, T0 + 100 + HOLD_US / 4 - 1,
                                        NULL));
    g_assert_true(dp_claims_ask_settle(c, y, T0 + 100 + HOLD_US / 4, NULL));
    g_assert_cmpuint(dp_claims_ask_state(y, 0, NULL), ==, DP_CLAIM_UNCLAIMED);
    /* X keeps its claim. */
    g_assert_cmpuint(dp_claims_ask_state(x, 0, NULL), ==, DP_CLAIM_FETCH);
    done1(c, 1, 7, T0 + 1000);
    dp_claims_ask_free(c, x);
    dp_claims_ask_free(c, y);
}

/* Two nodes ask for the same pages at the same time: one ask is decided
 * whole before the other, so one node fetches them all and the other
 * waits for all, rather than each fetching some and waiting for the
 * others' (which would be a cycle: each client only fetches once its
 * whole lookup is answered). */
static void
test_batch_decided_at_once(void)
{
    g_autoptr(DpClaims) c = dp_claims_new();
    VcPageHash h[8];
    DpNodeId x_id = node(1), y_id = node(2);
    DpClaimAsk *x, *y;

    for (guint i = 0; i < G_N_ELEMENTS(h); i++) {
        make_hash(i, &h[i]);
    }
    x = dp_claims_ask(c, &x_id, h, 8, HOLD_US, HOLD_US, T0);
    y = dp_claims_ask(c, &y_id, h + 4, 4, HOLD_US, HOLD_US, T0);
    for (guint i = 0; i < 8; i++) {
        g_assert_cmpuint(dp_claims_ask_state(x, i, NULL), ==, DP_CLAIM_FETCH);
    }
    g_assert_true(dp_claims_ask_settle(c, x, T0, NULL));
    g_assert_false(dp_claims_ask_settle(c, y, T0, NULL));
    for (guint i = 4; i < 8; i++) {
        g_assert_true(dp_claims_done(c, &x_id, &h[i], T0 + 10));
    }
    g_assert_true(dp_claims_ask_settle(c, y, T0 + 10, NULL));
    for (guint i = 0; i < 4; i++) {
        assert_held_at(y, i, 1);
    }
    dp_claims_ask_free(c, x);
    dp_claims_ask_free(c, y);
}

static void
test_same_hash_twice_in_one_ask(void)
{
    g_autoptr(DpClaims) c = dp_claims_new();
    VcPageHash h[2];
    DpNodeId x_id = node(1), y_id = node(2);
    DpClaimAsk *x, *y, *x2;

    make_hash(1, &h[0]);
    h[1] = h[0];
    x = dp_claims_ask(c, &x_id, h, 2, HOLD_US, HOLD_US, T0);
    g_assert_true(dp_claims_ask_settle(c, x, T0, NULL));
    g_assert_cmpuint(dp_claims_ask_state(x, 1, NULL), ==, DP_CLAIM_FETCH);

    /* Both copies wait in Y's ask; the lapsed claim passes to Y whole. */
    y = dp_claims_ask(c, &y_id, h, 2, HOLD_US, HOLD_US, T0 + 10);
    x2 = ask1(c, 1, 1, T0 + 20);
    g_assert_false(dp_claims_ask_settle(c, y, T0 + 20, NULL));
    g_assert_true(dp_claims_ask_settle(c, y, T0 + HOLD_US, NULL));
    g_assert_cmpuint(dp_claims_ask_state(y, 0, NULL), ==, DP_CLAIM_FETCH);
    g_assert_cmpuint(dp_claims_ask_state(y, 1, NULL), ==, DP_CLAIM_FETCH);
    g_assert_cmpuint(dp_claims_ask_state(x2, 0, NULL), ==, DP_CLAIM_WAITING);
    dp_claims_ask_free(c, x);
    dp_claims_ask_free(c, y);
    dp_claims_ask_free(c, x2);
}

static void
test_done_without_claim(void)
{
    g_autoptr(DpClaims) c = dp_claims_new();
    VcPageHash h;
    DpNodeId id = node(1);

    make_hash(3, &h);
    g_assert_false(dp_claims_done(c, &id, &h, T0));
    g_assert_cmpuint(dp_claims_size(c), ==, 0);
}

/* An ask freed while it waits leaves its queue: the lapse that follows
 * does not touch it (valgrind and ASan would see it). */
static void
test_free_while_waiting(void)
{
    g_autoptr(DpClaims) c = dp_claims_new();
    DpClaimAsk *x = ask1(c, 1, 7, T0);
    DpClaimAsk *y = ask1(c, 2, 7, T0 + 10);
    DpClaimAsk *z = ask1(c, 3, 7, T0 + 20);

    dp_claims_ask_free(c, y);
    g_assert_true(dp_claims_ask_settle(c, z, T0 + HOLD_US, NULL));
    g_assert_cmpuint(dp_claims_ask_state(z, 0, NULL), ==, DP_CLAIM_FETCH);
    dp_claims_ask_free(c, x);
    dp_claims_ask_free(c, z);
}

typedef struct {
    DpClaims *c;
    DpClaimAsk *ask;
} Waiter;

static gpointer
waiter_thread(gpointer data)
{
    Waiter *w = data;

    dp_claims_ask_wait(w->c, w->ask);
    return NULL;
}

/* The blocking form, as the arbiter's server threads use it: released
 * by a done from another thread, long before the hold time. */
static void
test_wait_released_by_done(void)
{
    g_autoptr(DpClaims) c = dp_claims_new();
    VcPageHash h;
    DpNodeId x_id = node(1), y_id = node(2);
    DpClaimAsk *x;
    Waiter w = {c, NULL};
    GThread *t;

    make_hash(9, &h);
    /* Long enough not to lapse under valgrind. */
    x = dp_claims_ask(c, &x_id, &h, 1, 60 * G_TIME_SPAN_SECOND,
                      60 * G_TIME_SPAN_SECOND, g_get_monotonic_time());
    w.ask = dp_claims_ask(c, &y_id, &h, 1, 60 * G_TIME_SPAN_SECOND,
                          60 * G_TIME_SPAN_SECOND, g_get_monotonic_time());
    t = g_thread_new("waiter", waiter_thread, &w);
    g_usleep(10 * G_TIME_SPAN_MILLISECOND);
    g_assert_true(dp_claims_done(c, &x_id, &h, g_get_monotonic_time()));
    g_thread_join(t);
    assert_held_at(w.ask, 0, 1);
    dp_claims_ask_free(c, x);
    dp_claims_ask_free(c, w.ask);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/claims/first-fetches-others-wait",
                    test_first_fetches_others_wait);
    g_test_add_func("/claims/held-then-forgotten", test_held_then_forgotten);
    g_test_add_func("/claims/lapsed-claim-goes-to-oldest-waiter",
                    test_lapsed_claim_goes_to_oldest_waiter);
    g_test_add_func("/claims/wait-runs-out", test_wait_runs_out);
    g_test_add_func("/claims/dropped-claim-goes-to-oldest-waiter",
                    test_dropped_claim_goes_to_oldest_waiter);
    g_test_add_func("/claims/dropped-claim-without-waiter",
                    test_dropped_claim_without_waiter);
    g_test_add_func("/claims/batch-decided-at-once",
                    test_batch_decided_at_once);
    g_test_add_func("/claims/same-hash-twice-in-one-ask",
                    test_same_hash_twice_in_one_ask);
    g_test_add_func("/claims/done-without-claim", test_done_without_claim);
    g_test_add_func("/claims/free-while-waiting", test_free_while_waiting);
    g_test_add_func("/claims/wait-released-by-done",
                    test_wait_released_by_done);
    return g_test_run();
}
