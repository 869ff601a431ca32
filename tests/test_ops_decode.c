/* test_ops_decode.c: the decoding kernels (ops_decode.c, ops_bf16.c, attend_bf16.c) against
 * their plain references (ops_ref.h); the property speculative decoding rests on: a row's
 * result is the same bits whatever rows share the call and however many threads run it
 * (at sizes that do fork threads); and their AVX-512 and portable versions, which must give
 * the same bits. What this CPU or build cannot run (AMX, AVX-512, OpenMP) is counted as
 * skipped, with the reason. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "kernels/ops.h"
#include "kernels/q8.h"
#include "kernels/bf16.h"
#include "core/half.h"
#include "oracle/ops_ref.h"
#include "core/rng.h"
#include "core/util.h"
#include "kernels/vexp.h"

#if MTP_HAVE_OMP
#include <omp.h>
#endif

/* CHECK_CLOSE: max |a-b| <= TOL * max(max|b|, 1e-3) */
static const double TOL = 2e-5; /* float kernels vs double references: reordered sums */

static mtp_rng rng = {7};

static float *rnd(size_t n, float scale) {
    float *x = falloc(n);
    for (size_t i = 0; i < n; i++) x[i] = scale * (float)mtp_rng_normal(&rng);
    return x;
}

static int max_threads = 1;

/* Sizes around the kernels' blocks: 16 lanes, 4 weight rows, 4 input rows; and products
 * of at least 2^17 weights (the last two of each list), the size from which
 * mtp_matmul_rows forks threads, so that "1 and 2 threads" really runs 2. */
static void test_matmul_rows(void) {
    static const int CS[] = {1, 15, 16, 17, 64, 100, 600, 1031}, OCS[] = {1, 3, 4, 5, 67, 130, 221, 260};
    enum { N = sizeof CS / sizeof *CS };
    for (size_t ci = 0; ci < N; ci++)
        for (size_t oi = 0; oi < N; oi++) {
            int C = CS[ci], OC = OCS[oi], R = 11;
            if ((ci >= N - 2) != (oi >= N - 2)) continue; /* large with large only */
            float *x = rnd((size_t)R * C, 1), *w = rnd((size_t)OC * C, 1), *base = rnd((size_t)R * OC, 1);
            float *got = falloc((size_t)R * OC), *want = falloc((size_t)R * OC), *one = falloc(OC);
            for (int beta = 0; beta < 2; beta++) {
                memcpy(got, base, (size_t)R * OC * sizeof(float));
                memcpy(want, base, (size_t)R * OC * sizeof(float));
                mtp_matmul_rows(got, x, w, R, C, OC, (float)beta);
                mtp_matmul_fwd_ref(want, x, w, R, C, OC, (float)beta);
                CHECK_CLOSE(got, want, (size_t)R * OC, TOL, "matmul_rows C %d OC %d beta %d vs reference", C, OC, beta);
            }
            /* every row alone, and every prefix of rows, on 1 and 2 threads: same bits */
            mtp_matmul_rows(got, x, w, R, C, OC, 0);
            int same = 1;
            for (int threads = 1; threads <= 2; threads++) {
                check_threads(threads);
                for (int r = 0; r < R; r++) {
                    mtp_matmul_rows(one, x + (size_t)r * C, w, 1, C, OC, 0);
                    same &= !memcmp(one, got + (size_t)r * OC, OC * sizeof(float));
                }
                for (int n = 1; n < R; n++) {
                    mtp_matmul_rows(want, x, w, n, C, OC, 0);
                    same &= !memcmp(want, got, (size_t)n * OC * sizeof(float));
                }
            }
            check_threads(max_threads);
            CHECK(same, "matmul_rows C %d OC %d (%s): a row's bits do not depend on the others nor on 1 or 2 threads",
                  C, OC, (size_t)C * OC >= 1u << 17 ? "2 threads fork" : "one thread");
            free(x), free(w), free(base), free(got), free(want), free(one);
        }
}

