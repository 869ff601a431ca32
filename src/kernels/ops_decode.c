/* ops_decode.c: the decoding kernels (ops.h). Each has one arithmetic recipe, written
 * twice: AVX-512 intrinsics, and portable C that performs the same float operations in
 * the same order (fused multiply-adds, the same summation trees). So a result depends
 * only on its own inputs, not on the rows beside it or the thread count; and, with a
 * compiler that does not contract or reorder float expressions (gcc's ISO C mode), not
 * on whether the machine has AVX-512. Both versions are functions of their own
 * (mtp_*_portable, always built; mtp_*_avx512, built when the compiler targets AVX-512) so
 * that tests/test_ops_decode.c compares them bit for bit; the public kernels run the
 * AVX-512 one where it is built and the CPU has it. */
#include "kernels/ops.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "core/half.h"
#include "core/util.h"
#include "kernels/backend.h"
#include "kernels/bf16.h"
#include "kernels/team.h"
#include "kernels/vexp.h"

enum { L = 16 }; /* lanes: element i of a dot product is summed in lane i % 16 */

/* The sum of 16 lanes, always by the same tree: (l, l+8), then (l, l+4), (l, l+2),
 * (l, l+1); the order _mm512_reduce_add_ps uses. */
static inline float lane_sum(const float a[L]) {
    float s1[8], s2[4], s3[2];
    for (int l = 0; l < 8; l++) s1[l] = a[l] + a[l + 8];
    for (int l = 0; l < 4; l++) s2[l] = s1[l] + s1[l + 4];
    for (int l = 0; l < 2; l++) s3[l] = s2[l] + s2[l + 2];
    return s3[0] + s3[1];
}

/* ---- the softmax ----------------------------------------------------------------------
 * exp(x[j] - mx) by vexp1, summed in 16 lanes (element j in lane j % 16) and lane_sum. Every
 * softmax of mtp uses this recipe: training attention and the loss (ops.c), sampling, and
 * decoding attention (mtp_attend_row). Written twice, portable and AVX-512, with the same
 * bits (tests/test_ops_decode.c compares the two mtp_attend_row versions, which call
 * them). The bf16 attention's numerators are rounded before they are summed, so differ. */
static float sum_exp_portable(float *out, const float *x, int n, float mx) {
    float sum[L] = {0};
    for (int j = 0; j < n; j++) {
        float e = vexp1(x[j] - mx);
        if (out) out[j] = e;
        sum[j % L] += e;
    }
    return lane_sum(sum);
}

static float softmax_portable(float *x, int n, float mx) {
    float total = sum_exp_portable(x, x, n, mx), inv = 1.0f / total;
    for (int j = 0; j < n; j++) x[j] *= inv;
    return total;
}

#if defined(__AVX512F__)
static inline __mmask16 first(int n) { return (__mmask16)(n >= L ? 0xFFFF : (1u << n) - 1); }

/* The same sums 16 at a time: lane l adds elements l, l+16, ... in order, and
 * _mm512_reduce_add_ps is lane_sum's tree. */
static float sum_exp_avx512(float *out, const float *x, int n, float mx) {
    __m512 top = _mm512_set1_ps(mx), sum = _mm512_setzero_ps();
    for (int j0 = 0; j0 < n; j0 += L) {
        __mmask16 f = first(n - j0);
        __m512 e = vexp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(f, x + j0), top));
        if (out) _mm512_mask_storeu_ps(out + j0, f, e);
        sum = _mm512_mask_add_ps(sum, f, sum, e);
    }
    return _mm512_reduce_add_ps(sum);
}

static float softmax_avx512(float *x, int n, float mx) {
    float total = sum_exp_avx512(x, x, n, mx);
    __m512 inv = _mm512_set1_ps(1.0f / total);
    for (int j0 = 0; j0 < n; j0 += L) {
        __mmask16 f = first(n - j0);
        _mm512_mask_storeu_ps(x + j0, f, _mm512_mul_ps(_mm512_maskz_loadu_ps(f, x + j0), inv));
    }
    return total;
}
#endif

float mtp_sum_exp(const float *x, int n, float mx) {
#if defined(__AVX512F__)
    if (mtp_decode_avx512_available()) return sum_exp_avx512(NULL, x, n, mx);
#endif
    return sum_exp_portable(NULL, x, n, mx);
}

float mtp_exp_sum(float *out, const float *x, int n, float mx) {
#if defined(__AVX512F__)
    if (mtp_decode_avx512_available()) return sum_exp_avx512(out, x, n, mx);
#endif
    return sum_exp_portable(out, x, n, mx);
}

