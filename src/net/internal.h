/* Private to src/net: the request and server structs and the functions the net files share.
 * Handlers never include this; they use net/http.h. */
#ifndef TR_NET_INTERNAL_H
#define TR_NET_INTERNAL_H

#include <libwebsockets.h>
#include <stdatomic.h>
#include <stdint.h>

#include "net/chunked.h"
#include "net/http.h"
#include "net/reqid.h"
#include "net/router.h"
#include "net/server.h"
#include "net/signals.h"
#include "net/ws.h"

#define TR_OP_MAX 64
#define TR_ERRTYPE_MAX 64
#define TR_WRITE_CHUNK 16384       /* one lws_write; an HTTP/2 DATA frame's default max */
/* One lws_write of an HTTP/1.1 answer sent whole (lws keeps what the socket does not take and
 * sends it before the next WRITEABLE): 16 KiB pieces made a 500 KB GetRecords answer wait
 * through 30 turns of a busy loop, the readers' largest share of the visible latency. */
#define TR_WRITE_WHOLE (256 * 1024)
#define TR_DRAIN_LOW_WATER 65536   /* on_drain fires when a stream's queue falls below this */

typedef struct tr_kv {
    struct tr_kv *next;
    char *name, *value;
} tr_kv;

typedef struct tr_h2_conn tr_h2_conn;
typedef struct tr_tls tr_tls;
typedef struct tr_h2_stream tr_h2_stream;
typedef struct tr_h1_conn tr_h1_conn;

typedef enum {
    RESP_NONE = 0,   /* no answer yet */
    RESP_QUEUED,     /* answer set; headers not yet written */
    RESP_BODY,       /* headers written; body (or stream) being written */
    RESP_DONE,       /* everything written, END_STREAM / final chunk sent */
} resp_state;

struct tr_req {
    tr_server *srv;
    struct lws *wsi;          /* NULL once the request is dead (h2: the connection's) */
    tr_h2_stream *h2s;        /* an HTTP/2 stream spoken by h2.c (nghttp2), else NULL */
    tr_h1_conn *h1c;          /* an HTTP/1.1 connection spoken by h1.c, else NULL */
    int refs;
    const tr_route *route;    /* NULL for built-in answers (unknown route, draining) */
    const tr_handler *handler;
    void *ctx;                /* the route's ctx */
    void *user;

    char method[16];
    char *path, *query, *target;
    char op[TR_OP_MAX];
    char id[TR_UUID_LEN + 1];
    char id2[TR_AMZ_ID2_LEN + 1];
    int h2, tls;
    int64_t start_ns;
    tr_kv *hdr_cache;         /* looked-up request headers, owned */
    int hdrs_complete;        /* hdr_cache holds every header (h2.c): never ask lws */

    /* request body */
    int stream_body;          /* chunks go to handler->on_body */
    int chunked;              /* HTTP/1.1 chunked body: decoded here (lws passes it raw) */
    tr_chunked dechunk;
    int body_done;
    int dispatched;           /* on_request called */
    int body_paused;          /* tr_req_pause_body: the body is not read */
    uint64_t body_limit;
    uint8_t *body;
    size_t body_len, body_cap;

    /* response */
    resp_state resp;
    int status;
    int streaming;            /* unknown length: chunked (h1) or open DATA frames (h2) */
    int ended;                /* tr_resp_end called */
    int close_after;          /* drop the connection once written (413) */
    char content_type[128];
    char err_type[TR_ERRTYPE_MAX];
    tr_kv *resp_headers;      /* owned, in insertion order */
    uint8_t *out;             /* queued body bytes: out[out_off .. out_len) */
    size_t out_off, out_len, out_cap;
    int finished;             /* metrics/log done and detached from the wsi */

    /* authentication (net/server.h) */
    int auth_pending;         /* the authenticator waits for the whole body */
    char principal[128];      /* "" = none (no credentials configured, or open route) */
};

/* The per-connection (h1) or per-stream (h2) user data lws allocates. */
typedef struct tr_pss {
    tr_req *req;
} tr_pss;

