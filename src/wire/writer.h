/* One writer for AWS JSON 1.1 and CBOR response bodies: operations describe their output once
 * (objects, arrays, strings, blobs, timestamps) and the writer encodes it in the request's
 * format. Blobs are base64 in JSON and byte strings in CBOR; timestamps are epoch seconds
 * (a number with up to 3 decimals) in JSON and tag 1 + epoch milliseconds as an integer in
 * CBOR, as the AWS SDKs read them. Streams out without building a tree. */
#ifndef TR_WIRE_WRITER_H
#define TR_WIRE_WRITER_H

#include <stddef.h>
#include <stdint.h>

typedef enum { TR_WIRE_JSON = 0, TR_WIRE_CBOR = 1 } tr_wire_format;

#define TR_WRITER_MAX_DEPTH 32

typedef struct tr_writer {
    tr_wire_format format;
    uint8_t *buf;
    size_t len, cap;
    int failed;                          /* allocation failed: the output is unusable */
    int depth;
    uint8_t first[TR_WRITER_MAX_DEPTH];  /* JSON: no comma needed before the next item */
    uint8_t after_key;                   /* JSON: the next value follows a key */
} tr_writer;

void tr_writer_init(tr_writer *w, tr_wire_format format);
/* Hands the buffer to the caller (who frees it) and resets the writer. NULL if it failed. */
uint8_t *tr_writer_take(tr_writer *w, size_t *len);
void tr_writer_free(tr_writer *w);

void tr_w_obj_begin(tr_writer *w);
void tr_w_obj_end(tr_writer *w);
void tr_w_arr_begin(tr_writer *w);
void tr_w_arr_end(tr_writer *w);
void tr_w_key(tr_writer *w, const char *key);
void tr_w_str(tr_writer *w, const char *s);
void tr_w_strn(tr_writer *w, const char *s, size_t len);
void tr_w_int(tr_writer *w, int64_t v);
void tr_w_bool(tr_writer *w, int v);
void tr_w_null(tr_writer *w);
void tr_w_blob(tr_writer *w, const void *data, size_t len);
void tr_w_time_ms(tr_writer *w, int64_t epoch_ms);
/* JSON writers only: room for one value of exactly len bytes that the caller encodes itself
 * (a separator is written before it as for any value). NULL if the writer has failed. For
 * answers that repeat one shape many times (PutRecords' results). */
uint8_t *tr_w_json_raw(tr_writer *w, size_t len);
/* Gives back the last n bytes of what tr_w_json_raw reserved, when the value came out
 * shorter than the room asked for. */
void tr_w_json_unreserve(tr_writer *w, size_t n);

/* key + value shorthands */
void tr_w_kstr(tr_writer *w, const char *key, const char *s);
void tr_w_kint(tr_writer *w, const char *key, int64_t v);
void tr_w_kbool(tr_writer *w, const char *key, int v);
void tr_w_ktime_ms(tr_writer *w, const char *key, int64_t epoch_ms);

/* Base64 (standard alphabet, padded). out needs tr_base64_len(len) + 1 bytes; NUL-terminated.
 * Decoding returns the decoded length or -1 for invalid input. */
size_t tr_base64_len(size_t len);
size_t tr_base64_encode(const void *data, size_t len, char *out);
long tr_base64_decode(const char *in, size_t len, uint8_t *out);

#endif
