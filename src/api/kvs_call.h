/* Private to src/api/kvs_*.c: one REST-JSON call of a Kinesis Video Streams face in flight
 * (parsed body, answer, error), its hand-off to a worker and back to the loop, the input
 * accessors that validate as KVS does, and KVS's error answer.
 *
 * KVS errors are `x-amzn-ErrorType: <Type>` plus `{"Message": "..."}`, with the HTTP status
 * the service model gives the type (kvs_status_of: one table). */
#ifndef TR_API_KVS_CALL_H
#define TR_API_KVS_CALL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "net/http.h"
#include "net/server.h"
#include "util/workpool.h"
#include "video/streams.h"
#include "wire/writer.h"

typedef struct kvs_call kvs_call;

typedef struct kvs_op {
    const char *path;          /* "/createStream": the route and the operation */
    void (*fn)(kvs_call *c);   /* runs on a worker; fills c->out or records an error */
} kvs_op;

struct kvs_call {
    tr_work work;              /* the worker job; work.done answers on the loop */
    tr_req *req;               /* referenced until the answer */
    tr_video *video;
    void *face;                /* the face that started the call */
    const kvs_op *op;
    json_t *in;                /* the parsed body: always an object */
    tr_writer out;             /* the answer's JSON body, when no error */
    int failed;
    int status;                /* HTTP status of the error */
    const char *err_type;
    char err_msg[1024];
    /* Set by an operation that answers with a stream (GetMedia): runs on the loop instead of
     * the plain answer when there is no error, and must end with kvs_call_release. */
    void (*answer)(kvs_call *c);
    void *op_state;            /* the operation's own state, freed with the call */
    void (*op_state_free)(void *state);
};

/* Frees the call without answering (an `answer` hook answered by other means). */
void kvs_call_release(kvs_call *c);

/* Parses the request's JSON body and runs op->fn on the server's worker pool; the answer is
 * sent on the loop. Loop thread only (an on_request handler). */
void kvs_call_start(tr_req *req, tr_server *srv, tr_video *video, void *face,
                    const kvs_op *op);

/* HTTP status of a KVS error type (ResourceNotFoundException 404, NotAuthorizedException 401,
 * InternalFailure 500, ...; 400 for the rest). */
int kvs_status_of(const char *type);
/* Sends a KVS error answer. Loop thread only. */
void kvs_send_error(tr_req *req, const char *type, const char *message);

/* Authorization (docs/security.md): whether the request's principal may perform action
 * ("kinesisvideo:PutMedia") on the stream that name or arn select: its ARN when it exists,
 * else arn:aws:kinesisvideo:<region>:<account>:stream/<name>/ and a star (CreateStream), or "*" when
 * both are NULL. Returns 0, or -1 with AWS's message for NotAuthorizedException in msg. Any
 * thread. */
int kvs_authorize(tr_req *req, tr_video *video, const char *action, const char *name,
                  const char *arn, char *msg, size_t msg_len);

/* Records an error (the first one wins); returns -1 so callers can `return kvs_fail(...)`. */
int kvs_fail(kvs_call *c, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int kvs_fail_video(kvs_call *c, const tr_video_err *e);
/* InvalidArgumentException "1 validation error detected: Value '...' at 'member' failed to
 * satisfy constraint: ..." (value NULL: "Value null"). */
int kvs_invalid(kvs_call *c, const char *value, const char *member, const char *constraint);

/* A pattern of the service model, checked by hand. */
typedef struct kvs_pattern {
    int (*match)(const char *s, size_t len);
    const char *text;          /* as the model writes it, for the message */
} kvs_pattern;

extern const kvs_pattern kvs_p_name;       /* StreamName, DeviceName: [a-zA-Z0-9_.-]+ */
extern const kvs_pattern kvs_p_media_type; /* video/h264,audio/aac */
extern const kvs_pattern kvs_p_version;    /* [a-zA-Z0-9]+ */
extern const kvs_pattern kvs_p_arn;        /* arn:aws:kinesisvideo:R:A:stream/<name>/<ms> */
extern const kvs_pattern kvs_p_tag;        /* TagKey, TagValue */
extern const kvs_pattern kvs_p_token;      /* NextToken: [a-zA-Z0-9+/=]* */
extern const kvs_pattern kvs_p_any;        /* .+ */

/* ---- input members; each returns 0, or -1 with the error recorded ----
 * obj is the object holding the member (NULL: the body); `key` is the member as sent
 * (StreamName), `member` as KVS names it in messages (streamName). A missing optional member
 * leaves *out untouched and returns 0. Lengths count characters. pattern may be NULL. */
int kvs_str(kvs_call *c, json_t *obj, const char *key, const char *member, int required,
            size_t min, size_t max, const kvs_pattern *pattern, const char **out);
int kvs_int(kvs_call *c, json_t *obj, const char *key, const char *member, int required,
            int64_t min, int64_t max, int64_t *out);
/* One of the NULL-terminated values. */
int kvs_enum(kvs_call *c, json_t *obj, const char *key, const char *member, int required,
             const char *const *values, const char **out);
/* An object member (NULL when absent). */
int kvs_obj(kvs_call *c, const char *key, const char *member, int required, json_t **out);
/* StreamName or StreamARN (at least one), checked. */
int kvs_stream_ids(kvs_call *c, const char **name, const char **arn);
/* The stream StreamName / StreamARN names: a referenced snapshot, or NULL with the error
 * recorded (ResourceNotFoundException). */
tr_video_stream *kvs_stream(kvs_call *c);

#endif
