/* Fault injection for the ENOSPC test, loaded with LD_PRELOAD: a full disk and failing
 * fsyncs, on demand, for files under one directory.
 *
 * It interposes the calls that write file data (write, pwrite, writev, pwritev and their
 * 64-bit names) and the syncs (fsync, fdatasync). The program under test turns faults on and
 * off through enospc_preload_set, which it finds with dlsym(RTLD_DEFAULT, ...) so that it
 * need not link against this library:
 *
 *   dir          faults apply only to descriptors whose path starts with dir (then stderr,
 *                pipes and other files are never touched); NULL turns every fault off
 *   write_budget bytes that may still be written; a write that crosses it is cut short and
 *                the next one fails with ENOSPC, as on a disk that fills up. < 0: no limit
 *   sync_errno   when not 0, fsync and fdatasync fail with this errno (EIO, ENOSPC)
 *
 * Writes that fail or are cut short by the budget never reach the file.
 *
 * A slow disk, for a whole program (a server) that cannot call enospc_preload_set: with
 * ENOSPC_PRELOAD_SYNC_DELAY_MS=N in the environment every fsync and fdatasync sleeps N ms
 * first (any file). */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

void enospc_preload_set(const char *dir, long long write_budget, int sync_errno);

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char fault_dir[PATH_MAX];
static size_t fault_dir_len; /* 0: no faults */
static long long budget = -1;
static int sync_err;
static long sync_delay_ms; /* ENOSPC_PRELOAD_SYNC_DELAY_MS */

void enospc_preload_set(const char *dir, long long write_budget, int sync_errno) {
    pthread_mutex_lock(&mu);
    fault_dir_len = 0;
    if (dir && strlen(dir) < sizeof fault_dir) {
        strcpy(fault_dir, dir);
        fault_dir_len = strlen(dir);
    }
    budget = write_budget;
    sync_err = sync_errno;
    pthread_mutex_unlock(&mu);
}

/* The definitions this library stands in front of: libc's, or a sanitizer's that then calls
 * libc's. Resolved once, when the library is loaded, before any thread can race for them. */
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static ssize_t (*real_pwritev64)(int, const struct iovec *, int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);

static void *next_fn(const char *name) {
    void *f = dlsym(RTLD_NEXT, name);
    if (!f) abort(); /* not even write is safe to call to say so */
    return f;
}

__attribute__((constructor)) static void resolve_real(void) {
    real_write = (ssize_t(*)(int, const void *, size_t))next_fn("write");
    real_pwrite = (ssize_t(*)(int, const void *, size_t, off_t))next_fn("pwrite");
    real_pwrite64 = (ssize_t(*)(int, const void *, size_t, off_t))next_fn("pwrite64");
    real_writev = (ssize_t(*)(int, const struct iovec *, int))next_fn("writev");
    real_pwritev = (ssize_t(*)(int, const struct iovec *, int, off_t))next_fn("pwritev");
    real_pwritev64 = (ssize_t(*)(int, const struct iovec *, int, off_t))next_fn("pwritev64");
    real_fsync = (int (*)(int))next_fn("fsync");
    real_fdatasync = (int (*)(int))next_fn("fdatasync");
    const char *d = getenv("ENOSPC_PRELOAD_SYNC_DELAY_MS");
    if (d != NULL) sync_delay_ms = atol(d);
}

/* Whether fd names a file under the fault directory. Called with mu held. */
static int fd_in_scope(int fd) {
    if (fault_dir_len == 0) return 0;
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n < 0) return 0;
    path[n] = '\0';
    return strncmp(path, fault_dir, fault_dir_len) == 0 &&
           (path[fault_dir_len] == '/' || path[fault_dir_len] == '\0');
}

/* How many of len bytes may be written to fd now: len when there is no fault, less at the
 * edge of the budget, -1 (errno ENOSPC) when the budget is spent. The bytes are taken from
 * the budget here; a write that then fails for another reason does not give them back. */
