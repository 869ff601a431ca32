/* decode.c: see decode.h. Blocks run the recipe of model/block.c (as training does), with
 * row kernels and a cache in place of the (B, T) layout. */
#include "decode/decode.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "kernels/backend.h"
#include "kernels/q8.h"
#include "kernels/team.h"
#include "model/block.h"

/* Allocated and written now: decoding would otherwise fault the pages in token by token. */
static void *touched(size_t bytes) {
    void *p = xmalloc(bytes);
    memset(p, 0, bytes);
    return p;
}

static float *ftouched(size_t n) { return touched(n * sizeof(float)); }

static size_t kv_bytes(mtp_kv_type t) { /* of a cache element */
    return t == MTP_KV_F32 ? sizeof(float) : t == MTP_KV_BF16 ? sizeof(uint16_t) : 1;
}

int mtp_decoder_init(mtp_decoder *d, const mtp_model *m, int n_seq, const int *cap, int max_rows,
                     mtp_err *err) {
    const mtp_config *c = &m->cfg;
    memset(d, 0, sizeof *d);
    size_t kv = mtp_kv_dim(c), dim = c->dim, f = c->hidden_dim, R = max_rows, slots = 0;
    int max_cap = 1;
    for (int s = 0; s < n_seq; s++) {
        MTP_ASSERT(cap[s] > 0 && cap[s] <= c->max_seq_len);
        slots += cap[s];
        max_cap = cap[s] > max_cap ? cap[s] : max_cap;
    }
    int hd = mtp_head_dim(c);
    mtp_kv_type kt = m->dec.type == MTP_F32 ? MTP_KV_F32
                     : m->dec.type == MTP_Q8 && hd % MTP_Q8_BLOCK == 0 ? MTP_KV_Q8 : MTP_KV_BF16;
    int tiles = kt == MTP_KV_BF16 && mtp_attend_bf16_available(hd) && c->n_heads / c->n_kv_heads <= MTP_ATTEND_BF16_QUERIES;
    size_t tile_block = 0;
    for (int s = 0; tiles && s < n_seq; s++) tile_block += (size_t)c->n_kv_heads * mtp_kv_tiles_size(cap[s], hd);
    size_t cache = (size_t)c->n_layers * (tiles ? tile_block : slots * kv) * kv_bytes(kt);
    size_t scales = kt == MTP_KV_Q8 ? (size_t)c->n_layers * slots * (kv / MTP_Q8_BLOCK) * sizeof(uint16_t) : 0;
    size_t attn_scratch = tiles ? (size_t)mtp_backend_threads() * mtp_attend_bf16_scratch(max_cap, hd) : 0;
    size_t rows = R * c->n_future; /* mtp_decoder_draft: every head of every row at once */
    size_t wscratch = mtp_wmat_scratch(m->dec.type, (int)rows, dim > f ? (int)dim : (int)f);
    size_t scratch = R * (dim * (10 + c->n_future) + 2 * kv + 2 * f + (size_t)c->n_heads * max_cap + max_cap);
    if (mtp_check_fits(2 * (cache + scales) + (scratch + attn_scratch) * sizeof(float) + wscratch,
                       "the KV cache and decoding buffers", err))
        return -1;
    d->m = m;
    d->n_seq = n_seq;
    d->max_rows = max_rows;
    d->max_cap = max_cap;
    d->slots = slots;
    d->cap = xmalloc(n_seq * sizeof(int));
    d->first = xmalloc(n_seq * sizeof(size_t));
    for (int s = 0; s < n_seq; s++) {
        d->cap[s] = cap[s];
        d->first[s] = s ? d->first[s - 1] + cap[s - 1] : 0;
    }
    d->len = xcalloc(n_seq, sizeof(int));
    d->kv_type = kt;
    d->tiles = tiles;
    if (tiles) {
        d->tile_first = xmalloc(n_seq * sizeof(size_t));
        for (int s = 0; s < n_seq; s++)
            d->tile_first[s] = s ? d->tile_first[s - 1] + (size_t)c->n_kv_heads * mtp_kv_tiles_size(cap[s - 1], hd) : 0;
        d->tile_block = tile_block;
        d->attn_scratch = ftouched(attn_scratch);
        d->attn_threads = mtp_backend_threads();
        d->tasks = xmalloc(R * c->n_kv_heads * 3 * sizeof(int));
    }
    d->kc = touched(cache);
    d->vc = touched(cache);
    if (scales) {
        d->ks = touched(scales);
        d->vs = touched(scales);
    }
    mtp_rope_init(&d->rope, max_cap, mtp_head_dim(c), c->rope_theta);
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
    d->scores = ftouched(R * c->n_heads * (size_t)max_cap);
    d->chain = xmalloc(R * (size_t)max_cap * sizeof(int));
    d->queries = xmalloc(R * (size_t)c->n_heads * sizeof(int));
    d->task_at = xmalloc((R * (size_t)c->n_heads + 1) * sizeof(int));
    d->nkeys = xmalloc(R * sizeof(int));
    d->pos = xmalloc(R * sizeof(int));
    d->wscratch = wscratch ? touched(wscratch) : NULL;
    return 0;
}

