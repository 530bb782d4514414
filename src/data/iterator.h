/* Shard iterators: opaque, tamper-evident tokens that say where a GetRecords call reads next.
 *   base64url( version | stream id | shard index | next core seq | issued ms | HMAC-SHA256/128 )
 * The HMAC key is the server's secret, so a client cannot forge or edit one; the issue time
 * lets GetRecords refuse iterators older than the expiry (5 minutes on AWS). */
#ifndef TR_DATA_ITERATOR_H
#define TR_DATA_ITERATOR_H

#include <stddef.h>
#include <stdint.h>

#define TR_ITERATOR_MAX 128 /* encoded length bound, with NUL */
#define TR_SECRET_BYTES 32

typedef struct tr_iterator {
    uint64_t stream_id;
    uint32_t shard_index;
    uint64_t next_seq;
    int64_t issued_ms;
} tr_iterator;

/* Encodes into out (TR_ITERATOR_MAX bytes, NUL-terminated). */
void tr_iterator_encode(const tr_iterator *it, const uint8_t key[TR_SECRET_BYTES], char *out);

typedef enum { TR_ITER_OK = 0, TR_ITER_INVALID = -1, TR_ITER_EXPIRED = -2 } tr_iter_status;

/* Decodes and checks the MAC and age (now_ms - issued_ms > ttl_ms: expired). */
tr_iter_status tr_iterator_decode(const char *s, size_t len, const uint8_t key[TR_SECRET_BYTES],
                                  int64_t now_ms, int64_t ttl_ms, tr_iterator *out);

#endif
