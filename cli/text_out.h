/* text_out.h: generated text on its way out, shared by mtp generate and mtp serve: stop
 * strings, and bytes made safe for JSON. */
#ifndef MTP_CLI_TEXT_OUT_H
#define MTP_CLI_TEXT_OUT_H

#include <stddef.h>

/* Bytes as a JSON-safe UTF-8 string (malloc'd): invalid sequences (overlong forms,
 * surrogates, beyond U+10FFFF, stray bytes) become U+FFFD. */
char *cli_utf8_clean(const unsigned char *t, size_t n);

#define CLI_NO_STOP ((size_t)-1)
/* Where text (len bytes) is cut by the first of the stop strings, in their order, that
 * ends in its last `fresh` bytes; CLI_NO_STOP when none does. */
size_t cli_find_stop(const char *text, size_t len, size_t fresh, const char *const *stop, int n_stop);

/* The longest prefix of text that does not end inside a UTF-8 character still being
 * written (bytes of it may follow). */
size_t cli_utf8_complete(const char *text, size_t len);

#endif
