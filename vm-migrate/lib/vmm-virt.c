#include <libvirt/libvirt-qemu.h>
#include <libvirt/virterror.h>

#include "vmm-error.h"
#include "vmm-probe.h"
#include "vmm-virt.h"

struct VmmPlan {
    GHashTable *conns; /* URI -> virConnectPtr */
    GPtrArray *items;  /* VmmPlanItem */
};

static void
silent_error(void *opaque, virErrorPtr error)
{
}

/*
 * Keepalive: a peer behind a cut WAN link must not hang a call (not even
 * virConnectClose at exit) forever. Keepalive needs libvirt's event loop
 * running; it runs in its own thread for the life of the process.
 */
#define KEEPALIVE_INTERVAL_S 5
#define KEEPALIVE_COUNT 3

static gpointer
event_thread(gpointer data)
{
    for (;;) {
        virEventRunDefaultImpl();
    }
    return NULL;
}

static void
event_tick(int timer, void *opaque)
{
}

void
vmm_virt_init(void)
{
    virInitialize();
    virSetErrorFunc(NULL, silent_error);
    if (virEventRegisterDefaultImpl() == 0) {
        /* Without a pending timer the loop sleeps through new sources. */
        virEventAddTimeout(1000, event_tick, NULL, NULL);
        g_thread_unref(g_thread_new("virt-events", event_thread, NULL));
    }
}

static const char *
last_error(void)
{
    return virGetLastErrorMessage();
}

virConnectPtr
vmm_connect(const char *uri, GError **error)
{
    virConnectPtr conn = virConnectOpenAuth(uri, virConnectAuthPtrDefault, 0);

    if (!conn) {
        g_set_error(error, VMM_ERROR, VMM_ERROR_LIBVIRT,
                    "cannot connect to '%s': %s", uri, last_error());
        return NULL;
    }
    /* Local drivers have no keepalive; that is fine. */
    virConnectSetKeepAlive(conn, KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT);
    return conn;
}

unsigned int
vmm_migrate_flags(gboolean persistent)
{
    unsigned int flags = VIR_MIGRATE_LIVE | VIR_MIGRATE_PEER2PEER;

    if (persistent) {
        flags |= VIR_MIGRATE_PERSIST_DEST | VIR_MIGRATE_UNDEFINE_SOURCE;
    }
    return flags;
}

static void
close_conn(gpointer data)
{
    virConnectClose(data);
}

static void
plan_item_free(gpointer data)
{
    VmmPlanItem *item = data;

    if (!item) {
        return;
    }
    if (item->dom) {
        virDomainFree(item->dom);
    }
    g_free(item);
}

void
vmm_plan_free(VmmPlan *plan)
{
    if (!plan) {
        return;
    }
    /* Domains before the connections they belong to. */
    g_ptr_array_unref(plan->items);
    g_hash_table_unref(plan->conns);
    g_free(plan);
}

static virConnectPtr
plan_conn(VmmPlan *plan, const char *uri, GError **error)
{
    virConnectPtr conn = g_hash_table_lookup(plan->conns, uri);

    if (!conn) {
        conn = vmm_connect(uri, error);
        if (conn) {
            g_hash_table_insert(plan->conns, g_strdup(uri), conn);
        }
    }
    return conn;
}

static const char *
state_name(int state)
{
    switch (state) {
    case VIR_DOMAIN_RUNNING:
        return "running";
    case VIR_DOMAIN_BLOCKED:
        return "blocked";
    case VIR_DOMAIN_PAUSED:
        return "paused";
    case VIR_DOMAIN_SHUTDOWN:
        return "shutting down";
    case VIR_DOMAIN_SHUTOFF:
        return "shut off";
    case VIR_DOMAIN_CRASHED:
        return "crashed";
    case VIR_DOMAIN_PMSUSPENDED:
        return "suspended by guest power management";
    default:
        return "in no known state";
    }
}

