/* Hash keys, sequence numbers and shard iterators of the Data Streams face. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "data/hashkey.h"
#include "data/iterator.h"
#include "data/seqnum.h"

static void hashkeys(void **state) {
    (void)state;
    char buf[TR_HASHKEY_DIGITS + 1];
    tr_hashkey v;
    const char *max = "340282366920938463463374607431768211455";
    assert_int_equal(tr_hashkey_parse(max, strlen(max), &v), 0);
    assert_true(v == TR_HASHKEY_MAX);
    tr_hashkey_format(v, buf);
    assert_string_equal(buf, max);
    assert_int_equal(tr_hashkey_parse("340282366920938463463374607431768211456", 39, &v), -1);
    assert_int_equal(tr_hashkey_parse("-1", 2, &v), -1);
    assert_int_equal(tr_hashkey_parse("", 0, &v), -1);
    assert_int_equal(tr_hashkey_parse("0", 1, &v), 0);
    tr_hashkey_format(v, buf);
    assert_string_equal(buf, "0");
    /* AWS's even split for two and three shards. */
    tr_hashkey s, e;
    tr_hashkey_even_range(0, 2, &s, &e);
    tr_hashkey_format(e, buf);
    assert_string_equal(buf, "170141183460469231731687303715884105727");
    tr_hashkey_even_range(1, 2, &s, &e);
    tr_hashkey_format(s, buf);
    assert_string_equal(buf, "170141183460469231731687303715884105728");
    assert_true(e == TR_HASHKEY_MAX);
    tr_hashkey_even_range(1, 3, &s, &e);
    tr_hashkey_format(s, buf);
    assert_string_equal(buf, "113427455640312821154458202477256070485");
    tr_hashkey_even_range(0, 1, &s, &e);
    assert_true(s == 0 && e == TR_HASHKEY_MAX);
    /* MD5("a") = 0cc175b9c0f1b6a831c399e269772661 */
    v = tr_hashkey_of_partition_key("a", 1);
    tr_hashkey_format(v, buf);
    assert_string_equal(buf, "16955237001963240173058271559858726497");
}

static void seqnums(void **state) {
    (void)state;
    char a[TR_SEQNUM_DIGITS + 1], b[TR_SEQNUM_DIGITS + 1];
    tr_seqnum x = {12, 3, 99}, y = {12, 3, 100}, z;
    tr_seqnum_format(&x, a);
    tr_seqnum_format(&y, b);
    assert_int_equal(strlen(a), 56);
    assert_true(strcmp(a, b) < 0);
    assert_int_equal(tr_seqnum_parse(b, strlen(b), &z), 0);
    assert_int_equal(z.stream_id, 12);
    assert_int_equal(z.shard_index, 3);
    assert_int_equal(z.seq, 100);
    assert_int_equal(tr_seqnum_parse("123", 3, &z), -1);
    b[40] = 'x';
    assert_int_equal(tr_seqnum_parse(b, strlen(b), &z), -1);
}

static void iterators(void **state) {
    (void)state;
    uint8_t key[TR_SECRET_BYTES] = {1, 2, 3};
    char tok[TR_ITERATOR_MAX];
    tr_iterator it = {77, 5, 123456, 1000000}, out;
    tr_iterator_encode(&it, key, tok);
    assert_true(strlen(tok) < TR_ITERATOR_MAX);
    assert_int_equal(tr_iterator_decode(tok, strlen(tok), key, 1000000 + 299999, 300000, &out),
                     TR_ITER_OK);
    assert_int_equal(out.stream_id, 77);
    assert_int_equal(out.shard_index, 5);
    assert_int_equal(out.next_seq, 123456);
    assert_int_equal(tr_iterator_decode(tok, strlen(tok), key, 1000000 + 300001, 300000, &out),
                     TR_ITER_EXPIRED);
    /* Any edit is caught. */
    for (size_t i = 0; i < strlen(tok); i++) {
        char t2[TR_ITERATOR_MAX];
        strcpy(t2, tok);
        t2[i] = t2[i] == 'A' ? 'B' : 'A';
        assert_int_equal(tr_iterator_decode(t2, strlen(t2), key, 1000000, 300000, &out),
                         TR_ITER_INVALID);
    }
    uint8_t other[TR_SECRET_BYTES] = {9};
    assert_int_equal(tr_iterator_decode(tok, strlen(tok), other, 1000000, 300000, &out),
                     TR_ITER_INVALID);
    assert_int_equal(tr_iterator_decode("short", 5, key, 0, 1, &out), TR_ITER_INVALID);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hashkeys),
        cmocka_unit_test(seqnums),
        cmocka_unit_test(iterators),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
