/* The PutMedia parser on real producer output: GStreamer's matroskamux in streamable mode
 * (a Segment and Clusters of unknown size, as kvssink and the producer SDK send) with x264
 * video, and with AAC audio as a second track. Checks that fragments are the GOPs with every
 * frame counted, and that the header plus every fragment's re-encoded cluster, and the
 * GetMedia chunks built from them, are files ffprobe reads with the same frames as the
 * original.
 *
 * Needs gst-launch-1.0 with x264enc, matroskamux and avenc_aac (Debian gstreamer1.0-tools,
 * -plugins-base, -plugins-good, -plugins-ugly, -libav) and ffprobe (ffmpeg); skipped
 * without them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tmpdir.h"
#include "wire/ebml.h"
#include "wire/mkv_chunk.h"
#include "wire/mkv_ingest.h"

#define MAX_FRAGMENTS 16

static char dir[256];

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}

static int have_gst(void) {
    return sh("command -v gst-launch-1.0 >/dev/null 2>&1") == 0 &&
           sh("gst-inspect-1.0 x264enc >/dev/null 2>&1") == 0 &&
           sh("gst-inspect-1.0 matroskamux >/dev/null 2>&1") == 0;
}

static int have_ffprobe(void) { return sh("command -v ffprobe >/dev/null 2>&1") == 0; }

static uint8_t *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    struct stat st;
    assert_int_equal(fstat(fileno(f), &st), 0);
    uint8_t *d = malloc((size_t)st.st_size + 1);
    assert_non_null(d);
    *len = fread(d, 1, (size_t)st.st_size, f);
    assert_int_equal(*len, (size_t)st.st_size);
    fclose(f);
    return d;
}

static void spill(const char *path, const uint8_t *d, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(d, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Frames ffprobe decodes in stream index `stream` of path (demuxed and counted). */
static long probe_frames(const char *path, int stream) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "ffprobe -v error -count_packets -select_streams %d -show_entries "
             "stream=nb_read_packets -of csv=p=0 '%s' 2>/dev/null", stream, path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    long n = -1;
    if (fscanf(p, "%ld", &n) != 1) n = -1;
    pclose(p);
    return n;
}

typedef struct {
    int headers;
    uint8_t *header;
    size_t header_len;
    tr_mkv_track tracks[TR_MKV_MAX_TRACKS];
    size_t ntracks;
    int n;
    tr_mkv_fragment f[MAX_FRAGMENTS];
    uint8_t *cluster[MAX_FRAGMENTS];
    int starts;
} got;

static int on_header(void *ctx, const tr_mkv_header *h) {
    got *g = ctx;
    g->headers++;
    g->header = malloc(h->len);
    assert_non_null(g->header);
    memcpy(g->header, h->bytes, h->len);
    g->header_len = h->len;
    g->ntracks = h->ntracks;
    memcpy(g->tracks, h->tracks, h->ntracks * sizeof *h->tracks);
    return 0;
}

static int on_start(void *ctx, uint64_t tc, int64_t tc_ms) {
    got *g = ctx;
    /* The start of fragment n comes before fragment n itself. */
    assert_int_equal(g->starts, g->n);
    g->starts++;
    return 0;
}

static int on_fragment(void *ctx, const tr_mkv_fragment *f) {
    got *g = ctx;
    assert_true(g->n < MAX_FRAGMENTS);
    g->cluster[g->n] = malloc(f->cluster_len);
    assert_non_null(g->cluster[g->n]);
    memcpy(g->cluster[g->n], f->cluster, f->cluster_len);
    g->f[g->n] = *f;
    g->f[g->n].cluster = g->cluster[g->n];
    g->f[g->n].tags = NULL;
    g->f[g->n].tag_list = NULL;
    g->n++;
    return 0;
}

static void got_free(got *g) {
    free(g->header);
    for (int i = 0; i < g->n; i++) free(g->cluster[i]);
    memset(g, 0, sizeof *g);
}

/* Feeds the file in pieces of 1..4096 bytes, as a network would deliver it. */
static void ingest(const uint8_t *d, size_t len, unsigned seed, got *g) {
    tr_mkv_callbacks cb = {on_header, on_start, on_fragment};
    tr_mkv_parser *p = tr_mkv_parser_new(&cb, g, NULL);
    assert_non_null(p);
    srand(seed);
    for (size_t off = 0; off < len;) {
        size_t n = 1 + (size_t)rand() % 4096;
        if (n > len - off) n = len - off;
        int rc = tr_mkv_parser_feed(p, d + off, n);
        if (rc != 0) fail_msg("feed: %d %s", rc, tr_mkv_parser_error_detail(p));
        off += n;
    }
    assert_int_equal(tr_mkv_parser_finish(p), 0);
    tr_mkv_parser_free(p);
    /* The track table pointed into the parser's header: point it at our copy. */
    tr_mkv_header h;
    assert_int_equal(tr_mkv_header_parse(g->header, g->header_len, &h, g->tracks), 0);
    assert_int_equal(h.ntracks, g->ntracks);
}

