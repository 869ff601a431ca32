/* attend_bf16.c: attention for bf16 decoding over key and value tiles (ops.h), on Intel AMX
 * or, where AMX is not, with AVX512-BF16's vdpbf16ps on the same tiles (below).
 *
 * Scores: S (16 queries x 16 slots) = Q (16 x 32 dims, bf16) @ K^T (32 x 16, bf16), every
 * query of a sequence against every slot it may read. Each query then takes the scores of
 * its chain (prefix, ancestors, itself, in position order) and the softmax runs in fp32.
 *
 * Values: out (16 queries x 16 dims) = P (16 x 32 positions, the softmax numerators as
 * bf16) @ V (32 x 16, bf16), summed over the whole blocks of 32 positions, then the
 * positions after the last whole block (fewer than 32) with their numerators in fp32
 * (the values widened from the tiles), then divided by the sum. The tiles are the only
 * copy of the keys and values this reads: mtp_kv_tiles_get reads a slot back.
 *
 * Batch invariance: a query's result may depend only on its vector and the keys and
 * values at its positions, not on the slots they sit in (a tree's drafts sit in slots
 * after the prefix) nor on the other queries. A score is one tile element: its own key
 * and query. The value sum runs over blocks of *positions*, each query getting exactly
 * one product per block, in block order: a block whose positions all sit in their own
 * slots is read from the cache and shared by every query; for a query whose block holds
 * drafts in other slots, the block is assembled from its chain and multiplied with only
 * that query's row of P (the others zero: adding +-0 leaves a sum unchanged). The same
 * bits either way, so a tree row equals the plain step that later decodes its token.
 *
 * AVX512-BF16 (AMD Zen 4/5, Intel without AMX): a query at a time (or two sharing a chain,
 * each with its own sums: the same instructions as alone), the same roundings
 * (q, k, v and the whole blocks' numerators in bf16; the tail in fp32) and the same order
 * of blocks. A key-tile row is 16 slots' pair of dims, so vdpbf16ps with the query's pair
 * broadcast adds to 16 slots' scores; a value-tile row is 16 dims' pair of positions, so
 * with a pair of numerators broadcast it adds to 16 dims' sums. Its sums pair products in
 * another order than AMX's, so the two paths need not agree bit for bit; each is batch-
 * invariant on its own: no query's sums take anything of the others', and a block
 * holding drafts is assembled from its chain, the same words as the cache's where the
 * positions sit in their own slots. */
#include "kernels/ops.h"

#include <math.h>
#include <string.h>

#include "kernels/bf16.h"
#include "core/util.h"
#include "kernels/vexp.h"

#if MTP_AMX_BUILD && defined(__AVX512F__)
#define MTP_AMX_ATTENTION 1
#else
#define MTP_AMX_ATTENTION 0
#endif
#if defined(__AVX512F__)
#define MTP_DP_ATTENTION 1
#define DP_TARGET __attribute__((target("avx512f,avx512bf16")))
#else
#define MTP_DP_ATTENTION 0
#endif

/* queries, key slots, value positions a tile holds; bf16 elements of a tile */
enum { QN = MTP_ATTEND_BF16_QUERIES, KS = 16, VB = 32, TILE = 512 };

static size_t cap_blocks(int cap) { return (size_t)(cap + VB - 1) / VB * VB; }

static int amx_path(void) { return MTP_AMX_ATTENTION && mtp_amx_available(); }
static int dp_path(void) { return MTP_DP_ATTENTION && mtp_bf16_dp_available(); }

int mtp_attend_bf16_available(int hd) { return hd % 32 == 0 && (amx_path() || dp_path()); }

const char *mtp_attend_bf16_path(void) { return amx_path() ? "AMX" : dp_path() ? "AVX512-BF16" : "none"; }

size_t mtp_attend_bf16_scratch(int cap, int hd) {
    size_t c = cap_blocks(cap);
    /* scores, numerators, block sums (fp32); numerators, Q, 3 tiles (bf16) */
    return c * QN * 2 + (size_t)QN * hd + (c * QN + (size_t)QN * hd + 3 * TILE) / 2;
}

size_t mtp_kv_tiles_size(int cap, int hd) { return cap_blocks(cap) * hd; }

