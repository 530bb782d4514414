#include "net/storecfg.h"

void tr_config_fill_store(const tr_config *c, tr_store_config *out) {
    tr_store_config_defaults(out);
    out->dir = c->data_dir;
    out->fsync_mode = c->fsync == TR_CONFIG_FSYNC_INTERVAL ? TR_FSYNC_INTERVAL : TR_FSYNC_ALWAYS;
    out->fsync_interval_ms = c->fsync_interval_ms;
    out->storage_threads = c->storage_threads;
    out->shard.segment_max_bytes = c->segment_max_bytes;
    out->shard.segment_max_age_ms = c->segment_max_age_ms;
}
