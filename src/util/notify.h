/* A generation counter that threads wait on: producers bump it (the store's commit hook, a
 * new subscriber), waiters sleep until it moves past what they last saw. Bumping is one lock
 * and a broadcast, cheap enough for a storage thread's commit path. */
#ifndef TR_UTIL_NOTIFY_H
#define TR_UTIL_NOTIFY_H

#include <stdint.h>

typedef struct tr_notify tr_notify;

tr_notify *tr_notify_new(void);
void tr_notify_free(tr_notify *n);

void tr_notify_bump(tr_notify *n);
/* The current generation. */
uint64_t tr_notify_gen(tr_notify *n);
/* Waits until the generation differs from `seen` or timeout_ms passes; returns the
 * generation then. */
uint64_t tr_notify_wait(tr_notify *n, uint64_t seen, int64_t timeout_ms);

#endif
