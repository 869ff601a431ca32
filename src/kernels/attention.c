/* attention.c: causal grouped-query attention for training (ops.h), in tiles of
 * MTP_ATT_TILE queries x MTP_ATT_TILE keys, so that no (T, T) block of scores is ever
 * kept: memory grows linearly in T (FlashAttention-2's recipe: Dao 2023).
 *
 * Forward: for each query tile, the key tiles up to the diagonal in order, an online
 * softmax (a running max m and sum l per query row; the output rows rescaled by
 * exp(m_old - m_new) when the max grows), then out /= l and lse = m + log(l) saved.
 * Backward: the probabilities are recomputed per tile from q, k and lse,
 * P = exp(scale q.k - lse), and with D = rowsum(dO * O):
 *   dV += P^T dO,  dP = dO V^T,  dS = P * (dP - D),  dQ += scale dS K,  dK += scale dS^T Q,
 * each of dQ, dK, dV rows written (not added to) by the first tile that reaches them.
 * The tile products are the one small kernel below (AVX-512 where built and present; with
 * bf16 inputs and fp32 sums, vdpbf16ps, when the training runs in bf16); the exponentials,
 * the running max and sum and the rescaling stay fp32, the softmax's own vexp (mtp_exp_sum).
 *
 * Deterministic: a task owns every row it writes and visits its tiles in a fixed order,
 * so the bits do not depend on the thread count. The forward runs a task per (batch,
 * query head); the backward a task per (batch, kv head), which loops over the query
 * heads sharing that kv head in order: they all add into its dK and dV rows. */
#include "kernels/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "kernels/pairs.h"

enum { TILE = MTP_ATT_TILE };

/* Keys a query row may see in a tile: all of them below the diagonal tile, up to its own
 * position on it. */
static int keys_seen(int i, int j0, int nk) {
    int n = i - j0 + 1;
    return n < nk ? n : nk;
}

/* ---- the tile product ------------------------------------------------------------------
 * C (m, n) = alpha * A @ Bm (+ C when acc), A (m, K) read as A[r * ar + k * ak] (so also
 * a transposed tile), Bm (K, n) rows of ldb. Every product of the attention is this one
 * shape; the tiles are too small for a BLAS call to pay its packing. The AVX-512 version
 * holds 4 rows x 64 columns in registers; the portable one is the plain loop. In bf16
 * (mtp_matmul_precision, --precision bf16) both operands are first rounded into words of
 * bf16 pairs along K (pairs.h) and summed in fp32 by vdpbf16ps, as the block's products
 * are. */
typedef struct {
    const float *A;
    size_t ar, ak;
    const float *B;
    size_t ldb;
    int K;
} tile_in;

/* A thread's scratch: the words of a bf16 product's two operands; a NULL: fp32 products */
typedef struct {
    uint32_t *a, *b;
} tile_words;

static void tile_mm_portable(float *C, size_t ldc, tile_in in, int m, int n, float alpha, int acc) {
    for (int r = 0; r < m; r++) {
        float *c = C + r * ldc;
        if (!acc) memset(c, 0, (size_t)n * sizeof(float));
        for (int k = 0; k < in.K; k++) {
            float a = alpha * in.A[r * in.ar + k * in.ak];
            const float *b = in.B + k * in.ldb;
            for (int j = 0; j < n; j++) c[j] += a * b[j];
        }
    }
}

#if defined(__AVX512F__)
/* A block's masks for its columns (n_left of them from its first, up to 64) and its rb
 * rows of sums at zero */
static inline __attribute__((always_inline)) void tile_start(__mmask16 mk[4], __m512 c[4][4], int rb, int n_left) {
    for (int v = 0; v < 4; v++) mk[v] = lanes(n_left - 16 * v);
    for (int i = 0; i < rb; i++)
        for (int v = 0; v < 4; v++) c[i][v] = _mm512_setzero_ps();
}

/* C rows r0 .. r0 + rb - 1, columns j0 .. j0 + 63 under masks mk, from the sums c */
static inline __attribute__((always_inline)) void tile_store(float *C, size_t ldc, __m512 c[4][4], const __mmask16 mk[4],
                                                             int r0, int rb, int j0, float alpha, int acc) {
    __m512 al = _mm512_set1_ps(alpha);
    for (int i = 0; i < rb; i++)
        for (int v = 0; v < 4; v++) {
            float *cp = C + (r0 + i) * ldc + j0 + 16 * v;
            __m512 x = _mm512_mul_ps(c[i][v], al);
            if (acc) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mk[v], cp));
            _mm512_mask_storeu_ps(cp, mk[v], x);
        }
}

