/* The video stream registry: create with its one shard, lookups by name and ARN, CREATING and
 * UPDATING transitions, versions and VersionMismatch, retention bounds and the shard's
 * retention, listing with after/prefix/limit, tags and their limit, reopening (streams,
 * attributes, tags and records survive), and delete dropping the shard's files only when
 * the last snapshot goes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/catalog.h"
#include "core/store.h"
#include "tmpdir.h"
#include "util/error.h"
#include "video/streams.h"

typedef struct {
    char dir[256];
    tr_catalog *cat;
    tr_store *st;
    tr_video *v;
    int64_t transition_ms;
} fixture;

static void open_all(fixture *f) {
    char path[512], err[256] = "";
    snprintf(path, sizeof path, "%s/catalog.db", f->dir);
    f->cat = tr_catalog_open(path, err, sizeof err);
    if (f->cat == NULL) fail_msg("tr_catalog_open: %s", err);
    tr_store_config scfg;
    tr_store_config_defaults(&scfg);
    scfg.dir = f->dir;
    assert_int_equal(tr_store_open(&scfg, &f->st), TR_OK);
    tr_video_config vcfg = {.transition_ms = f->transition_ms};
    assert_int_equal(tr_video_open(f->cat, f->st, &vcfg, &f->v), TR_OK);
}

static void close_all(fixture *f) {
    tr_video_close(f->v);
    tr_store_close(f->st);
    tr_catalog_close(f->cat);
    f->v = NULL;
    f->st = NULL;
    f->cat = NULL;
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_non_null(tmpdir_make(f->dir, sizeof f->dir));
    open_all(f);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    if (f->v != NULL) close_all(f);
    tmpdir_remove(f->dir);
    free(f);
    return 0;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static tr_video_stream *create_ok(fixture *f, const char *name, int hours) {
    tr_video_spec spec = {.name = name, .retention_hours = hours};
    tr_video_stream *s = NULL;
    tr_video_err err = {0};
    if (tr_video_create(f->v, &spec, &s, &err) != 0) fail_msg("create %s: %s", name, err.message);
    assert_non_null(s);
    return s;
}

static int shard_dir_exists(fixture *f, int64_t uid) {
    char path[512];
    struct stat sb;
    snprintf(path, sizeof path, "%s/shards/%lld", f->dir, (long long)uid);
    return stat(path, &sb) == 0;
}

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, status;
} waiter;

static void on_appended(void *ctx, int status, uint64_t first_seq, int64_t arrival_ms) {
    (void)first_seq, (void)arrival_ms;
    waiter *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->status = status;
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static int append_fragment(fixture *f, tr_shard *log, const char *payload) {
    waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    tr_record_in rec = {.producer_ms = 1000, .flags = TR_KIND_FRAGMENT, .data = payload,
                        .data_len = (uint32_t)strlen(payload)};
    int rc = tr_store_append(f->st, log, &rec, 1, on_appended, &w);
    if (rc != TR_OK) return rc;
    pthread_mutex_lock(&w.mu);
    while (!w.done) pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    return w.status;
}

static void create_and_get(void **state) {
    fixture *f = *state;
    const char *keys[] = {"owner", "site"}, *values[] = {"ops", ""};
    tr_video_spec spec = {.name = "cam-1.front_door", .device_name = "pi4", .media_type = "video/h264",
                          .retention_hours = 24, .tag_keys = keys, .tag_values = values,
                          .ntags = 2};
    tr_video_stream *s = NULL;
    tr_video_err err;
    int64_t before = now_ms();
    assert_int_equal(tr_video_create(f->v, &spec, &s, &err), 0);
    assert_string_equal(s->name, "cam-1.front_door");
    assert_string_equal(s->device_name, "pi4");
    assert_string_equal(s->media_type, "video/h264");
    assert_string_equal(s->storage_tier, "HOT");
    assert_string_equal(s->kms_key_id, "arn:aws:kms:us-east-1:000000000000:alias/aws/kinesisvideo");
    assert_int_equal(s->retention_hours, 24);
    assert_int_equal(s->version, 1);
    assert_true(s->created_ms >= before && s->created_ms <= now_ms());
    char arn[512];
    snprintf(arn, sizeof arn, "arn:aws:kinesisvideo:us-east-1:000000000000:stream/cam-1.front_door/%lld",
             (long long)s->created_ms);
    assert_string_equal(s->arn, arn);
    assert_non_null(s->log);
    assert_true(shard_dir_exists(f, s->shard_uid));
    assert_string_equal(tr_video_status(s, now_ms()), "ACTIVE"); /* transition_ms = 0 */

    /* By name, by ARN, by both; a stale or malformed ARN is not found. */
    tr_video_stream *g = tr_video_get(f->v, "cam-1.front_door", NULL, &err);
    assert_ptr_equal(g, s);
    tr_video_put(g);
    g = tr_video_get(f->v, NULL, arn, &err);
    assert_ptr_equal(g, s);
    tr_video_put(g);
    g = tr_video_get(f->v, "cam-1.front_door", arn, &err);
    assert_ptr_equal(g, s);
    tr_video_put(g);
    assert_null(tr_video_get(f->v, NULL, "arn:aws:kinesisvideo:us-east-1:000000000000:stream/cam-1.front_door/1", &err));
    assert_string_equal(err.type, "ResourceNotFoundException");
    assert_null(tr_video_get(f->v, NULL, "arn:nonsense", &err));
    assert_string_equal(err.type, "ResourceNotFoundException");
    assert_null(tr_video_get(f->v, "other", NULL, &err));
    assert_string_equal(err.type, "ResourceNotFoundException");
    assert_null(tr_video_get(f->v, NULL, NULL, &err));
    assert_string_equal(err.type, "InvalidArgumentException");
    g = tr_video_get_by_id(f->v, s->id);
    assert_ptr_equal(g, s);
    tr_video_put(g);

    /* The name is taken. */
    tr_video_spec again = {.name = "cam-1.front_door"};
    tr_video_stream *dup = NULL;
    assert_int_equal(tr_video_create(f->v, &again, &dup, &err), -1);
    assert_null(dup);
    assert_string_equal(err.type, "ResourceInUseException");

    /* Out-of-range retention and too many tags are refused before anything is stored. */
    tr_video_spec bad = {.name = "x", .retention_hours = TR_VIDEO_MAX_RETENTION_HOURS + 1};
    assert_int_equal(tr_video_create(f->v, &bad, NULL, &err), -1);
    assert_string_equal(err.type, "InvalidArgumentException");
    bad.retention_hours = 0;
    bad.ntags = TR_VIDEO_MAX_TAGS + 1;
    assert_int_equal(tr_video_create(f->v, &bad, NULL, &err), -1);
    assert_string_equal(err.type, "TagsPerResourceExceededLimitException");
    assert_null(tr_video_get(f->v, "x", NULL, &err));
    tr_video_put(s);
}

