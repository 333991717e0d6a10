#include <string.h>

#include "dp-coalesce.h"

/* Short, so that the timeout cases are quick; no test depends on how
 * long anything takes, only on the order of events. */
#define HOLD_US (50 * G_TIME_SPAN_MILLISECOND)
/* Long enough not to lapse before the waiters are blocked, even under
 * valgrind; short enough that a lost wake-up fails the test instead of
 * hanging it. */
#define LONG_HOLD_US (10 * G_TIME_SPAN_SECOND)

static void
make_hash(guint n, VcPageHash *h)
{
    vc_sha256((const guint8 *)&n, sizeof(n), h);
}

typedef struct {
    DpCoalescer *c;
    VcPageHash hash;
    gint64 deadline;
    GMutex lock;
    GCond cond;
    guint started;
} Shared;

static gpointer
waiter_thread(gpointer data)
{
    Shared *s = data;
    gboolean ret;

    g_mutex_lock(&s->lock);
    s->started++;
    g_cond_broadcast(&s->cond);
    g_mutex_unlock(&s->lock);
    ret = dp_coalescer_wait(s->c, &s->hash, s->deadline);
    return GINT_TO_POINTER(ret ? 1 : 2);
}

static void
shared_init(Shared *s, DpCoalescer *c, guint n)
{
    memset(s, 0, sizeof(*s));
    s->c = c;
    make_hash(n, &s->hash);
    g_mutex_init(&s->lock);
    g_cond_init(&s->cond);
}

static void
shared_clear(Shared *s)
{
    g_mutex_clear(&s->lock);
    g_cond_clear(&s->cond);
}

static void
wait_started(Shared *s, guint n)
{
    g_mutex_lock(&s->lock);
    while (s->started < n) {
        g_cond_wait(&s->cond, &s->lock);
    }
    g_mutex_unlock(&s->lock);
}

/* Wait until @n threads are blocked in dp_coalescer_wait (they counted
 * as waits on entry). */
static void
wait_waiting(DpCoalescer *c, guint64 n)
{
    while (dp_coalescer_waits(c) < n) {
        g_usleep(1000);
    }
    /* Counted under the lock, then they block on the condition in the
     * same critical section, so a publish from now on reaches them. */
}

static void
test_two_waiters_one_publish(void)
{
    g_autoptr(DpCoalescer) c = dp_coalescer_new(LONG_HOLD_US);
    Shared s;
    GThread *t[2];
    gint64 d1, d2, d3;

    shared_init(&s, c, 1);
    g_assert_true(dp_coalescer_claim(c, &s.hash, g_get_monotonic_time(), &d1));
    g_assert_false(dp_coalescer_claim(c, &s.hash, g_get_monotonic_time(), &d2));
    g_assert_false(dp_coalescer_claim(c, &s.hash, g_get_monotonic_time(), &d3));
    g_assert_cmpint(d2, ==, d1);
    g_assert_cmpint(d3, ==, d1);

    s.deadline = d2;
    for (guint i = 0; i < 2; i++) {
        t[i] = g_thread_new("waiter", waiter_thread, &s);
    }
    wait_started(&s, 2);
    wait_waiting(c, 2);
    dp_coalescer_published(c, &s.hash);
    for (guint i = 0; i < 2; i++) {
        g_assert_cmpint(GPOINTER_TO_INT(g_thread_join(t[i])), ==, 1);
    }
    g_assert_cmpuint(dp_coalescer_waits(c), ==, 2);
    g_assert_cmpuint(dp_coalescer_served(c), ==, 2);

    /* Published: the reservation is released, the next miss claims. */
    g_assert_true(dp_coalescer_claim(c, &s.hash, g_get_monotonic_time(), &d1));
    shared_clear(&s);
}

static void
test_timeout_then_reclaim(void)
{
    g_autoptr(DpCoalescer) c = dp_coalescer_new(HOLD_US);
    Shared s;
    GThread *t;
    gint64 d1, d2, d3;

    shared_init(&s, c, 2);
    g_assert_true(dp_coalescer_claim(c, &s.hash, g_get_monotonic_time(), &d1));
    g_assert_false(dp_coalescer_claim(c, &s.hash, g_get_monotonic_time(), &d2));
    g_assert_cmpint(d2, ==, d1);

    /* Nobody publishes: the waiter gives up at the deadline. */
    s.deadline = d2;
    t = g_thread_new("waiter", waiter_thread, &s);
    g_assert_cmpint(GPOINTER_TO_INT(g_thread_join(t)), ==, 2);
    g_assert_cmpint(g_get_monotonic_time(), >=, d2);
    g_assert_cmpuint(dp_coalescer_waits(c), ==, 1);
    g_assert_cmpuint(dp_coalescer_served(c), ==, 0);

    /* The reservation lapsed: the next miss is the new fetcher, and a
     * later one waits for it. */
    g_assert_true(dp_coalescer_claim(c, &s.hash, g_get_monotonic_time(), &d3));
    g_assert_cmpint(d3, >, d1);
    g_assert_false(dp_coalescer_claim(c, &s.hash, d3 - 1, &d2));
    g_assert_cmpint(d2, ==, d3);
    /* A publish of the new reservation does not serve the old one. */
    dp_coalescer_published(c, &s.hash);
    g_assert_false(dp_coalescer_wait(c, &s.hash, d1));
    g_assert_true(dp_coalescer_wait(c, &s.hash, d3));
    shared_clear(&s);
}

