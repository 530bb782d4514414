/* The request head of HTTP/1.1 (RFC 9112), parsed by our own small reader (h1.c) for the
 * connections the listener takes away from libwebsockets: PutMedia uploads, whose chunked
 * body has no end known in advance (lws 4.1 cuts a POST without Content-Length at 100 MiB
 * and drops an upload after 5 s without data).
 *
 * The parser is pure (no sockets, no lws) so that the unit tests and the fuzzer drive it
 * directly. It is prefix-consistent: it looks for the blank line that ends the head first and
 * judges nothing before it is there, so a head given in pieces parses as the whole would. */
#ifndef TR_NET_H1_H
#define TR_NET_H1_H

#include <stddef.h>
#include <stdint.h>

#define TR_H1_HEAD_MAX 16384   /* request line and headers, through the blank line */
#define TR_H1_MAX_HEADERS 100

struct tr_kv;

typedef struct tr_h1_head {
    char method[16];        /* a token of 1..15 characters: "POST" */
    char *target;           /* the request target in origin form, as sent: "/putMedia?x=1" */
    int minor;              /* HTTP/1.<minor>: 0 or 1 */
    struct tr_kv *hdrs;     /* lowercase names, values without surrounding spaces; a repeated
                             * header is joined with ", " (RFC 9110 5.3); owned */
    int nhdrs;              /* header lines (repeats included) */
} tr_h1_head;

/* Parses the head at the start of buf[0..len). Returns the head's length through its blank
 * line (> 0), 0 when the head is not complete yet (len < TR_H1_HEAD_MAX), or a negated HTTP
 * status: -400 (malformed), -431 (head longer than TR_H1_HEAD_MAX or more than
 * TR_H1_MAX_HEADERS headers), -505 (not HTTP/1.0 or 1.1). Empty lines before the request
 * line are skipped (RFC 9112 2.2). On success *out holds the head (free with
 * tr_h1_head_free); otherwise *out is empty. -500 when memory runs out. */
int tr_h1_parse_head(const uint8_t *buf, size_t len, tr_h1_head *out);
void tr_h1_head_free(tr_h1_head *h);

/* A header's value (name matched without regard to case), or NULL. */
const char *tr_h1_head_header(const tr_h1_head *h, const char *name);

#endif
