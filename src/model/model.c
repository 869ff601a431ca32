/* model.c: forward and backward of the multi-token model (model.h).
 * Forward reads like the paper: z = trunk(embed(x)); for each future head i:
 * logits_i = output(norm(head_i(z))). Backward mirrors it in reverse. Weight gradients
 * accumulate (+=) into grads, following ops.h; activation gradients are written. */
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "model/block.h"
#include "core/util.h"

int mtp_model_init(mtp_model *m, const mtp_config *cfg, mtp_err *err) {
    memset(m, 0, sizeof *m);
    mtp_layout lay;
    mtp_layout_init(&lay, cfg);
    if (mtp_check_fits(lay.total * sizeof(float), "the model's weights", err)) {
        mtp_layout_free(&lay);
        return -1;
    }
    m->cfg = *cfg;
    m->lay = lay;
    m->params = falloc(m->lay.total);
    memset(m->params, 0, m->lay.total * sizeof(float));
    mtp_weights_from_params(&m->dec, &m->lay, &m->cfg, m->params, MTP_F32);
    return 0;
}

void mtp_model_decode_as(mtp_model *m, mtp_wtype t) {
    MTP_ASSERT(m->params);
    mtp_weights_free(&m->dec);
    mtp_weights_from_params(&m->dec, &m->lay, &m->cfg, m->params, t);
}

void mtp_model_randomize(mtp_model *m, uint64_t seed) {
    mtp_rng rng = {seed};
    float resid_scale = 1.0f / sqrtf(2.0f * m->cfg.n_layers);
    for (int i = 0; i < m->lay.n_params; i++) {
        const mtp_param *p = &m->lay.params[i];
        float *w = m->params + p->offset;
        if (p->ndim == 1) {
            for (size_t j = 0; j < p->numel; j++) w[j] = 1.0f;
            continue;
        }
        int resid = strstr(p->name, ".wo.") || strstr(p->name, ".w2.");
        float std = 0.02f * (resid ? resid_scale : 1.0f);
        for (size_t j = 0; j < p->numel; j++) w[j] = (float)(std * mtp_rng_normal(&rng));
    }
}

int mtp_tokenizer_fits(mtp_tokenizer **t, const void *data, size_t n, const char *what, int vocab_size,
                       mtp_err *err) {
    if (mtp_tokenizer_from_bytes(t, data, n, what, err)) return -1;
    int tv = mtp_tokenizer_vocab_size(*t);
    if (tv <= vocab_size) return 0;
    mtp_tokenizer_free(*t);
    *t = NULL;
    return mtp_fail(err, "%s: the tokenizer has %d ids, more than the model's vocab_size %d", what, tv, vocab_size);
}

int mtp_model_attach_tokenizer(mtp_model *m, const void *data, size_t n, const char *what, mtp_err *err) {
    mtp_tokenizer *t;
    if (mtp_tokenizer_fits(&t, data, n, what, m->cfg.vocab_size, err)) return -1;
    mtp_tokenizer_free(m->tok);
    free(m->tok_file);
    m->tok = t;
    m->tok_file = xmalloc(n ? n : 1);
    memcpy(m->tok_file, data, n);
    m->tok_bytes = n;
    return 0;
}

void mtp_model_free(mtp_model *m) {
    mtp_tokenizer_free(m->tok);
    free(m->tok_file);
    mtp_weights_free(&m->dec);
    mtp_st_close(&m->file);
    free(m->params);
    mtp_layout_free(&m->lay);
}

/* ---- arena ------------------------------------------------------------------------ */

typedef struct {
    float *base;
    size_t used, cap; /* cap 0: only count */
} carver;

static float *take(carver *cv, size_t n) {
    n = (n + 15) / 16 * 16; /* keep every buffer 64-byte aligned */
    float *p = cv->cap ? cv->base + cv->used : NULL;
    cv->used += n;
    MTP_ASSERT(!cv->cap || cv->used <= cv->cap);
    return p;
}

