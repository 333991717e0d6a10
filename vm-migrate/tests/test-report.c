#include <json-glib/json-glib.h>

#include "vmm-report.h"

#define MIB (1024 * 1024)

/*
 * Four VMs: migrated with final page-hash counters, failed on a stock
 * QEMU (no page-hash), migrated with counters sampled at the source, and
 * skipped with nothing known.
 */
static VmmReport *
build_report(void)
{
    VmmReport *r = vmm_report_new();
    VmmVmReport *vm;

    vm = vmm_report_add(r, "web1", "qemu+tcp://10.77.1.1/system",
                        "qemu+tcp://10.77.2.1/system");
    vm->status = VMM_STATUS_MIGRATED;
    vm->start_us = 1000000;
    vm->end_us = 13500000;
    vm->time_ms = 12345;
    vm->downtime_ms = 45;
    vm->data_bytes = 130 * MIB;
    vm->memory_bytes = 128 * MIB;
    vm->normal_pages = 3000;
    vm->page_hash = (VmmPageHash){
        .state = VMM_PAGE_HASH_PRESENT,
        .hashes_sent = 20000,
        .resolved = 19000,
        .misses = 1000,
        .miss_pages_sent = 1000,
        .outstanding = 0,
        .bytes_saved = 77184000,
        .compressed_pages = 1200,
        .compressed_bytes = 3 * MIB,
        .hot_pages = 200,
    };

    vm = vmm_report_add(r, "web2", "qemu+tcp://10.77.1.1/system",
                        "qemu+tcp://10.77.2.1/system");
    vm->status = VMM_STATUS_FAILED;
    vm->error = g_strdup("operation aborted: migration out job: canceled "
                         "by client");
    vm->start_us = 2000000;
    vm->end_us = 7000000;
    vm->memory_bytes = 50 * MIB;
    vm->page_hash.state = VMM_PAGE_HASH_ABSENT;

    vm = vmm_report_add(r, "db1", "qemu:///system",
                        "qemu+tcp://[fd00::2]:16509/system");
    vm->status = VMM_STATUS_MIGRATED;
    vm->start_us = 1500000;
    vm->end_us = 3500000;
    vm->time_ms = 2000;
    vm->downtime_ms = 120;
    vm->data_bytes = 10 * MIB;
    vm->normal_pages = 256;
    vm->page_hash = (VmmPageHash){
        .state = VMM_PAGE_HASH_PRESENT,
        .sampled = TRUE,
        .hashes_sent = 500,
        .resolved = 400,
        .misses = 100,
        .miss_pages_sent = 100,
        .outstanding = 3,
        .bytes_saved = 1622016,
        /* A QEMU before the zstd stream and hot pages. */
        .compressed_pages = VMM_UNKNOWN,
        .compressed_bytes = VMM_UNKNOWN,
        .hot_pages = VMM_UNKNOWN,
    };

    vm = vmm_report_add(r, "idle", "qemu+tcp://10.77.1.1/system",
                        "qemu+tcp://10.77.3.1/system");
    vm->status = VMM_STATUS_SKIPPED;
    vm->error = g_strdup("not started: interrupted");
    return r;
}

static void
test_totals(void)
{
    g_autoptr(VmmReport) r = build_report();
    VmmTotals t;

    vmm_report_totals(r, &t);
    g_assert_cmpuint(t.vms, ==, 4);
    g_assert_cmpuint(t.migrated, ==, 2);
    g_assert_cmpuint(t.failed, ==, 2);
    g_assert_cmpint(t.wall_ms, ==, 12500);
    g_assert_cmpint(t.downtime_max_ms, ==, 120);
    /* web2 sent 50 MiB of memory, its data count unknown. */
    g_assert_cmpint(t.bytes_sent, ==, 190 * MIB);
    g_assert_cmpint(t.normal_pages, ==, 3256);
    g_assert_cmpint(t.hashes_sent, ==, 20500);
    g_assert_cmpint(t.resolved, ==, 19400);
    g_assert_cmpint(t.misses, ==, 1100);
    g_assert_cmpint(t.miss_pages_sent, ==, 1100);
    g_assert_cmpint(t.bytes_saved, ==, 78806016);
    g_assert_cmpint(t.compressed_bytes, ==, 3 * MIB);
    g_assert_cmpint(t.hot_pages, ==, 200);
}

