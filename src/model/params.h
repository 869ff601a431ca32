/* params.h: the one table of parameters (name, shape, offset) that drives allocation,
 * checkpoint tensor names, the optimizer and the gradients, so they cannot disagree.
 * Parameters, gradients and optimizer moments are flat float buffers with this layout.
 *
 * Block order in the flat buffer: trunk blocks 0..n_trunk-1, then future heads 1..n
 * (block n_trunk + i - 1 is head i). Tensor names follow Meta's llama layout:
 * trunk block l is "layers.l", head 1 is "layers.{n_trunk}", head i>1 is
 * "extra_heads.{i-2}". */
#ifndef MTP_PARAMS_H
#define MTP_PARAMS_H

#include <stddef.h>

#include "core/config.h"

typedef struct {
    char name[80];
    int ndim;          /* 1 or 2 */
    size_t shape[2];   /* PyTorch Linear layout: (out, in) */
    size_t offset;     /* in floats, into the flat buffer */
    size_t numel;
    unsigned part;     /* the MTP_PART_* it belongs to (what --freeze names) */
} mtp_param;

/* Offsets (in floats) of one transformer block's tensors. */
typedef struct {
    size_t attn_norm, wq, wk, wv, wo, ffn_norm, w1, w2, w3;
} mtp_block_offsets;

typedef struct {
    mtp_param *params;
    int n_params;
    size_t total;               /* floats */
    size_t tok_emb, norm, output;
    mtp_block_offsets *blocks;  /* n_layers: trunk then future heads */
    int n_blocks;
} mtp_layout;

void mtp_layout_init(mtp_layout *lay, const mtp_config *c);
void mtp_layout_free(mtp_layout *lay);
const mtp_param *mtp_layout_find(const mtp_layout *lay, const char *name);
/* Floats in the tensors of parts not in `frozen` (what AdamW keeps moments for). */
size_t mtp_layout_trained(const mtp_layout *lay, unsigned frozen);

/* Pointers to one block's tensors inside any flat buffer with this layout. */
typedef struct {
    float *attn_norm; /* (dim) */
    float *wq;        /* (dim, dim) */
    float *wk, *wv;   /* (kv_dim, dim) */
    float *wo;        /* (dim, dim) */
    float *ffn_norm;  /* (dim) */
    float *w1, *w3;   /* (hidden, dim) */
    float *w2;        /* (dim, hidden) */
} mtp_block_ptrs;

mtp_block_ptrs mtp_block_at(const mtp_layout *lay, float *base, int block);

mtp_param_counts mtp_count_params(const mtp_layout *lay, const mtp_config *c);

#endif
