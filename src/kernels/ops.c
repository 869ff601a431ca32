/* ops.c: the optimised kernels (ops.h). Matrix products go through gemm.h's kernels or
 * mtp_gemm; the rest are OpenMP loops with static schedules, so results are identical run
 * to run for a given thread count (exact resume depends on it). Reductions over rows that feed a weight
 * gradient run over columns in parallel, rows in order, for the same reason. */
#include "kernels/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/backend.h"
#include "kernels/gemm.h"
#include "core/util.h"
#include "kernels/vexp.h"

/* Element-wise and row-wise loops smaller than this run on one thread: the fork and join
 * would cost more (decoding passes are a few rows). Results do not depend on it. */
enum { PARALLEL_MIN = 1 << 16 };

void mtp_embedding_fwd(float *out, const mtp_token *tokens, const float *wte, int N, int C) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        memcpy(out + (size_t)n * C, wte + (size_t)tokens[n] * C, C * sizeof(float));
}

/* Weight gradients summed over rows run over blocks of COLS columns in parallel, each
 * block's rows in order: the bits do not depend on the thread count, and each row's
 * COLS floats are one cache line read once (a column at a time read every line 16 times). */
enum { COLS = 16 };

static int col_block(int c0, int C) { return C - c0 < COLS ? C - c0 : COLS; }

static inline void embedding_cols(float *dwte, const float *dout, const mtp_token *tokens, int N,
                                  int C, int c0, int nc) {
    for (int n = 0; n < N; n++) {
        float *d = dwte + (size_t)tokens[n] * C + c0;
        const float *g = dout + (size_t)n * C + c0;
        for (int j = 0; j < nc; j++) d[j] += g[j];
    }
}

void mtp_embedding_bwd(float *dwte, const float *dout, const mtp_token *tokens, int N, int C) {
#pragma omp parallel for schedule(static)
    for (int c0 = 0; c0 < C; c0 += COLS) {
        if (col_block(c0, C) == COLS) embedding_cols(dwte, dout, tokens, N, C, c0, COLS);
        else embedding_cols(dwte, dout, tokens, N, C, c0, col_block(c0, C));
    }
}

static void rmsnorm_row(float *o, float *rstd, const float *xr, const float *w, int C, float eps) {
    float lane[16] = {0}, ss = 0; /* 16 partial sums: one serial chain was a decoding cost */
    int c16 = C / 16 * 16;
    for (int c0 = 0; c0 < c16; c0 += 16)
        for (int l = 0; l < 16; l++) lane[l] += xr[c0 + l] * xr[c0 + l];
    for (int c = c16; c < C; c++) lane[c - c16] += xr[c] * xr[c];
    for (int l = 0; l < 16; l++) ss += lane[l];
    float r = 1.0f / sqrtf(ss / C + eps);
    *rstd = r;
    for (int c = 0; c < C; c++) o[c] = xr[c] * r * w[c];
}

void mtp_rmsnorm_fwd(float *out, float *rstd, const float *x, const float *w, int N, int C,
                     float eps) {
    MTP_FOR_THREADS((size_t)N * C >= PARALLEL_MIN,
                    for (int n = 0; n < N; n++)
                        rmsnorm_row(out + (size_t)n * C, rstd + n, x + (size_t)n * C, w, C, eps););
}

/* dw[c0 .. c0+nc) += sum over rows of dout x rstd, rows in order */
static inline void rmsnorm_dw_cols(float *dw, const float *dout, const float *x, const float *rstd,
                                   int N, int C, int c0, int nc) {
    float s[COLS] = {0};
    for (int n = 0; n < N; n++) {
        const float *g = dout + (size_t)n * C + c0, *xr = x + (size_t)n * C + c0;
        for (int j = 0; j < nc; j++) s[j] += g[j] * xr[j] * rstd[n];
    }
    for (int j = 0; j < nc; j++) dw[c0 + j] += s[j];
}

void mtp_rmsnorm_bwd(float *dx, float *dw, const float *dout, const float *dres, const float *x,
                     const float *w, const float *rstd, int N, int C) {
    /* y = x r w with r = (mean(x^2)+eps)^-1/2:
     * dx = r (dy w) - x r^3 / C * sum(dy w x) ; dw = sum_rows dy x r */
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *xr = x + (size_t)n * C, *g = dout + (size_t)n * C;
        const float *res = dres ? dres + (size_t)n * C : NULL;
        float *d = dx + (size_t)n * C;
        float r = rstd[n], lane[COLS] = {0}, dot = 0; /* lanes as in the forward */
        int c16 = C / COLS * COLS;
        for (int c0 = 0; c0 < c16; c0 += COLS)
            for (int l = 0; l < COLS; l++) lane[l] += g[c0 + l] * w[c0 + l] * xr[c0 + l];
        for (int c = c16; c < C; c++) lane[c - c16] += g[c] * w[c] * xr[c];
        for (int l = 0; l < COLS; l++) dot += lane[l];
        float k = dot * r * r * r / C;
        if (res)
            for (int c = 0; c < C; c++) d[c] = res[c] + (r * g[c] * w[c] - k * xr[c]);
        else
            for (int c = 0; c < C; c++) d[c] = r * g[c] * w[c] - k * xr[c];
    }
    if (!dw) return;
