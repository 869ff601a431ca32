/* spm_encode.c: SentencePiece's segmenters on normalized text, then what its processor
 * does to their output (PopulateSentencePieceText): an unknown piece becomes its UTF-8
 * bytes' <0xNN> pieces with byte_fallback, else a run of unknown pieces becomes one unk.
 * - BPE (bpe_model.cc): the text is cut into characters (a user-defined piece is one
 *   symbol that never merges); every adjacent pair whose concatenation is a piece goes on
 *   a heap keyed by that piece's score, ties to the leftmost pair; the best pair merges and
 *   its neighbours' new pairs go on the heap, until none is left. Stale heap entries are
 *   recognised by their length. An UNUSED piece that results is split back into the pair
 *   that made it (resegmentation). The whole text is one sequence: no split at spaces.
 * - Unigram (unigram_model.cc, EncodeOptimized): Viterbi over byte positions, the best
 *   path to each character boundary from the pieces that start at each boundary, an
 *   unknown character scoring min_score - 10; user-defined pieces score
 *   length * max_score - 0.1. The float/double arithmetic follows the original's types so
 *   that ties break the same way. */
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "text/spm.h"
#include "text/utf8.h"

int spm_piece_id(const spm_model *m, const char *s, size_t n) {
    uint32_t h = mtp_fnv(s, n);
    const mtp_strmap_slot *sl = mtp_strmap_find(&m->reserved, s, n, h);
    if (!sl) sl = mtp_strmap_find(&m->normal, s, n, h);
    return sl ? sl->value : m->unk;
}

/* Appends piece (s, n) with id, as PopulateSentencePieceText does; *prev_unk carries
 * "the previous piece was unknown" across calls. */
static void emit(const spm_model *m, const char *s, size_t n, int id, int *prev_unk, mtp_tokbuf *out) {
    int unk = m->type[id] == SPM_UNKNOWN;
    if (unk && m->byte_fallback) {
        for (size_t i = 0; i < n; i++) mtp_tokbuf_push(out, (mtp_token)m->byte_id[(uint8_t)s[i]]);
    } else if (!(unk && *prev_unk)) {
        mtp_tokbuf_push(out, (mtp_token)id);
    }
    *prev_unk = unk;
}

/* ---- BPE ---------------------------------------------------------------------------- */

typedef struct {
    uint32_t start, len; /* bytes of the normalized text; len 0: merged away */
    int prev, next;      /* neighbours, -1 at the ends */
    int frozen;          /* a user-defined piece: never merges */
} symbol;

typedef struct {
    float score;
    int left, right;
    uint32_t size; /* bytes of the merged piece, to spot stale entries */
} pair;

/* SentencePiece's SymbolPairComparator: a higher score first, then the leftmost. */
static int above(const pair *a, const pair *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

typedef struct {
    pair *v;
    size_t n, cap;
} heap;

static void heap_push(heap *h, pair p) {
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 64;
        h->v = xrealloc(h->v, h->cap * sizeof *h->v);
    }
    size_t i = h->n++;
    while (i > 0 && above(&p, &h->v[(i - 1) / 2])) {
        h->v[i] = h->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->v[i] = p;
}

static pair heap_pop(heap *h) {
    pair top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && above(&h->v[c + 1], &h->v[c])) c++;
        if (!above(&h->v[c], &last)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n) h->v[i] = last;
    return top;
}

/* rev_merge: an UNUSED piece made by a merge -> the two symbols it was made of (the
 * last merge that made it wins, as in SentencePiece's map assignment). */
typedef struct {
    mtp_strmap map; /* merged text -> index into parts */
    uint32_t (*parts)[4]; /* left start, left len, right start, right len */
    size_t n, cap;
} rev_merge;

typedef struct {
    const spm_model *m;
    const char *s;
    symbol *sym;
    heap h;
    rev_merge rev;
} bpe_state;

