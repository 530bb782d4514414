/* The Kinesis Data Streams API: routing by X-Amz-Target, request decoding (JSON 1.1 or
 * CBOR, answered in kind), input validation with AWS's messages, and the hand-off of each
 * call to a worker (or, for puts, to the store's asynchronous append) and back. */
#include "api/kinesis.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/aws_json.h"
#include "api/feed.h"
#include "api/kinesis_call.h"
#include "api/kinesis_limits.h"
#include "data/seqnum.h"
#include "util/error.h"
#include "util/log.h"

#define TARGET_PREFIX "Kinesis_20131202."

static const kin_op ops[] = {
    {"AddTagsToStream", kin_add_tags},
    {"CreateStream", kin_create_stream},
    {"DecreaseStreamRetentionPeriod", kin_decrease_retention},
    {"DeleteStream", kin_delete_stream},
    {"DeregisterStreamConsumer", kin_deregister_consumer},
    {"DescribeLimits", kin_describe_limits},
    {"DescribeStream", kin_describe_stream},
    {"DescribeStreamConsumer", kin_describe_consumer},
    {"DescribeStreamSummary", kin_describe_stream_summary},
    {"DisableEnhancedMonitoring", kin_disable_monitoring},
    {"EnableEnhancedMonitoring", kin_enable_monitoring},
    {"GetRecords", kin_get_records},
    {"GetShardIterator", kin_get_shard_iterator},
    {"IncreaseStreamRetentionPeriod", kin_increase_retention},
    {"ListShards", kin_list_shards},
    {"ListStreamConsumers", kin_list_consumers},
    {"ListStreams", kin_list_streams},
    {"ListTagsForResource", kin_list_tags_for_resource},
    {"ListTagsForStream", kin_list_tags},
    {"MergeShards", kin_merge_shards},
    {"PutRecord", kin_put_record},
    {"PutRecords", kin_put_records},
    {"RegisterStreamConsumer", kin_register_consumer},
    {"RemoveTagsFromStream", kin_remove_tags},
    {"SplitShard", kin_split_shard},
    {"StartStreamEncryption", kin_start_encryption},
    {"StopStreamEncryption", kin_stop_encryption},
    {"SubscribeToShard", kin_subscribe},
    {"TagResource", kin_tag_resource},
    {"UntagResource", kin_untag_resource},
    {"UpdateMaxRecordSize", kin_update_max_record_size},
    {"UpdateShardCount", kin_update_shard_count},
    {"UpdateStreamMode", kin_update_stream_mode},
};

static const kin_op *find_op(const char *name) {
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (strcmp(ops[i].name, name) == 0) return &ops[i];
    return NULL;
}

int64_t kin_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- errors ---- */

int kin_fail(kin_call *c, int status, const char *type, const char *fmt, ...) {
    if (c->failed) return -1;
    c->failed = 1;
    c->status = status;
    c->err_type = type;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err_msg, sizeof c->err_msg, fmt, ap);
    va_end(ap);
    return -1;
}

int kin_fail_data(kin_call *c, const tr_data_err *e) {
    int status = strcmp(e->type, "InternalFailure") == 0 ? 500 : 400;
    return kin_fail(c, status, e->type, "%s", e->message);
}

int kin_invalidn(kin_call *c, const char *value, size_t len, const char *member,
                 const char *constraint) {
    if (value == NULL)
        return kin_fail(c, 400, "ValidationException",
                        "1 validation error detected: Value null at '%s' failed to satisfy "
                        "constraint: %s",
                        member, constraint);
    return kin_fail(c, 400, "ValidationException",
                    "1 validation error detected: Value '%.*s' at '%s' failed to satisfy "
                    "constraint: %s",
                    (int)strnlen(value, len < 300 ? len : 300), value, member, constraint);
}

int kin_invalid(kin_call *c, const char *value, const char *member, const char *constraint) {
    return kin_invalidn(c, value, value ? strlen(value) : 0, member, constraint);
}


void kin_release(kin_call *c) {
    if (c->op_state_free != NULL) c->op_state_free(c->op_state);
    if (c->scanned) tr_put_body_free(&c->put_body);
    json_decref(c->in);
    tr_writer_free(&c->out);
    tr_req_unref(c->req);
    free(c);
}

void kin_finish(kin_call *c) {
    if (c->failed) {
        tr_aws_send_error(c->req, c->fmt, c->status, c->err_type, c->err_msg);
    } else {
        size_t len = 0;
        uint8_t *body = tr_writer_take(&c->out, &len);
        if (body == NULL)
            tr_aws_send_error(c->req, c->fmt, 500, "InternalFailure", "out of memory");
        else
            tr_resp_send(c->req, 200, tr_aws_content_type(c->fmt), body, len);
        free(body);
    }
    kin_release(c);
}

