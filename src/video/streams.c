#include "video/streams.h"

#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "util/error.h"
#include "util/log.h"

/* The shard a stream writes to, shared by every snapshot of the stream, so that a deleted
 * stream's files are dropped only when its last snapshot goes. */
typedef struct log_holder {
    atomic_int refs;
    atomic_int deleted;
    tr_store *st;
    int64_t uid;
} log_holder;

/* A snapshot holds its holder here, beside the public struct, which stays plain data. */
typedef struct snapshot {
    tr_video_stream pub;
    log_holder *holder;
} snapshot;

struct tr_video {
    tr_video_config cfg;
    tr_catalog *cat;
    tr_store *st;
    pthread_mutex_t ctl;     /* serialises control-plane changes */
    pthread_mutex_t cat_mu;  /* guards the catalog when no with_catalog hook is given */
    pthread_mutex_t reg;     /* guards the registry array; held only to look up and swap */
    tr_video_stream **streams;
    size_t n, cap;
};

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void seterr(tr_video_err *e, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(tr_video_err *e, const char *type, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    e->type = type;
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

static void not_found(tr_video_err *e) {
    seterr(e, "ResourceNotFoundException", "The requested stream is not found or not active.");
}

static void internal(tr_video_err *e, int rc) {
    seterr(e, "InternalFailure", "Internal service failure: %s", tr_strerror(rc));
}

const tr_video_config *tr_video_cfg(const tr_video *v) { return &v->cfg; }
tr_store *tr_video_store(tr_video *v) { return v->st; }

const char *tr_video_status(const tr_video_stream *s, int64_t now) {
    return now >= s->ready_ms ? "ACTIVE" : s->status;
}

int64_t tr_video_retention_ms(int hours) {
    return hours > 0 ? (int64_t)hours * 3600000 : TR_VIDEO_LIVE_BUFFER_MS;
}

/* Runs fn on the catalog under whichever lock guards it. */
static int cat_call(tr_video *v, int (*fn)(tr_catalog *c, void *arg), void *arg) {
    if (v->cfg.with_catalog) return v->cfg.with_catalog(v->cfg.with_catalog_ctx, fn, arg);
    pthread_mutex_lock(&v->cat_mu);
    int rc = fn(v->cat, arg);
    pthread_mutex_unlock(&v->cat_mu);
    return rc;
}

/* ---- snapshots ---- */

static void holder_put(log_holder *h) {
    if (!h || atomic_fetch_sub(&h->refs, 1) != 1) return;
    if (atomic_load(&h->deleted)) tr_store_drop_shard(h->st, (uint64_t)h->uid);
    free(h);
}

void tr_video_put(tr_video_stream *s) {
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1) return;
    log_holder *h = ((snapshot *)s)->holder;
    free(s);
    holder_put(h);
}

static tr_video_stream *snap_new(void) {
    snapshot *sn = calloc(1, sizeof *sn);
    if (!sn) return NULL;
    atomic_init(&sn->pub.refs, 1);
    return &sn->pub;
}

/* A copy of s sharing its holder. */
static tr_video_stream *snap_copy(const tr_video_stream *s) {
    snapshot *c = malloc(sizeof *c);
    if (!c) return NULL;
    *c = *(const snapshot *)s;
    atomic_init(&c->pub.refs, 1);
    if (c->holder) atomic_fetch_add(&c->holder->refs, 1);
    return &c->pub;
}

static log_holder *holder_of(tr_video_stream *s) { return ((snapshot *)s)->holder; }

/* ---- the registry ---- */

static ssize_t reg_find(tr_video *v, const char *name) {
    for (size_t i = 0; i < v->n; i++)
        if (strcmp(v->streams[i]->name, name) == 0) return (ssize_t)i;
    return -1;
}

/* Swaps in a new snapshot (or adds it); the registry takes the reference it is given. */
static int reg_set(tr_video *v, tr_video_stream *s) {
    pthread_mutex_lock(&v->reg);
    ssize_t i = reg_find(v, s->name);
    tr_video_stream *old = NULL;
    int rc = TR_OK;
    if (i >= 0) {
        old = v->streams[i];
        v->streams[i] = s;
    } else {
        if (v->n == v->cap) {
            size_t cap = v->cap ? v->cap * 2 : 16;
            tr_video_stream **grown = realloc(v->streams, cap * sizeof *grown);
            if (grown) {
                v->streams = grown;
                v->cap = cap;
            } else {
                rc = TR_ENOMEM;
            }
        }
        if (rc == TR_OK) v->streams[v->n++] = s;
    }
    pthread_mutex_unlock(&v->reg);
    tr_video_put(old);
    return rc;
}

static tr_video_stream *reg_remove(tr_video *v, const char *name) {
    pthread_mutex_lock(&v->reg);
    ssize_t i = reg_find(v, name);
    tr_video_stream *s = NULL;
    if (i >= 0) {
        s = v->streams[i];
        v->streams[i] = v->streams[--v->n];
    }
    pthread_mutex_unlock(&v->reg);
    return s;
}

/* The name in arn:...:stream/<name>/<ms>. */
static int name_from_arn(const char *arn, char *name, size_t len) {
    const char *p = strstr(arn, ":stream/");
    if (strncmp(arn, "arn:", 4) != 0 || !p) return -1;
    p += strlen(":stream/");
    size_t n = strcspn(p, "/");
    if (n == 0 || n >= len || p[n] != '/') return -1;
    memcpy(name, p, n);
    name[n] = '\0';
    return 0;
}

tr_video_stream *tr_video_get(tr_video *v, const char *name, const char *arn, tr_video_err *err) {
    char from_arn[TR_NAME_MAX + 1];
    if (!name && arn) {
        if (name_from_arn(arn, from_arn, sizeof from_arn) != 0) {
            not_found(err);
            return NULL;
        }
        name = from_arn;
    }
    if (!name) {
        seterr(err, "InvalidArgumentException", "Either StreamName or StreamARN must be provided.");
        return NULL;
    }
    pthread_mutex_lock(&v->reg);
    ssize_t i = reg_find(v, name);
    tr_video_stream *s = i >= 0 ? v->streams[i] : NULL;
    if (s) atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&v->reg);
    if (s && arn && strcmp(arn, s->arn) != 0) {
        tr_video_put(s);
        s = NULL;
    }
    if (!s) not_found(err);
    return s;
}

