/* Private to the KVS data-plane face: one PutMedia ingest session, whatever carries it (a
 * chunked HTTP/1.1 or HTTP/2 request, or a websocket). The transport feeds the MKV body and
 * gives a sink for the acks; the session parses, stores each fragment and acks it:
 *
 *   BUFFERING  when a cluster's timecode has arrived
 *   RECEIVED   when the cluster is whole (and valid)
 *   PERSISTED  when its record is fsync'd (streams with retention > 0 only)
 *   ERROR      with a KVS ErrorId; the rest of the body is ignored and the acks end
 *   IDLE       every few seconds without data; after 30 s without data the acks end
 *
 * Loop thread only; the storage completions come back as posted tasks. */
#ifndef TR_API_KVS_INGEST_H
#define TR_API_KVS_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "api/kvs_media_int.h"

typedef struct kvs_ingest kvs_ingest;

typedef struct kvs_ingest_sink {
    /* The session is accepted: start the answer (before the first ack). */
    void (*begin)(void *ctx);
    /* One ack: a JSON object and a newline. */
    void (*ack)(void *ctx, const char *line, size_t len);
    /* No more acks will come: end the answer. */
    void (*end)(void *ctx);
    /* Backpressure (optional): 1 when too much of the session waits for the store (more
     * than KVS_INGEST_MAX_PENDING fragments or KVS_INGEST_MAX_PENDING_BYTES): stop reading
     * the body; 0 when appends completed: read again. */
    void (*pause)(void *ctx, int pause);
} kvs_ingest_sink;

#define KVS_INGEST_MAX_PENDING 4
#define KVS_INGEST_MAX_PENDING_BYTES (64u << 20)

/* The headers (or query parameters) of a PutMedia, checked. */
typedef struct kvs_ingest_params {
    const char *stream_name;     /* one of name and arn */
    const char *stream_arn;
    const char *timecode_type;   /* "ABSOLUTE" (default) or "RELATIVE" */
    const char *start_timestamp; /* "1663277247.152": seconds; default now */
} kvs_ingest_params;

/* Starts a session. On a refusal before any ack (bad parameters, unknown stream) returns NULL
 * with the KVS error type and message to answer with. */
kvs_ingest *kvs_ingest_new(tr_kvs_media *k, const kvs_ingest_params *p,
                           const kvs_ingest_sink *sink, void *sink_ctx, const char **err_type,
                           char *err_msg, size_t err_len);
/* The next bytes of the body. */
void kvs_ingest_feed(kvs_ingest *in, const uint8_t *data, size_t len);
/* The body ended: a complete last cluster is stored; then the acks end. */
void kvs_ingest_finish(kvs_ingest *in);
/* The transport is gone: no more sink calls. The session frees itself once the fragments it
 * queued are stored (a cluster cut short is never stored). */
void kvs_ingest_close(kvs_ingest *in);

/* Once a second, from the face's tick: IDLE acks, and the end of sessions that went quiet. */
void kvs_ingest_tick(tr_kvs_media *k, int64_t now_ms);

#endif
