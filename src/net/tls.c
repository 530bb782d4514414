/* TLS on the listening port, terminated here with OpenSSL rather than by libwebsockets.
 *
 * lws's own HTTP/2 drops request headers it has no token for (X-Amz-Target among them), and
 * with TLS the protocol is chosen by ALPN inside the handshake, so the listener cannot sniff
 * it as it does on the plain port. So every TLS connection is ours: the handshake runs on a
 * raw lws descriptor, and once it is done the decrypted stream is bridged through a
 * socketpair into the very path a plain connection takes (listener.c: the HTTP/2 preface
 * goes to h2.c and nghttp2, anything else to lws's HTTP/1.1 with its websockets). ALPN
 * offers h2 and http/1.1; whatever the client then speaks, the plain path recognises.
 *
 *   client ==TLS== net wsi (raw, this file) --socketpair-- plain path (sniff, h2.c / lws h1)
 *
 * Each direction has one buffer and backpressure: while the bridge cannot pass bytes on, the
 * side they come from is not read (lws_rx_flow_control). The context is one SSL_CTX; a reload
 * (SIGHUP) builds a new one from the files and swaps it in for new connections, while
 * established ones keep theirs (OpenSSL counts the references). */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/internal.h"
#include "util/error.h"
#include "util/log.h"

#define TLS_HANDSHAKE_TIMEOUT_S 30
#define TLS_BUF (32 * 1024) /* two full TLS records */

/* TLS 1.2 suites: forward secret AEAD only (no RC4, 3DES, CBC or SHA-1 MACs); TLS 1.3's
 * own suites are all AEAD and stay at OpenSSL's default. */
#define TLS12_CIPHERS                                                                     \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                          \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                          \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

struct tr_tls {
    SSL_CTX *ctx;          /* for new connections */
    char cert[TR_CONFIG_PATH_MAX], key[TR_CONFIG_PATH_MAX];
};

typedef struct tls_conn {
    tr_server *srv;
    struct lws *net;       /* the client's TCP connection (raw descriptor) */
    struct lws *pipe;      /* our end of the socketpair; NULL before the handshake ends */
    int net_fd, pipe_fd;
    SSL *ssl;
    int established;
    int net_rx, pipe_rx;   /* POLLIN wanted (flow control state) */
    int net_eof;           /* the client's close_notify came */
    struct lws *in_writeable; /* inside this wsi's WRITEABLE callback */
    int rearm_net, rearm_pipe; /* writable wanted again from inside that callback */
    lws_sorted_usec_list_t rearm_sul;
    int up_shut;           /* the inner side was told (shutdown SHUT_WR) */
    size_t up_off, up_len; /* decrypted, for the pipe */
    size_t dn_off, dn_len; /* from the pipe, for SSL_write */
    uint8_t up[TLS_BUF];
    uint8_t dn[TLS_BUF];
} tls_conn;

/* ---- the context ---- */

static void ssl_err(char *err, size_t len, const char *what, const char *path) {
    char e[256] = "unknown error";
    unsigned long code = ERR_peek_last_error();
    if (code != 0) ERR_error_string_n(code, e, sizeof e);
    ERR_clear_error();
    snprintf(err, len, "%s %s: %s", what, path, e);
}

/* Picks h2, else http/1.1; a client offering neither goes on without ALPN (HTTP/1.1). */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg) {
    (void)ssl;
    (void)arg;
    static const unsigned char ours[] = "\x02h2\x08http/1.1";
    unsigned char *sel = NULL;
    if (SSL_select_next_proto(&sel, outlen, ours, sizeof ours - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *ctx_new(const char *cert, const char *key, char *err, size_t err_len) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        ssl_err(err, err_len, "cannot create a TLS context for", cert);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    if (SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1) {
        ssl_err(err, err_len, "cannot set the ciphers for", cert);
    } else if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        ssl_err(err, err_len, "cannot load the certificate", cert);
    } else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        ssl_err(err, err_len, "cannot load the private key", key);
    } else if (SSL_CTX_check_private_key(ctx) != 1) {
        ssl_err(err, err_len, "the private key does not match the certificate", cert);
    } else {
        return ctx;
    }
    SSL_CTX_free(ctx);
    return NULL;
}

int tr_tls_new(const char *cert, const char *key, tr_tls **out, char *err, size_t err_len) {
    *out = NULL;
    tr_tls *t = calloc(1, sizeof *t);
    if (t == NULL) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    snprintf(t->cert, sizeof t->cert, "%s", cert);
    snprintf(t->key, sizeof t->key, "%s", key);
    t->ctx = ctx_new(cert, key, err, err_len);
    if (t->ctx == NULL) {
        free(t);
        return -1;
    }
    *out = t;
    return 0;
}

void tr_tls_free(tr_tls *t) {
    if (t == NULL) return;
    SSL_CTX_free(t->ctx);
    free(t);
}

