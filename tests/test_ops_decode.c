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
#include "ops.h"
#include "ops_ref.h"
#include "rng.h"
#include "util.h"
#include "vexp.h"

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

static void set_threads(int n) {
#if MTP_HAVE_OMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

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
            CHECK(same, "matmul_rows_bf16 (%s) C %d OC %d: a row's bits do not depend on the others", path, C, OC);
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

/* bf16 attention on AMX: a bf16-rounded reference, and the invariance a tree rests on:
 * a tree's rows (drafts in slots after the prefix, among other queries) give the same bits
 * as each row alone with its chain moved into position order (the later plain step). */
static void attend_bf16_ref(float *out, const float *q, const float *k, const float *v,
                            const int *chain, int n, size_t ld, int hd, float scale) {
    float qr[64], *kr = falloc((size_t)n * hd), *vr = falloc((size_t)n * hd);
    int *idx = xmalloc(n * sizeof(int));
    for (int d = 0; d < hd; d++) qr[d] = bf16_float(mtp_bf16_round(q[d]));
    for (int i = 0; i < n; i++) {
        idx[i] = i;
        for (int d = 0; d < hd; d++) {
            kr[i * hd + d] = bf16_float(mtp_bf16_round(k[chain[i] * ld + d]));
            vr[i * hd + d] = v[chain[i] * ld + d];
        }
    }
    mtp_attend_row_ref(out, qr, kr, vr, idx, n, hd, hd, scale);
    free(kr), free(vr), free(idx);
}

static void test_attend_bf16(void) {
    enum { CAP = 100, KVH = 2, TREE = 7, QPER = 2 }; /* 2 query heads per kv head */
    static const int PARENT[TREE] = {-1, 0, 0, 1, 2, 3, 4}, LENS[] = {1, 20, 28, 29, 31, 32, 33, 60, 64, 93};
    for (int hd = 32; hd <= 64; hd *= 2) {
        size_t ld = (size_t)KVH * hd, tsize = mtp_kv_tiles_size(CAP, hd);
        float *k = rnd(CAP * ld, 1), *v = rnd(CAP * ld, 1), *q = rnd((size_t)TREE * QPER * hd, 2);
        float *k2 = falloc(CAP * ld), *v2 = falloc(CAP * ld), *scratch = falloc(mtp_attend_bf16_scratch(CAP, hd));
        uint16_t *kt = xcalloc(tsize, 2), *vt = xcalloc(tsize, 2), *kt2 = xcalloc(tsize, 2), *vt2 = xcalloc(tsize, 2);
        float scale = 1.0f / sqrtf((float)hd), got[TREE * QPER][64], alone[64], want[64];
        int ok_ref = 1, same = 1;
        for (size_t li = 0; li < sizeof LENS / sizeof *LENS; li++) {
            int len = LENS[li], chains[TREE][CAP], n[TREE * QPER];
            for (int s = 0; s < CAP; s++) /* kv head 1 of the cache: ld > hd */
                mtp_kv_tiles_put(kt, vt, hd, s, k + s * ld + hd, v + s * ld + hd);
            mtp_kv_bf16 kv = {kt, vt, v + hd, ld, hd};
            float *outs[TREE * QPER];
            const float *qs[TREE * QPER];
            const int *chs[TREE * QPER];
            for (int r = 0; r < TREE; r++) {
                int depth = 0, *ch = chains[r];
                for (int a = r; PARENT[a] >= 0; a = PARENT[a]) depth++;
                for (int i = 0; i < len; i++) ch[i] = i;
                for (int a = r, at = len + depth; a >= 0; a = PARENT[a]) ch[at--] = len + a;
                for (int h = 0; h < QPER; h++) {
                    int m = r * QPER + h;
                    outs[m] = got[m], qs[m] = q + m * hd, chs[m] = ch, n[m] = len + depth + 1;
                }
            }
            mtp_attend_bf16(outs, qs, chs, n, TREE * QPER, &kv, CAP, scale, scratch);
            for (int m = 0; m < TREE * QPER; m++) {
                const int *ch = chs[m];
                attend_bf16_ref(want, qs[m], k + hd, v + hd, ch, n[m], ld, hd, scale);
                double worst = 0;
                for (int d = 0; d < hd; d++) worst = fmax(worst, fabs(got[m][d] - want[d]));
                ok_ref &= worst <= 2e-2;
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
                mtp_kv_bf16 kv2 = {kt2, vt2, v2 + hd, ld, hd};
                float *o1[1] = {alone};
                const float *q1[1] = {qs[m]};
                const int *c1[1] = {identity};
                mtp_attend_bf16(o1, q1, c1, &n[m], 1, &kv2, CAP, scale, scratch);
                same &= !memcmp(alone, got[m], hd * sizeof(float));
            }
        }
        CHECK(ok_ref, "attend_bf16 hd %d: a tree's 14 queries vs a bf16 reference", hd);
        CHECK(same, "attend_bf16 hd %d: each tree row equals itself alone, in position order", hd);
        free(k), free(v), free(q), free(k2), free(v2), free(scratch), free(kt), free(vt), free(kt2), free(vt2);
    }
}

int main(void) {
#if MTP_HAVE_OMP
    max_threads = omp_get_max_threads();
#endif
    test_matmul_rows();
    test_bf16_round();
    if (mtp_amx_available()) {
        if (mtp_attend_bf16_available(32)) test_attend_bf16();
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
    return check_finish();
}
