/* ops_bf16.c: bf16 decoding matmul (ops.h). Weights are packed once into the tile layout
 * of Intel AMX: for each block of 16 outputs and 32 inputs, 16 rows of 64 bytes, row j
 * holding the pairs (w[o][2j], w[o][2j+1]) of the block's 16 outputs o; the tiles of 64
 * outputs (4 blocks) lie input block by input block, one stream for the matmul to read.
 * The rows (x) are rounded to bf16 per call. On a CPU with AMX one tile product
 * multiplies up to 16 rows by a block of weights at the cost of reading it, so a
 * verification pass of 16 rows costs little more than a plain step of one. Without AMX, on
 * a CPU with AVX512-BF16 (AMD Zen 4 and 5, Intel since Cooper Lake), vdpbf16ps multiplies
 * the same tiles a row of 32 weight pairs per instruction, the weights read once for up to
 * 8 rows; elsewhere a portable loop computes the same rounded products, or, with AVX2 and
 * FMA, vector code doing the portable loop's arithmetic (so its bits). AMX, AVX512-BF16 and
 * portable sum in different orders, so a run uses one path throughout (mtp_bf16_path says
 * which). All are
 * batch-invariant: each output element is accumulated on its own, in an order that does
 * not depend on the other rows or the threads. */
#define _GNU_SOURCE /* syscall */
#include "kernels/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/bf16.h"
#include "kernels/backend.h"
#include "kernels/team.h"
#include "core/util.h"

#if MTP_AMX_BUILD
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

enum { TN = 16, TK = 32, TILE = TN * TK }; /* outputs x inputs per weight tile (bf16) */
enum { NB = 4 }; /* output tiles accumulated at once (AMX): the packing pads to NB * TN */
enum { PF_K = 2 }; /* AMX: prefetch the weights this many input blocks ahead */

uint16_t mtp_bf16_round(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7F800000u) == 0x7F800000u) return (uint16_t)(u >> 16 | ((u & 0xFFFF) ? 0x40 : 0)); /* inf, NaN */
    u += 0x7FFF + (u >> 16 & 1); /* round to nearest, ties to even */
    return (uint16_t)(u >> 16);
}

static size_t tiles_k(int C) { return (size_t)(C + TK - 1) / TK; }

/* Threads for a product of ngroups groups of 64 outputs over C inputs: below 64 tiles, not
 * worth a fork and join. */
static int groups_threads(int ngroups, int C) { return ngroups * tiles_k(C) >= 64 ? mtp_backend_threads() : 1; }

/* Offset of the tile of output block ob, input block kb (nkb input blocks). */
static size_t tile_at(size_t ob, size_t kb, size_t nkb) { return ((ob / NB * nkb + kb) * NB + ob % NB) * TILE; }

/* The tiles from w (OC,C): fp32 rounded to bf16 (wf), or bf16 taken as it is (wb). */
static void pack_tiles(mtp_bf16_matrix *m, const float *wf, const uint16_t *wb, int C, int OC) {
    size_t nkb = tiles_k(C), nob = (size_t)(OC + NB * TN - 1) / (NB * TN) * NB;
    m->C = C, m->OC = OC;
    m->p = xmalloc(nob * nkb * TILE * sizeof(uint16_t));
#pragma omp parallel for schedule(static) if (nob * nkb >= 64)
    for (size_t ob = 0; ob < nob; ob++)
        for (size_t kb = 0; kb < nkb; kb++) {
            uint16_t *t = m->p + tile_at(ob, kb, nkb);
            for (int j = 0; j < TK / 2; j++)
                for (int n = 0; n < TN; n++)
                    for (int e = 0; e < 2; e++) {
                        size_t o = ob * TN + n, k = kb * TK + 2 * j + e, i = o * C + k;
                        uint16_t v = 0;
                        if (o < (size_t)OC && k < (size_t)C) v = wb ? wb[i] : mtp_bf16_round(wf[i]);
                        t[j * 2 * TN + n * 2 + e] = v;
                    }
        }
}

void mtp_bf16_pack(mtp_bf16_matrix *m, const float *w, int C, int OC) { pack_tiles(m, w, NULL, C, OC); }

