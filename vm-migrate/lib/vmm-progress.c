#include <json-glib/json-glib.h>
#include <string.h>

#include "vmm-error.h"
#include "vmm-progress.h"

void
vmm_job_stats_init(VmmJobStats *s)
{
    *s = (VmmJobStats){
        .type = VIR_DOMAIN_JOB_NONE,
        .elapsed_ms = VMM_UNKNOWN,
        .downtime_ms = VMM_UNKNOWN,
        .data_processed = VMM_UNKNOWN,
        .data_remaining = VMM_UNKNOWN,
        .memory_total = VMM_UNKNOWN,
        .memory_processed = VMM_UNKNOWN,
        .memory_remaining = VMM_UNKNOWN,
        .memory_bps = VMM_UNKNOWN,
        .memory_normal = VMM_UNKNOWN,
        .memory_iteration = VMM_UNKNOWN,
    };
}

static gint64
get_ullong(virTypedParameterPtr params, int n, const char *name)
{
    unsigned long long v;

    if (virTypedParamsGetULLong(params, n, name, &v) != 1) {
        return VMM_UNKNOWN;
    }
    return v > G_MAXINT64 ? G_MAXINT64 : (gint64)v;
}

void
vmm_job_stats_from_params(VmmJobStats *s, int type,
                          virTypedParameterPtr params, int n)
{
    vmm_job_stats_init(s);
    s->type = type;
    s->elapsed_ms = get_ullong(params, n, VIR_DOMAIN_JOB_TIME_ELAPSED);
    s->downtime_ms = get_ullong(params, n, VIR_DOMAIN_JOB_DOWNTIME);
    s->data_processed = get_ullong(params, n, VIR_DOMAIN_JOB_DATA_PROCESSED);
    s->data_remaining = get_ullong(params, n, VIR_DOMAIN_JOB_DATA_REMAINING);
    s->memory_total = get_ullong(params, n, VIR_DOMAIN_JOB_MEMORY_TOTAL);
    s->memory_processed =
        get_ullong(params, n, VIR_DOMAIN_JOB_MEMORY_PROCESSED);
    s->memory_remaining =
        get_ullong(params, n, VIR_DOMAIN_JOB_MEMORY_REMAINING);
    s->memory_bps = get_ullong(params, n, VIR_DOMAIN_JOB_MEMORY_BPS);
    s->memory_normal = get_ullong(params, n, VIR_DOMAIN_JOB_MEMORY_NORMAL);
    s->memory_iteration =
        get_ullong(params, n, VIR_DOMAIN_JOB_MEMORY_ITERATION);
}

void
vmm_job_stats_to_report(const VmmJobStats *s, VmmVmReport *vm)
{
    vm->time_ms = s->elapsed_ms;
    vm->downtime_ms = s->downtime_ms;
    vm->data_bytes = s->data_processed;
    vm->memory_bytes = s->memory_processed;
    vm->normal_pages = s->memory_normal;
}

void
vmm_progress_init(VmmProgress *p)
{
    memset(p, 0, sizeof(*p));
    vmm_job_stats_init(&p->last);
    p->prev_bytes = VMM_UNKNOWN;
    p->rate_bps = -1;
}

static gint64
stats_sent(const VmmJobStats *s)
{
    return s->data_processed != VMM_UNKNOWN ? s->data_processed
                                            : s->memory_processed;
}

void
vmm_progress_update(VmmProgress *p, const VmmJobStats *stats, gint64 now_us)
{
    gint64 bytes = stats_sent(stats);

    p->last = *stats;
    p->last_us = now_us;
    if (stats->memory_bps > 0) {
        p->rate_bps = (double)stats->memory_bps;
    } else if (bytes >= 0 && p->prev_bytes >= 0 && now_us > p->prev_us &&
               bytes >= p->prev_bytes) {
        p->rate_bps = (double)(bytes - p->prev_bytes) * G_USEC_PER_SEC /
                      (double)(now_us - p->prev_us);
    }
    p->prev_bytes = bytes;
    p->prev_us = now_us;
}

int
vmm_progress_percent(const VmmProgress *p)
{
    const VmmJobStats *s = &p->last;
    gint64 done;

    if (s->memory_total <= 0 || s->memory_remaining < 0) {
        return -1;
    }
    done = s->memory_total - MIN(s->memory_remaining, s->memory_total);
    return (int)(done * 100 / s->memory_total);
}

static void
append_mib(GString *out, gint64 bytes, const char *suffix)
{
    if (bytes < 0) {
        g_string_append_printf(out, "  %7s %s", "-", suffix);
    } else {
        g_string_append_printf(out, "  %7.1f %s", (double)bytes / VMM_MIB,
                               suffix);
    }
}

char *
vmm_progress_format(const char *domain, VmmStatus status,
                    const VmmProgress *p, guint name_width)
{
    const VmmJobStats *s = &p->last;
    GString *out = g_string_new(NULL);
    g_autofree char *phase = NULL;
    gint64 left;
    int pct;

    g_string_append_printf(out, "%-*s", (int)name_width, domain);
    if (status != VMM_STATUS_RUNNING) {
        g_string_append_printf(out, "  %s", vmm_status_name(status));
        return g_string_free(out, FALSE);
    }
    if (!p->last_us) {
        g_string_append(out, "  starting");
        return g_string_free(out, FALSE);
    }
    phase = s->memory_iteration > 0
                ? g_strdup_printf("pass %" G_GINT64_FORMAT,
                                  s->memory_iteration)
                : g_strdup("copying");
    pct = vmm_progress_percent(p);
    g_string_append_printf(out, "  %-7s", phase);
    if (pct < 0) {
        g_string_append(out, "     -");
    } else {
        g_string_append_printf(out, "  %3d%%", pct);
    }
    append_mib(out, stats_sent(s), "MiB sent");
    if (p->rate_bps < 0) {
        g_string_append_printf(out, "  %6s MiB/s", "-");
    } else {
        g_string_append_printf(out, "  %6.1f MiB/s", p->rate_bps / VMM_MIB);
    }
    left = s->data_remaining != VMM_UNKNOWN ? s->data_remaining
                                            : s->memory_remaining;
    append_mib(out, left, "MiB left");
    if (left >= 0 && p->rate_bps > 0) {
        g_string_append_printf(out, "  ~%.0f s", (double)left / p->rate_bps);
    }
    return g_string_free(out, FALSE);
}

