/* Reading video back: ListFragments (from the fragment index), GetMedia (a live feed of MKV
 * chunks from a start selector) and GetMediaForFragmentList (the chunks of listed
 * fragments). The chunks are built by wire/mkv_chunk.h from the stored fragment records; the
 * feeds run on the feed thread (api/feed.h), never on the loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/feed.h"
#include "api/kvs_call.h"
#include "api/kvs_media_int.h"
#include "core/record.h"
#include "util/error.h"
#include "util/log.h"
#include "wire/mkv_chunk.h"
#include "wire/reader.h"

#define MAX_LIST_FRAGMENTS 1000
#define DEFAULT_LIST_FRAGMENTS 100

static tr_kvs_media *face(kvs_call *c) { return c->face; }

/* A timestamp member (epoch seconds, fractional allowed). */
static int time_member(kvs_call *c, json_t *obj, const char *key, const char *member,
                       int required, int64_t *ms, int *present) {
    json_t *v = json_object_get(obj, key);
    *present = 0;
    if (v == NULL || json_is_null(v)) {
        if (required) return kvs_invalid(c, NULL, member, "Member must not be null");
        return 0;
    }
    if (tr_wire_time_ms(v, ms) != 0)
        return kvs_fail(c, "SerializationException", "%s must be a timestamp", key);
    *present = 1;
    return 0;
}

/* ---- ListFragments ---- */

static const char *const selector_types[] = {"PRODUCER_TIMESTAMP", "SERVER_TIMESTAMP", NULL};

/* NextToken: "<after seq>" in base64 (the range comes again with the request). */
static void write_next_token(tr_writer *w, uint64_t after) {
    char raw[24], tok[40];
    int n = snprintf(raw, sizeof raw, "%llu", (unsigned long long)after);
    tr_base64_encode(raw, (size_t)n, tok);
    tr_w_kstr(w, "NextToken", tok);
}

static int read_next_token(kvs_call *c, const char *token, uint64_t *after) {
    char raw[32];
    long n = strlen(token) < 40 ? tr_base64_decode(token, strlen(token), (uint8_t *)raw) : -1;
    char *end;
    if (n > 0 && n < (long)sizeof raw) {
        raw[n] = '\0';
        *after = strtoull(raw, &end, 10);
        if (*end == '\0' && end != raw) return 0;
    }
    return kvs_fail(c, "InvalidArgumentException", "Invalid NextToken.");
}

static void list_fragments(kvs_call *c) {
    tr_video_stream *s = kvs_stream(c);
    int64_t max = DEFAULT_LIST_FRAGMENTS, start = INT64_MIN, end = INT64_MAX;
    const char *token = NULL, *type = NULL;
    json_t *sel = NULL, *range = NULL;
    int present = 0;
    uint64_t after = 0;
    if (s == NULL || kvs_int(c, NULL, "MaxResults", "maxResults", 0, 1, MAX_LIST_FRAGMENTS, &max) ||
        kvs_str(c, NULL, "NextToken", "nextToken", 0, 1, 4096, &kvs_p_token, &token) ||
        kvs_obj(c, "FragmentSelector", "fragmentSelector", 0, &sel))
        goto out;
    if (sel != NULL) {
        if (kvs_enum(c, sel, "FragmentSelectorType", "fragmentSelector.fragmentSelectorType", 1,
                     selector_types, &type) != 0)
            goto out;
        range = json_object_get(sel, "TimestampRange");
        if (!json_is_object(range)) {
            kvs_invalid(c, NULL, "fragmentSelector.timestampRange", "Member must not be null");
            goto out;
        }
        if (time_member(c, range, "StartTimestamp", "fragmentSelector.timestampRange.startTimestamp",
                        1, &start, &present) != 0 ||
            time_member(c, range, "EndTimestamp", "fragmentSelector.timestampRange.endTimestamp",
                        1, &end, &present) != 0)
            goto out;
        if (end < start) {
            kvs_fail(c, "InvalidArgumentException", "EndTimestamp must not be before StartTimestamp.");
            goto out;
        }
    }
    if (token != NULL && read_next_token(c, token, &after) != 0) goto out;
    tr_frag_index *index = tr_media_index(face(c)->media, s, 1);
    tr_frag_entry *v = malloc((size_t)max * sizeof *v);
    if (index == NULL || v == NULL) {
        free(v);
        kvs_fail(c, "InternalFailure", "Cannot read the fragment index");
        goto out;
    }
    int more = 0;
    int by_producer = type != NULL && strcmp(type, "PRODUCER_TIMESTAMP") == 0;
    size_t n = tr_frag_index_range(index, by_producer, start, end, after, v, (size_t)max, &more);
    tr_writer *w = &c->out;
    tr_w_obj_begin(w);
    tr_w_key(w, "Fragments");
    tr_w_arr_begin(w);
    for (size_t i = 0; i < n; i++) {
        char number[TR_FRAGMENT_NUMBER_DIGITS + 1];
        tr_fragment_number((uint64_t)s->id, v[i].seq, number);
        tr_w_obj_begin(w);
        tr_w_kstr(w, "FragmentNumber", number);
        tr_w_kint(w, "FragmentSizeInBytes", v[i].size);
        tr_w_ktime_ms(w, "ProducerTimestamp", v[i].producer_ms);
        tr_w_ktime_ms(w, "ServerTimestamp", v[i].server_ms);
        tr_w_kint(w, "FragmentLengthInMilliseconds", v[i].duration_ms);
        tr_w_obj_end(w);
    }
    tr_w_arr_end(w);
    if (more && n > 0) write_next_token(w, v[n - 1].seq);
    tr_w_obj_end(w);
    free(v);
out:
    tr_video_put(s);
}