float mtp_softmax(float *x, int n, float mx) {
#if defined(__AVX512F__)
    if (mtp_decode_avx512_available()) return softmax_avx512(x, n, mx);
#endif
    return softmax_portable(x, n, mx);
}

enum { RB = 4, OB = 4, PREFETCH_BLOCKS = 2 }; /* matmul: rows x outputs per register block */

#if defined(__AVX512F__)
/* a[j] (16 vectors of lane partials) -> lane j holds a[j]'s lane_sum: pairs of vectors
 * are folded together level by level, with exactly lane_sum's pairing. */
static inline __m512 sum16(const __m512 a[16]) {
    __m512 u[8], w[4], y[2];
    for (int i = 0; i < 8; i++) /* (l, l+8): vectors 2i, 2i+1 in the two 256-bit halves */
        u[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x44),
                             _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xEE));
    for (int i = 0; i < 4; i++) /* (l, l+4): vectors 4i..4i+3 in the four 128-bit lanes */
        w[i] = _mm512_add_ps(_mm512_shuffle_f32x4(u[2 * i], u[2 * i + 1], 0x88),
                             _mm512_shuffle_f32x4(u[2 * i], u[2 * i + 1], 0xDD));
    for (int i = 0; i < 2; i++) /* (l, l+2) */
        y[i] = _mm512_add_ps(_mm512_shuffle_ps(w[2 * i], w[2 * i + 1], 0x44),
                             _mm512_shuffle_ps(w[2 * i], w[2 * i + 1], 0xEE));
    /* (l, l+1): lane 4j + t now holds vector 4t + j */
    __m512 z = _mm512_add_ps(_mm512_shuffle_ps(y[0], y[1], 0x88), _mm512_shuffle_ps(y[0], y[1], 0xDD));
    const __m512i order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
    return _mm512_permutexvar_ps(order, z);
}

/* res[o][r] = x[r] . w[o] for 4 weight rows and nr <= 4 input rows, sharing every load.
 * Lane l of a row's accumulator sums elements l, l+16, ... with fused multiply-adds (the
 * tail through a masked load), then the lanes are reduced; every row count runs this
 * same sequence for each row, so a row's result does not depend on its neighbours.
 * ahead != 0: also prefetches the weights that far ahead, so that memory keeps streaming
 * while the rows are computed. */
static inline __attribute__((always_inline)) void dot_block_avx512(float res[OB][RB], const float *const x[RB],
                                                                   const float *const w[OB], int C, int nr,
                                                                   ptrdiff_t ahead) {
    __m512 acc[OB][RB];
    for (int o = 0; o < OB; o++)
        for (int r = 0; r < nr; r++) acc[o][r] = _mm512_setzero_ps();
    int i = 0;
    for (; i + L <= C; i += L) {
        if (ahead)
            for (int o = 0; o < OB; o++) _mm_prefetch((const char *)(w[o] + i + ahead), _MM_HINT_T0);
        __m512 xv[RB];
        for (int r = 0; r < nr; r++) xv[r] = _mm512_loadu_ps(x[r] + i);
        for (int o = 0; o < OB; o++) {
            __m512 wv = _mm512_loadu_ps(w[o] + i);
            for (int r = 0; r < nr; r++) acc[o][r] = _mm512_fmadd_ps(xv[r], wv, acc[o][r]);
        }
    }
    if (i < C) {
        __mmask16 m = (__mmask16)((1u << (C - i)) - 1);
        __m512 xv[RB];
        for (int r = 0; r < nr; r++) xv[r] = _mm512_maskz_loadu_ps(m, x[r] + i);
        for (int o = 0; o < OB; o++) {
            __m512 wv = _mm512_maskz_loadu_ps(m, w[o] + i);
            for (int r = 0; r < nr; r++) acc[o][r] = _mm512_fmadd_ps(xv[r], wv, acc[o][r]);
        }
    }
    __m512 all[OB * RB]; /* the 16 sums at once; rows beyond nr are zeros */
    for (int o = 0; o < OB; o++)
        for (int r = 0; r < RB; r++) all[o * RB + r] = r < nr ? acc[o][r] : _mm512_setzero_ps();
    _mm512_storeu_ps(&res[0][0], sum16(all));
}
#endif

