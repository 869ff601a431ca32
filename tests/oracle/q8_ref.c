/* q8_ref.c: references for the 8-bit weight kernels (q8_ref.h). Written for obviousness. */
#include "oracle/q8_ref.h"

#include <math.h>
#include <stdlib.h>

#include "core/half.h"
#include "core/util.h"

enum { B = 32 };

void mtp_q8_quantize_ref(int8_t *q, uint16_t *scale, const float *w, int C, int OC) {
    int nb = (C + B - 1) / B;
    for (int o = 0; o < OC; o++)
        for (int b = 0; b < nb; b++) {
            float amax = 0;
            for (int k = b * B; k < C && k < b * B + B; k++) amax = fmaxf(amax, fabsf(w[(size_t)o * C + k]));
            uint16_t h = amax == 0 ? 0 : mtp_f32_to_f16(amax / 127.0f);
            double s = mtp_f16_to_f32(h);
            scale[(size_t)o * nb + b] = h;
            for (int k = b * B; k < C && k < b * B + B; k++) {
                double v = w[(size_t)o * C + k];
                int best = 0;
                if (s > 0) {
                    int lo = (int)floor(v / s);
                    double elo = fabs(v - lo * s), ehi = fabs(v - (lo + 1) * s);
                    best = elo < ehi ? lo : ehi < elo ? lo + 1 : lo % 2 == 0 ? lo : lo + 1;
                    best = best > 127 ? 127 : best < -127 ? -127 : best;
                }
                q[(size_t)o * C + k] = (int8_t)best;
            }
        }
}

void mtp_q8_row_ref(int8_t *qx, float *sx, const float *x, int C) {
    int nb = (C + B - 1) / B;
    for (int b = 0; b < nb; b++) {
        float amax = 0;
        for (int k = b * B; k < C && k < b * B + B; k++) amax = fmaxf(amax, fabsf(x[k]));
        sx[b] = amax / 127;
        for (int i = 0; i < B; i++) {
            int k = b * B + i;
            qx[k] = (int8_t)(k < C && amax > 0 ? nearbyintf(x[k] * (127 / amax)) : 0);
        }
    }
}

void mtp_matmul_q8_ref(float *out, const float *x, const int8_t *q, const uint16_t *scale, int R,
                       int C, int OC, float beta) {
    int nb = (C + B - 1) / B;
    int8_t *qx = xmalloc((size_t)nb * B);
    float *sx = falloc((size_t)nb);
    for (int r = 0; r < R; r++) {
        mtp_q8_row_ref(qx, sx, x + (size_t)r * C, C);
        for (int o = 0; o < OC; o++) {
            double s = beta != 0 ? out[(size_t)r * OC + o] : 0;
            for (int b = 0; b < nb; b++) {
                long idot = 0;
                for (int k = b * B; k < C && k < b * B + B; k++) idot += (long)q[(size_t)o * C + k] * qx[k];
                s += (double)idot * mtp_f16_to_f32(scale[(size_t)o * nb + b]) * sx[b];
            }
            out[(size_t)r * OC + o] = (float)s;
        }
    }
    free(qx);
    free(sx);
}
