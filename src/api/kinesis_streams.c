/* The Data Streams control plane: streams, shards, retention, resharding, encryption flags,
 * enhanced monitoring, stream mode. Runs on a worker: resharding waits for the storage
 * thread to close parent shards. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/kinesis_call.h"
#include "data/consumers.h"
#include "util/error.h"

#define DEFAULT_ON_DEMAND_SHARDS 4
#define MAX_SHARDS_PER_STREAM 10000

static const char *account(kin_call *c) { return tr_data_cfg(c->k->data)->account; }

static int stream_mode(kin_call *c, int *on_demand) {
    json_t *m = json_object_get(c->in, "StreamModeDetails");
    if (m == NULL || json_is_null(m)) return 0;
    json_t *v = json_object_get(m, "StreamMode");
    const char *mode = json_string_value(v);
    if (!json_is_object(m) || mode == NULL)
        return kin_invalid(c, NULL, "streamModeDetails.streamMode", "Member must not be null");
    if (strcmp(mode, "ON_DEMAND") == 0) {
        *on_demand = 1;
    } else if (strcmp(mode, "PROVISIONED") == 0) {
        *on_demand = 0;
    } else {
        return kin_invalid(c, mode, "streamModeDetails.streamMode",
                           "Member must satisfy enum value set: [PROVISIONED, ON_DEMAND]");
    }
    return 1;
}

void kin_create_stream(kin_call *c) {
    const char *name = NULL;
    int64_t count = 0, max_kib = 0;
    int on_demand = 0;
    if (kin_str(c, "StreamName", "streamName", 1, 1, 128, &name) != 0 ||
        kin_check_stream_name(c, name, "streamName") != 0 ||
        kin_int(c, "ShardCount", "shardCount", 0, 1, 100000, &count) != 0 ||
        kin_int(c, "MaxRecordSizeInKiB", "maxRecordSizeInKiB", 0, 1024, 10240, &max_kib) != 0 ||
        stream_mode(c, &on_demand) < 0)
        return;
    json_t *tags = json_object_get(c->in, "Tags");
    if (tags != NULL && !json_is_null(tags) && !json_is_object(tags)) {
        kin_fail(c, 400, "SerializationException", "Tags must be a map");
        return;
    }
    if (tags != NULL && json_object_size(tags) > KIN_MAX_TAGS) {
        kin_fail(c, 400, "InvalidArgumentException", "A stream cannot have more than %d tags.",
                 KIN_MAX_TAGS);
        return;
    }
    if (count == 0 && on_demand) count = DEFAULT_ON_DEMAND_SHARDS;
    if (count == 0) {
        kin_fail(c, 400, "InvalidArgumentException",
                 "ShardCount is required for streams in PROVISIONED mode.");
        return;
    }
    if (count > MAX_SHARDS_PER_STREAM) {
        kin_fail(c, 400, "LimitExceededException",
                 "This request would exceed the shard limit for the account %s in us-east-1. "
                 "Current shard count for the account: 0. Limit: %d.",
                 account(c), MAX_SHARDS_PER_STREAM);
        return;
    }
    tr_data_err err;
    if (tr_data_create(c->k->data, name, (int)count, on_demand, (uint32_t)max_kib, &err) != 0) {
        kin_fail_data(c, &err);
        return;
    }
    if (tags != NULL && json_object_size(tags) > 0) {
        tr_data_stream *s = tr_data_get(c->k->data, name, NULL, &err);
        if (s != NULL) {
            kin_apply_tags(c, s, tags);
            tr_data_put(s);
        }
        if (c->failed) return;
    }
    tr_w_obj_begin(&c->out);
    tr_w_obj_end(&c->out);
}

void kin_delete_stream(kin_call *c) {
    tr_data_stream *s = kin_stream(c);
    int enforce = 0;
    if (s == NULL || kin_bool(c, "EnforceConsumerDeletion", &enforce) != 0) {
        tr_data_put(s);
        return;
    }
    char name[sizeof s->name];
    snprintf(name, sizeof name, "%s", s->name);
    tr_data_put(s);
    tr_data_err err;
    if (tr_data_delete(c->k->data, name, NULL, enforce, &err) != 0) {
        kin_fail_data(c, &err);
        return;
    }
    tr_w_obj_begin(&c->out);
    tr_w_obj_end(&c->out);
}

static size_t open_shards(const tr_data_stream *s) {
    size_t n = 0;
    for (size_t i = 0; i < s->nshards; i++) n += !s->shards[i].closed;
    return n;
}

/* The members DescribeStream and DescribeStreamSummary share. */
static void write_stream_head(kin_call *c, const tr_data_stream *s) {
    tr_writer *w = &c->out;
    tr_w_kstr(w, "StreamName", s->name);
    tr_w_kstr(w, "StreamARN", s->arn);
    tr_w_kstr(w, "StreamStatus", tr_data_status(s, kin_now_ms()));
    kin_w_mode(c, s);
    tr_w_kint(w, "RetentionPeriodHours", s->retention_hours);
    tr_w_ktime_ms(w, "StreamCreationTimestamp", s->created_ms);
    tr_w_key(w, "EnhancedMonitoring");
    tr_w_arr_begin(w);
    tr_w_obj_begin(w);
    tr_w_key(w, "ShardLevelMetrics");
    kin_w_monitoring(c, s->metrics_mask);
    tr_w_obj_end(w);
    tr_w_arr_end(w);
    tr_w_kstr(w, "EncryptionType", s->encrypted ? "KMS" : "NONE");
    if (s->encrypted) tr_w_kstr(w, "KeyId", s->key_id);
}

