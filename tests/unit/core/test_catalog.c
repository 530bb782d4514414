/* The catalog: streams of several kinds, listing with after/limit, shards and their uids,
 * tags, cascading deletes, nested transactions and their rollback, reopening, and refusing a
 * schema from a newer tributary. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/catalog.h"
#include "tmpdir.h"
#include "util/error.h"

typedef struct {
    char dir[256];
    char path[512];
    tr_catalog *c;
} fixture;

static tr_catalog *open_ok(const char *path) {
    char err[256] = "";
    tr_catalog *c = tr_catalog_open(path, err, sizeof err);
    if (c == NULL) fail_msg("tr_catalog_open: %s", err);
    return c;
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_non_null(tmpdir_make(f->dir, sizeof f->dir));
    snprintf(f->path, sizeof f->path, "%s/catalog.db", f->dir);
    f->c = open_ok(f->path);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    tr_catalog_close(f->c);
    tmpdir_remove(f->dir);
    free(f);
    return 0;
}

static void reopen(fixture *f) {
    tr_catalog_close(f->c);
    f->c = open_ok(f->path);
}

static tr_stream_meta stream_of(const char *kind, const char *name, const char *attrs) {
    tr_stream_meta m = {.created_ms = 1700000000123, .retention_hours = 24};
    snprintf(m.kind, sizeof m.kind, "%s", kind);
    snprintf(m.name, sizeof m.name, "%s", name);
    snprintf(m.status, sizeof m.status, "ACTIVE");
    m.attrs_json = attrs ? strdup(attrs) : NULL;
    return m;
}

/* Creates a stream and returns its id. */
static int64_t create(tr_catalog *c, const char *kind, const char *name) {
    tr_stream_meta m = stream_of(kind, name, NULL);
    assert_int_equal(tr_catalog_stream_create(c, &m), TR_OK);
    assert_true(m.id > 0);
    return m.id;
}

static int exists(tr_catalog *c, const char *kind, const char *name) {
    tr_stream_meta m;
    int rc = tr_catalog_stream_get(c, kind, name, &m);
    if (rc == TR_OK) tr_stream_meta_clear(&m);
    assert_true(rc == TR_OK || rc == TR_ENOENT);
    return rc == TR_OK;
}

static tr_shard_meta shard_of(int64_t stream_id, int32_t index) {
    tr_shard_meta m = {.stream_id = stream_id, .index = index, .parent_index = -1,
                       .adjacent_parent_index = -1, .starting_seq = 1, .created_ms = 42};
    snprintf(m.hash_start, sizeof m.hash_start, "%d", index * 100);
    snprintf(m.hash_end, sizeof m.hash_end, "%d", index * 100 + 99);
    return m;
}

static int64_t add_shard(tr_catalog *c, int64_t stream_id, int32_t index) {
    tr_shard_meta m = shard_of(stream_id, index);
    assert_int_equal(tr_catalog_shard_add(c, &m), TR_OK);
    assert_true(m.uid > 0);
    return m.uid;
}

static size_t shard_count(tr_catalog *c, int64_t stream_id) {
    tr_shard_meta *v;
    size_t n;
    assert_int_equal(tr_catalog_shard_list(c, stream_id, &v, &n), TR_OK);
    free(v);
    return n;
}

/* ---- streams ---- */

