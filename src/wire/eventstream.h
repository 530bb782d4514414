/* The AWS event-stream framing (application/vnd.amazon.eventstream), as SubscribeToShard
 * answers with: each message is
 *   u32 total_len | u32 headers_len | u32 crc32(prelude) | headers | payload | u32 crc32(all)
 * big-endian, CRC-32 (IEEE). Headers here are string-valued (type 7): u8 name_len | name |
 * u8 7 | u16 value_len | value. */
#ifndef TR_WIRE_EVENTSTREAM_H
#define TR_WIRE_EVENTSTREAM_H

#include <stddef.h>
#include <stdint.h>

typedef struct tr_es_header {
    const char *name;
    const char *value;
} tr_es_header;

/* Encodes one message into a malloc'd buffer (*out, *out_len). Returns 0, or -1 when out of
 * memory or a header is too long (name > 255 or value > 65535 bytes). */
int tr_es_encode(const tr_es_header *headers, size_t nheaders, const void *payload,
                 size_t payload_len, uint8_t **out, size_t *out_len);

/* Decodes the message at buf (for tests and fuzzing): checks lengths and both CRCs and calls
 * fn for each header. Returns the message length, 0 when more bytes are needed, or -1 when it
 * is malformed. *payload / *payload_len point into buf. */
long tr_es_decode(const uint8_t *buf, size_t len,
                  int (*fn)(void *ctx, const char *name, size_t name_len, const char *value,
                            size_t value_len),
                  void *ctx, const uint8_t **payload, size_t *payload_len);

#endif
