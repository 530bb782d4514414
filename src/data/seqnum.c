#include "data/seqnum.h"

#include <inttypes.h>
#include <stdio.h>

/* Writes v as exactly `width` decimal digits (v < 10^width). */
static void fixed_digits(char *out, int width, uint64_t v) {
    for (int i = width - 1; i >= 0; i--) {
        out[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

void tr_seqnum_format(const tr_seqnum *sn, char *out) {
    /* "49%016" PRIu64 "%018" PRIu32 "%020" PRIu64, without snprintf (a tenth of the CPU of
     * answers that carry many sequence numbers) */
    out[0] = '4';
    out[1] = '9';
    fixed_digits(out + 2, 16, sn->stream_id % 10000000000000000ull);
    fixed_digits(out + 18, 18, sn->shard_index);
    fixed_digits(out + 36, 20, sn->seq);
    out[TR_SEQNUM_DIGITS] = '\0';
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
