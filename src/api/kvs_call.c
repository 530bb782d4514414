/* REST-JSON calls of the Kinesis Video Streams faces: body parsing, the hand-off to a worker
 * and back, KVS's error answer, and input validation with the service model's constraints. */
#include "api/kvs_call.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "wire/reader.h"

#define JSON_TYPE "application/json"

/* ---- errors ---- */

static const struct {
    const char *type;
    int status;
} statuses[] = {
    {"ResourceNotFoundException", 404},
    {"NotAuthorizedException", 401},
    {"AccessDeniedException", 401},
    {"InternalFailure", 500},
    {"ServiceUnavailableException", 503},
};

int kvs_status_of(const char *type) {
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
        if (strcmp(statuses[i].type, type) == 0) return statuses[i].status;
    return 400;
}

void kvs_send_error(tr_req *req, const char *type, const char *message) {
    tr_writer w;
    tr_writer_init(&w, TR_WIRE_JSON);
    tr_w_obj_begin(&w);
    tr_w_kstr(&w, "Message", message);
    tr_w_obj_end(&w);
    size_t len = 0;
    uint8_t *body = tr_writer_take(&w, &len);
    tr_resp_header(req, "x-amzn-ErrorType", type);
    tr_resp_set_error_type(req, type);
    if (body == NULL)
        tr_resp_send(req, 500, JSON_TYPE, "{}", 2);
    else
        tr_resp_send(req, kvs_status_of(type), JSON_TYPE, body, len);
    free(body);
}

int kvs_fail(kvs_call *c, const char *type, const char *fmt, ...) {
    if (c->failed) return -1;
    c->failed = 1;
    c->status = kvs_status_of(type);
    c->err_type = type;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err_msg, sizeof c->err_msg, fmt, ap);
    va_end(ap);
    return -1;
}

int kvs_fail_video(kvs_call *c, const tr_video_err *e) {
    return kvs_fail(c, e->type, "%s", e->message);
}

int kvs_invalid(kvs_call *c, const char *value, const char *member, const char *constraint) {
    if (value == NULL)
        return kvs_fail(c, "InvalidArgumentException",
                        "1 validation error detected: Value null at '%s' failed to satisfy "
                        "constraint: %s",
                        member, constraint);
    return kvs_fail(c, "InvalidArgumentException",
                    "1 validation error detected: Value '%.300s' at '%s' failed to satisfy "
                    "constraint: %s",
                    value, member, constraint);
}

/* ---- the call ---- */

void kvs_call_release(kvs_call *c) {
    if (c->op_state_free != NULL) c->op_state_free(c->op_state);
    json_decref(c->in);
    tr_writer_free(&c->out);
    tr_req_unref(c->req);
    free(c);
}

static void finish(kvs_call *c) {
    if (c->failed) {
        kvs_send_error(c->req, c->err_type, c->err_msg);
    } else {
        size_t len = 0;
        uint8_t *body = tr_writer_take(&c->out, &len);
        if (body == NULL)
            kvs_send_error(c->req, "InternalFailure", "out of memory");
        else
            tr_resp_send(c->req, 200, JSON_TYPE, body, len);
        free(body);
    }
    kvs_call_release(c);
}

int kvs_authorize(tr_req *req, tr_video *video, const char *action, const char *name,
                  const char *arn, char *msg, size_t msg_len) {
    char resource[600] = "*";
    if (tr_req_principal(req) == NULL && tr_req_authorize(req, action, "*", msg, msg_len))
        return 0; /* no credentials configured: nothing to look up */
    if (name != NULL || arn != NULL) {
        tr_video_err err;
        tr_video_stream *s = tr_video_get(video, name, name ? NULL : arn, &err);
        const tr_video_config *cfg = tr_video_cfg(video);
        if (s != NULL)
            snprintf(resource, sizeof resource, "%s", s->arn);
        else if (name != NULL)
            snprintf(resource, sizeof resource, "arn:aws:kinesisvideo:%s:%s:stream/%.256s/*",
                     cfg->region, cfg->account, name);
        else
            snprintf(resource, sizeof resource, "%.512s", arn);
        tr_video_put(s);
    }
    return tr_req_authorize(req, action, resource, msg, msg_len) ? 0 : -1;
}

