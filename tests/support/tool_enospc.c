/* The program of tests/system/test_enospc.sh: the store on a disk that fills up and on one
 * whose fsyncs fail, with faults injected by libenospc_preload.so (enospc_preload.c).
 *
 *   tool_enospc run DIR      (under LD_PRELOAD) the scenario below, one "ok - "/"FAIL - " line
 *                            per check, "expect <uid> <last seq>" per shard, and a last line
 *                            "tool_enospc: N passed, M failed"; exit 1 on a failure
 *   tool_enospc verify DIR   (a restart, without the preload) reads every shard and prints
 *                            "shard <uid> last <seq>"; exit 1 if any record is out of place
 *
 * Every shard must hold exactly the records whose appends were acknowledged, in order: the
 * record with sequence number s is record s-1 of the shard (identity run 1, writer = shard
 * uid, counter s-1, payload.h), intact. An append that fails is retried later with the same
 * records, as a producer would, so a failed append that left records behind, or an
 * acknowledged one that did not store them, breaks that order and is caught.
 *
 * Shard 1 meets the full disk: appends fail with TR_ENOSPC (also when a write is cut short,
 * when a roll needs a new segment, and for every request queued together), records already
 * stored stay readable, and appends work again once there is space. Shards 2 and 3 see
 * fdatasync fail (EIO, ENOSPC): the append fails and the shard becomes read-only
 * (TR_EREADONLY) until the store is reopened. Then the store is closed and reopened, every
 * shard is checked, and each takes appends again. */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/frame.h"
#include "core/store.h"
#include "payload.h"
#include "util/error.h"
#include "util/log.h"

#define NSHARDS 3
#define MAX_RECS 8
#define SEGMENT_MAX_BYTES (64u * 1024)
#define BIG_BYTES (60u * 1024) /* one such record fills most of a segment */

typedef void (*fault_set_fn)(const char *dir, long long write_budget, int sync_errno);
static fault_set_fn fault_set;
static char fault_dir[PATH_MAX];

static int passed, failed;

