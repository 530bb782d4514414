/* One shard: an append-only log of records in segment files under its own directory.
 *
 * Writers: only the store's storage thread that owns the shard calls the tr_shard_append_*,
 * sync, roll, trim and close functions. Readers: any thread may call tr_shard_read and the
 * seek/info functions at any time; they see only records that are committed (written and,
 * in the durable mode, fsync'd), never a torn tail. */
#ifndef TR_CORE_SHARD_H
#define TR_CORE_SHARD_H

#include <stdint.h>

#include "core/record.h"

typedef struct tr_shard tr_shard;

typedef struct tr_shard_config {
    uint64_t segment_max_bytes; /* roll when a segment reaches this size */
    int64_t segment_max_age_ms; /* roll when a segment's first record is this old */
    uint32_t index_interval_bytes; /* one sparse-index entry per this many bytes of frames */
} tr_shard_config;

/* Opens (creating if needed) the shard in dir, recovering its tail: a torn or corrupt tail of
 * the newest segment is truncated and logged; corruption anywhere else makes the open fail with
 * TR_ECORRUPT and a log line naming the file and offset. `label` names the shard in logs and
 * metrics (e.g. `stream="s",shard="shardId-000000000000"`); it is copied. */
int tr_shard_open(const char *dir, const char *label, const tr_shard_config *cfg,
                  tr_shard **out);
/* Closes files and frees. No other thread may use the shard any more. */
void tr_shard_free(tr_shard *s);

/* ---- writer side (storage thread only) ---- */

/* Encodes records for the next commit and assigns them consecutive sequence numbers starting
 * at *first_seq; they are not visible to readers until tr_shard_commit. Rolls the segment
 * first when it is full or old (which syncs the old one). A request's records all go into one
 * segment: a roll never splits them. Keys and payloads under 4 KiB are copied; larger payloads
 * are written from the caller's buffers by the commit, so those must stay unchanged until
 * tr_shard_commit (or tr_shard_sync) returns. */
int tr_shard_append(tr_shard *s, const tr_record_in *recs, size_t n, int64_t now_ms,
                    uint64_t *first_seq);
/* Writes the buffered frames and, when `durable`, fdatasyncs. On success the records become
 * visible to readers. On failure the segment is truncated back to its last committed size,
 * the sequence counter is rewound, and the error returned (TR_ENOSPC, TR_EIO). An fsync failure
 * makes the shard read-only (TR_EREADONLY on later appends), since the kernel may have dropped
 * the dirty pages. `fsync_ns` receives the fsync time (0 when not synced). */
int tr_shard_commit(tr_shard *s, int durable, uint64_t *fsync_ns);
/* Deletes whole segments whose newest record arrived before `before_ms`; an active segment
 * that has wholly expired is replaced by an empty one so sequence numbers keep growing.
 * Returns the number of segments deleted, or an error. */
int tr_shard_trim(tr_shard *s, int64_t before_ms);
/* Closes the shard to appends (resharding): persists the ending sequence number, which is
 * the last record's (or 0 if the shard is empty). Idempotent. */
int tr_shard_close(tr_shard *s, uint64_t *ending_seq);
/* Syncs everything written so far (interval fsync mode and shutdown). */
int tr_shard_sync(tr_shard *s);

/* ---- reader side (any thread) ---- */

typedef struct tr_shard_info {
    uint64_t first_seq;   /* oldest retained record's seq (== next_seq when empty) */
    uint64_t next_seq;    /* seq the next appended record will get */
    uint64_t last_seq;    /* newest committed record's seq, 0 when there is none */
    int64_t first_ms;     /* arrival time of the oldest retained record, 0 when empty */
    int64_t last_ms;      /* arrival time of the newest record, 0 when empty */
    uint64_t records;     /* retained records */
    uint64_t bytes;       /* bytes on disk */
    uint32_t segments;
    int closed;
    uint64_t ending_seq;  /* valid when closed */
} tr_shard_info;

void tr_shard_get_info(tr_shard *s, tr_shard_info *info);
/* An opaque pointer for the shard's owner (the store keeps its bookkeeping there). */
void tr_shard_set_user(tr_shard *s, void *user);
void *tr_shard_user(const tr_shard *s);
const char *tr_shard_label(const tr_shard *s);

/* Sequence number of the first retained record with arrival_ms >= ms (the AT_TIMESTAMP
 * iterator); next_seq if there is none yet. When the scan toward it meets a corrupt record,
 * the position it read from, so that a read from there reports the damage instead of the
 * records after it being skipped. */
uint64_t tr_shard_seq_at_time(tr_shard *s, int64_t ms);

/* The result of one read: records point into buf, which the batch owns. */
typedef struct tr_read_batch {
    tr_record *records;
    size_t count;
    size_t cap;
    uint8_t *buf;
    size_t buf_len;
    size_t buf_cap;
    uint64_t next_seq; /* where the following read should start */
    uint64_t bytes;    /* payload bytes returned */
    size_t *offs_;     /* private: buffer offsets of each record's fields while reading */
} tr_read_batch;

void tr_read_batch_init(tr_read_batch *b);
void tr_read_batch_free(tr_read_batch *b);

/* Reads committed records with seq >= from_seq, up to max_records and about max_bytes of
 * payload (at least one record is returned if one exists, whatever its size). A from_seq
 * older than the trim horizon starts at the horizon. Records are checksum-verified; a bad one
 * fails the read with TR_ECORRUPT (and a log line), it is never skipped silently. The batch
 * is reset first. */
int tr_shard_read(tr_shard *s, uint64_t from_seq, size_t max_records, size_t max_bytes,
                  tr_read_batch *out);

/* Blocks until a record with seq >= seq is committed, the shard is closed, or timeout_ms
 * passes (<0: forever). Returns 1 if such a record exists, 0 on timeout. For threads that
 * tail a shard; the network loop uses the store's commit hook instead. */
int tr_shard_wait(tr_shard *s, uint64_t seq, int64_t timeout_ms);

#endif
