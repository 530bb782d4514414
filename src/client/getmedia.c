/* The GetMedia push parser: finds chunk boundaries as bytes arrive, then reads each whole
 * chunk with the wire modules the server writes it with (tr_mkv_chunk_read for the Tags and
 * the Cluster, tr_mkv_header_parse for the track table, tr_mkv_cluster_frames for frames).
 *
 * A chunk is complete
 *   - at the end of its Segment, when the Segment has a known size;
 *   - after the Tags element that closes it (CONTINUATION_TOKEN, or ERROR_CODE /
 *     ERROR_ID), so that a live consumer gets a fragment as soon as its last
 *     byte arrives rather than when the next one starts;
 *   - where the next chunk's EBML header begins, or at the end of the body, for a Segment
 *     of unknown size without closing Tags.
 * Only whole top-level elements are walked; everything inside them is left to the wire
 * readers. Input is appended in slices so that the buffer holds at most one chunk and one
 * slice, however much is fed at once. */
#include "client/getmedia.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/ebml.h"
#include "wire/mkv_chunk.h"
#include "wire/mkv_ingest.h"

#define FEED_SLICE_BYTES ((size_t)1 << 20)
#define MIN_MAX_CHUNK_BYTES ((size_t)4096)

enum { S_EBML, S_SEGMENT, S_CHILDREN };

typedef struct tag_ref {
    size_t name, value; /* offsets into the arena */
} tag_ref;

struct tr_client_parser {
    tr_client_callbacks cb;
    void *ctx;
    size_t max_chunk_bytes;

    uint8_t *buf;         /* input not yet delivered: buf[base..len) */
    size_t len, cap;
    size_t base;          /* where the current chunk starts in buf */
    size_t pos;           /* buf[base..pos) is walked: whole elements of the current chunk */
    int stage;
    size_t seg_end;       /* a Segment of known size ends here; SIZE_MAX when unknown */
    int have_cluster;
    int rc;               /* sticky result */
    int finished;
    char detail[160];
    uint64_t offset, delivered;

    /* Per chunk: the tags copied NUL-terminated into one arena. */
    char *arena;
    size_t alen, acap;
    tag_ref *refs;
    size_t nrefs, crefs;
    tr_client_tag *tags;
    size_t ctags;
};

const char *tr_client_strerror(int rc) {
    switch (rc) {
    case TR_CLIENT_OK: return "ok";
    case TR_CLIENT_EMKV: return "malformed GetMedia output";
    case TR_CLIENT_ETOOBIG: return "a chunk is larger than the limit";
    case TR_CLIENT_ENOMEM: return "out of memory";
    case TR_CLIENT_ETRUNCATED: return "the answer ended inside a chunk";
    case TR_CLIENT_EARG: return "invalid argument";
    case TR_CLIENT_ECONNECT: return "cannot connect";
    case TR_CLIENT_EIO: return "connection error";
    case TR_CLIENT_ETIMEOUT: return "timed out";
    case TR_CLIENT_EHTTP: return "the server answered an error";
    default: return rc > 0 ? "stopped by a callback" : "unknown error";
    }
}

static int fail(tr_client_parser *p, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(tr_client_parser *p, int rc, const char *fmt, ...) {
    if (p->rc != 0) return p->rc;
    p->rc = rc;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->detail, sizeof p->detail, fmt, ap);
    va_end(ap);
    return rc;
}

tr_client_parser *tr_client_parser_new(const tr_client_callbacks *cb, void *ctx,
                                       size_t max_chunk_bytes) {
    tr_client_parser *p = calloc(1, sizeof *p);
    if (p == NULL) return NULL;
    if (cb != NULL) p->cb = *cb;
    p->ctx = ctx;
    if (max_chunk_bytes == 0) max_chunk_bytes = TR_CLIENT_DEFAULT_MAX_CHUNK_BYTES;
    if (max_chunk_bytes < MIN_MAX_CHUNK_BYTES) max_chunk_bytes = MIN_MAX_CHUNK_BYTES;
    p->max_chunk_bytes = max_chunk_bytes;
    p->stage = S_EBML;
    return p;
}

