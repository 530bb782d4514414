/* The blocking HTTP/1.1 client of the consumer library: one connection per call, the request
 * written whole, the answer read into a tr_client_response (client/response.h) until it ends,
 * a callback stops it, or the connection fails. Plain sockets, no TLS. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/getmedia.h"
#include "client/response.h"

#define RECV_BYTES 65536

void tr_client_init(tr_client *c, const char *host, int port) {
    memset(c, 0, sizeof *c);
    c->host = host;
    c->port = port;
}

static int set_error(tr_client *c, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int set_error(tr_client *c, int rc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->error, sizeof c->error, fmt, ap);
    va_end(ap);
    return rc;
}

int tr_client_parse_endpoint(const char *url, char *host, size_t host_len, int *port) {
    const char *p = url;
    if (strncasecmp(p, "http://", 7) == 0) p += 7;
    else if (strstr(p, "://") != NULL) return TR_CLIENT_EARG; /* https and the rest */
    const char *h = p, *hend;
    if (*p == '[') { /* [v6]:port */
        h = p + 1;
        if ((hend = strchr(h, ']')) == NULL) return TR_CLIENT_EARG;
        p = hend + 1;
    } else {
        hend = p + strcspn(p, ":/");
        p = hend;
    }
    if (hend == h || (size_t)(hend - h) >= host_len) return TR_CLIENT_EARG;
    long v = 80;
    if (*p == ':') {
        char *end;
        errno = 0;
        v = strtol(p + 1, &end, 10);
        if (end == p + 1 || errno != 0 || v < 1 || v > 65535) return TR_CLIENT_EARG;
        p = end;
    }
    if (*p != '\0' && strcmp(p, "/") != 0) return TR_CLIENT_EARG;
    memcpy(host, h, (size_t)(hend - h));
    host[hend - h] = '\0';
    *port = (int)v;
    return 0;
}

/* "SERVER_TIMESTAMP:1726677687.758" -> epoch ms. */
static int parse_epoch_ms(const char *s, int64_t *ms) {
    char *end;
    errno = 0;
    long long whole = strtoll(s, &end, 10);
    if (end == s || *s == '-' || errno != 0 || whole > INT64_MAX / 1000 - 1) return -1;
    int64_t frac = 0;
    if (*end == '.') {
        int scale = 100;
        for (end++; *end >= '0' && *end <= '9'; end++, scale /= 10)
            frac += (*end - '0') * scale;
    }
    if (*end != '\0') return -1;
    *ms = (int64_t)whole * 1000 + frac;
    return 0;
}

int tr_client_selector_parse(const char *text, tr_client_selector *sel) {
    static const char *const plain[] = {"NOW", "EARLIEST"};
    memset(sel, 0, sizeof *sel);
    for (size_t i = 0; i < 2; i++)
        if (strcmp(text, plain[i]) == 0) {
            sel->type = plain[i];
            return 0;
        }
    const char *colon = strchr(text, ':');
    if (colon == NULL || colon[1] == '\0') return TR_CLIENT_EARG;
    size_t n = (size_t)(colon - text);
    const char *arg = colon + 1;
    if (n == 15 && strncmp(text, "FRAGMENT_NUMBER", n) == 0) {
        sel->type = "FRAGMENT_NUMBER";
        sel->after_fragment_number = arg;
    } else if (n == 18 && strncmp(text, "CONTINUATION_TOKEN", n) == 0) {
        sel->type = "CONTINUATION_TOKEN";
        sel->continuation_token = arg;
    } else if ((n == 16 && strncmp(text, "SERVER_TIMESTAMP", n) == 0) ||
               (n == 18 && strncmp(text, "PRODUCER_TIMESTAMP", n) == 0)) {
        sel->type = text[0] == 'S' ? "SERVER_TIMESTAMP" : "PRODUCER_TIMESTAMP";
        if (parse_epoch_ms(arg, &sel->start_timestamp_ms) != 0) return TR_CLIENT_EARG;
    } else {
        return TR_CLIENT_EARG;
    }
    return 0;
}

/* ---- the request body: a growable JSON text ---- */

typedef struct jbuf {
    char *d;
    size_t len, cap;
    int failed;
} jbuf;

