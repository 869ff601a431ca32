/* data.c: see data.h. Shards are little-endian on disk; tokens are decoded byte by byte,
 * so the host's byte order does not matter. */
#include "formats/data.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/rng.h"

/* ---- one shard ---------------------------------------------------------------------- */

static int32_t le32(const unsigned char *p) {
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                     (uint32_t)p[3] << 24);
}

/* Checks the header against the file size; *width receives 2 or 4. */
static int check_header(const unsigned char *map, uint64_t size, const char *path, int *width,
                        mtp_err *err) {
    int32_t magic = le32(map), version = le32(map + 4), count = le32(map + 8), want;
    if (magic == MTP_SHARD16_MAGIC) {
        *width = 2, want = MTP_SHARD16_VERSION;
    } else if (magic == MTP_SHARD32_MAGIC) {
        *width = 4, want = MTP_SHARD32_VERSION;
    } else {
        return mtp_fail(err, "%s: not a token shard (magic %d, expected %d for uint16 or %d for uint32)",
                        path, magic, MTP_SHARD16_MAGIC, MTP_SHARD32_MAGIC);
    }
    if (version != want)
        return mtp_fail(err, "%s: unsupported shard version %d for magic %d (expected %d)", path,
                        version, magic, want);
    if (count <= 0) return mtp_fail(err, "%s: shard holds no tokens (count %d)", path, count);
    uint64_t data = size - MTP_SHARD_HEADER_INTS * 4, need = (uint64_t)count * *width;
    if (data < need)
        return mtp_fail(err, "%s: truncated: header says %d uint%d tokens, file holds %llu", path,
                        count, 8 * *width, (unsigned long long)(data / *width));
    if (data > need)
        return mtp_fail(err, "%s: %llu trailing bytes after %d uint%d tokens", path,
                        (unsigned long long)(data - need), count, 8 * *width);
    return 0;
}

int mtp_shard_open(mtp_shard *s, const char *path, int vocab_size, mtp_err *err) {
    memset(s, 0, sizeof *s);
    uint8_t *map;
    size_t size;
    if (mtp_map_file(path, MTP_SHARD_HEADER_INTS * 4, "a token shard (its 1024-byte header)", &map, &size, err))
        return -1;
    s->map = map;
    s->map_len = size;
    s->tok = s->map + MTP_SHARD_HEADER_INTS * 4;
    int rc = check_header(s->map, (uint64_t)size, path, &s->width, err);
    if (rc == 0) s->n = (size_t)le32(s->map + 8);
    /* one pass over the map: no id reaches the model unchecked */
    int scan = vocab_size > 0 && !(s->width == 2 && vocab_size > UINT16_MAX);
    for (size_t i = 0; rc == 0 && scan && i < s->n; i++) {
        mtp_token id = mtp_shard_at(s, i);
        if (id >= (mtp_token)vocab_size)
            rc = mtp_fail(err, "%s: token id %u at position %zu is out of range (vocab_size %d)",
                          path, (unsigned)id, i, vocab_size);
    }
    if (rc) {
        munmap(map, size);
        memset(s, 0, sizeof *s);
        return rc;
    }
    s->path = xstrdup(path);
    return 0;
}

void mtp_shard_free(mtp_shard *s) {
    if (s->map) munmap((void *)s->map, s->map_len);
    free(s->path);
    memset(s, 0, sizeof *s);
}

int mtp_shard_width(int vocab_size) { return vocab_size <= 65536 ? 2 : 4; }

int mtp_shard_write_width(const char *path, const mtp_token *tokens, size_t n, int width,
                          mtp_err *err) {
    MTP_ASSERT(width == 2 || width == 4);
    if (n == 0 || n > INT32_MAX) return mtp_fail(err, "%s: a shard holds 1..2^31-1 tokens", path);
    for (size_t i = 0; width == 2 && i < n; i++)
        if (tokens[i] > UINT16_MAX)
            return mtp_fail(err, "%s: token id %u at position %zu does not fit a uint16 shard",
                            path, (unsigned)tokens[i], i);
    unsigned char hdr[MTP_SHARD_HEADER_INTS * 4] = {0};
    uint32_t h[3] = {width == 2 ? MTP_SHARD16_MAGIC : MTP_SHARD32_MAGIC,
                     width == 2 ? MTP_SHARD16_VERSION : MTP_SHARD32_VERSION, (uint32_t)n};
    for (int k = 0; k < 3; k++)
        for (int b = 0; b < 4; b++) hdr[4 * k + b] = (unsigned char)(h[k] >> 8 * b);
    mtp_atomic_file af;
    if (mtp_atomic_open(&af, path, err)) return -1;
    mtp_atomic_write(&af, hdr, sizeof hdr);
    unsigned char buf[4 * 4096];
    for (size_t i = 0; i < n; i += 4096) {
        size_t m = n - i < 4096 ? n - i : 4096;
        for (size_t j = 0; j < m; j++)
            for (int b = 0; b < width; b++) buf[j * width + b] = (unsigned char)(tokens[i + j] >> 8 * b);
        mtp_atomic_write(&af, buf, m * width);
    }
    return mtp_atomic_commit(&af, err);
}

