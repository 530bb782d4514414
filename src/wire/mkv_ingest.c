#include "wire/mkv_ingest.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/ebml.h"
#include "wire/mkv_chunk.h"

#define MAX_LACED_FRAMES 256
/* Room reserved before a cluster's children for its ID (4) and size (up to 8), written when
 * the cluster is complete: right-aligned, so the element needs no move. */
#define CLUSTER_HDR_ROOM 12
/* A fragment buffer larger than this is freed after its fragment rather than kept for the
 * next, so that one big fragment does not pin memory for the rest of a long connection. */
#define KEEP_CLUSTER_BUFFER (4u * 1024 * 1024)
#define MAX_TIMECODE_SCALE UINT64_C(1000000000000) /* 1000 s per unit: beyond any real use */
/* Frame times past +-2^53 ms (285,000 years) are refused, so that no sum or difference of
 * them can overflow. */
#define MAX_TIME_MS (INT64_C(1) << 53)

const char *tr_kvs_error_name(int error_id) {
    switch (error_id) {
    case TR_KVS_STREAM_READ_ERROR: return "STREAM_READ_ERROR";
    case TR_KVS_MAX_FRAGMENT_SIZE_REACHED: return "MAX_FRAGMENT_SIZE_REACHED";
    case TR_KVS_MAX_FRAGMENT_DURATION_REACHED: return "MAX_FRAGMENT_DURATION_REACHED";
    case TR_KVS_MAX_CONNECTION_DURATION_REACHED: return "MAX_CONNECTION_DURATION_REACHED";
    case TR_KVS_FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS:
        return "FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS";
    case TR_KVS_INVALID_MKV_DATA: return "INVALID_MKV_DATA";
    case TR_KVS_INVALID_PRODUCER_TIMESTAMP: return "INVALID_PRODUCER_TIMESTAMP";
    case TR_KVS_STREAM_NOT_ACTIVE: return "STREAM_NOT_ACTIVE";
    case TR_KVS_FRAGMENT_METADATA_LIMIT_REACHED: return "FRAGMENT_METADATA_LIMIT_REACHED";
    case TR_KVS_TRACK_NUMBER_MISMATCH: return "TRACK_NUMBER_MISMATCH";
    case TR_KVS_FRAMES_MISSING_FOR_TRACK: return "FRAMES_MISSING_FOR_TRACK";
    case TR_KVS_MORE_THAN_ALLOWED_TRACKS_FOUND: return "MORE_THAN_ALLOWED_TRACKS_FOUND";
    case TR_KVS_KMS_KEY_ACCESS_DENIED: return "KMS_KEY_ACCESS_DENIED";
    case TR_KVS_KMS_KEY_DISABLED: return "KMS_KEY_DISABLED";
    case TR_KVS_KMS_KEY_VALIDATION_ERROR: return "KMS_KEY_VALIDATION_ERROR";
    case TR_KVS_KMS_KEY_UNAVAILABLE: return "KMS_KEY_UNAVAILABLE";
    case TR_KVS_KMS_KEY_INVALID_USAGE: return "KMS_KEY_INVALID_USAGE";
    case TR_KVS_KMS_KEY_INVALID_STATE: return "KMS_KEY_INVALID_STATE";
    case TR_KVS_KMS_KEY_NOT_FOUND: return "KMS_KEY_NOT_FOUND";
    case TR_KVS_INTERNAL_ERROR: return "INTERNAL_ERROR";
    case TR_KVS_ARCHIVAL_ERROR: return "ARCHIVAL_ERROR";
    default: return "UNKNOWN_ERROR";
    }
}

void tr_mkv_limits_default(tr_mkv_limits *l) {
    l->max_fragment_bytes = 50u * 1024 * 1024;
    l->max_fragment_duration_ms = 10000;
    l->max_header_bytes = 1024 * 1024;
    l->max_tags_per_fragment = 10;
    l->max_tag_name_bytes = 128;
    l->max_tag_value_bytes = 256;
}

/* ---- time ---- */

/* t TimecodeScale units in milliseconds, exactly (floor toward zero); -1 on overflow. The
 * product t * scale overflows 64 bits for absolute epoch timecodes, so it is split. */
static int units_to_ms(int64_t t, uint64_t scale, int64_t *ms) {
    if (t < 0) {
        int64_t pos;
        if (units_to_ms(-t, scale, &pos) != 0) return -1; /* t > INT64_MIN: see callers */
        *ms = -pos;
        return 0;
    }
    uint64_t hi = (uint64_t)t / 1000000, lo = (uint64_t)t % 1000000;
    if (scale != 0 && hi > (uint64_t)INT64_MAX / scale) return -1;
    uint64_t a = hi * scale, b = lo * scale / 1000000; /* lo * scale < 1e6 * 1e12 */
    if (a > (uint64_t)INT64_MAX - b) return -1;
    *ms = (int64_t)(a + b);
    return 0;
}

/* ---- blocks ---- */

typedef struct block_info {
    uint64_t track;
    int16_t rel;            /* timecode relative to the cluster */
    int keyframe;
    uint64_t duration;      /* BlockDuration, when has_duration */
    int has_duration;
    unsigned nframes;
    const uint8_t *frames;  /* the frames' bytes, back to back */
    size_t sizes[MAX_LACED_FRAMES];
} block_info;

/* Xiph lacing: each size but the last as a run of 255s plus a final byte below 255. */
static int xiph_sizes(const uint8_t **p, const uint8_t *end, block_info *bi) {
    for (unsigned i = 0; i + 1 < bi->nframes; i++) {
        size_t size = 0;
        uint8_t b;
        do {
            if (*p >= end) return -1;
            b = *(*p)++;
            size += b;
        } while (b == 255);
        bi->sizes[i] = size;
    }
    return 0;
}

/* EBML lacing: the first size as a vint, then each next one as a signed vint difference. */
static int ebml_sizes(const uint8_t **p, const uint8_t *end, block_info *bi) {
    uint64_t first;
    int n = tr_ebml_read_size(*p, (size_t)(end - *p), &first);
    if (n <= 0 || first == TR_EBML_UNKNOWN_SIZE || first > SIZE_MAX / 2) return -1;
    *p += n;
    bi->sizes[0] = (size_t)first;
    for (unsigned i = 1; i + 1 < bi->nframes; i++) {
        uint64_t raw;
        n = tr_ebml_read_size(*p, (size_t)(end - *p), &raw);
        if (n <= 0 || raw == TR_EBML_UNKNOWN_SIZE) return -1;
        *p += n;
        /* Signed vint: the raw value minus half its range. */
        int64_t diff = (int64_t)raw - (int64_t)((UINT64_C(1) << (7 * n - 1)) - 1);
        int64_t size = (int64_t)bi->sizes[i - 1] + diff;
        if (size < 0) return -1;
        bi->sizes[i] = (size_t)size;
    }
    return 0;
}

/* Parses a SimpleBlock or Block body: track, timecode, flags, lacing. Frame sizes are checked
 * to add up to exactly the bytes present. */
