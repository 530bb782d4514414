#include "core/segment.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/frame.h"
#include "util/bytes.h"
#include "util/crc32c.h"
#include "util/error.h"
#include "util/log.h"

static const char seg_magic[8] = {'T', 'R', 'S', 'E', 'G', '0', '0', '1'};
static const char idx_magic[8] = {'T', 'R', 'I', 'D', 'X', '0', '0', '1'};
#define IDX_HEADER_BYTES 64u
#define IDX_ENTRY_BYTES 24u

int tr_pwrite_all(int fd, const void *buf, size_t len, uint64_t off) {
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (n == 0) return -EIO;
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

int tr_pwritev_all(int fd, struct iovec *iov, int iovcnt, uint64_t off) {
    while (iovcnt > 0) {
        ssize_t n = pwritev(fd, iov, iovcnt, (off_t)off);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (n == 0) return -EIO;
        off += (uint64_t)n;
        size_t left = (size_t)n;
        while (iovcnt > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            iovcnt--;
        }
        if (iovcnt > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return 0;
}

int tr_pread_all(int fd, void *buf, size_t len, uint64_t off, size_t *got) {
    uint8_t *p = buf;
    size_t total = 0;
    while (total < len) {
        ssize_t n = pread(fd, p + total, len - total, (off_t)(off + total));
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (n == 0) break;
        total += (size_t)n;
    }
    *got = total;
    return 0;
}

int tr_fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return tr_err_from_errno(errno);
    int rc = fsync(fd) == 0 ? TR_OK : tr_err_from_errno(errno);
    close(fd);
    return rc;
}

void tr_segment_path(char *out, size_t out_len, const char *dir, uint64_t base_seq,
                     const char *suffix) {
    snprintf(out, out_len, "%s/%020" PRIu64 "%s", dir, base_seq, suffix);
}

int tr_segment_parse_name(const char *name, uint64_t *base_seq) {
    size_t n = strlen(name);
    if (n != 20 + strlen(TR_SEGMENT_SUFFIX) || strcmp(name + 20, TR_SEGMENT_SUFFIX) != 0)
        return -1;
    uint64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9') return -1;
        uint64_t d = (uint64_t)(name[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    *base_seq = v;
    return 0;
}

static tr_segment *segment_alloc(const char *path, int fd, uint64_t base_seq, int64_t created_ms) {
    tr_segment *seg = calloc(1, sizeof *seg);
    if (!seg) return NULL;
    seg->path = strdup(path);
    if (!seg->path) {
        free(seg);
        return NULL;
    }
    seg->fd = fd;
    seg->base_seq = base_seq;
    seg->created_ms = created_ms;
    seg->size = TR_SEGMENT_HEADER_BYTES;
    atomic_init(&seg->refs, 1);
    atomic_init(&seg->unlink_on_free, 0);
    return seg;
}

static void segment_free(tr_segment *seg) {
    if (seg->fd >= 0) close(seg->fd);
    if (atomic_load(&seg->unlink_on_free)) {
        char idx_path[4096];
        size_t n = strlen(seg->path) - strlen(TR_SEGMENT_SUFFIX);
        snprintf(idx_path, sizeof idx_path, "%.*s%s", (int)n, seg->path, TR_INDEX_SUFFIX);
        if (unlink(seg->path) != 0 && errno != ENOENT)
            tr_warn("msg=\"cannot delete segment\" path=%s err=\"%s\"", seg->path, strerror(errno));
        unlink(idx_path);
    }
    free(seg->idx);
    free(seg->path);
    free(seg);
}

void tr_segment_ref(tr_segment *seg) { atomic_fetch_add(&seg->refs, 1); }

void tr_segment_unref(tr_segment *seg) {
    if (seg && atomic_fetch_sub(&seg->refs, 1) == 1) segment_free(seg);
}

void tr_segment_mark_deleted(tr_segment *seg) { atomic_store(&seg->unlink_on_free, 1); }

static void encode_header(uint8_t *h, uint64_t base_seq, int64_t created_ms) {
    memcpy(h, seg_magic, 8);
    tr_put_u64(h + 8, base_seq);
    tr_put_u64(h + 16, (uint64_t)created_ms);
    tr_put_u32(h + 24, 0);
    tr_put_u32(h + 28, tr_crc32c(0, h, 28));
}

int tr_segment_create(const char *dir, uint64_t base_seq, int64_t now_ms, tr_segment **out) {
    char path[4096];
    tr_segment_path(path, sizeof path, dir, base_seq, TR_SEGMENT_SUFFIX);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return tr_err_from_errno(errno);
    uint8_t h[TR_SEGMENT_HEADER_BYTES];
    encode_header(h, base_seq, now_ms);
    int rc = tr_pwrite_all(fd, h, sizeof h, 0);
    if (rc == 0 && fdatasync(fd) != 0) rc = -errno;
    if (rc == 0) rc = tr_fsync_dir(dir) == TR_OK ? 0 : -EIO;
    tr_segment *seg = rc == 0 ? segment_alloc(path, fd, base_seq, now_ms) : NULL;
    if (!seg) {
        int err = rc ? tr_err_from_errno(-rc) : TR_ENOMEM;
        close(fd);
        unlink(path);
        return err;
    }
    *out = seg;
    return TR_OK;
}

int tr_segment_index_reserve(tr_segment *seg, size_t more) {
    if (seg->idx_len + more <= seg->idx_cap) return TR_OK;
    size_t cap = seg->idx_cap ? seg->idx_cap * 2 : 64;
    while (cap < seg->idx_len + more) cap *= 2;
    tr_index_entry *n = realloc(seg->idx, cap * sizeof *n);
    if (!n) return TR_ENOMEM;
    seg->idx = n;
    seg->idx_cap = cap;
    return TR_OK;
}

int tr_segment_index_add(tr_segment *seg, uint64_t seq, int64_t arrival_ms, uint64_t offset,
                         uint32_t index_interval) {
    if (seg->idx_len > 0 && offset - seg->idx_last_offset < index_interval) return TR_OK;
    int rc = tr_segment_index_reserve(seg, 1);
    if (rc != TR_OK) return rc;
    seg->idx[seg->idx_len++] = (tr_index_entry){seq, arrival_ms, offset};
    seg->idx_last_offset = offset;
    return TR_OK;
}

void tr_segment_index_truncate(tr_segment *seg, uint64_t last_seq) {
    while (seg->idx_len > 0 && seg->idx[seg->idx_len - 1].seq > last_seq) seg->idx_len--;
    seg->idx_last_offset = seg->idx_len ? seg->idx[seg->idx_len - 1].offset : 0;
}

uint64_t tr_segment_offset_for_seq(const tr_segment *seg, uint64_t seq) {
    size_t lo = 0, hi = seg->idx_len; /* first entry with entry.seq > seq */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (seg->idx[mid].seq <= seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo == 0 ? TR_SEGMENT_HEADER_BYTES : seg->idx[lo - 1].offset;
}

uint64_t tr_segment_seq_for_time(const tr_segment *seg, int64_t ms) {
    size_t lo = 0, hi = seg->idx_len; /* first entry with arrival >= ms */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (seg->idx[mid].arrival_ms < ms)
            lo = mid + 1;
        else
            hi = mid;
    }
    /* Arrival times are non-decreasing, so the wanted record is after the last entry that
     * arrived before ms. */
    return lo == 0 ? seg->base_seq : seg->idx[lo - 1].seq;
}

/* ---- index files ---- */

static void index_path_of(const tr_segment *seg, char *out, size_t out_len) {
    size_t n = strlen(seg->path) - strlen(TR_SEGMENT_SUFFIX);
    snprintf(out, out_len, "%.*s%s", (int)n, seg->path, TR_INDEX_SUFFIX);
}

static int index_write(const tr_segment *seg) {
    char path[4096], tmp[4200];
    index_path_of(seg, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    size_t len = IDX_HEADER_BYTES + seg->idx_len * IDX_ENTRY_BYTES + 4;
    uint8_t *b = malloc(len);
    if (!b) return TR_ENOMEM;
    memcpy(b, idx_magic, 8);
    tr_put_u64(b + 8, seg->size);
    tr_put_u64(b + 16, seg->idx_len);
    tr_put_u64(b + 24, seg->count);
    tr_put_u64(b + 32, seg->last_seq);
    tr_put_u64(b + 40, (uint64_t)seg->first_ms);
    tr_put_u64(b + 48, (uint64_t)seg->last_ms);
    tr_put_u64(b + 56, seg->corrupt_at);
    for (size_t i = 0; i < seg->idx_len; i++) {
        uint8_t *e = b + IDX_HEADER_BYTES + i * IDX_ENTRY_BYTES;
        tr_put_u64(e, seg->idx[i].seq);
        tr_put_u64(e + 8, (uint64_t)seg->idx[i].arrival_ms);
        tr_put_u64(e + 16, seg->idx[i].offset);
    }
    tr_put_u32(b + len - 4, tr_crc32c(0, b, len - 4));
    int rc = TR_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) rc = tr_err_from_errno(errno);
    if (rc == TR_OK) {
        int w = tr_pwrite_all(fd, b, len, 0);
        if (w == 0 && fdatasync(fd) != 0) w = -errno;
        close(fd);
        if (w != 0) rc = tr_err_from_errno(-w);
    }
    if (rc == TR_OK && rename(tmp, path) != 0) rc = tr_err_from_errno(errno);
    if (rc != TR_OK) unlink(tmp);
    free(b);
    return rc;
}

/* Loads the saved index if it matches the segment file; returns 0 when it does. */
static int index_load(tr_segment *seg, uint64_t file_size) {
    char path[4096];
    index_path_of(seg, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    struct stat st;
    uint8_t *b = NULL;
    int ok = fstat(fd, &st) == 0 && st.st_size >= (off_t)(IDX_HEADER_BYTES + 4) &&
             st.st_size < (off_t)(1u << 30);
    size_t len = ok ? (size_t)st.st_size : 0, got = 0;
    if (ok) b = malloc(len);
    ok = b && tr_pread_all(fd, b, len, 0, &got) == 0 && got == len;
    close(fd);
    ok = ok && memcmp(b, idx_magic, 8) == 0 && tr_get_u32(b + len - 4) == tr_crc32c(0, b, len - 4);
    uint64_t n = ok ? tr_get_u64(b + 16) : 0;
    ok = ok && tr_get_u64(b + 8) == file_size && IDX_HEADER_BYTES + n * IDX_ENTRY_BYTES + 4 == len;
    if (ok && n > 0) {
        seg->idx = malloc(n * sizeof *seg->idx);
        ok = seg->idx != NULL;
    }
    if (ok) {
        seg->size = file_size;
        seg->idx_len = seg->idx_cap = n;
        seg->count = tr_get_u64(b + 24);
        seg->last_seq = tr_get_u64(b + 32);
        seg->first_ms = (int64_t)tr_get_u64(b + 40);
        seg->last_ms = (int64_t)tr_get_u64(b + 48);
        seg->corrupt_at = tr_get_u64(b + 56);
        for (size_t i = 0; i < n; i++) {
            const uint8_t *e = b + IDX_HEADER_BYTES + i * IDX_ENTRY_BYTES;
            seg->idx[i] = (tr_index_entry){tr_get_u64(e), (int64_t)tr_get_u64(e + 8),
                                           tr_get_u64(e + 16)};
        }
        seg->idx_last_offset = n ? seg->idx[n - 1].offset : 0;
    }
    free(b);
    return ok ? 0 : -1;
}

int tr_segment_seal(tr_segment *seg) {
    if (fdatasync(seg->fd) != 0) return tr_err_from_errno(errno);
    int rc = index_write(seg);
    if (rc != TR_OK) return rc;
    seg->sealed = 1;
    return TR_OK;
}

/* ---- scanning (recovery) ---- */

/* Cheap plausibility test before a checksum: used when hunting for the next valid frame
 * after a corrupt one, where most offsets are garbage. */
static int frame_plausible(const uint8_t *p, size_t avail, uint64_t min_seq) {
    if (avail < TR_FRAME_HEADER_BYTES + TR_FRAME_FIXED_BODY_BYTES) return 0;
    uint32_t body_len = tr_get_u32(p);
    if (body_len < TR_FRAME_FIXED_BODY_BYTES || body_len > avail - TR_FRAME_HEADER_BYTES)
        return 0;
    const uint8_t *b = p + TR_FRAME_HEADER_BYTES;
    uint64_t seq = tr_get_u64(b);
    if (seq < min_seq || seq - min_seq > (1ull << 40)) return 0;
    return (uint64_t)TR_FRAME_FIXED_BODY_BYTES + tr_get_u16(b + 28) + tr_get_u16(b + 30) +
               tr_get_u32(b + 32) == body_len;
}

/* Offset of the next valid frame at or after from, with seq >= min_seq; 0 if none. */
static uint64_t find_resync(const uint8_t *map, uint64_t from, uint64_t end, uint64_t min_seq) {
    for (uint64_t off = from; off + TR_FRAME_HEADER_BYTES <= end; off++) {
        if (!frame_plausible(map + off, end - off, min_seq)) continue;
        tr_record rec;
        size_t flen;
        if (tr_frame_decode(map + off, end - off, &rec, &flen) == TR_FRAME_OK) return off;
    }
    return 0;
}

static void note_record(tr_segment *seg, const tr_record *rec) {
    if (seg->count == 0) seg->first_ms = rec->arrival_ms;
    seg->count++;
    seg->last_seq = rec->seq;
    seg->last_ms = rec->arrival_ms;
}

/* Walks every frame, rebuilding the index. Returns where valid data ends (the new size). */
static int segment_scan(tr_segment *seg, const uint8_t *map, uint64_t file_size,
                        uint32_t interval, uint64_t *end_out) {
    uint64_t off = TR_SEGMENT_HEADER_BYTES;
    while (off < file_size) {
        tr_record rec;
        size_t flen;
        tr_frame_status st = tr_frame_decode(map + off, file_size - off, &rec, &flen);
        uint64_t want = seg->count ? seg->last_seq + 1 : seg->base_seq;
        int ok = st == TR_FRAME_OK && (seg->corrupt_at ? rec.seq >= want : rec.seq == want) &&
                 (seg->count == 0 || rec.arrival_ms >= seg->last_ms);
        if (ok) {
            int rc = tr_segment_index_add(seg, rec.seq, rec.arrival_ms, off, interval);
            if (rc != TR_OK) return rc;
            note_record(seg, &rec);
            off += flen;
            continue;
        }
        uint64_t next = find_resync(map, off + 1, file_size, want);
        if (next == 0) break; /* nothing valid follows: a torn (or corrupt) tail */
        tr_error("msg=\"corrupt extent in segment; records in it are unreadable\" path=%s "
                 "offset=%" PRIu64 " length=%" PRIu64 " after_seq=%" PRIu64,
                 seg->path, off, next - off, seg->count ? seg->last_seq : 0);
        if (!seg->corrupt_at) seg->corrupt_at = off;
        /* Index the resync point whatever the interval, so that a seek past the hole lands
         * after it; the loop then takes the frame at `next` as the next record. */
        off = next;
        tr_record r2;
        size_t l2;
        tr_frame_decode(map + off, file_size - off, &r2, &l2);
        int rc = tr_segment_index_add(seg, r2.seq, r2.arrival_ms, off, 0);
        if (rc != TR_OK) return rc;
        note_record(seg, &r2);
        off += l2;
    }
    *end_out = off;
    return TR_OK;
}

static int check_header(const uint8_t *h, uint64_t *base_seq, int64_t *created_ms) {
    if (memcmp(h, seg_magic, 8) != 0 || tr_get_u32(h + 28) != tr_crc32c(0, h, 28)) return -1;
    *base_seq = tr_get_u64(h + 8);
    *created_ms = (int64_t)tr_get_u64(h + 16);
    return 0;
}

int tr_segment_open(const char *path, int newest, uint32_t index_interval, tr_segment **out,
                    uint64_t *dropped_bytes) {
    *dropped_bytes = 0;
    int fd = open(path, (newest ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) return tr_err_from_errno(errno);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = tr_err_from_errno(errno);
        close(fd);
        return err;
    }
    uint64_t file_size = (uint64_t)st.st_size;
    uint8_t h[TR_SEGMENT_HEADER_BYTES] = {0};
    size_t got = 0;
    uint64_t base_seq;
    int64_t created_ms;
    if (tr_pread_all(fd, h, sizeof h, 0, &got) != 0 || got < sizeof h ||
        check_header(h, &base_seq, &created_ms) != 0) {
        close(fd);
        /* A crash between creating the newest file and syncing its header leaves a stub
         * that never held a record: the caller removes it. */
        return newest ? TR_ENOENT : TR_ECORRUPT;
    }
    tr_segment *seg = segment_alloc(path, fd, base_seq, created_ms);
    if (!seg) {
        close(fd);
        return TR_ENOMEM;
    }
    if (!newest && index_load(seg, file_size) == 0) {
        seg->sealed = 1;
        *out = seg;
        return TR_OK;
    }
    const uint8_t *map = NULL;
    if (file_size > TR_SEGMENT_HEADER_BYTES) {
        map = mmap(NULL, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int err = tr_err_from_errno(errno);
            tr_segment_unref(seg);
            return err;
        }
    }
    uint64_t end = TR_SEGMENT_HEADER_BYTES;
    int rc = map ? segment_scan(seg, map, file_size, index_interval, &end) : TR_OK;
    if (map) munmap((void *)map, file_size);
    if (rc != TR_OK) {
        tr_segment_unref(seg);
        return rc;
    }
    seg->size = end;
    if (end < file_size) {
        *dropped_bytes = file_size - end;
        if (newest) {
            if (ftruncate(fd, (off_t)end) != 0 || fdatasync(fd) != 0) {
                rc = tr_err_from_errno(errno);
                tr_segment_unref(seg);
                return rc;
            }
        } else {
            tr_error("msg=\"corrupt tail in sealed segment; records after it are lost\" "
                     "path=%s offset=%" PRIu64 " bytes=%" PRIu64,
                     path, end, file_size - end);
            if (!seg->corrupt_at) seg->corrupt_at = end;
        }
    }
    if (!newest) {
        seg->sealed = 1;
        (void)index_write(seg); /* next open need not rescan */
    }
    *out = seg;
    return TR_OK;
}
