/* The chunked transfer coding of HTTP/1.1 request bodies, decoded incrementally.
 * libwebsockets 4.1 hands a chunked request body over as it came off the wire, chunk-size
 * lines and all, so the net layer decodes it before a handler sees it. */
#ifndef TR_NET_CHUNKED_H
#define TR_NET_CHUNKED_H

#include <stddef.h>
#include <stdint.h>

typedef struct tr_chunked {
    int state;
    uint64_t left;      /* bytes of chunk data still to come */
    int digits;
} tr_chunked;

enum { TR_CHUNKED_MORE = 0, TR_CHUNKED_DONE = 1, TR_CHUNKED_BAD = -1 };

void tr_chunked_init(tr_chunked *c);

/* Decodes in[0..len): calls out(ctx, data, n) for each run of body bytes. Returns
 * TR_CHUNKED_MORE, TR_CHUNKED_DONE once the last chunk and trailers have ended (*used says
 * how many input bytes that took), or TR_CHUNKED_BAD for a malformed coding. A nonzero
 * return of out stops decoding and is returned. */
int tr_chunked_feed(tr_chunked *c, const uint8_t *in, size_t len, size_t *used,
                    int (*out)(void *ctx, const uint8_t *data, size_t n), void *ctx);

#endif
