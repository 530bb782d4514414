#include "wire/mkv_chunk.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* TargetTypeValue 50: the whole "episode", i.e. the document the Tags sit in. */
#define TARGET_TYPE_VALUE 50

void tr_mkv_format_seconds(int64_t ms, char out[TR_MKV_SECONDS_MAX]) {
    /* Unsigned magnitude: -INT64_MIN does not fit an int64_t. */
    uint64_t u = ms < 0 ? (uint64_t)0 - (uint64_t)ms : (uint64_t)ms;
    snprintf(out, TR_MKV_SECONDS_MAX, "%s%" PRIu64 ".%03u", ms < 0 ? "-" : "", u / 1000,
             (unsigned)(u % 1000));
}

void tr_mkv_put_tags(tr_ebml_buf *b, const tr_mkv_tag *tags, size_t n) {
    if (n == 0) return;
    size_t tags_at = tr_ebml_master_begin(b, TR_MKV_ID_TAGS);
    size_t tag_at = tr_ebml_master_begin(b, TR_MKV_ID_TAG);
    size_t targets_at = tr_ebml_master_begin(b, TR_MKV_ID_TARGETS);
    tr_ebml_put_uint(b, TR_MKV_ID_TARGET_TYPE_VALUE, TARGET_TYPE_VALUE);
    tr_ebml_master_end(b, targets_at);
    for (size_t i = 0; i < n; i++) {
        size_t st = tr_ebml_master_begin(b, TR_MKV_ID_SIMPLE_TAG);
        tr_ebml_put_string(b, TR_MKV_ID_TAG_NAME, tags[i].name);
        tr_ebml_put_string(b, TR_MKV_ID_TAG_STRING, tags[i].value);
        tr_ebml_master_end(b, st);
    }
    tr_ebml_master_end(b, tag_at);
    tr_ebml_master_end(b, tags_at);
}

void tr_mkv_chunk_head(tr_ebml_buf *b, const uint8_t *header, size_t header_len,
                       const tr_mkv_chunk_meta *m) {
    char server[TR_MKV_SECONDS_MAX], producer[TR_MKV_SECONDS_MAX];
    tr_mkv_format_seconds(m->server_timestamp_ms, server);
    tr_mkv_format_seconds(m->producer_timestamp_ms, producer);
    tr_mkv_tag t[] = {
        {TR_MKV_TAG_FRAGMENT_NUMBER, m->fragment_number},
        {TR_MKV_TAG_SERVER_TIMESTAMP, server},
        {TR_MKV_TAG_PRODUCER_TIMESTAMP, producer},
    };
    tr_ebml_put_bytes(b, header, header_len);
    tr_mkv_put_tags(b, t, 3);
}

void tr_mkv_chunk_tail(tr_ebml_buf *b, const uint8_t *producer_tags, size_t tags_len,
                       const tr_mkv_chunk_meta *m) {
    char behind[24];
    snprintf(behind, sizeof behind, "%" PRId64, m->millis_behind_now);
    tr_mkv_tag t[] = {
        {TR_MKV_TAG_MILLIS_BEHIND_NOW, behind},
        {TR_MKV_TAG_CONTINUATION_TOKEN,
         m->continuation_token != NULL ? m->continuation_token : m->fragment_number},
    };
    if (producer_tags != NULL) tr_ebml_put_bytes(b, producer_tags, tags_len);
    tr_mkv_put_tags(b, t, 2);
}

int tr_mkv_chunk_build(tr_ebml_buf *b, const uint8_t *header, size_t header_len,
                       const uint8_t *cluster, size_t cluster_len, const uint8_t *producer_tags,
                       size_t tags_len, const tr_mkv_chunk_meta *m) {
    tr_mkv_chunk_head(b, header, header_len, m);
    tr_ebml_put_bytes(b, cluster, cluster_len);
    tr_mkv_chunk_tail(b, producer_tags, tags_len, m);
    return b->failed ? -1 : 0;
}

/* The smallest document a Matroska reader accepts, for an error chunk of a stream that has
 * no header stored. */
static void put_bare_header(tr_ebml_buf *b) {
    size_t at = tr_ebml_master_begin(b, TR_EBML_ID_HEADER);
    tr_ebml_put_uint(b, TR_EBML_ID_VERSION, 1);
    tr_ebml_put_uint(b, TR_EBML_ID_READ_VERSION, 1);
    tr_ebml_put_uint(b, TR_EBML_ID_MAX_ID_LENGTH, 4);
    tr_ebml_put_uint(b, TR_EBML_ID_MAX_SIZE_LENGTH, 8);
    tr_ebml_put_string(b, TR_EBML_ID_DOCTYPE, "matroska");
    tr_ebml_put_uint(b, TR_EBML_ID_DOCTYPE_VERSION, 4);
    tr_ebml_put_uint(b, TR_EBML_ID_DOCTYPE_READ_VERSION, 2);
    tr_ebml_master_end(b, at);
    tr_ebml_put_id(b, TR_MKV_ID_SEGMENT);
    tr_ebml_put_unknown_size(b);
}

