/* The route table: HTTP routes by method, path and X-Amz-Target prefix, and the websocket
 * routes, a table of their own matched by path alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "net/router.h"
#include "util/error.h"

static void on_request(tr_req *req, void *ctx) {
    (void)req;
    (void)ctx;
}

static int on_open(tr_ws *ws, void *ctx) {
    (void)ws;
    (void)ctx;
    return 0;
}

static void on_message(tr_ws *ws, const uint8_t *data, size_t len, int binary, int final,
                       void *ctx) {
    (void)ws, (void)data, (void)len, (void)binary, (void)final, (void)ctx;
}

static const tr_handler http_a = {.on_request = on_request};
static const tr_handler http_b = {.on_request = on_request};
static const tr_handler no_request = {.on_close = NULL};
static const tr_ws_handler ws_a = {.on_open = on_open, .on_message = on_message};
static const tr_ws_handler ws_b = {.on_open = on_open, .on_message = on_message};
static const tr_ws_handler ws_no_message = {.on_open = on_open};

static void http_matching(void **state) {
    (void)state;
    tr_router *r = tr_router_new();
    assert_non_null(r);
    int ctx = 0;
    assert_int_equal(tr_router_add(r, "POST", "/", "Kinesis_20131202.", &http_a, &ctx), TR_OK);
    assert_int_equal(tr_router_add(r, NULL, "/hls*", NULL, &http_b, NULL), TR_OK);
    assert_int_equal(tr_router_add(r, "GET", "/hls/x", NULL, &http_a, NULL), TR_OK);
    const tr_route *rt = tr_router_match(r, "POST", "/", "Kinesis_20131202.PutRecord");
    assert_non_null(rt);
    assert_ptr_equal(rt->handler, &http_a);
    assert_ptr_equal(rt->ctx, &ctx);
    assert_null(rt->ws);
    assert_null(tr_router_match(r, "POST", "/", NULL)); /* a target route needs the header */
    assert_ptr_equal(tr_router_match(r, "GET", "/hls/x", NULL)->handler, &http_a); /* exact */
    assert_ptr_equal(tr_router_match(r, "PUT", "/hls/x", NULL)->handler, &http_b); /* prefix */
    assert_null(tr_router_match(r, "GET", "/other", NULL));
    assert_int_equal(tr_router_add(r, "GET", "nope", NULL, &http_a, NULL), TR_EINVAL);
    assert_int_equal(tr_router_add(r, "GET", "/x", NULL, &no_request, NULL), TR_EINVAL);
    tr_router_free(r);
}

static void websocket_routes_are_apart(void **state) {
    (void)state;
    tr_router *r = tr_router_new();
    assert_non_null(r);
    int ctx = 0;
    assert_int_equal(tr_router_add(r, "POST", "/putMedia", NULL, &http_a, NULL), TR_OK);
    assert_int_equal(tr_router_add_ws(r, "/putMedia", &ws_a, &ctx), TR_OK);
    assert_int_equal(tr_router_add_ws(r, "/live*", &ws_b, NULL), TR_OK);

    /* The HTTP lookup never sees a websocket route, whatever the method. */
    assert_ptr_equal(tr_router_match(r, "POST", "/putMedia", NULL)->handler, &http_a);
    assert_null(tr_router_match(r, "GET", "/putMedia", NULL));
    assert_null(tr_router_match(r, "GET", "/live/cam1", NULL));

    /* The websocket lookup sees only websocket routes, by path. */
    const tr_route *rt = tr_router_match_ws(r, "/putMedia");
    assert_non_null(rt);
    assert_ptr_equal(rt->ws, &ws_a);
    assert_null(rt->handler);
    assert_ptr_equal(rt->ctx, &ctx);
    assert_ptr_equal(tr_router_match_ws(r, "/live/cam1")->ws, &ws_b);
    assert_null(tr_router_match_ws(r, "/putMediaX"));
    assert_null(tr_router_match_ws(r, "/"));

    assert_int_equal(tr_router_add_ws(r, "putMedia", &ws_a, NULL), TR_EINVAL);
    assert_int_equal(tr_router_add_ws(r, "/x", NULL, NULL), TR_EINVAL);
    assert_int_equal(tr_router_add_ws(r, "/x", &ws_no_message, NULL), TR_EINVAL);
    tr_router_free(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(http_matching),
        cmocka_unit_test(websocket_routes_are_apart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
