/* PutMedia over a websocket, for browsers and small devices:
 *
 *   GET /putMedia?StreamName=cam1&FragmentTimecodeType=RELATIVE&ProducerStartTimestamp=...
 *   Upgrade: websocket
 *
 * The parameters are query parameters (StreamName or StreamARN, FragmentTimecodeType,
 * ProducerStartTimestamp), since a browser cannot set headers on a websocket; the
 * x-amzn-* headers of the HTTP PutMedia are read too when a parameter is absent. Binary
 * messages carry the MKV byte stream (their boundaries mean nothing: pieces are fed as they
 * arrive); each ack of the session (api/kvs_ingest.h) goes out as one text message, the JSON
 * without its newline. The end of the upload:
 *
 *   - an empty binary message: the end of the body, like the last chunk of a chunked
 *     upload: the last cluster is stored, its acks are sent, then the server closes (1000);
 *   - the client's close frame: also the end of the body (the last complete cluster is
 *     stored), but libwebsockets answers a close at once, so no ack follows it;
 *   - the connection dropping: a cluster cut short is not stored.
 *
 * The server closes with 1000 when the acks end: after the end of the body and the last
 * PERSISTED, after an ERROR, after 30 s without data, or when the server stops. Text messages
 * are refused with 1003. A refusal before the session starts (an unknown stream, bad
 * parameters) is the HTTP answer to the upgrade, as for the HTTP PutMedia. */
#include <stdlib.h>
#include <string.h>

#include "api/kvs_call.h"
#include "api/kvs_ingest.h"
#include "net/ws.h"
#include "util/error.h"

typedef struct ws_put {
    kvs_ingest *in;
    uint64_t msg_bytes;          /* bytes of the current message so far */
} ws_put;

static void ws_begin(void *ctx) { (void)ctx; } /* the 101 began the answer */

static void ws_ack(void *ctx, const char *line, size_t len) {
    if (len > 0 && line[len - 1] == '\n') len--;
    tr_ws_send(ctx, line, len, 0);
}

static void ws_end(void *ctx) { tr_ws_close(ctx, TR_WS_NORMAL, ""); }

static void ws_pause(void *ctx, int pause) { tr_ws_pause(ctx, pause); }

static const kvs_ingest_sink ws_sink = {.begin = ws_begin, .ack = ws_ack, .end = ws_end,
                                        .pause = ws_pause};

/* A query parameter, else the header the HTTP PutMedia takes. */
static const char *param(tr_ws *ws, const char *name, const char *header) {
    const char *v = tr_ws_param(ws, name);
    return v != NULL ? v : tr_ws_header(ws, header);
}

static int on_open(tr_ws *ws, void *ctx) {
    tr_kvs_media *k = ctx;
    tr_req *req = tr_ws_request(ws);
    tr_req_set_operation(req, "PutMedia");
    kvs_ingest_params p = {
        .stream_name = param(ws, "StreamName", "x-amzn-stream-name"),
        .stream_arn = param(ws, "StreamARN", "x-amzn-stream-arn"),
        .timecode_type = param(ws, "FragmentTimecodeType", "x-amzn-fragment-timecode-type"),
        .start_timestamp =
            param(ws, "ProducerStartTimestamp", "x-amzn-producer-start-timestamp"),
    };
    char denied[1024];
    if (kvs_authorize(req, k->video, "kinesisvideo:PutMedia", p.stream_name, p.stream_arn,
                      denied, sizeof denied) != 0) {
        kvs_send_error(req, "NotAuthorizedException", denied);
        return 0;
    }
    ws_put *put = calloc(1, sizeof *put);
    if (put == NULL) {
        kvs_send_error(req, "InternalFailure", "out of memory");
        return 0;
    }
    const char *err_type;
    char err[512];
    put->in = kvs_ingest_new(k, &p, &ws_sink, ws, &err_type, err, sizeof err);
    if (put->in == NULL) {
        free(put);
        kvs_send_error(req, err_type, err);
        return 0;
    }
    tr_ws_ref(ws); /* the sink's: dropped in on_close */
    tr_ws_set_user(ws, put);
    return 0;
}

static void on_message(tr_ws *ws, const uint8_t *data, size_t len, int binary, int final,
                       void *ctx) {
    ws_put *put = tr_ws_user(ws);
    if (put == NULL) return;
    if (!binary) {
        tr_ws_close(ws, TR_WS_UNSUPPORTED_DATA, "PutMedia takes the MKV stream in binary messages");
        return;
    }
    int empty_message = final && put->msg_bytes == 0 && len == 0;
    put->msg_bytes = final ? 0 : put->msg_bytes + len;
    if (empty_message) kvs_ingest_finish(put->in);
    else if (len > 0) kvs_ingest_feed(put->in, data, len);
}

static void on_peer_close(tr_ws *ws, int status, const char *reason, size_t len, void *ctx) {
    ws_put *put = tr_ws_user(ws);
    if (put != NULL) kvs_ingest_finish(put->in);
}

static void on_close(tr_ws *ws, void *ctx) {
    ws_put *put = tr_ws_user(ws);
    if (put == NULL) return;
    tr_ws_set_user(ws, NULL);
    kvs_ingest_close(put->in);
    free(put);
    tr_ws_unref(ws);
}

static const tr_ws_handler putmedia_ws = {
    .on_open = on_open, .on_message = on_message, .on_peer_close = on_peer_close,
    .on_close = on_close};

int kvs_putmedia_ws_register(tr_kvs_media *k) {
    return tr_router_add_ws(tr_server_router(k->srv), "/putMedia", &putmedia_ws, k);
}
