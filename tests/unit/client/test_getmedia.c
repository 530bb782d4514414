/* libtributary (client/getmedia.h): the GetMedia push parser on chunks built with the server's
 * own writer (tr_mkv_chunk_build, tr_mkv_chunk_error), fed whole, one byte at a time and split
 * at every byte, which must all give the same callbacks; the HTTP answer reader on canned
 * answers; and the blocking client against a one-shot server thread on a loopback port that
 * checks the request it gets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/getmedia.h"
#include "client/response.h"
#include "wire/ebml.h"
#include "wire/mkv_chunk.h"
#include "wire/mkv_ingest.h"

/* ---- building chunks ---- */

static const uint8_t AVCC[] = {0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x04,
                               0x67, 0x64, 0x00, 0x1f, 0x01, 0x00, 0x02, 0x68, 0xee};

/* EBML header + Segment (unknown size) + Info + Tracks: H.264 640x480 and AAC 48 kHz stereo
 * (audio only when audio is set). */
static void put_header(tr_ebml_buf *b, int audio) {
    size_t at = tr_ebml_master_begin(b, TR_EBML_ID_HEADER);
    tr_ebml_put_uint(b, TR_EBML_ID_VERSION, 1);
    tr_ebml_put_string(b, TR_EBML_ID_DOCTYPE, "matroska");
    tr_ebml_master_end(b, at);
    tr_ebml_put_id(b, TR_MKV_ID_SEGMENT);
    tr_ebml_put_unknown_size(b);
    at = tr_ebml_master_begin(b, TR_MKV_ID_INFO);
    tr_ebml_put_uint(b, TR_MKV_ID_TIMECODE_SCALE, 1000000);
    tr_ebml_master_end(b, at);
    at = tr_ebml_master_begin(b, TR_MKV_ID_TRACKS);
    size_t e = tr_ebml_master_begin(b, TR_MKV_ID_TRACK_ENTRY);
    tr_ebml_put_uint(b, TR_MKV_ID_TRACK_NUMBER, 1);
    tr_ebml_put_uint(b, TR_MKV_ID_TRACK_UID, 11);
    tr_ebml_put_uint(b, TR_MKV_ID_TRACK_TYPE, TR_MKV_TRACK_VIDEO);
    tr_ebml_put_string(b, TR_MKV_ID_CODEC_ID, "V_MPEG4/ISO/AVC");
    tr_ebml_put_binary(b, TR_MKV_ID_CODEC_PRIVATE, AVCC, sizeof AVCC);
    size_t v = tr_ebml_master_begin(b, TR_MKV_ID_VIDEO);
    tr_ebml_put_uint(b, TR_MKV_ID_PIXEL_WIDTH, 640);
    tr_ebml_put_uint(b, TR_MKV_ID_PIXEL_HEIGHT, 480);
    tr_ebml_master_end(b, v);
    tr_ebml_master_end(b, e);
    if (audio) {
        e = tr_ebml_master_begin(b, TR_MKV_ID_TRACK_ENTRY);
        tr_ebml_put_uint(b, TR_MKV_ID_TRACK_NUMBER, 2);
        tr_ebml_put_uint(b, TR_MKV_ID_TRACK_TYPE, TR_MKV_TRACK_AUDIO);
        tr_ebml_put_string(b, TR_MKV_ID_CODEC_ID, "A_AAC");
        tr_ebml_put_binary(b, TR_MKV_ID_CODEC_PRIVATE, "\x11\x90", 2);
        size_t a = tr_ebml_master_begin(b, TR_MKV_ID_AUDIO);
        tr_ebml_put_float(b, TR_MKV_ID_SAMPLING_FREQUENCY, 48000.0);
        tr_ebml_put_uint(b, TR_MKV_ID_CHANNELS, 2);
        tr_ebml_master_end(b, a);
        tr_ebml_master_end(b, e);
    }
    tr_ebml_master_end(b, at);
}

static void put_simple_block(tr_ebml_buf *b, unsigned track, int rel, int key, size_t len,
                             uint8_t seed) {
    uint8_t h[4] = {(uint8_t)(0x80 | track), (uint8_t)((uint16_t)rel >> 8), (uint8_t)rel,
                    key ? 0x80 : 0};
    tr_ebml_put_id(b, TR_MKV_ID_SIMPLE_BLOCK);
    tr_ebml_put_size(b, 4 + len);
    tr_ebml_put_bytes(b, h, 4);
    for (size_t i = 0; i < len; i++) {
        uint8_t c = (uint8_t)(seed + i * 7);
        tr_ebml_put_bytes(b, &c, 1);
    }
}

/* A known-size Cluster at timecode tc (ms): n video frames 33 ms apart, keyframe first, and
 * with audio one AAC frame after each. */
static void put_cluster(tr_ebml_buf *b, uint64_t tc, int n, int audio) {
    size_t at = tr_ebml_master_begin(b, TR_MKV_ID_CLUSTER);
    tr_ebml_put_uint(b, TR_MKV_ID_TIMECODE, tc);
    for (int i = 0; i < n; i++) {
        put_simple_block(b, 1, i * 33, i == 0, 20 + (size_t)i, (uint8_t)i);
        if (audio) put_simple_block(b, 2, i * 33 + 5, 1, 6, (uint8_t)(100 + i));
    }
    tr_ebml_master_end(b, at);
}

