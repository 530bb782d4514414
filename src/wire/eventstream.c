#include "wire/eventstream.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define PRELUDE 12
#define TRAILER 4
#define MAX_MESSAGE (16u * 1024 * 1024)

static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t crc(const uint8_t *p, size_t n) {
    return (uint32_t)crc32(crc32(0L, Z_NULL, 0), p, (uInt)n);
}

int tr_es_encode(const tr_es_header *headers, size_t nheaders, const void *payload,
                 size_t payload_len, uint8_t **out, size_t *out_len) {
    size_t hlen = 0;
    for (size_t i = 0; i < nheaders; i++) {
        size_t n = strlen(headers[i].name), v = strlen(headers[i].value);
        if (n == 0 || n > 255 || v > 65535) return -1;
        hlen += 1 + n + 1 + 2 + v;
    }
    size_t total = PRELUDE + hlen + payload_len + TRAILER;
    if (total > MAX_MESSAGE) return -1;
    uint8_t *b = malloc(total);
    if (b == NULL) return -1;
    put32(b, (uint32_t)total);
    put32(b + 4, (uint32_t)hlen);
    put32(b + 8, crc(b, 8));
    uint8_t *p = b + PRELUDE;
    for (size_t i = 0; i < nheaders; i++) {
        size_t n = strlen(headers[i].name), v = strlen(headers[i].value);
        *p++ = (uint8_t)n;
        memcpy(p, headers[i].name, n);
        p += n;
        *p++ = 7; /* string */
        *p++ = (uint8_t)(v >> 8);
        *p++ = (uint8_t)v;
        memcpy(p, headers[i].value, v);
        p += v;
    }
    if (payload_len > 0) memcpy(p, payload, payload_len);
    p += payload_len;
    put32(p, crc(b, (size_t)(p - b)));
    *out = b;
    *out_len = total;
    return 0;
}

/* Bytes a header value of this type takes after the type byte; -1 if unknown. */
static long value_size(uint8_t type, const uint8_t *p, size_t left) {
    switch (type) {
    case 0: case 1: return 0;          /* bool true / false */
    case 2: return 1;                  /* byte */
    case 3: return 2;                  /* short */
    case 4: return 4;                  /* int */
    case 5: case 8: return 8;          /* long, timestamp */
    case 9: return 16;                 /* uuid */
    case 6: case 7:                    /* bytes, string: u16 length first */
        if (left < 2) return -1;
        return 2 + ((long)p[0] << 8 | p[1]);
    default: return -1;
    }
}

long tr_es_decode(const uint8_t *buf, size_t len,
                  int (*fn)(void *ctx, const char *name, size_t name_len, const char *value,
                            size_t value_len),
                  void *ctx, const uint8_t **payload, size_t *payload_len) {
    if (len < PRELUDE) return 0;
    uint32_t total = get32(buf), hlen = get32(buf + 4);
    if (total < PRELUDE + TRAILER || total > MAX_MESSAGE || hlen > total - PRELUDE - TRAILER)
        return -1;
    if (crc(buf, 8) != get32(buf + 8)) return -1;
    if (len < total) return 0;
    if (crc(buf, total - TRAILER) != get32(buf + total - TRAILER)) return -1;
    const uint8_t *p = buf + PRELUDE, *end = p + hlen;
    while (p < end) {
        size_t n = *p++;
        if (n == 0 || (size_t)(end - p) < n + 1) return -1;
        const char *name = (const char *)p;
        p += n;
        uint8_t type = *p++;
        long vs = value_size(type, p, (size_t)(end - p));
        if (vs < 0 || vs > end - p) return -1;
        const char *value = (const char *)p + ((type == 6 || type == 7) ? 2 : 0);
        size_t vlen = (size_t)vs - ((type == 6 || type == 7) ? 2 : 0);
        if (fn != NULL && fn(ctx, name, n, value, vlen) != 0) return -1;
        p += vs;
    }
    *payload = end;
    *payload_len = total - PRELUDE - hlen - TRAILER;
    return (long)total;
}
