/* SigV4 verification (auth/sigv4.h) against AWS's published test suite
 * (aws-sig-v4-test-suite: credentials AKIDEXAMPLE / wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY,
 * 20150830T123600Z, us-east-1, service "service"), the parsing of the Authorization header
 * and of presigned URLs, and the clock helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "auth/sigv4.h"

#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define DATE "20150830T123600Z"
#define CRED "AKIDEXAMPLE/20150830/us-east-1/service/aws4_request"
#define EMPTY_SHA "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

typedef struct hdrs {
    const char *kv[16]; /* name, value, ... NULL */
} hdrs;

static const char *lookup(void *ctx, const char *name) {
    hdrs *h = ctx;
    for (int i = 0; h->kv[i] != NULL; i += 2)
        if (strcasecmp(h->kv[i], name) == 0) return h->kv[i + 1];
    return NULL;
}

/* Signs through the verifier: parses the Authorization header, checks it verifies, and that
 * one changed hex digit does not. */
static void check_vector(const char *method, const char *path, const char *query, hdrs *h,
                         const char *body, const char *signed_headers, const char *signature) {
    char auth[600], err[300];
    snprintf(auth, sizeof auth, "AWS4-HMAC-SHA256 Credential=" CRED ", SignedHeaders=%s, Signature=%s",
             signed_headers, signature);
    tr_sigv4_claim claim;
    assert_int_equal(tr_sigv4_parse_header(auth, &claim, err, sizeof err), 0);
    assert_string_equal(claim.access_key, "AKIDEXAMPLE");
    assert_string_equal(claim.scope_date, "20150830");
    assert_string_equal(claim.region, "us-east-1");
    assert_string_equal(claim.service, "service");
    char hash[TR_SIGV4_HEX_LEN + 1];
    tr_sigv4_sha256_hex(body, strlen(body), hash);
    tr_sigv4_request r = {.method = method, .path = path, .path_encodings = 1, .query = query,
                          .header = lookup, .header_ctx = h, .payload_hash = hash};
    assert_int_equal(tr_sigv4_verify(SECRET, &r, &claim, DATE), 1);
    claim.signature[10] = claim.signature[10] == '0' ? '1' : '0';
    assert_int_equal(tr_sigv4_verify(SECRET, &r, &claim, DATE), 0);
    assert_int_equal(tr_sigv4_verify("wrong", &r, &claim, DATE), 0);
}