/* ---- the media feed: GetMedia and GetMediaForFragmentList ---- */

typedef struct media_feed {
    tr_video *video;
    tr_media *media;
    tr_video_stream *s;       /* referenced */
    tr_frag_index *index;
    uint64_t after;           /* live: the last fragment sent (0: none yet) */
    uint64_t *list;           /* GetMediaForFragmentList: the fragments, in order */
    size_t nlist, pos;
    tr_read_batch batch;
} media_feed;

static void media_feed_free(void *state) {
    media_feed *m = state;
    if (m == NULL) return;
    tr_video_put(m->s);
    tr_read_batch_free(&m->batch);
    free(m->list);
    free(m);
}

/* One chunk for the fragment at seq, or an error chunk when it cannot be read. */
static int chunk_of(media_feed *m, uint64_t seq, int64_t now, uint8_t **msg, size_t *len) {
    char number[TR_FRAGMENT_NUMBER_DIGITS + 1];
    tr_fragment_number((uint64_t)m->s->id, seq, number);
    tr_fragment f;
    tr_ebml_buf b;
    tr_ebml_buf_init(&b, TR_MAX_FRAGMENT_BYTES + 65536);
    int rc = tr_media_read(m->media, m->s, seq, &m->batch, &f);
    if (rc == TR_OK) {
        tr_frag_entry last;
        int64_t behind = 0;
        if (tr_frag_index_last(m->index, &last) == 0 && last.server_ms > f.server_ms)
            behind = now - f.server_ms;
        tr_mkv_chunk_meta meta = {.fragment_number = number,
                                  .server_timestamp_ms = f.server_ms,
                                  .producer_timestamp_ms = f.producer_ms,
                                  .millis_behind_now = behind,
                                  .continuation_token = number};
        rc = tr_mkv_chunk_build(&b, f.header, f.header_len, f.cluster, f.cluster_len, f.tags,
                                f.tags_len, &meta) == 0 ? TR_OK : TR_ENOMEM;
    } else {
        tr_warn("msg=\"GetMedia cannot read fragment\" stream=%s fragment=%s err=\"%s\"",
                m->s->name, number, tr_kms_strerror(rc));
        int id = rc == TR_ENOENT ? 0 : kvs_kms_error_id(rc);
        rc = tr_mkv_chunk_error(&b, NULL, 0, number, id ? id : 4000,
                                id ? tr_kvs_error_name(id) : "FRAGMENT_NOT_FOUND") == 0
                 ? TR_ENOENT : TR_ENOMEM;
    }
    if (rc == TR_ENOMEM) {
        tr_ebml_buf_free(&b);
        return -1;
    }
    *msg = tr_ebml_buf_take(&b, len);
    return rc == TR_OK ? 0 : 1;
}

