#include "sal-addr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

/* Longest address text accepted: "255.255.255.255/32" and a range of two
 * addresses fit. */
#define ADDR_TEXT_MAX 32
/* A MAC is QEMU's prefix and the low 24 bits of the address. */
#define MAC_PREFIX G_GINT64_CONSTANT(0x525400000000)
#define MAC_BITS 0xffffffu

typedef struct {
    char *site;
    char *cidr;    /* as configured, for messages */
    guint32 first; /* host byte order */
    guint32 last;
    guint32 gateway;
    gboolean has_gateway;
} Pool;

/* A lease in memory: the row, and its address, MAC and VM as keys. */
typedef struct {
    SalLease *row;
    guint32 ip;
    gint64 mac;
    gint64 vm_key;
} Lease;

/* An address is free if no lease has it nor its MAC: leases loaded from
 * the store may lie outside today's pools, or carry a MAC of an older
 * layout that is not derived from their address. */
struct SalAddr {
    SalStore *store;
    GPtrArray *pools;   /* Pool * */
    GHashTable *by_ip;  /* GUINT_TO_POINTER(ip) -> Lease * (owned) */
    GHashTable *by_mac; /* &mac -> Lease * */
    GHashTable *by_vm;  /* &vm_key -> Lease * */
};

/* An in-memory change to take back if its transaction rolls back: a
 * released @lease to put back, or the allocation of @vm_key. */
typedef struct {
    SalAddr *addr;
    Lease *lease;
    gint64 vm_key;
} Change;

static gint64
vm_key(gint64 job_id, guint vm_index)
{
    return job_id << 16 | vm_index;
}

static void
pool_free(Pool *pool)
{
    g_free(pool->site);
    g_free(pool->cidr);
    g_free(pool);
}

static void
lease_free(Lease *lease)
{
    if (!lease) {
        return;
    }
    sal_lease_free(lease->row);
    g_free(lease);
}

static gboolean
ip_parse(const char *text, guint32 *ip)
{
    struct in_addr a;

    if (inet_pton(AF_INET, text, &a) != 1) {
        return FALSE;
    }
    *ip = ntohl(a.s_addr);
    return TRUE;
}

static gint64
mac_of(guint32 ip)
{
    return MAC_PREFIX | (ip & MAC_BITS);
}

static gboolean
mac_parse(const char *text, gint64 *mac)
{
    guint b[6];
    char end;

    if (sscanf(text, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3],
               &b[4], &b[5], &end) != 6) {
        return FALSE;
    }
    *mac = 0;
    for (guint i = 0; i < 6; i++) {
        *mac = *mac << 8 | b[i];
    }
    return TRUE;
}

/* Takes @row. */
static Lease *
lease_new(SalLease *row, guint32 ip, gint64 mac)
{
    Lease *lease = g_new0(Lease, 1);

    lease->row = row;
    lease->ip = ip;
    lease->mac = mac;
    lease->vm_key = vm_key(row->job_id, row->vm_index);
    return lease;
}

/* The lease of the address @ip, which has its MAC derived from it. */
static Lease *
lease_make(const char *site, guint32 ip, gint64 job_id, guint vm_index)
{
    SalLease *row = g_new0(SalLease, 1);
    gint64 mac = mac_of(ip);

    row->site = g_strdup(site);
    row->ip = g_strdup_printf("%u.%u.%u.%u", ip >> 24, (ip >> 16) & 0xff,
                              (ip >> 8) & 0xff, ip & 0xff);
    row->mac = g_strdup_printf(
        "%02x:%02x:%02x:%02x:%02x:%02x", (guint)(mac >> 40) & 0xff,
        (guint)(mac >> 32) & 0xff, (guint)(mac >> 24) & 0xff,
        (guint)(mac >> 16) & 0xff, (guint)(mac >> 8) & 0xff, (guint)mac & 0xff);
    row->job_id = job_id;
    row->vm_index = vm_index;
    return lease_new(row, ip, mac);
}

static void
lease_insert(SalAddr *addr, Lease *lease)
{
    g_hash_table_insert(addr->by_ip, GUINT_TO_POINTER(lease->ip), lease);
    g_hash_table_insert(addr->by_mac, &lease->mac, lease);
    g_hash_table_insert(addr->by_vm, &lease->vm_key, lease);
}

/* Takes @lease out of the tables and hands it to the caller. */
static Lease *
lease_steal(SalAddr *addr, Lease *lease)
{
    g_hash_table_remove(addr->by_vm, &lease->vm_key);
    g_hash_table_remove(addr->by_mac, &lease->mac);
    g_hash_table_steal(addr->by_ip, GUINT_TO_POINTER(lease->ip));
    return lease;
}

