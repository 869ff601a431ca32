/* args.h: shared helpers for the subcommands: strict number parsing that names the flag,
 * and the usage-error convention (message on stderr, exit status 2). */
#ifndef MTP_CLI_ARGS_H
#define MTP_CLI_ARGS_H

#include <stddef.h>
#include <stdint.h>

#include "mtp.h"

#define EXIT_BAD_INPUT 1 /* a file was missing, malformed or out of range */
#define EXIT_USAGE 2     /* a flag was missing or wrong */

/* Each prints "mtp CMD: --flag: ..." and returns -1 on a bad value. */
int arg_int(const char *cmd, const char *flag, const char *s, long lo, long hi, int *out);
int arg_u64(const char *cmd, const char *flag, const char *s, uint64_t *out);
int arg_float(const char *cmd, const char *flag, const char *s, double lo, double hi, float *out);
/* --dtype f32|bf16|q8 */
int arg_dtype(const char *cmd, const char *s, mtp_wtype *t);
/* --precision f32|bf16 */
int arg_precision(const char *cmd, const char *s, mtp_precision *p);
/* Comma-separated floats (e.g. --head-weights 1,0.5,0.5); returns the count or -1. */
int arg_floats(const char *cmd, const char *flag, const char *s, float *out, int max);
/* Prints "mtp CMD: <msg>" and a hint to --help; returns EXIT_USAGE. */
int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* getopt_long with our conventions: no getopt messages; an unknown option or a missing
 * value is reported by options_error naming the offending argument. Use ":" as optstring. */
int options_error(const char *cmd, int c, char **argv);

/* realloc that ends the program with a message when memory runs out (NULL p: malloc). */
void *cli_realloc(void *p, size_t n);

/* Applies --threads and, once, prints which BLAS core and thread count were found. */
void cli_setup_threads(int threads, int announce);

#endif
