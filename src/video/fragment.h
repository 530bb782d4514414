/* How a video fragment is kept on the shard-log core: one record of kind TR_KIND_FRAGMENT
 * per MKV cluster, self-contained so that a GetMedia chunk, an HLS segment or a thumbnail
 * needs exactly one read:
 *
 *   u32 magic "TRF1" | u32 flags | i64 producer_ms | i64 server_ms | i64 duration_ms |
 *   u64 timecode | u32 frame_count | u32 header_len | u32 cluster_len | u32 tags_len |
 *   header (EBML header + Segment + Info + Tracks) | Cluster | producer Tags
 *
 * little-endian. Repeating the session's header (about a kilobyte with the codec private
 * data) in every fragment costs well under 1% of a fragment and spares readers from
 * finding a separate track-header record among interleaved sessions. The record's own
 * producer_ms is the producer timestamp too; its checksum covers all of it. */
#ifndef TR_VIDEO_FRAGMENT_H
#define TR_VIDEO_FRAGMENT_H

#include <stddef.h>
#include <stdint.h>

#define TR_FRAGMENT_META_BYTES 56
#define TR_FRAGMENT_KEY_FIRST 0x1u   /* flags: the fragment starts with a keyframe */
/* flags: header, cluster and tags are sealed (kms/kms.h) as one payload after the meta, which
 * stays clear (and is the seal's AAD) so that the index is built without keys:
 *   meta (56 bytes) | sealed(header | Cluster | Tags)
 * The lengths in the meta are the plaintext's. */
#define TR_FRAGMENT_SEALED 0x2u

/* Fragment numbers as clients see them: "91" + stream id (15 digits) + the shard's record
 * sequence number (20 digits): they grow in ingestion order and compare as numbers. */
#define TR_FRAGMENT_NUMBER_DIGITS 37

typedef struct tr_fragment {
    uint32_t flags;
    int64_t producer_ms;
    int64_t server_ms;        /* when ingestion of the fragment started */
    int64_t duration_ms;
    uint64_t timecode;        /* the cluster timecode as sent */
    uint32_t frame_count;
    const uint8_t *header;
    size_t header_len;
    const uint8_t *cluster;
    size_t cluster_len;
    const uint8_t *tags;      /* NULL when the producer sent none */
    size_t tags_len;
    /* A sealed fragment (TR_FRAGMENT_SEALED) as decoded: header, cluster and tags are NULL
     * until opened (video/media.h), and this is the sealed part. */
    const uint8_t *sealed;
    size_t sealed_len;
} tr_fragment;

/* The encoded size of f. */
size_t tr_fragment_size(const tr_fragment *f);
/* Encodes f into out (tr_fragment_size bytes). */
void tr_fragment_encode(const tr_fragment *f, uint8_t *out);
/* Views a stored payload; pointers point into buf. Returns 0, or -1 when it is not one. */
int tr_fragment_decode(const uint8_t *buf, size_t len, tr_fragment *f);
/* Points header, cluster and tags into the opened plaintext of a sealed fragment. */
void tr_fragment_view(tr_fragment *f, const uint8_t *plain);

void tr_fragment_number(uint64_t stream_id, uint64_t seq, char out[TR_FRAGMENT_NUMBER_DIGITS + 1]);
/* Parses one of ours; -1 when the text is not a fragment number of this stream. */
int tr_fragment_number_parse(const char *s, uint64_t stream_id, uint64_t *seq);

#endif
