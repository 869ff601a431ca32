/* safetensors.c: the safetensors reader (mmap + full validation) and the atomic writer
 * declared in safetensors.h. It is not a general tensor library: it converts F32/BF16/F16
 * to float and writes what the caller hands it, byte for byte. */
#define _DEFAULT_SOURCE /* madvise */
#include "formats/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/half.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c reads and writes raw little-endian data: it needs a little-endian host"
#endif

/* Largest integer a JSON number (a double) holds exactly; larger shapes/offsets are refused. */
#define MAX_EXACT ((uint64_t)1 << 53)

/* Indexed by mtp_dtype. */
static const char *const dtype_names[] = {"F32", "BF16", "F16", "I32", "U16", "I64", "I8", "U8"};
static const size_t dtype_sizes[] = {4, 2, 2, 4, 2, 8, 1, 1};
#define N_DTYPES ((int)(sizeof dtype_sizes / sizeof dtype_sizes[0]))

static int dtype_from_name(const char *s, mtp_dtype *out) {
    for (int i = 0; i < N_DTYPES; i++)
        if (strcmp(s, dtype_names[i]) == 0) {
            *out = (mtp_dtype)i;
            return 0;
        }
    return -1;
}

/* A JSON number that is an exact integer in [0, MAX_EXACT]. */
static int json_uint(const cJSON *x, uint64_t *out) {
    if (!cJSON_IsNumber(x)) return -1;
    double d = x->valuedouble;
    if (!(d >= 0 && d <= (double)MAX_EXACT) || (double)(uint64_t)d != d) return -1;
    *out = (uint64_t)d;
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Returns a key that occurs twice among obj's members (cJSON keeps both), or NULL. */
static const char *duplicate_key(const cJSON *obj) {
    int n = cJSON_GetArraySize(obj), k = 0;
    const char **keys = xmalloc((size_t)n * sizeof *keys);
    const cJSON *it;
    cJSON_ArrayForEach(it, obj) keys[k++] = it->string;
    qsort(keys, (size_t)n, sizeof *keys, cmp_str);
    const char *dup = NULL;
    for (int i = 1; i < n && !dup; i++)
        if (strcmp(keys[i - 1], keys[i]) == 0) dup = keys[i];
    free(keys);
    return dup;
}

/* Fills t (whose name is set) from its header entry; offsets are checked against the
 * data section [data, data + data_size). */
static int parse_tensor(const char *path, const cJSON *item, mtp_st_tensor *t,
                        const uint8_t *data, size_t data_size, mtp_err *err) {
    if (!cJSON_IsObject(item)) return mtp_fail(err, "%s: tensor '%s' is not a JSON object", path, t->name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    if (!cJSON_IsString(dt)) return mtp_fail(err, "%s: tensor '%s' has no dtype string", path, t->name);
    if (dtype_from_name(dt->valuestring, &t->dtype) != 0)
        return mtp_fail(err, "%s: tensor '%s' has unsupported dtype '%s' (F32 BF16 F16 I32 U16 I64 I8 U8)", path,
                        t->name, dt->valuestring);

    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    if (!cJSON_IsArray(shape)) return mtp_fail(err, "%s: tensor '%s' has no shape array", path, t->name);
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > MTP_ST_MAX_DIMS)
        return mtp_fail(err, "%s: tensor '%s' has %d dims (at most %d)", path, t->name, ndim, MTP_ST_MAX_DIMS);
    size_t numel = 1;
    const cJSON *d;
    cJSON_ArrayForEach(d, shape) {
        uint64_t v;
        if (json_uint(d, &v) != 0)
            return mtp_fail(err, "%s: tensor '%s' shape holds something other than a non-negative integer",
                            path, t->name);
        if (v != 0 && numel > SIZE_MAX / v)
            return mtp_fail(err, "%s: tensor '%s' shape overflows the element count", path, t->name);
        t->shape[t->ndim++] = (int64_t)v;
        numel *= v;
    }

    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    uint64_t begin, end;
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || json_uint(offs->child, &begin) != 0 ||
        json_uint(offs->child->next, &end) != 0)
        return mtp_fail(err, "%s: tensor '%s' data_offsets is not [begin, end] of non-negative integers",
                        path, t->name);
    if (begin > end) return mtp_fail(err, "%s: tensor '%s' data_offsets begin > end", path, t->name);
    if (end > data_size)
        return mtp_fail(err, "%s: tensor '%s' data_offsets outside the file (end %" PRIu64 ", data section %zu bytes)",
                        path, t->name, end, data_size);
    size_t nbytes = (size_t)(end - begin), esize = dtype_sizes[t->dtype];
    if (nbytes % esize != 0 || nbytes / esize != numel)
        return mtp_fail(err, "%s: tensor '%s' has %zu bytes but shape x dtype needs %zu elements of %zu bytes",
                        path, t->name, nbytes, numel, esize);
    t->numel = numel;
    t->nbytes = nbytes;
    t->data = data + begin;
    return 0;
}

