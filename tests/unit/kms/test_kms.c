/* The local key service: root key handling, the sealed keyring across reopen, keys and
 * aliases, envelope sealing (AAD binding, tampering, nonces), rotation and disabled keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kms/kms.h"
#include "tmpdir.h"
#include "util/error.h"

#define ROOT_A "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define ROOT_B "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

typedef struct fixture {
    char dir[256];
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(tmpdir_make(f->dir, sizeof f->dir));
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    tmpdir_remove(f->dir);
    free(f);
    return 0;
}

static tr_kms *open_env(const fixture *f, const char *root, int want) {
    tr_kms_config cfg = {.data_dir = f->dir, .root_key_env = root};
    tr_kms *k = NULL;
    char err[1024] = "";
    int rc = tr_kms_open(&cfg, &k, err, sizeof err);
    assert_int_equal(rc == TR_OK, want);
    if (!want) assert_true(strlen(err) > 10);
    return k;
}

static void file_mode(const char *path, unsigned want) {
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, want);
}

static void keyring_reopens_and_wrong_root_refused(void **state) {
    fixture *f = *state;
    tr_kms *k = open_env(f, ROOT_A, 1);
    tr_kms_key_info info;
    assert_int_equal(tr_kms_create_key(k, "mine", &info), TR_OK);
    assert_int_equal(strlen(info.id), 36);
    assert_non_null(strstr(info.arn, "arn:aws:kms:us-east-1:000000000000:key/"));
    assert_int_equal(tr_kms_create_alias(k, "alias/mine", info.id), TR_OK);
    assert_int_equal(tr_kms_create_alias(k, "alias/mine", info.id), TR_EEXIST);
    assert_int_equal(tr_kms_create_alias(k, "alias/aws/x", info.id), TR_EINVAL);
    tr_kms_close(k);

    char path[400];
    snprintf(path, sizeof path, "%s/keyring.bin", f->dir);
    file_mode(path, 0600);
    struct stat before, after;
    assert_int_equal(stat(path, &before), 0);
    assert_null(open_env(f, ROOT_B, 0)); /* wrong root key: refused, keyring untouched */
    assert_int_equal(stat(path, &after), 0);
    assert_int_equal(before.st_size, after.st_size);
    assert_int_equal(before.st_mtime, after.st_mtime);

    k = open_env(f, ROOT_A, 1);
    tr_kms_key_info again;
    assert_int_equal(tr_kms_describe(k, "alias/mine", &again), TR_OK);
    assert_string_equal(again.id, info.id);
    assert_string_equal(again.description, "mine");
    assert_int_equal(tr_kms_describe(k, info.arn, NULL), TR_OK);
    assert_int_equal(tr_kms_describe(k, "arn:aws:kms:us-east-1:000000000000:alias/mine", NULL),
                     TR_OK);
    assert_int_equal(tr_kms_describe(k, "alias/nope", NULL), TR_ENOENT);
    tr_kms_close(k);
}

static void root_key_files(void **state) {
    fixture *f = *state;
    /* Nothing configured: a root key file is made, 0600. */
    tr_kms_config cfg = {.data_dir = f->dir, .root_key_env = ""};
    tr_kms *k = NULL;
    char err[1024] = "", path[400];
    assert_int_equal(tr_kms_open(&cfg, &k, err, sizeof err), TR_OK);
    tr_kms_close(k);
    snprintf(path, sizeof path, "%s/root.key", f->dir);
    file_mode(path, 0600);
    assert_int_equal(tr_kms_open(&cfg, &k, err, sizeof err), TR_OK);
    tr_kms_close(k);
    /* Readable by others: refused with a message naming the file. */
    chmod(path, 0644);
    cfg.root_key_file = path;
    assert_int_not_equal(tr_kms_open(&cfg, &k, err, sizeof err), TR_OK);
    assert_non_null(strstr(err, "chmod 600"));
    chmod(path, 0600);
    assert_int_equal(tr_kms_open(&cfg, &k, err, sizeof err), TR_OK);
    tr_kms_close(k);
    /* The keyring exists but its root key is gone: no new one is made. */
    unlink(path);
    cfg.root_key_file = NULL;
    assert_int_not_equal(tr_kms_open(&cfg, &k, err, sizeof err), TR_OK);
    assert_non_null(strstr(err, "no root key"));
    /* A raw 32-byte file works too. */
    char raw[400];
    snprintf(raw, sizeof raw, "%s/raw.key", f->dir);
    int fd = open(raw, O_WRONLY | O_CREAT, 0600);
    assert_int_equal(write(fd, "0123456789abcdef0123456789abcdef", 32), 32);
    close(fd);
    char dir2[300];
    snprintf(dir2, sizeof dir2, "%s/d2", f->dir);
    mkdir(dir2, 0700);
    tr_kms_config cfg2 = {.data_dir = dir2, .root_key_file = raw};
    assert_int_equal(tr_kms_open(&cfg2, &k, err, sizeof err), TR_OK);
    tr_kms_close(k);
}

