#include "wire/reader.h"

#include <cbor.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *from_cbor(cbor_item_t *it, int depth);

static json_t *cbor_bytes(cbor_item_t *it) {
    if (cbor_bytestring_is_definite(it))
        return json_stringn_nocheck((const char *)cbor_bytestring_handle(it),
                                    cbor_bytestring_length(it));
    /* Indefinite: concatenate the chunks. */
    size_t n = cbor_bytestring_chunk_count(it), total = 0;
    cbor_item_t **chunks = cbor_bytestring_chunks_handle(it);
    for (size_t i = 0; i < n; i++) total += cbor_bytestring_length(chunks[i]);
    char *buf = malloc(total ? total : 1);
    if (!buf) return NULL;
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = cbor_bytestring_length(chunks[i]);
        memcpy(buf + off, cbor_bytestring_handle(chunks[i]), l);
        off += l;
    }
    json_t *j = json_stringn_nocheck(buf, total);
    free(buf);
    return j;
}

static json_t *cbor_text(cbor_item_t *it) {
    if (cbor_string_is_definite(it))
        return json_stringn((const char *)cbor_string_handle(it), cbor_string_length(it));
    size_t n = cbor_string_chunk_count(it), total = 0;
    cbor_item_t **chunks = cbor_string_chunks_handle(it);
    for (size_t i = 0; i < n; i++) total += cbor_string_length(chunks[i]);
    char *buf = malloc(total ? total : 1);
    if (!buf) return NULL;
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = cbor_string_length(chunks[i]);
        memcpy(buf + off, cbor_string_handle(chunks[i]), l);
        off += l;
    }
    json_t *j = json_stringn(buf, total); /* NULL when not UTF-8 */
    free(buf);
    return j;
}

static json_t *cbor_map_to_json(cbor_item_t *it, int depth) {
    json_t *obj = json_object();
    size_t n = cbor_map_size(it);
    struct cbor_pair *pairs = cbor_map_handle(it);
    for (size_t i = 0; obj && i < n; i++) {
        json_t *k = cbor_isa_string(pairs[i].key) ? cbor_text(pairs[i].key) : NULL;
        json_t *v = k ? from_cbor(pairs[i].value, depth + 1) : NULL;
        if (!k || !v || json_object_set_new(obj, json_string_value(k), v) != 0) {
            if (!k || !v) json_decref(v);
            json_decref(obj);
            obj = NULL;
        }
        json_decref(k);
    }
    return obj;
}

