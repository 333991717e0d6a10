#include "sal-test.h"

#include <glib/gstdio.h>

SalJob *
sal_test_job(guint n_vms, const char *site)
{
    SalJob *job = sal_job_new();
    const char *argv[] = {"/bin/echo", "hello world", "", NULL};

    job->owner_uid = 1000;
    job->name = g_strdup("test-job");
    job->n_vms = n_vms;
    job->cpus = 2;
    job->mem_mib = 1024;
    job->image = g_strdup("debian-12.qcow2");
    job->walltime_s = 3600;
    job->site = g_strdup(site);
    job->command = g_strdupv((char **)argv);
    job->submit_time = 1000;
    return job;
}

GPtrArray *
sal_test_vms(const SalJob *job, const char *site)
{
    GPtrArray *vms =
        g_ptr_array_new_with_free_func((GDestroyNotify)sal_vm_free);

    for (guint i = 0; i < job->n_vms; i++) {
        SalVm *vm = sal_vm_new(job->id, i);

        vm->site = g_strdup(site);
        vm->node = g_strdup_printf("%s-%u", site, i);
        vm->domain = sal_vm_domain_name(job->id, i);
        g_ptr_array_add(vms, vm);
    }
    return vms;
}

char *
sal_test_tmpdir(void)
{
    g_autoptr(GError) error = NULL;
    char *dir = g_dir_make_tmp("saline-test-XXXXXX", &error);

    g_assert_no_error(error);
    return dir;
}

void
sal_test_rmdir(const char *dir)
{
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    const char *name;

    g_assert_nonnull(d);
    while ((name = g_dir_read_name(d))) {
        g_autofree char *path = g_build_filename(dir, name, NULL);

        g_assert_cmpint(g_unlink(path), ==, 0);
    }
    g_assert_cmpint(g_rmdir(dir), ==, 0);
}
