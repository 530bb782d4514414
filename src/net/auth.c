/* The net layer's side of authentication and authorization: the hooks the server calls
 * (installed by main.c from auth/auth.h), the refusal written in the request's protocol, the
 * principal on the request, and SIGHUP's reload hooks. See net/server.h. */
#include <stdio.h>
#include <string.h>

#include "net/internal.h"
#include "util/error.h"
#include "util/log.h"

void tr_server_set_authenticator(tr_server *s, tr_authenticate_fn fn, void *ctx) {
    s->authn = fn;
    s->authn_ctx = ctx;
}

void tr_server_set_authorizer(tr_server *s, tr_authorize_fn fn, void *ctx) {
    s->authz = fn;
    s->authz_ctx = ctx;
}

void tr_req_set_principal(tr_req *req, const char *principal) {
    snprintf(req->principal, sizeof req->principal, "%s", principal ? principal : "");
}

const char *tr_req_principal(const tr_req *req) {
    return req->principal[0] ? req->principal : NULL;
}

int tr_req_authorize(const tr_req *req, const char *action, const char *resource, char *msg,
                     size_t msg_len) {
    tr_server *s = req->srv;
    if (s->authz == NULL) return 1;
    const char *who = req->principal[0] ? req->principal : "anonymous";
    if (req->principal[0] && s->authz(s->authz_ctx, req->principal, action, resource)) return 1;
    snprintf(msg, msg_len, "User: %s is not authorized to perform: %s on resource: %s", who,
             action, resource);
    return 0;
}

/* The refusal in the protocol the request speaks: JSON 1.1 with X-Amz-Target, REST-JSON
 * otherwise; x-amzn-ErrorType either way (SDKs read it first). */
static void answer(tr_req *req, const tr_auth_error *e) {
    tr_resp_header(req, "x-amzn-ErrorType", e->type);
    if (req->target != NULL) {
        tr_resp_error(req, e->status, e->type, e->message);
        return;
    }
    char body[sizeof e->message * 2 + 32];
    size_t n = (size_t)snprintf(body, sizeof body, "{\"Message\":\"");
    for (const char *p = e->message; *p && n + 8 < sizeof body; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') {
            body[n++] = '\\';
            body[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)snprintf(body + n, sizeof body - n, "\\u%04x", c);
        } else {
            body[n++] = (char)c;
        }
    }
    n += (size_t)snprintf(body + n, sizeof body - n, "\"}");
    tr_resp_set_error_type(req, e->type);
    tr_resp_send(req, e->status, "application/json", body, n);
}

static void log_refusal(const tr_req *req, const tr_auth_error *e) {
    /* The message never holds a secret: only the access key id, dates and the service. */
    tr_info("msg=\"request refused\" request_id=%s type=%s path=\"%.100s\" reason=\"%.200s\"",
            req->id, e->type, req->path, e->message);
}

static int needs_auth(const tr_req *req) {
    return req->srv->authn != NULL && req->route != NULL && !tr_builtin_is_open(req->route);
}

int tr_req_auth_headers(tr_req *req, int body_follows) {
    if (!needs_auth(req)) return 0;
    tr_server *s = req->srv;
    tr_auth_error e = {.status = 403};
    tr_auth_verdict v = s->authn(s->authn_ctx, req, TR_AUTH_HEADERS, body_follows, NULL, 0, &e);
    if (v == TR_AUTH_ALLOW) return 0;
    if (v == TR_AUTH_NEED_BODY && req->handler != NULL && req->handler->on_body == NULL) {
        req->auth_pending = 1;
        return 0;
    }
    if (v == TR_AUTH_NEED_BODY) {
        /* A streamed body is never whole in memory: its hash cannot be checked first. */
        e.status = req->target ? 400 : 403;
        snprintf(e.type, sizeof e.type, "InvalidSignatureException");
        snprintf(e.message, sizeof e.message,
                 "A streamed request body must be signed with x-amz-content-sha256: "
                 "UNSIGNED-PAYLOAD or STREAMING-AWS4-HMAC-SHA256-PAYLOAD");
    }
    log_refusal(req, &e);
    /* A body that follows is read and dropped (accumulate discards once answered); one of
     * unknown length (chunked, a stream) may never end: close after the answer. */
    if (body_follows && (req->handler == NULL || req->handler->on_body != NULL ||
                         tr_req_header(req, "content-length") == NULL))
        req->close_after = 1;
    answer(req, &e);
    return 1;
}

int tr_req_auth_body(tr_req *req) {
    if (!req->auth_pending) return 0;
    req->auth_pending = 0;
    tr_server *s = req->srv;
    tr_auth_error e = {.status = 403};
    tr_auth_verdict v =
        s->authn(s->authn_ctx, req, TR_AUTH_BODY, 0, req->body ? req->body : (const uint8_t *)"",
                 req->body_len, &e);
    if (v == TR_AUTH_ALLOW) return 0;
    if (v == TR_AUTH_NEED_BODY) {
        e.status = 500;
        snprintf(e.type, sizeof e.type, "InternalFailure");
        snprintf(e.message, sizeof e.message, "The request could not be authenticated");
    }
    log_refusal(req, &e);
    answer(req, &e);
    return 1;
}

/* ---- SIGHUP ---- */

int tr_server_on_reload(tr_server *s, void (*fn)(void *ctx), void *ctx) {
    if (s->nreloads == TR_SERVER_MAX_RELOADS) return TR_ENOMEM;
    s->reloads[s->nreloads].fn = fn;
    s->reloads[s->nreloads].ctx = ctx;
    s->nreloads++;
    return TR_OK;
}

static void run_reloads(void *arg) {
    tr_server *s = arg;
    tr_info("msg=\"reloading\" hooks=%d", s->nreloads);
    for (int i = 0; i < s->nreloads; i++) s->reloads[i].fn(s->reloads[i].ctx);
}

void tr_server_reload(tr_server *s) {
    if (tr_taskq_post_fn(s->tasks, run_reloads, s) != TR_OK)
        tr_error("msg=\"cannot reload: out of memory\"");
}
