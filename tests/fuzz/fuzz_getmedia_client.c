/* libtributary's readers (client/getmedia.h, client/response.h) on arbitrary input, fed in
 * arbitrary pieces: the GetMedia parser on a body, or the HTTP answer reader (head, chunked
 * coding, then the parser) on a whole answer. Besides memory safety it checks:
 *   - feeding in pieces gives exactly the callbacks and result of feeding in one piece;
 *   - results are the library's codes, and an error sticks;
 *   - a fragment is whole: on_fragment, then its frame_count frames, each inside the chunk
 *     and naming a track of the table (or none), then on_fragment_end;
 *   - the chunk it hands out reads back with tr_mkv_chunk_read.
 *
 * Input: two bytes seeding the piece sizes, one mode byte (even: a GetMedia body, odd: an
 * HTTP answer), then the bytes. With TR_FUZZ_WRITE_SEEDS=<dir> the target writes seeds made
 * with the server's chunk writer and exits. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/getmedia.h"
#include "client/response.h"
#include "fuzz.h"
#include "wire/ebml.h"
#include "wire/mkv_chunk.h"
#include "wire/mkv_ingest.h"

#define MAX_CHUNK_BYTES (64 * 1024) /* small: reaches the limit path, keeps runs fast */

typedef struct run {
    uint64_t hash;
    unsigned fragments, ends, errors;
    int in_fragment;
    uint32_t frames_seen, frame_count;
    const uint8_t *chunk;
    size_t chunk_len;
} run;

static void mix(run *r, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) r->hash = (r->hash ^ b[i]) * 1099511628211u;
}

static void mix_int(run *r, int64_t v) { mix(r, &v, sizeof v); }
static void mix_str(run *r, const char *s) { mix(r, s, strlen(s) + 1); }

static int on_fragment(void *ctx, const tr_client_fragment *f) {
    run *r = ctx;
    FUZZ_CHECK(!r->in_fragment);
    r->in_fragment = 1;
    r->fragments++;
    r->frames_seen = 0;
    r->frame_count = f->frame_count;
    r->chunk = f->chunk;
    r->chunk_len = f->chunk_len;
    FUZZ_CHECK(f->ntracks >= 1 && f->ntracks <= TR_CLIENT_MAX_TRACKS);
    FUZZ_CHECK(f->fragment_number != NULL && f->continuation_token != NULL);
    uint32_t per_track = 0;
    for (size_t i = 0; i < f->ntracks; i++) per_track += f->frames[i];
    FUZZ_CHECK(per_track <= f->frame_count);
    FUZZ_CHECK(f->frame_count == 0 || f->first_frame_ms <= f->last_frame_ms);
    mix_str(r, f->fragment_number);
    mix_str(r, f->continuation_token);
    mix_int(r, f->server_timestamp_ms);
    mix_int(r, f->producer_timestamp_ms);
    mix_int(r, f->millis_behind_now);
    mix_int(r, f->frame_count);
    mix(r, f->chunk, f->chunk_len);
    for (size_t i = 0; i < f->ntags; i++) {
        mix_str(r, f->tags[i].name);
        mix_str(r, f->tags[i].value);
    }
    for (size_t i = 0; i < f->ntracks; i++) {
        const tr_client_track *t = &f->tracks[i];
        mix_int(r, (int64_t)t->number);
        mix_str(r, t->codec_id);
        FUZZ_CHECK((t->codec_private == NULL) == (t->codec_private_len == 0));
        if (t->codec_private) {
            FUZZ_CHECK(t->codec_private >= f->chunk &&
                       t->codec_private + t->codec_private_len <= f->chunk + f->chunk_len);
            mix(r, t->codec_private, t->codec_private_len);
        }
        mix_int(r, (int64_t)t->width);
        mix_int(r, (int64_t)t->height);
    }
    /* The chunk is one whole GetMedia chunk. */
    tr_mkv_chunk_view v;
    FUZZ_CHECK(tr_mkv_chunk_read(f->chunk, f->chunk_len, &v, NULL, NULL) == 0);
    FUZZ_CHECK(v.len == f->chunk_len && v.cluster != NULL);
    return 0;
}