static void carve_block(carver *cv, mtp_block_acts *b, const mtp_config *c, int B, int T) {
    size_t N = (size_t)B * T, d = c->dim, kv = mtp_kv_dim(c), f = c->hidden_dim;
    b->xn1 = take(cv, N * d);
    b->rstd1 = take(cv, N);
    b->q = take(cv, N * d);
    b->k = take(cv, N * kv);
    b->v = take(cv, N * kv);
    b->lse = take(cv, (size_t)B * c->n_heads * T);
    b->ao = take(cv, N * d);
    b->xmid = take(cv, N * d);
    b->xn2 = take(cv, N * d);
    b->rstd2 = take(cv, N);
    b->h1 = take(cv, N * f);
    b->h3 = take(cv, N * f);
    b->g = take(cv, N * f);
}

/* Lays out every buffer; run twice: once to count (cap 0), once to assign. */
static void carve_all(carver *cv, mtp_acts *a, const mtp_config *c) {
    size_t N = (size_t)a->B * a->T, d = c->dim, kv = mtp_kv_dim(c), f = c->hidden_dim;
    int nt = mtp_n_trunk(c);
    a->res = take(cv, (size_t)(nt + 1) * N * d);
    for (int l = 0; l < nt; l++) {
        carve_block(cv, &a->trunk[l], c, a->B, a->T);
        a->trunk[l].x = a->res ? a->res + (size_t)l * N * d : NULL;
        a->trunk[l].out = a->res ? a->res + (size_t)(l + 1) * N * d : NULL;
    }
    for (int s = 0; s < a->n_head_sets; s++) {
        mtp_head_acts *h = &a->heads[s];
        carve_block(cv, &h->blk, c, a->B, a->T);
        h->blk.x = a->res ? a->res + (size_t)nt * N * d : NULL;
        h->blk.out = take(cv, N * d);
        h->zn = take(cv, N * d);
        h->zrstd = take(cv, N);
        h->logits = take(cv, N * c->vocab_size);
    }
    a->losses = take(cv, N);
    if (!a->backward) return;
    a->dz = take(cv, N * d);
    a->dres = take(cv, N * d);
    a->dhout = take(cv, N * d);
    a->dmid = take(cv, N * d);
    a->dxn = take(cv, N * d);
    a->dao = take(cv, N * d);
    a->dq = take(cv, N * d);
    a->dk = take(cv, N * kv);
    a->dv = take(cv, N * kv);
    a->dg = take(cv, N * f);
    a->dh1 = take(cv, N * f);
    a->dh3 = take(cv, N * f);
}

int mtp_acts_init(mtp_acts *a, const mtp_config *c, int B, int T, mtp_head_schedule schedule,
                  int backward, mtp_err *err) {
    memset(a, 0, sizeof *a);
    a->B = B;
    a->T = T;
    a->schedule = schedule;
    a->backward = backward;
    a->n_head_sets = schedule == MTP_HEADS_NAIVE ? c->n_future : 1;
    a->trunk = xcalloc(mtp_n_trunk(c) + 1, sizeof(mtp_block_acts));
    a->heads = xcalloc(a->n_head_sets, sizeof(mtp_head_acts));
    carver count = {0};
    carve_all(&count, a, c);
    char what[96];
    snprintf(what, sizeof what, "the activations for --batch %d --seq %d", B, T);
    if (mtp_check_fits(count.used * sizeof(float), what, err)) {
        free(a->trunk);
        free(a->heads);
        memset(a, 0, sizeof *a);
        return -1;
    }
    a->arena_floats = count.used;
    a->arena = falloc(count.used);
    carver cv = {a->arena, 0, count.used};
    carve_all(&cv, a, c);
    size_t N = (size_t)B * T;
    a->inputs = xmalloc(N * sizeof(mtp_token));
    a->targets = xmalloc(N * c->n_future * sizeof(mtp_token));
    a->hits = xmalloc(N);
    mtp_rope_init(&a->rope, T, mtp_head_dim(c), c->rope_theta);
    return 0;
}

