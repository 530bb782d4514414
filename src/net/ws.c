/* Websockets (net/ws.h) on libwebsockets' ws role. The protocol callback in server.c hands
 * the events of a websocket here: the upgrade decision (LWS_CALLBACK_HTTP_CONFIRM_UPGRADE,
 * while the request's headers are still there), then messages in, queued messages out on
 * WRITEABLE, and the close handshake.
 *
 * A websocket without a subprotocol is bound by lws to the vhost's first protocol, our
 * "http" one, whose per-connection user data is a tr_pss that lws frees and reallocates on
 * the upgrade; so the tr_ws hangs off the wsi's opaque user data instead, which survives it.
 *
 * The upgrade request stays a tr_req for the websocket's whole life: it carries the path,
 * query and request id, answers a refusal, and is counted in the metrics (status 101) and
 * in the server's in-flight requests (a stop drains websockets too) until the end. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "net/internal.h"
#include "util/log.h"

#define WS_PIECE TR_WRITE_CHUNK  /* one lws_write: a whole message or a fragment of one */
#define WS_WRITES_PER_TURN 16    /* pieces per WRITEABLE while the socket takes them */
#define WS_REASON_MAX 123        /* a close frame's payload is at most 125 bytes */
#define WS_NO_STATUS 1005        /* RFC 6455 7.4.1: the peer's close frame had none */

typedef struct ws_msg {
    struct ws_msg *next;
    size_t len, off;             /* off: bytes already handed to lws */
    int binary;
    uint8_t data[];
} ws_msg;

struct tr_ws {
    tr_server *srv;
    struct lws *wsi;             /* NULL once dead */
    tr_req *req;                 /* the upgrade request; referenced until the tr_ws is freed */
    const tr_ws_handler *handler;
    void *ctx, *user;
    int refs;
    int opening;                 /* inside on_open: headers and the request are usable */
    int opened;                  /* on_open ran: on_close is due */
    int established;             /* the 101 is out: frames may be written */
    int closing;                 /* tr_ws_close was called */
    int peer_closed;             /* the peer's close frame came */
    int close_status;
    char close_reason[WS_REASON_MAX + 1];
    tr_kv *params;               /* the query parameters, %-decoded by lws */
    ws_msg *head, *tail;         /* queued messages */
    size_t pending;              /* bytes of them not yet written */
};

/* Room for LWS_PRE and one piece (lws writes the frame header into the LWS_PRE bytes). */
static unsigned char scratch[LWS_PRE + WS_PIECE];

static tr_ws *ws_of(struct lws *wsi) { return lws_get_opaque_user_data(wsi); }

static void queue_free(tr_ws *ws) {
    while (ws->head != NULL) {
        ws_msg *next = ws->head->next;
        free(ws->head);
        ws->head = next;
    }
    ws->tail = NULL;
    ws->pending = 0;
}

/* The websocket is over: on_close once, the request's metrics, and the net layer's ref. */
static void ws_end(tr_ws *ws) {
    if (ws->wsi == NULL) return;
    if (ws_of(ws->wsi) == ws) lws_set_opaque_user_data(ws->wsi, NULL);
    ws->wsi = NULL;
    queue_free(ws);
    if (ws->opened && ws->handler->on_close != NULL) ws->handler->on_close(ws, ws->ctx);
    tr_req_detach(ws->req);
    tr_ws_unref(ws);
}

/* ---- the upgrade ---- */

/* Splits the query into parameters; lws keeps each "name=value" as one decoded fragment. */
static int read_params(tr_ws *ws, struct lws *wsi) {
    int total = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS);
    if (total <= 0) return 0;
    char *frag = malloc((size_t)total + 1);
    if (frag == NULL) return -1;
    tr_kv **tail = &ws->params;
    for (int i = 0;; i++) {
        int n = lws_hdr_copy_fragment(wsi, frag, total + 1, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n <= 0) break;
        char *eq = memchr(frag, '=', (size_t)n);
        tr_kv *kv = calloc(1, sizeof *kv);
        if (kv == NULL) break;
        kv->name = strndup(frag, eq ? (size_t)(eq - frag) : (size_t)n);
        kv->value = strdup(eq ? eq + 1 : "");
        *tail = kv;
        tail = &kv->next;
        if (kv->name == NULL || kv->value == NULL) break;
    }
    free(frag);
    for (tr_kv *kv = ws->params; kv != NULL; kv = kv->next)
        if (kv->name == NULL || kv->value == NULL) return -1;
    return 0;
}