tr_video_stream *tr_video_get_by_id(tr_video *v, int64_t id) {
    pthread_mutex_lock(&v->reg);
    tr_video_stream *s = NULL;
    for (size_t i = 0; i < v->n && !s; i++)
        if (v->streams[i]->id == id) s = v->streams[i];
    if (s) atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&v->reg);
    return s;
}

/* ---- catalog <-> memory ---- */

static void stream_arn(tr_video *v, const char *name, int64_t created_ms, char *out, size_t len) {
    snprintf(out, len, "arn:aws:kinesisvideo:%s:%s:stream/%s/%" PRId64, v->cfg.region,
             v->cfg.account, name, created_ms);
}

static void default_key(tr_video *v, char *out, size_t len) {
    snprintf(out, len, "arn:aws:kms:%s:%s:alias/aws/kinesisvideo", v->cfg.region,
             v->cfg.account);
}

/* attrs_json: the members KVS has and the catalog's columns do not. */
static int attrs_write(const tr_video_stream *s, tr_stream_meta *m) {
    json_t *a = json_object();
    if (!a) return TR_ENOMEM;
    int bad = 0;
    if (s->device_name[0]) bad |= json_object_set_new(a, "device_name", json_string(s->device_name));
    if (s->media_type[0]) bad |= json_object_set_new(a, "media_type", json_string(s->media_type));
    bad |= json_object_set_new(a, "kms_key_id", json_string(s->kms_key_id));
    bad |= json_object_set_new(a, "storage_tier", json_string(s->storage_tier));
    char *text = bad ? NULL : json_dumps(a, JSON_COMPACT);
    json_decref(a);
    if (!text) return TR_ENOMEM;
    free(m->attrs_json);
    m->attrs_json = text;
    return TR_OK;
}

