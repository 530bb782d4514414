/* The HTTP/1.1 request head parser of net/h1.h (RFC 9112 sections 2 to 5). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "net/h1.h"
#include "net/internal.h"

static int is_tchar(uint8_t c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
    case '.': case '^': case '_': case '`': case '|': case '~':
        return 1;
    default:
        return 0;
    }
}

/* A field value's characters: HTAB, SP, VCHAR and obs-text; no CR, LF, NUL or other controls. */
static int is_value_char(uint8_t c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

void tr_h1_head_free(tr_h1_head *h) {
    free(h->target);
    tr_kv_free_all(h->hdrs);
    memset(h, 0, sizeof *h);
}

const char *tr_h1_head_header(const tr_h1_head *h, const char *name) {
    for (const tr_kv *kv = h->hdrs; kv != NULL; kv = kv->next)
        if (strcasecmp(kv->name, name) == 0) return kv->value;
    return NULL;
}

/* Adds name: value (name lowercased), joining a repeated name's values with ", ". */
static int add_header(tr_h1_head *h, const uint8_t *name, size_t nlen, const uint8_t *value,
                      size_t vlen) {
    char *lname = strndup((const char *)name, nlen);
    if (lname == NULL) return -500;
    for (char *c = lname; *c; c++)
        if (*c >= 'A' && *c <= 'Z') *c = (char)(*c + 32);
    for (tr_kv *kv = h->hdrs; kv != NULL; kv = kv->next) {
        if (strcmp(kv->name, lname) != 0) continue;
        free(lname);
        size_t old = strlen(kv->value);
        char *v = realloc(kv->value, old + 2 + vlen + 1);
        if (v == NULL) return -500;
        memcpy(v + old, ", ", 2);
        memcpy(v + old + 2, value, vlen);
        v[old + 2 + vlen] = '\0';
        kv->value = v;
        return 0;
    }
    tr_kv *kv = calloc(1, sizeof *kv);
    char *v = strndup((const char *)value, vlen);
    if (kv == NULL || v == NULL) {
        free(kv);
        free(v);
        free(lname);
        return -500;
    }
    kv->name = lname;
    kv->value = v;
    kv->next = h->hdrs;
    h->hdrs = kv;
    return 0;
}

/* "HTTP/1.1" -> 1; another HTTP/x.y -> -505; anything else -> -400. */
static int parse_version(const uint8_t *v, size_t n) {
    if (n != 8 || memcmp(v, "HTTP/", 5) != 0 || v[6] != '.' || v[5] < '0' || v[5] > '9' ||
        v[7] < '0' || v[7] > '9')
        return -400;
    if (v[5] != '1' || v[7] > '1') return -505;
    return v[7] - '0';
}

/* The request target: origin form "/path?query", or absolute form "http://host/path?query"
 * (RFC 9112 3.2.2: a server accepts it), reduced to its origin form. */
static int parse_target(tr_h1_head *h, const uint8_t *t, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (t[i] <= 0x20 || t[i] >= 0x7f) return -400;
    if (n == 0) return -400;
    if (t[0] != '/') {
        size_t skip;
        if (n >= 7 && strncasecmp((const char *)t, "http://", 7) == 0) skip = 7;
        else if (n >= 8 && strncasecmp((const char *)t, "https://", 8) == 0) skip = 8;
        else return -400;
        const uint8_t *slash = memchr(t + skip, '/', n - skip);
        const uint8_t *qmark = memchr(t + skip, '?', n - skip);
        if (slash == NULL || (qmark != NULL && qmark < slash)) {
            /* "http://host" or "http://host?q": the path is "/" */
            size_t qlen = qmark ? (size_t)(t + n - qmark) : 0;
            h->target = malloc(qlen + 2);
            if (h->target == NULL) return -500;
            h->target[0] = '/';
            if (qlen > 0) memcpy(h->target + 1, qmark, qlen);
            h->target[qlen + 1] = '\0';
            return 0;
        }
        n -= (size_t)(slash - t);
        t = slash;
    }
    h->target = strndup((const char *)t, n);
    return h->target == NULL ? -500 : 0;
}

static int parse_request_line(tr_h1_head *h, const uint8_t *l, size_t n) {
    const uint8_t *sp1 = memchr(l, ' ', n);
    if (sp1 == NULL) return -400;
    size_t mlen = (size_t)(sp1 - l);
    if (mlen == 0 || mlen >= sizeof h->method) return -400;
    for (size_t i = 0; i < mlen; i++)
        if (!is_tchar(l[i])) return -400;
    memcpy(h->method, l, mlen);
    h->method[mlen] = '\0';
    const uint8_t *t = sp1 + 1, *e = l + n;
    const uint8_t *sp2 = memchr(t, ' ', (size_t)(e - t));
    if (sp2 == NULL) return -400;
    int minor = parse_version(sp2 + 1, (size_t)(e - sp2 - 1));
    if (minor < 0) return minor;
    h->minor = minor;
    return parse_target(h, t, (size_t)(sp2 - t));
}

static int parse_field_line(tr_h1_head *h, const uint8_t *l, size_t n) {
    if (l[0] == ' ' || l[0] == '\t') return -400; /* obs-fold: rejected (RFC 9112 5.2) */
    size_t i = 0;
    while (i < n && is_tchar(l[i])) i++;
    if (i == 0 || i == n || l[i] != ':') return -400; /* no space before the colon either */
    size_t nlen = i++;
    while (i < n && (l[i] == ' ' || l[i] == '\t')) i++;
    size_t vend = n;
    while (vend > i && (l[vend - 1] == ' ' || l[vend - 1] == '\t')) vend--;
    for (size_t j = i; j < vend; j++)
        if (!is_value_char(l[j])) return -400;
    if (++h->nhdrs > TR_H1_MAX_HEADERS) return -431;
    return add_header(h, l, nlen, l + i, vend - i);
}

/* Splits [p, end) into lines (LF, or CRLF: a CR elsewhere is malformed) and parses them. */
static int parse_lines(tr_h1_head *h, const uint8_t *buf, size_t p, size_t end) {
    int first = 1;
    while (p < end) {
        const uint8_t *nl = memchr(buf + p, '\n', end - p);
        size_t n = (size_t)(nl - (buf + p));
        if (n > 0 && buf[p + n - 1] == '\r') n--;
        if (n == 0) break; /* the blank line */
        if (memchr(buf + p, '\r', n) != NULL) return -400;
        int rc = first ? parse_request_line(h, buf + p, n) : parse_field_line(h, buf + p, n);
        if (rc != 0) return rc;
        first = 0;
        p = (size_t)(nl - buf) + 1;
    }
    const char *host = tr_h1_head_header(h, "host");
    /* RFC 9112 3.2: an HTTP/1.1 request has exactly one Host */
    if (h->minor == 1 && (host == NULL || strchr(host, ',') != NULL)) return -400;
    return 0;
}

int tr_h1_parse_head(const uint8_t *buf, size_t len, tr_h1_head *out) {
    memset(out, 0, sizeof *out);
    size_t lim = len < TR_H1_HEAD_MAX ? len : TR_H1_HEAD_MAX;
    size_t p = 0;
    for (;;) { /* empty lines before the request line */
        if (p < lim && buf[p] == '\n') p++;
        else if (p + 1 < lim && buf[p] == '\r' && buf[p + 1] == '\n') p += 2;
        else break;
    }
    /* The head ends at the first empty line after the request line. */
    size_t end = 0, line = p;
    for (size_t i = p; i < lim; i++) {
        if (buf[i] != '\n') continue;
        size_t n = i - line;
        if (line > p && (n == 0 || (n == 1 && buf[line] == '\r'))) {
            end = i + 1;
            break;
        }
        line = i + 1;
    }
    if (end == 0) return len >= TR_H1_HEAD_MAX ? -431 : 0;
    int rc = parse_lines(out, buf, p, end);
    if (rc != 0) {
        tr_h1_head_free(out);
        return rc;
    }
    return (int)end;
}
