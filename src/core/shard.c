#include "core/shard.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "core/frame.h"
#include "core/segment.h"
#include "util/error.h"
#include "util/log.h"
#include "util/metrics.h"

#define CLOSED_FILE "CLOSED"
#define READ_CHUNK_MIN (16u * 1024)
#define READ_CHUNK_MAX (1024u * 1024)
/* Payloads at least this big are written from the caller's buffer, not copied. Below it a
 * copy costs less than one more iovec. */
#define ZEROCOPY_MIN_BYTES 4096u
#define IOV_BATCH 1024 /* iovecs per pwritev (IOV_MAX on Linux) */

/* A piece of the next commit's gather write: wbuf[off, off + len), or a caller's payload. */
typedef struct wpiece {
    const uint8_t *ext; /* the caller's payload, or NULL for a run of wbuf */
    size_t off;
    size_t len;
} wpiece;

struct tr_shard {
    char *dir;
    char *label;
    tr_shard_config cfg;
    void *user;

    /* mu guards everything readers look at: the segment list, the active segment's index
     * and committed size, and the committed counters below. */
    pthread_mutex_t mu;
    pthread_cond_t committed_cv;
    tr_segment **segs; /* oldest first; the last one is active */
    size_t nsegs, segs_cap;
    uint64_t committed_seq; /* newest visible record, 0 when none */
    int64_t committed_ms;   /* its arrival time */
    uint64_t records;       /* committed, retained */
    uint64_t bytes;         /* on disk */
    int closed;
    uint64_t ending_seq;

    /* Writer state, touched only by the owning storage thread. Appended frames wait for the
     * commit as the pieces of one gather write: runs of wbuf (frame heads, keys and small
     * payloads, copied) and large payloads straight from the callers' buffers, which stay
     * unchanged until the commit (the store's callers keep them until their callback). */
    uint8_t *wbuf;
    size_t wlen, wcap;
    size_t wrun;              /* start of the wbuf run not yet in pieces */
    wpiece *pieces;
    size_t npieces, pieces_cap;
    uint64_t pending_bytes;   /* frame bytes waiting for the commit */
    uint64_t next_seq;
    int64_t last_ms;       /* newest arrival assigned; arrival times never go backwards */
    int readonly;
    int unsynced;          /* written but not yet fdatasync'd (interval mode) */
    uint64_t pending_records, pending_payload;
    /* The active segment's committed state, to roll back a failed write. */
    uint64_t c_count, c_last_seq;
    int64_t c_first_ms, c_last_ms;

    tr_metric *m_in_records, *m_in_bytes, *m_out_records, *m_out_bytes, *m_storage_bytes;
};

static int64_t now_ms_real(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static tr_segment *active(tr_shard *s) { return s->segs[s->nsegs - 1]; }

static int segs_push(tr_shard *s, tr_segment *seg) {
    if (s->nsegs == s->segs_cap) {
        size_t cap = s->segs_cap ? s->segs_cap * 2 : 8;
        tr_segment **n = realloc(s->segs, cap * sizeof *n);
        if (!n) return TR_ENOMEM;
        s->segs = n;
        s->segs_cap = cap;
    }
    s->segs[s->nsegs++] = seg;
    return TR_OK;
}

static void snapshot_active(tr_shard *s) {
    tr_segment *a = active(s);
    s->c_count = a->count;
    s->c_last_seq = a->last_seq;
    s->c_first_ms = a->first_ms;
    s->c_last_ms = a->last_ms;
}

static void init_metrics(tr_shard *s) {
    s->m_in_records = tr_metric_get(TR_METRIC_COUNTER, "tributary_shard_incoming_records_total",
                                    "Records appended to the shard", s->label);
    s->m_in_bytes = tr_metric_get(TR_METRIC_COUNTER, "tributary_shard_incoming_bytes_total",
                                  "Payload bytes appended to the shard", s->label);
    s->m_out_records = tr_metric_get(TR_METRIC_COUNTER, "tributary_shard_outgoing_records_total",
                                     "Records read from the shard", s->label);
    s->m_out_bytes = tr_metric_get(TR_METRIC_COUNTER, "tributary_shard_outgoing_bytes_total",
                                   "Payload bytes read from the shard", s->label);
    s->m_storage_bytes = tr_metric_get(TR_METRIC_GAUGE, "tributary_shard_storage_bytes",
                                       "Bytes the shard's segments take on disk", s->label);
}

/* ---- opening ---- */

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Lists segment base numbers in dir, sorted, and removes leftover temporary files. */
static int list_segments(const char *dir, uint64_t **out, size_t *n) {
    DIR *d = opendir(dir);
    if (!d) return tr_err_from_errno(errno);
    uint64_t *v = NULL;
    size_t len = 0, cap = 0;
    int rc = TR_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        uint64_t base;
        size_t nl = strlen(e->d_name);
        if (nl > 4 && strcmp(e->d_name + nl - 4, ".tmp") == 0) {
            unlinkat(dirfd(d), e->d_name, 0);
            continue;
        }
        if (tr_segment_parse_name(e->d_name, &base) != 0) continue;
        if (len == cap) {
            cap = cap ? cap * 2 : 16;
            uint64_t *nv = realloc(v, cap * sizeof *nv);
            if (!nv) {
                rc = TR_ENOMEM;
                break;
            }
            v = nv;
        }
        v[len++] = base;
    }
    closedir(d);
    if (rc != TR_OK) {
        free(v);
        return rc;
    }
    if (len > 1) qsort(v, len, sizeof *v, cmp_u64);
    *out = v;
    *n = len;
    return TR_OK;
}

