#include "video/media.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/record.h"
#include "util/bytes.h"
#include "util/error.h"
#include "util/log.h"

#define BUILD_READ_BYTES (64u * 1024 * 1024)

typedef struct stream_index {
    int64_t stream_id;
    tr_frag_index *index;
    int built;
    pthread_mutex_t build_mu;   /* one builder; readers wait for it */
} stream_index;

struct tr_media {
    tr_video *video;
    tr_kms *kms;                /* NULL: fragments stored clear */
    pthread_mutex_t mu;         /* guards the table */
    stream_index **v;
    size_t n, cap;
};

int tr_media_open(tr_video *video, tr_media **out) {
    tr_media *m = calloc(1, sizeof *m);
    if (m == NULL) return TR_ENOMEM;
    m->video = video;
    pthread_mutex_init(&m->mu, NULL);
    *out = m;
    return TR_OK;
}

void tr_media_close(tr_media *m) {
    if (m == NULL) return;
    for (size_t i = 0; i < m->n; i++) {
        tr_frag_index_free(m->v[i]->index);
        pthread_mutex_destroy(&m->v[i]->build_mu);
        free(m->v[i]);
    }
    free(m->v);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

tr_video *tr_media_video(tr_media *m) { return m->video; }

void tr_media_set_kms(tr_media *m, tr_kms *kms) { m->kms = kms; }

/* A fragment's AAD: its stream and its clear meta, so that neither can be swapped. */
static void fragment_aad(const tr_video_stream *s, const uint8_t *meta,
                         uint8_t out[8 + TR_FRAGMENT_META_BYTES]) {
    tr_put_u64(out, (uint64_t)s->id);
    memcpy(out + 8, meta, TR_FRAGMENT_META_BYTES);
}

int tr_media_encode(tr_media *m, const tr_video_stream *s, tr_fragment *f, uint8_t **buf,
                    size_t *size) {
    size_t plain = tr_fragment_size(f);
    if (m->kms == NULL) {
        if (plain > TR_MAX_FRAGMENT_BYTES) return TR_ETOOBIG;
        if ((*buf = malloc(plain)) == NULL) return TR_ENOMEM;
        tr_fragment_encode(f, *buf);
        *size = plain;
        return tr_fragment_decode(*buf, plain, f) == 0 ? TR_OK : TR_EINVAL;
    }
    size_t sealed = plain + TR_KMS_SEAL_OVERHEAD;
    if (plain > TR_MAX_FRAGMENT_BYTES) return TR_ETOOBIG;
    uint8_t *b = malloc(sealed);
    if (b == NULL) return TR_ENOMEM;
    /* Encoded with its meta TR_KMS_SEAL_HEADER bytes in, so that the body lands where the
     * ciphertext goes and is sealed in place; then the meta moves to the front. */
    f->flags |= TR_FRAGMENT_SEALED;
    tr_fragment_encode(f, b + TR_KMS_SEAL_HEADER);
    memmove(b, b + TR_KMS_SEAL_HEADER, TR_FRAGMENT_META_BYTES);
    uint8_t aad[8 + TR_FRAGMENT_META_BYTES];
    fragment_aad(s, b, aad);
    char purpose[48];
    snprintf(purpose, sizeof purpose, "kinesisvideo/%lld", (long long)s->id);
    uint8_t *body = b + TR_FRAGMENT_META_BYTES;
    int rc = tr_kms_seal(m->kms, s->kms_key_id, purpose, aad, sizeof aad,
                         body + TR_KMS_SEAL_HEADER, plain - TR_FRAGMENT_META_BYTES, body);
    if (rc == TR_OK && tr_fragment_decode(b, sealed, f) != 0) rc = TR_EINVAL;
    if (rc != TR_OK) {
        free(b);
        return rc;
    }
    *buf = b;
    *size = sealed;
    return TR_OK;
}

void tr_media_entry(uint64_t seq, const tr_fragment *f, size_t size, tr_frag_entry *e) {
    e->seq = seq;
    e->producer_ms = f->producer_ms;
    e->server_ms = f->server_ms;
    e->duration_ms = f->duration_ms;
    e->size = (uint32_t)size;
    e->flags = f->flags;
}

/* Finds or adds the stream's entry. Stream ids are never reused, so an entry outlives its
 * stream harmlessly. */
static stream_index *entry_of(tr_media *m, int64_t id) {
    pthread_mutex_lock(&m->mu);
    stream_index *x = NULL;
    for (size_t i = 0; i < m->n && x == NULL; i++)
        if (m->v[i]->stream_id == id) x = m->v[i];
    if (x == NULL && m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        stream_index **v = realloc(m->v, cap * sizeof *v);
        if (v != NULL) {
            m->v = v;
            m->cap = cap;
        }
    }
    if (x == NULL && m->n < m->cap && (x = calloc(1, sizeof *x)) != NULL) {
        x->stream_id = id;
        x->index = tr_frag_index_new();
        pthread_mutex_init(&x->build_mu, NULL);
        if (x->index == NULL) {
            free(x);
            x = NULL;
        } else {
            m->v[m->n++] = x;
        }
    }
    pthread_mutex_unlock(&m->mu);
    return x;
}

/* Reads every retained record of the shard and indexes its fragments. */
static int build(const tr_video_stream *s, tr_frag_index *index) {
    tr_shard_info info;
    tr_shard_get_info(s->log, &info);
    tr_read_batch b;
    tr_read_batch_init(&b);
    uint64_t seq = info.first_seq, fragments = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = TR_OK;
    while (seq <= info.last_seq && rc == TR_OK) {
        rc = tr_shard_read(s->log, seq, 4096, BUILD_READ_BYTES, &b);
        if (rc != TR_OK || b.count == 0) break;
        for (size_t i = 0; i < b.count && rc == TR_OK; i++) {
            const tr_record *r = &b.records[i];
            tr_fragment f;
            if ((r->flags & TR_FLAG_KIND_MASK) != TR_KIND_FRAGMENT ||
                tr_fragment_decode(r->data, r->data_len, &f) != 0)
                continue;
            tr_frag_entry e;
            tr_media_entry(r->seq, &f, r->data_len, &e);
            rc = tr_frag_index_add(index, &e);
            fragments++;
        }
        seq = b.next_seq;
    }
    tr_read_batch_free(&b);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    if (rc != TR_OK)
        tr_error("msg=\"cannot index video stream\" stream=%s err=\"%s\"", s->name,
                 tr_strerror(rc));
    else
        tr_info("msg=\"video stream indexed\" stream=%s fragments=%llu ms=%.1f", s->name,
                (unsigned long long)fragments, ms);
    return rc;
}

tr_frag_index *tr_media_index(tr_media *m, const tr_video_stream *s, int want_built) {
    stream_index *x = entry_of(m, s->id);
    if (x == NULL) return NULL;
    if (!want_built) return x->index;
    pthread_mutex_lock(&x->build_mu);
    int rc = TR_OK;
    if (!x->built) {
        rc = build(s, x->index);
        if (rc == TR_OK) x->built = 1;
    }
    pthread_mutex_unlock(&x->build_mu);
    if (rc != TR_OK) return NULL;
    tr_shard_info info;
    tr_shard_get_info(s->log, &info);
    tr_frag_index_trim(x->index, info.first_seq);
    return x->index;
}

int tr_media_read(tr_media *m, const tr_video_stream *s, uint64_t seq, tr_read_batch *b,
                  tr_fragment *f) {
    int rc = tr_shard_read(s->log, seq, 1, 1, b);
    if (rc != TR_OK) return rc;
    if (b->count == 0 || b->records[0].seq != seq) return TR_ENOENT;
    const tr_record *r = &b->records[0];
    if ((r->flags & TR_FLAG_KIND_MASK) != TR_KIND_FRAGMENT ||
        tr_fragment_decode(r->data, r->data_len, f) != 0)
        return TR_ENOENT;
    if (!(f->flags & TR_FRAGMENT_SEALED)) return TR_OK;
    if (m->kms == NULL) return TR_KMS_EBADCIPHER;
    uint8_t aad[8 + TR_FRAGMENT_META_BYTES], *plain;
    size_t plain_len;
    fragment_aad(s, r->data, aad);
    /* The batch's buffer is the reader's own: opened in place. */
    rc = tr_kms_open_sealed(m->kms, aad, sizeof aad, (uint8_t *)f->sealed, f->sealed_len, &plain,
                            &plain_len);
    if (rc != TR_OK) return rc;
    tr_fragment_view(f, plain);
    return TR_OK;
}