void mtp_decoder_free(mtp_decoder *d) {
    free(d->tile_first);
    free(d->attn_scratch);
    free(d->tasks);
    free(d->cap);
    free(d->first);
    free(d->len);
    free(d->kc);
    free(d->vc);
    free(d->ks);
    free(d->vs);
    free(d->wscratch);
    mtp_rope_free(&d->rope);
    float *bufs[] = {d->z,  d->zt, d->x,    d->xn, d->q,  d->k,  d->v,
                     d->ao, d->rstd, d->h1, d->h3, d->zn, d->scores};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
    free(d->chain);
    free(d->queries);
    free(d->task_at);
    free(d->nkeys);
    free(d->pos);
    memset(d, 0, sizeof *d);
}

/* A slot's keys or values (kv_dim elements) in a block's cache of a sequence. */
static void *cache_at(const mtp_decoder *d, void *base, int block, int seq, int slot) {
    size_t kv = mtp_kv_dim(&d->m->cfg);
    return (char *)base + (((size_t)block * d->slots + d->first[seq] + slot) * kv) * kv_bytes(d->kv_type);
}

/* An 8-bit cache's scales of that slot (kv_dim / 32) */
static uint16_t *scales_at(const mtp_decoder *d, uint16_t *base, int block, int seq, int slot) {
    size_t nb = mtp_kv_dim(&d->m->cfg) / MTP_Q8_BLOCK;
    return base + ((size_t)block * d->slots + d->first[seq] + slot) * nb;
}

/* One kv head's key or value tiles (mtp_attend_bf16) in a block's cache of a sequence. */
static uint16_t *tiles_at(const mtp_decoder *d, void *base, int block, int seq, int kv_head) {
    const mtp_config *c = &d->m->cfg;
    return (uint16_t *)base + block * d->tile_block + d->tile_first[seq] +
           (size_t)kv_head * mtp_kv_tiles_size(d->cap[seq], mtp_head_dim(c));
}

/* Stores a row's key and value (fp32, kv_dim) at a slot, in the cache's precision. */
static void put_kv(mtp_decoder *d, int block, int seq, int slot, const float *k, const float *v) {
    const mtp_config *c = &d->m->cfg;
    size_t kv = mtp_kv_dim(c);
    if (d->tiles) {
        int hd = mtp_head_dim(c);
        for (int g = 0; g < c->n_kv_heads; g++)
            mtp_kv_tiles_put(tiles_at(d, d->kc, block, seq, g), tiles_at(d, d->vc, block, seq, g), hd, slot,
                             k + g * hd, v + g * hd);
        return;
    }
    void *kd = cache_at(d, d->kc, block, seq, slot), *vd = cache_at(d, d->vc, block, seq, slot);
    switch (d->kv_type) {
    case MTP_KV_F32:
        memcpy(kd, k, kv * sizeof(float));
        memcpy(vd, v, kv * sizeof(float));
        break;
    case MTP_KV_BF16:
        mtp_bf16_round_row(kd, k, kv);
        mtp_bf16_round_row(vd, v, kv);
        break;
    case MTP_KV_Q8:
        mtp_q8_quantize(kd, scales_at(d, d->ks, block, seq, slot), k, (int)kv, 1);
        mtp_q8_quantize(vd, scales_at(d, d->vs, block, seq, slot), v, (int)kv, 1);
        break;
    }
}

