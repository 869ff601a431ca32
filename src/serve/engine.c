/* engine.c: the serving engine (mtp.h, docs/serve.md). One thread of its own owns a
 * decoding session (decode/session.h) of `parallel` slots, the KV pool; submit and cancel
 * come from other threads through a queue under one mutex. Between passes the thread
 * admits queued requests into free slots, ends cancelled ones, then runs one pass (the
 * session picks --spec auto's depths); requests that ended leave their slot at once.
 * Callbacks run on this thread with the lock released. Not here: HTTP, text, stop strings
 * (the caller's callback does those). */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/util.h"
#include "decode/session.h"
#include "kernels/backend.h"
#include "model/model.h"

typedef struct req {
    uint64_t id;
    mtp_token *prompt;
    int len;
    mtp_gen_opts o;
    mtp_engine_cb cb;
    void *ctx;
    int cancel;           /* under the lock */
    int in_session;       /* added to the session (the thread's) */
    mtp_gen_result res;
    struct req *next;
} req;

struct mtp_engine {
    const mtp_model *m;
    mtp_engine_opts o;
    mtp_session *s;
    int K, slot_cap;
    int threads;          /* compute threads: the creator's setting, applied on the engine's thread */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake, idle;
    req *head, *tail;     /* the queue, under the lock */
    int queued, closed, stopping, joined;
    req **slot;           /* (parallel) who holds each slot: written by the thread under the lock */
    uint64_t next_id;
    mtp_engine_stats st;  /* under the lock */
};

void mtp_engine_opts_default(mtp_engine_opts *o) {
    *o = (mtp_engine_opts){.parallel = 4, .ctx = 0, .queue = 64, .chunk = 256, .spec = MTP_SERVE_AUTO};
}

static void end_req(mtp_engine *e, req *r, mtp_end end, const char *msg) {
    r->cb(r->ctx, NULL, 0, &r->res, end, msg);
    pthread_mutex_lock(&e->mu);
    mtp_engine_stats *st = &e->st;
    if (end == MTP_END_DONE) st->done++;
    else if (end == MTP_END_CANCELLED) st->cancelled++;
    else st->failed++;
    st->prompt_tokens += r->len;
    st->tokens += r->res.n;
    st->forwards += r->res.forwards;
    for (int d = 1; d < MTP_MAX_FUTURE; d++) {
        st->drafted[d] += r->res.drafted[d];
        st->accepted[d] += r->res.accepted[d];
    }
    pthread_mutex_unlock(&e->mu);
    mtp_gen_result_free(&r->res);
    free(r->prompt);
    free(r);
}

/* The options a request decodes with under the engine's spec. */
static void engine_spec(const mtp_engine *e, req *r) {
    r->o.draft = 0;
    r->o.tree_depths = 0;
    mtp_serve_spec sp = e->K == 0 ? MTP_SERVE_NONE : e->o.spec;
    r->o.spec = sp == MTP_SERVE_NONE ? MTP_SPEC_NONE
                : sp == MTP_SERVE_TREE ? MTP_SPEC_TREE
                : sp == MTP_SERVE_AUTO ? MTP_SPEC_AUTO : MTP_SPEC_BLOCK;
}

static int engine_cb(int slot, const mtp_token *tok, int n, void *ctx) {
    req *r = ((mtp_engine *)ctx)->slot[slot];
    return r->cb(r->ctx, tok, n, NULL, MTP_END_DONE, NULL);
}

