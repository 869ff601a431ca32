/* cmd_prepare.c: `mtp prepare`: files or directories -> byte-level train/val shards. */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>

#include "args.h"
#include "commands.h"
#include "mtp.h"

static const char *HELP =
    "usage: mtp prepare --out DIR [options] PATH...\n"
    "  Concatenates the text files under each PATH (directories walked in sorted order,\n"
    "  binary and hidden files skipped) into byte-level shards (vocab 256):\n"
    "  DIR/train.bin and DIR/val.bin (llm.c token shard format).\n"
    "  --out DIR          output directory (created)\n"
    "  --val-fraction F   share of files held out for validation [0.05]\n"
    "  --max-mb M         stop adding files past M MiB            [no cap]\n";

int cmd_prepare(int argc, char **argv) {
    static const struct option LONG[] = {{"out", 1, 0, 'o'}, {"val-fraction", 1, 0, 'v'},
                                         {"max-mb", 1, 0, 'm'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *out = NULL;
    float frac = 0.05f;
    int max_mb = 0, c, bad = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", LONG, NULL)) != -1 && !bad) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'v': bad = arg_float("prepare", "--val-fraction", optarg, 0, 0.5, &frac); break;
        case 'm': bad = arg_int("prepare", "--max-mb", optarg, 1, 2047, &max_mb); break;
        case 'h': fputs(HELP, stdout); return 0;
        default: return options_error("prepare", c, argv);
        }
    }
    if (bad) return EXIT_USAGE;
    if (!out) return usage_error("prepare", "--out is required");
    if (optind >= argc) return usage_error("prepare", "give at least one file or directory");
    mtp_prepare_stats st;
    mtp_err err;
    if (mtp_prepare_bytes((const char *const *)argv + optind, argc - optind, out, frac,
                          (size_t)max_mb << 20, &st, &err)) {
        fprintf(stderr, "mtp prepare: %s\n", err.msg);
        return EXIT_BAD_INPUT;
    }
    printf("%zu files (%zu skipped as binary): %zu train tokens in %s/train.bin, %zu val tokens"
           " in %s/val.bin\n", st.files, st.skipped, st.train_tokens, out, st.val_tokens, out);
    return 0;
}
