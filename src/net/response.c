/* The response side of a request: handlers queue an answer (tr_resp_*), and the WRITEABLE
 * callback pumps it out one lws_write at a time, which HTTP/2 requires and which keeps one
 * big body from hogging the loop. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/internal.h"
#include "util/error.h"

/* Room for LWS_PRE, a chunk-size line, one piece and its CRLF. */
static unsigned char scratch[LWS_PRE + 32 + TR_WRITE_WHOLE + 2];

void tr_kv_free_all(tr_kv *kv) {
    while (kv != NULL) {
        tr_kv *next = kv->next;
        free(kv->name);
        free(kv->value);
        free(kv);
        kv = next;
    }
}

/* Appends to the output queue, compacting or growing it. Returns 0 or TR_ENOMEM. */
static int out_append(tr_req *req, const void *data, size_t len) {
    if (len == 0) return 0;
    if (req->out_off > 0 && req->out_off == req->out_len) req->out_off = req->out_len = 0;
    if (req->out_len + len > req->out_cap) {
        if (req->out_off > 0) { /* reclaim written bytes before growing */
            memmove(req->out, req->out + req->out_off, req->out_len - req->out_off);
            req->out_len -= req->out_off;
            req->out_off = 0;
        }
        size_t cap = req->out_cap ? req->out_cap : 1024;
        while (cap < req->out_len + len) cap *= 2;
        if (cap != req->out_cap) {
            uint8_t *grown = realloc(req->out, cap);
            if (grown == NULL) return TR_ENOMEM;
            req->out = grown;
            req->out_cap = cap;
        }
    }
    memcpy(req->out + req->out_len, data, len);
    req->out_len += len;
    return 0;
}

static int answerable(const tr_req *req) { return req->wsi != NULL && req->resp == RESP_NONE; }

int tr_resp_header(tr_req *req, const char *name, const char *value) {
    if (!answerable(req)) return -1;
    tr_kv *kv = calloc(1, sizeof *kv);
    if (kv == NULL) return -1;
    kv->name = strdup(name);
    kv->value = strdup(value);
    if (kv->name == NULL || kv->value == NULL) {
        tr_kv_free_all(kv);
        return -1;
    }
    tr_kv **tail = &req->resp_headers; /* keep insertion order */
    while (*tail != NULL) tail = &(*tail)->next;
    *tail = kv;
    return 0;
}

static void set_answer(tr_req *req, int status, const char *content_type) {
    req->status = status;
    snprintf(req->content_type, sizeof req->content_type, "%s",
             content_type ? content_type : "application/octet-stream");
    req->resp = RESP_QUEUED;
    if (req->h2s != NULL) tr_h2_submit(req);
    else if (req->h1c != NULL) tr_h1_resume(req);
    else lws_callback_on_writable(req->wsi);
}

int tr_resp_send(tr_req *req, int status, const char *content_type, const void *body,
                 size_t len) {
    if (!answerable(req)) return -1;
    if (out_append(req, body, len) != 0) {
        req->close_after = 1;
        status = 500;
        snprintf(req->err_type, sizeof req->err_type, "InternalFailure");
    }
    set_answer(req, status, content_type);
    return 0;
}

void tr_resp_set_error_type(tr_req *req, const char *type) {
    snprintf(req->err_type, sizeof req->err_type, "%s", type);
}

/* JSON string escaping for error messages (quotes, backslashes, control characters). */
static size_t json_escape(const char *s, char *out, size_t cap) {
    size_t n = 0;
    for (; *s != '\0' && n + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)snprintf(out + n, cap - n, "\\u%04x", c);
        } else {
            out[n++] = (char)c;
        }
    }
    out[n] = '\0';
    return n;
}

int tr_resp_error(tr_req *req, int status, const char *type, const char *message) {
    if (!answerable(req)) return -1;
    char msg[1024], body[1400];
    json_escape(message, msg, sizeof msg);
    int n = snprintf(body, sizeof body, "{\"__type\":\"%s\",\"message\":\"%s\"}", type, msg);
    tr_resp_set_error_type(req, type);
    return tr_resp_send(req, status, "application/x-amz-json-1.1", body, (size_t)n);
}

int tr_resp_start(tr_req *req, int status, const char *content_type) {
    if (!answerable(req)) return -1;
    req->streaming = 1;
    set_answer(req, status, content_type);
    return 0;
}

int tr_resp_write(tr_req *req, const void *data, size_t len) {
    if (req->wsi == NULL || !req->streaming || req->ended) return -1;
    if (out_append(req, data, len) != 0) return -1;
    if (req->h2s != NULL) tr_h2_resume(req);
    else if (req->h1c != NULL) tr_h1_resume(req);
    else lws_callback_on_writable(req->wsi);
    return 0;
}

int tr_resp_end(tr_req *req) {
    if (req->wsi == NULL || !req->streaming || req->ended) return -1;
    req->ended = 1;
    if (req->h2s != NULL) tr_h2_resume(req);
    else if (req->h1c != NULL) tr_h1_resume(req);
    else lws_callback_on_writable(req->wsi);
    return 0;
}

size_t tr_resp_pending(const tr_req *req) { return req->out_len - req->out_off; }

/* ---- writing ---- */

static int add_header(tr_req *req, const char *name, const char *value, unsigned char **p,
                      unsigned char *end) {
    char lname[128];
    size_t n = strlen(name);
    if (n + 2 > sizeof lname) return -1;
    /* HTTP/2 demands lowercase names; HTTP/1.1 keeps AWS's spelling (x-amzn-RequestId). */
    for (size_t i = 0; i < n; i++)
        lname[i] = req->h2 ? (char)tolower((unsigned char)name[i]) : name[i];
    lname[n] = ':';
    lname[n + 1] = '\0';
    return lws_add_http_header_by_name(req->wsi, (const unsigned char *)lname,
                                       (const unsigned char *)value, (int)strlen(value), p, end);
}

