#include "sal-job.h"

#include <string.h>

/* Longest walltime or memory text accepted: far more than any valid one
 * needs, little enough to quote in an error. */
#define QUANTITY_MAX_LEN 32
/* A number in a walltime or memory text: enough digits for any valid
 * value, few enough that no product overflows 64 bits. */
#define NUMBER_MAX_DIGITS 12

static const char *const job_state_names[SAL_JOB_N_STATES] = {
    [SAL_JOB_PENDING] = "pending",     [SAL_JOB_STARTING] = "starting",
    [SAL_JOB_RUNNING] = "running",     [SAL_JOB_SUSPENDING] = "suspending",
    [SAL_JOB_SUSPENDED] = "suspended", [SAL_JOB_RESUMING] = "resuming",
    [SAL_JOB_DONE] = "done",           [SAL_JOB_FAILED] = "failed",
    [SAL_JOB_CANCELLED] = "cancelled",
};

static const char *const vm_state_names[SAL_VM_N_STATES] = {
    [SAL_VM_PLACED] = "placed",   [SAL_VM_STARTING] = "starting",
    [SAL_VM_RUNNING] = "running", [SAL_VM_SUSPENDED] = "suspended",
    [SAL_VM_STOPPED] = "stopped", [SAL_VM_DEAD] = "dead",
};

#define TO(s) (1u << (s))

/* The table of sal-job.h, one bit per destination. */
static const guint next_states[SAL_JOB_N_STATES] = {
    [SAL_JOB_PENDING] =
        TO(SAL_JOB_STARTING) | TO(SAL_JOB_CANCELLED) | TO(SAL_JOB_FAILED),
    [SAL_JOB_STARTING] = TO(SAL_JOB_RUNNING) | TO(SAL_JOB_FAILED) |
                         TO(SAL_JOB_CANCELLED) | TO(SAL_JOB_PENDING),
    [SAL_JOB_RUNNING] = TO(SAL_JOB_DONE) | TO(SAL_JOB_FAILED) |
                        TO(SAL_JOB_CANCELLED) | TO(SAL_JOB_SUSPENDING) |
                        TO(SAL_JOB_PENDING),
    [SAL_JOB_SUSPENDING] =
        TO(SAL_JOB_SUSPENDED) | TO(SAL_JOB_FAILED) | TO(SAL_JOB_RUNNING),
    [SAL_JOB_SUSPENDED] =
        TO(SAL_JOB_RESUMING) | TO(SAL_JOB_CANCELLED) | TO(SAL_JOB_FAILED),
    [SAL_JOB_RESUMING] = TO(SAL_JOB_RUNNING) | TO(SAL_JOB_FAILED) |
                         TO(SAL_JOB_CANCELLED) | TO(SAL_JOB_SUSPENDED),
};

static gboolean
state_from_string(const char *const *names, guint n, const char *what,
                  const char *text, guint *out, GError **error)
{
    for (guint i = 0; i < n; i++) {
        if (g_str_equal(names[i], text)) {
            *out = i;
            return TRUE;
        }
    }
    g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID, "unknown %s state '%s'",
                what, text);
    return FALSE;
}

const char *
sal_job_state_to_string(SalJobState state)
{
    g_return_val_if_fail(state < SAL_JOB_N_STATES, "invalid");
    return job_state_names[state];
}

gboolean
sal_job_state_from_string(const char *text, SalJobState *state, GError **error)
{
    guint s;

    if (!state_from_string(job_state_names, SAL_JOB_N_STATES, "job", text, &s,
                           error)) {
        return FALSE;
    }
    *state = s;
    return TRUE;
}

gboolean
sal_job_state_is_terminal(SalJobState state)
{
    return state == SAL_JOB_DONE || state == SAL_JOB_FAILED ||
           state == SAL_JOB_CANCELLED;
}

gboolean
sal_job_state_is_active(SalJobState state)
{
    return state == SAL_JOB_STARTING || state == SAL_JOB_RUNNING ||
           state == SAL_JOB_SUSPENDING || state == SAL_JOB_RESUMING;
}

gboolean
sal_job_state_can_go(SalJobState from, SalJobState to)
{
    g_return_val_if_fail(from < SAL_JOB_N_STATES, FALSE);
    g_return_val_if_fail(to < SAL_JOB_N_STATES, FALSE);
    return (next_states[from] & TO(to)) != 0;
}

const char *
sal_vm_state_to_string(SalVmState state)
{
    g_return_val_if_fail(state < SAL_VM_N_STATES, "invalid");
    return vm_state_names[state];
}

gboolean
sal_vm_state_from_string(const char *text, SalVmState *state, GError **error)
{
    guint s;

    if (!state_from_string(vm_state_names, SAL_VM_N_STATES, "VM", text, &s,
                           error)) {
        return FALSE;
    }
    *state = s;
    return TRUE;
}

