/* cmd_info.c: `mtp info MODEL`: config and parameter counts. */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "model/checkpoint.h"

int cmd_info(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "--help")) {
        puts("usage: mtp info MODEL.safetensors\n  prints the config and parameter counts");
        return 0;
    }
    if (argc != 2) return usage_error("info", "expected one model file");
    mtp_model m;
    mtp_err err;
    if (mtp_model_load(&m, argv[1], &err)) {
        fprintf(stderr, "mtp info: %s\n", err.msg);
        return EXIT_BAD_INPUT;
    }
    const mtp_config *c = &m.cfg;
    mtp_param_counts n = mtp_count_params(&m.lay, c);
    printf("%s\n", argv[1]);
    printf("  dim %d, n_layers %d (trunk %d + %d future heads), n_heads %d, n_kv_heads %d\n",
           c->dim, c->n_layers, mtp_n_trunk(c), c->n_future, c->n_heads, c->n_kv_heads);
    printf("  hidden_dim %d, vocab_size %d, max_seq_len %d, norm_eps %g, rope_theta %g\n",
           c->hidden_dim, c->vocab_size, c->max_seq_len, c->norm_eps, c->rope_theta);
    printf("parameters: %zu total\n", n.total);
    printf("  embedding     %12zu\n", n.embedding);
    printf("  trunk         %12zu\n", n.trunk);
    printf("  future heads  %12zu  (%d x %zu)\n", n.heads, c->n_future, n.heads / c->n_future);
    printf("  norm+output   %12zu\n", n.norm_output);
    mtp_model_free(&m);
    return 0;
}
