/* cmd_info.c: `mtp info MODEL`: config, parameter counts and storage, from the file's
 * header alone (no weight is read, so a 7B model costs no memory). */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "mtp.h"

int cmd_info(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "--help")) {
        puts("usage: mtp info MODEL.safetensors\n"
             "  prints the config, parameter counts and storage (read from the header only)");
        return 0;
    }
    if (argc != 2) return usage_error("info", "expected one model file");
    mtp_model_info info;
    mtp_err err;
    if (mtp_model_info_read(argv[1], &info, &err)) {
        fprintf(stderr, "mtp info: %s\n", err.msg);
        return EXIT_BAD_INPUT;
    }
    const mtp_config *c = &info.cfg;
    const mtp_param_counts *n = &info.params;
    printf("%s\n", argv[1]);
    printf("  dim %d, n_layers %d (trunk %d + %d future heads), n_heads %d, n_kv_heads %d\n",
           c->dim, c->n_layers, c->n_layers - c->n_future, c->n_future, c->n_heads,
           c->n_kv_heads);
    printf("  hidden_dim %d, vocab_size %d, max_seq_len %d, norm_eps %g, rope_theta %g\n",
           c->hidden_dim, c->vocab_size, c->max_seq_len, c->norm_eps, c->rope_theta);
    printf("parameters: %zu total\n", n->total);
    printf("  embedding     %12zu\n", n->embedding);
    printf("  trunk         %12zu\n", n->trunk);
    printf("  future heads  %12zu  (%d x %zu)\n", n->heads, c->n_future, n->heads / c->n_future);
    printf("  norm+output   %12zu\n", n->norm_output);
    static const char *const DT[4] = {"F32", "BF16", "F16", "I8"};
    printf("storage: %d tensors, %zu bytes in the file; matrices decode as %s\n", info.n_tensors,
           info.file_bytes, mtp_wtype_name(info.wtype));
    for (int k = 0; k < 4; k++)
        if (info.tensor_bytes[k]) printf("  %-4s          %12zu bytes\n", DT[k], info.tensor_bytes[k]);
    if (!info.tokenizer_bytes) {
        printf("tokenizer: none (text needs a byte-level model; mtp convert --tokenizer adds one)\n");
        return 0;
    }
    mtp_tokenizer *t;
    if (mtp_tokenizer_from_model_file(&t, argv[1], &err)) {
        fprintf(stderr, "mtp info: %s\n", err.msg);
        return EXIT_BAD_INPUT;
    }
    printf("tokenizer: %s, %d ids, BOS %lld%s, EOS %lld (%zu bytes in the file)\n",
           mtp_tokenizer_kind_of(t) == MTP_TOK_SENTENCEPIECE ? "SentencePiece" : "byte-level BPE (tokenizer.json)",
           mtp_tokenizer_vocab_size(t), (long long)mtp_tokenizer_bos(t),
           mtp_tokenizer_adds_bos(t) ? " (added to prompts)" : "", (long long)mtp_tokenizer_eos(t),
           info.tokenizer_bytes);
    mtp_tokenizer_free(t);
    return 0;
}
