/* sampler.h: turning logits into a token: greedy argmax, or a distribution shaped by
 * temperature, top-k and top-p (nucleus) and a draw from it; plus the residual
 * distribution of speculative sampling. */
#ifndef MTP_SAMPLER_H
#define MTP_SAMPLER_H

#include <stddef.h>

#include "mtp.h" /* mtp_sampling */

/* Index of the largest logit (the first, on ties). */
int mtp_argmax(const float *logits, int V);

typedef struct {
    float p;
    int id;
} mtp_prob_id;

/* probs (V) = softmax(logits / temp), keeping only the top_k most likely tokens and the
 * smallest set whose mass reaches top_p, renormalised. The definition is a sort of all V
 * tokens by probability descending, then id ascending: top_k keeps the first k, top_p the
 * first n whose probabilities, added in that order in double, reach top_p (within the
 * first k). It is computed without that sort, to the same bits: only the kept tokens and
 * a few more are ordered. scratch (V) is working space. Returns the work of the ordering
 * (entries partitioned plus comparisons of small sorts; 0 without top-k and top-p), for
 * the tests to bound. */
size_t mtp_probs(float *probs, const float *logits, int V, const mtp_sampling *s,
                 mtp_prob_id *scratch);

/* Token drawn from probs (summing to 1) with a uniform u in [0, 1). */
int mtp_draw(const float *probs, int V, double u);

/* In place: p <- normalise(max(0, p - q)), the distribution to draw from after a drafted
 * token is rejected (Leviathan et al. 2023). Returns 0 if the residual is empty (p == q),
 * in which case p is left unchanged. */
int mtp_residual(float *p, const float *q, int V);

#endif
