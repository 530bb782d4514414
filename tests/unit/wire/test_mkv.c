/* The Matroska wire modules: EBML primitives, the PutMedia push parser and GetMedia chunks.
 * Streams are built here with the EBML writer; every parse is repeated fed in one piece,
 * one byte at a time and in random pieces, and the three must agree on every callback and
 * result. Real GStreamer output is tested in test_mkv_gst.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/ebml.h"
#include "wire/mkv_chunk.h"
#include "wire/mkv_ingest.h"

/* ---- a stream builder ---- */

enum { V = TR_MKV_TRACK_VIDEO, A = TR_MKV_TRACK_AUDIO };

typedef struct {
    unsigned type;
    const char *codec;
    uint64_t default_duration_ns;
} trk;

static const trk H264 = {V, "V_MPEG4/ISO/AVC", 0};
static const trk AAC = {A, "A_AAC", 0};

static void put_ebml_header(tr_ebml_buf *b) {
    size_t at = tr_ebml_master_begin(b, TR_EBML_ID_HEADER);
    tr_ebml_put_uint(b, TR_EBML_ID_VERSION, 1);
    tr_ebml_put_uint(b, TR_EBML_ID_READ_VERSION, 1);
    tr_ebml_put_uint(b, TR_EBML_ID_MAX_ID_LENGTH, 4);
    tr_ebml_put_uint(b, TR_EBML_ID_MAX_SIZE_LENGTH, 8);
    tr_ebml_put_string(b, TR_EBML_ID_DOCTYPE, "matroska");
    tr_ebml_put_uint(b, TR_EBML_ID_DOCTYPE_VERSION, 4);
    tr_ebml_put_uint(b, TR_EBML_ID_DOCTYPE_READ_VERSION, 2);
    tr_ebml_master_end(b, at);
}

static void put_info(tr_ebml_buf *b, uint64_t scale) {
    size_t at = tr_ebml_master_begin(b, TR_MKV_ID_INFO);
    if (scale) tr_ebml_put_uint(b, TR_MKV_ID_TIMECODE_SCALE, scale);
    tr_ebml_put_string(b, 0x4D80 /* MuxingApp */, "test_mkv");
    tr_ebml_put_float(b, TR_MKV_ID_DURATION, 123456.0); /* must not reach the header */
    tr_ebml_master_end(b, at);
}

static void put_tracks(tr_ebml_buf *b, const trk *t, size_t n) {
    size_t at = tr_ebml_master_begin(b, TR_MKV_ID_TRACKS);
    for (size_t i = 0; i < n; i++) {
        size_t e = tr_ebml_master_begin(b, TR_MKV_ID_TRACK_ENTRY);
        tr_ebml_put_uint(b, TR_MKV_ID_TRACK_NUMBER, i + 1);
        tr_ebml_put_uint(b, TR_MKV_ID_TRACK_UID, 1000 + i);
        tr_ebml_put_uint(b, TR_MKV_ID_TRACK_TYPE, t[i].type);
        tr_ebml_put_string(b, TR_MKV_ID_CODEC_ID, t[i].codec);
        tr_ebml_put_binary(b, TR_MKV_ID_CODEC_PRIVATE, "\x01\x64\x00\x1f", 4);
        if (t[i].default_duration_ns)
            tr_ebml_put_uint(b, TR_MKV_ID_DEFAULT_DURATION, t[i].default_duration_ns);
        if (t[i].type == V) {
            size_t v = tr_ebml_master_begin(b, TR_MKV_ID_VIDEO);
            tr_ebml_put_uint(b, TR_MKV_ID_PIXEL_WIDTH, 640);
            tr_ebml_put_uint(b, TR_MKV_ID_PIXEL_HEIGHT, 480);
            tr_ebml_master_end(b, v);
        } else {
            size_t a = tr_ebml_master_begin(b, TR_MKV_ID_AUDIO);
            tr_ebml_put_float(b, TR_MKV_ID_SAMPLING_FREQUENCY, 48000.0);
            tr_ebml_put_uint(b, TR_MKV_ID_CHANNELS, 2);
            tr_ebml_master_end(b, a);
        }
        tr_ebml_master_end(b, e);
    }
    tr_ebml_master_end(b, at);
}

/* EBML header + Segment (unknown size) + Info + Tracks. */
static void put_start(tr_ebml_buf *b, const trk *t, size_t n) {
    put_ebml_header(b);
    tr_ebml_put_id(b, TR_MKV_ID_SEGMENT);
    tr_ebml_put_unknown_size(b);
    put_info(b, 1000000);
    put_tracks(b, t, n);
}

/* Block header: track (1-byte vint), relative timecode, flags. */
static void put_block_head(tr_ebml_buf *b, unsigned track, int rel, uint8_t flags) {
    uint8_t h[4] = {(uint8_t)(0x80 | track), (uint8_t)((uint16_t)rel >> 8), (uint8_t)rel, flags};
    tr_ebml_put_bytes(b, h, 4);
}

static void put_payload(tr_ebml_buf *b, size_t n, uint8_t seed) {
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)(seed + i * 7);
        tr_ebml_put_bytes(b, &c, 1);
    }
}

static void put_simple_block(tr_ebml_buf *b, unsigned track, int rel, int key, size_t len) {
    tr_ebml_put_id(b, TR_MKV_ID_SIMPLE_BLOCK);
    tr_ebml_put_size(b, 4 + len);
    put_block_head(b, track, rel, key ? 0x80 : 0);
    put_payload(b, len, (uint8_t)(track * 31 + rel));
}

/* A BlockGroup; ref adds a ReferenceBlock (not a keyframe); duration < 0: none. */
static void put_block_group(tr_ebml_buf *b, unsigned track, int rel, int ref, int duration,
                            size_t len) {
    size_t g = tr_ebml_master_begin(b, TR_MKV_ID_BLOCK_GROUP);
    tr_ebml_put_id(b, TR_MKV_ID_BLOCK);
    tr_ebml_put_size(b, 4 + len);
    put_block_head(b, track, rel, 0);
    put_payload(b, len, (uint8_t)rel);
    if (duration >= 0) tr_ebml_put_uint(b, TR_MKV_ID_BLOCK_DURATION, (uint64_t)duration);
    if (ref) tr_ebml_put_int(b, TR_MKV_ID_REFERENCE_BLOCK, -33);
    tr_ebml_master_end(b, g);
}

/* A laced SimpleBlock: lacing 1 Xiph, 2 fixed, 3 EBML; frames of the given sizes. */
static void put_laced_block(tr_ebml_buf *b, unsigned track, int rel, unsigned lacing,
                            const size_t *sizes, unsigned n) {
    tr_ebml_buf body;
    tr_ebml_buf_init(&body, 0);
    put_block_head(&body, track, rel, (uint8_t)(0x80 | lacing << 1));
    uint8_t count = (uint8_t)(n - 1);
    tr_ebml_put_bytes(&body, &count, 1);
    for (unsigned i = 0; i + 1 < n && lacing == 1; i++) {
        size_t s = sizes[i];
        uint8_t ff = 255, last;
        for (; s >= 255; s -= 255) tr_ebml_put_bytes(&body, &ff, 1);
        last = (uint8_t)s;
        tr_ebml_put_bytes(&body, &last, 1);
    }
    if (lacing == 3) {
        tr_ebml_put_size(&body, sizes[0]);
        for (unsigned i = 1; i + 1 < n; i++) {
            /* A signed difference in a 2-byte vint: value + 8191, marker 0x40. */
            int64_t diff = (int64_t)sizes[i] - (int64_t)sizes[i - 1];
            uint16_t raw = (uint16_t)(diff + 8191) | 0x4000;
            uint8_t v[2] = {(uint8_t)(raw >> 8), (uint8_t)raw};
            tr_ebml_put_bytes(&body, v, 2);
        }
    }
    for (unsigned i = 0; i < n; i++) put_payload(&body, sizes[i], (uint8_t)i);
    assert_false(body.failed);
    tr_ebml_put_binary(b, TR_MKV_ID_SIMPLE_BLOCK, body.data, body.len);
    tr_ebml_buf_free(&body);
}

/* A cluster of known size (returns where to end it) or of unknown size (SIZE_MAX). */
static size_t cluster_begin(tr_ebml_buf *b, uint64_t tc, int known) {
    size_t at = SIZE_MAX;
    if (known) {
        at = tr_ebml_master_begin(b, TR_MKV_ID_CLUSTER);
    } else {
        tr_ebml_put_id(b, TR_MKV_ID_CLUSTER);
        tr_ebml_put_unknown_size(b);
    }
    tr_ebml_put_uint(b, TR_MKV_ID_TIMECODE, tc);
    return at;
}

