/* ops_ref.c: reference kernels (ops_ref.h). Written for obviousness, not speed. */
#include "oracle/ops_ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "kernels/bf16.h"

void mtp_embedding_fwd_ref(float *out, const mtp_token *tokens, const float *wte, int N, int C) {
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) out[(size_t)n * C + c] = wte[(size_t)tokens[n] * C + c];
}

void mtp_embedding_bwd_ref(float *dwte, const float *dout, const mtp_token *tokens, int N, int C) {
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) dwte[(size_t)tokens[n] * C + c] += dout[(size_t)n * C + c];
}

void mtp_rmsnorm_fwd_ref(float *out, float *rstd, const float *x, const float *w, int N, int C,
                         float eps) {
    for (int n = 0; n < N; n++) {
        double ss = 0;
        for (int c = 0; c < C; c++) ss += (double)x[n * C + c] * x[n * C + c];
        double r = 1.0 / sqrt(ss / C + eps);
        rstd[n] = (float)r;
        for (int c = 0; c < C; c++) out[n * C + c] = (float)(x[n * C + c] * r * w[c]);
    }
}

void mtp_rmsnorm_bwd_ref(float *dx, float *dw, const float *dout, const float *dres, const float *x,
                         const float *w, const float *rstd, int N, int C) {
    for (int n = 0; n < N; n++) {
        double r = rstd[n], dot = 0;
        for (int c = 0; c < C; c++) dot += (double)dout[n * C + c] * w[c] * x[n * C + c];
        for (int c = 0; c < C; c++) {
            double res = dres ? dres[n * C + c] : 0;
            dx[n * C + c] = (float)(res + r * dout[n * C + c] * w[c] - dot * r * r * r / C * x[n * C + c]);
            if (dw) dw[c] += (float)((double)dout[n * C + c] * x[n * C + c] * r);
        }
    }
}

void mtp_matmul_fwd_ref(float *out, const float *x, const float *w, int N, int C, int OC,
                        float beta) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = beta == 0 ? 0 : (double)beta * out[(size_t)n * OC + o];
            for (int c = 0; c < C; c++) s += (double)x[(size_t)n * C + c] * w[(size_t)o * C + c];
            out[(size_t)n * OC + o] = (float)s;
        }
}

/* an input of the bf16 product as vcvtne2ps2bf16 makes it: subnormals to zero, else nearest even */
static double gemm_in(float v, int bf16) {
    if (!bf16) return v;
    if (fpclassify(v) == FP_SUBNORMAL) v = copysignf(0.0f, v);
    return mtp_bf16_value(mtp_bf16_round(v));
}

void mtp_gemm_ref(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                  const float *B, int ldb, float beta, float *C, int ldc, int bf16) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) {
                float a = transA ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                float b = transB ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                s += gemm_in(a, bf16) * gemm_in(b, bf16);
            }
            float *c = C + (size_t)i * ldc + j;
            *c = (float)(alpha * s + (beta == 0 ? 0 : (double)beta * *c));
        }
}

void mtp_matmul_bwd_ref(float *dx, float *dw, const float *dout, const float *x, const float *w,
                        int N, int C, int OC, float dx_beta) {
    for (int n = 0; n < N && dx; n++)
        for (int c = 0; c < C; c++) {
            double s = dx_beta == 0 ? 0 : (double)dx_beta * dx[(size_t)n * C + c];
            for (int o = 0; o < OC; o++) s += (double)dout[(size_t)n * OC + o] * w[(size_t)o * C + c];
            dx[(size_t)n * C + c] = (float)s;
        }
    for (int o = 0; o < OC; o++)
        for (int c = 0; c < C; c++) {
            double s = 0;
            for (int n = 0; n < N; n++) s += (double)dout[(size_t)n * OC + o] * x[(size_t)n * C + c];
            dw[(size_t)o * C + c] += (float)s;
        }
}

static void rope_ref(float *x, int N, int T, int nh, int hd, float theta, int sign) {
    for (int n = 0; n < N; n++)
        for (int h = 0; h < nh; h++)
            for (int j = 0; j < hd / 2; j++) {
                float freq = 1.0f / powf(theta, (float)(2 * j) / (float)hd);
                double angle = sign * (double)((float)(n % T) * freq);
                float *v = x + (size_t)n * nh * hd + h * hd + 2 * j;
                double a = v[0], b = v[1];
                v[0] = (float)(a * cos(angle) - b * sin(angle));
                v[1] = (float)(a * sin(angle) + b * cos(angle));
            }
}

void mtp_rope_fwd_ref(float *x, int N, int T, int nh, int hd, float theta) {
    rope_ref(x, N, T, nh, hd, theta, 1);
}

void mtp_rope_bwd_ref(float *dx, int N, int T, int nh, int hd, float theta) {
    rope_ref(dx, N, T, nh, hd, theta, -1);
}

/* Row i of (b, h)'s probabilities in double, p[0..i], from the scores; returns their
 * log-sum-exp. Both references recompute them: the kernel keeps no (T, T) block either. */