static void get_vanilla(void **state) {
    hdrs h = {{"Host", "example.amazonaws.com", "X-Amz-Date", DATE, NULL}};
    check_vector("GET", "/", "", &h, "", "host;x-amz-date",
                 "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}

static void get_vanilla_query_order_key_case(void **state) {
    hdrs h = {{"Host", "example.amazonaws.com", "X-Amz-Date", DATE, NULL}};
    check_vector("GET", "/", "Param2=value2&Param1=value1", &h, "", "host;x-amz-date",
                 "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
}

static void post_vanilla(void **state) {
    hdrs h = {{"Host", "example.amazonaws.com", "X-Amz-Date", DATE, NULL}};
    check_vector("POST", "/", "", &h, "", "host;x-amz-date",
                 "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
}

static void post_vanilla_query(void **state) {
    hdrs h = {{"Host", "example.amazonaws.com", "X-Amz-Date", DATE, NULL}};
    check_vector("POST", "/", "Param1=value1", &h, "", "host;x-amz-date",
                 "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11");
}

static void post_x_www_form_urlencoded(void **state) {
    hdrs h = {{"Content-Type", "application/x-www-form-urlencoded", "Host",
               "example.amazonaws.com", "X-Amz-Date", DATE, NULL}};
    check_vector("POST", "/", "", &h, "Param1=value1", "content-type;host;x-amz-date",
                 "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a");
}

static void post_header_key_case(void **state) {
    hdrs h = {{"Host", "example.amazonaws.com", "MY-HEADER1", "value1", "X-Amz-Date", DATE,
               NULL}};
    check_vector("POST", "/", "", &h, "", "host;my-header1;x-amz-date",
                 "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c");
}

static void get_header_value_trim(void **state) {
    hdrs h = {{"Host", "example.amazonaws.com", "My-Header1", " value1", "My-Header2",
               " \"a   b   c\"", "X-Amz-Date", DATE, NULL}};
    check_vector("GET", "/", "", &h, "", "host;my-header1;my-header2;x-amz-date",
                 "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736");
}

static void get_header_key_duplicate(void **state) {
    /* Repeated headers reach us joined with ',' (as the suite's canonical form has them). */
    hdrs h = {{"Host", "example.amazonaws.com", "My-Header1", "value2,value2,value1",
               "X-Amz-Date", DATE, NULL}};
    check_vector("GET", "/", "", &h, "", "host;my-header1;x-amz-date",
                 "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea");
}

static void canonical_request_shape(void **state) {
    hdrs h = {{"Content-Type", "application/x-www-form-urlencoded", "Host",
               "example.amazonaws.com", "X-Amz-Date", DATE, NULL}};
    tr_sigv4_claim claim = {0};
    snprintf(claim.signed_headers, sizeof claim.signed_headers, "content-type;host;x-amz-date");
    snprintf(claim.scope_date, sizeof claim.scope_date, "20150830");
    snprintf(claim.region, sizeof claim.region, "us-east-1");
    snprintf(claim.service, sizeof claim.service, "service");
    char hash[TR_SIGV4_HEX_LEN + 1];
    tr_sigv4_sha256_hex("Param1=value1", 13, hash);
    tr_sigv4_request r = {.method = "POST", .path = "/", .path_encodings = 1, .query = "",
                          .header = lookup, .header_ctx = &h, .payload_hash = hash};
    char *c = tr_sigv4_canonical_request(&r, &claim);
    assert_string_equal(c, "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\n"
                           "host:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
                           "content-type;host;x-amz-date\n"
                           "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e");
    char *sts = tr_sigv4_string_to_sign(DATE, &claim, c);
    assert_string_equal(sts, "AWS4-HMAC-SHA256\n20150830T123600Z\n"
                             "20150830/us-east-1/service/aws4_request\n"
                             "42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281");
    free(c);
    free(sts);
}

static void path_encoding(void **state) {
    /* A decoded path "/a b/c~" as a non-S3 service signs it: each segment encoded twice. */
    hdrs h = {{"Host", "h", NULL}};
    tr_sigv4_claim claim = {0};
    snprintf(claim.signed_headers, sizeof claim.signed_headers, "host");
    tr_sigv4_request r = {.method = "GET", .path = "/a b/c~", .path_encodings = 2,
                          .query = "b=2&a=x y&a=1", .header = lookup, .header_ctx = &h,
                          .payload_hash = TR_SIGV4_UNSIGNED};
    char *c = tr_sigv4_canonical_request(&r, &claim);
    assert_string_equal(c, "GET\n/a%2520b/c~\na=1&a=x%20y&b=2\nhost:h\n\nhost\nUNSIGNED-PAYLOAD");
    free(c);
}

static void header_parse_errors(void **state) {
    tr_sigv4_claim claim;
    char err[400];
    assert_int_equal(tr_sigv4_parse_header("Basic abc", &claim, err, sizeof err), -1);
    assert_int_equal(tr_sigv4_parse_header("AWS4-HMAC-SHA256 Credential=" CRED, &claim, err,
                                           sizeof err),
                     -1);
    assert_non_null(strstr(err, "'Signature'"));
    assert_non_null(strstr(err, "'SignedHeaders'"));
    assert_int_equal(tr_sigv4_parse_header("AWS4-HMAC-SHA256 Credential=AK/2015/us/x, "
                                           "SignedHeaders=host, Signature=00",
                                           &claim, err, sizeof err),
                     -1);
    /* No spaces after the commas is accepted too (some clients send that). */
    assert_int_equal(tr_sigv4_parse_header("AWS4-HMAC-SHA256 Credential=" CRED
                                           ",SignedHeaders=host,Signature=abc",
                                           &claim, err, sizeof err),
                     0);
    assert_string_equal(claim.signed_headers, "host");
    assert_string_equal(claim.signature, "abc");
}

/* A presigned URL: the query as the net layer hands it (%-decoded), signed the way botocore's
 * generate_presigned_url signs (UNSIGNED-PAYLOAD, X-Amz-Signature left out). */
static void presigned(void **state) {
    const char *q = "StreamName=cam1&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential="
                    "AKIDEXAMPLE/20150830/us-east-1/kinesisvideo/aws4_request&X-Amz-Date="
                    DATE "&X-Amz-Expires=300&X-Amz-SignedHeaders=host";
    assert_true(tr_sigv4_query_is_presigned(q));
    assert_false(tr_sigv4_query_is_presigned("StreamName=cam1"));
    tr_sigv4_claim claim;
    char err[400];
    assert_int_equal(tr_sigv4_parse_query(q, &claim, err, sizeof err), -1); /* no signature */
    hdrs h = {{"Host", "127.0.0.1:4566", NULL}};
    char full[1024];
    snprintf(full, sizeof full, "%s&X-Amz-Signature=%064d", q, 0);
    assert_int_equal(tr_sigv4_parse_query(full, &claim, err, sizeof err), 0);
    assert_true(claim.presigned);
    assert_int_equal(claim.expires_s, 300);
    assert_string_equal(claim.amz_date, DATE);
    assert_string_equal(claim.service, "kinesisvideo");
    tr_sigv4_request r = {.method = "GET", .path = "/putMedia", .path_encodings = 2,
                          .query = full, .header = lookup, .header_ctx = &h,
                          .payload_hash = TR_SIGV4_UNSIGNED};
    char *c = tr_sigv4_canonical_request(&r, &claim);
    assert_string_equal(c, "GET\n/putMedia\nStreamName=cam1&X-Amz-Algorithm=AWS4-HMAC-SHA256&"
                           "X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fkinesisvideo"
                           "%2Faws4_request&X-Amz-Date=20150830T123600Z&X-Amz-Expires=300&"
                           "X-Amz-SignedHeaders=host\nhost:127.0.0.1:4566\n\nhost\n"
                           "UNSIGNED-PAYLOAD");
    char *sts = tr_sigv4_string_to_sign(DATE, &claim, c);
    char sig[TR_SIGV4_HEX_LEN + 1];
    assert_int_equal(tr_sigv4_sign(SECRET, &claim, sts, sig), 0);
    snprintf(full, sizeof full, "%s&X-Amz-Signature=%s", q, sig);
    assert_int_equal(tr_sigv4_parse_query(full, &claim, err, sizeof err), 0);
    assert_int_equal(tr_sigv4_verify(SECRET, &r, &claim, DATE), 1);
    /* Any parameter changed breaks it. */
    char tampered[1024];
    snprintf(tampered, sizeof tampered, "%s", full);
    memcpy(strstr(tampered, "cam1"), "cam2", 4);
    r.query = tampered;
    assert_int_equal(tr_sigv4_verify(SECRET, &r, &claim, DATE), 0);
    free(c);
    free(sts);
    /* Expiry bounds. */
    snprintf(full, sizeof full,
             "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" CRED "&X-Amz-Date=" DATE
             "&X-Amz-Expires=604801&X-Amz-SignedHeaders=host&X-Amz-Signature=%s", sig);
    assert_int_equal(tr_sigv4_parse_query(full, &claim, err, sizeof err), -1);
    assert_non_null(strstr(err, "604800"));
}

static void times(void **state) {
    int64_t t;
    assert_int_equal(tr_sigv4_parse_time(DATE, &t), 0);
    assert_int_equal(t, 1440938160);
    char out[17];
    tr_sigv4_format_time(t + 300, out);
    assert_string_equal(out, "20150830T124100Z");
    assert_int_equal(tr_sigv4_parse_time("20150830T1236Z", &t), -1);
    assert_int_equal(tr_sigv4_parse_time("20151330T123600Z", &t), -1);
    assert_int_equal(tr_sigv4_parse_time(NULL, &t), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(get_vanilla),
        cmocka_unit_test(get_vanilla_query_order_key_case),
        cmocka_unit_test(post_vanilla),
        cmocka_unit_test(post_vanilla_query),
        cmocka_unit_test(post_x_www_form_urlencoded),
        cmocka_unit_test(post_header_key_case),
        cmocka_unit_test(get_header_value_trim),
        cmocka_unit_test(get_header_key_duplicate),
        cmocka_unit_test(canonical_request_shape),
        cmocka_unit_test(path_encoding),
        cmocka_unit_test(header_parse_errors),
        cmocka_unit_test(presigned),
        cmocka_unit_test(times),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
