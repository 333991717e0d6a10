/*
 * The address manager: gives each VM an IPv4 address from its site's
 * pool and a MAC address, grid-wide unique, and takes them back.
 *
 * Pools come from the daemon's configuration at each start (one per
 * site: a CIDR network, an optional range of host addresses in it, an
 * optional gateway that is never handed out). Leases live in the store,
 * so they survive restarts; SalAddr keeps them in memory too, and an
 * address is handed out only if both the memory and the store's UNIQUE
 * constraints agree that it is free.
 *
 * MAC = 52:54:00 (QEMU's prefix) followed by the low 24 bits of the IP:
 * a VM's MAC tells its address, and is unique because addresses are and
 * because pools are refused when two of them share low 24 bits.
 *
 * Every change is a store transaction (its own, or part of the caller's:
 * allocate a starting job's addresses in the transaction that saves it).
 * If that transaction rolls back, the memory follows. A lease needs its
 * VM in the store first (sal_store_save_job()).
 *
 * The store must outlive the SalAddr.
 */
#pragma once

#include "sal-store.h"

typedef struct SalAddr SalAddr;

/* Loads the leases of @store. */
SalAddr *sal_addr_new(SalStore *store, GError **error);
SalAddr *sal_addr_ref(SalAddr *addr);
void sal_addr_unref(SalAddr *addr);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SalAddr, sal_addr_unref)

/*
 * Adds the pool of @site: @cidr "10.77.1.0/24" (prefix /8 to /30);
 * @range "10.77.1.10-10.77.1.200" or NULL for every host address of the
 * network; @gateway NULL or an address of the network, excluded. Refused
 * if the site already has a pool, or if the pool shares an address or
 * the low 24 bits of one (hence a MAC) with another site's.
 */
gboolean sal_addr_add_pool(SalAddr *addr, const char *site, const char *cidr,
                           const char *range, const char *gateway,
                           GError **error);

/*
 * Gives @vm (vm->job_id, vm->index, in the pool of vm->site) the lowest
 * free address of the pool and sets vm->ip and vm->mac. A VM that already
 * holds an address of that site keeps it; one of another site is
 * SAL_ERROR_CONFLICT (release it first). SAL_ERROR_NOT_FOUND if the site
 * has no pool, SAL_ERROR_EXHAUSTED if the pool is full.
 */
gboolean sal_addr_allocate(SalAddr *addr, SalVm *vm, GError **error);
/* All of @vms (SalVm *) or none. */
gboolean sal_addr_allocate_vms(SalAddr *addr, GPtrArray *vms, GError **error);

/* Releases the addresses of job @job_id: all of them, or those of its VM
 * @vm_index (when a VM dies). Releasing nothing is not an error. */
gboolean sal_addr_release_job(SalAddr *addr, gint64 job_id, GError **error);
gboolean sal_addr_release_vm(SalAddr *addr, gint64 job_id, guint vm_index,
                             GError **error);

/* SalLease * copies, by site, then address. */
GPtrArray *sal_addr_list(SalAddr *addr);