#pragma omp parallel for schedule(static)
    for (int c0 = 0; c0 < C; c0 += COLS) {
        if (col_block(c0, C) == COLS) rmsnorm_dw_cols(dw, dout, x, rstd, N, C, c0, COLS);
        else rmsnorm_dw_cols(dw, dout, x, rstd, N, C, c0, col_block(c0, C));
    }
}

/* The training products: bf16 when asked (mtp_matmul_precision), else mtp's own AVX-512
 * kernel where the build and the CPU have it (faster than OpenBLAS's AVX2 core, and the
 * same bits whatever the thread count), else mtp_gemm (OpenBLAS). */
static int matmul_bf16;

int mtp_matmul_precision(int bf16) {
    if (bf16 && !mtp_gemm_bf16_available()) return -1;
    matmul_bf16 = bf16;
    return 0;
}

int mtp_matmul_is_bf16(void) { return matmul_bf16; }

static void matmul(int tA, int tB, int M, int N, int K, const float *A, int lda, const float *B,
                   int ldb, float beta, float *C, int ldc) {
    if (matmul_bf16) mtp_gemm_bf16(tA, tB, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
    else if (mtp_gemm_avx512_available()) mtp_gemm_avx512(tA, tB, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
    else mtp_gemm(tA, tB, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
}

void mtp_matmul_fwd(float *out, const float *x, const float *w, int N, int C, int OC, float beta) {
    matmul(0, 1, N, OC, C, x, C, w, C, beta, out, OC);
}

void mtp_matmul_bwd(float *dx, float *dw, const float *dout, const float *x, const float *w,
                    int N, int C, int OC, float dx_beta) {
    if (dx) matmul(0, 0, N, C, OC, dout, OC, w, C, dx_beta, dx, C);
    if (dw) matmul(1, 0, OC, C, N, dout, OC, x, C, 1.0f, dw, C);
}

/* the parts as one job of mtp's own kernels; 0 where they are unavailable (then one
 * matmul per part) */
static int matmul_parts(mtp_gemm_split split, int tA, int tB, int M, int N, int K, const mtp_gemm_part *parts,
                        int n, float beta) {
    if (!matmul_bf16 && !mtp_gemm_avx512_available()) return 0;
    mtp_gemm_parts(matmul_bf16, split, tA, tB, M, N, K, 1.0f, parts, n, beta);
    return 1;
}

void mtp_matmul_fwd_parts(const mtp_matmul_part *parts, int n, const float *x, int N, int C) {
    MTP_ASSERT(n >= 1 && n <= MTP_GEMM_PARTS);
    mtp_gemm_part g[MTP_GEMM_PARTS];
    int OC = 0;
    for (int q = 0; q < n; q++) {
        g[q] = (mtp_gemm_part){x, parts[q].w, parts[q].out, C, C, parts[q].OC, parts[q].OC};
        OC += parts[q].OC;
    }
    if (matmul_parts(MTP_SPLIT_N, 0, 1, N, OC, C, g, n, 0)) return;
    for (int q = 0; q < n; q++) mtp_matmul_fwd(parts[q].out, x, parts[q].w, N, C, parts[q].OC, 0);
}

void mtp_matmul_bwd_parts(float *dx, const mtp_matmul_grad_part *parts, int n, const float *x, int N,
                          int C, float dx_beta) {
    MTP_ASSERT(n >= 1 && n <= MTP_GEMM_PARTS);
    /* dx: the products share no operand (one job measured no faster) */
    for (int q = 0; dx && q < n; q++) mtp_matmul_bwd(dx, NULL, parts[q].dout, x, parts[q].w, N, C, parts[q].OC, q ? 1 : dx_beta);
    mtp_gemm_part g[MTP_GEMM_PARTS];
    int nw = 0, OC = 0;
    for (int q = 0; q < n; q++) /* the weight gradients wanted, over x packed once */
        if (parts[q].dw) {
            g[nw++] = (mtp_gemm_part){parts[q].dout, x, parts[q].dw, parts[q].OC, C, C, parts[q].OC};
            OC += parts[q].OC;
        }
    if (!nw || matmul_parts(MTP_SPLIT_M, 1, 0, OC, C, N, g, nw, 1)) return;
    for (int q = 0; q < n; q++)
        if (parts[q].dw) mtp_matmul_bwd(NULL, parts[q].dw, parts[q].dout, x, parts[q].w, N, C, parts[q].OC, 0);
}

void mtp_rope_init(mtp_rope *r, int T, int head_dim, float theta) {
    r->T = T;
    r->half = head_dim / 2;
    r->cos = falloc((size_t)T * r->half);
    r->sin = falloc((size_t)T * r->half);
    for (int t = 0; t < T; t++)
        for (int j = 0; j < r->half; j++) {
            /* float like Meta's precompute_freqs_cis, then cos/sin of the float angle */
            float freq = 1.0f / powf(theta, (float)(2 * j) / (float)head_dim);
            float angle = (float)t * freq;
            r->cos[t * r->half + j] = (float)cos((double)angle);
            r->sin[t * r->half + j] = (float)sin((double)angle);
        }
}

void mtp_rope_free(mtp_rope *r) {
    free(r->cos);
    free(r->sin);
}

/* The one rotation: row x (nh heads of hd) at position pos, every pair by +angle (sign 1)
 * or -angle (sign -1, the backward). Training and decoding both call it. */
static void rope_row(float *x, const mtp_rope *r, int pos, int nh, int hd, float sign) {
    int half = hd / 2;
    const float *cs = r->cos + (size_t)pos * half, *sn = r->sin + (size_t)pos * half;
    for (int h = 0; h < nh; h++) {
        float *v = x + (size_t)h * hd;
        for (int j = 0; j < half; j++) {
            float a = v[2 * j], b = v[2 * j + 1], c = cs[j], sj = sign * sn[j];
            v[2 * j] = a * c - b * sj;
            v[2 * j + 1] = a * sj + b * c;
        }
    }
}

static void rope_apply(float *x, const mtp_rope *r, int N, int T, int nh, int hd, float sign) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) rope_row(x + (size_t)n * nh * hd, r, n % T, nh, hd, sign);
}

void mtp_rope_rows(float *x, const mtp_rope *r, const int *pos, int R, int nh, int hd) {
    MTP_ASSERT(hd / 2 == r->half);
    for (int n = 0; n < R; n++) {
        MTP_ASSERT(pos[n] >= 0 && pos[n] < r->T);
        rope_row(x + (size_t)n * nh * hd, r, pos[n], nh, hd, 1.0f);
    }
}

void mtp_rope_fwd(float *x, const mtp_rope *r, int N, int T, int nh, int hd) {
    MTP_ASSERT(T <= r->T && hd / 2 == r->half);
    rope_apply(x, r, N, T, nh, hd, 1.0f);
}

void mtp_rope_bwd(float *dx, const mtp_rope *r, int N, int T, int nh, int hd) {
    MTP_ASSERT(T <= r->T && hd / 2 == r->half);
    rope_apply(dx, r, N, T, nh, hd, -1.0f);
}

/* silu through vexp.h's exp: 16 at a time where the CPU allows, the same bits either way
 * (a call per element to expf cost more than a decoding step's matrix products) */
void mtp_swiglu_fwd(float *g, const float *h1, const float *h3, size_t n) {
    size_t n16 = 0;
#if defined(__AVX512F__)
    n16 = n / 16 * 16;
    MTP_FOR_THREADS(n >= PARALLEL_MIN, for (size_t i = 0; i < n16; i += 16) {
        __m512 a = _mm512_loadu_ps(h1 + i);
        __m512 s = _mm512_div_ps(a, _mm512_add_ps(_mm512_set1_ps(1.0f), vexp16(_mm512_sub_ps(_mm512_setzero_ps(), a))));
        _mm512_storeu_ps(g + i, _mm512_mul_ps(s, _mm512_loadu_ps(h3 + i)));
    });
#endif
    MTP_FOR_THREADS(n - n16 >= PARALLEL_MIN, for (size_t i = n16; i < n; i++) {
        float a = h1[i];
        g[i] = a / (1.0f + vexp1(-a)) * h3[i];
    });
}

/* The backward's arithmetic on one element: s = sigmoid(a) as the forward has it,
 * dh1 = dg h3 s (1 + a (1 - s)), dh3 = dg a s. The 16-lane loop below does the same
 * operations in the same order (no fused multiply-adds), so the bits are the same. */
static inline void swiglu_grad1(float *dh1, float *dh3, float dg, float a, float h3) {
    float s = 1.0f / (1.0f + vexp1(-a));
    *dh1 = dg * h3 * s * (1.0f + a * (1.0f - s));
    *dh3 = dg * a * s;
}

void mtp_swiglu_bwd(float *dh1, float *dh3, const float *dg, const float *h1, const float *h3,
                    size_t n) {
    size_t n16 = 0;
#if defined(__AVX512F__)
    n16 = n / 16 * 16;
    MTP_FOR_THREADS(n >= PARALLEL_MIN, for (size_t i = 0; i < n16; i += 16) {
        __m512 one = _mm512_set1_ps(1.0f), a = _mm512_loadu_ps(h1 + i), g = _mm512_loadu_ps(dg + i);
        __m512 s = _mm512_div_ps(one, _mm512_add_ps(one, vexp16(_mm512_sub_ps(_mm512_setzero_ps(), a))));
        __m512 ds = _mm512_add_ps(one, _mm512_mul_ps(a, _mm512_sub_ps(one, s)));
        _mm512_storeu_ps(dh1 + i, _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(g, _mm512_loadu_ps(h3 + i)), s), ds));
        _mm512_storeu_ps(dh3 + i, _mm512_mul_ps(_mm512_mul_ps(g, a), s));
    });
