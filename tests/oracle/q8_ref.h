/* q8_ref.h: plain references for the 8-bit weight kernels (kernels/q8.h), the oracle of
 * tests/test_q8.c. They work on the file layout (q int8 (OC, C), scale F16 (OC, nb)), not
 * the packed one, and sum in double. Never used by the model. */
#ifndef MTP_Q8_REF_H
#define MTP_Q8_REF_H

#include <stdint.h>

/* mtp_q8_quantize by its definition: q the integer of [-127, 127] nearest to w / scale
 * (ties to even), found by comparing the two candidates' errors in double; finite w only */
void mtp_q8_quantize_ref(int8_t *q, uint16_t *scale, const float *w, int C, int OC);
/* a row x (C) quantized per block of 32 as the matmul does: qx (nb * 32, zero-padded),
 * sx (nb); finite x, amax 0 or above 1e-36 */
void mtp_q8_row_ref(int8_t *qx, float *sx, const float *x, int C);
/* out (R, OC) = beta * out + sum over blocks of (exact integer dot) * sw * sx, in double */
void mtp_matmul_q8_ref(float *out, const float *x, const int8_t *q, const uint16_t *scale, int R,
                       int C, int OC, float beta);

#endif
