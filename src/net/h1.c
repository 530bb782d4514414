/* HTTP/1.1 uploads on the plain port, read by our own reader on the raw connection the
 * listener sniffed (a connection whose first request line is "POST /putMedia ").
 *
 * libwebsockets 4.1 gives a POST without Content-Length a body of 100 MiB and then reports it
 * complete, drops an upload after about 5 s without data, and keeps a transaction whose
 * answer ended early open until the body ends. A PutMedia is a chunked body of unbounded
 * length from producers that cannot change, with the acks streamed back on the same request
 * and an idle rule of its own (30 s), so such a connection stays a raw lws descriptor (lws
 * still owns the poll loop) and is spoken here, as h2.c speaks HTTP/2: the head is parsed by
 * net/h1.h, the request is an ordinary tr_req, the body goes through request.c (which
 * decodes the chunked coding), and the answer is framed here (chunked when streamed).
 *
 * One request per connection: every answer says "Connection: close". When the answer is
 * written the transaction ends at once, whether the body has ended or not (an ERROR ack, an
 * idle close, a refusal), and the connection closes lingering: shutdown(SHUT_WR), then input
 * is read and dropped until the peer closes or H1_LINGER_S pass, so that the client reads the
 * last acks instead of a reset.
 *
 * No body timeout here: the handler decides (PutMedia ends a quiet upload itself). A head must
 * come within the listener's sniff timeout; an answer the handler has ended must be read
 * within H1_STALL_S. Backpressure: while much of the answer waits for the socket, the body is
 * not read (lws rx flow control). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "net/h1.h"
#include "net/internal.h"
#include "util/log.h"

#define H1_READ_CHUNK (64 * 1024)
#define H1_READ_ROUNDS 16           /* reads per readable event: other connections get a turn */
#define H1_WBUF_HIGH (256 * 1024)   /* stop framing the answer into the write buffer here */
#define H1_OUT_HIGH (1024 * 1024)   /* stop reading the body while this much answer waits */
#define H1_OUT_LOW (256 * 1024)     /* ...and read again below this */
#define H1_PIECE (64 * 1024)        /* the largest chunk of a streamed answer */
#define H1_LINGER_S 3               /* after our FIN: how long the peer's input is drained */
#define H1_STALL_S 30               /* a whole answer the peer does not read: closed after this */

enum {
    H1_HEAD,    /* reading the request head */
    H1_BODY,    /* the request runs; its body is being read */
    H1_AFTER,   /* the body is read; the answer goes on (more input is dropped) */
    H1_LINGER,  /* the transaction is over: write what is queued, FIN, drain, close */
};

struct tr_h1_conn {
    tr_server *srv;
    struct lws *wsi;
    int fd;
    int state;
    tr_req *req;               /* H1_BODY and H1_AFTER: the request (the net layer's ref) */
    uint8_t *head;             /* H1_HEAD: the head so far (TR_H1_HEAD_MAX bytes) */
    size_t head_len;
    int chunked;               /* the body is chunked (request.c decodes it) */
    uint64_t body_left;        /* else: Content-Length bytes still to come */
    uint8_t *wbuf;             /* bytes for the socket: wbuf[woff .. wlen) */
    size_t woff, wlen, wcap;
    int in_recv;               /* inside on_readable: flush runs at its end */
    int in_flush;              /* inside flush: it picks up whatever is queued meanwhile */
    int in_writeable;          /* inside lws's WRITEABLE: lws clears POLLOUT after it */
    int drain_due;             /* the handler's on_drain is due */
    int rx_off;                /* reading is paused (lws rx flow control) */
    int peer_eof;              /* the peer's FIN came */
    int shut;                  /* our FIN went (shutdown(SHUT_WR)) */
    int stall_timer;           /* the answer is whole but not yet written: H1_STALL_S runs */
    int dead;                  /* close at the next chance, without lingering */
    lws_sorted_usec_list_t sul; /* asks for WRITEABLE again after a WRITEABLE callback */
};

