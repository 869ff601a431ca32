/* gemm.c: the training products (gemm.h) on AVX-512, in fp32 (vfmadd231ps) or with bf16
 * inputs and fp32 sums (vdpbf16ps, AVX512-BF16). The usual blocked scheme: K is cut into
 * blocks of kc inputs, sized per call (at most KC32 fp32 / KC16 bf16, split evenly so no
 * short tail block is left); per block, op(A) is packed into panels of MR rows and op(B)
 * into panels of NR columns (bf16: converted by vcvtne2ps2bf16 as they are packed, two
 * inputs side by side); an MR x NR microkernel keeps its 28 sums in zmm registers over the
 * block and adds them to C (prefetched while it sums). The packs are double-buffered: while
 * the threads run the microkernels of block b, each also packs its share of block b + 1's
 * panels into the other buffer, one barrier per block. The microkernel calls, taken in
 * tiles of MT rows x NT columns (a tile's A panels stay in L2 while a B panel is reused),
 * are split between threads in equal counts. Every output element is summed by the same
 * instructions in the same order whatever the thread count: block by block in K, inputs in
 * order within a block (results depend on the shapes, never on the threads; exact resume
 * and bit-identical reruns rely on it). A job may hold several products over one shared
 * operand, cut along M or N (mtp_gemm_parts): their panels follow each other part by part,
 * each part's as its own call would make them, so the shared operand is packed once and the
 * outputs keep the bits of one call per part. Not here: AMX, fp16, a portable version (without
 * AVX-512 the products go to OpenBLAS, ops.c). */
#include "kernels/gemm.h"

#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "kernels/bf16.h"
#include "kernels/ops.h"
#include "kernels/pairs.h"

#if MTP_HAVE_OMP
#include <omp.h>
#endif

/* MR x NR: 14 rows broadcast, 2 vectors of 16 columns (28 accumulators of 32 registers).
 * KC32 / KC16: the most inputs per K block (fp32 / bf16: the same bytes of packed panels).
 * A tile of MT x NT outputs: consecutive microkernel calls share its panels. PF: the
 * packing loops prefetch their source this many steps ahead. */
enum { MR = 14, NR = 32, KC32 = 512, KC16 = 1024, MT = 8 * MR, NT = 4 * NR, PF = 8 };

int mtp_gemm_avx512_available(void) { return mtp_decode_avx512_available(); }

int mtp_gemm_bf16_available(void) {
#if MTP_PAIRS_BF16_BUILD
    return mtp_gemm_avx512_available() && mtp_bf16_dp_available();
#else
    return 0;
#endif
}

#if defined(__AVX512F__) /* the build targets AVX-512 (-march=native on such a CPU) */
/* r[0..15] = the 16 x 16 words transposed */
static void transpose16(__m512i r[16]) {
    __m512i t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4)
        for (int j = 0; j < 2; j++) {
            r[i + 2 * j] = _mm512_unpacklo_epi64(t[i + j], t[i + j + 2]);
            r[i + 2 * j + 1] = _mm512_unpackhi_epi64(t[i + j], t[i + j + 2]);
        }
    for (int i = 0; i < 16; i += 8)
        for (int j = 0; j < 4; j++) {
            t[i + j] = _mm512_shuffle_i32x4(r[i + j], r[i + j + 4], 0x88);
            t[i + j + 4] = _mm512_shuffle_i32x4(r[i + j], r[i + j + 4], 0xDD);
        }
    for (int j = 0; j < 8; j++) {
        r[j] = _mm512_shuffle_i32x4(t[j], t[j + 8], 0x88);
        r[j + 8] = _mm512_shuffle_i32x4(t[j], t[j + 8], 0xDD);
    }
}

/* One panel of width W (MR or NR) over inputs [k0, k0 + kc) of an operand whose element
 * (k, x) lies at src[k * ld + x] (kmajor) or src[x * ld + k], x counted from the panel's
 * first row or column, nx of them valid: word (p, x) at dst[p * W + x], p an input (fp32)
 * or a pair of inputs (bf16); zero past nx and past K. */
