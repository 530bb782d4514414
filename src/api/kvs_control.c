/* The Kinesis Video Streams control plane: CreateStream, DescribeStream, ListStreams,
 * DeleteStream, UpdateStream, UpdateDataRetention, GetDataEndpoint and the tag operations,
 * each `POST /<op>` with a JSON body, run on a worker against the video service. */
#include "api/kvs_control.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/kvs_call.h"
#include "util/error.h"
#include "wire/writer.h"

struct tr_kvs_control {
    tr_server *srv;
    tr_video *video;
    char *data_endpoint;
};

static tr_kvs_control *face(kvs_call *c) { return c->face; }

/* StreamInfo as DescribeStream and ListStreams write it. */
static void w_stream_info(tr_writer *w, const tr_video_stream *s, int64_t now_ms) {
    char version[24];
    snprintf(version, sizeof version, "%lld", (long long)s->version);
    tr_w_obj_begin(w);
    if (s->device_name[0]) tr_w_kstr(w, "DeviceName", s->device_name);
    tr_w_kstr(w, "StreamName", s->name);
    tr_w_kstr(w, "StreamARN", s->arn);
    if (s->media_type[0]) tr_w_kstr(w, "MediaType", s->media_type);
    tr_w_kstr(w, "KmsKeyId", s->kms_key_id);
    tr_w_kstr(w, "Version", version);
    tr_w_kstr(w, "Status", tr_video_status(s, now_ms));
    tr_w_ktime_ms(w, "CreationTime", s->created_ms);
    tr_w_kint(w, "DataRetentionInHours", s->retention_hours);
    tr_w_obj_end(w);
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- tags ---- */

/* Tags of a request, pointing into its body. */
typedef struct tag_input {
    const char *keys[TR_VIDEO_MAX_TAGS];
    const char *values[TR_VIDEO_MAX_TAGS];
    size_t n;
} tag_input;

static int check_count(kvs_call *c, size_t n, const char *member) {
    if (n >= 1 && n <= TR_VIDEO_MAX_TAGS) return 0;
    char constraint[96];
    snprintf(constraint, sizeof constraint, "Member must have length %s than or equal to %d",
             n < 1 ? "greater" : "less", n < 1 ? 1 : TR_VIDEO_MAX_TAGS);
    return kvs_invalid(c, n < 1 ? "[]" : "[...]", member, constraint);
}

/* Checks one tag against TagKey / TagValue; the tree object {Key, Value} keeps kvs_str's
 * messages the same for the map and list forms. */
static int check_tag(kvs_call *c, json_t *pair, const char **key, const char **value) {
    return kvs_str(c, pair, "Key", "tags.key", 1, 1, 128, &kvs_p_tag, key) != 0 ||
                   kvs_str(c, pair, "Value", "tags.value", 1, 0, 256, &kvs_p_tag, value) != 0
               ? -1
               : 0;
}

/* The ResourceTags map {key: value}, 1..50 of them. */
static int tags_map(kvs_call *c, json_t *tags, tag_input *t) {
    if (!json_is_object(tags))
        return kvs_fail(c, "SerializationException", "Unexpected value type for member Tags");
    if (check_count(c, json_object_size(tags), "tags") != 0) return -1;
    const char *k;
    json_t *v;
    t->n = 0;
    json_object_foreach(tags, k, v) {
        json_t *pair = json_pack("{s:s,s:O}", "Key", k, "Value", v);
        if (pair == NULL) return kvs_fail(c, "InternalFailure", "out of memory");
        const char *key = NULL, *value = NULL;
        int rc = check_tag(c, pair, &key, &value);
        json_decref(pair);
        if (rc != 0) return -1;
        t->keys[t->n] = k;
        t->values[t->n++] = json_string_value(v);
    }
    return 0;
}

/* The TagList [{Key, Value}], 1..50 of them. */
static int tags_list(kvs_call *c, json_t *tags, tag_input *t) {
    if (!json_is_array(tags))
        return kvs_fail(c, "SerializationException", "Unexpected value type for member Tags");
    if (check_count(c, json_array_size(tags), "tags") != 0) return -1;
    size_t i;
    json_t *pair;
    t->n = 0;
    json_array_foreach(tags, i, pair) {
        if (!json_is_object(pair))
            return kvs_fail(c, "SerializationException", "Unexpected value type for member Tags");
        if (check_tag(c, pair, &t->keys[t->n], &t->values[t->n]) != 0) return -1;
        t->n++;
    }
    return 0;
}

/* TagKeyList: 1..50 keys. */
static int tag_keys(kvs_call *c, tag_input *t) {
    json_t *keys = json_object_get(c->in, "TagKeyList");
    if (keys == NULL || json_is_null(keys))
        return kvs_invalid(c, NULL, "tagKeyList", "Member must not be null");
    if (!json_is_array(keys))
        return kvs_fail(c, "SerializationException",
                        "Unexpected value type for member TagKeyList");
    if (check_count(c, json_array_size(keys), "tagKeyList") != 0) return -1;
    size_t i;
    json_t *k;
    t->n = 0;
    json_array_foreach(keys, i, k) {
        json_t *pair = json_pack("{s:O}", "Key", k);
        if (pair == NULL) return kvs_fail(c, "InternalFailure", "out of memory");
        const char *checked = NULL;
        int rc = kvs_str(c, pair, "Key", "tagKeyList.member", 1, 1, 128, &kvs_p_tag, &checked);
        json_decref(pair);
        if (rc != 0) return -1;
        t->keys[t->n++] = json_string_value(k);
    }
    return 0;
}

static int tag_visit(void *ctx, const char *key, const char *value) {
    tr_w_kstr(ctx, key, value);
    return 0;
}

static int next_token(kvs_call *c, const char **token) {
    return kvs_str(c, NULL, "NextToken", "nextToken", 0, 0, 512, &kvs_p_token, token);
}

/* {"Tags": {...}}: every tag (at most 50), so there is never a NextToken. */
static void w_tags(kvs_call *c, const tr_video_stream *s) {
    tr_w_obj_begin(&c->out);
    tr_w_key(&c->out, "Tags");
    tr_w_obj_begin(&c->out);
    tr_video_err err;
    if (tr_video_tags(c->video, s, tag_visit, &c->out, &err) != 0) kvs_fail_video(c, &err);
    tr_w_obj_end(&c->out);
    tr_w_obj_end(&c->out);
}

static void apply_tags(kvs_call *c, const tr_video_stream *s, const tag_input *t) {
    tr_video_err err;
    if (tr_video_tag(c->video, s, t->keys, t->values, t->n, &err) != 0) kvs_fail_video(c, &err);
}

static void remove_tags(kvs_call *c, const tr_video_stream *s, const tag_input *t) {
    tr_video_err err;
    if (tr_video_untag(c->video, s, t->keys, t->n, &err) != 0) kvs_fail_video(c, &err);
}

/* The stream named, after the whole input has been checked (as KVS validates before it
 * looks anything up). */
static tr_video_stream *lookup(kvs_call *c, const char *name, const char *arn) {
    if (c->failed) return NULL;
    tr_video_err err;
    tr_video_stream *s = tr_video_get(c->video, name, arn, &err);
    if (s == NULL) kvs_fail_video(c, &err);
    return s;
}

static int resource_arn(kvs_call *c, const char **arn) {
    return kvs_str(c, NULL, "ResourceARN", "resourceARN", 1, 1, 1024, &kvs_p_arn, arn);
}

/* Tags (map form, for TagStream; list form, for TagResource) after checking them. */
static int tags_member(kvs_call *c, int list_form, tag_input *t) {
    json_t *tags = json_object_get(c->in, "Tags");
    if (tags == NULL || json_is_null(tags)) return kvs_invalid(c, NULL, "tags", "Member must not be null");
    return list_form ? tags_list(c, tags, t) : tags_map(c, tags, t);
}

/* ---- operations ---- */

static const char *const storage_tiers[] = {"HOT", "WARM", NULL};

static void create_stream(kvs_call *c) {
    tr_video_spec spec = {0};
    int64_t hours = 0;
    json_t *tags = NULL, *storage = NULL;
    tag_input t = {.n = 0};
    if (kvs_str(c, NULL, "StreamName", "streamName", 1, 1, 256, &kvs_p_name, &spec.name) != 0 ||
        kvs_str(c, NULL, "DeviceName", "deviceName", 0, 1, 128, &kvs_p_name,
                &spec.device_name) != 0 ||
        kvs_str(c, NULL, "MediaType", "mediaType", 0, 1, 128, &kvs_p_media_type,
                &spec.media_type) != 0 ||
        kvs_str(c, NULL, "KmsKeyId", "kmsKeyId", 0, 1, 2048, &kvs_p_any, &spec.kms_key_id) != 0 ||
        kvs_int(c, NULL, "DataRetentionInHours", "dataRetentionInHours", 0, 0,
                TR_VIDEO_MAX_RETENTION_HOURS, &hours) != 0 ||
        kvs_obj(c, "StreamStorageConfiguration", "streamStorageConfiguration", 0, &storage) != 0)
        return;
    if (storage != NULL &&
        kvs_enum(c, storage, "DefaultStorageTier", "streamStorageConfiguration.defaultStorageTier",
                 1, storage_tiers, &spec.storage_tier) != 0)
        return;
    tags = json_object_get(c->in, "Tags");
    if (tags != NULL && !json_is_null(tags)) {
        if (tags_map(c, tags, &t) != 0) return;
        spec.tag_keys = t.keys;
        spec.tag_values = t.values;
        spec.ntags = t.n;
    }
    spec.retention_hours = (int)hours;
    tr_video_stream *s = NULL;
    tr_video_err err;
    if (tr_video_create(c->video, &spec, &s, &err) != 0) {
        kvs_fail_video(c, &err);
        return;
    }
    tr_w_obj_begin(&c->out);
    tr_w_kstr(&c->out, "StreamARN", s->arn);
    tr_w_obj_end(&c->out);
    tr_video_put(s);
}

static void describe_stream(kvs_call *c) {
    tr_video_stream *s = kvs_stream(c);
    if (s == NULL) return;
    tr_w_obj_begin(&c->out);
    tr_w_key(&c->out, "StreamInfo");
    w_stream_info(&c->out, s, now_ms());
    tr_w_obj_end(&c->out);
    tr_video_put(s);
}

/* ---- ListStreams ---- */

#define NAME_TOKEN_MAX 512

typedef struct list_ctx {
    tr_writer *w;
    int64_t now_ms;
    int limit;
    int shown;
    int more;
    char last[TR_NAME_MAX + 1];
} list_ctx;

static int list_visit(void *ctx, const tr_video_stream *s) {
    list_ctx *l = ctx;
    if (l->shown == l->limit) {
        l->more = 1;
        return 1;
    }
    w_stream_info(l->w, s, l->now_ms);
    snprintf(l->last, sizeof l->last, "%s", s->name);
    l->shown++;
    return 0;
}

/* NextToken is the base64 of the last name listed: names sort, so it is a position. */
static int token_to_name(kvs_call *c, const char *token, char *name, size_t len) {
    size_t tlen = strlen(token);
    uint8_t buf[NAME_TOKEN_MAX];
    long n = tlen <= NAME_TOKEN_MAX ? tr_base64_decode(token, tlen, buf) : -1;
    if (n < 1 || (size_t)n >= len) goto bad;
    for (long i = 0; i < n; i++) {
        char ch = (char)buf[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-'))
            goto bad;
    }
    memcpy(name, buf, (size_t)n);
    name[n] = '\0';
    return 0;
bad:
    return kvs_fail(c, "InvalidArgumentException", "The NextToken %.512s is not valid.", token);
}

static const char *const comparison_operators[] = {"BEGINS_WITH", NULL};

static void list_streams(kvs_call *c) {
    int64_t max = 10000;
    const char *token = NULL, *op = NULL, *prefix = NULL;
    json_t *cond = NULL;
    if (kvs_int(c, NULL, "MaxResults", "maxResults", 0, 1, 10000, &max) != 0 ||
        kvs_str(c, NULL, "NextToken", "nextToken", 0, 0, 512, &kvs_p_token, &token) != 0 ||
        kvs_obj(c, "StreamNameCondition", "streamNameCondition", 0, &cond) != 0)
        return;
    if (cond != NULL &&
        (kvs_enum(c, cond, "ComparisonOperator", "streamNameCondition.comparisonOperator", 0,
                  comparison_operators, &op) != 0 ||
         kvs_str(c, cond, "ComparisonValue", "streamNameCondition.comparisonValue", 0, 1, 256,
                 &kvs_p_name, &prefix) != 0))
        return;
    char after[TR_NAME_MAX + 1];
    int has_after = token != NULL && token[0] != '\0';
    if (has_after && token_to_name(c, token, after, sizeof after) != 0) return;
    list_ctx l = {.w = &c->out, .now_ms = now_ms(), .limit = (int)max};
    tr_w_obj_begin(&c->out);
    tr_w_key(&c->out, "StreamInfoList");
    tr_w_arr_begin(&c->out);
    int rc = tr_video_list(c->video, has_after ? after : NULL, prefix, (int)max + 1, list_visit,
                           &l);
    tr_w_arr_end(&c->out);
    if (rc < 0) {
        kvs_fail(c, "InternalFailure", "Cannot list streams: %s", tr_strerror(rc));
        return;
    }
    if (l.more) {
        char next[NAME_TOKEN_MAX + 1];
        tr_base64_encode(l.last, strlen(l.last), next);
        tr_w_kstr(&c->out, "NextToken", next);
    }
    tr_w_obj_end(&c->out);
}

static void delete_stream(kvs_call *c) {
    const char *arn = NULL, *version = NULL;
    if (kvs_str(c, NULL, "StreamARN", "streamARN", 1, 1, 1024, &kvs_p_arn, &arn) != 0 ||
        kvs_str(c, NULL, "CurrentVersion", "currentVersion", 0, 1, 64, &kvs_p_version,
                &version) != 0)
        return;
    tr_video_err err;
    if (tr_video_delete(c->video, NULL, arn, version, &err) != 0) kvs_fail_video(c, &err);
}

static void update_stream(kvs_call *c) {
    const char *name, *arn, *version = NULL, *device = NULL, *media = NULL;
    if (kvs_stream_ids(c, &name, &arn) != 0 ||
        kvs_str(c, NULL, "CurrentVersion", "currentVersion", 1, 1, 64, &kvs_p_version,
                &version) != 0 ||
        kvs_str(c, NULL, "DeviceName", "deviceName", 0, 1, 128, &kvs_p_name, &device) != 0 ||
        kvs_str(c, NULL, "MediaType", "mediaType", 0, 1, 128, &kvs_p_media_type, &media) != 0)
        return;
    tr_video_err err;
    if (tr_video_update(c->video, name, arn, version, device, media, &err) != 0)
        kvs_fail_video(c, &err);
}

static const char *const retention_ops[] = {"INCREASE_DATA_RETENTION", "DECREASE_DATA_RETENTION",
                                            NULL};

static void update_data_retention(kvs_call *c) {
    const char *name, *arn, *version = NULL, *op = NULL;
    int64_t hours = 0;
    if (kvs_stream_ids(c, &name, &arn) != 0 ||
        kvs_str(c, NULL, "CurrentVersion", "currentVersion", 1, 1, 64, &kvs_p_version,
                &version) != 0 ||
        kvs_enum(c, NULL, "Operation", "operation", 1, retention_ops, &op) != 0 ||
        kvs_int(c, NULL, "DataRetentionChangeInHours", "dataRetentionChangeInHours", 1, 1,
                INT_MAX, &hours) != 0)
        return;
    tr_video_err err;
    int increase = strcmp(op, "INCREASE_DATA_RETENTION") == 0;
    if (tr_video_update_retention(c->video, name, arn, version, increase, (int)hours, &err) != 0)
        kvs_fail_video(c, &err);
}

static const char *const api_names[] = {
    "PUT_MEDIA", "GET_MEDIA", "LIST_FRAGMENTS", "GET_MEDIA_FOR_FRAGMENT_LIST",
    "GET_HLS_STREAMING_SESSION_URL", "GET_DASH_STREAMING_SESSION_URL", "GET_CLIP", "GET_IMAGES",
    NULL};

/* Every data-plane API is served on this server's one port. */
static void get_data_endpoint(kvs_call *c) {
    const char *api = NULL, *name, *arn;
    if (kvs_stream_ids(c, &name, &arn) != 0 ||
        kvs_enum(c, NULL, "APIName", "APIName", 1, api_names, &api) != 0)
        return;
    tr_video_stream *s = lookup(c, name, arn);
    if (s == NULL) return;
    tr_w_obj_begin(&c->out);
    tr_w_kstr(&c->out, "DataEndpoint", face(c)->data_endpoint);
    tr_w_obj_end(&c->out);
    tr_video_put(s);
}

static void tag_stream(kvs_call *c) {
    tag_input t;
    const char *name, *arn;
    if (kvs_stream_ids(c, &name, &arn) != 0 || tags_member(c, 0, &t) != 0) return;
    tr_video_stream *s = lookup(c, name, arn);
    if (s != NULL) apply_tags(c, s, &t);
    tr_video_put(s);
}

static void untag_stream(kvs_call *c) {
    tag_input t;
    const char *name, *arn;
    if (kvs_stream_ids(c, &name, &arn) != 0 || tag_keys(c, &t) != 0) return;
    tr_video_stream *s = lookup(c, name, arn);
    if (s != NULL) remove_tags(c, s, &t);
    tr_video_put(s);
}

static void list_tags_for_stream(kvs_call *c) {
    const char *name, *arn, *token = NULL;
    if (kvs_stream_ids(c, &name, &arn) != 0 || next_token(c, &token) != 0) return;
    tr_video_stream *s = lookup(c, name, arn);
    if (s != NULL) w_tags(c, s);
    tr_video_put(s);
}

static void tag_resource(kvs_call *c) {
    tag_input t;
    const char *arn = NULL;
    if (resource_arn(c, &arn) != 0 || tags_member(c, 1, &t) != 0) return;
    tr_video_stream *s = lookup(c, NULL, arn);
    if (s != NULL) apply_tags(c, s, &t);
    tr_video_put(s);
}

static void untag_resource(kvs_call *c) {
    tag_input t;
    const char *arn = NULL;
    if (resource_arn(c, &arn) != 0 || tag_keys(c, &t) != 0) return;
    tr_video_stream *s = lookup(c, NULL, arn);
    if (s != NULL) remove_tags(c, s, &t);
    tr_video_put(s);
}

static void list_tags_for_resource(kvs_call *c) {
    const char *arn = NULL, *token = NULL;
    if (resource_arn(c, &arn) != 0 || next_token(c, &token) != 0) return;
    tr_video_stream *s = lookup(c, NULL, arn);
    if (s != NULL) w_tags(c, s);
    tr_video_put(s);
}

/* ---- routes ---- */

static const kvs_op ops[] = {
    {"/createStream", create_stream},
    {"/describeStream", describe_stream},
    {"/listStreams", list_streams},
    {"/deleteStream", delete_stream},
    {"/updateStream", update_stream},
    {"/updateDataRetention", update_data_retention},
    {"/getDataEndpoint", get_data_endpoint},
    {"/tagStream", tag_stream},
    {"/untagStream", untag_stream},
    {"/listTagsForStream", list_tags_for_stream},
    {"/TagResource", tag_resource},
    {"/UntagResource", untag_resource},
    {"/ListTagsForResource", list_tags_for_resource},
};

static void on_request(tr_req *req, void *ctx) {
    tr_kvs_control *k = ctx;
    const char *path = tr_req_path(req);
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        if (strcmp(ops[i].path, path) == 0) {
            kvs_call_start(req, k->srv, k->video, k, &ops[i]);
            return;
        }
    }
    kvs_send_error(req, "UnknownOperationException", "Unknown operation");
}

static const tr_handler control_handler = {.on_request = on_request};

int tr_kvs_control_new(tr_server *srv, tr_video *video, const tr_kvs_control_config *cfg,
                       tr_kvs_control **out) {
    tr_kvs_control *k = calloc(1, sizeof *k);
    if (k == NULL) return TR_ENOMEM;
    k->srv = srv;
    k->video = video;
    k->data_endpoint = strdup(cfg != NULL && cfg->data_endpoint ? cfg->data_endpoint : "");
    if (k->data_endpoint == NULL) {
        free(k);
        return TR_ENOMEM;
    }
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        int rc = tr_router_add(tr_server_router(srv), "POST", ops[i].path, NULL,
                               &control_handler, k);
        if (rc != TR_OK) {
            tr_kvs_control_free(k);
            return rc;
        }
    }
    *out = k;
    return TR_OK;
}

void tr_kvs_control_free(tr_kvs_control *k) {
    if (k == NULL) return;
    free(k->data_endpoint);
    free(k);
}
