/* test_ops.c: every kernel in ops.h against its plain reference (ops_ref.h), forward and
 * backward, and every reference backward against central finite differences of a
 * random projection L = sum(out * R) of its forward. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/backend.h"
#include "check.h"
#include "kernels/ops.h"
#include "oracle/ops_ref.h"
#include "core/rng.h"
#include "core/util.h"

/* Tolerances, each with its reason, as a fraction of the largest magnitude compared
 * (CHECK_CLOSE: max |a-b| <= tol * max(max|b|, 1e-3)). */
static const double TOL_FAST = 2e-5; /* float kernels vs double references: reordered sums */
/* bf16 tile products: inputs rounded to 8 bits of mantissa (2^-9 relative), sums in fp32;
 * the worst measured 0.5% of the largest value */
static const double TOL_ATT_BF16 = 1e-2;
static const double TOL_FD = 1e-2;   /* finite differences in float: h^2 error + rounding / h */
static const float FD_H = 1e-2f;

static mtp_rng rng = {42};

static float *rnd(size_t n, float scale) {
    float *x = falloc(n);
    for (size_t i = 0; i < n; i++) x[i] = scale * (float)mtp_rng_normal(&rng);
    return x;
}

static float *dup(const float *x, size_t n) {
    float *y = falloc(n);
    memcpy(y, x, n * sizeof(float));
    return y;
}

static float *zeros(size_t n) {
    float *x = falloc(n);
    memset(x, 0, n * sizeof(float));
    return x;
}

/* ---- finite differences ------------------------------------------------------------ */

typedef double (*loss_fn)(void *ctx);

/* Checks grad (n) of loss wrt x at up to 24 spread-out entries. */
static void check_fd(const char *what, float *x, const float *grad, size_t n, loss_fn f,
                     void *ctx) {
    size_t stride = n > 24 ? n / 24 : 1;
    float *num = zeros(n), *ana = zeros(n);
    size_t k = 0;
    for (size_t i = (size_t)mtp_rng_below(&rng, stride); i < n; i += stride, k++) {
        float keep = x[i];
        x[i] = keep + FD_H;
        double up = f(ctx);
        x[i] = keep - FD_H;
        double down = f(ctx);
        x[i] = keep;
        num[k] = (float)((up - down) / (2 * FD_H));
        ana[k] = grad[i];
    }
    CHECK_CLOSE(ana, num, k, TOL_FD, "%s", what);
    free(num);
    free(ana);
}

static double dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* ---- each op ------------------------------------------------------------------------ */

enum { B = 2, T = 7, H = 4, HKV = 2, HD = 8, C = 24, OC = 20, V = 19 };
#define N (B * T)

typedef struct {
    float *x, *w, *r, *out, *rstd;
} norm_ctx;

static double rmsnorm_loss(void *p) {
    norm_ctx *c = p;
    mtp_rmsnorm_fwd_ref(c->out, c->rstd, c->x, c->w, N, C, 1e-5f);
    return dot(c->out, c->r, N * C);
}

static float *nans(size_t n) {
    float *x = falloc(n);
    for (size_t i = 0; i < n; i++) x[i] = NAN;
    return x;
}

