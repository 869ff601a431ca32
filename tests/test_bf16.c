/* test_bf16.c: bf16 weights packed from a bf16 source (mtp_bf16_pack_bf16) are the same
 * tiles as mtp_bf16_pack of the widened floats, bit for bit (NaN payloads, infinities,
 * subnormals and -0 included: nothing is rounded), and mtp_bf16_bytes counts them. The
 * bf16 matmul itself is tested in test_ops_decode.c. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/rng.h"
#include "core/util.h"
#include "kernels/ops.h"

static float widen(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void test_pack_bf16(void) {
    static const int SHAPES[][2] = {{1, 1}, {31, 17}, {32, 64}, {33, 65}, {100, 130}};
    mtp_rng rng = {5};
    for (size_t i = 0; i < sizeof SHAPES / sizeof *SHAPES; i++) {
        int C = SHAPES[i][0], OC = SHAPES[i][1];
        size_t n = (size_t)OC * C;
        uint16_t *wb = xmalloc(n * sizeof(uint16_t));
        float *wf = falloc(n);
        for (size_t k = 0; k < n; k++) {
            uint16_t special[] = {0x7F80, 0xFF80, 0x7FC1, 0xFFA0, 0x0001, 0x8000, 0x0000};
            wb[k] = k % 11 < 7 ? special[k % 11] : (uint16_t)mtp_rng_below(&rng, 65536);
            wf[k] = widen(wb[k]);
        }
        mtp_bf16_matrix a, b;
        mtp_bf16_pack_bf16(&a, wb, C, OC);
        mtp_bf16_pack(&b, wf, C, OC);
        size_t bytes = mtp_bf16_bytes(&a);
        CHECK(bytes == mtp_bf16_bytes(&b) && bytes >= n * 2 && !memcmp(a.p, b.p, bytes),
              "bf16 pack from bf16 C %d OC %d: the tiles of the widened floats, bit for bit (%zu bytes)", C, OC, bytes);
        int same = 1;
        for (int o = 0; o < OC; o++)
            for (int k = 0; k < C; k++) {
                float got = mtp_bf16_weight(&a, o, k);
                same &= !memcmp(&got, &wf[(size_t)o * C + k], sizeof got);
            }
        CHECK(same, "bf16 pack from bf16 C %d OC %d: every weight in place", C, OC);
        mtp_bf16_free(&a);
        mtp_bf16_free(&b);
        free(wb), free(wf);
    }
}

int main(void) {
    test_pack_bf16();
    return check_finish();
}