int tr_tls_reload(tr_tls *t) {
    char err[1200];
    SSL_CTX *ctx = ctx_new(t->cert, t->key, err, sizeof err);
    if (ctx == NULL) {
        tr_error("msg=\"TLS reload failed; keeping the current certificate\" error=\"%s\"", err);
        return -1;
    }
    SSL_CTX_free(t->ctx); /* connections made with it hold their own references */
    t->ctx = ctx;
    tr_info("msg=\"TLS certificate reloaded\" cert=\"%s\"", t->cert);
    return 0;
}

/* ---- connections ---- */

static void set_rx(struct lws *wsi, int *state, int on) {
    if (wsi == NULL || *state == on) return;
    *state = on;
    /* Now, not when lws next finishes an rx pass (for raw descriptors it may never). */
    lws_rx_flow_control(wsi, (on ? LWS_RXFLOW_REASON_APPLIES_ENABLE
                                 : LWS_RXFLOW_REASON_APPLIES_DISABLE) |
                                 LWS_RXFLOW_REASON_USER_BOOL | LWS_RXFLOW_REASON_FLAG_PROCESS_NOW);
}

/* lws clears POLLOUT after a raw descriptor's WRITEABLE callback returns, so asking again from
 * inside it is lost: such a request is made from a timer right after. */
static void rearm(lws_sorted_usec_list_t *sul) {
    tls_conn *c = lws_container_of(sul, tls_conn, rearm_sul);
    if (c->rearm_net && c->net != NULL) lws_callback_on_writable(c->net);
    if (c->rearm_pipe && c->pipe != NULL) lws_callback_on_writable(c->pipe);
    c->rearm_net = c->rearm_pipe = 0;
}

static void want_writable(tls_conn *c, struct lws *wsi) {
    if (wsi == NULL) return;
    if (wsi != c->in_writeable) {
        lws_callback_on_writable(wsi);
        return;
    }
    if (wsi == c->net) c->rearm_net = 1;
    else c->rearm_pipe = 1;
    lws_sul_schedule(lws_get_context(wsi), 0, &c->rearm_sul, rearm, 1);
}

/* Client to server: SSL_read into up, then into the pipe. Returns 0, or -1 to close. */
static int pump_up(tls_conn *c) {
    for (;;) {
        while (c->up_off < c->up_len) {
            if (c->pipe == NULL) {
                c->up_off = c->up_len; /* the inner side is gone: nobody to tell */
                break;
            }
            ssize_t w = send(c->pipe_fd, c->up + c->up_off, c->up_len - c->up_off, MSG_NOSIGNAL);
            if (w < 0) {
                if (errno == EINTR) continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    set_rx(c->net, &c->net_rx, 0);
                    want_writable(c, c->pipe);
                    return 0;
                }
                return -1;
            }
            c->up_off += (size_t)w;
        }
        c->up_off = c->up_len = 0;
        if (c->net_eof) {
            set_rx(c->net, &c->net_rx, 0);
            if (!c->up_shut && c->pipe != NULL) shutdown(c->pipe_fd, SHUT_WR);
            c->up_shut = 1;
            return 0;
        }
        ERR_clear_error();
        int n = SSL_read(c->ssl, c->up, (int)sizeof c->up);
        if (n > 0) {
            c->up_len = (size_t)n;
            continue;
        }
        switch (SSL_get_error(c->ssl, n)) {
        case SSL_ERROR_WANT_READ:
            set_rx(c->net, &c->net_rx, 1);
            return 0;
        case SSL_ERROR_WANT_WRITE:
            want_writable(c, c->net);
            return 0;
        case SSL_ERROR_ZERO_RETURN:
            c->net_eof = 1; /* close_notify: the answers may still go out */
            continue;
        default:
            return -1; /* EOF without close_notify, or a TLS error */
        }
    }
}

/* Server to client: from the pipe into dn, then SSL_write. Returns 0, or -1 to close (after
 * the inner side closed and everything it said went out). */