static gboolean
read_counter(JsonObject *o, const char *name, guint64 *out, GError **error)
{
    JsonNode *n = json_object_get_member(o, name);

    if (!n || json_node_get_value_type(n) != G_TYPE_INT64 ||
        json_node_get_int(n) < 0) {
        g_set_error(error, VMM_ERROR, VMM_ERROR_INVALID,
                    "page-hash counter '%s' missing or not a count", name);
        return FALSE;
    }
    *out = (guint64)json_node_get_int(n);
    return TRUE;
}

/* A counter that older QEMUs lack: VMM_UNKNOWN when absent. */
static gboolean
read_optional_counter(JsonObject *o, const char *name, gint64 *out,
                      GError **error)
{
    guint64 v;

    if (!json_object_has_member(o, name)) {
        *out = VMM_UNKNOWN;
        return TRUE;
    }
    if (!read_counter(o, name, &v, error)) {
        return FALSE;
    }
    *out = (gint64)v;
    return TRUE;
}

gboolean
vmm_page_hash_parse(const char *reply, VmmPageHash *ph, GError **error)
{
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) local = NULL;
    JsonNode *root, *ret, *node;
    JsonObject *o;
    VmmPageHash out = {.state = VMM_PAGE_HASH_PRESENT};

    if (strlen(reply) > VMM_QMP_REPLY_MAX) {
        g_set_error(error, VMM_ERROR, VMM_ERROR_TOO_LARGE,
                    "query-migrate reply larger than %d bytes",
                    VMM_QMP_REPLY_MAX);
        return FALSE;
    }
    if (!json_parser_load_from_data(parser, reply, -1, &local)) {
        g_set_error(error, VMM_ERROR, VMM_ERROR_INVALID,
                    "query-migrate reply is not JSON: %s", local->message);
        return FALSE;
    }
    root = json_parser_get_root(parser);
    if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
        g_set_error(error, VMM_ERROR, VMM_ERROR_INVALID,
                    "query-migrate reply is not an object");
        return FALSE;
    }
    o = json_node_get_object(root);
    node = json_object_get_member(o, "error");
    if (node && JSON_NODE_HOLDS_OBJECT(node)) {
        const char *desc = json_object_get_string_member_with_default(
            json_node_get_object(node), "desc", "no description");

        g_set_error(error, VMM_ERROR, VMM_ERROR_LIBVIRT,
                    "QEMU refused query-migrate: %s", desc);
        return FALSE;
    }
    ret = json_object_get_member(o, "return");
    if (!ret || !JSON_NODE_HOLDS_OBJECT(ret)) {
        g_set_error(error, VMM_ERROR, VMM_ERROR_INVALID,
                    "query-migrate reply has no 'return' object");
        return FALSE;
    }
    node = json_object_get_member(json_node_get_object(ret), "page-hash");
    if (!node || JSON_NODE_HOLDS_NULL(node)) {
        *ph = (VmmPageHash){.state = VMM_PAGE_HASH_ABSENT};
        return TRUE;
    }
    if (!JSON_NODE_HOLDS_OBJECT(node)) {
        g_set_error(error, VMM_ERROR, VMM_ERROR_INVALID,
                    "query-migrate 'page-hash' is not an object");
        return FALSE;
    }
    o = json_node_get_object(node);
    if (!read_counter(o, "hashes-sent", &out.hashes_sent, error) ||
        !read_counter(o, "resolved", &out.resolved, error) ||
        !read_counter(o, "misses", &out.misses, error) ||
        !read_counter(o, "miss-pages-sent", &out.miss_pages_sent, error) ||
        !read_counter(o, "outstanding", &out.outstanding, error) ||
        !read_counter(o, "bytes-saved", &out.bytes_saved, error) ||
        !read_optional_counter(o, "compressed-pages", &out.compressed_pages,
                               error) ||
        !read_optional_counter(o, "compressed-bytes", &out.compressed_bytes,
                               error) ||
        !read_optional_counter(o, "hot-pages", &out.hot_pages, error)) {
        return FALSE;
    }
    *ph = out;
    return TRUE;
}

VmmPageHash
vmm_page_hash_merge(const VmmPageHash *dest, const VmmPageHash *sample)
{
    if (dest->state == VMM_PAGE_HASH_PRESENT) {
        VmmPageHash out = *dest;

        /* Only the source counts hot pages. */
        if (out.hot_pages < 0 && sample->state == VMM_PAGE_HASH_PRESENT) {
            out.hot_pages = sample->hot_pages;
        }
        return out;
    }
    if (sample->state == VMM_PAGE_HASH_PRESENT) {
        return *sample;
    }
    if (dest->state == VMM_PAGE_HASH_ABSENT ||
        sample->state == VMM_PAGE_HASH_ABSENT) {
        return (VmmPageHash){.state = VMM_PAGE_HASH_ABSENT};
    }
    return (VmmPageHash){.state = VMM_PAGE_HASH_UNKNOWN};
}