static tr_feed_step live_next(void *state, int64_t now, uint8_t **msg, size_t *len, int *end) {
    media_feed *m = state;
    tr_video_stream *cur = tr_video_get_by_id(m->video, m->s->id);
    if (cur == NULL) { /* the stream was deleted: a clean end */
        *end = 1;
        return TR_FEED_WAIT;
    }
    tr_video_put(cur);
    tr_frag_entry e;
    if (tr_frag_index_next(m->index, m->after, &e) != 0) return TR_FEED_WAIT;
    int rc = chunk_of(m, e.seq, now, msg, len);
    if (rc < 0) {
        *end = 1;
        return TR_FEED_WAIT;
    }
    m->after = e.seq;
    tr_frag_entry more;
    return tr_frag_index_next(m->index, m->after, &more) == 0 ? TR_FEED_MORE : TR_FEED_SENT;
}

static tr_feed_step list_next(void *state, int64_t now, uint8_t **msg, size_t *len, int *end) {
    media_feed *m = state;
    if (m->pos == m->nlist) {
        *end = 1;
        return TR_FEED_WAIT;
    }
    int rc = chunk_of(m, m->list[m->pos++], now, msg, len);
    if (rc < 0 || m->pos == m->nlist) *end = 1;
    return rc < 0 ? TR_FEED_WAIT : TR_FEED_MORE;
}

static const tr_feed_ops live_ops = {.next = live_next, .free_state = media_feed_free, .live = 1};
static const tr_feed_ops list_ops = {.next = list_next, .free_state = media_feed_free};

/* On the loop: the call was valid; stream the chunks. */
static void start_feed(kvs_call *c) {
    media_feed *m = c->op_state;
    c->op_state = NULL;
    tr_kvs_media *k = face(c);
    if (tr_resp_start(c->req, 200, "video/webm") != 0) {
        media_feed_free(m);
    } else if (tr_feed_start(k->feeds, c->req, m->list != NULL ? &list_ops : &live_ops, m) != 0) {
        tr_resp_end(c->req); /* the server is stopping (the feed freed m): an empty answer */
    }
    kvs_call_release(c);
}

static media_feed *feed_new(kvs_call *c, tr_video_stream *s) {
    media_feed *m = calloc(1, sizeof *m);
    if (m == NULL) {
        tr_video_put(s);
        kvs_fail(c, "InternalFailure", "out of memory");
        return NULL;
    }
    m->video = c->video;
    m->media = face(c)->media;
    m->s = s;
    tr_read_batch_init(&m->batch);
    c->op_state = m;
    c->op_state_free = media_feed_free;
    m->index = tr_media_index(m->media, s, 1);
    if (m->index == NULL) {
        kvs_fail(c, "InternalFailure", "Cannot read the fragment index");
        return NULL;
    }
    return m;
}

static const char *const start_types[] = {"FRAGMENT_NUMBER", "SERVER_TIMESTAMP",
                                          "PRODUCER_TIMESTAMP", "NOW", "EARLIEST",
                                          "CONTINUATION_TOKEN", NULL};

/* Where a GetMedia starts: m->after is set so that the first chunk is the one after it. */
static int start_position(kvs_call *c, media_feed *m, json_t *sel) {
    const char *type = NULL, *number = NULL;
    if (kvs_enum(c, sel, "StartSelectorType", "startSelector.startSelectorType", 1, start_types,
                 &type) != 0)
        return -1;
    tr_frag_entry e;
    if (strcmp(type, "NOW") == 0) {
        m->after = tr_frag_index_last(m->index, &e) == 0 ? e.seq : 0;
        if (m->after == 0) {
            tr_shard_info info;
            tr_shard_get_info(m->s->log, &info);
            m->after = info.last_seq;
        }
        return 0;
    }
    if (strcmp(type, "EARLIEST") == 0) {
        m->after = 0;
        return 0;
    }
    if (strcmp(type, "FRAGMENT_NUMBER") == 0 || strcmp(type, "CONTINUATION_TOKEN") == 0) {
        int frag = type[0] == 'F';
        const char *key = frag ? "AfterFragmentNumber" : "ContinuationToken";
        const char *member = frag ? "startSelector.afterFragmentNumber" : "startSelector.continuationToken";
        if (kvs_str(c, sel, key, member, 1, 1, 128, NULL, &number) != 0) return -1;
        uint64_t seq;
        if (tr_fragment_number_parse(number, (uint64_t)m->s->id, &seq) != 0)
            return kvs_fail(c, "InvalidArgumentException", "%s %s is not a fragment of stream %s.",
                            key, number, m->s->name);
        m->after = seq;
        return 0;
    }
    int64_t ms = 0;
    int present = 0;
    if (time_member(c, sel, "StartTimestamp", "startSelector.startTimestamp", 1, &ms, &present) != 0)
        return -1;
    int by_producer = strcmp(type, "PRODUCER_TIMESTAMP") == 0;
    if (tr_frag_index_at_time(m->index, by_producer, ms, &e) == 0) {
        m->after = e.seq - 1; /* the chunk containing the timestamp comes first */
    } else {
        m->after = tr_frag_index_last(m->index, &e) == 0 ? e.seq : 0; /* from the next one */
    }
    return 0;
}