static int parse_block(const uint8_t *b, size_t n, int simple, block_info *bi) {
    const uint8_t *p = b, *end = b + n;
    int tl = tr_ebml_read_size(p, n, &bi->track);
    if (tl <= 0 || bi->track == TR_EBML_UNKNOWN_SIZE || bi->track == 0) return -1;
    p += tl;
    if (end - p < 3) return -1;
    int rel = p[0] << 8 | p[1];
    bi->rel = (int16_t)(rel >= 32768 ? rel - 65536 : rel);
    uint8_t flags = p[2];
    p += 3;
    bi->keyframe = simple ? (flags & 0x80) != 0 : 1;
    unsigned lacing = (flags >> 1) & 3;
    if (lacing == 0) {
        bi->nframes = 1;
        bi->frames = p;
        bi->sizes[0] = (size_t)(end - p);
        return 0;
    }
    if (p >= end) return -1;
    bi->nframes = (unsigned)*p++ + 1;
    if (bi->nframes < 2) return -1; /* a lace holds at least two frames */
    if (lacing == 1 && xiph_sizes(&p, end, bi) != 0) return -1;
    if (lacing == 3 && ebml_sizes(&p, end, bi) != 0) return -1;
    size_t left = (size_t)(end - p);
    if (lacing == 2) {
        if (left % bi->nframes != 0) return -1;
        for (unsigned i = 0; i < bi->nframes; i++) bi->sizes[i] = left / bi->nframes;
    } else {
        size_t sum = 0;
        for (unsigned i = 0; i + 1 < bi->nframes; i++) {
            if (bi->sizes[i] > left - sum) return -1;
            sum += bi->sizes[i];
        }
        bi->sizes[bi->nframes - 1] = left - sum;
    }
    bi->frames = p;
    return 0;
}

/* A BlockGroup: its one Block, BlockDuration, and ReferenceBlock (present: not a keyframe). */
static int parse_block_group(const uint8_t *d, size_t n, block_info *bi) {
    const uint8_t *p = d, *end = d + n, *block = NULL;
    size_t block_len = 0;
    int has_ref = 0, has_duration = 0, r;
    uint64_t duration = 0;
    tr_ebml_elem e;
    while ((r = tr_ebml_next(&p, end, &e)) == 1) {
        if (e.id == TR_MKV_ID_BLOCK) {
            if (block != NULL) return -1;
            block = e.data;
            block_len = e.size;
        } else if (e.id == TR_MKV_ID_BLOCK_DURATION) {
            if (tr_ebml_get_uint(e.data, e.size, &duration) != 0) return -1;
            has_duration = 1;
        } else if (e.id == TR_MKV_ID_REFERENCE_BLOCK) {
            has_ref = 1;
        }
    }
    if (r < 0 || block == NULL || parse_block(block, block_len, 0, bi) != 0) return -1;
    bi->keyframe = !has_ref;
    bi->duration = duration;
    bi->has_duration = has_duration;
    return 0;
}

/* A cluster child holding frames: SimpleBlock or BlockGroup. 1 parsed, 0 not a block, -1. */
static int parse_any_block(uint32_t id, const uint8_t *d, size_t n, block_info *bi) {
    if (id == TR_MKV_ID_SIMPLE_BLOCK) {
        bi->has_duration = 0;
        bi->duration = 0;
        return parse_block(d, n, 1, bi) == 0 ? 1 : -1;
    }
    if (id == TR_MKV_ID_BLOCK_GROUP) return parse_block_group(d, n, bi) == 0 ? 1 : -1;
    return 0;
}

/* ---- header ---- */

/* The EBML header of a Matroska (or WebM) document this parser can read. */
static int check_ebml_header(const uint8_t *d, size_t n) {
    const uint8_t *p = d, *end = d + n;
    tr_ebml_elem e;
    int r, doctype_ok = 0;
    while ((r = tr_ebml_next(&p, end, &e)) == 1) {
        uint64_t v = 0;
        switch (e.id) {
        case TR_EBML_ID_DOCTYPE: {
            size_t len = e.size;
            while (len > 0 && e.data[len - 1] == 0) len--; /* strings may be NUL-padded */
            doctype_ok = (len == 8 && memcmp(e.data, "matroska", 8) == 0) ||
                         (len == 4 && memcmp(e.data, "webm", 4) == 0);
            break;
        }
        case TR_EBML_ID_READ_VERSION:
            if (tr_ebml_get_uint(e.data, e.size, &v) != 0 || v > 1) return -1;
            break;
        case TR_EBML_ID_MAX_ID_LENGTH:
            if (tr_ebml_get_uint(e.data, e.size, &v) != 0 || v > 4) return -1;
            break;
        case TR_EBML_ID_MAX_SIZE_LENGTH:
            if (tr_ebml_get_uint(e.data, e.size, &v) != 0 || v > 8) return -1;
            break;
        default:
            break;
        }
    }
    return r == 0 && doctype_ok ? 0 : -1;
}

/* Copies a string value into out (NUL-ended), up to its first NUL. -1 if it is too long or
 * empty. */
static int get_string(const tr_ebml_elem *e, char *out, size_t out_size) {
    size_t len = 0;
    while (len < e->size && e->data[len] != 0) len++;
    if (len == 0 || len >= out_size) return -1;
    memcpy(out, e->data, len);
    out[len] = '\0';
    return 0;
}

static int parse_video(const uint8_t *d, size_t n, tr_mkv_track *t) {
    const uint8_t *p = d, *end = d + n;
    tr_ebml_elem e;
    int r;
    while ((r = tr_ebml_next(&p, end, &e)) == 1) {
        if (e.id == TR_MKV_ID_PIXEL_WIDTH && tr_ebml_get_uint(e.data, e.size, &t->pixel_width))
            return -1;
        if (e.id == TR_MKV_ID_PIXEL_HEIGHT && tr_ebml_get_uint(e.data, e.size, &t->pixel_height))
            return -1;
    }
    return r;
}

static int parse_audio(const uint8_t *d, size_t n, tr_mkv_track *t) {
    const uint8_t *p = d, *end = d + n;
    tr_ebml_elem e;
    int r;
    while ((r = tr_ebml_next(&p, end, &e)) == 1) {
        if (e.id == TR_MKV_ID_SAMPLING_FREQUENCY &&
            tr_ebml_get_float(e.data, e.size, &t->sampling_frequency) != 0)
            return -1;
        if (e.id == TR_MKV_ID_CHANNELS && tr_ebml_get_uint(e.data, e.size, &t->channels) != 0)
            return -1;
    }
    return r;
}

/* One TrackEntry's fields (t zeroed by the caller); -1 if malformed or without number or
 * CodecID. */
static int parse_track_entry(const uint8_t *d, size_t n, tr_mkv_track *t) {
    const uint8_t *p = d, *end = d + n;
    tr_ebml_elem e;
    int r, ok = 0;
    uint64_t type = 0;
    t->sampling_frequency = 8000.0;
    t->channels = 1;
    while ((r = tr_ebml_next(&p, end, &e)) == 1) {
        switch (e.id) {
        case TR_MKV_ID_TRACK_NUMBER: ok = tr_ebml_get_uint(e.data, e.size, &t->number); break;
        case TR_MKV_ID_TRACK_UID: ok = tr_ebml_get_uint(e.data, e.size, &t->uid); break;
        case TR_MKV_ID_TRACK_TYPE: ok = tr_ebml_get_uint(e.data, e.size, &type); break;
        case TR_MKV_ID_CODEC_ID: ok = get_string(&e, t->codec_id, sizeof t->codec_id); break;
        case TR_MKV_ID_CODEC_PRIVATE:
            t->codec_private = e.data;
            t->codec_private_len = e.size;
            break;
        case TR_MKV_ID_DEFAULT_DURATION:
            ok = tr_ebml_get_uint(e.data, e.size, &t->default_duration_ns);
            break;
        case TR_MKV_ID_VIDEO: ok = parse_video(e.data, e.size, t); break;
        case TR_MKV_ID_AUDIO: ok = parse_audio(e.data, e.size, t); break;
        default: break;
        }
        if (ok != 0) return -1;
    }
    if (r != 0 || t->number == 0 || t->codec_id[0] == '\0' || type > 255) return -1;
    t->type = (unsigned)type;
    return 0;
}

