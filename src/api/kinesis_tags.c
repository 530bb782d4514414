/* Stream tags: AddTagsToStream, RemoveTagsFromStream, ListTagsForStream and the
 * resource-ARN forms TagResource, UntagResource, ListTagsForResource. Kept in the catalog. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/kinesis_call.h"
#include "util/error.h"

typedef struct tag_set_ctx {
    int64_t id;
    json_t *tags;
    int over;
} tag_set_ctx;

static int set_tags(tr_catalog *cat, void *arg) {
    tag_set_ctx *t = arg;
    const char *key;
    json_t *v;
    json_object_foreach(t->tags, key, v) {
        int rc = tr_catalog_tag_set(cat, t->id, key, json_string_value(v));
        if (rc != TR_OK) return rc;
    }
    int n = tr_catalog_tag_count(cat, t->id);
    if (n < 0) return n;
    if (n > KIN_MAX_TAGS) {
        t->over = 1;
        return TR_EINVAL; /* rolls back every tag of this call */
    }
    return TR_OK;
}

static int set_tags_txn(tr_catalog *cat, void *arg) { return tr_catalog_txn(cat, set_tags, arg); }

int kin_apply_tags(kin_call *c, tr_data_stream *s, json_t *tags) {
    if (!json_is_object(tags)) return kin_fail(c, 400, "SerializationException", "Tags must be a map");
    const char *key;
    json_t *v;
    json_object_foreach(tags, key, v) {
        size_t klen = strlen(key);
        if (klen < 1 || klen > 128)
            return kin_invalid(c, key, "tags",
                               "Member must have length less than or equal to 128");
        if (!json_is_string(v) || !kin_is_text(json_string_value(v), json_string_length(v)))
            return kin_fail(c, 400, "SerializationException",
                            "Tag value for key %.128s must be a text string.", key);
        size_t vchars = 0; /* AWS counts characters */
        for (const char *q = json_string_value(v); *q; q++) vchars += (*q & 0xc0) != 0x80;
        if (vchars > 256)
            return kin_fail(c, 400, "InvalidArgumentException",
                            "Tag value for key %.128s must be a string of at most 256 "
                            "characters.",
                            key);
    }
    tag_set_ctx t = {s->id, tags, 0};
    int rc = tr_data_with_catalog(c->k->data, set_tags_txn, &t);
    if (t.over)
        return kin_fail(c, 400, "InvalidArgumentException",
                        "Failed to add tags to stream %s under account %s because a given "
                        "stream cannot have more than %d tags associated with it.",
                        s->name, tr_data_cfg(c->k->data)->account, KIN_MAX_TAGS);
    if (rc == TR_ENOENT) /* deleted since it was looked up */
        return kin_fail(c, 400, "ResourceNotFoundException", "Stream %s under account %s not found.",
                        s->name, tr_data_cfg(c->k->data)->account);
    if (rc != TR_OK) return kin_fail(c, 500, "InternalFailure", "%s", tr_strerror(rc));
    return 0;
}

typedef struct untag_ctx {
    int64_t id;
    json_t *keys;
} untag_ctx;

static int remove_tags(tr_catalog *cat, void *arg) {
    untag_ctx *u = arg;
    size_t i;
    json_t *v;
    json_array_foreach(u->keys, i, v) {
        int rc = tr_catalog_tag_remove(cat, u->id, json_string_value(v));
        if (rc != TR_OK) return rc;
    }
    return TR_OK;
}

static int remove_tags_txn(tr_catalog *cat, void *arg) {
    return tr_catalog_txn(cat, remove_tags, arg);
}

static int untag(kin_call *c, tr_data_stream *s) {
    json_t *keys = json_object_get(c->in, "TagKeys");
    if (keys == NULL || json_is_null(keys))
        return kin_invalid(c, NULL, "tagKeys", "Member must not be null");
    if (!json_is_array(keys)) return kin_fail(c, 400, "SerializationException", "TagKeys");
    if (json_array_size(keys) < 1 || json_array_size(keys) > KIN_MAX_TAGS)
        return kin_invalid(c, "[]", "tagKeys",
                           "Member must have length less than or equal to 50 and greater than "
                           "or equal to 1");
    size_t i;
    json_t *v;
    json_array_foreach(keys, i, v) {
        if (!json_is_string(v)) return kin_fail(c, 400, "SerializationException", "TagKeys");
    }
    untag_ctx u = {s->id, keys};
    int rc = tr_data_with_catalog(c->k->data, remove_tags_txn, &u);
    if (rc != TR_OK) return kin_fail(c, 500, "InternalFailure", "%s", tr_strerror(rc));
    tr_w_obj_begin(&c->out);
    tr_w_obj_end(&c->out);
    return 0;
}

