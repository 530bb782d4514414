/* The Kinesis Data Streams API (JSON 1.1 and CBOR, `X-Amz-Target: Kinesis_20131202.<Op>`) on
 * the data-streams service. Thin: decode the request, validate it as AWS does, call the
 * service, encode the answer. */
#ifndef TR_API_KINESIS_H
#define TR_API_KINESIS_H

#include "data/streams.h"
#include "kms/kms.h"
#include "net/server.h"
#include "util/notify.h"

typedef struct tr_kinesis tr_kinesis;

typedef struct tr_kinesis_config {
    int aws_limits;     /* 1: per-shard throughput limits as AWS enforces them (--limits aws) */
    tr_notify *commits; /* bumped by the store's commit hook: wakes SubscribeToShard feeds */
    tr_kms *kms;        /* seals the records of encrypted streams */
} tr_kinesis_config;

/* Registers the routes on the server's router. The service must outlive the server. */
int tr_kinesis_new(tr_server *srv, tr_data *data, const tr_kinesis_config *cfg,
                   tr_kinesis **out);
/* Ends subscriptions and stops the thread that feeds them: after tr_server_run returns and
 * before tr_server_free, while the loop's task queue still exists. */
void tr_kinesis_stop(tr_kinesis *k);
void tr_kinesis_free(tr_kinesis *k);

/* Seals n records of the encrypted stream stream_id (CMK key_id) for the append, as
 * PutRecord and PutRecords do (api/kinesis_crypto.c): each record's data is replaced by a
 * malloc'd sealed copy that owned[i] takes (freeing what owned[i] held), and it gets
 * TR_FLAG_ENCRYPTED. Runs on the caller's thread. Returns TR_OK or the key service's failure
 * (TR_ENOENT, TR_KMS_EDISABLED, TR_ENOMEM), with the records before the failing one sealed. */
int tr_kinesis_seal_records(tr_kms *kms, int64_t stream_id, const char *key_id,
                            tr_record_in *recs, uint8_t **owned, size_t n);

#endif
