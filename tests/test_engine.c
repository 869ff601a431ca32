/* test_engine.c: the serving engine (mtp.h, src/serve/) without HTTP. Requests submitted
 * at once from several threads, more than there are slots, under each --spec: every
 * answer equals mtp_generate's for its prompt alone (greedy, and seeded sampling with
 * the spec it decodes with); callbacks see the tokens in order and one end; a callback
 * that stops a request keeps only the tokens it asked for; cancels end requests queued
 * or running; a full queue says MTP_BUSY; bad requests name their field; drain cancels
 * what is left and refuses new work. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "core/rng.h"
#include "model/model.h"
#include "small_model.h"


enum { NREQ = 10 };

typedef struct {
    mtp_token prompt[32];
    int len, stop_after; /* stop_after > 0: the callback ends it after that many tokens */
    mtp_gen_opts o;
    pthread_mutex_t mu;
    mtp_token got[128];
    int n_got, ends, in_order;
    mtp_end end;
    mtp_gen_result res;  /* the end's copy */
} request;

static int on_event(void *ctx, const mtp_token *tok, int n, const mtp_gen_result *res, mtp_end end, const char *msg) {
    request *q = ctx;
    pthread_mutex_lock(&q->mu);
    int keep = 0;
    if (n > 0) {
        q->in_order &= q->ends == 0;
        if (q->stop_after > 0 && q->n_got + n >= q->stop_after) keep = n = q->stop_after - q->n_got;
        memcpy(q->got + q->n_got, tok, n * sizeof(mtp_token));
        q->n_got += n;
    } else {
        q->ends++;
        q->end = end;
        q->res = *res;
        q->res.tokens = malloc((res->n ? res->n : 1) * sizeof(mtp_token));
        if (res->n) memcpy(q->res.tokens, res->tokens, res->n * sizeof(mtp_token));
    }
    pthread_mutex_unlock(&q->mu);
    return keep;
}

static void make_requests(request *rq, int n, uint64_t seed) {
    mtp_rng r = {seed};
    for (int i = 0; i < n; i++) {
        request *q = &rq[i];
        memset(q, 0, sizeof *q);
        pthread_mutex_init(&q->mu, NULL);
        q->in_order = 1;
        q->len = 1 + (int)mtp_rng_below(&r, i == 3 ? 30 : 10);
        for (int j = 0; j < q->len; j++) q->prompt[j] = (mtp_token)mtp_rng_below(&r, 24);
        mtp_gen_opts_default(&q->o);
        q->o.max_tokens = 8 + (int)mtp_rng_below(&r, 40);
        q->o.seed = 50 + i;
        if (i % 2) {
            q->o.sampling.temp = 0.9f;
            q->o.sampling.top_k = i == 5 ? 6 : 0;
        }
        if (i == 4) q->stop_after = 5;
    }
}

typedef struct {
    mtp_engine *e;
    request *rq;
    int first, n;
} submitter;

static void *submit_some(void *arg) {
    submitter *s = arg;
    for (int i = s->first; i < s->first + s->n; i++) {
        request *q = &s->rq[i];
        mtp_request r = {.prompt = q->prompt, .len = q->len, .opts = q->o, .cb = on_event, .ctx = q};
        uint64_t id;
        mtp_err err;
        MTP_ASSERT(mtp_engine_submit(s->e, &r, &id, &err) == 0);
    }
    return NULL;
}