/* The GetMedia answer the tests share: two fragments (producer tags on the first) and an
 * error chunk. */
#define FN1 "91343852333181432392682062607743920146721811178"
#define FN2 "91343852333181432392682062607743920146721811179"
#define T1 INT64_C(1726677687000)

static void put_stream(tr_ebml_buf *out, int audio) {
    tr_ebml_buf h, c1, c2, tags;
    tr_ebml_buf_init(&h, 0);
    tr_ebml_buf_init(&c1, 0);
    tr_ebml_buf_init(&c2, 0);
    tr_ebml_buf_init(&tags, 0);
    put_header(&h, audio);
    put_cluster(&c1, (uint64_t)T1, 3, audio);
    put_cluster(&c2, (uint64_t)T1 + 1000, 2, audio);
    tr_mkv_tag pt[] = {{"camera", "front door"}, {"motion", "1"}};
    tr_mkv_put_tags(&tags, pt, 2);
    tr_mkv_chunk_meta m1 = {FN1, T1 + 758, T1, 2500, NULL};
    tr_mkv_chunk_meta m2 = {FN2, T1 + 1758, T1 + 1000, 0, "token-2"};
    assert_int_equal(tr_mkv_chunk_build(out, h.data, h.len, c1.data, c1.len, tags.data,
                                        tags.len, &m1), 0);
    assert_int_equal(tr_mkv_chunk_build(out, h.data, h.len, c2.data, c2.len, NULL, 0, &m2), 0);
    assert_int_equal(tr_mkv_chunk_error(out, NULL, 0, "123", 4000, "FRAGMENT_NOT_FOUND"), 0);
    tr_ebml_buf_free(&h);
    tr_ebml_buf_free(&c1);
    tr_ebml_buf_free(&c2);
    tr_ebml_buf_free(&tags);
}

/* ---- recording callbacks as text ---- */

typedef struct rec {
    char log[16384];
    size_t len;
    int fragments, frames, errors, ends;
    int stop_after_frames;         /* > 0: on_frame returns 7 at that frame */
    int fragments_seen_at_feed_end; /* for the live-latency test */
} rec;

static void say(rec *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(rec *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(r->log + r->len, sizeof r->log - r->len, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof r->log - r->len);
    r->len += (size_t)n;
}

static uint32_t fnv(const uint8_t *d, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ d[i]) * 16777619u;
    return h;
}

static int on_fragment(void *ctx, const tr_client_fragment *f) {
    rec *r = ctx;
    r->fragments++;
    say(r, "fragment %s server=%lld producer=%lld behind=%lld token=%s frames=%u [%u %u %u] "
           "first=%lld last=%lld index=%llu chunk=%zu/%08x\n",
        f->fragment_number, (long long)f->server_timestamp_ms, (long long)f->producer_timestamp_ms,
        (long long)f->millis_behind_now, f->continuation_token, f->frame_count, f->frames[0],
        f->frames[1], f->frames[2], (long long)f->first_frame_ms, (long long)f->last_frame_ms,
        (unsigned long long)f->index, f->chunk_len, fnv(f->chunk, f->chunk_len));
    for (size_t i = 0; i < f->ntags; i++) say(r, "  tag %s=%s\n", f->tags[i].name, f->tags[i].value);
    for (size_t i = 0; i < f->ntracks; i++) {
        const tr_client_track *t = &f->tracks[i];
        say(r, "  track %llu type=%u %s private=%zu/%08x %llux%llu %.0fHz ch=%llu\n",
            (unsigned long long)t->number, t->type, t->codec_id, t->codec_private_len,
            t->codec_private ? fnv(t->codec_private, t->codec_private_len) : 0,
            (unsigned long long)t->width, (unsigned long long)t->height, t->sampling_frequency,
            (unsigned long long)t->channels);
    }
    return 0;
}

static int on_frame(void *ctx, const tr_client_fragment *f, const tr_client_frame *fr) {
    rec *r = ctx;
    r->frames++;
    assert_true(fr->track == NULL || fr->track->number == fr->track_number);
    assert_true(fr->track == NULL || (fr->track >= f->tracks && fr->track < f->tracks + f->ntracks));
    say(r, "  frame %u track=%llu t=%lld key=%d len=%zu/%08x\n", fr->index,
        (unsigned long long)fr->track_number, (long long)fr->timestamp_ms, fr->keyframe, fr->len,
        fnv(fr->data, fr->len));
    if (r->stop_after_frames && r->frames == r->stop_after_frames) return 7;
    return 0;
}

static int on_fragment_end(void *ctx, const tr_client_fragment *f) {
    rec *r = ctx;
    r->ends++;
    say(r, "end %s\n", f->fragment_number);
    return 0;
}

static int on_error(void *ctx, const tr_client_error *e) {
    rec *r = ctx;
    r->errors++;
    say(r, "error fragment=%s code=%s id=%d\n", e->fragment_number, e->error_code, e->error_id);
    return 0;
}

static int count_error(void *ctx, const tr_client_error *e) {
    assert_int_equal(e->error_id, 5000);
    assert_string_equal(e->error_code, "INTERNAL_ERROR");
    ++*(size_t *)ctx;
    return 0;
}

static const tr_client_callbacks CB = {on_fragment, on_frame, on_fragment_end, on_error};

