/* The store: storage threads, group commit from concurrent writers, callbacks in order,
 * closing and dropping shards, retention, and shutdown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/store.h"
#include "tmpdir.h"
#include "util/error.h"

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    int status;
    uint64_t first_seq;
} waiter;

static void waiter_init(waiter *w) {
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->done = 0;
}

static void on_done(void *ctx, int status, uint64_t first_seq, int64_t arrival_ms) {
    (void)arrival_ms;
    waiter *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->status = status;
    w->first_seq = first_seq;
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void waiter_wait(waiter *w) {
    pthread_mutex_lock(&w->mu);
    while (!w->done) pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

/* Appends synchronously; returns the status and sets *first. */
static int append_sync(tr_store *st, tr_shard *s, const tr_record_in *recs, size_t n, uint64_t *first) {
    waiter w;
    waiter_init(&w);
    int rc = tr_store_append(st, s, recs, n, on_done, &w);
    if (rc != TR_OK) return rc;
    waiter_wait(&w);
    *first = w.first_seq;
    return w.status;
}

typedef struct {
    tr_store *st;
    tr_shard *s;
    int id;
    int batches;
    uint64_t *seqs; /* first seq of each batch */
} writer_arg;

static void *writer_main(void *arg) {
    writer_arg *a = arg;
    uint32_t payload[10];
    tr_record_in recs[10];
    for (int b = 0; b < a->batches; b++) {
        for (int i = 0; i < 10; i++) {
            payload[i] = (uint32_t)(a->id << 20 | b << 4 | i);
            recs[i] = (tr_record_in){.producer_ms = TR_NO_TIME, .pkey = "k", .pkey_len = 1,
                                     .data = &payload[i], .data_len = 4};
        }
        uint64_t first = 0;
        assert_int_equal(append_sync(a->st, a->s, recs, 10, &first), TR_OK);
        a->seqs[b] = first;
    }
    return NULL;
}

static void concurrent_writers(void **state) {
    (void)state;
    char dir[256];
    assert_non_null(tmpdir_make(dir, sizeof dir));
    tr_store_config cfg;
    tr_store_config_defaults(&cfg);
    cfg.dir = dir;
    cfg.storage_threads = 2;
    tr_store *st;
    assert_int_equal(tr_store_open(&cfg, &st), TR_OK);
    tr_shard *s;
    assert_int_equal(tr_store_shard(st, 7, "stream=\"t\"", 1, &s), TR_OK);
    enum { W = 16, B = 50 };
    pthread_t th[W];
    writer_arg args[W];
    for (int i = 0; i < W; i++) {
        args[i] = (writer_arg){st, s, i, B, calloc(B, sizeof(uint64_t))};
        pthread_create(&th[i], NULL, writer_main, &args[i]);
    }
    for (int i = 0; i < W; i++) pthread_join(th[i], NULL);
    /* Every acknowledged batch is readable, whole and contiguous, with its own payload. */
    tr_read_batch b;
    tr_read_batch_init(&b);
    for (int i = 0; i < W; i++) {
        for (int k = 0; k < B; k++) {
            assert_int_equal(tr_shard_read(s, args[i].seqs[k], 10, 1 << 20, &b), TR_OK);
            assert_int_equal(b.count, 10);
            for (int r = 0; r < 10; r++) {
                uint32_t v;
                memcpy(&v, b.records[r].data, 4);
                assert_int_equal(v, (uint32_t)(i << 20 | k << 4 | r));
                assert_int_equal(b.records[r].seq, args[i].seqs[k] + (uint64_t)r);
            }
        }
        free(args[i].seqs);
    }
    tr_shard_info info;
    tr_shard_get_info(s, &info);
    assert_int_equal(info.records, W * B * 10);
    tr_read_batch_free(&b);
    tr_store_close(st);
    /* Reopen: all of it is still there. */
    assert_int_equal(tr_store_open(&cfg, &st), TR_OK);
    assert_int_equal(tr_store_shard(st, 7, "", 0, &s), TR_OK);
    tr_shard_get_info(s, &info);
    assert_int_equal(info.records, W * B * 10);
    assert_int_equal(tr_store_shard(st, 8, "", 0, &s), TR_ENOENT);
    tr_store_close(st);
    tmpdir_remove(dir);
}

static atomic_int hook_calls;
static void hook(void *ctx, tr_shard *s) {
    (void)ctx, (void)s;
    atomic_fetch_add(&hook_calls, 1);
}