void mtp_bf16_pack_bf16(mtp_bf16_matrix *m, const uint16_t *w, int C, int OC) { pack_tiles(m, NULL, w, C, OC); }

size_t mtp_bf16_bytes(const mtp_bf16_matrix *m) {
    size_t nob = (size_t)(m->OC + NB * TN - 1) / (NB * TN) * NB;
    return nob * tiles_k(m->C) * TILE * sizeof(uint16_t);
}

void mtp_bf16_free(mtp_bf16_matrix *m) {
    free(m->p);
    m->p = NULL;
}

float mtp_bf16_weight(const mtp_bf16_matrix *m, int o, int k) {
    size_t t = tile_at(o / TN, k / TK, tiles_k(m->C));
    return mtp_bf16_value(m->p[t + (k % TK) / 2 * 2 * TN + (o % TN) * 2 + k % 2]);
}

void mtp_bf16_round_row_portable(uint16_t *dst, const float *src, size_t n) {
    for (size_t k = 0; k < n; k++) dst[k] = mtp_bf16_round(src[k]);
}

#if defined(__AVX512F__)
void mtp_bf16_round_row_avx512(uint16_t *dst, const float *src, size_t n) {
    size_t k = 0;
    for (; k + 16 <= n; k += 16) _mm256_storeu_si256((__m256i *)(dst + k), mtp_bf16_round16(_mm512_loadu_ps(src + k)));
    for (; k < n; k++) dst[k] = mtp_bf16_round(src[k]);
}
#else
void mtp_bf16_round_row_avx512(uint16_t *dst, const float *src, size_t n) {
    MTP_ASSERT(!"mtp_bf16_round_row_avx512 in a build without AVX-512: check mtp_decode_avx512_available");
}
#endif

/* x (R,C) as bf16 rows of ld = nkb * 32 elements, zero-padded to ld. Rows R.. of the
 * last 16-row tile are left as they are: a row's sums never involve the other rows. */
static void rows_to_bf16(uint16_t *xb, const float *x, int R, int C, size_t ld) {
    int avx512 = mtp_decode_avx512_available();
    for (int r = 0; r < R; r++) {
        uint16_t *dst = xb + r * ld;
        if (avx512)
            mtp_bf16_round_row_avx512(dst, x + (size_t)r * C, (size_t)C);
        else
            mtp_bf16_round_row_portable(dst, x + (size_t)r * C, (size_t)C);
        for (size_t k = (size_t)C; k < ld; k++) dst[k] = 0;
    }
}

/* An output row's 16 sums from output o on (fewer past OC): row[o..] = v, or += v (beta 1).
 * Shared by the AMX and AVX512-BF16 kernels. */
#if defined(__x86_64__)
__attribute__((target("avx512f"), always_inline)) static inline void store_sums(float *row, int OC, int o,
                                                                            __m512 v, float beta) {
    int n = OC - o < TN ? OC - o : TN;
    __mmask16 m = (__mmask16)((1u << n) - 1);
    if (beta != 0) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, row + o));
    _mm512_mask_storeu_ps(row + o, m, v);
}
#endif

/* ---- AMX ----------------------------------------------------------------------------- */
#if MTP_AMX_BUILD
/* Tiles 0..3: 16 rows x 16 outputs each (fp32 sums) for 4 consecutive output blocks;
 * tile 4: 16 rows x 32 inputs of x, loaded once for the 4; tiles 5..7: weight tiles.
 * Four independent sums keep the tile unit busy. Each (row, output) is accumulated over
 * the input blocks in order, whatever the other rows. */
#define AMX_DOT(acc, btile, j)                                                                  \
    do {                                                                                        \
        const uint16_t *t_ = wt + (kb * NB + (j)) * TILE;                                        \
        uintptr_t ahead_ = (uintptr_t)(t_) + PF_K * NB * TILE * 2; /* may pass the end: a hint */ \
        for (int l_ = 0; l_ < TILE * 2 / 64; l_++) /* the same tile PF_K blocks on */            \
            _mm_prefetch((const char *)(ahead_ + 64 * l_), _MM_HINT_T0);                         \
        _tile_loadd(btile, t_, 64);                                                             \
        _tile_dpbf16ps(acc, 4, btile);                                                          \
    } while (0)

