/* Tailing reads: tr_shard_wait wakes when the storage thread commits records appended through
 * tr_store_append, times out when nothing comes, and returns when the shard is closed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/store.h"
#include "tmpdir.h"
#include "util/error.h"

/* A wakeup that works takes milliseconds; one that was missed shows as the full timeout. */
#define LONG_WAIT_MS 20000
#define WOKE_WITHIN_MS 8000
#define SETTLE_MS 150 /* time for a waiter thread to reach its wait */

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* ---- synchronous appends ---- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    int status;
    uint64_t first_seq;
} waiter;

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
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
}

static void waiter_init(waiter *w) {
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
}

/* Appends n (<= 8) records through the store and waits for the acknowledgement. Safe on
 * any thread (no cmocka assertion). */
static int try_append(tr_store *st, tr_shard *s, size_t n, uint64_t *first_seq) {
    tr_record_in recs[8];
    if (n > 8) return TR_EINVAL;
    for (size_t i = 0; i < n; i++)
        recs[i] = (tr_record_in){.producer_ms = TR_NO_TIME, .pkey = "k", .pkey_len = 1,
                                 .data = "tail", .data_len = 4};
    waiter w;
    waiter_init(&w);
    int rc = tr_store_append(st, s, recs, n, on_done, &w);
    if (rc != TR_OK) return rc;
    waiter_wait(&w);
    *first_seq = w.first_seq;
    return w.status;
}

static uint64_t append_n(tr_store *st, tr_shard *s, size_t n) {
    uint64_t first = 0;
    assert_int_equal(try_append(st, s, n, &first), TR_OK);
    return first;
}

static void close_shard(tr_store *st, tr_shard *s, uint64_t *ending_seq) {
    waiter w;
    waiter_init(&w);
    assert_int_equal(tr_store_close_shard(st, s, on_done, &w), TR_OK);
    waiter_wait(&w);
    assert_int_equal(w.status, TR_OK);
    *ending_seq = w.first_seq;
}

/* ---- a thread blocked in tr_shard_wait ---- */

typedef struct {
    pthread_t thread;
    tr_shard *s;
    uint64_t seq;
    int64_t timeout_ms;
    atomic_int returned;
    int result;
    int64_t elapsed_ms;
} tailer;

static void *tailer_main(void *arg) {
    tailer *t = arg;
    int64_t t0 = mono_ms();
    t->result = tr_shard_wait(t->s, t->seq, t->timeout_ms);
    t->elapsed_ms = mono_ms() - t0;
    atomic_store(&t->returned, 1);
    return NULL;
}

static void tailer_start(tailer *t, tr_shard *s, uint64_t seq, int64_t timeout_ms) {
    t->s = s;
    t->seq = seq;
    t->timeout_ms = timeout_ms;
    atomic_init(&t->returned, 0);
    assert_int_equal(pthread_create(&t->thread, NULL, tailer_main, t), 0);
}

/* A tailer that never returns (a lost wakeup with no timeout) cannot be failed and cleaned up
 * after: the shard it blocks on cannot be freed under it. So the program ends here. */
static void tailer_join(tailer *t) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += (LONG_WAIT_MS + 10000) / 1000;
    if (pthread_timedjoin_np(t->thread, NULL, &deadline) != 0) {
        print_error("tr_shard_wait(seq=%llu, timeout_ms=%lld) never returned\n",
                    (unsigned long long)t->seq, (long long)t->timeout_ms);
        exit(1);
    }
}

typedef struct {
    char dir[256];
    tr_store *st;
    tr_shard *s;
} fixture;

static atomic_int hook_calls, hook_saw_invisible;

/* The commit hook must fire only once the records are visible to readers. */
static void on_commit(void *ctx, tr_shard *s) {
    (void)ctx;
    tr_shard_info info;
    tr_shard_get_info(s, &info);
    if (info.last_seq == 0 || tr_shard_wait(s, info.last_seq, 0) != 1)
        atomic_store(&hook_saw_invisible, 1);
    atomic_fetch_add(&hook_calls, 1);
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_non_null(tmpdir_make(f->dir, sizeof f->dir));
    tr_store_config cfg;
    tr_store_config_defaults(&cfg);
    cfg.dir = f->dir;
    assert_int_equal(tr_store_open(&cfg, &f->st), TR_OK);
    tr_store_set_commit_hook(f->st, on_commit, NULL);
    assert_int_equal(tr_store_shard(f->st, 1, "stream=\"tail\"", 1, &f->s), TR_OK);
    atomic_store(&hook_calls, 0);
    atomic_store(&hook_saw_invisible, 0);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    tr_store_close(f->st);
    tmpdir_remove(f->dir);
    free(f);
    return 0;
}

