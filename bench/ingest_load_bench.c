/* A Kinesis Video Streams PutMedia load generator: N producers each streaming a Matroska clip
 * at real time (or one producer flat out) into their own stream, measuring the PERSISTED ack
 * latency and the server's CPU and memory. bench/ingest.sh drives it.
 *
 * The clip is split once with the server's own MKV parser (wire/mkv_ingest.h) into its header
 * and its clusters, each re-encoded with a known size and an 8-byte Timecode, so that a
 * producer can loop it with RELATIVE timecodes that keep advancing: each connection sends the
 * header once, then the clusters with their Timecode rewritten (clip length x loop added). A
 * cluster of known size ends with its last byte, so the server stores it at once.
 *
 * Real time: every frame (SimpleBlock) is sent when its timecode comes, relative to the
 * producer's start, and producers start at random phases over one fragment's length, as
 * independent cameras would. Flat out: whole clusters back to back, with at most --window
 * clusters unacknowledged.
 *
 * One thread, epoll, non-blocking sockets; each request body is HTTP/1.1 chunked, one chunk
 * per send; the acks come back on the same request and are decoded with net/chunked.h.
 * libwebsockets ends an HTTP/1.1 request body without a Content-Length after 100 MiB of it
 * (its placeholder length for such bodies), so a producer ends its request after
 * --max-body-mib (64) at a cluster boundary and goes on at once in a new PutMedia request,
 * while the old one drains its acks: the flat-out producer reaches that in a fraction of a
 * second, a 2 Mbit/s camera after about 4 minutes.
 * Latency is from the moment the last byte of a cluster was handed to the socket to the
 * moment its PERSISTED ack was read (and RECEIVED likewise, to split network and parsing from
 * storage).
 *
 * Usage:
 *   ingest_load_bench clip   --clip FILE
 *   ingest_load_bench create --port P --streams N [--prefix b] [--first 0] [--conns 16]
 *   ingest_load_bench run    --port P --clip FILE --streams N [--prefix b] [--first 1]
 *                            [--seconds D] [--warmup W] [--flat-out] [--window K]
 *                            [--server-pid PID] [--seed S] [--max-body-mib M]
 * run prints one line:
 *   ingest mode=realtime|flatout streams=<n> seconds=<window> MBps=<PERSISTED MB/s>
 *          sent_MBps=<...> clusters=<sent in the window> acked=<of those PERSISTED>
 *          unacked=<...> errors=<ERROR acks, refusals> failed_conns=<...>
 *          p50_ms= p99_ms= max_ms=<PERSISTED latency> recv_p50_ms= recv_p99_ms=<RECEIVED>
 *          server_cpu_pct= gen_cpu_pct= server_rss_mb= rss_kb_per_conn=
 * Flat out, MBps counts every PERSISTED ack read in the window. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "samples.h"

#include "net/chunked.h"
#include "wire/ebml.h"
#include "wire/mkv_ingest.h"

static int g_port;
static const char *g_prefix = "b";
static int g_first = -1;
static int g_streams = 1;
static int g_conns = 16;
static double g_seconds = 15, g_warmup = 4;
static int g_flat;
static int g_window = 64;
static int g_server_pid;
static uint64_t g_seed = 1;
static const char *g_clip_path;
static uint64_t g_max_body = 64ull << 20;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "ingest_load_bench: %s%s%s\n", what, errno ? ": " : "",
            errno ? strerror(errno) : "");
    exit(1);
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (p == NULL) die("out of memory");
    return p;
}

/* ---- the clip ---- */

/* The prefix the generator writes before each cluster's children: Cluster ID, an 8-byte size,
 * and a Timecode element with an 8-byte value, patched per send. */
#define PREFIX_LEN 22
#define PREFIX_TC_AT 14

typedef struct piece {
    size_t end;       /* bytes of the cluster's rest up to the end of this frame */
    int64_t due_tc;   /* the frame's timecode relative to the clip's start */
} piece;

typedef struct clip_cluster {
    uint8_t *rest;    /* the cluster's children after its Timecode */
    size_t rest_len;
    uint64_t tc;      /* relative to the clip's first cluster */
    piece *pieces;
    size_t npieces;
} clip_cluster;

typedef struct clip {
    uint8_t *header;
    size_t header_len;
    tr_mkv_header h;
    tr_mkv_track tracks[TR_MKV_MAX_TRACKS];
    clip_cluster *cl;
    size_t ncl, cap;
    uint64_t first_tc;    /* the first cluster's timecode as stored in the file */
    uint64_t loop_tc;     /* the clip's length in timecode units: where the next loop starts */
    uint64_t scale_ns;
    uint64_t loop_bytes;  /* cluster bytes sent per loop */
    int64_t max_frag_ms;  /* the longest cluster */
    int err;
} clip;

static clip g_clip;

