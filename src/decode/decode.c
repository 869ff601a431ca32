/* decode.c: see decode.h. Blocks run the recipe of model/block.c (as training does), with
 * row kernels and a cache in place of the (B, T) layout. */
#include "decode/decode.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "kernels/backend.h"
#include "model/block.h"

/* Allocated and written now: decoding would otherwise fault the pages in token by token. */
static void *touched(size_t bytes) {
    void *p = xmalloc(bytes);
    memset(p, 0, bytes);
    return p;
}

static float *ftouched(size_t n) { return touched(n * sizeof(float)); }

int mtp_decoder_init(mtp_decoder *d, const mtp_model *m, int n_seq, int cap, int max_rows,
                     mtp_err *err) {
    const mtp_config *c = &m->cfg;
    memset(d, 0, sizeof *d);
    size_t kv = mtp_kv_dim(c), dim = c->dim, f = c->hidden_dim, R = max_rows;
    size_t cache = (size_t)c->n_layers * n_seq * cap * kv;
    size_t scratch = R * (dim * (10 + c->n_future) + 2 * kv + 2 * f + (size_t)c->n_heads * cap + cap);
    if (mtp_check_fits((2 * cache + scratch) * sizeof(float), "the KV cache and decoding buffers", err))
        return -1;
    d->m = m;
    d->n_seq = n_seq;
    d->cap = cap;
    d->max_rows = max_rows;
    d->len = xcalloc(n_seq, sizeof(int));
    d->kc = ftouched(cache);
    d->vc = ftouched(cache);
    mtp_rope_init(&d->rope, cap, mtp_head_dim(c), c->rope_theta);
    d->z = ftouched(R * dim);
    d->zt = ftouched(R * dim);
    d->x = ftouched(R * dim);
    d->xn = ftouched(R * dim);
    d->q = ftouched(R * dim);
    d->k = ftouched(R * kv);
    d->v = ftouched(R * kv);
    d->ao = ftouched(R * dim);
    d->rstd = ftouched(R);
    d->h1 = ftouched(R * f);
    d->h3 = ftouched(R * f);
    d->zn = ftouched(R * c->n_future * dim);
    d->scores = ftouched(R * c->n_heads * (size_t)cap);
    d->chain = xmalloc(R * (size_t)cap * sizeof(int));
    d->nkeys = xmalloc(R * sizeof(int));
    d->pos = xmalloc(R * sizeof(int));
    return 0;
}

void mtp_bf16_weights_init(mtp_bf16_weights *bw, const mtp_model *m) {
    const mtp_config *c = &m->cfg;
    int dim = c->dim, kvd = mtp_kv_dim(c), f = c->hidden_dim;
    bw->n_layers = c->n_layers;
    bw->blocks = xcalloc(c->n_layers, sizeof *bw->blocks);
    for (int l = 0; l < c->n_layers; l++) {
        mtp_block_ptrs w = mtp_block_at(&m->lay, m->params, l);
        mtp_bf16_block *b = &bw->blocks[l];
        mtp_bf16_pack(&b->wq, w.wq, dim, dim);
        mtp_bf16_pack(&b->wk, w.wk, dim, kvd);
        mtp_bf16_pack(&b->wv, w.wv, dim, kvd);
        mtp_bf16_pack(&b->wo, w.wo, dim, dim);
        mtp_bf16_pack(&b->w1, w.w1, dim, f);
        mtp_bf16_pack(&b->w2, w.w2, f, dim);
        mtp_bf16_pack(&b->w3, w.w3, dim, f);
    }
    mtp_bf16_pack(&bw->out, m->params + m->lay.output, dim, c->vocab_size);
}

void mtp_bf16_weights_free(mtp_bf16_weights *bw) {
    for (int l = 0; bw->blocks && l < bw->n_layers; l++) {
        mtp_bf16_block *b = &bw->blocks[l];
        mtp_bf16_matrix *ms[] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->w1, &b->w2, &b->w3};
        for (int i = 0; i < 7; i++) mtp_bf16_free(ms[i]);
    }
    free(bw->blocks);
    mtp_bf16_free(&bw->out);
    memset(bw, 0, sizeof *bw);
}

