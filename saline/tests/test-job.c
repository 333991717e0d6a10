#include <string.h>

#include "sal-job.h"
#include "sal-node.h"
#include "sal-test.h"

/* The table of sal-job.h, written out again so that a change to the
 * implementation's table shows here. */
static const struct {
    SalJobState from;
    SalJobState to;
} legal[] = {
    {SAL_JOB_PENDING, SAL_JOB_STARTING},
    {SAL_JOB_PENDING, SAL_JOB_CANCELLED},
    {SAL_JOB_PENDING, SAL_JOB_FAILED},
    {SAL_JOB_STARTING, SAL_JOB_RUNNING},
    {SAL_JOB_STARTING, SAL_JOB_FAILED},
    {SAL_JOB_STARTING, SAL_JOB_CANCELLED},
    {SAL_JOB_STARTING, SAL_JOB_PENDING},
    {SAL_JOB_RUNNING, SAL_JOB_DONE},
    {SAL_JOB_RUNNING, SAL_JOB_FAILED},
    {SAL_JOB_RUNNING, SAL_JOB_CANCELLED},
    {SAL_JOB_RUNNING, SAL_JOB_SUSPENDING},
    {SAL_JOB_RUNNING, SAL_JOB_PENDING},
    {SAL_JOB_SUSPENDING, SAL_JOB_SUSPENDED},
    {SAL_JOB_SUSPENDING, SAL_JOB_FAILED},
    {SAL_JOB_SUSPENDING, SAL_JOB_RUNNING},
    {SAL_JOB_SUSPENDED, SAL_JOB_RESUMING},
    {SAL_JOB_SUSPENDED, SAL_JOB_CANCELLED},
    {SAL_JOB_SUSPENDED, SAL_JOB_FAILED},
    {SAL_JOB_RESUMING, SAL_JOB_RUNNING},
    {SAL_JOB_RESUMING, SAL_JOB_FAILED},
    {SAL_JOB_RESUMING, SAL_JOB_CANCELLED},
    {SAL_JOB_RESUMING, SAL_JOB_SUSPENDED},
};

static gboolean
is_legal(SalJobState from, SalJobState to)
{
    for (guint i = 0; i < G_N_ELEMENTS(legal); i++) {
        if (legal[i].from == from && legal[i].to == to) {
            return TRUE;
        }
    }
    return FALSE;
}

static SalJob *
make_job(void)
{
    SalJob *job = sal_test_job(4, NULL);

    job->id = 7;
    return job;
}

static void
test_state_names(void)
{
    g_autoptr(GError) error = NULL;
    SalJobState s;
    SalVmState v;

    for (guint i = 0; i < SAL_JOB_N_STATES; i++) {
        g_assert_true(
            sal_job_state_from_string(sal_job_state_to_string(i), &s, NULL));
        g_assert_cmpint(s, ==, i);
    }
    for (guint i = 0; i < SAL_VM_N_STATES; i++) {
        g_assert_true(
            sal_vm_state_from_string(sal_vm_state_to_string(i), &v, NULL));
        g_assert_cmpint(v, ==, i);
    }
    g_assert_cmpstr(sal_job_state_to_string(SAL_JOB_SUSPENDING), ==,
                    "suspending");
    g_assert_false(sal_job_state_from_string("Running", &s, &error));
    g_assert_error(error, SAL_ERROR, SAL_ERROR_INVALID);
    g_assert_cmpstr(error->message, ==, "unknown job state 'Running'");
    g_clear_error(&error);
    g_assert_false(sal_vm_state_from_string("", &v, &error));
    g_assert_error(error, SAL_ERROR, SAL_ERROR_INVALID);

    g_assert_true(sal_job_state_is_terminal(SAL_JOB_DONE));
    g_assert_true(sal_job_state_is_terminal(SAL_JOB_FAILED));
    g_assert_true(sal_job_state_is_terminal(SAL_JOB_CANCELLED));
    g_assert_false(sal_job_state_is_terminal(SAL_JOB_SUSPENDED));
    g_assert_true(sal_job_state_is_active(SAL_JOB_SUSPENDING));
    g_assert_false(sal_job_state_is_active(SAL_JOB_SUSPENDED));
    g_assert_false(sal_job_state_is_active(SAL_JOB_PENDING));
}