SalJob *
sal_job_new(void)
{
    SalJob *job = g_new0(SalJob, 1);

    job->state = SAL_JOB_PENDING;
    job->exit_status = -1;
    return job;
}

SalJob *
sal_job_copy(const SalJob *job)
{
    SalJob *copy = g_memdup2(job, sizeof(*job));

    copy->name = g_strdup(job->name);
    copy->image = g_strdup(job->image);
    copy->site = g_strdup(job->site);
    copy->command = g_strdupv(job->command);
    copy->failure = g_strdup(job->failure);
    copy->idempotency_key = g_strdup(job->idempotency_key);
    copy->ssi_key = g_strdup(job->ssi_key);
    return copy;
}

void
sal_job_free(SalJob *job)
{
    if (!job) {
        return;
    }
    g_free(job->name);
    g_free(job->image);
    g_free(job->site);
    g_strfreev(job->command);
    g_free(job->failure);
    g_free(job->idempotency_key);
    g_free(job->ssi_key);
    g_free(job);
}

static gboolean
command_validate(char **command, GError **error)
{
    guint argc = command ? g_strv_length(command) : 0;
    gsize total = 0;

    if (argc == 0) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID, "command is empty");
        return FALSE;
    }
    if (argc > SAL_MAX_ARGS) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                    "command has more than %d arguments", SAL_MAX_ARGS);
        return FALSE;
    }
    for (guint i = 0; i < argc; i++) {
        total += strnlen(command[i], SAL_MAX_COMMAND_LEN + 1) + 1;
        if (total > SAL_MAX_COMMAND_LEN) {
            g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                        "command is longer than %d bytes", SAL_MAX_COMMAND_LEN);
            return FALSE;
        }
    }
    return TRUE;
}

/* 0 is salined's default; snapshots are how best-effort jobs survive
 * preemption, a regular job is never preempted. */
static gboolean
snapshot_interval_validate(const SalJob *job, GError **error)
{
    if (job->snapshot_interval_s == 0) {
        return TRUE;
    }
    if (!job->besteffort) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                    "snapshot_interval_s is for best-effort jobs");
        return FALSE;
    }
    return sal_range_validate("snapshot interval (s)", job->snapshot_interval_s,
                              SAL_MIN_SNAPSHOT_INTERVAL_S,
                              SAL_MAX_SNAPSHOT_INTERVAL_S, error);
}

/* An SSI cluster has at most 63 members. A best-effort one is
 * snapshotted as one set, as any job's VMs (saline/README.md). */
static gboolean
ssi_validate(const SalJob *job, GError **error)
{
    if (!job->ssi) {
        return TRUE;
    }
    return sal_range_validate("VM count of an SSI job", job->n_vms, 1,
                              SAL_MAX_SSI_VMS, error);
}

/* Printable ASCII only: the key is quoted in logs and compared byte for
 * byte, so no encoding or control character can make two look alike. */
static gboolean
idempotency_key_validate(const char *key, GError **error)
{
    gsize len = strnlen(key, SAL_MAX_IDEMPOTENCY_KEY_LEN + 1);

    if (len == 0) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                    "idempotency key is empty");
        return FALSE;
    }
    if (len > SAL_MAX_IDEMPOTENCY_KEY_LEN) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                    "idempotency key is longer than %d characters",
                    SAL_MAX_IDEMPOTENCY_KEY_LEN);
        return FALSE;
    }
    for (gsize i = 0; i < len; i++) {
        if (!g_ascii_isprint(key[i])) {
            g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                        "idempotency key has a character that is not "
                        "printable ASCII");
            return FALSE;
        }
    }
    return TRUE;
}

gboolean
sal_job_validate(const SalJob *job, GError **error)
{
    return sal_text_validate("job name", job->name, SAL_MAX_NAME_LEN, error) &&
           sal_range_validate("VM count", job->n_vms, 1, SAL_MAX_VMS, error) &&
           sal_range_validate("CPU count", job->cpus, 1, SAL_MAX_CPUS, error) &&
           sal_range_validate("memory (MiB)",
                              (gint64)MIN(job->mem_mib, (guint64)G_MAXINT64), 1,
                              (gint64)SAL_MAX_MEM_MIB, error) &&
           sal_text_validate("image", job->image, SAL_MAX_IMAGE_LEN, error) &&
           sal_range_validate("walltime (s)", job->walltime_s, 1,
                              SAL_MAX_WALLTIME_S, error) &&
           (!job->site || sal_name_validate("site", job->site, error)) &&
           command_validate(job->command, error) &&
           sal_range_validate("priority", job->priority, SAL_PRIORITY_MIN,
                              SAL_PRIORITY_MAX, error) &&
           snapshot_interval_validate(job, error) && ssi_validate(job, error) &&
           (!job->idempotency_key ||
            idempotency_key_validate(job->idempotency_key, error));
}

