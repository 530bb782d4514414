/* The shard-log benchmark: the core's append and read paths against the disk's own limit.
 *
 * Everything goes through the real interfaces: tr_store_append with a callback (fsync =
 * always, so an append is acknowledged only after the group commit's fdatasync) and
 * tr_shard_read. Every case writes one shard from W writer threads; each writer appends one
 * call of R records, waits for its acknowledgement, and only then appends again, as a
 * producer does. For every case the benchmark reports
 *
 *   - append throughput (calls/s, records/s, payload MB/s, MB = 10^6 bytes) and the
 *     append-to-ack latency (p50, p99) each writer saw;
 *   - the batch the group commit achieved: bytes written and appends acknowledged per
 *     fdatasync;
 *   - the physical limit, in the same run on the same filesystem: a plain sequential write
 *     + fdatasync loop into a fresh file, writing that achieved batch size each time, and the
 *     ratio of the store's payload MB/s to it;
 *   - read throughput: tr_shard_read over everything the case wrote (10,000 records or
 *     10 MiB per call, as GetRecords), the data still in the page cache.
 *
 * Usage: log_bench DIR [--seconds S] [--case N]...
 *        log_bench DIR --raw BYTES [--seconds S]
 *   DIR is a scratch directory on the filesystem to measure (not tmpfs); the benchmark makes
 *   and removes its files inside it. Each case runs about S seconds (default 2).
 * The last line is for scripts:
 *   RESULT log append_64k_MBps=<x> raw_MBps=<y> ratio=<x/y> small_records_per_s=<z>
 * With --raw, only the physical limit for batches of BYTES, for S seconds (other benchmarks,
 * bench/ingest.sh, compare against it):
 *   RESULT raw raw_MBps=<x> batch_KiB=<b> seconds=<s> */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "api/kinesis.h"
#include "core/shard.h"
#include "core/store.h"
#include "kms/kms.h"
#include "util/error.h"
#include "util/log.h"
#include "util/metrics.h"

#define KIB 1024u
#define MIB (1024u * 1024u)
#define READ_MAX_RECORDS 10000u
#define READ_MAX_BYTES (10u * MIB)
#define CASE_MAX_PAYLOAD_BYTES (1536ull * MIB) /* stop a case early past this much data */
#define BENCH_STREAM_ID 1 /* the sealed cases' stream, for the AAD and the data key */

typedef struct bench_case {
    uint32_t rec_bytes;
    int writers;
    int per_call; /* records per tr_store_append */
    int sealed;   /* each call's records sealed first, as an encrypted stream's put does */
} bench_case;

/* Single records first (what one PutRecord or one video fragment does), then batched calls
 * (PutRecords: up to 500 records and 5 MiB per call). */
static const bench_case cases[] = {
    {100, 1, 1, 0},        {100, 64, 1, 0},        {KIB, 1, 1, 0},        {KIB, 64, 1, 0},
    {64 * KIB, 1, 1, 0},   {64 * KIB, 64, 1, 0},   {MIB, 1, 1, 0},        {MIB, 64, 1, 0},
    {100, 1, 500, 0},      {100, 64, 500, 0},      {KIB, 1, 500, 0},      {KIB, 64, 500, 0},
    {64 * KIB, 1, 16, 0},  {64 * KIB, 64, 16, 0},
    /* Encryption at rest: the writer seals its records with the stream's KMS data key
     * (tr_kinesis_seal_records, the Data Streams put path's own function) before each
     * append, on its own thread. Last, so that the numbers of the cases above stay. */
    {64 * KIB, 64, 1, 1}, {100, 64, 500, 1},
};
#define NCASES (sizeof cases / sizeof cases[0])

