/* session.c: see session.h. The verifier (blockwise and tree, greedy and sampled) lives
 * here; docs/decoding.md explains it. */
#include "decode/session.h"

#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/util.h"
#include "decode/decode.h"
#include "decode/policy.h"
#include "decode/sampler.h"

typedef struct {
    int parent; /* node index; -1 for the root */
    int depth;  /* 0 for the root */
    mtp_token token;
} node;

/* One sequence's decoding state between passes. */
typedef struct {
    int active, started, done;
    uint64_t order;         /* admission order: prompts fill first come, first served */
    mtp_gen_opts o;
    mtp_spec_shape sh;
    int depth;              /* depths the next draft pass drafts (<= sh.depths) */
    int kv_heads;           /* heads whose caches its rows fill */
    mtp_token *prompt;      /* (len) */
    int len, filled;        /* prompt tokens; those in the cache */
    int limit;              /* positions it may use: prompt, budget, one tree */
    mtp_gen_result *res;
    double t0;
    mtp_token next;  /* head 1's choice after the committed prefix: certain, not yet cached */
    int ndraft;      /* depths drafted for the next tree */
    int ncand[MTP_MAX_FUTURE];
    mtp_token cand[MTP_MAX_FUTURE][MTP_MAX_TREE_NODES]; /* drafts at depth d+1 */
    float *q;        /* (sh.depths, V) the heads' distributions the drafts came from (sampling) */
    node nodes[MTP_MAX_TREE_NODES];
    int n_nodes, row0, lg0; /* this pass: its tree's first row and first logits index */
    int take, last_row;     /* this pass: prompt rows taken; the last prompt token's row or -1 */
    int automatic;          /* greedy under MTP_SPEC_AUTO in a calibrated session */
    int zero_run;           /* passes in a row the policy gave it depth 0 */
    mtp_rng rng;
} seq_state;

struct mtp_session {
    const mtp_model *m;
    int n_slots, chunk, max_nodes, V;
    uint64_t admitted;
    mtp_decoder dec;
    seq_state *st;
    float *logits, *dlogits, *p;   /* head 1 (rows, V); the draft pass's, head by head; (V) */
    int dlogits_at[MTP_MAX_FUTURE]; /* [h - 2]: head h's first row in dlogits */
    mtp_prob_id *scratch;          /* (V) */
    mtp_row *rows, *drows;         /* a pass's rows; the draft pass's rows (slots) */
    int *zrow, *todo;              /* (slots) the pass row each draft row continues; who drafts */
    mtp_policy *pol;               /* MTP_SPEC_AUTO's costs and acceptance (mtp_session_calibrate) */
};

/* Passes at depth 0 in a row after which an automatic sequence stops filling its heads'
 * caches (so its passes get cheaper) and decodes plainly to its end. */
enum { DROP_KV_AFTER = 4 };

void mtp_default_tree(int *width, int depths) {
    for (int d = 0; d < depths; d++) width[d] = d == 0 ? 2 : 1;
}

int mtp_spec_shape_of(const mtp_model *m, const mtp_gen_opts *o, mtp_spec_shape *sh, mtp_err *err) {
    int nf = m->cfg.n_future, V = m->cfg.vocab_size;
    memset(sh, 0, sizeof *sh);
    int plain = o->spec == MTP_SPEC_NONE || (o->spec == MTP_SPEC_AUTO && o->sampling.temp > 0);
    int heads = plain ? 1 : (o->draft > 0 && o->draft < nf ? o->draft : nf);
    sh->depths = heads - 1;
    if (o->spec == MTP_SPEC_TREE && o->tree_depths > 0) {
        if (o->tree_depths < sh->depths) sh->depths = o->tree_depths;
        memcpy(sh->width, o->tree_width, sh->depths * sizeof(int));
    } else if (o->spec == MTP_SPEC_TREE) {
        mtp_default_tree(sh->width, sh->depths);
    } else {
        for (int d = 0; d < sh->depths; d++) sh->width[d] = 1;
    }
    sh->heads = sh->depths + 1; /* heads beyond the drafted depths are never needed */
    int level = 1;
    sh->max_nodes = 1;
    for (int d = 0; d < sh->depths; d++) {
        if (sh->width[d] < 1 || sh->width[d] > V)
            return mtp_fail(err, "tree width %d at depth %d: expected 1..vocab_size (%d)", sh->width[d], d + 1, V);
        level *= sh->width[d];
        sh->max_nodes += level;
        if (sh->max_nodes > MTP_MAX_TREE_NODES)
            return mtp_fail(err, "tree of %d+ nodes; at most %d", sh->max_nodes, MTP_MAX_TREE_NODES);
    }
    return 0;
}

