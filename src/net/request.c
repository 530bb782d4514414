/* The request object: creation from an lws transaction, routing, header lookup, body
 * accumulation or streaming, and the end of its life. The response side is response.c. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "net/internal.h"
#include "util/error.h"
#include "util/log.h"

int64_t tr_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Copies an lws header token into a fresh string; NULL when absent or out of memory. */
static char *copy_token(struct lws *wsi, enum lws_token_indexes t) {
    int len = lws_hdr_total_length(wsi, t);
    if (len <= 0) return NULL;
    char *s = malloc((size_t)len + 1);
    if (s == NULL) return NULL;
    if (lws_hdr_copy(wsi, s, len + 1, t) < 0) {
        free(s);
        return NULL;
    }
    return s;
}

/* lws hands the method as an index on HTTP/1.1 and as the :method pseudo-header on h2. */
static int read_method(tr_req *req) {
    static const char *const names[] = {"GET",    "POST",    "OPTIONS", "PUT",
                                        "PATCH",  "DELETE",  "CONNECT", "HEAD"};
    char *uri;
    int uri_len;
    int m = lws_http_get_uri_and_method(req->wsi, &uri, &uri_len);
    if (m >= 0 && m < (int)(sizeof names / sizeof names[0])) {
        snprintf(req->method, sizeof req->method, "%s", names[m]);
        return 0;
    }
    return lws_hdr_copy(req->wsi, req->method, sizeof req->method,
                        WSI_TOKEN_HTTP_COLON_METHOD) > 0 ? 0 : -1;
}

/* lws splits the query into '&'-separated fragments (already %-decoded); join them again. */
static char *read_query(struct lws *wsi) {
    int total = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS);
    if (total <= 0) return strdup("");
    size_t cap = (size_t)total + 64; /* room for the separators */
    char *q = malloc(cap);
    if (q == NULL) return NULL;
    size_t len = 0;
    char frag[1024];
    for (int i = 0;; i++) {
        int n = lws_hdr_copy_fragment(wsi, frag, sizeof frag, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n <= 0) break;
        if (len + (size_t)n + 2 > cap) break; /* cannot happen: total covers the fragments */
        if (len > 0) q[len++] = '&';
        memcpy(q + len, frag, (size_t)n);
        len += (size_t)n;
    }
    q[len] = '\0';
    return q;
}

tr_req *tr_req_create(tr_server *srv, struct lws *wsi, const char *uri, size_t uri_len) {
    tr_req *req = calloc(1, sizeof *req);
    if (req == NULL) return NULL;
    req->srv = srv;
    req->wsi = wsi;
    req->refs = 1;
    req->start_ns = tr_now_ns();
    req->tls = tr_tls_bridged(wsi);
    /* An HTTP/2 stream is a child of its connection's network wsi. */
    req->h2 = lws_get_network_wsi(wsi) != wsi;
    req->body_limit = srv->cfg.max_request_bytes;
    const char *qmark = memchr(uri, '?', uri_len);
    if (qmark != NULL) uri_len = (size_t)(qmark - uri);
    req->path = strndup(uri, uri_len);
    req->query = read_query(wsi);
    if (req->path == NULL || req->query == NULL || read_method(req) != 0 ||
        tr_reqid_uuid4(req->id) != 0 || tr_reqid_amz_id2(req->id2) != 0) {
        tr_req_unref(req);
        return NULL;
    }
    const char *t = tr_req_header(req, "x-amz-target");
    if (t != NULL) req->target = strdup(t);
    srv->inflight++;
    return req;
}

/* %-decodes s[0..len) into a fresh string. */
static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static char *pct_decode(const char *s, size_t len) {
    char *d = malloc(len + 1);
    if (d == NULL) return NULL;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int hi = i + 2 < len && s[i] == '%' ? hexval(s[i + 1]) : -1;
        int lo = hi >= 0 ? hexval(s[i + 2]) : -1;
        if (lo >= 0) {
            d[n++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            d[n++] = s[i];
        }
    }
    d[n] = '\0';
    return d;
}

