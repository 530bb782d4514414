/* A PutMedia ingest session (api/kvs_ingest.h): each cluster becomes one fragment record
 * (video/fragment.h) appended with group commit; a cluster cut short is never stored. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/kvs_ingest.h"
#include "core/record.h"
#include "util/error.h"
#include "util/log.h"
#include "wire/mkv_ingest.h"

/* Defaults of the face's idle_ack_ms and idle_close_ms (config putmedia_idle_*_ms). */
#define IDLE_ACK_MS 3000        /* an IDLE ack after this long without data, and as often */
#define IDLE_CLOSE_MS 30000     /* then the answer ends */

struct kvs_ingest {
    tr_kvs_media *k;
    const kvs_ingest_sink *sink;
    void *sink_ctx;
    tr_video_stream *s;          /* referenced */
    tr_mkv_parser *parser;
    const uint8_t *header;       /* the session's header, owned by the parser */
    size_t header_len;
    int relative;                /* RELATIVE timecodes: producer time = start + timecode */
    int64_t start_ms;            /* x-amzn-producer-start-timestamp */
    int64_t fragment_start_ms;   /* server time the current cluster began */
    int64_t last_data_ms, last_idle_ms;
    int pending;                 /* fragments being appended */
    size_t pending_bytes;        /* their size */
    int paused;                  /* the transport was told to stop reading the body */
    int failed;                  /* an ERROR ack went out: the rest of the body is dropped */
    int body_done;
    int closed;                  /* the transport went away */
    int ended;                   /* the acks are ended */
    struct kvs_ingest *next;
};


/* One fragment on its way to the store. */
typedef struct put_fragment {
    tr_task task;
    kvs_ingest *ps;
    uint8_t *buf;
    tr_record_in rec;
    tr_fragment meta;            /* header/cluster/tags point into buf */
    int status;
    uint64_t seq;
} put_fragment;

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- acks ---- */

static void ack(kvs_ingest *ps, const char *line) {
    if (ps->closed || ps->ended) return;
    ps->sink->ack(ps->sink_ctx, line, strlen(line));
}

static void ack_event(kvs_ingest *ps, const char *type, uint64_t timecode, const char *number) {
    char line[256];
    snprintf(line, sizeof line, "{\"EventType\":\"%s\",\"FragmentTimecode\":%llu,"
             "\"FragmentNumber\":\"%s\"}\n", type, (unsigned long long)timecode, number);
    ack(ps, line);
}

static void ack_error(kvs_ingest *ps, int error_id, int64_t timecode, const char *number) {
    char line[320];
    snprintf(line, sizeof line, "{\"EventType\":\"ERROR\",\"FragmentTimecode\":%lld,"
             "\"FragmentNumber\":\"%s\",\"ErrorId\":%d,\"ErrorCode\":\"%s\"}\n",
             (long long)timecode, number, error_id, tr_kvs_error_name(error_id));
    ack(ps, line);
}

/* Ends the answer once nothing is left to acknowledge. */
static void maybe_end(kvs_ingest *ps) {
    if (ps->ended || ps->closed || ps->pending > 0) return;
    if (!ps->failed && !ps->body_done) return;
    ps->ended = 1;
    ps->sink->end(ps->sink_ctx);
}

static void session_unlink(kvs_ingest *ps) {
    for (kvs_ingest **pp = &ps->k->sessions; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == ps) {
            *pp = ps->next;
            return;
        }
    }
}

static void session_free(kvs_ingest *ps) {
    session_unlink(ps);
    tr_mkv_parser_free(ps->parser);
    tr_video_put(ps->s);
    free(ps);
}

static void fail(kvs_ingest *ps, int error_id) {
    if (ps->failed) return;
    ps->failed = 1;
    int64_t tc = ps->parser != NULL ? tr_mkv_parser_error_timecode(ps->parser) : -1;
    const char *detail = ps->parser != NULL ? tr_mkv_parser_error_detail(ps->parser) : "";
    tr_info("msg=\"PutMedia error\" stream=%s error_id=%d error=%s detail=\"%s\" offset=%llu",
            ps->s->name, error_id, tr_kvs_error_name(error_id), detail,
            ps->parser != NULL ? (unsigned long long)tr_mkv_parser_offset(ps->parser) : 0ull);
    ack_error(ps, error_id, tc, "");
    maybe_end(ps);
}

/* ---- fragments to the store ---- */

/* Backpressure: a session that queued too much for the store stops reading its body, so a
 * slow disk bounds memory instead of queueing fragments without limit. */
static void update_pause(kvs_ingest *ps) {
    int over = ps->pending >= KVS_INGEST_MAX_PENDING ||
               ps->pending_bytes >= KVS_INGEST_MAX_PENDING_BYTES;
    if (over == ps->paused || ps->closed || ps->sink->pause == NULL) return;
    ps->paused = over;
    /* Quiet because paused is not idle: the idle clock starts again when reading does. */
    if (!over) ps->last_data_ms = ps->last_idle_ms = now_ms();
    ps->sink->pause(ps->sink_ctx, over);
}

