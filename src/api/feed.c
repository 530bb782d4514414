/* The feed thread and the references that keep a feed alive: the loop's (until the request
 * closes), the thread's (dropped through a posted task), and one per message in flight.
 * Every drop happens on the loop, so the last one may free the request's reference. */
#include "api/feed.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "util/error.h"

typedef struct feed feed;

struct feed {
    atomic_int refs;
    tr_feeds *owner;
    tr_req *req;               /* loop only */
    const tr_feed_ops *ops;
    void *state;
    atomic_int closed;         /* the request went away */
    atomic_int in_flight;      /* messages posted, not yet written */
    atomic_int congested;      /* the socket queue is long: wait for on_drain */
    int ended;                 /* thread: the last message is posted */
    feed *next;                /* the thread's list */
    tr_task release_task;      /* the thread's reference, dropped on the loop */
};

struct tr_feeds {
    tr_server *srv;
    tr_notify *wake;
    int own_wake;
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    feed *incoming;            /* started on the loop, not yet taken by the thread */
    int stop;
    atomic_int draining;       /* the server drains for a stop: live feeds end */
};

typedef struct feed_write {
    tr_task task;
    feed *fd;
    uint8_t *bytes;
    size_t len;
    int end;
} feed_write;

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- references (every drop happens on the loop) ---- */

static void feed_unref(feed *fd) {
    if (atomic_fetch_sub(&fd->refs, 1) != 1) return;
    tr_req_set_user(fd->req, NULL);
    tr_req_unref(fd->req);
    fd->ops->free_state(fd->state);
    free(fd);
}

static void release_on_loop(tr_task *t) {
    feed_unref((feed *)((char *)t - offsetof(feed, release_task)));
}

static void write_on_loop(tr_task *t) {
    feed_write *m = (feed_write *)t;
    feed *fd = m->fd;
    if (!atomic_load(&fd->closed) && tr_req_alive(fd->req)) {
        if (m->len > 0) tr_resp_write(fd->req, m->bytes, m->len);
        if (m->end) tr_resp_end(fd->req);
        if (tr_resp_pending(fd->req) > TR_FEED_CONGESTED_BYTES) atomic_store(&fd->congested, 1);
    }
    atomic_fetch_sub(&fd->in_flight, 1);
    free(m->bytes);
    free(m);
    tr_notify_bump(fd->owner->wake);
    feed_unref(fd);
}

/* From the thread: hands a message to the loop. Takes ownership of bytes. */
static void post_message(feed *fd, uint8_t *bytes, size_t len, int end) {
    feed_write *m = calloc(1, sizeof *m);
    if (m == NULL) {
        free(bytes);
        return;
    }
    m->task.fn = write_on_loop;
    m->fd = fd;
    m->bytes = bytes;
    m->len = len;
    m->end = end;
    atomic_fetch_add(&fd->refs, 1);
    atomic_fetch_add(&fd->in_flight, 1);
    tr_server_post(fd->owner->srv, &m->task);
}

/* ---- the thread ---- */

/* Serves one feed. Returns 1 when it is done (drop it); sets *busy when more is ready. */
static int serve(feed *fd, int64_t now, int *busy) {
    if (atomic_load(&fd->closed) || fd->ended) return 1;
    if (fd->ops->live && atomic_load(&fd->owner->draining)) {
        fd->ended = 1;
        post_message(fd, NULL, 0, 1);
        return 1;
    }
    if (atomic_load(&fd->in_flight) >= TR_FEED_MAX_IN_FLIGHT || atomic_load(&fd->congested))
        return 0;
    uint8_t *msg = NULL;
    size_t len = 0;
    int end = 0;
    tr_feed_step step = fd->ops->next(fd->state, now, &msg, &len, &end);
    if (step == TR_FEED_WAIT && !end) return 0;
    post_message(fd, msg, len, end);
    if (end) {
        fd->ended = 1;
        return 1;
    }
    if (step == TR_FEED_MORE) *busy = 1;
    return 0;
}