static float bf16_float(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static float bf16r(float x) { return bf16_float(mtp_bf16_round(x)); }

static void test_bf16_round(void) {
    float one_and_half_ulp = 1.0f + 1.0f / 256, above = 1.0f + 1.0f / 256 + 1.0f / 65536;
    CHECK(mtp_bf16_round(1.0f) == 0x3F80 && mtp_bf16_round(-2.0f) == 0xC000, "bf16: exact values");
    CHECK(mtp_bf16_round(one_and_half_ulp) == 0x3F80 && mtp_bf16_round(above) == 0x3F81,
           "bf16: halfway rounds to even, above halfway up");
    CHECK(mtp_bf16_round(INFINITY) == 0x7F80 && isnan(bf16_float(mtp_bf16_round(NAN))), "bf16: inf and NaN kept");
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
    CHECK(ok, "bf16 (%s): rows rounded like mtp_bf16_round", path);
    mtp_bf16_free(&m);
    free(scratch);
}

/* mtp_matmul_rows_bf16_pair of m and a matrix b of another OC: each output the bits of its
 * matrix's own call (got: m's over R rows), on 1 and 2 threads, for 1 row and R. */
static void test_matmul_rows_bf16_pair(const char *path, const mtp_bf16_matrix *m, const float *x,
                                       const float *got, int R, uint16_t *scratch) {
    int C = m->C, OCB = m->OC % 3 == 0 ? 200 : 70; /* 200 + any OC: two threads' worth */
    float *wb = rnd((size_t)OCB * C, 2), *pa = falloc((size_t)R * m->OC);
    float *want_b = falloc((size_t)R * OCB), *pb = falloc((size_t)R * OCB);
    mtp_bf16_matrix b;
    mtp_bf16_pack(&b, wb, C, OCB);
    mtp_matmul_rows_bf16(want_b, x, &b, R, 0, scratch);
    int same = 1;
    for (int threads = 1; threads <= 2; threads++) {
        check_threads(threads);
        for (int n = 1; n <= R; n += R - 1) {
            mtp_matmul_rows_bf16_pair(pa, pb, x, m, &b, n, scratch);
            same &= !memcmp(pa, got, (size_t)n * m->OC * sizeof(float));
            same &= !memcmp(pb, want_b, (size_t)n * OCB * sizeof(float));
        }
    }
    check_threads(max_threads);
    CHECK(same, "matmul_rows_bf16_pair (%s) C %d OC %d and %d: the bits of each matrix's own call", path, C, m->OC, OCB);
    mtp_bf16_free(&b);
    free(wb), free(pa), free(want_b), free(pb);
}

/* The bf16 matmul on the active path (AMX where the CPU has it, portable otherwise)
 * against a double-precision sum of the same bf16-rounded products; rows' bits do not
 * depend on the other rows (every count from 1 to 17, and beyond, so each way of cutting
 * rows into blocks runs) or the thread count. */
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
            CHECK(packed, "bf16 pack C %d OC %d: every weight in place", C, OC);
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
                CHECK_CLOSE(got, want, (size_t)R * OC, TOL, "matmul_rows_bf16 (%s) C %d OC %d beta %d vs reference", path, C, OC, beta);
            }
            mtp_matmul_rows_bf16(got, x, &m, R, 0, scratch);
            int same = 1;
            for (int threads = 1; threads <= 2; threads++) {
                check_threads(threads);
                for (int r = 0; r < R; r += 7) {
                    mtp_matmul_rows_bf16(one, x + (size_t)r * C, &m, 1, 0, scratch);
                    same &= !memcmp(one, got + (size_t)r * OC, OC * sizeof(float));
                }
                for (int n = 1; n < R; n += n < 17 ? 1 : 6) { /* every count a tree pass takes */
                    mtp_matmul_rows_bf16(want, x, &m, n, 0, scratch);
                    same &= !memcmp(want, got, (size_t)n * OC * sizeof(float));
                }
            }
            check_threads(max_threads);
            CHECK(same, "matmul_rows_bf16 (%s) C %d OC %d: a row's bits do not depend on the others", path, C, OC);
            test_matmul_rows_bf16_pair(path, &m, x, got, R, scratch);
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
    CHECK_CLOSE(x, y, R * NH * HD, TOL, "rope_rows vs reference");
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
            CHECK_CLOSE(got, want, hd, TOL, "attend_row hd %d, %d keys vs reference", hd, n);
        }
    /* a peaked softmax: large scores, one dominant key */
    idx[0] = 3, idx[1] = 4, idx[2] = 5;
    mtp_attend_row(got, q, k, v, idx, 3, STRIDE, 64, 40.0f, s);
    mtp_attend_row_ref(want, q, k, v, idx, 3, STRIDE, 64, 40.0f);
    CHECK_CLOSE(got, want, 64, TOL, "attend_row with scores far apart (exp underflow)");
    free(k), free(v), free(q);
}

/* ---- AVX-512 and portable versions: the same bits ---------------------------------- */

static const char *no_avx512(void) {
#if defined(__AVX512F__)
    return "the CPU has no AVX-512";
#else
    return "this build does not target AVX-512 (no -march=native on an AVX-512 CPU)";
#endif
}

/* Values that stress the recipes: a wide range of magnitudes, exact zeros of both signs. */
static float *varied(size_t n, float scale) {
    float *x = rnd(n, scale);
    for (size_t i = 0; i < n; i += 7) x[i] *= i % 3 ? 1e-3f : 1e3f;
    for (size_t i = 5; i < n; i += 23) x[i] = i % 2 ? 0.0f : -0.0f;
    return x;
}

static void test_matmul_rows_versions(void) {
    static const int CS[] = {1, 2, 15, 16, 17, 31, 33, 64, 100, 1031}, OCS[] = {1, 2, 3, 4, 5, 9, 130};
    static const int RS[] = {1, 2, 3, 4, 5, 7, 11};
    if (!mtp_decode_avx512_available()) {
        SKIP("matmul_rows AVX-512 vs portable: %s", no_avx512());
        return;
    }
    for (size_t ci = 0; ci < sizeof CS / sizeof *CS; ci++)
        for (size_t oi = 0; oi < sizeof OCS / sizeof *OCS; oi++) {
            int C = CS[ci], OC = OCS[oi], same = 1;
            float *x = varied((size_t)11 * C, 1), *w = varied((size_t)OC * C, 1), *base = rnd((size_t)11 * OC, 1);
            float *a = falloc((size_t)11 * OC), *b = falloc((size_t)11 * OC);
            for (size_t ri = 0; ri < sizeof RS / sizeof *RS; ri++)
                for (int beta = 0; beta < 2; beta++) {
                    int R = RS[ri];
                    memcpy(a, base, (size_t)R * OC * sizeof(float));
                    memcpy(b, base, (size_t)R * OC * sizeof(float));
                    mtp_matmul_rows_avx512(a, x, w, R, C, OC, (float)beta);
                    mtp_matmul_rows_portable(b, x, w, R, C, OC, (float)beta);
                    same &= CHECK_SAME(a, b, (size_t)R * OC, "matmul_rows AVX-512 vs portable: R %d C %d OC %d beta %d",
                                       R, C, OC, beta);
                }
            (void)same;
            free(x), free(w), free(base), free(a), free(b);
        }
}