/* Every pair of states: legal ones pass, the others fail with
 * SAL_ERROR_STATE and leave the job as it was. */
static void
test_transitions(void)
{
    guint n_legal = 0;

    for (guint from = 0; from < SAL_JOB_N_STATES; from++) {
        for (guint to = 0; to < SAL_JOB_N_STATES; to++) {
            g_autoptr(SalJob) job = make_job();
            g_autoptr(GError) error = NULL;
            gboolean ok;

            job->idempotent = TRUE;
            job->state = from;
            g_assert_cmpint(sal_job_state_can_go(from, to), ==,
                            is_legal(from, to));
            ok = sal_job_transition_at(job, to, 5000, &error);
            g_assert_cmpint(ok, ==, is_legal(from, to));
            if (ok) {
                g_assert_no_error(error);
                g_assert_cmpint(job->state, ==, to);
                n_legal++;
            } else {
                g_assert_error(error, SAL_ERROR, SAL_ERROR_STATE);
                g_assert_cmpint(job->state, ==, from);
                g_assert_cmpint(job->end_time, ==, 0);
            }
        }
    }
    g_assert_cmpuint(n_legal, ==, G_N_ELEMENTS(legal));

    /* Terminal states have no way out. */
    for (guint to = 0; to < SAL_JOB_N_STATES; to++) {
        g_assert_false(sal_job_state_can_go(SAL_JOB_DONE, to));
        g_assert_false(sal_job_state_can_go(SAL_JOB_FAILED, to));
        g_assert_false(sal_job_state_can_go(SAL_JOB_CANCELLED, to));
    }
}

static void
test_transition_message(void)
{
    g_autoptr(SalJob) job = make_job();
    g_autoptr(GError) error = NULL;

    g_assert_false(sal_job_transition(job, SAL_JOB_RUNNING, &error));
    g_assert_cmpstr(error->message, ==,
                    "job 7 cannot go from 'pending' to 'running'");
}

static void
test_requeue(void)
{
    g_autoptr(SalJob) job = make_job();
    g_autoptr(GError) error = NULL;

    g_assert_true(sal_job_transition_at(job, SAL_JOB_STARTING, 100, NULL));
    /* Its VMs never started: it may go back whatever it is. */
    g_assert_true(sal_job_transition_at(job, SAL_JOB_PENDING, 110, NULL));
    g_assert_true(sal_job_transition_at(job, SAL_JOB_STARTING, 120, NULL));
    g_assert_true(sal_job_transition_at(job, SAL_JOB_RUNNING, 130, NULL));

    /* Once its command ran, only an idempotent job is requeued. */
    g_assert_false(sal_job_transition_at(job, SAL_JOB_PENDING, 200, &error));
    g_assert_error(error, SAL_ERROR, SAL_ERROR_STATE);
    g_assert_cmpstr(error->message, ==,
                    "job 7 is not idempotent and cannot be requeued");
    g_assert_cmpint(job->state, ==, SAL_JOB_RUNNING);
    g_assert_cmpint(job->start_time, ==, 130);

    job->idempotent = TRUE;
    job->failure = g_strdup("node 'a1' died");
    g_assert_true(sal_job_transition_at(job, SAL_JOB_PENDING, 200, NULL));
    g_assert_cmpint(job->start_time, ==, 0);
    g_assert_cmpint(job->elapsed_s, ==, 0);
    g_assert_null(job->failure);
    g_assert_cmpint(job->exit_status, ==, -1);
}

