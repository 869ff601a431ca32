/* bench_rows.c: `mtp bench rows [--dtype q8|bf16] [--shape 7b|1b] [--repeat N]`: the cost of
 * one matrix product of R rows against one row, for each distinct matrix of a model shape
 * (the block's projections, the SwiGLU's up and down, the unembedding), at R = 1..16.
 * Speculative decoding verifies R drafted rows in one pass, so this ratio is what a pass
 * costs beyond a plain step in its products. Each matrix is packed in enough copies to pass
 * 1 GiB, and the copies are multiplied in turn, so every product reads its weights from
 * memory as decoding does; GB/s of weights read is printed beside the read bandwidth
 * measured in the same run. Not a model: random weights, no attention. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "bench_rows.h"
#include "bench_shape.h"
#include "core/rng.h"
#include "core/util.h"
#include "kernels/backend.h"
#include "kernels/wmat.h"

enum { MAX_R = 16, NR = 5 };
static const int RS[NR] = {1, 2, 4, 8, 16};

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Seconds one product of R rows takes, cycling through the n copies once. */
static double time_rows(const mtp_wmat *m, int n, int R, const float *x, float *out, void *scratch) {
    double t0 = mtp_now();
    for (int i = 0; i < n; i++) mtp_wmat_matmul(out, x, &m[i], R, 0, scratch);
    return (mtp_now() - t0) / n;
}

/* t[i]: the median over `repeat` rounds for R = RS[i]; each round times every R in turn,
 * so the machine's drift from minute to minute falls on all of them alike. */
static void time_all(double *t, const mtp_wmat *m, int n, int repeat, const float *x, float *out, void *scratch) {
    double *s = xmalloc((size_t)NR * repeat * sizeof *s);
    time_rows(m, n, 1, x, out, scratch); /* not counted: the pages fault in */
    for (int rep = 0; rep < repeat; rep++)
        for (int i = 0; i < NR; i++) s[(size_t)i * repeat + rep] = time_rows(m, n, RS[i], x, out, scratch);
    for (int i = 0; i < NR; i++) {
        qsort(s + (size_t)i * repeat, repeat, sizeof *s, cmp_double);
        t[i] = s[(size_t)i * repeat + repeat / 2];
    }
    free(s);
}

static void bench_matrix(const char *name, int C, int OC, mtp_wtype type, int repeat, double bw) {
    float *w = falloc((size_t)C * OC), *x = falloc((size_t)MAX_R * C), *out = falloc((size_t)MAX_R * OC);
    mtp_rng r = {(uint64_t)C * 31 + OC};
    for (size_t i = 0; i < (size_t)C * OC; i++) w[i] = mtp_rng_normal(&r) * 0.02f;
    for (size_t i = 0; i < (size_t)MAX_R * C; i++) x[i] = mtp_rng_normal(&r);
    mtp_wmat first;
    mtp_wmat_from_f32(&first, type, w, C, OC);
    size_t bytes = mtp_wmat_bytes(&first);
    int n = (int)(((size_t)1 << 30) / bytes) + 1;
    mtp_wmat *m = xmalloc((size_t)n * sizeof *m);
    m[0] = first;
    for (int i = 1; i < n; i++) mtp_wmat_from_f32(&m[i], type, w, C, OC);
    free(w);
    void *scratch = xmalloc(mtp_wmat_scratch(type, MAX_R, C));
    double t[NR];
    time_all(t, m, n, repeat, x, out, scratch);
    printf("%-8s %5d x %-5d %7.2f MB %7.2f ms %6.1f GB/s %4.0f%%", name, OC, C, bytes / 1e6, 1e3 * t[0],
           bytes / t[0] / 1e9, 100 * bytes / t[0] / 1e9 / bw);
    for (int i = 1; i < NR; i++) printf(" %6.2fx", t[i] / t[0]);
    printf("\n");
    fflush(stdout);
    for (int i = 0; i < n; i++) mtp_wmat_free(&m[i]);
    free(m);
    free(scratch);
    free(x);
    free(out);
}

int bench_rows(int argc, char **argv) {
    static const struct option LONG[] = {{"dtype", 1, 0, 'P'}, {"shape", 1, 0, 'S'}, {"repeat", 1, 0, 'r'},
                                         {"threads", 1, 0, 't'}, {0, 0, 0, 0}};
    const char *shape = "7b";
    mtp_wtype type = MTP_Q8;
    int repeat = 5, threads = 0, c, bad = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", LONG, NULL)) != -1 && !bad) {
        switch (c) {
        case 'P': bad = arg_dtype("bench", optarg, &type); break;
        case 'S': shape = optarg; break;
        case 'r': bad = arg_int("bench", "--repeat", optarg, 1, 99, &repeat); break;
        case 't': bad = arg_int("bench", "--threads", optarg, 1, 1024, &threads); break;
        default: return options_error("bench", c, argv);
        }
    }
    if (bad) return EXIT_USAGE;
    mtp_config cfg;
    if ((bad = bench_shape_config(&cfg, shape))) return bad;
    mtp_set_threads(threads);
    printf("%s\n", mtp_backend_describe());
    double bw = bench_read_bandwidth();
    printf("read bandwidth (1 GiB summed on %d threads, median of 5): %.1f GB/s\n", mtp_backend_threads(), bw);
    printf("%s shape, random %s weights on %s kernels; one product of R rows, median of %d rounds "
           "over copies passing 1 GiB; cost vs R = 1\n",
           shape, mtp_wtype_name(type), mtp_wtype_kernels(type), repeat);
    printf("%-8s %-13s %10s %10s %9s %5s", "matrix", "OC x C", "weights", "R = 1", "read", "of bw");
    for (int i = 1; i < NR; i++) printf(" %5s%2d", "R =", RS[i]);
    printf("\n");
    int d = cfg.dim, f = cfg.hidden_dim;
    bench_matrix("wq/wo", d, d, type, repeat, bw);
    bench_matrix("w1/w3", d, f, type, repeat, bw);
    bench_matrix("w2", f, d, type, repeat, bw);
    bench_matrix("out", d, cfg.vocab_size, type, repeat, bw);
    return 0;
}
