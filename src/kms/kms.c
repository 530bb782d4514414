/* The local key service (kms/kms.h): the keyring, its root key, data keys and sealing. */
#include "kms/kms.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/bytes.h"
#include "util/error.h"
#include "util/log.h"

#define KEY_BYTES 32
#define NONCE_BYTES 12
#define TAG_BYTES 16
#define WRAPPED_BYTES (NONCE_BYTES + KEY_BYTES + TAG_BYTES)
#define SEAL_VERSION 1
#define BLOB_VERSION 0x81
#define BLOB_HEADER (1 + 16 + 4)
#define RING_MAGIC "TRKR"
#define RING_VERSION 1
#define RING_HEADER 5
#define MAX_KEYS 10000
#define MAX_ALIASES 10000
/* Seals per data key: far below GCM's limits for one key (NIST SP 800-38D). */
#define DK_MAX_USES (1ull << 32)
#define PATH_MAX_LEN 1100

typedef struct cmk {
    char id[TR_KMS_KEY_ID_LEN + 1];
    int64_t created_ms;
    int enabled, rotation, aws_managed;
    int64_t rotated_ms;
    char *description;
    uint8_t (*material)[KEY_BYTES];   /* versions 1..nversions at [0..nversions-1] */
    uint32_t nversions;
} cmk;

typedef struct alias {
    char name[TR_KMS_ALIAS_MAX + 1];
    char key_id[TR_KMS_KEY_ID_LEN + 1];
    int64_t created_ms;
} alias;

typedef struct dkey {
    char key_id[TR_KMS_KEY_ID_LEN + 1];
    uint32_t version;                 /* of the CMK's material that wraps it */
    uint8_t wrapped[WRAPPED_BYTES];
    int64_t created_ms;
    int have_plain;
    uint8_t plain[KEY_BYTES];
} dkey;

/* The data key a purpose seals with now. */
typedef struct slot {
    char *purpose;
    uint32_t dk;                      /* 0: none yet */
    int64_t day;
    uint64_t uses;
    uint8_t prefix[4];                /* nonce = prefix || u64 counter */
} slot;

struct tr_kms {
    pthread_mutex_t mu;
    char ring_path[PATH_MAX_LEN];
    char region[32], account[32];
    char root_source[PATH_MAX_LEN + 16];
    uint8_t root[KEY_BYTES];
    cmk *keys;
    size_t nkeys, cap_keys;
    alias *aliases;
    size_t naliases, cap_aliases;
    dkey *dks;                        /* data key id i at dks[i - 1] */
    size_t ndks, cap_dks;
    slot *slots;
    size_t nslots, cap_slots;
};

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *tr_kms_strerror(int err) {
    switch (err) {
    case TR_KMS_EDISABLED: return "key disabled";
    case TR_KMS_EBADCIPHER: return "ciphertext does not authenticate";
    case TR_KMS_ELIMIT: return "too many keys or aliases";
    default: return tr_strerror(err);
    }
}

/* ---- AES-256-GCM ---- */

/* Encrypts or decrypts n bytes (in may equal out) with AAD a1 || a2. On decrypt, tag is
 * checked; returns 0, or -1 when it does not authenticate (or on an OpenSSL failure). */
static int gcm(int enc, const uint8_t *key, const uint8_t *nonce, const void *a1, size_t a1_len,
               const void *a2, size_t a2_len, const uint8_t *in, size_t n, uint8_t *out,
               uint8_t *tag) {
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    if (x == NULL) return -1;
    int ok = EVP_CipherInit_ex(x, EVP_aes_256_gcm(), NULL, key, nonce, enc) == 1;
    int len = 0;
    if (ok && a1_len > 0) ok = EVP_CipherUpdate(x, NULL, &len, a1, (int)a1_len) == 1;
    if (ok && a2_len > 0) ok = EVP_CipherUpdate(x, NULL, &len, a2, (int)a2_len) == 1;
    /* Large payloads in steps: EVP lengths are ints. */
    for (size_t off = 0; ok && off < n;) {
        size_t step = n - off > (1u << 30) ? (1u << 30) : n - off;
        ok = EVP_CipherUpdate(x, out + off, &len, in + off, (int)step) == 1;
        off += step;
    }
    if (ok && !enc) ok = EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_SET_TAG, TAG_BYTES, tag) == 1;
    if (ok) ok = EVP_CipherFinal_ex(x, out + n, &len) == 1;
    if (ok && enc) ok = EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_GET_TAG, TAG_BYTES, tag) == 1;
    EVP_CIPHER_CTX_free(x);
    return ok ? 0 : -1;
}

/* ---- small helpers ---- */

