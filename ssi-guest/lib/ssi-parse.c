/* Parsers of SSI message contents (ssi-parse.h). */
#include "ssi-parse.h"

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

#include "vc-error.h"
#include "vc-frame.h"

/* id:u32 addr:u32 leaving:u8 */
#define MEMBER_LEN 9

gboolean
ssi_parse_view(const SsiMsg *m, SsiView *view, GError **error)
{
    guint n = ssi_msg_count(m, SSI_F_MEMBER);
    guint32 prev = 0;

    memset(view, 0, sizeof(*view));
    if (n == 0 || n > SSI_MAX_NODES) {
        g_set_error(error, VC_ERROR, VC_ERROR_INVALID, "view of %u members", n);
        return FALSE;
    }
    if (!ssi_msg_u32(m, SSI_F_NEXT_ID, &view->next_id)) {
        g_set_error(error, VC_ERROR, VC_ERROR_INVALID, "view without NEXT_ID");
        return FALSE;
    }
    for (guint i = 0; i < n; i++) {
        const SsiFieldRef *f = ssi_msg_nth(m, SSI_F_MEMBER, i);
        SsiViewMember *vm = &view->members[i];
        VcCursor c;
        const guint8 *a;
        guint8 leaving;

        vc_cursor_init(&c, f->value, f->len);
        if (f->len != MEMBER_LEN || !vc_cursor_u32(&c, &vm->id) ||
            !vc_cursor_bytes(&c, 4, &a) || !vc_cursor_u8(&c, &leaving) ||
            vm->id == 0 || vm->id > SSI_MAX_NODES || vm->id <= prev ||
            !inet_ntop(AF_INET, a, vm->addr, sizeof(vm->addr))) {
            g_set_error(error, VC_ERROR, VC_ERROR_INVALID,
                        "bad member %u in a view", i);
            memset(view, 0, sizeof(*view));
            return FALSE;
        }
        vm->leaving = leaving != 0;
        prev = vm->id;
    }
    view->n_members = n;
    return TRUE;
}

/* A list of u32 in field @field (named @name in errors), at most
 * SSI_GPIDS_MAX: a new array, or NULL when absent or malformed. */
static GArray *
parse_u32_list(const SsiMsg *m, SsiField field, const char *name,
               GError **error)
{
    gsize len = 0;
    const guint8 *g = ssi_msg_bytes(m, field, &len);
    GArray *list;
    VcCursor c;

    if (!g) {
        g_set_error(error, VC_ERROR, VC_ERROR_INVALID, "no %s", name);
        return NULL;
    }
    if (len % 4 != 0) {
        g_set_error(error, VC_ERROR, VC_ERROR_INVALID,
                    "%s of %" G_GSIZE_FORMAT " bytes", name, len);
        return NULL;
    }
    if (len / 4 > SSI_GPIDS_MAX) {
        g_set_error(error, VC_ERROR, VC_ERROR_TOO_LARGE,
                    "%s of %" G_GSIZE_FORMAT " entries", name, len / 4);
        return NULL;
    }
    list = g_array_sized_new(FALSE, FALSE, sizeof(guint32), (guint)len / 4);
    vc_cursor_init(&c, g, len);
    for (gsize i = 0; i < len / 4; i++) {
        guint32 v = 0;

        vc_cursor_u32(&c, &v);
        g_array_append_val(list, v);
    }
    return list;
}

GArray *
ssi_parse_gpids(const SsiMsg *m, GError **error)
{
    return parse_u32_list(m, SSI_F_GPIDS, "GPIDS", error);
}

void
ssi_proc_meta_clear(SsiProcMeta *meta)
{
    g_clear_pointer(&meta->argv, g_strfreev);
    g_clear_pointer(&meta->stdin_pending, g_byte_array_unref);
}