struct tr_server {
    tr_config cfg;
    tr_store *store;
    tr_router *router;
    tr_taskq *tasks;
    tr_workpool *pool;
    tr_signals *signals;
    struct lws_context *lws;
    struct lws_vhost *vhost;     /* plain HTTP/1.1 (and the raw watchers) */
    struct lws_vhost *vhost_h2;  /* plain HTTP/2 with prior knowledge */
    tr_tls *tls;                 /* TLS (tls.c) on the port; NULL without a certificate */
    struct lws *listen_wsi;      /* our listening socket, watched as a raw descriptor */
    lws_sorted_usec_list_t drain_sul;
    lws_sorted_usec_list_t tick_sul;
    struct { tr_tick_fn fn; void *ctx; } ticks[TR_SERVER_MAX_TICKS];
    int nticks;
    tr_task stop_task;
    atomic_int stop_posted;   /* stop_task queued once */
    int stopping;             /* draining: no new connections or requests */
    int done;                 /* leave the service loop */
    int64_t drain_deadline_ns;
    int64_t inflight;         /* requests created and not yet finished */
    struct ev_loop *evloop;   /* the libev loop lws runs on (epoll); NULL: lws's poll() */
    void *foreign_loops[1];   /* lws keeps the pointer: must live as long as the context */
    tr_authenticate_fn authn; /* NULL: no credentials, every request passes */
    void *authn_ctx;
    tr_authorize_fn authz;
    void *authz_ctx;
    struct { void (*fn)(void *ctx); void *ctx; } reloads[TR_SERVER_MAX_RELOADS];
    int nreloads;
};

/* request.c */
tr_req *tr_req_create(tr_server *srv, struct lws *wsi, const char *uri, size_t uri_len);
/* A request on an HTTP/2 stream of h2.c: takes the headers (*hdrs is set to NULL). */
tr_req *tr_req_create_h2(tr_server *srv, struct lws *conn_wsi, tr_h2_stream *st,
                         const char *method, const char *path_and_query, tr_kv **hdrs);
/* The same for a request read by h1.c on its connection. */
tr_req *tr_req_create_h1(tr_server *srv, struct lws *conn_wsi, tr_h1_conn *c,
                         const char *method, const char *path_and_query, tr_kv **hdrs);
/* Routes the request (or picks a built-in handler) and runs on_headers. Returns 0 or -1. */
int tr_req_begin(tr_req *req);
/* A piece of body from lws: accumulates or streams. Returns 0, or -1 to drop. */
int tr_req_on_body(tr_req *req, const uint8_t *data, size_t len);
/* The body is complete: runs on_request once. */
void tr_req_body_complete(tr_req *req);
/* The connection or stream is gone: the request dies (on_close, metrics) and is unref'd. */
void tr_req_detach(tr_req *req);
/* Sets the route (NULL: a built-in answer), the handler and the default operation label. */
void tr_req_set_route(tr_req *req, const tr_route *route, const tr_handler *handler);
int64_t tr_now_ns(void);

/* response.c */
/* Writes what is due on WRITEABLE. Returns 0, or -1 to close the connection/stream. */
int tr_resp_on_writeable(tr_req *req);
/* Writes a queued complete answer (HTTP/1.1, small) at once, inside an lws callback: the
 * refusal of a websocket upgrade, which lws hangs up after. Returns 0 or -1. */
int tr_resp_write_now(tr_req *req);
void tr_kv_free_all(tr_kv *kv);

/* listener.c */
int tr_listener_bind(const tr_config *c, int *out_fd, char *err, size_t err_len);
/* Watches the bound socket from the loop; takes ownership of fd. Returns 0 or -1. */
int tr_listener_start(tr_server *s, int fd);
/* Closes the listening socket: no new connections. */
void tr_listener_stop(tr_server *s);
/* Serves a connected socket as the plain port does (sniffed: HTTP/2 preface or HTTP/1.1);
 * takes ownership of fd. tls.c hands it the inner end of each TLS bridge. Returns 0 or -1. */
int tr_listener_adopt_plain(tr_server *s, int fd);
int tr_listener_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                         void *in, size_t len);