static const char *reason(int status) {
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}

/* ---- output ---- */

static int wbuf_append(tr_h1_conn *c, const void *p, size_t n) {
    if (c->woff > 0 && c->woff == c->wlen) c->woff = c->wlen = 0;
    if (c->wlen + n > c->wcap) {
        if (c->woff > 0) {
            memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
            c->wlen -= c->woff;
            c->woff = 0;
        }
        size_t cap = c->wcap ? c->wcap : 4096;
        while (cap < c->wlen + n) cap *= 2;
        if (cap != c->wcap) {
            uint8_t *g = realloc(c->wbuf, cap);
            if (g == NULL) return -1;
            c->wbuf = g;
            c->wcap = cap;
        }
    }
    memcpy(c->wbuf + c->wlen, p, n);
    c->wlen += n;
    return 0;
}

static int wbuf_printf(tr_h1_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int wbuf_printf(tr_h1_conn *c, const char *fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line) return -1;
    return wbuf_append(c, line, (size_t)n);
}

/* Bytes of the answer not yet on the socket. */
static size_t queued(const tr_h1_conn *c) {
    return c->wlen - c->woff + (c->req != NULL ? tr_resp_pending(c->req) : 0);
}

/* A header line a handler gave: no CR, LF or NUL may reach the wire. */
static int header_safe(const char *s) { return strpbrk(s, "\r\n") == NULL; }

static int render_headers(tr_h1_conn *c, tr_req *req) {
    if (!header_safe(req->content_type)) snprintf(req->content_type, sizeof req->content_type,
                                                  "application/octet-stream");
    int rc = wbuf_printf(c, "HTTP/1.1 %d %s\r\nServer: Tributary\r\nContent-Type: %s\r\n",
                         req->status, reason(req->status), req->content_type);
    if (req->streaming) rc = rc || wbuf_printf(c, "Transfer-Encoding: chunked\r\n");
    else rc = rc || wbuf_printf(c, "Content-Length: %zu\r\n", tr_resp_pending(req));
    rc = rc || wbuf_printf(c, "x-amzn-RequestId: %s\r\nx-amz-id-2: %s\r\n", req->id, req->id2);
    for (tr_kv *kv = req->resp_headers; kv != NULL && !rc; kv = kv->next) {
        if (!header_safe(kv->name) || !header_safe(kv->value)) continue;
        rc = wbuf_append(c, kv->name, strlen(kv->name)) || wbuf_append(c, ": ", 2) ||
             wbuf_append(c, kv->value, strlen(kv->value)) || wbuf_append(c, "\r\n", 2);
    }
    return rc || wbuf_printf(c, "Connection: close\r\n\r\n") ? -1 : 0;
}

/* Frames the answer into the write buffer, up to H1_WBUF_HIGH. Returns 0 or -1. */
static int pump(tr_h1_conn *c) {
    tr_req *req = c->req;
    if (req == NULL) return 0;
    if (req->resp == RESP_QUEUED) {
        if (render_headers(c, req) != 0) return -1;
        req->resp = RESP_BODY;
    }
    if (req->resp != RESP_BODY) return 0;
    while (c->wlen - c->woff < H1_WBUF_HIGH) {
        size_t n = tr_resp_pending(req);
        if (n == 0) {
            if (req->streaming && !req->ended) break;
            if (req->streaming && wbuf_append(c, "0\r\n\r\n", 5) != 0) return -1;
            req->resp = RESP_DONE;
            break;
        }
        if (n > H1_PIECE) n = H1_PIECE;
        if (req->streaming && wbuf_printf(c, "%zx\r\n", n) != 0) return -1;
        if (wbuf_append(c, req->out + req->out_off, n) != 0) return -1;
        if (req->streaming && wbuf_append(c, "\r\n", 2) != 0) return -1;
        req->out_off += n;
        if (req->streaming && !req->ended && req->handler->on_drain != NULL &&
            tr_resp_pending(req) < TR_DRAIN_LOW_WATER)
            c->drain_due = 1;
    }
    return 0;
}