/* Feeds data in the pieces that cuts (ascending offsets) make; returns feed's first nonzero
 * result, else finish's. */
static int run_cuts(const uint8_t *d, size_t len, const size_t *cuts, size_t ncuts, rec *r,
                    size_t max) {
    tr_client_parser *p = tr_client_parser_new(&CB, r, max);
    assert_non_null(p);
    size_t off = 0;
    int rc = 0;
    for (size_t i = 0; i <= ncuts && rc == 0; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        /* Each piece in its own allocation, so that a read past it is caught by ASan. */
        uint8_t *piece = malloc(end - off + 1);
        assert_non_null(piece);
        memcpy(piece, d + off, end - off);
        rc = tr_client_parser_feed(p, piece, end - off);
        free(piece);
        off = end;
    }
    if (rc == 0) rc = tr_client_parser_finish(p);
    tr_client_parser_free(p);
    return rc;
}

static int run_whole(const uint8_t *d, size_t len, rec *r) { return run_cuts(d, len, NULL, 0, r, 0); }

/* ---- the parser ---- */

static void fragments_frames_and_errors(void **state) {
    tr_ebml_buf s;
    tr_ebml_buf_init(&s, 0);
    put_stream(&s, 1);
    rec r = {0};
    assert_int_equal(run_whole(s.data, s.len, &r), 0);
    assert_int_equal(r.fragments, 2);
    assert_int_equal(r.ends, 2);
    assert_int_equal(r.errors, 1);
    assert_int_equal(r.frames, 3 * 2 + 2 * 2);
    /* The values, spelled out once. */
    const char *want_start =
        "fragment " FN1 " server=1726677687758 producer=1726677687000 behind=2500 token=" FN1
        " frames=6 [3 3 0] first=1726677687000 last=1726677687071 index=0 chunk=";
    assert_memory_equal(r.log, want_start, strlen(want_start));
    assert_non_null(strstr(r.log, "  tag camera=front door\n  tag motion=1\n"));
    char track1[160];
    snprintf(track1, sizeof track1,
             "  track 1 type=1 V_MPEG4/ISO/AVC private=%zu/%08x 640x480 8000Hz ch=1\n",
             sizeof AVCC, fnv(AVCC, sizeof AVCC));
    assert_non_null(strstr(r.log, track1));
    assert_non_null(strstr(r.log, "  track 2 type=2 A_AAC private=2/"));
    assert_non_null(strstr(r.log, " 0x0 48000Hz ch=2\n"));
    assert_non_null(strstr(r.log, "  frame 0 track=1 t=1726677687000 key=1 len=20/"));
    assert_non_null(strstr(r.log, "  frame 1 track=2 t=1726677687005 key=1 len=6/"));
    assert_non_null(strstr(r.log, "  frame 2 track=1 t=1726677687033 key=0 len=21/"));
    assert_non_null(strstr(r.log, "end " FN1 "\nfragment " FN2 " server=1726677688758 "
                                  "producer=1726677688000 behind=0 token=token-2 frames=4 [2 2 0]"));
    assert_non_null(strstr(r.log, "  frame 3 track=2 t=1726677688038 key=1 len=6/"));
    assert_non_null(strstr(r.log, "end " FN2 "\nerror fragment=123 code=FRAGMENT_NOT_FOUND id=4000\n"));
    /* The second fragment has no producer tags. */
    assert_null(strstr(strstr(r.log, "fragment " FN2), "  tag "));
    tr_ebml_buf_free(&s);
}

static void split_at_every_byte(void **state) {
    for (int audio = 0; audio < 2; audio++) {
        tr_ebml_buf s;
        tr_ebml_buf_init(&s, 0);
        put_stream(&s, audio);
        rec whole = {0};
        assert_int_equal(run_whole(s.data, s.len, &whole), 0);
        assert_int_equal(whole.fragments, 2);
        /* Two pieces, cut at every offset. */
        for (size_t cut = 0; cut <= s.len; cut++) {
            rec r = {0};
            assert_int_equal(run_cuts(s.data, s.len, &cut, 1, &r, 0), 0);
            assert_int_equal(r.len, whole.len);
            assert_memory_equal(r.log, whole.log, whole.len);
        }
        /* One byte at a time. */
        size_t *cuts = malloc(s.len * sizeof *cuts);
        assert_non_null(cuts);
        for (size_t i = 0; i < s.len; i++) cuts[i] = i;
        rec r = {0};
        assert_int_equal(run_cuts(s.data, s.len, cuts, s.len, &r, 0), 0);
        assert_int_equal(r.len, whole.len);
        assert_memory_equal(r.log, whole.log, whole.len);
        free(cuts);
        tr_ebml_buf_free(&s);
    }
}

