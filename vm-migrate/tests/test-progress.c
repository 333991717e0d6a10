#include <string.h>

#include "vmm-error.h"
#include "vmm-progress.h"
#include "vmm-virt.h"

#define MIB (1024 * 1024)

/* Job statistics as libvirt hands them over. */
static void
test_from_params(void)
{
    virTypedParameterPtr params = NULL;
    int n = 0, max = 0;
    VmmJobStats s;
    VmmVmReport vm = {0};

    virTypedParamsAddULLong(&params, &n, &max, VIR_DOMAIN_JOB_TIME_ELAPSED,
                            2500);
    virTypedParamsAddULLong(&params, &n, &max, VIR_DOMAIN_JOB_DOWNTIME, 42);
    virTypedParamsAddULLong(&params, &n, &max,
                            VIR_DOMAIN_JOB_MEMORY_PROCESSED, 64 * MIB);
    virTypedParamsAddULLong(&params, &n, &max, VIR_DOMAIN_JOB_MEMORY_TOTAL,
                            256 * MIB);
    virTypedParamsAddULLong(&params, &n, &max,
                            VIR_DOMAIN_JOB_MEMORY_REMAINING, 192 * MIB);
    virTypedParamsAddULLong(&params, &n, &max, VIR_DOMAIN_JOB_MEMORY_NORMAL,
                            16384);
    virTypedParamsAddULLong(&params, &n, &max,
                            VIR_DOMAIN_JOB_MEMORY_ITERATION, 2);
    /* A type we do not expect is ignored, not misread. */
    virTypedParamsAddInt(&params, &n, &max, VIR_DOMAIN_JOB_DATA_PROCESSED,
                         7);

    vmm_job_stats_from_params(&s, VIR_DOMAIN_JOB_UNBOUNDED, params, n);
    virTypedParamsFree(params, n);
    g_assert_cmpint(s.type, ==, VIR_DOMAIN_JOB_UNBOUNDED);
    g_assert_cmpint(s.elapsed_ms, ==, 2500);
    g_assert_cmpint(s.downtime_ms, ==, 42);
    g_assert_cmpint(s.memory_processed, ==, 64 * MIB);
    g_assert_cmpint(s.memory_total, ==, 256 * MIB);
    g_assert_cmpint(s.memory_remaining, ==, 192 * MIB);
    g_assert_cmpint(s.memory_normal, ==, 16384);
    g_assert_cmpint(s.memory_iteration, ==, 2);
    g_assert_cmpint(s.data_processed, ==, VMM_UNKNOWN);
    g_assert_cmpint(s.memory_bps, ==, VMM_UNKNOWN);

    vm.data_bytes = 1;
    vmm_job_stats_to_report(&s, &vm);
    g_assert_cmpint(vm.time_ms, ==, 2500);
    g_assert_cmpint(vm.downtime_ms, ==, 42);
    g_assert_cmpint(vm.data_bytes, ==, VMM_UNKNOWN);
    g_assert_cmpint(vm.memory_bytes, ==, 64 * MIB);
    g_assert_cmpint(vm.normal_pages, ==, 16384);
}

static VmmJobStats
stats_at(gint64 processed, gint64 remaining)
{
    VmmJobStats s;

    vmm_job_stats_init(&s);
    s.type = VIR_DOMAIN_JOB_UNBOUNDED;
    s.memory_total = 256 * MIB;
    s.memory_processed = processed;
    s.memory_remaining = remaining;
    s.memory_iteration = 1;
    return s;
}

