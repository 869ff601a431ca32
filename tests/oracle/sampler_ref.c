/* sampler_ref.c: see sampler_ref.h. The implementation of mtp_probs before it stopped
 * sorting the whole vocabulary, unchanged. */
#include "oracle/sampler_ref.h"

#include <stdlib.h>

#include "kernels/ops.h"

static int by_prob_desc(const void *a, const void *b) {
    const mtp_prob_id *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? 1 : -1;
    return x->id - y->id; /* a fixed order on ties */
}

void mtp_probs_ref(float *probs, const float *logits, int V, const mtp_sampling *s,
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