gboolean
ssi_parse_proc_meta(const SsiMsg *m, SsiProcMeta *meta, GError **error)
{
    gsize len = 0;
    const guint8 *d;

    memset(meta, 0, sizeof(*meta));
    if (!ssi_msg_u32(m, SSI_F_GPID, &meta->gpid) ||
        !ssi_msg_u32(m, SSI_F_LAUNCHER, &meta->launcher) ||
        ssi_msg_count(m, SSI_F_INODE) != 3 ||
        !(meta->argv =
              ssi_msg_strv(m, SSI_F_ARG, SSI_ARGS_MAX, SSI_ARG_LEN_MAX)) ||
        !meta->argv[0]) {
        ssi_proc_meta_clear(meta);
        g_set_error(error, VC_ERROR, VC_ERROR_INVALID,
                    "bad process record in an image stream");
        return FALSE;
    }
    for (int i = 0; i < 3; i++) {
        const SsiFieldRef *f = ssi_msg_nth(m, SSI_F_INODE, i);
        VcCursor c;

        vc_cursor_init(&c, f->value, f->len);
        if (f->len != 8 || !vc_cursor_u64(&c, &meta->inode[i])) {
            ssi_proc_meta_clear(meta);
            g_set_error(error, VC_ERROR, VC_ERROR_INVALID,
                        "bad pipe inode in an image stream");
            return FALSE;
        }
    }
    meta->stdin_pending = g_byte_array_new();
    d = ssi_msg_bytes(m, SSI_F_DATA, &len);
    if (d) {
        g_byte_array_append(meta->stdin_pending, d, (guint)len);
    }
    {
        guint32 flags = 0;

        ssi_msg_u32(m, SSI_F_FLAGS, &flags);
        meta->stdin_eof = (flags & SSI_FLAG_STDIN_EOF) != 0;
        meta->fork = (flags & SSI_FLAG_FORK) != 0;
        meta->thaw = (flags & SSI_FLAG_THAW) != 0;
    }
    meta->inner = meta->gpid;
    if (ssi_msg_count(m, SSI_F_PID) &&
        (!ssi_msg_u32(m, SSI_F_PID, &meta->inner) || meta->inner < 2 ||
         meta->inner > 4194303)) {
        ssi_proc_meta_clear(meta);
        g_set_error(error, VC_ERROR, VC_ERROR_INVALID,
                    "bad PID in an image stream");
        return FALSE;
    }
    return TRUE;
}

gboolean
ssi_parse_path_ok(const char *p)
{
    g_auto(GStrv) parts = NULL;

    if (p[0] != '/' || strlen(p) > SSI_PATH_MAX) {
        return FALSE;
    }
    parts = g_strsplit(p, "/", -1);
    for (char **s = parts; *s; s++) {
        if (strcmp(*s, "..") == 0 || strcmp(*s, ".") == 0) {
            return FALSE;
        }
    }
    return TRUE;
}

void
ssi_file_chunk_clear(SsiFileChunk *f)
{
    g_clear_pointer(&f->name, g_free);
    g_clear_pointer(&f->path, g_free);
}

gboolean
ssi_parse_file(const SsiMsg *m, SsiFileChunk *f, GError **error)
{
    memset(f, 0, sizeof(*f));
    f->mode = 0600;
    f->name = ssi_msg_str(m, SSI_F_NAME, SSI_NAME_MAX);
    f->path = ssi_msg_str(m, SSI_F_PATH, SSI_PATH_MAX);
    f->data = ssi_msg_bytes(m, SSI_F_DATA, &f->len);
    if (m->hdr.type != SSI_FILE || (!f->name == !f->path) || !f->data ||
        !ssi_msg_u64(m, SSI_F_OFFSET, &f->offset) ||
        (f->name &&
         (strchr(f->name, '/') || f->name[0] == '.' || !f->name[0])) ||
        (f->path && !ssi_parse_path_ok(f->path))) {
        ssi_file_chunk_clear(f);
        memset(f, 0, sizeof(*f));
        g_set_error(error, VC_ERROR, VC_ERROR_INVALID,
                    "bad FILE message in an image stream");
        return FALSE;
    }
    ssi_msg_u32(m, SSI_F_MODE, &f->mode);
    f->mode &= 0777;
    return TRUE;
}

void
ssi_exec_request_clear(SsiExecRequest *req)
{
    g_clear_pointer(&req->argv, g_strfreev);
}

gboolean
ssi_parse_exec(const SsiMsg *m, SsiExecRequest *req, GError **error)
{
    memset(req, 0, sizeof(*req));
    req->argv = ssi_msg_strv(m, SSI_F_ARG, SSI_ARGS_MAX, SSI_ARG_LEN_MAX);
    if (!ssi_msg_u32(m, SSI_F_GPID, &req->gpid) ||
        !ssi_msg_u32(m, SSI_F_LAUNCHER, &req->launcher) || !req->argv ||
        !req->argv[0]) {
        ssi_exec_request_clear(req);
        g_set_error(error, VC_ERROR, VC_ERROR_INVALID, "bad EXEC request");
        return FALSE;
    }
    return TRUE;
}