void tr_client_parser_free(tr_client_parser *p) {
    if (p == NULL) return;
    free(p->buf);
    free(p->arena);
    free(p->refs);
    free(p->tags);
    free(p);
}

const char *tr_client_parser_error_detail(const tr_client_parser *p) { return p->detail; }
uint64_t tr_client_parser_fragments(const tr_client_parser *p) { return p->delivered; }
uint64_t tr_client_parser_offset(const tr_client_parser *p) { return p->offset; }

/* ---- values of the AWS tags ---- */

/* "1726677687.758" (decimal seconds, optional sign and fraction) in ms, truncated past the
 * third decimal. -1 when it is not such a number or does not fit. */
static int parse_seconds(const char *s, int64_t *ms) {
    int neg = *s == '-';
    if (neg) s++;
    if (*s < '0' || *s > '9') return -1;
    int64_t whole = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (whole > (INT64_MAX / 1000 - 9) / 10) return -1;
        whole = whole * 10 + (*s - '0');
    }
    int64_t frac = 0;
    if (*s == '.') {
        s++;
        if (*s < '0' || *s > '9') return -1;
        for (int i = 0; *s >= '0' && *s <= '9'; s++, i++)
            if (i < 3) frac += (*s - '0') * (i == 0 ? 100 : i == 1 ? 10 : 1);
    }
    if (*s != '\0') return -1;
    *ms = neg ? -(whole * 1000 + frac) : whole * 1000 + frac;
    return 0;
}

/* A non-negative decimal integer up to max; -1 otherwise. */
static int64_t parse_count(const char *s, int64_t max) {
    int64_t v = 0;
    if (*s == '\0') return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (max - (*s - '0')) / 10) return -1;
        v = v * 10 + (*s - '0');
    }
    return v;
}

/* ---- tags of a chunk ---- */

static int arena_put(tr_client_parser *p, const char *s, size_t n, size_t *at) {
    if (n + 1 > p->acap - p->alen) {
        size_t cap = p->acap ? p->acap : 256;
        while (n + 1 > cap - p->alen) {
            if (cap > SIZE_MAX / 2) return -1;
            cap *= 2;
        }
        char *a = realloc(p->arena, cap);
        if (a == NULL) return -1;
        p->arena = a;
        p->acap = cap;
    }
    *at = p->alen;
    memcpy(p->arena + p->alen, s, n);
    p->arena[p->alen + n] = '\0';
    p->alen += n + 1;
    return 0;
}

/* tr_mkv_chunk_read's tag callback: every pair is kept; AWS's are picked out afterwards. */
#define TAG_OOM 1
static int collect_tag(void *ctx, const char *name, size_t nl, const char *value, size_t vl) {
    tr_client_parser *p = ctx;
    if (p->nrefs == p->crefs) {
        size_t c = p->crefs ? p->crefs * 2 : 16;
        tag_ref *r = realloc(p->refs, c * sizeof *r);
        if (r == NULL) return TAG_OOM;
        p->refs = r;
        p->crefs = c;
    }
    tag_ref *r = &p->refs[p->nrefs];
    if (arena_put(p, name, nl, &r->name) != 0 || arena_put(p, value, vl, &r->value) != 0)
        return TAG_OOM;
    p->nrefs++;
    return 0;
}

/* What a chunk says about itself, from its tags (the arena must not grow after this). */
typedef struct chunk_meta {
    const char *fragment_number, *server, *producer, *behind, *token, *error_code, *error_id;
    size_t ntags;          /* producer tags, in p->tags */
} chunk_meta;

