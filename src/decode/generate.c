/* generate.c: see generate.h. */
#include "decode/generate.h"

#include <stdlib.h>
#include <string.h>

#include "decode/decode.h"
#include "core/rng.h"
#include "core/util.h"

typedef struct {
    int parent; /* node index; -1 for the root */
    int depth;  /* 0 for the root */
    mtp_token token;
} node;

/* One sequence's decoding state between passes. */
typedef struct {
    int done;
    mtp_token next;  /* head 1's choice after the committed prefix: certain, not yet cached */
    int ncand[MTP_MAX_FUTURE];
    mtp_token cand[MTP_MAX_FUTURE][MTP_MAX_TREE_NODES]; /* drafts at depth d+1 */
    float *q;       /* (depths, V) the heads' distributions the drafts came from (sampling) */
    node nodes[MTP_MAX_TREE_NODES];
    int n_nodes, row0;
    mtp_rng rng;
} seq_state;

typedef struct {
    const mtp_model *m;
    const mtp_gen_opts *o;
    int heads, depths, V;          /* heads run per pass; drafted depths = heads - 1 */
    int width[MTP_MAX_FUTURE];     /* candidates per drafted depth */
    mtp_decoder dec;
    seq_state *st;
    mtp_gen_result *res;
    float *logits, *dlogits, *p;   /* head 1 (rows, V); drafting heads (n, depths, V); (V) */
    mtp_prob_id *scratch;          /* (V) */
    mtp_row *rows, *drows;         /* a pass's rows; the draft pass's rows (n) */
    int *zrow;                     /* (n) the pass row each draft row continues */
} gen;

void mtp_default_tree(int *width, int depths) {
    for (int d = 0; d < depths; d++) width[d] = d == 0 ? 2 : 1;
}

static int greedy(const gen *g) { return g->o->sampling.temp <= 0; }

static const float *logits_of(const gen *g, int row) { return g->logits + (size_t)row * g->V; }

/* Appends tokens to a sequence's output: up to max_tokens, through the first EOS, and as
 * many as the callback keeps (it may end the sequence inside an accepted path). */
static void emit(gen *g, int s, const mtp_token *tok, int n, mtp_gen_cb cb, void *ctx) {
    mtp_gen_result *r = &g->res[s];
    int room = g->o->max_tokens - r->n;
    if (n >= room) {
        n = room;
        g->st[s].done = 1;
    }
    for (int i = 0; i < n; i++)
        if (g->o->eos >= 0 && tok[i] == (mtp_token)g->o->eos) {
            n = i + 1;
            g->st[s].done = 1;
            r->hit_eos = 1;
        }
    int keep = cb && n > 0 ? cb(s, tok, n, ctx) : 0;
    if (keep > 0) {
        n = keep < n ? keep : n;
        g->st[s].done = 1;
        r->hit_eos = r->hit_eos && tok[n - 1] == (mtp_token)g->o->eos;
        r->stopped = 1;
    }
    memcpy(r->tokens + r->n, tok, n * sizeof(mtp_token));
    r->n += n;
}

/* Head 1's choice from its logits: argmax, or a draw. */
static mtp_token choose(gen *g, int s, const float *lg) {
    if (greedy(g)) return (mtp_token)mtp_argmax(lg, g->V);
    mtp_probs(g->p, lg, g->V, &g->o->sampling, g->scratch);
    return (mtp_token)mtp_draw(g->p, g->V, mtp_rng_uniform(&g->st[s].rng));
}

/* The candidates for the next pass from draft row i's logits of heads 2..: the top
 * tokens (greedy), or independent draws from each head's distribution q. */
static void draft(gen *g, int s, int i) {
    seq_state *st = &g->st[s];
    for (int d = 0; d < g->depths; d++) {
        const float *lg = g->dlogits + ((size_t)i * g->depths + d) * g->V;
        st->ncand[d] = g->width[d];
        if (greedy(g)) { /* the top width[d] tokens, best first */
            for (int c = 0; c < g->width[d]; c++) {
                int best = -1;
                for (int j = 0; j < g->V; j++) {
                    int taken = 0;
                    for (int e = 0; e < c && !taken; e++) taken = st->cand[d][e] == (mtp_token)j;
                    if (!taken && (best < 0 || lg[j] > lg[best])) best = j;
                }
                st->cand[d][c] = (mtp_token)best;
            }
        } else { /* independent draws from the head's own distribution */
            float *q = st->q + (size_t)d * g->V;
            mtp_probs(q, lg, g->V, &g->o->sampling, g->scratch);
            for (int c = 0; c < g->width[d]; c++)
                st->cand[d][c] = (mtp_token)mtp_draw(q, g->V, mtp_rng_uniform(&st->rng));
        }
    }
}

