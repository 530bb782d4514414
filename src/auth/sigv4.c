/* SigV4 verification: see auth/sigv4.h. */
#include "auth/sigv4.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static int fail(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t err_len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- a growing string ---- */

typedef struct sbuf {
    char *s;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_addn(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *g = realloc(b->s, cap);
        if (g == NULL) {
            b->oom = 1;
            return;
        }
        b->s = g;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_add(sbuf *b, const char *s) { sb_addn(b, s, strlen(s)); }
static void sb_addc(sbuf *b, char c) { sb_addn(b, &c, 1); }

static char *sb_take(sbuf *b) {
    if (b->oom) {
        free(b->s);
        return NULL;
    }
    if (b->s == NULL) return strdup("");
    return b->s;
}

/* RFC 3986 unreserved characters stay; everything else is %XX (uppercase). With keep_slash,
 * '/' stays too (path segments). */
static void uri_encode(sbuf *b, const char *s, size_t n, int keep_slash) {
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
            sb_addc(b, (char)c);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            sb_addn(b, e, 3);
        }
    }
}

/* ---- hashing ---- */

static void to_hex(const uint8_t *d, size_t n, char *out) {
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[2 * n] = '\0';
}

void tr_sigv4_sha256_hex(const void *data, size_t len, char out[TR_SIGV4_HEX_LEN + 1]) {
    uint8_t md[32];
    unsigned int mdlen = 0;
    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    to_hex(md, 32, out);
}

static int hmac(const uint8_t *key, size_t klen, const char *msg, uint8_t out[32]) {
    unsigned int n = 0;
    return HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg), out, &n) ==
                   NULL
               ? -1
               : 0;
}

/* ---- time ---- */

int tr_sigv4_parse_time(const char *d, int64_t *out_s) {
    if (d == NULL || strlen(d) != 16 || d[8] != 'T' || d[15] != 'Z') return -1;
    for (int i = 0; i < 15; i++)
        if (i != 8 && !isdigit((unsigned char)d[i])) return -1;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = (d[0] - '0') * 1000 + (d[1] - '0') * 100 + (d[2] - '0') * 10 + (d[3] - '0') - 1900;
    tm.tm_mon = (d[4] - '0') * 10 + (d[5] - '0') - 1;
    tm.tm_mday = (d[6] - '0') * 10 + (d[7] - '0');
    tm.tm_hour = (d[9] - '0') * 10 + (d[10] - '0');
    tm.tm_min = (d[11] - '0') * 10 + (d[12] - '0');
    tm.tm_sec = (d[13] - '0') * 10 + (d[14] - '0');
    if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60)
        return -1;
    *out_s = (int64_t)timegm(&tm);
    return 0;
}

void tr_sigv4_format_time(int64_t s, char out[17]) {
    time_t t = (time_t)s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

/* ---- the claim ---- */

/* "AK/20150830/us-east-1/service/aws4_request" into the claim. */
static int parse_credential(const char *cred, size_t n, tr_sigv4_claim *out, char *err,
                            size_t err_len) {
    const char *parts[5];
    size_t lens[5];
    int k = 0;
    const char *p = cred, *end = cred + n;
    while (k < 5) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *stop = slash ? slash : end;
        parts[k] = p;
        lens[k] = (size_t)(stop - p);
        k++;
        if (slash == NULL) break;
        p = slash + 1;
    }
    /* The access key itself never contains '/'; a credential with more parts is malformed. */
    if (k != 5 || memchr(parts[4], '/', lens[4]) != NULL || lens[4] != 12 ||
        memcmp(parts[4], "aws4_request", 12) != 0)
        return fail(err, err_len,
                    "Credential should be scoped to a valid region, not ''. Credential should "
                    "be scoped with a valid terminator: 'aws4_request', not '%.*s'.",
                    (int)(k == 5 ? lens[4] : 0), k == 5 ? parts[4] : "");
    if (lens[0] == 0 || lens[0] >= sizeof out->access_key || lens[1] != 8 ||
        lens[2] == 0 || lens[2] >= sizeof out->region || lens[3] == 0 ||
        lens[3] >= sizeof out->service)
        return fail(err, err_len, "Credential must have exactly 5 slash-delimited elements, "
                    "e.g. keyid/date/region/service/term, got '%.*s'", (int)(n < 300 ? n : 300),
                    cred);
    memcpy(out->access_key, parts[0], lens[0]);
    out->access_key[lens[0]] = '\0';
    memcpy(out->scope_date, parts[1], 8);
    out->scope_date[8] = '\0';
    memcpy(out->region, parts[2], lens[2]);
    out->region[lens[2]] = '\0';
    memcpy(out->service, parts[3], lens[3]);
    out->service[lens[3]] = '\0';
    return 0;
}

