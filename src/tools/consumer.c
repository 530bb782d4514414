/* tributary-consumer: reads a video stream with GetMedia (or GetMediaForFragmentList) through
 * libtributary (client/getmedia.h), prints a line per fragment, counts its frames and writes
 * a JPEG thumbnail of each fragment's first keyframe: H.264 or H.265 decoded by FFmpeg's
 * libavcodec with the track's codec private data (AVCC/HVCC) as extradata, converted by
 * libswscale and encoded by libavcodec's MJPEG encoder.
 *
 * Exit codes: 0 when the answer ended (or --max-fragments or --idle-timeout ended it) with no
 * error chunk, 1 on an error chunk or a failure, 2 on a usage error. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libavcodec/avcodec.h>
#include <libavutil/frame.h>
#include <libavutil/log.h>
#include <libavutil/mem.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>

#include "client/getmedia.h"

#define STOP_MAX_FRAGMENTS 1
#define MAX_LIST_FRAGMENTS 1000

static void usage(FILE *f) {
    fprintf(f,
            "usage: tributary-consumer --stream NAME|ARN [--endpoint http://HOST:PORT]\n"
            "           [--start EARLIEST|NOW|FRAGMENT_NUMBER:N|CONTINUATION_TOKEN:T|\n"
            "                    SERVER_TIMESTAMP:SECONDS|PRODUCER_TIMESTAMP:SECONDS]\n"
            "           [--fragments N1,N2,...] [--count-frames] [--thumbnails DIR]\n"
            "           [--max-fragments N] [--idle-timeout MS] [--quiet]\n"
            "Reads a Kinesis Video stream with GetMedia (from --start, default NOW) or the\n"
            "listed fragments with GetMediaForFragmentList, and prints a line per fragment.\n"
            "  --count-frames     frames per fragment and track, and a total at the end\n"
            "  --thumbnails DIR   DIR/<fragment number>.jpg of each fragment's first keyframe\n"
            "  --max-fragments N  stop after N fragments\n"
            "  --idle-timeout MS  stop when nothing arrives for MS milliseconds (a live\n"
            "                     GetMedia otherwise waits for new fragments forever)\n");
}

typedef struct consumer {
    int count_frames, quiet;
    const char *thumb_dir;
    uint64_t max_fragments;
    uint64_t fragments, frames, errors, thumbnails, thumb_failures;
    /* the current fragment */
    uint32_t keyframes;
    int thumb_done;
} consumer;

/* ---- thumbnails ---- */

static enum AVCodecID codec_of(const char *codec_id) {
    if (strcmp(codec_id, "V_MPEG4/ISO/AVC") == 0) return AV_CODEC_ID_H264;
    if (strcmp(codec_id, "V_MPEGH/ISO/HEVC") == 0) return AV_CODEC_ID_HEVC;
    return AV_CODEC_ID_NONE;
}

/* Decodes one keyframe by itself: a fresh decoder, the packet, then a drain. */
static AVFrame *decode_keyframe(const tr_client_track *t, const tr_client_frame *fr,
                                char *err, size_t errlen) {
    const AVCodec *dec = avcodec_find_decoder(codec_of(t->codec_id));
    AVCodecContext *dc = dec ? avcodec_alloc_context3(dec) : NULL;
    AVPacket *pkt = av_packet_alloc();
    AVFrame *pic = av_frame_alloc();
    int ok = 0;
    if (dc == NULL || pkt == NULL || pic == NULL) {
        snprintf(err, errlen, "no %s decoder in libavcodec", t->codec_id);
        goto out;
    }
    if (t->codec_private_len > 0) {
        dc->extradata = av_mallocz(t->codec_private_len + AV_INPUT_BUFFER_PADDING_SIZE);
        if (dc->extradata == NULL) goto out;
        memcpy(dc->extradata, t->codec_private, t->codec_private_len);
        dc->extradata_size = (int)t->codec_private_len;
    }
    dc->thread_count = 1;
    if (avcodec_open2(dc, dec, NULL) < 0 || av_new_packet(pkt, (int)fr->len) < 0) {
        snprintf(err, errlen, "cannot open the %s decoder (codec private %zu bytes)",
                 t->codec_id, t->codec_private_len);
        goto out;
    }
    memcpy(pkt->data, fr->data, fr->len);
    pkt->flags |= AV_PKT_FLAG_KEY;
    pkt->pts = pkt->dts = fr->timestamp_ms;
    if (avcodec_send_packet(dc, pkt) < 0 || avcodec_send_packet(dc, NULL) < 0 ||
        avcodec_receive_frame(dc, pic) < 0) {
        snprintf(err, errlen, "the keyframe (%zu bytes) does not decode", fr->len);
        goto out;
    }
    ok = 1;
out:
    avcodec_free_context(&dc);
    av_packet_free(&pkt);
    if (!ok) av_frame_free(&pic);
    return pic;
}

