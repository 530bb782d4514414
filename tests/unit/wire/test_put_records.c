/* The PutRecords JSON scanner (wire/put_records.h): the bodies it reads, the ones it leaves to
 * the tree parser, and, for every body here, that what it reads is what the tree path reads
 * (the fuzz target fuzz_put_records does the same on arbitrary input). Also its UTF-8 check
 * against jansson's, and base64 decoding against a plain reference. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/put_records.h"
#include "wire/reader.h"

/* The scanner's result must be what the tree gives: same stream members, same records. */
static void same_as_tree(const char *body, size_t len, const tr_put_body *b) {
    char err[256];
    json_t *t = tr_wire_parse(TR_WIRE_JSON, (const uint8_t *)body, len, err, sizeof err);
    if (t == NULL) fail_msg("scanned, but the tree parser refuses it (%s): %s", err, body);
    assert_true(json_is_object(t));
    size_t members = 1;
    json_t *name = json_object_get(t, "StreamName"), *arn = json_object_get(t, "StreamARN");
    assert_true((name != NULL) == (b->stream_name != NULL));
    assert_true((arn != NULL) == (b->stream_arn != NULL));
    if (name != NULL) {
        members++;
        assert_true(json_is_string(name));
        assert_int_equal(json_string_length(name), b->stream_name_len);
        assert_memory_equal(json_string_value(name), b->stream_name, b->stream_name_len);
    }
    if (arn != NULL) {
        members++;
        assert_true(json_is_string(arn));
        assert_int_equal(json_string_length(arn), b->stream_arn_len);
        assert_memory_equal(json_string_value(arn), b->stream_arn, b->stream_arn_len);
    }
    assert_int_equal(json_object_size(t), members);
    json_t *arr = json_object_get(t, "Records");
    assert_true(json_is_array(arr));
    assert_int_equal(json_array_size(arr), b->n);
    for (size_t i = 0; i < b->n; i++) {
        json_t *rec = json_array_get(arr, i);
        assert_true(json_is_object(rec));
        tr_put_rec r;
        uint8_t *owned;
        tr_put_rec_from_tree(TR_WIRE_JSON, rec, &r, &owned);
        const tr_put_rec *s = &b->recs[i];
        assert_int_equal(r.data_state, s->data_state);
        assert_int_equal(r.pkey_state, s->pkey_state);
        assert_int_equal(r.ehk_state, s->ehk_state);
        assert_int_equal(r.data_len, s->data_len);
        if (r.data_len) assert_memory_equal(r.data, s->data, r.data_len);
        assert_int_equal(r.pkey_len, s->pkey_len);
        if (r.pkey_len) assert_memory_equal(r.pkey, s->pkey, r.pkey_len);
        assert_int_equal(r.ehk_len, s->ehk_len);
        if (r.ehk_len) assert_memory_equal(r.ehk, s->ehk, r.ehk_len);
        free(owned);
    }
    json_decref(t);
}

/* Scans body; checks it against the tree when read. Returns what the scanner said. */
static int scan(const char *body, size_t max) {
    tr_put_body b;
    size_t len = strlen(body);
    char *copy = malloc(len + 1); /* exactly the body: a read past it is caught by ASan */
    assert_non_null(copy);
    memcpy(copy, body, len);
    int rc = tr_put_scan_json((const uint8_t *)copy, len, max, &b);
    assert_true(rc == 0 || rc == 1);
    if (rc == 1) {
        same_as_tree(copy, len, &b);
        tr_put_body_free(&b);
    }
    free(copy);
    return rc;
}