static virDomainPtr
lookup(virConnectPtr conn, const char *uri, const char *name,
       gboolean *missing, GError **error)
{
    virDomainPtr dom = virDomainLookupByName(conn, name);

    *missing = FALSE;
    if (dom) {
        return dom;
    }
    if (virGetLastErrorCode() == VIR_ERR_NO_DOMAIN) {
        *missing = TRUE;
        g_set_error(error, VMM_ERROR, VMM_ERROR_NOT_FOUND,
                    "domain '%s' not found on '%s'", name, uri);
    } else {
        g_set_error(error, VMM_ERROR, VMM_ERROR_LIBVIRT,
                    "cannot look up domain '%s' on '%s': %s", name, uri,
                    last_error());
    }
    return NULL;
}

static gboolean
check_source(VmmPlanItem *item, GError **error)
{
    const char *name = item->entry->domain;
    gboolean missing;
    int state, reason, persistent;

    item->dom = lookup(item->source, item->source_uri, name, &missing, error);
    if (!item->dom) {
        return FALSE;
    }
    if (virDomainGetState(item->dom, &state, &reason, 0) < 0) {
        g_set_error(error, VMM_ERROR, VMM_ERROR_LIBVIRT,
                    "cannot get the state of domain '%s' on '%s': %s", name,
                    item->source_uri, last_error());
        return FALSE;
    }
    if (state != VIR_DOMAIN_RUNNING) {
        g_set_error(error, VMM_ERROR, VMM_ERROR_STATE,
                    "domain '%s' on '%s' is %s, not running", name,
                    item->source_uri, state_name(state));
        return FALSE;
    }
    persistent = virDomainIsPersistent(item->dom);
    if (persistent < 0) {
        g_set_error(error, VMM_ERROR, VMM_ERROR_LIBVIRT,
                    "cannot tell whether domain '%s' on '%s' is "
                    "persistent: %s",
                    name, item->source_uri, last_error());
        return FALSE;
    }
    item->persistent = persistent == 1;
    return TRUE;
}

static gboolean
check_dest(const VmmPlanItem *item, GError **error)
{
    const char *name = item->entry->domain;
    const char *uri = item->entry->dest_uri;
    g_autoptr(GError) local = NULL;
    virDomainPtr dom;
    gboolean missing;

    if (g_str_equal(uri, item->source_uri)) {
        g_set_error(error, VMM_ERROR, VMM_ERROR_INVALID,
                    "domain '%s': destination '%s' is its source", name, uri);
        return FALSE;
    }
    dom = lookup(item->dest, uri, name, &missing, &local);
    if (dom) {
        virDomainFree(dom);
        g_set_error(error, VMM_ERROR, VMM_ERROR_STATE,
                    "domain '%s' already exists on '%s'", name, uri);
        return FALSE;
    }
    if (!missing) {
        g_propagate_error(error, g_steal_pointer(&local));
        return FALSE;
    }
    return TRUE;
}

VmmPlan *
vmm_plan_check(const VmmPlacement *placement, const char *default_source,
               GError **error)
{
    g_autoptr(VmmPlan) plan = g_new0(VmmPlan, 1);

    plan->conns =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, close_conn);
    plan->items = g_ptr_array_new_with_free_func(plan_item_free);
    for (guint i = 0; i < vmm_placement_size(placement); i++) {
        VmmPlanItem *item = g_new0(VmmPlanItem, 1);

        g_ptr_array_add(plan->items, item);
        item->entry = vmm_placement_get(placement, i);
        item->source_uri = item->entry->source_uri ? item->entry->source_uri
                                                   : default_source;
        item->source = plan_conn(plan, item->source_uri, error);
        if (!item->source) {
            return NULL;
        }
        item->dest = plan_conn(plan, item->entry->dest_uri, error);
        if (!item->dest || !check_source(item, error) ||
            !check_dest(item, error)) {
            return NULL;
        }
    }
    return g_steal_pointer(&plan);
}

guint
vmm_plan_size(const VmmPlan *plan)
{
    return plan->items->len;
}

const VmmPlanItem *
vmm_plan_get(const VmmPlan *plan, guint i)
{
    g_return_val_if_fail(i < plan->items->len, NULL);
    return g_ptr_array_index(plan->items, i);
}

