/* The shard log driven directly, as its storage thread would: append, commit, read, seek,
 * roll, trim, close, and recovery from torn and corrupted files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/segment.h"
#include "core/shard.h"
#include "tmpdir.h"
#include "util/error.h"

static const int64_t T0 = 1700000000000;

static tr_shard_config small_cfg(uint64_t seg_bytes) {
    tr_shard_config c = {.segment_max_bytes = seg_bytes, .segment_max_age_ms = INT64_MAX / 2,
                         .index_interval_bytes = 4096};
    return c;
}

/* Payload of record i: deterministic, of varying length. */
static size_t payload(uint64_t i, uint8_t *out, size_t cap) {
    size_t len = (size_t)(i * 7919 % 300) + 1;
    if (len > cap) len = cap;
    for (size_t k = 0; k < len; k++) out[k] = (uint8_t)(i * 31 + k);
    return len;
}

/* Appends records first..first+n-1 (payload(i)), arrival T0 + i*step_ms, committing every
 * `every` records. */
static void append_range(tr_shard *s, uint64_t first, uint64_t n, int64_t step_ms, uint64_t every) {
    uint8_t buf[512];
    for (uint64_t i = first; i < first + n; i++) {
        char key[32];
        int kl = snprintf(key, sizeof key, "pk-%" PRIu64, i);
        tr_record_in in = {.producer_ms = (int64_t)i, .pkey = key, .pkey_len = (uint32_t)kl};
        in.data = buf;
        in.data_len = (uint32_t)payload(i, buf, sizeof buf);
        uint64_t seq;
        assert_int_equal(tr_shard_append(s, &in, 1, T0 + (int64_t)i * step_ms, &seq), TR_OK);
        assert_int_equal(seq, i);
        if ((i - first + 1) % every == 0) assert_int_equal(tr_shard_sync(s), TR_OK);
    }
    assert_int_equal(tr_shard_sync(s), TR_OK);
}

static void check_record(const tr_record *r) {
    uint8_t buf[512];
    size_t len = payload(r->seq, buf, sizeof buf);
    assert_int_equal(r->data_len, len);
    assert_memory_equal(r->data, buf, len);
    assert_int_equal(r->producer_ms, (int64_t)r->seq);
}

/* Reads everything from `from` and checks contiguity and contents; returns the count. */
static uint64_t read_all(tr_shard *s, uint64_t from, size_t max_records) {
    tr_read_batch b;
    tr_read_batch_init(&b);
    tr_shard_info info;
    tr_shard_get_info(s, &info);
    uint64_t n = 0, want = from < info.first_seq ? info.first_seq : from;
    for (;;) {
        assert_int_equal(tr_shard_read(s, want, max_records, 1u << 20, &b), TR_OK);
        if (b.count == 0) break;
        for (size_t i = 0; i < b.count; i++) {
            assert_int_equal(b.records[i].seq, want);
            check_record(&b.records[i]);
            want++;
            n++;
        }
        assert_int_equal(b.next_seq, want);
    }
    tr_read_batch_free(&b);
    return n;
}

static void round_trip(void **state) {
    (void)state;
    char dir[256];
    assert_non_null(tmpdir_make(dir, sizeof dir));
    tr_shard_config cfg = small_cfg(64 * 1024);
    tr_shard *s;
    assert_int_equal(tr_shard_open(dir, "t", &cfg, &s), TR_OK);
    tr_shard_info info;
    tr_shard_get_info(s, &info);
    assert_int_equal(info.next_seq, 1);
    assert_int_equal(info.records, 0);
    append_range(s, 1, 5000, 1, 100);
    tr_shard_get_info(s, &info);
    assert_int_equal(info.last_seq, 5000);
    assert_int_equal(info.records, 5000);
    assert_true(info.segments > 5); /* small segments rolled */
    assert_int_equal(read_all(s, 0, 1000), 5000);
    assert_int_equal(read_all(s, 4321, 7), 5000 - 4320);
    /* Uncommitted records are invisible. */
    tr_record_in in = {.producer_ms = 5001, .data = "x", .data_len = 1};
    uint64_t seq;
    assert_int_equal(tr_shard_append(s, &in, 1, T0 + 9999, &seq), TR_OK);
    tr_shard_get_info(s, &info);
    assert_int_equal(info.last_seq, 5000);
    tr_shard_free(s);
    /* Reopen: the uncommitted record was never written. */
    assert_int_equal(tr_shard_open(dir, "t", &cfg, &s), TR_OK);
    tr_shard_get_info(s, &info);
    assert_int_equal(info.last_seq, 5000);
    assert_int_equal(read_all(s, 1, 333), 5000);
    tr_shard_free(s);
    tmpdir_remove(dir);
}

