/* The catalog in SQLite. Every write runs inside a savepoint, so a single call is one
 * transaction on its own and several calls inside tr_catalog_txn are one together (savepoints
 * nest where BEGIN does not). Shard uids come from AUTOINCREMENT so that a uid is never
 * reused: it names a directory of the store, which must never be taken over by a new shard. */
#include "core/catalog.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "util/log.h"

struct tr_catalog {
    sqlite3 *db;
    char path[512];
};

#define SCHEMA_VERSION 1

static const char schema_v1[] =
    "CREATE TABLE streams ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " kind TEXT NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL,"
    " created_ms INTEGER NOT NULL, retention_hours INTEGER NOT NULL,"
    " version INTEGER NOT NULL DEFAULT 1, attrs_json TEXT,"
    " UNIQUE (kind, name));"
    "CREATE TABLE shards ("
    " uid INTEGER PRIMARY KEY AUTOINCREMENT,"
    " stream_id INTEGER NOT NULL REFERENCES streams(id) ON DELETE CASCADE,"
    " idx INTEGER NOT NULL, hash_start TEXT NOT NULL, hash_end TEXT NOT NULL,"
    " parent_index INTEGER NOT NULL, adjacent_parent_index INTEGER NOT NULL,"
    " starting_seq INTEGER NOT NULL, ending_seq INTEGER NOT NULL,"
    " closed INTEGER NOT NULL, created_ms INTEGER NOT NULL,"
    " UNIQUE (stream_id, idx));"
    "CREATE TABLE tags ("
    " stream_id INTEGER NOT NULL REFERENCES streams(id) ON DELETE CASCADE,"
    " key TEXT NOT NULL, value TEXT NOT NULL,"
    " PRIMARY KEY (stream_id, key));"
    "CREATE TABLE consumers ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " stream_id INTEGER NOT NULL REFERENCES streams(id) ON DELETE CASCADE,"
    " name TEXT NOT NULL, created_ms INTEGER NOT NULL,"
    " UNIQUE (stream_id, name));";

/* Logs SQLite's message and maps its code to ours. A broken foreign key means the stream a
 * row refers to is gone; a broken unique key, that the row already exists. */
static int db_err(tr_catalog *c, int rc, const char *what) {
    int ext = sqlite3_extended_errcode(c->db);
    if (ext == SQLITE_CONSTRAINT_FOREIGNKEY) return TR_ENOENT;
    if (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY) return TR_EEXIST;
    tr_error("msg=\"catalog error\" op=%s file=\"%s\" sqlite=%d err=\"%s\"", what, c->path, rc,
             sqlite3_errmsg(c->db));
    switch (rc & 0xff) {
    case SQLITE_CONSTRAINT: return TR_EINVAL;
    case SQLITE_FULL: return TR_ENOSPC;
    case SQLITE_NOMEM: return TR_ENOMEM;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: return TR_ECORRUPT;
    default: return TR_EIO;
    }
}

static int exec(tr_catalog *c, const char *sql) {
    int rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? TR_OK : db_err(c, rc, sql);
}

static int prepare(tr_catalog *c, const char *sql, sqlite3_stmt **st) {
    int rc = sqlite3_prepare_v2(c->db, sql, -1, st, NULL);
    return rc == SQLITE_OK ? TR_OK : db_err(c, rc, "prepare");
}

/* Runs a statement that returns no rows, then finalizes it. */
static int step_done(tr_catalog *c, sqlite3_stmt *st, const char *what) {
    int rc = sqlite3_step(st);
    int out = rc == SQLITE_DONE ? TR_OK : db_err(c, rc, what);
    sqlite3_finalize(st);
    return out;
}

static int savepoint(tr_catalog *c) { return exec(c, "SAVEPOINT tr"); }