int mtp_decoder_use_bf16(mtp_decoder *d, const mtp_bf16_weights *w, mtp_err *err) {
    const mtp_config *c = &d->m->cfg;
    int dim = c->dim, f = c->hidden_dim, hd = mtp_head_dim(c), nkv = c->n_kv_heads;
    if (d->bf16) return 0;
    for (int s = 0; s < d->n_seq; s++) MTP_ASSERT(d->len[s] == 0); /* before the first pass */
    int rows = d->max_rows * c->n_future; /* head_logits: every head of every row at once */
    size_t row_scratch = mtp_bf16_scratch(rows, dim > f ? dim : f);
    int tiles = mtp_attend_bf16_available(hd) && c->n_heads / nkv <= MTP_ATTEND_BF16_QUERIES;
    size_t seqs = (size_t)c->n_layers * d->n_seq, kv_tiles = seqs * nkv * mtp_kv_tiles_size(d->cap, hd);
    size_t attn_scratch = (size_t)mtp_backend_threads() * mtp_attend_bf16_scratch(d->cap, hd);
    size_t bytes = row_scratch * sizeof(uint16_t) + (w ? 0 : d->m->lay.total * sizeof(uint16_t)) +
                   (tiles ? 2 * kv_tiles * sizeof(uint16_t) + attn_scratch * sizeof(float) : 0);
    if (mtp_check_fits(bytes, "the bf16 weights and caches", err)) return -1;
    if (!w) {
        mtp_bf16_weights_init(&d->own_bf16, d->m);
        w = &d->own_bf16;
    }
    MTP_ASSERT(w->n_layers == c->n_layers && w->out.C == dim && w->out.OC == c->vocab_size &&
               w->blocks[0].w1.OC == f);
    d->bf16 = w;
    d->bf16_rows = xcalloc(row_scratch, sizeof(uint16_t));
    if (!tiles) return 0;
    d->kt = touched(kv_tiles * sizeof(uint16_t));
    d->vt = touched(kv_tiles * sizeof(uint16_t));
    d->attn_threads = mtp_backend_threads();
    d->attn_scratch = ftouched(attn_scratch);
    d->tasks = xmalloc((size_t)d->max_rows * nkv * 3 * sizeof(int));
    return 0;
}

void mtp_decoder_free(mtp_decoder *d) {
    mtp_bf16_weights_free(&d->own_bf16);
    free(d->bf16_rows);
    free(d->kt);
    free(d->vt);
    free(d->attn_scratch);
    free(d->tasks);
    free(d->len);
    free(d->kc);
    free(d->vc);
    mtp_rope_free(&d->rope);
    float *bufs[] = {d->z,  d->zt, d->x,    d->xn, d->q,  d->k,  d->v,
                     d->ao, d->rstd, d->h1, d->h3, d->zn, d->scores};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
    free(d->chain);
    free(d->nkeys);
    free(d->pos);
    memset(d, 0, sizeof *d);
}

/* out (R,OC) = beta * out + x @ w^T: fp32 w, or its bf16 copy wb if the decoder has one */
static void matmul(const mtp_decoder *d, float *out, const float *x, const float *w,
                   const mtp_bf16_matrix *wb, int R, int C, int OC, float beta) {
    if (d->bf16)
        mtp_matmul_rows_bf16(out, x, wb, R, beta, d->bf16_rows);
    else
        mtp_matmul_rows(out, x, w, R, C, OC, beta);
}

static float *cache_at(const mtp_decoder *d, float *base, int block, int seq, int slot) {
    size_t kv = mtp_kv_dim(&d->m->cfg);
    return base + (((size_t)block * d->n_seq + seq) * d->cap + slot) * kv;
}

/* One kv head's key or value tiles (mtp_attend_bf16) in a block's cache of a sequence. */
static uint16_t *tiles_at(const mtp_decoder *d, uint16_t *base, int block, int seq, int kv_head) {
    const mtp_config *c = &d->m->cfg;
    size_t size = mtp_kv_tiles_size(d->cap, mtp_head_dim(c));
    return base + (((size_t)block * d->n_seq + seq) * c->n_kv_heads + kv_head) * size;
}

/* The bf16 tiles of a slot's keys and values (if the decoder keeps them), from kc, vc. */
static void put_kv_tiles(mtp_decoder *d, int block, int seq, int slot) {
    if (!d->kt) return;
    const mtp_config *c = &d->m->cfg;
    int hd = mtp_head_dim(c);
    const float *k = cache_at(d, d->kc, block, seq, slot), *v = cache_at(d, d->vc, block, seq, slot);
    for (int g = 0; g < c->n_kv_heads; g++)
        mtp_kv_tiles_put(tiles_at(d, d->kt, block, seq, g), tiles_at(d, d->vt, block, seq, g), hd, slot,
                         k + g * hd, v + g * hd);
}