void kin_describe_stream(kin_call *c) {
    tr_data_stream *s = kin_stream(c);
    int64_t limit = 100;
    const char *after = NULL;
    if (s == NULL || kin_int(c, "Limit", "limit", 0, 1, 10000, &limit) != 0 ||
        kin_str(c, "ExclusiveStartShardId", "exclusiveStartShardId", 0, 1, 128, &after) != 0) {
        tr_data_put(s);
        return;
    }
    /* Shard ids sort as their indexes do, so "after" is a position. */
    size_t first = 0;
    if (after != NULL) {
        while (first < s->nshards && strcmp(s->shards[first].id, after) <= 0) first++;
    }
    tr_writer *w = &c->out;
    tr_w_obj_begin(w);
    tr_w_key(w, "StreamDescription");
    tr_w_obj_begin(w);
    write_stream_head(c, s);
    tr_w_key(w, "Shards");
    tr_w_arr_begin(w);
    size_t i = first;
    for (; i < s->nshards && i - first < (size_t)limit; i++) kin_w_shard(c, s, &s->shards[i]);
    tr_w_arr_end(w);
    tr_w_kbool(w, "HasMoreShards", i < s->nshards);
    tr_w_obj_end(w);
    tr_w_obj_end(w);
    tr_data_put(s);
}

void kin_describe_stream_summary(kin_call *c) {
    tr_data_stream *s = kin_stream(c);
    if (s == NULL) return;
    tr_writer *w = &c->out;
    tr_w_obj_begin(w);
    tr_w_key(w, "StreamDescriptionSummary");
    tr_w_obj_begin(w);
    write_stream_head(c, s);
    tr_w_kint(w, "OpenShardCount", (int64_t)open_shards(s));
    tr_data_err err;
    int consumers = tr_data_consumer_list(c->k->data, s, NULL, NULL, &err);
    tr_w_kint(w, "ConsumerCount", consumers > 0 ? consumers : 0);
    tr_w_kint(w, "MaxRecordSizeInKiB", s->max_record_kib);
    tr_w_obj_end(w);
    tr_w_obj_end(w);
    tr_data_put(s);
}

/* ---- ListStreams ---- */

typedef struct list_acc {
    char (*names)[129];
    int64_t *created;
    char (*status)[12];
    int *on_demand;
    char (*arns)[320];
    int n, cap;
} list_acc;

static int list_visit(void *ctx, const tr_data_stream *s) {
    list_acc *a = ctx;
    if (a->n == a->cap) return 1;
    snprintf(a->names[a->n], sizeof a->names[0], "%s", s->name);
    snprintf(a->arns[a->n], sizeof a->arns[0], "%s", s->arn);
    snprintf(a->status[a->n], sizeof a->status[0], "%s", tr_data_status(s, kin_now_ms()));
    a->created[a->n] = s->created_ms;
    a->on_demand[a->n] = s->on_demand;
    a->n++;
    return 0;
}

