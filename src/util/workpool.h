/* A small fixed pool of worker threads for CPU-heavy or disk-read work that must not run on
 * the network loop (remux, image decode, gzip, large reads).
 *
 * A job is a tr_work embedded in the caller's struct: `run` executes on a worker thread, then
 * the pool posts `done` to the completion queue given at creation (the net layer's loop
 * queue), so the result is consumed on the loop thread. The caller owns the job memory until
 * done.fn runs. */
#ifndef TR_UTIL_WORKPOOL_H
#define TR_UTIL_WORKPOOL_H

#include "util/taskq.h"

typedef struct tr_work {
    void (*run)(struct tr_work *w); /* on a worker thread */
    tr_task done;                   /* set done.fn; posted to the completion queue after run */
    struct tr_work *next_;          /* private to the pool */
} tr_work;

typedef struct tr_workpool tr_workpool;

/* Starts `threads` workers (>= 1). Returns 0 or an error (TR_ENOMEM, TR_EINVAL, TR_EIO when
 * a thread cannot start). completions must outlive the pool. */
int tr_workpool_new(int threads, tr_taskq *completions, tr_workpool **out);

/* Queues a job. Returns 0, or TR_ESHUTDOWN once the pool is stopping (done will not run). */
int tr_workpool_submit(tr_workpool *p, tr_work *w);

/* Lets the workers finish every queued job (their completions are posted as usual), joins
 * them and frees the pool. */
void tr_workpool_free(tr_workpool *p);

#endif
