/* generate.c: mtp_generate (mtp.h) as a loop over a session (session.h): every prompt is
 * added at once, in order (prompt i is slot i and draws from stream (seed, i)), and the
 * session steps until all have ended. */
#include "decode/generate.h"

#include <stdlib.h>

#include "core/util.h"
#include "decode/session.h"

enum { PROMPT_CHUNK = 256 }; /* rows per pass while filling the caches with prompts */
enum { CALIBRATION_REPS = 3 }; /* MTP_SPEC_AUTO: each timed pass, best of 3 */

static int check_prompts(const mtp_model *m, const mtp_token *const *prompts, const int *lens,
                         int n, mtp_err *err) {
    if (n <= 0) return mtp_fail(err, "no prompts");
    for (int s = 0; s < n; s++) {
        if (lens[s] <= 0) return mtp_fail(err, "prompt %d is empty", s + 1);
        if (lens[s] >= m->cfg.max_seq_len)
            return mtp_fail(err, "prompt %d has %d tokens; the model's max_seq_len is %d", s + 1,
                            lens[s], m->cfg.max_seq_len);
        for (int j = 0; j < lens[s]; j++)
            if (prompts[s][j] >= (mtp_token)m->cfg.vocab_size)
                return mtp_fail(err, "prompt %d: token id %u at position %d is out of range "
                                "(vocab_size %d)", s + 1, prompts[s][j], j, m->cfg.vocab_size);
    }
    return 0;
}

int mtp_generate(const mtp_model *m, const mtp_token *const *prompts, const int *lens, int n,
                 const mtp_gen_opts *o, mtp_gen_result *res, mtp_gen_cb cb, void *ctx,
                 mtp_err *err) {
    for (int s = 0; s < n; s++) res[s] = (mtp_gen_result){0}; /* empty on any failure */
    mtp_spec_shape sh;
    if (check_prompts(m, prompts, lens, n, err) || mtp_spec_shape_of(m, o, &sh, err)) return -1;
    /* each sequence's cache holds what it can need: its prompt, its new tokens and a
     * pass's drafts past them (so a tree is never cut short before max_tokens) */
    int *cap = xmalloc(n * sizeof(int));
    for (int s = 0; s < n; s++) {
        int64_t need = (int64_t)lens[s] + (o->max_tokens > 0 ? o->max_tokens : 0) + sh.max_nodes;
        cap[s] = need < m->cfg.max_seq_len ? (int)need : m->cfg.max_seq_len;
    }
    mtp_session *ss;
    int rc = mtp_session_new(&ss, m, n, cap, sh.max_nodes, PROMPT_CHUNK, err);
    free(cap);
    if (rc) return -1;
    if (o->spec == MTP_SPEC_AUTO) mtp_session_calibrate(ss, CALIBRATION_REPS);
    for (int s = 0; s < n; s++) {
        int slot = mtp_session_add(ss, prompts[s], lens[s], o, (uint64_t)s, &res[s], err);
        MTP_ASSERT(slot == s); /* checked above, and the slots fit */
    }
    while (mtp_session_step(ss, cb, ctx, NULL) > 0) continue;
    mtp_session_free(ss);
    return 0;
}