static int check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int check(int ok, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf(ok ? "ok   - " : "FAIL - ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
    if (ok)
        passed++;
    else
        failed++;
    return ok;
}

static void faults_off(void) { fault_set(NULL, -1, 0); }
static void disk_full_after(long long bytes) { fault_set(fault_dir, bytes, 0); }
static void fsync_fails(int err) { fault_set(fault_dir, -1, err); }

/* ---- shards and what they must hold ---- */

typedef struct {
    uint64_t uid;
    tr_shard *s;
    uint64_t stored; /* acknowledged records: the shard's last seq */
} model;

/* One append request of records counter0.. of a shard, with its buffers and its result. */
typedef struct {
    model *m;
    size_t n;
    uint64_t counter0;
    tr_record_in recs[MAX_RECS];
    char keys[MAX_RECS][PAYLOAD_KEY_MAX];
    uint8_t *data[MAX_RECS];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, status;
    uint64_t first_seq;
} request;

static void request_init(request *r, model *m, uint64_t counter0, const uint32_t *lens,
                         size_t n) {
    memset(r, 0, sizeof *r);
    r->m = m;
    r->n = n;
    r->counter0 = counter0;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    for (size_t i = 0; i < n; i++) {
        payload_id id = {1, (uint32_t)m->uid, counter0 + i, lens[i]};
        r->data[i] = malloc(lens[i] ? lens[i] : 1);
        if (!r->data[i]) abort();
        payload_fill(r->data[i], lens[i], payload_id_seed(&id));
        r->recs[i] = (tr_record_in){.producer_ms = TR_NO_TIME, .flags = TR_KIND_DATA,
                                    .pkey = r->keys[i], .pkey_len = payload_key(r->keys[i], &id),
                                    .data = r->data[i], .data_len = lens[i]};
    }
}

static void request_deinit(request *r) {
    for (size_t i = 0; i < r->n; i++) free(r->data[i]);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
}

static void on_done(void *ctx, int status, uint64_t first_seq, int64_t arrival_ms) {
    (void)arrival_ms;
    request *r = ctx;
    pthread_mutex_lock(&r->mu);
    r->status = status;
    r->first_seq = first_seq;
    r->done = 1;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void request_wait(request *r) {
    pthread_mutex_lock(&r->mu);
    while (!r->done) pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

static void request_submit(tr_store *st, request *r) {
    int rc = tr_store_append(st, r->m->s, r->recs, r->n, on_done, r);
    if (rc != TR_OK) on_done(r, rc, 0, 0);
}

/* Applies a finished request to the model. An acknowledged request must be the shard's next
 * records at its next sequence numbers; returns 0 when it is not. */
static int request_settle(request *r) {
    if (r->status != TR_OK) return 1;
    model *m = r->m;
    if (r->counter0 != m->stored || r->first_seq != m->stored + 1) {
        check(0, "shard %" PRIu64 ": acknowledged records %" PRIu64 ".. at seq %" PRIu64
                 " but the shard's next are %" PRIu64 ".. at seq %" PRIu64,
              m->uid, r->counter0, r->first_seq, m->stored, m->stored + 1);
        return 0;
    }
    m->stored += r->n;
    return 1;
}

/* Appends records m->stored.. with the given payload lengths; returns the status. */
static int append(tr_store *st, model *m, const uint32_t *lens, size_t n) {
    request r;
    request_init(&r, m, m->stored, lens, n);
    request_submit(st, &r);
    request_wait(&r);
    request_settle(&r);
    request_deinit(&r);
    return r.status;
}

static int append_small(tr_store *st, model *m, size_t n) {
    uint32_t lens[MAX_RECS];
    for (size_t i = 0; i < n; i++) lens[i] = (uint32_t)(1 + (m->stored + i) * 37 % 300);
    return append(st, m, lens, n);
}

static int append_big(tr_store *st, model *m) {
    uint32_t len = BIG_BYTES;
    return append(st, m, &len, 1);
}

/* Reads the whole shard; 1 when it holds exactly records 0..stored-1, intact, in order. */
static int shard_intact(model *m, char *why, size_t why_len) {
    tr_shard_info info;
    tr_shard_get_info(m->s, &info);
    if (info.last_seq != m->stored || info.records != m->stored) {
        snprintf(why, why_len, "info says %" PRIu64 " records up to seq %" PRIu64
                 ", expected %" PRIu64, info.records, info.last_seq, m->stored);
        return 0;
    }
    tr_read_batch b;
    tr_read_batch_init(&b);
    uint64_t seq = 1;
    int ok = 1;
    while (ok && seq <= m->stored) {
        int rc = tr_shard_read(m->s, seq, 100, 1u << 20, &b);
        if (rc != TR_OK || b.count == 0) {
            snprintf(why, why_len, "read at seq %" PRIu64 ": %s", seq,
                     rc ? tr_strerror(rc) : "nothing");
            ok = 0;
            break;
        }
        for (size_t i = 0; ok && i < b.count; i++, seq++) {
            const tr_record *r = &b.records[i];
            payload_id id;
            const char *bad = payload_check(r->pkey, r->pkey_len, r->data, r->data_len, &id);
            if (!bad && r->seq != seq) bad = "sequence gap";
            if (!bad && (id.run != 1 || id.writer != m->uid || id.counter != seq - 1))
                bad = "another record than the acknowledged one";
            if (bad) {
                snprintf(why, why_len, "seq %" PRIu64 ": %s", seq, bad);
                ok = 0;
            }
        }
    }
    tr_read_batch_free(&b);
    return ok;
}

static void check_intact(model *m, const char *when) {
    char why[256] = "";
    int ok = shard_intact(m, why, sizeof why);
    check(ok, "shard %" PRIu64 ": all %" PRIu64 " acknowledged records read back intact %s%s%s",
          m->uid, m->stored, when, ok ? "" : ": ", why);
}

/* Segment files of the shard and their total size. */
static void shard_files(const char *dir, model *m, int *nsegs, uint64_t *bytes) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/shards/%" PRIu64, dir, m->uid);
    *nsegs = 0;
    *bytes = 0;
    DIR *d = opendir(path);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 4 || strcmp(e->d_name + n - 4, ".seg") != 0) continue;
        struct stat sb;
        char file[PATH_MAX + 300];
        snprintf(file, sizeof file, "%s/%s", path, e->d_name);
        if (stat(file, &sb) == 0) *bytes += (uint64_t)sb.st_size;
        (*nsegs)++;
    }
    closedir(d);
}

/* After a failed write nothing of it may stay in the files: their size is what the shard
 * counts as stored. */