static void
test_rate_and_percent(void)
{
    VmmProgress p;
    VmmJobStats s;

    vmm_progress_init(&p);
    g_assert_cmpint(vmm_progress_percent(&p), ==, -1);

    s = stats_at(0, 256 * MIB);
    vmm_progress_update(&p, &s, 1000000);
    g_assert_cmpint(vmm_progress_percent(&p), ==, 0);
    g_assert_cmpfloat(p.rate_bps, <, 0);

    /* 32 MiB in half a second, no rate from libvirt: 64 MiB/s. */
    s = stats_at(32 * MIB, 224 * MIB);
    vmm_progress_update(&p, &s, 1500000);
    g_assert_cmpint(vmm_progress_percent(&p), ==, 12);
    g_assert_cmpfloat_with_epsilon(p.rate_bps, 64.0 * MIB, 1.0);

    /* libvirt's own rate wins. */
    s = stats_at(64 * MIB, 192 * MIB);
    s.memory_bps = 10 * MIB;
    vmm_progress_update(&p, &s, 2000000);
    g_assert_cmpfloat_with_epsilon(p.rate_bps, 10.0 * MIB, 1.0);

    /* Dirty pages resent: remaining may exceed what a pass would leave,
     * never a negative percentage. */
    s = stats_at(300 * MIB, 400 * MIB);
    vmm_progress_update(&p, &s, 2500000);
    g_assert_cmpint(vmm_progress_percent(&p), ==, 0);
}

static void
test_format(void)
{
    VmmProgress p;
    VmmJobStats s;
    g_autofree char *queued = NULL, *starting = NULL, *running = NULL;
    g_autofree char *unknown = NULL, *done = NULL;

    vmm_progress_init(&p);
    queued = vmm_progress_format("web1", VMM_STATUS_QUEUED, &p, 6);
    g_assert_cmpstr(queued, ==, "web1    queued");
    starting = vmm_progress_format("web1", VMM_STATUS_RUNNING, &p, 6);
    g_assert_cmpstr(starting, ==, "web1    starting");

    s = stats_at(64 * MIB, 192 * MIB);
    s.memory_iteration = 2;
    s.data_processed = 65 * MIB;
    s.data_remaining = 192 * MIB;
    s.memory_bps = 16 * MIB;
    vmm_progress_update(&p, &s, 1000000);
    running = vmm_progress_format("web1", VMM_STATUS_RUNNING, &p, 6);
    g_assert_cmpstr(running, ==,
                    "web1    pass 2    25%     65.0 MiB sent    16.0 MiB/s    "
                    "192.0 MiB left  ~12 s");

    vmm_progress_init(&p);
    vmm_job_stats_init(&s);
    s.type = VIR_DOMAIN_JOB_UNBOUNDED;
    vmm_progress_update(&p, &s, 1000000);
    unknown = vmm_progress_format("db", VMM_STATUS_RUNNING, &p, 0);
    g_assert_cmpstr(unknown, ==,
                    "db  copying     -        - MiB sent       - MiB/s        "
                    "- MiB left");

    done = vmm_progress_format("db", VMM_STATUS_FAILED, &p, 0);
    g_assert_cmpstr(done, ==, "db  failed");
}

static void
test_page_hash_present(void)
{
    g_autoptr(GError) error = NULL;
    VmmPageHash ph = {0};

    g_assert_true(vmm_page_hash_parse(
        "{\"return\": {\"status\": \"completed\", \"page-hash\": "
        "{\"hashes-sent\": 20000, \"resolved\": 19000, \"misses\": 1000, "
        "\"miss-pages-sent\": 1000, \"outstanding\": 0, "
        "\"bytes-saved\": 77184000}}, \"id\": \"libvirt-42\"}",
        &ph, &error));
    g_assert_no_error(error);
    g_assert_cmpint(ph.state, ==, VMM_PAGE_HASH_PRESENT);
    g_assert_false(ph.sampled);
    g_assert_cmpuint(ph.hashes_sent, ==, 20000);
    g_assert_cmpuint(ph.resolved, ==, 19000);
    g_assert_cmpuint(ph.misses, ==, 1000);
    g_assert_cmpuint(ph.miss_pages_sent, ==, 1000);
    g_assert_cmpuint(ph.outstanding, ==, 0);
    g_assert_cmpuint(ph.bytes_saved, ==, 77184000);
    /* A QEMU before 0008 and 0009 has no such counters. */
    g_assert_cmpint(ph.compressed_pages, ==, VMM_UNKNOWN);
    g_assert_cmpint(ph.compressed_bytes, ==, VMM_UNKNOWN);
    g_assert_cmpint(ph.hot_pages, ==, VMM_UNKNOWN);
}