static void cluster_end(tr_ebml_buf *b, size_t at) {
    if (at != SIZE_MAX) tr_ebml_master_end(b, at);
}

/* A 30 fps video cluster of n frames, keyframe first, optional audio every 20 ms. */
static void put_gop(tr_ebml_buf *b, uint64_t tc, int known, int frames, int audio) {
    size_t at = cluster_begin(b, tc, known);
    for (int i = 0; i < frames; i++) {
        put_simple_block(b, 1, i * 33, i == 0, 40 + (size_t)i);
        if (audio) put_simple_block(b, 2, i * 33 + 5, 1, 12);
    }
    cluster_end(b, at);
}

static void put_tag_list(tr_ebml_buf *b, const char *const *nv, size_t n) {
    tr_mkv_tag t[16];
    for (size_t i = 0; i < n; i++) t[i] = (tr_mkv_tag){nv[2 * i], nv[2 * i + 1]};
    tr_mkv_put_tags(b, t, n);
}

/* ---- running the parser, recording every callback as text ---- */

typedef struct {
    char log[65536];
    size_t len;
    int headers, starts, fragments;
    tr_mkv_track tracks[TR_MKV_MAX_TRACKS];
    size_t ntracks;
    uint8_t *header;
    size_t header_len;
    /* copies of the fragments (at most 8) */
    uint8_t *clusters[8];
    size_t cluster_lens[8];
    tr_mkv_fragment frags[8];
    char tags[8][256];
    int stop_at_fragment; /* a callback's error test: return 5000 from this fragment (1-based) */
} rec;