/* The tree for the next pass: root = next, then depth by depth every node gets the
 * depth's candidates as children; depths that do not fit the cache are left out. */
static void build_tree(gen *g, int s) {
    seq_state *st = &g->st[s];
    int room = g->dec.cap[s] - g->dec.len[s];
    if (room > MTP_MAX_TREE_NODES) room = MTP_MAX_TREE_NODES;
    st->nodes[0] = (node){-1, 0, st->next};
    st->n_nodes = 1;
    int level_start = 0, level_end = 1;
    for (int d = 0; d < g->depths; d++) {
        int add = (level_end - level_start) * st->ncand[d];
        if (st->n_nodes + add > room) break;
        for (int p = level_start; p < level_end; p++)
            for (int c = 0; c < st->ncand[d]; c++)
                st->nodes[st->n_nodes++] = (node){p, d + 1, st->cand[d][c]};
        level_start = level_end;
        level_end = st->n_nodes;
    }
}

/* Walks the verified tree from the root: returns the accepted path (node indices, root
 * first) and sets next to head 1's own token after it. */
static int verify(gen *g, int s, int *path) {
    seq_state *st = &g->st[s];
    int cur = 0, a = 0;
    path[0] = 0;
    for (;;) {
        const float *lg = logits_of(g, st->row0 + cur);
        int child = -1;
        if (greedy(g)) {
            int tok = mtp_argmax(lg, g->V);
            for (int c = cur + 1; c < st->n_nodes && child < 0; c++)
                if (st->nodes[c].parent == cur && st->nodes[c].token == (mtp_token)tok) child = c;
            if (child < 0) {
                st->next = (mtp_token)tok;
                return a;
            }
        } else {
            /* speculative sampling over the children, each drawn from q: accept with
             * probability min(1, p/q), else continue with the residual of p */
            mtp_probs(g->p, lg, g->V, &g->o->sampling, g->scratch);
            for (int c = cur + 1; c < st->n_nodes && child < 0; c++) {
                if (st->nodes[c].parent != cur) continue;
                const float *q = st->q + (size_t)(st->nodes[c].depth - 1) * g->V;
                int t = st->nodes[c].token;
                if (mtp_rng_uniform(&st->rng) * q[t] < g->p[t])
                    child = c;
                else
                    mtp_residual(g->p, q, g->V);
            }
            if (child < 0) {
                st->next = (mtp_token)mtp_draw(g->p, g->V, mtp_rng_uniform(&st->rng));
                return a;
            }
        }
        path[++a] = cur = child;
    }
}

/* One pass over g->rows; counts it for every sequence that has rows in it. */
static void forward(gen *g, int R) {
    mtp_decoder_forward(&g->dec, g->rows, R, g->heads, g->logits);
    for (int r = 0; r < R; r++)
        if (r == 0 || g->rows[r].seq != g->rows[r - 1].seq) g->res[g->rows[r].seq].forwards++;
}

/* The draft pass: for every sequence s in todo (nt of them) whose committed prefix now
 * ends with pass row zrow, the drafting heads run on that row and propose candidates.
 * The row is the last committed token: len excludes it during the pass. */
static void draft_pass(gen *g, const int *todo, int nt) {
    if (g->depths == 0 || nt == 0) return;
    for (int i = 0; i < nt; i++) {
        int s = todo[i], slot = --g->dec.len[s];
        g->drows[i] = (mtp_row){s, slot, slot, -1, i, 0};
    }
    mtp_decoder_draft(&g->dec, g->drows, g->zrow, nt, 2, g->heads, g->dlogits);
    for (int i = 0; i < nt; i++) {
        g->dec.len[todo[i]]++;
        draft(g, todo[i], i);
    }
}

enum { PROMPT_CHUNK = 256 }; /* rows per pass while filling the caches with prompts */

