#include <sqlite3.h>
#include <string.h>
#include <unistd.h>

#include "sal-store.h"
#include "sal-test.h"

typedef struct {
    char *dir;
    char *path;
    SalStore *store;
} Fixture;

static void
fixture_set_up(Fixture *f, gconstpointer data)
{
    f->dir = sal_test_tmpdir();
    f->path = g_build_filename(f->dir, "saline.db", NULL);
}

static void
fixture_tear_down(Fixture *f, gconstpointer data)
{
    g_clear_pointer(&f->store, sal_store_free);
    sal_test_rmdir(f->dir);
    g_free(f->dir);
    g_free(f->path);
}

static SalStore *
open_store(const char *path)
{
    g_autoptr(GError) error = NULL;
    SalStore *store = sal_store_open(path, &error);

    g_assert_no_error(error);
    g_assert_nonnull(store);
    return store;
}

static void
reopen(Fixture *f)
{
    g_clear_pointer(&f->store, sal_store_free);
    f->store = open_store(f->path);
}

static gint64
save_job(SalStore *store, SalJob *job, GPtrArray *vms)
{
    g_autoptr(GError) error = NULL;

    g_assert_true(sal_store_save_job(store, job, vms, &error));
    g_assert_no_error(error);
    g_assert_cmpint(job->id, >, 0);
    return job->id;
}

static guint
n_active(SalStore *store)
{
    g_autoptr(GPtrArray) vms = NULL;
    g_autoptr(GPtrArray) jobs = sal_store_load_active(store, &vms, NULL);

    g_assert_nonnull(jobs);
    return jobs->len;
}

static void
assert_jobs_equal(const SalJob *a, const SalJob *b)
{
    g_assert_cmpint(a->id, ==, b->id);
    g_assert_cmpuint(a->owner_uid, ==, b->owner_uid);
    g_assert_cmpstr(a->name, ==, b->name);
    g_assert_cmpint(a->state, ==, b->state);
    g_assert_cmpint(a->besteffort, ==, b->besteffort);
    g_assert_cmpint(a->idempotent, ==, b->idempotent);
    g_assert_cmpint(a->priority, ==, b->priority);
    g_assert_cmpuint(a->n_vms, ==, b->n_vms);
    g_assert_cmpuint(a->cpus, ==, b->cpus);
    g_assert_cmpuint(a->mem_mib, ==, b->mem_mib);
    g_assert_cmpstr(a->image, ==, b->image);
    g_assert_cmpint(a->walltime_s, ==, b->walltime_s);
    g_assert_cmpstr(a->site, ==, b->site);
    g_assert_cmpstrv(a->command, b->command);
    g_assert_cmpint(a->submit_time, ==, b->submit_time);
    g_assert_cmpint(a->start_time, ==, b->start_time);
    g_assert_cmpint(a->end_time, ==, b->end_time);
    g_assert_cmpint(a->elapsed_s, ==, b->elapsed_s);
    g_assert_cmpint(a->exit_status, ==, b->exit_status);
    g_assert_cmpstr(a->failure, ==, b->failure);
    g_assert_cmpint(a->snapshot_interval_s, ==, b->snapshot_interval_s);
    g_assert_cmpuint(a->snapshot_seq, ==, b->snapshot_seq);
    g_assert_cmpint(a->held, ==, b->held);
    g_assert_cmpstr(a->idempotency_key, ==, b->idempotency_key);
    g_assert_cmpint(a->oar_job_id, ==, b->oar_job_id);
    g_assert_cmpint(a->ssi, ==, b->ssi);
    g_assert_cmpstr(a->ssi_key, ==, b->ssi_key);
}

