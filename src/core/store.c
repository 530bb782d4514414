#include "core/store.h"

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/error.h"
#include "util/log.h"
#include "util/metrics.h"

typedef enum { REQ_APPEND, REQ_CLOSE, REQ_DROP } req_type;

typedef struct store_req {
    req_type type;
    struct shard_entry *entry;
    const tr_record_in *recs;
    size_t n;
    tr_append_cb cb;
    void *ctx;
    int status;
    uint64_t first_seq;
    int64_t arrival_ms;
    struct store_req *next;
} store_req;

/* The store's bookkeeping for one open shard, reachable from the shard's user pointer. */
typedef struct shard_entry {
    uint64_t uid;
    tr_shard *shard;
    struct storage_thread *owner;
    atomic_int_fast64_t retention_ms;
    int dirty;     /* has buffered appends in the current batch (owner thread only) */
    int dropped;
    struct shard_entry *next_dirty;
} shard_entry;

typedef struct storage_thread {
    struct tr_store *st;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    store_req *head, *tail;
    int stop;
    int64_t next_trim_ms, next_sync_ms;
} storage_thread;

struct tr_store {
    tr_store_config cfg;
    char *dir;
    char *shards_dir;
    pthread_mutex_t mu; /* guards the entries table */
    shard_entry **entries;
    size_t nentries, entries_cap;
    storage_thread *threads;
    int nthreads;
    unsigned next_owner;
    atomic_int stopping;
    atomic_int healthy;
    tr_commit_hook hook;
    void *hook_ctx;
    tr_metric *m_fsync, *m_batch, *m_errors_nospc, *m_errors_io;
    struct commit_pool *pool; /* started by the first batch that touches two shards */
    pthread_mutex_t pool_mu;
};

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tr_store_config_defaults(tr_store_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->fsync_mode = TR_FSYNC_ALWAYS;
    cfg->fsync_interval_ms = 100;
    cfg->storage_threads = 1;
    cfg->trim_interval_ms = 60 * 1000;
    cfg->shard.segment_max_bytes = 128u * 1024 * 1024;
    cfg->shard.segment_max_age_ms = 60 * 60 * 1000;
    cfg->shard.index_interval_bytes = 4096;
}

/* ---- the storage thread ---- */

static void fail_req(store_req *r, int status) {
    r->status = status;
    r->first_seq = 0;
}

/* Fails the append requests of e in [from, until) whose records are not committed: after a
 * failed write the shard has discarded them. */
static void fail_uncommitted(store_req *from, store_req *until, shard_entry *e, int status) {
    tr_shard_info info;
    tr_shard_get_info(e->shard, &info);
    for (store_req *r = from; r != until; r = r->next) {
        if (r->entry == e && r->type == REQ_APPEND && r->status == TR_OK &&
            r->first_seq + r->n - 1 > info.last_seq)
            fail_req(r, status);
    }
}

static void run_append(tr_store *st, store_req *batch, store_req *r, shard_entry **dirty) {
    shard_entry *e = r->entry;
    r->arrival_ms = now_ms();
    r->status = tr_shard_append(e->shard, r->recs, r->n, r->arrival_ms, &r->first_seq);
    if (r->status == TR_ENOSPC || r->status == TR_EIO) {
        /* A roll writes what earlier requests buffered before it starts a segment; when that
         * write failed, their records are gone too. */
        tr_metric_add(r->status == TR_ENOSPC ? st->m_errors_nospc : st->m_errors_io, 1);
        fail_uncommitted(batch, r, e, r->status);
    }
    if (r->status == TR_OK) {
        tr_shard_info info;
        (void)info;
        if (!e->dirty) {
            e->dirty = 1;
            e->next_dirty = *dirty;
            *dirty = e;
        }
    }
    (void)st;
}