static int copy_field(char *dst, size_t cap, const char *s, size_t n) {
    if (n >= cap) return -1;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return 0;
}

static int is_hex_sig(const char *s) {
    if (strlen(s) != TR_SIGV4_HEX_LEN) return 0;
    for (const char *p = s; *p; p++)
        if (!isxdigit((unsigned char)*p)) return 0;
    return 1;
}

int tr_sigv4_parse_header(const char *value, tr_sigv4_claim *out, char *err, size_t err_len) {
    memset(out, 0, sizeof *out);
    size_t alg = strlen(TR_SIGV4_ALGORITHM);
    while (*value == ' ') value++;
    if (strncmp(value, TR_SIGV4_ALGORITHM, alg) != 0 || value[alg] != ' ')
        return fail(err, err_len, "Authorization header requires 'Credential' parameter. "
                    "Authorization header requires 'Signature' parameter. Authorization header "
                    "requires 'SignedHeaders' parameter. Only the AWS4-HMAC-SHA256 algorithm "
                    "is supported.");
    int have_cred = 0, have_signed = 0, have_sig = 0;
    const char *p = value + alg;
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        if (*p == '\0') break;
        const char *eq = strchr(p, '=');
        if (eq == NULL) break;
        const char *stop = eq + 1;
        while (*stop && *stop != ',') stop++;
        size_t klen = (size_t)(eq - p), vlen = (size_t)(stop - eq - 1);
        const char *v = eq + 1;
        while (vlen > 0 && v[vlen - 1] == ' ') vlen--;
        if (klen == 10 && memcmp(p, "Credential", 10) == 0) {
            if (parse_credential(v, vlen, out, err, err_len) != 0) return -1;
            have_cred = 1;
        } else if (klen == 13 && memcmp(p, "SignedHeaders", 13) == 0) {
            if (copy_field(out->signed_headers, sizeof out->signed_headers, v, vlen) != 0)
                return fail(err, err_len, "SignedHeaders is too long");
            have_signed = vlen > 0;
        } else if (klen == 9 && memcmp(p, "Signature", 9) == 0) {
            if (copy_field(out->signature, sizeof out->signature, v, vlen) != 0) vlen = 0;
            have_sig = vlen > 0;
        }
        p = stop;
    }
    if (!have_cred || !have_signed || !have_sig) {
        char msg[400] = "";
        if (!have_cred) strcat(msg, "Authorization header requires 'Credential' parameter. ");
        if (!have_sig) strcat(msg, "Authorization header requires 'Signature' parameter. ");
        if (!have_signed)
            strcat(msg, "Authorization header requires 'SignedHeaders' parameter. ");
        size_t n = strlen(msg);
        if (n > 0) msg[n - 1] = '\0';
        return fail(err, err_len, "%s", msg);
    }
    return 0;
}

/* The value of the first query parameter named name (n bytes into *len), or NULL. */
static const char *query_param(const char *query, const char *name, size_t *len) {
    size_t nlen = strlen(name);
    const char *p = query;
    while (p != NULL && *p) {
        const char *amp = strchr(p, '&');
        size_t plen = amp ? (size_t)(amp - p) : strlen(p);
        if (plen >= nlen && memcmp(p, name, nlen) == 0 && (plen == nlen || p[nlen] == '=')) {
            const char *v = plen == nlen ? p + nlen : p + nlen + 1;
            *len = plen == nlen ? 0 : plen - nlen - 1;
            return v;
        }
        p = amp ? amp + 1 : NULL;
    }
    return NULL;
}

int tr_sigv4_query_is_presigned(const char *query) {
    size_t n;
    return query != NULL && (query_param(query, "X-Amz-Algorithm", &n) != NULL ||
                             query_param(query, "X-Amz-Credential", &n) != NULL ||
                             query_param(query, "X-Amz-Signature", &n) != NULL);
}

