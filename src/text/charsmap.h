/* charsmap.h: SentencePiece's precompiled normalization rules (normalizer_spec's
 * precompiled_charsmap, e.g. nmt_nfkc): a double-array trie (the darts-clone layout)
 * mapping input byte strings to offsets of NUL-terminated replacements.
 * The blob: uint32 little-endian trie size in bytes, the trie's 32-bit units, then the
 * replacement strings. Read in place; every index is checked, so a corrupt blob can make a
 * lookup fail but never read outside the blob. */
#ifndef MTP_TEXT_CHARSMAP_H
#define MTP_TEXT_CHARSMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t *units; /* (n_units) copied out of the blob (alignment) */
    size_t n_units;
    char *strings; /* (n_strings) the replacements, NUL-terminated; strings[n_strings-1] == 0 */
    size_t n_strings;
} mtp_charsmap;

/* Reads the blob; -1 with a reason in *why (static) when it is malformed. */
int mtp_charsmap_init(mtp_charsmap *m, const uint8_t *blob, size_t n, const char **why);
void mtp_charsmap_free(mtp_charsmap *m);

/* The longest rule matching a prefix of s[0..n): returns its length (0: none) and its
 * replacement in *out (NUL-terminated, possibly empty); -1 when the trie points outside
 * the blob. Of the matches only the first 32 (shortest) count, as in SentencePiece. */
int mtp_charsmap_match(const mtp_charsmap *m, const uint8_t *s, size_t n, const char **out);

#endif