static int sort_tags(tr_client_parser *p, chunk_meta *m) {
    static const char *const empty = "";
    *m = (chunk_meta){empty, NULL, NULL, NULL, empty, NULL, NULL, 0};
    if (p->nrefs > p->ctags) {
        tr_client_tag *t = realloc(p->tags, p->nrefs * sizeof *t);
        if (t == NULL) return -1;
        p->tags = t;
        p->ctags = p->nrefs;
    }
    for (size_t i = 0; i < p->nrefs; i++) {
        const char *name = p->arena + p->refs[i].name, *value = p->arena + p->refs[i].value;
        if (strcmp(name, TR_MKV_TAG_FRAGMENT_NUMBER) == 0) m->fragment_number = value;
        else if (strcmp(name, TR_MKV_TAG_SERVER_TIMESTAMP) == 0) m->server = value;
        else if (strcmp(name, TR_MKV_TAG_PRODUCER_TIMESTAMP) == 0) m->producer = value;
        else if (strcmp(name, TR_MKV_TAG_MILLIS_BEHIND_NOW) == 0) m->behind = value;
        else if (strcmp(name, TR_MKV_TAG_CONTINUATION_TOKEN) == 0) m->token = value;
        else if (strcmp(name, TR_MKV_TAG_ERROR_CODE) == 0) m->error_code = value;
        else if (strcmp(name, TR_MKV_TAG_ERROR_ID) == 0) m->error_id = value;
        else p->tags[m->ntags++] = (tr_client_tag){name, value};
    }
    return 0;
}

/* ---- frames ---- */

/* t TimecodeScale units in ms, as the ingest parser converts them (the product overflows 64
 * bits for epoch timecodes, so it is split). -1 when it does not fit. */
static int units_to_ms(int64_t t, uint64_t scale, int64_t *ms) {
    uint64_t u = t < 0 ? (uint64_t)0 - (uint64_t)t : (uint64_t)t;
    uint64_t hi = u / 1000000, lo = u % 1000000;
    if (scale != 0 && hi > (uint64_t)INT64_MAX / scale) return -1;
    if (scale > UINT64_MAX / 1000000) return -1; /* lo * scale must not wrap */
    uint64_t a = hi * scale, b = lo * scale / 1000000;
    if (a > (uint64_t)INT64_MAX - b) return -1;
    *ms = t < 0 ? -(int64_t)(a + b) : (int64_t)(a + b);
    return 0;
}

typedef struct frame_walk {
    tr_client_parser *p;
    const tr_mkv_header *h;
    tr_client_fragment *f;
    tr_client_track *tracks;
    int deliver;           /* 0: count and check; 1: call on_frame */
    uint32_t n;
} frame_walk;

#define FRAME_BAD_TIME 1 /* a timestamp out of range: the chunk is refused */

static int walk_frame(void *ctx, const tr_mkv_frame *fr) {
    frame_walk *w = ctx;
    int64_t ms, dur_ms = 0;
    if (units_to_ms(fr->timecode, w->h->timecode_scale_ns, &ms) != 0 ||
        fr->duration > INT64_MAX ||
        units_to_ms((int64_t)fr->duration, w->h->timecode_scale_ns, &dur_ms) != 0)
        return FRAME_BAD_TIME;
    size_t ti = 0;
    while (ti < w->h->ntracks && w->h->tracks[ti].number != fr->track) ti++;
    tr_client_fragment *f = w->f;
    if (!w->deliver) {
        if (w->n == UINT32_MAX) return FRAME_BAD_TIME;
        if (w->n == 0 || ms < f->first_frame_ms) f->first_frame_ms = ms;
        if (w->n == 0 || ms > f->last_frame_ms) f->last_frame_ms = ms;
        if (ti < w->h->ntracks) f->frames[ti]++;
        w->n++;
        return 0;
    }
    tr_client_frame out = {
        .track_number = fr->track,
        .track = ti < w->h->ntracks ? &w->tracks[ti] : NULL,
        .timestamp_ms = ms,
        .duration_ms = dur_ms,
        .keyframe = fr->keyframe,
        .data = fr->data,
        .len = fr->len,
        .index = w->n++,
    };
    return w->p->cb.on_frame(w->p->ctx, f, &out);
}

static void convert_tracks(const tr_mkv_header *h, tr_client_track *out) {
    for (size_t i = 0; i < h->ntracks; i++) {
        const tr_mkv_track *t = &h->tracks[i];
        out[i] = (tr_client_track){
            .number = t->number,
            .type = t->type,
            .codec_id = t->codec_id,
            .codec_private = t->codec_private_len ? t->codec_private : NULL,
            .codec_private_len = t->codec_private_len,
            .width = t->pixel_width,
            .height = t->pixel_height,
            .sampling_frequency = t->sampling_frequency,
            .channels = t->channels,
            .default_duration_ns = t->default_duration_ns,
        };
    }
}