static void pack(uint32_t *dst, int W, const float *src, size_t ld, int kmajor, int nx, int K,
                 int k0, int kc, int bf16) {
    int step = bf16 ? 2 : 1, np = (kc + step - 1) / step;
    if (kmajor) {
        for (int p = 0; p < np; p++) {
            int k = k0 + p * step;
            const float *r0 = src + (size_t)k * ld, *r1 = bf16 && k + 1 < K ? r0 + ld : NULL;
            if (p + PF < np)
                for (int s = 0; s < step; s++)
                    for (int x = 0; x < W; x += 16) _mm_prefetch((const char *)(r0 + (PF * step + s) * ld + x), _MM_HINT_T0);
            for (int x = 0; x < W; x += 16)
                _mm512_mask_storeu_epi32(dst + p * W + x, lanes(W - x),
                                         load_pairs(r0 + x, r1 ? r1 + x : NULL, nx - x, bf16));
        }
        return;
    }
    for (int x = 0; x < W; x += 16)
        for (int p0 = 0; p0 < np; p0 += 16) {
            __m512i r[16];
            int kn = K - (k0 + p0 * step); /* inputs left from this block's first */
            for (int i = 0; i < 16 && x + i < nx; i++) {
                const float *row = src + (size_t)(x + i) * ld + k0 + p0 * step;
                if (p0 + 16 * PF < np) _mm_prefetch((const char *)(row + 16 * PF * step), _MM_HINT_T0);
            }
            for (int i = 0; i < 16; i++)
                r[i] = x + i < nx ? load_words(src + (size_t)(x + i) * ld + k0 + p0 * step, kn, bf16)
                                  : _mm512_setzero_si512();
            transpose16(r);
            for (int i = 0; i < 16 && p0 + i < np; i++)
                _mm512_mask_storeu_epi32(dst + (p0 + i) * W + x, lanes(W - x), r[i]);
        }
}

static int imin(int a, int b) { return a < b ? a : b; }

/* C rows [0, mr) under masks m0, m1 (columns 0-15, 16-31) from the sums: mode 0 C = alpha
 * s, 1 C = alpha s + beta C, 2 C += alpha s. Inlined, so the full tile's loop unrolls. */
static inline __attribute__((always_inline)) void write_back(float *C, int ldc, __m512 acc[MR][2], int mr,
                                                             __mmask16 m0, __mmask16 m1, float alpha,
                                                             float beta, int mode) {
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 14
    for (int r = 0; r < mr; r++) {
        float *c = C + (size_t)r * ldc;
        __m512 s0 = _mm512_mul_ps(acc[r][0], va), s1 = _mm512_mul_ps(acc[r][1], va);
        if (mode) {
            __m512 o0 = _mm512_maskz_loadu_ps(m0, c), o1 = _mm512_maskz_loadu_ps(m1, c + 16);
            if (mode == 1) o0 = _mm512_mul_ps(o0, vb), o1 = _mm512_mul_ps(o1, vb);
            s0 = _mm512_add_ps(o0, s0), s1 = _mm512_add_ps(o1, s1);
        }
        _mm512_mask_storeu_ps(c, m0, s0);
        _mm512_mask_storeu_ps(c + 16, m1, s1);
    }
}

/* C (mr x nr, mr <= MR, nr <= NR) = first ? alpha * sums + beta * C : C + alpha * sums,
 * over np inputs (fp32) or input pairs (bf16) of one A and one B panel. */
