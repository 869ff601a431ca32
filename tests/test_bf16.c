/* test_bf16.c: bf16 weights packed from a bf16 source (mtp_bf16_pack_bf16) are the same
 * tiles as mtp_bf16_pack of the widened floats, bit for bit (NaN payloads, infinities,
 * subnormals and -0 included: nothing is rounded), and mtp_bf16_bytes counts them; the
 * AVX2 path of the bf16 matmul gives the portable path's bits, matches a double reference
 * and is batch-invariant (skipped where the CPU lacks AVX2). The other paths are tested in
 * test_ops_decode.c. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/rng.h"
#include "core/util.h"
#include "kernels/ops.h"

#if MTP_HAVE_OMP
#include <omp.h>
#endif

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

/* 600 x 260 has enough groups x blocks (5 x 19) to fork two threads. */
static void test_matmul_avx2(void) {
    if (!mtp_bf16_avx2_available()) {
        SKIP("bf16 AVX2 path vs portable and reference: no AVX2 and FMA on this CPU, or MTP_NO_AVX2");
        return;
    }
    static const int CS[] = {1, 31, 32, 33, 100, 600}, OCS[] = {1, 15, 16, 17, 65, 260};
    enum { R = 11 };
    mtp_rng rng = {9};
    int max_threads = 1;
#if MTP_HAVE_OMP
    max_threads = omp_get_max_threads();
#endif
    for (size_t ci = 0; ci < sizeof CS / sizeof *CS; ci++)
        for (size_t oi = 0; oi < sizeof OCS / sizeof *OCS; oi++) {
            int C = CS[ci], OC = OCS[oi];
            float *x = falloc((size_t)R * C), *w = falloc((size_t)OC * C), *base = falloc((size_t)R * OC);
            for (int i = 0; i < R * C; i++) x[i] = (float)mtp_rng_normal(&rng);
            for (int i = 0; i < OC * C; i++) w[i] = (float)mtp_rng_normal(&rng);
            for (int i = 0; i < R * OC; i++) base[i] = (float)mtp_rng_normal(&rng);
            float *got = falloc((size_t)R * OC), *port = falloc((size_t)R * OC), *want = falloc((size_t)R * OC);
            uint16_t *scratch = xcalloc(mtp_bf16_scratch(R, C), sizeof(uint16_t));
            mtp_bf16_matrix m;
            mtp_bf16_pack(&m, w, C, OC);
            for (int beta = 0; beta < 2; beta++) {
                memcpy(got, base, (size_t)R * OC * sizeof(float));
                memcpy(port, base, (size_t)R * OC * sizeof(float));
                mtp_matmul_rows_bf16_avx2(got, x, &m, R, (float)beta, scratch);
                mtp_matmul_rows_bf16_portable(port, x, &m, R, (float)beta, scratch);
                CHECK_SAME(got, port, (size_t)R * OC, "bf16 AVX2 C %d OC %d beta %d: the portable path's bits", C, OC, beta);
                for (int r = 0; r < R; r++)
                    for (int o = 0; o < OC; o++) {
                        double s = beta ? base[(size_t)r * OC + o] : 0;
                        for (int k = 0; k < C; k++)
                            s += (double)widen(mtp_bf16_round(x[(size_t)r * C + k])) * mtp_bf16_weight(&m, o, k);
                        want[(size_t)r * OC + o] = (float)s;
                    }
                CHECK_CLOSE(got, want, (size_t)R * OC, 2e-5, "bf16 AVX2 C %d OC %d beta %d vs reference", C, OC, beta);
            }
            mtp_matmul_rows_bf16_avx2(port, x, &m, R, 0, scratch);
            int same = 1;
            for (int threads = 1; threads <= 2; threads++) {
                check_threads(threads);
                for (int r = 0; r < R; r++) {
                    mtp_matmul_rows_bf16_avx2(got, x + (size_t)r * C, &m, 1, 0, scratch);
                    same &= !memcmp(got, port + (size_t)r * OC, OC * sizeof(float));
                }
                for (int n = 1; n < R; n++) {
                    mtp_matmul_rows_bf16_avx2(got, x, &m, n, 0, scratch);
                    same &= !memcmp(got, port, (size_t)n * OC * sizeof(float));
                }
            }
            check_threads(max_threads);
            CHECK(same, "bf16 AVX2 C %d OC %d: a row's bits alone, among others, on 1 and 2 threads", C, OC);
            mtp_bf16_free(&m);
            free(x), free(w), free(base), free(got), free(port), free(want), free(scratch);
        }
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_pack_bf16();
    test_matmul_avx2();
    return check_finish();
}
