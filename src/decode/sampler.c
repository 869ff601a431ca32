/* sampler.c: see sampler.h. */
#include "decode/sampler.h"

#include <math.h>
#include <stdlib.h>

#include "kernels/ops.h"

int mtp_argmax(const float *logits, int V) {
    int best = 0;
    for (int j = 1; j < V; j++)
        if (logits[j] > logits[best]) best = j;
    return best;
}

static int by_prob_desc(const void *a, const void *b) {
    const mtp_prob_id *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? 1 : -1;
    return x->id - y->id; /* a fixed order on ties */
}

void mtp_probs(float *probs, const float *logits, int V, const mtp_sampling *s,
               mtp_prob_id *idx) {
    float mx = logits[mtp_argmax(logits, V)];
    for (int j = 0; j < V; j++) probs[j] = (logits[j] - mx) / s->temp;
    mtp_softmax(probs, V, 0); /* the largest is now 0 */
    int keep_k = s->top_k > 0 && s->top_k < V, keep_p = s->top_p > 0 && s->top_p < 1;
    if (!keep_k && !keep_p) return;
    for (int j = 0; j < V; j++) idx[j] = (mtp_prob_id){probs[j], j};
    qsort(idx, V, sizeof *idx, by_prob_desc);
    int keep = keep_k ? s->top_k : V;
    if (keep_p) {
        double mass = 0;
        int n = 0;
        while (n < keep && mass < s->top_p) mass += idx[n++].p;
        keep = n;
    }
    double kept = 0;
    for (int i = 0; i < keep; i++) kept += idx[i].p;
    for (int i = keep; i < V; i++) probs[idx[i].id] = 0;
    for (int i = 0; i < keep; i++) probs[idx[i].id] = (float)(idx[i].p / kept);
}

int mtp_draw(const float *probs, int V, double u) {
    double c = 0;
    int last = 0;
    for (int j = 0; j < V; j++) {
        if (probs[j] <= 0) continue;
        c += probs[j];
        last = j;
        if (u < c) return j;
    }
    return last; /* rounding: u beyond the accumulated mass */
}

int mtp_residual(float *p, const float *q, int V) {
    double sum = 0;
    for (int j = 0; j < V; j++) sum += p[j] > q[j] ? p[j] - q[j] : 0;
    if (sum <= 0) return 0;
    for (int j = 0; j < V; j++) p[j] = p[j] > q[j] ? (float)((p[j] - q[j]) / sum) : 0.0f;
    return 1;
}
