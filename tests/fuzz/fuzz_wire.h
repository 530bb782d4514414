/* The body of fuzz_wire_json and fuzz_wire_cbor: the request parser (wire/reader.h) on
 * arbitrary bytes in one format. Any tree it returns is walked with the accessors operations
 * use (blobs, timestamps), and written back with the response writer (wire/writer.h) in the
 * same format and parsed again: both must give the same tree. That checks the writer's
 * escaping and encoding against the reader on every shape the fuzzer finds.
 *
 * The including file defines FUZZ_WIRE_FORMAT. */
#ifndef TR_FUZZ_FUZZ_WIRE_H
#define TR_FUZZ_FUZZ_WIRE_H

#include <cbor.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "wire/reader.h"
#include "wire/writer.h"

/* Deeper than this the writer refuses to nest (TR_WRITER_MAX_DEPTH). */
#define REWRITE_MAX_DEPTH (TR_WRITER_MAX_DEPTH - 2)

static void check_blob(tr_wire_format f, json_t *v) {
    const uint8_t *data = NULL;
    size_t len = 0;
    int owned = -1;
    if (tr_wire_blob(f, v, &data, &len, &owned) != 0) {
        /* Only base64 text can fail to be a blob. */
        FUZZ_CHECK(f == TR_WIRE_JSON);
        return;
    }
    size_t text_len = json_string_length(v);
    if (f == TR_WIRE_CBOR) {
        FUZZ_CHECK(owned == 0 && data == (const uint8_t *)json_string_value(v) && len == text_len);
        return;
    }
    /* Base64: decoding, encoding and decoding again is stable. */
    FUZZ_CHECK(owned == 1 && text_len % 4 == 0 && len <= text_len / 4 * 3);
    char *text = malloc(tr_base64_len(len) + 1);
    uint8_t *again = malloc(len + 1);
    FUZZ_CHECK(text && again);
    FUZZ_CHECK(tr_base64_encode(data, len, text) == text_len);
    FUZZ_CHECK(tr_base64_decode(text, text_len, again) == (long)len);
    FUZZ_CHECK(len == 0 || memcmp(again, data, len) == 0);
    free(text);
    free(again);
    free((void *)data);
}

static void check_time(json_t *v) {
    int64_t ms;
    if (tr_wire_time_ms(v, &ms) != 0) return;
    double s = json_number_value(v);
    FUZZ_CHECK(isfinite(s));
    FUZZ_CHECK(fabs((double)ms - s * 1000.0) <= 1.0 + fabs(s) * 1e-12);
}

static int valid_utf8(const char *s, size_t len) {
    json_t *j = json_stringn(s, len);
    json_decref(j);
    return j != NULL;
}

/* Walks the tree with the accessors; writes it with w when it can be written (returns 0 when
 * it cannot: reals, which the writer has no call for, and trees too deep for it). */
static int walk(tr_wire_format f, json_t *v, int depth, tr_writer *w) {
    int ok = depth <= REWRITE_MAX_DEPTH;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        tr_w_obj_begin(w);
        const char *key;
        size_t key_len;
        json_t *item;
        json_object_keylen_foreach(v, key, key_len, item) {
            if (key_len != strlen(key)) ok = 0; /* the writer takes C strings as keys */
            tr_w_key(w, key);
            ok &= walk(f, item, depth + 1, w);
        }
        tr_w_obj_end(w);
        return ok;
    }
    case JSON_ARRAY: {
        tr_w_arr_begin(w);
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item) ok &= walk(f, item, depth + 1, w);
        tr_w_arr_end(w);
        return ok;
    }
    case JSON_STRING: {
        check_blob(f, v);
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        /* A CBOR byte string comes back as a string of any bytes: text when it is UTF-8 (the
         * reader gives both kinds the same), bytes otherwise. */
        if (f == TR_WIRE_CBOR && !valid_utf8(s, len))
            tr_w_blob(w, s, len);
        else
            tr_w_strn(w, s, len);
        return ok;
    }
    case JSON_INTEGER:
        check_time(v);
        tr_w_int(w, json_integer_value(v));
        return ok;
    case JSON_REAL:
        check_time(v);
        tr_w_null(w);
        return 0;
    case JSON_TRUE:
    case JSON_FALSE:
        tr_w_bool(w, json_is_true(v));
        return ok;
    case JSON_NULL:
        tr_w_null(w);
        return ok;
    }
    FUZZ_CHECK(0);
    return 0;
}

