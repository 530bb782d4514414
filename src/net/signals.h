/* Signals without signal handlers: SIGTERM, SIGINT and SIGHUP are blocked in every thread and
 * a dedicated thread waits for them with sigwait(2), then calls back (which only posts to the
 * loop). SIGTERM or SIGINT stops (once); SIGHUP asks for a reload, as often as it comes.
 * SIGPIPE is ignored: a peer closing mid-write is an EPIPE, not a death. */
#ifndef TR_NET_SIGNALS_H
#define TR_NET_SIGNALS_H

/* Call first in main, before any thread exists, so every thread inherits the mask.
 * Returns 0 or -1. */
int tr_signals_block(void);

typedef struct tr_signals tr_signals;

/* Starts the waiting thread; on_signal(arg, signo) runs on it for every SIGHUP, and once for
 * the first SIGTERM or SIGINT, after which the thread ends. Returns 0 or an error. */
int tr_signals_start(void (*on_signal)(void *arg, int signo), void *arg, tr_signals **out);
/* Wakes the thread if no stop signal came, joins it and frees. */
void tr_signals_stop(tr_signals *s);

#endif
