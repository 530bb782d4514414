#include "util/notify.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

struct tr_notify {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t gen;
};

tr_notify *tr_notify_new(void) {
    tr_notify *n = calloc(1, sizeof *n);
    if (n == NULL) return NULL;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->cv, &attr);
    pthread_condattr_destroy(&attr);
    return n;
}

void tr_notify_free(tr_notify *n) {
    if (n == NULL) return;
    pthread_mutex_destroy(&n->mu);
    pthread_cond_destroy(&n->cv);
    free(n);
}

void tr_notify_bump(tr_notify *n) {
    pthread_mutex_lock(&n->mu);
    n->gen++;
    pthread_cond_broadcast(&n->cv);
    pthread_mutex_unlock(&n->mu);
}

uint64_t tr_notify_gen(tr_notify *n) {
    pthread_mutex_lock(&n->mu);
    uint64_t g = n->gen;
    pthread_mutex_unlock(&n->mu);
    return g;
}

uint64_t tr_notify_wait(tr_notify *n, uint64_t seen, int64_t timeout_ms) {
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (timeout_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&n->mu);
    while (n->gen == seen) {
        if (pthread_cond_timedwait(&n->cv, &n->mu, &until) != 0) break;
    }
    uint64_t g = n->gen;
    pthread_mutex_unlock(&n->mu);
    return g;
}
