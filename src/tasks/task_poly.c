/* task_poly.c: see task_poly.h. */
#include "tasks/task_poly.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

mtp_poly mtp_poly_neg(mtp_poly a) {
    for (int i = 0; i < 5; i++) a.c[i] = (uint8_t)((7 - a.c[i]) % 7);
    return a;
}

mtp_poly mtp_poly_add(mtp_poly a, mtp_poly b) {
    for (int i = 0; i < 5; i++) a.c[i] = (uint8_t)((a.c[i] + b.c[i]) % 7);
    return a;
}

mtp_poly mtp_poly_mul(mtp_poly a, mtp_poly b) {
    mtp_poly r = {{0}};
    for (int i = 0; i < 5; i++)
        for (int j = 0; i + j < 5; j++) r.c[i + j] = (uint8_t)((r.c[i + j] + a.c[i] * b.c[j]) % 7);
    return r;
}

mtp_poly mtp_poly_compose(mtp_poly p, mtp_poly q) {
    /* Horner: p(q) = p0 + q (p1 + q (p2 + q (p3 + q p4))) */
    mtp_poly r = {{p.c[4]}};
    for (int i = 3; i >= 0; i--) {
        r = mtp_poly_mul(r, q);
        r.c[0] = (uint8_t)((r.c[0] + p.c[i]) % 7);
    }
    return r;
}

static void put(mtp_poly_sample *s, mtp_token t) {
    MTP_ASSERT(s->n_tok < POLY_MAX_TOKENS);
    s->tok[s->n_tok++] = t;
}

/* Appends a random expression with m operations; returns its value. */
static mtp_poly gen(mtp_poly_sample *s, int m, mtp_rng *rng) {
    if (m == 0) {
        mtp_poly p;
        put(s, POLY_LBRACK);
        for (int i = 0; i < 5; i++) put(s, p.c[i] = (uint8_t)mtp_rng_below(rng, 7));
        put(s, POLY_RBRACK);
        return p;
    }
    int op = (int)mtp_rng_below(rng, 4);
    put(s, POLY_LPAREN);
    mtp_poly r;
    if (op == 0) {
        put(s, POLY_NEG);
        r = mtp_poly_neg(gen(s, m - 1, rng));
    } else {
        int left = (int)mtp_rng_below(rng, (uint64_t)m); /* 0..m-1 operations on the left */
        mtp_poly a = gen(s, left, rng);
        put(s, op == 1 ? POLY_ADD : op == 2 ? POLY_MUL : POLY_COMPOSE);
        mtp_poly b = gen(s, m - 1 - left, rng);
        r = op == 1 ? mtp_poly_add(a, b) : op == 2 ? mtp_poly_mul(a, b) : mtp_poly_compose(a, b);
    }
    put(s, POLY_RPAREN);
    return r;
}

void mtp_poly_sample_draw(mtp_poly_sample *s, int m, mtp_rng *rng) {
    MTP_ASSERT(m >= 1 && m <= POLY_MAX_M);
    s->m = m;
    s->n_tok = 0;
    s->answer = gen(s, m, rng);
    put(s, POLY_EQ);
    s->n_prompt = s->n_tok;
    for (int i = 0; i < 5; i++) put(s, s->answer.c[i]);
    put(s, POLY_END);
}

void mtp_poly_add_pauses(mtp_poly_sample *s, int n) {
    MTP_ASSERT(n >= 0 && n <= POLY_MAX_PAUSE && s->n_tok + n <= POLY_MAX_TOKENS);
    memmove(s->tok + s->n_prompt + n, s->tok + s->n_prompt, (s->n_tok - s->n_prompt) * sizeof *s->tok);
    for (int i = 0; i < n; i++) s->tok[s->n_prompt + i] = POLY_PAUSE;
    s->n_prompt += n;
    s->n_tok += n;
}

void mtp_poly_expr_text(const mtp_poly_sample *s, char *out, int cap) {
    static const char SYM[] = "0123456[]()-+*o=\n.";
    int w = 0;
    for (int i = 0; s->tok[i] != POLY_EQ && w < cap - 3; i++) {
        int t = s->tok[i];
        out[w++] = SYM[t];
        /* commas between a leaf's coefficients */
        if (t < 7 && s->tok[i + 1] < 7) out[w++] = ',';
    }
    out[w] = 0;
}

void mtp_poly_test_sample(mtp_poly_sample *s, int m, int i) {
    mtp_rng rng = {0x7E57000000000000ull ^ ((uint64_t)m << 32) ^ (uint64_t)i};
    mtp_rng_u64(&rng); /* decorrelate neighbouring seeds */
    mtp_poly_sample_draw(s, m, &rng);
}

/* FNV-1a over the prompt tokens. */
static uint64_t prompt_hash(const mtp_poly_sample *s) {
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < s->n_prompt; i++) h = (h ^ s->tok[i]) * 1099511628211ull;
    return h;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void mtp_poly_test_index_init(mtp_poly_test_index *idx) {
    idx->n = POLY_TEST_MAX_M * POLY_TEST_PER_M;
    idx->hash = xmalloc((size_t)idx->n * sizeof(uint64_t));
    mtp_poly_sample s;
    int n = 0;
    for (int m = 1; m <= POLY_TEST_MAX_M; m++)
        for (int i = 0; i < POLY_TEST_PER_M; i++) {
            mtp_poly_test_sample(&s, m, i);
            idx->hash[n++] = prompt_hash(&s);
        }
    qsort(idx->hash, n, sizeof *idx->hash, cmp_u64);
}

void mtp_poly_test_index_free(mtp_poly_test_index *idx) {
    free(idx->hash);
    idx->hash = NULL;
}

void mtp_poly_train_sample(mtp_poly_sample *s, mtp_rng *rng, const mtp_poly_test_index *idx) {
    for (;;) {
        mtp_poly_sample_draw(s, 1 + (int)mtp_rng_below(rng, POLY_TRAIN_MAX_M), rng);
        uint64_t h = prompt_hash(s);
        if (!bsearch(&h, idx->hash, idx->n, sizeof h, cmp_u64)) return;
    }
}
