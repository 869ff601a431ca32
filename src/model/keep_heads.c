/* keep_heads.c: mtp_model_keep_heads (mtp.h), the paper's fine-tuning with n' < n heads.
 * The tensor names depend on n_trunk only (params.h: head 1 is layers.{n_trunk}, head
 * i > 1 is extra_heads.{i-2}), and n_trunk = n_layers - n_future stays, so every tensor of
 * the smaller model has the same name, and shape, in the larger one. */
#include <string.h>

#include "model/model.h"

int mtp_model_keep_heads(mtp_model *m, int k, mtp_err *err) {
    int n = m->cfg.n_future;
    if (k < 1 || k > n)
        return mtp_fail(err, "cannot keep %d future heads of a model with %d (1 to %d)", k, n, n);
    if (!m->params) return mtp_fail(err, "keeping future heads needs fp32 weights: this model was opened for decoding only");
    if (k == n) return 0;
    mtp_config cfg = m->cfg;
    cfg.n_future = k;
    cfg.n_layers -= n - k;
    mtp_model kept;
    if (mtp_model_init(&kept, &cfg, err)) return -1;
    for (int i = 0; i < kept.lay.n_params; i++) {
        const mtp_param *p = &kept.lay.params[i], *from = mtp_layout_find(&m->lay, p->name);
        MTP_ASSERT(from && from->numel == p->numel);
        memcpy(kept.params + p->offset, m->params + from->offset, p->numel * sizeof(float));
    }
    if (m->dec.type != MTP_F32) mtp_model_decode_as(&kept, m->dec.type);
    kept.tok = m->tok, kept.tok_file = m->tok_file, kept.tok_bytes = m->tok_bytes;
    m->tok = NULL, m->tok_file = NULL;
    mtp_model_free(m);
    *m = kept;
    return 0;
}
