/* A Kinesis Data Streams load generator: PutRecords throughput and put-to-GetRecords-visible
 * latency against any server that speaks the JSON 1.1 protocol (Tributary, kinesalite).
 *
 * Plain blocking sockets, HTTP/1.1 keep-alive, one thread per connection, each with one
 * request in flight. Request bodies are built once per connection (random data, base64, and
 * random partition keys that spread over every shard) and reused, so the generator spends
 * its time in send/recv, not in building JSON. bench/data_streams.sh drives it.
 *
 * Usage:
 *   kinesis_load_bench create  --port P --stream S --shards N
 *   kinesis_load_bench put     --port P --stream S [--size B] [--batch R] [--conns C]
 *                              [--seconds D] [--warmup W] [--rate RECORDS_PER_S]
 *   kinesis_load_bench latency --port P --stream S --shards N --rate RECORDS_PER_S
 *                              [--size B] [--batch R] [--conns C] [--seconds D] [--warmup W]
 * put prints one line:
 *   put rps=<records/s> mbps=<payload MB/s> calls=<n> failed=<records> errors=<calls>
 *       p50_ms=<put latency> p99_ms=<...>
 * latency puts at the given rate, stamping each record with the send time, while one thread
 * per shard reads from LATEST with GetRecords as fast as it returns (0.2 ms pause when a
 * call comes back empty), and prints
 *   latency rps=<achieved> samples=<n> p50_ms=<put-to-visible> p99_ms=<...> max_ms=<...>
 *           put_p50_ms=<...> put_p99_ms=<...> failed=<records> errors=<calls> */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "samples.h"

#define STAMP_BYTES 12 /* u64 CLOCK_MONOTONIC ns + "TRLT": 16 base64 characters */
#define STAMP_B64 16

static const char *g_host = "127.0.0.1";
static int g_port;
static const char *g_stream = "bench";
static int g_shards = 4;
static int g_size = 100;
static int g_batch = 500;
static int g_conns = 8;
static double g_seconds = 5, g_warmup = 1, g_rate = 0;