#endif
    MTP_FOR_THREADS(n - n16 >= PARALLEL_MIN,
                    for (size_t i = n16; i < n; i++) swiglu_grad1(dh1 + i, dh3 + i, dg[i], h1[i], h3[i]););
}

/* memset and memcpy in chunks of PARALLEL_MIN floats, the chunks shared out */
void mtp_zero(float *x, size_t n) {
    size_t k = PARALLEL_MIN;
    MTP_FOR_THREADS(n >= PARALLEL_MIN,
                    for (size_t i = 0; i < n; i += k) memset(x + i, 0, (n - i < k ? n - i : k) * sizeof(float)););
}

void mtp_copy(float *dst, const float *src, size_t n) {
    size_t k = PARALLEL_MIN;
    MTP_FOR_THREADS(n >= PARALLEL_MIN,
                    for (size_t i = 0; i < n; i += k) memcpy(dst + i, src + i, (n - i < k ? n - i : k) * sizeof(float)););
}

void mtp_add(float *y, const float *x, size_t n) {
    MTP_FOR_THREADS(n >= PARALLEL_MIN, for (size_t i = 0; i < n; i++) y[i] += x[i];);
}

/* The first index of the largest of l (n), as a scan keeping each strictly larger value
 * finds it: 0 when l[0] is NaN, other NaNs never chosen. 16 at a time where the CPU allows:
 * the largest value (a max is exact in any order), then the first place it is. */
