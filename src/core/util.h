/* util.h: allocation that aborts on exhaustion, always-on assertions, error messages
 * that travel up to the CLI, and small file helpers (atomic writes).
 * Library code never prints usage or exits on a user error: it fills an mtp_err and
 * returns -1. Running out of memory is not a user error: it aborts with size and place. */
#ifndef MTP_UTIL_H
#define MTP_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mtp.h" /* mtp_err, mtp_token */

/* Formats a message into err (if err is not NULL) and returns -1, so callers can write
 * `return mtp_fail(err, "%s: truncated", path);`. */
int mtp_fail(mtp_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void *mtp_xmalloc_at(size_t n, const char *file, int line);
void *mtp_xcalloc_at(size_t n, size_t size, const char *file, int line);
void *mtp_xrealloc_at(void *p, size_t n, const char *file, int line);
char *mtp_xstrdup_at(const char *s, const char *file, int line);
#define xmalloc(n) mtp_xmalloc_at((n), __FILE__, __LINE__)
#define xcalloc(n, s) mtp_xcalloc_at((n), (s), __FILE__, __LINE__)
#define xrealloc(p, n) mtp_xrealloc_at((p), (n), __FILE__, __LINE__)
#define xstrdup(s) mtp_xstrdup_at((s), __FILE__, __LINE__)

/* 64-byte aligned float buffer (for vector loads); free with free(). */
float *mtp_falloc_at(size_t n, const char *file, int line);
#define falloc(n) mtp_falloc_at((n), __FILE__, __LINE__)

void mtp_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));
/* Stays on in release builds: a broken invariant is a bug, never silently ignored. */
#define MTP_ASSERT(e) ((e) ? (void)0 : mtp_assert_fail(#e, __FILE__, __LINE__))

/* Nonzero while this thread runs a decoding pass (decode.c): MTP_FOR_THREADS loops then stay
 * on it, so that decoding's threads are the team's (kernels/team.h) alone. OpenMP's idle
 * workers spin for milliseconds after a region, and two pools spinning on 2 cores starve
 * each other. Decoding's element-wise loops are a few rows: on one thread they cost well
 * under 1% of a pass even in a long prompt's prefill. */
extern _Thread_local int mtp_loops_on_caller;

/* The for loop given, split statically over the threads when `parallel` (and not
 * mtp_loops_on_caller), else run as it is. Not `omp parallel for if (parallel)`: a region
 * whose if() is false still builds a team of one in libgomp, about 1.5 us a call, and a
 * small model's step makes ~100 such calls in a few hundred microseconds. */
#define MTP_FOR_THREADS(parallel, ...)                                  \
    do {                                                                \
        if ((parallel) && !mtp_loops_on_caller) {                       \
            _Pragma("omp parallel for schedule(static)") __VA_ARGS__    \
        } else {                                                        \
            __VA_ARGS__                                                 \
        }                                                               \
    } while (0)

/* Refuses anything but a regular file (a FIFO or device would block or never end). */
int mtp_check_regular(const char *path, mtp_err *err);
/* Maps a regular file read-only (opened without blocking, so a FIFO is refused, not waited
 * on): *map, *size. An empty file, or one shorter than min_bytes, is refused as not being
 * `what` ("a token shard", ..). Unmap with munmap(*map, *size). */
int mtp_map_file(const char *path, size_t min_bytes, const char *what, uint8_t **map, size_t *size,
                 mtp_err *err);
/* Lets go of the whole pages inside [p, p + n) of a file mapping: they leave the process's
 * resident memory and read back from the file if touched again. */
void mtp_release_pages(const void *p, size_t n);
/* Refuses an allocation of `bytes` for `what` that this machine's memory cannot hold,
 * with a message saying what to lower. */
int mtp_check_fits(size_t bytes, const char *what, mtp_err *err);

/* Atomic replacement of `path`: write to path.tmp.PID, fsync, rename, fsync the dir.
 * A kill at any moment leaves either the old file or the new one, never a mix.
 * (MTP_TEST_STOP_IN_COMMIT=N stops the process inside its N-th commit, for tests.) */
typedef struct {
    FILE *f;
    char *path, *tmp;
    int failed; /* a write failed (disk full): commit refuses */
} mtp_atomic_file;
int mtp_atomic_open(mtp_atomic_file *af, const char *path, mtp_err *err);
int mtp_atomic_write(mtp_atomic_file *af, const void *data, size_t n);
int mtp_atomic_commit(mtp_atomic_file *af, mtp_err *err);
void mtp_atomic_abort(mtp_atomic_file *af);

double mtp_now(void); /* monotonic seconds */
size_t mtp_peak_rss_bytes(void);

#endif