/* What follows one shard's commit, on the storage thread. */
static void finish_commit(tr_store *st, shard_entry *e, int rc, uint64_t ns, store_req *batch) {
    if (ns) tr_metric_observe(st->m_fsync, (double)ns / 1e9);
    e->dirty = 0;
    if (rc == TR_OK) return;
    tr_metric_add(rc == TR_ENOSPC ? st->m_errors_nospc : st->m_errors_io, 1);
    /* Requests whose records a roll already committed keep their success. */
    fail_uncommitted(batch, NULL, e, rc);
}

/* ---- committing many shards at once ----
 *
 * A batch that touched several shards (many video streams, each its own shard) commits them
 * on helper threads as well as on the storage thread: their writes and fdatasyncs run at
 * once, and the filesystem folds concurrent fdatasyncs into one journal commit, where one
 * after another each waits for a commit of its own (at 500 fragments/s, one per stream,
 * the storage thread spent all its time in fdatasync and the acks queued behind it). The
 * storage thread waits until every shard of the batch is committed, so a shard is never
 * touched by two threads at once. */

#define COMMIT_HELPERS 8

typedef struct commit_item {
    shard_entry *e;
    int rc;          /* tr_shard_commit's result */
    uint64_t ns;     /* and its fdatasync time */
} commit_item;

typedef struct commit_job {
    commit_item *items;
    size_t n, next, done; /* under the pool's mutex */
    int durable;
    struct commit_job *qnext;
} commit_job;

typedef struct commit_pool {
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    commit_job *head, *tail; /* jobs with items nobody has claimed yet */
    int stop;
    pthread_t threads[COMMIT_HELPERS];
    int nthreads;
} commit_pool;

/* Claims the next item of job j (the head of the queue when NULL); unlinks the job once every
 * item is claimed. Under p->mu. */
static commit_job *claim(commit_pool *p, commit_job *j, size_t *i) {
    if (!j) j = p->head;
    if (!j || j->next == j->n) return NULL;
    *i = j->next++;
    if (j->next == j->n) {
        commit_job **pp = &p->head, *prev = NULL;
        while (*pp != j) prev = *pp, pp = &(*pp)->qnext;
        *pp = j->qnext;
        if (p->tail == j) p->tail = prev;
    }
    return j;
}

/* Commits a claimed item and counts it done. Called and returns with p->mu held. */
static void run_claimed(commit_pool *p, commit_job *j, size_t i) {
    commit_item *it = &j->items[i];
    pthread_mutex_unlock(&p->mu);
    it->rc = tr_shard_commit(it->e->shard, j->durable, &it->ns);
    pthread_mutex_lock(&p->mu);
    if (++j->done == j->n) pthread_cond_broadcast(&p->done);
}

static void *commit_helper_main(void *arg) {
    commit_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        size_t i;
        commit_job *j;
        while (!p->stop && !p->head) pthread_cond_wait(&p->work, &p->mu);
        if (p->stop) break;
        if ((j = claim(p, NULL, &i)) != NULL) run_claimed(p, j, i);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static commit_pool *commit_pool_get(tr_store *st) {
    pthread_mutex_lock(&st->pool_mu);
    if (!st->pool && (st->pool = calloc(1, sizeof *st->pool)) != NULL) {
        commit_pool *p = st->pool;
        pthread_mutex_init(&p->mu, NULL);
        pthread_cond_init(&p->work, NULL);
        pthread_cond_init(&p->done, NULL);
        for (int i = 0; i < COMMIT_HELPERS; i++) {
            if (pthread_create(&p->threads[i], NULL, commit_helper_main, p) != 0) break;
            pthread_setname_np(p->threads[i], "tr-commit"); /* best effort */
            p->nthreads++;
        }
    }
    pthread_mutex_unlock(&st->pool_mu);
    return st->pool && st->pool->nthreads > 0 ? st->pool : NULL;
}

static void commit_pool_free(commit_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->done);
    free(p);
}

/* Commits every item, with the helpers and this thread working at once; returns when all
 * are done. */
