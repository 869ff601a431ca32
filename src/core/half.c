/* half.c: see half.h. */
#include "core/half.h"

#include <string.h>

static float bits_to_float(uint32_t bits) {
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

float mtp_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) return bits_to_float(sign | 0x7f800000u | man << 13);
    if (exp != 0) return bits_to_float(sign | (exp + 112) << 23 | man << 13); /* rebias 15 -> 127 */
    float mag = (float)man * 0x1p-24f;                                        /* zero or subnormal */
    return sign ? -mag : mag;
}

uint16_t mtp_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint16_t sign = (uint16_t)(u >> 16 & 0x8000);
    uint32_t exp = u >> 23 & 0xff, man = u & 0x7fffff;
    if (exp == 0xff) return sign | 0x7c00 | (man ? 0x200 | man >> 13 : 0); /* inf, NaN (quiet) */
    int e = (int)exp - 127 + 15;
    if (e >= 31) return sign | 0x7c00;
    if (e <= 0) { /* subnormal or zero: the value in units of 2^-24, rounded */
        if (e < -10) return sign;
        uint32_t m = man | 0x800000, shift = (uint32_t)(14 - e);
        uint32_t q = m >> shift, rest = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rest > half || (rest == half && (q & 1))) q++;
        return sign | (uint16_t)q; /* a carry into the exponent field is still right */
    }
    uint32_t q = (uint32_t)e << 10 | man >> 13, rest = man & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (q & 1))) q++; /* may carry up to inf: right */
    return sign | (uint16_t)q;
}