static void streams_of_two_kinds(void **state) {
    fixture *f = *state;
    tr_stream_meta d = stream_of("data", "orders", "{\"shards\":2}");
    tr_stream_meta v = stream_of("video", "orders", NULL);
    v.retention_hours = 0;
    assert_int_equal(tr_catalog_stream_create(f->c, &d), TR_OK);
    assert_int_equal(tr_catalog_stream_create(f->c, &v), TR_OK);
    assert_true(d.id != v.id);
    assert_int_equal(d.version, 1);

    /* Same kind and name again: refused, and nothing is added. */
    tr_stream_meta dup = stream_of("data", "orders", NULL);
    assert_int_equal(tr_catalog_stream_create(f->c, &dup), TR_EEXIST);

    tr_stream_meta got;
    assert_int_equal(tr_catalog_stream_get(f->c, "data", "orders", &got), TR_OK);
    assert_int_equal(got.id, d.id);
    assert_string_equal(got.kind, "data");
    assert_string_equal(got.name, "orders");
    assert_string_equal(got.status, "ACTIVE");
    assert_int_equal(got.created_ms, 1700000000123);
    assert_int_equal(got.retention_hours, 24);
    assert_int_equal(got.version, 1);
    assert_non_null(got.attrs_json);
    assert_string_equal(got.attrs_json, "{\"shards\":2}");
    tr_stream_meta_clear(&got);
    assert_null(got.attrs_json);

    assert_int_equal(tr_catalog_stream_get_by_id(f->c, v.id, &got), TR_OK);
    assert_string_equal(got.kind, "video");
    assert_int_equal(got.retention_hours, 0);
    assert_null(got.attrs_json);
    tr_stream_meta_clear(&got);

    assert_int_equal(tr_catalog_stream_get(f->c, "data", "nope", &got), TR_ENOENT);
    assert_int_equal(tr_catalog_stream_get(f->c, "firehose", "orders", &got), TR_ENOENT);
    assert_int_equal(tr_catalog_stream_get_by_id(f->c, v.id + 1000, &got), TR_ENOENT);

    /* Update writes status, retention and attributes and bumps the version; the version
     * returned is the row's even when the caller's copy is stale. */
    d.retention_hours = 48;
    snprintf(d.status, sizeof d.status, "UPDATING");
    free(d.attrs_json);
    d.attrs_json = strdup("{\"shards\":4}");
    assert_int_equal(tr_catalog_stream_update(f->c, &d), TR_OK);
    assert_int_equal(d.version, 2);
    d.version = 0;
    free(d.attrs_json);
    d.attrs_json = NULL;
    assert_int_equal(tr_catalog_stream_update(f->c, &d), TR_OK);
    assert_int_equal(d.version, 3);
    assert_int_equal(tr_catalog_stream_get(f->c, "data", "orders", &got), TR_OK);
    assert_string_equal(got.status, "UPDATING");
    assert_int_equal(got.retention_hours, 48);
    assert_int_equal(got.version, 3);
    assert_null(got.attrs_json);
    assert_int_equal(got.created_ms, 1700000000123);
    tr_stream_meta_clear(&got);
    /* The other kind's stream of the same name is untouched. */
    assert_int_equal(tr_catalog_stream_get(f->c, "video", "orders", &got), TR_OK);
    assert_int_equal(got.version, 1);
    assert_string_equal(got.status, "ACTIVE");
    tr_stream_meta_clear(&got);

    tr_stream_meta ghost = stream_of("data", "ghost", NULL);
    ghost.id = v.id + 1000;
    assert_int_equal(tr_catalog_stream_update(f->c, &ghost), TR_ENOENT);

    /* Delete one kind's stream; the other stays, and the name is free again. */
    assert_int_equal(tr_catalog_stream_delete(f->c, d.id), TR_OK);
    assert_int_equal(tr_catalog_stream_delete(f->c, d.id), TR_ENOENT);
    assert_false(exists(f->c, "data", "orders"));
    assert_true(exists(f->c, "video", "orders"));
    assert_int_equal(tr_catalog_stream_update(f->c, &d), TR_ENOENT);
    tr_stream_meta again = stream_of("data", "orders", NULL);
    assert_int_equal(tr_catalog_stream_create(f->c, &again), TR_OK);
    /* Ids are never reused, even the newest one's after it is deleted. */
    assert_true(again.id > v.id && again.id > d.id);
    int64_t newest = again.id;
    assert_int_equal(tr_catalog_stream_delete(f->c, newest), TR_OK);
    tr_stream_meta third = stream_of("data", "orders", NULL);
    assert_int_equal(tr_catalog_stream_create(f->c, &third), TR_OK);
    assert_true(third.id > newest);

    tr_stream_meta_clear(&d);
    tr_stream_meta_clear(&v);
    tr_stream_meta_clear(&dup);
    tr_stream_meta_clear(&ghost);
}