static void seal_open_and_bindings(void **state) {
    fixture *f = *state;
    tr_kms *k = open_env(f, ROOT_A, 1);
    const char msg[] = "the quick brown fox";
    size_t n = sizeof msg - 1;
    uint8_t a[64 + TR_KMS_SEAL_OVERHEAD], b[64 + TR_KMS_SEAL_OVERHEAD];
    assert_int_equal(tr_kms_seal(k, "alias/aws/kinesis", "s1", "aad", 3, (const uint8_t *)msg,
                                 n, a), TR_OK);
    assert_int_equal(tr_kms_seal(k, "alias/aws/kinesis", "s1", "aad", 3, (const uint8_t *)msg,
                                 n, b), TR_OK);
    /* Same data key, different nonces, no plaintext visible. */
    assert_memory_equal(a + 1, b + 1, 4);
    assert_memory_not_equal(a + 5, b + 5, 12);
    assert_null(memmem(a, n + TR_KMS_SEAL_OVERHEAD, "quick", 5));
    uint8_t *pt;
    size_t len;
    uint8_t c[sizeof a];
    memcpy(c, a, sizeof a);
    assert_int_equal(tr_kms_open_sealed(k, "aad", 3, c, n + TR_KMS_SEAL_OVERHEAD, &pt, &len),
                     TR_OK);
    assert_int_equal(len, n);
    assert_memory_equal(pt, msg, n);
    memcpy(c, a, sizeof a); /* other AAD */
    assert_int_equal(tr_kms_open_sealed(k, "aaX", 3, c, n + TR_KMS_SEAL_OVERHEAD, &pt, &len),
                     TR_KMS_EBADCIPHER);
    memcpy(c, a, sizeof a); /* a flipped bit */
    c[TR_KMS_SEAL_HEADER + 3] ^= 1;
    assert_int_equal(tr_kms_open_sealed(k, "aad", 3, c, n + TR_KMS_SEAL_OVERHEAD, &pt, &len),
                     TR_KMS_EBADCIPHER);
    /* Sealing in place. */
    uint8_t in[64 + TR_KMS_SEAL_OVERHEAD];
    memcpy(in + TR_KMS_SEAL_HEADER, msg, n);
    assert_int_equal(tr_kms_seal(k, "alias/aws/kinesis", "s2", NULL, 0,
                                 in + TR_KMS_SEAL_HEADER, n, in), TR_OK);
    assert_int_equal(tr_kms_open_sealed(k, NULL, 0, in, n + TR_KMS_SEAL_OVERHEAD, &pt, &len),
                     TR_OK);
    assert_memory_equal(pt, msg, n);

    /* After a restart: old payloads open, new seals use a new data key. */
    tr_kms_close(k);
    k = open_env(f, ROOT_A, 1);
    memcpy(c, a, sizeof a);
    assert_int_equal(tr_kms_open_sealed(k, "aad", 3, c, n + TR_KMS_SEAL_OVERHEAD, &pt, &len),
                     TR_OK);
    assert_memory_equal(pt, msg, n);
    assert_int_equal(tr_kms_seal(k, "alias/aws/kinesis", "s1", "aad", 3, (const uint8_t *)msg,
                                 n, b), TR_OK);
    assert_memory_not_equal(a + 1, b + 1, 4);

    /* Rotation: a new version; everything sealed before still opens. */
    tr_kms_key_info info;
    assert_int_equal(tr_kms_rotate(k, "alias/aws/kinesis"), TR_OK);
    assert_int_equal(tr_kms_describe(k, "alias/aws/kinesis", &info), TR_OK);
    assert_int_equal(info.versions, 2);
    uint8_t d[sizeof a];
    assert_int_equal(tr_kms_seal(k, "alias/aws/kinesis", "s1", "aad", 3, (const uint8_t *)msg,
                                 n, d), TR_OK);
    assert_memory_not_equal(d + 1, b + 1, 4); /* a data key under the new version */
    tr_kms_close(k);
    k = open_env(f, ROOT_A, 1);
    uint8_t *all[] = {a, b, d};
    for (int i = 0; i < 3; i++) {
        memcpy(c, all[i], sizeof c);
        assert_int_equal(tr_kms_open_sealed(k, "aad", 3, c, n + TR_KMS_SEAL_OVERHEAD, &pt, &len),
                         TR_OK);
        assert_memory_equal(pt, msg, n);
    }

    /* A disabled key neither seals nor opens; enabled again, both work. */
    assert_int_equal(tr_kms_set_enabled(k, "alias/aws/kinesis", 0), TR_OK);
    assert_int_equal(tr_kms_seal(k, "alias/aws/kinesis", "s1", NULL, 0, (const uint8_t *)msg,
                                 n, b), TR_KMS_EDISABLED);
    memcpy(c, a, sizeof a);
    assert_int_equal(tr_kms_open_sealed(k, "aad", 3, c, n + TR_KMS_SEAL_OVERHEAD, &pt, &len),
                     TR_KMS_EDISABLED);
    assert_int_equal(tr_kms_set_enabled(k, info.id, 1), TR_OK);
    assert_int_equal(tr_kms_open_sealed(k, "aad", 3, c, n + TR_KMS_SEAL_OVERHEAD, &pt, &len),
                     TR_OK);
    tr_kms_close(k);
}