/* Writes the refusal the request holds (if any) now; the caller returns -1 so that lws
 * hangs up, the answer already on the socket (this is how lws refuses upgrades itself). The
 * status line says HTTP/1.0: lws records a request's version only for requests it serves as
 * HTTP, which an upgrade is not; with content-length and "connection: close" every client
 * reads it. */
static void write_refusal(tr_req *req) {
    if (req->resp != RESP_QUEUED || req->streaming) return; /* no (complete) answer: hang up */
    int has_connection = 0;
    for (tr_kv *kv = req->resp_headers; kv != NULL; kv = kv->next)
        has_connection |= strcasecmp(kv->name, "connection") == 0;
    req->close_after = !has_connection; /* says "connection: close" */
    if (tr_resp_write_now(req) != 0)
        tr_debug("msg=\"cannot write the refusal of an upgrade\" id=%s", req->id);
}

/* Refuses with the answer the request holds and ends the request (metrics). */
static int refuse(tr_req *req) {
    write_refusal(req);
    tr_req_detach(req);
    return -1;
}

/* A refusal by the server itself, before any handler: unknown path, draining, a request
 * that cannot be served. */
static int refuse_builtin(tr_req *req, const tr_handler *h) {
    tr_req_set_route(req, NULL, h);
    h->on_request(req, NULL);
    return refuse(req);
}

static int refuse_bad(tr_req *req, const tr_route *rt, const char *message) {
    tr_req_set_route(req, rt, NULL);
    tr_resp_error(req, 400, "InvalidArgumentException", message);
    return refuse(req);
}

/* What lws checks after on_open, hanging up without an answer when it is missing. */
static const char *handshake_fault(tr_req *req) {
    const char *conn = tr_req_header(req, "connection");
    if (conn == NULL || strcasestr(conn, "upgrade") == NULL)
        return "Not a websocket handshake: Connection: Upgrade is missing";
    if (tr_req_header(req, "sec-websocket-key") == NULL)
        return "Not a websocket handshake: Sec-WebSocket-Key is missing";
    if (tr_req_header(req, "host") == NULL)
        return "Not a websocket handshake: Host is missing";
    /* lws refuses a subprotocol it does not know by hanging up. */
    if (tr_req_header(req, "sec-websocket-protocol") != NULL)
        return "Websocket subprotocols are not supported";
    return NULL;
}

/* Opens the websocket and runs the handler's on_open. Returns 0 to accept, -1 refused. */
static int open_ws(tr_server *srv, struct lws *wsi, tr_req *req, const tr_route *rt) {
    tr_ws *ws = calloc(1, sizeof *ws);
    if (ws == NULL) {
        tr_resp_error(req, 500, "InternalFailure", "Out of memory");
        return refuse(req);
    }
    ws->srv = srv;
    ws->wsi = wsi;
    ws->req = req; /* takes over the request's creation ref; ws_end detaches it */
    tr_req_ref(req);
    ws->handler = rt->ws;
    ws->ctx = rt->ctx;
    ws->refs = 1;
    tr_req_set_route(req, rt, NULL);
    if (read_params(ws, wsi) != 0) tr_resp_error(req, 500, "InternalFailure", "Out of memory");
    int rc = 0;
    tr_ws_ref(ws);
    if (req->resp == RESP_NONE) {
        ws->opening = ws->opened = 1;
        rc = ws->handler->on_open(ws, ws->ctx);
        ws->opening = 0;
    }
    if (rc != 0 || req->resp != RESP_NONE) {
        write_refusal(req);
        ws_end(ws);
        tr_ws_unref(ws);
        return -1;
    }
    /* Accepted: the request is answered by the 101 lws writes next, and its headers go with
     * lws's header table once the upgrade is done. */
    req->status = 101;
    req->resp = RESP_DONE;
    req->hdrs_complete = 1;
    lws_set_opaque_user_data(wsi, ws);
    tr_ws_unref(ws);
    return 0;
}