gboolean
ssi_parse_kill(const SsiMsg *m, guint32 *gpid, guint32 *signal, GError **error)
{
    if (!ssi_msg_u32(m, SSI_F_GPID, gpid) ||
        !ssi_msg_u32(m, SSI_F_SIGNAL, signal) || *signal > SSI_SIGNAL_MAX) {
        g_set_error(error, VC_ERROR, VC_ERROR_INVALID, "bad KILL request");
        return FALSE;
    }
    return TRUE;
}

gboolean
ssi_parse_migrate(const SsiMsg *m, guint32 *gpid, guint32 *node, GError **error)
{
    if (!ssi_msg_u32(m, SSI_F_GPID, gpid) ||
        !ssi_msg_u32(m, SSI_F_NODE, node)) {
        g_set_error(error, VC_ERROR, VC_ERROR_INVALID, "bad MIGRATE request");
        return FALSE;
    }
    return TRUE;
}

GArray *
ssi_parse_busy(const SsiMsg *m, GError **error)
{
    return parse_u32_list(m, SSI_F_BUSY, "BUSY", error);
}

static const char *const sched_policies[] = {"cpu", "mem", "comm",
                                             "together"};

gboolean
ssi_sched_policy_known(const char *name)
{
    for (guint i = 0; i < G_N_ELEMENTS(sched_policies); i++) {
        if (strcmp(name, sched_policies[i]) == 0) {
            return TRUE;
        }
    }
    return FALSE;
}

void
ssi_sched_init(SsiSched *s)
{
    memset(s, 0, sizeof(*s));
    s->threshold = 2;
    s->residence = 5;
    s->budget = 12;
    s->period = 10;
    s->mem_high = 850;
    s->comm_high = 64;
}

static gboolean
sched_uint(const char *key, const char *value, guint64 min, guint64 max,
           guint32 *out, GError **error)
{
    guint64 v;

    if (!g_ascii_string_to_unsigned(value, 10, min, max, &v, NULL)) {
        g_set_error(error, VC_ERROR, VC_ERROR_INVALID,
                    "%s: '%s' is not a number in %" G_GUINT64_FORMAT
                    "..%" G_GUINT64_FORMAT,
                    key, value, min, max);
        return FALSE;
    }
    *out = (guint32)v;
    return TRUE;
}

static gboolean
sched_policies_set(SsiSched *s, const char *value, GError **error)
{
    g_auto(GStrv) names = NULL;

    /* Cleared whole, so that equal settings compare equal. */
    s->n_policies = 0;
    memset(s->policies, 0, sizeof(s->policies));
    if (!*value || strcmp(value, "none") == 0) {
        return TRUE;
    }
    names = g_strsplit(value, ",", SSI_SCHED_POLICIES_MAX + 1);
    for (char **n = names; *n; n++) {
        if (s->n_policies == SSI_SCHED_POLICIES_MAX) {
            g_set_error(error, VC_ERROR, VC_ERROR_TOO_LARGE,
                        "policies: more than %d", SSI_SCHED_POLICIES_MAX);
            return FALSE;
        }
        if (!ssi_sched_policy_known(*n)) {
            g_set_error(error, VC_ERROR, VC_ERROR_INVALID,
                        "no scheduling policy '%s'", *n);
            return FALSE;
        }
        for (guint i = 0; i < s->n_policies; i++) {
            if (strcmp(s->policies[i], *n) == 0) {
                g_set_error(error, VC_ERROR, VC_ERROR_INVALID,
                            "policies: '%s' twice", *n);
                return FALSE;
            }
        }
        g_strlcpy(s->policies[s->n_policies++], *n, SSI_SCHED_NAME_MAX + 1);
    }
    return TRUE;
}

static gboolean
sched_groups_set(SsiSched *s, const char *value, GError **error)
{
    g_auto(GStrv) groups = NULL;

    s->n_groups = 0;
    memset(s->group_len, 0, sizeof(s->group_len));
    memset(s->groups, 0, sizeof(s->groups));
    if (!*value) {
        return TRUE;
    }
    groups = g_strsplit(value, "/", SSI_SCHED_GROUPS_MAX + 1);
    if (g_strv_length(groups) > SSI_SCHED_GROUPS_MAX) {
        g_set_error(error, VC_ERROR, VC_ERROR_TOO_LARGE,
                    "together: more than %d groups", SSI_SCHED_GROUPS_MAX);
        return FALSE;
    }
    for (char **g = groups; *g; g++) {
        g_auto(GStrv) gpids = g_strsplit(*g, ",", SSI_SCHED_GROUP_MAX + 1);
        guint k = s->n_groups;

        if (!gpids[0]) {
            g_set_error(error, VC_ERROR, VC_ERROR_INVALID,
                        "together: an empty group");
            return FALSE;
        }
        if (g_strv_length(gpids) > SSI_SCHED_GROUP_MAX) {
            g_set_error(error, VC_ERROR, VC_ERROR_TOO_LARGE,
                        "together: a group of more than %d GPIDs",
                        SSI_SCHED_GROUP_MAX);
            return FALSE;
        }
        s->group_len[k] = 0;
        for (char **p = gpids; *p; p++) {
            guint32 v;

            if (!sched_uint("together", *p, 1, 4194303, &v, error)) {
                return FALSE;
            }
            if (ssi_sched_group_of(s, v) >= 0) {
                g_set_error(error, VC_ERROR, VC_ERROR_INVALID,
                            "together: GPID %u in two groups", v);
                return FALSE;
            }
            s->groups[k][s->group_len[k]++] = v;
        }
        s->n_groups++;
    }
    return TRUE;
}

