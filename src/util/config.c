#include "util/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KIB ((uint64_t)1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)

void tr_config_defaults(tr_config *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->listen_host, sizeof c->listen_host, "127.0.0.1");
    c->listen_port = 4566;
    snprintf(c->data_dir, sizeof c->data_dir, "./data");
    c->log_level = TR_LOG_INFO;
    c->fsync = TR_CONFIG_FSYNC_ALWAYS;
    c->fsync_interval_ms = 100;
    c->storage_threads = 1;
    c->segment_max_bytes = 128 * MIB;
    c->segment_max_age_ms = 60 * 60 * 1000;
    c->max_request_bytes = 64 * MIB;
    c->worker_threads = 2;
    c->shutdown_timeout_ms = 10 * 1000;
    c->stream_transition_ms = 500;
    c->iterator_ttl_ms = 5 * 60 * 1000;
    c->limits_aws = 0;
    c->putmedia_idle_ack_ms = 3000;
    c->putmedia_idle_close_ms = 30 * 1000;
}

const char *tr_config_fsync_name(tr_config_fsync f) {
    return f == TR_CONFIG_FSYNC_INTERVAL ? "interval" : "always";
}

static int fail(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t err_len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- value parsers: each returns 0, or -1 leaving *out untouched ---- */

/* A decimal integer with no sign, no spaces and no trailing junk. */
static int parse_u64(const char *s, uint64_t *out) {
    if (!isdigit((unsigned char)s[0])) return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0') return -1;
    *out = v;
    return 0;
}

/* Bytes with an optional binary suffix: 4096, 64K, 64M, 1G (also KiB/MiB/GiB). */
static int parse_size(const char *s, uint64_t *out) {
    char num[32];
    size_t n = 0;
    while (isdigit((unsigned char)s[n]) && n < sizeof num - 1) n++;
    if (n == 0 || n == sizeof num - 1) return -1;
    memcpy(num, s, n);
    num[n] = '\0';
    uint64_t v;
    if (parse_u64(num, &v) != 0) return -1;
    const char *suf = s + n;
    uint64_t mult = 1;
    if (*suf == '\0') mult = 1;
    else if (!strcmp(suf, "K") || !strcmp(suf, "KiB") || !strcmp(suf, "k")) mult = KIB;
    else if (!strcmp(suf, "M") || !strcmp(suf, "MiB")) mult = MIB;
    else if (!strcmp(suf, "G") || !strcmp(suf, "GiB")) mult = GIB;
    else return -1;
    if (v > UINT64_MAX / mult) return -1;
    *out = v * mult;
    return 0;
}

static int parse_range_i64(const char *s, int64_t lo, int64_t hi, int64_t *out) {
    uint64_t v;
    if (parse_u64(s, &v) != 0 || v > (uint64_t)hi || (int64_t)v < lo) return -1;
    *out = (int64_t)v;
    return 0;
}

int tr_config_parse_listen(const char *text, char *host, size_t host_len, int *port) {
    const char *colon;
    const char *h = text;
    size_t hlen;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':') return -1;
        h = text + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL) return -1;
        hlen = (size_t)(colon - text);
        /* An unbracketed IPv6 address is ambiguous with its port. */
        if (memchr(text, ':', hlen) != NULL) return -1;
    }
    if (hlen == 0 || hlen >= host_len) return -1;
    int64_t p;
    if (parse_range_i64(colon + 1, 1, 65535, &p) != 0) return -1;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (int)p;
    return 0;
}

/* ---- the key table ---- */

typedef enum {
    K_LISTEN, K_PATH, K_URL, K_LOG_LEVEL, K_FSYNC, K_LIMITS, K_INT, K_I64, K_SIZE
} key_kind;

typedef struct {
    const char *name;
    key_kind kind;
    size_t offset;
    int64_t min, max; /* K_INT, K_I64, K_SIZE */
} key_def;

