/* utf8.c: see utf8.h. */
#include "text/utf8.h"

#include <string.h>

/* The second byte's allowed range depends on the lead byte (Unicode Table 3-7): this is
 * what rules out overlong forms, surrogates and code points past U+10FFFF. */
static int second_ok(uint8_t lead, uint8_t b) {
    switch (lead) {
    case 0xE0: return b >= 0xA0 && b <= 0xBF;
    case 0xED: return b >= 0x80 && b <= 0x9F;
    case 0xF0: return b >= 0x90 && b <= 0xBF;
    case 0xF4: return b >= 0x80 && b <= 0x8F;
    default: return b >= 0x80 && b <= 0xBF;
    }
}

static size_t lead_len(uint8_t c) {
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return 2;
    if (c >= 0xE0 && c <= 0xEF) return 3;
    if (c >= 0xF0 && c <= 0xF4) return 4;
    return 0; /* continuation byte, C0, C1, F5..FF: never starts a character */
}

/* How many bytes of s[0..n) (up to the lead's length) follow the rules for a character. */
static size_t valid_prefix(const uint8_t *s, size_t n, size_t want) {
    size_t k = 1;
    while (k < want && k < n) {
        int ok = k == 1 ? second_ok(s[0], s[1]) : (s[k] & 0xC0) == 0x80;
        if (!ok) break;
        k++;
    }
    return k;
}

int32_t mtp_utf8_decode(const uint8_t *s, size_t n, size_t *len) {
    *len = 1;
    size_t want = lead_len(s[0]);
    if (want == 1) return s[0];
    if (want == 0 || valid_prefix(s, n, want) < want) return -1;
    uint32_t c = s[0] & (0x7F >> want);
    for (size_t k = 1; k < want; k++) c = c << 6 | (s[k] & 0x3F);
    *len = want;
    return (int32_t)c;
}

int mtp_utf8_valid(const uint8_t *s, size_t n) {
    for (size_t i = 0, len; i < n; i += len)
        if (mtp_utf8_decode(s + i, n - i, &len) < 0) return 0;
    return 1;
}

size_t mtp_utf8_char_len(const uint8_t *s, size_t n) {
    static const uint8_t LEN[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    size_t l = LEN[s[0] >> 4];
    return l < n ? l : n;
}

size_t mtp_utf8_encode(uint32_t c, uint8_t *out) {
    if (c < 0x80) {
        out[0] = (uint8_t)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (uint8_t)(0xC0 | c >> 6);
        out[1] = (uint8_t)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (uint8_t)(0xE0 | c >> 12);
        out[1] = (uint8_t)(0x80 | (c >> 6 & 0x3F));
        out[2] = (uint8_t)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | c >> 18);
    out[1] = (uint8_t)(0x80 | (c >> 12 & 0x3F));
    out[2] = (uint8_t)(0x80 | (c >> 6 & 0x3F));
    out[3] = (uint8_t)(0x80 | (c & 0x3F));
    return 4;
}

size_t mtp_utf8_incomplete_tail(const uint8_t *s, size_t n) {
    /* A character is at most 4 bytes, so only the last 3 can be an unfinished one. */
    for (size_t k = 1; k <= 3 && k <= n; k++) {
        const uint8_t *p = s + n - k;
        size_t want = lead_len(p[0]);
        if (want == 0) continue; /* a continuation byte: look further back */
        return want > k && valid_prefix(p, k, want) == k ? k : 0;
    }
    return 0;
}

size_t mtp_utf8_invalid_run(const uint8_t *s, size_t n) {
    size_t want = lead_len(s[0]);
    if (want < 2) return 1;
    return valid_prefix(s, n, want);
}

size_t mtp_utf8_fix(const uint8_t *s, size_t n, int lossy, uint8_t *out) {
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] < 0x80) { /* the common case first */
            out[o++] = s[i++];
            continue;
        }
        size_t len;
        if (mtp_utf8_decode(s + i, n - i, &len) >= 0) {
            memcpy(out + o, s + i, len);
            o += len, i += len;
            continue;
        }
        out[o++] = 0xEF, out[o++] = 0xBF, out[o++] = 0xBD;
        i += lossy ? mtp_utf8_invalid_run(s + i, n - i) : 1;
    }
    return o;
}