void mtp_acts_free(mtp_acts *a) {
    free(a->arena);
    free(a->trunk);
    free(a->heads);
    free(a->inputs);
    free(a->targets);
    free(a->hits);
    mtp_rope_free(&a->rope);
    memset(a, 0, sizeof *a);
}

/* ---- one transformer block ------------------------------------------------------- */

/* The block recipe (block.h) over all B*T positions: BLAS products, rotary by position
 * n % T, causal attention in tiles that saves each query's log-sum-exp (lse) for the
 * backward; keys and values stay in the block's buffers. */
typedef struct {
    mtp_block_impl im;
    mtp_block_ptrs w;
    const mtp_rope *rope;
    int B, T;
    float *lse;
} train_block;

static void train_matmul(const mtp_block_impl *im, float *out, const float *x,
                         mtp_block_matrix which, int R, int C, int OC, float beta) {
    mtp_matmul_fwd(out, x, mtp_block_weight(&((const train_block *)im)->w, which), R, C, OC, beta);
}

static void train_matmul_parts(const mtp_block_impl *im, float *const outs[], const float *x,
                               const mtp_block_matrix which[], int n, int R, int C) {
    mtp_matmul_part p[3];
    MTP_ASSERT(n <= 3);
    for (int i = 0; i < n; i++)
        p[i] = (mtp_matmul_part){mtp_block_weight(&((const train_block *)im)->w, which[i]), outs[i],
                                 mtp_block_rows(im->cfg, which[i])};
    mtp_matmul_fwd_parts(p, n, x, R, C);
}

static void train_rope(const mtp_block_impl *im, float *x, int R, int n_heads) {
    const train_block *tb = (const train_block *)im;
    mtp_rope_fwd(x, tb->rope, R, tb->T, n_heads, mtp_head_dim(im->cfg));
}

static void train_keep_kv(const mtp_block_impl *im, const float *k, const float *v, int R) {
    (void)im, (void)k, (void)v, (void)R; /* the backward reads them where they are */
}

static void train_attend(const mtp_block_impl *im, float *ao, const float *q, const float *k,
                         const float *v, int R) {
    const train_block *tb = (const train_block *)im;
    const mtp_config *c = im->cfg;
    MTP_ASSERT(R == tb->B * tb->T);
    mtp_attention_fwd(ao, tb->lse, q, k, v, tb->B, tb->T, c->n_heads, c->n_kv_heads,
                      mtp_head_dim(c));
}

static void block_forward(const mtp_config *c, const mtp_block_ptrs *w, mtp_block_acts *b,
                          const mtp_rope *rope, int B, int T) {
    train_block tb = {{c, w->attn_norm, w->ffn_norm, train_matmul, train_matmul_parts, train_rope, train_keep_kv, train_attend},
                      *w, rope, B, T, b->lse};
    mtp_block_forward(&tb.im, b, B * T, 0);
}

/* dx (N,dim) = gradient wrt the block input (written), given dout wrt its output; weight
 * gradients accumulate into gw. Uses the arena's scratch buffers. Each activation
 * gradient is written by its first product (dx_beta 0) and added to by the next. */
