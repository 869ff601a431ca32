/* q8.c: 8-bit weight matmul for decoding (q8.h). One arithmetic recipe on three paths:
 *   AVX512-VNNI  vpdpbusd: one instruction adds, for 16 outputs, the products of 4 weight
 *                bytes (stored unsigned, q + 128) with 4 signed bytes of a row broadcast;
 *                a block's weights (8 vectors) are loaded once for up to 8 rows, whose
 *                float sums stay in registers for the whole row of blocks; more rows take
 *                further passes over the group of outputs, its weights then in L2;
 *   AVX2         the same bytes widened to 16 bits (exact pmaddwd), 4 rows at a time;
 *   portable     plain C loops over the packed layout.
 * The +128 is taken back exactly: idot = sum (q_w + 128) q_x - 128 sum q_x, the last term
 * computed once per row and block when the row is quantized. Integer dots are exact, the
 * float steps (per block: convert, sw * sx, one fused multiply-add into the output's sum)
 * are the same instructions in the same order on every path, so all paths give the same
 * bits and a row never depends on the others or on the threads (a thread owns whole
 * groups of 16 outputs). Rows are quantized per block by the same steps on every path:
 * amax by the integer maximum of |x|'s bits (a NaN wins, so it reaches the output);
 * sx = amax / 127; inv = min(127 / amax, FLT_MAX) (finite even for a tiny amax);
 * q = nearbyint(x * inv) clamped to [-127, 127]; a block of zeros, or with an inf or NaN,
 * gets q = 0 (its sx, 0, inf or NaN, says the rest). */
#include "kernels/q8.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "core/util.h"
#include "kernels/backend.h"
#include "kernels/team.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

enum { B = MTP_Q8_BLOCK, GN = 16 };          /* inputs per block, outputs per group */
enum { GBYTES = GN * B };                    /* weight bytes of a group's block: 512 */
enum { PARALLEL_MIN = 256 };                 /* groups x blocks from which threads fork */

static int nblocks(int C) { return (C + B - 1) / B; }
static int ngroups(int OC) { return (OC + GN - 1) / GN; }

/* ---- the file layout ------------------------------------------------------------------ */
static uint32_t abs_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u & 0x7FFFFFFFu;
}

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

void mtp_q8_quantize(int8_t *q, uint16_t *scale, const float *w, int C, int OC) {
    int nb = nblocks(C);
#pragma omp parallel for schedule(static) if ((size_t)OC * C >= (1u << 20))
    for (int o = 0; o < OC; o++)
        for (int b = 0; b < nb; b++) {
            const float *wb = w + (size_t)o * C + b * B;
            int8_t *qb = q + (size_t)o * C + b * B;
            int n = C - b * B < B ? C - b * B : B;
            uint32_t amax = 0;
            for (int k = 0; k < n; k++) amax = abs_bits(wb[k]) > amax ? abs_bits(wb[k]) : amax;
            uint16_t h = amax == 0 ? 0 : mtp_f32_to_f16(from_bits(amax) / 127.0f);
            float s = mtp_f16_to_f32(h);
            scale[(size_t)o * nb + b] = h;
            for (int k = 0; k < n; k++) {
                float v = s > 0 && s <= FLT_MAX ? nearbyintf(wb[k] / s) : 0;
                qb[k] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
            }
        }
}

/* ---- the packed layout (q8.h) ---------------------------------------------------------- */
void mtp_q8_pack(mtp_q8_matrix *m, const int8_t *q, const uint16_t *scale, int C, int OC) {
    int nb = nblocks(C), ng = ngroups(OC);
    m->C = C, m->OC = OC, m->nb = nb;
    m->w = (uint8_t *)falloc((size_t)ng * nb * GBYTES / sizeof(float)); /* 64-byte aligned */
    m->scale = xmalloc((size_t)ng * nb * GN * sizeof(uint16_t));
#pragma omp parallel for schedule(static) if ((size_t)ng * nb >= PARALLEL_MIN)
    for (int g = 0; g < ng; g++)
        for (int b = 0; b < nb; b++) {
            uint8_t *t = m->w + ((size_t)g * nb + b) * GBYTES;
            uint16_t *s = m->scale + ((size_t)g * nb + b) * GN;
            for (int n = 0; n < GN; n++) {
                int o = g * GN + n;
                s[n] = o < OC ? scale[(size_t)o * nb + b] : 0;
                for (int i = 0; i < B; i++) {
                    int k = b * B + i;
                    int v = o < OC && k < C ? q[(size_t)o * C + k] : 0;
                    t[i / 4 * 64 + n * 4 + i % 4] = (uint8_t)(v + 128);
                }
            }
        }
}

