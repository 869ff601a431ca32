/* test_q8.c: the 8-bit weight kernels (kernels/q8.h) against their references
 * (oracle/q8_ref.h): quantizing fp32 weights, the packed layout, the matmul against a
 * double-precision sum of the same definition and, loosely, against fp32 x @ W^T; its paths
 * (AVX512-VNNI, AVX2, portable) give the same bits; a row's bits do not depend on the other
 * rows nor on 1 or 2 threads (at sizes that fork). Paths this CPU lacks are skipped, with
 * the reason. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/half.h"
#include "core/rng.h"
#include "core/util.h"
#include "kernels/ops.h"
#include "kernels/q8.h"
#include "oracle/ops_ref.h"
#include "oracle/q8_ref.h"

#if MTP_HAVE_OMP
#include <omp.h>
#endif

/* CHECK_CLOSE: max |a-b| <= tol * max(max|b|, 1e-3) */
static const double TOL = 2e-5;      /* fp32 sums of per-block products vs double */
static const double TOL_QUANT = 1e-2; /* vs unquantized x: x's rounding to 8 bits, about
                                         1/254 of a block's amax per element, averaging out */

typedef void (*q8_fn)(float *, const float *, const mtp_q8_matrix *, int, float, void *);
static struct {
    const char *name;
    q8_fn fn;
    int ok;
} paths[] = {
    {"portable", mtp_matmul_rows_q8_portable, 1},
    {"AVX2", mtp_matmul_rows_q8_avx2, 0},
    {"AVX512-VNNI", mtp_matmul_rows_q8_vnni, 0},
};
enum { NPATHS = sizeof paths / sizeof *paths };

static mtp_rng rng = {11};
static int max_threads = 1;

/* Normal values, each row of w with its own scale (rows of 0, and of wide range). */
static float *rnd(size_t n, float scale) {
    float *x = falloc(n);
    for (size_t i = 0; i < n; i++) x[i] = scale * (float)mtp_rng_normal(&rng);
    return x;
}

static float *weights(int C, int OC) {
    float *w = rnd((size_t)OC * C, 1);
    for (int o = 0; o < OC; o++) {
        float s = o % 7 == 3 ? 0 : powf(2.0f, (float)(o % 5) * 3 - 6);
        for (int k = 0; k < C; k++) w[(size_t)o * C + k] *= s;
    }
    return w;
}

/* A matrix quantized in the file layout and packed. */
typedef struct {
    int C, OC, nb;
    float *w;
    int8_t *q;
    uint16_t *scale;
    mtp_q8_matrix m;
} q8_case;

static q8_case make_case(int C, int OC) {
    q8_case t = {.C = C, .OC = OC, .nb = (C + 31) / 32};
    t.w = weights(C, OC);
    t.q = xmalloc((size_t)OC * C);
    t.scale = xmalloc((size_t)OC * t.nb * sizeof(uint16_t));
    mtp_q8_quantize(t.q, t.scale, t.w, C, OC);
    mtp_q8_pack(&t.m, t.q, t.scale, C, OC);
    return t;
}

static void free_case(q8_case *t) {
    mtp_q8_free(&t->m);
    free(t->w), free(t->q), free(t->scale);
}

/* Scratch at an odd address: the kernels may assume no alignment. */
static void *scratch_for(int R, int C, void **base) {
    *base = xmalloc(mtp_q8_scratch(R, C) + 3);
    return (char *)*base + 3;
}

static void test_quantize(void) {
    static const int CS[] = {1, 31, 32, 33, 40, 100, 257};
    for (size_t ci = 0; ci < sizeof CS / sizeof *CS; ci++) {
        int C = CS[ci], OC = 9, nb = (C + 31) / 32;
        float *w = weights(C, OC);
        /* row 0: exact ties; the block's amax 127/64 makes the scale 1/64 exactly */
        for (int k = 0; k < C; k++) w[k] = k % 32 == 0 ? 127.0f / 64 : (float)((k % 9) - 4 + 0.5) / 64;
        int8_t *q = xmalloc((size_t)OC * C), *qr = xmalloc((size_t)OC * C);
        uint16_t *s = xmalloc((size_t)OC * nb * 2), *sr = xmalloc((size_t)OC * nb * 2);
        mtp_q8_quantize(q, s, w, C, OC);
        mtp_q8_quantize_ref(qr, sr, w, C, OC);
        CHECK(!memcmp(q, qr, (size_t)OC * C) && !memcmp(s, sr, (size_t)OC * nb * 2),
              "quantize C %d: q and scales equal the reference's", C);
        int bound = 1, ties = 1;
        for (int o = 0; o < OC; o++)
            for (int k = 0; k < C; k++) {
                float sc = mtp_f16_to_f32(s[(size_t)o * nb + k / 32]), amax = 0;
                for (int i = k / 32 * 32; i < C && i < k / 32 * 32 + 32; i++) amax = fmaxf(amax, fabsf(w[(size_t)o * C + i]));
                /* half a step, and the scale's own rounding (2^-11 relative) at the clamp */
                double err = fabs(w[(size_t)o * C + k] - (double)q[(size_t)o * C + k] * sc);
                bound &= err <= 0.5 * sc + amax * 0x1p-10 && (amax != 0 || (sc == 0 && q[(size_t)o * C + k] == 0));
                if (o == 0 && k % 32) ties &= q[k] == (int8_t)nearbyint((k % 9) - 4 + 0.5) && q[k] % 2 == 0;
            }
        CHECK(bound, "quantize C %d: |w - q * scale| <= scale / 2 + amax * 2^-10; zero blocks get 0", C);
        CHECK(ties, "quantize C %d: halfway values round to even", C);
        free(w), free(q), free(qr), free(s), free(sr);
    }
}