static int on_clip_header(void *ctx, const tr_mkv_header *h) {
    clip *c = ctx;
    c->header_len = h->len;
    c->header = xmalloc(h->len);
    memcpy(c->header, h->bytes, h->len);
    return 0;
}

typedef struct frame_ctx {
    clip_cluster *cc;
    const uint8_t *rest; /* where the cluster's rest begins */
} frame_ctx;

static int on_frame(void *ctx, const tr_mkv_frame *fr) {
    frame_ctx *fc = ctx;
    piece *pc = &fc->cc->pieces[fc->cc->npieces++];
    pc->end = (size_t)(fr->data + fr->len - fc->rest);
    pc->due_tc = fr->timecode;
    return 0;
}

static int on_clip_fragment(void *ctx, const tr_mkv_fragment *f) {
    clip *c = ctx;
    if (c->ncl == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 16;
        c->cl = realloc(c->cl, c->cap * sizeof *c->cl);
        if (c->cl == NULL) die("out of memory");
    }
    if (c->ncl == 0) c->first_tc = f->timecode;
    clip_cluster *cc = &c->cl[c->ncl++];
    memset(cc, 0, sizeof *cc);
    cc->tc = f->timecode - c->first_tc;
    /* The children of the cluster, Timecode left out. */
    const uint8_t *p = f->cluster, *end = f->cluster + f->cluster_len;
    uint32_t id;
    uint64_t size;
    int il = tr_ebml_read_id(p, f->cluster_len, &id);
    int sl = il > 0 ? tr_ebml_read_size(p + il, f->cluster_len - (size_t)il, &size) : -1;
    if (sl <= 0) return TR_KVS_INVALID_MKV_DATA;
    p += il + sl;
    uint8_t *built = xmalloc(PREFIX_LEN + f->cluster_len);
    size_t len = PREFIX_LEN;
    tr_ebml_elem e;
    const uint8_t *at = p;
    while (tr_ebml_next(&p, end, &e) == 1) {
        size_t n = (size_t)(p - at);
        if (e.id != TR_MKV_ID_TIMECODE) memcpy(built + len, at, n), len += n;
        at = p;
    }
    tr_ebml_encode_id(built, TR_MKV_ID_CLUSTER);
    tr_ebml_encode_size8(built + 4, len - 12);
    built[12] = 0xE7;
    built[13] = 0x88;
    for (int i = 0; i < 8; i++) built[PREFIX_TC_AT + i] = (uint8_t)(f->timecode >> (56 - 8 * i));
    /* Frame boundaries and timecodes, by the server's own frame reader. */
    cc->pieces = xmalloc((f->frame_count + 1) * sizeof *cc->pieces);
    frame_ctx fc = {cc, built + PREFIX_LEN};
    if (tr_mkv_cluster_frames(built, len, &c->h, on_frame, &fc) != 0)
        return TR_KVS_INVALID_MKV_DATA;
    for (size_t i = 0; i < cc->npieces; i++) cc->pieces[i].due_tc -= (int64_t)c->first_tc;
    if (cc->npieces == 0) return TR_KVS_INVALID_MKV_DATA;
    cc->pieces[cc->npieces - 1].end = len - PREFIX_LEN; /* anything after the last frame */
    cc->rest_len = len - PREFIX_LEN;
    cc->rest = xmalloc(cc->rest_len);
    memcpy(cc->rest, built + PREFIX_LEN, cc->rest_len);
    free(built);
    c->loop_bytes += len;
    if (f->duration_ms > c->max_frag_ms) c->max_frag_ms = f->duration_ms;
    /* The end of the clip: the latest end of a frame, in timecode units. */
    uint64_t end_tc = (uint64_t)((f->first_frame_ms + f->duration_ms) * 1000000 /
                                 (int64_t)c->scale_ns) - c->first_tc;
    if (end_tc > c->loop_tc) c->loop_tc = end_tc;
    return 0;
}

static void load_clip(const char *path, clip *c) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) die(path);
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) die(path);
    uint8_t *data = xmalloc((size_t)sb.st_size);
    if (fread(data, 1, (size_t)sb.st_size, f) != (size_t)sb.st_size) die(path);
    fclose(f);
    /* The header first (its timecode scale and tracks), then the clusters. */
    if (tr_mkv_header_parse(data, (size_t)sb.st_size, &c->h, c->tracks) != 0) {
        errno = 0;
        die("the clip's Matroska header does not parse");
    }
    c->scale_ns = c->h.timecode_scale_ns;
    tr_mkv_callbacks cb = {.on_header = on_clip_header, .on_fragment = on_clip_fragment};
    tr_mkv_parser *p = tr_mkv_parser_new(&cb, c, NULL);
    if (p == NULL) die("out of memory");
    int rc = tr_mkv_parser_feed(p, data, (size_t)sb.st_size);
    if (rc == 0) rc = tr_mkv_parser_finish(p);
    if (rc != 0 || c->ncl < 2) {
        fprintf(stderr, "ingest_load_bench: %s: error %d (%s) after %zu clusters\n", path, rc,
                tr_mkv_parser_error_detail(p), c->ncl);
        exit(1);
    }
    tr_mkv_parser_free(p);
    free(data);
}

