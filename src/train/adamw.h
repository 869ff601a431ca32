/* adamw.h: AdamW with PyTorch's semantics (torch.optim.AdamW): decoupled weight decay
 * p -= lr*wd*p applied before the Adam update, bias-corrected moments, eps added to
 * sqrt(v_hat). Weight decay applies to 2-D tensors only (matrices and embeddings). */
#ifndef MTP_ADAMW_H
#define MTP_ADAMW_H

#include <stdint.h>

#include "model/params.h"

typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
    unsigned frozen; /* MTP_PART_* left alone: no update, no decay, no moments */
} mtp_adamw;

/* One update at step t (1-based) of params using grads * grad_scale (gradient clipping's
 * factor, 1 for none; grads are left as they are). m and v are the moments of the tensors
 * not frozen, packed in layout order (mtp_layout_trained floats each). */
void mtp_adamw_step(const mtp_adamw *h, const mtp_layout *lay, float *params, const float *grads,
                    float grad_scale, float *m, float *v, int64_t t);

/* Global L2 norm of n floats, summed in fixed chunks so the result does not depend on
 * the thread count; mtp_sum_squares is its square before the root. */
double mtp_global_norm(const float *x, size_t n);
double mtp_sum_squares(const float *x, size_t n);

#endif
