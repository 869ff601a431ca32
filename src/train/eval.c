/* eval.c: see eval.h. Forward only: the arena holds no backward buffers. */
#include "train/eval.h"

#include <stdlib.h>
#include <string.h>

int mtp_eval(const mtp_model *m, const mtp_shardset *s, int B, int T, int batches,
             mtp_head_stats *out, mtp_err *err) {
    const mtp_config *c = &m->cfg;
    if (B < 1 || B > 65536 || T < 1 || batches < 1)
        return mtp_fail(err, "--batch %d, --seq %d, --batches %d: each must be at least 1", B, T,
                        batches);
    if (T > c->max_seq_len)
        return mtp_fail(err, "--seq %d exceeds the model's max_seq_len %d", T, c->max_seq_len);
    mtp_acts a;
    if (mtp_acts_init(&a, c, B, T, MTP_HEADS_SEQUENTIAL, 0, err)) return -1;
    mtp_batcher bt;
    mtp_batcher_init(&bt, s, B, T, c->n_future, 0, 0);
    mtp_token *window = xmalloc((size_t)B * (T + c->n_future) * sizeof(mtp_token));
    memset(out, 0, sizeof *out);
    for (int k = 0; k < batches; k++) {
        mtp_head_stats hs;
        mtp_batcher_get(&bt, k, window);
        mtp_step(m, &a, window, NULL, NULL, 0, &hs);
        for (int i = 0; i < c->n_future; i++) {
            out->loss[i] += hs.loss[i] / batches;
            out->acc[i] += hs.acc[i] / batches;
        }
    }
    free(window);
    mtp_batcher_free(&bt);
    mtp_acts_free(&a);
    return 0;
}
