#include "wire/writer.h"

#include <cbor.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tr_writer_init(tr_writer *w, tr_wire_format format) {
    memset(w, 0, sizeof *w);
    w->format = format;
    w->first[0] = 1;
}

void tr_writer_free(tr_writer *w) {
    free(w->buf);
    w->buf = NULL;
    w->len = w->cap = 0;
}

uint8_t *tr_writer_take(tr_writer *w, size_t *len) {
    uint8_t *b = w->failed ? NULL : w->buf;
    if (w->failed) free(w->buf);
    *len = w->failed ? 0 : w->len;
    w->buf = NULL;
    w->len = w->cap = 0;
    return b;
}

static uint8_t *reserve(tr_writer *w, size_t more) {
    if (w->failed) return NULL;
    if (w->len + more > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + more) cap *= 2;
        uint8_t *n = realloc(w->buf, cap);
        if (!n) {
            w->failed = 1;
            return NULL;
        }
        w->buf = n;
        w->cap = cap;
    }
    return w->buf + w->len;
}

static void put(tr_writer *w, const void *p, size_t n) {
    uint8_t *d = reserve(w, n);
    if (!d) return;
    memcpy(d, p, n);
    w->len += n;
}

static void putc_(tr_writer *w, char c) {
    if (w->len < w->cap)
        w->buf[w->len++] = (uint8_t)c;
    else
        put(w, &c, 1);
}

/* JSON: a comma before every item of an object or array but the first; none after a key. */
static void json_sep(tr_writer *w) {
    if (w->after_key) {
        w->after_key = 0;
        return;
    }
    if (!w->first[w->depth]) putc_(w, ',');
    w->first[w->depth] = 0;
}

/* CBOR items through libcbor's encoders, which need a buffer of at least 9 bytes. */
static void cbor_put(tr_writer *w, size_t (*enc)(unsigned char *, size_t)) {
    uint8_t *d = reserve(w, 16);
    if (d) w->len += enc(d, 16);
}

static void cbor_head(tr_writer *w, size_t (*enc)(uint64_t, unsigned char *, size_t), uint64_t v) {
    uint8_t *d = reserve(w, 16);
    if (d) w->len += enc(v, d, 16);
}

static size_t enc_bytes_start(uint64_t n, unsigned char *b, size_t l) {
    return cbor_encode_bytestring_start((size_t)n, b, l);
}
static size_t enc_str_start(uint64_t n, unsigned char *b, size_t l) {
    return cbor_encode_string_start((size_t)n, b, l);
}

static void nest(tr_writer *w, int open) {
    if (open) {
        if (w->depth + 1 >= TR_WRITER_MAX_DEPTH) {
            w->failed = 1;
            return;
        }
        w->first[++w->depth] = 1;
    } else if (w->depth > 0) {
        w->depth--;
    }
}

void tr_w_obj_begin(tr_writer *w) {
    if (w->format == TR_WIRE_JSON) {
        json_sep(w);
        putc_(w, '{');
    } else {
        cbor_put(w, cbor_encode_indef_map_start);
    }
    nest(w, 1);
}

void tr_w_obj_end(tr_writer *w) {
    nest(w, 0);
    if (w->format == TR_WIRE_JSON)
        putc_(w, '}');
    else
        cbor_put(w, cbor_encode_break);
}

void tr_w_arr_begin(tr_writer *w) {
    if (w->format == TR_WIRE_JSON) {
        json_sep(w);
        putc_(w, '[');
    } else {
        cbor_put(w, cbor_encode_indef_array_start);
    }
    nest(w, 1);
}

void tr_w_arr_end(tr_writer *w) {
    nest(w, 0);
    if (w->format == TR_WIRE_JSON)
        putc_(w, ']');
    else
        cbor_put(w, cbor_encode_break);
}

static int json_plain(unsigned char c) { return c >= 0x20 && c != '"' && c != '\\'; }

static void json_string(tr_writer *w, const char *s, size_t len) {
    static const char hex[] = "0123456789abcdef";
    size_t start = 0;
    while (start < len && json_plain((unsigned char)s[start])) start++;
    if (start == len) { /* nothing to escape, as nearly always: one copy */
        uint8_t *d = reserve(w, len + 2);
        if (!d) return;
        d[0] = '"';
        memcpy(d + 1, s, len);
        d[len + 1] = '"';
        w->len += len + 2;
        return;
    }
    putc_(w, '"');
    put(w, s, start);
    s += start;
    len -= start;
    start = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        put(w, s + start, i - start);
        char esc[6] = {'\\', 0};
        size_t n = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[1] = 'u', esc[2] = '0', esc[3] = '0', esc[4] = hex[c >> 4], esc[5] = hex[c & 15];
            n = 6;
        }
        put(w, esc, n);
        start = i + 1;
    }
    put(w, s + start, len - start);
    putc_(w, '"');
}

void tr_w_key(tr_writer *w, const char *key) {
    size_t n = strlen(key);
    if (w->format == TR_WIRE_JSON) {
        json_sep(w);
        json_string(w, key, n);
        putc_(w, ':');
        w->after_key = 1;
    } else {
        cbor_head(w, enc_str_start, n);
        put(w, key, n);
    }
}

void tr_w_strn(tr_writer *w, const char *s, size_t len) {
    if (w->format == TR_WIRE_JSON) {
        json_sep(w);
        json_string(w, s, len);
    } else {
        cbor_head(w, enc_str_start, len);
        put(w, s, len);
    }
}

void tr_w_str(tr_writer *w, const char *s) { tr_w_strn(w, s, strlen(s)); }