static int on_frame(void *ctx, const tr_client_fragment *f, const tr_client_frame *fr) {
    run *r = ctx;
    FUZZ_CHECK(r->in_fragment && f->chunk == r->chunk);
    FUZZ_CHECK(fr->index == r->frames_seen++);
    FUZZ_CHECK(fr->index < r->frame_count);
    FUZZ_CHECK(fr->track == NULL ||
               (fr->track >= f->tracks && fr->track < f->tracks + f->ntracks &&
                fr->track->number == fr->track_number));
    FUZZ_CHECK(fr->len == 0 ||
               (fr->data >= f->chunk && fr->data + fr->len <= f->chunk + f->chunk_len));
    FUZZ_CHECK(fr->timestamp_ms >= f->first_frame_ms && fr->timestamp_ms <= f->last_frame_ms);
    mix_int(r, (int64_t)fr->track_number);
    mix_int(r, fr->timestamp_ms);
    mix_int(r, fr->duration_ms);
    mix_int(r, fr->keyframe);
    mix(r, fr->data, fr->len);
    return 0;
}

static int on_fragment_end(void *ctx, const tr_client_fragment *f) {
    run *r = ctx;
    FUZZ_CHECK(r->in_fragment && f->chunk == r->chunk);
    FUZZ_CHECK(r->frames_seen == f->frame_count);
    r->in_fragment = 0;
    r->ends++;
    return 0;
}

static int on_error(void *ctx, const tr_client_error *e) {
    run *r = ctx;
    FUZZ_CHECK(!r->in_fragment);
    r->errors++;
    mix_str(r, e->fragment_number);
    mix_str(r, e->error_code);
    mix_int(r, e->error_id);
    return 0;
}

static const tr_client_callbacks CB = {on_fragment, on_frame, on_fragment_end, on_error};

static int valid_result(int rc) { return rc <= 0 && rc >= TR_CLIENT_EHTTP; }

/* The next piece length, from the seed (0: everything). */
static size_t piece(uint32_t *seed, size_t left) {
    if (*seed == 0) return left;
    *seed = *seed * 1103515245u + 12345u;
    size_t n = 1 + (*seed >> 16) % 97;
    return n < left ? n : left;
}

static int parse_body(const uint8_t *d, size_t len, uint32_t seed, run *r) {
    tr_client_parser *p = tr_client_parser_new(&CB, r, MAX_CHUNK_BYTES);
    FUZZ_CHECK(p != NULL);
    int rc = 0;
    for (size_t off = 0; off < len && rc == 0;) {
        size_t n = piece(&seed, len - off);
        uint8_t *b = malloc(n); /* its own allocation: a read past it is caught */
        FUZZ_CHECK(b != NULL);
        memcpy(b, d + off, n);
        rc = tr_client_parser_feed(p, b, n);
        free(b);
        off += n;
        FUZZ_CHECK(valid_result(rc));
    }
    int fin = tr_client_parser_finish(p);
    FUZZ_CHECK(valid_result(fin));
    if (rc != 0) FUZZ_CHECK(fin == rc && tr_client_parser_feed(p, d, len) == rc);
    FUZZ_CHECK(tr_client_parser_fragments(p) == r->fragments + r->errors);
    tr_client_parser_free(p);
    return rc != 0 ? rc : fin;
}

static int parse_answer(const uint8_t *d, size_t len, uint32_t seed, run *r) {
    tr_client_parser *p = tr_client_parser_new(&CB, r, MAX_CHUNK_BYTES);
    tr_client_response *resp = malloc(sizeof *resp);
    FUZZ_CHECK(p != NULL && resp != NULL);
    tr_client_response_init(resp, p);
    int rc = 0, done = 0;
    for (size_t off = 0; off < len && rc == 0 && !done;) {
        size_t n = piece(&seed, len - off);
        uint8_t *b = malloc(n);
        FUZZ_CHECK(b != NULL);
        memcpy(b, d + off, n);
        rc = tr_client_response_feed(resp, b, n, &done);
        free(b);
        off += n;
        FUZZ_CHECK(valid_result(rc));
    }
    if (rc == 0 && !done) rc = tr_client_response_eof(resp);
    FUZZ_CHECK(valid_result(rc));
    FUZZ_CHECK(resp->body_len <= TR_CLIENT_ERROR_BODY_MAX);
    FUZZ_CHECK(strlen(resp->detail) < sizeof resp->detail);
    mix_int(r, resp->status);
    free(resp);
    tr_client_parser_free(p);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    uint32_t seed = (uint32_t)data[0] << 8 | data[1] | 0x10000u; /* never 0: pieces */
    int answer = data[2] & 1;
    data += 3, size -= 3;
    run whole = {.hash = 1469598103934665603u}, pieces = whole;
    int rc1 = answer ? parse_answer(data, size, 0, &whole) : parse_body(data, size, 0, &whole);
    int rc2 = answer ? parse_answer(data, size, seed, &pieces) : parse_body(data, size, seed, &pieces);
    FUZZ_CHECK(rc1 == rc2);
    FUZZ_CHECK(whole.hash == pieces.hash);
    FUZZ_CHECK(whole.fragments == pieces.fragments && whole.errors == pieces.errors);
    FUZZ_CHECK(!whole.in_fragment && whole.fragments == whole.ends);
    return 0;
}