/* A live consumer gets a fragment as soon as its chunk's last byte arrives. */
static void chunk_delivered_at_its_last_byte(void **state) {
    tr_ebml_buf h, c, chunk;
    tr_ebml_buf_init(&h, 0);
    tr_ebml_buf_init(&c, 0);
    tr_ebml_buf_init(&chunk, 0);
    put_header(&h, 0);
    put_cluster(&c, 5000, 2, 0);
    tr_mkv_chunk_meta m = {"7", 1, 2, 3, NULL};
    assert_int_equal(tr_mkv_chunk_build(&chunk, h.data, h.len, c.data, c.len, NULL, 0, &m), 0);
    rec r = {0};
    tr_client_parser *p = tr_client_parser_new(&CB, &r, 0);
    assert_int_equal(tr_client_parser_feed(p, chunk.data, chunk.len - 1), 0);
    assert_int_equal(r.fragments, 0);
    assert_int_equal(tr_client_parser_feed(p, chunk.data + chunk.len - 1, 1), 0);
    assert_int_equal(r.fragments, 1);
    assert_int_equal(r.ends, 1);
    assert_int_equal(tr_client_parser_fragments(p), 1);
    assert_int_equal(tr_client_parser_offset(p), chunk.len);
    /* Stopping mid-chunk is a truncation. */
    assert_int_equal(tr_client_parser_feed(p, chunk.data, 10), 0);
    assert_int_equal(tr_client_parser_finish(p), TR_CLIENT_ETRUNCATED);
    assert_string_not_equal(tr_client_parser_error_detail(p), "");
    tr_client_parser_free(p);
    tr_ebml_buf_free(&h);
    tr_ebml_buf_free(&c);
    tr_ebml_buf_free(&chunk);
}

/* Chunks without closing Tags end at the next EBML header or at the end of the body; a
 * Segment of known size ends at its size. */
static void other_chunk_ends(void **state) {
    tr_ebml_buf h, c, s;
    tr_ebml_buf_init(&h, 0);
    tr_ebml_buf_init(&c, 0);
    tr_ebml_buf_init(&s, 0);
    put_header(&h, 0);
    put_cluster(&c, 100, 2, 0);
    tr_mkv_chunk_meta m = {"1", 1000, 2000, 0, NULL};
    for (int i = 0; i < 2; i++) { /* head + cluster, twice */
        tr_mkv_chunk_head(&s, h.data, h.len, &m);
        tr_ebml_put_bytes(&s, c.data, c.len);
    }
    rec r = {0};
    assert_int_equal(run_whole(s.data, s.len, &r), 0);
    assert_int_equal(r.fragments, 2);
    assert_non_null(strstr(r.log, "behind=-1 token= frames=2"));

    /* The same fragment in a Segment of known size, twice. */
    tr_ebml_buf k;
    tr_ebml_buf_init(&k, 0);
    for (int i = 0; i < 2; i++) {
        size_t at = tr_ebml_master_begin(&k, TR_EBML_ID_HEADER);
        tr_ebml_put_string(&k, TR_EBML_ID_DOCTYPE, "matroska");
        tr_ebml_master_end(&k, at);
        size_t seg = tr_ebml_master_begin(&k, TR_MKV_ID_SEGMENT);
        /* Info and Tracks from the header built above: after its EBML header and Segment. */
        const uint8_t *p = h.data, *end = h.data + h.len;
        tr_ebml_elem e;
        assert_int_equal(tr_ebml_next(&p, end, &e), 1);
        p += 4 + 8; /* Segment ID and unknown size */
        tr_ebml_put_bytes(&k, p, (size_t)(end - p));
        tr_ebml_put_bytes(&k, c.data, c.len);
        tr_mkv_chunk_tail(&k, NULL, 0, &m);
        tr_ebml_master_end(&k, seg);
    }
    assert_false(k.failed);
    rec r2 = {0};
    assert_int_equal(run_whole(k.data, k.len, &r2), 0);
    assert_int_equal(r2.fragments, 2);
    for (size_t cut = 0; cut <= k.len; cut += 7) {
        rec r3 = {0};
        assert_int_equal(run_cuts(k.data, k.len, &cut, 1, &r3, 0), 0);
        assert_string_equal(r3.log, r2.log);
    }

    /* Many small chunks in one feed (over a slice of 1 MiB): each one delivered once. */
    tr_ebml_buf many;
    tr_ebml_buf_init(&many, 0);
    size_t n = 0;
    while (many.len < (3u << 20)) {
        assert_int_equal(tr_mkv_chunk_error(&many, NULL, 0, "9", 5000, NULL), 0);
        n++;
    }
    size_t errors = 0;
    tr_client_callbacks count = {.on_error = count_error};
    tr_client_parser *pp = tr_client_parser_new(&count, &errors, 0);
    assert_int_equal(tr_client_parser_feed(pp, many.data, many.len), 0);
    assert_int_equal(tr_client_parser_finish(pp), 0);
    assert_int_equal(errors, n);
    assert_int_equal(tr_client_parser_fragments(pp), n);
    tr_client_parser_free(pp);
    tr_ebml_buf_free(&many);

    tr_ebml_buf_free(&k);
    tr_ebml_buf_free(&h);
    tr_ebml_buf_free(&c);
    tr_ebml_buf_free(&s);
}

