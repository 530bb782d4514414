/* HTTP/2 on the plain port, spoken with nghttp2 on the raw connection the listener sniffed.
 *
 * libwebsockets (4.1 and later) drops the values of request headers it has no token for on
 * HTTP/2 (custom headers work on HTTP/1.1 only), and X-Amz-Target is such a header: every
 * Kinesis call from the AWS SDK for JavaScript v3, which speaks HTTP/2, would be unroutable.
 * So an h2 connection stays a raw lws descriptor (lws still owns the poll loop) and nghttp2
 * parses and frames; each stream becomes an ordinary tr_req, and the request and response
 * code in request.c/response.c takes the h2 branches below instead of lws_write.
 *
 * Writes are batched: frames nghttp2 produces are gathered into one buffer and written with
 * one send() while the socket takes them; the rest waits for WRITEABLE. */
#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "net/internal.h"
#include "util/log.h"

#define H2_MAX_STREAMS 256
#define H2_STREAM_WINDOW (1 << 20)    /* per-stream receive window: one large record */
#define H2_CONN_WINDOW (16 << 20)     /* connection receive window */
#define H2_WBUF_HIGH (256 * 1024)     /* stop gathering frames past this */
#define H2_READ_CHUNK (64 * 1024)

struct tr_h2_stream {
    tr_h2_conn *conn;
    tr_h2_stream *next, *prev;  /* the connection's open streams */
    int32_t id;
    tr_kv *hdrs;                /* request headers, lowercase names, "host" for :authority */
    char *method, *path;        /* :method, :path */
    tr_req *req;                /* NULL before the headers are complete and after detach */
    int submitted;              /* response HEADERS submitted */
    int deferred;               /* the data provider waits for tr_resp_write/end */
    int drain_due;              /* call the handler's on_drain after this send */
    int end_sent;               /* END_STREAM went out */
    size_t unconsumed;          /* DATA bytes read while the body is paused: their window is
                                 * given back when it resumes (or the stream ends) */
};

struct tr_h2_conn {
    tr_server *srv;
    struct lws *wsi;
    int fd;
    nghttp2_session *ng;
    tr_h2_stream *streams;
    uint8_t *wbuf;
    size_t woff, wlen, wcap;
    int in_recv;    /* inside nghttp2_session_mem_recv: no sending from here */
    int dead;       /* a fatal error: close at the next chance */
};

static void stream_free(tr_h2_stream *st) {
    tr_kv_free_all(st->hdrs);
    free(st->method);
    free(st->path);
    free(st);
}

static void stream_unlink(tr_h2_stream *st) {
    tr_h2_conn *c = st->conn;
    if (st->prev != NULL) st->prev->next = st->next;
    else c->streams = st->next;
    if (st->next != NULL) st->next->prev = st->prev;
    st->next = st->prev = NULL;
}

/* The request dies with its stream (peer reset, connection closed, or fully answered). */
/* Gives the window of the DATA held back while paused back to the peer. */
static void release_window(tr_h2_stream *st, int stream_open) {
    if (st->unconsumed == 0) return;
    if (stream_open)
        nghttp2_session_consume(st->conn->ng, st->id, st->unconsumed);
    else
        nghttp2_session_consume_connection(st->conn->ng, st->unconsumed);
    st->unconsumed = 0;
}

static void stream_end(tr_h2_stream *st) {
    release_window(st, 0);
    stream_unlink(st);
    tr_req *req = st->req;
    st->req = NULL;
    if (req != NULL) {
        req->h2s = NULL;
        tr_req_detach(req);
    }
    stream_free(st);
}

/* ---- output ---- */

