/* test_sampler.c: mtp_probs (top-k, top-p without sorting the vocabulary) against the
 * full sort it replaced (tests/oracle/sampler_ref.c).
 * - the same bits as the reference, every probability: V = 50, 32000, 128256; logits flat
 *   to peaked, sorted either way, quantized to a few values (many exact ties, where only
 *   the id decides the order) and all equal; top_k only, top_p only, both; k = 1, 2,
 *   V - 1, V; p tiny, at the reference's own cumulative masses and one float either side
 *   of them, 0.999999; several temperatures;
 * - the work of the ordering is bounded by what is kept: a full sort of 128256 tokens
 *   would take about 17 V comparisons, the bound allows a few V plus k log k. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "core/rng.h"
#include "decode/sampler.h"
#include "oracle/sampler_ref.h"

enum { FLAT, PEAKED, VERY_PEAKED, ZIPF, RISING, FALLING, QUANTIZED, FEW_VALUES, EQUAL, N_KINDS };
static const char *kind_name[N_KINDS] = {"flat",   "peaked",    "very peaked", "zipf", "rising",
                                         "falling", "quantized", "few values",  "equal"};

static void make_logits(float *lg, int V, int kind, mtp_rng *r) {
    for (int j = 0; j < V; j++) {
        double x = mtp_rng_normal(r);
        switch (kind) {
        case FLAT: lg[j] = (float)x; break;
        case PEAKED: lg[j] = (float)(3 * x); break;
        case VERY_PEAKED: lg[j] = (float)(8 * x); break;
        case ZIPF: lg[j] = (float)(-1.1 * log(1 + (double)mtp_rng_below(r, (uint64_t)V))); break;
        case RISING: lg[j] = (float)j / (float)V * 20; break;
        case FALLING: lg[j] = (float)(V - j) / (float)V * 20; break;
        case QUANTIZED: lg[j] = roundf((float)(4 * x)) / 2; break; /* a few dozen values */
        case FEW_VALUES: lg[j] = (float)mtp_rng_below(r, 3); break;
        default: lg[j] = 0.5f; break;
        }
    }
}

typedef struct {
    int V;
    float *lg, *got, *want;
    mtp_prob_id *scratch;
    size_t worst_work; /* the largest work seen at V = 128256 with k log k below V */
} ctx;

/* The tokens the reference kept with a probability above 0 (an underflowed one kept
 * makes the bound below only stricter). */
static int kept_of(const float *p, int V) {
    int n = 0;
    for (int j = 0; j < V; j++) n += p[j] > 0;
    return n;
}

static void one(ctx *c, int kind, float temp, int k, float p) {
    mtp_sampling s = {temp, k, p};
    mtp_probs_ref(c->want, c->lg, c->V, &s, c->scratch);
    size_t work = mtp_probs(c->got, c->lg, c->V, &s, c->scratch);
    CHECK_SAME(c->got, c->want, (size_t)c->V, "V %d %s logits, temp %g, top_k %d, top_p %.9g", c->V,
               kind_name[kind], temp, k, p);
    /* kept and a few more are ordered: the work is a few V plus a sort of the kept */
    int keep = kept_of(c->want, c->V);
    double bound = 3.0 * c->V + 4.0 * keep * log2(keep + 2.0);
    CHECK(work <= bound, "V %d %s logits, temp %g, top_k %d, top_p %.9g: work %zu, kept %d, bound %.0f",
          c->V, kind_name[kind], temp, k, p, work, keep, bound);
    if (c->V == 128256 && keep * log2(keep + 2.0) < c->V && work > c->worst_work) c->worst_work = work;
}

static int by_prob_desc(const void *a, const void *b) {
    const mtp_prob_id *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? 1 : -1;
    return x->id - y->id;
}

/* top_p at the reference's cumulative masses (as floats, and one float either side), so
 * that the walk stops exactly where the sums meet the threshold. */
