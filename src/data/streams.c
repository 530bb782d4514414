#include "data/streams.h"

#include <inttypes.h>
#include <jansson.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "data/iterator.h"
#include "util/error.h"
#include "util/log.h"

const char *const tr_data_metric_names[] = {
    "IncomingBytes", "IncomingRecords", "OutgoingBytes", "OutgoingRecords",
    "WriteProvisionedThroughputExceeded", "ReadProvisionedThroughputExceeded",
    "IteratorAgeMilliseconds", NULL};

/* The log shards a stream has ever had. Shared by all snapshots of one stream, so that the
 * logs are dropped only when the last snapshot of a deleted stream goes. */
typedef struct logs_holder {
    atomic_int refs;
    atomic_int deleted;
    tr_store *st;
    int64_t *uids;
    size_t n, cap;
} logs_holder;

struct tr_data {
    tr_data_config cfg;
    tr_catalog *cat;
    tr_store *st;
    uint8_t secret[TR_SECRET_BYTES];
    pthread_mutex_t ctl;  /* serialises control-plane changes and catalog use */
    pthread_mutex_t reg;  /* guards the registry array; held only to look up and swap */
    tr_data_stream **streams;
    size_t n, cap;
};

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void seterr(tr_data_err *e, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(tr_data_err *e, const char *type, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    e->type = type;
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

static void not_found(tr_data *d, tr_data_err *e, const char *name) {
    seterr(e, "ResourceNotFoundException", "Stream %s under account %s not found.", name,
           d->cfg.account);
}

static void internal(tr_data_err *e, int rc) {
    seterr(e, "InternalFailure", "Internal service failure: %s", tr_strerror(rc));
}

const tr_data_config *tr_data_cfg(const tr_data *d) { return &d->cfg; }
tr_store *tr_data_store(tr_data *d) { return d->st; }
const uint8_t *tr_data_secret(const tr_data *d) { return d->secret; }
void tr_data_set_secret(tr_data *d, const uint8_t *secret) {
    memcpy(d->secret, secret, TR_SECRET_BYTES);
}
tr_catalog *tr_data_catalog(tr_data *d) { return d->cat; }

int tr_data_with_catalog(tr_data *d, int (*fn)(tr_catalog *c, void *ctx), void *ctx) {
    pthread_mutex_lock(&d->ctl);
    int rc = fn(d->cat, ctx);
    pthread_mutex_unlock(&d->ctl);
    return rc;
}

void tr_data_wait_settled(tr_data *d) {
    pthread_mutex_lock(&d->ctl); /* held by every change from its start to the swap */
    pthread_mutex_unlock(&d->ctl);
}

const char *tr_data_status(const tr_data_stream *s, int64_t now) {
    return now >= s->ready_ms ? "ACTIVE" : s->status;
}

/* ---- snapshots ---- */

static void holder_put(logs_holder *h) {
    if (atomic_fetch_sub(&h->refs, 1) != 1) return;
    if (atomic_load(&h->deleted)) {
        for (size_t i = 0; i < h->n; i++) tr_store_drop_shard(h->st, (uint64_t)h->uids[i]);
    }
    free(h->uids);
    free(h);
}

static int holder_add(logs_holder *h, int64_t uid) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 8;
        int64_t *n = realloc(h->uids, cap * sizeof *n);
        if (!n) return TR_ENOMEM;
        h->uids = n;
        h->cap = cap;
    }
    h->uids[h->n++] = uid;
    return TR_OK;
}

/* Snapshots hold their holder through this side table, not a field, so that a snapshot's
 * public struct stays plain data. */
typedef struct snapshot {
    tr_data_stream pub;
    logs_holder *holder;
} snapshot;

static snapshot *snap_of(tr_data_stream *s) { return (snapshot *)s; }

void tr_data_put(tr_data_stream *s) {
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1) return;
    logs_holder *h = snap_of(s)->holder;
    free(s->shards);
    free(s);
    if (h) holder_put(h);
}

static tr_data_stream *snap_new(size_t nshards) {
    snapshot *sn = calloc(1, sizeof *sn);
    if (!sn) return NULL;
    sn->pub.shards = calloc(nshards ? nshards : 1, sizeof *sn->pub.shards);
    if (!sn->pub.shards) {
        free(sn);
        return NULL;
    }
    atomic_init(&sn->pub.refs, 1);
    return &sn->pub;
}

/* A copy of s with room for `extra` more shards, sharing its holder. */
static tr_data_stream *snap_copy(const tr_data_stream *s, size_t extra) {
    tr_data_stream *c = snap_new(s->nshards + extra);
    if (!c) return NULL;
    tr_data_shard *shards = c->shards;
    memcpy(c, s, sizeof *c);
    atomic_init(&c->refs, 1);
    c->shards = shards;
    memcpy(c->shards, s->shards, s->nshards * sizeof *s->shards);
    logs_holder *h = snap_of((tr_data_stream *)s)->holder;
    snap_of(c)->holder = h;
    if (h) atomic_fetch_add(&h->refs, 1);
    return c;
}

