/* eval.h: per-head mean cross-entropy and top-1 accuracy over the first K sequential
 * batches of a shard set (`mtp eval`). */
#ifndef MTP_EVAL_H
#define MTP_EVAL_H

#include "formats/data.h"
#include "model/model.h"

int mtp_eval(const mtp_model *m, const mtp_shardset *s, int B, int T, int batches,
             mtp_head_stats *out, mtp_err *err);

#endif