/* NextToken of ListStreams: the last name returned, base64 so it is opaque. */
static int decode_list_token(kin_call *c, const char *token, char *name, size_t cap) {
    size_t len = strlen(token);
    uint8_t *buf = malloc(len + 1);
    long n = buf ? tr_base64_decode(token, len, buf) : -1;
    if (n <= 0 || (size_t)n >= cap || memchr(buf, 0, (size_t)n) != NULL) {
        free(buf);
        return kin_fail(c, 400, "ExpiredNextTokenException", "Invalid NextToken.");
    }
    memcpy(name, buf, (size_t)n);
    name[n] = '\0';
    free(buf);
    return 0;
}

void kin_list_streams(kin_call *c) {
    int64_t limit = 100;
    const char *after = NULL, *token = NULL;
    char token_name[130];
    if (kin_int(c, "Limit", "limit", 0, 1, 10000, &limit) != 0 ||
        kin_str(c, "ExclusiveStartStreamName", "exclusiveStartStreamName", 0, 1, 128, &after) ||
        kin_str(c, "NextToken", "nextToken", 0, 1, 1048576, &token) != 0)
        return;
    if (token != NULL) {
        if (after != NULL) {
            kin_fail(c, 400, "InvalidArgumentException",
                     "NextToken and ExclusiveStartStreamName cannot be provided together.");
            return;
        }
        if (decode_list_token(c, token, token_name, sizeof token_name) != 0) return;
        after = token_name;
    }
    /* One more than asked, to know whether more remain. */
    int cap = (int)limit + 1;
    list_acc a = {.cap = cap};
    a.names = malloc((size_t)cap * sizeof *a.names);
    a.arns = malloc((size_t)cap * sizeof *a.arns);
    a.status = malloc((size_t)cap * sizeof *a.status);
    a.created = malloc((size_t)cap * sizeof *a.created);
    a.on_demand = malloc((size_t)cap * sizeof *a.on_demand);
    if (!a.names || !a.arns || !a.status || !a.created || !a.on_demand ||
        tr_data_list(c->k->data, after, cap, list_visit, &a) < 0) {
        kin_fail(c, 500, "InternalFailure", "Cannot list streams");
        goto out;
    }
    int more = a.n > limit, shown = more ? (int)limit : a.n;
    tr_writer *w = &c->out;
    tr_w_obj_begin(w);
    tr_w_key(w, "StreamNames");
    tr_w_arr_begin(w);
    for (int i = 0; i < shown; i++) tr_w_str(w, a.names[i]);
    tr_w_arr_end(w);
    tr_w_kbool(w, "HasMoreStreams", more);
    if (more) {
        const char *last = a.names[shown - 1];
        char tok[200];
        tr_base64_encode(last, strlen(last), tok);
        tr_w_kstr(w, "NextToken", tok);
    }
    tr_w_key(w, "StreamSummaries");
    tr_w_arr_begin(w);
    for (int i = 0; i < shown; i++) {
        tr_w_obj_begin(w);
        tr_w_kstr(w, "StreamName", a.names[i]);
        tr_w_kstr(w, "StreamARN", a.arns[i]);
        tr_w_kstr(w, "StreamStatus", a.status[i]);
        tr_w_key(w, "StreamModeDetails");
        tr_w_obj_begin(w);
        tr_w_kstr(w, "StreamMode", a.on_demand[i] ? "ON_DEMAND" : "PROVISIONED");
        tr_w_obj_end(w);
        tr_w_ktime_ms(w, "StreamCreationTimestamp", a.created[i]);
        tr_w_obj_end(w);
    }
    tr_w_arr_end(w);
    tr_w_obj_end(w);
out:
    free(a.names);
    free(a.arns);
    free(a.status);
    free(a.created);
    free(a.on_demand);
}

/* ---- ListShards ---- */

typedef enum {
    F_NONE, F_AFTER_SHARD_ID, F_AT_TRIM_HORIZON, F_FROM_TRIM_HORIZON, F_AT_LATEST,
    F_AT_TIMESTAMP, F_FROM_TIMESTAMP
} shard_filter;

static const char *const filter_names[] = {"", "AFTER_SHARD_ID", "AT_TRIM_HORIZON",
                                           "FROM_TRIM_HORIZON", "AT_LATEST", "AT_TIMESTAMP",
                                           "FROM_TIMESTAMP"};

