/* safetensors.h: read and write the safetensors format (docs/formats.md).
 * The reader maps the file and validates ALL of it before any tensor is handed out:
 * bounded header length, well-formed JSON, known dtypes, shapes whose element count
 * times the dtype size equals the byte length, offsets inside the data section,
 * tensors that tile the data section exactly (contiguous, non-overlapping), no
 * duplicate names, and a __metadata__ object of strings.
 * The writer is atomic (util.h): a reader never sees a half-written file. */
#ifndef MTP_SAFETENSORS_H
#define MTP_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

#define MTP_ST_MAX_DIMS 8
#define MTP_ST_MAX_HEADER (100u << 20) /* header JSON larger than this is refused */

typedef enum { MTP_DT_F32, MTP_DT_BF16, MTP_DT_F16, MTP_DT_I32, MTP_DT_U16, MTP_DT_I64, MTP_DT_I8, MTP_DT_U8 } mtp_dtype;

typedef struct {
    char *name;
    mtp_dtype dtype;
    int ndim;
    int64_t shape[MTP_ST_MAX_DIMS];
    size_t numel;
    const uint8_t *data; /* points into the mapping */
    size_t nbytes;
} mtp_st_tensor;

typedef struct {
    char *path;
    uint8_t *map;
    size_t size;
    mtp_st_tensor *tensors; /* in file order (sorted by offset) */
    int n_tensors;
    char **meta_keys, **meta_vals;
    int n_meta;
} mtp_safetensors;

/* Opens and fully validates path. On failure *st is left empty and err names path. */
int mtp_st_open(mtp_safetensors *st, const char *path, mtp_err *err);
void mtp_st_close(mtp_safetensors *st);
const mtp_st_tensor *mtp_st_find(const mtp_safetensors *st, const char *name);
const char *mtp_st_meta(const mtp_safetensors *st, const char *key); /* NULL if absent */
/* Lets go of a tensor's pages of the map (they leave the process's resident memory; the
 * data reads back from the file if touched again): for tensors packed into copies. */
void mtp_st_release(const mtp_st_tensor *t);
/* Copies a F32, BF16 or F16 tensor into out as float (numel floats); -1 for other dtypes. */
int mtp_st_to_f32(const mtp_safetensors *st, const mtp_st_tensor *t, float *out, mtp_err *err);

/* One tensor to write: its bytes as they will lie in the file (little-endian). */
typedef struct {
    const char *name;
    const void *data; /* NULL: mtp_st_write_stream's fill makes them */
    int ndim;
    int64_t shape[MTP_ST_MAX_DIMS];
    mtp_dtype dtype;  /* F32 (0) unless set */
} mtp_st_entry;

size_t mtp_st_entry_bytes(const mtp_st_entry *e);

/* Writes the entries (in the given order) and the metadata pairs meta[2k] -> meta[2k+1]
 * atomically to path. */
int mtp_st_write(const char *path, const mtp_st_entry *entries, int n, const char *const *meta,
                 int n_meta, mtp_err *err);
/* The same, where entries without data are made one at a time, when their turn comes, by
 * fill (mtp_st_entry_bytes into buf): memory holds one tensor, not the file. A fill that
 * fails (-1, err) leaves no file behind. */
typedef int (*mtp_st_fill)(void *ctx, int i, void *buf, mtp_err *err);
int mtp_st_write_stream(const char *path, const mtp_st_entry *entries, int n, const char *const *meta,
                        int n_meta, mtp_st_fill fill, void *ctx, mtp_err *err);

#endif