static void commit_parallel(commit_pool *p, commit_item *items, size_t n, int durable) {
    commit_job j = {.items = items, .n = n, .durable = durable};
    pthread_mutex_lock(&p->mu);
    if (p->tail)
        p->tail->qnext = &j;
    else
        p->head = &j;
    p->tail = &j;
    if (n - 1 >= (size_t)p->nthreads)
        pthread_cond_broadcast(&p->work);
    else
        for (size_t k = 0; k + 1 < n; k++) pthread_cond_signal(&p->work);
    size_t i;
    while (claim(p, &j, &i) != NULL) run_claimed(p, &j, i);
    while (j.done < j.n) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

static void commit_dirty(tr_store *st, shard_entry *dirty, store_req *batch) {
    int durable = st->cfg.fsync_mode == TR_FSYNC_ALWAYS;
    size_t n = 0;
    for (shard_entry *e = dirty; e; e = e->next_dirty) n++;
    commit_pool *p = n > 1 ? commit_pool_get(st) : NULL;
    commit_item *items = p ? malloc(n * sizeof *items) : NULL;
    if (items) {
        size_t i = 0;
        for (shard_entry *e = dirty; e; e = e->next_dirty) items[i++] = (commit_item){.e = e};
        commit_parallel(p, items, n, durable);
        for (i = 0; i < n; i++) finish_commit(st, items[i].e, items[i].rc, items[i].ns, batch);
        free(items);
        return;
    }
    /* One shard (or no helpers to be had): here, one after another. */
    for (shard_entry *e = dirty; e; e = e->next_dirty) {
        uint64_t ns = 0;
        int rc = tr_shard_commit(e->shard, durable, &ns);
        finish_commit(st, e, rc, ns, batch);
    }
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    if (remove(path) != 0) tr_warn("msg=\"cannot remove\" path=%s err=\"%s\"", path, strerror(errno));
    return 0;
}

static void drop_entry(tr_store *st, shard_entry *e) {
    char label_uid[64], dir[4096];
    snprintf(dir, sizeof dir, "%s/%" PRIu64, st->shards_dir, e->uid);
    tr_shard_free(e->shard);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    snprintf(label_uid, sizeof label_uid, "shard_uid=\"%" PRIu64 "\"", e->uid);
    tr_metrics_drop(label_uid);
    tr_info("msg=\"shard dropped\" uid=%" PRIu64, e->uid);
    free(e);
}

static void process_batch(tr_store *st, store_req *batch) {
    shard_entry *dirty = NULL;
    for (store_req *r = batch; r; r = r->next) {
        shard_entry *e = r->entry;
        if (r->type == REQ_APPEND) {
            run_append(st, batch, r, &dirty);
        } else if (r->type == REQ_CLOSE) {
            /* Appends queued before the close must land first and be durable. */
            commit_dirty(st, dirty, batch);
            dirty = NULL;
            r->status = tr_shard_close(e->shard, &r->first_seq);
        }
    }
    commit_dirty(st, dirty, batch);
    tr_commit_hook hook = st->hook;
    store_req *r = batch;
    while (r) {
        store_req *next = r->next;
        if (r->type == REQ_APPEND && r->status == TR_OK && hook) hook(st->hook_ctx, r->entry->shard);
        if (r->type == REQ_DROP)
            drop_entry(st, r->entry);
        else if (r->cb)
            r->cb(r->ctx, r->status, r->first_seq, r->arrival_ms);
        free(r);
        r = next;
    }
}

/* Shards owned by thread t, referenced for the periodic duties (entries are freed only by
 * their owner thread, so the pointers stay valid while t works on them). */
static shard_entry **owned_entries(tr_store *st, storage_thread *t, size_t *n) {
    pthread_mutex_lock(&st->mu);
    shard_entry **v = malloc((st->nentries + 1) * sizeof *v);
    *n = 0;
    for (size_t i = 0; v && i < st->nentries; i++)
        if (st->entries[i]->owner == t && !st->entries[i]->dropped) v[(*n)++] = st->entries[i];
    pthread_mutex_unlock(&st->mu);
    return v;
}

static void periodic(tr_store *st, storage_thread *t, int force_sync) {
    int64_t now = now_ms();
    int do_trim = now >= t->next_trim_ms;
    int do_sync = force_sync || (st->cfg.fsync_mode == TR_FSYNC_INTERVAL && now >= t->next_sync_ms);
    if (!do_trim && !do_sync) return;
    size_t n;
    shard_entry **v = owned_entries(st, t, &n);
    for (size_t i = 0; v && i < n; i++) {
        if (do_sync) {
            int rc = tr_shard_sync(v[i]->shard);
            if (rc != TR_OK)
                tr_error("msg=\"sync failed\" shard=%s err=\"%s\"", tr_shard_label(v[i]->shard),
                         tr_strerror(rc));
        }
        int64_t keep = atomic_load(&v[i]->retention_ms);
        if (do_trim && keep > 0) {
            int rc = tr_shard_trim(v[i]->shard, now - keep);
            if (rc < 0)
                tr_error("msg=\"retention failed\" shard=%s err=\"%s\"",
                         tr_shard_label(v[i]->shard), tr_strerror(rc));
        }
    }
    free(v);
    if (do_trim) t->next_trim_ms = now + st->cfg.trim_interval_ms;
    if (do_sync) t->next_sync_ms = now + st->cfg.fsync_interval_ms;
}

static void deadline_of(storage_thread *t, const tr_store *st, struct timespec *ts) {
    int64_t wake = t->next_trim_ms;
    if (st->cfg.fsync_mode == TR_FSYNC_INTERVAL && t->next_sync_ms < wake) wake = t->next_sync_ms;
    ts->tv_sec = wake / 1000;
    ts->tv_nsec = (wake % 1000) * 1000000;
}

static void *storage_main(void *arg) {
    storage_thread *t = arg;
    tr_store *st = t->st;
    for (;;) {
        pthread_mutex_lock(&t->mu);
        while (!t->head && !t->stop) {
            struct timespec ts;
            deadline_of(t, st, &ts);
            if (pthread_cond_timedwait(&t->cv, &t->mu, &ts) == ETIMEDOUT) break;
        }
        store_req *batch = t->head;
        t->head = t->tail = NULL;
        int stop = t->stop && !batch;
        pthread_mutex_unlock(&t->mu);
        if (batch) process_batch(st, batch);
        periodic(st, t, stop);
        if (stop) break;
    }
    return NULL;
}

static int enqueue(tr_store *st, store_req *r) {
    storage_thread *t = r->entry->owner;
    pthread_mutex_lock(&t->mu);
    if (t->stop) {
        pthread_mutex_unlock(&t->mu);
        return TR_ESHUTDOWN;
    }
    if (t->tail)
        t->tail->next = r;
    else
        t->head = r;
    t->tail = r;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    return TR_OK;
}

/* ---- public ---- */

static int mkdir_p(const char *dir) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST) return tr_err_from_errno(errno);
        *p = '/';
    }
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST) return tr_err_from_errno(errno);
    return TR_OK;
}