/* When a shard stopped taking records: its children's creation time. */
static int64_t closed_at(const tr_data_stream *s, const tr_data_shard *sh) {
    for (size_t i = 0; i < s->nshards; i++) {
        const tr_data_shard *x = &s->shards[i];
        if (x->parent == sh->index || x->adjacent_parent == sh->index) return x->created_ms;
    }
    return INT64_MAX;
}

/* Open at time t: created by then (the stream's first shards count as always there), and
 * not yet closed. `and_later`: also every shard created after t. */
static int open_at(const tr_data_stream *s, const tr_data_shard *sh, int64_t t, int and_later) {
    int created = sh->parent < 0 || sh->created_ms <= t;
    int still_open = !sh->closed || closed_at(s, sh) > t;
    return still_open && (created || and_later);
}

static int filter_keeps(const tr_data_stream *s, const tr_data_shard *sh, shard_filter f,
                        int64_t t, const char *after_id) {
    int64_t horizon = kin_now_ms() - (int64_t)s->retention_hours * 3600000;
    switch (f) {
    case F_NONE: return 1;
    case F_AFTER_SHARD_ID: return strcmp(sh->id, after_id) > 0;
    case F_AT_TRIM_HORIZON: return open_at(s, sh, horizon, 0);
    case F_FROM_TRIM_HORIZON: return open_at(s, sh, horizon, 1);
    case F_AT_LATEST: return !sh->closed;
    case F_AT_TIMESTAMP: return open_at(s, sh, t, 0);
    case F_FROM_TIMESTAMP: return open_at(s, sh, t, 1);
    }
    return 1;
}

/* ListShards' NextToken: "<stream>\n<last index>\n<filter>\n<t>\n<after id>" in base64. */
static void write_shards_token(kin_call *c, const char *stream, int last, shard_filter f,
                               int64_t t, const char *after_id) {
    char raw[512], tok[700];
    int n = snprintf(raw, sizeof raw, "%s\n%d\n%d\n%lld\n%s", stream, last, (int)f, (long long)t,
                     after_id ? after_id : "");
    tr_base64_encode(raw, (size_t)n, tok);
    tr_w_kstr(&c->out, "NextToken", tok);
}

static int read_shards_token(kin_call *c, const char *token, char *stream, size_t cap,
                             int *last, shard_filter *f, int64_t *t, char *after, size_t acap) {
    size_t len = strlen(token);
    char raw[520];
    long n = len < 690 ? tr_base64_decode(token, len, (uint8_t *)raw) : -1;
    if (n <= 0 || n >= (long)sizeof raw) goto bad;
    raw[n] = '\0';
    char *save = NULL, *name = strtok_r(raw, "\n", &save), *idx = strtok_r(NULL, "\n", &save),
         *fl = strtok_r(NULL, "\n", &save), *ts = strtok_r(NULL, "\n", &save),
         *aid = strtok_r(NULL, "\n", &save);
    if (!name || !idx || !fl || !ts || strlen(name) >= cap) goto bad;
    snprintf(stream, cap, "%s", name);
    *last = atoi(idx);
    int fi = atoi(fl);
    if (fi < F_NONE || fi > F_FROM_TIMESTAMP) goto bad;
    *f = (shard_filter)fi;
    *t = atoll(ts);
    snprintf(after, acap, "%s", aid ? aid : "");
    return 0;
bad:
    return kin_fail(c, 400, "InvalidArgumentException", "Invalid NextToken.");
}

static int parse_shard_filter(kin_call *c, shard_filter *f, int64_t *t, const char **after_id) {
    json_t *sf = json_object_get(c->in, "ShardFilter");
    if (sf == NULL || json_is_null(sf)) return 0;
    if (!json_is_object(sf)) return kin_fail(c, 400, "SerializationException", "ShardFilter");
    const char *type = json_string_value(json_object_get(sf, "Type"));
    if (type == NULL) return kin_invalid(c, NULL, "shardFilter.type", "Member must not be null");
    for (int i = F_AFTER_SHARD_ID; i <= F_FROM_TIMESTAMP; i++)
        if (strcmp(type, filter_names[i]) == 0) *f = (shard_filter)i;
    if (*f == F_NONE)
        return kin_invalid(c, type, "shardFilter.type",
                           "Member must satisfy enum value set: [AFTER_SHARD_ID, "
                           "AT_TRIM_HORIZON, FROM_TRIM_HORIZON, AT_LATEST, AT_TIMESTAMP, "
                           "FROM_TIMESTAMP]");
    *after_id = json_string_value(json_object_get(sf, "ShardId"));
    if (*f == F_AFTER_SHARD_ID && *after_id == NULL)
        return kin_fail(c, 400, "InvalidArgumentException",
                        "ShardId is required for the AFTER_SHARD_ID filter type.");
    int present = 0;
    if (kin_time(c, sf, "Timestamp", t, &present) != 0) return -1;
    if ((*f == F_AT_TIMESTAMP || *f == F_FROM_TIMESTAMP) && !present)
        return kin_fail(c, 400, "InvalidArgumentException",
                        "Timestamp is required for the %s filter type.", type);
    return 0;
}

