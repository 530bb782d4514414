/* The Data Streams data plane: PutRecord and PutRecords (routed by hash key, appended with
 * group commit, answered from the storage completion on the loop), GetShardIterator and
 * GetRecords (on a worker: they read the disk). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/kinesis_call.h"
#include "api/kinesis_limits.h"
#include "core/shard.h"
#include "data/iterator.h"
#include "data/seqnum.h"
#include "util/error.h"

#define MAX_PUT_RECORDS_BYTES (5u * 1024 * 1024)
#define MAX_GET_RECORDS 10000
#define MAX_GET_BYTES (10u * 1024 * 1024)
#define MAX_PARTITION_KEY 256
#define MAX_PUT_REROUTES 3

/* ---- puts ---- */

typedef struct put_state put_state;

/* The records of one request that go to one shard: one append, consecutive sequence
 * numbers in request order. */
typedef struct put_group {
    put_state *p;
    const tr_data_shard *shard;
    size_t *members;      /* request positions */
    tr_record_in *recs;
    size_t n;
} put_group;

struct put_state {
    kin_call *c;
    tr_data_stream *s;
    int batch;            /* PutRecords (per-record results) rather than PutRecord */
    size_t n;
    tr_record_in *recs;   /* request order */
    uint8_t **owned;      /* decoded blobs */
    const tr_data_shard **shard;
    tr_hashkey *hk;       /* each record's hash key, to route it again */
    uint8_t *to_append;        /* records the next put_start appends */
    uint64_t *seq;
    int *status;
    put_group *groups;
    size_t ngroups;
    int reroutes;
    int gone;             /* the stream was deleted while records were rerouted */
    atomic_size_t pending;
    tr_task task;
};

static void free_groups(put_state *p) {
    for (size_t g = 0; p->groups != NULL && g < p->ngroups; g++) {
        free(p->groups[g].members);
        free(p->groups[g].recs);
    }
    if (p->groups != NULL) memset(p->groups, 0, p->n * sizeof *p->groups);
    p->ngroups = 0;
}

static void put_state_free(void *arg) {
    put_state *p = arg;
    if (p == NULL) return;
    for (size_t i = 0; p->owned != NULL && i < p->n; i++) free(p->owned[i]);
    free_groups(p);
    free(p->groups);
    free(p->owned);
    free(p->recs);
    free(p->shard);
    free(p->hk);
    free(p->to_append);
    free(p->seq);
    free(p->status);
    tr_data_put(p->s);
    free(p);
}

static put_state *put_state_new(kin_call *c, tr_data_stream *s, size_t n, int batch) {
    put_state *p = calloc(1, sizeof *p);
    if (p == NULL) return NULL;
    c->op_state = p;
    c->op_state_free = put_state_free;
    p->c = c;
    p->s = s;
    p->batch = batch;
    p->n = n;
    p->recs = calloc(n, sizeof *p->recs);
    p->owned = calloc(n, sizeof *p->owned);
    p->shard = calloc(n, sizeof *p->shard);
    p->hk = calloc(n, sizeof *p->hk);
    p->to_append = calloc(n, sizeof *p->to_append);
    p->seq = calloc(n, sizeof *p->seq);
    p->status = calloc(n, sizeof *p->status);
    p->groups = calloc(n, sizeof *p->groups);
    if (!p->recs || !p->owned || !p->shard || !p->hk || !p->to_append || !p->seq || !p->status ||
        !p->groups)
        return NULL;
    return p;
}

/* "records.<pos>.member.<name>" as AWS names a PutRecords member in messages, or just
 * <name> for PutRecord (pos 0). Built only when a message needs it: formatting it for every
 * record cost ~2% of a PutRecords call. */
static const char *member_name(char *buf, size_t cap, size_t pos, const char *name) {
    if (pos == 0) snprintf(buf, cap, "%s", name);
    else snprintf(buf, cap, "records.%zu.member.%s", pos, name);
    return buf;
}

/* Validates one record's members (named as member `pos` of the request's records, 0 for
 * PutRecord) and routes it. The members come from the body's tree or, for most PutRecords
 * bodies in JSON, straight from its text (wire/put_records.h): either way they are checked
 * here, so both give the same answers. */