static void
test_page_hash_compressed(void)
{
    g_autoptr(GError) error = NULL;
    VmmPageHash ph = {0};

    g_assert_true(vmm_page_hash_parse(
        "{\"return\": {\"page-hash\": {\"hashes-sent\": 20000, "
        "\"resolved\": 19000, \"misses\": 1000, \"miss-pages-sent\": 1000, "
        "\"outstanding\": 0, \"bytes-saved\": 77184000, "
        "\"compressed-pages\": 1300, \"compressed-bytes\": 2100000, "
        "\"hot-pages\": 300}}}",
        &ph, &error));
    g_assert_no_error(error);
    g_assert_cmpint(ph.compressed_pages, ==, 1300);
    g_assert_cmpint(ph.compressed_bytes, ==, 2100000);
    g_assert_cmpint(ph.hot_pages, ==, 300);

    /* Present but not a count: refused like the older counters. */
    g_assert_false(vmm_page_hash_parse(
        "{\"return\": {\"page-hash\": {\"hashes-sent\": 1, "
        "\"resolved\": 1, \"misses\": 0, \"miss-pages-sent\": 0, "
        "\"outstanding\": 0, \"bytes-saved\": 0, \"hot-pages\": -4}}}",
        &ph, &error));
    g_assert_error(error, VMM_ERROR, VMM_ERROR_INVALID);
}

static void
test_page_hash_absent(void)
{
    static const char *const replies[] = {
        /* A stock QEMU after an incoming migration. */
        "{\"return\": {\"status\": \"completed\", \"ram\": {\"normal\": 3}}}",
        "{\"return\": {}}",
        "{\"return\": {\"page-hash\": null}}",
    };

    for (guint i = 0; i < G_N_ELEMENTS(replies); i++) {
        g_autoptr(GError) error = NULL;
        VmmPageHash ph = {.state = VMM_PAGE_HASH_PRESENT, .hashes_sent = 9};

        g_assert_true(vmm_page_hash_parse(replies[i], &ph, &error));
        g_assert_no_error(error);
        g_assert_cmpint(ph.state, ==, VMM_PAGE_HASH_ABSENT);
        g_assert_cmpuint(ph.hashes_sent, ==, 0);
    }
}

static void
test_page_hash_bad(void)
{
    static const struct {
        const char *reply;
        const char *message;
    } cases[] = {
        {"{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The "
         "command query-migrate has not been found\"}}",
         "QEMU refused query-migrate: The command query-migrate has not "
         "been found"},
        {"[1, 2]", "query-migrate reply is not an object"},
        {"{\"id\": 1}", "query-migrate reply has no 'return' object"},
        {"{\"return\": {\"page-hash\": 7}}",
         "query-migrate 'page-hash' is not an object"},
        {"{\"return\": {\"page-hash\": {\"hashes-sent\": 1, \"resolved\": 1, "
         "\"misses\": 0, \"miss-pages-sent\": 0, \"outstanding\": 0}}}",
         "page-hash counter 'bytes-saved' missing or not a count"},
        {"{\"return\": {\"page-hash\": {\"hashes-sent\": -1, \"resolved\": 1, "
         "\"misses\": 0, \"miss-pages-sent\": 0, \"outstanding\": 0, "
         "\"bytes-saved\": 0}}}",
         "page-hash counter 'hashes-sent' missing or not a count"},
        {"{\"return\": {\"page-hash\": {\"hashes-sent\": \"1\", "
         "\"resolved\": 1, \"misses\": 0, \"miss-pages-sent\": 0, "
         "\"outstanding\": 0, \"bytes-saved\": 0}}}",
         "page-hash counter 'hashes-sent' missing or not a count"},
    };

    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GError) error = NULL;
        VmmPageHash ph = {.state = VMM_PAGE_HASH_UNKNOWN};

        g_test_message("case %u", i);
        g_assert_false(vmm_page_hash_parse(cases[i].reply, &ph, &error));
        g_assert_nonnull(error);
        g_assert_cmpstr(error->message, ==, cases[i].message);
        g_assert_cmpint(ph.state, ==, VMM_PAGE_HASH_UNKNOWN);
    }
}

