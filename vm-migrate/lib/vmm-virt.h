/*
 * The libvirt side of a group migration: connections, the checks made
 * before anything moves, the migration call and the statistics read
 * after it.
 */
#pragma once

#include <glib.h>
#include <libvirt/libvirt.h>

#include "vmm-placement.h"
#include "vmm-progress.h"
#include "vmm-report.h"

/* Once per process, before threads: libvirt must not print errors. */
void vmm_virt_init(void);

/* A new connection (read-write, default authentication). */
virConnectPtr vmm_connect(const char *uri, GError **error);

/* Migration flags: live, peer-to-peer; a persistent domain is defined on
 * the destination and undefined on the source, a transient one stays
 * transient. */
unsigned int vmm_migrate_flags(gboolean persistent);

/* One domain of a checked placement. */
typedef struct {
    const VmmPlacementEntry *entry;
    const char *source_uri; /* the entry's, else the default */
    virConnectPtr source;   /* shared, owned by the plan */
    virConnectPtr dest;     /* shared, owned by the plan; for the checks */
    virDomainPtr dom;       /* on @source, owned */
    gboolean persistent;
} VmmPlanItem;

typedef struct VmmPlan VmmPlan;

/*
 * Open every URI and check every domain of @placement: it exists and runs
 * on its source, its destination differs from its source and has no
 * domain of that name. The first problem is the error.
 */
VmmPlan *vmm_plan_check(const VmmPlacement *placement,
                        const char *default_source, GError **error);
void vmm_plan_free(VmmPlan *plan);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VmmPlan, vmm_plan_free)

guint vmm_plan_size(const VmmPlan *plan);
const VmmPlanItem *vmm_plan_get(const VmmPlan *plan, guint i);

/*
 * Migrate one domain through its own connection to the source (calls on
 * one connection are limited by libvirtd's max_client_requests, so
 * parallel migrations must not share one). @bandwidth_mib 0: no cap.
 */
gboolean vmm_migrate(const VmmPlanItem *item, guint64 bandwidth_mib,
                     GError **error);

gboolean vmm_job_stats_get(virDomainPtr dom, unsigned int flags,
                           VmmJobStats *stats, GError **error);

/* Run query-migrate in @dom's QEMU and read its page-hash counters. */
gboolean vmm_page_hash_query(virDomainPtr dom, VmmPageHash *ph,
                             GError **error);

/*
 * The address to probe @dom at (vmm_probe_address_pick) among those
 * libvirt knows of its interfaces, asking in turn its DHCP leases
 * (libvirt networks), the guest agent and the source host's ARP table,
 * then this host's ARP table for its MACs; @source is set to "lease",
 * "agent", "arp" or "local-arp". NULL with @error if none gave one.
 */
char *vmm_domain_address(virDomainPtr dom, const char **source,
                         GError **error);

/* What can be learnt once a migration call returned. */
typedef struct {
    gboolean have_stats;
    VmmJobStats stats;  /* the completed job */
    VmmPageHash dest_page_hash;
} VmmOutcome;

/*
 * After a migration call returned (@migrated: it succeeded): completed
 * job statistics from the destination domain (through a new connection),
 * else from the source domain if it still exists; page-hash counters
 * from the destination's QEMU. Nothing here fails: what cannot be read
 * stays unknown.
 */
void vmm_outcome_collect(const VmmPlanItem *item, gboolean migrated,
                         VmmOutcome *outcome);