static int wbuf_append(tr_h2_conn *c, const uint8_t *p, size_t n) {
    if (c->woff > 0 && c->woff == c->wlen) c->woff = c->wlen = 0;
    if (c->wlen + n > c->wcap) {
        if (c->woff > 0) {
            memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
            c->wlen -= c->woff;
            c->woff = 0;
        }
        size_t cap = c->wcap ? c->wcap : 16384;
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

/* Runs the on_drain of streams whose queued output fell low during the last send. */
static void run_drains(tr_h2_conn *c) {
    for (;;) {
        tr_h2_stream *st = c->streams;
        while (st != NULL && !st->drain_due) st = st->next;
        if (st == NULL) return;
        st->drain_due = 0;
        tr_req *req = st->req;
        if (req == NULL || req->handler == NULL || req->handler->on_drain == NULL) continue;
        tr_req_ref(req);
        req->handler->on_drain(req, req->ctx);
        tr_req_unref(req);
    }
}

/* Produces and writes frames while the socket takes them. Returns 0, or -1 to close. */
static int flush(tr_h2_conn *c) {
    if (c->dead) return -1;
    for (;;) {
        while (c->wlen - c->woff < H2_WBUF_HIGH) {
            const uint8_t *data;
            ssize_t n = nghttp2_session_mem_send(c->ng, &data);
            if (n < 0) return -1;
            if (n == 0) break;
            if (wbuf_append(c, data, (size_t)n) != 0) return -1;
        }
        run_drains(c);
        if (c->wlen == c->woff) {
            if (nghttp2_session_want_write(c->ng)) continue; /* on_drain queued more */
            break;
        }
        ssize_t w = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                lws_callback_on_writable(c->wsi);
                return 0;
            }
            return -1;
        }
        c->woff += (size_t)w;
    }
    if (!nghttp2_session_want_read(c->ng) && !nghttp2_session_want_write(c->ng)) return -1;
    return 0;
}

/* Something new to send, possibly from inside an nghttp2 callback or a handler: send on the
 * next WRITEABLE (after the current receive finishes, flush runs anyway). */
static void want_send(tr_h2_conn *c) {
    if (!c->in_recv) lws_callback_on_writable(c->wsi);
}

static ssize_t data_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
                         uint32_t *flags, nghttp2_data_source *src, void *user) {
    (void)ng;
    (void)id;
    (void)user;
    tr_h2_stream *st = src->ptr;
    tr_req *req = st->req;
    if (req == NULL) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        return 0;
    }
    size_t n = req->out_len - req->out_off;
    if (n > len) n = len;
    if (n > 0) memcpy(buf, req->out + req->out_off, n);
    req->out_off += n;
    if (req->out_off == req->out_len && (!req->streaming || req->ended)) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        req->resp = RESP_DONE;
        return (ssize_t)n;
    }
    if (n == 0) {
        st->deferred = 1;
        return NGHTTP2_ERR_DEFERRED;
    }
    if (req->streaming && !req->ended && req->handler->on_drain != NULL &&
        tr_resp_pending(req) < TR_DRAIN_LOW_WATER)
        st->drain_due = 1;
    return (ssize_t)n;
}

static void add_nv(nghttp2_nv *nv, size_t *n, const char *name, const char *value) {
    nv[*n] = (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value),
                          NGHTTP2_NV_FLAG_NONE};
    (*n)++;
}

/* ---- the request side's hooks (request.c, response.c) ---- */

void tr_h2_submit(tr_req *req) {
    tr_h2_stream *st = req->h2s;
    if (st == NULL || st->submitted) return;
    st->submitted = 1;
    size_t count = 8;
    for (tr_kv *kv = req->resp_headers; kv != NULL; kv = kv->next) count++;
    nghttp2_nv *nv = calloc(count, sizeof *nv);
    char **lower = calloc(count, sizeof *lower);
    char status[8], clen[24];
    if (nv == NULL || lower == NULL) {
        free(nv);
        free(lower);
        nghttp2_submit_rst_stream(st->conn->ng, NGHTTP2_FLAG_NONE, st->id,
                                  NGHTTP2_INTERNAL_ERROR);
        want_send(st->conn);
        return;
    }
    size_t n = 0, nl = 0;
    snprintf(status, sizeof status, "%d", req->status);
    add_nv(nv, &n, ":status", status);
    add_nv(nv, &n, "content-type", req->content_type);
    if (!req->streaming) {
        snprintf(clen, sizeof clen, "%zu", req->out_len - req->out_off);
        add_nv(nv, &n, "content-length", clen);
    }
    add_nv(nv, &n, "x-amzn-requestid", req->id);
    add_nv(nv, &n, "x-amz-id-2", req->id2);
    add_nv(nv, &n, "server", "Tributary");
    for (tr_kv *kv = req->resp_headers; kv != NULL; kv = kv->next) {
        char *l = strdup(kv->name);
        if (l == NULL) continue;
        for (char *p = l; *p; p++) *p = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
        lower[nl++] = l;
        add_nv(nv, &n, l, kv->value);
    }
    nghttp2_data_provider dp = {.source.ptr = st, .read_callback = data_read};
    req->resp = RESP_BODY;
    if (nghttp2_submit_response(st->conn->ng, st->id, nv, n, &dp) != 0)
        nghttp2_submit_rst_stream(st->conn->ng, NGHTTP2_FLAG_NONE, st->id,
                                  NGHTTP2_INTERNAL_ERROR);
    for (size_t i = 0; i < nl; i++) free(lower[i]);
    free(lower);
    free(nv);
    want_send(st->conn);
}