/* The same sums as the AVX-512 version. */
static inline __attribute__((always_inline)) void dot_block_portable(float res[OB][RB], const float *const x[RB],
                                                                     const float *const w[OB], int C, int nr) {
    for (int o = 0; o < OB; o++)
        for (int r = 0; r < nr; r++) {
            float acc[L] = {0};
            for (int i = 0; i < C; i++) acc[i % L] = fmaf(x[r][i], w[o][i], acc[i % L]);
            res[o][r] = lane_sum(acc);
        }
}

/* avx512: a constant where inlined, so each version of the kernel holds one of the two */
static inline __attribute__((always_inline)) void dot_block(float res[OB][RB], const float *const x[RB],
                                                            const float *const w[OB], int C, int nr,
                                                            ptrdiff_t ahead, int avx512) {
#if defined(__AVX512F__)
    if (avx512) {
        dot_block_avx512(res, x, w, C, nr, ahead);
        return;
    }
#endif
    (void)ahead, (void)avx512; /* no portable prefetch */
    dot_block_portable(res, x, w, C, nr);
}

enum { MATMUL_PARALLEL_MIN = 1 << 17 }; /* weights; smaller: not worth a fork and join */

/* Output block ob (4 weight rows) of out (R,OC) for every row: each weight is read from
 * memory once and used for every input row; a short last block repeats its last weight row. */
static inline __attribute__((always_inline)) void matmul_block(float *out, const float *x, const float *w, int R,
                                                               int C, int OC, float beta, int ob, int avx512) {
    const float *wp[OB];
    for (int o = 0; o < OB; o++) wp[o] = w + (size_t)(ob * OB + o < OC ? ob * OB + o : OC - 1) * C;
    for (int r0 = 0; r0 < R; r0 += RB) {
        const float *xp[RB];
        int nr = R - r0 < RB ? R - r0 : RB;
        for (int r = 0; r < RB; r++) xp[r] = x + (size_t)(r0 + r < R ? r0 + r : R - 1) * C;
        float res[OB][RB] = {{0}};
        /* the first row block streams the weights: it prefetches a later block's */
        ptrdiff_t ahead = r0 == 0 && (ob + PREFETCH_BLOCKS + 1) * OB <= OC
                              ? (ptrdiff_t)PREFETCH_BLOCKS * OB * C : 0;
        /* constant row counts: register-resident sums. 2 or 3 rows run as 4 (the last
         * repeated, its sums dropped): measured faster than their own code here */
        if (nr == 1)
            dot_block(res, xp, wp, C, 1, ahead, avx512);
        else
            dot_block(res, xp, wp, C, 4, ahead, avx512);
        for (int o = 0; o < OB && ob * OB + o < OC; o++)
            for (int r = 0; r < RB && r0 + r < R; r++) {
                float *dst = out + (size_t)(r0 + r) * OC + ob * OB + o;
                *dst = beta == 0 ? res[o][r] : *dst + res[o][r];
            }
    }
}

/* A job of blocks of 4 weight rows, split across threads (mtp_team_run). */
typedef struct {
    float *out;
    const float *x, *w;
    int R, C, OC;
    float beta;
} rows_job;

static int rows_threads(int C, int OC) { return (size_t)OC * C >= MATMUL_PARALLEL_MIN ? mtp_backend_threads() : 1; }

static void block_portable(void *ctx, int ob) {
    const rows_job *j = ctx;
    matmul_block(j->out, j->x, j->w, j->R, j->C, j->OC, j->beta, ob, 0);
}

void mtp_matmul_rows_portable(float *out, const float *x, const float *w, int R, int C, int OC, float beta) {
    rows_job j = {out, x, w, R, C, OC, beta};
    mtp_team_run((OC + OB - 1) / OB, block_portable, &j, rows_threads(C, OC));
}

#if defined(__AVX512F__)
int mtp_decode_avx512_available(void) { return __builtin_cpu_supports("avx512f"); }

static void block_avx512(void *ctx, int ob) {
    const rows_job *j = ctx;
    matmul_block(j->out, j->x, j->w, j->R, j->C, j->OC, j->beta, ob, 1);
}

void mtp_matmul_rows_avx512(float *out, const float *x, const float *w, int R, int C, int OC, float beta) {
    rows_job j = {out, x, w, R, C, OC, beta};
    mtp_team_run((OC + OB - 1) / OB, block_avx512, &j, rows_threads(C, OC));
}
#else
int mtp_decode_avx512_available(void) { return 0; }

void mtp_matmul_rows_avx512(float *out, const float *x, const float *w, int R, int C, int OC, float beta) {
    MTP_ASSERT(!"mtp_matmul_rows_avx512 in a build without AVX-512: check mtp_decode_avx512_available");
}
#endif