static void
test_round_trip(Fixture *f, gconstpointer data)
{
    g_autoptr(SalJob) job = sal_test_job(2, "a");
    g_autoptr(SalJob) other = sal_test_job(1, NULL);
    g_autoptr(GPtrArray) vms = NULL;
    g_autoptr(GPtrArray) loaded_vms = NULL;
    g_autoptr(SalJob) loaded = NULL;
    g_autoptr(GError) error = NULL;
    const SalVm *vm;

    f->store = open_store(f->path);
    g_assert_cmpuint(sal_store_schema_version(f->store), ==,
                     SAL_STORE_SCHEMA_VERSION);
    job->besteffort = TRUE;
    job->snapshot_interval_s = 90;
    job->held = TRUE;
    job->priority = -3;
    job->owner_uid = 4000000000u;
    job->mem_mib = SAL_MAX_MEM_MIB;
    job->idempotency_key = g_strdup("6f1c2a9e-1f0b-4c1e-9a53-3f4f0c1d2b7a");
    job->oar_job_id = 4242;
    save_job(f->store, job, NULL);
    other->ssi = TRUE;
    other->ssi_key = g_strnfill(64, 'e');
    g_assert_cmpint(save_job(f->store, other, NULL), >, job->id);
    loaded = sal_store_load_job(f->store, other->id, NULL, NULL);
    assert_jobs_equal(loaded, other);
    g_clear_pointer(&loaded, sal_job_free);

    /* The job starts: state, times and VMs change together. */
    vms = sal_test_vms(job, "a");
    ((SalVm *)vms->pdata[1])->state = SAL_VM_STARTING;
    g_assert_true(sal_job_transition_at(job, SAL_JOB_STARTING, 1100, NULL));
    g_assert_true(sal_job_transition_at(job, SAL_JOB_RUNNING, 1200, NULL));
    job->failure = g_strdup("not yet, but a string survives");
    save_job(f->store, job, vms);

    reopen(f);
    loaded = sal_store_load_job(f->store, job->id, &loaded_vms, &error);
    g_assert_no_error(error);
    assert_jobs_equal(loaded, job);
    g_assert_cmpuint(loaded_vms->len, ==, 2);
    vm = loaded_vms->pdata[1];
    g_assert_cmpint(vm->job_id, ==, job->id);
    g_assert_cmpuint(vm->index, ==, 1);
    g_assert_cmpstr(vm->node, ==, "a-1");
    g_assert_cmpstr(vm->site, ==, "a");
    g_assert_cmpstr(vm->domain, ==, ((SalVm *)vms->pdata[1])->domain);
    g_assert_cmpint(vm->state, ==, SAL_VM_STARTING);
    g_assert_null(vm->ip);

    g_assert_cmpint(vm->exit_status, ==, -1);

    /* An update of a VM replaces it, by index. */
    ((SalVm *)vms->pdata[1])->state = SAL_VM_RUNNING;
    ((SalVm *)vms->pdata[1])->exit_status = 3;
    g_free(((SalVm *)vms->pdata[1])->node);
    ((SalVm *)vms->pdata[1])->node = g_strdup("a-9");
    save_job(f->store, job, vms);
    g_clear_pointer(&loaded, sal_job_free);
    g_clear_pointer(&loaded_vms, g_ptr_array_unref);
    loaded = sal_store_load_job(f->store, job->id, &loaded_vms, NULL);
    g_assert_cmpuint(loaded_vms->len, ==, 2);
    vm = loaded_vms->pdata[1];
    g_assert_cmpint(vm->state, ==, SAL_VM_RUNNING);
    g_assert_cmpstr(vm->node, ==, "a-9");
    g_assert_cmpint(vm->exit_status, ==, 3);
}

/* What the daemon re-adopts: every job not in a terminal state. */
static void
test_load_active(Fixture *f, gconstpointer data)
{
    g_autoptr(GPtrArray) jobs = NULL;
    g_autoptr(GPtrArray) vms = NULL;
    guint n_expected = 0;

    f->store = open_store(f->path);
    for (guint s = 0; s < SAL_JOB_N_STATES; s++) {
        g_autoptr(SalJob) job = sal_test_job(2, "a");
        g_autoptr(GPtrArray) job_vms = NULL;

        /* A new job and its VMs are saved in one call. */
        job->state = s;
        job_vms = sal_test_vms(job, "a");
        save_job(f->store, job, job_vms);
        n_expected += !sal_job_state_is_terminal(s);
    }
    reopen(f);
    jobs = sal_store_load_active(f->store, &vms, NULL);
    g_assert_cmpuint(jobs->len, ==, n_expected);
    g_assert_cmpuint(vms->len, ==, 2 * n_expected);
    for (guint i = 0; i < jobs->len; i++) {
        const SalJob *job = jobs->pdata[i];

        g_assert_false(sal_job_state_is_terminal(job->state));
        g_assert_cmpint(((SalVm *)vms->pdata[2 * i])->job_id, ==, job->id);
        g_assert_cmpint(((SalVm *)vms->pdata[2 * i + 1])->job_id, ==, job->id);
        if (i > 0) {
            g_assert_cmpint(job->id, >, ((SalJob *)jobs->pdata[i - 1])->id);
        }
    }

    /* All of them, for `saline stat --all`. */
    g_clear_pointer(&jobs, g_ptr_array_unref);
    g_clear_pointer(&vms, g_ptr_array_unref);
    jobs = sal_store_load_jobs(f->store, TRUE, &vms, NULL);
    g_assert_cmpuint(jobs->len, ==, SAL_JOB_N_STATES);
    g_assert_cmpuint(vms->len, ==, 2 * SAL_JOB_N_STATES);
}

