/* Latency samples of the load generators (bench/NAME_load_bench.c): a growable array of doubles,
 * sorted once, then read by percentile. Header-only, since each benchmark is one file. */
#ifndef TR_BENCH_SAMPLES_H
#define TR_BENCH_SAMPLES_H

#include <stdio.h>
#include <stdlib.h>

typedef struct samples {
    double *v;
    size_t n, cap;
} samples;

static inline void add_sample(samples *s, double x) {
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4096;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        if (s->v == NULL) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
    }
    s->v[s->n++] = x;
}

static inline int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static inline void sort_samples(samples *s) {
    if (s->n > 0) qsort(s->v, s->n, sizeof *s->v, cmp_double);
}

/* The p-quantile (0..1) of sorted samples; 0 when there are none. */
static inline double pct(const samples *s, double p) {
    if (s->n == 0) return 0;
    size_t i = (size_t)(p * (double)(s->n - 1) + 0.5);
    return s->v[i];
}

#endif
