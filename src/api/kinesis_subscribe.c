/* SubscribeToShard: an event stream (application/vnd.amazon.eventstream) over HTTP/2 or
 * chunked HTTP/1.1 that pushes a shard's records to a registered consumer for up to five
 * minutes.
 *
 * A subscription is a feed (api/feed.h): the feed thread asks it for its next event when the
 * store commits, and at least every second; it sends what is new, an empty event every 5 s
 * when nothing is, and ends after 5 minutes or at the end of a closed shard. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/feed.h"
#include "api/kinesis_call.h"
#include "core/shard.h"
#include "data/consumers.h"
#include "util/error.h"
#include "util/log.h"
#include "wire/eventstream.h"

#define SUBSCRIPTION_MS (5 * 60 * 1000)  /* AWS ends a subscription after 5 minutes */
#define HEARTBEAT_MS 5000                /* an event, even empty, at least this often */
#define EVENT_MAX_BYTES (1024 * 1024)    /* payload bytes read for one event */
#define EVENT_MAX_RECORDS 10000

typedef struct kin_sub {
    tr_data_stream *s;          /* referenced */
    uint32_t shard_index;
    tr_wire_format fmt;
    tr_kms *kms;                /* opens sealed records */
    uint64_t next_seq;          /* the feed thread's, after the start */
    int64_t expires_ms;
    int64_t last_event_ms;
} kin_sub;

/* ---- messages ---- */

static const char *payload_type(tr_wire_format f) {
    return f == TR_WIRE_CBOR ? "application/x-amz-cbor-1.1" : "application/x-amz-json-1.1";
}

/* Encodes an event whose payload is w's output. Returns 0 or -1. */
static int encode_event(tr_wire_format f, const char *event_type, tr_writer *w, uint8_t **out,
                        size_t *out_len) {
    size_t len = 0;
    uint8_t *payload = tr_writer_take(w, &len);
    if (payload == NULL) return -1;
    tr_es_header h[] = {{":message-type", "event"},
                        {":event-type", event_type},
                        {":content-type", payload_type(f)}};
    int rc = tr_es_encode(h, 3, payload, len, out, out_len);
    free(payload);
    return rc;
}

static int encode_exception(const char *type, const char *message, uint8_t **out,
                            size_t *out_len) {
    tr_writer w;
    tr_writer_init(&w, TR_WIRE_JSON);
    tr_w_obj_begin(&w);
    tr_w_kstr(&w, "message", message);
    tr_w_obj_end(&w);
    size_t len = 0;
    uint8_t *payload = tr_writer_take(&w, &len);
    if (payload == NULL) return -1;
    tr_es_header h[] = {{":message-type", "exception"},
                        {":exception-type", type},
                        {":content-type", "application/json"}};
    int rc = tr_es_encode(h, 3, payload, len, out, out_len);
    free(payload);
    return rc;
}

/* One SubscribeToShardEvent from the shard's next records (possibly none). Sets *end when the
 * shard is closed and fully delivered. */
static int next_event(kin_sub *sub, uint8_t **out, size_t *out_len, int *end, int *more) {
    const tr_data_shard *sh = &sub->s->shards[sub->shard_index];
    tr_read_batch b;
    tr_read_batch_init(&b);
    int rc = tr_shard_read(sh->log, sub->next_seq, EVENT_MAX_RECORDS, EVENT_MAX_BYTES, &b);
    if (rc == TR_OK) rc = kin_open_records(sub->kms, sub->s, &b);
    if (rc != TR_OK) {
        tr_read_batch_free(&b);
        return rc;
    }
    if (b.count > 0) sub->next_seq = b.next_seq;
    tr_shard_info info;
    tr_shard_get_info(sh->log, &info);
    if (sub->next_seq < info.first_seq) sub->next_seq = info.first_seq;
    *more = info.last_seq >= sub->next_seq;
    *end = sh->closed && sub->next_seq > sh->ending_seq;
    tr_writer w;
    tr_writer_init(&w, sub->fmt);
    tr_w_obj_begin(&w);
    kin_w_records(&w, sub->s, sub->shard_index, &b);
    kin_w_seq(&w, "ContinuationSequenceNumber", sub->s, sub->shard_index, sub->next_seq - 1);
    tr_w_kint(&w, "MillisBehindLatest", kin_millis_behind(sh, &b));
    if (*end) kin_w_child_shards(&w, sub->s, sh);
    tr_w_obj_end(&w);
    tr_read_batch_free(&b);
    rc = encode_event(sub->fmt, "SubscribeToShardEvent", &w, out, out_len);
    tr_writer_free(&w);
    return rc == 0 ? TR_OK : TR_ENOMEM;
}

/* ---- the feed ---- */