/* Releases the savepoint on success, rolls it back otherwise; returns rc. */
static int finish(tr_catalog *c, int rc) {
    if (rc == TR_OK) {
        int r = exec(c, "RELEASE tr");
        if (r == TR_OK) return TR_OK;
        rc = r;
    }
    sqlite3_exec(c->db, "ROLLBACK TO tr; RELEASE tr", NULL, NULL, NULL);
    return rc;
}

/* Creates or upgrades the schema; a schema newer than this build knows is left alone and
 * refused, with the reason in err. */
static int migrate(tr_catalog *c, char *err, size_t err_len) {
    sqlite3_stmt *st;
    int rc = prepare(c, "PRAGMA user_version", &st);
    if (rc != TR_OK) return rc;
    int version = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    if (version == SCHEMA_VERSION) return TR_OK;
    if (version > SCHEMA_VERSION) {
        tr_error("msg=\"catalog is from a newer tributary\" file=\"%s\" schema=%d known=%d",
                 c->path, version, SCHEMA_VERSION);
        snprintf(err, err_len, "catalog schema version %d is newer than this tributary's (%d)",
                 version, SCHEMA_VERSION);
        return TR_EINVAL;
    }
    if ((rc = savepoint(c)) != TR_OK) return rc;
    rc = exec(c, schema_v1);
    if (rc == TR_OK) rc = exec(c, "PRAGMA user_version = 1");
    return finish(c, rc);
}

tr_catalog *tr_catalog_open(const char *path, char *err, size_t err_len) {
    tr_catalog *c = calloc(1, sizeof *c);
    if (c == NULL) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    snprintf(c->path, sizeof c->path, "%s", path);
    int rc = sqlite3_open_v2(path, &c->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, err_len, "%s", c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        tr_catalog_close(c);
        return NULL;
    }
    sqlite3_busy_timeout(c->db, 5000);
    /* journal_mode answers with a row; sqlite3_exec ignores it. */
    char why[128] = "";
    if (exec(c, "PRAGMA journal_mode = WAL") != TR_OK ||
        exec(c, "PRAGMA synchronous = FULL") != TR_OK ||
        exec(c, "PRAGMA foreign_keys = ON") != TR_OK || migrate(c, why, sizeof why) != TR_OK) {
        snprintf(err, err_len, "%s", why[0] ? why : sqlite3_errmsg(c->db));
        tr_catalog_close(c);
        return NULL;
    }
    return c;
}

void tr_catalog_close(tr_catalog *c) {
    if (c == NULL) return;
    sqlite3_close(c->db);
    free(c);
}

void tr_stream_meta_clear(tr_stream_meta *m) {
    free(m->attrs_json);
    m->attrs_json = NULL;
}

/* ---- streams ---- */

#define STREAM_COLS "id, kind, name, status, created_ms, retention_hours, version, attrs_json"

static void copy_text(char *dst, size_t cap, const unsigned char *src) {
    snprintf(dst, cap, "%s", src ? (const char *)src : "");
}

/* Fills m from a row of STREAM_COLS; attrs_json is malloc'd. */
static int read_stream(sqlite3_stmt *st, tr_stream_meta *m) {
    memset(m, 0, sizeof *m);
    m->id = sqlite3_column_int64(st, 0);
    copy_text(m->kind, sizeof m->kind, sqlite3_column_text(st, 1));
    copy_text(m->name, sizeof m->name, sqlite3_column_text(st, 2));
    copy_text(m->status, sizeof m->status, sqlite3_column_text(st, 3));
    m->created_ms = sqlite3_column_int64(st, 4);
    m->retention_hours = sqlite3_column_int64(st, 5);
    m->version = sqlite3_column_int64(st, 6);
    const unsigned char *attrs = sqlite3_column_text(st, 7);
    if (attrs != NULL && (m->attrs_json = strdup((const char *)attrs)) == NULL) return TR_ENOMEM;
    return TR_OK;
}

static void bind_text_or_null(sqlite3_stmt *st, int col, const char *s) {
    if (s != NULL)
        sqlite3_bind_text(st, col, s, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, col);
}

