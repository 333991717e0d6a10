#include "sal-store.h"

#include <sqlite3.h>
#include <string.h>

G_DEFINE_AUTOPTR_CLEANUP_FUNC(sqlite3_stmt, sqlite3_finalize)

/* Another process (sqlite3 run by an operator) may hold the lock a
 * little while; longer than this is an error worth reporting. */
#define BUSY_TIMEOUT_MS 5000

/* sal_job_state_is_terminal(), as the jobs table spells the states. */
#define TERMINAL_STATES "('done', 'failed', 'cancelled')"

/*
 * The schema, one step per version: step k turns version k - 1 into k.
 * A released step never changes (databases in the field went through
 * it); a change is a new step at the end. test-store.c holds version 1
 * as written by hand, to check the upgrade from it.
 */
static const char *const migrations[] = {
    /* 1: the first layout; a VM's address lived in its row. */
    "CREATE TABLE nodes ("
    "  name TEXT PRIMARY KEY NOT NULL,"
    "  site TEXT NOT NULL,"
    "  uri TEXT NOT NULL,"
    "  cpus INTEGER NOT NULL CHECK (cpus > 0),"
    "  mem_mib INTEGER NOT NULL CHECK (mem_mib > 0));"
    /* AUTOINCREMENT: a job id is never reused, even after the newest
     * job is purged, so ids in logs and domain names stay unambiguous. */
    "CREATE TABLE jobs ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  owner_uid INTEGER NOT NULL,"
    "  name TEXT NOT NULL,"
    "  state TEXT NOT NULL,"
    "  besteffort INTEGER NOT NULL CHECK (besteffort IN (0, 1)),"
    "  idempotent INTEGER NOT NULL CHECK (idempotent IN (0, 1)),"
    "  priority INTEGER NOT NULL,"
    "  n_vms INTEGER NOT NULL CHECK (n_vms > 0),"
    "  cpus INTEGER NOT NULL CHECK (cpus > 0),"
    "  mem_mib INTEGER NOT NULL CHECK (mem_mib > 0),"
    "  image TEXT NOT NULL,"
    "  walltime_s INTEGER NOT NULL CHECK (walltime_s > 0),"
    "  site TEXT,"
    "  command BLOB NOT NULL," /* each argument NUL-terminated */
    "  submit_time INTEGER NOT NULL,"
    "  start_time INTEGER NOT NULL DEFAULT 0,"
    "  end_time INTEGER NOT NULL DEFAULT 0,"
    "  exit_status INTEGER NOT NULL DEFAULT -1,"
    "  failure TEXT);"
    "CREATE INDEX jobs_by_state ON jobs (state);"
    "CREATE TABLE vms ("
    "  job_id INTEGER NOT NULL REFERENCES jobs (id),"
    "  idx INTEGER NOT NULL CHECK (idx >= 0),"
    "  node TEXT,"
    "  site TEXT,"
    "  domain TEXT,"
    "  mac TEXT,"
    "  ip TEXT,"
    "  state TEXT NOT NULL,"
    "  PRIMARY KEY (job_id, idx));",

    /* 2: addresses move to a table of their own whose UNIQUE constraints
     * make a double allocation impossible; jobs count the running time
     * they used before a suspension. */
    "CREATE TABLE addresses ("
    "  ip TEXT PRIMARY KEY NOT NULL,"
    "  mac TEXT NOT NULL UNIQUE,"
    "  site TEXT NOT NULL,"
    "  job_id INTEGER NOT NULL,"
    "  vm_index INTEGER NOT NULL,"
    "  UNIQUE (job_id, vm_index),"
    "  FOREIGN KEY (job_id, vm_index) REFERENCES vms (job_id, idx));"
    "INSERT INTO addresses (ip, mac, site, job_id, vm_index)"
    "  SELECT ip, mac, site, job_id, idx FROM vms WHERE ip IS NOT NULL;"
    "ALTER TABLE vms DROP COLUMN mac;"
    "ALTER TABLE vms DROP COLUMN ip;"
    "ALTER TABLE jobs ADD COLUMN elapsed_s INTEGER NOT NULL DEFAULT 0;",

    /* 3: each VM's command has an exit status of its own. */
    "ALTER TABLE vms ADD COLUMN exit_status INTEGER NOT NULL DEFAULT -1;",

    /* 4: best-effort jobs are snapshotted and redeployed: their
     * snapshots, the one to redeploy from, a suspension asked for by a
     * user, and a history of where the job ran. */
    "ALTER TABLE jobs ADD COLUMN snapshot_interval_s INTEGER NOT NULL "
    "  DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN snapshot_seq INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN held INTEGER NOT NULL DEFAULT 0"
    "  CHECK (held IN (0, 1));"
    "CREATE TABLE snapshots ("
    "  job_id INTEGER NOT NULL REFERENCES jobs (id),"
    "  seq INTEGER NOT NULL CHECK (seq > 0),"
    "  time INTEGER NOT NULL,"
    "  pause_ms INTEGER NOT NULL,"
    "  bytes_sent INTEGER NOT NULL,"
    "  bytes_new INTEGER NOT NULL,"
    "  PRIMARY KEY (job_id, seq));"
    "CREATE TABLE events ("
    "  job_id INTEGER NOT NULL REFERENCES jobs (id),"
    "  time INTEGER NOT NULL,"
    "  text TEXT NOT NULL);"
    "CREATE INDEX events_by_job ON events (job_id);",

    /* 5: a submission may carry its client's idempotency key, one job per
     * owner and key: a submission repeated after a lost answer is found,
     * not stored again, even when two arrive at once. */
    "ALTER TABLE jobs ADD COLUMN idempotency_key TEXT;"
    "CREATE UNIQUE INDEX jobs_by_key ON jobs (owner_uid, idempotency_key)"
    "  WHERE idempotency_key IS NOT NULL;",

    /* 6: OAR owns the nodes: the OAR job of each Saline job. */
    "ALTER TABLE jobs ADD COLUMN oar_job_id INTEGER NOT NULL DEFAULT 0;",

    /* 7: SSI jobs: the key of the job's SSI cluster, NULL for others. */
    "ALTER TABLE jobs ADD COLUMN ssi_key TEXT;",
};