static void check_no_leftovers(const char *dir, model *m, int nsegs_before) {
    tr_shard_info info;
    tr_shard_get_info(m->s, &info);
    int nsegs;
    uint64_t bytes;
    shard_files(dir, m, &nsegs, &bytes);
    check(bytes == info.bytes && nsegs == (int)info.segments && nsegs == nsegs_before,
          "shard %" PRIu64 ": the failed write left nothing behind (%d segments, %" PRIu64
          " bytes on disk; the shard counts %u and %" PRIu64 ", had %d segments)",
          m->uid, nsegs, bytes, info.segments, info.bytes, nsegs_before);
}

static int segments_of(const char *dir, model *m) {
    int n;
    uint64_t bytes;
    shard_files(dir, m, &n, &bytes);
    return n;
}

/* ---- holding the storage thread, so that requests queue up into one batch ---- */

typedef struct {
    request r;
    int entered, released;
} gate;

static void on_gate(void *ctx, int status, uint64_t first_seq, int64_t arrival_ms) {
    gate *g = ctx;
    on_done(&g->r, status, first_seq, arrival_ms);
    pthread_mutex_lock(&g->r.mu);
    g->entered = 1;
    pthread_cond_broadcast(&g->r.cv);
    while (!g->released) pthread_cond_wait(&g->r.cv, &g->r.mu);
    pthread_mutex_unlock(&g->r.mu);
}

/* Appends one small record and keeps the storage thread in its callback until gate_open. */
static void gate_close(tr_store *st, model *m, gate *g) {
    uint32_t len = 10;
    memset(g, 0, sizeof *g);
    request_init(&g->r, m, m->stored, &len, 1);
    if (tr_store_append(st, m->s, g->r.recs, 1, on_gate, g) != TR_OK) abort();
    pthread_mutex_lock(&g->r.mu);
    while (!g->entered) pthread_cond_wait(&g->r.cv, &g->r.mu);
    pthread_mutex_unlock(&g->r.mu);
    check(g->r.status == TR_OK && request_settle(&g->r),
          "shard %" PRIu64 ": a request holds the storage thread", m->uid);
}

static void gate_open(gate *g) {
    pthread_mutex_lock(&g->r.mu);
    g->released = 1;
    pthread_cond_broadcast(&g->r.cv);
    pthread_mutex_unlock(&g->r.mu);
}

/* ---- the scenario ---- */

static int open_store(const char *dir, tr_store **st, model *ms, int create) {
    tr_store_config cfg;
    tr_store_config_defaults(&cfg);
    cfg.dir = dir;
    cfg.storage_threads = 1;
    cfg.shard.segment_max_bytes = SEGMENT_MAX_BYTES;
    int rc = tr_store_open(&cfg, st);
    for (int i = 0; rc == TR_OK && i < NSHARDS; i++) {
        ms[i].uid = (uint64_t)i + 1;
        rc = tr_store_shard(*st, ms[i].uid, "stream=\"enospc\"", create, &ms[i].s);
    }
    if (rc != TR_OK) printf("cannot open the store: %s\n", tr_strerror(rc));
    return rc;
}