/* A job over the output groups of one matrix. */
typedef struct {
    float *out;
    const uint16_t *xb;
    const mtp_bf16_matrix *w;
    int R;
    float beta;
} amx_job;

/* Group g for all rows; the tiles configured and released per task (the thread running it
 * is any of the team's). */
AMX_TARGET static void amx_task(void *ctx, int g) {
    const amx_job *j = ctx;
    const mtp_bf16_matrix *w = j->w;
    int OC = w->OC, R = j->R;
    size_t nkb = tiles_k(w->C), ld = nkb * TK;
    const uint16_t *xb = j->xb, *wt = w->p + (size_t)g * NB * nkb * TILE;
    float acc[NB][TN * TN] __attribute__((aligned(64)));
    mtp_amx_configure();
    for (int r0 = 0; r0 < R; r0 += TN) {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        for (size_t kb = 0; kb < nkb; kb++) {
            _tile_loadd(4, xb + r0 * ld + kb * TK, (long)(ld * sizeof(uint16_t)));
            AMX_DOT(0, 5, 0);
            AMX_DOT(1, 6, 1);
            AMX_DOT(2, 7, 2);
            AMX_DOT(3, 5, 3);
        }
        _tile_stored(0, acc[0], 64);
        _tile_stored(1, acc[1], 64);
        _tile_stored(2, acc[2], 64);
        _tile_stored(3, acc[3], 64);
        for (int r = r0; r < R && r < r0 + TN; r++)
            for (int t = 0; t < NB && (g * NB + t) * TN < OC; t++)
                store_sums(j->out + (size_t)r * OC, OC, (g * NB + t) * TN, _mm512_load_ps(acc[t] + (r - r0) * TN),
                           j->beta);
    }
    _tile_release();
}

static void matmul_amx(float *out, const uint16_t *xb, const mtp_bf16_matrix *w, int R, float beta) {
    int ngroups = (w->OC + NB * TN - 1) / (NB * TN);
    amx_job j = {out, xb, w, R, beta};
    mtp_team_run(ngroups, amx_task, &j, groups_threads(ngroups, w->C));
}
#undef AMX_DOT

/* AMX needs the CPU's bits and the kernel's permission to use the tile state (Linux 5.16+). */
static int amx_probe(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    int bf16 = d >> 22 & 1, tile = d >> 24 & 1;
    enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
    return bf16 && tile && syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}
#endif

static int amx_state = -1; /* -1: not probed yet; probed on the first call */

int mtp_amx_available(void) {
#if MTP_AMX_BUILD
    if (amx_state < 0) amx_state = amx_probe() && !getenv("MTP_NO_AMX");
    return amx_state;
#else
    return 0;
#endif
}

void mtp_amx_disable(void) { amx_state = 0; }

/* ---- AVX512-BF16 ------------------------------------------------------------------------
 * For each group of 4 output tiles and each block of up to 8 rows: per input block, per
 * pair row j of the tiles, one vdpbf16ps per (tile, row): acc[t][r] (16 outputs) += the
 * row's pair (x[2j], x[2j+1]) broadcast, times the tile's 16 weight pairs. A (row, output)
 * sums over input blocks, then pairs, in order, whatever the other rows.
 * Reading the weights near the bandwidth takes three things. The number of rows is a
 * constant where inlined, so one row does one row's products (not 8). The weights are
 * prefetched PF_DP input blocks (of 4 KB) ahead: the hardware's prefetch alone falls behind
 * (about 26 GB/s on 2 Zen 5 cores of 45-60). And past 8 rows the input blocks go in chunks
 * of DP_KC (128 KB of weights), every block of rows over a chunk before the next chunk, the
 * sums kept in between: a group (64 outputs x 11008 inputs = 1.4 MB) does not stay in a
 * 1 MB L2 for a second block of rows, a chunk does. Storing and reloading an fp32 sum
 * changes no bits.
 * Each sum is one chain of dependent vdpbf16ps, so what a block of rows costs is set by how
 * many chains are in flight, interleaved: up to 4 rows take the 4 tiles at once (16 chains,
 * 4 weight registers); 5 to 8 rows take the tiles two at a time, over the same chunk (each
 * tile's weights still read once; up to 16 chains and 2 weight registers, which fits the
 * 32 registers where 8 rows x 4 tiles would spill). So a tree pass of 16 rows is 2 blocks
 * of 8 (it was 6 + 6 + 4). */
