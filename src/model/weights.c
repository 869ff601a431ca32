/* weights.c: see weights.h. */
#include "model/weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/util.h"
#include "model/checkpoint.h"

static size_t mat_offset(const mtp_block_offsets *o, int which) {
    const size_t offs[MTP_BLOCK_MATRICES] = {o->wq, o->wk, o->wv, o->wo, o->w1, o->w2, o->w3};
    return offs[which];
}

/* The inputs (C) and outputs (OC) of a block's matrix `which`. */
static void mat_dims(const mtp_config *c, int which, int *C, int *OC) {
    int dim = c->dim, kvd = mtp_kv_dim(c), f = c->hidden_dim;
    const int in[MTP_BLOCK_MATRICES] = {dim, dim, dim, dim, dim, f, dim};
    const int out[MTP_BLOCK_MATRICES] = {dim, kvd, kvd, dim, f, dim, f};
    *C = in[which], *OC = out[which];
}

/* The parameter at a flat-buffer offset (every tensor of the layout has its own). */
static const mtp_param *param_at(const mtp_layout *lay, size_t offset) {
    for (int i = 0; i < lay->n_params; i++)
        if (lay->params[i].offset == offset) return &lay->params[i];
    MTP_ASSERT(!"no parameter at this offset");
    return NULL;
}

void mtp_weights_from_params(mtp_weights *w, const mtp_layout *lay, const mtp_config *c,
                             const float *params, mtp_wtype t) {
    memset(w, 0, sizeof *w);
    w->type = t;
    w->n_blocks = lay->n_blocks;
    w->blocks = xcalloc(lay->n_blocks, sizeof *w->blocks);
    for (int l = 0; l < lay->n_blocks; l++) {
        const mtp_block_offsets *o = &lay->blocks[l];
        mtp_wblock *b = &w->blocks[l];
        for (int k = 0; k < MTP_BLOCK_MATRICES; k++) {
            int C, OC;
            mat_dims(c, k, &C, &OC);
            mtp_wmat_from_f32(&b->mat[k], t, params + mat_offset(o, k), C, OC);
        }
        b->attn_norm = params + o->attn_norm;
        b->ffn_norm = params + o->ffn_norm;
    }
    w->emb = (mtp_wrows){MTP_F32, c->vocab_size, c->dim, params + lay->tok_emb, NULL};
    w->norm = params + lay->norm;
    mtp_wmat_from_f32(&w->out, t, params + lay->output, c->dim, c->vocab_size);
}

/* Bytes of an open file's tensor as the type they are for: a copy when the map's address
 * does not suit the type (the file's header length decides where tensors start). */
static const void *aligned(const mtp_st_tensor *t, size_t align, void **copy) {
    *copy = NULL;
    if ((uintptr_t)t->data % align == 0) return t->data;
    *copy = xmalloc(t->nbytes ? t->nbytes : 1);
    memcpy(*copy, t->data, t->nbytes);
    return *copy;
}

/* The matrix param p of the file, in its own type; its map pages are let go afterwards
 * (the packed copy is what decoding reads). F32 and F16 matrices become floats at *fl. */
static void file_matrix(mtp_wmat *m, const mtp_safetensors *st, const mtp_param *p, float **fl) {
    mtp_param_tensor pt;
    mtp_err err;
    MTP_ASSERT(mtp_param_tensor_find(st, "", p, &pt, &err) == 0); /* checked when opened */
    int C = (int)p->shape[1], OC = (int)p->shape[0];
    void *c1, *c2;
    if (pt.t->dtype == MTP_DT_BF16) {
        mtp_wmat_from_bf16(m, aligned(pt.t, 2, &c1), C, OC);
        free(c1);
    } else if (pt.t->dtype == MTP_DT_I8) {
        mtp_wmat_from_q8(m, (const int8_t *)pt.t->data, aligned(pt.scale, 2, &c2), C, OC);
        free(c2);
        mtp_st_release(pt.scale);
    } else {
        MTP_ASSERT(mtp_st_to_f32(st, pt.t, *fl, &err) == 0);
        mtp_wmat_from_f32(m, MTP_F32, *fl, C, OC);
        *fl += p->numel;
    }
    mtp_st_release(pt.t);
}