void mtp_decoder_move(mtp_decoder *d, int seq, int dst, int src) {
    const mtp_config *c = &d->m->cfg;
    size_t bytes = mtp_kv_dim(c) * kv_bytes(d->kv_type), sbytes = mtp_kv_dim(c) / MTP_Q8_BLOCK * sizeof(uint16_t);
    int hd = mtp_head_dim(c);
    for (int b = 0; b < c->n_layers; b++) {
        if (!d->tiles) {
            memmove(cache_at(d, d->kc, b, seq, dst), cache_at(d, d->kc, b, seq, src), bytes);
            memmove(cache_at(d, d->vc, b, seq, dst), cache_at(d, d->vc, b, seq, src), bytes);
            if (d->kv_type == MTP_KV_Q8) {
                memmove(scales_at(d, d->ks, b, seq, dst), scales_at(d, d->ks, b, seq, src), sbytes);
                memmove(scales_at(d, d->vs, b, seq, dst), scales_at(d, d->vs, b, seq, src), sbytes);
            }
            continue;
        }
        for (int g = 0; g < c->n_kv_heads; g++) { /* read back as the tiles hold it, put again */
            uint16_t *kt = tiles_at(d, d->kc, b, seq, g), *vt = tiles_at(d, d->vc, b, seq, g);
            mtp_kv_tiles_get(d->k, d->v, kt, vt, hd, src);
            mtp_kv_tiles_put(kt, vt, hd, dst, d->k, d->v);
        }
    }
}

/* The slots each row attends to, in order: committed prefix, ancestors, itself. */
static void build_chains(mtp_decoder *d, const mtp_row *rows, int R) {
    for (int r = 0; r < R; r++) {
        int *ch = d->chain + (size_t)r * d->max_cap, depth = 0;
        for (int a = r; a >= 0; a = rows[a].parent) {
            MTP_ASSERT(rows[a].parent < a && rows[a].seq == rows[r].seq);
            depth++;
        }
        int n = d->len[rows[r].seq];
        MTP_ASSERT(n + depth <= d->cap[rows[r].seq]);
        for (int i = 0; i < n; i++) ch[i] = i;
        int at = n + depth;
        for (int a = r; a >= 0; a = rows[a].parent) ch[--at] = rows[a].slot;
        d->nkeys[r] = n + depth;
    }
}

/* Task i of attention_rows_tiles: up to MTP_ATTEND_BF16_QUERIES queries (rows r0..r1-1
 * times kv head g's query heads) into ao, on scratch of the thread running it. */
/* A pass's attention at one block, as a team job of tasks of queries. */
typedef struct {
    mtp_decoder *d;
    int block;
    const mtp_row *rows;
} attention_job;

static void tile_task(void *ctx, int i) {
    const attention_job *j = ctx;
    mtp_decoder *d = j->d;
    const mtp_row *rows = j->rows;
    int block = j->block;
    const mtp_config *c = &d->m->cfg;
    int hd = mtp_head_dim(c), group = c->n_heads / c->n_kv_heads;
    const int *t = d->tasks + 3 * i;
    int r0 = t[0], r1 = t[1], g = t[2], seq = rows[r0].seq, nq = 0;
    float *out[MTP_ATTEND_BF16_QUERIES];
    const float *q[MTP_ATTEND_BF16_QUERIES];
    const int *chain[MTP_ATTEND_BF16_QUERIES];
    int n[MTP_ATTEND_BF16_QUERIES];
    for (int r = r0; r < r1; r++)
        for (int h = g * group; h < (g + 1) * group; h++, nq++) {
            out[nq] = d->ao + (size_t)r * c->dim + h * hd;
            q[nq] = d->q + (size_t)r * c->dim + h * hd;
            chain[nq] = d->chain + (size_t)r * d->max_cap;
            n[nq] = d->nkeys[r];
        }
    mtp_kv_bf16 kv = {tiles_at(d, d->kc, block, seq, g), tiles_at(d, d->vc, block, seq, g), hd};
    mtp_attend_bf16(out, q, chain, n, nq, &kv, d->cap[seq], 1.0f / sqrtf((float)hd),
                    d->attn_scratch + mtp_team_thread() * mtp_attend_bf16_scratch(d->max_cap, hd));
}

