/* Data Streams records at rest: sealed with the stream's data key before the append, opened
 * after the read (kms/kms.h). A sealed record carries TR_FLAG_ENCRYPTED; its AAD is the
 * stream id and the partition key, which are known before the sequence number is, so a
 * payload copied to another stream or key does not open. Records written before encryption
 * was started stay clear and read as they are. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/kinesis_call.h"
#include "core/shard.h"
#include "kms/kms.h"
#include "util/bytes.h"
#include "util/error.h"

#define AAD_STACK 1100

const char *kin_kms_error_type(int rc) {
    switch (rc) {
    case TR_ENOENT: return "KMSNotFoundException";
    case TR_KMS_EDISABLED: return "KMSDisabledException";
    case TR_KMS_EBADCIPHER: return "KMSInvalidStateException";
    default: return "InternalFailure";
    }
}

int kin_kms_fail(kin_call *c, int rc, const char *key_id) {
    const char *type = kin_kms_error_type(rc);
    if (rc == TR_ENOENT)
        return kin_fail(c, 400, type, "Key '%.300s' does not exist.", key_id);
    if (rc == TR_KMS_EDISABLED)
        return kin_fail(c, 400, type, "Key '%.300s' is disabled.", key_id);
    if (rc == TR_KMS_EBADCIPHER)
        return kin_fail(c, 400, type, "A stored record could not be opened with key '%.300s'.",
                        key_id);
    return kin_fail(c, 500, type, "Internal service failure: %s", tr_kms_strerror(rc));
}

/* The stream id and the partition key; *heap set when it had to be allocated. */
static const uint8_t *record_aad(int64_t stream_id, const void *pkey, size_t pkey_len,
                                 uint8_t *stack, size_t *len, uint8_t **heap) {
    *heap = NULL;
    uint8_t *a = 8 + pkey_len <= AAD_STACK ? stack : (*heap = malloc(8 + pkey_len));
    if (a == NULL) return NULL;
    tr_put_u64(a, (uint64_t)stream_id);
    if (pkey_len > 0) memcpy(a + 8, pkey, pkey_len);
    *len = 8 + pkey_len;
    return a;
}

int tr_kinesis_seal_records(tr_kms *kms, int64_t stream_id, const char *key_id,
                            tr_record_in *recs, uint8_t **owned, size_t n) {
    char purpose[48];
    snprintf(purpose, sizeof purpose, "kinesis/%lld", (long long)stream_id);
    uint8_t stack[AAD_STACK];
    for (size_t i = 0; i < n; i++) {
        tr_record_in *r = &recs[i];
        uint8_t *heap, *out = malloc((size_t)r->data_len + TR_KMS_SEAL_OVERHEAD);
        size_t aad_len = 0;
        const uint8_t *aad = record_aad(stream_id, r->pkey, r->pkey_len, stack, &aad_len, &heap);
        int rc = out == NULL || aad == NULL
                     ? TR_ENOMEM
                     : tr_kms_seal(kms, key_id, purpose, aad, aad_len, r->data, r->data_len,
                                   out);
        free(heap);
        if (rc != TR_OK) {
            free(out);
            return rc;
        }
        free(owned[i]);
        owned[i] = out;
        r->data = out;
        r->data_len += TR_KMS_SEAL_OVERHEAD;
        r->flags |= TR_FLAG_ENCRYPTED;
    }
    return TR_OK;
}

int kin_seal_records(kin_call *c, const tr_data_stream *s, tr_record_in *recs, uint8_t **owned,
                     size_t n) {
    tr_kms *kms = c->k->cfg.kms;
    if (!s->encrypted || kms == NULL) return 0;
    int rc = tr_kinesis_seal_records(kms, s->id, s->key_id, recs, owned, n);
    return rc == TR_OK ? 0 : kin_kms_fail(c, rc, s->key_id);
}

int kin_open_records(tr_kms *kms, const tr_data_stream *s, tr_read_batch *b) {
    uint8_t stack[AAD_STACK];
    for (size_t i = 0; i < b->count; i++) {
        tr_record *r = &b->records[i];
        if (!(r->flags & TR_FLAG_ENCRYPTED)) continue;
        if (kms == NULL) return TR_KMS_EBADCIPHER;
        uint8_t *heap, *pt;
        size_t aad_len = 0, pt_len = 0;
        const uint8_t *aad = record_aad(s->id, r->pkey, r->pkey_len, stack, &aad_len, &heap);
        /* The batch's buffer is the reader's own: opened in place. */
        int rc = aad == NULL ? TR_ENOMEM
                             : tr_kms_open_sealed(kms, aad, aad_len, (uint8_t *)r->data,
                                                  r->data_len, &pt, &pt_len);
        free(heap);
        if (rc != TR_OK) return rc;
        r->data = pt;
        r->data_len = (uint32_t)pt_len;
    }
    return TR_OK;
}