typedef struct {
    char names[16][TR_NAME_MAX + 1];
    int n;
    int stop_after; /* 0: never stop */
} name_list;

static int collect_stream(void *ctx, const tr_stream_meta *m) {
    name_list *l = ctx;
    assert_true(l->n < 16);
    snprintf(l->names[l->n++], sizeof l->names[0], "%s", m->name);
    return l->stop_after && l->n >= l->stop_after;
}

static void list_expect(tr_catalog *c, const char *kind, const char *after, int limit,
                        const char *want) {
    name_list l = {.n = 0};
    int rc = tr_catalog_stream_list(c, kind, after, limit, collect_stream, &l);
    assert_int_equal(rc, l.n);
    char got[256] = "";
    for (int i = 0; i < l.n; i++) {
        strcat(got, i ? "," : "");
        strcat(got, l.names[i]);
    }
    assert_string_equal(got, want);
}

static void stream_listing(void **state) {
    fixture *f = *state;
    const char *names[] = {"cherry", "apple", "elder", "banana", "date", "Zed", "apple2"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) create(f->c, "data", names[i]);
    create(f->c, "video", "avocado");
    create(f->c, "video", "cherry");

    /* Name order (bytewise), one kind only. */
    list_expect(f->c, "data", NULL, 0, "Zed,apple,apple2,banana,cherry,date,elder");
    list_expect(f->c, "data", NULL, -1, "Zed,apple,apple2,banana,cherry,date,elder");
    list_expect(f->c, "video", NULL, 0, "avocado,cherry");
    list_expect(f->c, "firehose", NULL, 0, "");
    /* Paging: after is exclusive, limit caps the page. */
    list_expect(f->c, "data", NULL, 3, "Zed,apple,apple2");
    list_expect(f->c, "data", "apple2", 3, "banana,cherry,date");
    list_expect(f->c, "data", "date", 3, "elder");
    list_expect(f->c, "data", "elder", 3, "");
    list_expect(f->c, "data", "b", 0, "banana,cherry,date,elder");
    list_expect(f->c, "data", "zzz", 0, "");

    /* The visitor can stop early; the count says how many it saw. */
    name_list l = {.stop_after = 2};
    assert_int_equal(tr_catalog_stream_list(f->c, "data", NULL, 0, collect_stream, &l), 2);
    assert_string_equal(l.names[1], "apple");

    /* Deleted streams drop out of the listing. */
    tr_stream_meta m;
    assert_int_equal(tr_catalog_stream_get(f->c, "data", "banana", &m), TR_OK);
    assert_int_equal(tr_catalog_stream_delete(f->c, m.id), TR_OK);
    tr_stream_meta_clear(&m);
    list_expect(f->c, "data", "apple2", 2, "cherry,date");
}

/* ---- shards ---- */