int tr_ws_on_upgrade(tr_server *srv, struct lws *wsi, const char *upgrade) {
    /* h2c is left to lws as before; only websockets are ours. */
    if (upgrade == NULL || strcasecmp(upgrade, "websocket") != 0) return 0;
    char *uri;
    int uri_len;
    if (lws_http_get_uri_and_method(wsi, &uri, &uri_len) < 0 || uri_len < 0) return -1;
    tr_req *req = tr_req_create(srv, wsi, uri, (size_t)uri_len);
    if (req == NULL) return -1;
    if (srv->stopping) return refuse_builtin(req, &tr_builtin_draining);
    const tr_route *rt = tr_router_match_ws(srv->router, req->path);
    if (rt == NULL || strcmp(req->method, "GET") != 0)
        return refuse_builtin(req, &tr_builtin_not_found);
    const char *fault = handshake_fault(req);
    if (fault != NULL) return refuse_bad(req, rt, fault);
    /* Authentication (a presigned query, or the headers' signature) before on_open. */
    tr_req_set_route(req, rt, NULL);
    if (tr_req_auth_headers(req, 0) != 0) return refuse(req);
    return open_ws(srv, wsi, req, rt);
}

/* ---- the open websocket ---- */

void tr_ws_on_established(struct lws *wsi) {
    tr_ws *ws = ws_of(wsi);
    if (ws == NULL) return;
    ws->established = 1;
    if (ws->head != NULL || ws->closing) lws_callback_on_writable(wsi);
}

int tr_ws_on_receive(struct lws *wsi, const void *in, size_t len) {
    tr_ws *ws = ws_of(wsi);
    if (ws == NULL || ws->closing || ws->peer_closed) return 0;
    int binary = lws_frame_is_binary(wsi);
    int final = lws_is_final_fragment(wsi);
    tr_ws_ref(ws);
    ws->handler->on_message(ws, in != NULL ? in : (const void *)"", len, binary, final,
                            ws->ctx);
    tr_ws_unref(ws);
    return 0;
}

/* Writes up to one piece of the first queued message. Returns 0 or -1. */
static int write_piece(tr_ws *ws) {
    ws_msg *m = ws->head;
    size_t n = m->len - m->off;
    if (n > WS_PIECE) n = WS_PIECE;
    int first = m->off == 0, last = m->off + n == m->len;
    int wp = !first ? LWS_WRITE_CONTINUATION : m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT;
    if (!last) wp |= LWS_WRITE_NO_FIN;
    memcpy(scratch + LWS_PRE, m->data + m->off, n);
    int w = lws_write(ws->wsi, scratch + LWS_PRE, n, (enum lws_write_protocol)wp);
    if (w < (int)n) return -1;
    m->off += n;
    ws->pending -= n;
    if (last) {
        ws->head = m->next;
        if (ws->head == NULL) ws->tail = NULL;
        free(m);
    }
    return 0;
}

int tr_ws_on_writeable(struct lws *wsi) {
    tr_ws *ws = ws_of(wsi);
    if (ws == NULL || ws->peer_closed) return 0;
    int wrote = 0;
    for (int i = 0; i < WS_WRITES_PER_TURN && ws->head != NULL; i++) {
        if (i > 0 && lws_send_pipe_choked(wsi)) break;
        if (write_piece(ws) != 0) return -1;
        wrote = 1;
    }
    if (wrote && !ws->closing && ws->handler->on_drain != NULL &&
        ws->pending < TR_DRAIN_LOW_WATER) {
        tr_ws_ref(ws);
        ws->handler->on_drain(ws, ws->ctx);
        tr_ws_unref(ws);
        if (ws->wsi == NULL) return 0;
    }
    if (ws->head != NULL) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    if (!ws->closing) return 0;
    /* Everything queued is out: lws sends the close frame and waits for the peer's. */
    lws_close_reason(wsi, (enum lws_close_status)ws->close_status,
                     (unsigned char *)ws->close_reason, strlen(ws->close_reason));
    return -1;
}