int tr_sigv4_parse_query(const char *query, tr_sigv4_claim *out, char *err, size_t err_len) {
    memset(out, 0, sizeof *out);
    out->presigned = 1;
    size_t alen, clen, dlen, elen, hlen, slen;
    const char *alg = query_param(query, "X-Amz-Algorithm", &alen);
    const char *cred = query_param(query, "X-Amz-Credential", &clen);
    const char *date = query_param(query, "X-Amz-Date", &dlen);
    const char *exp = query_param(query, "X-Amz-Expires", &elen);
    const char *hdrs = query_param(query, "X-Amz-SignedHeaders", &hlen);
    const char *sig = query_param(query, "X-Amz-Signature", &slen);
    if (alg == NULL || cred == NULL || date == NULL || hdrs == NULL || sig == NULL)
        return fail(err, err_len, "AWS query-string parameters must include 'X-Amz-Algorithm', "
                    "'X-Amz-Credential', 'X-Amz-Signature', 'X-Amz-Date', "
                    "'X-Amz-SignedHeaders', and 'X-Amz-Expires'.");
    if (alen != strlen(TR_SIGV4_ALGORITHM) || memcmp(alg, TR_SIGV4_ALGORITHM, alen) != 0)
        return fail(err, err_len, "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"");
    if (parse_credential(cred, clen, out, err, err_len) != 0) return -1;
    if (copy_field(out->amz_date, sizeof out->amz_date, date, dlen) != 0) out->amz_date[0] = '\0';
    if (copy_field(out->signed_headers, sizeof out->signed_headers, hdrs, hlen) != 0 ||
        copy_field(out->signature, sizeof out->signature, sig, slen) != 0)
        return fail(err, err_len, "X-Amz-SignedHeaders or X-Amz-Signature is malformed");
    out->expires_s = 0;
    if (exp != NULL) {
        char num[24];
        if (elen == 0 || copy_field(num, sizeof num, exp, elen) != 0)
            return fail(err, err_len, "X-Amz-Expires should be a number");
        char *end;
        long long v = strtoll(num, &end, 10);
        if (*end != '\0' || v < 0) return fail(err, err_len, "X-Amz-Expires should be a number");
        if (v > TR_SIGV4_MAX_EXPIRES_S)
            return fail(err, err_len, "X-Amz-Expires must be less than a week (in seconds) that "
                        "is 604800");
        out->expires_s = v;
    } else {
        out->expires_s = 15 * 60;
    }
    return 0;
}

/* ---- the canonical request ---- */

/* Each path segment URI-encoded `times` times; '/' kept. An empty path is "/". */
static void canonical_uri(sbuf *b, const char *path, int times) {
    if (path == NULL || *path == '\0') {
        sb_add(b, "/");
        return;
    }
    char *cur = strdup(path);
    for (int i = 0; i < times && cur != NULL; i++) {
        sbuf t = {0};
        uri_encode(&t, cur, strlen(cur), 1);
        free(cur);
        cur = sb_take(&t);
    }
    if (cur == NULL) {
        b->oom = 1;
        return;
    }
    sb_add(b, cur);
    free(cur);
}

typedef struct qpair {
    char *name, *value; /* encoded */
} qpair;

static int qpair_cmp(const void *a, const void *b) {
    const qpair *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c != 0 ? c : strcmp(x->value, y->value);
}

static void canonical_query(sbuf *b, const char *query, int presigned) {
    if (query == NULL || *query == '\0') return;
    size_t n = 1;
    for (const char *p = query; *p; p++) n += *p == '&';
    qpair *v = calloc(n, sizeof *v);
    if (v == NULL) {
        b->oom = 1;
        return;
    }
    size_t k = 0;
    const char *p = query;
    while (p != NULL) {
        const char *amp = strchr(p, '&');
        size_t plen = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', plen);
        size_t nlen = eq ? (size_t)(eq - p) : plen;
        int skip = plen == 0 || (presigned && nlen == 15 && memcmp(p, "X-Amz-Signature", 15) == 0);
        if (!skip) {
            sbuf nb = {0}, vb = {0};
            uri_encode(&nb, p, nlen, 0);
            if (eq) uri_encode(&vb, eq + 1, plen - nlen - 1, 0);
            v[k].name = sb_take(&nb);
            v[k].value = sb_take(&vb);
            if (v[k].name == NULL || v[k].value == NULL) b->oom = 1;
            k++;
        }
        p = amp ? amp + 1 : NULL;
    }
    if (!b->oom) qsort(v, k, sizeof *v, qpair_cmp);
    for (size_t i = 0; i < k; i++) {
        if (!b->oom) {
            if (i > 0) sb_addc(b, '&');
            sb_add(b, v[i].name);
            sb_addc(b, '=');
            sb_add(b, v[i].value);
        }
        free(v[i].name);
        free(v[i].value);
    }
    free(v);
}

/* A header value trimmed, with runs of spaces inside folded into one (AWS's Trimall). */
static void add_trimmed(sbuf *b, const char *v) {
    while (*v == ' ' || *v == '\t') v++;
    int space = 0;
    for (; *v; v++) {
        if (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n') {
            space = 1;
            continue;
        }
        if (space) sb_addc(b, ' ');
        space = 0;
        sb_addc(b, *v);
    }
}

static void canonical_headers(sbuf *b, const tr_sigv4_request *r, const char *signed_headers) {
    const char *p = signed_headers;
    char name[256];
    while (*p) {
        const char *semi = strchr(p, ';');
        size_t n = semi ? (size_t)(semi - p) : strlen(p);
        if (n > 0 && n < sizeof name) {
            for (size_t i = 0; i < n; i++) name[i] = (char)tolower((unsigned char)p[i]);
            name[n] = '\0';
            const char *v = r->header(r->header_ctx, name);
            /* HTTP/2 carries the host in :authority. */
            if (v == NULL && strcmp(name, "host") == 0) v = r->header(r->header_ctx, ":authority");
            sb_add(b, name);
            sb_addc(b, ':');
            if (v != NULL) add_trimmed(b, v);
            sb_addc(b, '\n');
        }
        if (semi == NULL) break;
        p = semi + 1;
    }
}

char *tr_sigv4_canonical_request(const tr_sigv4_request *r, const tr_sigv4_claim *claim) {
    sbuf b = {0};
    sb_add(&b, r->method);
    sb_addc(&b, '\n');
    canonical_uri(&b, r->path, r->path_encodings > 0 ? r->path_encodings : 1);
    sb_addc(&b, '\n');
    canonical_query(&b, r->query, claim->presigned);
    sb_addc(&b, '\n');
    canonical_headers(&b, r, claim->signed_headers);
    sb_addc(&b, '\n');
    sb_add(&b, claim->signed_headers);
    sb_addc(&b, '\n');
    sb_add(&b, r->payload_hash);
    return sb_take(&b);
}

char *tr_sigv4_string_to_sign(const char *amz_date, const tr_sigv4_claim *claim,
                              const char *canonical) {
    char hash[TR_SIGV4_HEX_LEN + 1];
    tr_sigv4_sha256_hex(canonical, strlen(canonical), hash);
    sbuf b = {0};
    sb_add(&b, TR_SIGV4_ALGORITHM "\n");
    sb_add(&b, amz_date);
    sb_addc(&b, '\n');
    sb_add(&b, claim->scope_date);
    sb_addc(&b, '/');
    sb_add(&b, claim->region);
    sb_addc(&b, '/');
    sb_add(&b, claim->service);
    sb_add(&b, "/aws4_request\n");
    sb_add(&b, hash);
    return sb_take(&b);
}

int tr_sigv4_sign(const char *secret, const tr_sigv4_claim *claim, const char *string_to_sign,
                  char out[TR_SIGV4_HEX_LEN + 1]) {
    size_t slen = strlen(secret);
    uint8_t *k0 = malloc(slen + 4);
    if (k0 == NULL) return -1;
    memcpy(k0, "AWS4", 4);
    memcpy(k0 + 4, secret, slen);
    uint8_t kd[32], kr[32], ks[32], kk[32], sig[32];
    int rc = hmac(k0, slen + 4, claim->scope_date, kd) | hmac(kd, 32, claim->region, kr) |
             hmac(kr, 32, claim->service, ks) | hmac(ks, 32, "aws4_request", kk) |
             hmac(kk, 32, string_to_sign, sig);
    OPENSSL_cleanse(k0, slen + 4);
    free(k0);
    OPENSSL_cleanse(kd, sizeof kd);
    OPENSSL_cleanse(kr, sizeof kr);
    OPENSSL_cleanse(ks, sizeof ks);
    OPENSSL_cleanse(kk, sizeof kk);
    if (rc != 0) return -1;
    to_hex(sig, 32, out);
    return 0;
}

int tr_sigv4_verify(const char *secret, const tr_sigv4_request *r, const tr_sigv4_claim *claim,
                    const char *amz_date) {
    char *canonical = tr_sigv4_canonical_request(r, claim);
    char *sts = canonical ? tr_sigv4_string_to_sign(amz_date, claim, canonical) : NULL;
    char want[TR_SIGV4_HEX_LEN + 1];
    int rc = sts != NULL && tr_sigv4_sign(secret, claim, sts, want) == 0 ? 0 : -1;
    free(canonical);
    free(sts);
    if (rc != 0) return -1;
    char got[TR_SIGV4_HEX_LEN + 1];
    if (!is_hex_sig(claim->signature)) return 0;
    for (int i = 0; i <= TR_SIGV4_HEX_LEN; i++)
        got[i] = (char)tolower((unsigned char)claim->signature[i]);
    return CRYPTO_memcmp(got, want, TR_SIGV4_HEX_LEN) == 0 ? 1 : 0;
}