/* ---- the registry ---- */

static ssize_t reg_find(tr_data *d, const char *name) {
    for (size_t i = 0; i < d->n; i++)
        if (strcmp(d->streams[i]->name, name) == 0) return (ssize_t)i;
    return -1;
}

/* Swaps in a new snapshot (or adds it); the registry owns the reference it is given. */
static int reg_set(tr_data *d, tr_data_stream *s) {
    pthread_mutex_lock(&d->reg);
    ssize_t i = reg_find(d, s->name);
    tr_data_stream *old = NULL;
    int rc = TR_OK;
    if (i >= 0) {
        old = d->streams[i];
        d->streams[i] = s;
    } else {
        if (d->n == d->cap) {
            size_t cap = d->cap ? d->cap * 2 : 16;
            tr_data_stream **n = realloc(d->streams, cap * sizeof *n);
            if (n) {
                d->streams = n;
                d->cap = cap;
            } else {
                rc = TR_ENOMEM;
            }
        }
        if (rc == TR_OK) d->streams[d->n++] = s;
    }
    pthread_mutex_unlock(&d->reg);
    tr_data_put(old);
    return rc;
}

static tr_data_stream *reg_remove(tr_data *d, const char *name) {
    pthread_mutex_lock(&d->reg);
    ssize_t i = reg_find(d, name);
    tr_data_stream *s = NULL;
    if (i >= 0) {
        s = d->streams[i];
        d->streams[i] = d->streams[--d->n];
    }
    pthread_mutex_unlock(&d->reg);
    return s;
}

static int name_from_arn(const char *arn, char *name, size_t len) {
    const char *p = strstr(arn, ":stream/");
    if (strncmp(arn, "arn:", 4) != 0 || !p) return -1;
    p += strlen(":stream/");
    size_t n = strcspn(p, "/");
    if (n == 0 || n >= len) return -1;
    memcpy(name, p, n);
    name[n] = '\0';
    return 0;
}

tr_data_stream *tr_data_get(tr_data *d, const char *name, const char *arn, tr_data_err *err) {
    char from_arn[129];
    if (!name && arn) {
        if (name_from_arn(arn, from_arn, sizeof from_arn) != 0) {
            seterr(err, "InvalidArgumentException", "Invalid StreamARN %s.", arn);
            return NULL;
        }
        name = from_arn;
    }
    if (!name) {
        seterr(err, "ValidationException", "Either StreamName or StreamARN should be provided.");
        return NULL;
    }
    pthread_mutex_lock(&d->reg);
    ssize_t i = reg_find(d, name);
    tr_data_stream *s = i >= 0 ? d->streams[i] : NULL;
    if (s) atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&d->reg);
    if (s && arn && strcmp(arn, s->arn) != 0) {
        tr_data_put(s);
        s = NULL;
    }
    if (!s) not_found(d, err, name);
    return s;
}

tr_data_stream *tr_data_get_by_id(tr_data *d, int64_t id) {
    pthread_mutex_lock(&d->reg);
    tr_data_stream *s = NULL;
    for (size_t i = 0; i < d->n && !s; i++)
        if (d->streams[i]->id == id) s = d->streams[i];
    if (s) atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&d->reg);
    return s;
}

const tr_data_shard *tr_data_route(const tr_data_stream *s, tr_hashkey key) {
    for (size_t i = 0; i < s->nshards; i++) {
        const tr_data_shard *sh = &s->shards[i];
        if (!sh->closed && key >= sh->start && key <= sh->end) return sh;
    }
    return NULL;
}

const tr_data_shard *tr_data_shard_by_id(const tr_data_stream *s, const char *shard_id) {
    /* Accept the short form "1" and "shardId-1" as AWS does, as well as the full id. */
    const char *digits = strncmp(shard_id, "shardId-", 8) == 0 ? shard_id + 8 : shard_id;
    char *end;
    if (!*digits) return NULL;
    unsigned long idx = strtoul(digits, &end, 10);
    if (*end || idx >= s->nshards) return NULL;
    return &s->shards[idx];
}

/* ---- catalog <-> memory ---- */

static void shard_from_meta(tr_data_shard *sh, const tr_shard_meta *m) {
    memset(sh, 0, sizeof *sh);
    sh->index = m->index;
    snprintf(sh->id, sizeof sh->id, "shardId-%012d", m->index);
    tr_hashkey_parse(m->hash_start, strlen(m->hash_start), &sh->start);
    tr_hashkey_parse(m->hash_end, strlen(m->hash_end), &sh->end);
    sh->parent = m->parent_index;
    sh->adjacent_parent = m->adjacent_parent_index;
    sh->starting_seq = m->starting_seq;
    sh->ending_seq = m->ending_seq;
    sh->closed = m->closed;
    sh->uid = m->uid;
    sh->created_ms = m->created_ms;
}

