/*
 * ledger.c - the spool's memory, in SQLite.
 *
 * WAL mode, synchronous=NORMAL: a commit survives the process being killed
 * (the tested case); after a power loss the newest commits may be lost, and
 * recovery then finds files further along than the ledger says, which it
 * handles because every step it redoes checks the files first (an input
 * already removed from work/ comes back from its archive).  The one commit
 * that must survive a power loss as well, a batch converted (with its business
 * keys) before its outputs are published, is followed by ledger_sync, which
 * syncs the WAL.
 *
 * A writer takes BEGIN IMMEDIATE, so two instances on one spool queue on
 * the database lock (busy_timeout) instead of failing.
 *
 * DIAGNOSTICS
 *	Functions return -1 and keep SQLite's message for ledger_error().
 */
#include "ledger.h"

#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LEDGER_STMTS 48 /* prepared statements kept for reuse */

struct ledger {
    sqlite3 *db;
    char err[512];
    char *meta_val;
    /* statements by their SQL text: a conversion asks the same few questions once per
     * record, and parsing the SQL each time cost more than the answer */
    struct {
        char *sql;
        sqlite3_stmt *st;
    } stmts[LEDGER_STMTS];
    int nstmts;
};

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT);"
    "CREATE TABLE IF NOT EXISTS files(sha256 TEXT NOT NULL, name TEXT NOT NULL, size INTEGER,"
    "  seen_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')), state TEXT,"
    "  batch_id TEXT);"
    "CREATE INDEX IF NOT EXISTS files_sha ON files(sha256);"
    "CREATE TABLE IF NOT EXISTS batches(id TEXT PRIMARY KEY, kind TEXT, input_name TEXT,"
    "  input_sha256 TEXT, state TEXT NOT NULL, claimed_at TEXT, updated_at TEXT, template TEXT,"
    "  records INTEGER DEFAULT 0, published INTEGER DEFAULT 0, rejected INTEGER DEFAULT 0,"
    "  duplicate INTEGER DEFAULT 0, held INTEGER DEFAULT 0, warnings INTEGER DEFAULT 0,"
    "  outputs TEXT, totals TEXT, archive TEXT, manifest_sha256 TEXT, prev TEXT, error TEXT,"
    "  duplicate_of TEXT, out_dir TEXT, replay_of TEXT, forced INTEGER DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS batches_claimed ON batches(claimed_at);"
    "CREATE INDEX IF NOT EXISTS batches_sha ON batches(input_sha256);"
    "CREATE INDEX IF NOT EXISTS batches_state ON batches(state);"
    "CREATE INDEX IF NOT EXISTS batches_manifest ON batches(manifest_sha256);"
    /* WITHOUT ROWID: one B-tree (by kind, key) instead of a table and its key index; a
     * conversion adds a row per order (a ledger made before keeps its rowid table) */
    "CREATE TABLE IF NOT EXISTS keys(kind TEXT NOT NULL, key TEXT NOT NULL, tranno TEXT,"
    "  batch_id TEXT, PRIMARY KEY(kind, key)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS keys_tranno ON keys(kind, tranno);"
    "CREATE TABLE IF NOT EXISTS seq(name TEXT PRIMARY KEY, v INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS deliveries(batch_id TEXT NOT NULL, seq INTEGER NOT NULL,"
    "  state TEXT NOT NULL, http_status INTEGER, response TEXT, reason TEXT,"
    "  attempts INTEGER DEFAULT 0, updated_at TEXT DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')),"
    "  PRIMARY KEY(batch_id, seq));"
    "INSERT OR IGNORE INTO meta(k, v) VALUES('schema', '1');";

static int fail(ledger *l)
{
    snprintf(l->err, sizeof l->err, "%s", sqlite3_errmsg(l->db));
    return -1;
}

/* no_memstatus - SQLite counts every allocation under a global mutex unless told not to;
 * we never ask for its memory statistics.  Only possible before SQLite initialises: the
 * first ledger opened in the process does it (a later call changes nothing). */
