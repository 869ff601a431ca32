/* test_session.c: the decoding session (src/decode/session.h). Sequences that join and
 * leave a running batch mid-flight, with their own options (greedy or sampled, plain,
 * block or tree), prompts filled in small chunks beside other sequences' trees, one
 * cancelled half-way, and greedy drafting depths changed between steps: each sequence's
 * tokens, pass count and end flags equal mtp_generate's for it alone. Also the refusals
 * (no free slot, a prompt the slot cannot hold), the pass timer, and MTP_SPEC_AUTO. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/rng.h"
#include "decode/session.h"
#include "model/model.h"
#include "small_model.h"


enum { NREQ = 8 };

typedef struct {
    mtp_token prompt[64];
    int len;
    mtp_gen_opts o;
    mtp_gen_result ref; /* mtp_generate alone */
} request;

static void make_requests(const mtp_model *m, request *rq) {
    mtp_rng r = {11};
    for (int i = 0; i < NREQ; i++) {
        request *q = &rq[i];
        q->len = i == 2 ? 40 : 1 + (int)mtp_rng_below(&r, 12);
        for (int j = 0; j < q->len; j++) q->prompt[j] = (mtp_token)mtp_rng_below(&r, 24);
        mtp_gen_opts_default(&q->o);
        q->o.spec = (mtp_spec)(i % 3);
        q->o.max_tokens = 10 + 5 * i;
        q->o.seed = 100 + i;
        if (i % 2) { /* sampled */
            q->o.sampling.temp = 0.9f;
            q->o.sampling.top_k = i == 3 ? 8 : 0;
            q->o.sampling.top_p = i == 5 ? 0.9f : 1.0f;
        }
        if (i == 6) q->o.eos = q->prompt[0];
        mtp_err err;
        const mtp_token *p = q->prompt;
        MTP_ASSERT(mtp_generate(m, &p, &q->len, 1, &q->o, &q->ref, NULL, NULL, &err) == 0);
    }
}

/* the same tokens and ends; and passes, unless the drafting depths were changed */
static int same_as(const mtp_gen_result *a, const mtp_gen_result *b, int passes) {
    return a->n == b->n && !memcmp(a->tokens, b->tokens, a->n * sizeof(mtp_token)) &&
           (!passes || a->forwards == b->forwards) &&
           a->hit_eos == b->hit_eos && a->hit_max_seq_len == b->hit_max_seq_len;
}

static int same(const mtp_gen_result *a, const mtp_gen_result *b) { return same_as(a, b, 1); }

/* Requests join as slots free up, one every `every` steps; with vary, greedy ones draft at
 * a depth drawn afresh each step (and request 4 drops its heads' caches half-way). */
static void run_mix(const mtp_model *m, request *rq, int slots, int chunk, int every, int vary) {
    int cap[4] = {96, 96, 96, 96};
    mtp_session *s;
    mtp_err err;
    MTP_ASSERT(mtp_session_new(&s, m, slots, cap, 8, chunk, &err) == 0);
    mtp_gen_result res[NREQ];
    int slot_of[NREQ], who[4] = {-1, -1, -1, -1}, next = 0, ok = 0, steps = 0;
    mtp_rng r = {5};
    while (next < NREQ || who[0] >= 0 || who[1] >= 0 || who[2] >= 0 || who[3] >= 0) {
        if (next < NREQ && steps % every == 0) {
            int sl = mtp_session_add(s, rq[next].prompt, rq[next].len, &rq[next].o, 0, &res[next], &err);
            if (sl >= 0) {
                slot_of[next] = sl;
                who[sl] = next++;
            } else {
                MTP_ASSERT(strstr(err.msg, "slots")); /* only a full session refuses these */
            }
        }
        for (int k = 0; vary && k < slots; k++)
            if (who[k] >= 0) mtp_session_set_draft(s, k, (int)mtp_rng_below(&r, 4), !(who[k] == 4 && steps > 6));
        mtp_session_step(s, NULL, NULL, NULL);
        steps++;
        for (int k = 0; k < slots; k++) {
            if (who[k] < 0 || !mtp_session_done(s, k)) continue;
            int i = who[k];
            if (same_as(&res[i], &rq[i].ref, !vary || rq[i].o.sampling.temp > 0)) ok++;
            else printf("request %d (slot %d): %d tokens vs %d alone\n", i, slot_of[i], res[i].n, rq[i].ref.n);
            mtp_session_remove(s, k);
            mtp_gen_result_free(&res[i]);
            who[k] = -1;
        }
        MTP_ASSERT(steps < 10000);
    }
    CHECK(ok == NREQ, "%d slots, chunk %d, a request every %d steps%s: %d of %d equal mtp_generate alone", slots,
          chunk, every, vary ? ", drafting depths varied" : "", ok, NREQ);
    mtp_session_free(s);
}

