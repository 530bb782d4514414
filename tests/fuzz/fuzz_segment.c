/* Segment files (and a sealed segment's index) from arbitrary bytes, opened as a shard: the
 * recovery scan, index loading, reads, seeks by sequence number and time, and, on what was
 * recovered, appends, retention and closing. A corrupt shard may fail to open or fail reads
 * with an error; it must never crash, and what it does return must be consistent:
 *
 * - a full read returns strictly increasing sequence numbers within the shard's range;
 * - when the index was built by the core (not fuzzed), a seek to any record the full read
 *   returned finds that record, and a seek by time finds the first record at or after it (or
 *   a position whose read reports the damage in between);
 * - a record appended and committed reads back, and is still there after a reopen;
 * - a closed shard stays closed across a reopen with the same ending sequence number.
 *
 * The second and third hold for damage (torn tails, garbage, flipped bits), not for files
 * holding frames with valid checksums that contradict each other (two frames of one sequence
 * number, numbers or times going backwards): reads trust a frame's checksum and do not check
 * its number against its neighbours', so such files have no single answer. The fuzzer can
 * forge checksums (SEG_IN_FIX, or by solving the comparison), so when one of these checks
 * fails the files are searched for such frames, and the failure counts only without them.
 *
 * The input layout is in segment_input.h. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/frame.h"
#include "core/segment.h"
#include "core/shard.h"
#include "fuzz.h"
#include "segment_input.h"
#include "util/bytes.h"
#include "util/crc32c.h"
#include "util/error.h"

#define MAX_SEEN 4096u
#define MAX_READS 4096u
#define APPEND_MS INT64_C(1700000000000)

typedef struct {
    uint64_t seq;
    int64_t arrival_ms;
    uint32_t sum; /* checksum of the record's keys, flags and payload */
} seen_record;

typedef struct {
    seen_record *v;
    size_t n;
    int complete;  /* the read reached the end without an error */
    int monotonic; /* arrival times never went down */
} seen_list;

static char shard_dir[600];

/* The segment files of this input, oldest name first. */
static struct {
    const uint8_t *data;
    size_t len;
} files[2];
static size_t nfiles;
static int contradictory = -1; /* -1: not looked at yet */

/* ---- seeds: a real shard made by the core, cut into inputs ---- */

#define SEED_FILE_MAX 4096

static size_t slurp(const char *path, uint8_t *buf) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(buf, 1, SEED_FILE_MAX, f);
    fclose(f);
    return n;
}

static void seed_input(const char *out, uint8_t flags, const uint8_t *a, size_t a_len,
                       const uint8_t *idx, size_t idx_len, const uint8_t *b, size_t b_len) {
    size_t len = SEG_IN_HEADER_BYTES + a_len + idx_len + b_len;
    uint8_t *in = malloc(len);
    FUZZ_CHECK(in != NULL);
    in[0] = flags;
    in[1] = 1; /* 64-byte index interval */
    tr_put_u32(in + 2, (uint32_t)a_len);
    tr_put_u32(in + 6, (uint32_t)idx_len);
    if (a_len) memcpy(in + SEG_IN_HEADER_BYTES, a, a_len);
    if (idx_len) memcpy(in + SEG_IN_HEADER_BYTES + a_len, idx, idx_len);
    if (b_len) memcpy(in + SEG_IN_HEADER_BYTES + a_len + idx_len, b, b_len);
    fuzz_seed(out, in, len);
    free(in);
}

/* Appends records of varied shapes (keys, explicit hash keys, kinds, equal and rising
 * arrival times) with small segments, so that the shard has sealed segments with indexes. */