static void block_backward(const mtp_config *c, const mtp_block_ptrs *w, const mtp_block_ptrs *gw,
                           const mtp_block_acts *b, mtp_acts *a, float *dx, const float *dout) {
    int B = a->B, T = a->T, N = B * T, d = c->dim, kv = mtp_kv_dim(c), f = c->hidden_dim;
    int hd = mtp_head_dim(c);
    /* out = xmid + w2(g): dmid = dout + the FFN branch's gradient */
    mtp_matmul_bwd(a->dg, gw->w2, dout, b->g, w->w2, N, f, d, 0);
    mtp_swiglu_bwd(a->dh1, a->dh3, a->dg, b->h1, b->h3, (size_t)N * f);
    mtp_matmul_bwd_parts(a->dxn, (const mtp_matmul_grad_part[]){{w->w1, a->dh1, gw->w1, f}, {w->w3, a->dh3, gw->w3, f}},
                         2, b->xn2, N, d, 0);
    mtp_rmsnorm_bwd(a->dmid, gw->ffn_norm, a->dxn, dout, b->xmid, w->ffn_norm, b->rstd2, N, d);
    /* xmid = x + wo(attention): dx = dmid + the attention branch's gradient */
    mtp_matmul_bwd(a->dao, gw->wo, a->dmid, b->ao, w->wo, N, d, d, 0);
    mtp_attention_bwd(a->dq, a->dk, a->dv, a->dao, b->ao, b->lse, b->q, b->k, b->v, B, T,
                      c->n_heads, c->n_kv_heads, hd);
    mtp_rope_bwd(a->dq, &a->rope, N, T, c->n_heads, hd);
    mtp_rope_bwd(a->dk, &a->rope, N, T, c->n_kv_heads, hd);
    mtp_matmul_bwd_parts(a->dxn, (const mtp_matmul_grad_part[]){{w->wq, a->dq, gw->wq, d}, {w->wk, a->dk, gw->wk, kv},
                                                                 {w->wv, a->dv, gw->wv, kv}},
                         3, b->xn1, N, d, 0);
    mtp_rmsnorm_bwd(dx, gw->attn_norm, a->dxn, a->dmid, b->x, w->attn_norm, b->rstd1, N, d);
}

/* ---- future heads ------------------------------------------------------------------ */

/* Head i (1-based) forward on the trunk output: block, shared norm, shared unembedding,
 * loss. With backward, the logits become dlogits in place (scaled by `scale`). */
static void head_forward(const mtp_model *m, mtp_acts *a, mtp_head_acts *h, int i, float scale,
                         mtp_head_stats *stats) {
    const mtp_config *c = &m->cfg;
    int N = a->B * a->T, d = c->dim, V = c->vocab_size;
    mtp_block_ptrs w = mtp_block_at(&m->lay, m->params, mtp_n_trunk(c) + i - 1);
    block_forward(c, &w, &h->blk, &a->rope, a->B, a->T);
    mtp_rmsnorm_fwd(h->zn, h->zrstd, h->blk.out, m->params + m->lay.norm, N, d, c->norm_eps);
    mtp_matmul_fwd(h->logits, h->zn, m->params + m->lay.output, N, d, V, 0);
    mtp_xent(a->losses, a->hits, h->logits, a->targets + (size_t)(i - 1) * N, N, V, scale);
    double loss = 0, hits = 0;
    for (int n = 0; n < N; n++) {
        loss += a->losses[n];
        hits += a->hits[n];
    }
    if (stats) {
        stats->loss[i - 1] = loss / N;
        stats->acc[i - 1] = hits / N;
    }
}

/* Where block's weight gradients go: its slots in grads, or nowhere (NULLs) when its part
 * is frozen. */
static mtp_block_ptrs block_grads(const mtp_model *m, const mtp_acts *a, float *grads, int block) {
    unsigned part = block < mtp_n_trunk(&m->cfg) ? MTP_PART_TRUNK : MTP_PART_HEADS;
    return a->frozen & part ? (mtp_block_ptrs){0} : mtp_block_at(&m->lay, grads, block);
}

/* Head i backward from its dlogits: unembedding, norm, head block; dL_i/dz is written to
 * a->dz by the first head with a gradient (first) and added to it by the others, through
 * a->dres (free until the trunk's backward). The head block is skipped when it and every
 * part below it are frozen. */
static void head_backward(const mtp_model *m, mtp_acts *a, mtp_head_acts *h, int i, float *grads,
                          int first) {
    const mtp_config *c = &m->cfg;
    int N = a->B * a->T, d = c->dim, V = c->vocab_size;
    int block = mtp_n_trunk(c) + i - 1;
    unsigned below = MTP_PART_TRUNK | MTP_PART_HEADS | MTP_PART_EMBEDDINGS;
    int out_frozen = (a->frozen & MTP_PART_OUTPUT) != 0;
    mtp_block_ptrs w = mtp_block_at(&m->lay, m->params, block);
    mtp_block_ptrs gw = block_grads(m, a, grads, block);
    mtp_matmul_bwd(a->dxn, out_frozen ? NULL : grads + m->lay.output, h->logits, h->zn,
                   m->params + m->lay.output, N, d, V, 0);
    mtp_rmsnorm_bwd(a->dhout, out_frozen ? NULL : grads + m->lay.norm, a->dxn, NULL, h->blk.out,
                    m->params + m->lay.norm, h->zrstd, N, d);
    if ((a->frozen & below) == below) return;
    block_backward(c, &w, &gw, &h->blk, a, first ? a->dz : a->dres, a->dhout);
    if (!first) mtp_add(a->dz, a->dres, (size_t)N * d);
}