typedef struct case_result {
    /* Throughput counts what was acknowledged in the steady part of each slice: not while the
     * pipeline fills at the start, nor in the drain after the writers were told to stop. */
    double seconds;
    uint64_t appends, records, payload_bytes;
    /* Everything acknowledged, and what it took on disk in how many group commits. */
    uint64_t appends_all, records_all, payload_all;
    uint64_t records_warmup; /* appended by the first, uncounted slice */
    uint64_t disk_bytes, commits;
    double p50_ms, p99_ms;
    uint64_t raw_bytes; /* the physical limit: plain write + fdatasync */
    double raw_seconds;
    double ratio_p25, ratio_p75; /* of the ratios of the rounds (store slice : raw slice) */
    double read_seconds;
    uint64_t read_records, read_bytes;
} case_result;

typedef struct run run;

typedef struct writer {
    run *r;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, status;
    tr_record_in *recs;
    tr_record_in *sealed; /* sealed cases: this call's records, sealed copies of recs */
    uint8_t **owned;      /* their sealed buffers */
    char pkey[16];
    uint64_t *lat_ns;
    size_t nlat, lat_cap;
    uint64_t appends, appends_all;
} writer;

struct run {
    const bench_case *c;
    tr_store *st;
    tr_shard *shard;
    const uint8_t *payload; /* per_call distinct payloads, shared read-only by all writers */
    tr_kms *kms;            /* sealed cases: the key service and the stream's CMK */
    char key_id[TR_KMS_KEY_ID_LEN + 1];
    pthread_barrier_t start;
    atomic_int stop;
    uint64_t window_ns;           /* acks from then on count for throughput */
    atomic_uint_fast64_t stop_ns; /* when stop was set; 0 before */
    atomic_uint_fast64_t payload_done;
    atomic_int failed;
};

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, int rc) {
    fprintf(stderr, "log_bench: %s: %s\n", what, rc < 0 ? tr_strerror(rc) : strerror(rc));
    exit(1);
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) die("out of memory", ENOMEM);
    return p;
}

static void fill_random(uint8_t *p, size_t n, uint64_t seed) {
    uint64_t x = seed * 0x9e3779b97f4a7c15u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        p[i] = (uint8_t)(x >> 24);
    }
}

/* ---- appends ---- */