/* Below this many multiply-adds a pass's attention runs on this thread: a plain step of the
 * demo's model (dim 256, 10 layers, 2^16-2^17 per block) ran no faster on two Zen 5 cores
 * at 2^15 than at this. A verification pass of 4 rows over ~130 positions (2^18) gains from
 * the second thread: its attention costs ~2.8x a row's on one thread, the largest of its
 * costs per row. */
enum { ATTEND_PARALLEL_MIN = 1 << 18 };

/* ao (R, dim) by mtp_attend_bf16: a task (of a team job) is up to MTP_ATTEND_BF16_QUERIES
 * queries of one sequence and kv head (its rows times the kv head's query heads). */
static void attention_rows_tiles(mtp_decoder *d, int block, const mtp_row *rows, int R, size_t work) {
    const mtp_config *c = &d->m->cfg;
    int per = MTP_ATTEND_BF16_QUERIES / (c->n_heads / c->n_kv_heads), nt = 0, *t = d->tasks;
    for (int r0 = 0, r1; r0 < R; r0 = r1) {
        for (r1 = r0 + 1; r1 < R && r1 - r0 < per && rows[r1].seq == rows[r0].seq;) r1++;
        for (int g = 0; g < c->n_kv_heads; g++, nt++) t[3 * nt] = r0, t[3 * nt + 1] = r1, t[3 * nt + 2] = g;
    }
    attention_job j = {d, block, rows};
    mtp_team_run(nt, tile_task, &j, work < ATTEND_PARALLEL_MIN ? 1 : d->attn_threads);
}

/* Groups the pass's (row, head) queries into tasks of up to MTP_ATTEND_ROWS queries of one
 * sequence and kv head, rows in order and then the kv head's query heads: their chains
 * begin alike (the sequence's cached prefix), so each task reads those keys once. */
static int group_queries(mtp_decoder *d, const mtp_row *rows, int R) {
    const mtp_config *c = &d->m->cfg;
    int H = c->n_heads, group = H / c->n_kv_heads, nq = 0, nt = 0;
    for (int r0 = 0, r1; r0 < R; r0 = r1) {
        for (r1 = r0 + 1; r1 < R && rows[r1].seq == rows[r0].seq;) r1++;
        for (int g = 0; g < c->n_kv_heads; g++)
            for (int r = r0; r < r1; r++)
                for (int h = g * group; h < (g + 1) * group; h++) {
                    if ((r == r0 && h == g * group) || nq - d->task_at[nt - 1] == MTP_ATTEND_ROWS)
                        d->task_at[nt++] = nq;
                    d->queries[nq++] = r * H + h;
                }
    }
    d->task_at[nt] = nq;
    return nt;
}