static void persisted_on_loop(tr_task *t) {
    put_fragment *pf = (put_fragment *)t;
    kvs_ingest *ps = pf->ps;
    ps->pending--;
    ps->pending_bytes -= pf->rec.data_len;
    update_pause(ps);
    if (pf->status == TR_OK) {
        char number[TR_FRAGMENT_NUMBER_DIGITS + 1];
        tr_fragment_number((uint64_t)ps->s->id, pf->seq, number);
        tr_frag_index *index = tr_media_index(ps->k->media, ps->s, 0);
        tr_frag_entry e;
        tr_media_entry(pf->seq, &pf->meta, pf->rec.data_len, &e);
        if (index != NULL) tr_frag_index_add(index, &e);
        /* Live GetMedia readers look fragments up in the index: the store's commit woke them
         * before this task ran, so wake them again now that the fragment is in it (else
         * they see it only at their next wake, up to a second later). */
        if (ps->k->cfg.commits != NULL) tr_notify_bump(ps->k->cfg.commits);
        if (ps->s->retention_hours > 0) ack_event(ps, "PERSISTED", pf->meta.timecode, number);
    } else {
        tr_error("msg=\"cannot store fragment\" stream=%s err=\"%s\"", ps->s->name,
                 tr_strerror(pf->status));
        if (!ps->failed) {
            ps->failed = 1;
            ack_error(ps, TR_KVS_ARCHIVAL_ERROR, (int64_t)pf->meta.timecode, "");
        }
    }
    free(pf->buf);
    free(pf);
    if (ps->closed && ps->pending == 0)
        session_free(ps);
    else
        maybe_end(ps);
}

static void on_appended(void *ctx, int status, uint64_t first_seq, int64_t arrival_ms) {
    (void)arrival_ms;
    put_fragment *pf = ctx;
    pf->status = status;
    pf->seq = first_seq;
    tr_server_post(pf->ps->k->srv, &pf->task);
}

static int on_header(void *ctx, const tr_mkv_header *h) {
    kvs_ingest *ps = ctx;
    ps->header = h->bytes;
    ps->header_len = h->len;
    return 0;
}

static int on_fragment_start(void *ctx, uint64_t timecode, int64_t timecode_ms) {
    (void)timecode_ms;
    kvs_ingest *ps = ctx;
    ps->fragment_start_ms = now_ms();
    ack_event(ps, "BUFFERING", timecode, "");
    return 0;
}

static int on_fragment(void *ctx, const tr_mkv_fragment *f) {
    kvs_ingest *ps = ctx;
    /* A stream deleted under the session: its shard goes with the session's snapshot, so
     * storing (and acking PERSISTED) more fragments would be a lie. */
    tr_video_stream *cur = tr_video_get_by_id(ps->k->video, ps->s->id);
    if (cur == NULL) return TR_KVS_STREAM_NOT_ACTIVE;
    tr_video_put(cur);
    put_fragment *pf = calloc(1, sizeof *pf);
    if (pf == NULL) return TR_KVS_INTERNAL_ERROR;
    tr_fragment *m = &pf->meta;
    m->flags = f->key_first ? TR_FRAGMENT_KEY_FIRST : 0;
    m->producer_ms = ps->relative ? ps->start_ms + f->timecode_ms : f->timecode_ms;
    m->server_ms = ps->fragment_start_ms;
    m->duration_ms = f->duration_ms;
    m->timecode = f->timecode;
    m->frame_count = f->frame_count;
    m->header = ps->header;
    m->header_len = ps->header_len;
    m->cluster = f->cluster;
    m->cluster_len = f->cluster_len;
    m->tags = f->tags;
    m->tags_len = f->tags != NULL ? f->tags_len : 0;
    /* Sealed under the stream's KmsKeyId; the meta points at the stored copy from now on. */
    size_t size = 0;
    int rc = tr_media_encode(ps->k->media, ps->s, m, &pf->buf, &size);
    if (rc != TR_OK) {
        free(pf);
        if (rc == TR_ETOOBIG) return TR_KVS_MAX_FRAGMENT_SIZE_REACHED; /* the parser stops first */
        return kvs_kms_error_id(rc) ? kvs_kms_error_id(rc) : TR_KVS_INTERNAL_ERROR;
    }
    pf->ps = ps;
    pf->task.fn = persisted_on_loop;
    pf->rec = (tr_record_in){.producer_ms = m->producer_ms, .flags = TR_KIND_FRAGMENT,
                             .data = pf->buf, .data_len = (uint32_t)size};
    ack_event(ps, "RECEIVED", f->timecode, "");
    rc = tr_store_append(tr_video_store(ps->k->video), ps->s->log, &pf->rec, 1,
                             on_appended, pf);
    if (rc != TR_OK) {
        free(pf->buf);
        free(pf);
        return TR_KVS_ARCHIVAL_ERROR;
    }
    ps->pending++;
    ps->pending_bytes += size;
    update_pause(ps);
    return 0;
}

