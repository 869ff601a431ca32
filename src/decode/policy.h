/* policy.h: --spec auto's rule (docs/serve.md): before each pass, the drafting depth k
 * (0..K) that maximises expected tokens per second for the greedy requests that may
 * draft, from measured costs and acceptance:
 *
 *   tokens(k) = F + B (1 + a_1 + .. + a_k)        time(k) = pass(R0 + B (1 + k)) + draft(k, B)
 *
 * B: greedy requests still drafting; F, R0: tokens and rows of the rest of the pass (other
 * requests, prompt rows); a_d: the share of drafted passes that accepted depth d (all
 * requests so far, with a prior of 1/2); pass(R): time of a verification pass of R rows,
 * draft(k, B): the draft pass of k heads on B rows (draft(0, B) = 0), linear in k between
 * the passes of 1 and of K heads (each head's layer, one unembedding for all); all timed
 * at start (mtp_session_time) and kept up to date from the passes run (moving averages).
 * Pure arithmetic, no threads. */
#ifndef MTP_DECODE_POLICY_H
#define MTP_DECODE_POLICY_H

#include <stdint.h>

#include "mtp.h"

typedef struct {
    int K;               /* deepest draft (future heads - 1) */
    int max_rows, max_b;
    double *pass_s;      /* (max_rows + 1) [R] */
    double *draft1_s;    /* (max_b + 1) [B]: a draft pass of 1 head */
    double *draftK_s;    /* (max_b + 1) [B]: of K heads */
    int64_t drafted[MTP_MAX_FUTURE], accepted[MTP_MAX_FUTURE];
} mtp_policy;

/* Tables from timings at rows[i] (pass_s[i]) and brows[i] (draft1_s[i], draftK_s[i]),
 * increasing, interpolated linearly between them and extended linearly past the last. */
void mtp_policy_init(mtp_policy *p, int K, int max_rows, int max_b, const int *rows, const double *pass_s,
                     int n, const int *brows, const double *draft1_s, const double *draftK_s, int nb);
void mtp_policy_free(mtp_policy *p);

/* The depth for the next pass (see above). */
int mtp_policy_depth(const mtp_policy *p, int B, int R0, double F);

/* A measured pass of R rows (pass_s) and draft pass on B rows with `heads` heads run.
 * The session adds the drafted and accepted counts of its automatic sequences to the fields. */
void mtp_policy_observe(mtp_policy *p, int R, double pass_s, int B, int heads, double draft_s);

#endif
