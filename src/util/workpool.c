#include "util/workpool.h"

#include <pthread.h>
#include <stdlib.h>

#include "util/error.h"
#include "util/log.h"

struct tr_workpool {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    tr_work *head, *tail; /* FIFO of queued jobs */
    int stopping;
    int nthreads;         /* started successfully */
    tr_taskq *completions;
    pthread_t *threads;
};

/* Blocks until a job is queued or the pool stops with nothing left; NULL means exit. */
static tr_work *next_job(tr_workpool *p) {
    pthread_mutex_lock(&p->lock);
    while (p->head == NULL && !p->stopping) pthread_cond_wait(&p->cond, &p->lock);
    tr_work *w = p->head;
    if (w != NULL) {
        p->head = w->next_;
        if (p->head == NULL) p->tail = NULL;
    }
    pthread_mutex_unlock(&p->lock);
    return w;
}

static void *worker_main(void *arg) {
    tr_workpool *p = arg;
    tr_work *w;
    while ((w = next_job(p)) != NULL) {
        w->run(w);
        tr_taskq_post(p->completions, &w->done);
    }
    return NULL;
}

static void stop_and_join(tr_workpool *p) {
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->nthreads; i++) pthread_join(p->threads[i], NULL);
}

int tr_workpool_new(int threads, tr_taskq *completions, tr_workpool **out) {
    *out = NULL;
    if (threads < 1 || completions == NULL) return TR_EINVAL;
    tr_workpool *p = calloc(1, sizeof *p);
    if (p == NULL) return TR_ENOMEM;
    p->threads = calloc((size_t)threads, sizeof *p->threads);
    if (p->threads == NULL) {
        free(p);
        return TR_ENOMEM;
    }
    p->completions = completions;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0) {
            tr_error("msg=\"cannot start worker thread\" index=%d", i);
            tr_workpool_free(p);
            return TR_EIO;
        }
        p->nthreads++;
    }
    *out = p;
    return TR_OK;
}

int tr_workpool_submit(tr_workpool *p, tr_work *w) {
    w->next_ = NULL;
    pthread_mutex_lock(&p->lock);
    if (p->stopping) {
        pthread_mutex_unlock(&p->lock);
        return TR_ESHUTDOWN;
    }
    if (p->tail == NULL) p->head = w;
    else p->tail->next_ = w;
    p->tail = w;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
    return TR_OK;
}

void tr_workpool_free(tr_workpool *p) {
    if (p == NULL) return;
    stop_and_join(p);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    free(p->threads);
    free(p);
}