/* kinesisvideo:<Op> from the route ("/createStream" -> CreateStream) on the call's stream. */
static int authorize_call(kvs_call *c) {
    char action[96], msg[1024];
    const char *op = c->op->path + 1;
    snprintf(action, sizeof action, "kinesisvideo:%c%s",
             (op[0] >= 'a' && op[0] <= 'z') ? op[0] - 'a' + 'A' : op[0], op + 1);
    const char *name = json_string_value(json_object_get(c->in, "StreamName"));
    const char *arn = json_string_value(json_object_get(c->in, "StreamARN"));
    if (arn == NULL) arn = json_string_value(json_object_get(c->in, "ResourceARN"));
    if (kvs_authorize(c->req, c->video, action, name, arn, msg, sizeof msg) == 0) return 0;
    return kvs_fail(c, "NotAuthorizedException", "%s", msg);
}

static void run_on_worker(tr_work *w) {
    kvs_call *c = (kvs_call *)w;
    if (authorize_call(c) != 0) return;
    c->op->fn(c);
    /* An operation that recorded nothing still answers a JSON object. */
    if (!c->failed && c->answer == NULL && c->out.len == 0) {
        tr_w_obj_begin(&c->out);
        tr_w_obj_end(&c->out);
    }
}

static void done_on_loop(tr_task *t) {
    kvs_call *c = (kvs_call *)((char *)t - offsetof(tr_work, done));
    if (c->answer != NULL && !c->failed)
        c->answer(c);
    else
        finish(c);
}

void kvs_call_start(tr_req *req, tr_server *srv, tr_video *video, void *face,
                    const kvs_op *op) {
    size_t len = 0;
    const uint8_t *body = tr_req_body(req, &len);
    char err[256];
    json_t *in = tr_wire_parse(TR_WIRE_JSON, body, len, err, sizeof err);
    if (in == NULL || !json_is_object(in)) {
        json_decref(in);
        kvs_send_error(req, "SerializationException",
                       in == NULL ? err : "The request body is not a JSON object");
        return;
    }
    kvs_call *c = calloc(1, sizeof *c);
    if (c == NULL) {
        json_decref(in);
        kvs_send_error(req, "InternalFailure", "out of memory");
        return;
    }
    c->req = req;
    tr_req_ref(req);
    c->video = video;
    c->face = face;
    c->op = op;
    c->in = in;
    tr_writer_init(&c->out, TR_WIRE_JSON);
    c->work.run = run_on_worker;
    c->work.done.fn = done_on_loop;
    if (tr_workpool_submit(tr_server_workpool(srv), &c->work) != TR_OK) {
        kvs_fail(c, "ServiceUnavailableException", "The server is shutting down");
        finish(c);
    }
}

/* ---- patterns ---- */

static int is_alnum(int ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}
static int is_name_ch(int ch) { return is_alnum(ch) || ch == '_' || ch == '.' || ch == '-'; }
static int is_media_ch(int ch) { return is_name_ch(ch) || ch == '+'; }
static int is_lower_digit_dash(int ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-';
}
static int is_lower(int ch) { return ch >= 'a' && ch <= 'z'; }
static int is_digit(int ch) { return ch >= '0' && ch <= '9'; }
static int is_token_ch(int ch) { return is_alnum(ch) || ch == '+' || ch == '/' || ch == '='; }

/* How many characters of class cls start at *p; advances *p past them. */
static size_t span(const char **p, const char *end, int (*cls)(int)) {
    const char *s = *p;
    while (*p < end && cls((unsigned char)**p)) (*p)++;
    return (size_t)(*p - s);
}

static int expect(const char **p, const char *end, const char *lit) {
    size_t n = strlen(lit);
    if ((size_t)(end - *p) < n || memcmp(*p, lit, n) != 0) return 0;
    *p += n;
    return 1;
}

