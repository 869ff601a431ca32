/* session.h: decoding as a step function over a changing set of sequences. A session owns
 * a decoder with n_slots caches (the KV pool); a sequence is added into a free slot with its
 * own prompt, options (sampling, spec shape, budget, EOS) and random stream, and every
 * mtp_session_step runs one pass over all active sequences: trees of the decoding ones,
 * up to `chunk` prompt rows of the ones still filling their caches, then the draft pass.
 * Sequences join and leave between steps; mtp_generate (generate.c) is a loop over it.
 *
 * Exactness: a sequence's tokens depend only on the model, its prompt, its options and its
 * stream, never on the other sequences in the passes, the slot it sits in, or where its
 * prompt was cut into chunks: every kernel is batch-invariant (decode.h), and each
 * sequence's random draws come from its own generator seeded by (seed, stream) and are
 * made in the same order whatever the batch. The one thing that could differ, a tree cut
 * short because the cache is full, is ruled out by giving each sequence the room
 * mtp_generate gives it (prompt + max_tokens + one tree, at most max_seq_len).
 *
 * Not thread-safe: one thread adds, steps and removes. */
#ifndef MTP_SESSION_H
#define MTP_SESSION_H

#include "mtp.h"

/* The tree a sequence verifies each pass, from its options: heads run (1 + depths),
 * candidates per drafted depth, and the most nodes a tree can have. */
typedef struct {
    int heads, depths, max_nodes;
    int width[MTP_MAX_FUTURE];
} mtp_spec_shape;

/* Resolves o's spec, draft and tree for model m; refuses (-1, err) widths out of
 * 1..vocab_size and trees past MTP_MAX_TREE_NODES. */
int mtp_spec_shape_of(const mtp_model *m, const mtp_gen_opts *o, mtp_spec_shape *sh, mtp_err *err);

typedef struct mtp_session mtp_session;

/* What the last step did, for cost models (the engine's --spec auto). */
typedef struct {
    int rows;                      /* rows of the verification pass (prompt rows included) */
    int prompt_rows;               /* of which prompt rows */
    double pass_s;                 /* its time */
    int draft_rows[MTP_MAX_FUTURE]; /* [h]: rows future head h ran on in the draft pass */
    double draft_s;                /* the draft pass's time */
} mtp_step_stats;

/* n_slots caches of cap[i] positions (at most max_seq_len); each pass holds up to `chunk`
 * prompt rows plus a tree of up to max_nodes rows per slot. */
int mtp_session_new(mtp_session **s, const mtp_model *m, int n_slots, const int *cap, int max_nodes,
                    int chunk, mtp_err *err);
void mtp_session_free(mtp_session *s); /* NULL is fine */

/* A sequence in a free slot: prompt (copied; non-empty, ids < vocab_size), options o
 * (copied), draws from the stream (o->seed, stream); its tokens go to res (initialised
 * here, owned by the caller: mtp_gen_result_free). Returns the slot, or -1 with err: no
 * free slot, a bad prompt, or a prompt the slot cannot hold. */
int mtp_session_add(mtp_session *s, const mtp_token *prompt, int len, const mtp_gen_opts *o,
                    uint64_t stream, mtp_gen_result *res, mtp_err *err);

/* Frees slot's cache for another sequence (finished or not); its result stays the caller's. */
void mtp_session_remove(mtp_session *s, int slot);

/* 1 when slot's sequence has ended (budget, EOS, the callback, or a full cache). */
int mtp_session_done(const mtp_session *s, int slot);
/* 1 when slot's sequence has its first token (its prompt is in the cache). */
int mtp_session_started(const mtp_session *s, int slot);

/* Greedy sequences only (sampled ones keep their shape, see session.c): from the next
 * draft pass on, draft at most `depth` tokens (0: plain steps). keep_kv: whether the
 * drafting heads' caches are still filled for it; once 0, it stays 0 and the sequence
 * never drafts again (its heads would attend over holes). */
void mtp_session_set_draft(mtp_session *s, int slot, int depth, int keep_kv);

/* One pass over every active sequence that has not ended; cb (may be NULL) receives each
 * sequence's new tokens with its slot as seq. Returns the number of sequences in the pass
 * (0: nothing to do). st (may be NULL) receives what the step did. */
int mtp_session_step(mtp_session *s, mtp_gen_cb cb, void *ctx, mtp_step_stats *st);

/* Makes MTP_SPEC_AUTO work in this session (its slots must all be free): times passes of
 * up to every slot drafting all heads (mtp_session_time, best of reps) for the policy's
 * tables (policy.h); greedy sequences added later with spec MTP_SPEC_AUTO then draft at
 * the policy's depth, and the policy learns from every pass. Without it, AUTO drafts as
 * BLOCK does. Nothing to do for a model without future heads. */
void mtp_session_calibrate(mtp_session *s, int reps);

/* Times (best of `reps`) a verification pass of R rows for R in rows[0..n) (kv heads as
 * drafting fills them), into pass_s[i], and a draft pass of future heads 2..heads+1 on B
 * rows for B in brows[0..nb), into draft_s[i]. Uses slot 0, which must be free; changes no
 * state. */
void mtp_session_time(mtp_session *s, const int *rows, int n, double *pass_s, const int *brows, int nb,
                      int heads, double *draft_s, int reps);

#endif
