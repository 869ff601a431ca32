/* ops.c: the optimised kernels (ops.h). Matrix products go through mtp_gemm; the rest are
 * OpenMP loops with static schedules, so results are identical run to run for a given
 * thread count (exact resume depends on it). Reductions over rows that feed a weight
 * gradient run over columns in parallel, rows in order, for the same reason. */
#include "ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "backend.h"
#include "util.h"

void mtp_embedding_fwd(float *out, const uint16_t *tokens, const float *wte, int N, int C) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        memcpy(out + (size_t)n * C, wte + (size_t)tokens[n] * C, C * sizeof(float));
}

void mtp_embedding_bwd(float *dwte, const float *dout, const uint16_t *tokens, int N, int C) {
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++)
        for (int n = 0; n < N; n++) dwte[(size_t)tokens[n] * C + c] += dout[(size_t)n * C + c];
}

void mtp_rmsnorm_fwd(float *out, float *rstd, const float *x, const float *w, int N, int C,
                     float eps) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *xr = x + (size_t)n * C;
        float *o = out + (size_t)n * C;
        float ss = 0;
        for (int c = 0; c < C; c++) ss += xr[c] * xr[c];
        float r = 1.0f / sqrtf(ss / C + eps);
        rstd[n] = r;
        for (int c = 0; c < C; c++) o[c] = xr[c] * r * w[c];
    }
}

void mtp_rmsnorm_bwd(float *dx, float *dw, const float *dout, const float *x, const float *w,
                     const float *rstd, int N, int C) {
    /* y = x r w with r = (mean(x^2)+eps)^-1/2:
     * dx = r (dy w) - x r^3 / C * sum(dy w x) ; dw = sum_rows dy x r */
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *xr = x + (size_t)n * C, *g = dout + (size_t)n * C;
        float *d = dx + (size_t)n * C;
        float r = rstd[n], dot = 0;
        for (int c = 0; c < C; c++) dot += g[c] * w[c] * xr[c];
        float k = dot * r * r * r / C;
        for (int c = 0; c < C; c++) d[c] += r * g[c] * w[c] - k * xr[c];
    }
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        float s = 0;
        for (int n = 0; n < N; n++) s += dout[(size_t)n * C + c] * x[(size_t)n * C + c] * rstd[n];
        dw[c] += s;
    }
}

void mtp_matmul_fwd(float *out, const float *x, const float *w, int N, int C, int OC, float beta) {
    mtp_gemm(0, 1, N, OC, C, 1.0f, x, C, w, C, beta, out, OC);
}

