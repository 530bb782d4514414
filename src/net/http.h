/* The HTTP request and response API that handlers (src/api/...) see. It hides libwebsockets:
 * the same handler serves HTTP/1.1, HTTP/2 and TLS.
 *
 * Threads: every function here runs on the network loop thread only. Work on other threads
 * (store callbacks, the worker pool) comes back through tr_server_post() (net/server.h)
 * before it touches a request.
 *
 * Lifetime of a request, in phases:
 *   1. headers in   -> handler->on_headers (optional). It may call tr_req_stream_body() to
 *                      receive the body as it arrives instead of accumulated, and may
 *                      already answer (e.g. reject).
 *   2. body         -> accumulated up to max_request_bytes (beyond: 413, connection closed),
 *                      or passed chunk by chunk to handler->on_body when streaming.
 *   3. body done    -> handler->on_request: answer now with tr_resp_send(), or later (keep a
 *                      reference with tr_req_ref() and answer from a posted task), or start a
 *                      streamed response with tr_resp_start()/tr_resp_write()/tr_resp_end().
 *   4. end          -> handler->on_close (optional) once the response is fully written or the
 *                      peer went away; then the net layer drops its reference.
 * A streaming-body handler (PutMedia) may call tr_resp_start()/tr_resp_write() during phase 2,
 * so the response streams while the request body still arrives (full duplex).
 *
 * A response can be sent at most once. Functions that answer return 0, or -1 when the request
 * is already answered or the peer is gone (the request is "dead"); callers may ignore -1. */
#ifndef TR_NET_HTTP_H
#define TR_NET_HTTP_H

#include <stddef.h>
#include <stdint.h>

typedef struct tr_req tr_req;

typedef struct tr_handler {
    /* Optional. Headers are in, body not yet. Return 0, or -1 to drop the connection. */
    int (*on_headers)(tr_req *req, void *ctx);
    /* Streaming-body mode only: one piece of the body, in order. Return 0, or -1 to drop. */
    int (*on_body)(tr_req *req, const uint8_t *data, size_t len, void *ctx);
    /* Required. The body is complete (accumulated in tr_req_body, or fully streamed). */
    void (*on_request)(tr_req *req, void *ctx);
    /* Optional. A streamed response's queued output fell below the low-water mark: write
     * more. Lets a producer (GetMedia) pace itself to the client. */
    void (*on_drain)(tr_req *req, void *ctx);
    /* Optional. The request is over (answered and written, or the peer went away). Release
     * per-request state here; the tr_req may still be referenced (tr_req_ref) but is dead. */
    void (*on_close)(tr_req *req, void *ctx);
} tr_handler;

/* ---- the request ---- */

const char *tr_req_method(const tr_req *req); /* "GET", "POST", ... */
/* The path without the query, as libwebsockets leaves it: %-decoded, "/.." collapsed. */
const char *tr_req_path(const tr_req *req);
/* The query string without '?', arguments joined by '&'; "" when there is none. */
const char *tr_req_query(const tr_req *req);
/* Case-insensitive header lookup; NULL when absent. The string is owned by the request and
 * valid until the request is freed. Only while the request is alive (tr_req_alive). */
const char *tr_req_header(tr_req *req, const char *name);
/* The accumulated body (not NUL-terminated); empty in streaming-body mode. */
const uint8_t *tr_req_body(const tr_req *req, size_t *len);
/* The X-Amz-Target header, or NULL. */
const char *tr_req_target(const tr_req *req);
const char *tr_req_id(const tr_req *req); /* the x-amzn-RequestId this response carries */
int tr_req_is_h2(const tr_req *req);
int tr_req_is_tls(const tr_req *req);

/* Switches to streaming-body mode: only from on_headers. */
void tr_req_stream_body(tr_req *req);
/* Backpressure on a streamed body: with pause=1 the connection (HTTP/1.1) or the stream
 * (HTTP/2: its flow-control window is not given back) is not read any more, so the peer
 * stops sending; with 0 reading goes on. Bytes already read may still reach on_body after a
 * pause (at most one read, 64 KiB). No-op on a dead request. */
void tr_req_pause_body(tr_req *req, int pause);

/* The operation label used in metrics and logs. Defaults to the X-Amz-Target operation (the
 * part after the '.') or the route's path pattern; a handler may set a better one (copied). */
void tr_req_set_operation(tr_req *req, const char *op);

/* Per-request handler state. */
void tr_req_set_user(tr_req *req, void *user);
void *tr_req_user(const tr_req *req);

/* Keeps the request's memory valid across an asynchronous step; every ref needs an unref.
 * After the peer goes away the request stays allocated but dead: tr_req_alive() says 0 and
 * every tr_resp_* call is a no-op returning -1. */
void tr_req_ref(tr_req *req);
void tr_req_unref(tr_req *req);
int tr_req_alive(const tr_req *req);

/* ---- the response ---- */

/* Adds a response header (copied) before tr_resp_send/tr_resp_start. x-amzn-RequestId,
 * x-amz-id-2, content-type and content-length are added by the net layer. */
int tr_resp_header(tr_req *req, const char *name, const char *value);

/* A complete response; body is copied (may be NULL when len is 0). The error counter
 * tributary_errors_total{type=...} is bumped for status >= 400 when the handler named the
 * error with tr_resp_error or tr_resp_set_error_type. */
int tr_resp_send(tr_req *req, int status, const char *content_type, const void *body,
                 size_t len);
/* {"__type":type,"message":message} as application/x-amz-json-1.1; counts the error. */
int tr_resp_error(tr_req *req, int status, const char *type, const char *message);
/* Labels the error counter for a response sent with tr_resp_send (e.g. CBOR errors). */
void tr_resp_set_error_type(tr_req *req, const char *type);

/* A streamed response of unknown length: chunked on HTTP/1.1, DATA frames on HTTP/2.
 * Write pieces (copied, queued) with tr_resp_write and finish with tr_resp_end. */
int tr_resp_start(tr_req *req, int status, const char *content_type);
int tr_resp_write(tr_req *req, const void *data, size_t len);
int tr_resp_end(tr_req *req);
/* Bytes queued and not yet handed to the socket. */
size_t tr_resp_pending(const tr_req *req);

/* ---- who is asking (net/server.h: authentication; docs/security.md) ---- */

/* The authenticated principal (the name the credentials file gives the access key), or NULL
 * when the server runs without credentials. Fixed once the handler sees the request: any
 * thread may read it while holding a reference. */
const char *tr_req_principal(const tr_req *req);
/* Whether the request's principal may perform action ("kinesis:PutRecord") on resource (an
 * ARN, or "*"): 1 allowed (always, without credentials), 0 denied, with AWS's message
 * "User: <principal> is not authorized to perform: <action> on resource: <resource>" in msg.
 * Any thread while the request is referenced (the faces ask from their workers). */
int tr_req_authorize(const tr_req *req, const char *action, const char *resource, char *msg,
                     size_t msg_len);

#endif
