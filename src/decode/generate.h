/* generate.h: text generation with KV caches, plain or self-speculative (PAPER.md,
 * Inference): the future heads draft, head 1 verifies, in one forward pass.
 *
 * One mechanism serves both speculative modes: each pass verifies a tree of drafted
 * tokens rooted at the token head 1 already chose. Blockwise decoding (Stern et al.
 * 2018) is the tree with one candidate per depth (a chain); tree decoding (Medusa) takes
 * several candidates per depth, every node at depth d having the same candidates, from
 * future head d+1 at the anchor. With temperature 0 the kept path is the one head 1
 * would choose greedily, so the output equals plain greedy decoding exactly. With
 * temperature > 0 drafts are drawn from the heads' own distributions q and accepted by
 * speculative sampling (Leviathan et al. 2023; several candidates per node as in
 * SpecInfer), so every token is distributed exactly as head 1 alone would sample it.
 *
 * Sequences in a batch move together, one pass for all, each accepting its own number
 * of tokens. */
#ifndef MTP_GENERATE_H
#define MTP_GENERATE_H

#include <stdint.h>

#include "decode/decode.h"
#include "model/model.h"
#include "decode/sampler.h"

typedef enum { MTP_SPEC_NONE, MTP_SPEC_BLOCK, MTP_SPEC_TREE } mtp_spec;

#define MTP_MAX_TREE_NODES 128

typedef struct {
    mtp_spec spec;
    int draft;                          /* future heads used (1 + drafted depths); 0: all */
    int tree_width[MTP_MAX_FUTURE - 1]; /* tree: candidates at drafted depth d (head d+1) */
    int tree_depths;                    /* entries in tree_width; 0: the default shape */
    mtp_sampling sampling;
    uint64_t seed;                      /* sequence i draws from its own stream (seed, i) */
    int max_tokens;
    int bf16;                           /* multiply by bf16 copies of the weights (decode.h) */
    const mtp_bf16_weights *bf16_weights; /* those copies, made once by the caller; NULL:
                                             each call packs its own */
} mtp_gen_opts;

typedef struct {
    mtp_token *tokens; /* (max_tokens) generated ids; owned, free() */
    int n;
    int64_t forwards; /* forward passes, the prompt's included */
    int64_t drafted[MTP_MAX_FUTURE]; /* [d]: passes that drafted a token at depth d (1-based) */
    int64_t accepted[MTP_MAX_FUTURE];
    double first_token_s, total_s;
    int hit_max_seq_len; /* stopped early: the model's context is full */
} mtp_gen_result;

/* Called whenever a sequence gains tokens (n >= 1), in order. */
typedef void (*mtp_gen_cb)(int seq, const mtp_token *tokens, int n, void *ctx);

/* The default tree shape for k drafted depths: 2, 1, 1, ... candidates (small: on a CPU
 * every extra row costs compute). */
void mtp_default_tree(int *width, int depths);

/* Generates for n prompts as one batch. Prompts must be non-empty, shorter than the
 * model's max_seq_len, with ids < vocab_size (checked: error naming the prompt). */
int mtp_generate(const mtp_model *m, const mtp_token *const *prompts, const int *lens, int n,
                 const mtp_gen_opts *o, mtp_gen_result *res, mtp_gen_cb cb, void *ctx,
                 mtp_err *err);

#endif