typedef struct {
    uint64_t track;
    int frames, keys;
    int64_t min_tc, max_tc;
} track_frames;

static int note_frame(void *ctx, const tr_mkv_frame *fr) {
    track_frames *t = ctx;
    if (fr->track != t->track) return 0;
    if (t->frames == 0 || fr->timecode < t->min_tc) t->min_tc = fr->timecode;
    if (t->frames == 0 || fr->timecode > t->max_tc) t->max_tc = fr->timecode;
    t->frames++;
    t->keys += fr->keyframe;
    return 0;
}

/* 0 when ffprobe reads every packet of path without a complaint. */
static int probe_clean(const char *path) {
    return sh("test -z \"$(ffprobe -v error -show_packets '%s' 2>&1 >/dev/null)\"", path);
}

/* header + every cluster, as one file; and the GetMedia chunks, as another. */
static void reassemble(const got *g, const char *file, const char *chunks) {
    tr_ebml_buf b, c;
    tr_ebml_buf_init(&b, 0);
    tr_ebml_buf_init(&c, 0);
    tr_ebml_put_bytes(&b, g->header, g->header_len);
    for (int i = 0; i < g->n; i++) {
        tr_ebml_put_bytes(&b, g->f[i].cluster, g->f[i].cluster_len);
        char number[64];
        snprintf(number, sizeof number, "9134385233318143239268206260774392014672181%04d", i);
        tr_mkv_chunk_meta m = {number, 1726677687000 + i * 1000, g->f[i].timecode_ms,
                               (g->n - 1 - i) * 1000, NULL};
        assert_int_equal(tr_mkv_chunk_build(&c, g->header, g->header_len, g->f[i].cluster,
                                            g->f[i].cluster_len, NULL, 0, &m), 0);
    }
    assert_false(b.failed);
    spill(file, b.data, b.len);
    spill(chunks, c.data, c.len);

    /* The chunks read back one by one, each with its cluster. */
    size_t off = 0;
    for (int i = 0; i < g->n; i++) {
        tr_mkv_chunk_view v;
        assert_int_equal(tr_mkv_chunk_read(c.data + off, c.len - off, &v, NULL, NULL), 0);
        assert_int_equal(v.cluster_len, g->f[i].cluster_len);
        off += v.len;
    }
    assert_int_equal(off, c.len);
    tr_ebml_buf_free(&b);
    tr_ebml_buf_free(&c);
}

static void video_only(void **state) {
    if (!have_gst()) skip();
    char src[512], out[512], chunks[512];
    snprintf(src, sizeof src, "%s/v.mkv", dir);
    snprintf(out, sizeof out, "%s/v-out.mkv", dir);
    snprintf(chunks, sizeof chunks, "%s/v-chunks.mkv", dir);
    assert_int_equal(sh("gst-launch-1.0 -q videotestsrc num-buffers=90 ! "
                        "video/x-raw,width=320,height=240,framerate=30/1 ! "
                        "x264enc key-int-max=30 bframes=0 tune=zerolatency ! "
                        "matroskamux streamable=true ! filesink location='%s'", src), 0);
    size_t len;
    uint8_t *d = slurp(src, &len);
    got g = {0};
    ingest(d, len, 1, &g);

    assert_int_equal(g.headers, 1);
    assert_int_equal(g.ntracks, 1);
    assert_string_equal(g.tracks[0].codec_id, "V_MPEG4/ISO/AVC");
    assert_int_equal(g.tracks[0].type, TR_MKV_TRACK_VIDEO);
    assert_int_equal(g.tracks[0].pixel_width, 320);
    assert_int_equal(g.tracks[0].pixel_height, 240);
    assert_true(g.tracks[0].codec_private_len > 10); /* the AVCC record */
    assert_int_equal(g.tracks[0].codec_private[0], 1);

    /* Fragments are the GOPs: three of 30 frames, one second apart. */
    assert_int_equal(g.n, 3);
    assert_int_equal(g.starts, 3);
    tr_mkv_header h;
    tr_mkv_track tracks[TR_MKV_MAX_TRACKS];
    assert_int_equal(tr_mkv_header_parse(g.header, g.header_len, &h, tracks), 0);
    for (int i = 0; i < g.n; i++) {
        assert_int_equal(g.f[i].frames[0], 30);
        assert_int_equal(g.f[i].key_first, 1);
        assert_int_equal(g.f[i].timecode_ms, 1000 * i);
        assert_int_equal(g.f[i].first_frame_ms, 1000 * i);
        assert_true(g.f[i].duration_ms >= 990 && g.f[i].duration_ms <= 1010);
        track_frames t = {.track = 1};
        assert_int_equal(tr_mkv_cluster_frames(g.f[i].cluster, g.f[i].cluster_len, &h,
                                               note_frame, &t), 0);
        assert_int_equal(t.frames, 30);
        assert_int_equal(t.keys, 1);
        if (i > 0) assert_true(g.f[i].first_frame_ms > g.f[i - 1].last_frame_ms);
    }

    /* Any split gives the same fragments. */
    got g2 = {0};
    ingest(d, len, 7, &g2);
    assert_int_equal(g2.n, g.n);
    for (int i = 0; i < g.n; i++) {
        assert_int_equal(g2.f[i].cluster_len, g.f[i].cluster_len);
        assert_memory_equal(g2.f[i].cluster, g.f[i].cluster, g.f[i].cluster_len);
    }
    got_free(&g2);

    reassemble(&g, out, chunks);
    if (have_ffprobe()) {
        assert_int_equal(probe_frames(src, 0), 90);
        assert_int_equal(probe_frames(out, 0), 90);
        assert_int_equal(probe_clean(out), 0);
        /* ffmpeg reads on through the chunks' EBML headers and Segments (with a warning for
         * each), as consumers piping GetMedia into it rely on. */
        assert_int_equal(probe_frames(chunks, 0), 90);
    }
    got_free(&g);
    free(d);
}