/* Key tiles: for each 16 slots and 32 dims, 16 rows of 64 bytes, row j holding for each
 * slot the pair (k[slot][2j], k[slot][2j+1]): the B operand of Q @ K^T.
 * Value tiles: for each 32 slots and 16 dims, row j holding for each dim the pair
 * (v[slot 2j][dim], v[slot 2j+1][dim]): the B operand of P @ V. */
static size_t key_at(int hd, int slot, int d) { /* of k[slot][d] in the key tiles */
    return (size_t)(slot / KS) * (hd / 32) * TILE + d / 32 * TILE + (d % 32) / 2 * 32 + (slot % KS) * 2 + d % 2;
}

static size_t value_at(int hd, int slot, int d) { /* of v[slot][d] in the value tiles */
    return (size_t)(slot / VB) * (hd / 16) * TILE + d / 16 * TILE + (slot % VB) / 2 * 32 + (d % 16) * 2 + slot % 2;
}

#if defined(__AVX512F__)
/* v[slot][d0..d0+15] (d0 a multiple of 16), a bf16 in the low half of each 32-bit lane:
 * the halves (slot even: low, odd: high) of the 16 words of one value-tile row */
static inline __m512i value_words16(const uint16_t *vt, int hd, int slot, int d0) {
    __m512i w = _mm512_loadu_si512(vt + value_at(hd, slot, d0) - slot % 2);
    return slot % 2 ? _mm512_srli_epi32(w, 16) : _mm512_and_si512(w, _mm512_set1_epi32(0xFFFF));
}

/* the same widened to fp32 */
static inline __m512 value16(const uint16_t *vt, int hd, int slot, int d0) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(value_words16(vt, hd, slot, d0), 16));
}

void mtp_kv_tiles_put_avx512(uint16_t *kt, uint16_t *vt, int hd, int slot, const float *k, const float *v) {
    MTP_ASSERT(hd % 32 == 0 && slot >= 0);
    uint16_t *kb = kt + (size_t)(slot / KS) * (hd / 32) * TILE + (slot % KS) * 2;
    uint16_t *vb = vt + (size_t)(slot / VB) * (hd / 16) * TILE + (slot % VB) / 2 * 32 + slot % 2;
    const __m512i rows = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                            _mm512_set1_epi32(16));
    for (int d = 0; d < hd; d += 32) { /* a 32-dim pair per key-tile row: 16 words, 64 bytes apart */
        __m512i pairs = _mm512_inserti64x4(_mm512_castsi256_si512(mtp_bf16_round16(_mm512_loadu_ps(k + d))),
                                           mtp_bf16_round16(_mm512_loadu_ps(k + d + 16)), 1);
        _mm512_i32scatter_epi32(kb + d / 32 * TILE, rows, pairs, 4);
    }
    const __m512i half = _mm512_set1_epi32(slot % 2 ? 0x0000FFFF : (int)0xFFFF0000);
    for (int d = 0; d < hd; d += 16) { /* one half of each word of a value-tile row */
        uint16_t *row = vb - slot % 2 + d / 16 * TILE;
        __m512i x = _mm512_sll_epi32(_mm512_cvtepu16_epi32(mtp_bf16_round16(_mm512_loadu_ps(v + d))),
                                     _mm_cvtsi32_si128(16 * (slot % 2)));
        _mm512_storeu_si512(row, _mm512_or_si512(_mm512_and_si512(_mm512_loadu_si512(row), half), x));
    }
}
#else
void mtp_kv_tiles_put_avx512(uint16_t *kt, uint16_t *vt, int hd, int slot, const float *k, const float *v) {
    MTP_ASSERT(!"mtp_kv_tiles_put_avx512 in a build without AVX-512: check mtp_decode_avx512_available");
}
#endif

void mtp_kv_tiles_put_portable(uint16_t *kt, uint16_t *vt, int hd, int slot, const float *k, const float *v) {
    MTP_ASSERT(hd % 32 == 0 && slot >= 0);
    for (int d = 0; d < hd; d++) {
        kt[key_at(hd, slot, d)] = mtp_bf16_round(k[d]);
        vt[value_at(hd, slot, d)] = mtp_bf16_round(v[d]);
    }
}

void mtp_kv_tiles_put(uint16_t *kt, uint16_t *vt, int hd, int slot, const float *k, const float *v) {
    if (mtp_decode_avx512_available())
        mtp_kv_tiles_put_avx512(kt, vt, hd, slot, k, v);
    else
        mtp_kv_tiles_put_portable(kt, vt, hd, slot, k, v);
}