/* Walltime counts running time only, across a suspension. */
static void
test_times(void)
{
    g_autoptr(SalJob) job = make_job();

    job->besteffort = TRUE;
    job->walltime_s = 200;
    g_assert_cmpint(sal_job_expected_end(job, 50), ==, 250);
    g_assert_true(sal_job_transition_at(job, SAL_JOB_STARTING, 100, NULL));
    g_assert_true(sal_job_transition_at(job, SAL_JOB_RUNNING, 110, NULL));
    g_assert_cmpint(job->start_time, ==, 110);
    g_assert_cmpint(sal_job_run_time(job, 150), ==, 40);
    g_assert_cmpint(sal_job_expected_end(job, 150), ==, 310);
    g_assert_true(sal_job_transition_at(job, SAL_JOB_SUSPENDING, 170, NULL));
    g_assert_cmpint(job->elapsed_s, ==, 60);
    g_assert_true(sal_job_transition_at(job, SAL_JOB_SUSPENDED, 180, NULL));
    g_assert_cmpint(sal_job_run_time(job, 1000), ==, 60);
    g_assert_true(sal_job_transition_at(job, SAL_JOB_RESUMING, 290, NULL));
    g_assert_true(sal_job_transition_at(job, SAL_JOB_RUNNING, 300, NULL));
    g_assert_cmpint(sal_job_run_time(job, 350), ==, 110);
    g_assert_cmpint(sal_job_expected_end(job, 350), ==, 440);
    /* Overdue: the end is now, never in the past. */
    g_assert_cmpint(sal_job_expected_end(job, 500), ==, 500);
    g_assert_true(sal_job_transition_at(job, SAL_JOB_DONE, 400, NULL));
    g_assert_cmpint(job->end_time, ==, 400);
    g_assert_cmpint(job->elapsed_s, ==, 160);
}

static void
test_walltime(void)
{
    static const struct {
        const char *text;
        gint64 seconds;
    } good[] = {
        {"1:30:00", 5400}, {"0:0:1", 1},           {"2:00", 7200},
        {"2", 7200},       {"0:01", 60},           {"90s", 90},
        {"15m", 900},      {"2h", 7200},           {"3d", 3 * 86400},
        {"30d", 2592000},  {"720:00:00", 2592000}, {"001:02:03", 3723},
    };
    static const char *const bad[] = {
        "",
        "0",
        "0:00:00",
        "0s",
        "1:60:00",
        "1:00:60",
        "1:2:3:4",
        "-1",
        "+1",
        " 1",
        "1 ",
        "1h30m",
        "abc",
        "1.5h",
        "2H",
        "721:00:00",
        "31d",
        "2592001s",
        "1:",
        ":30",
        "5x",
        "h",
        "1::0",
        "99999999999999999999",
        "1234567890123d",
        "0000000000000000000000000000000001",
    };
    gint64 s;

    for (guint i = 0; i < G_N_ELEMENTS(good); i++) {
        g_autoptr(GError) error = NULL;

        g_test_message("walltime '%s'", good[i].text);
        g_assert_true(sal_walltime_parse(good[i].text, &s, &error));
        g_assert_no_error(error);
        g_assert_cmpint(s, ==, good[i].seconds);
    }
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GError) error = NULL;

        g_test_message("walltime '%s'", bad[i]);
        s = -7;
        g_assert_false(sal_walltime_parse(bad[i], &s, &error));
        g_assert_error(error, SAL_ERROR, SAL_ERROR_INVALID);
        g_assert_cmpint(s, ==, -7);
    }
    {
        g_autoptr(GError) error = NULL;

        g_assert_false(sal_walltime_parse("1:75", &s, &error));
        g_assert_cmpstr(error->message, ==,
                        "invalid walltime '1:75': use H:M:S, H:M, H, or a "
                        "number with s, m, h or d");
    }
}

static void
test_duration(void)
{
    static const struct {
        const char *text;
        gint64 seconds; /* -1: refused */
    } cases[] = {
        {"0", 0},     {"90", 90},   {"90s", 90},      {"2m", 120},
        {"1h", 3600}, {"1d", 86400}, {"", -1},        {"1:30", -1},
        {"2x", -1},   {"m", -1},    {"-5", -1},       {"1.5m", -1},
        {"2 m", -1},  {"2mm", -1},  {"9999999999999", -1},
    };

    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GError) error = NULL;
        gint64 s = -1;
        gboolean ok = sal_duration_parse("interval", cases[i].text, &s, &error);

        g_test_message("'%s'", cases[i].text);
        if (cases[i].seconds < 0) {
            g_assert_false(ok);
            g_assert_error(error, SAL_ERROR, SAL_ERROR_INVALID);
            g_assert_true(g_str_has_prefix(error->message, "interval") ||
                          g_str_has_prefix(error->message, "invalid interval"));
        } else {
            g_assert_no_error(error);
            g_assert_cmpint(s, ==, cases[i].seconds);
        }
    }
}