G_STATIC_ASSERT(G_N_ELEMENTS(migrations) == SAL_STORE_SCHEMA_VERSION);

typedef struct {
    SalStoreUndoFunc undo;
    gpointer data;
    GDestroyNotify destroy;
} Undo;

struct SalStore {
    sqlite3 *db;
    char *path;
    guint depth;      /* transaction levels open */
    gboolean aborted; /* SQLite rolled the whole transaction back */
    GArray *undo;     /* Undo, oldest first */
    GArray *marks;    /* guint per level: undo->len when it began */
};

/* Sets @error from the last SQLite failure. Constraint violations are
 * SAL_ERROR_CONFLICT: the caller tried to break a rule of the schema. */
static gboolean G_GNUC_PRINTF(3, 4)
    db_error(SalStore *store, GError **error, const char *format, ...)
{
    int code = sqlite3_extended_errcode(store->db) & 0xff;
    g_autofree char *what = NULL;
    va_list ap;

    va_start(ap, format);
    what = g_strdup_vprintf(format, ap);
    va_end(ap);
    g_set_error(error, SAL_ERROR,
                code == SQLITE_CONSTRAINT ? SAL_ERROR_CONFLICT
                                          : SAL_ERROR_STORE,
                "cannot %s: %s", what, sqlite3_errmsg(store->db));
    return FALSE;
}

static gboolean
exec(SalStore *store, const char *sql, const char *what, GError **error)
{
    if (sqlite3_exec(store->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        return db_error(store, error, "%s", what);
    }
    return TRUE;
}

static sqlite3_stmt *
prepare(SalStore *store, const char *sql, const char *what, GError **error)
{
    sqlite3_stmt *stmt = NULL;

    if (sqlite3_prepare_v2(store->db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        db_error(store, error, "%s", what);
        return NULL;
    }
    return stmt;
}

static void
undo_run(SalStore *store, guint from, gboolean undo)
{
    while (store->undo->len > from) {
        Undo u = g_array_index(store->undo, Undo, store->undo->len - 1);

        g_array_set_size(store->undo, store->undo->len - 1);
        if (undo && u.undo) {
            u.undo(u.data);
        }
        if (u.destroy) {
            u.destroy(u.data);
        }
    }
}

static void
level_close(SalStore *store)
{
    store->depth--;
    g_array_set_size(store->marks, store->depth);
    if (store->depth == 0) {
        store->aborted = FALSE;
    }
}

gboolean
sal_store_begin(SalStore *store, GError **error)
{
    g_autofree char *sql = NULL;
    guint mark = store->undo->len;

    if (store->aborted) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_STORE,
                    "cannot begin: SQLite rolled the transaction back");
        return FALSE;
    }
    sql = store->depth == 0 ? g_strdup("BEGIN IMMEDIATE")
                            : g_strdup_printf("SAVEPOINT sal_%u", store->depth);
    if (!exec(store, sql, "begin a transaction", error)) {
        return FALSE;
    }
    g_array_append_val(store->marks, mark);
    store->depth++;
    return TRUE;
}

