/* bpe.c: encode and decode for the byte-level BPE tokenizer (bpe_load.c fills it), in the
 * order tokenizers' encode runs: added tokens not `normalized` are cut out of the raw text;
 * what lies between is normalized (NFC, where the file asks for it) and the `normalized`
 * added tokens are cut out of that; what remains is pre-tokenized (pretok.c) and each
 * pre-token merged (bpe_model.c). Input bytes that are not UTF-8 are first made U+FFFD
 * (bpe_utf8.c says why). Nothing is cached between calls: encode is thread-safe. */
#include <stdlib.h>
#include <string.h>
#include <uninorm.h>

#include "core/util.h"
#include "text/bpe.h"
#include "text/utf8.h"

typedef struct {
    const bpe_impl *b;
    mtp_tokbuf *out;
} enc_ctx;

static void on_piece(void *ctx, const char *s, size_t n) {
    enc_ctx *c = ctx;
    bpe_model_tokenize(&c->b->model, s, n, c->out);
}

static int on_normalized_gap(void *ctx, const char *s, size_t n, mtp_err *err) {
    enc_ctx *c = ctx;
    return bpe_pretok_run(&c->b->pretok, s, n, on_piece, c, err);
}

static int on_raw_gap(void *ctx, const char *s, size_t n, mtp_err *err) {
    enc_ctx *c = ctx;
    if (!c->b->nfc)
        return bpe_added_split(&c->b->norm_set, s, n, on_normalized_gap, c, c->out, err);
    size_t len = 0;
    uint8_t *norm = u8_normalize(UNINORM_NFC, (const uint8_t *)s, n, NULL, &len);
    if (!norm) return mtp_fail(err, "tokenizer: NFC normalization failed (out of memory?)");
    int rc = bpe_added_split(&c->b->norm_set, (const char *)norm, len, on_normalized_gap, c, c->out, err);
    free(norm);
    return rc;
}

int bpe_encode(const mtp_tokenizer *t, const char *text, size_t n, mtp_tokbuf *out, mtp_err *err) {
    enc_ctx c = {t->impl, out};
    /* tokenizers takes Rust strings (valid UTF-8): other bytes become U+FFFD first, one per
     * maximal invalid subpart (Rust's from_utf8_lossy), so an encode never fails on them */
    char *fixed = NULL;
    size_t fixed_n = n;
    if (!mtp_utf8_valid((const uint8_t *)text, n)) {
        fixed = xmalloc(3 * n + 1);
        fixed_n = mtp_utf8_fix((const uint8_t *)text, n, 1, (uint8_t *)fixed);
    }
    int rc = bpe_added_split(&c.b->raw_set, fixed ? fixed : text, fixed_n, on_raw_gap, &c, out, err);
    free(fixed);
    return rc;
}

const char *bpe_token_bytes(const mtp_tokenizer *t, mtp_token id, int *first, size_t *n) {
    const bpe_impl *b = t->impl;
    if (id >= (mtp_token)t->vocab_size) {
        *n = 0;
        return "";
    }
    *n = b->dec_off[id + 1] - b->dec_off[id];
    return b->dec_pool + b->dec_off[id];
}

void bpe_impl_free(void *impl) {
    bpe_impl *b = impl;
    if (!b) return;
    bpe_model_free(&b->model);
    bpe_pretok_free(&b->pretok);
    for (size_t i = 0; i < b->n_added; i++) free(b->added[i].content);
    free(b->added);
    bpe_added_set_free(&b->raw_set);
    bpe_added_set_free(&b->norm_set);
    free(b->pieces);
    free(b->piece_pool);
    free(b->dec_off);
    free(b->dec_pool);
    free(b);
}
