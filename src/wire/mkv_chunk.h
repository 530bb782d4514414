/* GetMedia and GetMediaForFragmentList output: a sequence of chunks, each a self-contained
 * Matroska document that KVS consumers (the parser library, GStreamer, ffmpeg) read one after
 * the other:
 *
 *   header (EBML header + Segment of unknown size + Info + Tracks, as on_header gave it)
 *   Tags { AWS_KINESISVIDEO_FRAGMENT_NUMBER, AWS_KINESISVIDEO_SERVER_TIMESTAMP,
 *          AWS_KINESISVIDEO_PRODUCER_TIMESTAMP }
 *   Cluster (as on_fragment gave it: known size)
 *   producer Tags (as on_fragment gave them, if any)
 *   Tags { AWS_KINESISVIDEO_MILLIS_BEHIND_NOW, AWS_KINESISVIDEO_CONTINUATION_TOKEN }
 *
 * The Segment of unknown size ends where the next chunk's EBML header begins. Timestamps are
 * strings of decimal seconds with milliseconds ("1726677687.758"). The chunk is built as a
 * head (everything before the Cluster) and a tail (everything after), so that a server can
 * send a stored cluster between them without copying it. A stream that stops on an error ends
 * with an error chunk instead: header + Tags { [FRAGMENT_NUMBER,] AWS_KINESISVIDEO_ERROR_CODE,
 * AWS_KINESISVIDEO_ERROR_ID }.
 *
 * Every Tags element written here is  Tags > Tag > Targets { TargetTypeValue 50 } +
 * SimpleTag { TagName, TagString } per item. */
#ifndef TR_WIRE_MKV_CHUNK_H
#define TR_WIRE_MKV_CHUNK_H

#include <stddef.h>
#include <stdint.h>

#include "wire/ebml.h"
#include "wire/mkv_ingest.h"

#define TR_MKV_TAG_FRAGMENT_NUMBER "AWS_KINESISVIDEO_FRAGMENT_NUMBER"
#define TR_MKV_TAG_SERVER_TIMESTAMP "AWS_KINESISVIDEO_SERVER_TIMESTAMP"
#define TR_MKV_TAG_PRODUCER_TIMESTAMP "AWS_KINESISVIDEO_PRODUCER_TIMESTAMP"
#define TR_MKV_TAG_MILLIS_BEHIND_NOW "AWS_KINESISVIDEO_MILLIS_BEHIND_NOW"
#define TR_MKV_TAG_CONTINUATION_TOKEN "AWS_KINESISVIDEO_CONTINUATION_TOKEN"
#define TR_MKV_TAG_ERROR_CODE "AWS_KINESISVIDEO_ERROR_CODE"
#define TR_MKV_TAG_ERROR_ID "AWS_KINESISVIDEO_ERROR_ID"

/* Room for the longest "-9223372036854775.808" plus NUL. */
#define TR_MKV_SECONDS_MAX 24

/* Epoch milliseconds as decimal seconds with exactly three decimals: 1726677687758 ->
 * "1726677687.758", -5 -> "-0.005". out needs TR_MKV_SECONDS_MAX bytes. */
void tr_mkv_format_seconds(int64_t ms, char out[TR_MKV_SECONDS_MAX]);

/* Appends one Tags element holding the n items (nothing when n == 0). */
void tr_mkv_put_tags(tr_ebml_buf *b, const tr_mkv_tag *tags, size_t n);

typedef struct tr_mkv_chunk_meta {
    const char *fragment_number;    /* decimal string */
    int64_t server_timestamp_ms;    /* when ingestion of the fragment started */
    int64_t producer_timestamp_ms;  /* the producer's time for the fragment */
    int64_t millis_behind_now;      /* how far this chunk is behind the stream's newest */
    const char *continuation_token; /* NULL: the fragment number, as KVS does */
} tr_mkv_chunk_meta;

/* Append to b (check b->failed once at the end). The head: header + Tags{FRAGMENT_NUMBER,
 * SERVER_TIMESTAMP, PRODUCER_TIMESTAMP}. */
void tr_mkv_chunk_head(tr_ebml_buf *b, const uint8_t *header, size_t header_len,
                       const tr_mkv_chunk_meta *m);
/* The tail: the producer Tags element (NULL/0 for none) + Tags{MILLIS_BEHIND_NOW,
 * CONTINUATION_TOKEN}. */
void tr_mkv_chunk_tail(tr_ebml_buf *b, const uint8_t *producer_tags, size_t tags_len,
                       const tr_mkv_chunk_meta *m);
/* A whole chunk: head + cluster + tail. Returns 0, or -1 when b failed. */
int tr_mkv_chunk_build(tr_ebml_buf *b, const uint8_t *header, size_t header_len,
                       const uint8_t *cluster, size_t cluster_len, const uint8_t *producer_tags,
                       size_t tags_len, const tr_mkv_chunk_meta *m);

/* An error chunk: header (when NULL, a bare EBML header + Segment of unknown size, for a
 * stream with nothing stored yet) + Tags{[FRAGMENT_NUMBER when not NULL], ERROR_CODE,
 * ERROR_ID}. error_code NULL means tr_kvs_error_name(error_id). Returns 0, or -1 when b
 * failed. */
int tr_mkv_chunk_error(tr_ebml_buf *b, const uint8_t *header, size_t header_len,
                       const char *fragment_number, int error_id, const char *error_code);

/* ---- reading chunks back (tests, consumers) ---- */

typedef struct tr_mkv_chunk_view {
    size_t len;                /* the chunk's bytes: up to the next chunk or the end */
    const uint8_t *cluster;    /* the Cluster element, NULL when the chunk has none */
    size_t cluster_len;
    unsigned ntags_elements;   /* Tags elements in the chunk */
} tr_mkv_chunk_view;

/* Reads the chunk at buf (of the len bytes available, which may hold more chunks after it):
 * calls fn (may be NULL) for every SimpleTag (name, value; trailing NULs dropped) of every
 * Tags element, in order. Returns 0 with *v set, fn's nonzero value, or -1 when buf does not
 * start with a well-formed chunk. */
int tr_mkv_chunk_read(const uint8_t *buf, size_t len, tr_mkv_chunk_view *v,
                      int (*fn)(void *ctx, const char *name, size_t name_len, const char *value,
                                size_t value_len),
                      void *ctx);

#endif
