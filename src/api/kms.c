/* The KMS API (api/kms.h): decode, authorize, validate as AWS does, call the key service,
 * encode. */
#include "api/kms.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/aws_json.h"
#include "net/http.h"
#include "net/router.h"
#include "util/error.h"
#include "util/workpool.h"
#include "wire/reader.h"
#include "wire/writer.h"

#define TARGET_PREFIX "TrentService."
#define MAX_CONTEXT_BYTES 8192

struct tr_kms_api {
    tr_server *srv;
    tr_kms *kms;
};

typedef struct kms_call kms_call;
typedef struct kms_op {
    const char *name;
    void (*fn)(kms_call *c);
} kms_op;

struct kms_call {
    tr_work work;
    tr_req *req;
    tr_kms_api *a;
    const kms_op *op;
    tr_wire_format fmt;
    json_t *in;
    tr_writer out;
    int failed, status;
    const char *err_type;
    char err_msg[1024];
};

/* ---- errors and members ---- */

static int fail(kms_call *c, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(kms_call *c, int status, const char *type, const char *fmt, ...) {
    if (c->failed) return -1;
    c->failed = 1;
    c->status = status;
    c->err_type = type;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err_msg, sizeof c->err_msg, fmt, ap);
    va_end(ap);
    return -1;
}

static int invalid(kms_call *c, const char *member, const char *constraint) {
    return fail(c, 400, "ValidationException",
                "1 validation error detected: Value at '%s' failed to satisfy constraint: %s",
                member, constraint);
}

/* A string member of 1..max characters; required or not. */
static int str(kms_call *c, const char *key, const char *member, int required, size_t max,
               const char **out) {
    json_t *v = json_object_get(c->in, key);
    if (v == NULL || json_is_null(v))
        return required ? invalid(c, member, "Member must not be null") : 0;
    if (!json_is_string(v))
        return fail(c, 400, "SerializationException", "Unexpected value type for member %s", key);
    size_t n = json_string_length(v);
    if (n < 1 || n > max) {
        char constraint[80];
        snprintf(constraint, sizeof constraint, "Member must have length %s than or equal to %zu",
                 n < 1 ? "greater" : "less", n < 1 ? (size_t)1 : max);
        return invalid(c, member, constraint);
    }
    *out = json_string_value(v);
    return 0;
}