void mtp_q8_free(mtp_q8_matrix *m) {
    free(m->w);
    free(m->scale);
    m->w = NULL, m->scale = NULL;
}

size_t mtp_q8_bytes(const mtp_q8_matrix *m) {
    return (size_t)ngroups(m->OC) * m->nb * (GBYTES + GN * sizeof(uint16_t));
}

/* the weight byte (q + 128) of output o, input k */
static int packed_at(const mtp_q8_matrix *m, int o, int k) {
    size_t t = ((size_t)(o / GN) * m->nb + k / B) * GBYTES;
    return m->w[t + k % B / 4 * 64 + o % GN * 4 + k % 4];
}

float mtp_q8_weight(const mtp_q8_matrix *m, int o, int k) {
    float s = mtp_f16_to_f32(m->scale[((size_t)(o / GN) * m->nb + k / B) * GN + o % GN]);
    return (float)(packed_at(m, o, k) - 128) * s;
}

/* ---- the rows, quantized (scratch) ----------------------------------------------------
 * After aligning to 64: qx int8 (nb * 32 per row) zero-padded; x16 the same as int16 (AVX2);
 * sx float and ns int32 = -128 * sum of the block's qx, one per row and block. Row-major
 * for the portable and AVX2 paths; block-major for VNNI (a block's R rows of qx, 32 bytes
 * each, lie together, so a tile of rows reads one stream), told apart by the strides. */
typedef struct {
    int8_t *qx;
    int16_t *x16;
    float *sx;
    int32_t *ns;
    size_t rs, bs;   /* qx, x16: elements from one row to the next, one block to the next */
    size_t srs, sbs; /* sx, ns: the same */
} rows_q8;

/* A product job over the groups of w (mtp_team_run): out (R, OC) = beta out + x w^T. */
typedef struct {
    float *out;
    const rows_q8 *x;
    const mtp_q8_matrix *w;
    int R;
    float beta;
} q8_job;

static int q8_threads(const mtp_q8_matrix *w) {
    return (size_t)ngroups(w->OC) * w->nb >= PARALLEL_MIN ? mtp_backend_threads() : 1;
}

size_t mtp_q8_scratch(int R, int C) { return (size_t)R * nblocks(C) * (B + 2 * B + 4 + 4) + 64; }

static rows_q8 rows_at(void *scratch, int R, int C, int block_major) {
    uintptr_t p = ((uintptr_t)scratch + 63) & ~(uintptr_t)63;
    size_t nb = (size_t)nblocks(C), ld = nb * B;
    rows_q8 x;
    x.rs = block_major ? B : ld, x.bs = block_major ? (size_t)R * B : B;
    x.srs = block_major ? 1 : nb, x.sbs = block_major ? (size_t)R : 1;
    x.qx = (int8_t *)p;
    x.x16 = (int16_t *)(p + R * ld);
    x.sx = (float *)(p + R * ld * 3);
    x.ns = (int32_t *)(p + R * ld * 3 + R * nb * 4);
    return x;
}

static size_t qx_at(const rows_q8 *x, int r, int b) { return r * x->rs + b * x->bs; }
static size_t sx_at(const rows_q8 *x, int r, int b) { return r * x->srs + b * x->sbs; }

/* A block's inv (127 / amax, at most FLT_MAX) and sx; 0 when q must be 0 (see the top). */
static float block_inv(uint32_t amax, float *sx) {
    float a = from_bits(amax);
    *sx = a / 127.0f;
    if (amax == 0 || amax >= 0x7F800000u) return 0;
    float inv = 127.0f / a;
    return inv > FLT_MAX ? FLT_MAX : inv;
}

static void quantize_row_portable(const rows_q8 *x, int r, const float *src, int C) {
    int nb = nblocks(C);
    for (int b = 0; b < nb; b++) {
        int n = C - b * B < B ? C - b * B : B;
        const float *s = src + b * B;
        uint32_t amax = 0;
        for (int k = 0; k < n; k++) amax = abs_bits(s[k]) > amax ? abs_bits(s[k]) : amax;
        float sx, inv = block_inv(amax, &sx);
        int8_t *q = x->qx + qx_at(x, r, b);
        int sum = 0;
        for (int k = 0; k < B; k++) {
            float v = k < n && inv != 0 ? nearbyintf(s[k] * inv) : 0;
            q[k] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
            x->x16[qx_at(x, r, b) + k] = q[k];
            sum += q[k];
        }
        x->sx[sx_at(x, r, b)] = sx;
        x->ns[sx_at(x, r, b)] = -128 * sum;
    }
}