static int parse_tracks(const uint8_t *d, size_t n, tr_mkv_track *tracks, size_t *ntracks) {
    const uint8_t *p = d, *end = d + n;
    tr_ebml_elem e;
    int r;
    *ntracks = 0;
    while ((r = tr_ebml_next(&p, end, &e)) == 1) {
        if (e.id != TR_MKV_ID_TRACK_ENTRY) continue;
        if (*ntracks == TR_MKV_MAX_TRACKS) return TR_KVS_MORE_THAN_ALLOWED_TRACKS_FOUND;
        tr_mkv_track *t = &tracks[*ntracks];
        memset(t, 0, sizeof *t);
        if (parse_track_entry(e.data, e.size, t) != 0) return TR_KVS_INVALID_MKV_DATA;
        for (size_t i = 0; i < *ntracks; i++)
            if (tracks[i].number == t->number) return TR_KVS_INVALID_MKV_DATA;
        (*ntracks)++;
    }
    return r == 0 && *ntracks > 0 ? 0 : TR_KVS_INVALID_MKV_DATA;
}

static int parse_info_scale(const uint8_t *d, size_t n, uint64_t *scale) {
    const uint8_t *p = d, *end = d + n;
    tr_ebml_elem e;
    int r;
    *scale = 1000000;
    while ((r = tr_ebml_next(&p, end, &e)) == 1)
        if (e.id == TR_MKV_ID_TIMECODE_SCALE && tr_ebml_get_uint(e.data, e.size, scale) != 0)
            return -1;
    return r == 0 && *scale > 0 && *scale <= MAX_TIMECODE_SCALE ? 0 : -1;
}

int tr_mkv_header_parse(const uint8_t *bytes, size_t len, tr_mkv_header *h,
                        tr_mkv_track tracks[TR_MKV_MAX_TRACKS]) {
    const uint8_t *p = bytes, *end = bytes + len;
    tr_ebml_elem e;
    memset(h, 0, sizeof *h);
    h->bytes = bytes;
    h->len = len;
    h->tracks = tracks;
    if (tr_ebml_next(&p, end, &e) != 1 || e.id != TR_EBML_ID_HEADER ||
        check_ebml_header(e.data, e.size) != 0)
        return TR_KVS_INVALID_MKV_DATA;
    /* The Segment: of unknown size in our headers, so it is read by hand. */
    uint32_t id;
    uint64_t size;
    int il = tr_ebml_read_id(p, (size_t)(end - p), &id);
    if (il <= 0 || id != TR_MKV_ID_SEGMENT) return TR_KVS_INVALID_MKV_DATA;
    p += il;
    int sl = tr_ebml_read_size(p, (size_t)(end - p), &size);
    if (sl <= 0) return TR_KVS_INVALID_MKV_DATA;
    p += sl;
    if (size != TR_EBML_UNKNOWN_SIZE && size < (uint64_t)(end - p)) end = p + size;
    int have_info = 0, have_tracks = 0;
    while (!(have_info && have_tracks)) {
        if (tr_ebml_next(&p, end, &e) != 1) return TR_KVS_INVALID_MKV_DATA;
        if (e.id == TR_MKV_ID_INFO) {
            if (have_info++ || parse_info_scale(e.data, e.size, &h->timecode_scale_ns) != 0)
                return TR_KVS_INVALID_MKV_DATA;
        } else if (e.id == TR_MKV_ID_TRACKS) {
            if (have_tracks++) return TR_KVS_INVALID_MKV_DATA;
            int err = parse_tracks(e.data, e.size, tracks, &h->ntracks);
            if (err != 0) return err;
        } else if (e.id == TR_MKV_ID_CLUSTER) {
            return TR_KVS_INVALID_MKV_DATA;
        }
    }
    return 0;
}

/* ---- the push parser ---- */

enum state {
    ST_HDR,  /* reading an element's ID and size */
    ST_BODY, /* collecting an element's data */
    ST_SKIP, /* passing over an element's data */
};

/* Where the element being read sits. */
enum level {
    L_TOP,     /* the EBML header and the Segment */
    L_SEGMENT, /* Segment children: Info, Tracks, Tags, Cluster, ... */
    L_CLUSTER, /* Cluster children: Timecode, SimpleBlock, BlockGroup, ... */
};

/* What the frames of the open cluster have shown so far. */
typedef struct cluster_stats {
    int have_tc;
    uint64_t tc;
    int64_t tc_ms;
    int saw_block;
    uint32_t frames[TR_MKV_MAX_TRACKS];
    uint32_t frame_count;
    int64_t first_ms, last_ms;
    int64_t track_min_ms[TR_MKV_MAX_TRACKS], track_max_ms[TR_MKV_MAX_TRACKS];
    int64_t track_last_dur_ms[TR_MKV_MAX_TRACKS]; /* of each track's latest frame, -1 unknown */
    int key_first;           /* -1 until the deciding block is seen */
} cluster_stats;

struct tr_mkv_parser {
    tr_mkv_callbacks cb;
    void *ctx;
    tr_mkv_limits lim;

    enum state state;
    enum level level;
    int err;
    int64_t err_tc;
    char detail[160];
    uint64_t offset;
    int finished;

    /* the element header being read */
    uint8_t hdr[12];
    size_t hdr_len;
    int id_len;
    uint32_t id;

    /* the element whose data is being collected or skipped */
    uint32_t body_id;
    uint64_t body_left;
    size_t child_off;  /* a cluster child's data offset in clu */
    tr_ebml_buf elem;  /* data of a top-level or Segment-level element */

    int seen_ebml, seen_segment, segment_done;
    uint64_t seg_left; /* TR_EBML_UNKNOWN_SIZE when unknown */

    /* the header, as handed to on_header */
    tr_ebml_buf ebml_el, info_el, tracks_el, header;
    int header_done;
    tr_mkv_track tracks[TR_MKV_MAX_TRACKS];
    tr_mkv_header h;
    int has_video;

    /* producer metadata waiting for the next cluster: "name\0value\0" pairs */
    tr_ebml_buf tag_text;
    size_t *tag_offs; /* 2 per tag, max_tags_per_fragment tags */
    unsigned ntags;
    tr_mkv_tag *tag_list;
    tr_ebml_buf tags_el;

    /* the open cluster */
    int in_cluster;
    uint64_t clu_left;   /* TR_EBML_UNKNOWN_SIZE when unknown */
    tr_ebml_buf clu;     /* CLUSTER_HDR_ROOM bytes, then the children kept */
    cluster_stats cs;

    int have_prev;
    uint64_t prev_tc;
};