static int read_closed_marker(tr_shard *s) {
    char path[4096], buf[64] = {0};
    snprintf(path, sizeof path, "%s/%s", s->dir, CLOSED_FILE);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? TR_OK : tr_err_from_errno(errno);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    char *end;
    unsigned long long v = n > 0 ? strtoull(buf, &end, 10) : 0;
    if (n <= 0 || *end != '\n') {
        tr_error("msg=\"unreadable CLOSED marker\" shard=%s path=%s", s->label, path);
        return TR_ECORRUPT;
    }
    s->closed = 1;
    s->ending_seq = v;
    return TR_OK;
}

static int open_segments(tr_shard *s) {
    uint64_t *bases = NULL;
    size_t n = 0;
    int rc = list_segments(s->dir, &bases, &n);
    if (rc != TR_OK) return rc;
    char path[4096];
    /* The newest file first: it may be a stub from a crash during a roll, then it goes and
     * the one before it becomes the active segment. */
    while (n > 0) {
        tr_segment_path(path, sizeof path, s->dir, bases[n - 1], TR_SEGMENT_SUFFIX);
        tr_segment *seg;
        uint64_t dropped;
        rc = tr_segment_open(path, 1, s->cfg.index_interval_bytes, &seg, &dropped);
        if (rc == TR_ENOENT) {
            tr_warn("msg=\"removing segment stub left by a crash\" shard=%s path=%s", s->label,
                    path);
            unlink(path);
            n--;
            continue;
        }
        if (rc != TR_OK) break;
        if (dropped)
            tr_warn("msg=\"truncated torn tail\" shard=%s path=%s dropped_bytes=%" PRIu64
                    " last_seq=%" PRIu64,
                    s->label, path, dropped, seg->count ? seg->last_seq : 0);
        for (size_t i = 0; i + 1 < n && rc == TR_OK; i++) {
            tr_segment *old;
            tr_segment_path(path, sizeof path, s->dir, bases[i], TR_SEGMENT_SUFFIX);
            rc = tr_segment_open(path, 0, s->cfg.index_interval_bytes, &old, &dropped);
            if (rc == TR_OK) rc = segs_push(s, old);
            if (rc != TR_OK) tr_error("msg=\"cannot open segment\" shard=%s path=%s err=\"%s\"",
                                      s->label, path, tr_strerror(rc));
        }
        if (rc == TR_OK) rc = segs_push(s, seg);
        if (rc != TR_OK) tr_segment_unref(seg);
        break;
    }
    free(bases);
    return rc;
}

static int check_continuity(tr_shard *s) {
    for (size_t i = 0; i + 1 < s->nsegs; i++) {
        tr_segment *a = s->segs[i], *b = s->segs[i + 1];
        if ((a->count && a->last_seq >= b->base_seq) || a->base_seq >= b->base_seq) {
            tr_error("msg=\"segments overlap\" shard=%s a=%s b=%s", s->label, a->path, b->path);
            return TR_ECORRUPT;
        }
    }
    return TR_OK;
}

