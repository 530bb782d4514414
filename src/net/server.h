/* The network server: one libwebsockets context on one service thread (the caller's),
 * serving HTTP/1.1 and HTTP/2 (prior knowledge) on one plain port, or TLS with ALPN h2 /
 * http/1.1 when a certificate is configured.
 *
 * Lifecycle, all on the main thread:
 *   tr_signals_block();                 before any thread starts (net/signals.h)
 *   tr_server_new(cfg, store, &srv);    router, loop queue, worker pool; /health, /metrics
 *   tr_router_add(tr_server_router(srv), ...);   services register their routes
 *   tr_server_listen(srv, err, len);    binds; "address already in use" is detected here
 *   tr_server_run(srv);                 serves until SIGTERM/SIGINT, then drains in-flight
 *                                       requests for at most shutdown_timeout_ms
 *   tr_server_free(srv);                then close the store
 *
 * Other threads hand results back with tr_server_post: the task runs on the loop thread,
 * where it may answer requests (net/http.h). */
#ifndef TR_NET_SERVER_H
#define TR_NET_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "core/store.h"
#include "net/router.h"
#include "util/config.h"
#include "util/taskq.h"
#include "util/workpool.h"

typedef struct tr_server tr_server;

/* cfg is copied; store may be NULL (then /health answers 503). Returns 0 or an error. */
int tr_server_new(const tr_config *cfg, tr_store *store, tr_server **out);
void tr_server_free(tr_server *s);

tr_router *tr_server_router(tr_server *s);
tr_workpool *tr_server_workpool(tr_server *s);
/* The loop's completion queue: post from any thread; tasks run on the loop thread. */
tr_taskq *tr_server_tasks(tr_server *s);
void tr_server_post(tr_server *s, tr_task *t);

/* Creates the libwebsockets context and starts listening. On failure returns -1 with a
 * message such as "cannot listen on 127.0.0.1:4566: address already in use" in err. */
int tr_server_listen(tr_server *s, char *err, size_t err_len);

/* Serves until a stop signal and the drain that follows. Returns 0. */
int tr_server_run(tr_server *s);

/* Calls fn(ctx, now_ms) on the loop about once a second while the server runs: for work a
 * request does on a clock (PutMedia's IDLE acks and idle close). Register before
 * tr_server_run; at most TR_SERVER_MAX_TICKS. Returns 0 or TR_ENOMEM. */
#define TR_SERVER_MAX_TICKS 8
typedef void (*tr_tick_fn)(void *ctx, int64_t now_ms);
int tr_server_on_tick(tr_server *s, tr_tick_fn fn, void *ctx);

/* 1 once the server is draining for a stop: long-lived streams should end. Loop only. */
int tr_server_stopping(const tr_server *s);

/* Asks the loop to stop as SIGTERM does; callable from any thread. */
void tr_server_stop(tr_server *s);

#endif
