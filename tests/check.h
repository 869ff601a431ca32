/* check.h: the one harness of the C tests (tests/test_*.c), header only: every test
 * program is one file, so the counters are file-local.
 *   CHECK(cond, fmt, ...)              counts a check; a failure prints FAIL, file:line,
 *                                      the message and the expression
 *   CHECK_CLOSE(a, b, n, tol, fmt, ...) max |a-b| <= tol * max(max|b|, 1e-3), NaN fails;
 *                                      a failure also prints the worst difference
 *   CHECK_SAME(a, b, n, fmt, ...)      the n floats are the same bits; a failure prints
 *                                      the first that differs
 *   SKIP(fmt, ...)                     a check that cannot run here, counted, with the reason
 *   check_finish()                     prints `N passed, M failed, K skipped` (the closing
 *                                      line tests/run.sh sums) and returns the exit status
 *   check_threads(n)                   OpenMP threads from now on (nothing without OpenMP),
 *                                      for the tests that compare 1 and 2 threads
 * It is not a framework: no fixtures, no registration, the tests call their own functions. */
#ifndef MTP_TESTS_CHECK_H
#define MTP_TESTS_CHECK_H

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#if MTP_HAVE_OMP
#include <omp.h>
#endif

static int check_passed, check_failed, check_skipped;

__attribute__((format(printf, 5, 0), unused)) static void check_vfail(const char *file, int line, const char *expr,
                                                                      const char *detail, const char *fmt,
                                                                      va_list ap) {
    printf("FAIL %s:%d: ", file, line);
    vprintf(fmt, ap);
    if (detail && *detail) printf(" (%s)", detail);
    if (expr) printf(" [%s]", expr);
    printf("\n");
    fflush(stdout);
}

/* Counts one check; returns ok, so a caller can add details after a failure. */
__attribute__((format(printf, 5, 6), unused)) static int check_at(int ok, const char *expr, const char *file,
                                                                  int line, const char *fmt, ...) {
    if (ok) {
        check_passed++;
        return 1;
    }
    check_failed++;
    va_list ap;
    va_start(ap, fmt);
    check_vfail(file, line, expr, NULL, fmt, ap);
    va_end(ap);
    return 0;
}
#define CHECK(cond, ...) check_at(!!(cond), #cond, __FILE__, __LINE__, __VA_ARGS__)

__attribute__((format(printf, 7, 8), unused)) static int check_close_at(const float *a, const float *b, size_t n,
                                                                        double tol, const char *file, int line,
                                                                        const char *fmt, ...) {
    double worst = 0, scale = 1e-3;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!isnan(worst) && !(d <= worst)) worst = d, at = i; /* a NaN is taken and stays */
        scale = fmax(scale, fabs(b[i]));
    }
    if (worst <= tol * scale) {
        check_passed++;
        return 1;
    }
    check_failed++;
    char detail[160];
    snprintf(detail, sizeof detail, "max abs diff %.3g at %zu: %.9g vs %.9g, allowed %.3g", worst, at,
             n ? a[at] : 0.0f, n ? b[at] : 0.0f, tol * scale);
    va_list ap;
    va_start(ap, fmt);
    check_vfail(file, line, NULL, detail, fmt, ap);
    va_end(ap);
    return 0;
}
#define CHECK_CLOSE(a, b, n, tol, ...) check_close_at((a), (b), (n), (tol), __FILE__, __LINE__, __VA_ARGS__)

__attribute__((format(printf, 6, 7), unused)) static int check_same_at(const float *a, const float *b, size_t n,
                                                                       const char *file, int line,
                                                                       const char *fmt, ...) {
    size_t i = 0;
    while (i < n && !memcmp(a + i, b + i, sizeof *a)) i++;
    if (i == n) {
        check_passed++;
        return 1;
    }
    check_failed++;
    char detail[120];
    snprintf(detail, sizeof detail, "first difference at %zu of %zu: %.9g vs %.9g", i, n, a[i], b[i]);
    va_list ap;
    va_start(ap, fmt);
    check_vfail(file, line, NULL, detail, fmt, ap);
    va_end(ap);
    return 0;
}
#define CHECK_SAME(a, b, n, ...) check_same_at((a), (b), (n), __FILE__, __LINE__, __VA_ARGS__)

__attribute__((format(printf, 3, 4), unused)) static void check_skip_at(const char *file, int line, const char *fmt,
                                                                        ...) {
    check_skipped++;
    printf("SKIP %s:%d: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}
#define SKIP(...) check_skip_at(__FILE__, __LINE__, __VA_ARGS__)

__attribute__((unused)) static void check_threads(int n) {
#if MTP_HAVE_OMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

__attribute__((unused)) static int check_finish(void) {
    printf("%d passed, %d failed, %d skipped\n", check_passed, check_failed, check_skipped);
    fflush(stdout);
    return check_failed ? 1 : 0;
}

#endif
