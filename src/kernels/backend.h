/* backend.h: the one interface to dense linear algebra and threads. Everything the model
 * computes goes through mtp_gemm and the ops in ops.h; a CUDA or bf16 backend slots in
 * behind these declarations without the model changing.
 * Built with a BLAS (OpenBLAS, opened at run time), mtp_gemm calls it; built without, or
 * where it cannot be loaded, a plain OpenMP loop. */
#ifndef MTP_BACKEND_H
#define MTP_BACKEND_H

#include "mtp.h" /* mtp_set_threads, mtp_backend_describe, mtp_backend_note */

/* Without a BLAS: OpenMP's; with one, it is opened at the first call of any of these. The
 * core is chosen then: SkylakeX where the CPU has AVX-512, else Haswell where it has AVX2,
 * unless the user set OPENBLAS_CORETYPE (Debian's OpenBLAS 0.3.21 misreads recent CPUs and
 * falls back to SSE kernels). */
int mtp_backend_threads(void);
/* The calling thread's number inside a parallel region: 0..threads-1 (0 outside). */
int mtp_backend_thread(void);

/* C (M,N) = alpha * op(A) @ op(B) + beta * C; row-major, op(X) = X or X^T (transX != 0),
 * op(A) is (M,K), op(B) is (K,N), leading dimensions as in CBLAS. Safe to call from inside
 * an OpenMP parallel region (it then runs on the calling thread only). */
void mtp_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc);

#endif