gboolean
vmm_migrate(const VmmPlanItem *item, guint64 bandwidth_mib, GError **error)
{
    unsigned char uuid[VIR_UUID_BUFLEN];
    virTypedParameterPtr params = NULL;
    int nparams = 0, maxparams = 0;
    virConnectPtr conn = NULL;
    virDomainPtr dom = NULL;
    gboolean ok = FALSE;

    if (virDomainGetUUID(item->dom, uuid) < 0) {
        g_set_error(error, VMM_ERROR, VMM_ERROR_LIBVIRT,
                    "cannot get the UUID of domain '%s': %s",
                    item->entry->domain, last_error());
        return FALSE;
    }
    conn = vmm_connect(item->source_uri, error);
    if (!conn) {
        return FALSE;
    }
    dom = virDomainLookupByUUID(conn, uuid);
    if (!dom) {
        g_set_error(error, VMM_ERROR, VMM_ERROR_LIBVIRT,
                    "domain '%s' vanished from '%s': %s", item->entry->domain,
                    item->source_uri, last_error());
        goto out;
    }
    if (bandwidth_mib &&
        virTypedParamsAddULLong(&params, &nparams, &maxparams,
                                VIR_MIGRATE_PARAM_BANDWIDTH,
                                bandwidth_mib) < 0) {
        g_set_error(error, VMM_ERROR, VMM_ERROR_LIBVIRT,
                    "cannot build migration parameters: %s", last_error());
        goto out;
    }
    /* Peer-to-peer: the source's libvirtd opens dest_uri itself. */
    if (virDomainMigrateToURI3(dom, item->entry->dest_uri, params, nparams,
                               vmm_migrate_flags(item->persistent)) < 0) {
        g_set_error(error, VMM_ERROR, VMM_ERROR_LIBVIRT, "%s", last_error());
        goto out;
    }
    ok = TRUE;

out:
    virTypedParamsFree(params, nparams);
    if (dom) {
        virDomainFree(dom);
    }
    virConnectClose(conn);
    return ok;
}

gboolean
vmm_job_stats_get(virDomainPtr dom, unsigned int flags, VmmJobStats *stats,
                  GError **error)
{
    virTypedParameterPtr params = NULL;
    int nparams = 0, type = VIR_DOMAIN_JOB_NONE;

    if (virDomainGetJobStats(dom, &type, &params, &nparams, flags) < 0) {
        g_set_error(error, VMM_ERROR, VMM_ERROR_LIBVIRT,
                    "cannot get job statistics of domain '%s': %s",
                    virDomainGetName(dom), last_error());
        return FALSE;
    }
    vmm_job_stats_from_params(stats, type, params, nparams);
    virTypedParamsFree(params, nparams);
    return TRUE;
}

gboolean
vmm_page_hash_query(virDomainPtr dom, VmmPageHash *ph, GError **error)
{
    g_autofree char *reply = NULL;
    char *raw = NULL;

    if (virDomainQemuMonitorCommand(dom, "{\"execute\":\"query-migrate\"}",
                                    &raw, 0) < 0) {
        g_set_error(error, VMM_ERROR, VMM_ERROR_LIBVIRT,
                    "cannot run query-migrate in domain '%s': %s",
                    virDomainGetName(dom), last_error());
        return FALSE;
    }
    /* libvirt allocates with malloc: copy into GLib's allocator. */
    reply = g_strdup(raw);
    free(raw);
    return vmm_page_hash_parse(reply, ph, error);
}

/* The address to probe among those @src gives for @dom, or NULL. */
static char *
domain_address_from(virDomainPtr dom, unsigned int src)
{
    virDomainInterfacePtr *ifaces = NULL;
    g_autoptr(GPtrArray) addrs = g_ptr_array_new();
    char *picked = NULL;
    int n;

    n = virDomainInterfaceAddresses(dom, &ifaces, src, 0);
    if (n < 0) {
        g_debug("no addresses of domain '%s' from source %u: %s",
                virDomainGetName(dom), src, last_error());
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        for (unsigned int j = 0; j < ifaces[i]->naddrs; j++) {
            g_ptr_array_add(addrs, ifaces[i]->addrs[j].addr);
        }
    }
    g_ptr_array_add(addrs, NULL);
    picked = g_strdup(vmm_probe_address_pick(
        (const char *const *)addrs->pdata));
    for (int i = 0; i < n; i++) {
        virDomainInterfaceFree(ifaces[i]);
    }
    free(ifaces);
    return picked;
}

