/*
 * The probe's arithmetic on made-up timelines (gap, lost probes,
 * unreachable and silent VMs), the choice of a VM's address, and one real
 * probe of the loopback address.
 */
#include "vmm-error.h"
#include "vmm-probe.h"
#include "vmm-report.h"

#define MS 1000 /* microseconds */

/* Probes every 10 ms from @t0 to @t1 (ms); each answered after @rtt ms
 * unless its send time is in [@gap0, @gap1). */
static gint64
feed(VmmEchoLog *log, gint64 t0, gint64 t1, gint64 rtt, gint64 gap0,
     gint64 gap1)
{
    for (gint64 t = t0; t < t1; t += 10) {
        guint64 i = vmm_echo_log_sent(log, t * MS);

        if (t < gap0 || t >= gap1) {
            g_assert_true(vmm_echo_log_answered(log, i, (t + rtt) * MS));
        }
    }
    return t1;
}

/*
 * A migration from @start to @end (ms), probed until @stop: answers after
 * @rtt0 ms before @end and @rtt1 ms after, none to probes sent in [@gap0,
 * @gap1).
 */
static void
timeline(VmmStall *st, gint64 start, gint64 end, gint64 stop, gint64 rtt0,
         gint64 rtt1, gint64 gap0, gint64 gap1)
{
    VmmEchoLog log;

    vmm_stall_init(st);
    vmm_echo_log_init(&log);
    feed(&log, start, end, rtt0, gap0, gap1);
    vmm_echo_log_end(&log, end * MS);
    feed(&log, end, stop, rtt1, gap0, gap1);
    vmm_echo_log_summarize(&log, start * MS, stop * MS, st);
}

/* Answered from site A (RTT 1 ms), lost from 3000 to 3300 ms, then from
 * site B (RTT 40 ms); the migration ran 100-3200 ms. */
static void
test_switchover(void)
{
    VmmStall st;

    timeline(&st, 100, 3200, 3600, 1, 40, 3000, 3300);
    g_assert_cmpint(st.state, ==, VMM_STALL_OK);
    g_assert_cmpint(st.sent, ==, 350);
    g_assert_cmpint(st.lost, ==, 30);
    g_assert_cmpint(st.answered, ==, 320);
    /* Last answer before: 2990 + 1; first after: 3300 + 40. */
    g_assert_cmpint(st.stall_ms, ==, 3340 - 2991);
    g_assert_cmpint(st.stall_at_ms, ==, 2991 - 100);
    g_assert_cmpint(st.silent_ms, ==, VMM_UNKNOWN);
    g_assert_cmpint(st.rtt_before_us, ==, 1 * MS);
    g_assert_cmpint(st.rtt_after_us, ==, 40 * MS);
    g_assert_cmpstr(vmm_stall_state_name(st.state), ==, "ok");
}

/* Routed sites: answers stop at the switchover for good. */
static void
test_unreachable(void)
{
    VmmStall st;

    timeline(&st, 0, 2000, 7000, 1, 1, 1800, G_MAXINT64);
    g_assert_cmpint(st.state, ==, VMM_STALL_UNREACHABLE);
    g_assert_cmpint(st.sent, ==, 700);
    g_assert_cmpint(st.lost, ==, 520);
    g_assert_cmpint(st.stall_ms, ==, VMM_UNKNOWN);
    g_assert_cmpint(st.silent_ms, ==, 7000 - 1791);
    g_assert_cmpint(st.rtt_after_us, ==, VMM_UNKNOWN);
}

/* No answer at all (wrong address, ICMP dropped). */
static void
test_silent(void)
{
    VmmStall st;

    timeline(&st, 0, 400, 500, 1, 1, 0, G_MAXINT64);
    g_assert_cmpint(st.state, ==, VMM_STALL_SILENT);
    g_assert_cmpint(st.sent, ==, 50);
    g_assert_cmpint(st.lost, ==, 50);
    g_assert_cmpint(st.stall_ms, ==, VMM_UNKNOWN);
    g_assert_cmpint(st.rtt_before_us, ==, VMM_UNKNOWN);
}

/* Duplicates, unknown indexes and answers older than the window are not
 * answers; the waiting count follows. */
static void
test_answers(void)
{
    VmmEchoLog log;
    guint64 first;

    vmm_echo_log_init(&log);
    first = vmm_echo_log_sent(&log, 0);
    g_assert_cmpuint(first, ==, 0);
    g_assert_false(vmm_echo_log_answered(&log, 1, 5));
    g_assert_true(vmm_echo_log_answered(&log, 0, 5));
    g_assert_false(vmm_echo_log_answered(&log, 0, 6));
    g_assert_cmpuint(log.answered, ==, 1);

    for (guint i = 0; i < VMM_ECHO_WINDOW + 1; i++) {
        vmm_echo_log_sent(&log, 10 + i);
    }
    /* Probe 1 fell out of the window; probe 2 is its oldest. */
    g_assert_false(vmm_echo_log_answered(&log, 1, 100000));
    g_assert_cmpuint(vmm_echo_log_waiting(&log, 0), ==, VMM_ECHO_WINDOW);
    g_assert_true(vmm_echo_log_answered(&log, 2, 100000));
    g_assert_cmpuint(vmm_echo_log_waiting(&log, 0), ==, VMM_ECHO_WINDOW - 1);
    g_assert_cmpuint(vmm_echo_log_waiting(&log, log.sent - 3), ==, 3);
    g_assert_cmpuint(vmm_echo_log_waiting(&log, log.sent), ==, 0);
}

