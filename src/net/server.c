/* The libwebsockets context, its one vhost and protocol callback, the service loop, and the
 * graceful stop: refuse new connections, let in-flight requests finish (bounded), return. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "net/internal.h"
#include "util/error.h"
#include "util/log.h"

#define DRAIN_TICK_US (50 * 1000)

/* ---- the protocol callback: lws events to request phases ---- */

static int on_http(struct lws *wsi, tr_pss *pss, const char *uri, size_t len) {
    tr_server *srv = lws_context_user(lws_get_context(wsi));
    if (pss->req != NULL) tr_req_detach(pss->req); /* should not happen; never leak */
    tr_req *req = tr_req_create(srv, wsi, uri, len);
    if (req == NULL) return -1;
    pss->req = req;
    return tr_req_begin(req);
}

static int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                         size_t len) {
    tr_pss *pss = user;
    tr_server *srv;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return on_http(wsi, pss, in, len);
    case LWS_CALLBACK_HTTP_BODY:
        return pss->req ? tr_req_on_body(pss->req, in, len) : 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (pss->req != NULL) tr_req_body_complete(pss->req);
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return pss->req ? tr_resp_on_writeable(pss->req) : 0;
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (pss != NULL && pss->req != NULL) tr_req_detach(pss->req);
        return 0;
    case LWS_CALLBACK_CLOSED_HTTP:
        if (pss != NULL && pss->req != NULL) tr_req_detach(pss->req);
        tr_ws_on_closed(wsi); /* an upgrade that failed after on_open */
        return 0;
    /* websockets (ws.c): a GET with Upgrade: websocket, then the ws role */
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return tr_ws_on_upgrade(lws_context_user(lws_get_context(wsi)), wsi, in);
    case LWS_CALLBACK_ESTABLISHED:
        tr_ws_on_established(wsi);
        return 0;
    case LWS_CALLBACK_RECEIVE:
        return tr_ws_on_receive(wsi, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return tr_ws_on_writeable(wsi);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        tr_ws_on_peer_close(wsi, (const uint8_t *)in, len);
        return 0;
    case LWS_CALLBACK_CLOSED:
        tr_ws_on_closed(wsi);
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        /* Every wsi of the vhost ends here (protocols[0]), raw ones too, whose opaque user
         * data is h2.c's: only ours may hold a websocket. */
        if (lws_get_protocol(wsi) != NULL && lws_get_protocol(wsi)->callback == http_callback)
            tr_ws_on_closed(wsi);
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        srv = lws_context_user(lws_get_context(wsi));
        if (srv != NULL) tr_taskq_run(srv->tasks);
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static const struct lws_protocols protocols[] = {
    {"http", http_callback, sizeof(tr_pss), 0, 0, NULL, 0},
    {"tributary-raw", tr_listener_callback, 0, 0, 0, NULL, 0},
    {"tributary-tls", tr_tls_callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---- lifecycle ---- */

static void wake_loop(void *arg) {
    tr_server *s = arg;
    if (s->lws != NULL) lws_cancel_service(s->lws);
}

int tr_server_new(const tr_config *cfg, tr_store *store, tr_server **out) {
    *out = NULL;
    tr_server *s = calloc(1, sizeof *s);
    if (s == NULL) return TR_ENOMEM;
    s->cfg = *cfg;
    s->store = store;
    s->router = tr_router_new();
    s->tasks = tr_taskq_new(wake_loop, s);
    int rc = s->router && s->tasks ? TR_OK : TR_ENOMEM;
    if (rc == TR_OK) rc = tr_workpool_new(cfg->worker_threads, s->tasks, &s->pool);
    if (rc == TR_OK) rc = tr_builtin_register(s);
    if (rc != TR_OK) {
        tr_server_free(s);
        return rc;
    }
    *out = s;
    return TR_OK;
}

void tr_server_free(tr_server *s) {
    if (s == NULL) return;
    tr_signals_stop(s->signals);
    /* Workers may still post completions: finish them while the queue exists, then run
     * those completions with the context still there (they may touch requests). */
    tr_workpool_free(s->pool);
    if (s->tasks != NULL) tr_taskq_run(s->tasks);
    if (s->lws != NULL) {
        lws_sul_cancel(&s->tick_sul);
        lws_context_destroy(s->lws); /* closes every connection */
    }
    s->lws = NULL;
    if (s->evloop != NULL) ev_loop_destroy(s->evloop); /* after lws stopped its watchers */
    s->evloop = NULL;
    tr_tls_free(s->tls); /* after the connections, though each holds its own reference */
    tr_taskq_free(s->tasks);
    tr_router_free(s->router);
    free(s);
}

tr_router *tr_server_router(tr_server *s) { return s->router; }
tr_workpool *tr_server_workpool(tr_server *s) { return s->pool; }
tr_taskq *tr_server_tasks(tr_server *s) { return s->tasks; }
void tr_server_post(tr_server *s, tr_task *t) { tr_taskq_post(s->tasks, t); }

/* ---- listening ---- */

/* Routes libwebsockets' own log lines (errors only) into our log. */
static void lws_log_emit(int level, const char *line) {
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
    tr_log(level == LLL_ERR ? TR_LOG_ERROR : TR_LOG_WARN, "msg=\"lws: %.*s\"", (int)n, line);
}

/* Our own socket does the listening (listener.c), so every vhost is CONTEXT_PORT_NO_LISTEN_SERVER
 * and only decides how an adopted connection is spoken. TLS is not lws's either (tls.c): its
 * connections reach these vhosts decrypted. */
static struct lws_vhost *make_vhost(tr_server *s, const char *name, uint64_t options) {
    struct lws_context_creation_info vi;
    memset(&vi, 0, sizeof vi);
    vi.vhost_name = name;
    vi.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    vi.protocols = protocols;
    vi.options = options;
    vi.keepalive_timeout = 60;
    vi.timeout_secs = 60;
    return lws_create_vhost(s->lws, &vi);
}

static void reload_tls(void *ctx) { tr_tls_reload(ctx); }

static int create_vhosts(tr_server *s, char *err, size_t err_len) {
    s->vhost = make_vhost(s, "http1", 0);
    s->vhost_h2 = make_vhost(s, "h2", LWS_SERVER_OPTION_H2_PRIOR_KNOWLEDGE);
    if (s->vhost == NULL || s->vhost_h2 == NULL) {
        snprintf(err, err_len, "cannot create the HTTP vhosts");
        return -1;
    }
    if (s->cfg.tls_cert[0] == '\0') return 0;
    if (tr_tls_new(s->cfg.tls_cert, s->cfg.tls_key, &s->tls, err, err_len) != 0) return -1;
    /* SIGHUP: the certificate and key are read again for new connections. */
    if (tr_server_on_reload(s, reload_tls, s->tls) != TR_OK) {
        snprintf(err, err_len, "too many reload hooks");
        return -1;
    }
    return 0;
}

int tr_server_listen(tr_server *s, char *err, size_t err_len) {
    const tr_config *c = &s->cfg;
    int fd;
    if (tr_listener_bind(c, &fd, err, err_len) != 0) return -1;
    lws_set_log_level(LLL_ERR, lws_log_emit);
    struct lws_context_creation_info ci;
    memset(&ci, 0, sizeof ci);
    ci.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    ci.user = s;
    ci.server_string = "Tributary";
    ci.max_http_header_data = 16384; /* SigV4 and long presigned URLs exceed the 4 KiB default */
    /* Header tables (ah: 16 KiB of header data each) are allocated as connections need
     * them; 0 allows one per descriptor. A long-lived request (PutMedia, GetMedia, an
     * HTTP/1.1 SubscribeToShard) holds its table for its whole life, so a fixed pool (64)
     * left the 65th camera waiting for a table until lws reset it. */
    ci.max_http_header_pool = 0;
    /* lws reads a connection at most this much per loop turn (default 4 KiB): a 5 MiB
     * PutRecords body took 1,300 turns. */
    ci.pt_serv_buf_size = 64 * 1024;
    ci.count_threads = 1;
    /* lws runs on a libev loop of ours (epoll): its own poll() scans every descriptor at
     * each wake-up, which at a thousand connections was a third of the loop thread. The
     * libev glue is an lws plugin (libwebsockets-evlib_ev.so); without it, lws's poll(). */
    if (getenv("TR_LWS_POLL") == NULL) s->evloop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOSIGMASK);
    if (s->evloop != NULL) {
        s->foreign_loops[0] = s->evloop;
        ci.options |= LWS_SERVER_OPTION_LIBEV;
        ci.foreign_loops = s->foreign_loops;
        s->lws = lws_create_context(&ci);
        if (s->lws == NULL) {
            tr_warn("msg=\"cannot run libwebsockets on libev (is libwebsockets-evlib-ev "
                    "installed?); using its poll loop\"");
            ev_loop_destroy(s->evloop);
            s->evloop = NULL;
            ci.options &= ~(uint64_t)LWS_SERVER_OPTION_LIBEV;
            ci.foreign_loops = NULL;
        }
    }
    if (s->lws == NULL) s->lws = lws_create_context(&ci);
    if (s->lws == NULL) {
        close(fd);
        snprintf(err, err_len, "cannot create the libwebsockets context");
        return -1;
    }
    if (create_vhosts(s, err, err_len) != 0) {
        close(fd);
        return -1;
    }
    if (tr_listener_start(s, fd) != 0) {
        snprintf(err, err_len, "cannot watch the listening socket");
        return -1;
    }
    return 0;
}

/* ---- running and stopping ---- */

static void drain_tick(lws_sorted_usec_list_t *sul) {
    tr_server *s = lws_container_of(sul, tr_server, drain_sul);
    if (s->inflight <= 0 || tr_now_ns() >= s->drain_deadline_ns) {
        if (s->inflight > 0)
            tr_warn("msg=\"shutdown timeout; closing in-flight requests\" inflight=%lld",
                    (long long)s->inflight);
        s->done = 1;
        lws_cancel_service(s->lws); /* leave the poll now, not at the next unrelated event */
        return;
    }
    lws_sul_schedule(s->lws, 0, &s->drain_sul, drain_tick, DRAIN_TICK_US);
}

static void begin_stop(tr_task *t) {
    tr_server *s = lws_container_of(t, tr_server, stop_task);
    if (s->stopping) return;
    s->stopping = 1;
    tr_listener_stop(s);
    s->drain_deadline_ns = tr_now_ns() + s->cfg.shutdown_timeout_ms * 1000000;
    tr_info("msg=\"stopping: draining in-flight requests\" inflight=%lld",
            (long long)s->inflight);
    drain_tick(&s->drain_sul);
}

int tr_server_on_tick(tr_server *s, tr_tick_fn fn, void *ctx) {
    if (s->nticks == TR_SERVER_MAX_TICKS) return TR_ENOMEM;
    s->ticks[s->nticks].fn = fn;
    s->ticks[s->nticks].ctx = ctx;
    s->nticks++;
    return TR_OK;
}

int tr_server_stopping(const tr_server *s) { return s->stopping; }

static void tick(lws_sorted_usec_list_t *sul) {
    tr_server *s = lws_container_of(sul, tr_server, tick_sul);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    for (int i = 0; i < s->nticks; i++) s->ticks[i].fn(s->ticks[i].ctx, now_ms);
    if (!s->done) lws_sul_schedule(s->lws, 0, &s->tick_sul, tick, 1000 * LWS_US_PER_MS);
}

void tr_server_stop(tr_server *s) {
    /* Once only: the task is intrusive and must not be queued twice. */
    if (atomic_exchange(&s->stop_posted, 1) == 0) tr_taskq_post(s->tasks, &s->stop_task);
}

static void on_signal(void *arg, int signo) {
    tr_server *s = arg;
    tr_info("msg=\"signal received\" signal=%d", signo);
    if (signo == SIGHUP)
        tr_server_reload(s);
    else
        tr_server_stop(s);
}

int tr_server_run(tr_server *s) {
    s->stop_task.fn = begin_stop;
    if (tr_signals_start(on_signal, s, &s->signals) != TR_OK) {
        tr_error("msg=\"cannot start the signal thread\"");
        return -1;
    }
    /* Anything posted before the loop existed (e.g. early completions) runs now. */
    tr_taskq_run(s->tasks);
    if (s->nticks > 0) lws_sul_schedule(s->lws, 0, &s->tick_sul, tick, 1000 * LWS_US_PER_MS);
    while (!s->done) {
        if (s->evloop != NULL)
            ev_run(s->evloop, EVRUN_ONCE);
        else if (lws_service(s->lws, 0) < 0)
            break;
    }
    return 0;
}