static void *feed_main(void *arg) {
    tr_feeds *f = arg;
    feed *list = NULL;
    for (;;) {
        uint64_t gen = tr_notify_gen(f->wake);
        pthread_mutex_lock(&f->mu);
        while (f->incoming != NULL) {
            feed *x = f->incoming;
            f->incoming = x->next;
            x->next = list;
            list = x;
        }
        int stop = f->stop;
        pthread_mutex_unlock(&f->mu);
        int busy = 0;
        int64_t now = now_ms();
        for (feed **pp = &list; *pp != NULL;) {
            feed *x = *pp;
            if (stop || serve(x, now, &busy)) {
                if (stop && !x->ended) post_message(x, NULL, 0, 1);
                *pp = x->next;
                tr_server_post(f->srv, &x->release_task);
            } else {
                pp = &x->next;
            }
        }
        if (stop) break;
        if (!busy) tr_notify_wait(f->wake, gen, 1000);
    }
    return NULL;
}

/* On the loop, once a second: tells the thread when the server starts to drain. */
static void drain_check(void *ctx, int64_t now_ms) {
    tr_feeds *f = ctx;
    (void)now_ms;
    if (tr_server_stopping(f->srv) && !atomic_exchange(&f->draining, 1)) tr_notify_bump(f->wake);
}

int tr_feeds_new(tr_server *srv, tr_notify *wake, tr_feeds **out) {
    tr_feeds *f = calloc(1, sizeof *f);
    if (f == NULL) return TR_ENOMEM;
    f->srv = srv;
    f->wake = wake;
    if (f->wake == NULL) {
        f->own_wake = 1;
        if ((f->wake = tr_notify_new()) == NULL) {
            free(f);
            return TR_ENOMEM;
        }
    }
    pthread_mutex_init(&f->mu, NULL);
    if (tr_server_on_tick(srv, drain_check, f) != TR_OK ||
        pthread_create(&f->thread, NULL, feed_main, f) != 0) {
        tr_feeds_free(f);
        return TR_EIO;
    }
    f->started = 1;
    *out = f;
    return TR_OK;
}

void tr_feeds_stop(tr_feeds *f) {
    if (f == NULL || !f->started) return;
    pthread_mutex_lock(&f->mu);
    f->stop = 1;
    pthread_mutex_unlock(&f->mu);
    tr_notify_bump(f->wake);
    pthread_join(f->thread, NULL);
    f->started = 0;
}

void tr_feeds_free(tr_feeds *f) {
    if (f == NULL) return;
    tr_feeds_stop(f);
    pthread_mutex_destroy(&f->mu);
    if (f->own_wake) tr_notify_free(f->wake);
    free(f);
}

/* ---- the request ---- */

int tr_feed_start(tr_feeds *f, tr_req *req, const tr_feed_ops *ops, void *state) {
    feed *fd = calloc(1, sizeof *fd);
    pthread_mutex_lock(&f->mu);
    int stopping = f->stop || !f->started;
    pthread_mutex_unlock(&f->mu);
    if (fd == NULL || stopping) {
        free(fd);
        ops->free_state(state);
        return -1;
    }
    fd->owner = f;
    fd->req = req;
    tr_req_ref(req);
    fd->ops = ops;
    fd->state = state;
    fd->release_task.fn = release_on_loop;
    atomic_init(&fd->refs, 2); /* the loop's and the thread's */
    tr_req_set_user(req, fd);
    pthread_mutex_lock(&f->mu);
    fd->next = f->incoming;
    f->incoming = fd;
    pthread_mutex_unlock(&f->mu);
    tr_notify_bump(f->wake);
    return 0;
}

void tr_feed_on_close(tr_req *req) {
    feed *fd = tr_req_user(req);
    if (fd == NULL) return;
    atomic_store(&fd->closed, 1);
    tr_notify_bump(fd->owner->wake);
    tr_req_set_user(req, NULL);
    feed_unref(fd); /* the loop's reference */
}

void tr_feed_on_drain(tr_req *req) {
    feed *fd = tr_req_user(req);
    if (fd == NULL) return;
    atomic_store(&fd->congested, 0);
    tr_notify_bump(fd->owner->wake);
}