static void logf_(rec *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(rec *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(r->log + r->len, sizeof r->log - r->len, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof r->log - r->len);
    r->len += (size_t)n;
}

static uint32_t fnv(const uint8_t *p, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
    return h;
}

static int on_header(void *ctx, const tr_mkv_header *h) {
    rec *r = ctx;
    r->headers++;
    r->ntracks = h->ntracks;
    memcpy(r->tracks, h->tracks, h->ntracks * sizeof *h->tracks);
    free(r->header);
    r->header = malloc(h->len);
    assert_non_null(r->header);
    memcpy(r->header, h->bytes, h->len);
    r->header_len = h->len;
    logf_(r, "H %zu %llu %08x\n", h->ntracks, (unsigned long long)h->timecode_scale_ns,
          fnv(h->bytes, h->len));
    return 0;
}

static int on_start(void *ctx, uint64_t tc, int64_t tc_ms) {
    rec *r = ctx;
    r->starts++;
    logf_(r, "S %llu %lld\n", (unsigned long long)tc, (long long)tc_ms);
    return 0;
}

static int on_fragment(void *ctx, const tr_mkv_fragment *f) {
    rec *r = ctx;
    int i = r->fragments++;
    logf_(r, "F %llu %lld %lld %lld %lld %u %u/%u/%u %d %08x", (unsigned long long)f->timecode,
          (long long)f->timecode_ms, (long long)f->first_frame_ms, (long long)f->last_frame_ms,
          (long long)f->duration_ms, f->frame_count, f->frames[0], f->frames[1], f->frames[2],
          f->key_first, fnv(f->cluster, f->cluster_len));
    for (size_t k = 0; k < f->ntags; k++)
        logf_(r, " %s=%s", f->tag_list[k].name, f->tag_list[k].value);
    logf_(r, "\n");
    if (i < 8) {
        r->clusters[i] = malloc(f->cluster_len);
        assert_non_null(r->clusters[i]);
        memcpy(r->clusters[i], f->cluster, f->cluster_len);
        r->cluster_lens[i] = f->cluster_len;
        r->frags[i] = *f;
        r->frags[i].cluster = r->clusters[i];
        r->frags[i].tag_list = NULL;
        r->frags[i].tags = NULL;
        size_t o = 0;
        for (size_t k = 0; k < f->ntags; k++)
            o += (size_t)snprintf(r->tags[i] + o, sizeof r->tags[i] - o, "%s%s=%s", k ? ";" : "",
                                  f->tag_list[k].name, f->tag_list[k].value);
        /* The Tags element must read back as the same pairs. */
        if (f->ntags > 0) {
            assert_non_null(f->tags);
            assert_int_equal(f->tags[0], 0x12);
        } else {
            assert_null(f->tags);
        }
    }
    return r->stop_at_fragment == r->fragments ? TR_KVS_INTERNAL_ERROR : 0;
}

static void rec_free(rec *r) {
    free(r->header);
    for (int i = 0; i < 8 && i < r->fragments; i++) free(r->clusters[i]);
    memset(r, 0, sizeof *r);
}

typedef struct {
    int feed_rc, finish_rc;
    int64_t err_tc;
} result;

enum { ONE_SHOT, BYTES, RANDOM };

/* Parses s in the given way; the record and results go to r and res. */
static void parse(const uint8_t *s, size_t len, const tr_mkv_limits *lim, int mode,
                  unsigned seed, rec *r, result *res) {
    tr_mkv_callbacks cb = {on_header, on_start, on_fragment};
    tr_mkv_parser *p = tr_mkv_parser_new(&cb, r, lim);
    assert_non_null(p);
    size_t off = 0;
    res->feed_rc = 0;
    srand(seed);
    while (off < len && res->feed_rc == 0) {
        size_t n = mode == ONE_SHOT ? len : mode == BYTES ? 1 : 1 + (size_t)rand() % 97;
        if (n > len - off) n = len - off;
        res->feed_rc = tr_mkv_parser_feed(p, s + off, n);
        off += n;
    }
    res->finish_rc = tr_mkv_parser_finish(p);
    res->err_tc = tr_mkv_parser_error_timecode(p);
    logf_(r, "R %d %d %lld\n", res->feed_rc, res->finish_rc, (long long)res->err_tc);
    /* Once failed, it stays failed with the same error. */
    if (res->feed_rc != 0) {
        assert_int_equal(res->finish_rc, res->feed_rc);
        assert_int_equal(tr_mkv_parser_feed(p, "x", 1), res->feed_rc);
    }
    tr_mkv_parser_free(p);
}

/* Parses s every way; checks they agree; leaves the one-shot record in r. Returns the first
 * error (feed's, else finish's). */
static int parse_all(const uint8_t *s, size_t len, const tr_mkv_limits *lim, rec *r,
                     result *res) {
    parse(s, len, lim, ONE_SHOT, 0, r, res);
    for (int mode = BYTES; mode <= RANDOM; mode++) {
        for (unsigned seed = 1; seed <= (mode == RANDOM ? 3u : 1u); seed++) {
            rec *other = calloc(1, sizeof *other);
            assert_non_null(other);
            other->stop_at_fragment = r->stop_at_fragment;
            result ores;
            parse(s, len, lim, mode, seed, other, &ores);
            if (strcmp(other->log, r->log) != 0)
                fail_msg("mode %d seed %u differs:\n%s---\n%s", mode, seed, r->log, other->log);
            rec_free(other);
            free(other);
        }
    }
    return res->feed_rc ? res->feed_rc : res->finish_rc;
}

static int parse_buf(tr_ebml_buf *b, const tr_mkv_limits *lim, rec *r, result *res) {
    assert_false(b->failed);
    return parse_all(b->data, b->len, lim, r, res);
}

/* ---- EBML primitives ---- */

static void ebml_ids_and_sizes(void **state) {
    uint32_t id;
    uint64_t size;
    const uint8_t ebml[] = {0x1A, 0x45, 0xDF, 0xA3};
    assert_int_equal(tr_ebml_read_id(ebml, 4, &id), 4);
    assert_int_equal(id, TR_EBML_ID_HEADER);
    assert_int_equal(tr_ebml_read_id(ebml, 3, &id), 0); /* needs more */
    assert_int_equal(tr_ebml_read_id((const uint8_t *)"\xA3", 1, &id), 1);
    assert_int_equal(id, 0xA3);
    assert_int_equal(tr_ebml_read_id((const uint8_t *)"\x00", 1, &id), -1);         /* no marker */
    assert_int_equal(tr_ebml_read_id((const uint8_t *)"\x08\x01\x02\x03\x04", 5, &id), -1); /* 5 bytes */
    assert_int_equal(tr_ebml_read_id((const uint8_t *)"\xFF", 1, &id), -1);         /* all ones */
    assert_int_equal(tr_ebml_read_id((const uint8_t *)"\x80", 1, &id), -1);         /* zero */
    assert_int_equal(tr_ebml_read_id((const uint8_t *)"\x40\x05", 2, &id), -1);     /* not shortest */
    assert_int_equal(tr_ebml_read_id((const uint8_t *)"\x40\x7F", 2, &id), 2);      /* 127 needs 2 */

    assert_int_equal(tr_ebml_read_size((const uint8_t *)"\x81", 1, &size), 1);
    assert_int_equal(size, 1);
    assert_int_equal(tr_ebml_read_size((const uint8_t *)"\xFF", 1, &size), 1);
    assert_true(size == TR_EBML_UNKNOWN_SIZE);
    const uint8_t unk8[] = {0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    assert_int_equal(tr_ebml_read_size(unk8, 8, &size), 8);
    assert_true(size == TR_EBML_UNKNOWN_SIZE);
    assert_int_equal(tr_ebml_read_size(unk8, 7, &size), 0);
    assert_int_equal(tr_ebml_read_size((const uint8_t *)"\x00", 1, &size), -1);
    assert_int_equal(tr_ebml_read_size((const uint8_t *)"\x40\x02", 2, &size), 2); /* long form ok */
    assert_int_equal(size, 2);

    /* Shortest sizes round-trip at every length boundary; the all-ones value is skipped. */
    const uint64_t sizes[] = {0, 1, 126, 127, 128, 16382, 16383, 16384, (1ull << 21) - 2,
                              (1ull << 21) - 1, (1ull << 35), TR_EBML_MAX_SIZE};
    const int lens[] = {1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 6, 8};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint8_t out[8];
        int n = tr_ebml_encode_size(out, sizes[i]);
        assert_int_equal(n, lens[i]);
        assert_int_equal(tr_ebml_read_size(out, (size_t)n, &size), n);
        assert_true(size == sizes[i]);
        tr_ebml_encode_size8(out, sizes[i]);
        assert_int_equal(tr_ebml_read_size(out, 8, &size), 8);
        assert_true(size == sizes[i]);
    }
    uint8_t out[8];
    assert_int_equal(tr_ebml_encode_size(out, TR_EBML_MAX_SIZE + 1), 0);
    assert_int_equal(tr_ebml_id_len(TR_MKV_ID_CLUSTER), 4);
    assert_int_equal(tr_ebml_id_len(TR_MKV_ID_TIMECODE_SCALE), 3);
    assert_int_equal(tr_ebml_id_len(TR_MKV_ID_TAG), 2);
    assert_int_equal(tr_ebml_id_len(0xA3), 1);
    assert_int_equal(tr_ebml_id_len(0x12), 0);   /* no marker in its first byte */
    assert_int_equal(tr_ebml_id_len(0x4005), 0); /* not shortest */
}

static void ebml_values(void **state) {
    tr_ebml_buf b;
    tr_ebml_buf_init(&b, 0);
    tr_ebml_put_uint(&b, 0x4286, 0);
    tr_ebml_put_uint(&b, 0x4286, 0x1234567);
    tr_ebml_put_int(&b, 0xFB, -1);
    tr_ebml_put_int(&b, 0xFB, -129);
    tr_ebml_put_int(&b, 0xFB, INT64_MIN);
    tr_ebml_put_float(&b, 0xB5, 44100.5);
    tr_ebml_put_string(&b, 0x86, "A_OPUS");
    size_t m = tr_ebml_master_begin(&b, TR_MKV_ID_TAGS);
    tr_ebml_put_binary(&b, 0xA1, "\x00\x01", 2);
    tr_ebml_master_end(&b, m);
    assert_false(b.failed);

    const uint8_t *p = b.data, *end = b.data + b.len;
    tr_ebml_elem e;
    uint64_t u;
    int64_t i;
    double d;
    assert_int_equal(tr_ebml_next(&p, end, &e), 1);
    assert_int_equal(e.size, 1); /* zero takes one byte */
    assert_int_equal(tr_ebml_get_uint(e.data, e.size, &u), 0);
    assert_int_equal(u, 0);
    assert_int_equal(tr_ebml_next(&p, end, &e), 1);
    assert_int_equal(e.size, 4);
    assert_int_equal(tr_ebml_get_uint(e.data, e.size, &u), 0);
    assert_int_equal(u, 0x1234567);
    assert_int_equal(tr_ebml_next(&p, end, &e), 1);
    assert_int_equal(e.size, 1);
    assert_int_equal(tr_ebml_get_int(e.data, e.size, &i), 0);
    assert_int_equal(i, -1);
    assert_int_equal(tr_ebml_next(&p, end, &e), 1);
    assert_int_equal(e.size, 2);
    assert_int_equal(tr_ebml_get_int(e.data, e.size, &i), 0);
    assert_int_equal(i, -129);
    assert_int_equal(tr_ebml_next(&p, end, &e), 1);
    assert_int_equal(e.size, 8);
    assert_int_equal(tr_ebml_get_int(e.data, e.size, &i), 0);
    assert_true(i == INT64_MIN);
    assert_int_equal(tr_ebml_next(&p, end, &e), 1);
    assert_int_equal(tr_ebml_get_float(e.data, e.size, &d), 0);
    assert_true(d == 44100.5);
    assert_int_equal(tr_ebml_next(&p, end, &e), 1);
    assert_int_equal(e.id, 0x86);
    assert_memory_equal(e.data, "A_OPUS", 6);
    assert_int_equal(tr_ebml_next(&p, end, &e), 1);
    assert_int_equal(e.id, TR_MKV_ID_TAGS);
    assert_int_equal(e.hdr_len, 12); /* a master's size is the fixed 8-byte form */
    assert_int_equal(e.size, 4);
    assert_int_equal(tr_ebml_next(&p, end, &e), 0);

    /* A 4-byte float, and lengths the types do not allow. */
    const uint8_t f32[] = {0x3F, 0xC0, 0x00, 0x00};
    assert_int_equal(tr_ebml_get_float(f32, 4, &d), 0);
    assert_true(d == 1.5);
    assert_int_equal(tr_ebml_get_float(f32, 3, &d), -1);
    assert_int_equal(tr_ebml_get_uint(b.data, 9, &u), -1);
    /* Elements that run past the buffer or have an unknown size are refused. */
    const uint8_t past[] = {0xA3, 0x85, 1, 2};
    p = past;
    assert_int_equal(tr_ebml_next(&p, past + 4, &e), -1);
    const uint8_t unk[] = {0xA3, 0xFF};
    p = unk;
    assert_int_equal(tr_ebml_next(&p, unk + 2, &e), -1);
    tr_ebml_buf_free(&b);

    /* The buffer's own limit is sticky. */
    tr_ebml_buf small;
    tr_ebml_buf_init(&small, 4);
    tr_ebml_put_bytes(&small, "abc", 3);
    assert_false(small.failed);
    tr_ebml_put_bytes(&small, "de", 2);
    assert_true(small.failed);
    tr_ebml_put_bytes(&small, "", 0);
    size_t len;
    assert_null(tr_ebml_buf_take(&small, &len));
    tr_ebml_buf_free(&small);
}

/* ---- the parser on valid streams ---- */

static void known_and_unknown_clusters(void **state) {
    const trk t[] = {H264, AAC};
    tr_ebml_buf b;
    tr_ebml_buf_init(&b, 0);
    put_start(&b, t, 2);
    put_gop(&b, 1000, 1, 30, 1); /* known size */
    put_gop(&b, 2000, 0, 30, 1); /* unknown size, ended by the next Cluster */
    tr_ebml_put_binary(&b, TR_EBML_ID_VOID, "\0\0\0", 3); /* a child of it, left out */
    put_gop(&b, 3000, 0, 15, 1); /* unknown size, ended by finish */
    rec r = {0};
    result res;
    assert_int_equal(parse_buf(&b, NULL, &r, &res), 0);
    assert_int_equal(r.headers, 1);
    assert_int_equal(r.starts, 3);
    assert_int_equal(r.fragments, 3);

    /* The track table. */
    assert_int_equal(r.ntracks, 2);
    assert_int_equal(r.tracks[0].number, 1);
    assert_int_equal(r.tracks[0].uid, 1000);
    assert_int_equal(r.tracks[0].type, V);
    assert_string_equal(r.tracks[0].codec_id, "V_MPEG4/ISO/AVC");
    assert_int_equal(r.tracks[0].pixel_width, 640);
    assert_int_equal(r.tracks[0].pixel_height, 480);
    assert_int_equal(r.tracks[0].codec_private_len, 4);
    assert_int_equal(r.tracks[1].type, A);
    assert_string_equal(r.tracks[1].codec_id, "A_AAC");
    assert_true(r.tracks[1].sampling_frequency == 48000.0);
    assert_int_equal(r.tracks[1].channels, 2);

    /* The header parses back on its own, ends in a Segment of unknown size, and left out
     * Info's Duration. */
    tr_mkv_header h;
    tr_mkv_track tracks[TR_MKV_MAX_TRACKS];
    assert_int_equal(tr_mkv_header_parse(r.header, r.header_len, &h, tracks), 0);
    assert_int_equal(h.ntracks, 2);
    assert_int_equal(h.timecode_scale_ns, 1000000);
    assert_memory_equal(tracks[0].codec_private, "\x01\x64\x00\x1f", 4);
    const uint8_t dur_id[] = {0x44, 0x89};
    assert_null(memmem(r.header, r.header_len, dur_id, 2));
    const uint8_t seg_unknown[] = {0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF};
    assert_non_null(memmem(r.header, r.header_len, seg_unknown, sizeof seg_unknown));

    for (int i = 0; i < 3; i++) {
        const tr_mkv_fragment *f = &r.frags[i];
        int n = i == 2 ? 15 : 30;
        assert_int_equal(f->timecode, 1000 * (i + 1));
        assert_int_equal(f->timecode_ms, 1000 * (i + 1));
        assert_int_equal(f->first_frame_ms, 1000 * (i + 1));
        assert_int_equal(f->last_frame_ms, 1000 * (i + 1) + (n - 1) * 33 + 5); /* audio last */
        assert_int_equal(f->frames[0], n);
        assert_int_equal(f->frames[1], n);
        assert_int_equal(f->frame_count, 2 * n);
        assert_int_equal(f->key_first, 1);
        /* Audio ends it; its spacing is 33 ms. */
        assert_int_equal(f->duration_ms, (n - 1) * 33 + 5 + 33);
        /* Re-encoded with a known size that covers the element exactly. */
        const uint8_t *c = f->cluster;
        assert_int_equal(c[0], 0x1F);
        const uint8_t *q = c, *end = c + f->cluster_len;
        tr_ebml_elem e;
        assert_int_equal(tr_ebml_next(&q, end, &e), 1);
        assert_true(q == end);
        assert_int_equal(e.id, TR_MKV_ID_CLUSTER);
    }
    rec_free(&r);
    tr_ebml_buf_free(&b);
}

typedef struct {
    int n, keys;
    int64_t last_tc;
    uint64_t tracks_seen;
    size_t bytes;
} frame_count;

static int count_frames(void *ctx, const tr_mkv_frame *fr) {
    frame_count *c = ctx;
    c->n++;
    c->keys += fr->keyframe;
    c->last_tc = fr->timecode;
    c->tracks_seen |= 1u << fr->track;
    c->bytes += fr->len;
    return 0;
}

static void frames_read_back(void **state) {
    const trk t[] = {H264, AAC};
    tr_ebml_buf b;
    tr_ebml_buf_init(&b, 0);
    put_start(&b, t, 2);
    put_gop(&b, 500, 0, 10, 1);
    rec r = {0};
    result res;
    assert_int_equal(parse_buf(&b, NULL, &r, &res), 0);
    assert_int_equal(r.fragments, 1);
    tr_mkv_header h;
    tr_mkv_track tracks[TR_MKV_MAX_TRACKS];
    assert_int_equal(tr_mkv_header_parse(r.header, r.header_len, &h, tracks), 0);
    frame_count c = {0};
    assert_int_equal(tr_mkv_cluster_frames(r.clusters[0], r.cluster_lens[0], &h, count_frames, &c), 0);
    assert_int_equal(c.n, 20);
    assert_int_equal(c.keys, 11); /* one video keyframe, every audio frame */
    assert_int_equal(c.last_tc, 500 + 9 * 33 + 5);
    assert_int_equal(c.tracks_seen, 6);
    size_t want = 0;
    for (int i = 0; i < 10; i++) want += 40 + (size_t)i + 12;
    assert_int_equal(c.bytes, want);
    /* A cut cluster is refused. */
    assert_int_equal(tr_mkv_cluster_frames(r.clusters[0], r.cluster_lens[0] - 1, &h, count_frames, &c), -1);
    rec_free(&r);
    tr_ebml_buf_free(&b);
}

static void lacing(void **state) {
    const trk t[] = {H264, {A, "A_OPUS", 20000000}};
    const size_t xiph[] = {300, 10, 255, 7};  /* 300 and 255 need the 255-run */
    const size_t ebml[] = {100, 90, 120, 30, 5};
    const size_t fixed[] = {16, 16, 16};
    tr_ebml_buf b;
    tr_ebml_buf_init(&b, 0);
    put_start(&b, t, 2);
    size_t at = cluster_begin(&b, 0, 1);
    put_simple_block(&b, 1, 0, 1, 50);
    put_laced_block(&b, 2, 0, 1, xiph, 4);
    put_laced_block(&b, 2, 80, 3, ebml, 5);
    put_laced_block(&b, 2, 180, 2, fixed, 3);
    cluster_end(&b, at);
    rec r = {0};
    result res;
    assert_int_equal(parse_buf(&b, NULL, &r, &res), 0);
    assert_int_equal(r.fragments, 1);
    assert_int_equal(r.frags[0].frames[0], 1);
    assert_int_equal(r.frags[0].frames[1], 12);
    /* Laced frames follow each other by DefaultDuration (20 ms): the last one is 180 + 40. */
    assert_int_equal(r.frags[0].last_frame_ms, 220);
    assert_int_equal(r.frags[0].duration_ms, 240);

    tr_mkv_header h;
    tr_mkv_track tracks[TR_MKV_MAX_TRACKS];
    assert_int_equal(tr_mkv_header_parse(r.header, r.header_len, &h, tracks), 0);
    frame_count c = {0};
    assert_int_equal(tr_mkv_cluster_frames(r.clusters[0], r.cluster_lens[0], &h, count_frames, &c), 0);
    assert_int_equal(c.n, 13);
    assert_int_equal(c.bytes, 50 + 572 + 345 + 48);
    assert_int_equal(c.last_tc, 220);
    rec_free(&r);

    /* Lace sizes that do not add up to the block. */
    const uint8_t bad[][8] = {
        {0x82, 0, 0, 0x82, 0x01, 200, 1, 2},  /* Xiph: first frame of 200 in 3 bytes */
        {0x82, 0, 0, 0x84, 0x01, 1, 2, 3},    /* fixed: 3 bytes in 2 frames */
        {0x82, 0, 0, 0x86, 0x01, 0x8A, 1, 2}, /* EBML: first frame of 10 */
        {0x82, 0, 0, 0x86, 0x01, 0x00, 1, 2}, /* EBML: invalid vint */
        {0x82, 0, 0, 0x82},                   /* laced, no count */
        {0x82, 0, 0, 0x82, 0x00, 1, 2, 3},    /* a lace of one frame */
    };
    const size_t bad_len[] = {8, 8, 8, 8, 4, 8};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tr_ebml_buf s;
        tr_ebml_buf_init(&s, 0);
        put_start(&s, t, 2);
        at = cluster_begin(&s, 0, 1);
        put_simple_block(&s, 1, 0, 1, 5);
        tr_ebml_put_binary(&s, TR_MKV_ID_SIMPLE_BLOCK, bad[i], bad_len[i]);
        cluster_end(&s, at);
        rec rb = {0};
        assert_int_equal(parse_buf(&s, NULL, &rb, &res), TR_KVS_INVALID_MKV_DATA);
        assert_int_equal(res.err_tc, 0);
        assert_int_equal(rb.fragments, 0);
        rec_free(&rb);
        tr_ebml_buf_free(&s);
    }
    tr_ebml_buf_free(&b);
}