static int64_t tc_to_ns(int64_t tc) { return tc * (int64_t)g_clip.scale_ns; }

/* ---- HTTP ---- */

static int connect_nb(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS)
        die("connect");
    return fd;
}

/* ---- producers ---- */

typedef struct sent {
    uint64_t tc;         /* the Timecode sent */
    int64_t done_ns;     /* its last byte went to the socket */
    int64_t recv_ns;     /* its RECEIVED ack, 0 before */
    uint32_t bytes;
} sent;

typedef struct prod {
    struct prod *next_all; /* every producer connection, successors too */
    int fd, idx, heap_at;
    int draining;        /* its request is ended: only acks still come */
    uint64_t body_sent;  /* request body bytes written, chunk framing included */
    int state;           /* P_IDLE, P_STREAMING, P_DONE, P_FAILED */
    int want_out;        /* EPOLLOUT registered */
    int64_t start_ns;    /* when its clip time 0 is */
    int64_t due_ns;      /* when the next piece is due */
    uint64_t loop;       /* clip loops so far */
    size_t ci, pi;       /* the next piece: cluster ci, piece pi */
    size_t from;         /* bytes of cluster ci's rest sent */
    /* The write in progress. */
    struct iovec iov[6];
    int niov, iov_i;
    int ends_cluster;
    char http[512];
    char chunk_hdr[24];
    uint8_t prefix[PREFIX_LEN];
    /* Clusters sent and not yet PERSISTED, oldest first. */
    sent *ring;
    size_t ring_head, ring_n, recv_n;
    /* The answer. */
    char hbuf[2048];
    size_t hlen;
    int hdr_done;
    tr_chunked dechunk;
    char line[1024];
    size_t line_len;
} prod;

enum { P_IDLE, P_STREAMING, P_DONE, P_FAILED };
#define RING 1024

static prod *g_prods;     /* all of them, newest first */
static prod *g_flat_active; /* the flat-out connection that sends */
static uint64_t g_flat_outstanding; /* its clusters sent and not yet PERSISTED */
static int g_ep;
static int64_t g_w0, g_w1;          /* the measured window */
static int g_stop_sending;

static struct {
    samples persisted, received;       /* ms, clusters finished sending in the window */
    uint64_t counted, counted_bytes;   /* clusters finished sending in the window */
    uint64_t acked, acked_bytes;       /* of those, PERSISTED */
    uint64_t window_acked_bytes;       /* PERSISTED acks read in the window (any cluster) */
    uint64_t sent_bytes;               /* cluster bytes sent in the window */
    uint64_t errors, failed_conns;
    char first_error[256];
} R;

/* ---- a min-heap of producers by due time ---- */

static prod **g_heap;
static size_t g_heap_n;

static void heap_swap(size_t a, size_t b) {
    prod *t = g_heap[a];
    g_heap[a] = g_heap[b];
    g_heap[b] = t;
    g_heap[a]->heap_at = (int)a;
    g_heap[b]->heap_at = (int)b;
}

static void heap_push(prod *p) {
    size_t i = g_heap_n++;
    g_heap[i] = p;
    p->heap_at = (int)i;
    while (i > 0 && g_heap[(i - 1) / 2]->due_ns > g_heap[i]->due_ns) {
        heap_swap(i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static prod *heap_pop(void) {
    prod *top = g_heap[0];
    g_heap[0] = g_heap[--g_heap_n];
    g_heap[0]->heap_at = 0;
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < g_heap_n && g_heap[l]->due_ns < g_heap[m]->due_ns) m = l;
        if (r < g_heap_n && g_heap[r]->due_ns < g_heap[m]->due_ns) m = r;
        if (m == i) break;
        heap_swap(i, m);
        i = m;
    }
    top->heap_at = -1;
    return top;
}

/* ---- sending ---- */

static void set_out(prod *p, int on) {
    if (p->want_out == on) return;
    p->want_out = on;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = p};
    epoll_ctl(g_ep, EPOLL_CTL_MOD, p->fd, &ev);
}

static void fail_prod(prod *p, const char *why) {
    if (p->state == P_FAILED) return;
    if (R.first_error[0] == '\0')
        snprintf(R.first_error, sizeof R.first_error, "stream %s%d: %.200s",
                 g_prefix, g_first + p->idx, why);
    p->state = P_FAILED;
    R.failed_conns++;
    epoll_ctl(g_ep, EPOLL_CTL_DEL, p->fd, NULL);
    close(p->fd);
    p->fd = -1;
}