/* A vector param (a norm) as floats at *fl. */
static const float *file_vector(const mtp_safetensors *st, const mtp_param *p, float **fl) {
    mtp_param_tensor pt;
    mtp_err err;
    MTP_ASSERT(mtp_param_tensor_find(st, "", p, &pt, &err) == 0 && mtp_st_to_f32(st, pt.t, *fl, &err) == 0);
    const float *v = *fl;
    *fl += p->numel;
    return v;
}

void mtp_weights_from_file(mtp_weights *w, const mtp_safetensors *st, const mtp_layout *lay,
                           const mtp_config *c) {
    memset(w, 0, sizeof *w);
    size_t floats = 0; /* what is copied as floats: vectors, and F32 / F16 matrices */
    for (int i = 0; i < lay->n_params; i++) {
        const mtp_param *p = &lay->params[i];
        const mtp_st_tensor *t = mtp_st_find(st, p->name);
        int as_rows = p->offset == lay->tok_emb && t->dtype != MTP_DT_F16;
        if (p->ndim == 1 || (!as_rows && (t->dtype == MTP_DT_F32 || t->dtype == MTP_DT_F16))) floats += p->numel;
    }
    w->owned = falloc(floats ? floats : 1);
    float *fl = w->owned;
    w->n_blocks = lay->n_blocks;
    w->blocks = xcalloc(lay->n_blocks, sizeof *w->blocks);
    for (int l = 0; l < lay->n_blocks; l++) {
        const mtp_block_offsets *o = &lay->blocks[l];
        mtp_wblock *b = &w->blocks[l];
        b->attn_norm = file_vector(st, param_at(lay, o->attn_norm), &fl);
        b->ffn_norm = file_vector(st, param_at(lay, o->ffn_norm), &fl);
        for (int k = 0; k < MTP_BLOCK_MATRICES; k++) file_matrix(&b->mat[k], st, param_at(lay, mat_offset(o, k)), &fl);
    }
    w->norm = file_vector(st, param_at(lay, lay->norm), &fl);
    file_matrix(&w->out, st, param_at(lay, lay->output), &fl);
    const mtp_param *p = param_at(lay, lay->tok_emb);
    mtp_param_tensor pt;
    mtp_err err;
    MTP_ASSERT(mtp_param_tensor_find(st, "", p, &pt, &err) == 0);
    mtp_dtype dt = pt.t->dtype;
    w->emb = (mtp_wrows){dt == MTP_DT_BF16 ? MTP_BF16 : dt == MTP_DT_I8 ? MTP_Q8 : MTP_F32, c->vocab_size, c->dim,
                         pt.t->data, pt.scale ? pt.scale->data : NULL};
    if (dt == MTP_DT_F16) w->emb.data = file_vector(st, p, &fl); /* no F16 rows: floats */
    w->type = w->out.type;
}

/* n uniform values in [-0.02 sqrt 3, 0.02 sqrt 3] (standard deviation 0.02), seeded per chunk. */
static void random_fill(float *x, size_t n, uint64_t seed) {
    enum { CHUNK = 1 << 16 };
#pragma omp parallel for schedule(static)
    for (size_t c0 = 0; c0 < n; c0 += CHUNK) {
        mtp_rng r = {seed ^ (c0 * 0x9E3779B97F4A7C15ull)};
        for (size_t i = c0; i < n && i < c0 + CHUNK; i++)
            x[i] = (float)((mtp_rng_uniform(&r) * 2 - 1) * 0.034641016);
    }
}

