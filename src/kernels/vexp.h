/* vexp.h: exp(x) by a polynomial, with the same bits from the AVX-512 version (16 at a
 * time) and the scalar one: x = n ln2 + r, |r| <= ln2/2, Cephes' polynomial for exp(r),
 * scaled by 2^n. x is clamped to [-104, 88] (below: 0 after scaling; above: overflow).
 * Used where an exp per element would dominate: softmax weights in decoding, SwiGLU. */
#ifndef MTP_VEXP_H
#define MTP_VEXP_H

#include <math.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

static const float VEXP_LO = -104.0f, VEXP_HI = 88.0f, VEXP_LOG2E = 1.44269504f,
                   VEXP_LN2_HI = 0.693359375f, VEXP_LN2_LO = -2.12194440e-4f;
static const float VEXP_P[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                                4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};

static inline float vexp1(float x) {
    x = x > VEXP_LO ? x : VEXP_LO;
    x = x < VEXP_HI ? x : VEXP_HI;
    float n = rintf(x * VEXP_LOG2E);
    float r = fmaf(-n, VEXP_LN2_LO, fmaf(-n, VEXP_LN2_HI, x));
    float p = VEXP_P[0];
    for (int i = 1; i < 6; i++) p = fmaf(p, r, VEXP_P[i]);
    return ldexpf(fmaf(p, r * r, r) + 1.0f, (int)n);
}

#if defined(__AVX512F__)
static inline __m512 vexp16(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(VEXP_LO)), _mm512_set1_ps(VEXP_HI));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(VEXP_LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(VEXP_LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(VEXP_LN2_LO), r);
    __m512 p = _mm512_set1_ps(VEXP_P[0]);
    for (int i = 1; i < 6; i++) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(VEXP_P[i]));
    __m512 y = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(y, n);
}
#endif

#endif