gboolean
ssi_sched_set(SsiSched *s, const char *key, const char *value, GError **error)
{
    SsiSched t = *s;
    gboolean ok;

    if (strcmp(key, "policies") == 0) {
        ok = sched_policies_set(&t, value, error);
    } else if (strcmp(key, "threshold") == 0) {
        ok = sched_uint(key, value, 1, 1000, &t.threshold, error);
    } else if (strcmp(key, "residence") == 0) {
        ok = sched_uint(key, value, 0, 3600, &t.residence, error);
    } else if (strcmp(key, "budget") == 0) {
        ok = sched_uint(key, value, 0, 1000, &t.budget, error);
    } else if (strcmp(key, "period") == 0) {
        ok = sched_uint(key, value, 1, 3600, &t.period, error);
    } else if (strcmp(key, "mem_high") == 0) {
        ok = sched_uint(key, value, 1, 1000, &t.mem_high, error);
    } else if (strcmp(key, "comm_high") == 0) {
        ok = sched_uint(key, value, 1, 1048576, &t.comm_high, error);
    } else if (strcmp(key, "together") == 0) {
        ok = sched_groups_set(&t, value, error);
    } else {
        g_set_error(error, VC_ERROR, VC_ERROR_INVALID,
                    "unknown scheduler setting '%s'", key);
        return FALSE;
    }
    if (ok) {
        *s = t;
    }
    return ok;
}

gboolean
ssi_sched_parse(const char *text, SsiSched *s, GError **error)
{
    g_auto(GStrv) words = NULL;
    SsiSched t;

    if (strlen(text) > SSI_SCHED_TEXT_MAX) {
        g_set_error(error, VC_ERROR, VC_ERROR_TOO_LARGE,
                    "scheduler configuration over %d bytes",
                    SSI_SCHED_TEXT_MAX);
        return FALSE;
    }
    ssi_sched_init(&t);
    words = g_strsplit(text, " ", -1);
    for (char **w = words; *w; w++) {
        char *eq = strchr(*w, '=');

        if (!eq) {
            g_set_error(error, VC_ERROR, VC_ERROR_INVALID,
                        "'%s' is not KEY=VALUE", *w);
            return FALSE;
        }
        *eq = 0;
        if (!ssi_sched_set(&t, *w, eq + 1, error)) {
            return FALSE;
        }
    }
    *s = t;
    return TRUE;
}

char *
ssi_sched_format(const SsiSched *s)
{
    GString *t = g_string_new("policies=");

    for (guint i = 0; i < s->n_policies; i++) {
        g_string_append_printf(t, "%s%s", i ? "," : "", s->policies[i]);
    }
    if (!s->n_policies) {
        g_string_append(t, "none");
    }
    g_string_append_printf(
        t,
        " threshold=%u residence=%u budget=%u period=%u mem_high=%u "
        "comm_high=%u",
        s->threshold, s->residence, s->budget, s->period, s->mem_high,
        s->comm_high);
    g_string_append(t, " together=");
    for (guint g = 0; g < s->n_groups; g++) {
        for (guint i = 0; i < s->group_len[g]; i++) {
            g_string_append_printf(t, "%s%u",
                                   i   ? ","
                                   : g ? "/"
                                       : "",
                                   s->groups[g][i]);
        }
    }
    return g_string_free(t, FALSE);
}

int
ssi_sched_group_of(const SsiSched *s, guint32 gpid)
{
    for (guint g = 0; g < s->n_groups; g++) {
        for (guint i = 0; i < s->group_len[g]; i++) {
            if (s->groups[g][i] == gpid) {
                return (int)g;
            }
        }
    }
    return -1;
}