/* A request whose head our own code parsed (h2.c, h1.c): takes the headers. */
static tr_req *create_parsed(tr_server *srv, struct lws *conn_wsi, const char *method,
                             const char *path_and_query, tr_kv **hdrs) {
    tr_req *req = calloc(1, sizeof *req);
    if (req == NULL) return NULL;
    req->srv = srv;
    req->wsi = conn_wsi;
    req->refs = 1;
    req->start_ns = tr_now_ns();
    req->tls = tr_tls_bridged(conn_wsi);
    req->body_limit = srv->cfg.max_request_bytes;
    req->hdr_cache = *hdrs;
    req->hdrs_complete = 1;
    *hdrs = NULL;
    snprintf(req->method, sizeof req->method, "%s", method);
    size_t plen = strlen(path_and_query);
    const char *qmark = memchr(path_and_query, '?', plen);
    size_t path_len = qmark ? (size_t)(qmark - path_and_query) : plen;
    req->path = pct_decode(path_and_query, path_len);
    req->query = qmark ? pct_decode(qmark + 1, plen - path_len - 1) : strdup("");
    if (req->path == NULL || req->query == NULL || tr_reqid_uuid4(req->id) != 0 ||
        tr_reqid_amz_id2(req->id2) != 0) {
        req->wsi = NULL;
        tr_req_unref(req);
        return NULL;
    }
    const char *t = tr_req_header(req, "x-amz-target");
    if (t != NULL) req->target = strdup(t);
    srv->inflight++;
    return req;
}

tr_req *tr_req_create_h2(tr_server *srv, struct lws *conn_wsi, tr_h2_stream *st,
                         const char *method, const char *path_and_query, tr_kv **hdrs) {
    tr_req *req = create_parsed(srv, conn_wsi, method, path_and_query, hdrs);
    if (req != NULL) {
        req->h2s = st;
        req->h2 = 1;
    }
    return req;
}

tr_req *tr_req_create_h1(tr_server *srv, struct lws *conn_wsi, tr_h1_conn *c,
                         const char *method, const char *path_and_query, tr_kv **hdrs) {
    tr_req *req = create_parsed(srv, conn_wsi, method, path_and_query, hdrs);
    if (req != NULL) req->h1c = c;
    return req;
}

/* The default operation label: the X-Amz-Target operation, else the route's pattern (never
 * the raw path, which would make one series per URL). */
static void default_operation(tr_req *req) {
    if (req->route == NULL) {
        snprintf(req->op, sizeof req->op, "unknown");
        return;
    }
    if (req->target != NULL && req->route->target_prefix != NULL) {
        const char *dot = strrchr(req->target, '.');
        snprintf(req->op, sizeof req->op, "%s", dot ? dot + 1 : req->target);
        return;
    }
    snprintf(req->op, sizeof req->op, "%s", req->route->path);
}

/* Parses Content-Length: -1 absent, -2 malformed, else the value. */
static int64_t content_length(tr_req *req) {
    const char *cl = tr_req_header(req, "content-length");
    if (cl == NULL) return -1;
    char *end;
    long long v = strtoll(cl, &end, 10);
    if (end == cl || *end != '\0' || v < 0) return -2;
    return v;
}

/* Whether body callbacks will follow. lws gives HTTP/1.1 bodies by Content-Length or chunked
 * transfer coding; an HTTP/2 body may come without a length, so trust the method there. */
static int expects_body(tr_req *req, int64_t clen) {
    if (clen >= 0) return clen > 0;
    const char *te = tr_req_header(req, "transfer-encoding");
    if (te != NULL && strcasestr(te, "chunked") != NULL) return 1;
    if (req->h2)
        return !strcmp(req->method, "POST") || !strcmp(req->method, "PUT") ||
               !strcmp(req->method, "PATCH");
    return 0;
}

void tr_req_set_route(tr_req *req, const tr_route *route, const tr_handler *handler) {
    req->route = route;
    req->handler = handler;
    req->ctx = route ? route->ctx : NULL;
    default_operation(req);
}

/* No HTTP route: a GET on a websocket's path asks for the upgrade it lacks (426). */
static const tr_handler *unrouted(tr_req *req) {
    if (strcmp(req->method, "GET") == 0 && tr_router_match_ws(req->srv->router, req->path))
        return &tr_builtin_upgrade_required;
    return &tr_builtin_not_found;
}