static void test_attend_row_versions(void) {
    static const int HDS[] = {1, 5, 8, 15, 16, 17, 24, 31, 32, 33, 48, 64, 80, 128, 144};
    static const int NS[] = {1, 2, 3, 4, 5, 15, 16, 17, 31, 32, 33, 100};
    static const float SCALES[] = {0.05f, 1, 40}; /* flat, typical, one dominant key (exp underflow) */
    enum { SLOTS = 120, STRIDE = 160 };
    if (!mtp_decode_avx512_available()) {
        SKIP("attend_row AVX-512 vs portable: %s", no_avx512());
        return;
    }
    float *k = varied((size_t)SLOTS * STRIDE, 1), *v = varied((size_t)SLOTS * STRIDE, 1), *q = rnd(STRIDE, 1);
    float a[STRIDE], b[STRIDE], sa[SLOTS], sb[SLOTS];
    int idx[SLOTS];
    for (size_t hi = 0; hi < sizeof HDS / sizeof *HDS; hi++)
        for (size_t ni = 0; ni < sizeof NS / sizeof *NS; ni++)
            for (size_t si = 0; si < sizeof SCALES / sizeof *SCALES; si++) {
                int hd = HDS[hi], n = NS[ni];
                for (int j = 0; j < n; j++) idx[j] = (int)mtp_rng_below(&rng, SLOTS); /* gathered, repeats */
                float scale = SCALES[si] / sqrtf((float)hd);
                mtp_attend_row_avx512(a, q, k, v, idx, n, STRIDE, hd, scale, sa);
                mtp_attend_row_portable(b, q, k, v, idx, n, STRIDE, hd, scale, sb);
                CHECK_SAME(a, b, hd, "attend_row AVX-512 vs portable: hd %d, %d keys, scale %g", hd, n, scale);
                CHECK_SAME(sa, sb, n, "attend_row AVX-512 vs portable: hd %d, %d keys, scale %g: softmax weights", hd,
                           n, scale);
            }
    free(k), free(v), free(q);
}

/* Several queries at once (mtp_attend_rows, and its AVX-512 version where it runs) give each
 * query the bits of mtp_attend_row(_bf16) alone: chains sharing a prefix of identity slots
 * (a pass's rows of one sequence), then each its own gathered slots; prefixes around the
 * 16-key blocks and the 4 partial sums, none shared, the same chain for all (query heads of
 * one kv head); fp32, bf16 and 8-bit caches (8-bit: heads of multiples of 32, the first kv
 * head or a later one), against mtp_attend_row on the caches widened to fp32; head sizes
 * of whole vectors and not. */
static void test_attend_rows(void) {
    static const int HDS[] = {8, 16, 32, 40, 64, 128};
    static const int COMMON[] = {0, 3, 15, 16, 17, 33, 64, 99};
    enum { SLOTS = 140, STRIDE = 128, MAXN = 130 };
    size_t nel = (size_t)SLOTS * STRIDE;
    float *kf = varied(nel, 1), *vf = varied(nel, 1);
    uint16_t *kb = xcalloc(nel, sizeof *kb), *vb = xcalloc(nel, sizeof *vb);
    mtp_bf16_round_row(kb, kf, nel);
    mtp_bf16_round_row(vb, vf, nel);
    int8_t *kq = xmalloc(nel), *vq = xmalloc(nel);
    uint16_t *ks = xmalloc(nel / 32 * sizeof *ks), *vs = xmalloc(nel / 32 * sizeof *vs);
    mtp_q8_quantize(kq, ks, kf, STRIDE, SLOTS);
    mtp_q8_quantize(vq, vs, vf, STRIDE, SLOTS);
    /* the caches widened to fp32, as the kernels widen them */
    float *wide[3][2] = {{kf, vf}, {falloc(nel), falloc(nel)}, {falloc(nel), falloc(nel)}};
    for (size_t i = 0; i < nel; i++) {
        wide[1][0][i] = mtp_bf16_value(kb[i]), wide[1][1][i] = mtp_bf16_value(vb[i]);
        wide[2][0][i] = kq[i] * mtp_f16_to_f32(ks[i / 32]), wide[2][1][i] = vq[i] * mtp_f16_to_f32(vs[i / 32]);
    }
    const mtp_kv_data data[3][2] = {{{kf, NULL}, {vf, NULL}}, {{kb, NULL}, {vb, NULL}}, {{kq, ks}, {vq, vs}}};
    static const char *const KIND[] = {"fp32", "bf16", "8-bit"};
    float *q = rnd((size_t)MTP_ATTEND_ROWS * STRIDE, 1);
    static float out[MTP_ATTEND_ROWS][STRIDE], want[STRIDE], sc[MTP_ATTEND_ROWS][MAXN], sw[MAXN];
    static int ch[MTP_ATTEND_ROWS][MAXN];
    int same = 1, same_avx = 1, cases = 0, q8_cases = 0;
    char where[160] = "";
    for (size_t hi = 0; hi < sizeof HDS / sizeof *HDS; hi++)
        for (size_t ci = 0; ci < sizeof COMMON / sizeof *COMMON; ci++)
            for (int nq = 1; nq <= MTP_ATTEND_ROWS; nq++)
                for (int kind = MTP_KV_F32; kind <= MTP_KV_Q8; kind++)
                    for (int same_chain = 0; same_chain < 2; same_chain++) {
                        int hd = HDS[hi], common = COMMON[ci], n[MTP_ATTEND_ROWS];
                        if (kind == MTP_KV_Q8 && hd % 32) continue;
                        /* 8-bit: a later kv head's vectors in half the cases (scales offset too) */
                        size_t head = kind == MTP_KV_Q8 && same_chain && hd < STRIDE ? STRIDE - hd : 0;
                        float *o[MTP_ATTEND_ROWS], *s[MTP_ATTEND_ROWS];
                        const float *qs[MTP_ATTEND_ROWS];
                        const int *idx[MTP_ATTEND_ROWS];
                        for (int i = 0; i < nq; i++) {
                            n[i] = same_chain ? common + 7 : common + (int)mtp_rng_below(&rng, 20) + (common == 0);
                            for (int j = 0; j < n[i]; j++)
                                ch[i][j] = j < common ? j : same_chain ? (j * 37) % SLOTS
                                                                         : (int)mtp_rng_below(&rng, SLOTS);
                            o[i] = out[i], s[i] = sc[i], qs[i] = q + (size_t)i * STRIDE, idx[i] = ch[i];
                        }
                        float scale = 1 / sqrtf((float)hd);
                        size_t es = kind == MTP_KV_F32 ? 4 : kind == MTP_KV_BF16 ? 2 : 1;
                        mtp_kv_data k = data[kind][0], v = data[kind][1];
                        k.x = (const char *)k.x + head * es, v.x = (const char *)v.x + head * es;
                        if (kind == MTP_KV_Q8) k.scale += head / 32, v.scale += head / 32;
                        for (int path = 0; path < 3; path++) { /* dispatched, AVX-512, portable */
                            if (path == 1 && !mtp_decode_avx512_available()) continue;
                            (path == 0 ? mtp_attend_rows : path == 1 ? mtp_attend_rows_avx512 : mtp_attend_rows_portable)(
                                o, qs, k, v, (mtp_kv_type)kind, idx, n, nq, STRIDE, hd, scale, s);
                            for (int i = 0; i < nq; i++) {
                                mtp_attend_row(want, qs[i], wide[kind][0] + head, wide[kind][1] + head, ch[i], n[i],
                                               STRIDE, hd, scale, sw);
                                int ok = !memcmp(want, o[i], hd * sizeof(float)) && !memcmp(sw, s[i], n[i] * sizeof(float));
                                if (!ok && !*where)
                                    snprintf(where, sizeof where, "%s, hd %d, %d shared keys, query %d of %d, %s, %s",
                                             path == 0 ? "dispatched" : path == 1 ? "AVX-512" : "portable", hd, common,
                                             i, nq, KIND[kind],
                                             same_chain ? "one chain" : "own chains");
                                (path == 1 ? &same_avx : &same)[0] &= ok;
                            }
                        }
                        cases++;
                        q8_cases += kind == MTP_KV_Q8;
                    }
    CHECK(same, "attend_rows (dispatched and portable): each of several queries gets attend_row's bits alone on "
                "the widened cache (%d cases, %d 8-bit) %s", cases, q8_cases, where);
    if (mtp_decode_avx512_available())
        CHECK(same_avx, "attend_rows AVX-512: each query gets attend_row's bits alone (%d cases) %s", cases, where);
    else
        SKIP("attend_rows AVX-512 vs attend_row: %s", no_avx512());
    for (int i = 1; i < 3; i++) free(wide[i][0]), free(wide[i][1]);
    free(kf), free(vf), free(kb), free(vb), free(kq), free(vq), free(ks), free(vs), free(q);
}

