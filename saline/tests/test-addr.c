#include <string.h>

#include "sal-addr.h"
#include "sal-test.h"

typedef struct {
    char *dir;
    char *path;
    SalStore *store;
    SalAddr *addr;
} Fixture;

static void
open_all(Fixture *f)
{
    g_autoptr(GError) error = NULL;

    f->store = sal_store_open(f->path, &error);
    g_assert_no_error(error);
    f->addr = sal_addr_new(f->store, &error);
    g_assert_no_error(error);
    /* The test sites: a and b, as in the test topology. */
    g_assert_true(sal_addr_add_pool(f->addr, "a", "10.77.1.0/24",
                                    "10.77.1.10-10.77.1.200", "10.77.1.254",
                                    &error));
    g_assert_no_error(error);
    g_assert_true(
        sal_addr_add_pool(f->addr, "b", "10.77.2.0/24", NULL, NULL, &error));
    g_assert_no_error(error);
}

static void
close_all(Fixture *f)
{
    g_clear_pointer(&f->addr, sal_addr_unref);
    g_clear_pointer(&f->store, sal_store_free);
}

static void
fixture_set_up(Fixture *f, gconstpointer data)
{
    f->dir = sal_test_tmpdir();
    f->path = g_build_filename(f->dir, "saline.db", NULL);
    open_all(f);
}

static void
fixture_tear_down(Fixture *f, gconstpointer data)
{
    close_all(f);
    sal_test_rmdir(f->dir);
    g_free(f->dir);
    g_free(f->path);
}

/* A job of @n_vms VMs on @site, saved with its VMs (a lease needs them). */
static GPtrArray *
saved_vms(SalStore *store, guint n_vms, const char *site)
{
    g_autoptr(SalJob) job = sal_test_job(n_vms, site);
    GPtrArray *vms;

    vms = sal_test_vms(job, site);
    g_assert_true(sal_store_save_job(store, job, vms, NULL));
    return vms;
}

static SalVm *
vm_at(GPtrArray *vms, guint i)
{
    return vms->pdata[i];
}

static void
allocate_all(Fixture *f, GPtrArray *vms)
{
    g_autoptr(GError) error = NULL;

    g_assert_true(sal_addr_allocate_vms(f->addr, vms, &error));
    g_assert_no_error(error);
}

/* "ip ip ...": every lease, in sal_addr_list()'s order. */
static char *
leases(Fixture *f)
{
    g_autoptr(GPtrArray) list = sal_addr_list(f->addr);
    GString *s = g_string_new(NULL);

    for (guint i = 0; i < list->len; i++) {
        const SalLease *lease = list->pdata[i];

        g_string_append_printf(s, "%s%s", i ? " " : "", lease->ip);
    }
    return g_string_free(s, FALSE);
}

#define assert_leases(f, expected)                                             \
    do {                                                                       \
        g_autofree char *got_ = leases(f);                                     \
        g_assert_cmpstr(got_, ==, expected);                                   \
    } while (0)