/* The address of one of @dom's MACs in this host's ARP table, or NULL. */
static char *
local_arp_address(virDomainPtr dom)
{
    g_autofree char *table = NULL;
    g_autofree char *xml = NULL;
    g_auto(GStrv) macs = NULL;
    char *raw = virDomainGetXMLDesc(dom, 0);

    if (!raw) {
        g_debug("cannot get the XML of domain '%s': %s",
                virDomainGetName(dom), last_error());
        return NULL;
    }
    /* libvirt allocates with malloc: copy into GLib's allocator. */
    xml = g_strdup(raw);
    free(raw);
    macs = vmm_probe_macs_from_xml(xml);
    if (!macs[0] ||
        !g_file_get_contents("/proc/net/arp", &table, NULL, NULL)) {
        return NULL;
    }
    return vmm_probe_arp_lookup(table, (const char *const *)macs);
}

char *
vmm_domain_address(virDomainPtr dom, const char **source, GError **error)
{
    static const struct {
        unsigned int src;
        const char *name;
    } sources[] = {
        {VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE, "lease"},
        {VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT, "agent"},
        {VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP, "arp"},
    };

    char *address;

    for (guint i = 0; i < G_N_ELEMENTS(sources); i++) {
        address = domain_address_from(dom, sources[i].src);
        if (address) {
            *source = sources[i].name;
            return address;
        }
    }
    /* libvirt 9.0 fails to read the ARP table of recent kernels ("wrong
     * nlmsg len"); that of the host vm-migrate runs on is a text file. */
    address = local_arp_address(dom);
    if (address) {
        *source = "local-arp";
        return address;
    }
    g_set_error(error, VMM_ERROR, VMM_ERROR_NOT_FOUND,
                "no address known for domain '%s' (libvirt: DHCP leases, "
                "guest agent, ARP table of its host; ARP table here)",
                virDomainGetName(dom));
    return NULL;
}

/* Completed job statistics of @dom if they are those of this migration:
 * a stale record of an earlier job must not be reported as this one. */
static gboolean
completed_stats(virDomainPtr dom, gboolean migrated, VmmJobStats *stats)
{
    g_autoptr(GError) error = NULL;

    /* Keep them for whoever runs "virsh domjobinfo --completed" next. */
    if (!vmm_job_stats_get(dom,
                           VIR_DOMAIN_JOB_STATS_COMPLETED |
                               VIR_DOMAIN_JOB_STATS_KEEP_COMPLETED,
                           stats, &error)) {
        g_debug("%s", error->message);
        return FALSE;
    }
    if (migrated) {
        return stats->type == VIR_DOMAIN_JOB_COMPLETED;
    }
    return stats->type == VIR_DOMAIN_JOB_FAILED ||
           stats->type == VIR_DOMAIN_JOB_CANCELLED;
}

void
vmm_outcome_collect(const VmmPlanItem *item, gboolean migrated,
                    VmmOutcome *out)
{
    g_autoptr(GError) error = NULL;
    virConnectPtr dest = NULL;
    virDomainPtr dest_dom = NULL;

    out->have_stats = FALSE;
    vmm_job_stats_init(&out->stats);
    out->dest_page_hash = (VmmPageHash){.state = VMM_PAGE_HASH_UNKNOWN};

    /* A fresh connection: the one opened for the checks may have sat idle
     * through a long migration, and no keepalive guards it. */
    if (migrated) {
        dest = vmm_connect(item->entry->dest_uri, &error);
        if (!dest) {
            g_debug("%s", error->message);
            g_clear_error(&error);
        }
    }
    if (dest) {
        dest_dom = virDomainLookupByName(dest, item->entry->domain);
    }
    if (dest_dom) {
        /* libvirt hands the source's statistics to the destination at
         * the end of a migration. */
        out->have_stats = completed_stats(dest_dom, TRUE, &out->stats);
        if (!vmm_page_hash_query(dest_dom, &out->dest_page_hash, &error)) {
            g_debug("%s", error->message);
        }
        virDomainFree(dest_dom);
    }
    if (dest) {
        virConnectClose(dest);
    }
    /* After a success the source domain is gone (undefined if it was
     * persistent, shut off if transient); after a failure it is there. */
    if (!out->have_stats) {
        out->have_stats = completed_stats(item->dom, migrated, &out->stats);
    }
    if (!out->have_stats) {
        vmm_job_stats_init(&out->stats);
    }
}
