/* SubscribeToShard: an event stream (application/vnd.amazon.eventstream) over HTTP/2 or
 * chunked HTTP/1.1 that pushes a shard's records to a registered consumer for up to five
 * minutes.
 *
 * One thread feeds every subscription: it wakes when the store commits (the commit
 * notifier) or every second, reads what is new for each subscription, encodes an event and
 * posts it to the loop, which writes it. The loop owns the requests; the thread never touches
 * one. A subscription is freed on the loop, when its last reference goes: the loop's own
 * (dropped when the request closes), the thread's (dropped through a posted task), and one per
 * event in flight. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/kinesis_call.h"
#include "core/shard.h"
#include "data/consumers.h"
#include "util/error.h"
#include "util/log.h"
#include "util/notify.h"
#include "wire/eventstream.h"

#define SUBSCRIPTION_MS (5 * 60 * 1000)  /* AWS ends a subscription after 5 minutes */
#define HEARTBEAT_MS 5000                /* an event, even empty, at least this often */
#define EVENT_MAX_BYTES (1024 * 1024)    /* payload bytes read for one event */
#define EVENT_MAX_RECORDS 10000
#define MAX_EVENTS_IN_FLIGHT 2           /* posted to the loop and not yet written */
#define CONGESTED_BYTES (4 * 1024 * 1024) /* queued on the socket: wait for on_drain */

typedef struct kin_sub kin_sub;

struct kin_sub {
    atomic_int refs;
    tr_kinesis *k;
    tr_req *req;                /* loop only; referenced until the subscription is freed */
    tr_data_stream *s;          /* referenced */
    uint32_t shard_index;
    tr_wire_format fmt;
    uint64_t next_seq;          /* thread only, after the start */
    int64_t expires_ms;
    int64_t last_event_ms;
    atomic_int closed;          /* the request went away */
    atomic_int in_flight;       /* events posted, not yet written */
    atomic_int congested;       /* the socket queue is long: wait for on_drain */
    int ended;                  /* thread: the final message is posted */
    kin_sub *next;              /* the thread's list */
    tr_task release_task;       /* the thread's reference, dropped on the loop */
};

typedef struct kin_subscriptions {
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    kin_sub *incoming;          /* started on the loop, not yet taken by the thread */
    int stop;
    tr_notify *wake;            /* store commits, new subscriptions, drains, stop */
} kin_subscriptions;

/* One encoded message on its way to the loop. */
typedef struct sub_write {
    tr_task task;
    kin_sub *sub;
    uint8_t *bytes;
    size_t len;
    int end;                    /* end the response after it */
} sub_write;

/* ---- references (every drop happens on the loop) ---- */

static void sub_unref(kin_sub *sub) {
    if (atomic_fetch_sub(&sub->refs, 1) != 1) return;
    tr_req_set_user(sub->req, NULL);
    tr_req_unref(sub->req);
    tr_data_put(sub->s);
    free(sub);
}

static void release_on_loop(tr_task *t) {
    sub_unref((kin_sub *)((char *)t - offsetof(kin_sub, release_task)));
}

static void write_on_loop(tr_task *t) {
    sub_write *m = (sub_write *)t;
    kin_sub *sub = m->sub;
    if (!atomic_load(&sub->closed) && tr_req_alive(sub->req)) {
        if (m->len > 0) tr_resp_write(sub->req, m->bytes, m->len);
        if (m->end) tr_resp_end(sub->req);
        if (tr_resp_pending(sub->req) > CONGESTED_BYTES) atomic_store(&sub->congested, 1);
    }
    atomic_fetch_sub(&sub->in_flight, 1);
    free(m->bytes);
    free(m);
    if (sub->k->subs != NULL) tr_notify_bump(sub->k->subs->wake);
    sub_unref(sub);
}

/* From the thread: hands a message to the loop. Takes ownership of bytes. */
static void post_message(kin_sub *sub, uint8_t *bytes, size_t len, int end) {
    sub_write *m = calloc(1, sizeof *m);
    if (m == NULL) {
        free(bytes);
        return;
    }
    m->task.fn = write_on_loop;
    m->sub = sub;
    m->bytes = bytes;
    m->len = len;
    m->end = end;
    atomic_fetch_add(&sub->refs, 1);
    atomic_fetch_add(&sub->in_flight, 1);
    tr_server_post(sub->k->srv, &m->task);
}

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

/* ---- the thread ---- */

/* Serves one subscription. Returns 1 when it is done (drop it), and sets *busy when more
 * records are waiting. */
static int serve(kin_sub *sub, int64_t now, int *busy) {
    if (atomic_load(&sub->closed) || sub->ended) return 1;
    if (atomic_load(&sub->in_flight) >= MAX_EVENTS_IN_FLIGHT || atomic_load(&sub->congested))
        return 0;
    uint8_t *msg = NULL;
    size_t len = 0;
    if (now >= sub->expires_ms) {
        sub->ended = 1;
        post_message(sub, NULL, 0, 1);
        return 1;
    }
    const tr_data_shard *sh = &sub->s->shards[sub->shard_index];
    tr_shard_info info;
    tr_shard_get_info(sh->log, &info);
    int has_new = info.last_seq >= sub->next_seq;
    int at_end = sh->closed && sub->next_seq > sh->ending_seq;
    if (!has_new && !at_end && now - sub->last_event_ms < HEARTBEAT_MS) return 0;
    int end = 0, more = 0;
    int rc = next_event(sub, &msg, &len, &end, &more);
    if (rc != TR_OK) {
        char text[160];
        snprintf(text, sizeof text, "Internal service failure: %s", tr_strerror(rc));
        sub->ended = 1;
        if (encode_exception("InternalFailure", text, &msg, &len) == 0)
            post_message(sub, msg, len, 1);
        else
            post_message(sub, NULL, 0, 1);
        return 1;
    }
    sub->last_event_ms = now;
    post_message(sub, msg, len, end);
    if (end) sub->ended = 1;
    if (more) *busy = 1;
    return end;
}