static void
test_errors(Fixture *f, gconstpointer data)
{
    g_autoptr(SalJob) job = sal_test_job(1, NULL);
    g_autoptr(SalJob) bad = sal_test_job(1, NULL);
    g_autoptr(GPtrArray) vms = NULL;
    g_autoptr(GError) error = NULL;

    f->store = open_store(f->path);
    g_assert_null(sal_store_load_job(f->store, 42, NULL, &error));
    g_assert_error(error, SAL_ERROR, SAL_ERROR_NOT_FOUND);
    g_assert_cmpstr(error->message, ==, "no job 42");
    g_clear_error(&error);

    /* An update of a job that was never saved is not an insert. */
    job->id = 42;
    g_assert_false(sal_store_save_job(f->store, job, NULL, &error));
    g_assert_error(error, SAL_ERROR, SAL_ERROR_NOT_FOUND);
    g_clear_error(&error);

    /* A new job is checked before it is stored. */
    bad->n_vms = 0;
    g_assert_false(sal_store_save_job(f->store, bad, NULL, &error));
    g_assert_error(error, SAL_ERROR, SAL_ERROR_INVALID);
    g_assert_cmpint(bad->id, ==, 0);
    g_clear_error(&error);
    g_assert_cmpuint(n_active(f->store), ==, 0);

    /* A VM beyond the job's count. */
    job->id = 0;
    job->n_vms = 1;
    vms = sal_test_vms(job, "a");
    ((SalVm *)vms->pdata[0])->index = 1;
    g_assert_false(sal_store_save_job(f->store, job, vms, &error));
    g_assert_error(error, SAL_ERROR, SAL_ERROR_INVALID);
    g_assert_cmpint(job->id, ==, 0);
    g_assert_cmpuint(n_active(f->store), ==, 0);
}

static guint
n_jobs(SalStore *store)
{
    g_autoptr(GPtrArray) jobs = sal_store_load_jobs(store, TRUE, NULL, NULL);

    g_assert_nonnull(jobs);
    return jobs->len;
}

/* A new job whose owner already has a job with its key. */
static void
assert_key_taken(SalStore *store, SalJob *job)
{
    g_autoptr(GError) error = NULL;

    g_assert_false(sal_store_save_job(store, job, NULL, &error));
    g_assert_error(error, SAL_ERROR, SAL_ERROR_CONFLICT);
    g_test_message("%s", error->message);
    g_assert_cmpint(job->id, ==, 0);
}

/*
 * One job per owner and idempotency key, whatever its state, checked by
 * the database itself: another connection (another salined, or a
 * submission racing this one) cannot store a second. Jobs without a key
 * and other owners' jobs are not concerned.
 */
static void
test_idempotency_key(Fixture *f, gconstpointer data)
{
    g_autoptr(SalJob) first = sal_test_job(1, NULL);
    g_autoptr(SalJob) again = sal_test_job(2, "a");
    g_autoptr(SalJob) other_owner = sal_test_job(1, NULL);
    g_autoptr(SalJob) no_key = sal_test_job(1, NULL);
    g_autoptr(SalJob) no_key2 = sal_test_job(1, NULL);
    g_autoptr(SalJob) loaded = NULL;
    g_autoptr(SalStore) racer = NULL;
    g_autoptr(GError) error = NULL;

    f->store = open_store(f->path);
    racer = open_store(f->path);
    first->idempotency_key = g_strdup("k");
    save_job(f->store, first, NULL);

    again->idempotency_key = g_strdup("k");
    assert_key_taken(f->store, again);
    assert_key_taken(racer, again);

    other_owner->owner_uid = first->owner_uid + 1;
    other_owner->idempotency_key = g_strdup("k");
    save_job(racer, other_owner, NULL);
    save_job(f->store, no_key, NULL);
    save_job(racer, no_key2, NULL);
    g_assert_cmpuint(n_jobs(f->store), ==, 4);

    /* Saving the job again is an update, not a second job. */
    g_assert_true(sal_job_transition_at(first, SAL_JOB_CANCELLED, 1100, NULL));
    save_job(f->store, first, NULL);
    loaded = sal_store_load_job(racer, first->id, NULL, &error);
    g_assert_no_error(error);
    assert_jobs_equal(loaded, first);

    /* An ended job keeps its key; a failure inside a transaction leaves
     * the transaction usable. */
    g_assert_true(sal_store_begin(f->store, NULL));
    assert_key_taken(f->store, again);
    g_free(again->idempotency_key);
    again->idempotency_key = g_strdup("k2");
    save_job(f->store, again, NULL);
    g_assert_true(sal_store_commit(f->store, NULL));

    reopen(f);
    g_assert_cmpuint(n_jobs(f->store), ==, 5);
    g_clear_pointer(&loaded, sal_job_free);
    loaded = sal_store_load_job(f->store, again->id, NULL, &error);
    g_assert_cmpstr(loaded->idempotency_key, ==, "k2");
    g_clear_pointer(&loaded, sal_job_free);
    loaded = sal_store_load_job(f->store, no_key->id, NULL, &error);
    g_assert_null(loaded->idempotency_key);
}

/*
 * A job starting is one transaction: its state, its VMs and their
 * leases. A statement failing in the middle (here the lease, whose
 * address is taken) leaves the job as it was: pending, no VMs.
 */