static int all_of(const char *s, size_t len, int (*cls)(int)) {
    const char *p = s;
    return span(&p, s + len, cls) == len;
}

static int match_name(const char *s, size_t len) { return len > 0 && all_of(s, len, is_name_ch); }
static int match_version(const char *s, size_t len) { return len > 0 && all_of(s, len, is_alnum); }
static int match_token(const char *s, size_t len) { return all_of(s, len, is_token_ch); }

/* [\w\-\.\+]+/[\w\-\.\+]+(,[\w\-\.\+]+/[\w\-\.\+]+)* */
static int match_media_type(const char *s, size_t len) {
    const char *p = s, *end = s + len;
    do {
        if (span(&p, end, is_media_ch) == 0 || !expect(&p, end, "/") ||
            span(&p, end, is_media_ch) == 0)
            return 0;
    } while (expect(&p, end, ","));
    return p == end;
}

/* arn:[a-z\d-]+:kinesisvideo:[a-z0-9-]+:[0-9]+:[a-z]+/[a-zA-Z0-9_.-]+/[0-9]+ */
static int match_arn(const char *s, size_t len) {
    const char *p = s, *end = s + len;
    return expect(&p, end, "arn:") && span(&p, end, is_lower_digit_dash) > 0 &&
           expect(&p, end, ":kinesisvideo:") && span(&p, end, is_lower_digit_dash) > 0 &&
           expect(&p, end, ":") && span(&p, end, is_digit) > 0 && expect(&p, end, ":") &&
           span(&p, end, is_lower) > 0 && expect(&p, end, "/") &&
           span(&p, end, is_name_ch) > 0 && expect(&p, end, "/") &&
           span(&p, end, is_digit) > 0 && p == end;
}

/* [\p{L}\p{Z}\p{N}_.:/=+\-@]*: ASCII is checked exactly; other characters are letters,
 * separators or numbers often enough that they are let through. */
static int is_tag_ch(int ch) {
    return ch >= 0x80 || is_alnum(ch) || ch == ' ' || ch == '_' || ch == '.' || ch == ':' ||
           ch == '/' || ch == '=' || ch == '+' || ch == '-' || ch == '@';
}
static int match_tag(const char *s, size_t len) { return all_of(s, len, is_tag_ch); }

static int match_any(const char *s, size_t len) {
    return len > 0 && memchr(s, '\n', len) == NULL && memchr(s, '\r', len) == NULL;
}

const kvs_pattern kvs_p_name = {match_name, "[a-zA-Z0-9_.-]+"};
const kvs_pattern kvs_p_media_type = {
    match_media_type, "[\\w\\-\\.\\+]+/[\\w\\-\\.\\+]+(,[\\w\\-\\.\\+]+/[\\w\\-\\.\\+]+)*"};
const kvs_pattern kvs_p_version = {match_version, "[a-zA-Z0-9]+"};
const kvs_pattern kvs_p_arn = {
    match_arn,
    "arn:[a-z\\d-]+:kinesisvideo:[a-z0-9-]+:[0-9]+:[a-z]+/[a-zA-Z0-9_.-]+/[0-9]+"};
const kvs_pattern kvs_p_tag = {match_tag, "[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*"};
const kvs_pattern kvs_p_token = {match_token, "[a-zA-Z0-9+/=]*"};
const kvs_pattern kvs_p_any = {match_any, ".+"};

/* ---- input members ---- */

static size_t utf8_chars(const char *s, size_t len) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++) n += ((unsigned char)s[i] & 0xc0) != 0x80;
    return n;
}

static int wrong_type(kvs_call *c, const char *key) {
    return kvs_fail(c, "SerializationException", "Unexpected value type for member %s", key);
}

/* The member's value, NULL when absent or null; required members fail when absent. */
static json_t *member_of(kvs_call *c, json_t *obj, const char *key, const char *member,
                         int required, int *rc) {
    json_t *v = json_object_get(obj ? obj : c->in, key);
    *rc = 0;
    if (v != NULL && !json_is_null(v)) return v;
    if (required) *rc = kvs_invalid(c, NULL, member, "Member must not be null");
    return NULL;
}

