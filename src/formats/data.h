/* data.h: llm.c token shards (docs/formats.md), sets of shards read as one token stream,
 * and the batches drawn from them.
 * A shard is a 256 x int32 header (magic, version, token count) followed by the tokens:
 * uint16 (magic 20240520, version 1; GPT-2's data) or uint32 (magic 20240801, version 7;
 * llm.c's Llama 3 data). Shards are memory-mapped read-only, never copied into RAM.
 * Opening a shard validates it completely, including (one pass over the map) that every
 * token id is below the model's vocab_size, so the model never sees a bad id.
 * Not here: tokenizers, sharded writing of one stream (each writer writes one file). */
#ifndef MTP_DATA_H
#define MTP_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

#define MTP_SHARD_HEADER_INTS 256
#define MTP_SHARD16_MAGIC 20240520
#define MTP_SHARD16_VERSION 1
#define MTP_SHARD32_MAGIC 20240801
#define MTP_SHARD32_VERSION 7

typedef struct {
    char *path;
    const unsigned char *map; /* (map_len) the whole file, PROT_READ */
    size_t map_len;
    const unsigned char *tok; /* map + 1024: n tokens of `width` bytes, little-endian */
    size_t n;
    int width; /* bytes per token: 2 or 4 */
} mtp_shard;

/* Maps and validates path; vocab_size bounds the ids (0 = do not check, no scan). */
int mtp_shard_open(mtp_shard *s, const char *path, int vocab_size, mtp_err *err);
void mtp_shard_free(mtp_shard *s);

static inline mtp_token mtp_shard_at(const mtp_shard *s, size_t i) {
    const unsigned char *p = s->tok + i * (size_t)s->width;
    return s->width == 2 ? (mtp_token)(p[0] | p[1] << 8)
                         : (mtp_token)p[0] | (mtp_token)p[1] << 8 | (mtp_token)p[2] << 16 |
                               (mtp_token)p[3] << 24;
}

/* The token width a writer picks for a model: 2 (uint16) when every id fits, i.e.
 * vocab_size <= 65536, else 4 (uint32). */
int mtp_shard_width(int vocab_size);
/* Writes tokens as a shard of `width` bytes per token (2 or 4), atomically; an id that
 * does not fit the width is refused (nothing is written). 1 <= n <= 2^31-1. */
int mtp_shard_write_width(const char *path, const mtp_token *tokens, size_t n, int width,
                          mtp_err *err);
/* The same with the width chosen by mtp_shard_width(vocab_size); ids must be below
 * vocab_size. */
int mtp_shard_write(const char *path, const mtp_token *tokens, size_t n, int vocab_size,
                    mtp_err *err);

/* A shard set: the shards of a list, concatenated into one stream of `total` tokens.
 * The list (docs/formats.md) is comma-separated; each entry is a path or a glob(3)
 * pattern, expanded in sorted order; a backslash makes the next character literal
 * (`\,` `\*` `\\`). Global token i lives in shard s with start[s] <= i < start[s+1],
 * at offset i - start[s]. */
typedef struct {
    int n;              /* shards */
    mtp_shard *shards;  /* (n) */
    uint64_t *start;    /* (n + 1) first global index of each shard; start[n] = total */
    uint64_t total;
} mtp_shardset;

int mtp_shardset_open(mtp_shardset *ss, const char *list, int vocab_size, mtp_err *err);
/* The same for paths taken as they are (no list syntax). */
int mtp_shardset_open_paths(mtp_shardset *ss, const char *const *paths, int n, int vocab_size,
                            mtp_err *err);
/* Writes path as a one-entry list (escaping \ , * ? [) into buf; -1 if cap is too small. */
int mtp_shard_list_escape(char *buf, size_t cap, const char *path);
void mtp_shardset_free(mtp_shardset *ss);
/* The shard holding global index i < start[n] (binary search over start, (n + 1)). */
int mtp_shardset_find(const uint64_t *start, int n, uint64_t i);
/* Copies tokens [pos, pos + len) of the stream, wrapping past the end to the start. */
void mtp_shardset_read(const mtp_shardset *ss, uint64_t pos, size_t len, mtp_token *out);
/* The opened paths as a list that reopens exactly these files (every entry escaped, no
 * pattern left), for the training state. Fails if it needs more than cap bytes. */
int mtp_shardset_list(const mtp_shardset *ss, char *buf, size_t cap, mtp_err *err);

/* Batch order over the stream. Window w covers tokens [w*T, w*T + T + n_future) of the
 * stream (windows may span shard boundaries; past the end they wrap to the start).
 * Sequential: batch k row b is window k*B + b (so it starts at token k*B*T + b*T, modulo
 * the total). Shuffled: the stream's floor(total/T) windows in a seeded random order, a
 * fresh order each epoch; batch k takes the next B of that order. The position is a pure
 * function of (seed, k), so a resumed run needs only k. All indices are 64-bit.
 * A batcher may hand out only rows [row0, row0 + rows) of each batch (the share of one of
 * several training processes); by default all B. */
typedef struct {
    const mtp_shardset *set;
    int B, T, n_future, shuffle;
    int row0, rows;
    uint64_t seed;
    uint64_t n_windows;
    uint64_t *perm; /* (n_windows) order of the current epoch, shuffled mode */
    int64_t perm_epoch;
} mtp_batcher;

void mtp_batcher_init(mtp_batcher *bt, const mtp_shardset *s, int B, int T, int n_future,
                      int shuffle, uint64_t seed);
void mtp_batcher_free(mtp_batcher *bt);
/* From now on get hands out rows [row0, row0 + rows) of each batch (within 0..B). */
void mtp_batcher_rows(mtp_batcher *bt, int row0, int rows);
/* Fills window (rows, T + n_future) with batch k's rows row0 .. row0 + rows - 1. */
void mtp_batcher_get(mtp_batcher *bt, uint64_t k, mtp_token *window);

#endif
