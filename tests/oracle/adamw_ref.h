/* adamw_ref.h: the plain AdamW update, the oracle for tests/test_adamw.c: one element at a
 * time in float, torch.optim.AdamW's operations in the order adamw.c does them, after the
 * gradients are scaled in place as torch.nn.utils.clip_grad_norm_ scales them. */
#ifndef MTP_ADAMW_REF_H
#define MTP_ADAMW_REF_H

#include "train/adamw.h"

/* grads are scaled in place by grad_scale first (the library leaves them as they are) */
void mtp_adamw_step_ref(const mtp_adamw *h, const mtp_layout *lay, float *params, float *grads,
                        float grad_scale, float *m, float *v, int64_t t);

#endif
