/* ops_ref.h: plain reference kernels, the oracle for tests/test_ops.c. Same signatures
 * and conventions as ops.h; straightforward loops accumulating in double, no threads,
 * no BLAS. Never used by the model. */
#ifndef MTP_OPS_REF_H
#define MTP_OPS_REF_H

#include "kernels/ops.h"

void mtp_embedding_fwd_ref(float *out, const mtp_token *tokens, const float *wte, int N, int C);
void mtp_embedding_bwd_ref(float *dwte, const float *dout, const mtp_token *tokens, int N, int C);
void mtp_rmsnorm_fwd_ref(float *out, float *rstd, const float *x, const float *w, int N, int C,
                         float eps);
void mtp_rmsnorm_bwd_ref(float *dx, float *dw, const float *dout, const float *dres, const float *x,
                         const float *w, const float *rstd, int N, int C);
void mtp_matmul_fwd_ref(float *out, const float *x, const float *w, int N, int C, int OC,
                        float beta);
void mtp_matmul_bwd_ref(float *dx, float *dw, const float *dout, const float *x, const float *w,
                        int N, int C, int OC, float dx_beta);
/* mtp_gemm's product (backend.h), summed in double; bf16 != 0: every element of op(A) and
 * op(B) rounded to bf16 first as mtp_gemm_bf16 rounds them (subnormals to zero, else
 * mtp_bf16_round) */
void mtp_gemm_ref(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                  const float *B, int ldb, float beta, float *C, int ldc, int bf16);
void mtp_rope_fwd_ref(float *x, int N, int T, int nh, int hd, float theta);
void mtp_rope_bwd_ref(float *dx, int N, int T, int nh, int hd, float theta);
void mtp_attention_fwd_ref(float *out, float *lse, const float *q, const float *k,
                           const float *v, int B, int T, int H, int Hkv, int hd);
/* the kernel's gradients without its saved out and lse: the probabilities recomputed */
void mtp_attention_bwd_ref(float *dq, float *dk, float *dv, const float *dout, const float *q,
                           const float *k, const float *v, int B, int T, int H, int Hkv, int hd);
/* one query over n keys and values at idx[j] * stride (mtp_attend_row) */
void mtp_attend_row_ref(float *out, const float *q, const float *k, const float *v,
                        const int *idx, int n, size_t stride, int hd, float scale);
void mtp_swiglu_fwd_ref(float *g, const float *h1, const float *h3, size_t n);
void mtp_swiglu_bwd_ref(float *dh1, float *dh3, const float *dg, const float *h1,
                        const float *h3, size_t n);
void mtp_xent_ref(float *losses, uint8_t *hits, float *logits, const mtp_token *targets, int N,
                  int V, float grad_scale);

#endif
