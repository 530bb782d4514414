#include "net/chunked.h"

enum {
    S_SIZE,        /* hex digits of the chunk size */
    S_EXT,         /* chunk extensions: ignored up to the LF */
    S_DATA,        /* `left` bytes of data */
    S_DATA_CR,     /* the CRLF after the data */
    S_DATA_LF,
    S_TRAILER,     /* at the start of a trailer line: CRLF alone ends the body */
    S_TRAILER_LF,
    S_TRAILER_LINE,
    S_DONE,
    S_BAD,
};

#define MAX_SIZE_DIGITS 15  /* chunks of up to 2^60 bytes: no overflow */

void tr_chunked_init(tr_chunked *c) {
    c->state = S_SIZE;
    c->left = 0;
    c->digits = 0;
}

static int hex(uint8_t ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* One byte of framing (not data). Returns the new state. */
static int step(tr_chunked *c, uint8_t ch) {
    switch (c->state) {
    case S_SIZE: {
        int v = hex(ch);
        if (v >= 0) {
            if (++c->digits > MAX_SIZE_DIGITS) return S_BAD;
            c->left = c->left * 16 + (uint64_t)v;
            return S_SIZE;
        }
        if (c->digits == 0) return S_BAD;
        if (ch == ';' || ch == ' ' || ch == '\t') return S_EXT;
        if (ch == '\r') return S_EXT;
        if (ch == '\n') return c->left > 0 ? S_DATA : S_TRAILER;
        return S_BAD;
    }
    case S_EXT:
        if (ch != '\n') return S_EXT;
        return c->left > 0 ? S_DATA : S_TRAILER;
    case S_DATA_CR: return ch == '\r' ? S_DATA_LF : ch == '\n' ? S_SIZE : S_BAD;
    case S_DATA_LF: return ch == '\n' ? S_SIZE : S_BAD;
    case S_TRAILER: return ch == '\r' ? S_TRAILER_LF : ch == '\n' ? S_DONE : S_TRAILER_LINE;
    case S_TRAILER_LF: return ch == '\n' ? S_DONE : S_BAD;
    case S_TRAILER_LINE: return ch == '\n' ? S_TRAILER : S_TRAILER_LINE;
    default: return S_BAD;
    }
}

int tr_chunked_feed(tr_chunked *c, const uint8_t *in, size_t len, size_t *used,
                    int (*out)(void *ctx, const uint8_t *data, size_t n), void *ctx) {
    size_t i = 0;
    while (i < len && c->state != S_DONE && c->state != S_BAD) {
        if (c->state == S_DATA) {
            size_t n = len - i;
            if (n > c->left) n = (size_t)c->left;
            int rc = out(ctx, in + i, n);
            i += n;
            c->left -= n;
            if (c->left == 0) c->state = S_DATA_CR;
            if (rc != 0) {
                *used = i;
                return rc;
            }
            continue;
        }
        int prev = c->state;
        c->state = step(c, in[i++]);
        if (prev != S_SIZE && c->state == S_SIZE) {
            c->left = 0;
            c->digits = 0;
        }
    }
    *used = i;
    if (c->state == S_BAD) return TR_CHUNKED_BAD;
    return c->state == S_DONE ? TR_CHUNKED_DONE : TR_CHUNKED_MORE;
}
