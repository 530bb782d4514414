/* Websockets (RFC 6455) for handlers: a GET with `Upgrade: websocket` on a path registered
 * with tr_router_add_ws() becomes a tr_ws, on the HTTP/1.1 port and on TLS alike. It hides
 * libwebsockets like net/http.h does. Not over HTTP/2 (RFC 8441); no subprotocols (a request
 * naming one is refused with 400) and no extensions (permessage-deflate is declined).
 *
 *   tr_router_add_ws(r, "/putMedia", &putmedia_ws, face);
 *
 * Threads: every function here runs on the network loop thread only; other threads come back
 * through tr_server_post() (net/server.h), as for requests.
 *
 * Lifetime of a websocket, in phases:
 *   1. upgrade  -> handler->on_open, while the upgrade request is being answered. Path, query
 *                  parameters and headers are readable (headers only here: libwebsockets
 *                  drops them after the upgrade). Return 0 to accept: the 101 goes out after
 *                  on_open, then whatever on_open queued. To refuse, answer the upgrade
 *                  request (tr_ws_request) with a complete HTTP error (tr_resp_error,
 *                  tr_resp_send) and return 0: that answer is written and the connection
 *                  closed. Return -1 to drop the connection without an answer.
 *                  Unknown paths are refused with 404, and every upgrade while the server
 *                  drains with 503, before any handler runs.
 *   2. open     -> handler->on_message for each piece of a message, in order (see below);
 *                  tr_ws_send() queues messages out, written as the socket takes them.
 *   3. closing  -> tr_ws_close() sends the close frame after the queued messages; the peer's
 *                  close frame calls handler->on_peer_close (libwebsockets answers it at
 *                  once, so nothing can be sent after it).
 *   4. end      -> handler->on_close, once, after on_open whichever way the websocket ended
 *                  (refused, closed by either side, or the connection dropped). The tr_ws may
 *                  still be referenced (tr_ws_ref) but is dead.
 *
 * Messages in: a message arrives in one or more pieces, as it comes off the socket (a piece
 * is at most one socket read, 64 KiB; a fragmented message is not reassembled). Each piece
 * says whether the message is binary and whether it is the message's last piece, so a
 * handler that needs whole messages collects them itself and one that reads a byte stream
 * (PutMedia) ignores the boundaries. An empty message arrives as one empty last piece.
 * Control frames are handled here: pings are answered with pongs, pongs are ignored.
 * Messages that arrive after tr_ws_close() are dropped.
 *
 * An open websocket counts as an in-flight request: a stop drains it like the others, so a
 * long-lived one should end when tr_server_stopping() says so (PutMedia's tick does); the
 * drain's deadline closes the rest.
 *
 * Functions that send return 0, or -1 when the websocket is dead, closing (tr_ws_close was
 * called) or closed by the peer; callers may ignore -1. */
#ifndef TR_NET_WS_H
#define TR_NET_WS_H

#include <stddef.h>
#include <stdint.h>

#include "net/http.h"

typedef struct tr_ws tr_ws;

/* Close status codes (RFC 6455 7.4.1). */
#define TR_WS_NORMAL 1000
#define TR_WS_GOING_AWAY 1001
#define TR_WS_UNSUPPORTED_DATA 1003
#define TR_WS_POLICY 1008
#define TR_WS_TOO_BIG 1009
#define TR_WS_INTERNAL 1011

typedef struct tr_ws_handler {
    /* Required. The upgrade request is in; see phase 1. Returns 0 or -1. */
    int (*on_open)(tr_ws *ws, void *ctx);
    /* Required. One piece of a message: binary (else text), final = the message's last
     * piece. Text is passed as sent (not checked for UTF-8). */
    void (*on_message)(tr_ws *ws, const uint8_t *data, size_t len, int binary, int final,
                       void *ctx);
    /* Optional. The queued output fell below the low-water mark (64 KiB): send more. */
    void (*on_drain)(tr_ws *ws, void *ctx);
    /* Optional. The peer sent a close frame: status (1005 when it gave none) and a reason
     * (len bytes, not NUL-terminated). Nothing more arrives and nothing can be sent;
     * on_close follows. Not called when the connection just drops. */
    void (*on_peer_close)(tr_ws *ws, int status, const char *reason, size_t len, void *ctx);
    /* Optional. The websocket is over; release per-connection state here. */
    void (*on_close)(tr_ws *ws, void *ctx);
} tr_ws_handler;

/* ---- at open ---- */

/* The path without the query (%-decoded, as for requests) and the query string ("" when
 * none). Valid for the tr_ws's lifetime. */
const char *tr_ws_path(const tr_ws *ws);
const char *tr_ws_query(const tr_ws *ws);
/* The first query parameter of that name (case-sensitive), %-decoded; NULL when absent, ""
 * when it has no value. Valid for the tr_ws's lifetime. Browsers cannot set headers on a
 * websocket, so parameters are the way to pass arguments. */
const char *tr_ws_param(const tr_ws *ws, const char *name);
/* Case-insensitive header lookup: in on_open only (NULL afterwards). */
const char *tr_ws_header(tr_ws *ws, const char *name);
/* The upgrade request: in on_open only, to set the operation label (tr_req_set_operation)
 * or to refuse the upgrade by answering it. Its metrics count the websocket as one request
 * (status 101) lasting until the end. */
tr_req *tr_ws_request(tr_ws *ws);
const char *tr_ws_id(const tr_ws *ws); /* the upgrade's x-amzn-RequestId, for logs */

/* ---- sending ---- */

/* Queues one whole message (copied): binary, else text. Large messages go out in fragments
 * of 16 KiB, so they never hold up the loop. */
int tr_ws_send(tr_ws *ws, const void *data, size_t len, int binary);
/* Closes after the queued messages are written: status (1000..4999) and a reason of at most
 * 123 bytes (longer is cut). The connection ends when the peer answers, or after 5 s. */
int tr_ws_close(tr_ws *ws, int status, const char *reason);
/* Bytes queued and not yet handed to the socket: a producer paces itself on it. */
size_t tr_ws_pending(const tr_ws *ws);
/* Backpressure on what comes in: with pause=1 the connection is not read any more (lws rx
 * flow control), so the peer stops sending; 0 reads again. No-op on a dead tr_ws. */
void tr_ws_pause(tr_ws *ws, int pause);

/* ---- state ---- */

void tr_ws_set_user(tr_ws *ws, void *user);
void *tr_ws_user(const tr_ws *ws);
/* Keeps the tr_ws's memory valid across an asynchronous step; every ref needs an unref.
 * After the connection ends it stays allocated but dead: tr_ws_alive() says 0 and every
 * send is a no-op returning -1. */
void tr_ws_ref(tr_ws *ws);
void tr_ws_unref(tr_ws *ws);
int tr_ws_alive(const tr_ws *ws);

#endif