/* Rounding rows to bf16 (16 at a time, then the tail), and exp (vexp16 vs vexp1). */
static void test_bf16_exp_versions(void) {
    enum { N = 300 };
    float x[N];
    for (int i = 0; i < N; i++) { /* halfway cases, ties, inf, NaN, denormals, huge, +-0 */
        float base = (float)(1 + i / 4) * (i % 2 ? -1.0f : 1.0f);
        x[i] = base + base / 256 * (0.5f + (float)(i % 5 - 2) / 65536);
    }
    x[3] = INFINITY, x[4] = -INFINITY, x[5] = NAN, x[6] = -NAN, x[7] = 1e-40f, x[8] = -3e-39f, x[9] = 0.0f;
    x[10] = -0.0f, x[11] = 3.4e38f, x[12] = -3.4e38f, x[13] = 1.0f + 1.0f / 256, x[14] = 1.0f + 3.0f / 256;
    if (!mtp_decode_avx512_available()) {
        SKIP("bf16 row rounding AVX-512 vs portable: %s", no_avx512());
    } else {
        uint16_t a[N], b[N];
        int same = 1;
        for (int n = 0; n <= 40; n++) /* lengths: under, at and over one 16-float vector, and tails */
            for (int off = 0; off < N - n; off += 37) {
                mtp_bf16_round_row_avx512(a, x + off, (size_t)n);
                mtp_bf16_round_row_portable(b, x + off, (size_t)n);
                same &= !memcmp(a, b, (size_t)n * sizeof *a);
            }
        mtp_bf16_round_row_avx512(a, x, N);
        mtp_bf16_round_row_portable(b, x, N);
        same &= !memcmp(a, b, sizeof a);
        CHECK(same, "bf16 row rounding AVX-512 vs portable: lengths 0..40 at varied offsets, and %d", N);
    }
#if defined(__AVX512F__)
    float e1[N], e16[N], in[N];
    for (int i = 0; i < N; i++) in[i] = -110.0f + 200.0f * (float)i / N + (float)mtp_rng_normal(&rng) * 0.1f;
    in[0] = -INFINITY, in[1] = -104.0f, in[2] = 88.0f, in[3] = 0.0f, in[4] = -0.0f, in[5] = -87.5f, in[6] = 1e-30f;
    for (int i = 0; i < N; i++) e1[i] = vexp1(in[i]);
    for (int i = 0; i + 16 <= N; i += 16) _mm512_storeu_ps(e16 + i, vexp16(_mm512_loadu_ps(in + i)));
    CHECK_SAME(e16, e1, N / 16 * 16, "vexp16 vs vexp1 on [-110, 90] and edge values");
#else
    SKIP("vexp16 vs vexp1: this test is not built for AVX-512");
#endif
}

/* A slot read back from the tiles (mtp_kv_tiles_get, whose AVX-512 version reads the values
 * as mtp_attend_bf16 does) is its key and value rounded to bf16, whatever was put in the
 * slots beside it; putting that at another slot (a decoder moving a slot) writes there
 * what putting the original would. The values have every magnitude, zeros, inf and NaN. */