static void to_hex(const uint8_t *b, size_t n, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes exactly n bytes of hex (text of 2n digits); -1 otherwise. */
static int from_hex(const char *s, size_t len, uint8_t *out, size_t n) {
    if (len != 2 * n) return -1;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

static int new_uuid(char out[TR_KMS_KEY_ID_LEN + 1]) {
    uint8_t b[16];
    if (RAND_bytes(b, sizeof b) != 1) return -1;
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    char hex[33];
    to_hex(b, 16, hex);
    snprintf(out, TR_KMS_KEY_ID_LEN + 1, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12,
             hex + 16, hex + 20);
    return 0;
}

/* A UUID's 16 bytes; -1 when id is not one. */
static int uuid_bytes(const char *id, uint8_t out[16]) {
    char hex[33];
    size_t n = 0;
    for (const char *p = id; *p; p++) {
        if (*p == '-') continue;
        if (n == 32) return -1;
        hex[n++] = *p;
    }
    return from_hex(hex, n, out, 16);
}

static void uuid_text(const uint8_t b[16], char out[TR_KMS_KEY_ID_LEN + 1]) {
    char hex[33];
    to_hex(b, 16, hex);
    snprintf(out, TR_KMS_KEY_ID_LEN + 1, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12,
             hex + 16, hex + 20);
}

static int grow(void **v, size_t *cap, size_t n, size_t size) {
    if (n < *cap) return 0;
    size_t c = *cap ? *cap * 2 : 8;
    void *p = realloc(*v, c * size);
    if (p == NULL) return -1;
    *v = p;
    *cap = c;
    return 0;
}

/* ---- the keyring file ---- */

static json_t *ring_json(const tr_kms *k) {
    json_t *keys = json_array(), *aliases = json_array(), *dks = json_array();
    char hex[2 * WRAPPED_BYTES + 1];
    for (size_t i = 0; i < k->nkeys; i++) {
        const cmk *m = &k->keys[i];
        json_t *mat = json_array();
        for (uint32_t v = 0; v < m->nversions; v++) {
            to_hex(m->material[v], KEY_BYTES, hex);
            json_array_append_new(mat, json_string(hex));
        }
        json_array_append_new(
            keys, json_pack("{s:s, s:I, s:b, s:b, s:b, s:I, s:s, s:o}", "id", m->id, "created_ms",
                            (json_int_t)m->created_ms, "enabled", m->enabled, "rotation",
                            m->rotation, "aws", m->aws_managed, "rotated_ms",
                            (json_int_t)m->rotated_ms, "desc",
                            m->description ? m->description : "", "material", mat));
    }
    for (size_t i = 0; i < k->naliases; i++)
        json_array_append_new(aliases,
                              json_pack("{s:s, s:s, s:I}", "name", k->aliases[i].name, "key",
                                        k->aliases[i].key_id, "created_ms",
                                        (json_int_t)k->aliases[i].created_ms));
    for (size_t i = 0; i < k->ndks; i++) {
        const dkey *d = &k->dks[i];
        to_hex(d->wrapped, WRAPPED_BYTES, hex);
        json_array_append_new(dks, json_pack("{s:s, s:i, s:s, s:I}", "key", d->key_id, "ver",
                                             (int)d->version, "wrapped", hex, "created_ms",
                                             (json_int_t)d->created_ms));
    }
    return json_pack("{s:i, s:o, s:o, s:o}", "v", 1, "keys", keys, "aliases", aliases,
                     "data_keys", dks);
}

static int write_all(int fd, const uint8_t *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes path atomically (tmp, fsync, rename, fsync of the directory), mode 0600. */
static int write_file_0600(const char *path, const uint8_t *data, size_t n) {
    char tmp[PATH_MAX_LEN + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    int ok = fchmod(fd, 0600) == 0 && write_all(fd, data, n) == 0 && fsync(fd) == 0;
    close(fd);
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    char dir[PATH_MAX_LEN];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash != NULL) *slash = '\0';
    int dfd = open(slash != NULL ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

/* Seals the keyring with the root key and writes it. Under k->mu. */
static int save(tr_kms *k) {
    json_t *j = ring_json(k);
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (text == NULL) return TR_ENOMEM;
    size_t n = strlen(text);
    uint8_t *buf = malloc(RING_HEADER + NONCE_BYTES + n + TAG_BYTES);
    int rc = TR_ENOMEM;
    if (buf != NULL) {
        memcpy(buf, RING_MAGIC, 4);
        buf[4] = RING_VERSION;
        uint8_t *nonce = buf + RING_HEADER, *ct = nonce + NONCE_BYTES;
        if (RAND_bytes(nonce, NONCE_BYTES) != 1 ||
            gcm(1, k->root, nonce, buf, RING_HEADER, NULL, 0, (const uint8_t *)text, n, ct,
                ct + n) != 0)
            rc = TR_EIO;
        else
            rc = write_file_0600(k->ring_path, buf, RING_HEADER + NONCE_BYTES + n + TAG_BYTES) == 0
                     ? TR_OK
                     : TR_EIO;
        free(buf);
    }
    OPENSSL_cleanse(text, n);
    free(text);
    if (rc != TR_OK) tr_error("msg=\"cannot write keyring\" path=\"%s\"", k->ring_path);
    return rc;
}

static int read_file(const char *path, uint8_t **out, size_t *len, size_t max) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < 0 || (size_t)st.st_size > max) {
        close(fd);
        errno = EFBIG;
        return -1;
    }
    uint8_t *buf = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (buf != NULL && got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (buf == NULL || got != (size_t)st.st_size) {
        free(buf);
        errno = EIO;
        return -1;
    }
    *out = buf;
    *len = got;
    return 0;
}

static int load_keys(tr_kms *k, json_t *arr) {
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o) {
        if (grow((void **)&k->keys, &k->cap_keys, k->nkeys, sizeof *k->keys) != 0) return -1;
        cmk *m = &k->keys[k->nkeys];
        memset(m, 0, sizeof *m);
        const char *id = json_string_value(json_object_get(o, "id"));
        const char *desc = json_string_value(json_object_get(o, "desc"));
        json_t *mat = json_object_get(o, "material");
        if (id == NULL || strlen(id) != TR_KMS_KEY_ID_LEN || !json_is_array(mat) ||
            json_array_size(mat) == 0)
            return -1;
        memcpy(m->id, id, TR_KMS_KEY_ID_LEN + 1);
        m->created_ms = json_integer_value(json_object_get(o, "created_ms"));
        m->enabled = json_is_true(json_object_get(o, "enabled"));
        m->rotation = json_is_true(json_object_get(o, "rotation"));
        m->aws_managed = json_is_true(json_object_get(o, "aws"));
        m->rotated_ms = json_integer_value(json_object_get(o, "rotated_ms"));
        m->description = strdup(desc ? desc : "");
        m->material = malloc(json_array_size(mat) * sizeof *m->material);
        if (m->description == NULL || m->material == NULL) {
            free(m->description);
            free(m->material);
            return -1;
        }
        k->nkeys++;
        size_t v;
        json_t *h;
        json_array_foreach(mat, v, h) {
            const char *s = json_string_value(h);
            if (s == NULL || from_hex(s, strlen(s), m->material[v], KEY_BYTES) != 0) return -1;
            m->nversions++;
        }
    }
    return 0;
}

static int load_rest(tr_kms *k, json_t *aliases, json_t *dks) {
    size_t i;
    json_t *o;
    json_array_foreach(aliases, i, o) {
        const char *name = json_string_value(json_object_get(o, "name"));
        const char *key = json_string_value(json_object_get(o, "key"));
        if (name == NULL || key == NULL || strlen(name) > TR_KMS_ALIAS_MAX ||
            strlen(key) > TR_KMS_KEY_ID_LEN ||
            grow((void **)&k->aliases, &k->cap_aliases, k->naliases, sizeof *k->aliases) != 0)
            return -1;
        alias *a = &k->aliases[k->naliases++];
        snprintf(a->name, sizeof a->name, "%s", name);
        snprintf(a->key_id, sizeof a->key_id, "%s", key);
        a->created_ms = json_integer_value(json_object_get(o, "created_ms"));
    }
    json_array_foreach(dks, i, o) {
        const char *key = json_string_value(json_object_get(o, "key"));
        const char *w = json_string_value(json_object_get(o, "wrapped"));
        if (key == NULL || w == NULL || strlen(key) != TR_KMS_KEY_ID_LEN ||
            grow((void **)&k->dks, &k->cap_dks, k->ndks, sizeof *k->dks) != 0)
            return -1;
        dkey *d = &k->dks[k->ndks];
        memset(d, 0, sizeof *d);
        memcpy(d->key_id, key, TR_KMS_KEY_ID_LEN + 1);
        d->version = (uint32_t)json_integer_value(json_object_get(o, "ver"));
        d->created_ms = json_integer_value(json_object_get(o, "created_ms"));
        if (from_hex(w, strlen(w), d->wrapped, WRAPPED_BYTES) != 0) return -1;
        k->ndks++;
    }
    return 0;
}

/* Reads and opens an existing keyring. */
static int load(tr_kms *k, char *err, size_t err_len) {
    uint8_t *buf = NULL;
    size_t n = 0;
    if (read_file(k->ring_path, &buf, &n, 1u << 30) != 0) {
        snprintf(err, err_len, "cannot read keyring %s: %s", k->ring_path, strerror(errno));
        return TR_EIO;
    }
    if (n < RING_HEADER + NONCE_BYTES + TAG_BYTES || memcmp(buf, RING_MAGIC, 4) != 0 ||
        buf[4] != RING_VERSION) {
        free(buf);
        snprintf(err, err_len, "%s is not a tributary keyring (or of an unknown version)",
                 k->ring_path);
        return TR_ECORRUPT;
    }
    size_t ct_len = n - RING_HEADER - NONCE_BYTES - TAG_BYTES;
    uint8_t *nonce = buf + RING_HEADER, *ct = nonce + NONCE_BYTES;
    char *text = malloc(ct_len + 1);
    if (text == NULL ||
        gcm(0, k->root, nonce, buf, RING_HEADER, NULL, 0, ct, ct_len, (uint8_t *)text,
            ct + ct_len) != 0) {
        free(text);
        free(buf);
        snprintf(err, err_len,
                 "cannot open keyring %s: the root key (%s) is not the one it was sealed with, "
                 "or the keyring is damaged; nothing was changed. Start with the right root "
                 "key (root_key_file or TRIBUTARY_ROOT_KEY)",
                 k->ring_path, k->root_source);
        return TR_KMS_EBADCIPHER;
    }
    free(buf);
    text[ct_len] = '\0';
    json_error_t jerr;
    json_t *j = json_loadb(text, ct_len, 0, &jerr);
    OPENSSL_cleanse(text, ct_len);
    free(text);
    int bad = j == NULL || load_keys(k, json_object_get(j, "keys")) != 0 ||
              load_rest(k, json_object_get(j, "aliases"), json_object_get(j, "data_keys")) != 0;
    json_decref(j);
    if (bad) {
        snprintf(err, err_len, "keyring %s opened but its contents are malformed", k->ring_path);
        return TR_ECORRUPT;
    }
    return TR_OK;
}

/* ---- the root key ---- */

/* 32 raw bytes, or 64 hex digits (surrounding whitespace ignored). */
static int parse_root(const uint8_t *b, size_t n, uint8_t out[KEY_BYTES]) {
    if (n == KEY_BYTES) {
        memcpy(out, b, KEY_BYTES);
        return 0;
    }
    while (n > 0 && (b[n - 1] == '\n' || b[n - 1] == '\r' || b[n - 1] == ' ')) n--;
    while (n > 0 && (b[0] == ' ' || b[0] == '\n')) {
        b++;
        n--;
    }
    return from_hex((const char *)b, n, out, KEY_BYTES);
}

static int read_root_file(tr_kms *k, const char *path, char *err, size_t err_len) {
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, err_len, "cannot read root key file %s: %s", path, strerror(errno));
        return TR_EIO;
    }
    if (st.st_mode & 077) {
        snprintf(err, err_len,
                 "root key file %s is accessible by group or others (mode %03o); refusing to "
                 "use it: chmod 600 %s",
                 path, (unsigned)(st.st_mode & 0777), path);
        return TR_EINVAL;
    }
    uint8_t *buf = NULL;
    size_t n = 0;
    if (read_file(path, &buf, &n, 4096) != 0) {
        snprintf(err, err_len, "cannot read root key file %s: %s", path, strerror(errno));
        return TR_EIO;
    }
    int bad = parse_root(buf, n, k->root) != 0;
    OPENSSL_cleanse(buf, n);
    free(buf);
    if (bad) {
        snprintf(err, err_len, "root key file %s must hold 32 bytes, raw or as 64 hex digits",
                 path);
        return TR_EINVAL;
    }
    return TR_OK;
}

static int make_root_file(tr_kms *k, const char *path, char *err, size_t err_len) {
    char hex[2 * KEY_BYTES + 2];
    if (RAND_bytes(k->root, KEY_BYTES) != 1) {
        snprintf(err, err_len, "cannot make a root key: no randomness");
        return TR_EIO;
    }
    to_hex(k->root, KEY_BYTES, hex);
    strcat(hex, "\n");
    int rc = write_file_0600(path, (const uint8_t *)hex, strlen(hex));
    OPENSSL_cleanse(hex, sizeof hex);
    if (rc != 0) {
        snprintf(err, err_len, "cannot write root key file %s: %s", path, strerror(errno));
        return TR_EIO;
    }
    return TR_OK;
}

static int load_root(tr_kms *k, const tr_kms_config *cfg, int ring_exists, char *err,
                     size_t err_len) {
    const char *env = cfg->root_key_env != NULL ? cfg->root_key_env : getenv("TRIBUTARY_ROOT_KEY");
    if (cfg->root_key_file != NULL && cfg->root_key_file[0] != '\0') {
        snprintf(k->root_source, sizeof k->root_source, "file %s", cfg->root_key_file);
        return read_root_file(k, cfg->root_key_file, err, err_len);
    }
    if (env != NULL && env[0] != '\0') {
        snprintf(k->root_source, sizeof k->root_source, "environment TRIBUTARY_ROOT_KEY");
        if (parse_root((const uint8_t *)env, strlen(env), k->root) != 0) {
            snprintf(err, err_len, "TRIBUTARY_ROOT_KEY must be 64 hex digits (32 bytes)");
            return TR_EINVAL;
        }
        return TR_OK;
    }
    char path[PATH_MAX_LEN];
    snprintf(path, sizeof path, "%s/root.key", cfg->data_dir);
    snprintf(k->root_source, sizeof k->root_source, "file %s", path);
    if (access(path, F_OK) == 0) return read_root_file(k, path, err, err_len);
    if (ring_exists) {
        snprintf(err, err_len,
                 "keyring %s exists but no root key is configured (root_key_file, "
                 "TRIBUTARY_ROOT_KEY) and %s is missing; refusing to make a new one",
                 k->ring_path, path);
        return TR_ENOENT;
    }
    int rc = make_root_file(k, path, err, err_len);
    if (rc == TR_OK) {
        snprintf(k->root_source, sizeof k->root_source, "made %s", path);
        tr_warn("msg=\"made a root key in the data directory: it protects nothing against "
                "whoever can read the data directory; see docs/security.md to keep it "
                "elsewhere\" path=\"%s\"",
                path);
    }
    return rc;
}

int tr_kms_open(const tr_kms_config *cfg, tr_kms **out, char *err, size_t err_len) {
    tr_kms *k = calloc(1, sizeof *k);
    if (k == NULL) {
        snprintf(err, err_len, "out of memory");
        return TR_ENOMEM;
    }
    pthread_mutex_init(&k->mu, NULL);
    snprintf(k->region, sizeof k->region, "%s", cfg->region ? cfg->region : "us-east-1");
    snprintf(k->account, sizeof k->account, "%s", cfg->account ? cfg->account : "000000000000");
    snprintf(k->ring_path, sizeof k->ring_path, "%s/keyring.bin", cfg->data_dir);
    int exists = access(k->ring_path, F_OK) == 0;
    int rc = load_root(k, cfg, exists, err, err_len);
    if (rc == TR_OK) rc = exists ? load(k, err, err_len) : save(k);
    if (rc != TR_OK) {
        if (!exists && err[0] == '\0')
            snprintf(err, err_len, "cannot write keyring %s", k->ring_path);
        tr_kms_close(k);
        return rc;
    }
    tr_info("msg=\"keyring open\" path=\"%s\" keys=%zu data_keys=%zu root_key=\"%s\"",
            k->ring_path, k->nkeys, k->ndks, k->root_source);
    *out = k;
    return TR_OK;
}

void tr_kms_close(tr_kms *k) {
    if (k == NULL) return;
    for (size_t i = 0; i < k->nkeys; i++) {
        if (k->keys[i].material != NULL)
            OPENSSL_cleanse(k->keys[i].material, k->keys[i].nversions * KEY_BYTES);
        free(k->keys[i].material);
        free(k->keys[i].description);
    }
    for (size_t i = 0; i < k->nslots; i++) free(k->slots[i].purpose);
    if (k->dks != NULL) OPENSSL_cleanse(k->dks, k->ndks * sizeof *k->dks);
    OPENSSL_cleanse(k->root, sizeof k->root);
    free(k->keys);
    free(k->aliases);
    free(k->dks);
    free(k->slots);
    pthread_mutex_destroy(&k->mu);
    free(k);
}

const char *tr_kms_root_source(const tr_kms *k) { return k->root_source; }

/* ---- keys (all under k->mu) ---- */

static cmk *key_by_id(tr_kms *k, const char *id) {
    for (size_t i = 0; i < k->nkeys; i++)
        if (strcmp(k->keys[i].id, id) == 0) return &k->keys[i];
    return NULL;
}

static alias *alias_by_name(tr_kms *k, const char *name) {
    for (size_t i = 0; i < k->naliases; i++)
        if (strcmp(k->aliases[i].name, name) == 0) return &k->aliases[i];
    return NULL;
}

static cmk *add_key(tr_kms *k, const char *description, int aws_managed) {
    if (k->nkeys >= MAX_KEYS ||
        grow((void **)&k->keys, &k->cap_keys, k->nkeys, sizeof *k->keys) != 0)
        return NULL;
    cmk *m = &k->keys[k->nkeys];
    memset(m, 0, sizeof *m);
    m->material = malloc(sizeof *m->material);
    m->description = strdup(description ? description : "");
    if (m->material == NULL || m->description == NULL || new_uuid(m->id) != 0 ||
        RAND_bytes(m->material[0], KEY_BYTES) != 1) {
        free(m->material);
        free(m->description);
        return NULL;
    }
    m->nversions = 1;
    m->created_ms = now_ms();
    m->enabled = 1;
    m->aws_managed = aws_managed;
    m->rotation = aws_managed; /* AWS rotates its managed keys */
    k->nkeys++;
    return m;
}

static void drop_last_key(tr_kms *k) {
    cmk *m = &k->keys[--k->nkeys];
    OPENSSL_cleanse(m->material, m->nversions * KEY_BYTES);
    free(m->material);
    free(m->description);
}

static int is_aws_alias(const char *name) { return strncmp(name, "alias/aws/", 10) == 0; }

/* alias/aws/kinesis and alias/aws/kinesisvideo: made with their key on first use. */
static cmk *managed_key(tr_kms *k, const char *name) {
    const char *desc = NULL;
    if (strcmp(name, "alias/aws/kinesis") == 0)
        desc = "Default master key that protects my Kinesis data when no other key is defined";
    else if (strcmp(name, "alias/aws/kinesisvideo") == 0)
        desc = "Default master key that protects my Kinesis Video data when no other key is "
               "defined";
    if (desc == NULL ||
        grow((void **)&k->aliases, &k->cap_aliases, k->naliases, sizeof *k->aliases) != 0)
        return NULL;
    cmk *m = add_key(k, desc, 1);
    if (m == NULL) return NULL;
    alias *a = &k->aliases[k->naliases++];
    snprintf(a->name, sizeof a->name, "%s", name);
    memcpy(a->key_id, m->id, sizeof a->key_id);
    a->created_ms = m->created_ms;
    if (save(k) != TR_OK) {
        k->naliases--;
        drop_last_key(k);
        return NULL;
    }
    tr_info("msg=\"made AWS-managed key\" alias=%s key_id=%s", name, m->id);
    return m;
}

void tr_kms_arn_prefix(const tr_kms *k, char *out, size_t cap) {
    snprintf(out, cap, "arn:aws:kms:%s:%s:", k->region, k->account); /* fixed at open */
}

/* The key a reference names (id, key ARN, alias, alias ARN). */
static cmk *resolve(tr_kms *k, const char *ref) {
    if (ref == NULL) return NULL;
    char prefix[96];
    snprintf(prefix, sizeof prefix, "arn:aws:kms:%s:%s:", k->region, k->account);
    const char *name = ref;
    if (strncmp(ref, "arn:aws:kms:", 12) == 0) {
        /* Any region/account spelled: the local service has one of each. */
        const char *p = strstr(ref, ":key/");
        if (p != NULL) return key_by_id(k, p + 5);
        p = strstr(ref, ":alias/");
        if (p == NULL) return NULL;
        name = p + 1;
    }
    if (strncmp(name, "alias/", 6) != 0) return key_by_id(k, name);
    alias *a = alias_by_name(k, name);
    if (a != NULL) return key_by_id(k, a->key_id);
    return is_aws_alias(name) ? managed_key(k, name) : NULL;
}

static void info_of(const tr_kms *k, const cmk *m, tr_kms_key_info *info) {
    if (info == NULL) return;
    memcpy(info->id, m->id, sizeof info->id);
    snprintf(info->arn, sizeof info->arn, "arn:aws:kms:%s:%s:key/%s", k->region, k->account,
             m->id);
    info->created_ms = m->created_ms;
    info->enabled = m->enabled;
    info->rotation = m->rotation;
    info->aws_managed = m->aws_managed;
    info->versions = m->nversions;
    info->rotated_ms = m->rotated_ms;
    snprintf(info->description, sizeof info->description, "%s", m->description);
}

int tr_kms_describe(tr_kms *k, const char *ref, tr_kms_key_info *info) {
    pthread_mutex_lock(&k->mu);
    cmk *m = resolve(k, ref);
    if (m != NULL) info_of(k, m, info);
    pthread_mutex_unlock(&k->mu);
    return m != NULL ? TR_OK : TR_ENOENT;
}

int tr_kms_create_key(tr_kms *k, const char *description, tr_kms_key_info *info) {
    pthread_mutex_lock(&k->mu);
    int rc = TR_KMS_ELIMIT;
    cmk *m = add_key(k, description, 0);
    if (m != NULL) {
        rc = save(k);
        if (rc == TR_OK) info_of(k, m, info);
        else drop_last_key(k);
    }
    pthread_mutex_unlock(&k->mu);
    return rc;
}

/* Changes one key under the lock and saves; fn returns 0 or an error. */
static int change_key(tr_kms *k, const char *ref, int (*fn)(cmk *m, int arg), int arg) {
    pthread_mutex_lock(&k->mu);
    cmk *m = resolve(k, ref);
    int rc = m == NULL ? TR_ENOENT : fn(m, arg);
    if (rc == TR_OK) rc = save(k);
    pthread_mutex_unlock(&k->mu);
    return rc;
}

static int set_enabled(cmk *m, int on) {
    m->enabled = on;
    return TR_OK;
}

static int set_rotation(cmk *m, int on) {
    if (!m->enabled) return TR_KMS_EDISABLED;
    m->rotation = on;
    return TR_OK;
}

static int add_version(cmk *m, int unused) {
    (void)unused;
    if (!m->enabled) return TR_KMS_EDISABLED;
    uint8_t (*mat)[KEY_BYTES] = malloc((m->nversions + 1) * sizeof *mat);
    if (mat == NULL) return TR_ENOMEM;
    memcpy(mat, m->material, m->nversions * sizeof *mat);
    if (RAND_bytes(mat[m->nversions], KEY_BYTES) != 1) {
        free(mat);
        return TR_EIO;
    }
    OPENSSL_cleanse(m->material, m->nversions * KEY_BYTES);
    free(m->material);
    m->material = mat;
    m->nversions++;
    m->rotated_ms = now_ms();
    return TR_OK;
}

int tr_kms_set_enabled(tr_kms *k, const char *ref, int enabled) {
    return change_key(k, ref, set_enabled, enabled);
}
int tr_kms_set_rotation(tr_kms *k, const char *ref, int enabled) {
    return change_key(k, ref, set_rotation, enabled);
}
int tr_kms_rotate(tr_kms *k, const char *ref) { return change_key(k, ref, add_version, 0); }

int tr_kms_create_alias(tr_kms *k, const char *name, const char *ref) {
    size_t n = strlen(name);
    if (strncmp(name, "alias/", 6) != 0 || n <= 6 || n > TR_KMS_ALIAS_MAX || is_aws_alias(name))
        return TR_EINVAL;
    for (const char *p = name + 6; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '/' || *p == '_' || *p == '-'))
            return TR_EINVAL;
    pthread_mutex_lock(&k->mu);
    cmk *m = resolve(k, ref);
    int rc = TR_OK;
    if (m == NULL) rc = TR_ENOENT;
    else if (alias_by_name(k, name) != NULL) rc = TR_EEXIST;
    else if (k->naliases >= MAX_ALIASES ||
             grow((void **)&k->aliases, &k->cap_aliases, k->naliases, sizeof *k->aliases) != 0)
        rc = TR_KMS_ELIMIT;
    if (rc == TR_OK) {
        alias *a = &k->aliases[k->naliases++];
        snprintf(a->name, sizeof a->name, "%s", name);
        memcpy(a->key_id, m->id, sizeof a->key_id);
        a->created_ms = now_ms();
        if ((rc = save(k)) != TR_OK) k->naliases--;
    }
    pthread_mutex_unlock(&k->mu);
    return rc;
}