/* ---- dispatch ---- */

/* A PutRecords body in JSON, read without a tree when it has the usual shape: c->in gets
 * only the stream members. 0 when read, -1 when it must be parsed whole. */
static int scan_put_records(kin_call *c) {
    if (tr_put_scan_json(c->body, c->body_len, KIN_MAX_PUT_RECORDS, &c->put_body) != 1)
        return -1;
    const tr_put_body *b = &c->put_body;
    json_t *in = json_object();
    int bad = in == NULL;
    if (!bad && b->stream_name != NULL)
        bad = json_object_set_new(in, "StreamName",
                                  json_stringn(b->stream_name, b->stream_name_len)) != 0;
    if (!bad && b->stream_arn != NULL)
        bad = json_object_set_new(in, "StreamARN",
                                  json_stringn(b->stream_arn, b->stream_arn_len)) != 0;
    if (bad) {
        json_decref(in);
        tr_put_body_free(&c->put_body);
        return -1;
    }
    c->in = in;
    c->scanned = 1;
    return 0;
}

/* ---- authorization (docs/security.md) ---- */

int kin_authorize(kin_call *c, const char *resource) {
    char action[96], msg[900];
    snprintf(action, sizeof action, "kinesis:%s", c->op->name);
    if (tr_req_authorize(c->req, action, resource, msg, sizeof msg)) return 0;
    return kin_fail(c, 400, "AccessDeniedException", "%s", msg);
}

/* The resource a call acts on, from its input: the stream (by ARN, or the ARN its name has
 * or would have), the consumer or tagged resource, else "*" (ListStreams, DescribeLimits).
 * GetRecords names its stream only inside the iterator: kin_get_records asks itself. */
static int authorize_input(kin_call *c) {
    if (c->op->fn == kin_get_records) return 0;
    const char *arn = json_string_value(json_object_get(c->in, "StreamARN"));
    const char *name = json_string_value(json_object_get(c->in, "StreamName"));
    if (arn == NULL) arn = json_string_value(json_object_get(c->in, "ConsumerARN"));
    if (arn == NULL) arn = json_string_value(json_object_get(c->in, "ResourceARN"));
    char built[400];
    if (arn == NULL && name != NULL) {
        const tr_data_config *cfg = tr_data_cfg(c->k->data);
        snprintf(built, sizeof built, "arn:aws:kinesis:%s:%s:stream/%.256s", cfg->region,
                 cfg->account, name);
        arn = built;
    }
    return kin_authorize(c, arn != NULL ? arn : "*");
}

/* The body is parsed here, off the loop: for PutRecords it is most of the work. */
static void run_on_worker(tr_work *w) {
    kin_call *c = (kin_call *)w;
    char err[256];
    if (c->op->fn != kin_put_records || c->fmt != TR_WIRE_JSON || scan_put_records(c) != 0)
        c->in = tr_wire_parse(c->fmt, c->body, c->body_len, err, sizeof err);
    if (c->in == NULL || !json_is_object(c->in)) {
        kin_fail(c, 400, "SerializationException", "%s",
                 c->in == NULL ? err : "The request body is not an object");
        return;
    }
    if (authorize_input(c) != 0) return;
    c->op->fn(c);
}

static void done_on_loop(tr_task *t) {
    kin_call *c = (kin_call *)((char *)t - offsetof(tr_work, done));
    if (c->answer != NULL && !c->failed)
        c->answer(c);
    else
        kin_finish(c);
}

/* A tailing reader's GetRecords mostly finds nothing new, and then the worker's round trip
 * (two thread wake-ups) cost more than the call: it runs here, on the loop, reading nothing
 * (kin_get_records checks whether the shard has records for it; if so the call goes to the
 * worker unchanged). Only small bodies: an iterator is at most 512 characters. 1 when
 * answered. */
#define LOOP_BODY_MAX 4096
static int get_records_on_loop(kin_call *c) {
    if (c->op->fn != kin_get_records || c->body_len > LOOP_BODY_MAX) return 0;
    c->on_loop = 1;
    run_on_worker(&c->work);
    c->on_loop = 0;
    if (!c->to_worker) {
        done_on_loop(&c->work.done);
        return 1;
    }
    c->to_worker = 0;
    json_decref(c->in);
    c->in = NULL;
    return 0;
}

