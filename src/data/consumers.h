/* Registered stream consumers (enhanced fan-out), kept in the catalog. A consumer is named per
 * stream; its ARN is the stream's ARN + "/consumer/<name>:<creation epoch seconds>", so a
 * consumer that is deregistered and registered again gets a new ARN, as on AWS. */
#ifndef TR_DATA_CONSUMERS_H
#define TR_DATA_CONSUMERS_H

#include <stdint.h>

#include "data/streams.h"

#define TR_MAX_CONSUMERS 20 /* per stream, AWS's default limit */

typedef struct tr_data_consumer {
    int64_t stream_id;
    char name[TR_NAME_MAX + 1];
    char arn[320 + TR_NAME_MAX + 48];
    char stream_arn[320];
    int64_t created_ms;
    const char *status;   /* "CREATING" for stream_transition_ms after creation, then "ACTIVE" */
} tr_data_consumer;

/* Each returns 0, or -1 with err set in AWS terms. */
int tr_data_consumer_register(tr_data *d, const tr_data_stream *s, const char *name,
                              tr_data_consumer *out, tr_data_err *err);
/* By consumer ARN, or by stream + name when arn is NULL. *stream_out (if not NULL) receives a
 * referenced stream snapshot. */
int tr_data_consumer_find(tr_data *d, const char *stream_arn, const char *name,
                          const char *consumer_arn, tr_data_consumer *out,
                          tr_data_stream **stream_out, tr_data_err *err);
int tr_data_consumer_deregister(tr_data *d, const tr_data_consumer *c, tr_data_err *err);
/* Calls fn for each consumer of s in name order; returns the count or -1 with err set. */
int tr_data_consumer_list(tr_data *d, const tr_data_stream *s,
                          int (*fn)(void *ctx, const tr_data_consumer *c), void *ctx,
                          tr_data_err *err);

#endif
