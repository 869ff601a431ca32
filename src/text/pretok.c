/* pretok.c: the pre-tokenizer of a byte-level BPE tokenizer.json: zero or more Split steps
 * (a regex whose matches, and the text between them, become pieces: tokenizers' "Isolated"
 * behaviour) and last the ByteLevel step (an optional space before each piece, GPT-2's
 * split when use_regex, then each byte as its GPT-2 character). Each step splits every
 * piece the step before made; empty pieces are dropped, as tokenizers drops them.
 * tokenizers' regexes are Oniguruma's, run here by PCRE2 with Unicode properties; the one
 * difference that matters for these patterns is \s, which in Oniguruma also matches U+0085
 * (NEXT LINE), so compile() widens it. Empty matches are taken as Oniguruma's iterator
 * takes them: never one right where the previous match ended. */
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "text/bpe.h"
#include "text/utf8.h"

const char bpe_gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* Oniguruma's \s and \S in PCRE2 terms: \s outside a class becomes [\s\x{85}], inside one
 * \s\x{85}; \S outside a class becomes [^\s\x{85}] (inside a class it stays as it is: no
 * pattern in use has one there). Returns a malloc'd pattern, or NULL with *bad naming a
 * construct the two libraries read differently (^ and $ are line anchors in Oniguruma's
 * syntax, \h a hex digit): such a pattern is refused rather than split otherwise. */
static char *onig_to_pcre2(const char *p, const char **bad) {
    size_t n = strlen(p);
    char *o = xmalloc(6 * n + 1), *w = o; /* "\s" grows to at most 12 bytes */
    int in_class = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '\\' && i + 1 < n) {
            char e = p[++i];
            if (e == 'h' || e == 'H') {
                free(o);
                *bad = e == 'h' ? "\\h" : "\\H";
                return NULL;
            }
            if (e == 's' && !in_class) w += sprintf(w, "[\\s\\x{85}]");
            else if (e == 's') w += sprintf(w, "\\s\\x{85}");
            else if (e == 'S' && !in_class) w += sprintf(w, "[^\\s\\x{85}]");
            else {
                *w++ = c;
                *w++ = e;
            }
            continue;
        }
        if (!in_class && (c == '^' || c == '$')) {
            free(o);
            *bad = c == '^' ? "^" : "$";
            return NULL;
        }
        *w++ = c;
        if (!in_class && c == '[') {
            in_class = 1;
            /* a ']' first in a class (after an optional '^') is a literal */
            if (p[i + 1] == '^') *w++ = p[++i];
            if (p[i + 1] == ']') *w++ = p[++i];
        } else if (in_class && c == '[' && p[i + 1] == ':') { /* [:alpha:] inside a class */
            const char *end = strstr(p + i + 2, ":]");
            if (end) {
                size_t len = (size_t)(end + 2 - (p + i + 1));
                memcpy(w, p + i + 1, len);
                w += len;
                i += len;
            }
        } else if (in_class && c == ']') {
            in_class = 0;
        }
    }
    *w = 0;
    return o;
}

pcre2_code *bpe_pretok_compile(const char *pattern, int regex, const char *what, mtp_err *err) {
    const char *bad = NULL;
    char *p = regex ? onig_to_pcre2(pattern, &bad) : xstrdup(pattern);
    if (!p) {
        mtp_fail(err, "%s: the pre-tokenizer's pattern uses %s, which Oniguruma (tokenizers' regex library) "
                 "reads differently from PCRE2: not supported", what, bad);
        return NULL;
    }
    int code;
    PCRE2_SIZE at;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)p, PCRE2_ZERO_TERMINATED,
                                   regex ? PCRE2_UTF | PCRE2_UCP : PCRE2_UTF | PCRE2_LITERAL, &code,
                                   &at, NULL);
    free(p);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        mtp_fail(err, "%s: the pre-tokenizer's pattern is refused by PCRE2 at offset %zu: %s",
                 what, (size_t)at, (const char *)msg);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* where JIT is not available, interpreted */
    return re;
}

typedef struct {
    const bpe_pretok *p;
    bpe_piece_fn piece;
    void *ctx;
    pcre2_match_data *md;
    char *buf; /* byte-level form of the current piece */
    size_t cap;
    mtp_err *err;
} run_ctx;

static int run_step(run_ctx *r, int k, const char *s, size_t n);

/* The byte-level form of a final piece, handed on. */
static int emit(run_ctx *r, const char *s, size_t n) {
    if (n == 0) return 0;
    if (2 * n > r->cap) {
        r->cap = 2 * n + 64;
        free(r->buf);
        r->buf = xmalloc(r->cap);
    }
    r->piece(r->ctx, r->buf, bpe_bytelevel_encode(s, n, r->buf));
    return 0;
}

/* Pieces of s cut by re, each handed to step k + 1 (or to emit when k is the last step). */
static int split(run_ctx *r, const pcre2_code *re, int k, const char *s, size_t n) {
    int last = k + 1 == r->p->n_steps;
    size_t pos = 0, prev = 0, last_end = (size_t)-1;
    while (pos <= n) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, r->md, r->p->mctx);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return mtp_fail(r->err, "tokenizer: the pre-tokenizer's regex failed: %s",
                            (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
        size_t ms = ov[0], me = ov[1];
        if (ms > me || ms < pos || me > n) /* \K can report such a match */
            return mtp_fail(r->err, "tokenizer: the pre-tokenizer's regex reported a match "
                                    "outside its search (\\K is not supported)");
        if (ms == me && me == last_end) { /* no empty match right after the previous one */
            size_t len = 1;
            if (pos < n) mtp_utf8_decode((const uint8_t *)s + pos, n - pos, &len);
            pos += len;
            continue;
        }
        int rc2 = 0;
        if (prev < ms) rc2 = last ? emit(r, s + prev, ms - prev) : run_step(r, k + 1, s + prev, ms - prev);
        if (!rc2 && ms < me) rc2 = last ? emit(r, s + ms, me - ms) : run_step(r, k + 1, s + ms, me - ms);
        if (rc2) return -1;
        prev = pos = last_end = me;
    }
    if (prev < n) return last ? emit(r, s + prev, n - prev) : run_step(r, k + 1, s + prev, n - prev);
    return 0;
}

static int run_step(run_ctx *r, int k, const char *s, size_t n) {
    const bpe_step *st = &r->p->steps[k];
    if (n == 0) return 0;
    if (st->kind == BPE_STEP_SPLIT) return split(r, st->re, k, s, n);
    /* ByteLevel, the last step */
    char *spaced = NULL;
    if (st->add_prefix_space && s[0] != ' ') {
        spaced = xmalloc(n + 1);
        spaced[0] = ' ';
        memcpy(spaced + 1, s, n);
        s = spaced;
        n++;
    }
    int rc = st->re ? split(r, st->re, k, s, n) : emit(r, s, n);
    free(spaced);
    return rc;
}

int bpe_pretok_run(const bpe_pretok *p, const char *s, size_t n, bpe_piece_fn piece, void *ctx,
                   mtp_err *err) {
    run_ctx r = {p, piece, ctx, pcre2_match_data_create(1, NULL), NULL, 0, err};
    if (!r.md) return mtp_fail(err, "tokenizer: out of memory for a regex match");
    int rc = run_step(&r, 0, s, n);
    pcre2_match_data_free(r.md);
    free(r.buf);
    return rc;
}

void bpe_pretok_free(bpe_pretok *p) {
    for (int k = 0; k < p->n_steps; k++) pcre2_code_free(p->steps[k].re);
    pcre2_match_context_free(p->mctx);
    p->n_steps = 0;
    p->mctx = NULL;
}