static void shards(void **state) {
    fixture *f = *state;
    int64_t a = create(f->c, "data", "a");
    int64_t b = create(f->c, "data", "b");

    /* Added out of order, listed by index, every field kept (sequence numbers are unsigned
     * 64-bit, beyond what SQLite's signed integers hold). */
    tr_shard_meta m2 = shard_of(a, 2);
    m2.parent_index = 0;
    m2.adjacent_parent_index = 1;
    m2.starting_seq = UINT64_MAX - 5;
    snprintf(m2.hash_end, sizeof m2.hash_end, "340282366920938463463374607431768211455");
    assert_int_equal(tr_catalog_shard_add(f->c, &m2), TR_OK);
    int64_t u0 = add_shard(f->c, a, 0);
    int64_t u1 = add_shard(f->c, a, 1);
    int64_t ub = add_shard(f->c, b, 0); /* index 0 again, on another stream */
    assert_true(u0 != m2.uid && u1 != u0 && ub != u1);

    tr_shard_meta dup = shard_of(a, 1);
    assert_int_equal(tr_catalog_shard_add(f->c, &dup), TR_EEXIST);
    tr_shard_meta orphan = shard_of(b + 1000, 0);
    assert_int_equal(tr_catalog_shard_add(f->c, &orphan), TR_ENOENT);

    tr_shard_meta *v;
    size_t n;
    assert_int_equal(tr_catalog_shard_list(f->c, a, &v, &n), TR_OK);
    assert_int_equal(n, 3);
    assert_int_equal(v[0].index, 0);
    assert_int_equal(v[0].uid, u0);
    assert_int_equal(v[1].index, 1);
    assert_int_equal(v[1].uid, u1);
    assert_int_equal(v[2].index, 2);
    assert_int_equal(v[2].uid, m2.uid);
    assert_int_equal(v[2].stream_id, a);
    assert_int_equal(v[2].parent_index, 0);
    assert_int_equal(v[2].adjacent_parent_index, 1);
    assert_true(v[2].starting_seq == UINT64_MAX - 5);
    assert_string_equal(v[2].hash_start, "200");
    assert_string_equal(v[2].hash_end, "340282366920938463463374607431768211455");
    assert_int_equal(v[2].created_ms, 42);
    assert_int_equal(v[0].parent_index, -1);
    assert_int_equal(v[0].closed, 0);
    assert_int_equal(v[0].ending_seq, 0);
    free(v);
    assert_int_equal(shard_count(f->c, b), 1);
    assert_int_equal(shard_count(f->c, b + 1000), 0);

    /* Closing records the ending sequence number. */
    assert_int_equal(tr_catalog_shard_close(f->c, u1, UINT64_MAX - 1), TR_OK);
    assert_int_equal(tr_catalog_shard_close(f->c, ub + 1000, 5), TR_ENOENT);
    assert_int_equal(tr_catalog_shard_list(f->c, a, &v, &n), TR_OK);
    assert_int_equal(n, 3);
    assert_int_equal(v[1].closed, 1);
    assert_true(v[1].ending_seq == UINT64_MAX - 1);
    assert_int_equal(v[0].closed, 0);
    free(v);

    /* Uids are never reused: not after the newest shard's stream is deleted, and not after a
     * reopen. A reused uid would hand an old shard directory to a new shard. */
    int64_t max_uid = ub;
    assert_int_equal(tr_catalog_stream_delete(f->c, b), TR_OK);
    int64_t c2 = create(f->c, "data", "c");
    int64_t uc = add_shard(f->c, c2, 0);
    assert_true(uc > max_uid);
    assert_int_equal(tr_catalog_stream_delete(f->c, c2), TR_OK);
    reopen(f);
    int64_t d2 = create(f->c, "data", "d");
    assert_true(add_shard(f->c, d2, 0) > uc);
}

/* ---- tags ---- */

typedef struct {
    char text[512];
    int n;
} tag_text;

static int collect_tag(void *ctx, const char *key, const char *value) {
    tag_text *t = ctx;
    size_t len = strlen(t->text);
    snprintf(t->text + len, sizeof t->text - len, "%s%s=%s", t->n ? "," : "", key, value);
    t->n++;
    return 0;
}

static void tags_expect(tr_catalog *c, int64_t id, const char *after, int limit, const char *want) {
    tag_text t = {.n = 0};
    assert_int_equal(tr_catalog_tag_list(c, id, after, limit, collect_tag, &t), TR_OK);
    assert_string_equal(t.text, want);
}

static int stop_at_first(void *ctx, const char *key, const char *value) {
    (void)value;
    int *calls = ctx;
    (*calls)++;
    assert_string_equal(key, "a");
    return 1;
}