static void rearm(lws_sorted_usec_list_t *sul) {
    tr_h1_conn *c = lws_container_of(sul, tr_h1_conn, sul);
    lws_callback_on_writable(c->wsi);
}

/* The socket is full: write again when it drains. lws clears POLLOUT after a WRITEABLE
 * callback, so from inside one the request waits for the next loop turn. */
static void want_writable(tr_h1_conn *c) {
    if (c->in_writeable)
        lws_sul_schedule(lws_get_context(c->wsi), 0, &c->sul, rearm, 1);
    else
        lws_callback_on_writable(c->wsi);
}

/* Pauses reading while much of the answer waits (the peer does not read its acks), and after
 * the peer's FIN; reads again otherwise (lingering drains input). */
static void update_rx(tr_h1_conn *c) {
    int off = c->peer_eof;
    if (!off && c->state == H1_BODY && c->req != NULL && c->req->body_paused) off = 1;
    if (!off && c->state == H1_BODY) off = queued(c) > (c->rx_off ? H1_OUT_LOW : H1_OUT_HIGH);
    if (off == c->rx_off) return;
    c->rx_off = off;
    lws_rx_flow_control(c->wsi, !off);
}

/* The answer is written: the transaction ends (on_close, metrics) and the connection closes
 * lingering, whether or not the body was read to its end. */
static void end_transaction(tr_h1_conn *c) {
    tr_req_detach(c->req); /* clears c->req */
    c->state = H1_LINGER;
}

/* Frames and writes while the socket takes it; ends the transaction once the answer is out,
 * and begins the lingering close. Returns 0, or -1 to close now. */
static int flush(tr_h1_conn *c) {
    if (c->dead) return -1;
    c->in_flush = 1;
    int rc = 0;
    for (;;) {
        if (pump(c) != 0) {
            rc = -1;
            break;
        }
        if (c->drain_due) {
            c->drain_due = 0;
            tr_req *req = c->req;
            tr_req_ref(req);
            req->handler->on_drain(req, req->ctx);
            tr_req_unref(req);
            continue;
        }
        if (c->wlen == c->woff) break;
        ssize_t w = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                want_writable(c);
                break;
            }
            rc = -1; /* the peer is gone */
            break;
        }
        c->woff += (size_t)w;
    }
    c->in_flush = 0;
    if (rc != 0 || c->dead) return -1;
    tr_req *req = c->req;
    if (req != NULL && c->wlen != c->woff && !c->stall_timer && req->resp != RESP_NONE &&
        (!req->streaming || req->ended)) {
        /* The handler is done but the peer does not read (nor send: the body is paused or
         * over): give it a while, then close, so that the transaction cannot hang forever. */
        c->stall_timer = 1;
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, H1_STALL_S);
    }
    if (c->wlen == c->woff) {
        if (req != NULL && req->resp == RESP_DONE) end_transaction(c);
        if (c->state == H1_LINGER) {
            if (c->peer_eof) return -1; /* nothing left to read: a clean close */
            if (!c->shut) {
                c->shut = 1;
                shutdown(c->fd, SHUT_WR);
                lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, H1_LINGER_S);
            }
        }
    }
    update_rx(c);
    return 0;
}

/* ---- input ---- */

