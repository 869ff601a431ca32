/* test_half.c: binary16 <-> binary32 (core/half.h) against a reference that rounds in
 * double: every half round-trips, and floats between halves go to the nearest (ties to
 * even), including subnormals, overflow and NaN. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "core/half.h"

/* The nearest half to f by search over all finite halves (ties: the even one), as bits. */
static uint16_t nearest_ref(float f) {
    if (isnan(f)) return 0x7e00;
    double best = INFINITY;
    uint16_t pick = 0;
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    double a = fabs((double)f);
    if (a >= 65520.0) return sign | 0x7c00; /* past the midpoint of max and 2^16: inf */
    for (uint32_t h = 0; h < 0x7c00; h++) {
        double d = fabs((double)mtp_f16_to_f32((uint16_t)h) - a);
        if (d < best || (d == best && !(h & 1))) best = d, pick = (uint16_t)h;
    }
    return sign | pick;
}

int main(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = mtp_f16_to_f32((uint16_t)h);
        int nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        if (nan ? !isnan(f) || !((mtp_f32_to_f16(f) & 0x7c00) == 0x7c00 && (mtp_f32_to_f16(f) & 0x3ff))
                : mtp_f32_to_f16(f) != h)
            bad++;
    }
    CHECK(bad == 0, "%d halves do not round-trip", bad);
    CHECK(mtp_f16_to_f32(0x3c00) == 1.0f && mtp_f16_to_f32(0x0001) == 0x1p-24f &&
              mtp_f16_to_f32(0x7bff) == 65504.0f && mtp_f16_to_f32(0xc000) == -2.0f,
          "known values");
    /* floats between halves: midpoints (ties), just off them, subnormal range, overflow */
    float probes[] = {1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, 1.0f + 0x1p-11f + 0x1p-20f, 0x1p-25f,
                      0x1p-25f + 0x1p-40f, 3 * 0x1p-25f, 0x1p-14f - 0x1p-25f, 65504.0f, 65519.0f,
                      65520.0f, 1e9f, -1e-9f, 0.1f, -3.14159f, 1e-6f, 6.1e-5f};
    for (size_t i = 0; i < sizeof probes / sizeof *probes; i++) {
        uint16_t got = mtp_f32_to_f16(probes[i]), want = nearest_ref(probes[i]);
        CHECK(got == want, "mtp_f32_to_f16(%a) = 0x%04x, nearest is 0x%04x", probes[i], got, want);
    }
    CHECK(mtp_f32_to_f16(INFINITY) == 0x7c00 && mtp_f32_to_f16(-INFINITY) == 0xfc00, "infinities");
    return check_finish();
}
