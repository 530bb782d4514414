/* The Data Streams answers written in one piece for speed (PutRecords results, GetRecords
 * records in JSON) are the very bytes the response writer's general calls write: each is
 * compared here with the general path on records of every shape (empty and odd-sized data,
 * keys that need escaping, whole and fractional seconds, times before 1970, encrypted
 * streams, sequence numbers of every width). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/kinesis_call.h"
#include "core/shard.h"
#include "data/seqnum.h"

/* kin_w_records as it was before its JSON shortcut. */
static void general_records(tr_writer *w, const tr_data_stream *s, uint32_t shard_index,
                            const tr_read_batch *b) {
    tr_w_key(w, "Records");
    tr_w_arr_begin(w);
    for (size_t i = 0; i < b->count; i++) {
        const tr_record *r = &b->records[i];
        tr_w_obj_begin(w);
        kin_w_seq(w, "SequenceNumber", s, shard_index, r->seq);
        tr_w_ktime_ms(w, "ApproximateArrivalTimestamp", r->arrival_ms);
        tr_w_key(w, "Data");
        tr_w_blob(w, r->data, r->data_len);
        tr_w_key(w, "PartitionKey");
        tr_w_strn(w, (const char *)r->pkey, r->pkey_len);
        if (r->flags & TR_FLAG_ENCRYPTED) tr_w_kstr(w, "EncryptionType", "KMS");
        tr_w_obj_end(w);
    }
    tr_w_arr_end(w);
}

static char *take(tr_writer *w) {
    size_t len;
    uint8_t *b = tr_writer_take(w, &len);
    assert_non_null(b);
    char *s = malloc(len + 1);
    assert_non_null(s);
    memcpy(s, b, len);
    s[len] = '\0';
    free(b);
    return s;
}

static void records_like_general(void **state) {
    (void)state;
    static const char *const keys[] = {"k", "", "pk-0123456789abcdef", "a\"b", "back\\slash",
                                       "tab\there", "\xc3\xa9t\xc3\xa9", "\x01"};
    static const int64_t times[] = {0, 1, 999, 1000, 1001, 1700000000000, 1700000000123,
                                    -1, -1000, -1500, INT64_C(9223372036854775)};
    static const uint64_t seqs[] = {1, 9, 10, 12345678901234567890ull, UINT64_MAX};
    uint8_t data[64];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)(i * 37 + 1);
    tr_record recs[64];
    size_t n = 0;
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
        for (size_t t = 0; t < sizeof times / sizeof *times && n < 64; t += 1 + k % 2) {
            tr_record *r = &recs[n];
            memset(r, 0, sizeof *r);
            r->seq = seqs[n % 5];
            r->arrival_ms = times[t];
            r->pkey = (const uint8_t *)keys[k];
            r->pkey_len = (uint32_t)strlen(keys[k]);
            r->data = data;
            r->data_len = (uint32_t)(n % 7 == 6 ? 64 : n % 7);
            n++;
        }
    tr_read_batch b = {.records = recs, .count = n};
    static const int64_t ids[] = {1, 42, 12345678901234567};
    /* EncryptionType is said per record: sealed records (flag set) and clear ones. */
    for (int enc = 0; enc < 2; enc++) {
        for (size_t i = 0; i < n; i++) recs[i].flags = enc && i % 3 != 0 ? TR_FLAG_ENCRYPTED : 0;
        for (size_t id = 0; id < 3; id++)
            for (uint32_t shard = 0; shard < 4000000000u; shard = shard * 7 + 999999) {
                tr_data_stream s;
                memset(&s, 0, sizeof s);
                s.id = ids[id];
                s.encrypted = enc;
                for (int f = 0; f < 2; f++) {
                    tr_writer a, g;
                    tr_writer_init(&a, (tr_wire_format)f);
                    tr_writer_init(&g, (tr_wire_format)f);
                    tr_w_obj_begin(&a);
                    tr_w_obj_begin(&g);
                    kin_w_records(&a, &s, shard, &b);
                    general_records(&g, &s, shard, &b);
                    tr_w_obj_end(&a);
                    tr_w_obj_end(&g);
                    size_t la, lg;
                    uint8_t *x = tr_writer_take(&a, &la), *y = tr_writer_take(&g, &lg);
                    assert_non_null(x);
                    assert_non_null(y);
                    if (la != lg || memcmp(x, y, la) != 0)
                        fail_msg("format %d differs:\n%.*s\n%.*s", f, (int)la, (char *)x,
                                 (int)lg, (char *)y);
                    free(x);
                    free(y);
                }
            }
    }
    /* No records at all. */
    tr_data_stream s;
    memset(&s, 0, sizeof s);
    tr_read_batch none = {.records = recs, .count = 0};
    tr_writer a;
    tr_writer_init(&a, TR_WIRE_JSON);
    tr_w_obj_begin(&a);
    kin_w_records(&a, &s, 0, &none);
    tr_w_obj_end(&a);
    char *t = take(&a);
    assert_string_equal(t, "{\"Records\":[]}");
    free(t);
}

static void seqnum_like_snprintf(void **state) {
    (void)state;
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 100000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        tr_seqnum sn = {x, (uint32_t)(x >> (i % 40)), i % 3 ? x * 31 : UINT64_MAX - (uint64_t)i};
        char a[TR_SEQNUM_DIGITS + 1], b[TR_SEQNUM_DIGITS + 8];
        tr_seqnum_format(&sn, a);
        snprintf(b, sizeof b, "49%016llu%018lu%020llu",
                 (unsigned long long)(sn.stream_id % 10000000000000000ull),
                 (unsigned long)sn.shard_index, (unsigned long long)sn.seq);
        assert_string_equal(a, b);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(records_like_general),
        cmocka_unit_test(seqnum_like_snprintf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