static void test_kv_tiles_get(void) {
    enum { CAP = 70 };
    for (int hd = 32; hd <= 96; hd += 32) {
        size_t n = mtp_kv_tiles_size(CAP, hd);
        uint16_t *kt = xcalloc(n, 2), *vt = xcalloc(n, 2), *kt2 = xcalloc(n, 2), *vt2 = xcalloc(n, 2);
        float *k = varied((size_t)CAP * hd, 1), *v = varied((size_t)CAP * hd, 1), kg[96], vg[96], kw[96], vw[96];
        k[3] = INFINITY, v[4] = -INFINITY, k[hd + 5] = NAN, v[2 * hd + 7] = NAN;
        for (int s = 0; s < CAP; s++) {
            int slot = (s * 37) % CAP; /* out of order: both halves of shared tile rows */
            mtp_kv_tiles_put(kt, vt, hd, slot, k + (size_t)slot * hd, v + (size_t)slot * hd);
        }
        int ok = 1, versions = 1, moved = 1;
        for (int slot = 0; slot < CAP; slot++) {
            const float *ks = k + (size_t)slot * hd, *vs = v + (size_t)slot * hd;
            for (int d = 0; d < hd; d++) kw[d] = bf16r(ks[d]), vw[d] = bf16r(vs[d]);
            mtp_kv_tiles_get_portable(kg, vg, kt, vt, hd, slot);
            ok &= !memcmp(kg, kw, hd * sizeof *kg) && !memcmp(vg, vw, hd * sizeof *vg);
            if (mtp_decode_avx512_available()) {
                mtp_kv_tiles_get_avx512(kg, vg, kt, vt, hd, slot);
                versions &= !memcmp(kg, kw, hd * sizeof *kg) && !memcmp(vg, vw, hd * sizeof *vg);
            }
            mtp_kv_tiles_get(kg, vg, kt, vt, hd, slot); /* moved to slot CAP - 1 - slot */
            memcpy(kt2, kt, n * 2), memcpy(vt2, vt, n * 2);
            mtp_kv_tiles_put(kt2, vt2, hd, CAP - 1 - slot, kg, vg);
            mtp_kv_tiles_put(kt, vt, hd, CAP - 1 - slot, ks, vs);
            moved &= !memcmp(kt, kt2, n * 2) && !memcmp(vt, vt2, n * 2);
            mtp_kv_tiles_put(kt, vt, hd, CAP - 1 - slot, k + (size_t)(CAP - 1 - slot) * hd,
                             v + (size_t)(CAP - 1 - slot) * hd);
        }
        CHECK(ok, "kv tiles get (portable) hd %d: every slot's key and value rounded to bf16", hd);
        if (mtp_decode_avx512_available())
            CHECK(versions, "kv tiles get (AVX-512) hd %d: every slot's key and value rounded to bf16", hd);
        else
            SKIP("kv tiles get (AVX-512) hd %d: %s", hd, no_avx512());
        CHECK(moved, "kv tiles hd %d: a slot read back and put elsewhere is the original put there", hd);
        free(kt), free(vt), free(kt2), free(vt2), free(k), free(v);
    }
}

/* Key and value tiles written by the AVX-512 and portable mtp_kv_tiles_put: the same bytes. */
static void test_kv_tiles_versions(void) {
    if (!mtp_decode_avx512_available()) {
        SKIP("kv tiles AVX-512 vs portable: %s", no_avx512());
        return;
    }
    enum { CAP = 70 };
    for (int hd = 32; hd <= 96; hd += 32) {
        size_t n = mtp_kv_tiles_size(CAP, hd);
        uint16_t *ka = xcalloc(n, 2), *va = xcalloc(n, 2), *kb = xcalloc(n, 2), *vb = xcalloc(n, 2);
        float *k = varied((size_t)CAP * hd, 1), *v = varied((size_t)CAP * hd, 1);
        for (int s = 0; s < CAP; s++) {
            int slot = (s * 37) % CAP; /* out of order: both halves of shared tile rows */
            mtp_kv_tiles_put_avx512(ka, va, hd, slot, k + (size_t)slot * hd, v + (size_t)slot * hd);
            mtp_kv_tiles_put_portable(kb, vb, hd, slot, k + (size_t)slot * hd, v + (size_t)slot * hd);
        }
        CHECK(!memcmp(ka, kb, n * 2) && !memcmp(va, vb, n * 2), "kv tiles AVX-512 vs portable: hd %d, %d slots", hd, CAP);
        free(ka), free(va), free(kb), free(vb), free(k), free(v);
    }
}

/* ---- bf16 attention ------------------------------------------------------------------
 * The reference rounds as ops.h and attend_bf16.c document: the scores from q and k
 * rounded to bf16 (summed here in double); the softmax numerators p = vexp1(scale s - max)
 * in fp32; v rounded to bf16 (the tiles are the kernel's only copy); over the whole
 * blocks of 32 positions p rounded to bf16 too, after the last whole block p in fp32; all
 * sums in double, then / sum p. round 0: no rounding at all (plain attention). drop >= 0:
 * leaves that position out (the self-test below).
 * slack[d]: where a numerator sits so near a bf16 rounding midpoint that the kernel's own
 * fp32 sums may round it the other way, the most that can move output d. */
enum { TIGHT_MIDPOINT = 256 }; /* fp32 ulps of p from a bf16 midpoint counted as ambiguous */
static const double TOL_ATT = 1e-4; /* bf16 attention vs its reference, relative to max |out|:
                                     * only the kernel's fp32 sums differ (about 1e-6) */

static void attend_bf16_ref(double *out, double *slack, const float *q, const float *k, const float *v,
                            const int *chain, int n, size_t ld, int hd, float scale, int round, int drop) {
    float *p = falloc(n);
    float top = -INFINITY;
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int d = 0; d < hd; d++) {
            float kd = k[chain[i] * ld + d];
            s += round ? (double)bf16r(q[d]) * bf16r(kd) : (double)q[d] * kd;
        }
        p[i] = (float)s * scale;
        top = p[i] > top ? p[i] : top;
    }
    double sum = 0;
    for (int i = 0; i < n; i++) {
        p[i] = vexp1(p[i] - top);
        if (i != drop) sum += p[i];
    }
    int full = round ? n / 32 * 32 : 0;
    for (int d = 0; d < hd; d++) out[d] = slack[d] = 0;
    for (int i = 0; i < n; i++) {
        if (i == drop) continue;
        const float *vi = v + chain[i] * ld;
        float pi = i < full ? bf16r(p[i]) : p[i];
        uint32_t u;
        memcpy(&u, &p[i], sizeof u);
        int ambiguous = i < full && p[i] > 0 && abs((int)(u & 0xFFFF) - 0x8000) < TIGHT_MIDPOINT;
        float ulp = ambiguous ? ldexpf(1.0f, ilogbf(p[i]) - 7) : 0; /* of a bf16 at p */
        for (int d = 0; d < hd; d++) {
            float vd = round ? bf16r(vi[d]) : vi[d];
            out[d] += (double)pi * vd;
            if (ambiguous) slack[d] += (double)ulp * fabsf(vd);
        }
    }
    for (int d = 0; d < hd; d++) out[d] /= sum, slack[d] /= sum;
    free(p);
}