/* Reading a slot back: the values through value_words16, as mtp_attend_bf16 reads them. */
#if defined(__AVX512F__)
void mtp_kv_tiles_get_avx512(float *k, float *v, const uint16_t *kt, const uint16_t *vt, int hd, int slot) {
    MTP_ASSERT(hd % 32 == 0 && slot >= 0);
    const __m512i rows = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                            _mm512_set1_epi32(16));
    for (int d = 0; d < hd; d += 32) { /* the 16 pairs of a key's 32 dims: 32 bf16 in order */
        __m512i pairs = _mm512_i32gather_epi32(rows, kt + key_at(hd, slot, d), 4);
        __m512i lo = _mm512_cvtepu16_epi32(_mm512_castsi512_si256(pairs));
        __m512i hi = _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(pairs, 1));
        _mm512_storeu_ps(k + d, _mm512_castsi512_ps(_mm512_slli_epi32(lo, 16)));
        _mm512_storeu_ps(k + d + 16, _mm512_castsi512_ps(_mm512_slli_epi32(hi, 16)));
    }
    for (int d = 0; d < hd; d += 16) _mm512_storeu_ps(v + d, value16(vt, hd, slot, d));
}
#else
void mtp_kv_tiles_get_avx512(float *k, float *v, const uint16_t *kt, const uint16_t *vt, int hd, int slot) {
    MTP_ASSERT(!"mtp_kv_tiles_get_avx512 in a build without AVX-512: check mtp_decode_avx512_available");
}
#endif

void mtp_kv_tiles_get_portable(float *k, float *v, const uint16_t *kt, const uint16_t *vt, int hd, int slot) {
    MTP_ASSERT(hd % 32 == 0 && slot >= 0);
    for (int d = 0; d < hd; d++) {
        k[d] = mtp_bf16_value(kt[key_at(hd, slot, d)]);
        v[d] = mtp_bf16_value(vt[value_at(hd, slot, d)]);
    }
}

void mtp_kv_tiles_get(float *k, float *v, const uint16_t *kt, const uint16_t *vt, int hd, int slot) {
    if (mtp_decode_avx512_available())
        mtp_kv_tiles_get_avx512(k, v, kt, vt, hd, slot);
    else
        mtp_kv_tiles_get_portable(k, v, kt, vt, hd, slot);
}

#if defined(__AVX512F__)
static inline __mmask16 first(int n) { return (__mmask16)(n >= 16 ? 0xFFFF : (1u << n) - 1); }

/* Positions below the first that is not in its own slot. */
static int in_place(const int *ch, int n) {
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    for (int i = 0; i < n; i += 16) {
        __mmask16 f = first(n - i);
        __m512i want = _mm512_add_epi32(_mm512_set1_epi32(i), lane);
        __mmask16 off = _mm512_mask_cmpneq_epi32_mask(f, _mm512_maskz_loadu_epi32(f, ch + i), want);
        if (off) return i + __builtin_ctz(off);
    }
    return n;
}

/* The slots a chain of n positions reads: up to its largest, plus one. */
static int chain_end(const int *ch, int n) {
    __m512i top = _mm512_setzero_si512();
    for (int i = 0; i < n; i += 16) top = _mm512_max_epi32(top, _mm512_maskz_loadu_epi32(first(n - i), ch + i));
    return _mm512_reduce_max_epi32(top) + 1;
}

/* qb (hd) = q rounded to bf16 */
static void round_query(uint16_t *qb, const float *q, int hd) {
    for (int d = 0; d < hd; d += 16) _mm256_storeu_si256((__m256i *)(qb + d), mtp_bf16_round16(_mm512_loadu_ps(q + d)));
}

/* Softmax numerators of one query over its chain: p[i] = exp(scale s_i - max), in fp32,
 * from its row of scores s (by slot); the first `placed` positions sit in their own slots.
 * Returns their sum (the same lanes and tree whatever the slots). */