int tr_shard_open(const char *dir, const char *label, const tr_shard_config *cfg,
                  tr_shard **out) {
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) return tr_err_from_errno(errno);
    tr_shard *s = calloc(1, sizeof *s);
    if (!s) return TR_ENOMEM;
    s->dir = strdup(dir);
    s->label = strdup(label ? label : "");
    s->cfg = *cfg;
    if (s->cfg.index_interval_bytes == 0) s->cfg.index_interval_bytes = 4096;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->committed_cv, NULL);
    int rc = s->dir && s->label ? TR_OK : TR_ENOMEM;
    if (rc == TR_OK) rc = open_segments(s);
    if (rc == TR_OK && s->nsegs == 0) {
        tr_segment *seg;
        rc = tr_segment_create(dir, 1, now_ms_real(), &seg);
        if (rc == TR_OK && (rc = segs_push(s, seg)) != TR_OK) tr_segment_unref(seg);
    }
    if (rc == TR_OK) rc = check_continuity(s);
    if (rc == TR_OK) rc = read_closed_marker(s);
    if (rc != TR_OK) {
        tr_shard_free(s);
        return rc;
    }
    tr_segment *a = active(s);
    s->next_seq = a->count ? a->last_seq + 1 : a->base_seq;
    s->committed_seq = s->next_seq - 1;
    for (size_t i = 0; i < s->nsegs; i++) {
        s->records += s->segs[i]->count;
        s->bytes += s->segs[i]->size;
        if (s->segs[i]->count) s->last_ms = s->segs[i]->last_ms;
    }
    s->committed_ms = s->last_ms;
    snapshot_active(s);
    init_metrics(s);
    tr_metric_set(s->m_storage_bytes, (int64_t)s->bytes);
    *out = s;
    return TR_OK;
}

void tr_shard_free(tr_shard *s) {
    if (!s) return;
    for (size_t i = 0; i < s->nsegs; i++) tr_segment_unref(s->segs[i]);
    free(s->segs);
    free(s->wbuf);
    free(s->pieces);
    free(s->dir);
    free(s->label);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->committed_cv);
    free(s);
}

/* ---- writing ---- */

static int wbuf_reserve(tr_shard *s, size_t more) {
    if (s->wlen + more <= s->wcap) return TR_OK;
    size_t cap = s->wcap ? s->wcap : 64 * 1024;
    while (cap < s->wlen + more) cap *= 2;
    uint8_t *n = realloc(s->wbuf, cap);
    if (!n) return TR_ENOMEM;
    s->wbuf = n;
    s->wcap = cap;
    return TR_OK;
}

static int pieces_reserve(tr_shard *s, size_t more) {
    if (s->npieces + more <= s->pieces_cap) return TR_OK;
    size_t cap = s->pieces_cap ? s->pieces_cap : 64;
    while (cap < s->npieces + more) cap *= 2;
    wpiece *n = realloc(s->pieces, cap * sizeof *n);
    if (!n) return TR_ENOMEM;
    s->pieces = n;
    s->pieces_cap = cap;
    return TR_OK;
}

/* Ends the current wbuf run as a piece. Every append reserves one piece more than it uses,
 * so there is room. */
static void close_run(tr_shard *s) {
    if (s->wlen == s->wrun) return;
    s->pieces[s->npieces++] = (wpiece){NULL, s->wrun, s->wlen - s->wrun};
    s->wrun = s->wlen;
}

static void clear_pending(tr_shard *s) {
    s->wlen = s->wrun = 0;
    s->npieces = 0;
    s->pending_bytes = 0;
    s->pending_records = s->pending_payload = 0;
}

/* Writes every pending piece at file offset off; returns 0 or -errno. */
static int write_pending(tr_shard *s, int fd, uint64_t off) {
    close_run(s);
    struct iovec iov[IOV_BATCH];
    size_t i = 0;
    while (i < s->npieces) {
        int n = 0;
        uint64_t bytes = 0;
        for (; i < s->npieces && n < IOV_BATCH; i++, n++) {
            const wpiece *p = &s->pieces[i];
            iov[n].iov_base = (void *)(p->ext ? p->ext : s->wbuf + p->off);
            iov[n].iov_len = p->len;
            bytes += p->len;
        }
        int w = tr_pwritev_all(fd, iov, n, off);
        if (w != 0) return w;
        off += bytes;
    }
    return 0;
}

