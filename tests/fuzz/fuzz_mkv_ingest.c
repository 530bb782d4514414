/* The PutMedia Matroska parser (wire/mkv_ingest.h) on arbitrary bodies, fed in arbitrary
 * pieces. Besides memory safety and bounded allocation it checks what the service and
 * GetMedia rely on:
 *   - feeding in pieces gives exactly the callbacks and result of feeding in one piece;
 *   - a result is 0 or an ErrorId, and stays once failed;
 *   - the header parses back by itself with the same tracks;
 *   - every fragment's cluster is one well-formed element whose frames, read back with
 *     tr_mkv_cluster_frames, are the ones counted; its producer Tags read back as its pairs;
 *   - a GetMedia chunk built from them reads back with that cluster.
 *
 * Input: two bytes seeding the piece sizes, then the body. With TR_FUZZ_WRITE_SEEDS=<dir>
 * the target writes seed bodies made with the EBML writer and exits. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "wire/ebml.h"
#include "wire/mkv_chunk.h"
#include "wire/mkv_ingest.h"

#define CHECK FUZZ_CHECK

/* What one run saw, folded into a hash so that two runs can be compared. */
typedef struct {
    uint64_t hash;
    unsigned headers, starts, fragments;
    tr_mkv_header h;
    tr_mkv_track tracks[TR_MKV_MAX_TRACKS];
    uint8_t *header;
    size_t header_len;
} run;

static void mix(run *r, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) r->hash = (r->hash ^ b[i]) * 1099511628211u;
}

static void mix_int(run *r, int64_t v) { mix(r, &v, sizeof v); }

static int on_header(void *ctx, const tr_mkv_header *h) {
    run *r = ctx;
    CHECK(r->headers == 0 && r->fragments == 0);
    r->headers++;
    mix(r, h->bytes, h->len);
    CHECK(h->ntracks >= 1 && h->ntracks <= TR_MKV_MAX_TRACKS && h->timecode_scale_ns > 0);
    /* The header alone parses to the same table. */
    r->header = malloc(h->len);
    CHECK(r->header != NULL);
    memcpy(r->header, h->bytes, h->len);
    r->header_len = h->len;
    CHECK(tr_mkv_header_parse(r->header, r->header_len, &r->h, r->tracks) == 0);
    CHECK(r->h.ntracks == h->ntracks && r->h.timecode_scale_ns == h->timecode_scale_ns);
    for (size_t i = 0; i < h->ntracks; i++) {
        CHECK(r->tracks[i].number == h->tracks[i].number);
        CHECK(strcmp(r->tracks[i].codec_id, h->tracks[i].codec_id) == 0);
    }
    return 0;
}

static int on_start(void *ctx, uint64_t tc, int64_t tc_ms) {
    run *r = ctx;
    CHECK(r->headers == 1 && r->starts == r->fragments);
    r->starts++;
    mix_int(r, (int64_t)tc);
    mix_int(r, tc_ms);
    return 0;
}

typedef struct {
    uint32_t frames[TR_MKV_MAX_TRACKS];
    const tr_mkv_header *h;
} frame_tally;

static int tally(void *ctx, const tr_mkv_frame *fr) {
    frame_tally *t = ctx;
    size_t i = 0;
    while (i < t->h->ntracks && t->h->tracks[i].number != fr->track) i++;
    CHECK(i < t->h->ntracks);
    t->frames[i]++;
    return 0;
}

typedef struct {
    const tr_mkv_fragment *f;
    size_t next;
} tag_walk;

static int tag_matches(void *ctx, const char *name, size_t nl, const char *value, size_t vl) {
    tag_walk *w = ctx;
    if (strncmp(name, "AWS_KINESISVIDEO_", 17) == 0) return 0; /* the chunk's own */
    CHECK(w->next < w->f->ntags);
    const tr_mkv_tag *t = &w->f->tag_list[w->next++];
    CHECK(strlen(t->name) == nl && memcmp(t->name, name, nl) == 0);
    CHECK(strlen(t->value) == vl && memcmp(t->value, value, vl) == 0);
    return 0;
}