void mtp_decoder_move(mtp_decoder *d, int seq, int dst, int src) {
    size_t bytes = mtp_kv_dim(&d->m->cfg) * sizeof(float);
    for (int b = 0; b < d->m->cfg.n_layers; b++) {
        memmove(cache_at(d, d->kc, b, seq, dst), cache_at(d, d->kc, b, seq, src), bytes);
        memmove(cache_at(d, d->vc, b, seq, dst), cache_at(d, d->vc, b, seq, src), bytes);
        put_kv_tiles(d, b, seq, dst);
    }
}

/* The slots each row attends to, in order: committed prefix, ancestors, itself. */
static void build_chains(mtp_decoder *d, const mtp_row *rows, int R) {
    for (int r = 0; r < R; r++) {
        int *ch = d->chain + (size_t)r * d->cap, depth = 0;
        for (int a = r; a >= 0; a = rows[a].parent) {
            MTP_ASSERT(rows[a].parent < a && rows[a].seq == rows[r].seq);
            depth++;
        }
        int n = d->len[rows[r].seq];
        MTP_ASSERT(n + depth <= d->cap);
        for (int i = 0; i < n; i++) ch[i] = i;
        int at = n + depth;
        for (int a = r; a >= 0; a = rows[a].parent) ch[--at] = rows[a].slot;
        d->nkeys[r] = n + depth;
    }
}

/* ao (R, dim) by mtp_attend_bf16: a task is up to MTP_ATTEND_BF16_QUERIES queries of one
 * sequence and kv head (its rows times the kv head's query heads). */
static void attention_rows_bf16(mtp_decoder *d, int block, const mtp_row *rows, int R, size_t work) {
    const mtp_config *c = &d->m->cfg;
    int hd = mtp_head_dim(c), group = c->n_heads / c->n_kv_heads, kvd = mtp_kv_dim(c);
    int per = MTP_ATTEND_BF16_QUERIES / group, nt = 0, *t = d->tasks;
    float scale = 1.0f / sqrtf((float)hd);
    for (int r0 = 0, r1; r0 < R; r0 = r1) {
        for (r1 = r0 + 1; r1 < R && r1 - r0 < per && rows[r1].seq == rows[r0].seq;) r1++;
        for (int g = 0; g < c->n_kv_heads; g++, nt++) t[3 * nt] = r0, t[3 * nt + 1] = r1, t[3 * nt + 2] = g;
    }
    size_t scratch = mtp_attend_bf16_scratch(d->cap, hd);
#pragma omp parallel for schedule(static) num_threads(d->attn_threads) if (work >= 1u << 18)
    for (int i = 0; i < nt; i++) {
        int r0 = t[3 * i], r1 = t[3 * i + 1], g = t[3 * i + 2], seq = rows[r0].seq, nq = 0;
        float *out[MTP_ATTEND_BF16_QUERIES];
        const float *q[MTP_ATTEND_BF16_QUERIES];
        const int *chain[MTP_ATTEND_BF16_QUERIES];
        int n[MTP_ATTEND_BF16_QUERIES];
        for (int r = r0; r < r1; r++)
            for (int h = g * group; h < (g + 1) * group; h++, nq++) {
                out[nq] = d->ao + (size_t)r * c->dim + h * hd;
                q[nq] = d->q + (size_t)r * c->dim + h * hd;
                chain[nq] = d->chain + (size_t)r * d->cap;
                n[nq] = d->nkeys[r];
            }
        mtp_kv_bf16 kv = {tiles_at(d, d->kt, block, seq, g), tiles_at(d, d->vt, block, seq, g),
                          cache_at(d, d->vc, block, seq, 0) + g * hd, kvd, hd};
        mtp_attend_bf16(out, q, chain, n, nq, &kv, d->cap, scale,
                        d->attn_scratch + mtp_backend_thread() * scratch);
    }
}

