#include "util/taskq.h"

#include <pthread.h>
#include <stdlib.h>

#include "util/error.h"

struct tr_taskq {
    pthread_mutex_t lock;
    tr_task *head, *tail; /* FIFO */
    void (*wake)(void *arg);
    void *wake_arg;
};

typedef struct {
    tr_task task; /* first: the queue hands back this pointer */
    void (*fn)(void *arg);
    void *arg;
} fn_task;

tr_taskq *tr_taskq_new(void (*wake)(void *arg), void *wake_arg) {
    tr_taskq *q = calloc(1, sizeof *q);
    if (q == NULL) return NULL;
    if (pthread_mutex_init(&q->lock, NULL) != 0) {
        free(q);
        return NULL;
    }
    q->wake = wake;
    q->wake_arg = wake_arg;
    return q;
}

void tr_taskq_free(tr_taskq *q) {
    if (q == NULL) return;
    while (tr_taskq_run(q) > 0) {
    }
    pthread_mutex_destroy(&q->lock);
    free(q);
}

void tr_taskq_post(tr_taskq *q, tr_task *t) {
    t->next = NULL;
    pthread_mutex_lock(&q->lock);
    int was_empty = q->head == NULL;
    if (was_empty) q->head = t;
    else q->tail->next = t;
    q->tail = t;
    pthread_mutex_unlock(&q->lock);
    /* Only the empty -> non-empty edge needs a wake-up: the consumer drains everything
     * queued up to the moment it takes the list. */
    if (was_empty && q->wake != NULL) q->wake(q->wake_arg);
}

static void run_fn_task(tr_task *t) {
    fn_task *ft = (fn_task *)t;
    void (*fn)(void *) = ft->fn;
    void *arg = ft->arg;
    free(ft);
    fn(arg);
}

int tr_taskq_post_fn(tr_taskq *q, void (*fn)(void *arg), void *arg) {
    fn_task *ft = malloc(sizeof *ft);
    if (ft == NULL) return TR_ENOMEM;
    ft->task.fn = run_fn_task;
    ft->fn = fn;
    ft->arg = arg;
    tr_taskq_post(q, &ft->task);
    return TR_OK;
}

size_t tr_taskq_run(tr_taskq *q) {
    pthread_mutex_lock(&q->lock);
    tr_task *t = q->head;
    q->head = q->tail = NULL;
    pthread_mutex_unlock(&q->lock);
    size_t n = 0;
    while (t != NULL) {
        tr_task *next = t->next; /* read first: fn may free t */
        t->fn(t);
        t = next;
        n++;
    }
    return n;
}