static void on_request(tr_req *req, void *ctx) {
    tr_kinesis *k = ctx;
    tr_wire_format fmt = tr_aws_request_format(req);
    const char *target = tr_req_target(req);
    const kin_op *op = NULL;
    if (target != NULL && strncmp(target, TARGET_PREFIX, strlen(TARGET_PREFIX)) == 0)
        op = find_op(target + strlen(TARGET_PREFIX));
    if (op == NULL) {
        char msg[300];
        snprintf(msg, sizeof msg, "Unknown operation %.200s", target ? target : "");
        tr_aws_send_error(req, fmt, 400, "UnknownOperationException", msg);
        return;
    }
    kin_call *c = calloc(1, sizeof *c);
    if (c == NULL) {
        tr_aws_send_error(req, fmt, 500, "InternalFailure", "out of memory");
        return;
    }
    /* The body stays put while the request is referenced, so a worker may read it. */
    c->body = tr_req_body(req, &c->body_len);
    c->req = req;
    tr_req_ref(req);
    c->k = k;
    c->op = op;
    c->fmt = fmt;
    tr_writer_init(&c->out, fmt);
    c->work.run = run_on_worker;
    c->work.done.fn = done_on_loop;
    if (get_records_on_loop(c)) return;
    if (tr_workpool_submit(tr_server_workpool(k->srv), &c->work) != TR_OK) {
        kin_fail(c, 503, "ServiceUnavailableException", "The server is shutting down");
        kin_finish(c);
    }
}

static void on_close(tr_req *req, void *ctx) { tr_feed_on_close(req); }
static void on_drain(tr_req *req, void *ctx) { tr_feed_on_drain(req); }

static const tr_handler kinesis_handler = {
    .on_request = on_request, .on_close = on_close, .on_drain = on_drain};

int tr_kinesis_new(tr_server *srv, tr_data *data, const tr_kinesis_config *cfg,
                   tr_kinesis **out) {
    tr_kinesis *k = calloc(1, sizeof *k);
    if (k == NULL) return TR_ENOMEM;
    k->srv = srv;
    k->data = data;
    if (cfg != NULL) k->cfg = *cfg;
    if (k->cfg.aws_limits && (k->limits = kin_limits_new()) == NULL) {
        free(k);
        return TR_ENOMEM;
    }
    int rc = tr_feeds_new(srv, k->cfg.commits, &k->feeds);
    if (rc != TR_OK) {
        kin_limits_free(k->limits);
        free(k);
        return rc;
    }
    rc = tr_router_add(tr_server_router(srv), "POST", "/*", TARGET_PREFIX, &kinesis_handler,
                           k);
    if (rc != TR_OK) {
        tr_kinesis_free(k);
        return rc;
    }
    *out = k;
    return TR_OK;
}

void tr_kinesis_stop(tr_kinesis *k) {
    if (k != NULL) tr_feeds_stop(k->feeds);
}

void tr_kinesis_free(tr_kinesis *k) {
    if (k == NULL) return;
    tr_feeds_free(k->feeds);
    kin_limits_free(k->limits);
    free(k);
}

/* ---- input members ---- */

size_t kin_utf8_chars(const char *s, size_t len) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++) n += ((unsigned char)s[i] & 0xc0) != 0x80;
    return n;
}

int kin_is_text(const char *s, size_t len) { return tr_utf8_valid(s, len); }

static int wrong_type(kin_call *c, const char *key) {
    return kin_fail(c, 400, "SerializationException", "Unexpected value type for member %s",
                    key);
}

int kin_str(kin_call *c, const char *key, const char *member, int required, size_t min,
            size_t max, const char **out) {
    json_t *v = json_object_get(c->in, key);
    if (v == NULL || json_is_null(v)) {
        if (!required) return 0;
        return kin_invalid(c, NULL, member, "Member must not be null");
    }
    if (!json_is_string(v)) return wrong_type(c, key);
    const char *s = json_string_value(v);
    if (!kin_is_text(s, json_string_length(v)))
        return kin_fail(c, 400, "SerializationException", "%s must be a text string", key);
    size_t n = kin_utf8_chars(s, json_string_length(v));
    char constraint[96];
    if (n < min || n > max) {
        snprintf(constraint, sizeof constraint, "Member must have length %s than or equal to %zu",
                 n < min ? "greater" : "less", n < min ? min : max);
        return kin_invalid(c, s, member, constraint);
    }
    *out = s;
    return 0;
}

int kin_int(kin_call *c, const char *key, const char *member, int required, int64_t min,
            int64_t max, int64_t *out) {
    json_t *v = json_object_get(c->in, key);
    if (v == NULL || json_is_null(v)) {
        if (!required) return 0;
        return kin_invalid(c, NULL, member, "Member must not be null");
    }
    if (!json_is_integer(v)) return wrong_type(c, key);
    int64_t x = (int64_t)json_integer_value(v);
    if (x < min || x > max) {
        char value[32], constraint[96];
        snprintf(value, sizeof value, "%lld", (long long)x);
        snprintf(constraint, sizeof constraint,
                 "Member must have value %s than or equal to %lld", x < min ? "greater" : "less",
                 (long long)(x < min ? min : max));
        return kin_invalid(c, value, member, constraint);
    }
    *out = x;
    return 0;
}

