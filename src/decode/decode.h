/* decode.h: KV-cached forward passes for generation. A pass takes any set of new tokens
 * ("rows") from any of the decoder's sequences; each row names its position, the cache
 * slot its keys and values go to, and its parent row in the same pass (or -1: the
 * sequence's committed prefix). A row attends to the committed prefix, then its chain of
 * ancestors, then itself, in that order: a causal block of drafts is a chain, a tree of
 * candidates is a tree, and a plain step is one row.
 *
 * Every block has a cache, trunk and future heads alike: a head is a full transformer
 * layer attending over the whole prefix, so its cache must hold every position even
 * though it only drafts at the last one. But a head's keys and values at a position need
 * only the trunk output there (a norm and two projections), not the head's attention and
 * feed-forward. So a pass runs head 1 fully on every row and only fills the other heads'
 * caches ("kv heads"); once verification has picked the row to draft from, a draft pass
 * runs the drafting heads fully on that one row. Heads a pass does not touch cost nothing
 * (plain decoding runs head 1 only).
 *
 * All kernels are batch-invariant (ops.h), so a row's logits are bit-identical whether it
 * is decoded alone, in a batch, or as part of a speculative verification. */
#ifndef MTP_DECODE_H
#define MTP_DECODE_H

#include <stdint.h>

#include "model/model.h"

typedef struct {
    int seq;        /* which sequence's cache */
    int pos;        /* position (rotary angle; equals the slot once committed) */
    int slot;       /* cache slot for this row's keys and values */
    int parent;     /* earlier row of this pass it follows, or -1 (the committed prefix) */
    int logits;     /* index into the logits output, or -1; the rows that want logits
                       number them 0, 1, ... (each index once) */
    mtp_token token;
} mtp_row;

/* A model's matrices packed for bf16 decoding: made once, shared by any number of
 * decoders (mtp_decoder_use_bf16) while the model lives. */
typedef struct {
    mtp_bf16_matrix wq, wk, wv, wo, w1, w2, w3;
} mtp_bf16_block;

struct mtp_bf16_weights { /* typedef in mtp.h */
    int n_layers;
    mtp_bf16_block *blocks; /* (n_layers) */
    mtp_bf16_matrix out;    /* the unembedding */
};

void mtp_bf16_weights_init(mtp_bf16_weights *w, const mtp_model *m);
void mtp_bf16_weights_free(mtp_bf16_weights *w);

typedef struct {
    const mtp_model *m;
    int n_seq, cap, max_rows;
    int *len;            /* (n_seq) committed prefix: slots [0, len) in position order */
    float *kc, *vc;      /* (n_layers, n_seq, cap, kv_dim), keys after rotary */
    mtp_rope rope;       /* positions 0..cap-1 */
    /* scratch for max_rows rows */
    float *z, *zt, *x, *xn, *q, *k, *v, *ao, *h1, *h3, *zn; /* (R,dim|kv|hidden); zn (R*n,dim) */
    float *rstd;         /* (R) the norms' reciprocal RMS */
    float *scores;       /* (R * n_heads, cap) attention weights */
    int *chain;          /* (R, cap) keys each row attends to, as slots */
    int *nkeys;          /* (R) */
    int *pos;            /* (R) the rows' positions */
    const mtp_bf16_weights *bf16; /* NULL: fp32 weights; else packed copies, not owned */
    mtp_bf16_weights own_bf16;    /* the copies mtp_decoder_use_bf16(d, NULL) made */
    uint16_t *bf16_rows;          /* scratch: rows rounded to bf16 */
    /* bf16 attention (mtp_attend_bf16), where the CPU and head size allow: the caches
     * again in bf16, filled alongside kc and vc */
    uint16_t *kt, *vt;   /* (n_layers, n_seq, n_kv_heads) key and value tiles */
    int attn_threads;    /* scratch for this many threads: */
    float *attn_scratch;
    int *tasks;          /* (max_rows * n_kv_heads, 3) first row, end row, kv head */
} mtp_decoder;

/* cap: slots per sequence (at most max_seq_len); max_rows: rows per pass. */
int mtp_decoder_init(mtp_decoder *d, const mtp_model *m, int n_seq, int cap, int max_rows,
                     mtp_err *err);
void mtp_decoder_free(mtp_decoder *d);

/* From now on the decoder multiplies by bf16 copies of the weights w (NULL: it packs its
 * own; w must outlive the decoder) (rows rounded to bf16,
 * sums in fp32): half the bytes to read, and with Intel AMX up to 16 rows per weight read
 * (ops.h). With AMX, and a head size that is a multiple of 32, attention also runs on
 * tiles, over bf16 copies of the caches (mtp_attend_bf16). Every pass of the decoder then
 * uses them, so speculative output still equals plain output exactly; it differs from
 * fp32 decoding by bf16 rounding. Call before the first pass. Refuses (-1, err) what
 * memory cannot hold. */
int mtp_decoder_use_bf16(mtp_decoder *d, const mtp_bf16_weights *w, mtp_err *err);

/* One pass: rows (R <= max_rows) through the trunk and future head 1; heads 2..kv_heads
 * only store their keys and values. For rows with logits >= 0, logits[row.logits * V ...]
 * receives head 1's logits. Rows must be ordered so that a parent precedes its children.
 * The trunk outputs stay available to mtp_decoder_draft. Does not change len. */
void mtp_decoder_forward(mtp_decoder *d, const mtp_row *rows, int R, int kv_heads, float *logits);

/* Future heads first..last run fully on R rows whose trunk outputs are rows zrow[i] of
 * the last mtp_decoder_forward, at the rows' positions and slots (each row attends to its
 * sequence's committed prefix, then itself: set len to the row's slot first). The heads'
 * keys and values there are the forward's (moved along with mtp_decoder_move), not
 * recomputed.
 * logits[(i * (last - first + 1) + h - first) * V ...] receives head h's logits. */
void mtp_decoder_draft(mtp_decoder *d, const mtp_row *rows, const int *zrow, int R, int first,
                       int last, float *logits);

/* Copies the keys and values at slot src to slot dst of sequence seq in every block (to
 * compact an accepted tree path into position order). */
void mtp_decoder_move(mtp_decoder *d, int seq, int dst, int src);

#endif
