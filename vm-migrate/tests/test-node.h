/*
 * A libvirt test-driver "host" for tests: a node XML file in a temporary
 * directory, opened as test:///PATH (each connection to it is a fresh
 * copy of the file). Domains: web1 (running, persistent), tr1 (running,
 * transient), idle1 (shut off) and test (running; the name the default
 * test host also has).
 */
#pragma once

#include <glib.h>

typedef struct {
    char *dir;
    char *path;
    char *uri;
} TestNode;

TestNode *test_node_new(void);
void test_node_free(TestNode *node);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(TestNode, test_node_free)