static void transitions_and_versions(void **state) {
    fixture *f = *state;
    close_all(f);
    f->transition_ms = 200;
    open_all(f);
    tr_video_stream *s = create_ok(f, "cam", 0);
    tr_video_err err;
    assert_string_equal(tr_video_status(s, now_ms()), "CREATING");
    assert_string_equal(tr_video_status(s, s->created_ms + 200), "ACTIVE");
    /* Updates need ACTIVE. */
    assert_int_equal(tr_video_update(f->v, "cam", NULL, "1", "dev", NULL, &err), -1);
    assert_string_equal(err.type, "ResourceInUseException");
    sleep_ms(250);

    assert_int_equal(tr_video_update(f->v, "cam", NULL, "7", "dev", NULL, &err), -1);
    assert_string_equal(err.type, "VersionMismatchException");
    assert_int_equal(tr_video_update(f->v, "cam", NULL, "1", "dev", "video/h265", &err), 0);
    tr_video_stream *u = tr_video_get(f->v, "cam", NULL, &err);
    assert_int_equal(u->version, 2);
    assert_string_equal(u->device_name, "dev");
    assert_string_equal(u->media_type, "video/h265");
    assert_string_equal(tr_video_status(u, now_ms()), "UPDATING");
    /* The old snapshot is unchanged. */
    assert_int_equal(s->version, 1);
    assert_string_equal(s->device_name, "");
    assert_ptr_equal(u->log, s->log);
    tr_video_put(u);
    sleep_ms(250);

    /* No version given: no check. Only the given members change. */
    assert_int_equal(tr_video_update(f->v, "cam", NULL, NULL, NULL, "audio/aac", &err), 0);
    u = tr_video_get(f->v, "cam", NULL, &err);
    assert_int_equal(u->version, 3);
    assert_string_equal(u->device_name, "dev");
    assert_string_equal(u->media_type, "audio/aac");
    tr_video_put(u);

    /* Delete with a stale version fails and keeps the stream. */
    assert_int_equal(tr_video_delete(f->v, "cam", NULL, "2", &err), -1);
    assert_string_equal(err.type, "VersionMismatchException");
    u = tr_video_get(f->v, "cam", NULL, &err);
    assert_non_null(u);
    tr_video_put(u);
    assert_int_equal(tr_video_delete(f->v, NULL, s->arn, "3", &err), 0);
    assert_null(tr_video_get(f->v, "cam", NULL, &err));
    tr_video_put(s);
}