/* h2.c: HTTP/2 on the plain port with nghttp2, on a raw lws descriptor. */
/* Turns a sniffed raw connection into an h2 connection. Returns 0 or -1. */
int tr_h2_start(tr_server *s, struct lws *wsi);
tr_h2_conn *tr_h2_of(struct lws *wsi);   /* NULL for a raw watcher that is not h2 */
int tr_h2_on_readable(tr_h2_conn *c);    /* 0, or -1 to close */
int tr_h2_on_writeable(tr_h2_conn *c);   /* 0, or -1 to close */
void tr_h2_on_close(tr_h2_conn *c);
void tr_h2_submit(tr_req *req);          /* the answer is set: send HEADERS, then DATA */
void tr_h2_resume(tr_req *req);          /* more streamed body, or its end */
void tr_h2_unlink(tr_req *req);          /* the request dies before its stream */
void tr_h2_pause_body(tr_req *req);      /* req->body_paused changed */

/* h1.c: HTTP/1.1 uploads (POST /putMedia) on the plain port, read by our own reader on a
 * raw lws descriptor: lws 4.1 ends a body without Content-Length at 100 MiB and drops an
 * upload after 5 s without data. The connection is the raw watcher's lws user data. */
int tr_h1_start(tr_server *s, struct lws *wsi);  /* 0 or -1 */
tr_h1_conn *tr_h1_of(struct lws *wsi);   /* NULL for a raw watcher that is not h1 */
int tr_h1_on_readable(tr_h1_conn *c);    /* 0, or -1 to close */
int tr_h1_on_writeable(tr_h1_conn *c);   /* 0, or -1 to close */
void tr_h1_on_close(tr_h1_conn *c);
void tr_h1_resume(tr_req *req);          /* an answer was set, or more of it, or its end */
void tr_h1_unlink(tr_req *req);          /* the request dies before its connection */
void tr_h1_pause_body(tr_req *req);      /* req->body_paused changed */

/* tls.c: TLS terminated with OpenSSL; each connection is bridged into the plain path. */
/* Loads the certificate (chain) and key. Returns 0, or -1 with a message in err. */
int tr_tls_new(const char *cert, const char *key, tr_tls **out, char *err, size_t err_len);
void tr_tls_free(tr_tls *t);
/* Loads the files again for new connections; established ones keep theirs. On failure logs
 * and keeps the current pair. Returns 0 or -1. Loop thread. */
int tr_tls_reload(tr_tls *t);
void tr_tls_accept(tr_server *s, int fd);  /* a new TCP connection; takes fd */
/* Whether a connection came through TLS: the inner end of a bridge (a unix socket). */
int tr_tls_bridged(struct lws *wsi);
int tr_tls_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len);

/* ws.c: the websocket events of the "http" protocol callback (server.c). */
/* LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: 0 to go on with the upgrade, -1 to hang up (after the
 * refusal it wrote). */
int tr_ws_on_upgrade(tr_server *srv, struct lws *wsi, const char *upgrade);
void tr_ws_on_established(struct lws *wsi);
int tr_ws_on_receive(struct lws *wsi, const void *in, size_t len);  /* 0, or -1 to close */
int tr_ws_on_writeable(struct lws *wsi);                            /* 0, or -1 to close */
void tr_ws_on_peer_close(struct lws *wsi, const uint8_t *in, size_t len);
/* The connection is closing or freed (idempotent; a wsi without a websocket is ignored). */
void tr_ws_on_closed(struct lws *wsi);

/* auth.c: the authentication hooks of request.c and ws.c. */
/* At headers, before on_headers (body_follows: a body comes). Returns 0 to go on (allowed,
 * or waiting for the body: req->auth_pending), 1 when the request is answered (denied). */
int tr_req_auth_headers(tr_req *req, int body_follows);
/* The accumulated body is complete and the authenticator waited for it. Returns 0 allowed,
 * 1 answered (denied). */
int tr_req_auth_body(tr_req *req);

/* builtin.c */
extern const tr_handler tr_builtin_not_found;
/* A plain GET on a websocket route: 426 Upgrade Required. */
extern const tr_handler tr_builtin_upgrade_required;
extern const tr_handler tr_builtin_draining;
int tr_builtin_register(tr_server *s);
/* Counts the finished request in the metrics registry and logs it at debug level. */
void tr_builtin_observe(const tr_req *req);
/* Whether a route is one of the server's open endpoints (/health, /metrics): no
 * authentication. */
int tr_builtin_is_open(const tr_route *route);

#endif
