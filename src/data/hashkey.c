#include "data/hashkey.h"

#include "util/md5.h"

int tr_hashkey_parse(const char *s, size_t len, tr_hashkey *out) {
    if (len == 0 || len > TR_HASHKEY_DIGITS) return -1;
    tr_hashkey v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (TR_HASHKEY_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

void tr_hashkey_format(tr_hashkey v, char *out) {
    char tmp[TR_HASHKEY_DIGITS + 1];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + (int)(v % 10));
        v /= 10;
    } while (v);
    for (int i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    out[n] = '\0';
}

tr_hashkey tr_hashkey_of_partition_key(const void *key, size_t len) {
    uint8_t md[16];
    tr_md5(key, len, md);
    tr_hashkey v = 0;
    for (int i = 0; i < 16; i++) v = v << 8 | md[i];
    return v;
}

void tr_hashkey_even_range(unsigned i, unsigned n, tr_hashkey *start, tr_hashkey *end) {
    /* floor(2^128 / n) without overflowing: (2^128-1)/n, plus one when n divides 2^128. */
    tr_hashkey step = TR_HASHKEY_MAX / n;
    if (TR_HASHKEY_MAX % n == n - 1) step++;
    *start = step * i;
    *end = i + 1 == n ? TR_HASHKEY_MAX : step * (i + 1) - 1;
}