void mtp_weights_random(mtp_weights *w, const mtp_layout *lay, const mtp_config *c, mtp_wtype t,
                        uint64_t seed) {
    memset(w, 0, sizeof *w);
    int dim = c->dim, f = c->hidden_dim, V = c->vocab_size;
    size_t most = (size_t)V * dim > (size_t)f * dim ? (size_t)V * dim : (size_t)f * dim;
    /* F32: the matrices are views, so their floats live in owned; else one matrix at a time */
    size_t f32 = t == MTP_F32 ? lay->total - (size_t)V * dim : 0;
    float *tmp = t == MTP_F32 ? NULL : falloc(most), *next = NULL;
    w->type = t;
    w->n_blocks = lay->n_blocks;
    w->blocks = xcalloc(lay->n_blocks, sizeof *w->blocks);
    w->owned = falloc(2 * (size_t)dim + f32); /* the norms: ones; F32 matrices */
    for (int k = 0; k < 2 * dim; k++) w->owned[k] = 1.0f;
    next = w->owned + 2 * dim;
    for (int l = 0; l < lay->n_blocks; l++) {
        mtp_wblock *b = &w->blocks[l];
        for (int k = 0; k < MTP_BLOCK_MATRICES; k++) {
            int C, OC;
            mat_dims(c, k, &C, &OC);
            float *m = t == MTP_F32 ? next : tmp;
            random_fill(m, (size_t)C * OC, seed + 7 * (uint64_t)(l * MTP_BLOCK_MATRICES + k));
            mtp_wmat_from_f32(&b->mat[k], t, m, C, OC);
            if (t == MTP_F32) next += (size_t)C * OC;
        }
        b->attn_norm = b->ffn_norm = w->owned;
    }
    w->norm = w->owned;
    float *o = t == MTP_F32 ? next : tmp;
    random_fill(o, (size_t)V * dim, seed + 1);
    mtp_wmat_from_f32(&w->out, t, o, dim, V);
    /* the embedding, as rows in type t */
    size_t n = (size_t)V * dim, nb = (size_t)(dim + MTP_Q8_BLOCK - 1) / MTP_Q8_BLOCK;
    float *e = t == MTP_F32 ? xmalloc(n * sizeof(float)) : tmp; /* tmp holds V x dim: no second copy */
    random_fill(e, n, seed + 2);
    if (t == MTP_F32) {
        w->owned_rows = e;
        w->emb = (mtp_wrows){MTP_F32, V, dim, e, NULL};
    } else if (t == MTP_BF16) {
        uint16_t *rows = w->owned_rows = xmalloc(n * sizeof *rows);
        for (size_t i = 0; i < n; i++) rows[i] = mtp_bf16_round(e[i]);
        w->emb = (mtp_wrows){MTP_BF16, V, dim, rows, NULL};
    } else {
        int8_t *q = w->owned_rows = xmalloc(n + (size_t)V * nb * sizeof(uint16_t));
        mtp_q8_quantize(q, (uint16_t *)(q + n), e, dim, V);
        w->emb = (mtp_wrows){MTP_Q8, V, dim, q, q + n};
    }
    free(tmp);
}

void mtp_weights_free(mtp_weights *w) {
    for (int l = 0; w->blocks && l < w->n_blocks; l++)
        for (int k = 0; k < MTP_BLOCK_MATRICES; k++) mtp_wmat_free(&w->blocks[l].mat[k]);
    free(w->blocks);
    mtp_wmat_free(&w->out);
    free(w->owned);
    free(w->owned_rows);
    memset(w, 0, sizeof *w);
}

size_t mtp_wblock_bytes(const mtp_wblock *b) {
    size_t n = 0;
    for (int k = 0; k < MTP_BLOCK_MATRICES; k++) n += mtp_wmat_bytes(&b->mat[k]);
    return n + 2 * (size_t)b->mat[MTP_WQ].C * sizeof(float);
}