static void copy_attr(json_t *a, const char *key, char *out, size_t len, const char *dflt) {
    const char *val = json_string_value(json_object_get(a, key));
    snprintf(out, len, "%s", val ? val : dflt);
}

static void attrs_read(tr_video *v, tr_video_stream *s, const char *text) {
    json_t *a = text ? json_loads(text, 0, NULL) : NULL;
    copy_attr(a, "device_name", s->device_name, sizeof s->device_name, "");
    copy_attr(a, "media_type", s->media_type, sizeof s->media_type, "");
    copy_attr(a, "storage_tier", s->storage_tier, sizeof s->storage_tier, "HOT");
    copy_attr(a, "kms_key_id", s->kms_key_id, sizeof s->kms_key_id, "");
    if (!s->kms_key_id[0]) default_key(v, s->kms_key_id, sizeof s->kms_key_id);
    json_decref(a);
}

/* Opens the stream's shard (creating its directory the first time) and sets its retention. */
static int open_log(tr_video *v, tr_video_stream *s) {
    char label[TR_NAME_MAX + 64];
    snprintf(label, sizeof label, "kind=\"video\",stream=\"%s\"", s->name);
    int rc = tr_store_shard(v->st, (uint64_t)s->shard_uid, label, 1, &s->log);
    if (rc == TR_OK) tr_store_set_retention(v->st, s->log, tr_video_retention_ms(s->retention_hours));
    return rc;
}

static int attach_holder(tr_video *v, tr_video_stream *s) {
    log_holder *h = calloc(1, sizeof *h);
    if (!h) return TR_ENOMEM;
    atomic_init(&h->refs, 1);
    atomic_init(&h->deleted, 0);
    h->st = v->st;
    h->uid = s->shard_uid;
    ((snapshot *)s)->holder = h;
    return TR_OK;
}

typedef struct load_ctx {
    tr_video *v;
    tr_catalog *cat;
} load_ctx;

/* Builds the first snapshot of a stream from its catalog row and shard row. */
static int load_stream(load_ctx *l, const tr_stream_meta *m) {
    tr_video *v = l->v;
    tr_shard_meta *shards = NULL;
    size_t n = 0;
    int rc = tr_catalog_shard_list(l->cat, m->id, &shards, &n);
    if (rc != TR_OK) return rc;
    if (n != 1) {
        free(shards);
        return TR_ECORRUPT; /* a video stream has exactly one shard */
    }
    tr_video_stream *s = snap_new();
    if (!s) {
        free(shards);
        return TR_ENOMEM;
    }
    s->id = m->id;
    snprintf(s->name, sizeof s->name, "%s", m->name);
    s->created_ms = m->created_ms;
    stream_arn(v, s->name, s->created_ms, s->arn, sizeof s->arn);
    snprintf(s->status, sizeof s->status, "%.11s", m->status);
    s->ready_ms = 0; /* transitions do not survive a restart */
    s->retention_hours = (int)m->retention_hours;
    s->version = m->version;
    s->shard_uid = shards[0].uid;
    free(shards);
    attrs_read(v, s, m->attrs_json);
    rc = attach_holder(v, s);
    if (rc == TR_OK) rc = open_log(v, s);
    if (rc == TR_OK) rc = reg_set(v, s);
    else tr_video_put(s);
    return rc;
}

static int load_visit(void *ctx, const tr_stream_meta *m) {
    int rc = load_stream(ctx, m);
    if (rc != TR_OK)
        tr_error("msg=\"cannot load video stream\" stream=%s err=\"%s\"", m->name,
                 tr_strerror(rc));
    return 0;
}

static int load_all(tr_catalog *c, void *arg) {
    load_ctx *l = arg;
    l->cat = c;
    return tr_catalog_stream_list(c, "video", NULL, 0, load_visit, l);
}