gboolean
sal_job_same_submission(const SalJob *a, const SalJob *b)
{
    return g_strcmp0(a->name, b->name) == 0 &&
           !a->besteffort == !b->besteffort &&
           !a->idempotent == !b->idempotent && a->priority == b->priority &&
           a->n_vms == b->n_vms && a->cpus == b->cpus &&
           a->mem_mib == b->mem_mib && g_strcmp0(a->image, b->image) == 0 &&
           a->walltime_s == b->walltime_s && g_strcmp0(a->site, b->site) == 0 &&
           a->snapshot_interval_s == b->snapshot_interval_s &&
           !a->ssi == !b->ssi && a->command && b->command &&
           g_strv_equal((const char *const *)a->command,
                        (const char *const *)b->command);
}

gboolean
sal_job_transition_at(SalJob *job, SalJobState state, gint64 now,
                      GError **error)
{
    SalJobState from = job->state;

    g_return_val_if_fail(state < SAL_JOB_N_STATES, FALSE);

    if (!sal_job_state_can_go(from, state)) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_STATE,
                    "job %" G_GINT64_FORMAT " cannot go from '%s' to '%s'",
                    job->id, job_state_names[from], job_state_names[state]);
        return FALSE;
    }
    if (from == SAL_JOB_RUNNING && state == SAL_JOB_PENDING &&
        !job->idempotent) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_STATE,
                    "job %" G_GINT64_FORMAT
                    " is not idempotent and cannot be requeued",
                    job->id);
        return FALSE;
    }

    if (from == SAL_JOB_RUNNING) {
        job->elapsed_s += MAX(now - job->start_time, 0);
    }
    if (state == SAL_JOB_RUNNING) {
        job->start_time = now;
    } else if (state == SAL_JOB_PENDING) {
        job->start_time = 0;
        job->end_time = 0;
        job->elapsed_s = 0;
        job->exit_status = -1;
        g_clear_pointer(&job->failure, g_free);
    } else if (sal_job_state_is_terminal(state)) {
        job->end_time = now;
    }
    job->state = state;
    return TRUE;
}

gboolean
sal_job_transition(SalJob *job, SalJobState state, GError **error)
{
    return sal_job_transition_at(job, state, g_get_real_time() / G_USEC_PER_SEC,
                                 error);
}

gint64
sal_job_run_time(const SalJob *job, gint64 now)
{
    if (job->state == SAL_JOB_RUNNING) {
        return job->elapsed_s + MAX(now - job->start_time, 0);
    }
    return job->elapsed_s;
}

gint64
sal_job_expected_end(const SalJob *job, gint64 now)
{
    gint64 from = job->state == SAL_JOB_RUNNING ? job->start_time : now;

    return MAX(from + job->walltime_s - job->elapsed_s, now);
}

SalVm *
sal_vm_new(gint64 job_id, guint index)
{
    SalVm *vm = g_new0(SalVm, 1);

    vm->job_id = job_id;
    vm->index = index;
    vm->state = SAL_VM_PLACED;
    vm->exit_status = -1;
    return vm;
}

SalVm *
sal_vm_copy(const SalVm *vm)
{
    SalVm *copy = g_memdup2(vm, sizeof(*vm));

    copy->node = g_strdup(vm->node);
    copy->site = g_strdup(vm->site);
    copy->mac = g_strdup(vm->mac);
    copy->ip = g_strdup(vm->ip);
    copy->domain = g_strdup(vm->domain);
    return copy;
}

void
sal_vm_free(SalVm *vm)
{
    if (!vm) {
        return;
    }
    g_free(vm->node);
    g_free(vm->site);
    g_free(vm->mac);
    g_free(vm->ip);
    g_free(vm->domain);
    g_free(vm);
}

char *
sal_vm_domain_name(gint64 job_id, guint index)
{
    return g_strdup_printf("saline-%" G_GINT64_FORMAT "-%u", job_id, index);
}

/* Reads 1..@max_digits decimal digits at *@p and advances past them. */
static gboolean
read_number(const char **p, guint max_digits, guint64 *value)
{
    guint n = 0;

    *value = 0;
    while (g_ascii_isdigit(**p)) {
        if (++n > max_digits) {
            return FALSE;
        }
        *value = *value * 10 + (guint64)(**p - '0');
        (*p)++;
    }
    return n > 0;
}