static void
test_atomic_start(Fixture *f, gconstpointer data)
{
    g_autoptr(SalJob) holder = sal_test_job(1, "a");
    g_autoptr(SalJob) job = sal_test_job(2, "a");
    g_autoptr(SalJob) loaded = NULL;
    g_autoptr(GPtrArray) holder_vms = NULL;
    g_autoptr(GPtrArray) vms = NULL;
    g_autoptr(GPtrArray) loaded_vms = NULL;
    g_autoptr(GError) error = NULL;
    SalLease lease = {.site = "a", .ip = "10.0.0.1", .mac = "m1"};

    f->store = open_store(f->path);
    holder_vms = sal_test_vms(holder, "a");
    save_job(f->store, holder, holder_vms);
    lease.job_id = holder->id;
    g_assert_true(sal_store_add_lease(f->store, &lease, NULL));
    save_job(f->store, job, NULL);

    g_assert_true(sal_store_begin(f->store, NULL));
    g_assert_true(sal_job_transition(job, SAL_JOB_STARTING, NULL));
    vms = sal_test_vms(job, "a");
    save_job(f->store, job, vms);
    lease.job_id = job->id;
    lease.mac = "m2";
    g_assert_false(sal_store_add_lease(f->store, &lease, &error));
    g_assert_error(error, SAL_ERROR, SAL_ERROR_CONFLICT);
    g_test_message("%s", error->message);
    sal_store_rollback(f->store);
    g_assert_false(sal_store_in_transaction(f->store));

    reopen(f);
    loaded = sal_store_load_job(f->store, job->id, &loaded_vms, NULL);
    g_assert_cmpint(loaded->state, ==, SAL_JOB_PENDING);
    g_assert_cmpuint(loaded_vms->len, ==, 0);
}

typedef struct {
    guint undone;
    guint destroyed;
} Counts;

static void
count_undo(gpointer data)
{
    ((Counts *)data)->undone++;
}

static void
count_destroy(gpointer data)
{
    ((Counts *)data)->destroyed++;
}

/* An inner level rolled back leaves the outer one whole; undo callbacks
 * run for what was rolled back, and only that. */
static void
test_nested(Fixture *f, gconstpointer data)
{
    g_autoptr(SalJob) a = sal_test_job(1, NULL);
    g_autoptr(SalJob) b = sal_test_job(1, NULL);
    g_autoptr(GError) error = NULL;
    Counts outer = {0}, inner = {0}, last = {0};

    f->store = open_store(f->path);
    g_assert_true(sal_store_begin(f->store, NULL));
    save_job(f->store, a, NULL);
    sal_store_on_rollback(f->store, count_undo, &outer, count_destroy);

    g_assert_true(sal_store_begin(f->store, NULL));
    save_job(f->store, b, NULL);
    sal_store_on_rollback(f->store, count_undo, &inner, count_destroy);
    sal_store_rollback(f->store);
    g_assert_cmpuint(inner.undone, ==, 1);
    g_assert_cmpuint(inner.destroyed, ==, 1);
    g_assert_cmpuint(outer.undone + outer.destroyed, ==, 0);

    /* A call failing inside leaves the outer level usable. */
    b->id = 0;
    b->cpus = 0;
    g_assert_false(sal_store_save_job(f->store, b, NULL, &error));
    g_assert_true(sal_store_in_transaction(f->store));
    g_assert_true(sal_store_commit(f->store, NULL));
    g_assert_false(sal_store_in_transaction(f->store));
    g_assert_cmpuint(outer.undone, ==, 0);
    g_assert_cmpuint(outer.destroyed, ==, 1);

    reopen(f);
    g_assert_cmpuint(n_active(f->store), ==, 1);

    /* Rolling the outermost level back runs its undo. */
    g_assert_true(sal_store_begin(f->store, NULL));
    sal_store_on_rollback(f->store, count_undo, &last, count_destroy);
    sal_store_rollback(f->store);
    g_assert_cmpuint(last.undone, ==, 1);
    g_assert_cmpuint(last.destroyed, ==, 1);
}

/*
 * A process dies mid-transaction (no commit, no close): after a restart
 * nothing of that transaction is there, and everything committed before
 * it is, without a clean close.
 */
static void
test_crash(Fixture *f, gconstpointer data)
{
    g_autoptr(GPtrArray) jobs = NULL;
    g_autoptr(GPtrArray) vms = NULL;

    if (g_test_subprocess()) {
        SalStore *store = NULL;
        g_autoptr(SalJob) done = sal_test_job(1, "a");
        g_autoptr(SalJob) partial = sal_test_job(3, "a");
        g_autoptr(GPtrArray) partial_vms = NULL;

        /* The parent's database, not this fixture's. */
        sal_test_rmdir(f->dir);
        store = open_store(g_getenv("SAL_TEST_DB"));
        save_job(store, done, NULL);
        g_assert_true(sal_store_begin(store, NULL));
        save_job(store, partial, NULL);
        partial_vms = sal_test_vms(partial, "a");
        save_job(store, partial, partial_vms);
        _exit(0);
    }
    g_setenv("SAL_TEST_DB", f->path, TRUE);
    g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
    g_test_trap_assert_passed();

    f->store = open_store(f->path);
    jobs = sal_store_load_active(f->store, &vms, NULL);
    g_assert_cmpuint(jobs->len, ==, 1);
    g_assert_cmpuint(((SalJob *)jobs->pdata[0])->n_vms, ==, 1);
    g_assert_cmpuint(vms->len, ==, 0);
}

