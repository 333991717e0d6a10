#include "sal-json.h"

#include <errno.h>
#include <pwd.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

/* Field names quoted back in errors are cut to this many bytes. */
#define QUOTE_MAX 64
/* getpwuid_r() buffer: grown on ERANGE up to this. */
#define PASSWD_BUF_MAX (1024 * 1024)

typedef enum {
    FIELD_BOOL,
    FIELD_INT,    /* gint */
    FIELD_UINT,   /* guint (also guint32) */
    FIELD_INT64,  /* gint64 */
    FIELD_UINT64, /* guint64, within gint64 */
    FIELD_STRING, /* char * */
    FIELD_STRV,   /* char **, non-empty */
    FIELD_EXIT,   /* gint, -1 <-> null */
    FIELD_JOB_STATE,
    FIELD_VM_STATE,
} FieldType;

enum {
    FIELD_SUBMIT = 1 << 0,   /* users submit it */
    FIELD_REQUIRED = 1 << 1, /* in a submission */
    FIELD_NULLABLE = 1 << 2, /* NULL <-> null */
};

typedef struct {
    const char *name;
    FieldType type;
    guint flags;
    gsize offset;
    gint64 min, max; /* integers */
} Field;

G_STATIC_ASSERT(sizeof(guint32) == sizeof(guint));
G_STATIC_ASSERT(sizeof(SalJobState) == sizeof(gint));
G_STATIC_ASSERT(sizeof(SalVmState) == sizeof(gint));

#define JOB(f) offsetof(SalJob, f)
#define VM(f) offsetof(SalVm, f)
#define SUBMIT_REQ (FIELD_SUBMIT | FIELD_REQUIRED)

/* "user" and "vm_list" are derived and written apart. */
static const Field job_fields[] = {
    {"id", FIELD_INT64, 0, JOB(id), 0, G_MAXINT64},
    {"name", FIELD_STRING, FIELD_SUBMIT | FIELD_NULLABLE, JOB(name)},
    {"owner_uid", FIELD_UINT, 0, JOB(owner_uid), 0, G_MAXUINT32},
    {"state", FIELD_JOB_STATE, 0, JOB(state)},
    {"besteffort", FIELD_BOOL, FIELD_SUBMIT, JOB(besteffort)},
    {"idempotent", FIELD_BOOL, FIELD_SUBMIT, JOB(idempotent)},
    {"priority", FIELD_INT, FIELD_SUBMIT, JOB(priority), SAL_PRIORITY_MIN,
     SAL_PRIORITY_MAX},
    {"vms", FIELD_UINT, SUBMIT_REQ, JOB(n_vms), 1, SAL_MAX_VMS},
    {"cpus", FIELD_UINT, SUBMIT_REQ, JOB(cpus), 1, SAL_MAX_CPUS},
    {"mem_mib", FIELD_UINT64, SUBMIT_REQ, JOB(mem_mib), 1, SAL_MAX_MEM_MIB},
    {"image", FIELD_STRING, SUBMIT_REQ, JOB(image)},
    {"walltime_s", FIELD_INT64, SUBMIT_REQ, JOB(walltime_s), 1,
     SAL_MAX_WALLTIME_S},
    {"site", FIELD_STRING, FIELD_SUBMIT | FIELD_NULLABLE, JOB(site)},
    {"command", FIELD_STRV, SUBMIT_REQ, JOB(command)},
    {"submit_time", FIELD_INT64, 0, JOB(submit_time), 0, G_MAXINT64},
    {"start_time", FIELD_INT64, 0, JOB(start_time), 0, G_MAXINT64},
    {"end_time", FIELD_INT64, 0, JOB(end_time), 0, G_MAXINT64},
    {"elapsed_s", FIELD_INT64, 0, JOB(elapsed_s), 0, G_MAXINT64},
    {"exit_status", FIELD_EXIT, 0, JOB(exit_status), 0, 255},
    {"failure", FIELD_STRING, FIELD_NULLABLE, JOB(failure)},
    {"snapshot_interval_s", FIELD_INT64, FIELD_SUBMIT, JOB(snapshot_interval_s),
     0, SAL_MAX_SNAPSHOT_INTERVAL_S},
    {"idempotency_key", FIELD_STRING, FIELD_SUBMIT | FIELD_NULLABLE,
     JOB(idempotency_key)},
    {"snapshot_seq", FIELD_UINT, 0, JOB(snapshot_seq), 0, G_MAXUINT32},
    {"held", FIELD_BOOL, 0, JOB(held)},
    {"oar_job_id", FIELD_INT64, 0, JOB(oar_job_id), 0, G_MAXINT64},
    {"ssi", FIELD_BOOL, FIELD_SUBMIT, JOB(ssi)},
};

