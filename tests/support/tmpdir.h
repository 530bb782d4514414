/* Temporary directories for unit tests: made under $TMPDIR (or /tmp), removed with contents. */
#ifndef TR_TEST_TMPDIR_H
#define TR_TEST_TMPDIR_H


#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tmpdir_rm_(const char *p, const struct stat *sb, int f, struct FTW *w) {
    (void)sb, (void)f, (void)w;
    return remove(p);
}

/* Fills buf with a fresh directory path; returns buf or NULL. */
static inline char *tmpdir_make(char *buf, size_t len) {
    const char *base = getenv("TMPDIR");
    snprintf(buf, len, "%s/trtest.XXXXXX", base && *base ? base : "/tmp");
    return mkdtemp(buf);
}

static inline void tmpdir_remove(const char *dir) {
    nftw(dir, tmpdir_rm_, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