void mtp_matmul_rows(float *out, const float *x, const float *w, int R, int C, int OC, float beta) {
    if (mtp_decode_avx512_available())
        mtp_matmul_rows_avx512(out, x, w, R, C, OC, beta);
    else
        mtp_matmul_rows_portable(out, x, w, R, C, OC, beta);
}

/* ---- one query's attention ------------------------------------------------------------
 * Scores: each key's dot product with the query in 16 lanes, summed by lane_sum's tree,
 * times scale. Weights: vexp1(score - max), summed in 16 lanes (key j in lane j % 16)
 * and lane_sum. Output element e: fused multiply-adds of (weight / sum) * v[e], key j into
 * partial sum j % 4 (four independent chains: the adds need not wait on each other), then
 * (p0 + p1) + (p2 + p3).
 * The keys and values are fp32 (mtp_attend_row), bf16 (mtp_attend_row_bf16) or 8-bit
 * (mtp_attend_rows with MTP_KV_Q8), each element widened to fp32 exactly as it is loaded (a
 * bf16's bits << 16; an int8 times its block's F16 scale, a product of 8 and 11 significant
 * bits): so each version below is one body for all, parameterised by the kind (a constant
 * where inlined), and gives the bits of the fp32 one run on the widened values. */

enum { PV = 4 }; /* partial sums of the weighted values */

/* the F16 scale of element at of an 8-bit cache, as fp32 */
static inline float q8_scale(mtp_kv_data base, size_t at) {
#if defined(__F16C__)
    return _cvtsh_ss(base.scale[at / 32]);
#else
    return mtp_f16_to_f32(base.scale[at / 32]);
#endif
}

/* element at of a cache */
static inline float load1(mtp_kv_data base, size_t at, int kind) {
    if (kind == MTP_KV_BF16) return mtp_bf16_value(((const uint16_t *)base.x)[at]);
    if (kind == MTP_KV_Q8) return (float)((const int8_t *)base.x)[at] * q8_scale(base, at);
    return ((const float *)base.x)[at];
}

#if defined(__AVX512F__)

/* How many first keys all nq chains share (the same slots in the same order). */
static inline int shared_keys(const int *const *idx, const int *n, int nq) {
    int m = n[0];
    for (int i = 1; i < nq; i++) {
        int j = 0, lim = n[i] < m ? n[i] : m;
        while (j < lim && idx[i][j] == idx[0][j]) j++;
        m = j;
    }
    return m;
}

/* elements at..at+15 of a cache (8-bit: at a multiple of 16, so all in one block of 32) */
static inline __m512 load16(mtp_kv_data base, size_t at, int kind) {
    if (kind == MTP_KV_F32) return _mm512_loadu_ps((const float *)base.x + at);
    if (kind == MTP_KV_Q8) {
        __m128i b = _mm_loadu_si128((const __m128i *)((const int8_t *)base.x + at));
        return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b)), _mm512_set1_ps(q8_scale(base, at)));
    }
    __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)base.x + at));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* the first cnt of them (cnt >= 1), zeros after, reading only those */
static inline __m512 load_first(mtp_kv_data base, size_t at, int cnt, int kind) {
    if (kind == MTP_KV_F32) return _mm512_maskz_loadu_ps(first(cnt), (const float *)base.x + at);
    if (cnt >= L) return load16(base, at, kind);
    float t[L] = {0}; /* (masked 8- and 16-bit loads need AVX512BW) */
    for (int i = 0; i < cnt; i++) t[i] = load1(base, at + i, kind);
    return _mm512_loadu_ps(t);
}

/* out (hd) = sum_j s[j] v_j in the recipe's partial sums, one 16-lane column at a time */
static inline __attribute__((always_inline)) void weigh_values(float *out, const float *s, mtp_kv_data v,
                                                               const int *idx, int n, size_t stride, int hd,
                                                               int kind) {
    for (int c = 0; c < (hd + L - 1) / L; c++) {
        int cnt = hd - c * L;
        __m512 p0 = _mm512_setzero_ps(), p1 = p0, p2 = p0, p3 = p0;
#define WV(j) _mm512_set1_ps(s[j]), load_first(v, (size_t)idx[j] * stride + c * L, cnt, kind)
        int j = 0;
        for (; j + PV <= n; j += PV) {
            p0 = _mm512_fmadd_ps(WV(j), p0);
            p1 = _mm512_fmadd_ps(WV(j + 1), p1);
            p2 = _mm512_fmadd_ps(WV(j + 2), p2);
            p3 = _mm512_fmadd_ps(WV(j + 3), p3);
        }
        if (j < n) p0 = _mm512_fmadd_ps(WV(j), p0);
        if (j + 1 < n) p1 = _mm512_fmadd_ps(WV(j + 1), p1);
        if (j + 2 < n) p2 = _mm512_fmadd_ps(WV(j + 2), p2);
#undef WV
        _mm512_mask_storeu_ps(out + c * L, first(cnt), _mm512_add_ps(_mm512_add_ps(p0, p1), _mm512_add_ps(p2, p3)));
    }
}