int mtp_shard_write(const char *path, const mtp_token *tokens, size_t n, int vocab_size,
                    mtp_err *err) {
    MTP_ASSERT(vocab_size > 0);
    for (size_t i = 0; i < n; i++)
        if (tokens[i] >= (mtp_token)vocab_size)
            return mtp_fail(err, "%s: token id %u at position %zu is out of range (vocab_size %d)",
                            path, (unsigned)tokens[i], i, vocab_size);
    return mtp_shard_write_width(path, tokens, n, mtp_shard_width(vocab_size), err);
}

/* ---- shard sets --------------------------------------------------------------------- */

typedef struct {
    char **p;
    int n, cap;
} strlist;

static void strlist_push(strlist *l, char *s) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 8;
        l->p = xrealloc(l->p, (size_t)l->cap * sizeof *l->p);
    }
    l->p[l->n++] = s;
}

static void strlist_free(strlist *l) {
    for (int i = 0; i < l->n; i++) free(l->p[i]);
    free(l->p);
}

static int by_bytes(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One list entry (escapes kept): a pattern (an unescaped * ? or [) goes through glob(3),
 * which sorts and removes the escapes; anything else is a path, unescaped here. */
static int expand_entry(const char *entry, const char *list, strlist *out, mtp_err *err) {
    if (!*entry) return mtp_fail(err, "'%s': empty entry in the shard list", list);
    int pattern = 0;
    for (const char *p = entry; *p; p++) {
        if (*p == '\\' && p[1]) p++;
        else if (*p == '*' || *p == '?' || *p == '[') pattern = 1;
    }
    if (!pattern) {
        char *path = xmalloc(strlen(entry) + 1), *w = path;
        for (const char *p = entry; *p; p++) *w++ = *p == '\\' && p[1] ? *++p : *p;
        *w = 0;
        strlist_push(out, path);
        return 0;
    }
    glob_t g; /* sorted below by bytes: glob's own order follows the locale */
    int rc = glob(entry, GLOB_NOSORT, NULL, &g);
    if (rc == GLOB_NOMATCH) return mtp_fail(err, "%s: no file matches this pattern", entry);
    if (rc != 0) {
        globfree(&g);
        return mtp_fail(err, "%s: cannot expand the pattern (%s)", entry,
                        rc == GLOB_NOSPACE ? "out of memory" : "read error");
    }
    qsort(g.gl_pathv, g.gl_pathc, sizeof *g.gl_pathv, by_bytes);
    for (size_t i = 0; i < g.gl_pathc; i++) strlist_push(out, xstrdup(g.gl_pathv[i]));
    globfree(&g);
    return 0;
}

int mtp_shardset_open(mtp_shardset *ss, const char *list, int vocab_size, mtp_err *err) {
    memset(ss, 0, sizeof *ss);
    strlist paths = {0};
    size_t len = strlen(list);
    char *entry = xmalloc(len + 1);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i <= len;) { /* split at unescaped commas */
        size_t k = 0;
        for (; i < len && list[i] != ','; i++) {
            if (list[i] == '\\' && i + 1 < len) entry[k++] = list[i++];
            entry[k++] = list[i];
        }
        entry[k] = 0;
        rc = expand_entry(entry, list, &paths, err);
        i++; /* past the comma (or the end) */
    }
    free(entry);
    if (rc == 0) rc = mtp_shardset_open_paths(ss, (const char *const *)paths.p, paths.n, vocab_size, err);
    strlist_free(&paths);
    return rc;
}

int mtp_shardset_open_paths(mtp_shardset *ss, const char *const *paths, int n, int vocab_size,
                            mtp_err *err) {
    memset(ss, 0, sizeof *ss);
    MTP_ASSERT(n > 0);
    ss->shards = xcalloc(n, sizeof *ss->shards);
    ss->start = xcalloc(n + 1, sizeof *ss->start);
    for (int i = 0; i < n; i++) {
        if (mtp_shard_open(&ss->shards[i], paths[i], vocab_size, err)) {
            mtp_shardset_free(ss);
            return -1;
        }
        ss->n++;
        ss->start[i + 1] = ss->start[i] + ss->shards[i].n;
    }
    ss->total = ss->start[n];
    return 0;
}

void mtp_shardset_free(mtp_shardset *ss) {
    for (int i = 0; i < ss->n; i++) mtp_shard_free(&ss->shards[i]);
    free(ss->shards);
    free(ss->start);
    memset(ss, 0, sizeof *ss);
}

int mtp_shardset_find(const uint64_t *start, int n, uint64_t i) {
    MTP_ASSERT(n > 0 && i < start[n]);
    int lo = 0, hi = n - 1; /* the last s with start[s] <= i */
    while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2;
        if (start[mid] <= i) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

void mtp_shardset_read(const mtp_shardset *ss, uint64_t pos, size_t len, mtp_token *out) {
    pos %= ss->total;
    int s = mtp_shardset_find(ss->start, ss->n, pos);
    for (size_t done = 0; done < len;) {
        const mtp_shard *sh = &ss->shards[s];
        uint64_t off = pos - ss->start[s];
        size_t m = len - done < sh->n - off ? len - done : (size_t)(sh->n - off);
        for (size_t j = 0; j < m; j++) out[done + j] = mtp_shard_at(sh, off + j);
        done += m;
        s = s + 1 == ss->n ? 0 : s + 1; /* the shard is used up (or we are done) */
        pos = ss->start[s];
    }
}

/* Appends path, escaped, at buf[*k] (stops counting at cap). */
static void put_escaped(char *buf, size_t cap, size_t *k, const char *path) {
    for (const char *p = path; *p; p++) {
        if (strchr("\\,*?[", *p) && *k < cap) buf[(*k)++] = '\\';
        if (*k < cap) buf[(*k)++] = *p;
    }
}

int mtp_shard_list_escape(char *buf, size_t cap, const char *path) {
    size_t k = 0;
    put_escaped(buf, cap, &k, path);
    if (k >= cap) return -1;
    buf[k] = 0;
    return 0;
}

int mtp_shardset_list(const mtp_shardset *ss, char *buf, size_t cap, mtp_err *err) {
    char *tmp = xmalloc(cap); /* buf changes only on success */
    size_t k = 0;
    for (int i = 0; i < ss->n; i++) {
        if (i && k < cap) tmp[k++] = ',';
        put_escaped(tmp, cap, &k, ss->shards[i].path);
    }
    if (k >= cap) {
        free(tmp);
        return mtp_fail(err, "%s ...: the list of %d shards expands to more than %zu bytes",
                        ss->shards[0].path, ss->n, cap - 1);
    }
    memcpy(buf, tmp, k);
    buf[k] = 0;
    free(tmp);
    return 0;
}

/* ---- batches ------------------------------------------------------------------------ */

void mtp_batcher_init(mtp_batcher *bt, const mtp_shardset *s, int B, int T, int n_future,
                      int shuffle, uint64_t seed) {
    MTP_ASSERT(s->total > 0);
    memset(bt, 0, sizeof *bt);
    bt->set = s;
    bt->B = B;
    bt->rows = B;
    bt->T = T;
    bt->n_future = n_future;
    bt->shuffle = shuffle;
    bt->seed = seed;
    bt->n_windows = s->total / T ? s->total / T : 1;
    bt->perm_epoch = -1;
    if (shuffle) bt->perm = xmalloc(bt->n_windows * sizeof(uint64_t));
}

void mtp_batcher_rows(mtp_batcher *bt, int row0, int rows) {
    MTP_ASSERT(row0 >= 0 && rows >= 1 && row0 + rows <= bt->B);
    bt->row0 = row0;
    bt->rows = rows;
}

void mtp_batcher_free(mtp_batcher *bt) {
    free(bt->perm);
    memset(bt, 0, sizeof *bt);
}

/* Fisher-Yates with a generator seeded from (seed, epoch). */
static void make_epoch_order(mtp_batcher *bt, int64_t epoch) {
    mtp_rng rng = {bt->seed * 0x9E3779B97F4A7C15ull + (uint64_t)epoch + 1};
    for (uint64_t i = 0; i < bt->n_windows; i++) bt->perm[i] = i;
    for (uint64_t i = bt->n_windows; i > 1; i--) {
        uint64_t j = mtp_rng_below(&rng, i), t = bt->perm[i - 1];
        bt->perm[i - 1] = bt->perm[j];
        bt->perm[j] = t;
    }
    bt->perm_epoch = epoch;
}

void mtp_batcher_get(mtp_batcher *bt, uint64_t k, mtp_token *window) {
    int T = bt->T, W = T + bt->n_future;
    for (int b = 0; b < bt->rows; b++) {
        uint64_t w = k * bt->B + bt->row0 + b, start;
        if (bt->shuffle) {
            int64_t epoch = (int64_t)(w / bt->n_windows);
            if (epoch != bt->perm_epoch) make_epoch_order(bt, epoch);
            start = bt->perm[w % bt->n_windows] * T;
        } else { /* w*T modulo the total, without overflowing 64 bits */
            __extension__ unsigned __int128 wt = (unsigned __int128)w * (unsigned)T;
            start = (uint64_t)(wt % bt->set->total);
        }
        mtp_shardset_read(bt->set, start, (size_t)W, window + (size_t)b * W);
    }
}