/* Writes what is left of the current iovecs. 1 when all is written, 0 when the socket is
 * full, -1 on error. */
static int flush(prod *p) {
    while (p->iov_i < p->niov) {
        ssize_t w = writev(p->fd, p->iov + p->iov_i, p->niov - p->iov_i);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) return 0;
            return -1;
        }
        p->body_sent += (uint64_t)w;
        while (p->iov_i < p->niov && (size_t)w >= p->iov[p->iov_i].iov_len) {
            w -= (ssize_t)p->iov[p->iov_i].iov_len;
            p->iov_i++;
        }
        if (p->iov_i < p->niov) {
            p->iov[p->iov_i].iov_base = (char *)p->iov[p->iov_i].iov_base + w;
            p->iov[p->iov_i].iov_len -= (size_t)w;
        }
    }
    return 1;
}

static uint64_t cur_tc(const prod *p) {
    return g_clip.first_tc + p->loop * g_clip.loop_tc + g_clip.cl[p->ci].tc;
}

static int64_t piece_due(const prod *p, size_t ci, size_t pi, uint64_t loop) {
    return p->start_ns + tc_to_ns((int64_t)(loop * g_clip.loop_tc) + g_clip.cl[ci].pieces[pi].due_tc);
}

/* Builds the next chunk: every piece of the current cluster that is due (all of it when flat
 * out), with the cluster's prefix in front when it starts the cluster. */
static void build_chunk(prod *p, int64_t now) {
    const clip_cluster *cc = &g_clip.cl[p->ci];
    size_t pi = p->pi;
    if (g_flat) {
        pi = cc->npieces - 1;
    } else {
        while (pi + 1 < cc->npieces && piece_due(p, p->ci, pi + 1, p->loop) <= now) pi++;
    }
    size_t to = cc->pieces[pi].end;
    size_t len = to - p->from;
    p->niov = p->iov_i = 0;
    if (p->from == 0) {
        uint64_t tc = cur_tc(p);
        memcpy(p->prefix, "\x1F\x43\xB6\x75", 4);
        tr_ebml_encode_size8(p->prefix + 4, cc->rest_len + 10);
        p->prefix[12] = 0xE7;
        p->prefix[13] = 0x88;
        for (int i = 0; i < 8; i++) p->prefix[PREFIX_TC_AT + i] = (uint8_t)(tc >> (56 - 8 * i));
        len += PREFIX_LEN;
    }
    int hl = snprintf(p->chunk_hdr, sizeof p->chunk_hdr, "%zx\r\n", len);
    p->iov[p->niov++] = (struct iovec){p->chunk_hdr, (size_t)hl};
    if (p->from == 0) p->iov[p->niov++] = (struct iovec){p->prefix, PREFIX_LEN};
    p->iov[p->niov++] = (struct iovec){cc->rest + p->from, to - p->from};
    p->iov[p->niov++] = (struct iovec){(void *)"\r\n", 2};
    p->from = to;
    p->pi = pi + 1;
    p->ends_cluster = p->pi == cc->npieces;
}

static void start_prod(prod *p, int64_t now);

/* Ends p's request (its acks still come) and goes on where it was in a new one. */
static void rotate(prod *p, int64_t now) {
    prod *q = calloc(1, sizeof *q);
    if (q == NULL) die("out of memory");
    q->idx = p->idx;
    q->heap_at = -1;
    q->ring = xmalloc(RING * sizeof *q->ring);
    q->loop = p->loop;
    q->ci = p->ci;
    q->next_all = g_prods;
    g_prods = q;
    p->draining = 1;
    p->niov = p->iov_i = 0;
    p->iov[p->niov++] = (struct iovec){(void *)"0\r\n\r\n", 5};
    if (g_flat_active == p) g_flat_active = q;
    start_prod(q, now);
    q->start_ns = p->start_ns; /* the same clip clock */
}

/* The current write is complete. */
static void chunk_written(prod *p, int64_t now) {
    if (!p->ends_cluster) return;
    const clip_cluster *cc = &g_clip.cl[p->ci];
    uint32_t bytes = (uint32_t)(cc->rest_len + PREFIX_LEN);
    sent *s = &p->ring[(p->ring_head + p->ring_n++) % RING];
    *s = (sent){.tc = cur_tc(p), .done_ns = now, .bytes = bytes};
    if (now >= g_w0 && now <= g_w1) {
        R.counted++;
        R.counted_bytes += bytes;
        R.sent_bytes += bytes;
    }
    if (g_flat) g_flat_outstanding++;
    p->ends_cluster = 0;
    p->from = 0;
    p->pi = 0;
    if (++p->ci == g_clip.ncl) {
        p->ci = 0;
        p->loop++;
    }
    if (p->body_sent >= g_max_body) rotate(p, now);
}