static void retention(void **state) {
    fixture *f = *state;
    tr_video_stream *s = create_ok(f, "r", 0);
    tr_video_err err;
    assert_int_equal(tr_video_retention_ms(0), TR_VIDEO_LIVE_BUFFER_MS);
    assert_int_equal(tr_video_retention_ms(2), 2 * 3600000);
    assert_int_equal(tr_video_update_retention(f->v, "r", NULL, "1", 0, 1, &err), -1);
    assert_string_equal(err.type, "InvalidArgumentException"); /* below 0 */
    assert_int_equal(tr_video_update_retention(f->v, "r", NULL, "1", 1, TR_VIDEO_MAX_RETENTION_HOURS + 1, &err), -1);
    assert_string_equal(err.type, "InvalidArgumentException");
    assert_int_equal(tr_video_update_retention(f->v, "r", NULL, "9", 1, 5, &err), -1);
    assert_string_equal(err.type, "VersionMismatchException");
    assert_int_equal(tr_video_update_retention(f->v, "r", NULL, "1", 1, 5, &err), 0);
    assert_int_equal(tr_video_update_retention(f->v, "r", NULL, "2", 0, 3, &err), 0);
    tr_video_stream *u = tr_video_get(f->v, "r", NULL, &err);
    assert_int_equal(u->retention_hours, 2);
    assert_int_equal(u->version, 3);
    tr_video_put(u);
    assert_int_equal(tr_video_update_retention(f->v, "r", NULL, "3", 0, 2, &err), 0);
    assert_int_equal(tr_video_update_retention(f->v, "r", NULL, "4", 1, TR_VIDEO_MAX_RETENTION_HOURS, &err), 0);
    assert_int_equal(tr_video_update_retention(f->v, "r", NULL, "5", 1, 1, &err), -1);
    assert_int_equal(tr_video_update_retention(f->v, "missing", NULL, "1", 1, 1, &err), -1);
    assert_string_equal(err.type, "ResourceNotFoundException");
    tr_video_put(s);
}

typedef struct {
    char names[16][32];
    int n;
    int stop_after;
} names_acc;

static int collect(void *ctx, const tr_video_stream *s) {
    names_acc *a = ctx;
    snprintf(a->names[a->n++], sizeof a->names[0], "%.31s", s->name);
    return a->stop_after > 0 && a->n == a->stop_after;
}

static void listing(void **state) {
    fixture *f = *state;
    const char *names[] = {"door-b", "yard", "door-a", "garage", "door-c"};
    for (int i = 0; i < 5; i++) tr_video_put(create_ok(f, names[i], 1));
    names_acc a = {.n = 0};
    assert_int_equal(tr_video_list(f->v, NULL, NULL, 0, collect, &a), 5);
    assert_string_equal(a.names[0], "door-a");
    assert_string_equal(a.names[2], "door-c");
    assert_string_equal(a.names[4], "yard");
    a.n = 0;
    assert_int_equal(tr_video_list(f->v, "door-a", "door-", 0, collect, &a), 2);
    assert_string_equal(a.names[0], "door-b");
    assert_string_equal(a.names[1], "door-c");
    a.n = 0;
    assert_int_equal(tr_video_list(f->v, NULL, NULL, 2, collect, &a), 2);
    assert_string_equal(a.names[1], "door-b");
    a = (names_acc){.stop_after = 1};
    assert_int_equal(tr_video_list(f->v, "door-c", NULL, 0, collect, &a), 1);
    assert_string_equal(a.names[0], "garage");
    a = (names_acc){.n = 0};
    assert_int_equal(tr_video_list(f->v, NULL, "zzz", 0, collect, &a), 0);
}

typedef struct {
    char keys[64][16];
    char values[64][16];
    int n;
} tags_acc;

