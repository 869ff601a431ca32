/* bf16.h: internal helpers of the bf16 kernels (ops_bf16.c, attend_bf16.c, wmat.c): bf16 values,
 * rounding 16 floats at once, and the one AMX tile shape they use. */
#ifndef MTP_BF16_H
#define MTP_BF16_H

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) || defined(__AVX512F__)
#include <immintrin.h>
#endif
#if defined(__x86_64__) && defined(__linux__)
#define MTP_AMX_BUILD 1
#else
#define MTP_AMX_BUILD 0
#endif

static inline float mtp_bf16_value(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

#if defined(__AVX512F__)
/* mtp_bf16_round on 16 floats at once, the same bits */
static inline __m256i mtp_bf16_round16(__m512 x) {
    const __m512i exp = _mm512_set1_epi32(0x7F800000), low = _mm512_set1_epi32(0xFFFF);
    __m512i u = _mm512_castps_si512(x);
    __mmask16 special = _mm512_cmpeq_epi32_mask(_mm512_and_si512(u, exp), exp);
    __mmask16 payload = _mm512_test_epi32_mask(u, low);
    __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7FFF), odd)), 16);
    __m512i keep = _mm512_srli_epi32(u, 16);
    keep = _mm512_mask_or_epi32(keep, payload, keep, _mm512_set1_epi32(0x40));
    return _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(special, r, keep));
}
#endif

#if MTP_AMX_BUILD
#define AMX_TARGET __attribute__((target("amx-tile,amx-bf16,avx512f")))

/* Every tile 16 rows of 64 bytes: 16 x 32 bf16, or 16 x 16 fp32 sums. */
AMX_TARGET static inline void mtp_amx_configure(void) {
    struct {
        uint8_t palette, start_row, reserved[14];
        uint16_t colsb[16];
        uint8_t rows[16];
    } cfg = {.palette = 1};
    for (int t = 0; t < 8; t++) cfg.rows[t] = 16, cfg.colsb[t] = 64;
    _tile_loadconfig(&cfg);
}
#endif

#endif
