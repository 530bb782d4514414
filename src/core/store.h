/* The store: the data directory's shards and the storage threads that append to them with
 * group commit. This is the interface the services (video, data, firehose, analytics) use to
 * write; they read through core/shard.h.
 *
 * Threads: tr_store_append never blocks on disk; it queues the request for the storage thread
 * that owns the shard. That thread batches every queued request, writes them, fdatasyncs each
 * touched shard once, and then calls each request's callback, on the storage thread, in the
 * order the requests were queued for that shard. A callback must be quick: the net layer
 * hands the completion back to its event loop. */
#ifndef TR_CORE_STORE_H
#define TR_CORE_STORE_H

#include <stdint.h>

#include "core/record.h"
#include "core/shard.h"

typedef struct tr_store tr_store;

typedef enum {
    TR_FSYNC_ALWAYS = 0,   /* acknowledge after fdatasync (group commit): the default */
    TR_FSYNC_INTERVAL = 1, /* acknowledge after write; fdatasync every fsync_interval_ms */
} tr_fsync_mode;

typedef struct tr_store_config {
    const char *dir;            /* data directory; shards live in dir/shards/<uid> */
    tr_fsync_mode fsync_mode;
    int64_t fsync_interval_ms;  /* TR_FSYNC_INTERVAL only */
    int storage_threads;        /* shards are spread over these; >= 1 */
    int64_t trim_interval_ms;   /* how often retention runs */
    tr_shard_config shard;
} tr_store_config;

/* Fills cfg with the documented defaults (dir NULL). */
void tr_store_config_defaults(tr_store_config *cfg);

int tr_store_open(const tr_store_config *cfg, tr_store **out);
/* Stops accepting appends (TR_ESHUTDOWN), finishes every queued request, syncs and joins the
 * storage threads, then frees every shard. */
void tr_store_close(tr_store *st);

/* Returns the shard with this uid, opening (and recovering) it the first time; `create` says
 * whether a missing shard may be created. `label` is used the first time only. The pointer is
 * valid until tr_store_drop_shard or tr_store_close. */
int tr_store_shard(tr_store *st, uint64_t uid, const char *label, int create, tr_shard **out);

/* Deletes a shard's files once its queued requests are done. */
int tr_store_drop_shard(tr_store *st, uint64_t uid);

/* Retention of a shard in milliseconds (0 = keep forever). Set by the service layer from the
 * catalog; applied by the storage thread every trim_interval_ms. */
void tr_store_set_retention(tr_store *st, tr_shard *s, int64_t retention_ms);

/* status is TR_OK or an error; first_seq is the first record's sequence number (the rest
 * follow consecutively); arrival_ms is the server time stamped on all of them. */
typedef void (*tr_append_cb)(void *ctx, int status, uint64_t first_seq, int64_t arrival_ms);

/* Queues an append of n records. The caller keeps recs and their buffers alive until the
 * callback. Returns TR_OK (the callback will come) or an error (it will not): TR_ETOOBIG,
 * TR_EINVAL, TR_ESHUTDOWN, TR_ENOMEM. */
int tr_store_append(tr_store *st, tr_shard *s, const tr_record_in *recs, size_t n,
                    tr_append_cb cb, void *ctx);

/* Closes a shard to appends after every append queued before it; the callback receives the
 * ending sequence number as first_seq. */
int tr_store_close_shard(tr_store *st, tr_shard *s, tr_append_cb cb, void *ctx);

/* Called on a storage thread after records of `s` become visible, so that the network loop
 * can wake readers that tail the shard. Set before any append. */
typedef void (*tr_commit_hook)(void *ctx, tr_shard *s);
void tr_store_set_commit_hook(tr_store *st, tr_commit_hook hook, void *ctx);

/* 1 when the store is open and its storage threads run (GET /health). */
int tr_store_healthy(tr_store *st);

#endif
