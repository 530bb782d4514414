/* The listening socket and HTTP/2 detection on the plain port.
 *
 * libwebsockets 4.1's LWS_SERVER_OPTION_H2_PRIOR_KNOWLEDGE makes a vhost treat *every*
 * connection as HTTP/2, and without it an h2 preface kills the connection. The AWS SDKs need
 * both on one port, so we own the listening socket: accepted connections are first watched as
 * raw descriptors until their first bytes arrive, peeked (not read) and compared with the
 * HTTP/2 client preface: HTTP/1.1 is handed to the HTTP/1.1 vhost, HTTP/2 stays a raw
 * descriptor spoken by h2.c with nghttp2 (lws's h2 loses custom headers, X-Amz-Target among
 * them). With TLS, tls.c does the handshake and bridges the decrypted stream back into this
 * same sniffing (tr_listener_adopt_plain). Owning the socket also gives exact bind errors
 * ("address already in use") and a way to stop accepting at shutdown.
 *
 * A plain connection whose first request line is "POST /putMedia " (a PutMedia upload: the
 * producers open one connection per upload) stays a raw descriptor too, spoken by our own
 * HTTP/1.1 reader (h1.c): lws 4.1 cuts a body without Content-Length at 100 MiB and drops an
 * upload after 5 s without data. Every other HTTP/1.1 connection goes to lws. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/internal.h"
#include "util/log.h"

#define SNIFF_TIMEOUT_S 30

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"; /* RFC 9113 3.4 */
#define H2_PREFACE_LEN (sizeof h2_preface - 1)
static const char put_media[] = "POST /putMedia ";
#define PUT_MEDIA_LEN (sizeof put_media - 1)

static int fill_addr(const tr_config *c, struct sockaddr_storage *ss, socklen_t *sl) {
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    const char *host = strcmp(c->listen_host, "localhost") == 0 ? "127.0.0.1" : c->listen_host;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)c->listen_port);
        *sl = sizeof *v4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)c->listen_port);
        *sl = sizeof *v6;
        return 0;
    }
    return -1;
}

int tr_listener_bind(const tr_config *c, int *out_fd, char *err, size_t err_len) {
    struct sockaddr_storage ss;
    socklen_t sl;
    if (fill_addr(c, &ss, &sl) != 0) {
        snprintf(err, err_len, "cannot listen on %s:%d: not an IP address", c->listen_host,
                 c->listen_port);
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    int rc = fd < 0 ? -1 : setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (rc == 0) rc = bind(fd, (struct sockaddr *)&ss, sl);
    if (rc == 0) rc = listen(fd, SOMAXCONN);
    if (rc != 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        snprintf(err, err_len, "cannot listen on %s:%d: %s", c->listen_host, c->listen_port,
                 e == EADDRINUSE ? "address already in use" : strerror(e));
        return -1;
    }
    *out_fd = fd;
    return 0;
}

static struct lws *adopt_raw(tr_server *s, int fd) {
    lws_sock_file_fd_type d;
    d.filefd = fd;
    return lws_adopt_descriptor_vhost(s->vhost, LWS_ADOPT_RAW_FILE_DESC, d, "tributary-raw",
                                      NULL);
}

int tr_listener_start(tr_server *s, int fd) {
    s->listen_wsi = adopt_raw(s, fd);
    if (s->listen_wsi == NULL) {
        close(fd);
        return -1;
    }
    return 0;
}

void tr_listener_stop(tr_server *s) {
    if (s->listen_wsi != NULL) lws_set_timeout(s->listen_wsi, 1, LWS_TO_KILL_ASYNC);
}

static void accept_one(tr_server *s, int cfd) {
    if (s->stopping) {
        close(cfd);
        return;
    }
    /* No Nagle: a response goes out as headers then body, and holding the second write
     * until the client's delayed ACK cost every request-response about 40 ms. (lws sets
     * this only on sockets it accepts itself.) */
    int one = 1;
    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (s->tls != NULL) {
        tr_tls_accept(s, cfd);
        return;
    }
    tr_listener_adopt_plain(s, cfd);
}

int tr_listener_adopt_plain(tr_server *s, int fd) {
    struct lws *w = adopt_raw(s, fd);
    if (w == NULL) {
        close(fd);
        return -1;
    }
    lws_set_timeout(w, PENDING_TIMEOUT_ESTABLISH_WITH_SERVER, SNIFF_TIMEOUT_S);
    return 0;
}

static void accept_all(tr_server *s, int lfd) {
    for (;;) {
        int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                errno != ECONNABORTED)
                tr_warn("msg=\"accept failed\" error=\"%s\"", strerror(errno));
            if (errno == EINTR || errno == ECONNABORTED) continue;
            return;
        }
        accept_one(s, cfd);
    }
}

