#include "video/fragment.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "kms/kms.h"
#include "util/bytes.h"

#define MAGIC 0x31465254u /* "TRF1" */

size_t tr_fragment_size(const tr_fragment *f) {
    return TR_FRAGMENT_META_BYTES + f->header_len + f->cluster_len + f->tags_len;
}

void tr_fragment_encode(const tr_fragment *f, uint8_t *out) {
    tr_put_u32(out, MAGIC);
    tr_put_u32(out + 4, f->flags);
    tr_put_u64(out + 8, (uint64_t)f->producer_ms);
    tr_put_u64(out + 16, (uint64_t)f->server_ms);
    tr_put_u64(out + 24, (uint64_t)f->duration_ms);
    tr_put_u64(out + 32, f->timecode);
    tr_put_u32(out + 40, f->frame_count);
    tr_put_u32(out + 44, (uint32_t)f->header_len);
    tr_put_u32(out + 48, (uint32_t)f->cluster_len);
    tr_put_u32(out + 52, (uint32_t)f->tags_len);
    uint8_t *p = out + TR_FRAGMENT_META_BYTES;
    memcpy(p, f->header, f->header_len);
    p += f->header_len;
    memcpy(p, f->cluster, f->cluster_len);
    p += f->cluster_len;
    if (f->tags_len > 0) memcpy(p, f->tags, f->tags_len);
}

int tr_fragment_decode(const uint8_t *buf, size_t len, tr_fragment *f) {
    if (len < TR_FRAGMENT_META_BYTES || tr_get_u32(buf) != MAGIC) return -1;
    memset(f, 0, sizeof *f);
    f->flags = tr_get_u32(buf + 4);
    f->producer_ms = (int64_t)tr_get_u64(buf + 8);
    f->server_ms = (int64_t)tr_get_u64(buf + 16);
    f->duration_ms = (int64_t)tr_get_u64(buf + 24);
    f->timecode = tr_get_u64(buf + 32);
    f->frame_count = tr_get_u32(buf + 40);
    uint64_t hl = tr_get_u32(buf + 44), cl = tr_get_u32(buf + 48), tl = tr_get_u32(buf + 52);
    uint64_t seal = f->flags & TR_FRAGMENT_SEALED ? TR_KMS_SEAL_OVERHEAD : 0;
    if (TR_FRAGMENT_META_BYTES + seal + hl + cl + tl != len) return -1;
    f->header_len = (size_t)hl;
    f->cluster_len = (size_t)cl;
    f->tags_len = (size_t)tl;
    if (seal) {
        f->sealed = buf + TR_FRAGMENT_META_BYTES;
        f->sealed_len = len - TR_FRAGMENT_META_BYTES;
        return 0;
    }
    tr_fragment_view(f, buf + TR_FRAGMENT_META_BYTES);
    return 0;
}

void tr_fragment_view(tr_fragment *f, const uint8_t *plain) {
    f->header = plain;
    f->cluster = f->header + f->header_len;
    f->tags = f->tags_len > 0 ? f->cluster + f->cluster_len : NULL;
}

void tr_fragment_number(uint64_t stream_id, uint64_t seq, char out[TR_FRAGMENT_NUMBER_DIGITS + 1]) {
    snprintf(out, TR_FRAGMENT_NUMBER_DIGITS + 1, "91%015" PRIu64 "%020" PRIu64,
             (uint64_t)(stream_id % 1000000000000000ull), seq);
}

int tr_fragment_number_parse(const char *s, uint64_t stream_id, uint64_t *seq) {
    if (strlen(s) != TR_FRAGMENT_NUMBER_DIGITS || s[0] != '9' || s[1] != '1') return -1;
    uint64_t id = 0, n = 0;
    for (int i = 2; i < TR_FRAGMENT_NUMBER_DIGITS; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        if (i < 17)
            id = id * 10 + (uint64_t)(s[i] - '0');
        else if (n > (UINT64_MAX - 9) / 10)
            return -1;
        else
            n = n * 10 + (uint64_t)(s[i] - '0');
    }
    if (id != stream_id % 1000000000000000ull) return -1;
    *seq = n;
    return 0;
}
