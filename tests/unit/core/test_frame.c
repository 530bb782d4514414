#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "core/frame.h"

static void round_trip(void **state) {
    (void)state;
    uint8_t buf[256];
    tr_record_in in = {.producer_ms = 1234, .flags = TR_KIND_FRAGMENT, .pkey = "key", .pkey_len = 3,
                       .ehk = "42", .ehk_len = 2, .data = "hello", .data_len = 5};
    size_t n = tr_frame_encode(buf, &in, 77, 1700000000000);
    assert_int_equal(n, tr_frame_size(&in));
    tr_record rec;
    size_t flen;
    assert_int_equal(tr_frame_decode(buf, n, &rec, &flen), TR_FRAME_OK);
    assert_int_equal(flen, n);
    assert_int_equal(rec.seq, 77);
    assert_int_equal(rec.arrival_ms, 1700000000000);
    assert_int_equal(rec.producer_ms, 1234);
    assert_int_equal(rec.flags, TR_KIND_FRAGMENT);
    assert_memory_equal(rec.pkey, "key", 3);
    assert_memory_equal(rec.ehk, "42", 2);
    assert_memory_equal(rec.data, "hello", 5);
}

static void short_and_bad(void **state) {
    (void)state;
    uint8_t buf[256];
    tr_record_in in = {.producer_ms = TR_NO_TIME, .pkey = "k", .pkey_len = 1, .data = "abc", .data_len = 3};
    size_t n = tr_frame_encode(buf, &in, 1, 1);
    tr_record rec;
    size_t flen;
    assert_int_equal(tr_frame_decode(buf, 4, &rec, &flen), TR_FRAME_SHORT);
    assert_int_equal(flen, 0);
    assert_int_equal(tr_frame_decode(buf, n - 1, &rec, &flen), TR_FRAME_SHORT);
    assert_int_equal(flen, n);
    /* Every single flipped bit is caught. */
    for (size_t i = 0; i < n * 8; i++) {
        buf[i / 8] ^= (uint8_t)(1u << (i % 8));
        tr_frame_status st = tr_frame_decode(buf, n, &rec, &flen);
        assert_true(st != TR_FRAME_OK);
        buf[i / 8] ^= (uint8_t)(1u << (i % 8));
    }
    /* A zero-filled tail is not a frame. */
    uint8_t zeros[64] = {0};
    assert_int_equal(tr_frame_decode(zeros, sizeof zeros, &rec, &flen), TR_FRAME_BAD);
}

/* The head alone, followed by the payload from elsewhere, is the same frame. */
static void head_then_payload(void **state) {
    (void)state;
    static uint8_t whole[6000], parts[6000], data[5000];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)(i * 7 + 1);
    tr_record_in in = {.producer_ms = 5, .flags = TR_KIND_DATA, .pkey = "pk", .pkey_len = 2,
                       .ehk = "9", .ehk_len = 1, .data = data, .data_len = sizeof data};
    size_t n = tr_frame_encode(whole, &in, 12, 34);
    size_t head = tr_frame_encode_head(parts, &in, 12, 34);
    assert_int_equal(head + in.data_len, n);
    memcpy(parts + head, data, sizeof data);
    assert_memory_equal(parts, whole, n);
    tr_record rec;
    size_t flen;
    assert_int_equal(tr_frame_decode(parts, n, &rec, &flen), TR_FRAME_OK);
    in.data_len = 0;
    assert_int_equal(tr_frame_encode_head(parts, &in, 12, 34), tr_frame_encode(whole, &in, 12, 34));
    assert_memory_equal(parts, whole, tr_frame_size(&in));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),
        cmocka_unit_test(short_and_bad),
        cmocka_unit_test(head_then_payload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