static float numerators(float *p, const float *s, const int *ch, int n, int placed, float scale) {
    __m512 mx = _mm512_set1_ps(-INFINITY), sum = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 16) {
        __mmask16 f = first(n - i);
        __m512 x = i + 16 <= placed ? _mm512_loadu_ps(s + i)
                                    : _mm512_mask_i32gather_ps(_mm512_setzero_ps(), f, _mm512_maskz_loadu_epi32(f, ch + i), s, 4);
        x = _mm512_mul_ps(x, _mm512_set1_ps(scale));
        _mm512_mask_storeu_ps(p + i, f, x);
        mx = _mm512_mask_max_ps(mx, f, mx, x);
    }
    __m512 top = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
    for (int i = 0; i < n; i += 16) {
        __mmask16 f = first(n - i);
        __m512 e = vexp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(f, p + i), top));
        _mm512_mask_storeu_ps(p + i, f, e);
        sum = _mm512_mask_add_ps(sum, f, sum, e);
    }
    return _mm512_reduce_add_ps(sum);
}

/* P (n) = the numerators p rounded to bf16, n a multiple of 16 */
static void round_numerators(uint16_t *P, const float *p, int n) {
    for (int i = 0; i < n; i += 16) _mm256_storeu_si256((__m256i *)(P + i), mtp_bf16_round16(_mm512_loadu_ps(p + i)));
}

/* Two value tiles (dims d0..d0+31) of block b as a chain sees them: position i's values
 * from slot ch[i] of the cache's tiles, so equal to them where the positions sit in their
 * own slots. */
static void assemble_values(uint16_t *vt, const mtp_kv_bf16 *kv, const int *ch, int b, int d0) {
    for (int j = 0; j < VB / 2; j++)
        for (int t = 0; t < 2; t++) {
            __m512i lo = value_words16(kv->v, kv->hd, ch[b * VB + 2 * j], d0 + 16 * t);
            __m512i hi = value_words16(kv->v, kv->hd, ch[b * VB + 2 * j + 1], d0 + 16 * t);
            _mm512_storeu_si512(vt + t * TILE + j * 32, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
        }
}

/* out (hd) = (acc + the positions i0..n-1 after the whole blocks, fp32 numerators pm
 * weighing the values widened from the tiles) * inv. 4 chains: position i goes to chain
 * i % 4 (i0 a multiple of 4). */
static void finish(float *out, const float *acc, const float *pm, const int *ch, int i0, int n,
                   const mtp_kv_bf16 *kv, float inv) {
    int hd = kv->hd;
    for (int d0 = 0; d0 < hd; d0 += 16) {
        __m512 t0 = _mm512_setzero_ps(), t1 = t0, t2 = t0, t3 = t0;
#define TERM(i) _mm512_fmadd_ps(_mm512_set1_ps(pm[i]), value16(kv->v, hd, ch[i], d0),
        int i = i0;
        for (; i + 4 <= n; i += 4) {
            t0 = TERM(i) t0);
            t1 = TERM(i + 1) t1);
            t2 = TERM(i + 2) t2);
            t3 = TERM(i + 3) t3);
        }
        if (i < n) t0 = TERM(i) t0);
        if (i + 1 < n) t1 = TERM(i + 1) t1);
        if (i + 2 < n) t2 = TERM(i + 2) t2);
#undef TERM
        __m512 tail = _mm512_add_ps(_mm512_add_ps(t0, t1), _mm512_add_ps(t2, t3));
        __m512 sum = _mm512_add_ps(_mm512_loadu_ps(acc + d0), tail);
        _mm512_storeu_ps(out + d0, _mm512_mul_ps(sum, _mm512_set1_ps(inv)));
    }
}
#endif

