/* q8.h: 8-bit weights for decoding ("Q8"). A matrix W (OC outputs, C inputs, PyTorch
 * Linear layout) is stored in model files as two tensors: q int8 (OC, C) row-major and
 * scale F16 (OC, nb), nb = ceil(C / 32), with w[o][k] = q[o][k] * scale[o][k / 32] (the
 * last block of a row may be partial). For the matmul it is packed once (mtp_q8_pack).
 *
 * The matmul quantizes each row of x per block of 32 to int8 with an fp32 scale
 * (sx = amax / 127, q = nearbyint(x * (127 / amax))), takes each block's integer dot
 * exactly in int32 and, per (row, output), accumulates over the blocks in order
 *     acc = fmaf((float)idot_b, sw_b * sx_b, acc)        (acc from +0; sw_b = f32(scale))
 * then out = acc (beta 0) or out + acc (beta 1). Every path (AVX-512 VNNI, AVX2, portable)
 * does exactly this, so all give the same bits, and a row's bits never depend on the other
 * rows or on the thread count (speculative verification relies on it).
 * Not here: activations in 8 bits between layers, other block sizes, a training path. */
#ifndef MTP_Q8_H
#define MTP_Q8_H

#include <stddef.h>
#include <stdint.h>

enum { MTP_Q8_BLOCK = 32 };

/* The file layout from fp32 weights w (OC, C): per row and block, scale = f16(amax / 127)
 * (0 if amax is 0), q = round-to-nearest-even(w / f32(scale)) clamped to [-127, 127];
 * rows independent. A block whose scale is 0 or not finite gets q = 0. q (OC, C),
 * scale (OC, ceil(C / 32)). */
void mtp_q8_quantize(int8_t *q, uint16_t *scale, const float *w, int C, int OC);

/* The packed layout: outputs in groups of 16 (the last padded with zero weights); group g
 * holds, for each input block b in order, 8 vectors of 64 bytes, vector j holding for the
 * 16 outputs o the 4 bytes q[o][32b + 4j .. 32b + 4j + 3] + 128 (unsigned; inputs past C
 * are 0 - 128 + 128 = 128, i.e. weight 0), at w + (g * nb + b) * 512; and the 16 outputs'
 * block scales (F16) at scale + (g * nb + b) * 16. */
typedef struct {
    uint8_t *w;      /* (ngroups, nb, 8, 16, 4) weight bytes + 128 */
    uint16_t *scale; /* (ngroups, nb, 16) F16 */
    int C, OC, nb;   /* nb = ceil(C / 32) */
} mtp_q8_matrix;

/* from the file layout q (OC, C), scale (OC, nb); m owns its buffers (mtp_q8_free) */
void mtp_q8_pack(mtp_q8_matrix *m, const int8_t *q, const uint16_t *scale, int C, int OC);
void mtp_q8_free(mtp_q8_matrix *m);
size_t mtp_q8_bytes(const mtp_q8_matrix *m);               /* bytes a full matmul reads */
float mtp_q8_weight(const mtp_q8_matrix *m, int o, int k); /* w[o][k] dequantized, as packed */
size_t mtp_q8_scratch(int R, int C);                       /* bytes of scratch for R rows */

/* out (R, OC) = beta * out + x (R, C) @ W^T, beta 0 or 1; scratch of mtp_q8_scratch(R, C)
 * bytes (any alignment, contents irrelevant) */
void mtp_matmul_rows_q8(float *out, const float *x, const mtp_q8_matrix *w, int R, float beta,
                        void *scratch);

/* The path in use, picked at run time: "AVX512-VNNI", "AVX2" or "portable". MTP_NO_AVX512VNNI
 * and MTP_NO_AVX2 in the environment turn paths off (no AVX2: no AVX-512 either). */
const char *mtp_q8_path(void);
int mtp_q8_vnni_available(void); /* the CPU has AVX-512 F/BW/VNNI, and it is not turned off */
int mtp_q8_avx2_available(void); /* the CPU has AVX2 (+F16C), and it is not turned off */

/* Each path callable directly, for the tests that compare them; the vnni and avx2 ones
 * assert that the CPU has them (*_available). */
void mtp_matmul_rows_q8_portable(float *out, const float *x, const mtp_q8_matrix *w, int R,
                                 float beta, void *scratch);
void mtp_matmul_rows_q8_avx2(float *out, const float *x, const mtp_q8_matrix *w, int R,
                             float beta, void *scratch);
void mtp_matmul_rows_q8_vnni(float *out, const float *x, const mtp_q8_matrix *w, int R,
                             float beta, void *scratch);

#endif