static void attrs_write(const tr_data_stream *s, tr_stream_meta *m) {
    json_t *a = json_pack("{s:s,s:s,s:s,s:i,s:i}", "mode", s->on_demand ? "ON_DEMAND" : "PROVISIONED",
                          "encryption", s->encrypted ? "KMS" : "NONE", "key_id", s->key_id,
                          "max_record_kib", (json_int_t)s->max_record_kib, "metrics",
                          (json_int_t)s->metrics_mask);
    free(m->attrs_json);
    m->attrs_json = a ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
}

static void attrs_read(tr_data_stream *s, const char *text) {
    s->max_record_kib = 1024;
    json_t *a = text ? json_loads(text, 0, NULL) : NULL;
    if (!a) return;
    const char *mode = json_string_value(json_object_get(a, "mode"));
    s->on_demand = mode && strcmp(mode, "ON_DEMAND") == 0;
    const char *enc = json_string_value(json_object_get(a, "encryption"));
    s->encrypted = enc && strcmp(enc, "KMS") == 0;
    const char *key = json_string_value(json_object_get(a, "key_id"));
    snprintf(s->key_id, sizeof s->key_id, "%s", key ? key : "");
    json_int_t kib = json_integer_value(json_object_get(a, "max_record_kib"));
    if (kib > 0) s->max_record_kib = (uint32_t)kib;
    s->metrics_mask = (uint32_t)json_integer_value(json_object_get(a, "metrics"));
    json_decref(a);
}

static void stream_arn(tr_data *d, const char *name, char *out, size_t len) {
    snprintf(out, len, "arn:aws:kinesis:%s:%s:stream/%s", d->cfg.region, d->cfg.account, name);
}

static int open_log(tr_data *d, tr_data_stream *s, tr_data_shard *sh) {
    char label[512];
    snprintf(label, sizeof label, "stream=\"%s\",shard=\"%s\"", s->name, sh->id);
    int rc = tr_store_shard(d->st, (uint64_t)sh->uid, label, 1, &sh->log);
    if (rc == TR_OK) tr_store_set_retention(d->st, sh->log, (int64_t)s->retention_hours * 3600000);
    return rc;
}

/* Builds the first snapshot of a stream from the catalog. */
static int load_stream(tr_data *d, const tr_stream_meta *m) {
    tr_shard_meta *shards = NULL;
    size_t n = 0;
    int rc = tr_catalog_shard_list(d->cat, m->id, &shards, &n);
    if (rc != TR_OK) return rc;
    tr_data_stream *s = snap_new(n);
    logs_holder *h = calloc(1, sizeof *h);
    if (!s || !h) {
        free(shards);
        free(h);
        tr_data_put(s);
        return TR_ENOMEM;
    }
    atomic_init(&h->refs, 1);
    h->st = d->st;
    snap_of(s)->holder = h;
    s->owner = d;
    s->id = m->id;
    snprintf(s->name, sizeof s->name, "%.128s", m->name);
    stream_arn(d, s->name, s->arn, sizeof s->arn);
    s->created_ms = m->created_ms;
    snprintf(s->status, sizeof s->status, "%.11s", m->status);
    s->ready_ms = 0; /* transitions do not survive a restart */
    s->retention_hours = (int)m->retention_hours;
    attrs_read(s, m->attrs_json);
    s->nshards = n;
    for (size_t i = 0; i < n && rc == TR_OK; i++) {
        shard_from_meta(&s->shards[i], &shards[i]);
        rc = holder_add(h, shards[i].uid);
        if (rc == TR_OK) rc = open_log(d, s, &s->shards[i]);
    }
    free(shards);
    if (rc == TR_OK) rc = reg_set(d, s);
    if (rc != TR_OK) tr_data_put(s);
    return rc;
}

static int load_visit(void *ctx, const tr_stream_meta *m) {
    tr_data *d = ctx;
    int rc = load_stream(d, m);
    if (rc != TR_OK)
        tr_error("msg=\"cannot load stream\" stream=%s err=\"%s\"", m->name, tr_strerror(rc));
    return 0;
}