typedef struct list_ctx {
    kin_call *c;
    int64_t id;
    const char *after;
    int limit;     /* <= 0: all */
    int shown;
    int more;
} list_ctx;

static int list_visit(void *arg, const char *key, const char *value) {
    list_ctx *l = arg;
    if (l->limit > 0 && l->shown == l->limit) {
        l->more = 1;
        return 1;
    }
    tr_writer *w = &l->c->out;
    tr_w_obj_begin(w);
    tr_w_kstr(w, "Key", key);
    tr_w_kstr(w, "Value", value);
    tr_w_obj_end(w);
    l->shown++;
    return 0;
}

static int list_tags_locked(tr_catalog *cat, void *arg) {
    list_ctx *l = arg;
    return tr_catalog_tag_list(cat, l->id, l->after, l->limit > 0 ? l->limit + 1 : 0,
                               list_visit, l);
}

/* Writes "Tags": [...] and returns whether more remain, or -1. */
static int write_tags(kin_call *c, tr_data_stream *s, const char *after, int limit) {
    list_ctx l = {c, s->id, after, limit, 0, 0};
    tr_w_key(&c->out, "Tags");
    tr_w_arr_begin(&c->out);
    int rc = tr_data_with_catalog(c->k->data, list_tags_locked, &l);
    tr_w_arr_end(&c->out);
    if (rc != TR_OK) return kin_fail(c, 500, "InternalFailure", "%s", tr_strerror(rc));
    return l.more;
}

void kin_add_tags(kin_call *c) {
    tr_data_stream *s = kin_stream(c);
    if (s == NULL) return;
    json_t *tags = json_object_get(c->in, "Tags");
    if (tags == NULL || json_is_null(tags)) {
        kin_invalid(c, NULL, "tags", "Member must not be null");
    } else if (kin_apply_tags(c, s, tags) == 0) {
        tr_w_obj_begin(&c->out);
        tr_w_obj_end(&c->out);
    }
    tr_data_put(s);
}

void kin_remove_tags(kin_call *c) {
    tr_data_stream *s = kin_stream(c);
    if (s == NULL) return;
    untag(c, s);
    tr_data_put(s);
}

void kin_list_tags(kin_call *c) {
    tr_data_stream *s = kin_stream(c);
    const char *after = NULL;
    int64_t limit = 50;
    if (s == NULL ||
        kin_str(c, "ExclusiveStartTagKey", "exclusiveStartTagKey", 0, 1, 128, &after) != 0 ||
        kin_int(c, "Limit", "limit", 0, 1, 50, &limit) != 0) {
        tr_data_put(s);
        return;
    }
    tr_w_obj_begin(&c->out);
    int more = write_tags(c, s, after, (int)limit);
    if (more >= 0) tr_w_kbool(&c->out, "HasMoreTags", more);
    tr_w_obj_end(&c->out);
    tr_data_put(s);
}

/* The stream a ResourceARN names. */
static tr_data_stream *resource(kin_call *c) {
    const char *arn = NULL;
    if (kin_str(c, "ResourceARN", "resourceARN", 1, 1, 2048, &arn) != 0) return NULL;
    tr_data_err err;
    tr_data_stream *s = tr_data_get(c->k->data, NULL, arn, &err);
    if (s == NULL) kin_fail_data(c, &err);
    return s;
}

void kin_tag_resource(kin_call *c) {
    tr_data_stream *s = resource(c);
    if (s == NULL) return;
    json_t *tags = json_object_get(c->in, "Tags");
    if (tags == NULL || json_is_null(tags)) {
        kin_invalid(c, NULL, "tags", "Member must not be null");
    } else if (kin_apply_tags(c, s, tags) == 0) {
        tr_w_obj_begin(&c->out);
        tr_w_obj_end(&c->out);
    }
    tr_data_put(s);
}

void kin_untag_resource(kin_call *c) {
    tr_data_stream *s = resource(c);
    if (s == NULL) return;
    untag(c, s);
    tr_data_put(s);
}

void kin_list_tags_for_resource(kin_call *c) {
    tr_data_stream *s = resource(c);
    if (s == NULL) return;
    tr_w_obj_begin(&c->out);
    write_tags(c, s, NULL, 0);
    tr_w_obj_end(&c->out);
    tr_data_put(s);
}