/* Virtual times far in the past: if a publish were lost, wait() would
 * return FALSE at once instead of blocking. */
static void
test_publish_before_wait(void)
{
    g_autoptr(DpCoalescer) c = dp_coalescer_new(1000);
    VcPageHash h;
    gint64 d1, d2;

    make_hash(3, &h);
    g_assert_true(dp_coalescer_claim(c, &h, 0, &d1));
    g_assert_false(dp_coalescer_claim(c, &h, 10, &d2));
    g_assert_cmpint(d2, ==, 1000);
    dp_coalescer_published(c, &h);
    g_assert_true(dp_coalescer_wait(c, &h, d2));
    g_assert_cmpuint(dp_coalescer_served(c), ==, 1);

    /* Still served after someone else claimed anew (the publish released
     * the reservation). */
    g_assert_true(dp_coalescer_claim(c, &h, 20, &d1));
    g_assert_cmpint(d1, ==, 1020);
    g_assert_true(dp_coalescer_wait(c, &h, d2));
    /* The new reservation, unpublished, has lapsed by the real clock. */
    g_assert_false(dp_coalescer_wait(c, &h, d1));
    g_assert_cmpuint(dp_coalescer_waits(c), ==, 3);
    g_assert_cmpuint(dp_coalescer_served(c), ==, 2);
}

static void
test_unknown_hash(void)
{
    g_autoptr(DpCoalescer) c = dp_coalescer_new(HOLD_US);
    VcPageHash h;

    make_hash(4, &h);
    dp_coalescer_published(c, &h);
    g_assert_false(dp_coalescer_wait(c, &h, g_get_monotonic_time()));
    g_assert_cmpuint(dp_coalescer_expire(c, G_MAXINT64), ==, 0);
    dp_coalescer_free(NULL);
}

/* Time is only what the caller says it is here: no clock involved. */
static void
test_expire(void)
{
    g_autoptr(DpCoalescer) c = dp_coalescer_new(1000);
    VcPageHash h;
    gint64 d;

    for (guint i = 0; i < 10; i++) {
        make_hash(100 + i, &h);
        g_assert_true(dp_coalescer_claim(c, &h, i < 4 ? 0 : 5000, &d));
    }
    make_hash(100, &h);
    dp_coalescer_published(c, &h);
    /* Nothing lapsed yet at 999, even the published one. */
    g_assert_cmpuint(dp_coalescer_expire(c, 999), ==, 0);
    /* The four claimed at 0 lapse at 1000. */
    g_assert_cmpuint(dp_coalescer_expire(c, 1000), ==, 4);
    g_assert_cmpuint(dp_coalescer_expire(c, 1000), ==, 0);
    g_assert_cmpuint(dp_coalescer_expire(c, 6000), ==, 6);
    /* Expired entries start afresh. */
    g_assert_true(dp_coalescer_claim(c, &h, 7000, &d));
    g_assert_cmpint(d, ==, 8000);
    g_assert_false(dp_coalescer_claim(c, &h, 7999, &d));
    g_assert_cmpint(d, ==, 8000);
    g_assert_true(dp_coalescer_claim(c, &h, 8000, &d));
    g_assert_cmpint(d, ==, 9000);
}

/* Claims of ever new hashes do not pile up entries for ever. */
static void
test_bounded(void)
{
    g_autoptr(DpCoalescer) c = dp_coalescer_new(1000);
    VcPageHash h;
    gint64 d;
    guint left;

    for (guint i = 0; i < 100000; i++) {
        make_hash(i, &h);
        /* One new hash per microsecond: about 1000 live at a time. */
        g_assert_true(dp_coalescer_claim(c, &h, i, &d));
    }
    /* The last 1000 are live; of the lapsed ones, claim sweeps away all
     * but a fraction of the live count. Without sweeps: 100000. */
    left = dp_coalescer_expire(c, G_MAXINT64);
    g_assert_cmpuint(left, >=, 1000);
    g_assert_cmpuint(left, <=, 4000);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/coalesce/two-waiters", test_two_waiters_one_publish);
    g_test_add_func("/coalesce/timeout-reclaim", test_timeout_then_reclaim);
    g_test_add_func("/coalesce/publish-before-wait", test_publish_before_wait);
    g_test_add_func("/coalesce/unknown-hash", test_unknown_hash);
    g_test_add_func("/coalesce/expire", test_expire);
    g_test_add_func("/coalesce/bounded", test_bounded);
    return g_test_run();
}