static void block_groups(void **state) {
    const trk t[] = {H264};
    tr_ebml_buf b;
    tr_ebml_buf_init(&b, 0);
    put_start(&b, t, 1);
    size_t at = cluster_begin(&b, 100, 1);
    put_block_group(&b, 1, 0, 0, -1, 30);  /* keyframe: no ReferenceBlock */
    put_block_group(&b, 1, 40, 1, -1, 30);
    put_block_group(&b, 1, 80, 1, 40, 30); /* BlockDuration 40 ends the fragment */
    cluster_end(&b, at);
    at = cluster_begin(&b, 300, 1);
    put_block_group(&b, 1, 0, 1, -1, 30); /* starts without a keyframe */
    put_simple_block(&b, 1, 33, 1, 30);
    cluster_end(&b, at);
    rec r = {0};
    result res;
    assert_int_equal(parse_buf(&b, NULL, &r, &res), 0);
    assert_int_equal(r.fragments, 2);
    assert_int_equal(r.frags[0].key_first, 1);
    assert_int_equal(r.frags[0].frame_count, 3);
    assert_int_equal(r.frags[0].duration_ms, 80 + 40);
    assert_int_equal(r.frags[1].key_first, 0);
    assert_int_equal(r.frags[1].duration_ms, 33 + 33); /* mean spacing of its frames */
    tr_mkv_header h;
    tr_mkv_track tracks[TR_MKV_MAX_TRACKS];
    assert_int_equal(tr_mkv_header_parse(r.header, r.header_len, &h, tracks), 0);
    frame_count c = {0};
    assert_int_equal(tr_mkv_cluster_frames(r.clusters[0], r.cluster_lens[0], &h, count_frames, &c), 0);
    assert_int_equal(c.n, 3);
    assert_int_equal(c.keys, 1);

    /* A BlockGroup without a Block, or with two. */
    for (int two = 0; two < 2; two++) {
        tr_ebml_buf s;
        tr_ebml_buf_init(&s, 0);
        put_start(&s, t, 1);
        at = cluster_begin(&s, 0, 1);
        size_t g = tr_ebml_master_begin(&s, TR_MKV_ID_BLOCK_GROUP);
        tr_ebml_put_uint(&s, TR_MKV_ID_BLOCK_DURATION, 3);
        for (int k = 0; two && k < 2; k++) tr_ebml_put_binary(&s, TR_MKV_ID_BLOCK, "\x81\0\0\0x", 5);
        tr_ebml_master_end(&s, g);
        cluster_end(&s, at);
        rec rb = {0};
        assert_int_equal(parse_buf(&s, NULL, &rb, &res), TR_KVS_INVALID_MKV_DATA);
        rec_free(&rb);
        tr_ebml_buf_free(&s);
    }
    rec_free(&r);
    tr_ebml_buf_free(&b);
}