/* Sends whatever is due; keeps the producer in the heap for its next piece. */
static void pump(prod *p, int64_t now) {
    if (p->state != P_STREAMING) return;
    for (;;) {
        if (p->iov_i < p->niov) {
            int rc = flush(p);
            if (rc < 0) {
                fail_prod(p, strerror(errno));
                return;
            }
            if (rc == 0) {
                set_out(p, 1);
                return;
            }
            p->niov = p->iov_i = 0;
            chunk_written(p, now);
            if (p->draining && p->iov_i == p->niov) {
                set_out(p, 0);
                return;
            }
            if (p->draining) continue; /* its last chunk */
        }
        if (g_stop_sending || p->draining || p->ring_n == RING) {
            set_out(p, 0);
            return;
        }
        if (g_flat) {
            if (g_flat_outstanding >= (uint64_t)g_window) { /* acks reopen it */
                set_out(p, 0);
                return;
            }
        } else {
            int64_t due = piece_due(p, p->ci, p->pi, p->loop);
            if (due > now) {
                p->due_ns = due;
                if (p->heap_at < 0) heap_push(p);
                set_out(p, 0);
                return;
            }
        }
        build_chunk(p, now);
    }
}

static void start_prod(prod *p, int64_t now) {
    p->fd = connect_nb();
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = p};
    p->want_out = 1;
    if (epoll_ctl(g_ep, EPOLL_CTL_ADD, p->fd, &ev) != 0) die("epoll_ctl");
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    int hl = snprintf(p->http, sizeof p->http,
                      "POST /putMedia HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                      "x-amzn-stream-name: %s%d\r\n"
                      "x-amzn-fragment-timecode-type: RELATIVE\r\n"
                      "x-amzn-producer-start-timestamp: %lld.%03ld\r\n"
                      "Content-Type: application/octet-stream\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n",
                      g_port, g_prefix, g_first + p->idx, (long long)rt.tv_sec,
                      rt.tv_nsec / 1000000);
    int cl = snprintf(p->chunk_hdr, sizeof p->chunk_hdr, "%zx\r\n", g_clip.header_len);
    p->niov = p->iov_i = 0;
    p->iov[p->niov++] = (struct iovec){p->http, (size_t)hl};
    p->iov[p->niov++] = (struct iovec){p->chunk_hdr, (size_t)cl};
    p->iov[p->niov++] = (struct iovec){g_clip.header, g_clip.header_len};
    p->iov[p->niov++] = (struct iovec){(void *)"\r\n", 2};
    p->ends_cluster = 0;
    p->start_ns = now;
    p->state = P_STREAMING;
    tr_chunked_init(&p->dechunk);
    /* The socket is not connected yet: EPOLLOUT says when. */
}

/* ---- acks ---- */

static void on_ack_line(prod *p, const char *line, int64_t now) {
    const char *t = strstr(line, "\"EventType\":\"");
    if (t == NULL) return;
    t += 13;
    const char *tcp = strstr(line, "\"FragmentTimecode\":");
    uint64_t tc = tcp ? strtoull(tcp + 19, NULL, 10) : 0;
    if (strncmp(t, "RECEIVED\"", 9) == 0) {
        if (p->recv_n < p->ring_n) {
            sent *s = &p->ring[(p->ring_head + p->recv_n) % RING];
            if (s->tc == tc) {
                s->recv_ns = now;
                p->recv_n++;
            }
        }
    } else if (strncmp(t, "PERSISTED\"", 10) == 0) {
        if (p->ring_n == 0 || p->ring[p->ring_head].tc != tc) {
            R.errors++;
            fail_prod(p, "a PERSISTED ack for a cluster not sent, or out of order");
            return;
        }
        sent *s = &p->ring[p->ring_head];
        p->ring_head = (p->ring_head + 1) % RING;
        p->ring_n--;
        if (p->recv_n > 0) p->recv_n--;
        if (now >= g_w0 && now <= g_w1) R.window_acked_bytes += s->bytes;
        if (s->done_ns >= g_w0 && s->done_ns <= g_w1) {
            R.acked++;
            R.acked_bytes += s->bytes;
            add_sample(&R.persisted, (double)(now - s->done_ns) / 1e6);
            if (s->recv_ns) add_sample(&R.received, (double)(s->recv_ns - s->done_ns) / 1e6);
        }
        if (g_flat) {
            g_flat_outstanding--;
            if (g_flat_active != NULL) pump(g_flat_active, now);
        }
    } else if (strncmp(t, "ERROR\"", 6) == 0) {
        R.errors++;
        fail_prod(p, line);
    }
}