static void
addr_free(SalAddr *addr)
{
    g_ptr_array_unref(addr->pools);
    g_hash_table_unref(addr->by_vm);
    g_hash_table_unref(addr->by_mac);
    g_hash_table_unref(addr->by_ip);
}

SalAddr *
sal_addr_ref(SalAddr *addr)
{
    return g_rc_box_acquire(addr);
}

void
sal_addr_unref(SalAddr *addr)
{
    if (addr) {
        g_rc_box_release_full(addr, (GDestroyNotify)addr_free);
    }
}

SalAddr *
sal_addr_new(SalStore *store, GError **error)
{
    g_autoptr(SalAddr) addr = g_rc_box_new0(SalAddr);
    g_autoptr(GPtrArray) rows = sal_store_load_leases(store, error);

    addr->store = store;
    addr->pools = g_ptr_array_new_with_free_func((GDestroyNotify)pool_free);
    addr->by_ip = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL,
                                        (GDestroyNotify)lease_free);
    addr->by_mac = g_hash_table_new(g_int64_hash, g_int64_equal);
    addr->by_vm = g_hash_table_new(g_int64_hash, g_int64_equal);
    if (!rows) {
        return NULL;
    }
    /* Leases outside today's pools stay: their VMs still use them. */
    for (guint i = 0; i < rows->len; i++) {
        const SalLease *row = rows->pdata[i];
        guint32 ip;
        gint64 mac;

        if (!ip_parse(row->ip, &ip) || !mac_parse(row->mac, &mac)) {
            g_set_error(error, SAL_ERROR, SAL_ERROR_STORE,
                        "lease '%s' ('%s') in the database is malformed",
                        row->ip, row->mac);
            return NULL;
        }
        lease_insert(addr, lease_new(sal_lease_copy(row), ip, mac));
    }
    return g_steal_pointer(&addr);
}

static Pool *
pool_find(SalAddr *addr, const char *site)
{
    for (guint i = 0; i < addr->pools->len; i++) {
        Pool *pool = addr->pools->pdata[i];

        if (g_str_equal(pool->site, site)) {
            return pool;
        }
    }
    return NULL;
}

/* "A.B.C.D/N", N from 8 (so a pool's addresses share their first byte
 * and differ in the 24 bits a MAC carries) to 30. */
static gboolean
cidr_parse(const char *cidr, guint32 *net, guint32 *mask, GError **error)
{
    g_auto(GStrv) parts = NULL;
    guint64 prefix = 0;

    if (!sal_text_validate("network", cidr, ADDR_TEXT_MAX, error)) {
        return FALSE;
    }
    parts = g_strsplit(cidr, "/", 0);
    if (g_strv_length(parts) != 2 || !ip_parse(parts[0], net) ||
        !g_ascii_string_to_unsigned(parts[1], 10, 8, 30, &prefix, NULL)) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                    "invalid network '%s': use A.B.C.D/N with N from 8 to 30",
                    cidr);
        return FALSE;
    }
    *mask = G_MAXUINT32 << (32 - prefix);
    if (*net & ~*mask) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                    "network '%s' has host bits set", cidr);
        return FALSE;
    }
    return TRUE;
}

/* Host address of the network (net, mask]: neither its network nor its
 * broadcast address. */
static gboolean
host_parse(const char *text, guint32 net, guint32 mask, guint32 *ip)
{
    return ip_parse(text, ip) && (*ip & mask) == net && *ip != net &&
           *ip != (net | ~mask);
}

static gboolean
range_parse(Pool *pool, const char *range, guint32 net, guint32 mask,
            GError **error)
{
    g_auto(GStrv) ends = NULL;

    if (!range) {
        pool->first = net + 1;
        pool->last = (net | ~mask) - 1;
        return TRUE;
    }
    if (!sal_text_validate("address range", range, ADDR_TEXT_MAX, error)) {
        return FALSE;
    }
    ends = g_strsplit(range, "-", 0);
    if (g_strv_length(ends) != 2 ||
        !host_parse(ends[0], net, mask, &pool->first) ||
        !host_parse(ends[1], net, mask, &pool->last) ||
        pool->first > pool->last) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                    "invalid range '%s': use FIRST-LAST, host addresses of "
                    "'%s'",
                    range, pool->cidr);
        return FALSE;
    }
    return TRUE;
}

static gboolean
overlap(guint32 a_first, guint32 a_last, guint32 b_first, guint32 b_last)
{
    return a_first <= b_last && b_first <= a_last;
}