/* MTP_SPEC_AUTO in a calibrated session, sequences joining a running batch: a greedy one
 * gives plain decoding's tokens at whatever depths the policy picks, a sampled one decodes
 * plainly (its draws are plain sampling's); uncalibrated, AUTO drafts as BLOCK does. */
static void test_auto(const mtp_model *m, const request *rq) {
    int cap[3] = {96, 96, 96};
    mtp_err err;
    mtp_session *s;
    MTP_ASSERT(mtp_session_new(&s, m, 3, cap, 8, 5, &err) == 0);
    mtp_session_calibrate(s, 1);
    mtp_gen_result res[NREQ], ref[NREQ];
    int who[3] = {-1, -1, -1}, next = 0, ok = 0, steps = 0;
    for (int i = 0; i < NREQ; i++) {
        mtp_gen_opts o = rq[i].o;
        o.spec = MTP_SPEC_NONE;
        const mtp_token *p = rq[i].prompt;
        MTP_ASSERT(mtp_generate(m, &p, &rq[i].len, 1, &o, &ref[i], NULL, NULL, &err) == 0);
    }
    while (next < NREQ || who[0] >= 0 || who[1] >= 0 || who[2] >= 0) {
        if (next < NREQ && steps % 2 == 0) {
            mtp_gen_opts o = rq[next].o;
            o.spec = MTP_SPEC_AUTO;
            int sl = mtp_session_add(s, rq[next].prompt, rq[next].len, &o, 0, &res[next], &err);
            if (sl >= 0) who[sl] = next++;
        }
        mtp_session_step(s, NULL, NULL, NULL);
        steps++;
        for (int k = 0; k < 3; k++) {
            if (who[k] < 0 || !mtp_session_done(s, k)) continue;
            int i = who[k], sampled = rq[i].o.sampling.temp > 0;
            if (same_as(&res[i], &ref[i], sampled)) ok++;
            else printf("auto request %d: %d tokens vs %d plainly\n", i, res[i].n, ref[i].n);
            mtp_session_remove(s, k);
            mtp_gen_result_free(&res[i]);
            who[k] = -1;
        }
        MTP_ASSERT(steps < 10000);
    }
    CHECK(ok == NREQ, "auto: %d of %d requests equal plain decoding (greedy: its tokens; sampled: its passes)", ok,
          NREQ);
    mtp_session_free(s);

    MTP_ASSERT(mtp_session_new(&s, m, 1, cap, 8, 16, &err) == 0); /* not calibrated */
    mtp_gen_opts o = rq[0].o, b = rq[0].o;
    o.spec = MTP_SPEC_AUTO;
    b.spec = MTP_SPEC_BLOCK;
    mtp_gen_result a, blk;
    const mtp_token *p = rq[0].prompt;
    MTP_ASSERT(mtp_generate(m, &p, &rq[0].len, 1, &b, &blk, NULL, NULL, &err) == 0);
    MTP_ASSERT(mtp_session_add(s, rq[0].prompt, rq[0].len, &o, 0, &a, &err) == 0);
    while (mtp_session_step(s, NULL, NULL, NULL) > 0) continue;
    CHECK(same(&a, &blk), "auto in an uncalibrated session: block's tokens and passes (%lld vs %lld)",
          (long long)a.forwards, (long long)blk.forwards);
    mtp_gen_result_free(&a);
    mtp_gen_result_free(&blk);
    mtp_session_free(s);
    for (int i = 0; i < NREQ; i++) mtp_gen_result_free(&ref[i]);
}

