/* policy.c: see policy.h. */
#include "decode/policy.h"

#include <stdlib.h>

#include "core/util.h"

/* t[0..max] from points (x[i], y[i]): linear between them, extended past the ends. */
static void fill(double *t, int max, const int *x, const double *y, int n) {
    for (int v = 0; v <= max; v++) {
        int i = 0;
        while (i + 2 < n && x[i + 1] < v) i++;
        if (n == 1) {
            t[v] = y[0] * (v > x[0] ? (double)v / x[0] : 1);
            continue;
        }
        double slope = (y[i + 1] - y[i]) / (x[i + 1] - x[i]);
        double e = y[i] + slope * (v - x[i]);
        t[v] = e > 0 ? e : y[0];
    }
}

void mtp_policy_init(mtp_policy *p, int K, int max_rows, int max_b, const int *rows, const double *pass_s,
                     int n, const int *brows, const double *draft1_s, const double *draftK_s, int nb) {
    *p = (mtp_policy){.K = K, .max_rows = max_rows, .max_b = max_b};
    p->pass_s = xmalloc((max_rows + 1) * sizeof(double));
    p->draft1_s = xmalloc((max_b + 1) * sizeof(double));
    p->draftK_s = xmalloc((max_b + 1) * sizeof(double));
    fill(p->pass_s, max_rows, rows, pass_s, n);
    fill(p->draft1_s, max_b, brows, draft1_s, nb);
    fill(p->draftK_s, max_b, brows, draftK_s, nb);
}

void mtp_policy_free(mtp_policy *p) {
    free(p->pass_s);
    free(p->draft1_s);
    free(p->draftK_s);
}

static double pass_time(const mtp_policy *p, int R) {
    if (R <= p->max_rows) return p->pass_s[R];
    return p->pass_s[p->max_rows] * R / p->max_rows; /* past the table: no gain from more rows */
}

/* A table's entry at B, past its end linearly. */
static double at_b(const mtp_policy *p, const double *t, int B) {
    return B <= p->max_b ? t[B] : t[p->max_b] * B / p->max_b;
}

/* The draft pass of k >= 1 heads on B rows: linear in k between the timed 1 and K heads
 * (every head's layer, one unembedding for all). */
static double draft_time(const mtp_policy *p, int k, int B) {
    double d1 = at_b(p, p->draft1_s, B), dK = at_b(p, p->draftK_s, B);
    if (p->K == 1) return d1;
    if (dK < d1) dK = d1; /* (noise) */
    return d1 + (k - 1) * (dK - d1) / (p->K - 1);
}

int mtp_policy_depth(const mtp_policy *p, int B, int R0, double F) {
    if (B == 0 || p->K == 0) return 0;
    int best = 0;
    double best_rate = 0, a = 0;
    for (int k = 0; k <= p->K; k++) {
        if (k > 0) a += (p->accepted[k] + 1.0) / (p->drafted[k] + 2.0);
        double tokens = F + B * (1 + a);
        double t = pass_time(p, R0 + B * (1 + k)) + (k ? draft_time(p, k, B) : 0);
        if (t > 0 && tokens / t > best_rate) {
            best_rate = tokens / t;
            best = k;
        }
    }
    return best;
}

void mtp_policy_observe(mtp_policy *p, int R, double pass_s, int B, int heads, double draft_s) {
    const double w = 0.1; /* moving averages: a pass counts a tenth */
    if (R >= 1 && R <= p->max_rows) p->pass_s[R] += w * (pass_s - p->pass_s[R]);
    if (B >= 1 && B <= p->max_b && heads > 0) { /* both ends by the pass's ratio to its estimate */
        double e = draft_time(p, heads, B), f = e > 0 ? draft_s / e : 1;
        p->draft1_s[B] += w * (f * p->draft1_s[B] - p->draft1_s[B]);
        p->draftK_s[B] += w * (f * p->draftK_s[B] - p->draftK_s[B]);
    }
}