static int ack_bytes(void *ctx, const uint8_t *d, size_t n) {
    prod *p = ctx;
    int64_t now = now_ns();
    for (size_t i = 0; i < n && p->state == P_STREAMING; i++) {
        if (d[i] == '\n') {
            p->line[p->line_len] = '\0';
            on_ack_line(p, p->line, now);
            p->line_len = 0;
        } else if (p->line_len + 1 < sizeof p->line) {
            p->line[p->line_len++] = (char)d[i];
        }
    }
    return 0;
}

static void on_readable(prod *p) {
    static uint8_t buf[65536];
    for (;;) {
        ssize_t n = recv(p->fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return;
        if (n <= 0) {
            fail_prod(p, n == 0 ? "the server closed the connection" : strerror(errno));
            return;
        }
        size_t off = 0;
        if (!p->hdr_done) {
            size_t take = (size_t)n;
            if (take > sizeof p->hbuf - 1 - p->hlen) take = sizeof p->hbuf - 1 - p->hlen;
            memcpy(p->hbuf + p->hlen, buf, take);
            p->hlen += take;
            p->hbuf[p->hlen] = '\0';
            char *e = strstr(p->hbuf, "\r\n\r\n");
            if (e == NULL) {
                if (p->hlen == sizeof p->hbuf - 1) fail_prod(p, "answer headers too long");
                continue;
            }
            if (strncmp(p->hbuf, "HTTP/1.1 200", 12) != 0) {
                char why[200];
                snprintf(why, sizeof why, "answer %.120s", p->hbuf);
                R.errors++;
                fail_prod(p, why);
                return;
            }
            p->hdr_done = 1;
            off = (size_t)(e + 4 - p->hbuf) - (p->hlen - take);
        }
        size_t used;
        int rc = tr_chunked_feed(&p->dechunk, buf + off, (size_t)n - off, &used, ack_bytes, p);
        if (p->state != P_STREAMING) return;
        if (rc == TR_CHUNKED_BAD) {
            fail_prod(p, "malformed chunked answer");
            return;
        }
        if (rc == TR_CHUNKED_DONE) {
            if (!p->draining || p->ring_n > 0) {
                fail_prod(p, "the server ended the answer");
                return;
            }
            p->state = P_DONE; /* a rotated request, all acknowledged */
            epoll_ctl(g_ep, EPOLL_CTL_DEL, p->fd, NULL);
            close(p->fd);
            p->fd = -1;
            return;
        }
    }
}

/* ---- the server's CPU and memory ---- */

static double proc_cpu_s(int pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (p == NULL) return 0;
    unsigned long long ut = 0, st = 0;
    /* After the command: state is field 3; utime and stime are fields 14 and 15. */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long proc_rss_kb(int pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    long kb = 0;
    if (f == NULL) return 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) kb = atol(line + 6);
    fclose(f);
    return kb;
}

static double self_cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---- run ---- */

static uint64_t xorshift(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void raise_nofile(int need) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < (rlim_t)need + 64) {
        fprintf(stderr, "ingest_load_bench: %d connections need more open files than %llu\n",
                need, (unsigned long long)rl.rlim_cur);
        exit(1);
    }
}

static void handle_events(int timeout_ms) {
    struct epoll_event evs[256];
    int n = epoll_wait(g_ep, evs, 256, timeout_ms);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    for (int i = 0; i < n; i++) {
        prod *p = evs[i].data.ptr;
        if (p->state != P_STREAMING) continue;
        if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(p);
        if (p->state == P_STREAMING && (evs[i].events & EPOLLOUT)) pump(p, now_ns());
    }
}