int tr_data_open(tr_catalog *cat, tr_store *st, const tr_data_config *cfg, tr_data **out) {
    tr_data *d = calloc(1, sizeof *d);
    if (!d) return TR_ENOMEM;
    d->cfg = *cfg;
    if (!d->cfg.region) d->cfg.region = "us-east-1";
    if (!d->cfg.account) d->cfg.account = "000000000000";
    if (d->cfg.transition_ms < 0) d->cfg.transition_ms = 0;
    if (!d->cfg.iterator_ttl_ms) d->cfg.iterator_ttl_ms = 300000;
    d->cat = cat;
    d->st = st;
    RAND_bytes(d->secret, sizeof d->secret);
    pthread_mutex_init(&d->ctl, NULL);
    pthread_mutex_init(&d->reg, NULL);
    int rc = tr_catalog_stream_list(cat, "data", NULL, 0, load_visit, d);
    if (rc < 0) {
        tr_data_close(d);
        return rc;
    }
    *out = d;
    return TR_OK;
}

void tr_data_close(tr_data *d) {
    if (!d) return;
    for (size_t i = 0; i < d->n; i++) tr_data_put(d->streams[i]);
    free(d->streams);
    pthread_mutex_destroy(&d->ctl);
    pthread_mutex_destroy(&d->reg);
    free(d);
}

int tr_data_list(tr_data *d, const char *after, int limit,
                 int (*fn)(void *ctx, const tr_data_stream *s), void *ctx) {
    /* Snapshot the registry sorted by name, then call fn without the lock. */
    pthread_mutex_lock(&d->reg);
    size_t n = d->n;
    tr_data_stream **v = malloc((n ? n : 1) * sizeof *v);
    for (size_t i = 0; v && i < n; i++) {
        v[i] = d->streams[i];
        atomic_fetch_add(&v[i]->refs, 1);
    }
    pthread_mutex_unlock(&d->reg);
    if (!v) return TR_ENOMEM;
    for (size_t i = 1; i < n; i++) { /* insertion sort: lists are short */
        tr_data_stream *x = v[i];
        size_t j = i;
        for (; j > 0 && strcmp(v[j - 1]->name, x->name) > 0; j--) v[j] = v[j - 1];
        v[j] = x;
    }
    int count = 0, stop = 0;
    for (size_t i = 0; i < n; i++) {
        if (!stop && (!after || strcmp(v[i]->name, after) > 0) && (limit <= 0 || count < limit)) {
            count++;
            stop = fn(ctx, v[i]) != 0;
        }
        tr_data_put(v[i]);
    }
    free(v);
    return count;
}

/* ---- control plane ---- */

typedef struct create_ctx {
    tr_data *d;
    tr_stream_meta *meta;
    tr_data_stream *s;
} create_ctx;

static int create_txn(tr_catalog *c, void *arg) {
    create_ctx *cc = arg;
    int rc = tr_catalog_stream_create(c, cc->meta);
    for (size_t i = 0; rc == TR_OK && i < cc->s->nshards; i++) {
        tr_data_shard *sh = &cc->s->shards[i];
        tr_shard_meta m = {.stream_id = cc->meta->id, .index = sh->index, .parent_index = -1,
                           .adjacent_parent_index = -1, .starting_seq = 1,
                           .created_ms = cc->meta->created_ms};
        tr_hashkey_format(sh->start, m.hash_start);
        tr_hashkey_format(sh->end, m.hash_end);
        rc = tr_catalog_shard_add(c, &m);
        sh->uid = m.uid;
    }
    return rc;
}

int tr_data_create(tr_data *d, const char *name, int shard_count, int on_demand,
                   uint32_t max_record_kib, tr_data_err *err) {
    pthread_mutex_lock(&d->ctl);
    tr_data_stream *s = snap_new((size_t)shard_count);
    logs_holder *h = calloc(1, sizeof *h);
    tr_stream_meta meta = {0};
    int rc = s && h ? TR_OK : TR_ENOMEM;
    if (rc == TR_OK) {
        atomic_init(&h->refs, 1);
        h->st = d->st;
        snap_of(s)->holder = h;
        h = NULL;
        s->owner = d;
        snprintf(s->name, sizeof s->name, "%s", name);
        stream_arn(d, name, s->arn, sizeof s->arn);
        s->created_ms = now_ms();
        snprintf(s->status, sizeof s->status, "CREATING");
        s->ready_ms = s->created_ms + d->cfg.transition_ms;
        s->retention_hours = 24;
        s->on_demand = on_demand;
        s->max_record_kib = max_record_kib ? max_record_kib : 1024;
        s->nshards = (size_t)shard_count;
        for (int i = 0; i < shard_count; i++) {
            tr_data_shard *sh = &s->shards[i];
            sh->index = i;
            snprintf(sh->id, sizeof sh->id, "shardId-%012d", i);
            tr_hashkey_even_range((unsigned)i, (unsigned)shard_count, &sh->start, &sh->end);
            sh->parent = sh->adjacent_parent = -1;
            sh->starting_seq = 1;
            sh->created_ms = s->created_ms;
        }
        snprintf(meta.kind, sizeof meta.kind, "data");
        snprintf(meta.name, sizeof meta.name, "%s", name);
        snprintf(meta.status, sizeof meta.status, "ACTIVE");
        meta.created_ms = s->created_ms;
        meta.retention_hours = 24;
        attrs_write(s, &meta);
        create_ctx cc = {d, &meta, s};
        rc = tr_catalog_txn(d->cat, create_txn, &cc);
    }
    if (rc == TR_EEXIST) {
        seterr(err, "ResourceInUseException", "Stream %s under account %s already exists.", name,
               d->cfg.account);
    } else if (rc != TR_OK) {
        internal(err, rc);
    }
    if (rc == TR_OK) {
        s->id = meta.id;
        for (size_t i = 0; i < s->nshards && rc == TR_OK; i++) {
            rc = holder_add(snap_of(s)->holder, s->shards[i].uid);
            if (rc == TR_OK) rc = open_log(d, s, &s->shards[i]);
        }
        if (rc == TR_OK) rc = reg_set(d, s);
        if (rc != TR_OK) {
            internal(err, rc);
            tr_catalog_stream_delete(d->cat, meta.id);
            atomic_store(&snap_of(s)->holder->deleted, 1);
        } else {
            s = NULL; /* the registry owns it */
        }
    }
    tr_data_put(s);
    free(h);
    tr_stream_meta_clear(&meta);
    pthread_mutex_unlock(&d->ctl);
    return rc == TR_OK ? 0 : -1;
}