static void
test_nodes(Fixture *f, gconstpointer data)
{
    g_autoptr(GPtrArray) nodes =
        g_ptr_array_new_with_free_func((GDestroyNotify)sal_node_free);
    g_autoptr(GPtrArray) loaded = NULL;
    g_autoptr(GError) error = NULL;
    const SalNode *node;

    f->store = open_store(f->path);
    g_ptr_array_add(nodes,
                    sal_node_new("b1", "b", "qemu+tcp://b1/system", 8, 16384));
    g_ptr_array_add(nodes,
                    sal_node_new("a1", "a", "qemu+tcp://a1/system", 4, 8192));
    g_assert_true(sal_store_save_nodes(f->store, nodes, NULL));
    reopen(f);
    loaded = sal_store_load_nodes(f->store, NULL);
    g_assert_cmpuint(loaded->len, ==, 2);
    node = loaded->pdata[0];
    g_assert_cmpstr(node->name, ==, "b1");
    g_assert_cmpstr(node->site, ==, "b");
    g_assert_cmpstr(node->uri, ==, "qemu+tcp://b1/system");
    g_assert_cmpuint(node->cpus, ==, 8);
    g_assert_cmpuint(node->mem_mib, ==, 16384);

    /* A bad node spoils the whole set: the old one stays. */
    g_ptr_array_remove_index(nodes, 0);
    g_ptr_array_add(nodes, sal_node_new("c 1", "c", "x", 1, 1));
    g_assert_false(sal_store_save_nodes(f->store, nodes, &error));
    g_assert_error(error, SAL_ERROR, SAL_ERROR_INVALID);
    g_clear_pointer(&loaded, g_ptr_array_unref);
    loaded = sal_store_load_nodes(f->store, NULL);
    g_assert_cmpuint(loaded->len, ==, 2);

    g_ptr_array_remove_index(nodes, 1);
    g_assert_true(sal_store_save_nodes(f->store, nodes, NULL));
    g_clear_pointer(&loaded, g_ptr_array_unref);
    loaded = sal_store_load_nodes(f->store, NULL);
    g_assert_cmpuint(loaded->len, ==, 1);
    g_assert_cmpstr(((SalNode *)loaded->pdata[0])->name, ==, "a1");
}

static void
test_leases(Fixture *f, gconstpointer data)
{
    g_autoptr(SalJob) job = sal_test_job(2, "a");
    g_autoptr(GPtrArray) vms = NULL;
    g_autoptr(GPtrArray) leases = NULL;
    g_autoptr(GPtrArray) loaded_vms = NULL;
    g_autoptr(SalJob) loaded = NULL;
    g_autoptr(GError) error = NULL;
    SalLease lease = {
        .site = "a", .ip = "10.77.1.2", .mac = "52:54:00:4d:01:02"};

    f->store = open_store(f->path);
    save_job(f->store, job, NULL);
    lease.job_id = job->id;
    /* No VM saved yet: no lease. */
    g_assert_false(sal_store_add_lease(f->store, &lease, &error));
    g_assert_error(error, SAL_ERROR, SAL_ERROR_CONFLICT);
    g_clear_error(&error);

    vms = sal_test_vms(job, "a");
    save_job(f->store, job, vms);
    g_assert_true(sal_store_add_lease(f->store, &lease, NULL));
    /* The same address, or MAC, twice: refused by the schema. */
    lease.vm_index = 1;
    g_assert_false(sal_store_add_lease(f->store, &lease, &error));
    g_assert_error(error, SAL_ERROR, SAL_ERROR_CONFLICT);
    g_clear_error(&error);
    lease.ip = "10.77.1.3";
    g_assert_false(sal_store_add_lease(f->store, &lease, &error));
    g_assert_error(error, SAL_ERROR, SAL_ERROR_CONFLICT);
    g_clear_error(&error);

    /* VMs load with their address. */
    loaded = sal_store_load_job(f->store, job->id, &loaded_vms, NULL);
    g_assert_cmpstr(((SalVm *)loaded_vms->pdata[0])->ip, ==, "10.77.1.2");
    g_assert_cmpstr(((SalVm *)loaded_vms->pdata[0])->mac, ==,
                    "52:54:00:4d:01:02");
    g_assert_null(((SalVm *)loaded_vms->pdata[1])->ip);

    /* VMs holding addresses cannot go. */
    g_assert_false(sal_store_delete_vms(f->store, job->id, &error));
    g_assert_error(error, SAL_ERROR, SAL_ERROR_CONFLICT);
    g_clear_error(&error);
    g_assert_true(sal_store_remove_leases(f->store, job->id, 1, NULL));
    leases = sal_store_load_leases(f->store, NULL);
    g_assert_cmpuint(leases->len, ==, 1);
    g_assert_true(sal_store_remove_leases(f->store, job->id, -1, NULL));
    g_clear_pointer(&leases, g_ptr_array_unref);
    leases = sal_store_load_leases(f->store, NULL);
    g_assert_cmpuint(leases->len, ==, 0);
    g_assert_true(sal_store_delete_vms(f->store, job->id, NULL));
}