/* NULL, empty and over-long quantities, before any parsing. */
static gboolean
quantity_check(const char *what, const char *text, GError **error)
{
    gsize len = text ? strnlen(text, QUANTITY_MAX_LEN + 1) : 0;

    if (len == 0) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID, "%s is empty", what);
        return FALSE;
    }
    if (len > QUANTITY_MAX_LEN) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                    "%s is longer than %d characters", what, QUANTITY_MAX_LEN);
        return FALSE;
    }
    return TRUE;
}

/* "H", "H:M" or "H:M:S", M and S below 60. */
static gboolean
walltime_clock(const char *text, guint64 *seconds)
{
    const char *p = text;
    guint64 v;
    guint fields = 0;

    *seconds = 0;
    for (;;) {
        if (!read_number(&p, NUMBER_MAX_DIGITS, &v) ||
            (fields > 0 && v >= 60)) {
            return FALSE;
        }
        *seconds = *seconds * 60 + v;
        fields++;
        if (*p == '\0') {
            break;
        }
        if (*p != ':' || fields == 3) {
            return FALSE;
        }
        p++;
    }
    /* "H" and "H:M" count from hours, as oarsub does. */
    for (; fields < 3; fields++) {
        *seconds *= 60;
    }
    return TRUE;
}

/* A number with one unit letter: "90s", "15m", "2h", "3d". */
static gboolean
walltime_unit(const char *text, guint64 *seconds)
{
    static const struct {
        char unit;
        guint64 factor;
    } units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
    const char *p = text;
    guint64 v;

    if (!read_number(&p, NUMBER_MAX_DIGITS, &v) || p[0] == '\0' ||
        p[1] != '\0') {
        return FALSE;
    }
    for (guint i = 0; i < G_N_ELEMENTS(units); i++) {
        if (*p == units[i].unit) {
            *seconds = v * units[i].factor;
            return TRUE;
        }
    }
    return FALSE;
}

gboolean
sal_walltime_parse(const char *text, gint64 *seconds, GError **error)
{
    guint64 s;

    if (!quantity_check("walltime", text, error)) {
        return FALSE;
    }
    if (!walltime_clock(text, &s) && !walltime_unit(text, &s)) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                    "invalid walltime '%s': use H:M:S, H:M, H, or a number "
                    "with s, m, h or d",
                    text);
        return FALSE;
    }
    if (s == 0 || s > SAL_MAX_WALLTIME_S) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                    "walltime '%s' is not between 1 s and 30 days", text);
        return FALSE;
    }
    *seconds = (gint64)s;
    return TRUE;
}

gboolean
sal_duration_parse(const char *what, const char *text, gint64 *seconds,
                   GError **error)
{
    const char *p = text;
    guint64 s;

    if (!quantity_check(what, text, error)) {
        return FALSE;
    }
    if ((!read_number(&p, NUMBER_MAX_DIGITS, &s) || *p != '\0') &&
        !walltime_unit(text, &s)) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                    "invalid %s '%s': use seconds, or a number with s, m, h "
                    "or d",
                    what, text);
        return FALSE;
    }
    *seconds = (gint64)s;
    return TRUE;
}

char *
sal_walltime_format(gint64 seconds)
{
    seconds = MAX(seconds, 0);
    return g_strdup_printf("%" G_GINT64_FORMAT ":%02d:%02d", seconds / 3600,
                           (int)(seconds / 60 % 60), (int)(seconds % 60));
}

gboolean
sal_mem_parse(const char *text, guint64 *mib, GError **error)
{
    static const struct {
        const char *suffix;
        guint shift;
    } units[] = {
        {"", 0},    {"M", 0},    {"MB", 0}, {"MiB", 0}, {"G", 10},
        {"GB", 10}, {"GiB", 10}, {"T", 20}, {"TB", 20}, {"TiB", 20},
    };
    const char *p = text;
    guint64 v;

    if (!quantity_check("memory", text, error)) {
        return FALSE;
    }
    if (read_number(&p, NUMBER_MAX_DIGITS, &v)) {
        for (guint i = 0; i < G_N_ELEMENTS(units); i++) {
            if (g_ascii_strcasecmp(p, units[i].suffix) != 0) {
                continue;
            }
            v <<= units[i].shift;
            if (v == 0 || v > SAL_MAX_MEM_MIB) {
                g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                            "memory '%s' is not between 1 MiB and 16 TiB",
                            text);
                return FALSE;
            }
            *mib = v;
            return TRUE;
        }
    }
    g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                "invalid memory '%s': use MiB, or a number with M, G or T",
                text);
    return FALSE;
}

char *
sal_mem_format(guint64 mib)
{
    if (mib != 0 && mib % 1024 == 0) {
        return g_strdup_printf("%" G_GUINT64_FORMAT "G", mib / 1024);
    }
    return g_strdup_printf("%" G_GUINT64_FORMAT "M", mib);
}
