/* The Data Streams face: streams of shards on the shard-log core, their hash-key routing,
 * resharding and status, kept in the catalog and mirrored in memory for the record path.
 *
 * Threads: lookups (tr_data_get) and appends may come from any thread; control-plane
 * changes are serialised by the registry. A stream is handed out as an immutable snapshot
 * with a reference; a change builds a new snapshot and swaps it in, so a reader never sees
 * a half-made reshard. */
#ifndef TR_DATA_STREAMS_H
#define TR_DATA_STREAMS_H

#include <stdatomic.h>
#include <stdint.h>

#include "core/catalog.h"
#include "core/store.h"
#include "data/hashkey.h"

typedef struct tr_data tr_data;

typedef struct tr_data_config {
    const char *region;        /* for ARNs; default "us-east-1" */
    const char *account;       /* for ARNs and messages; default "000000000000" */
    int64_t transition_ms;     /* CREATING/UPDATING/DELETING last this long; default 500 */
    int64_t iterator_ttl_ms;   /* default 300000 (AWS's 5 minutes) */
} tr_data_config;

typedef struct tr_data_shard {
    int32_t index;
    char id[24];               /* shardId-000000000000 */
    tr_hashkey start, end;
    int32_t parent, adjacent_parent; /* -1 when none */
    uint64_t starting_seq;     /* core sequence numbers */
    uint64_t ending_seq;       /* 0 while open */
    int closed;
    int64_t uid;
    int64_t created_ms;
    tr_shard *log;
} tr_data_shard;

typedef struct tr_data_stream {
    atomic_int refs;
    int64_t id;
    char name[129];
    char arn[320];
    int64_t created_ms;
    char status[12];           /* the stored status; see tr_data_status */
    int64_t ready_ms;          /* when a transition ends */
    int retention_hours;
    int on_demand;
    int encrypted;
    char key_id[2049];
    uint32_t max_record_kib;
    uint32_t metrics_mask;     /* enhanced monitoring: bit i = tr_data_metric_names[i] */
    tr_data_shard *shards;     /* by index */
    size_t nshards;
    int deleted;               /* snapshot of a deleted stream: drop its shards when freed */
    struct tr_data *owner;
} tr_data_stream;

extern const char *const tr_data_metric_names[]; /* NULL-terminated; bit order */

/* A failure in AWS terms: the API layer writes type and message as they are. */
typedef struct tr_data_err {
    const char *type;          /* e.g. "ResourceNotFoundException" */
    char message[512];
} tr_data_err;

int tr_data_open(tr_catalog *cat, tr_store *st, const tr_data_config *cfg, tr_data **out);
void tr_data_close(tr_data *d);

const tr_data_config *tr_data_cfg(const tr_data *d);
tr_store *tr_data_store(tr_data *d);
const uint8_t *tr_data_secret(const tr_data *d);  /* TR_SECRET_BYTES, for iterators */
void tr_data_set_secret(tr_data *d, const uint8_t *secret);

/* Status as clients see it: a transition that has run its time reads ACTIVE. */
const char *tr_data_status(const tr_data_stream *s, int64_t now_ms);

/* Finds a stream by name, or by ARN when name is NULL. Returns a referenced snapshot or NULL
 * with err filled (ResourceNotFoundException). */
tr_data_stream *tr_data_get(tr_data *d, const char *name, const char *arn, tr_data_err *err);
tr_data_stream *tr_data_get_by_id(tr_data *d, int64_t id);
void tr_data_put(tr_data_stream *s);

/* The open shard whose hash range holds key; NULL if none (only while resharding). */
const tr_data_shard *tr_data_route(const tr_data_stream *s, tr_hashkey key);
const tr_data_shard *tr_data_shard_by_id(const tr_data_stream *s, const char *shard_id);

/* Control plane. Each returns 0 or -1 with err set. */
int tr_data_create(tr_data *d, const char *name, int shard_count, int on_demand,
                   uint32_t max_record_kib, tr_data_err *err);
int tr_data_delete(tr_data *d, const char *name, const char *arn, int enforce_consumer_deletion,
                   tr_data_err *err);
int tr_data_set_retention(tr_data *d, tr_data_stream *s, int hours, int increase,
                          tr_data_err *err);
int tr_data_split(tr_data *d, tr_data_stream *s, const char *shard_id, tr_hashkey new_start,
                  tr_data_err *err);
int tr_data_merge(tr_data *d, tr_data_stream *s, const char *shard_id, const char *adjacent_id,
                  tr_data_err *err);
int tr_data_update_shard_count(tr_data *d, tr_data_stream *s, int target, tr_data_err *err);
int tr_data_set_encryption(tr_data *d, tr_data_stream *s, int on, const char *key_id,
                           tr_data_err *err);
int tr_data_set_metrics(tr_data *d, tr_data_stream *s, uint32_t mask, int enable,
                        uint32_t *before, uint32_t *after, tr_data_err *err);
int tr_data_set_max_record(tr_data *d, tr_data_stream *s, uint32_t kib, tr_data_err *err);
int tr_data_set_mode(tr_data *d, tr_data_stream *s, int on_demand, tr_data_err *err);

/* Streams in name order after `after` (NULL: from the start); fn gets each snapshot. */
int tr_data_list(tr_data *d, const char *after, int limit,
                 int (*fn)(void *ctx, const tr_data_stream *s), void *ctx);

/* Waits until a control-plane change in progress (a reshard closing shards) has finished, so
 * that tr_data_get returns the snapshot it made. Worker threads only. */
void tr_data_wait_settled(tr_data *d);

/* Tags, through the catalog. */
tr_catalog *tr_data_catalog(tr_data *d);
/* Runs fn with the catalog lock held (the catalog is not thread-safe). */
int tr_data_with_catalog(tr_data *d, int (*fn)(tr_catalog *c, void *ctx), void *ctx);

#endif
