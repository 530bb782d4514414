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

/* ---- authentication and authorization (auth/auth.h installs them; docs/security.md) ----
 *
 * Authentication is a property of the request: the net layer asks the authenticator before
 * the handler sees the request, except on /health and /metrics, which stay open:
 *   - at headers (TR_AUTH_HEADERS), before on_headers. body_follows says whether a body
 *     comes. The authenticator answers ALLOW (it named the principal with
 *     tr_req_set_principal), DENY (err says why), or NEED_BODY: the signature covers a body
 *     hash that only the whole body can check. A handler that streams its body (on_body)
 *     cannot wait for it: NEED_BODY there is refused (the client must sign with
 *     UNSIGNED-PAYLOAD or STREAMING-AWS4-HMAC-SHA256-PAYLOAD);
 *   - when the accumulated body is complete (TR_AUTH_BODY, body and len given), after
 *     NEED_BODY, before on_request;
 *   - at a websocket upgrade (TR_AUTH_HEADERS, no body), before on_open.
 * A DENY is answered in the request's protocol: {"__type","message"} (JSON 1.1) for a request
 * with X-Amz-Target, {"Message"} (REST-JSON) otherwise, both with x-amzn-ErrorType.
 * Without an authenticator every request passes with no principal. Loop thread. */
typedef enum { TR_AUTH_HEADERS = 0, TR_AUTH_BODY = 1 } tr_auth_phase;
typedef enum { TR_AUTH_ALLOW = 0, TR_AUTH_DENY = 1, TR_AUTH_NEED_BODY = 2 } tr_auth_verdict;

typedef struct tr_auth_error {
    int status;            /* 400 or 403 */
    char type[64];         /* "InvalidSignatureException" */
    char message[512];
} tr_auth_error;

typedef tr_auth_verdict (*tr_authenticate_fn)(void *ctx, tr_req *req, tr_auth_phase phase,
                                              int body_follows, const uint8_t *body,
                                              size_t len, tr_auth_error *err);
/* Authorization, asked by the API faces through tr_req_authorize (net/http.h): 1 when the
 * principal may perform action on resource. Any thread. */
typedef int (*tr_authorize_fn)(void *ctx, const char *principal, const char *action,
                               const char *resource);

/* Install before tr_server_run. */
void tr_server_set_authenticator(tr_server *s, tr_authenticate_fn fn, void *ctx);
void tr_server_set_authorizer(tr_server *s, tr_authorize_fn fn, void *ctx);
/* Names the request's authenticated principal (copied, at most 127 bytes). Authenticators
 * only. */
void tr_req_set_principal(tr_req *req, const char *principal);

/* SIGHUP: fn(ctx) runs on the loop thread for every SIGHUP while the server runs (reload
 * credentials, policies, certificates). Register before tr_server_run; at most
 * TR_SERVER_MAX_RELOADS. Returns 0 or TR_ENOMEM. */
#define TR_SERVER_MAX_RELOADS 4
int tr_server_on_reload(tr_server *s, void (*fn)(void *ctx), void *ctx);
/* Runs the reload hooks on the loop, as SIGHUP does; callable from any thread. */
void tr_server_reload(tr_server *s);

#endif
