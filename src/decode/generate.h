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
 * of tokens. The functions (mtp_generate, mtp_default_tree) are declared in mtp.h. */
#ifndef MTP_GENERATE_H
#define MTP_GENERATE_H

#include <stdint.h>

#include "decode/decode.h"
#include "model/model.h"
#include "decode/sampler.h"

#endif