#define OFF(f) offsetof(tr_config, f)
static const key_def keys[] = {
    {"listen", K_LISTEN, 0, 0, 0},
    {"data_dir", K_PATH, OFF(data_dir), 0, 0},
    {"log_level", K_LOG_LEVEL, OFF(log_level), 0, 0},
    {"tls_cert", K_PATH, OFF(tls_cert), 0, 0},
    {"tls_key", K_PATH, OFF(tls_key), 0, 0},
    {"root_key_file", K_PATH, OFF(root_key_file), 0, 0},
    {"fsync", K_FSYNC, OFF(fsync), 0, 0},
    {"fsync_interval_ms", K_I64, OFF(fsync_interval_ms), 1, 60 * 1000},
    {"storage_threads", K_INT, OFF(storage_threads), 1, 64},
    {"segment_max_bytes", K_SIZE, OFF(segment_max_bytes), 4096, (int64_t)(64 * GIB)},
    {"segment_max_age_ms", K_I64, OFF(segment_max_age_ms), 1000, INT64_C(365) * 24 * 3600 * 1000},
    {"max_request_bytes", K_SIZE, OFF(max_request_bytes), 1024, (int64_t)(4 * GIB)},
    {"worker_threads", K_INT, OFF(worker_threads), 1, 256},
    {"shutdown_timeout_ms", K_I64, OFF(shutdown_timeout_ms), 0, 10 * 60 * 1000},
    {"stream_transition_ms", K_I64, OFF(stream_transition_ms), 0, 10 * 60 * 1000},
    {"iterator_ttl_ms", K_I64, OFF(iterator_ttl_ms), 1000, INT64_C(24) * 3600 * 1000},
    {"limits", K_LIMITS, OFF(limits_aws), 0, 0},
    {"public_url", K_URL, OFF(public_url), 0, 0},
    {"credentials_file", K_PATH, OFF(credentials_file), 0, 0},
    {"policy_file", K_PATH, OFF(policy_file), 0, 0},
    {"putmedia_idle_ack_ms", K_I64, OFF(putmedia_idle_ack_ms), 100, 10 * 60 * 1000},
    {"putmedia_idle_close_ms", K_I64, OFF(putmedia_idle_close_ms), 1000, 60 * 60 * 1000},
};
#undef OFF

static const key_def *find_key(const char *name) {
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strcmp(keys[i].name, name) == 0) return &keys[i];
    return NULL;
}

static int set_number(tr_config *c, const key_def *k, const char *value, char *err,
                      size_t err_len) {
    char *field = (char *)c + k->offset;
    if (k->kind == K_SIZE) {
        uint64_t v;
        if (parse_size(value, &v) != 0 || v < (uint64_t)k->min || v > (uint64_t)k->max)
            return fail(err, err_len,
                        "%s: expected a size in bytes (suffix K, M or G allowed) from %" PRId64
                        " to %" PRId64 ", got '%s'",
                        k->name, k->min, k->max, value);
        memcpy(field, &v, sizeof v);
        return 0;
    }
    int64_t v;
    if (parse_range_i64(value, k->min, k->max, &v) != 0)
        return fail(err, err_len, "%s: expected an integer from %" PRId64 " to %" PRId64
                    ", got '%s'", k->name, k->min, k->max, value);
    if (k->kind == K_INT) {
        int iv = (int)v;
        memcpy(field, &iv, sizeof iv);
    } else {
        memcpy(field, &v, sizeof v);
    }
    return 0;
}

/* public_url: empty (unset), or http(s)://host[:port][/path] without spaces; a trailing '/'
 * is dropped so that clients can append "/putMedia". */
static int set_url(tr_config *c, const char *value, char *err, size_t err_len) {
    size_t n = strlen(value);
    while (n > 0 && value[n - 1] == '/') n--;
    const char *host = strncmp(value, "http://", 7) == 0    ? value + 7
                       : strncmp(value, "https://", 8) == 0 ? value + 8
                                                            : NULL;
    int ok = n == 0 || (host != NULL && value + n > host && *host != '/' &&
                        n < sizeof c->public_url);
    for (size_t i = 0; ok && i < n; i++)
        ok = value[i] > ' ' && value[i] < 0x7f;
    if (!ok)
        return fail(err, err_len,
                    "public_url: expected http://HOST[:PORT][/PATH] or https://..., got '%s'",
                    value);
    memcpy(c->public_url, value, n);
    c->public_url[n] = '\0';
    return 0;
}