int kvs_str(kvs_call *c, json_t *obj, const char *key, const char *member, int required,
            size_t min, size_t max, const kvs_pattern *pattern, const char **out) {
    int rc;
    json_t *v = member_of(c, obj, key, member, required, &rc);
    if (v == NULL) return rc;
    if (!json_is_string(v)) return wrong_type(c, key);
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    size_t n = utf8_chars(s, len);
    char constraint[200];
    if (n < min || n > max) {
        snprintf(constraint, sizeof constraint, "Member must have length %s than or equal to %zu",
                 n < min ? "greater" : "less", n < min ? min : max);
        return kvs_invalid(c, s, member, constraint);
    }
    if (pattern != NULL && (memchr(s, '\0', len) != NULL || !pattern->match(s, len))) {
        snprintf(constraint, sizeof constraint,
                 "Member must satisfy regular expression pattern: %s", pattern->text);
        return kvs_invalid(c, s, member, constraint);
    }
    *out = s;
    return 0;
}

int kvs_int(kvs_call *c, json_t *obj, const char *key, const char *member, int required,
            int64_t min, int64_t max, int64_t *out) {
    int rc;
    json_t *v = member_of(c, obj, key, member, required, &rc);
    if (v == NULL) return rc;
    if (!json_is_integer(v)) return wrong_type(c, key);
    int64_t x = (int64_t)json_integer_value(v);
    if (x < min || x > max) {
        char value[32], constraint[96];
        snprintf(value, sizeof value, "%lld", (long long)x);
        snprintf(constraint, sizeof constraint,
                 "Member must have value %s than or equal to %lld", x < min ? "greater" : "less",
                 (long long)(x < min ? min : max));
        return kvs_invalid(c, value, member, constraint);
    }
    *out = x;
    return 0;
}

int kvs_enum(kvs_call *c, json_t *obj, const char *key, const char *member, int required,
             const char *const *values, const char **out) {
    const char *s = NULL;
    if (kvs_str(c, obj, key, member, required, 0, SIZE_MAX, NULL, &s) != 0 || s == NULL)
        return c->failed ? -1 : 0;
    char constraint[512] = "Member must satisfy enum value set: [";
    for (size_t i = 0; values[i] != NULL; i++) {
        if (strcmp(values[i], s) == 0) {
            *out = s;
            return 0;
        }
        size_t used = strlen(constraint);
        snprintf(constraint + used, sizeof constraint - used, "%s%s", i ? ", " : "", values[i]);
    }
    size_t used = strlen(constraint);
    snprintf(constraint + used, sizeof constraint - used, "]");
    return kvs_invalid(c, s, member, constraint);
}

int kvs_obj(kvs_call *c, const char *key, const char *member, int required, json_t **out) {
    int rc;
    json_t *v = member_of(c, NULL, key, member, required, &rc);
    if (v == NULL) return rc;
    if (!json_is_object(v)) return wrong_type(c, key);
    *out = v;
    return 0;
}

int kvs_stream_ids(kvs_call *c, const char **name, const char **arn) {
    *name = *arn = NULL;
    if (kvs_str(c, NULL, "StreamName", "streamName", 0, 1, 256, &kvs_p_name, name) != 0 ||
        kvs_str(c, NULL, "StreamARN", "streamARN", 0, 1, 1024, &kvs_p_arn, arn) != 0)
        return -1;
    if (*name == NULL && *arn == NULL)
        return kvs_fail(c, "InvalidArgumentException",
                        "Either StreamName or StreamARN must be provided.");
    return 0;
}

tr_video_stream *kvs_stream(kvs_call *c) {
    const char *name, *arn;
    if (kvs_stream_ids(c, &name, &arn) != 0) return NULL;
    tr_video_err err;
    tr_video_stream *s = tr_video_get(c->video, name, arn, &err);
    if (s == NULL) kvs_fail_video(c, &err);
    return s;
}
