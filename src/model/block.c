/* block.c: see block.h. */
#include "model/block.h"

/* k rotated, then k and v handed to keep_kv */
static void keys_done(const mtp_block_impl *im, mtp_block_acts *b, int R) {
    im->rope(im, b->k, R, im->cfg->n_kv_heads);
    im->keep_kv(im, b->k, b->v, R);
}

void mtp_block_kv(const mtp_block_impl *im, mtp_block_acts *b, int R) {
    const mtp_config *c = im->cfg;
    mtp_rmsnorm_fwd(b->xn1, b->rstd1, b->x, im->attn_norm, R, c->dim, c->norm_eps);
    im->matmul_parts(im, (float *const[]){b->k, b->v}, b->xn1, (const mtp_block_matrix[]){MTP_WK, MTP_WV}, 2, R,
                     c->dim);
    keys_done(im, b, R);
}

void mtp_block_forward(const mtp_block_impl *im, mtp_block_acts *b, int R, int have_kv) {
    const mtp_config *c = im->cfg;
    int d = c->dim, f = c->hidden_dim;
    /* xmid = x + Attention(RMSNorm(x)); q, k, v from one product where k, v are made here */
    mtp_rmsnorm_fwd(b->xn1, b->rstd1, b->x, im->attn_norm, R, d, c->norm_eps);
    if (have_kv) {
        im->matmul(im, b->q, b->xn1, MTP_WQ, R, d, d, 0);
    } else {
        im->matmul_parts(im, (float *const[]){b->q, b->k, b->v}, b->xn1,
                         (const mtp_block_matrix[]){MTP_WQ, MTP_WK, MTP_WV}, 3, R, d);
        keys_done(im, b, R);
    }
    im->rope(im, b->q, R, c->n_heads);
    im->attend(im, b->ao, b->q, b->k, b->v, R);
    if (b->xmid != b->x) mtp_copy(b->xmid, b->x, (size_t)R * d);
    im->matmul(im, b->xmid, b->ao, MTP_WO, R, d, d, 1);
    /* out = xmid + FFN(RMSNorm(xmid)), FFN(x) = w2(silu(w1 x) * w3 x) */
    mtp_rmsnorm_fwd(b->xn2, b->rstd2, b->xmid, im->ffn_norm, R, d, c->norm_eps);
    im->matmul_parts(im, (float *const[]){b->h1, b->h3}, b->xn2, (const mtp_block_matrix[]){MTP_W1, MTP_W3}, 2, R, d);
    mtp_swiglu_fwd(b->g, b->h1, b->h3, (size_t)R * f);
    if (b->out != b->xmid) mtp_copy(b->out, b->xmid, (size_t)R * d);
    im->matmul(im, b->out, b->g, MTP_W2, R, f, d, 1);
}