/* The same sums for hd = 16 nc (nc <= 4, a constant where inlined), key by key: a key's
 * vectors are adjacent in memory, and its row index is read once. */
static inline __attribute__((always_inline)) void weigh_values_by_key(float *out, const float *s, mtp_kv_data v,
                                                                      const int *idx, int n, size_t stride,
                                                                      int nc, int kind) {
    __m512 p[4][PV];
    for (int c = 0; c < nc; c++)
        for (int t = 0; t < PV; t++) p[c][t] = _mm512_setzero_ps();
    int j = 0;
    for (; j + PV <= n; j += PV)
        for (int t = 0; t < PV; t++) {
            size_t vj = (size_t)idx[j + t] * stride;
            __m512 w = _mm512_set1_ps(s[j + t]);
            for (int c = 0; c < nc; c++) p[c][t] = _mm512_fmadd_ps(w, load16(v, vj + c * L, kind), p[c][t]);
        }
    for (int t = 0; j + t < n; t++) {
        size_t vj = (size_t)idx[j + t] * stride;
        __m512 w = _mm512_set1_ps(s[j + t]);
        for (int c = 0; c < nc; c++) p[c][t] = _mm512_fmadd_ps(w, load16(v, vj + c * L, kind), p[c][t]);
    }
    for (int c = 0; c < nc; c++)
        _mm512_storeu_ps(out + c * L, _mm512_add_ps(_mm512_add_ps(p[c][0], p[c][1]), _mm512_add_ps(p[c][2], p[c][3])));
}

/* Scores of 16 keys: the query's nc vectors stay in registers, the 16 lane sums too
 * (constant indices once unrolled). nc is a constant where inlined. */
static inline __attribute__((always_inline)) __m512 scores16(const __m512 *qv, int nc, mtp_kv_data k,
                                                             const int *idx, size_t stride, int kind) {
    __m512 a[L];
#pragma GCC unroll 16
    for (int j = 0; j < L; j++) {
        size_t kj = (size_t)idx[j] * stride;
        a[j] = _mm512_fmadd_ps(qv[0], load16(k, kj, kind), _mm512_setzero_ps());
        for (int c = 1; c < nc; c++) a[j] = _mm512_fmadd_ps(qv[c], load16(k, kj + c * L, kind), a[j]);
    }
    return sum16(a);
}

/* s[j0..n) = scale * q . k_j (the query's nc vectors in qv when hd is whole vectors), and the
 * running maximum mx over them: whole blocks of 16 keys by scores16, then one key at a time,
 * masked; each key's score is the same bits either way. */
static inline __attribute__((always_inline)) __m512 scores_from(const float *q, mtp_kv_data k, const int *idx,
                                                                int j0, int n, size_t stride, int hd, float scale,
                                                                float *s, __m512 mx, int kind) {
    int nc = (hd + L - 1) / L;
    __m512 qv[8];
    if (hd % L == 0 && nc <= 8) { /* whole blocks of 16 keys, whole vectors: the fast path */
        for (int c = 0; c < nc; c++) qv[c] = _mm512_loadu_ps(q + c * L);
        for (; j0 + L <= n; j0 += L) {
            __m512 sc;
            switch (nc) {
            case 1: sc = scores16(qv, 1, k, idx + j0, stride, kind); break;
            case 2: sc = scores16(qv, 2, k, idx + j0, stride, kind); break;
            case 4: sc = scores16(qv, 4, k, idx + j0, stride, kind); break;
            default: sc = scores16(qv, nc, k, idx + j0, stride, kind); break;
            }
            sc = _mm512_mul_ps(sc, _mm512_set1_ps(scale));
            _mm512_storeu_ps(s + j0, sc);
            mx = _mm512_max_ps(mx, sc);
        }
    }
    for (; j0 < n; j0 += L) { /* the same sums, one key at a time, masked */
        __m512 a[L];
        int nj = n - j0 < L ? n - j0 : L;
        for (int j = 0; j < L; j++) a[j] = _mm512_setzero_ps();
        for (int j = 0; j < nj; j++) {
            size_t kj = (size_t)idx[j0 + j] * stride;
            for (int c = 0; c < nc; c++)
                a[j] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(first(hd - c * L), q + c * L),
                                       load_first(k, kj + c * L, hd - c * L, kind), a[j]);
        }
        __m512 sc = _mm512_mul_ps(sum16(a), _mm512_set1_ps(scale));
        _mm512_mask_storeu_ps(s + j0, first(nj), sc);
        mx = _mm512_mask_max_ps(mx, first(nj), mx, sc);
    }
    return mx;
}