/* ---- seeds ---- */

static void put_header(tr_ebml_buf *b, int audio) {
    size_t at = tr_ebml_master_begin(b, TR_EBML_ID_HEADER);
    tr_ebml_put_string(b, TR_EBML_ID_DOCTYPE, "matroska");
    tr_ebml_master_end(b, at);
    tr_ebml_put_id(b, TR_MKV_ID_SEGMENT);
    tr_ebml_put_unknown_size(b);
    at = tr_ebml_master_begin(b, TR_MKV_ID_INFO);
    tr_ebml_put_uint(b, TR_MKV_ID_TIMECODE_SCALE, 1000000);
    tr_ebml_master_end(b, at);
    at = tr_ebml_master_begin(b, TR_MKV_ID_TRACKS);
    for (unsigned n = 1; n <= (audio ? 2u : 1u); n++) {
        size_t e = tr_ebml_master_begin(b, TR_MKV_ID_TRACK_ENTRY);
        tr_ebml_put_uint(b, TR_MKV_ID_TRACK_NUMBER, n);
        tr_ebml_put_uint(b, TR_MKV_ID_TRACK_TYPE, n == 1 ? TR_MKV_TRACK_VIDEO : TR_MKV_TRACK_AUDIO);
        tr_ebml_put_string(b, TR_MKV_ID_CODEC_ID, n == 1 ? "V_MPEG4/ISO/AVC" : "A_AAC");
        tr_ebml_put_binary(b, TR_MKV_ID_CODEC_PRIVATE, "\x01\x42\xc0\x1e", 4);
        size_t v = tr_ebml_master_begin(b, n == 1 ? TR_MKV_ID_VIDEO : TR_MKV_ID_AUDIO);
        if (n == 1) {
            tr_ebml_put_uint(b, TR_MKV_ID_PIXEL_WIDTH, 320);
            tr_ebml_put_uint(b, TR_MKV_ID_PIXEL_HEIGHT, 240);
        } else {
            tr_ebml_put_float(b, TR_MKV_ID_SAMPLING_FREQUENCY, 44100.0);
        }
        tr_ebml_master_end(b, v);
        if (n == 2) tr_ebml_put_uint(b, TR_MKV_ID_DEFAULT_DURATION, 20000000);
        tr_ebml_master_end(b, e);
    }
    tr_ebml_master_end(b, at);
}

static void put_block(tr_ebml_buf *b, unsigned track, int rel, int key, size_t len) {
    uint8_t h[4] = {(uint8_t)(0x80 | track), (uint8_t)((uint16_t)rel >> 8), (uint8_t)rel,
                    key ? 0x80 : 0};
    tr_ebml_put_id(b, TR_MKV_ID_SIMPLE_BLOCK);
    tr_ebml_put_size(b, 4 + len);
    tr_ebml_put_bytes(b, h, 4);
    for (size_t i = 0; i < len; i++) tr_ebml_put_bytes(b, "\x5a", 1);
}

