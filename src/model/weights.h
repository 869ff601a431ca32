/* weights.h: a model's weights as decoding reads them: each matrix an mtp_wmat (F32 view,
 * or BF16 / Q8 packed once; kernels/wmat.h), the norms as floats, the embedding as rows
 * read in place. Made from a model's fp32 parameters (mtp_weights_from_params), or from a
 * model file's own bf16 or 8-bit tensors with no fp32 copy (mtp_weights_from_file). */
#ifndef MTP_WEIGHTS_H
#define MTP_WEIGHTS_H

#include "formats/safetensors.h"
#include "kernels/wmat.h"
#include "model/params.h"

/* A block's matrices, in this order everywhere (the recipe in block.h names them). */
typedef enum { MTP_WQ, MTP_WK, MTP_WV, MTP_WO, MTP_W1, MTP_W2, MTP_W3, MTP_BLOCK_MATRICES } mtp_block_matrix;

typedef struct {
    mtp_wmat mat[MTP_BLOCK_MATRICES];
    const float *attn_norm, *ffn_norm; /* (dim) */
} mtp_wblock;

typedef struct {
    mtp_wtype type;      /* of the matrices */
    int n_blocks;
    mtp_wblock *blocks;  /* trunk, then the future heads (params.h's order) */
    mtp_wrows emb;       /* token embedding rows */
    const float *norm;   /* (dim) the shared final norm */
    mtp_wmat out;        /* the shared unembedding (vocab, dim) */
    float *owned;        /* floats copied out of a file: the norms, F32 matrices */
    void *owned_rows;    /* embedding rows made here (mtp_weights_random) */
} mtp_weights;

/* Views of params (F32), or copies packed from them (BF16, Q8). params must outlive w. */
void mtp_weights_from_params(mtp_weights *w, const mtp_layout *lay, const mtp_config *c,
                             const float *params, mtp_wtype t);
/* The weights of an open model file (mtp_check_params passed) in the file's own number
 * types: BF16 and Q8 matrices packed from its map, F32 ones and the norms copied, the
 * embedding read in place (st must stay open while w lives). type: the output matrix's. */
void mtp_weights_from_file(mtp_weights *w, const mtp_safetensors *st, const mtp_layout *lay,
                           const mtp_config *c);
/* Random weights straight in type t for benchmarks at sizes whose fp32 copy would not fit:
 * uniform with the spread of N(0, 0.02), norms 1; BF16 and Q8 hold one matrix in fp32 at
 * a time. */
void mtp_weights_random(mtp_weights *w, const mtp_layout *lay, const mtp_config *c, mtp_wtype t,
                        uint64_t seed);
void mtp_weights_free(mtp_weights *w);

size_t mtp_wblock_bytes(const mtp_wblock *b); /* what running the block reads */

#endif
