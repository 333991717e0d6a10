#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "vmm-error.h"
#include "vmm-placement.h"

struct VmmPlacement {
    GPtrArray *entries;   /* VmmPlacementEntry */
    GHashTable *by_name;  /* domain -> VmmPlacementEntry, borrowed */
};

static void
entry_free(gpointer data)
{
    VmmPlacementEntry *e = data;

    if (!e) {
        return;
    }
    g_free(e->domain);
    g_free(e->dest_uri);
    g_free(e->source_uri);
    g_free(e);
}

VmmPlacement *
vmm_placement_new(void)
{
    VmmPlacement *p = g_new0(VmmPlacement, 1);

    p->entries = g_ptr_array_new_with_free_func(entry_free);
    p->by_name = g_hash_table_new(g_str_hash, g_str_equal);
    return p;
}

void
vmm_placement_free(VmmPlacement *placement)
{
    if (!placement) {
        return;
    }
    g_hash_table_unref(placement->by_name);
    g_ptr_array_unref(placement->entries);
    g_free(placement);
}

/* A field is printable UTF-8 of bounded length; @what names it. */
static gboolean
check_field(const char *value, const char *what, GError **error)
{
    if (strlen(value) > VMM_FIELD_MAX) {
        g_set_error(error, VMM_ERROR, VMM_ERROR_TOO_LARGE,
                    "%s longer than %d bytes", what, VMM_FIELD_MAX);
        return FALSE;
    }
    if (!g_utf8_validate(value, -1, NULL)) {
        g_set_error(error, VMM_ERROR, VMM_ERROR_INVALID,
                    "%s is not valid UTF-8", what);
        return FALSE;
    }
    for (const char *c = value; *c; c++) {
        if (g_ascii_iscntrl(*c)) {
            g_set_error(error, VMM_ERROR, VMM_ERROR_INVALID,
                        "%s has a control character", what);
            return FALSE;
        }
    }
    if (!*value) {
        g_set_error(error, VMM_ERROR, VMM_ERROR_INVALID, "empty %s", what);
        return FALSE;
    }
    return TRUE;
}

/* libvirt URIs are absolute: "qemu:///system", "qemu+tcp://host/system". */
static gboolean
check_uri(const char *uri, const char *what, GError **error)
{
    if (!check_field(uri, what, error)) {
        return FALSE;
    }
    if (!g_uri_is_valid(uri, G_URI_FLAGS_NON_DNS, NULL)) {
        g_set_error(error, VMM_ERROR, VMM_ERROR_INVALID,
                    "%s '%s' is not a libvirt URI like "
                    "'qemu+tcp://HOST/system'",
                    what, uri);
        return FALSE;
    }
    return TRUE;
}

gboolean
vmm_placement_add(VmmPlacement *placement, const char *domain,
                  const char *dest_uri, const char *source_uri, guint line,
                  GError **error)
{
    VmmPlacementEntry *e;
    const VmmPlacementEntry *first;

    if (!check_field(domain, "domain name", error) ||
        !check_uri(dest_uri, "destination URI", error) ||
        (source_uri && !check_uri(source_uri, "source URI", error))) {
        return FALSE;
    }
    first = g_hash_table_lookup(placement->by_name, domain);
    if (first && first->line) {
        g_set_error(error, VMM_ERROR, VMM_ERROR_INVALID,
                    "duplicate domain '%s' (first at line %u)", domain,
                    first->line);
        return FALSE;
    }
    if (first) {
        g_set_error(error, VMM_ERROR, VMM_ERROR_INVALID,
                    "domain '%s' given twice", domain);
        return FALSE;
    }
    if (placement->entries->len >= VMM_PLACEMENT_MAX_DOMAINS) {
        g_set_error(error, VMM_ERROR, VMM_ERROR_TOO_LARGE,
                    "more than %d domains", VMM_PLACEMENT_MAX_DOMAINS);
        return FALSE;
    }
    e = g_new0(VmmPlacementEntry, 1);
    e->domain = g_strdup(domain);
    e->dest_uri = g_strdup(dest_uri);
    e->source_uri = g_strdup(source_uri);
    e->line = line;
    g_ptr_array_add(placement->entries, e);
    g_hash_table_insert(placement->by_name, e->domain, e);
    return TRUE;
}

/*
 * Split one line into at most @max + 1 fields; a field that starts with
 * '#' starts a comment. Returns the number of fields found (which may be
 * @max + 1, meaning "too many").
 */