static void make_shard(const char *dir, uint64_t *first, uint64_t *last) {
    tr_shard_config cfg = {.segment_max_bytes = 700, .segment_max_age_ms = INT64_MAX / 4,
                           .index_interval_bytes = 64};
    tr_shard *s;
    FUZZ_CHECK(tr_shard_open(dir, "seed", &cfg, &s) == TR_OK);
    uint8_t data[96];
    for (int i = 0; i < 14; i++) {
        char key[16];
        int kl = snprintf(key, sizeof key, "pk-%d", i);
        size_t dl = (size_t)(i * 37 % 90) + 1;
        for (size_t k = 0; k < dl; k++) data[k] = (uint8_t)(i * 31 + (int)k);
        tr_record_in in = {.producer_ms = i % 3 ? APPEND_MS - i : TR_NO_TIME,
                           .flags = (uint32_t)(i % 3), .pkey = key, .pkey_len = (uint32_t)kl,
                           .ehk = i % 4 == 1 ? "12345" : NULL, .ehk_len = i % 4 == 1 ? 5 : 0,
                           .data = data, .data_len = (uint32_t)dl};
        uint64_t seq, ns;
        FUZZ_CHECK(tr_shard_append(s, &in, 1, APPEND_MS + i / 2 * 1000, &seq) == TR_OK);
        if (i % 3 == 2) FUZZ_CHECK(tr_shard_commit(s, 1, &ns) == TR_OK);
    }
    FUZZ_CHECK(tr_shard_sync(s) == TR_OK);
    tr_shard_free(s);
    /* The oldest and the newest segment. */
    DIR *d = opendir(dir);
    FUZZ_CHECK(d != NULL);
    *first = UINT64_MAX, *last = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        uint64_t base;
        if (tr_segment_parse_name(e->d_name, &base) != 0) continue;
        if (base < *first) *first = base;
        if (base > *last) *last = base;
    }
    closedir(d);
    FUZZ_CHECK(*first < *last);
}

static void write_seeds(const char *out) {
    char dir[700], path[800];
    snprintf(dir, sizeof dir, "%s/seed-shard", fuzz_scratch());
    uint64_t first, last;
    make_shard(dir, &first, &last);
    static uint8_t a[SEED_FILE_MAX], idx[SEED_FILE_MAX], b[SEED_FILE_MAX], tmp[SEED_FILE_MAX];
    tr_segment_path(path, sizeof path, dir, first, TR_SEGMENT_SUFFIX);
    size_t a_len = slurp(path, a);
    tr_segment_path(path, sizeof path, dir, first, TR_INDEX_SUFFIX);
    size_t idx_len = slurp(path, idx);
    tr_segment_path(path, sizeof path, dir, last, TR_SEGMENT_SUFFIX);
    size_t b_len = slurp(path, b);
    FUZZ_CHECK(a_len > 200 && idx_len >= 68 && b_len > 100);

    seed_input(out, SEG_IN_TWO | SEG_IN_IDX, a, a_len, idx, idx_len, b, b_len);
    seed_input(out, SEG_IN_TWO, a, a_len, NULL, 0, b, b_len);
    seed_input(out, 0, b, b_len, NULL, 0, NULL, 0);
    seed_input(out, SEG_IN_TWO | SEG_IN_APPEND | SEG_IN_TRIM | SEG_IN_CLOSE, a, a_len, NULL, 0,
               b, b_len);
    /* A torn tail on the newest segment. */
    memcpy(tmp, b, b_len);
    memcpy(tmp + b_len, a + TR_SEGMENT_HEADER_BYTES, 20);
    seed_input(out, SEG_IN_TWO | SEG_IN_IDX | SEG_IN_FIX | SEG_IN_APPEND, a, a_len, idx,
               idx_len, tmp, b_len + 20);
    /* A flipped byte mid-segment: a corrupt extent with valid frames after it, in the newest
     * segment and in a sealed one. */
    memcpy(tmp, a, a_len);
    tmp[a_len / 2] ^= 0x40;
    seed_input(out, SEG_IN_APPEND, tmp, a_len, NULL, 0, NULL, 0);
    seed_input(out, SEG_IN_TWO | SEG_IN_TRIM, tmp, a_len, NULL, 0, b, b_len);
    /* A stub left by a crash during a roll. */
    seed_input(out, SEG_IN_TWO, a, a_len, NULL, 0, b, 10);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_quiet_logs();
    if (fuzz_seed_dir()) {
        write_seeds(fuzz_seed_dir());
        exit(0);
    }
    snprintf(shard_dir, sizeof shard_dir, "%s/shard", fuzz_scratch());
    return 0;
}

/* ---- building the files ---- */

static void fix_frames(uint8_t *buf, size_t n, size_t off) {
    while (n - off >= TR_FRAME_HEADER_BYTES) {
        uint32_t body_len = tr_get_u32(buf + off);
        if (body_len > n - off - TR_FRAME_HEADER_BYTES) break;
        uint32_t crc = tr_crc32c(0, buf + off, 4);
        crc = tr_crc32c(crc, buf + off + TR_FRAME_HEADER_BYTES, body_len);
        tr_put_u32(buf + off + 4, crc);
        off += TR_FRAME_HEADER_BYTES + (size_t)body_len;
    }
}