static int parse_metadata(mtp_safetensors *st, const cJSON *meta, mtp_err *err) {
    if (!cJSON_IsObject(meta)) return mtp_fail(err, "%s: __metadata__ is not a JSON object", st->path);
    const char *dup = duplicate_key(meta);
    if (dup) return mtp_fail(err, "%s: __metadata__ has duplicate key '%s'", st->path, dup);
    int n = cJSON_GetArraySize(meta);
    st->meta_keys = xcalloc((size_t)n, sizeof *st->meta_keys);
    st->meta_vals = xcalloc((size_t)n, sizeof *st->meta_vals);
    const cJSON *it;
    cJSON_ArrayForEach(it, meta) {
        if (!cJSON_IsString(it))
            return mtp_fail(err, "%s: __metadata__ value of '%s' is not a string", st->path, it->string);
        st->meta_keys[st->n_meta] = xstrdup(it->string);
        st->meta_vals[st->n_meta++] = xstrdup(it->valuestring);
    }
    return 0;
}

/* Offset order; ties (zero-size tensors) by size, then name, so the order is deterministic. */
static int cmp_tensor(const void *a, const void *b) {
    const mtp_st_tensor *x = a, *y = b;
    if (x->data != y->data) return x->data < y->data ? -1 : 1;
    if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int parse_header(mtp_safetensors *st, const cJSON *root, size_t hdr_len, mtp_err *err) {
    const char *path = st->path;
    const char *dup = duplicate_key(root);
    if (dup) return mtp_fail(err, "%s: duplicate key '%s' in the header", path, dup);
    const uint8_t *data = st->map + 8 + hdr_len;
    size_t data_size = st->size - 8 - hdr_len;
    st->tensors = xcalloc((size_t)cJSON_GetArraySize(root), sizeof *st->tensors);
    const cJSON *it;
    cJSON_ArrayForEach(it, root) {
        if (strcmp(it->string, "__metadata__") == 0) {
            if (parse_metadata(st, it, err) != 0) return -1;
            continue;
        }
        mtp_st_tensor *t = &st->tensors[st->n_tensors++];
        t->name = xstrdup(it->string);
        if (parse_tensor(path, it, t, data, data_size, err) != 0) return -1;
    }
    qsort(st->tensors, (size_t)st->n_tensors, sizeof *st->tensors, cmp_tensor);
    size_t pos = 0; /* the tensors must tile the data section exactly */
    for (int i = 0; i < st->n_tensors; i++) {
        const mtp_st_tensor *t = &st->tensors[i];
        size_t off = (size_t)(t->data - data);
        if (off < pos) return mtp_fail(err, "%s: tensor '%s' overlaps the previous tensor", path, t->name);
        if (off > pos) return mtp_fail(err, "%s: gap of %zu bytes before tensor '%s'", path, off - pos, t->name);
        pos = off + t->nbytes;
    }
    if (pos != data_size)
        return mtp_fail(err, "%s: %zu trailing bytes after the last tensor", path, data_size - pos);
    return 0;
}

static int map_file(mtp_safetensors *st, mtp_err *err) {
    return mtp_map_file(st->path, 8, "a safetensors file (its 8-byte header length)", &st->map, &st->size, err);
}

static int parse_file(mtp_safetensors *st, mtp_err *err) {
    const char *path = st->path;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | st->map[i];
    if (n == 0) return mtp_fail(err, "%s: header length is 0", path);
    if (n > MTP_ST_MAX_HEADER)
        return mtp_fail(err, "%s: header length %" PRIu64 " exceeds the limit of %u bytes", path, n, MTP_ST_MAX_HEADER);
    if (n > st->size - 8)
        return mtp_fail(err, "%s: header length %" PRIu64 " runs past the end of the file (%zu bytes)", path, n,
                        st->size);
    /* A NUL-terminated copy: cJSON never reads past it, whatever the bytes are. */
    char *text = xmalloc((size_t)n + 1);
    memcpy(text, st->map + 8, (size_t)n);
    text[n] = 0;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, (size_t)n, &end, 0);
    int rc;
    if (!root) {
        rc = mtp_fail(err, "%s: header is not valid JSON", path);
    } else {
        end += strspn(end, " \t\r\n");
        if (end != text + n) rc = mtp_fail(err, "%s: header has bytes after the JSON value", path);
        else if (!cJSON_IsObject(root)) rc = mtp_fail(err, "%s: header is not a JSON object", path);
        else rc = parse_header(st, root, (size_t)n, err);
    }
    cJSON_Delete(root);
    free(text);
    return rc;
}