int mtp_session_new(mtp_session **out, const mtp_model *m, int n_slots, const int *cap, int max_nodes,
                    int chunk, mtp_err *err) {
    MTP_ASSERT(n_slots > 0 && max_nodes >= 1 && max_nodes <= MTP_MAX_TREE_NODES && chunk > 0);
    *out = NULL;
    mtp_session *s = xcalloc(1, sizeof *s);
    s->m = m;
    s->n_slots = n_slots;
    s->chunk = chunk;
    s->max_nodes = max_nodes;
    s->V = m->cfg.vocab_size;
    int max_rows = chunk + n_slots * max_nodes, hd = m->cfg.n_future > 1 ? m->cfg.n_future - 1 : 1;
    if (mtp_decoder_init(&s->dec, m, n_slots, cap, max_rows, err)) {
        free(s);
        return -1;
    }
    s->st = xcalloc(n_slots, sizeof(seq_state));
    s->logits = falloc((size_t)max_rows * s->V);
    s->dlogits = falloc((size_t)hd * n_slots * s->V);
    s->p = falloc(s->V);
    s->scratch = xmalloc(s->V * sizeof(mtp_prob_id));
    s->rows = xmalloc(max_rows * sizeof(mtp_row));
    s->drows = xmalloc(n_slots * sizeof(mtp_row));
    s->zrow = xmalloc(n_slots * sizeof(int));
    s->todo = xmalloc(n_slots * sizeof(int));
    *out = s;
    return 0;
}

void mtp_session_remove(mtp_session *s, int slot) {
    seq_state *st = &s->st[slot];
    free(st->q);
    free(st->prompt);
    memset(st, 0, sizeof *st);
    s->dec.len[slot] = 0;
}

void mtp_session_free(mtp_session *s) {
    if (!s) return;
    for (int i = 0; i < s->n_slots; i++)
        if (s->st[i].active) mtp_session_remove(s, i);
    free(s->st);
    free(s->logits);
    free(s->dlogits);
    free(s->p);
    free(s->scratch);
    free(s->rows);
    free(s->drows);
    free(s->zrow);
    free(s->todo);
    if (s->pol) mtp_policy_free(s->pol);
    free(s->pol);
    mtp_decoder_free(&s->dec);
    free(s);
}