static void fix_segment(uint8_t *buf, size_t n) {
    if (n < TR_SEGMENT_HEADER_BYTES) return;
    tr_put_u32(buf + 28, tr_crc32c(0, buf, 28));
    fix_frames(buf, n, TR_SEGMENT_HEADER_BYTES);
}

/* The index file: 64-byte header (magic, segment size, entries, ...), 24-byte entries, crc. */
static void fix_index(uint8_t *buf, size_t n, uint64_t seg_size) {
    if (n < 68) return;
    tr_put_u64(buf + 8, seg_size);
    if ((n - 68) % 24 == 0) tr_put_u64(buf + 16, (n - 68) / 24);
    tr_put_u32(buf + n - 4, tr_crc32c(0, buf, n - 4));
}

static uint64_t name_of(const uint8_t *seg, size_t n, uint64_t fallback) {
    return n >= 16 ? tr_get_u64(seg + 8) : fallback;
}

static void write_shard(uint8_t flags, uint8_t *a, size_t a_len, uint8_t *idx, size_t idx_len,
                        uint8_t *b, size_t b_len) {
    if (mkdir(shard_dir, 0700) != 0 && errno != EEXIST) FUZZ_CHECK(0);
    fuzz_empty_dir(shard_dir);
    if (flags & SEG_IN_FIX) {
        fix_segment(a, a_len);
        fix_segment(b, b_len);
        fix_index(idx, idx_len, a_len);
    }
    char path[700];
    uint64_t a_name = name_of(a, a_len, 1);
    tr_segment_path(path, sizeof path, shard_dir, a_name, TR_SEGMENT_SUFFIX);
    fuzz_write_file(path, a, a_len);
    if (flags & SEG_IN_IDX) {
        tr_segment_path(path, sizeof path, shard_dir, a_name, TR_INDEX_SUFFIX);
        fuzz_write_file(path, idx, idx_len);
    }
    nfiles = 1;
    files[0].data = a, files[0].len = a_len;
    contradictory = -1;
    if (flags & SEG_IN_TWO) {
        uint64_t b_name = name_of(b, b_len, a_name + 1);
        if (b_name == a_name) b_name = a_name == UINT64_MAX ? a_name - 1 : a_name + 1;
        tr_segment_path(path, sizeof path, shard_dir, b_name, TR_SEGMENT_SUFFIX);
        fuzz_write_file(path, b, b_len);
        nfiles = 2;
        int b_older = b_name < a_name;
        files[b_older].data = a, files[b_older].len = a_len;
        files[!b_older].data = b, files[!b_older].len = b_len;
    }
}

/* ---- are the files self-contradictory? ---- */

/* Every frame with a valid checksum at any offset of any segment file, in file order, must
 * have a greater sequence number and no earlier arrival than the one before it: that is what
 * the core writes, and what damage (which cannot forge a checksum) leaves. */
static int files_contradictory(void) {
    if (contradictory >= 0) return contradictory;
    contradictory = 0;
    int have_prev = 0;
    tr_record prev = {0};
    for (size_t f = 0; f < nfiles && !contradictory; f++) {
        for (size_t off = TR_SEGMENT_HEADER_BYTES; off < files[f].len; off++) {
            tr_record r;
            size_t flen;
            if (tr_frame_decode(files[f].data + off, files[f].len - off, &r, &flen) != TR_FRAME_OK)
                continue;
            if (have_prev && (r.seq <= prev.seq || r.arrival_ms < prev.arrival_ms)) {
                contradictory = 1;
                break;
            }
            prev = r;
            have_prev = 1;
        }
    }
    return contradictory;
}

