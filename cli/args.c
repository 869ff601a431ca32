/* args.c: see args.h. */
#define _GNU_SOURCE
#include "args.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mtp.h"

int usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "mtp %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see 'mtp %s --help')\n", cmd);
    return EXIT_USAGE;
}

int arg_int(const char *cmd, const char *flag, const char *s, long lo, long hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        usage_error(cmd, "%s: expected an integer in %ld..%ld, got '%s'", flag, lo, hi, s);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int arg_dtype(const char *cmd, const char *s, mtp_wtype *t) {
    if (mtp_wtype_parse(s, t) == 0) return 0;
    usage_error(cmd, "--dtype: expected f32, bf16 or q8, got '%s'", s);
    return -1;
}

int arg_precision(const char *cmd, const char *s, mtp_precision *p) {
    if (!strcmp(s, "f32") || !strcmp(s, "bf16")) {
        *p = strcmp(s, "bf16") ? MTP_PRECISION_F32 : MTP_PRECISION_BF16;
        return 0;
    }
    usage_error(cmd, "--precision: expected f32 or bf16, got '%s'", s);
    return -1;
}

int arg_u64(const char *cmd, const char *flag, const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-') {
        usage_error(cmd, "%s: expected a non-negative integer, got '%s'", flag, s);
        return -1;
    }
    *out = v;
    return 0;
}

int arg_float(const char *cmd, const char *flag, const char *s, double lo, double hi, float *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
        usage_error(cmd, "%s: expected a number in [%g, %g], got '%s'", flag, lo, hi, s);
        return -1;
    }
    *out = (float)v;
    return 0;
}

int arg_floats(const char *cmd, const char *flag, const char *s, float *out, int max) {
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || !isfinite(v) || v < 0 || n == max || (*end && *end != ',')) {
            usage_error(cmd, "%s: expected up to %d comma-separated non-negative numbers, got '%s'",
                        flag, max, s);
            return -1;
        }
        out[n++] = (float)v;
        p = *end ? end + 1 : end;
    }
    return n;
}

int options_error(const char *cmd, int c, char **argv) {
    const char *arg = optind > 0 ? argv[optind - 1] : "?";
    if (c == ':') return usage_error(cmd, "option '%s' needs a value", arg);
    return usage_error(cmd, "unknown option '%s'", arg);
}

/* The rank mpirun or srun gave this process (0 when started alone), from the variables by
 * which src/train/dist.c knows a launcher started it: with many ranks only rank 0
 * announces the backend, as only it reports progress. */
static long launcher_rank(void) {
    static const char *VARS[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"};
    for (size_t i = 0; i < sizeof VARS / sizeof *VARS; i++)
        if (getenv(VARS[i])) return strtol(getenv(VARS[i]), NULL, 10);
    return 0;
}

void cli_setup_threads(int threads, int announce) {
    mtp_set_threads(threads);
    if (!announce || launcher_rank() != 0) return;
    fprintf(stderr, "mtp: %s\n", mtp_backend_describe());
    const char *note = mtp_backend_note();
    if (note) fprintf(stderr, "mtp: note: %s\n", note);
}

void *cli_realloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "mtp: out of memory (%zu bytes)\n", n);
        abort();
    }
    return q;
}