static int tag_collect(void *ctx, const char *key, const char *value) {
    tags_acc *t = ctx;
    snprintf(t->keys[t->n], sizeof t->keys[0], "%s", key);
    snprintf(t->values[t->n++], sizeof t->values[0], "%s", value);
    return 0;
}

static void tags(void **state) {
    fixture *f = *state;
    tr_video_stream *s = create_ok(f, "t", 1);
    tr_video_err err;
    char kbuf[60][8], vbuf[60][8];
    const char *keys[60], *values[60];
    for (int i = 0; i < 60; i++) {
        snprintf(kbuf[i], sizeof kbuf[i], "k%02d", i);
        snprintf(vbuf[i], sizeof vbuf[i], "v%d", i);
        keys[i] = kbuf[i];
        values[i] = vbuf[i];
    }
    assert_int_equal(tr_video_tag(f->v, s, keys, values, 40, &err), 0);
    /* 40 + 11 new > 50: nothing of this call is kept. */
    assert_int_equal(tr_video_tag(f->v, s, keys + 39, values + 39, 12, &err), -1);
    assert_string_equal(err.type, "TagsPerResourceExceededLimitException");
    tags_acc t = {.n = 0};
    assert_int_equal(tr_video_tags(f->v, s, tag_collect, &t, &err), 0);
    assert_int_equal(t.n, 40);
    /* Overwriting existing keys does not count twice; 50 in all is fine. */
    values[0] = "new";
    assert_int_equal(tr_video_tag(f->v, s, keys, values, 50, &err), 0);
    t.n = 0;
    assert_int_equal(tr_video_tags(f->v, s, tag_collect, &t, &err), 0);
    assert_int_equal(t.n, 50);
    assert_string_equal(t.keys[0], "k00");
    assert_string_equal(t.values[0], "new");
    const char *gone[] = {"k00", "k01", "absent"};
    assert_int_equal(tr_video_untag(f->v, s, gone, 3, &err), 0);
    t.n = 0;
    assert_int_equal(tr_video_tags(f->v, s, tag_collect, &t, &err), 0);
    assert_int_equal(t.n, 48);
    assert_string_equal(t.keys[0], "k02");
    /* Tags do not change the version. */
    tr_video_stream *g = tr_video_get(f->v, "t", NULL, &err);
    assert_int_equal(g->version, 1);
    tr_video_put(g);
    /* A deleted stream's tags are gone with it. */
    assert_int_equal(tr_video_delete(f->v, "t", NULL, NULL, &err), 0);
    assert_int_equal(tr_video_tag(f->v, s, keys, values, 1, &err), -1);
    assert_string_equal(err.type, "ResourceNotFoundException");
    tr_video_put(s);
}

static void reopen_keeps_everything(void **state) {
    fixture *f = *state;
    const char *keys[] = {"a"}, *values[] = {"1"};
    tr_video_spec spec = {.name = "keep", .device_name = "d", .media_type = "video/h264,audio/aac",
                          .kms_key_id = "my-key", .storage_tier = "WARM", .retention_hours = 48,
                          .tag_keys = keys, .tag_values = values, .ntags = 1};
    tr_video_stream *s = NULL;
    tr_video_err err;
    assert_int_equal(tr_video_create(f->v, &spec, &s, &err), 0);
    assert_int_equal(append_fragment(f, s->log, "fragment-1"), TR_OK);
    assert_int_equal(append_fragment(f, s->log, "fragment-2"), TR_OK);
    assert_int_equal(tr_video_update(f->v, "keep", NULL, "1", NULL, "video/h265", &err), 0);
    char arn[512];
    snprintf(arn, sizeof arn, "%s", s->arn);
    int64_t uid = s->shard_uid, created = s->created_ms;
    tr_video_put(s);

    close_all(f);
    open_all(f);
    s = tr_video_get(f->v, NULL, arn, &err);
    assert_non_null(s);
    assert_int_equal(s->created_ms, created);
    assert_int_equal(s->shard_uid, uid);
    assert_int_equal(s->version, 2);
    assert_int_equal(s->retention_hours, 48);
    assert_string_equal(s->device_name, "d");
    assert_string_equal(s->media_type, "video/h265");
    assert_string_equal(s->kms_key_id, "my-key");
    assert_string_equal(s->storage_tier, "WARM");
    assert_string_equal(tr_video_status(s, now_ms()), "ACTIVE");
    tr_read_batch b;
    tr_read_batch_init(&b);
    assert_int_equal(tr_shard_read(s->log, 1, 10, 1 << 20, &b), TR_OK);
    assert_int_equal(b.count, 2);
    assert_int_equal(b.records[1].data_len, strlen("fragment-2"));
    assert_memory_equal(b.records[1].data, "fragment-2", strlen("fragment-2"));
    assert_int_equal(b.records[1].flags & TR_FLAG_KIND_MASK, TR_KIND_FRAGMENT);
    tr_read_batch_free(&b);
    tags_acc t = {.n = 0};
    assert_int_equal(tr_video_tags(f->v, s, tag_collect, &t, &err), 0);
    assert_int_equal(t.n, 1);
    assert_string_equal(t.keys[0], "a");
    tr_video_put(s);
}

