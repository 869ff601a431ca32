/* bytelevel.c: GPT-2's map between bytes and characters (its bytes_to_unicode), which
 * byte-level BPE vocabularies are written in: the printable bytes ! to ~, ¡ to ¬ and ® to ÿ
 * stand for themselves; the other 68 bytes, in order, become U+0100 onwards (space 0x20
 * is U+0120 'Ġ', newline U+010A 'Ċ'). Every such character is below U+0800, so it takes
 * at most 2 bytes of UTF-8. Computed, not tabled: the rule is three ranges. */
#include "text/bpe.h"
#include "text/utf8.h"

static int printable(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

/* The character standing for byte b. */
static uint32_t byte_char(unsigned b) {
    if (printable(b)) return b;
    if (b <= 0x20) return 0x100 + b;              /* 33 control bytes and space */
    if (b <= 0xA0) return 0x100 + 33 + (b - 0x7F); /* DEL, 0x80-0x9F, NBSP: 34 */
    return 0x100 + 33 + 34;                         /* 0xAD, the soft hyphen */
}

/* The byte character c stands for, or -1. */
static int char_byte(uint32_t c) {
    if (c < 0x100) return printable(c) ? (int)c : -1;
    if (c <= 0x120) return (int)(c - 0x100);
    if (c <= 0x142) return (int)(c - 0x121 + 0x7F);
    return c == 0x143 ? 0xAD : -1;
}

size_t bpe_bytelevel_encode(const char *s, size_t n, char *out) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = byte_char((unsigned char)s[i]);
        if (c < 0x80) {
            out[k++] = (char)c;
        } else {
            out[k++] = (char)(0xC0 | c >> 6);
            out[k++] = (char)(0x80 | (c & 0x3F));
        }
    }
    return k;
}

size_t bpe_bytelevel_decode(const char *tok, size_t n, char *out) {
    const unsigned char *u = (const unsigned char *)tok;
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        size_t l;
        int32_t c = mtp_utf8_decode(u + i, n - i, &l);
        int b = c >= 0 ? char_byte((uint32_t)c) : -1;
        if (b < 0) { /* not all byte-level: the token stands for its own text */
            for (size_t j = 0; j < n; j++) out[j] = tok[j];
            return n;
        }
        out[k++] = (char)b;
        i += l;
    }
    return k;
}