static void seeks(void **state) {
    (void)state;
    char dir[256];
    assert_non_null(tmpdir_make(dir, sizeof dir));
    tr_shard_config cfg = small_cfg(32 * 1024);
    tr_shard *s;
    assert_int_equal(tr_shard_open(dir, "t", &cfg, &s), TR_OK);
    append_range(s, 1, 2000, 10, 50); /* record i arrives at T0 + 10 i */
    /* AT_TIMESTAMP: exact, between, before all, after all. */
    assert_int_equal(tr_shard_seq_at_time(s, T0 + 10 * 777), 777);
    assert_int_equal(tr_shard_seq_at_time(s, T0 + 10 * 777 + 3), 778);
    assert_int_equal(tr_shard_seq_at_time(s, 0), 1);
    assert_int_equal(tr_shard_seq_at_time(s, T0 + 10 * 5000), 2001);
    /* AT/AFTER sequence number and LATEST. */
    tr_read_batch b;
    tr_read_batch_init(&b);
    assert_int_equal(tr_shard_read(s, 1500, 1, 1, &b), TR_OK);
    assert_int_equal(b.count, 1);
    assert_int_equal(b.records[0].seq, 1500);
    assert_int_equal(tr_shard_read(s, 1501, 1, 1, &b), TR_OK);
    assert_int_equal(b.records[0].seq, 1501);
    tr_shard_info info;
    tr_shard_get_info(s, &info);
    assert_int_equal(tr_shard_read(s, info.next_seq, 10, 1 << 20, &b), TR_OK);
    assert_int_equal(b.count, 0);
    assert_int_equal(b.next_seq, 2001);
    /* max_bytes bounds a read, but at least one record comes back. */
    assert_int_equal(tr_shard_read(s, 1, 1000, 1, &b), TR_OK);
    assert_int_equal(b.count, 1);
    tr_read_batch_free(&b);
    tr_shard_free(s);
    tmpdir_remove(dir);
}

