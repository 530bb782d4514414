#include "video/index.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

struct tr_frag_index {
    pthread_rwlock_t lock;
    tr_frag_entry *v;
    size_t head, n, cap;     /* live entries are v[head .. head + n) */
};

tr_frag_index *tr_frag_index_new(void) {
    tr_frag_index *x = calloc(1, sizeof *x);
    if (x != NULL) pthread_rwlock_init(&x->lock, NULL);
    return x;
}

void tr_frag_index_free(tr_frag_index *x) {
    if (x == NULL) return;
    pthread_rwlock_destroy(&x->lock);
    free(x->v);
    free(x);
}

/* Room for one more at the end; moves live entries to the front when trimming left a gap. */
static int reserve(tr_frag_index *x) {
    if (x->head + x->n < x->cap) return TR_OK;
    if (x->head > 0) {
        memmove(x->v, x->v + x->head, x->n * sizeof *x->v);
        x->head = 0;
        if (x->n < x->cap) return TR_OK;
    }
    size_t cap = x->cap ? x->cap * 2 : 256;
    tr_frag_entry *v = realloc(x->v, cap * sizeof *v);
    if (v == NULL) return TR_ENOMEM;
    x->v = v;
    x->cap = cap;
    return TR_OK;
}

/* First live position whose seq >= seq (binary search). Lock held. */
static size_t lower_bound(const tr_frag_index *x, uint64_t seq) {
    size_t lo = 0, hi = x->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (x->v[x->head + mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int tr_frag_index_add(tr_frag_index *x, const tr_frag_entry *e) {
    pthread_rwlock_wrlock(&x->lock);
    int rc = reserve(x);
    if (rc == TR_OK) {
        size_t at = x->n == 0 || x->v[x->head + x->n - 1].seq < e->seq ? x->n : lower_bound(x, e->seq);
        tr_frag_entry *base = x->v + x->head;
        if (at < x->n && base[at].seq == e->seq) {
            base[at] = *e; /* the same fragment again (an index rebuilt while ingest ran) */
        } else {
            memmove(base + at + 1, base + at, (x->n - at) * sizeof *base);
            base[at] = *e;
            x->n++;
        }
    }
    pthread_rwlock_unlock(&x->lock);
    return rc;
}

void tr_frag_index_trim(tr_frag_index *x, uint64_t first_seq) {
    pthread_rwlock_wrlock(&x->lock);
    size_t drop = lower_bound(x, first_seq);
    x->head += drop;
    x->n -= drop;
    if (x->n == 0) x->head = 0;
    pthread_rwlock_unlock(&x->lock);
}

size_t tr_frag_index_count(tr_frag_index *x) {
    pthread_rwlock_rdlock(&x->lock);
    size_t n = x->n;
    pthread_rwlock_unlock(&x->lock);
    return n;
}

int tr_frag_index_get(tr_frag_index *x, uint64_t seq, tr_frag_entry *out) {
    pthread_rwlock_rdlock(&x->lock);
    size_t at = lower_bound(x, seq);
    int rc = at < x->n && x->v[x->head + at].seq == seq ? 0 : -1;
    if (rc == 0) *out = x->v[x->head + at];
    pthread_rwlock_unlock(&x->lock);
    return rc;
}

int tr_frag_index_next(tr_frag_index *x, uint64_t after, tr_frag_entry *out) {
    pthread_rwlock_rdlock(&x->lock);
    size_t at = lower_bound(x, after + 1);
    int rc = at < x->n ? 0 : -1;
    if (rc == 0) *out = x->v[x->head + at];
    pthread_rwlock_unlock(&x->lock);
    return rc;
}

int tr_frag_index_last(tr_frag_index *x, tr_frag_entry *out) {
    pthread_rwlock_rdlock(&x->lock);
    int rc = x->n > 0 ? 0 : -1;
    if (rc == 0) *out = x->v[x->head + x->n - 1];
    pthread_rwlock_unlock(&x->lock);
    return rc;
}

static int64_t start_of(const tr_frag_entry *e, int by_producer) {
    return by_producer ? e->producer_ms : e->server_ms;
}

/* Producer times may go back between sessions (a reconnecting producer re-sends), so the
 * lookups scan in sequence order instead of assuming sorted times. */
int tr_frag_index_at_time(tr_frag_index *x, int by_producer, int64_t ms, tr_frag_entry *out) {
    pthread_rwlock_rdlock(&x->lock);
    int rc = -1;
    const tr_frag_entry *after = NULL;
    for (size_t i = 0; i < x->n; i++) {
        const tr_frag_entry *e = &x->v[x->head + i];
        int64_t s = start_of(e, by_producer);
        if (s <= ms && ms < s + (e->duration_ms > 0 ? e->duration_ms : 1)) {
            *out = *e;
            rc = 0;
            break;
        }
        if (s > ms && after == NULL) after = e;
    }
    if (rc != 0 && after != NULL) {
        *out = *after;
        rc = 0;
    }
    pthread_rwlock_unlock(&x->lock);
    return rc;
}

size_t tr_frag_index_range(tr_frag_index *x, int by_producer, int64_t start_ms, int64_t end_ms,
                           uint64_t after, tr_frag_entry *out, size_t max, int *more) {
    pthread_rwlock_rdlock(&x->lock);
    size_t got = 0;
    *more = 0;
    for (size_t i = lower_bound(x, after + 1); i < x->n; i++) {
        const tr_frag_entry *e = &x->v[x->head + i];
        int64_t s = start_of(e, by_producer);
        if (s < start_ms || s > end_ms) continue;
        if (got == max) {
            *more = 1;
            break;
        }
        out[got++] = *e;
    }
    pthread_rwlock_unlock(&x->lock);
    return got;
}
