/* Credentials, policies and the server's authentication hooks: see auth/auth.h. */
#include "auth/auth.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth/policy.h"
#include "auth/sigv4.h"
#include "net/http.h"
#include "util/error.h"
#include "util/log.h"

#define SKEW_S (5 * 60)            /* AWS's clock skew limit for signed headers */
#define PRESIGNED_AHEAD_S (15 * 60) /* a presigned URL may be dated this far ahead */

typedef struct cred {
    char *key_id, *secret, *principal;
} cred;

typedef struct cred_table {
    cred *v;
    size_t n;
} cred_table;

struct tr_auth {
    char *cred_path, *policy_path;
    pthread_rwlock_t lock;
    cred_table creds;          /* under lock */
    tr_policy_set *policies;   /* under lock; NULL: everything denied */
};

static int fail(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t err_len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- the credentials file ---- */

static void creds_free(cred_table *t) {
    for (size_t i = 0; i < t->n; i++) {
        if (t->v[i].secret != NULL) OPENSSL_cleanse(t->v[i].secret, strlen(t->v[i].secret));
        free(t->v[i].key_id);
        free(t->v[i].secret);
        free(t->v[i].principal);
    }
    free(t->v);
    t->v = NULL;
    t->n = 0;
}

/* One line: three fields separated by blanks. Returns 1 added, 0 blank, -1 malformed. */
static int parse_cred_line(char *line, cred_table *t, size_t *cap, const char *path, int lineno,
                           char *err, size_t err_len) {
    char *hash = strchr(line, '#');
    if (hash != NULL) *hash = '\0';
    char *save = NULL;
    char *f[4];
    int n = 0;
    for (char *tok = strtok_r(line, " \t\r\n", &save); tok != NULL && n < 4;
         tok = strtok_r(NULL, " \t\r\n", &save))
        f[n++] = tok;
    if (n == 0) return 0;
    if (n != 3)
        return fail(err, err_len, "%s:%d: expected 'access_key_id secret_access_key principal'",
                    path, lineno);
    if (strlen(f[0]) > 128 || strlen(f[2]) > 127 || strchr(f[0], '/') != NULL)
        return fail(err, err_len, "%s:%d: access key id (at most 128 characters, no '/') or "
                    "principal (at most 127) too long", path, lineno);
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->v[i].key_id, f[0]) == 0)
            return fail(err, err_len, "%s:%d: access key id %s appears twice", path, lineno,
                        f[0]);
    if (t->n == *cap) {
        size_t c = *cap ? *cap * 2 : 8;
        cred *g = realloc(t->v, c * sizeof *g);
        if (g == NULL) return fail(err, err_len, "out of memory");
        t->v = g;
        *cap = c;
    }
    cred *c = &t->v[t->n];
    c->key_id = strdup(f[0]);
    c->secret = strdup(f[1]);
    c->principal = strdup(f[2]);
    t->n++;
    OPENSSL_cleanse(f[1], strlen(f[1]));
    if (c->key_id == NULL || c->secret == NULL || c->principal == NULL)
        return fail(err, err_len, "out of memory");
    return 1;
}

static int load_creds(const char *path, cred_table *out, char *err, size_t err_len) {
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(err, err_len, "credentials file %s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return fail(err, err_len, "credentials file %s is not a regular file", path);
    }
    if ((st.st_mode & 077) != 0) {
        close(fd);
        return fail(err, err_len, "credentials file %s is readable by group or others (mode "
                    "%04o): it holds secret keys; chmod 600 %s", path,
                    (unsigned)(st.st_mode & 07777), path);
    }
    FILE *f = fdopen(fd, "r");
    if (f == NULL) {
        close(fd);
        return fail(err, err_len, "credentials file %s: %s", path, strerror(errno));
    }
    char line[1024];
    int lineno = 0, rc = 0;
    size_t cap = 0;
    while (rc == 0 && fgets(line, sizeof line, f) != NULL) {
        lineno++;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            rc = fail(err, err_len, "%s:%d: line too long", path, lineno);
            break;
        }
        if (parse_cred_line(line, out, &cap, path, lineno, err, err_len) < 0) rc = -1;
    }
    OPENSSL_cleanse(line, sizeof line);
    if (rc == 0 && ferror(f)) rc = fail(err, err_len, "%s: read error", path);
    fclose(f);
    if (rc != 0) creds_free(out);
    return rc;
}

