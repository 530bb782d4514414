/* The local key service: KMS-style envelope encryption at rest.
 *
 * Customer master keys (CMKs) live in a keyring file in the data directory (keyring.bin),
 * itself sealed with AES-256-GCM by a root key that is kept apart from the data (a 0600 file
 * named by root_key_file, or TRIBUTARY_ROOT_KEY; with neither, data_dir/root.key is made on
 * first start). A CMK has versions of key material: rotation adds a version and never
 * rewrites anything sealed before.
 *
 * Payloads are sealed with data keys: 256-bit keys from OpenSSL's RAND, kept in the keyring
 * only wrapped (AES-256-GCM) by one version of a CMK, and unwrapped in memory when used. A
 * sealer ("purpose", e.g. one stream) gets its own data key, replaced every day, after
 * 2^32 seals, and at every start: a data key seals only in the process that made it, so its
 * counter nonces never repeat (see docs/security.md).
 *
 * A sealed payload:
 *
 *   u8 version (1) | u32 data key id | 12-byte nonce | ciphertext | 16-byte GCM tag
 *
 * (TR_KMS_SEAL_OVERHEAD bytes more than the plaintext). The caller's AAD and the first five
 * bytes are authenticated: a payload moved to another stream or key does not open.
 *
 * Threads: any; one mutex guards the keyring, and the cipher work runs outside it. */
#ifndef TR_KMS_KMS_H
#define TR_KMS_KMS_H

#include <stddef.h>
#include <stdint.h>

typedef struct tr_kms tr_kms;

#define TR_KMS_SEAL_OVERHEAD 33       /* version + data key id + nonce + tag */
#define TR_KMS_SEAL_HEADER 17         /* the bytes before the ciphertext */
#define TR_KMS_KEY_ID_LEN 36          /* a UUID */
#define TR_KMS_ARN_MAX 128
#define TR_KMS_ALIAS_MAX 256
#define TR_KMS_DESC_MAX 8192
#define TR_KMS_MAX_PLAINTEXT 4096     /* Encrypt's limit, as AWS's */
#define TR_KMS_DAY_MS (24LL * 3600 * 1000)

/* Failures beside util/error.h's (TR_ENOENT: no such key or alias, TR_EEXIST: alias taken,
 * TR_EINVAL: a bad argument). */
enum {
    TR_KMS_EDISABLED = -40,    /* the key is disabled */
    TR_KMS_EBADCIPHER = -41,   /* a ciphertext that is not ours, damaged, or of other AAD */
    TR_KMS_ELIMIT = -42,       /* too many keys or aliases */
};

typedef struct tr_kms_config {
    const char *data_dir;         /* keyring.bin (and root.key when it is made) live here */
    const char *root_key_file;    /* NULL or "": TRIBUTARY_ROOT_KEY, else data_dir/root.key */
    const char *region;           /* for ARNs; default "us-east-1" */
    const char *account;          /* default "000000000000" */
    const char *root_key_env;     /* for tests: the variable's value; NULL: getenv */
} tr_kms_config;

/* Opens (or creates) the keyring. On failure returns an error with a message for the
 * operator in err (wrong root key, a root key file others can read, a damaged keyring). */
int tr_kms_open(const tr_kms_config *cfg, tr_kms **out, char *err, size_t err_len);
void tr_kms_close(tr_kms *k);

/* "arn:aws:kms:<region>:<account>:", what this service's key and alias ARNs begin with. */
void tr_kms_arn_prefix(const tr_kms *k, char *out, size_t cap);

/* Where the root key came from ("file /path", "environment", "made /path"), for the log. */
const char *tr_kms_root_source(const tr_kms *k);

/* ---- customer master keys ---- */