void
sal_store_rollback(SalStore *store)
{
    guint level;
    g_autofree char *sql = NULL;

    g_return_if_fail(store->depth > 0);

    level = store->depth - 1;
    /* After disk full, I/O errors and the like SQLite may have ended the
     * transaction itself: then nothing of any level remains. */
    if (sqlite3_get_autocommit(store->db)) {
        store->aborted = TRUE;
    }
    if (!store->aborted) {
        sql = level == 0 ? g_strdup("ROLLBACK")
                         : g_strdup_printf("ROLLBACK TO sal_%u; RELEASE sal_%u",
                                           level, level);
        if (sqlite3_exec(store->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
            g_debug("store: '%s' failed: %s", sql, sqlite3_errmsg(store->db));
            store->aborted = TRUE;
        }
    }
    undo_run(store,
             store->aborted ? 0 : g_array_index(store->marks, guint, level),
             TRUE);
    level_close(store);
}

gboolean
sal_store_commit(SalStore *store, GError **error)
{
    g_autofree char *sql = NULL;

    g_return_val_if_fail(store->depth > 0, FALSE);

    if (store->aborted || sqlite3_get_autocommit(store->db)) {
        sal_store_rollback(store);
        g_set_error(error, SAL_ERROR, SAL_ERROR_STORE,
                    "cannot commit: SQLite rolled the transaction back");
        return FALSE;
    }
    sql = store->depth == 1
              ? g_strdup("COMMIT")
              : g_strdup_printf("RELEASE sal_%u", store->depth - 1);
    if (!exec(store, sql, "commit", error)) {
        sal_store_rollback(store);
        return FALSE;
    }
    level_close(store);
    if (store->depth == 0) {
        undo_run(store, 0, FALSE);
    }
    return TRUE;
}

gboolean
sal_store_in_transaction(SalStore *store)
{
    return store->depth > 0;
}

void
sal_store_on_rollback(SalStore *store, SalStoreUndoFunc undo, gpointer data,
                      GDestroyNotify destroy)
{
    Undo u = {undo, data, destroy};

    g_return_if_fail(store->depth > 0);
    g_array_append_val(store->undo, u);
}

gboolean
sal_store_end(SalStore *store, gboolean ok, GError **error)
{
    if (ok) {
        return sal_store_commit(store, error);
    }
    sal_store_rollback(store);
    return FALSE;
}

static gboolean
user_version(SalStore *store, guint *version, GError **error)
{
    g_autoptr(sqlite3_stmt) stmt =
        prepare(store, "PRAGMA user_version", "read the schema version", error);

    if (!stmt) {
        return FALSE;
    }
    if (sqlite3_step(stmt) != SQLITE_ROW) {
        return db_error(store, error, "read the schema version");
    }
    *version = (guint)sqlite3_column_int(stmt, 0);
    return TRUE;
}

static gboolean
migrate_locked(SalStore *store, GError **error)
{
    g_autoptr(sqlite3_stmt) check = NULL;
    g_autofree char *set = NULL;
    guint version;

    if (!user_version(store, &version, error)) {
        return FALSE;
    }
    if (version > SAL_STORE_SCHEMA_VERSION) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_VERSION,
                    "database '%s' has schema version %u, newer than this "
                    "program's %u",
                    store->path, version, SAL_STORE_SCHEMA_VERSION);
        return FALSE;
    }
    if (version == SAL_STORE_SCHEMA_VERSION) {
        return TRUE;
    }
    for (guint v = version; v < SAL_STORE_SCHEMA_VERSION; v++) {
        if (sqlite3_exec(store->db, migrations[v], NULL, NULL, NULL) !=
            SQLITE_OK) {
            return db_error(store, error,
                            "migrate database '%s' to schema version %u",
                            store->path, v + 1);
        }
    }
    set = g_strdup_printf("PRAGMA user_version = %u", SAL_STORE_SCHEMA_VERSION);
    if (!exec(store, set, "set the schema version", error)) {
        return FALSE;
    }
    /* Rows moved by a step must still point at rows that exist. */
    check =
        prepare(store, "PRAGMA foreign_key_check", "check foreign keys", error);
    if (!check) {
        return FALSE;
    }
    if (sqlite3_step(check) != SQLITE_DONE) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_STORE,
                    "database '%s' breaks its foreign keys after migration",
                    store->path);
        return FALSE;
    }
    return TRUE;
}

static gboolean
migrate(SalStore *store, GError **error)
{
    if (!sal_store_begin(store, error)) {
        return FALSE;
    }
    return sal_store_end(store, migrate_locked(store, error), error);
}

SalStore *
sal_store_open(const char *path, GError **error)
{
    g_autoptr(SalStore) store = g_new0(SalStore, 1);
    g_autoptr(sqlite3_stmt) mode = NULL;
    int rc;

    store->path = g_strdup(path);
    store->undo = g_array_new(FALSE, FALSE, sizeof(Undo));
    store->marks = g_array_new(FALSE, FALSE, sizeof(guint));
    /* SQLite's unix VFS opens its files with O_CLOEXEC. */
    rc = sqlite3_open_v2(path, &store->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_STORE,
                    "cannot open database '%s': %s", path,
                    store->db ? sqlite3_errmsg(store->db) : sqlite3_errstr(rc));
        return NULL;
    }
    sqlite3_extended_result_codes(store->db, 1);
    sqlite3_busy_timeout(store->db, BUSY_TIMEOUT_MS);
    if (!exec(store, "PRAGMA foreign_keys = ON", "enable foreign keys",
              error)) {
        return NULL;
    }
    mode = prepare(store, "PRAGMA journal_mode = WAL", "enable WAL", error);
    if (!mode) {
        return NULL;
    }
    if (sqlite3_step(mode) != SQLITE_ROW ||
        g_strcmp0((const char *)sqlite3_column_text(mode, 0), "wal") != 0) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_STORE,
                    "cannot put database '%s' in WAL mode", path);
        return NULL;
    }
    g_clear_pointer(&mode, sqlite3_finalize);
    /*
     * FULL, not NORMAL: in WAL mode NORMAL does not sync the WAL at
     * commit, so a power loss can undo the last transactions after the
     * daemon acted on them, e.g. forget an address a running VM holds and
     * hand it out again, or a job whose submission was acknowledged. A
     * sync per commit costs little at the rate jobs change state.
     */
    if (!exec(store, "PRAGMA synchronous = FULL", "set synchronous mode",
              error) ||
        !migrate(store, error)) {
        return NULL;
    }
    return g_steal_pointer(&store);
}

void
sal_store_free(SalStore *store)
{
    if (!store) {
        return;
    }
    while (store->depth > 0) {
        sal_store_rollback(store);
    }
    sqlite3_close_v2(store->db);
    g_array_unref(store->undo);
    g_array_unref(store->marks);
    g_free(store->path);
    g_free(store);
}

guint
sal_store_schema_version(SalStore *store)
{
    guint version = 0;

    if (!user_version(store, &version, NULL)) {
        return 0;
    }
    return version;
}

/* Loads every row @sql returns through @row (which takes ownership of
 * nothing and returns a new item, or NULL with @error set). @param, if
 * not NULL, binds ?1. */
