/* AWS Signature Version 4 (SigV4), the verifying side: parse the Authorization header or a
 * presigned URL's query, build the canonical request and the string to sign exactly as AWS
 * defines them, derive the signing key and compute the signature. Pure: no sockets, no
 * clock, no credentials store; auth/auth.c applies it to requests.
 *
 *   canonical request = METHOD \n URI \n QUERY \n name:value\n... \n signed;headers \n hash
 *   string to sign    = AWS4-HMAC-SHA256 \n 20150830T123600Z \n
 *                       20150830/us-east-1/service/aws4_request \n hex(sha256(canonical))
 *   signing key       = HMAC(HMAC(HMAC(HMAC("AWS4" secret, date), region), service),
 *                       "aws4_request")
 *
 * Strings in and out are NUL-terminated text; secrets are never copied into a message. */
#ifndef TR_AUTH_SIGV4_H
#define TR_AUTH_SIGV4_H

#include <stddef.h>
#include <stdint.h>

#define TR_SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
#define TR_SIGV4_UNSIGNED "UNSIGNED-PAYLOAD"
#define TR_SIGV4_STREAMING "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
#define TR_SIGV4_HEX_LEN 64
#define TR_SIGV4_MAX_EXPIRES_S (7 * 24 * 3600) /* a presigned URL lives at most a week */

/* What the client claims: from `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=
 * ..., Signature=...` or from the X-Amz-* parameters of a presigned URL. */
typedef struct tr_sigv4_claim {
    int presigned;              /* from the query string */
    char access_key[129];
    char scope_date[9];         /* YYYYMMDD */
    char region[64];
    char service[64];
    char signed_headers[1024];  /* "host;x-amz-date", lowercase, ';'-separated */
    char signature[TR_SIGV4_HEX_LEN + 1];
    char amz_date[17];          /* presigned: X-Amz-Date (YYYYMMDDTHHMMSSZ); else "" */
    int64_t expires_s;          /* presigned: X-Amz-Expires; else 0 */
} tr_sigv4_claim;

/* Parses an Authorization header value. Returns 0, or -1 with AWS's message for an
 * IncompleteSignatureException in err (a header of another scheme says so too). */
int tr_sigv4_parse_header(const char *value, tr_sigv4_claim *out, char *err, size_t err_len);

/* Whether a query string ('&'-joined, %-decoded as the net layer hands it) carries a
 * presigned signature (X-Amz-Algorithm, X-Amz-Credential or X-Amz-Signature). */
int tr_sigv4_query_is_presigned(const char *query);
/* Parses the presigned parameters of a query. Returns 0, or -1 with a message in err. */
int tr_sigv4_parse_query(const char *query, tr_sigv4_claim *out, char *err, size_t err_len);

/* A header's value by lowercase name, or NULL. */
typedef const char *(*tr_sigv4_header_fn)(void *ctx, const char *name);

typedef struct tr_sigv4_request {
    const char *method;         /* "POST" */
    const char *path;           /* %-decoded, as the net layer hands it: "/createStream" */
    int path_encodings;         /* URI-encodings of each path segment: 2 for AWS services
                                 * other than S3 (the client's encoding, then the signer's);
                                 * 1 for the path as the test suite writes it */
    const char *query;          /* '&'-joined name=value pairs, %-decoded; "" when none */
    tr_sigv4_header_fn header;  /* header lookup */
    void *header_ctx;
    const char *payload_hash;   /* hex SHA-256 of the body, or UNSIGNED-PAYLOAD, or
                                 * STREAMING-AWS4-HMAC-SHA256-PAYLOAD */
} tr_sigv4_request;

/* The canonical request (malloc'd: the caller frees) for the claim's signed headers; a
 * presigned claim leaves X-Amz-Signature out of the canonical query. NULL when out of
 * memory. */
char *tr_sigv4_canonical_request(const tr_sigv4_request *r, const tr_sigv4_claim *claim);

/* The string to sign for a canonical request (malloc'd), signed at amz_date. */
char *tr_sigv4_string_to_sign(const char *amz_date, const tr_sigv4_claim *claim,
                              const char *canonical);

/* The hex signature of string_to_sign with the key derived from secret and the claim's
 * scope. Returns 0 or -1 (OpenSSL failed). */
int tr_sigv4_sign(const char *secret, const tr_sigv4_claim *claim, const char *string_to_sign,
                  char out[TR_SIGV4_HEX_LEN + 1]);

/* Canonical request, string to sign and signature in one: whether claim->signature is the
 * signature of the request (constant-time comparison). 1 match, 0 mismatch, -1 out of
 * memory. */
int tr_sigv4_verify(const char *secret, const tr_sigv4_request *r, const tr_sigv4_claim *claim,
                    const char *amz_date);

/* Hex SHA-256 of data. */
void tr_sigv4_sha256_hex(const void *data, size_t len, char out[TR_SIGV4_HEX_LEN + 1]);

/* "YYYYMMDDTHHMMSSZ" to seconds since the epoch (UTC). Returns 0 or -1. */
int tr_sigv4_parse_time(const char *amz_date, int64_t *out_s);
/* Seconds since the epoch to "YYYYMMDDTHHMMSSZ". */
void tr_sigv4_format_time(int64_t s, char out[17]);

#endif