static void
test_allocate(Fixture *f, gconstpointer data)
{
    g_autoptr(GPtrArray) vms = saved_vms(f->store, 3, "a");
    g_autoptr(GPtrArray) list = NULL;
    g_autoptr(SalJob) loaded = NULL;
    g_autoptr(GPtrArray) loaded_vms = NULL;
    const SalLease *lease;

    allocate_all(f, vms);
    g_assert_cmpstr(vm_at(vms, 0)->ip, ==, "10.77.1.10");
    g_assert_cmpstr(vm_at(vms, 0)->mac, ==, "52:54:00:4d:01:0a");
    g_assert_cmpstr(vm_at(vms, 2)->ip, ==, "10.77.1.12");
    g_assert_cmpstr(vm_at(vms, 2)->mac, ==, "52:54:00:4d:01:0c");

    list = sal_addr_list(f->addr);
    g_assert_cmpuint(list->len, ==, 3);
    lease = list->pdata[1];
    g_assert_cmpstr(lease->site, ==, "a");
    g_assert_cmpstr(lease->ip, ==, "10.77.1.11");
    g_assert_cmpint(lease->job_id, ==, vm_at(vms, 1)->job_id);
    g_assert_cmpuint(lease->vm_index, ==, 1);

    /* The VMs load with their addresses. */
    loaded =
        sal_store_load_job(f->store, vm_at(vms, 0)->job_id, &loaded_vms, NULL);
    g_assert_cmpstr(vm_at(loaded_vms, 1)->ip, ==, "10.77.1.11");
    g_assert_cmpstr(vm_at(loaded_vms, 1)->mac, ==, "52:54:00:4d:01:0b");

    /* Asking again for a VM that holds an address gives the same one. */
    g_assert_true(sal_addr_allocate(f->addr, vm_at(vms, 1), NULL));
    g_assert_cmpstr(vm_at(vms, 1)->ip, ==, "10.77.1.11");
    assert_leases(f, "10.77.1.10 10.77.1.11 10.77.1.12");
}

static void
test_sites(Fixture *f, gconstpointer data)
{
    g_autoptr(GPtrArray) in_a = saved_vms(f->store, 4, "a");
    g_autoptr(GPtrArray) in_b = saved_vms(f->store, 4, "b");
    g_autoptr(GPtrArray) list = NULL;
    g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);

    allocate_all(f, in_a);
    allocate_all(f, in_b);
    /* No range for b: from the first host address. */
    g_assert_cmpstr(vm_at(in_b, 0)->ip, ==, "10.77.2.1");
    g_assert_cmpstr(vm_at(in_b, 0)->mac, ==, "52:54:00:4d:02:01");

    /* No address and no MAC twice, grid-wide. */
    list = sal_addr_list(f->addr);
    g_assert_cmpuint(list->len, ==, 8);
    for (guint i = 0; i < list->len; i++) {
        const SalLease *lease = list->pdata[i];

        g_assert_true(g_hash_table_add(seen, lease->ip));
        g_assert_true(g_hash_table_add(seen, lease->mac));
        g_assert_cmpstr(lease->site, ==, i < 4 ? "a" : "b");
    }

    /* A VM of b asking for an address of a. */
    g_free(vm_at(in_b, 0)->site);
    vm_at(in_b, 0)->site = g_strdup("a");
    {
        g_autoptr(GError) error = NULL;

        g_assert_false(sal_addr_allocate(f->addr, vm_at(in_b, 0), &error));
        g_assert_error(error, SAL_ERROR, SAL_ERROR_CONFLICT);
        g_assert_cmpstr(error->message, ==,
                        "VM 0 of job 2 already holds address '10.77.2.1' of "
                        "site 'b'");
    }
}