int tr_kms_list_keys(tr_kms *k, int (*fn)(void *ctx, const tr_kms_key_info *key), void *ctx) {
    tr_kms_key_info *info = malloc(sizeof *info);
    if (info == NULL) return TR_ENOMEM;
    for (size_t i = 0;; i++) {
        pthread_mutex_lock(&k->mu);
        int more = i < k->nkeys;
        if (more) info_of(k, &k->keys[i], info);
        pthread_mutex_unlock(&k->mu);
        if (!more || fn(ctx, info) != 0) break;
    }
    free(info);
    return TR_OK;
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const alias *)a)->name, ((const alias *)b)->name);
}

int tr_kms_list_aliases(tr_kms *k, const char *ref,
                        int (*fn)(void *ctx, const char *alias, const char *key_id,
                                  int64_t created_ms),
                        void *ctx) {
    pthread_mutex_lock(&k->mu);
    const cmk *m = NULL;
    if (ref != NULL && (m = resolve(k, ref)) == NULL) {
        pthread_mutex_unlock(&k->mu);
        return TR_ENOENT;
    }
    alias *copy = malloc((k->naliases + 1) * sizeof *copy);
    size_t n = 0;
    for (size_t i = 0; copy != NULL && i < k->naliases; i++)
        if (m == NULL || strcmp(k->aliases[i].key_id, m->id) == 0) copy[n++] = k->aliases[i];
    pthread_mutex_unlock(&k->mu);
    if (copy == NULL) return TR_ENOMEM;
    qsort(copy, n, sizeof *copy, by_name);
    for (size_t i = 0; i < n; i++)
        if (fn(ctx, copy[i].name, copy[i].key_id, copy[i].created_ms) != 0) break;
    free(copy);
    return TR_OK;
}

