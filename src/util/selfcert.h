/* A self-signed certificate and key for first use of TLS (`tributary cert`), made with
 * OpenSSL's API: an EC P-256 key, a certificate for localhost, 127.0.0.1, ::1 and the given
 * names (IP addresses become IP SANs, anything else DNS SANs), usable both as the server's
 * certificate and as the CA file clients verify it with. docs/security.md. */
#ifndef TR_UTIL_SELFCERT_H
#define TR_UTIL_SELFCERT_H

#include <stddef.h>

#define TR_SELFCERT_MAX_HOSTS 32

typedef struct tr_selfcert_opts {
    const char *dir;                              /* created (0700) if missing */
    const char *hosts[TR_SELFCERT_MAX_HOSTS];     /* extra names; the first is the CN */
    int nhosts;
    int days;                                     /* validity; 365 */
    int force;                                    /* replace existing files */
} tr_selfcert_opts;

/* Writes <dir>/cert.pem (0644) and <dir>/key.pem (0600, PKCS#8). Returns 0, or -1 with a
 * message in err (an existing file without force, a bad name, an I/O error). */
int tr_selfcert_write(const tr_selfcert_opts *o, char *err, size_t err_len);

#endif