static void no_memstatus(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

ledger *ledger_open(const char *path, sbuf *err)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, no_memstatus);
    ledger *l = xcalloc(1, sizeof *l);
    /* created 0640 by us: SQLite would use 0644, and gives its -wal and -shm the db's mode */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd >= 0)
        close(fd);
    /* one thread uses a ledger (NOMUTEX: no lock around every call) */
    if (sqlite3_open_v2(path, &l->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        sbuf_printf(err, "%s: cannot open the ledger: %s", path,
                    l->db ? sqlite3_errmsg(l->db) : "out of memory");
        ledger_close(l);
        return NULL;
    }
    /* another instance may hold the write lock for a whole conversion: wait for it */
    sqlite3_busy_timeout(l->db, 600000);
    char *msg = NULL;
    /* Two instances starting together: some steps here (the journal mode, WAL recovery)
     * answer SQLITE_BUSY at once instead of calling the busy handler; try again a while */
    int rc = SQLITE_OK;
    for (int tries = 0; tries < 6000; tries++) {
        sqlite3_free(msg);
        msg = NULL;
        rc = sqlite3_exec(l->db,
                          "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                          "PRAGMA foreign_keys=ON;",
                          NULL, NULL, &msg);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(l->db, schema_sql, NULL, NULL, &msg);
        if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED)
            break;
        usleep(10000);
    }
    if (rc != SQLITE_OK) {
        sbuf_printf(err, "%s: cannot prepare the ledger: %s (is it a sagebridge ledger?)", path,
                    msg ? msg : "?");
        sqlite3_free(msg);
        ledger_close(l);
        return NULL;
    }
    return l;
}

void ledger_close(ledger *l)
{
    if (!l)
        return;
    for (int i = 0; i < l->nstmts; i++) {
        sqlite3_finalize(l->stmts[i].st);
        free(l->stmts[i].sql);
    }
    sqlite3_close(l->db);
    free(l->meta_val);
    free(l);
}

const char *ledger_error(ledger *l)
{
    return l->err;
}

static int exec(ledger *l, const char *sql)
{
    return sqlite3_exec(l->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : fail(l);
}

int ledger_begin(ledger *l)
{
    return exec(l, "BEGIN IMMEDIATE");
}

int ledger_commit(ledger *l)
{
    return exec(l, "COMMIT");
}

/* ledger_sync - the WAL, and with it every commit so far, made durable now.  For the commit
 * after which something leaves the spool that cannot be taken back (a batch's outputs are
 * published next): with synchronous=NORMAL alone, a power loss could forget the batch and its
 * business keys while Sage already has its files, and the same orders would then be
 * published again.  SQLite refuses to change PRAGMA synchronous inside a transaction, so the
 * WAL is synced through its own file handle instead, after the COMMIT. */
int ledger_sync(ledger *l)
{
    sqlite3_file *wal = NULL;
    int rc = sqlite3_file_control(l->db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal);
    /* No WAL open: the file system refused WAL mode (PRAGMA journal_mode=WAL then keeps the
     * rollback journal, whose commits write the database file itself and sync it) */
    if (rc == SQLITE_OK && wal && wal->pMethods)
        rc = wal->pMethods->xSync(wal, SQLITE_SYNC_NORMAL);
    if (rc != SQLITE_OK) {
        snprintf(l->err, sizeof l->err, "syncing the ledger's write-ahead log failed (%s)",
                 sqlite3_errstr(rc));
        return -1;
    }
    return 0;
}

void ledger_rollback(ledger *l)
{
    sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
}

/* prep - a statement for sql, prepared once and kept; give it back with release() */
static sqlite3_stmt *prep(ledger *l, const char *sql)
{
    for (int i = 0; i < l->nstmts; i++)
        if (strcmp(l->stmts[i].sql, sql) == 0) {
            sqlite3_reset(l->stmts[i].st); /* whatever the last user left */
            return l->stmts[i].st;
        }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(l->db, sql, -1, &st, NULL) != SQLITE_OK) {
        fail(l);
        return NULL;
    }
    if (l->nstmts < LEDGER_STMTS) {
        l->stmts[l->nstmts].sql = xstrdup(sql);
        l->stmts[l->nstmts++].st = st;
    }
    return st;
}

/* release - done with a statement from prep(): reset for its next use (or finalized, when
 * the cache was full) */