static void
test_walltime_format(void)
{
    static const struct {
        gint64 seconds;
        const char *text;
    } cases[] = {
        {0, "0:00:00"},    {59, "0:00:59"},        {5400, "1:30:00"},
        {3723, "1:02:03"}, {2592000, "720:00:00"},
    };

    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *text = sal_walltime_format(cases[i].seconds);
        gint64 back;

        g_assert_cmpstr(text, ==, cases[i].text);
        if (cases[i].seconds > 0) {
            g_assert_true(sal_walltime_parse(text, &back, NULL));
            g_assert_cmpint(back, ==, cases[i].seconds);
        }
    }
}

static void
test_mem(void)
{
    static const struct {
        const char *text;
        guint64 mib;
    } good[] = {
        {"1024", 1024},  {"1", 1},          {"512M", 512},
        {"512m", 512},   {"512MiB", 512},   {"2G", 2048},
        {"2g", 2048},    {"2GiB", 2048},    {"2GB", 2048},
        {"1T", 1048576}, {"16T", 16777216}, {"16777216", 16777216},
    };
    static const char *const bad[] = {
        "",         "0",    "0G",    "17T",
        "16777217", "1.5G", "2K",    "G",
        "-1",       " 512", "512 M", "512Mi",
        "2GiBs",    "0x10", "1e3",   "99999999999999999999G",
    };
    guint64 mib;

    for (guint i = 0; i < G_N_ELEMENTS(good); i++) {
        g_test_message("memory '%s'", good[i].text);
        g_assert_true(sal_mem_parse(good[i].text, &mib, NULL));
        g_assert_cmpuint(mib, ==, good[i].mib);
    }
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GError) error = NULL;

        g_test_message("memory '%s'", bad[i]);
        mib = 7;
        g_assert_false(sal_mem_parse(bad[i], &mib, &error));
        g_assert_error(error, SAL_ERROR, SAL_ERROR_INVALID);
        g_assert_cmpuint(mib, ==, 7);
    }
}

static void
test_mem_format(void)
{
    g_autofree char *a = sal_mem_format(2048);
    g_autofree char *b = sal_mem_format(1536);
    g_autofree char *c = sal_mem_format(1048576);

    g_assert_cmpstr(a, ==, "2G");
    g_assert_cmpstr(b, ==, "1536M");
    g_assert_cmpstr(c, ==, "1024G");
}

typedef void (*Spoil)(SalJob *job);

static void
spoil_name_empty(SalJob *job)
{
    g_free(job->name);
    job->name = g_strdup("");
}

static void
spoil_name_control(SalJob *job)
{
    g_free(job->name);
    job->name = g_strdup("two\nlines");
}

static void
spoil_name_utf8(SalJob *job)
{
    g_free(job->name);
    job->name = g_strdup("bad\xff");
}

static void
spoil_name_long(SalJob *job)
{
    g_free(job->name);
    job->name = g_strnfill(SAL_MAX_NAME_LEN + 1, 'x');
}

static void
spoil_vms_zero(SalJob *job)
{
    job->n_vms = 0;
}

static void
spoil_vms_many(SalJob *job)
{
    job->n_vms = SAL_MAX_VMS + 1;
}

static void
spoil_cpus(SalJob *job)
{
    job->cpus = 0;
}

static void
spoil_mem(SalJob *job)
{
    job->mem_mib = SAL_MAX_MEM_MIB + 1;
}

static void
spoil_image(SalJob *job)
{
    g_clear_pointer(&job->image, g_free);
}

static void
spoil_walltime(SalJob *job)
{
    job->walltime_s = SAL_MAX_WALLTIME_S + 1;
}

static void
spoil_site(SalJob *job)
{
    job->site = g_strdup("site a");
}

