/* sampler_ref.h: the plain definition of mtp_probs (decode/sampler.h), the oracle for
 * tests/test_sampler.c: every probability paired with its id, the V pairs sorted by qsort
 * (probability descending, then id ascending), top-k and top-p read off the sorted list.
 * Never used by the library. */
#ifndef MTP_SAMPLER_REF_H
#define MTP_SAMPLER_REF_H

#include "decode/sampler.h"

/* mtp_probs by a full sort of the V pairs in scratch (V). */
void mtp_probs_ref(float *probs, const float *logits, int V, const mtp_sampling *s,
                   mtp_prob_id *scratch);

#endif