static void
test_pools(Fixture *f, gconstpointer data)
{
    static const struct {
        const char *site, *cidr, *range, *gateway;
        gint code;
        const char *message;
    } bad[] = {
        {"a", "10.78.1.0/24", NULL, NULL, SAL_ERROR_CONFLICT,
         "site 'a' already has an address pool"},
        {"c", "10.77.1.128/25", NULL, NULL, SAL_ERROR_CONFLICT,
         "pool '10.77.1.128/25' of site 'c' overlaps pool '10.77.1.0/24' of "
         "site 'a'"},
        {"c", "11.77.2.0/24", NULL, NULL, SAL_ERROR_CONFLICT,
         "pool '11.77.2.0/24' of site 'c' would share MAC addresses with "
         "pool '10.77.2.0/24' of site 'b'"},
        {"c", "10.77.3.0", NULL, NULL, SAL_ERROR_INVALID,
         "invalid network '10.77.3.0': use A.B.C.D/N with N from 8 to 30"},
        {"c", "10.0.0.0/7", NULL, NULL, SAL_ERROR_INVALID, NULL},
        {"c", "10.77.3.0/31", NULL, NULL, SAL_ERROR_INVALID, NULL},
        {"c", "10.77.3.0/24/1", NULL, NULL, SAL_ERROR_INVALID, NULL},
        {"c", "10.77.300.0/24", NULL, NULL, SAL_ERROR_INVALID, NULL},
        {"c", "10.77.3.5/24", NULL, NULL, SAL_ERROR_INVALID,
         "network '10.77.3.5/24' has host bits set"},
        {"c", "10.77.3.0/24", "10.77.4.1-10.77.4.9", NULL, SAL_ERROR_INVALID,
         "invalid range '10.77.4.1-10.77.4.9': use FIRST-LAST, host "
         "addresses of '10.77.3.0/24'"},
        {"c", "10.77.3.0/24", "10.77.3.9-10.77.3.1", NULL, SAL_ERROR_INVALID,
         NULL},
        {"c", "10.77.3.0/24", "10.77.3.0-10.77.3.9", NULL, SAL_ERROR_INVALID,
         NULL},
        {"c", "10.77.3.0/24", "10.77.3.9-10.77.3.255", NULL, SAL_ERROR_INVALID,
         NULL},
        {"c", "10.77.3.0/24", "10.77.3.9", NULL, SAL_ERROR_INVALID, NULL},
        {"c", "10.77.3.0/24", NULL, "10.77.4.1", SAL_ERROR_INVALID,
         "gateway '10.77.4.1' is not a host address of '10.77.3.0/24'"},
        {"c", "10.77.3.0/24", "10.77.3.5-10.77.3.5", "10.77.3.5",
         SAL_ERROR_INVALID,
         "pool '10.77.3.0/24' of site 'c' has no address but its gateway"},
        {"c d", "10.77.3.0/24", NULL, NULL, SAL_ERROR_INVALID, NULL},
    };

    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GError) error = NULL;

        g_assert_false(sal_addr_add_pool(f->addr, bad[i].site, bad[i].cidr,
                                         bad[i].range, bad[i].gateway, &error));
        g_assert_error(error, SAL_ERROR, bad[i].code);
        g_test_message("%s", error->message);
        if (bad[i].message) {
            g_assert_cmpstr(error->message, ==, bad[i].message);
        }
    }
    /* Beside them, a pool that shares nothing is fine. */
    g_assert_true(
        sal_addr_add_pool(f->addr, "c", "10.77.3.0/24", NULL, NULL, NULL));
    g_assert_true(sal_addr_add_pool(f->addr, "d", "192.168.0.0/16",
                                    "192.168.10.1-192.168.10.20", NULL, NULL));
}

/* Leases survive a restart: the reopened manager hands out none of them
 * again, in any site. */
static void
test_reopen(Fixture *f, gconstpointer data)
{
    g_autoptr(GPtrArray) first_a = saved_vms(f->store, 2, "a");
    g_autoptr(GPtrArray) first_b = saved_vms(f->store, 1, "b");
    g_autoptr(GPtrArray) next_a = NULL;
    g_autoptr(GPtrArray) next_b = NULL;

    allocate_all(f, first_a);
    allocate_all(f, first_b);
    close_all(f);

    open_all(f);
    assert_leases(f, "10.77.1.10 10.77.1.11 10.77.2.1");
    next_a = saved_vms(f->store, 1, "a");
    next_b = saved_vms(f->store, 1, "b");
    allocate_all(f, next_a);
    allocate_all(f, next_b);
    g_assert_cmpstr(vm_at(next_a, 0)->ip, ==, "10.77.1.12");
    g_assert_cmpstr(vm_at(next_b, 0)->ip, ==, "10.77.2.2");
}

