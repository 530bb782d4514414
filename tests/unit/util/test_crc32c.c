/* CRC32C: known values, and the hardware path (three interleaved streams joined by shift
 * tables) against a plain bitwise reference at every length and alignment around its block
 * boundaries, in one call and split into pieces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "util/crc32c.h"

static uint32_t reference(uint32_t crc, const uint8_t *p, size_t len) {
    crc = ~crc;
    while (len--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++) crc = crc & 1 ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
    }
    return ~crc;
}

static void known_values(void **state) {
    (void)state;
    assert_int_equal(tr_crc32c(0, "123456789", 9), 0xe3069283u);
    assert_int_equal(tr_crc32c(0, "", 0), 0);
    uint8_t zeros[32] = {0}, ones[32];
    memset(ones, 0xff, sizeof ones);
    assert_int_equal(tr_crc32c(0, zeros, sizeof zeros), 0x8a9136aau); /* RFC 3720 B.4 */
    assert_int_equal(tr_crc32c(0, ones, sizeof ones), 0x62a8ab43u);
}

static void matches_reference(void **state) {
    (void)state;
    enum { MAX = 3 * 8192 * 2 + 3 * 256 + 64 };
    uint8_t *buf = malloc(MAX + 8);
    assert_non_null(buf);
    uint64_t x = 88172645463325252u;
    for (size_t i = 0; i < MAX + 8; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        buf[i] = (uint8_t)x;
    }
    static const size_t lens[] = {0, 1, 7, 8, 9, 255, 256, 767, 768, 769, 3 * 256 + 7,
                                  8191, 8192, 3 * 8192 - 1, 3 * 8192, 3 * 8192 + 1,
                                  3 * 8192 + 3 * 256 + 5, MAX};
    for (size_t a = 0; a < 8; a++) {
        for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
            size_t len = lens[i];
            uint32_t want = reference(0x12345678u, buf + a, len);
            assert_int_equal(tr_crc32c(0x12345678u, buf + a, len), want);
            size_t half = len / 3;
            uint32_t c = tr_crc32c(0x12345678u, buf + a, half);
            assert_int_equal(tr_crc32c(c, buf + a + half, len - half), want);
        }
    }
    free(buf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(known_values),
        cmocka_unit_test(matches_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