/* out[o] = acc, or += acc (beta 1) */
static void store1(float *dst, float acc, float beta) { *dst = beta == 0 ? acc : *dst + acc; }

/* ---- portable -------------------------------------------------------------------------- */
void mtp_matmul_rows_q8_portable(float *out, const float *x, const mtp_q8_matrix *w, int R,
                                 float beta, void *scratch) {
    int C = w->C, OC = w->OC, nb = w->nb;
    rows_q8 xq = rows_at(scratch, R, C, 0);
    for (int r = 0; r < R; r++) quantize_row_portable(&xq, r, x + (size_t)r * C, C);
#pragma omp parallel for schedule(static) if ((size_t)ngroups(OC) * nb >= PARALLEL_MIN)
    for (int o = 0; o < OC; o++)
        for (int r = 0; r < R; r++) {
            float acc = 0;
            for (int b = 0; b < nb; b++) {
                const int8_t *q = xq.qx + qx_at(&xq, r, b);
                int32_t idot = xq.ns[sx_at(&xq, r, b)];
                for (int i = 0; i < B; i++) idot += packed_at(w, o, b * B + i) * q[i];
                float sw = mtp_f16_to_f32(w->scale[((size_t)(o / GN) * nb + b) * GN + o % GN]);
                acc = fmaf((float)idot, sw * xq.sx[sx_at(&xq, r, b)], acc);
            }
            store1(out + (size_t)r * OC + o, acc, beta);
        }
}

/* ---- AVX2 ------------------------------------------------------------------------------ */
#if defined(__x86_64__)
#define AVX2_TARGET __attribute__((target("avx2,fma,f16c")))
#define AVX2_INLINE AVX2_TARGET __attribute__((always_inline)) static inline