static void reads(void **state) {
    (void)state;
    tr_put_body b;
    const char *body = "{\"StreamName\":\"s-1\",\"Records\":[{\"Data\":\"aGVsbG8=\",\"PartitionKey\":"
                       "\"k\u00e9\"},{\"PartitionKey\":\"p\",\"ExplicitHashKey\":\"42\",\"Data\":\"\"}]}";
    assert_int_equal(tr_put_scan_json((const uint8_t *)body, strlen(body), 500, &b), 1);
    assert_int_equal(b.n, 2);
    assert_int_equal(b.stream_name_len, 3);
    assert_memory_equal(b.stream_name, "s-1", 3);
    assert_null(b.stream_arn);
    assert_int_equal(b.recs[0].data_state, TR_PUT_VALUE);
    assert_int_equal(b.recs[0].data_len, 5);
    assert_memory_equal(b.recs[0].data, "hello", 5);
    assert_int_equal(b.recs[0].pkey_len, 3);
    assert_int_equal(b.recs[0].ehk_state, TR_PUT_ABSENT);
    assert_int_equal(b.recs[1].data_len, 0);
    assert_int_equal(b.recs[1].data_state, TR_PUT_VALUE);
    assert_int_equal(b.recs[1].ehk_len, 2);
    assert_memory_equal(b.recs[1].ehk, "42", 2);
    tr_put_body_free(&b);
    assert_int_equal(scan(body, 500), 1);
}