static void close_drop_and_errors(void **state) {
    (void)state;
    char dir[256], path[512];
    assert_non_null(tmpdir_make(dir, sizeof dir));
    tr_store_config cfg;
    tr_store_config_defaults(&cfg);
    cfg.dir = dir;
    tr_store *st;
    assert_int_equal(tr_store_open(&cfg, &st), TR_OK);
    assert_true(tr_store_healthy(st));
    tr_store_set_commit_hook(st, hook, NULL);
    tr_shard *s;
    assert_int_equal(tr_store_shard(st, 1, "", 1, &s), TR_OK);
    tr_record_in rec = {.producer_ms = TR_NO_TIME, .data = "abc", .data_len = 3};
    uint64_t first;
    assert_int_equal(append_sync(st, s, &rec, 1, &first), TR_OK);
    assert_int_equal(first, 1);
    assert_true(atomic_load(&hook_calls) >= 1);
    /* Too big and empty requests are refused up front. */
    rec.data_len = TR_MAX_RECORD_BYTES + 1;
    assert_int_equal(tr_store_append(st, s, &rec, 1, on_done, NULL), TR_ETOOBIG);
    assert_int_equal(tr_store_append(st, s, &rec, 0, on_done, NULL), TR_EINVAL);
    rec.data_len = 3;
    /* Closing lands after queued appends and reports the ending sequence number. */
    waiter w;
    waiter_init(&w);
    assert_int_equal(tr_store_close_shard(st, s, on_done, &w), TR_OK);
    waiter_wait(&w);
    assert_int_equal(w.status, TR_OK);
    assert_int_equal(w.first_seq, 1);
    assert_int_equal(append_sync(st, s, &rec, 1, &first), TR_ECLOSED);
    /* Dropping removes the files. */
    snprintf(path, sizeof path, "%s/shards/1", dir);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(tr_store_drop_shard(st, 1), TR_OK);
    tr_store_close(st); /* finishes the queued drop */
    assert_int_equal(stat(path, &sb), -1);
    tmpdir_remove(dir);
}

static void retention_runs(void **state) {
    (void)state;
    char dir[256];
    assert_non_null(tmpdir_make(dir, sizeof dir));
    tr_store_config cfg;
    tr_store_config_defaults(&cfg);
    cfg.dir = dir;
    cfg.trim_interval_ms = 20;
    tr_store *st;
    assert_int_equal(tr_store_open(&cfg, &st), TR_OK);
    tr_shard *s;
    assert_int_equal(tr_store_shard(st, 3, "", 1, &s), TR_OK);
    tr_record_in rec = {.producer_ms = TR_NO_TIME, .data = "abc", .data_len = 3};
    uint64_t first;
    for (int i = 0; i < 5; i++) assert_int_equal(append_sync(st, s, &rec, 1, &first), TR_OK);
    tr_store_set_retention(st, s, 1); /* 1 ms: everything is old at once */
    tr_shard_info info;
    for (int i = 0; i < 200; i++) {
        tr_shard_get_info(s, &info);
        if (info.records == 0) break;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(info.records, 0);
    assert_int_equal(append_sync(st, s, &rec, 1, &first), TR_OK);
    assert_int_equal(first, 6);
    tr_store_close(st);
    tmpdir_remove(dir);
}

static void interval_mode(void **state) {
    (void)state;
    char dir[256];
    assert_non_null(tmpdir_make(dir, sizeof dir));
    tr_store_config cfg;
    tr_store_config_defaults(&cfg);
    cfg.dir = dir;
    cfg.fsync_mode = TR_FSYNC_INTERVAL;
    cfg.fsync_interval_ms = 10;
    tr_store *st;
    assert_int_equal(tr_store_open(&cfg, &st), TR_OK);
    tr_shard *s;
    assert_int_equal(tr_store_shard(st, 1, "", 1, &s), TR_OK);
    tr_record_in rec = {.producer_ms = TR_NO_TIME, .data = "abc", .data_len = 3};
    uint64_t first;
    for (int i = 0; i < 100; i++) assert_int_equal(append_sync(st, s, &rec, 1, &first), TR_OK);
    tr_store_close(st);
    assert_int_equal(tr_store_open(&cfg, &st), TR_OK);
    assert_int_equal(tr_store_shard(st, 1, "", 0, &s), TR_OK);
    tr_shard_info info;
    tr_shard_get_info(s, &info);
    assert_int_equal(info.records, 100);
    tr_store_close(st);
    tmpdir_remove(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(concurrent_writers),
        cmocka_unit_test(close_drop_and_errors),
        cmocka_unit_test(retention_runs),
        cmocka_unit_test(interval_mode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
