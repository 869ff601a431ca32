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

typedef struct {
    const mtp_model *m;
    int n_seq, max_rows;
    int *cap;            /* (n_seq) slots of each sequence's cache */
    int *len;            /* (n_seq) committed prefix: slots [0, len) in position order */
    size_t *first;       /* (n_seq) the sequence's first slot in a block's cache */
    size_t slots;        /* all sequences' slots: a block's cache holds slots x kv_dim */
    int max_cap;
    /* One cache per block, in the decoding precision: fp32 when the weights are F32, bf16
     * (rounded keys and values) when they are BF16, 8-bit (int8 per block of 32 with an F16
     * scale, ops.h mtp_kv_data) when they are Q8 and head_dim is a multiple of 32 (else
     * bf16). Keys after rotary. With AMX attention (mtp_attend_bf16) a bf16 cache is in its
     * tile layout instead. */
    mtp_kv_type kv_type;
    int tiles;
    void *kc, *vc;       /* (n_layers, slots, kv_dim) elements of kv_type; or tiles: per
                            block, per sequence, per kv head mtp_kv_tiles_size(cap, head_dim) */
    uint16_t *ks, *vs;   /* 8-bit: (n_layers, slots, kv_dim / 32) the scales of kc and vc */
    size_t *tile_first;  /* (n_seq) tiles: the sequence's first element in a block's tiles */
    size_t tile_block;   /* tiles: elements of one block's tiles, all sequences */
    float *attn_scratch; /* tiles: mtp_attend_bf16's scratch for attn_threads threads */
    int attn_threads;
    int *tasks;          /* tiles: (max_rows * n_kv_heads, 3) first row, end row, kv head */
    int *queries, *task_at; /* attention: (row, head) queries grouped by sequence and kv head; task t
                               is queries[task_at[t] .. task_at[t + 1]) */
    mtp_rope rope;       /* positions 0..max_cap-1 */
    /* scratch for max_rows rows */
    float *z, *zt, *x, *xn, *q, *k, *v, *ao, *h1, *h3, *zn; /* (R,dim|kv|hidden); zn (R*n,dim) */
    float *rstd;         /* (R) the norms' reciprocal RMS */
    float *scores;       /* (R * n_heads, max_cap) attention weights */
    int *chain;          /* (R, max_cap) keys each row attends to, as slots */
    int *nkeys;          /* (R) */
    int *pos;            /* (R) the rows' positions */
    void *wscratch;      /* the weight kernels' scratch (rows rounded or quantized) */
} mtp_decoder;

/* cap[s]: slots of sequence s (at most max_seq_len); max_rows: rows per pass. The decoder
 * multiplies by m->dec (model.h) in its types; speculative output equals plain output
 * exactly in each, as every kernel is batch-invariant. Refuses (-1, err) what memory
 * cannot hold. */
int mtp_decoder_init(mtp_decoder *d, const mtp_model *m, int n_seq, const int *cap, int max_rows,
                     mtp_err *err);
void mtp_decoder_free(mtp_decoder *d);

/* One pass: rows (R <= max_rows) through the trunk and future head 1; heads 2..kv_heads
 * only store their keys and values. For rows with logits >= 0, logits[row.logits * V ...]
 * receives head 1's logits. Rows must be ordered so that a parent precedes its children.
 * The trunk outputs stay available to mtp_decoder_draft. Does not change len. */
void mtp_decoder_forward(mtp_decoder *d, const mtp_row *rows, int R, int kv_heads, float *logits);

/* Future heads first..last run fully on rows whose trunk outputs are rows zrow[i] of the
 * last mtp_decoder_forward, at the rows' positions and slots (each row attends to its
 * sequence's committed prefix, then itself: set len to the row's slot first); head h on
 * the first n[h - first] of them (n[0] = R rows, then non-increasing, each >= 1). The
 * heads' keys and values there are the forward's (moved along with mtp_decoder_move), not
 * recomputed. Head by head: logits[(n[0] + .. + n[h - first - 1] + i) * V ...] receives
 * head h's logits of row i; one unembedding for them all (its weights read once). */
void mtp_decoder_draft(mtp_decoder *d, const mtp_row *rows, const int *zrow, const int *n, int first, int last,
                       float *logits);

/* Copies the keys and values at slot src to slot dst of sequence seq in every block (to
 * compact an accepted tree path into position order). */
void mtp_decoder_move(mtp_decoder *d, int seq, int dst, int src);

#endif
