/* adamw.c: see adamw.h. */
#include "train/adamw.h"

#include <math.h>
#include <stdlib.h>

void mtp_adamw_step(const mtp_adamw *h, const mtp_layout *lay, float *params, const float *grads,
                    float *m, float *v, int64_t t) {
    double bc1 = 1.0 - pow(h->beta1, (double)t), bc2 = 1.0 - pow(h->beta2, (double)t);
    float step_size = (float)(h->lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    size_t at = 0; /* where p's moments start */
    for (int k = 0; k < lay->n_params; k++) {
        const mtp_param *p = &lay->params[k];
        if (p->part & h->frozen) continue;
        float decay = p->ndim == 2 ? 1.0f - h->lr * h->weight_decay : 1.0f;
        float *w = params + p->offset, *mk = m + at, *vk = v + at;
        const float *g = grads + p->offset;
        at += p->numel;
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < p->numel; i++) {
            w[i] *= decay;
            mk[i] = h->beta1 * mk[i] + (1.0f - h->beta1) * g[i];
            vk[i] = h->beta2 * vk[i] + (1.0f - h->beta2) * g[i] * g[i];
            w[i] -= step_size * mk[i] / (sqrtf(vk[i]) / bc2_sqrt + h->eps);
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
