/* The Matroska body of one Kinesis Video Streams PutMedia request, parsed as it arrives.
 *
 * A producer streams  EBML header | Segment (usually of unknown size) { Info, Tracks,
 * [Tags], Cluster, [Tags], Cluster, ... }  for as long as the connection lasts; each Cluster
 * is one fragment. This push parser takes the body in pieces of any size (one byte at a time
 * gives exactly the same callbacks and result as the whole body at once), never needs more
 * than the current element, and hands out:
 *
 *   on_header          once, when Info and Tracks have both been read: a self-contained
 *                      header (EBML header + Segment of UNKNOWN size + Info + Tracks), so that
 *                      header + any stored Cluster is a playable file and a GetMedia chunk is
 *                      a concatenation (wire/mkv_chunk.h), plus the parsed track table;
 *   on_fragment_start  when a cluster's Timecode has been read (its first child, a few bytes
 *                      into the cluster: the ack must carry the timecode, which the cluster's
 *                      first byte does not yet tell), for the BUFFERING ack;
 *   on_fragment        when a cluster is complete, with the Cluster re-encoded with a known
 *                      size (block bytes untouched) and what the service needs to index it.
 *
 * Where fragments end. A cluster of known size ends with its last byte. A cluster of unknown
 * size (GStreamer's matroskamux streamable=true, the producer SDK) ends where the next
 * top-level element begins (Cluster, Tags, Cues, ...), where a Segment of known size ends,
 * or at tr_mkv_parser_finish. Producers send a Tags element holding the tag
 * AWS_KINESISVIDEO_END_OF_FRAGMENT right after a fragment's last frame so that it is
 * acknowledged without waiting for the next cluster: being a top-level element, it ends the
 * cluster the moment its ID has arrived.
 *
 * Producer metadata. Tags between clusters carry the producer's fragment metadata
 * (putKinesisVideoFragmentMetadata). The producer SDK writes pending metadata right BEFORE
 * the cluster it belongs to ("inserted before the fragment start ... as tags are level 1 and
 * will break MKV clusters", PIC Stream.c), so Tags attach to the NEXT cluster: every
 * SimpleTag read since the previous cluster goes with the next one (Tags before the first
 * cluster, as GStreamer writes its encoder tags, go with the first). Names starting with
 * "AWS" are reserved: END_OF_FRAGMENT is acted on and others are dropped, so that a producer
 * cannot forge the tags GetMedia adds. Only TagName/TagString pairs of SimpleTags directly
 * under a Tag are kept; the rest of a Tags element (Targets, TagLanguage, nested SimpleTags,
 * TagBinary) is read over.
 *
 * One Segment per body: a second EBML header or Segment is 4006, as KVS answers "more than
 * one Segment" (the producer SDK starts a new PutMedia connection for a new stream header);
 * clusters before it are still handed out.
 *
 * Errors are KVS ErrorIds, the numbers the PutMedia ERROR ack carries. After an error the
 * parser is spent: every later call returns the same error. Nothing is skipped silently
 * except the elements Matroska defines as skippable (Void, CRC-32, SeekHead, Cues,
 * Attachments, Chapters and unknown top-level elements of known size; Void, CRC-32, Position
 * and PrevSize inside clusters, which the re-encoded cluster leaves out since they would be
 * wrong in it).
 *
 * Not thread-safe: one parser per PutMedia connection, fed from one thread. */
#ifndef TR_WIRE_MKV_INGEST_H
#define TR_WIRE_MKV_INGEST_H

#include <stddef.h>
#include <stdint.h>

/* KVS ErrorIds (PutMedia acks, GetMedia error chunks). */
enum {
    TR_KVS_STREAM_READ_ERROR = 4000,
    TR_KVS_MAX_FRAGMENT_SIZE_REACHED = 4001,
    TR_KVS_MAX_FRAGMENT_DURATION_REACHED = 4002,
    TR_KVS_MAX_CONNECTION_DURATION_REACHED = 4003,
    TR_KVS_FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS = 4004,
    TR_KVS_INVALID_MKV_DATA = 4006,
    TR_KVS_INVALID_PRODUCER_TIMESTAMP = 4007,
    TR_KVS_STREAM_NOT_ACTIVE = 4008,
    TR_KVS_FRAGMENT_METADATA_LIMIT_REACHED = 4009,
    TR_KVS_TRACK_NUMBER_MISMATCH = 4010,
    TR_KVS_FRAMES_MISSING_FOR_TRACK = 4011,
    TR_KVS_MORE_THAN_ALLOWED_TRACKS_FOUND = 4012,
    TR_KVS_KMS_KEY_ACCESS_DENIED = 4500,
    TR_KVS_KMS_KEY_DISABLED = 4501,
    TR_KVS_KMS_KEY_VALIDATION_ERROR = 4502,
    TR_KVS_KMS_KEY_UNAVAILABLE = 4503,
    TR_KVS_KMS_KEY_INVALID_USAGE = 4504,
    TR_KVS_KMS_KEY_INVALID_STATE = 4505,
    TR_KVS_KMS_KEY_NOT_FOUND = 4506,
    TR_KVS_INTERNAL_ERROR = 5000,
    TR_KVS_ARCHIVAL_ERROR = 5001,
};