static int fail(tr_mkv_parser *p, int err, int64_t tc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Records the first error; the parser is spent from here on. Returns err. */
static int fail(tr_mkv_parser *p, int err, int64_t tc, const char *fmt, ...) {
    if (p->err) return p->err;
    p->err = err;
    p->err_tc = tc;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->detail, sizeof p->detail, fmt, ap);
    va_end(ap);
    return err;
}

/* The open cluster's timecode for an error about it, -1 before its Timecode. */
static int64_t cur_tc(const tr_mkv_parser *p) {
    return p->in_cluster && p->cs.have_tc ? (int64_t)p->cs.tc : -1;
}

tr_mkv_parser *tr_mkv_parser_new(const tr_mkv_callbacks *cb, void *ctx,
                                 const tr_mkv_limits *limits) {
    tr_mkv_parser *p = calloc(1, sizeof *p);
    if (p == NULL) return NULL;
    if (cb != NULL) p->cb = *cb;
    p->ctx = ctx;
    if (limits != NULL)
        p->lim = *limits;
    else
        tr_mkv_limits_default(&p->lim);
    p->err_tc = -1;
    p->level = L_TOP;
    p->state = ST_HDR;
    size_t hmax = p->lim.max_header_bytes;
    tr_ebml_buf_init(&p->elem, hmax);
    tr_ebml_buf_init(&p->ebml_el, hmax + 16);
    tr_ebml_buf_init(&p->info_el, hmax + 16);
    tr_ebml_buf_init(&p->tracks_el, hmax + 16);
    tr_ebml_buf_init(&p->header, 0);
    tr_ebml_buf_init(&p->tag_text, 0);
    tr_ebml_buf_init(&p->tags_el, 0);
    tr_ebml_buf_init(&p->clu, 0);
    size_t nt = p->lim.max_tags_per_fragment ? p->lim.max_tags_per_fragment : 1;
    p->tag_offs = calloc(2 * nt, sizeof *p->tag_offs);
    p->tag_list = calloc(nt, sizeof *p->tag_list);
    if (p->tag_offs == NULL || p->tag_list == NULL) {
        tr_mkv_parser_free(p);
        return NULL;
    }
    return p;
}

void tr_mkv_parser_free(tr_mkv_parser *p) {
    if (p == NULL) return;
    tr_ebml_buf_free(&p->elem);
    tr_ebml_buf_free(&p->ebml_el);
    tr_ebml_buf_free(&p->info_el);
    tr_ebml_buf_free(&p->tracks_el);
    tr_ebml_buf_free(&p->header);
    tr_ebml_buf_free(&p->tag_text);
    tr_ebml_buf_free(&p->tags_el);
    tr_ebml_buf_free(&p->clu);
    free(p->tag_offs);
    free(p->tag_list);
    free(p);
}

int64_t tr_mkv_parser_error_timecode(const tr_mkv_parser *p) { return p->err ? p->err_tc : -1; }
const char *tr_mkv_parser_error_detail(const tr_mkv_parser *p) { return p->detail; }
uint64_t tr_mkv_parser_offset(const tr_mkv_parser *p) { return p->offset; }

/* Segment-level IDs: inside a cluster of unknown size, any of them (or a new EBML header)
 * ends the cluster, since none can be its child. */
static int is_segment_level(uint32_t id) {
    switch (id) {
    case TR_EBML_ID_HEADER: case TR_MKV_ID_SEGMENT:
    case TR_MKV_ID_SEEKHEAD: case TR_MKV_ID_INFO: case TR_MKV_ID_TRACKS:
    case TR_MKV_ID_CLUSTER: case TR_MKV_ID_CUES: case TR_MKV_ID_ATTACHMENTS:
    case TR_MKV_ID_CHAPTERS: case TR_MKV_ID_TAGS:
        return 1;
    default:
        return 0;
    }
}

/* Bytes the current element may still take before its parents end (SIZE_MAX: no bound). */
static uint64_t room(const tr_mkv_parser *p) {
    uint64_t r = UINT64_MAX;
    if (p->level >= L_SEGMENT && p->seg_left != TR_EBML_UNKNOWN_SIZE) r = p->seg_left;
    if (p->level == L_CLUSTER && p->clu_left != TR_EBML_UNKNOWN_SIZE && p->clu_left < r)
        r = p->clu_left;
    return r;
}

/* n bytes consumed inside the open Segment and cluster. */
static void account(tr_mkv_parser *p, size_t n) {
    if (p->level >= L_SEGMENT && p->seg_left != TR_EBML_UNKNOWN_SIZE) p->seg_left -= n;
    if (p->level == L_CLUSTER && p->clu_left != TR_EBML_UNKNOWN_SIZE) p->clu_left -= n;
}

/* ---- producer tags ---- */

static int starts_with(const uint8_t *s, size_t n, const char *prefix) {
    size_t pl = strlen(prefix);
    return n >= pl && memcmp(s, prefix, pl) == 0;
}

/* A string value's length up to its first NUL (EBML strings may be NUL-padded). */
static size_t str_len(const uint8_t *s, size_t n) {
    size_t len = 0;
    while (len < n && s[len] != 0) len++;
    return len;
}

static int add_tag(tr_mkv_parser *p, const uint8_t *name, size_t nl, const uint8_t *value,
                   size_t vl) {
    if (nl > p->lim.max_tag_name_bytes || vl > p->lim.max_tag_value_bytes)
        return fail(p, TR_KVS_FRAGMENT_METADATA_LIMIT_REACHED, -1,
                    "a metadata tag name (%zu bytes) or value (%zu bytes) is too long", nl, vl);
    if (p->ntags >= p->lim.max_tags_per_fragment)
        return fail(p, TR_KVS_FRAGMENT_METADATA_LIMIT_REACHED, -1,
                    "more than %u metadata tags for one fragment",
                    p->lim.max_tags_per_fragment);
    p->tag_offs[2 * p->ntags] = p->tag_text.len;
    tr_ebml_put_bytes(&p->tag_text, name, nl);
    tr_ebml_put_bytes(&p->tag_text, "", 1);
    p->tag_offs[2 * p->ntags + 1] = p->tag_text.len;
    tr_ebml_put_bytes(&p->tag_text, value, vl);
    tr_ebml_put_bytes(&p->tag_text, "", 1);
    if (p->tag_text.failed) return fail(p, TR_KVS_INTERNAL_ERROR, -1, "out of memory");
    p->ntags++;
    return 0;
}

static int parse_simple_tag(tr_mkv_parser *p, const uint8_t *d, size_t n) {
    const uint8_t *q = d, *end = d + n, *name = NULL, *value = NULL;
    size_t nl = 0, vl = 0;
    tr_ebml_elem e;
    int r;
    while ((r = tr_ebml_next(&q, end, &e)) == 1) {
        if (e.id == TR_MKV_ID_TAG_NAME) {
            name = e.data;
            nl = str_len(e.data, e.size);
        } else if (e.id == TR_MKV_ID_TAG_STRING) {
            value = e.data;
            vl = str_len(e.data, e.size);
        }
    }
    if (r != 0 || name == NULL || nl == 0)
        return fail(p, TR_KVS_INVALID_MKV_DATA, -1, "a SimpleTag without a TagName");
    /* END_OF_FRAGMENT has done its work already (its Tags element ended the cluster); other
     * AWS names are the server's own. */
    if (starts_with(name, nl, "AWS")) return 0;
    return add_tag(p, name, nl, value ? value : (const uint8_t *)"", vl);
}