static void check_fragment(run *r, const tr_mkv_fragment *f) {
    /* One element, exactly. */
    const uint8_t *p = f->cluster, *end = f->cluster + f->cluster_len;
    tr_ebml_elem e;
    CHECK(tr_ebml_next(&p, end, &e) == 1 && p == end && e.id == TR_MKV_ID_CLUSTER);
    /* Its frames are the ones counted, every track has some. */
    frame_tally t = {.h = &r->h};
    CHECK(tr_mkv_cluster_frames(f->cluster, f->cluster_len, &r->h, tally, &t) == 0);
    uint32_t total = 0;
    for (size_t i = 0; i < r->h.ntracks; i++) {
        CHECK(t.frames[i] == f->frames[i] && t.frames[i] > 0);
        total += t.frames[i];
    }
    CHECK(total == f->frame_count);
    CHECK(f->first_frame_ms <= f->last_frame_ms && f->duration_ms >= 0);
    CHECK((f->ntags == 0) == (f->tags == NULL));

    /* A chunk of it reads back with the same cluster and producer tags. */
    tr_ebml_buf b;
    tr_ebml_buf_init(&b, 0);
    tr_mkv_chunk_meta m = {"1", 1700000000000, f->timecode_ms, 0, NULL};
    CHECK(tr_mkv_chunk_build(&b, r->header, r->header_len, f->cluster, f->cluster_len, f->tags,
                             f->tags_len, &m) == 0);
    tr_mkv_chunk_view v;
    tag_walk w = {f, 0};
    CHECK(tr_mkv_chunk_read(b.data, b.len, &v, tag_matches, &w) == 0);
    CHECK(v.len == b.len && w.next == f->ntags);
    CHECK(v.cluster_len == f->cluster_len && memcmp(v.cluster, f->cluster, v.cluster_len) == 0);
    tr_ebml_buf_free(&b);
}

static int on_fragment(void *ctx, const tr_mkv_fragment *f) {
    run *r = ctx;
    CHECK(r->headers == 1 && r->starts == r->fragments + 1);
    r->fragments++;
    mix(r, f->cluster, f->cluster_len);
    mix_int(r, f->first_frame_ms);
    mix_int(r, f->last_frame_ms);
    mix_int(r, f->duration_ms);
    mix_int(r, f->key_first);
    for (size_t i = 0; i < f->ntags; i++) {
        mix(r, f->tag_list[i].name, strlen(f->tag_list[i].name) + 1);
        mix(r, f->tag_list[i].value, strlen(f->tag_list[i].value) + 1);
    }
    check_fragment(r, f);
    return 0;
}

static int valid_result(int rc) { return rc == 0 || (rc >= 4000 && rc <= 4012); }

/* Feeds body in pieces drawn from seed (0: one piece); returns the final result. */
static int parse(const uint8_t *body, size_t len, uint32_t seed, run *r) {
    /* Smaller limits than KVS's keep runs fast and reach the limit paths. */
    tr_mkv_limits lim;
    tr_mkv_limits_default(&lim);
    lim.max_fragment_bytes = 256 * 1024;
    lim.max_header_bytes = 64 * 1024;
    tr_mkv_callbacks cb = {on_header, on_start, on_fragment};
    memset(r, 0, sizeof *r);
    r->hash = 1469598103934665603u;
    tr_mkv_parser *p = tr_mkv_parser_new(&cb, r, &lim);
    CHECK(p != NULL);
    int rc = 0;
    for (size_t off = 0; off < len && rc == 0;) {
        size_t n = len - off;
        if (seed != 0) {
            seed = seed * 1103515245u + 12345u;
            size_t piece = 1 + (seed >> 16) % 64;
            if (piece < n) n = piece;
        }
        /* Each piece in its own exact allocation: a read past it is caught. */
        uint8_t *piece = malloc(n);
        CHECK(piece != NULL);
        memcpy(piece, body + off, n);
        rc = tr_mkv_parser_feed(p, piece, n);
        free(piece);
        off += n;
        CHECK(valid_result(rc));
    }
    int fin = tr_mkv_parser_finish(p);
    CHECK(valid_result(fin));
    if (rc != 0) CHECK(fin == rc && tr_mkv_parser_feed(p, body, len) == rc);
    if (rc == 0) rc = fin;
    mix_int(r, rc);
    mix_int(r, tr_mkv_parser_error_timecode(p));
    tr_mkv_parser_free(p);
    free(r->header);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    uint32_t seed = (uint32_t)data[0] << 8 | data[1] | 0x10000u; /* never 0: pieces */
    data += 2, size -= 2;
    run whole, pieces;
    int rc1 = parse(data, size, 0, &whole);
    int rc2 = parse(data, size, seed, &pieces);
    CHECK(rc1 == rc2);
    CHECK(whole.hash == pieces.hash);
    CHECK(whole.fragments == pieces.fragments && whole.starts == pieces.starts);
    return 0;
}

/* ---- seeds ---- */

static void put_block(tr_ebml_buf *b, unsigned track, int rel, int key, size_t len) {
    uint8_t h[4] = {(uint8_t)(0x80 | track), (uint8_t)((uint16_t)rel >> 8), (uint8_t)rel,
                    key ? 0x80 : 0};
    tr_ebml_put_id(b, TR_MKV_ID_SIMPLE_BLOCK);
    tr_ebml_put_size(b, 4 + len);
    tr_ebml_put_bytes(b, h, 4);
    for (size_t i = 0; i < len; i++) tr_ebml_put_bytes(b, "\x5a", 1);
}

