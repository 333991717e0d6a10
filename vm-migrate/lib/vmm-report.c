#include <json-glib/json-glib.h>
#include <string.h>

#include "vmm-report.h"

static void
vm_report_free(gpointer data)
{
    VmmVmReport *vm = data;

    if (!vm) {
        return;
    }
    g_free(vm->domain);
    g_free(vm->source_uri);
    g_free(vm->dest_uri);
    g_free(vm->error);
    vmm_stall_clear(&vm->stall);
    g_free(vm);
}

VmmReport *
vmm_report_new(void)
{
    VmmReport *r = g_new0(VmmReport, 1);

    r->vms = g_ptr_array_new_with_free_func(vm_report_free);
    return r;
}

void
vmm_report_free(VmmReport *report)
{
    if (!report) {
        return;
    }
    g_ptr_array_unref(report->vms);
    g_free(report);
}

VmmVmReport *
vmm_report_add(VmmReport *report, const char *domain, const char *source_uri,
               const char *dest_uri)
{
    VmmVmReport *vm = g_new0(VmmVmReport, 1);

    vm->domain = g_strdup(domain);
    vm->source_uri = g_strdup(source_uri);
    vm->dest_uri = g_strdup(dest_uri);
    vm->status = VMM_STATUS_QUEUED;
    vm->time_ms = VMM_UNKNOWN;
    vm->downtime_ms = VMM_UNKNOWN;
    vm->data_bytes = VMM_UNKNOWN;
    vm->memory_bytes = VMM_UNKNOWN;
    vm->normal_pages = VMM_UNKNOWN;
    vm->page_hash.state = VMM_PAGE_HASH_UNKNOWN;
    vmm_stall_init(&vm->stall);
    g_ptr_array_add(report->vms, vm);
    return vm;
}

VmmVmReport *
vmm_report_get(const VmmReport *report, guint i)
{
    g_return_val_if_fail(i < report->vms->len, NULL);
    return g_ptr_array_index(report->vms, i);
}

const char *
vmm_status_name(VmmStatus status)
{
    switch (status) {
    case VMM_STATUS_QUEUED:
        return "queued";
    case VMM_STATUS_RUNNING:
        return "running";
    case VMM_STATUS_MIGRATED:
        return "migrated";
    case VMM_STATUS_FAILED:
        return "failed";
    case VMM_STATUS_SKIPPED:
        return "skipped";
    }
    g_return_val_if_reached("unknown");
}

gint64
vmm_vm_report_bytes_sent(const VmmVmReport *vm)
{
    return vm->data_bytes != VMM_UNKNOWN ? vm->data_bytes : vm->memory_bytes;
}

/* Add @value to @sum unless unknown; a sum of nothing known is unknown. */
static void
sum_known(gint64 *sum, gint64 value)
{
    if (value < 0) {
        return;
    }
    *sum = (*sum < 0 ? 0 : *sum) + value;
}

static gint64
vm_wall_ms(const VmmVmReport *vm)
{
    if (!vm->start_us || !vm->end_us) {
        return VMM_UNKNOWN;
    }
    return (vm->end_us - vm->start_us) / 1000;
}