int tr_req_begin(tr_req *req) {
    tr_server *srv = req->srv;
    if (srv->stopping) {
        tr_req_set_route(req, NULL, &tr_builtin_draining);
    } else {
        const tr_route *rt = tr_router_match(srv->router, req->method, req->path, req->target);
        tr_req_set_route(req, rt, rt ? rt->handler : unrouted(req));
    }
    int64_t clen = content_length(req);
    if (clen == -2) {
        req->body_done = 1;
        req->close_after = 1;
        tr_resp_error(req, 400, "SerializationException", "Malformed Content-Length header");
        return 0;
    }
    /* Authentication comes before the handler sees anything (net/server.h); a refused
     * request is answered here and its body, if any, dropped. */
    int refused = tr_req_auth_headers(req, expects_body(req, clen));
    if (!refused && req->handler->on_headers != NULL &&
        req->handler->on_headers(req, req->ctx) != 0)
        return -1;
    if (!req->stream_body && clen > 0 && (uint64_t)clen > req->body_limit &&
        req->resp == RESP_NONE) {
        /* Refuse before reading a byte; the unread body forces a close afterwards. */
        req->close_after = 1;
        tr_resp_error(req, 413, "RequestEntityTooLarge", "Request body is too large");
    }
    const char *te = tr_req_header(req, "transfer-encoding");
    if (!req->h2 && clen < 0 && te != NULL && strcasestr(te, "chunked") != NULL) {
        req->chunked = 1;
        tr_chunked_init(&req->dechunk);
    }
    if (!expects_body(req, clen)) tr_req_body_complete(req);
    return 0;
}

static int accumulate(tr_req *req, const uint8_t *data, size_t len) {
    if (req->resp != RESP_NONE) return 0; /* already answered (413): discard */
    if (req->body_len + len > req->body_limit) {
        req->close_after = 1;
        tr_resp_error(req, 413, "RequestEntityTooLarge", "Request body is too large");
        return 0;
    }
    if (req->body_len + len > req->body_cap) {
        size_t cap = req->body_cap ? req->body_cap : 4096;
        while (cap < req->body_len + len) cap *= 2;
        if (cap > req->body_limit) cap = (size_t)req->body_limit;
        uint8_t *grown = realloc(req->body, cap);
        if (grown == NULL) {
            tr_resp_error(req, 500, "InternalFailure", "Out of memory");
            req->close_after = 1;
            return 0;
        }
        req->body = grown;
        req->body_cap = cap;
    }
    memcpy(req->body + req->body_len, data, len);
    req->body_len += len;
    return 0;
}

static int deliver(void *arg, const uint8_t *data, size_t len) {
    tr_req *req = arg;
    if (len == 0) return 0;
    if (req->stream_body) return req->handler->on_body(req, data, len, req->ctx);
    return accumulate(req, data, len);
}

int tr_req_on_body(tr_req *req, const uint8_t *data, size_t len) {
    if (req->body_done || len == 0) return 0;
    if (!req->chunked) return deliver(req, data, len);
    size_t used = 0;
    int rc = tr_chunked_feed(&req->dechunk, data, len, &used, deliver, req);
    if (rc == TR_CHUNKED_BAD) {
        /* The connection's framing is lost: answer if we still can, then close. */
        req->close_after = 1;
        if (req->resp == RESP_NONE)
            tr_resp_error(req, 400, "SerializationException", "Malformed chunked request body");
        req->body_done = 1;
        return req->resp == RESP_NONE ? -1 : 0;
    }
    if (rc == TR_CHUNKED_DONE) {
        /* lws does not see where a chunked body ends: whatever follows on this connection
         * would reach us as body, so it closes after the answer. */
        req->close_after = 1;
        tr_req_body_complete(req);
        return 0;
    }
    return rc;
}

void tr_req_body_complete(tr_req *req) {
    if (req->body_done && req->dispatched) return;
    req->body_done = 1;
    if (req->dispatched) return;
    req->dispatched = 1;
    /* A streaming handler that already streams its answer (PutMedia's acks) still needs to
     * hear that the body ended. */
    if (req->resp == RESP_NONE || (req->stream_body && req->streaming && !req->ended)) {
        if (req->auth_pending && tr_req_auth_body(req) != 0) return; /* refused, answered */
        tr_req_ref(req); /* the handler may answer and end the request inside */
        req->handler->on_request(req, req->ctx);
        tr_req_unref(req);
        return;
    }
    /* Answered early and fully written: the transaction can end now the body is read. */
    if (req->resp == RESP_DONE && req->wsi != NULL && req->h2s == NULL && req->h1c == NULL)
        lws_callback_on_writable(req->wsi);
}

/* Metrics, log, on_close: once per request, whichever way it ends. */
static void finish(tr_req *req) {
    if (req->finished) return;
    req->finished = 1;
    req->srv->inflight--;
    tr_builtin_observe(req);
    if (req->handler != NULL && req->handler->on_close != NULL)
        req->handler->on_close(req, req->ctx);
}

