/* task_poly.h: the polynomial arithmetic task (PAPER.md, "The polynomial arithmetic
 * task"): expressions over R = F7[X]/(X^5) with m operations (negation, addition,
 * multiplication, composition) and random leaves; the target is the result's 5
 * coefficients. Generated from a seed, so every sample is reproducible.
 *
 * Tokens (vocab 18, docs/tasks.md):
 *   0..6 the coefficients, 7 '[', 8 ']', 9 '(', 10 ')', 11 '-', 12 '+', 13 '*', 14 'o',
 *   15 '=', 16 end of sample (newline), 17 '.' (pause, reserved)
 * A sample is the expression, '=', the 5 answer digits, end. A leaf [c0..c4] is
 * '[' c0 c1 c2 c3 c4 ']' (the printed form adds commas). With pause tokens (the paper's
 * appendix K) the prompt ends with P '.' after '=': P more positions to compute in
 * before the answer. */
#ifndef MTP_TASK_POLY_H
#define MTP_TASK_POLY_H

#include <stdint.h>

#include "core/util.h" /* mtp_token */

#include "core/rng.h"

enum {
    POLY_LBRACK = 7, POLY_RBRACK, POLY_LPAREN, POLY_RPAREN, POLY_NEG, POLY_ADD, POLY_MUL,
    POLY_COMPOSE, POLY_EQ, POLY_END, POLY_PAUSE, POLY_VOCAB
};

#define POLY_MAX_M 16
#define POLY_MAX_PAUSE 64
#define POLY_MAX_TOKENS 512 /* a sample with m <= POLY_MAX_M and POLY_MAX_PAUSE pauses fits */

typedef struct {
    uint8_t c[5]; /* coefficients of X^0..X^4, each in 0..6 */
} mtp_poly;

mtp_poly mtp_poly_neg(mtp_poly a);
mtp_poly mtp_poly_add(mtp_poly a, mtp_poly b);
mtp_poly mtp_poly_mul(mtp_poly a, mtp_poly b);
mtp_poly mtp_poly_compose(mtp_poly p, mtp_poly q); /* p(q(X)) mod X^5 */

typedef struct {
    int m;                           /* operations */
    mtp_token tok[POLY_MAX_TOKENS];   /* expression '=' answer end */
    int n_tok, n_prompt;             /* all tokens; those up to '=' and the pauses */
    mtp_poly answer;
} mtp_poly_sample;

/* A random expression with m operations (operators uniform over the four; a binary
 * operator splits the remaining operations between its operands uniformly). */
void mtp_poly_sample_draw(mtp_poly_sample *s, int m, mtp_rng *rng);

/* Inserts n (<= POLY_MAX_PAUSE) pause tokens after the prompt's '='. */
void mtp_poly_add_pauses(mtp_poly_sample *s, int n);

/* The expression in the printed form ([c0,c1,c2,c3,c4], (-E), (E+E), (E*E), (EoE)). */
void mtp_poly_expr_text(const mtp_poly_sample *s, char *out, int cap);

#define POLY_TEST_PER_M 2000
#define POLY_TEST_MAX_M 10
#define POLY_TRAIN_MAX_M 5

/* Sample i of the fixed test set for m (its own seed per (m, i)). */
void mtp_poly_test_sample(mtp_poly_sample *s, int m, int i);

/* The fixed test set's expressions, so that training never sees one. */
typedef struct {
    uint64_t *hash; /* sorted prompt hashes */
    int n;
} mtp_poly_test_index;
void mtp_poly_test_index_init(mtp_poly_test_index *idx);
void mtp_poly_test_index_free(mtp_poly_test_index *idx);

/* A training sample: m uniform in 1..POLY_TRAIN_MAX_M, redrawn while it is a test
 * expression. */
void mtp_poly_train_sample(mtp_poly_sample *s, mtp_rng *rng, const mtp_poly_test_index *idx);

#endif
