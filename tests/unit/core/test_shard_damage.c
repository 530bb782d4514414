/* What a shard does with what it recovered from damaged files, on the paths fuzz_segment
 * found wanting: a seek by time across a corrupt extent, and a roll after a frame whose
 * arrival time is far in the past (a frame with a valid checksum but a value no clock wrote). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/frame.h"
#include "core/segment.h"
#include "core/shard.h"
#include "tmpdir.h"
#include "util/error.h"

static const int64_t T0 = 1700000000000;

#define DATA_BYTES 20
#define FRAME_BYTES (TR_FRAME_HEADER_BYTES + TR_FRAME_FIXED_BODY_BYTES + 1 + DATA_BYTES)
#define PER_SEGMENT 20

static tr_shard *open_shard(const char *dir) {
    tr_shard_config cfg = {.segment_max_bytes = TR_SEGMENT_HEADER_BYTES + PER_SEGMENT * FRAME_BYTES,
                           .segment_max_age_ms = 3600 * 1000,
                           .index_interval_bytes = 64};
    tr_shard *s;
    assert_int_equal(tr_shard_open(dir, "damage", &cfg, &s), TR_OK);
    return s;
}

static void flip_byte(const char *path, uint64_t off) {
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
    b ^= 0x40;
    assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
    close(fd);
}

/* Records 1..30 arrive at T0 + (seq - 1) s, 20 to a segment; then a byte of record 10 rots in
 * the sealed segment. Finding a time must not skip past records that are still there: it
 * answers the record, or a position whose read reports the damage. */
static void seek_by_time_across_corruption(void **state) {
    (void)state;
    char dir[256], path[512];
    assert_non_null(tmpdir_make(dir, sizeof dir));
    tr_shard *s = open_shard(dir);
    uint8_t data[DATA_BYTES] = {0};
    for (uint64_t i = 1; i <= 30; i++) {
        tr_record_in in = {.producer_ms = TR_NO_TIME, .pkey = "k", .pkey_len = 1, .data = data,
                           .data_len = DATA_BYTES};
        uint64_t seq;
        assert_int_equal(tr_shard_append(s, &in, 1, T0 + (int64_t)(i - 1) * 1000, &seq), TR_OK);
        assert_int_equal(seq, i);
        assert_int_equal(tr_shard_sync(s), TR_OK);
    }
    tr_shard_info info;
    tr_shard_get_info(s, &info);
    assert_int_equal(info.segments, 2);
    tr_shard_free(s);

    tr_segment_path(path, sizeof path, dir, 1, TR_SEGMENT_SUFFIX);
    flip_byte(path, TR_SEGMENT_HEADER_BYTES + 9 * FRAME_BYTES + FRAME_BYTES - 3);
    tr_segment_path(path, sizeof path, dir, 1, TR_INDEX_SUFFIX);
    assert_int_equal(unlink(path), 0); /* rescanned at open: the extent is found and indexed */
    s = open_shard(dir);

    tr_read_batch b;
    tr_read_batch_init(&b);
    /* Record 1's time: reading from 1 meets record 10, so the answer is 1, whose read fails
     * (it used to be 31, the end: records 1..9 and 11..30 silently skipped). */
    assert_int_equal(tr_shard_seq_at_time(s, T0), 1);
    assert_int_equal(tr_shard_read(s, 1, 1000, 1 << 20, &b), TR_ECORRUPT);
    /* The lost record's own time: the answer is before it, and its read fails. */
    uint64_t at = tr_shard_seq_at_time(s, T0 + 9000);
    assert_true(at <= 10);
    assert_int_equal(tr_shard_read(s, at, 1000, 1 << 20, &b), TR_ECORRUPT);
    /* Past the extent, the index leads straight to the record. */
    assert_int_equal(tr_shard_seq_at_time(s, T0 + 14000), 15);
    assert_int_equal(tr_shard_seq_at_time(s, T0 + 25000), 26);
    assert_int_equal(tr_shard_seq_at_time(s, T0 + 99000), 31);
    assert_int_equal(tr_shard_read(s, 15, 1000, 1 << 20, &b), TR_OK);
    assert_int_equal(b.count, 16);
    tr_read_batch_free(&b);
    tr_shard_free(s);
    tmpdir_remove(dir);
}

/* A newest segment whose only frame claims to have arrived near INT64_MIN ms: the age of the
 * segment does not fit in 64 bits (signed overflow, caught by UBSan), so the next append must
 * roll rather than compute it. */
static void roll_after_forged_arrival(void **state) {
    (void)state;
    char dir[256];
    assert_non_null(tmpdir_make(dir, sizeof dir));
    tr_segment *seg;
    assert_int_equal(tr_segment_create(dir, 1, T0, &seg), TR_OK);
    tr_record_in in = {.producer_ms = TR_NO_TIME, .pkey = "k", .pkey_len = 1, .data = "old",
                       .data_len = 3};
    uint8_t frame[128];
    size_t n = tr_frame_encode(frame, &in, 1, INT64_MIN + 5);
    assert_int_equal(tr_pwrite_all(seg->fd, frame, n, TR_SEGMENT_HEADER_BYTES), 0);
    tr_segment_unref(seg);

    tr_shard *s = open_shard(dir);
    tr_shard_info info;
    tr_shard_get_info(s, &info);
    assert_int_equal(info.records, 1);
    assert_int_equal(info.segments, 1);
    uint64_t seq, ns;
    in.data = "new";
    assert_int_equal(tr_shard_append(s, &in, 1, T0, &seq), TR_OK);
    assert_int_equal(seq, 2);
    assert_int_equal(tr_shard_commit(s, 1, &ns), TR_OK);
    tr_shard_get_info(s, &info);
    assert_int_equal(info.segments, 2);
    tr_read_batch b;
    tr_read_batch_init(&b);
    assert_int_equal(tr_shard_read(s, 1, 10, 1 << 20, &b), TR_OK);
    assert_int_equal(b.count, 2);
    assert_memory_equal(b.records[1].data, "new", 3);
    tr_read_batch_free(&b);
    tr_shard_free(s);
    tmpdir_remove(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(seek_by_time_across_corruption),
        cmocka_unit_test(roll_after_forged_arrival),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