static void million_records_index(void **state) {
    (void)state;
    char dir[256];
    assert_non_null(tmpdir_make(dir, sizeof dir));
    tr_shard_config cfg = small_cfg(16u * 1024 * 1024);
    tr_shard *s;
    assert_int_equal(tr_shard_open(dir, "t", &cfg, &s), TR_OK);
    const uint64_t N = 1000000;
    uint8_t data[16];
    tr_record_in batch[1000];
    for (uint64_t i = 1; i <= N; i += 1000) {
        for (int k = 0; k < 1000; k++) {
            uint64_t seq = i + (uint64_t)k;
            memcpy(data, &seq, 8);
            batch[k] = (tr_record_in){.producer_ms = (int64_t)seq, .data = data, .data_len = 8};
        }
        /* Encoding copies the payload, so one buffer serves the batch only if each record
         * is appended alone: append them one call at a time with the right payload. */
        for (int k = 0; k < 1000; k++) {
            uint64_t seq = i + (uint64_t)k, got;
            memcpy(data, &seq, 8);
            assert_int_equal(tr_shard_append(s, &batch[k], 1, T0 + (int64_t)(seq / 10), &got), TR_OK);
        }
        if (i % 100000 == 1) assert_int_equal(tr_shard_sync(s), TR_OK);
    }
    assert_int_equal(tr_shard_sync(s), TR_OK);
    tr_shard_info info;
    tr_shard_get_info(s, &info);
    assert_int_equal(info.records, N);
    assert_true(info.segments >= 3);
    tr_read_batch b;
    tr_read_batch_init(&b);
    for (int round = 0; round < 2; round++) {
        srand(7);
        for (int q = 0; q < 5000; q++) {
            uint64_t seq = (uint64_t)rand() % N + 1;
            assert_int_equal(tr_shard_read(s, seq, 1, 1, &b), TR_OK);
            assert_int_equal(b.count, 1);
            assert_int_equal(b.records[0].seq, seq);
            uint64_t v;
            memcpy(&v, b.records[0].data, 8);
            assert_int_equal(v, seq);
            /* arrival = T0 + seq/10: the first record at that time is the multiple of 10. */
            uint64_t at = tr_shard_seq_at_time(s, T0 + (int64_t)(seq / 10));
            assert_int_equal(at, seq / 10 * 10 == 0 ? 1 : seq / 10 * 10);
        }
        /* Second round after a reopen: sealed segments load their saved index. */
        tr_shard_free(s);
        assert_int_equal(tr_shard_open(dir, "t", &cfg, &s), TR_OK);
    }
    tr_read_batch_free(&b);
    tr_shard_free(s);
    tmpdir_remove(dir);
}

static void retention(void **state) {
    (void)state;
    char dir[256];
    assert_non_null(tmpdir_make(dir, sizeof dir));
    tr_shard_config cfg = small_cfg(16 * 1024);
    tr_shard *s;
    assert_int_equal(tr_shard_open(dir, "t", &cfg, &s), TR_OK);
    append_range(s, 1, 1000, 1000, 10); /* record i arrives at T0 + i s */
    tr_shard_info before, after;
    tr_shard_get_info(s, &before);
    int deleted = tr_shard_trim(s, T0 + 500 * 1000);
    assert_true(deleted > 0);
    tr_shard_get_info(s, &after);
    assert_true(after.first_seq > 1 && after.first_seq <= 500);
    assert_int_equal(after.last_seq, 1000);
    assert_true(after.bytes < before.bytes);
    assert_int_equal(after.records, 1001 - after.first_seq);
    /* Reads from before the horizon start at it. */
    tr_read_batch b;
    tr_read_batch_init(&b);
    assert_int_equal(tr_shard_read(s, 1, 1, 1, &b), TR_OK);
    assert_int_equal(b.records[0].seq, after.first_seq);
    tr_read_batch_free(&b);
    /* Everything expired: the log empties but sequence numbers keep growing, across reopen. */
    assert_true(tr_shard_trim(s, T0 + 2000 * 1000) > 0);
    tr_shard_get_info(s, &after);
    assert_int_equal(after.records, 0);
    assert_int_equal(after.next_seq, 1001);
    tr_shard_free(s);
    assert_int_equal(tr_shard_open(dir, "t", &cfg, &s), TR_OK);
    tr_shard_get_info(s, &after);
    assert_int_equal(after.next_seq, 1001);
    append_range(s, 1001, 10, 1000, 10);
    assert_int_equal(read_all(s, 0, 100), 10);
    tr_shard_free(s);
    tmpdir_remove(dir);
}

static void close_shard(void **state) {
    (void)state;
    char dir[256];
    assert_non_null(tmpdir_make(dir, sizeof dir));
    tr_shard_config cfg = small_cfg(1 << 20);
    tr_shard *s;
    assert_int_equal(tr_shard_open(dir, "t", &cfg, &s), TR_OK);
    append_range(s, 1, 10, 1, 10);
    uint64_t end;
    assert_int_equal(tr_shard_close(s, &end), TR_OK);
    assert_int_equal(end, 10);
    tr_record_in in = {.producer_ms = 11, .data = "x", .data_len = 1};
    uint64_t seq;
    assert_int_equal(tr_shard_append(s, &in, 1, T0, &seq), TR_ECLOSED);
    assert_int_equal(tr_shard_wait(s, 11, 1000), 0); /* a closed shard ends waits */
    tr_shard_free(s);
    assert_int_equal(tr_shard_open(dir, "t", &cfg, &s), TR_OK);
    tr_shard_info info;
    tr_shard_get_info(s, &info);
    assert_true(info.closed);
    assert_int_equal(info.ending_seq, 10);
    assert_int_equal(tr_shard_append(s, &in, 1, T0, &seq), TR_ECLOSED);
    assert_int_equal(read_all(s, 1, 4), 10);
    tr_shard_free(s);
    tmpdir_remove(dir);
}

