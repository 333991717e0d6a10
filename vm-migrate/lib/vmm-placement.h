/*
 * Which domain goes where: the placement of a migration, from a file
 * ("DOMAIN DEST_URI [SOURCE_URI]" per line) or from the command line.
 */
#pragma once

#include <glib.h>

/* Bounds on what a user may give. */
#define VMM_PLACEMENT_MAX_BYTES (1024 * 1024)
#define VMM_PLACEMENT_MAX_DOMAINS 4096
#define VMM_FIELD_MAX 1024

typedef struct {
    char *domain;
    char *dest_uri;
    char *source_uri; /* NULL: the default source URI */
    guint line;       /* 1-based line of the placement file; 0 if none */
} VmmPlacementEntry;

typedef struct VmmPlacement VmmPlacement;

VmmPlacement *vmm_placement_new(void);
void vmm_placement_free(VmmPlacement *placement);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VmmPlacement, vmm_placement_free)

/* Add one domain; a domain may be placed once. @source_uri may be NULL. */
gboolean vmm_placement_add(VmmPlacement *placement, const char *domain,
                           const char *dest_uri, const char *source_uri,
                           guint line, GError **error);

/* Parse a placement file's text; @origin names it in errors. */
VmmPlacement *vmm_placement_parse(const char *text, gsize len,
                                  const char *origin, GError **error);
VmmPlacement *vmm_placement_load(const char *path, GError **error);

guint vmm_placement_size(const VmmPlacement *placement);
const VmmPlacementEntry *vmm_placement_get(const VmmPlacement *placement,
                                           guint i);
