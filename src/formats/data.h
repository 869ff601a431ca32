/* data.h: llm.c token shards (docs/formats.md) and the batches drawn from them.
 * A shard is a 256 x int32 header (magic 20240520, version 1, token count) followed by
 * uint16 tokens. Opening a shard validates it completely, including that every token id
 * is below the model's vocab_size, so the model never sees a bad id. */
#ifndef MTP_DATA_H
#define MTP_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

#define MTP_SHARD_MAGIC 20240520
#define MTP_SHARD_VERSION 1
#define MTP_SHARD_HEADER_INTS 256

typedef struct {
    char *path;
    uint16_t *tokens; /* (n) */
    size_t n;
} mtp_shard;

/* Reads and validates path; vocab_size bounds the ids (0 = do not check). */
int mtp_shard_open(mtp_shard *s, const char *path, int vocab_size, mtp_err *err);
void mtp_shard_free(mtp_shard *s);
/* Writes tokens as a shard, atomically. */
int mtp_shard_write(const char *path, const mtp_token *tokens, size_t n, mtp_err *err);

/* Batch order. Window w covers tokens [w*T, w*T + T + n_future) of the shard (wrapping to
 * the start past the end). Sequential: batch k row b is window k*B + b (so it starts at
 * token k*B*T + b*T, modulo the shard). Shuffled: the shard's floor(n/T) windows in a
 * seeded random order, a fresh order each epoch; batch k takes the next B of that stream.
 * The position is a pure function of (seed, k), so a resumed run needs only k. */
typedef struct {
    const mtp_shard *shard;
    int B, T, n_future, shuffle;
    uint64_t seed;
    size_t n_windows;
    uint32_t *perm;  /* (n_windows) order of the current epoch, shuffled mode */
    int64_t perm_epoch;
} mtp_batcher;

void mtp_batcher_init(mtp_batcher *bt, const mtp_shard *s, int B, int T, int n_future,
                      int shuffle, uint64_t seed);
void mtp_batcher_free(mtp_batcher *bt);
/* Fills window (B, T + n_future) with batch k. */
void mtp_batcher_get(mtp_batcher *bt, uint64_t k, mtp_token *window);

#endif
