#include <glib/gstdio.h>

#include "test-node.h"

/* Fixed UUIDs: a second connection must find the same domains by UUID. */
#define DOMAIN(name, uuid, extra)                                           \
    "  <domain type='test' "                                                \
    "xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>\n"            \
    "    <name>" name "</name>\n"                                           \
    "    <uuid>" uuid "</uuid>\n"                                           \
    "    <memory>262144</memory>\n"                                         \
    "    <os><type>hvm</type></os>\n" extra "  </domain>\n"

/* clang-format off */
static const char node_xml[] =
    "<node>\n"
    DOMAIN("web1", "6b1a5f0e-1111-4c5e-9c1e-000000000001", "")
    DOMAIN("tr1", "6b1a5f0e-1111-4c5e-9c1e-000000000002",
           "    <test:transient/>\n")
    DOMAIN("idle1", "6b1a5f0e-1111-4c5e-9c1e-000000000003",
           "    <test:runstate>5</test:runstate>\n")
    DOMAIN("test", "6b1a5f0e-1111-4c5e-9c1e-000000000004", "")
    "</node>\n";
/* clang-format on */

TestNode *
test_node_new(void)
{
    TestNode *node = g_new0(TestNode, 1);
    g_autoptr(GError) error = NULL;

    node->dir = g_dir_make_tmp("vmm-node-XXXXXX", &error);
    g_assert_no_error(error);
    node->path = g_build_filename(node->dir, "node.xml", NULL);
    g_assert_true(g_file_set_contents(node->path, node_xml, -1, &error));
    node->uri = g_strconcat("test://", node->path, NULL);
    return node;
}

void
test_node_free(TestNode *node)
{
    if (!node) {
        return;
    }
    g_unlink(node->path);
    g_rmdir(node->dir);
    g_free(node->dir);
    g_free(node->path);
    g_free(node->uri);
    g_free(node);
}