/* Encodes pic as a JPEG file at path. */
static int write_jpeg(const AVFrame *pic, const char *path, char *err, size_t errlen) {
    const AVCodec *enc = avcodec_find_encoder(AV_CODEC_ID_MJPEG);
    AVCodecContext *ec = enc ? avcodec_alloc_context3(enc) : NULL;
    AVFrame *jf = av_frame_alloc();
    AVPacket *pkt = av_packet_alloc();
    struct SwsContext *sws = NULL;
    int rc = -1;
    if (ec == NULL || jf == NULL || pkt == NULL) {
        snprintf(err, errlen, "no MJPEG encoder in libavcodec");
        goto out;
    }
    ec->width = pic->width;
    ec->height = pic->height;
    ec->pix_fmt = AV_PIX_FMT_YUVJ420P;
    ec->color_range = AVCOL_RANGE_JPEG;
    ec->time_base = (AVRational){1, 25};
    ec->flags |= AV_CODEC_FLAG_QSCALE;
    ec->global_quality = FF_QP2LAMBDA * 3;
    jf->format = AV_PIX_FMT_YUVJ420P;
    jf->width = pic->width;
    jf->height = pic->height;
    if (avcodec_open2(ec, enc, NULL) < 0 || av_frame_get_buffer(jf, 0) < 0) {
        snprintf(err, errlen, "cannot open the MJPEG encoder for %dx%d", pic->width, pic->height);
        goto out;
    }
    sws = sws_getContext(pic->width, pic->height, (enum AVPixelFormat)pic->format, pic->width,
                         pic->height, AV_PIX_FMT_YUVJ420P, SWS_BICUBIC, NULL, NULL, NULL);
    if (sws == NULL) {
        snprintf(err, errlen, "cannot convert %s to JPEG's YUV",
                 av_get_pix_fmt_name((enum AVPixelFormat)pic->format));
        goto out;
    }
    sws_scale(sws, (const uint8_t *const *)pic->data, pic->linesize, 0, pic->height, jf->data,
              jf->linesize);
    jf->pts = 0;
    jf->quality = ec->global_quality;
    if (avcodec_send_frame(ec, jf) < 0 || avcodec_send_frame(ec, NULL) < 0 ||
        avcodec_receive_packet(ec, pkt) < 0) {
        snprintf(err, errlen, "the MJPEG encoder failed");
        goto out;
    }
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(pkt->data, 1, (size_t)pkt->size, f) != (size_t)pkt->size) {
        snprintf(err, errlen, "cannot write the file: %s", strerror(errno));
        if (f) fclose(f);
        goto out;
    }
    if (fclose(f) != 0) {
        snprintf(err, errlen, "cannot write the file: %s", strerror(errno));
        goto out;
    }
    rc = 0;
out:
    sws_freeContext(sws);
    av_packet_free(&pkt);
    av_frame_free(&jf);
    avcodec_free_context(&ec);
    return rc;
}