void kin_list_shards(kin_call *c) {
    const char *name = NULL, *arn = NULL, *token = NULL, *after = NULL, *after_id = NULL;
    int64_t max = 1000, t = 0;
    shard_filter f = F_NONE;
    int last = -1;
    char tok_stream[130], tok_after[130];
    if (kin_str(c, "StreamName", "streamName", 0, 1, 128, &name) != 0 ||
        kin_str(c, "StreamARN", "streamARN", 0, 1, 2048, &arn) != 0 ||
        kin_str(c, "NextToken", "nextToken", 0, 1, 1048576, &token) != 0 ||
        kin_str(c, "ExclusiveStartShardId", "exclusiveStartShardId", 0, 1, 128, &after) != 0 ||
        kin_int(c, "MaxResults", "maxResults", 0, 1, 10000, &max) != 0 ||
        parse_shard_filter(c, &f, &t, &after_id) != 0)
        return;
    if (token != NULL) {
        if (name != NULL || arn != NULL || after != NULL || f != F_NONE) {
            kin_fail(c, 400, "InvalidArgumentException",
                     "NextToken and StreamName cannot be provided together.");
            return;
        }
        if (read_shards_token(c, token, tok_stream, sizeof tok_stream, &last, &f, &t, tok_after,
                              sizeof tok_after) != 0)
            return;
        name = tok_stream;
        after_id = tok_after;
        json_object_set_new(c->in, "StreamName", json_string(name));
    } else if (name == NULL && arn == NULL) {
        kin_invalid(c, NULL, "streamName", "Member must not be null");
        return;
    }
    tr_data_stream *s = kin_stream(c);
    if (s == NULL) return;
    tr_writer *w = &c->out;
    tr_w_obj_begin(w);
    tr_w_key(w, "Shards");
    tr_w_arr_begin(w);
    int shown = 0;
    size_t i = 0;
    for (; i < s->nshards; i++) {
        const tr_data_shard *sh = &s->shards[i];
        if (sh->index <= last || (after != NULL && strcmp(sh->id, after) <= 0)) continue;
        if (!filter_keeps(s, sh, f, t, after_id)) continue;
        if (shown == max) break;
        kin_w_shard(c, s, sh);
        last = sh->index;
        shown++;
    }
    tr_w_arr_end(w);
    if (i < s->nshards) write_shards_token(c, s->name, last, f, t, after_id);
    tr_w_obj_end(w);
    tr_data_put(s);
}

/* ---- retention, resharding, attributes ---- */

static void empty_answer(kin_call *c) {
    tr_w_obj_begin(&c->out);
    tr_w_obj_end(&c->out);
}

static void change_retention(kin_call *c, int increase) {
    tr_data_stream *s = kin_stream(c);
    int64_t hours = 0;
    if (s == NULL ||
        kin_int(c, "RetentionPeriodHours", "retentionPeriodHours", 1, 1, 8760, &hours) != 0) {
        tr_data_put(s);
        return;
    }
    tr_data_err err;
    if (tr_data_set_retention(c->k->data, s, (int)hours, increase, &err) != 0)
        kin_fail_data(c, &err);
    else
        empty_answer(c);
    tr_data_put(s);
}

void kin_increase_retention(kin_call *c) { change_retention(c, 1); }
void kin_decrease_retention(kin_call *c) { change_retention(c, 0); }