int tr_catalog_stream_create(tr_catalog *c, tr_stream_meta *m) {
    sqlite3_stmt *st;
    int rc = prepare(c,
                     "INSERT INTO streams (kind, name, status, created_ms, retention_hours,"
                     " version, attrs_json) VALUES (?, ?, ?, ?, ?, 1, ?)",
                     &st);
    if (rc != TR_OK) return rc;
    sqlite3_bind_text(st, 1, m->kind, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, m->name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, m->status, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, m->created_ms);
    sqlite3_bind_int64(st, 5, m->retention_hours);
    bind_text_or_null(st, 6, m->attrs_json);
    if ((rc = savepoint(c)) != TR_OK) {
        sqlite3_finalize(st);
        return rc;
    }
    rc = finish(c, step_done(c, st, "stream_create"));
    if (rc == TR_OK) {
        m->id = sqlite3_last_insert_rowid(c->db);
        m->version = 1;
    }
    return rc;
}

/* Runs a query expected to return at most one stream row. */
static int get_one_stream(tr_catalog *c, sqlite3_stmt *st, tr_stream_meta *m) {
    int rc = sqlite3_step(st);
    int out;
    if (rc == SQLITE_ROW)
        out = read_stream(st, m);
    else if (rc == SQLITE_DONE)
        out = TR_ENOENT;
    else
        out = db_err(c, rc, "stream_get");
    sqlite3_finalize(st);
    return out;
}

int tr_catalog_stream_get(tr_catalog *c, const char *kind, const char *name, tr_stream_meta *m) {
    sqlite3_stmt *st;
    int rc = prepare(c, "SELECT " STREAM_COLS " FROM streams WHERE kind = ? AND name = ?", &st);
    if (rc != TR_OK) return rc;
    sqlite3_bind_text(st, 1, kind, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
    return get_one_stream(c, st, m);
}

int tr_catalog_stream_get_by_id(tr_catalog *c, int64_t id, tr_stream_meta *m) {
    sqlite3_stmt *st;
    int rc = prepare(c, "SELECT " STREAM_COLS " FROM streams WHERE id = ?", &st);
    if (rc != TR_OK) return rc;
    sqlite3_bind_int64(st, 1, id);
    return get_one_stream(c, st, m);
}

int tr_catalog_stream_update(tr_catalog *c, tr_stream_meta *m) {
    sqlite3_stmt *st;
    int rc = prepare(c,
                     "UPDATE streams SET status = ?, retention_hours = ?, attrs_json = ?,"
                     " version = version + 1 WHERE id = ? RETURNING version",
                     &st);
    if (rc != TR_OK) return rc;
    sqlite3_bind_text(st, 1, m->status, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, m->retention_hours);
    bind_text_or_null(st, 3, m->attrs_json);
    sqlite3_bind_int64(st, 4, m->id);
    if ((rc = savepoint(c)) != TR_OK) {
        sqlite3_finalize(st);
        return rc;
    }
    /* The new version comes from the row, not from m, which may hold a stale one. */
    int64_t version = 0;
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        version = sqlite3_column_int64(st, 0);
        r = sqlite3_step(st);
    } else if (r == SQLITE_DONE) {
        rc = TR_ENOENT;
    }
    if (r != SQLITE_DONE) rc = db_err(c, r, "stream_update");
    sqlite3_finalize(st);
    rc = finish(c, rc);
    if (rc == TR_OK) m->version = version;
    return rc;
}

int tr_catalog_stream_delete(tr_catalog *c, int64_t id) {
    sqlite3_stmt *st;
    int rc = prepare(c, "DELETE FROM streams WHERE id = ?", &st);
    if (rc != TR_OK) return rc;
    sqlite3_bind_int64(st, 1, id);
    /* Shards and tags go with it (ON DELETE CASCADE), in the same savepoint. */
    if ((rc = savepoint(c)) != TR_OK) {
        sqlite3_finalize(st);
        return rc;
    }
    rc = step_done(c, st, "stream_delete");
    if (rc == TR_OK && sqlite3_changes(c->db) == 0) rc = TR_ENOENT;
    return finish(c, rc);
}