static const Field vm_fields[] = {
    {"index", FIELD_UINT, 0, VM(index), 0, SAL_MAX_VMS - 1},
    {"node", FIELD_STRING, FIELD_NULLABLE, VM(node)},
    {"site", FIELD_STRING, FIELD_NULLABLE, VM(site)},
    {"ip", FIELD_STRING, FIELD_NULLABLE, VM(ip)},
    {"mac", FIELD_STRING, FIELD_NULLABLE, VM(mac)},
    {"domain", FIELD_STRING, FIELD_NULLABLE, VM(domain)},
    {"state", FIELD_VM_STATE, 0, VM(state)},
    {"exit_status", FIELD_EXIT, 0, VM(exit_status), 0, 255},
};

#define AT(base, f, type) ((type *)((char *)(base) + (f)->offset))
#define CAT(base, f, type) ((const type *)((const char *)(base) + (f)->offset))

/* A name a peer sent, fit to quote in a one-line error. */
static char *
quote(const char *text)
{
    g_autofree char *cut = g_utf8_make_valid(text, MIN(strlen(text), QUOTE_MAX));

    return g_strescape(cut, NULL);
}

JsonNode *
sal_json_parse(const char *text, gsize len, GError **error)
{
    g_autoptr(JsonParser) parser = json_parser_new_immutable();
    g_autoptr(GError) local = NULL;
    JsonNode *root;

    if (len > G_MAXSSIZE ||
        !json_parser_load_from_data(parser, text, (gssize)len, &local)) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID, "malformed JSON: %s",
                    local ? local->message : "too long");
        return NULL;
    }
    root = json_parser_get_root(parser);
    if (!root) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                    "malformed JSON: empty document");
        return NULL;
    }
    return json_node_ref(root);
}

char *
sal_json_to_string(JsonNode *node)
{
    g_autofree char *text = json_to_string(node, FALSE);

    return g_strconcat(text, "\n", NULL);
}

char *
sal_uid_name(guint32 uid)
{
    long hint = sysconf(_SC_GETPW_R_SIZE_MAX);
    gsize size = hint > 0 ? (gsize)hint : 1024;

    for (;;) {
        g_autofree char *buf = g_malloc(size);
        struct passwd pw, *found = NULL;
        int err = getpwuid_r(uid, &pw, buf, size, &found);

        if (err == 0 && found) {
            return g_strdup(found->pw_name);
        }
        if (err != ERANGE || size >= PASSWD_BUF_MAX) {
            return g_strdup_printf("%" G_GUINT32_FORMAT, uid);
        }
        size *= 2;
    }
}

/* ---- writing ---- */

static void
field_write(JsonObject *o, const Field *f, gconstpointer base)
{
    switch (f->type) {
    case FIELD_BOOL:
        json_object_set_boolean_member(o, f->name, *CAT(base, f, gboolean));
        break;
    case FIELD_INT:
        json_object_set_int_member(o, f->name, *CAT(base, f, gint));
        break;
    case FIELD_UINT:
        json_object_set_int_member(o, f->name, *CAT(base, f, guint));
        break;
    case FIELD_INT64:
        json_object_set_int_member(o, f->name, *CAT(base, f, gint64));
        break;
    case FIELD_UINT64:
        json_object_set_int_member(
            o, f->name, (gint64)MIN(*CAT(base, f, guint64), G_MAXINT64));
        break;
    case FIELD_STRING: {
        const char *s = *CAT(base, f, char *);

        if (s) {
            json_object_set_string_member(o, f->name, s);
        } else {
            json_object_set_null_member(o, f->name);
        }
        break;
    }
    case FIELD_STRV: {
        char *const *v = *(char **const *)CAT(base, f, char);
        JsonArray *a = json_array_new();

        for (guint i = 0; v && v[i]; i++) {
            json_array_add_string_element(a, v[i]);
        }
        json_object_set_array_member(o, f->name, a);
        break;
    }
    case FIELD_EXIT: {
        gint status = *CAT(base, f, gint);

        if (status < 0) {
            json_object_set_null_member(o, f->name);
        } else {
            json_object_set_int_member(o, f->name, status);
        }
        break;
    }
    case FIELD_JOB_STATE:
        json_object_set_string_member(
            o, f->name, sal_job_state_to_string(*CAT(base, f, SalJobState)));
        break;
    case FIELD_VM_STATE:
        json_object_set_string_member(
            o, f->name, sal_vm_state_to_string(*CAT(base, f, SalVmState)));
        break;
    }
}

static JsonObject *
fields_write(const Field *fields, gsize n, guint flags, gconstpointer base)
{
    JsonObject *o = json_object_new();

    for (gsize i = 0; i < n; i++) {
        if ((fields[i].flags & flags) == flags) {
            field_write(o, &fields[i], base);
        }
    }
    return o;
}

