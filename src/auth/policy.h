/* Policies per principal in IAM's JSON form, and their evaluation:
 *
 *   {"alice": {"Version": "2012-10-17",
 *              "Statement": [{"Effect": "Allow", "Action": ["kinesis:*"],
 *                             "Resource": ["arn:aws:kinesis:us-east-1:000000000000:stream/app-*"]},
 *                            {"Effect": "Deny", "Action": "kinesis:DeleteStream",
 *                             "Resource": "*"}]}}
 *
 * Evaluation as IAM does it for identity policies: an explicit Deny that matches wins, else an
 * Allow that matches allows, else the request is denied (implicitly). Action and Resource take
 * a string or an array of strings; `*` matches any run of characters and `?` any one. Actions
 * compare without regard to case (service prefix and action name), resources exactly.
 * Anything else in a statement (NotAction, NotResource, Condition, Principal) is refused at
 * load: a policy read differently from what it says would be worse than none. Pure: no I/O
 * except tr_policy_load. */
#ifndef TR_AUTH_POLICY_H
#define TR_AUTH_POLICY_H

#include <stddef.h>

typedef struct tr_policy_set tr_policy_set;

typedef enum {
    TR_POLICY_IMPLICIT_DENY = 0, /* no statement matched */
    TR_POLICY_ALLOW = 1,
    TR_POLICY_EXPLICIT_DENY = 2,
} tr_policy_decision;

/* Parses a policy document set (the JSON above). Returns the set (free with tr_policy_free)
 * or NULL with a message in err. */
tr_policy_set *tr_policy_parse(const char *json, size_t len, char *err, size_t err_len);
/* Reads and parses a file. NULL with "path: message" in err. */
tr_policy_set *tr_policy_load(const char *path, char *err, size_t err_len);
void tr_policy_free(tr_policy_set *p);

/* The decision for principal doing action ("kinesis:PutRecord") on resource (an ARN or "*").
 * A principal without a policy is denied. set may be NULL (everything denied). */
tr_policy_decision tr_policy_evaluate(const tr_policy_set *set, const char *principal,
                                      const char *action, const char *resource);

/* Wildcard match of the whole text: '*' any run (also empty), '?' one character. */
int tr_policy_match(const char *pattern, const char *text, int ignore_case);

/* How many principals the set names. */
size_t tr_policy_count(const tr_policy_set *p);

#endif