static void init_store_metrics(tr_store *st) {
    st->m_fsync = tr_metric_get(TR_METRIC_HISTOGRAM, "tributary_fsync_duration_seconds",
                                "Time one group-commit fdatasync took", "");
    st->m_errors_nospc = tr_metric_get(TR_METRIC_COUNTER, "tributary_storage_errors_total",
                                       "Failed storage writes by cause", "type=\"no_space\"");
    st->m_errors_io = tr_metric_get(TR_METRIC_COUNTER, "tributary_storage_errors_total",
                                    "Failed storage writes by cause", "type=\"io\"");
}

int tr_store_open(const tr_store_config *cfg, tr_store **out) {
    if (!cfg->dir || cfg->storage_threads < 1) return TR_EINVAL;
    tr_store *st = calloc(1, sizeof *st);
    if (!st) return TR_ENOMEM;
    st->cfg = *cfg;
    st->dir = strdup(cfg->dir);
    size_t n = strlen(cfg->dir) + sizeof "/shards";
    st->shards_dir = malloc(n);
    st->threads = calloc((size_t)cfg->storage_threads, sizeof *st->threads);
    if (!st->dir || !st->shards_dir || !st->threads) {
        free(st->dir), free(st->shards_dir), free(st->threads), free(st);
        return TR_ENOMEM;
    }
    snprintf(st->shards_dir, n, "%s/shards", cfg->dir);
    int rc = mkdir_p(st->shards_dir);
    if (rc != TR_OK) {
        tr_error("msg=\"cannot create data directory\" dir=%s err=\"%s\"", st->shards_dir,
                 tr_strerror(rc));
        free(st->dir), free(st->shards_dir), free(st->threads), free(st);
        return rc;
    }
    pthread_mutex_init(&st->mu, NULL);
    pthread_mutex_init(&st->pool_mu, NULL);
    init_store_metrics(st);
    int64_t now = now_ms();
    for (int i = 0; i < cfg->storage_threads; i++) {
        storage_thread *t = &st->threads[i];
        t->st = st;
        t->next_trim_ms = now + cfg->trim_interval_ms;
        t->next_sync_ms = now + cfg->fsync_interval_ms;
        pthread_mutex_init(&t->mu, NULL);
        pthread_cond_init(&t->cv, NULL);
        if (pthread_create(&t->thread, NULL, storage_main, t) != 0) {
            st->nthreads = i;
            tr_store_close(st);
            return TR_ENOMEM;
        }
        pthread_setname_np(t->thread, "tr-storage"); /* for top -H and perf; best effort */
        st->nthreads = i + 1;
    }
    atomic_store(&st->healthy, 1);
    *out = st;
    return TR_OK;
}