static void
test_totals_unknown(void)
{
    g_autoptr(VmmReport) r = vmm_report_new();
    VmmTotals t;

    vmm_report_add(r, "a", "qemu:///system", "qemu+tcp://h/system");
    vmm_report_totals(r, &t);
    g_assert_cmpuint(t.vms, ==, 1);
    g_assert_cmpuint(t.migrated, ==, 0);
    g_assert_cmpint(t.wall_ms, ==, VMM_UNKNOWN);
    g_assert_cmpint(t.bytes_sent, ==, VMM_UNKNOWN);
    g_assert_cmpint(t.hashes_sent, ==, VMM_UNKNOWN);
}

static JsonObject *
vm_object(JsonArray *vms, guint i)
{
    return json_array_get_object_element(vms, i);
}

static void
assert_null_member(JsonObject *o, const char *name)
{
    g_assert_true(json_object_has_member(o, name));
    g_assert_true(json_object_get_null_member(o, name));
}

static void
test_json(void)
{
    g_autoptr(VmmReport) r = build_report();
    g_autofree char *text = vmm_report_to_json(r);
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) error = NULL;
    JsonObject *root, *o, *ph, *total;
    JsonArray *vms;

    g_assert_true(g_str_has_suffix(text, "}\n"));
    g_assert_true(json_parser_load_from_data(parser, text, -1, &error));
    g_assert_no_error(error);
    root = json_node_get_object(json_parser_get_root(parser));
    g_assert_cmpuint(json_object_get_size(root), ==, 2);
    vms = json_object_get_array_member(root, "vms");
    g_assert_cmpuint(json_array_get_length(vms), ==, 4);

    o = vm_object(vms, 0);
    g_assert_cmpstr(json_object_get_string_member(o, "domain"), ==, "web1");
    g_assert_cmpstr(json_object_get_string_member(o, "from"), ==,
                    "qemu+tcp://10.77.1.1/system");
    g_assert_cmpstr(json_object_get_string_member(o, "to"), ==,
                    "qemu+tcp://10.77.2.1/system");
    g_assert_cmpstr(json_object_get_string_member(o, "status"), ==,
                    "migrated");
    assert_null_member(o, "error");
    g_assert_cmpint(json_object_get_int_member(o, "wall_ms"), ==, 12500);
    g_assert_cmpint(json_object_get_int_member(o, "time_ms"), ==, 12345);
    g_assert_cmpint(json_object_get_int_member(o, "downtime_ms"), ==, 45);
    g_assert_cmpint(json_object_get_int_member(o, "bytes_sent"), ==,
                    130 * MIB);
    g_assert_cmpint(json_object_get_int_member(o, "memory_bytes"), ==,
                    128 * MIB);
    g_assert_cmpint(json_object_get_int_member(o, "normal_pages"), ==, 3000);
    g_assert_cmpstr(json_object_get_string_member(o, "page_hash_status"), ==,
                    "present");
    ph = json_object_get_object_member(o, "page_hash");
    g_assert_cmpint(json_object_get_int_member(ph, "hashes_sent"), ==,
                    20000);
    g_assert_cmpint(json_object_get_int_member(ph, "resolved"), ==, 19000);
    g_assert_cmpint(json_object_get_int_member(ph, "misses"), ==, 1000);
    g_assert_cmpint(json_object_get_int_member(ph, "miss_pages_sent"), ==,
                    1000);
    /* Zero is a value, not unknown. */
    g_assert_cmpint(json_object_get_int_member(ph, "outstanding"), ==, 0);
    g_assert_cmpint(json_object_get_int_member(ph, "bytes_saved"), ==,
                    77184000);
    g_assert_false(json_object_get_boolean_member(ph, "sampled"));
    g_assert_cmpint(json_object_get_int_member(ph, "compressed_pages"), ==,
                    1200);
    g_assert_cmpint(json_object_get_int_member(ph, "compressed_bytes"), ==,
                    3 * MIB);
    g_assert_cmpint(json_object_get_int_member(ph, "hot_pages"), ==, 200);

    /* A stock QEMU: page-hash absent is null, not zeros. */
    o = vm_object(vms, 1);
    g_assert_cmpstr(json_object_get_string_member(o, "status"), ==,
                    "failed");
    g_assert_cmpstr(json_object_get_string_member(o, "error"), ==,
                    "operation aborted: migration out job: canceled by "
                    "client");
    assert_null_member(o, "time_ms");
    assert_null_member(o, "downtime_ms");
    assert_null_member(o, "normal_pages");
    g_assert_cmpint(json_object_get_int_member(o, "bytes_sent"), ==,
                    50 * MIB);
    g_assert_cmpstr(json_object_get_string_member(o, "page_hash_status"), ==,
                    "absent");
    assert_null_member(o, "page_hash");

    o = vm_object(vms, 2);
    ph = json_object_get_object_member(o, "page_hash");
    g_assert_true(json_object_get_boolean_member(ph, "sampled"));
    g_assert_cmpint(json_object_get_int_member(ph, "outstanding"), ==, 3);
    /* Counters this QEMU does not have are null. */
    assert_null_member(ph, "compressed_bytes");
    assert_null_member(ph, "hot_pages");

    o = vm_object(vms, 3);
    g_assert_cmpstr(json_object_get_string_member(o, "status"), ==,
                    "skipped");
    assert_null_member(o, "wall_ms");
    g_assert_cmpstr(json_object_get_string_member(o, "page_hash_status"), ==,
                    "unknown");
    assert_null_member(o, "page_hash");

    total = json_object_get_object_member(root, "total");
    g_assert_cmpint(json_object_get_int_member(total, "vms"), ==, 4);
    g_assert_cmpint(json_object_get_int_member(total, "migrated"), ==, 2);
    g_assert_cmpint(json_object_get_int_member(total, "failed"), ==, 2);
    g_assert_cmpint(json_object_get_int_member(total, "wall_ms"), ==, 12500);
    g_assert_cmpint(json_object_get_int_member(total, "downtime_max_ms"), ==,
                    120);
    g_assert_cmpint(json_object_get_int_member(total, "bytes_sent"), ==,
                    190 * MIB);
    g_assert_cmpint(json_object_get_int_member(total, "hashes_sent"), ==,
                    20500);
    g_assert_cmpint(json_object_get_int_member(total, "bytes_saved"), ==,
                    78806016);
    g_assert_cmpint(json_object_get_int_member(total, "compressed_bytes"), ==,
                    3 * MIB);
    g_assert_cmpint(json_object_get_int_member(total, "hot_pages"), ==, 200);
}

