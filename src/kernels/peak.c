/* peak.c: the machine's arithmetic peak (gemm.h), measured: every thread runs a loop of
 * independent multiply-adds on 24 zmm registers (enough to cover the latency of two FMA
 * pipes), nothing loaded from memory; the fastest of several rounds counts (a shared machine). */
#include "kernels/gemm.h"

#include "core/util.h"
#include "kernels/bf16.h"
#include "kernels/ops.h"

#if MTP_HAVE_OMP
#include <omp.h>
#endif

enum { ACC = 24, ITERS = 1 << 17, ROUNDS = 8 };

#if defined(__AVX512F__)
static volatile float sink; /* where the loops' sums go, so that none is optimised away */

/* ITERS rounds of ACC multiply-adds; returns a sum so that none is optimised away */
static float spin(int bf16) {
    __m512 acc[ACC], x = _mm512_set1_ps(1e-9f), y = _mm512_set1_ps(0.999f);
    for (int r = 0; r < ACC; r++) acc[r] = _mm512_set1_ps((float)r);
#if defined(__AVX512BF16__)
    __m512bh xb = (__m512bh)_mm512_set1_epi32(0x3F803F80); /* (1, 1) */
    if (bf16)
        for (int it = 0; it < ITERS; it++)
#pragma GCC unroll 24
            for (int r = 0; r < ACC; r++) acc[r] = _mm512_dpbf16_ps(acc[r], xb, xb);
    else
#endif
        for (int it = 0; it < ITERS; it++)
#pragma GCC unroll 24
            for (int r = 0; r < ACC; r++) acc[r] = _mm512_fmadd_ps(x, y, acc[r]);
    __m512 s = _mm512_setzero_ps();
    for (int r = 0; r < ACC; r++) s = _mm512_add_ps(s, acc[r]);
    return _mm512_reduce_add_ps(s);
}
#endif

#if defined(__AVX512F__)
/* seconds of one round of spin on every thread; *threads: how many ran */
static double timed_round(int bf16, int *threads) {
    float total = 0;
    double t0 = mtp_now();
#if MTP_HAVE_OMP
#pragma omp parallel
    {
#pragma omp single
        *threads = omp_get_num_threads();
        float s = spin(bf16);
#pragma omp atomic
        total += s;
    }
#else
    *threads = 1;
    total += spin(bf16);
#endif
    double el = mtp_now() - t0;
    sink = total;
    return el;
}
#endif

double mtp_peak_gflops(int bf16) {
#if defined(__AVX512F__)
    if (!mtp_gemm_avx512_available() || (bf16 && !mtp_gemm_bf16_available())) return 0;
    int threads = 1;
    timed_round(bf16, &threads); /* clocks up */
    double best = 1e30;
    for (int r = 0; r < ROUNDS; r++) { /* the fastest round: the least disturbed */
        double el = timed_round(bf16, &threads);
        best = el < best ? el : best;
    }
    return (double)threads * ITERS * ACC * 16 * 2 * (bf16 ? 2 : 1) / best / 1e9;
#else
    return 0;
#endif
}