static void micro(float *C, int ldc, const uint32_t *a, const uint32_t *b, int np, int mr, int nr,
                  float alpha, float beta, int first, int bf16) {
    for (int r = 0; r < mr; r++) { /* C arrives while the sums are made */
        _mm_prefetch((const char *)(C + (size_t)r * ldc), _MM_HINT_T0);
        if (nr > 16) _mm_prefetch((const char *)(C + (size_t)r * ldc + 16), _MM_HINT_T0);
    }
    __m512 acc[MR][2];
    for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
#if MTP_PAIRS_BF16_BUILD
    if (bf16) {
        for (int p = 0; p < np; p++, a += MR, b += NR) {
            __m512bh b0 = (__m512bh)_mm512_load_si512(b), b1 = (__m512bh)_mm512_load_si512(b + 16);
#pragma GCC unroll 14
            for (int r = 0; r < MR; r++) {
                __m512bh ar = (__m512bh)_mm512_set1_epi32((int)a[r]);
                acc[r][0] = _mm512_dpbf16_ps(acc[r][0], ar, b0);
                acc[r][1] = _mm512_dpbf16_ps(acc[r][1], ar, b1);
            }
        }
    } else
#endif
    {
        const float *af = (const float *)a, *bf = (const float *)b;
        for (int p = 0; p < np; p++, af += MR, bf += NR) {
            __m512 b0 = _mm512_load_ps(bf), b1 = _mm512_load_ps(bf + 16);
#pragma GCC unroll 14
            for (int r = 0; r < MR; r++) {
                __m512 ar = _mm512_set1_ps(af[r]);
                acc[r][0] = _mm512_fmadd_ps(ar, b0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(ar, b1, acc[r][1]);
            }
        }
    }
    int mode = !first ? 2 : beta != 0;
    if (mr == MR && nr == NR) write_back(C, ldc, acc, MR, 0xFFFF, 0xFFFF, alpha, beta, mode);
    else write_back(C, ldc, acc, mr, lanes(nr), lanes(nr - 16), alpha, beta, mode);
}

/* One job's products: the parts (their extents along the split dimension in part[q].n),
 * the K blocks, the panels and the two pack buffers (each: the A panels, then the B panels). */
typedef struct {
    int bf16, tA, tB, M, N, K, split, nparts;
    float alpha, beta;
    mtp_gemm_part part[MTP_GEMM_PARTS];
    int first[MTP_GEMM_PARTS + 1]; /* each part's first panel along the split; first[nparts] the count */
    int kc, nkb, pa, pb, tm, tn; /* inputs per K block, blocks, A and B panels, tiles down and across */
    size_t apanel, bpanel, boff; /* words per panel; the B panels' offset (64-byte aligned) */
    uint32_t *buf[2];
} gemm_job;

/* Where panel i of width W along dim (MTP_SPLIT_M: op(A)'s rows, MTP_SPLIT_N: op(B)'s
 * columns) reads and writes: part q (0 where the job is not split along dim: the shared
 * operand), its first row or column x0 in that part, and the part's extent n along dim. */
typedef struct {
    int q, x0, n;
} span;

static span span_of(const gemm_job *j, int dim, int i, int W) {
    if (j->split != dim) return (span){0, i * W, dim == MTP_SPLIT_M ? j->M : j->N};
    int q = 0;
    while (i >= j->first[q + 1]) q++;
    return (span){q, (i - j->first[q]) * W, j->part[q].n};
}

/* panel p (A panels first, then B) of K block kb into buf */
static void pack_panel(const gemm_job *j, uint32_t *buf, int kb, int p) {
    int k0 = kb * j->kc, kc = imin(j->kc, j->K - k0);
    /* op(A) (i, k) is A[i][k] or A[k][i]; op(B) (k, j) is B[k][j] or B[j][k] */
    if (p < j->pa) {
        span s = span_of(j, MTP_SPLIT_M, p, MR);
        const mtp_gemm_part *o = &j->part[s.q];
        pack(buf + p * j->apanel, MR, o->A + (j->tA ? (size_t)s.x0 : (size_t)s.x0 * o->lda), o->lda, j->tA,
             s.n - s.x0, j->K, k0, kc, j->bf16);
    } else {
        span s = span_of(j, MTP_SPLIT_N, p - j->pa, NR);
        const mtp_gemm_part *o = &j->part[s.q];
        pack(buf + j->boff + (p - j->pa) * j->bpanel, NR, o->B + (j->tB ? (size_t)s.x0 * o->ldb : (size_t)s.x0),
             o->ldb, !j->tB, s.n - s.x0, j->K, k0, kc, j->bf16);
    }
}

/* the microkernel call of A panel ib and B panel jb of K block kb (np inputs or pairs) */
static void micro_at(const gemm_job *j, const uint32_t *cur, int ib, int jb, int kb, int np) {
    span r = span_of(j, MTP_SPLIT_M, ib, MR), c = span_of(j, MTP_SPLIT_N, jb, NR);
    const mtp_gemm_part *o = &j->part[r.q + c.q]; /* one of the two is 0: not split */
    micro(o->C + (size_t)r.x0 * o->ldc + c.x0, o->ldc, cur + ib * j->apanel, cur + j->boff + jb * j->bpanel, np,
          imin(MR, r.n - r.x0), imin(NR, c.n - c.x0), j->alpha, j->beta, kb == 0, j->bf16);
}

/* The panels a thread packs: an equal share of the A panels and an equal share of the B
 * panels, the i-th of them panel_of(&share, i). One share of all panels in a row gave one
 * thread most of the B panels, which cost another amount per word than A's (narrower, and
 * often read from cache: the weights), and the other thread waited at the barrier. */
typedef struct {
    int a0, na, b0, n; /* A panels a0 .. a0 + na - 1, then B panels from b0 (of all panels), n in all */
} pack_share;

static pack_share pack_share_of(const gemm_job *j, int tid, int nth) {
    int a0 = (int)((long)j->pa * tid / nth), a1 = (int)((long)j->pa * (tid + 1) / nth);
    int b0 = (int)((long)j->pb * tid / nth), b1 = (int)((long)j->pb * (tid + 1) / nth);
    return (pack_share){a0, a1 - a0, j->pa + b0, a1 - a0 + b1 - b0};
}

static int panel_of(const pack_share *s, int i) { return i < s->na ? s->a0 + i : s->b0 + i - s->na; }

/* Thread tid of nth: microkernel calls [ulo, uhi) of every K block (calls counted tile by
 * tile, neighbouring tiles sharing B panels; in a tile, B panel by B panel) and its pack
 * share of every block, that of block b + 1 spread among block b's calls. */
static void gemm_thread(const gemm_job *j, int tid, int nth) {
    long calls = (long)j->pa * j->pb, ulo = calls * tid / nth, uhi = calls * (tid + 1) / nth;
    pack_share share = pack_share_of(j, tid, nth);
    for (int i = 0; i < share.n; i++) pack_panel(j, j->buf[0], 0, panel_of(&share, i));
#if MTP_HAVE_OMP
#pragma omp barrier
#endif
    for (int kb = 0; kb < j->nkb; kb++) {
        const uint32_t *cur = j->buf[kb & 1];
        uint32_t *next = j->buf[~kb & 1];
        int k0 = kb * j->kc, np = (imin(j->kc, j->K - k0) + j->bf16) >> j->bf16;
        int topack = kb + 1 < j->nkb ? share.n : 0, packed = 0;
        long u = 0, done = 0, mine = uhi - ulo;
        for (int t = 0; t < j->tm * j->tn && u < uhi; t++) {
            int ti = t % j->tm, tj = t / j->tm;
            for (int jb = tj * NT / NR; jb < imin(j->pb, (tj + 1) * NT / NR) && u < uhi; jb++)
                for (int ib = ti * MT / MR; ib < imin(j->pa, (ti + 1) * MT / MR) && u < uhi; ib++, u++) {
                    if (u < ulo) continue;
                    micro_at(j, cur, ib, jb, kb, np);
                    done++;
                    for (; packed < topack * done / mine; packed++)
                        pack_panel(j, next, kb + 1, panel_of(&share, packed));
                }
        }
        for (; packed < topack; packed++) pack_panel(j, next, kb + 1, panel_of(&share, packed));
#if MTP_HAVE_OMP
#pragma omp barrier
#endif
    }
}

/* C (rows, cols) = beta * C: a product without inputs */
static void scale_c(float *C, int ldc, int rows, int cols, float beta) {
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) C[(size_t)i * ldc + j] = beta == 0 ? 0 : beta * C[(size_t)i * ldc + j];
}