static JsonNode *
object_node(JsonObject *o)
{
    JsonNode *node = json_node_new(JSON_NODE_OBJECT);

    json_node_take_object(node, o);
    return node;
}

JsonNode *
sal_job_to_json(const SalJob *job, GPtrArray *vms)
{
    JsonObject *o =
        fields_write(job_fields, G_N_ELEMENTS(job_fields), 0, job);
    JsonArray *list = json_array_new();
    g_autofree char *user = sal_uid_name(job->owner_uid);

    json_object_set_string_member(o, "user", user);
    for (guint i = 0; vms && i < vms->len; i++) {
        json_array_add_object_element(
            list, fields_write(vm_fields, G_N_ELEMENTS(vm_fields), 0,
                               g_ptr_array_index(vms, i)));
    }
    json_object_set_array_member(o, "vm_list", list);
    return object_node(o);
}

JsonNode *
sal_job_to_submission(const SalJob *job)
{
    JsonObject *o = fields_write(job_fields, G_N_ELEMENTS(job_fields),
                                 FIELD_SUBMIT, job);

    /* Absent rather than null: the server picks the default. */
    if (!job->name) {
        json_object_remove_member(o, "name");
    }
    if (!job->site) {
        json_object_remove_member(o, "site");
    }
    if (!job->idempotency_key) {
        json_object_remove_member(o, "idempotency_key");
    }
    return object_node(o);
}

/* ---- parsing ---- */

static gboolean
type_error(const Field *f, const char *what, GError **error)
{
    g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID, "'%s' must be %s%s",
                f->name, what,
                f->flags & FIELD_NULLABLE || f->type == FIELD_EXIT ? " or null"
                                                                   : "");
    return FALSE;
}

static gboolean
value_is(JsonNode *node, GType type)
{
    return JSON_NODE_HOLDS_VALUE(node) && json_node_get_value_type(node) == type;
}

static gboolean
strv_read(JsonNode *node, const Field *f, char ***out, GError **error)
{
    JsonArray *a;
    g_autoptr(GStrvBuilder) b = NULL;
    guint n;

    if (!JSON_NODE_HOLDS_ARRAY(node) ||
        (n = json_array_get_length(a = json_node_get_array(node))) == 0) {
        return type_error(f, "a non-empty array of strings", error);
    }
    if (n > SAL_MAX_ARGS) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                    "'%s' has more than %d elements", f->name, SAL_MAX_ARGS);
        return FALSE;
    }
    b = g_strv_builder_new();
    for (guint i = 0; i < n; i++) {
        JsonNode *e = json_array_get_element(a, i);

        if (!value_is(e, G_TYPE_STRING)) {
            return type_error(f, "a non-empty array of strings", error);
        }
        g_strv_builder_add(b, json_node_get_string(e));
    }
    g_strfreev(*out);
    *out = g_strv_builder_end(b);
    return TRUE;
}

static gboolean
state_read(JsonNode *node, const Field *f, gpointer base, GError **error)
{
    const char *text;

    if (!value_is(node, G_TYPE_STRING)) {
        return type_error(f, "a string", error);
    }
    text = json_node_get_string(node);
    if (f->type == FIELD_JOB_STATE) {
        return sal_job_state_from_string(text, AT(base, f, SalJobState), error);
    }
    return sal_vm_state_from_string(text, AT(base, f, SalVmState), error);
}

static gboolean
field_read(JsonNode *node, const Field *f, gpointer base, GError **error)
{
    gint64 v;

    if (JSON_NODE_HOLDS_NULL(node)) {
        if (f->type == FIELD_EXIT) {
            *AT(base, f, gint) = -1;
            return TRUE;
        }
        if (f->flags & FIELD_NULLABLE) {
            g_clear_pointer(AT(base, f, char *), g_free);
            return TRUE;
        }
    }
    switch (f->type) {
    case FIELD_BOOL:
        if (!value_is(node, G_TYPE_BOOLEAN)) {
            return type_error(f, "true or false", error);
        }
        *AT(base, f, gboolean) = json_node_get_boolean(node);
        return TRUE;
    case FIELD_STRING:
        if (!value_is(node, G_TYPE_STRING)) {
            return type_error(f, "a string", error);
        }
        g_free(*AT(base, f, char *));
        *AT(base, f, char *) = g_strdup(json_node_get_string(node));
        return TRUE;
    case FIELD_STRV:
        return strv_read(node, f, AT(base, f, char **), error);
    case FIELD_JOB_STATE:
    case FIELD_VM_STATE:
        return state_read(node, f, base, error);
    default:
        break;
    }

    /* Integers: checked against the field's range before narrowing. */
    if (!value_is(node, G_TYPE_INT64)) {
        return type_error(f, "an integer", error);
    }
    v = json_node_get_int(node);
    if (!sal_range_validate(f->name, v, f->min, f->max, error)) {
        return FALSE;
    }
    switch (f->type) {
    case FIELD_INT:
    case FIELD_EXIT:
        *AT(base, f, gint) = (gint)v;
        break;
    case FIELD_UINT:
        *AT(base, f, guint) = (guint)v;
        break;
    case FIELD_INT64:
        *AT(base, f, gint64) = v;
        break;
    case FIELD_UINT64:
        *AT(base, f, guint64) = (guint64)v;
        break;
    default:
        g_assert_not_reached();
    }
    return TRUE;
}