/* ---- KMS API blobs ---- */

int tr_kms_encrypt(tr_kms *k, const char *ref, const void *aad, size_t aad_len,
                   const uint8_t *pt, size_t pt_len, uint8_t **blob, size_t *blob_len,
                   tr_kms_key_info *used) {
    uint8_t key[KEY_BYTES];
    uint8_t *b = malloc(BLOB_HEADER + NONCE_BYTES + pt_len + TAG_BYTES);
    if (b == NULL) return TR_ENOMEM;
    pthread_mutex_lock(&k->mu);
    cmk *m = resolve(k, ref);
    int rc = m == NULL ? TR_ENOENT : !m->enabled ? TR_KMS_EDISABLED : TR_OK;
    if (rc == TR_OK) {
        b[0] = BLOB_VERSION;
        uuid_bytes(m->id, b + 1);
        tr_put_u32(b + 17, m->nversions);
        memcpy(key, m->material[m->nversions - 1], KEY_BYTES);
        info_of(k, m, used);
    }
    pthread_mutex_unlock(&k->mu);
    uint8_t *nonce = b + BLOB_HEADER, *ct = nonce + NONCE_BYTES;
    if (rc == TR_OK && (RAND_bytes(nonce, NONCE_BYTES) != 1 ||
                        gcm(1, key, nonce, b, BLOB_HEADER, aad, aad_len, pt, pt_len, ct,
                            ct + pt_len) != 0))
        rc = TR_EIO;
    OPENSSL_cleanse(key, sizeof key);
    if (rc != TR_OK) {
        free(b);
        return rc;
    }
    *blob = b;
    *blob_len = BLOB_HEADER + NONCE_BYTES + pt_len + TAG_BYTES;
    return TR_OK;
}

