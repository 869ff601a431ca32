/* backend.h: the one interface to dense linear algebra and threads. Everything the model
 * computes goes through mtp_gemm and the ops in ops.h; a CUDA or bf16 backend slots in
 * behind these declarations without the model changing.
 * Built with a BLAS (OpenBLAS), mtp_gemm calls it; built without, a plain OpenMP loop. */
#ifndef MTP_BACKEND_H
#define MTP_BACKEND_H

/* Sets the number of threads for OpenMP loops and the BLAS (<= 0: leave the default). */
void mtp_backend_set_threads(int threads);
int mtp_backend_threads(void);
/* The calling thread's number inside a parallel region: 0..threads-1 (0 outside). */
int mtp_backend_thread(void);

/* One line: which BLAS and kernel core, how many threads. */
const char *mtp_backend_describe(void);

/* Debian's OpenBLAS 0.3.21 does not recognise recent Xeons and falls back to SSE kernels
 * (about 5x slower). If the BLAS chose a core below what the CPU supports and the user
 * did not set OPENBLAS_CORETYPE, returns the core to ask for (e.g. "SkylakeX"), else NULL.
 * The variable must be set before the BLAS loads, so callers re-exec (cli/main.c). */
const char *mtp_backend_better_coretype(void);

/* C (M,N) = alpha * op(A) @ op(B) + beta * C; row-major, op(X) = X or X^T (transX != 0),
 * op(A) is (M,K), op(B) is (K,N), leading dimensions as in CBLAS. Safe to call from inside
 * an OpenMP parallel region (it then runs on the calling thread only). */
void mtp_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc);

#endif