/* ao (R, dim): each row's attention over its chain, one (row, head) per task. */
static void attention_rows(mtp_decoder *d, int block, const mtp_row *rows, int R) {
    const mtp_config *c = &d->m->cfg;
    int H = c->n_heads, hd = mtp_head_dim(c), group = H / c->n_kv_heads, kvd = mtp_kv_dim(c);
    float scale = 1.0f / sqrtf((float)hd);
    size_t work = 0; /* multiply-adds: below a few tens of thousands, a fork and join costs more */
    for (int r = 0; r < R; r++) work += (size_t)d->nkeys[r] * H * hd * 2;
    if (d->kt) {
        attention_rows_bf16(d, block, rows, R, work);
        return;
    }
#pragma omp parallel for schedule(static) if (work >= 1u << 16)
    for (int rh = 0; rh < R * H; rh++) {
        int r = rh / H, h = rh % H, g = h / group, n = d->nkeys[r], seq = rows[r].seq;
        const int *ch = d->chain + (size_t)r * d->cap;
        const float *q = d->q + (size_t)r * c->dim + h * hd;
        const float *kbase = cache_at(d, d->kc, block, seq, 0) + g * hd;
        const float *vbase = cache_at(d, d->vc, block, seq, 0) + g * hd;
        mtp_attend_row(d->ao + (size_t)r * c->dim + h * hd, q, kbase, vbase, ch, n, kvd, hd, scale,
                       d->scores + (size_t)rh * d->cap);
    }
}

/* The block recipe (block.h) over a pass's rows: batch-invariant row products (bf16
 * where the decoder has the copies), rotary at the rows' positions, keys and values kept
 * in the cache at the rows' slots, attention over each row's chain of cached slots. The
 * buffers alias (x is also xmid and out): a decoding pass keeps nothing for a backward. */
typedef struct {
    mtp_block_impl im;
    mtp_decoder *d;
    int block;
    const mtp_row *rows;
    const int *pos;
} dec_block;

static void dec_matmul(const mtp_block_impl *im, float *out, const float *x,
                       mtp_block_matrix which, int R, int C, int OC, float beta) {
    const dec_block *db = (const dec_block *)im;
    const mtp_bf16_matrix *wb = NULL;
    if (db->d->bf16) {
        const mtp_bf16_block *b = &db->d->bf16->blocks[db->block];
        const mtp_bf16_matrix *ms[] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->w1, &b->w2, &b->w3};
        wb = ms[which];
    }
    matmul(db->d, out, x, mtp_block_weight(&im->w, which), wb, R, C, OC, beta);
}

static void dec_rope(const mtp_block_impl *im, float *x, int R, int n_heads) {
    const dec_block *db = (const dec_block *)im;
    mtp_rope_rows(x, &db->d->rope, db->pos, R, n_heads, mtp_head_dim(im->cfg));
}

static void dec_keep_kv(const mtp_block_impl *im, const float *k, const float *v, int R) {
    const dec_block *db = (const dec_block *)im;
    mtp_decoder *d = db->d;
    size_t kvd = mtp_kv_dim(im->cfg);
    for (int r = 0; r < R; r++) {
        const mtp_row *row = &db->rows[r];
        memcpy(cache_at(d, d->kc, db->block, row->seq, row->slot), k + r * kvd, kvd * sizeof(float));
        memcpy(cache_at(d, d->vc, db->block, row->seq, row->slot), v + r * kvd, kvd * sizeof(float));
        put_kv_tiles(d, db->block, row->seq, row->slot);
    }
}

static void dec_attend(const mtp_block_impl *im, float *ao, const float *q, const float *k,
                       const float *v, int R) {
    const dec_block *db = (const dec_block *)im;
    (void)k, (void)v; /* read from the cache, where keep_kv put them */
    MTP_ASSERT(ao == db->d->ao && q == db->d->q);
    attention_rows(db->d, db->block, db->rows, R);
}

/* The recipe's context and buffers for block `block` over the pass's rows, on x. */
static dec_block dec_block_at(mtp_decoder *d, int block, const mtp_row *rows, const int *pos,
                              mtp_block_acts *b) {
    *b = (mtp_block_acts){.x = d->x, .xn1 = d->xn, .rstd1 = d->rstd, .q = d->q, .k = d->k,
                          .v = d->v, .ao = d->ao, .xmid = d->x, .xn2 = d->xn, .rstd2 = d->rstd,
                          .h1 = d->h1, .h3 = d->h3, .g = d->h1, .out = d->x};
    return (dec_block){{&d->m->cfg, mtp_block_at(&d->m->lay, d->m->params, block), dec_matmul,
                        dec_rope, dec_keep_kv, dec_attend},
                       d, block, rows, pos};
}

