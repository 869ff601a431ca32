/* adamw_ref.c: see adamw_ref.h. Written for obviousness, not speed. */
#include "oracle/adamw_ref.h"

#include <math.h>

void mtp_adamw_step_ref(const mtp_adamw *h, const mtp_layout *lay, float *params, float *grads,
                        float grad_scale, float *m, float *v, int64_t t) {
    double bc1 = 1.0 - pow(h->beta1, (double)t), bc2 = 1.0 - pow(h->beta2, (double)t);
    float step_size = (float)(h->lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    size_t at = 0;
    for (int k = 0; k < lay->n_params; k++) {
        const mtp_param *p = &lay->params[k];
        if (p->part & h->frozen) continue;
        float decay = p->ndim == 2 ? 1.0f - h->lr * h->weight_decay : 1.0f;
        float *w = params + p->offset, *mk = m + at, *vk = v + at, *g = grads + p->offset;
        at += p->numel;
        for (size_t i = 0; i < p->numel; i++) {
            g[i] *= grad_scale;
            w[i] *= decay;
            mk[i] = h->beta1 * mk[i] + (1.0f - h->beta1) * g[i];
            vk[i] = h->beta2 * vk[i] + (1.0f - h->beta2) * g[i] * g[i];
            w[i] -= step_size * mk[i] / (sqrtf(vk[i]) / bc2_sqrt + h->eps);
        }
    }
}
