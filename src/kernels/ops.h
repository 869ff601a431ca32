/* ops.h: the model's kernels, forward and backward. Argument order: outputs, inputs,
 * weights, sizes. Shapes in each comment; N = B*T rows.
 * Convention: backward functions ACCUMULATE (+=) into weight gradients, so shared weights
 * need no extra adds. Activation gradients are WRITTEN where the backward knows the whole
 * value (mtp_swiglu_bwd, mtp_attention_bwd, mtp_rmsnorm_bwd, which adds the residual
 * branch's gradient in the same pass) or as asked (mtp_matmul_bwd's dx_beta): no buffer is zeroed to be added to.
 * Two functions work "in place": mtp_rope_bwd and mtp_xent, which transform their buffer.
 * Every kernel here has a plain double-precision twin in ops_ref.h, the test oracle. */
#ifndef MTP_OPS_H
#define MTP_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "core/util.h" /* mtp_token */

/* out (N,C) = wte[tokens] ; tokens (N) already validated < V */
void mtp_embedding_fwd(float *out, const mtp_token *tokens, const float *wte, int N, int C);
/* dwte (V,C) += scatter of dout (N,C) */
void mtp_embedding_bwd(float *dwte, const float *dout, const mtp_token *tokens, int N, int C);

/* out (N,C) = x * rsqrt(mean(x^2) + eps) * w ; rstd (N) saved for backward */
void mtp_rmsnorm_fwd(float *out, float *rstd, const float *x, const float *w, int N, int C,
                     float eps);
/* dx (N,C) = dres + the norm's input gradient (dres NULL: none; dx may be dres), dw (C) +=
 * (dw NULL: none, a frozen weight). dres is the gradient reaching x by the residual path. */
void mtp_rmsnorm_bwd(float *dx, float *dw, const float *dout, const float *dres, const float *x,
                     const float *w, const float *rstd, int N, int C);

/* out (N,OC) = beta * out + x (N,C) @ w^T (OC,C)   (beta 1 adds a residual in place) */
void mtp_matmul_fwd(float *out, const float *x, const float *w, int N, int C, int OC, float beta);
/* dx (N,C) = dx_beta * dx + dout @ w (dx_beta 0: written, never read; 1: accumulated);
 * dw (OC,C) += dout^T @ x ; dx or dw may be NULL (not wanted) */
void mtp_matmul_bwd(float *dx, float *dw, const float *dout, const float *x, const float *w,
                    int N, int C, int OC, float dx_beta);
/* Several weights over one input x (N,C), as one product where the kernels allow it (x
 * packed once; mtp_gemm_parts), else one per weight; the same bits either way as the
 * single-weight calls above. Forward: out (N,OC) = x @ w^T (OC,C) for each part. */
typedef struct {
    const float *w;
    float *out;
    int OC;
} mtp_matmul_part;
void mtp_matmul_fwd_parts(const mtp_matmul_part *parts, int n, const float *x, int N, int C);
/* Backward: dx (N,C) = dx_beta * dx + sum over parts of dout @ w (in part order, as
 * mtp_matmul_bwd's calls with dx_beta 1 after the first would add them; dx NULL: not
 * wanted); dw (OC,C) += dout^T @ x for each part whose dw is not NULL */
typedef struct {
    const float *w, *dout;
    float *dw;
    int OC;
} mtp_matmul_grad_part;
void mtp_matmul_bwd_parts(float *dx, const mtp_matmul_grad_part *parts, int n, const float *x, int N,
                          int C, float dx_beta);
/* bf16 != 0: from now on the four above round their inputs to bf16 and sum in fp32
 * (mtp_gemm_bf16, gemm.h; the training's --precision bf16); 0: fp32. -1 (and no change)
 * where bf16 products are not available (mtp_gemm_bf16_available). One setting for the
 * process: training sets it for its run. The training attention's tile products follow it
 * too (attention.c). */
int mtp_matmul_precision(int bf16);
int mtp_matmul_is_bf16(void); /* what mtp_matmul_precision set last */

/* Rotary tables for positions 0..T-1: cos, sin (T, head_dim/2), Meta's convention:
 * pair (2j, 2j+1) rotates by pos * theta^(-2j/head_dim). */
typedef struct {
    float *cos, *sin;
    int T, half;
} mtp_rope;
void mtp_rope_init(mtp_rope *r, int T, int head_dim, float theta);
void mtp_rope_free(mtp_rope *r);
/* x (B,T,nh*hd) rotated in place; row n is position n % T */
void mtp_rope_fwd(float *x, const mtp_rope *r, int N, int T, int nh, int hd);
/* in place: dx (B,T,nh*hd) rotated back (the transpose of the forward rotation) */
void mtp_rope_bwd(float *dx, const mtp_rope *r, int N, int T, int nh, int hd);
/* decoding: x (R, nh*hd) rotated in place, row r at position pos[r] (< rope T); the same
 * rotation as mtp_rope_fwd, batch-invariant (each row on its own) */
