/* What the Saline unit tests share: valid jobs and scratch directories. */
#pragma once

#include "sal-job.h"

/* A valid pending job without id: @n_vms VMs of 2 CPUs and 1 GiB for an
 * hour, running "/bin/echo hello world" (three arguments), on @site
 * (NULL: any). */
SalJob *sal_test_job(guint n_vms, const char *site);

/* The VMs of @job, placed on nodes "<site>-<i>" of @site. */
GPtrArray *sal_test_vms(const SalJob *job, const char *site);

/* A new empty directory, and its removal with the files in it. */
char *sal_test_tmpdir(void);
void sal_test_rmdir(const char *dir);
