/* libtributary: a consumer library for Kinesis Video Streams GetMedia output, for computer-
 * vision programs and other readers that want frames, not Matroska.
 *
 * GetMedia and GetMediaForFragmentList answer a stream of chunks, each a self-contained
 * Matroska document holding one fragment (wire/mkv_chunk.h has the layout):
 *
 *   EBML header + Segment { Info, Tracks, Tags{FRAGMENT_NUMBER, SERVER_TIMESTAMP,
 *   PRODUCER_TIMESTAMP}, Cluster, [producer Tags], Tags{MILLIS_BEHIND_NOW,
 *   CONTINUATION_TOKEN} }
 *
 * or, when the server stops on an error, an error chunk: EBML header + Segment { [Info,
 * Tracks,] Tags{[FRAGMENT_NUMBER,] ERROR_CODE, ERROR_ID} }.
 *
 * Two layers:
 *   - tr_client_parser: a push parser. Feed it the response body in pieces of any size (one
 *     byte at a time gives exactly the callbacks of the whole body at once); it calls back
 *     once per fragment with its metadata and track table, once per frame, and once per
 *     error chunk. It never reads past what it was given, never needs more memory than one
 *     chunk, and refuses malformed input with an error instead of crashing (it is fuzzed).
 *   - tr_client_get_media / tr_client_get_media_for_fragment_list: a small blocking HTTP/1.1
 *     client on plain sockets that POSTs the request and feeds the answer to a parser.
 *
 * This header needs only the C standard library; link with libtributary_client.a (or the
 * project's trlib). Nothing here is thread-safe: use one parser or tr_client per thread. */
#ifndef TR_CLIENT_GETMEDIA_H
#define TR_CLIENT_GETMEDIA_H

#include <stddef.h>
#include <stdint.h>

/* Results. Negative values are the library's; a callback's nonzero return (use a positive
 * value) stops the parser or the call and is returned as it is. */
enum {
    TR_CLIENT_OK = 0,
    TR_CLIENT_EMKV = -1,       /* the body is not a well-formed sequence of chunks */
    TR_CLIENT_ETOOBIG = -2,    /* a chunk is larger than max_chunk_bytes */
    TR_CLIENT_ENOMEM = -3,     /* out of memory */
    TR_CLIENT_ETRUNCATED = -4, /* the body ended inside a chunk */
    TR_CLIENT_EARG = -5,       /* a bad argument (no stream, unknown selector type, ...) */
    TR_CLIENT_ECONNECT = -6,   /* the host does not resolve or the connection failed */
    TR_CLIENT_EIO = -7,        /* a socket error, or the server closed mid-answer */
    TR_CLIENT_ETIMEOUT = -8,   /* no byte arrived within timeout_ms */
    TR_CLIENT_EHTTP = -9,      /* the server answered an HTTP error (see http_status) */
};

/* A short English name of a result ("malformed GetMedia output", ...). */
const char *tr_client_strerror(int rc);

/* A timestamp that was absent or unreadable. */
#define TR_CLIENT_NO_TIME INT64_MIN

/* Matroska TrackType values. */
enum { TR_CLIENT_TRACK_VIDEO = 1, TR_CLIENT_TRACK_AUDIO = 2 };

/* One track of a fragment's header. */
typedef struct tr_client_track {
    uint64_t number;               /* what frames name (track_number) */
    unsigned type;                 /* TR_CLIENT_TRACK_*, 0 if absent */
    const char *codec_id;          /* "V_MPEG4/ISO/AVC", "V_MPEGH/ISO/HEVC", "A_AAC", ... */
    const uint8_t *codec_private;  /* AVCC / HVCC / AudioSpecificConfig: a decoder's
                                      extradata; NULL when absent */
    size_t codec_private_len;
    uint64_t width, height;        /* video pixels, 0 if absent */
    double sampling_frequency;     /* audio Hz (Matroska's default 8000 if absent) */
    uint64_t channels;             /* audio (default 1) */
    uint64_t default_duration_ns;  /* 0 if absent */
} tr_client_track;