static void put_track(tr_ebml_buf *b, unsigned n, unsigned type, const char *codec) {
    size_t e = tr_ebml_master_begin(b, TR_MKV_ID_TRACK_ENTRY);
    tr_ebml_put_uint(b, TR_MKV_ID_TRACK_NUMBER, n);
    tr_ebml_put_uint(b, TR_MKV_ID_TRACK_UID, n);
    tr_ebml_put_uint(b, TR_MKV_ID_TRACK_TYPE, type);
    tr_ebml_put_string(b, TR_MKV_ID_CODEC_ID, codec);
    tr_ebml_put_binary(b, TR_MKV_ID_CODEC_PRIVATE, "\x01\x42\xc0\x1e", 4);
    if (type == TR_MKV_TRACK_AUDIO) tr_ebml_put_uint(b, TR_MKV_ID_DEFAULT_DURATION, 20000000);
    tr_ebml_master_end(b, e);
}

/* A small body: header, metadata, a cluster of known size with laced audio and a
 * BlockGroup, then clusters of unknown size ended by END_OF_FRAGMENT and by the end. */
static size_t make_body(tr_ebml_buf *b, int audio) {
    size_t at = tr_ebml_master_begin(b, TR_EBML_ID_HEADER);
    tr_ebml_put_string(b, TR_EBML_ID_DOCTYPE, "matroska");
    tr_ebml_master_end(b, at);
    tr_ebml_put_id(b, TR_MKV_ID_SEGMENT);
    tr_ebml_put_unknown_size(b);
    at = tr_ebml_master_begin(b, TR_MKV_ID_INFO);
    tr_ebml_put_uint(b, TR_MKV_ID_TIMECODE_SCALE, 1000000);
    tr_ebml_master_end(b, at);
    at = tr_ebml_master_begin(b, TR_MKV_ID_TRACKS);
    put_track(b, 1, TR_MKV_TRACK_VIDEO, "V_MPEG4/ISO/AVC");
    if (audio) put_track(b, 2, TR_MKV_TRACK_AUDIO, "A_AAC");
    tr_ebml_master_end(b, at);
    tr_mkv_tag meta[] = {{"motion", "true"}};
    tr_mkv_put_tags(b, meta, 1);

    at = tr_ebml_master_begin(b, TR_MKV_ID_CLUSTER);
    tr_ebml_put_uint(b, TR_MKV_ID_TIMECODE, 1000);
    put_block(b, 1, 0, 1, 8);
    if (audio) /* Xiph lacing: 3 frames of 3, 2 and (the rest) 2 bytes */
        tr_ebml_put_binary(b, TR_MKV_ID_SIMPLE_BLOCK, "\x82\x00\x00\x82\x02\x03\x02" "aaabbcc",
                           14);
    size_t g = tr_ebml_master_begin(b, TR_MKV_ID_BLOCK_GROUP);
    tr_ebml_put_binary(b, TR_MKV_ID_BLOCK, "\x81\x00\x21\x00vid", 7);
    tr_ebml_put_uint(b, TR_MKV_ID_BLOCK_DURATION, 33);
    tr_ebml_put_int(b, TR_MKV_ID_REFERENCE_BLOCK, -33);
    tr_ebml_master_end(b, g);
    tr_ebml_master_end(b, at);

    for (int i = 0; i < 2; i++) {
        tr_ebml_put_id(b, TR_MKV_ID_CLUSTER);
        tr_ebml_put_unknown_size(b);
        tr_ebml_put_uint(b, TR_MKV_ID_TIMECODE, 2000 + 1000 * (uint64_t)i);
        put_block(b, 1, 0, 1, 6);
        if (audio) put_block(b, 2, 10, 1, 3);
        put_block(b, 1, 33, 0, 4);
        if (i == 0) {
            tr_mkv_tag eofr[] = {{TR_MKV_TAG_END_OF_FRAGMENT, ""}};
            tr_mkv_put_tags(b, eofr, 1);
        }
    }
    return b->len;
}

/* A seed: the two piece-seed bytes, then the first len bytes of the body. */
static void write_seed(const char *dir, const uint8_t *body, size_t len) {
    uint8_t *d = malloc(len + 2);
    CHECK(d != NULL);
    d[0] = 0x12, d[1] = 0x34;
    memcpy(d + 2, body, len);
    fuzz_seed(dir, d, len + 2);
    free(d);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_quiet_logs();
    const char *dir = fuzz_seed_dir();
    if (dir == NULL) return 0;
    for (int audio = 0; audio < 2; audio++) {
        tr_ebml_buf b;
        tr_ebml_buf_init(&b, 0);
        size_t len = make_body(&b, audio);
        CHECK(!b.failed);
        write_seed(dir, b.data, len);
        write_seed(dir, b.data, len - 5); /* cut short */
        write_seed(dir, b.data, len / 2);
        tr_ebml_buf_free(&b);
    }
    exit(0);
}