static int parse_tags(tr_mkv_parser *p, const uint8_t *d, size_t n) {
    const uint8_t *q = d, *end = d + n;
    tr_ebml_elem tag, e;
    int r, r2 = 0;
    while ((r = tr_ebml_next(&q, end, &tag)) == 1) {
        if (tag.id != TR_MKV_ID_TAG) continue;
        const uint8_t *t = tag.data, *tend = tag.data + tag.size;
        while ((r2 = tr_ebml_next(&t, tend, &e)) == 1)
            if (e.id == TR_MKV_ID_SIMPLE_TAG && parse_simple_tag(p, e.data, e.size) != 0)
                return p->err;
        if (r2 != 0) break;
    }
    if (r != 0 || r2 != 0) return fail(p, TR_KVS_INVALID_MKV_DATA, -1, "malformed Tags");
    return 0;
}

/* ---- the header ---- */

/* Info without what would be wrong in a chunk (Duration: of the whole file, if the muxer
 * wrote one) or no longer checkable (CRC-32 over the removed bytes). */
static int keep_info(tr_mkv_parser *p, const uint8_t *d, size_t n) {
    const uint8_t *q = d, *end = d + n;
    tr_ebml_elem e;
    int r;
    size_t at = tr_ebml_master_begin(&p->info_el, TR_MKV_ID_INFO);
    while ((r = tr_ebml_next(&q, end, &e)) == 1) {
        if (e.id == TR_MKV_ID_DURATION || e.id == TR_EBML_ID_CRC32 || e.id == TR_EBML_ID_VOID)
            continue;
        tr_ebml_put_bytes(&p->info_el, e.data - e.hdr_len, e.hdr_len + e.size);
    }
    tr_ebml_master_end(&p->info_el, at);
    if (r != 0) return fail(p, TR_KVS_INVALID_MKV_DATA, -1, "malformed Info");
    if (p->info_el.failed) return fail(p, TR_KVS_INTERNAL_ERROR, -1, "out of memory");
    return 0;
}

static void put_element(tr_ebml_buf *b, uint32_t id, const uint8_t *d, size_t n) {
    tr_ebml_put_id(b, id);
    tr_ebml_put_size(b, n);
    tr_ebml_put_bytes(b, d, n);
}

/* Once Info and Tracks are both in: the header, checked by the parser consumers use. */
static int make_header(tr_mkv_parser *p) {
    if (p->header_done || p->info_el.len == 0 || p->tracks_el.len == 0) return 0;
    tr_ebml_buf *b = &p->header;
    tr_ebml_put_bytes(b, p->ebml_el.data, p->ebml_el.len);
    tr_ebml_put_id(b, TR_MKV_ID_SEGMENT);
    tr_ebml_put_unknown_size(b);
    tr_ebml_put_bytes(b, p->info_el.data, p->info_el.len);
    tr_ebml_put_bytes(b, p->tracks_el.data, p->tracks_el.len);
    if (b->failed) return fail(p, TR_KVS_INTERNAL_ERROR, -1, "out of memory");
    int err = tr_mkv_header_parse(b->data, b->len, &p->h, p->tracks);
    if (err == TR_KVS_MORE_THAN_ALLOWED_TRACKS_FOUND)
        return fail(p, err, -1, "more than %d tracks", TR_MKV_MAX_TRACKS);
    if (err != 0) return fail(p, err, -1, "invalid Info or Tracks");
    for (size_t i = 0; i < p->h.ntracks; i++)
        if (p->tracks[i].type == TR_MKV_TRACK_VIDEO) p->has_video = 1;
    p->header_done = 1;
    if (p->cb.on_header != NULL) {
        int rc = p->cb.on_header(p->ctx, &p->h);
        if (rc != 0) return fail(p, rc, -1, "stopped by on_header");
    }
    return 0;
}

/* A Segment-level element's data is complete. */
static int segment_element_done(tr_mkv_parser *p, const uint8_t *d, size_t n) {
    switch (p->body_id) {
    case TR_EBML_ID_HEADER:
        if (check_ebml_header(d, n) != 0)
            return fail(p, TR_KVS_INVALID_MKV_DATA, -1, "not a Matroska EBML header");
        put_element(&p->ebml_el, TR_EBML_ID_HEADER, d, n);
        if (p->ebml_el.failed) return fail(p, TR_KVS_INTERNAL_ERROR, -1, "out of memory");
        p->seen_ebml = 1;
        return 0;
    case TR_MKV_ID_INFO:
        if (keep_info(p, d, n) != 0) return p->err;
        return make_header(p);
    case TR_MKV_ID_TRACKS:
        put_element(&p->tracks_el, TR_MKV_ID_TRACKS, d, n);
        if (p->tracks_el.failed) return fail(p, TR_KVS_INTERNAL_ERROR, -1, "out of memory");
        return make_header(p);
    case TR_MKV_ID_TAGS:
        return parse_tags(p, d, n);
    default:
        return 0;
    }
}

/* ---- clusters ---- */

static int open_cluster(tr_mkv_parser *p, uint64_t size) {
    tr_ebml_buf_reset(&p->clu);
    if (tr_ebml_buf_reserve(&p->clu, CLUSTER_HDR_ROOM) != 0)
        return fail(p, TR_KVS_INTERNAL_ERROR, -1, "out of memory");
    p->clu.len = CLUSTER_HDR_ROOM;
    p->in_cluster = 1;
    p->clu_left = size;
    p->level = L_CLUSTER;
    memset(&p->cs, 0, sizeof p->cs);
    p->cs.key_first = -1;
    return 0;
}

static int track_index(const tr_mkv_parser *p, uint64_t number) {
    for (size_t i = 0; i < p->h.ntracks; i++)
        if (p->tracks[i].number == number) return (int)i;
    return -1;
}

/* One frame of track ti at ms, with duration dur_ms (-1 unknown), into the stats. */
static void count_frame(cluster_stats *cs, int ti, int64_t ms, int64_t dur_ms) {
    if (cs->frames[ti] == 0 || ms < cs->track_min_ms[ti]) cs->track_min_ms[ti] = ms;
    /* Ties go to the later frame in the stream. */
    if (cs->frames[ti] == 0 || ms >= cs->track_max_ms[ti]) {
        cs->track_max_ms[ti] = ms;
        cs->track_last_dur_ms[ti] = dur_ms;
    }
    if (cs->frame_count == 0 || ms < cs->first_ms) cs->first_ms = ms;
    if (cs->frame_count == 0 || ms > cs->last_ms) cs->last_ms = ms;
    cs->frames[ti]++;
    cs->frame_count++;
}