static void api_blobs(void **state) {
    fixture *f = *state;
    tr_kms *k = open_env(f, ROOT_A, 1);
    tr_kms_key_info info, used;
    assert_int_equal(tr_kms_create_key(k, "", &info), TR_OK);
    uint8_t *blob, *pt;
    size_t blob_len, len;
    assert_int_equal(tr_kms_encrypt(k, info.id, "ctx", 3, (const uint8_t *)"hello", 5, &blob,
                                    &blob_len, &used), TR_OK);
    assert_string_equal(used.id, info.id);
    assert_int_equal(tr_kms_rotate(k, info.id), TR_OK);
    assert_int_equal(tr_kms_decrypt(k, blob, blob_len, "ctx", 3, &pt, &len, &used), TR_OK);
    assert_int_equal(len, 5);
    assert_memory_equal(pt, "hello", 5);
    free(pt);
    assert_int_equal(tr_kms_decrypt(k, blob, blob_len, "ctX", 3, &pt, &len, &used),
                     TR_KMS_EBADCIPHER);
    assert_int_equal(tr_kms_decrypt(k, blob, 10, NULL, 0, &pt, &len, &used), TR_KMS_EBADCIPHER);
    assert_int_equal(tr_kms_set_enabled(k, info.id, 0), TR_OK);
    assert_int_equal(tr_kms_decrypt(k, blob, blob_len, "ctx", 3, &pt, &len, &used),
                     TR_KMS_EDISABLED);
    free(blob);
    tr_kms_close(k);
}

static int count_key(void *ctx, const tr_kms_key_info *key) {
    (void)key;
    (*(int *)ctx)++;
    return 0;
}

static int count_alias(void *ctx, const char *a, const char *id, int64_t ms) {
    (void)a, (void)id, (void)ms;
    (*(int *)ctx)++;
    return 0;
}

static void lists(void **state) {
    fixture *f = *state;
    tr_kms *k = open_env(f, ROOT_A, 1);
    tr_kms_key_info info;
    assert_int_equal(tr_kms_create_key(k, "a", &info), TR_OK);
    assert_int_equal(tr_kms_create_alias(k, "alias/one", info.id), TR_OK);
    assert_int_equal(tr_kms_describe(k, "alias/aws/kinesisvideo", NULL), TR_OK);
    int keys = 0, aliases = 0, of_one = 0;
    tr_kms_list_keys(k, count_key, &keys);
    tr_kms_list_aliases(k, NULL, count_alias, &aliases);
    tr_kms_list_aliases(k, info.id, count_alias, &of_one);
    assert_int_equal(keys, 2);
    assert_int_equal(aliases, 2);
    assert_int_equal(of_one, 1);
    assert_int_equal(tr_kms_set_rotation(k, info.id, 1), TR_OK);
    assert_int_equal(tr_kms_describe(k, "alias/one", &info), TR_OK);
    assert_int_equal(info.rotation, 1);
    tr_kms_close(k);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(keyring_reopens_and_wrong_root_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(root_key_files, setup, teardown),
        cmocka_unit_test_setup_teardown(seal_open_and_bindings, setup, teardown),
        cmocka_unit_test_setup_teardown(api_blobs, setup, teardown),
        cmocka_unit_test_setup_teardown(lists, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