static ssize_t admit_write(int fd, size_t len) {
    pthread_mutex_lock(&mu);
    ssize_t allowed = len > SSIZE_MAX ? SSIZE_MAX : (ssize_t)len;
    if (budget >= 0 && len > 0 && fd_in_scope(fd)) {
        if (budget == 0) {
            allowed = -1;
        } else if ((long long)allowed > budget) {
            allowed = (ssize_t)budget;
        }
        if (allowed > 0) budget -= allowed;
    }
    pthread_mutex_unlock(&mu);
    if (allowed < 0) errno = ENOSPC;
    return allowed;
}

static int admit_sync(int fd) {
    if (sync_delay_ms > 0) {
        struct timespec ts = {sync_delay_ms / 1000, (sync_delay_ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
    }
    pthread_mutex_lock(&mu);
    int err = sync_err && fd_in_scope(fd) ? sync_err : 0;
    pthread_mutex_unlock(&mu);
    if (err) errno = err;
    return err ? -1 : 0;
}

/* Cuts an iovec array to at most max bytes; returns the new count (iov is a copy). */
static int clip_iov(struct iovec *iov, int cnt, size_t max) {
    size_t total = 0;
    for (int i = 0; i < cnt; i++) {
        if (total + iov[i].iov_len >= max) {
            iov[i].iov_len = max - total;
            return i + 1;
        }
        total += iov[i].iov_len;
    }
    return cnt;
}

static size_t iov_bytes(const struct iovec *iov, int cnt) {
    size_t total = 0;
    for (int i = 0; i < cnt; i++) total += iov[i].iov_len;
    return total;
}

#define WRAP_WRITE(name, real)                                                                \
    ssize_t name(int fd, const void *buf, size_t len, off_t off) {                            \
        ssize_t ok = admit_write(fd, len);                                                    \
        if (ok < 0) return -1;                                                                \
        return real(fd, buf, (size_t)ok, off);                                                \
    }

#define WRAP_WRITEV(name, real)                                                               \
    ssize_t name(int fd, const struct iovec *iov, int cnt, off_t off) {                       \
        if (cnt < 0 || cnt > IOV_MAX) return real(fd, iov, cnt, off);                         \
        size_t want = iov_bytes(iov, cnt);                                                    \
        ssize_t ok = admit_write(fd, want);                                                   \
        if (ok < 0) return -1;                                                                \
        if ((size_t)ok == want) return real(fd, iov, cnt, off);                               \
        struct iovec copy[IOV_MAX];                                                           \
        memcpy(copy, iov, (size_t)cnt * sizeof *iov);                                         \
        return real(fd, copy, clip_iov(copy, cnt, (size_t)ok), off);                          \
    }

WRAP_WRITE(pwrite, real_pwrite)
WRAP_WRITE(pwrite64, real_pwrite64)
WRAP_WRITEV(pwritev, real_pwritev)
WRAP_WRITEV(pwritev64, real_pwritev64)

ssize_t write(int fd, const void *buf, size_t len) {
    ssize_t ok = admit_write(fd, len);
    if (ok < 0) return -1;
    return real_write(fd, buf, (size_t)ok);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt) {
    if (cnt < 0 || cnt > IOV_MAX) return real_writev(fd, iov, cnt);
    size_t want = iov_bytes(iov, cnt);
    ssize_t ok = admit_write(fd, want);
    if (ok < 0) return -1;
    if ((size_t)ok == want) return real_writev(fd, iov, cnt);
    struct iovec copy[IOV_MAX];
    memcpy(copy, iov, (size_t)cnt * sizeof *iov);
    return real_writev(fd, copy, clip_iov(copy, cnt, (size_t)ok));
}

int fsync(int fd) {
    if (admit_sync(fd) != 0) return -1;
    return real_fsync(fd);
}

int fdatasync(int fd) {
    if (admit_sync(fd) != 0) return -1;
    return real_fdatasync(fd);
}