/* Task t of group_queries: its queries' attention into ao (mtp_attend_rows). */
static void row_task(void *ctx, int t) {
    const attention_job *j = ctx;
    mtp_decoder *d = j->d;
    const mtp_row *rows = j->rows;
    int block = j->block;
    const mtp_config *c = &d->m->cfg;
    int H = c->n_heads, hd = mtp_head_dim(c), group = H / c->n_kv_heads, kvd = mtp_kv_dim(c);
    float *out[MTP_ATTEND_ROWS], *scores[MTP_ATTEND_ROWS];
    const float *q[MTP_ATTEND_ROWS];
    const int *ch[MTP_ATTEND_ROWS];
    int n[MTP_ATTEND_ROWS], nq = d->task_at[t + 1] - d->task_at[t], first = d->queries[d->task_at[t]];
    int seq = rows[first / H].seq, g = first % H / group;
    for (int i = 0; i < nq; i++) {
        int rh = d->queries[d->task_at[t] + i], r = rh / H, h = rh % H;
        out[i] = d->ao + (size_t)r * c->dim + h * hd;
        q[i] = d->q + (size_t)r * c->dim + h * hd;
        ch[i] = d->chain + (size_t)r * d->max_cap;
        n[i] = d->nkeys[r];
        scores[i] = d->scores + (size_t)rh * d->max_cap;
    }
    size_t at = (size_t)g * hd, es = kv_bytes(d->kv_type);
    mtp_kv_data k = {(const char *)cache_at(d, d->kc, block, seq, 0) + at * es, NULL};
    mtp_kv_data v = {(const char *)cache_at(d, d->vc, block, seq, 0) + at * es, NULL};
    if (d->kv_type == MTP_KV_Q8) {
        k.scale = scales_at(d, d->ks, block, seq, 0) + at / MTP_Q8_BLOCK;
        v.scale = scales_at(d, d->vs, block, seq, 0) + at / MTP_Q8_BLOCK;
    }
    mtp_attend_rows(out, q, k, v, d->kv_type, ch, n, nq, kvd, hd, 1.0f / sqrtf((float)hd), scores);
}

/* ao (R, dim): each row's attention over its chain, in tasks of queries sharing keys. A
 * query's bits do not depend on its task's other queries (mtp_attend_rows). */
static void attention_rows(mtp_decoder *d, int block, const mtp_row *rows, int R) {
    const mtp_config *c = &d->m->cfg;
    size_t work = 0; /* multiply-adds */
    for (int r = 0; r < R; r++) work += (size_t)d->nkeys[r] * c->n_heads * mtp_head_dim(c) * 2;
    if (d->tiles) {
        attention_rows_tiles(d, block, rows, R, work);
        return;
    }
    int nt = group_queries(d, rows, R);
    attention_job j = {d, block, rows};
    /* below a few tens of thousands, a fork and join costs more */
    mtp_team_run(nt, row_task, &j, work < 1u << 16 ? 1 : mtp_backend_threads());
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
    const mtp_wmat *w = &db->d->m->dec.blocks[db->block].mat[which];
    MTP_ASSERT(w->C == C && w->OC == OC);
    mtp_wmat_matmul(out, x, w, R, beta, db->d->wscratch);
}

/* the last two matrices through the paired product (k, v; w1, w3), a first one (q) alone */
static void dec_matmul_parts(const mtp_block_impl *im, float *const outs[], const float *x,
                             const mtp_block_matrix which[], int n, int R, int C) {
    const dec_block *db = (const dec_block *)im;
    const mtp_wmat *w = db->d->m->dec.blocks[db->block].mat;
    MTP_ASSERT(n == 2 || n == 3);
    if (n == 3) dec_matmul(im, outs[0], x, which[0], R, C, w[which[0]].OC, 0);
    const mtp_wmat *a = &w[which[n - 2]], *b = &w[which[n - 1]];
    MTP_ASSERT(a->C == C && b->C == C && a->OC == b->OC);
    mtp_wmat_matmul_pair(outs[n - 2], outs[n - 1], x, a, b, R, db->d->wscratch);
}

static void dec_rope(const mtp_block_impl *im, float *x, int R, int n_heads) {
    const dec_block *db = (const dec_block *)im;
    mtp_rope_rows(x, &db->d->rope, db->pos, R, n_heads, mtp_head_dim(im->cfg));
}