int mtp_session_add(mtp_session *s, const mtp_token *prompt, int len, const mtp_gen_opts *o,
                    uint64_t stream, mtp_gen_result *res, mtp_err *err) {
    const mtp_config *c = &s->m->cfg;
    memset(res, 0, sizeof *res);
    mtp_spec_shape sh;
    if (mtp_spec_shape_of(s->m, o, &sh, err)) return -1;
    if (len <= 0) return mtp_fail(err, "the prompt is empty");
    if (len >= c->max_seq_len)
        return mtp_fail(err, "the prompt has %d tokens; the model's max_seq_len is %d", len, c->max_seq_len);
    for (int j = 0; j < len; j++)
        if (prompt[j] >= (mtp_token)c->vocab_size)
            return mtp_fail(err, "token id %u at position %d of the prompt is out of range (vocab_size %d)",
                            prompt[j], j, c->vocab_size);
    if (sh.max_nodes > s->max_nodes)
        return mtp_fail(err, "a tree of %d nodes; this session verifies at most %d", sh.max_nodes, s->max_nodes);
    int slot = 0;
    while (slot < s->n_slots && s->st[slot].active) slot++;
    if (slot == s->n_slots) return mtp_fail(err, "all %d slots are in use", s->n_slots);
    int64_t need = (int64_t)len + (o->max_tokens > 0 ? o->max_tokens : 0) + sh.max_nodes;
    int limit = need < c->max_seq_len ? (int)need : c->max_seq_len;
    if (limit > s->dec.cap[slot])
        return mtp_fail(err, "%d prompt tokens + max_tokens %d need %d positions; a slot has %d", len,
                        o->max_tokens, limit, s->dec.cap[slot]);
    seq_state *st = &s->st[slot];
    memset(st, 0, sizeof *st);
    st->active = 1;
    st->order = s->admitted++;
    st->o = *o;
    st->sh = sh;
    st->depth = sh.depths;
    st->kv_heads = sh.heads;
    st->prompt = xmalloc(len * sizeof(mtp_token));
    memcpy(st->prompt, prompt, len * sizeof(mtp_token));
    st->len = len;
    st->limit = limit;
    st->res = res;
    st->automatic = s->pol && o->spec == MTP_SPEC_AUTO && sh.depths > 0;
    st->t0 = mtp_now();
    st->q = falloc((size_t)(sh.depths > 0 ? sh.depths : 1) * s->V);
    mtp_rng mix = {o->seed ^ (stream * 0xD1B54A32D192ED03ull)};
    st->rng.s = mtp_rng_u64(&mix); /* independent streams per (seed, stream) */
    res->tokens = xmalloc((o->max_tokens > 0 ? o->max_tokens : 1) * sizeof(mtp_token));
    s->dec.len[slot] = 0;
    return slot;
}

int mtp_session_done(const mtp_session *s, int slot) { return s->st[slot].done; }
int mtp_session_started(const mtp_session *s, int slot) { return s->st[slot].started; }

static int greedy(const seq_state *st) { return st->o.sampling.temp <= 0; }

void mtp_session_set_draft(mtp_session *s, int slot, int depth, int keep_kv) {
    seq_state *st = &s->st[slot];
    if (!greedy(st)) return; /* a sampled sequence's draws follow its shape */
    if (!keep_kv) st->kv_heads = 1;
    st->depth = st->kv_heads == 1 ? 0 : depth < st->sh.depths ? depth : st->sh.depths;
}


static void finish(seq_state *st) {
    st->done = 1;
    st->res->total_s = mtp_now() - st->t0;
}

/* Appends tokens to a sequence's output: up to max_tokens, through the first EOS, and as
 * many as the callback keeps (it may end the sequence inside an accepted path). */
static void emit(seq_state *st, int slot, const mtp_token *tok, int n, mtp_gen_cb cb, void *ctx) {
    mtp_gen_result *r = st->res;
    int room = st->o.max_tokens - r->n, end = 0;
    if (n >= room) {
        n = room;
        end = 1;
    }
    for (int i = 0; i < n; i++)
        if (st->o.eos >= 0 && tok[i] == (mtp_token)st->o.eos) {
            n = i + 1;
            end = 1;
            r->hit_eos = 1;
        }
    int keep = cb && n > 0 ? cb(slot, tok, n, ctx) : 0;
    if (keep > 0) {
        n = keep < n ? keep : n;
        end = 1;
        r->hit_eos = r->hit_eos && tok[n - 1] == (mtp_token)st->o.eos;
        r->stopped = 1;
    }
    memcpy(r->tokens + r->n, tok, n * sizeof(mtp_token));
    r->n += n;
    if (end) finish(st);
}

/* Head 1's choice from its logits: argmax, or a draw. */
static mtp_token choose(mtp_session *s, seq_state *st, const float *lg) {
    if (greedy(st)) return (mtp_token)mtp_argmax(lg, s->V);
    mtp_probs(s->p, lg, s->V, &st->o.sampling, s->scratch);
    return (mtp_token)mtp_draw(s->p, s->V, mtp_rng_uniform(&st->rng));
}

/* The candidates for the next pass from draft row i's logits of heads 2..: the top
 * tokens (greedy), or independent draws from each head's distribution q. */