static char *newest_segment(const char *dir, char *out, size_t len) {
    uint64_t best = 0;
    int found = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        uint64_t base;
        if (tr_segment_parse_name(e->d_name, &base) == 0 && (!found || base > best)) {
            best = base;
            found = 1;
        }
    }
    closedir(d);
    assert_true(found);
    tr_segment_path(out, len, dir, best, TR_SEGMENT_SUFFIX);
    return out;
}

static off_t file_size(const char *path) {
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

static void recover_torn_tail(void **state) {
    (void)state;
    char dir[256], seg[512];
    assert_non_null(tmpdir_make(dir, sizeof dir));
    tr_shard_config cfg = small_cfg(1 << 20);
    tr_shard *s;
    assert_int_equal(tr_shard_open(dir, "t", &cfg, &s), TR_OK);
    append_range(s, 1, 100, 1, 100);
    tr_shard_free(s);
    newest_segment(dir, seg, sizeof seg);
    /* Cut the last frame in half, then append garbage zeros as a crashed write might. */
    off_t size = file_size(seg);
    assert_int_equal(truncate(seg, size - 20), 0);
    int fd = open(seg, O_WRONLY | O_APPEND);
    char zeros[100] = {0};
    assert_int_equal(write(fd, zeros, sizeof zeros), (ssize_t)sizeof zeros);
    close(fd);
    assert_int_equal(tr_shard_open(dir, "t", &cfg, &s), TR_OK);
    tr_shard_info info;
    tr_shard_get_info(s, &info);
    assert_int_equal(info.last_seq, 99);
    assert_int_equal(read_all(s, 1, 10), 99);
    /* The log takes new appends at the next number. */
    append_range(s, 100, 5, 1, 5);
    assert_int_equal(read_all(s, 1, 1000), 104);
    tr_shard_free(s);
    tmpdir_remove(dir);
}

static void flip_byte(const char *path, off_t at) {
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t c;
    assert_int_equal(pread(fd, &c, 1, at), 1);
    c ^= 0x5a;
    assert_int_equal(pwrite(fd, &c, 1, at), 1);
    close(fd);
}

static void recover_flipped_byte(void **state) {
    (void)state;
    char dir[256], seg[512];
    assert_non_null(tmpdir_make(dir, sizeof dir));
    tr_shard_config cfg = small_cfg(1 << 20);
    tr_shard *s;
    assert_int_equal(tr_shard_open(dir, "t", &cfg, &s), TR_OK);
    append_range(s, 1, 200, 1, 200);
    tr_shard_free(s);
    newest_segment(dir, seg, sizeof seg);
    off_t size = file_size(seg);
    flip_byte(seg, size / 2);
    /* Corruption in the middle is reported, never truncated away. */
    assert_int_equal(tr_shard_open(dir, "t", &cfg, &s), TR_OK);
    assert_int_equal(file_size(seg), size);
    tr_shard_info info;
    tr_shard_get_info(s, &info);
    assert_int_equal(info.last_seq, 200);
    tr_read_batch b;
    tr_read_batch_init(&b);
    uint64_t want = 1;
    int rc;
    while ((rc = tr_shard_read(s, want, 7, 1 << 20, &b)) == TR_OK && b.count) {
        for (size_t i = 0; i < b.count; i++) check_record(&b.records[i]);
        want = b.next_seq;
    }
    assert_int_equal(rc, TR_ECORRUPT);
    assert_true(want > 1 && want < 200);
    /* Records after the bad one are still there for a reader that seeks past it. */
    uint64_t after = 0;
    for (uint64_t q = want + 1; q <= 200 && !after; q++) {
        if (tr_shard_read(s, q, 1, 1, &b) == TR_OK && b.count) after = b.records[0].seq;
    }
    assert_true(after > want);
    assert_int_equal(read_all(s, after, 13), 201 - after);
    append_range(s, 201, 3, 1, 3);
    tr_read_batch_free(&b);
    tr_shard_free(s);
    tmpdir_remove(dir);
}

static void sealed_corruption_on_read(void **state) {
    (void)state;
    char dir[256], seg[512];
    assert_non_null(tmpdir_make(dir, sizeof dir));
    tr_shard_config cfg = small_cfg(8 * 1024);
    tr_shard *s;
    assert_int_equal(tr_shard_open(dir, "t", &cfg, &s), TR_OK);
    append_range(s, 1, 300, 1, 300);
    tr_shard_free(s);
    tr_segment_path(seg, sizeof seg, dir, 1, TR_SEGMENT_SUFFIX); /* oldest: sealed, indexed */
    flip_byte(seg, file_size(seg) - 10);
    assert_int_equal(tr_shard_open(dir, "t", &cfg, &s), TR_OK);
    tr_read_batch b;
    tr_read_batch_init(&b);
    int rc = TR_OK;
    uint64_t want = 1;
    while (rc == TR_OK) {
        rc = tr_shard_read(s, want, 1000, 1 << 20, &b);
        if (rc == TR_OK && b.count == 0) break;
        want = b.next_seq;
    }
    assert_int_equal(rc, TR_ECORRUPT);
    tr_read_batch_free(&b);
    tr_shard_free(s);
    tmpdir_remove(dir);
}

static void stub_segment_from_crashed_roll(void **state) {
    (void)state;
    char dir[256], stub[512];
    assert_non_null(tmpdir_make(dir, sizeof dir));
    tr_shard_config cfg = small_cfg(1 << 20);
    tr_shard *s;
    assert_int_equal(tr_shard_open(dir, "t", &cfg, &s), TR_OK);
    append_range(s, 1, 50, 1, 50);
    tr_shard_free(s);
    tr_segment_path(stub, sizeof stub, dir, 51, TR_SEGMENT_SUFFIX);
    int fd = open(stub, O_CREAT | O_WRONLY, 0600);
    assert_int_equal(write(fd, "TRSEG", 5), 5);
    close(fd);
    assert_int_equal(tr_shard_open(dir, "t", &cfg, &s), TR_OK);
    assert_int_equal(access(stub, F_OK), -1);
    assert_int_equal(read_all(s, 1, 100), 50);
    append_range(s, 51, 5, 1, 5);
    tr_shard_free(s);
    tmpdir_remove(dir);
}

static void record_limits(void **state) {
    (void)state;
    char dir[256];
    assert_non_null(tmpdir_make(dir, sizeof dir));
    tr_shard_config cfg = small_cfg(4u << 20); /* smaller than one big record */
    tr_shard *s;
    assert_int_equal(tr_shard_open(dir, "t", &cfg, &s), TR_OK);
    uint8_t *big = malloc(TR_MAX_RECORD_BYTES + 1);
    for (size_t i = 0; i < TR_MAX_RECORD_BYTES + 1; i++) big[i] = (uint8_t)(i * 13);
    tr_record_in in = {.producer_ms = TR_NO_TIME, .data = big, .data_len = TR_MAX_RECORD_BYTES + 1};
    uint64_t seq;
    assert_int_equal(tr_shard_append(s, &in, 1, T0, &seq), TR_ETOOBIG);
    in.data_len = TR_MAX_RECORD_BYTES;
    for (int i = 0; i < 3; i++) assert_int_equal(tr_shard_append(s, &in, 1, T0, &seq), TR_OK);
    assert_int_equal(tr_shard_sync(s), TR_OK);
    tr_read_batch b;
    tr_read_batch_init(&b);
    for (uint64_t q = 1; q <= 3; q++) {
        assert_int_equal(tr_shard_read(s, q, 10, 1, &b), TR_OK);
        assert_int_equal(b.count, 1);
        assert_int_equal(b.records[0].data_len, TR_MAX_RECORD_BYTES);
        assert_memory_equal(b.records[0].data, big, TR_MAX_RECORD_BYTES);
    }
    tr_read_batch_free(&b);
    free(big);
    tr_shard_free(s);
    tmpdir_remove(dir);
}

/* Large payloads are written from the caller's buffers (a gather write), small ones copied:
 * one commit of thousands of mixed records, more pieces than one pwritev takes, reads back
 * byte for byte, before and after a reopen. */
static void large_and_small_in_one_commit(void **state) {
    (void)state;
    char dir[256];
    assert_non_null(tmpdir_make(dir, sizeof dir));
    tr_shard_config cfg = small_cfg(64u << 20);
    tr_shard *s;
    assert_int_equal(tr_shard_open(dir, "t", &cfg, &s), TR_OK);
    enum { N = 3000, BIG = 5000, SMALL = 100 };
    uint8_t *data = malloc((size_t)N * BIG);
    tr_record_in *recs = calloc(N, sizeof *recs);
    assert_non_null(data);
    assert_non_null(recs);
    for (size_t i = 0; i < N; i++) {
        uint8_t *d = data + i * BIG;
        uint32_t len = i % 3 == 0 ? BIG : i % 3 == 1 ? SMALL : 4096;
        for (uint32_t k = 0; k < len; k++) d[k] = (uint8_t)(i * 131 + k);
        recs[i] = (tr_record_in){.producer_ms = (int64_t)i, .pkey = "k", .pkey_len = 1,
                                 .data = d, .data_len = len};
    }
    uint64_t seq, ns;
    assert_int_equal(tr_shard_append(s, recs, N / 2, T0, &seq), TR_OK);
    assert_int_equal(seq, 1);
    assert_int_equal(tr_shard_append(s, recs + N / 2, N - N / 2, T0 + 1, &seq), TR_OK);
    assert_int_equal(seq, N / 2 + 1);
    assert_int_equal(tr_shard_commit(s, 1, &ns), TR_OK);
    tr_read_batch b;
    tr_read_batch_init(&b);
    for (int round = 0; round < 2; round++) {
        uint64_t next = 1;
        while (next <= N) {
            assert_int_equal(tr_shard_read(s, next, 1000, 1u << 20, &b), TR_OK);
            assert_true(b.count > 0);
            for (size_t k = 0; k < b.count; k++) {
                const tr_record *r = &b.records[k];
                size_t i = (size_t)(r->seq - 1);
                assert_int_equal(r->seq, next + k);
                assert_int_equal(r->producer_ms, (int64_t)i);
                assert_int_equal(r->data_len, recs[i].data_len);
                assert_memory_equal(r->data, recs[i].data, r->data_len);
            }
            next = b.next_seq;
        }
        tr_shard_free(s);
        assert_int_equal(tr_shard_open(dir, "t", &cfg, &s), TR_OK);
    }
    tr_shard_info info;
    tr_shard_get_info(s, &info);
    assert_int_equal(info.records, N);
    tr_read_batch_free(&b);
    tr_shard_free(s);
    free(recs);
    free(data);
    tmpdir_remove(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),
        cmocka_unit_test(seeks),
        cmocka_unit_test(million_records_index),
        cmocka_unit_test(retention),
        cmocka_unit_test(close_shard),
        cmocka_unit_test(recover_torn_tail),
        cmocka_unit_test(recover_flipped_byte),
        cmocka_unit_test(sealed_corruption_on_read),
        cmocka_unit_test(stub_segment_from_crashed_roll),
        cmocka_unit_test(record_limits),
        cmocka_unit_test(large_and_small_in_one_commit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
