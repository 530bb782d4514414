/* Private to src/api/kinesis*.c: one API call in flight, the input accessors that validate
 * as AWS does, and the operations' entry points. */
#ifndef TR_API_KINESIS_CALL_H
#define TR_API_KINESIS_CALL_H

#include <jansson.h>
#include <stdint.h>

#include "api/kinesis.h"
#include "data/streams.h"
#include "net/http.h"
#include "net/server.h"
#include "util/workpool.h"
#include "wire/put_records.h"
#include "wire/reader.h"
#include "wire/writer.h"

struct tr_feeds;

struct tr_kinesis {
    tr_server *srv;
    tr_data *data;
    tr_kinesis_config cfg;
    struct tr_feeds *feeds;         /* SubscribeToShard's event streams */
    struct kin_limits *limits;      /* NULL unless --limits aws */
};

/* A record refused by --limits aws (a status beside the tr_err codes). */
#define KIN_THROTTLED 1000

/* Records in one PutRecords call. */
#define KIN_MAX_PUT_RECORDS 500

typedef struct kin_call kin_call;

/* An operation runs on a worker (it may block: disk reads, the control plane). One that
 * starts asynchronous work (puts) sets the call's answer hook and answers from its
 * completion. */
typedef struct kin_op {
    const char *name;
    void (*fn)(kin_call *c);
} kin_op;

struct kin_call {
    tr_work work;              /* the worker job; work.done answers on the loop */
    tr_req *req;               /* referenced until the answer */
    tr_kinesis *k;
    const kin_op *op;
    tr_wire_format fmt;
    const uint8_t *body;       /* the request body (the request's, read-only) */
    size_t body_len;
    json_t *in;                /* the parsed body (parsed on the worker) */
    /* A PutRecords body in JSON read without a tree (wire/put_records.h): then `in` holds
     * only its StreamName and StreamARN, and the records are here. */
    int scanned;
    tr_put_body put_body;
    /* A GetRecords tried on the loop (on_loop) reads nothing there: when there are records
     * to read it sets to_worker, having changed nothing, and the worker starts over. */
    int on_loop;
    int to_worker;
    tr_writer out;             /* the answer's body, when no error */
    int failed;
    int status;                /* HTTP status of an error */
    const char *err_type;
    char err_msg[1024];
    void *op_state;            /* an asynchronous operation's own state */
    void (*op_state_free)(void *state);
    /* Set by a worker operation that answers by other means (SubscribeToShard's stream, a
     * put's completion): runs on the loop instead of the plain answer when there is no
     * error, and sees the call through to kin_finish or kin_release. */
    void (*answer)(kin_call *c);
};

int64_t kin_now_ms(void);

