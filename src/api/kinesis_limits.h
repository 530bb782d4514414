/* AWS's per-shard throughput limits, enforced when the server runs with `--limits aws`:
 * writes 1 MiB/s and 1000 records/s, reads 2 MiB/s and 5 GetRecords calls/s, each with one
 * second of burst. Shards are named by their store uid. Thread-safe. */
#ifndef TR_API_KINESIS_LIMITS_H
#define TR_API_KINESIS_LIMITS_H

#include <stddef.h>
#include <stdint.h>

typedef struct kin_limits kin_limits;

kin_limits *kin_limits_new(void);
void kin_limits_free(kin_limits *l);

/* Takes one record of `bytes` from the shard's write allowance: 1, or 0 when over. */
int kin_limits_write(kin_limits *l, int64_t shard_uid, size_t bytes);
/* A GetRecords call: 1, or 0 when over the call rate or still paying for earlier bytes. */
int kin_limits_read_call(kin_limits *l, int64_t shard_uid);
/* Charges the bytes a GetRecords call returned. */
void kin_limits_read_bytes(kin_limits *l, int64_t shard_uid, size_t bytes);

#endif