void tr_h2_resume(tr_req *req) {
    tr_h2_stream *st = req->h2s;
    if (st == NULL || !st->submitted) return;
    if (st->deferred) {
        st->deferred = 0;
        nghttp2_session_resume_data(st->conn->ng, st->id);
    }
    want_send(st->conn);
}

void tr_h2_unlink(tr_req *req) {
    tr_h2_stream *st = req->h2s;
    req->h2s = NULL;
    if (st == NULL) return;
    st->req = NULL;
    if (st->unconsumed > 0) {
        release_window(st, 1);
        want_send(st->conn);
    }
}

void tr_h2_pause_body(tr_req *req) {
    tr_h2_stream *st = req->h2s;
    if (st == NULL || req->body_paused || st->unconsumed == 0) return;
    release_window(st, 1); /* resumed: the WINDOW_UPDATE lets the peer send again */
    want_send(st->conn);
}

/* ---- nghttp2 callbacks ---- */

static tr_h2_stream *stream_of(tr_h2_conn *c, int32_t id) {
    return nghttp2_session_get_stream_user_data(c->ng, id);
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *user) {
    tr_h2_conn *c = user;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    tr_h2_stream *st = calloc(1, sizeof *st);
    if (st == NULL) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    st->conn = c;
    st->id = f->hd.stream_id;
    st->next = c->streams;
    if (c->streams != NULL) c->streams->prev = st;
    c->streams = st;
    nghttp2_session_set_stream_user_data(ng, st->id, st);
    return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user) {
    (void)ng;
    (void)flags;
    tr_h2_conn *c = user;
    if (f->hd.type != NGHTTP2_HEADERS) return 0;
    tr_h2_stream *st = stream_of(c, f->hd.stream_id);
    if (st == NULL || st->req != NULL) return 0; /* trailers: ignored */
    if (namelen == 7 && memcmp(name, ":method", 7) == 0) {
        free(st->method);
        st->method = strndup((const char *)value, valuelen);
        return 0;
    }
    if (namelen == 5 && memcmp(name, ":path", 5) == 0) {
        free(st->path);
        st->path = strndup((const char *)value, valuelen);
        return 0;
    }
    const char *n = (const char *)name;
    if (namelen == 10 && memcmp(name, ":authority", 10) == 0) {
        n = "host";
        namelen = 4;
    } else if (namelen > 0 && name[0] == ':') {
        return 0; /* :scheme and the like */
    }
    /* A repeated header is joined with ", " as HTTP/1.1 would fold it. */
    for (tr_kv *kv = st->hdrs; kv != NULL; kv = kv->next) {
        if (strlen(kv->name) == namelen && memcmp(kv->name, n, namelen) == 0) {
            size_t old = strlen(kv->value);
            char *v = realloc(kv->value, old + 2 + valuelen + 1);
            if (v == NULL) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
            memcpy(v + old, ", ", 2);
            memcpy(v + old + 2, value, valuelen);
            v[old + 2 + valuelen] = '\0';
            kv->value = v;
            return 0;
        }
    }
    tr_kv *kv = calloc(1, sizeof *kv);
    if (kv == NULL) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    kv->name = strndup(n, namelen);
    kv->value = strndup((const char *)value, valuelen);
    if (kv->name == NULL || kv->value == NULL) {
        tr_kv_free_all(kv);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    kv->next = st->hdrs;
    st->hdrs = kv;
    return 0;
}

static void reset(tr_h2_conn *c, int32_t id, uint32_t code) {
    nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, id, code);
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *user) {
    (void)ng;
    tr_h2_conn *c = user;
    tr_h2_stream *st = f->hd.stream_id ? stream_of(c, f->hd.stream_id) : NULL;
    if (st == NULL) return 0;
    int end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
        if (st->method == NULL || st->path == NULL) {
            reset(c, st->id, NGHTTP2_PROTOCOL_ERROR);
            return 0;
        }
        tr_req *req = tr_req_create_h2(c->srv, c->wsi, st, st->method, st->path, &st->hdrs);
        if (req == NULL) {
            reset(c, st->id, NGHTTP2_INTERNAL_ERROR);
            return 0;
        }
        st->req = req;
        tr_req_ref(req); /* the handler may answer and end the request inside */
        if (tr_req_begin(req) != 0) {
            if (st->req != NULL) reset(c, st->id, NGHTTP2_INTERNAL_ERROR);
        } else if (end && req->h2s != NULL) {
            tr_req_body_complete(req);
        }
        tr_req_unref(req);
        return 0;
    }
    if (f->hd.type == NGHTTP2_DATA && end && st->req != NULL) tr_req_body_complete(st->req);
    return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *user) {
    (void)flags;
    tr_h2_conn *c = user;
    tr_h2_stream *st = stream_of(c, id);
    /* The window is ours to give back (NO_AUTO_WINDOW_UPDATE): at once, unless the request
     * paused its body; then when it resumes. */
    if (st == NULL || st->req == NULL) {
        nghttp2_session_consume(ng, id, len);
        return 0;
    }
    if (st->req->body_paused)
        st->unconsumed += len;
    else
        nghttp2_session_consume(ng, id, len);
    if (tr_req_on_body(st->req, data, len) != 0) reset(c, id, NGHTTP2_INTERNAL_ERROR);
    return 0;
}

