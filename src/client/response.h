/* The HTTP/1.1 answer to a GetMedia request, read as it arrives: status line, headers, then
 * the body (chunked transfer coding, Content-Length, or up to the close) handed to a GetMedia
 * parser when the status is 200, or kept (its first bytes) as the error text otherwise.
 * No sockets here, so that unit tests and the fuzzer drive it directly; client/http.c reads
 * the socket into it. Internal to the library: not installed. */
#ifndef TR_CLIENT_RESPONSE_H
#define TR_CLIENT_RESPONSE_H

#include <stddef.h>
#include <stdint.h>

#include "client/getmedia.h"
#include "net/chunked.h"

#define TR_CLIENT_HEAD_MAX 16384
#define TR_CLIENT_ERROR_BODY_MAX 1024

typedef struct tr_client_response {
    tr_client_parser *parser;      /* the body's reader for a 200 (not owned) */
    int stage;
    int status;                    /* 0 until the status line is read */
    int chunked;                   /* Transfer-Encoding: chunked */
    int has_length;
    uint64_t content_length, body_bytes;
    tr_chunked dechunk;
    int rc;                        /* the result once done */
    int body_rc;                   /* the parser's result on the last body bytes */
    char head[TR_CLIENT_HEAD_MAX];
    size_t head_len;
    char body[TR_CLIENT_ERROR_BODY_MAX + 1]; /* an error answer's body, NUL-terminated */
    size_t body_len;
    char detail[400];              /* what went wrong, for tr_client.error */
} tr_client_response;

void tr_client_response_init(tr_client_response *r, tr_client_parser *parser);

/* The next len bytes from the server. Returns 0 while the answer goes on; *done is set once
 * it is complete, and the result is then returned: 0 (a 200 whose body parsed to its end),
 * TR_CLIENT_EHTTP (any other status; body holds the start of its body), the parser's error
 * or a callback's value. Errors also stop it before it is complete (*done stays 0): a
 * malformed head or chunked coding is TR_CLIENT_EIO. Bytes after the answer are ignored. */
int tr_client_response_feed(tr_client_response *r, const uint8_t *data, size_t len, int *done);

/* The server closed the connection. Returns the answer's result when it was complete or
 * its body runs to the close, else TR_CLIENT_EIO. */
int tr_client_response_eof(tr_client_response *r);

#endif