static void on_ack(void *ctx, int status, uint64_t first_seq, int64_t arrival_ms) {
    (void)first_seq, (void)arrival_ms;
    writer *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->status = status;
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void lat_push(writer *w, uint64_t ns) {
    if (w->nlat == w->lat_cap) {
        w->lat_cap = w->lat_cap ? w->lat_cap * 2 : 1024;
        w->lat_ns = realloc(w->lat_ns, w->lat_cap * sizeof *w->lat_ns);
        if (!w->lat_ns) die("out of memory", ENOMEM);
    }
    w->lat_ns[w->nlat++] = ns;
}

static void *writer_main(void *arg) {
    writer *w = arg;
    run *r = w->r;
    uint64_t call_bytes = (uint64_t)r->c->rec_bytes * (uint64_t)r->c->per_call;
    pthread_barrier_wait(&r->start);
    while (!atomic_load(&r->stop)) {
        uint64_t t0 = now_ns();
        w->done = 0;
        const tr_record_in *recs = w->recs;
        size_t n = (size_t)r->c->per_call;
        if (r->c->sealed) {
            memcpy(w->sealed, w->recs, n * sizeof *w->sealed);
            int rc = tr_kinesis_seal_records(r->kms, BENCH_STREAM_ID, r->key_id, w->sealed,
                                             w->owned, n);
            if (rc != TR_OK) {
                fprintf(stderr, "log_bench: seal: %s\n", tr_kms_strerror(rc));
                atomic_store(&r->failed, 1);
                break;
            }
            recs = w->sealed;
        }
        int rc = tr_store_append(r->st, r->shard, recs, n, on_ack, w);
        if (rc != TR_OK) {
            fprintf(stderr, "log_bench: append: %s\n", tr_strerror(rc));
            atomic_store(&r->failed, 1);
            break;
        }
        pthread_mutex_lock(&w->mu);
        while (!w->done) pthread_cond_wait(&w->cv, &w->mu);
        pthread_mutex_unlock(&w->mu);
        if (r->c->sealed) /* the put path frees them when the append is done, too */
            for (size_t i = 0; i < n; i++) free(w->owned[i]), w->owned[i] = NULL;
        if (w->status != TR_OK) {
            fprintf(stderr, "log_bench: append acknowledged with %s\n", tr_strerror(w->status));
            atomic_store(&r->failed, 1);
            break;
        }
        uint64_t t1 = now_ns();
        lat_push(w, t1 - t0);
        uint64_t stop_ns = atomic_load(&r->stop_ns);
        if (t1 >= r->window_ns && (stop_ns == 0 || t1 <= stop_ns)) w->appends++;
        w->appends_all++;
        atomic_fetch_add(&r->payload_done, call_bytes);
    }
    return NULL;
}

/* Group commits so far: the count of the store's fsync histogram (one per commit). */
static uint64_t commits_so_far(void) {
    static const char key[] = "tributary_fsync_duration_seconds_count{} ";
    size_t len;
    char *text = tr_metrics_render(&len);
    char *p = text ? strstr(text, key) : NULL;
    uint64_t n = p ? strtoull(p + sizeof key - 1, NULL, 10) : 0;
    free(text);
    return n;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double percentile_ms(const uint64_t *sorted, size_t n, double p) {
    if (n == 0) return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)sorted[i] / 1e6;
}

typedef struct lat_set {
    uint64_t *ns;
    size_t n, cap;
} lat_set;

static void lat_merge(lat_set *all, const writer *w) {
    if (all->n + w->nlat > all->cap) {
        all->cap = (all->n + w->nlat) * 2;
        all->ns = realloc(all->ns, all->cap * sizeof *all->ns);
        if (!all->ns) die("out of memory", ENOMEM);
    }
    memcpy(all->ns + all->n, w->lat_ns, w->nlat * sizeof *all->ns);
    all->n += w->nlat;
}

/* One slice of a case: the writers append for `seconds` (or until `max_payload` bytes), then
 * stop after their ack in flight. Adds to res and lat (unless NULL); returns the slice's
 * length (its counted part) in seconds and sets *mean_lat to the mean append-to-ack
 * latency. */
static double append_slice(run *r, double seconds, uint64_t max_payload, case_result *res,
                           lat_set *lat, double *mean_lat) {
    const bench_case *c = r->c;
    int nw = c->writers;
    writer *ws = calloc((size_t)nw, sizeof *ws);
    if (!ws) die("out of memory", ENOMEM);
    atomic_store(&r->stop, 0);
    atomic_store(&r->stop_ns, 0);
    atomic_store(&r->payload_done, 0);
    pthread_barrier_init(&r->start, NULL, (unsigned)nw + 1);
    for (int i = 0; i < nw; i++) {
        writer *w = &ws[i];
        w->r = r;
        pthread_mutex_init(&w->mu, NULL);
        pthread_cond_init(&w->cv, NULL);
        int kl = snprintf(w->pkey, sizeof w->pkey, "key-%08d", i);
        w->recs = xmalloc((size_t)c->per_call * sizeof *w->recs);
        if (c->sealed) {
            w->sealed = xmalloc((size_t)c->per_call * sizeof *w->sealed);
            w->owned = calloc((size_t)c->per_call, sizeof *w->owned);
            if (!w->owned) die("out of memory", ENOMEM);
        }
        for (int k = 0; k < c->per_call; k++)
            w->recs[k] = (tr_record_in){.producer_ms = TR_NO_TIME, .pkey = w->pkey,
                                        .pkey_len = (uint32_t)kl,
                                        .data = r->payload + (size_t)k * c->rec_bytes,
                                        .data_len = c->rec_bytes};
        int rc = pthread_create(&w->thread, NULL, writer_main, w);
        if (rc != 0) die("pthread_create", rc);
    }
    uint64_t commits0 = commits_so_far();
    tr_shard_info info0, info1;
    tr_shard_get_info(r->shard, &info0);
    uint64_t t0 = now_ns();
    uint64_t limit_ns = (uint64_t)(seconds * 1e9);
    r->window_ns = t0 + limit_ns / 5;
    pthread_barrier_wait(&r->start);
    while (now_ns() - t0 < limit_ns && atomic_load(&r->payload_done) < max_payload &&
           !atomic_load(&r->failed)) {
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    uint64_t t1 = now_ns();
    atomic_store(&r->stop_ns, t1);
    atomic_store(&r->stop, 1);
    uint64_t appends = 0, appends_all = 0;
    for (int i = 0; i < nw; i++) {
        pthread_join(ws[i].thread, NULL);
        appends += ws[i].appends;
        appends_all += ws[i].appends_all;
        if (lat) lat_merge(lat, &ws[i]);
    }
    uint64_t t2 = now_ns();
    if (atomic_load(&r->failed)) exit(1);
    res->commits += commits_so_far() - commits0;
    tr_shard_get_info(r->shard, &info1);
    uint64_t call_bytes = (uint64_t)c->per_call * c->rec_bytes;
    double counted = (double)(t1 - r->window_ns) / 1e9;
    res->seconds += counted;
    *mean_lat = (double)(t2 - t0) / 1e9 * nw / (double)(appends_all ? appends_all : 1);
    res->appends += appends;
    res->records += appends * (uint64_t)c->per_call;
    res->payload_bytes += appends * call_bytes;
    res->appends_all += appends_all;
    res->records_all += appends_all * (uint64_t)c->per_call;
    res->payload_all += appends_all * call_bytes;
    res->disk_bytes += info1.bytes - info0.bytes;
    for (int i = 0; i < nw; i++) {
        free(ws[i].recs);
        free(ws[i].sealed);
        free(ws[i].owned);
        free(ws[i].lat_ns);
        pthread_mutex_destroy(&ws[i].mu);
        pthread_cond_destroy(&ws[i].cv);
    }
    pthread_barrier_destroy(&r->start);
    free(ws);
    return counted;
}

/* ---- the physical limit ---- */

/* Sequential write + fdatasync of `batch` bytes at a time at the end of the file fd (which
 * holds *file_len bytes), up to `total` bytes or `seconds`. Adds bytes and time to res. */
static void raw_slice(int fd, uint64_t *file_len, const uint8_t *buf, size_t batch,
                      uint64_t total, double seconds, case_result *res) {
    uint64_t done = 0, limit_ns = (uint64_t)(seconds * 1e9);
    uint64_t t0 = now_ns(), t1 = t0;
    while (done < total && t1 - t0 < limit_ns) {
        size_t off = 0;
        while (off < batch) {
            ssize_t n = pwrite(fd, buf + off, batch - off, (off_t)(*file_len + off));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) die("raw write", n < 0 ? errno : EIO);
            off += (size_t)n;
        }
        if (fdatasync(fd) != 0) die("raw fdatasync", errno);
        done += batch;
        *file_len += batch;
        t1 = now_ns();
    }
    res->raw_bytes += done;
    res->raw_seconds += (double)(t1 - t0) / 1e9;
}

/* Only the physical limit: sequential write + fdatasync of `batch` bytes at a time into a fresh
 * file in dir, for `seconds`. */
static int raw_only(const char *dir, size_t batch, double seconds) {
    char path[4200];
    snprintf(path, sizeof path, "%s/raw.dat", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) die(path, errno);
    uint8_t *buf = xmalloc(batch);
    fill_random(buf, batch, batch);
    case_result res = {0};
    uint64_t len = 0;
    raw_slice(fd, &len, buf, batch, UINT64_MAX, seconds, &res);
    close(fd);
    unlink(path);
    free(buf);
    printf("RESULT raw raw_MBps=%.1f batch_KiB=%.1f seconds=%.1f\n",
           (double)res.raw_bytes / 1e6 / res.raw_seconds, (double)batch / 1024.0,
           res.raw_seconds);
    return 0;
}

/* ---- reads ---- */

static void run_reads(run *r, case_result *res) {
    tr_shard_info info;
    tr_shard_get_info(r->shard, &info);
    tr_read_batch b;
    tr_read_batch_init(&b);
    uint64_t from = info.first_seq;
    uint64_t t0 = now_ns();
    while (from <= info.last_seq) {
        int rc = tr_shard_read(r->shard, from, READ_MAX_RECORDS, READ_MAX_BYTES, &b);
        if (rc != TR_OK) die("tr_shard_read", rc);
        if (b.count == 0) break;
        uint32_t want = r->c->rec_bytes + (r->c->sealed ? TR_KMS_SEAL_OVERHEAD : 0);
        for (size_t i = 0; i < b.count; i++)
            if (b.records[i].data_len != want) die("read back a wrong record", EIO);
        res->read_records += b.count;
        res->read_bytes += b.bytes;
        from = b.next_seq;
    }
    res->read_seconds = (double)(now_ns() - t0) / 1e9;
    tr_read_batch_free(&b);
    if (res->read_records != res->records_all + res->records_warmup) {
        fprintf(stderr, "log_bench: wrote %" PRIu64 " records, read back %" PRIu64 "\n",
                res->records_all + res->records_warmup, res->read_records);
        exit(1);
    }
}

/* ---- one case ---- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

/* The disk's speed comes and goes (other load; in a VM, whether the page cache gets pages
 * the host has already backed), so the store and the raw loop take turns in short slices,
 * alternating which goes first, and see the same conditions. The raw loop writes the batch
 * size the group commit achieved so far in this case, for as long as the store's slice was
 * counted. A slice lasts at least SLICE_SECONDS and ten times an append's latency, so that
 * filling and draining the pipeline at its ends (which are not counted) stay small. */
#define SLICE_SECONDS 0.2
#define MAX_ROUNDS 64

static void run_case(const char *base, size_t idx, double seconds, case_result *res) {
    const bench_case *c = &cases[idx];
    char dir[4096], raw_path[4200];
    snprintf(dir, sizeof dir, "%s/case-%02zu", base, idx);
    snprintf(raw_path, sizeof raw_path, "%s/raw.dat", dir);
    tr_store_config cfg;
    tr_store_config_defaults(&cfg);
    cfg.dir = dir;
    cfg.fsync_mode = TR_FSYNC_ALWAYS;
    run r = {.c = c};
    atomic_init(&r.stop, 0);
    atomic_init(&r.payload_done, 0);
    atomic_init(&r.failed, 0);
    int rc = tr_store_open(&cfg, &r.st);
    if (rc != TR_OK) die("tr_store_open", rc);
    rc = tr_store_shard(r.st, 1, "bench=\"log\"", 1, &r.shard);
    if (rc != TR_OK) die("tr_store_shard", rc);
    if (c->sealed) {
        /* A keyring of its own in the case's directory (root key made there) and one CMK. */
        static const char root_hex[] =
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
        char err[512];
        tr_kms_config kc = {.data_dir = dir, .root_key_env = root_hex};
        if (tr_kms_open(&kc, &r.kms, err, sizeof err) != TR_OK) {
            fprintf(stderr, "log_bench: tr_kms_open: %s\n", err);
            exit(1);
        }
        tr_kms_key_info key;
        rc = tr_kms_create_key(r.kms, "log_bench", &key);
        if (rc != TR_OK) die("tr_kms_create_key", rc);
        memcpy(r.key_id, key.id, sizeof r.key_id);
    }
    size_t payload_len = (size_t)c->rec_bytes * (size_t)c->per_call;
    uint8_t *payload = xmalloc(payload_len);
    fill_random(payload, payload_len, idx + 1);
    r.payload = payload;
    int raw_fd = open(raw_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (raw_fd < 0) die(raw_path, errno);
    uint64_t raw_len = 0;
    uint8_t *raw_buf = NULL;
    size_t raw_cap = 0;

    memset(res, 0, sizeof *res);
    lat_set lat = {0};
    /* A first slice, not counted, finds the latency (and so the slices' length). */
    double slice = SLICE_SECONDS, spent = 0, counted = 0, mean_lat = 0;
    case_result warm = {0};
    append_slice(&r, slice, CASE_MAX_PAYLOAD_BYTES, &warm, NULL, &mean_lat);
    slice = 10 * mean_lat;
    if (slice < SLICE_SECONDS) slice = SLICE_SECONDS;
    if (slice > seconds / 2) slice = seconds / 2;
    res->records_warmup = warm.records_all;
    double pair_ratio[MAX_ROUNDS];
    int rounds = 0;
    for (int k = 0; k < MAX_ROUNDS && (spent < seconds || k < 2); k++, rounds++) {
        case_result before = *res;
        uint64_t slice_max_payload = (uint64_t)((double)CASE_MAX_PAYLOAD_BYTES * slice / seconds);
        if (k % 2 == 0)
            counted = append_slice(&r, slice, slice_max_payload, res, &lat, &mean_lat);
        if (res->commits == 0) die("no group commits counted (fsync metric missing?)", EINVAL);
        size_t batch = (size_t)(res->disk_bytes / res->commits);
        if (batch > raw_cap) {
            free(raw_buf);
            raw_cap = batch + batch / 2;
            raw_buf = xmalloc(raw_cap);
            fill_random(raw_buf, raw_cap, raw_cap);
        }
        /* After the store: its bytes, in at most its counted time; before it: its time. */
        if (k % 2 == 0)
            raw_slice(raw_fd, &raw_len, raw_buf, batch, res->disk_bytes - before.disk_bytes,
                      counted, res);
        else
            raw_slice(raw_fd, &raw_len, raw_buf, batch, UINT64_MAX, slice * 0.8, res);
        if (k % 2 == 1)
            counted = append_slice(&r, slice, slice_max_payload, res, &lat, &mean_lat);
        spent += slice;
        slice = 10 * mean_lat;
        if (slice < SLICE_SECONDS) slice = SLICE_SECONDS;
        if (slice > seconds / 2) slice = seconds / 2;
        double store_rate = (double)(res->payload_bytes - before.payload_bytes) /
                            (res->seconds - before.seconds);
        double raw_rate = (double)(res->raw_bytes - before.raw_bytes) /
                          (res->raw_seconds - before.raw_seconds);
        pair_ratio[k] = store_rate / raw_rate;
    }
    qsort(pair_ratio, (size_t)rounds, sizeof *pair_ratio, cmp_double);
    res->ratio_p25 = pair_ratio[(rounds - 1) / 4];
    res->ratio_p75 = pair_ratio[(3 * (rounds - 1) + 3) / 4];
    close(raw_fd);
    free(raw_buf);
    qsort(lat.ns, lat.n, sizeof *lat.ns, cmp_u64);
    res->p50_ms = percentile_ms(lat.ns, lat.n, 0.50);
    res->p99_ms = percentile_ms(lat.ns, lat.n, 0.99);
    free(lat.ns);

    run_reads(&r, res);
    tr_store_close(r.st);
    if (r.kms) tr_kms_close(r.kms);
    free(payload);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- output ---- */

static const char *size_name(uint32_t bytes, char *buf, size_t len) {
    if (bytes >= MIB && bytes % MIB == 0)
        snprintf(buf, len, "%u MiB", bytes / MIB);
    else if (bytes >= KIB && bytes % KIB == 0)
        snprintf(buf, len, "%u KiB", bytes / KIB);
    else
        snprintf(buf, len, "%u B", bytes);
    return buf;
}

/* The record column: the size, and "sealed" for the encrypted cases. */
static const char *case_name(const bench_case *c, char *buf, size_t len) {
    char sz[24];
    snprintf(buf, len, "%s%s", size_name(c->rec_bytes, sz, sizeof sz), c->sealed ? " sealed" : "");
    return buf;
}

static const char *fs_name(const char *dir) {
    struct statfs sf;
    if (statfs(dir, &sf) != 0) return "unknown";
    switch ((unsigned long)sf.f_type) {
    case 0xEF53: return "ext2/3/4";
    case 0x58465342: return "xfs";
    case 0x9123683E: return "btrfs";
    case 0x2FC12FC1: return "zfs";
    case 0xF2F52010: return "f2fs";
    case 0x01021994: return "tmpfs (fdatasync is free here: the figures mean nothing)";
    case 0x794C7630: return "overlayfs";
    case 0x6969: return "nfs";
    default: return "other";
    }
}

static void print_header(const char *dir, double seconds) {
    struct utsname u;
    uname(&u);
    printf("Tributary shard-log benchmark: one shard, fsync=always (group commit), "
           "one storage thread\n");
    printf("data dir  %s\n", dir);
    printf("fs        %s; kernel %s; %ld CPUs\n", fs_name(dir), u.release,
           sysconf(_SC_NPROCESSORS_ONLN));
    printf("each case about %.1f s or %llu MiB; MB = 10^6 bytes of record payload\n\n", seconds,
           (unsigned long long)(CASE_MAX_PAYLOAD_BYTES / MIB));
}

static void print_tables(const case_result *res, const int *ran) {
    char sz[32];
    printf("APPEND  (each writer: append one call, wait for its ack, repeat)\n");
    printf("%-13s %7s %9s | %9s %10s %8s %8s %8s | %10s %9s | %9s %9s %6s %11s\n", "record",
           "writers", "recs/call", "calls/s", "records/s", "MB/s", "p50 ms", "p99 ms",
           "KiB/fsync", "acks/fsync", "disk MB/s", "raw MB/s", "ratio", "rounds IQR");
    for (size_t i = 0; i < NCASES; i++) {
        const bench_case *c = &cases[i];
        const case_result *r = &res[i];
        if (!ran[i]) continue;
        double mbps = (double)r->payload_bytes / 1e6 / r->seconds;
        double raw_mbps = (double)r->raw_bytes / 1e6 / r->raw_seconds;
        printf("%-13s %7d %9d | %9.0f %10.0f %8.1f %8.2f %8.2f | %10.1f %9.1f | %9.1f %9.1f %6.2f"
               " %5.2f-%-5.2f\n",
               case_name(c, sz, sizeof sz), c->writers, c->per_call,
               (double)r->appends / r->seconds, (double)r->records / r->seconds, mbps,
               r->p50_ms, r->p99_ms, (double)r->disk_bytes / 1024.0 / (double)r->commits,
               (double)r->appends_all / (double)r->commits,
               mbps * (double)r->disk_bytes / (double)r->payload_all, raw_mbps, mbps / raw_mbps,
               r->ratio_p25, r->ratio_p75);
    }
    printf("\nREAD  (tr_shard_read from the first record to the last, %u records / %u MiB per "
           "call, page cache warm)\n", READ_MAX_RECORDS, READ_MAX_BYTES / MIB);
    printf("%-13s %7s %9s | %12s %10s %10s\n", "record", "writers", "recs/call", "records",
           "records/s", "MB/s");
    for (size_t i = 0; i < NCASES; i++) {
        const bench_case *c = &cases[i];
        const case_result *r = &res[i];
        if (!ran[i]) continue;
        printf("%-13s %7d %9d | %12" PRIu64 " %10.0f %10.1f\n", case_name(c, sz, sizeof sz),
               c->writers, c->per_call, r->read_records,
               (double)r->read_records / r->read_seconds,
               (double)r->read_bytes / 1e6 / r->read_seconds);
    }
}

static size_t find_case(uint32_t rec_bytes, int writers, int per_call, int sealed) {
    for (size_t i = 0; i < NCASES; i++)
        if (cases[i].rec_bytes == rec_bytes && cases[i].writers == writers &&
            cases[i].per_call == per_call && cases[i].sealed == sealed)
            return i;
    return NCASES;
}

int main(int argc, char **argv) {
    double seconds = 2.0;
    size_t raw_batch = 0;
    int only[NCASES] = {0}, any_only = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: log_bench DIR [--seconds S] [--case N]...\n"
                        "       log_bench DIR --raw BYTES [--seconds S]\n");
        return 2;
    }
    const char *dir = argv[1];
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            seconds = atof(argv[++i]);
        } else if (strcmp(argv[i], "--case") == 0 && i + 1 < argc) {
            unsigned long n = strtoul(argv[++i], NULL, 10);
            if (n >= NCASES) die("--case: no such case", EINVAL);
            only[n] = any_only = 1;
        } else if (strcmp(argv[i], "--raw") == 0 && i + 1 < argc) {
            raw_batch = strtoul(argv[++i], NULL, 10);
            if (raw_batch == 0) die("--raw: a batch of bytes", EINVAL);
        } else {
            fprintf(stderr, "log_bench: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    if (seconds <= 0) seconds = 2.0;
    if (raw_batch > 0) return raw_only(dir, raw_batch, seconds);
    tr_log_set_level(TR_LOG_WARN);
    print_header(dir, seconds);
    fflush(stdout);

    case_result res[NCASES];
    int ran[NCASES] = {0};
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < NCASES; i++) {
        if (any_only && !only[i]) continue;
        char sz[32];
        fprintf(stderr, "log_bench: case %zu: %s x %d writers x %d per call\n", i,
                case_name(&cases[i], sz, sizeof sz), cases[i].writers,
                cases[i].per_call);
        run_case(dir, i, seconds, &res[i]);
        ran[i] = 1;
    }
    print_tables(res, ran);
    printf("\ntotal %.0f s\n", (double)(now_ns() - t0) / 1e9);

    size_t bi = find_case(64 * KIB, 64, 1, 0), si = find_case(100, 64, 500, 0);
    size_t ei = find_case(64 * KIB, 64, 1, 1), esi = find_case(100, 64, 500, 1);
    if (bi == NCASES || si == NCASES || !ran[bi] || !ran[si]) return 0;
    const case_result *big = &res[bi], *small = &res[si];
    double big_MBps = (double)big->payload_bytes / 1e6 / big->seconds;
    double raw_MBps = (double)big->raw_bytes / 1e6 / big->raw_seconds;
    double small_rps = (double)small->records / small->seconds;
    printf("targets: 64 KiB x 64 writers >= 0.70 of raw: %.2f (%s); "
           "100 B x 64 writers x 500/call >= 500000 records/s: %.0f (%s)\n",
           big_MBps / raw_MBps, big_MBps / raw_MBps >= 0.7 ? "met" : "NOT met", small_rps,
           small_rps >= 500000 ? "met" : "NOT met");
    /* Sealed over clear: 64 KiB x 64 writers, and 100 B x 64 x 500/call (for the table). */
    double enc_ratio = -1;
    if (ei < NCASES && ran[ei]) {
        double enc_MBps = (double)res[ei].payload_bytes / 1e6 / res[ei].seconds;
        enc_ratio = enc_MBps / big_MBps;
        printf("sealed: 64 KiB x 64 writers %.1f MB/s, %.2f of clear (target >= 0.90: %s)",
               enc_MBps, enc_ratio, enc_ratio >= 0.9 ? "met" : "NOT met");
        if (esi < NCASES && ran[esi])
            printf("; 100 B x 64 x 500/call %.0f records/s, %.2f of clear",
                   (double)res[esi].records / res[esi].seconds,
                   (double)res[esi].records / res[esi].seconds / small_rps);
        printf("\n");
    }
    printf("RESULT log append_64k_MBps=%.1f raw_MBps=%.1f ratio=%.2f small_records_per_s=%.0f",
           big_MBps, raw_MBps, big_MBps / raw_MBps, small_rps);
    if (enc_ratio >= 0) printf(" encrypted_ratio=%.2f", enc_ratio);
    printf("\n");
    return 0;
}
