/* Server configuration: every setting of `tributary serve`, parsed once into one struct.
 *
 * Sources, in increasing precedence: built-in defaults (tr_config_defaults), a config file of
 * `key = value` lines (tr_config_load_file), then command-line flags, which main.c applies with
 * tr_config_set under the same key names. docs/configuration.md lists every key.
 *
 * Strings are fixed-size arrays so a tr_config can be copied and needs no freeing. Sizes accept
 * a binary suffix (K, M, G: 64M = 64 MiB); durations are whole milliseconds, as the key names
 * say. This module knows nothing of the layers above: net/storecfg.h turns a tr_config into the
 * store's own configuration. */
#ifndef TR_UTIL_CONFIG_H
#define TR_UTIL_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "util/log.h"

#define TR_CONFIG_PATH_MAX 1024
#define TR_CONFIG_HOST_MAX 256

typedef enum {
    TR_CONFIG_FSYNC_ALWAYS = 0,   /* acknowledge after fdatasync (group commit) */
    TR_CONFIG_FSYNC_INTERVAL = 1, /* acknowledge after write; fdatasync every interval */
} tr_config_fsync;

typedef struct tr_config {
    char listen_host[TR_CONFIG_HOST_MAX]; /* "127.0.0.1"; IPv6 without brackets */
    int listen_port;                      /* 4566 */
    char data_dir[TR_CONFIG_PATH_MAX];    /* "./data" */
    tr_log_level log_level;               /* info */
    char tls_cert[TR_CONFIG_PATH_MAX];    /* "" = plain HTTP; set with tls_key */
    char tls_key[TR_CONFIG_PATH_MAX];
    char root_key_file[TR_CONFIG_PATH_MAX]; /* "": TRIBUTARY_ROOT_KEY, else data_dir/root.key */
    tr_config_fsync fsync;                /* always */
    int64_t fsync_interval_ms;            /* 100; used by fsync = interval */
    int storage_threads;                  /* 1 */
    uint64_t segment_max_bytes;           /* 128 MiB */
    int64_t segment_max_age_ms;           /* 1 h */
    uint64_t max_request_bytes;           /* 64 MiB: a larger accumulated body gets 413 */
    int worker_threads;                   /* 2 */
    int64_t shutdown_timeout_ms;          /* 10 s for in-flight requests at SIGTERM */
    int64_t stream_transition_ms;         /* 500: CREATING/UPDATING last this long */
    int64_t iterator_ttl_ms;              /* 300000: shard iterators expire (AWS: 5 min) */
    int limits_aws;                       /* 0: no throughput limits; 1: AWS's per shard */
    char public_url[TR_CONFIG_PATH_MAX];  /* "" = derived from listen and TLS; see below */
    char credentials_file[TR_CONFIG_PATH_MAX]; /* "" = no authentication: loopback only */
    char policy_file[TR_CONFIG_PATH_MAX];      /* "" = every authenticated request denied */
    int64_t putmedia_idle_ack_ms;         /* 3000: an IDLE ack after this long without data */
    int64_t putmedia_idle_close_ms;       /* 30000: then the PutMedia answer ends */
} tr_config;

void tr_config_defaults(tr_config *c);

/* Sets one key from its text value. On error returns -1 and writes a message without a
 * location ("unknown key 'x'", "fsync: expected always or interval, got 'x'") into err. */
int tr_config_set(tr_config *c, const char *key, const char *value, char *err, size_t err_len);

/* Applies every `key = value` line of the file at path: blank lines and `#` comments
 * (whole-line or trailing) are ignored. On the first error returns -1 with
 * "path:line: message" in err. A missing or unreadable file is an error too. */
int tr_config_load_file(tr_config *c, const char *path, char *err, size_t err_len);

/* Checks the settings together (tls_cert and tls_key both or neither). Call after every
 * source has been applied. Returns 0 or -1 with a message in err. */
int tr_config_validate(const tr_config *c, char *err, size_t err_len);

/* Splits "host:port" or "[v6]:port" (port 1..65535). Returns 0 or -1. */
int tr_config_parse_listen(const char *text, char *host, size_t host_len, int *port);

/* The base URL clients reach the server at, without a trailing '/': public_url when set,
 * else http(s)://<listen host>:<port> (IPv6 hosts in brackets). KVS's GetDataEndpoint
 * answers it. */
void tr_config_base_url(const tr_config *c, char *out, size_t len);

/* Whether host is a loopback address (127.0.0.0/8, ::1, localhost): where the server may
 * listen without credentials. */
int tr_config_is_loopback(const char *host);

/* "always" or "interval". */
const char *tr_config_fsync_name(tr_config_fsync f);

#endif
