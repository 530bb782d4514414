/* Policies per principal (auth/policy.h): wildcard matching, explicit Deny over Allow,
 * deny by default, and the refusals at load. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "auth/policy.h"

#define ARN(n) "arn:aws:kinesis:us-east-1:000000000000:stream/" n

static tr_policy_set *parse(const char *json) {
    char err[300];
    tr_policy_set *p = tr_policy_parse(json, strlen(json), err, sizeof err);
    if (p == NULL) fprintf(stderr, "parse: %s\n", err);
    return p;
}

static void wildcards(void **state) {
    assert_true(tr_policy_match("*", "", 0));
    assert_true(tr_policy_match("*", "anything", 0));
    assert_true(tr_policy_match("kinesis:*", "kinesis:PutRecord", 1));
    assert_true(tr_policy_match("KINESIS:put*", "kinesis:PutRecords", 1));
    assert_false(tr_policy_match("kinesis:put*", "kinesis:PutRecords", 0));
    assert_true(tr_policy_match("kinesis:Get?ecords", "kinesis:GetRecords", 1));
    assert_false(tr_policy_match("kinesis:Get?ecords", "kinesis:GetRRecords", 1));
    assert_true(tr_policy_match(ARN("app-*"), ARN("app-1"), 0));
    assert_false(tr_policy_match(ARN("app-*"), ARN("other"), 0));
    assert_true(tr_policy_match("a*b*c", "aXXbYYc", 0));
    assert_false(tr_policy_match("a*b*c", "aXXbYY", 0));
    assert_true(tr_policy_match("a**", "a", 0));
    assert_false(tr_policy_match("abc", "abcd", 0));
}

static void evaluation(void **state) {
    tr_policy_set *p = parse(
        "{\"alice\": {\"Version\": \"2012-10-17\", \"Statement\": ["
        "  {\"Effect\": \"Allow\", \"Action\": [\"kinesis:*\"], \"Resource\": [\"" ARN("app-*") "\"]},"
        "  {\"Effect\": \"Allow\", \"Action\": \"kinesis:ListStreams\", \"Resource\": \"*\"},"
        "  {\"Effect\": \"Deny\", \"Action\": \"kinesis:DeleteStream\", \"Resource\": \"*\"}]},"
        " \"bob\": {\"Version\": \"2012-10-17\", \"Statement\": "
        "  {\"Effect\": \"Allow\", \"Action\": \"kinesisvideo:Get*\", \"Resource\": \"*\"}}}");
    assert_non_null(p);
    assert_int_equal(tr_policy_count(p), 2);
    assert_int_equal(tr_policy_evaluate(p, "alice", "kinesis:PutRecord", ARN("app-1")),
                     TR_POLICY_ALLOW);
    assert_int_equal(tr_policy_evaluate(p, "alice", "Kinesis:putrecord", ARN("app-1")),
                     TR_POLICY_ALLOW);
    assert_int_equal(tr_policy_evaluate(p, "alice", "kinesis:PutRecord", ARN("other")),
                     TR_POLICY_IMPLICIT_DENY);
    assert_int_equal(tr_policy_evaluate(p, "alice", "kinesis:ListStreams", "*"), TR_POLICY_ALLOW);
    assert_int_equal(tr_policy_evaluate(p, "alice", "kinesis:DeleteStream", ARN("app-1")),
                     TR_POLICY_EXPLICIT_DENY);
    assert_int_equal(tr_policy_evaluate(p, "bob", "kinesisvideo:GetMedia", "x"), TR_POLICY_ALLOW);
    assert_int_equal(tr_policy_evaluate(p, "bob", "kinesisvideo:PutMedia", "x"),
                     TR_POLICY_IMPLICIT_DENY);
    assert_int_equal(tr_policy_evaluate(p, "carol", "kinesis:ListStreams", "*"),
                     TR_POLICY_IMPLICIT_DENY);
    assert_int_equal(tr_policy_evaluate(NULL, "alice", "kinesis:ListStreams", "*"),
                     TR_POLICY_IMPLICIT_DENY);
    tr_policy_free(p);
}

static void refusals(void **state) {
    char err[300];
    const char *bad[] = {
        "[]",
        "{\"a\": {\"Statement\": [{\"Effect\": \"Permit\", \"Action\": \"*\", \"Resource\": \"*\"}]}}",
        "{\"a\": {\"Statement\": [{\"Effect\": \"Allow\", \"NotAction\": \"x\", \"Resource\": \"*\"}]}}",
        "{\"a\": {\"Statement\": [{\"Effect\": \"Allow\", \"Action\": \"*\", \"Resource\": \"*\","
        " \"Condition\": {}}]}}",
        "{\"a\": {\"Statement\": [{\"Effect\": \"Allow\", \"Action\": [], \"Resource\": \"*\"}]}}",
        "{\"a\": {\"Statement\": [{\"Effect\": \"Allow\", \"Action\": \"*\"}]}}",
        "{\"a\": {\"Version\": \"2020-01-01\", \"Statement\": []}}",
        "{\"a\": ",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_null(tr_policy_parse(bad[i], strlen(bad[i]), err, sizeof err));
        assert_true(err[0] != '\0');
    }
    assert_null(tr_policy_load("/nonexistent/policy.json", err, sizeof err));
    assert_non_null(strstr(err, "cannot open"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(wildcards),
        cmocka_unit_test(evaluation),
        cmocka_unit_test(refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
