/* cmd_convert.c: `mtp convert IN OUT --dtype f32|bf16|q8`: a model file with its matrices
 * in another number type (docs/formats.md), streamed tensor by tensor. */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "mtp.h"

static const char *HELP =
    "usage: mtp convert IN.safetensors OUT.safetensors --dtype f32|bf16|q8\n"
    "  rewrites a model with its matrices in F32, BF16 (nearest even) or Q8 (blocks of 32\n"
    "  int8 with an F16 scale each); norms stay F32. One tensor is in memory at a time.\n";

int cmd_convert(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *dtype = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) {
            fputs(HELP, stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--dtype")) {
            if (++i == argc) return usage_error("convert", "--dtype needs a value (f32, bf16 or q8)");
            dtype = argv[i];
        } else if (!strncmp(argv[i], "--dtype=", 8)) {
            dtype = argv[i] + 8;
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
    if (!in || !out) return usage_error("convert", "expected IN and OUT model files");
    if (!dtype) return usage_error("convert", "--dtype is required (f32, bf16 or q8)");
    mtp_wtype t;
    if (arg_dtype("convert", dtype, &t)) return EXIT_USAGE;
    mtp_err err;
    if (mtp_convert(in, out, t, &err)) {
        fprintf(stderr, "mtp convert: %s\n", err.msg);
        return EXIT_BAD_INPUT;
    }
    mtp_model_info info;
    if (mtp_model_info_read(out, &info, &err)) {
        fprintf(stderr, "mtp convert: %s\n", err.msg);
        return EXIT_BAD_INPUT;
    }
    printf("%s: %s matrices, %zu bytes\n", out, mtp_wtype_name(info.wtype), info.file_bytes);
    return 0;
}