#if defined(__x86_64__)
#define DP_TARGET __attribute__((target("avx512f,avx512bf16")))
#define DP_INLINE DP_TARGET __attribute__((always_inline)) static inline
enum { DP_ROWS = 8 };
enum { DP_KC = 32 }; /* input blocks per chunk */
enum { DP_SUPER = 8 * DP_ROWS }; /* rows per chunked pass: their sums (16 KB) live on the stack */
enum { PF_DP = 8 }; /* prefetch the weights this many input blocks (32 KB) ahead */

/* Input blocks kb0..kb1 of group g, tiles t0..t0+nt-1, for rows r0..r0+nr-1 (nr 1..DP_ROWS
 * and nt constants where inlined): acc (nr x NB sums of 16, in memory) += the blocks'
 * products; zero: start from 0. */
DP_INLINE void chunk_dp(float *acc, const uint16_t *xb, const uint16_t *wt, size_t ld, int r0,
                        size_t kb0, size_t kb1, const int nr, int t0, const int nt, int zero, int prefetch) {
    __m512 a[DP_ROWS][NB];
    for (int r = 0; r < nr; r++)
        for (int t = 0; t < nt; t++)
            a[r][t] = zero ? _mm512_setzero_ps() : _mm512_load_ps(acc + (r * NB + t0 + t) * TN);
    for (size_t kb = kb0; kb < kb1; kb++) {
        const uint16_t *tk = wt + (kb * NB + t0) * TILE;
        const uint32_t *xk = (const uint32_t *)(xb + (size_t)r0 * ld + kb * TK);
        for (int j = 0; j < TK / 2; j++) {
            __m512i wv[NB];
            for (int t = 0; t < nt; t++) {
                wv[t] = _mm512_loadu_si512(tk + t * TILE + j * 2 * TN);
                if (prefetch) /* may pass the end: a hint */
                    _mm_prefetch((const char *)(tk + (PF_DP * NB + t) * TILE + j * 2 * TN), _MM_HINT_T0);
            }
            for (int r = 0; r < nr; r++) {
                __m512i xv = _mm512_set1_epi32((int)xk[r * ld / 2 + j]);
                for (int t = 0; t < nt; t++) a[r][t] = _mm512_dpbf16_ps(a[r][t], (__m512bh)xv, (__m512bh)wv[t]);
            }
        }
    }
    for (int r = 0; r < nr; r++)
        for (int t = 0; t < nt; t++) _mm512_store_ps(acc + (r * NB + t0 + t) * TN, a[r][t]);
}

/* A block of nr rows over one chunk: the 4 tiles at once up to 4 rows, else 2 at a time. */
DP_INLINE void rows_chunk_dp(float *acc, const uint16_t *xb, const uint16_t *wt, size_t ld, int r0,
                             size_t kb0, size_t kb1, const int nr, int zero, int prefetch) {
    if (nr <= 4)
        chunk_dp(acc, xb, wt, ld, r0, kb0, kb1, nr, 0, NB, zero, prefetch);
    else
        for (int t0 = 0; t0 < NB; t0 += 2) chunk_dp(acc, xb, wt, ld, r0, kb0, kb1, nr, t0, 2, zero, prefetch);
}