int tr_catalog_stream_list(tr_catalog *c, const char *kind, const char *after, int limit,
                           tr_stream_visit fn, void *ctx) {
    sqlite3_stmt *st;
    int rc = prepare(c,
                     "SELECT " STREAM_COLS " FROM streams WHERE kind = ? AND name > ?"
                     " ORDER BY name LIMIT ?",
                     &st);
    if (rc != TR_OK) return rc;
    sqlite3_bind_text(st, 1, kind, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, after ? after : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 3, limit > 0 ? limit : -1);
    int visited = 0;
    for (;;) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) break;
        if (rc != SQLITE_ROW) {
            visited = db_err(c, rc, "stream_list");
            break;
        }
        tr_stream_meta m;
        int r = read_stream(st, &m);
        if (r != TR_OK) {
            tr_stream_meta_clear(&m);
            visited = r;
            break;
        }
        visited++;
        int stop = fn(ctx, &m);
        tr_stream_meta_clear(&m);
        if (stop) break;
    }
    sqlite3_finalize(st);
    return visited;
}

/* ---- shards ---- */

int tr_catalog_shard_add(tr_catalog *c, tr_shard_meta *m) {
    sqlite3_stmt *st;
    int rc = prepare(c,
                     "INSERT INTO shards (stream_id, idx, hash_start, hash_end, parent_index,"
                     " adjacent_parent_index, starting_seq, ending_seq, closed, created_ms)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     &st);
    if (rc != TR_OK) return rc;
    sqlite3_bind_int64(st, 1, m->stream_id);
    sqlite3_bind_int(st, 2, m->index);
    sqlite3_bind_text(st, 3, m->hash_start, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, m->hash_end, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 5, m->parent_index);
    sqlite3_bind_int(st, 6, m->adjacent_parent_index);
    sqlite3_bind_int64(st, 7, (int64_t)m->starting_seq);
    sqlite3_bind_int64(st, 8, (int64_t)m->ending_seq);
    sqlite3_bind_int(st, 9, m->closed);
    sqlite3_bind_int64(st, 10, m->created_ms);
    if ((rc = savepoint(c)) != TR_OK) {
        sqlite3_finalize(st);
        return rc;
    }
    rc = finish(c, step_done(c, st, "shard_add"));
    if (rc == TR_OK) m->uid = sqlite3_last_insert_rowid(c->db);
    return rc;
}

int tr_catalog_shard_close(tr_catalog *c, int64_t uid, uint64_t ending_seq) {
    sqlite3_stmt *st;
    int rc = prepare(c, "UPDATE shards SET closed = 1, ending_seq = ? WHERE uid = ?", &st);
    if (rc != TR_OK) return rc;
    sqlite3_bind_int64(st, 1, (int64_t)ending_seq);
    sqlite3_bind_int64(st, 2, uid);
    if ((rc = savepoint(c)) != TR_OK) {
        sqlite3_finalize(st);
        return rc;
    }
    rc = step_done(c, st, "shard_close");
    if (rc == TR_OK && sqlite3_changes(c->db) == 0) rc = TR_ENOENT;
    return finish(c, rc);
}

static void read_shard(sqlite3_stmt *st, tr_shard_meta *m) {
    memset(m, 0, sizeof *m);
    m->uid = sqlite3_column_int64(st, 0);
    m->stream_id = sqlite3_column_int64(st, 1);
    m->index = sqlite3_column_int(st, 2);
    copy_text(m->hash_start, sizeof m->hash_start, sqlite3_column_text(st, 3));
    copy_text(m->hash_end, sizeof m->hash_end, sqlite3_column_text(st, 4));
    m->parent_index = sqlite3_column_int(st, 5);
    m->adjacent_parent_index = sqlite3_column_int(st, 6);
    m->starting_seq = (uint64_t)sqlite3_column_int64(st, 7);
    m->ending_seq = (uint64_t)sqlite3_column_int64(st, 8);
    m->closed = sqlite3_column_int(st, 9);
    m->created_ms = sqlite3_column_int64(st, 10);
}

int tr_catalog_shard_list(tr_catalog *c, int64_t stream_id, tr_shard_meta **out, size_t *n) {
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc = prepare(c,
                     "SELECT uid, stream_id, idx, hash_start, hash_end, parent_index,"
                     " adjacent_parent_index, starting_seq, ending_seq, closed, created_ms"
                     " FROM shards WHERE stream_id = ? ORDER BY idx",
                     &st);
    if (rc != TR_OK) return rc;
    sqlite3_bind_int64(st, 1, stream_id);
    tr_shard_meta *arr = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        int r = sqlite3_step(st);
        if (r == SQLITE_DONE) break;
        if (r != SQLITE_ROW) {
            rc = db_err(c, r, "shard_list");
            break;
        }
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            tr_shard_meta *grown = realloc(arr, ncap * sizeof *arr);
            if (grown == NULL) {
                rc = TR_ENOMEM;
                break;
            }
            arr = grown;
            cap = ncap;
        }
        read_shard(st, &arr[len++]);
    }
    sqlite3_finalize(st);
    if (rc != TR_OK) {
        free(arr);
        return rc;
    }
    *out = arr;
    *n = len;
    return TR_OK;
}