static tr_feed_step sub_next(void *state, int64_t now, uint8_t **msg, size_t *len, int *end) {
    kin_sub *sub = state;
    if (now >= sub->expires_ms) {
        *end = 1;
        return TR_FEED_WAIT;
    }
    const tr_data_shard *sh = &sub->s->shards[sub->shard_index];
    tr_shard_info info;
    tr_shard_get_info(sh->log, &info);
    int has_new = info.last_seq >= sub->next_seq;
    int at_end = sh->closed && sub->next_seq > sh->ending_seq;
    if (!has_new && !at_end && now - sub->last_event_ms < HEARTBEAT_MS) return TR_FEED_WAIT;
    int more = 0;
    int rc = next_event(sub, msg, len, end, &more);
    if (rc != TR_OK) {
        char text[160];
        snprintf(text, sizeof text, "Internal service failure: %s", tr_kms_strerror(rc));
        *end = 1;
        if (encode_exception(kin_kms_error_type(rc), text, msg, len) != 0) *msg = NULL, *len = 0;
        return TR_FEED_SENT;
    }
    sub->last_event_ms = now;
    return more ? TR_FEED_MORE : TR_FEED_SENT;
}

static void sub_free(void *state) {
    kin_sub *sub = state;
    tr_data_put(sub->s);
    free(sub);
}

static const tr_feed_ops sub_ops = {.next = sub_next, .free_state = sub_free, .live = 1};

/* On the loop, once the worker has validated the call: start the event stream. */
static void start_on_loop(kin_call *c) {
    kin_sub *sub = c->op_state;
    c->op_state = NULL;
    c->op_state_free = NULL;
    uint8_t *msg = NULL;
    size_t len = 0;
    tr_writer w;
    tr_writer_init(&w, c->fmt);
    tr_w_obj_begin(&w);
    tr_w_obj_end(&w);
    int rc = encode_event(c->fmt, "initial-response", &w, &msg, &len);
    tr_writer_free(&w);
    if (rc != 0 || tr_resp_start(c->req, 200, "application/vnd.amazon.eventstream") != 0 ||
        tr_resp_write(c->req, msg, len) != 0) {
        free(msg);
        sub_free(sub);
        kin_release(c);
        return;
    }
    free(msg);
    if (tr_feed_start(c->k->feeds, c->req, &sub_ops, sub) != 0)
        tr_resp_end(c->req); /* the server is stopping (the feed freed sub) */
    kin_release(c);
}

void kin_subscribe(kin_call *c) {
    tr_data_consumer consumer;
    tr_data_stream *s = NULL;
    const char *arn = NULL;
    if (kin_str(c, "ConsumerARN", "consumerARN", 1, 1, 2048, &arn) != 0) return;
    if (kin_consumer(c, &consumer, &s) != 0) return;
    if (strcmp(consumer.status, "ACTIVE") != 0) {
        kin_fail(c, 400, "ResourceInUseException",
                 "Consumer %s under stream %s is not ACTIVE, instead in state %s.",
                 consumer.name, s->name, consumer.status);
        tr_data_put(s);
        return;
    }
    const tr_data_shard *sh = kin_shard(c, s, "ShardId", "shardId");
    json_t *pos = json_object_get(c->in, "StartingPosition");
    const char *type = NULL, *seq_text = NULL;
    int64_t ms = 0;
    int present = 0;
    uint64_t seq = 0;
    if (sh != NULL && (pos == NULL || !json_is_object(pos)))
        kin_invalid(c, NULL, "startingPosition", "Member must not be null");
    else if (sh != NULL && (type = json_string_value(json_object_get(pos, "Type"))) == NULL)
        kin_invalid(c, NULL, "startingPosition.type", "Member must not be null");
    if (c->failed) {
        tr_data_put(s);
        return;
    }
    seq_text = json_string_value(json_object_get(pos, "SequenceNumber"));
    if (kin_time(c, pos, "Timestamp", &ms, &present) != 0 ||
        kin_position(c, s, sh, type, "startingPosition.type", seq_text, present ? &ms : NULL,
                     &seq) != 0) {
        tr_data_put(s);
        return;
    }
    kin_sub *sub = calloc(1, sizeof *sub);
    if (sub == NULL) {
        kin_fail(c, 500, "InternalFailure", "out of memory");
        tr_data_put(s);
        return;
    }
    sub->s = s;
    sub->shard_index = (uint32_t)sh->index;
    sub->fmt = c->fmt;
    sub->kms = c->k->cfg.kms;
    sub->next_seq = seq;
    sub->expires_ms = kin_now_ms() + SUBSCRIPTION_MS;
    sub->last_event_ms = 0; /* the first event goes out at once */
    c->op_state = sub;
    c->op_state_free = sub_free;
    c->answer = start_on_loop;
}