/* Schema version 1 as that version of sal-store.c wrote it. Never
 * change this: databases of version 1 exist in this form. */
static const char schema_v1[] =
    "CREATE TABLE nodes ("
    "  name TEXT PRIMARY KEY NOT NULL,"
    "  site TEXT NOT NULL,"
    "  uri TEXT NOT NULL,"
    "  cpus INTEGER NOT NULL CHECK (cpus > 0),"
    "  mem_mib INTEGER NOT NULL CHECK (mem_mib > 0));"
    "CREATE TABLE jobs ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  owner_uid INTEGER NOT NULL,"
    "  name TEXT NOT NULL,"
    "  state TEXT NOT NULL,"
    "  besteffort INTEGER NOT NULL CHECK (besteffort IN (0, 1)),"
    "  idempotent INTEGER NOT NULL CHECK (idempotent IN (0, 1)),"
    "  priority INTEGER NOT NULL,"
    "  n_vms INTEGER NOT NULL CHECK (n_vms > 0),"
    "  cpus INTEGER NOT NULL CHECK (cpus > 0),"
    "  mem_mib INTEGER NOT NULL CHECK (mem_mib > 0),"
    "  image TEXT NOT NULL,"
    "  walltime_s INTEGER NOT NULL CHECK (walltime_s > 0),"
    "  site TEXT,"
    "  command BLOB NOT NULL,"
    "  submit_time INTEGER NOT NULL,"
    "  start_time INTEGER NOT NULL DEFAULT 0,"
    "  end_time INTEGER NOT NULL DEFAULT 0,"
    "  exit_status INTEGER NOT NULL DEFAULT -1,"
    "  failure TEXT);"
    "CREATE INDEX jobs_by_state ON jobs (state);"
    "CREATE TABLE vms ("
    "  job_id INTEGER NOT NULL REFERENCES jobs (id),"
    "  idx INTEGER NOT NULL CHECK (idx >= 0),"
    "  node TEXT,"
    "  site TEXT,"
    "  domain TEXT,"
    "  mac TEXT,"
    "  ip TEXT,"
    "  state TEXT NOT NULL,"
    "  PRIMARY KEY (job_id, idx));"
    "PRAGMA user_version = 1;";

/* A running job of version 1: two VMs with addresses in their rows. */
static const char data_v1[] =
    "INSERT INTO nodes VALUES ('a1', 'a', 'qemu+tcp://a1/system', 8, 8192);"
    "INSERT INTO jobs (id, owner_uid, name, state, besteffort, idempotent,"
    "  priority, n_vms, cpus, mem_mib, image, walltime_s, site, command,"
    "  submit_time, start_time)"
    "  VALUES (5, 1000, 'old', 'running', 0, 1, 0, 2, 2, 1024, 'img', 600,"
    "  'a', X'7472756500', 100, 110);"
    "INSERT INTO vms VALUES (5, 0, 'a1', 'a', 'saline-5-0',"
    "  '52:54:00:4d:01:07', '10.77.1.7', 'running');"
    "INSERT INTO vms VALUES (5, 1, 'a1', 'a', 'saline-5-1',"
    "  '52:54:00:4d:01:08', '10.77.1.8', 'running');";

static void
write_db(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    char *message = NULL;

    g_assert_cmpint(sqlite3_open(path, &db), ==, SQLITE_OK);
    if (sqlite3_exec(db, sql, NULL, NULL, &message) != SQLITE_OK) {
        g_error("%s", message);
    }
    g_assert_cmpint(sqlite3_close(db), ==, SQLITE_OK);
}