static GPtrArray *
load_rows(SalStore *store, const char *sql, const gint64 *param,
          gpointer (*row)(sqlite3_stmt *stmt, GError **error),
          GDestroyNotify free_func, const char *what, GError **error)
{
    g_autoptr(sqlite3_stmt) stmt = prepare(store, sql, what, error);
    g_autoptr(GPtrArray) items = g_ptr_array_new_with_free_func(free_func);
    int rc;

    if (!stmt) {
        return NULL;
    }
    if (param) {
        sqlite3_bind_int64(stmt, 1, *param);
    }
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        gpointer item = row(stmt, error);

        if (!item) {
            return NULL;
        }
        g_ptr_array_add(items, item);
    }
    if (rc != SQLITE_DONE) {
        db_error(store, error, "%s", what);
        return NULL;
    }
    return g_steal_pointer(&items);
}

static char *
column_text(sqlite3_stmt *stmt, int col)
{
    return g_strdup((const char *)sqlite3_column_text(stmt, col));
}

/* ---- jobs ---- */

#define JOB_COLUMNS                                                            \
    "id, owner_uid, name, state, besteffort, idempotent, priority, n_vms, "    \
    "cpus, mem_mib, image, walltime_s, site, command, submit_time, "           \
    "start_time, end_time, elapsed_s, exit_status, failure, "                  \
    "snapshot_interval_s, snapshot_seq, held, idempotency_key, oar_job_id, "   \
    "ssi_key"

static GBytes *
command_pack(char **argv)
{
    GByteArray *blob = g_byte_array_new();

    for (guint i = 0; argv && argv[i]; i++) {
        g_byte_array_append(blob, (const guint8 *)argv[i], strlen(argv[i]) + 1);
    }
    return g_byte_array_free_to_bytes(blob);
}

static char **
command_unpack(const char *data, gsize len)
{
    GPtrArray *argv = g_ptr_array_new();

    for (gsize at = 0; at < len;) {
        gsize n = strnlen(data + at, len - at);

        g_ptr_array_add(argv, g_strndup(data + at, n));
        at += n + 1;
    }
    g_ptr_array_add(argv, NULL);
    return (char **)g_ptr_array_free(argv, FALSE);
}

static gpointer
job_from_row(sqlite3_stmt *stmt, GError **error)
{
    g_autoptr(SalJob) job = sal_job_new();
    const char *state = (const char *)sqlite3_column_text(stmt, 3);
    const char *command = sqlite3_column_blob(stmt, 13);
    int command_len = sqlite3_column_bytes(stmt, 13);

    job->id = sqlite3_column_int64(stmt, 0);
    if (!sal_job_state_from_string(state ? state : "", &job->state, error)) {
        g_prefix_error(error, "job %" G_GINT64_FORMAT ": ", job->id);
        return NULL;
    }
    if (command_len <= 0 || command[command_len - 1] != '\0') {
        g_set_error(error, SAL_ERROR, SAL_ERROR_STORE,
                    "job %" G_GINT64_FORMAT " has a malformed command",
                    job->id);
        return NULL;
    }
    job->owner_uid = (guint32)sqlite3_column_int64(stmt, 1);
    job->name = column_text(stmt, 2);
    job->besteffort = sqlite3_column_int(stmt, 4) != 0;
    job->idempotent = sqlite3_column_int(stmt, 5) != 0;
    job->priority = sqlite3_column_int(stmt, 6);
    job->n_vms = (guint)sqlite3_column_int64(stmt, 7);
    job->cpus = (guint)sqlite3_column_int64(stmt, 8);
    job->mem_mib = (guint64)sqlite3_column_int64(stmt, 9);
    job->image = column_text(stmt, 10);
    job->walltime_s = sqlite3_column_int64(stmt, 11);
    job->site = column_text(stmt, 12);
    job->command = command_unpack(command, (gsize)command_len);
    job->submit_time = sqlite3_column_int64(stmt, 14);
    job->start_time = sqlite3_column_int64(stmt, 15);
    job->end_time = sqlite3_column_int64(stmt, 16);
    job->elapsed_s = sqlite3_column_int64(stmt, 17);
    job->exit_status = sqlite3_column_int(stmt, 18);
    job->failure = column_text(stmt, 19);
    job->snapshot_interval_s = sqlite3_column_int64(stmt, 20);
    job->snapshot_seq = (guint)sqlite3_column_int64(stmt, 21);
    job->held = sqlite3_column_int(stmt, 22) != 0;
    job->idempotency_key = column_text(stmt, 23);
    job->oar_job_id = sqlite3_column_int64(stmt, 24);
    job->ssi_key = column_text(stmt, 25);
    job->ssi = job->ssi_key != NULL;
    return g_steal_pointer(&job);
}