/* A fragment lasts until the latest end of any track's last frame. */
static void duration_of_tracks(void **state) {
    const trk t[] = {H264, {A, "A_OPUS", 20000000}};
    tr_ebml_buf b;
    tr_ebml_buf_init(&b, 0);
    put_start(&b, t, 2);
    size_t at = cluster_begin(&b, 0, 1);
    put_block_group(&b, 1, 0, 0, 100, 10); /* video: 0 .. 100 */
    for (int i = 0; i < 3; i++) put_simple_block(&b, 2, 20 * i, 1, 3); /* audio: 0 .. 60 */
    cluster_end(&b, at);
    rec r = {0};
    result res;
    assert_int_equal(parse_buf(&b, NULL, &r, &res), 0);
    assert_int_equal(r.frags[0].last_frame_ms, 40);
    assert_int_equal(r.frags[0].duration_ms, 100);
    rec_free(&r);
    tr_ebml_buf_free(&b);
}

/* Info and TimecodeScale: a 10 us scale gives ms by division; relative timecodes may be
 * negative (audio before the cluster's keyframe). */
static void timecode_scale(void **state) {
    const trk t[] = {H264};
    tr_ebml_buf b;
    tr_ebml_buf_init(&b, 0);
    put_ebml_header(&b);
    tr_ebml_put_id(&b, TR_MKV_ID_SEGMENT);
    tr_ebml_put_unknown_size(&b);
    put_tracks(&b, t, 1); /* Tracks before Info is allowed */
    put_info(&b, 10000);
    size_t at = cluster_begin(&b, 500000, 0); /* 5000 ms */
    put_simple_block(&b, 1, -1000, 1, 10);      /* 4990 ms */
    put_simple_block(&b, 1, 3300, 0, 10);       /* 5033 ms */
    cluster_end(&b, at);
    rec r = {0};
    result res;
    assert_int_equal(parse_buf(&b, NULL, &r, &res), 0);
    assert_int_equal(r.frags[0].timecode, 500000);
    assert_int_equal(r.frags[0].timecode_ms, 5000);
    assert_int_equal(r.frags[0].first_frame_ms, 4990);
    assert_int_equal(r.frags[0].last_frame_ms, 5033);
    rec_free(&r);
    tr_ebml_buf_free(&b);

    /* Epoch-millisecond timecodes (ABSOLUTE mode) with a 1 ms scale. */
    tr_ebml_buf_init(&b, 0);
    put_start(&b, t, 1);
    put_gop(&b, UINT64_C(1726677687758), 0, 3, 0);
    memset(&r, 0, sizeof r);
    assert_int_equal(parse_buf(&b, NULL, &r, &res), 0);
    assert_int_equal(r.frags[0].timecode_ms, INT64_C(1726677687758));
    assert_int_equal(r.frags[0].last_frame_ms, INT64_C(1726677687758) + 66);
    rec_free(&r);
    tr_ebml_buf_free(&b);
}

/* Producer metadata goes with the cluster after it; END_OF_FRAGMENT ends an open cluster
 * the moment its Tags element begins, before any later byte arrives. */
static void tags_and_end_of_fragment(void **state) {
    const trk t[] = {H264};
    const char *const first[] = {"camera", "front", "motion", "true"};
    const char *const eofr[] = {TR_MKV_TAG_END_OF_FRAGMENT, "", "late", "1"};
    const char *const forged[] = {TR_MKV_TAG_FRAGMENT_NUMBER, "1", "gps", "47.6,-122.3"};
    tr_ebml_buf b;
    tr_ebml_buf_init(&b, 0);
    put_start(&b, t, 1);
    put_tag_list(&b, first, 2);
    put_gop(&b, 0, 0, 5, 0);
    size_t cut = b.len;
    put_tag_list(&b, eofr, 2);
    size_t eofr_id_end = cut + 4;
    put_tag_list(&b, forged, 2);
    put_gop(&b, 1000, 0, 5, 0);
    put_gop(&b, 2000, 1, 5, 0);
    rec r = {0};
    result res;
    assert_int_equal(parse_buf(&b, NULL, &r, &res), 0);
    assert_int_equal(r.fragments, 3);
    assert_string_equal(r.tags[0], "camera=front;motion=true");
    /* Tags after a cluster go with the next; AWS names are dropped. */
    assert_string_equal(r.tags[1], "late=1;gps=47.6,-122.3");
    assert_string_equal(r.tags[2], "");

    /* The first fragment is out as soon as the END_OF_FRAGMENT Tags ID is in. */
    tr_mkv_callbacks cb = {on_header, on_start, on_fragment};
    rec r2 = {0};
    tr_mkv_parser *p = tr_mkv_parser_new(&cb, &r2, NULL);
    assert_int_equal(tr_mkv_parser_feed(p, b.data, eofr_id_end - 1), 0);
    assert_int_equal(r2.fragments, 0);
    assert_int_equal(tr_mkv_parser_feed(p, b.data + eofr_id_end - 1, 1), 0);
    assert_int_equal(r2.fragments, 1);
    tr_mkv_parser_free(p);
    rec_free(&r2);

    rec_free(&r);
    tr_ebml_buf_free(&b);
}

/* ---- errors ---- */

static int expect_error(tr_ebml_buf *b, const tr_mkv_limits *lim, int want, int64_t want_tc) {
    rec r = {0};
    result res;
    int rc = parse_buf(b, lim, &r, &res);
    if (rc != want || res.err_tc != want_tc)
        fail_msg("got %d (tc %lld), want %d (tc %lld)\n%s", rc, (long long)res.err_tc, want,
                 (long long)want_tc, r.log);
    int fragments = r.fragments;
    rec_free(&r);
    tr_ebml_buf_free(b);
    return fragments;
}

