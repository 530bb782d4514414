/* Data Streams sequence numbers as clients see them: 56 decimal digits,
 *   "49" | stream id (16 digits) | shard index (18 digits) | core seq (20 digits),
 * so they grow with the core's per-shard sequence number, compare numerically (equal length,
 * no leading zero), and say which stream and shard they belong to. */
#ifndef TR_DATA_SEQNUM_H
#define TR_DATA_SEQNUM_H

#include <stddef.h>
#include <stdint.h>

#define TR_SEQNUM_DIGITS 56

typedef struct tr_seqnum {
    uint64_t stream_id;
    uint32_t shard_index;
    uint64_t seq;
} tr_seqnum;

/* Writes the 56 digits and a NUL into out (TR_SEQNUM_DIGITS + 1 bytes). */
void tr_seqnum_format(const tr_seqnum *sn, char *out);
/* Parses one of ours. Returns 0, or -1 when the text is not a sequence number we issued. */
int tr_seqnum_parse(const char *s, size_t len, tr_seqnum *out);

#endif
