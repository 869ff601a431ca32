/* spm.h: SentencePiece models inside the text layer: what spm.c reads from a ModelProto
 * and what the normalizer (spm_normalize.c) and the segmenters (spm_encode.c) use.
 * Mirrors SentencePiece 0.1.97's behaviour; docs/tokenizers.md says what is read and what
 * is refused. */
#ifndef MTP_TEXT_SPM_H
#define MTP_TEXT_SPM_H

#include <stddef.h>
#include <stdint.h>

#include "text/charsmap.h"
#include "text/strmap.h"
#include "text/tokenizer_impl.h"

/* ModelProto.SentencePiece.Type */
enum { SPM_NORMAL = 1, SPM_UNKNOWN = 2, SPM_CONTROL = 3, SPM_USER_DEFINED = 4, SPM_UNUSED = 5, SPM_BYTE = 6 };
/* TrainerSpec.ModelType */
enum { SPM_UNIGRAM = 1, SPM_BPE = 2, SPM_WORD = 3, SPM_CHAR = 4 };

typedef struct {
    int n;             /* pieces */
    char **piece;      /* (n) NUL-terminated (no piece holds a NUL: refused at load) */
    uint32_t *len;     /* (n) bytes of each piece */
    float *score;      /* (n) */
    uint8_t *type;     /* (n) SPM_NORMAL .. SPM_BYTE */
    char **surface;    /* (n) what each id decodes to: U+2581 -> ' ', bytes, "" for control */
    uint32_t *surface_len;
    mtp_strmap normal;   /* NORMAL, USER_DEFINED, UNUSED pieces -> id (SentencePiece's pieces_) */
    mtp_strmap reserved; /* CONTROL, UNKNOWN, BYTE pieces -> id (reserved_id_map_) */
    mtp_strmap user;     /* every prefix of a user-defined piece -> its id, or -1 for a
                            proper prefix only: longest-match walks forward while present */
    mtp_strmap lattice;  /* unigram: every prefix of a piece in `normal` -> id or -1 */
    int has_user, has_unused;
    uint8_t splits[256]; /* BPE: ASCII bytes in no NORMAL, USER_DEFINED or UNUSED piece */
    int unk;              /* the UNKNOWN piece's id */
    int byte_id[256];     /* byte_fallback: the id of <0xNN> */
    int model_type, byte_fallback, treat_ws_suffix;
    int add_dummy_prefix, remove_extra_ws, escape_ws;
    int has_charsmap;
    mtp_charsmap charsmap;
    float min_score, max_score; /* unigram: over NORMAL pieces (max starts at FLT_MIN, as there) */
} spm_model;

/* The normalized text of in[0..n) (malloc'd, *out_n bytes): user-defined pieces kept as
 * they are, the charsmap's rules applied, invalid bytes -> U+FFFD, spaces -> U+2581, the
 * dummy prefix added, extra spaces removed, as the model's normalizer_spec says. */
int spm_normalize(const spm_model *m, const char *in, size_t n, char **out, size_t *out_n,
                  mtp_err *err);

/* Longest user-defined piece at s[0..n): its length, or 0. */
size_t spm_match_user(const spm_model *m, const char *s, size_t n);

/* SentencePiece's PieceToId: reserved pieces first, then the others, else unk. */
int spm_piece_id(const spm_model *m, const char *s, size_t n);

/* The ids of normalized text (BPE merges or unigram Viterbi), unknown pieces turned into
 * bytes (byte_fallback) or merged into one unk. */
/* The most normalized bytes encoded at once (the lattice and the symbols are indexed by
 * 32-bit positions and take 12-20 bytes per byte): a longer text is refused. */
#define SPM_MAX_TEXT ((size_t)1 << 30)
void spm_encode_normalized(const spm_model *m, const char *s, size_t n, mtp_tokbuf *out);

#endif