static gboolean
job_write(SalStore *store, SalJob *job, GError **error)
{
    static const char insert_sql[] =
        "INSERT INTO jobs (" JOB_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
        "?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, "
        "?21, ?22, ?23, ?24, ?25, ?26)";
    static const char update_sql[] =
        "UPDATE jobs SET owner_uid = ?2, name = ?3, state = ?4, "
        "besteffort = ?5, idempotent = ?6, priority = ?7, n_vms = ?8, "
        "cpus = ?9, mem_mib = ?10, image = ?11, walltime_s = ?12, "
        "site = ?13, command = ?14, submit_time = ?15, start_time = ?16, "
        "end_time = ?17, elapsed_s = ?18, exit_status = ?19, failure = ?20, "
        "snapshot_interval_s = ?21, snapshot_seq = ?22, held = ?23, "
        "idempotency_key = ?24, oar_job_id = ?25, ssi_key = ?26 WHERE id = ?1";
    gboolean is_new = job->id == 0;
    g_autoptr(sqlite3_stmt) stmt =
        prepare(store, is_new ? insert_sql : update_sql, "save a job", error);
    g_autoptr(GBytes) command = command_pack(job->command);
    gsize command_len;
    gconstpointer command_data = g_bytes_get_data(command, &command_len);

    if (!stmt) {
        return FALSE;
    }
    if (is_new) {
        sqlite3_bind_null(stmt, 1);
    } else {
        sqlite3_bind_int64(stmt, 1, job->id);
    }
    sqlite3_bind_int64(stmt, 2, job->owner_uid);
    sqlite3_bind_text(stmt, 3, job->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 4, sal_job_state_to_string(job->state), -1,
                      SQLITE_STATIC);
    sqlite3_bind_int(stmt, 5, job->besteffort ? 1 : 0);
    sqlite3_bind_int(stmt, 6, job->idempotent ? 1 : 0);
    sqlite3_bind_int(stmt, 7, job->priority);
    sqlite3_bind_int64(stmt, 8, job->n_vms);
    sqlite3_bind_int64(stmt, 9, job->cpus);
    sqlite3_bind_int64(stmt, 10, (gint64)job->mem_mib);
    sqlite3_bind_text(stmt, 11, job->image, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 12, job->walltime_s);
    sqlite3_bind_text(stmt, 13, job->site, -1, SQLITE_STATIC);
    sqlite3_bind_blob(stmt, 14, command_data, (int)command_len, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 15, job->submit_time);
    sqlite3_bind_int64(stmt, 16, job->start_time);
    sqlite3_bind_int64(stmt, 17, job->end_time);
    sqlite3_bind_int64(stmt, 18, job->elapsed_s);
    sqlite3_bind_int(stmt, 19, job->exit_status);
    sqlite3_bind_text(stmt, 20, job->failure, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 21, job->snapshot_interval_s);
    sqlite3_bind_int64(stmt, 22, job->snapshot_seq);
    sqlite3_bind_int(stmt, 23, job->held ? 1 : 0);
    sqlite3_bind_text(stmt, 24, job->idempotency_key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 25, job->oar_job_id);
    sqlite3_bind_text(stmt, 26, job->ssi_key, -1, SQLITE_STATIC);
    if (sqlite3_step(stmt) != SQLITE_DONE) {
        /* The only UNIQUE constraint of jobs besides the id. */
        if (is_new && job->idempotency_key &&
            sqlite3_extended_errcode(store->db) == SQLITE_CONSTRAINT_UNIQUE) {
            g_set_error(error, SAL_ERROR, SAL_ERROR_CONFLICT,
                        "uid %" G_GUINT32_FORMAT " already has a job with "
                        "idempotency key '%s'",
                        job->owner_uid, job->idempotency_key);
            return FALSE;
        }
        return db_error(store, error, "save job %" G_GINT64_FORMAT, job->id);
    }
    if (is_new) {
        job->id = sqlite3_last_insert_rowid(store->db);
    } else if (sqlite3_changes(store->db) == 0) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_NOT_FOUND,
                    "no job %" G_GINT64_FORMAT, job->id);
        return FALSE;
    }
    return TRUE;
}

static gboolean
vm_write(SalStore *store, const SalJob *job, SalVm *vm, GError **error)
{
    g_autoptr(sqlite3_stmt) stmt = NULL;

    if (vm->index >= job->n_vms) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_INVALID,
                    "VM index %u is out of range for job %" G_GINT64_FORMAT
                    " of %u VMs",
                    vm->index, job->id, job->n_vms);
        return FALSE;
    }
    stmt = prepare(store,
                   "INSERT INTO vms (job_id, idx, node, site, domain, state, "
                   "exit_status) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
                   "ON CONFLICT (job_id, idx) DO UPDATE SET "
                   "node = excluded.node, site = excluded.site, "
                   "domain = excluded.domain, state = excluded.state, "
                   "exit_status = excluded.exit_status",
                   "save a VM", error);
    if (!stmt) {
        return FALSE;
    }
    vm->job_id = job->id;
    sqlite3_bind_int64(stmt, 1, vm->job_id);
    sqlite3_bind_int64(stmt, 2, vm->index);
    sqlite3_bind_text(stmt, 3, vm->node, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 4, vm->site, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 5, vm->domain, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 6, sal_vm_state_to_string(vm->state), -1,
                      SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 7, vm->exit_status);
    if (sqlite3_step(stmt) != SQLITE_DONE) {
        return db_error(store, error, "save VM %u of job %" G_GINT64_FORMAT,
                        vm->index, job->id);
    }
    return TRUE;
}

gboolean
sal_store_save_job(SalStore *store, SalJob *job, GPtrArray *vms, GError **error)
{
    gboolean is_new = job->id == 0;
    gboolean ok;

    if (is_new && !sal_job_validate(job, error)) {
        return FALSE;
    }
    if (!sal_store_begin(store, error)) {
        return FALSE;
    }
    ok = job_write(store, job, error);
    for (guint i = 0; ok && vms && i < vms->len; i++) {
        ok = vm_write(store, job, vms->pdata[i], error);
    }
    if (sal_store_end(store, ok, error)) {
        return TRUE;
    }
    if (is_new) {
        job->id = 0;
        for (guint i = 0; vms && i < vms->len; i++) {
            ((SalVm *)vms->pdata[i])->job_id = 0;
        }
    }
    return FALSE;
}

