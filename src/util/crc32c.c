#include "util/crc32c.h"

#include <pthread.h>
#include <string.h>

#define POLY 0x82f63b78u

/* The hardware path runs three CRCs over three adjacent blocks at once (the instruction's
 * latency is three times its throughput) and joins them. A CRC register is linear in its
 * input, so crc(A || B) = shift(crc(A), |B|) ^ crc(B) with crc(B) started from 0, where
 * shift(x, n) is x run through n zero bytes: for a fixed n a 32x32 bit matrix, kept here as
 * four byte tables. */
#define LONG_BLOCK 8192u
#define SHORT_BLOCK 256u

static uint32_t table[8][256];
static uint32_t long_shift[4][256], short_shift[4][256];
static int have_sse42;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* Register update without the pre- and post-inversion, one byte at a time. */
static uint32_t crc32c_bytes(uint32_t crc, const uint8_t *p, size_t len) {
    while (len--) crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

/* The tables of shift(., n): entry [k][v] is the register (v << 8k) after n zero bytes.
 * Built from the 32 single-bit columns, each one run through n zeros. */
static void shift_tables_init(uint32_t tab[4][256], size_t n) {
    static const uint8_t zeros[LONG_BLOCK];
    uint32_t col[32];
    for (int b = 0; b < 32; b++) col[b] = crc32c_bytes(1u << b, zeros, n);
    for (int k = 0; k < 4; k++) {
        for (uint32_t v = 0; v < 256; v++) {
            uint32_t x = 0;
            for (int b = 0; b < 8; b++)
                if (v & (1u << b)) x ^= col[8 * k + b];
            tab[k][v] = x;
        }
    }
}

static void crc32c_init(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
        table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = table[0][n];
        for (int k = 1; k < 8; k++) {
            c = table[0][c & 0xff] ^ (c >> 8);
            table[k][n] = c;
        }
    }
#if defined(__x86_64__)
    __builtin_cpu_init();
    have_sse42 = __builtin_cpu_supports("sse4.2");
    shift_tables_init(long_shift, LONG_BLOCK);
    shift_tables_init(short_shift, SHORT_BLOCK);
#endif
}

static uint32_t crc32c_sw(uint32_t crc, const uint8_t *p, size_t len) {
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        v ^= crc;
        crc = table[7][v & 0xff] ^ table[6][(v >> 8) & 0xff] ^ table[5][(v >> 16) & 0xff] ^
              table[4][(v >> 24) & 0xff] ^ table[3][(v >> 32) & 0xff] ^
              table[2][(v >> 40) & 0xff] ^ table[1][(v >> 48) & 0xff] ^ table[0][v >> 56];
        p += 8;
        len -= 8;
    }
    return crc32c_bytes(crc, p, len);
}

#if defined(__x86_64__)
static uint32_t shift(uint32_t tab[4][256], uint32_t crc) {
    return tab[0][crc & 0xff] ^ tab[1][(crc >> 8) & 0xff] ^ tab[2][(crc >> 16) & 0xff] ^
           tab[3][crc >> 24];
}

static inline uint64_t load64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Three interleaved streams over blocks of `block` bytes while 3 * block bytes remain. */
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw3(uint32_t crc, const uint8_t **pp,
                                                              size_t *lenp, size_t block,
                                                              uint32_t tab[4][256]) {
    const uint8_t *p = *pp;
    size_t len = *lenp;
    while (len >= 3 * block) {
        uint64_t c0 = crc, c1 = 0, c2 = 0;
        const uint8_t *end = p + block;
        do {
            c0 = __builtin_ia32_crc32di(c0, load64(p));
            c1 = __builtin_ia32_crc32di(c1, load64(p + block));
            c2 = __builtin_ia32_crc32di(c2, load64(p + 2 * block));
            p += 8;
        } while (p < end);
        crc = shift(tab, (uint32_t)c0) ^ (uint32_t)c1;
        crc = shift(tab, crc) ^ (uint32_t)c2;
        p += 2 * block;
        len -= 3 * block;
    }
    *pp = p;
    *lenp = len;
    return crc;
}

__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p,
                                                             size_t len) {
    crc = crc32c_hw3(crc, &p, &len, LONG_BLOCK, long_shift);
    crc = crc32c_hw3(crc, &p, &len, SHORT_BLOCK, short_shift);
    uint64_t c = crc;
    while (len >= 8) {
        c = __builtin_ia32_crc32di(c, load64(p));
        p += 8;
        len -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (len--) c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32;
}
#endif

uint32_t tr_crc32c(uint32_t crc, const void *data, size_t len) {
    pthread_once(&init_once, crc32c_init);
    crc = ~crc;
#if defined(__x86_64__)
    if (have_sse42) return ~crc32c_hw(crc, data, len);
#endif
    return ~crc32c_sw(crc, data, len);
}