int tr_kms_decrypt(tr_kms *k, const uint8_t *blob, size_t blob_len, const void *aad,
                   size_t aad_len, uint8_t **pt, size_t *pt_len, tr_kms_key_info *used) {
    if (blob_len < BLOB_HEADER + NONCE_BYTES + TAG_BYTES || blob[0] != BLOB_VERSION)
        return TR_KMS_EBADCIPHER;
    char id[TR_KMS_KEY_ID_LEN + 1];
    uuid_text(blob + 1, id);
    uint32_t version = tr_get_u32(blob + 17);
    uint8_t key[KEY_BYTES];
    pthread_mutex_lock(&k->mu);
    cmk *m = key_by_id(k, id);
    int rc = m == NULL                                      ? TR_KMS_EBADCIPHER
             : !m->enabled                                  ? TR_KMS_EDISABLED
             : version < 1 || version > m->nversions        ? TR_KMS_EBADCIPHER
                                                            : TR_OK;
    if (rc == TR_OK) {
        memcpy(key, m->material[version - 1], KEY_BYTES);
        info_of(k, m, used);
    }
    pthread_mutex_unlock(&k->mu);
    if (rc != TR_OK) return rc;
    size_t n = blob_len - BLOB_HEADER - NONCE_BYTES - TAG_BYTES;
    uint8_t *out = malloc(n + 1);
    const uint8_t *nonce = blob + BLOB_HEADER, *ct = nonce + NONCE_BYTES;
    uint8_t tag[TAG_BYTES];
    memcpy(tag, ct + n, TAG_BYTES);
    if (out == NULL) rc = TR_ENOMEM;
    else if (gcm(0, key, nonce, blob, BLOB_HEADER, aad, aad_len, ct, n, out, tag) != 0)
        rc = TR_KMS_EBADCIPHER;
    OPENSSL_cleanse(key, sizeof key);
    if (rc != TR_OK) {
        free(out);
        return rc;
    }
    *pt = out;
    *pt_len = n;
    return TR_OK;
}