/* rb (1..4) rows x up to 64 columns from column j0 */
static inline __attribute__((always_inline)) void tile_block_avx512(float *C, size_t ldc, tile_in in, int r0,
                                                                    int rb, int j0, int n, float alpha, int acc) {
    __mmask16 mk[4];
    __m512 c[4][4];
    tile_start(mk, c, rb, n - j0);
    const float *a = in.A + r0 * in.ar;
    for (int k = 0; k < in.K; k++) {
        const float *b = in.B + k * in.ldb + j0;
        __m512 bv[4];
        for (int v = 0; v < 4; v++) bv[v] = _mm512_maskz_loadu_ps(mk[v], b + 16 * v);
        for (int i = 0; i < rb; i++) {
            __m512 av = _mm512_set1_ps(a[i * in.ar + k * in.ak]);
            for (int v = 0; v < 4; v++) c[i][v] = _mm512_fmadd_ps(av, bv[v], c[i][v]);
        }
    }
    tile_store(C, ldc, c, mk, r0, rb, j0, alpha, acc);
}

/* The 1 to 4 row blocks of a product in order, BLOCK(r0, rb, j0) running each */
#define TILE_BLOCKS(m, n, BLOCK)                                                               \
    for (int j0 = 0; j0 < (n); j0 += 64) {                                                    \
        int r0 = 0;                                                                            \
        for (; r0 + 4 <= (m); r0 += 4) BLOCK(r0, 4, j0);                                       \
        switch ((m) - r0) {                                                                    \
        case 3: BLOCK(r0, 3, j0); break;                                                       \
        case 2: BLOCK(r0, 2, j0); break;                                                       \
        case 1: BLOCK(r0, 1, j0); break;                                                       \
        default: break;                                                                        \
        }                                                                                      \
    }

static void tile_mm_avx512(float *C, size_t ldc, tile_in in, int m, int n, float alpha, int acc) {
#define F32_BLOCK(r0, rb, j0) tile_block_avx512(C, ldc, in, r0, rb, j0, n, alpha, acc)
    TILE_BLOCKS(m, n, F32_BLOCK)
#undef F32_BLOCK
}
#endif

#if MTP_PAIRS_BF16_BUILD
/* Words of bf16 pairs along K, P = ceil(K / 2) of them, zero past K:
 * along_rows: row r of src (rows of ld, K long) to dst[r * P16 + p] (P16: P rounded up to 16);
 * across_rows: rows 2p and 2p + 1 of src (K rows of n) interleaved to dst[p * ldd + x]. */
static void pairs_along_rows(uint32_t *dst, size_t P16, const float *src, size_t ld, int rows, int K) {
    for (int r = 0; r < rows; r++)
        for (int k0 = 0; k0 < K; k0 += 32)
            _mm512_mask_storeu_epi32(dst + r * P16 + k0 / 2, lanes((K - k0 + 1) / 2),
                                     load_words(src + r * ld + k0, K - k0, 1));
}

static void pairs_across_rows(uint32_t *dst, size_t ldd, const float *src, size_t ld, int K, int n) {
    for (int p = 0; 2 * p < K; p++) {
        const float *r0 = src + 2 * p * ld, *r1 = 2 * p + 1 < K ? r0 + ld : NULL;
        for (int x = 0; x < n; x += 16)
            _mm512_mask_storeu_epi32(dst + p * ldd + x, lanes(n - x), load_pairs(r0 + x, r1 ? r1 + x : NULL, n - x, 1));
    }
}

/* The bf16 operands: A's words a[r * ar + p * ap], B's b[p * ldb + j], P pairs */
typedef struct {
    const uint32_t *a;
    size_t ar, ap;
    const uint32_t *b;
    size_t ldb;
    int P;
} tile_in16;

static inline __attribute__((always_inline)) void tile_block_bf16(float *C, size_t ldc, tile_in16 in, int r0,
                                                                  int rb, int j0, int n, float alpha, int acc) {
    __mmask16 mk[4];
    __m512 c[4][4];
    tile_start(mk, c, rb, n - j0);
    const uint32_t *a = in.a + r0 * in.ar;
    for (int p = 0; p < in.P; p++) {
        const uint32_t *b = in.b + p * in.ldb + j0;
        __m512bh bv[4];
        for (int v = 0; v < 4; v++) bv[v] = (__m512bh)_mm512_maskz_loadu_epi32(mk[v], b + 16 * v);
        for (int i = 0; i < rb; i++) {
            __m512bh av = (__m512bh)_mm512_set1_epi32((int)a[i * in.ar + p * in.ap]);
            for (int v = 0; v < 4; v++) c[i][v] = _mm512_dpbf16_ps(c[i][v], av, bv[v]);
        }
    }
    tile_store(C, ldc, c, mk, r0, rb, j0, alpha, acc);
}