static void release(ledger *l, sqlite3_stmt *st)
{
    if (!st)
        return;
    for (int i = 0; i < l->nstmts; i++)
        if (l->stmts[i].st == st) {
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            return;
        }
    sqlite3_finalize(st);
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

static char *col_dup(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? xstrdup((const char *)t) : NULL;
}

char *ledger_seen_sha(ledger *l, const char *sha256)
{
    sqlite3_stmt *st = prep(l, "SELECT id FROM batches WHERE input_sha256 = ? AND state IN "
                               "('converted','published','archived','pruned') ORDER BY claimed_at "
                               "LIMIT 1");
    if (!st)
        return NULL;
    bind_text(st, 1, sha256);
    char *id = sqlite3_step(st) == SQLITE_ROW ? col_dup(st, 0) : NULL;
    release(l, st);
    return id;
}

int ledger_file_seen(ledger *l, const char *sha256, const char *name, int64_t size,
                     const char *state, const char *batch_id)
{
    sqlite3_stmt *st =
        prep(l, "INSERT INTO files(sha256, name, size, state, batch_id) VALUES(?,?,?,?,?)");
    if (!st)
        return -1;
    bind_text(st, 1, sha256);
    bind_text(st, 2, name);
    sqlite3_bind_int64(st, 3, size);
    bind_text(st, 4, state);
    bind_text(st, 5, batch_id);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : fail(l);
    release(l, st);
    return rc;
}

#define BATCH_COLS                                                                                 \
    "id, kind, input_name, input_sha256, state, claimed_at, updated_at, template, records, "       \
    "published, rejected, duplicate, held, warnings, outputs, totals, archive, manifest_sha256, "  \
    "prev, error, duplicate_of, out_dir, replay_of, forced"

static void bind_batch(sqlite3_stmt *st, const batch_row *b)
{
    bind_text(st, 1, b->id);
    bind_text(st, 2, b->kind);
    bind_text(st, 3, b->input_name);
    bind_text(st, 4, b->input_sha256);
    bind_text(st, 5, b->state);
    bind_text(st, 6, b->claimed_at);
    bind_text(st, 7, b->updated_at);
    bind_text(st, 8, b->tmpl);
    sqlite3_bind_int64(st, 9, b->records);
    sqlite3_bind_int64(st, 10, b->published);
    sqlite3_bind_int64(st, 11, b->rejected);
    sqlite3_bind_int64(st, 12, b->duplicate);
    sqlite3_bind_int64(st, 13, b->held);
    sqlite3_bind_int64(st, 14, b->warnings);
    bind_text(st, 15, b->outputs);
    bind_text(st, 16, b->totals);
    bind_text(st, 17, b->archive);
    bind_text(st, 18, b->manifest_sha256);
    bind_text(st, 19, b->prev);
    bind_text(st, 20, b->error);
    bind_text(st, 21, b->duplicate_of);
    bind_text(st, 22, b->out_dir);
    bind_text(st, 23, b->replay_of);
    sqlite3_bind_int(st, 24, b->forced);
}

int ledger_batch_insert(ledger *l, const batch_row *b)
{
    sqlite3_stmt *st = prep(l, "INSERT INTO batches(" BATCH_COLS ") VALUES(?,?,?,?,?,?,?,?,?,?,?,"
                               "?,?,?,?,?,?,?,?,?,?,?,?,?)");
    if (!st)
        return -1;
    bind_batch(st, b);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : fail(l);
    release(l, st);
    return rc;
}

int ledger_batch_update(ledger *l, const batch_row *b)
{
    sqlite3_stmt *st = prep(l, "UPDATE batches SET kind=?2, input_name=?3, input_sha256=?4, "
                               "state=?5, claimed_at=?6, updated_at=?7, template=?8, records=?9, "
                               "published=?10, rejected=?11, duplicate=?12, held=?13, "
                               "warnings=?14, outputs=?15, totals=?16, archive=?17, "
                               "manifest_sha256=?18, prev=?19, error=?20, duplicate_of=?21, "
                               "out_dir=?22, replay_of=?23, forced=?24 WHERE id=?1");
    if (!st)
        return -1;
    bind_batch(st, b);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : fail(l);
    release(l, st);
    return rc;
}

static void read_batch(sqlite3_stmt *st, batch_row *b)
{
    memset(b, 0, sizeof *b);
    b->id = col_dup(st, 0);
    b->kind = col_dup(st, 1);
    b->input_name = col_dup(st, 2);
    b->input_sha256 = col_dup(st, 3);
    b->state = col_dup(st, 4);
    b->claimed_at = col_dup(st, 5);
    b->updated_at = col_dup(st, 6);
    b->tmpl = col_dup(st, 7);
    b->records = sqlite3_column_int64(st, 8);
    b->published = sqlite3_column_int64(st, 9);
    b->rejected = sqlite3_column_int64(st, 10);
    b->duplicate = sqlite3_column_int64(st, 11);
    b->held = sqlite3_column_int64(st, 12);
    b->warnings = sqlite3_column_int64(st, 13);
    b->outputs = col_dup(st, 14);
    b->totals = col_dup(st, 15);
    b->archive = col_dup(st, 16);
    b->manifest_sha256 = col_dup(st, 17);
    b->prev = col_dup(st, 18);
    b->error = col_dup(st, 19);
    b->duplicate_of = col_dup(st, 20);
    b->out_dir = col_dup(st, 21);
    b->replay_of = col_dup(st, 22);
    b->forced = sqlite3_column_int(st, 23);
}

int ledger_batch_get(ledger *l, const char *id, batch_row *b)
{
    sqlite3_stmt *st = prep(l, "SELECT " BATCH_COLS " FROM batches WHERE id = ?");
    if (!st)
        return -1;
    bind_text(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        read_batch(st, b);
    release(l, st);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? 1 : fail(l);
}

int ledger_batch_by_input(ledger *l, const char *name, batch_row *b)
{
    sqlite3_stmt *st = prep(l, "SELECT " BATCH_COLS " FROM batches WHERE input_name = ? AND state "
                               "IN ('converted','published','archived') ORDER BY claimed_at DESC, "
                               "id DESC LIMIT 1");
    if (!st)
        return -1;
    bind_text(st, 1, name);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        read_batch(st, b);
    release(l, st);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? 1 : fail(l);
}

int ledger_each(ledger *l, const char *since, const char *until, const char *kind,
                const char *state, ledger_batch_fn fn, void *ctx)
{
    sqlite3_stmt *st = prep(l, "SELECT " BATCH_COLS " FROM batches WHERE (?1 IS NULL OR "
                               "claimed_at >= ?1) AND (?2 IS NULL OR claimed_at < ?2) AND (?3 IS "
                               "NULL OR kind = ?3) AND (?4 IS NULL OR state = ?4) ORDER BY "
                               "claimed_at, id");
    if (!st)
        return -1;
    bind_text(st, 1, since);
    bind_text(st, 2, until);
    bind_text(st, 3, kind);
    bind_text(st, 4, state);
    int rc = 0;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        batch_row b;
        read_batch(st, &b);
        rc = fn(ctx, &b);
        batch_row_free(&b);
    }
    release(l, st);
    return rc;
}

int ledger_batch_by_manifest(ledger *l, const char *sha, batch_row *b)
{
    sqlite3_stmt *st = prep(l, "SELECT " BATCH_COLS " FROM batches WHERE manifest_sha256 = ? "
                               "LIMIT 1");
    if (!st)
        return -1;
    bind_text(st, 1, sha);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        read_batch(st, b);
    release(l, st);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? 1 : fail(l);
}

void batch_row_free(batch_row *b)
{
    char **f[] = {&b->id,       &b->kind,       &b->input_name,   &b->input_sha256,
                  &b->state,    &b->claimed_at, &b->updated_at,   &b->tmpl,
                  &b->outputs,  &b->totals,     &b->archive,      &b->manifest_sha256,
                  &b->prev,     &b->error,      &b->duplicate_of, &b->out_dir,
                  &b->replay_of};
    for (size_t i = 0; i < sizeof f / sizeof *f; i++) {
        free(*f[i]);
        *f[i] = NULL;
    }
}

int ledger_unfinished(ledger *l, char ***ids, int *n)
{
    *ids = NULL;
    *n = 0;
    sqlite3_stmt *st = prep(l, "SELECT id FROM batches WHERE state IN ('converted','published') "
                               "ORDER BY claimed_at, id");
    if (!st)
        return -1;
    while (sqlite3_step(st) == SQLITE_ROW) {
        *ids = xrealloc(*ids, (size_t)(*n + 1) * sizeof **ids);
        (*ids)[(*n)++] = col_dup(st, 0);
    }
    release(l, st);
    return 0;
}

int ledger_last_batches(ledger *l, int limit, batch_row **rows, int *n)
{
    *rows = NULL;
    *n = 0;
    sqlite3_stmt *st =
        prep(l, "SELECT " BATCH_COLS " FROM batches ORDER BY claimed_at DESC, id DESC LIMIT ?");
    if (!st)
        return -1;
    sqlite3_bind_int(st, 1, limit);
    while (sqlite3_step(st) == SQLITE_ROW) {
        *rows = xrealloc(*rows, (size_t)(*n + 1) * sizeof **rows);
        read_batch(st, &(*rows)[(*n)++]);
    }
    release(l, st);
    return 0;
}

int ledger_key_add(ledger *l, const char *kind, const char *key, size_t keylen, const char *tranno,
                   size_t trlen, const char *batch_id)
{
    sqlite3_stmt *st =
        prep(l, "INSERT OR IGNORE INTO keys(kind, key, tranno, batch_id) VALUES(?,?,?,?)");
    if (!st)
        return -1;
    bind_text(st, 1, kind);
    sqlite3_bind_text(st, 2, key, (int)keylen, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, tranno, (int)trlen, SQLITE_TRANSIENT);
    bind_text(st, 4, batch_id);
    int rc = sqlite3_step(st) == SQLITE_DONE ? (sqlite3_changes(l->db) ? 0 : 1) : fail(l);
    release(l, st);
    return rc;
}

int ledger_key_replace(ledger *l, const char *kind, const char *key, const char *tranno,
                       const char *batch_id)
{
    sqlite3_stmt *st =
        prep(l, "INSERT OR REPLACE INTO keys(kind, key, tranno, batch_id) VALUES(?,?,?,?)");
    if (!st)
        return -1;
    bind_text(st, 1, kind);
    bind_text(st, 2, key);
    bind_text(st, 3, tranno);
    bind_text(st, 4, batch_id);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : fail(l);
    release(l, st);
    return rc;
}

int ledger_tranno_used_by_other(ledger *l, const char *kind, const char *tranno, size_t n,
                                const char *batch_id)
{
    sqlite3_stmt *st = prep(l, "SELECT 1 FROM keys WHERE kind = ? AND tranno = ? AND batch_id "
                               "IS NOT ? LIMIT 1");
    if (!st)
        return -1;
    bind_text(st, 1, kind);
    sqlite3_bind_text(st, 2, tranno, (int)n, SQLITE_TRANSIENT);
    bind_text(st, 3, batch_id);
    int rc = sqlite3_step(st) == SQLITE_ROW;
    release(l, st);
    return rc;
}

int ledger_tranno_used(ledger *l, const char *kind, const char *tranno, size_t n)
{
    sqlite3_stmt *st = prep(l, "SELECT 1 FROM keys WHERE kind = ? AND tranno = ? LIMIT 1");
    if (!st)
        return -1;
    bind_text(st, 1, kind);
    sqlite3_bind_text(st, 2, tranno, (int)n, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st) == SQLITE_ROW;
    release(l, st);
    return rc;
}

/* one_tranno - the first TranNo of kind in the index order the statement asks for */
static int one_tranno(ledger *l, const char *sql, const char *kind, char **out)
{
    *out = NULL;
    sqlite3_stmt *st = prep(l, sql);
    if (!st)
        return -1;
    bind_text(st, 1, kind);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *out = col_dup(st, 0);
    release(l, st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : fail(l);
}

int ledger_tranno_bounds(ledger *l, const char *kind, char **lo, char **hi)
{
    /* two statements: each is one step down the keys_tranno index, where min() and max()
     * in one query would read the whole range */
    *hi = NULL;
    if (one_tranno(l,
                   "SELECT tranno FROM keys WHERE kind = ? AND tranno IS NOT NULL "
                   "ORDER BY tranno LIMIT 1",
                   kind, lo) != 0 ||
        one_tranno(l,
                   "SELECT tranno FROM keys WHERE kind = ? AND tranno IS NOT NULL "
                   "ORDER BY tranno DESC LIMIT 1",
                   kind, hi) != 0) {
        free(*lo);
        free(*hi);
        *lo = *hi = NULL;
        return -1;
    }
    return 0;
}

int ledger_text_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    return c ? c : (an > bn) - (an < bn);
}

char *ledger_key_tranno(ledger *l, const char *kind, const char *key)
{
    sqlite3_stmt *st = prep(l, "SELECT tranno FROM keys WHERE kind = ? AND key = ?");
    if (!st)
        return NULL;
    bind_text(st, 1, kind);
    bind_text(st, 2, key);
    char *r = sqlite3_step(st) == SQLITE_ROW ? col_dup(st, 0) : NULL;
    release(l, st);
    return r;
}

char *ledger_key_by_ref(ledger *l, const char *kind, const char *ref, size_t n)
{
    sqlite3_stmt *st = prep(l, "SELECT key FROM keys WHERE kind = ? AND tranno = ? LIMIT 1");
    if (!st)
        return NULL;
    bind_text(st, 1, kind);
    sqlite3_bind_text(st, 2, ref, (int)n, SQLITE_TRANSIENT);
    char *r = sqlite3_step(st) == SQLITE_ROW ? col_dup(st, 0) : NULL;
    release(l, st);
    return r;
}

uint64_t ledger_next_seq(ledger *l, const char *name)
{
    sqlite3_stmt *st = prep(l, "INSERT INTO seq(name, v) VALUES(?, 1) ON CONFLICT(name) DO "
                               "UPDATE SET v = v + 1 RETURNING v");
    if (!st)
        return 0;
    bind_text(st, 1, name);
    uint64_t v = sqlite3_step(st) == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
    release(l, st);
    return v;
}

const char *ledger_meta(ledger *l, const char *k)
{
    sqlite3_stmt *st = prep(l, "SELECT v FROM meta WHERE k = ?");
    if (!st)
        return NULL;
    bind_text(st, 1, k);
    free(l->meta_val);
    l->meta_val = sqlite3_step(st) == SQLITE_ROW ? col_dup(st, 0) : NULL;
    release(l, st);
    return l->meta_val;
}

int ledger_set_meta(ledger *l, const char *k, const char *v)
{
    sqlite3_stmt *st = prep(l, "INSERT INTO meta(k, v) VALUES(?, ?) ON CONFLICT(k) DO UPDATE SET "
                               "v = excluded.v");
    if (!st)
        return -1;
    bind_text(st, 1, k);
    bind_text(st, 2, v);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : fail(l);
    release(l, st);
    return rc;
}

int64_t ledger_count(ledger *l, const char *table)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
    sqlite3_stmt *st = prep(l, sql);
    if (!st)
        return -1;
    int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    release(l, st);
    return n;
}

