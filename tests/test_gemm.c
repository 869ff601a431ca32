/* test_gemm.c: mtp's own training products (kernels/gemm.h) against the plain reference
 * (mtp_gemm_ref, double sums): every transpose, sizes that leave partial panels and
 * blocks, padded leading dimensions, alpha and beta; the same bits on 1 and 2 threads;
 * bf16 against the reference on inputs rounded to bf16 the same way (subnormals flushed to
 * zero, else nearest even); several products as one job (mtp_gemm_parts) against one call
 * per part and the reference; and a training step of
 * a small model in bf16 against the same step in fp32 (losses, gradients). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/rng.h"
#include "core/util.h"
#include "kernels/gemm.h"
#include "kernels/ops.h"
#include "model/model.h"
#include "oracle/ops_ref.h"

/* fp32 sums in another order than the double reference: about sqrt(K) roundings of the
 * largest terms; K <= 600 here. Both kernels sum in fp32 (bf16: exact products), so one
 * tolerance, relative to the largest output. */
static const double TOL = 2e-5;

static mtp_rng rng = {3};

static float *rnd(size_t n) {
    float *x = falloc(n);
    for (size_t i = 0; i < n; i++) x[i] = (float)mtp_rng_normal(&rng);
    return x;
}

typedef void (*gemm_fn)(int, int, int, int, int, float, const float *, int, const float *, int,
                        float, float *, int);

