/* gemm.c: the training products (gemm.h) on AVX-512, in fp32 (vfmadd231ps) or with bf16
 * inputs and fp32 sums (vdpbf16ps, AVX512-BF16). The usual blocked scheme: per block of KC
 * inputs, op(A) is packed into panels of MR rows and op(B) into panels of NR columns (bf16:
 * rounded to nearest even as they are packed, two inputs side by side); an MR x NR
 * microkernel keeps its 28 sums in zmm registers over the block and adds them to C. A
 * thread computes whole tiles of C (MT rows x NT columns), so every output element is
 * summed by the same instructions in the same order whatever the thread count: block by
 * block in K, inputs in order within a block (results depend on the shapes, never on the
 * threads; exact resume and bit-identical reruns rely on it). */
#include "kernels/gemm.h"

#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "kernels/bf16.h"
#include "kernels/ops.h"

#if MTP_HAVE_OMP
#include <omp.h>
#endif

/* MR x NR: 14 rows broadcast, 2 vectors of 16 columns (28 accumulators of 32 registers).
 * KC inputs per block (even: bf16 pairs); a tile of MT x NT outputs is one thread's task,
 * its A rows (MT x KC) staying in L2 while each B panel (KC x NR) sits in L1. */
enum { MR = 14, NR = 32, KC = 256, MT = 8 * MR, NT = 4 * NR };

int mtp_gemm_avx512_available(void) { return mtp_decode_avx512_available(); }

int mtp_gemm_bf16_available(void) {
#if defined(__AVX512BF16__)
    return mtp_gemm_avx512_available() && mtp_bf16_dp_available();
#else
    return 0;
#endif
}

#if defined(__AVX512F__) /* the build targets AVX-512 (-march=native on such a CPU) */
/* Buffers kept by the calling thread between calls (a step makes hundreds of products). */
static uint32_t *grow(float **buf, size_t *cap, size_t words) {
    if (words > *cap) {
        free(*buf);
        *buf = falloc(words);
        *cap = words;
    }
    return (uint32_t *)*buf;
}


static inline __mmask16 lanes(int n) { return n >= 16 ? 0xFFFF : n <= 0 ? 0 : (__mmask16)((1u << n) - 1); }

/* 16 words from n consecutive floats at p (zero past n): fp32 bits (n <= 16), or bf16 pairs
 * (n <= 32; float 2w in word w's low half, 2w + 1 in its high half: memory order) */
static inline __m512i load_words(const float *p, int n, int bf16) {
    if (!bf16) return _mm512_castps_si512(_mm512_maskz_loadu_ps(lanes(n), p));
    __m256i lo = mtp_bf16_round16(_mm512_maskz_loadu_ps(lanes(n), p));
    __m256i hi = mtp_bf16_round16(_mm512_maskz_loadu_ps(lanes(n - 16), p + 16));
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

/* 16 words of two rows: fp32 bits of r0 (n <= 16), or bf16 pairs (r0[x], r1[x]), r1 NULL
 * for zero */
static inline __m512i load_pairs(const float *r0, const float *r1, int n, int bf16) {
    __m512i w0 = _mm512_castps_si512(_mm512_maskz_loadu_ps(lanes(n), r0));
    if (!bf16) return w0;
    __m512i lo = _mm512_cvtepu16_epi32(mtp_bf16_round16(_mm512_castsi512_ps(w0)));
    if (!r1) return lo;
    __m512i hi = _mm512_cvtepu16_epi32(mtp_bf16_round16(_mm512_maskz_loadu_ps(lanes(n), r1)));
    return _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16));
}

