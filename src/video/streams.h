/* The Kinesis Video Streams face: video streams kept in the catalog (kind "video") and
 * mirrored in memory for the media path. A video stream is a one-shard stream of the core:
 * its fragments go to one tr_shard (its uid from the stream's one catalog shard row), so
 * there is no second storage engine.
 *
 * Threads: lookups (tr_video_get) may come from any thread; control-plane changes are
 * serialised by the registry. A stream is handed out as an immutable snapshot with a
 * reference; a change builds a new snapshot and swaps it in. The stream's log shard lives as
 * long as any snapshot of it: a deleted stream's files are dropped when the last snapshot
 * goes, so a GetMedia in progress finishes its reads. */
#ifndef TR_VIDEO_STREAMS_H
#define TR_VIDEO_STREAMS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/catalog.h"
#include "core/store.h"

typedef struct tr_video tr_video;

#define TR_VIDEO_MAX_RETENTION_HOURS 87600  /* ten years, AWS's limit */
#define TR_VIDEO_MAX_TAGS 50
/* A stream with DataRetentionInHours 0 persists nothing, but consumers still read a live
 * buffer (AWS keeps 5 minutes): its shard's retention. */
#define TR_VIDEO_LIVE_BUFFER_MS (5 * 60 * 1000)

typedef struct tr_video_config {
    const char *region;        /* for ARNs; default "us-east-1" */
    const char *account;       /* for ARNs; default "000000000000" */
    int64_t transition_ms;     /* CREATING/UPDATING last this long (stream_transition_ms) */
    /* The catalog is one SQLite connection shared by every service and is not thread-safe.
     * When set, every catalog call of this registry runs through this hook (main.c passes
     * tr_data_with_catalog), so all services serialise on one lock. NULL: the registry's own
     * lock is enough (the registry is the catalog's only user, as in unit tests). */
    int (*with_catalog)(void *ctx, int (*fn)(tr_catalog *c, void *arg), void *arg);
    void *with_catalog_ctx;
} tr_video_config;

/* One immutable snapshot of a stream. */
typedef struct tr_video_stream {
    atomic_int refs;
    int64_t id;                        /* catalog id; never reused */
    char name[TR_NAME_MAX + 1];
    char arn[512];                     /* arn:aws:kinesisvideo:R:A:stream/<name>/<created_ms> */
    char status[12];                   /* the stored status; see tr_video_status */
    int64_t ready_ms;                  /* when the current transition ends */
    int64_t created_ms;
    int retention_hours;               /* 0: no persistence (live buffer only) */
    char device_name[129];             /* "" when not set */
    char media_type[129];              /* "" when not set */
    char kms_key_id[2049];             /* the key given, or AWS's managed key alias */
    char storage_tier[8];              /* "HOT" or "WARM" */
    int64_t version;                   /* the catalog's version: KVS's Version, as decimal */
    int64_t shard_uid;
    tr_shard *log;                     /* valid while the snapshot is referenced */
} tr_video_stream;

/* A failure in AWS terms: the API layer writes type and message as they are and maps the
 * type to its HTTP status. */
typedef struct tr_video_err {
    const char *type;                  /* e.g. "ResourceNotFoundException" */
    char message[512];
} tr_video_err;

/* Loads every video stream of the catalog and opens its shard. */
int tr_video_open(tr_catalog *cat, tr_store *st, const tr_video_config *cfg, tr_video **out);
/* Drops the registry's snapshots; call after the last user (the server) is gone. */
void tr_video_close(tr_video *v);

const tr_video_config *tr_video_cfg(const tr_video *v);
tr_store *tr_video_store(tr_video *v);

/* Status as clients see it: a transition that has run its time reads ACTIVE. */
const char *tr_video_status(const tr_video_stream *s, int64_t now_ms);
/* The shard retention in ms that a stream's DataRetentionInHours stands for. */
int64_t tr_video_retention_ms(int retention_hours);

/* Finds a stream by name, or by ARN when name is NULL; with both, the ARN must be the
 * stream's (a stale ARN of a deleted and re-created stream does not match). Returns a
 * referenced snapshot, or NULL with err filled (ResourceNotFoundException). */
tr_video_stream *tr_video_get(tr_video *v, const char *name, const char *arn, tr_video_err *err);
tr_video_stream *tr_video_get_by_id(tr_video *v, int64_t id);
void tr_video_put(tr_video_stream *s);

/* CreateStream's input; strings may be NULL (not given). Values are checked by the API
 * layer; the service checks only what needs the registry. */
typedef struct tr_video_spec {
    const char *name;
    const char *device_name;
    const char *media_type;
    const char *kms_key_id;            /* NULL: AWS's managed key alias/aws/kinesisvideo */
    const char *storage_tier;          /* NULL: "HOT" */
    int retention_hours;
    const char *const *tag_keys;       /* ntags tags, set with the stream in one transaction */
    const char *const *tag_values;
    size_t ntags;
} tr_video_spec;

/* Control plane. Each returns 0 or -1 with err set. `current_version` (decimal text, may be
 * NULL: no check) must match the stream's Version or the call fails with
 * VersionMismatchException. name/arn select the stream as in tr_video_get. */

/* Creates the stream (CREATING for transition_ms) and its shard. *out (if not NULL)
 * receives a referenced snapshot. ResourceInUseException when the name is taken. */
int tr_video_create(tr_video *v, const tr_video_spec *spec, tr_video_stream **out,
                    tr_video_err *err);
/* Removes the stream and its tags at once; its shard's files go with the last snapshot. */
int tr_video_delete(tr_video *v, const char *name, const char *arn, const char *current_version,
                    tr_video_err *err);
/* UpdateStream: device_name / media_type replace the stored ones when not NULL. The stream
 * must be ACTIVE (else ResourceInUseException); it is UPDATING for transition_ms after. */
int tr_video_update(tr_video *v, const char *name, const char *arn, const char *current_version,
                    const char *device_name, const char *media_type, tr_video_err *err);
/* UpdateDataRetention: adds (increase) or subtracts change_hours; the result must stay in
 * 0..TR_VIDEO_MAX_RETENTION_HOURS (else InvalidArgumentException). Applied to the shard at
 * once: a decrease lets the storage thread delete older segments. */
int tr_video_update_retention(tr_video *v, const char *name, const char *arn,
                              const char *current_version, int increase, int change_hours,
                              tr_video_err *err);

/* Streams in name order with name > after (NULL: from the start) and, when prefix is not
 * NULL, names beginning with it; at most limit (<= 0: all). fn gets each snapshot (valid
 * only during the call); fn returning non-zero stops. Returns how many fn saw, or an error. */
int tr_video_list(tr_video *v, const char *after, const char *prefix, int limit,
                  int (*fn)(void *ctx, const tr_video_stream *s), void *ctx);

/* Tags, in the catalog. Setting overwrites values of existing keys; more than
 * TR_VIDEO_MAX_TAGS in all fails with TagsPerResourceExceededLimitException and changes
 * nothing. Removing an absent key is not an error. */
int tr_video_tag(tr_video *v, const tr_video_stream *s, const char *const *keys,
                 const char *const *values, size_t n, tr_video_err *err);
int tr_video_untag(tr_video *v, const tr_video_stream *s, const char *const *keys, size_t n,
                   tr_video_err *err);
/* Calls fn for each tag in key order (fn returning non-zero stops). */
int tr_video_tags(tr_video *v, const tr_video_stream *s, tr_tag_visit fn, void *ctx,
                  tr_video_err *err);

#endif