static void
spoil_command_empty(SalJob *job)
{
    g_strfreev(job->command);
    job->command = g_new0(char *, 1);
}

static void
spoil_command_args(SalJob *job)
{
    g_strfreev(job->command);
    job->command = g_new0(char *, SAL_MAX_ARGS + 2);
    for (guint i = 0; i <= SAL_MAX_ARGS; i++) {
        job->command[i] = g_strdup("x");
    }
}

static void
spoil_command_long(SalJob *job)
{
    g_free(job->command[1]);
    job->command[1] = g_strnfill(SAL_MAX_COMMAND_LEN, 'x');
}

static void
spoil_priority(SalJob *job)
{
    job->priority = SAL_PRIORITY_MAX + 1;
}

static void
test_validate(void)
{
    static const Spoil spoils[] = {
        spoil_name_empty,   spoil_name_control, spoil_name_utf8,
        spoil_name_long,    spoil_vms_zero,     spoil_vms_many,
        spoil_cpus,         spoil_mem,          spoil_image,
        spoil_walltime,     spoil_site,         spoil_command_empty,
        spoil_command_args, spoil_command_long, spoil_priority,
    };
    g_autoptr(SalJob) good = make_job();
    g_autoptr(GError) error = NULL;

    g_assert_true(sal_job_validate(good, NULL));
    good->site = g_strdup("rennes-1.g5k");
    good->priority = SAL_PRIORITY_MIN;
    g_assert_true(sal_job_validate(good, NULL));

    for (guint i = 0; i < G_N_ELEMENTS(spoils); i++) {
        g_autoptr(SalJob) job = make_job();

        g_clear_error(&error);
        spoils[i](job);
        g_assert_false(sal_job_validate(job, &error));
        g_assert_error(error, SAL_ERROR, SAL_ERROR_INVALID);
        g_test_message("%s", error->message);
    }
    g_assert_cmpstr(error->message, ==,
                    "priority 1001 is out of range "
                    "-1000..1000");
}

/* 0 or 5 s .. 24 h, and only for best-effort jobs: a regular job is
 * never preempted, so never snapshotted. */
static void
test_validate_snapshot_interval(void)
{
    static const struct {
        gboolean besteffort;
        gint64 interval;
        const char *error; /* NULL: valid */
    } cases[] = {
        {FALSE, 0, NULL},
        {TRUE, 0, NULL},
        {TRUE, SAL_MIN_SNAPSHOT_INTERVAL_S, NULL},
        {TRUE, SAL_MAX_SNAPSHOT_INTERVAL_S, NULL},
        {FALSE, 60, "snapshot_interval_s is for best-effort jobs"},
        {TRUE, 4, "snapshot interval (s) 4 is out of range 5..86400"},
        {TRUE, -1, "snapshot interval (s) -1 is out of range 5..86400"},
        {TRUE, SAL_MAX_SNAPSHOT_INTERVAL_S + 1,
         "snapshot interval (s) 86401 is out of range 5..86400"},
    };

    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(SalJob) job = make_job();
        g_autoptr(GError) error = NULL;

        job->besteffort = cases[i].besteffort;
        job->snapshot_interval_s = cases[i].interval;
        if (!cases[i].error) {
            g_assert_true(sal_job_validate(job, &error));
            g_assert_no_error(error);
            continue;
        }
        g_assert_false(sal_job_validate(job, &error));
        g_assert_error(error, SAL_ERROR, SAL_ERROR_INVALID);
        g_assert_cmpstr(error->message, ==, cases[i].error);
    }
}

/* An SSI cluster has at most 63 members; no snapshot of one is taken,
 * so an SSI job is never best-effort. */
static void
test_validate_ssi(void)
{
    static const struct {
        gboolean besteffort;
        guint vms;
        const char *error; /* NULL: valid */
    } cases[] = {
        {FALSE, 1, NULL},
        {FALSE, SAL_MAX_SSI_VMS, NULL},
        {FALSE, SAL_MAX_SSI_VMS + 1,
         "VM count of an SSI job 64 is out of range 1..63"},
        {TRUE, 2, NULL},
    };

    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(SalJob) job = make_job();
        g_autoptr(GError) error = NULL;

        job->ssi = TRUE;
        job->besteffort = cases[i].besteffort;
        job->n_vms = cases[i].vms;
        if (!cases[i].error) {
            g_assert_true(sal_job_validate(job, &error));
            g_assert_no_error(error);
            continue;
        }
        g_assert_false(sal_job_validate(job, &error));
        g_assert_error(error, SAL_ERROR, SAL_ERROR_INVALID);
        g_assert_cmpstr(error->message, ==, cases[i].error);
    }
}