gboolean
sal_store_delete_vms(SalStore *store, gint64 job_id, GError **error)
{
    g_autoptr(sqlite3_stmt) stmt = prepare(
        store, "DELETE FROM vms WHERE job_id = ?1", "delete VMs", error);

    if (!stmt) {
        return FALSE;
    }
    sqlite3_bind_int64(stmt, 1, job_id);
    if (sqlite3_step(stmt) != SQLITE_DONE) {
        return db_error(store, error, "delete the VMs of job %" G_GINT64_FORMAT,
                        job_id);
    }
    return TRUE;
}

/* ---- VMs ---- */

#define VM_SELECT                                                              \
    "SELECT v.job_id, v.idx, v.node, v.site, v.domain, v.state, a.ip, "        \
    "a.mac, v.exit_status FROM vms v LEFT JOIN addresses a "                   \
    "ON a.job_id = v.job_id AND a.vm_index = v.idx "

static gpointer
vm_from_row(sqlite3_stmt *stmt, GError **error)
{
    g_autoptr(SalVm) vm = sal_vm_new(sqlite3_column_int64(stmt, 0),
                                     (guint)sqlite3_column_int64(stmt, 1));
    const char *state = (const char *)sqlite3_column_text(stmt, 5);

    if (!sal_vm_state_from_string(state ? state : "", &vm->state, error)) {
        g_prefix_error(error, "VM %u of job %" G_GINT64_FORMAT ": ", vm->index,
                       vm->job_id);
        return NULL;
    }
    vm->node = column_text(stmt, 2);
    vm->site = column_text(stmt, 3);
    vm->domain = column_text(stmt, 4);
    vm->ip = column_text(stmt, 6);
    vm->mac = column_text(stmt, 7);
    vm->exit_status = (gint)sqlite3_column_int64(stmt, 8);
    return g_steal_pointer(&vm);
}

SalJob *
sal_store_load_job(SalStore *store, gint64 id, GPtrArray **vms, GError **error)
{
    g_autoptr(GPtrArray) jobs = load_rows(
        store, "SELECT " JOB_COLUMNS " FROM jobs WHERE id = ?1", &id,
        job_from_row, (GDestroyNotify)sal_job_free, "load a job", error);

    if (vms) {
        *vms = NULL;
    }
    if (!jobs) {
        return NULL;
    }
    if (jobs->len == 0) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_NOT_FOUND,
                    "no job %" G_GINT64_FORMAT, id);
        return NULL;
    }
    if (vms) {
        *vms = load_rows(store, VM_SELECT "WHERE v.job_id = ?1 ORDER BY v.idx",
                         &id, vm_from_row, (GDestroyNotify)sal_vm_free,
                         "load VMs", error);
        if (!*vms) {
            return NULL;
        }
    }
    return g_ptr_array_steal_index(jobs, 0);
}

GPtrArray *
sal_store_load_jobs(SalStore *store, gboolean all, GPtrArray **vms,
                    GError **error)
{
    const char *where = all ? "" : "WHERE state NOT IN " TERMINAL_STATES;
    g_autofree char *jobs_sql = NULL;
    g_autofree char *vms_sql = NULL;
    g_autoptr(GPtrArray) jobs = NULL;
    gboolean ok;

    if (vms) {
        *vms = NULL;
    }
    /* One transaction, so that the VMs match the jobs. */
    if (!sal_store_begin(store, error)) {
        return NULL;
    }
    jobs_sql = g_strdup_printf("SELECT " JOB_COLUMNS " FROM jobs %s ORDER BY id",
                               where);
    jobs = load_rows(store, jobs_sql, NULL, job_from_row,
                     (GDestroyNotify)sal_job_free, "load jobs", error);
    ok = jobs != NULL;
    if (ok && vms) {
        vms_sql = g_strdup_printf(
            VM_SELECT "JOIN jobs j ON j.id = v.job_id %s "
                      "ORDER BY v.job_id, v.idx",
            all ? "" : "WHERE j.state NOT IN " TERMINAL_STATES);
        *vms = load_rows(store, vms_sql, NULL, vm_from_row,
                         (GDestroyNotify)sal_vm_free, "load VMs", error);
        ok = *vms != NULL;
    }
    if (!sal_store_end(store, ok, error)) {
        if (vms) {
            g_clear_pointer(vms, g_ptr_array_unref);
        }
        return NULL;
    }
    return g_steal_pointer(&jobs);
}

GPtrArray *
sal_store_load_active(SalStore *store, GPtrArray **vms, GError **error)
{
    return sal_store_load_jobs(store, FALSE, vms, error);
}

/* ---- nodes ---- */

static gpointer
node_from_row(sqlite3_stmt *stmt, GError **error)
{
    return sal_node_new((const char *)sqlite3_column_text(stmt, 0),
                        (const char *)sqlite3_column_text(stmt, 1),
                        (const char *)sqlite3_column_text(stmt, 2),
                        (guint)sqlite3_column_int64(stmt, 3),
                        (guint64)sqlite3_column_int64(stmt, 4));
}

