/* A process-wide registry of Prometheus metrics. Any layer may register a series and bump it
 * from any thread (lock-free atomics on the hot path); the net layer renders the text format
 * for GET /metrics. A series is named by metric name plus a label string such as
 * `stream="cam1",shard="shardId-000000000000"` (already escaped by the caller). */
#ifndef TR_UTIL_METRICS_H
#define TR_UTIL_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { TR_METRIC_COUNTER, TR_METRIC_GAUGE, TR_METRIC_HISTOGRAM } tr_metric_type;

typedef struct tr_metric tr_metric;

/* Get-or-create. The returned pointer stays valid until tr_metrics_drop() names its labels or
 * the process ends. Returns NULL only when out of memory; the bump functions accept NULL. */
tr_metric *tr_metric_get(tr_metric_type type, const char *name, const char *help,
                         const char *labels);

void tr_metric_add(tr_metric *m, uint64_t delta);  /* counter or gauge */
void tr_metric_set(tr_metric *m, int64_t value);   /* gauge */
void tr_metric_observe(tr_metric *m, double seconds); /* histogram (latency buckets) */

/* Removes every series whose label string contains `label_fragment` (e.g. a dropped shard's
 * `shard_uid="42"`). Pointers to removed series must no longer be used. */
void tr_metrics_drop(const char *label_fragment);

/* Renders the whole registry in Prometheus text format 0.0.4. Caller frees. */
char *tr_metrics_render(size_t *len_out);

/* Escapes a label value (backslash, quote, newline) into out; returns out. */
char *tr_metrics_escape(const char *value, char *out, size_t out_len);

#endif
