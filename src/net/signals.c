#include "net/signals.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "util/error.h"

struct tr_signals {
    pthread_t thread;
    void (*on_stop)(void *arg, int signo);
    void *arg;
    atomic_int quitting; /* set by tr_signals_stop: the next signal is ours, not a stop */
};

static void stop_set(sigset_t *set) {
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
}

int tr_signals_block(void) {
    sigset_t set;
    stop_set(&set);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) return -1;
    struct sigaction sa = {.sa_handler = SIG_IGN};
    sigemptyset(&sa.sa_mask);
    return sigaction(SIGPIPE, &sa, NULL) == 0 ? 0 : -1;
}

static void *wait_main(void *p) {
    tr_signals *s = p;
    sigset_t set;
    stop_set(&set);
    for (;;) {
        int signo = 0;
        if (sigwait(&set, &signo) != 0) return NULL;
        if (atomic_load(&s->quitting)) return NULL;
        s->on_stop(s->arg, signo);
        /* After a stop, later signals stay blocked and pending: the drain is bounded. */
        if (signo != SIGHUP) return NULL;
    }
}

int tr_signals_start(void (*on_stop)(void *arg, int signo), void *arg, tr_signals **out) {
    tr_signals *s = calloc(1, sizeof *s);
    if (s == NULL) return TR_ENOMEM;
    s->on_stop = on_stop;
    s->arg = arg;
    if (pthread_create(&s->thread, NULL, wait_main, s) != 0) {
        free(s);
        return TR_EIO;
    }
    *out = s;
    return TR_OK;
}

void tr_signals_stop(tr_signals *s) {
    if (s == NULL) return;
    atomic_store(&s->quitting, 1);
    /* If the thread still waits, a directed SIGTERM ends its sigwait; if it already
     * returned, pthread_kill on a joinable thread is harmless. */
    pthread_kill(s->thread, SIGTERM);
    pthread_join(s->thread, NULL);
    free(s);
}