static void
test_release(Fixture *f, gconstpointer data)
{
    g_autoptr(GPtrArray) one = saved_vms(f->store, 2, "a");
    g_autoptr(GPtrArray) two = saved_vms(f->store, 2, "a");
    g_autoptr(GPtrArray) three = saved_vms(f->store, 3, "a");
    g_autoptr(GError) error = NULL;

    allocate_all(f, one);
    allocate_all(f, two);
    assert_leases(f, "10.77.1.10 10.77.1.11 10.77.1.12 10.77.1.13");

    /* The job ends: its addresses are free again, for the next job. */
    g_assert_true(sal_addr_release_job(f->addr, vm_at(one, 0)->job_id, NULL));
    assert_leases(f, "10.77.1.12 10.77.1.13");
    /* One VM of a job dies: only its address goes. */
    g_assert_true(sal_addr_release_vm(f->addr, vm_at(two, 0)->job_id, 1, NULL));
    assert_leases(f, "10.77.1.12");
    /* Releasing what is not held is no error. */
    g_assert_true(sal_addr_release_job(f->addr, 999, &error));
    g_assert_no_error(error);

    allocate_all(f, three);
    g_assert_cmpstr(vm_at(three, 0)->ip, ==, "10.77.1.10");
    g_assert_cmpstr(vm_at(three, 1)->ip, ==, "10.77.1.11");
    g_assert_cmpstr(vm_at(three, 2)->ip, ==, "10.77.1.13");

    /* And the store agrees, after a restart. */
    close_all(f);
    open_all(f);
    assert_leases(f, "10.77.1.10 10.77.1.11 10.77.1.12 10.77.1.13");
}

static void
test_exhausted(Fixture *f, gconstpointer data)
{
    g_autoptr(GPtrArray) fill = saved_vms(f->store, 4, "c");
    g_autoptr(GPtrArray) two = saved_vms(f->store, 2, "c");
    g_autoptr(GPtrArray) nowhere = saved_vms(f->store, 1, "x");
    g_autoptr(GError) error = NULL;

    /* Hosts .1 to .6, but the gateway: 5 addresses. */
    g_assert_true(sal_addr_add_pool(f->addr, "c", "10.77.3.0/29", NULL,
                                    "10.77.3.3", NULL));
    allocate_all(f, fill);
    g_assert_cmpstr(vm_at(fill, 2)->ip, ==, "10.77.3.4");

    /* One address left for two VMs: neither gets one. */
    g_assert_false(sal_addr_allocate_vms(f->addr, two, &error));
    g_assert_error(error, SAL_ERROR, SAL_ERROR_EXHAUSTED);
    g_assert_cmpstr(error->message, ==,
                    "address pool '10.77.3.0/29' of site 'c' is exhausted");
    g_assert_null(vm_at(two, 0)->ip);
    g_assert_null(vm_at(two, 0)->mac);
    assert_leases(f, "10.77.3.1 10.77.3.2 10.77.3.4 10.77.3.5");
    g_clear_error(&error);

    /* The last one is still there for a single VM. */
    g_assert_true(sal_addr_allocate(f->addr, vm_at(two, 1), NULL));
    g_assert_cmpstr(vm_at(two, 1)->ip, ==, "10.77.3.6");

    g_assert_false(sal_addr_allocate(f->addr, vm_at(nowhere, 0), &error));
    g_assert_error(error, SAL_ERROR, SAL_ERROR_NOT_FOUND);
    g_assert_cmpstr(error->message, ==, "site 'x' has no address pool");
}

/* The memory follows the store when a caller's transaction rolls back:
 * addresses allocated in it are free again, released ones held again. */
