/* Shared by the libFuzzer targets: a check that crashes (so that libFuzzer saves the input),
 * silenced logs, and a scratch directory per process for targets that need files. */
#ifndef TR_FUZZ_FUZZ_H
#define TR_FUZZ_FUZZ_H

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* An invariant of the code under test, not of the input: breaking it is a finding. */
#define FUZZ_CHECK(cond)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "fuzz check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

/* Corrupt input is expected to be logged at length; that output would drown the fuzzer's.
 * TR_FUZZ_LOG=1 keeps it, for reproducing a finding. */
static inline void fuzz_quiet_logs(void) {
    const char *keep = getenv("TR_FUZZ_LOG");
    if (!keep || !*keep || strcmp(keep, "0") == 0)
        tr_log_set_level((tr_log_level)(TR_LOG_ERROR + 1));
}

/* ---- a scratch directory for this process: $TR_FUZZ_TMPDIR, /dev/shm, $TMPDIR or /tmp ---- */

static char fuzz_scratch_[512];

static inline int fuzz_rm_(const char *p, const struct stat *sb, int f, struct FTW *w) {
    (void)sb, (void)f, (void)w;
    return remove(p);
}

static inline void fuzz_scratch_remove_(void) {
    if (fuzz_scratch_[0]) nftw(fuzz_scratch_, fuzz_rm_, 16, FTW_DEPTH | FTW_PHYS);
}

/* The directory, made on first use and removed at exit. */
static inline const char *fuzz_scratch(void) {
    if (fuzz_scratch_[0]) return fuzz_scratch_;
    const char *base = getenv("TR_FUZZ_TMPDIR");
    struct stat sb;
    if (!base || !*base) base = stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode) ? "/dev/shm" : NULL;
    if (!base) base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    snprintf(fuzz_scratch_, sizeof fuzz_scratch_, "%s/trfuzz.XXXXXX", base);
    if (!mkdtemp(fuzz_scratch_)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    atexit(fuzz_scratch_remove_);
    return fuzz_scratch_;
}

/* Empties dir (files only; it holds no subdirectories), keeping the directory itself. */
static inline void fuzz_empty_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
}

/* Writes a whole file; aborts on failure (the scratch space is ours). */
static inline void fuzz_write_file(const char *path, const uint8_t *data, size_t len) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FUZZ_CHECK(fd >= 0);
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        FUZZ_CHECK(n > 0);
        off += (size_t)n;
    }
    close(fd);
}

/* ---- seeds ----
 * Each target writes its own seed corpus, made with the code under test (a real segment, the
 * writer's requests), when started with TR_FUZZ_WRITE_SEEDS=<dir>: the seeds follow the
 * formats as they change, and nothing binary is kept in the repository. */

/* The directory to write seeds to, or NULL for a fuzzing run. */
static inline const char *fuzz_seed_dir(void) {
    const char *d = getenv("TR_FUZZ_WRITE_SEEDS");
    return d && *d ? d : NULL;
}

static inline void fuzz_seed(const char *dir, const uint8_t *data, size_t len) {
    static int n;
    char path[600];
    snprintf(path, sizeof path, "%s/seed-%03d", dir, n++);
    fuzz_write_file(path, data, len);
}

#endif
