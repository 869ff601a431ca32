/* prepare.c: mtp_prepare (mtp.h; prepare.h): text files -> train/val token shards. The
 * files are listed first (directories walked in sorted order), then read and encoded in
 * parallel, each file on its own, and written in the listed order: the output does not
 * depend on the thread count. */
#define _GNU_SOURCE /* scandir, alphasort */
#include "formats/prepare.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "formats/data.h"

typedef struct {
    char *path;
    size_t bytes;
    int to_val;
    mtp_token *tok; /* its tokens, once encoded */
    size_t n_tok;
    int skipped;    /* looks binary */
} file_entry;

typedef struct {
    file_entry *files;
    size_t n, cap, total_bytes;
    const mtp_prepare_opts *o;
    struct { dev_t dev; ino_t ino; } *seen; /* directories walked, so each is walked once */
    size_t n_seen;
} walker;

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void add_file(walker *w, const char *path, size_t bytes) {
    if (w->o->max_bytes && w->total_bytes + bytes + 1 > w->o->max_bytes) return;
    if (w->n == w->cap) w->files = xrealloc(w->files, (w->cap = 2 * w->cap + 16) * sizeof *w->files);
    file_entry *f = &w->files[w->n++];
    memset(f, 0, sizeof *f);
    f->path = xmalloc(strlen(path) + 1);
    strcpy(f->path, path);
    f->bytes = bytes;
    f->to_val = (double)(fnv1a(path) % 1000000) < w->o->val_fraction * 1e6;
    w->total_bytes += bytes + 1;
}

static int walk(walker *w, const char *path, mtp_err *err) {
    struct stat sb;
    if (stat(path, &sb) != 0) return mtp_fail(err, "%s: %s", path, strerror(errno));
    if (S_ISREG(sb.st_mode)) {
        add_file(w, path, (size_t)sb.st_size);
        return 0;
    }
    if (!S_ISDIR(sb.st_mode)) return 0;
    /* a symbolic link may lead to a directory already walked (or to one of its own
     * ancestors: a loop): walk each directory once */
    for (size_t i = 0; i < w->n_seen; i++)
        if (w->seen[i].dev == sb.st_dev && w->seen[i].ino == sb.st_ino) return 0;
    w->seen = xrealloc(w->seen, (w->n_seen + 1) * sizeof *w->seen);
    w->seen[w->n_seen].dev = sb.st_dev;
    w->seen[w->n_seen++].ino = sb.st_ino;
    struct dirent **ents;
    int n = scandir(path, &ents, NULL, alphasort);
    if (n < 0) return mtp_fail(err, "%s: %s", path, strerror(errno));
    int rc = 0;
    for (int i = 0; i < n; i++) {
        if (rc == 0 && ents[i]->d_name[0] != '.') {
            size_t len = strlen(path) + strlen(ents[i]->d_name) + 2;
            char *child = xmalloc(len);
            snprintf(child, len, "%s/%s", path, ents[i]->d_name);
            rc = walk(w, child, err);
            free(child);
        }
        free(ents[i]);
    }
    free(ents);
    return rc;
}

/* One file's tokens: its bytes and a newline (no tokenizer), or BOS, its ids and EOS as the
 * tokenizer has them. A file with a NUL byte in its first 8 KiB is skipped as binary. */
static int encode_file(file_entry *f, const mtp_tokenizer *tok, mtp_err *err) {
    char *data;
    size_t len;
    if (mtp_read_file(f->path, &data, &len, err)) return -1;
    size_t probe = len < 8192 ? len : 8192;
    f->bytes = len;
    if (len == 0 || memchr(data, 0, probe)) {
        f->skipped = 1;
        free(data);
        return 0;
    }
    if (!tok) {
        f->tok = xmalloc((len + 1) * sizeof(mtp_token));
        for (size_t i = 0; i < len; i++) f->tok[i] = (unsigned char)data[i];
        f->tok[len] = '\n'; /* files are separated by a newline */
        f->n_tok = len + 1;
        free(data);
        return 0;
    }
    mtp_token *ids;
    size_t n;
    int rc = mtp_tokenize(tok, data, len, &ids, &n, err);
    free(data);
    if (rc) {
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        return mtp_fail(err, "%s: %s", f->path, why);
    }
    int64_t bos = mtp_tokenizer_adds_bos(tok) ? mtp_tokenizer_bos(tok) : -1, eos = mtp_tokenizer_eos(tok);
    f->tok = xmalloc((n + 2) * sizeof(mtp_token));
    if (bos >= 0) f->tok[f->n_tok++] = (mtp_token)bos;
    memcpy(f->tok + f->n_tok, ids, n * sizeof(mtp_token));
    f->n_tok += n;
    if (eos >= 0) f->tok[f->n_tok++] = (mtp_token)eos;
    free(ids);
    return 0;
}