/* ---- tags ---- */

int tr_catalog_tag_set(tr_catalog *c, int64_t stream_id, const char *key, const char *value) {
    sqlite3_stmt *st;
    int rc = prepare(c,
                     "INSERT INTO tags (stream_id, key, value) VALUES (?, ?, ?)"
                     " ON CONFLICT (stream_id, key) DO UPDATE SET value = excluded.value",
                     &st);
    if (rc != TR_OK) return rc;
    sqlite3_bind_int64(st, 1, stream_id);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, value, -1, SQLITE_TRANSIENT);
    if ((rc = savepoint(c)) != TR_OK) {
        sqlite3_finalize(st);
        return rc;
    }
    return finish(c, step_done(c, st, "tag_set"));
}

int tr_catalog_tag_remove(tr_catalog *c, int64_t stream_id, const char *key) {
    sqlite3_stmt *st;
    int rc = prepare(c, "DELETE FROM tags WHERE stream_id = ? AND key = ?", &st);
    if (rc != TR_OK) return rc;
    sqlite3_bind_int64(st, 1, stream_id);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_TRANSIENT);
    if ((rc = savepoint(c)) != TR_OK) {
        sqlite3_finalize(st);
        return rc;
    }
    return finish(c, step_done(c, st, "tag_remove"));
}

int tr_catalog_tag_list(tr_catalog *c, int64_t stream_id, const char *after, int limit,
                        tr_tag_visit fn, void *ctx) {
    sqlite3_stmt *st;
    int rc = prepare(c,
                     "SELECT key, value FROM tags WHERE stream_id = ? AND key > ?"
                     " ORDER BY key LIMIT ?",
                     &st);
    if (rc != TR_OK) return rc;
    sqlite3_bind_int64(st, 1, stream_id);
    sqlite3_bind_text(st, 2, after ? after : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 3, limit > 0 ? limit : -1);
    for (;;) {
        int r = sqlite3_step(st);
        if (r == SQLITE_DONE) break;
        if (r != SQLITE_ROW) {
            rc = db_err(c, r, "tag_list");
            break;
        }
        if (fn(ctx, (const char *)sqlite3_column_text(st, 0),
               (const char *)sqlite3_column_text(st, 1)))
            break;
    }
    sqlite3_finalize(st);
    return rc;
}

