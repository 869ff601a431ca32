/* cmd_eval.c: `mtp eval`: per-head loss and top-1 accuracy on a shard set. */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include <cjson/cJSON.h>

#include "mtp.h"

static const char *HELP =
    "usage: mtp eval --model FILE.safetensors --data SHARDS [options]\n"
    "  --data SHARDS  shard list: comma-separated paths or glob patterns ('d/val_*.bin'),\n"
    "                 read as one stream in the order given; repeat to append\n"
    "  --batch B      sequences per batch          [8]\n"
    "  --seq T        tokens per sequence          [256, at most max_seq_len]\n"
    "  --batches K    the first K sequential batches [8]\n"
    "  --threads N    threads                      [all cores]\n"
    "  --json         one JSON object: head_loss, head_acc (per future head), tokens\n";

int cmd_eval(int argc, char **argv) {
    static const struct option LONG[] = {
        {"model", 1, 0, 'm'}, {"data", 1, 0, 'd'}, {"batch", 1, 0, 'b'}, {"seq", 1, 0, 's'},
        {"batches", 1, 0, 'k'}, {"threads", 1, 0, 't'}, {"json", 0, 0, 'j'},
        {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *model = NULL;
    char *data = NULL; /* the --data lists joined by commas */
    int B = 8, T = 256, K = 8, threads = 0, json = 0, c, bad = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", LONG, NULL)) != -1 && !bad) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'd': {
            size_t have = data ? strlen(data) + 1 : 0;
            data = cli_realloc(data, have + strlen(optarg) + 1);
            if (have) data[have - 1] = ',';
            strcpy(data + have, optarg);
            break;
        }
        case 'b': bad = arg_int("eval", "--batch", optarg, 1, 65536, &B); break;
        case 's': bad = arg_int("eval", "--seq", optarg, 1, 1 << 20, &T); break;
        case 'k': bad = arg_int("eval", "--batches", optarg, 1, 1 << 24, &K); break;
        case 't': bad = arg_int("eval", "--threads", optarg, 1, 1024, &threads); break;
        case 'j': json = 1; break;
        case 'h': free(data); fputs(HELP, stdout); return 0;
        default: free(data); return options_error("eval", c, argv);
        }
    }
    int rc = 0;
    if (bad) rc = EXIT_USAGE;
    else if (optind < argc) rc = usage_error("eval", "unexpected argument '%s'", argv[optind]);
    else if (!model || !data) rc = usage_error("eval", "--model and --data are required");
    if (rc) {
        free(data);
        return rc;
    }
    cli_setup_threads(threads, !json);
    mtp_model *m;
    mtp_err err;
    if (mtp_model_open(&m, model, &err)) {
        fprintf(stderr, "mtp eval: %s\n", err.msg);
        free(data);
        return EXIT_BAD_INPUT;
    }
    const mtp_config *cfg = mtp_model_config(m);
    if (T > cfg->max_seq_len) {
        int max = cfg->max_seq_len;
        mtp_model_close(m);
        free(data);
        return usage_error("eval", "--seq %d exceeds the model's max_seq_len %d", T, max);
    }
    mtp_head_stats st;
    rc = mtp_eval_file(m, data, B, T, K, &st, &err);
    free(data);
    if (rc) {
        fprintf(stderr, "mtp eval: %s\n", err.msg);
    } else if (json) {
        cJSON *j = cJSON_CreateObject();
        mtp_json_add_numbers(j, "head_loss", st.loss, cfg->n_future);
        mtp_json_add_numbers(j, "head_acc", st.acc, cfg->n_future);
        mtp_json_add_number(j, "tokens", (double)B * T * K);
        mtp_json_write_line(stdout, j);
        cJSON_Delete(j);
    } else {
        printf("%lld positions (%d batches of %d x %d)\n", (long long)B * T * K, K, B, T);
        for (int i = 0; i < cfg->n_future; i++)
            printf("head %d (token t+%d): loss %.4f nats  acc %.2f%%\n", i + 1, i + 1, st.loss[i],
                   100 * st.acc[i]);
    }
    mtp_model_close(m);
    return rc ? EXIT_BAD_INPUT : 0;
}