static void jput(jbuf *b, const char *s, size_t n) {
    if (b->failed) return;
    if (n + 1 > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 256;
        while (n + 1 > cap - b->len) cap *= 2;
        char *d = realloc(b->d, cap);
        if (d == NULL) {
            b->failed = 1;
            return;
        }
        b->d = d;
        b->cap = cap;
    }
    memcpy(b->d + b->len, s, n);
    b->len += n;
    b->d[b->len] = '\0';
}

static void jraw(jbuf *b, const char *s) { jput(b, s, strlen(s)); }

static void jstr(jbuf *b, const char *s) {
    jput(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            jput(b, esc, 2);
        } else if (*p < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            jput(b, esc, 6);
        } else {
            jput(b, (const char *)p, 1);
        }
    }
    jput(b, "\"", 1);
}

static void jstream(jbuf *b, const char *stream) {
    jraw(b, strncmp(stream, "arn:", 4) == 0 ? "\"StreamARN\":" : "\"StreamName\":");
    jstr(b, stream);
}

/* ---- the connection ---- */

static int wait_fd(int fd, short events, int timeout_ms) {
    struct pollfd pfd = {.fd = fd, .events = events};
    for (;;) {
        int n = poll(&pfd, 1, timeout_ms > 0 ? timeout_ms : -1);
        if (n > 0) return 0;
        if (n == 0) return TR_CLIENT_ETIMEOUT;
        if (errno != EINTR) return TR_CLIENT_EIO;
    }
}

/* A socket connected to c->host:c->port, or -1 with c->error set. */
static int dial(tr_client *c) {
    char port[8];
    snprintf(port, sizeof port, "%d", c->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res, *ai;
    int g = getaddrinfo(c->host, port, &hints, &res);
    if (g != 0) {
        set_error(c, 0, "cannot resolve %s: %s", c->host, gai_strerror(g));
        return -1;
    }
    int fd = -1, err = 0;
    for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        /* Non-blocking only while connecting, so that timeout_ms bounds the connect. */
        int flags = fcntl(fd, F_GETFL);
        fcntl(fd, F_SETFL, flags | O_NONBLOCK);
        int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
        if (rc != 0 && errno == EINPROGRESS) {
            socklen_t el = sizeof err;
            rc = wait_fd(fd, POLLOUT, c->timeout_ms) != 0 ? (errno = ETIMEDOUT, -1)
                 : getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0
                     ? (errno = err ? err : errno, -1)
                     : 0;
        }
        if (rc != 0) {
            err = errno;
            close(fd);
            fd = -1;
            continue;
        }
        fcntl(fd, F_SETFL, flags);
    }
    freeaddrinfo(res);
    if (fd < 0) set_error(c, 0, "cannot connect to %s:%d: %s", c->host, c->port, strerror(err));
    return fd;
}