static void tags(void **state) {
    fixture *f = *state;
    int64_t s = create(f->c, "data", "s");
    int64_t other = create(f->c, "video", "s");
    assert_int_equal(tr_catalog_tag_count(f->c, s), 0);
    tags_expect(f->c, s, NULL, 0, "");

    assert_int_equal(tr_catalog_tag_set(f->c, s, "c", "3"), TR_OK);
    assert_int_equal(tr_catalog_tag_set(f->c, s, "a", "1"), TR_OK);
    assert_int_equal(tr_catalog_tag_set(f->c, s, "b", "2"), TR_OK);
    assert_int_equal(tr_catalog_tag_set(f->c, s, "e", ""), TR_OK);
    assert_int_equal(tr_catalog_tag_set(f->c, other, "a", "video"), TR_OK);
    /* Setting an existing key overwrites its value. */
    assert_int_equal(tr_catalog_tag_set(f->c, s, "b", "twenty"), TR_OK);
    assert_int_equal(tr_catalog_tag_count(f->c, s), 4);
    assert_int_equal(tr_catalog_tag_count(f->c, other), 1);
    tags_expect(f->c, s, NULL, 0, "a=1,b=twenty,c=3,e=");
    tags_expect(f->c, s, NULL, 2, "a=1,b=twenty");
    tags_expect(f->c, s, "a", 2, "b=twenty,c=3");
    tags_expect(f->c, s, "c", 0, "e=");
    tags_expect(f->c, s, "e", 0, "");
    tags_expect(f->c, other, NULL, 0, "a=video");

    int calls = 0;
    assert_int_equal(tr_catalog_tag_list(f->c, s, NULL, 0, stop_at_first, &calls), TR_OK);
    assert_int_equal(calls, 1);

    /* Removing a key that is not there is not an error (RemoveTagsFromStream). */
    assert_int_equal(tr_catalog_tag_remove(f->c, s, "b"), TR_OK);
    assert_int_equal(tr_catalog_tag_remove(f->c, s, "zz"), TR_OK);
    assert_int_equal(tr_catalog_tag_count(f->c, s), 3);
    tags_expect(f->c, s, NULL, 0, "a=1,c=3,e=");
    tags_expect(f->c, other, NULL, 0, "a=video");

    /* A stream that does not exist has no tags and takes none. */
    assert_int_equal(tr_catalog_tag_set(f->c, s + 1000, "k", "v"), TR_ENOENT);
    assert_int_equal(tr_catalog_tag_count(f->c, s + 1000), 0);
}