/* r[0..15] = the 16 x 16 words transposed */
static void transpose16(__m512i r[16]) {
    __m512i t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4)
        for (int j = 0; j < 2; j++) {
            r[i + 2 * j] = _mm512_unpacklo_epi64(t[i + j], t[i + j + 2]);
            r[i + 2 * j + 1] = _mm512_unpackhi_epi64(t[i + j], t[i + j + 2]);
        }
    for (int i = 0; i < 16; i += 8)
        for (int j = 0; j < 4; j++) {
            t[i + j] = _mm512_shuffle_i32x4(r[i + j], r[i + j + 4], 0x88);
            t[i + j + 4] = _mm512_shuffle_i32x4(r[i + j], r[i + j + 4], 0xDD);
        }
    for (int j = 0; j < 8; j++) {
        r[j] = _mm512_shuffle_i32x4(t[j], t[j + 8], 0x88);
        r[j + 8] = _mm512_shuffle_i32x4(t[j], t[j + 8], 0xDD);
    }
}

/* One panel of width W (MR or NR) over inputs [k0, k0 + kc) of an operand whose element
 * (k, x) lies at src[k * ld + x] (kmajor) or src[x * ld + k], x counted from the panel's
 * first row or column, nx of them valid: word (p, x) at dst[p * W + x], p an input (fp32)
 * or a pair of inputs (bf16); zero past nx and past K. */
static void pack(uint32_t *dst, int W, const float *src, size_t ld, int kmajor,
                             int nx, int K, int k0, int kc, int bf16) {
    int step = bf16 ? 2 : 1, np = (kc + step - 1) / step;
    if (kmajor) {
        for (int p = 0; p < np; p++) {
            int k = k0 + p * step;
            const float *r0 = src + (size_t)k * ld, *r1 = bf16 && k + 1 < K ? r0 + ld : NULL;
            for (int x = 0; x < W; x += 16)
                _mm512_mask_storeu_epi32(dst + p * W + x, lanes(W - x),
                                         load_pairs(r0 + x, r1 ? r1 + x : NULL, nx - x, bf16));
        }
        return;
    }
    for (int x = 0; x < W; x += 16)
        for (int p0 = 0; p0 < np; p0 += 16) {
            __m512i r[16];
            int kn = K - (k0 + p0 * step); /* inputs left from this block's first */
            for (int i = 0; i < 16; i++)
                r[i] = x + i < nx ? load_words(src + (size_t)(x + i) * ld + k0 + p0 * step, kn, bf16)
                                  : _mm512_setzero_si512();
            transpose16(r);
            for (int i = 0; i < 16 && p0 + i < np; i++)
                _mm512_mask_storeu_epi32(dst + (p0 + i) * W + x, lanes(W - x), r[i]);
        }
}
/* C (mr x nr, mr <= MR, nr <= NR) = first ? alpha * sums + beta * C : C + alpha * sums,
 * over np inputs (fp32) or input pairs (bf16) of one A and one B panel. */
static void micro(float *C, int ldc, const uint32_t *a, const uint32_t *b, int np,
                              int mr, int nr, float alpha, float beta, int first, int bf16) {
    __m512 acc[MR][2];
    for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
#if defined(__AVX512BF16__)
    if (bf16) {
        for (int p = 0; p < np; p++, a += MR, b += NR) {
            __m512bh b0 = (__m512bh)_mm512_load_si512(b), b1 = (__m512bh)_mm512_load_si512(b + 16);
#pragma GCC unroll 14
            for (int r = 0; r < MR; r++) {
                __m512bh ar = (__m512bh)_mm512_set1_epi32((int)a[r]);
                acc[r][0] = _mm512_dpbf16_ps(acc[r][0], ar, b0);
                acc[r][1] = _mm512_dpbf16_ps(acc[r][1], ar, b1);
            }
        }
    } else
#endif
    {
        const float *af = (const float *)a, *bf = (const float *)b;
        for (int p = 0; p < np; p++, af += MR, bf += NR) {
            __m512 b0 = _mm512_load_ps(bf), b1 = _mm512_load_ps(bf + 16);
#pragma GCC unroll 14
            for (int r = 0; r < MR; r++) {
                __m512 ar = _mm512_set1_ps(af[r]);
                acc[r][0] = _mm512_fmadd_ps(ar, b0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(ar, b1, acc[r][1]);
            }
        }
    }
    __mmask16 m0 = nr >= 16 ? 0xFFFF : (__mmask16)((1u << nr) - 1);
    __mmask16 m1 = nr >= 32 ? 0xFFFF : nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1);
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int r = 0; r < mr; r++) {
        float *c = C + (size_t)r * ldc;
        for (int h = 0; h < 2; h++) {
            __mmask16 m = h ? m1 : m0;
            __m512 s = _mm512_mul_ps(acc[r][h], va), old;
            if (first && beta == 0) {
                _mm512_mask_storeu_ps(c + 16 * h, m, s);
                continue;
            }
            old = _mm512_maskz_loadu_ps(m, c + 16 * h);
            if (first) old = _mm512_mul_ps(old, vb);
            _mm512_mask_storeu_ps(c + 16 * h, m, _mm512_add_ps(old, s));
        }
    }
}
#endif