static guint
split_fields(char *line, char **fields, guint max)
{
    guint n = 0;
    char *save = NULL;

    for (char *tok = strtok_r(line, " \t\r", &save); tok;
         tok = strtok_r(NULL, " \t\r", &save)) {
        if (tok[0] == '#') {
            break;
        }
        if (n <= max) {
            fields[n] = tok;
        }
        n++;
        if (n > max) {
            break;
        }
    }
    return n;
}

static gboolean
parse_line(VmmPlacement *p, char *line, guint lineno, GError **error)
{
    char *f[4];
    guint n = split_fields(line, f, 3);

    switch (n) {
    case 0:
        return TRUE;
    case 1:
        g_set_error(error, VMM_ERROR, VMM_ERROR_INVALID,
                    "missing destination URI for domain '%s'", f[0]);
        return FALSE;
    case 2:
    case 3:
        return vmm_placement_add(p, f[0], f[1], n == 3 ? f[2] : NULL,
                                 lineno, error);
    default:
        g_set_error(error, VMM_ERROR, VMM_ERROR_INVALID,
                    "too many fields, expected 'DOMAIN DEST_URI "
                    "[SOURCE_URI]'");
        return FALSE;
    }
}

VmmPlacement *
vmm_placement_parse(const char *text, gsize len, const char *origin,
                    GError **error)
{
    g_autoptr(VmmPlacement) p = vmm_placement_new();
    g_autofree char *copy = NULL;
    const char *nul = len ? memchr(text, '\0', len) : NULL;
    char *line;
    guint lineno = 0;

    if (len > VMM_PLACEMENT_MAX_BYTES) {
        g_set_error(error, VMM_ERROR, VMM_ERROR_TOO_LARGE,
                    "placement file '%s' larger than %d bytes", origin,
                    VMM_PLACEMENT_MAX_BYTES);
        return NULL;
    }
    if (nul) {
        lineno = 1;
        for (const char *c = text; c < nul; c++) {
            lineno += *c == '\n';
        }
        g_set_error(error, VMM_ERROR, VMM_ERROR_INVALID,
                    "placement file '%s' line %u: NUL byte", origin, lineno);
        return NULL;
    }
    copy = g_strndup(text ? text : "", len);
    for (line = copy; line;) {
        char *nl = strchr(line, '\n');

        lineno++;
        if (nl) {
            *nl = '\0';
        }
        if (!parse_line(p, line, lineno, error)) {
            g_prefix_error(error, "placement file '%s' line %u: ", origin,
                           lineno);
            return NULL;
        }
        line = nl ? nl + 1 : NULL;
    }
    if (vmm_placement_size(p) == 0) {
        g_set_error(error, VMM_ERROR, VMM_ERROR_INVALID,
                    "placement file '%s' places no domain", origin);
        return NULL;
    }
    return g_steal_pointer(&p);
}

/* Read at most VMM_PLACEMENT_MAX_BYTES + 1 bytes: enough to tell a file
 * is too large without reading all of it (or /dev/zero). */
static GByteArray *
read_bounded(const char *path, GError **error)
{
    g_autoptr(GByteArray) buf = g_byte_array_new();
    int fd = g_open(path, O_RDONLY | O_CLOEXEC, 0);

    if (fd < 0) {
        g_set_error(error, VMM_ERROR, VMM_ERROR_IO,
                    "cannot read placement file '%s': %s", path,
                    g_strerror(errno));
        return NULL;
    }
    while (buf->len <= VMM_PLACEMENT_MAX_BYTES) {
        guint8 chunk[65536];
        gsize want = MIN(sizeof(chunk),
                         (gsize)VMM_PLACEMENT_MAX_BYTES + 1 - buf->len);
        ssize_t n = read(fd, chunk, want);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            g_set_error(error, VMM_ERROR, VMM_ERROR_IO,
                        "cannot read placement file '%s': %s", path,
                        g_strerror(errno));
            close(fd);
            return NULL;
        }
        if (n == 0) {
            break;
        }
        g_byte_array_append(buf, chunk, (guint)n);
    }
    close(fd);
    return g_steal_pointer(&buf);
}

VmmPlacement *
vmm_placement_load(const char *path, GError **error)
{
    g_autoptr(GByteArray) buf = read_bounded(path, error);

    if (!buf) {
        return NULL;
    }
    return vmm_placement_parse((const char *)buf->data, buf->len, path,
                               error);
}

guint
vmm_placement_size(const VmmPlacement *placement)
{
    return placement->entries->len;
}

const VmmPlacementEntry *
vmm_placement_get(const VmmPlacement *placement, guint i)
{
    g_return_val_if_fail(i < placement->entries->len, NULL);
    return g_ptr_array_index(placement->entries, i);
}