static void wakes_on_commit(void **state) {
    fixture *f = *state;
    /* Nothing committed yet: the tailer of record 1 blocks. */
    tailer t;
    tailer_start(&t, f->s, 1, LONG_WAIT_MS);
    sleep_ms(SETTLE_MS);
    assert_int_equal(atomic_load(&t.returned), 0);
    assert_int_equal(append_n(f->st, f->s, 1), 1);
    tailer_join(&t);
    assert_int_equal(t.result, 1);
    assert_true(t.elapsed_ms < WOKE_WITHIN_MS);
    /* What woke it is readable. */
    tr_read_batch b;
    tr_read_batch_init(&b);
    assert_int_equal(tr_shard_read(f->s, 1, 10, 1 << 20, &b), TR_OK);
    assert_int_equal(b.count, 1);
    assert_memory_equal(b.records[0].data, "tail", 4);
    tr_read_batch_free(&b);

    /* Committed already: returns at once, whatever the timeout. */
    assert_int_equal(tr_shard_wait(f->s, 1, 0), 1);
    assert_int_equal(tr_shard_wait(f->s, 0, 0), 1);

    /* Several tailers of a later record: a commit that stops short of it wakes none, one
     * that reaches it wakes all. */
    enum { N = 4 };
    tailer many[N];
    for (int i = 0; i < N; i++) tailer_start(&many[i], f->s, 4, LONG_WAIT_MS);
    sleep_ms(SETTLE_MS);
    assert_int_equal(append_n(f->st, f->s, 1), 2);
    sleep_ms(SETTLE_MS);
    for (int i = 0; i < N; i++) assert_int_equal(atomic_load(&many[i].returned), 0);
    assert_int_equal(append_n(f->st, f->s, 3), 3); /* records 3..5 in one batch */
    for (int i = 0; i < N; i++) {
        tailer_join(&many[i]);
        assert_int_equal(many[i].result, 1);
        assert_true(many[i].elapsed_ms < WOKE_WITHIN_MS + SETTLE_MS);
    }
    assert_true(atomic_load(&hook_calls) >= 3);
    assert_int_equal(atomic_load(&hook_saw_invisible), 0);
}

/* Appends from another thread while the main thread tails record after record, the way a
 * consumer would: every record is seen, in order. */
typedef struct {
    tr_store *st;
    tr_shard *s;
    int count;
    int failed; /* a status other than TR_OK, or a sequence number out of order */
} producer_arg;

static void *producer_main(void *arg) {
    producer_arg *p = arg;
    uint64_t expect = 1;
    for (int i = 0; i < p->count && !p->failed; i++) {
        size_t n = 1 + (size_t)(i % 3);
        uint64_t first = 0;
        if (try_append(p->st, p->s, n, &first) != TR_OK || first != expect) p->failed = 1;
        expect += n;
        if (i % 4 == 0) sleep_ms(1);
    }
    return NULL;
}

static void follows_a_producer(void **state) {
    fixture *f = *state;
    producer_arg p = {f->st, f->s, 60, 0};
    uint64_t total = 0;
    for (int i = 0; i < p.count; i++) total += 1 + (uint64_t)(i % 3);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, producer_main, &p), 0);
    tr_read_batch b;
    tr_read_batch_init(&b);
    /* Failures are checked after the join: the producer uses the fixture. */
    uint64_t next = 1;
    int in_order = 1;
    while (next <= total && in_order) {
        if (tr_shard_wait(f->s, next, LONG_WAIT_MS) != 1 ||
            tr_shard_read(f->s, next, 1000, 1 << 20, &b) != TR_OK || b.count == 0)
            break;
        for (size_t i = 0; i < b.count; i++) in_order &= b.records[i].seq == next + i;
        next = b.next_seq;
    }
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_true(in_order);
    assert_int_equal(p.failed, 0);
    assert_int_equal(next, total + 1);
    tr_read_batch_free(&b);
}

static void times_out(void **state) {
    fixture *f = *state;
    /* Empty shard. */
    assert_int_equal(tr_shard_wait(f->s, 1, 0), 0);
    int64_t t0 = mono_ms();
    assert_int_equal(tr_shard_wait(f->s, 1, 200), 0);
    int64_t took = mono_ms() - t0;
    assert_true(took >= 190);
    assert_true(took < WOKE_WITHIN_MS);

    /* Records exist, but not the one waited for; a commit of earlier ones does not end the
     * wait early with a wrong answer. */
    append_n(f->st, f->s, 2);
    tailer t;
    tailer_start(&t, f->s, 5, 600);
    sleep_ms(SETTLE_MS);
    append_n(f->st, f->s, 1); /* record 3 */
    tailer_join(&t);
    assert_int_equal(t.result, 0);
    assert_true(t.elapsed_ms >= 590);
    assert_int_equal(tr_shard_wait(f->s, 3, 0), 1);
    assert_int_equal(tr_shard_wait(f->s, 4, 0), 0);
}

static void returns_on_close(void **state) {
    fixture *f = *state;
    append_n(f->st, f->s, 2);
    /* One tailer with no timeout, one with a long one: closing ends both, with no record. */
    tailer forever, bounded;
    tailer_start(&forever, f->s, 3, -1);
    tailer_start(&bounded, f->s, 3, LONG_WAIT_MS);
    sleep_ms(SETTLE_MS);
    assert_int_equal(atomic_load(&forever.returned), 0);
    assert_int_equal(atomic_load(&bounded.returned), 0);
    uint64_t ending;
    close_shard(f->st, f->s, &ending);
    assert_int_equal(ending, 2);
    tailer_join(&forever);
    tailer_join(&bounded);
    assert_int_equal(forever.result, 0);
    assert_int_equal(bounded.result, 0);
    assert_true(forever.elapsed_ms < WOKE_WITHIN_MS);
    assert_true(bounded.elapsed_ms < WOKE_WITHIN_MS);

    /* Once closed, waits return at once: found for records before the end, not after. */
    int64_t t0 = mono_ms();
    assert_int_equal(tr_shard_wait(f->s, 3, -1), 0);
    assert_int_equal(tr_shard_wait(f->s, 2, -1), 1);
    assert_int_equal(tr_shard_wait(f->s, 100, LONG_WAIT_MS), 0);
    assert_true(mono_ms() - t0 < WOKE_WITHIN_MS);
    tr_shard_info info;
    tr_shard_get_info(f->s, &info);
    assert_true(info.closed);
    assert_int_equal(info.ending_seq, 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(wakes_on_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(follows_a_producer, setup, teardown),
        cmocka_unit_test_setup_teardown(times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(returns_on_close, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