/* Keys and values of x (R, dim) for a block, stored at the rows' slots. */
static void block_kv(mtp_decoder *d, int block, const mtp_row *rows, int R, const int *pos) {
    mtp_block_acts b;
    dec_block db = dec_block_at(d, block, rows, pos, &b);
    mtp_block_kv(&db.im, &b, R);
}

/* x (R, dim) <- block(x). With have_kv 0 the block first writes the rows' keys and
 * values to their slots in its cache; with 1 the cache already holds them. */
static void block_rows(mtp_decoder *d, int block, const mtp_row *rows, int R, const int *pos,
                       int have_kv) {
    mtp_block_acts b;
    dec_block db = dec_block_at(d, block, rows, pos, &b);
    mtp_block_forward(&db.im, &b, R, have_kv);
}

/* Head h's logits for each row's block output in x: logits (R, nh) slots at column col. */
static void head_logits(mtp_decoder *d, const mtp_row *rows, int R, int nh, int col, float *logits) {
    const mtp_config *c = &d->m->cfg;
    int dim = c->dim, nwant = 0;
    for (int r = 0; r < R; r++) {
        if (rows[r].logits < 0) continue;
        float *zn = d->zn + ((size_t)rows[r].logits * nh + col) * dim;
        mtp_rmsnorm_fwd(zn, d->rstd, d->x + (size_t)r * dim, d->m->params + d->m->lay.norm, 1,
                        dim, c->norm_eps);
        nwant++;
    }
    if (nwant && col == nh - 1) /* all heads normed: one unembedding, weights read once */
        matmul(d, logits, d->zn, d->m->params + d->m->lay.output, d->bf16 ? &d->bf16->out : NULL,
               nwant * nh, dim, c->vocab_size, 0);
}

void mtp_decoder_forward(mtp_decoder *d, const mtp_row *rows, int R, int kv_heads, float *logits) {
    const mtp_config *c = &d->m->cfg;
    int dim = c->dim, V = c->vocab_size, nt = mtp_n_trunk(c);
    MTP_ASSERT(R > 0 && R <= d->max_rows && kv_heads >= 1 && kv_heads <= c->n_future);
    int *pos = d->pos;
    for (int r = 0; r < R; r++) {
        MTP_ASSERT(rows[r].token < (mtp_token)V && rows[r].seq >= 0 && rows[r].seq < d->n_seq);
        MTP_ASSERT(rows[r].slot >= d->len[rows[r].seq] && rows[r].slot < d->cap);
        pos[r] = rows[r].pos;
        memcpy(d->x + (size_t)r * dim, d->m->params + d->m->lay.tok_emb + (size_t)rows[r].token * dim,
               dim * sizeof(float));
    }
    build_chains(d, rows, R);
    for (int l = 0; l < nt; l++) block_rows(d, l, rows, R, pos, 0);
    memcpy(d->z, d->x, (size_t)R * dim * sizeof(float));

    int nwant = 0;
    for (int r = 0; r < R; r++) nwant += rows[r].logits >= 0;
    for (int r = 0; r < R; r++) MTP_ASSERT(rows[r].logits < nwant); /* indices 0..nwant-1 */
    /* the drafting heads' caches: keys and values from the trunk output */
    for (int h = 2; h <= kv_heads; h++) block_kv(d, nt + h - 1, rows, R, pos);
    block_rows(d, nt, rows, R, pos, 0); /* head 1 */
    head_logits(d, rows, R, 1, 0, logits);
}

void mtp_decoder_draft(mtp_decoder *d, const mtp_row *rows, const int *zrow, int R, int first,
                       int last, float *logits) {
    const mtp_config *c = &d->m->cfg;
    int dim = c->dim, nt = mtp_n_trunk(c), nh = last - first + 1, *pos = d->pos;
    MTP_ASSERT(R > 0 && R <= d->max_rows && first >= 1 && last <= c->n_future && nh >= 1);
    for (int r = 0; r < R; r++) {
        MTP_ASSERT(rows[r].logits == r && rows[r].parent < 0);
        pos[r] = rows[r].pos;
        memcpy(d->zt + (size_t)r * dim, d->z + (size_t)zrow[r] * dim, dim * sizeof(float));
    }
    build_chains(d, rows, R);
    for (int h = first; h <= last; h++) {
        memcpy(d->x, d->zt, (size_t)R * dim * sizeof(float));
        block_rows(d, nt + h - 1, rows, R, pos, 1); /* keys and values: from the forward */
        head_logits(d, rows, R, nh, h - first, logits);
    }
}