/* |got - want| <= TOL_ATT * max(max |want|, 1e-3) + slack, element by element */
static int attend_close(const float *got, const double *want, const double *slack, int hd, double *worst) {
    double scale = 1e-3;
    for (int d = 0; d < hd; d++) scale = fmax(scale, fabs(want[d]));
    int ok = 1;
    *worst = 0;
    for (int d = 0; d < hd; d++) {
        double e = fabs(got[d] - want[d]);
        ok &= e <= TOL_ATT * scale + slack[d];
        *worst = fmax(*worst, e / scale);
    }
    return ok;
}

/* Positions 0..len-1 in slots 0..len-1, then a tree row's chain: its ancestors and itself,
 * drafts in the slots after the prefix (slot len + a for tree node a). */
static const int TREE_PARENT[] = {-1, 0, 0, 1, 2, 3, 4};
enum { TREE = sizeof TREE_PARENT / sizeof *TREE_PARENT };

static int tree_chain(int *ch, int len, int r) {
    int depth = 0;
    for (int a = r; TREE_PARENT[a] >= 0; a = TREE_PARENT[a]) depth++;
    for (int i = 0; i < len; i++) ch[i] = i;
    for (int a = r, at = len + depth; a >= 0; a = TREE_PARENT[a]) ch[at--] = len + a;
    return len + depth + 1;
}

static const int ATT_LENS[] = {1, 20, 28, 29, 31, 32, 33, 60, 64, 93};

/* Runs everywhere: the reference without rounding is plain attention (mtp_attend_row), and
 * the tolerance is tight enough to see one key left out: dropping any one key whose weight
 * is at least DROP_WEIGHT, in a whole block or after them, moves the reference beyond the
 * tolerance (so a kernel that dropped such a key would fail test_attend_bf16). Lighter
 * keys move the output by less than any tolerance that rounding leaves room for. */
static const float DROP_WEIGHT = 1e-3f; /* ten times TOL_ATT */
static void test_attend_bf16_reference(void) {
    enum { CAP = 100 };
    for (int hd = 32; hd <= 64; hd *= 2) {
        size_t ld = (size_t)2 * hd;
        float *k = rnd(CAP * ld, 1), *v = rnd(CAP * ld, 1), *q = rnd(hd, 2), got[64], s[CAP];
        double want[64], slack[64], other[64], oslack[64], worst;
        int plain_ok = 1, dropped_seen = 1, ch[CAP], ndrops = 0;
        float scale = 1.0f / sqrtf((float)hd);
        for (size_t li = 0; li < sizeof ATT_LENS / sizeof *ATT_LENS; li++)
            for (int r = 0; r < TREE; r++) {
                int n = tree_chain(ch, ATT_LENS[li], r);
                attend_bf16_ref(want, slack, q, k + hd, v + hd, ch, n, ld, hd, scale, 0, -1);
                mtp_attend_row_ref(got, q, k + hd, v + hd, ch, n, ld, hd, scale);
                for (int d = 0; d < hd; d++) plain_ok &= fabs(got[d] - want[d]) <= TOL * fmax(1e-3, fabs(want[d])) + 1e-6;
                attend_bf16_ref(want, slack, q, k + hd, v + hd, ch, n, ld, hd, scale, 1, -1);
                mtp_attend_row(got, q, k + hd, v + hd, ch, n, ld, hd, scale, s); /* only for its weights */
                for (int i = 0; i < n && n > 1; i++) {
                    if (s[i] < DROP_WEIGHT) continue;
                    attend_bf16_ref(other, oslack, q, k + hd, v + hd, ch, n, ld, hd, scale, 1, i);
                    float o[64];
                    for (int d = 0; d < hd; d++) o[d] = (float)other[d];
                    dropped_seen &= !attend_close(o, want, slack, hd, &worst);
                    ndrops++;
                }
            }
        CHECK(plain_ok, "bf16 attention reference hd %d: without rounding it is plain attention", hd);
        CHECK(dropped_seen && ndrops > 0,
              "bf16 attention reference hd %d: leaving out any of %d keys of weight >= %g exceeds the tolerance", hd,
              ndrops, DROP_WEIGHT);
        free(k), free(v), free(q);
    }
}

/* bf16 attention on its path now (AMX, AVX512-BF16) against that reference, and the
 * invariance a tree rests on: a tree's rows (drafts in slots after the prefix, among other
 * queries) give the same bits as each row alone with its chain moved into position order
 * (the later plain step). */
