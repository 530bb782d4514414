/* Self-verifying test records for the durability tools. A record's partition key is
 * "run.writer.counter.length": its identity (run, writer, counter) determines every payload
 * byte, and the length is stated. A reader can therefore check any record it finds without
 * knowing what was written, and a test can name a record by its identity alone. Writers that
 * do not choose lengths take payload_len(seed), which the reader can check as well. */
#ifndef TR_TEST_PAYLOAD_H
#define TR_TEST_PAYLOAD_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define PAYLOAD_KEY_MAX 64

static inline uint64_t payload_mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static inline uint64_t payload_seed(uint32_t run, uint32_t writer, uint64_t counter) {
    return payload_mix(payload_mix((uint64_t)run << 32 | writer) ^ counter);
}

/* 1 to max_len bytes: mostly up to 256, one record in eight up to 4 KiB and one in 64 up to
 * max_len, so that frames of every size meet batch, buffer and segment boundaries without
 * filling the disk. */
static inline uint32_t payload_len(uint64_t seed, uint32_t max_len) {
    uint64_t h = payload_mix(seed ^ 0x5bd1e995u);
    uint32_t cap = (h & 63) == 0 ? max_len : (h & 7) == 0 ? 4096 : 256;
    if (cap > max_len) cap = max_len;
    return 1 + (uint32_t)((h >> 8) % cap);
}

static inline void payload_fill(uint8_t *p, uint32_t len, uint64_t seed) {
    uint64_t x = seed;
    for (uint32_t i = 0; i < len; i += 8) {
        uint64_t v = payload_mix(x++);
        uint32_t n = len - i < 8 ? len - i : 8;
        memcpy(p + i, &v, n);
    }
}

/* 1 when p holds exactly the payload of seed. */
static inline int payload_matches(const uint8_t *p, uint32_t len, uint64_t seed) {
    uint64_t x = seed;
    for (uint32_t i = 0; i < len; i += 8) {
        uint64_t v = payload_mix(x++);
        uint32_t n = len - i < 8 ? len - i : 8;
        if (memcmp(p + i, &v, n) != 0) return 0;
    }
    return 1;
}

typedef struct payload_id {
    uint32_t run, writer;
    uint64_t counter;
    uint32_t len; /* payload bytes */
} payload_id;

static inline uint64_t payload_id_seed(const payload_id *id) {
    return payload_seed(id->run, id->writer, id->counter);
}

/* Writes the key of id into buf (PAYLOAD_KEY_MAX bytes); returns its length. */
static inline uint32_t payload_key(char *buf, const payload_id *id) {
    int n = snprintf(buf, PAYLOAD_KEY_MAX, "%" PRIu32 ".%" PRIu32 ".%" PRIu64 ".%" PRIu32,
                     id->run, id->writer, id->counter, id->len);
    return (uint32_t)n;
}

/* Parses a key made by payload_key; returns 0 on success. */
static inline int payload_parse_key(const uint8_t *k, uint32_t len, payload_id *id) {
    char buf[PAYLOAD_KEY_MAX];
    if (len == 0 || len >= sizeof buf) return -1;
    memcpy(buf, k, len);
    buf[len] = '\0';
    char tail;
    if (sscanf(buf, "%" SCNu32 ".%" SCNu32 ".%" SCNu64 ".%" SCNu32 "%c", &id->run, &id->writer,
               &id->counter, &id->len, &tail) != 4)
        return -1;
    char again[PAYLOAD_KEY_MAX];
    /* Canonical form only: "01.2.3.4" is not a key a writer made. */
    if (payload_key(again, id) != len || memcmp(again, buf, len) != 0) return -1;
    return 0;
}

/* Checks a stored record against the identity in its key; returns NULL or what is wrong. */
static inline const char *payload_check(const uint8_t *pkey, uint32_t pkey_len,
                                        const uint8_t *data, uint32_t data_len, payload_id *id) {
    if (payload_parse_key(pkey, pkey_len, id) != 0) return "bad key";
    if (data_len != id->len) return "payload length differs from the key's";
    if (!payload_matches(data, data_len, payload_id_seed(id))) return "payload bytes differ";
    return NULL;
}

#endif
