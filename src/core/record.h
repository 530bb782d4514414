/* The one record type of the shard-log core. Every face (Data Streams records, video
 * fragments and track headers, Firehose and Analytics outputs) is stored as one of these. */
#ifndef TR_CORE_RECORD_H
#define TR_CORE_RECORD_H

#include <stddef.h>
#include <stdint.h>

#define TR_MAX_RECORD_BYTES (10u * 1024 * 1024) /* payload limit of a data record */
#define TR_MAX_FRAGMENT_BYTES (64u * 1024 * 1024) /* of a video fragment (KVS: 50 MB clusters) */
#define TR_MAX_KEY_BYTES 65535u                 /* partition / explicit hash key limit */
#define TR_NO_TIME INT64_MIN                    /* producer_ms when none was given */

/* Record kinds live in the low byte of flags; higher bits are per-kind flags. */
enum {
    TR_KIND_DATA = 0,           /* a Data Streams / Firehose / Analytics record */
    TR_KIND_TRACK_HEADER = 1,   /* video: EBML header + Segment Info + Tracks */
    TR_KIND_FRAGMENT = 2,       /* video: one MKV cluster */
};
#define TR_FLAG_KIND_MASK 0xffu
#define TR_FLAG_ENCRYPTED 0x100u /* payload is sealed by the kms layer */
#define TR_SEAL_MAX_OVERHEAD 64u /* what sealing may add to a payload (kms: 33 bytes) */

/* The payload limit of a record of these flags: video fragments may be larger than data, and
 * a sealed payload carries the seal's overhead on top of its limit. */
static inline uint32_t tr_record_max_bytes(uint32_t flags) {
    uint32_t max = (flags & TR_FLAG_KIND_MASK) == TR_KIND_FRAGMENT ? TR_MAX_FRAGMENT_BYTES
                                                                   : TR_MAX_RECORD_BYTES;
    return flags & TR_FLAG_ENCRYPTED ? max + TR_SEAL_MAX_OVERHEAD : max;
}

/* A record as given to an append: the caller owns every buffer. */
typedef struct tr_record_in {
    int64_t producer_ms; /* TR_NO_TIME if absent */
    uint32_t flags;
    const void *pkey;
    uint32_t pkey_len;
    const void *ehk; /* explicit hash key, may be NULL */
    uint32_t ehk_len;
    const void *data;
    uint32_t data_len;
} tr_record_in;

/* A stored record as returned by a read: views into the read batch's buffer. */
typedef struct tr_record {
    uint64_t seq;
    int64_t arrival_ms;
    int64_t producer_ms;
    uint32_t flags;
    const uint8_t *pkey;
    uint32_t pkey_len;
    const uint8_t *ehk;
    uint32_t ehk_len;
    const uint8_t *data;
    uint32_t data_len;
} tr_record;

#endif
