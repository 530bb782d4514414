/* tributary: the command line. `tributary serve` reads the configuration (defaults, then
 * --config FILE, then flags), opens the data directory's catalog and store, and serves until
 * SIGTERM/SIGINT. Exit codes: 0 clean stop, 1 runtime failure, 2 usage error. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <fcntl.h>
#include <openssl/rand.h>
#include <unistd.h>

#include "api/kinesis.h"
#include "auth/auth.h"
#include "api/kms.h"
#include "api/kvs_control.h"
#include "api/kvs_media.h"
#include "core/catalog.h"
#include "core/store.h"
#include "data/iterator.h"
#include "data/streams.h"
#include "kms/kms.h"
#include "net/server.h"
#include "net/signals.h"
#include "net/storecfg.h"
#include "util/config.h"
#include "util/error.h"
#include "util/log.h"
#include "util/selfcert.h"
#include "video/media.h"
#include "video/streams.h"

#ifndef TR_VERSION
#define TR_VERSION "0.1.0"
#endif

static void usage(FILE *f) {
    fprintf(f,
            "usage: tributary serve [--listen ADDR:PORT] [--data-dir DIR] [--config FILE]\n"
            "                       [--log-level debug|info|warn|error]\n"
            "                       [--tls-cert FILE --tls-key FILE] [--limits none|aws]\n"
            "       tributary cert --out DIR [--host NAME]... [--days N] [--force]\n"
            "       tributary --version\n"
            "       tributary --help\n"
            "\n"
            "A self-hosted, wire-compatible Amazon Kinesis server.\n"
            "Flags override the config file; see docs/configuration.md for every key.\n");
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "tributary: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    usage(stderr);
    return 2;
}

/* The flags of `serve`, each the name of a config key (applied after the file). */
static const struct option serve_options[] = {
    {"listen", required_argument, NULL, 'l'},    {"data-dir", required_argument, NULL, 'd'},
    {"config", required_argument, NULL, 'c'},    {"log-level", required_argument, NULL, 'L'},
    {"tls-cert", required_argument, NULL, 'C'},  {"tls-key", required_argument, NULL, 'K'},
    {"limits", required_argument, NULL, 'T'},    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static const char *flag_key(int opt) {
    switch (opt) {
    case 'l': return "listen";
    case 'd': return "data_dir";
    case 'L': return "log_level";
    case 'C': return "tls_cert";
    case 'K': return "tls_key";
    case 'T': return "limits";
    default: return NULL;
    }
}

typedef struct {
    const char *key;
    const char *value;
} flag_setting;

/* Parses serve's flags into cfg (file first, flags after). Returns 0, 2 (usage) or -1 (help
 * printed, exit 0). */
static int parse_serve(int argc, char **argv, tr_config *cfg) {
    flag_setting flags[16];
    int nflags = 0;
    const char *config_file = NULL;
    opterr = 0;
    optind = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, ":h", serve_options, NULL)) != -1) {
        if (opt == 'h') {
            usage(stdout);
            return -1;
        }
        if (opt == '?') return usage_error("unknown option '%s'", argv[optind - 1]);
        if (opt == ':') return usage_error("option '%s' needs a value", argv[optind - 1]);
        if (opt == 'c') {
            config_file = optarg;
            continue;
        }
        if (nflags == (int)(sizeof flags / sizeof flags[0]))
            return usage_error("too many options");
        flags[nflags++] = (flag_setting){flag_key(opt), optarg};
    }
    if (optind < argc) return usage_error("unexpected argument '%s'", argv[optind]);

    char err[1200];
    tr_config_defaults(cfg);
    if (config_file != NULL && tr_config_load_file(cfg, config_file, err, sizeof err) != 0)
        return usage_error("%s", err);
    for (int i = 0; i < nflags; i++) {
        if (tr_config_set(cfg, flags[i].key, flags[i].value, err, sizeof err) != 0)
            return usage_error("%s", err);
    }
    if (tr_config_validate(cfg, err, sizeof err) != 0) return usage_error("%s", err);
    return 0;
}

static int ensure_dir(const char *dir) {
    if (mkdir(dir, 0755) == 0 || errno == EEXIST) {
        struct stat st;
        if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
        errno = ENOTDIR;
    }
    fprintf(stderr, "tributary: cannot create data directory %s: %s\n", dir, strerror(errno));
    return -1;
}