#if MTP_AMX_ATTENTION
AMX_TARGET static void attend_amx(float *const *out, const float *const *q, const int *const *chain,
                                  const int *n, int nq, const mtp_kv_bf16 *kv, int cap, float scale,
                                  float *scratch) {
    int hd = kv->hd, nslots = 0, maxfull = 0, nfull[QN], placed[QN];
    size_t c = cap_blocks(cap);
    float *S = scratch;              /* (16, c) scores by slot */
    float *p = S + c * QN;           /* (16, c) numerators by position */
    float *acc = p + c * QN;         /* (16, hd) sums over whole blocks */
    uint16_t *P = (uint16_t *)(acc + QN * hd); /* (16, c) numerators as bf16 */
    uint16_t *qb = P + c * QN;       /* (16, hd) queries as bf16 */
    uint16_t *a1 = qb + (size_t)QN * hd, *vt = a1 + TILE; /* a P tile; two value tiles */
    float inv[QN];
    mtp_amx_configure();

    memset(qb + (size_t)nq * hd, 0, (size_t)(QN - nq) * hd * sizeof *qb);
    for (int m = 0; m < nq; m++) {
        MTP_ASSERT(n[m] >= 1 && n[m] <= cap);
        round_query(qb + m * hd, q[m], hd);
        int last = chain_end(chain[m], n[m]); /* the slots to score: up to the chain's largest */
        nslots = last > nslots ? last : nslots;
    }
    MTP_ASSERT(nslots <= cap);
    for (int s0 = 0; s0 < nslots; s0 += 2 * KS) { /* two tiles of 16 slots: c is a multiple of 32 */
        const uint16_t *kt = kv->k + (size_t)s0 / KS * (hd / 32) * TILE;
        _tile_zero(0);
        _tile_zero(1);
        for (int d0 = 0; d0 < hd; d0 += 32) {
            _tile_loadd(2, qb + d0, (long)(hd * sizeof *qb));
            _tile_loadd(3, kt + d0 / 32 * TILE, 64);
            _tile_loadd(4, kt + (hd / 32 + d0 / 32) * TILE, 64);
            _tile_dpbf16ps(0, 2, 3);
            _tile_dpbf16ps(1, 2, 4);
        }
        _tile_stored(0, S + s0, (long)(c * sizeof *S));
        _tile_stored(1, S + s0 + KS, (long)(c * sizeof *S));
    }

    for (int m = 0; m < nq; m++) {
        int fi = in_place(chain[m], n[m]);
        inv[m] = 1.0f / numerators(p + m * c, S + m * c, chain[m], n[m], fi, scale);
        nfull[m] = n[m] / VB;
        placed[m] = fi / VB; /* whole blocks read from the cache */
        maxfull = nfull[m] > maxfull ? nfull[m] : maxfull;
    }
    for (int m = 0; m < QN; m++) {
        int full = m < nq ? nfull[m] * VB : 0;
        uint16_t *Pm = P + m * c;
        round_numerators(Pm, p + m * c, full);
        memset(Pm + full, 0, (maxfull * VB - full > 0 ? maxfull * VB - full : 0) * sizeof *Pm);
    }

    for (int d0 = 0; d0 < hd; d0 += 32) { /* two tiles of 16 dims */
        _tile_zero(0);
        _tile_zero(1);
        for (int b = 0; b < maxfull; b++) {
            const uint16_t *a = P + b * VB;
            long lda = (long)(c * sizeof *P);
            int own = 0; /* queries whose block b must be assembled */
            for (int m = 0; m < nq; m++) own |= (b < nfull[m] && b >= placed[m]) << m;
            if (own) { /* the shared product without them */
                for (int m = 0; m < QN; m++)
                    if (own >> m & 1) memset(a1 + m * VB, 0, VB * sizeof *a1);
                    else memcpy(a1 + m * VB, a + m * c, VB * sizeof *a1);
                a = a1, lda = 64;
            }
            const uint16_t *vb = kv->v + ((size_t)b * (hd / 16) + d0 / 16) * TILE;
            _tile_loadd(2, a, lda);
            _tile_loadd(3, vb, 64);
            _tile_loadd(4, vb + TILE, 64);
            _tile_dpbf16ps(0, 2, 3);
            _tile_dpbf16ps(1, 2, 4);
            for (int m = 0; own; m++, own >>= 1) {
                if (!(own & 1)) continue;
                memset(a1, 0, TILE * sizeof *a1);
                memcpy(a1 + m * VB, P + m * c + b * VB, VB * sizeof *a1);
                assemble_values(vt, kv, chain[m], b, d0);
                _tile_loadd(2, a1, 64);
                _tile_loadd(3, vt, 64);
                _tile_loadd(4, vt + TILE, 64);
                _tile_dpbf16ps(0, 2, 3);
                _tile_dpbf16ps(1, 2, 4);
            }
        }
        _tile_stored(0, acc + d0, (long)(hd * sizeof *acc));
        _tile_stored(1, acc + d0 + 16, (long)(hd * sizeof *acc));
    }

    for (int m = 0; m < nq; m++) /* the positions after the whole blocks, fp32 numerators */
        finish(out[m], acc + m * hd, p + m * c, chain[m], nfull[m] * VB, n[m], kv, inv[m]);
    _tile_release();
}
#endif

#if MTP_DP_ATTENTION
/* The kernels below take NQ (1 or 2, a constant where inlined) queries of one chain at
 * once: the query heads of a kv head share their row's chain. Each query has its own sums,
 * which see the same instructions in the same order whatever NQ: pairing queries only
 * shares the loads of keys and values and overlaps their chains of sums. */
