#include "data/hashkey.h"

#include <openssl/evp.h>
#include <pthread.h>

/* EVP_md5() makes EVP_Digest look the provider's MD5 up on every call (a tenth of a
 * PutRecords' CPU): fetch it once. */
static EVP_MD *md5;
static pthread_once_t md5_once = PTHREAD_ONCE_INIT;

static void fetch_md5(void) { md5 = EVP_MD_fetch(NULL, "MD5", NULL); }

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
    unsigned char md[16];
    unsigned int mdlen = 0;
    pthread_once(&md5_once, fetch_md5);
    EVP_Digest(key, len, md, &mdlen, md5 != NULL ? md5 : EVP_md5(), NULL);
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