static int pump_down(tls_conn *c) {
    for (;;) {
        while (c->dn_off < c->dn_len) {
            ERR_clear_error();
            int n = SSL_write(c->ssl, c->dn + c->dn_off, (int)(c->dn_len - c->dn_off));
            if (n > 0) {
                c->dn_off += (size_t)n;
                continue;
            }
            switch (SSL_get_error(c->ssl, n)) {
            case SSL_ERROR_WANT_WRITE:
                set_rx(c->pipe, &c->pipe_rx, 0);
                want_writable(c, c->net);
                return 0;
            case SSL_ERROR_WANT_READ: /* no renegotiation, so hardly; the next read resumes */
                set_rx(c->pipe, &c->pipe_rx, 0);
                set_rx(c->net, &c->net_rx, 1);
                return 0;
            default:
                return -1;
            }
        }
        c->dn_off = c->dn_len = 0;
        if (c->pipe == NULL) break;
        ssize_t r = recv(c->pipe_fd, c->dn, sizeof c->dn, 0);
        if (r > 0) {
            c->dn_len = (size_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_rx(c->pipe, &c->pipe_rx, 1);
            return 0;
        }
        break; /* the inner side closed (or failed) */
    }
    SSL_shutdown(c->ssl); /* close_notify, best effort */
    return -1;
}

static int pump(tls_conn *c) {
    if (pump_up(c) != 0) return -1;
    return pump_down(c);
}

/* The handshake is done: the socketpair and its far end on the plain path. */
static int establish(tls_conn *c) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) return -1;
    lws_sock_file_fd_type d;
    d.filefd = sv[0];
    c->pipe = lws_adopt_descriptor_vhost(c->srv->vhost, LWS_ADOPT_RAW_FILE_DESC, d,
                                         "tributary-tls", NULL);
    if (c->pipe == NULL) {
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    c->pipe_fd = sv[0];
    c->pipe_rx = 1;
    lws_set_opaque_user_data(c->pipe, c);
    if (tr_listener_adopt_plain(c->srv, sv[1]) != 0) return -1;
    c->established = 1;
    lws_set_timeout(c->net, NO_PENDING_TIMEOUT, 0);
    const unsigned char *alpn = NULL;
    unsigned int alen = 0;
    SSL_get0_alpn_selected(c->ssl, &alpn, &alen);
    tr_debug("msg=\"TLS connection\" version=%s cipher=%s alpn=%.*s", SSL_get_version(c->ssl),
             SSL_get_cipher_name(c->ssl), (int)alen, alen ? (const char *)alpn : "");
    return 0;
}

static int handshake(tls_conn *c) {
    ERR_clear_error();
    int r = SSL_accept(c->ssl);
    if (r == 1) return establish(c) == 0 ? pump(c) : -1;
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        return 0;
    case SSL_ERROR_WANT_WRITE:
        want_writable(c, c->net);
        return 0;
    default: {
        char e[256] = "connection closed";
        unsigned long code = ERR_peek_last_error();
        if (code != 0) ERR_error_string_n(code, e, sizeof e);
        ERR_clear_error();
        tr_debug("msg=\"TLS handshake failed\" error=\"%s\"", e);
        return -1;
    }
    }
}

void tr_tls_accept(tr_server *s, int fd) {
    tls_conn *c = calloc(1, sizeof *c);
    SSL *ssl = c != NULL ? SSL_new(s->tls->ctx) : NULL;
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        free(c);
        close(fd);
        return;
    }
    c->srv = s;
    c->ssl = ssl;
    c->net_fd = fd;
    c->net_rx = 1;
    lws_sock_file_fd_type d;
    d.filefd = fd;
    c->net = lws_adopt_descriptor_vhost(s->vhost, LWS_ADOPT_RAW_FILE_DESC, d, "tributary-tls",
                                        NULL);
    if (c->net == NULL) {
        tr_warn("msg=\"cannot adopt a TLS connection\"");
        SSL_free(ssl);
        free(c);
        close(fd);
        return;
    }
    lws_set_opaque_user_data(c->net, c);
    lws_set_timeout(c->net, PENDING_TIMEOUT_ESTABLISH_WITH_SERVER, TLS_HANDSHAKE_TIMEOUT_S);
}

int tr_tls_bridged(struct lws *wsi) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd = (int)lws_get_socket_fd(lws_get_network_wsi(wsi));
    return fd >= 0 && getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 && ss.ss_family == AF_UNIX;
}

static void kill_async(struct lws *wsi) {
    if (wsi != NULL) lws_set_timeout(wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
}

int tr_tls_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len) {
    (void)user;
    (void)in;
    (void)len;
    tls_conn *c = lws_get_opaque_user_data(wsi);
    if (c == NULL) return 0;
    int is_net = wsi == c->net;
    int rc;
    switch (reason) {
    case LWS_CALLBACK_RAW_RX_FILE:
    case LWS_CALLBACK_RAW_WRITEABLE_FILE:
        if (c->net == NULL) return -1; /* its descriptor is closed (and may be reused) */
        if (reason == LWS_CALLBACK_RAW_WRITEABLE_FILE) c->in_writeable = wsi;
        rc = c->established ? pump(c) : is_net ? handshake(c) : 0;
        c->in_writeable = NULL;
        if (rc != 0) kill_async(is_net ? c->pipe : c->net);
        return rc;
    case LWS_CALLBACK_RAW_CLOSE_FILE:
        lws_set_opaque_user_data(wsi, NULL);
        if (is_net) {
            c->net = NULL;
            kill_async(c->pipe);
        } else {
            c->pipe = NULL;
            /* What the inner side said before it closed still goes out. */
            if (c->net != NULL && pump_down(c) != 0) kill_async(c->net);
        }
        if (c->net == NULL && c->pipe == NULL) {
            lws_sul_cancel(&c->rearm_sul);
            SSL_free(c->ssl);
            free(c);
        }
        return 0;
    default:
        return 0;
    }
}
