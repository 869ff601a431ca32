/* cmd_convert.c: `mtp convert IN OUT --dtype f32|bf16|q8 [--tokenizer FILE]`: a model file,
 * or Meta's released checkpoint, as an mtp model file with its matrices in a number type
 * (docs/formats.md), streamed tensor by tensor, carrying its tokenizer. */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "mtp.h"

static const char *HELP =
    "usage: mtp convert IN OUT.safetensors --dtype f32|bf16|q8 [--tokenizer FILE]\n"
    "  IN is an mtp model file, or Meta's release: a folder with consolidated.pth and\n"
    "  params.json (or that .pth file), read without Python and without running its pickle.\n"
    "  Matrices are written in F32, BF16 (nearest even) or Q8 (blocks of 32 int8 with an F16\n"
    "  scale each); norms stay F32. One tensor is in memory at a time.\n"
    "  --tokenizer FILE  the tokenizer OUT carries (tokenizer.model or tokenizer.json)\n"
    "                    [IN's own; for Meta's folder: tokenizer.model in it or its parent]\n";

/* --name VALUE or --name=VALUE at argv[*i]: the value, or NULL (not this option) */
static const char *opt_value(int argc, char **argv, int *i, const char *name, int *missing) {
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0) return NULL;
    if (argv[*i][n] == '=') return argv[*i] + n + 1;
    if (argv[*i][n] != 0) return NULL;
    if (*i + 1 == argc) {
        *missing = 1;
        return NULL;
    }
    return argv[++*i];
}

int cmd_convert(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *dtype = NULL, *tokenizer = NULL, *v;
    for (int i = 1; i < argc; i++) {
        int missing = 0;
        if (!strcmp(argv[i], "--help")) {
            fputs(HELP, stdout);
            return 0;
        }
        if ((v = opt_value(argc, argv, &i, "--dtype", &missing))) {
            dtype = v;
        } else if ((v = opt_value(argc, argv, &i, "--tokenizer", &missing))) {
            tokenizer = v;
        } else if (missing) {
            return usage_error("convert", "%s needs a value", argv[i]);
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return usage_error("convert", "unknown option '%s'", argv[i]);
        } else if (!in) {
            in = argv[i];
        } else if (!out) {
            out = argv[i];
        } else {
            return usage_error("convert", "unexpected argument '%s'", argv[i]);
        }
    }
    if (!in || !out) return usage_error("convert", "expected IN and OUT (IN: a model file or Meta's folder)");
    if (!dtype) return usage_error("convert", "--dtype is required (f32, bf16 or q8)");
    mtp_wtype t;
    if (arg_dtype("convert", dtype, &t)) return EXIT_USAGE;
    mtp_err err;
    mtp_model_info info;
    if (mtp_convert(in, out, t, tokenizer, &err) || mtp_model_info_read(out, &info, &err)) {
        fprintf(stderr, "mtp convert: %s\n", err.msg);
        return EXIT_BAD_INPUT;
    }
    printf("%s: %s matrices, %zu bytes", out, mtp_wtype_name(info.wtype), info.file_bytes);
    if (info.tokenizer_bytes) printf(", with its tokenizer (%zu bytes)", info.tokenizer_bytes);
    printf("\n");
    return 0;
}
