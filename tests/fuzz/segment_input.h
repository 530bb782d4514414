/* The input of fuzz_segment, shared with the seed generator:
 *
 *   u8 flags | u8 interval | u32 a_len | u32 idx_len | a (a_len) | idx (idx_len) | b (the rest)
 *
 * `a` is written as a segment file; with SEG_IN_TWO, `b` is written as a second one (which of
 * them is the newest follows from their names, taken from their headers), and with SEG_IN_IDX
 * `idx` is written as a's index file. Lengths beyond the input are cut to what is there. */
#ifndef TR_FUZZ_SEGMENT_INPUT_H
#define TR_FUZZ_SEGMENT_INPUT_H

#include <stddef.h>
#include <stdint.h>

#define SEG_IN_HEADER_BYTES 10u

enum {
    SEG_IN_TWO = 1 << 0,       /* b is a second segment file */
    SEG_IN_IDX = 1 << 1,       /* idx is a's index file */
    SEG_IN_FIX = 1 << 2,       /* rewrite every checksum (headers, frames, index) first */
    SEG_IN_APPEND = 1 << 3,    /* append, commit, read back, reopen */
    SEG_IN_TRIM = 1 << 4,      /* run retention at a time taken from the records */
    SEG_IN_CLOSE = 1 << 5,     /* close the shard and reopen it */
};

/* interval byte -> the shard's index interval in bytes (small ones make many entries) */
static inline uint32_t seg_in_interval(uint8_t v) {
    static const uint32_t choices[4] = {4096, 64, 1, 37};
    return choices[v & 3];
}

#endif