static void
test_page_hash_not_json(void)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *huge = g_strnfill(VMM_QMP_REPLY_MAX + 1, ' ');
    VmmPageHash ph;

    g_assert_false(vmm_page_hash_parse("{\"return\": ", &ph, &error));
    g_assert_error(error, VMM_ERROR, VMM_ERROR_INVALID);
    g_assert_true(g_str_has_prefix(error->message,
                                   "query-migrate reply is not JSON: "));
    g_clear_error(&error);
    g_assert_false(vmm_page_hash_parse(huge, &ph, &error));
    g_assert_error(error, VMM_ERROR, VMM_ERROR_TOO_LARGE);
}

static void
test_page_hash_merge(void)
{
    const VmmPageHash unknown = {.state = VMM_PAGE_HASH_UNKNOWN};
    const VmmPageHash absent = {.state = VMM_PAGE_HASH_ABSENT};
    const VmmPageHash dest = {.state = VMM_PAGE_HASH_PRESENT,
                              .hashes_sent = 10,
                              .compressed_bytes = 900,
                              .hot_pages = VMM_UNKNOWN};
    const VmmPageHash sample = {.state = VMM_PAGE_HASH_PRESENT,
                                .sampled = TRUE,
                                .hashes_sent = 7,
                                .compressed_bytes = 600,
                                .hot_pages = 5};
    VmmPageHash m;

    /* Final counters beat a sample; a sample beats none. */
    m = vmm_page_hash_merge(&dest, &sample);
    g_assert_false(m.sampled);
    g_assert_cmpuint(m.hashes_sent, ==, 10);
    g_assert_cmpint(m.compressed_bytes, ==, 900);
    /* Only the source counts hot pages: its sample fills them in. */
    g_assert_cmpint(m.hot_pages, ==, 5);
    m = vmm_page_hash_merge(&absent, &sample);
    g_assert_true(m.sampled);
    g_assert_cmpuint(m.hashes_sent, ==, 7);
    m = vmm_page_hash_merge(&unknown, &sample);
    g_assert_cmpint(m.state, ==, VMM_PAGE_HASH_PRESENT);
    /* Either side saying "none" makes a stock QEMU n/a, not unknown. */
    m = vmm_page_hash_merge(&absent, &unknown);
    g_assert_cmpint(m.state, ==, VMM_PAGE_HASH_ABSENT);
    m = vmm_page_hash_merge(&unknown, &absent);
    g_assert_cmpint(m.state, ==, VMM_PAGE_HASH_ABSENT);
    m = vmm_page_hash_merge(&unknown, &unknown);
    g_assert_cmpint(m.state, ==, VMM_PAGE_HASH_UNKNOWN);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    /* libvirt's typed-parameter helpers need it initialised. */
    vmm_virt_init();
    g_test_add_func("/progress/from-params", test_from_params);
    g_test_add_func("/progress/rate-and-percent", test_rate_and_percent);
    g_test_add_func("/progress/format", test_format);
    g_test_add_func("/progress/page-hash/present", test_page_hash_present);
    g_test_add_func("/progress/page-hash/compressed",
                    test_page_hash_compressed);
    g_test_add_func("/progress/page-hash/absent", test_page_hash_absent);
    g_test_add_func("/progress/page-hash/bad", test_page_hash_bad);
    g_test_add_func("/progress/page-hash/not-json", test_page_hash_not_json);
    g_test_add_func("/progress/page-hash/merge", test_page_hash_merge);
    return g_test_run();
}