static void get_media(kvs_call *c) {
    tr_video_stream *s = kvs_stream(c);
    json_t *sel = NULL;
    if (s == NULL) return;
    if (kvs_obj(c, "StartSelector", "startSelector", 1, &sel) != 0) {
        tr_video_put(s);
        return;
    }
    media_feed *m = feed_new(c, s);
    if (m == NULL || start_position(c, m, sel) != 0) return;
    c->answer = start_feed;
}

static void get_media_for_fragment_list(kvs_call *c) {
    tr_video_stream *s = kvs_stream(c);
    if (s == NULL) return;
    json_t *arr = json_object_get(c->in, "Fragments");
    size_t n = json_is_array(arr) ? json_array_size(arr) : 0;
    if (arr == NULL || json_is_null(arr)) {
        tr_video_put(s);
        kvs_invalid(c, NULL, "fragments", "Member must not be null");
        return;
    }
    if (n < 1 || n > MAX_LIST_FRAGMENTS) {
        tr_video_put(s);
        kvs_invalid(c, "[...]", "fragments",
                    "Member must have length less than or equal to 1000 and greater than or "
                    "equal to 1");
        return;
    }
    media_feed *m = feed_new(c, s);
    if (m == NULL) return;
    if ((m->list = malloc(n * sizeof *m->list)) == NULL) {
        kvs_fail(c, "InternalFailure", "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const char *number = json_string_value(json_array_get(arr, i));
        if (number == NULL || tr_fragment_number_parse(number, (uint64_t)s->id, &m->list[i]) != 0) {
            kvs_fail(c, "InvalidArgumentException", "%s is not a fragment of stream %s.",
                     number ? number : "(not a string)", s->name);
            return;
        }
    }
    m->nlist = n;
    c->answer = start_feed;
}

/* ---- routes ---- */

static const kvs_op media_ops[] = {
    {"/listFragments", list_fragments},
    {"/getMedia", get_media},
    {"/getMediaForFragmentList", get_media_for_fragment_list},
};

static void on_request(tr_req *req, void *ctx) {
    tr_kvs_media *k = ctx;
    for (size_t i = 0; i < sizeof media_ops / sizeof media_ops[0]; i++) {
        if (strcmp(tr_req_path(req), media_ops[i].path) == 0) {
            kvs_call_start(req, k->srv, k->video, k, &media_ops[i]);
            return;
        }
    }
    kvs_send_error(req, "ResourceNotFoundException", "No such operation");
}

static void on_close(tr_req *req, void *ctx) { tr_feed_on_close(req); }
static void on_drain(tr_req *req, void *ctx) { tr_feed_on_drain(req); }

static const tr_handler media_handler = {
    .on_request = on_request, .on_close = on_close, .on_drain = on_drain};

int kvs_getmedia_register(tr_kvs_media *k) {
    int rc = tr_feeds_new(k->srv, k->cfg.commits, &k->feeds);
    for (size_t i = 0; rc == TR_OK && i < sizeof media_ops / sizeof media_ops[0]; i++)
        rc = tr_router_add(tr_server_router(k->srv), "POST", media_ops[i].path, NULL,
                           &media_handler, k);
    return rc;
}
