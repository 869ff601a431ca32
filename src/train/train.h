/* train.h: the training loop (`mtp train`): batches, the multi-token loss, AdamW,
 * warmup + cosine LR, clipping, gradient accumulation, validation, metrics and atomic
 * checkpoints that resume bit-exactly (README.md "Training"; the state file:
 * docs/formats.md). */
#ifndef MTP_TRAIN_H
#define MTP_TRAIN_H

#include <stdint.h>

#include "model/model.h"

/* The options that define the run's arithmetic, as JSON (stored in the state file). */
char *mtp_train_opts_to_json(const mtp_train_opts *o);
/* Restores options from JSON written by mtp_train_opts_to_json (paths are not touched). */
int mtp_train_opts_from_json(mtp_train_opts *o, const char *json, const char *what, mtp_err *err);

/* LR for 0-based step s: linear warmup to lr over `warmup` steps, then cosine to min_lr at
 * `steps` (or constant lr). */
float mtp_lr_at(const mtp_train_opts *o, int64_t s);

/* Reads DIR/state.safetensors: the model (config and weights) and the stored options
 * (data and val paths included); *m is initialised on success. */
int mtp_train_peek_state(const char *dir, mtp_model *m, mtp_train_opts *o, mtp_err *err);

#endif