static gboolean
nodes_write(SalStore *store, GPtrArray *nodes, GError **error)
{
    g_autoptr(sqlite3_stmt) stmt = NULL;

    if (!exec(store, "DELETE FROM nodes", "delete the nodes", error)) {
        return FALSE;
    }
    stmt = prepare(store,
                   "INSERT INTO nodes (name, site, uri, cpus, mem_mib) "
                   "VALUES (?1, ?2, ?3, ?4, ?5)",
                   "save a node", error);
    if (!stmt) {
        return FALSE;
    }
    for (guint i = 0; i < nodes->len; i++) {
        const SalNode *node = nodes->pdata[i];

        if (!sal_node_validate(node, error)) {
            return FALSE;
        }
        sqlite3_reset(stmt);
        sqlite3_bind_text(stmt, 1, node->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(stmt, 2, node->site, -1, SQLITE_STATIC);
        sqlite3_bind_text(stmt, 3, node->uri, -1, SQLITE_STATIC);
        sqlite3_bind_int64(stmt, 4, node->cpus);
        sqlite3_bind_int64(stmt, 5, (gint64)node->mem_mib);
        if (sqlite3_step(stmt) != SQLITE_DONE) {
            return db_error(store, error, "save node '%s'", node->name);
        }
    }
    return TRUE;
}

gboolean
sal_store_save_nodes(SalStore *store, GPtrArray *nodes, GError **error)
{
    if (!sal_store_begin(store, error)) {
        return FALSE;
    }
    return sal_store_end(store, nodes_write(store, nodes, error), error);
}

GPtrArray *
sal_store_load_nodes(SalStore *store, GError **error)
{
    return load_rows(store,
                     "SELECT name, site, uri, cpus, mem_mib FROM nodes "
                     "ORDER BY rowid",
                     NULL, node_from_row, (GDestroyNotify)sal_node_free,
                     "load nodes", error);
}

/* ---- address leases ---- */

SalLease *
sal_lease_copy(const SalLease *lease)
{
    SalLease *copy = g_memdup2(lease, sizeof(*lease));

    copy->site = g_strdup(lease->site);
    copy->ip = g_strdup(lease->ip);
    copy->mac = g_strdup(lease->mac);
    return copy;
}

void
sal_lease_free(SalLease *lease)
{
    if (!lease) {
        return;
    }
    g_free(lease->site);
    g_free(lease->ip);
    g_free(lease->mac);
    g_free(lease);
}

static gpointer
lease_from_row(sqlite3_stmt *stmt, GError **error)
{
    SalLease *lease = g_new0(SalLease, 1);

    lease->ip = column_text(stmt, 0);
    lease->mac = column_text(stmt, 1);
    lease->site = column_text(stmt, 2);
    lease->job_id = sqlite3_column_int64(stmt, 3);
    lease->vm_index = (guint)sqlite3_column_int64(stmt, 4);
    return lease;
}

gboolean
sal_store_add_lease(SalStore *store, const SalLease *lease, GError **error)
{
    g_autoptr(sqlite3_stmt) stmt =
        prepare(store,
                "INSERT INTO addresses (ip, mac, site, job_id, vm_index) "
                "VALUES (?1, ?2, ?3, ?4, ?5)",
                "save a lease", error);

    if (!stmt) {
        return FALSE;
    }
    sqlite3_bind_text(stmt, 1, lease->ip, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, lease->mac, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 3, lease->site, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 4, lease->job_id);
    sqlite3_bind_int64(stmt, 5, lease->vm_index);
    if (sqlite3_step(stmt) != SQLITE_DONE) {
        return db_error(store, error,
                        "lease '%s' to VM %u of job %" G_GINT64_FORMAT,
                        lease->ip, lease->vm_index, lease->job_id);
    }
    return TRUE;
}

gboolean
sal_store_remove_leases(SalStore *store, gint64 job_id, gint vm_index,
                        GError **error)
{
    g_autoptr(sqlite3_stmt) stmt =
        prepare(store,
                "DELETE FROM addresses WHERE job_id = ?1 "
                "AND (?2 < 0 OR vm_index = ?2)",
                "release leases", error);

    if (!stmt) {
        return FALSE;
    }
    sqlite3_bind_int64(stmt, 1, job_id);
    sqlite3_bind_int(stmt, 2, vm_index);
    if (sqlite3_step(stmt) != SQLITE_DONE) {
        return db_error(store, error,
                        "release the leases of job %" G_GINT64_FORMAT, job_id);
    }
    return TRUE;
}

GPtrArray *
sal_store_load_leases(SalStore *store, GError **error)
{
    return load_rows(store,
                     "SELECT ip, mac, site, job_id, vm_index FROM addresses "
                     "ORDER BY site, job_id, vm_index",
                     NULL, lease_from_row, (GDestroyNotify)sal_lease_free,
                     "load leases", error);
}

/* ---- snapshots and history ---- */

static gboolean
snapshot_write(SalStore *store, const SalSnapshot *snap, GError **error)
{
    g_autoptr(sqlite3_stmt) stmt = prepare(
        store,
        "INSERT OR REPLACE INTO snapshots (job_id, seq, time, pause_ms, "
        "bytes_sent, bytes_new) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        "save a snapshot", error);
    g_autoptr(sqlite3_stmt) job = NULL;

    if (!stmt) {
        return FALSE;
    }
    sqlite3_bind_int64(stmt, 1, snap->job_id);
    sqlite3_bind_int64(stmt, 2, snap->seq);
    sqlite3_bind_int64(stmt, 3, snap->time);
    sqlite3_bind_int64(stmt, 4, snap->pause_ms);
    sqlite3_bind_int64(stmt, 5, (gint64)snap->bytes_sent);
    sqlite3_bind_int64(stmt, 6, (gint64)snap->bytes_new);
    if (sqlite3_step(stmt) != SQLITE_DONE) {
        return db_error(store, error, "save snapshot %u of job %" G_GINT64_FORMAT,
                        snap->seq, snap->job_id);
    }
    job = prepare(store, "UPDATE jobs SET snapshot_seq = ?2 WHERE id = ?1",
                  "save a snapshot", error);
    if (!job) {
        return FALSE;
    }
    sqlite3_bind_int64(job, 1, snap->job_id);
    sqlite3_bind_int64(job, 2, snap->seq);
    if (sqlite3_step(job) != SQLITE_DONE) {
        return db_error(store, error, "save snapshot %u of job %" G_GINT64_FORMAT,
                        snap->seq, snap->job_id);
    }
    if (sqlite3_changes(store->db) == 0) {
        g_set_error(error, SAL_ERROR, SAL_ERROR_NOT_FOUND,
                    "no job %" G_GINT64_FORMAT, snap->job_id);
        return FALSE;
    }
    return TRUE;
}

gboolean
sal_store_add_snapshot(SalStore *store, const SalSnapshot *snap,
                       GError **error)
{
    if (!sal_store_begin(store, error)) {
        return FALSE;
    }
    return sal_store_end(store, snapshot_write(store, snap, error), error);
}

static gboolean
snapshots_drop(SalStore *store, gint64 job_id, guint seq, GError **error)
{
    g_autoptr(sqlite3_stmt) del = prepare(
        store, "DELETE FROM snapshots WHERE job_id = ?1 AND seq >= ?2",
        "drop snapshots", error);
    g_autoptr(sqlite3_stmt) job = NULL;

    if (!del) {
        return FALSE;
    }
    sqlite3_bind_int64(del, 1, job_id);
    sqlite3_bind_int64(del, 2, seq);
    if (sqlite3_step(del) != SQLITE_DONE) {
        return db_error(store, error, "drop snapshots of job %" G_GINT64_FORMAT,
                        job_id);
    }
    job = prepare(store,
                  "UPDATE jobs SET snapshot_seq = (SELECT COALESCE(MAX(seq), 0) "
                  "FROM snapshots WHERE job_id = ?1) WHERE id = ?1",
                  "drop snapshots", error);
    if (!job) {
        return FALSE;
    }
    sqlite3_bind_int64(job, 1, job_id);
    if (sqlite3_step(job) != SQLITE_DONE) {
        return db_error(store, error, "drop snapshots of job %" G_GINT64_FORMAT,
                        job_id);
    }
    return TRUE;
}

gboolean
sal_store_drop_snapshots(SalStore *store, gint64 job_id, guint seq,
                         GError **error)
{
    if (!sal_store_begin(store, error)) {
        return FALSE;
    }
    return sal_store_end(store, snapshots_drop(store, job_id, seq, error),
                         error);
}

static gpointer
snapshot_from_row(sqlite3_stmt *stmt, GError **error)
{
    SalSnapshot *snap = g_new0(SalSnapshot, 1);

    snap->job_id = sqlite3_column_int64(stmt, 0);
    snap->seq = (guint)sqlite3_column_int64(stmt, 1);
    snap->time = sqlite3_column_int64(stmt, 2);
    snap->pause_ms = sqlite3_column_int64(stmt, 3);
    snap->bytes_sent = (guint64)sqlite3_column_int64(stmt, 4);
    snap->bytes_new = (guint64)sqlite3_column_int64(stmt, 5);
    return snap;
}

GPtrArray *
sal_store_load_snapshots(SalStore *store, gint64 job_id, GError **error)
{
    return load_rows(store,
                     "SELECT job_id, seq, time, pause_ms, bytes_sent, bytes_new "
                     "FROM snapshots WHERE job_id = ?1 ORDER BY seq",
                     &job_id, snapshot_from_row, g_free, "load snapshots",
                     error);
}

gboolean
sal_store_add_event(SalStore *store, gint64 job_id, gint64 time,
                    const char *text, GError **error)
{
    g_autoptr(sqlite3_stmt) stmt = prepare(
        store, "INSERT INTO events (job_id, time, text) VALUES (?1, ?2, ?3)",
        "save an event", error);

    if (!stmt) {
        return FALSE;
    }
    sqlite3_bind_int64(stmt, 1, job_id);
    sqlite3_bind_int64(stmt, 2, time);
    sqlite3_bind_text(stmt, 3, text, -1, SQLITE_STATIC);
    if (sqlite3_step(stmt) != SQLITE_DONE) {
        return db_error(store, error, "save an event of job %" G_GINT64_FORMAT,
                        job_id);
    }
    return TRUE;
}

void
sal_event_free(SalEvent *event)
{
    if (event) {
        g_free(event->text);
        g_free(event);
    }
}

static gpointer
event_from_row(sqlite3_stmt *stmt, GError **error)
{
    SalEvent *event = g_new0(SalEvent, 1);

    event->time = sqlite3_column_int64(stmt, 0);
    event->text = column_text(stmt, 1);
    return event;
}

GPtrArray *
sal_store_load_events(SalStore *store, gint64 job_id, GError **error)
{
    return load_rows(store,
                     "SELECT time, text FROM events WHERE job_id = ?1 "
                     "ORDER BY rowid",
                     &job_id, event_from_row, (GDestroyNotify)sal_event_free,
                     "load events", error);
}