static int send_all(int fd, const char *d, size_t n) {
    while (n > 0) {
        ssize_t w = send(fd, d, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        d += w;
        n -= (size_t)w;
    }
    return 0;
}

/* POSTs body to path and parses the answer with cb. */
static int post_media(tr_client *c, const char *path, const jbuf *body,
                      const tr_client_callbacks *cb, void *ctx) {
    c->http_status = 0;
    c->fragments = 0;
    c->error[0] = '\0';
    if (body->failed) return set_error(c, TR_CLIENT_ENOMEM, "out of memory for the request");
    tr_client_parser *parser = tr_client_parser_new(cb, ctx, c->max_chunk_bytes);
    tr_client_response *r = malloc(sizeof *r);
    uint8_t *buf = malloc(RECV_BYTES);
    int rc = TR_CLIENT_ENOMEM, fd = -1;
    if (parser == NULL || r == NULL || buf == NULL) {
        set_error(c, rc, "out of memory");
        goto out;
    }
    tr_client_response_init(r, parser);
    if ((fd = dial(c)) < 0) {
        rc = TR_CLIENT_ECONNECT;
        goto out;
    }
    char head[512];
    int hn = snprintf(head, sizeof head,
                      "POST %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: libtributary/0.1\r\n"
                      "Accept: */*\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                      path, c->host, c->port, body->len);
    if (hn < 0 || (size_t)hn >= sizeof head) {
        rc = set_error(c, TR_CLIENT_EARG, "host name too long");
        goto out;
    }
    if (send_all(fd, head, (size_t)hn) != 0 || send_all(fd, body->d, body->len) != 0) {
        rc = set_error(c, TR_CLIENT_EIO, "cannot send the request: %s", strerror(errno));
        goto out;
    }
    for (;;) {
        if (c->timeout_ms > 0 && (rc = wait_fd(fd, POLLIN, c->timeout_ms)) != 0) {
            set_error(c, rc, rc == TR_CLIENT_ETIMEOUT ? "nothing arrived for %d ms"
                                                      : "poll failed (%d ms)", c->timeout_ms);
            break;
        }
        ssize_t n = recv(fd, buf, RECV_BYTES, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            rc = set_error(c, TR_CLIENT_EIO, "receive failed: %s", strerror(errno));
            break;
        }
        int done = 0;
        rc = n == 0 ? tr_client_response_eof(r)
                    : tr_client_response_feed(r, buf, (size_t)n, &done);
        if (rc != 0 || done || n == 0) {
            if (rc != 0) snprintf(c->error, sizeof c->error, "%s", r->detail);
            break;
        }
    }
    c->http_status = r->status;
out:
    if (fd >= 0) close(fd);
    if (parser != NULL) c->fragments = tr_client_parser_fragments(parser);
    tr_client_parser_free(parser);
    free(r);
    free(buf);
    return rc;
}

static const char *const selector_types[] = {"NOW", "EARLIEST", "FRAGMENT_NUMBER",
                                             "CONTINUATION_TOKEN", "SERVER_TIMESTAMP",
                                             "PRODUCER_TIMESTAMP"};

int tr_client_get_media(tr_client *c, const char *stream, const tr_client_selector *sel,
                        const tr_client_callbacks *cb, void *ctx) {
    c->error[0] = '\0';
    if (stream == NULL || *stream == '\0' || sel == NULL || sel->type == NULL)
        return set_error(c, TR_CLIENT_EARG, "a stream and a start selector are needed");
    size_t t = 0;
    while (t < 6 && strcmp(sel->type, selector_types[t]) != 0) t++;
    if (t == 6) return set_error(c, TR_CLIENT_EARG, "unknown StartSelectorType %s", sel->type);
    jbuf b = {0};
    jraw(&b, "{");
    jstream(&b, stream);
    jraw(&b, ",\"StartSelector\":{\"StartSelectorType\":");
    jstr(&b, selector_types[t]);
    if (t == 2 || t == 3) {
        const char *v = t == 2 ? sel->after_fragment_number : sel->continuation_token;
        if (v == NULL) {
            free(b.d);
            return set_error(c, TR_CLIENT_EARG, "%s needs a value", selector_types[t]);
        }
        jraw(&b, t == 2 ? ",\"AfterFragmentNumber\":" : ",\"ContinuationToken\":");
        jstr(&b, v);
    } else if (t >= 4) {
        char ts[48];
        int64_t ms = sel->start_timestamp_ms;
        if (ms < 0) {
            free(b.d);
            return set_error(c, TR_CLIENT_EARG, "StartTimestamp before 1970");
        }
        snprintf(ts, sizeof ts, ",\"StartTimestamp\":%lld.%03d", (long long)(ms / 1000),
                 (int)(ms % 1000));
        jraw(&b, ts);
    }
    jraw(&b, "}}");
    int rc = post_media(c, "/getMedia", &b, cb, ctx);
    free(b.d);
    return rc;
}

int tr_client_get_media_for_fragment_list(tr_client *c, const char *stream,
                                          const char *const *fragments, size_t n,
                                          const tr_client_callbacks *cb, void *ctx) {
    c->error[0] = '\0';
    if (stream == NULL || *stream == '\0' || (n > 0 && fragments == NULL))
        return set_error(c, TR_CLIENT_EARG, "a stream and fragment numbers are needed");
    jbuf b = {0};
    jraw(&b, "{");
    jstream(&b, stream);
    jraw(&b, ",\"Fragments\":[");
    for (size_t i = 0; i < n; i++) {
        if (i) jraw(&b, ",");
        jstr(&b, fragments[i] ? fragments[i] : "");
    }
    jraw(&b, "]}");
    int rc = post_media(c, "/getMediaForFragmentList", &b, cb, ctx);
    free(b.d);
    return rc;
}