static void
test_rollback(Fixture *f, gconstpointer data)
{
    g_autoptr(GPtrArray) kept = saved_vms(f->store, 1, "a");
    g_autoptr(GPtrArray) undone = saved_vms(f->store, 2, "a");
    g_autoptr(GPtrArray) later = saved_vms(f->store, 1, "a");

    allocate_all(f, kept);
    g_assert_true(sal_store_begin(f->store, NULL));
    allocate_all(f, undone);
    g_assert_true(sal_addr_release_job(f->addr, vm_at(kept, 0)->job_id, NULL));
    assert_leases(f, "10.77.1.11 10.77.1.12");
    sal_store_rollback(f->store);
    assert_leases(f, "10.77.1.10");

    allocate_all(f, later);
    g_assert_cmpstr(vm_at(later, 0)->ip, ==, "10.77.1.11");
    close_all(f);
    open_all(f);
    assert_leases(f, "10.77.1.10 10.77.1.11");
}

/* Even if the memory is wrong (a lease written behind its back), the
 * store's constraints refuse to hand an address out twice. */
static void
test_store_guards(Fixture *f, gconstpointer data)
{
    g_autoptr(GPtrArray) other = saved_vms(f->store, 1, "a");
    g_autoptr(GPtrArray) vms = saved_vms(f->store, 1, "a");
    g_autoptr(GError) error = NULL;
    SalLease sneaky = {
        .site = "a",
        .ip = "10.77.1.10",
        .mac = "52:54:00:4d:01:0a",
    };

    sneaky.job_id = vm_at(other, 0)->job_id;
    g_assert_true(sal_store_add_lease(f->store, &sneaky, NULL));
    g_assert_false(sal_addr_allocate(f->addr, vm_at(vms, 0), &error));
    g_assert_error(error, SAL_ERROR, SAL_ERROR_CONFLICT);
    g_test_message("%s", error->message);
    g_assert_null(vm_at(vms, 0)->ip);
    assert_leases(f, "");

    /* After a restart the memory knows it, and moves on. */
    close_all(f);
    open_all(f);
    allocate_all(f, vms);
    g_assert_cmpstr(vm_at(vms, 0)->ip, ==, "10.77.1.11");
}

/* Leases of an older layout, or outside today's pools, may carry a MAC
 * not derived from their address: neither their address nor their MAC
 * is handed out. */
static void
test_foreign_leases(Fixture *f, gconstpointer data)
{
    g_autoptr(GPtrArray) old = saved_vms(f->store, 2, "a");
    g_autoptr(GPtrArray) vms = saved_vms(f->store, 1, "a");
    SalLease odd_mac = {
        .site = "a",
        .ip = "10.77.1.10",
        .mac = "aa:bb:cc:00:00:01",
    };
    SalLease odd_ip = {
        .site = "gone",
        .ip = "10.99.0.1",
        .mac = "52:54:00:4d:01:0b", /* that of 10.77.1.11 */
        .vm_index = 1,
    };

    odd_mac.job_id = odd_ip.job_id = vm_at(old, 0)->job_id;
    close_all(f);
    f->store = sal_store_open(f->path, NULL);
    g_assert_true(sal_store_add_lease(f->store, &odd_mac, NULL));
    g_assert_true(sal_store_add_lease(f->store, &odd_ip, NULL));
    g_clear_pointer(&f->store, sal_store_free);

    open_all(f);
    allocate_all(f, vms);
    g_assert_cmpstr(vm_at(vms, 0)->ip, ==, "10.77.1.12");
    assert_leases(f, "10.77.1.10 10.77.1.12 10.99.0.1");
}

static void
add(const char *name, void (*func)(Fixture *, gconstpointer))
{
    g_test_add(name, Fixture, NULL, fixture_set_up, func, fixture_tear_down);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    add("/addr/allocate", test_allocate);
    add("/addr/sites", test_sites);
    add("/addr/pools", test_pools);
    add("/addr/reopen", test_reopen);
    add("/addr/release", test_release);
    add("/addr/exhausted", test_exhausted);
    add("/addr/rollback", test_rollback);
    add("/addr/store-guards", test_store_guards);
    add("/addr/foreign-leases", test_foreign_leases);
    return g_test_run();
}
