/* The route table: services register handlers by method, path (exact, or a prefix when the
 * pattern ends in '*') and optionally an X-Amz-Target prefix, so that every API plugs in
 * without touching the net code:
 *
 *   tr_router_add(r, "POST", "/", "Kinesis_20131202.", &kinesis_handler, svc);
 *   tr_router_add(r, "POST", "/createStream", NULL, &kvs_create_stream, svc);
 *   tr_router_add(r, "GET", "/hls*", NULL, &hls_handler, svc);  (prefix "/hls")
 *
 * Matching picks the most specific route: a route whose target prefix matches beats one with
 * no target; then an exact path beats a prefix; then the longer prefix wins. A route with a
 * target prefix never matches a request without that header. The router is filled before the
 * server starts and is read-only afterwards, so lookups need no lock.
 *
 * Websocket routes (net/ws.h) are a table of their own, matched by path alone (same patterns)
 * when a GET asks for `Upgrade: websocket`; a plain request never matches them:
 *
 *   tr_router_add_ws(r, "/putMedia", &putmedia_ws, face); */
#ifndef TR_NET_ROUTER_H
#define TR_NET_ROUTER_H

#include <stddef.h>

#include "net/http.h"
#include "net/ws.h"

typedef struct tr_route {
    const char *method;        /* "GET", "POST", ...; NULL = any method */
    const char *path;          /* "/x" exact, "/x*" the prefix "/x" */
    const char *target_prefix; /* NULL = the X-Amz-Target header is not considered */
    const tr_handler *handler; /* static: must outlive the router; NULL on a websocket route */
    const tr_ws_handler *ws;   /* a websocket route's handler (static), else NULL */
    void *ctx;                 /* passed to every handler callback */
} tr_route;

typedef struct tr_router tr_router;

tr_router *tr_router_new(void);
void tr_router_free(tr_router *r);

/* Copies the strings. Returns 0, TR_EINVAL (bad pattern, NULL handler) or TR_ENOMEM. */
int tr_router_add(tr_router *r, const char *method, const char *path, const char *target_prefix,
                  const tr_handler *handler, void *ctx);

/* target may be NULL (no header). Returns the best route or NULL. */
const tr_route *tr_router_match(const tr_router *r, const char *method, const char *path,
                                const char *target);

/* A websocket route: copies the path. Returns 0, TR_EINVAL (bad pattern, a handler without
 * on_open or on_message) or TR_ENOMEM. */
int tr_router_add_ws(tr_router *r, const char *path, const tr_ws_handler *handler, void *ctx);
/* The best websocket route for the path, or NULL. */
const tr_route *tr_router_match_ws(const tr_router *r, const char *path);

#endif