void
vmm_report_totals(const VmmReport *report, VmmTotals *t)
{
    gint64 first = 0, last = 0;

    *t = (VmmTotals){
        .wall_ms = VMM_UNKNOWN,
        .downtime_max_ms = VMM_UNKNOWN,
        .stall_max_ms = VMM_UNKNOWN,
        .bytes_sent = VMM_UNKNOWN,
        .normal_pages = VMM_UNKNOWN,
        .hashes_sent = VMM_UNKNOWN,
        .resolved = VMM_UNKNOWN,
        .misses = VMM_UNKNOWN,
        .miss_pages_sent = VMM_UNKNOWN,
        .bytes_saved = VMM_UNKNOWN,
        .compressed_bytes = VMM_UNKNOWN,
        .hot_pages = VMM_UNKNOWN,
    };
    for (guint i = 0; i < report->vms->len; i++) {
        const VmmVmReport *vm = g_ptr_array_index(report->vms, i);
        const VmmPageHash *ph = &vm->page_hash;

        t->vms++;
        if (vm->status == VMM_STATUS_MIGRATED) {
            t->migrated++;
        } else if (vm->status == VMM_STATUS_FAILED ||
                   vm->status == VMM_STATUS_SKIPPED) {
            t->failed++;
        }
        if (vm->start_us && (!first || vm->start_us < first)) {
            first = vm->start_us;
        }
        if (vm->end_us && vm->end_us > last) {
            last = vm->end_us;
        }
        t->downtime_max_ms = MAX(t->downtime_max_ms, vm->downtime_ms);
        if (vm->stall.state == VMM_STALL_OK) {
            t->stall_max_ms = MAX(t->stall_max_ms, vm->stall.stall_ms);
        }
        sum_known(&t->bytes_sent, vmm_vm_report_bytes_sent(vm));
        sum_known(&t->normal_pages, vm->normal_pages);
        if (ph->state == VMM_PAGE_HASH_PRESENT) {
            sum_known(&t->hashes_sent, ph->hashes_sent);
            sum_known(&t->resolved, ph->resolved);
            sum_known(&t->misses, ph->misses);
            sum_known(&t->miss_pages_sent, ph->miss_pages_sent);
            sum_known(&t->bytes_saved, ph->bytes_saved);
            sum_known(&t->compressed_bytes, ph->compressed_bytes);
            sum_known(&t->hot_pages, ph->hot_pages);
        }
    }
    if (first && last >= first) {
        t->wall_ms = (last - first) / 1000;
    }
}

/* ---- JSON ---- */

static void
json_int_or_null(JsonBuilder *b, const char *name, gint64 value)
{
    json_builder_set_member_name(b, name);
    if (value < 0) {
        json_builder_add_null_value(b);
    } else {
        json_builder_add_int_value(b, value);
    }
}

static void
json_string_or_null(JsonBuilder *b, const char *name, const char *value)
{
    json_builder_set_member_name(b, name);
    if (value) {
        json_builder_add_string_value(b, value);
    } else {
        json_builder_add_null_value(b);
    }
}

static const char *
page_hash_state_name(VmmPageHashState state)
{
    switch (state) {
    case VMM_PAGE_HASH_UNKNOWN:
        return "unknown";
    case VMM_PAGE_HASH_ABSENT:
        return "absent";
    case VMM_PAGE_HASH_PRESENT:
        return "present";
    }
    g_return_val_if_reached("unknown");
}

static void
json_page_hash(JsonBuilder *b, const VmmPageHash *ph)
{
    json_builder_set_member_name(b, "page_hash_status");
    json_builder_add_string_value(b, page_hash_state_name(ph->state));
    json_builder_set_member_name(b, "page_hash");
    if (ph->state != VMM_PAGE_HASH_PRESENT) {
        json_builder_add_null_value(b);
        return;
    }
    json_builder_begin_object(b);
    json_int_or_null(b, "hashes_sent", (gint64)ph->hashes_sent);
    json_int_or_null(b, "resolved", (gint64)ph->resolved);
    json_int_or_null(b, "misses", (gint64)ph->misses);
    json_int_or_null(b, "miss_pages_sent", (gint64)ph->miss_pages_sent);
    json_int_or_null(b, "outstanding", (gint64)ph->outstanding);
    json_int_or_null(b, "bytes_saved", (gint64)ph->bytes_saved);
    json_int_or_null(b, "compressed_pages", ph->compressed_pages);
    json_int_or_null(b, "compressed_bytes", ph->compressed_bytes);
    json_int_or_null(b, "hot_pages", ph->hot_pages);
    json_builder_set_member_name(b, "sampled");
    json_builder_add_boolean_value(b, ph->sampled);
    json_builder_end_object(b);
}