/* No address, and no MAC, may belong to two pools. */
static gboolean
pool_check_others(SalAddr *addr, const Pool *pool, GError **error)
{
    for (guint i = 0; i < addr->pools->len; i++) {
        const Pool *other = addr->pools->pdata[i];

        if (overlap(pool->first, pool->last, other->first, other->last)) {
            g_set_error(error, SAL_ERROR, SAL_ERROR_CONFLICT,
                        "pool '%s' of site '%s' overlaps pool '%s' of site "
                        "'%s'",
                        pool->cidr, pool->site, other->cidr, other->site);
            return FALSE;
        }
        if (overlap(pool->first & MAC_BITS, pool->last & MAC_BITS,
                    other->first & MAC_BITS, other->last & MAC_BITS)) {
            g_set_error(error, SAL_ERROR, SAL_ERROR_CONFLICT,
                        "pool '%s' of site '%s' would share MAC addresses "
                        "with pool '%s' of site '%s'",
                        pool->cidr, pool->site, other->cidr, other->site);
            return FALSE;
        }
    }
    return TRUE;
}

gboolean
sal_addr_add_pool(SalAddr *addr, const char *site, const char *cidr,
                  const char *range, const char *gateway, GError **error)
{
    g_autoptr(GPtrArray) holder =
        g_ptr_array_new_with_free_func((GDestroyNotify)pool_free);
    Pool *pool;
    guint32 net, mask;

    if (!sal_name_validate("site", site, error)) {
        return FALSE;
    }
    if (pool_find(addr, site)) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_CONFLICT,
                    "site '%s' already has an address pool", site);
        return FALSE;
    }
    if (!cidr_parse(cidr, &net, &mask, error)) {
        return FALSE;
    }
    pool = g_new0(Pool, 1);
    g_ptr_array_add(holder, pool);
    pool->site = g_strdup(site);
    pool->cidr = g_strdup(cidr);
    if (!range_parse(pool, range, net, mask, error)) {
        return FALSE;
    }
    if (gateway) {
        if (!sal_text_validate("gateway", gateway, ADDR_TEXT_MAX, error)) {
            return FALSE;
        }
        if (!host_parse(gateway, net, mask, &pool->gateway)) {
            g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                        "gateway '%s' is not a host address of '%s'", gateway,
                        cidr);
            return FALSE;
        }
        pool->has_gateway = TRUE;
    }
    if (pool->first == pool->last && pool->has_gateway &&
        pool->gateway == pool->first) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                    "pool '%s' of site '%s' has no address but its gateway",
                    cidr, site);
        return FALSE;
    }
    if (!pool_check_others(addr, pool, error)) {
        return FALSE;
    }
    g_ptr_array_add(addr->pools, g_ptr_array_steal_index(holder, 0));
    return TRUE;
}

static void
change_undo(gpointer data)
{
    Change *c = data;
    Lease *lease;

    if (c->lease) {
        lease_insert(c->addr, g_steal_pointer(&c->lease));
    } else if ((lease = g_hash_table_lookup(c->addr->by_vm, &c->vm_key))) {
        lease_free(lease_steal(c->addr, lease));
    }
}

static void
change_free(gpointer data)
{
    Change *c = data;

    lease_free(c->lease);
    sal_addr_unref(c->addr);
    g_free(c);
}

static void
change_record(SalAddr *addr, Lease *released, gint64 allocated_key)
{
    Change *c = g_new0(Change, 1);

    c->addr = sal_addr_ref(addr);
    c->lease = released;
    c->vm_key = allocated_key;
    sal_store_on_rollback(addr->store, change_undo, c, change_free);
}

static void
vm_set_address(SalVm *vm, const Lease *lease)
{
    g_free(vm->ip);
    g_free(vm->mac);
    vm->ip = g_strdup(lease->row->ip);
    vm->mac = g_strdup(lease->row->mac);
}

static gboolean
address_free(SalAddr *addr, const Pool *pool, guint32 ip)
{
    gint64 mac = mac_of(ip);

    return !(pool->has_gateway && ip == pool->gateway) &&
           !g_hash_table_contains(addr->by_ip, GUINT_TO_POINTER(ip)) &&
           !g_hash_table_contains(addr->by_mac, &mac);
}

/* The lowest free address of @pool, or FALSE if there is none. */
static gboolean
pool_next_free(SalAddr *addr, const Pool *pool, guint32 *ip)
{
    for (guint32 a = pool->first;; a++) {
        if (address_free(addr, pool, a)) {
            *ip = a;
            return TRUE;
        }
        if (a == pool->last) {
            return FALSE;
        }
    }
}