static void malformed_input(void **state) {
    rec r = {0};
    /* Not Matroska at all; the error sticks. */
    tr_client_parser *p = tr_client_parser_new(&CB, &r, 0);
    assert_int_equal(tr_client_parser_feed(p, "HTTP/1.1 200 OK\r\n", 17), TR_CLIENT_EMKV);
    assert_int_equal(tr_client_parser_feed(p, "", 0), TR_CLIENT_EMKV);
    assert_int_equal(tr_client_parser_finish(p), TR_CLIENT_EMKV);
    tr_client_parser_free(p);
    /* An empty body is fine. */
    assert_int_equal(run_whole((const uint8_t *)"", 0, &r), 0);

    tr_ebml_buf s;
    tr_ebml_buf_init(&s, 0);
    put_stream(&s, 0);
    /* Every truncation is refused, or ends after whole elements (a chunk cut after its
     * Cluster is then delivered without its closing Tags); never a crash, never half a
     * fragment, and what came before the cut chunk is as in the whole body. */
    rec whole = {0};
    assert_int_equal(run_whole(s.data, s.len, &whole), 0);
    for (size_t len = 0; len < s.len; len++) {
        rec t = {0};
        int rc = run_whole(s.data, len, &t);
        assert_true(rc == 0 || rc == TR_CLIENT_ETRUNCATED);
        assert_int_equal(t.fragments, t.ends);
        if (rc != 0) assert_true(t.len <= whole.len && memcmp(t.log, whole.log, t.len) == 0);
    }
    /* Every single-byte corruption: an error or some callbacks, never a crash. */
    for (size_t i = 0; i < s.len; i++) {
        uint8_t saved = s.data[i];
        s.data[i] ^= 0x5a;
        rec t = {0};
        int rc = run_whole(s.data, s.len, &t);
        assert_true(rc <= 0 && rc >= TR_CLIENT_ETRUNCATED);
        assert_int_equal(t.fragments, t.ends); /* never half a fragment */
        s.data[i] = saved;
    }

    /* A chunk over the limit. */
    rec big = {0};
    assert_int_equal(run_cuts(s.data, s.len, NULL, 0, &big, 4096), 0); /* small chunks pass */
    tr_ebml_buf h, c, chunk;
    tr_ebml_buf_init(&h, 0);
    tr_ebml_buf_init(&c, 0);
    tr_ebml_buf_init(&chunk, 0);
    put_header(&h, 0);
    put_cluster(&c, 0, 300, 0); /* ~ 12 KB */
    tr_mkv_chunk_meta m = {"1", 0, 0, 0, NULL};
    assert_int_equal(tr_mkv_chunk_build(&chunk, h.data, h.len, c.data, c.len, NULL, 0, &m), 0);
    rec t = {0};
    assert_int_equal(run_cuts(chunk.data, chunk.len, NULL, 0, &t, 4096), TR_CLIENT_ETOOBIG);
    assert_int_equal(t.fragments, 0);
    assert_int_equal(run_cuts(chunk.data, chunk.len, NULL, 0, &t, 65536), 0);
    assert_int_equal(t.frames, 300);

    /* A cluster with a block of a bad lacing is refused before on_fragment. */
    tr_ebml_buf bad;
    tr_ebml_buf_init(&bad, 0);
    tr_ebml_buf_reset(&c);
    size_t at = tr_ebml_master_begin(&c, TR_MKV_ID_CLUSTER);
    tr_ebml_put_uint(&c, TR_MKV_ID_TIMECODE, 0);
    tr_ebml_put_binary(&c, TR_MKV_ID_SIMPLE_BLOCK, "\x81\x00\x00\x86\x05", 5); /* 6 laced, no data */
    tr_ebml_master_end(&c, at);
    assert_int_equal(tr_mkv_chunk_build(&bad, h.data, h.len, c.data, c.len, NULL, 0, &m), 0);
    rec u = {0};
    assert_int_equal(run_whole(bad.data, bad.len, &u), TR_CLIENT_EMKV);
    assert_int_equal(u.fragments, 0);

    /* A chunk with neither a cluster nor an error. */
    tr_ebml_buf_reset(&bad);
    tr_mkv_chunk_head(&bad, h.data, h.len, &m);
    tr_mkv_chunk_tail(&bad, NULL, 0, &m);
    assert_int_equal(run_whole(bad.data, bad.len, &u), TR_CLIENT_EMKV);

    tr_ebml_buf_free(&bad);
    tr_ebml_buf_free(&h);
    tr_ebml_buf_free(&c);
    tr_ebml_buf_free(&chunk);
    tr_ebml_buf_free(&s);
}

static void callback_stops(void **state) {
    tr_ebml_buf s;
    tr_ebml_buf_init(&s, 0);
    put_stream(&s, 0);
    rec r = {.stop_after_frames = 4};
    tr_client_parser *p = tr_client_parser_new(&CB, &r, 0);
    assert_int_equal(tr_client_parser_feed(p, s.data, s.len), 7);
    assert_int_equal(r.frames, 4);
    assert_int_equal(r.ends, 1); /* the second fragment was cut short by the callback */
    assert_int_equal(tr_client_parser_feed(p, s.data, 1), 7);
    assert_int_equal(tr_client_parser_finish(p), 7);
    tr_client_parser_free(p);
    /* NULL callbacks are fine. */
    p = tr_client_parser_new(NULL, NULL, 0);
    assert_int_equal(tr_client_parser_feed(p, s.data, s.len), 0);
    assert_int_equal(tr_client_parser_finish(p), 0);
    assert_int_equal(tr_client_parser_fragments(p), 3);
    tr_client_parser_free(p);
    tr_ebml_buf_free(&s);
}

/* ---- the HTTP answer reader ---- */

