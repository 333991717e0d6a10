/* The checks made before migrating, against libvirt's test driver. */
#include <libvirt/libvirt.h>
#include <string.h>

#include "test-node.h"
#include "vmm-error.h"
#include "vmm-virt.h"

static TestNode *node;

static VmmPlacement *
placement_one(const char *domain, const char *dest)
{
    VmmPlacement *p = vmm_placement_new();
    g_autoptr(GError) error = NULL;

    g_assert_true(vmm_placement_add(p, domain, dest, NULL, 0, &error));
    g_assert_no_error(error);
    return p;
}

/* Checking @domain from @source to @dest fails with @code and @message
 * (if @message ends with '*': a message that starts with the rest). */
static void
assert_check_fails(const char *domain, const char *source, const char *dest,
                   int code, const char *message)
{
    g_autoptr(VmmPlacement) p = placement_one(domain, dest);
    g_autoptr(GError) error = NULL;
    g_autoptr(VmmPlan) plan = vmm_plan_check(p, source, &error);
    g_autofree char *prefix = NULL;

    g_assert_null(plan);
    g_assert_error(error, VMM_ERROR, code);
    if (g_str_has_suffix(message, "*")) {
        prefix = g_strndup(message, strlen(message) - 1);
        g_assert_true(g_str_has_prefix(error->message, prefix));
    } else {
        g_assert_cmpstr(error->message, ==, message);
    }
}

static void
test_unknown_domain(void)
{
    assert_check_fails("nosuch", "test:///default", node->uri,
                       VMM_ERROR_NOT_FOUND,
                       "domain 'nosuch' not found on 'test:///default'");
}

static void
test_not_running(void)
{
    g_autofree char *message = g_strdup_printf(
        "domain 'idle1' on '%s' is shut off, not running", node->uri);

    assert_check_fails("idle1", node->uri, "test:///default",
                       VMM_ERROR_STATE, message);
}

static void
test_paused(void)
{
    virConnectPtr conn = virConnectOpen("test:///default");
    virDomainPtr dom = virDomainLookupByName(conn, "test");

    /* test:///default is one shared host within a process. */
    g_assert_cmpint(virDomainSuspend(dom), ==, 0);
    assert_check_fails("test", "test:///default", node->uri, VMM_ERROR_STATE,
                       "domain 'test' on 'test:///default' is paused, not "
                       "running");
    g_assert_cmpint(virDomainResume(dom), ==, 0);
    virDomainFree(dom);
    virConnectClose(conn);
}

static void
test_exists_at_dest(void)
{
    g_autofree char *message =
        g_strdup_printf("domain 'test' already exists on '%s'", node->uri);

    assert_check_fails("test", "test:///default", node->uri,
                       VMM_ERROR_STATE, message);
}

static void
test_same_uri(void)
{
    assert_check_fails("test", "test:///default", "test:///default",
                       VMM_ERROR_INVALID,
                       "domain 'test': destination 'test:///default' is its "
                       "source");
}

static void
test_unreachable(void)
{
    assert_check_fails("test", "test:///default",
                       "qemu+tcp://127.0.0.1:1/system", VMM_ERROR_LIBVIRT,
                       "cannot connect to 'qemu+tcp://127.0.0.1:1/system': *");
    assert_check_fails("test", "qemu+tcp://127.0.0.1:1/system",
                       "test:///default", VMM_ERROR_LIBVIRT,
                       "cannot connect to 'qemu+tcp://127.0.0.1:1/system': *");
}

/* The first bad domain of a placement is the error, whatever its line. */
static void
test_first_error(void)
{
    g_autoptr(VmmPlacement) p = vmm_placement_new();
    g_autoptr(GError) error = NULL;
    g_autoptr(VmmPlan) plan = NULL;

    g_assert_true(vmm_placement_add(p, "web1", "test:///default", NULL, 1,
                                    &error));
    g_assert_true(vmm_placement_add(p, "gone", "test:///default", NULL, 2,
                                    &error));
    plan = vmm_plan_check(p, node->uri, &error);
    g_assert_null(plan);
    g_assert_error(error, VMM_ERROR, VMM_ERROR_NOT_FOUND);
}

static void
test_good_plan(void)
{
    g_autoptr(VmmPlacement) p = vmm_placement_new();
    g_autoptr(GError) error = NULL;
    g_autoptr(VmmPlan) plan = NULL;
    const VmmPlanItem *web1, *tr1;
    VmmOutcome out;

    g_assert_true(vmm_placement_add(p, "web1", "test:///default", NULL, 1,
                                    &error));
    g_assert_true(vmm_placement_add(p, "tr1", "test:///default", node->uri,
                                    2, &error));
    plan = vmm_plan_check(p, "qemu+tcp://127.0.0.1:1/unused", &error);
    g_assert_null(plan);
    g_clear_error(&error);

    plan = vmm_plan_check(p, node->uri, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(vmm_plan_size(plan), ==, 2);
    web1 = vmm_plan_get(plan, 0);
    tr1 = vmm_plan_get(plan, 1);
    g_assert_cmpstr(web1->source_uri, ==, node->uri);
    g_assert_true(web1->persistent);
    g_assert_false(tr1->persistent);
    g_assert_true(web1->source == tr1->source);
    g_assert_cmpuint(vmm_migrate_flags(web1->persistent), ==,
                     VIR_MIGRATE_LIVE | VIR_MIGRATE_PEER2PEER |
                         VIR_MIGRATE_PERSIST_DEST |
                         VIR_MIGRATE_UNDEFINE_SOURCE);
    g_assert_cmpuint(vmm_migrate_flags(tr1->persistent), ==,
                     VIR_MIGRATE_LIVE | VIR_MIGRATE_PEER2PEER);

    /* The test driver cannot migrate: the call must reach libvirt through
     * a connection of its own (finding the domain by UUID) and fail. */
    g_assert_false(vmm_migrate(web1, 100, &error));
    g_assert_error(error, VMM_ERROR, VMM_ERROR_LIBVIRT);
    g_assert_nonnull(strstr(error->message, "p2p migration"));

    /* Nothing readable afterwards is unknown, never an error. */
    vmm_outcome_collect(web1, FALSE, &out);
    g_assert_false(out.have_stats);
    g_assert_cmpint(out.stats.elapsed_ms, ==, VMM_UNKNOWN);
    g_assert_cmpint(out.dest_page_hash.state, ==, VMM_PAGE_HASH_UNKNOWN);
    vmm_outcome_collect(web1, TRUE, &out);
    g_assert_false(out.have_stats);
    g_assert_cmpint(out.dest_page_hash.state, ==, VMM_PAGE_HASH_UNKNOWN);
    g_assert_cmpint(virDomainIsActive(web1->dom), ==, 1);
}

int
main(int argc, char **argv)
{
    g_autoptr(TestNode) n = NULL;

    g_test_init(&argc, &argv, NULL);
    vmm_virt_init();
    n = node = test_node_new();
    g_test_add_func("/virt/unknown-domain", test_unknown_domain);
    g_test_add_func("/virt/not-running", test_not_running);
    g_test_add_func("/virt/paused", test_paused);
    g_test_add_func("/virt/exists-at-dest", test_exists_at_dest);
    g_test_add_func("/virt/same-uri", test_same_uri);
    g_test_add_func("/virt/unreachable", test_unreachable);
    g_test_add_func("/virt/first-error", test_first_error);
    g_test_add_func("/virt/good-plan", test_good_plan);
    return g_test_run();
}