/* ---- data keys and sealing ---- */

static void dk_aad(uint32_t id, const dkey *d, uint8_t out[4 + 4 + TR_KMS_KEY_ID_LEN + 4]) {
    memcpy(out, "trdk", 4);
    tr_put_u32(out + 4, id);
    memcpy(out + 8, d->key_id, TR_KMS_KEY_ID_LEN);
    tr_put_u32(out + 8 + TR_KMS_KEY_ID_LEN, d->version);
}

/* Makes a data key wrapped by m's newest material and saves the keyring. Its id, or 0. */
static uint32_t new_data_key(tr_kms *k, const cmk *m) {
    if (k->ndks >= UINT32_MAX - 1 ||
        grow((void **)&k->dks, &k->cap_dks, k->ndks, sizeof *k->dks) != 0)
        return 0;
    uint32_t id = (uint32_t)k->ndks + 1;
    dkey *d = &k->dks[k->ndks];
    memset(d, 0, sizeof *d);
    memcpy(d->key_id, m->id, sizeof d->key_id);
    d->version = m->nversions;
    d->created_ms = now_ms();
    uint8_t aad[4 + 4 + TR_KMS_KEY_ID_LEN + 4];
    dk_aad(id, d, aad);
    uint8_t *nonce = d->wrapped, *ct = nonce + NONCE_BYTES;
    if (RAND_bytes(d->plain, KEY_BYTES) != 1 || RAND_bytes(nonce, NONCE_BYTES) != 1 ||
        gcm(1, m->material[m->nversions - 1], nonce, aad, sizeof aad, NULL, 0, d->plain,
            KEY_BYTES, ct, ct + KEY_BYTES) != 0) {
        OPENSSL_cleanse(d, sizeof *d);
        return 0;
    }
    d->have_plain = 1;
    k->ndks++;
    if (save(k) != TR_OK) {
        OPENSSL_cleanse(d, sizeof *d);
        k->ndks--;
        return 0;
    }
    return id;
}