static int add_block(tr_mkv_parser *p, const block_info *bi) {
    cluster_stats *cs = &p->cs;
    int64_t tc = cur_tc(p);
    int ti = track_index(p, bi->track);
    if (ti < 0)
        return fail(p, TR_KVS_TRACK_NUMBER_MISMATCH, tc,
                    "a block for track %llu, which Tracks does not declare",
                    (unsigned long long)bi->track);
    if (cs->frame_count > UINT32_MAX - bi->nframes)
        return fail(p, TR_KVS_INVALID_MKV_DATA, tc, "too many frames in one cluster");
    const tr_mkv_track *t = &p->tracks[ti];
    int64_t ms, dur_ms = -1;
    uint64_t step_ms = t->default_duration_ns / 1000000;
    if (units_to_ms((int64_t)cs->tc + bi->rel, p->h.timecode_scale_ns, &ms) != 0 ||
        ms > MAX_TIME_MS || ms < -MAX_TIME_MS || step_ms > MAX_TIME_MS / MAX_LACED_FRAMES)
        return fail(p, TR_KVS_INVALID_MKV_DATA, tc, "a block timecode out of range");
    if (bi->has_duration) {
        int64_t total;
        if (bi->duration > INT64_MAX ||
            units_to_ms((int64_t)bi->duration, p->h.timecode_scale_ns, &total) != 0)
            return fail(p, TR_KVS_INVALID_MKV_DATA, tc, "a BlockDuration out of range");
        dur_ms = total / bi->nframes;
    } else if (t->default_duration_ns > 0) {
        dur_ms = (int64_t)step_ms;
    }
    if (dur_ms > MAX_TIME_MS) dur_ms = MAX_TIME_MS;
    if (cs->key_first < 0 && (!p->has_video || t->type == TR_MKV_TRACK_VIDEO))
        cs->key_first = bi->keyframe;
    for (unsigned k = 0; k < bi->nframes; k++)
        count_frame(cs, ti, ms + (int64_t)step_ms * k, dur_ms);
    cs->saw_block = 1;
    return 0;
}

static int cluster_timecode(tr_mkv_parser *p, const uint8_t *d, size_t n) {
    cluster_stats *cs = &p->cs;
    if (cs->have_tc || cs->saw_block)
        return fail(p, TR_KVS_INVALID_MKV_DATA, cur_tc(p),
                    "a cluster Timecode repeated or after blocks");
    if (tr_ebml_get_uint(d, n, &cs->tc) != 0 || cs->tc > (uint64_t)INT64_MAX - 32768 ||
        units_to_ms((int64_t)cs->tc, p->h.timecode_scale_ns, &cs->tc_ms) != 0)
        return fail(p, TR_KVS_INVALID_MKV_DATA, -1, "a cluster Timecode out of range");
    cs->have_tc = 1;
    if (p->cb.on_fragment_start != NULL) {
        int rc = p->cb.on_fragment_start(p->ctx, cs->tc, cs->tc_ms);
        if (rc != 0) return fail(p, rc, (int64_t)cs->tc, "stopped by on_fragment_start");
    }
    return 0;
}

/* A cluster child's data is complete (it sits in clu at child_off). */
static int cluster_child_done(tr_mkv_parser *p) {
    const uint8_t *d = p->clu.data + p->child_off;
    size_t n = p->clu.len - p->child_off;
    if (p->body_id == TR_MKV_ID_TIMECODE) return cluster_timecode(p, d, n);
    block_info bi;
    int r = parse_any_block(p->body_id, d, n, &bi);
    if (r == 0) return 0; /* kept as it is, with no meaning here */
    if (!p->cs.have_tc)
        return fail(p, TR_KVS_INVALID_MKV_DATA, -1, "a block before the cluster Timecode");
    if (r < 0) return fail(p, TR_KVS_INVALID_MKV_DATA, cur_tc(p), "a malformed block");
    return add_block(p, &bi);
}

/* The checks KVS makes on a whole fragment. */
static int check_fragment(tr_mkv_parser *p) {
    const cluster_stats *cs = &p->cs;
    int64_t tc = (int64_t)cs->tc;
    if (p->have_prev && cs->tc <= p->prev_tc)
        return fail(p, TR_KVS_FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS, tc,
                    "cluster timecode %llu is not after the previous one, %llu",
                    (unsigned long long)cs->tc, (unsigned long long)p->prev_tc);
    for (size_t i = 0; i < p->h.ntracks; i++)
        if (cs->frames[i] == 0)
            return fail(p, TR_KVS_FRAMES_MISSING_FOR_TRACK, tc, "no frames for track %llu",
                        (unsigned long long)p->tracks[i].number);
    /* The span between frames, not counting the last frame's own duration: a 10 s GOP of
     * frames 0 .. 10 s - 1 frame is within the limit. */
    if (cs->last_ms - cs->first_ms > p->lim.max_fragment_duration_ms)
        return fail(p, TR_KVS_MAX_FRAGMENT_DURATION_REACHED, tc,
                    "fragment spans %lld ms", (long long)(cs->last_ms - cs->first_ms));
    return 0;
}

/* Where the fragment's media ends: the latest end of any track's last frame, that frame's
 * duration being its BlockDuration or DefaultDuration, else the mean spacing of its track's
 * frames in this fragment. */
static int64_t fragment_end_ms(const cluster_stats *cs, size_t ntracks) {
    int64_t end = cs->last_ms;
    for (size_t ti = 0; ti < ntracks; ti++) {
        if (cs->frames[ti] == 0) continue;
        int64_t dur = cs->track_last_dur_ms[ti];
        if (dur < 0)
            dur = cs->frames[ti] < 2 ? 0
                                     : (cs->track_max_ms[ti] - cs->track_min_ms[ti]) /
                                           (cs->frames[ti] - 1);
        if (cs->track_max_ms[ti] + dur > end) end = cs->track_max_ms[ti] + dur;
    }
    return end;
}

/* The pending producer metadata as a list and as one Tags element. */
static int make_fragment_tags(tr_mkv_parser *p) {
    for (unsigned i = 0; i < p->ntags; i++) {
        p->tag_list[i].name = (const char *)p->tag_text.data + p->tag_offs[2 * i];
        p->tag_list[i].value = (const char *)p->tag_text.data + p->tag_offs[2 * i + 1];
    }
    tr_ebml_buf_reset(&p->tags_el);
    tr_mkv_put_tags(&p->tags_el, p->tag_list, p->ntags);
    return p->tags_el.failed ? fail(p, TR_KVS_INTERNAL_ERROR, -1, "out of memory") : 0;
}

static void end_cluster(tr_mkv_parser *p) {
    p->in_cluster = 0;
    p->level = L_SEGMENT;
    if (p->clu.cap > KEEP_CLUSTER_BUFFER) tr_ebml_buf_free(&p->clu);
}