static void at_masses(ctx *c, int kind, float temp, int k, int tries, mtp_rng *r) {
    mtp_sampling s = {temp, 0, 1};
    mtp_probs_ref(c->want, c->lg, c->V, &s, c->scratch);
    for (int j = 0; j < c->V; j++) c->scratch[j] = (mtp_prob_id){c->want[j], j};
    qsort(c->scratch, (size_t)c->V, sizeof *c->scratch, by_prob_desc);
    int n = c->V < 300 ? c->V : 300;
    double mass[300];
    double m = 0;
    for (int i = 0; i < n; i++) mass[i] = m += c->scratch[i].p;
    for (int t = 0; t < tries; t++) {
        int i = (int)mtp_rng_below(r, (uint64_t)n);
        float p = (float)mass[i];
        if (p <= 0 || p >= 1) continue;
        one(c, kind, temp, k, p);
        one(c, kind, temp, k, nextafterf(p, 0));
        one(c, kind, temp, k, nextafterf(p, 1));
    }
}

static void run_v(int V, int combos, int tries, uint64_t seed) {
    ctx c = {V, malloc(V * sizeof(float)), malloc(V * sizeof(float)), malloc(V * sizeof(float)),
             malloc(V * sizeof(mtp_prob_id)), 0};
    mtp_rng r = {seed};
    const float temps[] = {0.25f, 0.7f, 1.0f, 1.6f};
    const int ks[] = {0, 1, 2, 5, 40, V / 3, V - 1, V, V + 7};
    const float ps[] = {1, 1e-9f, 0.05f, 0.3f, 0.5f, 0.8f, 0.9f, 0.95f, 0.999f, 0.999999f, 0, 1.5f};
    const int nk = sizeof ks / sizeof *ks, np = sizeof ps / sizeof *ps;
    for (int kind = 0; kind < N_KINDS; kind++) {
        make_logits(c.lg, V, kind, &r);
        /* the edges every time, then random combinations */
        one(&c, kind, 1.0f, 1, 1);
        one(&c, kind, 1.0f, V - 1, 1);
        one(&c, kind, 1.0f, 0, 1e-9f);
        one(&c, kind, 1.0f, 0, 0.999999f);
        one(&c, kind, 0.7f, 40, 0.9f);
        for (int i = 0; i < combos; i++)
            one(&c, kind, temps[mtp_rng_below(&r, 4)], ks[mtp_rng_below(&r, (uint64_t)nk)],
                ps[mtp_rng_below(&r, (uint64_t)np)]);
        at_masses(&c, kind, temps[mtp_rng_below(&r, 4)], 0, tries, &r);
        at_masses(&c, kind, 1.0f, V / 3, tries, &r);
    }
    if (V == 128256) {
        /* peaked logits, a model's usual top_k and top_p: a small fraction of V */
        make_logits(c.lg, V, VERY_PEAKED, &r);
        c.worst_work = 0;
        one(&c, VERY_PEAKED, 1.0f, 50, 1);
        one(&c, VERY_PEAKED, 1.0f, 0, 0.9f);
        one(&c, VERY_PEAKED, 0.7f, 50, 0.95f);
        CHECK(c.worst_work < (size_t)V / 4, "peaked logits, V %d: work %zu, under V / 4 expected", V,
              c.worst_work);
        printf("V %d, peaked logits, top_k 50 / top_p 0.9: work %zu (a full sort: ~%.0f)\n", V, c.worst_work,
               V * log2(V));
    }
    free(c.lg);
    free(c.got);
    free(c.want);
    free(c.scratch);
}

int main(void) {
    run_v(1, 4, 4, 1);
    run_v(2, 8, 4, 2);
    run_v(17, 40, 4, 3);
    run_v(50, 300, 4, 4);
    run_v(32000, 12, 2, 5);
    run_v(128256, 4, 1, 6);
    return check_finish();
}
