/* Policies per principal: see auth/policy.h. */
#include "auth/policy.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct statement {
    int deny;
    char **actions;
    size_t nactions;
    char **resources;
    size_t nresources;
} statement;

typedef struct principal_policy {
    char *name;
    statement *st;
    size_t nst;
} principal_policy;

struct tr_policy_set {
    principal_policy *p;
    size_t n;
};

static void *fail(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void *fail(char *err, size_t err_len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    return NULL;
}

int tr_policy_match(const char *pat, const char *s, int ignore_case) {
    const char *star = NULL, *resume = NULL;
    while (*s) {
        char pc = *pat, sc = *s;
        if (ignore_case) {
            pc = (char)tolower((unsigned char)pc);
            sc = (char)tolower((unsigned char)sc);
        }
        if (*pat == '*') {
            star = pat++;
            resume = s;
        } else if (*pat != '\0' && (*pat == '?' || pc == sc)) {
            pat++;
            s++;
        } else if (star != NULL) {
            pat = star + 1;
            s = ++resume;
        } else {
            return 0;
        }
    }
    while (*pat == '*') pat++;
    return *pat == '\0';
}

static void free_strings(char **v, size_t n) {
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

void tr_policy_free(tr_policy_set *set) {
    if (set == NULL) return;
    for (size_t i = 0; i < set->n; i++) {
        principal_policy *pp = &set->p[i];
        for (size_t j = 0; j < pp->nst; j++) {
            free_strings(pp->st[j].actions, pp->st[j].nactions);
            free_strings(pp->st[j].resources, pp->st[j].nresources);
        }
        free(pp->st);
        free(pp->name);
    }
    free(set->p);
    free(set);
}

size_t tr_policy_count(const tr_policy_set *p) { return p ? p->n : 0; }

/* A string or a non-empty array of strings into a fresh array. */
static int read_strings(json_t *v, char ***out, size_t *n) {
    size_t count = json_is_string(v) ? 1 : json_is_array(v) ? json_array_size(v) : 0;
    if (count == 0) return -1;
    char **s = calloc(count, sizeof *s);
    if (s == NULL) return -1;
    for (size_t i = 0; i < count; i++) {
        json_t *e = json_is_string(v) ? v : json_array_get(v, i);
        if (!json_is_string(e) || (s[i] = strdup(json_string_value(e))) == NULL) {
            free_strings(s, i);
            return -1;
        }
    }
    *out = s;
    *n = count;
    return 0;
}

static int read_statement(json_t *js, statement *st, const char *who, size_t idx, char *err,
                          size_t err_len) {
    if (!json_is_object(js)) {
        fail(err, err_len, "policy of '%s': Statement %zu is not an object", who, idx);
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach(js, key, v) {
        if (strcmp(key, "Effect") && strcmp(key, "Action") && strcmp(key, "Resource") &&
            strcmp(key, "Sid")) {
            fail(err, err_len, "policy of '%s': Statement %zu: '%s' is not supported (only "
                 "Sid, Effect, Action and Resource)", who, idx, key);
            return -1;
        }
    }
    const char *effect = json_string_value(json_object_get(js, "Effect"));
    if (effect == NULL || (strcmp(effect, "Allow") != 0 && strcmp(effect, "Deny") != 0)) {
        fail(err, err_len, "policy of '%s': Statement %zu: Effect must be \"Allow\" or \"Deny\"",
             who, idx);
        return -1;
    }
    st->deny = strcmp(effect, "Deny") == 0;
    if (read_strings(json_object_get(js, "Action"), &st->actions, &st->nactions) != 0) {
        fail(err, err_len, "policy of '%s': Statement %zu: Action must be a string or an "
             "array of strings", who, idx);
        return -1;
    }
    if (read_strings(json_object_get(js, "Resource"), &st->resources, &st->nresources) != 0) {
        fail(err, err_len, "policy of '%s': Statement %zu: Resource must be a string or an "
             "array of strings", who, idx);
        return -1;
    }
    return 0;
}

static int read_document(const char *who, json_t *doc, principal_policy *pp, char *err,
                         size_t err_len) {
    if (!json_is_object(doc)) {
        fail(err, err_len, "policy of '%s' is not an object", who);
        return -1;
    }
    json_t *ver = json_object_get(doc, "Version");
    if (ver != NULL && (!json_is_string(ver) || (strcmp(json_string_value(ver), "2012-10-17") &&
                                                 strcmp(json_string_value(ver), "2008-10-17")))) {
        fail(err, err_len, "policy of '%s': Version must be \"2012-10-17\"", who);
        return -1;
    }
    json_t *sts = json_object_get(doc, "Statement");
    if (json_is_object(sts)) {
        json_t *one = json_array();
        json_array_append(one, sts);
        json_object_set_new(doc, "Statement", one);
        sts = one;
    }
    if (!json_is_array(sts)) {
        fail(err, err_len, "policy of '%s': Statement must be an array of statements", who);
        return -1;
    }
    pp->name = strdup(who);
    size_t n = json_array_size(sts);
    pp->st = calloc(n ? n : 1, sizeof *pp->st);
    if (pp->name == NULL || pp->st == NULL) {
        fail(err, err_len, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        /* Counted first, so that what a failed statement did read is freed with the set. */
        pp->nst++;
        if (read_statement(json_array_get(sts, i), &pp->st[i], who, i, err, err_len) != 0)
            return -1;
    }
    return 0;
}

tr_policy_set *tr_policy_parse(const char *text, size_t len, char *err, size_t err_len) {
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) return fail(err, err_len, "line %d: %s", je.line, je.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return fail(err, err_len, "expected an object of principal names to policies");
    }
    tr_policy_set *set = calloc(1, sizeof *set);
    size_t n = json_object_size(root);
    if (set == NULL || (set->p = calloc(n ? n : 1, sizeof *set->p)) == NULL) {
        free(set);
        json_decref(root);
        return fail(err, err_len, "out of memory");
    }
    const char *who;
    json_t *doc;
    json_object_foreach(root, who, doc) {
        int rc = read_document(who, doc, &set->p[set->n], err, err_len);
        set->n++;
        if (rc != 0) {
            tr_policy_free(set);
            json_decref(root);
            return NULL;
        }
    }
    json_decref(root);
    return set;
}

tr_policy_set *tr_policy_load(const char *path, char *err, size_t err_len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) return fail(err, err_len, "%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *g = realloc(buf, cap);
            if (g == NULL) break;
            buf = g;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    int bad = ferror(f) || buf == NULL;
    fclose(f);
    if (bad) {
        free(buf);
        return fail(err, err_len, "%s: read error", path);
    }
    char msg[512];
    tr_policy_set *set = tr_policy_parse(buf, len, msg, sizeof msg);
    free(buf);
    if (set == NULL) return fail(err, err_len, "%s: %s", path, msg);
    return set;
}

static int any_match(char **pats, size_t n, const char *text, int ignore_case) {
    for (size_t i = 0; i < n; i++)
        if (tr_policy_match(pats[i], text, ignore_case)) return 1;
    return 0;
}

tr_policy_decision tr_policy_evaluate(const tr_policy_set *set, const char *principal,
                                      const char *action, const char *resource) {
    if (set == NULL || principal == NULL) return TR_POLICY_IMPLICIT_DENY;
    tr_policy_decision d = TR_POLICY_IMPLICIT_DENY;
    for (size_t i = 0; i < set->n; i++) {
        const principal_policy *pp = &set->p[i];
        if (strcmp(pp->name, principal) != 0) continue;
        for (size_t j = 0; j < pp->nst; j++) {
            const statement *st = &pp->st[j];
            if (!any_match(st->actions, st->nactions, action, 1) ||
                !any_match(st->resources, st->nresources, resource, 0))
                continue;
            if (st->deny) return TR_POLICY_EXPLICIT_DENY;
            d = TR_POLICY_ALLOW;
        }
    }
    return d;
}