static void test_pack(void) {
    static const int SHAPES[][2] = {{33, 17}, {40, 16}, {100, 5}, {64, 33}};
    for (size_t i = 0; i < sizeof SHAPES / sizeof *SHAPES; i++) {
        q8_case t = make_case(SHAPES[i][0], SHAPES[i][1]);
        int same = 1;
        for (int o = 0; o < t.OC; o++)
            for (int k = 0; k < t.C; k++)
                same &= mtp_q8_weight(&t.m, o, k) ==
                        (float)t.q[(size_t)o * t.C + k] * mtp_f16_to_f32(t.scale[(size_t)o * t.nb + k / 32]);
        CHECK(same, "pack C %d OC %d: every weight as in the file layout", t.C, t.OC);
        size_t file = (size_t)t.OC * t.C + (size_t)t.OC * t.nb * 2, bytes = mtp_q8_bytes(&t.m);
        CHECK(bytes >= file && bytes <= (size_t)(t.OC + 15) * t.nb * (32 + 2),
              "pack C %d OC %d: %zu bytes read, the file's %zu plus padding", t.C, t.OC, bytes, file);
        free_case(&t);
    }
}

/* Every path against the references and against the portable path's bits, beta 0 and 1. */
static void test_matmul(void) {
    static const int CS[] = {1, 32, 33, 40, 100, 600}, OCS[] = {1, 15, 16, 17, 33, 130};
    enum { R = 17 };
    for (size_t ci = 0; ci < sizeof CS / sizeof *CS; ci++)
        for (size_t oi = 0; oi < sizeof OCS / sizeof *OCS; oi++) {
            int C = CS[ci], OC = OCS[oi];
            q8_case t = make_case(C, OC);
            float *x = rnd((size_t)R * C, 1), *base = rnd((size_t)R * OC, 1);
            float *want = falloc((size_t)R * OC), *got = falloc((size_t)R * OC), *port = falloc((size_t)R * OC);
            float *deq = falloc((size_t)OC * C);
            for (int o = 0; o < OC; o++)
                for (int k = 0; k < C; k++) deq[(size_t)o * C + k] = mtp_q8_weight(&t.m, o, k);
            void *mem, *scratch = scratch_for(R, C, &mem);
            for (int beta = 0; beta < 2; beta++) {
                memcpy(want, base, (size_t)R * OC * sizeof(float));
                mtp_matmul_q8_ref(want, x, t.q, t.scale, R, C, OC, (float)beta);
                memcpy(port, base, (size_t)R * OC * sizeof(float));
                mtp_matmul_rows_q8_portable(port, x, &t.m, R, (float)beta, scratch);
                for (int p = 0; p < NPATHS; p++) {
                    if (!paths[p].ok) continue;
                    memcpy(got, base, (size_t)R * OC * sizeof(float));
                    paths[p].fn(got, x, &t.m, R, (float)beta, scratch);
                    CHECK_CLOSE(got, want, (size_t)R * OC, TOL, "q8 %s C %d OC %d beta %d vs reference", paths[p].name, C, OC, beta);
                    if (p) CHECK_SAME(got, port, (size_t)R * OC, "q8 %s C %d OC %d beta %d: the portable path's bits", paths[p].name, C, OC, beta);
                }
                memcpy(got, base, (size_t)R * OC * sizeof(float));
                mtp_matmul_rows_q8(got, x, &t.m, R, (float)beta, scratch);
                CHECK_SAME(got, port, (size_t)R * OC, "q8 (%s) C %d OC %d beta %d: the portable path's bits", mtp_q8_path(), C, OC, beta);
                memcpy(want, base, (size_t)R * OC * sizeof(float));
                mtp_matmul_fwd_ref(want, x, deq, R, C, OC, (float)beta);
                CHECK_CLOSE(got, want, (size_t)R * OC, TOL_QUANT, "q8 C %d OC %d beta %d vs fp32 x @ dequantized W^T", C, OC, beta);
            }
            free_case(&t);
            free(x), free(base), free(want), free(got), free(port), free(deq), free(mem);
        }
}

/* A row's bits whatever rows share the call (alone, every prefix of 1..17 rows) and on 1 or
 * 2 threads; the larger shapes have enough groups x blocks (256) to fork. */