/* ---- open, reload ---- */

static int load_all(const char *cred_path, const char *policy_path, cred_table *creds,
                    tr_policy_set **policies, char *err, size_t err_len) {
    *policies = NULL;
    if (load_creds(cred_path, creds, err, err_len) != 0) return -1;
    if (policy_path != NULL && policy_path[0] != '\0') {
        *policies = tr_policy_load(policy_path, err, err_len);
        if (*policies == NULL) {
            creds_free(creds);
            return -1;
        }
    }
    return 0;
}

int tr_auth_open(const char *credentials_path, const char *policy_path, tr_auth **out,
                 char *err, size_t err_len) {
    *out = NULL;
    tr_auth *a = calloc(1, sizeof *a);
    if (a == NULL) return fail(err, err_len, "out of memory");
    a->cred_path = strdup(credentials_path);
    a->policy_path = strdup(policy_path ? policy_path : "");
    if (a->cred_path == NULL || a->policy_path == NULL ||
        pthread_rwlock_init(&a->lock, NULL) != 0) {
        free(a->cred_path);
        free(a->policy_path);
        free(a);
        return fail(err, err_len, "out of memory");
    }
    if (load_all(a->cred_path, a->policy_path, &a->creds, &a->policies, err, err_len) != 0) {
        tr_auth_free(a);
        return -1;
    }
    *out = a;
    return 0;
}

void tr_auth_free(tr_auth *a) {
    if (a == NULL) return;
    creds_free(&a->creds);
    tr_policy_free(a->policies);
    pthread_rwlock_destroy(&a->lock);
    free(a->cred_path);
    free(a->policy_path);
    free(a);
}

int tr_auth_reload(tr_auth *a, char *err, size_t err_len) {
    cred_table creds;
    tr_policy_set *policies;
    if (load_all(a->cred_path, a->policy_path, &creds, &policies, err, err_len) != 0) return -1;
    pthread_rwlock_wrlock(&a->lock);
    cred_table old_creds = a->creds;
    tr_policy_set *old_policies = a->policies;
    a->creds = creds;
    a->policies = policies;
    pthread_rwlock_unlock(&a->lock);
    creds_free(&old_creds);
    tr_policy_free(old_policies);
    return 0;
}

size_t tr_auth_key_count(tr_auth *a) {
    pthread_rwlock_rdlock(&a->lock);
    size_t n = a->creds.n;
    pthread_rwlock_unlock(&a->lock);
    return n;
}

size_t tr_auth_policy_count(tr_auth *a) {
    pthread_rwlock_rdlock(&a->lock);
    size_t n = tr_policy_count(a->policies);
    pthread_rwlock_unlock(&a->lock);
    return n;
}

/* ---- authentication ---- */

static tr_auth_verdict deny(tr_auth_error *e, int status, const char *type, const char *fmt,
                            ...) __attribute__((format(printf, 4, 5)));

static tr_auth_verdict deny(tr_auth_error *e, int status, const char *type, const char *fmt,
                            ...) {
    e->status = status;
    snprintf(e->type, sizeof e->type, "%s", type);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return TR_AUTH_DENY;
}

/* The service a request's credential must be scoped to. */
static const char *expected_service(tr_req *req) {
    const char *t = tr_req_target(req);
    if (t == NULL) return "kinesisvideo";
    if (strncmp(t, "TrentService.", 13) == 0) return "kms";
    if (strncmp(t, "Firehose_", 9) == 0) return "firehose";
    return "kinesis";
}

static const char *req_header(void *ctx, const char *name) { return tr_req_header(ctx, name); }

/* Copies the key's secret and principal out of the table. 0 found, -1 unknown. */
static int find_key(tr_auth *a, const char *key_id, char *secret, size_t slen, char *principal,
                    size_t plen) {
    int rc = -1;
    pthread_rwlock_rdlock(&a->lock);
    for (size_t i = 0; i < a->creds.n; i++) {
        if (strcmp(a->creds.v[i].key_id, key_id) == 0) {
            snprintf(secret, slen, "%s", a->creds.v[i].secret);
            snprintf(principal, plen, "%s", a->creds.v[i].principal);
            rc = 0;
            break;
        }
    }
    pthread_rwlock_unlock(&a->lock);
    return rc;
}