gboolean
sal_addr_allocate(SalAddr *addr, SalVm *vm, GError **error)
{
    gint64 key = vm_key(vm->job_id, vm->index);
    Lease *lease = g_hash_table_lookup(addr->by_vm, &key);
    const Pool *pool;
    guint32 ip;
    gboolean ok;

    g_return_val_if_fail(vm->index < SAL_MAX_VMS, FALSE);

    if (lease) {
        if (g_strcmp0(lease->row->site, vm->site) != 0) {
            g_set_error(error, SAL_ERROR, SAL_ERROR_CONFLICT,
                        "VM %u of job %" G_GINT64_FORMAT
                        " already holds address '%s' of site '%s'",
                        vm->index, vm->job_id, lease->row->ip,
                        lease->row->site);
            return FALSE;
        }
        vm_set_address(vm, lease);
        return TRUE;
    }
    if (!vm->site) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                    "VM %u of job %" G_GINT64_FORMAT " has no site", vm->index,
                    vm->job_id);
        return FALSE;
    }
    pool = pool_find(addr, vm->site);
    if (!pool) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_NOT_FOUND,
                    "site '%s' has no address pool", vm->site);
        return FALSE;
    }
    if (!pool_next_free(addr, pool, &ip)) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_EXHAUSTED,
                    "address pool '%s' of site '%s' is exhausted", pool->cidr,
                    pool->site);
        return FALSE;
    }

    lease = lease_make(pool->site, ip, vm->job_id, vm->index);
    if (!sal_store_begin(addr->store, error)) {
        lease_free(lease);
        return FALSE;
    }
    ok = sal_store_add_lease(addr->store, lease->row, error);
    if (ok) {
        lease_insert(addr, lease);
        change_record(addr, NULL, lease->vm_key);
    } else {
        lease_free(lease);
    }
    if (!sal_store_end(addr->store, ok, error)) {
        return FALSE;
    }
    vm_set_address(vm, g_hash_table_lookup(addr->by_vm, &key));
    return TRUE;
}

gboolean
sal_addr_allocate_vms(SalAddr *addr, GPtrArray *vms, GError **error)
{
    g_autofree gboolean *had = g_new0(gboolean, vms->len + 1);
    gboolean ok = TRUE;

    if (!sal_store_begin(addr->store, error)) {
        return FALSE;
    }
    for (guint i = 0; ok && i < vms->len; i++) {
        SalVm *vm = vms->pdata[i];

        had[i] = vm->ip != NULL;
        ok = sal_addr_allocate(addr, vm, error);
    }
    if (sal_store_end(addr->store, ok, error)) {
        return TRUE;
    }
    for (guint i = 0; i < vms->len; i++) {
        SalVm *vm = vms->pdata[i];

        if (!had[i]) {
            g_clear_pointer(&vm->ip, g_free);
            g_clear_pointer(&vm->mac, g_free);
        }
    }
    return FALSE;
}

static gboolean
release(SalAddr *addr, gint64 job_id, gint vm_index, GError **error)
{
    g_autoptr(GPtrArray) gone = g_ptr_array_new();
    GHashTableIter it;
    Lease *lease;
    gboolean ok;

    g_hash_table_iter_init(&it, addr->by_ip);
    while (g_hash_table_iter_next(&it, NULL, (gpointer *)&lease)) {
        if (lease->row->job_id == job_id &&
            (vm_index < 0 || lease->row->vm_index == (guint)vm_index)) {
            g_ptr_array_add(gone, lease);
        }
    }
    if (!sal_store_begin(addr->store, error)) {
        return FALSE;
    }
    ok = sal_store_remove_leases(addr->store, job_id, vm_index, error);
    for (guint i = 0; ok && i < gone->len; i++) {
        change_record(addr, lease_steal(addr, gone->pdata[i]), 0);
    }
    return sal_store_end(addr->store, ok, error);
}

gboolean
sal_addr_release_job(SalAddr *addr, gint64 job_id, GError **error)
{
    return release(addr, job_id, -1, error);
}

gboolean
sal_addr_release_vm(SalAddr *addr, gint64 job_id, guint vm_index,
                    GError **error)
{
    g_return_val_if_fail(vm_index < SAL_MAX_VMS, FALSE);
    return release(addr, job_id, (gint)vm_index, error);
}

static gint
lease_cmp(gconstpointer a, gconstpointer b)
{
    const Lease *x = *(const Lease *const *)a;
    const Lease *y = *(const Lease *const *)b;
    int c = strcmp(x->row->site, y->row->site);

    if (c != 0) {
        return c;
    }
    return (x->ip > y->ip) - (x->ip < y->ip);
}

GPtrArray *
sal_addr_list(SalAddr *addr)
{
    g_autoptr(GPtrArray) leases = g_ptr_array_new();
    GPtrArray *rows =
        g_ptr_array_new_with_free_func((GDestroyNotify)sal_lease_free);
    GHashTableIter it;
    Lease *lease;

    g_hash_table_iter_init(&it, addr->by_ip);
    while (g_hash_table_iter_next(&it, NULL, (gpointer *)&lease)) {
        g_ptr_array_add(leases, lease);
    }
    g_ptr_array_sort(leases, lease_cmp);
    for (guint i = 0; i < leases->len; i++) {
        g_ptr_array_add(rows, sal_lease_copy(((Lease *)leases->pdata[i])->row));
    }
    return rows;
}
