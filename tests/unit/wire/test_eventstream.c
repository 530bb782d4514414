/* The event-stream framing: what we encode decodes with both CRCs checked, a partial message
 * asks for more, and any flipped bit or wrong length is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "wire/eventstream.h"

typedef struct {
    int n;
    char names[4][32], values[4][64];
} seen_headers;

static int on_header(void *ctx, const char *name, size_t nl, const char *value, size_t vl) {
    seen_headers *s = ctx;
    if (s->n == 4) return -1;
    memcpy(s->names[s->n], name, nl);
    s->names[s->n][nl] = '\0';
    memcpy(s->values[s->n], value, vl);
    s->values[s->n][vl] = '\0';
    s->n++;
    return 0;
}

static void round_trip(void **state) {
    tr_es_header h[] = {{":message-type", "event"}, {":event-type", "SubscribeToShardEvent"}};
    const char payload[] = "{\"Records\":[]}";
    uint8_t *msg;
    size_t len;
    assert_int_equal(tr_es_encode(h, 2, payload, strlen(payload), &msg, &len), 0);
    /* 12 prelude + headers (1+13+1+2+5) + (1+11+1+2+21) + payload + 4 */
    assert_int_equal(len, 12 + 22 + 36 + strlen(payload) + 4);
    seen_headers s = {0};
    const uint8_t *p;
    size_t pl;
    assert_int_equal(tr_es_decode(msg, len, on_header, &s, &p, &pl), (long)len);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.names[1], ":event-type");
    assert_string_equal(s.values[1], "SubscribeToShardEvent");
    assert_int_equal(pl, strlen(payload));
    assert_memory_equal(p, payload, pl);
    /* Too short: wait for more. */
    assert_int_equal(tr_es_decode(msg, len - 1, NULL, NULL, &p, &pl), 0);
    assert_int_equal(tr_es_decode(msg, 5, NULL, NULL, &p, &pl), 0);
    free(msg);
}

static void corruption_refused(void **state) {
    tr_es_header h[] = {{":message-type", "event"}};
    uint8_t *msg;
    size_t len;
    assert_int_equal(tr_es_encode(h, 1, "abc", 3, &msg, &len), 0);
    const uint8_t *p;
    size_t pl;
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            msg[i] ^= (uint8_t)(1u << bit);
            long r = tr_es_decode(msg, len, NULL, NULL, &p, &pl);
            /* A flipped length bit may make the message look longer (need more): never valid. */
            assert_true(r == -1 || r == 0);
            msg[i] ^= (uint8_t)(1u << bit);
        }
    }
    free(msg);
}

static void limits(void **state) {
    char name[300];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    tr_es_header h[] = {{name, "v"}};
    uint8_t *msg;
    size_t len;
    assert_int_equal(tr_es_encode(h, 1, NULL, 0, &msg, &len), -1);
    tr_es_header empty[] = {{"", "v"}};
    assert_int_equal(tr_es_encode(empty, 1, NULL, 0, &msg, &len), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),
        cmocka_unit_test(corruption_refused),
        cmocka_unit_test(limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