static void maybe_add_pair(bpe_state *b, int left, int right) {
    if (left < 0 || right < 0 || b->sym[left].frozen || b->sym[right].frozen) return;
    const symbol *l = &b->sym[left], *r = &b->sym[right];
    size_t n = (size_t)l->len + r->len;
    const char *p = b->s + l->start;
    const mtp_strmap_slot *sl = mtp_strmap_find(&b->m->normal, p, n, mtp_fnv(p, n));
    if (!sl) return;
    heap_push(&b->h, (pair){b->m->score[sl->value], left, right, (uint32_t)n});
    if (b->m->type[sl->value] == SPM_UNUSED) {
        int added;
        mtp_strmap_slot *e = mtp_strmap_upsert(&b->rev.map, p, n, (int32_t)b->rev.n, &added);
        if (added) {
            if (b->rev.n == b->rev.cap) {
                b->rev.cap = b->rev.cap ? 2 * b->rev.cap : 16;
                b->rev.parts = xrealloc(b->rev.parts, b->rev.cap * sizeof *b->rev.parts);
            }
            b->rev.n++;
        }
        uint32_t *q = b->rev.parts[e->value];
        q[0] = l->start, q[1] = l->len, q[2] = r->start, q[3] = r->len;
    }
}

static void resegment(bpe_state *b, uint32_t start, uint32_t len, int *prev_unk, mtp_tokbuf *out) {
    const char *p = b->s + start;
    int id = spm_piece_id(b->m, p, len);
    if (b->m->type[id] == SPM_UNUSED) {
        const mtp_strmap_slot *e = mtp_strmap_find(&b->rev.map, p, len, mtp_fnv(p, len));
        if (e) {
            uint32_t q[4];
            memcpy(q, b->rev.parts[e->value], sizeof q);
            resegment(b, q[0], q[1], prev_unk, out);
            resegment(b, q[2], q[3], prev_unk, out);
            return;
        }
    }
    emit(b->m, p, len, id, prev_unk, out);
}

/* BPE on s[0..n) (a segment of the text), emitting its pieces. */
static void bpe_segment(bpe_state *b, uint32_t from, uint32_t to, int *prev_unk, mtp_tokbuf *out) {
    const spm_model *m = b->m;
    const char *s = b->s;
    int count = 0;
    for (uint32_t i = from; i < to;) {
        size_t l = spm_match_user(m, s + i, to - i);
        int frozen = l > 0;
        if (!l) l = mtp_utf8_char_len((const uint8_t *)s + i, to - i);
        b->sym[count] = (symbol){i, (uint32_t)l, count - 1, i + l < to ? count + 1 : -1, frozen};
        count++;
        i += (uint32_t)l;
    }
    b->h.n = 0;
    for (int i = 1; i < count; i++) maybe_add_pair(b, i - 1, i);
    while (b->h.n) {
        pair top = heap_pop(&b->h);
        symbol *l = &b->sym[top.left], *r = &b->sym[top.right];
        if (!l->len || !r->len || l->len + r->len != top.size) continue; /* stale */
        l->len += r->len;
        l->next = r->next;
        if (r->next >= 0) b->sym[r->next].prev = top.left;
        r->len = 0;
        maybe_add_pair(b, l->prev, top.left);
        maybe_add_pair(b, top.left, l->next);
    }
    for (int i = count ? 0 : -1; i >= 0; i = b->sym[i].next) {
        const symbol *y = &b->sym[i];
        if (m->has_unused) resegment(b, y->start, y->len, prev_unk, out);
        else emit(m, s + y->start, y->len, spm_piece_id(m, s + y->start, y->len), prev_unk, out);
    }
}

/* SentencePiece runs BPE on the whole text as one sequence, whose heap outgrows the caches
 * on long texts. A byte that no mergeable piece contains (spm.c's m->splits: a newline in
 * Llama's vocabulary, whose newline is a byte piece) can never be part of a merge, so the
 * text is cut around it and each segment merged on its own: merges never cross a cut, and
 * within a segment they happen in the same order, so the ids are the same. Not with UNUSED
 * pieces, whose resegmentation table is shared by the whole text. */