/* Peeks at a new connection's first bytes. Returns 0 to wait for more, -1 to close the raw
 * watcher (after handing the socket over, or on EOF/error). */
static int sniff(tr_server *s, struct lws *wsi) {
    int fd = (int)lws_get_socket_fd(wsi);
    char buf[H2_PREFACE_LEN];
    ssize_t n = recv(fd, buf, sizeof buf, MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
    if (n <= 0) return -1;
    int is_h2 = memcmp(buf, h2_preface, (size_t)n) == 0;
    /* A partial preface: wait for the rest (clients send the 24 bytes in one segment). */
    if (is_h2 && (size_t)n < H2_PREFACE_LEN) return 0;
    size_t cmp = (size_t)n < PUT_MEDIA_LEN ? (size_t)n : PUT_MEDIA_LEN;
    int is_put = !is_h2 && memcmp(buf, put_media, cmp) == 0;
    if (is_put && (size_t)n < PUT_MEDIA_LEN) return 0;
    /* HTTP/2 stays on this raw watcher, spoken by h2.c (nghttp2): lws's own h2 drops
     * custom request headers such as X-Amz-Target. */
    if (is_h2) {
        if (tr_h2_start(s, wsi) != 0) {
            tr_warn("msg=\"cannot start an HTTP/2 connection\"");
            return -1;
        }
        return tr_h2_on_readable(tr_h2_of(wsi));
    }
    if (is_put) {
        if (tr_h1_start(s, wsi) != 0) {
            tr_warn("msg=\"cannot start an HTTP/1.1 upload connection\"");
            return -1;
        }
        return tr_h1_on_readable(tr_h1_of(wsi));
    }
    /* Closing the raw watcher closes its descriptor; the duplicate keeps the socket. */
    int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (nfd < 0) return -1;
    if (lws_adopt_socket_vhost(s->vhost, nfd) == NULL)
        tr_warn("msg=\"cannot adopt a connection\" proto=http/1.1");
    return -1;
}

int tr_listener_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                         void *in, size_t len) {
    tr_server *s = lws_context_user(lws_get_context(wsi));
    switch (reason) {
    case LWS_CALLBACK_RAW_RX_FILE:
        if (wsi == s->listen_wsi) {
            accept_all(s, (int)lws_get_socket_fd(wsi));
            return 0;
        }
        if (tr_h1_of(wsi) != NULL) return tr_h1_on_readable(tr_h1_of(wsi));
        if (tr_h2_of(wsi) != NULL) return tr_h2_on_readable(tr_h2_of(wsi));
        return sniff(s, wsi);
    case LWS_CALLBACK_RAW_WRITEABLE_FILE:
        if (tr_h1_of(wsi) != NULL) return tr_h1_on_writeable(tr_h1_of(wsi));
        return tr_h2_of(wsi) != NULL ? tr_h2_on_writeable(tr_h2_of(wsi)) : 0;
    case LWS_CALLBACK_RAW_CLOSE_FILE:
        if (wsi == s->listen_wsi) s->listen_wsi = NULL;
        else if (tr_h1_of(wsi) != NULL) tr_h1_on_close(tr_h1_of(wsi));
        else if (tr_h2_of(wsi) != NULL) tr_h2_on_close(tr_h2_of(wsi));
        return 0;
    default:
        return 0;
    }
}
