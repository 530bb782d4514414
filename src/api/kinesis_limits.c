#include "api/kinesis_limits.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "util/ratelimit.h"

#define WRITE_BYTES_PER_S (1024.0 * 1024)
#define WRITE_RECORDS_PER_S 1000.0
#define READ_BYTES_PER_S (2.0 * 1024 * 1024)
#define READ_CALLS_PER_S 5.0
#define NBUCKETS 256

typedef struct shard_limits {
    int64_t uid;
    tr_bucket write_bytes, write_records, read_bytes, read_calls;
    struct shard_limits *next;
} shard_limits;

struct kin_limits {
    pthread_mutex_t mu;
    shard_limits *table[NBUCKETS];
};

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

kin_limits *kin_limits_new(void) {
    kin_limits *l = calloc(1, sizeof *l);
    if (l != NULL) pthread_mutex_init(&l->mu, NULL);
    return l;
}

void kin_limits_free(kin_limits *l) {
    if (l == NULL) return;
    for (int i = 0; i < NBUCKETS; i++) {
        for (shard_limits *x = l->table[i], *next; x != NULL; x = next) {
            next = x->next;
            free(x);
        }
    }
    pthread_mutex_destroy(&l->mu);
    free(l);
}

/* The shard's buckets, made full on first use. Called with the lock held; NULL when out of
 * memory (the caller then lets the call through: limits are a courtesy, not a safety). */
static shard_limits *get(kin_limits *l, int64_t uid, int64_t now) {
    shard_limits **head = &l->table[(uint64_t)uid % NBUCKETS];
    for (shard_limits *x = *head; x != NULL; x = x->next)
        if (x->uid == uid) return x;
    shard_limits *x = calloc(1, sizeof *x);
    if (x == NULL) return NULL;
    x->uid = uid;
    tr_bucket_init(&x->write_bytes, WRITE_BYTES_PER_S, WRITE_BYTES_PER_S, now);
    tr_bucket_init(&x->write_records, WRITE_RECORDS_PER_S, WRITE_RECORDS_PER_S, now);
    tr_bucket_init(&x->read_bytes, READ_BYTES_PER_S, READ_BYTES_PER_S, now);
    tr_bucket_init(&x->read_calls, READ_CALLS_PER_S, READ_CALLS_PER_S, now);
    x->next = *head;
    *head = x;
    return x;
}

int kin_limits_write(kin_limits *l, int64_t uid, size_t bytes) {
    int64_t now = now_ns();
    pthread_mutex_lock(&l->mu);
    shard_limits *x = get(l, uid, now);
    int ok = 1;
    if (x != NULL) {
        /* Both or neither: a refused record costs nothing. */
        ok = tr_bucket_take(&x->write_records, 1, now);
        if (ok && !tr_bucket_take(&x->write_bytes, (double)bytes, now)) {
            x->write_records.tokens += 1;
            ok = 0;
        }
    }
    pthread_mutex_unlock(&l->mu);
    return ok;
}

int kin_limits_read_call(kin_limits *l, int64_t uid) {
    int64_t now = now_ns();
    pthread_mutex_lock(&l->mu);
    shard_limits *x = get(l, uid, now);
    int ok = x == NULL || (tr_bucket_ready(&x->read_bytes, now) &&
                           tr_bucket_take(&x->read_calls, 1, now));
    pthread_mutex_unlock(&l->mu);
    return ok;
}

void kin_limits_read_bytes(kin_limits *l, int64_t uid, size_t bytes) {
    int64_t now = now_ns();
    pthread_mutex_lock(&l->mu);
    shard_limits *x = get(l, uid, now);
    if (x != NULL) tr_bucket_charge(&x->read_bytes, (double)bytes, now);
    pthread_mutex_unlock(&l->mu);
}