/* the panels along the split dimension, part by part (first[]), and along the other; K
 * blocks of at most KC32 / KC16 inputs, even (no short tail block), pairs whole */
static void job_layout(gemm_job *j) {
    int step = j->bf16 ? 2 : 1, kmax = j->bf16 ? KC16 : KC32, nkb = (j->K + kmax - 1) / kmax;
    int w = j->split == MTP_SPLIT_M ? MR : NR;
    j->first[0] = 0;
    for (int q = 0; q < j->nparts; q++) j->first[q + 1] = j->first[q] + (j->part[q].n + w - 1) / w;
    j->kc = ((j->K + nkb - 1) / nkb + step - 1) / step * step;
    j->nkb = (j->K + j->kc - 1) / j->kc;
    j->pa = j->split == MTP_SPLIT_M ? j->first[j->nparts] : (j->M + MR - 1) / MR;
    j->pb = j->split == MTP_SPLIT_N ? j->first[j->nparts] : (j->N + NR - 1) / NR;
    j->tm = (j->pa + MT / MR - 1) / (MT / MR), j->tn = (j->pb + NT / NR - 1) / (NT / NR);
    j->apanel = (size_t)MR * (j->kc / step), j->bpanel = (size_t)NR * (j->kc / step);
    j->boff = (j->pa * j->apanel + 15) / 16 * 16;
}
#endif

