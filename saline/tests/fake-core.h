/*
 * An in-memory SaldCore for the API's tests: jobs, two nodes, two
 * images ("debian-12", "alpine"), logs made up from the job, a history
 * of what happened to each job; suspending a job takes its snapshot at
 * once, and jobs run only when told (fake_core_start()). Not thread
 * safe: call it from the thread that runs the API, or while no request
 * is in flight.
 */
#pragma once

#include "sald-core.h"

SaldCore *fake_core_new(void);
void fake_core_free(SaldCore *core);

/* Act as if calls came from @uid instead of the uid the API passes
 * (-1: the uid passed), so one process can be two users. */
void fake_core_set_uid(SaldCore *core, gint64 uid);
/* The uid the API passed in its last call (G_MAXUINT32 before any). */
guint32 fake_core_last_uid(SaldCore *core);

/* Job @id (pending) is running, its VMs too. */
void fake_core_start(SaldCore *core, gint64 id);