int tr_data_delete(tr_data *d, const char *name, const char *arn, int enforce, tr_data_err *err) {
    (void)enforce; /* consumers are deregistered with the stream */
    pthread_mutex_lock(&d->ctl);
    tr_data_stream *s = tr_data_get(d, name, arn, err);
    int rc = -1;
    if (s) {
        int crc = tr_catalog_stream_delete(d->cat, s->id);
        if (crc != TR_OK) {
            internal(err, crc);
        } else {
            tr_data_stream *cur = reg_remove(d, s->name);
            atomic_store(&snap_of(s)->holder->deleted, 1);
            tr_data_put(cur);
            rc = 0;
        }
        tr_data_put(s);
    }
    pthread_mutex_unlock(&d->ctl);
    return rc;
}

/* Writes the stream's row (status, retention, attributes) after a change. */
static int save_stream(tr_data *d, const tr_data_stream *s) {
    tr_stream_meta m;
    int rc = tr_catalog_stream_get_by_id(d->cat, s->id, &m);
    if (rc != TR_OK) return rc;
    m.retention_hours = s->retention_hours;
    snprintf(m.status, sizeof m.status, "ACTIVE");
    attrs_write(s, &m);
    rc = tr_catalog_stream_update(d->cat, &m);
    tr_stream_meta_clear(&m);
    return rc;
}

static int require_active(tr_data *d, const tr_data_stream *s, tr_data_err *err) {
    if (strcmp(tr_data_status(s, now_ms()), "ACTIVE") == 0) return 0;
    seterr(err, "ResourceInUseException", "Stream %s under account %s not ACTIVE, instead in state %s",
           s->name, d->cfg.account, tr_data_status(s, now_ms()));
    return -1;
}

/* Commits a changed copy: catalog row, then the registry. Takes ownership of c. */
static int commit_copy(tr_data *d, tr_data_stream *c, tr_data_err *err) {
    int rc = save_stream(d, c);
    if (rc == TR_OK) rc = reg_set(d, c);
    else tr_data_put(c);
    if (rc != TR_OK) internal(err, rc);
    return rc == TR_OK ? 0 : -1;
}

int tr_data_set_retention(tr_data *d, tr_data_stream *s, int hours, int increase,
                          tr_data_err *err) {
    pthread_mutex_lock(&d->ctl);
    int rc = -1;
    tr_data_stream *cur = tr_data_get(d, s->name, NULL, err);
    if (!cur) goto out;
    if (hours < 24 || hours > 8760) {
        seterr(err, "InvalidArgumentException",
               "Minimum allowed retention period is 24 hours and maximum is 8760 hours. "
               "Requested retention period (%d hours) is out of range.", hours);
    } else if (increase && hours < cur->retention_hours) {
        seterr(err, "InvalidArgumentException",
               "Requested retention period (%d hours) for stream %s can not be shorter than "
               "existing retention period (%d hours). Use DecreaseRetentionPeriod API.",
               hours, cur->name, cur->retention_hours);
    } else if (!increase && hours > cur->retention_hours) {
        seterr(err, "InvalidArgumentException",
               "Requested retention period (%d hours) for stream %s can not be longer than "
               "existing retention period (%d hours). Use IncreaseRetentionPeriod API.",
               hours, cur->name, cur->retention_hours);
    } else {
        tr_data_stream *c = snap_copy(cur, 0);
        if (!c) {
            internal(err, TR_ENOMEM);
        } else {
            c->retention_hours = hours;
            for (size_t i = 0; i < c->nshards; i++)
                tr_store_set_retention(d->st, c->shards[i].log, (int64_t)hours * 3600000);
            rc = commit_copy(d, c, err);
        }
    }
out:
    tr_data_put(cur);
    pthread_mutex_unlock(&d->ctl);
    return rc;
}