/* Records an AWS error; the first one wins. Returns -1 so callers can `return kin_fail(...)`. */
int kin_fail(kin_call *c, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int kin_fail_data(kin_call *c, const tr_data_err *e);
/* "1 validation error detected: Value ... at 'member' failed to satisfy constraint: ..." */
int kin_invalid(kin_call *c, const char *value, const char *member, const char *constraint);
/* The same for a value of `len` bytes that need not be NUL-terminated (quoted up to its
 * first NUL, as kin_invalid quotes a C string). */
int kin_invalidn(kin_call *c, const char *value, size_t len, const char *member,
                 const char *constraint);

/* Sends the answer (error or c->out) and frees the call. Loop thread only. */
void kin_finish(kin_call *c);
/* Whether the request's principal may call this operation (kinesis:<Op>) on resource (an
 * ARN or "*"): 0, or -1 with AccessDeniedException recorded. Worker thread. */
int kin_authorize(kin_call *c, const char *resource);
/* Frees the call without answering (the operation answers by other means). */
void kin_release(kin_call *c);

/* Whether a string holds UTF-8 text. JSON strings always do; in a CBOR request a byte string
 * reads as a string too and may hold anything, and stored text must stay UTF-8 or every JSON
 * answer that carries it fails to decode in the SDKs. */
int kin_is_text(const char *s, size_t len);
/* Characters (code points) of UTF-8 text: AWS's lengths count characters. */
size_t kin_utf8_chars(const char *s, size_t len);

/* ---- input members; each returns 0, or -1 with the error recorded ----
 * `key` is the member as sent (StreamName), `member` as AWS names it in messages
 * (streamName). A missing optional member leaves *out untouched and returns 0. */
/* kin_str refuses a string that is not UTF-8 text (SerializationException). */
int kin_str(kin_call *c, const char *key, const char *member, int required, size_t min,
            size_t max, const char **out);
int kin_int(kin_call *c, const char *key, const char *member, int required, int64_t min,
            int64_t max, int64_t *out);
int kin_time(kin_call *c, json_t *obj, const char *key, int64_t *ms, int *present);
int kin_bool(kin_call *c, const char *key, int *out);
/* StreamName (pattern checked) or StreamARN; at least one is required. Returns a referenced
 * stream or NULL with the error recorded. */
tr_data_stream *kin_stream(kin_call *c);
/* Checks a stream name against AWS's pattern and length. */
int kin_check_stream_name(kin_call *c, const char *name, const char *member);
/* The open-or-closed shard by id; NULL with ResourceNotFoundException recorded. */
const tr_data_shard *kin_shard(kin_call *c, const tr_data_stream *s, const char *key,
                               const char *member);

/* Output helpers shared by operations. */
void kin_w_shard(kin_call *c, const tr_data_stream *s, const tr_data_shard *sh);
void kin_w_seq(tr_writer *w, const char *key, const tr_data_stream *s, uint32_t shard_index,
               uint64_t seq);
void kin_w_mode(kin_call *c, const tr_data_stream *s);
void kin_w_monitoring(kin_call *c, uint32_t mask);

/* kinesis_streams.c: the control plane. */
void kin_create_stream(kin_call *c);
void kin_delete_stream(kin_call *c);
void kin_describe_stream(kin_call *c);
void kin_describe_stream_summary(kin_call *c);
void kin_list_streams(kin_call *c);
void kin_list_shards(kin_call *c);
void kin_increase_retention(kin_call *c);
void kin_decrease_retention(kin_call *c);
void kin_split_shard(kin_call *c);
void kin_merge_shards(kin_call *c);
void kin_update_shard_count(kin_call *c);
void kin_start_encryption(kin_call *c);
void kin_stop_encryption(kin_call *c);
void kin_enable_monitoring(kin_call *c);
void kin_disable_monitoring(kin_call *c);
void kin_update_max_record_size(kin_call *c);
void kin_update_stream_mode(kin_call *c);
void kin_describe_limits(kin_call *c);

/* kinesis_tags.c */
#define KIN_MAX_TAGS 50
/* Sets tags from a {key: value} map (CreateStream, AddTagsToStream, TagResource) in one
 * transaction; more than KIN_MAX_TAGS in all fails and changes nothing. */
int kin_apply_tags(kin_call *c, tr_data_stream *s, json_t *tags);
void kin_add_tags(kin_call *c);
void kin_remove_tags(kin_call *c);
void kin_list_tags(kin_call *c);
void kin_tag_resource(kin_call *c);
void kin_untag_resource(kin_call *c);
void kin_list_tags_for_resource(kin_call *c);

/* kinesis_consumers.c */
struct tr_data_consumer;
/* The consumer named by ConsumerARN, or StreamARN + ConsumerName; *s (if not NULL) receives a
 * referenced stream. Returns 0 or -1 with the error recorded. */
int kin_consumer(kin_call *c, struct tr_data_consumer *x, tr_data_stream **s);
void kin_register_consumer(kin_call *c);
void kin_describe_consumer(kin_call *c);
void kin_deregister_consumer(kin_call *c);
void kin_list_consumers(kin_call *c);

/* kinesis_records.c: the data plane. */
void kin_put_record(kin_call *c);
void kin_put_records(kin_call *c);
void kin_get_shard_iterator(kin_call *c);
void kin_get_records(kin_call *c);
/* GetRecords' and SubscribeToShard events' members: the records of a batch, the children of
 * a closed shard, and how far the batch is behind the newest record. */
struct tr_read_batch;
void kin_w_records(tr_writer *w, const tr_data_stream *s, uint32_t shard_index,
                   const struct tr_read_batch *b);
void kin_w_child_shards(tr_writer *w, const tr_data_stream *s, const tr_data_shard *sh);
int64_t kin_millis_behind(const tr_data_shard *sh, const struct tr_read_batch *b);
/* The core sequence number a starting position names: `type` is one of the five iterator
 * types; `seq_text` and `ts` are used by the types that need them (NULL / absent otherwise).
 * Returns 0 or -1 with the error recorded. */
int kin_position(kin_call *c, const tr_data_stream *s, const tr_data_shard *sh,
                 const char *type, const char *type_member, const char *seq_text,
                 const int64_t *ts_ms, uint64_t *seq);

/* kinesis_crypto.c: records at rest. kin_seal_records seals the records of an encrypted
 * stream (owned[i] takes each sealed buffer); kin_open_records opens a read batch's sealed
 * records in place. They return 0 / TR_OK, or an error (recorded, for the seal). */
struct tr_kms;
int kin_seal_records(kin_call *c, const tr_data_stream *s, tr_record_in *recs, uint8_t **owned,
                     size_t n);
int kin_open_records(struct tr_kms *kms, const tr_data_stream *s, struct tr_read_batch *b);
/* The Kinesis error name of a key service failure (KMSDisabledException, ...). */
const char *kin_kms_error_type(int rc);
int kin_kms_fail(kin_call *c, int rc, const char *key_id);

/* kinesis_subscribe.c: SubscribeToShard, a feed (api/feed.h). */
void kin_subscribe(kin_call *c);


#endif
