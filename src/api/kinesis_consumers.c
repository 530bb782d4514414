/* Enhanced fan-out consumers: RegisterStreamConsumer, DescribeStreamConsumer,
 * ListStreamConsumers, DeregisterStreamConsumer. SubscribeToShard is kinesis_subscribe.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/kinesis_call.h"
#include "data/consumers.h"

static void write_consumer(kin_call *c, const tr_data_consumer *x, int with_stream) {
    tr_writer *w = &c->out;
    tr_w_obj_begin(w);
    tr_w_kstr(w, "ConsumerName", x->name);
    tr_w_kstr(w, "ConsumerARN", x->arn);
    tr_w_kstr(w, "ConsumerStatus", x->status);
    tr_w_ktime_ms(w, "ConsumerCreationTimestamp", x->created_ms);
    if (with_stream) tr_w_kstr(w, "StreamARN", x->stream_arn);
    tr_w_obj_end(w);
}

static tr_data_stream *stream_by_arn(kin_call *c) {
    const char *arn = NULL;
    if (kin_str(c, "StreamARN", "streamARN", 1, 1, 2048, &arn) != 0) return NULL;
    tr_data_err err;
    tr_data_stream *s = tr_data_get(c->k->data, NULL, arn, &err);
    if (s == NULL) kin_fail_data(c, &err);
    return s;
}

void kin_register_consumer(kin_call *c) {
    tr_data_stream *s = stream_by_arn(c);
    const char *name = NULL;
    if (s == NULL || kin_str(c, "ConsumerName", "consumerName", 1, 1, 128, &name) != 0 ||
        kin_check_stream_name(c, name, "consumerName") != 0) {
        tr_data_put(s);
        return;
    }
    tr_data_consumer x;
    tr_data_err err;
    if (tr_data_consumer_register(c->k->data, s, name, &x, &err) != 0) {
        kin_fail_data(c, &err);
    } else {
        tr_w_obj_begin(&c->out);
        tr_w_key(&c->out, "Consumer");
        write_consumer(c, &x, 0);
        tr_w_obj_end(&c->out);
    }
    tr_data_put(s);
}

int kin_consumer(kin_call *c, tr_data_consumer *x, tr_data_stream **s) {
    const char *stream_arn = NULL, *name = NULL, *arn = NULL;
    if (kin_str(c, "StreamARN", "streamARN", 0, 1, 2048, &stream_arn) != 0 ||
        kin_str(c, "ConsumerName", "consumerName", 0, 1, 128, &name) != 0 ||
        kin_str(c, "ConsumerARN", "consumerARN", 0, 1, 2048, &arn) != 0)
        return -1;
    tr_data_err err;
    if (tr_data_consumer_find(c->k->data, stream_arn, name, arn, x, s, &err) != 0)
        return kin_fail_data(c, &err);
    return 0;
}

void kin_describe_consumer(kin_call *c) {
    tr_data_consumer x;
    if (kin_consumer(c, &x, NULL) != 0) return;
    tr_w_obj_begin(&c->out);
    tr_w_key(&c->out, "ConsumerDescription");
    write_consumer(c, &x, 1);
    tr_w_obj_end(&c->out);
}

void kin_deregister_consumer(kin_call *c) {
    tr_data_consumer x;
    if (kin_consumer(c, &x, NULL) != 0) return;
    tr_data_err err;
    if (tr_data_consumer_deregister(c->k->data, &x, &err) != 0) {
        kin_fail_data(c, &err);
        return;
    }
    tr_w_obj_begin(&c->out);
    tr_w_obj_end(&c->out);
}

typedef struct list_ctx {
    kin_call *c;
    const char *after; /* the last name of the previous page */
    int64_t max;
    int shown;
    char last[TR_NAME_MAX + 1];
    int more;
} list_ctx;

static int list_visit(void *arg, const tr_data_consumer *x) {
    list_ctx *l = arg;
    if (l->after != NULL && strcmp(x->name, l->after) <= 0) return 0;
    if (l->shown == l->max) {
        l->more = 1;
        return 1;
    }
    write_consumer(l->c, x, 0);
    snprintf(l->last, sizeof l->last, "%s", x->name);
    l->shown++;
    return 0;
}

void kin_list_consumers(kin_call *c) {
    tr_data_stream *s = stream_by_arn(c);
    const char *token = NULL;
    int64_t max = 100;
    if (s == NULL || kin_str(c, "NextToken", "nextToken", 0, 1, 1048576, &token) != 0 ||
        kin_int(c, "MaxResults", "maxResults", 0, 1, 10000, &max) != 0) {
        tr_data_put(s);
        return;
    }
    char after[TR_NAME_MAX + 1] = "";
    if (token != NULL) {
        long n = (long)strlen(token) < 400 ? tr_base64_decode(token, strlen(token), (uint8_t *)after)
                                           : -1;
        if (n <= 0 || n > TR_NAME_MAX) {
            kin_fail(c, 400, "ExpiredNextTokenException", "Invalid NextToken.");
            tr_data_put(s);
            return;
        }
        after[n] = '\0';
    }
    list_ctx l = {c, token ? after : NULL, max, 0, "", 0};
    tr_data_err err;
    tr_w_obj_begin(&c->out);
    tr_w_key(&c->out, "Consumers");
    tr_w_arr_begin(&c->out);
    int rc = tr_data_consumer_list(c->k->data, s, list_visit, &l, &err);
    tr_w_arr_end(&c->out);
    if (rc < 0) kin_fail_data(c, &err);
    if (l.more) {
        char tok[400];
        tr_base64_encode(l.last, strlen(l.last), tok);
        tr_w_kstr(&c->out, "NextToken", tok);
    }
    tr_w_obj_end(&c->out);
    tr_data_put(s);
}
