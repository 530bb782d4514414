#include "net/router.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

struct tr_router {
    tr_route *routes;
    size_t n, cap;
};

tr_router *tr_router_new(void) { return calloc(1, sizeof(tr_router)); }

static void route_clear(tr_route *rt) {
    free((char *)rt->method);
    free((char *)rt->path);
    free((char *)rt->target_prefix);
}

void tr_router_free(tr_router *r) {
    if (r == NULL) return;
    for (size_t i = 0; i < r->n; i++) route_clear(&r->routes[i]);
    free(r->routes);
    free(r);
}

/* strdup that keeps NULL as NULL; *failed set on allocation failure. */
static char *dup_opt(const char *s, int *failed) {
    if (s == NULL) return NULL;
    char *d = strdup(s);
    if (d == NULL) *failed = 1;
    return d;
}

static int add_route(tr_router *r, const char *method, const char *path,
                     const char *target_prefix, const tr_handler *handler,
                     const tr_ws_handler *ws, void *ctx) {
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        tr_route *grown = realloc(r->routes, cap * sizeof *grown);
        if (grown == NULL) return TR_ENOMEM;
        r->routes = grown;
        r->cap = cap;
    }
    int failed = 0;
    tr_route rt = {.method = dup_opt(method, &failed), .path = dup_opt(path, &failed),
                   .target_prefix = dup_opt(target_prefix, &failed), .handler = handler,
                   .ws = ws, .ctx = ctx};
    if (failed) {
        route_clear(&rt);
        return TR_ENOMEM;
    }
    r->routes[r->n++] = rt;
    return TR_OK;
}

int tr_router_add(tr_router *r, const char *method, const char *path, const char *target_prefix,
                  const tr_handler *handler, void *ctx) {
    if (path == NULL || path[0] != '/' || handler == NULL || handler->on_request == NULL)
        return TR_EINVAL;
    return add_route(r, method, path, target_prefix, handler, NULL, ctx);
}

int tr_router_add_ws(tr_router *r, const char *path, const tr_ws_handler *handler, void *ctx) {
    if (path == NULL || path[0] != '/' || handler == NULL || handler->on_open == NULL ||
        handler->on_message == NULL)
        return TR_EINVAL;
    return add_route(r, "GET", path, NULL, NULL, handler, ctx);
}

/* Returns a specificity score, or -1 when the route does not match. */
static int64_t route_score(const tr_route *rt, const char *method, const char *path,
                        const char *target) {
    if (rt->method != NULL && strcmp(rt->method, method) != 0) return -1;
    int64_t score = 0;
    if (rt->target_prefix != NULL) {
        if (target == NULL || strncmp(target, rt->target_prefix, strlen(rt->target_prefix)) != 0)
            return -1;
        score += INT64_C(1) << 40;
    }
    size_t plen = strlen(rt->path);
    if (plen > 0 && rt->path[plen - 1] == '*') {
        if (strncmp(path, rt->path, plen - 1) != 0) return -1;
        score += (int64_t)plen;
    } else {
        if (strcmp(path, rt->path) != 0) return -1;
        score += INT64_C(1) << 30;
    }
    if (rt->method != NULL) score += 1;
    return score;
}

/* The best route of one kind: websocket routes (ws = 1) or HTTP ones. */
static const tr_route *best_match(const tr_router *r, int ws, const char *method,
                                  const char *path, const char *target) {
    const tr_route *best = NULL;
    int64_t best_score = -1;
    for (size_t i = 0; i < r->n; i++) {
        if ((r->routes[i].ws != NULL) != ws) continue;
        int64_t s = route_score(&r->routes[i], method, path, target);
        if (s > best_score) {
            best_score = s;
            best = &r->routes[i];
        }
    }
    return best;
}

const tr_route *tr_router_match(const tr_router *r, const char *method, const char *path,
                                const char *target) {
    return best_match(r, 0, method, path, target);
}

const tr_route *tr_router_match_ws(const tr_router *r, const char *path) {
    return best_match(r, 1, "GET", path, NULL);
}
