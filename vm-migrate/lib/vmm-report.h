/*
 * The outcome of a group migration: one record per VM and the totals,
 * formatted as a text table for people or as JSON for scripts.
 *
 * Every number libvirt or QEMU may fail to give is a gint64 where
 * VMM_UNKNOWN (-1) means "unknown"; it is printed as "-" and as JSON null.
 */
#pragma once

#include <glib.h>

#include "vmm-stall.h"

#define VMM_UNKNOWN ((gint64)-1)

#define VMM_MIB (1024.0 * 1024.0)

typedef enum {
    VMM_STATUS_QUEUED,   /* not started yet */
    VMM_STATUS_RUNNING,  /* migration under way */
    VMM_STATUS_MIGRATED, /* runs at the destination now */
    VMM_STATUS_FAILED,   /* started, did not complete: runs at the source */
    VMM_STATUS_SKIPPED,  /* never started (interrupted): runs at the source */
} VmmStatus;

typedef enum {
    VMM_PAGE_HASH_UNKNOWN, /* could not ask QEMU */
    VMM_PAGE_HASH_ABSENT,  /* QEMU has none: stock QEMU or x-page-hash off */
    VMM_PAGE_HASH_PRESENT,
} VmmPageHashState;

/* QEMU's query-migrate "page-hash" object (qemu-patches/0002). */
typedef struct {
    VmmPageHashState state;
    /* The counters are the source's last sample during the migration,
     * not final values read after it. */
    gboolean sampled;
    guint64 hashes_sent;
    guint64 resolved; /* resolved on the destination's site */
    guint64 misses;
    guint64 miss_pages_sent;
    guint64 outstanding;
    guint64 bytes_saved;
    /* VMM_UNKNOWN from a QEMU without the counters (before 0008, 0009). */
    gint64 compressed_pages; /* pages sent in full, in the zstd stream */
    gint64 compressed_bytes; /* what they cost in the stream */
    gint64 hot_pages;        /* dirtied again after their hash went */
} VmmPageHash;

typedef struct {
    char *domain;
    char *source_uri;
    char *dest_uri;
    VmmStatus status;
    char *error;       /* FAILED, SKIPPED: why */
    gint64 start_us;   /* monotonic clock; 0: not started */
    gint64 end_us;     /* when the migration call returned */
    gint64 time_ms;    /* libvirt: VIR_DOMAIN_JOB_TIME_ELAPSED */
    gint64 downtime_ms;
    gint64 data_bytes;   /* VIR_DOMAIN_JOB_DATA_PROCESSED */
    gint64 memory_bytes; /* VIR_DOMAIN_JOB_MEMORY_PROCESSED */
    gint64 normal_pages; /* pages sent in full */
    VmmPageHash page_hash;
    VmmStall stall; /* OFF unless probed (--probe) */
} VmmVmReport;

typedef struct {
    guint vms;
    guint migrated;
    guint failed;  /* FAILED and SKIPPED */
    gint64 wall_ms; /* first start to last end */
    gint64 downtime_max_ms;
    gint64 stall_max_ms; /* of the VMs with a finite stall */
    gint64 bytes_sent;
    gint64 normal_pages;
    /* Sums over the VMs whose page-hash counters are known. */
    gint64 hashes_sent;
    gint64 resolved;
    gint64 misses;
    gint64 miss_pages_sent;
    gint64 bytes_saved;
    gint64 compressed_bytes;
    gint64 hot_pages;
} VmmTotals;

typedef struct {
    GPtrArray *vms; /* VmmVmReport */
} VmmReport;

VmmReport *vmm_report_new(void);
void vmm_report_free(VmmReport *report);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VmmReport, vmm_report_free)

/* A new record, QUEUED, every number unknown; owned by @report. */
VmmVmReport *vmm_report_add(VmmReport *report, const char *domain,
                            const char *source_uri, const char *dest_uri);
VmmVmReport *vmm_report_get(const VmmReport *report, guint i);

const char *vmm_status_name(VmmStatus status);

/* Bytes that crossed: DATA_PROCESSED, else MEMORY_PROCESSED. */
gint64 vmm_vm_report_bytes_sent(const VmmVmReport *vm);

void vmm_report_totals(const VmmReport *report, VmmTotals *totals);

/* {"vms": [...], "total": {...}}, newline-terminated. */
char *vmm_report_to_json(const VmmReport *report);

/*
 * The table, the totals row, one line per probed VM (with a STALL ms
 * column if any VM was probed), then one line per failed VM.
 */
char *vmm_report_to_text(const VmmReport *report);

/* The host part of a libvirt URI, or the URI if it has none. */
char *vmm_uri_short(const char *uri);
