#include "sal-node.h"

SalNode *
sal_node_new(const char *name, const char *site, const char *uri, guint cpus,
             guint64 mem_mib)
{
    SalNode *node = g_new0(SalNode, 1);

    node->name = g_strdup(name);
    node->site = g_strdup(site);
    node->uri = g_strdup(uri);
    node->cpus = cpus;
    node->mem_mib = mem_mib;
    return node;
}

void
sal_node_free(SalNode *node)
{
    if (!node) {
        return;
    }
    g_free(node->name);
    g_free(node->site);
    g_free(node->uri);
    g_free(node);
}

gboolean
sal_node_validate(const SalNode *node, GError **error)
{
    return sal_name_validate("node", node->name, error) &&
           sal_name_validate("site", node->site, error) &&
           sal_text_validate("libvirt URI", node->uri, SAL_MAX_URI_LEN,
                             error) &&
           sal_range_validate("node CPU count", node->cpus, 1, SAL_MAX_CPUS,
                              error) &&
           sal_range_validate("node memory (MiB)",
                              (gint64)MIN(node->mem_mib, (guint64)G_MAXINT64),
                              1, (gint64)SAL_MAX_MEM_MIB, error);
}
