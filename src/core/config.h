/* config.h: the model configuration, with the keys of Meta's params.json
 * (docs/formats.md) plus n_future_tokens and an optional hidden_dim. */
#ifndef MTP_CONFIG_H
#define MTP_CONFIG_H

#include "core/util.h"

/* Derived sizes. */
static inline int mtp_head_dim(const mtp_config *c) { return c->dim / c->n_heads; }
static inline int mtp_kv_dim(const mtp_config *c) { return c->n_kv_heads * (c->dim / c->n_heads); }
static inline int mtp_n_trunk(const mtp_config *c) { return c->n_layers - c->n_future; }

int mtp_config_validate(const mtp_config *c, const char *what, mtp_err *err);

#endif