/* The row quantization of quantize_row_portable, 8 floats at a time. */
AVX2_TARGET static void quantize_row_avx2(const rows_q8 *x, int r, const float *src, int C) {
    int nb = nblocks(C);
    float tail[B];
    for (int b = 0; b < nb; b++) {
        int n = C - b * B < B ? C - b * B : B;
        const float *s = src + b * B;
        if (n < B) { /* the last, partial block: padded with zeros */
            memset(tail, 0, sizeof tail);
            memcpy(tail, s, n * sizeof(float));
            s = tail;
        }
        __m256 v[4];
        __m256i m = _mm256_setzero_si256(), abs = _mm256_set1_epi32(0x7FFFFFFF);
        for (int i = 0; i < 4; i++) {
            v[i] = _mm256_loadu_ps(s + 8 * i);
            m = _mm256_max_epu32(m, _mm256_and_si256(_mm256_castps_si256(v[i]), abs));
        }
        __m128i m4 = _mm_max_epu32(_mm256_castsi256_si128(m), _mm256_extracti128_si256(m, 1));
        m4 = _mm_max_epu32(m4, _mm_shuffle_epi32(m4, 0x4E));
        m4 = _mm_max_epu32(m4, _mm_shuffle_epi32(m4, 0xB1));
        float sx, inv = block_inv((uint32_t)_mm_cvtsi128_si32(m4), &sx);
        if (inv == 0) /* q = 0 (an inf times 0 would be a NaN) */
            for (int i = 0; i < 4; i++) v[i] = _mm256_setzero_ps();
        __m256 vi = _mm256_set1_ps(inv), hi = _mm256_set1_ps(127), lo = _mm256_set1_ps(-127);
        __m256i q32[4], sum = _mm256_setzero_si256();
        for (int i = 0; i < 4; i++) {
            __m256 t = _mm256_round_ps(_mm256_mul_ps(v[i], vi), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            q32[i] = _mm256_cvttps_epi32(_mm256_max_ps(_mm256_min_ps(t, hi), lo));
            sum = _mm256_add_epi32(sum, q32[i]);
        }
        /* int32 -> int16 -> int8; the packs interleave 128-bit lanes, the permutes undo it */
        __m256i w01 = _mm256_permute4x64_epi64(_mm256_packs_epi32(q32[0], q32[1]), 0xD8);
        __m256i w23 = _mm256_permute4x64_epi64(_mm256_packs_epi32(q32[2], q32[3]), 0xD8);
        __m256i q8 = _mm256_permute4x64_epi64(_mm256_packs_epi16(w01, w23), 0xD8);
        _mm256_storeu_si256((__m256i *)(x->qx + qx_at(x, r, b)), q8);
        _mm256_storeu_si256((__m256i *)(x->x16 + qx_at(x, r, b)), w01);
        _mm256_storeu_si256((__m256i *)(x->x16 + qx_at(x, r, b) + 16), w23);
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
        x->sx[sx_at(x, r, b)] = sx;
        x->ns[sx_at(x, r, b)] = -128 * _mm_cvtsi128_si32(s4);
    }
}

/* Outputs n .. n+7 of a group (n = 0 or 8) from acc: masked past OC. */
AVX2_INLINE void store8_avx2(float *row, int OC, int o, __m256 v, float beta) {
    float t[8];
    _mm256_storeu_ps(t, v);
    for (int i = 0; i < 8 && o + i < OC; i++) store1(row + o + i, t[i], beta);
}

enum { AR = 4 }; /* AVX2: rows per pass over a group's weights */

/* One group of 16 outputs for nr (1..AR, a constant where inlined) rows from row r0. Per
 * block and half (8 outputs): for the 8 vectors j, each half vector's 16 bytes (4 outputs
 * x 4 inputs) widened to 16 bits; pmaddwd with the row's 4 inputs (16 bits) repeated gives
 * pair sums, hadd and a permute put the 8 outputs' sums in order. */
AVX2_INLINE void group_avx2(float *out, const rows_q8 *x, const mtp_q8_matrix *w, int g, int r0,
                            const int nr, float beta) {
    int nb = w->nb, OC = w->OC;
    const uint8_t *wg = w->w + (size_t)g * nb * GBYTES;
    const uint16_t *sg = w->scale + (size_t)g * nb * GN;
    __m256 acc[AR][2];
    for (int r = 0; r < nr; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        const uint8_t *wb = wg + (size_t)b * GBYTES;
        for (int h = 0; h < 2; h++) {
            __m256 sw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(sg + (size_t)b * GN + 8 * h)));
            __m256i d[AR][2];
            for (int r = 0; r < nr; r++) d[r][0] = d[r][1] = _mm256_setzero_si256();
            for (int j = 0; j < B / 4; j++) {
                __m256i w0 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(wb + j * 64 + h * 32)));
                __m256i w1 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(wb + j * 64 + h * 32 + 16)));
                for (int r = 0; r < nr; r++) {
                    int64_t x4;
                    memcpy(&x4, x->x16 + qx_at(x, r0 + r, b) + 4 * j, sizeof x4);
                    __m256i xv = _mm256_set1_epi64x(x4);
                    d[r][0] = _mm256_add_epi32(d[r][0], _mm256_madd_epi16(w0, xv));
                    d[r][1] = _mm256_add_epi32(d[r][1], _mm256_madd_epi16(w1, xv));
                }
            }
            for (int r = 0; r < nr; r++) {
                size_t rb = sx_at(x, r0 + r, b);
                __m256i s = _mm256_permute4x64_epi64(_mm256_hadd_epi32(d[r][0], d[r][1]), 0xD8);
                s = _mm256_add_epi32(s, _mm256_set1_epi32(x->ns[rb]));
                __m256 scale = _mm256_mul_ps(sw, _mm256_set1_ps(x->sx[rb]));
                acc[r][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), scale, acc[r][h]);
            }
        }
    }
    for (int r = 0; r < nr; r++)
        for (int h = 0; h < 2; h++) store8_avx2(out + (size_t)(r0 + r) * OC, OC, g * GN + 8 * h, acc[r][h], beta);
}

AVX2_TARGET static void avx2_task(void *ctx, int g) {
    const q8_job *j = ctx;
    for (int r0 = 0; r0 < j->R; r0 += AR) {
        switch (j->R - r0 < AR ? j->R - r0 : AR) {
        case 1: group_avx2(j->out, j->x, j->w, g, r0, 1, j->beta); break;
        case 2: group_avx2(j->out, j->x, j->w, g, r0, 2, j->beta); break;
        case 3: group_avx2(j->out, j->x, j->w, g, r0, 3, j->beta); break;
        default: group_avx2(j->out, j->x, j->w, g, r0, 4, j->beta); break;
        }
    }
}