static int write_headers(tr_req *req) {
    size_t need = LWS_PRE + 1024 + sizeof req->content_type;
    for (tr_kv *kv = req->resp_headers; kv != NULL; kv = kv->next)
        need += strlen(kv->name) + strlen(kv->value) + 8;
    unsigned char *buf = malloc(need);
    if (buf == NULL) return -1;
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + need - 1;
    lws_filepos_t clen = req->streaming ? LWS_ILLEGAL_HTTP_CONTENT_LEN
                                        : (lws_filepos_t)(req->out_len - req->out_off);
    int rc = lws_add_http_common_headers(req->wsi, (unsigned int)req->status, req->content_type,
                                         clen, &p, end);
    rc = rc || add_header(req, "x-amzn-RequestId", req->id, &p, end);
    rc = rc || add_header(req, "x-amz-id-2", req->id2, &p, end);
    for (tr_kv *kv = req->resp_headers; kv != NULL && !rc; kv = kv->next)
        rc = add_header(req, kv->name, kv->value, &p, end);
    if (!req->h2 && req->streaming) rc = rc || add_header(req, "transfer-encoding", "chunked", &p, end);
    if (!req->h2 && req->close_after) rc = rc || add_header(req, "connection", "close", &p, end);
    rc = rc || lws_finalize_write_http_header(req->wsi, start, &p, end);
    free(buf);
    return rc ? -1 : 0;
}

/* Writes up to one chunk of queued body. *final says the write carried the end of the
 * response. Returns 0 or -1. */
static int write_piece(tr_req *req, int *final) {
    size_t n = req->out_len - req->out_off;
    size_t most = req->streaming || req->h2 ? TR_WRITE_CHUNK : TR_WRITE_WHOLE;
    if (n > most) n = most;
    lws_fileofs_t allow = lws_get_peer_write_allowance(req->wsi);
    if (allow == 0) return 0; /* h2 flow-control window closed: lws calls back on update */
    if (allow > 0 && (lws_fileofs_t)n > allow) n = (size_t)allow;
    unsigned char *start = scratch + LWS_PRE;
    size_t len = 0;
    if (req->streaming && !req->h2) len = (size_t)sprintf((char *)start, "%zx\r\n", n);
    memcpy(start + len, req->out + req->out_off, n);
    len += n;
    if (req->streaming && !req->h2) {
        memcpy(start + len, "\r\n", 2);
        len += 2;
    }
    *final = !req->streaming && req->out_off + n == req->out_len;
    int w = lws_write(req->wsi, start, len, *final ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP);
    if (w < (int)len) return -1;
    req->out_off += n;
    return 0;
}

/* Ends a stream with no more body: the last chunk on HTTP/1.1, END_STREAM on HTTP/2. */
static int write_end(tr_req *req) {
    unsigned char *start = scratch + LWS_PRE;
    size_t len = 0;
    if (req->streaming && !req->h2) {
        memcpy(start, "0\r\n\r\n", 5);
        len = 5;
    } else if (!req->h2) {
        return 0; /* HTTP/1.1 with Content-Length: 0 has nothing left to send */
    }
    return lws_write(req->wsi, start, len, LWS_WRITE_HTTP_FINAL) < (int)len ? -1 : 0;
}

int tr_resp_write_now(tr_req *req) {
    if (req->resp != RESP_QUEUED || req->streaming || req->h2s != NULL || req->wsi == NULL)
        return -1;
    if (write_headers(req) != 0) return -1;
    req->resp = RESP_BODY;
    int final = 0;
    while (req->out_off < req->out_len)
        if (write_piece(req, &final) != 0) return -1;
    req->resp = RESP_DONE;
    return 0;
}

/* The answer is written: end the transaction once the request body is also read. */
static int complete(tr_req *req) {
    struct lws *wsi = req->wsi;
    if (req->close_after) {
        tr_req_detach(req);
        return -1;
    }
    if (!req->body_done) return 0; /* tr_req_body_complete asks for WRITEABLE again */
    tr_req_detach(req);
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static void maybe_drain(tr_req *req) {
    if (!req->streaming || req->ended || req->handler->on_drain == NULL) return;
    if (tr_resp_pending(req) >= TR_DRAIN_LOW_WATER) return;
    req->handler->on_drain(req, req->ctx);
}

static int pump_body(tr_req *req) {
    int final = 0;
    if (tr_resp_pending(req) > 0) {
        if (write_piece(req, &final) != 0) return -1;
    } else if (!req->streaming || req->ended) {
        if (write_end(req) != 0) return -1;
        final = 1;
    } else {
        return 0; /* an open stream with nothing queued: tr_resp_write wakes us */
    }
    if (final) {
        req->resp = RESP_DONE;
        return complete(req);
    }
    tr_req_ref(req);
    maybe_drain(req);
    struct lws *wsi = req->wsi; /* NULL if on_drain's work killed the request */
    tr_req_unref(req);
    if (wsi != NULL) lws_callback_on_writable(wsi);
    return 0;
}

int tr_resp_on_writeable(tr_req *req) {
    switch (req->resp) {
    case RESP_NONE:
        return 0;
    case RESP_QUEUED:
        if (write_headers(req) != 0) return -1;
        req->resp = RESP_BODY;
        lws_callback_on_writable(req->wsi);
        return 0;
    case RESP_BODY:
        return pump_body(req);
    case RESP_DONE:
        return complete(req);
    }
    return 0;
}