void mtp_matmul_bwd(float *dx, float *dw, const float *dout, const float *x, const float *w,
                    int N, int C, int OC) {
    if (dx) mtp_gemm(0, 0, N, C, OC, 1.0f, dout, OC, w, C, 1.0f, dx, C);
    mtp_gemm(1, 0, OC, C, N, 1.0f, dout, OC, x, C, 1.0f, dw, C);
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

/* Rotates every pair by +angle (sign 1) or -angle (sign -1). */
static void rope_apply(float *x, const mtp_rope *r, int N, int T, int nh, int hd, float sign) {
    int half = hd / 2;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        int t = n % T;
        const float *cs = r->cos + (size_t)t * half, *sn = r->sin + (size_t)t * half;
        for (int h = 0; h < nh; h++) {
            float *v = x + (size_t)n * nh * hd + h * hd;
            for (int j = 0; j < half; j++) {
                float a = v[2 * j], b = v[2 * j + 1], c = cs[j], s = sign * sn[j];
                v[2 * j] = a * c - b * s;
                v[2 * j + 1] = a * s + b * c;
            }
        }
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

/* Attention runs one (batch, head) pair per task: small products on the calling thread
 * (mtp_gemm is single-threaded inside a parallel region), masked softmax in between.
 * The product computes the full T x T block; the masked half is overwritten with 0. */
void mtp_attention_fwd(float *out, float *att, const float *q, const float *k, const float *v,
                       int B, int T, int H, int Hkv, int hd) {
    int qs = H * hd, ks = Hkv * hd, group = H / Hkv;
    float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H, g = h / group;
        const float *qb = q + (size_t)b * T * qs + h * hd;
        const float *kb = k + (size_t)b * T * ks + g * hd;
        const float *vb = v + (size_t)b * T * ks + g * hd;
        float *p = att + (size_t)bh * T * T;
        mtp_gemm(0, 1, T, T, hd, scale, qb, qs, kb, ks, 0.0f, p, T);
        for (int i = 0; i < T; i++) {
            float *row = p + (size_t)i * T, mx = -INFINITY, sum = 0;
            for (int j = 0; j <= i; j++) mx = row[j] > mx ? row[j] : mx;
            for (int j = 0; j <= i; j++) sum += row[j] = expf(row[j] - mx);
            float inv = 1.0f / sum;
            for (int j = 0; j <= i; j++) row[j] *= inv;
            for (int j = i + 1; j < T; j++) row[j] = 0;
        }
        mtp_gemm(0, 0, T, hd, T, 1.0f, p, T, vb, ks, 0.0f, out + (size_t)b * T * qs + h * hd, qs);
    }
}

void mtp_attention_bwd(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                       const float *att, const float *q, const float *k, const float *v, int B,
                       int T, int H, int Hkv, int hd) {
    int qs = H * hd, ks = Hkv * hd, group = H / Hkv;
    float scale = 1.0f / sqrtf((float)hd);
    /* one task per (batch, kv head): the query heads sharing it accumulate into dk, dv in order */
#pragma omp parallel for schedule(static)
    for (int bg = 0; bg < B * Hkv; bg++) {
        int b = bg / Hkv, g = bg % Hkv;
        const float *kb = k + (size_t)b * T * ks + g * hd, *vb = v + (size_t)b * T * ks + g * hd;
        float *dkb = dk + (size_t)b * T * ks + g * hd, *dvb = dv + (size_t)b * T * ks + g * hd;
        for (int h = g * group; h < (g + 1) * group; h++) {
            size_t bh = (size_t)b * H + h;
            const float *p = att + bh * T * T, *dob = dout + (size_t)b * T * qs + h * hd;
            const float *qb = q + (size_t)b * T * qs + h * hd;
            float *ds = scratch + bh * T * T;
            mtp_gemm(0, 1, T, T, hd, 1.0f, dob, qs, vb, ks, 0.0f, ds, T); /* dP = dO V^T */
            mtp_gemm(1, 0, T, hd, T, 1.0f, p, T, dob, qs, 1.0f, dvb, ks);  /* dV += P^T dO */
            for (int i = 0; i < T; i++) { /* dS = P * (dP - sum_j P dP) */
                const float *pr = p + (size_t)i * T;
                float *dr = ds + (size_t)i * T, dot = 0;
                for (int j = 0; j <= i; j++) dot += pr[j] * dr[j];
                for (int j = 0; j <= i; j++) dr[j] = pr[j] * (dr[j] - dot);
                for (int j = i + 1; j < T; j++) dr[j] = 0;
            }
            mtp_gemm(0, 0, T, hd, T, scale, ds, T, kb, ks, 1.0f,
                     dq + (size_t)b * T * qs + h * hd, qs);                  /* dQ += s dS K */
            mtp_gemm(1, 0, T, hd, T, scale, ds, T, qb, qs, 1.0f, dkb, ks); /* dK += s dS^T Q */
        }
    }
}

/* The decoding dot product: element i of the vectors goes to lane i % 16 (the tail to
 * lanes 0, 1, ...), each lane accumulates with fused multiply-adds in order, then the
 * lanes are summed. One recipe, AVX-512 or portable C: the result depends only on the
 * two vectors. */
#if defined(__AVX512F__)
float mtp_dot(const float *a, const float *b, int n) {
    __m512 acc = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc);
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc);
    }
    return _mm512_reduce_add_ps(acc);
}
#else
float mtp_dot(const float *a, const float *b, int n) {
    float acc[16] = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++) acc[l] = fmaf(a[i + l], b[i + l], acc[l]);
    for (int l = 0; i < n; i++, l++) acc[l] = fmaf(a[i], b[i], acc[l]);
    float s = 0;
    for (int l = 0; l < 16; l++) s += acc[l];
    return s;
}
#endif

enum { RB = 4, OB = 4 }; /* rows x outputs per register block */

#if defined(__AVX512F__)
/* res[o][r] = x[r] . w[o] for 4 weight rows and nr <= 4 input rows, sharing every load.
 * Lane l of a row's accumulator sums elements l, l+16, ... with fused multiply-adds (the
 * tail through a masked load), then the lanes are reduced; every row count runs this
 * same sequence for each row, so a row's result does not depend on its neighbours. */
static inline __attribute__((always_inline)) void dot_block(float res[OB][RB], const float *const x[RB],
                                                            const float *const w[OB], int C, int nr) {
    __m512 acc[OB][RB];
    for (int o = 0; o < OB; o++)
        for (int r = 0; r < nr; r++) acc[o][r] = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= C; i += 16) {
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
    for (int o = 0; o < OB; o++)
        for (int r = 0; r < nr; r++) res[o][r] = _mm512_reduce_add_ps(acc[o][r]);
}
#else
/* res[o][r] = mtp_dot(x[r], w[o], C) for 4 weight rows and nr <= 4 input rows, sharing
 * every load. Inlined with a constant nr, so each row count gets its own code; all of
 * them follow mtp_dot's recipe, hence the same bits. */
