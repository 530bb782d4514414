#include "util/md5.h"

#include <string.h>

#define F(x, y, z) ((z) ^ ((x) & ((y) ^ (z))))
#define G(x, y, z) ((y) ^ ((z) & ((x) ^ (y))))
#define H(x, y, z) ((x) ^ (y) ^ (z))
#define I(x, y, z) ((y) ^ ((x) | ~(z)))
#define STEP(f, a, b, c, d, x, t, s)                \
    do {                                            \
        (a) += f((b), (c), (d)) + (x) + (uint32_t)(t); \
        (a) = ((a) << (s)) | ((a) >> (32 - (s)));   \
        (a) += (b);                                 \
    } while (0)

/* One 64-byte block into the state h: RFC 1321's four rounds, unrolled. */
static void block(uint32_t h[4], const uint8_t *p) {
    uint32_t m[16];
    for (int i = 0; i < 16; i++)
        m[i] = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
               (uint32_t)p[4 * i + 3] << 24;
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3];
    STEP(F, a, b, c, d, m[0], 0xd76aa478, 7);
    STEP(F, d, a, b, c, m[1], 0xe8c7b756, 12);
    STEP(F, c, d, a, b, m[2], 0x242070db, 17);
    STEP(F, b, c, d, a, m[3], 0xc1bdceee, 22);
    STEP(F, a, b, c, d, m[4], 0xf57c0faf, 7);
    STEP(F, d, a, b, c, m[5], 0x4787c62a, 12);
    STEP(F, c, d, a, b, m[6], 0xa8304613, 17);
    STEP(F, b, c, d, a, m[7], 0xfd469501, 22);
    STEP(F, a, b, c, d, m[8], 0x698098d8, 7);
    STEP(F, d, a, b, c, m[9], 0x8b44f7af, 12);
    STEP(F, c, d, a, b, m[10], 0xffff5bb1, 17);
    STEP(F, b, c, d, a, m[11], 0x895cd7be, 22);
    STEP(F, a, b, c, d, m[12], 0x6b901122, 7);
    STEP(F, d, a, b, c, m[13], 0xfd987193, 12);
    STEP(F, c, d, a, b, m[14], 0xa679438e, 17);
    STEP(F, b, c, d, a, m[15], 0x49b40821, 22);
    STEP(G, a, b, c, d, m[1], 0xf61e2562, 5);
    STEP(G, d, a, b, c, m[6], 0xc040b340, 9);
    STEP(G, c, d, a, b, m[11], 0x265e5a51, 14);
    STEP(G, b, c, d, a, m[0], 0xe9b6c7aa, 20);
    STEP(G, a, b, c, d, m[5], 0xd62f105d, 5);
    STEP(G, d, a, b, c, m[10], 0x02441453, 9);
    STEP(G, c, d, a, b, m[15], 0xd8a1e681, 14);
    STEP(G, b, c, d, a, m[4], 0xe7d3fbc8, 20);
    STEP(G, a, b, c, d, m[9], 0x21e1cde6, 5);
    STEP(G, d, a, b, c, m[14], 0xc33707d6, 9);
    STEP(G, c, d, a, b, m[3], 0xf4d50d87, 14);
    STEP(G, b, c, d, a, m[8], 0x455a14ed, 20);
    STEP(G, a, b, c, d, m[13], 0xa9e3e905, 5);
    STEP(G, d, a, b, c, m[2], 0xfcefa3f8, 9);
    STEP(G, c, d, a, b, m[7], 0x676f02d9, 14);
    STEP(G, b, c, d, a, m[12], 0x8d2a4c8a, 20);
    STEP(H, a, b, c, d, m[5], 0xfffa3942, 4);
    STEP(H, d, a, b, c, m[8], 0x8771f681, 11);
    STEP(H, c, d, a, b, m[11], 0x6d9d6122, 16);
    STEP(H, b, c, d, a, m[14], 0xfde5380c, 23);
    STEP(H, a, b, c, d, m[1], 0xa4beea44, 4);
    STEP(H, d, a, b, c, m[4], 0x4bdecfa9, 11);
    STEP(H, c, d, a, b, m[7], 0xf6bb4b60, 16);
    STEP(H, b, c, d, a, m[10], 0xbebfbc70, 23);
    STEP(H, a, b, c, d, m[13], 0x289b7ec6, 4);
    STEP(H, d, a, b, c, m[0], 0xeaa127fa, 11);
    STEP(H, c, d, a, b, m[3], 0xd4ef3085, 16);
    STEP(H, b, c, d, a, m[6], 0x04881d05, 23);
    STEP(H, a, b, c, d, m[9], 0xd9d4d039, 4);
    STEP(H, d, a, b, c, m[12], 0xe6db99e5, 11);
    STEP(H, c, d, a, b, m[15], 0x1fa27cf8, 16);
    STEP(H, b, c, d, a, m[2], 0xc4ac5665, 23);
    STEP(I, a, b, c, d, m[0], 0xf4292244, 6);
    STEP(I, d, a, b, c, m[7], 0x432aff97, 10);
    STEP(I, c, d, a, b, m[14], 0xab9423a7, 15);
    STEP(I, b, c, d, a, m[5], 0xfc93a039, 21);
    STEP(I, a, b, c, d, m[12], 0x655b59c3, 6);
    STEP(I, d, a, b, c, m[3], 0x8f0ccc92, 10);
    STEP(I, c, d, a, b, m[10], 0xffeff47d, 15);
    STEP(I, b, c, d, a, m[1], 0x85845dd1, 21);
    STEP(I, a, b, c, d, m[8], 0x6fa87e4f, 6);
    STEP(I, d, a, b, c, m[15], 0xfe2ce6e0, 10);
    STEP(I, c, d, a, b, m[6], 0xa3014314, 15);
    STEP(I, b, c, d, a, m[13], 0x4e0811a1, 21);
    STEP(I, a, b, c, d, m[4], 0xf7537e82, 6);
    STEP(I, d, a, b, c, m[11], 0xbd3af235, 10);
    STEP(I, c, d, a, b, m[2], 0x2ad7d2bb, 15);
    STEP(I, b, c, d, a, m[9], 0xeb86d391, 21);
    h[0] += a, h[1] += b, h[2] += c, h[3] += d;
}

void tr_md5(const void *data, size_t len, uint8_t out[16]) {
    uint32_t h[4] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};
    const uint8_t *p = data;
    size_t left = len;
    for (; left >= 64; left -= 64, p += 64) block(h, p);
    /* The tail, a 1 bit, zeros, and the length in bits (little-endian): one or two blocks. */
    uint8_t tail[128];
    memset(tail, 0, sizeof tail);
    if (left) memcpy(tail, p, left);
    tail[left] = 0x80;
    size_t n = left < 56 ? 64 : 128;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++) tail[n - 8 + (size_t)i] = (uint8_t)(bits >> (8 * i));
    block(h, tail);
    if (n == 128) block(h, tail + 64);
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 4; k++) out[4 * i + k] = (uint8_t)(h[i] >> (8 * k));
}