/* A file name from a fragment number: digits and letters only, never a path. */
static void thumb_path(const consumer *c, const tr_client_fragment *f, char *out, size_t len) {
    char name[160];
    size_t n = 0;
    for (const char *s = f->fragment_number; *s && n < sizeof name - 1; s++)
        if ((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z'))
            name[n++] = *s;
    if (n == 0) n = (size_t)snprintf(name, sizeof name, "fragment-%llu",
                                     (unsigned long long)f->index);
    name[n] = '\0';
    snprintf(out, len, "%s/%s.jpg", c->thumb_dir, name);
}

static void thumbnail(consumer *c, const tr_client_fragment *f, const tr_client_frame *fr) {
    char path[4096], err[256] = "";
    c->thumb_done = 1;
    thumb_path(c, f, path, sizeof path);
    AVFrame *pic = decode_keyframe(fr->track, fr, err, sizeof err);
    if (pic != NULL && write_jpeg(pic, path, err, sizeof err) == 0) {
        c->thumbnails++;
        if (!c->quiet) printf("thumbnail %s %dx%d\n", path, pic->width, pic->height);
    } else {
        c->thumb_failures++;
        fprintf(stderr, "tributary-consumer: no thumbnail %s for fragment %s: %s\n", path,
                f->fragment_number, err);
    }
    av_frame_free(&pic);
}

/* ---- callbacks ---- */

static int on_fragment(void *ctx, const tr_client_fragment *f) {
    consumer *c = ctx;
    c->keyframes = 0;
    c->thumb_done = 0;
    return 0;
}

static int on_frame(void *ctx, const tr_client_fragment *f, const tr_client_frame *fr) {
    consumer *c = ctx;
    c->frames++;
    c->keyframes += fr->keyframe != 0;
    if (c->thumb_dir != NULL && !c->thumb_done && fr->keyframe && fr->track != NULL &&
        fr->track->type == TR_CLIENT_TRACK_VIDEO && codec_of(fr->track->codec_id) != AV_CODEC_ID_NONE)
        thumbnail(c, f, fr);
    return 0;
}

static void print_ms(const char *key, int64_t ms) {
    if (ms == TR_CLIENT_NO_TIME)
        printf(" %s=-", key);
    else
        printf(" %s=%s%lld.%03d", key, ms < 0 ? "-" : "", (long long)(ms < 0 ? -ms : ms) / 1000,
               (int)((ms < 0 ? -ms : ms) % 1000));
}

static int on_fragment_end(void *ctx, const tr_client_fragment *f) {
    consumer *c = ctx;
    c->fragments++;
    if (!c->quiet) {
        printf("fragment %s", *f->fragment_number ? f->fragment_number : "-");
        print_ms("server", f->server_timestamp_ms);
        print_ms("producer", f->producer_timestamp_ms);
        printf(" behind_ms=%lld", (long long)f->millis_behind_now);
        if (c->count_frames) {
            printf(" frames=%u keyframes=%u", f->frame_count, c->keyframes);
            for (size_t i = 0; i < f->ntracks; i++)
                printf(" track%llu=%u", (unsigned long long)f->tracks[i].number, f->frames[i]);
        }
        for (size_t i = 0; i < f->ntracks; i++) {
            const tr_client_track *t = &f->tracks[i];
            printf(" codec%llu=%s", (unsigned long long)t->number, t->codec_id);
            if (t->type == TR_CLIENT_TRACK_VIDEO)
                printf(":%llux%llu", (unsigned long long)t->width, (unsigned long long)t->height);
        }
        for (size_t i = 0; i < f->ntags; i++) printf(" tag:%s=%s", f->tags[i].name, f->tags[i].value);
        printf("\n");
        fflush(stdout);
    }
    if (c->max_fragments && c->fragments >= c->max_fragments) return STOP_MAX_FRAGMENTS;
    return 0;
}

static int on_error(void *ctx, const tr_client_error *e) {
    consumer *c = ctx;
    c->errors++;
    fprintf(stderr, "tributary-consumer: error chunk: fragment %s code %s id %d\n",
            *e->fragment_number ? e->fragment_number : "-", e->error_code, e->error_id);
    return 0;
}

/* ---- the command line ---- */

/* Splits "a,b,c" in place. */
static size_t split_list(char *s, const char **out, size_t max) {
    size_t n = 0;
    for (char *tok = strtok(s, ","); tok != NULL && n < max; tok = strtok(NULL, ","))
        out[n++] = tok;
    return n;
}

static int parse_u64(const char *s, uint64_t *v) {
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (end == s || *end != '\0' || errno != 0 || *s == '-') return -1;
    *v = x;
    return 0;
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"endpoint", required_argument, NULL, 'e'},
        {"stream", required_argument, NULL, 's'},
        {"start", required_argument, NULL, 'S'},
        {"fragments", required_argument, NULL, 'F'},
        {"count-frames", no_argument, NULL, 'c'},
        {"thumbnails", required_argument, NULL, 't'},
        {"max-fragments", required_argument, NULL, 'm'},
        {"idle-timeout", required_argument, NULL, 'i'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *endpoint = "http://127.0.0.1:4566", *stream = NULL, *start = "NOW";
    char *list = NULL;
    uint64_t idle_ms = 0;
    consumer c = {0};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'e': endpoint = optarg; break;
        case 's': stream = optarg; break;
        case 'S': start = optarg; break;
        case 'F': list = optarg; break;
        case 'c': c.count_frames = 1; break;
        case 't': c.thumb_dir = optarg; break;
        case 'q': c.quiet = 1; break;
        case 'm':
            if (parse_u64(optarg, &c.max_fragments) != 0) goto bad;
            break;
        case 'i':
            if (parse_u64(optarg, &idle_ms) != 0 || idle_ms > 24u * 3600 * 1000) goto bad;
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || stream == NULL) goto bad;

    char host[256];
    int port;
    tr_client_selector sel;
    if (tr_client_parse_endpoint(endpoint, host, sizeof host, &port) != 0) {
        fprintf(stderr, "tributary-consumer: --endpoint must be http://HOST:PORT, not %s\n", endpoint);
        return 2;
    }
    if (tr_client_selector_parse(start, &sel) != 0) {
        fprintf(stderr, "tributary-consumer: unknown --start %s\n", start);
        return 2;
    }
    if (c.thumb_dir != NULL && mkdir(c.thumb_dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "tributary-consumer: cannot make %s: %s\n", c.thumb_dir, strerror(errno));
        return 1;
    }
    av_log_set_level(AV_LOG_ERROR);

    tr_client cl;
    tr_client_init(&cl, host, port);
    cl.timeout_ms = (int)idle_ms;
    tr_client_callbacks cb = {on_fragment, on_frame, on_fragment_end, on_error};
    int rc;
    if (list != NULL) {
        const char *numbers[MAX_LIST_FRAGMENTS];
        size_t n = split_list(list, numbers, MAX_LIST_FRAGMENTS);
        rc = tr_client_get_media_for_fragment_list(&cl, stream, numbers, n, &cb, &c);
    } else {
        rc = tr_client_get_media(&cl, stream, &sel, &cb, &c);
    }
    int clean = rc == 0 || rc == STOP_MAX_FRAGMENTS || (rc == TR_CLIENT_ETIMEOUT && idle_ms > 0);
    if (!clean)
        fprintf(stderr, "tributary-consumer: %s%s%s\n", tr_client_strerror(rc),
                cl.error[0] ? ": " : "", cl.error);
    if (c.count_frames)
        printf("total fragments=%llu frames=%llu\n", (unsigned long long)c.fragments,
               (unsigned long long)c.frames);
    if (c.thumb_dir != NULL)
        printf("thumbnails written=%llu failed=%llu\n", (unsigned long long)c.thumbnails,
               (unsigned long long)c.thumb_failures);
    return clean && c.errors == 0 && c.thumb_failures == 0 ? 0 : 1;
bad:
    usage(stderr);
    return 2;
}