/* Shapes the scanner takes: the tree must agree on each. */
static void accepted(void **state) {
    (void)state;
    static const char *const ok[] = {
        "{\"Records\":[]}",
        "{\"Records\":[{}]}",
        "{\"Records\":[{\"Data\":\"\"}],\"StreamARN\":\"arn:aws:kinesis:us-east-1:0:stream/x\"}",
        " \r\n\t{ \"StreamName\" : \"a\" , \"Records\" : [ { \"Data\" : \"eA==\" , "
        "\"PartitionKey\" : \"k\" } , { } ] } \n",
        "{\"StreamName\":\"\",\"StreamARN\":\"\",\"Records\":[{\"PartitionKey\":\"\"}]}",
        "{\"Records\":[{\"ExplicitHashKey\":\"not a number\",\"PartitionKey\":\"\xf0\x9f\x98\x80\"}]}",
        "{\"Records\":[{\"PartitionKey\":\"\x7f~ /\"}]}",
        "{\"Records\":[{\"Data\":\"Zh==\"},{\"Data\":\"Zm8=\"},{\"Data\":\"Zm9v\"}]}",
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (scan(ok[i], 500) != 1) fail_msg("declined: %s", ok[i]);
}

/* Bodies it leaves to the tree parser: valid ones it does not read, and invalid ones. */
static void declined(void **state) {
    (void)state;
    static const char *const no[] = {
        "",
        "{}",
        "[]",
        "{\"StreamName\":\"s\"}",
        "{\"Records\":null}",
        "{\"Records\":{}}",
        "{\"Records\":[1]}",
        "{\"Records\":[[]]}",
        "{\"Records\":[null]}",
        "{\"Records\":[{\"Data\":null}]}",
        "{\"Records\":[{\"PartitionKey\":null}]}",
        "{\"Records\":[{\"PartitionKey\":1}]}",
        "{\"Records\":[{\"ExplicitHashKey\":12}]}",
        "{\"Records\":[{\"Data\":\"eA==\",\"Data\":\"eA==\"}]}",
        "{\"Records\":[{\"PartitionKey\":\"a\",\"PartitionKey\":\"a\"}]}",
        "{\"Records\":[{\"ExplicitHashKey\":\"1\",\"ExplicitHashKey\":\"1\"}]}",
        "{\"Records\":[],\"Records\":[]}",
        "{\"StreamName\":\"a\",\"StreamName\":\"a\",\"Records\":[]}",
        "{\"StreamARN\":\"a\",\"StreamARN\":\"a\",\"Records\":[]}",
        "{\"Records\":[{\"Other\":\"x\"}]}",
        "{\"Records\":[],\"Other\":\"x\"}",
        "{\"Records\":[],\"streamName\":\"x\"}",
        "{\"Records\":[{\"PartitionKey\":\"a\\\"b\"}]}",
        "{\"Records\":[{\"PartitionKey\":\"\\u0041\"}]}",
        "{\"Records\":[{\"Data\":\"eA\\u003d=\"}]}",
        "{\"Records\":[{\"Data\":\"a\\/==\"}]}",
        "{\"StreamName\":\"a\\tb\",\"Records\":[]}",
        "{\"Re\\u0063ords\":[]}",
        "{\"Records\":[{\"PartitionKey\":\"a\tb\"}]}",
        "{\"Records\":[{\"PartitionKey\":\"\xff\"}]}",
        "{\"Records\":[{\"PartitionKey\":\"\xc0\x80\"}]}",
        "{\"Records\":[{\"PartitionKey\":\"\xed\xa0\x80\"}]}",
        "{\"Records\":[{\"PartitionKey\":\"\xf4\x90\x80\x80\"}]}",
        "{\"Records\":[{\"PartitionKey\":\"\xe2\x82\"}]}",
        "{\"Records\":[{\"Data\":\"eA=\"}]}",
        "{\"Records\":[{\"Data\":\"e===\"}]}",
        "{\"Records\":[{\"Data\":\"eA==eA==\"}]}",
        "{\"Records\":[{\"Data\":\"e\xc3\xa9=\"}]}",
        "{\"Records\":[{\"Data\":\"eA==}]}",
        "{\"Records\":[{\"Data\":\"eA==\"}]",
        "{\"Records\":[{\"Data\":\"eA==\"}]}x",
        "{\"Records\":[{\"Data\":\"eA==\"}]}{}",
        "{\"Records\":[{\"Data\":\"eA==\"},]}",
        "{\"Records\":[,{\"Data\":\"eA==\"}]}",
        "{\"Records\":[{\"Data\":\"eA==\",}]}",
        "{\"Records\":[{\"Data\" \"eA==\"}]}",
        "{\"Records\":[{\"Data\":\"eA==\"} {}]}",
        "{\"Records\":[] \"StreamName\":\"s\"}",
        "{,\"Records\":[]}",
        "{\"Records\":[]},",
        "\xef\xbb\xbf{\"Records\":[]}",
        "{\"Records\":[]}\f",
        "\"Records\"",
        "{\"Records\":[{\"PartitionKey\":\"k",
        "{\"Records\":[{\"PartitionKey\"",
        "{\"Records\":[{",
        "{\"Records\":[",
        "{\"Records\":",
        "{\"Records\"",
        "{",
    };
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        if (scan(no[i], 500) != 0) fail_msg("read: %s", no[i]);
    /* A NUL anywhere: after the body, or inside a string. */
    static const char nul_after[] = "{\"Records\":[]}\0", nul_in[] = "{\"Records\":[{\"PartitionKey\":\"a\0\"}]}";
    tr_put_body b;
    assert_int_equal(tr_put_scan_json((const uint8_t *)nul_after, sizeof nul_after - 1, 500, &b), 0);
    assert_int_equal(tr_put_scan_json((const uint8_t *)nul_in, sizeof nul_in - 1, 500, &b), 0);
}

static void max_records(void **state) {
    (void)state;
    char body[2048];
    size_t o = (size_t)snprintf(body, sizeof body, "{\"Records\":[");
    for (int i = 0; i < 100; i++)
        o += (size_t)snprintf(body + o, sizeof body - o, "%s{\"Data\":\"\"}", i ? "," : "");
    snprintf(body + o, sizeof body - o, "]}");
    assert_int_equal(scan(body, 100), 1);
    assert_int_equal(scan(body, 99), 0);
    assert_int_equal(scan(body, 0), 0);
}

/* Many records with data of every length, in a body larger than the scanner's first guess
 * of the record count. */
static void many_records(void **state) {
    (void)state;
    size_t cap = 1 << 20, o = 0;
    char *body = malloc(cap);
    uint8_t raw[300];
    char b64[401];
    assert_non_null(body);
    o += (size_t)snprintf(body + o, cap - o, "{\"StreamName\":\"big\",\"Records\":[");
    for (int i = 0; i < 500; i++) {
        size_t n = (size_t)(i * 7 % 300);
        for (size_t k = 0; k < n; k++) raw[k] = (uint8_t)(i * 31 + k);
        tr_base64_encode(raw, n, b64);
        o += (size_t)snprintf(body + o, cap - o,
                              "%s{\"Data\":\"%s\",\"PartitionKey\":\"key-%d\"%s}", i ? "," : "",
                              b64, i, i % 3 ? "" : ",\"ExplicitHashKey\":\"123\"");
    }
    snprintf(body + o, cap - o, "]}");
    assert_int_equal(scan(body, 500), 1);
    assert_int_equal(scan(body, 499), 0);
    free(body);
}

/* jansson's json_stringn is the reference for what is UTF-8 text. */
static int jansson_utf8(const char *s, size_t n) {
    json_t *j = json_stringn(s, n);
    json_decref(j);
    return j != NULL;
}

static void utf8_like_jansson(void **state) {
    (void)state;
    char b[5];
    for (unsigned a = 0; a < 256; a++) { /* every one- and two-byte string */
        b[0] = (char)a;
        assert_int_equal(tr_utf8_valid(b, 1), jansson_utf8(b, 1));
        for (unsigned c = 0; c < 256; c++) {
            b[1] = (char)c;
            assert_int_equal(tr_utf8_valid(b, 2), jansson_utf8(b, 2));
        }
    }
    for (unsigned a = 0xC0; a < 256; a++) /* every three-byte string that starts a sequence */
        for (unsigned c = 0; c < 256; c++)
            for (unsigned d = 0; d < 256; d++) {
                b[0] = (char)a, b[1] = (char)c, b[2] = (char)d;
                if (tr_utf8_valid(b, 3) != jansson_utf8(b, 3))
                    fail_msg("%02x %02x %02x", a, c, d);
            }
    uint64_t x = 88172645463325252ull; /* four-byte strings around the lead bytes F0..F4 */
    for (int i = 0; i < 2000000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        b[0] = (char)(0xE8 + (x & 15));
        b[1] = (char)(x >> 8), b[2] = (char)(x >> 16), b[3] = (char)(x >> 24);
        if (x & (1u << 30)) b[1] = (char)(0x80 | (b[1] & 0x3f));
        if (x & (1u << 31)) b[2] = (char)(0x80 | (b[2] & 0x3f));
        if (x & (1ull << 32)) b[3] = (char)(0x80 | (b[3] & 0x3f));
        if (tr_utf8_valid(b, 4) != jansson_utf8(b, 4))
            fail_msg("%02x %02x %02x %02x", (uint8_t)b[0], (uint8_t)b[1], (uint8_t)b[2],
                     (uint8_t)b[3]);
    }
}

/* The base64 decoder before it was unrolled, as the reference. */
static long ref_b64_decode(const char *in, size_t len, uint8_t *out) {
    static const char alpha[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (len % 4 != 0) return -1;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int pad = 0;
        uint32_t v = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)in[i + (size_t)k];
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

static void base64_like_reference(void **state) {
    (void)state;
    static const char pool[] = "AZaz09+/==\0-_.!\xff";
    char in[16];
    uint8_t a[16], b[16];
    uint64_t x = 0x2545F4914F6CDD1Dull;
    for (int i = 0; i < 3000000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t len = (size_t)(x % 13);
        for (size_t k = 0; k < len; k++) in[k] = pool[(x >> (4 + 4 * k)) % (sizeof pool - 1)];
        long ra = tr_base64_decode(in, len, a), rb = ref_b64_decode(in, len, b);
        if (ra != rb) fail_msg("length %zu: %ld, reference %ld", len, ra, rb);
        if (ra > 0) assert_memory_equal(a, b, (size_t)ra);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads),
        cmocka_unit_test(accepted),
        cmocka_unit_test(declined),
        cmocka_unit_test(max_records),
        cmocka_unit_test(many_records),
        cmocka_unit_test(utf8_like_jansson),
        cmocka_unit_test(base64_like_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
