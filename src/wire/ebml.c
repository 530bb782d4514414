#include "wire/ebml.h"

#include <stdlib.h>
#include <string.h>

int tr_ebml_vint_len(uint8_t b) {
    for (int n = 1; n <= 8; n++)
        if (b & (0x80u >> (n - 1))) return n;
    return 0;
}

/* The value bits of an n-byte vint at p (marker removed). */
static uint64_t vint_value(const uint8_t *p, int n) {
    uint64_t v = p[0] & ((0xFFu >> n));
    for (int i = 1; i < n; i++) v = v << 8 | p[i];
    return v;
}

static uint64_t all_ones(int n) { return (UINT64_C(1) << (7 * n)) - 1; }

int tr_ebml_read_id(const uint8_t *p, size_t len, uint32_t *id) {
    if (len == 0) return 0;
    int n = tr_ebml_vint_len(p[0]);
    if (n == 0 || n > 4) return -1;
    if (len < (size_t)n) return 0;
    uint64_t v = vint_value(p, n);
    if (v == 0 || v == all_ones(n)) return -1;
    /* A value that fits a shorter vint must use it: otherwise one element would have two IDs. */
    if (n > 1 && v < all_ones(n - 1)) return -1;
    uint32_t raw = 0;
    for (int i = 0; i < n; i++) raw = raw << 8 | p[i];
    *id = raw;
    return n;
}

int tr_ebml_read_size(const uint8_t *p, size_t len, uint64_t *size) {
    if (len == 0) return 0;
    int n = tr_ebml_vint_len(p[0]);
    if (n == 0) return -1;
    if (len < (size_t)n) return 0;
    uint64_t v = vint_value(p, n);
    *size = v == all_ones(n) ? TR_EBML_UNKNOWN_SIZE : v;
    return n;
}

int tr_ebml_get_uint(const uint8_t *p, size_t n, uint64_t *v) {
    if (n > 8) return -1;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) x = x << 8 | p[i];
    *v = x;
    return 0;
}

int tr_ebml_get_int(const uint8_t *p, size_t n, int64_t *v) {
    uint64_t u;
    if (tr_ebml_get_uint(p, n, &u) != 0) return -1;
    /* Sign-extend from the top bit of the first byte. */
    if (n > 0 && n < 8 && (p[0] & 0x80)) u |= ~UINT64_C(0) << (8 * n);
    *v = (int64_t)u;
    return 0;
}

int tr_ebml_get_float(const uint8_t *p, size_t n, double *v) {
    uint64_t u;
    if (n == 0) {
        *v = 0;
        return 0;
    }
    if ((n != 4 && n != 8) || tr_ebml_get_uint(p, n, &u) != 0) return -1;
    if (n == 4) {
        uint32_t u32 = (uint32_t)u;
        float f;
        memcpy(&f, &u32, sizeof f);
        *v = f;
    } else {
        memcpy(v, &u, sizeof *v);
    }
    return 0;
}

int tr_ebml_next(const uint8_t **p, const uint8_t *end, tr_ebml_elem *e) {
    const uint8_t *q = *p;
    if (q >= end) return 0;
    size_t left = (size_t)(end - q);
    int il = tr_ebml_read_id(q, left, &e->id);
    if (il <= 0) return -1;
    uint64_t size;
    int sl = tr_ebml_read_size(q + il, left - (size_t)il, &size);
    if (sl <= 0 || size == TR_EBML_UNKNOWN_SIZE) return -1;
    size_t hdr = (size_t)il + (size_t)sl;
    if (size > left - hdr) return -1;
    e->data = q + hdr;
    e->size = (size_t)size;
    e->hdr_len = hdr;
    *p = q + hdr + size;
    return 1;
}

/* ---- encoding ---- */

int tr_ebml_encode_id(uint8_t *out, uint32_t id) {
    uint8_t tmp[4];
    int n = id > 0xFFFFFF ? 4 : id > 0xFFFF ? 3 : id > 0xFF ? 2 : 1;
    for (int i = 0; i < n; i++) tmp[i] = (uint8_t)(id >> (8 * (n - 1 - i)));
    /* Valid exactly when it reads back as an ID of the same length. */
    uint32_t back;
    if (tr_ebml_read_id(tmp, (size_t)n, &back) != n || back != id) return 0;
    memcpy(out, tmp, (size_t)n);
    return n;
}

int tr_ebml_id_len(uint32_t id) {
    uint8_t tmp[4];
    return tr_ebml_encode_id(tmp, id);
}

int tr_ebml_encode_size(uint8_t *out, uint64_t size) {
    if (size > TR_EBML_MAX_SIZE) return 0;
    int n = 1;
    while (size >= all_ones(n)) n++;
    for (int i = 0; i < n; i++) out[i] = (uint8_t)(size >> (8 * (n - 1 - i)));
    out[0] |= (uint8_t)(0x80u >> (n - 1));
    return n;
}

void tr_ebml_encode_size8(uint8_t *out, uint64_t size) {
    for (int i = 0; i < 8; i++) out[i] = (uint8_t)(size >> (8 * (7 - i)));
    out[0] = 0x01;
}

