/* bpe_added.c: a tokenizer.json's added tokens (<|endoftext|>, <|begin_of_text|>, ...),
 * found in the text before it is pre-tokenized, as tokenizers' AddedVocabulary does:
 * matches are leftmost-longest and do not overlap (its Aho-Corasick automaton), found
 * first and judged after: a single_word token next to a word character is dropped (its
 * text then goes to the gap, and nothing inside it matches), lstrip takes the whitespace
 * before the token into it (never past the previous match), rstrip the whitespace after.
 * "Word character" and "whitespace" are Rust regex's Unicode \w and \s, from libunistring's
 * property tables. Not an automaton: candidates are looked up by their first byte, which
 * costs little for the few hundred tokens such files have. */
#include <stdlib.h>
#include <string.h>
#include <unictype.h>
#include <unistr.h>

#include "core/util.h"
#include "text/bpe.h"

/* Rust regex's \w: Alphabetic, marks, decimal digits, connector punctuation, joiners. */
static int word_char(ucs4_t c) {
    return uc_is_property_alphabetic(c) || uc_is_property_join_control(c) ||
           uc_is_general_category(c, uc_general_category_or(UC_CATEGORY_M,
                                                            uc_general_category_or(UC_CATEGORY_Nd,
                                                                                   UC_CATEGORY_Pc)));
}

static int ends_with_word(const char *s, size_t n) {
    ucs4_t c;
    const uint8_t *u = (const uint8_t *)s;
    return n > 0 && u8_prev(&c, u + n, u) && word_char(c);
}

static int starts_with_word(const char *s, size_t n) {
    ucs4_t c;
    return n > 0 && u8_mbtouc(&c, (const uint8_t *)s, n) > 0 && word_char(c);
}

/* Where the whitespace that ends s[0, n) begins. */
static size_t trailing_space_start(const char *s, size_t n) {
    const uint8_t *u = (const uint8_t *)s, *p = u + n, *q;
    ucs4_t c;
    while (p > u && (q = u8_prev(&c, p, u)) && uc_is_property_white_space(c)) p = q;
    return (size_t)(p - u);
}

/* How many bytes of whitespace s[0, n) starts with. */
static size_t leading_space_len(const char *s, size_t n) {
    size_t i = 0;
    ucs4_t c;
    while (i < n) {
        int l = u8_mbtouc(&c, (const uint8_t *)s + i, n - i);
        if (l <= 0 || !uc_is_property_white_space(c)) break;
        i += (size_t)l;
    }
    return i;
}

static int by_first_byte_longest(const void *a, const void *b) {
    const bpe_added *x = *(const bpe_added *const *)a, *y = *(const bpe_added *const *)b;
    unsigned char fx = (unsigned char)x->content[0], fy = (unsigned char)y->content[0];
    if (fx != fy) return fx < fy ? -1 : 1;
    return x->n != y->n ? (x->n > y->n ? -1 : 1) : 0;
}

void bpe_added_set_build(bpe_added_set *set, const bpe_added *tok, size_t n, int normalized) {
    set->list = xmalloc((n + 1) * sizeof *set->list);
    set->n = 0;
    for (size_t i = 0; i < n; i++)
        if (tok[i].n > 0 && !tok[i].normalized == !normalized) set->list[set->n++] = &tok[i];
    qsort(set->list, set->n, sizeof *set->list, by_first_byte_longest);
    size_t k = 0;
    for (unsigned b = 0; b <= 256; b++) {
        while (k < set->n && (unsigned char)set->list[k]->content[0] < b) k++;
        set->start[b] = (uint32_t)k;
    }
}

void bpe_added_set_free(bpe_added_set *set) {
    free(set->list);
    set->list = NULL;
    set->n = 0;
}

/* The leftmost-longest match at or after *pos, or NULL. */
static const bpe_added *next_match(const bpe_added_set *set, const char *s, size_t n, size_t *pos) {
    for (size_t i = *pos; i < n; i++) {
        unsigned b = (unsigned char)s[i];
        for (uint32_t k = set->start[b]; k < set->start[b + 1]; k++) {
            const bpe_added *a = set->list[k];
            if (a->n <= n - i && memcmp(s + i, a->content, a->n) == 0) {
                *pos = i;
                return a;
            }
        }
    }
    return NULL;
}

int bpe_added_split(const bpe_added_set *set, const char *s, size_t n, bpe_gap_fn gap,
                    void *ctx, mtp_tokbuf *out, mtp_err *err) {
    size_t done = 0;  /* text before this is consumed (tokenizers' start_offset) */
    size_t from = 0;  /* where the matcher looks next: the end of its last match */
    const bpe_added *a;
    size_t at = 0;
    while (set->n && (at = from, a = next_match(set, s, n, &at))) {
        size_t start = at, stop = at + a->n;
        from = stop;
        if (a->single_word && ((start > 0 && ends_with_word(s, start)) ||
                               (stop < n && starts_with_word(s + stop, n - stop))))
            continue;
        if (a->lstrip) {
            size_t ls = trailing_space_start(s, start);
            start = ls > done ? ls : done;
        }
        if (a->rstrip) stop += leading_space_len(s + stop, n - stop);
        if (done < start && gap(ctx, s + done, start - done, err)) return -1;
        mtp_tokbuf_push(out, (mtp_token)a->id);
        done = stop;
    }
    if (done < n && gap(ctx, s + done, n - done, err)) return -1;
    return 0;
}