static void *engine_main(void *arg) {
    mtp_engine *e = arg;
    int P = e->o.parallel;
    mtp_set_threads(e->threads); /* OpenMP's thread count is per thread: the creator's */
    req **ended = xmalloc((P + 1) * sizeof(req *));
    for (;;) {
        pthread_mutex_lock(&e->mu);
        int active = 0;
        for (int i = 0; i < P; i++) active += e->slot[i] != NULL;
        while (!e->stopping && !e->head && active == 0) {
            pthread_cond_broadcast(&e->idle);
            pthread_cond_wait(&e->wake, &e->mu);
        }
        if (e->stopping && !e->head && active == 0) {
            pthread_mutex_unlock(&e->mu);
            break;
        }
        /* cancelled requests leave; queued ones take the free slots */
        int ne = 0;
        req *cancelled_queue = NULL;
        for (int i = 0; i < P; i++)
            if (e->slot[i] && e->slot[i]->cancel) {
                ended[ne++] = e->slot[i];
                mtp_session_remove(e->s, i);
                e->slot[i] = NULL;
            }
        for (int i = 0; i < P && e->head; i++) {
            if (e->slot[i]) continue;
            req *r = e->head;
            e->head = r->next;
            if (!e->head) e->tail = NULL;
            e->queued--;
            if (r->cancel) {
                r->next = cancelled_queue;
                cancelled_queue = r;
                i--;
                continue;
            }
            e->slot[i] = r; /* reserved; added below, outside the lock */
            r->next = NULL;
        }
        for (req **p = &e->head, *prev = NULL; *p;) { /* cancelled while waiting: no slot needed */
            req *r = *p;
            if (!r->cancel) {
                prev = r;
                p = &r->next;
                continue;
            }
            *p = r->next;
            if (e->tail == r) e->tail = prev;
            e->queued--;
            r->next = cancelled_queue;
            cancelled_queue = r;
        }
        e->st.queued = e->queued;
        e->st.active = 0;
        for (int i = 0; i < P; i++) e->st.active += e->slot[i] != NULL; /* what submit may count on */
        pthread_mutex_unlock(&e->mu);
        for (int k = 0; k < ne; k++) end_req(e, ended[k], MTP_END_CANCELLED, NULL);
        while (cancelled_queue) {
            req *r = cancelled_queue;
            cancelled_queue = r->next;
            end_req(e, r, MTP_END_CANCELLED, NULL);
        }
        for (int i = 0; i < P; i++) { /* the newly admitted: into the session */
            req *r = e->slot[i];
            if (!r || r->in_session) continue;
            mtp_err err;
            int slot = mtp_session_add(e->s, r->prompt, r->len, &r->o, 0, &r->res, &err);
            r->in_session = 1;
            if (slot != i) { /* submit's checks make this unreachable; say so if not */
                if (slot >= 0) mtp_session_remove(e->s, slot);
                pthread_mutex_lock(&e->mu);
                e->slot[i] = NULL;
                pthread_mutex_unlock(&e->mu);
                end_req(e, r, MTP_END_ERROR, slot >= 0 ? "the engine's slots disagree" : err.msg);
            }
        }
        double t0 = mtp_now();
        int n_in = mtp_session_step(e->s, engine_cb, e, NULL);
        double dt = mtp_now() - t0;
        active = 0;
        ne = 0;
        pthread_mutex_lock(&e->mu);
        for (int i = 0; i < P; i++) {
            if (e->slot[i] && mtp_session_done(e->s, i)) {
                ended[ne++] = e->slot[i];
                mtp_session_remove(e->s, i);
                e->slot[i] = NULL;
            }
            active += e->slot[i] != NULL;
        }
        if (n_in > 0) {
            e->st.steps++;
            e->st.occupancy += n_in;
            e->st.busy_s += dt;
        }
        e->st.active = active;
        pthread_mutex_unlock(&e->mu);
        for (int k = 0; k < ne; k++) end_req(e, ended[k], MTP_END_DONE, NULL);
    }
    free(ended);
    return NULL;
}

int mtp_engine_new(mtp_engine **out, const mtp_model *m, const mtp_engine_opts *o, mtp_err *err) {
    *out = NULL;
    const mtp_config *c = &m->cfg;
    if (o->parallel < 1 || o->parallel > 1024) return mtp_fail(err, "parallel %d: expected 1..1024", o->parallel);
    if (o->ctx < 0 || o->ctx > c->max_seq_len)
        return mtp_fail(err, "ctx %d: expected 1..max_seq_len (%d)", o->ctx, c->max_seq_len);
    if (o->queue < 0) return mtp_fail(err, "queue %d: expected >= 0", o->queue);
    if (o->chunk < 1) return mtp_fail(err, "chunk %d: expected >= 1", o->chunk);
    mtp_engine *e = xcalloc(1, sizeof *e);
    e->m = m;
    e->threads = mtp_backend_threads();
    e->o = *o;
    if (e->o.ctx == 0) e->o.ctx = c->max_seq_len;
    e->K = o->spec == MTP_SERVE_NONE ? 0 : c->n_future - 1;
    if (e->K == 0) e->o.spec = MTP_SERVE_NONE;
    mtp_gen_opts g;
    mtp_gen_opts_default(&g);
    g.spec = e->o.spec == MTP_SERVE_TREE ? MTP_SPEC_TREE : e->K ? MTP_SPEC_BLOCK : MTP_SPEC_NONE;
    mtp_spec_shape sh;
    MTP_ASSERT(mtp_spec_shape_of(m, &g, &sh, err) == 0); /* the default shapes always fit */
    /* a slot holds a request's context and one tree past it, as mtp_generate's caches do */
    e->slot_cap = e->o.ctx + sh.max_nodes < c->max_seq_len ? e->o.ctx + sh.max_nodes : c->max_seq_len;
    int *cap = xmalloc(e->o.parallel * sizeof(int));
    for (int i = 0; i < e->o.parallel; i++) cap[i] = e->slot_cap;
    int rc = mtp_session_new(&e->s, m, e->o.parallel, cap, sh.max_nodes, e->o.chunk, err);
    free(cap);
    if (rc) {
        free(e);
        return -1;
    }
    if (e->o.spec == MTP_SERVE_AUTO) mtp_session_calibrate(e->s, 3);
    e->slot = xcalloc(e->o.parallel, sizeof(req *));
    e->st.slots = e->o.parallel;
    e->next_id = 1;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->wake, NULL);
    pthread_cond_init(&e->idle, NULL);
    MTP_ASSERT(pthread_create(&e->thread, NULL, engine_main, e) == 0);
    *out = e;
    return 0;
}