/* "probe": null unless asked for. */
static void
json_stall(JsonBuilder *b, const VmmStall *st)
{
    json_builder_set_member_name(b, "probe");
    if (st->state == VMM_STALL_OFF) {
        json_builder_add_null_value(b);
        return;
    }
    json_builder_begin_object(b);
    json_string_or_null(b, "status", vmm_stall_state_name(st->state));
    json_string_or_null(b, "address", st->address);
    json_string_or_null(b, "address_source", st->address_source);
    json_string_or_null(b, "error", st->error);
    json_int_or_null(b, "interval_ms", st->interval_ms);
    json_int_or_null(b, "sent", st->sent);
    json_int_or_null(b, "answered", st->answered);
    json_int_or_null(b, "lost", st->lost);
    json_int_or_null(b, "stall_ms", st->stall_ms);
    json_int_or_null(b, "stall_at_ms", st->stall_at_ms);
    json_int_or_null(b, "silent_ms", st->silent_ms);
    json_int_or_null(b, "rtt_before_us", st->rtt_before_us);
    json_int_or_null(b, "rtt_after_us", st->rtt_after_us);
    json_builder_end_object(b);
}

static void
json_vm(JsonBuilder *b, const VmmVmReport *vm)
{
    json_builder_begin_object(b);
    json_string_or_null(b, "domain", vm->domain);
    json_string_or_null(b, "from", vm->source_uri);
    json_string_or_null(b, "to", vm->dest_uri);
    json_string_or_null(b, "status", vmm_status_name(vm->status));
    json_string_or_null(b, "error", vm->error);
    json_int_or_null(b, "wall_ms", vm_wall_ms(vm));
    json_int_or_null(b, "time_ms", vm->time_ms);
    json_int_or_null(b, "downtime_ms", vm->downtime_ms);
    json_int_or_null(b, "bytes_sent", vmm_vm_report_bytes_sent(vm));
    json_int_or_null(b, "memory_bytes", vm->memory_bytes);
    json_int_or_null(b, "normal_pages", vm->normal_pages);
    json_page_hash(b, &vm->page_hash);
    json_stall(b, &vm->stall);
    json_builder_end_object(b);
}

static void
json_totals(JsonBuilder *b, const VmmTotals *t)
{
    json_builder_begin_object(b);
    json_int_or_null(b, "vms", t->vms);
    json_int_or_null(b, "migrated", t->migrated);
    json_int_or_null(b, "failed", t->failed);
    json_int_or_null(b, "wall_ms", t->wall_ms);
    json_int_or_null(b, "downtime_max_ms", t->downtime_max_ms);
    json_int_or_null(b, "stall_max_ms", t->stall_max_ms);
    json_int_or_null(b, "bytes_sent", t->bytes_sent);
    json_int_or_null(b, "normal_pages", t->normal_pages);
    json_int_or_null(b, "hashes_sent", t->hashes_sent);
    json_int_or_null(b, "resolved", t->resolved);
    json_int_or_null(b, "misses", t->misses);
    json_int_or_null(b, "miss_pages_sent", t->miss_pages_sent);
    json_int_or_null(b, "bytes_saved", t->bytes_saved);
    json_int_or_null(b, "compressed_bytes", t->compressed_bytes);
    json_int_or_null(b, "hot_pages", t->hot_pages);
    json_builder_end_object(b);
}

char *
vmm_report_to_json(const VmmReport *report)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(JsonGenerator) gen = json_generator_new();
    g_autoptr(JsonNode) root = NULL;
    g_autofree char *text = NULL;
    VmmTotals t;

    vmm_report_totals(report, &t);
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "vms");
    json_builder_begin_array(b);
    for (guint i = 0; i < report->vms->len; i++) {
        json_vm(b, g_ptr_array_index(report->vms, i));
    }
    json_builder_end_array(b);
    json_builder_set_member_name(b, "total");
    json_totals(b, &t);
    json_builder_end_object(b);

    root = json_builder_get_root(b);
    json_generator_set_root(gen, root);
    json_generator_set_pretty(gen, TRUE);
    text = json_generator_to_data(gen, NULL);
    return g_strconcat(text, "\n", NULL);
}