static int blob(kms_call *c, const char *key, const char *member, size_t max, uint8_t **data,
                size_t *len) {
    json_t *v = json_object_get(c->in, key);
    if (v == NULL || json_is_null(v)) return invalid(c, member, "Member must not be null");
    const uint8_t *d;
    int owned = 0;
    if (tr_wire_blob(c->fmt, v, &d, len, &owned) != 0)
        return fail(c, 400, "SerializationException", "%s is not a valid blob", key);
    if (*len < 1 || *len > max) {
        if (owned) free((void *)d);
        char constraint[80];
        snprintf(constraint, sizeof constraint, "Member must have length %s than or equal to %zu",
                 *len < 1 ? "greater" : "less", *len < 1 ? (size_t)1 : max);
        return invalid(c, member, constraint);
    }
    *data = owned ? (uint8_t *)d : malloc(*len);
    if (*data == NULL) return fail(c, 500, "KMSInternalException", "out of memory");
    if (!owned) memcpy(*data, d, *len);
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* EncryptionContext as AAD: its pairs sorted by key, each "key\0value\0". */
static int context_aad(kms_call *c, char *out, size_t cap, size_t *len) {
    *len = 0;
    json_t *ctx = json_object_get(c->in, "EncryptionContext");
    if (ctx == NULL || json_is_null(ctx)) return 0;
    if (!json_is_object(ctx))
        return fail(c, 400, "SerializationException", "EncryptionContext must be a map");
    size_t n = json_object_size(ctx), i = 0;
    const char **keys = malloc((n + 1) * sizeof *keys);
    if (keys == NULL) return fail(c, 500, "KMSInternalException", "out of memory");
    const char *k;
    json_t *v;
    json_object_foreach(ctx, k, v) keys[i++] = k;
    qsort(keys, n, sizeof *keys, cmp_str);
    int rc = 0;
    for (i = 0; i < n && rc == 0; i++) {
        const char *val = json_string_value(json_object_get(ctx, keys[i]));
        size_t kl = strlen(keys[i]), vl = val ? strlen(val) : 0;
        if (val == NULL)
            rc = fail(c, 400, "SerializationException", "EncryptionContext values are strings");
        else if (*len + kl + vl + 2 > cap)
            rc = fail(c, 400, "ValidationException", "EncryptionContext is too large");
        else {
            memcpy(out + *len, keys[i], kl + 1);
            memcpy(out + *len + kl + 1, val, vl + 1);
            *len += kl + vl + 2;
        }
    }
    free(keys);
    return rc;
}

/* A KMS failure as AWS names it; ref is what the caller gave. */
static void fail_kms(kms_call *c, int rc, const char *ref) {
    switch (rc) {
    case TR_ENOENT:
        if (ref != NULL && (strncmp(ref, "alias/", 6) == 0 || strstr(ref, ":alias/") != NULL))
            fail(c, 400, "NotFoundException", "Alias '%.300s' is not found.", ref);
        else
            fail(c, 400, "NotFoundException", "Key '%.300s' does not exist", ref ? ref : "");
        break;
    case TR_KMS_EDISABLED: fail(c, 400, "DisabledException", "%.300s is disabled.", ref); break;
    case TR_KMS_EBADCIPHER: fail(c, 400, "InvalidCiphertextException", " "); break;
    case TR_EEXIST:
        fail(c, 400, "AlreadyExistsException", "An alias with the name %.300s already exists",
             ref);
        break;
    case TR_EINVAL:
        fail(c, 400, "ValidationException", "Alias must start with the prefix \"alias/\" and "
             "not \"alias/aws/\"; allowed characters are a-zA-Z0-9/_-");
        break;
    case TR_KMS_ELIMIT: fail(c, 400, "LimitExceededException", "Too many keys or aliases"); break;
    default: fail(c, 500, "KMSInternalException", "%s", tr_kms_strerror(rc)); break;
    }
}

/* ---- authorization (docs/security.md), as the Kinesis face does it ---- */

/* kms:<Op> on resource; AccessDeniedException (400, as AWS KMS answers it) when denied. */
static int authorize(kms_call *c, const char *resource) {
    char action[64], msg[900];
    snprintf(action, sizeof action, "kms:%s", c->op->name);
    if (tr_req_authorize(c->req, action, resource, msg, sizeof msg)) return 0;
    return fail(c, 400, "AccessDeniedException", "%s", msg);
}

/* The resource a key reference names: the key's ARN when it names a key (by id, ARN, alias
 * or alias ARN, as IAM checks the key an alias points to), else the ARN it would have. */
static void resource_of(kms_call *c, const char *ref, char *out, size_t cap) {
    tr_kms_key_info *k = malloc(sizeof *k);
    if (k != NULL && tr_kms_describe(c->a->kms, ref, k) == TR_OK) {
        snprintf(out, cap, "%s", k->arn);
    } else if (strncmp(ref, "arn:", 4) == 0) {
        snprintf(out, cap, "%.1000s", ref);
    } else {
        char prefix[96];
        tr_kms_arn_prefix(c->a->kms, prefix, sizeof prefix);
        snprintf(out, cap, "%s%s%.1000s", prefix, strncmp(ref, "alias/", 6) == 0 ? "" : "key/",
                 ref);
    }
    free(k);
}

/* Before the operation: CreateKey, ListKeys and ListAliases on "*"; the others on the key
 * their KeyId names (CreateAlias: TargetKeyId, and the alias itself, as AWS checks both).
 * A missing KeyId is left to the operation's validation. Decrypt's key is the ciphertext's:
 * decrypt() checks it once known (and KeyId here when given). */
static int authorize_input(kms_call *c) {
    const char *op = c->op->name;
    if (strcmp(op, "CreateKey") == 0 || strcmp(op, "ListKeys") == 0 ||
        strcmp(op, "ListAliases") == 0)
        return authorize(c, "*");
    int alias = strcmp(op, "CreateAlias") == 0;
    const char *ref = json_string_value(json_object_get(c->in, alias ? "TargetKeyId" : "KeyId"));
    char arn[1200];
    if (ref != NULL && ref[0] != '\0') {
        resource_of(c, ref, arn, sizeof arn);
        if (authorize(c, arn) != 0) return -1;
    }
    const char *name = alias ? json_string_value(json_object_get(c->in, "AliasName")) : NULL;
    if (name != NULL && name[0] != '\0') {
        char prefix[96];
        tr_kms_arn_prefix(c->a->kms, prefix, sizeof prefix);
        snprintf(arn, sizeof arn, "%s%.1000s", prefix, name);
        if (authorize(c, arn) != 0) return -1;
    }
    return 0;
}

/* ---- answers ---- */

static void w_time(tr_writer *w, const char *key, int64_t ms) { tr_w_ktime_ms(w, key, ms); }

static void w_metadata(kms_call *c, const tr_kms_key_info *k) {
    tr_writer *w = &c->out;
    tr_w_key(w, "KeyMetadata");
    tr_w_obj_begin(w);
    char account[32];
    const char *p = strchr(k->arn + 12, ':'); /* arn:aws:kms:<region>:<account>:key/... */
    snprintf(account, sizeof account, "%.*s", p ? (int)(strchr(p + 1, ':') - p - 1) : 0,
             p ? p + 1 : "");
    tr_w_kstr(w, "AWSAccountId", account);
    tr_w_kstr(w, "KeyId", k->id);
    tr_w_kstr(w, "Arn", k->arn);
    w_time(w, "CreationDate", k->created_ms);
    tr_w_kbool(w, "Enabled", k->enabled);
    tr_w_kstr(w, "Description", k->description);
    tr_w_kstr(w, "KeyUsage", "ENCRYPT_DECRYPT");
    tr_w_kstr(w, "KeyState", k->enabled ? "Enabled" : "Disabled");
    tr_w_kstr(w, "Origin", "AWS_KMS");
    tr_w_kstr(w, "KeyManager", k->aws_managed ? "AWS" : "CUSTOMER");
    tr_w_kstr(w, "CustomerMasterKeySpec", "SYMMETRIC_DEFAULT");
    tr_w_kstr(w, "KeySpec", "SYMMETRIC_DEFAULT");
    tr_w_key(w, "EncryptionAlgorithms");
    tr_w_arr_begin(w);
    tr_w_str(w, "SYMMETRIC_DEFAULT");
    tr_w_arr_end(w);
    tr_w_kbool(w, "MultiRegion", 0);
    tr_w_obj_end(w);
}

static void empty(kms_call *c) {
    tr_w_obj_begin(&c->out);
    tr_w_obj_end(&c->out);
}

/* ---- operations ---- */

static void create_key(kms_call *c) {
    const char *desc = "", *usage = NULL, *spec = NULL;
    if (str(c, "Description", "description", 0, TR_KMS_DESC_MAX, &desc) != 0 ||
        str(c, "KeyUsage", "keyUsage", 0, 64, &usage) != 0 ||
        str(c, "KeySpec", "keySpec", 0, 64, &spec) != 0)
        return;
    if (usage != NULL && strcmp(usage, "ENCRYPT_DECRYPT") != 0) {
        fail(c, 400, "UnsupportedOperationException",
             "KeyUsage %.64s is not supported here: only ENCRYPT_DECRYPT", usage);
        return;
    }
    if (spec != NULL && strcmp(spec, "SYMMETRIC_DEFAULT") != 0) {
        fail(c, 400, "UnsupportedOperationException",
             "KeySpec %.64s is not supported here: only SYMMETRIC_DEFAULT", spec);
        return;
    }
    tr_kms_key_info k;
    int rc = tr_kms_create_key(c->a->kms, desc, &k);
    if (rc != TR_OK) {
        fail_kms(c, rc, NULL);
        return;
    }
    tr_w_obj_begin(&c->out);
    w_metadata(c, &k);
    tr_w_obj_end(&c->out);
}

/* KeyId: required, resolved; 0 with info filled or -1 with the error recorded. */
static int key_of(kms_call *c, const char **ref, tr_kms_key_info *info) {
    if (str(c, "KeyId", "keyId", 1, 2048, ref) != 0) return -1;
    int rc = tr_kms_describe(c->a->kms, *ref, info);
    if (rc != TR_OK) fail_kms(c, rc, *ref);
    return rc == TR_OK ? 0 : -1;
}

static void describe_key(kms_call *c) {
    const char *ref = NULL;
    tr_kms_key_info k;
    if (key_of(c, &ref, &k) != 0) return;
    tr_w_obj_begin(&c->out);
    w_metadata(c, &k);
    tr_w_obj_end(&c->out);
}

static int w_key_entry(void *ctx, const tr_kms_key_info *k) {
    tr_writer *w = ctx;
    tr_w_obj_begin(w);
    tr_w_kstr(w, "KeyId", k->id);
    tr_w_kstr(w, "KeyArn", k->arn);
    tr_w_obj_end(w);
    return 0;
}

static void list_keys(kms_call *c) {
    tr_w_obj_begin(&c->out);
    tr_w_key(&c->out, "Keys");
    tr_w_arr_begin(&c->out);
    tr_kms_list_keys(c->a->kms, w_key_entry, &c->out);
    tr_w_arr_end(&c->out);
    tr_w_kbool(&c->out, "Truncated", 0);
    tr_w_obj_end(&c->out);
}

typedef struct alias_ctx {
    kms_call *c;
    char prefix[96]; /* arn:aws:kms:<region>:<account>: */
} alias_ctx;

static int w_alias(void *ctx, const char *name, const char *key_id, int64_t created_ms) {
    alias_ctx *x = ctx;
    tr_writer *w = &x->c->out;
    char arn[TR_KMS_ALIAS_MAX + 100];
    snprintf(arn, sizeof arn, "%s%s", x->prefix, name);
    tr_w_obj_begin(w);
    tr_w_kstr(w, "AliasName", name);
    tr_w_kstr(w, "AliasArn", arn);
    if (key_id[0] != '\0') tr_w_kstr(w, "TargetKeyId", key_id);
    w_time(w, "CreationDate", created_ms);
    w_time(w, "LastUpdatedDate", created_ms);
    tr_w_obj_end(w);
    return 0;
}

/* "arn:aws:kms:<region>:<account>:" of a key's ARN. */
static void arn_prefix(const tr_kms_key_info *k, char *out, size_t cap) {
    const char *key = strstr(k->arn, "key/");
    snprintf(out, cap, "%.*s", key ? (int)(key - k->arn) : 0, k->arn);
}

static void list_aliases(kms_call *c) {
    const char *ref = NULL;
    if (str(c, "KeyId", "keyId", 0, 2048, &ref) != 0) return;
    alias_ctx x = {.c = c};
    /* Any key's ARN gives the prefix; the AWS-managed Kinesis key always exists. */
    tr_kms_key_info *k = malloc(sizeof *k);
    int rc = k == NULL ? TR_ENOMEM : tr_kms_describe(c->a->kms, ref ? ref : "alias/aws/kinesis", k);
    if (rc == TR_OK) arn_prefix(k, x.prefix, sizeof x.prefix);
    free(k);
    if (rc != TR_OK) {
        fail_kms(c, rc, ref);
        return;
    }
    tr_w_obj_begin(&c->out);
    tr_w_key(&c->out, "Aliases");
    tr_w_arr_begin(&c->out);
    rc = tr_kms_list_aliases(c->a->kms, ref, w_alias, &x);
    tr_w_arr_end(&c->out);
    tr_w_kbool(&c->out, "Truncated", 0);
    tr_w_obj_end(&c->out);
    if (rc != TR_OK) fail_kms(c, rc, ref);
}

static void create_alias(kms_call *c) {
    const char *name = NULL, *target = NULL;
    if (str(c, "AliasName", "aliasName", 1, TR_KMS_ALIAS_MAX, &name) != 0 ||
        str(c, "TargetKeyId", "targetKeyId", 1, 2048, &target) != 0)
        return;
    int rc = tr_kms_create_alias(c->a->kms, name, target);
    if (rc == TR_EEXIST) {
        tr_kms_key_info *k = malloc(sizeof *k);
        char prefix[96] = "";
        if (k != NULL && tr_kms_describe(c->a->kms, target, k) == TR_OK)
            arn_prefix(k, prefix, sizeof prefix);
        free(k);
        char arn[TR_KMS_ALIAS_MAX + 100];
        snprintf(arn, sizeof arn, "%s%s", prefix, name);
        fail_kms(c, rc, arn);
    } else if (rc != TR_OK) {
        fail_kms(c, rc, rc == TR_ENOENT ? target : name);
    } else {
        empty(c);
    }
}

/* EnableKey, DisableKey, Enable/DisableKeyRotation, RotateKeyOnDemand. */
static void change(kms_call *c, int (*fn)(tr_kms *, const char *, int), int arg) {
    const char *ref = NULL;
    tr_kms_key_info k;
    if (key_of(c, &ref, &k) != 0) return;
    int rc = fn(c->a->kms, ref, arg);
    if (rc != TR_OK) {
        fail_kms(c, rc, k.arn);
        return;
    }
    empty(c);
}

static int rotate(tr_kms *k, const char *ref, int unused) {
    (void)unused;
    return tr_kms_rotate(k, ref);
}

static void enable_key(kms_call *c) { change(c, tr_kms_set_enabled, 1); }
static void disable_key(kms_call *c) { change(c, tr_kms_set_enabled, 0); }
static void enable_rotation(kms_call *c) { change(c, tr_kms_set_rotation, 1); }
static void disable_rotation(kms_call *c) { change(c, tr_kms_set_rotation, 0); }

static void rotate_on_demand(kms_call *c) {
    change(c, rotate, 0);
    if (c->failed) return;
    tr_writer_free(&c->out);
    tr_writer_init(&c->out, c->fmt);
    const char *ref = json_string_value(json_object_get(c->in, "KeyId"));
    tr_kms_key_info k;
    tr_kms_describe(c->a->kms, ref, &k);
    tr_w_obj_begin(&c->out);
    tr_w_kstr(&c->out, "KeyId", k.id);
    tr_w_obj_end(&c->out);
}

static void rotation_status(kms_call *c) {
    const char *ref = NULL;
    tr_kms_key_info k;
    if (key_of(c, &ref, &k) != 0) return;
    tr_w_obj_begin(&c->out);
    tr_w_kbool(&c->out, "KeyRotationEnabled", k.rotation);
    tr_w_kstr(&c->out, "KeyId", k.arn);
    tr_w_obj_end(&c->out);
}

/* Encrypts pt under KeyId with the context; writes CiphertextBlob and KeyId. */
static int w_encrypted(kms_call *c, const char *ref, const uint8_t *pt, size_t n) {
    char aad[MAX_CONTEXT_BYTES];
    size_t aad_len;
    if (context_aad(c, aad, sizeof aad, &aad_len) != 0) return -1;
    uint8_t *ct;
    size_t ct_len;
    tr_kms_key_info k;
    int rc = tr_kms_encrypt(c->a->kms, ref, aad, aad_len, pt, n, &ct, &ct_len, &k);
    if (rc != TR_OK) {
        fail_kms(c, rc, ref);
        return -1;
    }
    tr_w_key(&c->out, "CiphertextBlob");
    tr_w_blob(&c->out, ct, ct_len);
    tr_w_kstr(&c->out, "KeyId", k.arn);
    free(ct);
    return 0;
}

static void encrypt(kms_call *c) {
    const char *ref = NULL;
    uint8_t *pt = NULL;
    size_t n = 0;
    if (str(c, "KeyId", "keyId", 1, 2048, &ref) != 0 ||
        blob(c, "Plaintext", "plaintext", TR_KMS_MAX_PLAINTEXT, &pt, &n) != 0)
        return;
    tr_w_obj_begin(&c->out);
    if (w_encrypted(c, ref, pt, n) == 0) tr_w_kstr(&c->out, "EncryptionAlgorithm", "SYMMETRIC_DEFAULT");
    tr_w_obj_end(&c->out);
    OPENSSL_cleanse(pt, n);
    free(pt);
}

static void generate_data_key(kms_call *c) {
    const char *ref = NULL, *spec = NULL;
    json_int_t nbytes = 0;
    if (str(c, "KeyId", "keyId", 1, 2048, &ref) != 0 ||
        str(c, "KeySpec", "keySpec", 0, 16, &spec) != 0)
        return;
    json_t *nb = json_object_get(c->in, "NumberOfBytes");
    if (nb != NULL && !json_is_null(nb)) {
        if (!json_is_integer(nb)) {
            fail(c, 400, "SerializationException", "NumberOfBytes must be a number");
            return;
        }
        nbytes = json_integer_value(nb);
        if (nbytes < 1 || nbytes > 1024) {
            invalid(c, "numberOfBytes", nbytes < 1 ? "Member must have value greater than or "
                                                     "equal to 1"
                                                   : "Member must have value less than or "
                                                     "equal to 1024");
            return;
        }
    }
    if (spec != NULL && nbytes == 0) {
        if (strcmp(spec, "AES_256") == 0) nbytes = 32;
        else if (strcmp(spec, "AES_128") == 0) nbytes = 16;
        else {
            invalid(c, "keySpec", "Member must satisfy enum value set: [AES_256, AES_128]");
            return;
        }
    } else if (spec != NULL) {
        fail(c, 400, "ValidationException", "Please specify either number of bytes or key spec.");
        return;
    }
    if (nbytes == 0) {
        fail(c, 400, "ValidationException", "Please specify either number of bytes or key spec.");
        return;
    }
    uint8_t key[1024];
    if (RAND_bytes(key, (int)nbytes) != 1) {
        fail(c, 500, "KMSInternalException", "no randomness");
        return;
    }
    tr_w_obj_begin(&c->out);
    if (w_encrypted(c, ref, key, (size_t)nbytes) == 0) {
        tr_w_key(&c->out, "Plaintext");
        tr_w_blob(&c->out, key, (size_t)nbytes);
    }
    tr_w_obj_end(&c->out);
    OPENSSL_cleanse(key, sizeof key);
}

static void decrypt(kms_call *c) {
    const char *ref = NULL;
    uint8_t *ct = NULL, *pt = NULL;
    size_t n = 0, pt_len = 0, aad_len = 0;
    char aad[MAX_CONTEXT_BYTES];
    if (str(c, "KeyId", "keyId", 0, 2048, &ref) != 0 ||
        blob(c, "CiphertextBlob", "ciphertextBlob", 6144, &ct, &n) != 0)
        return;
    tr_kms_key_info used, want;
    int rc = context_aad(c, aad, sizeof aad, &aad_len) != 0 ? TR_OK
             : tr_kms_decrypt(c->a->kms, ct, n, aad, aad_len, &pt, &pt_len, &used);
    free(ct);
    if (c->failed) return;
    if (rc != TR_OK) {
        fail_kms(c, rc, ref ? ref : "The key");
        return;
    }
    if (authorize(c, used.arn) != 0) {
        /* kms:Decrypt on the key that sealed it: nothing of the plaintext goes out. */
    } else if (ref != NULL && (tr_kms_describe(c->a->kms, ref, &want) != TR_OK ||
                               strcmp(want.id, used.id) != 0)) {
        fail(c, 400, "IncorrectKeyException",
             "The key ID in the request does not identify a CMK that can perform this "
             "operation.");
    } else {
        tr_w_obj_begin(&c->out);
        tr_w_kstr(&c->out, "KeyId", used.arn);
        tr_w_key(&c->out, "Plaintext");
        tr_w_blob(&c->out, pt, pt_len);
        tr_w_kstr(&c->out, "EncryptionAlgorithm", "SYMMETRIC_DEFAULT");
        tr_w_obj_end(&c->out);
    }
    OPENSSL_cleanse(pt, pt_len);
    free(pt);
}

static const kms_op ops[] = {
    {"CreateAlias", create_alias},
    {"CreateKey", create_key},
    {"Decrypt", decrypt},
    {"DescribeKey", describe_key},
    {"DisableKey", disable_key},
    {"DisableKeyRotation", disable_rotation},
    {"EnableKey", enable_key},
    {"EnableKeyRotation", enable_rotation},
    {"Encrypt", encrypt},
    {"GenerateDataKey", generate_data_key},
    {"GetKeyRotationStatus", rotation_status},
    {"ListAliases", list_aliases},
    {"ListKeys", list_keys},
    {"RotateKeyOnDemand", rotate_on_demand},
};

/* ---- dispatch ---- */

static void run_on_worker(tr_work *w) {
    kms_call *c = (kms_call *)w;
    size_t len = 0;
    const uint8_t *body = tr_req_body(c->req, &len);
    char err[256];
    c->in = tr_wire_parse(c->fmt, body, len, err, sizeof err);
    if (c->in == NULL || !json_is_object(c->in)) {
        fail(c, 400, "SerializationException", "%s",
             c->in == NULL ? err : "The request body is not an object");
        return;
    }
    if (authorize_input(c) != 0) return;
    c->op->fn(c);
}

static void done_on_loop(tr_task *t) {
    kms_call *c = (kms_call *)((char *)t - offsetof(tr_work, done));
    size_t len = 0;
    uint8_t *body = c->failed ? NULL : tr_writer_take(&c->out, &len);
    if (c->failed)
        tr_aws_send_error(c->req, c->fmt, c->status, c->err_type, c->err_msg);
    else if (body == NULL)
        tr_aws_send_error(c->req, c->fmt, 500, "KMSInternalException", "out of memory");
    else
        tr_resp_send(c->req, 200, tr_aws_content_type(c->fmt), body, len);
    if (body != NULL) OPENSSL_cleanse(body, len); /* may hold a plaintext */
    free(body);
    json_decref(c->in);
    tr_writer_free(&c->out);
    tr_req_unref(c->req);
    free(c);
}

static void on_request(tr_req *req, void *ctx) {
    tr_kms_api *a = ctx;
    tr_wire_format fmt = tr_aws_request_format(req);
    const char *target = tr_req_target(req);
    const kms_op *op = NULL;
    for (size_t i = 0; target != NULL && i < sizeof ops / sizeof ops[0]; i++)
        if (strcmp(target + strlen(TARGET_PREFIX), ops[i].name) == 0) op = &ops[i];
    if (op == NULL) {
        char msg[300];
        snprintf(msg, sizeof msg, "Unknown operation %.200s", target ? target : "");
        tr_aws_send_error(req, fmt, 400, "UnknownOperationException", msg);
        return;
    }
    kms_call *c = calloc(1, sizeof *c);
    if (c == NULL) {
        tr_aws_send_error(req, fmt, 500, "KMSInternalException", "out of memory");
        return;
    }
    c->req = req;
    tr_req_ref(req);
    c->a = a;
    c->op = op;
    c->fmt = fmt;
    tr_writer_init(&c->out, fmt);
    c->work.run = run_on_worker;
    c->work.done.fn = done_on_loop;
    if (tr_workpool_submit(tr_server_workpool(a->srv), &c->work) != TR_OK) {
        fail(c, 503, "KMSInternalException", "The server is shutting down");
        done_on_loop(&c->work.done);
    }
}

static const tr_handler kms_handler = {.on_request = on_request};

int tr_kms_api_new(tr_server *srv, tr_kms *kms, tr_kms_api **out) {
    tr_kms_api *a = calloc(1, sizeof *a);
    if (a == NULL) return TR_ENOMEM;
    a->srv = srv;
    a->kms = kms;
    int rc = tr_router_add(tr_server_router(srv), "POST", "/*", TARGET_PREFIX, &kms_handler, a);
    if (rc != TR_OK) {
        free(a);
        return rc;
    }
    *out = a;
    return TR_OK;
}

void tr_kms_api_free(tr_kms_api *a) { free(a); }
