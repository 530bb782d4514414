#include "util/metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Upper bounds of the latency histogram buckets, in seconds. */
static const double bucket_le[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                   0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5, 10};
#define NBUCKETS (sizeof bucket_le / sizeof bucket_le[0])

struct tr_metric {
    tr_metric_type type;
    char *name;
    char *help;
    char *labels;
    atomic_int_fast64_t value;               /* counter/gauge */
    atomic_uint_fast64_t buckets[NBUCKETS];  /* histogram, non-cumulative */
    atomic_uint_fast64_t count;
    atomic_uint_fast64_t sum_ns;
    atomic_int hidden;  /* dropped series are hidden, never freed: bumpers may hold them */
    tr_metric *next;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static tr_metric *registry;

tr_metric *tr_metric_get(tr_metric_type type, const char *name, const char *help,
                         const char *labels) {
    if (!labels) labels = "";
    pthread_mutex_lock(&registry_lock);
    tr_metric *m;
    for (m = registry; m; m = m->next) {
        if (m->type == type && strcmp(m->name, name) == 0 && strcmp(m->labels, labels) == 0)
            break;
    }
    if (m && atomic_load(&m->hidden)) {
        /* A series dropped and created again starts from zero. */
        atomic_store(&m->value, 0);
        for (size_t i = 0; i < NBUCKETS; i++) atomic_store(&m->buckets[i], 0);
        atomic_store(&m->count, 0);
        atomic_store(&m->sum_ns, 0);
        atomic_store(&m->hidden, 0);
    }
    if (!m) {
        m = calloc(1, sizeof *m);
        if (m) {
            m->type = type;
            m->name = strdup(name);
            m->help = strdup(help ? help : "");
            m->labels = strdup(labels);
            if (!m->name || !m->help || !m->labels) {
                free(m->name), free(m->help), free(m->labels), free(m);
                m = NULL;
            } else {
                /* Append, so that series of one name stay together in registration order. */
                tr_metric **pp = &registry;
                while (*pp) pp = &(*pp)->next;
                *pp = m;
            }
        }
    }
    pthread_mutex_unlock(&registry_lock);
    return m;
}

void tr_metric_add(tr_metric *m, uint64_t delta) {
    if (m) atomic_fetch_add_explicit(&m->value, (int_fast64_t)delta, memory_order_relaxed);
}

void tr_metric_set(tr_metric *m, int64_t value) {
    if (m) atomic_store_explicit(&m->value, value, memory_order_relaxed);
}

void tr_metric_observe(tr_metric *m, double seconds) {
    if (!m) return;
    size_t i = 0;
    while (i < NBUCKETS && seconds > bucket_le[i]) i++;
    if (i < NBUCKETS) atomic_fetch_add_explicit(&m->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->count, 1, memory_order_relaxed);
    if (seconds > 0)
        atomic_fetch_add_explicit(&m->sum_ns, (uint_fast64_t)(seconds * 1e9),
                                  memory_order_relaxed);
}

void tr_metrics_drop(const char *label_fragment) {
    pthread_mutex_lock(&registry_lock);
    for (tr_metric *m = registry; m; m = m->next)
        if (strstr(m->labels, label_fragment)) atomic_store(&m->hidden, 1);
    pthread_mutex_unlock(&registry_lock);
}

char *tr_metrics_escape(const char *value, char *out, size_t out_len) {
    size_t o = 0;
    for (const char *p = value; *p && o + 3 < out_len; p++) {
        if (*p == '\\' || *p == '"') {
            out[o++] = '\\';
            out[o++] = *p;
        } else if (*p == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = *p;
        }
    }
    if (out_len) out[o] = '\0';
    return out;
}

typedef struct {
    char *buf;
    size_t len, cap;
    int failed;
} textbuf;

__attribute__((format(printf, 2, 3))) static void tb_printf(textbuf *tb, const char *fmt, ...) {
    if (tb->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(tb->buf + tb->len, tb->cap - tb->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            tb->failed = 1;
            return;
        }
        if ((size_t)n < tb->cap - tb->len) {
            tb->len += (size_t)n;
            return;
        }
        size_t ncap = tb->cap * 2 + (size_t)n;
        char *nb = realloc(tb->buf, ncap);
        if (!nb) {
            tb->failed = 1;
            return;
        }
        tb->buf = nb;
        tb->cap = ncap;
    }
}

static void render_series(textbuf *tb, const tr_metric *m) {
    const char *sep = m->labels[0] ? "," : "";
    if (m->type != TR_METRIC_HISTOGRAM) {
        long long v = (long long)atomic_load(&m->value);
        if (m->labels[0])
            tb_printf(tb, "%s{%s} %lld\n", m->name, m->labels, v);
        else
            tb_printf(tb, "%s %lld\n", m->name, v);
        return;
    }
    uint64_t cum = 0;
    for (size_t i = 0; i < NBUCKETS; i++) {
        cum += atomic_load(&m->buckets[i]);
        tb_printf(tb, "%s_bucket{%s%sle=\"%g\"} %llu\n", m->name, m->labels, sep, bucket_le[i],
                  (unsigned long long)cum);
    }
    uint64_t count = atomic_load(&m->count);
    tb_printf(tb, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", m->name, m->labels, sep,
              (unsigned long long)count);
    tb_printf(tb, "%s_sum{%s} %.9f\n", m->name, m->labels, (double)atomic_load(&m->sum_ns) / 1e9);
    tb_printf(tb, "%s_count{%s} %llu\n", m->name, m->labels, (unsigned long long)count);
}

char *tr_metrics_render(size_t *len_out) {
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    textbuf tb = {malloc(4096), 0, 4096, 0};
    if (!tb.buf) return NULL;
    tb.buf[0] = '\0';
    pthread_mutex_lock(&registry_lock);
    /* Series of one name are emitted together under one HELP/TYPE header. */
    for (tr_metric *m = registry; m; m = m->next) {
        int seen = 0;
        for (tr_metric *p = registry; p != m; p = p->next)
            if (strcmp(p->name, m->name) == 0) seen = 1;
        if (seen) continue;
        int header = 0;
        for (tr_metric *s = m; s; s = s->next) {
            if (strcmp(s->name, m->name) != 0 || atomic_load(&s->hidden)) continue;
            if (!header) {
                tb_printf(&tb, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name,
                          type_names[m->type]);
                header = 1;
            }
            render_series(&tb, s);
        }
    }
    pthread_mutex_unlock(&registry_lock);
    if (tb.failed) {
        free(tb.buf);
        return NULL;
    }
    if (len_out) *len_out = tb.len;
    return tb.buf;
}