static int fuzz_wire_one(tr_wire_format f, const uint8_t *data, size_t size) {
    /* An exact copy, so that a read past the end of the body is caught. */
    uint8_t *body = malloc(size ? size : 1);
    FUZZ_CHECK(body != NULL);
    memcpy(body, data, size);
    char err[160];
    err[0] = '\0';
    json_t *tree = tr_wire_parse(f, body, size, err, sizeof err);
    free(body);
    if (!tree) {
        FUZZ_CHECK(err[0] != '\0');
        return 0;
    }
    tr_writer w;
    tr_writer_init(&w, f);
    int rewritable = walk(f, tree, 0, &w);
    size_t out_len = 0;
    uint8_t *out = tr_writer_take(&w, &out_len);
    if (rewritable) {
        FUZZ_CHECK(out != NULL);
        json_t *back = tr_wire_parse(f, out, out_len, err, sizeof err);
        if (!back) fprintf(stderr, "rewritten body does not parse: %s\n", err);
        FUZZ_CHECK(back != NULL);
        FUZZ_CHECK(json_equal(tree, back));
        json_decref(back);
    }
    free(out);
    tr_writer_free(&w);
    json_decref(tree);
    return 0;
}

/* ---- seeds: requests as the SDKs send them, written by the response writer ---- */

static void seed_written(const char *dir, tr_writer *w) {
    size_t len;
    uint8_t *b = tr_writer_take(w, &len);
    FUZZ_CHECK(b != NULL);
    fuzz_seed(dir, b, len);
    free(b);
    tr_writer_free(w);
}

static const uint8_t seed_bytes[] = {0x00, 0x01, 0xfe, 0xff, 'h', 'i', '\n', 0x80};
#define SEED_TIME_MS INT64_C(1700000000123)

static void seed_requests(const char *dir, tr_wire_format f) {
    tr_writer w;
    tr_writer_init(&w, f); /* PutRecord */
    tr_w_obj_begin(&w);
    tr_w_kstr(&w, "StreamName", "orders");
    tr_w_key(&w, "Data");
    tr_w_blob(&w, seed_bytes, sizeof seed_bytes);
    tr_w_kstr(&w, "PartitionKey", "pk-1");
    tr_w_kstr(&w, "ExplicitHashKey", "340282366920938463463374607431768211455");
    tr_w_kstr(&w, "SequenceNumberForOrdering", "49590338271490256608559692538361571095921575989136588898");
    tr_w_obj_end(&w);
    seed_written(dir, &w);

    tr_writer_init(&w, f); /* PutRecords */
    tr_w_obj_begin(&w);
    tr_w_kstr(&w, "StreamARN", "arn:aws:kinesis:us-east-1:000000000000:stream/orders");
    tr_w_key(&w, "Records");
    tr_w_arr_begin(&w);
    for (int i = 0; i < 3; i++) {
        tr_w_obj_begin(&w);
        tr_w_key(&w, "Data");
        tr_w_blob(&w, seed_bytes, (size_t)i * 3);
        tr_w_kstr(&w, "PartitionKey", i ? "b" : "a\u00e9\"\\");
        tr_w_obj_end(&w);
    }
    tr_w_arr_end(&w);
    tr_w_obj_end(&w);
    seed_written(dir, &w);

    tr_writer_init(&w, f); /* GetShardIterator */
    tr_w_obj_begin(&w);
    tr_w_kstr(&w, "StreamName", "orders");
    tr_w_kstr(&w, "ShardId", "shardId-000000000000");
    tr_w_kstr(&w, "ShardIteratorType", "AT_TIMESTAMP");
    tr_w_ktime_ms(&w, "Timestamp", SEED_TIME_MS);
    tr_w_obj_end(&w);
    seed_written(dir, &w);

    tr_writer_init(&w, f); /* GetRecords */
    tr_w_obj_begin(&w);
    tr_w_kstr(&w, "ShardIterator", "AAAAAAAAAAGx5fVd4q3bq9O2qgP9Zz6N9w==");
    tr_w_kint(&w, "Limit", 10000);
    tr_w_obj_end(&w);
    seed_written(dir, &w);

    tr_writer_init(&w, f); /* CreateStream, ListShards with a filter, tags, flags */
    tr_w_obj_begin(&w);
    tr_w_kstr(&w, "StreamName", "s");
    tr_w_kint(&w, "ShardCount", 2);
    tr_w_key(&w, "StreamModeDetails");
    tr_w_obj_begin(&w);
    tr_w_kstr(&w, "StreamMode", "PROVISIONED");
    tr_w_obj_end(&w);
    tr_w_key(&w, "ShardFilter");
    tr_w_obj_begin(&w);
    tr_w_kstr(&w, "Type", "AT_TIMESTAMP");
    tr_w_ktime_ms(&w, "Timestamp", -1500);
    tr_w_obj_end(&w);
    tr_w_key(&w, "Tags");
    tr_w_obj_begin(&w);
    tr_w_kstr(&w, "team", "ops");
    tr_w_kstr(&w, "", "");
    tr_w_obj_end(&w);
    tr_w_kbool(&w, "EnforceConsumerDeletion", 1);
    tr_w_kbool(&w, "Off", 0);
    tr_w_key(&w, "Nothing");
    tr_w_null(&w);
    tr_w_kint(&w, "Negative", INT64_MIN);
    tr_w_kint(&w, "Big", INT64_MAX);
    tr_w_key(&w, "Nested");
    tr_w_arr_begin(&w);
    tr_w_arr_begin(&w);
    tr_w_arr_end(&w);
    tr_w_arr_begin(&w);
    tr_w_int(&w, -1);
    tr_w_arr_end(&w);
    tr_w_arr_end(&w);
    tr_w_obj_end(&w);
    seed_written(dir, &w);

    tr_writer_init(&w, f); /* SubscribeToShard */
    tr_w_obj_begin(&w);
    tr_w_kstr(&w, "ConsumerARN", "arn:aws:kinesis:us-east-1:000000000000:stream/s/consumer/c:1");
    tr_w_kstr(&w, "ShardId", "shardId-000000000001");
    tr_w_key(&w, "StartingPosition");
    tr_w_obj_begin(&w);
    tr_w_kstr(&w, "Type", "AFTER_SEQUENCE_NUMBER");
    tr_w_kstr(&w, "SequenceNumber", "1");
    tr_w_obj_end(&w);
    tr_w_obj_end(&w);
    seed_written(dir, &w);

    tr_writer_init(&w, f);
    tr_w_obj_begin(&w);
    tr_w_obj_end(&w);
    seed_written(dir, &w);
}

