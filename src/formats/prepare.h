/* prepare.h: text/code files or directory trees -> byte-level token shards (vocab 256),
 * split into train and validation by file (a hash of the path, so the split is stable as
 * files are added). Files that look binary (a NUL byte in their first 8 KiB) and hidden
 * entries (names starting with '.') are skipped; directories are walked in sorted order. */
#ifndef MTP_PREPARE_H
#define MTP_PREPARE_H

#include <stddef.h>

#include "core/util.h"

typedef struct {
    size_t files, skipped, train_tokens, val_tokens;
} mtp_prepare_stats;

/* Writes out_dir/train.bin and out_dir/val.bin. val_fraction in [0, 0.5]; max_bytes caps
 * the total (0: no cap beyond the shard format's 2^31-1 tokens). */
int mtp_prepare_bytes(const char *const *inputs, int n_inputs, const char *out_dir,
                      double val_fraction, size_t max_bytes, mtp_prepare_stats *stats,
                      mtp_err *err);

#endif
