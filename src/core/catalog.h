/* The catalog: control-plane metadata in one SQLite database (data_dir/catalog.db), never on
 * the per-record path. Streams of every face (data, video, and later delivery streams and
 * applications) with their shards, hash-key ranges, parent links, retention and tags.
 * Every write is one transaction. Not thread-safe: the caller serialises access (the
 * control plane runs on one thread, or holds its own lock). */
#ifndef TR_CORE_CATALOG_H
#define TR_CORE_CATALOG_H

#include <stddef.h>
#include <stdint.h>

typedef struct tr_catalog tr_catalog;

#define TR_NAME_MAX 256     /* longest stream name of any face, without the NUL */
#define TR_HASH_KEY_MAX 39  /* digits of 2^128-1 */

typedef struct tr_stream_meta {
    int64_t id;                 /* assigned by create; never reused */
    char kind[16];              /* "data", "video", ... : names are unique per kind */
    char name[TR_NAME_MAX + 1];
    char status[16];            /* "CREATING", "ACTIVE", "UPDATING", "DELETING" */
    int64_t created_ms;
    int64_t retention_hours;
    int64_t version;            /* bumped by every update (video's CurrentVersion) */
    char *attrs_json;           /* face-specific attributes as a JSON text, owned; may be NULL */
} tr_stream_meta;

typedef struct tr_shard_meta {
    int64_t uid;                /* assigned by add; the store's shard uid */
    int64_t stream_id;
    int32_t index;              /* N of shardId-00000000000N, unique per stream */
    char hash_start[TR_HASH_KEY_MAX + 1]; /* decimal */
    char hash_end[TR_HASH_KEY_MAX + 1];
    int32_t parent_index;       /* -1 when none */
    int32_t adjacent_parent_index; /* -1 when none */
    uint64_t starting_seq;
    uint64_t ending_seq;        /* 0 while open */
    int closed;
    int64_t created_ms;
} tr_shard_meta;

/* Opens or creates the database (WAL, synchronous=FULL), creating or migrating the schema.
 * On failure returns NULL and writes a reason into err. */
tr_catalog *tr_catalog_open(const char *path, char *err, size_t err_len);
void tr_catalog_close(tr_catalog *c);

/* Frees attrs_json. */
void tr_stream_meta_clear(tr_stream_meta *m);

/* Fills m->id. TR_EEXIST when a stream of that kind and name exists. */
int tr_catalog_stream_create(tr_catalog *c, tr_stream_meta *m);
/* TR_ENOENT when absent. */
int tr_catalog_stream_get(tr_catalog *c, const char *kind, const char *name, tr_stream_meta *m);
int tr_catalog_stream_get_by_id(tr_catalog *c, int64_t id, tr_stream_meta *m);
/* Writes status, retention_hours, attrs_json; bumps the row's version and sets m->version to
 * it. TR_ENOENT when absent. */
int tr_catalog_stream_update(tr_catalog *c, tr_stream_meta *m);
/* Deletes the stream, its shards and its tags. */
int tr_catalog_stream_delete(tr_catalog *c, int64_t id);
/* Calls fn for streams of `kind` in name order with name > after (NULL: from the start),
 * at most limit of them (<= 0: all). fn returning non-zero stops. Returns how many were
 * visited, or an error. The meta passed to fn is only valid during the call. */
typedef int (*tr_stream_visit)(void *ctx, const tr_stream_meta *m);
int tr_catalog_stream_list(tr_catalog *c, const char *kind, const char *after, int limit,
                           tr_stream_visit fn, void *ctx);

/* Fills m->uid. TR_EEXIST if the stream already has that index, TR_ENOENT if there is no
 * such stream. */
int tr_catalog_shard_add(tr_catalog *c, tr_shard_meta *m);
/* Marks closed with the ending sequence number. */
int tr_catalog_shard_close(tr_catalog *c, int64_t uid, uint64_t ending_seq);
/* Shards of a stream in index order. *out is malloc'd (caller frees), *n set. */
int tr_catalog_shard_list(tr_catalog *c, int64_t stream_id, tr_shard_meta **out, size_t *n);

/* Tags of a stream (key unique). set overwrites values; TR_ENOENT if there is no such
 * stream. Removing a key that is not there is not an error. */
int tr_catalog_tag_set(tr_catalog *c, int64_t stream_id, const char *key, const char *value);
int tr_catalog_tag_remove(tr_catalog *c, int64_t stream_id, const char *key);
typedef int (*tr_tag_visit)(void *ctx, const char *key, const char *value);
/* Tags in key order with key > after (NULL: all), at most limit (<= 0: all). */
int tr_catalog_tag_list(tr_catalog *c, int64_t stream_id, const char *after, int limit,
                        tr_tag_visit fn, void *ctx);
int tr_catalog_tag_count(tr_catalog *c, int64_t stream_id);

/* Registered consumers of a stream (enhanced fan-out); names unique per stream. */
typedef struct tr_consumer_meta {
    int64_t id;
    int64_t stream_id;
    char name[TR_NAME_MAX + 1];
    int64_t created_ms;
} tr_consumer_meta;

/* Fills m->id. TR_EEXIST when the stream has a consumer of that name, TR_ENOENT when the
 * stream is gone. */
int tr_catalog_consumer_add(tr_catalog *c, tr_consumer_meta *m);
int tr_catalog_consumer_get(tr_catalog *c, int64_t stream_id, const char *name,
                            tr_consumer_meta *m);
int tr_catalog_consumer_remove(tr_catalog *c, int64_t stream_id, const char *name);
/* In name order; fn returning non-zero stops. Returns how many were visited, or an error. */
typedef int (*tr_consumer_visit)(void *ctx, const tr_consumer_meta *m);
int tr_catalog_consumer_list(tr_catalog *c, int64_t stream_id, tr_consumer_visit fn,
                             void *ctx);

/* Runs fn inside one transaction: used when a control-plane operation changes several rows
 * (a split closes one shard and adds two). fn's error rolls everything back. */
int tr_catalog_txn(tr_catalog *c, int (*fn)(tr_catalog *c, void *ctx), void *ctx);

#endif