/* The data key id as plaintext in key; under k->mu. */
static int unwrap(tr_kms *k, uint32_t id, uint8_t key[KEY_BYTES]) {
    if (id == 0 || id > k->ndks) return TR_ENOENT;
    dkey *d = &k->dks[id - 1];
    cmk *m = key_by_id(k, d->key_id);
    if (m == NULL || d->version < 1 || d->version > m->nversions) return TR_ENOENT;
    if (!m->enabled) return TR_KMS_EDISABLED;
    if (!d->have_plain) {
        uint8_t aad[4 + 4 + TR_KMS_KEY_ID_LEN + 4], tag[TAG_BYTES];
        dk_aad(id, d, aad);
        memcpy(tag, d->wrapped + NONCE_BYTES + KEY_BYTES, TAG_BYTES);
        if (gcm(0, m->material[d->version - 1], d->wrapped, aad, sizeof aad, NULL, 0,
                d->wrapped + NONCE_BYTES, KEY_BYTES, d->plain, tag) != 0)
            return TR_KMS_EBADCIPHER;
        d->have_plain = 1;
    }
    memcpy(key, d->plain, KEY_BYTES);
    return TR_OK;
}

static slot *slot_of(tr_kms *k, const char *purpose) {
    for (size_t i = 0; i < k->nslots; i++)
        if (strcmp(k->slots[i].purpose, purpose) == 0) return &k->slots[i];
    if (grow((void **)&k->slots, &k->cap_slots, k->nslots, sizeof *k->slots) != 0) return NULL;
    slot *s = &k->slots[k->nslots];
    memset(s, 0, sizeof *s);
    if ((s->purpose = strdup(purpose)) == NULL) return NULL;
    k->nslots++;
    return s;
}