static void test_attend_bf16(void) {
    const char *path = mtp_attend_bf16_path();
    enum { CAP = 100, KVH = 2, QPER = 2 }; /* 2 query heads per kv head */
    for (int hd = 32; hd <= 64; hd *= 2) {
        size_t ld = (size_t)KVH * hd, tsize = mtp_kv_tiles_size(CAP, hd);
        float *k = rnd(CAP * ld, 1), *v = rnd(CAP * ld, 1), *q = rnd((size_t)TREE * QPER * hd, 2);
        float *k2 = falloc(CAP * ld), *v2 = falloc(CAP * ld), *scratch = falloc(mtp_attend_bf16_scratch(CAP, hd));
        uint16_t *kt = xcalloc(tsize, 2), *vt = xcalloc(tsize, 2), *kt2 = xcalloc(tsize, 2), *vt2 = xcalloc(tsize, 2);
        float scale = 1.0f / sqrtf((float)hd), got[TREE * QPER][64], alone[64];
        double want[64], slack[64], worst = 0, w;
        int ok_ref = 1, same = 1;
        for (size_t li = 0; li < sizeof ATT_LENS / sizeof *ATT_LENS; li++) {
            int len = ATT_LENS[li], chains[TREE][CAP], n[TREE * QPER];
            for (int s = 0; s < CAP; s++) /* kv head 1 of the cache: ld > hd */
                mtp_kv_tiles_put(kt, vt, hd, s, k + s * ld + hd, v + s * ld + hd);
            mtp_kv_bf16 kv = {.k = kt, .v = vt, .hd = hd};
            float *outs[TREE * QPER];
            const float *qs[TREE * QPER];
            const int *chs[TREE * QPER];
            for (int r = 0; r < TREE; r++) {
                int nr = tree_chain(chains[r], len, r);
                for (int h = 0; h < QPER; h++) {
                    int m = r * QPER + h;
                    outs[m] = got[m], qs[m] = q + m * hd, chs[m] = chains[r], n[m] = nr;
                }
            }
            mtp_attend_bf16(outs, qs, chs, n, TREE * QPER, &kv, CAP, scale, scratch);
            for (int m = 0; m < TREE * QPER; m++) {
                const int *ch = chs[m];
                attend_bf16_ref(want, slack, qs[m], k + hd, v + hd, ch, n[m], ld, hd, scale, 1, -1);
                ok_ref &= attend_close(got[m], want, slack, hd, &w);
                worst = fmax(worst, w);
                /* the row alone, its chain's keys and values moved to their positions */
                memcpy(k2, k, CAP * ld * sizeof(float));
                memcpy(v2, v, CAP * ld * sizeof(float));
                for (int i = len; i < n[m]; i++) {
                    memcpy(k2 + i * ld, k + ch[i] * ld, ld * sizeof(float));
                    memcpy(v2 + i * ld, v + ch[i] * ld, ld * sizeof(float));
                }
                for (int s = 0; s < CAP; s++) mtp_kv_tiles_put(kt2, vt2, hd, s, k2 + s * ld + hd, v2 + s * ld + hd);
                int identity[CAP];
                for (int i = 0; i < CAP; i++) identity[i] = i;
                mtp_kv_bf16 kv2 = {.k = kt2, .v = vt2, .hd = hd};
                float *o1[1] = {alone};
                const float *q1[1] = {qs[m]};
                const int *c1[1] = {identity};
                mtp_attend_bf16(o1, q1, c1, &n[m], 1, &kv2, CAP, scale, scratch);
                same &= !memcmp(alone, got[m], hd * sizeof(float));
            }
        }
        CHECK(ok_ref, "attend_bf16 (%s) hd %d: a tree's 14 queries vs the bf16 reference within %g relative (worst %.3g)",
              path, hd, TOL_ATT, worst);
        CHECK(same, "attend_bf16 (%s) hd %d: each tree row equals itself alone, in position order", path, hd);
        free(k), free(v), free(q), free(k2), free(v2), free(scratch), free(kt), free(vt), free(kt2), free(vt2);
    }
}

/* ---- attention over bf16 caches -------------------------------------------------------
 * mtp_attend_row_bf16 widens each key and value exactly and then runs mtp_attend_row's
 * recipe: its bits (output and softmax weights) are mtp_attend_row's on fp32 caches holding
 * the widened values, in each version; its two versions agree; it is close to the double
 * reference on the widened values, where they are well conditioned (normal keys and
 * values, the typical scale; varied()'s 1e3 elements make scores whose fp32 rounding alone
 * exceeds TOL). A slot holds KVH kv heads (stride KVH hd) and query head
 * h reads kv head h / (H / KVH), as grouped-query attention does; the chains are a tree's
 * (test_attend_bf16's) after prefixes of many lengths, and random gathers with repeats. */
/* outputs (hd) and softmax weights (n) of two attention calls: the same bits */
static int same_attention(const float *a, const float *b, int hd, const float *sa, const float *sb, int n) {
    return !memcmp(a, b, hd * sizeof *a) && !memcmp(sa, sb, n * sizeof *sa);
}