static const tr_mkv_callbacks parser_callbacks = {
    .on_header = on_header, .on_fragment_start = on_fragment_start, .on_fragment = on_fragment};

/* ---- the session ---- */

/* "1663277247.152" -> ms; -1 when malformed. */
static int64_t parse_seconds(const char *s) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || v < 0 || v > 1e12) return -1;
    return (int64_t)(v * 1000.0 + 0.5);
}

kvs_ingest *kvs_ingest_new(tr_kvs_media *k, const kvs_ingest_params *p,
                           const kvs_ingest_sink *sink, void *sink_ctx, const char **err_type,
                           char *err_msg, size_t err_len) {
    *err_type = "InvalidArgumentException";
    if ((p->stream_name == NULL) == (p->stream_arn == NULL)) {
        snprintf(err_msg, err_len, "Exactly one of the stream name and the stream ARN is required.");
        return NULL;
    }
    int relative = 0;
    if (p->timecode_type != NULL && strcmp(p->timecode_type, "RELATIVE") == 0) {
        relative = 1;
    } else if (p->timecode_type != NULL && strcmp(p->timecode_type, "ABSOLUTE") != 0) {
        snprintf(err_msg, err_len, "The fragment timecode type must be ABSOLUTE or RELATIVE.");
        return NULL;
    }
    int64_t start_ms = p->start_timestamp != NULL ? parse_seconds(p->start_timestamp) : now_ms();
    if (start_ms < 0) {
        snprintf(err_msg, err_len, "The producer start timestamp must be seconds since the epoch.");
        return NULL;
    }
    tr_video_err err;
    tr_video_stream *s = tr_video_get(k->video, p->stream_name,
                                      p->stream_name ? NULL : p->stream_arn, &err);
    if (s == NULL) {
        *err_type = err.type;
        snprintf(err_msg, err_len, "%s", err.message);
        return NULL;
    }
    kvs_ingest *ps = calloc(1, sizeof *ps);
    if (ps == NULL || (ps->parser = tr_mkv_parser_new(&parser_callbacks, ps, NULL)) == NULL) {
        free(ps);
        tr_video_put(s);
        *err_type = "InternalFailure";
        snprintf(err_msg, err_len, "out of memory");
        return NULL;
    }
    ps->k = k;
    ps->sink = sink;
    ps->sink_ctx = sink_ctx;
    ps->s = s;
    ps->relative = relative;
    ps->start_ms = start_ms;
    ps->last_data_ms = ps->last_idle_ms = now_ms();
    ps->next = k->sessions;
    k->sessions = ps;
    sink->begin(sink_ctx);
    if (strcmp(tr_video_status(s, now_ms()), "ACTIVE") != 0) fail(ps, TR_KVS_STREAM_NOT_ACTIVE);
    return ps;
}

void kvs_ingest_feed(kvs_ingest *ps, const uint8_t *data, size_t len) {
    if (ps->failed || ps->body_done) return; /* the rest of a failed upload is dropped */
    ps->last_data_ms = ps->last_idle_ms = now_ms();
    int rc = tr_mkv_parser_feed(ps->parser, data, len);
    if (rc != 0) fail(ps, rc);
}

void kvs_ingest_finish(kvs_ingest *ps) {
    if (ps->body_done) return;
    ps->body_done = 1;
    if (!ps->failed) {
        int rc = tr_mkv_parser_finish(ps->parser);
        if (rc != 0) fail(ps, rc);
    }
    maybe_end(ps);
}

void kvs_ingest_close(kvs_ingest *ps) {
    ps->closed = 1;
    if (ps->pending == 0) session_free(ps);
}

void kvs_ingest_tick(tr_kvs_media *k, int64_t now) {
    int64_t idle_ack = k->cfg.idle_ack_ms > 0 ? k->cfg.idle_ack_ms : IDLE_ACK_MS;
    int64_t idle_close = k->cfg.idle_close_ms > 0 ? k->cfg.idle_close_ms : IDLE_CLOSE_MS;
    for (kvs_ingest *ps = k->sessions; ps != NULL; ps = ps->next) {
        if (ps->closed || ps->ended || ps->failed || ps->paused) continue;
        if (now - ps->last_data_ms >= idle_close || tr_server_stopping(k->srv)) {
            ps->body_done = 1;
            maybe_end(ps);
        } else if (now - ps->last_idle_ms >= idle_ack) {
            ps->last_idle_ms = now;
            ack(ps, "{\"EventType\":\"IDLE\"}\n");
        }
    }
}