/* Group g's outputs (NB tiles of TN) for all R rows. */
DP_TARGET static void group_dp(float *out, const uint16_t *xb, const mtp_bf16_matrix *w, int g, int R,
                               float beta) {
    int OC = w->OC;
    size_t nkb = tiles_k(w->C), ld = nkb * TK;
    const uint16_t *wt = w->p + (size_t)g * NB * nkb * TILE;
    float acc[DP_SUPER * NB * TN] __attribute__((aligned(64)));
    for (int s0 = 0; s0 < R; s0 += DP_SUPER) {
        int ns = R - s0 < DP_SUPER ? R - s0 : DP_SUPER;
        for (size_t kb0 = 0; kb0 < nkb; kb0 += DP_KC) {
            size_t kb1 = nkb - kb0 < DP_KC ? nkb : kb0 + DP_KC;
            for (int r0 = 0; r0 < ns; r0 += DP_ROWS) { /* the chunk's weights read from memory once */
                float *a = acc + r0 * NB * TN;
                int z = kb0 == 0, pf = r0 == 0;
                switch (ns - r0 < DP_ROWS ? ns - r0 : DP_ROWS) {
                case 1: rows_chunk_dp(a, xb, wt, ld, s0 + r0, kb0, kb1, 1, z, pf); break;
                case 2: rows_chunk_dp(a, xb, wt, ld, s0 + r0, kb0, kb1, 2, z, pf); break;
                case 3: rows_chunk_dp(a, xb, wt, ld, s0 + r0, kb0, kb1, 3, z, pf); break;
                case 4: rows_chunk_dp(a, xb, wt, ld, s0 + r0, kb0, kb1, 4, z, pf); break;
                case 5: rows_chunk_dp(a, xb, wt, ld, s0 + r0, kb0, kb1, 5, z, pf); break;
                case 6: rows_chunk_dp(a, xb, wt, ld, s0 + r0, kb0, kb1, 6, z, pf); break;
                case 7: rows_chunk_dp(a, xb, wt, ld, s0 + r0, kb0, kb1, 7, z, pf); break;
                default: rows_chunk_dp(a, xb, wt, ld, s0 + r0, kb0, kb1, 8, z, pf); break;
                }
            }
        }
        for (int r = 0; r < ns; r++)
            for (int t = 0; t < NB && (g * NB + t) * TN < OC; t++)
                store_sums(out + (size_t)(s0 + r) * OC, OC, (g * NB + t) * TN,
                           _mm512_load_ps(acc + (r * NB + t) * TN), beta);
    }
}

/* A job over the output groups of one or two matrices of one input: group g of the list is
 * group g - first[i] of matrix i. */
typedef struct {
    float *const *out;
    const uint16_t *xb;
    const mtp_bf16_matrix *const *w;
    int first[3], R;
    float beta;
} groups_job;


DP_TARGET static void dp_task(void *ctx, int g) {
    const groups_job *j = ctx;
    int i = g >= j->first[1];
    group_dp(j->out[i], j->xb, j->w[i], g - j->first[i], j->R, j->beta);
}

/* n matrices of one input (n <= 2): their groups one list, shared out in one job (one fork
 * and join, and the threads' shares even where one matrix's groups split unevenly). Each
 * group's sums are what a call for its matrix alone gives. */
DP_TARGET static void matmul_dp(float *const *out, const uint16_t *xb, const mtp_bf16_matrix *const *w, int n,
                                int R, float beta) {
    MTP_ASSERT(n >= 1 && n <= 2);
    groups_job j = {out, xb, w, {0}, R, beta};
    for (int i = 0; i < n; i++) j.first[i + 1] = j.first[i] + (w[i]->OC + NB * TN - 1) / (NB * TN);
    int ngroups = j.first[n];
    mtp_team_run(ngroups, dp_task, &j, groups_threads(ngroups, w[0]->C));
}
#endif

static int dp_state = -1;   /* -1: not probed yet */
static int avx2_state = -1; /* the AVX2 path's, likewise */

int mtp_bf16_dp_available(void) {
#if defined(__x86_64__)
    if (dp_state < 0) {
        __builtin_cpu_init();
        dp_state = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16") &&
                   !getenv("MTP_NO_AVX512BF16");
    }
    return dp_state;
#else
    return 0;
#endif
}

void mtp_bf16_dp_disable(void) { dp_state = 0, avx2_state = 0; }

const char *mtp_bf16_path(void) {
    return mtp_amx_available()       ? "AMX"
           : mtp_bf16_dp_available() ? "AVX512-BF16"
           : mtp_bf16_avx2_available() ? "AVX2"
                                     : "portable";
}

/* ---- AVX2 + FMA --------------------------------------------------------------------------
 * For CPUs without AVX512-BF16: the tiles' bf16 widened to fp32 by a shift (even element of
 * a pair) or a mask (odd), one fused multiply-add per (row, output, input), inputs in order:
 * the portable loop's arithmetic, so the same bits as it (not as AMX or AVX512-BF16, which
 * sum pairs first). Per group of 4 output tiles and up to 4 rows, per input block and tile,
 * the 16 outputs' sums of each row stay in registers while the tile's pairs are read once. */