/* Undo buffered and failed writes: the file goes back to its committed size. */
static void rollback(tr_shard *s) {
    tr_segment *a = active(s);
    if (ftruncate(a->fd, (off_t)a->size) != 0)
        tr_error("msg=\"cannot truncate after failed write\" shard=%s err=\"%s\"", s->label,
                 strerror(errno));
    pthread_mutex_lock(&s->mu);
    tr_segment_index_truncate(a, s->c_last_seq);
    a->count = s->c_count;
    a->last_seq = s->c_last_seq;
    a->first_ms = s->c_first_ms;
    a->last_ms = s->c_last_ms;
    pthread_mutex_unlock(&s->mu);
    s->next_seq = s->committed_seq + 1;
    s->last_ms = a->count ? a->last_ms : s->last_ms;
    clear_pending(s);
}

int tr_shard_commit(tr_shard *s, int durable, uint64_t *fsync_ns) {
    *fsync_ns = 0;
    tr_segment *a = active(s);
    if (s->pending_bytes > 0) {
        int w = write_pending(s, a->fd, a->size);
        if (w != 0) {
            int err = tr_err_from_errno(-w);
            tr_warn("msg=\"append failed\" shard=%s err=\"%s\" records=%" PRIu64, s->label,
                    strerror(-w), s->pending_records);
            rollback(s);
            return err;
        }
        s->unsynced = 1;
    }
    if (durable && s->unsynced) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (fdatasync(a->fd) != 0) {
            /* After a failed fsync the page cache may have dropped the dirty pages while
             * reporting them clean: nothing written since the last good sync can be trusted,
             * and retrying proves nothing, so the shard stops taking appends. */
            int e = errno;
            tr_error("msg=\"fdatasync failed; shard is now read-only\" shard=%s err=\"%s\"",
                     s->label, strerror(e));
            s->readonly = 1;
            rollback(s);
            return e == ENOSPC ? TR_ENOSPC : TR_EIO;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        *fsync_ns = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000u +
                    (uint64_t)(t1.tv_nsec - t0.tv_nsec);
        s->unsynced = 0;
    }
    if (s->pending_bytes == 0) return TR_OK;
    pthread_mutex_lock(&s->mu);
    a->size += s->pending_bytes;
    s->bytes += s->pending_bytes;
    s->records += s->pending_records;
    s->committed_seq = s->next_seq - 1;
    s->committed_ms = s->last_ms;
    pthread_cond_broadcast(&s->committed_cv);
    pthread_mutex_unlock(&s->mu);
    tr_metric_add(s->m_in_records, s->pending_records);
    tr_metric_add(s->m_in_bytes, s->pending_payload);
    tr_metric_set(s->m_storage_bytes, (int64_t)s->bytes);
    clear_pending(s);
    snapshot_active(s);
    return TR_OK;
}

int tr_shard_sync(tr_shard *s) {
    uint64_t ns;
    return tr_shard_commit(s, 1, &ns);
}

/* Seals the active segment and starts a new one at next_seq. Everything buffered is
 * committed and synced first. */
static int roll(tr_shard *s, int64_t now_ms) {
    int rc = tr_shard_sync(s);
    if (rc != TR_OK) return rc;
    tr_segment *old = active(s), *seg;
    rc = tr_segment_create(s->dir, s->next_seq, now_ms, &seg);
    if (rc != TR_OK) return rc;
    /* The old segment's data is already durable; a failed index write only costs a rescan
     * at the next open. */
    int sr = tr_segment_seal(old);
    if (sr != TR_OK)
        tr_warn("msg=\"cannot write segment index\" shard=%s path=%s err=\"%s\"", s->label,
                old->path, tr_strerror(sr));
    pthread_mutex_lock(&s->mu);
    rc = segs_push(s, seg);
    s->bytes += seg->size;
    pthread_mutex_unlock(&s->mu);
    if (rc != TR_OK) {
        tr_segment_mark_deleted(seg);
        tr_segment_unref(seg);
        return rc;
    }
    snapshot_active(s);
    return TR_OK;
}

static int needs_roll(tr_shard *s, size_t frame_bytes, int64_t now_ms) {
    tr_segment *a = active(s);
    if (a->count == 0) return 0;
    /* first_ms was read from the file: an age that does not fit in 64 bits is old. */
    int64_t age_ms;
    return a->size + s->pending_bytes + frame_bytes > s->cfg.segment_max_bytes ||
           __builtin_sub_overflow(now_ms, a->first_ms, &age_ms) ||
           age_ms >= s->cfg.segment_max_age_ms;
}