static void
test_migrate_v1(Fixture *f, gconstpointer data)
{
    g_autoptr(GPtrArray) vms = NULL;
    g_autoptr(GPtrArray) leases = NULL;
    g_autoptr(GPtrArray) nodes = NULL;
    g_autoptr(SalJob) job = NULL;
    g_autoptr(SalJob) next = sal_test_job(1, NULL);
    const SalVm *vm;
    const SalLease *lease;

    write_db(f->path, schema_v1);
    write_db(f->path, data_v1);

    f->store = open_store(f->path);
    g_assert_cmpuint(sal_store_schema_version(f->store), ==,
                     SAL_STORE_SCHEMA_VERSION);
    job = sal_store_load_job(f->store, 5, &vms, NULL);
    g_assert_nonnull(job);
    g_assert_cmpint(job->state, ==, SAL_JOB_RUNNING);
    g_assert_cmpstr(job->name, ==, "old");
    g_assert_true(job->idempotent);
    g_assert_cmpstr(job->command[0], ==, "true");
    g_assert_null(job->command[1]);
    g_assert_cmpint(job->start_time, ==, 110);
    g_assert_cmpint(job->elapsed_s, ==, 0);
    g_assert_null(job->idempotency_key);

    /* The addresses moved to leases, and still belong to the VMs. */
    g_assert_cmpuint(vms->len, ==, 2);
    vm = vms->pdata[1];
    g_assert_cmpstr(vm->ip, ==, "10.77.1.8");
    g_assert_cmpstr(vm->mac, ==, "52:54:00:4d:01:08");
    g_assert_cmpstr(vm->domain, ==, "saline-5-1");
    g_assert_cmpint(vm->exit_status, ==, -1);
    leases = sal_store_load_leases(f->store, NULL);
    g_assert_cmpuint(leases->len, ==, 2);
    lease = leases->pdata[0];
    g_assert_cmpstr(lease->ip, ==, "10.77.1.7");
    g_assert_cmpint(lease->job_id, ==, 5);
    g_assert_cmpuint(lease->vm_index, ==, 0);
    nodes = sal_store_load_nodes(f->store, NULL);
    g_assert_cmpuint(nodes->len, ==, 1);

    /* Ids go on after the old ones. */
    save_job(f->store, next, NULL);
    g_assert_cmpint(next->id, ==, 6);

    /* Opening again migrates nothing. */
    reopen(f);
    g_assert_cmpuint(sal_store_schema_version(f->store), ==,
                     SAL_STORE_SCHEMA_VERSION);
    g_assert_cmpuint(n_active(f->store), ==, 2);
}

static guint
column_count(const char *path, const char *table, const char *column)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    guint n;

    g_assert_cmpint(sqlite3_open(path, &db), ==, SQLITE_OK);
    g_assert_cmpint(
        sqlite3_prepare_v2(db,
                           "SELECT count(*) FROM pragma_table_info(?1) "
                           "WHERE name = ?2",
                           -1, &stmt, NULL),
        ==, SQLITE_OK);
    sqlite3_bind_text(stmt, 1, table, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, column, -1, SQLITE_STATIC);
    g_assert_cmpint(sqlite3_step(stmt), ==, SQLITE_ROW);
    n = (guint)sqlite3_column_int(stmt, 0);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return n;
}

/* A migration that fails (version 1 let two VMs share an address) changes
 * nothing: the database stays at version 1, as it was. */
static void
test_migrate_fails(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;

    write_db(f->path, schema_v1);
    write_db(f->path, data_v1);
    write_db(f->path, "UPDATE vms SET ip = '10.77.1.7'");

    g_assert_null(sal_store_open(f->path, &error));
    g_assert_error(error, SAL_ERROR, SAL_ERROR_CONFLICT);
    g_test_message("%s", error->message);
    g_assert_cmpuint(column_count(f->path, "vms", "ip"), ==, 1);
    g_assert_cmpuint(column_count(f->path, "jobs", "elapsed_s"), ==, 0);
    g_assert_cmpuint(column_count(f->path, "addresses", "ip"), ==, 0);
}

/*
 * A database of version 4, the last without idempotency keys and OAR
 * jobs (made here by taking them out of a new one): its jobs get no key
 * and no OAR job, and new jobs get the key's UNIQUE index.
 */
static void
test_migrate_v4(Fixture *f, gconstpointer data)
{
    g_autoptr(SalJob) old = sal_test_job(1, NULL);
    g_autoptr(SalJob) old2 = sal_test_job(1, NULL);
    g_autoptr(SalJob) keyed = sal_test_job(1, NULL);
    g_autoptr(SalJob) again = sal_test_job(1, NULL);
    g_autoptr(SalJob) loaded = NULL;

    f->store = open_store(f->path);
    save_job(f->store, old, NULL);
    save_job(f->store, old2, NULL);
    g_clear_pointer(&f->store, sal_store_free);
    write_db(f->path, "DROP INDEX jobs_by_key;"
                      "ALTER TABLE jobs DROP COLUMN idempotency_key;"
                      "ALTER TABLE jobs DROP COLUMN oar_job_id;"
                      "ALTER TABLE jobs DROP COLUMN ssi_key;"
                      "PRAGMA user_version = 4;");
    g_assert_cmpuint(column_count(f->path, "jobs", "idempotency_key"), ==, 0);

    f->store = open_store(f->path);
    g_assert_cmpuint(sal_store_schema_version(f->store), ==,
                     SAL_STORE_SCHEMA_VERSION);
    g_assert_cmpuint(column_count(f->path, "jobs", "idempotency_key"), ==, 1);
    g_assert_cmpuint(column_count(f->path, "jobs", "oar_job_id"), ==, 1);
    loaded = sal_store_load_job(f->store, old2->id, NULL, NULL);
    assert_jobs_equal(loaded, old2);
    g_assert_null(loaded->idempotency_key);
    g_assert_cmpint(loaded->oar_job_id, ==, 0);
    g_assert_false(loaded->ssi);

    keyed->idempotency_key = g_strdup("k");
    save_job(f->store, keyed, NULL);
    again->idempotency_key = g_strdup("k");
    assert_key_taken(f->store, again);
    g_assert_cmpuint(n_jobs(f->store), ==, 3);
}