/* ---- text ---- */

enum {
    COL_DOMAIN,
    COL_FROM,
    COL_TO,
    COL_STATUS,
    COL_TIME,
    COL_DOWNTIME,
    COL_STALL,
    COL_SENT,
    COL_HASHES,
    COL_HITS,
    COL_MISSES,
    COL_FULL,
    COL_SAVED,
    COL_ZSTD,
    COL_HOT,
    N_COLS,
};

static const char *const col_titles[N_COLS] = {
    "DOMAIN",      "FROM",       "TO",        "STATUS",   "TIME s",
    "DOWNTIME ms", "STALL ms",   "MiB SENT",  "HASHES",   "SITE HITS",
    "MISSES",      "FULL PAGES", "SAVED MiB", "ZSTD MiB", "HOT",
};

/* Columns up to COL_STATUS are text, left-aligned; the rest numbers. */
#define COL_IS_TEXT(c) ((c) <= COL_STATUS)

static char *
cell_int(gint64 value)
{
    return value < 0 ? g_strdup("-")
                     : g_strdup_printf("%" G_GINT64_FORMAT, value);
}

/* @value in @unit (1000: ms to s, VMM_MIB: bytes to MiB), one decimal. */
static char *
cell_scaled(gint64 value, double unit)
{
    return value < 0 ? g_strdup("-")
                     : g_strdup_printf("%.1f", (double)value / unit);
}

/* @value < 0: this QEMU does not count it. */
static char *
cell_page_hash(const VmmPageHash *ph, gint64 value, double unit)
{
    g_autofree char *v = NULL;

    if (ph->state == VMM_PAGE_HASH_UNKNOWN || value < 0) {
        return g_strdup("-");
    }
    if (ph->state == VMM_PAGE_HASH_ABSENT) {
        return g_strdup("n/a");
    }
    v = unit > 1 ? cell_scaled(value, unit) : cell_int(value);
    return ph->sampled ? g_strconcat("~", v, NULL) : g_steal_pointer(&v);
}

/* The stall, or why there is none: "lost" (unreachable after the
 * migration), "silent" (never answered), "-" (not probed). */
static char *
cell_stall(const VmmStall *st)
{
    switch (st->state) {
    case VMM_STALL_OK:
        return cell_int(st->stall_ms);
    case VMM_STALL_UNREACHABLE:
        return g_strdup("lost");
    case VMM_STALL_SILENT:
        return g_strdup("silent");
    default:
        return g_strdup("-");
    }
}

static void
vm_row(const VmmVmReport *vm, char **row)
{
    const VmmPageHash *ph = &vm->page_hash;

    row[COL_DOMAIN] = g_strdup(vm->domain);
    row[COL_FROM] = vmm_uri_short(vm->source_uri);
    row[COL_TO] = vmm_uri_short(vm->dest_uri);
    row[COL_STATUS] = g_strdup(vmm_status_name(vm->status));
    row[COL_TIME] = cell_scaled(vm->time_ms, 1000);
    row[COL_DOWNTIME] = cell_int(vm->downtime_ms);
    row[COL_STALL] = cell_stall(&vm->stall);
    row[COL_SENT] = cell_scaled(vmm_vm_report_bytes_sent(vm), VMM_MIB);
    row[COL_HASHES] = cell_page_hash(ph, (gint64)ph->hashes_sent, 1);
    row[COL_HITS] = cell_page_hash(ph, (gint64)ph->resolved, 1);
    row[COL_MISSES] = cell_page_hash(ph, (gint64)ph->misses, 1);
    row[COL_FULL] = cell_int(vm->normal_pages);
    row[COL_SAVED] = cell_page_hash(ph, (gint64)ph->bytes_saved, VMM_MIB);
    row[COL_ZSTD] = cell_page_hash(ph, ph->compressed_bytes, VMM_MIB);
    row[COL_HOT] = cell_page_hash(ph, ph->hot_pages, 1);
}