/* What the writer never produces: JSON as people type it, definite-length CBOR as most
 * encoders send it, floats, other tags, chunked strings. */
static void seed_extras(const char *dir, tr_wire_format f) {
    if (f == TR_WIRE_JSON) {
        static const char *texts[] = {
            " {\n\t\"Timestamp\" : 1.7000000001235e9, \"Data\": \"\", \"Limit\": -0}\r\n",
            "{\"X\": [1, 2.5, -3e-2, 1E+2, \"\\u00e9\\ud83d\\ude00\\/\\b\\f\"], \"Y\": {}}",
            "[{\"a\": [[[[[[[[[[]]]]]]]]]]}, true, false, null]",
            "{\"Data\": \"aGVsbG8=\", \"T\": 1e400, \"U\": 9223372036854775807}",
        };
        for (size_t i = 0; i < sizeof texts / sizeof *texts; i++)
            fuzz_seed(dir, (const uint8_t *)texts[i], strlen(texts[i]));
        return;
    }
    cbor_item_t *m = cbor_new_definite_map(6);
    FUZZ_CHECK(m != NULL);
    struct cbor_pair pairs[] = {
        {cbor_move(cbor_build_string("StreamName")), cbor_move(cbor_build_string("s"))},
        {cbor_move(cbor_build_string("Data")),
         cbor_move(cbor_build_bytestring(seed_bytes, sizeof seed_bytes))},
        {cbor_move(cbor_build_string("Timestamp")),
         cbor_move(cbor_build_tag(1, cbor_move(cbor_build_float8(1700000000.5))))},
        {cbor_move(cbor_build_string("Millis")),
         cbor_move(cbor_build_tag(1, cbor_move(cbor_build_uint64((uint64_t)SEED_TIME_MS))))},
        {cbor_move(cbor_build_string("Half")), cbor_move(cbor_build_float2(1.5f))},
        {cbor_move(cbor_build_string("Neg")), cbor_move(cbor_build_negint32(41))},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++)
        FUZZ_CHECK(cbor_map_add(m, pairs[i]));
    unsigned char *buf = NULL;
    size_t cap = 0, len = cbor_serialize_alloc(m, &buf, &cap);
    FUZZ_CHECK(len > 0);
    fuzz_seed(dir, buf, len);
    free(buf);
    cbor_decref(&m);

    cbor_item_t *arr = cbor_new_definite_array(4);
    cbor_item_t *chunked = cbor_new_indefinite_bytestring();
    FUZZ_CHECK(arr && chunked);
    FUZZ_CHECK(cbor_bytestring_add_chunk(chunked, cbor_move(cbor_build_bytestring(seed_bytes, 3))));
    FUZZ_CHECK(cbor_bytestring_add_chunk(chunked, cbor_move(cbor_build_bytestring(seed_bytes, 0))));
    FUZZ_CHECK(cbor_array_push(arr, cbor_move(chunked)));
    FUZZ_CHECK(cbor_array_push(arr, cbor_move(cbor_new_undef())));
    FUZZ_CHECK(cbor_array_push(arr, cbor_move(cbor_build_tag(32, cbor_move(cbor_build_string("u"))))));
    FUZZ_CHECK(cbor_array_push(arr, cbor_move(cbor_build_float4(-0.25f))));
    buf = NULL;
    len = cbor_serialize_alloc(arr, &buf, &cap);
    FUZZ_CHECK(len > 0);
    fuzz_seed(dir, buf, len);
    free(buf);
    cbor_decref(&arr);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_quiet_logs();
    const char *dir = fuzz_seed_dir();
    if (dir) {
        seed_requests(dir, FUZZ_WIRE_FORMAT);
        seed_extras(dir, FUZZ_WIRE_FORMAT);
        exit(0);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_wire_one(FUZZ_WIRE_FORMAT, data, size);
}

#endif