static void draft(mtp_session *s, seq_state *st, int i) {
    st->ndraft = st->depth;
    for (int d = 0; d < st->depth; d++) {
        const float *lg = s->dlogits + ((size_t)s->dlogits_at[d] + i) * s->V;
        int w = st->sh.width[d];
        st->ncand[d] = w;
        if (greedy(st)) { /* the top w tokens, best first */
            for (int c = 0; c < w; c++) {
                int best = -1;
                for (int j = 0; j < s->V; j++) {
                    int taken = 0;
                    for (int e = 0; e < c && !taken; e++) taken = st->cand[d][e] == (mtp_token)j;
                    if (!taken && (best < 0 || lg[j] > lg[best])) best = j;
                }
                st->cand[d][c] = (mtp_token)best;
            }
        } else { /* independent draws from the head's own distribution */
            float *q = st->q + (size_t)d * s->V;
            mtp_probs(q, lg, s->V, &st->o.sampling, s->scratch);
            for (int c = 0; c < w; c++) st->cand[d][c] = (mtp_token)mtp_draw(q, s->V, mtp_rng_uniform(&st->rng));
        }
    }
}

/* The tree for the next pass: root = next, then depth by depth every node gets the
 * depth's candidates as children; depths that do not fit the room are left out. */
static void build_tree(mtp_session *s, int slot) {
    seq_state *st = &s->st[slot];
    int room = st->limit - s->dec.len[slot];
    if (room > MTP_MAX_TREE_NODES) room = MTP_MAX_TREE_NODES;
    st->nodes[0] = (node){-1, 0, st->next};
    st->n_nodes = 1;
    int level_start = 0, level_end = 1;
    for (int d = 0; d < st->ndraft; d++) {
        int add = (level_end - level_start) * st->ncand[d];
        if (st->n_nodes + add > room) break;
        for (int p = level_start; p < level_end; p++)
            for (int c = 0; c < st->ncand[d]; c++) st->nodes[st->n_nodes++] = (node){p, d + 1, st->cand[d][c]};
        level_start = level_end;
        level_end = st->n_nodes;
    }
}

/* Walks the verified tree from the root: returns the accepted path (node indices, root
 * first) and sets next to head 1's own token after it. */
static int verify(mtp_session *s, seq_state *st, int *path) {
    int cur = 0, a = 0;
    path[0] = 0;
    for (;;) {
        const float *lg = s->logits + (size_t)(st->lg0 + cur) * s->V;
        int child = -1;
        if (greedy(st)) {
            int tok = mtp_argmax(lg, s->V);
            for (int c = cur + 1; c < st->n_nodes && child < 0; c++)
                if (st->nodes[c].parent == cur && st->nodes[c].token == (mtp_token)tok) child = c;
            if (child < 0) {
                st->next = (mtp_token)tok;
                return a;
            }
        } else {
            /* speculative sampling over the children, each drawn from q: accept with
             * probability min(1, p/q), else continue with the residual of p */
            mtp_probs(s->p, lg, s->V, &st->o.sampling, s->scratch);
            for (int c = cur + 1; c < st->n_nodes && child < 0; c++) {
                if (st->nodes[c].parent != cur) continue;
                const float *q = st->q + (size_t)(st->nodes[c].depth - 1) * s->V;
                int t = st->nodes[c].token;
                if (mtp_rng_uniform(&st->rng) * q[t] < s->p[t])
                    child = c;
                else
                    mtp_residual(s->p, q, s->V);
            }
            if (child < 0) {
                st->next = (mtp_token)mtp_draw(s->p, s->V, mtp_rng_uniform(&st->rng));
                return a;
            }
        }
        path[++a] = cur = child;
    }
}

/* The draft pass: every sequence in todo (nt, zrow beside) whose committed prefix now ends
 * with its pass row zrow runs its drafting heads on that row and proposes candidates. The
 * row is the last committed token: len excludes it during the pass. todo is sorted by
 * depth, deepest first, so head h runs on a prefix of it. */
