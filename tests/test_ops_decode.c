/* test_ops_decode.c: the decoding kernels (ops_decode.c) against their plain references
 * (ops_ref.h), and the property speculative decoding rests on: a row's result is the
 * same bits whatever rows share the call and however many threads run it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "ops_ref.h"
#include "rng.h"
#include "util.h"

#if MTP_HAVE_OMP
#include <omp.h>
#endif

static const double TOL = 2e-5; /* float kernels vs double references: reordered sums */

static int passed, failed;
static mtp_rng rng = {7};

static float *rnd(size_t n, float scale) {
    float *x = falloc(n);
    for (size_t i = 0; i < n; i++) x[i] = scale * (float)mtp_rng_normal(&rng);
    return x;
}

static void expect(int ok, const char *what) {
    if (ok) {
        passed++;
        return;
    }
    failed++;
    printf("FAIL %s\n", what);
}

/* max |a-b| <= TOL * max(max|b|, 1e-3) */
static int close_to(const float *a, const float *b, size_t n) {
    double worst = 0, scale = 1e-3;
    for (size_t i = 0; i < n; i++) {
        worst = fmax(worst, fabs((double)a[i] - b[i]));
        scale = fmax(scale, fabs(b[i]));
    }
    return worst <= TOL * scale;
}

static int max_threads = 1;

