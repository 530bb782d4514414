/* A thread-safe queue of tasks that one consumer thread runs: the way work done on other
 * threads (storage-thread completions, worker-pool results) gets back to the network loop.
 *
 * Producers on any thread call tr_taskq_post; the queue calls `wake` when it goes from empty
 * to non-empty (the net layer passes lws_cancel_service), and the consumer calls
 * tr_taskq_run, which runs every queued task in post order on the consumer's thread.
 * Tasks are intrusive (embed a tr_task in your own struct) so posting never allocates and
 * never fails; tr_taskq_post_fn is an allocating convenience. */
#ifndef TR_UTIL_TASKQ_H
#define TR_UTIL_TASKQ_H

#include <stddef.h>

typedef struct tr_task {
    struct tr_task *next;            /* owned by the queue while queued */
    void (*fn)(struct tr_task *t);   /* runs on the consumer thread; may free t */
} tr_task;

typedef struct tr_taskq tr_taskq;

/* wake may be NULL. Returns NULL when out of memory. */
tr_taskq *tr_taskq_new(void (*wake)(void *arg), void *wake_arg);
/* Runs what is still queued, then frees. No producer may post any more. */
void tr_taskq_free(tr_taskq *q);

void tr_taskq_post(tr_taskq *q, tr_task *t);
/* Allocates a task that calls fn(arg) and frees itself. Returns 0 or TR_ENOMEM. */
int tr_taskq_post_fn(tr_taskq *q, void (*fn)(void *arg), void *arg);

/* Runs the tasks queued when it is called (tasks they post run on the next call, so a task
 * that re-posts itself cannot starve the loop). Returns how many ran. */
size_t tr_taskq_run(tr_taskq *q);

#endif