/* ---- one whole chunk ---- */

static int deliver_error(tr_client_parser *p, const chunk_meta *m) {
    tr_client_error e = {
        .fragment_number = m->fragment_number,
        .error_code = m->error_code ? m->error_code : "",
        .error_id = m->error_id ? (int)parse_count(m->error_id, 1000000000) : -1,
    };
    p->delivered++;
    return p->cb.on_error ? p->cb.on_error(p->ctx, &e) : 0;
}

static int process_chunk(tr_client_parser *p, const uint8_t *chunk, size_t len) {
    p->alen = 0;
    p->nrefs = 0;
    tr_mkv_chunk_view v;
    int rc = tr_mkv_chunk_read(chunk, len, &v, collect_tag, p);
    if (rc == TAG_OOM) return fail(p, TR_CLIENT_ENOMEM, "out of memory for a chunk's tags");
    if (rc != 0 || v.len != len)
        return fail(p, TR_CLIENT_EMKV, "chunk %llu at byte %llu is malformed",
                    (unsigned long long)p->delivered,
                    (unsigned long long)(p->offset - p->len + (size_t)(chunk - p->buf)));
    chunk_meta m;
    if (sort_tags(p, &m) != 0) return fail(p, TR_CLIENT_ENOMEM, "out of memory for tags");
    if (m.error_code != NULL || m.error_id != NULL) return deliver_error(p, &m);

    tr_mkv_header h;
    tr_mkv_track mtracks[TR_MKV_MAX_TRACKS];
    if (tr_mkv_header_parse(chunk, len, &h, mtracks) != 0)
        return fail(p, TR_CLIENT_EMKV, "chunk %llu: no valid Info and Tracks",
                    (unsigned long long)p->delivered);
    if (v.cluster == NULL)
        return fail(p, TR_CLIENT_EMKV, "chunk %llu has neither a Cluster nor an error",
                    (unsigned long long)p->delivered);

    tr_client_track tracks[TR_CLIENT_MAX_TRACKS];
    convert_tracks(&h, tracks);
    tr_client_fragment f = {
        .fragment_number = m.fragment_number,
        .server_timestamp_ms = TR_CLIENT_NO_TIME,
        .producer_timestamp_ms = TR_CLIENT_NO_TIME,
        .millis_behind_now = m.behind ? parse_count(m.behind, INT64_MAX) : -1,
        .continuation_token = m.token,
        .tags = m.ntags ? p->tags : NULL,
        .ntags = m.ntags,
        .tracks = tracks,
        .ntracks = h.ntracks,
        .chunk = chunk,
        .chunk_len = len,
        .index = p->delivered,
    };
    if (m.server != NULL && parse_seconds(m.server, &f.server_timestamp_ms) != 0)
        f.server_timestamp_ms = TR_CLIENT_NO_TIME;
    if (m.producer != NULL && parse_seconds(m.producer, &f.producer_timestamp_ms) != 0)
        f.producer_timestamp_ms = TR_CLIENT_NO_TIME;

    /* First pass: check every block and count, so that a bad cluster is refused whole. */
    frame_walk w = {p, &h, &f, tracks, 0, 0};
    if (tr_mkv_cluster_frames(v.cluster, v.cluster_len, &h, walk_frame, &w) != 0)
        return fail(p, TR_CLIENT_EMKV, "chunk %llu (fragment %s): malformed Cluster",
                    (unsigned long long)p->delivered, f.fragment_number);
    f.frame_count = w.n;

    p->delivered++;
    if (p->cb.on_fragment && (rc = p->cb.on_fragment(p->ctx, &f)) != 0) return rc;
    if (p->cb.on_frame) {
        w.deliver = 1;
        w.n = 0;
        rc = tr_mkv_cluster_frames(v.cluster, v.cluster_len, &h, walk_frame, &w);
        if (rc != 0) return rc;
    }
    if (p->cb.on_fragment_end && (rc = p->cb.on_fragment_end(p->ctx, &f)) != 0) return rc;
    return 0;
}

/* ---- chunk boundaries ---- */