int tr_shard_append(tr_shard *s, const tr_record_in *recs, size_t n, int64_t now_ms,
                    uint64_t *first_seq) {
    if (s->closed) return TR_ECLOSED;
    if (s->readonly) return TR_EREADONLY;
    *first_seq = s->next_seq;
    if (n == 0) return TR_OK;
    size_t total = 0, copied = 0, large = 0;
    uint64_t payload = 0;
    for (size_t i = 0; i < n; i++) {
        if (recs[i].data_len > tr_record_max_bytes(recs[i].flags)) return TR_ETOOBIG;
        if (recs[i].pkey_len > TR_MAX_KEY_BYTES || recs[i].ehk_len > TR_MAX_KEY_BYTES)
            return TR_EINVAL;
        size_t fb = tr_frame_size(&recs[i]);
        total += fb;
        payload += recs[i].data_len;
        if (recs[i].data_len >= ZEROCOPY_MIN_BYTES) {
            copied += fb - recs[i].data_len;
            large++;
        } else {
            copied += fb;
        }
    }
    int64_t arrival = now_ms > s->last_ms ? now_ms : s->last_ms;
    /* A request's records go into one segment: the roll, which first writes what earlier
     * requests buffered, comes before any of them is encoded, so that a request that fails
     * leaves none of its records behind (a segment may pass the limit by one request). */
    if (needs_roll(s, total, arrival)) {
        int rc = roll(s, arrival);
        if (rc != TR_OK) return rc;
    }
    /* Likewise every allocation comes first. An index entry takes at least an interval of
     * frame bytes, and the first one in a segment takes none. */
    tr_segment *a = active(s);
    uint32_t interval = s->cfg.index_interval_bytes;
    size_t entries = total / interval + 2 < n ? total / interval + 2 : n;
    int rc = wbuf_reserve(s, copied);
    if (rc == TR_OK) rc = pieces_reserve(s, 2 * large + 1);
    if (rc == TR_OK) {
        pthread_mutex_lock(&s->mu);
        rc = tr_segment_index_reserve(a, entries);
        pthread_mutex_unlock(&s->mu);
    }
    if (rc != TR_OK) return rc;

    uint64_t seq = s->next_seq;
    for (size_t i = 0; i < n; i++) {
        const tr_record_in *in = &recs[i];
        if (in->data_len >= ZEROCOPY_MIN_BYTES) {
            s->wlen += tr_frame_encode_head(s->wbuf + s->wlen, in, seq + i, arrival);
            close_run(s);
            s->pieces[s->npieces++] = (wpiece){in->data, 0, in->data_len};
        } else {
            s->wlen += tr_frame_encode(s->wbuf + s->wlen, in, seq + i, arrival);
        }
    }
    /* Readers look at the active segment's index and counters: one lock for the request. */
    uint64_t off = a->size + s->pending_bytes;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < n; i++) {
        (void)tr_segment_index_add(a, seq + i, arrival, off, interval); /* reserved above */
        off += tr_frame_size(&recs[i]);
    }
    if (a->count == 0) a->first_ms = arrival;
    a->count += n;
    a->last_seq = seq + n - 1;
    a->last_ms = arrival;
    pthread_mutex_unlock(&s->mu);
    s->next_seq += n;
    s->pending_records += n;
    s->pending_payload += payload;
    s->pending_bytes += total;
    s->last_ms = arrival;
    return TR_OK;
}

/* ---- retention ---- */

static void drop_oldest(tr_shard *s) {
    pthread_mutex_lock(&s->mu);
    tr_segment *old = s->segs[0];
    memmove(s->segs, s->segs + 1, (s->nsegs - 1) * sizeof *s->segs);
    s->nsegs--;
    s->records -= old->count;
    s->bytes -= old->size;
    pthread_mutex_unlock(&s->mu);
    tr_info("msg=\"retention deleted segment\" shard=%s path=%s records=%" PRIu64, s->label,
            old->path, old->count);
    tr_segment_mark_deleted(old);
    tr_segment_unref(old); /* readers holding it keep reading until they let go */
}

