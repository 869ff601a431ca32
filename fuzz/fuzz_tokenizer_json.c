/* fuzz_tokenizer_json.c: libFuzzer target for the tokenizer.json reader (src/text/bpe*.c):
 * loads the input as a tokenizer file, and when it loads, encodes a few texts (added
 * tokens, digits, whitespace runs, invalid UTF-8) and decodes their ids and the first ids
 * of the vocab. Seeds: tiny hand-made tokenizer.json files in fuzz/corpus/tokenizer_json. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const texts[] = {
    "Hello world, it's 12345 <|endoftext|>!",
    "  \t\r\n  x<s>y</s><|begin_of_text|>\xc3\xa9\x65\xcc\x81 \xf0\x9f\x98\x80",
    "ab\xff\xfe\xc3 abab  aa \xe2\x82",
};

static void decode(const mtp_tokenizer *t, const mtp_token *ids, size_t n) {
    char *text;
    size_t len;
    mtp_err err;
    if (mtp_detokenize(t, ids, n, &text, &len, &err) == 0) free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mtp_tokenizer *t;
    mtp_err err;
    if (mtp_tokenizer_from_bytes(&t, data, size, "fuzz", &err)) return 0;
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        mtp_token *ids;
        size_t n;
        if (mtp_tokenize(t, texts[i], strlen(texts[i]), &ids, &n, &err) == 0) {
            for (size_t k = 0; k < n; k++)
                if (ids[k] >= (mtp_token)mtp_tokenizer_vocab_size(t)) abort(); /* an id out of range */
            decode(t, ids, n);
            free(ids);
        }
    }
    mtp_token first[64];
    size_t n = 0;
    for (int id = 0; id < mtp_tokenizer_vocab_size(t) && n < 64; id++) first[n++] = (mtp_token)id;
    decode(t, first, n);
    mtp_tokenizer_free(t);
    return 0;
}