void tr_ws_on_peer_close(struct lws *wsi, const uint8_t *in, size_t len) {
    tr_ws *ws = ws_of(wsi);
    if (ws == NULL || ws->peer_closed) return;
    ws->peer_closed = 1;
    queue_free(ws); /* lws answers the close now; nothing more can be sent */
    int status = in != NULL && len >= 2 ? (in[0] << 8) | in[1] : WS_NO_STATUS;
    const char *reason = in != NULL && len > 2 ? (const char *)in + 2 : "";
    if (ws->handler->on_peer_close == NULL) return;
    tr_ws_ref(ws);
    ws->handler->on_peer_close(ws, status, reason, len > 2 ? len - 2 : 0, ws->ctx);
    tr_ws_unref(ws);
}

void tr_ws_on_closed(struct lws *wsi) {
    tr_ws *ws = ws_of(wsi);
    if (ws != NULL) ws_end(ws);
}

/* ---- the handler's API ---- */

const char *tr_ws_path(const tr_ws *ws) { return ws->req->path; }
const char *tr_ws_query(const tr_ws *ws) { return ws->req->query; }
const char *tr_ws_id(const tr_ws *ws) { return ws->req->id; }
void tr_ws_set_user(tr_ws *ws, void *user) { ws->user = user; }
void *tr_ws_user(const tr_ws *ws) { return ws->user; }
int tr_ws_alive(const tr_ws *ws) { return ws->wsi != NULL; }
size_t tr_ws_pending(const tr_ws *ws) { return ws->pending; }

void tr_ws_pause(tr_ws *ws, int pause) {
    if (ws->wsi != NULL) lws_rx_flow_control(ws->wsi, !pause);
}
tr_req *tr_ws_request(tr_ws *ws) { return ws->opening ? ws->req : NULL; }

const char *tr_ws_param(const tr_ws *ws, const char *name) {
    for (const tr_kv *kv = ws->params; kv != NULL; kv = kv->next)
        if (strcmp(kv->name, name) == 0) return kv->value;
    return NULL;
}

const char *tr_ws_header(tr_ws *ws, const char *name) {
    return ws->opening ? tr_req_header(ws->req, name) : NULL;
}

static int sendable(const tr_ws *ws) {
    return ws->wsi != NULL && !ws->closing && !ws->peer_closed;
}

int tr_ws_send(tr_ws *ws, const void *data, size_t len, int binary) {
    if (!sendable(ws)) return -1;
    ws_msg *m = malloc(sizeof *m + len);
    if (m == NULL) return -1;
    m->next = NULL;
    m->len = len;
    m->off = 0;
    m->binary = binary != 0;
    if (len > 0) memcpy(m->data, data, len);
    if (ws->tail != NULL) ws->tail->next = m;
    else ws->head = m;
    ws->tail = m;
    ws->pending += len;
    if (ws->established) lws_callback_on_writable(ws->wsi);
    return 0;
}

/* Status codes an endpoint may send (RFC 6455 7.4): 1000-1003, 1007-1011, 3000-4999. */
static int valid_status(int s) {
    return (s >= 1000 && s <= 1003) || (s >= 1007 && s <= 1011) || (s >= 3000 && s <= 4999);
}

int tr_ws_close(tr_ws *ws, int status, const char *reason) {
    if (!sendable(ws)) return -1;
    ws->closing = 1;
    ws->close_status = valid_status(status) ? status : TR_WS_INTERNAL;
    size_t n = reason != NULL ? strlen(reason) : 0;
    if (n > WS_REASON_MAX) {
        n = WS_REASON_MAX;
        while (n > 0 && ((unsigned char)reason[n] & 0xC0) == 0x80) n--; /* whole UTF-8 only */
    }
    if (n > 0) memcpy(ws->close_reason, reason, n);
    ws->close_reason[n] = '\0';
    if (ws->established) lws_callback_on_writable(ws->wsi);
    return 0;
}

void tr_ws_ref(tr_ws *ws) { ws->refs++; }

void tr_ws_unref(tr_ws *ws) {
    if (--ws->refs > 0) return;
    queue_free(ws);
    tr_kv_free_all(ws->params);
    tr_req_unref(ws->req);
    free(ws);
}
