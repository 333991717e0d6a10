/* What salined reads of `oarstat -f -J` in OAR mode (sald-oar.c): the
 * samples are OAR 2.5.9's own output on this project's test grid,
 * trimmed of fields salined does not read. */
#include "sald-core-internal.h"

/* A best-effort job 2 s into its checkpoint grace, and a waiting one. */
static const char running[] =
    "{\n"
    "   \"8\" : {\n"
    "      \"owner\" : \"saline\",\n"
    "      \"state\" : \"Running\",\n"
    "      \"types\" : [\n"
    "         \"besteffort\",\n"
    "         \"idempotent\"\n"
    "      ],\n"
    "      \"assigned_network_address\" : [\n"
    "         \"a1\",\n"
    "         \"a2\",\n"
    "         \"a1\"\n"
    "      ],\n"
    "      \"Job_Id\" : 8,\n"
    "      \"queue\" : \"besteffort\",\n"
    "      \"resubmit_job_id\" : 0,\n"
    "      \"events\" : [\n"
    "         {\n"
    "            \"type\" : \"SCHEDULER_PRIORITY_UPDATED_START\",\n"
    "            \"to_check\" : \"NO\",\n"
    "            \"date\" : 1796555182,\n"
    "            \"job_id\" : 8,\n"
    "            \"event_id\" : 20\n"
    "         },\n"
    "         {\n"
    "            \"event_id\" : 21,\n"
    "            \"job_id\" : 8,\n"
    "            \"description\" : \"User oar (metasched) requested a "
    "checkpoint on the job 8 on a1\",\n"
    "            \"date\" : 1796555190,\n"
    "            \"type\" : \"CHECKPOINT\",\n"
    "            \"to_check\" : \"NO\"\n"
    "         }\n"
    "      ],\n"
    "      \"name\" : \"saline-12\",\n"
    "      \"stopTime\" : 0\n"
    "   },\n"
    "   \"9\" : {\n"
    "      \"owner\" : \"saline\",\n"
    "      \"state\" : \"Waiting\",\n"
    "      \"types\" : [],\n"
    "      \"assigned_network_address\" : [],\n"
    "      \"events\" : [],\n"
    "      \"name\" : null\n"
    "   }\n"
    "}\n";

static void
test_running(void)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GHashTable) jobs = sald_oar_job_table_new();
    SaldOarJob *job;

    g_assert_true(sald_oar_parse_stat(running, jobs, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(g_hash_table_size(jobs), ==, 2);
    job = g_hash_table_lookup(jobs, &(gint64){8});
    g_assert_nonnull(job);
    g_assert_cmpint(job->id, ==, 8);
    g_assert_cmpstr(job->name, ==, "saline-12");
    g_assert_cmpstr(job->state, ==, "Running");
    g_assert_cmpstr(job->owner, ==, "saline");
    g_assert_true(job->besteffort);
    g_assert_true(job->checkpoint);
    /* One per resource in OAR's list: salined wants hosts, once each. */
    g_assert_cmpuint(job->hosts->len, ==, 2);
    g_assert_cmpstr(job->hosts->pdata[0], ==, "a1");
    g_assert_cmpstr(job->hosts->pdata[1], ==, "a2");
    job = g_hash_table_lookup(jobs, &(gint64){9});
    g_assert_nonnull(job);
    g_assert_null(job->name);
    g_assert_cmpstr(job->state, ==, "Waiting");
    g_assert_false(job->besteffort);
    g_assert_false(job->checkpoint);
    g_assert_cmpuint(job->hosts->len, ==, 0);
}

/* oarstat prints nothing at all when the user has no job, or for an
 * unknown id. */
static void
test_empty(void)
{
    static const char *const nothing[] = {"", "\n", "  \n", "null\n"};

    for (guint i = 0; i < G_N_ELEMENTS(nothing); i++) {
        g_autoptr(GError) error = NULL;
        g_autoptr(GHashTable) jobs = sald_oar_job_table_new();

        g_assert_true(sald_oar_parse_stat(nothing[i], jobs, &error));
        g_assert_no_error(error);
        g_assert_cmpuint(g_hash_table_size(jobs), ==, 0);
    }
}

static void
test_bad(void)
{
    static const char *const bad[] = {
        "DB connection error, exiting.\n",
        "[1, 2]",
        "{\"x\": {}}",
        "{\"0\": {}}",
        "{\"-3\": {}}",
        "{\"8\": 8}",
        "{\"8\": {\"state\": \"Running\"",
    };

    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GError) error = NULL;
        g_autoptr(GHashTable) jobs = sald_oar_job_table_new();

        g_test_message("case %u: %s", i, bad[i]);
        g_assert_false(sald_oar_parse_stat(bad[i], jobs, &error));
        g_assert_error(error, SAL_ERROR, SAL_ERROR_NODE);
        g_assert_null(strchr(error->message, '\n'));
    }
}

/* Fields of the wrong type are read as absent, never trusted. */
static void
test_odd_fields(void)
{
    static const char odd[] =
        "{\"5\": {\"name\": 5, \"state\": [\"Running\"], \"types\": "
        "\"besteffort\","
        " \"assigned_network_address\": [\"a1\", 7, null, {\"a\": 1}],"
        " \"events\": [\"CHECKPOINT\", {\"type\": 1}]}}";
    g_autoptr(GError) error = NULL;
    g_autoptr(GHashTable) jobs = sald_oar_job_table_new();
    SaldOarJob *job;

    g_assert_true(sald_oar_parse_stat(odd, jobs, &error));
    job = g_hash_table_lookup(jobs, &(gint64){5});
    g_assert_nonnull(job);
    g_assert_null(job->name);
    g_assert_cmpstr(job->state, ==, "NA");
    g_assert_false(job->besteffort);
    g_assert_false(job->checkpoint);
    g_assert_cmpuint(job->hosts->len, ==, 1);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/salined-oar/running", test_running);
    g_test_add_func("/salined-oar/empty", test_empty);
    g_test_add_func("/salined-oar/bad", test_bad);
    g_test_add_func("/salined-oar/odd-fields", test_odd_fields);
    return g_test_run();
}