static void dec_keep_kv(const mtp_block_impl *im, const float *k, const float *v, int R) {
    const dec_block *db = (const dec_block *)im;
    size_t kvd = mtp_kv_dim(im->cfg);
    for (int r = 0; r < R; r++)
        put_kv(db->d, db->block, db->rows[r].seq, db->rows[r].slot, k + r * kvd, v + r * kvd);
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
    const mtp_wblock *w = &d->m->dec.blocks[block];
    return (dec_block){{&d->m->cfg, w->attn_norm, w->ffn_norm, dec_matmul, dec_matmul_parts, dec_rope, dec_keep_kv, dec_attend},
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

/* Head 1's logits of the rows that want them (row.logits >= 0: their index) from the block
 * outputs in x. */
static void head_logits(mtp_decoder *d, const mtp_row *rows, int R, float *logits) {
    const mtp_config *c = &d->m->cfg;
    int dim = c->dim, nwant = 0;
    for (int r = 0; r < R; r++) {
        if (rows[r].logits < 0) continue;
        float *zn = d->zn + (size_t)rows[r].logits * dim;
        mtp_rmsnorm_fwd(zn, d->rstd, d->x + (size_t)r * dim, d->m->dec.norm, 1, dim, c->norm_eps);
        nwant++;
    }
    if (nwant) mtp_wmat_matmul(logits, d->zn, &d->m->dec.out, nwant, 0, d->wscratch);
}

void mtp_decoder_forward(mtp_decoder *d, const mtp_row *rows, int R, int kv_heads, float *logits) {
    const mtp_config *c = &d->m->cfg;
    int dim = c->dim, V = c->vocab_size, nt = mtp_n_trunk(c);
    MTP_ASSERT(R > 0 && R <= d->max_rows && kv_heads >= 1 && kv_heads <= c->n_future);
    int *pos = d->pos, was = mtp_loops_on_caller;
    mtp_loops_on_caller = 1; /* the team's threads only (util.h) */
    for (int r = 0; r < R; r++) {
        MTP_ASSERT(rows[r].token < (mtp_token)V && rows[r].seq >= 0 && rows[r].seq < d->n_seq);
        MTP_ASSERT(rows[r].slot >= d->len[rows[r].seq] && rows[r].slot < d->cap[rows[r].seq]);
        MTP_ASSERT(rows[r].pos < d->max_cap);
        pos[r] = rows[r].pos;
        mtp_wrows_get(&d->m->dec.emb, (int)rows[r].token, d->x + (size_t)r * dim);
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
    head_logits(d, rows, R, logits);
    mtp_loops_on_caller = was;
}

void mtp_decoder_draft(mtp_decoder *d, const mtp_row *rows, const int *zrow, const int *n, int first, int last,
                       float *logits) {
    const mtp_config *c = &d->m->cfg;
    int dim = c->dim, nt = mtp_n_trunk(c), R = n[0], *pos = d->pos, was = mtp_loops_on_caller;
    MTP_ASSERT(R > 0 && R <= d->max_rows && first >= 1 && last <= c->n_future && last >= first);
    mtp_loops_on_caller = 1; /* the team's threads only (util.h) */
    for (int r = 0; r < R; r++) {
        MTP_ASSERT(rows[r].logits == r && rows[r].parent < 0);
        pos[r] = rows[r].pos;
        memcpy(d->zt + (size_t)r * dim, d->z + (size_t)zrow[r] * dim, dim * sizeof(float));
    }
    build_chains(d, rows, R);
    size_t at = 0; /* normed rows so far, head by head */
    for (int h = first; h <= last; h++) {
        int Rh = n[h - first];
        MTP_ASSERT(Rh >= 1 && Rh <= (h == first ? R : n[h - first - 1]));
        memcpy(d->x, d->zt, (size_t)Rh * dim * sizeof(float));
        block_rows(d, nt + h - 1, rows, Rh, pos, 1); /* keys and values: from the forward */
        for (int r = 0; r < Rh; r++, at++)
            mtp_rmsnorm_fwd(d->zn + at * dim, d->rstd, d->x + (size_t)r * dim, d->m->dec.norm, 1, dim, c->norm_eps);
    }
    mtp_wmat_matmul(logits, d->zn, &d->m->dec.out, (int)at, 0, d->wscratch); /* weights read once */
    mtp_loops_on_caller = was;
}
