/* pairs.h: the words the training's AVX-512 products read (gemm.c, attention.c): fp32 bits,
 * or two bf16 side by side, the pair vdpbf16ps multiplies and sums into one fp32 lane. The
 * inputs are rounded by vcvtne2ps2bf16: nearest even, subnormals to zero. */
#ifndef MTP_PAIRS_H
#define MTP_PAIRS_H

#include "core/util.h"

/* the bf16 paths need vdpbf16ps and vcvtne2ps2bf16 (AVX512-BF16) and vpermw (AVX512BW) */
#if defined(__AVX512BF16__) && defined(__AVX512BW__)
#define MTP_PAIRS_BF16_BUILD 1
#else
#define MTP_PAIRS_BF16_BUILD 0
#endif

#if defined(__AVX512F__)
#include <immintrin.h>

static inline __mmask16 lanes(int n) { return n >= 16 ? 0xFFFF : n <= 0 ? 0 : (__mmask16)((1u << n) - 1); }

/* 32 bf16 from lo (the low 16) and hi */
static inline __m512i to_bf16(__m512 lo, __m512 hi) {
#if MTP_PAIRS_BF16_BUILD
    return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
#else
    (void)lo, (void)hi;
    MTP_ASSERT(!"bf16 packing in a build without AVX512-BF16");
    return _mm512_setzero_si512();
#endif
}

/* 16 words from n consecutive floats at p (zero past n): fp32 bits (n <= 16), or bf16 pairs
 * (n <= 32; float 2w in word w's low half, 2w + 1 in its high half: memory order) */
static inline __m512i load_words(const float *p, int n, int bf16) {
    __m512 lo = _mm512_maskz_loadu_ps(lanes(n), p);
    if (!bf16) return _mm512_castps_si512(lo);
    return to_bf16(lo, _mm512_maskz_loadu_ps(lanes(n - 16), p + 16));
}

/* 16 words of two rows: fp32 bits of r0 (n <= 16), or bf16 pairs (r0[x], r1[x]), r1 NULL
 * for zero */
static inline __m512i load_pairs(const float *r0, const float *r1, int n, int bf16) {
    __m512 v0 = _mm512_maskz_loadu_ps(lanes(n), r0);
    if (!bf16) return _mm512_castps_si512(v0);
#if MTP_PAIRS_BF16_BUILD
    /* to_bf16 gives r0's 16 then r1's 16; word x takes halves x and 16 + x */
    const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                                23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    __m512 v1 = r1 ? _mm512_maskz_loadu_ps(lanes(n), r1) : _mm512_setzero_ps();
    return _mm512_permutexvar_epi16(interleave, to_bf16(v0, v1));
#else
    (void)r1;
    return to_bf16(v0, v0);
#endif
}
#endif

#endif