static int cmd_run(void) {
    if (g_first < 0) g_first = 1;
    load_clip(g_clip_path, &g_clip);
    int n = g_flat ? 1 : g_streams;
    raise_nofile(n);
    g_heap = calloc((size_t)n, sizeof *g_heap);
    if (g_heap == NULL) die("out of memory");
    g_ep = epoll_create1(EPOLL_CLOEXEC);
    if (g_ep < 0) die("epoll_create1");
    /* Real-time producers start at random phases over the longest fragment. */
    int64_t spread = (int64_t)g_clip.max_frag_ms * 1000000;
    int64_t t0 = now_ns() + 50 * 1000000;
    uint64_t seed = g_seed * 0x9e3779b97f4a7c15ull + 1;
    for (int i = n - 1; i >= 0; i--) {
        prod *p = calloc(1, sizeof *p);
        if (p == NULL) die("out of memory");
        p->next_all = g_prods;
        g_prods = p;
        p->idx = i;
        p->fd = -1;
        p->heap_at = -1;
        p->ring = xmalloc(RING * sizeof *p->ring);
        p->due_ns = t0 + (g_flat || n == 1 ? 0 : (int64_t)(xorshift(&seed) % (uint64_t)spread));
        heap_push(p);
    }
    if (g_flat) g_flat_active = g_prods;
    long rss0 = g_server_pid ? proc_rss_kb(g_server_pid) : 0;
    g_w0 = t0 + (int64_t)(g_warmup * 1e9);
    g_w1 = g_w0 + (int64_t)(g_seconds * 1e9);
    double cpu0 = 0, cpu1 = 0, self0 = 0, self1 = 0;
    long rss1 = 0;
    int in_window = 0;
    for (;;) {
        int64_t now = now_ns();
        if (!in_window && now >= g_w0) {
            in_window = 1;
            cpu0 = g_server_pid ? proc_cpu_s(g_server_pid) : 0;
            self0 = self_cpu_s();
        }
        if (in_window == 1 && now >= g_w1) {
            in_window = 2;
            cpu1 = g_server_pid ? proc_cpu_s(g_server_pid) : 0;
            self1 = self_cpu_s();
            rss1 = g_server_pid ? proc_rss_kb(g_server_pid) : 0;
            g_stop_sending = 1;
            break;
        }
        while (g_heap_n > 0 && g_heap[0]->due_ns <= now) {
            prod *p = heap_pop();
            if (p->state == P_IDLE) start_prod(p, now);
            else pump(p, now);
        }
        int64_t next = in_window ? g_w1 : g_w0;
        if (g_heap_n > 0 && g_heap[0]->due_ns < next) next = g_heap[0]->due_ns;
        int64_t wait = next - now_ns();
        handle_events(wait <= 0 ? 0 : (int)((wait + 999999) / 1000000));
    }
    /* Wait for the acks of every cluster sent in the window (at most 10 s). */
    int64_t give_up = now_ns() + 10 * 1000000000ll;
    for (;;) {
        int outstanding = 0;
        for (prod *p = g_prods; p != NULL; p = p->next_all) {
            if (p->state != P_STREAMING) continue;
            for (size_t k = 0; k < p->ring_n; k++) {
                int64_t d = p->ring[(p->ring_head + k) % RING].done_ns;
                if (d >= g_w0 && d <= g_w1) outstanding = 1;
            }
        }
        if (!outstanding || now_ns() >= give_up) break;
        handle_events(20);
    }
    for (prod *p = g_prods; p != NULL; p = p->next_all)
        if (p->fd >= 0) close(p->fd);

    double window = g_seconds;
    sort_samples(&R.persisted);
    sort_samples(&R.received);
    printf("ingest mode=%s streams=%d seconds=%.1f MBps=%.2f sent_MBps=%.2f clusters=%" PRIu64
           " acked=%" PRIu64 " unacked=%" PRIu64 " errors=%" PRIu64 " failed_conns=%" PRIu64
           " p50_ms=%.1f p99_ms=%.1f max_ms=%.1f recv_p50_ms=%.1f recv_p99_ms=%.1f"
           " server_cpu_pct=%.0f gen_cpu_pct=%.0f server_rss_mb=%.1f rss_kb_per_conn=%.0f\n",
           g_flat ? "flatout" : "realtime", n, window,
           (double)(g_flat ? R.window_acked_bytes : R.acked_bytes) / 1e6 / window,
           (double)R.sent_bytes / 1e6 / window, R.counted, R.acked, R.counted - R.acked,
           R.errors, R.failed_conns, pct(&R.persisted, 0.5), pct(&R.persisted, 0.99),
           R.persisted.n ? R.persisted.v[R.persisted.n - 1] : 0, pct(&R.received, 0.5),
           pct(&R.received, 0.99), 100 * (cpu1 - cpu0) / window, 100 * (self1 - self0) / window,
           (double)rss1 / 1024, (double)(rss1 - rss0) / n);
    if (R.first_error[0] != '\0') fprintf(stderr, "ingest_load_bench: %s\n", R.first_error);
    return 0;
}

/* ---- create ---- */

static int g_next_create;
static pthread_mutex_t g_create_mu = PTHREAD_MUTEX_INITIALIZER;
static int g_create_failed;