static json_t *cbor_array_to_json(cbor_item_t *it, int depth) {
    json_t *arr = json_array();
    size_t n = cbor_array_size(it);
    cbor_item_t **items = cbor_array_handle(it);
    for (size_t i = 0; arr && i < n; i++) {
        json_t *v = from_cbor(items[i], depth + 1);
        if (!v || json_array_append_new(arr, v) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    return arr;
}

static json_t *cbor_number(cbor_item_t *it) {
    if (cbor_isa_uint(it)) {
        uint64_t v = cbor_get_int(it);
        return v > INT64_MAX ? json_real((double)v) : json_integer((json_int_t)v);
    }
    if (cbor_isa_negint(it)) {
        uint64_t v = cbor_get_int(it);
        return v >= INT64_MAX ? json_real(-1.0 - (double)v) : json_integer(-1 - (json_int_t)v);
    }
    return NULL;
}

static json_t *from_cbor(cbor_item_t *it, int depth) {
    if (depth > TR_WIRE_MAX_DEPTH) return NULL;
    switch (cbor_typeof(it)) {
    case CBOR_TYPE_UINT:
    case CBOR_TYPE_NEGINT: return cbor_number(it);
    case CBOR_TYPE_BYTESTRING: return cbor_bytes(it);
    case CBOR_TYPE_STRING: return cbor_text(it);
    case CBOR_TYPE_ARRAY: return cbor_array_to_json(it, depth);
    case CBOR_TYPE_MAP: return cbor_map_to_json(it, depth);
    case CBOR_TYPE_TAG: {
        cbor_item_t *inner = cbor_tag_item(it);
        json_t *v = NULL;
        if (cbor_tag_value(it) == 1) {
            /* Epoch time: the Java SDK sends integer milliseconds; plain CBOR means seconds
             * as a float. Either way the tree holds seconds. */
            if (cbor_isa_uint(inner) || cbor_isa_negint(inner)) {
                json_t *ms = cbor_number(inner);
                if (ms) v = json_real(json_number_value(ms) / 1000.0);
                json_decref(ms);
            } else if (cbor_isa_float_ctrl(inner) && cbor_float_get_width(inner) != CBOR_FLOAT_0) {
                v = json_real(cbor_float_get_float(inner));
            }
        } else {
            v = from_cbor(inner, depth + 1);
        }
        cbor_decref(&inner);
        return v;
    }
    case CBOR_TYPE_FLOAT_CTRL:
        if (cbor_float_get_width(it) != CBOR_FLOAT_0) return json_real(cbor_float_get_float(it));
        if (cbor_is_null(it) || cbor_is_undef(it)) return json_null();
        if (cbor_is_bool(it)) return json_boolean(cbor_get_bool(it));
        return NULL;
    }
    return NULL;
}

/* ---- a pass over the CBOR heads before libcbor builds anything ----
 *
 * cbor_load allocates a definite array or map for every entry its head declares before it
 * reads them: a five-byte body declaring a billion entries costs gigabytes. So the heads are
 * walked first with the streaming decoder, keeping the entries still due in every open
 * container: since each entry takes at least one byte, more entries due than bytes left is
 * refused (a valid body never is). Nesting deeper than the tree conversion takes is refused
 * too. */

#define SCAN_INDEFINITE SIZE_MAX
#define SCAN_MAX_OPEN (TR_WIRE_MAX_DEPTH + 2) /* + a tag and a chunked string at the bottom */

typedef struct {
    size_t left[SCAN_MAX_OPEN]; /* entries still due per open container, or SCAN_INDEFINITE */
    int depth;
    size_t due;                 /* sum of the definite left[] */
    int bad;                    /* refused */
    int stop;                   /* malformed: left to cbor_load */
    /* the head the last callback saw */
    enum { EV_ITEM, EV_OPEN, EV_OPEN_INDEFINITE, EV_BREAK } ev;
    size_t ev_entries;
} cbor_scan;

static void on_item(void *ctx) { ((cbor_scan *)ctx)->ev = EV_ITEM; }
static void on_open_indef(void *ctx) { ((cbor_scan *)ctx)->ev = EV_OPEN_INDEFINITE; }
static void on_break(void *ctx) { ((cbor_scan *)ctx)->ev = EV_BREAK; }
static void on_array(void *ctx, size_t n) {
    cbor_scan *s = ctx;
    s->ev = EV_OPEN;
    s->ev_entries = n;
}
static void on_map(void *ctx, size_t n) {
    cbor_scan *s = ctx;
    s->ev = EV_OPEN;
    s->ev_entries = n > SIZE_MAX / 2 ? SIZE_MAX : 2 * n;
}
static void on_tag(void *ctx, uint64_t tag) {
    (void)tag;
    cbor_scan *s = ctx;
    s->ev = EV_OPEN;
    s->ev_entries = 1;
}
static void on_u8(void *ctx, uint8_t v) { (void)v; on_item(ctx); }
static void on_u16(void *ctx, uint16_t v) { (void)v; on_item(ctx); }
static void on_u32(void *ctx, uint32_t v) { (void)v; on_item(ctx); }
static void on_u64(void *ctx, uint64_t v) { (void)v; on_item(ctx); }
static void on_str(void *ctx, cbor_data d, size_t n) { (void)d, (void)n; on_item(ctx); }
static void on_float(void *ctx, float v) { (void)v; on_item(ctx); }
static void on_double(void *ctx, double v) { (void)v; on_item(ctx); }
static void on_bool(void *ctx, bool v) { (void)v; on_item(ctx); }

/* Accounts for one head; `left_after` is the number of body bytes after it. */
static void scan_head(cbor_scan *s, size_t left_after) {
    if (s->ev == EV_BREAK) {
        if (s->depth == 0 || s->left[s->depth - 1] != SCAN_INDEFINITE) {
            s->stop = 1; /* malformed: cbor_load says where */
            return;
        }
        s->depth--;
    } else {
        /* Every head but a break fills one entry of the container it is in. */
        if (s->depth > 0 && s->left[s->depth - 1] != SCAN_INDEFINITE) {
            s->left[s->depth - 1]--;
            s->due--;
        }
        if (s->due > left_after) { /* entries promised earlier no longer fit */
            s->bad = 1;
            return;
        }
        if (s->ev == EV_OPEN_INDEFINITE || (s->ev == EV_OPEN && s->ev_entries > 0)) {
            size_t n = s->ev == EV_OPEN ? s->ev_entries : SCAN_INDEFINITE;
            if (s->depth == SCAN_MAX_OPEN || (n != SCAN_INDEFINITE && n > left_after - s->due)) {
                s->bad = 1;
                return;
            }
            if (n != SCAN_INDEFINITE) s->due += n;
            s->left[s->depth++] = n;
        }
    }
    /* Close definite containers whose last entry is complete. */
    while (s->depth > 0 && s->left[s->depth - 1] == 0) s->depth--;
}

/* 0 when the first item of body passes; -1 (with the offset of the head in *at) if not. Heads
 * libcbor cannot decode are left for cbor_load to report. */
static int cbor_prescan(const uint8_t *body, size_t len, size_t *at) {
    struct cbor_callbacks cb = cbor_empty_callbacks;
    cb.uint8 = cb.negint8 = on_u8;
    cb.uint16 = cb.negint16 = on_u16;
    cb.uint32 = cb.negint32 = on_u32;
    cb.uint64 = cb.negint64 = on_u64;
    cb.byte_string = cb.string = on_str;
    cb.byte_string_start = cb.string_start = cb.indef_array_start = cb.indef_map_start =
        on_open_indef;
    cb.array_start = on_array;
    cb.map_start = on_map;
    cb.tag = on_tag;
    cb.float2 = cb.float4 = on_float;
    cb.float8 = on_double;
    cb.undefined = cb.null = on_item;
    cb.boolean = on_bool;
    cb.indef_break = on_break;
    cbor_scan s = {.depth = 0};
    size_t off = 0;
    do {
        struct cbor_decoder_result r = cbor_stream_decode(body + off, len - off, &cb, &s);
        if (r.status != CBOR_DECODER_FINISHED) return 0;
        off += r.read;
        scan_head(&s, len - off);
        if (s.bad) {
            *at = off - r.read;
            return -1;
        }
    } while (s.depth > 0 && off < len && !s.stop);
    return 0;
}

json_t *tr_wire_parse(tr_wire_format f, const uint8_t *body, size_t len, char *err,
                      size_t err_len) {
    if (len == 0) return json_object();
    if (f == TR_WIRE_JSON) {
        json_error_t je;
        json_t *j = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &je);
        if (!j) snprintf(err, err_len, "%s", je.text);
        return j;
    }
    size_t at;
    if (cbor_prescan(body, len, &at) != 0) {
        snprintf(err, err_len, "CBOR at byte %zu declares more than the body holds or nests "
                 "deeper than %d", at, TR_WIRE_MAX_DEPTH);
        return NULL;
    }
    struct cbor_load_result res;
    cbor_item_t *it = cbor_load(body, len, &res);
    if (!it || res.error.code != CBOR_ERR_NONE) {
        snprintf(err, err_len, "malformed CBOR at byte %zu", res.error.position);
        if (it) cbor_decref(&it);
        return NULL;
    }
    json_t *j = res.read == len ? from_cbor(it, 0) : NULL;
    cbor_decref(&it);
    if (!j) snprintf(err, err_len, "unsupported or malformed CBOR content");
    return j;
}

int tr_wire_blob(tr_wire_format f, json_t *v, const uint8_t **data, size_t *len, int *owned) {
    if (!json_is_string(v)) return -1;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (f == TR_WIRE_CBOR) {
        *data = (const uint8_t *)s;
        *len = n;
        *owned = 0;
        return 0;
    }
    uint8_t *buf = malloc(n / 4 * 3 + 1);
    if (!buf) return -1;
    long got = tr_base64_decode(s, n, buf);
    if (got < 0) {
        free(buf);
        return -1;
    }
    *data = buf;
    *len = (size_t)got;
    *owned = 1;
    return 0;
}

int tr_wire_time_ms(json_t *v, int64_t *ms) {
    if (!json_is_number(v)) return -1;
    double s = json_number_value(v);
    if (!isfinite(s) || fabs(s) > 9.2e15) return -1;
    *ms = (int64_t)llround(s * 1000.0);
    return 0;
}