/* A head we cannot serve: a plain error answer, then the lingering close. */
static void refuse(tr_h1_conn *c, int status) {
    const char *type = status == 431   ? "RequestHeaderFieldsTooLarge"
                       : status == 505 ? "HttpVersionNotSupported"
                       : status == 501 ? "NotImplemented"
                       : status == 500 ? "InternalFailure"
                                       : "SerializationException";
    const char *msg = status == 431   ? "The request head is too large"
                      : status == 505 ? "Only HTTP/1.0 and HTTP/1.1 are served"
                      : status == 501 ? "Only the chunked transfer coding is supported"
                      : status == 500 ? "Out of memory"
                                      : "Malformed HTTP/1.1 request";
    char id[TR_UUID_LEN + 1] = "";
    tr_reqid_uuid4(id);
    char body[256];
    int n = snprintf(body, sizeof body, "{\"__type\":\"%s\",\"message\":\"%s\"}", type, msg);
    tr_debug("msg=\"HTTP/1.1 request refused\" status=%d type=%s", status, type);
    if (wbuf_printf(c, "HTTP/1.1 %d %s\r\nServer: Tributary\r\n"
                    "Content-Type: application/x-amz-json-1.1\r\nContent-Length: %d\r\n"
                    "x-amzn-RequestId: %s\r\nx-amzn-ErrorType: %s\r\nConnection: close\r\n\r\n",
                    status, reason(status), n, id, type) != 0 ||
        wbuf_append(c, body, (size_t)n) != 0)
        c->dead = 1;
    free(c->head);
    c->head = NULL;
    c->state = H1_LINGER;
}

/* Content-Length: digits only (a repeated header was joined with ", ": refused). */
static int parse_length(const char *s, uint64_t *out) {
    uint64_t v = 0;
    if (*s == '\0') return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10) return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return 0;
}

/* The head is in: the request starts (routing, on_headers). Takes the head's contents. */
static void start_request(tr_h1_conn *c, tr_h1_head *h) {
    const char *te = tr_h1_head_header(h, "transfer-encoding");
    const char *cl = tr_h1_head_header(h, "content-length");
    const char *ex = tr_h1_head_header(h, "expect");
    int status = 0;
    uint64_t clen = 0;
    if (te != NULL) {
        /* Both framings at once is how requests are smuggled (RFC 9112 6.1): refused. */
        if (cl != NULL || h->minor == 0) status = 400;
        else if (strcasecmp(te, "chunked") != 0) status = 501;
    } else if (cl != NULL && parse_length(cl, &clen) != 0) {
        status = 400;
    }
    int chunked = te != NULL;
    int expect = ex != NULL && strcasecmp(ex, "100-continue") == 0;
    tr_req *req = status ? NULL
                         : tr_req_create_h1(c->srv, c->wsi, c, h->method, h->target, &h->hdrs);
    tr_h1_head_free(h);
    if (req == NULL) {
        refuse(c, status ? status : 500);
        return;
    }
    c->req = req;
    c->chunked = chunked;
    c->body_left = clen;
    c->state = H1_BODY;
    lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0); /* the sniff timeout: the head is in */
    tr_req_ref(req);
    if (tr_req_begin(req) != 0) {
        c->dead = 1;
    } else if (c->req == req) {
        /* A client waiting for "100 Continue" gets it, unless the whole answer is already
         * decided (a refusal): then it need not send the body at all. */
        if (expect && !req->body_done && (req->resp == RESP_NONE || req->streaming) &&
            wbuf_printf(c, "HTTP/1.1 100 Continue\r\n\r\n") != 0)
            c->dead = 1;
        if (req->body_done) c->state = H1_AFTER;
    }
    tr_req_unref(req);
}

static void feed_body(tr_h1_conn *c, const uint8_t *data, size_t n) {
    tr_req *req = c->req;
    int rc;
    if (c->chunked) {
        rc = tr_req_on_body(req, data, n); /* decodes, and completes the body at its end */
    } else {
        size_t m = n < c->body_left ? n : (size_t)c->body_left;
        rc = tr_req_on_body(req, data, m);
        c->body_left -= m;
        if (rc == 0 && c->body_left == 0) tr_req_body_complete(req);
    }
    if (rc != 0) {
        c->dead = 1;
        return;
    }
    if (!req->body_done) return;
    c->state = H1_AFTER; /* what follows the body (a pipelined request) is dropped */
    /* A malformed chunked body under an answer already streaming: the handler cannot hear
     * of the body's end, and the connection's framing is lost. */
    if (!req->dispatched && req->streaming && !req->ended) c->dead = 1;
}