static void
totals_row(const VmmTotals *t, char **row)
{
    row[COL_DOMAIN] = g_strdup("total");
    row[COL_FROM] = g_strdup("");
    row[COL_TO] = g_strdup("");
    row[COL_STATUS] = g_strdup_printf("%u/%u ok", t->migrated, t->vms);
    row[COL_TIME] = cell_scaled(t->wall_ms, 1000);
    row[COL_DOWNTIME] = cell_int(t->downtime_max_ms);
    row[COL_STALL] = cell_int(t->stall_max_ms);
    row[COL_SENT] = cell_scaled(t->bytes_sent, VMM_MIB);
    row[COL_HASHES] = cell_int(t->hashes_sent);
    row[COL_HITS] = cell_int(t->resolved);
    row[COL_MISSES] = cell_int(t->misses);
    row[COL_FULL] = cell_int(t->normal_pages);
    row[COL_SAVED] = cell_scaled(t->bytes_saved, VMM_MIB);
    row[COL_ZSTD] = cell_scaled(t->compressed_bytes, VMM_MIB);
    row[COL_HOT] = cell_int(t->hot_pages);
}

/* A column of width 0 is left out. */
static void
append_row(GString *out, char *const *row, const guint *width)
{
    GString *line = g_string_new(NULL);

    for (guint c = 0; c < N_COLS; c++) {
        guint pad;

        if (!width[c]) {
            continue;
        }
        pad = width[c] - (guint)g_utf8_strlen(row[c], -1);
        if (c) {
            g_string_append(line, "  ");
        }
        if (!COL_IS_TEXT(c)) {
            g_string_append_printf(line, "%*s", pad, "");
        }
        g_string_append(line, row[c]);
        if (COL_IS_TEXT(c)) {
            g_string_append_printf(line, "%*s", pad, "");
        }
    }
    while (line->len && line->str[line->len - 1] == ' ') {
        g_string_truncate(line, line->len - 1);
    }
    g_string_append_printf(out, "%s\n", line->str);
    g_string_free(line, TRUE);
}

/* ", RTT 0.3 ms before, 40.1 ms after" of what is known, or "". */
static char *
text_rtt(const VmmStall *st)
{
    GString *out = g_string_new(NULL);

    if (st->rtt_before_us >= 0) {
        g_string_append_printf(out, ", RTT %.1f ms before",
                               st->rtt_before_us / 1000.0);
    }
    if (st->rtt_after_us >= 0) {
        g_string_append_printf(out, "%s %.1f ms after",
                               out->len ? "," : ", RTT",
                               st->rtt_after_us / 1000.0);
    }
    return g_string_free(out, FALSE);
}

/* One line on what the probe of @vm saw. */
static void
append_probe_line(GString *out, const VmmVmReport *vm)
{
    const VmmStall *st = &vm->stall;
    g_autofree char *rtt = text_rtt(st);

    g_string_append_printf(out, "%s: probe", vm->domain);
    if (st->address) {
        g_string_append_printf(out, " %s (%s)", st->address,
                               st->address_source ? st->address_source
                                                  : "?");
    }
    switch (st->state) {
    case VMM_STALL_OFF:
        break;
    case VMM_STALL_NO_ADDRESS:
        g_string_append_printf(out,
                               ": address unknown: %s; give "
                               "--probe-target %s=ADDR",
                               st->error, vm->domain);
        break;
    case VMM_STALL_FAILED:
        g_string_append_printf(out, ": %s", st->error);
        break;
    case VMM_STALL_SILENT:
        g_string_append_printf(out,
                               ": never answered (%" G_GINT64_FORMAT
                               " sent)",
                               st->sent);
        break;
    case VMM_STALL_UNREACHABLE:
        g_string_append_printf(
            out,
            ": unreachable after the migration, no answer for the last "
            "%.1f s (%" G_GINT64_FORMAT " sent, %" G_GINT64_FORMAT
            " lost%s)",
            st->silent_ms / 1000.0, st->sent, st->lost, rtt);
        break;
    case VMM_STALL_OK:
        g_string_append_printf(out,
                               ": stall %" G_GINT64_FORMAT " ms",
                               st->stall_ms);
        if (st->stall_at_ms >= 0) {
            g_string_append_printf(out, " at %.2f s",
                                   st->stall_at_ms / 1000.0);
        }
        g_string_append_printf(out,
                               " (%" G_GINT64_FORMAT " sent, %" G_GINT64_FORMAT
                               " lost%s)",
                               st->sent, st->lost, rtt);
        break;
    }
    g_string_append_c(out, '\n');
}

