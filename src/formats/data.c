/* data.c: see data.h. */
#include "formats/data.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"

int mtp_shard_open(mtp_shard *s, const char *path, int vocab_size, mtp_err *err) {
    memset(s, 0, sizeof *s);
    if (mtp_check_regular(path, err)) return -1;
    FILE *f = fopen(path, "rb");
    if (!f) return mtp_fail(err, "%s: %s", path, strerror(errno));
    int32_t hdr[MTP_SHARD_HEADER_INTS];
    int rc = 0;
    if (fread(hdr, sizeof hdr, 1, f) != 1) {
        rc = mtp_fail(err, "%s: too short for a token shard header (1024 bytes)", path);
    } else if (hdr[0] != MTP_SHARD_MAGIC) {
        rc = mtp_fail(err, "%s: not a token shard (magic %d, expected %d)", path, hdr[0],
                      MTP_SHARD_MAGIC);
    } else if (hdr[1] != MTP_SHARD_VERSION) {
        rc = mtp_fail(err, "%s: unsupported shard version %d (expected %d)", path, hdr[1],
                      MTP_SHARD_VERSION);
    } else if (hdr[2] <= 0) {
        rc = mtp_fail(err, "%s: shard holds no tokens (count %d)", path, hdr[2]);
    } else if (fseek(f, 0, SEEK_END) != 0 || ftell(f) < (long)(sizeof hdr + 2 * (size_t)hdr[2])) {
        long size = ftell(f);
        rc = mtp_fail(err, "%s: truncated: header says %d tokens, file holds %ld", path, hdr[2],
                      size > (long)sizeof hdr ? (size - (long)sizeof hdr) / 2 : 0);
    } else {
        fseek(f, sizeof hdr, SEEK_SET);
        s->n = (size_t)hdr[2];
        s->tokens = xmalloc(s->n * sizeof(uint16_t) + 1);
        size_t got = fread(s->tokens, sizeof(uint16_t), s->n, f);
        char extra;
        if (got != s->n)
            rc = mtp_fail(err, "%s: truncated: header says %zu tokens, file holds %zu", path, s->n,
                          got);
        else if (fread(&extra, 1, 1, f) == 1)
            rc = mtp_fail(err, "%s: trailing bytes after %zu tokens", path, s->n);
    }
    fclose(f);
    for (size_t i = 0; rc == 0 && vocab_size > 0 && i < s->n; i++)
        if (s->tokens[i] >= vocab_size)
            rc = mtp_fail(err, "%s: token id %u at position %zu is out of range (vocab_size %d)",
                          path, s->tokens[i], i, vocab_size);
    if (rc) {
        free(s->tokens);
        memset(s, 0, sizeof *s);
        return rc;
    }
    s->path = xstrdup(path);
    return 0;
}

void mtp_shard_free(mtp_shard *s) {
    free(s->path);
    free(s->tokens);
    memset(s, 0, sizeof *s);
}

int mtp_shard_write(const char *path, const mtp_token *tokens, size_t n, mtp_err *err) {
    if (n == 0 || n > INT32_MAX) return mtp_fail(err, "%s: a shard holds 1..2^31-1 tokens", path);
    int32_t hdr[MTP_SHARD_HEADER_INTS] = {MTP_SHARD_MAGIC, MTP_SHARD_VERSION, (int32_t)n};
    mtp_atomic_file af;
    if (mtp_atomic_open(&af, path, err)) return -1;
    mtp_atomic_write(&af, hdr, sizeof hdr);
    uint16_t buf[4096];
    for (size_t i = 0; i < n; i += 4096) {
        size_t m = n - i < 4096 ? n - i : 4096;
        for (size_t j = 0; j < m; j++) {
            if (tokens[i + j] > UINT16_MAX) {
                mtp_atomic_abort(&af);
                return mtp_fail(err, "%s: token id %u does not fit a uint16 shard", path,
                                (unsigned)tokens[i + j]);
            }
            buf[j] = (uint16_t)tokens[i + j];
        }
        mtp_atomic_write(&af, buf, m * sizeof(uint16_t));
    }
    return mtp_atomic_commit(&af, err);
}

void mtp_batcher_init(mtp_batcher *bt, const mtp_shard *s, int B, int T, int n_future,
                      int shuffle, uint64_t seed) {
    memset(bt, 0, sizeof *bt);
    bt->shard = s;
    bt->B = B;
    bt->T = T;
    bt->n_future = n_future;
    bt->shuffle = shuffle;
    bt->seed = seed;
    bt->n_windows = s->n / T ? s->n / T : 1;
    bt->perm_epoch = -1;
    if (shuffle) bt->perm = xmalloc(bt->n_windows * sizeof(uint32_t));
}

void mtp_batcher_free(mtp_batcher *bt) {
    free(bt->perm);
    memset(bt, 0, sizeof *bt);
}

/* Fisher-Yates with a generator seeded from (seed, epoch). */
static void make_epoch_order(mtp_batcher *bt, int64_t epoch) {
    mtp_rng rng = {bt->seed * 0x9E3779B97F4A7C15ull + (uint64_t)epoch + 1};
    for (size_t i = 0; i < bt->n_windows; i++) bt->perm[i] = (uint32_t)i;
    for (size_t i = bt->n_windows; i > 1; i--) {
        size_t j = mtp_rng_below(&rng, i);
        uint32_t t = bt->perm[i - 1];
        bt->perm[i - 1] = bt->perm[j];
        bt->perm[j] = t;
    }
    bt->perm_epoch = epoch;
}

void mtp_batcher_get(mtp_batcher *bt, uint64_t k, mtp_token *window) {
    int T = bt->T, W = T + bt->n_future;
    size_t n = bt->shard->n;
    for (int b = 0; b < bt->B; b++) {
        uint64_t w = k * bt->B + b, start;
        if (bt->shuffle) {
            int64_t epoch = (int64_t)(w / bt->n_windows);
            if (epoch != bt->perm_epoch) make_epoch_order(bt, epoch);
            start = (uint64_t)bt->perm[w % bt->n_windows] * T;
        } else {
            start = w * T;
        }
        for (int t = 0; t < W; t++) window[(size_t)b * W + t] = bt->shard->tokens[(start + t) % n];
    }
}
