/* attention.c: causal grouped-query attention for training (ops.h), in tiles of
 * MTP_ATT_TILE queries x MTP_ATT_TILE keys, so that no (T, T) block of scores is ever
 * kept: memory grows linearly in T (FlashAttention-2's recipe: Dao 2023).
 *
 * Forward: for each query tile, the key tiles up to the diagonal in order, an online
 * softmax (a running max m and sum l per query row; the output rows rescaled by
 * exp(m_old - m_new) when the max grows), then out /= l and lse = m + log(l) saved.
 * Backward: the probabilities are recomputed per tile from q, k and lse,
 * P = exp(scale q.k - lse), and with D = rowsum(dO * O):
 *   dV += P^T dO,  dP = dO V^T,  dS = P * (dP - D),  dQ += scale dS K,  dK += scale dS^T Q.
 * The tile products go through mtp_gemm (single-threaded inside the parallel loop); the
 * exponentials through the softmax's own vexp (mtp_exp_sum).
 *
 * Deterministic: a task owns every row it writes and visits its tiles in a fixed order,
 * so the bits do not depend on the thread count. The forward runs a task per (batch,
 * query head); the backward a task per (batch, kv head), which loops over the query
 * heads sharing that kv head in order: they all add into its dK and dV rows. */
#include "kernels/ops.h"

#include <math.h>
#include <string.h>

#include "kernels/backend.h"

enum { TILE = MTP_ATT_TILE };

/* Keys a query row may see in a tile: all of them below the diagonal tile, up to its own
 * position on it. */
static int keys_seen(int i, int j0, int nk) {
    int n = i - j0 + 1;
    return n < nk ? n : nk;
}

void mtp_attention_fwd(float *out, float *lse, const float *q, const float *k, const float *v,
                       int B, int T, int H, int Hkv, int hd) {
    int qs = H * hd, ks = Hkv * hd, group = H / Hkv;
    float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H, g = h / group;
        const float *qb = q + (size_t)b * T * qs + h * hd;
        const float *kb = k + (size_t)b * T * ks + g * hd, *vb = v + (size_t)b * T * ks + g * hd;
        float *ob = out + (size_t)b * T * qs + h * hd, *lb = lse + (size_t)bh * T;
        float s[TILE * TILE], m[TILE], l[TILE];
        for (int i0 = 0; i0 < T; i0 += TILE) {
            int nq = T - i0 < TILE ? T - i0 : TILE;
            for (int j0 = 0; j0 <= i0; j0 += TILE) {
                int nk = T - j0 < TILE ? T - j0 : TILE;
                mtp_gemm(0, 1, nq, nk, hd, scale, qb + (size_t)i0 * qs, qs, kb + (size_t)j0 * ks, ks,
                         0.0f, s, TILE);
                for (int r = 0; r < nq; r++) {
                    float *row = s + r * TILE, *o = ob + (size_t)(i0 + r) * qs;
                    int n = keys_seen(i0 + r, j0, nk);
                    float mx = row[0];
                    for (int j = 1; j < n; j++) mx = row[j] > mx ? row[j] : mx;
                    float sum;
                    if (j0 == 0) { /* the first tile: nothing to rescale */
                        sum = mtp_exp_sum(row, row, n, mx);
                    } else {
                        if (mx < m[r]) mx = m[r];
                        float c = expf(m[r] - mx);
                        sum = l[r] * c + mtp_exp_sum(row, row, n, mx);
                        for (int d = 0; d < hd; d++) o[d] *= c;
                    }
                    m[r] = mx;
                    l[r] = sum;
                    memset(row + n, 0, (size_t)(nk - n) * sizeof(float));
                }
                mtp_gemm(0, 0, nq, hd, nk, 1.0f, s, TILE, vb + (size_t)j0 * ks, ks, j0 ? 1.0f : 0.0f,
                         ob + (size_t)i0 * qs, qs);
            }
            for (int r = 0; r < nq; r++) {
                float *o = ob + (size_t)(i0 + r) * qs, inv = 1.0f / l[r];
                for (int d = 0; d < hd; d++) o[d] *= inv;
                lb[i0 + r] = m[r] + logf(l[r]);
            }
        }
    }
}

void mtp_attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *out,
                       const float *lse, const float *q, const float *k, const float *v, int B,
                       int T, int H, int Hkv, int hd) {
    int qs = H * hd, ks = Hkv * hd, group = H / Hkv;
    float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for schedule(static)
    for (int bg = 0; bg < B * Hkv; bg++) {
        int b = bg / Hkv, g = bg % Hkv;
        size_t kvo = (size_t)b * T * ks + g * hd;
        const float *kb = k + kvo, *vb = v + kvo;
        float *dkb = dk + kvo, *dvb = dv + kvo;
        float p[TILE * TILE], ds[TILE * TILE], dsum[TILE];
        for (int h = g * group; h < (g + 1) * group; h++) {
            size_t qo = (size_t)b * T * qs + h * hd;
            const float *qb = q + qo, *dob = dout + qo, *ob = out + qo;
            const float *lb = lse + ((size_t)b * H + h) * T;
            float *dqb = dq + qo;
            for (int j0 = 0; j0 < T; j0 += TILE) {
                int nk = T - j0 < TILE ? T - j0 : TILE;
                const float *kj = kb + (size_t)j0 * ks, *vj = vb + (size_t)j0 * ks;
                for (int i0 = j0; i0 < T; i0 += TILE) {
                    int nq = T - i0 < TILE ? T - i0 : TILE;
                    const float *qi = qb + (size_t)i0 * qs, *doi = dob + (size_t)i0 * qs;
                    mtp_gemm(0, 1, nq, nk, hd, scale, qi, qs, kj, ks, 0.0f, p, TILE);
                    for (int r = 0; r < nq; r++) { /* P = exp(S - lse), D = rowsum(dO * O) */
                        float *row = p + r * TILE;
                        int n = keys_seen(i0 + r, j0, nk);
                        mtp_exp_sum(row, row, n, lb[i0 + r]);
                        memset(row + n, 0, (size_t)(nk - n) * sizeof(float));
                        const float *dor = doi + (size_t)r * qs, *orow = ob + (size_t)(i0 + r) * qs;
                        float dot = 0;
                        for (int d = 0; d < hd; d++) dot += dor[d] * orow[d];
                        dsum[r] = dot;
                    }
                    mtp_gemm(1, 0, nk, hd, nq, 1.0f, p, TILE, doi, qs, 1.0f, dvb + (size_t)j0 * ks, ks);
                    mtp_gemm(0, 1, nq, nk, hd, 1.0f, doi, qs, vj, ks, 0.0f, ds, TILE);
                    for (int r = 0; r < nq; r++) /* dS = P * (dP - D); masked P are 0 */
                        for (int j = 0; j < nk; j++)
                            ds[r * TILE + j] = p[r * TILE + j] * (ds[r * TILE + j] - dsum[r]);
                    mtp_gemm(0, 0, nq, hd, nk, scale, ds, TILE, kj, ks, 1.0f, dqb + (size_t)i0 * qs, qs);
                    mtp_gemm(1, 0, nk, hd, nq, scale, ds, TILE, qi, qs, 1.0f, dkb + (size_t)j0 * ks, ks);
                }
            }
        }
    }
}