void kin_split_shard(kin_call *c) {
    tr_data_stream *s = kin_stream(c);
    const char *id = NULL, *key = NULL;
    tr_hashkey at;
    if (s == NULL || kin_str(c, "ShardToSplit", "shardToSplit", 1, 1, 128, &id) != 0 ||
        kin_str(c, "NewStartingHashKey", "newStartingHashKey", 1, 1, 39, &key) != 0) {
        tr_data_put(s);
        return;
    }
    if (tr_hashkey_parse(key, strlen(key), &at) != 0) {
        kin_invalid(c, key, "newStartingHashKey",
                    "Member must satisfy regular expression pattern: 0|([1-9]\\d{0,38})");
    } else {
        tr_data_err err;
        if (tr_data_split(c->k->data, s, id, at, &err) != 0)
            kin_fail_data(c, &err);
        else
            empty_answer(c);
    }
    tr_data_put(s);
}

void kin_merge_shards(kin_call *c) {
    tr_data_stream *s = kin_stream(c);
    const char *a = NULL, *b = NULL;
    if (s == NULL || kin_str(c, "ShardToMerge", "shardToMerge", 1, 1, 128, &a) != 0 ||
        kin_str(c, "AdjacentShardToMerge", "adjacentShardToMerge", 1, 1, 128, &b) != 0) {
        tr_data_put(s);
        return;
    }
    tr_data_err err;
    if (tr_data_merge(c->k->data, s, a, b, &err) != 0)
        kin_fail_data(c, &err);
    else
        empty_answer(c);
    tr_data_put(s);
}

void kin_update_shard_count(kin_call *c) {
    tr_data_stream *s = kin_stream(c);
    int64_t target = 0;
    const char *scaling = NULL;
    if (s == NULL ||
        kin_int(c, "TargetShardCount", "targetShardCount", 1, 1, 100000, &target) != 0 ||
        kin_str(c, "ScalingType", "scalingType", 1, 1, 64, &scaling) != 0) {
        tr_data_put(s);
        return;
    }
    if (strcmp(scaling, "UNIFORM_SCALING") != 0) {
        kin_invalid(c, scaling, "scalingType",
                    "Member must satisfy enum value set: [UNIFORM_SCALING]");
        tr_data_put(s);
        return;
    }
    int64_t current = (int64_t)open_shards(s);
    tr_data_err err;
    if (tr_data_update_shard_count(c->k->data, s, (int)target, &err) != 0) {
        kin_fail_data(c, &err);
    } else {
        tr_w_obj_begin(&c->out);
        tr_w_kstr(&c->out, "StreamName", s->name);
        tr_w_kint(&c->out, "CurrentShardCount", current);
        tr_w_kint(&c->out, "TargetShardCount", target);
        tr_w_kstr(&c->out, "StreamARN", s->arn);
        tr_w_obj_end(&c->out);
    }
    tr_data_put(s);
}

static void set_encryption(kin_call *c, int on) {
    tr_data_stream *s = kin_stream(c);
    const char *type = NULL, *key = NULL;
    tr_kms_key_info info;
    int rc = TR_OK;
    if (s == NULL || kin_str(c, "EncryptionType", "encryptionType", 1, 1, 16, &type) != 0 ||
        kin_str(c, "KeyId", "keyId", 1, 1, 2048, &key) != 0) {
        tr_data_put(s);
        return;
    }
    if (strcmp(type, "KMS") != 0) {
        kin_invalid(c, type, "encryptionType", "Member must satisfy enum value set: [KMS, NONE]");
    } else if (on && c->k->cfg.kms != NULL &&
               (rc = tr_kms_describe(c->k->cfg.kms, key, &info)) == TR_OK && !info.enabled) {
        kin_kms_fail(c, TR_KMS_EDISABLED, key);
    } else if (on && rc != TR_OK) {
        kin_kms_fail(c, rc, key);
    } else {
        tr_data_err err;
        if (tr_data_set_encryption(c->k->data, s, on, key, &err) != 0)
            kin_fail_data(c, &err);
        else
            empty_answer(c);
    }
    tr_data_put(s);
}

void kin_start_encryption(kin_call *c) { set_encryption(c, 1); }
void kin_stop_encryption(kin_call *c) { set_encryption(c, 0); }