static void test_attend_row_bf16(void) {
    static const int HDS[] = {1, 5, 8, 16, 17, 32, 48, 64, 80, 128};
    static const int LENS[] = {0, 1, 2, 15, 16, 17, 31, 32, 33, 64, 93};
    static const float SCALES[] = {0.05f, 1, 40}; /* flat, typical, one dominant key */
    enum { CAP = 110, KVH = 2, H = 4, GROUP = H / KVH, MAXHD = 128 };
    int avx512 = mtp_decode_avx512_available();
    for (size_t hi = 0; hi < 2 * sizeof HDS / sizeof *HDS; hi++) {
        int hd = HDS[hi / 2], normal = hi % 2, ch[CAP], rounded = 1;
        size_t stride = (size_t)KVH * hd, total = CAP * stride;
        float *kf = normal ? rnd(total, 1) : varied(total, 1), *vf = normal ? rnd(total, 1) : varied(total, 1);
        float *q = rnd((size_t)H * hd, 1);
        float got[MAXHD], want[MAXHD], other[MAXHD], ref[MAXHD], sg[CAP], sw[CAP], so[CAP];
        uint16_t *kb = xcalloc(total, sizeof *kb), *vb = xcalloc(total, sizeof *vb);
        mtp_bf16_round_row(kb, kf, total);
        mtp_bf16_round_row(vb, vf, total);
        for (size_t i = 0; i < total; i++) {
            rounded &= kb[i] == mtp_bf16_round(kf[i]) && vb[i] == mtp_bf16_round(vf[i]);
            kf[i] = bf16_float(kb[i]), vf[i] = bf16_float(vb[i]); /* the widened caches */
        }
        const char *data = normal ? "normal" : "varied";
        CHECK(rounded, "bf16_round_row hd %d: the cache rows rounded like mtp_bf16_round (%s)", hd, data);
        int same = 1, same_portable = 1, same_versions = 1, close = 1;
        char where[120] = "";
        for (size_t li = 0; li <= sizeof LENS / sizeof *LENS; li++)
            for (int r = 0; r < TREE; r++)
                for (size_t si = 0; si < sizeof SCALES / sizeof *SCALES; si++) {
                    int n;
                    if (li < sizeof LENS / sizeof *LENS) {
                        n = tree_chain(ch, LENS[li], r);
                    } else { /* gathered out of order, repeats */
                        n = 1 + (int)mtp_rng_below(&rng, CAP);
                        for (int j = 0; j < n; j++) ch[j] = (int)mtp_rng_below(&rng, CAP);
                    }
                    float scale = SCALES[si] / sqrtf((float)hd);
                    for (int h = 0; h < H; h++) {
                        size_t g = (size_t)(h / GROUP) * hd;
                        const float *qh = q + (size_t)h * hd;
                        int a = 1, b = 1, c = 1, d = 1;
                        mtp_attend_row_bf16(got, qh, kb + g, vb + g, ch, n, stride, hd, scale, sg);
                        mtp_attend_row(want, qh, kf + g, vf + g, ch, n, stride, hd, scale, sw);
                        a = same_attention(got, want, hd, sg, sw, n);
                        mtp_attend_row_bf16_portable(got, qh, kb + g, vb + g, ch, n, stride, hd, scale, sg);
                        mtp_attend_row_portable(other, qh, kf + g, vf + g, ch, n, stride, hd, scale, so);
                        b = same_attention(got, other, hd, sg, so, n);
                        if (avx512) {
                            mtp_attend_row_bf16_avx512(other, qh, kb + g, vb + g, ch, n, stride, hd, scale, so);
                            c = same_attention(got, other, hd, sg, so, n);
                        }
                        if (normal && SCALES[si] == 1) {
                            mtp_attend_row_ref(ref, qh, kf + g, vf + g, ch, n, stride, hd, scale);
                            double worst = 0, top = 1e-3; /* relative to the values averaged: */
                            for (int j = 0; j < n; j++)     /* the average itself may cancel */
                                for (int e = 0; e < hd; e++) top = fmax(top, fabs(vf[(size_t)ch[j] * stride + g + e]));
                            for (int e = 0; e < hd; e++) worst = fmax(worst, fabs((double)want[e] - ref[e]));
                            d = worst <= TOL * top;
                        }
                        same &= a, same_portable &= b, same_versions &= c, close &= d;
                        if (!(a && b && c && d) && !*where)
                            snprintf(where, sizeof where, "first at %d keys, tree row %d, scale %g, query head %d", n,
                                     r, scale, h);
                    }
                }
        CHECK(same, "attend_row_bf16 hd %d, %s: the bits of attend_row on the widened caches, weights too (%s)", hd,
              data, where);
        CHECK(same_portable, "attend_row_bf16 portable hd %d, %s: the bits of attend_row portable on the widened "
              "caches (%s)", hd, data, where);
        if (avx512)
            CHECK(same_versions, "attend_row_bf16 AVX-512 vs portable hd %d, %s: the same bits (%s)", hd, data, where);
        else
            SKIP("attend_row_bf16 AVX-512 vs portable hd %d, %s: %s", hd, data, no_avx512());
        if (normal)
            CHECK(close, "attend_row_bf16 hd %d vs the reference on the widened caches within %g (%s)", hd, TOL, where);
        free(kf), free(vf), free(q), free(kb), free(vb);
    }
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* keep the lines if a sanitizer ends the run */
#if MTP_HAVE_OMP
    max_threads = omp_get_max_threads();
#endif
    printf("AVX-512 kernels: %s; AMX: %s\n", mtp_decode_avx512_available() ? "yes" : no_avx512(),
           mtp_amx_available() ? "yes" : "no (no AMX on this CPU, or MTP_NO_AMX set)");
#if !MTP_HAVE_OMP
    SKIP("1 vs 2 threads: built without OpenMP (every kernel runs on one thread)");
#endif
    test_matmul_rows();
    test_matmul_rows_versions();
    test_attend_row_versions();
    test_attend_rows();
    test_bf16_exp_versions();
    test_kv_tiles_versions();
    test_kv_tiles_get();
    test_bf16_round();
    test_attend_bf16_reference();
    if (mtp_amx_available()) {
        if (mtp_attend_bf16_available(32))
            test_attend_bf16();
        else
            SKIP("attend_bf16 on AMX tiles: AMX present but this build has no AMX attention (needs AVX-512)");
        test_matmul_rows_bf16("AMX");
        test_bf16_rows_rounding("AMX");
        mtp_amx_disable();
    } else {
        SKIP("attend_bf16 (AMX tiles) vs the bf16 reference, and tree rows == rows alone: no AMX");
        SKIP("matmul_rows_bf16 on AMX vs reference, and a row's bits alone/among others/1-2 threads: no AMX");
        SKIP("bf16 rows rounded on AMX like mtp_bf16_round: no AMX");
    }
    if (mtp_bf16_dp_available()) {
        if (mtp_attend_bf16_available(32))
            test_attend_bf16();
        else
            SKIP("attend_bf16 with AVX512-BF16: this build has no AVX-512 attention (needs -march with AVX-512)");
        test_matmul_rows_bf16("AVX512-BF16");
        test_bf16_rows_rounding("AVX512-BF16");
        mtp_bf16_dp_disable();
    } else {
        SKIP("matmul_rows_bf16 on AVX512-BF16 vs reference, and a row's bits alone/among others/1-2 "
             "threads: %s", mtp_amx_available() ? "AMX runs instead" : "no AVX512-BF16 on this CPU");
        SKIP("attend_bf16 with AVX512-BF16 vs the bf16 reference, and tree rows == rows alone: no AVX512-BF16");
    }
    test_matmul_rows_bf16("portable");
    test_bf16_rows_rounding("portable");
    test_rope_rows();
    test_attend_row();
    test_attend_row_bf16();
    return check_finish();
}