static void
test_text(void)
{
    g_autoptr(VmmReport) r = build_report();
    g_autofree char *text = vmm_report_to_text(r);
    static const char expected[] =
        "DOMAIN  FROM            TO               STATUS    TIME s  "
        "DOWNTIME ms  MiB SENT  HASHES  SITE HITS  MISSES  FULL PAGES  "
        "SAVED MiB  ZSTD MiB  HOT\n"
        "web1    10.77.1.1       10.77.2.1        migrated    12.3           "
        "45     130.0   20000      19000    1000        3000       73.6       "
        "3.0  200\n"
        "web2    10.77.1.1       10.77.2.1        failed         -            "
        "-      50.0     n/a        n/a     n/a           -        n/a       "
        "n/a  n/a\n"
        "db1     qemu:///system  [fd00::2]:16509  migrated     2.0          "
        "120      10.0    ~500       ~400    ~100         256       ~1.5         "
        "-    -\n"
        "idle    10.77.1.1       10.77.3.1        skipped        -            "
        "-         -       -          -       -           -          -         "
        "-    -\n"
        "total                                    2/4 ok      12.5          "
        "120     190.0   20500      19400    1100        3256       75.2       "
        "3.0  200\n"
        "~ page-hash counters sampled at the source during the migration, "
        "not final values\n"
        "web2: failed: operation aborted: migration out job: canceled by "
        "client\n"
        "idle: skipped: not started: interrupted\n";

    g_assert_cmpstr(text, ==, expected);
}