/* ---- resharding ---- */

typedef struct close_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, status;
    uint64_t ending;
} close_wait;

static void on_closed(void *ctx, int status, uint64_t ending, int64_t arrival_ms) {
    (void)arrival_ms;
    close_wait *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->status = status;
    w->ending = ending;
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Closes a log shard after the appends queued before it and waits for its ending seq. The
 * control plane runs off the network loop, so waiting here is fine. */
static int close_log(tr_data *d, tr_data_shard *sh) {
    close_wait w = {.done = 0};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    int rc = tr_store_close_shard(d->st, sh->log, on_closed, &w);
    if (rc == TR_OK) {
        pthread_mutex_lock(&w.mu);
        while (!w.done) pthread_cond_wait(&w.cv, &w.mu);
        pthread_mutex_unlock(&w.mu);
        rc = w.status;
    }
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    if (rc == TR_OK) {
        sh->closed = 1;
        sh->ending_seq = w.ending;
    }
    return rc;
}

typedef struct reshard_ctx {
    tr_data_stream *c;
    size_t nclosed, first_new, nnew;
    int32_t closed_idx[2];
} reshard_ctx;

static int reshard_txn(tr_catalog *cat, void *arg) {
    reshard_ctx *r = arg;
    int rc = TR_OK;
    for (size_t i = 0; i < r->nclosed && rc == TR_OK; i++) {
        tr_data_shard *sh = &r->c->shards[r->closed_idx[i]];
        rc = tr_catalog_shard_close(cat, sh->uid, sh->ending_seq);
    }
    for (size_t i = r->first_new; i < r->first_new + r->nnew && rc == TR_OK; i++) {
        tr_data_shard *sh = &r->c->shards[i];
        tr_shard_meta m = {.stream_id = r->c->id, .index = sh->index, .parent_index = sh->parent,
                           .adjacent_parent_index = sh->adjacent_parent, .starting_seq = 1,
                           .created_ms = sh->created_ms};
        tr_hashkey_format(sh->start, m.hash_start);
        tr_hashkey_format(sh->end, m.hash_end);
        rc = tr_catalog_shard_add(cat, &m);
        sh->uid = m.uid;
    }
    return rc;
}

static tr_data_shard *new_child(tr_data_stream *c, tr_hashkey start, tr_hashkey end, int32_t parent,
                                int32_t adjacent, int64_t now) {
    tr_data_shard *sh = &c->shards[c->nshards];
    memset(sh, 0, sizeof *sh);
    sh->index = (int32_t)c->nshards++;
    snprintf(sh->id, sizeof sh->id, "shardId-%012d", sh->index);
    sh->start = start;
    sh->end = end;
    sh->parent = parent;
    sh->adjacent_parent = adjacent;
    sh->starting_seq = 1;
    sh->created_ms = now;
    return sh;
}

/* Closes the parents (already marked in r), records everything, opens the children's logs and
 * swaps the copy in. Takes ownership of c. */
static int finish_reshard(tr_data *d, reshard_ctx *r, tr_data_err *err) {
    tr_data_stream *c = r->c;
    int rc = TR_OK;
    for (size_t i = 0; i < r->nclosed && rc == TR_OK; i++)
        rc = close_log(d, &c->shards[r->closed_idx[i]]);
    if (rc == TR_OK) rc = tr_catalog_txn(d->cat, reshard_txn, r);
    for (size_t i = r->first_new; i < r->first_new + r->nnew && rc == TR_OK; i++) {
        rc = holder_add(snap_of(c)->holder, c->shards[i].uid);
        if (rc == TR_OK) rc = open_log(d, c, &c->shards[i]);
    }
    if (rc != TR_OK) {
        internal(err, rc);
        tr_error("msg=\"reshard failed\" stream=%s err=\"%s\"", c->name, tr_strerror(rc));
        tr_data_put(c);
        return -1;
    }
    snprintf(c->status, sizeof c->status, "UPDATING");
    c->ready_ms = now_ms() + d->cfg.transition_ms;
    int sr = reg_set(d, c);
    if (sr != TR_OK) {
        internal(err, sr);
        tr_data_put(c);
        return -1;
    }
    return 0;
}

static size_t open_count(const tr_data_stream *s) {
    size_t n = 0;
    for (size_t i = 0; i < s->nshards; i++) n += !s->shards[i].closed;
    return n;
}

static int split_locked(tr_data *d, tr_data_stream *cur, const char *shard_id, tr_hashkey at,
                        int check_active, tr_data_err *err) {
    if (check_active && require_active(d, cur, err) != 0) return -1;
    const tr_data_shard *p = tr_data_shard_by_id(cur, shard_id);
    if (!p) {
        seterr(err, "ResourceNotFoundException", "Could not find shard %s in stream %s under account %s.",
               shard_id, cur->name, d->cfg.account);
        return -1;
    }
    if (p->closed) {
        seterr(err, "InvalidArgumentException", "Shard %s in stream %s under account %s has already been merged or split, and thus is not eligible for merging or splitting.",
               p->id, cur->name, d->cfg.account);
        return -1;
    }
    if (at <= p->start || at > p->end) {
        char a[40];
        tr_hashkey_format(at, a);
        seterr(err, "InvalidArgumentException", "NewStartingHashKey %s used in SplitShard() on shard %s in stream %s under account %s is not both greater than one plus the shard's StartingHashKey and less than the shard's EndingHashKey.",
               a, p->id, cur->name, d->cfg.account);
        return -1;
    }
    tr_data_stream *c = snap_copy(cur, 2);
    if (!c) {
        internal(err, TR_ENOMEM);
        return -1;
    }
    int64_t now = now_ms();
    reshard_ctx r = {c, 1, c->nshards, 2, {p->index, 0}};
    tr_data_shard *parent = &c->shards[p->index];
    new_child(c, parent->start, at - 1, parent->index, -1, now);
    new_child(c, at, parent->end, parent->index, -1, now);
    return finish_reshard(d, &r, err);
}

int tr_data_split(tr_data *d, tr_data_stream *s, const char *shard_id, tr_hashkey at,
                  tr_data_err *err) {
    pthread_mutex_lock(&d->ctl);
    tr_data_stream *cur = tr_data_get(d, s->name, NULL, err);
    int rc = cur ? split_locked(d, cur, shard_id, at, 1, err) : -1;
    tr_data_put(cur);
    pthread_mutex_unlock(&d->ctl);
    return rc;
}

static int merge_locked(tr_data *d, tr_data_stream *cur, const char *a_id, const char *b_id,
                        int check_active, tr_data_err *err) {
    if (check_active && require_active(d, cur, err) != 0) return -1;
    const tr_data_shard *a = tr_data_shard_by_id(cur, a_id), *b = tr_data_shard_by_id(cur, b_id);
    if (!a || !b) {
        seterr(err, "ResourceNotFoundException", "Could not find shard %s in stream %s under account %s.",
               !a ? a_id : b_id, cur->name, d->cfg.account);
        return -1;
    }
    if (a->closed || b->closed) {
        seterr(err, "InvalidArgumentException", "Shard %s in stream %s under account %s has already been merged or split, and thus is not eligible for merging or splitting.",
               a->closed ? a->id : b->id, cur->name, d->cfg.account);
        return -1;
    }
    if (!(a->end + 1 == b->start || b->end + 1 == a->start)) {
        seterr(err, "InvalidArgumentException", "Shards %s and %s in stream %s under account %s are not an adjacent pair of shards eligible for merging",
               a->id, b->id, cur->name, d->cfg.account);
        return -1;
    }
    tr_data_stream *c = snap_copy(cur, 1);
    if (!c) {
        internal(err, TR_ENOMEM);
        return -1;
    }
    reshard_ctx r = {c, 2, c->nshards, 1, {a->index, b->index}};
    new_child(c, a->start < b->start ? a->start : b->start, a->end > b->end ? a->end : b->end,
              a->index, b->index, now_ms());
    return finish_reshard(d, &r, err);
}

int tr_data_merge(tr_data *d, tr_data_stream *s, const char *a_id, const char *b_id,
                  tr_data_err *err) {
    pthread_mutex_lock(&d->ctl);
    tr_data_stream *cur = tr_data_get(d, s->name, NULL, err);
    int rc = cur ? merge_locked(d, cur, a_id, b_id, 1, err) : -1;
    tr_data_put(cur);
    pthread_mutex_unlock(&d->ctl);
    return rc;
}

/* UpdateShardCount as a series of splits (of the widest open shard, at its middle) or merges
 * (of the adjacent open pair with the narrowest union), so every child has at most two
 * parents and per-key order holds. The final ranges are close to, not exactly, uniform. */
int tr_data_update_shard_count(tr_data *d, tr_data_stream *s, int target, tr_data_err *err) {
    pthread_mutex_lock(&d->ctl);
    tr_data_stream *cur = tr_data_get(d, s->name, NULL, err);
    int rc = cur ? require_active(d, cur, err) : -1;
    size_t open = cur ? open_count(cur) : 0;
    if (rc == 0 && (target < 1 || (size_t)target > open * 2 || (size_t)target * 2 < open)) {
        seterr(err, "InvalidArgumentException",
               "UpdateShardCount cannot scale up over double your current open shard count "
               "(%zu) or scale down below half your current open shard count.", open);
        rc = -1;
    }
    while (rc == 0 && open != (size_t)target) {
        const tr_data_shard *best = NULL, *best2 = NULL;
        tr_hashkey best_w = 0;
        for (size_t i = 0; i < cur->nshards; i++) {
            const tr_data_shard *x = &cur->shards[i];
            if (x->closed) continue;
            if (open < (size_t)target) {
                if (!best || x->end - x->start > best_w) best = x, best_w = x->end - x->start;
                continue;
            }
            for (size_t j = 0; j < cur->nshards; j++) {
                const tr_data_shard *y = &cur->shards[j];
                if (y->closed || x->end == TR_HASHKEY_MAX || x->end + 1 != y->start) continue;
                tr_hashkey w = y->end - x->start;
                if (!best || w < best_w) best = x, best2 = y, best_w = w;
            }
        }
        if (open < (size_t)target)
            rc = split_locked(d, cur, best->id, best->start + (best->end - best->start) / 2 + 1, 0, err);
        else
            rc = merge_locked(d, cur, best->id, best2->id, 0, err);
        tr_data_put(cur);
        cur = rc == 0 ? tr_data_get(d, s->name, NULL, err) : NULL;
        open = cur ? open_count(cur) : 0;
        if (rc == 0 && !cur) rc = -1;
    }
    tr_data_put(cur);
    pthread_mutex_unlock(&d->ctl);
    return rc;
}

/* ---- attributes ---- */

typedef void (*mutate_fn)(tr_data_stream *c, const void *arg);

static int mutate(tr_data *d, tr_data_stream *s, mutate_fn fn, const void *arg, int updating,
                  tr_data_err *err) {
    pthread_mutex_lock(&d->ctl);
    tr_data_stream *cur = tr_data_get(d, s->name, NULL, err);
    int rc = -1;
    if (cur && (!updating || require_active(d, cur, err) == 0)) {
        tr_data_stream *c = snap_copy(cur, 0);
        if (!c) {
            internal(err, TR_ENOMEM);
        } else {
            fn(c, arg);
            if (updating) {
                snprintf(c->status, sizeof c->status, "UPDATING");
                c->ready_ms = now_ms() + d->cfg.transition_ms;
            }
            rc = commit_copy(d, c, err);
        }
    }
    tr_data_put(cur);
    pthread_mutex_unlock(&d->ctl);
    return rc;
}

typedef struct { int on; const char *key; } enc_arg;
static void set_enc(tr_data_stream *c, const void *arg) {
    const enc_arg *a = arg;
    c->encrypted = a->on;
    snprintf(c->key_id, sizeof c->key_id, "%s", a->on && a->key ? a->key : "");
}

int tr_data_set_encryption(tr_data *d, tr_data_stream *s, int on, const char *key_id,
                           tr_data_err *err) {
    enc_arg a = {on, key_id};
    return mutate(d, s, set_enc, &a, 1, err);
}

typedef struct { uint32_t mask; int enable; } metrics_arg;
static void set_metrics(tr_data_stream *c, const void *arg) {
    const metrics_arg *a = arg;
    c->metrics_mask = a->enable ? c->metrics_mask | a->mask : c->metrics_mask & ~a->mask;
}

int tr_data_set_metrics(tr_data *d, tr_data_stream *s, uint32_t mask, int enable,
                        uint32_t *before, uint32_t *after, tr_data_err *err) {
    metrics_arg a = {mask, enable};
    tr_data_stream *cur = tr_data_get(d, s->name, NULL, err);
    if (!cur) return -1;
    *before = cur->metrics_mask;
    tr_data_put(cur);
    int rc = mutate(d, s, set_metrics, &a, 0, err);
    *after = enable ? *before | mask : *before & ~mask;
    return rc;
}

static void set_max_record(tr_data_stream *c, const void *arg) {
    c->max_record_kib = *(const uint32_t *)arg;
}

int tr_data_set_max_record(tr_data *d, tr_data_stream *s, uint32_t kib, tr_data_err *err) {
    return mutate(d, s, set_max_record, &kib, 1, err);
}

static void set_mode(tr_data_stream *c, const void *arg) { c->on_demand = *(const int *)arg; }

int tr_data_set_mode(tr_data *d, tr_data_stream *s, int on_demand, tr_data_err *err) {
    return mutate(d, s, set_mode, &on_demand, 1, err);
}
