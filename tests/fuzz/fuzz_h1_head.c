/* The HTTP/1.1 request head parser of our own reader (net/h1.h), which reads PutMedia
 * uploads straight off the socket. It must refuse garbage without crashing, stay within its
 * limits, give the same answer for a head given whole or in a prefix, and what it accepts
 * must be well formed and parse again to the same request once written back out. */
#include "fuzz.h"

#include "net/h1.h"
#include "net/internal.h"

static const char *const seeds[] = {
    "POST /putMedia HTTP/1.1\r\nHost: 127.0.0.1:4566\r\nUser-Agent: AWS-SDK-KVS\r\n"
    "Accept: */*\r\nTransfer-Encoding: chunked\r\nx-amzn-stream-name: cam\r\n"
    "x-amzn-fragment-timecode-type: ABSOLUTE\r\nx-amzn-producer-start-timestamp: 1700000000.5\r\n"
    "Authorization: AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/kinesisvideo/"
    "aws4_request, SignedHeaders=host, Signature=00\r\n\r\n1a\r\n\x1a\x45\xdf\xa3",
    "POST /putMedia HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello",
    "\r\nPOST http://cam:4566/putMedia?a=b HTTP/1.0\nA: 1\na: 2\n\n",
    "POST /putMedia HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n",
    "POST /putMedia HTTP/2.0\r\nHost: h\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_quiet_logs();
    const char *dir = fuzz_seed_dir();
    if (dir != NULL)
        for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++)
            fuzz_seed(dir, (const uint8_t *)seeds[i], strlen(seeds[i]));
    return 0;
}

static int is_tchar(char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c);
}

static size_t trimmed(const char *s, const char **start) {
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    *start = s;
    return n;
}

/* What a parsed head must look like. */
static void check_head(const tr_h1_head *h) {
    size_t mlen = strlen(h->method);
    FUZZ_CHECK(mlen > 0 && mlen < sizeof h->method);
    for (size_t i = 0; i < mlen; i++)
        FUZZ_CHECK(h->method[i] != '\0' && (is_tchar(h->method[i]) ||
                                            (h->method[i] >= 'A' && h->method[i] <= 'Z')));
    FUZZ_CHECK(h->target != NULL && h->target[0] == '/');
    for (const char *p = h->target; *p; p++) FUZZ_CHECK(*p > 0x20 && *p < 0x7f);
    FUZZ_CHECK(h->minor == 0 || h->minor == 1);
    FUZZ_CHECK(h->nhdrs <= TR_H1_MAX_HEADERS);
    int distinct = 0;
    for (const tr_kv *kv = h->hdrs; kv != NULL; kv = kv->next, distinct++) {
        FUZZ_CHECK(kv->name[0] != '\0');
        for (const char *p = kv->name; *p; p++) FUZZ_CHECK(is_tchar(*p));
        for (const char *p = kv->value; *p; p++)
            FUZZ_CHECK(*p == '\t' || (unsigned char)*p >= 0x20);
        FUZZ_CHECK(strchr(kv->value, 0x7f) == NULL);
        FUZZ_CHECK(tr_h1_head_header(h, kv->name) == kv->value); /* names are distinct */
    }
    FUZZ_CHECK(distinct <= h->nhdrs);
    if (h->minor == 1) FUZZ_CHECK(tr_h1_head_header(h, "HOST") != NULL);
}

/* Written back out (one line per distinct header), the head parses to the same request. */
static void check_round_trip(const tr_h1_head *h) {
    size_t cap = 64 + strlen(h->target);
    for (const tr_kv *kv = h->hdrs; kv != NULL; kv = kv->next)
        cap += strlen(kv->name) + strlen(kv->value) + 4;
    char *out = malloc(cap);
    FUZZ_CHECK(out != NULL);
    size_t n = (size_t)snprintf(out, cap, "%s %s HTTP/1.%d\r\n", h->method, h->target, h->minor);
    for (const tr_kv *kv = h->hdrs; kv != NULL; kv = kv->next)
        n += (size_t)snprintf(out + n, cap - n, "%s: %s\r\n", kv->name, kv->value);
    n += (size_t)snprintf(out + n, cap - n, "\r\n");
    FUZZ_CHECK(n < cap);
    tr_h1_head again;
    int r = tr_h1_parse_head((const uint8_t *)out, n, &again);
    if (n > TR_H1_HEAD_MAX) { /* joined values can make the head longer than it came */
        FUZZ_CHECK(r == -431);
        free(out);
        return;
    }
    FUZZ_CHECK(r == (int)n);
    FUZZ_CHECK(strcmp(again.method, h->method) == 0);
    FUZZ_CHECK(strcmp(again.target, h->target) == 0);
    FUZZ_CHECK(again.minor == h->minor);
    for (const tr_kv *kv = h->hdrs; kv != NULL; kv = kv->next) {
        const char *v = tr_h1_head_header(&again, kv->name), *a, *b;
        FUZZ_CHECK(v != NULL);
        size_t la = trimmed(kv->value, &a), lb = trimmed(v, &b);
        FUZZ_CHECK(la == lb && memcmp(a, b, la) == 0);
    }
    for (const tr_kv *kv = again.hdrs; kv != NULL; kv = kv->next)
        FUZZ_CHECK(tr_h1_head_header(h, kv->name) != NULL);
    tr_h1_head_free(&again);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tr_h1_head h;
    int r = tr_h1_parse_head(data, size, &h);
    FUZZ_CHECK(r <= (int)size && r <= TR_H1_HEAD_MAX);
    FUZZ_CHECK(r != 0 || size < TR_H1_HEAD_MAX);
    FUZZ_CHECK(r >= 0 || r == -400 || r == -431 || r == -505 || r == -500);
    if (r > 0) {
        check_head(&h);
        check_round_trip(&h);
        tr_h1_head_free(&h);
    } else {
        FUZZ_CHECK(h.target == NULL && h.hdrs == NULL);
    }
    /* A prefix says "more" or what the whole says (the reader parses as bytes arrive). */
    if (size > 0) {
        size_t k = (size_t)data[size - 1] * 131 % size;
        tr_h1_head p;
        int rp = tr_h1_parse_head(data, k, &p);
        FUZZ_CHECK(rp == 0 || rp == r);
        if (r > 0 && k >= (size_t)r) FUZZ_CHECK(rp == r);
        if (rp > 0) tr_h1_head_free(&p);
    }
    return 0;
}
