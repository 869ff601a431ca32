/* fuzz_spm.c: libFuzzer target for SentencePiece models: any bytes are loaded as a
 * tokenizer; when one loads, a few strings (valid, invalid UTF-8, whitespace) are encoded,
 * decoded whole and streamed, which must agree. Seeds: small spm_train models. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void roundtrip(const mtp_tokenizer *t, const char *s, size_t n) {
    mtp_token *ids;
    size_t n_ids, len, k;
    char *text;
    const char *piece;
    if (mtp_tokenize(t, s, n, &ids, &n_ids, NULL)) return;
    if (mtp_detokenize(t, ids, n_ids, &text, &len, NULL) == 0) {
        mtp_detok *d = mtp_detok_new(t, 0);
        size_t got = 0;
        for (size_t i = 0; i < n_ids; i++) {
            if (mtp_detok_push(d, ids + i, 1, &piece, &k, NULL)) abort();
            if (got + k > len || memcmp(text + got, piece, k)) abort();
            got += k;
        }
        mtp_detok_finish(d, &piece, &k);
        if (got + k != len || memcmp(text + got, piece, k)) abort();
        mtp_detok_free(d);
        free(text);
    }
    for (size_t i = 0; i < n_ids; i++)
        if (!mtp_tokenizer_piece(t, ids[i])) abort();
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mtp_tokenizer *t;
    if (mtp_tokenizer_from_bytes(&t, data, size, "fuzz", NULL)) return 0;
    static const char *TEXTS[] = {"Hello world  foo", " x\ty\n", "caf\xc3\xa9 \xe2\x96\x81 \xf0\x9f\x98\x80",
                                  "bad \xff\xe2\x96 utf8 \xc0", "", "   "};
    for (size_t i = 0; i < sizeof TEXTS / sizeof *TEXTS; i++) roundtrip(t, TEXTS[i], strlen(TEXTS[i]));
    /* decoding arbitrary ids: every id below the vocabulary size, in a row */
    int v = mtp_tokenizer_vocab_size(t);
    mtp_token ids[64];
    size_t n = 0;
    for (int i = 0; i < v && n < 64; i++) ids[n++] = (mtp_token)((i * 7919) % v);
    char *text;
    size_t len;
    if (mtp_detokenize(t, ids, n, &text, &len, NULL) == 0) free(text);
    mtp_tokenizer_free(t);
    return 0;
}