static void set_threads(int n) {
#if MTP_HAVE_OMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

/* Sizes around the kernels' blocks: 16 lanes, 4 weight rows, 4 input rows. */
static void test_matmul_rows(void) {
    static const int CS[] = {1, 15, 16, 17, 64, 100}, OCS[] = {1, 3, 4, 5, 67, 130};
    for (size_t ci = 0; ci < sizeof CS / sizeof *CS; ci++)
        for (size_t oi = 0; oi < sizeof OCS / sizeof *OCS; oi++) {
            int C = CS[ci], OC = OCS[oi], R = 11;
            float *x = rnd((size_t)R * C, 1), *w = rnd((size_t)OC * C, 1), *base = rnd((size_t)R * OC, 1);
            float *got = falloc((size_t)R * OC), *want = falloc((size_t)R * OC), *one = falloc(OC);
            char what[120];
            for (int beta = 0; beta < 2; beta++) {
                memcpy(got, base, (size_t)R * OC * sizeof(float));
                memcpy(want, base, (size_t)R * OC * sizeof(float));
                mtp_matmul_rows(got, x, w, R, C, OC, (float)beta);
                mtp_matmul_fwd_ref(want, x, w, R, C, OC, (float)beta);
                snprintf(what, sizeof what, "matmul_rows C %d OC %d beta %d vs reference", C, OC, beta);
                expect(close_to(got, want, (size_t)R * OC), what);
            }
            /* every row alone, and every prefix of rows, on 1 and 2 threads: same bits */
            mtp_matmul_rows(got, x, w, R, C, OC, 0);
            int same = 1;
            for (int threads = 1; threads <= 2; threads++) {
                set_threads(threads);
                for (int r = 0; r < R; r++) {
                    mtp_matmul_rows(one, x + (size_t)r * C, w, 1, C, OC, 0);
                    same &= !memcmp(one, got + (size_t)r * OC, OC * sizeof(float));
                }
                for (int n = 1; n < R; n++) {
                    mtp_matmul_rows(want, x, w, n, C, OC, 0);
                    same &= !memcmp(want, got, (size_t)n * OC * sizeof(float));
                }
            }
            set_threads(max_threads);
            snprintf(what, sizeof what, "matmul_rows C %d OC %d: a row's bits do not depend on the others", C, OC);
            expect(same, what);
            free(x), free(w), free(base), free(got), free(want), free(one);
        }
}

static float bf16_float(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void test_bf16_round(void) {
    float one_and_half_ulp = 1.0f + 1.0f / 256, above = 1.0f + 1.0f / 256 + 1.0f / 65536;
    expect(mtp_bf16_round(1.0f) == 0x3F80 && mtp_bf16_round(-2.0f) == 0xC000, "bf16: exact values");
    expect(mtp_bf16_round(one_and_half_ulp) == 0x3F80 && mtp_bf16_round(above) == 0x3F81,
           "bf16: halfway rounds to even, above halfway up");
    expect(mtp_bf16_round(INFINITY) == 0x7F80 && isnan(bf16_float(mtp_bf16_round(NAN))), "bf16: inf and NaN kept");
}

/* Rows are rounded 16 at a time where the CPU allows: through an identity matrix the
 * products are the rounded inputs themselves, which must match mtp_bf16_round. */
static void test_bf16_rows_rounding(const char *path) {
    enum { C = 16 };
    float x[2 * C], w[C * C] = {0}, out[2 * C];
    for (int k = 0; k < C; k++) w[k * C + k] = 1;
    for (int i = 0; i < 2 * C; i++) { /* halfway and near-halfway cases, tiny, large (AMX flushes denormals) */
        float base = (float)(1 + i / 4) * (i % 2 ? -1.0f : 1.0f), step = base / 256;
        x[i] = i < 24 ? base + step * (0.5f + (float)(i % 3 - 1) / 4096) : i < 28 ? 1e-37f * (float)i : 3e38f / (float)i;
    }
    mtp_bf16_matrix m;
    mtp_bf16_pack(&m, w, C, C);
    uint16_t *scratch = xcalloc(mtp_bf16_scratch(2, C), sizeof(uint16_t));
    mtp_matmul_rows_bf16(out, x, &m, 2, 0, scratch);
    int ok = 1;
    for (int i = 0; i < 2 * C; i++) ok &= out[i] == bf16_float(mtp_bf16_round(x[i]));
    char what[80];
    snprintf(what, sizeof what, "bf16 (%s): rows rounded like mtp_bf16_round", path);
    expect(ok, what);
    mtp_bf16_free(&m);
    free(scratch);
}

/* The bf16 matmul on the active path (AMX where the CPU has it, portable otherwise)
 * against a double-precision sum of the same bf16-rounded products; rows' bits do not
 * depend on the other rows (up to and beyond one 16-row tile) or the thread count. */
static void test_matmul_rows_bf16(const char *path) {
    static const int CS[] = {1, 31, 32, 33, 100, 600}, OCS[] = {1, 15, 16, 17, 130, 260}; /* 600 x 260: two threads */
    enum { R = 40 };
    for (size_t ci = 0; ci < sizeof CS / sizeof *CS; ci++)
        for (size_t oi = 0; oi < sizeof OCS / sizeof *OCS; oi++) {
            int C = CS[ci], OC = OCS[oi];
            float *x = rnd((size_t)R * C, 1), *w = rnd((size_t)OC * C, 1), *base = rnd((size_t)R * OC, 1);
            float *got = falloc((size_t)R * OC), *want = falloc((size_t)R * OC), *one = falloc(OC);
            uint16_t *scratch = xcalloc(mtp_bf16_scratch(R, C), sizeof(uint16_t));
            mtp_bf16_matrix m;
            mtp_bf16_pack(&m, w, C, OC);
            int packed = 1;
            for (int o = 0; o < OC; o++)
                for (int k = 0; k < C; k++) packed &= mtp_bf16_weight(&m, o, k) == bf16_float(mtp_bf16_round(w[(size_t)o * C + k]));
            char what[140];
            snprintf(what, sizeof what, "bf16 pack C %d OC %d: every weight in place", C, OC);
            expect(packed, what);
            for (int beta = 0; beta < 2; beta++) {
                memcpy(got, base, (size_t)R * OC * sizeof(float));
                mtp_matmul_rows_bf16(got, x, &m, R, (float)beta, scratch);
                for (int r = 0; r < R; r++)
                    for (int o = 0; o < OC; o++) {
                        double s = beta ? base[(size_t)r * OC + o] : 0;
                        for (int k = 0; k < C; k++)
                            s += (double)bf16_float(mtp_bf16_round(x[(size_t)r * C + k])) * mtp_bf16_weight(&m, o, k);
                        want[(size_t)r * OC + o] = (float)s;
                    }
                snprintf(what, sizeof what, "matmul_rows_bf16 (%s) C %d OC %d beta %d vs reference", path, C, OC, beta);
                expect(close_to(got, want, (size_t)R * OC), what);
            }
            mtp_matmul_rows_bf16(got, x, &m, R, 0, scratch);
            int same = 1;
            for (int threads = 1; threads <= 2; threads++) {
                set_threads(threads);
                for (int r = 0; r < R; r += 7) {
                    mtp_matmul_rows_bf16(one, x + (size_t)r * C, &m, 1, 0, scratch);
                    same &= !memcmp(one, got + (size_t)r * OC, OC * sizeof(float));
                }
                for (int n = 1; n < R; n += 6) {
                    mtp_matmul_rows_bf16(want, x, &m, n, 0, scratch);
                    same &= !memcmp(want, got, (size_t)n * OC * sizeof(float));
                }
            }
            set_threads(max_threads);
            snprintf(what, sizeof what, "matmul_rows_bf16 (%s) C %d OC %d: a row's bits do not depend on the others",
                     path, C, OC);
            expect(same, what);
            mtp_bf16_free(&m);
            free(x), free(w), free(base), free(got), free(want), free(one), free(scratch);
        }
}

static void test_rope_rows(void) {
    enum { R = 9, T = 5, NH = 3, HD = 8 };
    mtp_rope rope;
    mtp_rope_init(&rope, T, HD, 10000.0f);
    float *x = rnd(R * NH * HD, 1), *y = falloc(R * NH * HD);
    memcpy(y, x, sizeof(float) * R * NH * HD);
    int pos[R];
    for (int r = 0; r < R; r++) pos[r] = r % T;
    mtp_rope_rows(x, &rope, pos, R, NH, HD);
    mtp_rope_fwd_ref(y, R, T, NH, HD, 10000.0f);
    expect(close_to(x, y, R * NH * HD), "rope_rows vs reference");
    mtp_rope_free(&rope);
    free(x), free(y);
}

/* Keys and values gathered out of order from a strided cache, as a tree's chain does. */
static void test_attend_row(void) {
    static const int HDS[] = {1, 8, 16, 24, 32, 64, 80}, NS[] = {1, 2, 15, 16, 17, 33, 100};
    enum { SLOTS = 120, STRIDE = 96 };
    float *k = rnd((size_t)SLOTS * STRIDE, 1), *v = rnd((size_t)SLOTS * STRIDE, 1);
    float *q = rnd(96, 2), got[96], want[96], s[SLOTS];
    int idx[SLOTS];
    for (size_t hi = 0; hi < sizeof HDS / sizeof *HDS; hi++)
        for (size_t ni = 0; ni < sizeof NS / sizeof *NS; ni++) {
            int hd = HDS[hi], n = NS[ni];
            for (int j = 0; j < n; j++) idx[j] = (int)mtp_rng_below(&rng, SLOTS);
            float scale = 1.0f / sqrtf((float)hd);
            mtp_attend_row(got, q, k, v, idx, n, STRIDE, hd, scale, s);
            mtp_attend_row_ref(want, q, k, v, idx, n, STRIDE, hd, scale);
            char what[80];
            snprintf(what, sizeof what, "attend_row hd %d, %d keys vs reference", hd, n);
            expect(close_to(got, want, hd), what);
        }
    /* a peaked softmax: large scores, one dominant key */
    idx[0] = 3, idx[1] = 4, idx[2] = 5;
    mtp_attend_row(got, q, k, v, idx, 3, STRIDE, 64, 40.0f, s);
    mtp_attend_row_ref(want, q, k, v, idx, 3, STRIDE, 64, 40.0f);
    expect(close_to(got, want, 64), "attend_row with scores far apart (exp underflow)");
    free(k), free(v), free(q);
}

int main(void) {
#if MTP_HAVE_OMP
    max_threads = omp_get_max_threads();
#endif
    test_matmul_rows();
    test_bf16_round();
    if (mtp_amx_available()) {
        test_matmul_rows_bf16("AMX");
        test_bf16_rows_rounding("AMX");
        mtp_amx_disable();
    } else {
        printf("no AMX on this CPU (or MTP_NO_AMX set): bf16 tests cover the portable path only\n");
    }
    test_matmul_rows_bf16("portable");
    test_bf16_rows_rounding("portable");
    test_rope_rows();
    test_attend_row();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