void mtp_step(const mtp_model *m, mtp_acts *a, const mtp_token *window, const float *head_weight,
              float *grads, float grad_scale, mtp_head_stats *stats) {
    const mtp_config *c = &m->cfg;
    int B = a->B, T = a->T, N = B * T, d = c->dim, nf = c->n_future, nt = mtp_n_trunk(c);
    int backward = grads != NULL;
    MTP_ASSERT(!backward || a->backward);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const mtp_token *row = window + (size_t)b * (T + nf);
            a->inputs[b * T + t] = row[t];
            for (int i = 1; i <= nf; i++) a->targets[(size_t)(i - 1) * N + b * T + t] = row[t + i];
        }

    /* trunk forward, once: z = res[nt] */
    mtp_embedding_fwd(a->res, a->inputs, m->params + m->lay.tok_emb, N, d);
    for (int l = 0; l < nt; l++) {
        mtp_block_ptrs w = mtp_block_at(&m->lay, m->params, l);
        block_forward(c, &w, &a->trunk[l], &a->rope, B, T);
    }

    /* The future heads. Sequential (the paper's memory-efficient order, Figure 2): each
     * head's forward, loss and backward run back to back, adding dL_i/dz into a->dz and
     * reusing one set of head buffers, so peak memory holds one head's logits, not n.
     * Naive: all heads forward with their own buffers, then all backward. Both
     * accumulate in the same order, so they give identical gradients.
     * A head whose scale is 0 (loss weight 0) only reports its loss: mtp_xent leaves its
     * logits as logits, so its backward is skipped in both orders and it contributes no
     * gradient, as d(0 * L_i) = 0 says. */
    float scale[MTP_MAX_FUTURE];
    int have_dz = 0; /* a head has written a->dz */
    for (int i = 1; i <= nf; i++) {
        mtp_head_acts *h = &a->heads[a->n_head_sets == 1 ? 0 : i - 1];
        scale[i - 1] = backward ? grad_scale * (head_weight ? head_weight[i - 1] : 1.0f) / N : 0;
        head_forward(m, a, h, i, scale[i - 1], stats);
        if (a->n_head_sets == 1 && scale[i - 1] != 0) {
            head_backward(m, a, h, i, grads, !have_dz);
            have_dz = 1;
        }
    }
    for (int i = 1; a->n_head_sets > 1 && i <= nf; i++)
        if (scale[i - 1] != 0) {
            head_backward(m, a, &a->heads[i - 1], i, grads, !have_dz);
            have_dz = 1;
        }
    unsigned trunk_down = MTP_PART_TRUNK | MTP_PART_EMBEDDINGS;
    if (!backward || (a->frozen & trunk_down) == trunk_down) return;
    if (!have_dz) mtp_zero(a->dz, (size_t)N * d); /* every loss weight 0: no gradient reaches z */

    /* trunk backward, once, from the accumulated dL/dz */
    float *dcur = a->dz, *dnext = a->dres;
    for (int l = nt - 1; l >= 0; l--) {
        mtp_block_ptrs w = mtp_block_at(&m->lay, m->params, l);
        mtp_block_ptrs gw = block_grads(m, a, grads, l);
        block_backward(c, &w, &gw, &a->trunk[l], a, dnext, dcur);
        float *t = dcur;
        dcur = dnext;
        dnext = t;
    }
    if (!(a->frozen & MTP_PART_EMBEDDINGS)) mtp_embedding_bwd(grads + m->lay.tok_emb, dcur, a->inputs, N, d);
}
