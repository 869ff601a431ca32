/* cmd_tokenize.c: `mtp tokenize`: text -> ids (or pieces) with a model's tokenizer, ids ->
 * text with --decode. Each input is also decoded back, whole and one token at a time:
 * whether the ids give the text back is reported on stderr (normalization can change
 * text legitimately), while streaming and whole decoding disagreeing is a bug (exit 1). */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "mtp.h"

static const char *HELP =
    "usage: mtp tokenize (--model M | --tokenizer FILE) (--text S | --file F [--lines]) [options]\n"
    "  Prints the ids of the text (no BOS or EOS added), space separated, and says on stderr\n"
    "  whether they decode back to the text.\n"
    "  --model M          the tokenizer a model file carries\n"
    "  --tokenizer FILE   a tokenizer file: tokenizer.model (SentencePiece) or tokenizer.json\n"
    "  --text S           the text to encode\n"
    "  --file F           the text of file F\n"
    "  --lines            each line of F on its own (without its newline)\n"
    "  --json             one JSON array per input (one per line with --lines)\n"
    "  --pieces           the pieces instead of the ids\n"
    "  --decode           the input holds ids (space or comma separated): print their text\n"
    "  --no-check         skip decoding the ids back (the round-trip and streaming checks)\n";

typedef struct {
    int json, pieces, decode, no_check;
    size_t texts, tokens, differ, first_differ;
} opts;

static void json_string(const char *s, size_t n) {
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c == '\n') fputs("\\n", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c < 0x20 || c == 0x7F) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

/* The text of ids, decoded whole and streamed one id at a time; -1 if either fails or
 * they differ (a bug: streaming must equal the whole). */
static int decode_both(const mtp_tokenizer *tok, const mtp_token *ids, size_t n, char **text,
                       size_t *len, size_t which) {
    mtp_err err;
    if (mtp_detokenize(tok, ids, n, text, len, &err)) {
        fprintf(stderr, "mtp tokenize: input %zu: %s\n", which, err.msg);
        return -1;
    }
    mtp_detok *d = mtp_detok_new(tok, 0);
    size_t got = 0, k;
    const char *piece;
    int bad = 0;
    for (size_t i = 0; i <= n && !bad; i++) {
        if (i < n && mtp_detok_push(d, ids + i, 1, &piece, &k, &err)) {
            fprintf(stderr, "mtp tokenize: input %zu: %s\n", which, err.msg);
            bad = 1;
            break;
        }
        if (i == n) mtp_detok_finish(d, &piece, &k);
        if (got + k > *len || memcmp(*text + got, piece, k)) bad = 1;
        else got += k;
    }
    if (!bad && got != *len) bad = 1;
    mtp_detok_free(d);
    if (bad) {
        fprintf(stderr, "mtp tokenize: input %zu: streaming decode differs from the whole decode\n", which);
        free(*text);
        return -1;
    }
    return 0;
}

static int encode_one(const mtp_tokenizer *tok, opts *o, const char *s, size_t n) {
    mtp_token *ids;
    size_t n_ids;
    mtp_err err;
    size_t which = ++o->texts;
    if (mtp_tokenize(tok, s, n, &ids, &n_ids, &err)) {
        fprintf(stderr, "mtp tokenize: input %zu: %s\n", which, err.msg);
        return -1;
    }
    o->tokens += n_ids;
    if (o->json) putchar('[');
    for (size_t i = 0; i < n_ids; i++) {
        if (i) fputs(o->json ? "," : " ", stdout);
        if (!o->pieces) {
            printf("%u", (unsigned)ids[i]);
            continue;
        }
        const char *p = mtp_tokenizer_piece(tok, ids[i]);
        if (o->json) json_string(p, strlen(p));
        else fputs(p, stdout);
    }
    puts(o->json ? "]" : "");
    if (o->no_check) {
        free(ids);
        return 0;
    }
    char *text;
    size_t len;
    int rc = decode_both(tok, ids, n_ids, &text, &len, which);
    if (!rc) {
        if ((len != n || memcmp(text, s, n)) && !o->differ++) o->first_differ = which;
        free(text);
    }
    free(ids);
    return rc;
}

