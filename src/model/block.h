/* block.h: the transformer block, written once. Training (model.c, all B*T positions at
 * once) and decoding (decode/decode.c, a few rows against a KV cache) run this same
 * recipe and differ only in how they multiply, rotate, keep keys and values, and attend:
 * an architecture change (a norm, a bias, another rope) is made here, in one place.
 *
 *   x -> xmid = x + wo(Attention(rope(wq xn1), rope(wk xn1), wv xn1)),  xn1 = RMSNorm(x)
 *   xmid -> out = xmid + w2(silu(w1 xn2) * w3 xn2),                     xn2 = RMSNorm(xmid)
 *
 * Buffers come in an mtp_block_acts (model.h); decoding may alias them (xmid = out = x,
 * xn2 = xn1, g = h1): every step reads only what earlier steps wrote. */
#ifndef MTP_BLOCK_H
#define MTP_BLOCK_H

#include "model/model.h"

/* How a caller runs the recipe's steps; each gets the impl back (embed it first in a
 * struct of your own to carry context). R is the number of rows. */
typedef struct mtp_block_impl {
    const mtp_config *cfg;
    const float *attn_norm, *ffn_norm; /* (dim) the block's norms; matmul has its matrices */
    /* out (R, OC) = beta * out + x (R, C) @ W^T for the block's matrix `which` (OC, C) */
    void (*matmul)(const struct mtp_block_impl *im, float *out, const float *x,
                   mtp_block_matrix which, int R, int C, int OC, float beta);
    /* outs[i] (R, mtp_block_rows(which[i])) = x (R, C) @ W_i^T for n (2 or 3) of the
     * block's matrices over one input: q, k, v or k, v of xn1; h1, h3 of xn2 */
    void (*matmul_parts)(const struct mtp_block_impl *im, float *const outs[], const float *x,
                         const mtp_block_matrix which[], int n, int R, int C);
    /* x (R, n_heads * head_dim) rotated in place at the rows' positions */
    void (*rope)(const struct mtp_block_impl *im, float *x, int R, int n_heads);
    /* the rows' keys (rotated) and values (R, kv_dim) are final: keep them (a cache) or not */
    void (*keep_kv)(const struct mtp_block_impl *im, const float *k, const float *v, int R);
    /* ao (R, dim) = attention of q (R, dim) over the keys and values the rows may see */
    void (*attend)(const struct mtp_block_impl *im, float *ao, const float *q, const float *k,
                   const float *v, int R);
} mtp_block_impl;

static inline const float *mtp_block_weight(const mtp_block_ptrs *w, mtp_block_matrix which) {
    const float *m[] = {w->wq, w->wk, w->wv, w->wo, w->w1, w->w2, w->w3};
    return m[which];
}

/* the output rows of the block's matrix `which` (its OC) */
static inline int mtp_block_rows(const mtp_config *c, mtp_block_matrix which) {
    return which == MTP_WK || which == MTP_WV ? mtp_kv_dim(c) : which == MTP_W1 || which == MTP_W3 ? c->hidden_dim : c->dim;
}

/* The attention's inputs: xn1 = RMSNorm(x), then k, v; keep_kv receives them. */
void mtp_block_kv(const mtp_block_impl *im, mtp_block_acts *b, int R);
/* The whole block: out = block(x). have_kv: k and v were made by mtp_block_kv already
 * (and kept), so only xn1 is recomputed. */
void mtp_block_forward(const mtp_block_impl *im, mtp_block_acts *b, int R, int have_kv);

#endif