int tr_config_set(tr_config *c, const char *key, const char *value, char *err, size_t err_len) {
    const key_def *k = find_key(key);
    if (k == NULL) return fail(err, err_len, "unknown key '%s'", key);
    switch (k->kind) {
    case K_LISTEN:
        if (tr_config_parse_listen(value, c->listen_host, sizeof c->listen_host,
                                   &c->listen_port) != 0)
            return fail(err, err_len, "listen: expected HOST:PORT (port 1-65535), got '%s'",
                        value);
        return 0;
    case K_PATH: {
        char *field = (char *)c + k->offset;
        size_t n = strlen(value);
        /* tls_cert/tls_key (and the auth files) may be set empty to turn them off;
         * data_dir may not. */
        if ((n == 0 && k->offset == offsetof(tr_config, data_dir)) || n >= TR_CONFIG_PATH_MAX)
            return fail(err, err_len, "%s: expected a path of 1 to %d bytes", k->name,
                        TR_CONFIG_PATH_MAX - 1);
        memcpy(field, value, n + 1);
        return 0;
    }
    case K_URL:
        return set_url(c, value, err, err_len);
    case K_LOG_LEVEL:
        if (tr_log_parse_level(value, &c->log_level) != 0)
            return fail(err, err_len, "log_level: expected debug, info, warn or error, got '%s'",
                        value);
        return 0;
    case K_FSYNC:
        if (strcmp(value, "always") == 0) c->fsync = TR_CONFIG_FSYNC_ALWAYS;
        else if (strcmp(value, "interval") == 0) c->fsync = TR_CONFIG_FSYNC_INTERVAL;
        else return fail(err, err_len, "fsync: expected always or interval, got '%s'", value);
        return 0;
    case K_LIMITS:
        if (strcmp(value, "none") == 0) c->limits_aws = 0;
        else if (strcmp(value, "aws") == 0) c->limits_aws = 1;
        else return fail(err, err_len, "limits: expected none or aws, got '%s'", value);
        return 0;
    case K_INT:
    case K_I64:
    case K_SIZE:
        return set_number(c, k, value, err, err_len);
    }
    return fail(err, err_len, "internal: key '%s' has no parser", key);
}

/* ---- the file ---- */

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    return s;
}

/* Parses one line in place. Returns 0 (applied or blank) or -1 with a message in err. */
static int apply_line(tr_config *c, char *line, char *err, size_t err_len) {
    char *hash = strchr(line, '#');
    if (hash != NULL) *hash = '\0';
    char *s = trim(line);
    if (*s == '\0') return 0;
    char *eq = strchr(s, '=');
    if (eq == NULL) return fail(err, err_len, "expected 'key = value', got '%s'", s);
    *eq = '\0';
    char *key = trim(s);
    char *value = trim(eq + 1);
    if (*key == '\0') return fail(err, err_len, "missing key before '='");
    return tr_config_set(c, key, value, err, err_len);
}

int tr_config_load_file(tr_config *c, const char *path, char *err, size_t err_len) {
    FILE *f = fopen(path, "r");
    if (f == NULL) return fail(err, err_len, "%s: cannot open: %s", path, strerror(errno));
    char line[4096];
    char msg[512];
    int lineno = 0;
    int rc = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        lineno++;
        size_t n = strlen(line);
        if (n == sizeof line - 1 && line[n - 1] != '\n' && !feof(f)) {
            rc = fail(err, err_len, "%s:%d: line longer than %zu bytes", path, lineno,
                      sizeof line - 2);
            break;
        }
        if (apply_line(c, line, msg, sizeof msg) != 0) {
            rc = fail(err, err_len, "%s:%d: %s", path, lineno, msg);
            break;
        }
    }
    if (rc == 0 && ferror(f)) rc = fail(err, err_len, "%s: read error", path);
    fclose(f);
    return rc;
}

void tr_config_base_url(const tr_config *c, char *out, size_t len) {
    if (c->public_url[0] != '\0') {
        snprintf(out, len, "%s", c->public_url);
        return;
    }
    int v6 = strchr(c->listen_host, ':') != NULL;
    snprintf(out, len, "%s://%s%s%s:%d", c->tls_cert[0] ? "https" : "http", v6 ? "[" : "",
             c->listen_host, v6 ? "]" : "", c->listen_port);
}

int tr_config_validate(const tr_config *c, char *err, size_t err_len) {
    if ((c->tls_cert[0] == '\0') != (c->tls_key[0] == '\0'))
        return fail(err, err_len, "tls_cert and tls_key must be set together");
    return 0;
}

int tr_config_is_loopback(const char *host) {
    if (strcmp(host, "localhost") == 0) return 1;
    struct in_addr a4;
    if (inet_pton(AF_INET, host, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    struct in6_addr a6;
    if (inet_pton(AF_INET6, host, &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
    return 0;
}