static int check_prompts(const mtp_model *m, const mtp_token *const *prompts, const int *lens,
                         int n, mtp_err *err) {
    if (n <= 0) return mtp_fail(err, "no prompts");
    for (int s = 0; s < n; s++) {
        if (lens[s] <= 0) return mtp_fail(err, "prompt %d is empty", s + 1);
        if (lens[s] >= m->cfg.max_seq_len)
            return mtp_fail(err, "prompt %d has %d tokens; the model's max_seq_len is %d", s + 1,
                            lens[s], m->cfg.max_seq_len);
        for (int j = 0; j < lens[s]; j++)
            if (prompts[s][j] >= (mtp_token)m->cfg.vocab_size)
                return mtp_fail(err, "prompt %d: token id %u at position %d is out of range "
                                "(vocab_size %d)", s + 1, prompts[s][j], j, m->cfg.vocab_size);
    }
    return 0;
}

int mtp_generate(const mtp_model *m, const mtp_token *const *prompts, const int *lens, int n,
                 const mtp_gen_opts *o, mtp_gen_result *res, mtp_gen_cb cb, void *ctx,
                 mtp_err *err) {
    for (int s = 0; s < n; s++) memset(&res[s], 0, sizeof res[s]); /* empty on any failure */
    if (check_prompts(m, prompts, lens, n, err)) return -1;
    gen g = {.m = m, .o = o, .res = res, .V = m->cfg.vocab_size};
    int nf = m->cfg.n_future;
    g.heads = o->spec == MTP_SPEC_NONE ? 1 : (o->draft > 0 && o->draft < nf ? o->draft : nf);
    g.depths = g.heads - 1;
    if (o->spec == MTP_SPEC_TREE && o->tree_depths > 0) {
        if (o->tree_depths < g.depths) g.depths = o->tree_depths;
        memcpy(g.width, o->tree_width, g.depths * sizeof(int));
    } else if (o->spec == MTP_SPEC_TREE) {
        mtp_default_tree(g.width, g.depths);
    } else {
        for (int d = 0; d < g.depths; d++) g.width[d] = 1;
    }
    g.heads = g.depths + 1; /* heads beyond the drafted depths are never needed */
    int max_nodes = 1, level = 1;
    for (int d = 0; d < g.depths; d++) {
        if (g.width[d] < 1 || g.width[d] > g.V)
            return mtp_fail(err, "tree width %d at depth %d: expected 1..vocab_size (%d)", g.width[d],
                            d + 1, g.V);
        level *= g.width[d];
        max_nodes += level;
        if (max_nodes > MTP_MAX_TREE_NODES)
            return mtp_fail(err, "tree of %d+ nodes; at most %d", max_nodes, MTP_MAX_TREE_NODES);
    }
    int max_rows = PROMPT_CHUNK > n * max_nodes ? PROMPT_CHUNK : n * max_nodes;
    /* each sequence's cache holds what it can need: its prompt, its new tokens and a
     * pass's drafts past them (so a tree is never cut short before max_tokens) */
    int *cap = xmalloc(n * sizeof(int));
    for (int s = 0; s < n; s++) {
        int64_t need = (int64_t)lens[s] + (o->max_tokens > 0 ? o->max_tokens : 0) + max_nodes;
        cap[s] = need < m->cfg.max_seq_len ? (int)need : m->cfg.max_seq_len;
    }
    int rc = mtp_decoder_init(&g.dec, m, n, cap, max_rows, err);
    free(cap);
    if (rc) return -1;
    g.st = xcalloc(n, sizeof(seq_state));
    g.logits = falloc((size_t)max_rows * g.V);
    g.dlogits = falloc((size_t)n * (g.depths > 0 ? g.depths : 1) * g.V);
    g.drows = xmalloc(n * sizeof(mtp_row));
    g.zrow = xmalloc(n * sizeof(int));
    int *todo = xmalloc(n * sizeof(int));
    g.p = falloc(g.V);
    g.scratch = xmalloc(g.V * sizeof(mtp_prob_id));
    g.rows = xmalloc(max_rows * sizeof(mtp_row));
    for (int s = 0; s < n; s++) {
        res[s].tokens = xmalloc((o->max_tokens > 0 ? o->max_tokens : 1) * sizeof(mtp_token));
        g.st[s].q = falloc((size_t)(g.depths > 0 ? g.depths : 1) * g.V);
        mtp_rng mix = {o->seed ^ ((uint64_t)s * 0xD1B54A32D192ED03ull)};
        g.st[s].rng.s = mtp_rng_u64(&mix); /* independent streams per (seed, sequence) */
        g.st[s].done = o->max_tokens <= 0;
    }
    double t0 = mtp_now();

    /* the prompts but their last tokens fill the caches, in passes of at most
     * PROMPT_CHUNK rows; then one pass over every prompt's last token gives head 1's
     * first choice (batch-invariant kernels: chunking changes no bits) */
    int R = 0;
    for (int s = 0; s < n; s++)
        for (int j = 0; j < lens[s] - 1; j++) {
            if (R == PROMPT_CHUNK) {
                mtp_decoder_forward(&g.dec, g.rows, R, g.heads, g.logits);
                for (int r = 0; r < R; r++) g.dec.len[g.rows[r].seq] = g.rows[r].slot + 1;
                R = 0;
            }
            int first_in_pass = R == 0 || g.rows[R - 1].seq != s;
            g.rows[R] = (mtp_row){s, j, j, first_in_pass ? -1 : R - 1, -1, prompts[s][j]};
            R++;
        }
    if (R) mtp_decoder_forward(&g.dec, g.rows, R, g.heads, g.logits);
    for (int r = 0; r < R; r++) g.dec.len[g.rows[r].seq] = g.rows[r].slot + 1;
    for (int s = 0; s < n; s++) {
        int j = lens[s] - 1;
        g.rows[s] = (mtp_row){s, j, j, -1, s, prompts[s][j]};
    }
    forward(&g, n);
    int nt = 0;
    for (int s = 0; s < n; s++) {
        g.dec.len[s] = lens[s];
        if (g.st[s].done) continue;
        g.st[s].next = choose(&g, s, logits_of(&g, s));
        g.zrow[nt] = s;
        todo[nt++] = s;
    }
    draft_pass(&g, todo, nt);
    for (int i = 0; i < nt; i++) {
        emit(&g, todo[i], &g.st[todo[i]].next, 1, cb, ctx);
        res[todo[i]].first_token_s = mtp_now() - t0;
    }

    int path[MTP_MAX_TREE_NODES];
    for (;;) {
        R = 0;
        for (int s = 0; s < n; s++) {
            seq_state *st = &g.st[s];
            if (!st->done && g.dec.len[s] >= g.dec.cap[s]) {
                st->done = 1;
                res[s].hit_max_seq_len = 1;
            }
            if (st->done) continue;
            build_tree(&g, s);
            st->row0 = R;
            int base = g.dec.len[s];
            for (int i = 0; i < st->n_nodes; i++, R++) {
                const node *nd = &st->nodes[i];
                g.rows[R] = (mtp_row){s, base + nd->depth, base + i,
                                      nd->parent < 0 ? -1 : st->row0 + nd->parent, R, nd->token};
            }
        }
        if (R == 0) break;
        forward(&g, R);
        nt = 0;
        for (int s = 0; s < n; s++) {
            seq_state *st = &g.st[s];
            if (st->done) continue;
            int a = verify(&g, s, path), base = g.dec.len[s], maxd = 0;
            for (int i = 0; i < st->n_nodes; i++) maxd = st->nodes[i].depth > maxd ? st->nodes[i].depth : maxd;
            for (int d = 1; d <= maxd; d++) {
                res[s].drafted[d]++;
                res[s].accepted[d] += a >= d;
            }
            mtp_token out[MTP_MAX_FUTURE + 1];
            for (int i = 1; i <= a; i++) {
                out[i - 1] = st->nodes[path[i]].token;
                if (path[i] != i) mtp_decoder_move(&g.dec, s, base + i, base + path[i]);
            }
            g.dec.len[s] = base + a + 1;
            g.zrow[nt] = st->row0 + path[a];
            todo[nt++] = s;
            out[a] = st->next;
            emit(&g, s, out, a + 1, cb, ctx);
        }
        draft_pass(&g, todo, nt);
    }
    for (int s = 0; s < n; s++) res[s].total_s = mtp_now() - t0;
    for (int s = 0; s < n; s++) free(g.st[s].q);
    free(g.st);
    free(g.logits);
    free(g.dlogits);
    free(g.drows);
    free(g.zrow);
    free(todo);
    free(g.p);
    free(g.scratch);
    free(g.rows);
    mtp_decoder_free(&g.dec);
    return 0;
}
