/*
 * A node of the grid: a libvirt host of one site with its capacity, as
 * the daemon's configuration declares it.
 */
#pragma once

#include "sal-job.h"

#define SAL_MAX_URI_LEN 1024

typedef struct {
    char *name; /* unique grid-wide */
    char *site;
    char *uri; /* libvirt connection URI */
    guint cpus;
    guint64 mem_mib;
} SalNode;

SalNode *sal_node_new(const char *name, const char *site, const char *uri,
                      guint cpus, guint64 mem_mib);
void sal_node_free(SalNode *node);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SalNode, sal_node_free)

/* Names as sal_name_validate() wants them, a URI of at most
 * SAL_MAX_URI_LEN bytes, 1..SAL_MAX_CPUS CPUs, 1..SAL_MAX_MEM_MIB MiB. */
gboolean sal_node_validate(const SalNode *node, GError **error);