int tr_video_open(tr_catalog *cat, tr_store *st, const tr_video_config *cfg, tr_video **out) {
    tr_video *v = calloc(1, sizeof *v);
    if (!v) return TR_ENOMEM;
    if (cfg) v->cfg = *cfg;
    if (!v->cfg.region) v->cfg.region = "us-east-1";
    if (!v->cfg.account) v->cfg.account = "000000000000";
    if (v->cfg.transition_ms < 0) v->cfg.transition_ms = 0;
    v->cat = cat;
    v->st = st;
    pthread_mutex_init(&v->ctl, NULL);
    pthread_mutex_init(&v->cat_mu, NULL);
    pthread_mutex_init(&v->reg, NULL);
    load_ctx l = {v, NULL};
    int rc = cat_call(v, load_all, &l);
    if (rc < 0) {
        tr_video_close(v);
        return rc;
    }
    *out = v;
    return TR_OK;
}

void tr_video_close(tr_video *v) {
    if (!v) return;
    for (size_t i = 0; i < v->n; i++) tr_video_put(v->streams[i]);
    free(v->streams);
    pthread_mutex_destroy(&v->ctl);
    pthread_mutex_destroy(&v->cat_mu);
    pthread_mutex_destroy(&v->reg);
    free(v);
}

/* ---- listing ---- */

static int by_name(const void *a, const void *b) {
    return strcmp((*(tr_video_stream *const *)a)->name, (*(tr_video_stream *const *)b)->name);
}

int tr_video_list(tr_video *v, const char *after, const char *prefix, int limit,
                  int (*fn)(void *ctx, const tr_video_stream *s), void *ctx) {
    /* Take references under the lock, then sort and call fn without it. */
    pthread_mutex_lock(&v->reg);
    size_t n = v->n;
    tr_video_stream **all = malloc((n ? n : 1) * sizeof *all);
    for (size_t i = 0; all && i < n; i++) {
        all[i] = v->streams[i];
        atomic_fetch_add(&all[i]->refs, 1);
    }
    pthread_mutex_unlock(&v->reg);
    if (!all) return TR_ENOMEM;
    qsort(all, n, sizeof *all, by_name);
    size_t plen = prefix ? strlen(prefix) : 0;
    int count = 0, stop = 0;
    for (size_t i = 0; i < n; i++) {
        const tr_video_stream *s = all[i];
        if (!stop && (!after || strcmp(s->name, after) > 0) &&
            (!prefix || strncmp(s->name, prefix, plen) == 0) && (limit <= 0 || count < limit)) {
            count++;
            stop = fn(ctx, s) != 0;
        }
        tr_video_put(all[i]);
    }
    free(all);
    return count;
}

/* ---- control plane ---- */

typedef struct create_ctx {
    tr_stream_meta *meta;
    const tr_video_spec *spec;
    int64_t shard_uid;
} create_ctx;

static int create_body(tr_catalog *c, void *arg) {
    create_ctx *cc = arg;
    int rc = tr_catalog_stream_create(c, cc->meta);
    if (rc != TR_OK) return rc;
    tr_shard_meta sh = {.stream_id = cc->meta->id, .index = 0, .hash_start = "0",
                        .hash_end = "340282366920938463463374607431768211455",
                        .parent_index = -1, .adjacent_parent_index = -1, .starting_seq = 1,
                        .created_ms = cc->meta->created_ms};
    rc = tr_catalog_shard_add(c, &sh);
    cc->shard_uid = sh.uid;
    for (size_t i = 0; rc == TR_OK && i < cc->spec->ntags; i++)
        rc = tr_catalog_tag_set(c, cc->meta->id, cc->spec->tag_keys[i], cc->spec->tag_values[i]);
    return rc;
}

static int create_txn(tr_catalog *c, void *arg) { return tr_catalog_txn(c, create_body, arg); }

static int delete_row(tr_catalog *c, void *arg) {
    return tr_catalog_stream_delete(c, *(const int64_t *)arg);
}

