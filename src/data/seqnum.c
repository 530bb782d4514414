#include "data/seqnum.h"

#include <inttypes.h>
#include <stdio.h>

void tr_seqnum_format(const tr_seqnum *sn, char *out) {
    snprintf(out, TR_SEQNUM_DIGITS + 1, "49%016" PRIu64 "%018" PRIu32 "%020" PRIu64,
             (uint64_t)(sn->stream_id % 10000000000000000ull), sn->shard_index, sn->seq);
}

static int digits(const char *s, size_t n, uint64_t *out) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int tr_seqnum_parse(const char *s, size_t len, tr_seqnum *out) {
    uint64_t stream, shard, seq;
    if (len != TR_SEQNUM_DIGITS || s[0] != '4' || s[1] != '9') return -1;
    if (digits(s + 2, 16, &stream) || digits(s + 18, 18, &shard) || digits(s + 36, 20, &seq))
        return -1;
    if (shard > UINT32_MAX) return -1;
    out->stream_id = stream;
    out->shard_index = (uint32_t)shard;
    out->seq = seq;
    return 0;
}
