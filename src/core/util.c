/* util.c: see util.h. */
#define _GNU_SOURCE
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int mtp_fail(mtp_err *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static void oom(size_t n, const char *file, int line) {
    fprintf(stderr, "mtp: out of memory allocating %zu bytes at %s:%d\n", n, file, line);
    abort();
}

void *mtp_xmalloc_at(size_t n, const char *file, int line) {
    void *p = malloc(n ? n : 1);
    if (!p) oom(n, file, line);
    return p;
}

void *mtp_xcalloc_at(size_t n, size_t size, const char *file, int line) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom(n * size, file, line);
    return p;
}

void *mtp_xrealloc_at(void *p, size_t n, const char *file, int line) {
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n, file, line);
    return q;
}

char *mtp_xstrdup_at(const char *s, const char *file, int line) {
    size_t n = strlen(s) + 1;
    char *p = mtp_xmalloc_at(n, file, line);
    memcpy(p, s, n);
    return p;
}

float *mtp_falloc_at(size_t n, const char *file, int line) {
    size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) oom(bytes, file, line);
    return p;
}

_Thread_local int mtp_loops_on_caller;

void mtp_assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "mtp: assertion failed: %s at %s:%d\n", expr, file, line);
    abort();
}

int mtp_check_regular(const char *path, mtp_err *err) {
    struct stat sb;
    if (stat(path, &sb) != 0) return mtp_fail(err, "%s: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode)) return mtp_fail(err, "%s: not a regular file", path);
    return 0;
}

int mtp_map_file(const char *path, size_t min_bytes, const char *what, uint8_t **map, size_t *size,
                 mtp_err *err) {
    *map = NULL;
    *size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return mtp_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    int rc = 0;
    void *m = MAP_FAILED;
    if (fstat(fd, &sb) != 0) rc = mtp_fail(err, "%s: cannot stat: %s", path, strerror(errno));
    else if (!S_ISREG(sb.st_mode)) rc = mtp_fail(err, "%s: not a regular file", path);
    else if (sb.st_size == 0) rc = mtp_fail(err, "%s: empty file, too short for %s", path, what);
    else if ((uint64_t)sb.st_size < min_bytes)
        rc = mtp_fail(err, "%s: too short (%lld bytes) for %s", path, (long long)sb.st_size, what);
    else if ((m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0)) == MAP_FAILED)
        rc = mtp_fail(err, "%s: cannot map: %s", path, strerror(errno));
    close(fd); /* the mapping stays valid */
    if (rc == 0) {
        *map = m;
        *size = (size_t)sb.st_size;
    }
    return rc;
}

void mtp_release_pages(const void *p, size_t n) {
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), b = ((uintptr_t)p + page - 1) / page * page,
              e = ((uintptr_t)p + n) / page * page;
    if (e > b) madvise((void *)b, e - b, MADV_DONTNEED);
}

int mtp_check_fits(size_t bytes, const char *what, mtp_err *err) {
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    double have = pages > 0 && page > 0 ? (double)pages * page : 0;
    if (have > 0 && (double)bytes > have)
        return mtp_fail(err, "%s needs %.1f GiB, more than this machine's %.1f GiB of memory", what,
                        bytes / 1073741824.0, have / 1073741824.0);
    return 0;
}

int mtp_read_file(const char *path, char **data, size_t *len, mtp_err *err) {
    if (mtp_check_regular(path, err)) return -1;
    FILE *f = fopen(path, "rb");
    if (!f) return mtp_fail(err, "%s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (n + 1 >= cap) buf = xrealloc(buf, cap *= 2);
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return mtp_fail(err, "%s: read error", path);
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return 0;
}

int mtp_atomic_open(mtp_atomic_file *af, const char *path, mtp_err *err) {
    memset(af, 0, sizeof *af);
    af->path = xstrdup(path);
    size_t n = strlen(path) + 32;
    af->tmp = xmalloc(n);
    snprintf(af->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    af->f = fopen(af->tmp, "wb");
    if (!af->f) {
        int r = mtp_fail(err, "%s: cannot create: %s", af->tmp, strerror(errno));
        free(af->path);
        free(af->tmp);
        return r;
    }
    return 0;
}

int mtp_atomic_write(mtp_atomic_file *af, const void *data, size_t n) {
    if (af->failed) return -1;
    if (n && fwrite(data, 1, n, af->f) != n) af->failed = errno ? errno : EIO;
    return af->failed ? -1 : 0;
}

static void fsync_dir_of(const char *path) {
    char *copy = xstrdup(path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(copy);
}

/* Test hook, for tests/test_resume.sh only: with MTP_TEST_STOP_IN_COMMIT=N in the
 * environment, the process's N-th commit stops itself (SIGSTOP) with the temporary
 * file complete and not yet renamed, so the test can SIGKILL it inside a save. The
 * counter is the one piece of process state in the library, and only this uses it. */
static void test_stop_in_commit(void) {
    static int commits;
    const char *n = getenv("MTP_TEST_STOP_IN_COMMIT");
    if (n && atoi(n) == ++commits) raise(SIGSTOP);
}

int mtp_atomic_commit(mtp_atomic_file *af, mtp_err *err) {
    int rc = 0;
    if (fflush(af->f) != 0 && !af->failed) af->failed = errno;
    if (!af->failed && fsync(fileno(af->f)) != 0) af->failed = errno;
    if (fclose(af->f) != 0 && !af->failed) af->failed = errno;
    af->f = NULL;
    if (!af->failed) test_stop_in_commit();
    if (af->failed) {
        rc = mtp_fail(err, "%s: write failed: %s", af->path, strerror(af->failed));
        unlink(af->tmp);
    } else if (rename(af->tmp, af->path) != 0) {
        rc = mtp_fail(err, "%s: rename failed: %s", af->path, strerror(errno));
        unlink(af->tmp);
    } else {
        fsync_dir_of(af->path);
    }
    free(af->path);
    free(af->tmp);
    return rc;
}

void mtp_atomic_abort(mtp_atomic_file *af) {
    if (af->f) fclose(af->f);
    unlink(af->tmp);
    free(af->path);
    free(af->tmp);
}

double mtp_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

size_t mtp_peak_rss_bytes(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (size_t)ru.ru_maxrss * 1024;
}
