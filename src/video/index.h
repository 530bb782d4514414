/* The fragment index of one video stream, in memory: what ListFragments, GetMedia's start
 * selectors and (later) HLS playlists look up without reading fragments. One small entry per
 * fragment (a 2-second fragment rate is 43,200 entries, about 2 MiB, a day). Built from the
 * shard when a stream is first used, then kept current by ingest. Thread-safe (rwlock). */
#ifndef TR_VIDEO_INDEX_H
#define TR_VIDEO_INDEX_H

#include <stddef.h>
#include <stdint.h>

typedef struct tr_frag_entry {
    uint64_t seq;            /* the record's sequence number in the stream's shard */
    int64_t producer_ms;
    int64_t server_ms;
    int64_t duration_ms;
    uint32_t size;           /* the record's payload bytes */
    uint32_t flags;          /* tr_fragment flags */
} tr_frag_entry;

typedef struct tr_frag_index tr_frag_index;

tr_frag_index *tr_frag_index_new(void);
void tr_frag_index_free(tr_frag_index *x);

/* Adds an entry; entries are kept in sequence order (an out-of-order add is inserted).
 * Returns 0 or TR_ENOMEM. */
int tr_frag_index_add(tr_frag_index *x, const tr_frag_entry *e);
/* Forgets entries below first_seq (retention removed them). */
void tr_frag_index_trim(tr_frag_index *x, uint64_t first_seq);

size_t tr_frag_index_count(tr_frag_index *x);
/* The entry with this seq: 0, or -1 when there is none. */
int tr_frag_index_get(tr_frag_index *x, uint64_t seq, tr_frag_entry *out);
/* The first entry with seq > after (after 0: the first of all): 0, or -1. */
int tr_frag_index_next(tr_frag_index *x, uint64_t after, tr_frag_entry *out);
/* The newest entry: 0, or -1 when empty. */
int tr_frag_index_last(tr_frag_index *x, tr_frag_entry *out);

/* The fragment a timestamp falls in: the first, in sequence order, whose [start, start +
 * duration) holds ms, by producer or server time; else the first that starts after ms.
 * 0, or -1 when none qualifies. */
int tr_frag_index_at_time(tr_frag_index *x, int by_producer, int64_t ms, tr_frag_entry *out);

/* Up to max entries with seq > after whose start (by producer or server time) is in
 * [start_ms, end_ms], in sequence order, into out. Returns how many; *more says whether
 * another matching entry follows. */
size_t tr_frag_index_range(tr_frag_index *x, int by_producer, int64_t start_ms, int64_t end_ms,
                           uint64_t after, tr_frag_entry *out, size_t max, int *more);

#endif
