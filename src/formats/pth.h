/* pth.h: PyTorch checkpoints (torch.save's zip format: consolidated.pth) read without
 * executing anything: the zip container (stored records, ZIP64) and a restricted pickle
 * interpreter that accepts only what torch.save writes for a state dict of tensors and
 * refuses everything else with a message naming the file. The file is mapped; tensors point
 * into the map (docs/formats.md, "PyTorch checkpoints"). */
#ifndef MTP_PTH_H
#define MTP_PTH_H

#include <stddef.h>
#include <stdint.h>

#include "formats/safetensors.h"

typedef struct {
    char *name;            /* the state dict's key */
    mtp_dtype dtype;       /* F32, BF16 or F16 (other storage types are refused) */
    int ndim;
    int64_t shape[MTP_ST_MAX_DIMS];
    int64_t stride[MTP_ST_MAX_DIMS]; /* in elements */
    size_t numel;
    const uint8_t *storage; /* the storage record's bytes in the map (shared storages: the same) */
    size_t storage_bytes;
    size_t offset;          /* storage offset, in elements */
} mtp_pth_tensor;

typedef struct {
    char *path;
    uint8_t *map; /* NULL after mtp_pth_parse: the caller's buffer */
    size_t size;
    mtp_pth_tensor *tensors; /* in the pickle's order */
    int n_tensors;
} mtp_pth;

/* Opens and validates path: every tensor's elements (by shape, strides and offset) lie
 * inside its storage. On failure *p is left empty and err names path. */
int mtp_pth_open(mtp_pth *p, const char *path, mtp_err *err);
/* The same on a buffer the caller keeps (for the fuzzer and tests): tensors point into data. */
int mtp_pth_parse(mtp_pth *p, const uint8_t *data, size_t size, const char *path, mtp_err *err);
void mtp_pth_close(mtp_pth *p);
const mtp_pth_tensor *mtp_pth_find(const mtp_pth *p, const char *name);
/* The tensor's elements in row-major order as floats (numel of them), through its strides. */
void mtp_pth_to_f32(const mtp_pth_tensor *t, float *out);
/* The same in the tensor's own dtype: numel elements of mtp_pth_dtype_size bytes each. */
void mtp_pth_gather(const mtp_pth_tensor *t, void *out);
size_t mtp_pth_dtype_size(mtp_dtype t); /* of F32, BF16, F16 */
/* Lets go of the tensor's storage pages of the map (as mtp_st_release). */
void mtp_pth_release(const mtp_pth_tensor *t);

#endif