/* Three probed VMs and one not: a stall, one lost after its move, one
 * whose address was unknown. */
static VmmReport *
build_probed(void)
{
    VmmReport *r = vmm_report_new();
    VmmVmReport *vm;

    vm = vmm_report_add(r, "c1", "qemu+tcp://10.77.1.1/system",
                        "qemu+tcp://10.77.2.2/system");
    vm->status = VMM_STATUS_MIGRATED;
    vm->downtime_ms = 290;
    vm->stall = (VmmStall){
        .state = VMM_STALL_OK,
        .address = g_strdup("10.77.1.101"),
        .address_source = g_strdup("arp"),
        .interval_ms = 10,
        .sent = 600,
        .answered = 560,
        .lost = 40,
        .stall_ms = 412,
        .stall_at_ms = 4210,
        .silent_ms = VMM_UNKNOWN,
        .rtt_before_us = 310,
        .rtt_after_us = 40500,
    };

    vm = vmm_report_add(r, "c2", "qemu+tcp://10.77.1.1/system",
                        "qemu+tcp://10.77.2.2/system");
    vm->status = VMM_STATUS_MIGRATED;
    vm->downtime_ms = 305;
    vm->stall = (VmmStall){
        .state = VMM_STALL_UNREACHABLE,
        .address = g_strdup("10.77.1.102"),
        .address_source = g_strdup("option"),
        .interval_ms = 10,
        .sent = 900,
        .answered = 400,
        .lost = 500,
        .stall_ms = VMM_UNKNOWN,
        .stall_at_ms = VMM_UNKNOWN,
        .silent_ms = 5010,
        .rtt_before_us = 250,
        .rtt_after_us = VMM_UNKNOWN,
    };

    vm = vmm_report_add(r, "c3", "qemu+tcp://10.77.1.2/system",
                        "qemu+tcp://10.77.2.2/system");
    vm->status = VMM_STATUS_MIGRATED;
    vm->downtime_ms = 280;
    vmm_stall_init(&vm->stall);
    vm->stall.state = VMM_STALL_NO_ADDRESS;
    vm->stall.interval_ms = 10;
    vm->stall.error = g_strdup("libvirt knows no address of domain 'c3'");

    vmm_report_add(r, "c4", "qemu+tcp://10.77.1.2/system",
                   "qemu+tcp://10.77.2.2/system");
    return r;
}