/* A producer metadata item (kvssink's stream-tags, PutMedia Tags). NUL-terminated. */
typedef struct tr_client_tag {
    const char *name;
    const char *value;
} tr_client_tag;

#define TR_CLIENT_MAX_TRACKS 3

/* One fragment (one chunk), valid only during the callbacks that are given it. */
typedef struct tr_client_fragment {
    const char *fragment_number;   /* decimal string; "" if absent */
    int64_t server_timestamp_ms;   /* epoch ms, TR_CLIENT_NO_TIME if absent */
    int64_t producer_timestamp_ms; /* epoch ms, TR_CLIENT_NO_TIME if absent */
    int64_t millis_behind_now;     /* -1 if absent */
    const char *continuation_token; /* resume after this fragment; "" if absent */
    const tr_client_tag *tags;     /* producer tags, in order */
    size_t ntags;
    const tr_client_track *tracks; /* the track table, in header order */
    size_t ntracks;                /* 1..TR_CLIENT_MAX_TRACKS */
    uint32_t frame_count;          /* frames in the cluster, all tracks */
    uint32_t frames[TR_CLIENT_MAX_TRACKS]; /* per track, indexed like tracks */
    int64_t first_frame_ms, last_frame_ms; /* earliest and latest frame timestamps */
    const uint8_t *chunk;          /* the raw chunk: a playable Matroska file by itself */
    size_t chunk_len;
    uint64_t index;                /* 0 for the first fragment this parser saw */
} tr_client_fragment;

/* One frame, valid only during on_frame. */
typedef struct tr_client_frame {
    uint64_t track_number;
    const tr_client_track *track;  /* its entry in the table; NULL if the table has none */
    int64_t timestamp_ms;          /* absolute (cluster + block timecode), in ms */
    int64_t duration_ms;           /* BlockDuration of a BlockGroup, 0 if none */
    int keyframe;                  /* 1 for a keyframe (sync sample) */
    const uint8_t *data;           /* the frame as stored (AVCC length-prefixed NALs for
                                      H.264/H.265, raw AAC, ...) */
    size_t len;
    uint32_t index;                /* 0 for the fragment's first frame */
} tr_client_frame;

/* An error chunk: the server stopped (fragment not found, internal error, ...). */
typedef struct tr_client_error {
    const char *fragment_number;   /* the fragment concerned, "" if none */
    const char *error_code;        /* AWS_KINESISVIDEO_ERROR_CODE ("FRAGMENT_NOT_FOUND"), "" */
    int error_id;                  /* AWS_KINESISVIDEO_ERROR_ID (4000, 5000, ...), -1 if absent */
} tr_client_error;

/* Callbacks return 0 to go on, anything else (positive) to stop: feed and the client calls
 * return that value. Any may be NULL. Per fragment: on_fragment, on_frame for each frame in
 * stored order, on_fragment_end; a fragment whose cluster is malformed is refused before
 * on_fragment, so a consumer never sees half a fragment. */
typedef struct tr_client_callbacks {
    int (*on_fragment)(void *ctx, const tr_client_fragment *f);
    int (*on_frame)(void *ctx, const tr_client_fragment *f, const tr_client_frame *fr);
    int (*on_fragment_end)(void *ctx, const tr_client_fragment *f);
    int (*on_error)(void *ctx, const tr_client_error *e);
} tr_client_callbacks;

/* ---- the push parser ---- */

typedef struct tr_client_parser tr_client_parser;

/* The default and the smallest useful limit on one chunk's bytes (a KVS fragment is at most
 * 50 MB; the server's own limit is 64 MiB plus the header). */
#define TR_CLIENT_DEFAULT_MAX_CHUNK_BYTES ((size_t)80 * 1024 * 1024)

/* A parser calling cb (copied) with ctx. max_chunk_bytes 0 means the default. NULL when out
 * of memory. Free with tr_client_parser_free. */
tr_client_parser *tr_client_parser_new(const tr_client_callbacks *cb, void *ctx,
                                       size_t max_chunk_bytes);