/* The key that signs shard iterators, kept in the data directory (mode 0600) so that
 * iterators stay valid across a restart, as they do across AWS's own deployments. */
static int load_secret(const char *data_dir, uint8_t key[TR_SECRET_BYTES]) {
    char path[TR_CONFIG_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/iterator.key", data_dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, key, TR_SECRET_BYTES);
        close(fd);
        if (n == TR_SECRET_BYTES) return 0;
        fprintf(stderr, "tributary: %s is damaged (expected %d bytes); remove it to make a new one\n",
                path, TR_SECRET_BYTES);
        return -1;
    }
    if (RAND_bytes(key, TR_SECRET_BYTES) != 1) return -1;
    char tmp[TR_CONFIG_PATH_MAX + 40];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int ok = fd >= 0 && write(fd, key, TR_SECRET_BYTES) == TR_SECRET_BYTES && fsync(fd) == 0;
    if (fd >= 0) close(fd);
    if (!ok || rename(tmp, path) != 0) {
        fprintf(stderr, "tributary: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* The store's commit hook: readers that tail shards wait on this notifier. */
static void on_commit(void *ctx, tr_shard *s) {
    (void)s;
    tr_notify_bump(ctx);
}

/* The catalog is one connection for every service: video's catalog calls take the lock the
 * data-streams registry holds around its own. */
static int data_catalog_lock(void *data, int (*fn)(tr_catalog *c, void *arg), void *arg) {
    return tr_data_with_catalog(data, fn, arg);
}

/* Everything `serve` opens, in the order it opens them; closed in reverse. */
typedef struct app {
    const tr_config *cfg;
    tr_catalog *catalog;
    tr_notify *commits;     /* bumped by the store on every commit: wakes tailing readers */
    tr_store *store;
    tr_kms *kms;            /* the keyring: master keys and data keys */
    tr_data *data;
    tr_video *video;
    tr_media *media;
    tr_server *srv;
    tr_kinesis *kinesis;
    tr_kvs_control *kvs;
    tr_kvs_media *kvs_media;
    tr_kms_api *kms_api;
    tr_auth *auth;          /* NULL: no credentials (loopback only, every request passes) */
} app;

/* The catalog and the store. Prints why on failure. */
static int open_storage(app *a) {
    char err[1200], path[TR_CONFIG_PATH_MAX + 32];
    snprintf(path, sizeof path, "%.*s/catalog.db", TR_CONFIG_PATH_MAX, a->cfg->data_dir);
    if ((a->catalog = tr_catalog_open(path, err, sizeof err)) == NULL) {
        fprintf(stderr, "tributary: cannot open catalog %s: %s\n", path, err);
        return -1;
    }
    tr_store_config scfg;
    tr_config_fill_store(a->cfg, &scfg);
    a->commits = tr_notify_new();
    int rc = a->commits != NULL ? tr_store_open(&scfg, &a->store) : TR_ENOMEM;
    if (rc != TR_OK) {
        fprintf(stderr, "tributary: cannot open store in %s: %s\n", a->cfg->data_dir,
                tr_strerror(rc));
        return -1;
    }
    tr_store_set_commit_hook(a->store, on_commit, a->commits);
    tr_kms_config kcfg = {.data_dir = a->cfg->data_dir, .root_key_file = a->cfg->root_key_file};
    char kerr[TR_CONFIG_PATH_MAX * 2 + 400];
    if (tr_kms_open(&kcfg, &a->kms, kerr, sizeof kerr) != TR_OK) {
        fprintf(stderr, "tributary: %s\n", kerr);
        return -1;
    }
    return 0;
}

/* The services on the core: data streams, video streams and their media. */
static int open_services(app *a) {
    const tr_config *cfg = a->cfg;
    uint8_t secret[TR_SECRET_BYTES];
    if (load_secret(cfg->data_dir, secret) != 0) return -1;
    tr_data_config dcfg = {.transition_ms = cfg->stream_transition_ms,
                           .iterator_ttl_ms = cfg->iterator_ttl_ms};
    int rc = tr_data_open(a->catalog, a->store, &dcfg, &a->data);
    if (rc != TR_OK) {
        fprintf(stderr, "tributary: cannot load data streams: %s\n", tr_strerror(rc));
        return -1;
    }
    tr_data_set_secret(a->data, secret);
    tr_video_config vcfg = {.transition_ms = cfg->stream_transition_ms,
                            .with_catalog = data_catalog_lock, .with_catalog_ctx = a->data};
    if ((rc = tr_video_open(a->catalog, a->store, &vcfg, &a->video)) == TR_OK)
        rc = tr_media_open(a->video, &a->media);
    if (rc == TR_OK) tr_media_set_kms(a->media, a->kms);
    if (rc != TR_OK) {
        fprintf(stderr, "tributary: cannot load video streams: %s\n", tr_strerror(rc));
        return -1;
    }
    return 0;
}

/* The server and the API faces on its routes. */
static int open_faces(app *a) {
    const tr_config *cfg = a->cfg;
    tr_kinesis_config kcfg = {.aws_limits = cfg->limits_aws, .commits = a->commits,
                              .kms = a->kms};
    char data_endpoint[TR_CONFIG_PATH_MAX + 16];
    tr_config_base_url(cfg, data_endpoint, sizeof data_endpoint);
    tr_kvs_control_config kvcfg = {.data_endpoint = data_endpoint};
    tr_kvs_media_config kmcfg = {.commits = a->commits,
                                 .idle_ack_ms = cfg->putmedia_idle_ack_ms,
                                 .idle_close_ms = cfg->putmedia_idle_close_ms};
    int rc = tr_server_new(cfg, a->store, &a->srv);
    if (rc == TR_OK) rc = tr_kinesis_new(a->srv, a->data, &kcfg, &a->kinesis);
    if (rc == TR_OK) rc = tr_kvs_control_new(a->srv, a->video, &kvcfg, &a->kvs);
    if (rc == TR_OK) rc = tr_kvs_media_new(a->srv, a->media, &kmcfg, &a->kvs_media);
    if (rc == TR_OK) rc = tr_kms_api_new(a->srv, a->kms, &a->kms_api);
    if (rc != TR_OK) {
        fprintf(stderr, "tributary: cannot start the server: %s\n", tr_strerror(rc));
        return -1;
    }
    return 0;
}

static void close_all(app *a) {
    /* The faces' feeds stop while the loop's task queue still exists; then the server, so
     * nothing appends while the store flushes and syncs. */
    tr_kinesis_stop(a->kinesis);
    tr_kvs_media_stop(a->kvs_media);
    tr_server_free(a->srv);
    tr_kinesis_free(a->kinesis);
    tr_kvs_control_free(a->kvs);
    tr_kvs_media_free(a->kvs_media);
    tr_kms_api_free(a->kms_api);
    tr_media_close(a->media);
    tr_video_close(a->video);
    tr_data_close(a->data);
    tr_store_close(a->store);
    tr_kms_close(a->kms);
    tr_notify_free(a->commits);
    tr_catalog_close(a->catalog);
    tr_auth_free(a->auth);
}

/* Credentials and policies (docs/security.md). Without credentials the server serves
 * loopback only: anyone who can reach it could do anything. Returns 0, or 2 (said why). */
static int open_auth(app *a) {
    const tr_config *cfg = a->cfg;
    char err[1200];
    if (cfg->credentials_file[0] == '\0') {
        if (tr_config_is_loopback(cfg->listen_host)) return 0;
        fprintf(stderr,
                "tributary: refusing to listen on %s without credentials: every client could "
                "do anything. Set credentials_file (see docs/security.md), or listen on a "
                "loopback address such as 127.0.0.1\n",
                cfg->listen_host);
        return 2;
    }
    if (tr_auth_open(cfg->credentials_file, cfg->policy_file, &a->auth, err, sizeof err) != 0) {
        fprintf(stderr, "tributary: %s\n", err);
        return 2;
    }
    if (cfg->policy_file[0] == '\0')
        tr_warn("msg=\"credentials without policy_file: every request is denied\"");
    return 0;
}

/* Opens what the server serves, runs it, and closes everything in reverse order. */
static int serve(const tr_config *cfg) {
    tr_log_set_level(cfg->log_level);
    if (ensure_dir(cfg->data_dir) != 0) return 1;
    app a = {.cfg = cfg};
    int status = open_auth(&a);
    if (status != 0) return status;
    status = 1;
    char err[1200];
    if (open_storage(&a) != 0 || open_services(&a) != 0 || open_faces(&a) != 0) {
        /* said why */
    } else if (a.auth != NULL && tr_auth_install(a.auth, a.srv) != 0) {
        fprintf(stderr, "tributary: cannot install authentication\n");
    } else if (tr_server_listen(a.srv, err, sizeof err) != 0) {
        fprintf(stderr, "tributary: %s\n", err);
    } else {
        tr_info("msg=\"tributary listening\" version=%s listen=%s:%d tls=%s data_dir=\"%s\" "
                "fsync=%s fsync_interval_ms=%lld storage_threads=%d worker_threads=%d auth=%s",
                TR_VERSION, cfg->listen_host, cfg->listen_port, cfg->tls_cert[0] ? "on" : "off",
                cfg->data_dir, tr_config_fsync_name(cfg->fsync),
                (long long)cfg->fsync_interval_ms, cfg->storage_threads, cfg->worker_threads,
                a.auth ? "sigv4" : "off (loopback)");
        status = tr_server_run(a.srv) == 0 ? 0 : 1;
    }
    close_all(&a);
    if (status == 0) tr_info("msg=\"stopped cleanly\"");
    return status;
}

/* `tributary cert`: a self-signed certificate and key for first use of TLS. */
static const struct option cert_options[] = {
    {"out", required_argument, NULL, 'o'},  {"host", required_argument, NULL, 'H'},
    {"days", required_argument, NULL, 'D'}, {"force", no_argument, NULL, 'f'},
    {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
};

static int cert_main(int argc, char **argv) {
    tr_selfcert_opts o = {.days = 365};
    opterr = 0;
    optind = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, ":h", cert_options, NULL)) != -1) {
        char *end = NULL;
        switch (opt) {
        case 'o': o.dir = optarg; break;
        case 'f': o.force = 1; break;
        case 'h': usage(stdout); return 0;
        case 'H':
            if (o.nhosts == TR_SELFCERT_MAX_HOSTS) return usage_error("too many --host names");
            o.hosts[o.nhosts++] = optarg;
            break;
        case 'D':
            o.days = (int)strtol(optarg, &end, 10);
            if (end == optarg || *end != '\0' || o.days <= 0 || o.days > 36500)
                return usage_error("--days: expected 1..36500, got '%s'", optarg);
            break;
        case ':': return usage_error("option '%s' needs a value", argv[optind - 1]);
        default: return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return usage_error("unexpected argument '%s'", argv[optind]);
    if (o.dir == NULL) return usage_error("cert needs --out DIR");
    char err[1200];
    if (tr_selfcert_write(&o, err, sizeof err) != 0) {
        fprintf(stderr, "tributary: %s\n", err);
        return 1;
    }
    printf("wrote %s/cert.pem and %s/key.pem (EC P-256, self-signed, %d days; names: "
           "localhost 127.0.0.1 ::1",
           o.dir, o.dir, o.days);
    for (int i = 0; i < o.nhosts; i++) printf(" %s", o.hosts[i]);
    printf(")\nserve with:   tributary serve --tls-cert %s/cert.pem --tls-key %s/key.pem\n"
           "clients trust %s/cert.pem (curl --cacert, aws --ca-bundle, boto3 verify=)\n",
           o.dir, o.dir, o.dir);
    return 0;
}

int main(int argc, char **argv) {
    /* Before any thread starts, so every thread inherits the blocked stop signals. */
    if (tr_signals_block() != 0) {
        fprintf(stderr, "tributary: cannot set up signal handling\n");
        return 1;
    }
    if (argc < 2) return usage_error("missing command");
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("tributary %s\n", TR_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "cert") == 0) return cert_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "serve") != 0) {
        if (argv[1][0] == '-') return usage_error("unknown option '%s'", argv[1]);
        return usage_error("unknown command '%s'", argv[1]);
    }
    tr_config cfg;
    int rc = parse_serve(argc - 1, argv + 1, &cfg);
    if (rc == -1) return 0;
    if (rc != 0) return rc;
    return serve(&cfg);
}
