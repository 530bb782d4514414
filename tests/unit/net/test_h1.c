/* The HTTP/1.1 request head parser of our own reader (net/h1.h): request lines, headers,
 * the limits (16 KiB, 100 headers), refusals, and heads given in pieces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "net/h1.h"

static int parse(const char *text, tr_h1_head *h) {
    return tr_h1_parse_head((const uint8_t *)text, strlen(text), h);
}

/* The status a head gets (a negated status, 0 for "more", or >0 when parsed). */
static int status_of(const char *text) {
    tr_h1_head h;
    int r = parse(text, &h);
    if (r > 0) tr_h1_head_free(&h);
    return r;
}

static void put_media_head(void **state) {
    (void)state;
    const char *text = "POST /putMedia HTTP/1.1\r\n"
                       "Host: 127.0.0.1:4566\r\n"
                       "Transfer-Encoding: chunked\r\n"
                       "X-Amzn-Stream-Name:   cam-1  \r\n"
                       "x-amzn-fragment-timecode-type:ABSOLUTE\r\n"
                       "\r\n"
                       "5\r\nhello\r\n";
    tr_h1_head h;
    int r = parse(text, &h);
    assert_int_equal(r, (int)(strstr(text, "\r\n\r\n") - text) + 4);
    assert_string_equal(h.method, "POST");
    assert_string_equal(h.target, "/putMedia");
    assert_int_equal(h.minor, 1);
    assert_int_equal(h.nhdrs, 4);
    assert_string_equal(tr_h1_head_header(&h, "x-amzn-stream-name"), "cam-1");
    assert_string_equal(tr_h1_head_header(&h, "X-AMZN-FRAGMENT-TIMECODE-TYPE"), "ABSOLUTE");
    assert_string_equal(tr_h1_head_header(&h, "transfer-encoding"), "chunked");
    assert_string_equal(tr_h1_head_header(&h, "host"), "127.0.0.1:4566");
    assert_null(tr_h1_head_header(&h, "content-length"));
    tr_h1_head_free(&h);
}

static void bare_lf_and_leading_empty_lines(void **state) {
    (void)state;
    const char *text = "\r\n\nPOST /a?b=c HTTP/1.0\nContent-Length: 3\n\nabc";
    tr_h1_head h;
    int r = parse(text, &h);
    assert_int_equal(r, (int)strlen(text) - 3);
    assert_string_equal(h.target, "/a?b=c");
    assert_int_equal(h.minor, 0); /* HTTP/1.0 needs no Host */
    assert_string_equal(tr_h1_head_header(&h, "Content-Length"), "3");
    tr_h1_head_free(&h);
}

static void repeated_headers_are_joined(void **state) {
    (void)state;
    tr_h1_head h;
    assert_true(parse("POST /x HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\na: 3\r\nA:\r\n\r\n", &h) >
                0);
    assert_string_equal(tr_h1_head_header(&h, "a"), "1, 3, ");
    assert_string_equal(tr_h1_head_header(&h, "b"), "2");
    assert_int_equal(h.nhdrs, 5);
    tr_h1_head_free(&h);
}

static void absolute_form_target(void **state) {
    (void)state;
    tr_h1_head h;
    assert_true(parse("POST http://cam.example:4566/putMedia?x=1 HTTP/1.1\r\nHost: a\r\n\r\n",
                      &h) > 0);
    assert_string_equal(h.target, "/putMedia?x=1");
    tr_h1_head_free(&h);
    assert_true(parse("GET HTTPS://host?q HTTP/1.1\r\nHost: a\r\n\r\n", &h) > 0);
    assert_string_equal(h.target, "/?q");
    tr_h1_head_free(&h);
    assert_true(parse("GET http://host HTTP/1.1\r\nHost: a\r\n\r\n", &h) > 0);
    assert_string_equal(h.target, "/");
    tr_h1_head_free(&h);
}

static void incomplete_heads_ask_for_more(void **state) {
    (void)state;
    const char *text = "POST /putMedia HTTP/1.1\r\nHost: h\r\nA: b\r\n\r\n";
    size_t len = strlen(text);
    for (size_t n = 0; n < len; n++) {
        tr_h1_head h;
        int r = tr_h1_parse_head((const uint8_t *)text, n, &h);
        assert_int_equal(r, 0);
        assert_null(h.target);
        assert_null(h.hdrs);
    }
    assert_int_equal(status_of(text), (int)len);
    /* garbage is judged only once its head ends */
    assert_int_equal(status_of("\x01\x02 nonsense without an end"), 0);
    assert_int_equal(status_of(""), 0);
    assert_int_equal(status_of("\r\n\r\n\r\n"), 0);
}