static void gemm_run(int bf16, int tA, int tB, int M, int N, int K, float alpha, const float *A,
                     int lda, const float *B, int ldb, float beta, float *C, int ldc) {
#if defined(__AVX512F__)
    static _Thread_local float *abuf, *bbuf;
    static _Thread_local size_t acap, bcap;
    int step = bf16 ? 2 : 1, pa = (M + MR - 1) / MR, pb = (N + NR - 1) / NR;
    size_t apanel = (size_t)MR * (KC / step), bpanel = (size_t)NR * (KC / step); /* words */
    uint32_t *ap = grow(&abuf, &acap, pa * apanel), *bp = grow(&bbuf, &bcap, pb * bpanel);
    int tm = (M + MT - 1) / MT, tn = (N + NT - 1) / NT;
    if (K == 0) { /* no inputs: C = beta * C */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = beta == 0 ? 0 : beta * C[(size_t)i * ldc + j];
        return;
    }
#if MTP_HAVE_OMP
#pragma omp parallel if (!omp_in_parallel() && (double)M * N * K > 1e6)
#endif
    for (int k0 = 0; k0 < K; k0 += KC) {
        int kc = K - k0 < KC ? K - k0 : KC, np = (kc + step - 1) / step;
#if MTP_HAVE_OMP
#pragma omp for schedule(static)
#endif
        for (int p = 0; p < pa + pb; p++) {
            /* op(A) (i, k) is A[i][k] or A[k][i]; op(B) (k, j) is B[k][j] or B[j][k] */
            if (p < pa) {
                int i0 = p * MR;
                pack(ap + p * apanel, MR, A + (tA ? (size_t)i0 : (size_t)i0 * lda), lda, tA, M - i0, K, k0, kc, bf16);
            } else {
                int j0 = (p - pa) * NR;
                pack(bp + (p - pa) * bpanel, NR, B + (tB ? (size_t)j0 * ldb : (size_t)j0), ldb, !tB, N - j0, K, k0, kc, bf16);
            }
        }
#if MTP_HAVE_OMP
#pragma omp for schedule(static)
#endif
        for (int t = 0; t < tm * tn; t++) {
            int ti = t % tm, tj = t / tm; /* neighbouring tasks share B panels */
            for (int jb = tj * NT / NR; jb < pb && jb < (tj + 1) * NT / NR; jb++)
                for (int ib = ti * MT / MR; ib < pa && ib < (ti + 1) * MT / MR; ib++) {
                    int mr = M - ib * MR < MR ? M - ib * MR : MR, nr = N - jb * NR < NR ? N - jb * NR : NR;
                    micro(C + (size_t)ib * MR * ldc + (size_t)jb * NR, ldc, ap + ib * apanel,
                          bp + jb * bpanel, np, mr, nr, alpha, beta, k0 == 0, bf16);
                }
        }
    }
#else
    MTP_ASSERT(!"gemm_run on a CPU without AVX-512");
#endif
}

void mtp_gemm_avx512(int tA, int tB, int M, int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc) {
    MTP_ASSERT(mtp_gemm_avx512_available());
    gemm_run(0, tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void mtp_gemm_bf16(int tA, int tB, int M, int N, int K, float alpha, const float *A, int lda,
                   const float *B, int ldb, float beta, float *C, int ldc) {
    MTP_ASSERT(mtp_gemm_bf16_available());
    gemm_run(1, tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