/* Feeds the answer split at cut; returns the result, *done says whether it completed. */
static int answer(const char *head, const uint8_t *body, size_t body_len, size_t cut, rec *r,
                  int eof, char *detail) {
    size_t hl = strlen(head), len = hl + body_len;
    uint8_t *all = malloc(len + 1);
    memcpy(all, head, hl);
    if (body_len) memcpy(all + hl, body, body_len);
    tr_client_parser *p = tr_client_parser_new(&CB, r, 0);
    tr_client_response *resp = malloc(sizeof *resp);
    tr_client_response_init(resp, p);
    int done = 0, rc = 0;
    if (cut > len) cut = len;
    rc = tr_client_response_feed(resp, all, cut, &done);
    if (rc == 0 && !done) rc = tr_client_response_feed(resp, all + cut, len - cut, &done);
    if (rc == 0 && !done && eof) rc = tr_client_response_eof(resp);
    if (detail) strcpy(detail, resp->detail);
    free(resp);
    tr_client_parser_free(p);
    free(all);
    return rc;
}

/* body in the chunked transfer coding, in pieces of 100 bytes. */
static uint8_t *chunked(const uint8_t *body, size_t len, size_t *out_len) {
    uint8_t *o = malloc(len * 2 + 64);
    size_t n = 0;
    for (size_t off = 0; off < len; off += 100) {
        size_t k = len - off < 100 ? len - off : 100;
        n += (size_t)sprintf((char *)o + n, "%zx;ext=1\r\n", k);
        memcpy(o + n, body + off, k);
        n += k;
        memcpy(o + n, "\r\n", 2);
        n += 2;
    }
    memcpy(o + n, "0\r\nX-Trailer: 1\r\n\r\n", 19);
    *out_len = n + 19;
    return o;
}

static void http_answers(void **state) {
    tr_ebml_buf s;
    tr_ebml_buf_init(&s, 0);
    put_stream(&s, 1);
    rec whole = {0};
    assert_int_equal(run_whole(s.data, s.len, &whole), 0);
    size_t clen;
    uint8_t *cbody = chunked(s.data, s.len, &clen);
    const char *head = "HTTP/1.1 100 Continue\r\n\r\n"
                       "HTTP/1.1 200 OK\r\nContent-Type: video/webm\r\n"
                       "transfer-encoding:  chunked \r\n\r\n";
    for (size_t cut = 0; cut <= strlen(head) + clen; cut++) {
        rec r = {0};
        assert_int_equal(answer(head, cbody, clen, cut, &r, 0, NULL), 0);
        assert_string_equal(r.log, whole.log);
    }
    free(cbody);

    /* Content-Length, and a body delimited by the close. */
    char h2[128];
    snprintf(h2, sizeof h2, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", s.len);
    rec r = {0};
    assert_int_equal(answer(h2, s.data, s.len, 50, &r, 0, NULL), 0);
    assert_string_equal(r.log, whole.log);
    memset(&r, 0, sizeof r);
    assert_int_equal(answer("HTTP/1.0 200 OK\n\n", s.data, s.len, 3, &r, 1, NULL), 0);
    assert_string_equal(r.log, whole.log);

    /* An error answer: its JSON body is the detail. */
    const char *json = "{\"Message\":\"The requested stream is not found.\"}";
    char detail[400];
    snprintf(h2, sizeof h2, "HTTP/1.1 404 Not Found\r\nContent-Length: %zu\r\n\r\n", strlen(json));
    assert_int_equal(answer(h2, (const uint8_t *)json, strlen(json), 9, &r, 0, detail),
                     TR_CLIENT_EHTTP);
    assert_string_equal(detail, "HTTP 404: {\"Message\":\"The requested stream is not found.\"}");

    /* Cut short, malformed. */
    memset(&r, 0, sizeof r);
    assert_int_equal(answer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", NULL,
                            0, 0, &r, 1, NULL), TR_CLIENT_EIO);
    assert_int_equal(answer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", NULL,
                            0, 0, &r, 0, NULL), TR_CLIENT_EIO);
    assert_int_equal(answer("SSH-2.0-OpenSSH\r\n\r\n", NULL, 0, 0, &r, 0, NULL), TR_CLIENT_EIO);
    assert_int_equal(answer("HTTP/1.1 200", NULL, 0, 0, &r, 1, NULL), TR_CLIENT_EIO);
    assert_int_equal(answer("", NULL, 0, 0, &r, 1, NULL), TR_CLIENT_EIO);
    assert_int_equal(answer("HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", NULL, 0, 0, &r, 0,
                            NULL), TR_CLIENT_EIO);
    /* A 200 whose body is not Matroska: the parser's error. */
    assert_int_equal(answer("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n", (const uint8_t *)"junk",
                            4, 0, &r, 0, NULL), TR_CLIENT_EMKV);
    tr_ebml_buf_free(&s);
}

/* ---- arguments ---- */