/* The open cluster is complete: check it and hand it out. */
static int close_cluster(tr_mkv_parser *p) {
    cluster_stats *cs = &p->cs;
    if (!cs->have_tc) {
        end_cluster(p);
        return fail(p, TR_KVS_INVALID_MKV_DATA, -1, "a cluster without a Timecode");
    }
    if (p->clu.failed) {
        end_cluster(p);
        return fail(p, TR_KVS_INTERNAL_ERROR, (int64_t)cs->tc, "out of memory");
    }
    if (check_fragment(p) != 0 || make_fragment_tags(p) != 0) {
        end_cluster(p);
        return p->err;
    }
    /* The cluster's ID and size, right before its children. */
    size_t body = p->clu.len - CLUSTER_HDR_ROOM;
    uint8_t hdr[CLUSTER_HDR_ROOM];
    int il = tr_ebml_encode_id(hdr, TR_MKV_ID_CLUSTER);
    int sl = tr_ebml_encode_size(hdr + il, body);
    size_t hl = (size_t)il + (size_t)sl;
    memcpy(p->clu.data + CLUSTER_HDR_ROOM - hl, hdr, hl);

    tr_mkv_fragment f;
    memset(&f, 0, sizeof f);
    f.cluster = p->clu.data + CLUSTER_HDR_ROOM - hl;
    f.cluster_len = hl + body;
    f.timecode = cs->tc;
    f.timecode_ms = cs->tc_ms;
    f.first_frame_ms = cs->first_ms;
    f.last_frame_ms = cs->last_ms;
    f.duration_ms = fragment_end_ms(cs, p->h.ntracks) - cs->first_ms;
    memcpy(f.frames, cs->frames, sizeof f.frames);
    f.frame_count = cs->frame_count;
    f.key_first = cs->key_first > 0;
    if (p->ntags > 0) {
        f.tags = p->tags_el.data;
        f.tags_len = p->tags_el.len;
        f.tag_list = p->tag_list;
        f.ntags = p->ntags;
    }
    int rc = p->cb.on_fragment != NULL ? p->cb.on_fragment(p->ctx, &f) : 0;
    p->have_prev = 1;
    p->prev_tc = cs->tc;
    p->ntags = 0;
    tr_ebml_buf_reset(&p->tag_text);
    end_cluster(p);
    return rc != 0 ? fail(p, rc, (int64_t)f.timecode, "stopped by on_fragment") : 0;
}

/* ---- the state machine ---- */

/* Starts collecting (or, when keep is 0, skipping) an element's data. */
static void begin_body(tr_mkv_parser *p, uint32_t id, uint64_t size, int keep) {
    p->body_id = id;
    p->body_left = size;
    p->state = keep ? ST_BODY : ST_SKIP;
    if (keep && p->level != L_CLUSTER) {
        tr_ebml_buf_reset(&p->elem);
        tr_ebml_buf_reserve(&p->elem, (size_t)size); /* checked against the limit by callers */
    }
}

static int top_element(tr_mkv_parser *p, uint32_t id, uint64_t size) {
    if (p->segment_done)
        return fail(p, TR_KVS_INVALID_MKV_DATA, -1,
                    "data after the Segment: a PutMedia body holds one Segment");
    if (!p->seen_ebml) {
        if (id != TR_EBML_ID_HEADER)
            return fail(p, TR_KVS_INVALID_MKV_DATA, -1, "the body does not start with EBML");
        if (size == TR_EBML_UNKNOWN_SIZE || size > p->lim.max_header_bytes)
            return fail(p, TR_KVS_INVALID_MKV_DATA, -1, "EBML header of bad size");
        begin_body(p, id, size, 1);
        return 0;
    }
    if (id != TR_MKV_ID_SEGMENT)
        return fail(p, TR_KVS_INVALID_MKV_DATA, -1, "expected a Segment after the EBML header");
    p->seen_segment = 1;
    p->seg_left = size;
    p->level = L_SEGMENT;
    return 0;
}

static int segment_element(tr_mkv_parser *p, uint32_t id, uint64_t size) {
    if (size != TR_EBML_UNKNOWN_SIZE && size > room(p))
        return fail(p, TR_KVS_INVALID_MKV_DATA, -1, "an element runs past the Segment's end");
    switch (id) {
    case TR_EBML_ID_HEADER:
    case TR_MKV_ID_SEGMENT:
        return fail(p, TR_KVS_INVALID_MKV_DATA, -1,
                    "a second EBML header or Segment: a PutMedia body holds one Segment");
    case TR_MKV_ID_CLUSTER:
        if (!p->header_done)
            return fail(p, TR_KVS_INVALID_MKV_DATA, -1, "a Cluster before Info and Tracks");
        return open_cluster(p, size);
    case TR_MKV_ID_INFO:
    case TR_MKV_ID_TRACKS:
        if ((id == TR_MKV_ID_INFO ? p->info_el.len : p->tracks_el.len) != 0)
            return fail(p, TR_KVS_INVALID_MKV_DATA, -1, "a second Info or Tracks");
        if (size == TR_EBML_UNKNOWN_SIZE || size > p->lim.max_header_bytes)
            return fail(p, TR_KVS_INVALID_MKV_DATA, -1, "Info or Tracks of bad size");
        begin_body(p, id, size, 1);
        return 0;
    case TR_MKV_ID_TAGS:
        if (size == TR_EBML_UNKNOWN_SIZE)
            return fail(p, TR_KVS_INVALID_MKV_DATA, -1, "Tags of unknown size");
        if (size > p->lim.max_header_bytes)
            return fail(p, TR_KVS_FRAGMENT_METADATA_LIMIT_REACHED, -1, "a Tags element too big");
        begin_body(p, id, size, 1);
        return 0;
    default:
        if (size == TR_EBML_UNKNOWN_SIZE)
            return fail(p, TR_KVS_INVALID_MKV_DATA, -1, "element 0x%X of unknown size", id);
        begin_body(p, id, size, 0);
        return 0;
    }
}

static int cluster_element(tr_mkv_parser *p, uint32_t id, uint64_t size) {
    int64_t tc = cur_tc(p);
    if (size == TR_EBML_UNKNOWN_SIZE || size > room(p))
        return fail(p, TR_KVS_INVALID_MKV_DATA, tc,
                    "a cluster child of unknown size or past the cluster's end");
    if (is_segment_level(id)) /* only reached in a cluster of known size */
        return fail(p, TR_KVS_INVALID_MKV_DATA, tc, "a top-level element inside a Cluster");
    if (id == TR_EBML_ID_VOID || id == TR_EBML_ID_CRC32 || id == TR_MKV_ID_POSITION ||
        id == TR_MKV_ID_PREV_SIZE) {
        begin_body(p, id, size, 0);
        return 0;
    }
    size_t have = p->clu.len - CLUSTER_HDR_ROOM;
    if (size > p->lim.max_fragment_bytes ||
        have + p->hdr_len > p->lim.max_fragment_bytes - size)
        return fail(p, TR_KVS_MAX_FRAGMENT_SIZE_REACHED, tc,
                    "fragment larger than %zu bytes", p->lim.max_fragment_bytes);
    tr_ebml_put_bytes(&p->clu, p->hdr, p->hdr_len);
    tr_ebml_buf_reserve(&p->clu, (size_t)size);
    if (p->clu.failed) return fail(p, TR_KVS_INTERNAL_ERROR, tc, "out of memory");
    p->child_off = p->clu.len;
    begin_body(p, id, size, 1);
    return 0;
}

/* An element's ID and size are in: dispatch on where it is. */
static int element_start(tr_mkv_parser *p, uint32_t id, uint64_t size) {
    p->state = ST_HDR;
    int rc;
    switch (p->level) {
    case L_TOP: rc = top_element(p, id, size); break;
    case L_SEGMENT: rc = segment_element(p, id, size); break;
    default: rc = cluster_element(p, id, size); break;
    }
    p->hdr_len = 0;
    p->id_len = 0;
    return rc;
}

