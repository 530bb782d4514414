/* The JSON/CBOR writer and reader: what one writes the other reads back the same. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "wire/reader.h"
#include "wire/writer.h"

static void base64_vectors(void **state) {
    (void)state;
    const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char out[16];
        uint8_t back[16];
        tr_base64_encode(plain[i], strlen(plain[i]), out);
        assert_string_equal(out, enc[i]);
        assert_int_equal(tr_base64_decode(out, strlen(out), back), (long)strlen(plain[i]));
        assert_memory_equal(back, plain[i], strlen(plain[i]));
    }
    uint8_t b[8];
    assert_int_equal(tr_base64_decode("Zm9", 3, b), -1);
    assert_int_equal(tr_base64_decode("Zm=v", 4, b), -1);
    assert_int_equal(tr_base64_decode("Zm9v!A==", 8, b), -1);
}

static void write_sample(tr_writer *w) {
    tr_w_obj_begin(w);
    tr_w_kstr(w, "Name", "a \"quoted\"\n\x01 name");
    tr_w_kint(w, "Count", -42);
    tr_w_kint(w, "Big", 1ll << 40);
    tr_w_kbool(w, "HasMore", 1);
    tr_w_ktime_ms(w, "When", 1700000000123);
    tr_w_key(w, "Data");
    tr_w_blob(w, "\x00\xff\x10hello", 8);
    tr_w_key(w, "List");
    tr_w_arr_begin(w);
    tr_w_int(w, 1);
    tr_w_obj_begin(w);
    tr_w_key(w, "Null");
    tr_w_null(w);
    tr_w_obj_end(w);
    tr_w_arr_end(w);
    tr_w_key(w, "Empty");
    tr_w_arr_begin(w);
    tr_w_arr_end(w);
    tr_w_obj_end(w);
}

static void check_sample(tr_wire_format f, json_t *j) {
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "Name")), "a \"quoted\"\n\x01 name");
    assert_int_equal(json_integer_value(json_object_get(j, "Count")), -42);
    assert_int_equal(json_integer_value(json_object_get(j, "Big")), 1ll << 40);
    assert_true(json_is_true(json_object_get(j, "HasMore")));
    int64_t ms;
    assert_int_equal(tr_wire_time_ms(json_object_get(j, "When"), &ms), 0);
    assert_int_equal(ms, 1700000000123);
    const uint8_t *d;
    size_t n;
    int owned;
    assert_int_equal(tr_wire_blob(f, json_object_get(j, "Data"), &d, &n, &owned), 0);
    assert_int_equal(n, 8);
    assert_memory_equal(d, "\x00\xff\x10hello", 8);
    if (owned) free((void *)d);
    json_t *list = json_object_get(j, "List");
    assert_int_equal(json_array_size(list), 2);
    assert_true(json_is_null(json_object_get(json_array_get(list, 1), "Null")));
    assert_int_equal(json_array_size(json_object_get(j, "Empty")), 0);
}

static void round_trips(void **state) {
    (void)state;
    for (int f = 0; f < 2; f++) {
        tr_writer w;
        tr_writer_init(&w, (tr_wire_format)f);
        write_sample(&w);
        size_t len;
        uint8_t *buf = tr_writer_take(&w, &len);
        assert_non_null(buf);
        char err[128];
        json_t *j = tr_wire_parse((tr_wire_format)f, buf, len, err, sizeof err);
        check_sample((tr_wire_format)f, j);
        json_decref(j);
        free(buf);
    }
}

static void json_text_exact(void **state) {
    (void)state;
    tr_writer w;
    tr_writer_init(&w, TR_WIRE_JSON);
    tr_w_obj_begin(&w);
    tr_w_kint(&w, "A", 1);
    tr_w_ktime_ms(&w, "T", 1500);
    tr_w_key(&w, "L");
    tr_w_arr_begin(&w);
    tr_w_str(&w, "x");
    tr_w_str(&w, "y");
    tr_w_arr_end(&w);
    tr_w_obj_end(&w);
    size_t len;
    char *buf = (char *)tr_writer_take(&w, &len);
    assert_int_equal(len, strlen("{\"A\":1,\"T\":1.500,\"L\":[\"x\",\"y\"]}"));
    assert_memory_equal(buf, "{\"A\":1,\"T\":1.500,\"L\":[\"x\",\"y\"]}", len);
    free(buf);
}

static void bad_input(void **state) {
    (void)state;
    char err[128];
    assert_null(tr_wire_parse(TR_WIRE_JSON, (const uint8_t *)"{\"a\":", 5, err, sizeof err));
    assert_null(tr_wire_parse(TR_WIRE_JSON, (const uint8_t *)"{\"a\":1,\"a\":2}", 13, err, sizeof err));
    const uint8_t bad_cbor[] = {0xbf, 0x61};
    assert_null(tr_wire_parse(TR_WIRE_CBOR, bad_cbor, sizeof bad_cbor, err, sizeof err));
    /* A map key that is not text. */
    const uint8_t int_key[] = {0xa1, 0x01, 0x02};
    assert_null(tr_wire_parse(TR_WIRE_CBOR, int_key, sizeof int_key, err, sizeof err));
    json_t *empty = tr_wire_parse(TR_WIRE_CBOR, NULL, 0, err, sizeof err);
    assert_true(json_is_object(empty));
    json_decref(empty);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(base64_vectors),
        cmocka_unit_test(round_trips),
        cmocka_unit_test(json_text_exact),
        cmocka_unit_test(bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