static void disk_full(const char *dir, tr_store *st, model *m) {
    for (int i = 0; i < 40; i++) {
        int rc = i % 9 == 8 ? append_big(st, m) : append_small(st, m, 1 + (size_t)i % 5);
        if (rc != TR_OK) {
            check(0, "shard %" PRIu64 ": append %d with space: %s", m->uid, i, tr_strerror(rc));
            return;
        }
    }
    check(segments_of(dir, m) > 1, "shard %" PRIu64 ": %" PRIu64 " records in %d segments",
          m->uid, m->stored, segments_of(dir, m));

    int nsegs = segments_of(dir, m);
    disk_full_after(0);
    int rc = append_small(st, m, 3);
    check(rc == TR_ENOSPC, "disk full: the append fails with TR_ENOSPC (got %s)", tr_strerror(rc));
    check_no_leftovers(dir, m, nsegs);
    check_intact(m, "while the disk is full");
    rc = append_small(st, m, 1);
    check(rc == TR_ENOSPC, "disk still full: the next append fails too (%s)", tr_strerror(rc));

    disk_full_after(100); /* less than the frames of the append: a short write */
    rc = append_small(st, m, 5);
    check(rc == TR_ENOSPC, "disk fills during the write: TR_ENOSPC (got %s)", tr_strerror(rc));
    check_no_leftovers(dir, m, nsegs);
    check_intact(m, "after a write cut short");

    disk_full_after(0);
    rc = append_big(st, m); /* does not fit the active segment: needs a new one */
    check(rc == TR_ENOSPC, "disk full at a segment roll: TR_ENOSPC (got %s)", tr_strerror(rc));
    check_no_leftovers(dir, m, nsegs);
    check_intact(m, "after a failed roll");

    /* Requests queued together fail together; none is acknowledged. */
    faults_off();
    gate g;
    gate_close(st, m, &g);
    disk_full_after(0);
    request q[4];
    uint64_t counter = m->stored;
    for (int i = 0; i < 4; i++) {
        uint32_t lens[3] = {50, 60, 70};
        request_init(&q[i], m, counter, lens, 3);
        counter += 3;
        request_submit(st, &q[i]);
    }
    gate_open(&g);
    int all_failed = 1;
    for (int i = 0; i < 4; i++) {
        request_wait(&q[i]);
        all_failed &= q[i].status == TR_ENOSPC;
    }
    check(all_failed, "disk full: four requests in one batch all fail with TR_ENOSPC (%s, %s, "
          "%s, %s)", tr_strerror(q[0].status), tr_strerror(q[1].status),
          tr_strerror(q[2].status), tr_strerror(q[3].status));
    for (int i = 0; i < 4; i++) request_settle(&q[i]);
    for (int i = 0; i < 4; i++) request_deinit(&q[i]);
    request_deinit(&g.r);
    check_intact(m, "after a failed batch");
}

/* How much of the batch in roll_after_queued the disk still takes. */
enum { ROOM_NONE, ROOM_FIRST, ROOM_FIRST_AND_ONE };

/* Request a, which fits the active segment, queued in one batch before request b, which must
 * roll to a new segment, on a disk that is full or nearly so. The roll first writes what is
 * buffered. With no room that write fails and the shard discards a's records: a must fail as
 * well as b. With room for a's records only, a is stored and acknowledged and b fails. With
 * room for a's and the first of b's two records, b must still fail as a whole, leaving none
 * of its records behind. */
static void roll_after_queued(const char *dir, tr_store *st, model *m, int room) {
    faults_off();
    /* Two big records: the second starts a segment that then has little room left. */
    if (append_big(st, m) != TR_OK || append_big(st, m) != TR_OK) {
        check(0, "shard %" PRIu64 ": big appends with space", m->uid);
        return;
    }
    gate g;
    gate_close(st, m, &g);
    uint32_t small = 100, b_lens[2] = {100, BIG_BYTES};
    request a, b;
    request_init(&a, m, m->stored, &small, 1);
    request_init(&b, m, m->stored + 1, room == ROOM_FIRST_AND_ONE ? b_lens : b_lens + 1,
                 room == ROOM_FIRST_AND_ONE ? 2 : 1);
    int nsegs = segments_of(dir, m);
    long long budget = 0;
    if (room != ROOM_NONE) budget += (long long)tr_frame_size(&a.recs[0]);
    if (room == ROOM_FIRST_AND_ONE) budget += (long long)tr_frame_size(&b.recs[0]);
    disk_full_after(budget);
    request_submit(st, &a);
    request_submit(st, &b);
    gate_open(&g);
    request_wait(&a);
    request_wait(&b);
    request_deinit(&g.r);
    static const char *const what[] = {
        "disk full: a request queued before one that rolls is not acknowledged",
        "room for one record: the request queued before a roll is stored, the one that rolls "
        "fails",
        "room for two records: the request queued before a roll is stored, the one that rolls "
        "fails as a whole"};
    int want_a = room == ROOM_NONE ? TR_ENOSPC : TR_OK;
    check(a.status == want_a && b.status == TR_ENOSPC, "%s (%s, %s)", what[room],
          tr_strerror(a.status), tr_strerror(b.status));
    request_settle(&a);
    request_settle(&b);
    request_deinit(&a);
    request_deinit(&b);
    if (room != ROOM_FIRST_AND_ONE) check_no_leftovers(dir, m, nsegs);
    check_intact(m, "after the batch with a roll");
}

static void space_back(const char *dir, tr_store *st, model *m) {
    faults_off();
    int nsegs = segments_of(dir, m), ok = 1;
    for (int i = 0; ok && i < 20; i++)
        ok = (i % 4 == 3 ? append_big(st, m) : append_small(st, m, 1 + (size_t)i % 7)) == TR_OK;
    check(ok, "space back: 20 appends succeed and continue the sequence");
    check(segments_of(dir, m) > nsegs, "space back: segments roll again (%d, were %d)",
          segments_of(dir, m), nsegs);
    check_intact(m, "with space back");
}