static void selectors_and_endpoints(void **state) {
    tr_client_selector sel;
    assert_int_equal(tr_client_selector_parse("EARLIEST", &sel), 0);
    assert_string_equal(sel.type, "EARLIEST");
    assert_int_equal(tr_client_selector_parse("NOW", &sel), 0);
    assert_int_equal(tr_client_selector_parse("FRAGMENT_NUMBER:" FN1, &sel), 0);
    assert_string_equal(sel.type, "FRAGMENT_NUMBER");
    assert_string_equal(sel.after_fragment_number, FN1);
    assert_int_equal(tr_client_selector_parse("CONTINUATION_TOKEN:abc", &sel), 0);
    assert_string_equal(sel.continuation_token, "abc");
    assert_int_equal(tr_client_selector_parse("SERVER_TIMESTAMP:1726677687.75", &sel), 0);
    assert_string_equal(sel.type, "SERVER_TIMESTAMP");
    assert_int_equal(sel.start_timestamp_ms, 1726677687750);
    assert_int_equal(tr_client_selector_parse("PRODUCER_TIMESTAMP:12", &sel), 0);
    assert_int_equal(sel.start_timestamp_ms, 12000);
    assert_int_equal(tr_client_selector_parse("LATEST", &sel), TR_CLIENT_EARG);
    assert_int_equal(tr_client_selector_parse("FRAGMENT_NUMBER:", &sel), TR_CLIENT_EARG);
    assert_int_equal(tr_client_selector_parse("SERVER_TIMESTAMP:x", &sel), TR_CLIENT_EARG);
    assert_int_equal(tr_client_selector_parse("SERVER_TIMESTAMP:-1", &sel), TR_CLIENT_EARG);

    char host[64];
    int port;
    assert_int_equal(tr_client_parse_endpoint("http://127.0.0.1:4566", host, sizeof host, &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 4566);
    assert_int_equal(tr_client_parse_endpoint("http://cam.local/", host, sizeof host, &port), 0);
    assert_string_equal(host, "cam.local");
    assert_int_equal(port, 80);
    assert_int_equal(tr_client_parse_endpoint("[::1]:8080", host, sizeof host, &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 8080);
    assert_int_equal(tr_client_parse_endpoint("https://x:1", host, sizeof host, &port), TR_CLIENT_EARG);
    assert_int_equal(tr_client_parse_endpoint("http://x:0", host, sizeof host, &port), TR_CLIENT_EARG);
    assert_int_equal(tr_client_parse_endpoint("http://x:1/path", host, sizeof host, &port), TR_CLIENT_EARG);
    assert_int_equal(tr_client_parse_endpoint("http://:1", host, sizeof host, &port), TR_CLIENT_EARG);
    assert_string_equal(tr_client_strerror(TR_CLIENT_EHTTP), "the server answered an error");
}

/* ---- the client against a one-shot server ---- */

typedef struct fake_server {
    int listen_fd, port;
    char request[8192];
    size_t request_len;
    const uint8_t *answer;
    size_t answer_len;
    int hold_open_ms; /* keep the connection open after answering (a live GetMedia) */
} fake_server;

static void *serve_once(void *arg) {
    fake_server *f = arg;
    int fd = accept(f->listen_fd, NULL, NULL);
    if (fd < 0) return NULL;
    /* Read the head and the Content-Length body. */
    for (;;) {
        ssize_t n = recv(fd, f->request + f->request_len, sizeof f->request - 1 - f->request_len, 0);
        if (n <= 0) break;
        f->request_len += (size_t)n;
        f->request[f->request_len] = '\0';
        char *body = strstr(f->request, "\r\n\r\n");
        char *cl = strstr(f->request, "Content-Length: ");
        if (body && cl && f->request_len - (size_t)(body + 4 - f->request) >= (size_t)atol(cl + 16))
            break;
    }
    size_t off = 0;
    while (off < f->answer_len) {
        ssize_t n = send(fd, f->answer + off, f->answer_len - off, MSG_NOSIGNAL);
        if (n <= 0) break;
        off += (size_t)n;
    }
    if (f->hold_open_ms) usleep((useconds_t)f->hold_open_ms * 1000);
    close(fd);
    return NULL;
}

static void fake_start(fake_server *f, pthread_t *t) {
    f->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    assert_int_equal(bind(f->listen_fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(f->listen_fd, 1), 0);
    assert_int_equal(getsockname(f->listen_fd, (struct sockaddr *)&a, &al), 0);
    f->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(t, NULL, serve_once, f), 0);
}

static void fake_stop(fake_server *f, pthread_t t) {
    pthread_join(t, NULL);
    close(f->listen_fd);
}

static void client_requests(void **state) {
    tr_ebml_buf s;
    tr_ebml_buf_init(&s, 0);
    put_stream(&s, 0);
    rec whole = {0};
    assert_int_equal(run_whole(s.data, s.len, &whole), 0);
    size_t clen;
    uint8_t *cbody = chunked(s.data, s.len, &clen);
    const char *head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    size_t alen = strlen(head) + clen;
    uint8_t *ans = malloc(alen);
    memcpy(ans, head, strlen(head));
    memcpy(ans + strlen(head), cbody, clen);

    /* GetMedia FRAGMENT_NUMBER with a name that needs escaping. */
    fake_server f = {.answer = ans, .answer_len = alen};
    pthread_t t;
    fake_start(&f, &t);
    tr_client c;
    tr_client_init(&c, "127.0.0.1", f.port);
    c.timeout_ms = 5000;
    tr_client_selector sel = {.type = "FRAGMENT_NUMBER", .after_fragment_number = FN1};
    rec r = {0};
    assert_int_equal(tr_client_get_media(&c, "cam\"1", &sel, &CB, &r), 0);
    fake_stop(&f, t);
    assert_int_equal(c.http_status, 200);
    assert_int_equal(c.fragments, 3);
    assert_string_equal(c.error, "");
    assert_string_equal(r.log, whole.log);
    assert_non_null(strstr(f.request, "POST /getMedia HTTP/1.1\r\n"));
    assert_non_null(strstr(f.request, "\r\nContent-Type: application/json\r\n"));
    assert_non_null(strstr(f.request, "\r\n\r\n{\"StreamName\":\"cam\\\"1\",\"StartSelector\":"
                                      "{\"StartSelectorType\":\"FRAGMENT_NUMBER\","
                                      "\"AfterFragmentNumber\":\"" FN1 "\"}}"));

    /* GetMediaForFragmentList by ARN, stopped by a callback. */
    memset(&f, 0, sizeof f);
    f.answer = ans;
    f.answer_len = alen;
    fake_start(&f, &t);
    tr_client_init(&c, "localhost", f.port);
    const char *list[] = {FN1, FN2};
    rec r2 = {.stop_after_frames = 2};
    assert_int_equal(tr_client_get_media_for_fragment_list(
                         &c, "arn:aws:kinesisvideo:us-east-1:000000000000:stream/cam/1", list, 2,
                         &CB, &r2), 7);
    fake_stop(&f, t);
    assert_int_equal(r2.frames, 2);
    assert_non_null(strstr(f.request, "POST /getMediaForFragmentList HTTP/1.1\r\n"));
    assert_non_null(strstr(f.request, "{\"StreamARN\":\"arn:aws:kinesisvideo:us-east-1:"
                                      "000000000000:stream/cam/1\",\"Fragments\":[\"" FN1
                                      "\",\"" FN2 "\"]}"));

    /* A live answer that stops sending: the idle timeout ends it after what arrived. */
    const char *live_head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    memset(&f, 0, sizeof f);
    char size_line[32];
    tr_ebml_buf one;
    tr_ebml_buf_init(&one, 0);
    tr_ebml_put_bytes(&one, live_head, strlen(live_head));
    /* Only the first GetMedia chunk: up to and with its closing Tags. */
    tr_mkv_chunk_view v;
    assert_int_equal(tr_mkv_chunk_read(s.data, s.len, &v, NULL, NULL), 0);
    snprintf(size_line, sizeof size_line, "%zx\r\n", v.len);
    tr_ebml_put_bytes(&one, size_line, strlen(size_line));
    tr_ebml_put_bytes(&one, s.data, v.len);
    tr_ebml_put_bytes(&one, "\r\n", 2);
    f.answer = one.data;
    f.answer_len = one.len;
    f.hold_open_ms = 600;
    fake_start(&f, &t);
    tr_client_init(&c, "127.0.0.1", f.port);
    c.timeout_ms = 200;
    sel = (tr_client_selector){.type = "SERVER_TIMESTAMP", .start_timestamp_ms = 1726677687005};
    rec r3 = {0};
    assert_int_equal(tr_client_get_media(&c, "cam", &sel, &CB, &r3), TR_CLIENT_ETIMEOUT);
    fake_stop(&f, t);
    assert_int_equal(r3.fragments, 1);
    assert_int_equal(c.fragments, 1);
    assert_non_null(strstr(c.error, "nothing arrived for 200 ms"));
    assert_non_null(strstr(f.request, "{\"StartSelectorType\":\"SERVER_TIMESTAMP\","
                                      "\"StartTimestamp\":1726677687.005}"));

    /* An error answer. */
    const char *nf = "HTTP/1.1 404 Not Found\r\nContent-Length: 13\r\n\r\n{\"Message\":1}";
    memset(&f, 0, sizeof f);
    f.answer = (const uint8_t *)nf;
    f.answer_len = strlen(nf);
    fake_start(&f, &t);
    tr_client_init(&c, "127.0.0.1", f.port);
    sel = (tr_client_selector){.type = "EARLIEST"};
    assert_int_equal(tr_client_get_media(&c, "nope", &sel, &CB, &r3), TR_CLIENT_EHTTP);
    fake_stop(&f, t);
    assert_int_equal(c.http_status, 404);
    assert_string_equal(c.error, "HTTP 404: {\"Message\":1}");

    /* Nothing listening; bad arguments. */
    int port = f.port; /* closed now */
    tr_client_init(&c, "127.0.0.1", port);
    assert_int_equal(tr_client_get_media(&c, "cam", &sel, &CB, &r3), TR_CLIENT_ECONNECT);
    assert_non_null(strstr(c.error, "cannot connect"));
    sel.type = "LATEST";
    assert_int_equal(tr_client_get_media(&c, "cam", &sel, &CB, &r3), TR_CLIENT_EARG);
    sel.type = "FRAGMENT_NUMBER";
    assert_int_equal(tr_client_get_media(&c, "cam", &sel, &CB, &r3), TR_CLIENT_EARG);
    assert_int_equal(tr_client_get_media(&c, "", &sel, &CB, &r3), TR_CLIENT_EARG);

    tr_ebml_buf_free(&one);
    free(ans);
    free(cbody);
    tr_ebml_buf_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fragments_frames_and_errors),
        cmocka_unit_test(split_at_every_byte),
        cmocka_unit_test(chunk_delivered_at_its_last_byte),
        cmocka_unit_test(other_chunk_ends),
        cmocka_unit_test(malformed_input),
        cmocka_unit_test(callback_stops),
        cmocka_unit_test(http_answers),
        cmocka_unit_test(selectors_and_endpoints),
        cmocka_unit_test(client_requests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