/* Whether a Tags element closes its chunk: it names an error or the continuation token.
 * Malformed Tags do not; tr_mkv_chunk_read refuses them later. */
static int name_is(const tr_ebml_elem *e, const char *s) {
    size_t n = e->size;
    while (n > 0 && e->data[n - 1] == 0) n--;
    return n == strlen(s) && memcmp(e->data, s, n) == 0;
}

static int tags_close_chunk(const uint8_t *d, size_t n) {
    const uint8_t *p = d, *end = d + n;
    tr_ebml_elem tag, st, e;
    while (tr_ebml_next(&p, end, &tag) == 1) {
        if (tag.id != TR_MKV_ID_TAG) continue;
        const uint8_t *q = tag.data, *qend = tag.data + tag.size;
        while (tr_ebml_next(&q, qend, &st) == 1) {
            if (st.id != TR_MKV_ID_SIMPLE_TAG) continue;
            const uint8_t *r = st.data, *rend = st.data + st.size;
            while (tr_ebml_next(&r, rend, &e) == 1) {
                if (e.id != TR_MKV_ID_TAG_NAME) continue;
                if (name_is(&e, TR_MKV_TAG_ERROR_CODE) || name_is(&e, TR_MKV_TAG_ERROR_ID) ||
                    name_is(&e, TR_MKV_TAG_CONTINUATION_TOKEN))
                    return 1;
            }
        }
    }
    return 0;
}

/* The element header at buf[pos]: 1 with its id and total length, 0 when more bytes are
 * needed, or an error. */
static int element_at(tr_client_parser *p, size_t pos, uint32_t *id, size_t *hdr,
                      uint64_t *size) {
    int il = tr_ebml_read_id(p->buf + pos, p->len - pos, id);
    if (il == 0) return 0;
    if (il < 0)
        return fail(p, TR_CLIENT_EMKV, "not an element at byte %llu",
                    (unsigned long long)(p->offset - p->len + pos));
    int sl = tr_ebml_read_size(p->buf + pos + il, p->len - pos - (size_t)il, size);
    if (sl == 0) return 0;
    if (sl < 0)
        return fail(p, TR_CLIENT_EMKV, "bad element size at byte %llu",
                    (unsigned long long)(p->offset - p->len + pos));
    *hdr = (size_t)il + (size_t)sl;
    return 1;
}

/* The chunk is buf[base..end): deliver it; the next one starts at end. */
static int chunk_done(tr_client_parser *p, size_t end) {
    int rc = process_chunk(p, p->buf + p->base, end - p->base);
    p->base = p->pos = end;
    p->stage = S_EBML;
    p->have_cluster = 0;
    /* A parser error is already recorded; a callback's value is recorded here. */
    if (rc != 0) return fail(p, rc, "stopped by a callback (%d)", rc);
    return 0;
}