static atomic_int g_stop;
static _Atomic int64_t g_t0, g_t1; /* the measured window, CLOCK_MONOTONIC ns */

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_until(int64_t t) {
    struct timespec ts = {(time_t)(t / 1000000000), (long)(t % 1000000000)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static void die(const char *what) {
    fprintf(stderr, "kinesis_load_bench: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* ---- base64 ---- */

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t b64_encode(const uint8_t *in, size_t n, char *out) {
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64chars[v >> 18];
        out[o++] = b64chars[(v >> 12) & 63];
        out[o++] = b64chars[(v >> 6) & 63];
        out[o++] = b64chars[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
        out[o++] = b64chars[v >> 18];
        out[o++] = b64chars[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64chars[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    return o;
}

static int b64_val(char c) {
    const char *p = strchr(b64chars, c);
    return c != '\0' && p != NULL ? (int)(p - b64chars) : -1;
}

/* Decodes exactly STAMP_B64 characters into STAMP_BYTES. Returns 0 or -1. */
static int stamp_decode(const char *in, uint8_t *out) {
    for (int i = 0; i < STAMP_B64; i += 4) {
        int a = b64_val(in[i]), b = b64_val(in[i + 1]), c = b64_val(in[i + 2]),
            d = b64_val(in[i + 3]);
        if (a < 0 || b < 0 || c < 0 || d < 0) return -1;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        out[i / 4 * 3] = (uint8_t)(v >> 16);
        out[i / 4 * 3 + 1] = (uint8_t)(v >> 8);
        out[i / 4 * 3 + 2] = (uint8_t)v;
    }
    return 0;
}

static void stamp_encode(int64_t t, char *out) {
    uint8_t raw[STAMP_BYTES];
    memcpy(raw, &t, 8);
    memcpy(raw + 8, "TRLT", 4);
    b64_encode(raw, STAMP_BYTES, out);
}

/* ---- HTTP/1.1 client ---- */

typedef struct conn {
    int fd;
    char *buf;         /* response bytes */
    size_t cap, len;
    char *body;        /* points into buf after a request */
    size_t body_len;
    int status;
} conn;

static int conn_open(conn *c) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0) return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    inet_pton(AF_INET, g_host, &sa.sin_addr);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    return 0;
}

static void conn_close(conn *c) {
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
}

static int write_all(int fd, struct iovec *iov, int n) {
    while (n > 0) {
        ssize_t w = writev(fd, iov, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

static int fill(conn *c, size_t need) {
    while (c->len < need) {
        if (c->cap < need + 65536) {
            size_t cap = c->cap ? c->cap : 262144;
            while (cap < need + 65536) cap *= 2;
            char *g = realloc(c->buf, cap);
            if (g == NULL) return -1;
            c->buf = g;
            c->cap = cap;
        }
        ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        c->len += (size_t)r;
    }
    return 0;
}

/* Reads one response (Content-Length or chunked). Returns 0 or -1. */
static int read_response(conn *c) {
    c->len = 0;
    size_t hdr_end = 0;
    for (;;) {
        if (fill(c, c->len + 1) != 0) return -1;
        c->buf[c->len] = '\0';
        char *e = strstr(c->buf, "\r\n\r\n");
        if (e != NULL) {
            hdr_end = (size_t)(e - c->buf) + 4;
            break;
        }
    }
    c->status = atoi(c->buf + 9);
    long long clen = -1;
    int chunked = 0;
    for (const char *p = strstr(c->buf, "\r\n") + 2; p < c->buf + hdr_end - 2;) {
        const char *eol = strstr(p, "\r\n");
        if (strncasecmp(p, "content-length:", 15) == 0) clen = atoll(p + 15);
        if (strncasecmp(p, "transfer-encoding:", 18) == 0 &&
            memmem(p, (size_t)(eol - p), "chunked", 7) != NULL)
            chunked = 1;
        p = eol + 2;
    }
    if (!chunked) {
        if (clen < 0) return -1;
        if (fill(c, hdr_end + (size_t)clen) != 0) return -1;
        c->body = c->buf + hdr_end;
        c->body_len = (size_t)clen;
        c->body[c->body_len] = '\0';
        return 0;
    }
    /* Chunked: decode in place after the headers. */
    size_t pos = hdr_end, out = hdr_end;
    for (;;) {
        char *nl;
        for (;;) {
            c->buf[c->len] = '\0';
            nl = strstr(c->buf + pos, "\r\n");
            if (nl != NULL) break;
            if (fill(c, c->len + 1) != 0) return -1;
        }
        size_t n = strtoul(c->buf + pos, NULL, 16);
        size_t data = (size_t)(nl - c->buf) + 2;
        if (fill(c, data + n + 2) != 0) return -1;
        memmove(c->buf + out, c->buf + data, n);
        out += n;
        pos = data + n + 2;
        if (n == 0) break;
    }
    c->body = c->buf + hdr_end;
    c->body_len = out - hdr_end;
    c->body[c->body_len] = '\0';
    return 0;
}

/* POSTs one call; reconnects once if the kept-alive connection was closed. */
static int call(conn *c, const char *op, const char *body, size_t len) {
    for (int attempt = 0; attempt < 2; attempt++) {
        if (c->fd < 0 && conn_open(c) != 0) return -1;
        char hdr[768];
        int n = snprintf(hdr, sizeof hdr,
                         "POST / HTTP/1.1\r\nHost: %s:%d\r\n"
                         "Content-Type: application/x-amz-json-1.1\r\n"
                         "X-Amz-Target: Kinesis_20131202.%s\r\n"
                         "X-Amz-Date: 20250101T000000Z\r\n"
                         "Authorization: AWS4-HMAC-SHA256 Credential=AKIDBENCH/20250101/"
                         "us-east-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date;"
                         "x-amz-target, Signature=0000\r\n"
                         "Content-Length: %zu\r\n\r\n",
                         g_host, g_port, op, len);
        struct iovec iov[2] = {{hdr, (size_t)n}, {(void *)body, len}};
        if (write_all(c->fd, iov, 2) == 0 && read_response(c) == 0) return 0;
        conn_close(c);
    }
    return -1;
}

/* The string value after "key":" in s (JSON without spaces), copied into out. */
static int json_str(const char *s, const char *key, char *out, size_t cap) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = strstr(s, pat);
    if (p == NULL) return -1;
    p += strlen(pat);
    const char *e = strchr(p, '"');
    if (e == NULL || (size_t)(e - p) >= cap) return -1;
    memcpy(out, p, (size_t)(e - p));
    out[e - p] = '\0';
    return 0;
}

/* ---- samples ---- */

static void merge(samples *into, samples *from) {
    for (size_t i = 0; i < from->n; i++) add_sample(into, from->v[i]);
    free(from->v);
    from->v = NULL;
    from->n = from->cap = 0;
}

/* ---- producers ---- */

typedef struct producer {
    pthread_t th;
    int idx;
    char *body;
    size_t body_len;
    size_t *stamp_at; /* offset of each record's base64 data */
    int stamp;
    uint64_t records, calls, failed, errors; /* in the window */
    samples lat;                              /* put latency, ms, in the window */
} producer;

static uint64_t xorshift(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void build_body(producer *p) {
    size_t b64len = ((size_t)g_size + 2) / 3 * 4;
    size_t cap = 256 + (size_t)g_batch * (b64len + 64);
    p->body = malloc(cap);
    p->stamp_at = calloc((size_t)g_batch, sizeof *p->stamp_at);
    uint8_t *raw = malloc((size_t)g_size);
    if (p->body == NULL || p->stamp_at == NULL || raw == NULL) die("out of memory");
    uint64_t seed = 0x9e3779b97f4a7c15ull * (uint64_t)(p->idx + 1);
    size_t o = (size_t)snprintf(p->body, cap, "{\"StreamName\":\"%s\",\"Records\":[", g_stream);
    for (int i = 0; i < g_batch; i++) {
        for (int j = 0; j < g_size; j++) raw[j] = (uint8_t)xorshift(&seed);
        if (i > 0) p->body[o++] = ',';
        o += (size_t)snprintf(p->body + o, cap - o, "{\"Data\":\"");
        p->stamp_at[i] = o;
        o += b64_encode(raw, (size_t)g_size, p->body + o);
        o += (size_t)snprintf(p->body + o, cap - o, "\",\"PartitionKey\":\"pk-%016" PRIx64 "\"}",
                              xorshift(&seed));
    }
    o += (size_t)snprintf(p->body + o, cap - o, "]}");
    p->body_len = o;
    free(raw);
}

static long long json_int_after(const char *s, const char *key) {
    const char *p = strstr(s, key);
    return p ? atoll(p + strlen(key)) : -1;
}

static void *producer_main(void *arg) {
    producer *p = arg;
    conn c = {.fd = -1};
    /* With a rate, each connection sends one batch every `interval`, spread out in phase. */
    int64_t interval = g_rate > 0 ? (int64_t)(1e9 * g_batch * g_conns / g_rate) : 0;
    int64_t next = now_ns() + (interval ? interval * p->idx / g_conns : 0);
    char stamp[STAMP_B64];
    while (!atomic_load(&g_stop)) {
        if (interval) {
            sleep_until(next);
            next += interval;
            if (atomic_load(&g_stop)) break;
        }
        int64_t t = now_ns();
        if (p->stamp) {
            stamp_encode(t, stamp);
            for (int i = 0; i < g_batch; i++) memcpy(p->body + p->stamp_at[i], stamp, STAMP_B64);
        }
        int rc = call(&c, "PutRecords", p->body, p->body_len);
        int64_t done = now_ns();
        int in_window = done >= g_t0 && done <= g_t1;
        if (rc != 0 || c.status != 200) {
            if (in_window) p->errors++;
            if (rc != 0) usleep(10000);
            continue;
        }
        long long failed = json_int_after(c.body, "\"FailedRecordCount\":");
        if (!in_window) continue;
        p->calls++;
        p->failed += failed > 0 ? (uint64_t)failed : 0;
        p->records += (uint64_t)g_batch - (failed > 0 ? (uint64_t)failed : 0);
        add_sample(&p->lat, (double)(done - t) / 1e6);
    }
    conn_close(&c);
    free(c.buf);
    return NULL;
}

/* ---- consumers (latency) ---- */

typedef struct consumer {
    pthread_t th;
    int shard;
    samples vis;
    int error;
} consumer;

static void *consumer_main(void *arg) {
    consumer *k = arg;
    conn c = {.fd = -1};
    char body[1024], it[1024];
    snprintf(body, sizeof body,
             "{\"StreamName\":\"%s\",\"ShardId\":\"shardId-%012d\",\"ShardIteratorType\":\"LATEST\"}",
             g_stream, k->shard);
    if (call(&c, "GetShardIterator", body, strlen(body)) != 0 || c.status != 200 ||
        json_str(c.body, "ShardIterator", it, sizeof it) != 0) {
        fprintf(stderr, "kinesis_load_bench: GetShardIterator failed on shard %d: %s\n", k->shard,
                c.body ? c.body : "(no answer)");
        k->error = 1;
        return NULL;
    }
    while (!atomic_load(&g_stop)) {
        int n = snprintf(body, sizeof body, "{\"ShardIterator\":\"%s\",\"Limit\":10000}", it);
        if (call(&c, "GetRecords", body, (size_t)n) != 0 || c.status != 200) {
            k->error = 1;
            usleep(1000);
            continue;
        }
        int64_t t = now_ns();
        int got = 0;
        for (const char *p = strstr(c.body, "\"Data\":\""); p != NULL;
             p = strstr(p + 8, "\"Data\":\"")) {
            uint8_t raw[STAMP_BYTES];
            got++;
            if (stamp_decode(p + 8, raw) != 0 || memcmp(raw + 8, "TRLT", 4) != 0) continue;
            int64_t sent;
            memcpy(&sent, raw, 8);
            if (t >= g_t0 && t <= g_t1) add_sample(&k->vis, (double)(t - sent) / 1e6);
        }
        if (json_str(c.body, "NextShardIterator", it, sizeof it) != 0) break;
        if (got == 0) usleep(200);
    }
    conn_close(&c);
    free(c.buf);
    return NULL;
}

/* ---- commands ---- */

static int cmd_create(void) {
    conn c = {.fd = -1};
    char body[512];
    snprintf(body, sizeof body, "{\"StreamName\":\"%s\",\"ShardCount\":%d}", g_stream, g_shards);
    if (call(&c, "CreateStream", body, strlen(body)) != 0 || c.status != 200) {
        fprintf(stderr, "kinesis_load_bench: CreateStream: %d %s\n", c.status,
                c.body ? c.body : "(no answer)");
        return 1;
    }
    snprintf(body, sizeof body, "{\"StreamName\":\"%s\"}", g_stream);
    for (int i = 0; i < 300; i++) {
        if (call(&c, "DescribeStream", body, strlen(body)) == 0 && c.status == 200 &&
            strstr(c.body, "\"StreamStatus\":\"ACTIVE\"") != NULL) {
            conn_close(&c);
            free(c.buf);
            return 0;
        }
        usleep(50000);
    }
    fprintf(stderr, "kinesis_load_bench: stream %s not ACTIVE\n", g_stream);
    return 1;
}

static void run_producers(producer *ps, int stamp) {
    for (int i = 0; i < g_conns; i++) {
        ps[i].idx = i;
        ps[i].stamp = stamp;
        build_body(&ps[i]);
    }
    int64_t start = now_ns();
    g_t0 = start + (int64_t)(g_warmup * 1e9);
    g_t1 = g_t0 + (int64_t)(g_seconds * 1e9);
    for (int i = 0; i < g_conns; i++)
        if (pthread_create(&ps[i].th, NULL, producer_main, &ps[i]) != 0) die("pthread_create");
}

static void stop_producers(producer *ps, uint64_t *records, uint64_t *calls, uint64_t *failed,
                           uint64_t *errors, samples *lat) {
    sleep_until(g_t1);
    atomic_store(&g_stop, 1);
    for (int i = 0; i < g_conns; i++) {
        pthread_join(ps[i].th, NULL);
        *records += ps[i].records;
        *calls += ps[i].calls;
        *failed += ps[i].failed;
        *errors += ps[i].errors;
        merge(lat, &ps[i].lat);
        free(ps[i].body);
        free(ps[i].stamp_at);
    }
    qsort(lat->v, lat->n, sizeof *lat->v, cmp_double);
}

static int cmd_put(void) {
    producer *ps = calloc((size_t)g_conns, sizeof *ps);
    if (ps == NULL) die("out of memory");
    run_producers(ps, 0);
    uint64_t records = 0, calls = 0, failed = 0, errors = 0;
    samples lat = {0};
    stop_producers(ps, &records, &calls, &failed, &errors, &lat);
    double rps = (double)records / g_seconds;
    printf("put rps=%.0f mbps=%.2f calls=%" PRIu64 " failed=%" PRIu64 " errors=%" PRIu64
           " p50_ms=%.2f p99_ms=%.2f\n",
           rps, rps * g_size / 1e6, calls, failed, errors, pct(&lat, 0.5), pct(&lat, 0.99));
    free(lat.v);
    free(ps);
    return 0;
}

static int cmd_latency(void) {
    if (g_rate <= 0 || g_size < STAMP_BYTES) {
        fprintf(stderr, "kinesis_load_bench: latency needs --rate and --size >= %d\n",
                STAMP_BYTES);
        return 2;
    }
    consumer *ks = calloc((size_t)g_shards, sizeof *ks);
    producer *ps = calloc((size_t)g_conns, sizeof *ps);
    if (ks == NULL || ps == NULL) die("out of memory");
    g_t0 = INT64_MAX; /* consumers sample only once the window is set */
    for (int i = 0; i < g_shards; i++) {
        ks[i].shard = i;
        if (pthread_create(&ks[i].th, NULL, consumer_main, &ks[i]) != 0) die("pthread_create");
    }
    usleep(300000); /* the LATEST iterators exist before the first put */
    run_producers(ps, 1);
    uint64_t records = 0, calls = 0, failed = 0, errors = 0;
    samples lat = {0}, vis = {0};
    stop_producers(ps, &records, &calls, &failed, &errors, &lat);
    int consumer_errors = 0;
    for (int i = 0; i < g_shards; i++) {
        pthread_join(ks[i].th, NULL);
        consumer_errors += ks[i].error;
        merge(&vis, &ks[i].vis);
    }
    qsort(vis.v, vis.n, sizeof *vis.v, cmp_double);
    printf("latency rps=%.0f samples=%zu p50_ms=%.2f p99_ms=%.2f max_ms=%.2f put_p50_ms=%.2f "
           "put_p99_ms=%.2f failed=%" PRIu64 " errors=%" PRIu64 " consumer_errors=%d\n",
           (double)records / g_seconds, vis.n, pct(&vis, 0.5), pct(&vis, 0.99),
           vis.n ? vis.v[vis.n - 1] : 0.0, pct(&lat, 0.5), pct(&lat, 0.99), failed, errors,
           consumer_errors);
    free(vis.v);
    free(lat.v);
    free(ps);
    free(ks);
    return 0;
}

static void usage(void) {
    fprintf(stderr,
            "usage: kinesis_load_bench create|put|latency --port P --stream S [--host H]\n"
            "       [--shards N] [--size BYTES] [--batch RECORDS] [--conns C]\n"
            "       [--seconds D] [--warmup W] [--rate RECORDS_PER_S]\n");
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 2) usage();
    const char *cmd = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--host")) g_host = v;
        else if (!strcmp(a, "--port")) g_port = atoi(v);
        else if (!strcmp(a, "--stream")) g_stream = v;
        else if (!strcmp(a, "--shards")) g_shards = atoi(v);
        else if (!strcmp(a, "--size")) g_size = atoi(v);
        else if (!strcmp(a, "--batch")) g_batch = atoi(v);
        else if (!strcmp(a, "--conns")) g_conns = atoi(v);
        else if (!strcmp(a, "--seconds")) g_seconds = atof(v);
        else if (!strcmp(a, "--warmup")) g_warmup = atof(v);
        else if (!strcmp(a, "--rate")) g_rate = atof(v);
        else usage();
    }
    if (g_port <= 0 || g_batch < 1 || g_conns < 1 || g_size < 1 || g_shards < 1) usage();
    if (!strcmp(cmd, "create")) return cmd_create();
    if (!strcmp(cmd, "put")) return cmd_put();
    if (!strcmp(cmd, "latency")) return cmd_latency();
    usage();
    return 2;
}
