/* gemm.h: mtp's own kernels for the training products (gemm.c), beside OpenBLAS's sgemm.
 * The arguments are mtp_gemm's (backend.h): C (M,N) = alpha op(A) op(B) + beta C, row-major.
 * Results do not depend on the thread count (each output element summed in one order). */
#ifndef MTP_GEMM_H
#define MTP_GEMM_H

/* built for AVX-512 (-march=native on such a CPU) and the CPU has it: mtp_decode_avx512_available */
int mtp_gemm_avx512_available(void);
/* that, built for AVX512-BF16 too, and mtp_bf16_dp_available (MTP_NO_AVX512BF16 unset) */
int mtp_gemm_bf16_available(void);
/* fp32 with vfmadd231ps; asserts mtp_gemm_avx512_available */
void mtp_gemm_avx512(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                     int lda, const float *B, int ldb, float beta, float *C, int ldc);
/* op(A) and op(B) rounded to bf16 by vcvtne2ps2bf16: subnormal inputs flushed to zero (as
 * vdpbf16ps would treat them anyway), others rounded to nearest, ties to even (NaN kept a
 * quiet NaN); products summed in fp32 with vdpbf16ps (pairs of inputs, its sums' subnormals
 * flushed to zero); asserts mtp_gemm_bf16_available */
void mtp_gemm_bf16(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                   int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* Several products over one shared operand as one job, cut into parts along M or N, so
 * that the shared operand is packed once (and the threads start and meet once):
 *   MTP_SPLIT_M: C_q (n_q, N) = alpha op(A_q) op(B) + beta C_q, B = part[0].B shared;
 *   MTP_SPLIT_N: C_q (M, n_q) = alpha op(A) op(B_q) + beta C_q, A = part[0].A shared.
 * The split dimension's size (M or N) is the sum of the parts' n. Every output has the bits
 * one call per part would give it. At most MTP_GEMM_PARTS parts; asserts the kernel's
 * availability. (A cut along K, summing products into one C, shares no packing and
 * measured no faster than one call per part.) */
enum { MTP_GEMM_PARTS = 4 };
typedef enum { MTP_SPLIT_M, MTP_SPLIT_N } mtp_gemm_split;
typedef struct {
    const float *A, *B;
    float *C;
    int lda, ldb, ldc, n; /* n: the part's extent along the split dimension */
} mtp_gemm_part;
void mtp_gemm_parts(int bf16, mtp_gemm_split split, int transA, int transB, int M, int N, int K,
                    float alpha, const mtp_gemm_part *parts, int nparts, float beta);

/* GFLOP/s of a loop of fp32 FMAs (bf16 0) or of vdpbf16ps (bf16 1, a multiply-add per bf16
 * pair counted as 2 of each) on every thread: the fastest of 8 rounds of a few ms; 0 where the CPU lacks it */
double mtp_peak_gflops(int bf16);

#endif