int tr_shard_trim(tr_shard *s, int64_t before_ms) {
    int deleted = 0;
    while (s->nsegs > 1 && s->segs[0]->count && s->segs[0]->last_ms < before_ms) {
        drop_oldest(s);
        deleted++;
    }
    while (s->nsegs > 1 && s->segs[0]->count == 0) { /* empty leftovers */
        drop_oldest(s);
        deleted++;
    }
    tr_segment *a = active(s);
    if (s->nsegs == 1 && a->count && a->last_ms < before_ms && s->pending_bytes == 0) {
        /* Everything is expired: an empty segment takes over so that the next sequence
         * number survives a restart. */
        int rc = roll(s, now_ms_real());
        if (rc != TR_OK) return rc;
        drop_oldest(s);
        deleted++;
    }
    if (deleted) {
        tr_fsync_dir(s->dir);
        tr_metric_set(s->m_storage_bytes, (int64_t)s->bytes);
    }
    return deleted;
}

int tr_shard_close(tr_shard *s, uint64_t *ending_seq) {
    if (s->closed) {
        *ending_seq = s->ending_seq;
        return TR_OK;
    }
    int rc = tr_shard_sync(s);
    if (rc != TR_OK) return rc;
    char path[4096], tmp[4200], text[32];
    snprintf(path, sizeof path, "%s/%s", s->dir, CLOSED_FILE);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int len = snprintf(text, sizeof text, "%" PRIu64 "\n", s->committed_seq);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return tr_err_from_errno(errno);
    int w = tr_pwrite_all(fd, text, (size_t)len, 0);
    if (w == 0 && fdatasync(fd) != 0) w = -errno;
    close(fd);
    if (w == 0 && rename(tmp, path) != 0) w = -errno;
    if (w == 0) w = tr_fsync_dir(s->dir) == TR_OK ? 0 : -EIO;
    if (w != 0) {
        unlink(tmp);
        return tr_err_from_errno(-w);
    }
    pthread_mutex_lock(&s->mu);
    s->closed = 1;
    s->ending_seq = s->committed_seq;
    pthread_cond_broadcast(&s->committed_cv);
    pthread_mutex_unlock(&s->mu);
    *ending_seq = s->ending_seq;
    return TR_OK;
}

/* ---- reading ---- */

void tr_shard_set_user(tr_shard *s, void *user) { s->user = user; }
void *tr_shard_user(const tr_shard *s) { return s->user; }
const char *tr_shard_label(const tr_shard *s) { return s->label; }

void tr_shard_get_info(tr_shard *s, tr_shard_info *info) {
    memset(info, 0, sizeof *info);
    pthread_mutex_lock(&s->mu);
    info->next_seq = s->committed_seq + 1;
    info->last_seq = s->committed_seq;
    info->first_seq = s->segs[0]->base_seq;
    if (info->first_seq > info->next_seq) info->first_seq = info->next_seq;
    info->records = s->records;
    info->bytes = s->bytes;
    info->segments = (uint32_t)s->nsegs;
    info->closed = s->closed;
    info->ending_seq = s->ending_seq;
    if (s->records) {
        for (size_t i = 0; i < s->nsegs; i++) {
            if (s->segs[i]->count) {
                info->first_ms = s->segs[i]->first_ms;
                break;
            }
        }
        info->last_ms = s->committed_ms;
    }
    pthread_mutex_unlock(&s->mu);
}

/* Index (in segs) of the segment that holds seq: the last with base_seq <= seq. Under mu. */
static size_t find_segment(const tr_shard *s, uint64_t seq) {
    size_t lo = 0, hi = s->nsegs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->segs[mid]->base_seq <= seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo == 0 ? 0 : lo - 1;
}

void tr_read_batch_init(tr_read_batch *b) { memset(b, 0, sizeof *b); }

void tr_read_batch_free(tr_read_batch *b) {
    free(b->records);
    free(b->buf);
    free(b->offs_);
    memset(b, 0, sizeof *b);
}

static int batch_reserve_buf(tr_read_batch *b, size_t need) {
    if (need <= b->buf_cap) return TR_OK;
    size_t cap = b->buf_cap ? b->buf_cap : READ_CHUNK_MIN;
    while (cap < need) cap *= 2;
    uint8_t *n = realloc(b->buf, cap);
    if (!n) return TR_ENOMEM;
    b->buf = n;
    b->buf_cap = cap;
    return TR_OK;
}