static void fsync_failure(tr_store *st, model *m, model *other, int err) {
    faults_off();
    int ok = 1;
    for (int i = 0; ok && i < 5; i++) ok = append_small(st, m, 2) == TR_OK;
    check(ok, "shard %" PRIu64 ": appends before the fsync failure", m->uid);
    int want = err == ENOSPC ? TR_ENOSPC : TR_EIO;
    fsync_fails(err);
    int rc = append_small(st, m, 3);
    faults_off();
    check(rc == want, "shard %" PRIu64 ": fdatasync fails with %s: the append fails with %s "
          "(got %s)", m->uid, strerror(err), tr_strerror(want), tr_strerror(rc));
    rc = append_small(st, m, 1);
    check(rc == TR_EREADONLY, "shard %" PRIu64 ": then the shard is read-only: TR_EREADONLY "
          "(got %s)", m->uid, tr_strerror(rc));
    check_intact(m, "on the read-only shard");
    rc = append_small(st, other, 2);
    check(rc == TR_OK, "shard %" PRIu64 ": another shard still takes appends (%s)", other->uid,
          tr_strerror(rc));
}

static int cmd_run(const char *dir) {
    fault_set = (fault_set_fn)dlsym(RTLD_DEFAULT, "enospc_preload_set");
    if (!fault_set) {
        printf("tool_enospc: run it with LD_PRELOAD=.../libenospc_preload.so\n");
        return 2;
    }
    tr_store *st;
    model ms[NSHARDS];
    memset(ms, 0, sizeof ms);
    if (open_store(dir, &st, ms, 1) != TR_OK) return 1;
    if (!realpath(dir, fault_dir)) return 1;

    disk_full(dir, st, &ms[0]);
    roll_after_queued(dir, st, &ms[0], ROOM_NONE);
    roll_after_queued(dir, st, &ms[0], ROOM_FIRST);
    roll_after_queued(dir, st, &ms[0], ROOM_FIRST_AND_ONE);
    space_back(dir, st, &ms[0]);
    fsync_failure(st, &ms[1], &ms[0], EIO);
    fsync_failure(st, &ms[2], &ms[0], ENOSPC);

    faults_off();
    tr_store_close(st);
    if (open_store(dir, &st, ms, 0) != TR_OK) return 1;
    for (int i = 0; i < NSHARDS; i++) check_intact(&ms[i], "after reopening the store");
    for (int i = 0; i < NSHARDS; i++) {
        int rc = append_small(st, &ms[i], 4);
        check(rc == TR_OK, "shard %" PRIu64 ": takes appends after reopening (%s)", ms[i].uid,
              tr_strerror(rc));
        check_intact(&ms[i], "after appending again");
    }
    tr_store_close(st);
    for (int i = 0; i < NSHARDS; i++) printf("expect %" PRIu64 " %" PRIu64 "\n", ms[i].uid,
                                             ms[i].stored);
    printf("tool_enospc: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

/* A fresh process: each shard must hold records 0..last-1, intact, in order. */
static int cmd_verify(const char *dir) {
    tr_store *st;
    model ms[NSHARDS];
    if (open_store(dir, &st, ms, 0) != TR_OK) return 1;
    int bad = 0;
    for (int i = 0; i < NSHARDS; i++) {
        tr_shard_info info;
        tr_shard_get_info(ms[i].s, &info);
        ms[i].stored = info.last_seq;
        char why[256] = "";
        if (!shard_intact(&ms[i], why, sizeof why)) {
            printf("bad %" PRIu64 ": %s\n", ms[i].uid, why);
            bad++;
        }
        printf("shard %" PRIu64 " last %" PRIu64 "\n", ms[i].uid, info.last_seq);
    }
    tr_store_close(st);
    return bad ? 1 : 0;
}

int main(int argc, char **argv) {
    tr_log_set_level(TR_LOG_ERROR);
    if (argc == 3 && strcmp(argv[1], "run") == 0) return cmd_run(argv[2]);
    if (argc == 3 && strcmp(argv[1], "verify") == 0) return cmd_verify(argv[2]);
    fprintf(stderr, "usage: %s run DIR | verify DIR\n", argv[0]);
    return 2;
}
