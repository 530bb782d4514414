/* Stop signals without signal handlers: SIGTERM and SIGINT are blocked in every thread and a
 * dedicated thread waits for them with sigwait(2), then calls back (which only posts to the
 * loop). SIGPIPE is ignored: a peer closing mid-write is an EPIPE, not a death. */
#ifndef TR_NET_SIGNALS_H
#define TR_NET_SIGNALS_H

/* Call first in main, before any thread exists, so every thread inherits the mask.
 * Returns 0 or -1. */
int tr_signals_block(void);

typedef struct tr_signals tr_signals;

/* Starts the waiting thread; on_stop(arg, signo) runs on it once, for the first signal.
 * Returns 0 or an error. */
int tr_signals_start(void (*on_stop)(void *arg, int signo), void *arg, tr_signals **out);
/* Wakes the thread if no signal came, joins it and frees. */
void tr_signals_stop(tr_signals *s);

#endif