static int batch_add(tr_read_batch *b, const tr_record *rec) {
    if (b->count == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        tr_record *r = realloc(b->records, cap * sizeof *r);
        if (!r) return TR_ENOMEM;
        b->records = r;
        size_t *o = realloc(b->offs_, cap * 3 * sizeof *o);
        if (!o) return TR_ENOMEM;
        b->offs_ = o;
        b->cap = cap;
    }
    /* The buffer may move while reading continues: keep offsets, make pointers at the end. */
    b->records[b->count] = *rec;
    b->offs_[3 * b->count] = (size_t)(rec->pkey - b->buf);
    b->offs_[3 * b->count + 1] = (size_t)(rec->ehk - b->buf);
    b->offs_[3 * b->count + 2] = (size_t)(rec->data - b->buf);
    b->count++;
    b->bytes += rec->data_len;
    return TR_OK;
}

typedef struct {
    uint64_t want;     /* next seq to return */
    uint64_t last;     /* newest committed seq when the read began */
    size_t max_records;
    size_t max_bytes;
    size_t chunk;
} read_state;

enum { SCAN_SEGMENT_END = 0, SCAN_DONE = 1 };

/* Reads frames of one segment from file offset off up to end into the batch. */
static int scan_segment(tr_shard *s, tr_segment *seg, uint64_t off, uint64_t end, read_state *rs,
                        tr_read_batch *b) {
    size_t base = b->buf_len;  /* buffer index of file offset off */
    uint64_t loaded = off;     /* file bytes [off, loaded) are in the buffer */
    uint64_t pos = off;
    while (pos < end) {
        tr_record rec;
        size_t flen = 0;
        tr_frame_status st = TR_FRAME_SHORT;
        if (loaded > pos)
            st = tr_frame_decode(b->buf + base + (pos - off), loaded - pos, &rec, &flen);
        if (st == TR_FRAME_SHORT) {
            size_t need = flen ? flen : TR_FRAME_HEADER_BYTES;
            uint64_t want_end = pos + (need > rs->chunk ? need : rs->chunk);
            if (want_end > end) want_end = end;
            if (want_end < pos + need || want_end <= loaded) {
                tr_error("msg=\"frame runs past committed end\" shard=%s path=%s offset=%" PRIu64,
                         s->label, seg->path, pos);
                return TR_ECORRUPT;
            }
            size_t to_read = (size_t)(want_end - loaded), got;
            int rc = batch_reserve_buf(b, base + (size_t)(want_end - off));
            if (rc != TR_OK) return rc;
            rc = tr_pread_all(seg->fd, b->buf + base + (loaded - off), to_read, loaded, &got);
            if (rc != 0) return tr_err_from_errno(-rc);
            if (got < to_read) {
                tr_error("msg=\"segment shorter than committed size\" shard=%s path=%s", s->label,
                         seg->path);
                return TR_ECORRUPT;
            }
            loaded += got;
            b->buf_len = base + (size_t)(loaded - off);
            if (rs->chunk < READ_CHUNK_MAX) rs->chunk *= 2;
            continue;
        }
        if (st == TR_FRAME_BAD) {
            tr_error("msg=\"corrupt record\" shard=%s path=%s offset=%" PRIu64 " seq_wanted=%" PRIu64,
                     s->label, seg->path, pos, rs->want);
            return TR_ECORRUPT;
        }
        pos += flen;
        if (rec.seq < rs->want) continue;
        if (rec.seq > rs->last) return SCAN_DONE;
        int rc = batch_add(b, &rec);
        if (rc != TR_OK) return rc;
        rs->want = rec.seq + 1;
        if (b->count >= rs->max_records || b->bytes >= rs->max_bytes || rs->want > rs->last)
            return SCAN_DONE;
    }
    return SCAN_SEGMENT_END;
}

static void batch_finish(tr_read_batch *b) {
    for (size_t i = 0; i < b->count; i++) {
        b->records[i].pkey = b->buf + b->offs_[3 * i];
        b->records[i].ehk = b->buf + b->offs_[3 * i + 1];
        b->records[i].data = b->buf + b->offs_[3 * i + 2];
    }
}