static int read_record(kin_call *c, put_state *p, size_t i, const tr_put_rec *r, size_t pos) {
    char member[64];
    if (r->data_state == TR_PUT_ABSENT) {
        return kin_invalid(c, NULL, member_name(member, sizeof member, pos, "data"),
                           "Member must not be null");
    }
    if (r->pkey_state == TR_PUT_ABSENT) {
        return kin_invalid(c, NULL, member_name(member, sizeof member, pos, "partitionKey"),
                           "Member must not be null");
    }
    if (r->data_state != TR_PUT_VALUE)
        return kin_fail(c, 400, "SerializationException", "Data is not a valid blob");
    size_t len = r->data_len;
    size_t max = (size_t)p->s->max_record_kib * 1024;
    if (len > max) {
        char constraint[80];
        member_name(member, sizeof member, pos, "data");
        snprintf(constraint, sizeof constraint, "Member must have length less than or equal to %zu",
                 max);
        return kin_fail(c, 400, "ValidationException",
                        "1 validation error detected: Value at '%s' failed to satisfy "
                        "constraint: %s",
                        member, constraint);
    }
    const char *key = r->pkey;
    size_t klen = r->pkey_len;
    if (r->pkey_state != TR_PUT_VALUE || !kin_is_text(key, klen))
        return kin_fail(c, 400, "SerializationException", "PartitionKey must be a text string");
    size_t kchars = kin_utf8_chars(key, klen); /* AWS counts characters */
    if (kchars < 1 || kchars > MAX_PARTITION_KEY)
        return kin_invalidn(c, key, klen, member_name(member, sizeof member, pos, "partitionKey"),
                            kchars < 1 ? "Member must have length greater than or equal to 1"
                                       : "Member must have length less than or equal to 256");
    tr_hashkey hk;
    const char *ehk_s = NULL;
    if (r->ehk_state != TR_PUT_ABSENT) {
        ehk_s = r->ehk_state == TR_PUT_VALUE ? r->ehk : "";
        size_t ehk_len = r->ehk_state == TR_PUT_VALUE ? r->ehk_len : 0;
        if (r->ehk_state != TR_PUT_VALUE || tr_hashkey_parse(ehk_s, ehk_len, &hk) != 0)
            return kin_invalidn(c, ehk_s, ehk_len,
                                member_name(member, sizeof member, pos, "explicitHashKey"),
                                "Member must satisfy regular expression pattern: "
                                "0|([1-9]\\d{0,38})");
    } else {
        hk = tr_hashkey_of_partition_key(key, klen);
    }
    p->recs[i] = (tr_record_in){.producer_ms = TR_NO_TIME, .flags = 0,
                                .pkey = key, .pkey_len = (uint32_t)klen,
                                .ehk = ehk_s, .ehk_len = ehk_s ? (uint32_t)r->ehk_len : 0,
                                .data = r->data, .data_len = (uint32_t)len};
    p->hk[i] = hk;
    p->to_append[i] = 1;
    p->shard[i] = tr_data_route(p->s, hk);
    if (p->shard[i] == NULL)
        p->status[i] = TR_ECLOSED; /* mid-reshard: routed again */
    else if (c->k->limits != NULL && !kin_limits_write(c->k->limits, p->shard[i]->uid, len + klen))
        p->status[i] = KIN_THROTTLED;
    return 0;
}

/* Reads a record object of the body's tree (its decoded data kept with the call). */
static int read_tree_record(kin_call *c, put_state *p, size_t i, json_t *rec, size_t pos) {
    tr_put_rec r;
    tr_put_rec_from_tree(c->fmt, rec, &r, &p->owned[i]);
    return read_record(c, p, i, &r, pos);
}

static void throttled_message(kin_call *c, const put_state *p, size_t i, char *msg,
                              size_t len) {
    snprintf(msg, len, "Rate exceeded for shard %s in stream %s under account %s.",
             p->shard[i]->id, p->s->name, tr_data_cfg(c->k->data)->account);
}

static void w_error_of(kin_call *c, const put_state *p, size_t i) {
    int status = p->status[i];
    if (status == KIN_THROTTLED) {
        char msg[400];
        throttled_message(c, p, i, msg, sizeof msg);
        tr_w_kstr(&c->out, "ErrorCode", "ProvisionedThroughputExceededException");
        tr_w_kstr(&c->out, "ErrorMessage", msg);
        return;
    }
    tr_w_kstr(&c->out, "ErrorCode", "InternalFailure");
    char msg[160];
    snprintf(msg, sizeof msg, "Internal service failure: %s", tr_strerror(status));
    tr_w_kstr(&c->out, "ErrorMessage", msg);
}