/* One byte of an element header. */
static int header_byte(tr_mkv_parser *p, uint8_t b) {
    if (room(p) == 0)
        return fail(p, TR_KVS_INVALID_MKV_DATA, cur_tc(p), "an element crosses its parent's end");
    p->hdr[p->hdr_len++] = b;
    account(p, 1);
    if (p->id_len == 0) {
        int r = tr_ebml_read_id(p->hdr, p->hdr_len, &p->id);
        if (r < 0) return fail(p, TR_KVS_INVALID_MKV_DATA, cur_tc(p), "an invalid element ID");
        if (r == 0) return 0;
        p->id_len = r;
        /* A cluster of unknown size ends where an element that cannot be its child begins. */
        if (p->level == L_CLUSTER && p->clu_left == TR_EBML_UNKNOWN_SIZE &&
            is_segment_level(p->id))
            return close_cluster(p);
        return 0;
    }
    uint64_t size;
    int r = tr_ebml_read_size(p->hdr + p->id_len, p->hdr_len - (size_t)p->id_len, &size);
    if (r < 0) return fail(p, TR_KVS_INVALID_MKV_DATA, cur_tc(p), "an invalid element size");
    if (r == 0) return 0;
    return element_start(p, p->id, size);
}

/* The element whose data was being collected or skipped is complete. */
static int body_done(tr_mkv_parser *p) {
    int keep = p->state == ST_BODY;
    p->state = ST_HDR;
    if (!keep) return 0;
    if (p->level == L_CLUSTER) return cluster_child_done(p);
    if (p->elem.failed) return fail(p, TR_KVS_INTERNAL_ERROR, -1, "out of memory");
    /* An empty element has no buffer: give it a real pointer all the same. */
    const uint8_t *d = p->elem.data != NULL ? p->elem.data : (const uint8_t *)"";
    return segment_element_done(p, d, p->elem.len);
}

/* Consumes up to len bytes of data; returns how many. */
static size_t step(tr_mkv_parser *p, const uint8_t *d, size_t len) {
    if (p->state == ST_HDR) {
        header_byte(p, d[0]);
        return 1;
    }
    size_t n = len < p->body_left ? len : (size_t)p->body_left;
    if (p->state == ST_BODY) {
        tr_ebml_buf *b = p->level == L_CLUSTER ? &p->clu : &p->elem;
        tr_ebml_put_bytes(b, d, n);
    }
    account(p, n);
    p->body_left -= n;
    return n;
}

/* Acts on element ends that need no more bytes to be seen: an element whose data is
 * complete, a cluster or Segment of known size that has reached its end. Run after every
 * step, so that a fragment is handed out the moment its last byte arrives. */
static void settle(tr_mkv_parser *p) {
    for (;;) {
        if (p->err) return;
        if (p->state != ST_HDR && p->body_left == 0) {
            body_done(p);
            continue;
        }
        if (p->state != ST_HDR || p->hdr_len != 0) return;
        if (p->level == L_CLUSTER && p->clu_left == 0) {
            close_cluster(p);
            continue;
        }
        if (p->level >= L_SEGMENT && p->seg_left == 0) {
            if (p->in_cluster) {
                close_cluster(p);
                if (p->err) return;
            }
            p->level = L_TOP;
            p->segment_done = 1;
            continue;
        }
        return;
    }
}

int tr_mkv_parser_feed(tr_mkv_parser *p, const void *data, size_t len) {
    if (p->err) return p->err;
    if (p->finished) return fail(p, TR_KVS_INVALID_MKV_DATA, -1, "data after the body ended");
    const uint8_t *d = data;
    while (len > 0 && !p->err) {
        size_t n = step(p, d, len);
        p->offset += n;
        d += n;
        len -= n;
        settle(p);
    }
    return p->err;
}

int tr_mkv_parser_finish(tr_mkv_parser *p) {
    if (p->err || p->finished) return p->err;
    p->finished = 1;
    if (p->offset == 0) return 0;
    if (p->state != ST_HDR || p->hdr_len != 0) {
        if (p->in_cluster)
            return fail(p, TR_KVS_INVALID_MKV_DATA, cur_tc(p),
                        "the body ended inside a cluster, which is dropped");
        return fail(p, TR_KVS_INVALID_MKV_DATA, -1, "the body ended inside an element");
    }
    if (!p->header_done)
        return fail(p, TR_KVS_INVALID_MKV_DATA, -1, "the body ended before Info and Tracks");
    if (p->in_cluster) {
        if (p->clu_left != TR_EBML_UNKNOWN_SIZE)
            return fail(p, TR_KVS_INVALID_MKV_DATA, cur_tc(p),
                        "the body ended inside a cluster, which is dropped");
        return close_cluster(p);
    }
    return 0;
}

/* ---- frames of a stored cluster ---- */

static int64_t lace_step_units(const tr_mkv_header *h, uint64_t track) {
    if (h == NULL || h->timecode_scale_ns == 0) return 0;
    for (size_t i = 0; i < h->ntracks; i++)
        if (h->tracks[i].number == track) {
            uint64_t step = h->tracks[i].default_duration_ns / h->timecode_scale_ns;
            return step > INT64_MAX ? INT64_MAX : (int64_t)step;
        }
    return 0;
}

static int emit_frames(const block_info *bi, int64_t tc, const tr_mkv_header *h,
                       int (*fn)(void *ctx, const tr_mkv_frame *fr), void *ctx) {
    int64_t step = lace_step_units(h, bi->track);
    const uint8_t *d = bi->frames;
    for (unsigned k = 0; k < bi->nframes; k++) {
        int64_t off, when; /* tc + rel cannot overflow: see the Timecode check */
        if (__builtin_mul_overflow(step, (int64_t)k, &off) ||
            __builtin_add_overflow(tc + bi->rel, off, &when))
            return -1;
        tr_mkv_frame fr = {
            .track = bi->track,
            .timecode = when,
            .keyframe = bi->keyframe,
            .duration = bi->duration,
            .data = d,
            .len = bi->sizes[k],
            .lace_index = k,
        };
        d += bi->sizes[k];
        int rc = fn(ctx, &fr);
        if (rc != 0) return rc;
    }
    return 0;
}

int tr_mkv_cluster_frames(const uint8_t *cluster, size_t len, const tr_mkv_header *h,
                          int (*fn)(void *ctx, const tr_mkv_frame *fr), void *ctx) {
    uint32_t id;
    uint64_t size;
    int il = tr_ebml_read_id(cluster, len, &id);
    if (il <= 0 || id != TR_MKV_ID_CLUSTER) return -1;
    int sl = tr_ebml_read_size(cluster + il, len - (size_t)il, &size);
    if (sl <= 0) return -1;
    const uint8_t *p = cluster + il + sl, *end = cluster + len;
    if (size != TR_EBML_UNKNOWN_SIZE) {
        if (size > (uint64_t)(end - p)) return -1;
        end = p + size;
    }
    tr_ebml_elem e;
    int r, have_tc = 0;
    uint64_t tc = 0;
    block_info bi;
    while ((r = tr_ebml_next(&p, end, &e)) == 1) {
        if (e.id == TR_MKV_ID_TIMECODE) {
            if (have_tc || tr_ebml_get_uint(e.data, e.size, &tc) != 0 ||
                tc > (uint64_t)INT64_MAX - 32768)
                return -1;
            have_tc = 1;
            continue;
        }
        int b = parse_any_block(e.id, e.data, e.size, &bi);
        if (b == 0) continue;
        if (b < 0 || !have_tc) return -1;
        int rc = emit_frames(&bi, (int64_t)tc, h, fn, ctx);
        if (rc != 0) return rc;
    }
    return r == 0 ? 0 : -1;
}