/* A check that holds unless the files contradict themselves (see the top of the file). */
#define CONSISTENT(cond)                                                                  \
    do {                                                                                  \
        if (!(cond) && !files_contradictory()) {                                          \
            fprintf(stderr, "fuzz check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

/* ---- reading ---- */

static uint32_t record_sum(const tr_record *r) {
    uint32_t c = tr_crc32c(0, r->pkey, r->pkey_len);
    c = tr_crc32c(c, r->ehk, r->ehk_len);
    c = tr_crc32c(c, &r->flags, sizeof r->flags);
    c = tr_crc32c(c, &r->producer_ms, sizeof r->producer_ms);
    return tr_crc32c(c, r->data, r->data_len);
}

/* Reads the whole shard in small batches, checking the order of what comes back. */
static void read_all(tr_shard *s, tr_read_batch *b, seen_list *seen) {
    tr_shard_info info;
    tr_shard_get_info(s, &info);
    FUZZ_CHECK(info.first_seq <= info.next_seq);
    seen->n = 0;
    seen->complete = 0;
    seen->monotonic = 1;
    uint64_t from = info.first_seq;
    for (unsigned i = 0; i < MAX_READS; i++) {
        size_t max_records = 1 + i % 7;
        int rc = tr_shard_read(s, from, max_records, 200, b);
        if (rc != TR_OK) {
            FUZZ_CHECK(rc < 0);
            return;
        }
        FUZZ_CHECK(b->count <= max_records);
        if (b->count == 0) {
            seen->complete = 1;
            return;
        }
        for (size_t k = 0; k < b->count; k++) {
            const tr_record *r = &b->records[k];
            FUZZ_CHECK(r->seq >= from);
            FUZZ_CHECK(k == 0 || r->seq > b->records[k - 1].seq);
            FUZZ_CHECK(r->seq <= info.last_seq);
            if (seen->n > 0 && r->arrival_ms < seen->v[seen->n - 1].arrival_ms) seen->monotonic = 0;
            if (seen->n < MAX_SEEN)
                seen->v[seen->n++] = (seen_record){r->seq, r->arrival_ms, record_sum(r)};
        }
        FUZZ_CHECK(b->next_seq == b->records[b->count - 1].seq + 1);
        from = b->next_seq;
        if (from == 0) return; /* seq UINT64_MAX was the last one */
    }
}

/* Seeks agree with the full read, which the core's own index must give. */
static void check_seeks(tr_shard *s, tr_read_batch *b, const seen_list *seen) {
    size_t step = seen->n / 32 + 1;
    for (size_t i = 0; i < seen->n; i += step) {
        const seen_record *want = &seen->v[i];
        int rc = tr_shard_read(s, want->seq, 1, 1, b);
        CONSISTENT(rc == TR_OK && b->count == 1);
        if (rc != TR_OK || b->count != 1) continue;
        CONSISTENT(b->records[0].seq == want->seq);
        CONSISTENT(record_sum(&b->records[0]) == want->sum);
    }
    /* By time: the first record at or after the time; or, when reading there meets a corrupt
     * extent, an earlier position whose read fails, so that the error is not skipped. */
    if (!seen->complete || !seen->monotonic) return;
    for (size_t i = 0; i < seen->n; i += step) {
        int64_t ms = seen->v[i].arrival_ms;
        size_t first = i;
        while (first > 0 && seen->v[first - 1].arrival_ms >= ms) first--;
        uint64_t got = tr_shard_seq_at_time(s, ms);
        CONSISTENT(got <= seen->v[first].seq);
        if (got < seen->v[first].seq) CONSISTENT(tr_shard_read(s, got, 1000, 1u << 20, b) != TR_OK);
    }
}

/* Retention deletes only whole segments older than the horizon: every record that arrived at
 * or after it is still there (when the index, which holds each segment's newest arrival, was
 * the core's). */
static void trim(tr_shard *s, tr_read_batch *b, seen_list *seen, int strong) {
    int64_t before = seen->n ? seen->v[seen->n / 2].arrival_ms : APPEND_MS;
    int rc = tr_shard_trim(s, before);
    if (rc < 0 || !strong) {
        read_all(s, b, seen);
        return;
    }
    for (size_t i = 0; i < seen->n; i++) {
        if (seen->v[i].arrival_ms < before) continue;
        int r = tr_shard_read(s, seen->v[i].seq, 1, 1, b);
        CONSISTENT(r == TR_OK && b->count == 1 && b->records[0].seq == seen->v[i].seq);
    }
    read_all(s, b, seen);
}

static tr_shard *open_shard(uint32_t interval) {
    tr_shard_config cfg = {.segment_max_bytes = 1u << 20, .segment_max_age_ms = INT64_MAX / 4,
                           .index_interval_bytes = interval};
    tr_shard *s = NULL;
    int rc = tr_shard_open(shard_dir, "fuzz", &cfg, &s);
    FUZZ_CHECK(rc <= 0);
    FUZZ_CHECK((rc == TR_OK) == (s != NULL));
    return s;
}

static const char appended[] = "appended by the fuzzer";

/* Appends one record to whatever was recovered; it reads back, before and after a reopen. */
static tr_shard *append_and_reopen(tr_shard *s, uint32_t interval, tr_read_batch *b) {
    tr_record_in in = {.producer_ms = 7, .flags = 0, .pkey = "pk", .pkey_len = 2,
                       .data = appended, .data_len = sizeof appended};
    uint64_t seq = 0, ns = 0;
    if (tr_shard_append(s, &in, 1, APPEND_MS, &seq) != TR_OK) return s;
    if (tr_shard_commit(s, 1, &ns) != TR_OK) return s;
    for (int round = 0; round < 2; round++) {
        int rc = tr_shard_read(s, seq, 1, 1, b);
        CONSISTENT(rc == TR_OK && b->count == 1 && b->records[0].seq == seq);
        if (rc != TR_OK || b->count != 1) break;
        CONSISTENT(b->records[0].data_len == sizeof appended &&
                   memcmp(b->records[0].data, appended, sizeof appended) == 0);
        if (round == 1) break;
        tr_shard_free(s);
        s = open_shard(interval);
        FUZZ_CHECK(s != NULL);
    }
    return s;
}

static tr_shard *close_and_reopen(tr_shard *s, uint32_t interval) {
    uint64_t ending = 0;
    if (tr_shard_close(s, &ending) != TR_OK) return s;
    uint64_t seq;
    tr_record_in in = {.producer_ms = TR_NO_TIME, .data = "x", .data_len = 1};
    FUZZ_CHECK(tr_shard_append(s, &in, 1, APPEND_MS, &seq) == TR_ECLOSED);
    tr_shard_free(s);
    s = open_shard(interval);
    FUZZ_CHECK(s != NULL);
    tr_shard_info info;
    tr_shard_get_info(s, &info);
    FUZZ_CHECK(info.closed && info.ending_seq == ending);
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < SEG_IN_HEADER_BYTES) return 0;
    uint8_t flags = data[0];
    uint32_t interval = seg_in_interval(data[1]);
    size_t rest = size - SEG_IN_HEADER_BYTES;
    size_t a_len = tr_get_u32(data + 2), idx_len = tr_get_u32(data + 6);
    if (a_len > rest) a_len = rest;
    if (idx_len > rest - a_len) idx_len = rest - a_len;
    size_t b_len = rest - a_len - idx_len;

    /* One copy, cut into the three parts, each at the end of its own allocation so that
     * reads past a part's end are caught where they happen. */
    uint8_t *a = malloc(a_len + 1), *idx = malloc(idx_len + 1), *b = malloc(b_len + 1);
    FUZZ_CHECK(a && idx && b);
    memcpy(a, data + SEG_IN_HEADER_BYTES, a_len);
    memcpy(idx, data + SEG_IN_HEADER_BYTES + a_len, idx_len);
    memcpy(b, data + SEG_IN_HEADER_BYTES + a_len + idx_len, b_len);
    write_shard(flags, a, a_len, idx, idx_len, b, b_len);

    tr_shard *s = open_shard(interval);
    if (!s) {
        free(a), free(idx), free(b);
        return 0;
    }
    tr_read_batch batch;
    tr_read_batch_init(&batch);
    seen_list seen = {.v = malloc(MAX_SEEN * sizeof *seen.v)};
    FUZZ_CHECK(seen.v != NULL);

    read_all(s, &batch, &seen);
    if (!(flags & SEG_IN_IDX)) check_seeks(s, &batch, &seen);
    /* Seeks to numbers and times no record has must not crash either. */
    for (int i = 0; i < 4; i++) {
        uint64_t seq = i == 0 ? 0 : i == 1 ? UINT64_MAX : tr_get_u64(data + 2) >> (i * 8);
        int rc = tr_shard_read(s, seq, 3, 1 << 16, &batch);
        FUZZ_CHECK(rc <= 0);
        (void)tr_shard_seq_at_time(s, i == 0 ? INT64_MIN : i == 1 ? INT64_MAX : (int64_t)seq);
    }

    if (flags & SEG_IN_APPEND) s = append_and_reopen(s, interval, &batch);
    if (flags & SEG_IN_TRIM) trim(s, &batch, &seen, !(flags & SEG_IN_IDX));
    if (flags & SEG_IN_CLOSE) s = close_and_reopen(s, interval);

    free(seen.v);
    tr_read_batch_free(&batch);
    tr_shard_free(s);
    free(a), free(idx), free(b);
    return 0;
}