static void tile_mm_bf16(float *C, size_t ldc, tile_in in, int m, int n, float alpha, int acc, tile_words w) {
    int P = (in.K + 1) / 2;
    size_t m16 = (m + 15) / 16 * 16, n16 = (n + 15) / 16 * 16, P16 = (P + 15) / 16 * 16;
    tile_in16 w16 = {w.a, P16, 1, w.b, n16, P};
    if (in.ak == 1) {
        pairs_along_rows(w.a, P16, in.A, in.ar, m, in.K);
    } else { /* a transposed tile: A's columns are rows of memory */
        pairs_across_rows(w.a, m16, in.A, in.ak, in.K, m);
        w16.ar = 1, w16.ap = m16;
    }
    pairs_across_rows(w.b, n16, in.B, in.ldb, in.K, n);
#define BF16_BLOCK(r0, rb, j0) tile_block_bf16(C, ldc, w16, r0, rb, j0, n, alpha, acc)
    TILE_BLOCKS(m, n, BF16_BLOCK)
#undef BF16_BLOCK
}
#endif

static void tile_mm(float *C, size_t ldc, tile_in in, int m, int n, float alpha, int acc, tile_words w) {
#if MTP_PAIRS_BF16_BUILD
    if (w.a) {
        tile_mm_bf16(C, ldc, in, m, n, alpha, acc, w);
        return;
    }
#else
    MTP_ASSERT(!w.a);
#endif
#if defined(__AVX512F__)
    if (mtp_decode_avx512_available()) {
        tile_mm_avx512(C, ldc, in, m, n, alpha, acc);
        return;
    }
#endif
    tile_mm_portable(C, ldc, in, m, n, alpha, acc);
}

/* A thread's tile_words for heads of hd: bf16 products when the training asks for them
 * (mtp_matmul_precision), else none. Operands are at most max(hd, TILE) long in K and wide. */
static tile_words tile_words_alloc(int hd) {
    if (!mtp_matmul_is_bf16()) return (tile_words){NULL, NULL};
    size_t x = (size_t)(hd > TILE ? hd : TILE) + 16, words = (x / 2 + 16) * x;
    return (tile_words){(uint32_t *)falloc(words), (uint32_t *)falloc(words)};
}

static void tile_words_free(tile_words w) {
    free(w.a);
    free(w.b);
}

/* xt (hd, TILE) = the n rows of x (stride ld) transposed: a tile of keys or values as the
 * columns of a product */
static void transpose(float *xt, const float *x, size_t ld, int n, int hd) {
    for (int j = 0; j < n; j++)
        for (int d = 0; d < hd; d++) xt[(size_t)d * TILE + j] = x[j * ld + d];
}

/* A tile in either orientation: rows of ld, or columns (the transpose of such a tile) */
static tile_in rows_of(const float *A, size_t ld, const float *B, size_t ldb, int K) {
    return (tile_in){A, ld, 1, B, ldb, K};
}
static tile_in cols_of(const float *A, size_t ld, const float *B, size_t ldb, int K) {
    return (tile_in){A, 1, ld, B, ldb, K};
}

