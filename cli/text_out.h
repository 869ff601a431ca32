/* text_out.h: generated text on its way out, shared by mtp generate and mtp serve: stop
 * strings, and bytes made safe for JSON. */
#ifndef MTP_CLI_TEXT_OUT_H
#define MTP_CLI_TEXT_OUT_H

#include <stddef.h>

#include "mtp.h"

/* Bytes as a JSON-safe UTF-8 string (malloc'd): invalid sequences (overlong forms,
 * surrogates, beyond U+10FFFF, stray bytes) become U+FFFD. */
char *cli_utf8_clean(const unsigned char *t, size_t n);

#define CLI_NO_STOP ((size_t)-1)
/* Where text (len bytes) is cut by a stop string that ends in its last `fresh` bytes: at
 * the earliest such match of any of them; CLI_NO_STOP when none does. */
size_t cli_find_stop(const char *text, size_t len, size_t fresh, const char *const *stop, int n_stop);

/* The longest prefix of text that does not end inside a UTF-8 character still being
 * written (bytes of it may follow). */
size_t cli_utf8_complete(const char *text, size_t len);

/* A sequence's text as its tokens arrive: decoded (detok), or a token is its byte (detok
 * NULL: a byte-level model); cut where a stop string begins. Zero-initialise, set detok. */
typedef struct {
    char *text; /* NUL-terminated, len bytes */
    size_t len, cap;
    mtp_detok *detok;
    int stopped; /* a stop string ended it */
} cli_text;

/* Adds one token's text; 1 when the text now holds a stop string (and is cut before it). */
int cli_text_add(cli_text *t, mtp_token tok, const char *const *stop, int n_stop);
/* At the sequence's end: the bytes the decoder still holds, checked for stop strings too. */
void cli_text_finish(cli_text *t, const char *const *stop, int n_stop);
void cli_text_free(cli_text *t); /* frees detok too */

#endif