/* The name KVS gives an ErrorId ("INVALID_MKV_DATA"), for the ack's ErrorCode and GetMedia's
 * AWS_KINESISVIDEO_ERROR_CODE; "UNKNOWN_ERROR" for other numbers. */
const char *tr_kvs_error_name(int error_id);

#define TR_MKV_MAX_TRACKS 3          /* more is 4012 */
#define TR_MKV_CODEC_ID_MAX 47       /* longer CodecIDs are 4006 */

/* The tag that ends the current fragment at once. */
#define TR_MKV_TAG_END_OF_FRAGMENT "AWS_KINESISVIDEO_END_OF_FRAGMENT"

/* Limits; tr_mkv_limits_default gives KVS's. Tests lower them. */
typedef struct tr_mkv_limits {
    size_t max_fragment_bytes;        /* a cluster's data past this: 4001 (50 MiB) */
    int64_t max_fragment_duration_ms; /* last frame - first frame past this: 4002 (10 s) */
    size_t max_header_bytes;          /* EBML header, Info, Tracks each: 4006 (1 MiB);
                                         a Tags element past it: 4009 */
    unsigned max_tags_per_fragment;   /* producer SimpleTags per fragment: 4009 (10) */
    size_t max_tag_name_bytes;        /* 4009 (128) */
    size_t max_tag_value_bytes;       /* 4009 (256) */
} tr_mkv_limits;

void tr_mkv_limits_default(tr_mkv_limits *l);

/* Matroska TrackType values. */
enum { TR_MKV_TRACK_VIDEO = 1, TR_MKV_TRACK_AUDIO = 2 };

/* One TrackEntry. Pointers point into the header bytes it was parsed from. */
typedef struct tr_mkv_track {
    uint64_t number;               /* TrackNumber: what blocks name (>= 1, unique) */
    uint64_t uid;                  /* TrackUID, 0 if absent */
    unsigned type;                 /* TrackType (TR_MKV_TRACK_*), 0 if absent */
    char codec_id[TR_MKV_CODEC_ID_MAX + 1]; /* "V_MPEG4/ISO/AVC", "A_AAC", ...; NUL-ended */
    const uint8_t *codec_private;  /* CodecPrivate (AVCC, HVCC, AudioSpecificConfig, ...) */
    size_t codec_private_len;      /* 0 if absent */
    uint64_t default_duration_ns;  /* DefaultDuration, 0 if absent */
    uint64_t pixel_width, pixel_height; /* Video, 0 if absent */
    double sampling_frequency;     /* Audio, 8000.0 (the Matroska default) if absent */
    uint64_t channels;             /* Audio, 1 (the default) if absent */
} tr_mkv_track;

typedef struct tr_mkv_header {
    const uint8_t *bytes;          /* EBML header + Segment (unknown size) + Info + Tracks */
    size_t len;
    uint64_t timecode_scale_ns;    /* TimecodeScale: ns per timecode unit (default 1000000) */
    const tr_mkv_track *tracks;    /* in the order of the Tracks element */
    size_t ntracks;                /* 1..TR_MKV_MAX_TRACKS */
} tr_mkv_header;

/* Parses header bytes as on_header gives them (e.g. read back from storage): EBML header,
 * Segment, Info and Tracks; stops at the first element after the Segment's Info and Tracks
 * have been read (so a whole chunk or file is fine too). h->bytes/len are the input; tracks
 * receives the table (h->tracks points to it). Returns 0 or an ErrorId: 4012 for more than
 * TR_MKV_MAX_TRACKS tracks, 4006 for anything else wrong. */
int tr_mkv_header_parse(const uint8_t *bytes, size_t len, tr_mkv_header *h,
                        tr_mkv_track tracks[TR_MKV_MAX_TRACKS]);

/* One producer metadata item: NUL-terminated, no NUL inside. */
typedef struct tr_mkv_tag {
    const char *name;
    const char *value;
} tr_mkv_tag;