/* A new snapshot from the spec, without ids. */
static tr_video_stream *from_spec(tr_video *v, const tr_video_spec *spec) {
    tr_video_stream *s = snap_new();
    if (!s) return NULL;
    snprintf(s->name, sizeof s->name, "%s", spec->name);
    s->created_ms = now_ms();
    stream_arn(v, s->name, s->created_ms, s->arn, sizeof s->arn);
    snprintf(s->status, sizeof s->status, "CREATING");
    s->ready_ms = s->created_ms + v->cfg.transition_ms;
    s->retention_hours = spec->retention_hours;
    snprintf(s->device_name, sizeof s->device_name, "%s", spec->device_name ? spec->device_name : "");
    snprintf(s->media_type, sizeof s->media_type, "%s", spec->media_type ? spec->media_type : "");
    if (spec->kms_key_id)
        snprintf(s->kms_key_id, sizeof s->kms_key_id, "%s", spec->kms_key_id);
    else
        default_key(v, s->kms_key_id, sizeof s->kms_key_id);
    snprintf(s->storage_tier, sizeof s->storage_tier, "%s",
             spec->storage_tier ? spec->storage_tier : "HOT");
    s->version = 1;
    return s;
}

int tr_video_create(tr_video *v, const tr_video_spec *spec, tr_video_stream **out,
                    tr_video_err *err) {
    if (spec->retention_hours < 0 || spec->retention_hours > TR_VIDEO_MAX_RETENTION_HOURS) {
        seterr(err, "InvalidArgumentException",
               "DataRetentionInHours must be between 0 and %d.", TR_VIDEO_MAX_RETENTION_HOURS);
        return -1;
    }
    if (spec->ntags > TR_VIDEO_MAX_TAGS) {
        seterr(err, "TagsPerResourceExceededLimitException",
               "A stream cannot have more than %d tags.", TR_VIDEO_MAX_TAGS);
        return -1;
    }
    pthread_mutex_lock(&v->ctl);
    tr_video_stream *s = from_spec(v, spec);
    tr_stream_meta meta = {0};
    int rc = s ? TR_OK : TR_ENOMEM;
    if (rc == TR_OK) {
        snprintf(meta.kind, sizeof meta.kind, "video");
        snprintf(meta.name, sizeof meta.name, "%s", s->name);
        snprintf(meta.status, sizeof meta.status, "ACTIVE"); /* the transition is in memory */
        meta.created_ms = s->created_ms;
        meta.retention_hours = s->retention_hours;
        rc = attrs_write(s, &meta);
    }
    create_ctx cc = {&meta, spec, 0};
    if (rc == TR_OK) rc = cat_call(v, create_txn, &cc);
    if (rc == TR_EEXIST) {
        seterr(err, "ResourceInUseException", "The stream %s already exists.", spec->name);
    } else if (rc == TR_OK) {
        s->id = meta.id;
        s->version = meta.version;
        s->shard_uid = cc.shard_uid;
        rc = attach_holder(v, s);
        if (rc == TR_OK) rc = open_log(v, s);
        if (rc == TR_OK) {
            if (out) {
                atomic_fetch_add(&s->refs, 1);
                *out = s;
            }
            rc = reg_set(v, s);
            if (rc != TR_OK && out) {
                tr_video_put(*out);
                *out = NULL;
            }
        }
        if (rc != TR_OK) {
            internal(err, rc);
            tr_error("msg=\"cannot create video stream\" stream=%s err=\"%s\"", s->name,
                     tr_strerror(rc));
            cat_call(v, delete_row, &s->id);
            if (holder_of(s)) atomic_store(&holder_of(s)->deleted, 1);
        } else {
            s = NULL; /* the registry owns it */
        }
    } else {
        internal(err, rc);
    }
    tr_video_put(s);
    tr_stream_meta_clear(&meta);
    pthread_mutex_unlock(&v->ctl);
    return rc == TR_OK ? 0 : -1;
}

static int check_version(const tr_video_stream *s, const char *current, tr_video_err *err) {
    if (!current) return 0;
    char have[24];
    snprintf(have, sizeof have, "%" PRId64, s->version);
    if (strcmp(have, current) == 0) return 0;
    seterr(err, "VersionMismatchException",
           "The version %.64s does not match the current version %s of stream %s.", current,
           have, s->name);
    return -1;
}