/* A request cancelled mid-flight frees its slot; the others are unaffected. */
static void test_cancel(const mtp_model *m, request *rq) {
    int cap[2] = {96, 96};
    mtp_session *s;
    mtp_err err;
    MTP_ASSERT(mtp_session_new(&s, m, 2, cap, 8, 16, &err) == 0);
    mtp_gen_result a, b, c;
    CHECK(mtp_session_add(s, rq[0].prompt, rq[0].len, &rq[0].o, 0, &a, &err) == 0, "add a");
    CHECK(mtp_session_add(s, rq[7].prompt, rq[7].len, &rq[7].o, 0, &b, &err) == 1, "add b");
    CHECK(mtp_session_add(s, rq[1].prompt, rq[1].len, &rq[1].o, 0, &c, &err) == -1 && strstr(err.msg, "slots"),
          "a third request with 2 slots is refused: %s", err.msg);
    for (int k = 0; k < 3; k++) mtp_session_step(s, NULL, NULL, NULL);
    CHECK(mtp_session_started(s, 1) && !mtp_session_done(s, 1), "b is running");
    mtp_session_remove(s, 1);
    mtp_gen_result_free(&b);
    CHECK(mtp_session_add(s, rq[1].prompt, rq[1].len, &rq[1].o, 0, &c, &err) == 1, "the freed slot is reused");
    while (mtp_session_step(s, NULL, NULL, NULL) > 0) continue;
    CHECK(same(&a, &rq[0].ref) && same(&c, &rq[1].ref), "after a cancel the others equal their runs alone");
    CHECK(mtp_session_done(s, 0) && mtp_session_done(s, 1), "both have ended");
    mtp_session_remove(s, 0);
    mtp_session_remove(s, 1);
    mtp_gen_result_free(&a);
    mtp_gen_result_free(&c);

    mtp_session *small;
    int cap30 = 30;
    MTP_ASSERT(mtp_session_new(&small, m, 1, &cap30, 8, 16, &err) == 0);
    mtp_gen_opts o = rq[0].o;
    o.max_tokens = 20;
    CHECK(mtp_session_add(small, rq[0].prompt, 10, &o, 0, &a, &err) == -1 && strstr(err.msg, "max_tokens"),
          "a request the slot cannot hold is refused: %s", err.msg);
    mtp_token bad = 24;
    o.max_tokens = 4;
    CHECK(mtp_session_add(small, &bad, 1, &o, 0, &a, &err) == -1 && strstr(err.msg, "out of range"),
          "an id past the vocabulary is refused: %s", err.msg);
    mtp_session_free(small);

    int rows[3] = {1, 4, 8}, brows[2] = {1, 2};
    double pass[3], dr[2];
    mtp_session_time(s, rows, 3, pass, brows, 2, 1, dr, 2);
    CHECK(pass[0] > 0 && pass[2] > 0 && dr[0] > 0 && dr[1] > 0, "the pass timer measures");
    CHECK(mtp_session_add(s, rq[0].prompt, rq[0].len, &rq[0].o, 0, &a, &err) == 0, "slot 0 is free after timing");
    while (mtp_session_step(s, NULL, NULL, NULL) > 0) continue;
    CHECK(same(&a, &rq[0].ref), "decoding after the timer equals decoding alone");
    mtp_gen_result_free(&a);
    mtp_session_free(s);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    mtp_model m;
    make_small_model(&m, 7);
    request rq[NREQ];
    make_requests(&m, rq);
    run_mix(&m, rq, 1, 256, 1, 0);
    run_mix(&m, rq, 3, 5, 2, 0);
    run_mix(&m, rq, 4, 3, 1, 0);
    run_mix(&m, rq, 3, 7, 3, 1);
    test_cancel(&m, rq);
    test_auto(&m, rq);
    for (int i = 0; i < NREQ; i++) mtp_gen_result_free(&rq[i].ref);
    mtp_model_free(&m);
    return check_finish();
}
