/* spm_normalize.c: SentencePiece's Normalizer::Normalize, step by step: the input is cut
 * into prefixes (a user-defined piece, else the longest charsmap rule, else one
 * character, an invalid byte becoming U+FFFD), each prefix's replacement is appended with
 * spaces escaped to U+2581, leading, repeated and trailing spaces dropped when
 * remove_extra_whitespaces, and the dummy prefix (or suffix) space added.
 * Offsets back into the input (SentencePiece's norm_to_orig) are not kept: ids do not
 * depend on them. */
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "text/spm.h"
#include "text/utf8.h"

static const char SPACE[] = "\xe2\x96\x81";

size_t spm_match_user(const spm_model *m, const char *s, size_t n) {
    if (!m->has_user) return 0;
    uint32_t h = MTP_FNV_INIT;
    size_t best = 0;
    for (size_t l = 0; l < n; l++) {
        h = mtp_fnv_step(h, (uint8_t)s[l]);
        const mtp_strmap_slot *sl = mtp_strmap_find(&m->user, s, l + 1, h);
        if (!sl) break;
        if (sl->value >= 0) best = l + 1;
    }
    return best;
}

/* The next prefix of in[0..n): its length, and its replacement in (*rep, *rep_n). */
static int prefix(const spm_model *m, const char *in, size_t n, const char **rep, size_t *rep_n,
                  mtp_err *err) {
    size_t l = spm_match_user(m, in, n);
    if (l) {
        *rep = in, *rep_n = l;
        return (int)l;
    }
    if (m->has_charsmap) {
        const char *r;
        int k = mtp_charsmap_match(&m->charsmap, (const uint8_t *)in, n, &r);
        if (k < 0) return mtp_fail(err, "SentencePiece model: its precompiled_charsmap points outside itself");
        if (k > 0) {
            *rep = r, *rep_n = strlen(r);
            return k;
        }
    }
    if (mtp_utf8_decode((const uint8_t *)in, n, &l) < 0) {
        *rep = "\xef\xbf\xbd", *rep_n = 3; /* an invalid byte: U+FFFD, one byte consumed */
        return 1;
    }
    *rep = in, *rep_n = l;
    return (int)l;
}

int spm_normalize(const spm_model *m, const char *in, size_t n, char **out, size_t *out_n,
                  mtp_err *err) {
    *out = NULL;
    *out_n = 0;
    const char *rep;
    size_t rep_n;
    int k;
    if (m->remove_extra_ws) {
        while (n) {
            if ((k = prefix(m, in, n, &rep, &rep_n, err)) < 0) return -1;
            if (rep_n != 1 || rep[0] != ' ') break;
            in += k, n -= (size_t)k;
        }
    }
    if (!n) return 0;
    /* a replacement is at most as long as the longest rule's output; grow as needed */
    size_t cap = 3 * n + 8, o = 0;
    char *buf = xmalloc(cap);
    const char *ws = m->escape_ws ? SPACE : " ";
    size_t ws_n = m->escape_ws ? 3 : 1;
    if (!m->treat_ws_suffix && m->add_dummy_prefix) memcpy(buf, ws, ws_n), o = ws_n;
    int prev_space = m->remove_extra_ws;
    while (n) {
        if ((k = prefix(m, in, n, &rep, &rep_n, err)) < 0) {
            free(buf);
            return -1;
        }
        while (prev_space && rep_n && rep[0] == ' ') rep++, rep_n--;
        if (rep_n) {
            if (cap - o < 3 * rep_n + 8) {
                cap = 2 * cap + 3 * rep_n + 8;
                buf = xrealloc(buf, cap);
            }
            for (size_t j = 0; j < rep_n; j++) {
                if (m->escape_ws && rep[j] == ' ') memcpy(buf + o, SPACE, 3), o += 3;
                else buf[o++] = rep[j];
            }
            prev_space = rep[rep_n - 1] == ' ';
        }
        in += k, n -= (size_t)k;
        if (!m->remove_extra_ws) prev_space = 0;
    }
    if (m->remove_extra_ws)
        while (o >= ws_n && !memcmp(buf + o - ws_n, ws, ws_n)) o -= ws_n;
    if (m->treat_ws_suffix && m->add_dummy_prefix) memcpy(buf + o, ws, ws_n), o += ws_n;
    *out = buf;
    *out_n = o;
    return 0;
}
