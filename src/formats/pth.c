/* pth.c: PyTorch checkpoints (pth.h): the file is mapped, its zip directory read
 * (formats/zip.c), the archive's data.pkl interpreted (formats/pickle.c, which runs
 * nothing), and every tensor checked against its storage record before any is handed out.
 * Tensors stay views into the map: shared storages and strided views cost nothing until
 * mtp_pth_to_f32 gathers them. */
#define _DEFAULT_SOURCE /* madvise */
#include "formats/pth.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/half.h"
#include "formats/pickle.h"
#include "formats/zip.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "pth.c reads little-endian storages in place: it needs a little-endian host"
#endif

size_t mtp_pth_dtype_size(mtp_dtype t) { return t == MTP_DT_F32 ? 4 : 2; }

/* The record `<folder>/<rest>`, or NULL. */
static const mtp_zip_entry *record(const mtp_zip *z, const char *folder, const char *rest) {
    size_t n = strlen(folder) + 1 + strlen(rest) + 1;
    char *name = xmalloc(n);
    snprintf(name, n, "%s/%s", folder, rest);
    const mtp_zip_entry *e = mtp_zip_find(z, name);
    free(name);
    return e;
}

/* torch.save names the archive's one folder after the file (consolidated.pth ->
 * consolidated/; torch 2.x may write archive/), and its reader takes the folder from the
 * first record's name: so do we. */
static int find_folder(const mtp_zip *z, const char *path, char **folder, mtp_err *err) {
    const char *first = z->n ? z->entries[0].name : "";
    const char *slash = strchr(first, '/');
    if (!slash || slash == first)
        return mtp_fail(err, "%s: not a torch.save archive (its first record '%s' is in no folder)", path, first);
    *folder = xmalloc((size_t)(slash - first) + 1);
    memcpy(*folder, first, (size_t)(slash - first));
    (*folder)[slash - first] = 0;
    if (!record(z, *folder, "data.pkl"))
        return mtp_fail(err, "%s: not a torch.save archive (no record %s/data.pkl)", path, *folder);
    return 0;
}

/* torch 2.x writes a byteorder record; storages are read in place, so only "little" is. */
static int check_byteorder(const mtp_zip *z, const uint8_t *data, const char *folder, const char *path,
                           mtp_err *err) {
    const mtp_zip_entry *e = record(z, folder, "byteorder");
    if (!e) return 0; /* torch 1.x: always little-endian */
    const char *s = (const char *)data + e->offset;
    if (e->size == 6 && memcmp(s, "little", 6) == 0) return 0;
    if (e->size == 3 && memcmp(s, "big", 3) == 0)
        return mtp_fail(err, "%s: a big-endian checkpoint (byteorder record says 'big'): only little-endian is read", path);
    return mtp_fail(err, "%s: the byteorder record is neither 'little' nor 'big'", path);
}

/* Elements of the tensor, and the storage elements it reaches: offset + sum (shape-1) *
 * stride + 1 (0 for an empty tensor), each -1 when it overflows. */
static void extent(const mtp_pk_tensor *t, uint64_t *numel, uint64_t *reach) {
    uint64_t n = 1, r = (uint64_t)t->offset, lim = (uint64_t)1 << 62;
    int empty = 0, over = 0;
    for (int d = 0; d < t->ndim; d++) {
        uint64_t s = (uint64_t)t->shape[d], st = (uint64_t)t->stride[d];
        if (s == 0) empty = 1;
        else if (n > lim / s) over = 1;
        else n *= s;
        if (s && st && (s - 1 > lim / st || r > lim - (s - 1) * st)) over = 1;
        else if (s) r += (s - 1) * st;
    }
    *numel = empty ? 0 : over ? UINT64_MAX : n;
    *reach = empty ? 0 : over ? UINT64_MAX : r + 1;
}

static int check_storage(const mtp_pk_storage *s, const mtp_zip_entry *e, const char *path, mtp_err *err) {
    size_t es = mtp_pth_dtype_size(s->dtype);
    if ((uint64_t)s->numel > SIZE_MAX / es || (size_t)s->numel * es != e->size)
        return mtp_fail(err, "%s: storage record %s holds %zu bytes but the pickle declares %" PRId64 " elements of %zu bytes",
                        path, e->name, e->size, s->numel, es);
    return 0;
}