static void wait_ends(request *rq, int n) {
    for (int k = 0; k < 20000; k++) {
        int ended = 0;
        for (int i = 0; i < n; i++) {
            pthread_mutex_lock(&rq[i].mu);
            ended += rq[i].ends > 0;
            pthread_mutex_unlock(&rq[i].mu);
        }
        if (ended == n) return;
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
}

/* The spec mtp_generate must use to give a request's tokens under the engine's spec. */
static mtp_spec spec_for(mtp_serve_spec sp, const mtp_gen_opts *o) {
    if (sp == MTP_SERVE_AUTO) return o->sampling.temp > 0 ? MTP_SPEC_NONE : MTP_SPEC_BLOCK;
    return sp == MTP_SERVE_NONE ? MTP_SPEC_NONE : sp == MTP_SERVE_TREE ? MTP_SPEC_TREE : MTP_SPEC_BLOCK;
}

static void test_exact(const mtp_model *m, mtp_serve_spec sp, int parallel) {
    static const char *names[] = {"none", "block", "tree", "auto"};
    mtp_engine_opts eo;
    mtp_engine_opts_default(&eo);
    eo.parallel = parallel;
    eo.spec = sp;
    eo.chunk = 7; /* prompts fill in several passes beside the others */
    mtp_engine *e;
    mtp_err err;
    MTP_ASSERT(mtp_engine_new(&e, m, &eo, &err) == 0);
    request rq[NREQ];
    make_requests(rq, NREQ, 3 + sp);
    pthread_t th[2];
    submitter sub[2] = {{e, rq, 0, NREQ / 2}, {e, rq, NREQ / 2, NREQ - NREQ / 2}};
    for (int t = 0; t < 2; t++) MTP_ASSERT(pthread_create(&th[t], NULL, submit_some, &sub[t]) == 0);
    for (int t = 0; t < 2; t++) pthread_join(th[t], NULL);
    wait_ends(rq, NREQ);
    int ok = 0;
    for (int i = 0; i < NREQ; i++) {
        request *q = &rq[i];
        mtp_gen_opts o = q->o;
        o.spec = spec_for(sp, &o);
        mtp_gen_result ref;
        const mtp_token *p = q->prompt;
        MTP_ASSERT(mtp_generate(m, &p, &q->len, 1, &o, &ref, NULL, NULL, &err) == 0);
        int n = q->stop_after > 0 && q->stop_after < ref.n ? q->stop_after : ref.n;
        int good = q->ends == 1 && q->end == MTP_END_DONE && q->in_order && q->res.n == n && q->n_got == n &&
                   !memcmp(q->res.tokens, ref.tokens, n * sizeof(mtp_token)) &&
                   !memcmp(q->got, ref.tokens, n * sizeof(mtp_token)) && (q->stop_after == 0 || q->res.stopped);
        if (!good) printf("  request %d: %d tokens, %d ends; %d alone\n", i, q->res.n, q->ends, ref.n);
        ok += good;
        mtp_gen_result_free(&ref);
        mtp_gen_result_free(&q->res);
    }
    CHECK(ok == NREQ, "--spec %s, %d slots: %d of %d requests equal mtp_generate alone", names[sp], parallel, ok, NREQ);
    mtp_engine_stats st;
    mtp_engine_get_stats(e, &st);
    CHECK(st.requests == NREQ && st.done == NREQ && st.active == 0 && st.queued == 0 && st.steps > 0,
          "stats count %lld requests, %lld done", (long long)st.requests, (long long)st.done);
    mtp_engine_free(e);
}

static void test_refusals(const mtp_model *m) {
    mtp_engine_opts eo;
    mtp_engine_opts_default(&eo);
    eo.parallel = 1;
    eo.queue = 1;
    eo.ctx = 40;
    mtp_engine *e;
    mtp_err err;
    MTP_ASSERT(mtp_engine_new(&e, m, &eo, &err) == 0);
    request rq[4];
    make_requests(rq, 4, 77);
    uint64_t id[4];
    for (int i = 0; i < 4; i++) rq[i].o.max_tokens = 30, rq[i].len = 5;
    mtp_request r = {.prompt = rq[0].prompt, .len = 5, .opts = rq[0].o, .cb = on_event, .ctx = &rq[0]};
    r.opts.max_tokens = 36;
    CHECK(mtp_engine_submit(e, &r, &id[0], &err) == -1 && strstr(err.msg, "context"), "past ctx: %s", err.msg);
    r.opts.max_tokens = 30;
    r.opts.sampling.top_p = 0;
    CHECK(mtp_engine_submit(e, &r, &id[0], &err) == -1 && strstr(err.msg, "top_p"), "top_p 0: %s", err.msg);
    r.opts.sampling.top_p = 1;
    mtp_token big = 24;
    r.prompt = &big;
    r.len = 1;
    CHECK(mtp_engine_submit(e, &r, &id[0], &err) == -1 && strstr(err.msg, "out of range"), "bad id: %s", err.msg);
    int busy = 0, accepted = 0;
    for (int i = 0; i < 4; i++) {
        mtp_request ri = {.prompt = rq[i].prompt, .len = 5, .opts = rq[i].o, .cb = on_event, .ctx = &rq[i]};
        int rc = mtp_engine_submit(e, &ri, &id[i], &err);
        busy += rc == MTP_BUSY;
        accepted += rc == 0;
        if (rc) rq[i].ends = 1; /* never called back */
    }
    CHECK(busy >= 1 && accepted >= 2, "one slot and a queue of 1: %d accepted, %d busy", accepted, busy);
    for (int i = 0; i < 4; i++)
        if (!rq[i].ends || rq[i].end != MTP_END_DONE) mtp_engine_cancel(e, id[i]);
    wait_ends(rq, 4);
    int cancelled = 0;
    for (int i = 0; i < 4; i++) {
        cancelled += rq[i].end == MTP_END_CANCELLED;
        mtp_gen_result_free(&rq[i].res);
    }
    CHECK(cancelled >= 1, "cancels end queued or running requests (%d)", cancelled);
    mtp_engine_stats st;
    mtp_engine_get_stats(e, &st);
    CHECK(st.active == 0 && st.queued == 0 && st.refused_busy == busy, "after cancels nothing is held");

    request late[2];
    make_requests(late, 2, 5);
    for (int i = 0; i < 2; i++) late[i].o.max_tokens = 30;
    for (int i = 0; i < 2; i++) {
        mtp_request ri = {.prompt = late[i].prompt, .len = late[i].len, .opts = late[i].o, .cb = on_event, .ctx = &late[i]};
        MTP_ASSERT(mtp_engine_submit(e, &ri, &id[i], &err) == 0);
    }
    int n = mtp_engine_drain(e, 0);
    CHECK(late[0].ends == 1 && late[1].ends == 1, "drain ends every request (%d cancelled)", n);
    mtp_request ri = {.prompt = late[0].prompt, .len = late[0].len, .opts = late[0].o, .cb = on_event, .ctx = &late[0]};
    CHECK(mtp_engine_submit(e, &ri, &id[0], &err) == MTP_BUSY, "a drained engine refuses: %s", err.msg);
    for (int i = 0; i < 2; i++) mtp_gen_result_free(&late[i].res);
    mtp_engine_free(e);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    mtp_model m;
    make_small_model(&m, 9);
    test_exact(&m, MTP_SERVE_NONE, 3);
    test_exact(&m, MTP_SERVE_BLOCK, 4);
    test_exact(&m, MTP_SERVE_TREE, 2);
    test_exact(&m, MTP_SERVE_AUTO, 3);
    test_exact(&m, MTP_SERVE_AUTO, 1);
    test_refusals(&m);
    mtp_model_free(&m);
    return check_finish();
}
