/* The frame decoder (core/frame.h) on arbitrary bytes. Besides memory safety it checks what
 * the segment reader and recovery rely on: a decoded frame lies inside the buffer, its fields
 * add up to its length, encoding it again gives back the same bytes, and any shorter prefix of
 * it is "short", never a different frame.
 *
 * Input: one mode byte, then the bytes to decode. Mode bit 0 rewrites the checksum of each
 * frame along the chain of lengths first, so that the fuzzer also reaches the checks behind
 * the checksum (which it could not forge by mutation). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/frame.h"
#include "fuzz.h"
#include "util/bytes.h"
#include "util/crc32c.h"

static void check_frame(const uint8_t *data, size_t size, const tr_record *rec, size_t flen) {
    FUZZ_CHECK(flen >= TR_FRAME_HEADER_BYTES + TR_FRAME_FIXED_BODY_BYTES && flen <= size);
    FUZZ_CHECK(flen <= TR_FRAME_MAX_BYTES);
    const uint8_t *end = data + flen;
    FUZZ_CHECK(rec->pkey == data + TR_FRAME_HEADER_BYTES + TR_FRAME_FIXED_BODY_BYTES);
    FUZZ_CHECK(rec->ehk == rec->pkey + rec->pkey_len);
    FUZZ_CHECK(rec->data == rec->ehk + rec->ehk_len);
    FUZZ_CHECK(rec->data + rec->data_len == end);
    FUZZ_CHECK(rec->data_len <= tr_record_max_bytes(rec->flags));

    tr_record_in in = {.producer_ms = rec->producer_ms, .flags = rec->flags,
                       .pkey = rec->pkey, .pkey_len = rec->pkey_len,
                       .ehk = rec->ehk, .ehk_len = rec->ehk_len,
                       .data = rec->data, .data_len = rec->data_len};
    FUZZ_CHECK(tr_frame_size(&in) == flen);
    uint8_t *again = malloc(flen);
    FUZZ_CHECK(again != NULL);
    FUZZ_CHECK(tr_frame_encode(again, &in, rec->seq, rec->arrival_ms) == flen);
    FUZZ_CHECK(memcmp(again, data, flen) == 0);
    free(again);

    /* Every prefix is short (and knows the full length once the header is there). */
    tr_record r2;
    size_t l2;
    size_t cuts[] = {0, TR_FRAME_HEADER_BYTES - 1, TR_FRAME_HEADER_BYTES, flen / 2, flen - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        FUZZ_CHECK(tr_frame_decode(data, cuts[i], &r2, &l2) == TR_FRAME_SHORT);
        FUZZ_CHECK(l2 == (cuts[i] >= TR_FRAME_HEADER_BYTES ? flen : 0));
    }
}

/* Gives every frame along the chain of body lengths a correct checksum. */
static void fix_checksums(uint8_t *buf, size_t size) {
    size_t off = 0;
    while (size - off >= TR_FRAME_HEADER_BYTES) {
        uint32_t body_len = tr_get_u32(buf + off);
        if (body_len > size - off - TR_FRAME_HEADER_BYTES) break;
        uint32_t crc = tr_crc32c(0, buf + off, 4);
        crc = tr_crc32c(crc, buf + off + TR_FRAME_HEADER_BYTES, body_len);
        tr_put_u32(buf + off + 4, crc);
        off += TR_FRAME_HEADER_BYTES + (size_t)body_len;
    }
}

/* Seeds: frames of each record kind as the core encodes them, with and without the mode that
 * rewrites checksums, and a torn one. */
static void write_seeds(const char *dir) {
    static const uint8_t bin[] = {0x00, 0xff, 0x10, 0x80, 'v', 'i', 'd'};
    const tr_record_in recs[] = {
        {.producer_ms = TR_NO_TIME, .flags = TR_KIND_DATA, .pkey = "pk-1", .pkey_len = 4,
         .data = "hello", .data_len = 5},
        {.producer_ms = 1700000000000, .flags = TR_KIND_DATA, .pkey = "k", .pkey_len = 1,
         .ehk = "340282366920938463463374607431768211455", .ehk_len = 39, .data = bin,
         .data_len = sizeof bin},
        {.producer_ms = 0, .flags = TR_KIND_TRACK_HEADER, .data = "\x1a\x45\xdf\xa3",
         .data_len = 4},
        {.producer_ms = -1, .flags = TR_KIND_FRAGMENT | TR_FLAG_ENCRYPTED},
    };
    size_t n = sizeof recs / sizeof *recs;
    uint8_t buf[1024];
    for (int mode = 0; mode < 2; mode++) {
        size_t len = 1;
        buf[0] = (uint8_t)mode;
        for (size_t i = 0; i < n; i++)
            len += tr_frame_encode(buf + len, &recs[i], 100 + i, 1700000000000 + (int64_t)i);
        fuzz_seed(dir, buf, len);
        fuzz_seed(dir, buf, len - 3); /* torn last frame */
        fuzz_seed(dir, buf, 1 + tr_frame_encode(buf + 1, &recs[1], 1, 1700000000000));
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_quiet_logs();
    if (fuzz_seed_dir()) {
        write_seeds(fuzz_seed_dir());
        exit(0);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    int fix = data[0] & 1;
    data++, size--;
    /* Decode frame after frame, as a segment scan does, with the input copied to an exact
     * heap allocation so that any read past the end is caught. */
    uint8_t *buf = malloc(size ? size : 1);
    FUZZ_CHECK(buf != NULL);
    memcpy(buf, data, size);
    if (fix) fix_checksums(buf, size);
    size_t off = 0;
    while (off < size) {
        tr_record rec;
        size_t flen = 7; /* the decoder must set it whatever the outcome */
        tr_frame_status st = tr_frame_decode(buf + off, size - off, &rec, &flen);
        if (st == TR_FRAME_OK) {
            check_frame(buf + off, size - off, &rec, flen);
            off += flen;
            continue;
        }
        if (st == TR_FRAME_SHORT) {
            FUZZ_CHECK(flen == 0 || flen > size - off);
            FUZZ_CHECK(flen != 0 || size - off < TR_FRAME_HEADER_BYTES);
        } else {
            FUZZ_CHECK(st == TR_FRAME_BAD);
        }
        break;
    }
    free(buf);
    return 0;
}