static int metrics_mask(kin_call *c, uint32_t *mask) {
    json_t *arr = json_object_get(c->in, "ShardLevelMetrics");
    if (arr == NULL || json_is_null(arr))
        return kin_invalid(c, NULL, "shardLevelMetrics", "Member must not be null");
    if (!json_is_array(arr)) return kin_fail(c, 400, "SerializationException", "ShardLevelMetrics");
    if (json_array_size(arr) < 1 || json_array_size(arr) > 7)
        return kin_invalid(c, "[]", "shardLevelMetrics",
                           "Member must have length less than or equal to 7 and greater than "
                           "or equal to 1");
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        const char *m = json_string_value(v);
        int found = 0;
        if (m != NULL && strcmp(m, "ALL") == 0) {
            for (int j = 0; tr_data_metric_names[j] != NULL; j++) *mask |= 1u << j;
            found = 1;
        }
        for (int j = 0; m != NULL && tr_data_metric_names[j] != NULL; j++) {
            if (strcmp(m, tr_data_metric_names[j]) == 0) {
                *mask |= 1u << j;
                found = 1;
            }
        }
        if (!found)
            return kin_invalid(c, m ? m : "", "shardLevelMetrics",
                               "Member must satisfy enum value set: [IncomingBytes, "
                               "IncomingRecords, OutgoingBytes, OutgoingRecords, "
                               "WriteProvisionedThroughputExceeded, "
                               "ReadProvisionedThroughputExceeded, IteratorAgeMilliseconds, ALL]");
    }
    return 0;
}

static void set_monitoring(kin_call *c, int enable) {
    tr_data_stream *s = kin_stream(c);
    uint32_t mask = 0, before = 0, after = 0;
    if (s == NULL || metrics_mask(c, &mask) != 0) {
        tr_data_put(s);
        return;
    }
    tr_data_err err;
    if (tr_data_set_metrics(c->k->data, s, mask, enable, &before, &after, &err) != 0) {
        kin_fail_data(c, &err);
    } else {
        tr_w_obj_begin(&c->out);
        tr_w_kstr(&c->out, "StreamName", s->name);
        tr_w_key(&c->out, "CurrentShardLevelMetrics");
        kin_w_monitoring(c, before);
        tr_w_key(&c->out, "DesiredShardLevelMetrics");
        kin_w_monitoring(c, after);
        tr_w_kstr(&c->out, "StreamARN", s->arn);
        tr_w_obj_end(&c->out);
    }
    tr_data_put(s);
}

void kin_enable_monitoring(kin_call *c) { set_monitoring(c, 1); }
void kin_disable_monitoring(kin_call *c) { set_monitoring(c, 0); }

void kin_update_max_record_size(kin_call *c) {
    tr_data_stream *s = kin_stream(c);
    int64_t kib = 0;
    if (s == NULL ||
        kin_int(c, "MaxRecordSizeInKiB", "maxRecordSizeInKiB", 1, 1024, 10240, &kib) != 0) {
        tr_data_put(s);
        return;
    }
    tr_data_err err;
    if (tr_data_set_max_record(c->k->data, s, (uint32_t)kib, &err) != 0)
        kin_fail_data(c, &err);
    else
        empty_answer(c);
    tr_data_put(s);
}

void kin_update_stream_mode(kin_call *c) {
    tr_data_stream *s = kin_stream(c);
    int on_demand = 0;
    if (s == NULL) return;
    int rc = stream_mode(c, &on_demand);
    if (rc == 0) kin_invalid(c, NULL, "streamModeDetails", "Member must not be null");
    if (rc > 0) {
        tr_data_err err;
        if (tr_data_set_mode(c->k->data, s, on_demand, &err) != 0)
            kin_fail_data(c, &err);
        else
            empty_answer(c);
    }
    tr_data_put(s);
}

/* ---- DescribeLimits ---- */

typedef struct limits_acc {
    int64_t open, on_demand;
} limits_acc;

static int limits_visit(void *ctx, const tr_data_stream *s) {
    limits_acc *a = ctx;
    a->open += (int64_t)open_shards(s);
    a->on_demand += s->on_demand;
    return 0;
}

void kin_describe_limits(kin_call *c) {
    limits_acc a = {0, 0};
    if (tr_data_list(c->k->data, NULL, 0, limits_visit, &a) < 0) {
        kin_fail(c, 500, "InternalFailure", "Cannot list streams");
        return;
    }
    tr_w_obj_begin(&c->out);
    tr_w_kint(&c->out, "ShardLimit", MAX_SHARDS_PER_STREAM);
    tr_w_kint(&c->out, "OpenShardCount", a.open);
    tr_w_kint(&c->out, "OnDemandStreamCount", a.on_demand);
    tr_w_kint(&c->out, "OnDemandStreamCountLimit", 50);
    tr_w_obj_end(&c->out);
}