static int decode_one(const mtp_tokenizer *tok, opts *o, const char *s, size_t n) {
    size_t which = ++o->texts, n_ids = 0, cap = 16;
    mtp_token *ids = cli_realloc(NULL, cap * sizeof *ids);
    char *copy = cli_realloc(NULL, n + 1), *p = copy;
    memcpy(copy, s, n);
    copy[n] = 0;
    for (;;) {
        while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\r' || *p == '\n' || *p == '[' || *p == ']') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        unsigned long v = strtoul(p, &end, 10);
        if (end == p || errno || v > UINT32_MAX || *p == '-') {
            fprintf(stderr, "mtp tokenize: input %zu: expected token ids, got '%.20s'\n", which, p);
            free(copy), free(ids);
            return -1;
        }
        if (n_ids == cap) ids = cli_realloc(ids, (cap *= 2) * sizeof *ids);
        ids[n_ids++] = (mtp_token)v;
        p = end;
    }
    free(copy);
    char *text;
    size_t len;
    int rc = decode_both(tok, ids, n_ids, &text, &len, which);
    free(ids);
    if (rc) return -1;
    o->tokens += n_ids;
    if (o->json) json_string(text, len);
    else fwrite(text, 1, len, stdout);
    putchar('\n');
    free(text);
    return 0;
}

/* The tokenizer to use: a tokenizer file, or the one a model file carries (read without its weights). */
static int load_tokenizer(const char *model, const char *file, mtp_tokenizer **tok) {
    mtp_err err;
    if (model ? mtp_tokenizer_from_model_file(tok, model, &err) : mtp_tokenizer_load(tok, file, &err)) {
        fprintf(stderr, "mtp tokenize: %s\n", err.msg);
        return EXIT_BAD_INPUT;
    }
    return 0;
}

int cmd_tokenize(int argc, char **argv) {
    static const struct option LONG[] = {
        {"model", 1, 0, 'm'}, {"tokenizer", 1, 0, 'k'}, {"text", 1, 0, 't'}, {"file", 1, 0, 'f'},
        {"lines", 0, 0, 'l'}, {"json", 0, 0, 'j'}, {"pieces", 0, 0, 'p'}, {"decode", 0, 0, 'd'},
        {"no-check", 0, 0, 'n'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *model = NULL, *tokfile = NULL, *text = NULL, *file = NULL;
    int lines = 0, c;
    opts o = {0};
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", LONG, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'k': tokfile = optarg; break;
        case 't': text = optarg; break;
        case 'f': file = optarg; break;
        case 'l': lines = 1; break;
        case 'j': o.json = 1; break;
        case 'p': o.pieces = 1; break;
        case 'd': o.decode = 1; break;
        case 'n': o.no_check = 1; break;
        case 'h': fputs(HELP, stdout); return 0;
        default: return options_error("tokenize", c, argv);
        }
    }
    if (optind < argc) return usage_error("tokenize", "unexpected argument '%s'", argv[optind]);
    if (!model == !tokfile) return usage_error("tokenize", "give one of --model and --tokenizer");
    if (!text == !file) return usage_error("tokenize", "give one of --text and --file");
    if (lines && !file) return usage_error("tokenize", "--lines needs --file");
    if (o.pieces && o.decode) return usage_error("tokenize", "--pieces and --decode do not go together");

    mtp_tokenizer *tok;
    int rc = load_tokenizer(model, tokfile, &tok);
    if (rc) return rc;
    char *data = NULL;
    size_t n = 0;
    mtp_err err;
    if (file) {
        if (mtp_read_file(file, &data, &n, &err)) {
            fprintf(stderr, "mtp tokenize: %s\n", err.msg);
            mtp_tokenizer_free(tok);
            return EXIT_BAD_INPUT;
        }
    } else {
        data = strdup(text);
        n = strlen(text);
    }
    int (*one)(const mtp_tokenizer *, opts *, const char *, size_t) = o.decode ? decode_one : encode_one;
    int failed = 0;
    if (lines) {
        /* a final newline ends the last line; it does not start an empty one */
        for (size_t i = 0; i < n && !failed;) {
            const char *nl = memchr(data + i, '\n', n - i);
            size_t end = nl ? (size_t)(nl - data) : n;
            failed = one(tok, &o, data + i, end - i) != 0;
            i = end + 1;
        }
    } else {
        failed = one(tok, &o, data, n) != 0;
    }
    free(data);
    mtp_tokenizer_free(tok);
    if (fflush(stdout)) {
        fprintf(stderr, "mtp tokenize: writing the output failed\n");
        return EXIT_BAD_INPUT;
    }
    if (failed) return EXIT_BAD_INPUT;
    if (!o.decode && !o.no_check) {
        if (!o.differ)
            fprintf(stderr, "mtp tokenize: %zu texts, %zu tokens; round trip ok: the ids decode to the text\n",
                    o.texts, o.tokens);
        else
            fprintf(stderr, "mtp tokenize: %zu texts, %zu tokens; round trip differs for %zu (first: input %zu)\n",
                    o.texts, o.tokens, o.differ, o.first_differ);
    }
    return 0;
}