static double attention_probs_ref(double *p, const float *q, const float *k, int b, int h, int i,
                                  int T, int H, int Hkv, int hd) {
    int g = h / (H / Hkv);
    const float *qi = q + ((size_t)(b * T + i) * H + h) * hd;
    double mx = -INFINITY, sum = 0;
    for (int j = 0; j <= i; j++) {
        const float *kj = k + ((size_t)(b * T + j) * Hkv + g) * hd;
        double dot = 0;
        for (int d = 0; d < hd; d++) dot += (double)qi[d] * kj[d];
        p[j] = dot / sqrt(hd);
        mx = p[j] > mx ? p[j] : mx;
    }
    for (int j = 0; j <= i; j++) sum += p[j] = exp(p[j] - mx);
    for (int j = 0; j <= i; j++) p[j] /= sum;
    return mx + log(sum);
}

void mtp_attention_fwd_ref(float *out, float *lse, const float *q, const float *k,
                           const float *v, int B, int T, int H, int Hkv, int hd) {
    double *p = xmalloc((size_t)T * sizeof(double));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            int g = h / (H / Hkv);
            for (int i = 0; i < T; i++) {
                lse[((size_t)b * H + h) * T + i] = (float)attention_probs_ref(p, q, k, b, h, i, T, H, Hkv, hd);
                for (int d = 0; d < hd; d++) {
                    double o = 0;
                    for (int j = 0; j <= i; j++) o += p[j] * v[((size_t)(b * T + j) * Hkv + g) * hd + d];
                    out[((size_t)(b * T + i) * H + h) * hd + d] = (float)o;
                }
            }
        }
    free(p);
}

void mtp_attention_bwd_ref(float *dq, float *dk, float *dv, const float *dout, const float *q,
                           const float *k, const float *v, int B, int T, int H, int Hkv, int hd) {
    double scale = 1.0 / sqrt(hd), *p = xmalloc((size_t)T * 2 * sizeof(double)), *dp = p + T;
    memset(dq, 0, (size_t)B * T * H * hd * sizeof(float)); /* written, as the kernel's */
    memset(dk, 0, (size_t)B * T * Hkv * hd * sizeof(float));
    memset(dv, 0, (size_t)B * T * Hkv * hd * sizeof(float));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            int g = h / (H / Hkv);
            for (int i = 0; i < T; i++) {
                attention_probs_ref(p, q, k, b, h, i, T, H, Hkv, hd);
                const float *doi = dout + ((size_t)(b * T + i) * H + h) * hd;
                const float *qi = q + ((size_t)(b * T + i) * H + h) * hd;
                double dot = 0;
                for (int j = 0; j <= i; j++) {
                    const float *vj = v + ((size_t)(b * T + j) * Hkv + g) * hd;
                    dp[j] = 0;
                    for (int d = 0; d < hd; d++) dp[j] += (double)doi[d] * vj[d];
                    dot += p[j] * dp[j];
                }
                for (int j = 0; j <= i; j++) {
                    double ds = p[j] * (dp[j] - dot) * scale;
                    size_t kj = ((size_t)(b * T + j) * Hkv + g) * hd;
                    for (int d = 0; d < hd; d++) {
                        dv[kj + d] += (float)(p[j] * doi[d]);
                        dq[((size_t)(b * T + i) * H + h) * hd + d] += (float)(ds * k[kj + d]);
                        dk[kj + d] += (float)(ds * qi[d]);
                    }
                }
            }
        }
    free(p);
}

void mtp_swiglu_fwd_ref(float *g, const float *h1, const float *h3, size_t n) {
    for (size_t i = 0; i < n; i++) g[i] = (float)(h1[i] / (1.0 + exp(-(double)h1[i])) * h3[i]);
}

void mtp_swiglu_bwd_ref(float *dh1, float *dh3, const float *dg, const float *h1,
                        const float *h3, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double a = h1[i], s = 1.0 / (1.0 + exp(-a));
        dh1[i] = (float)(dg[i] * h3[i] * (s + a * s * (1 - s)));
        dh3[i] = (float)(dg[i] * a * s);
    }
}

void mtp_xent_ref(float *losses, uint8_t *hits, float *logits, const mtp_token *targets, int N,
                  int V, float grad_scale) {
    for (int n = 0; n < N; n++) {
        float *l = logits + (size_t)n * V;
        double mx = l[0], sum = 0;
        int arg = 0;
        for (int j = 0; j < V; j++)
            if (l[j] > mx) mx = l[arg = j];
        for (int j = 0; j < V; j++) sum += exp(l[j] - mx);
        int t = targets[n];
        if (losses) losses[n] = (float)(log(sum) + mx - l[t]);
        if (hits) hits[n] = arg == t;
        if (grad_scale != 0)
            for (int j = 0; j < V; j++)
                l[j] = (float)((exp(l[j] - mx) / sum - (j == t)) * grad_scale);
    }
}

void mtp_attend_row_ref(float *out, const float *q, const float *k, const float *v,
                        const int *idx, int n, size_t stride, int hd, float scale) {
    double *p = xmalloc((size_t)n * sizeof(double)), mx = -INFINITY, sum = 0;
    for (int j = 0; j < n; j++) {
        double s = 0;
        for (int e = 0; e < hd; e++) s += (double)q[e] * k[(size_t)idx[j] * stride + e];
        p[j] = s * scale;
        mx = p[j] > mx ? p[j] : mx;
    }
    for (int j = 0; j < n; j++) sum += p[j] = exp(p[j] - mx);
    for (int e = 0; e < hd; e++) {
        double o = 0;
        for (int j = 0; j < n; j++) o += p[j] / sum * v[(size_t)idx[j] * stride + e];
        out[e] = (float)o;
    }
    free(p);
}
