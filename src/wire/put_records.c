#include "wire/put_records.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "wire/reader.h"

/* ---- UTF-8, by jansson's rules (utf8.c: utf8_check_first, utf8_check_full) ---- */

/* The length of the sequence a lead byte starts, 0 if it cannot start one. */
static size_t utf8_first(unsigned char u) {
    if (u < 0x80) return 1;
    if (u < 0xC2) return 0; /* a continuation byte, or an overlong lead (C0, C1) */
    if (u <= 0xDF) return 2;
    if (u <= 0xEF) return 3;
    if (u <= 0xF4) return 4;
    return 0;
}

/* Whether the `size`-byte sequence at b (size 2..4) is one valid code point. */
static int utf8_full(const unsigned char *b, size_t size) {
    uint32_t v = b[0] & (size == 2 ? 0x1F : size == 3 ? 0x0F : 0x07);
    for (size_t i = 1; i < size; i++) {
        if (b[i] < 0x80 || b[i] > 0xBF) return 0;
        v = v << 6 | (b[i] & 0x3F);
    }
    if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    if ((size == 2 && v < 0x80) || (size == 3 && v < 0x800) || (size == 4 && v < 0x10000))
        return 0; /* overlong */
    return 1;
}

int tr_utf8_valid(const char *s, size_t len) {
    const unsigned char *b = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        if (b[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = utf8_first(b[i]);
        if (n == 0 || n > len - i || !utf8_full(b + i, n)) return 0;
        i += n;
    }
    return 1;
}

/* ---- the scanner ---- */

/* Bytes a simple string holds as they are: not '"', not '\\', no control character, ASCII. */
static unsigned char plain[256];
static pthread_once_t plain_once = PTHREAD_ONCE_INIT;

static void plain_init(void) {
    for (int c = 0x20; c < 0x80; c++) plain[c] = c != '"' && c != '\\';
}

typedef struct scan {
    const unsigned char *p, *end;
} scan;

static void ws(scan *s) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

/* Takes byte c (after whitespace). */
static int take(scan *s, unsigned char c) {
    ws(s);
    if (s->p == s->end || *s->p != c) return -1;
    s->p++;
    return 0;
}

/* Whether the next byte (after whitespace) is c; takes it if so. */
static int next_is(scan *s, unsigned char c) {
    ws(s);
    if (s->p < s->end && *s->p == c) {
        s->p++;
        return 1;
    }
    return 0;
}

/* A string with no escape and no control character, in valid UTF-8. Returns 0 with its
 * contents, or -1 (declined). */
static int simple_string(scan *s, const char **str, size_t *len) {
    if (take(s, '"') != 0) return -1;
    const unsigned char *q = s->p, *end = s->end;
    for (;;) {
        while (q < end && plain[*q]) q++;
        if (q == end) return -1;
        if (*q == '"') break;
        if (*q < 0x80) return -1; /* '\\' or a control character */
        size_t n = utf8_first(*q);
        if (n == 0 || n > (size_t)(end - q) || !utf8_full(q, n)) return -1;
        q += n;
    }
    *str = (const char *)s->p;
    *len = (size_t)(q - s->p);
    s->p = q + 1;
    return 0;
}

static int key_is(const char *k, size_t n, const char *name) {
    return n == strlen(name) && memcmp(k, name, n) == 0;
}

/* One record object; its Data decoded at b->blob + *blob_len. */
static int scan_record(scan *s, tr_put_body *b, size_t *blob_len, tr_put_rec *r) {
    memset(r, 0, sizeof *r);
    if (take(s, '{') != 0) return -1;
    if (next_is(s, '}')) return 0;
    do {
        const char *k, *v;
        size_t kn, vn;
        if (simple_string(s, &k, &kn) != 0 || take(s, ':') != 0) return -1;
        if (key_is(k, kn, "Data")) {
            if (r->data_state) return -1; /* duplicate: jansson refuses the body */
            /* Valid base64 holds no quote, backslash, control or non-ASCII character, so
             * the first quote ends it, and whatever else it holds fails to decode. */
            const unsigned char *q;
            if (take(s, '"') != 0 || (q = memchr(s->p, '"', (size_t)(s->end - s->p))) == NULL)
                return -1;
            v = (const char *)s->p;
            vn = (size_t)(q - s->p);
            s->p = q + 1;
            long got = tr_base64_decode(v, vn, b->blob + *blob_len);
            if (got < 0) return -1;
            r->data = b->blob + *blob_len;
            r->data_len = (size_t)got;
            r->data_state = TR_PUT_VALUE;
            *blob_len += (size_t)got;
        } else if (key_is(k, kn, "PartitionKey")) {
            if (r->pkey_state || simple_string(s, &v, &vn) != 0) return -1;
            r->pkey = v;
            r->pkey_len = vn;
            r->pkey_state = TR_PUT_VALUE;
        } else if (key_is(k, kn, "ExplicitHashKey")) {
            if (r->ehk_state || simple_string(s, &v, &vn) != 0) return -1;
            r->ehk = v;
            r->ehk_len = vn;
            r->ehk_state = TR_PUT_VALUE;
        } else {
            return -1;
        }
    } while (next_is(s, ','));
    return take(s, '}');
}

/* The Records array. Returns 0, -1 declined, -2 out of memory. */
static int scan_records(scan *s, tr_put_body *b, size_t max_records, size_t *blob_len) {
    size_t cap = 0;
    if (take(s, '[') != 0) return -1;
    if (next_is(s, ']')) return 0;
    do {
        if (b->n == max_records) return -1;
        if (b->n == cap) {
            cap = cap ? cap * 2 : 64;
            if (cap > max_records) cap = max_records;
            tr_put_rec *g = realloc(b->recs, cap * sizeof *g);
            if (g == NULL) return -2;
            b->recs = g;
        }
        if (scan_record(s, b, blob_len, &b->recs[b->n]) != 0) return -1;
        b->n++;
    } while (next_is(s, ','));
    return take(s, ']');
}

static int scan_body(scan *s, tr_put_body *b, size_t max_records) {
    size_t blob_len = 0;
    int have_records = 0;
    if (take(s, '{') != 0) return -1;
    if (next_is(s, '}')) return -1; /* no Records */
    do {
        const char *k;
        size_t kn;
        if (simple_string(s, &k, &kn) != 0 || take(s, ':') != 0) return -1;
        if (key_is(k, kn, "Records")) {
            if (have_records) return -1;
            have_records = 1;
            int rc = scan_records(s, b, max_records, &blob_len);
            if (rc != 0) return rc;
        } else if (key_is(k, kn, "StreamName")) {
            if (b->stream_name) return -1;
            if (simple_string(s, &b->stream_name, &b->stream_name_len) != 0) return -1;
        } else if (key_is(k, kn, "StreamARN")) {
            if (b->stream_arn) return -1;
            if (simple_string(s, &b->stream_arn, &b->stream_arn_len) != 0) return -1;
        } else {
            return -1;
        }
    } while (next_is(s, ','));
    if (take(s, '}') != 0) return -1;
    ws(s);
    return s->p == s->end && have_records ? 0 : -1; /* jansson refuses trailing bytes */
}

int tr_put_scan_json(const uint8_t *body, size_t len, size_t max_records, tr_put_body *out) {
    memset(out, 0, sizeof *out);
    pthread_once(&plain_once, plain_init);
    /* Decoded data is never longer than 3/4 of the base64 text that holds it. */
    out->blob = malloc(len / 4 * 3 + 1);
    if (out->blob == NULL) return -1;
    scan s = {body, body + len};
    int rc = scan_body(&s, out, max_records);
    if (rc == 0) return 1;
    tr_put_body_free(out);
    return rc == -2 ? -1 : 0;
}

void tr_put_body_free(tr_put_body *b) {
    free(b->recs);
    free(b->blob);
    memset(b, 0, sizeof *b);
}

/* ---- from a tree ---- */

void tr_put_rec_from_tree(tr_wire_format f, json_t *rec, tr_put_rec *out, uint8_t **owned) {
    memset(out, 0, sizeof *out);
    *owned = NULL;
    json_t *data = json_object_get(rec, "Data");
    json_t *pk = json_object_get(rec, "PartitionKey");
    json_t *ehk = json_object_get(rec, "ExplicitHashKey");
    if (data != NULL && !json_is_null(data)) {
        const uint8_t *bytes = NULL;
        size_t len = 0;
        int own = 0;
        out->data_state = TR_PUT_WRONG;
        if (tr_wire_blob(f, data, &bytes, &len, &own) == 0) {
            out->data = bytes;
            out->data_len = len;
            out->data_state = TR_PUT_VALUE;
            if (own) *owned = (uint8_t *)bytes;
        }
    }
    if (pk != NULL && !json_is_null(pk)) {
        out->pkey_state = TR_PUT_WRONG;
        if (json_is_string(pk)) {
            out->pkey = json_string_value(pk);
            out->pkey_len = json_string_length(pk);
            out->pkey_state = TR_PUT_VALUE;
        }
    }
    if (ehk != NULL && !json_is_null(ehk)) {
        out->ehk_state = TR_PUT_WRONG;
        if (json_is_string(ehk)) {
            out->ehk = json_string_value(ehk);
            out->ehk_len = strlen(out->ehk);
            out->ehk_state = TR_PUT_VALUE;
        }
    }
}
