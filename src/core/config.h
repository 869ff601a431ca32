/* config.h: the model configuration, with the keys of Meta's params.json
 * (docs/formats.md) plus n_future_tokens and an optional hidden_dim. */
#ifndef MTP_CONFIG_H
#define MTP_CONFIG_H

#include "core/util.h"

typedef struct {
    int dim, n_layers, n_heads, n_kv_heads, vocab_size, multiple_of;
    float ffn_dim_multiplier; /* 0 when unset */
    float norm_eps, rope_theta;
    int max_seq_len;
    int n_future;   /* n_future_tokens: number of future heads */
    int hidden_dim; /* resolved FFN size (explicit, or Meta's rule) */
} mtp_config;

/* Derived sizes. */
static inline int mtp_head_dim(const mtp_config *c) { return c->dim / c->n_heads; }
static inline int mtp_kv_dim(const mtp_config *c) { return c->n_kv_heads * (c->dim / c->n_heads); }
static inline int mtp_n_trunk(const mtp_config *c) { return c->n_layers - c->n_future; }

/* Parses JSON text (what names the source in messages), fills defaults for missing
 * optional keys, resolves hidden_dim, and validates. */
int mtp_config_parse(mtp_config *c, const char *json, const char *what, mtp_err *err);
int mtp_config_load(mtp_config *c, const char *path, mtp_err *err);
/* The config as compact JSON (malloc'd), the form stored in checkpoints. */
char *mtp_config_to_json(const mtp_config *c);
int mtp_config_validate(const mtp_config *c, const char *what, mtp_err *err);

#endif
