/* On-disk frame of one record. Pure encode/decode over byte buffers: no I/O, so that the
 * segment reader, recovery and the fuzz target share one definition of "a valid frame".
 *
 *   u32 body_len | u32 crc32c(body_len bytes || body) | body
 *   body = u64 seq | i64 arrival_ms | i64 producer_ms | u32 flags | u16 pkey_len |
 *          u16 ehk_len | u32 data_len | pkey | ehk | data          (all little-endian)
 */
#ifndef TR_CORE_FRAME_H
#define TR_CORE_FRAME_H

#include "core/record.h"

#define TR_FRAME_HEADER_BYTES 8u
#define TR_FRAME_FIXED_BODY_BYTES 36u
#define TR_FRAME_MAX_BYTES \
    (TR_FRAME_HEADER_BYTES + TR_FRAME_FIXED_BODY_BYTES + 2u * TR_MAX_KEY_BYTES + TR_MAX_FRAGMENT_BYTES)

/* Bytes the frame of `in` takes on disk. */
size_t tr_frame_size(const tr_record_in *in);

/* Writes the frame of `in` with the given seq and arrival time into out (which has at least
 * tr_frame_size(in) bytes). Returns the bytes written. */
size_t tr_frame_encode(uint8_t *out, const tr_record_in *in, uint64_t seq, int64_t arrival_ms);

/* The same frame without its payload, for a writer that writes the payload from the caller's
 * buffer itself (pwritev): writes the first tr_frame_size(in) - in->data_len bytes (lengths,
 * fields, keys, and the checksum, which covers in->data) and returns that count. On disk the
 * payload follows them. */
size_t tr_frame_encode_head(uint8_t *out, const tr_record_in *in, uint64_t seq,
                            int64_t arrival_ms);

typedef enum {
    TR_FRAME_OK = 0,
    TR_FRAME_SHORT = 1, /* buffer ends before the frame does: need more bytes */
    TR_FRAME_BAD = 2,   /* not a valid frame (bad length, checksum or field sizes) */
} tr_frame_status;

/* Decodes the frame at buf[0..len). On TR_FRAME_OK fills rec (views into buf) and *frame_len.
 * On TR_FRAME_SHORT, *frame_len is the full frame length when the header was readable
 * (0 otherwise), so the caller can read that much. */
tr_frame_status tr_frame_decode(const uint8_t *buf, size_t len, tr_record *rec,
                                size_t *frame_len);

#endif