static void delete_drops_files_after_last_snapshot(void **state) {
    fixture *f = *state;
    tr_video_stream *s = create_ok(f, "gone", 1);
    tr_video_err err;
    assert_int_equal(append_fragment(f, s->log, "x"), TR_OK);
    int64_t uid = s->shard_uid;
    assert_true(shard_dir_exists(f, uid));
    assert_int_equal(tr_video_delete(f->v, "gone", NULL, NULL, &err), 0);
    assert_null(tr_video_get(f->v, "gone", NULL, &err));
    assert_int_equal(tr_video_delete(f->v, "gone", NULL, NULL, &err), -1);
    assert_string_equal(err.type, "ResourceNotFoundException");
    /* A reader still holding a snapshot reads on. */
    assert_true(shard_dir_exists(f, uid));
    tr_read_batch b;
    tr_read_batch_init(&b);
    assert_int_equal(tr_shard_read(s->log, 1, 10, 1 << 20, &b), TR_OK);
    assert_int_equal(b.count, 1);
    tr_read_batch_free(&b);
    /* A new stream of the same name is another stream with another shard and ARN. */
    sleep_ms(2);
    tr_video_stream *again = create_ok(f, "gone", 1);
    assert_true(again->shard_uid != uid);
    assert_string_not_equal(again->arn, s->arn);
    assert_null(tr_video_get(f->v, NULL, s->arn, &err));
    tr_video_put(again);
    tr_video_put(s);
    for (int i = 0; i < 500 && shard_dir_exists(f, uid); i++) sleep_ms(10);
    assert_false(shard_dir_exists(f, uid));
    /* And it stays gone after a restart. */
    close_all(f);
    open_all(f);
    tr_video_stream *g = tr_video_get(f->v, "gone", NULL, &err);
    assert_non_null(g);
    assert_true(g->shard_uid != uid);
    tr_video_put(g);
    assert_false(shard_dir_exists(f, uid));
}

typedef struct {
    fixture *f;
    int id;
} racer_arg;

/* Readers take snapshots while the control plane swaps them. */
static void *racer(void *p) {
    racer_arg *a = p;
    tr_video_err err;
    for (int i = 0; i < 300; i++) {
        if (a->id == 0) {
            tr_video_update(a->f->v, "race", NULL, NULL, i % 2 ? "a" : "b", NULL, &err);
        } else {
            tr_video_stream *s = tr_video_get(a->f->v, "race", NULL, &err);
            assert_non_null(s);
            assert_true(strcmp(s->device_name, "a") == 0 || strcmp(s->device_name, "b") == 0 ||
                        s->device_name[0] == '\0');
            tr_video_put(s);
        }
    }
    return NULL;
}

static void concurrent_readers(void **state) {
    fixture *f = *state;
    tr_video_put(create_ok(f, "race", 1));
    pthread_t th[4];
    racer_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (racer_arg){f, i};
        assert_int_equal(pthread_create(&th[i], NULL, racer, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    tr_video_err err;
    tr_video_stream *s = tr_video_get(f->v, "race", NULL, &err);
    assert_int_equal(s->version, 301);
    tr_video_put(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(create_and_get, setup, teardown),
        cmocka_unit_test_setup_teardown(transitions_and_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(retention, setup, teardown),
        cmocka_unit_test_setup_teardown(listing, setup, teardown),
        cmocka_unit_test_setup_teardown(tags, setup, teardown),
        cmocka_unit_test_setup_teardown(reopen_keeps_everything, setup, teardown),
        cmocka_unit_test_setup_teardown(delete_drops_files_after_last_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(concurrent_readers, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