static void draft_pass(mtp_session *s, int nt, mtp_step_stats *ss) {
    for (int i = 1; i < nt; i++) /* insertion sort, deepest first (stable) */
        for (int j = i; j > 0 && s->st[s->todo[j]].depth > s->st[s->todo[j - 1]].depth; j--) {
            int t = s->todo[j], z = s->zrow[j];
            s->todo[j] = s->todo[j - 1], s->zrow[j] = s->zrow[j - 1];
            s->todo[j - 1] = t, s->zrow[j - 1] = z;
        }
    int nd = 0;
    while (nd < nt && s->st[s->todo[nd]].depth > 0) nd++;
    double t0 = mtp_now();
    for (int i = 0; i < nd; i++) {
        int slot = --s->dec.len[s->todo[i]];
        s->drows[i] = (mtp_row){s->todo[i], slot, slot, -1, i, 0};
    }
    int n[MTP_MAX_FUTURE], last = 1; /* n[h - 2]: rows head h drafts on */
    for (int h = 2, rows = nd, at = 0; rows > 0; h++) {
        while (rows > 0 && s->st[s->todo[rows - 1]].depth < h - 1) rows--;
        if (rows == 0) break;
        n[h - 2] = rows;
        s->dlogits_at[h - 2] = at;
        at += rows;
        last = h;
        if (ss) ss->draft_rows[h] = rows;
    }
    if (last >= 2) mtp_decoder_draft(&s->dec, s->drows, s->zrow, n, 2, last, s->dlogits);
    for (int i = 0; i < nd; i++) s->dec.len[s->todo[i]]++;
    if (ss) ss->draft_s = mtp_now() - t0;
    for (int i = 0; i < nt; i++) draft(s, &s->st[s->todo[i]], i);
}

/* The pass's prompt rows: up to chunk of them, sequences in admission order. */
static int prompt_rows(mtp_session *s, int R, int *kvh) {
    int budget = s->chunk;
    for (;;) {
        int pick = -1;
        for (int i = 0; i < s->n_slots; i++) {
            seq_state *st = &s->st[i];
            if (st->active && !st->started && st->take == 0 && (pick < 0 || st->order < s->st[pick].order))
                pick = i;
        }
        if (pick < 0 || budget == 0) return R;
        seq_state *st = &s->st[pick];
        st->take = st->len - st->filled < budget ? st->len - st->filled : budget;
        budget -= st->take;
        for (int j = st->filled; j < st->filled + st->take; j++, R++)
            s->rows[R] = (mtp_row){pick, j, j, j == st->filled ? -1 : R - 1, -1, st->prompt[j]};
        if (st->kv_heads > *kvh) *kvh = st->kv_heads;
    }
}

/* MTP_SPEC_AUTO before a pass: one depth for every automatic sequence (policy.h), from the
 * pass's other rows: prompt rows, and one row (and token) per other decoding sequence. */
static void auto_depths(mtp_session *s) {
    int B = 0, R0 = 0;
    double F = 0;
    for (int i = 0; i < s->n_slots; i++) {
        const seq_state *st = &s->st[i];
        if (!st->active || st->done) continue;
        if (!st->started) {
            R0 += st->len - st->filled < s->chunk ? st->len - st->filled : s->chunk;
        } else if (st->automatic) {
            B++;
        } else {
            R0++;
            F++;
        }
    }
    if (R0 > s->chunk + s->n_slots) R0 = s->chunk + s->n_slots;
    int k = mtp_policy_depth(s->pol, B, R0, F);
    for (int i = 0; i < s->n_slots; i++) {
        seq_state *st = &s->st[i];
        if (!st->active || st->done || !st->automatic) continue;
        if (st->started) st->zero_run = k == 0 ? st->zero_run + 1 : 0;
        st->automatic = st->zero_run < DROP_KV_AFTER;
        mtp_session_set_draft(s, i, k, st->automatic);
    }
}