static void malformed_heads_are_400(void **state) {
    (void)state;
    static const char *const bad[] = {
        "POST\r\nHost: h\r\n\r\n",                            /* no target */
        "POST /x\r\nHost: h\r\n\r\n",                         /* no version */
        "POST  /x HTTP/1.1\r\nHost: h\r\n\r\n",               /* two spaces */
        "POST /x  HTTP/1.1\r\nHost: h\r\n\r\n",
        "POST /a b HTTP/1.1\r\nHost: h\r\n\r\n",              /* a space in the target */
        "POST x HTTP/1.1\r\nHost: h\r\n\r\n",                 /* not origin form */
        "POST ftp://x/y HTTP/1.1\r\nHost: h\r\n\r\n",
        "PO(ST /x HTTP/1.1\r\nHost: h\r\n\r\n",               /* not a token */
        "VERYLONGMETHODNAME /x HTTP/1.1\r\nHost: h\r\n\r\n",  /* 16+ characters */
        " POST /x HTTP/1.1\r\nHost: h\r\n\r\n",
        "POST /x HTTP/1.1 \r\nHost: h\r\n\r\n",
        "POST /x http/1.1\r\nHost: h\r\n\r\n",
        "POST /x HTTP/1.10\r\nHost: h\r\n\r\n",
        "POST /x HTTP/1.1\r\nHost h\r\n\r\n",                 /* no colon */
        "POST /x HTTP/1.1\r\nHost : h\r\n\r\n",               /* a space before the colon */
        "POST /x HTTP/1.1\r\n: h\r\nHost: h\r\n\r\n",         /* an empty name */
        "POST /x HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n",     /* obs-fold */
        "POST /x HTTP/1.1\r\nHost: h\r\nA: b\rc\r\n\r\n",     /* a bare CR */
        "POST /x HTTP/1.1\r\nHost: h\r\nA: b\x01\r\n\r\n",    /* a control character */
        "POST /x HTTP/1.1\r\nHost: h\r\nA: \x7f\r\n\r\n",
        "POST /x HTTP/1.1\r\nA: b\r\n\r\n",                   /* HTTP/1.1 without Host */
        "POST /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",     /* two Hosts */
        "POST /x\x01 HTTP/1.1\r\nHost: h\r\n\r\n",
        "\r\r\nPOST /x HTTP/1.1\r\nHost: h\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int r = status_of(bad[i]);
        if (r != -400) fail_msg("head %zu: %d, want -400", i, r);
    }
    /* a NUL inside a value */
    static const char nul[] = "POST /x HTTP/1.1\r\nHost: h\r\nA: b\0c\r\n\r\n";
    tr_h1_head h;
    assert_int_equal(tr_h1_parse_head((const uint8_t *)nul, sizeof nul - 1, &h), -400);
    /* obs-text (bytes >= 0x80) is allowed in values */
    assert_true(status_of("POST /x HTTP/1.1\r\nHost: h\r\nA: caf\xc3\xa9\r\n\r\n") > 0);
}

static void versions(void **state) {
    (void)state;
    assert_int_equal(status_of("POST /x HTTP/2.0\r\nHost: h\r\n\r\n"), -505);
    assert_int_equal(status_of("POST /x HTTP/1.2\r\nHost: h\r\n\r\n"), -505);
    assert_int_equal(status_of("POST /x HTTP/0.9\r\nHost: h\r\n\r\n"), -505);
    assert_int_equal(status_of("POST /x HTTP/1.x\r\nHost: h\r\n\r\n"), -400);
}

static void limits_are_431(void **state) {
    (void)state;
    /* 100 headers are fine, 101 are not */
    char *text = malloc(TR_H1_HEAD_MAX * 2);
    assert_non_null(text);
    for (int count = 100; count <= 101; count++) {
        size_t n = (size_t)sprintf(text, "POST /x HTTP/1.1\r\nHost: h\r\n");
        for (int i = 1; i < count; i++) n += (size_t)sprintf(text + n, "X-%d: %d\r\n", i, i);
        n += (size_t)sprintf(text + n, "\r\n");
        int r = status_of(text);
        if (count == 100) assert_int_equal(r, (int)n);
        else assert_int_equal(r, -431);
    }
    /* a head of exactly TR_H1_HEAD_MAX bytes is fine; one byte more is not */
    for (size_t total = TR_H1_HEAD_MAX; total <= TR_H1_HEAD_MAX + 1; total++) {
        size_t n = (size_t)sprintf(text, "POST /x HTTP/1.1\r\nHost: h\r\nX-Pad: ");
        size_t pad = total - n - 4;
        memset(text + n, 'a', pad);
        memcpy(text + n + pad, "\r\n\r\n", 5);
        assert_int_equal(strlen(text), total);
        int r = status_of(text);
        if (total == TR_H1_HEAD_MAX) assert_int_equal(r, (int)total);
        else assert_int_equal(r, -431);
    }
    /* 16 KiB without an end: 431 at once, not "more" */
    memset(text, 'a', TR_H1_HEAD_MAX);
    memcpy(text, "POST /x HTTP/1.1\r\nX: ", 21);
    tr_h1_head h;
    assert_int_equal(tr_h1_parse_head((const uint8_t *)text, TR_H1_HEAD_MAX - 1, &h), 0);
    assert_int_equal(tr_h1_parse_head((const uint8_t *)text, TR_H1_HEAD_MAX, &h), -431);
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(put_media_head),
        cmocka_unit_test(bare_lf_and_leading_empty_lines),
        cmocka_unit_test(repeated_headers_are_joined),
        cmocka_unit_test(absolute_form_target),
        cmocka_unit_test(incomplete_heads_ask_for_more),
        cmocka_unit_test(malformed_heads_are_400),
        cmocka_unit_test(versions),
        cmocka_unit_test(limits_are_431),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
