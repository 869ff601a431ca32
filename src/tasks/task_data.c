/* task_data.c: see task_data.h. */
#include "tasks/task_data.h"

#include <string.h>

#include "tasks/task_induction.h"
#include "tasks/task_poly.h"
#include "core/util.h"

int mtp_task_vocab(mtp_task task) {
    return task == MTP_TASK_POLY ? POLY_VOCAB : mtp_induction_vocab();
}

mtp_token *mtp_task_train_tokens(mtp_task task, uint64_t seed, int pause, size_t n) {
    MTP_ASSERT(task == MTP_TASK_POLY || pause == 0);
    mtp_token *buf = xmalloc((n ? n : 1) * sizeof(mtp_token));
    mtp_rng rng = {seed};
    mtp_poly_test_index idx = {0};
    if (task == MTP_TASK_POLY) mtp_poly_test_index_init(&idx);
    mtp_poly_sample ps;
    mtp_story st;
    for (size_t have = 0; have < n;) {
        const mtp_token *t = task == MTP_TASK_POLY ? ps.tok : st.tok;
        int len;
        if (task == MTP_TASK_POLY)
            mtp_poly_train_sample(&ps, &rng, &idx), mtp_poly_add_pauses(&ps, pause), len = ps.n_tok;
        else
            mtp_story_draw(&st, &rng, 0), len = st.n;
        for (int i = 0; i < len && have < n; i++) buf[have++] = t[i];
    }
    mtp_poly_test_index_free(&idx);
    return buf;
}

mtp_token *mtp_task_test_tokens(mtp_task task, int per_m, int pause, size_t *n) {
    MTP_ASSERT(task == MTP_TASK_POLY || pause == 0);
    int poly = task == MTP_TASK_POLY, groups = poly ? POLY_TEST_MAX_M : 1;
    size_t cap = (size_t)groups * per_m * (poly ? POLY_MAX_TOKENS : INDUCTION_MAX_TOKENS), have = 0;
    mtp_token *buf = xmalloc(cap * sizeof(mtp_token));
    mtp_poly_sample ps;
    mtp_story st;
    for (int g = 1; g <= groups; g++)
        for (int i = 0; i < per_m; i++) {
            const mtp_token *t = poly ? ps.tok : st.tok;
            int len;
            if (poly)
                mtp_poly_test_sample(&ps, g, i), mtp_poly_add_pauses(&ps, pause), len = ps.n_tok;
            else
                mtp_story_test(&st, i), len = st.n;
            memcpy(buf + have, t, len * sizeof(mtp_token));
            have += len;
        }
    *n = have;
    return buf;
}
