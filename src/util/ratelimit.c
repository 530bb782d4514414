#include "util/ratelimit.h"

void tr_bucket_init(tr_bucket *b, double rate, double burst, int64_t now_ns) {
    b->rate = rate;
    b->burst = burst;
    b->tokens = burst;
    b->last_ns = now_ns;
}

static void refill(tr_bucket *b, int64_t now_ns) {
    if (now_ns > b->last_ns) {
        b->tokens += b->rate * (double)(now_ns - b->last_ns) / 1e9;
        if (b->tokens > b->burst) b->tokens = b->burst;
    }
    b->last_ns = now_ns;
}

int tr_bucket_take(tr_bucket *b, double n, int64_t now_ns) {
    refill(b, now_ns);
    if (b->tokens < n) return 0;
    b->tokens -= n;
    return 1;
}

void tr_bucket_charge(tr_bucket *b, double n, int64_t now_ns) {
    refill(b, now_ns);
    b->tokens -= n;
}

int tr_bucket_ready(tr_bucket *b, int64_t now_ns) {
    refill(b, now_ns);
    return b->tokens >= 0;
}