/* The request's date against the clock: 0 in the window, else a denial in e. */
static int check_time(const tr_sigv4_claim *claim, const char *amz_date, int64_t t,
                      long long now_s, int status, tr_auth_error *e) {
    char now_txt[17], edge[17];
    tr_sigv4_format_time(now_s, now_txt);
    if (claim->presigned) {
        if (now_s > t + claim->expires_s) {
            tr_sigv4_format_time(now_s - claim->expires_s, edge);
            deny(e, status, "InvalidSignatureException",
                 "Signature expired: %s is now earlier than %s (%s - %lld sec.)", amz_date, edge,
                 now_txt, (long long)claim->expires_s);
            return -1;
        }
        if (t > now_s + PRESIGNED_AHEAD_S) {
            tr_sigv4_format_time(now_s + PRESIGNED_AHEAD_S, edge);
            deny(e, status, "InvalidSignatureException",
                 "Signature not yet current: %s is still later than %s (%s + 15 min.)", amz_date,
                 edge, now_txt);
            return -1;
        }
        return 0;
    }
    if (t < now_s - SKEW_S) {
        tr_sigv4_format_time(now_s - SKEW_S, edge);
        deny(e, status, "InvalidSignatureException",
             "Signature expired: %s is now earlier than %s (%s - 5 min.)", amz_date, edge,
             now_txt);
        return -1;
    }
    if (t > now_s + SKEW_S) {
        tr_sigv4_format_time(now_s + SKEW_S, edge);
        deny(e, status, "InvalidSignatureException",
             "Signature not yet current: %s is still later than %s (%s + 5 min.)", amz_date, edge,
             now_txt);
        return -1;
    }
    return 0;
}