void mtp_rope_rows(float *x, const mtp_rope *r, const int *pos, int R, int nh, int hd);

/* Causal attention with grouped-query heads (attention.c; query head h reads kv head
 * h / (H/Hkv)), in tiles of MTP_ATT_TILE queries x keys with an online softmax: no
 * (T, T) block is kept, memory is linear in T. q (B,T,H*hd), k and v (B,T,Hkv*hd);
 * scores scaled by 1/sqrt(hd). out (B,T,H*hd); lse (B,H,T) each query's log-sum-exp of
 * its scaled scores, saved for the backward. */
enum { MTP_ATT_TILE = 64 };
void mtp_attention_fwd(float *out, float *lse, const float *q, const float *k, const float *v,
                       int B, int T, int H, int Hkv, int hd);
/* dq =, dk =, dv = (written) ; out and lse from the forward (the probabilities are
 * recomputed) */
void mtp_attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *out,
                       const float *lse, const float *q, const float *k, const float *v, int B,
                       int T, int H, int Hkv, int hd);

/* The one softmax (ops_decode.c): in place x (n) = exp(x - mx) / sum, mx the largest x
 * (the caller has it); returns the sum of the exponentials. mtp_sum_exp: that sum alone.
 * mtp_exp_sum: out (n) = exp(x - mx) unnormalised (out may be x), returns their sum. */
float mtp_softmax(float *x, int n, float mx);
float mtp_sum_exp(const float *x, int n, float mx);
float mtp_exp_sum(float *out, const float *x, int n, float mx);

/* g (N,F) = silu(h1) * h3 */
void mtp_swiglu_fwd(float *g, const float *h1, const float *h3, size_t n);
/* dh1 (N,F) =, dh3 (N,F) = (written): 16 at a time where the CPU allows, the same bits */
void mtp_swiglu_bwd(float *dh1, float *dh3, const float *dg, const float *h1, const float *h3,
                    size_t n);

/* Whole-buffer passes, on every thread for big buffers: x (n) = 0; dst (n) = src;
 * y (n) += x. */
void mtp_zero(float *x, size_t n);
void mtp_copy(float *dst, const float *src, size_t n);
void mtp_add(float *y, const float *x, size_t n);

/* Cross-entropy of logits (N,V) against targets (N): losses (N) in nats, hits (N) 1 where
 * the argmax equals the target (either may be NULL). If grad_scale != 0, in place:
 * logits become dlogits = (softmax - onehot) * grad_scale. */
void mtp_xent(float *losses, uint8_t *hits, float *logits, const mtp_token *targets, int N, int V,
              float grad_scale);

/* ---- decoding kernels (ops_decode.c): batch-invariant -------------------------------
 * A row's result is computed by the same instructions in the same order whether it is
 * alone or among others, and whatever the thread count, so speculative verification
 * reproduces plain decoding bit for bit. Each weight row is read once per call for all
 * rows (decoding at small batch is bound by reading weights). */

/* out (R,OC) = beta * out + x (R,C) @ w^T (OC,C) */
void mtp_matmul_rows(float *out, const float *x, const float *w, int R, int C, int OC, float beta);
/* bf16 decoding (ops_bf16.c): weights packed once into bf16 tiles; rows rounded to bf16
 * per call; products summed in fp32. With Intel AMX (mtp_amx_available), up to 16 rows
 * cost about one read of the packed weights; with AVX512-BF16 (mtp_bf16_dp_available),
 * up to 6; with AVX2 and FMA (mtp_bf16_avx2_available), 4 at a time; elsewhere a portable
 * loop. */
typedef struct {
    uint16_t *p;
    int C, OC;
} mtp_bf16_matrix;
void mtp_bf16_pack(mtp_bf16_matrix *m, const float *w, int C, int OC); /* w (OC,C) */
/* the same tiles from bf16 weights w (OC,C), their bits moved as they are (no rounding) */
void mtp_bf16_pack_bf16(mtp_bf16_matrix *m, const uint16_t *w, int C, int OC);
size_t mtp_bf16_bytes(const mtp_bf16_matrix *m); /* bytes of the tiles: what a matmul reads */
void mtp_bf16_free(mtp_bf16_matrix *m);
uint16_t mtp_bf16_round(float f);                                    /* nearest, ties even */
float mtp_bf16_weight(const mtp_bf16_matrix *m, int o, int k);       /* w[o][k] as packed */
int mtp_amx_available(void); /* MTP_NO_AMX in the environment: 0 */
void mtp_amx_disable(void);  /* from now on the next path (tests) */
/* AVX512-BF16 (vdpbf16ps), the path where AMX is not: MTP_NO_AVX512BF16 in the
 * environment: 0 */