/* Walks whole elements of buf; delivers each chunk as it completes. */
static int walk(tr_client_parser *p) {
    for (;;) {
        uint32_t id = 0;
        size_t hdr = 0;
        uint64_t size = 0;
        int r;
        if (p->stage == S_CHILDREN && p->seg_end != SIZE_MAX && p->pos == p->seg_end) {
            if ((r = chunk_done(p, p->pos)) != 0) return r;
            continue;
        }
        if (p->pos == p->len) return 0;
        if ((r = element_at(p, p->pos, &id, &hdr, &size)) <= 0) return r;
        size_t room = p->max_chunk_bytes - (p->pos - p->base);
        switch (p->stage) {
        case S_EBML:
            if (id != TR_EBML_ID_HEADER)
                return fail(p, TR_CLIENT_EMKV, "chunk %llu does not start with an EBML header",
                            (unsigned long long)p->delivered);
            if (size == TR_EBML_UNKNOWN_SIZE || size > room || hdr > room - size)
                return fail(p, TR_CLIENT_EMKV, "bad EBML header size");
            if (p->len - p->pos < hdr + size) return 0;
            p->pos += hdr + (size_t)size;
            p->stage = S_SEGMENT;
            break;
        case S_SEGMENT:
            if (id != TR_MKV_ID_SEGMENT)
                return fail(p, TR_CLIENT_EMKV, "chunk %llu: no Segment after the EBML header",
                            (unsigned long long)p->delivered);
            if (size != TR_EBML_UNKNOWN_SIZE && (size > room || hdr > room - size))
                return fail(p, TR_CLIENT_ETOOBIG, "a Segment of %llu bytes is over the limit",
                            (unsigned long long)size);
            p->pos += hdr;
            p->seg_end = size == TR_EBML_UNKNOWN_SIZE ? SIZE_MAX : p->pos + (size_t)size;
            p->stage = S_CHILDREN;
            break;
        default:
            if (id == TR_EBML_ID_HEADER && p->seg_end == SIZE_MAX) {
                if ((r = chunk_done(p, p->pos)) != 0) return r;
                break;
            }
            if (size == TR_EBML_UNKNOWN_SIZE)
                return fail(p, TR_CLIENT_EMKV, "element 0x%X of unknown size inside a chunk",
                            (unsigned)id);
            if (size > room || hdr > room - size)
                return fail(p, TR_CLIENT_ETOOBIG, "chunk %llu is over %zu bytes",
                            (unsigned long long)p->delivered, p->max_chunk_bytes);
            if (p->seg_end != SIZE_MAX && hdr + size > p->seg_end - p->pos)
                return fail(p, TR_CLIENT_EMKV, "element 0x%X runs past its Segment",
                            (unsigned)id);
            if (p->len - p->pos < hdr + size) return 0;
            size_t at = p->pos;
            p->pos += hdr + (size_t)size;
            if (id == TR_MKV_ID_CLUSTER) p->have_cluster = 1;
            if (id == TR_MKV_ID_TAGS && p->seg_end == SIZE_MAX &&
                tags_close_chunk(p->buf + at + hdr, (size_t)size) &&
                (r = chunk_done(p, p->pos)) != 0)
                return r;
            break;
        }
    }
}

static int append(tr_client_parser *p, const uint8_t *d, size_t n) {
    if (n > p->cap - p->len) {
        size_t cap = p->cap ? p->cap : 65536;
        while (n > cap - p->len) cap *= 2;
        uint8_t *b = realloc(p->buf, cap);
        if (b == NULL) return fail(p, TR_CLIENT_ENOMEM, "out of memory for a chunk");
        p->buf = b;
        p->cap = cap;
    }
    memcpy(p->buf + p->len, d, n);
    p->len += n;
    p->offset += n;
    return 0;
}

/* Drops the delivered chunks before base: once per slice, not once per chunk, so that many
 * small chunks in one slice do not move the rest of it each time. */
static void compact(tr_client_parser *p) {
    if (p->base == 0) return;
    memmove(p->buf, p->buf + p->base, p->len - p->base);
    p->len -= p->base;
    p->pos -= p->base;
    if (p->seg_end != SIZE_MAX) p->seg_end -= p->base;
    p->base = 0;
}

int tr_client_parser_feed(tr_client_parser *p, const void *data, size_t len) {
    if (p->rc != 0) return p->rc;
    if (p->finished) return fail(p, TR_CLIENT_EMKV, "fed after the end");
    const uint8_t *d = data;
    while (len > 0) {
        size_t n = len < FEED_SLICE_BYTES ? len : FEED_SLICE_BYTES;
        compact(p);
        int rc = append(p, d, n);
        if (rc == 0) rc = walk(p);
        if (rc != 0) return rc;
        d += n;
        len -= n;
    }
    return 0;
}

int tr_client_parser_finish(tr_client_parser *p) {
    if (p->rc != 0) return p->rc;
    if (p->finished) return 0;
    p->finished = 1;
    if (p->len == p->base && p->stage == S_EBML) return 0;
    /* A Segment of unknown size without closing Tags ends with the body, when it got as far
     * as its Cluster (else it is cut short: an error chunk would have closed). */
    if (p->stage == S_CHILDREN && p->seg_end == SIZE_MAX && p->pos == p->len && p->have_cluster)
        return chunk_done(p, p->pos);
    return fail(p, TR_CLIENT_ETRUNCATED, "the body ended inside chunk %llu (%zu bytes of it)",
                (unsigned long long)p->delivered, p->len - p->base);
}