tr_auth_verdict tr_auth_check(tr_auth *a, tr_req *req, tr_auth_phase phase, int body_follows,
                              const void *body, size_t len, long long now_s, tr_auth_error *e) {
    /* JSON 1.1 services (Kinesis) answer these with 400, REST-JSON ones (Video) with 403. */
    int json = tr_req_target(req) != NULL;
    int status = json ? 400 : 403;
    const char *header = tr_req_header(req, "authorization");
    const char *query = tr_req_query(req);
    tr_sigv4_claim claim;
    char msg[512];
    if (header != NULL) {
        if (tr_sigv4_parse_header(header, &claim, msg, sizeof msg) != 0)
            return deny(e, 400, "IncompleteSignatureException", "%s", msg);
    } else if (tr_sigv4_query_is_presigned(query)) {
        if (tr_sigv4_parse_query(query, &claim, msg, sizeof msg) != 0)
            return deny(e, 400, "IncompleteSignatureException", "%s", msg);
    } else {
        return deny(e, 403, "MissingAuthenticationTokenException",
                    "Missing Authentication Token");
    }
    char secret[1024], principal[128];
    if (find_key(a, claim.access_key, secret, sizeof secret, principal, sizeof principal) != 0)
        return deny(e, status, "UnrecognizedClientException",
                    "The security token included in the request is invalid.");
    tr_auth_verdict verdict = TR_AUTH_DENY;
    const char *want_service = expected_service(req);
    const char *amz_date = claim.presigned ? claim.amz_date : tr_req_header(req, "x-amz-date");
    int64_t t = 0;
    const char *hash = tr_req_header(req, "x-amz-content-sha256");
    char computed[TR_SIGV4_HEX_LEN + 1];
    if (strcmp(claim.service, want_service) != 0) {
        deny(e, status, "InvalidSignatureException",
             "Credential should be scoped to correct service: '%s'. ", want_service);
        goto out;
    }
    if (amz_date == NULL || amz_date[0] == '\0') {
        deny(e, 400, "IncompleteSignatureException",
             "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' "
             "header.");
        goto out;
    }
    if (tr_sigv4_parse_time(amz_date, &t) != 0) {
        deny(e, 400, "IncompleteSignatureException",
             "X-Amz-Date must be in the ISO 8601 form YYYYMMDD'T'HHMMSS'Z', got '%.40s'",
             amz_date);
        goto out;
    }
    if (strncmp(amz_date, claim.scope_date, 8) != 0) {
        deny(e, status, "InvalidSignatureException",
             "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
             "from HTTP: '%s' != '%.8s', from '%s'.",
             claim.scope_date, amz_date, amz_date);
        goto out;
    }
    if (check_time(&claim, amz_date, t, now_s, status, e) != 0) goto out;

    const char *payload;
    if (claim.presigned) {
        payload = hash != NULL ? hash : TR_SIGV4_UNSIGNED;
    } else if (hash != NULL && (strcmp(hash, TR_SIGV4_UNSIGNED) == 0 ||
                                strcmp(hash, TR_SIGV4_STREAMING) == 0)) {
        payload = hash; /* the body is not covered (STREAMING: the seed signature only) */
    } else if (phase == TR_AUTH_HEADERS && body_follows) {
        verdict = TR_AUTH_NEED_BODY;
        goto out;
    } else {
        tr_sigv4_sha256_hex(body ? body : "", body ? len : 0, computed);
        if (hash != NULL && strcasecmp(hash, computed) != 0) {
            deny(e, status, "InvalidSignatureException",
                 "The provided 'x-amz-content-sha256' header does not match what was computed.");
            goto out;
        }
        payload = computed;
    }
    tr_sigv4_request r = {.method = tr_req_method(req),
                          .path = tr_req_path(req),
                          .path_encodings = 2,
                          .query = query,
                          .header = req_header,
                          .header_ctx = req,
                          .payload_hash = payload};
    int ok = tr_sigv4_verify(secret, &r, &claim, amz_date);
    if (ok == 0 && claim.presigned && hash == NULL) {
        /* A presigned URL covers no body: signers use UNSIGNED-PAYLOAD, or (botocore for
         * JSON services, which moves the parameters into the query) the empty payload. */
        tr_sigv4_sha256_hex("", 0, computed);
        r.payload_hash = computed;
        ok = tr_sigv4_verify(secret, &r, &claim, amz_date);
    }
    if (ok < 0) {
        deny(e, 500, "InternalFailure", "The request could not be authenticated");
    } else if (ok == 0) {
        deny(e, status, "InvalidSignatureException",
             "The request signature we calculated does not match the signature you provided. "
             "Check your AWS Secret Access Key and signing method. Consult the service "
             "documentation for details.");
    } else {
        tr_req_set_principal(req, principal);
        verdict = TR_AUTH_ALLOW;
    }
out:
    OPENSSL_cleanse(secret, sizeof secret);
    return verdict;
}

/* ---- the server's hooks ---- */

static tr_auth_verdict authenticate(void *ctx, tr_req *req, tr_auth_phase phase,
                                    int body_follows, const uint8_t *body, size_t len,
                                    tr_auth_error *err) {
    return tr_auth_check(ctx, req, phase, body_follows, body, len, (long long)time(NULL), err);
}

static int authorize(void *ctx, const char *principal, const char *action,
                     const char *resource) {
    tr_auth *a = ctx;
    pthread_rwlock_rdlock(&a->lock);
    tr_policy_decision d = tr_policy_evaluate(a->policies, principal, action, resource);
    pthread_rwlock_unlock(&a->lock);
    return d == TR_POLICY_ALLOW;
}

static void reload(void *ctx) {
    tr_auth *a = ctx;
    char err[1200];
    if (tr_auth_reload(a, err, sizeof err) != 0) {
        tr_error("msg=\"reload of credentials or policies failed; keeping the loaded ones\" "
                 "error=\"%s\"", err);
        return;
    }
    tr_info("msg=\"credentials and policies reloaded\" keys=%zu principals_with_policies=%zu",
            tr_auth_key_count(a), tr_auth_policy_count(a));
}

int tr_auth_install(tr_auth *a, tr_server *srv) {
    tr_server_set_authenticator(srv, authenticate, a);
    tr_server_set_authorizer(srv, authorize, a);
    return tr_server_on_reload(srv, reload, a);
}