void tr_ebml_encode_unknown_size(uint8_t *out) {
    out[0] = 0x01;
    memset(out + 1, 0xFF, 7);
}

/* ---- buffer ---- */

void tr_ebml_buf_init(tr_ebml_buf *b, size_t max) {
    memset(b, 0, sizeof *b);
    b->max = max ? max : SIZE_MAX / 2;
}

void tr_ebml_buf_free(tr_ebml_buf *b) {
    free(b->data);
    tr_ebml_buf_init(b, b->max);
}

void tr_ebml_buf_reset(tr_ebml_buf *b) {
    b->len = 0;
    b->failed = 0;
}

int tr_ebml_buf_reserve(tr_ebml_buf *b, size_t n) {
    if (b->failed) return -1;
    if (n > b->max || b->len > b->max - n) {
        b->failed = 1;
        return -1;
    }
    size_t need = b->len + n;
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap = cap > b->max / 2 ? b->max : cap * 2;
    uint8_t *d = realloc(b->data, cap);
    if (d == NULL) {
        b->failed = 1;
        return -1;
    }
    b->data = d;
    b->cap = cap;
    return 0;
}

uint8_t *tr_ebml_buf_take(tr_ebml_buf *b, size_t *len) {
    *len = b->len;
    uint8_t *d = b->failed || b->len == 0 ? NULL : b->data;
    if (d == NULL) free(b->data);
    tr_ebml_buf_init(b, b->max);
    return d;
}

void tr_ebml_put_bytes(tr_ebml_buf *b, const void *p, size_t n) {
    if (n == 0 || tr_ebml_buf_reserve(b, n) != 0) return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void tr_ebml_put_id(tr_ebml_buf *b, uint32_t id) {
    uint8_t tmp[4];
    int n = tr_ebml_encode_id(tmp, id);
    if (n == 0) {
        b->failed = 1; /* a programming error, made visible where the output is checked */
        return;
    }
    tr_ebml_put_bytes(b, tmp, (size_t)n);
}

void tr_ebml_put_size(tr_ebml_buf *b, uint64_t size) {
    uint8_t tmp[8];
    int n = tr_ebml_encode_size(tmp, size);
    if (n == 0) {
        b->failed = 1;
        return;
    }
    tr_ebml_put_bytes(b, tmp, (size_t)n);
}

void tr_ebml_put_size8(tr_ebml_buf *b, uint64_t size) {
    uint8_t tmp[8];
    if (size > TR_EBML_MAX_SIZE) {
        b->failed = 1;
        return;
    }
    tr_ebml_encode_size8(tmp, size);
    tr_ebml_put_bytes(b, tmp, 8);
}

void tr_ebml_put_unknown_size(tr_ebml_buf *b) {
    uint8_t tmp[8];
    tr_ebml_encode_unknown_size(tmp);
    tr_ebml_put_bytes(b, tmp, 8);
}

static void put_be(tr_ebml_buf *b, uint32_t id, uint64_t v, int n) {
    uint8_t tmp[8];
    for (int i = 0; i < n; i++) tmp[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    tr_ebml_put_id(b, id);
    tr_ebml_put_size(b, (uint64_t)n);
    tr_ebml_put_bytes(b, tmp, (size_t)n);
}

void tr_ebml_put_uint(tr_ebml_buf *b, uint32_t id, uint64_t v) {
    int n = 1;
    while (n < 8 && (v >> (8 * n)) != 0) n++;
    put_be(b, id, v, n);
}

void tr_ebml_put_int(tr_ebml_buf *b, uint32_t id, int64_t v) {
    /* Shortest n whose sign-extension gives v back. */
    int n = 1;
    while (n < 8) {
        int64_t lo = -((int64_t)1 << (8 * n - 1)), hi = ((int64_t)1 << (8 * n - 1)) - 1;
        if (v >= lo && v <= hi) break;
        n++;
    }
    put_be(b, id, (uint64_t)v, n);
}

void tr_ebml_put_float(tr_ebml_buf *b, uint32_t id, double v) {
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    put_be(b, id, u, 8);
}

void tr_ebml_put_binary(tr_ebml_buf *b, uint32_t id, const void *p, size_t n) {
    tr_ebml_put_id(b, id);
    tr_ebml_put_size(b, n);
    tr_ebml_put_bytes(b, p, n);
}

void tr_ebml_put_string(tr_ebml_buf *b, uint32_t id, const char *s) {
    tr_ebml_put_binary(b, id, s, strlen(s));
}

size_t tr_ebml_master_begin(tr_ebml_buf *b, uint32_t id) {
    tr_ebml_put_id(b, id);
    size_t at = b->len;
    tr_ebml_put_size8(b, 0);
    return at;
}

void tr_ebml_master_end(tr_ebml_buf *b, size_t at) {
    if (b->failed || at + 8 > b->len) {
        b->failed = 1;
        return;
    }
    tr_ebml_encode_size8(b->data + at, b->len - at - 8);
}