static void add_to(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

static void test_rmsnorm(void) {
    float *x = rnd(N * C, 1), *w = rnd(C, 1), *r = rnd(N * C, 1), *res = rnd(N * C, 1);
    float *o1 = zeros(N * C), *o2 = zeros(N * C), *s1 = zeros(N), *s2 = zeros(N);
    mtp_rmsnorm_fwd(o1, s1, x, w, N, C, 1e-5f);
    mtp_rmsnorm_fwd_ref(o2, s2, x, w, N, C, 1e-5f);
    CHECK_CLOSE(o1, o2, N * C, TOL_FAST, "rmsnorm fwd");
    /* dx written (NaN before: never read), dw accumulated (random before) */
    float *dx1 = nans(N * C), *dx2 = zeros(N * C), *dw1 = rnd(C, 1), *dw2 = dup(dw1, C);
    mtp_rmsnorm_bwd(dx1, dw1, r, NULL, x, w, s1, N, C);
    mtp_rmsnorm_bwd_ref(dx2, dw2, r, NULL, x, w, s2, N, C);
    CHECK_CLOSE(dx1, dx2, N * C, TOL_FAST, "rmsnorm bwd dx (written)");
    CHECK_CLOSE(dw1, dw2, C, TOL_FAST, "rmsnorm bwd dw (accumulating)");
    /* with the residual's gradient added: into another buffer, and in place over dres */
    float *dx3 = nans(N * C), *dx4 = dup(res, N * C), *dw3 = zeros(C);
    mtp_rmsnorm_bwd(dx3, NULL, r, res, x, w, s1, N, C);
    mtp_rmsnorm_bwd(dx4, dw3, r, dx4, x, w, s1, N, C);
    mtp_rmsnorm_bwd_ref(dx2, NULL, r, res, x, w, s2, N, C);
    CHECK_CLOSE(dx3, dx2, N * C, TOL_FAST, "rmsnorm bwd dx = dres + norm gradient");
    CHECK_SAME(dx3, dx4, N * C, "rmsnorm bwd dx in place over dres");
    add_to(dx1, res, N * C);
    CHECK_SAME(dx3, dx1, N * C, "rmsnorm bwd: dres added as a separate pass added it");
    /* dw summed by column blocks: the same bits on 1 and 2 threads */
    float *dw4 = zeros(C);
    check_threads(1);
    mtp_rmsnorm_bwd(dx1, dw4, r, NULL, x, w, s1, N, C);
    check_threads(2);
    CHECK_SAME(dw3, dw4, C, "rmsnorm bwd dw on 1 and 2 threads");
    float *gx = zeros(N * C), *gw = zeros(C);
    mtp_rmsnorm_bwd_ref(gx, gw, r, NULL, x, w, s2, N, C);
    norm_ctx c = {x, w, r, o2, s2};
    check_fd("rmsnorm fd dx", x, gx, N * C, rmsnorm_loss, &c);
    check_fd("rmsnorm fd dw", w, gw, C, rmsnorm_loss, &c);
    free(x), free(w), free(r), free(res), free(o1), free(o2), free(s1), free(s2), free(dx1), free(dx2);
    free(dx3), free(dx4), free(dw1), free(dw2), free(dw3), free(dw4), free(gx), free(gw);
}

typedef struct {
    float *x, *w, *r, *out;
} mm_ctx;

static double matmul_loss(void *p) {
    mm_ctx *c = p;
    mtp_matmul_fwd_ref(c->out, c->x, c->w, N, C, OC, 0);
    return dot(c->out, c->r, N * OC);
}

static void test_matmul(void) {
    float *x = rnd(N * C, 1), *w = rnd(OC * C, 1), *r = rnd(N * OC, 1);
    float *o1 = rnd(N * OC, 1), *o2 = dup(o1, N * OC);
    mtp_matmul_fwd(o1, x, w, N, C, OC, 1);
    mtp_matmul_fwd_ref(o2, x, w, N, C, OC, 1);
    CHECK_CLOSE(o1, o2, N * OC, TOL_FAST, "matmul fwd (beta 1: residual add)");
    mtp_matmul_fwd(o1, x, w, N, C, OC, 0);
    mtp_matmul_fwd_ref(o2, x, w, N, C, OC, 0);
    CHECK_CLOSE(o1, o2, N * OC, TOL_FAST, "matmul fwd");
    float *dx1 = rnd(N * C, 1), *dx2 = dup(dx1, N * C), *dw1 = rnd(OC * C, 1), *dw2 = dup(dw1, OC * C);
    mtp_matmul_bwd(dx1, dw1, r, x, w, N, C, OC, 1);
    mtp_matmul_bwd_ref(dx2, dw2, r, x, w, N, C, OC, 1);
    CHECK_CLOSE(dx1, dx2, N * C, TOL_FAST, "matmul bwd dx (dx_beta 1: accumulated)");
    CHECK_CLOSE(dw1, dw2, OC * C, TOL_FAST, "matmul bwd dw");
    float *dx3 = nans(N * C); /* dx_beta 0: written, the NaNs never read */
    mtp_matmul_bwd(dx3, NULL, r, x, w, N, C, OC, 0);
    mtp_matmul_bwd_ref(dx2, dw2, r, x, w, N, C, OC, 0);
    CHECK_CLOSE(dx3, dx2, N * C, TOL_FAST, "matmul bwd dx (dx_beta 0: written)");
    float *gx = zeros(N * C), *gw = zeros(OC * C);
    mtp_matmul_bwd_ref(gx, gw, r, x, w, N, C, OC, 1);
    mm_ctx c = {x, w, r, o2};
    check_fd("matmul fd dx", x, gx, N * C, matmul_loss, &c);
    check_fd("matmul fd dw", w, gw, OC * C, matmul_loss, &c);
    free(x), free(w), free(r), free(o1), free(o2), free(dx1), free(dx2), free(dx3), free(dw1), free(dw2);
    free(gx), free(gw);
}

/* Several weights over one input (mtp_matmul_*_parts): the bits of one call per weight,
 * output widths that leave partial panels, a frozen weight's gradient (NULL) skipped */
static void test_matmul_parts(void) {
    enum { NP = 3 };
    static const int oc[NP] = {OC, 5, 11};
    float *x = rnd(N * C, 1), *w[NP], *r[NP], *o1[NP], *o2[NP], *dw1[NP], *dw2[NP];
    mtp_matmul_part fp[NP];
    mtp_matmul_grad_part bp[NP];
    for (int q = 0; q < NP; q++) {
        w[q] = rnd((size_t)oc[q] * C, 1), r[q] = rnd((size_t)N * oc[q], 1);
        o1[q] = nans((size_t)N * oc[q]), o2[q] = nans((size_t)N * oc[q]);
        dw1[q] = rnd((size_t)oc[q] * C, 1), dw2[q] = dup(dw1[q], (size_t)oc[q] * C);
        fp[q] = (mtp_matmul_part){w[q], o1[q], oc[q]};
        bp[q] = (mtp_matmul_grad_part){w[q], r[q], q == 1 ? NULL : dw1[q], oc[q]};
    }
    mtp_matmul_fwd_parts(fp, NP, x, N, C);
    float *dx1 = rnd(N * C, 1), *dx2 = dup(dx1, N * C);
    mtp_matmul_bwd_parts(dx1, bp, NP, x, N, C, 1);
    for (int q = 0; q < NP; q++) {
        mtp_matmul_fwd(o2[q], x, w[q], N, C, oc[q], 0);
        CHECK_SAME(o1[q], o2[q], (size_t)N * oc[q], "matmul fwd parts: part %d as its own call", q);
        mtp_matmul_bwd(dx2, q == 1 ? NULL : dw2[q], r[q], x, w[q], N, C, oc[q], 1);
        CHECK_SAME(dw1[q], dw2[q], (size_t)oc[q] * C, "matmul bwd parts: dw of part %d as its own call", q);
    }
    CHECK_SAME(dx1, dx2, N * C, "matmul bwd parts: dx as the calls one by one added it");
    for (int q = 0; q < NP; q++) free(w[q]), free(r[q]), free(o1[q]), free(o2[q]), free(dw1[q]), free(dw2[q]);
    free(x), free(dx1), free(dx2);
}

typedef struct {
    float *x, *r, *tmp;
} rope_ctx;

static double rope_loss(void *p) {
    rope_ctx *c = p;
    memcpy(c->tmp, c->x, N * H * HD * sizeof(float));
    mtp_rope_fwd_ref(c->tmp, N, T, H, HD, 10000.0f);
    return dot(c->tmp, c->r, N * H * HD);
}

static void test_rope(void) {
    size_t n = N * H * HD;
    float *x = rnd(n, 1), *a = dup(x, n), *b = dup(x, n), *r = rnd(n, 1);
    mtp_rope rope;
    mtp_rope_init(&rope, T, HD, 10000.0f);
    mtp_rope_fwd(a, &rope, N, T, H, HD);
    mtp_rope_fwd_ref(b, N, T, H, HD, 10000.0f);
    CHECK_CLOSE(a, b, n, TOL_FAST, "rope fwd");
    float *g1 = dup(r, n), *g2 = dup(r, n), *tmp = zeros(n);
    mtp_rope_bwd(g1, &rope, N, T, H, HD);
    mtp_rope_bwd_ref(g2, N, T, H, HD, 10000.0f);
    CHECK_CLOSE(g1, g2, n, TOL_FAST, "rope bwd");
    rope_ctx c = {x, r, tmp};
    check_fd("rope fd", x, g2, n, rope_loss, &c);
    mtp_rope_free(&rope);
    free(x), free(a), free(b), free(r), free(g1), free(g2), free(tmp);
}

typedef struct {
    float *q, *k, *v, *r, *out, *lse;
} att_ctx;

static double attention_loss(void *p) {
    att_ctx *c = p;
    mtp_attention_fwd_ref(c->out, c->lse, c->q, c->k, c->v, B, T, H, HKV, HD);
    return dot(c->out, c->r, N * H * HD);
}

/* The tiled kernels against the reference at one shape: out, lse and the three
 * gradients (written over NaNs); on 1 and 2 threads, the same bits. The gradients are
 * compared after adding the same random values to both: the tolerance is relative to the
 * largest value, and with T = 1 dq and dk are 0 but for rounding. */
static void attention_case(int b, int t, int h, int hkv, int hd, int bf16) {
    double tol = bf16 ? TOL_ATT_BF16 : TOL_FAST;
    size_t nq = (size_t)b * t * h * hd, nk = (size_t)b * t * hkv * hd, nl = (size_t)b * h * t;
    float *q = rnd(nq, 1), *k = rnd(nk, 1), *v = rnd(nk, 1), *r = rnd(nq, 1);
    float *o2 = zeros(nq), *l2 = zeros(nl), *dq2 = nans(nq), *dk2 = nans(nk), *dv2 = nans(nk);
    mtp_attention_fwd_ref(o2, l2, q, k, v, b, t, h, hkv, hd);
    mtp_attention_bwd_ref(dq2, dk2, dv2, r, q, k, v, b, t, h, hkv, hd);
    float *o[2], *l[2], *dq[2], *dk[2], *dv[2];
    for (int th = 0; th < 2; th++) {
        mtp_set_threads(th + 1);
        o[th] = rnd(nq, 1), l[th] = rnd(nl, 1); /* overwritten: no reliance on zeros */
        dq[th] = nans(nq), dk[th] = nans(nk), dv[th] = nans(nk);
        mtp_attention_fwd(o[th], l[th], q, k, v, b, t, h, hkv, hd);
        mtp_attention_bwd(dq[th], dk[th], dv[th], r, o[th], l[th], q, k, v, b, t, h, hkv, hd);
    }
    mtp_set_threads(2);
    const char *f = bf16 ? "attention in bf16 B=%d T=%d H=%d Hkv=%d hd=%d: %s" : "attention B=%d T=%d H=%d Hkv=%d hd=%d: %s";
    CHECK_SAME(o[0], o[1], nq, f, b, t, h, hkv, hd, "out on 1 and 2 threads");
    CHECK_SAME(l[0], l[1], nl, f, b, t, h, hkv, hd, "lse on 1 and 2 threads");
    CHECK_SAME(dq[0], dq[1], nq, f, b, t, h, hkv, hd, "dq on 1 and 2 threads");
    CHECK_SAME(dk[0], dk[1], nk, f, b, t, h, hkv, hd, "dk on 1 and 2 threads");
    CHECK_SAME(dv[0], dv[1], nk, f, b, t, h, hkv, hd, "dv on 1 and 2 threads");
    CHECK_CLOSE(o[0], o2, nq, tol, f, b, t, h, hkv, hd, "out");
    CHECK_CLOSE(l[0], l2, nl, tol, f, b, t, h, hkv, hd, "lse");
    if (bf16 && hd > 1) { /* the bf16 tile products ran: not the fp32 kernel's bits */
        float *o32 = zeros(nq), *l32 = zeros(nl);
        mtp_matmul_precision(0);
        mtp_attention_fwd(o32, l32, q, k, v, b, t, h, hkv, hd);
        mtp_matmul_precision(1);
        CHECK(memcmp(o32, o[0], nq * sizeof *o32) != 0, f, b, t, h, hkv, hd, "out differs from the fp32 kernel's");
        free(o32), free(l32);
    }
    float *base_q = rnd(nq, 1), *base_k = rnd(nk, 1), *base_v = rnd(nk, 1);
    add_to(dq[0], base_q, nq), add_to(dq2, base_q, nq);
    add_to(dk[0], base_k, nk), add_to(dk2, base_k, nk);
    add_to(dv[0], base_v, nk), add_to(dv2, base_v, nk);
    CHECK_CLOSE(dq[0], dq2, nq, tol, f, b, t, h, hkv, hd, "dq");
    CHECK_CLOSE(dk[0], dk2, nk, tol, f, b, t, h, hkv, hd, "dk (GQA: heads share kv)");
    CHECK_CLOSE(dv[0], dv2, nk, tol, f, b, t, h, hkv, hd, "dv");
    for (int th = 0; th < 2; th++) free(o[th]), free(l[th]), free(dq[th]), free(dk[th]), free(dv[th]);
    free(q), free(k), free(v), free(r), free(o2), free(l2), free(base_q), free(base_k), free(base_v);
    free(dq2), free(dk2), free(dv2);
}

static void test_attention(void) {
    /* within one tile; T = 1; tile-sized; not a multiple of the tile (a part tile on
     * the diagonal and below it); GQA groups of 1, 2 and 3; heads of odd size (a part
     * bf16 pair); in fp32, then with bf16 tile products (--precision bf16) where the CPU
     * has them */
    for (int bf16 = 0; bf16 <= 1; bf16++) {
        if (bf16 && mtp_matmul_precision(1)) {
            SKIP("attention with bf16 tile products: needs AVX512-BF16 and a build for it");
            break;
        }
        attention_case(B, T, H, HKV, HD, bf16);
        attention_case(1, 1, 2, 1, 8, bf16);
        attention_case(2, MTP_ATT_TILE, 2, 2, 16, bf16);
        attention_case(3, 2 * MTP_ATT_TILE + 37, 6, 2, 8, bf16);
        attention_case(1, 3 * MTP_ATT_TILE + 1, 4, 4, 32, bf16);
        attention_case(2, MTP_ATT_TILE + 5, 2, 1, 7, bf16);
        attention_case(1, 2 * MTP_ATT_TILE, 2, 2, 96, bf16);
    }
    mtp_matmul_precision(0);
    /* the reference backward against finite differences of its forward */
    size_t nq = N * H * HD, nk = N * HKV * HD;
    float *q = rnd(nq, 1), *k = rnd(nk, 1), *v = rnd(nk, 1), *r = rnd(nq, 1);
    float *o = zeros(nq), *lse = zeros((size_t)B * H * T), *gq = zeros(nq), *gk = zeros(nk), *gv = zeros(nk);
    mtp_attention_bwd_ref(gq, gk, gv, r, q, k, v, B, T, H, HKV, HD);
    att_ctx c = {q, k, v, r, o, lse};
    check_fd("attention fd dq", q, gq, nq, attention_loss, &c);
    check_fd("attention fd dk", k, gk, nk, attention_loss, &c);
    check_fd("attention fd dv", v, gv, nk, attention_loss, &c);
    free(q), free(k), free(v), free(r), free(o), free(lse), free(gq), free(gk), free(gv);
}

typedef struct {
    float *h1, *h3, *r, *g;
} swiglu_ctx;

static double swiglu_loss(void *p) {
    swiglu_ctx *c = p;
    mtp_swiglu_fwd_ref(c->g, c->h1, c->h3, N * C);
    return dot(c->g, c->r, N * C);
}

static void test_swiglu(void) {
    size_t n = N * C;
    float *h1 = rnd(n, 2), *h3 = rnd(n, 1), *r = rnd(n, 1), *g1 = zeros(n), *g2 = zeros(n);
    mtp_swiglu_fwd(g1, h1, h3, n);
    mtp_swiglu_fwd_ref(g2, h1, h3, n);
    CHECK_CLOSE(g1, g2, n, TOL_FAST, "swiglu fwd");
    float *a1 = nans(n), *a2 = zeros(n), *b1 = nans(n), *b2 = zeros(n); /* written */
    mtp_swiglu_bwd(a1, b1, r, h1, h3, n);
    mtp_swiglu_bwd_ref(a2, b2, r, h1, h3, n);
    CHECK_CLOSE(a1, a2, n, TOL_FAST, "swiglu bwd dh1");
    CHECK_CLOSE(b1, b2, n, TOL_FAST, "swiglu bwd dh3");
    /* 16 at a time and one at a time, the same bits: elements 0..6 again at the end, past
     * the last whole 16 (the one-at-a-time loop there on every CPU) */
    enum { M = 16 * 3 + 7 };
    float x1[M], x3[M], dg[M], d1[M], d3[M];
    for (int i = 0; i < M; i++) {
        int j = i < 48 ? i : i - 48;
        x1[i] = h1[j], x3[i] = h3[j], dg[i] = r[j];
    }
    mtp_swiglu_bwd(d1, d3, dg, x1, x3, M);
    CHECK_SAME(d1 + 48, d1, 7, "swiglu bwd dh1: the vector and scalar paths");
    CHECK_SAME(d3 + 48, d3, 7, "swiglu bwd dh3: the vector and scalar paths");
    float *gh1 = zeros(n), *gh3 = zeros(n);
    mtp_swiglu_bwd_ref(gh1, gh3, r, h1, h3, n);
    swiglu_ctx c = {h1, h3, r, g2};
    check_fd("swiglu fd dh1", h1, gh1, n, swiglu_loss, &c);
    check_fd("swiglu fd dh3", h3, gh3, n, swiglu_loss, &c);
    free(h1), free(h3), free(r), free(g1), free(g2), free(a1), free(a2), free(b1), free(b2);
    free(gh1), free(gh3);
}

/* mtp_zero, mtp_copy, mtp_add over a buffer big enough to be shared out (and not a whole
 * number of chunks), and a small one */
static void test_passes(void) {
    size_t sizes[] = {5, 3 * 65536 + 77};
    for (int k = 0; k < 2; k++) {
        size_t n = sizes[k];
        float *x = rnd(n, 1), *y = rnd(n, 1), *want = falloc(n), *z = nans(n);
        for (size_t i = 0; i < n; i++) want[i] = y[i] + x[i];
        mtp_add(y, x, n);
        CHECK_SAME(y, want, n, "mtp_add n=%zu", n);
        mtp_copy(z, x, n);
        CHECK_SAME(z, x, n, "mtp_copy n=%zu", n);
        mtp_zero(z, n);
        size_t nonzero = 0;
        for (size_t i = 0; i < n; i++) nonzero += z[i] != 0;
        CHECK(nonzero == 0, "mtp_zero n=%zu left %zu nonzero", n, nonzero);
        free(x), free(y), free(want), free(z);
    }
}

typedef struct {
    float *logits, *tmp, *losses;
    mtp_token *targets;
} xent_ctx;

static double xent_loss(void *p) {
    xent_ctx *c = p;
    memcpy(c->tmp, c->logits, N * V * sizeof(float));
    mtp_xent_ref(c->losses, NULL, c->tmp, c->targets, N, V, 0);
    double s = 0;
    for (int n = 0; n < N; n++) s += c->losses[n];
    return s;
}

static void test_xent(void) {
    float *logits = rnd(N * V, 3), *l1 = dup(logits, N * V), *l2 = dup(logits, N * V);
    float *loss1 = zeros(N), *loss2 = zeros(N), *tmp = zeros(N * V);
    mtp_token targets[N];
    uint8_t hit1[N], hit2[N];
    for (int n = 0; n < N; n++) targets[n] = (mtp_token)mtp_rng_below(&rng, V);
    mtp_xent(loss1, hit1, l1, targets, N, V, 0.5f);
    mtp_xent_ref(loss2, hit2, l2, targets, N, V, 0.5f);
    CHECK_CLOSE(loss1, loss2, N, TOL_FAST, "xent losses");
    CHECK_CLOSE(l1, l2, N * V, TOL_FAST, "xent dlogits (in place, scaled)");
    CHECK(!memcmp(hit1, hit2, N), "xent hits differ from the reference");
    float *grad = dup(logits, N * V);
    mtp_xent_ref(NULL, NULL, grad, targets, N, V, 1.0f);
    xent_ctx c = {logits, tmp, loss2, targets};
    check_fd("xent fd dlogits", logits, grad, N * V, xent_loss, &c);
    free(logits), free(l1), free(l2), free(loss1), free(loss2), free(tmp), free(grad);
}

/* hits name the first largest logit, as the reference's scan: ties go to the first, a NaN
 * at 0 wins, a NaN elsewhere never does. Each row's target is the expected argmax, and each
 * row is asked again with the other candidate (which must miss). */
static void test_xent_argmax(void) {
    enum { R = 4 };
    float l[2 * R * V];
    mtp_token want[R] = {0, 5, 0, 17}, other[R] = {1, 17, 18, 3}, targets[2 * R];
    for (int j = 0; j < 2 * R * V; j++) l[j] = (float)(j % V) * 0.01f - 1;
    for (int k = 0; k < 2; k++) {
        float *r = l + (size_t)k * R * V;
        for (int j = 0; j < V; j++) r[j] = 2; /* row 0: all equal */
        r[V + 5] = r[V + 17] = 3;               /* row 1: a tie, 5 first */
        r[2 * V] = NAN;                         /* row 2: NaN first */
        r[3 * V + 3] = NAN, r[3 * V + 17] = 5;  /* row 3: NaN before the largest */
        for (int n = 0; n < R; n++) targets[k * R + n] = k ? other[n] : want[n];
    }
    uint8_t hits[2 * R];
    mtp_xent(NULL, hits, l, targets, 2 * R, V, 0);
    for (int n = 0; n < R; n++) {
        CHECK(hits[n] == 1, "xent argmax row %d: %d is not the first largest", n, (int)want[n]);
        CHECK(hits[R + n] == 0, "xent argmax row %d: %d taken for the first largest", n, (int)other[n]);
    }
}

typedef struct {
    float *wte, *r, *out;
    mtp_token *tok;
} emb_ctx;

static double embedding_loss(void *p) {
    emb_ctx *c = p;
    mtp_embedding_fwd_ref(c->out, c->tok, c->wte, N, C);
    return dot(c->out, c->r, N * C);
}

static void test_embedding(void) {
    mtp_token tok[N];
    for (int n = 0; n < N; n++) tok[n] = (mtp_token)mtp_rng_below(&rng, 5); /* repeats */
    float *wte = rnd(V * C, 1), *r = rnd(N * C, 1), *o1 = zeros(N * C), *o2 = zeros(N * C);
    mtp_embedding_fwd(o1, tok, wte, N, C);
    mtp_embedding_fwd_ref(o2, tok, wte, N, C);
    CHECK_CLOSE(o1, o2, N * C, 0, "embedding fwd");
    float *d1 = rnd(V * C, 1), *d2 = dup(d1, V * C), *g = zeros(V * C);
    mtp_embedding_bwd(d1, r, tok, N, C);
    mtp_embedding_bwd_ref(d2, r, tok, N, C);
    CHECK_CLOSE(d1, d2, V * C, TOL_FAST, "embedding bwd (repeated ids accumulate)");
    mtp_embedding_bwd_ref(g, r, tok, N, C);
    emb_ctx c = {wte, r, o2, tok};
    check_fd("embedding fd", wte, g, V * C, embedding_loss, &c);
    free(wte), free(r), free(o1), free(o2), free(d1), free(d2), free(g);
}

/* The gemm interface itself, in all four transpose combinations, against the reference. */
static void test_gemm(void) {
    enum { M = 13, K = 17, NN = 11 };
    float *a = rnd(M * K, 1), *b = rnd(K * NN, 1), *c1 = rnd(M * NN, 1);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            float *c2 = dup(c1, M * NN), *c3 = dup(c1, M * NN);
            mtp_gemm(ta, tb, M, NN, K, 0.5f, a, ta ? M : K, b, tb ? K : NN, 0.25f, c2, NN);
            for (int i = 0; i < M; i++)
                for (int j = 0; j < NN; j++) {
                    double s = 0;
                    for (int k = 0; k < K; k++)
                        s += (double)(ta ? a[k * M + i] : a[i * K + k]) *
                             (tb ? b[j * K + k] : b[k * NN + j]);
                    c3[i * NN + j] = (float)(0.5 * s + 0.25 * c1[i * NN + j]);
                }
            CHECK_CLOSE(c2, c3, M * NN, TOL_FAST, "gemm transA=%d transB=%d", ta, tb);
            free(c2), free(c3);
        }
    free(a), free(b), free(c1);
}

int main(void) {
    printf("backend: %s\n", mtp_backend_describe());
    test_gemm();
    test_embedding();
    test_rmsnorm();
    test_matmul();
    test_rope();
    test_attention();
    test_swiglu();
    test_xent();
    test_xent_argmax();
    test_passes();
    test_matmul_parts(); /* last: its draws leave the others' random inputs as they were */
    return check_finish();
}
