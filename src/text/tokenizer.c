/* tokenizer.c: the public tokenizer API (mtp.h) over the two models (tokenizer_impl.h):
 * loading told apart by content, encoding through the model, and decoding for both:
 * each id's bytes concatenated, then invalid UTF-8 repaired as the model's reference does.
 * Streaming decode holds back a trailing incomplete UTF-8 sequence; since a held-back
 * sequence starts at a lead byte, which never continues an earlier character, the text
 * emitted before it is repaired exactly as the whole text would be, so the pushes
 * concatenated equal mtp_detokenize of all ids. */
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "text/tokenizer_impl.h"
#include "text/utf8.h"

void mtp_tokbuf_push(mtp_tokbuf *b, mtp_token id) {
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 64;
        b->ids = xrealloc(b->ids, b->cap * sizeof *b->ids);
    }
    b->ids[b->n++] = id;
}

/* tokenizer.json is a JSON object; a ModelProto starts with a field key, never '{'. */
static int looks_like_json(const uint8_t *p, size_t n) {
    size_t i = 0;
    if (n >= 3 && !memcmp(p, "\xef\xbb\xbf", 3)) i = 3; /* a UTF-8 byte order mark */
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r')) i++;
    return i < n && p[i] == '{';
}

void mtp_tokenizer_free(mtp_tokenizer *t) {
    if (!t) return;
    if (t->free_impl) t->free_impl(t->impl);
    free(t);
}

int mtp_tokenizer_from_bytes(mtp_tokenizer **out, const void *data, size_t n, const char *what,
                             mtp_err *err) {
    *out = NULL;
    if (!n) return mtp_fail(err, "%s: empty file, not a tokenizer", what);
    mtp_tokenizer *t = xcalloc(1, sizeof *t);
    t->bos = t->eos = -1;
    int rc;
    if (looks_like_json(data, n)) {
        t->kind = MTP_TOK_BYTE_BPE;
        /* a NUL-terminated copy, for JSON parsers that want one */
        char *json = xmalloc(n + 1);
        memcpy(json, data, n);
        json[n] = 0;
        rc = mtp_bpe_load(t, json, n, what, err);
        free(json);
    } else {
        t->kind = MTP_TOK_SENTENCEPIECE;
        rc = mtp_spm_load(t, data, n, what, err);
    }
    if (rc) {
        mtp_tokenizer_free(t);
        return -1;
    }
    MTP_ASSERT(t->vocab_size > 0 && t->encode && t->token_bytes && t->pieces);
    *out = t;
    return 0;
}

int mtp_tokenizer_load(mtp_tokenizer **t, const char *path, mtp_err *err) {
    char *data;
    size_t n;
    *t = NULL;
    if (mtp_read_file(path, &data, &n, err)) return -1;
    int rc = mtp_tokenizer_from_bytes(t, data, n, path, err);
    free(data);
    return rc;
}

mtp_tokenizer_kind mtp_tokenizer_kind_of(const mtp_tokenizer *t) { return t->kind; }
int mtp_tokenizer_vocab_size(const mtp_tokenizer *t) { return t->vocab_size; }
int64_t mtp_tokenizer_bos(const mtp_tokenizer *t) { return t->bos; }
int64_t mtp_tokenizer_eos(const mtp_tokenizer *t) { return t->eos; }
int mtp_tokenizer_adds_bos(const mtp_tokenizer *t) { return t->adds_bos; }

const char *mtp_tokenizer_piece(const mtp_tokenizer *t, mtp_token id) {
    return id < (mtp_token)t->vocab_size ? t->pieces[id] : NULL;
}

int mtp_tokenize(const mtp_tokenizer *t, const char *text, size_t n, mtp_token **ids,
                 size_t *n_ids, mtp_err *err) {
    mtp_tokbuf b = {0};
    *ids = NULL;
    *n_ids = 0;
    if (t->encode(t, text, n, &b, err)) {
        free(b.ids);
        return -1;
    }
    *ids = b.ids ? b.ids : xmalloc(1);
    *n_ids = b.n;
    return 0;
}

/* ---- decoding ------------------------------------------------------------------------ */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} bytes;

static void bytes_reserve(bytes *b, size_t more) {
    if (b->cap - b->n >= more) return;
    b->cap = 2 * b->cap + more + 64;
    b->p = xrealloc(b->p, b->cap);
}

/* Appends the bytes of ids[0..n) to raw; *first as token_bytes says. */
static int append_ids(const mtp_tokenizer *t, const mtp_token *ids, size_t n, int *first, bytes *raw,
                      mtp_err *err) {
    for (size_t i = 0; i < n; i++) {
        if (ids[i] >= (mtp_token)t->vocab_size)
            return mtp_fail(err, "token id %u is out of range (vocabulary of %d)", (unsigned)ids[i], t->vocab_size);
        size_t k;
        const char *s = t->token_bytes(t, ids[i], first, &k);
        if (k) *first = 0;
        bytes_reserve(raw, k);
        memcpy(raw->p + raw->n, s, k);
        raw->n += k;
    }
    return 0;
}

/* raw[0..n) repaired into out (replacing its contents), NUL-terminated. */
static void repair_into(const mtp_tokenizer *t, const uint8_t *raw, size_t n, bytes *out) {
    out->n = 0;
    bytes_reserve(out, 3 * n + 1);
    out->n = mtp_utf8_fix(raw, n, t->repair == MTP_REPAIR_LOSSY, out->p);
    out->p[out->n] = 0;
}

int mtp_detokenize(const mtp_tokenizer *t, const mtp_token *ids, size_t n, char **text,
                   size_t *len, mtp_err *err) {
    bytes raw = {0}, out = {0};
    int first = 1;
    *text = NULL;
    *len = 0;
    if (append_ids(t, ids, n, &first, &raw, err)) {
        free(raw.p);
        return -1;
    }
    repair_into(t, raw.p, raw.n, &out);
    free(raw.p);
    *text = (char *)out.p;
    *len = out.n;
    return 0;
}

struct mtp_detok {
    const mtp_tokenizer *t;
    int first;
    bytes pending; /* raw bytes not yet returned: an incomplete character, at most 3 */
    bytes out;     /* what the last call returned */
};

mtp_detok *mtp_detok_new(const mtp_tokenizer *t, int continuation) {
    mtp_detok *d = xcalloc(1, sizeof *d);
    d->t = t;
    d->first = !continuation;
    return d;
}

int mtp_detok_push(mtp_detok *d, const mtp_token *ids, size_t n, const char **text, size_t *len,
                   mtp_err *err) {
    *text = "";
    *len = 0;
    size_t before = d->pending.n;
    int first = d->first;
    if (append_ids(d->t, ids, n, &first, &d->pending, err)) {
        d->pending.n = before; /* nothing of a failed push is kept */
        return -1;
    }
    d->first = first;
    size_t hold = mtp_utf8_incomplete_tail(d->pending.p, d->pending.n);
    size_t ready = d->pending.n - hold;
    repair_into(d->t, d->pending.p, ready, &d->out);
    memmove(d->pending.p, d->pending.p + ready, hold);
    d->pending.n = hold;
    *text = (const char *)d->out.p;
    *len = d->out.n;
    return 0;
}

void mtp_detok_finish(mtp_detok *d, const char **text, size_t *len) {
    repair_into(d->t, d->pending.p, d->pending.n, &d->out);
    d->pending.n = 0;
    *text = (const char *)d->out.p;
    *len = d->out.n;
}

void mtp_detok_free(mtp_detok *d) {
    if (!d) return;
    free(d->pending.p);
    free(d->out.p);
    free(d);
}