static void
test_address_pick(void)
{
    static const char *const v4[] = {"fe80::1",     "127.0.0.1",
                                     "169.254.3.4", "2001:db8::5",
                                     "10.77.1.101", NULL};
    static const char *const v6[] = {"::1", "fe80::2", "2001:db8::5", "garbage",
                                     NULL};
    static const char *const none[] = {"127.0.0.1", "fe80::1", "", NULL};

    g_assert_cmpstr(vmm_probe_address_pick(v4), ==, "10.77.1.101");
    g_assert_cmpstr(vmm_probe_address_pick(v6), ==, "2001:db8::5");
    g_assert_null(vmm_probe_address_pick(none));
    g_assert_null(vmm_probe_address_pick(NULL));
    g_assert_true(vmm_probe_address_valid("10.77.1.101"));
    g_assert_true(vmm_probe_address_valid("fd00::2"));
    g_assert_false(vmm_probe_address_valid("10.77.1"));
    g_assert_false(vmm_probe_address_valid("host.example"));
}

static void
test_arp_lookup(void)
{
    static const char xml[] =
        "<domain><devices>\n"
        "  <interface type='bridge'><mac address='52:54:0A:4D:01:65'/>\n"
        "  </interface>\n"
        "  <interface type='network'>\n"
        "    <mac address=\"52:54:00:aa:bb:cc\"/></interface>\n"
        "</devices></domain>\n";
    static const char table[] =
        "IP address       HW type     Flags       HW address            "
        "Mask     Device\n"
        "10.77.1.254      0x1         0x2         52:54:00:00:00:01     *  "
        "      br0\n"
        "10.77.1.102      0x1         0x0         52:54:00:aa:bb:cc     *  "
        "      br0\n"
        "10.77.1.101      0x1         0x2         52:54:0a:4d:01:65     *  "
        "      br0\n";
    g_auto(GStrv) macs = vmm_probe_macs_from_xml(xml);
    g_autofree char *found = NULL;
    const char *const other[] = {"52:54:00:aa:bb:cc", NULL};

    g_assert_cmpuint(g_strv_length(macs), ==, 2);
    g_assert_cmpstr(macs[0], ==, "52:54:0A:4D:01:65");
    g_assert_cmpstr(macs[1], ==, "52:54:00:aa:bb:cc");
    found = vmm_probe_arp_lookup(table, (const char *const *)macs);
    g_assert_cmpstr(found, ==, "10.77.1.101");
    /* An incomplete entry is no address. */
    g_assert_null(vmm_probe_arp_lookup(table, other));
    g_assert_null(vmm_probe_arp_lookup("", other));
}

static gboolean
on_done(gpointer data)
{
    *(gboolean *)data = TRUE;
    return G_SOURCE_REMOVE;
}

static gboolean
on_timeout(gpointer data)
{
    *(gboolean *)data = TRUE;
    return G_SOURCE_REMOVE;
}

/* A real probe of 127.0.0.1: it answers before and after "the
 * migration", so the stall is finite. */
static void
test_loopback(void)
{
    g_autoptr(GMainContext) ctx = g_main_context_new();
    g_autoptr(GError) error = NULL;
    gint64 start = g_get_monotonic_time();
    gboolean done = FALSE, waited = FALSE;
    GSource *timer;
    VmmProbe *probe;
    VmmStall st;

    probe = vmm_probe_start("127.0.0.1", 5, &error);
    if (!probe) {
        g_assert_error(error, VMM_ERROR, VMM_ERROR_IO);
        g_test_skip(error->message);
        return;
    }
    timer = g_timeout_source_new(100);
    g_source_set_callback(timer, on_timeout, &waited, NULL);
    g_source_attach(timer, ctx);
    g_source_unref(timer);
    while (!waited) {
        g_main_context_iteration(ctx, TRUE);
    }
    vmm_probe_finish(probe, g_get_monotonic_time(), ctx, on_done, &done);
    while (!done) {
        g_main_context_iteration(ctx, TRUE);
    }
    vmm_stall_init(&st);
    vmm_probe_join(probe, start, &st);
    g_assert_cmpint(st.state, ==, VMM_STALL_OK);
    g_assert_cmpint(st.sent, >=, 10);
    g_assert_cmpint(st.answered, >=, 10);
    g_assert_cmpint(st.stall_ms, >=, 0);
    g_assert_cmpint(st.stall_ms, <, 2000);
    g_assert_cmpint(st.rtt_after_us, >=, 0);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/stall/switchover", test_switchover);
    g_test_add_func("/stall/unreachable", test_unreachable);
    g_test_add_func("/stall/silent", test_silent);
    g_test_add_func("/stall/answers", test_answers);
    g_test_add_func("/stall/address-pick", test_address_pick);
    g_test_add_func("/stall/arp-lookup", test_arp_lookup);
    g_test_add_func("/stall/loopback", test_loopback);
    return g_test_run();
}