/* The client's own string: 1..128 printable ASCII characters, so it
 * shows as typed in logs and compares byte for byte. */
static void
test_validate_idempotency_key(void)
{
    g_autofree char *longest = g_strnfill(SAL_MAX_IDEMPOTENCY_KEY_LEN, 'k');
    g_autofree char *too_long =
        g_strnfill(SAL_MAX_IDEMPOTENCY_KEY_LEN + 1, 'k');
    const struct {
        const char *key;
        const char *error; /* NULL: valid */
    } cases[] = {
        {NULL, NULL},
        {"k", NULL},
        {"6f1c2a9e-1f0b-4c1e-9a53-3f4f0c1d2b7a", NULL},
        {"a key with spaces ~!@#$%^&*()", NULL},
        {longest, NULL},
        {"", "idempotency key is empty"},
        {too_long, "idempotency key is longer than 128 characters"},
        {"tab\there", "idempotency key has a character that is not printable "
                      "ASCII"},
        {"line\n", "idempotency key has a character that is not printable "
                   "ASCII"},
        {"del\x7f", "idempotency key has a character that is not printable "
                    "ASCII"},
        {"caf\xc3\xa9", "idempotency key has a character that is not "
                        "printable ASCII"},
    };

    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(SalJob) job = make_job();
        g_autoptr(GError) error = NULL;

        job->idempotency_key = g_strdup(cases[i].key);
        if (!cases[i].error) {
            g_assert_true(sal_job_validate(job, &error));
            g_assert_no_error(error);
            continue;
        }
        g_assert_false(sal_job_validate(job, &error));
        g_assert_error(error, SAL_ERROR, SAL_ERROR_INVALID);
        g_assert_cmpstr(error->message, ==, cases[i].error);
    }
}

typedef void (*Change)(SalJob *job);

static void
change_name(SalJob *job)
{
    g_free(job->name);
    job->name = g_strdup("other");
}

static void
change_besteffort(SalJob *job)
{
    job->besteffort = TRUE;
}

static void
change_idempotent(SalJob *job)
{
    job->idempotent = TRUE;
}

static void
change_priority(SalJob *job)
{
    job->priority = 1;
}

static void
change_vms(SalJob *job)
{
    job->n_vms++;
}

static void
change_cpus(SalJob *job)
{
    job->cpus++;
}

static void
change_mem(SalJob *job)
{
    job->mem_mib++;
}

static void
change_image(SalJob *job)
{
    g_free(job->image);
    job->image = g_strdup("alpine");
}

static void
change_walltime(SalJob *job)
{
    job->walltime_s++;
}

static void
change_site(SalJob *job)
{
    job->site = g_strdup("b");
}

static void
change_interval(SalJob *job)
{
    job->snapshot_interval_s = 60;
}

static void
change_command(SalJob *job)
{
    g_free(job->command[2]);
    job->command[2] = g_strdup("x");
}

static void
change_argc(SalJob *job)
{
    g_free(job->command[2]);
    job->command[2] = NULL;
}

/* What a repeated submission is compared on: what the user submitted,
 * not what salined made of it. */