static void *feed_main(void *arg) {
    tr_kinesis *k = arg;
    kin_subscriptions *ss = k->subs;
    kin_sub *list = NULL;
    for (;;) {
        uint64_t gen = tr_notify_gen(ss->wake);
        pthread_mutex_lock(&ss->mu);
        while (ss->incoming != NULL) {
            kin_sub *x = ss->incoming;
            ss->incoming = x->next;
            x->next = list;
            list = x;
        }
        int stop = ss->stop;
        pthread_mutex_unlock(&ss->mu);
        int busy = 0;
        int64_t now = kin_now_ms();
        for (kin_sub **pp = &list; *pp != NULL;) {
            kin_sub *x = *pp;
            if (stop || serve(x, now, &busy)) {
                if (stop && !x->ended) post_message(x, NULL, 0, 1);
                *pp = x->next;
                tr_server_post(k->srv, &x->release_task);
            } else {
                pp = &x->next;
            }
        }
        if (stop) break;
        if (!busy) tr_notify_wait(ss->wake, gen, 1000);
    }
    return NULL;
}

int kin_subscribe_start(tr_kinesis *k) {
    kin_subscriptions *ss = calloc(1, sizeof *ss);
    if (ss == NULL) return TR_ENOMEM;
    pthread_mutex_init(&ss->mu, NULL);
    ss->wake = k->cfg.commits != NULL ? k->cfg.commits : tr_notify_new();
    if (ss->wake == NULL) {
        free(ss);
        return TR_ENOMEM;
    }
    k->subs = ss;
    if (pthread_create(&ss->thread, NULL, feed_main, k) != 0) {
        if (k->cfg.commits == NULL) tr_notify_free(ss->wake);
        free(ss);
        k->subs = NULL;
        return TR_EIO;
    }
    ss->started = 1;
    return TR_OK;
}

void kin_subscribe_stop(tr_kinesis *k) {
    kin_subscriptions *ss = k->subs;
    if (ss == NULL) return;
    pthread_mutex_lock(&ss->mu);
    ss->stop = 1;
    pthread_mutex_unlock(&ss->mu);
    tr_notify_bump(ss->wake);
    if (ss->started) pthread_join(ss->thread, NULL);
    if (k->cfg.commits == NULL) tr_notify_free(ss->wake);
    pthread_mutex_destroy(&ss->mu);
    free(ss);
    k->subs = NULL;
}

/* ---- the request ---- */

void kin_subscribe_on_close(tr_req *req) {
    kin_sub *sub = tr_req_user(req);
    if (sub == NULL) return;
    atomic_store(&sub->closed, 1);
    if (sub->k->subs != NULL) tr_notify_bump(sub->k->subs->wake);
    tr_req_set_user(req, NULL);
    sub_unref(sub); /* the loop's reference */
}

void kin_subscribe_on_drain(tr_req *req) {
    kin_sub *sub = tr_req_user(req);
    if (sub == NULL) return;
    atomic_store(&sub->congested, 0);
    if (sub->k->subs != NULL) tr_notify_bump(sub->k->subs->wake);
}

/* On the loop, once the worker has validated the call: start the event stream. */
static void start_on_loop(kin_call *c) {
    kin_sub *sub = c->op_state;
    c->op_state = NULL;
    c->op_state_free = NULL;
    kin_subscriptions *ss = c->k->subs;
    uint8_t *msg = NULL;
    size_t len = 0;
    tr_writer w;
    tr_writer_init(&w, c->fmt);
    tr_w_obj_begin(&w);
    tr_w_obj_end(&w);
    int rc = encode_event(c->fmt, "initial-response", &w, &msg, &len);
    tr_writer_free(&w);
    if (ss == NULL || rc != 0 ||
        tr_resp_start(c->req, 200, "application/vnd.amazon.eventstream") != 0 ||
        tr_resp_write(c->req, msg, len) != 0) {
        free(msg);
        tr_data_put(sub->s);
        free(sub);
        kin_release(c);
        return;
    }
    free(msg);
    sub->req = c->req;
    tr_req_ref(c->req);
    tr_req_set_user(c->req, sub);
    sub->release_task.fn = release_on_loop;
    atomic_init(&sub->refs, 2); /* the loop's and the thread's */
    pthread_mutex_lock(&ss->mu);
    sub->next = ss->incoming;
    ss->incoming = sub;
    pthread_mutex_unlock(&ss->mu);
    tr_notify_bump(ss->wake);
    kin_release(c);
}

static void sub_free_unstarted(void *arg) {
    kin_sub *sub = arg;
    tr_data_put(sub->s);
    free(sub);
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
    sub->k = c->k;
    sub->s = s;
    sub->shard_index = (uint32_t)sh->index;
    sub->fmt = c->fmt;
    sub->next_seq = seq;
    sub->expires_ms = kin_now_ms() + SUBSCRIPTION_MS;
    sub->last_event_ms = 0; /* the first event goes out at once */
    c->op_state = sub;
    c->op_state_free = sub_free_unstarted;
    c->answer = start_on_loop;
}