char *ledger_delivery_state(ledger *l, const char *batch, int64_t seq)
{
    sqlite3_stmt *st = prep(l, "SELECT state FROM deliveries WHERE batch_id = ? AND seq = ?");
    if (!st)
        return NULL;
    bind_text(st, 1, batch);
    sqlite3_bind_int64(st, 2, seq);
    char *r = sqlite3_step(st) == SQLITE_ROW ? col_dup(st, 0) : NULL;
    release(l, st);
    return r;
}

int ledger_delivery_set(ledger *l, const char *batch, int64_t seq, const char *state,
                        long http_status, const char *response, const char *reason, int attempts)
{
    sqlite3_stmt *st = prep(l, "INSERT INTO deliveries(batch_id, seq, state, http_status, "
                               "response, reason, attempts) VALUES(?,?,?,?,?,?,?) ON "
                               "CONFLICT(batch_id, seq) DO UPDATE SET state=excluded.state, "
                               "http_status=excluded.http_status, response=excluded.response, "
                               "reason=excluded.reason, attempts=excluded.attempts, "
                               "updated_at=strftime('%Y-%m-%dT%H:%M:%SZ','now')");
    if (!st)
        return -1;
    bind_text(st, 1, batch);
    sqlite3_bind_int64(st, 2, seq);
    bind_text(st, 3, state);
    sqlite3_bind_int64(st, 4, http_status);
    bind_text(st, 5, response);
    bind_text(st, 6, reason);
    sqlite3_bind_int(st, 7, attempts);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : fail(l);
    release(l, st);
    return rc;
}

int ledger_delivery_each(ledger *l, const char *batch, ledger_delivery_fn fn, void *ctx)
{
    sqlite3_stmt *st = prep(l, "SELECT seq, state, http_status, response FROM deliveries WHERE "
                               "batch_id = ? ORDER BY seq");
    if (!st)
        return -1;
    bind_text(st, 1, batch);
    int rc = 0;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW)
        rc = fn(ctx, sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1),
                (long)sqlite3_column_int64(st, 2), (const char *)sqlite3_column_text(st, 3));
    release(l, st);
    return rc;
}
