/*
 * Migration progress: libvirt job statistics (typed parameters) read into
 * a plain struct, rates computed between samples, and one-line renderings
 * for a terminal and for logs. Also the page-hash counters of QEMU's
 * query-migrate reply.
 */
#pragma once

#include <glib.h>
#include <libvirt/libvirt.h>

#include "vmm-report.h"

/* virDomainGetJobStats fields we use; VMM_UNKNOWN where absent. */
typedef struct {
    int type; /* virDomainJobType */
    gint64 elapsed_ms;
    gint64 downtime_ms;
    gint64 data_processed;
    gint64 data_remaining;
    gint64 memory_total;
    gint64 memory_processed;
    gint64 memory_remaining;
    gint64 memory_bps;
    gint64 memory_normal;    /* pages sent in full */
    gint64 memory_iteration; /* passes over guest memory */
} VmmJobStats;

void vmm_job_stats_init(VmmJobStats *stats);
void vmm_job_stats_from_params(VmmJobStats *stats, int type,
                               virTypedParameterPtr params, int nparams);
/* Copy what a completed job says into the report record. */
void vmm_job_stats_to_report(const VmmJobStats *stats, VmmVmReport *vm);

/* What the progress line of one VM shows. */
typedef struct {
    VmmJobStats last;
    gint64 last_us;     /* when @last was taken; 0: no sample yet */
    gint64 prev_bytes;  /* bytes processed at the sample before */
    gint64 prev_us;
    double rate_bps;    /* libvirt's, else computed; < 0 unknown */
} VmmProgress;

void vmm_progress_init(VmmProgress *progress);
void vmm_progress_update(VmmProgress *progress, const VmmJobStats *stats,
                         gint64 now_us);

/* Percent of guest memory sent at least once (0-100), or -1. */
int vmm_progress_percent(const VmmProgress *progress);

/*
 * One line for @domain. @status says whether the VM is queued, running
 * or done; @name_width pads names so a terminal's lines align (0: none).
 */
char *vmm_progress_format(const char *domain, VmmStatus status,
                          const VmmProgress *progress, guint name_width);

/*
 * Read the "page-hash" object of a query-migrate reply (QMP JSON text).
 * FALSE with @error if the reply is not one; otherwise @ph is PRESENT or
 * ABSENT (no such object: stock QEMU or x-page-hash off).
 */
#define VMM_QMP_REPLY_MAX (1024 * 1024)
gboolean vmm_page_hash_parse(const char *reply, VmmPageHash *ph,
                             GError **error);

/*
 * The page-hash counters to report: the destination's if it has them
 * (final), else the last sample taken at the source during the migration,
 * else ABSENT if either side answered without any, else UNKNOWN. Hot
 * pages, which only the source counts, come from its last sample: pages
 * that turned hot after it are not in the count.
 */
VmmPageHash vmm_page_hash_merge(const VmmPageHash *dest,
                                const VmmPageHash *sample);
