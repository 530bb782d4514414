/* The child of tests/system/test_crash.py: a writer to be killed with SIGKILL, and a checker.
 *
 *   tool_crash_writer write DIR RUN [DURATION_MS]
 *   tool_crash_writer verify DIR
 *
 * write: opens the store on DIR (fsync=always, small segments so that rolls happen often),
 * opens or creates shards 101 and 102 (recovering them after a crash), checks everything
 * already stored as `verify` does, prints "ready", and then runs WRITERS threads that append
 * batches of self-verifying records (payload.h) with identities (RUN, writer, counter). Each
 * acknowledged batch (callback status TR_OK, so durable) is reported with one write(2):
 *
 *     ack <shard uid> <first seq> <n> <run> <writer> <first counter>
 *
 * It runs until killed or, given DURATION_MS, that long; then it closes the store and prints
 * "done". A failed append prints "fail ..." and exits 1.
 *
 * verify: opens the store and reads every record of each shard, checking that sequence
 * numbers are contiguous, that every record's key, producer time, length and bytes match its
 * identity, and that the shard's counters agree. Runs of records with consecutive sequence
 * numbers and counters of one (run, writer) are printed in the ack format with "recs" for
 * "ack"; then "shard <uid> records <n> last <seq>" (or "shard <uid> absent") per shard, and
 * "bad ..." for every problem, which makes the exit status 1. */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/store.h"
#include "payload.h"
#include "util/error.h"
#include "util/log.h"

#define WRITERS 4
#define NSHARDS 2
#define MAX_BATCH 8
#define MAX_PAYLOAD_BYTES (64u * 1024)
#define SEGMENT_MAX_BYTES (1024u * 1024)

static const uint64_t shard_uids[NSHARDS] = {101, 102};

static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

/* One whole line per write(2), under a lock, so that a kill never leaves half a line and
 * lines of different threads never mix. */
static void emit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void emit(const char *fmt, ...) {
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line) abort();
    pthread_mutex_lock(&out_mu);
    size_t off = 0;
    while (off < (size_t)n) {
        ssize_t w = write(STDOUT_FILENO, line + off, (size_t)n - off);
        if (w <= 0) abort(); /* the parent went away */
        off += (size_t)w;
    }
    pthread_mutex_unlock(&out_mu);
}

/* ---- verification ---- */

typedef struct {
    uint64_t uid;
    int have;              /* a run is open */
    uint64_t seq0, n;
    uint32_t run, writer;
    uint64_t counter0;
} run_printer;

static void run_flush(run_printer *p) {
    if (p->have)
        printf("recs %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu32 " %" PRIu32 " %" PRIu64 "\n",
               p->uid, p->seq0, p->n, p->run, p->writer, p->counter0);
    p->have = 0;
}

static void run_add(run_printer *p, uint64_t seq, uint32_t run, uint32_t writer,
                    uint64_t counter) {
    if (p->have && run == p->run && writer == p->writer && seq == p->seq0 + p->n &&
        counter == p->counter0 + p->n) {
        p->n++;
        return;
    }
    run_flush(p);
    *p = (run_printer){p->uid, 1, seq, 1, run, writer, counter};
}

/* Checks one record against its identity; returns NULL or what is wrong. */
static const char *check_record(const tr_record *r, payload_id *id) {
    const char *why = payload_check(r->pkey, r->pkey_len, r->data, r->data_len, id);
    if (why) return why;
    if (r->ehk_len != 0) return "unexpected explicit hash key";
    if (r->flags != TR_KIND_DATA) return "bad flags";
    if (r->producer_ms != (int64_t)id->counter) return "producer time is not the counter";
    if (id->len != payload_len(payload_id_seed(id), MAX_PAYLOAD_BYTES))
        return "length is not the one the writer chooses";
    return NULL;
}