/* Bytes from the socket, by state. */
static void consume(tr_h1_conn *c, const uint8_t *data, size_t n) {
    if (c->state == H1_HEAD) {
        if (c->head == NULL && (c->head = malloc(TR_H1_HEAD_MAX)) == NULL) {
            c->dead = 1;
            return;
        }
        size_t take = TR_H1_HEAD_MAX - c->head_len;
        if (take > n) take = n;
        memcpy(c->head + c->head_len, data, take);
        c->head_len += take;
        tr_h1_head h;
        int r = tr_h1_parse_head(c->head, c->head_len, &h);
        if (r == 0) return; /* all taken: the head buffer is not full yet */
        if (r < 0) {
            refuse(c, -r);
            return;
        }
        /* The body's first bytes may have come with the head. */
        uint8_t *head = c->head;
        size_t extra = c->head_len - (size_t)r;
        c->head = NULL;
        start_request(c, &h);
        if (c->state == H1_BODY && !c->dead && extra > 0) feed_body(c, head + r, extra);
        free(head);
        data += take;
        n -= take;
    }
    if (c->state == H1_BODY && !c->dead && n > 0) feed_body(c, data, n);
}

/* ---- the connection ---- */

int tr_h1_start(tr_server *s, struct lws *wsi) {
    tr_h1_conn *c = calloc(1, sizeof *c);
    if (c == NULL) return -1;
    c->srv = s;
    c->wsi = wsi;
    c->fd = (int)lws_get_socket_fd(wsi);
    c->state = H1_HEAD;
    lws_set_wsi_user(wsi, c);
    return 0;
}

tr_h1_conn *tr_h1_of(struct lws *wsi) { return lws_wsi_user(wsi); }

int tr_h1_on_readable(tr_h1_conn *c) {
    uint8_t buf[H1_READ_CHUNK];
    for (int rounds = 0; rounds < H1_READ_ROUNDS && !c->rx_off; rounds++) {
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            return -1; /* a reset: the request (if any) dies in tr_h1_on_close */
        }
        if (n == 0) {
            /* The peer is done sending. Before the body's end that cuts the request short;
             * after it the answer still goes out (a half-closed client reads it). */
            if (c->state == H1_HEAD || c->state == H1_BODY) return -1;
            c->peer_eof = 1;
            break;
        }
        if (c->state == H1_AFTER || c->state == H1_LINGER) continue; /* dropped */
        tr_req *req = c->req;
        if (req != NULL) tr_req_ref(req);
        c->in_recv = 1;
        consume(c, buf, (size_t)n);
        c->in_recv = 0;
        if (req != NULL) tr_req_unref(req);
        if (c->dead) return -1;
        if (c->req != NULL && c->req->body_paused) break; /* flush pauses reading */
        if ((size_t)n < sizeof buf) break;
    }
    return flush(c);
}

int tr_h1_on_writeable(tr_h1_conn *c) {
    c->in_writeable = 1;
    int rc = flush(c);
    c->in_writeable = 0;
    return rc;
}

void tr_h1_resume(tr_req *req) {
    tr_h1_conn *c = req->h1c;
    if (c == NULL || c->in_recv || c->in_flush) return; /* they flush when they finish */
    lws_callback_on_writable(c->wsi);
}

void tr_h1_pause_body(tr_req *req) {
    tr_h1_conn *c = req->h1c;
    if (c == NULL || c->in_recv || c->in_flush) return; /* they update reading at their end */
    update_rx(c);
}

void tr_h1_unlink(tr_req *req) {
    if (req->h1c != NULL && req->h1c->req == req) req->h1c->req = NULL;
    req->h1c = NULL;
}

void tr_h1_on_close(tr_h1_conn *c) {
    lws_sul_cancel(&c->sul);
    lws_set_wsi_user(c->wsi, NULL);
    if (c->req != NULL) tr_req_detach(c->req);
    free(c->head);
    free(c->wbuf);
    free(c);
}
