/* The CBOR request parser's guard against bodies that declare more than they hold (which
 * would make libcbor allocate for all of it up front) and against nesting past
 * TR_WIRE_MAX_DEPTH, and that no valid shape is refused by it: definite and indefinite
 * containers ending together, tags, chunked strings, empty containers, the deepest nesting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "wire/reader.h"

static json_t *parse(const uint8_t *b, size_t n, char *err, size_t err_len) {
    err[0] = '\0';
    return tr_wire_parse(TR_WIRE_CBOR, b, n, err, err_len);
}

static void refuses(const uint8_t *b, size_t n) {
    char err[200];
    json_t *j = parse(b, n, err, sizeof err);
    if (j) fail_msg("accepted %zu bytes starting %02x", n, b[0]);
    assert_true(err[0] != '\0');
}

/* Parses b and compares the tree with the JSON text want. */
static void same_as(const uint8_t *b, size_t n, const char *want) {
    char err[200];
    json_t *j = parse(b, n, err, sizeof err);
    if (!j) fail_msg("refused (%s): expected %s", err, want);
    json_t *w = json_loads(want, JSON_DECODE_ANY, NULL);
    assert_non_null(w);
    char *got = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!json_equal(j, w)) fail_msg("got %s, expected %s", got, want);
    free(got);
    json_decref(w);
    json_decref(j);
}

static void huge_declarations_refused(void **state) {
    (void)state;
    char err[200];
    /* A map of 0x3d3d3d06 pairs in five bytes: found by fuzz_wire_cbor, where libcbor asked
     * for 16 GB before reading any of them. */
    const uint8_t map[] = {0xba, 0x3d, 0x3d, 0x3d, 0x06};
    assert_null(parse(map, sizeof map, err, sizeof err));
    assert_non_null(strstr(err, "byte 0"));
    const uint8_t map64[] = {0xbb, 0, 0, 0, 0x10, 0, 0, 0, 0};
    refuses(map64, sizeof map64);
    const uint8_t arr[] = {0x9a, 0xff, 0xff, 0xff, 0xff, 0x01};
    refuses(arr, sizeof arr);
    /* Nested: each level fits what is left, but not all of them together. */
    const uint8_t nested[] = {0x83, 0x83, 0x01, 0x02, 0x03};
    refuses(nested, sizeof nested);
    /* Inside an indefinite array, a definite one that promises too much. */
    const uint8_t indef[] = {0x9f, 0x9a, 0x00, 0x10, 0x00, 0x00, 0x01, 0xff};
    refuses(indef, sizeof indef);
    /* One entry short, exactly. */
    const uint8_t short1[] = {0xa2, 0x61, 'a', 0x01, 0x61, 'b'};
    refuses(short1, sizeof short1);
}

static void valid_shapes_pass(void **state) {
    (void)state;
    const uint8_t one[] = {0x81, 0x01};
    same_as(one, sizeof one, "[1]");
    const uint8_t nested[] = {0x81, 0x81, 0x81, 0x01};
    same_as(nested, sizeof nested, "[[[1]]]");
    /* Containers that end together, a map whose last value is a container. */
    const uint8_t map[] = {0xa2, 0x61, 'a', 0x82, 0x01, 0x02, 0x61, 'b', 0xa1, 0x61, 'c', 0x80};
    same_as(map, sizeof map, "{\"a\":[1,2],\"b\":{\"c\":[]}}");
    /* Empty definite containers take no entries. */
    const uint8_t empties[] = {0x83, 0x80, 0xa0, 0x80};
    same_as(empties, sizeof empties, "[[],{},[]]");
    /* Indefinite map and array, chunked byte and text strings. */
    const uint8_t indef[] = {0xbf, 0x61, 'k', 0x9f, 0x5f, 0x41, 'x', 0x41, 'y', 0xff,
                             0x7f, 0x61, 'z', 0xff, 0xff, 0xff};
    same_as(indef, sizeof indef, "{\"k\":[\"xy\",\"z\"]}");
    /* Tag 1 (epoch milliseconds) as the last entry of a definite map, and another tag. */
    const uint8_t tags[] = {0xa2, 0x61, 't', 0xc1, 0x19, 0x03, 0xe8, 0x61, 'u',
                            0xd8, 0x20, 0x61, 'v'};
    same_as(tags, sizeof tags, "{\"t\":1.0,\"u\":\"v\"}");
    /* A scalar body and a body with one byte more than its item: the item is judged, the
     * trailing byte is refused by the parser as before. */
    const uint8_t scalar[] = {0x18, 0x2a};
    same_as(scalar, sizeof scalar, "42");
    const uint8_t trailing[] = {0x81, 0x01, 0x01};
    refuses(trailing, sizeof trailing);
}

/* depth arrays around one integer: [[...[1]...]] */
static uint8_t *nest(int depth, int indefinite, size_t *len) {
    uint8_t *b = malloc((size_t)depth * 2 + 1);
    assert_non_null(b);
    size_t n = 0;
    for (int i = 0; i < depth; i++) b[n++] = indefinite ? 0x9f : 0x81;
    b[n++] = 0x01;
    if (indefinite)
        for (int i = 0; i < depth; i++) b[n++] = 0xff;
    *len = n;
    return b;
}

static void depth_limit(void **state) {
    (void)state;
    char err[200];
    for (int indefinite = 0; indefinite < 2; indefinite++) {
        size_t len;
        uint8_t *b = nest(TR_WIRE_MAX_DEPTH, indefinite, &len);
        json_t *j = parse(b, len, err, sizeof err);
        assert_non_null(j);
        json_decref(j);
        free(b);
        b = nest(TR_WIRE_MAX_DEPTH + 1, indefinite, &len);
        assert_null(parse(b, len, err, sizeof err));
        free(b);
        /* Far deeper: refused by the first pass, before libcbor builds anything. */
        b = nest(100000, indefinite, &len);
        assert_null(parse(b, len, err, sizeof err));
        assert_non_null(strstr(err, "deeper"));
        free(b);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(huge_declarations_refused),
        cmocka_unit_test(valid_shapes_pass),
        cmocka_unit_test(depth_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