static int cmp_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* A dict has each key once; a pickle can still say one twice (a later SETITEM). */
static int check_unique(const mtp_pth *p, mtp_err *err) {
    size_t n = (size_t)p->n_tensors;
    char **names = xmalloc((n ? n : 1) * sizeof *names);
    for (size_t i = 0; i < n; i++) names[i] = p->tensors[i].name;
    qsort(names, n, sizeof *names, cmp_name);
    int rc = 0;
    for (size_t i = 1; i < n && rc == 0; i++)
        if (strcmp(names[i - 1], names[i]) == 0) rc = mtp_fail(err, "%s: tensor name '%s' appears twice", p->path, names[i]);
    free(names);
    return rc;
}

/* Fills p->tensors from the state dict, each checked against its storage. */
static int resolve(mtp_pth *p, const mtp_zip *z, const uint8_t *data, const char *folder,
                   const mtp_pk_state_dict *sd, mtp_err *err) {
    const mtp_zip_entry **rec = xcalloc(sd->n_storages ? (size_t)sd->n_storages : 1, sizeof *rec);
    int rc = 0;
    for (int i = 0; i < sd->n_storages && rc == 0; i++) {
        size_t n = strlen(sd->storages[i].key) + 6;
        char *rest = xmalloc(n);
        snprintf(rest, n, "data/%s", sd->storages[i].key);
        rec[i] = record(z, folder, rest);
        if (!rec[i]) rc = mtp_fail(err, "%s: no record %s/%s for storage '%s'", p->path, folder, rest, sd->storages[i].key);
        else rc = check_storage(&sd->storages[i], rec[i], p->path, err);
        free(rest);
    }
    p->tensors = xcalloc(sd->n_tensors ? (size_t)sd->n_tensors : 1, sizeof *p->tensors);
    for (int i = 0; i < sd->n_tensors && rc == 0; i++) {
        const mtp_pk_tensor *s = &sd->tensors[i];
        const mtp_pk_storage *st = &sd->storages[s->storage];
        mtp_pth_tensor *t = &p->tensors[p->n_tensors++];
        t->name = xstrdup(s->name);
        uint64_t numel, reach;
        extent(s, &numel, &reach);
        if (reach > (uint64_t)st->numel) {
            rc = mtp_fail(err, "%s: tensor '%s' reaches past its storage '%s' (%" PRId64 " elements)", p->path, t->name,
                          st->key, st->numel);
        } else if (numel > (uint64_t)st->numel) {
            /* only a view whose elements overlap (expand, as_strided) has more elements than
             * its storage; a checkpoint has no use for one, and refusing it bounds what
             * gathering a tensor can allocate by the file's size */
            rc = mtp_fail(err, "%s: tensor '%s' has %" PRIu64 " elements but its storage only %" PRId64
                          " (an overlapping view)", p->path, t->name, numel, st->numel);
        }
        t->dtype = st->dtype;
        t->ndim = s->ndim;
        memcpy(t->shape, s->shape, sizeof t->shape);
        memcpy(t->stride, s->stride, sizeof t->stride);
        t->numel = (size_t)numel;
        t->storage = data + rec[s->storage]->offset;
        t->storage_bytes = rec[s->storage]->size;
        t->offset = (size_t)s->offset;
    }
    free(rec);
    return rc ? rc : check_unique(p, err);
}

int mtp_pth_parse(mtp_pth *p, const uint8_t *data, size_t size, const char *path, mtp_err *err) {
    memset(p, 0, sizeof *p);
    p->path = xstrdup(path);
    mtp_zip z;
    if (mtp_zip_parse(&z, data, size, path, err) != 0) {
        mtp_pth_close(p);
        return -1;
    }
    char *folder = NULL;
    mtp_pk_state_dict sd = {0};
    int rc = find_folder(&z, path, &folder, err);
    if (rc == 0) rc = check_byteorder(&z, data, folder, path, err);
    if (rc == 0) {
        const mtp_zip_entry *pkl = record(&z, folder, "data.pkl");
        rc = mtp_pickle_state_dict(&sd, data + pkl->offset, pkl->size, path, err);
    }
    if (rc == 0) rc = resolve(p, &z, data, folder, &sd, err);
    mtp_pk_state_dict_free(&sd);
    free(folder);
    mtp_zip_free(&z);
    if (rc != 0) mtp_pth_close(p);
    return rc;
}

int mtp_pth_open(mtp_pth *p, const char *path, mtp_err *err) {
    memset(p, 0, sizeof *p);
    uint8_t *map;
    size_t size;
    if (mtp_map_file(path, 1, "a torch.save archive", &map, &size, err)) return -1;
    if (mtp_pth_parse(p, map, size, path, err) != 0) {
        munmap(map, size);
        return -1;
    }
    p->map = map;
    p->size = size;
    return 0;
}