/* MTP_SPEC_AUTO after a pass: its measured costs into the policy's tables. */
static void auto_observe(mtp_session *s, const mtp_step_stats *ss) {
    int heads = 0;
    for (int h = 2; h <= s->pol->K + 1; h++) heads += ss->draft_rows[h] > 0;
    mtp_policy_observe(s->pol, ss->rows, ss->pass_s, ss->draft_rows[2], heads, ss->draft_s);
}

int mtp_session_step(mtp_session *s, mtp_gen_cb cb, void *ctx, mtp_step_stats *ss) {
    mtp_step_stats own;
    if (!ss && s->pol) ss = &own; /* auto_observe needs them */
    if (ss) memset(ss, 0, sizeof *ss);
    if (s->pol) auto_depths(s);
    int R = 0, nl = 0, kvh = 1, n_in = 0;
    for (int i = 0; i < s->n_slots; i++) { /* the decoding sequences' trees */
        seq_state *st = &s->st[i];
        st->take = 0;
        st->last_row = -1;
        if (!st->active || !st->started || st->done) continue;
        if (s->dec.len[i] >= st->limit) { /* the room is used up: the cache is full */
            st->res->hit_max_seq_len = 1;
            finish(st);
            continue;
        }
        build_tree(s, i);
        st->row0 = R;
        st->lg0 = nl;
        int base = s->dec.len[i];
        for (int k = 0; k < st->n_nodes; k++, R++) {
            const node *nd = &st->nodes[k];
            s->rows[R] = (mtp_row){i, base + nd->depth, base + k, nd->parent < 0 ? -1 : st->row0 + nd->parent,
                                   nl++, nd->token};
        }
        if (st->kv_heads > kvh) kvh = st->kv_heads;
        n_in++;
    }
    int R_tree = R;
    R = prompt_rows(s, R, &kvh);
    for (int r = R_tree; r < R; r++) { /* the last prompt token wants logits */
        seq_state *st = &s->st[s->rows[r].seq];
        if (s->rows[r].pos == st->len - 1) {
            s->rows[r].logits = nl++;
            st->last_row = r;
        }
        if (r == R_tree || s->rows[r].seq != s->rows[r - 1].seq) n_in++;
    }
    if (R == 0) return 0;
    double t0 = mtp_now();
    mtp_decoder_forward(&s->dec, s->rows, R, kvh, s->logits);
    if (ss) {
        ss->rows = R;
        ss->prompt_rows = R - R_tree;
        ss->pass_s = mtp_now() - t0;
    }
    int nt = 0, path[MTP_MAX_TREE_NODES];
    for (int i = 0; i < s->n_slots; i++) {
        seq_state *st = &s->st[i];
        if (!st->active || st->done) continue;
        if (st->started) { /* verify its tree, keep the accepted path */
            st->res->forwards++;
            int a = verify(s, st, path), base = s->dec.len[i], maxd = 0;
            for (int k = 0; k < st->n_nodes; k++) maxd = st->nodes[k].depth > maxd ? st->nodes[k].depth : maxd;
            for (int d = 1; d <= maxd; d++) {
                st->res->drafted[d]++;
                st->res->accepted[d] += a >= d;
                if (st->automatic) {
                    s->pol->drafted[d]++;
                    s->pol->accepted[d] += a >= d;
                }
            }
            mtp_token out[MTP_MAX_FUTURE + 1];
            for (int k = 1; k <= a; k++) {
                out[k - 1] = st->nodes[path[k]].token;
                if (path[k] != k) mtp_decoder_move(&s->dec, i, base + k, base + path[k]);
            }
            s->dec.len[i] = base + a + 1;
            out[a] = st->next;
            emit(st, i, out, a + 1, cb, ctx);
            s->zrow[nt] = st->row0 + path[a];
        } else if (st->take) { /* its prompt went on filling the cache */
            st->filled += st->take;
            s->dec.len[i] = st->filled;
            if (st->last_row < 0) continue;
            st->started = 1;
            st->res->forwards++;
            if (st->o.max_tokens <= 0) {
                finish(st);
                continue;
            }
            st->next = choose(s, st, s->logits + (size_t)s->rows[st->last_row].logits * s->V);
            emit(st, i, &st->next, 1, cb, ctx);
            st->res->first_token_s = mtp_now() - st->t0;
            s->zrow[nt] = st->last_row;
        } else {
            continue;
        }
        if (!st->done) s->todo[nt++] = i;
    }
    draft_pass(s, nt, ss);
    if (s->pol) auto_observe(s, ss);
    return n_in;
}