void tr_store_close(tr_store *st) {
    if (!st) return;
    atomic_store(&st->stopping, 1);
    atomic_store(&st->healthy, 0);
    for (int i = 0; i < st->nthreads; i++) {
        storage_thread *t = &st->threads[i];
        pthread_mutex_lock(&t->mu);
        t->stop = 1;
        pthread_cond_signal(&t->cv);
        pthread_mutex_unlock(&t->mu);
    }
    for (int i = 0; i < st->nthreads; i++) {
        pthread_join(st->threads[i].thread, NULL);
        pthread_mutex_destroy(&st->threads[i].mu);
        pthread_cond_destroy(&st->threads[i].cv);
    }
    commit_pool_free(st->pool);
    pthread_mutex_destroy(&st->pool_mu);
    for (size_t i = 0; i < st->nentries; i++) {
        tr_shard_free(st->entries[i]->shard);
        free(st->entries[i]);
    }
    free(st->entries);
    free(st->threads);
    pthread_mutex_destroy(&st->mu);
    free(st->shards_dir);
    free(st->dir);
    free(st);
}

int tr_store_healthy(tr_store *st) { return st && atomic_load(&st->healthy); }

void tr_store_set_commit_hook(tr_store *st, tr_commit_hook hook, void *ctx) {
    st->hook = hook;
    st->hook_ctx = ctx;
}

static shard_entry *find_entry(tr_store *st, uint64_t uid, size_t *pos) {
    for (size_t i = 0; i < st->nentries; i++) {
        if (st->entries[i]->uid == uid) {
            if (pos) *pos = i;
            return st->entries[i];
        }
    }
    return NULL;
}

static int add_entry(tr_store *st, shard_entry *e) {
    if (st->nentries == st->entries_cap) {
        size_t cap = st->entries_cap ? st->entries_cap * 2 : 16;
        shard_entry **n = realloc(st->entries, cap * sizeof *n);
        if (!n) return TR_ENOMEM;
        st->entries = n;
        st->entries_cap = cap;
    }
    st->entries[st->nentries++] = e;
    return TR_OK;
}