static void error_limits(void **state) {
    const trk t[] = {H264, AAC};
    tr_mkv_limits lim;
    tr_mkv_limits_default(&lim);
    assert_int_equal(lim.max_fragment_bytes, 50u * 1024 * 1024);
    assert_int_equal(lim.max_tags_per_fragment, 10);
    tr_ebml_buf b;

    /* 4001: a fragment past the size limit, detected before it is buffered. */
    lim.max_fragment_bytes = 2000;
    tr_ebml_buf_init(&b, 0);
    put_start(&b, t, 2);
    put_gop(&b, 0, 0, 10, 1);
    put_gop(&b, 1000, 1, 30, 1);
    assert_int_equal(expect_error(&b, &lim, TR_KVS_MAX_FRAGMENT_SIZE_REACHED, 1000), 1);
    tr_ebml_buf_init(&b, 0);
    put_start(&b, t, 2);
    size_t at = cluster_begin(&b, 7, 1);
    put_simple_block(&b, 1, 0, 1, 5000);
    cluster_end(&b, at);
    assert_int_equal(expect_error(&b, &lim, TR_KVS_MAX_FRAGMENT_SIZE_REACHED, 7), 0);

    /* 4002: frames more than 10 s apart. */
    tr_mkv_limits_default(&lim);
    tr_ebml_buf_init(&b, 0);
    put_start(&b, t, 2);
    at = cluster_begin(&b, 40000, 0);
    put_simple_block(&b, 1, -32768, 1, 5);
    put_simple_block(&b, 2, 0, 1, 5);
    put_simple_block(&b, 1, 32767, 0, 5);
    assert_int_equal(expect_error(&b, &lim, TR_KVS_MAX_FRAGMENT_DURATION_REACHED, 40000), 0);
    lim.max_fragment_duration_ms = 900; /* configurable */
    tr_ebml_buf_init(&b, 0);
    put_start(&b, t, 2);
    put_gop(&b, 0, 0, 30, 1);
    assert_int_equal(expect_error(&b, &lim, TR_KVS_MAX_FRAGMENT_DURATION_REACHED, 0), 0);

    /* 4004: a fragment timecode not after the previous one. */
    for (int same = 0; same < 2; same++) {
        tr_ebml_buf_init(&b, 0);
        put_start(&b, t, 2);
        put_gop(&b, 5000, 0, 3, 1);
        put_gop(&b, same ? 5000 : 4000, 1, 3, 1);
        assert_int_equal(expect_error(&b, NULL, TR_KVS_FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS,
                                      same ? 5000 : 4000), 1);
    }

    /* 4009: eleven metadata items for one fragment (across two Tags), or one too long. */
    const char *const five[] = {"a", "1", "b", "2", "c", "3", "d", "4", "e", "5"};
    const char *const six[] = {"f", "6", "g", "7", "h", "8", "i", "9", "j", "10", "k", "11"};
    tr_ebml_buf_init(&b, 0);
    put_start(&b, t, 2);
    put_tag_list(&b, five, 5);
    put_tag_list(&b, five, 5); /* ten: fine */
    put_gop(&b, 0, 0, 3, 1);
    put_tag_list(&b, five, 5);
    put_tag_list(&b, six, 6);
    put_gop(&b, 1000, 0, 3, 1);
    assert_int_equal(expect_error(&b, NULL, TR_KVS_FRAGMENT_METADATA_LIMIT_REACHED, -1), 1);
    char longname[200];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    const char *const toolong[] = {longname, "v"};
    tr_ebml_buf_init(&b, 0);
    put_start(&b, t, 2);
    put_tag_list(&b, toolong, 1);
    assert_int_equal(expect_error(&b, NULL, TR_KVS_FRAGMENT_METADATA_LIMIT_REACHED, -1), 0);

    /* 4010: a block for a track Tracks does not declare. */
    tr_ebml_buf_init(&b, 0);
    put_start(&b, t, 2);
    at = cluster_begin(&b, 33, 1);
    put_simple_block(&b, 1, 0, 1, 5);
    put_simple_block(&b, 3, 0, 1, 5);
    cluster_end(&b, at);
    assert_int_equal(expect_error(&b, NULL, TR_KVS_TRACK_NUMBER_MISMATCH, 33), 0);

    /* 4011: a declared track without frames in a fragment. */
    tr_ebml_buf_init(&b, 0);
    put_start(&b, t, 2);
    put_gop(&b, 0, 1, 3, 1);
    put_gop(&b, 1000, 1, 3, 0);
    assert_int_equal(expect_error(&b, NULL, TR_KVS_FRAMES_MISSING_FOR_TRACK, 1000), 1);

    /* 4012: four tracks. */
    const trk four[] = {H264, AAC, AAC, AAC};
    tr_ebml_buf_init(&b, 0);
    put_start(&b, four, 4);
    put_gop(&b, 0, 1, 3, 1);
    assert_int_equal(expect_error(&b, NULL, TR_KVS_MORE_THAN_ALLOWED_TRACKS_FOUND, -1), 0);
}

/* Each of these is 4006 (INVALID_MKV_DATA); the timecode is the cluster's when it has one. */
static void error_invalid(void **state) {
    const trk t[] = {H264};
    tr_ebml_buf b;
    size_t at;

    /* Not EBML at all. */
    tr_ebml_buf_init(&b, 0);
    tr_ebml_put_bytes(&b, "GET / HTTP/1.1\r\n", 16);
    expect_error(&b, NULL, TR_KVS_INVALID_MKV_DATA, -1);
    /* EBML, but not Matroska. */
    tr_ebml_buf_init(&b, 0);
    at = tr_ebml_master_begin(&b, TR_EBML_ID_HEADER);
    tr_ebml_put_string(&b, TR_EBML_ID_DOCTYPE, "pdf");
    tr_ebml_master_end(&b, at);
    expect_error(&b, NULL, TR_KVS_INVALID_MKV_DATA, -1);
    /* A Segment without the EBML header. */
    tr_ebml_buf_init(&b, 0);
    tr_ebml_put_id(&b, TR_MKV_ID_SEGMENT);
    tr_ebml_put_unknown_size(&b);
    expect_error(&b, NULL, TR_KVS_INVALID_MKV_DATA, -1);
    /* A Cluster before Tracks. */
    tr_ebml_buf_init(&b, 0);
    put_ebml_header(&b);
    tr_ebml_put_id(&b, TR_MKV_ID_SEGMENT);
    tr_ebml_put_unknown_size(&b);
    put_info(&b, 0);
    put_gop(&b, 0, 1, 2, 0);
    expect_error(&b, NULL, TR_KVS_INVALID_MKV_DATA, -1);
    /* A second Segment: a new EBML header ends the open cluster (which is emitted), then is
     * refused. */
    tr_ebml_buf_init(&b, 0);
    put_start(&b, t, 1);
    put_gop(&b, 0, 0, 2, 0);
    put_start(&b, t, 1);
    put_gop(&b, 1000, 0, 2, 0);
    assert_int_equal(expect_error(&b, NULL, TR_KVS_INVALID_MKV_DATA, -1), 1);
    /* Data after a Segment of known size. */
    tr_ebml_buf_init(&b, 0);
    put_ebml_header(&b);
    at = tr_ebml_master_begin(&b, TR_MKV_ID_SEGMENT);
    put_info(&b, 0);
    put_tracks(&b, t, 1);
    put_gop(&b, 0, 0, 2, 0); /* unknown size: ended by the Segment's end */
    tr_ebml_master_end(&b, at);
    tr_ebml_put_binary(&b, TR_EBML_ID_VOID, "", 0);
    assert_int_equal(expect_error(&b, NULL, TR_KVS_INVALID_MKV_DATA, -1), 1);
    /* An element running past its Segment of known size. */
    tr_ebml_buf_init(&b, 0);
    put_ebml_header(&b);
    at = tr_ebml_master_begin(&b, TR_MKV_ID_SEGMENT);
    put_info(&b, 0);
    put_tracks(&b, t, 1);
    tr_ebml_master_end(&b, at);
    b.data[at + 7] -= 3;
    expect_error(&b, NULL, TR_KVS_INVALID_MKV_DATA, -1);
    /* A block before the cluster's Timecode. */
    tr_ebml_buf_init(&b, 0);
    put_start(&b, t, 1);
    tr_ebml_put_id(&b, TR_MKV_ID_CLUSTER);
    tr_ebml_put_unknown_size(&b);
    put_simple_block(&b, 1, 0, 1, 4);
    expect_error(&b, NULL, TR_KVS_INVALID_MKV_DATA, -1);
    /* Two Timecodes. */
    tr_ebml_buf_init(&b, 0);
    put_start(&b, t, 1);
    at = cluster_begin(&b, 9, 1);
    tr_ebml_put_uint(&b, TR_MKV_ID_TIMECODE, 10);
    cluster_end(&b, at);
    expect_error(&b, NULL, TR_KVS_INVALID_MKV_DATA, 9);
    /* A cluster without a Timecode. */
    tr_ebml_buf_init(&b, 0);
    put_start(&b, t, 1);
    tr_ebml_put_binary(&b, TR_MKV_ID_CLUSTER, "", 0);
    expect_error(&b, NULL, TR_KVS_INVALID_MKV_DATA, -1);
    /* A cluster child of unknown size; a top-level element inside a cluster of known size. */
    tr_ebml_buf_init(&b, 0);
    put_start(&b, t, 1);
    cluster_begin(&b, 4, 0);
    tr_ebml_put_id(&b, TR_MKV_ID_BLOCK_GROUP);
    tr_ebml_put_unknown_size(&b);
    expect_error(&b, NULL, TR_KVS_INVALID_MKV_DATA, 4);
    tr_ebml_buf_init(&b, 0);
    put_start(&b, t, 1);
    at = cluster_begin(&b, 4, 1);
    put_simple_block(&b, 1, 0, 1, 4);
    tr_ebml_put_binary(&b, TR_MKV_ID_CUES, "", 0);
    cluster_end(&b, at);
    expect_error(&b, NULL, TR_KVS_INVALID_MKV_DATA, 4);
    /* A child that runs past its cluster's end. */
    tr_ebml_buf_init(&b, 0);
    put_start(&b, t, 1);
    at = cluster_begin(&b, 4, 1);
    put_simple_block(&b, 1, 0, 1, 4);
    cluster_end(&b, at);
    b.data[at + 7] -= 2;
    expect_error(&b, NULL, TR_KVS_INVALID_MKV_DATA, 4);
    /* Tags, Cues or Info of unknown size; a second Tracks; an invalid ID. */
    const uint32_t unknown_ids[] = {TR_MKV_ID_TAGS, TR_MKV_ID_CUES, TR_MKV_ID_INFO};
    for (size_t i = 0; i < 3; i++) {
        tr_ebml_buf_init(&b, 0);
        put_start(&b, t, 1);
        tr_ebml_put_id(&b, unknown_ids[i]);
        tr_ebml_put_unknown_size(&b);
        expect_error(&b, NULL, TR_KVS_INVALID_MKV_DATA, -1);
    }
    tr_ebml_buf_init(&b, 0);
    put_start(&b, t, 1);
    put_tracks(&b, t, 1);
    expect_error(&b, NULL, TR_KVS_INVALID_MKV_DATA, -1);
    tr_ebml_buf_init(&b, 0);
    put_start(&b, t, 1);
    tr_ebml_put_bytes(&b, "\x80\x81\x00", 3);
    expect_error(&b, NULL, TR_KVS_INVALID_MKV_DATA, -1);
    /* Tracks: a track without CodecID, number 0, two with one number, none at all. */
    for (int k = 0; k < 4; k++) {
        tr_ebml_buf_init(&b, 0);
        put_ebml_header(&b);
        tr_ebml_put_id(&b, TR_MKV_ID_SEGMENT);
        tr_ebml_put_unknown_size(&b);
        put_info(&b, 0);
        size_t tr = tr_ebml_master_begin(&b, TR_MKV_ID_TRACKS);
        for (int e = 0; e < (k == 2 ? 2 : k == 3 ? 0 : 1); e++) {
            size_t te = tr_ebml_master_begin(&b, TR_MKV_ID_TRACK_ENTRY);
            tr_ebml_put_uint(&b, TR_MKV_ID_TRACK_NUMBER, k == 1 ? 0 : 1);
            if (k != 0) tr_ebml_put_string(&b, TR_MKV_ID_CODEC_ID, "V_VP8");
            tr_ebml_master_end(&b, te);
        }
        tr_ebml_master_end(&b, tr);
        expect_error(&b, NULL, TR_KVS_INVALID_MKV_DATA, -1);
    }
    /* A header element past max_header_bytes. */
    tr_mkv_limits lim;
    tr_mkv_limits_default(&lim);
    lim.max_header_bytes = 16;
    tr_ebml_buf_init(&b, 0);
    put_start(&b, t, 1);
    expect_error(&b, &lim, TR_KVS_INVALID_MKV_DATA, -1);
}