int mtp_bf16_dp_available(void);
void mtp_bf16_dp_disable(void); /* from now on the portable path, where AMX is off too */
/* AVX2 + FMA, the path where AVX512-BF16 is not: the portable path's bits (a fused
 * multiply-add per input, in order), faster; MTP_NO_AVX2 in the environment: 0 */
int mtp_bf16_avx2_available(void);
const char *mtp_bf16_path(void); /* the bf16 matmul's path now: AMX, AVX512-BF16, AVX2, portable */
size_t mtp_bf16_scratch(int R, int C); /* uint16_t elements of scratch (zeroed once) */
/* out (R,OC) = beta * out + bf16(x) (R,C) @ w^T */
void mtp_matmul_rows_bf16(float *out, const float *x, const mtp_bf16_matrix *w, int R, float beta,
                          uint16_t *scratch);
/* out_a = bf16(x) @ a^T and out_b = bf16(x) @ b^T (a and b of one C): the rows rounded once,
 * and on AVX512-BF16 both products in one parallel region; the bits of two calls */
void mtp_matmul_rows_bf16_pair(float *out_a, float *out_b, const float *x, const mtp_bf16_matrix *a,
                               const mtp_bf16_matrix *b, int R, uint16_t *scratch);
/* the portable and AVX2 paths alone (tests); the AVX2 one asserts mtp_bf16_avx2_available */
void mtp_matmul_rows_bf16_portable(float *out, const float *x, const mtp_bf16_matrix *w, int R, float beta,
                                   uint16_t *scratch);
void mtp_matmul_rows_bf16_avx2(float *out, const float *x, const mtp_bf16_matrix *w, int R, float beta,
                               uint16_t *scratch);
/* bf16 attention on Intel AMX or AVX512-BF16 (attend_bf16.c), for decoders in bf16: q, k and v rounded
 * to bf16 (k and v once, into the tiles: the only copy it reads); the softmax numerators
 * rounded to bf16 over whole blocks of 32 positions, fp32 after the last whole block.
 * Batch-invariant like the rest: a query's result depends on its own vector and on the
 * keys and values at its positions, not on the slots holding them nor on the other
 * queries. */
typedef struct {
    const uint16_t *k, *v; /* keys (rotated) and values of one kv head, bf16, in tiles */
    int hd;
} mtp_kv_bf16;
int mtp_attend_bf16_available(int hd);           /* AMX or AVX512-BF16, and hd a multiple of 32 */
const char *mtp_attend_bf16_path(void);          /* its path now: "AMX", "AVX512-BF16" or "none" */
size_t mtp_attend_bf16_scratch(int cap, int hd); /* floats of scratch per call */
size_t mtp_kv_tiles_size(int cap, int hd);       /* uint16_t elements of k (or v) tiles */
/* Rounds a slot's key and value (hd each) into one kv head's tiles. Slots 2j and 2j+1
 * share tile rows: not from two threads at once. */
void mtp_kv_tiles_put(uint16_t *kt, uint16_t *vt, int hd, int slot, const float *k, const float *v);
/* k, v (hd) = a slot's key and value as the tiles hold them, widened to fp32: put back at
 * any slot, the same bf16 (how a decoder keeping only tiles moves a slot) */
void mtp_kv_tiles_get(float *k, float *v, const uint16_t *kt, const uint16_t *vt, int hd, int slot);
enum { MTP_ATTEND_BF16_QUERIES = 16 }; /* queries per call: one tile's rows */
/* For nq <= MTP_ATTEND_BF16_QUERIES queries of one sequence and kv head: out[i] (hd) =
 * softmax over the n[i] keys chain[i][0..n[i]-1] (the slots of positions 0..n[i]-1, in
 * order; slots < cap) of scale * q[i] . k, weighing the values. */
void mtp_attend_bf16(float *const *out, const float *const *q, const int *const *chain,
                     const int *n, int nq, const mtp_kv_bf16 *kv, int cap, float scale,
                     float *scratch);
/* out (hd) = softmax_j(scale * q . k_j) weighted sum of v_j over n keys, key j's vectors at
 * k + idx[j] * stride and v + idx[j] * stride; s: n floats of scratch (the weights) */
void mtp_attend_row(float *out, const float *q, const float *k, const float *v, const int *idx,
                    int n, size_t stride, int hd, float scale, float *s);
/* The same over bf16 caches (key j's vectors at k + idx[j] * stride and v + idx[j] * stride,
 * bf16): the bits of mtp_attend_row on the keys and values widened to fp32. */