static void cascade_delete(void **state) {
    fixture *f = *state;
    int64_t s = create(f->c, "data", "s");
    int64_t keep = create(f->c, "data", "keep");
    add_shard(f->c, s, 0);
    add_shard(f->c, s, 1);
    add_shard(f->c, keep, 0);
    assert_int_equal(tr_catalog_tag_set(f->c, s, "k", "v"), TR_OK);
    assert_int_equal(tr_catalog_tag_set(f->c, keep, "k", "v"), TR_OK);
    assert_int_equal(tr_catalog_stream_delete(f->c, s), TR_OK);
    assert_int_equal(shard_count(f->c, s), 0);
    assert_int_equal(tr_catalog_tag_count(f->c, s), 0);
    assert_int_equal(shard_count(f->c, keep), 1);
    assert_int_equal(tr_catalog_tag_count(f->c, keep), 1);

    /* Nothing of it is left in the file either. */
    reopen(f);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT (SELECT count(*) FROM shards WHERE stream_id = ?1)"
                                        " + (SELECT count(*) FROM tags WHERE stream_id = ?1)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(st, 1, s);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* ---- transactions ---- */

typedef struct {
    int fail_with;  /* returned at the end when non-zero */
    int inner_dup;  /* create a duplicate stream midway (fails with TR_EEXIST) */
    int64_t stream_id;
} txn_ctx;

static int write_many(tr_catalog *c, void *arg) {
    txn_ctx *t = arg;
    tr_stream_meta m = stream_of("data", "in-txn", NULL);
    int rc = tr_catalog_stream_create(c, &m);
    if (rc != TR_OK) return rc;
    t->stream_id = m.id;
    tr_shard_meta sh = shard_of(m.id, 0);
    if ((rc = tr_catalog_shard_add(c, &sh)) != TR_OK) return rc;
    if ((rc = tr_catalog_tag_set(c, m.id, "k", "v")) != TR_OK) return rc;
    if ((rc = tr_catalog_stream_update(c, &m)) != TR_OK) return rc;
    if (t->inner_dup) {
        tr_stream_meta dup = stream_of("data", "in-txn", NULL);
        rc = tr_catalog_stream_create(c, &dup);
        if (rc != TR_EEXIST) return TR_EIO; /* the test checks this never happens */
        return rc;
    }
    return t->fail_with;
}

static void txn_rollback(void **state) {
    fixture *f = *state;
    int64_t before = create(f->c, "data", "before");

    /* fn fails at the end: none of its stream, shard, tag or update is kept. */
    txn_ctx t = {.fail_with = TR_EINVAL};
    assert_int_equal(tr_catalog_txn(f->c, write_many, &t), TR_EINVAL);
    assert_true(t.stream_id > 0);
    assert_false(exists(f->c, "data", "in-txn"));
    assert_int_equal(shard_count(f->c, t.stream_id), 0);
    assert_int_equal(tr_catalog_tag_count(f->c, t.stream_id), 0);
    list_expect(f->c, "data", NULL, 0, "before");

    /* An inner call fails (duplicate) and fn passes the error on: same. */
    t = (txn_ctx){.inner_dup = 1};
    assert_int_equal(tr_catalog_txn(f->c, write_many, &t), TR_EEXIST);
    assert_false(exists(f->c, "data", "in-txn"));
    assert_int_equal(shard_count(f->c, t.stream_id), 0);

    /* The connection is left with no transaction open: later writes are durable. */
    t = (txn_ctx){0};
    assert_int_equal(tr_catalog_txn(f->c, write_many, &t), TR_OK);
    reopen(f);
    tr_stream_meta m;
    assert_int_equal(tr_catalog_stream_get(f->c, "data", "in-txn", &m), TR_OK);
    assert_int_equal(m.version, 2);
    tr_stream_meta_clear(&m);
    assert_int_equal(shard_count(f->c, t.stream_id), 1);
    assert_int_equal(tr_catalog_tag_count(f->c, t.stream_id), 1);
    assert_true(exists(f->c, "data", "before"));
    assert_int_equal(shard_count(f->c, before), 0);
}

typedef struct {
    int inner_fails;
    int outer_fails;
    int inner_rc;
} nest_ctx;

static int inner_fn(tr_catalog *c, void *arg) {
    nest_ctx *n = arg;
    create(c, "data", "inner");
    return n->inner_fails ? TR_EINVAL : TR_OK;
}

static int outer_fn(tr_catalog *c, void *arg) {
    nest_ctx *n = arg;
    create(c, "data", "outer-1");
    n->inner_rc = tr_catalog_txn(c, inner_fn, n);
    /* A failed single call inside the transaction undoes only itself. */
    tr_stream_meta dup = stream_of("data", "outer-1", NULL);
    assert_int_equal(tr_catalog_stream_create(c, &dup), TR_EEXIST);
    create(c, "data", "outer-2");
    return n->outer_fails ? TR_EIO : TR_OK;
}

static void txn_nested(void **state) {
    fixture *f = *state;
    /* The inner transaction fails, the outer goes on and commits: only the inner's writes
     * are gone. */
    nest_ctx n = {.inner_fails = 1};
    assert_int_equal(tr_catalog_txn(f->c, outer_fn, &n), TR_OK);
    assert_int_equal(n.inner_rc, TR_EINVAL);
    list_expect(f->c, "data", NULL, 0, "outer-1,outer-2");

    /* Both succeed: everything is kept, and durable. */
    int64_t ids[3];
    tr_stream_meta m;
    const char *names[] = {"outer-1", "outer-2"};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(tr_catalog_stream_get(f->c, "data", names[i], &m), TR_OK);
        ids[i] = m.id;
    }
    for (int i = 0; i < 2; i++) assert_int_equal(tr_catalog_stream_delete(f->c, ids[i]), TR_OK);
    n = (nest_ctx){0};
    assert_int_equal(tr_catalog_txn(f->c, outer_fn, &n), TR_OK);
    assert_int_equal(n.inner_rc, TR_OK);
    reopen(f);
    list_expect(f->c, "data", NULL, 0, "inner,outer-1,outer-2");
    assert_int_equal(tr_catalog_stream_get(f->c, "data", "inner", &m), TR_OK);
    ids[2] = m.id;
    assert_int_equal(tr_catalog_stream_delete(f->c, ids[2]), TR_OK);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(tr_catalog_stream_get(f->c, "data", names[i], &m), TR_OK);
        assert_int_equal(tr_catalog_stream_delete(f->c, m.id), TR_OK);
    }

    /* The inner succeeds but the outer fails: the inner's writes go with it. */
    n = (nest_ctx){.outer_fails = 1};
    assert_int_equal(tr_catalog_txn(f->c, outer_fn, &n), TR_EIO);
    assert_int_equal(n.inner_rc, TR_OK);
    list_expect(f->c, "data", NULL, 0, "");
    reopen(f);
    list_expect(f->c, "data", NULL, 0, "");
}