#define DP_INLINE DP_TARGET __attribute__((always_inline)) static inline
enum { DP_PAIR = 2 };

/* a pair of bf16 (two consecutive elements) in every 32-bit lane */
DP_INLINE __m512bh pair_of(const uint16_t *x) {
    uint32_t w;
    memcpy(&w, x, sizeof w);
    return (__m512bh)_mm512_set1_epi32((int)w);
}

/* s[i] (slots 0..last-1, rounded up to 32: c is a multiple of 32) = qb[i] (hd, bf16) . k,
 * from the key tiles. Four sums per query: two tiles of 16 slots, even and odd pairs of
 * dims. */
/* Two rows of two tiles (t0, t1: rows at +0 and +32 each) against every query's two
 * pairs at a[i] + at: even and odd sums e and o per tile, four chains per query. */
DP_INLINE void dp_rows(__m512 *e0, __m512 *o0, __m512 *e1, __m512 *o1, const uint16_t *t0, const uint16_t *t1,
                       const uint16_t *const *a, size_t at, const int NQ) {
    __m512bh re0 = (__m512bh)_mm512_loadu_si512(t0), ro0 = (__m512bh)_mm512_loadu_si512(t0 + 32);
    __m512bh re1 = (__m512bh)_mm512_loadu_si512(t1), ro1 = (__m512bh)_mm512_loadu_si512(t1 + 32);
    for (int i = 0; i < NQ; i++) {
        __m512bh ae = pair_of(a[i] + at), ao = pair_of(a[i] + at + 2);
        e0[i] = _mm512_dpbf16_ps(e0[i], ae, re0);
        o0[i] = _mm512_dpbf16_ps(o0[i], ao, ro0);
        e1[i] = _mm512_dpbf16_ps(e1[i], ae, re1);
        o1[i] = _mm512_dpbf16_ps(o1[i], ao, ro1);
    }
}

DP_INLINE void scores_dp(float *const *s, const uint16_t *const *qb, const uint16_t *kt, int hd, int last,
                         const int NQ) {
    for (int s0 = 0; s0 < last; s0 += 2 * KS) {
        const uint16_t *k0 = kt + (size_t)s0 / KS * (hd / 32) * TILE, *k1 = k0 + (size_t)(hd / 32) * TILE;
        __m512 e0[DP_PAIR], o0[DP_PAIR], e1[DP_PAIR], o1[DP_PAIR];
        for (int i = 0; i < NQ; i++) e0[i] = o0[i] = e1[i] = o1[i] = _mm512_setzero_ps();
        for (int d0 = 0; d0 < hd; d0 += 32)
            for (int j = 0; j < 16; j += 2) { /* key-tile rows j, j + 1: dims d0 + 2j .. d0 + 2j + 3 */
                size_t at = (size_t)d0 / 32 * TILE + j * 32;
                dp_rows(e0, o0, e1, o1, k0 + at, k1 + at, qb, (size_t)(d0 + 2 * j), NQ);
            }
        for (int i = 0; i < NQ; i++) {
            _mm512_storeu_ps(s[i] + s0, _mm512_add_ps(e0[i], o0[i]));
            _mm512_storeu_ps(s[i] + s0 + KS, _mm512_add_ps(e1[i], o1[i]));
        }
    }
}

/* acc[i] (hd) = the sum over the whole blocks 0..nfull-1 of their numerators P[i] (bf16,
 * by position) times their values, blocks in order: read from the cache's tiles below
 * block `placed`, assembled from the chain into vt (two tiles) from there. Four sums per
 * query: two tiles of 16 dims, even and odd pairs of positions. */
