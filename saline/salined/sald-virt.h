/*
 * The libvirt side of a node: a VM's volumes (a copy-on-write overlay of
 * the image's disk and an output drive, in the node's storage pool
 * "saline") and its transient domain.
 *
 * Every function here blocks on the node (it may be remote and slow):
 * the core calls them from worker threads, never from the main loop.
 * They are idempotent, so that an operation cut short by a crash can be
 * run again: creating a VM whose domain runs adopts it; destroying one
 * that is gone succeeds.
 */
#pragma once

#include <libvirt/libvirt.h>

#include "sal-output.h"
#include "sald-config.h"

#define SALD_POOL_NAME "saline"
#define SALD_DOMAIN_PREFIX "saline-"
/* A VM's point-in-time disk copies while it is snapshotted (sald-snap.h):
 * <domain><suffix> in the pool. */
#define SALD_COPY_VDA_SUFFIX ".copy-vda"
#define SALD_COPY_VDB_SUFFIX ".copy-vdb"
/* What the node's kget says of a redeploy: where RAM pages came from. */
#define SALD_RESTORE_REPORT_SUFFIX ".restore"

typedef struct {
    const char *domain; /* saline-<job>-<index> */
    const char *pool_dir;
    const char *image_dir;
    const char *bridge;
    const char *mac;
    const char *emulator; /* NULL: libvirt's default */
    SaldVirtType virt_type;
    guint cpus;
    guint64 mem_mib;
    guint64 output_bytes;
    const char *spec; /* the job spec for the guest (fw_cfg) */
    /* Redeploy from a snapshot (sald-snap.h): the disks' contents, and
     * the command that writes the migration stream of RAM and device
     * state on the node; the domain then stays paused once loaded. */
    GBytes *overlay_data;
    GBytes *output_data;
    const char *incoming; /* NULL: a fresh boot */
} SaldVmSpec;

/* Opens @uri with keepalive (5 s interval, 3 missed), so that a node that
 * stops answering is noticed. */
virConnectPtr sald_virt_open(const char *uri, GError **error);

/* Creates the VM's volumes and starts its domain; TRUE at once if the
 * domain already runs. With spec->incoming, the volumes are filled from
 * the snapshot and the domain is started paused and loaded from it
 * (TRUE once loaded; a leftover that is not fully loaded is replaced). */
gboolean sald_virt_create(virConnectPtr conn, const SaldVmSpec *spec,
                          GError **error);

/* The domain XML of @spec (for tests). */
char *sald_virt_domain_xml(const SaldVmSpec *spec, const char *overlay_path,
                           const char *output_path);

/* Destroys the domain if it runs and deletes the VM's volumes. */
gboolean sald_virt_destroy(virConnectPtr conn, const char *domain,
                           GError **error);

/* The output drive of @domain: its header and (if @data is not NULL) the
 * output, at most @max bytes of it. SAL_ERROR_NOT_FOUND if the drive is
 * gone. */
gboolean sald_virt_read_output(virConnectPtr conn, const char *domain,
                               guint64 max, SalOutputHeader *header,
                               GBytes **data, GError **error);

/* The names of the node's running saline domains (@domains) and of the
 * VMs that have volumes in the pool (@volumes), as sets (GHashTable of
 * char * names, keys only). */
gboolean sald_virt_list(virConnectPtr conn, GHashTable **domains,
                        GHashTable **volumes, GError **error);

/* Used by sald-snap.c. */
gboolean sald_virt_error(GError **error, const char *fmt, ...)
    G_GNUC_PRINTF(2, 3);
gboolean sald_virt_last_error_is(int code);
/* The node's pool "saline" (defined and started in @dir if missing). */
virStoragePoolPtr sald_virt_pool(virConnectPtr conn, const char *dir,
                                 GError **error);
/* Creates volume @name afresh from @xml; its path. */
char *sald_virt_volume_create(virStoragePoolPtr pool, const char *name,
                              const char *xml, GError **error);
gboolean sald_virt_volume_delete(virStoragePoolPtr pool, const char *name,
                                 GError **error);
/* All of @vol (at most @max bytes). */
gboolean sald_virt_volume_read_all(virConnectPtr conn, virStorageVolPtr vol,
                                   const char *name, guint64 max,
                                   GBytes **data, GError **error);

/* "saline-<job>-<index>" -> job, index. */
gboolean sald_virt_parse_domain(const char *name, gint64 *job_id,
                                guint *index);
