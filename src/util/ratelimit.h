/* A token bucket: `rate` tokens a second, holding at most `burst`. Not thread-safe: the
 * owner locks. */
#ifndef TR_UTIL_RATELIMIT_H
#define TR_UTIL_RATELIMIT_H

#include <stdint.h>

typedef struct tr_bucket {
    double tokens;
    double rate;    /* per second */
    double burst;
    int64_t last_ns;
} tr_bucket;

void tr_bucket_init(tr_bucket *b, double rate, double burst, int64_t now_ns);
/* Takes n tokens if the bucket holds them: returns 1, else 0 and takes nothing. */
int tr_bucket_take(tr_bucket *b, double n, int64_t now_ns);
/* Takes n tokens even into debt (a read whose size is known only afterwards). */
void tr_bucket_charge(tr_bucket *b, double n, int64_t now_ns);
/* 1 when the bucket is not in debt. */
int tr_bucket_ready(tr_bucket *b, int64_t now_ns);

#endif
