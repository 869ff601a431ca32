/* test_policy.c: --spec auto's rule (src/decode/policy.h) on made-up costs, where the best
 * depth is known by hand: the tables' interpolation, the depth from costs and acceptance,
 * and the moving averages of observed passes. */
#include <stdio.h>

#include "check.h"
#include "decode/policy.h"

/* A policy with K = 3 for one sequence (rows 1..4, one draft row) from pass(R) = a + b
 * and draft passes of d (1 head) and dK (3 heads). */
static void make_k(mtp_policy *p, double a, double b, double d, double dK) {
    int rows[2] = {1, 4}, brows[1] = {1};
    double pass[2] = {a, a + 3 * b}, draft1[1] = {d}, draftK[1] = {dK};
    mtp_policy_init(p, 3, 4, 1, rows, pass, 2, brows, draft1, draftK, 1);
}

static void make(mtp_policy *p, double a, double b, double d) { make_k(p, a, b, d, 3 * d); }

int main(void) {
    mtp_policy p;
    make(&p, 1, 1, 0.1);
    CHECK(p.pass_s[2] > 1.999 && p.pass_s[2] < 2.001 && p.pass_s[3] > 2.999 && p.pass_s[3] < 3.001,
          "the pass table is linear between timed rows: %g %g", p.pass_s[2], p.pass_s[3]);
    CHECK(mtp_policy_depth(&p, 1, 0, 0) == 0, "every row costs a whole pass: no drafting");
    mtp_policy_free(&p);

    make(&p, 1, 0, 0.01);
    CHECK(mtp_policy_depth(&p, 1, 0, 0) == 3, "rows are free, drafts nearly so: all depths");
    CHECK(mtp_policy_depth(&p, 0, 1, 1) == 0, "nothing may draft: depth 0");
    mtp_policy_free(&p);

    /* a 4-row pass costs 1.9x a row: the prior (1/2 per depth) says draft all 3 ... */
    make(&p, 1, 0.3, 0.05);
    CHECK(mtp_policy_depth(&p, 1, 0, 0) == 3, "the prior's acceptance pays for 3 depths");
    for (int d = 1; d <= 3; d++) p.drafted[d] = 100, p.accepted[d] = 0;
    CHECK(mtp_policy_depth(&p, 1, 0, 0) == 0, "... nothing accepted in 100 drafts: depth 0");
    p.accepted[1] = 90, p.accepted[2] = 5, p.accepted[3] = 0;
    int k = mtp_policy_depth(&p, 1, 0, 0);
    CHECK(k == 1, "depth 1 accepted 90%%, deeper ones almost never: depth 1 (got %d)", k);
    mtp_policy_free(&p);

    /* drafting heads whose draft pass is mostly the one unembedding */
    make(&p, 1, 0.3, 0.3);
    CHECK(mtp_policy_depth(&p, 1, 0, 0) == 0, "3 heads cost 3x one: no drafting pays");
    mtp_policy_free(&p);
    make_k(&p, 1, 0.3, 0.3, 0.3);
    CHECK(mtp_policy_depth(&p, 1, 0, 0) == 3, "3 heads cost what one does: all depths");
    mtp_policy_free(&p);

    make(&p, 1, 0, 0.01);
    mtp_policy_observe(&p, 4, 3.0, 1, 2, 0.02);
    CHECK(p.pass_s[4] > 1.199 && p.pass_s[4] < 1.201, "an observed pass moves its row's cost a tenth: %g",
          p.pass_s[4]);
    CHECK(p.draft1_s[1] > 0.00999 && p.draft1_s[1] < 0.01001 && p.draftK_s[1] > 0.02999 && p.draftK_s[1] < 0.03001,
          "a draft pass of 2 heads as estimated (1 head 0.01, 3 heads 0.03) leaves both: %g %g", p.draft1_s[1],
          p.draftK_s[1]);
    mtp_policy_observe(&p, 1, 1.0, 1, 2, 0.04);
    CHECK(p.draft1_s[1] > 0.01099 && p.draft1_s[1] < 0.01101 && p.draftK_s[1] > 0.03299 && p.draftK_s[1] < 0.03301,
          "one twice as slow moves both a tenth of the way to double: %g %g", p.draft1_s[1], p.draftK_s[1]);
    mtp_policy_observe(&p, 9, 5.0, 0, 0, 0);
    CHECK(p.pass_s[4] > 1.199 && p.pass_s[4] < 1.201, "rows past the table leave it as it is");
    for (int i = 0; i < 200; i++) mtp_policy_observe(&p, 4, 4.0, 1, 3, 0.03);
    CHECK(mtp_policy_depth(&p, 1, 0, 0) < 3, "passes of 4 rows measured at 4x a row: no longer all depths");
    mtp_policy_free(&p);
    return check_finish();
}