/* Under k->mu: the key and nonce of one seal for purpose under m. */
static int take_nonce(tr_kms *k, const cmk *m, const char *purpose, uint32_t *dk_id,
                      uint8_t key[KEY_BYTES], uint8_t nonce[NONCE_BYTES]) {
    slot *s = slot_of(k, purpose);
    if (s == NULL) return TR_ENOMEM;
    int64_t day = now_ms() / TR_KMS_DAY_MS;
    const dkey *cur = s->dk != 0 ? &k->dks[s->dk - 1] : NULL;
    /* A new data key each day, after DK_MAX_USES seals, and when the stream's key changed or
     * was rotated. */
    if (cur == NULL || s->day != day || s->uses >= DK_MAX_USES ||
        strcmp(cur->key_id, m->id) != 0 || cur->version != m->nversions) {
        uint32_t id = new_data_key(k, m);
        if (id == 0) return TR_EIO;
        s->dk = id;
        s->day = day;
        s->uses = 0;
        if (RAND_bytes(s->prefix, sizeof s->prefix) != 1) return TR_EIO;
    }
    *dk_id = s->dk;
    memcpy(key, k->dks[s->dk - 1].plain, KEY_BYTES);
    memcpy(nonce, s->prefix, 4);
    tr_put_u64(nonce + 4, s->uses++);
    return TR_OK;
}

int tr_kms_seal(tr_kms *k, const char *ref, const char *purpose, const void *aad,
                size_t aad_len, const uint8_t *pt, size_t pt_len, uint8_t *out) {
    uint8_t key[KEY_BYTES];
    uint32_t dk_id = 0;
    pthread_mutex_lock(&k->mu);
    cmk *m = resolve(k, ref);
    int rc = m == NULL ? TR_ENOENT : !m->enabled ? TR_KMS_EDISABLED : TR_OK;
    if (rc == TR_OK) rc = take_nonce(k, m, purpose, &dk_id, key, out + 5);
    pthread_mutex_unlock(&k->mu);
    if (rc != TR_OK) return rc;
    out[0] = SEAL_VERSION;
    tr_put_u32(out + 1, dk_id);
    uint8_t *ct = out + TR_KMS_SEAL_HEADER;
    if (gcm(1, key, out + 5, out, 5, aad, aad_len, pt, pt_len, ct, ct + pt_len) != 0)
        rc = TR_EIO;
    OPENSSL_cleanse(key, sizeof key);
    return rc;
}

int tr_kms_open_sealed(tr_kms *k, const void *aad, size_t aad_len, uint8_t *sealed,
                       size_t len, uint8_t **pt, size_t *pt_len) {
    if (len < TR_KMS_SEAL_OVERHEAD || sealed[0] != SEAL_VERSION) return TR_KMS_EBADCIPHER;
    uint8_t key[KEY_BYTES];
    pthread_mutex_lock(&k->mu);
    int rc = unwrap(k, tr_get_u32(sealed + 1), key);
    pthread_mutex_unlock(&k->mu);
    if (rc != TR_OK) return rc;
    size_t n = len - TR_KMS_SEAL_OVERHEAD;
    uint8_t *ct = sealed + TR_KMS_SEAL_HEADER, tag[TAG_BYTES];
    memcpy(tag, ct + n, TAG_BYTES);
    if (gcm(0, key, sealed + 5, sealed, 5, aad, aad_len, ct, n, ct, tag) != 0)
        rc = TR_KMS_EBADCIPHER;
    OPENSSL_cleanse(key, sizeof key);
    if (rc == TR_OK) {
        *pt = ct;
        *pt_len = n;
    }
    return rc;
}
