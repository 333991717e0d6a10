/*
 * Jobs as JSON, the form of the REST API (saline/README.md, "REST API"):
 * the job salined answers, the submission users send. One table of
 * fields drives writing and both parsers.
 */
#pragma once

#include <json-glib/json-glib.h>

#include "sal-job.h"

/* Largest request or answer body either side reads. */
#define SAL_JSON_MAX_BODY (1024 * 1024)

/* @text as a JSON node; SAL_ERROR_INVALID "malformed JSON: ..." if it is
 * not JSON. */
JsonNode *sal_json_parse(const char *text, gsize len, GError **error);
/* Compact JSON text of @node, with a final newline. */
char *sal_json_to_string(JsonNode *node);

/* Name of user @uid, or its number when it has none. */
char *sal_uid_name(guint32 uid);

/* The job with its VMs (SalVm *, by index; NULL: none) as the API
 * answers it. */
JsonNode *sal_job_to_json(const SalJob *job, GPtrArray *vms);
/* Only the fields a user submits, those @job has (no name, no site, no
 * idempotency key: left out). */
JsonNode *sal_job_to_submission(const SalJob *job);

/*
 * A submission: a JSON object of the submission fields only, each of
 * its type, integers in range, required ones present, command a
 * non-empty array of strings; then sal_job_validate(). Otherwise
 * SAL_ERROR_INVALID naming the field. Without a name, the job is named
 * after the command's program.
 */
SalJob *sal_job_from_submission(JsonNode *node, GError **error);
/* That name: the file name of @command[0] if it is a valid job name,
 * else "job". */
char *sal_job_default_name(char *const *command);

/* A job as sal_job_to_json() writes it, and its VMs into @vms (if not
 * NULL; SalVm *). Fields this program does not know are skipped (a newer
 * salined); a known field of the wrong type is SAL_ERROR_INVALID. */
SalJob *sal_job_from_json(JsonNode *node, GPtrArray **vms, GError **error);
