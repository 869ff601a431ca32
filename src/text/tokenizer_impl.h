/* tokenizer_impl.h: what each tokenizer model (spm.c: SentencePiece; bpe.c: byte-level BPE
 * from tokenizer.json) fills in for tokenizer.c, which owns loading by content, decoding,
 * streaming and UTF-8 repair for both. */
#ifndef MTP_TOKENIZER_IMPL_H
#define MTP_TOKENIZER_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "mtp.h"

/* A growing list of ids. */
typedef struct {
    mtp_token *ids;
    size_t n, cap;
} mtp_tokbuf;
void mtp_tokbuf_push(mtp_tokbuf *b, mtp_token id);

/* How bytes that are not valid UTF-8 decode: one U+FFFD per byte (SentencePiece) or one per
 * maximal invalid subsequence (Rust's String::from_utf8_lossy, used by tokenizers). */
typedef enum { MTP_REPAIR_PER_BYTE, MTP_REPAIR_LOSSY } mtp_utf8_repair;

struct mtp_tokenizer {
    mtp_tokenizer_kind kind;
    int vocab_size;
    int64_t bos, eos;
    int adds_bos;
    mtp_utf8_repair repair;
    /* Nonzero: a token that decodes to no bytes (a control token) ends a run of bytes, so
     * bytes before and after it never join into one character (SentencePiece repairs each
     * run of byte pieces on its own). Zero: skipped tokens are simply absent. */
    int empty_splits;
    char **pieces; /* (vocab_size) the stored pieces, NUL-terminated */
    /* Appends the ids of text (n bytes) to out. */
    int (*encode)(const mtp_tokenizer *t, const char *text, size_t n, mtp_tokbuf *out,
                  mtp_err *err);
    /* The bytes id decodes to (*n of them; 0 for skipped special tokens), id < vocab_size.
     * *first (in/out): nonzero while no text precedes this token (SentencePiece drops the
     * dummy prefix's space there). The caller clears it once a token gave bytes; a model
     * may clear it itself when a token starts the text yet gives none (SentencePiece: a
     * lone dummy-prefix space), and may ignore it. */
    const char *(*token_bytes)(const mtp_tokenizer *t, mtp_token id, int *first, size_t *n);
    void (*free_impl)(void *impl);
    void *impl;
};

/* Each fills t (all but kind, which the caller sets) from a file's bytes; on failure t's
 * fields are left for free_impl (which takes NULL) and err names `what`. */
int mtp_spm_load(mtp_tokenizer *t, const uint8_t *data, size_t n, const char *what, mtp_err *err);
int mtp_bpe_load(mtp_tokenizer *t, const char *json, size_t n, const char *what, mtp_err *err);

#endif
