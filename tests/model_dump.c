/* model_dump.c: test helper for tests/test_torch.py. Runs batch 0 of a shard through
 * mtp_step (forward + backward, head weights 1, or W1,W2,.. when given) and writes what
 * the PyTorch twin compares: logits.{i} (B,T,V) per future head, loss (n), grad.{param}
 * per parameter.
 * usage: model_dump MODEL SHARD B T sequential|naive OUT.safetensors [W1,W2,..] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/checkpoint.h"
#include "formats/data.h"

int main(int argc, char **argv) {
    if (argc != 7 && argc != 8) {
        fprintf(stderr, "usage: model_dump MODEL SHARD B T sequential|naive OUT [W1,W2,..]\n");
        return 2;
    }
    mtp_model m;
    mtp_shardset s;
    mtp_err err;
    if (mtp_model_load(&m, argv[1], &err) || mtp_shardset_open(&s, argv[2], m.cfg.vocab_size, &err)) {
        fprintf(stderr, "model_dump: %s\n", err.msg);
        return 1;
    }
    int B = atoi(argv[3]), T = atoi(argv[4]), nf = m.cfg.n_future, V = m.cfg.vocab_size;
    int naive = !strcmp(argv[5], "naive");
    mtp_acts a, fa;
    if (mtp_acts_init(&a, &m.cfg, B, T, naive ? MTP_HEADS_NAIVE : MTP_HEADS_SEQUENTIAL, 1, &err) ||
        mtp_acts_init(&fa, &m.cfg, B, T, MTP_HEADS_NAIVE, 0, &err)) {
        fprintf(stderr, "model_dump: %s\n", err.msg);
        return 1;
    }
    mtp_batcher bt;
    mtp_batcher_init(&bt, &s, B, T, nf, 0, 0);
    mtp_token *window = xmalloc((size_t)B * (T + nf) * sizeof(mtp_token));
    mtp_batcher_get(&bt, 0, window);

    /* logits first, from a forward-only pass (the training pass turns them into dlogits) */
    size_t N = (size_t)B * T;
    float *logits = falloc((size_t)nf * N * V);
    mtp_head_stats st;
    mtp_step(&m, &fa, window, NULL, NULL, 0, &st);
    for (int i = 0; i < nf; i++) memcpy(logits + i * N * V, fa.heads[i].logits, N * V * sizeof(float));
    mtp_acts_free(&fa);

    float *grads = falloc(m.lay.total);
    memset(grads, 0, m.lay.total * sizeof(float));
    float hw[MTP_MAX_FUTURE];
    for (int i = 0; i < nf; i++) hw[i] = 1.0f;
    for (int i = 0, off = 0; argc == 8 && i < nf; i++) {
        int used = 0;
        sscanf(argv[7] + off, "%f,%n", &hw[i], &used);
        off += used;
    }
    mtp_step(&m, &a, window, hw, grads, 1.0f, &st);

    int n = 1 + nf + m.lay.n_params;
    mtp_st_entry *e = xcalloc(n, sizeof *e);
    char (*names)[160] = xcalloc(n, sizeof *names);
    float loss[MTP_MAX_FUTURE];
    for (int i = 0; i < nf; i++) loss[i] = (float)st.loss[i];
    e[0] = (mtp_st_entry){"loss", loss, 1, {nf}, MTP_DT_F32};
    for (int i = 0; i < nf; i++) {
        snprintf(names[1 + i], 160, "logits.%d", i + 1);
        e[1 + i] = (mtp_st_entry){names[1 + i], logits + i * N * V, 3, {B, T, V}, MTP_DT_F32};
    }
    for (int k = 0; k < m.lay.n_params; k++) {
        const mtp_param *p = &m.lay.params[k];
        mtp_st_entry *x = &e[1 + nf + k];
        snprintf(names[1 + nf + k], 160, "grad.%s", p->name);
        *x = (mtp_st_entry){names[1 + nf + k], grads + p->offset, p->ndim,
                            {(int64_t)p->shape[0], (int64_t)p->shape[1]}, MTP_DT_F32};
    }
    int rc = mtp_st_write(argv[6], e, n, NULL, 0, &err);
    if (rc) fprintf(stderr, "model_dump: %s\n", err.msg);
    free(e);
    free(names);
    free(grads);
    free(logits);
    free(window);
    mtp_batcher_free(&bt);
    mtp_acts_free(&a);
    mtp_shardset_free(&s);
    mtp_model_free(&m);
    return rc ? 1 : 0;
}
