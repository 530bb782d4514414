#include "util/selfcert.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* snprintf into err, then -1. */
#define FAIL(err, len, ...) (snprintf((err), (len), __VA_ARGS__), -1)

static int fail_ssl(char *err, size_t len, const char *what) {
    char e[256] = "unknown error";
    unsigned long code = ERR_peek_last_error();
    if (code != 0) ERR_error_string_n(code, e, sizeof e);
    ERR_clear_error();
    snprintf(err, len, "%s: %s", what, e);
    return -1;
}

static int is_ip(const char *h) {
    unsigned char buf[16];
    return inet_pton(AF_INET, h, buf) == 1 || inet_pton(AF_INET6, h, buf) == 1;
}

/* A DNS name as a SAN may hold it: letters, digits, '-', '.', a leading "*." wildcard. */
static int is_dns_name(const char *h) {
    size_t n = strlen(h);
    if (n == 0 || n > 253) return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = h[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '-' || ch == '.' || (ch == '*' && i == 0 && h[1] == '.');
        if (!ok) return 0;
    }
    return 1;
}

/* "DNS:localhost,IP:127.0.0.1,IP:::1,..." (validated names only: no ',' can get in). */
static int san_value(const tr_selfcert_opts *o, char *out, size_t len, char *err,
                     size_t err_len) {
    int n = snprintf(out, len, "DNS:localhost,IP:127.0.0.1,IP:::1");
    for (int i = 0; i < o->nhosts; i++) {
        const char *h = o->hosts[i];
        if (strcmp(h, "localhost") == 0 || strcmp(h, "127.0.0.1") == 0 || strcmp(h, "::1") == 0)
            continue;
        const char *kind = is_ip(h) ? "IP" : is_dns_name(h) ? "DNS" : NULL;
        if (kind == NULL) return FAIL(err, err_len, "not a host name or IP address: '%s'", h);
        n += snprintf(out + n, len > (size_t)n ? len - (size_t)n : 0, ",%s:%s", kind, h);
        if ((size_t)n >= len) return FAIL(err, err_len, "too many names (%s)", h);
    }
    return 0;
}

static int add_ext(X509 *x, int nid, const char *value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (e == NULL) return -1;
    int ok = X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    return ok == 1 ? 0 : -1;
}

static X509 *make_cert(const tr_selfcert_opts *o, EVP_PKEY *pk, const char *san) {
    X509 *x = X509_new();
    BIGNUM *serial = BN_new();
    int ok = x != NULL && serial != NULL && X509_set_version(x, 2) == 1 &&
             BN_rand(serial, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1 &&
             BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) != NULL &&
             X509_gmtime_adj(X509_getm_notBefore(x), -3600) != NULL && /* clock skew */
             X509_gmtime_adj(X509_getm_notAfter(x), (long)o->days * 86400) != NULL &&
             X509_set_pubkey(x, pk) == 1;
    BN_free(serial);
    if (ok) {
        X509_NAME *name = X509_get_subject_name(x);
        const char *cn = o->nhosts > 0 ? o->hosts[0] : "localhost";
        ok = X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                        (const unsigned char *)"Tributary", -1, -1, 0) == 1 &&
             X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn,
                                        -1, -1, 0) == 1 &&
             X509_set_issuer_name(x, name) == 1;
    }
    /* Its own CA as well (clients trust it with --cacert / verify=), so the CA extensions
     * strict verifiers look for: key usage with keyCertSign and both key identifiers. */
    ok = ok && add_ext(x, NID_basic_constraints, "critical,CA:TRUE") == 0 &&
         add_ext(x, NID_key_usage, "critical,digitalSignature,keyCertSign") == 0 &&
         add_ext(x, NID_ext_key_usage, "serverAuth") == 0 &&
         add_ext(x, NID_subject_alt_name, san) == 0 &&
         add_ext(x, NID_subject_key_identifier, "hash") == 0 &&
         add_ext(x, NID_authority_key_identifier, "keyid:always") == 0 &&
         X509_sign(x, pk, EVP_sha256()) > 0;
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

/* Writes through a temporary file and a rename, with the final mode set. */
static int write_pem(const char *path, mode_t mode, EVP_PKEY *pk, X509 *x, char *err,
                     size_t err_len) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0 || fchmod(fd, mode) != 0) {
        snprintf(err, err_len, "cannot write %s: %s", tmp, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    FILE *f = fdopen(fd, "w");
    if (f == NULL) {
        close(fd);
        return FAIL(err, err_len, "cannot write %s", tmp);
    }
    int ok = pk != NULL ? PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL) == 1
                        : PEM_write_X509(f, x) == 1;
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return FAIL(err, err_len, "cannot write %s", path);
    }
    return 0;
}

int tr_selfcert_write(const tr_selfcert_opts *o, char *err, size_t err_len) {
    char cert_path[4096], key_path[4096], san[4096];
    if (o->days <= 0) return FAIL(err, err_len, "%s", "days must be positive");
    if (san_value(o, san, sizeof san, err, err_len) != 0) return -1;
    snprintf(cert_path, sizeof cert_path, "%s/cert.pem", o->dir);
    snprintf(key_path, sizeof key_path, "%s/key.pem", o->dir);
    if (mkdir(o->dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, err_len, "cannot create %s: %s", o->dir, strerror(errno));
        return -1;
    }
    if (!o->force && (access(cert_path, F_OK) == 0 || access(key_path, F_OK) == 0))
        return FAIL(err, err_len, "%s/cert.pem or key.pem exists (--force replaces them)",
                    o->dir);
    EVP_PKEY *pk = EVP_EC_gen("P-256");
    if (pk == NULL) return fail_ssl(err, err_len, "cannot make an EC P-256 key");
    X509 *x = make_cert(o, pk, san);
    int rc;
    if (x == NULL) rc = fail_ssl(err, err_len, "cannot make the certificate");
    else if ((rc = write_pem(key_path, 0600, pk, NULL, err, err_len)) == 0)
        rc = write_pem(cert_path, 0644, NULL, x, err, err_len);
    X509_free(x);
    EVP_PKEY_free(pk);
    return rc;
}