void mtp_attention_fwd(float *out, float *lse, const float *q, const float *k, const float *v,
                       int B, int T, int H, int Hkv, int hd) {
    int qs = H * hd, ks = Hkv * hd, group = H / Hkv;
    float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel
    {
        float *s = falloc((size_t)TILE * TILE), *kt = falloc((size_t)hd * TILE), m[TILE], l[TILE];
        tile_words w = tile_words_alloc(hd);
#pragma omp for schedule(static)
        for (int bh = 0; bh < B * H; bh++) {
            int b = bh / H, h = bh % H, g = h / group;
            const float *qb = q + (size_t)b * T * qs + h * hd;
            const float *kb = k + (size_t)b * T * ks + g * hd, *vb = v + (size_t)b * T * ks + g * hd;
            float *ob = out + (size_t)b * T * qs + h * hd, *lb = lse + (size_t)bh * T;
            for (int i0 = 0; i0 < T; i0 += TILE) {
                int nq = T - i0 < TILE ? T - i0 : TILE;
                for (int j0 = 0; j0 <= i0; j0 += TILE) {
                    int nk = T - j0 < TILE ? T - j0 : TILE;
                    transpose(kt, kb + (size_t)j0 * ks, ks, nk, hd);
                    tile_mm(s, TILE, rows_of(qb + (size_t)i0 * qs, qs, kt, TILE, hd), nq, nk, scale, 0, w);
                    for (int r = 0; r < nq; r++) { /* the online softmax */
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
                    tile_mm(ob + (size_t)i0 * qs, qs, rows_of(s, TILE, vb + (size_t)j0 * ks, ks, nk), nq, hd,
                            1.0f, j0 != 0, w);
                }
                for (int r = 0; r < nq; r++) {
                    float *o = ob + (size_t)(i0 + r) * qs, inv = 1.0f / l[r];
                    for (int d = 0; d < hd; d++) o[d] *= inv;
                    lb[i0 + r] = m[r] + logf(l[r]);
                }
            }
        }
        free(s);
        free(kt);
        tile_words_free(w);
    }
}

void mtp_attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *out,
                       const float *lse, const float *q, const float *k, const float *v, int B,
                       int T, int H, int Hkv, int hd) {
    int qs = H * hd, ks = Hkv * hd, group = H / Hkv;
    float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel
    {
        float *p = falloc((size_t)TILE * TILE), *ds = falloc((size_t)TILE * TILE), dsum[TILE];
        float *kt = falloc((size_t)hd * TILE), *vt = falloc((size_t)hd * TILE);
        tile_words w = tile_words_alloc(hd);
#pragma omp for schedule(static)
        for (int bg = 0; bg < B * Hkv; bg++) {
            int b = bg / Hkv, g = bg % Hkv;
            size_t kvo = (size_t)b * T * ks + g * hd;
            for (int h = g * group; h < (g + 1) * group; h++) {
                size_t qo = (size_t)b * T * qs + h * hd;
                const float *lb = lse + ((size_t)b * H + h) * T;
                for (int j0 = 0; j0 < T; j0 += TILE) {
                    int nk = T - j0 < TILE ? T - j0 : TILE;
                    const float *kj = k + kvo + (size_t)j0 * ks;
                    float *dkj = dk + kvo + (size_t)j0 * ks, *dvj = dv + kvo + (size_t)j0 * ks;
                    transpose(kt, kj, ks, nk, hd);
                    transpose(vt, v + kvo + (size_t)j0 * ks, ks, nk, hd);
                    for (int i0 = j0; i0 < T; i0 += TILE) {
                        int nq = T - i0 < TILE ? T - i0 : TILE;
                        size_t io = qo + (size_t)i0 * qs;
                        const float *qi = q + io, *doi = dout + io;
                        tile_mm(p, TILE, rows_of(qi, qs, kt, TILE, hd), nq, nk, scale, 0, w);
                        for (int r = 0; r < nq; r++) { /* P = exp(S - lse), D = rowsum(dO * O) */
                            float *row = p + r * TILE;
                            int n = keys_seen(i0 + r, j0, nk);
                            mtp_exp_sum(row, row, n, lb[i0 + r]);
                            memset(row + n, 0, (size_t)(nk - n) * sizeof(float));
                            const float *dor = doi + (size_t)r * qs, *orow = out + io + (size_t)r * qs;
                            float dot = 0;
                            for (int d = 0; d < hd; d++) dot += dor[d] * orow[d];
                            dsum[r] = dot;
                        }
                        int kv_acc = h != g * group || i0 != j0; /* not the first tile over dK, dV */
                        tile_mm(dvj, ks, cols_of(p, TILE, doi, qs, nq), nk, hd, 1.0f, kv_acc, w); /* dV += P^T dO */
                        tile_mm(ds, TILE, rows_of(doi, qs, vt, TILE, hd), nq, nk, 1.0f, 0, w); /* dP = dO V^T */
                        for (int r = 0; r < nq; r++) /* dS = P * (dP - D); masked P are 0 */
                            for (int j = 0; j < nk; j++)
                                ds[r * TILE + j] = p[r * TILE + j] * (ds[r * TILE + j] - dsum[r]);
                        tile_mm(dq + io, qs, rows_of(ds, TILE, kj, ks, nk), nq, hd, scale, j0 != 0, w); /* dQ += s dS K */
                        tile_mm(dkj, ks, cols_of(ds, TILE, qi, qs, nq), nk, hd, scale, kv_acc, w); /* dK += s dS^T Q */
                    }
                }
            }
        }
        free(p);
        free(ds);
        free(kt);
        free(vt);
        tile_words_free(w);
    }
}