static int argmax_first(const float *l, int n) {
#if defined(__AVX512F__)
    __m512 m = _mm512_set1_ps(l[0]);
    for (int j0 = 0; j0 < n; j0 += 16) {
        __mmask16 f = (__mmask16)(n - j0 >= 16 ? 0xFFFF : (1u << (n - j0)) - 1);
        m = _mm512_mask_max_ps(m, f, _mm512_maskz_loadu_ps(f, l + j0), m); /* x > m ? x : m */
    }
    __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(m));
    for (int j0 = 0; j0 < n; j0 += 16) {
        __mmask16 f = (__mmask16)(n - j0 >= 16 ? 0xFFFF : (1u << (n - j0)) - 1);
        unsigned hit = _mm512_mask_cmp_ps_mask(f, _mm512_maskz_loadu_ps(f, l + j0), mx, _CMP_EQ_OQ);
        if (hit) return j0 + __builtin_ctz(hit);
    }
    return 0; /* l[0] is NaN */
#else
    int arg = 0;
    for (int j = 1; j < n; j++)
        if (l[j] > l[arg]) arg = j;
    return arg;
#endif
}

void mtp_xent(float *losses, uint8_t *hits, float *logits, const mtp_token *targets, int N, int V,
              float grad_scale) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *l = logits + (size_t)n * V;
        int arg = argmax_first(l, V), t = targets[n];
        float mx = l[arg], lt = l[t], sum;
        if (grad_scale != 0) { /* the exponentials, then one pass: normalised and scaled */
            sum = mtp_exp_sum(l, l, V, mx);
            float k = grad_scale / sum;
            for (int j = 0; j < V; j++) l[j] *= k;
            l[t] -= grad_scale;
        } else {
            sum = mtp_sum_exp(l, V, mx);
        }
        if (losses) losses[n] = logf(sum) + mx - lt;
        if (hits) hits[n] = arg == t;
    }
}
