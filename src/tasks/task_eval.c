/* task_eval.c: see task_eval.h. */
#include "tasks/task_eval.h"

#include <stdlib.h>
#include <string.h>

#include "decode/decode.h"
#include "decode/generate.h"
#include "decode/sampler.h"
#include "tasks/task_induction.h"

enum { EVAL_BATCH = 100 };

int mtp_poly_eval(const mtp_model *m, int m_max, int n_per_m, int pause, double *acc,
                  mtp_err *err) {
    if (m->cfg.vocab_size < POLY_VOCAB)
        return mtp_fail(err, "the model's vocab_size %d is smaller than the poly task's %d",
                        m->cfg.vocab_size, POLY_VOCAB);
    mtp_poly_sample *s = xmalloc(EVAL_BATCH * sizeof *s);
    const mtp_token *prompts[EVAL_BATCH];
    int lens[EVAL_BATCH];
    mtp_gen_result res[EVAL_BATCH];
    mtp_gen_opts o = {.spec = MTP_SPEC_NONE, .max_tokens = 5, .sampling = {0, 0, 1}, .eos = -1};
    int rc = 0;
    for (int mm = 1; mm <= m_max && rc == 0; mm++) {
        int correct = 0;
        for (int first = 0; first < n_per_m && rc == 0; first += EVAL_BATCH) {
            int n = n_per_m - first < EVAL_BATCH ? n_per_m - first : EVAL_BATCH;
            for (int i = 0; i < n; i++) {
                mtp_poly_test_sample(&s[i], mm, first + i);
                mtp_poly_add_pauses(&s[i], pause);
                prompts[i] = s[i].tok;
                lens[i] = s[i].n_prompt;
            }
            rc = mtp_generate(m, prompts, lens, n, &o, res, NULL, NULL, err);
            for (int i = 0; i < n && rc == 0; i++) {
                int ok = res[i].n == 5;
                for (int k = 0; k < 5 && ok; k++) ok = res[i].tokens[k] == s[i].answer.c[k];
                correct += ok;
                free(res[i].tokens);
            }
        }
        acc[mm] = (double)correct / n_per_m;
    }
    free(s);
    return rc;
}

int mtp_induction_eval(const mtp_model *m, int n, double *acc, mtp_err *err) {
    int V = m->cfg.vocab_size;
    if (V < mtp_induction_vocab())
        return mtp_fail(err, "the model's vocab_size %d is smaller than the induction task's %d",
                        V, mtp_induction_vocab());
    if (m->cfg.max_seq_len < INDUCTION_MAX_TOKENS)
        return mtp_fail(err, "induction stories need max_seq_len >= %d", INDUCTION_MAX_TOKENS);
    mtp_decoder d;
    int cap = INDUCTION_MAX_TOKENS;
    if (mtp_decoder_init(&d, m, 1, &cap, INDUCTION_MAX_TOKENS, err)) return -1;
    float *logits = falloc((size_t)INDUCTION_MAX_TOKENS * V);
    mtp_row rows[INDUCTION_MAX_TOKENS];
    mtp_story s;
    long correct = 0, total = 0;
    for (int i = 0; i < n; i++) {
        mtp_story_test(&s, i);
        int want[INDUCTION_MAX_TOKENS] = {0}, k = 0;
        for (int j = 0; j < s.n_scored; j++) want[s.scored[j]] = 1;
        for (int p = 0; p < s.n; p++) rows[p] = (mtp_row){0, p, p, p - 1, want[p] ? k++ : -1, s.tok[p]};
        d.len[0] = 0;
        mtp_decoder_forward(&d, rows, s.n, 1, logits);
        for (int p = 0, j = 0; p < s.n; p++)
            if (want[p]) correct += (mtp_token)mtp_argmax(logits + (size_t)j++ * V, V) == s.tok[p + 1];
        total += s.n_scored;
    }
    *acc = total ? (double)correct / total : 0;
    free(logits);
    mtp_decoder_free(&d);
    return 0;
}