typedef struct tr_kms_key_info {
    char id[TR_KMS_KEY_ID_LEN + 1];
    char arn[TR_KMS_ARN_MAX];
    int64_t created_ms;
    int enabled;
    int rotation;                 /* automatic rotation enabled (the flag only) */
    int aws_managed;              /* alias/aws/... keys, made on first use */
    uint32_t versions;            /* key material versions; rotation adds one */
    int64_t rotated_ms;           /* 0: never */
    char description[TR_KMS_DESC_MAX + 1];
} tr_kms_key_info;

/* Finds a key by id, key ARN, alias name ("alias/x") or alias ARN. The AWS-managed aliases
 * alias/aws/kinesis and alias/aws/kinesisvideo name keys made on their first use. info may be
 * NULL. TR_ENOENT when there is no such key. */
int tr_kms_describe(tr_kms *k, const char *ref, tr_kms_key_info *info);
int tr_kms_create_key(tr_kms *k, const char *description, tr_kms_key_info *info);
int tr_kms_set_enabled(tr_kms *k, const char *ref, int enabled);
int tr_kms_set_rotation(tr_kms *k, const char *ref, int enabled);
/* Adds a version of key material: new data keys are wrapped by it, older ones keep theirs. */
int tr_kms_rotate(tr_kms *k, const char *ref);
/* Makes alias ("alias/<name>") name the key. TR_EEXIST when taken; TR_EINVAL when the name
 * is not alias/... or is under alias/aws/. */
int tr_kms_create_alias(tr_kms *k, const char *alias, const char *ref);

/* Keys in creation order; fn returns non-zero to stop. */
int tr_kms_list_keys(tr_kms *k, int (*fn)(void *ctx, const tr_kms_key_info *key), void *ctx);
/* Aliases in name order, of one key when ref is not NULL; key_id is "" for an AWS-managed
 * alias whose key is not made yet. */
int tr_kms_list_aliases(tr_kms *k, const char *ref,
                        int (*fn)(void *ctx, const char *alias, const char *key_id,
                                  int64_t created_ms),
                        void *ctx);

/* ---- the KMS API's ciphertext blobs (Encrypt, Decrypt, GenerateDataKey) ----
 * A blob: u8 version (0x81) | 16-byte key id | u32 material version | nonce | ct | tag, with
 * the encryption context's canonical bytes as AAD. *blob is malloc'd; the caller frees it. */
int tr_kms_encrypt(tr_kms *k, const char *ref, const void *aad, size_t aad_len,
                   const uint8_t *pt, size_t pt_len, uint8_t **blob, size_t *blob_len,
                   tr_kms_key_info *used);
/* *pt is malloc'd (and should be cleansed by the caller). `used` receives the key. */
int tr_kms_decrypt(tr_kms *k, const uint8_t *blob, size_t blob_len, const void *aad,
                   size_t aad_len, uint8_t **pt, size_t *pt_len, tr_kms_key_info *used);

/* ---- envelope sealing of stored payloads ---- */

/* Seals pt (pt_len bytes) under the current data key of `purpose` (made under the CMK `ref`
 * when needed) into out (pt_len + TR_KMS_SEAL_OVERHEAD bytes). pt may be out +
 * TR_KMS_SEAL_HEADER (sealing in place). Returns TR_OK, TR_ENOENT, TR_KMS_EDISABLED. */
int tr_kms_seal(tr_kms *k, const char *ref, const char *purpose, const void *aad,
                size_t aad_len, const uint8_t *pt, size_t pt_len, uint8_t *out);
/* Opens a sealed payload in place: on success *pt points at the plaintext inside `sealed`
 * (*pt_len = len - TR_KMS_SEAL_OVERHEAD). TR_KMS_EBADCIPHER when it does not authenticate,
 * TR_KMS_EDISABLED when its CMK is disabled, TR_ENOENT when its data key is unknown. */
int tr_kms_open_sealed(tr_kms *k, const void *aad, size_t aad_len, uint8_t *sealed,
                       size_t len, uint8_t **pt, size_t *pt_len);

/* The name of a failure, for logs. */
const char *tr_kms_strerror(int err);

#endif