/* Encodes every file, several at a time; the first failure in list order is reported. */
static int encode_all(walker *w, mtp_prepare_stats *st, mtp_err *err) {
    const mtp_prepare_opts *o = w->o;
    size_t done_bytes = 0, done_files = 0, failed = w->n; /* failed: the first file that did */
#pragma omp parallel for schedule(dynamic, 1)
    for (size_t i = 0; i < w->n; i++) {
        mtp_err e;
        int rc = encode_file(&w->files[i], o->tokenizer, &e);
#pragma omp critical
        {
            if (rc && i < failed) {
                failed = i;
                *err = e;
            }
            done_bytes += w->files[i].bytes;
            done_files++;
            if (o->progress) o->progress(done_files, w->n, done_bytes, w->total_bytes, o->ctx);
        }
    }
    for (size_t i = 0; i < w->n; i++) w->files[i].skipped ? st->skipped++ : st->files++;
    return failed < w->n ? -1 : 0;
}

/* The tokens of one split's files (to_val) back to back. */
static mtp_token *gather(const walker *w, int to_val, size_t *n) {
    *n = 0;
    for (size_t i = 0; i < w->n; i++)
        if (w->files[i].to_val == to_val) *n += w->files[i].n_tok;
    mtp_token *t = xmalloc((*n ? *n : 1) * sizeof(mtp_token)), *p = t;
    for (size_t i = 0; i < w->n; i++)
        if (w->files[i].to_val == to_val && w->files[i].n_tok) { /* a skipped file has none */
            memcpy(p, w->files[i].tok, w->files[i].n_tok * sizeof(mtp_token));
            p += w->files[i].n_tok;
        }
    return t;
}

int mtp_prepare(const char *const *inputs, int n_inputs, const char *out_dir, const mtp_prepare_opts *o,
                mtp_prepare_stats *stats, mtp_err *err) {
    memset(stats, 0, sizeof *stats);
    mtp_prepare_opts opts = *o;
    if (!opts.max_bytes || opts.max_bytes > INT32_MAX) opts.max_bytes = INT32_MAX;
    int vocab = o->tokenizer ? mtp_tokenizer_vocab_size(o->tokenizer) : 256;
    walker w = {.o = &opts};
    int rc = 0;
    for (int i = 0; i < n_inputs && rc == 0; i++) rc = walk(&w, inputs[i], err);
    if (rc == 0) rc = encode_all(&w, stats, err);
    size_t ntrain = 0, nval = 0;
    mtp_token *train = NULL, *val = NULL;
    if (rc == 0) {
        train = gather(&w, 0, &ntrain);
        val = gather(&w, 1, &nval);
        if (ntrain + nval == 0)
            rc = mtp_fail(err, "%s%s: no text found (%zu files skipped as binary)", inputs[0],
                          n_inputs > 1 ? " ..." : "", stats->skipped);
    }
    if (rc == 0 && ntrain == 0) { /* every file hashed to validation */
        mtp_token *t = train;
        train = val, ntrain = nval;
        val = t, nval = 0;
    }
    if (rc == 0 && opts.val_fraction > 0 && nval == 0 && ntrain > 1) {
        /* too few files for a split by file: split the token stream instead */
        nval = (size_t)(ntrain * opts.val_fraction) + 1;
        if (nval >= ntrain) nval = ntrain - 1;
        ntrain -= nval;
        free(val);
        val = xmalloc(nval * sizeof(mtp_token));
        memcpy(val, train + ntrain, nval * sizeof(mtp_token));
    }
    if (rc == 0 && (ntrain > INT32_MAX || nval > INT32_MAX))
        rc = mtp_fail(err, "%s: more than 2^31-1 tokens for one shard: lower --max-mb", out_dir);
    if (rc == 0 && mkdir(out_dir, 0777) != 0 && errno != EEXIST)
        rc = mtp_fail(err, "%s: %s", out_dir, strerror(errno));
    size_t plen = strlen(out_dir) + 16;
    char *path = xmalloc(plen);
    if (rc == 0) {
        snprintf(path, plen, "%s/train.bin", out_dir);
        rc = mtp_shard_write(path, train, ntrain, vocab, err);
    }
    if (rc == 0 && nval) {
        snprintf(path, plen, "%s/val.bin", out_dir);
        rc = mtp_shard_write(path, val, nval, vocab, err);
    }
    stats->train_tokens = rc == 0 ? ntrain : 0;
    stats->val_tokens = rc == 0 ? nval : 0;
    stats->text_bytes = w.total_bytes;
    free(path);
    free(train);
    free(val);
    for (size_t i = 0; i < w.n; i++) {
        free(w.files[i].path);
        free(w.files[i].tok);
    }
    free(w.files);
    free(w.seen);
    return rc;
}
