/* main.c: the `mtp` command: a table of subcommands, one file each (cmd_*.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} COMMANDS[] = {
    {"train", cmd_train, "train a multi-token model (new from --config, or from --model)"},
    {"generate", cmd_generate, "continue prompts: plain or self-speculative decoding"},
    {"serve", cmd_serve, "an OpenAI-compatible HTTP server: continuous batching, exact speculation"},
    {"eval", cmd_eval, "per-head loss and accuracy of a model on a token shard"},
    {"info", cmd_info, "config and parameter counts of a model file"},
    {"convert", cmd_convert, "a model file with its matrices in f32, bf16 or q8"},
    {"tokenize", cmd_tokenize, "text -> token ids with a tokenizer (or ids -> text)"},
    {"prepare", cmd_prepare, "turn text/code files into byte-level token shards"},
    {"task", cmd_task, "the paper's synthetic tasks: samples, shards, test-set accuracy"},
    {"experiment", cmd_experiment, "rerun the paper's poly / induction experiments, with a report"},
    {"bench", cmd_bench, "benchmarks: 'mtp bench matmul', 'mtp bench train', 'mtp bench decode'"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: mtp COMMAND [options]   (mtp COMMAND --help for its options)\n\n");
    for (size_t i = 0; i < sizeof COMMANDS / sizeof *COMMANDS; i++)
        fprintf(f, "  %-8s %s\n", COMMANDS[i].name, COMMANDS[i].help);
    fprintf(f, "\nexit status: 0 ok, 1 bad input file, 2 bad usage\n");
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof *COMMANDS; i++)
        if (!strcmp(argv[1], COMMANDS[i].name)) return COMMANDS[i].run(argc - 1, argv + 1);
    fprintf(stderr, "mtp: unknown command '%s' (see 'mtp --help')\n", argv[1]);
    return EXIT_USAGE;
}