typedef struct tr_mkv_fragment {
    const uint8_t *cluster;        /* the Cluster element, of known size */
    size_t cluster_len;
    uint64_t timecode;             /* the cluster Timecode as sent (TimecodeScale units) */
    int64_t timecode_ms;           /* the same in milliseconds */
    int64_t first_frame_ms;        /* earliest frame timecode (absolute, ms) */
    int64_t last_frame_ms;         /* latest frame timecode (absolute, ms) */
    int64_t duration_ms;           /* from the first frame to the end of the last: for each
                                      track, its latest frame + that frame's BlockDuration or
                                      the track's DefaultDuration, else the mean spacing of
                                      the track's frames in this fragment; the latest of those */
    uint32_t frames[TR_MKV_MAX_TRACKS]; /* frames per track, indexed like header tracks */
    uint32_t frame_count;          /* all tracks; a laced block counts each frame */
    int key_first;                 /* 1 when the fragment starts with a keyframe: the first
                                      block of the first video track, or the first block when
                                      there is no video track */
    const uint8_t *tags;           /* producer metadata as one Tags element, NULL if none */
    size_t tags_len;
    const tr_mkv_tag *tag_list;    /* the same as pairs, in the order received */
    size_t ntags;
} tr_mkv_fragment;

/* Callbacks return 0 to go on. Any other value stops the parser: feed/finish return it (use an
 * ErrorId, e.g. TR_KVS_INTERNAL_ERROR, so that the caller can ack it). Everything they are
 * given is valid only during the call: copy what you keep; header.bytes and the track table
 * are the exception and stay valid until tr_mkv_parser_free. Any callback may be NULL. */
typedef struct tr_mkv_callbacks {
    int (*on_header)(void *ctx, const tr_mkv_header *h);
    int (*on_fragment_start)(void *ctx, uint64_t timecode, int64_t timecode_ms);
    int (*on_fragment)(void *ctx, const tr_mkv_fragment *f);
} tr_mkv_callbacks;

typedef struct tr_mkv_parser tr_mkv_parser;

/* A parser for one PutMedia body. limits NULL means tr_mkv_limits_default. The callbacks
 * struct is copied. NULL when out of memory. */
tr_mkv_parser *tr_mkv_parser_new(const tr_mkv_callbacks *cb, void *ctx,
                                 const tr_mkv_limits *limits);

/* The next len bytes of the body. Returns 0 (callbacks may have run), or an ErrorId (or a
 * callback's nonzero value), after which the parser is spent. */
int tr_mkv_parser_feed(tr_mkv_parser *p, const void *data, size_t len);

/* The body has ended. A cluster of unknown size that ends on an element boundary is complete
 * and emitted now. Returns 0, or 4006 when the body stopped inside an element (a cut-short
 * cluster is dropped, and error_timecode names it) or inside the header; an empty body is 0.
 * Feeding after finish is 4006. */
int tr_mkv_parser_finish(tr_mkv_parser *p);

/* After an error: the cluster Timecode (as sent) of the fragment it concerns, or -1 when it
 * concerns none or it was not read yet. */
int64_t tr_mkv_parser_error_timecode(const tr_mkv_parser *p);

/* After an error: a short English explanation for logs ("" when there was none). */
const char *tr_mkv_parser_error_detail(const tr_mkv_parser *p);

/* Bytes fed so far (for logs: where in the body an error is). */
uint64_t tr_mkv_parser_offset(const tr_mkv_parser *p);

void tr_mkv_parser_free(tr_mkv_parser *p);

/* ---- reading frames back from a stored cluster (remuxers, image extraction, tests) ---- */

typedef struct tr_mkv_frame {
    uint64_t track;        /* TrackNumber */
    int64_t timecode;      /* absolute, in TimecodeScale units: cluster + block timecode, plus
                              for the k-th frame of a laced block k * the track's
                              DefaultDuration (when the header is given and has one) */
    int keyframe;          /* SimpleBlock keyframe flag, or a BlockGroup without ReferenceBlock */
    uint64_t duration;     /* BlockDuration (TimecodeScale units) of a BlockGroup, 0 if none */
    const uint8_t *data;   /* the frame, inside the cluster buffer */
    size_t len;
    unsigned lace_index;   /* 0 for the first (or only) frame of its block */
} tr_mkv_frame;

/* Calls fn for every frame of the Cluster element at cluster (ID and size included, as
 * on_fragment gives it; an unknown size runs to len) in stored order. h (may be NULL) gives
 * the tracks' DefaultDuration for laced frames. Returns 0, fn's nonzero value, or -1 when the
 * cluster is malformed (blocks are checked as the ingest parser checks them). */
int tr_mkv_cluster_frames(const uint8_t *cluster, size_t len, const tr_mkv_header *h,
                          int (*fn)(void *ctx, const tr_mkv_frame *fr), void *ctx);

#endif
