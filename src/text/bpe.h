/* bpe.h: the parts of the byte-level BPE tokenizer read from a Hugging Face tokenizer.json,
 * shared by its files: bpe_load.c reads the file, bpe.c runs encode and decode, and
 * bpe_model.c (the merges), bpe_added.c (added tokens), pretok.c (the regex split) and
 * bytelevel.c (GPT-2's byte<->character map) each do one step of an encode.
 * Everything here is read-only once loaded, so one tokenizer serves many threads: encode
 * keeps its scratch state on its own stack and heap. */
#ifndef MTP_TEXT_BPE_H
#define MTP_TEXT_BPE_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

#include "mtp.h"
#include "text/strmap.h"
#include "text/tokenizer_impl.h"

/* string -> id: the text layer's map (strmap.h); -1 when absent */
static inline int32_t bpe_vocab_id(const mtp_strmap *m, const char *s, size_t n) {
    const mtp_strmap_slot *e = m->slots ? mtp_strmap_find(m, s, n, mtp_fnv(s, n)) : NULL;
    return e ? e->value : -1;
}

/* ---- the BPE model (bpe_model.c) ------------------------------------------------------- */
typedef struct {
    uint64_t key; /* (left id << 32 | right id) + 1; 0: empty slot */
    uint32_t rank, new_id;
} bpe_merge;
typedef struct {
    mtp_strmap vocab; /* the model's vocab (not added tokens) */
    bpe_merge *merges;
    size_t merge_cap, merge_used; /* merge_cap a power of two, at most half used */
    int ignore_merges; /* a pre-token found whole in the vocab is taken as it is */
    int byte_fallback; /* a character not in the vocab becomes <0xXX> tokens */
    int32_t unk_id;    /* -1: none (a character not in the vocab is dropped) */
    int fuse_unk;
} bpe_model;
/* Adds merge number `rank` of (a, b) -> new_id; a later merge of the same pair replaces an
 * earlier one, as tokenizers' map does. */
void bpe_model_add_merge(bpe_model *m, uint32_t a, uint32_t b, uint32_t rank, uint32_t new_id);
/* Appends the ids of one pre-token (byte-level characters, n bytes of valid UTF-8). */
void bpe_model_tokenize(const bpe_model *m, const char *s, size_t n, mtp_tokbuf *out);
void bpe_model_free(bpe_model *m);

/* ---- added tokens (bpe_added.c) -------------------------------------------------------- */
typedef struct {
    char *content; /* what is matched: NFC-normalized when `normalized` and NFC is on */
    size_t n;
    int32_t id;
    unsigned char special, single_word, lstrip, rstrip, normalized;
} bpe_added;
/* One matcher per pass: tokens with normalized false match the raw text, the others
 * match it once normalized. by_byte[b] lists the tokens starting with byte b, longest
 * first, so the first that matches at a position is the leftmost-longest match. */
typedef struct {
    const bpe_added **list; /* (n) */
    size_t n;
    uint32_t start[257]; /* tokens with first byte b are list[start[b] .. start[b + 1]) */
} bpe_added_set;
void bpe_added_set_build(bpe_added_set *set, const bpe_added *tok, size_t n, int normalized);
void bpe_added_set_free(bpe_added_set *set);
/* Splits s into gaps and added tokens as tokenizers' AddedVocabulary does: calls gap for
 * each stretch of text between matches, pushes each match's id to out. */
typedef int (*bpe_gap_fn)(void *ctx, const char *s, size_t n, mtp_err *err);
int bpe_added_split(const bpe_added_set *set, const char *s, size_t n, bpe_gap_fn gap,
                    void *ctx, mtp_tokbuf *out, mtp_err *err);

/* ---- the pre-tokenizer (pretok.c) ------------------------------------------------------ */
typedef enum { BPE_STEP_SPLIT, BPE_STEP_BYTELEVEL } bpe_step_kind;
typedef struct {
    bpe_step_kind kind;
    pcre2_code *re;       /* Split's pattern, or GPT-2's for ByteLevel with use_regex; or NULL */
    int add_prefix_space; /* ByteLevel: a piece not starting with ' ' gets one */
} bpe_step;
#define BPE_MAX_STEPS 8
typedef struct {
    bpe_step steps[BPE_MAX_STEPS];
    int n_steps; /* the last is the one ByteLevel step */
    pcre2_match_context *mctx; /* a match limit, so a pathological pattern fails, not hangs */
} bpe_pretok;
/* Compiles a pre-tokenizer's pattern (regex: Oniguruma syntax as tokenizers uses, turned
 * into PCRE2's; else a literal string). On failure err says PCRE2's message and offset. */
pcre2_code *bpe_pretok_compile(const char *pattern, int regex, const char *what, mtp_err *err);
/* The pattern of GPT-2's split, used by ByteLevel with use_regex. */
extern const char bpe_gpt2_pattern[];
/* Splits s (valid UTF-8) into pre-tokens, calls piece with each one's byte-level form. */
typedef void (*bpe_piece_fn)(void *ctx, const char *s, size_t n);
int bpe_pretok_run(const bpe_pretok *p, const char *s, size_t n, bpe_piece_fn piece, void *ctx,
                   mtp_err *err);
void bpe_pretok_free(bpe_pretok *p);

/* ---- GPT-2's byte <-> character map (bytelevel.c) -------------------------------------- */
/* Appends the byte-level form of s (each byte one character, 2 bytes of UTF-8 at most). */
size_t bpe_bytelevel_encode(const char *s, size_t n, char *out); /* out: 2n bytes */
/* The bytes a stored token (n bytes of valid UTF-8) stands for, written to out (room for
 * n bytes) and counted in the result: each character mapped back when all of them are
 * byte-level characters, else the token's own UTF-8 (as tokenizers' decoder does). */
size_t bpe_bytelevel_decode(const char *tok, size_t n, char *out);

/* ---- the whole tokenizer --------------------------------------------------------------- */
typedef struct {
    bpe_model model;
    int nfc; /* the normalizer is NFC */
    bpe_pretok pretok;
    bpe_added *added; /* (n_added) */
    size_t n_added;
    bpe_added_set raw_set, norm_set;
    char **pieces;        /* (vocab_size) into piece_pool */
    char *piece_pool;
    uint32_t *dec_off;    /* (vocab_size + 1) id i decodes to dec_pool[dec_off[i] .. dec_off[i+1]) */
    char *dec_pool;
} bpe_impl;

int bpe_encode(const mtp_tokenizer *t, const char *text, size_t n, mtp_tokbuf *out, mtp_err *err);
const char *bpe_token_bytes(const mtp_tokenizer *t, mtp_token id, int *first, size_t *n);
void bpe_impl_free(void *impl);

#endif