void mtp_attend_row_bf16(float *out, const float *q, const uint16_t *k, const uint16_t *v, const int *idx,
                         int n, size_t stride, int hd, float scale, float *s);
/* A cache's keys or values as mtp_attend_rows reads them: fp32, bf16, or 8-bit (int8 x with
 * one F16 scale per 32 elements, element i = x[i] * scale[i / 32], a product exact in fp32;
 * stride and the offset of x from the cache's start multiples of 32; a row is quantized by
 * mtp_q8_quantize). Every kind is widened exactly to fp32 as it is loaded. */
typedef enum { MTP_KV_F32, MTP_KV_BF16, MTP_KV_Q8 } mtp_kv_type;
typedef struct {
    const void *x;         /* float, uint16_t (bf16) or int8_t elements */
    const uint16_t *scale; /* MTP_KV_Q8: F16 scales, one per 32 elements of x; else NULL */
} mtp_kv_data;
/* Up to MTP_ATTEND_ROWS queries over one cache (k, v of type t), query i over its chain
 * idx[i][0..n[i]): out[i] gets the bits of mtp_attend_row on the keys and values widened to
 * fp32, s[i] its n[i] weights. Where the chains begin with the same keys (a pass's rows of
 * one sequence, the query heads of one kv head) those keys and values are read once for all
 * queries. */
enum { MTP_ATTEND_ROWS = 4 };
void mtp_attend_rows(float *const *out, const float *const *q, mtp_kv_data k, mtp_kv_data v, mtp_kv_type t,
                     const int *const *idx, const int *n, int nq, size_t stride, int hd, float scale,
                     float *const *s);

/* dst (n) = mtp_bf16_round(src[i]): a key or value row into a bf16 cache */
void mtp_bf16_round_row(uint16_t *dst, const float *src, size_t n);

/* The two versions of the decoding kernels with an AVX-512 path (ops_decode.c,
 * ops_bf16.c, attend_bf16.c), for the tests that compare them bit for bit: *_portable,
 * plain C, in every build; *_avx512, the intrinsics, built where the compiler targets
 * AVX-512 (-march=native on such a CPU), which mtp_decode_avx512_available says (0: they
 * only assert). The kernels above run the AVX-512 version where it is available, else the
 * portable one: the same arithmetic, the same bits. */
int mtp_decode_avx512_available(void); /* built with AVX-512, and the CPU has it */
void mtp_matmul_rows_portable(float *out, const float *x, const float *w, int R, int C, int OC, float beta);
void mtp_matmul_rows_avx512(float *out, const float *x, const float *w, int R, int C, int OC, float beta);
void mtp_attend_row_portable(float *out, const float *q, const float *k, const float *v, const int *idx,
                             int n, size_t stride, int hd, float scale, float *s);
void mtp_attend_row_avx512(float *out, const float *q, const float *k, const float *v, const int *idx,
                           int n, size_t stride, int hd, float scale, float *s);
void mtp_attend_row_bf16_portable(float *out, const float *q, const uint16_t *k, const uint16_t *v,
                                  const int *idx, int n, size_t stride, int hd, float scale, float *s);
void mtp_attend_row_bf16_avx512(float *out, const float *q, const uint16_t *k, const uint16_t *v,
                                const int *idx, int n, size_t stride, int hd, float scale, float *s);
void mtp_attend_rows_portable(float *const *out, const float *const *q, mtp_kv_data k, mtp_kv_data v, mtp_kv_type t,
                              const int *const *idx, const int *n, int nq, size_t stride, int hd, float scale,
                              float *const *s);
void mtp_attend_rows_avx512(float *const *out, const float *const *q, mtp_kv_data k, mtp_kv_data v, mtp_kv_type t,
                            const int *const *idx, const int *n, int nq, size_t stride, int hd, float scale,
                            float *const *s);
/* dst (n) = mtp_bf16_round(src[i]): how mtp_matmul_rows_bf16 rounds its rows */
void mtp_bf16_round_row_portable(uint16_t *dst, const float *src, size_t n);
void mtp_bf16_round_row_avx512(uint16_t *dst, const float *src, size_t n);
/* mtp_kv_tiles_put's two versions */
void mtp_kv_tiles_put_portable(uint16_t *kt, uint16_t *vt, int hd, int slot, const float *k, const float *v);
void mtp_kv_tiles_put_avx512(uint16_t *kt, uint16_t *vt, int hd, int slot, const float *k, const float *v);
/* mtp_kv_tiles_get's two versions */
void mtp_kv_tiles_get_portable(float *k, float *v, const uint16_t *kt, const uint16_t *vt, int hd, int slot);
void mtp_kv_tiles_get_avx512(float *k, float *v, const uint16_t *kt, const uint16_t *vt, int hd, int slot);

#endif
