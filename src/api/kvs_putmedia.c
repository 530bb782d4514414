/* PutMedia over HTTP: a producer streams one MKV segment in a chunked (HTTP/1.1) or
 * HTTP/2 request body of unbounded length, and the server streams the session's
 * newline-separated JSON acks back on the same request while the upload goes on (full
 * duplex). The session itself is api/kvs_ingest.h; the websocket transport of the same session
 * is kvs_putmedia_ws.c. */
#include <stdio.h>
#include <string.h>

#include "api/kvs_call.h"
#include "api/kvs_ingest.h"
#include "util/error.h"

static void http_begin(void *ctx) { tr_resp_start(ctx, 200, "application/json"); }
static void http_ack(void *ctx, const char *line, size_t len) { tr_resp_write(ctx, line, len); }
static void http_end(void *ctx) { tr_resp_end(ctx); }
static void http_pause(void *ctx, int pause) { tr_req_pause_body(ctx, pause); }

static const kvs_ingest_sink http_sink = {.begin = http_begin, .ack = http_ack, .end = http_end,
                                          .pause = http_pause};

static int on_headers(tr_req *req, void *ctx) {
    tr_kvs_media *k = ctx;
    tr_req_set_operation(req, "PutMedia");
    kvs_ingest_params p = {
        .stream_name = tr_req_header(req, "x-amzn-stream-name"),
        .stream_arn = tr_req_header(req, "x-amzn-stream-arn"),
        .timecode_type = tr_req_header(req, "x-amzn-fragment-timecode-type"),
        .start_timestamp = tr_req_header(req, "x-amzn-producer-start-timestamp"),
    };
    /* The answer must exist before the session may ack into it. */
    tr_req_stream_body(req);
    const char *err_type;
    char err[1024];
    if (kvs_authorize(req, k->video, "kinesisvideo:PutMedia", p.stream_name, p.stream_arn, err,
                      sizeof err) != 0) {
        kvs_send_error(req, "NotAuthorizedException", err);
        return 0;
    }
    kvs_ingest *in = kvs_ingest_new(k, &p, &http_sink, req, &err_type, err, sizeof err);
    if (in == NULL) {
        kvs_send_error(req, err_type, err);
        return 0;
    }
    tr_req_ref(req); /* the sink's: dropped in on_close */
    tr_req_set_user(req, in);
    return 0;
}

static int on_body(tr_req *req, const uint8_t *data, size_t len, void *ctx) {
    kvs_ingest *in = tr_req_user(req);
    if (in != NULL) kvs_ingest_feed(in, data, len);
    return 0;
}

static void on_request(tr_req *req, void *ctx) {
    kvs_ingest *in = tr_req_user(req);
    if (in != NULL) kvs_ingest_finish(in);
}

static void on_close(tr_req *req, void *ctx) {
    kvs_ingest *in = tr_req_user(req);
    if (in == NULL) return;
    tr_req_set_user(req, NULL);
    kvs_ingest_close(in);
    tr_req_unref(req);
}

static void tick(void *ctx, int64_t now) { kvs_ingest_tick(ctx, now); }

static const tr_handler putmedia_handler = {
    .on_headers = on_headers, .on_body = on_body, .on_request = on_request,
    .on_close = on_close};

int kvs_putmedia_register(tr_kvs_media *k) {
    int rc = tr_router_add(tr_server_router(k->srv), "POST", "/putMedia", NULL,
                           &putmedia_handler, k);
    if (rc == TR_OK) rc = kvs_putmedia_ws_register(k);
    if (rc == TR_OK) rc = tr_server_on_tick(k->srv, tick, k);
    return rc;
}