int tr_store_shard(tr_store *st, uint64_t uid, const char *label, int create, tr_shard **out) {
    if (atomic_load(&st->stopping)) return TR_ESHUTDOWN;
    pthread_mutex_lock(&st->mu);
    shard_entry *e = find_entry(st, uid, NULL);
    if (e) {
        *out = e->shard;
        pthread_mutex_unlock(&st->mu);
        return TR_OK;
    }
    char dir[4096], full_label[1024];
    snprintf(dir, sizeof dir, "%s/%" PRIu64, st->shards_dir, uid);
    snprintf(full_label, sizeof full_label, "%s%sshard_uid=\"%" PRIu64 "\"", label ? label : "",
             label && *label ? "," : "", uid);
    struct stat sb;
    int rc = TR_OK;
    if (!create && stat(dir, &sb) != 0) rc = TR_ENOENT;
    e = rc == TR_OK ? calloc(1, sizeof *e) : NULL;
    if (rc == TR_OK && !e) rc = TR_ENOMEM;
    /* Opening recovers the tail and may scan a segment: done under the table lock, which only
     * the control plane and shard lookups take, never the append path. */
    if (rc == TR_OK) rc = tr_shard_open(dir, full_label, &st->cfg.shard, &e->shard);
    if (rc == TR_OK) {
        e->uid = uid;
        e->owner = &st->threads[st->next_owner++ % (unsigned)st->nthreads];
        atomic_init(&e->retention_ms, 0);
        tr_shard_set_user(e->shard, e);
        rc = add_entry(st, e);
        if (rc != TR_OK) tr_shard_free(e->shard);
    }
    pthread_mutex_unlock(&st->mu);
    if (rc != TR_OK) {
        free(e);
        return rc;
    }
    *out = e->shard;
    return TR_OK;
}

int tr_store_drop_shard(tr_store *st, uint64_t uid) {
    pthread_mutex_lock(&st->mu);
    size_t pos;
    shard_entry *e = find_entry(st, uid, &pos);
    if (e) {
        st->entries[pos] = st->entries[--st->nentries];
        e->dropped = 1;
    }
    pthread_mutex_unlock(&st->mu);
    if (!e) {
        /* Not open: remove its files directly, if any. */
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/%" PRIu64, st->shards_dir, uid);
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        return TR_OK;
    }
    store_req *r = calloc(1, sizeof *r);
    if (!r) return TR_ENOMEM;
    r->type = REQ_DROP;
    r->entry = e;
    int rc = enqueue(st, r);
    if (rc != TR_OK) {
        /* Stopping: tr_store_close no longer sees it in the table, so free it here. */
        free(r);
        drop_entry(st, e);
    }
    return TR_OK;
}

void tr_store_set_retention(tr_store *st, tr_shard *s, int64_t retention_ms) {
    (void)st;
    shard_entry *e = tr_shard_user(s);
    atomic_store(&e->retention_ms, retention_ms);
}

int tr_store_append(tr_store *st, tr_shard *s, const tr_record_in *recs, size_t n,
                    tr_append_cb cb, void *ctx) {
    if (n == 0) return TR_EINVAL;
    if (atomic_load(&st->stopping)) return TR_ESHUTDOWN;
    for (size_t i = 0; i < n; i++) {
        if (recs[i].data_len > tr_record_max_bytes(recs[i].flags)) return TR_ETOOBIG;
        if (recs[i].pkey_len > TR_MAX_KEY_BYTES || recs[i].ehk_len > TR_MAX_KEY_BYTES)
            return TR_EINVAL;
    }
    store_req *r = calloc(1, sizeof *r);
    if (!r) return TR_ENOMEM;
    r->type = REQ_APPEND;
    r->entry = tr_shard_user(s);
    r->recs = recs;
    r->n = n;
    r->cb = cb;
    r->ctx = ctx;
    int rc = enqueue(st, r);
    if (rc != TR_OK) free(r);
    return rc;
}

int tr_store_close_shard(tr_store *st, tr_shard *s, tr_append_cb cb, void *ctx) {
    if (atomic_load(&st->stopping)) return TR_ESHUTDOWN;
    store_req *r = calloc(1, sizeof *r);
    if (!r) return TR_ENOMEM;
    r->type = REQ_CLOSE;
    r->entry = tr_shard_user(s);
    r->cb = cb;
    r->ctx = ctx;
    int rc = enqueue(st, r);
    if (rc != TR_OK) free(r);
    return rc;
}