static void gemm_run(int bf16, mtp_gemm_split split, int tA, int tB, int M, int N, int K, float alpha,
                     const mtp_gemm_part *parts, int nparts, float beta) {
    MTP_ASSERT(nparts >= 1 && nparts <= MTP_GEMM_PARTS);
    int sum = 0;
    for (int q = 0; q < nparts; q++) sum += parts[q].n;
    MTP_ASSERT(sum == (split == MTP_SPLIT_M ? M : N));
#if defined(__AVX512F__)
    if (K == 0) { /* no inputs: C = beta * C */
        for (int q = 0; q < nparts; q++)
            scale_c(parts[q].C, parts[q].ldc, split == MTP_SPLIT_M ? parts[q].n : M,
                    split == MTP_SPLIT_M ? N : parts[q].n, beta);
        return;
    }
    /* buffers kept by the calling thread between calls (a step makes hundreds of products) */
    static _Thread_local float *buf;
    static _Thread_local size_t cap;
    gemm_job j = {.bf16 = bf16, .tA = tA, .tB = tB, .M = M, .N = N, .K = K, .split = split, .nparts = nparts,
                  .alpha = alpha, .beta = beta};
    memcpy(j.part, parts, (size_t)nparts * sizeof *parts);
    job_layout(&j);
    size_t words = j.boff + j.pb * j.bpanel; /* a multiple of 16: the second buffer aligned too */
    if (2 * words > cap) {
        free(buf);
        buf = falloc(2 * words);
        cap = 2 * words;
    }
    j.buf[0] = (uint32_t *)buf, j.buf[1] = (uint32_t *)buf + words;
#if MTP_HAVE_OMP
#pragma omp parallel if (!omp_in_parallel() && (double)M * N * K > 1e6)
    gemm_thread(&j, omp_get_thread_num(), omp_get_num_threads());
#else
    gemm_thread(&j, 0, 1);
#endif
#else
    (void)bf16, (void)tA, (void)tB, (void)alpha, (void)beta;
    MTP_ASSERT(!"gemm_run on a CPU without AVX-512");
#endif
}

void mtp_gemm_avx512(int tA, int tB, int M, int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc) {
    MTP_ASSERT(mtp_gemm_avx512_available());
    mtp_gemm_part one = {A, B, C, lda, ldb, ldc, M};
    gemm_run(0, MTP_SPLIT_M, tA, tB, M, N, K, alpha, &one, 1, beta);
}

void mtp_gemm_bf16(int tA, int tB, int M, int N, int K, float alpha, const float *A, int lda,
                   const float *B, int ldb, float beta, float *C, int ldc) {
    MTP_ASSERT(mtp_gemm_bf16_available());
    mtp_gemm_part one = {A, B, C, lda, ldb, ldc, M};
    gemm_run(1, MTP_SPLIT_M, tA, tB, M, N, K, alpha, &one, 1, beta);
}

void mtp_gemm_parts(int bf16, mtp_gemm_split split, int tA, int tB, int M, int N, int K, float alpha,
                    const mtp_gemm_part *parts, int nparts, float beta) {
    MTP_ASSERT(bf16 ? mtp_gemm_bf16_available() : mtp_gemm_avx512_available());
    gemm_run(bf16, split, tA, tB, M, N, K, alpha, parts, nparts, beta);
}
