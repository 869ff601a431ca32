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
                     int n, const int *brows, const double *draft_s, int nb) {
    *p = (mtp_policy){.K = K, .max_rows = max_rows, .max_b = max_b};
    p->pass_s = xmalloc((max_rows + 1) * sizeof(double));
    p->draft_s = xmalloc((max_b + 1) * sizeof(double));
    fill(p->pass_s, max_rows, rows, pass_s, n);
    fill(p->draft_s, max_b, brows, draft_s, nb);
}

void mtp_policy_free(mtp_policy *p) {
    free(p->pass_s);
    free(p->draft_s);
}

static double pass_time(const mtp_policy *p, int R) {
    if (R <= p->max_rows) return p->pass_s[R];
    return p->pass_s[p->max_rows] * R / p->max_rows; /* past the table: no gain from more rows */
}

int mtp_policy_depth(const mtp_policy *p, int B, int R0, double F) {
    if (B == 0 || p->K == 0) return 0;
    int best = 0;
    double best_rate = 0, a = 0;
    for (int k = 0; k <= p->K; k++) {
        if (k > 0) a += (p->accepted[k] + 1.0) / (p->drafted[k] + 2.0);
        double tokens = F + B * (1 + a);
        double b = B <= p->max_b ? p->draft_s[B] : p->draft_s[p->max_b] * B / p->max_b;
        double t = pass_time(p, R0 + B * (1 + k)) + k * b;
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
    if (B >= 1 && B <= p->max_b && heads > 0) p->draft_s[B] += w * (draft_s / heads - p->draft_s[B]);
}
