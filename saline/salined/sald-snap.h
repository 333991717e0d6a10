/*
 * Snapshots of one VM on its node, and its redeploy from one: the node
 * side of Saline's best-effort jobs (saline/kget/README.md has the
 * store).
 *
 * A snapshot is point-in-time for RAM, device state and both disks:
 *   sald_snap_prepare() makes the disk copy volumes and readies QEMU
 *                       (nothing the guest notices);
 *   sald_snap_pause()   stops the guest (libvirt's suspend);
 *   sald_snap_start()   starts, while it is stopped, a copy of each disk
 *                       as of now (QEMU block backup jobs into the pool
 *                       volumes <domain>.copy-vd[ab]) and QEMU's
 *                       background snapshot of RAM and device state into
 *                       the node's `kget snapshot --vmstate`, which
 *                       resumes the guest as soon as the device state is
 *                       captured: RAM then streams out while it runs
 *                       (write faults copy pages first);
 *   sald_snap_wait()    waits for both to complete;
 *   sald_snap_read_copies() / sald_snap_drop_copies() read, then delete,
 *                       the disk copies.
 * The core pauses every VM of a job first, then starts them all, so the
 * job's VMs are captured at one point of their conversation.
 *
 * QEMU's migration commands go through libvirt (QMP passthrough, which
 * works on remote connections and marks the domain tainted): libvirt 9.0
 * has no API for background snapshots. The migration target is a command
 * QEMU runs on the node (exec:), so the node's QEMU must be allowed to
 * spawn it: `seccomp_sandbox = 0` in the node's qemu.conf.
 *
 * Everything here blocks: worker threads only.
 */
#pragma once

#include <libvirt/libvirt.h>

#include "sald-virt.h"

typedef struct {
    gint64 downtime_ms;    /* guest stopped, as QEMU counts it */
    guint64 ram_bytes;     /* migration stream bytes */
    gint64 total_ms;       /* start to completion */
} SaldSnapStats;

/* @vda_node and @vdb_node: QEMU's names of the two disks, for
 * sald_snap_start(). */
gboolean sald_snap_prepare(virConnectPtr conn, const char *domain,
                           const char *pool_dir, char **vda_node,
                           char **vdb_node, GError **error);
gboolean sald_snap_pause(virConnectPtr conn, const char *domain,
                         GError **error);
/* @vmstate_cmd: the shell command that reads the migration stream on
 * its standard input. */
gboolean sald_snap_start(virConnectPtr conn, const char *domain,
                         const char *vda_node, const char *vdb_node,
                         const char *vmstate_cmd, GError **error);
/* Undoes whatever of prepare/pause/start happened (the guest runs on,
 * the copies are gone). */
void sald_snap_abort(virConnectPtr conn, const char *domain);
/* Waits at most @timeout_s; on failure cancels what still runs. */
gboolean sald_snap_wait(virConnectPtr conn, const char *domain,
                        guint timeout_s, SaldSnapStats *stats, GError **error);
/* The copies of the overlay (a qcow2 file) and of the output drive, each
 * at most @max bytes. */
gboolean sald_snap_read_copies(virConnectPtr conn, const char *domain,
                               guint64 max, GBytes **vda, GBytes **vdb,
                               GError **error);
gboolean sald_snap_drop_copies(virConnectPtr conn, const char *domain,
                               GError **error);

/* Creates the VM from @spec (spec->incoming, spec->overlay_data and
 * spec->output_data set) and loads its RAM and device state; the domain
 * is left paused. Idempotent: a domain already loaded is kept, one that
 * is not is replaced. */
gboolean sald_snap_restore(virConnectPtr conn, const SaldVmSpec *spec,
                           guint timeout_s, GError **error);
/* Resumes a loaded domain. */
gboolean sald_snap_run(virConnectPtr conn, const char *domain,
                       GError **error);