static const Field *
field_find(const Field *fields, gsize n, const char *name)
{
    for (gsize i = 0; i < n; i++) {
        if (g_str_equal(fields[i].name, name)) {
            return &fields[i];
        }
    }
    return NULL;
}

/*
 * Reads the members of @node into @base. @flags: only fields with those
 * flags exist; a member naming another is an error if @strict, else
 * skipped. @strict also makes FIELD_REQUIRED fields required.
 */
static gboolean
fields_read(JsonNode *node, const char *what, const Field *fields, gsize n,
            guint flags, gboolean strict, gpointer base, GError **error)
{
    JsonObject *o;
    JsonObjectIter iter;
    const char *name;
    JsonNode *member;

    if (!JSON_NODE_HOLDS_OBJECT(node)) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                    "%s must be a JSON object", what);
        return FALSE;
    }
    o = json_node_get_object(node);
    json_object_iter_init(&iter, o);
    while (json_object_iter_next(&iter, &name, &member)) {
        const Field *f = field_find(fields, n, name);

        if (!f || (f->flags & flags) != flags) {
            if (strict) {
                g_autofree char *q = quote(name);

                g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                            "unknown field '%s' in %s", q, what);
                return FALSE;
            }
            continue;
        }
        if (!field_read(member, f, base, error)) {
            return FALSE;
        }
    }
    for (gsize i = 0; strict && i < n; i++) {
        if ((fields[i].flags & FIELD_REQUIRED) &&
            !json_object_has_member(o, fields[i].name)) {
            g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                        "missing field '%s' in %s", fields[i].name, what);
            return FALSE;
        }
    }
    return TRUE;
}

char *
sal_job_default_name(char *const *command)
{
    g_autofree char *base = g_path_get_basename(command[0]);

    if (strlen(base) <= SAL_MAX_NAME_LEN &&
        sal_text_validate("job name", base, SAL_MAX_NAME_LEN, NULL) &&
        !g_str_equal(base, "/") && !g_str_equal(base, ".")) {
        return g_steal_pointer(&base);
    }
    return g_strdup("job");
}

SalJob *
sal_job_from_submission(JsonNode *node, GError **error)
{
    g_autoptr(SalJob) job = sal_job_new();

    if (!fields_read(node, "submission", job_fields, G_N_ELEMENTS(job_fields),
                     FIELD_SUBMIT, TRUE, job, error)) {
        return NULL;
    }
    if (!job->name) {
        job->name = sal_job_default_name(job->command);
    }
    if (!sal_job_validate(job, error)) {
        return NULL;
    }
    return g_steal_pointer(&job);
}

SalJob *
sal_job_from_json(JsonNode *node, GPtrArray **vms, GError **error)
{
    g_autoptr(SalJob) job = sal_job_new();
    g_autoptr(GPtrArray) list =
        g_ptr_array_new_with_free_func((GDestroyNotify)sal_vm_free);
    JsonNode *vm_list;

    if (!fields_read(node, "job", job_fields, G_N_ELEMENTS(job_fields), 0,
                     FALSE, job, error)) {
        return NULL;
    }
    vm_list = json_object_get_member(json_node_get_object(node), "vm_list");
    if (vm_list && !JSON_NODE_HOLDS_ARRAY(vm_list)) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                    "'vm_list' must be an array");
        return NULL;
    }
    for (guint i = 0;
         vm_list && i < json_array_get_length(json_node_get_array(vm_list));
         i++) {
        g_autoptr(SalVm) vm = sal_vm_new(job->id, i);

        if (!fields_read(json_array_get_element(json_node_get_array(vm_list),
                                                i),
                         "VM", vm_fields, G_N_ELEMENTS(vm_fields), 0, FALSE,
                         vm, error)) {
            return NULL;
        }
        g_ptr_array_add(list, g_steal_pointer(&vm));
    }
    if (vms) {
        *vms = g_steal_pointer(&list);
    }
    return g_steal_pointer(&job);
}
