/* model.h: a multi-token-prediction transformer (PAPER.md; docs/model.md): a shared trunk,
 * n_future head blocks applied in parallel to the trunk's output z, one shared final
 * norm and unembedding. Forward, backward and the paper's memory-efficient head loop.
 * The model holds only weights; everything sized by (B, T) lives in mtp_acts. */
#ifndef MTP_MODEL_H
#define MTP_MODEL_H

#include <stdint.h>

#include "core/config.h"
#include "kernels/ops.h"
#include "model/params.h"
#include "model/weights.h"

struct mtp_model {
    mtp_config cfg;
    mtp_layout lay;
    float *params;        /* lay.total floats; NULL when opened for decoding only from a
                             bf16 or 8-bit file (mtp_model_load_decode) */
    mtp_weights dec;      /* what decoding multiplies by: views of params, or packed */
    mtp_safetensors file; /* mapped while dec reads from it (the embedding rows) */
    mtp_tokenizer *tok;   /* NULL: the model carries no tokenizer */
    uint8_t *tok_file;    /* the tokenizer's file as it is stored (tensor "tokenizer") */
    size_t tok_bytes;
}; /* typedef in mtp.h */

/* Allocates zeroed weights for cfg (already validated); refuses what memory cannot hold.
 * Decoding reads them as they are (dec: F32 views). */
int mtp_model_init(mtp_model *m, const mtp_config *cfg, mtp_err *err);
/* From now on decoding multiplies by copies of the fp32 weights in type t (packed once;
 * F32: the weights themselves). Needs params; call after training changed them. */
void mtp_model_decode_as(mtp_model *m, mtp_wtype t);
/* Seeded initialisation: matrices N(0, 0.02), residual outputs (wo, w2) scaled by
 * 1/sqrt(2 n_layers), norm weights 1. */
void mtp_model_randomize(mtp_model *m, uint64_t seed);
void mtp_model_free(mtp_model *m);
/* The tokenizer in data (a tokenizer file's bytes), checked to give ids < vocab_size. */
int mtp_tokenizer_fits(mtp_tokenizer **t, const void *data, size_t n, const char *what, int vocab_size,
                       mtp_err *err);
/* The model carries the tokenizer in data (a tokenizer file's bytes, copied; `what` names
 * them in messages); its ids must fit the model's vocabulary. Replaces any it had. */
int mtp_model_attach_tokenizer(mtp_model *m, const void *data, size_t n, const char *what, mtp_err *err);

/* Activations and scratch of one transformer block, each (N = B*T rows). */
typedef struct {
    const float *x;     /* (N,dim) block input, not owned */
    float *xn1, *rstd1; /* (N,dim), (N) attention RMSNorm */
    float *q;           /* (N,dim) after rotary */
    float *k, *v;       /* (N,kv_dim), k after rotary */
    float *lse;         /* (B,n_heads,T) attention log-sum-exp per query (no T x T) */
    float *ao;          /* (N,dim) attention output before wo */
    float *xmid;        /* (N,dim) x + attention */
    float *xn2, *rstd2; /* (N,dim), (N) FFN RMSNorm */
    float *h1, *h3, *g; /* (N,hidden) w1 x, w3 x, silu(h1)*h3 */
    float *out;         /* (N,dim) block output */
} mtp_block_acts;

/* One future head's activations: its block, the shared norm, and its logits. */
typedef struct {
    mtp_block_acts blk;
    float *zn, *zrstd; /* (N,dim), (N) final RMSNorm */
    float *logits;     /* (N,V); after the loss, dlogits in place */
} mtp_head_acts;

/* The arena: everything a step needs, sized once from (config, B, T, schedule). */
typedef struct {
    int B, T, backward;
    mtp_head_schedule schedule;
    unsigned frozen; /* MTP_PART_* whose weight gradients the backward leaves out (0 after init) */
    float *arena;
    size_t arena_floats;
    mtp_rope rope;
    mtp_token *inputs;    /* (N) */
    mtp_token *targets;   /* (n_future, N): head i's target at row n is targets[(i-1)*N + n] */
    float *res;          /* (n_trunk+1, N, dim) residual stream: embedding, each trunk block out */
    mtp_block_acts *trunk;
    mtp_head_acts *heads; /* 1 set (sequential) or n_future sets (naive) */
    int n_head_sets;
    float *losses;       /* (N) per-row loss of the current head */
    uint8_t *hits;       /* (N) */
    /* backward scratch */
    float *dz;           /* (N,dim) gradient into the trunk output, accumulated over heads */
    float *dres;         /* (N,dim) running gradient through the trunk */
    float *dhout;        /* (N,dim) gradient at a head block's output */
    float *dmid, *dxn, *dao, *dq; /* (N,dim) */
    float *dk, *dv;      /* (N,kv_dim) */
    float *dg, *dh1, *dh3; /* (N,hidden) */
} mtp_acts;

/* Refuses (B, T) whose arena this machine's memory cannot hold, naming --batch/--seq. */
int mtp_acts_init(mtp_acts *a, const mtp_config *c, int B, int T, mtp_head_schedule schedule,
                  int backward, mtp_err *err);
void mtp_acts_free(mtp_acts *a);

/* One forward (and, if grads != NULL, backward) pass over a batch.
 * window (B, T + n_future): row b's tokens; inputs are window[b][0..T), head i's targets
 * window[b][i..T+i). Token ids must be < vocab_size (the data layer checks).
 * head_weight (n_future, NULL = all 1): loss = sum_i head_weight[i] * mean CE_i.
 * grads (lay.total) are ACCUMULATED (+=) with the gradient of grad_scale * loss; the
 * tensors of parts in a->frozen are not touched (their weight-gradient products are
 * skipped; gradients still flow through them to trained parts below). */
void mtp_step(const mtp_model *m, mtp_acts *a, const mtp_token *window, const float *head_weight,
              float *grads, float grad_scale, mtp_head_stats *stats);

#endif