/* The end of the body: a cluster cut short is dropped and reported with its timecode; one of
 * unknown size that ends between children is complete. */
static void end_of_body(void **state) {
    const trk t[] = {H264};
    tr_ebml_buf b;
    tr_ebml_buf_init(&b, 0);
    put_start(&b, t, 1);
    put_gop(&b, 0, 1, 3, 0);
    size_t whole = b.len;
    put_gop(&b, 1000, 1, 3, 0);
    rec r = {0};
    result res;
    /* Every cut inside the second (known-size) cluster drops it. */
    for (size_t cut = whole + 1; cut < b.len; cut++) {
        memset(&r, 0, sizeof r);
        int rc = parse_all(b.data, cut, NULL, &r, &res);
        assert_int_equal(rc, TR_KVS_INVALID_MKV_DATA);
        assert_int_equal(res.feed_rc, 0);
        assert_int_equal(r.fragments, 1);
        /* Its timecode is known once the Timecode element is whole: ID and 8-byte size (12
         * bytes), then E7 82 03 E8. */
        assert_int_equal(res.err_tc, cut >= whole + 16 ? 1000 : -1);
        rec_free(&r);
    }
    /* Cut inside the header: 4006; an empty body: nothing, no error. */
    memset(&r, 0, sizeof r);
    assert_int_equal(parse_all(b.data, 30, NULL, &r, &res), TR_KVS_INVALID_MKV_DATA);
    rec_free(&r);
    memset(&r, 0, sizeof r);
    assert_int_equal(parse_all(b.data, 0, NULL, &r, &res), 0);
    rec_free(&r);
    /* A header and no cluster is fine. */
    memset(&r, 0, sizeof r);
    tr_ebml_buf h;
    tr_ebml_buf_init(&h, 0);
    put_start(&h, t, 1);
    assert_int_equal(parse_buf(&h, NULL, &r, &res), 0);
    assert_int_equal(r.headers, 1);
    rec_free(&r);
    tr_ebml_buf_free(&h);
    tr_ebml_buf_free(&b);

    /* Unknown size: cut between blocks, it is whole; cut inside a block, it is dropped. */
    tr_ebml_buf_init(&b, 0);
    put_start(&b, t, 1);
    size_t at = cluster_begin(&b, 50, 0);
    (void)at;
    put_simple_block(&b, 1, 0, 1, 10);
    size_t between = b.len;
    put_simple_block(&b, 1, 33, 0, 10);
    memset(&r, 0, sizeof r);
    assert_int_equal(parse_all(b.data, between, NULL, &r, &res), 0);
    assert_int_equal(r.fragments, 1);
    assert_int_equal(r.frags[0].frame_count, 1);
    rec_free(&r);
    memset(&r, 0, sizeof r);
    assert_int_equal(parse_all(b.data, b.len - 1, NULL, &r, &res), TR_KVS_INVALID_MKV_DATA);
    assert_int_equal(res.err_tc, 50);
    assert_int_equal(r.fragments, 0);
    rec_free(&r);
    tr_ebml_buf_free(&b);

    /* Feeding after finish is an error. */
    tr_mkv_parser *p = tr_mkv_parser_new(NULL, NULL, NULL);
    assert_int_equal(tr_mkv_parser_finish(p), 0);
    assert_int_equal(tr_mkv_parser_feed(p, "\x1a", 1), TR_KVS_INVALID_MKV_DATA);
    assert_string_not_equal(tr_mkv_parser_error_detail(p), "");
    tr_mkv_parser_free(p);
}

/* A callback's nonzero return stops the parser with that value. */
static void callback_stops(void **state) {
    const trk t[] = {H264};
    tr_ebml_buf b;
    tr_ebml_buf_init(&b, 0);
    put_start(&b, t, 1);
    put_gop(&b, 0, 1, 2, 0);
    put_gop(&b, 1000, 1, 2, 0);
    put_gop(&b, 2000, 1, 2, 0);
    rec r = {0};
    r.stop_at_fragment = 2;
    result res;
    assert_int_equal(parse_buf(&b, NULL, &r, &res), TR_KVS_INTERNAL_ERROR);
    assert_int_equal(res.err_tc, 1000);
    assert_int_equal(r.fragments, 2);
    rec_free(&r);
    tr_ebml_buf_free(&b);
}

/* Every single-byte change of a valid stream: no crash, no read out of bounds (under ASan),
 * and the same result however it is fed. */
static void mutations(void **state) {
    const trk t[] = {H264, {A, "A_OPUS", 20000000}};
    const size_t xiph[] = {30, 10, 7};
    tr_ebml_buf b;
    tr_ebml_buf_init(&b, 0);
    put_start(&b, t, 2);
    put_tag_list(&b, (const char *const[]){"k", "v"}, 1);
    size_t at = cluster_begin(&b, 0, 1);
    put_simple_block(&b, 1, 0, 1, 6);
    put_laced_block(&b, 2, 0, 1, xiph, 3);
    put_block_group(&b, 1, 33, 1, 33, 4);
    cluster_end(&b, at);
    at = cluster_begin(&b, 1000, 0);
    put_simple_block(&b, 1, 0, 1, 6);
    put_simple_block(&b, 2, 0, 1, 3);
    assert_false(b.failed);
    const uint8_t flips[] = {0x01, 0x80, 0xFF};
    int failures = 0, runs = 0;
    for (size_t i = 0; i < b.len; i++) {
        for (size_t f = 0; f < sizeof flips; f++) {
            b.data[i] ^= flips[f];
            rec r = {0};
            result res;
            int rc = parse_all(b.data, b.len, NULL, &r, &res);
            assert_true(rc == 0 || (rc >= 4000 && rc <= 4012));
            failures += rc != 0;
            runs++;
            rec_free(&r);
            b.data[i] ^= flips[f];
        }
    }
    /* Most changes are caught; some (payload bytes) are not. */
    assert_true(failures > runs / 3 && failures < runs);
    tr_ebml_buf_free(&b);
}

