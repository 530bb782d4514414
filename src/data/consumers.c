#include "data/consumers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/error.h"

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_err(tr_data_err *e, const char *type, const char *msg) {
    e->type = type;
    snprintf(e->message, sizeof e->message, "%s", msg);
}

static void internal(tr_data_err *e, int rc) {
    e->type = "InternalFailure";
    snprintf(e->message, sizeof e->message, "Internal service failure: %s", tr_strerror(rc));
}

static void fill(tr_data *d, const tr_data_stream *s, const tr_consumer_meta *m,
                 tr_data_consumer *out) {
    memset(out, 0, sizeof *out);
    out->stream_id = s->id;
    snprintf(out->name, sizeof out->name, "%s", m->name);
    snprintf(out->stream_arn, sizeof out->stream_arn, "%s", s->arn);
    snprintf(out->arn, sizeof out->arn, "%s/consumer/%s:%lld", s->arn, m->name,
             (long long)(m->created_ms / 1000));
    out->created_ms = m->created_ms;
    out->status =
        now_ms() >= m->created_ms + tr_data_cfg(d)->transition_ms ? "ACTIVE" : "CREATING";
}

typedef struct reg_ctx {
    tr_consumer_meta m;
    int count;
} reg_ctx;

static int count_visit(void *ctx, const tr_consumer_meta *m) {
    (void)m;
    (void)ctx;
    return 0;
}

static int register_locked(tr_catalog *cat, void *arg) {
    reg_ctx *r = arg;
    r->count = tr_catalog_consumer_list(cat, r->m.stream_id, count_visit, NULL);
    if (r->count < 0) return r->count;
    if (r->count >= TR_MAX_CONSUMERS) return TR_OK;
    return tr_catalog_consumer_add(cat, &r->m);
}

int tr_data_consumer_register(tr_data *d, const tr_data_stream *s, const char *name,
                              tr_data_consumer *out, tr_data_err *err) {
    reg_ctx r = {.m = {.stream_id = s->id, .created_ms = now_ms()}};
    snprintf(r.m.name, sizeof r.m.name, "%s", name);
    int rc = tr_data_with_catalog(d, register_locked, &r);
    if (rc == TR_EEXIST) {
        snprintf(err->message, sizeof err->message,
                 "Consumer %s under stream %s already exists for account %s.", name, s->name,
                 tr_data_cfg(d)->account);
        err->type = "ResourceInUseException";
        return -1;
    }
    if (rc == TR_ENOENT) {
        snprintf(err->message, sizeof err->message, "Stream %s under account %s not found.",
                 s->name, tr_data_cfg(d)->account);
        err->type = "ResourceNotFoundException";
        return -1;
    }
    if (rc != TR_OK) {
        internal(err, rc);
        return -1;
    }
    if (r.count >= TR_MAX_CONSUMERS) {
        snprintf(err->message, sizeof err->message,
                 "Stream %s under account %s has reached the limit of %d consumers.", s->name,
                 tr_data_cfg(d)->account, TR_MAX_CONSUMERS);
        err->type = "LimitExceededException";
        return -1;
    }
    fill(d, s, &r.m, out);
    return 0;
}

/* Splits ".../stream/<stream>/consumer/<name>:<secs>" into its stream ARN, name and secs. */
static int parse_consumer_arn(const char *arn, char *stream_arn, size_t sa_len, char *name,
                              size_t n_len, long long *secs) {
    const char *c = strstr(arn, "/consumer/");
    const char *colon = c ? strrchr(c, ':') : NULL;
    if (c == NULL || colon == NULL || strncmp(arn, "arn:", 4) != 0) return -1;
    size_t sl = (size_t)(c - arn), nl = (size_t)(colon - (c + 10));
    if (sl >= sa_len || nl == 0 || nl >= n_len) return -1;
    memcpy(stream_arn, arn, sl);
    stream_arn[sl] = '\0';
    memcpy(name, c + 10, nl);
    name[nl] = '\0';
    char *end;
    *secs = strtoll(colon + 1, &end, 10);
    return *end == '\0' && end != colon + 1 ? 0 : -1;
}

typedef struct get_ctx {
    int64_t stream_id;
    const char *name;
    tr_consumer_meta m;
} get_ctx;

