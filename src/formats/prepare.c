/* prepare.c: see prepare.h. */
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
    mtp_token *tok;
    size_t n, cap;
} tokbuf;

typedef struct {
    tokbuf train, val;
    double val_fraction;
    size_t max_bytes;
    mtp_prepare_stats *stats;
    struct { dev_t dev; ino_t ino; } *seen; /* directories walked, so each is walked once */
    size_t n_seen;
} walker;

static void push(tokbuf *b, const unsigned char *p, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->tok = xrealloc(b->tok, b->cap * sizeof(mtp_token));
    }
    for (size_t i = 0; i < n; i++) b->tok[b->n++] = p[i];
    b->tok[b->n++] = '\n'; /* files are separated by a newline */
}

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int add_file(walker *w, const char *path, mtp_err *err) {
    char *data;
    size_t len;
    if (mtp_read_file(path, &data, &len, err)) return -1;
    size_t probe = len < 8192 ? len : 8192;
    size_t total = w->train.n + w->val.n;
    if (memchr(data, 0, probe) || len == 0) {
        w->stats->skipped++;
    } else if (!w->max_bytes || total + len + 1 <= w->max_bytes) {
        int to_val = (double)(fnv1a(path) % 1000000) < w->val_fraction * 1e6;
        push(to_val ? &w->val : &w->train, (unsigned char *)data, len);
        w->stats->files++;
    }
    free(data);
    return 0;
}

static int walk(walker *w, const char *path, mtp_err *err) {
    struct stat sb;
    if (stat(path, &sb) != 0) return mtp_fail(err, "%s: %s", path, strerror(errno));
    if (S_ISREG(sb.st_mode)) return add_file(w, path, err);
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

int mtp_prepare_bytes(const char *const *inputs, int n_inputs, const char *out_dir,
                      double val_fraction, size_t max_bytes, mtp_prepare_stats *stats,
                      mtp_err *err) {
    memset(stats, 0, sizeof *stats);
    if (!max_bytes || max_bytes > INT32_MAX) max_bytes = INT32_MAX;
    walker w = {.val_fraction = val_fraction, .max_bytes = max_bytes, .stats = stats};
    int rc = 0;
    for (int i = 0; i < n_inputs && rc == 0; i++) rc = walk(&w, inputs[i], err);
    if (rc == 0 && w.train.n + w.val.n == 0)
        rc = mtp_fail(err, "%s%s: no text found (%zu files skipped as binary)", inputs[0],
                      n_inputs > 1 ? " ..." : "", stats->skipped);
    if (rc == 0 && w.train.n == 0) { /* every file hashed to validation */
        tokbuf t = w.train;
        w.train = w.val;
        w.val = t;
    }
    if (rc == 0 && val_fraction > 0 && w.val.n == 0 && w.train.n > 1) {
        /* too few files for a split by file: split the byte stream instead */
        tokbuf all = w.train;
        size_t nval = (size_t)(all.n * val_fraction) + 1;
        if (nval >= all.n) nval = all.n - 1;
        w.train = (tokbuf){all.tok, all.n - nval, all.cap};
        w.val = (tokbuf){xmalloc(nval * sizeof(mtp_token)), nval, nval};
        memcpy(w.val.tok, all.tok + w.train.n, nval * sizeof(mtp_token));
    }
    if (rc == 0 && mkdir(out_dir, 0777) != 0 && errno != EEXIST)
        rc = mtp_fail(err, "%s: %s", out_dir, strerror(errno));
    size_t plen = strlen(out_dir) + 16;
    char *path = xmalloc(plen);
    if (rc == 0) {
        snprintf(path, plen, "%s/train.bin", out_dir);
        rc = mtp_shard_write(path, w.train.tok, w.train.n, 256, err);
    }
    if (rc == 0 && w.val.n) {
        snprintf(path, plen, "%s/val.bin", out_dir);
        rc = mtp_shard_write(path, w.val.tok, w.val.n, 256, err);
    }
    stats->train_tokens = w.train.n;
    stats->val_tokens = w.val.n;
    free(path);
    free(w.train.tok);
    free(w.val.tok);
    free(w.seen);
    return rc;
}
