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

/* Decoding state: raw bytes not yet repaired (a run that may still grow) and the repaired
 * text. Repairing a run in pieces gives the same text as repairing it whole when each cut
 * is before a lead byte (see the top of the file). */
typedef struct {
    const mtp_tokenizer *t;
    int first;
    bytes raw, out;
} decoder;

static void flush(decoder *d, size_t keep) {
    size_t n = d->raw.n - keep;
    bytes_reserve(&d->out, 3 * n + 1);
    d->out.n += mtp_utf8_fix(d->raw.p, n, d->t->repair == MTP_REPAIR_LOSSY, d->out.p + d->out.n);
    d->out.p[d->out.n] = 0;
    if (keep) memmove(d->raw.p, d->raw.p + n, keep);
    d->raw.n = keep;
}

/* Decodes ids[0..n) into d; on an id out of range nothing of them is kept. */
static int feed(decoder *d, const mtp_token *ids, size_t n, mtp_err *err) {
    const mtp_tokenizer *t = d->t;
    for (size_t i = 0; i < n; i++)
        if (ids[i] >= (mtp_token)t->vocab_size)
            return mtp_fail(err, "token id %u is out of range (vocabulary of %d)", (unsigned)ids[i], t->vocab_size);
    for (size_t i = 0; i < n; i++) {
        size_t k;
        const char *s = t->token_bytes(t, ids[i], &d->first, &k);
        if (!k) {
            if (t->empty_splits) flush(d, 0);
            continue;
        }
        d->first = 0;
        bytes_reserve(&d->raw, k);
        memcpy(d->raw.p + d->raw.n, s, k);
        d->raw.n += k;
    }
    return 0;
}

int mtp_detokenize(const mtp_tokenizer *t, const mtp_token *ids, size_t n, char **text,
                   size_t *len, mtp_err *err) {
    decoder d = {.t = t, .first = 1};
    *text = NULL;
    *len = 0;
    int rc = feed(&d, ids, n, err);
    if (!rc) {
        flush(&d, 0);
        bytes_reserve(&d.out, 1);
        d.out.p[d.out.n] = 0;
        *text = (char *)d.out.p;
        *len = d.out.n;
    } else {
        free(d.out.p);
    }
    free(d.raw.p);
    return rc;
}

struct mtp_detok {
    decoder d; /* raw: at most an incomplete character between calls; out: the last text returned */
};

mtp_detok *mtp_detok_new(const mtp_tokenizer *t, int continuation) {
    mtp_detok *d = xcalloc(1, sizeof *d);
    d->d.t = t;
    d->d.first = !continuation;
    return d;
}

static void returned(mtp_detok *d, const char **text, size_t *len) {
    bytes_reserve(&d->d.out, 1);
    d->d.out.p[d->d.out.n] = 0;
    *text = (const char *)d->d.out.p;
    *len = d->d.out.n;
}

int mtp_detok_push(mtp_detok *d, const mtp_token *ids, size_t n, const char **text, size_t *len,
                   mtp_err *err) {
    d->d.out.n = 0;
    *text = "";
    *len = 0;
    if (feed(&d->d, ids, n, err)) return -1;
    flush(&d->d, mtp_utf8_incomplete_tail(d->d.raw.p, d->d.raw.n));
    returned(d, text, len);
    return 0;
}

void mtp_detok_finish(mtp_detok *d, const char **text, size_t *len) {
    d->d.out.n = 0;
    flush(&d->d, 0);
    returned(d, text, len);
}

void mtp_detok_free(mtp_detok *d) {
    if (!d) return;
    free(d->d.raw.p);
    free(d->d.out.p);
    free(d);
}