int tr_mkv_chunk_error(tr_ebml_buf *b, const uint8_t *header, size_t header_len,
                       const char *fragment_number, int error_id, const char *error_code) {
    char id[16];
    snprintf(id, sizeof id, "%d", error_id);
    tr_mkv_tag t[3];
    size_t n = 0;
    if (fragment_number != NULL) t[n++] = (tr_mkv_tag){TR_MKV_TAG_FRAGMENT_NUMBER, fragment_number};
    t[n++] = (tr_mkv_tag){TR_MKV_TAG_ERROR_CODE,
                          error_code != NULL ? error_code : tr_kvs_error_name(error_id)};
    t[n++] = (tr_mkv_tag){TR_MKV_TAG_ERROR_ID, id};
    if (header != NULL)
        tr_ebml_put_bytes(b, header, header_len);
    else
        put_bare_header(b);
    tr_mkv_put_tags(b, t, n);
    return b->failed ? -1 : 0;
}

/* ---- reading ---- */

typedef int (*tag_fn)(void *ctx, const char *name, size_t name_len, const char *value,
                      size_t value_len);

static size_t trim_nuls(const uint8_t *s, size_t n) {
    while (n > 0 && s[n - 1] == 0) n--;
    return n;
}

static int read_simple_tag(const tr_ebml_elem *st, tag_fn fn, void *ctx) {
    const uint8_t *p = st->data, *end = st->data + st->size;
    const uint8_t *name = (const uint8_t *)"", *value = (const uint8_t *)"";
    size_t nl = 0, vl = 0;
    tr_ebml_elem e;
    int r;
    while ((r = tr_ebml_next(&p, end, &e)) == 1) {
        if (e.id == TR_MKV_ID_TAG_NAME) {
            name = e.data;
            nl = trim_nuls(e.data, e.size);
        } else if (e.id == TR_MKV_ID_TAG_STRING) {
            value = e.data;
            vl = trim_nuls(e.data, e.size);
        }
    }
    if (r != 0) return -1;
    return fn != NULL ? fn(ctx, (const char *)name, nl, (const char *)value, vl) : 0;
}

static int read_tags(const tr_ebml_elem *tags, tag_fn fn, void *ctx) {
    const uint8_t *p = tags->data, *end = tags->data + tags->size;
    tr_ebml_elem tag, e;
    int r;
    while ((r = tr_ebml_next(&p, end, &tag)) == 1) {
        if (tag.id != TR_MKV_ID_TAG) continue;
        const uint8_t *q = tag.data, *tend = tag.data + tag.size;
        int r2;
        while ((r2 = tr_ebml_next(&q, tend, &e)) == 1) {
            if (e.id != TR_MKV_ID_SIMPLE_TAG) continue;
            int rc = read_simple_tag(&e, fn, ctx);
            if (rc != 0) return rc;
        }
        if (r2 != 0) return -1;
    }
    return r == 0 ? 0 : -1;
}

int tr_mkv_chunk_read(const uint8_t *buf, size_t len, tr_mkv_chunk_view *v,
                      tag_fn fn, void *ctx) {
    const uint8_t *p = buf, *end = buf + len;
    tr_ebml_elem e;
    memset(v, 0, sizeof *v);
    if (tr_ebml_next(&p, end, &e) != 1 || e.id != TR_EBML_ID_HEADER) return -1;
    uint32_t id;
    uint64_t size;
    int il = tr_ebml_read_id(p, (size_t)(end - p), &id);
    if (il <= 0 || id != TR_MKV_ID_SEGMENT) return -1;
    int sl = tr_ebml_read_size(p + il, (size_t)(end - p) - (size_t)il, &size);
    if (sl <= 0) return -1;
    p += il + sl;
    int unknown = size == TR_EBML_UNKNOWN_SIZE;
    if (!unknown) {
        if (size > (uint64_t)(end - p)) return -1;
        end = p + size;
    }
    while (p < end) {
        /* A Segment of unknown size ends where the next chunk's EBML header begins. */
        if (unknown && tr_ebml_read_id(p, (size_t)(end - p), &id) > 0 && id == TR_EBML_ID_HEADER)
            break;
        if (tr_ebml_next(&p, end, &e) != 1) return -1;
        if (e.id == TR_MKV_ID_CLUSTER) {
            v->cluster = e.data - e.hdr_len;
            v->cluster_len = e.hdr_len + e.size;
        } else if (e.id == TR_MKV_ID_TAGS) {
            v->ntags_elements++;
            int rc = read_tags(&e, fn, ctx);
            if (rc != 0) return rc;
        }
    }
    v->len = (size_t)(p - buf);
    return 0;
}