int tr_shard_read(tr_shard *s, uint64_t from_seq, size_t max_records, size_t max_bytes,
                  tr_read_batch *b) {
    b->count = 0;
    b->buf_len = 0;
    b->bytes = 0;
    if (max_records == 0) max_records = 1;
    pthread_mutex_lock(&s->mu);
    uint64_t horizon = s->segs[0]->base_seq;
    if (from_seq < horizon) from_seq = horizon;
    read_state rs = {from_seq, s->committed_seq, max_records, max_bytes, READ_CHUNK_MIN};
    b->next_seq = from_seq;
    if (from_seq > rs.last) {
        pthread_mutex_unlock(&s->mu);
        return TR_OK;
    }
    tr_segment *seg = s->segs[find_segment(s, from_seq)];
    uint64_t off = tr_segment_offset_for_seq(seg, from_seq), end = seg->size;
    tr_segment_ref(seg);
    pthread_mutex_unlock(&s->mu);

    int rc;
    for (;;) {
        rc = scan_segment(s, seg, off, end, &rs, b);
        if (rc != SCAN_SEGMENT_END) break;
        /* On to the next segment, if any: it may have been added since. */
        pthread_mutex_lock(&s->mu);
        tr_segment *next = NULL;
        for (size_t i = 0; i < s->nsegs; i++) {
            if (s->segs[i]->base_seq > seg->base_seq) {
                next = s->segs[i];
                break;
            }
        }
        if (next) {
            tr_segment_ref(next);
            end = next->size;
        }
        pthread_mutex_unlock(&s->mu);
        if (next && seg->corrupt_at && rs.want < next->base_seq && b->count == 0) {
            tr_error("msg=\"records lost to corruption\" shard=%s path=%s from_seq=%" PRIu64
                     " to_seq=%" PRIu64, s->label, seg->path, rs.want, next->base_seq - 1);
            tr_segment_unref(next);
            rc = TR_ECORRUPT;
            break;
        }
        tr_segment_unref(seg);
        seg = next;
        if (!seg || (b->count && seg->base_seq != rs.want && rs.want <= rs.last)) {
            rc = SCAN_DONE; /* a gap ends this batch; the next read reports it */
            break;
        }
        off = TR_SEGMENT_HEADER_BYTES;
    }
    if (seg) tr_segment_unref(seg);
    if (rc < 0) return rc;
    batch_finish(b);
    b->next_seq = rs.want;
    tr_metric_add(s->m_out_records, b->count);
    tr_metric_add(s->m_out_bytes, b->bytes);
    return TR_OK;
}

uint64_t tr_shard_seq_at_time(tr_shard *s, int64_t ms) {
    pthread_mutex_lock(&s->mu);
    uint64_t from = s->committed_seq + 1;
    for (size_t i = 0; i < s->nsegs; i++) {
        tr_segment *seg = s->segs[i];
        if (seg->count && seg->last_ms >= ms) {
            from = tr_segment_seq_for_time(seg, ms);
            break;
        }
    }
    uint64_t last = s->committed_seq;
    pthread_mutex_unlock(&s->mu);
    tr_read_batch b;
    tr_read_batch_init(&b);
    while (from <= last) {
        /* A read that fails (corruption) stops here, not at the end: the reader that starts
         * from here meets the error too, instead of silently skipping what follows. */
        if (tr_shard_read(s, from, 1000, 1u << 20, &b) != TR_OK) {
            tr_read_batch_free(&b);
            return from;
        }
        if (b.count == 0) break;
        for (size_t i = 0; i < b.count; i++) {
            if (b.records[i].arrival_ms >= ms) {
                from = b.records[i].seq;
                tr_read_batch_free(&b);
                return from;
            }
        }
        from = b.next_seq;
    }
    tr_read_batch_free(&b);
    return last + 1;
}

int tr_shard_wait(tr_shard *s, uint64_t seq, int64_t timeout_ms) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    if (timeout_ms >= 0) {
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (timeout_ms % 1000) * 1000000;
        if (deadline.tv_nsec >= 1000000000) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000;
        }
    }
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    while (s->committed_seq < seq && !s->closed && rc == 0) {
        if (timeout_ms < 0)
            pthread_cond_wait(&s->committed_cv, &s->mu);
        else
            rc = pthread_cond_timedwait(&s->committed_cv, &s->mu, &deadline);
    }
    int found = s->committed_seq >= seq;
    pthread_mutex_unlock(&s->mu);
    return found;
}