void mtp_pth_close(mtp_pth *p) {
    for (int i = 0; i < p->n_tensors; i++) free(p->tensors[i].name);
    free(p->tensors);
    if (p->map) munmap(p->map, p->size);
    free(p->path);
    memset(p, 0, sizeof *p);
}

const mtp_pth_tensor *mtp_pth_find(const mtp_pth *p, const char *name) {
    for (int i = 0; i < p->n_tensors; i++)
        if (strcmp(p->tensors[i].name, name) == 0) return &p->tensors[i];
    return NULL;
}

static int is_contiguous(const mtp_pth_tensor *t) {
    int64_t want = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->stride[d] != want) return 0; /* a size-1 dim's stride is free */
        want *= t->shape[d];
    }
    return 1;
}

/* Calls run(ctx, src, n, step) for each row of the last dim in row-major order, src the
 * first element's bytes and step the distance between elements in bytes; a contiguous
 * tensor is one run. */
typedef void (*run_fn)(void *ctx, const uint8_t *src, size_t n, size_t step);
static void for_runs(const mtp_pth_tensor *t, run_fn run, void *ctx) {
    if (t->numel == 0) return; /* (its offset is not bounded by its storage) */
    size_t es = mtp_pth_dtype_size(t->dtype);
    const uint8_t *base = t->storage + t->offset * es;
    if (t->ndim == 0 || is_contiguous(t)) {
        run(ctx, base, t->numel, es);
        return;
    }
    int last = t->ndim - 1;
    size_t rows = t->numel / (size_t)t->shape[last];
    int64_t idx[MTP_ST_MAX_DIMS] = {0};
    for (size_t r = 0; r < rows; r++) {
        size_t off = 0;
        for (int d = 0; d < last; d++) off += (size_t)idx[d] * (size_t)t->stride[d];
        run(ctx, base + off * es, (size_t)t->shape[last], (size_t)t->stride[last] * es);
        for (int d = last - 1; d >= 0 && ++idx[d] == t->shape[d]; d--) idx[d] = 0; /* odometer */
    }
}

typedef struct {
    uint8_t *out;
    size_t es;
    mtp_dtype dtype;
} gather_ctx;

static void copy_run(void *ctx, const uint8_t *src, size_t n, size_t step) {
    gather_ctx *g = ctx;
    if (step == g->es) {
        memcpy(g->out, src, n * g->es);
    } else {
        for (size_t i = 0; i < n; i++) memcpy(g->out + i * g->es, src + i * step, g->es);
    }
    g->out += n * g->es;
}

static void f32_run(void *ctx, const uint8_t *src, size_t n, size_t step) {
    gather_ctx *g = ctx;
    float *o = (float *)(void *)g->out;
    for (size_t i = 0; i < n; i++, src += step) {
        uint32_t bits;
        if (g->dtype == MTP_DT_F32) memcpy(&bits, src, 4); /* the map may be unaligned */
        else if (g->dtype == MTP_DT_BF16) bits = (uint32_t)(src[0] | src[1] << 8) << 16;
        else {
            float f = mtp_f16_to_f32((uint16_t)(src[0] | src[1] << 8));
            memcpy(&bits, &f, 4);
        }
        memcpy(&o[i], &bits, 4);
    }
    g->out += n * sizeof(float);
}

void mtp_pth_gather(const mtp_pth_tensor *t, void *out) {
    gather_ctx g = {out, mtp_pth_dtype_size(t->dtype), t->dtype};
    for_runs(t, copy_run, &g);
}

void mtp_pth_to_f32(const mtp_pth_tensor *t, float *out) {
    gather_ctx g = {(uint8_t *)out, mtp_pth_dtype_size(t->dtype), t->dtype};
    for_runs(t, f32_run, &g);
}

void mtp_pth_release(const mtp_pth_tensor *t) {
    /* the storage bytes the tensor reaches; other tensors on the same storage read their
     * pages back from the file if they need them */
    if (t->numel == 0) return; /* nothing to let go (and its offset is not bounded) */
    size_t es = mtp_pth_dtype_size(t->dtype), reach = 1;
    for (int d = 0; d < t->ndim; d++) reach += (size_t)(t->shape[d] - 1) * (size_t)t->stride[d];
    mtp_release_pages(t->storage + t->offset * es, reach * es);
}