DP_INLINE void values_dp(float *const *acc, const uint16_t *const *P, const mtp_kv_bf16 *kv, const int *ch,
                         int nfull, int placed, uint16_t *vt, const int NQ) {
    int hd = kv->hd;
    for (int d0 = 0; d0 < hd; d0 += 32) {
        __m512 e0[DP_PAIR], o0[DP_PAIR], e1[DP_PAIR], o1[DP_PAIR];
        for (int i = 0; i < NQ; i++) e0[i] = o0[i] = e1[i] = o1[i] = _mm512_setzero_ps();
        for (int b = 0; b < nfull; b++) {
            const uint16_t *v0 = kv->v + ((size_t)b * (hd / 16) + d0 / 16) * TILE;
            if (b >= placed) {
                assemble_values(vt, kv, ch, b, d0);
                v0 = vt;
            }
            for (int j = 0; j < VB / 2; j += 2) /* value-tile rows j, j + 1: positions 2j .. 2j + 3 */
                dp_rows(e0, o0, e1, o1, v0 + j * 32, v0 + TILE + j * 32, P, (size_t)(b * VB + 2 * j), NQ);
        }
        for (int i = 0; i < NQ; i++) {
            _mm512_storeu_ps(acc[i] + d0, _mm512_add_ps(e0[i], o0[i]));
            _mm512_storeu_ps(acc[i] + d0 + 16, _mm512_add_ps(e1[i], o1[i]));
        }
    }
}

/* out[i] (hd) for the NQ queries q[i], all over chain ch of n positions; sc: scratch. */
DP_INLINE void attend_dp_queries(float *const *out, const float *const *q, const int *ch, int n,
                                 const mtp_kv_bf16 *kv, size_t c, float scale, float *sc, const int NQ) {
    int hd = kv->hd, last = chain_end(ch, n), fi = in_place(ch, n), nfull = n / VB;
    MTP_ASSERT(n >= 1 && last <= (int)c);
    float *S[DP_PAIR], *p[DP_PAIR], *acc[DP_PAIR], inv[DP_PAIR];
    uint16_t *P[DP_PAIR], *qb[DP_PAIR];
    uint16_t *vt = (uint16_t *)(sc + DP_PAIR * (3 * c + hd)) + DP_PAIR * (c + hd); /* two value tiles */
    for (int i = 0; i < NQ; i++) {
        S[i] = sc + i * (3 * c + hd);                                /* (c) scores by slot */
        p[i] = S[i] + c;                                             /* (c) numerators by position */
        acc[i] = p[i] + c;                                           /* (hd) sums over whole blocks */
        P[i] = (uint16_t *)(sc + DP_PAIR * (3 * c + hd)) + i * (c + hd); /* (c) numerators as bf16 */
        qb[i] = P[i] + c;                                            /* (hd) the query as bf16 */
        round_query(qb[i], q[i], hd);
    }
    scores_dp(S, (const uint16_t *const *)qb, kv->k, hd, last, NQ);
    for (int i = 0; i < NQ; i++) {
        inv[i] = 1.0f / numerators(p[i], S[i], ch, n, fi, scale);
        round_numerators(P[i], p[i], nfull * VB);
    }
    values_dp(acc, (const uint16_t *const *)P, kv, ch, nfull, fi / VB, vt, NQ);
    for (int i = 0; i < NQ; i++) finish(out[i], acc[i], p[i], ch, nfull * VB, n, kv, inv[i]);
}

DP_TARGET static void attend_dp(float *const *out, const float *const *q, const int *const *chain,
                                const int *n, int nq, const mtp_kv_bf16 *kv, int cap, float scale,
                                float *scratch) {
    size_t c = cap_blocks(cap);
    for (int m = 0; m < nq;) {
        MTP_ASSERT(n[m] >= 1 && n[m] <= cap);
        if (m + 1 < nq && chain[m + 1] == chain[m] && n[m + 1] == n[m]) {
            attend_dp_queries(out + m, q + m, chain[m], n[m], kv, c, scale, scratch, 2);
            m += 2;
        } else {
            attend_dp_queries(out + m, q + m, chain[m], n[m], kv, c, scale, scratch, 1);
            m++;
        }
    }
}
#endif

void mtp_attend_bf16(float *const *out, const float *const *q, const int *const *chain,
                     const int *n, int nq, const mtp_kv_bf16 *kv, int cap, float scale,
                     float *scratch) {
    MTP_ASSERT(nq >= 1 && nq <= QN && kv->hd % 32 == 0);
#if MTP_AMX_ATTENTION
    if (amx_path()) {
        attend_amx(out, q, chain, n, nq, kv, cap, scale, scratch);
        return;
    }
#endif
#if MTP_DP_ATTENTION
    if (dp_path()) {
        attend_dp(out, q, chain, n, nq, kv, cap, scale, scratch);
        return;
    }
#endif
    (void)out, (void)q, (void)chain, (void)n, (void)cap, (void)scale, (void)scratch;
    MTP_ASSERT(!"mtp_attend_bf16 without AMX or AVX512-BF16: check mtp_attend_bf16_available");
}