void mtp_session_calibrate(mtp_session *s, int reps) {
    int K = s->m->cfg.n_future - 1 < s->max_nodes - 1 ? s->m->cfg.n_future - 1 : s->max_nodes - 1;
    if (K < 1 || s->pol) return;
    int max_rows = s->n_slots * (K + 1), max_b = s->n_slots;
    if (max_rows > s->dec.cap[0]) max_rows = s->dec.cap[0];
    if (max_rows > s->dec.max_rows) max_rows = s->dec.max_rows;
    int rows[32], n = 0, brows[32], nb = 0;
    for (int r = 1; r <= max_rows && n < 32; r = r < 4 ? r + 1 : r + r / 2) rows[n++] = r;
    if (rows[n - 1] != max_rows && n < 32) rows[n++] = max_rows;
    for (int b = 1; b <= max_b && nb < 32; b = b < 4 ? b + 1 : b + b / 2) brows[nb++] = b;
    if (brows[nb - 1] != max_b && nb < 32) brows[nb++] = max_b;
    while (nb > 0 && brows[nb - 1] > max_rows) nb--;
    double pass[32], draft1[32], draftK[32];
    mtp_session_time(s, rows, n, pass, brows, nb, 1, draft1, reps);
    mtp_session_time(s, rows, 0, pass, brows, nb, K, draftK, reps);
    s->pol = xmalloc(sizeof *s->pol);
    mtp_policy_init(s->pol, K, max_rows, max_b, rows, pass, n, brows, draft1, draftK, nb);
}

void mtp_session_time(mtp_session *s, const int *rows, int n, double *pass_s, const int *brows, int nb,
                      int heads, double *draft_s, int reps) {
    MTP_ASSERT(!s->st[0].active);
    int maxr = 1, kvh = s->m->cfg.n_future;
    for (int i = 0; i < n; i++) maxr = rows[i] > maxr ? rows[i] : maxr;
    for (int i = 0; i < nb; i++) maxr = brows[i] > maxr ? brows[i] : maxr;
    MTP_ASSERT(maxr <= s->dec.cap[0] && maxr <= s->dec.max_rows);
    for (int r = 0; r < maxr; r++) s->rows[r] = (mtp_row){0, r, r, r - 1, r, 0};
    s->dec.len[0] = 0;
    for (int i = 0; i < n; i++) {
        pass_s[i] = 1e30;
        for (int k = 0; k < reps; k++) {
            double t0 = mtp_now();
            mtp_decoder_forward(&s->dec, s->rows, rows[i], kvh, s->logits);
            double t = mtp_now() - t0;
            pass_s[i] = t < pass_s[i] ? t : pass_s[i];
        }
    }
    mtp_decoder_forward(&s->dec, s->rows, maxr, kvh, s->logits); /* trunk outputs to draft from */
    for (int r = 0; r < maxr && r < s->n_slots; r++) {
        s->drows[r] = (mtp_row){0, r, r, -1, r, 0};
        s->zrow[r] = r;
    }
    for (int i = 0; i < nb; i++) {
        draft_s[i] = 0;
        if (kvh < 2 || brows[i] > s->n_slots) continue;
        MTP_ASSERT(heads >= 1 && heads < kvh);
        int nh[MTP_MAX_FUTURE];
        for (int h = 0; h < heads; h++) nh[h] = brows[i];
        draft_s[i] = 1e30;
        for (int k = 0; k < reps; k++) {
            double t0 = mtp_now();
            mtp_decoder_draft(&s->dec, s->drows, s->zrow, nh, 2, heads + 1, s->dlogits);
            double t = mtp_now() - t0;
            draft_s[i] = t < draft_s[i] ? t : draft_s[i];
        }
    }
    s->dec.len[0] = 0;
}