static int require_active(const tr_video_stream *s, tr_video_err *err) {
    const char *st = tr_video_status(s, now_ms());
    if (strcmp(st, "ACTIVE") == 0) return 0;
    seterr(err, "ResourceInUseException", "The stream %s is %s, not ACTIVE.", s->name, st);
    return -1;
}

int tr_video_delete(tr_video *v, const char *name, const char *arn, const char *current_version,
                    tr_video_err *err) {
    pthread_mutex_lock(&v->ctl);
    tr_video_stream *s = tr_video_get(v, name, arn, err);
    int rc = -1;
    if (s && check_version(s, current_version, err) == 0) {
        int crc = cat_call(v, delete_row, &s->id);
        if (crc != TR_OK) {
            internal(err, crc);
        } else {
            atomic_store(&holder_of(s)->deleted, 1);
            tr_video_put(reg_remove(v, s->name));
            rc = 0;
        }
    }
    tr_video_put(s);
    pthread_mutex_unlock(&v->ctl);
    return rc;
}

typedef struct save_ctx {
    const tr_video_stream *s;
    int64_t version;
} save_ctx;

/* Writes the stream's row after a change; the catalog bumps the version. */
static int save_row(tr_catalog *c, void *arg) {
    save_ctx *sc = arg;
    tr_stream_meta m;
    int rc = tr_catalog_stream_get_by_id(c, sc->s->id, &m);
    if (rc != TR_OK) return rc;
    m.retention_hours = sc->s->retention_hours;
    rc = attrs_write(sc->s, &m);
    if (rc == TR_OK) rc = tr_catalog_stream_update(c, &m);
    sc->version = m.version;
    tr_stream_meta_clear(&m);
    return rc;
}

/* Saves a changed copy, marks it UPDATING and swaps it in. Takes ownership of c. */
static int commit_copy(tr_video *v, tr_video_stream *c, tr_video_err *err) {
    save_ctx sc = {c, 0};
    int rc = cat_call(v, save_row, &sc);
    if (rc == TR_OK) {
        c->version = sc.version;
        snprintf(c->status, sizeof c->status, "UPDATING");
        c->ready_ms = now_ms() + v->cfg.transition_ms;
        rc = reg_set(v, c);
    } else {
        tr_video_put(c);
    }
    if (rc == TR_ENOENT) {
        not_found(err);
    } else if (rc != TR_OK) {
        internal(err, rc);
    }
    return rc == TR_OK ? 0 : -1;
}

/* The stream to change, checked: exists, version matches, ACTIVE. NULL with err set. */
static tr_video_stream *for_update(tr_video *v, const char *name, const char *arn,
                                   const char *current_version, tr_video_err *err) {
    tr_video_stream *cur = tr_video_get(v, name, arn, err);
    if (cur && (check_version(cur, current_version, err) != 0 || require_active(cur, err) != 0)) {
        tr_video_put(cur);
        cur = NULL;
    }
    return cur;
}

int tr_video_update(tr_video *v, const char *name, const char *arn, const char *current_version,
                    const char *device_name, const char *media_type, tr_video_err *err) {
    pthread_mutex_lock(&v->ctl);
    int rc = -1;
    tr_video_stream *cur = for_update(v, name, arn, current_version, err);
    tr_video_stream *c = cur ? snap_copy(cur) : NULL;
    if (cur && !c) internal(err, TR_ENOMEM);
    if (c) {
        if (device_name) snprintf(c->device_name, sizeof c->device_name, "%s", device_name);
        if (media_type) snprintf(c->media_type, sizeof c->media_type, "%s", media_type);
        rc = commit_copy(v, c, err);
    }
    tr_video_put(cur);
    pthread_mutex_unlock(&v->ctl);
    return rc;
}