void tr_w_int(tr_writer *w, int64_t v) {
    if (w->format == TR_WIRE_JSON) {
        char b[24];
        int n = snprintf(b, sizeof b, "%" PRId64, v);
        json_sep(w);
        put(w, b, (size_t)n);
    } else if (v >= 0) {
        cbor_head(w, cbor_encode_uint, (uint64_t)v);
    } else {
        cbor_head(w, cbor_encode_negint, (uint64_t)(-(v + 1)));
    }
}

void tr_w_bool(tr_writer *w, int v) {
    if (w->format == TR_WIRE_JSON) {
        json_sep(w);
        put(w, v ? "true" : "false", v ? 4 : 5);
    } else {
        uint8_t *d = reserve(w, 16);
        if (d) w->len += cbor_encode_bool(v != 0, d, 16);
    }
}

void tr_w_null(tr_writer *w) {
    if (w->format == TR_WIRE_JSON) {
        json_sep(w);
        put(w, "null", 4);
    } else {
        cbor_put(w, cbor_encode_null);
    }
}

void tr_w_blob(tr_writer *w, const void *data, size_t len) {
    if (w->format == TR_WIRE_CBOR) {
        cbor_head(w, enc_bytes_start, len);
        put(w, data, len);
        return;
    }
    json_sep(w);
    size_t n = tr_base64_len(len);
    uint8_t *d = reserve(w, n + 3);
    if (!d) return;
    d[0] = '"';
    tr_base64_encode(data, len, (char *)d + 1);
    d[n + 1] = '"';
    w->len += n + 2;
}

void tr_w_time_ms(tr_writer *w, int64_t ms) {
    if (w->format == TR_WIRE_CBOR) {
        cbor_head(w, cbor_encode_tag, 1);
        tr_w_int(w, ms);
        return;
    }
    char b[32];
    int n;
    if (ms % 1000 == 0)
        n = snprintf(b, sizeof b, "%" PRId64, ms / 1000);
    else
        n = snprintf(b, sizeof b, "%" PRId64 ".%03d", ms / 1000, (int)(ms % 1000));
    json_sep(w);
    put(w, b, (size_t)n);
}

uint8_t *tr_w_json_raw(tr_writer *w, size_t len) {
    if (w->format != TR_WIRE_JSON) {
        w->failed = 1;
        return NULL;
    }
    json_sep(w);
    uint8_t *d = reserve(w, len);
    if (d) w->len += len;
    return d;
}

void tr_w_json_unreserve(tr_writer *w, size_t n) {
    if (!w->failed && n <= w->len) w->len -= n;
}

void tr_w_kstr(tr_writer *w, const char *key, const char *s) {
    tr_w_key(w, key);
    tr_w_str(w, s);
}
void tr_w_kint(tr_writer *w, const char *key, int64_t v) {
    tr_w_key(w, key);
    tr_w_int(w, v);
}
void tr_w_kbool(tr_writer *w, const char *key, int v) {
    tr_w_key(w, key);
    tr_w_bool(w, v);
}
void tr_w_ktime_ms(tr_writer *w, const char *key, int64_t ms) {
    tr_w_key(w, key);
    tr_w_time_ms(w, ms);
}

/* ---- base64 ---- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t tr_base64_len(size_t len) { return (len + 2) / 3 * 4; }

size_t tr_base64_encode(const void *data, size_t len, char *out) {
    const uint8_t *p = data;
    size_t o = 0, i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = b64[v >> 18];
        out[o++] = b64[v >> 12 & 63];
        out[o++] = b64[v >> 6 & 63];
        out[o++] = b64[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0);
        out[o++] = b64[v >> 18];
        out[o++] = b64[v >> 12 & 63];
        out[o++] = i + 1 < len ? b64[v >> 6 & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

static signed char b64_rev[256];
static pthread_once_t b64_rev_once = PTHREAD_ONCE_INIT;

static void b64_rev_init(void) {
    memset(b64_rev, -1, sizeof b64_rev);
    for (int i = 0; i < 64; i++) b64_rev[(unsigned char)b64[i]] = (signed char)i;
}

long tr_base64_decode(const char *in, size_t len, uint8_t *out) {
    pthread_once(&b64_rev_once, b64_rev_init);
    if (len % 4 != 0) return -1;
    if (len == 0) return 0;
    const unsigned char *u = (const unsigned char *)in;
    size_t o = 0, i = 0;
    /* Every quad but the last holds four alphabet characters: no padding. */
    for (; i + 4 < len; i += 4) {
        int a = b64_rev[u[i]], b = b64_rev[u[i + 1]], c = b64_rev[u[i + 2]],
            d = b64_rev[u[i + 3]];
        if ((a | b | c | d) < 0) return -1;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        out[o] = (uint8_t)(v >> 16);
        out[o + 1] = (uint8_t)(v >> 8);
        out[o + 2] = (uint8_t)v;
        o += 3;
    }
    /* The last may end in one or two '='. */
    int pad = 0;
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        unsigned char c = u[i + (size_t)k];
        int d;
        if (c == '=' && k >= 2) {
            pad++;
            d = 0;
        } else {
            if (pad) return -1;
            d = b64_rev[c];
            if (d < 0) return -1;
        }
        v = v << 6 | (uint32_t)d;
    }
    out[o++] = (uint8_t)(v >> 16);
    if (pad < 2) out[o++] = (uint8_t)(v >> 8);
    if (pad < 1) out[o++] = (uint8_t)v;
    return (long)o;
}