/* ---- the file ---- */

static void reopen_keeps_data(void **state) {
    fixture *f = *state;
    tr_stream_meta m = stream_of("video", "cam", "{\"MediaType\":\"video/h264\"}");
    assert_int_equal(tr_catalog_stream_create(f->c, &m), TR_OK);
    assert_int_equal(tr_catalog_stream_update(f->c, &m), TR_OK);
    int64_t u = add_shard(f->c, m.id, 0);
    assert_int_equal(tr_catalog_shard_close(f->c, u, 99), TR_OK);
    assert_int_equal(tr_catalog_tag_set(f->c, m.id, "team", "ops"), TR_OK);
    reopen(f);
    reopen(f); /* an open of a current schema changes nothing */
    tr_stream_meta got;
    assert_int_equal(tr_catalog_stream_get(f->c, "video", "cam", &got), TR_OK);
    assert_int_equal(got.id, m.id);
    assert_int_equal(got.version, 2);
    assert_string_equal(got.attrs_json, "{\"MediaType\":\"video/h264\"}");
    tr_stream_meta_clear(&got);
    tr_shard_meta *v;
    size_t n;
    assert_int_equal(tr_catalog_shard_list(f->c, m.id, &v, &n), TR_OK);
    assert_int_equal(n, 1);
    assert_int_equal(v[0].uid, u);
    assert_int_equal(v[0].closed, 1);
    assert_int_equal(v[0].ending_seq, 99);
    free(v);
    tags_expect(f->c, m.id, NULL, 0, "team=ops");
    tr_stream_meta_clear(&m);
}

static int user_version(const char *path) {
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void newer_schema_refused(void **state) {
    fixture *f = *state;
    create(f->c, "data", "s");
    tr_catalog_close(f->c);
    f->c = NULL;
    assert_int_equal(user_version(f->path), 1);

    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 7", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    char err[256] = "";
    assert_null(tr_catalog_open(f->path, err, sizeof err));
    assert_non_null(strstr(err, "newer"));
    assert_non_null(strstr(err, "7"));
    /* Left as it was, for the newer tributary. */
    assert_int_equal(user_version(f->path), 7);

    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 1", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    f->c = open_ok(f->path);
    assert_true(exists(f->c, "data", "s"));
}

static void not_a_database(void **state) {
    fixture *f = *state;
    char path[600];
    snprintf(path, sizeof path, "%s/garbage.db", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    for (int i = 0; i < 512; i++) fputs("not sqlite ", fp);
    fclose(fp);
    char err[256] = "";
    assert_null(tr_catalog_open(path, err, sizeof err));
    assert_true(err[0] != '\0');
    snprintf(path, sizeof path, "%s/no/such/dir/catalog.db", f->dir);
    err[0] = '\0';
    assert_null(tr_catalog_open(path, err, sizeof err));
    assert_true(err[0] != '\0');
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(streams_of_two_kinds, setup, teardown),
        cmocka_unit_test_setup_teardown(stream_listing, setup, teardown),
        cmocka_unit_test_setup_teardown(shards, setup, teardown),
        cmocka_unit_test_setup_teardown(tags, setup, teardown),
        cmocka_unit_test_setup_teardown(cascade_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(txn_rollback, setup, teardown),
        cmocka_unit_test_setup_teardown(txn_nested, setup, teardown),
        cmocka_unit_test_setup_teardown(reopen_keeps_data, setup, teardown),
        cmocka_unit_test_setup_teardown(newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(not_a_database, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
