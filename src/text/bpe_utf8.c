/* bpe_utf8.c: UTF-8 checks for the byte-level BPE tokenizer. tokenizers works on Rust
 * strings, always valid UTF-8, so its behaviour on other bytes is undefined; mtp makes
 * them U+FFFD first, one per maximal invalid subpart (Unicode's recommended practice, the
 * same as Rust's from_utf8_lossy and every browser's decoder), so an encode never fails on
 * a stray byte. */
#include <string.h>

#include "core/util.h"
#include "text/bpe.h"

int bpe_utf8_next(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned b = s[0];
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    int len;
    unsigned lo = 0x80, hi = 0xBF; /* the range the second byte must fall in */
    if (b >= 0xC2 && b <= 0xDF) len = 2;
    else if (b >= 0xE0 && b <= 0xEF) {
        len = 3;
        if (b == 0xE0) lo = 0xA0;      /* no overlong forms */
        else if (b == 0xED) hi = 0x9F; /* no surrogates */
    } else if (b >= 0xF0 && b <= 0xF4) {
        len = 4;
        if (b == 0xF0) lo = 0x90;
        else if (b == 0xF4) hi = 0x8F; /* nothing past U+10FFFF */
    } else
        return -1;
    uint32_t c = b & (0x7F >> len);
    for (int i = 1; i < len; i++) {
        if ((size_t)i >= n) return -i;
        unsigned x = s[i];
        if (x < (i == 1 ? lo : 0x80) || x > (i == 1 ? hi : 0xBF)) return -i;
        c = c << 6 | (x & 0x3F);
    }
    *cp = c;
    return len;
}

int bpe_utf8_valid(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    uint32_t cp;
    for (size_t i = 0; i < n;) {
        int l = bpe_utf8_next(u + i, n - i, &cp);
        if (l < 0) return 0;
        i += (size_t)l;
    }
    return 1;
}

void bpe_utf8_fix(const char *s, size_t n, char **fixed, size_t *fixed_n) {
    *fixed = NULL;
    *fixed_n = n;
    if (bpe_utf8_valid(s, n)) return;
    const unsigned char *u = (const unsigned char *)s;
    char *o = xmalloc(3 * n + 1); /* each bad byte at worst becomes 3 bytes */
    size_t k = 0;
    uint32_t cp;
    for (size_t i = 0; i < n;) {
        int l = bpe_utf8_next(u + i, n - i, &cp);
        if (l > 0) {
            memcpy(o + k, s + i, (size_t)l);
            k += (size_t)l;
            i += (size_t)l;
        } else {
            memcpy(o + k, "\xEF\xBF\xBD", 3);
            k += 3;
            i += (size_t)-l;
        }
    }
    *fixed = o;
    *fixed_n = k;
}
