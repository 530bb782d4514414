#include "core/frame.h"

#include "util/bytes.h"
#include "util/crc32c.h"

size_t tr_frame_size(const tr_record_in *in) {
    return TR_FRAME_HEADER_BYTES + TR_FRAME_FIXED_BODY_BYTES + (size_t)in->pkey_len +
           (size_t)in->ehk_len + (size_t)in->data_len;
}

/* The checksum covers the length field too, so a zeroed tail (length 0, crc 0) or a length
 * that was torn never passes as a frame. */
static uint32_t frame_crc(const uint8_t *frame, uint32_t body_len) {
    uint32_t crc = tr_crc32c(0, frame, 4);
    return tr_crc32c(crc, frame + TR_FRAME_HEADER_BYTES, body_len);
}

/* Writes the length, the fixed fields and the keys (not the checksum); returns their size. */
static size_t encode_fields(uint8_t *out, const tr_record_in *in, uint64_t seq,
                            int64_t arrival_ms) {
    uint32_t body_len = TR_FRAME_FIXED_BODY_BYTES + in->pkey_len + in->ehk_len + in->data_len;
    uint8_t *b = out + TR_FRAME_HEADER_BYTES;
    tr_put_u32(out, body_len);
    tr_put_u64(b, seq);
    tr_put_u64(b + 8, (uint64_t)arrival_ms);
    tr_put_u64(b + 16, (uint64_t)in->producer_ms);
    tr_put_u32(b + 24, in->flags);
    tr_put_u16(b + 28, (uint16_t)in->pkey_len);
    tr_put_u16(b + 30, (uint16_t)in->ehk_len);
    tr_put_u32(b + 32, in->data_len);
    uint8_t *p = b + TR_FRAME_FIXED_BODY_BYTES;
    if (in->pkey_len) memcpy(p, in->pkey, in->pkey_len);
    p += in->pkey_len;
    if (in->ehk_len) memcpy(p, in->ehk, in->ehk_len);
    p += in->ehk_len;
    return (size_t)(p - out);
}

size_t tr_frame_encode(uint8_t *out, const tr_record_in *in, uint64_t seq, int64_t arrival_ms) {
    size_t head = encode_fields(out, in, seq, arrival_ms);
    if (in->data_len) memcpy(out + head, in->data, in->data_len);
    size_t total = head + in->data_len;
    tr_put_u32(out + 4, frame_crc(out, (uint32_t)(total - TR_FRAME_HEADER_BYTES)));
    return total;
}

size_t tr_frame_encode_head(uint8_t *out, const tr_record_in *in, uint64_t seq,
                            int64_t arrival_ms) {
    size_t head = encode_fields(out, in, seq, arrival_ms);
    uint32_t crc = frame_crc(out, (uint32_t)(head - TR_FRAME_HEADER_BYTES));
    if (in->data_len) crc = tr_crc32c(crc, in->data, in->data_len);
    tr_put_u32(out + 4, crc);
    return head;
}

tr_frame_status tr_frame_decode(const uint8_t *buf, size_t len, tr_record *rec,
                                size_t *frame_len) {
    *frame_len = 0;
    if (len < TR_FRAME_HEADER_BYTES) return TR_FRAME_SHORT;
    uint32_t body_len = tr_get_u32(buf);
    if (body_len < TR_FRAME_FIXED_BODY_BYTES ||
        body_len > TR_FRAME_MAX_BYTES - TR_FRAME_HEADER_BYTES)
        return TR_FRAME_BAD;
    size_t total = TR_FRAME_HEADER_BYTES + (size_t)body_len;
    *frame_len = total;
    if (len < total) return TR_FRAME_SHORT;
    if (tr_get_u32(buf + 4) != frame_crc(buf, body_len)) return TR_FRAME_BAD;
    const uint8_t *b = buf + TR_FRAME_HEADER_BYTES;
    uint32_t pkey_len = tr_get_u16(b + 28);
    uint32_t ehk_len = tr_get_u16(b + 30);
    uint32_t data_len = tr_get_u32(b + 32);
    if ((uint64_t)TR_FRAME_FIXED_BODY_BYTES + pkey_len + ehk_len + data_len != body_len ||
        data_len > tr_record_max_bytes(tr_get_u32(b + 24)))
        return TR_FRAME_BAD;
    rec->seq = tr_get_u64(b);
    rec->arrival_ms = (int64_t)tr_get_u64(b + 8);
    rec->producer_ms = (int64_t)tr_get_u64(b + 16);
    rec->flags = tr_get_u32(b + 24);
    rec->pkey = b + TR_FRAME_FIXED_BODY_BYTES;
    rec->pkey_len = pkey_len;
    rec->ehk = rec->pkey + pkey_len;
    rec->ehk_len = ehk_len;
    rec->data = rec->ehk + ehk_len;
    rec->data_len = data_len;
    return TR_FRAME_OK;
}