static inline __attribute__((always_inline)) void dot_block(float res[OB][RB], const float *const x[RB],
                                                            const float *const w[OB], int C, int nr) {
    float acc[OB][RB][16] = {{{0}}};
    int i = 0;
    for (; i + 16 <= C; i += 16)
        for (int o = 0; o < OB; o++)
            for (int r = 0; r < nr; r++)
                for (int l = 0; l < 16; l++) acc[o][r][l] = fmaf(x[r][i + l], w[o][i + l], acc[o][r][l]);
    for (int l = 0; i < C; i++, l++)
        for (int o = 0; o < OB; o++)
            for (int r = 0; r < nr; r++) acc[o][r][l] = fmaf(x[r][i], w[o][i], acc[o][r][l]);
    for (int o = 0; o < OB; o++)
        for (int r = 0; r < nr; r++) {
            float s = 0;
            for (int l = 0; l < 16; l++) s += acc[o][r][l];
            res[o][r] = s;
        }
}
#endif

void mtp_matmul_rows(float *out, const float *x, const float *w, int R, int C, int OC, float beta) {
    /* blocks of 4 weight rows split across threads: each weight is read from memory once
     * and used for every input row; a short last block repeats its last weight row */
    int nob = (OC + OB - 1) / OB;
#pragma omp parallel for schedule(static) if (nob >= 16)
    for (int ob = 0; ob < nob; ob++) {
        const float *wp[OB];
        for (int o = 0; o < OB; o++) wp[o] = w + (size_t)(ob * OB + o < OC ? ob * OB + o : OC - 1) * C;
        for (int r0 = 0; r0 < R; r0 += RB) {
            const float *xp[RB];
            int nr = R - r0 < RB ? R - r0 : RB;
            for (int r = 0; r < RB; r++) xp[r] = x + (size_t)(r0 + r < R ? r0 + r : R - 1) * C;
            float res[OB][RB] = {{0}};
            switch (nr) { /* constant row counts: each case compiles to register-resident sums */
            case 1: dot_block(res, xp, wp, C, 1); break;
            case 2: dot_block(res, xp, wp, C, 2); break;
            case 3: dot_block(res, xp, wp, C, 3); break;
            default: dot_block(res, xp, wp, C, 4); break;
            }
            for (int o = 0; o < OB && ob * OB + o < OC; o++)
                for (int r = 0; r < RB && r0 + r < R; r++) {
                    float *dst = out + (size_t)(r0 + r) * OC + ob * OB + o;
                    *dst = beta == 0 ? res[o][r] : *dst + res[o][r];
                }
        }
    }
}

void mtp_rope_rows(float *x, const mtp_rope *r, const int *pos, int R, int nh, int hd) {
    int half = hd / 2;
    for (int n = 0; n < R; n++) {
        MTP_ASSERT(pos[n] >= 0 && pos[n] < r->T);
        const float *cs = r->cos + (size_t)pos[n] * half, *sn = r->sin + (size_t)pos[n] * half;
        for (int h = 0; h < nh; h++) {
            float *v = x + (size_t)n * nh * hd + h * hd;
            for (int j = 0; j < half; j++) {
                float a = v[2 * j], b = v[2 * j + 1];
                v[2 * j] = a * cs[j] - b * sn[j];
                v[2 * j + 1] = a * sn[j] + b * cs[j];
            }
        }
    }
}

void mtp_swiglu_fwd(float *g, const float *h1, const float *h3, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float a = h1[i];
        g[i] = a / (1.0f + expf(-a)) * h3[i];
    }
}

void mtp_swiglu_bwd(float *dh1, float *dh3, const float *dg, const float *h1, const float *h3,
                    size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float a = h1[i], s = 1.0f / (1.0f + expf(-a));
        dh1[i] += dg[i] * h3[i] * s * (1.0f + a * (1.0f - s));
        dh3[i] += dg[i] * a * s;
    }
}

void mtp_xent(float *losses, uint8_t *hits, float *logits, const uint16_t *targets, int N, int V,
              float grad_scale) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *l = logits + (size_t)n * V;
        int arg = 0, t = targets[n];
        for (int j = 1; j < V; j++)
            if (l[j] > l[arg]) arg = j;
        float mx = l[arg], lt = l[t], sum = 0;
        if (grad_scale != 0) {
            /* keep the exponentials: the gradient is one scaling pass away */
            for (int j = 0; j < V; j++) sum += l[j] = expf(l[j] - mx);
            float k = grad_scale / sum;
            for (int j = 0; j < V; j++) l[j] *= k;
            l[t] -= grad_scale;
        } else {
            for (int j = 0; j < V; j++) sum += expf(l[j] - mx);
        }
        if (losses) losses[n] = logf(sum) + mx - lt;
        if (hits) hits[n] = arg == t;
    }
}