int mtp_st_open(mtp_safetensors *st, const char *path, mtp_err *err) {
    memset(st, 0, sizeof *st);
    st->path = xstrdup(path);
    if (map_file(st, err) != 0 || parse_file(st, err) != 0) {
        mtp_st_close(st);
        return -1;
    }
    return 0;
}

void mtp_st_close(mtp_safetensors *st) {
    for (int i = 0; i < st->n_tensors; i++) free(st->tensors[i].name);
    for (int i = 0; i < st->n_meta; i++) {
        free(st->meta_keys[i]);
        free(st->meta_vals[i]);
    }
    free(st->tensors);
    free(st->meta_keys);
    free(st->meta_vals);
    if (st->map) munmap(st->map, st->size);
    free(st->path);
    memset(st, 0, sizeof *st);
}

const mtp_st_tensor *mtp_st_find(const mtp_safetensors *st, const char *name) {
    for (int i = 0; i < st->n_tensors; i++)
        if (strcmp(st->tensors[i].name, name) == 0) return &st->tensors[i];
    return NULL;
}

const char *mtp_st_meta(const mtp_safetensors *st, const char *key) {
    for (int i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta_keys[i], key) == 0) return st->meta_vals[i];
    return NULL;
}

static float bits_to_float(uint32_t bits) {
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

void mtp_st_release(const mtp_st_tensor *t) { mtp_release_pages(t->data, t->nbytes); }

int mtp_st_to_f32(const mtp_safetensors *st, const mtp_st_tensor *t, float *out, mtp_err *err) {
    const uint8_t *p = t->data;
    switch (t->dtype) {
    case MTP_DT_F32:
        if (t->nbytes) memcpy(out, p, t->nbytes); /* the mapping may be unaligned */
        return 0;
    case MTP_DT_BF16:
        for (size_t i = 0; i < t->numel; i++) out[i] = bits_to_float((uint32_t)(p[2 * i] | p[2 * i + 1] << 8) << 16);
        return 0;
    case MTP_DT_F16:
        for (size_t i = 0; i < t->numel; i++) out[i] = mtp_f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        return 0;
    default:
        return mtp_fail(err, "%s: tensor '%s' has dtype %s, which does not convert to float", st->path, t->name,
                        dtype_names[t->dtype]);
    }
}

/* cJSON reports running out of memory as NULL: abort like xmalloc does. */
static void *cj(void *p) {
    if (!p) {
        fprintf(stderr, "mtp: out of memory building a safetensors header\n");
        abort();
    }
    return p;
}

/* [v0, v1, ...] as exact decimal integers (cJSON would print large doubles as 1e+15). */
static cJSON *uint_array(const uint64_t *v, int n) {
    cJSON *a = cj(cJSON_CreateArray());
    for (int i = 0; i < n; i++) {
        char buf[24];
        snprintf(buf, sizeof buf, "%" PRIu64, v[i]);
        cJSON_AddItemToArray(a, cj(cJSON_CreateRaw(buf)));
    }
    return a;
}

/* Adds entry e's header item; *off is its begin offset and advances past it. */
static int add_entry(cJSON *root, const char *path, const mtp_st_entry *e, uint64_t *off, mtp_err *err) {
    if (e->ndim < 0 || e->ndim > MTP_ST_MAX_DIMS)
        return mtp_fail(err, "%s: tensor '%s' has %d dims (0..%d allowed)", path, e->name, e->ndim, MTP_ST_MAX_DIMS);
    if (cJSON_GetObjectItemCaseSensitive(root, e->name))
        return mtp_fail(err, "%s: tensor name '%s' is used twice (or is reserved)", path, e->name);
    uint64_t dims[MTP_ST_MAX_DIMS], numel = 1;
    for (int d = 0; d < e->ndim; d++) {
        if (e->shape[d] < 0 || (uint64_t)e->shape[d] > MAX_EXACT)
            return mtp_fail(err, "%s: tensor '%s' has dim %" PRId64 " out of range", path, e->name, e->shape[d]);
        dims[d] = (uint64_t)e->shape[d];
        if (dims[d] != 0 && numel > MAX_EXACT / 8 / dims[d])
            return mtp_fail(err, "%s: tensor '%s' is too large", path, e->name);
        numel *= dims[d];
    }
    uint64_t offs[2] = {*off, *off + numel * dtype_sizes[e->dtype]};
    if (offs[1] > MAX_EXACT) return mtp_fail(err, "%s: tensors total more than 2^53 bytes", path);
    cJSON *t = cj(cJSON_AddObjectToObject(root, e->name));
    cj(cJSON_AddStringToObject(t, "dtype", dtype_names[e->dtype]));
    cJSON_AddItemToObject(t, "shape", uint_array(dims, e->ndim));
    cJSON_AddItemToObject(t, "data_offsets", uint_array(offs, 2));
    *off = offs[1];
    return 0;
}

static char *build_header(const char *path, const mtp_st_entry *entries, int n, const char *const *meta,
                          int n_meta, mtp_err *err) {
    cJSON *root = cj(cJSON_CreateObject());
    cJSON *md = cj(cJSON_AddObjectToObject(root, "__metadata__"));
    char *json = NULL;
    for (int k = 0; k < n_meta; k++) {
        if (cJSON_GetObjectItemCaseSensitive(md, meta[2 * k])) {
            mtp_fail(err, "%s: metadata key '%s' is used twice", path, meta[2 * k]);
            goto out;
        }
        cj(cJSON_AddStringToObject(md, meta[2 * k], meta[2 * k + 1]));
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++)
        if (add_entry(root, path, &entries[i], &off, err) != 0) goto out;
    json = cj(cJSON_PrintUnformatted(root));
out:
    cJSON_Delete(root);
    return json;
}

size_t mtp_st_entry_bytes(const mtp_st_entry *e) {
    size_t numel = 1;
    for (int d = 0; d < e->ndim; d++) numel *= (size_t)e->shape[d];
    return numel * dtype_sizes[e->dtype];
}

int mtp_st_write_stream(const char *path, const mtp_st_entry *entries, int n, const char *const *meta,
                        int n_meta, mtp_st_fill fill, void *ctx, mtp_err *err) {
    char *json = build_header(path, entries, n, meta, n_meta, err);
    if (!json) return -1;
    size_t len = strlen(json), padded = (len + 7) / 8 * 8, most = 0;
    uint8_t hdr[8];
    for (int i = 0; i < 8; i++) hdr[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    mtp_atomic_file af;
    if (mtp_atomic_open(&af, path, err) != 0) {
        free(json);
        return -1;
    }
    /* A failed write sticks in af: later writes are skipped and commit reports it. */
    mtp_atomic_write(&af, hdr, sizeof hdr);
    mtp_atomic_write(&af, json, len);
    mtp_atomic_write(&af, "        ", padded - len);
    free(json);
    for (int i = 0; i < n; i++)
        if (!entries[i].data && mtp_st_entry_bytes(&entries[i]) > most) most = mtp_st_entry_bytes(&entries[i]);
    MTP_ASSERT(fill || !most); /* mtp_st_write: every entry has its data */
    uint8_t *buf = most ? xmalloc(most) : NULL; /* one tensor at a time */
    for (int i = 0; i < n; i++) {
        size_t bytes = mtp_st_entry_bytes(&entries[i]);
        if (entries[i].data || !bytes) {
            mtp_atomic_write(&af, entries[i].data, bytes);
        } else if (fill(ctx, i, buf, err) == 0) {
            mtp_atomic_write(&af, buf, bytes);
        } else {
            free(buf);
            mtp_atomic_abort(&af);
            return -1;
        }
    }
    free(buf);
    return mtp_atomic_commit(&af, err);
}

int mtp_st_write(const char *path, const mtp_st_entry *entries, int n, const char *const *meta, int n_meta,
                 mtp_err *err) {
    return mtp_st_write_stream(path, entries, n, meta, n_meta, NULL, NULL, err);
}