static void test_batch_invariance(void) {
    static const int SHAPES[][2] = {{100, 33}, {600, 260}, {1031, 130}};
    enum { R = 17 };
    for (size_t i = 0; i < sizeof SHAPES / sizeof *SHAPES; i++) {
        int C = SHAPES[i][0], OC = SHAPES[i][1];
        int forks = ((OC + 15) / 16) * ((C + 31) / 32) >= 256;
        q8_case t = make_case(C, OC);
        float *x = rnd((size_t)R * C, 1), *all = falloc((size_t)R * OC), *got = falloc((size_t)R * OC);
        void *mem, *scratch = scratch_for(R, C, &mem);
        for (int p = 0; p < NPATHS; p++) {
            if (!paths[p].ok) {
                SKIP("q8 %s batch invariance: %s", paths[p].name, "this CPU lacks the path (or it is turned off)");
                continue;
            }
            check_threads(max_threads);
            paths[p].fn(all, x, &t.m, R, 0, scratch);
            int same = 1;
            for (int threads = 1; threads <= 2; threads++) {
                check_threads(threads);
                for (int r = 0; r < R; r++) {
                    paths[p].fn(got, x + (size_t)r * C, &t.m, 1, 0, scratch);
                    same &= !memcmp(got, all + (size_t)r * OC, OC * sizeof(float));
                }
                for (int n = 1; n <= R; n++) {
                    paths[p].fn(got, x, &t.m, n, 0, scratch);
                    same &= !memcmp(got, all, (size_t)n * OC * sizeof(float));
                }
            }
            check_threads(max_threads);
            CHECK(same, "q8 %s C %d OC %d (%s): a row's bits alone, among 1..17 rows, on 1 and 2 threads", paths[p].name,
                  C, OC, forks ? "2 threads fork" : "one thread");
        }
        free_case(&t);
        free(x), free(all), free(got), free(mem);
    }
}

/* Blocks of x that are zero, tiny (127 / amax past FLT_MAX) or hold an inf or NaN: the same
 * bits on every path; zeros give 0, a NaN or inf reaches every output (no silent loss). */
static void test_special_rows(void) {
    enum { C = 96, OC = 20, R = 4 };
    q8_case t = make_case(C, OC);
    float *x = rnd((size_t)R * C, 1), *port = falloc((size_t)R * OC), *got = falloc((size_t)R * OC);
    for (int k = 0; k < C; k++) x[k] = 0;                                   /* row 0: zeros */
    for (int k = 0; k < C; k++) x[C + k] = k < 32 ? 1e-39f * (float)(k - 16) : 0; /* row 1: tiny */
    x[2 * C + 40] = NAN;                                                    /* row 2 */
    x[3 * C + 70] = INFINITY;                                               /* row 3 */
    void *mem, *scratch = scratch_for(R, C, &mem);
    mtp_matmul_rows_q8_portable(port, x, &t.m, R, 0, scratch);
    int zeros = 1, tiny = 1, nan = 1;
    for (int o = 0; o < OC; o++) {
        zeros &= port[o] == 0;
        tiny &= isfinite(port[OC + o]);
        nan &= !isfinite(port[2 * OC + o]) || mtp_q8_weight(&t.m, o, 40) == 0;
        nan &= !isfinite(port[3 * OC + o]) || mtp_q8_weight(&t.m, o, 70) == 0;
    }
    CHECK(zeros && tiny && nan, "q8 special rows: zeros give 0, tiny values stay finite, NaN and inf propagate");
    for (int p = 1; p < NPATHS; p++) {
        if (!paths[p].ok) {
            SKIP("q8 %s special rows vs portable: this CPU lacks the path (or it is turned off)", paths[p].name);
            continue;
        }
        paths[p].fn(got, x, &t.m, R, 0, scratch);
        int same = 1; /* a NaN's payload may differ (which operand it came from) */
        for (int i = 0; i < R * OC; i++) same &= isnan(got[i]) ? isnan(port[i]) : !memcmp(got + i, port + i, sizeof(float));
        CHECK(same, "q8 %s special rows: the portable path's bits (any NaN for a NaN)", paths[p].name);
    }
    free_case(&t);
    free(x), free(port), free(got), free(mem);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
#if MTP_HAVE_OMP
    max_threads = omp_get_max_threads();
#else
    SKIP("q8 1 vs 2 threads: built without OpenMP (every kernel runs on one thread)");
#endif
    paths[1].ok = mtp_q8_avx2_available();
    paths[2].ok = mtp_q8_vnni_available();
    printf("q8 path: %s\n", mtp_q8_path());
    for (int p = 1; p < NPATHS; p++)
        if (!paths[p].ok) SKIP("q8 %s vs reference and portable: this CPU lacks it (or it is turned off)", paths[p].name);
    test_quantize();
    test_pack();
    test_matmul();
    test_batch_invariance();
    test_special_rows();
    return check_finish();
}