static void
test_newer(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *expected = NULL;

    g_autofree char *newer = g_strdup_printf(
        "PRAGMA user_version = %d", SAL_STORE_SCHEMA_VERSION + 1);

    write_db(f->path, newer);
    g_assert_null(sal_store_open(f->path, &error));
    g_assert_error(error, SAL_ERROR, SAL_ERROR_VERSION);
    expected = g_strdup_printf("database '%s' has schema version %d, newer "
                               "than this program's %d",
                               f->path, SAL_STORE_SCHEMA_VERSION + 1,
                               SAL_STORE_SCHEMA_VERSION);
    g_assert_cmpstr(error->message, ==, expected);
}

static void
test_open_fails(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *path = g_build_filename(f->dir, "no", "such.db", NULL);

    g_assert_null(sal_store_open(path, &error));
    g_assert_error(error, SAL_ERROR, SAL_ERROR_STORE);
}

/* A job's snapshots: the latest complete one is what it is redeployed
 * from; a refused one goes with everything newer. */
static void
test_snapshots(Fixture *f, gconstpointer data)
{
    g_autoptr(SalJob) job = sal_test_job(2, "a");
    g_autoptr(SalJob) loaded = NULL;
    g_autoptr(GPtrArray) snaps = NULL;
    g_autoptr(GPtrArray) events = NULL;
    g_autoptr(GError) error = NULL;

    f->store = open_store(f->path);
    job->besteffort = TRUE;
    save_job(f->store, job, NULL);
    for (guint seq = 1; seq <= 3; seq++) {
        SalSnapshot snap = {.job_id = job->id, .seq = seq, .time = 100 * seq,
                            .pause_ms = 20 + seq, .bytes_sent = 4096 * seq,
                            .bytes_new = 1000 * seq};

        g_assert_true(sal_store_add_snapshot(f->store, &snap, &error));
        g_assert_no_error(error);
    }
    g_assert_true(sal_store_add_event(f->store, job->id, 5, "first", &error));
    g_assert_true(sal_store_add_event(f->store, job->id, 4, "second", &error));
    reopen(f);
    loaded = sal_store_load_job(f->store, job->id, NULL, &error);
    g_assert_cmpuint(loaded->snapshot_seq, ==, 3);
    snaps = sal_store_load_snapshots(f->store, job->id, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(snaps->len, ==, 3);
    g_assert_cmpint(((SalSnapshot *)snaps->pdata[1])->pause_ms, ==, 22);
    g_assert_cmpuint(((SalSnapshot *)snaps->pdata[2])->bytes_new, ==, 3000);
    /* Events keep the order they happened in, not their times. */
    events = sal_store_load_events(f->store, job->id, &error);
    g_assert_cmpuint(events->len, ==, 2);
    g_assert_cmpstr(((SalEvent *)events->pdata[0])->text, ==, "first");

    /* Snapshot 2 refused: 2 and 3 go, the job goes back to 1. */
    g_assert_true(sal_store_drop_snapshots(f->store, job->id, 2, &error));
    g_clear_pointer(&loaded, sal_job_free);
    loaded = sal_store_load_job(f->store, job->id, NULL, &error);
    g_assert_cmpuint(loaded->snapshot_seq, ==, 1);
    g_clear_pointer(&snaps, g_ptr_array_unref);
    snaps = sal_store_load_snapshots(f->store, job->id, &error);
    g_assert_cmpuint(snaps->len, ==, 1);
    g_assert_true(sal_store_drop_snapshots(f->store, job->id, 1, &error));
    g_clear_pointer(&loaded, sal_job_free);
    loaded = sal_store_load_job(f->store, job->id, NULL, &error);
    g_assert_cmpuint(loaded->snapshot_seq, ==, 0);

    /* A snapshot of no job is refused, and nothing changes. */
    {
        SalSnapshot snap = {.job_id = 999, .seq = 1};

        g_assert_false(sal_store_add_snapshot(f->store, &snap, &error));
        g_assert_nonnull(error);
        g_clear_error(&error);
    }
    g_clear_pointer(&snaps, g_ptr_array_unref);
    snaps = sal_store_load_snapshots(f->store, 999, &error);
    g_assert_cmpuint(snaps->len, ==, 0);
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
    add("/store/round-trip", test_round_trip);
    add("/store/load-active", test_load_active);
    add("/store/errors", test_errors);
    add("/store/idempotency-key", test_idempotency_key);
    add("/store/atomic-start", test_atomic_start);
    add("/store/nested", test_nested);
    add("/store/crash", test_crash);
    add("/store/nodes", test_nodes);
    add("/store/leases", test_leases);
    add("/store/migrate-v1", test_migrate_v1);
    add("/store/migrate-v4", test_migrate_v4);
    add("/store/migrate-fails", test_migrate_fails);
    add("/store/newer", test_newer);
    add("/store/open-fails", test_open_fails);
    add("/store/snapshots", test_snapshots);
    return g_test_run();
}