static inline __attribute__((always_inline)) void attend_row_avx512(float *out, const float *q, mtp_kv_data k,
                                                                    mtp_kv_data v, const int *idx, int n,
                                                                    size_t stride, int hd, float scale, float *s,
                                                                    int kind) {
    int nc = (hd + L - 1) / L;
    __m512 mx = scores_from(q, k, idx, 0, n, stride, hd, scale, s, _mm512_set1_ps(-INFINITY), kind);
    softmax_avx512(s, n, _mm512_reduce_max_ps(mx));
    switch (hd % L ? 0 : nc) { /* constant nc: both of a key's vectors at once */
    case 1: weigh_values_by_key(out, s, v, idx, n, stride, 1, kind); break;
    case 2: weigh_values_by_key(out, s, v, idx, n, stride, 2, kind); break;
    case 4: weigh_values_by_key(out, s, v, idx, n, stride, 4, kind); break;
    default: weigh_values(out, s, v, idx, n, stride, hd, kind); break;
    }
}

/* Several queries over one cache whose chains agree on their first `common` keys: each
 * query's bits are attend_row_avx512's, but the shared keys and values are loaded once for
 * all of them. Scores: each key's dot products (the same fused chain over the vectors) are
 * kept for 16 keys, then reduced by sum16 per query; the rest of each chain goes through
 * scores_from. Values: one 16-lane column at a time, partial sum t taking keys j = t mod 4 in
 * order, as weigh_values and weigh_values_by_key do; a query's keys past the shared ones
 * continue its partial sums. hd is whole vectors (hd % 16 == 0, hd <= 128). */
static inline __attribute__((always_inline)) void attend_rows_avx512(float *const *out, const float *const *q,
                                                                     mtp_kv_data k, mtp_kv_data v,
                                                                     const int *const *idx, const int *n, int nq,
                                                                     int common, size_t stride, int hd, float scale,
                                                                     float *const *s, int kind) {
    int nc = hd / L, m16 = common / L * L, mv = common / PV * PV;
    __m512 mx[MTP_ATTEND_ROWS];
    const int *id0 = idx[0];
    for (int i = 0; i < nq; i++) mx[i] = _mm512_set1_ps(-INFINITY);
    __m512 kv[8];
    for (int c = 0; c < 8; c++) kv[c] = _mm512_setzero_ps();
    for (int j0 = 0; j0 < m16; j0 += L) {
        __m512 a[MTP_ATTEND_ROWS][L];
        for (int j = 0; j < L; j++) {
            size_t kj = (size_t)id0[j0 + j] * stride;
            for (int c = 0; c < nc; c++) kv[c] = load16(k, kj + c * L, kind);
            for (int i = 0; i < nq; i++) {
                __m512 acc = _mm512_setzero_ps();
                for (int c = 0; c < nc; c++) acc = _mm512_fmadd_ps(_mm512_loadu_ps(q[i] + c * L), kv[c], acc);
                a[i][j] = acc;
            }
        }
        for (int i = 0; i < nq; i++) {
            __m512 sc = _mm512_mul_ps(sum16(a[i]), _mm512_set1_ps(scale));
            _mm512_storeu_ps(s[i] + j0, sc);
            mx[i] = _mm512_max_ps(mx[i], sc);
        }
    }
    for (int i = 0; i < nq; i++) {
        mx[i] = scores_from(q[i], k, idx[i], m16, n[i], stride, hd, scale, s[i], mx[i], kind);
        softmax_avx512(s[i], n[i], _mm512_reduce_max_ps(mx[i]));
    }
    for (int c = 0; c < nc; c++) {
        __m512 p[MTP_ATTEND_ROWS][PV];
        for (int i = 0; i < nq; i++)
            for (int t = 0; t < PV; t++) p[i][t] = _mm512_setzero_ps();
        for (int j = 0; j < mv; j += PV)
            for (int t = 0; t < PV; t++) {
                __m512 vj = load16(v, (size_t)id0[j + t] * stride + c * L, kind);
                for (int i = 0; i < nq; i++) p[i][t] = _mm512_fmadd_ps(_mm512_set1_ps(s[i][j + t]), vj, p[i][t]);
            }
        for (int i = 0; i < nq; i++) {
            for (int j = mv; j < n[i]; j++)
                p[i][j % PV] = _mm512_fmadd_ps(_mm512_set1_ps(s[i][j]),
                                               load16(v, (size_t)idx[i][j] * stride + c * L, kind), p[i][j % PV]);
            _mm512_storeu_ps(out[i] + c * L,
                             _mm512_add_ps(_mm512_add_ps(p[i][0], p[i][1]), _mm512_add_ps(p[i][2], p[i][3])));
        }
    }
}

