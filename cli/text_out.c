/* text_out.c: see text_out.h. */
#include "text_out.h"

#include <stdlib.h>
#include <string.h>

#include "args.h"

/* Bytes as a JSON-safe UTF-8 string: invalid sequences (overlong forms, surrogates,
 * beyond U+10FFFF, stray bytes) become U+FFFD. */
char *cli_utf8_clean(const unsigned char *t, size_t n) {
    char *out = cli_realloc(NULL, (size_t)n * 3 + 1), *w = out;
    for (size_t i = 0; i < n;) {
        int b = t[i];
        int len = b < 0x80 ? 1 : b >= 0xC2 && b <= 0xDF ? 2 : b >= 0xE0 && b <= 0xEF ? 3 : b >= 0xF0 && b <= 0xF4 ? 4 : 0;
        int ok = len > 0 && i + len <= n && b > 0;
        for (int k = 1; ok && k < len; k++) ok = (t[i + k] & 0xC0) == 0x80;
        if (ok && len > 2) { /* the second byte's range after E0, ED, F0, F4 */
            int c = t[i + 1];
            ok = !(b == 0xE0 && c < 0xA0) && !(b == 0xED && c > 0x9F) && !(b == 0xF0 && c < 0x90) &&
                 !(b == 0xF4 && c > 0x8F);
        }
        if (ok) {
            for (int k = 0; k < len; k++) *w++ = (char)t[i + k];
            i += len;
        } else {
            memcpy(w, "\xEF\xBF\xBD", 3);
            w += 3;
            i++;
        }
    }
    *w = 0;
    return out;
}

size_t cli_find_stop(const char *text, size_t len, size_t fresh, const char *const *stop, int n_stop) {
    size_t at = CLI_NO_STOP;
    for (int k = 0; k < n_stop; k++) {
        size_t sl = strlen(stop[k]), from = len - fresh >= sl ? len - fresh - sl + 1 : 0;
        for (size_t i = from; i + sl <= len && i < at; i++)
            if (!memcmp(text + i, stop[k], sl)) at = i;
    }
    return at;
}

static void text_append(cli_text *t, const char *b, size_t n) {
    if (t->len + n + 1 > t->cap) t->text = cli_realloc(t->text, t->cap = 2 * (t->len + n + 1));
    memcpy(t->text + t->len, b, n);
    t->len += n;
    t->text[t->len] = 0;
}

/* The text now ending in `fresh` new bytes is cut at a stop string in them: 1 if it was. */
static int text_cut(cli_text *t, size_t fresh, const char *const *stop, int n_stop) {
    size_t at = n_stop ? cli_find_stop(t->text, t->len, fresh, stop, n_stop) : CLI_NO_STOP;
    if (at == CLI_NO_STOP) return 0;
    t->len = at;
    t->text[at] = 0;
    return t->stopped = 1;
}

int cli_text_add(cli_text *t, mtp_token tok, const char *const *stop, int n_stop) {
    size_t before = t->len;
    if (!t->detok) {
        char b = (char)tok;
        text_append(t, &b, 1);
    } else {
        const char *s;
        size_t n;
        mtp_err err;
        if (mtp_detok_push(t->detok, &tok, 1, &s, &n, &err) == 0) {
            text_append(t, s, n);
        } else { /* an id of the model's vocabulary past the tokenizer's: what the decoder
                  * holds comes first, then the replacement character */
            mtp_detok_finish(t->detok, &s, &n);
            text_append(t, s, n);
            text_append(t, "\xEF\xBF\xBD", 3);
        }
    }
    return text_cut(t, t->len - before, stop, n_stop);
}

void cli_text_finish(cli_text *t, const char *const *stop, int n_stop) {
    if (!t->detok || t->stopped) return;
    const char *s;
    size_t n, before = t->len;
    mtp_detok_finish(t->detok, &s, &n);
    text_append(t, s, n);
    text_cut(t, t->len - before, stop, n_stop);
}

void cli_text_free(cli_text *t) {
    mtp_detok_free(t->detok);
    free(t->text);
    memset(t, 0, sizeof *t);
}

size_t cli_utf8_complete(const char *text, size_t len) {
    for (size_t back = 1; back <= 3 && back <= len; back++) {
        int b = (unsigned char)text[len - back];
        if ((b & 0xC0) == 0x80) continue; /* a continuation byte: look further back */
        size_t need = b >= 0xF5 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC2 ? 2 : 1;
        return need > back ? len - back : len;
    }
    return len;
}