int tr_video_update_retention(tr_video *v, const char *name, const char *arn,
                              const char *current_version, int increase, int change_hours,
                              tr_video_err *err) {
    pthread_mutex_lock(&v->ctl);
    int rc = -1;
    tr_video_stream *cur = for_update(v, name, arn, current_version, err);
    if (!cur) goto out;
    int64_t hours = (int64_t)cur->retention_hours + (increase ? change_hours : -(int64_t)change_hours);
    if (change_hours < 1 || hours < 0 || hours > TR_VIDEO_MAX_RETENTION_HOURS) {
        seterr(err, "InvalidArgumentException",
               "The resulting data retention of %" PRId64 " hours for stream %s is not between "
               "0 and %d hours.", hours, cur->name, TR_VIDEO_MAX_RETENTION_HOURS);
        goto out;
    }
    tr_video_stream *c = snap_copy(cur);
    if (!c) {
        internal(err, TR_ENOMEM);
        goto out;
    }
    c->retention_hours = (int)hours;
    tr_shard *log = c->log;
    rc = commit_copy(v, c, err);
    if (rc == 0) tr_store_set_retention(v->st, log, tr_video_retention_ms((int)hours));
out:
    tr_video_put(cur);
    pthread_mutex_unlock(&v->ctl);
    return rc;
}

/* ---- tags ---- */

typedef struct tag_ctx {
    int64_t id;
    const char *const *keys;
    const char *const *values;
    size_t n;
    int over;
    tr_tag_visit fn;
    void *fn_ctx;
} tag_ctx;

static int tag_body(tr_catalog *c, void *arg) {
    tag_ctx *t = arg;
    for (size_t i = 0; i < t->n; i++) {
        int rc = tr_catalog_tag_set(c, t->id, t->keys[i], t->values[i]);
        if (rc != TR_OK) return rc;
    }
    int count = tr_catalog_tag_count(c, t->id);
    if (count < 0) return count;
    if (count > TR_VIDEO_MAX_TAGS) {
        t->over = 1;
        return TR_EINVAL; /* rolls back every tag of this call */
    }
    return TR_OK;
}

static int tag_txn(tr_catalog *c, void *arg) { return tr_catalog_txn(c, tag_body, arg); }

static int untag_body(tr_catalog *c, void *arg) {
    tag_ctx *t = arg;
    for (size_t i = 0; i < t->n; i++) {
        int rc = tr_catalog_tag_remove(c, t->id, t->keys[i]);
        if (rc != TR_OK) return rc;
    }
    return TR_OK;
}

static int untag_txn(tr_catalog *c, void *arg) { return tr_catalog_txn(c, untag_body, arg); }

static int tags_list(tr_catalog *c, void *arg) {
    tag_ctx *t = arg;
    int rc = tr_catalog_tag_list(c, t->id, NULL, 0, t->fn, t->fn_ctx);
    return rc < 0 ? rc : TR_OK;
}

/* Maps a catalog result of a tag call on stream s to 0 or -1 with err. */
static int tag_result(int rc, const tag_ctx *t, const tr_video_stream *s, tr_video_err *err) {
    if (rc == TR_OK) return 0;
    if (t->over)
        seterr(err, "TagsPerResourceExceededLimitException",
               "The stream %s cannot have more than %d tags.", s->name, TR_VIDEO_MAX_TAGS);
    else if (rc == TR_ENOENT)
        not_found(err);
    else
        internal(err, rc);
    return -1;
}

int tr_video_tag(tr_video *v, const tr_video_stream *s, const char *const *keys,
                 const char *const *values, size_t n, tr_video_err *err) {
    tag_ctx t = {.id = s->id, .keys = keys, .values = values, .n = n};
    return tag_result(cat_call(v, tag_txn, &t), &t, s, err);
}

int tr_video_untag(tr_video *v, const tr_video_stream *s, const char *const *keys, size_t n,
                   tr_video_err *err) {
    tag_ctx t = {.id = s->id, .keys = keys, .n = n};
    return tag_result(cat_call(v, untag_txn, &t), &t, s, err);
}

int tr_video_tags(tr_video *v, const tr_video_stream *s, tr_tag_visit fn, void *ctx,
                  tr_video_err *err) {
    tag_ctx t = {.id = s->id, .fn = fn, .fn_ctx = ctx};
    return tag_result(cat_call(v, tags_list, &t), &t, s, err);
}