void mtp_attend_row_avx512(float *out, const float *q, const float *k, const float *v, const int *idx,
                           int n, size_t stride, int hd, float scale, float *s) {
    mtp_kv_data kd = {k, NULL}, vd = {v, NULL};
    attend_row_avx512(out, q, kd, vd, idx, n, stride, hd, scale, s, MTP_KV_F32);
}

void mtp_attend_row_bf16_avx512(float *out, const float *q, const uint16_t *k, const uint16_t *v, const int *idx,
                                int n, size_t stride, int hd, float scale, float *s) {
    mtp_kv_data kd = {k, NULL}, vd = {v, NULL};
    attend_row_avx512(out, q, kd, vd, idx, n, stride, hd, scale, s, MTP_KV_BF16);
}

/* attend_row_avx512 or attend_rows_avx512 for a kind known here, so that it is a constant
 * in their inlined bodies */
static void rows_avx512(float *const *out, const float *const *q, mtp_kv_data k, mtp_kv_data v, int kind,
                        const int *const *idx, const int *n, int nq, int common, size_t stride, int hd, float scale,
                        float *const *s) {
    if (nq > 1 && hd % L == 0 && hd <= 8 * L && common >= L) {
        attend_rows_avx512(out, q, k, v, idx, n, nq, common, stride, hd, scale, s, kind);
        return;
    }
    for (int i = 0; i < nq; i++) /* nothing worth sharing: one at a time */
        attend_row_avx512(out[i], q[i], k, v, idx[i], n[i], stride, hd, scale, s[i], kind);
}

void mtp_attend_rows_avx512(float *const *out, const float *const *q, mtp_kv_data k, mtp_kv_data v, mtp_kv_type t,
                            const int *const *idx, const int *n, int nq, size_t stride, int hd, float scale,
                            float *const *s) {
    MTP_ASSERT(nq >= 1 && nq <= MTP_ATTEND_ROWS);
    int common = shared_keys(idx, n, nq);
    switch (t) {
    case MTP_KV_F32: rows_avx512(out, q, k, v, MTP_KV_F32, idx, n, nq, common, stride, hd, scale, s); break;
    case MTP_KV_BF16: rows_avx512(out, q, k, v, MTP_KV_BF16, idx, n, nq, common, stride, hd, scale, s); break;
    case MTP_KV_Q8: rows_avx512(out, q, k, v, MTP_KV_Q8, idx, n, nq, common, stride, hd, scale, s); break;
    }
}
#else
void mtp_attend_row_avx512(float *out, const float *q, const float *k, const float *v, const int *idx,
                           int n, size_t stride, int hd, float scale, float *s) {
    MTP_ASSERT(!"mtp_attend_row_avx512 in a build without AVX-512: check mtp_decode_avx512_available");
}

void mtp_attend_row_bf16_avx512(float *out, const float *q, const uint16_t *k, const uint16_t *v, const int *idx,
                                int n, size_t stride, int hd, float scale, float *s) {
    MTP_ASSERT(!"mtp_attend_row_bf16_avx512 in a build without AVX-512: check mtp_decode_avx512_available");
}

void mtp_attend_rows_avx512(float *const *out, const float *const *q, mtp_kv_data k, mtp_kv_data v, mtp_kv_type t,
                            const int *const *idx, const int *n, int nq, size_t stride, int hd, float scale,
                            float *const *s) {
    MTP_ASSERT(!"mtp_attend_rows_avx512 in a build without AVX-512: check mtp_decode_avx512_available");
}
#endif