AVX2_TARGET static void matmul_avx2(float *out, const rows_q8 *x, const mtp_q8_matrix *w, int R, float beta) {
    q8_job j = {out, x, w, R, beta};
    mtp_team_run(ngroups(w->OC), avx2_task, &j, q8_threads(w));
}
#endif

void mtp_matmul_rows_q8_avx2(float *out, const float *x, const mtp_q8_matrix *w, int R, float beta,
                             void *scratch) {
#if defined(__x86_64__)
    MTP_ASSERT(mtp_q8_avx2_available() || !"mtp_matmul_rows_q8_avx2 on a CPU without AVX2");
    rows_q8 xq = rows_at(scratch, R, w->C, 0);
    for (int r = 0; r < R; r++) quantize_row_avx2(&xq, r, x + (size_t)r * w->C, w->C);
    matmul_avx2(out, &xq, w, R, beta);
#else
    MTP_ASSERT(!"mtp_matmul_rows_q8_avx2 on a CPU without AVX2");
#endif
}

/* ---- AVX512-VNNI ----------------------------------------------------------------------- */
#if defined(__x86_64__)
#define VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,f16c,fma")))
#define VNNI_INLINE VNNI_TARGET __attribute__((always_inline)) static inline

/* The row quantization of quantize_row_portable, 16 floats at a time. */
VNNI_TARGET static void quantize_row_vnni(const rows_q8 *x, int r, const float *src, int C) {
    int nb = nblocks(C);
    for (int b = 0; b < nb; b++) {
        int n = C - b * B < B ? C - b * B : B;
        __mmask16 m0 = (__mmask16)(n >= 16 ? 0xFFFF : (1u << n) - 1);
        __mmask16 m1 = (__mmask16)(n >= 32 ? 0xFFFF : n <= 16 ? 0 : (1u << (n - 16)) - 1);
        __m512 v0 = _mm512_maskz_loadu_ps(m0, src + b * B), v1 = _mm512_maskz_loadu_ps(m1, src + b * B + 16);
        __m512i abs = _mm512_set1_epi32(0x7FFFFFFF);
        __m512i a = _mm512_max_epu32(_mm512_and_si512(_mm512_castps_si512(v0), abs),
                                     _mm512_and_si512(_mm512_castps_si512(v1), abs));
        float sx, inv = block_inv((uint32_t)_mm512_reduce_max_epu32(a), &sx);
        if (inv == 0) v0 = v1 = _mm512_setzero_ps(); /* q = 0 (an inf times 0 would be a NaN) */
        __m512 vi = _mm512_set1_ps(inv), hi = _mm512_set1_ps(127), lo = _mm512_set1_ps(-127);
        __m512 t0 = _mm512_roundscale_ps(_mm512_mul_ps(v0, vi), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m512 t1 = _mm512_roundscale_ps(_mm512_mul_ps(v1, vi), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m512i q0 = _mm512_cvttps_epi32(_mm512_max_ps(_mm512_min_ps(t0, hi), lo));
        __m512i q1 = _mm512_cvttps_epi32(_mm512_max_ps(_mm512_min_ps(t1, hi), lo));
        int8_t *qd = x->qx + qx_at(x, r, b);
        _mm_storeu_si128((__m128i *)qd, _mm512_cvtepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(qd + 16), _mm512_cvtepi32_epi8(q1));
        x->sx[sx_at(x, r, b)] = sx;
        x->ns[sx_at(x, r, b)] = -128 * _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    }
}

/* VNNI: the limit at a few rows is vpdpbusd's latency, not its rate: one dependent chain
 * steps about once per 1.2 ns here, 8 independent chains about once per 0.2 ns. So a tile
 * keeps TILE_CHAINS chains in flight, interleaved instruction by instruction: rows x
 * groups of 16 outputs (2 groups up to 4 rows), and each row's integer dot split into
 * partial sums (exact, so the bits are those of one chain). Up to VR rows share a pass over
 * the weights, their float sums in registers or L1; more rows take another pass, the
 * group's weights then in L2. */
enum { VR = 16, TILE_CHAINS = 8 };
/* VNNI: prefetch the weights this many blocks (of 512 bytes, 32 KB) ahead into L2; the
 * hardware's own prefetch falls behind while a pass computes many rows. */
enum { PF_B = 64 };

/* Groups g .. g+ng-1 (ng 1 or 2) of 16 outputs for nr (1..VR) rows from row r0; ng and nr
 * constants where inlined. Per block: for each of the 8 weight vectors j (4 inputs x 16
 * outputs), one vpdpbusd per row and group into partial sum j % ns of (row, group). */
VNNI_INLINE void tile_vnni(float *out, const rows_q8 *x, const mtp_q8_matrix *w, int g, int r0,
                           const int nr, const int ng, float beta) {
    enum { NS_MAX = 4 }; /* partial sums per chain */
    const int chains = nr * ng, nsplit = chains >= TILE_CHAINS / 2 ? 1 + (chains < TILE_CHAINS) : NS_MAX;
    int nb = w->nb, OC = w->OC;
    const __m512i *wg = (const __m512i *)(w->w + (size_t)g * nb * GBYTES);
    size_t gstride = (size_t)nb * (B / 4); /* vectors from one group to the next */
    __m512 acc[2][VR];
    #pragma GCC unroll 16
    for (int q = 0; q < ng; q++)
        #pragma GCC unroll 16
        for (int r = 0; r < nr; r++) acc[q][r] = _mm512_setzero_ps();
    for (int b = 0; b < nb; b++) {
        const int8_t *xb = x->qx + qx_at(x, r0, b);
        __m512i d[2][VR][NS_MAX];
        #pragma GCC unroll 16
        for (int q = 0; q < ng; q++)
            #pragma GCC unroll 16
            for (int r = 0; r < nr; r++)
                #pragma GCC unroll 16
                for (int k = 0; k < nsplit; k++)
                    d[q][r][k] = k ? _mm512_setzero_si512() : _mm512_set1_epi32(x->ns[sx_at(x, r0 + r, b)]);
        #pragma GCC unroll 16
        for (int q = 0; q < ng; q++)
            #pragma GCC unroll 16
            for (int j = 0; j < B / 4; j++) /* may pass the end: a hint */
                _mm_prefetch((const char *)(wg + q * gstride + (size_t)(b + PF_B) * (B / 4) + j), _MM_HINT_T1);
        #pragma GCC unroll 16
        for (int j = 0; j < B / 4; j++)
            #pragma GCC unroll 16
            for (int q = 0; q < ng; q++) {
                __m512i wv = _mm512_load_si512(wg + q * gstride + (size_t)b * (B / 4) + j);
                #pragma GCC unroll 16
                for (int r = 0; r < nr; r++) {
                    int32_t x4; /* 4 bytes of the row, broadcast to the 16 lanes */
                    memcpy(&x4, xb + r * x->rs + 4 * j, sizeof x4);
                    d[q][r][j % nsplit] = _mm512_dpbusd_epi32(d[q][r][j % nsplit], wv, _mm512_set1_epi32(x4));
                }
            }
        #pragma GCC unroll 16
        for (int q = 0; q < ng; q++) {
            const uint16_t *sg = w->scale + ((size_t)(g + q) * nb + b) * GN;
            __m512 sw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)sg));
            #pragma GCC unroll 16
            for (int r = 0; r < nr; r++) {
                __m512i s = d[q][r][0];
                #pragma GCC unroll 16
                for (int k = 1; k < nsplit; k++) s = _mm512_add_epi32(s, d[q][r][k]);
                __m512 scale = _mm512_mul_ps(sw, _mm512_set1_ps(x->sx[sx_at(x, r0 + r, b)]));
                acc[q][r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), scale, acc[q][r]);
            }
        }
    }
    #pragma GCC unroll 16
    for (int q = 0; q < ng; q++) {
        int o = (g + q) * GN, n = OC - o < GN ? OC - o : GN;
        __mmask16 m = (__mmask16)((1u << n) - 1);
        #pragma GCC unroll 16
        for (int r = 0; r < nr; r++) {
            float *dst = out + (size_t)(r0 + r) * OC + o;
            __m512 v = acc[q][r];
            if (beta != 0) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, dst));
            _mm512_mask_storeu_ps(dst, m, v);
        }
    }
}