/* one product of the kernel and of the reference, leading dimensions padded by 3 */
static void compare(gemm_fn f, int bf16, int tA, int tB, int M, int N, int K, float alpha, float beta) {
    int lda = (tA ? M : K) + 3, ldb = (tB ? K : N) + 3, ldc = N + 3;
    float *A = rnd((size_t)(tA ? K : M) * lda), *B = rnd((size_t)(tB ? N : K) * ldb);
    float *C = rnd((size_t)M * ldc), *R = falloc((size_t)M * ldc);
    if (beta == 0)
        for (size_t i = 0; i < (size_t)M * ldc; i++) C[i] = NAN; /* beta 0 never reads C */
    memcpy(R, C, (size_t)M * ldc * sizeof(float));
    f(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    mtp_gemm_ref(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, R, ldc, bf16);
    int pad_kept = 1; /* the columns past N are not written */
    for (int i = 0; i < M; i++) {
        pad_kept &= !memcmp(C + (size_t)i * ldc + N, R + (size_t)i * ldc + N, 3 * sizeof(float));
        memset(C + (size_t)i * ldc + N, 0, 3 * sizeof(float));
        memset(R + (size_t)i * ldc + N, 0, 3 * sizeof(float));
    }
    CHECK_CLOSE(C, R, (size_t)M * ldc, TOL, "%s tA %d tB %d %dx%dx%d alpha %g beta %g",
                bf16 ? "bf16" : "fp32", tA, tB, M, N, K, alpha, beta);
    CHECK(pad_kept, "%s %dx%dx%d writes past N", bf16 ? "bf16" : "fp32", M, N, K);
    free(A), free(B), free(C), free(R);
}

static void test_kernel(gemm_fn f, int bf16) {
    /* partial panels (MR 14, NR 32) and tiles (112 x 128), odd K (bf16 pairs), K cut into
     * 2 or 3 blocks (at most 512 inputs fp32, 1024 bf16), evenly or with a shorter last
     * block, odd block sizes (fp32 513: 257 + 256; bf16 2047: 1024 + 1023), small M or N */
    static const int SIZES[][3] = {{1, 1, 1}, {13, 17, 3}, {14, 32, 256}, {29, 65, 257},
                                   {115, 130, 513}, {3, 200, 40}, {200, 5, 600}, {5, 40, 1025},
                                   {30, 3, 1537}, {17, 33, 2047}, {2, 2, 2100}};
    for (size_t s = 0; s < sizeof SIZES / sizeof *SIZES; s++)
        for (int t = 0; t < 4; t++)
            compare(f, bf16, t & 1, t >> 1, SIZES[s][0], SIZES[s][1], SIZES[s][2], 1, 0);
    compare(f, bf16, 0, 1, 50, 70, 300, 0.5f, 1);
    compare(f, bf16, 1, 0, 50, 70, 300, 1, 1.5f);
    compare(f, bf16, 0, 0, 20, 30, 0, 1, 2); /* K 0: C = beta C */
    compare(f, bf16, 1, 1, 40, 50, 1100, 2, 0.5f); /* beta on the first of several blocks only */
}

/* Subnormal inputs count as zero in the bf16 products (vcvtne2ps2bf16 flushes them; the
 * reference does the same) and as themselves in fp32: A's first row tiny normal numbers,
 * the others subnormal (FLT_MIN is 1.2e-38), B about 2^120, so that those rows' products
 * (about 0.03) are far from 0 next to the first row's (about 1). */
static void test_subnormals(gemm_fn f, int bf16) {
    enum { M = 3, N = 20, K = 5 };
    float A[M * K], B[K * N], C[M * N], R[M * N];
    for (int i = 0; i < M * K; i++) A[i] = (i < K ? 1e-37f : 1.5e-39f) * (float)(i + 1);
    for (int i = 0; i < K * N; i++) B[i] = ldexpf(1.0f + (float)i / 64, 120);
    f(0, 0, M, N, K, 1, A, K, B, N, 0, C, N);
    mtp_gemm_ref(0, 0, M, N, K, 1, A, K, B, N, 0, R, N, bf16);
    CHECK_CLOSE(C, R, (size_t)M * N, TOL, "%s: subnormal inputs", bf16 ? "bf16" : "fp32");
}

/* Threads partition the outputs, never the inputs: the same bits on 1 and 2 threads, on
 * sizes past the kernel's threshold for threads (one K block or several, an odd number of
 * microkernel calls split across tiles), in the three training orientations. */
static void test_threads_at(gemm_fn f, const char *name, int M, int N, int K) {
    float *A = rnd((size_t)M * K), *B = rnd((size_t)K * N), *C1 = falloc((size_t)M * N), *C2 = falloc((size_t)M * N);
    for (int t = 0; t < 3; t++) {
        int tA = t == 2, tB = t == 0;
        check_threads(1);
        f(tA, tB, M, N, K, 1, A, tA ? M : K, B, tB ? K : N, 0, C1, N);
        check_threads(2);
        f(tA, tB, M, N, K, 1, A, tA ? M : K, B, tB ? K : N, 0, C2, N);
        CHECK_SAME(C1, C2, (size_t)M * N, "%s tA %d tB %d %dx%dx%d: 1 and 2 threads", name, tA, tB, M, N, K);
    }
    free(A), free(B), free(C1), free(C2);
}

static void test_threads(gemm_fn f, const char *name) {
    test_threads_at(f, name, 300, 200, 700);
    test_threads_at(f, name, 129, 33, 2500);
}

/* mtp_gemm_parts against one call per part: the same bits, within TOL of the reference,
 * and the same bits on 1 and 2 threads. M, N: the size of the dimension not split (the
 * other ignored), K; n[q]: the parts' extents along the split one. Every part's operands have their own leading dimensions (padded by
 * 1 + q); the shared operand is part 0's. */
static void compare_parts(int bf16, mtp_gemm_split split, int tA, int tB, int M, int N, int K, const int *n,
                          int np, float beta) {
    gemm_fn f = bf16 ? mtp_gemm_bf16 : mtp_gemm_avx512;
    static const char *names[] = {"M", "N"};
    float *A[MTP_GEMM_PARTS], *B[MTP_GEMM_PARTS], *C[MTP_GEMM_PARTS], *Cj[MTP_GEMM_PARTS], *Cs[MTP_GEMM_PARTS],
        *Cr[MTP_GEMM_PARTS];
    int m[MTP_GEMM_PARTS], nn[MTP_GEMM_PARTS], k[MTP_GEMM_PARTS], lda[MTP_GEMM_PARTS], ldb[MTP_GEMM_PARTS],
        ldc[MTP_GEMM_PARTS], total = 0;
    size_t csize[MTP_GEMM_PARTS];
    mtp_gemm_part parts[MTP_GEMM_PARTS];
    for (int q = 0; q < np; q++) {
        m[q] = split == MTP_SPLIT_M ? n[q] : M, nn[q] = split == MTP_SPLIT_N ? n[q] : N;
        k[q] = K, total += n[q];
        int share_a = split == MTP_SPLIT_N && q, share_b = split == MTP_SPLIT_M && q;
        lda[q] = share_a ? lda[0] : (tA ? m[q] : k[q]) + 1 + q;
        ldb[q] = share_b ? ldb[0] : (tB ? k[q] : nn[q]) + 1 + q;
        ldc[q] = nn[q] + 1 + q;
        A[q] = share_a ? A[0] : rnd((size_t)(tA ? k[q] : m[q]) * lda[q]);
        B[q] = share_b ? B[0] : rnd((size_t)(tB ? nn[q] : k[q]) * ldb[q]);
        csize[q] = (size_t)m[q] * ldc[q];
        C[q] = rnd(csize[q]);
        parts[q] = (mtp_gemm_part){A[q], B[q], NULL, lda[q], ldb[q], ldc[q], n[q]};
    }
    for (int q = 0; q < np; q++) {
        Cj[q] = falloc(csize[q]), Cs[q] = falloc(csize[q]), Cr[q] = falloc(csize[q]);
        memcpy(Cs[q], C[q], csize[q] * sizeof(float));
        memcpy(Cr[q], C[q], csize[q] * sizeof(float));
    }
    for (int q = 0; q < np; q++) {
        f(tA, tB, m[q], nn[q], K, 1, A[q], lda[q], B[q], ldb[q], beta, Cs[q], ldc[q]);
        mtp_gemm_ref(tA, tB, m[q], nn[q], K, 1, A[q], lda[q], B[q], ldb[q], beta, Cr[q], ldc[q], bf16);
    }
    int Mt = split == MTP_SPLIT_M ? total : M, Nt = split == MTP_SPLIT_N ? total : N;
    for (int th = 1; th <= 2; th++) {
        check_threads(th);
        for (int q = 0; q < np; q++) memcpy(Cj[q], C[q], csize[q] * sizeof(float)), parts[q].C = Cj[q];
        mtp_gemm_parts(bf16, split, tA, tB, Mt, Nt, K, 1, parts, np, beta);
        for (int q = 0; q < np; q++) {
            CHECK_SAME(Cj[q], Cs[q], csize[q], "%s parts split %s tA %d tB %d %dx%dx%d part %d, %d threads: as one call per part",
                       bf16 ? "bf16" : "fp32", names[split], tA, tB, Mt, Nt, K, q, th);
            CHECK_CLOSE(Cj[q], Cr[q], csize[q], TOL, "%s parts split %s tA %d tB %d %dx%dx%d part %d: the reference",
                        bf16 ? "bf16" : "fp32", names[split], tA, tB, Mt, Nt, K, q);
        }
    }
    for (int q = 0; q < np; q++) {
        if (!(split == MTP_SPLIT_N && q)) free(A[q]);
        if (!(split == MTP_SPLIT_M && q)) free(B[q]);
    }
    for (int q = 0; q < np; q++) free(C[q]), free(Cj[q]), free(Cs[q]), free(Cr[q]);
}

/* parts that leave partial panels (MR 14, NR 32) inside the job, odd K (bf16 pairs), K in
 * several blocks (2 fp32, 1 bf16; 3 and 2), an empty part; shapes past the threads'
 * threshold and small ones; q|k|v's shape in small */
static void test_parts(int bf16) {
    static const int ODD[] = {13, 29, 5}, BIG[] = {130, 37, 21}, EMPTY[] = {0, 31, 17}, QKV[] = {48, 24, 24};
    for (int split = MTP_SPLIT_M; split <= MTP_SPLIT_N; split++)
        for (int t = 0; t < 4; t++) {
            compare_parts(bf16, split, t & 1, t >> 1, 57, 70, 300, ODD, 3, 0);
            compare_parts(bf16, split, t & 1, t >> 1, 64, 80, 513, BIG, 3, 1.5f);
            compare_parts(bf16, split, t & 1, t >> 1, 40, 50, 2100, ODD, 3, 0.5f);
            compare_parts(bf16, split, t & 1, t >> 1, 20, 33, 65, EMPTY, 3, 1);
            compare_parts(bf16, split, t & 1, t >> 1, 130, 48, 48, QKV, 3, 0);
            compare_parts(bf16, split, t & 1, t >> 1, 1, 1, 1, ODD + 2, 1, 0);
        }
}

/* Tolerances of a bf16 step against fp32 (bf16 keeps 8 significant bits: each rounding
 * moves a value by up to 2^-9 relative, the errors of a product's inputs averaging out over
 * its sums): each head's loss within 0.1% relative, the gradient within 2% in norm
 * (||g16 - g32|| / ||g32||). Measured on this model: 0.001% and 0.3%. */
static const double LOSS_TOL = 1e-3, GRAD_TOL = 2e-2;

static void test_step_bf16(void) {
    mtp_config cfg;
    mtp_err err;
    MTP_ASSERT(mtp_config_parse(&cfg, "{\"dim\":64,\"n_layers\":3,\"n_heads\":4,\"n_kv_heads\":2,"
                                      "\"vocab_size\":97,\"hidden_dim\":128,\"n_future_tokens\":2,"
                                      "\"max_seq_len\":32}", "test", &err) == 0);
    mtp_model m;
    MTP_ASSERT(mtp_model_init(&m, &cfg, &err) == 0);
    mtp_model_randomize(&m, 9);
    int B = 2, T = 32, nf = cfg.n_future;
    mtp_acts a;
    MTP_ASSERT(mtp_acts_init(&a, &cfg, B, T, MTP_HEADS_SEQUENTIAL, 1, &err) == 0);
    mtp_token win[2 * (32 + 2)];
    for (int i = 0; i < B * (T + nf); i++) win[i] = (mtp_token)mtp_rng_below(&rng, cfg.vocab_size);
    size_t P = m.lay.total;
    float *g32 = falloc(P), *g16 = falloc(P);
    memset(g32, 0, P * sizeof(float));
    memset(g16, 0, P * sizeof(float));
    mtp_head_stats s32, s16;
    mtp_step(&m, &a, win, NULL, g32, 1.0f, &s32);
    CHECK(mtp_matmul_precision(1) == 0, "bf16 products available");
    mtp_step(&m, &a, win, NULL, g16, 1.0f, &s16);
    mtp_matmul_precision(0);
    double d2 = 0, n2 = 0, worst = 0;
    for (size_t i = 0; i < P; i++) d2 += (double)(g16[i] - g32[i]) * (g16[i] - g32[i]), n2 += (double)g32[i] * g32[i];
    for (int h = 0; h < nf; h++) worst = fmax(worst, fabs(s16.loss[h] - s32.loss[h]) / s32.loss[h]);
    printf("bf16 step vs fp32: loss %.3g relative (worst head), gradient %.3g relative in norm\n", worst, sqrt(d2 / n2));
    CHECK(worst <= LOSS_TOL, "bf16 step: losses within %g of fp32's (%.3g)", LOSS_TOL, worst);
    CHECK(sqrt(d2 / n2) <= GRAD_TOL, "bf16 step: gradient within %g of fp32's (%.3g)", GRAD_TOL, sqrt(d2 / n2));
    CHECK(d2 > 0, "bf16 step: the gradient differs from fp32's at all (the products were rounded)");
    free(g32), free(g16);
    mtp_acts_free(&a);
    mtp_model_free(&m);
}

int main(void) {
    if (mtp_gemm_avx512_available()) {
        test_kernel(mtp_gemm_avx512, 0);
        test_subnormals(mtp_gemm_avx512, 0);
        test_threads(mtp_gemm_avx512, "fp32");
        test_parts(0);
    } else {
        SKIP("fp32 AVX-512 gemm: not built for AVX-512 or the CPU lacks it");
    }
    if (mtp_gemm_bf16_available()) {
        test_kernel(mtp_gemm_bf16, 1);
        test_subnormals(mtp_gemm_bf16, 1);
        test_threads(mtp_gemm_bf16, "bf16");
        test_parts(1);
        test_step_bf16();
    } else {
        SKIP("bf16 gemm: not built for AVX512-BF16 or the CPU lacks it");
    }
    return check_finish();
}