static inline __attribute__((always_inline)) void attend_row_portable(float *out, const float *q, mtp_kv_data k,
                                                                      mtp_kv_data v, const int *idx, int n,
                                                                      size_t stride, int hd, float scale, float *s,
                                                                      int kind) {
    float mx = -INFINITY;
    for (int j = 0; j < n; j++) {
        size_t kj = (size_t)idx[j] * stride;
        float acc[L] = {0};
        for (int i = 0; i < hd; i++) acc[i % L] = fmaf(q[i], load1(k, kj + i, kind), acc[i % L]);
        s[j] = lane_sum(acc) * scale;
        mx = s[j] > mx ? s[j] : mx;
    }
    softmax_portable(s, n, mx);
    for (int e = 0; e < hd; e++) {
        float p[PV] = {0};
        for (int j = 0; j < n; j++) p[j % PV] = fmaf(s[j], load1(v, (size_t)idx[j] * stride + e, kind), p[j % PV]);
        out[e] = (p[0] + p[1]) + (p[2] + p[3]);
    }
}

void mtp_attend_row_portable(float *out, const float *q, const float *k, const float *v, const int *idx,
                             int n, size_t stride, int hd, float scale, float *s) {
    mtp_kv_data kd = {k, NULL}, vd = {v, NULL};
    attend_row_portable(out, q, kd, vd, idx, n, stride, hd, scale, s, MTP_KV_F32);
}

void mtp_attend_row_bf16_portable(float *out, const float *q, const uint16_t *k, const uint16_t *v, const int *idx,
                                  int n, size_t stride, int hd, float scale, float *s) {
    mtp_kv_data kd = {k, NULL}, vd = {v, NULL};
    attend_row_portable(out, q, kd, vd, idx, n, stride, hd, scale, s, MTP_KV_BF16);
}

void mtp_attend_row(float *out, const float *q, const float *k, const float *v, const int *idx,
                    int n, size_t stride, int hd, float scale, float *s) {
    if (mtp_decode_avx512_available())
        mtp_attend_row_avx512(out, q, k, v, idx, n, stride, hd, scale, s);
    else
        mtp_attend_row_portable(out, q, k, v, idx, n, stride, hd, scale, s);
}

void mtp_attend_rows_portable(float *const *out, const float *const *q, mtp_kv_data k, mtp_kv_data v, mtp_kv_type t,
                              const int *const *idx, const int *n, int nq, size_t stride, int hd, float scale,
                              float *const *s) {
    for (int i = 0; i < nq; i++) switch (t) {
        case MTP_KV_F32: attend_row_portable(out[i], q[i], k, v, idx[i], n[i], stride, hd, scale, s[i], MTP_KV_F32); break;
        case MTP_KV_BF16: attend_row_portable(out[i], q[i], k, v, idx[i], n[i], stride, hd, scale, s[i], MTP_KV_BF16); break;
        case MTP_KV_Q8: attend_row_portable(out[i], q[i], k, v, idx[i], n[i], stride, hd, scale, s[i], MTP_KV_Q8); break;
        }
}

void mtp_attend_rows(float *const *out, const float *const *q, mtp_kv_data k, mtp_kv_data v, mtp_kv_type t,
                     const int *const *idx, const int *n, int nq, size_t stride, int hd, float scale,
                     float *const *s) {
    if (mtp_decode_avx512_available())
        mtp_attend_rows_avx512(out, q, k, v, t, idx, n, nq, stride, hd, scale, s);
    else
        mtp_attend_rows_portable(out, q, k, v, t, idx, n, nq, stride, hd, scale, s);
}

void mtp_attend_row_bf16(float *out, const float *q, const uint16_t *k, const uint16_t *v, const int *idx,
                         int n, size_t stride, int hd, float scale, float *s) {
    if (mtp_decode_avx512_available())
        mtp_attend_row_bf16_avx512(out, q, k, v, idx, n, stride, hd, scale, s);
    else
        mtp_attend_row_bf16_portable(out, q, k, v, idx, n, stride, hd, scale, s);
}

/* A row of a bf16 cache, rounded like mtp_matmul_rows_bf16's rows (ops_bf16.c defines
 * the two versions). */
void mtp_bf16_round_row(uint16_t *dst, const float *src, size_t n) {
    if (mtp_decode_avx512_available())
        mtp_bf16_round_row_avx512(dst, src, n);
    else
        mtp_bf16_round_row_portable(dst, src, n);
}
