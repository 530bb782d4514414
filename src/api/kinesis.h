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

#endif
