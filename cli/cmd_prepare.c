/* cmd_prepare.c: `mtp prepare`: files or directories -> train/val token shards, byte-level
 * or by a tokenizer. */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <unistd.h>

#include "args.h"
#include "commands.h"
#include "mtp.h"

static const char *HELP =
    "usage: mtp prepare --out DIR [options] PATH...\n"
    "  Concatenates the text files under each PATH (directories walked in sorted order,\n"
    "  binary and hidden files skipped) into token shards DIR/train.bin and DIR/val.bin\n"
    "  (llm.c's format: uint16 ids, or uint32 past 65,536). Without a tokenizer the ids are\n"
    "  the bytes (vocab 256); with one, each file is BOS + its ids + EOS as the tokenizer has\n"
    "  them. Files are encoded in parallel; the output does not depend on --threads.\n"
    "  --out DIR          output directory (created)\n"
    "  --tokenizer FILE   tokenizer.model (SentencePiece) or tokenizer.json\n"
    "  --model FILE       use the tokenizer this model carries\n"
    "  --val-fraction F   share of files held out for validation [0.05]\n"
    "  --max-mb M         stop adding files past M MiB of text    [no cap]\n"
    "  --threads N        threads                                [all cores]\n"
    "  --quiet            no progress on stderr\n";

typedef struct {
    double last; /* share of bytes at the last report */
} progress_ctx;

static void on_progress(size_t files_done, size_t files, size_t bytes_done, size_t bytes, void *ctx) {
    progress_ctx *p = ctx;
    double share = bytes ? (double)bytes_done / bytes : 1;
    if (share - p->last < 0.05 && files_done < files) return;
    p->last = share;
    fprintf(stderr, "\r%zu/%zu files, %.1f/%.1f MiB", files_done, files, bytes_done / 1048576.0, bytes / 1048576.0);
    if (files_done == files) fputc('\n', stderr);
}

int cmd_prepare(int argc, char **argv) {
    static const struct option LONG[] = {{"out", 1, 0, 'o'},       {"val-fraction", 1, 0, 'v'},
                                         {"max-mb", 1, 0, 'm'},    {"tokenizer", 1, 0, 't'},
                                         {"model", 1, 0, 'M'},     {"threads", 1, 0, 'j'},
                                         {"quiet", 0, 0, 'q'},     {"help", 0, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *out = NULL, *tokenizer = NULL, *model = NULL;
    float frac = 0.05f;
    int max_mb = 0, threads = 0, quiet = 0, c, bad = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", LONG, NULL)) != -1 && !bad) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'v': bad = arg_float("prepare", "--val-fraction", optarg, 0, 0.5, &frac); break;
        case 'm': bad = arg_int("prepare", "--max-mb", optarg, 1, 2047, &max_mb); break;
        case 't': tokenizer = optarg; break;
        case 'M': model = optarg; break;
        case 'j': bad = arg_int("prepare", "--threads", optarg, 1, 1024, &threads); break;
        case 'q': quiet = 1; break;
        case 'h': fputs(HELP, stdout); return 0;
        default: return options_error("prepare", c, argv);
        }
    }
    if (bad) return EXIT_USAGE;
    if (!out) return usage_error("prepare", "--out is required");
    if (tokenizer && model) return usage_error("prepare", "give --tokenizer or --model, not both");
    if (optind >= argc) return usage_error("prepare", "give at least one file or directory");
    mtp_err err;
    mtp_tokenizer *tok = NULL;
    mtp_model *m = NULL;
    if (tokenizer && mtp_tokenizer_load(&tok, tokenizer, &err)) {
        fprintf(stderr, "mtp prepare: %s\n", err.msg);
        return EXIT_BAD_INPUT;
    }
    if (model && mtp_model_open_decode(&m, model, &err)) {
        fprintf(stderr, "mtp prepare: %s\n", err.msg);
        return EXIT_BAD_INPUT;
    }
    if (m && !mtp_model_tokenizer(m)) {
        fprintf(stderr, "mtp prepare: %s: the model carries no tokenizer\n", model);
        mtp_model_close(m);
        return EXIT_BAD_INPUT;
    }
    cli_setup_threads(threads, 0);
    progress_ctx pc = {0};
    mtp_prepare_opts o = {frac, (size_t)max_mb << 20, tok ? tok : m ? mtp_model_tokenizer(m) : NULL,
                          quiet || !isatty(2) ? NULL : on_progress, &pc};
    mtp_prepare_stats st;
    int rc = mtp_prepare((const char *const *)argv + optind, argc - optind, out, &o, &st, &err);
    if (rc) {
        fprintf(stderr, "mtp prepare: %s\n", err.msg);
    } else {
        printf("%zu files (%zu skipped as binary), %.1f MiB of text: %zu train tokens in %s/train.bin, "
               "%zu val tokens in %s/val.bin\n", st.files, st.skipped, st.text_bytes / 1048576.0,
               st.train_tokens, out, st.val_tokens, out);
    }
    mtp_tokenizer_free(tok);
    mtp_model_close(m);
    return rc ? EXIT_BAD_INPUT : 0;
}