static int check_request(const mtp_engine *e, const mtp_request *r, mtp_err *err) {
    const mtp_config *c = &e->m->cfg;
    const mtp_sampling *s = &r->opts.sampling;
    if (r->len <= 0) return mtp_fail(err, "prompt: empty");
    for (int j = 0; j < r->len; j++)
        if (r->prompt[j] >= (mtp_token)c->vocab_size)
            return mtp_fail(err, "prompt: token id %u at position %d is out of range (vocab_size %d)", r->prompt[j],
                            j, c->vocab_size);
    if (r->opts.max_tokens < 0) return mtp_fail(err, "max_tokens: %d is negative", r->opts.max_tokens);
    if ((int64_t)r->len + r->opts.max_tokens > e->o.ctx || r->len >= c->max_seq_len)
        return mtp_fail(err, "prompt (%d tokens) + max_tokens (%d) exceed the context of %d tokens", r->len,
                        r->opts.max_tokens, e->o.ctx < c->max_seq_len ? e->o.ctx : c->max_seq_len - 1);
    if (!(s->temp >= 0 && s->temp <= 100)) return mtp_fail(err, "temperature: expected 0..100");
    if (!(s->top_p > 0 && s->top_p <= 1)) return mtp_fail(err, "top_p: expected a number in (0, 1]");
    if (s->top_k < 0) return mtp_fail(err, "top_k: expected >= 0");
    return 0;
}

int mtp_engine_submit(mtp_engine *e, const mtp_request *rq, uint64_t *id, mtp_err *err) {
    if (check_request(e, rq, err)) return -1;
    req *r = xcalloc(1, sizeof *r);
    r->prompt = xmalloc(rq->len * sizeof(mtp_token));
    memcpy(r->prompt, rq->prompt, rq->len * sizeof(mtp_token));
    r->len = rq->len;
    r->o = rq->opts;
    r->cb = rq->cb;
    r->ctx = rq->ctx;
    engine_spec(e, r);
    pthread_mutex_lock(&e->mu);
    int free_slots = e->o.parallel - e->st.active;
    if (e->closed || e->queued >= e->o.queue + (free_slots > 0 ? free_slots : 0)) {
        e->st.refused_busy++;
        int closed = e->closed;
        pthread_mutex_unlock(&e->mu);
        free(r->prompt);
        free(r);
        mtp_fail(err, closed ? "the server is shutting down" : "the queue is full (%d waiting)", e->o.queue);
        return MTP_BUSY;
    }
    r->id = *id = e->next_id++;
    if (e->tail) e->tail->next = r;
    else e->head = r;
    e->tail = r;
    e->queued++;
    e->st.requests++;
    e->st.queued = e->queued;
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->mu);
    return 0;
}

void mtp_engine_cancel(mtp_engine *e, uint64_t id) {
    pthread_mutex_lock(&e->mu);
    for (req *r = e->head; r; r = r->next)
        if (r->id == id) r->cancel = 1;
    for (int i = 0; i < e->o.parallel; i++)
        if (e->slot[i] && e->slot[i]->id == id) e->slot[i]->cancel = 1;
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->mu);
}

void mtp_engine_get_stats(mtp_engine *e, mtp_engine_stats *st) {
    pthread_mutex_lock(&e->mu);
    *st = e->st;
    pthread_mutex_unlock(&e->mu);
}

int mtp_engine_drain(mtp_engine *e, double seconds) {
    pthread_mutex_lock(&e->mu);
    if (e->joined) {
        pthread_mutex_unlock(&e->mu);
        return 0;
    }
    e->closed = 1;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    double s = until.tv_sec + until.tv_nsec * 1e-9 + (seconds > 0 ? seconds : 0);
    until.tv_sec = (time_t)s;
    until.tv_nsec = (long)((s - floor(s)) * 1e9);
    while ((e->head || e->st.active > 0) && pthread_cond_timedwait(&e->idle, &e->mu, &until) == 0) continue;
    int n = 0;
    for (req *r = e->head; r; r = r->next) r->cancel = 1, n++;
    for (int i = 0; i < e->o.parallel; i++)
        if (e->slot[i]) e->slot[i]->cancel = 1, n++;
    e->stopping = 1;
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
    e->joined = 1;
    return n;
}

void mtp_engine_free(mtp_engine *e) {
    if (!e) return;
    mtp_engine_drain(e, 0);
    mtp_session_free(e->s);
    free(e->slot);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->wake);
    pthread_cond_destroy(&e->idle);
    free(e);
}