void tr_req_detach(tr_req *req) {
    if (req->h2s != NULL) {
        tr_h2_unlink(req);
    } else if (req->h1c != NULL) {
        tr_h1_unlink(req);
    } else if (req->wsi != NULL) {
        tr_pss *pss = lws_wsi_user(req->wsi);
        if (pss != NULL && pss->req == req) pss->req = NULL;
    }
    req->wsi = NULL;
    finish(req);
    tr_req_unref(req);
}

/* ---- accessors ---- */

const char *tr_req_method(const tr_req *req) { return req->method; }
const char *tr_req_path(const tr_req *req) { return req->path; }
const char *tr_req_query(const tr_req *req) { return req->query; }
const char *tr_req_target(const tr_req *req) { return req->target; }
const char *tr_req_id(const tr_req *req) { return req->id; }
int tr_req_is_h2(const tr_req *req) { return req->h2; }
int tr_req_is_tls(const tr_req *req) { return req->tls; }
void tr_req_set_user(tr_req *req, void *user) { req->user = user; }
void *tr_req_user(const tr_req *req) { return req->user; }
int tr_req_alive(const tr_req *req) { return req->wsi != NULL; }

const uint8_t *tr_req_body(const tr_req *req, size_t *len) {
    *len = req->body_len;
    return req->body ? req->body : (const uint8_t *)"";
}

void tr_req_stream_body(tr_req *req) {
    if (req->handler != NULL && req->handler->on_body != NULL) req->stream_body = 1;
}

void tr_req_pause_body(tr_req *req, int pause) {
    pause = pause != 0;
    if (req->body_paused == pause) return;
    req->body_paused = pause;
    if (req->wsi == NULL) return; /* dead */
    if (req->h2s != NULL)
        tr_h2_pause_body(req);
    else if (req->h1c != NULL)
        tr_h1_pause_body(req);
    else if (!req->body_done)
        lws_rx_flow_control(req->wsi, !pause); /* lws's HTTP/1.1 (a keep-alive connection) */
}

void tr_req_set_operation(tr_req *req, const char *op) {
    snprintf(req->op, sizeof req->op, "%s", op);
}

void tr_req_ref(tr_req *req) { req->refs++; }

void tr_req_unref(tr_req *req) {
    if (--req->refs > 0) return;
    free(req->path);
    free(req->query);
    free(req->target);
    free(req->body);
    free(req->out);
    tr_kv_free_all(req->hdr_cache);
    tr_kv_free_all(req->resp_headers);
    free(req);
}

/* ---- header lookup ---- */

/* Known headers live in lws token slots named "name:"; others are lws custom headers. */
static char *lookup_header(struct lws *wsi, const char *name) {
    size_t nlen = strlen(name);
    for (int t = 0; t < (int)WSI_TOKEN_COUNT; t++) {
        const char *s = (const char *)lws_token_to_string((enum lws_token_indexes)t);
        if (s != NULL && strncasecmp(s, name, nlen) == 0 && s[nlen] == ':' && s[nlen + 1] == 0)
            return copy_token(wsi, (enum lws_token_indexes)t);
    }
    char key[128];
    if (nlen + 2 > sizeof key) return NULL;
    for (size_t i = 0; i < nlen; i++) key[i] = (char)tolower((unsigned char)name[i]);
    key[nlen] = ':';
    key[nlen + 1] = '\0';
    int klen = (int)nlen + 1;
    int len = lws_hdr_custom_length(wsi, key, klen);
    if (len < 0) { /* HTTP/2 (hpack) stores custom names without the colon */
        klen = (int)nlen;
        len = lws_hdr_custom_length(wsi, key, klen);
    }
    if (len < 0) return NULL;
    char *v = malloc((size_t)len + 1);
    if (v == NULL) return NULL;
    if (lws_hdr_custom_copy(wsi, v, len + 1, key, klen) < 0) {
        free(v);
        return NULL;
    }
    return v;
}

const char *tr_req_header(tr_req *req, const char *name) {
    for (tr_kv *kv = req->hdr_cache; kv != NULL; kv = kv->next)
        if (strcasecmp(kv->name, name) == 0) return kv->value;
    if (req->wsi == NULL || req->hdrs_complete) return NULL;
    char *value = lookup_header(req->wsi, name);
    tr_kv *kv = calloc(1, sizeof *kv);
    char *n = strdup(name);
    if (kv == NULL || n == NULL) {
        free(kv);
        free(n);
        free(value);
        return NULL;
    }
    /* Absent headers are cached too (value NULL) so repeated misses stay cheap. */
    kv->name = n;
    kv->value = value;
    kv->next = req->hdr_cache;
    req->hdr_cache = kv;
    return value;
}
