/* adamw.c: see adamw.h. The update is element-wise: on AVX-512, 16 elements at a time
 * (masked at a tensor's end) with the scalar version's operations in its order (no fused
 * multiply-adds, correctly rounded square roots and divisions), so both give the same
 * bits; the elements are shared out in blocks of 16 whatever the thread count. */
#include "train/adamw.h"

#include <math.h>
#include <stdlib.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

/* One tensor's constants for the update */
typedef struct {
    float decay, beta1, beta2, one_b1, one_b2, step_size, bc2_sqrt, eps, grad_scale;
} adamw_k;

/* elements [i, i + n) of a tensor, n <= 16 */
#if defined(__AVX512F__)
static inline void adamw_block(float *w, float *m, float *v, const float *g, size_t i, int n,
                               const adamw_k *k) {
    __mmask16 f = (__mmask16)(n >= 16 ? 0xFFFF : (1u << n) - 1);
    __m512 gi = _mm512_mul_ps(_mm512_maskz_loadu_ps(f, g + i), _mm512_set1_ps(k->grad_scale));
    __m512 wi = _mm512_mul_ps(_mm512_maskz_loadu_ps(f, w + i), _mm512_set1_ps(k->decay));
    __m512 mi = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(k->beta1), _mm512_maskz_loadu_ps(f, m + i)),
                              _mm512_mul_ps(_mm512_set1_ps(k->one_b1), gi));
    __m512 vi = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(k->beta2), _mm512_maskz_loadu_ps(f, v + i)),
                              _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(k->one_b2), gi), gi));
    __m512 den = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(vi), _mm512_set1_ps(k->bc2_sqrt)),
                               _mm512_set1_ps(k->eps));
    wi = _mm512_sub_ps(wi, _mm512_div_ps(_mm512_mul_ps(_mm512_set1_ps(k->step_size), mi), den));
    _mm512_mask_storeu_ps(w + i, f, wi);
    _mm512_mask_storeu_ps(m + i, f, mi);
    _mm512_mask_storeu_ps(v + i, f, vi);
}
#else
static inline void adamw_block(float *w, float *m, float *v, const float *g, size_t i, int n,
                               const adamw_k *k) {
    for (size_t j = i; j < i + (size_t)n; j++) {
        float gj = g[j] * k->grad_scale;
        w[j] *= k->decay;
        m[j] = k->beta1 * m[j] + k->one_b1 * gj;
        v[j] = k->beta2 * v[j] + k->one_b2 * gj * gj;
        w[j] -= k->step_size * m[j] / (sqrtf(v[j]) / k->bc2_sqrt + k->eps);
    }
}
#endif

void mtp_adamw_step(const mtp_adamw *h, const mtp_layout *lay, float *params, const float *grads,
                    float grad_scale, float *m, float *v, int64_t t) {
    double bc1 = 1.0 - pow(h->beta1, (double)t), bc2 = 1.0 - pow(h->beta2, (double)t);
    adamw_k k = {1.0f, h->beta1, h->beta2, 1.0f - h->beta1, 1.0f - h->beta2, (float)(h->lr / bc1),
                 (float)sqrt(bc2), h->eps, grad_scale};
    float decay2 = 1.0f - h->lr * h->weight_decay;
    /* one parallel region for every tensor; the loops need no barrier between them */
#pragma omp parallel firstprivate(k)
    {
        size_t at = 0; /* where p's moments start */
        for (int p = 0; p < lay->n_params; p++) {
            const mtp_param *q = &lay->params[p];
            if (q->part & h->frozen) continue;
            k.decay = q->ndim == 2 ? decay2 : 1.0f;
            float *w = params + q->offset, *mk = m + at, *vk = v + at;
            const float *g = grads + q->offset;
            size_t n = q->numel;
            at += n;
#pragma omp for schedule(static) nowait
            for (size_t i = 0; i < n; i += 16) adamw_block(w, mk, vk, g, i, n - i < 16 ? (int)(n - i) : 16, &k);
        }
    }
}

double mtp_sum_squares(const float *x, size_t n) {
    enum { CHUNK = 1 << 16 };
    size_t nchunks = (n + CHUNK - 1) / CHUNK;
    double *part = calloc(nchunks ? nchunks : 1, sizeof(double));
    MTP_ASSERT(part);
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < nchunks; c++) {
        double s = 0;
        size_t end = (c + 1) * CHUNK < n ? (c + 1) * CHUNK : n;
        for (size_t i = c * CHUNK; i < end; i++) s += (double)x[i] * x[i];
        part[c] = s;
    }
    double total = 0;
    for (size_t c = 0; c < nchunks; c++) total += part[c];
    free(part);
    return total;
}

double mtp_global_norm(const float *x, size_t n) { return sqrt(mtp_sum_squares(x, n)); }
