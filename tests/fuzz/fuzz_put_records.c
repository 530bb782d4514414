/* The PutRecords JSON scanner (wire/put_records.h) against the tree parser on arbitrary
 * bytes. Declining is always allowed; what the scanner reads, the tree parser must accept,
 * with the same stream members, no other members, and record for record the same Data
 * (decoded), PartitionKey and ExplicitHashKey as tr_put_rec_from_tree reads from the tree.
 * Since the operation validates what either path reads with the same code, that is what
 * makes both paths answer alike. Also: tr_utf8_valid agrees with jansson on the input, and
 * tr_base64_decode with a plain reference decoder. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "wire/put_records.h"
#include "wire/reader.h"
#include "wire/writer.h"

/* The scanner declines bodies of more records than this; small, so the fuzzer reaches it. */
#define FUZZ_MAX_RECORDS 8

static int same_bytes(const void *a, size_t an, const void *b, size_t bn) {
    return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

static void check_member(json_t *tree, const char *key, const char *s, size_t n, size_t *count) {
    json_t *v = json_object_get(tree, key);
    FUZZ_CHECK((v != NULL) == (s != NULL));
    if (v == NULL) return;
    (*count)++;
    FUZZ_CHECK(json_is_string(v));
    FUZZ_CHECK(same_bytes(json_string_value(v), json_string_length(v), s, n));
}

static void check_against_tree(const uint8_t *body, size_t size, const tr_put_body *b) {
    char err[256];
    json_t *t = tr_wire_parse(TR_WIRE_JSON, body, size, err, sizeof err);
    if (t == NULL) fprintf(stderr, "scanned, but the tree parser refuses it: %s\n", err);
    FUZZ_CHECK(t != NULL && json_is_object(t));
    size_t count = 1;
    check_member(t, "StreamName", b->stream_name, b->stream_name_len, &count);
    check_member(t, "StreamARN", b->stream_arn, b->stream_arn_len, &count);
    FUZZ_CHECK(json_object_size(t) == count);
    json_t *arr = json_object_get(t, "Records");
    FUZZ_CHECK(json_is_array(arr) && json_array_size(arr) == b->n);
    FUZZ_CHECK(b->n <= FUZZ_MAX_RECORDS);
    for (size_t i = 0; i < b->n; i++) {
        json_t *rec = json_array_get(arr, i);
        FUZZ_CHECK(json_is_object(rec));
        tr_put_rec r;
        uint8_t *owned = NULL;
        tr_put_rec_from_tree(TR_WIRE_JSON, rec, &r, &owned);
        const tr_put_rec *s = &b->recs[i];
        FUZZ_CHECK(r.data_state == s->data_state && r.pkey_state == s->pkey_state &&
                   r.ehk_state == s->ehk_state);
        FUZZ_CHECK(s->data_state != TR_PUT_WRONG && s->pkey_state != TR_PUT_WRONG &&
                   s->ehk_state != TR_PUT_WRONG);
        FUZZ_CHECK(same_bytes(r.data, r.data_len, s->data, s->data_len));
        FUZZ_CHECK(same_bytes(r.pkey, r.pkey_len, s->pkey, s->pkey_len));
        FUZZ_CHECK(same_bytes(r.ehk, r.ehk_len, s->ehk, s->ehk_len));
        free(owned);
    }
    json_decref(t);
}

static long ref_b64_decode(const uint8_t *in, size_t len, uint8_t *out) {
    static const char alpha[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (len % 4 != 0) return -1;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int pad = 0;
        uint32_t v = 0;
        for (int k = 0; k < 4; k++) {
            uint8_t c = in[i + (size_t)k];
            int d;
            if (c == '=' && i + 4 == len && k >= 2) {
                pad++;
                d = 0;
            } else {
                const char *p = c ? strchr(alpha, c) : NULL;
                if (pad || p == NULL) return -1;
                d = (int)(p - alpha);
            }
            v = v << 6 | (uint32_t)d;
        }
        out[o++] = (uint8_t)(v >> 16);
        if (pad < 2) out[o++] = (uint8_t)(v >> 8);
        if (pad < 1) out[o++] = (uint8_t)v;
    }
    return (long)o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* An exact copy, so that a read past the end of the body is caught. */
    uint8_t *body = malloc(size ? size : 1);
    FUZZ_CHECK(body != NULL);
    memcpy(body, data, size);
    tr_put_body b;
    int rc = tr_put_scan_json(body, size, FUZZ_MAX_RECORDS, &b);
    FUZZ_CHECK(rc == 0 || rc == 1);
    if (rc == 1) {
        check_against_tree(body, size, &b);
        tr_put_body_free(&b);
    }

    json_t *j = json_stringn((const char *)body, size);
    FUZZ_CHECK(tr_utf8_valid((const char *)body, size) == (j != NULL));
    json_decref(j);

    uint8_t *a = malloc(size / 4 * 3 + 1), *r = malloc(size / 4 * 3 + 1);
    FUZZ_CHECK(a && r);
    long na = tr_base64_decode((const char *)body, size, a), nr = ref_b64_decode(body, size, r);
    FUZZ_CHECK(na == nr && (na <= 0 || memcmp(a, r, (size_t)na) == 0));
    free(a);
    free(r);
    free(body);
    return 0;
}

/* ---- seeds: bodies as the SDKs and the benchmark send them, and near misses ---- */

static void seed_text(const char *dir, const char *s) {
    fuzz_seed(dir, (const uint8_t *)s, strlen(s));
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_quiet_logs();
    const char *dir = fuzz_seed_dir();
    if (!dir) return 0;
    static const uint8_t bytes[] = {0x00, 0x01, 0xfe, 0xff, 'h', 'i', '\n', 0x80, 0x3e, 0x3f};
    tr_writer w;
    for (int shape = 0; shape < 3; shape++) {
        tr_writer_init(&w, TR_WIRE_JSON);
        tr_w_obj_begin(&w);
        if (shape != 1) tr_w_kstr(&w, "StreamName", "orders");
        if (shape != 0) tr_w_kstr(&w, "StreamARN", "arn:aws:kinesis:us-east-1:000000000000:stream/orders");
        tr_w_key(&w, "Records");
        tr_w_arr_begin(&w);
        for (int i = 0; i < 4 + shape; i++) {
            char key[32];
            snprintf(key, sizeof key, i == 2 ? "k\xc3\xa9y-%d" : "pk-%016x", i * 7919);
            tr_w_obj_begin(&w);
            tr_w_key(&w, "Data");
            tr_w_blob(&w, bytes, (size_t)(i * 3 + shape) % sizeof bytes);
            tr_w_kstr(&w, "PartitionKey", key);
            if (i == 1) tr_w_kstr(&w, "ExplicitHashKey", "340282366920938463463374607431768211455");
            tr_w_obj_end(&w);
        }
        tr_w_arr_end(&w);
        tr_w_obj_end(&w);
        size_t len;
        uint8_t *out = tr_writer_take(&w, &len);
        FUZZ_CHECK(out != NULL);
        fuzz_seed(dir, out, len);
        free(out);
        tr_writer_free(&w);
    }
    seed_text(dir, " {\n \"Records\" : [ {\"PartitionKey\":\"\", \"Data\" : \"Zm9v\"} , { } ] ,"
                   "\t\"StreamName\":\"s\"}\r\n");
    seed_text(dir, "{\"Records\":[{\"Data\":\"eA==\",\"PartitionKey\":\"a\\\"b\"}],\"X\":1}");
    seed_text(dir, "{\"Records\":[{\"Data\":null,\"PartitionKey\":\"\\u00e9\"},[],1]}");
    seed_text(dir, "{\"Records\":[{\"Data\":\"eA==\",\"Data\":\"eA==\"}]}");
    seed_text(dir, "{\"Records\":[{\"PartitionKey\":\"\xf0\x9f\x98\x80\xed\xa0\x80\"}]}");
    exit(0);
}