int tr_catalog_tag_count(tr_catalog *c, int64_t stream_id) {
    sqlite3_stmt *st;
    int rc = prepare(c, "SELECT count(*) FROM tags WHERE stream_id = ?", &st);
    if (rc != TR_OK) return rc;
    sqlite3_bind_int64(st, 1, stream_id);
    int r = sqlite3_step(st);
    rc = r == SQLITE_ROW ? sqlite3_column_int(st, 0) : db_err(c, r, "tag_count");
    sqlite3_finalize(st);
    return rc;
}

int tr_catalog_txn(tr_catalog *c, int (*fn)(tr_catalog *c, void *ctx), void *ctx) {
    int rc = savepoint(c);
    if (rc != TR_OK) return rc;
    return finish(c, fn(c, ctx));
}

/* ---- consumers ---- */

int tr_catalog_consumer_add(tr_catalog *c, tr_consumer_meta *m) {
    sqlite3_stmt *st;
    int rc = prepare(c, "INSERT INTO consumers (stream_id, name, created_ms) VALUES (?, ?, ?)",
                     &st);
    if (rc != TR_OK) return rc;
    sqlite3_bind_int64(st, 1, m->stream_id);
    sqlite3_bind_text(st, 2, m->name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, m->created_ms);
    if ((rc = savepoint(c)) != TR_OK) {
        sqlite3_finalize(st);
        return rc;
    }
    rc = finish(c, step_done(c, st, "consumer_add"));
    if (rc == TR_OK) m->id = sqlite3_last_insert_rowid(c->db);
    return rc;
}

static void read_consumer(sqlite3_stmt *st, tr_consumer_meta *m) {
    memset(m, 0, sizeof *m);
    m->id = sqlite3_column_int64(st, 0);
    m->stream_id = sqlite3_column_int64(st, 1);
    copy_text(m->name, sizeof m->name, sqlite3_column_text(st, 2));
    m->created_ms = sqlite3_column_int64(st, 3);
}

int tr_catalog_consumer_get(tr_catalog *c, int64_t stream_id, const char *name,
                            tr_consumer_meta *m) {
    sqlite3_stmt *st;
    int rc = prepare(c,
                     "SELECT id, stream_id, name, created_ms FROM consumers"
                     " WHERE stream_id = ? AND name = ?",
                     &st);
    if (rc != TR_OK) return rc;
    sqlite3_bind_int64(st, 1, stream_id);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW)
        read_consumer(st, m);
    else
        rc = r == SQLITE_DONE ? TR_ENOENT : db_err(c, r, "consumer_get");
    sqlite3_finalize(st);
    return rc;
}

int tr_catalog_consumer_remove(tr_catalog *c, int64_t stream_id, const char *name) {
    sqlite3_stmt *st;
    int rc = prepare(c, "DELETE FROM consumers WHERE stream_id = ? AND name = ?", &st);
    if (rc != TR_OK) return rc;
    sqlite3_bind_int64(st, 1, stream_id);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
    if ((rc = savepoint(c)) != TR_OK) {
        sqlite3_finalize(st);
        return rc;
    }
    rc = step_done(c, st, "consumer_remove");
    if (rc == TR_OK && sqlite3_changes(c->db) == 0) rc = TR_ENOENT;
    return finish(c, rc);
}

int tr_catalog_consumer_list(tr_catalog *c, int64_t stream_id, tr_consumer_visit fn,
                             void *ctx) {
    sqlite3_stmt *st;
    int rc = prepare(c,
                     "SELECT id, stream_id, name, created_ms FROM consumers"
                     " WHERE stream_id = ? ORDER BY name",
                     &st);
    if (rc != TR_OK) return rc;
    sqlite3_bind_int64(st, 1, stream_id);
    int visited = 0;
    for (;;) {
        int r = sqlite3_step(st);
        if (r == SQLITE_DONE) break;
        if (r != SQLITE_ROW) {
            visited = db_err(c, r, "consumer_list");
            break;
        }
        tr_consumer_meta m;
        read_consumer(st, &m);
        visited++;
        if (fn(ctx, &m)) break;
    }
    sqlite3_finalize(st);
    return visited;
}