/* The next len bytes of the body. Returns 0 (callbacks may have run) or the first error or
 * callback value, which then sticks: later feeds and finish return it again. */
int tr_client_parser_feed(tr_client_parser *p, const void *data, size_t len);

/* The body ended. A last chunk without closing Tags that ends on an element boundary is
 * complete and delivered now. Returns 0, TR_CLIENT_ETRUNCATED when the body stopped inside
 * a chunk, or the sticky error. */
int tr_client_parser_finish(tr_client_parser *p);

/* After an error: a short English explanation ("" when there is none). */
const char *tr_client_parser_error_detail(const tr_client_parser *p);

/* Fragments and error chunks delivered so far, and bytes fed. */
uint64_t tr_client_parser_fragments(const tr_client_parser *p);
uint64_t tr_client_parser_offset(const tr_client_parser *p);

void tr_client_parser_free(tr_client_parser *p);

/* ---- the HTTP client ---- */

/* Where GetMedia starts. type is one of "NOW", "EARLIEST", "FRAGMENT_NUMBER" (the fragment
 * after after_fragment_number), "CONTINUATION_TOKEN", "SERVER_TIMESTAMP" and
 * "PRODUCER_TIMESTAMP" (the fragment holding start_timestamp_ms). */
typedef struct tr_client_selector {
    const char *type;
    const char *after_fragment_number;
    const char *continuation_token;
    int64_t start_timestamp_ms;
} tr_client_selector;

/* Parses the command-line form "EARLIEST", "NOW", "FRAGMENT_NUMBER:<n>",
 * "CONTINUATION_TOKEN:<token>", "SERVER_TIMESTAMP:<epoch seconds>" or
 * "PRODUCER_TIMESTAMP:<epoch seconds>" (fractional seconds allowed). sel points into text.
 * Returns 0 or TR_CLIENT_EARG. */
int tr_client_selector_parse(const char *text, tr_client_selector *sel);

/* A server and the outcome of the last call. Set the inputs (tr_client_init gives defaults),
 * make calls, read http_status and error after each. */
typedef struct tr_client {
    const char *host;              /* name or address, e.g. "127.0.0.1" */
    int port;
    int timeout_ms;                /* for connecting and for each wait for bytes; 0: none
                                      (a live GetMedia waits for new fragments forever) */
    size_t max_chunk_bytes;        /* for the parser; 0: the default */
    /* After a call: */
    int http_status;               /* the answer's status, 0 when there was none */
    char error[512];               /* what went wrong: the server's JSON error body, the socket
                                      error, the parser's detail; "" after success */
    uint64_t fragments;            /* fragments and error chunks delivered */
} tr_client;

/* host is kept by reference. timeout_ms 0, max_chunk_bytes 0. */
void tr_client_init(tr_client *c, const char *host, int port);

/* Splits "http://host:port[/]" (port defaults to 80) into host (NUL-terminated, without
 * IPv6 brackets) and *port. Returns 0 or TR_CLIENT_EARG (https is not supported). */
int tr_client_parse_endpoint(const char *url, char *host, size_t host_len, int *port);

/* POST /getMedia {"StreamName" (or "StreamARN" when stream starts with "arn:"),
 * "StartSelector"} and parse the answer with cb. Blocks until the answer ends (a live
 * GetMedia does not: stop it from a callback, or with timeout_ms), a callback stops it, or
 * an error. Returns 0 when the answer ended cleanly, the callback's value, or an error. */
int tr_client_get_media(tr_client *c, const char *stream, const tr_client_selector *sel,
                        const tr_client_callbacks *cb, void *ctx);

/* POST /getMediaForFragmentList {"StreamName"/"StreamARN", "Fragments": [n fragment
 * numbers]}: the listed fragments in order, then the answer ends. */
int tr_client_get_media_for_fragment_list(tr_client *c, const char *stream,
                                          const char *const *fragments, size_t n,
                                          const tr_client_callbacks *cb, void *ctx);

#endif