/* Writes v as exactly `width` decimal digits (v < 10^width). */
static void fixed_digits(char *out, int width, uint64_t v) {
    for (int i = width - 1; i >= 0; i--) {
        out[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

/* tr_seqnum_format's digits without snprintf, which was ~6% of a PutRecords call: the
 * stream's part is formatted once per answer (`digits` holds it), the rest per record. */
static void put_seq_prefix(const tr_data_stream *s, char *digits) {
    digits[0] = '4';
    digits[1] = '9';
    fixed_digits(digits + 2, 16, (uint64_t)s->id % 10000000000000000ull);
    digits[TR_SEQNUM_DIGITS] = '\0';
}

static void put_w_seq(tr_writer *w, char *digits, uint32_t shard_index, uint64_t seq) {
    fixed_digits(digits + 18, 18, shard_index);
    fixed_digits(digits + 36, 20, seq);
    tr_w_kstr(w, "SequenceNumber", digits);
}

/* A stored record's result in JSON, {"SequenceNumber":"<56 digits>","ShardId":"<id>"},
 * written as the writer would but from a template per shard: the writer's general path
 * (separators, escaping, key by key) cost more than the rest of the answer. */
#define PUT_TMPL_MAX 16
#define PUT_TMPL_SEQ_AT 19 /* {"SequenceNumber":" */
typedef struct put_tmpl {
    const tr_data_shard *shard;
    char text[128];
    size_t len;
} put_tmpl;

/* 0 when written; -1 when the generic writer must do it (no template to be had). */
static int put_w_json_result(tr_writer *w, put_tmpl *t, size_t *nt, char *digits,
                             const tr_data_shard *sh, uint64_t seq) {
    put_tmpl *x = NULL;
    for (size_t k = 0; k < *nt && x == NULL; k++)
        if (t[k].shard == sh) x = &t[k];
    if (x == NULL) {
        size_t idlen = strlen(sh->id);
        if (*nt == PUT_TMPL_MAX || idlen > 40) return -1;
        for (size_t k = 0; k < idlen; k++) /* ids are shardId-<digits>: nothing to escape */
            if (sh->id[k] == '"' || sh->id[k] == '\\' || (unsigned char)sh->id[k] < 0x20)
                return -1;
        x = &t[(*nt)++];
        x->shard = sh;
        fixed_digits(digits + 18, 18, (uint64_t)sh->index);
        fixed_digits(digits + 36, 20, 0); /* each record's own, below */
        int n = snprintf(x->text, sizeof x->text, "{\"SequenceNumber\":\"%s\",\"ShardId\":\"%s\"}",
                         digits, sh->id);
        x->len = (size_t)n;
    }
    uint8_t *d = tr_w_json_raw(w, x->len);
    if (d == NULL) return 0; /* the writer failed: the answer is an error anyway */
    memcpy(d, x->text, x->len);
    fixed_digits((char *)d + PUT_TMPL_SEQ_AT + 36, 20, seq);
    return 0;
}

static void put_answer(put_state *p) {
    kin_call *c = p->c;
    tr_writer *w = &c->out;
    const char *enc = p->s->encrypted ? "KMS" : "NONE";
    if (p->gone) {
        kin_fail(c, 400, "ResourceNotFoundException", "Stream %s under account %s not found.",
                 p->s->name, tr_data_cfg(c->k->data)->account);
        kin_finish(c);
        return;
    }
    if (!p->batch) {
        if (p->status[0] == KIN_THROTTLED) {
            char msg[400];
            throttled_message(c, p, 0, msg, sizeof msg);
            kin_fail(c, 400, "ProvisionedThroughputExceededException", "%s", msg);
        } else if (p->status[0] != TR_OK) {
            kin_fail(c, 500, "InternalFailure", "Internal service failure: %s",
                     tr_strerror(p->status[0]));
        } else {
            tr_w_obj_begin(w);
            tr_w_kstr(w, "ShardId", p->shard[0]->id);
            kin_w_seq(&c->out, "SequenceNumber", p->s, (uint32_t)p->shard[0]->index, p->seq[0]);
            tr_w_kstr(w, "EncryptionType", enc);
            tr_w_obj_end(w);
        }
        kin_finish(c);
        return;
    }
    size_t failed = 0;
    for (size_t i = 0; i < p->n; i++) failed += p->status[i] != TR_OK;
    char digits[TR_SEQNUM_DIGITS + 1];
    put_seq_prefix(p->s, digits);
    put_tmpl tmpl[PUT_TMPL_MAX];
    size_t ntmpl = 0;
    tr_w_obj_begin(w);
    tr_w_kint(w, "FailedRecordCount", (int64_t)failed);
    tr_w_key(w, "Records");
    tr_w_arr_begin(w);
    for (size_t i = 0; i < p->n; i++) {
        if (c->fmt == TR_WIRE_JSON && p->status[i] == TR_OK &&
            put_w_json_result(w, tmpl, &ntmpl, digits, p->shard[i], p->seq[i]) == 0)
            continue;
        tr_w_obj_begin(w);
        if (p->status[i] == TR_OK) {
            put_w_seq(w, digits, (uint32_t)p->shard[i]->index, p->seq[i]);
            tr_w_kstr(w, "ShardId", p->shard[i]->id);
        } else {
            w_error_of(c, p, i);
        }
        tr_w_obj_end(w);
    }
    tr_w_arr_end(w);
    tr_w_kstr(w, "EncryptionType", enc);
    tr_w_obj_end(w);
    kin_finish(c);
}

static int put_start(put_state *p, int hold);

/* On a worker: a reshard closed the shard some records were routed to after they were
 * routed. Waits for the reshard to finish, takes the stream's new snapshot and routes those
 * records again (to the children, which open only once the parent is closed, so per-key
 * order holds). A shard has the same index in every snapshot of its stream. */
static void reroute_on_worker(tr_work *w) {
    kin_call *c = (kin_call *)w;
    put_state *p = c->op_state;
    for (size_t i = 0; i < p->n; i++) p->to_append[i] = 0;
    tr_data_wait_settled(c->k->data);
    tr_data_stream *s = tr_data_get_by_id(c->k->data, p->s->id);
    if (s == NULL) { /* deleted meanwhile */
        p->gone = 1;
        return;
    }
    for (size_t i = 0; i < p->n; i++) {
        if (p->shard[i] != NULL) p->shard[i] = &s->shards[p->shard[i]->index];
        if (p->status[i] != TR_ECLOSED) continue;
        const tr_data_shard *sh = tr_data_route(s, p->hk[i]);
        if (sh == NULL) continue;
        p->shard[i] = sh;
        if (c->k->limits != NULL &&
            !kin_limits_write(c->k->limits, sh->uid, p->recs[i].data_len + p->recs[i].pkey_len)) {
            p->status[i] = KIN_THROTTLED;
        } else {
            p->status[i] = TR_OK;
            p->to_append[i] = 1;
        }
    }
    tr_data_put(p->s);
    p->s = s;
}

static void reroute_done_on_loop(tr_task *t) {
    kin_call *c = (kin_call *)((char *)t - offsetof(tr_work, done));
    put_state *p = c->op_state;
    size_t n = 0;
    for (size_t i = 0; i < p->n; i++) n += p->to_append[i];
    if (n == 0) {
        put_answer(p);
    } else if (put_start(p, 0) != TR_OK) {
        kin_fail(c, 500, "InternalFailure", "out of memory");
        kin_finish(c);
    }
}

static void put_done_on_loop(tr_task *t) {
    put_state *p = (put_state *)((char *)t - offsetof(put_state, task));
    int closed = 0;
    for (size_t i = 0; i < p->n; i++) closed |= p->status[i] == TR_ECLOSED;
    if (closed && p->reroutes < MAX_PUT_REROUTES) {
        kin_call *c = p->c;
        p->reroutes++;
        c->work.run = reroute_on_worker;
        c->work.done.fn = reroute_done_on_loop;
        if (tr_workpool_submit(tr_server_workpool(c->k->srv), &c->work) == TR_OK) return;
    }
    put_answer(p);
}

static void group_finished(put_state *p) {
    if (atomic_fetch_sub(&p->pending, 1) == 1)
        tr_server_post(p->c->k->srv, &p->task);
}

/* On the storage thread: stamp the group's records, and hand the answer to the loop when
 * the last group is in. */
static void on_appended(void *ctx, int status, uint64_t first_seq, int64_t arrival_ms) {
    (void)arrival_ms;
    put_group *g = ctx;
    for (size_t j = 0; j < g->n; j++) {
        size_t i = g->members[j];
        g->p->status[i] = status;
        g->p->seq[i] = first_seq + j;
    }
    group_finished(g->p);
}

/* Groups the routed records still to append by shard and queues one append per shard.
 * `hold` keeps one count of p->pending for the caller, which releases it with
 * group_finished when it is done with the call (a worker: in the call's answer hook, on the
 * loop, so that no completion can answer and free the call before the worker's job ends). */
static int put_start(put_state *p, int hold) {
    free_groups(p);
    for (size_t i = 0; i < p->n; i++) {
        if (!p->to_append[i] || p->status[i] != TR_OK) continue; /* done, unroutable, throttled */
        put_group *g = NULL;
        for (size_t k = 0; k < p->ngroups; k++)
            if (p->groups[k].shard == p->shard[i]) g = &p->groups[k];
        if (g == NULL) {
            g = &p->groups[p->ngroups++];
            g->p = p;
            g->shard = p->shard[i];
            g->members = malloc(p->n * sizeof *g->members);
            g->recs = malloc(p->n * sizeof *g->recs);
            if (!g->members || !g->recs) return TR_ENOMEM;
        }
        g->members[g->n] = i;
        g->recs[g->n++] = p->recs[i];
    }
    /* One extra count held while queuing, so no completion answers before all are queued. */
    atomic_store(&p->pending, p->ngroups + 1);
    p->task.fn = put_done_on_loop;
    for (size_t k = 0; k < p->ngroups; k++) {
        put_group *g = &p->groups[k];
        int rc = tr_store_append(tr_data_store(p->c->k->data), g->shard->log, g->recs, g->n,
                                 on_appended, g);
        if (rc != TR_OK) on_appended(g, rc, 0, 0);
    }
    if (!hold) group_finished(p);
    return TR_OK;
}

/* The worker's job ended with the appends queued: let the completions answer. */
static void put_release(kin_call *c) { group_finished(c->op_state); }

/* Puts run on a worker (decoding and hashing records is the costly part); they answer from
 * the storage completion, once put_release has run on the loop. On an error they return
 * with it recorded and the plain answer goes out. */
void kin_put_record(kin_call *c) {
    tr_data_stream *s = kin_stream(c);
    const char *seq_for_ordering = NULL;
    if (s == NULL ||
        kin_str(c, "SequenceNumberForOrdering", "sequenceNumberForOrdering", 0, 1, 128,
                &seq_for_ordering) != 0) {
        tr_data_put(s);
        return;
    }
    put_state *p = put_state_new(c, s, 1, 0);
    if (p == NULL) {
        if (c->op_state == NULL) tr_data_put(s);
        kin_fail(c, 500, "InternalFailure", "out of memory");
        return;
    }
    if (read_tree_record(c, p, 0, c->in, 0) != 0) return;
    if (kin_seal_records(c, s, p->recs, p->owned, p->n) != 0) return;
    if (put_start(p, 1) != TR_OK) {
        kin_fail(c, 500, "InternalFailure", "out of memory");
        return;
    }
    c->answer = put_release;
}

void kin_put_records(kin_call *c) {
    tr_data_stream *s = kin_stream(c);
    if (s == NULL) return;
    /* The records: scanned from the text (run_on_worker) or in the tree. */
    const tr_put_body *scanned = c->scanned ? &c->put_body : NULL;
    json_t *arr = scanned ? NULL : json_object_get(c->in, "Records");
    size_t n = scanned ? scanned->n : json_is_array(arr) ? json_array_size(arr) : 0;
    if (!scanned && (arr == NULL || json_is_null(arr))) {
        kin_invalid(c, NULL, "records", "Member must not be null");
    } else if (!scanned && !json_is_array(arr)) {
        kin_fail(c, 400, "SerializationException", "Records must be a list");
    } else if (n < 1 || n > KIN_MAX_PUT_RECORDS) {
        kin_fail(c, 400, "ValidationException",
                 "1 validation error detected: Value '%zu' at 'records' failed to satisfy "
                 "constraint: Member must have length %s",
                 n, n < 1 ? "greater than or equal to 1" : "less than or equal to 500");
    }
    put_state *p = c->failed ? NULL : put_state_new(c, s, n, 1);
    if (p == NULL) {
        if (c->op_state == NULL) tr_data_put(s);
        kin_fail(c, 500, "InternalFailure", "out of memory");
        return;
    }
    size_t total = 0, limit = (size_t)s->max_record_kib * 1024;
    if (limit < MAX_PUT_RECORDS_BYTES) limit = MAX_PUT_RECORDS_BYTES;
    for (size_t i = 0; i < n && !c->failed; i++) {
        int rc;
        if (scanned) {
            rc = read_record(c, p, i, &scanned->recs[i], i + 1);
        } else {
            json_t *rec = json_array_get(arr, i);
            if (!json_is_object(rec)) {
                kin_fail(c, 400, "SerializationException", "Records must hold objects");
                break;
            }
            rc = read_tree_record(c, p, i, rec, i + 1);
        }
        if (rc == 0) total += p->recs[i].data_len + p->recs[i].pkey_len;
    }
    if (!c->failed && total > limit)
        kin_fail(c, 400, "InvalidArgumentException", "Records size exceeds %zu MB limit",
                 limit / (1024 * 1024));
    if (c->failed || kin_seal_records(c, s, p->recs, p->owned, p->n) != 0) return;
    if (put_start(p, 1) != TR_OK) {
        kin_fail(c, 500, "InternalFailure", "out of memory");
        return;
    }
    c->answer = put_release;
}

/* ---- iterators ---- */

static const char *const iterator_types[] = {"AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER",
                                             "TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"};

/* Parses a starting sequence number for shard sh into the core's sequence number. */
static int starting_seq(kin_call *c, const tr_data_stream *s, const tr_data_shard *sh,
                        const char *text, uint64_t *seq) {
    if (text == NULL)
        return kin_fail(c, 400, "InvalidArgumentException",
                        "StartingSequenceNumber is required for the iterator type.");
    for (const char *q = text; *q; q++)
        if (*q < '0' || *q > '9')
            return kin_invalid(c, text, "startingSequenceNumber",
                               "Member must satisfy regular expression pattern: "
                               "0|([1-9]\\d{0,128})");
    tr_seqnum sn;
    if (tr_seqnum_parse(text, strlen(text), &sn) != 0 ||
        sn.stream_id != (uint64_t)s->id % 10000000000000000ull)
        return kin_fail(c, 400, "InvalidArgumentException",
                        "StartingSequenceNumber %s used in GetShardIterator on shard %s in "
                        "stream %s under account %s is invalid.",
                        text, sh->id, s->name, tr_data_cfg(c->k->data)->account);
    if (sn.shard_index != (uint32_t)sh->index)
        return kin_fail(c, 400, "InvalidArgumentException",
                        "Invalid StartingSequenceNumber. It encodes shardId-%012u, while it was "
                        "used in a call to a shard with %s",
                        sn.shard_index, sh->id);
    *seq = sn.seq;
    return 0;
}

int kin_position(kin_call *c, const tr_data_stream *s, const tr_data_shard *sh,
                 const char *type, const char *type_member, const char *seq_text,
                 const int64_t *ts_ms, uint64_t *seq) {
    int t = -1;
    for (int i = 0; i < 5; i++)
        if (strcmp(type, iterator_types[i]) == 0) t = i;
    tr_shard_info info;
    tr_shard_get_info(sh->log, &info);
    switch (t) {
    case 0: return starting_seq(c, s, sh, seq_text, seq);
    case 1:
        if (starting_seq(c, s, sh, seq_text, seq) != 0) return -1;
        (*seq)++;
        return 0;
    case 2: *seq = info.first_seq; return 0;
    case 3: *seq = info.next_seq; return 0;
    case 4:
        if (ts_ms == NULL)
            return kin_fail(c, 400, "InvalidArgumentException",
                            "Must specify timestampInMillis parameter for iterator of type "
                            "AT_TIMESTAMP. Current request has no timestamp parameter.");
        *seq = tr_shard_seq_at_time(sh->log, *ts_ms);
        return 0;
    default:
        return kin_invalid(c, type, type_member,
                           "Member must satisfy enum value set: [AFTER_SEQUENCE_NUMBER, "
                           "AT_SEQUENCE_NUMBER, AT_TIMESTAMP, TRIM_HORIZON, LATEST]");
    }
}

void kin_get_shard_iterator(kin_call *c) {
    tr_data_stream *s = kin_stream(c);
    const tr_data_shard *sh = s ? kin_shard(c, s, "ShardId", "shardId") : NULL;
    const char *type = NULL, *seq_text = NULL;
    int64_t ms = 0;
    int present = 0;
    uint64_t seq = 0;
    if (sh != NULL &&
        kin_str(c, "ShardIteratorType", "shardIteratorType", 1, 1, 32, &type) == 0 &&
        kin_str(c, "StartingSequenceNumber", "startingSequenceNumber", 0, 1, 128, &seq_text) ==
            0 &&
        kin_time(c, c->in, "Timestamp", &ms, &present) == 0 &&
        kin_position(c, s, sh, type, "shardIteratorType", seq_text, present ? &ms : NULL,
                     &seq) == 0) {
        tr_iterator it = {(uint64_t)s->id, (uint32_t)sh->index, seq, kin_now_ms()};
        char token[TR_ITERATOR_MAX];
        tr_iterator_encode(&it, tr_data_secret(c->k->data), token);
        tr_w_obj_begin(&c->out);
        tr_w_kstr(&c->out, "ShardIterator", token);
        tr_w_obj_end(&c->out);
    }
    tr_data_put(s);
}

/* ---- GetRecords ---- */

/* Writes v in decimal at out; returns the number of digits. */
static size_t dec(char *out, uint64_t v) {
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    return n;
}

static int json_plain_text(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] == '"' || s[i] == '\\') return 0;
    return 1;
}

#define REC_SEQ "{\"SequenceNumber\":\""
#define REC_TS "\",\"ApproximateArrivalTimestamp\":"
#define REC_DATA ",\"Data\":\""
#define REC_PKEY "\",\"PartitionKey\":\""
#define REC_KMS "\",\"EncryptionType\":\"KMS\"}"
#define REC_END "\"}"
#define LIT(w, s) (memcpy((w), (s), sizeof(s) - 1), (w) + sizeof(s) - 1)

/* One record in JSON in one piece, as the writer's calls below write it (the same bytes):
 * the writer's general path was most of a GetRecords call's CPU. `digits` holds the
 * sequence number's stream and shard part. -1 when the record needs the general path (a
 * partition key to escape, a time before 1970). */
static int w_json_record(tr_writer *w, char *digits, const tr_record *r, int encrypted) {
    if (r->arrival_ms < 0 || !json_plain_text(r->pkey, r->pkey_len)) return -1;
    size_t b64 = tr_base64_len(r->data_len);
    size_t len = sizeof REC_SEQ - 1 + TR_SEQNUM_DIGITS + sizeof REC_TS - 1 + 24 +
                 sizeof REC_DATA - 1 + b64 + sizeof REC_PKEY - 1 + r->pkey_len +
                 (encrypted ? sizeof REC_KMS - 1 : sizeof REC_END - 1);
    uint8_t *start = tr_w_json_raw(w, len);
    if (start == NULL) return 0; /* the writer failed: the answer is an error anyway */
    char *o = (char *)start;
    fixed_digits(digits + 36, 20, r->seq);
    o = LIT(o, REC_SEQ);
    memcpy(o, digits, TR_SEQNUM_DIGITS);
    o += TR_SEQNUM_DIGITS;
    o = LIT(o, REC_TS);
    o += dec(o, (uint64_t)(r->arrival_ms / 1000));
    if (r->arrival_ms % 1000 != 0) {
        *o++ = '.';
        fixed_digits(o, 3, (uint64_t)(r->arrival_ms % 1000));
        o += 3;
    }
    o = LIT(o, REC_DATA);
    tr_base64_encode(r->data, r->data_len, o); /* writes a NUL after, inside len */
    o += b64;
    o = LIT(o, REC_PKEY);
    if (r->pkey_len) memcpy(o, r->pkey, r->pkey_len);
    o += r->pkey_len;
    o = encrypted ? LIT(o, REC_KMS) : LIT(o, REC_END);
    tr_w_json_unreserve(w, len - (size_t)((uint8_t *)o - start));
    return 0;
}

void kin_w_records(tr_writer *w, const tr_data_stream *s, uint32_t shard_index,
                   const tr_read_batch *b) {
    char digits[TR_SEQNUM_DIGITS + 1];
    put_seq_prefix(s, digits);
    fixed_digits(digits + 18, 18, shard_index);
    tr_w_key(w, "Records");
    tr_w_arr_begin(w);
    for (size_t i = 0; i < b->count; i++) {
        const tr_record *r = &b->records[i];
        if (w->format == TR_WIRE_JSON && w_json_record(w, digits, r, (r->flags & TR_FLAG_ENCRYPTED) != 0) == 0)
            continue;
        tr_w_obj_begin(w);
        kin_w_seq(w, "SequenceNumber", s, shard_index, r->seq);
        tr_w_ktime_ms(w, "ApproximateArrivalTimestamp", r->arrival_ms);
        tr_w_key(w, "Data");
        tr_w_blob(w, r->data, r->data_len);
        tr_w_key(w, "PartitionKey");
        tr_w_strn(w, (const char *)r->pkey, r->pkey_len);
        if (r->flags & TR_FLAG_ENCRYPTED) tr_w_kstr(w, "EncryptionType", "KMS");
        tr_w_obj_end(w);
    }
    tr_w_arr_end(w);
}

int64_t kin_millis_behind(const tr_data_shard *sh, const tr_read_batch *b) {
    if (b->count == 0) return 0;
    tr_shard_info info;
    tr_shard_get_info(sh->log, &info);
    if (info.last_seq < b->next_seq) return 0; /* caught up */
    int64_t behind = info.last_ms - b->records[b->count - 1].arrival_ms;
    return behind > 0 ? behind : 0;
}

void kin_w_child_shards(tr_writer *w, const tr_data_stream *s, const tr_data_shard *sh) {
    char start[TR_HASHKEY_DIGITS + 1], end[TR_HASHKEY_DIGITS + 1];
    tr_w_key(w, "ChildShards");
    tr_w_arr_begin(w);
    for (size_t i = 0; i < s->nshards; i++) {
        const tr_data_shard *x = &s->shards[i];
        if (x->parent != sh->index && x->adjacent_parent != sh->index) continue;
        tr_w_obj_begin(w);
        tr_w_kstr(w, "ShardId", x->id);
        tr_w_key(w, "ParentShards");
        tr_w_arr_begin(w);
        if (x->parent >= 0) tr_w_str(w, s->shards[x->parent].id);
        if (x->adjacent_parent >= 0) tr_w_str(w, s->shards[x->adjacent_parent].id);
        tr_w_arr_end(w);
        tr_hashkey_format(x->start, start);
        tr_hashkey_format(x->end, end);
        tr_w_key(w, "HashKeyRange");
        tr_w_obj_begin(w);
        tr_w_kstr(w, "StartingHashKey", start);
        tr_w_kstr(w, "EndingHashKey", end);
        tr_w_obj_end(w);
        tr_w_obj_end(w);
    }
    tr_w_arr_end(w);
}

static int decode_iterator(kin_call *c, const char *token, tr_iterator *it) {
    const tr_data_config *cfg = tr_data_cfg(c->k->data);
    int64_t now = kin_now_ms();
    switch (tr_iterator_decode(token, strlen(token), tr_data_secret(c->k->data), now,
                               cfg->iterator_ttl_ms, it)) {
    case TR_ITER_OK: return 0;
    case TR_ITER_EXPIRED:
        return kin_fail(c, 400, "ExpiredIteratorException",
                        "Iterator expired. The iterator was created at time %lld while right "
                        "now it is %lld which is further in the future than the tolerated "
                        "delay of %lld milliseconds.",
                        (long long)it->issued_ms, (long long)now, (long long)cfg->iterator_ttl_ms);
    default: return kin_fail(c, 400, "InvalidArgumentException", "Invalid ShardIterator.");
    }
}

/* Whether a read from `from` would return records: tr_shard_read starts at the trim horizon
 * at the earliest and returns what is committed. */
static int has_records(const tr_data_shard *sh, uint64_t from) {
    tr_shard_info info;
    tr_shard_get_info(sh->log, &info);
    if (from < info.first_seq) from = info.first_seq;
    return from <= info.last_seq;
}

void kin_get_records(kin_call *c) {
    const char *token = NULL;
    int64_t limit = MAX_GET_RECORDS;
    tr_iterator it;
    if (kin_str(c, "ShardIterator", "shardIterator", 1, 1, 512, &token) != 0 ||
        kin_int(c, "Limit", "limit", 0, 1, MAX_GET_RECORDS, &limit) != 0 ||
        decode_iterator(c, token, &it) != 0)
        return;
    tr_data_stream *s = tr_data_get_by_id(c->k->data, (int64_t)it.stream_id);
    if (s != NULL && kin_authorize(c, s->arn) != 0) {
        tr_data_put(s);
        return;
    }
    if (s == NULL || it.shard_index >= s->nshards) {
        kin_fail(c, 400, "ResourceNotFoundException",
                 "Shard in the iterator does not exist in any stream under account %s.",
                 tr_data_cfg(c->k->data)->account);
        tr_data_put(s);
        return;
    }
    const tr_data_shard *sh = &s->shards[it.shard_index];
    if (c->on_loop && has_records(sh, it.next_seq)) { /* reading is for the worker */
        c->to_worker = 1;
        tr_data_put(s);
        return;
    }
    if (c->k->limits != NULL && !kin_limits_read_call(c->k->limits, sh->uid)) {
        kin_fail(c, 400, "ProvisionedThroughputExceededException",
                 "Rate exceeded for shard %s in stream %s under account %s.", sh->id, s->name,
                 tr_data_cfg(c->k->data)->account);
        tr_data_put(s);
        return;
    }
    tr_read_batch b;
    tr_read_batch_init(&b);
    /* On the loop there is nothing to read (has_records said so a moment ago; what has been
     * committed since waits for the next call, as if this one had come a moment earlier). */
    int rc = c->on_loop ? TR_OK
                        : tr_shard_read(sh->log, it.next_seq, (size_t)limit, MAX_GET_BYTES, &b);
    if (rc == TR_OK && (rc = kin_open_records(c->k->cfg.kms, s, &b)) != TR_OK) {
        kin_kms_fail(c, rc, s->key_id);
    } else if (rc != TR_OK) {
        kin_fail(c, 500, "InternalFailure", "Internal service failure: %s", tr_strerror(rc));
    }
    if (rc != TR_OK) {
        tr_read_batch_free(&b);
        tr_data_put(s);
        return;
    }
    if (c->k->limits != NULL) kin_limits_read_bytes(c->k->limits, sh->uid, b.bytes);
    tr_shard_info info;
    tr_shard_get_info(sh->log, &info);
    tr_writer *w = &c->out;
    tr_w_obj_begin(w);
    kin_w_records(w, s, it.shard_index, &b);
    uint64_t next = b.count > 0 ? b.next_seq : (it.next_seq > info.first_seq ? it.next_seq
                                                                             : info.first_seq);
    int64_t behind = kin_millis_behind(sh, &b);
    if (sh->closed && next > sh->ending_seq) {
        /* The end of a closed shard: no next iterator; the children say where to go. */
        kin_w_child_shards(w, s, sh);
    } else {
        tr_iterator nit = {it.stream_id, it.shard_index, next, kin_now_ms()};
        char ntoken[TR_ITERATOR_MAX];
        tr_iterator_encode(&nit, tr_data_secret(c->k->data), ntoken);
        tr_w_kstr(w, "NextShardIterator", ntoken);
    }
    tr_w_kint(w, "MillisBehindLatest", behind);
    tr_w_obj_end(w);
    tr_read_batch_free(&b);
    tr_data_put(s);
}