static int get_locked(tr_catalog *cat, void *arg) {
    get_ctx *g = arg;
    return tr_catalog_consumer_get(cat, g->stream_id, g->name, &g->m);
}

int tr_data_consumer_find(tr_data *d, const char *stream_arn, const char *name,
                          const char *consumer_arn, tr_data_consumer *out,
                          tr_data_stream **stream_out, tr_data_err *err) {
    char sarn[320], cname[TR_NAME_MAX + 1];
    long long secs = -1;
    if (consumer_arn != NULL) {
        if (parse_consumer_arn(consumer_arn, sarn, sizeof sarn, cname, sizeof cname, &secs) != 0) {
            snprintf(err->message, sizeof err->message, "Invalid ConsumerARN %.300s.",
                     consumer_arn);
            err->type = "InvalidArgumentException";
            return -1;
        }
        stream_arn = sarn;
        name = cname;
    }
    if (stream_arn == NULL || name == NULL) {
        set_err(err, "InvalidArgumentException",
                "Either ConsumerARN or both ConsumerName and StreamARN must be provided.");
        return -1;
    }
    tr_data_stream *s = tr_data_get(d, NULL, stream_arn, err);
    if (s == NULL) return -1;
    get_ctx g = {.stream_id = s->id, .name = name};
    int rc = tr_data_with_catalog(d, get_locked, &g);
    if (rc == TR_OK && secs >= 0 && secs != g.m.created_ms / 1000) rc = TR_ENOENT;
    if (rc != TR_OK) {
        if (rc == TR_ENOENT) {
            snprintf(err->message, sizeof err->message,
                     "Consumer %s under stream %s not found for account %s.", name, s->name,
                     tr_data_cfg(d)->account);
            err->type = "ResourceNotFoundException";
        } else {
            internal(err, rc);
        }
        tr_data_put(s);
        return -1;
    }
    fill(d, s, &g.m, out);
    if (stream_out != NULL)
        *stream_out = s;
    else
        tr_data_put(s);
    return 0;
}

typedef struct del_ctx {
    int64_t stream_id;
    const char *name;
} del_ctx;

static int remove_locked(tr_catalog *cat, void *arg) {
    del_ctx *x = arg;
    return tr_catalog_consumer_remove(cat, x->stream_id, x->name);
}

int tr_data_consumer_deregister(tr_data *d, const tr_data_consumer *c, tr_data_err *err) {
    del_ctx x = {c->stream_id, c->name};
    int rc = tr_data_with_catalog(d, remove_locked, &x);
    if (rc == TR_ENOENT) {
        snprintf(err->message, sizeof err->message, "Consumer %s not found for account %s.",
                 c->name, tr_data_cfg(d)->account);
        err->type = "ResourceNotFoundException";
        return -1;
    }
    if (rc != TR_OK) {
        internal(err, rc);
        return -1;
    }
    return 0;
}

typedef struct list_ctx {
    tr_consumer_meta *v;
    size_t n, cap;
} list_ctx;

static int collect(void *arg, const tr_consumer_meta *m) {
    list_ctx *l = arg;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        tr_consumer_meta *g = realloc(l->v, cap * sizeof *g);
        if (g == NULL) return 1;
        l->v = g;
        l->cap = cap;
    }
    l->v[l->n++] = *m;
    return 0;
}

typedef struct list_arg {
    int64_t stream_id;
    list_ctx *l;
} list_arg;

static int list_locked(tr_catalog *cat, void *arg) {
    list_arg *a = arg;
    int rc = tr_catalog_consumer_list(cat, a->stream_id, collect, a->l);
    return rc < 0 ? rc : TR_OK;
}

int tr_data_consumer_list(tr_data *d, const tr_data_stream *s,
                          int (*fn)(void *ctx, const tr_data_consumer *c), void *ctx,
                          tr_data_err *err) {
    list_ctx l = {0};
    list_arg a = {s->id, &l};
    /* Collected under the lock, visited without it. */
    int rc = tr_data_with_catalog(d, list_locked, &a);
    if (rc != TR_OK) {
        free(l.v);
        internal(err, rc);
        return -1;
    }
    for (size_t i = 0; fn != NULL && i < l.n; i++) {
        tr_data_consumer c;
        fill(d, s, &l.v[i], &c);
        if (fn(ctx, &c)) break;
    }
    free(l.v);
    return (int)l.n;
}