int kin_time(kin_call *c, json_t *obj, const char *key, int64_t *ms, int *present) {
    json_t *v = json_object_get(obj, key);
    *present = 0;
    if (v == NULL || json_is_null(v)) return 0;
    if (tr_wire_time_ms(v, ms) != 0) return wrong_type(c, key);
    *present = 1;
    return 0;
}

int kin_bool(kin_call *c, const char *key, int *out) {
    json_t *v = json_object_get(c->in, key);
    if (v == NULL || json_is_null(v)) return 0;
    if (!json_is_boolean(v)) return wrong_type(c, key);
    *out = json_is_true(v);
    return 0;
}

int kin_check_stream_name(kin_call *c, const char *name, const char *member) {
    for (const char *p = name; *p; p++) {
        char ch = *p;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-'))
            return kin_invalid(c, name, member,
                               "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+");
    }
    return 0;
}

tr_data_stream *kin_stream(kin_call *c) {
    const char *name = NULL, *arn = NULL;
    if (kin_str(c, "StreamName", "streamName", 0, 1, 128, &name) != 0) return NULL;
    if (kin_str(c, "StreamARN", "streamARN", 0, 1, 2048, &arn) != 0) return NULL;
    if (name == NULL && arn == NULL) {
        kin_invalid(c, NULL, "streamName", "Member must not be null");
        return NULL;
    }
    if (name != NULL && kin_check_stream_name(c, name, "streamName") != 0) return NULL;
    tr_data_err err;
    tr_data_stream *s = tr_data_get(c->k->data, name, name ? NULL : arn, &err);
    if (s == NULL) kin_fail_data(c, &err);
    return s;
}

const tr_data_shard *kin_shard(kin_call *c, const tr_data_stream *s, const char *key,
                               const char *member) {
    const char *id = NULL;
    if (kin_str(c, key, member, 1, 1, 128, &id) != 0) return NULL;
    const tr_data_shard *sh = tr_data_shard_by_id(s, id);
    if (sh == NULL)
        kin_fail(c, 400, "ResourceNotFoundException",
                 "Shard %.128s in stream %s under account %s does not exist", id, s->name,
                 tr_data_cfg(c->k->data)->account);
    return sh;
}

/* ---- output helpers ---- */

void kin_w_seq(tr_writer *w, const char *key, const tr_data_stream *s, uint32_t shard_index,
               uint64_t seq) {
    char digits[TR_SEQNUM_DIGITS + 1];
    tr_seqnum sn = {(uint64_t)s->id, shard_index, seq};
    tr_seqnum_format(&sn, digits);
    tr_w_kstr(w, key, digits);
}

void kin_w_shard(kin_call *c, const tr_data_stream *s, const tr_data_shard *sh) {
    tr_writer *w = &c->out;
    char start[TR_HASHKEY_DIGITS + 1], end[TR_HASHKEY_DIGITS + 1];
    tr_w_obj_begin(w);
    tr_w_kstr(w, "ShardId", sh->id);
    if (sh->parent >= 0) tr_w_kstr(w, "ParentShardId", s->shards[sh->parent].id);
    if (sh->adjacent_parent >= 0)
        tr_w_kstr(w, "AdjacentParentShardId", s->shards[sh->adjacent_parent].id);
    tr_hashkey_format(sh->start, start);
    tr_hashkey_format(sh->end, end);
    tr_w_key(w, "HashKeyRange");
    tr_w_obj_begin(w);
    tr_w_kstr(w, "StartingHashKey", start);
    tr_w_kstr(w, "EndingHashKey", end);
    tr_w_obj_end(w);
    tr_w_key(w, "SequenceNumberRange");
    tr_w_obj_begin(w);
    kin_w_seq(&c->out, "StartingSequenceNumber", s, (uint32_t)sh->index, sh->starting_seq);
    if (sh->closed) kin_w_seq(&c->out, "EndingSequenceNumber", s, (uint32_t)sh->index, sh->ending_seq);
    tr_w_obj_end(w);
    tr_w_obj_end(w);
}

void kin_w_mode(kin_call *c, const tr_data_stream *s) {
    tr_w_key(&c->out, "StreamModeDetails");
    tr_w_obj_begin(&c->out);
    tr_w_kstr(&c->out, "StreamMode", s->on_demand ? "ON_DEMAND" : "PROVISIONED");
    tr_w_obj_end(&c->out);
}

void kin_w_monitoring(kin_call *c, uint32_t mask) {
    tr_writer *w = &c->out;
    tr_w_arr_begin(w);
    for (int i = 0; tr_data_metric_names[i] != NULL; i++)
        if (mask & (1u << i)) tr_w_str(w, tr_data_metric_names[i]);
    tr_w_arr_end(w);
}