char *
vmm_report_to_text(const VmmReport *report)
{
    guint n_rows = report->vms->len + 2; /* titles, VMs, totals */
    g_auto(GStrv) cells = g_new0(char *, n_rows * N_COLS + 1);
    guint width[N_COLS] = {0};
    GString *out = g_string_new(NULL);
    gboolean sampled = FALSE, probed = FALSE;
    VmmTotals t;

    vmm_report_totals(report, &t);
    for (guint c = 0; c < N_COLS; c++) {
        cells[c] = g_strdup(col_titles[c]);
    }
    for (guint i = 0; i < report->vms->len; i++) {
        const VmmVmReport *vm = g_ptr_array_index(report->vms, i);

        vm_row(vm, cells + (i + 1) * N_COLS);
        sampled |= vm->page_hash.state == VMM_PAGE_HASH_PRESENT &&
                   vm->page_hash.sampled;
        probed |= vm->stall.state != VMM_STALL_OFF;
    }
    totals_row(&t, cells + (n_rows - 1) * N_COLS);
    for (guint r = 0; r < n_rows; r++) {
        for (guint c = 0; c < N_COLS; c++) {
            width[c] = MAX(width[c],
                           (guint)g_utf8_strlen(cells[r * N_COLS + c], -1));
        }
    }
    if (!probed) {
        width[COL_STALL] = 0;
    }
    if (t.compressed_bytes < 0 && t.hot_pages < 0) {
        width[COL_ZSTD] = 0; /* no QEMU counts them */
        width[COL_HOT] = 0;
    }
    for (guint r = 0; r < n_rows; r++) {
        append_row(out, cells + r * N_COLS, width);
    }

    if (sampled) {
        g_string_append(out, "~ page-hash counters sampled at the source "
                             "during the migration, not final values\n");
    }
    for (guint i = 0; probed && i < report->vms->len; i++) {
        const VmmVmReport *vm = g_ptr_array_index(report->vms, i);

        if (vm->stall.state != VMM_STALL_OFF) {
            append_probe_line(out, vm);
        }
    }
    for (guint i = 0; i < report->vms->len; i++) {
        const VmmVmReport *vm = g_ptr_array_index(report->vms, i);

        if (vm->error) {
            g_string_append_printf(out, "%s: %s: %s\n", vm->domain,
                                   vmm_status_name(vm->status), vm->error);
        }
    }
    return g_string_free(out, FALSE);
}

char *
vmm_uri_short(const char *uri)
{
    g_autoptr(GUri) u = NULL;
    const char *host;

    if (!uri) {
        return g_strdup("-");
    }
    u = g_uri_parse(uri, G_URI_FLAGS_NON_DNS, NULL);
    host = u ? g_uri_get_host(u) : NULL;
    if (!host || !*host) {
        return g_strdup(uri);
    }
    if (g_uri_get_port(u) > 0) {
        return g_strdup_printf(strchr(host, ':') ? "[%s]:%d" : "%s:%d", host,
                               g_uri_get_port(u));
    }
    return g_strdup(host);
}