#if defined(__x86_64__)
#define AVX2_TARGET __attribute__((target("avx2,fma")))
enum { A2_ROWS = 4 };

AVX2_TARGET __attribute__((always_inline)) static inline void group_avx2(float *out, const uint16_t *xb,
                                                                         const mtp_bf16_matrix *w, int g, int r0,
                                                                         const int nr, float beta) {
    int OC = w->OC, C = w->C;
    size_t nkb = tiles_k(C), ld = nkb * TK;
    float acc[A2_ROWS][NB * TN] __attribute__((aligned(32))) = {{0}};
    const __m256i hi = _mm256_set1_epi32((int)0xFFFF0000u);
    for (size_t kb = 0; kb < nkb; kb++) {
        int nk = C - (int)kb * TK < TK ? C - (int)kb * TK : TK; /* inputs of this block */
        for (int t = 0; t < NB; t++) {
            const uint16_t *tile = w->p + tile_at((size_t)g * NB + t, kb, nkb);
            __m256 a[A2_ROWS][2];
            for (int r = 0; r < nr; r++)
                a[r][0] = _mm256_load_ps(acc[r] + t * TN), a[r][1] = _mm256_load_ps(acc[r] + t * TN + 8);
            for (int j = 0; 2 * j < nk; j++) {
                __m256i v0 = _mm256_loadu_si256((const __m256i *)(tile + j * 2 * TN));
                __m256i v1 = _mm256_loadu_si256((const __m256i *)(tile + j * 2 * TN + 16));
                __m256 e0 = _mm256_castsi256_ps(_mm256_slli_epi32(v0, 16));
                __m256 e1 = _mm256_castsi256_ps(_mm256_slli_epi32(v1, 16));
                __m256 o0 = _mm256_castsi256_ps(_mm256_and_si256(v0, hi));
                __m256 o1 = _mm256_castsi256_ps(_mm256_and_si256(v1, hi));
                for (int r = 0; r < nr; r++) {
                    const uint16_t *xr = xb + (size_t)(r0 + r) * ld + kb * TK + 2 * j;
                    __m256 xe = _mm256_set1_ps(mtp_bf16_value(xr[0]));
                    a[r][0] = _mm256_fmadd_ps(xe, e0, a[r][0]);
                    a[r][1] = _mm256_fmadd_ps(xe, e1, a[r][1]);
                    if (2 * j + 1 < nk) { /* inputs past C: not added, as portable does not */
                        __m256 xo = _mm256_set1_ps(mtp_bf16_value(xr[1]));
                        a[r][0] = _mm256_fmadd_ps(xo, o0, a[r][0]);
                        a[r][1] = _mm256_fmadd_ps(xo, o1, a[r][1]);
                    }
                }
            }
            for (int r = 0; r < nr; r++)
                _mm256_store_ps(acc[r] + t * TN, a[r][0]), _mm256_store_ps(acc[r] + t * TN + 8, a[r][1]);
        }
    }
    for (int r = 0; r < nr; r++)
        for (int n = 0; n < NB * TN && g * NB * TN + n < OC; n++) {
            float *dst = out + (size_t)(r0 + r) * OC + g * NB * TN + n;
            *dst = beta == 0 ? acc[r][n] : *dst + acc[r][n];
        }
}

AVX2_TARGET static void avx2_task(void *ctx, int g) {
    const groups_job *j = ctx;
    for (int r0 = 0; r0 < j->R; r0 += A2_ROWS) {
        switch (j->R - r0 < A2_ROWS ? j->R - r0 : A2_ROWS) {
        case 1: group_avx2(j->out[0], j->xb, j->w[0], g, r0, 1, j->beta); break;
        case 2: group_avx2(j->out[0], j->xb, j->w[0], g, r0, 2, j->beta); break;
        case 3: group_avx2(j->out[0], j->xb, j->w[0], g, r0, 3, j->beta); break;
        default: group_avx2(j->out[0], j->xb, j->w[0], g, r0, 4, j->beta); break;
        }
    }
}

