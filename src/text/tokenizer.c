/* tokenizer.c: TEMPORARY, for branch bpe only, so the byte-level BPE tests can link. It
 * knows tokenizer.json files only and does the least: load by content, encode, decode
 * with lossy UTF-8 repair. The real tokenizer.c (SentencePiece too, streaming decode)
 * replaces this file at merge; nothing in bpe*.c depends on anything here but the
 * interface in tokenizer_impl.h. */
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "text/bpe.h"

void mtp_tokbuf_push(mtp_tokbuf *b, mtp_token id) {
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 64;
        b->ids = xrealloc(b->ids, b->cap * sizeof *b->ids);
    }
    b->ids[b->n++] = id;
}

int mtp_tokenizer_from_bytes(mtp_tokenizer **out, const void *data, size_t n, const char *what,
                             mtp_err *err) {
    *out = NULL;
    const char *s = data;
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) i++;
    if (i == n || s[i] != '{') return mtp_fail(err, "%s: not a tokenizer.json", what);
    mtp_tokenizer *t = xcalloc(1, sizeof *t);
    t->kind = MTP_TOK_BYTE_BPE;
    if (mtp_bpe_load(t, s, n, what, err)) {
        mtp_tokenizer_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

int mtp_tokenizer_load(mtp_tokenizer **t, const char *path, mtp_err *err) {
    char *data;
    size_t len;
    *t = NULL;
    if (mtp_read_file(path, &data, &len, err)) return -1;
    int rc = mtp_tokenizer_from_bytes(t, data, len, path, err);
    free(data);
    return rc;
}

void mtp_tokenizer_free(mtp_tokenizer *t) {
    if (!t) return;
    if (t->free_impl) t->free_impl(t->impl);
    free(t);
}

mtp_tokenizer_kind mtp_tokenizer_kind_of(const mtp_tokenizer *t) { return t->kind; }
int mtp_tokenizer_vocab_size(const mtp_tokenizer *t) { return t->vocab_size; }
int64_t mtp_tokenizer_bos(const mtp_tokenizer *t) { return t->bos; }
int64_t mtp_tokenizer_eos(const mtp_tokenizer *t) { return t->eos; }
int mtp_tokenizer_adds_bos(const mtp_tokenizer *t) { return t->adds_bos; }

int mtp_tokenize(const mtp_tokenizer *t, const char *text, size_t n, mtp_token **ids,
                 size_t *n_ids, mtp_err *err) {
    mtp_tokbuf b = {0};
    if (t->encode(t, text, n, &b, err)) {
        free(b.ids);
        return -1;
    }
    *ids = b.ids ? b.ids : xmalloc(1);
    *n_ids = b.n;
    return 0;
}

const char *mtp_tokenizer_piece(const mtp_tokenizer *t, mtp_token id) {
    return id < (mtp_token)t->vocab_size ? t->pieces[id] : NULL;
}

int mtp_detokenize(const mtp_tokenizer *t, const mtp_token *ids, size_t n, char **text,
                   size_t *len, mtp_err *err) {
    size_t cap = 16, k = 0;
    char *s = xmalloc(cap);
    for (size_t i = 0; i < n; i++) {
        if (ids[i] >= (mtp_token)t->vocab_size) {
            free(s);
            return mtp_fail(err, "detokenize: id %u is out of range", (unsigned)ids[i]);
        }
        size_t m;
        const char *p = t->token_bytes(t, ids[i], k == 0, &m);
        if (k + m + 1 > cap) s = xrealloc(s, cap = 2 * (k + m + 1));
        memcpy(s + k, p, m);
        k += m;
    }
    char *fixed;
    size_t fixed_n;
    bpe_utf8_fix(s, k, &fixed, &fixed_n);
    if (fixed) {
        free(s);
        s = xrealloc(fixed, fixed_n + 1);
    }
    s[fixed_n] = 0;
    *text = s;
    *len = fixed_n;
    return 0;
}
