/* text_out.c: see text_out.h. */
#include "text_out.h"

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
    for (int k = 0; k < n_stop; k++) {
        size_t sl = strlen(stop[k]), from = len - fresh >= sl ? len - fresh - sl + 1 : 0;
        for (size_t i = from; i + sl <= len; i++)
            if (!memcmp(text + i, stop[k], sl)) return i;
    }
    return CLI_NO_STOP;
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