static void encode_bpe(const spm_model *m, const char *s, size_t n, mtp_tokbuf *out) {
    bpe_state b = {.m = m, .s = s};
    MTP_ASSERT(n <= SPM_MAX_TEXT);
    size_t longest = n; /* the symbols of one segment at a time */
    if (!m->has_unused) {
        longest = 1;
        for (size_t i = 0, from = 0; i <= n; i++)
            if (i == n || m->splits[(uint8_t)s[i]]) {
                longest = i - from > longest ? i - from : longest;
                from = i + 1;
            }
    }
    b.sym = xmalloc(longest * sizeof *b.sym);
    int prev_unk = 0;
    uint32_t from = 0;
    if (!m->has_unused) {
        for (uint32_t i = 0; i < n; i++) {
            if (!m->splits[(uint8_t)s[i]]) continue;
            bpe_segment(&b, from, i, &prev_unk, out);
            bpe_segment(&b, i, i + 1, &prev_unk, out);
            from = i + 1;
        }
    }
    bpe_segment(&b, from, (uint32_t)n, &prev_unk, out);
    free(b.sym);
    free(b.h.v);
    mtp_strmap_free(&b.rev.map);
    free(b.rev.parts);
}

/* ---- unigram ------------------------------------------------------------------------ */

typedef struct {
    int id;         /* -1: no path reaches here yet */
    float score;    /* of the best path ending here */
    int starts_at;  /* where its last piece starts */
} best_node;

static void encode_unigram(const spm_model *m, const char *s, size_t n, mtp_tokbuf *out) {
    MTP_ASSERT(n <= SPM_MAX_TEXT);
    best_node *best = xmalloc((n + 1) * sizeof *best);
    for (size_t i = 0; i <= n; i++) best[i] = (best_node){-1, 0, -1};
    const float unk_score = m->min_score - 10.0f; /* kUnkPenalty */
    for (size_t start = 0; start < n;) {
        float till_here = best[start].score;
        size_t mblen = mtp_utf8_char_len((const uint8_t *)s + start, n - start);
        int single = 0;
        uint32_t h = MTP_FNV_INIT;
        for (size_t end = start; end < n; end++) {
            h = mtp_fnv_step(h, (uint8_t)s[end]);
            const mtp_strmap_slot *sl = mtp_strmap_find(&m->lattice, s + start, end + 1 - start, h);
            if (!sl) break;
            int id = sl->value;
            if (id < 0 || m->type[id] == SPM_UNUSED) continue;
            size_t length = end + 1 - start;
            best_node *t = &best[end + 1];
            double score = m->type[id] == SPM_USER_DEFINED ? (double)((float)length * m->max_score) - 0.1
                                                           : (double)m->score[id];
            double cand = score + (double)till_here;
            if (t->starts_at == -1 || cand > (double)t->score) {
                t->score = (float)cand;
                t->starts_at = (int)start;
                t->id = id;
            }
            if (length == mblen) single = 1;
        }
        if (!single) {
            best_node *t = &best[start + mblen];
            float cand = unk_score + till_here;
            if (t->starts_at == -1 || cand > t->score) {
                t->score = cand;
                t->starts_at = (int)start;
                t->id = m->unk;
            }
        }
        start += mblen;
    }
    /* backtrack, then emit in order */
    size_t k = 0;
    for (size_t end = n; end > 0; end = (size_t)best[end].starts_at) k++;
    int *path = xmalloc((k ? k : 1) * sizeof *path);
    size_t j = k;
    for (size_t end = n; end > 0; end = (size_t)best[end].starts_at) path[--j] = (int)end;
    int prev_unk = 0;
    for (j = 0; j < k; j++) {
        size_t end = (size_t)path[j], st = (size_t)best[end].starts_at;
        emit(m, s + st, end - st, best[end].id, &prev_unk, out);
    }
    free(path);
    free(best);
}

void spm_encode_normalized(const spm_model *m, const char *s, size_t n, mtp_tokbuf *out) {
    if (!n) return;
    if (m->model_type == SPM_BPE) encode_bpe(m, s, n, out);
    else encode_unigram(m, s, n, out);
}
