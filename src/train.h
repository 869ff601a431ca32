/* train.h: the training loop (`mtp train`): batches, the multi-token loss, AdamW,
 * warmup + cosine LR, clipping, gradient accumulation, validation, metrics and atomic
 * checkpoints that resume bit-exactly (docs/training.md). */
#ifndef MTP_TRAIN_H
#define MTP_TRAIN_H

#include <stdint.h>

#include "model.h"

typedef struct {
    int batch, seq, steps, warmup, grad_accum, shuffle, cosine;
    float lr, min_lr, weight_decay, grad_clip, beta1, beta2, eps;
    uint64_t seed;
    mtp_head_schedule schedule;
    float head_weight[MTP_MAX_FUTURE]; /* per future head; 1 by default */
    int save_every, eval_every, eval_batches, stop_at; /* stop_at 0: run to steps */
    char data[16384], val[16384], out[1024]; /* "": none; data, val: shard lists (data.h) */
} mtp_train_opts;

void mtp_train_opts_default(mtp_train_opts *o);
/* The options that define the run's arithmetic, as JSON (stored in the state file). */
char *mtp_train_opts_to_json(const mtp_train_opts *o);
/* Restores options from JSON written by mtp_train_opts_to_json (paths are not touched). */
int mtp_train_opts_from_json(mtp_train_opts *o, const char *json, const char *what, mtp_err *err);

/* LR for 0-based step s: linear warmup to lr over `warmup` steps, then cosine to min_lr at
 * `steps` (or constant lr). */
float mtp_lr_at(const mtp_train_opts *o, int64_t s);

/* What the loop reports after each step (and after each validation, with is_val). */
typedef struct {
    int64_t step, steps;
    int n_future, is_val;
    mtp_head_stats stats;
    double loss, lr, grad_norm, tok_per_s, elapsed_s, eta_s;
} mtp_train_report;

typedef void (*mtp_train_cb)(const mtp_train_report *r, void *ctx);

/* Trains m in place. resume_dir != NULL continues from DIR/state.safetensors: weights,
 * AdamW moments and step are restored; the caller got m and o from mtp_train_peek_state
 * and may have changed what does not alter the arithmetic (steps, stop_at, save_every,
 * eval_every, eval_batches, val, out). */
int mtp_train(mtp_model *m, mtp_train_opts *o, const char *resume_dir, mtp_train_cb cb,
              void *ctx, mtp_err *err);

/* Reads DIR/state.safetensors: the model (config and weights) and the stored options
 * (data and val paths included); *m is initialised on success. */
int mtp_train_peek_state(const char *dir, mtp_model *m, mtp_train_opts *o, mtp_err *err);

#endif
