/* The small parsers of network input: the chunked transfer coding of request bodies, shard
 * iterators, sequence numbers, hash keys, fragment numbers and event-stream messages. The
 * first byte picks the parser; the rest is its input. Each must refuse garbage without
 * crashing, and what it accepts must round-trip. */
#include "fuzz.h"

#include "data/hashkey.h"
#include "data/iterator.h"
#include "data/seqnum.h"
#include "net/chunked.h"
#include "video/fragment.h"
#include "wire/eventstream.h"

static void seed_with(const char *dir, uint8_t which, const void *body, size_t len) {
    uint8_t buf[512];
    buf[0] = which;
    memcpy(buf + 1, body, len);
    fuzz_seed(dir, buf, len + 1);
}

/* Seeds: a chunked body, each kind of token as we issue it, an event-stream message. */
static void write_seeds(const char *dir) {
    static const char body[] = "5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\nTrailer: x\r\n\r\n";
    seed_with(dir, 0, body, sizeof body - 1);
    char text[TR_ITERATOR_MAX];
    tr_seqnum sn = {7, 3, 12345};
    tr_seqnum_format(&sn, text);
    seed_with(dir, 1, text, strlen(text));
    tr_hashkey_format(TR_HASHKEY_MAX, text);
    seed_with(dir, 1, text, strlen(text));
    uint8_t key[TR_SECRET_BYTES] = {1, 2, 3};
    tr_iterator it = {7, 3, 99, 1700000000000};
    tr_iterator_encode(&it, key, text);
    seed_with(dir, 1, text, strlen(text));
    tr_fragment_number(1, 42, text);
    seed_with(dir, 1, text, strlen(text));
    tr_es_header h[] = {{":message-type", "event"}, {":event-type", "initial-response"}};
    uint8_t *msg;
    size_t len;
    if (tr_es_encode(h, 2, "{}", 2, &msg, &len) == 0) {
        seed_with(dir, 2, msg, len);
        free(msg);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_quiet_logs();
    const char *dir = fuzz_seed_dir();
    if (dir != NULL) write_seeds(dir);
    return 0;
}

typedef struct {
    size_t total;
} sink;

static int count(void *ctx, const uint8_t *data, size_t n) {
    sink *s = ctx;
    FUZZ_CHECK(n > 0);
    s->total += n;
    (void)data;
    return 0;
}

/* The same bytes fed whole and one at a time decode alike. */
static void chunked(const uint8_t *d, size_t n) {
    tr_chunked a, b;
    sink sa = {0}, sb = {0};
    size_t used = 0;
    tr_chunked_init(&a);
    int ra = tr_chunked_feed(&a, d, n, &used, count, &sa);
    FUZZ_CHECK(used <= n);
    tr_chunked_init(&b);
    int rb = TR_CHUNKED_MORE;
    size_t i = 0;
    for (; i < n && rb == TR_CHUNKED_MORE; i++) {
        size_t u = 0;
        rb = tr_chunked_feed(&b, d + i, 1, &u, count, &sb);
    }
    FUZZ_CHECK(ra == rb);
    FUZZ_CHECK(sa.total == sb.total);
    FUZZ_CHECK(sa.total <= n);
    if (ra == TR_CHUNKED_DONE) FUZZ_CHECK(used == i);
}

static void text_tokens(const uint8_t *d, size_t n) {
    char s[256];
    if (n >= sizeof s) n = sizeof s - 1;
    memcpy(s, d, n);
    s[n] = '\0';
    size_t len = strlen(s);

    tr_seqnum sn;
    if (tr_seqnum_parse(s, len, &sn) == 0) {
        char again[TR_SEQNUM_DIGITS + 1];
        tr_seqnum_format(&sn, again);
        FUZZ_CHECK(strcmp(again, s) == 0);
    }
    tr_hashkey hk;
    if (tr_hashkey_parse(s, len, &hk) == 0) {
        char again[TR_HASHKEY_DIGITS + 1];
        tr_hashkey_format(hk, again);
        /* Leading zeros are the one spelling that does not come back the same. */
        const char *t = s;
        while (*t == '0' && t[1] != '\0') t++;
        FUZZ_CHECK(strcmp(again, t) == 0);
    }
    uint8_t key[TR_SECRET_BYTES] = {1, 2, 3};
    tr_iterator it;
    if (tr_iterator_decode(s, len, key, 0, INT64_MAX, &it) == TR_ITER_OK) {
        char again[TR_ITERATOR_MAX];
        tr_iterator_encode(&it, key, again);
        FUZZ_CHECK(strcmp(again, s) == 0);
    }
    uint64_t seq;
    if (tr_fragment_number_parse(s, 1, &seq) == 0) {
        char again[TR_FRAGMENT_NUMBER_DIGITS + 1];
        tr_fragment_number(1, seq, again);
        FUZZ_CHECK(strcmp(again, s) == 0);
    }
}

static int header(void *ctx, const char *name, size_t nl, const char *value, size_t vl) {
    (void)ctx, (void)name, (void)value;
    FUZZ_CHECK(nl > 0 && nl < 256 && vl < 65536);
    return 0;
}

static void eventstream(const uint8_t *d, size_t n) {
    const uint8_t *payload = NULL;
    size_t plen = 0;
    long r = tr_es_decode(d, n, header, NULL, &payload, &plen);
    FUZZ_CHECK(r >= -1 && r <= (long)n);
    if (r > 0) FUZZ_CHECK(payload >= d && payload + plen <= d + r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    switch (data[0] % 3) {
    case 0: chunked(data + 1, size - 1); break;
    case 1: text_tokens(data + 1, size - 1); break;
    default: eventstream(data + 1, size - 1); break;
    }
    return 0;
}