/* Reads and checks every record of one shard; returns the number of problems. */
static int verify_shard(tr_shard *s, uint64_t uid) {
    tr_shard_info info;
    tr_shard_get_info(s, &info);
    tr_read_batch b;
    tr_read_batch_init(&b);
    run_printer rp = {.uid = uid};
    int bad = 0;
    uint64_t want = info.first_seq, count = 0, last = 0;
    int64_t last_ms = 0;
    while (want <= info.last_seq) {
        int rc = tr_shard_read(s, want, 512, 8u << 20, &b);
        if (rc != TR_OK || b.count == 0) {
            printf("bad %" PRIu64 " %" PRIu64 " read failed: %s\n", uid, want,
                   rc != TR_OK ? tr_strerror(rc) : "no records below last_seq");
            bad++;
            break;
        }
        for (size_t i = 0; i < b.count; i++) {
            const tr_record *r = &b.records[i];
            payload_id id;
            if (r->seq != want) {
                printf("bad %" PRIu64 " %" PRIu64 " sequence gap: wanted %" PRIu64 "\n", uid,
                       r->seq, want);
                bad++;
            }
            if (count > 0 && r->arrival_ms < last_ms) {
                printf("bad %" PRIu64 " %" PRIu64 " arrival time went backwards\n", uid, r->seq);
                bad++;
            }
            const char *why = check_record(r, &id);
            if (why) {
                printf("bad %" PRIu64 " %" PRIu64 " %s\n", uid, r->seq, why);
                bad++;
            } else {
                run_add(&rp, r->seq, id.run, id.writer, id.counter);
            }
            want = r->seq + 1;
            last = r->seq;
            last_ms = r->arrival_ms;
            count++;
        }
    }
    run_flush(&rp);
    tr_read_batch_free(&b);
    if (count != info.records || last != info.last_seq) {
        printf("bad %" PRIu64 " 0 shard info says %" PRIu64 " records up to %" PRIu64
               ", read %" PRIu64 " up to %" PRIu64 "\n",
               uid, info.records, info.last_seq, count, last);
        bad++;
    }
    printf("shard %" PRIu64 " records %" PRIu64 " last %" PRIu64 "\n", uid, count, last);
    return bad;
}

/* Opens (create: or creates) the shards and checks them all. shards[i] is NULL for a shard
 * that does not exist. Returns the number of problems. */
static int open_and_verify(tr_store *st, int create, tr_shard **shards) {
    int bad = 0;
    for (int i = 0; i < NSHARDS; i++) {
        char label[64];
        snprintf(label, sizeof label, "stream=\"crash\",shard=\"%d\"", i);
        shards[i] = NULL;
        int rc = tr_store_shard(st, shard_uids[i], label, create, &shards[i]);
        if (rc == TR_ENOENT && !create) {
            printf("shard %" PRIu64 " absent\n", shard_uids[i]);
            continue;
        }
        if (rc != TR_OK) {
            printf("bad %" PRIu64 " 0 cannot open shard: %s\n", shard_uids[i], tr_strerror(rc));
            bad++;
            continue;
        }
        bad += verify_shard(shards[i], shard_uids[i]);
    }
    fflush(stdout);
    return bad;
}

static int open_store(const char *dir, tr_store **st) {
    tr_store_config cfg;
    tr_store_config_defaults(&cfg);
    cfg.dir = dir;
    cfg.storage_threads = 2;
    cfg.shard.segment_max_bytes = SEGMENT_MAX_BYTES;
    int rc = tr_store_open(&cfg, st);
    if (rc != TR_OK) printf("bad 0 0 cannot open store: %s\n", tr_strerror(rc));
    return rc;
}

static int cmd_verify(const char *dir) {
    tr_store *st;
    if (open_store(dir, &st) != TR_OK) return 1;
    tr_shard *shards[NSHARDS];
    int bad = open_and_verify(st, 0, shards);
    tr_store_close(st);
    printf("verified problems %d\n", bad);
    return bad ? 1 : 0;
}

/* ---- writing ---- */

typedef struct {
    tr_store *st;
    tr_shard *shard;
    uint64_t uid;
    uint32_t run, id;
    atomic_int *stop;
    int failed;
} writer;

/* One append in flight: the writer waits for its callback. */
typedef struct {
    writer *w;
    size_t n;
    uint64_t counter0;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, status;
} pending;

