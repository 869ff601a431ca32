/* wmat.h: a weight matrix in a decoding number type (mtp_wtype: F32, BF16 or Q8), and the
 * one row matmul over it that decoding calls. F32 matrices are views of floats kept
 * elsewhere (a model's parameters); BF16 and Q8 matrices are packed once into their
 * kernels' layout (ops_bf16.c, q8.c), from floats or straight from a file's bf16 or 8-bit
 * tensors, so no fp32 copy of them exists. Every path is batch-invariant (ops.h). */
#ifndef MTP_WMAT_H
#define MTP_WMAT_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/ops.h"
#include "kernels/q8.h"

typedef struct {
    mtp_wtype type;
    int C, OC;            /* inputs, outputs: W is (OC, C), PyTorch's Linear layout */
    const float *f32;     /* F32: (OC, C) row-major, not owned */
    mtp_bf16_matrix bf16; /* BF16: packed, owned */
    mtp_q8_matrix q8;     /* Q8: packed, owned */
} mtp_wmat;

/* A view of fp32 weights (F32), or copies packed from them (BF16: rounded; Q8: quantized). */
void mtp_wmat_from_f32(mtp_wmat *m, mtp_wtype t, const float *w, int C, int OC);
void mtp_wmat_from_bf16(mtp_wmat *m, const uint16_t *w, int C, int OC); /* bits as they are */
void mtp_wmat_from_q8(mtp_wmat *m, const int8_t *q, const uint16_t *scale, int C, int OC);
void mtp_wmat_free(mtp_wmat *m);

size_t mtp_wmat_bytes(const mtp_wmat *m);               /* what one matmul reads */
size_t mtp_wmat_scratch(mtp_wtype t, int R, int C);     /* bytes of scratch for R rows */
/* out (R, OC) = beta * out + x (R, C) @ W^T (beta 0 or 1) */
void mtp_wmat_matmul(float *out, const float *x, const mtp_wmat *m, int R, float beta, void *scratch);
/* out_a (R, a->OC) = x @ A^T and out_b (R, b->OC) = x @ B^T, A and B of one type and C: the
 * bits of two mtp_wmat_matmul calls, in one where the type's kernel shares the work (BF16) */
void mtp_wmat_matmul_pair(float *out_a, float *out_b, const float *x, const mtp_wmat *a, const mtp_wmat *b, int R,
                          void *scratch);

/* Rows of a table (the token embedding) as a file lays them out, read one at a time in
 * place: F32 floats, BF16, or Q8 (int8 rows and an F16 scale per block of 32). Not owned;
 * the bytes may be unaligned (a file's map). */
typedef struct {
    mtp_wtype type;
    int n, dim;
    const void *data;  /* (n, dim) */
    const void *scale; /* Q8: (n, ceil(dim / 32)) F16 */
} mtp_wrows;

void mtp_wrows_get(const mtp_wrows *t, int row, float *out); /* out (dim) */
size_t mtp_wrows_row_bytes(const mtp_wrows *t);

#endif