AVX2_TARGET static void matmul_avx2(float *out, const uint16_t *xb, const mtp_bf16_matrix *w, int R, float beta) {
    int ngroups = (w->OC + NB * TN - 1) / (NB * TN);
    groups_job j = {&out, xb, &w, {0, ngroups}, R, beta};
    mtp_team_run(ngroups, avx2_task, &j, groups_threads(ngroups, w->C));
}
#endif

int mtp_bf16_avx2_available(void) {
#if defined(__x86_64__)
    if (avx2_state < 0) {
        __builtin_cpu_init();
        avx2_state = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && !getenv("MTP_NO_AVX2");
    }
    return avx2_state;
#else
    return 0;
#endif
}

/* ---- portable ------------------------------------------------------------------------ */
static void matmul_portable(float *out, const uint16_t *xb, const mtp_bf16_matrix *w, int R,
                            float beta) {
    size_t ld = tiles_k(w->C) * TK;
#pragma omp parallel for schedule(static) if (w->OC >= 64)
    for (int o = 0; o < w->OC; o++)
        for (int r = 0; r < R; r++) {
            float acc = 0;
            for (int k = 0; k < w->C; k++) acc = fmaf(mtp_bf16_value(xb[r * ld + k]), mtp_bf16_weight(w, o, k), acc);
            float *dst = out + (size_t)r * w->OC + o;
            *dst = beta == 0 ? acc : *dst + acc;
        }
}

size_t mtp_bf16_scratch(int R, int C) { return (size_t)(R + TN - 1) / TN * TN * tiles_k(C) * TK; }

/* out[i] (R, OC_i) = beta * out[i] + xb @ w[i]^T for n (1 or 2) matrices of one input */
static void matmul_paths(float *const *out, const uint16_t *xb, const mtp_bf16_matrix *const *w, int n, int R,
                         float beta) {
#if defined(__x86_64__)
    if (!mtp_amx_available() && mtp_bf16_dp_available()) {
        matmul_dp(out, xb, w, n, R, beta);
        return;
    }
#endif
    for (int i = 0; i < n; i++) {
#if MTP_AMX_BUILD
        if (mtp_amx_available()) {
            matmul_amx(out[i], xb, w[i], R, beta);
            continue;
        }
#endif
#if defined(__x86_64__)
        if (mtp_bf16_avx2_available()) {
            matmul_avx2(out[i], xb, w[i], R, beta);
            continue;
        }
#endif
        matmul_portable(out[i], xb, w[i], R, beta);
    }
}

void mtp_matmul_rows_bf16(float *out, const float *x, const mtp_bf16_matrix *w, int R, float beta,
                          uint16_t *scratch) {
    rows_to_bf16(scratch, x, R, w->C, tiles_k(w->C) * TK);
    matmul_paths(&out, scratch, &w, 1, R, beta);
}

void mtp_matmul_rows_bf16_pair(float *out_a, float *out_b, const float *x, const mtp_bf16_matrix *a,
                               const mtp_bf16_matrix *b, int R, uint16_t *scratch) {
    MTP_ASSERT(a->C == b->C);
    float *out[2] = {out_a, out_b};
    const mtp_bf16_matrix *w[2] = {a, b};
    rows_to_bf16(scratch, x, R, a->C, tiles_k(a->C) * TK);
    matmul_paths(out, scratch, w, 2, R, 0);
}

/* The AVX2 and portable paths alone, for the tests that compare their bits. */
void mtp_matmul_rows_bf16_portable(float *out, const float *x, const mtp_bf16_matrix *w, int R, float beta,
                                   uint16_t *scratch) {
    rows_to_bf16(scratch, x, R, w->C, tiles_k(w->C) * TK);
    matmul_portable(out, scratch, w, R, beta);
}

void mtp_matmul_rows_bf16_avx2(float *out, const float *x, const mtp_bf16_matrix *w, int R, float beta,
                               uint16_t *scratch) {
#if defined(__x86_64__)
    MTP_ASSERT(mtp_bf16_avx2_available() || !"mtp_matmul_rows_bf16_avx2 on a CPU without AVX2 and FMA");
    rows_to_bf16(scratch, x, R, w->C, tiles_k(w->C) * TK);
    matmul_avx2(out, scratch, w, R, beta);
#else
    MTP_ASSERT(!"mtp_matmul_rows_bf16_avx2 on a CPU without AVX2 and FMA");
#endif
}
