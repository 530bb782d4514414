/* tr_md5 against RFC 1321's test suite and against OpenSSL on every length around the block
 * and padding boundaries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "util/md5.h"

static void hex(const uint8_t *d, char *out) {
    for (int i = 0; i < 16; i++) sprintf(out + 2 * i, "%02x", d[i]);
}

static void rfc1321_suite(void **state) {
    (void)state;
    static const char *const in[] = {
        "", "a", "abc", "message digest", "abcdefghijklmnopqrstuvwxyz",
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        "12345678901234567890123456789012345678901234567890123456789012345678901234567890"};
    static const char *const want[] = {
        "d41d8cd98f00b204e9800998ecf8427e", "0cc175b9c0f1b6a831c399e269772661",
        "900150983cd24fb0d6963f7d28e17f72", "f96b697d7cb7938d525a2f31aaf161d0",
        "c3fcd3d76192e4007dfb496cca67e13b", "d174ab98d277d9f5a5611c2c9f419d9f",
        "57edf4a22be3c955ac49da2e2107b67a"};
    for (size_t i = 0; i < sizeof in / sizeof *in; i++) {
        uint8_t d[16];
        char h[33];
        tr_md5(in[i], strlen(in[i]), d);
        hex(d, h);
        assert_string_equal(h, want[i]);
    }
}

static void same_as_openssl(void **state) {
    (void)state;
    uint8_t buf[1100];
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < sizeof buf; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        buf[i] = (uint8_t)x;
    }
    for (size_t len = 0; len <= sizeof buf; len++) {
        for (size_t off = 0; off < 3 && off + len <= sizeof buf; off++) { /* unaligned too */
            uint8_t a[16], b[16];
            unsigned int n = 0;
            tr_md5(buf + off, len, a);
            assert_int_equal(EVP_Digest(buf + off, len, b, &n, EVP_md5(), NULL), 1);
            assert_int_equal(n, 16);
            if (memcmp(a, b, 16) != 0) fail_msg("length %zu at offset %zu differs", len, off);
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rfc1321_suite),
        cmocka_unit_test(same_as_openssl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
