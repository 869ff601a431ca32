/* backend.c: see backend.h. The only file that knows whether a BLAS is linked. */
#include "kernels/backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if MTP_HAVE_OMP
#include <omp.h>
#endif
#if MTP_HAVE_BLAS
#include <cblas.h>
/* OpenBLAS extensions (declared in its cblas.h on most builds; repeated for the others). */
char *openblas_get_corename(void);
char *openblas_get_config(void);
void openblas_set_num_threads(int n);
#endif

void mtp_backend_set_threads(int threads) {
    if (threads <= 0) return;
#if MTP_HAVE_OMP
    omp_set_num_threads(threads);
#endif
#if MTP_HAVE_BLAS
    openblas_set_num_threads(threads);
#endif
}

int mtp_backend_threads(void) {
#if MTP_HAVE_OMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

int mtp_backend_thread(void) {
#if MTP_HAVE_OMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

const char *mtp_backend_describe(void) {
    static char buf[256]; /* constant after the first call: describes the process */
#if MTP_HAVE_BLAS
    snprintf(buf, sizeof buf, "%s, core %s, %d threads", openblas_get_config(),
             openblas_get_corename(), mtp_backend_threads());
#else
    snprintf(buf, sizeof buf, "built-in matmul (no BLAS), %d threads", mtp_backend_threads());
#endif
    return buf;
}

const char *mtp_backend_better_coretype(void) {
#if MTP_HAVE_BLAS && defined(__x86_64__)
    if (getenv("OPENBLAS_CORETYPE")) return NULL;
    const char *core = openblas_get_corename();
    int weak = !strcmp(core, "Prescott") || !strcmp(core, "Core2") || !strcmp(core, "Nehalem") ||
               !strcmp(core, "Katmai") || !strcmp(core, "Penryn") || !strcmp(core, "Dunnington");
    if (!weak) return NULL;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return "SkylakeX";
    if (__builtin_cpu_supports("avx2")) return "Haswell";
#endif
    return NULL;
}

#if MTP_HAVE_BLAS
void mtp_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc) {
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
                transB ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
#else
/* Fallback: rows of C in parallel, the inner loop over contiguous j vectorises. */
void mtp_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc) {
#if MTP_HAVE_OMP
#pragma omp parallel for schedule(static) if (!omp_in_parallel() && (long)M * N * K > 100000)
#endif
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        for (int j = 0; j < N; j++) c[j] = beta == 0 ? 0 : beta * c[j];
        for (int k = 0; k < K; k++) {
            float a = alpha * (transA ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]);
            if (a == 0) continue;
            if (!transB) {
                const float *b = B + (size_t)k * ldb;
                for (int j = 0; j < N; j++) c[j] += a * b[j];
            } else {
                for (int j = 0; j < N; j++) c[j] += a * B[(size_t)j * ldb + k];
            }
        }
    }
}
#endif
