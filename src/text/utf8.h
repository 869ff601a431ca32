/* utf8.h: strict UTF-8 decoding and the two ways tokenizers repair invalid bytes, shared by
 * the tokenizer models (spm.c, bpe.c) and decoding (tokenizer.c).
 * "Strict" is Unicode's definition (no overlong forms, no surrogates, nothing past
 * U+10FFFF), which is also what SentencePiece accepts. */
#ifndef MTP_TEXT_UTF8_H
#define MTP_TEXT_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* The code point of the valid character at s (n > 0 bytes available) and its length in
 * *len, or -1 with *len = 1 when s does not start a valid character. */
int32_t mtp_utf8_decode(const uint8_t *s, size_t n, size_t *len);

/* Whether all of s[0..n) is valid UTF-8. */
int mtp_utf8_valid(const uint8_t *s, size_t n);

/* The length a lead byte announces (1 for ASCII, continuation and invalid bytes; 2, 3 or
 * 4 otherwise), as SentencePiece steps through text, clipped to n. */
size_t mtp_utf8_char_len(const uint8_t *s, size_t n);

/* Writes c (<= U+10FFFF) as UTF-8 into out (4 bytes room); returns its length. */
size_t mtp_utf8_encode(uint32_t c, uint8_t *out);

/* How many bytes at the end of s[0..n) could still become a valid character when more
 * bytes follow (0..3): a streaming decoder holds them back. */
size_t mtp_utf8_incomplete_tail(const uint8_t *s, size_t n);

/* The length of the maximal prefix of s that is a proper prefix of some valid character
 * (at least 1): what Rust's from_utf8_lossy replaces by one U+FFFD. s must not start a
 * valid character. */
size_t mtp_utf8_invalid_run(const uint8_t *s, size_t n);

/* Copies s[0..n) to out (3 * n bytes of room), each invalid byte (lossy == 0: SentencePiece)
 * or maximal invalid run (lossy != 0: Rust's from_utf8_lossy) replaced by U+FFFD; returns
 * the bytes written. */
size_t mtp_utf8_fix(const uint8_t *s, size_t n, int lossy, uint8_t *out);

#endif