static void put_cluster(tr_ebml_buf *b, uint64_t tc, int audio) {
    size_t at = tr_ebml_master_begin(b, TR_MKV_ID_CLUSTER);
    tr_ebml_put_uint(b, TR_MKV_ID_TIMECODE, tc);
    put_block(b, 1, 0, 1, 8);
    if (audio) /* Xiph lacing: 3 frames of 3, 2 and 2 bytes */
        tr_ebml_put_binary(b, TR_MKV_ID_SIMPLE_BLOCK, "\x82\x00\x05\x82\x02\x03\x02" "aaabbcc", 14);
    size_t g = tr_ebml_master_begin(b, TR_MKV_ID_BLOCK_GROUP);
    tr_ebml_put_binary(b, TR_MKV_ID_BLOCK, "\x81\x00\x21\x00vid", 7);
    tr_ebml_put_uint(b, TR_MKV_ID_BLOCK_DURATION, 33);
    tr_ebml_put_int(b, TR_MKV_ID_REFERENCE_BLOCK, -33);
    tr_ebml_master_end(b, g);
    tr_ebml_master_end(b, at);
}

/* A GetMedia body: two fragments (producer tags on the first), then an error chunk. */
static void make_body(tr_ebml_buf *out, int audio) {
    tr_ebml_buf h, c, tags;
    tr_ebml_buf_init(&h, 0);
    tr_ebml_buf_init(&c, 0);
    tr_ebml_buf_init(&tags, 0);
    put_header(&h, audio);
    tr_mkv_tag pt[] = {{"motion", "true"}};
    tr_mkv_put_tags(&tags, pt, 1);
    for (int i = 0; i < 2; i++) {
        tr_ebml_buf_reset(&c);
        put_cluster(&c, 1726677687000u + 1000u * (unsigned)i, audio);
        tr_mkv_chunk_meta m = {i ? "1002" : "1001", 1726677687758 + i, 1726677687000 + i,
                               i ? 0 : 1500, NULL};
        FUZZ_CHECK(tr_mkv_chunk_build(out, h.data, h.len, c.data, c.len, i ? NULL : tags.data,
                                      i ? 0 : tags.len, &m) == 0);
    }
    FUZZ_CHECK(tr_mkv_chunk_error(out, h.data, h.len, "1003", 4000, NULL) == 0);
    tr_ebml_buf_free(&h);
    tr_ebml_buf_free(&c);
    tr_ebml_buf_free(&tags);
}

static void write_seed(const char *dir, uint8_t mode, const uint8_t *d, size_t len) {
    uint8_t *s = malloc(len + 3);
    FUZZ_CHECK(s != NULL);
    s[0] = 0x12, s[1] = 0x34, s[2] = mode;
    memcpy(s + 3, d, len);
    fuzz_seed(dir, s, len + 3);
    free(s);
}

/* The body as an HTTP answer in the chunked coding, pieces of 50 bytes. */
static void write_answer_seed(const char *dir, const uint8_t *body, size_t len) {
    tr_ebml_buf a;
    tr_ebml_buf_init(&a, 0);
    const char *head = "HTTP/1.1 200 OK\r\nContent-Type: video/webm\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n";
    tr_ebml_put_bytes(&a, head, strlen(head));
    for (size_t off = 0; off < len; off += 50) {
        size_t n = len - off < 50 ? len - off : 50;
        char line[16];
        snprintf(line, sizeof line, "%zx\r\n", n);
        tr_ebml_put_bytes(&a, line, strlen(line));
        tr_ebml_put_bytes(&a, body + off, n);
        tr_ebml_put_bytes(&a, "\r\n", 2);
    }
    tr_ebml_put_bytes(&a, "0\r\n\r\n", 5);
    FUZZ_CHECK(!a.failed);
    write_seed(dir, 1, a.data, a.len);
    tr_ebml_buf_free(&a);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_quiet_logs();
    const char *dir = fuzz_seed_dir();
    if (dir == NULL) return 0;
    for (int audio = 0; audio < 2; audio++) {
        tr_ebml_buf b;
        tr_ebml_buf_init(&b, 0);
        make_body(&b, audio);
        FUZZ_CHECK(!b.failed);
        write_seed(dir, 0, b.data, b.len);
        write_seed(dir, 0, b.data, b.len / 2); /* cut short */
        write_answer_seed(dir, b.data, b.len);
        tr_ebml_buf_free(&b);
    }
    const char *err = "HTTP/1.1 404 Not Found\r\nContent-Length: 25\r\n\r\n"
                      "{\"Message\":\"no such one\"}";
    write_seed(dir, 1, (const uint8_t *)err, strlen(err));
    exit(0);
}