/* ---- GetMedia chunks ---- */

typedef struct {
    char text[1024];
    size_t len;
} tag_text;

static int collect_tag(void *ctx, const char *name, size_t nl, const char *value, size_t vl) {
    tag_text *t = ctx;
    int n = snprintf(t->text + t->len, sizeof t->text - t->len, "%.*s=%.*s;", (int)nl, name,
                     (int)vl, value);
    assert_true(n > 0);
    t->len += (size_t)n;
    return 0;
}

static void seconds(void **state) {
    char s[TR_MKV_SECONDS_MAX];
    tr_mkv_format_seconds(INT64_C(1726677687758), s);
    assert_string_equal(s, "1726677687.758");
    tr_mkv_format_seconds(5, s);
    assert_string_equal(s, "0.005");
    tr_mkv_format_seconds(1000, s);
    assert_string_equal(s, "1.000");
    tr_mkv_format_seconds(-5, s);
    assert_string_equal(s, "-0.005");
    tr_mkv_format_seconds(INT64_MIN, s);
    assert_string_equal(s, "-9223372036854775.808");
}

static void chunks(void **state) {
    const trk t[] = {H264, AAC};
    const char *const meta[] = {"camera", "front"};
    tr_ebml_buf b;
    tr_ebml_buf_init(&b, 0);
    put_start(&b, t, 2);
    put_tag_list(&b, meta, 1);
    put_gop(&b, 1000, 0, 5, 1);
    put_gop(&b, 2000, 0, 5, 1);
    rec r = {0};
    result res;
    assert_int_equal(parse_buf(&b, NULL, &r, &res), 0);
    assert_int_equal(r.fragments, 2);

    /* Two chunks back to back, as GetMedia streams them. */
    tr_ebml_buf out;
    tr_ebml_buf_init(&out, 0);
    tr_mkv_tag ptags[] = {{"camera", "front"}};
    tr_ebml_buf pt;
    tr_ebml_buf_init(&pt, 0);
    tr_mkv_put_tags(&pt, ptags, 1);
    tr_mkv_chunk_meta m1 = {"91343852333181432392682062607743920146721811178", 1726677687758,
                            1000, 2500, NULL};
    tr_mkv_chunk_meta m2 = {"91343852333181432392682062607743920146721811179", 1726677688758,
                            2000, 1500, "token-2"};
    assert_int_equal(tr_mkv_chunk_build(&out, r.header, r.header_len, r.clusters[0],
                                        r.cluster_lens[0], pt.data, pt.len, &m1), 0);
    size_t first_len = out.len;
    /* The same chunk built as head + cluster + tail. */
    tr_ebml_buf head;
    tr_ebml_buf_init(&head, 0);
    tr_mkv_chunk_head(&head, r.header, r.header_len, &m1);
    tr_ebml_put_bytes(&head, r.clusters[0], r.cluster_lens[0]);
    tr_mkv_chunk_tail(&head, pt.data, pt.len, &m1);
    assert_int_equal(head.len, first_len);
    assert_memory_equal(head.data, out.data, first_len);
    tr_ebml_buf_free(&head);
    assert_int_equal(tr_mkv_chunk_build(&out, r.header, r.header_len, r.clusters[1],
                                        r.cluster_lens[1], NULL, 0, &m2), 0);

    tag_text tt = {0};
    tr_mkv_chunk_view v;
    assert_int_equal(tr_mkv_chunk_read(out.data, out.len, &v, collect_tag, &tt), 0);
    assert_int_equal(v.len, first_len);
    assert_int_equal(v.ntags_elements, 3);
    assert_int_equal(v.cluster_len, r.cluster_lens[0]);
    assert_memory_equal(v.cluster, r.clusters[0], v.cluster_len);
    assert_string_equal(tt.text,
                        "AWS_KINESISVIDEO_FRAGMENT_NUMBER=91343852333181432392682062607743920146721811178;"
                        "AWS_KINESISVIDEO_SERVER_TIMESTAMP=1726677687.758;"
                        "AWS_KINESISVIDEO_PRODUCER_TIMESTAMP=1.000;"
                        "camera=front;"
                        "AWS_KINESISVIDEO_MILLIS_BEHIND_NOW=2500;"
                        "AWS_KINESISVIDEO_CONTINUATION_TOKEN=91343852333181432392682062607743920146721811178;");
    /* The header parses from a chunk, and the chunk re-parses as a PutMedia body would. */
    tr_mkv_header h;
    tr_mkv_track tracks[TR_MKV_MAX_TRACKS];
    assert_int_equal(tr_mkv_header_parse(out.data, v.len, &h, tracks), 0);
    assert_int_equal(h.ntracks, 2);

    memset(&tt, 0, sizeof tt);
    assert_int_equal(tr_mkv_chunk_read(out.data + first_len, out.len - first_len, &v,
                                       collect_tag, &tt), 0);
    assert_int_equal(v.len, out.len - first_len);
    assert_int_equal(v.ntags_elements, 2);
    assert_non_null(strstr(tt.text, "AWS_KINESISVIDEO_CONTINUATION_TOKEN=token-2;"));
    assert_non_null(strstr(tt.text, "AWS_KINESISVIDEO_MILLIS_BEHIND_NOW=1500;"));

    /* Each chunk is itself a valid PutMedia body of one fragment. */
    rec r2 = {0};
    assert_int_equal(parse_all(out.data, first_len, NULL, &r2, &res), 0);
    assert_int_equal(r2.fragments, 1);
    assert_int_equal(r2.cluster_lens[0], r.cluster_lens[0]);
    assert_memory_equal(r2.clusters[0], r.clusters[0], r.cluster_lens[0]);
    rec_free(&r2);

    /* Error chunks, with and without a header. */
    tr_ebml_buf e;
    tr_ebml_buf_init(&e, 0);
    assert_int_equal(tr_mkv_chunk_error(&e, r.header, r.header_len, "123", 4000, NULL), 0);
    memset(&tt, 0, sizeof tt);
    assert_int_equal(tr_mkv_chunk_read(e.data, e.len, &v, collect_tag, &tt), 0);
    assert_null(v.cluster);
    assert_string_equal(tt.text, "AWS_KINESISVIDEO_FRAGMENT_NUMBER=123;"
                                 "AWS_KINESISVIDEO_ERROR_CODE=STREAM_READ_ERROR;"
                                 "AWS_KINESISVIDEO_ERROR_ID=4000;");
    tr_ebml_buf_reset(&e);
    assert_int_equal(tr_mkv_chunk_error(&e, NULL, 0, NULL, 5000, "Internal error"), 0);
    memset(&tt, 0, sizeof tt);
    assert_int_equal(tr_mkv_chunk_read(e.data, e.len, &v, collect_tag, &tt), 0);
    assert_string_equal(tt.text, "AWS_KINESISVIDEO_ERROR_CODE=Internal error;"
                                 "AWS_KINESISVIDEO_ERROR_ID=5000;");
    /* A cut chunk is refused. */
    assert_int_equal(tr_mkv_chunk_read(e.data, e.len - 1, &v, NULL, NULL), -1);
    assert_int_equal(tr_mkv_chunk_read(e.data, 3, &v, NULL, NULL), -1);
    assert_string_equal(tr_kvs_error_name(4011), "FRAMES_MISSING_FOR_TRACK");
    assert_string_equal(tr_kvs_error_name(1), "UNKNOWN_ERROR");

    tr_ebml_buf_free(&e);
    tr_ebml_buf_free(&pt);
    tr_ebml_buf_free(&out);
    rec_free(&r);
    tr_ebml_buf_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ebml_ids_and_sizes),
        cmocka_unit_test(ebml_values),
        cmocka_unit_test(known_and_unknown_clusters),
        cmocka_unit_test(frames_read_back),
        cmocka_unit_test(lacing),
        cmocka_unit_test(block_groups),
        cmocka_unit_test(duration_of_tracks),
        cmocka_unit_test(timecode_scale),
        cmocka_unit_test(tags_and_end_of_fragment),
        cmocka_unit_test(error_limits),
        cmocka_unit_test(error_invalid),
        cmocka_unit_test(end_of_body),
        cmocka_unit_test(callback_stops),
        cmocka_unit_test(mutations),
        cmocka_unit_test(seconds),
        cmocka_unit_test(chunks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