/* A tile of nr rows: two groups at once for up to 4 rows (while a second group exists). */
#define TILE_VNNI_CASE(n)                                                              \
    case n:                                                                            \
        if (n <= 4 && pair) tile_vnni(out, x, w, g, r0, n, 2, beta);                   \
        else tile_vnni(out, x, w, g, r0, n, 1, beta);                                  \
        break;

VNNI_TARGET static void rows_tile_vnni(float *out, const rows_q8 *x, const mtp_q8_matrix *w, int g, int pair,
                                       int r0, int nr, float beta) {
    switch (nr) {
        TILE_VNNI_CASE(1) TILE_VNNI_CASE(2) TILE_VNNI_CASE(3) TILE_VNNI_CASE(4)
        TILE_VNNI_CASE(5) TILE_VNNI_CASE(6) TILE_VNNI_CASE(7) TILE_VNNI_CASE(8)
        TILE_VNNI_CASE(9) TILE_VNNI_CASE(10) TILE_VNNI_CASE(11) TILE_VNNI_CASE(12)
        TILE_VNNI_CASE(13) TILE_VNNI_CASE(14) TILE_VNNI_CASE(15)
    default: tile_vnni(out, x, w, g, r0, VR, 1, beta); break;
    }
}
#undef TILE_VNNI_CASE