/* After our END_STREAM: a request whose body was not read (413) is cut off. */
static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *f, void *user) {
    (void)ng;
    tr_h2_conn *c = user;
    if (!(f->hd.flags & NGHTTP2_FLAG_END_STREAM)) return 0;
    if (f->hd.type != NGHTTP2_DATA && f->hd.type != NGHTTP2_HEADERS) return 0;
    tr_h2_stream *st = stream_of(c, f->hd.stream_id);
    if (st == NULL) return 0;
    st->end_sent = 1;
    if (st->req != NULL && !st->req->body_done) reset(c, st->id, NGHTTP2_NO_ERROR);
    return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *user) {
    (void)code;
    tr_h2_conn *c = user;
    tr_h2_stream *st = stream_of(c, id);
    if (st == NULL) return 0;
    nghttp2_session_set_stream_user_data(ng, id, NULL);
    stream_end(st);
    return 0;
}

/* ---- the connection ---- */

static nghttp2_session_callbacks *callbacks(void) {
    static nghttp2_session_callbacks *cbs;
    if (cbs != NULL) return cbs;
    if (nghttp2_session_callbacks_new(&cbs) != 0) return NULL;
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    return cbs;
}

int tr_h2_start(tr_server *s, struct lws *wsi) {
    nghttp2_session_callbacks *cbs = callbacks();
    tr_h2_conn *c = calloc(1, sizeof *c);
    if (c == NULL || cbs == NULL) {
        free(c);
        return -1;
    }
    c->srv = s;
    c->wsi = wsi;
    c->fd = (int)lws_get_socket_fd(wsi);
    nghttp2_option *opt = NULL;
    if (nghttp2_option_new(&opt) == 0) nghttp2_option_set_no_auto_window_update(opt, 1);
    if (opt == NULL || nghttp2_session_server_new2(&c->ng, cbs, c, opt) != 0) {
        nghttp2_option_del(opt);
        free(c);
        return -1;
    }
    nghttp2_option_del(opt);
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, H2_MAX_STREAMS},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_STREAM_WINDOW},
    };
    if (nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]) != 0 ||
        nghttp2_session_set_local_window_size(c->ng, NGHTTP2_FLAG_NONE, 0, H2_CONN_WINDOW) != 0) {
        nghttp2_session_del(c->ng);
        free(c);
        return -1;
    }
    lws_set_opaque_user_data(wsi, c);
    lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
    return 0;
}

tr_h2_conn *tr_h2_of(struct lws *wsi) { return lws_get_opaque_user_data(wsi); }

int tr_h2_on_readable(tr_h2_conn *c) {
    uint8_t buf[H2_READ_CHUNK];
    for (int rounds = 0; rounds < 16; rounds++) {
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            return -1;
        }
        if (n == 0) return -1; /* the peer closed */
        c->in_recv = 1;
        ssize_t r = nghttp2_session_mem_recv(c->ng, buf, (size_t)n);
        c->in_recv = 0;
        if (r < 0) {
            tr_debug("msg=\"h2 protocol error\" error=\"%s\"", nghttp2_strerror((int)r));
            flush(c); /* the GOAWAY, if any */
            return -1;
        }
        if ((size_t)n < sizeof buf) break;
    }
    return flush(c);
}

int tr_h2_on_writeable(tr_h2_conn *c) { return flush(c); }

void tr_h2_on_close(tr_h2_conn *c) {
    lws_set_opaque_user_data(c->wsi, NULL);
    while (c->streams != NULL) stream_end(c->streams);
    nghttp2_session_del(c->ng);
    free(c->wbuf);
    free(c);
}
