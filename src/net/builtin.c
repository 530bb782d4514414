/* The server's own endpoints and answers: GET /health, GET /metrics, unknown routes, a plain
 * GET on a websocket route, the refusal while draining, and the per-request metrics every
 * answer is counted in. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/internal.h"
#include "util/error.h"
#include "util/log.h"
#include "util/metrics.h"

static void health(tr_req *req, void *ctx) {
    tr_server *s = ctx;
    if (s->store != NULL && tr_store_healthy(s->store)) {
        static const char ok[] = "{\"status\":\"ok\"}";
        tr_resp_send(req, 200, "application/json", ok, sizeof ok - 1);
    } else {
        static const char bad[] = "{\"status\":\"unavailable\"}";
        tr_resp_set_error_type(req, "StoreUnavailable");
        tr_resp_send(req, 503, "application/json", bad, sizeof bad - 1);
    }
}

static void metrics(tr_req *req, void *ctx) {
    size_t len = 0;
    char *text = tr_metrics_render(&len);
    if (text == NULL) {
        tr_resp_error(req, 500, "InternalFailure", "cannot render metrics");
        return;
    }
    tr_resp_send(req, 200, "text/plain; version=0.0.4", text, len);
    free(text);
}

static void not_found(tr_req *req, void *ctx) {
    char msg[300];
    const char *target = tr_req_target(req);
    if (target != NULL && strcmp(tr_req_method(req), "POST") == 0) {
        /* What AWS answers for an X-Amz-Target it does not know: 400, not 404. */
        snprintf(msg, sizeof msg, "Unknown operation %.200s", target);
        tr_resp_error(req, 400, "UnknownOperationException", msg);
        return;
    }
    snprintf(msg, sizeof msg, "No route for %s %.200s", tr_req_method(req), tr_req_path(req));
    tr_resp_error(req, 404, "NotFoundException", msg);
}

static void upgrade_required(tr_req *req, void *ctx) {
    char msg[300];
    snprintf(msg, sizeof msg, "%.200s is a websocket: send Upgrade: websocket", tr_req_path(req));
    tr_resp_header(req, "upgrade", "websocket");
    tr_resp_error(req, 426, "UpgradeRequired", msg);
}

static void draining(tr_req *req, void *ctx) {
    tr_resp_header(req, "connection", "close");
    tr_resp_error(req, 503, "ServiceUnavailableException", "The server is shutting down");
}

const tr_handler tr_builtin_not_found = {.on_request = not_found};
const tr_handler tr_builtin_draining = {.on_request = draining};
const tr_handler tr_builtin_upgrade_required = {.on_request = upgrade_required};
static const tr_handler health_handler = {.on_request = health};
static const tr_handler metrics_handler = {.on_request = metrics};

int tr_builtin_register(tr_server *s) {
    int rc = tr_router_add(s->router, "GET", "/health", NULL, &health_handler, s);
    if (rc == TR_OK) rc = tr_router_add(s->router, "GET", "/metrics", NULL, &metrics_handler, s);
    return rc;
}

void tr_builtin_observe(const tr_req *req) {
    double secs = (double)(tr_now_ns() - req->start_ns) / 1e9;
    char op[TR_OP_MAX * 2 + 32], esc[TR_OP_MAX * 2];
    snprintf(op, sizeof op, "operation=\"%s\"", tr_metrics_escape(req->op, esc, sizeof esc));
    tr_metric_add(tr_metric_get(TR_METRIC_COUNTER, "tributary_requests_total",
                                "Requests answered, by operation.", op), 1);
    tr_metric_observe(tr_metric_get(TR_METRIC_HISTOGRAM, "tributary_request_duration_seconds",
                                    "Time from request headers to the last response byte.", op),
                      secs);
    int status = req->resp == RESP_NONE ? 0 : req->status; /* 0: the peer left first */
    if (status >= 400) {
        char type[TR_ERRTYPE_MAX + 16], label[TR_ERRTYPE_MAX * 2 + 16];
        if (req->err_type[0] != '\0') snprintf(type, sizeof type, "%s", req->err_type);
        else snprintf(type, sizeof type, "http_%d", status);
        snprintf(label, sizeof label, "type=\"%s\"", tr_metrics_escape(type, esc, sizeof esc));
        tr_metric_add(tr_metric_get(TR_METRIC_COUNTER, "tributary_errors_total",
                                    "Error answers, by error type.", label), 1);
    }
    tr_debug("msg=request id=%s proto=%s%s method=%s path=\"%s\" op=%s status=%d "
             "duration_ms=%.3f",
             req->id, req->h2 ? "h2" : "http/1.1", req->tls ? "+tls" : "", req->method,
             req->path, req->op, status, secs * 1000.0);
}

int tr_builtin_is_open(const tr_route *route) {
    return route != NULL &&
           (route->handler == &health_handler || route->handler == &metrics_handler);
}
