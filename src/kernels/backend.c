/* backend.c: see backend.h. The only file that knows whether a BLAS is linked. */
#include "kernels/backend.h"
#include "kernels/gemm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if MTP_HAVE_OMP
#include <omp.h>
#endif
#if MTP_HAVE_BLAS
#include <cblas.h>
#include <dlfcn.h>
#include <pthread.h>

/* OpenBLAS is opened at run time, not linked: it picks its kernels when it loads, from
 * OPENBLAS_CORETYPE or its own CPU detection, and Debian's 0.3.21 misreads recent CPUs
 * (SSE "Prescott" kernels on Emerald Rapids, about 5x slower). Loading it ourselves lets
 * every program that links libmtp set the variable first. A core the user set is kept. */
static struct {
    __typeof__(&cblas_sgemm) sgemm;
    char *(*corename)(void);
    char *(*config)(void);
    void (*set_threads)(int);
    char error[320]; /* why it could not be loaded (then the built-in matmul runs), or "" */
    char note[320];  /* what a user-set core costs, or that the chosen one did not apply */
} blas;
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

/* The best OpenBLAS core for single precision that this CPU runs, or NULL. */
static const char *cpu_core(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
    return NULL;
}

static void blas_load(void) {
    const char *user = getenv("OPENBLAS_CORETYPE"), *best = cpu_core();
    if (!user && best) setenv("OPENBLAS_CORETYPE", best, 1);
    void *h = dlopen(MTP_BLAS_LIB, RTLD_NOW | RTLD_LOCAL);
    if (!user && best) unsetenv("OPENBLAS_CORETYPE"); /* the environment as it was */
    if (!h) {
        snprintf(blas.error, sizeof blas.error, "OpenBLAS could not be loaded: %s", dlerror());
        return;
    }
    blas.sgemm = (__typeof__(&cblas_sgemm))dlsym(h, "cblas_sgemm");
    blas.corename = (char *(*)(void))dlsym(h, "openblas_get_corename");
    blas.config = (char *(*)(void))dlsym(h, "openblas_get_config");
    blas.set_threads = (void (*)(int))dlsym(h, "openblas_set_num_threads");
    if (!blas.sgemm || !blas.corename || !blas.config || !blas.set_threads) {
        blas.sgemm = NULL;
        snprintf(blas.error, sizeof blas.error,
                 "OpenBLAS (" MTP_BLAS_LIB ") lacks cblas_sgemm or its extensions");
        dlclose(h);
        return;
    }
    if (!user && best && strcmp(blas.corename(), best)) /* loaded before us, by someone else */
        snprintf(blas.note, sizeof blas.note,
                 "OpenBLAS was loaded before mtp could choose its kernels: it runs %s, this CPU "
                 "runs %s", blas.corename(), best);
    if (user && best && !strcmp(best, "SkylakeX") && strcmp(blas.corename(), "SkylakeX") &&
        strcmp(blas.corename(), "Cooperlake") && strcmp(blas.corename(), "SapphireRapids"))
        snprintf(blas.note, sizeof blas.note,
                 "OPENBLAS_CORETYPE=%s is set, so OpenBLAS runs its %s kernels; this CPU can "
                 "run its AVX-512 (SkylakeX) kernels, which ran the training products 1.8x "
                 "faster on an AMD Zen 5 (unset the variable to let mtp choose)",
                 user, blas.corename());
}

static int blas_ready(void) {
    pthread_once(&blas_once, blas_load);
    return blas.sgemm != NULL;
}
#endif

void mtp_set_threads(int threads) {
    if (threads <= 0) return;
#if MTP_HAVE_OMP
    omp_set_num_threads(threads);
#endif
#if MTP_HAVE_BLAS
    if (blas_ready()) blas.set_threads(threads);
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

/* Which kernel runs the training products (ops.c: gemm.h's where it can). */
static const char *products(void) {
    if (!mtp_gemm_avx512_available()) return "";
    return mtp_gemm_bf16_available() ? "; training products: mtp AVX-512 (fp32), AVX512-BF16 (bf16)"
                                     : "; training products: mtp AVX-512 (fp32), no bf16";
}

const char *mtp_backend_describe(void) {
    static _Thread_local char buf[512]; /* each thread its own: the thread count can change */
#if MTP_HAVE_BLAS
    if (blas_ready()) {
        snprintf(buf, sizeof buf, "%s, core %s, %d threads%s", blas.config(), blas.corename(),
                 mtp_backend_threads(), products());
        return buf;
    }
    snprintf(buf, sizeof buf, "%s: built-in matmul (slow), %d threads%s", blas.error,
             mtp_backend_threads(), products());
#else
    snprintf(buf, sizeof buf, "built-in matmul (no BLAS), %d threads%s", mtp_backend_threads(), products());
#endif
    return buf;
}

const char *mtp_backend_note(void) {
#if MTP_HAVE_BLAS
    if (blas_ready() && blas.note[0]) return blas.note;
#endif
    return NULL;
}

/* Without a BLAS: rows of C in parallel, the inner loop over contiguous j vectorises. */
static void gemm_builtin(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                         int lda, const float *B, int ldb, float beta, float *C, int ldc) {
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

void mtp_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc) {
#if MTP_HAVE_BLAS
    if (blas_ready()) {
        blas.sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
                   transB ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C,
                   ldc);
        return;
    }
#endif
    gemm_builtin(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