static void on_appended(void *ctx, int status, uint64_t first_seq, int64_t arrival_ms) {
    (void)arrival_ms;
    pending *p = ctx;
    if (status == TR_OK)
        emit("ack %" PRIu64 " %" PRIu64 " %zu %" PRIu32 " %" PRIu32 " %" PRIu64 "\n", p->w->uid,
             first_seq, p->n, p->w->run, p->w->id, p->counter0);
    pthread_mutex_lock(&p->mu);
    p->status = status;
    p->done = 1;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void *writer_main(void *arg) {
    writer *w = arg;
    uint8_t *bufs = malloc((size_t)MAX_BATCH * MAX_PAYLOAD_BYTES);
    char keys[MAX_BATCH][PAYLOAD_KEY_MAX];
    tr_record_in recs[MAX_BATCH];
    pending p;
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv, NULL);
    uint64_t counter = 0, rng = payload_seed(w->run, w->id, UINT64_MAX);
    while (bufs && !atomic_load(w->stop)) {
        size_t n = 1 + (size_t)(payload_mix(rng++) % MAX_BATCH);
        for (size_t i = 0; i < n; i++) {
            payload_id id = {w->run, w->id, counter + i, 0};
            uint64_t seed = payload_id_seed(&id);
            uint8_t *data = bufs + i * MAX_PAYLOAD_BYTES;
            id.len = payload_len(seed, MAX_PAYLOAD_BYTES);
            payload_fill(data, id.len, seed);
            recs[i] = (tr_record_in){.producer_ms = (int64_t)id.counter, .flags = TR_KIND_DATA,
                                     .pkey = keys[i], .pkey_len = payload_key(keys[i], &id),
                                     .data = data, .data_len = id.len};
        }
        p.w = w;
        p.n = n;
        p.counter0 = counter;
        p.done = 0;
        int rc = tr_store_append(w->st, w->shard, recs, n, on_appended, &p);
        if (rc == TR_OK) {
            pthread_mutex_lock(&p.mu);
            while (!p.done) pthread_cond_wait(&p.cv, &p.mu);
            pthread_mutex_unlock(&p.mu);
            rc = p.status;
        }
        if (rc != TR_OK) {
            emit("fail %" PRIu64 " writer %" PRIu32 ": %s\n", w->uid, w->id, tr_strerror(rc));
            w->failed = 1;
            break;
        }
        counter += n;
    }
    if (!bufs) w->failed = 1;
    pthread_mutex_destroy(&p.mu);
    pthread_cond_destroy(&p.cv);
    free(bufs);
    return NULL;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static int cmd_write(const char *dir, uint32_t run, long duration_ms) {
    tr_store *st;
    if (open_store(dir, &st) != TR_OK) return 1;
    tr_shard *shards[NSHARDS];
    if (open_and_verify(st, 1, shards) != 0) {
        tr_store_close(st);
        return 1;
    }
    emit("ready\n");
    atomic_int stop;
    atomic_init(&stop, 0);
    writer ws[WRITERS];
    pthread_t th[WRITERS];
    for (uint32_t i = 0; i < WRITERS; i++) {
        ws[i] = (writer){st, shards[i % NSHARDS], shard_uids[i % NSHARDS], run, i, &stop, 0};
        if (pthread_create(&th[i], NULL, writer_main, &ws[i]) != 0) abort();
    }
    if (duration_ms > 0) {
        sleep_ms(duration_ms);
        atomic_store(&stop, 1);
    }
    int failed = 0;
    for (int i = 0; i < WRITERS; i++) {
        pthread_join(th[i], NULL);
        failed |= ws[i].failed;
    }
    tr_store_close(st);
    emit(failed ? "fail\n" : "done\n");
    return failed;
}

int main(int argc, char **argv) {
    tr_log_set_level(TR_LOG_WARN);
    if (argc >= 4 && strcmp(argv[1], "write") == 0)
        return cmd_write(argv[2], (uint32_t)strtoul(argv[3], NULL, 10),
                         argc > 4 ? strtol(argv[4], NULL, 10) : 0);
    if (argc == 3 && strcmp(argv[1], "verify") == 0) return cmd_verify(argv[2]);
    fprintf(stderr, "usage: %s write DIR RUN [DURATION_MS] | verify DIR\n", argv[0]);
    return 2;
}
