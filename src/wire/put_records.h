/* PutRecords and PutRecord bodies: the members of their records, read either from a parsed tree
 * (tr_wire_parse, any body in either format) or, for the common JSON body, straight from the
 * text without a tree.
 *
 * A JSON PutRecords body of 500 records made jansson build and free a tree of some 2,500
 * allocations, most of the call's CPU. tr_put_scan_json reads the shape the SDKs send:
 *
 *   {"StreamName"|"StreamARN": "...", "Records": [{"Data": "<base64>", "PartitionKey": "...",
 *    "ExplicitHashKey": "..."}, ...]}
 *
 * (members in any order, each at most once, any JSON whitespace) with strings that hold no
 * escapes and no control characters. It decodes every Data into one buffer and leaves the
 * keys in the body. Anything else, valid or not (escapes, nulls, numbers, other members,
 * duplicates, invalid UTF-8, malformed JSON, more records than allowed), it declines, and the
 * caller parses the body with tr_wire_parse instead, which gives the same members or the
 * parse error. So it never reports an error of its own: what it accepts, jansson accepts and
 * reads the same (tests/fuzz/fuzz_put_records.c checks that on arbitrary input), and every
 * validation happens on the tr_put_rec of either path, in one place (api/kinesis_records.c). */
#ifndef TR_WIRE_PUT_RECORDS_H
#define TR_WIRE_PUT_RECORDS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "wire/writer.h"

/* The state of one member of a record. */
#define TR_PUT_ABSENT 0 /* missing or null */
#define TR_PUT_VALUE 1  /* a string; for Data a valid blob, decoded */
#define TR_PUT_WRONG 2  /* present, but not a string (for Data: not a valid blob) */

typedef struct tr_put_rec {
    const uint8_t *data; /* the decoded bytes */
    size_t data_len;
    const char *pkey;    /* not NUL-terminated when scanned */
    size_t pkey_len;
    const char *ehk;     /* likewise */
    size_t ehk_len;
    uint8_t data_state, pkey_state, ehk_state;
} tr_put_rec;

typedef struct tr_put_body {
    const char *stream_name; /* in the body, not NUL-terminated; NULL when absent */
    size_t stream_name_len;
    const char *stream_arn;
    size_t stream_arn_len;
    tr_put_rec *recs;
    size_t n;
    uint8_t *blob;           /* every record's data, decoded */
} tr_put_body;

/* 1: read into *out (free with tr_put_body_free; the keys point into body, which must
 * outlive it). 0: declined (the body is not of the shape above, or has more than
 * max_records records): parse it with tr_wire_parse. -1: out of memory. */
int tr_put_scan_json(const uint8_t *body, size_t len, size_t max_records, tr_put_body *out);
void tr_put_body_free(tr_put_body *b);

/* The members of a record object of a parsed tree in format f (a PutRecords record, or a
 * PutRecord body). A decoded Data that needed a buffer of its own is in *owned (the caller
 * frees it; NULL otherwise); a Data that cannot be decoded (not base64, or no memory for it)
 * is TR_PUT_WRONG. An ExplicitHashKey's length is its C string length, as it always was
 * read as a C string. */
void tr_put_rec_from_tree(tr_wire_format f, json_t *rec, tr_put_rec *out, uint8_t **owned);

/* Whether s[0..len) is UTF-8 as jansson accepts it (json_stringn): no overlong forms, no
 * surrogates, nothing past U+10FFFF; NUL bytes allowed. */
int tr_utf8_valid(const char *s, size_t len);

#endif
