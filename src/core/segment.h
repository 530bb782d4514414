/* A segment: one file of a shard's log, `<base_seq as 20 digits>.seg`, holding a 32-byte
 * header and then frames (core/frame.h) with consecutive sequence numbers starting at
 * base_seq. When a segment is sealed its sparse index is saved beside it as
 * `<base_seq as 20 digits>.idx` so that opening a large shard does not rescan sealed data.
 *
 *   header = "TRSEG001" | u64 base_seq | i64 created_ms | u32 reserved | u32 crc32c(first 28)
 *
 * A segment is private to core/shard.c, which does all locking; nothing here is thread-safe
 * except the reference count. */
#ifndef TR_CORE_SEGMENT_H
#define TR_CORE_SEGMENT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define TR_SEGMENT_HEADER_BYTES 32u
#define TR_SEGMENT_SUFFIX ".seg"
#define TR_INDEX_SUFFIX ".idx"

/* One sparse-index entry: the frame of record `seq` starts at `offset`. */
typedef struct tr_index_entry {
    uint64_t seq;
    int64_t arrival_ms;
    uint64_t offset;
} tr_index_entry;

typedef struct tr_segment {
    char *path;          /* .seg file */
    int fd;
    uint64_t base_seq;
    int64_t created_ms;
    uint64_t count;      /* records, committed or buffered (see shard.c) */
    uint64_t last_seq;   /* valid when count > 0 */
    int64_t first_ms;    /* arrival of the first record, valid when count > 0 */
    int64_t last_ms;
    uint64_t size;       /* bytes of whole frames (plus header) in the file */
    tr_index_entry *idx;
    size_t idx_len;
    size_t idx_cap;
    uint64_t idx_last_offset; /* offset of the newest indexed frame */
    uint64_t corrupt_at;  /* first offset of a corrupt extent found at open, 0 if none */
    int sealed;
    atomic_int refs;      /* the shard's reference plus readers' */
    atomic_int unlink_on_free;
} tr_segment;

/* Creates a new empty segment file (header written and synced, directory synced). */
int tr_segment_create(const char *dir, uint64_t base_seq, int64_t now_ms, tr_segment **out);

/* Opens an existing segment and loads or rebuilds its index.
 * newest: the shard's active segment, whose tail may be torn. A torn or corrupt tail with no
 * valid frame after it is truncated away (*dropped_bytes says how much). A corrupt extent
 * followed by valid frames is never truncated: it is logged, remembered in corrupt_at, and
 * reads that reach it fail with TR_ECORRUPT. Returns TR_ECORRUPT when the header is bad. */
int tr_segment_open(const char *path, int newest, uint32_t index_interval, tr_segment **out,
                    uint64_t *dropped_bytes);

/* Adds an index entry for a frame at offset when the interval since the last one is reached
 * (or it is the first frame). Returns TR_ENOMEM on allocation failure. */
int tr_segment_index_add(tr_segment *seg, uint64_t seq, int64_t arrival_ms, uint64_t offset,
                         uint32_t index_interval);
/* Makes room for `more` index entries, so that as many tr_segment_index_add calls cannot
 * fail. */
int tr_segment_index_reserve(tr_segment *seg, size_t more);
/* Drops index entries for seq > last_seq (after a failed write is rolled back). */
void tr_segment_index_truncate(tr_segment *seg, uint64_t last_seq);
/* Offset of the frame to start scanning from to find `seq` (the last entry <= seq). */
uint64_t tr_segment_offset_for_seq(const tr_segment *seg, uint64_t seq);
/* Sequence number to start scanning from to find the first record arriving at or after ms
 * (the last indexed record that arrived before ms, or base_seq). */
uint64_t tr_segment_seq_for_time(const tr_segment *seg, int64_t ms);

/* Seals: fsyncs the file and writes the index file (synced). */
int tr_segment_seal(tr_segment *seg);

void tr_segment_ref(tr_segment *seg);
/* Drops a reference; the last one closes the file (and unlinks it when marked). */
void tr_segment_unref(tr_segment *seg);
/* Marks the segment's files for deletion when the last reference goes. */
void tr_segment_mark_deleted(tr_segment *seg);

/* Builds "<dir>/<20-digit base><suffix>" into out. */
void tr_segment_path(char *out, size_t out_len, const char *dir, uint64_t base_seq,
                     const char *suffix);
/* Parses a segment file name; returns 0 and the base on success. */
int tr_segment_parse_name(const char *name, uint64_t *base_seq);

/* fsync of a directory, so that created, renamed and removed entries are durable. */
int tr_fsync_dir(const char *dir);
/* pwrite/pread loops that finish short transfers and retry EINTR; return 0 or -errno. */
int tr_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
/* The same for a gather write; advances iov over what was written (so it is modified). */
int tr_pwritev_all(int fd, struct iovec *iov, int iovcnt, uint64_t off);
int tr_pread_all(int fd, void *buf, size_t len, uint64_t off, size_t *got);

#endif
