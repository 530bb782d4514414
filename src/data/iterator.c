#include "data/iterator.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

#include "util/bytes.h"

#define VERSION 1
#define BODY_BYTES (1 + 8 + 4 + 8 + 8)
#define MAC_BYTES 16
#define RAW_BYTES (BODY_BYTES + MAC_BYTES)

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void mac_of(const uint8_t *body, const uint8_t key[TR_SECRET_BYTES], uint8_t *mac) {
    uint8_t full[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    HMAC(EVP_sha256(), key, TR_SECRET_BYTES, body, BODY_BYTES, full, &n);
    memcpy(mac, full, MAC_BYTES);
}

void tr_iterator_encode(const tr_iterator *it, const uint8_t key[TR_SECRET_BYTES], char *out) {
    uint8_t raw[RAW_BYTES + 2] = {0};
    raw[0] = VERSION;
    tr_put_u64(raw + 1, it->stream_id);
    tr_put_u32(raw + 9, it->shard_index);
    tr_put_u64(raw + 13, it->next_seq);
    tr_put_u64(raw + 21, (uint64_t)it->issued_ms);
    mac_of(raw, key, raw + BODY_BYTES);
    size_t o = 0;
    for (size_t i = 0; i < RAW_BYTES; i += 3) {
        uint32_t v = (uint32_t)raw[i] << 16 | (uint32_t)raw[i + 1] << 8 | raw[i + 2];
        size_t left = RAW_BYTES - i;
        out[o++] = b64url[v >> 18 & 63];
        out[o++] = b64url[v >> 12 & 63];
        if (left > 1) out[o++] = b64url[v >> 6 & 63];
        if (left > 2) out[o++] = b64url[v & 63];
    }
    out[o] = '\0';
}

static int b64val(char c) {
    const char *p = c ? strchr(b64url, c) : NULL;
    return p ? (int)(p - b64url) : -1;
}

tr_iter_status tr_iterator_decode(const char *s, size_t len, const uint8_t key[TR_SECRET_BYTES],
                                  int64_t now_ms, int64_t ttl_ms, tr_iterator *out) {
    /* RAW_BYTES = 45 = 15 groups of 3: exactly 60 characters, no padding. */
    if (len != RAW_BYTES / 3 * 4) return TR_ITER_INVALID;
    uint8_t raw[RAW_BYTES];
    for (size_t i = 0, o = 0; i < len; i += 4) {
        uint32_t v = 0;
        for (int k = 0; k < 4; k++) {
            int d = b64val(s[i + (size_t)k]);
            if (d < 0) return TR_ITER_INVALID;
            v = v << 6 | (uint32_t)d;
        }
        raw[o++] = (uint8_t)(v >> 16);
        raw[o++] = (uint8_t)(v >> 8);
        raw[o++] = (uint8_t)v;
    }
    uint8_t mac[MAC_BYTES];
    mac_of(raw, key, mac);
    if (raw[0] != VERSION || CRYPTO_memcmp(mac, raw + BODY_BYTES, MAC_BYTES) != 0)
        return TR_ITER_INVALID;
    out->stream_id = tr_get_u64(raw + 1);
    out->shard_index = tr_get_u32(raw + 9);
    out->next_seq = tr_get_u64(raw + 13);
    out->issued_ms = (int64_t)tr_get_u64(raw + 21);
    if (now_ms - out->issued_ms > ttl_ms) return TR_ITER_EXPIRED;
    return TR_ITER_OK;
}