static void video_and_audio(void **state) {
    if (!have_gst() || sh("gst-inspect-1.0 avenc_aac >/dev/null 2>&1") != 0) skip();
    char src[512], out[512], chunks[512];
    snprintf(src, sizeof src, "%s/va.mkv", dir);
    snprintf(out, sizeof out, "%s/va-out.mkv", dir);
    snprintf(chunks, sizeof chunks, "%s/va-chunks.mkv", dir);
    /* x264's default B-frames: blocks come in decoding order with presentation timecodes. */
    assert_int_equal(sh("gst-launch-1.0 -q matroskamux name=mux streamable=true ! "
                        "filesink location='%s' "
                        "videotestsrc num-buffers=90 ! "
                        "video/x-raw,width=320,height=240,framerate=30/1 ! "
                        "x264enc key-int-max=30 ! queue ! mux. "
                        "audiotestsrc num-buffers=141 ! audio/x-raw,rate=48000 ! "
                        "avenc_aac ! aacparse ! queue ! mux.", src), 0);
    size_t len;
    uint8_t *d = slurp(src, &len);
    got g = {0};
    ingest(d, len, 3, &g);

    assert_int_equal(g.ntracks, 2);
    int vi = g.tracks[0].type == TR_MKV_TRACK_VIDEO ? 0 : 1, ai = 1 - vi;
    assert_string_equal(g.tracks[vi].codec_id, "V_MPEG4/ISO/AVC");
    assert_string_equal(g.tracks[ai].codec_id, "A_AAC");
    assert_true(g.tracks[ai].sampling_frequency == 48000.0);
    assert_true(g.tracks[ai].codec_private_len >= 2); /* AudioSpecificConfig */

    assert_int_equal(g.n, 3);
    int video = 0, audio = 0;
    for (int i = 0; i < g.n; i++) {
        assert_int_equal(g.f[i].frames[vi], 30);
        assert_true(g.f[i].frames[ai] > 0);
        assert_int_equal(g.f[i].frame_count, g.f[i].frames[0] + g.f[i].frames[1]);
        assert_int_equal(g.f[i].key_first, 1);
        if (i > 0) assert_true(g.f[i].timecode > g.f[i - 1].timecode);
        video += (int)g.f[i].frames[vi];
        audio += (int)g.f[i].frames[ai];
    }
    assert_int_equal(video, 90);

    reassemble(&g, out, chunks);
    if (have_ffprobe()) {
        long src_v = probe_frames(src, vi), src_a = probe_frames(src, ai);
        assert_int_equal(src_v, 90);
        assert_int_equal(src_a, audio);
        assert_int_equal(probe_frames(out, vi), src_v);
        assert_int_equal(probe_frames(out, ai), src_a);
        assert_int_equal(probe_clean(out), 0);
        assert_int_equal(probe_frames(chunks, vi), src_v);
    }
    got_free(&g);
    free(d);
}

static int setup(void **state) { return tmpdir_make(dir, sizeof dir) ? 0 : -1; }
static int teardown(void **state) {
    tmpdir_remove(dir);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(video_only),
        cmocka_unit_test(video_and_audio),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