/* Threads own pairs of groups; a row's bits do not depend on which tile computed it. */
VNNI_TARGET static void vnni_task(void *ctx, int p) {
    const q8_job *j = ctx;
    int ng = ngroups(j->w->OC), g = 2 * p, pair = g + 1 < ng;
    for (int r0 = 0; r0 < j->R; r0 += VR) {
        int nr = j->R - r0 < VR ? j->R - r0 : VR;
        if (nr <= 4 || !pair)
            rows_tile_vnni(j->out, j->x, j->w, g, pair, r0, nr, j->beta);
        else
            for (int q = 0; q < 2; q++) rows_tile_vnni(j->out, j->x, j->w, g + q, 0, r0, nr, j->beta);
    }
}

VNNI_TARGET static void matmul_vnni(float *out, const rows_q8 *x, const mtp_q8_matrix *w, int R, float beta) {
    q8_job j = {out, x, w, R, beta};
    mtp_team_run((ngroups(w->OC) + 1) / 2, vnni_task, &j, q8_threads(w));
}
#endif

void mtp_matmul_rows_q8_vnni(float *out, const float *x, const mtp_q8_matrix *w, int R, float beta,
                             void *scratch) {
#if defined(__x86_64__)
    MTP_ASSERT(mtp_q8_vnni_available() || !"mtp_matmul_rows_q8_vnni on a CPU without AVX512-VNNI");
    rows_q8 xq = rows_at(scratch, R, w->C, 1);
    for (int r = 0; r < R; r++) quantize_row_vnni(&xq, r, x + (size_t)r * w->C, w->C);
    matmul_vnni(out, &xq, w, R, beta);
#else
    MTP_ASSERT(!"mtp_matmul_rows_q8_vnni on a CPU without AVX512-VNNI");
#endif
}

/* ---- the path -------------------------------------------------------------------------- */
static int vnni_state = -1, avx2_state = -1; /* -1: not probed yet */

#if defined(__x86_64__)
/* CPUID itself: clang's __builtin_cpu_supports does not know "f16c" */
static int has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}
#endif

int mtp_q8_vnni_available(void) {
#if defined(__x86_64__)
    if (vnni_state < 0) {
        __builtin_cpu_init();
        vnni_state = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                     __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
                     has_f16c() && __builtin_cpu_supports("fma") &&
                     !getenv("MTP_NO_AVX512VNNI");
    }
    return vnni_state;
#else
    return 0;
#endif
}

int mtp_q8_avx2_available(void) {
#if defined(__x86_64__)
    if (avx2_state < 0) {
        __builtin_cpu_init();
        avx2_state = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                     has_f16c() && !getenv("MTP_NO_AVX2");
    }
    return avx2_state;
#else
    return 0;
#endif
}

const char *mtp_q8_path(void) {
    return mtp_q8_vnni_available() ? "AVX512-VNNI" : mtp_q8_avx2_available() ? "AVX2" : "portable";
}

void mtp_matmul_rows_q8(float *out, const float *x, const mtp_q8_matrix *w, int R, float beta,
                        void *scratch) {
    if (mtp_q8_vnni_available())
        mtp_matmul_rows_q8_vnni(out, x, w, R, beta, scratch);
    else if (mtp_q8_avx2_available())
        mtp_matmul_rows_q8_avx2(out, x, w, R, beta, scratch);
    else
        mtp_matmul_rows_q8_portable(out, x, w, R, beta, scratch);
}
