#include "client/response.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

enum { R_HEAD, R_BODY, R_DONE, R_FAILED };

void tr_client_response_init(tr_client_response *r, tr_client_parser *parser) {
    memset(r, 0, sizeof *r);
    r->parser = parser;
    r->stage = R_HEAD;
    tr_chunked_init(&r->dechunk);
}

static int stop(tr_client_response *r, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int stop(tr_client_response *r, int rc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->detail, sizeof r->detail, fmt, ap);
    va_end(ap);
    r->stage = R_FAILED;
    r->rc = rc;
    return rc;
}

/* ---- the head ---- */

/* "HTTP/1.x NNN ..." */
static int status_line(const char *line, size_t n) {
    if (n < 12 || memcmp(line, "HTTP/1.", 7) != 0 || line[8] != ' ') return -1;
    int s = 0;
    for (int i = 9; i < 12; i++) {
        if (line[i] < '0' || line[i] > '9') return -1;
        s = s * 10 + (line[i] - '0');
    }
    if (n > 12 && line[12] != ' ') return -1;
    return s >= 100 ? s : -1;
}

static int header_is(const char *line, size_t n, const char *name, const char **value,
                     size_t *vlen) {
    size_t k = strlen(name);
    if (n <= k || line[k] != ':' || strncasecmp(line, name, k) != 0) return 0;
    const char *v = line + k + 1, *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t')) end--;
    *value = v;
    *vlen = (size_t)(end - v);
    return 1;
}

/* Reads the head in r->head[0..len) (ending with its blank line). */
static int parse_head(tr_client_response *r, size_t len) {
    const char *p = r->head, *end = r->head + len;
    int first = 1;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL) break;
        size_t n = (size_t)(nl - p);
        if (n > 0 && p[n - 1] == '\r') n--;
        const char *v;
        size_t vl;
        if (first) {
            if ((r->status = status_line(p, n)) < 0)
                return stop(r, TR_CLIENT_EIO, "not an HTTP/1.x status line");
            first = 0;
        } else if (header_is(p, n, "Transfer-Encoding", &v, &vl)) {
            /* Only "chunked" (last) is a coding this client reads. */
            if (vl >= 7 && strncasecmp(v + vl - 7, "chunked", 7) == 0) r->chunked = 1;
            else return stop(r, TR_CLIENT_EIO, "unsupported Transfer-Encoding");
        } else if (header_is(p, n, "Content-Length", &v, &vl)) {
            uint64_t x = 0;
            if (vl == 0 || vl > 18) return stop(r, TR_CLIENT_EIO, "bad Content-Length");
            for (size_t i = 0; i < vl; i++) {
                if (v[i] < '0' || v[i] > '9') return stop(r, TR_CLIENT_EIO, "bad Content-Length");
                x = x * 10 + (uint64_t)(v[i] - '0');
            }
            r->has_length = 1;
            r->content_length = x;
        }
        p = nl + 1;
    }
    if (first) return stop(r, TR_CLIENT_EIO, "empty answer head");
    if (r->chunked) r->has_length = 0; /* RFC 9112 6.3: chunked wins */
    return 0;
}

/* Head bytes from data; returns how many were used, or -1 after stop(). */
static long take_head(tr_client_response *r, const uint8_t *data, size_t len) {
    size_t used = 0;
    while (used < len) {
        if (r->head_len == TR_CLIENT_HEAD_MAX)
            return stop(r, TR_CLIENT_EIO, "answer head over %d bytes", TR_CLIENT_HEAD_MAX), -1;
        char c = (char)data[used++];
        r->head[r->head_len++] = c;
        size_t n = r->head_len;
        int blank = c == '\n' && ((n >= 2 && r->head[n - 2] == '\n') ||
                                  (n >= 3 && r->head[n - 2] == '\r' && r->head[n - 3] == '\n'));
        if (!blank) continue;
        if (parse_head(r, n) != 0) return -1;
        if (r->status < 200) { /* 1xx: an interim answer; the real one follows */
            r->head_len = 0;
            r->status = 0;
            r->chunked = r->has_length = 0;
            continue;
        }
        r->stage = R_BODY;
        return (long)used;
    }
    return (long)used;
}

/* ---- the body ---- */

/* What body_bytes returns when the parser stopped (its result is in body_rc): a value the
 * chunked decoder's own results cannot be mistaken for. */
#define BODY_STOPPED 2

static int body_bytes(void *ctx, const uint8_t *d, size_t n) {
    tr_client_response *r = ctx;
    r->body_bytes += n;
    if (r->status == 200) {
        r->body_rc = tr_client_parser_feed(r->parser, d, n);
        return r->body_rc != 0 ? BODY_STOPPED : 0;
    }
    size_t room = TR_CLIENT_ERROR_BODY_MAX - r->body_len;
    if (n > room) n = room;
    memcpy(r->body + r->body_len, d, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
    return 0;
}

/* The body is complete: the answer's result. */
static int complete(tr_client_response *r) {
    r->stage = R_DONE;
    if (r->status != 200) {
        snprintf(r->detail, sizeof r->detail, "HTTP %d: %.360s", r->status, r->body);
        r->rc = TR_CLIENT_EHTTP;
    } else {
        r->rc = tr_client_parser_finish(r->parser);
        if (r->rc != 0) snprintf(r->detail, sizeof r->detail, "%.300s",
                                  tr_client_parser_error_detail(r->parser));
    }
    return r->rc;
}

/* A body fed to the parser can fail on its own: record the parser's detail. */
static int body_failed(tr_client_response *r, int rc) {
    return stop(r, rc, "%s", rc > 0 ? "stopped by a callback"
                                    : tr_client_parser_error_detail(r->parser));
}

int tr_client_response_feed(tr_client_response *r, const uint8_t *data, size_t len, int *done) {
    *done = 0;
    if (r->stage == R_FAILED) return r->rc;
    if (r->stage == R_DONE) {
        *done = 1;
        return r->rc;
    }
    if (r->stage == R_HEAD) {
        long used = take_head(r, data, len);
        if (used < 0) return r->rc;
        data += used;
        len -= (size_t)used;
        if (r->stage == R_HEAD) return 0;
        if (!r->chunked && r->has_length && r->content_length == 0) {
            *done = 1;
            return complete(r);
        }
    }
    if (r->chunked) {
        size_t used = 0;
        int rc = tr_chunked_feed(&r->dechunk, data, len, &used, body_bytes, r);
        if (rc == TR_CHUNKED_BAD) return stop(r, TR_CLIENT_EIO, "malformed chunked coding");
        if (rc == TR_CHUNKED_DONE) {
            *done = 1;
            return complete(r);
        }
        if (rc == BODY_STOPPED) return body_failed(r, r->body_rc);
        return 0;
    }
    if (r->has_length && len > r->content_length - r->body_bytes)
        len = (size_t)(r->content_length - r->body_bytes);
    if (len > 0 && body_bytes(r, data, len) == BODY_STOPPED) return body_failed(r, r->body_rc);
    if (r->has_length && r->body_bytes == r->content_length) {
        *done = 1;
        return complete(r);
    }
    return 0;
}

int tr_client_response_eof(tr_client_response *r) {
    switch (r->stage) {
    case R_DONE:
    case R_FAILED: return r->rc;
    case R_HEAD:
        return stop(r, TR_CLIENT_EIO, r->head_len ? "the server closed the connection mid-head"
                                                  : "the server closed the connection without answering");
    default:
        if (!r->chunked && !r->has_length) return complete(r); /* delimited by the close */
        return stop(r, TR_CLIENT_EIO, "the server closed the connection mid-answer");
    }
}