static void
test_same_submission(void)
{
    static const Change changes[] = {
        change_name,     change_besteffort, change_idempotent, change_priority,
        change_vms,      change_cpus,       change_mem,        change_image,
        change_walltime, change_site,       change_interval,   change_command,
        change_argc,
    };
    g_autoptr(SalJob) job = make_job();
    g_autoptr(SalJob) stored = make_job();

    job->idempotency_key = g_strdup("k1");
    g_assert_true(sal_job_same_submission(job, stored));
    stored->id = 12;
    stored->owner_uid = 4201;
    stored->submit_time = 1700000000;
    stored->idempotency_key = g_strdup("k2");
    g_assert_true(
        sal_job_transition_at(stored, SAL_JOB_CANCELLED, 1700000001, NULL));
    g_assert_true(sal_job_same_submission(job, stored));
    g_assert_true(sal_job_same_submission(stored, job));

    for (guint i = 0; i < G_N_ELEMENTS(changes); i++) {
        g_autoptr(SalJob) changed = sal_job_copy(job);

        changes[i](changed);
        g_assert_false(sal_job_same_submission(changed, job));
        g_assert_false(sal_job_same_submission(job, changed));
    }
}

static void
test_names(void)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(SalNode) node =
        sal_node_new("a-1", "site-a", "qemu+tcp://a-1/system", 8, 16384);

    g_assert_true(sal_name_validate("site", "nancy", NULL));
    g_assert_true(sal_name_validate("node", "graphene-12.nancy", NULL));
    g_assert_false(sal_name_validate("site", "a/b", &error));
    g_assert_cmpstr(error->message, ==,
                    "invalid site name 'a/b': use letters, digits, '.', '_' "
                    "and '-'");
    g_clear_error(&error);
    g_assert_false(sal_name_validate("node", "", &error));
    g_assert_cmpstr(error->message, ==, "node is empty");

    g_assert_true(sal_node_validate(node, NULL));
    node->cpus = 0;
    g_assert_false(sal_node_validate(node, NULL));
    node->cpus = 8;
    g_clear_pointer(&node->uri, g_free);
    g_assert_false(sal_node_validate(node, NULL));
}

static void
test_copy(void)
{
    g_autoptr(SalJob) job = make_job();
    g_autoptr(SalJob) copy = NULL;
    g_autoptr(SalVm) vm = sal_vm_new(7, 3);
    g_autoptr(SalVm) vm_copy = NULL;
    g_autofree char *domain = sal_vm_domain_name(7, 3);

    job->site = g_strdup("a");
    job->idempotency_key = g_strdup("k");
    copy = sal_job_copy(job);
    g_assert_cmpstr(copy->name, ==, job->name);
    g_assert_true(copy->name != job->name);
    g_assert_cmpstrv(copy->command, job->command);
    g_assert_cmpstr(copy->site, ==, "a");
    g_assert_cmpstr(copy->idempotency_key, ==, "k");
    g_assert_true(copy->idempotency_key != job->idempotency_key);
    g_assert_cmpint(copy->walltime_s, ==, 3600);

    g_assert_cmpstr(domain, ==, "saline-7-3");
    vm->node = g_strdup("a1");
    vm->ip = g_strdup("10.77.1.2");
    vm_copy = sal_vm_copy(vm);
    g_assert_cmpstr(vm_copy->node, ==, "a1");
    g_assert_cmpstr(vm_copy->ip, ==, "10.77.1.2");
    g_assert_true(vm_copy->ip != vm->ip);
    g_assert_cmpint(vm_copy->state, ==, SAL_VM_PLACED);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/job/state-names", test_state_names);
    g_test_add_func("/job/transitions", test_transitions);
    g_test_add_func("/job/transition-message", test_transition_message);
    g_test_add_func("/job/requeue", test_requeue);
    g_test_add_func("/job/times", test_times);
    g_test_add_func("/job/walltime", test_walltime);
    g_test_add_func("/job/walltime-format", test_walltime_format);
    g_test_add_func("/job/duration", test_duration);
    g_test_add_func("/job/mem", test_mem);
    g_test_add_func("/job/mem-format", test_mem_format);
    g_test_add_func("/job/validate", test_validate);
    g_test_add_func("/job/validate-snapshot-interval",
                    test_validate_snapshot_interval);
    g_test_add_func("/job/validate-ssi", test_validate_ssi);
    g_test_add_func("/job/validate-idempotency-key",
                    test_validate_idempotency_key);
    g_test_add_func("/job/same-submission", test_same_submission);
    g_test_add_func("/job/names", test_names);
    g_test_add_func("/job/copy", test_copy);
    return g_test_run();
}