static int read_answer(int fd, char *buf, size_t cap, int *status) {
    size_t len = 0;
    char *e = NULL;
    while (e == NULL) {
        ssize_t r = recv(fd, buf + len, cap - 1 - len, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        len += (size_t)r;
        buf[len] = '\0';
        e = strstr(buf, "\r\n\r\n");
        if (e == NULL && len == cap - 1) return -1;
    }
    *status = atoi(buf + 9);
    const char *cl = strcasestr(buf, "content-length:");
    size_t body = cl ? (size_t)atol(cl + 15) : 0, need = (size_t)(e + 4 - buf) + body;
    if (need > cap - 1) return -1;
    while (len < need) {
        ssize_t r = recv(fd, buf + len, need - len, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        len += (size_t)r;
    }
    buf[len] = '\0';
    return 0;
}

static void *creator_main(void *arg) {
    (void)arg;
    int fd = -1;
    char req[1024], ans[8192];
    for (;;) {
        pthread_mutex_lock(&g_create_mu);
        int i = g_next_create++;
        pthread_mutex_unlock(&g_create_mu);
        if (i >= g_streams) break;
        char body[256];
        int bl = snprintf(body, sizeof body,
                          "{\"StreamName\":\"%s%d\",\"DataRetentionInHours\":1,"
                          "\"MediaType\":\"video/h264\"}",
                          g_prefix, g_first + i);
        int rl = snprintf(req, sizeof req,
                          "POST /createStream HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                          "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                          g_port, bl, body);
        int status = 0, ok = 0;
        for (int attempt = 0; attempt < 2 && !ok; attempt++) {
            if (fd < 0) {
                fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
                inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
                if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) die("connect");
            }
            if (send(fd, req, (size_t)rl, MSG_NOSIGNAL) == rl &&
                read_answer(fd, ans, sizeof ans, &status) == 0) {
                ok = 1;
            } else {
                close(fd);
                fd = -1;
            }
        }
        if (!ok || status != 200) {
            fprintf(stderr, "ingest_load_bench: CreateStream %s%d: %s\n", g_prefix, g_first + i,
                    ok ? ans : "no answer");
            pthread_mutex_lock(&g_create_mu);
            g_create_failed = 1;
            pthread_mutex_unlock(&g_create_mu);
            break;
        }
    }
    if (fd >= 0) close(fd);
    return NULL;
}

static int cmd_create(void) {
    if (g_first < 0) g_first = 0;
    int64_t t0 = now_ns();
    pthread_t th[64];
    int k = g_conns < 1 ? 1 : g_conns > 64 ? 64 : g_conns;
    for (int i = 0; i < k; i++)
        if (pthread_create(&th[i], NULL, creator_main, NULL) != 0) die("pthread_create");
    for (int i = 0; i < k; i++) pthread_join(th[i], NULL);
    if (g_create_failed) return 1;
    /* Streams are CREATING for stream_transition_ms (500 by default). */
    struct timespec ts = {0, 700 * 1000000};
    nanosleep(&ts, NULL);
    fprintf(stderr, "ingest_load_bench: created %d streams in %.1f s\n", g_streams,
            (double)(now_ns() - t0) / 1e9);
    return 0;
}

static int cmd_clip(void) {
    load_clip(g_clip_path, &g_clip);
    size_t frames = 0;
    for (size_t i = 0; i < g_clip.ncl; i++) frames += g_clip.cl[i].npieces;
    double secs = (double)tc_to_ns((int64_t)g_clip.loop_tc) / 1e9;
    printf("clip clusters=%zu frames=%zu seconds=%.2f bytes=%" PRIu64 " mbps=%.2f"
           " longest_cluster_ms=%" PRId64 " header_bytes=%zu\n",
           g_clip.ncl, frames, secs, g_clip.loop_bytes,
           (double)g_clip.loop_bytes * 8 / 1e6 / secs, g_clip.max_frag_ms, g_clip.header_len);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: ingest_load_bench clip|create|run [options] (see the source)\n");
        return 2;
    }
    const char *cmd = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--flat-out") == 0) {
            g_flat = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "ingest_load_bench: %s needs a value\n", a);
            return 2;
        }
        const char *v = argv[++i];
        if (strcmp(a, "--port") == 0) g_port = atoi(v);
        else if (strcmp(a, "--clip") == 0) g_clip_path = v;
        else if (strcmp(a, "--streams") == 0) g_streams = atoi(v);
        else if (strcmp(a, "--prefix") == 0) g_prefix = v;
        else if (strcmp(a, "--first") == 0) g_first = atoi(v);
        else if (strcmp(a, "--conns") == 0) g_conns = atoi(v);
        else if (strcmp(a, "--seconds") == 0) g_seconds = atof(v);
        else if (strcmp(a, "--warmup") == 0) g_warmup = atof(v);
        else if (strcmp(a, "--window") == 0) g_window = atoi(v);
        else if (strcmp(a, "--server-pid") == 0) g_server_pid = atoi(v);
        else if (strcmp(a, "--seed") == 0) g_seed = strtoull(v, NULL, 10);
        else if (strcmp(a, "--max-body-mib") == 0) g_max_body = strtoull(v, NULL, 10) << 20;
        else {
            fprintf(stderr, "ingest_load_bench: unknown option %s\n", a);
            return 2;
        }
    }
    if (g_window < 1 || g_window > RING) g_window = 64;
    if (strcmp(cmd, "clip") == 0 && g_clip_path) return cmd_clip();
    if (strcmp(cmd, "create") == 0 && g_port > 0) return cmd_create();
    if (strcmp(cmd, "run") == 0 && g_port > 0 && g_clip_path) return cmd_run();
    fprintf(stderr, "ingest_load_bench: bad command or missing --port/--clip\n");
    return 2;
}