static void
test_probe_json(void)
{
    g_autoptr(VmmReport) r = build_probed();
    g_autofree char *text = vmm_report_to_json(r);
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) error = NULL;
    JsonObject *root, *p;
    JsonArray *vms;

    g_assert_true(json_parser_load_from_data(parser, text, -1, &error));
    g_assert_no_error(error);
    root = json_node_get_object(json_parser_get_root(parser));
    vms = json_object_get_array_member(root, "vms");

    p = json_object_get_object_member(vm_object(vms, 0), "probe");
    g_assert_cmpstr(json_object_get_string_member(p, "status"), ==, "ok");
    g_assert_cmpstr(json_object_get_string_member(p, "address"), ==,
                    "10.77.1.101");
    g_assert_cmpstr(json_object_get_string_member(p, "address_source"), ==,
                    "arp");
    assert_null_member(p, "error");
    g_assert_cmpint(json_object_get_int_member(p, "interval_ms"), ==, 10);
    g_assert_cmpint(json_object_get_int_member(p, "sent"), ==, 600);
    g_assert_cmpint(json_object_get_int_member(p, "answered"), ==, 560);
    g_assert_cmpint(json_object_get_int_member(p, "lost"), ==, 40);
    g_assert_cmpint(json_object_get_int_member(p, "stall_ms"), ==, 412);
    g_assert_cmpint(json_object_get_int_member(p, "stall_at_ms"), ==, 4210);
    assert_null_member(p, "silent_ms");
    g_assert_cmpint(json_object_get_int_member(p, "rtt_before_us"), ==, 310);
    g_assert_cmpint(json_object_get_int_member(p, "rtt_after_us"), ==,
                    40500);

    p = json_object_get_object_member(vm_object(vms, 1), "probe");
    g_assert_cmpstr(json_object_get_string_member(p, "status"), ==,
                    "unreachable");
    assert_null_member(p, "stall_ms");
    g_assert_cmpint(json_object_get_int_member(p, "silent_ms"), ==, 5010);

    p = json_object_get_object_member(vm_object(vms, 2), "probe");
    g_assert_cmpstr(json_object_get_string_member(p, "status"), ==,
                    "no-address");
    assert_null_member(p, "address");
    assert_null_member(p, "sent");
    g_assert_cmpstr(json_object_get_string_member(p, "error"), ==,
                    "libvirt knows no address of domain 'c3'");

    assert_null_member(vm_object(vms, 3), "probe");
    /* Only finite stalls make the maximum. */
    g_assert_cmpint(json_object_get_int_member(
                        json_object_get_object_member(root, "total"),
                        "stall_max_ms"),
                    ==, 412);
}

static void
test_probe_text(void)
{
    g_autoptr(VmmReport) r = build_probed();
    g_autofree char *text = vmm_report_to_text(r);
    static const char expected[] =
        "DOMAIN  FROM       TO         STATUS    TIME s  DOWNTIME ms  "
        "STALL ms  MiB SENT  HASHES  SITE HITS  MISSES  FULL PAGES  "
        "SAVED MiB\n"
        "c1      10.77.1.1  10.77.2.2  migrated       -          290       "
        "412         -       -          -       -           -          -\n"
        "c2      10.77.1.1  10.77.2.2  migrated       -          305      "
        "lost         -       -          -       -           -          -\n"
        "c3      10.77.1.2  10.77.2.2  migrated       -          280         "
        "-         -       -          -       -           -          -\n"
        "c4      10.77.1.2  10.77.2.2  queued         -            -         "
        "-         -       -          -       -           -          -\n"
        "total                         3/4 ok         -          305       "
        "412         -       -          -       -           -          -\n"
        "c1: probe 10.77.1.101 (arp): stall 412 ms at 4.21 s (600 sent, 40 "
        "lost, RTT 0.3 ms before, 40.5 ms after)\n"
        "c2: probe 10.77.1.102 (option): unreachable after the migration, no "
        "answer for the last 5.0 s (900 sent, 500 lost, RTT 0.2 ms before)\n"
        "c3: probe: address unknown: libvirt knows no address of domain "
        "'c3'; give --probe-target c3=ADDR\n";

    g_assert_cmpstr(text, ==, expected);
}

static void
test_uri_short(void)
{
    static const char *const cases[][2] = {
        {"qemu+tcp://10.77.2.1/system", "10.77.2.1"},
        {"qemu+ssh://root@node-3.site-b/system?keyfile=/k", "node-3.site-b"},
        {"qemu+tcp://10.77.2.1:16509/system", "10.77.2.1:16509"},
        {"qemu:///system", "qemu:///system"},
        {"test:///default", "test:///default"},
    };

    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *s = vmm_uri_short(cases[i][0]);

        g_assert_cmpstr(s, ==, cases[i][1]);
    }
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/report/totals", test_totals);
    g_test_add_func("/report/totals-unknown", test_totals_unknown);
    g_test_add_func("/report/json", test_json);
    g_test_add_func("/report/text", test_text);
    g_test_add_func("/report/probe-json", test_probe_json);
    g_test_add_func("/report/probe-text", test_probe_text);
    g_test_add_func("/report/uri-short", test_uri_short);
    return g_test_run();
}
