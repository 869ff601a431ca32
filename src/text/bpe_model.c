/* bpe_model.c: the BPE model of a tokenizer.json: its vocab (string -> id), its merges
 * ((left, right) -> rank and merged id), and the merging of one pre-token. Merging follows
 * tokenizers' Word::merge_all: a min-heap of candidate pairs ordered by rank, then by
 * position (so equal ranks merge leftmost first); a popped pair whose symbols have changed
 * since it was pushed is skipped. O(n log n) in the pre-token's length, so one long run
 * of letters cannot stall an encode. No cache: merging is cheap next to the regex split. */
#include <stdio.h>
#include <string.h>

#include "core/util.h"
#include "text/bpe.h"
#include "text/utf8.h"

static uint64_t hash_u64(uint64_t x) { /* splitmix64's finaliser */
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* ---- merges ---------------------------------------------------------------------------- */

static uint64_t pair_key(uint32_t a, uint32_t b) { return ((uint64_t)a << 32 | b) + 1; }

static bpe_merge *merge_slot(bpe_merge *tab, size_t cap, uint64_t key) {
    for (size_t i = hash_u64(key) & (cap - 1);; i = (i + 1) & (cap - 1))
        if (tab[i].key == key || tab[i].key == 0) return &tab[i];
}

void bpe_model_add_merge(bpe_model *m, uint32_t a, uint32_t b, uint32_t rank, uint32_t new_id) {
    if (2 * (m->merge_used + 1) > m->merge_cap) { /* at most half full */
        size_t cap = m->merge_cap ? 2 * m->merge_cap : 1024;
        bpe_merge *tab = xcalloc(cap, sizeof *tab);
        for (size_t i = 0; i < m->merge_cap; i++)
            if (m->merges[i].key) *merge_slot(tab, cap, m->merges[i].key) = m->merges[i];
        free(m->merges);
        m->merges = tab;
        m->merge_cap = cap;
    }
    bpe_merge *e = merge_slot(m->merges, m->merge_cap, pair_key(a, b));
    m->merge_used += e->key == 0;
    e->key = pair_key(a, b);
    e->rank = rank;
    e->new_id = new_id;
}

static const bpe_merge *merge_get(const bpe_model *m, uint32_t a, uint32_t b) {
    if (!m->merge_cap) return NULL;
    const bpe_merge *e = merge_slot(m->merges, m->merge_cap, pair_key(a, b));
    return e->key ? e : NULL;
}

void bpe_model_free(bpe_model *m) {
    mtp_strmap_free(&m->vocab);
    free(m->merges);
    m->merges = NULL;
    m->merge_cap = m->merge_used = 0;
}

/* ---- merging one pre-token ------------------------------------------------------------- */

typedef struct {
    uint32_t id;
    int32_t prev, next; /* -1: none */
    int alive;
} symbol;

typedef struct {
    uint32_t rank, pos, new_id;
} candidate;

static int cand_before(const candidate *x, const candidate *y) {
    return x->rank != y->rank ? x->rank < y->rank : x->pos < y->pos;
}

static void heap_push(candidate *h, size_t *n, candidate c) {
    size_t i = (*n)++;
    while (i > 0 && cand_before(&c, &h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = c;
}

static candidate heap_pop(candidate *h, size_t *n) {
    candidate top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && cand_before(&h[c + 1], &h[c])) c++;
        if (!cand_before(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = last;
    return top;
}

static void push_pair(const bpe_model *m, const symbol *sym, int32_t pos, candidate *h, size_t *nh) {
    if (pos < 0 || sym[pos].next < 0) return;
    const bpe_merge *e = merge_get(m, sym[pos].id, sym[sym[pos].next].id);
    if (e) heap_push(h, nh, (candidate){e->rank, (uint32_t)pos, e->new_id});
}

static void add_symbol(symbol *sym, size_t *ns, uint32_t id) {
    size_t i = (*ns)++;
    sym[i] = (symbol){id, (int32_t)i - 1, -1, 1};
    if (i > 0) sym[i - 1].next = (int32_t)i;
}

/* The characters of s as symbols: each one's vocab id, else its bytes' <0xXX> tokens
 * (byte_fallback), else the unknown token (runs fused with fuse_unk), else nothing. */
static void initial_symbols(const bpe_model *m, const char *s, size_t n, symbol *sym, size_t *ns) {
    const unsigned char *u = (const unsigned char *)s;
    int unk_pending = 0;
    for (size_t i = 0; i < n;) {
        size_t len; /* pre-tokens are valid UTF-8 */
        mtp_utf8_decode(u + i, n - i, &len);
        int32_t id = bpe_vocab_id(&m->vocab, s + i, len);
        if (id >= 0) {
            if (unk_pending) add_symbol(sym, ns, (uint32_t)m->unk_id);
            unk_pending = 0;
            add_symbol(sym, ns, (uint32_t)id);
            i += len;
            continue;
        }
        if (m->byte_fallback) {
            int32_t bytes[4];
            size_t k = 0;
            for (; k < len; k++) {
                char code[8];
                snprintf(code, sizeof code, "<0x%02X>", u[i + k]);
                if ((bytes[k] = bpe_vocab_id(&m->vocab, code, 6)) < 0) break;
            }
            if (k == len) {
                /* tokenizers leaves a pending unknown token to come after these */
                for (k = 0; k < len; k++) add_symbol(sym, ns, (uint32_t)bytes[k]);
                i += len;
                continue;
            }
        }
        if (m->unk_id >= 0) {
            if (unk_pending && !m->fuse_unk) add_symbol(sym, ns, (uint32_t)m->unk_id);
            unk_pending = 1;
        }
        i += len;
    }
    if (unk_pending) add_symbol(sym, ns, (uint32_t)m->unk_id);
}

void bpe_model_tokenize(const bpe_model *m, const char *s, size_t n, mtp_tokbuf *out) {
    if (n == 0) return;
    if (m->ignore_merges) {
        int32_t id = bpe_vocab_id(&m->vocab, s, n);
        if (id >= 0) {
            mtp_tokbuf_push(out, (mtp_token)id);
            return;
        }
    }
    /* A pre-token of n bytes has at most n symbols, and each merge pushes at most two
     * candidates: the heap never holds more than 3n. Short ones stay on the stack. */
    symbol sym_small[64];
    candidate heap_small[192];
    symbol *sym = n <= 64 ? sym_small : xmalloc(n * sizeof *sym);
    candidate *h = n <= 64 ? heap_small : xmalloc(3 * n * sizeof *h);
    size_t ns = 0, nh = 0;
    initial_symbols(m, s, n, sym, &ns);
    for (size_t i = 0; i + 1 < ns; i++) push_pair(m, sym, (int32_t)i, h, &nh);
    while (nh) {
        candidate c = heap_pop(h, &nh);
        symbol *left = &sym[c.pos];
        if (!left->alive || left->next < 0) continue;
        symbol *right = &sym[left->next];
        const bpe_merge *e = merge_get(m, left->id, right->id);
        if (!e || e->new_id != c.new_id) continue; /* stale: the pair has changed */
        left->id = c.new_id;
        left->next = right->next;
        right->alive = 0;
        if (right->next >= 0) sym[right->next].prev = (int32_t)c.pos;
        push_pair(m, sym, left->prev, h, &nh);
        push_pair(m, sym, (int32_t)c.pos, h, &nh);
    }
    for (size_t i = 0; i < ns; i++)
        if (sym[i].alive) mtp_tokbuf_push(out, sym[i].id);
    if (sym != sym_small) free(sym);
    if (h != heap_small) free(h);
}
