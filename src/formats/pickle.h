/* pickle.h: a restricted pickle interpreter for the one thing torch.save writes into a
 * checkpoint's data.pkl: a dict or OrderedDict of name -> tensor. It never executes
 * anything: its values are inert (numbers, strings, tuples, lists, dicts, and three kinds
 * torch needs: a storage reference, a tensor view of one, and a handful of named globals),
 * and the only "calls" it knows are the ones it models itself: OrderedDict(),
 * torch._utils._rebuild_tensor_v2 / _rebuild_tensor / _rebuild_parameter. Any other global,
 * any opcode that would call or construct something else (INST, OBJ, NEWOBJ, EXT*), and any
 * opcode it does not know is refused with a message naming the file. The memo, the stack,
 * the nesting of marks and the memory used are bounded; nothing recurses.
 * docs/formats.md, "PyTorch checkpoints", lists what is accepted. */
#ifndef MTP_PICKLE_H
#define MTP_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "formats/safetensors.h" /* mtp_dtype, MTP_ST_MAX_DIMS */

/* One storage the pickle refers to, by persistent id
 * ('storage', torch.<T>Storage, key, location, numel): its bytes are the archive's record
 * data/<key>. */
typedef struct {
    char *key;
    mtp_dtype dtype; /* F32, BF16 or F16 */
    int64_t numel;   /* elements, as the pickle declares */
} mtp_pk_storage;

typedef struct {
    char *name;  /* the dict's key */
    int storage; /* index into the state dict's storages */
    int64_t offset; /* storage offset, in elements */
    int ndim;
    int64_t shape[MTP_ST_MAX_DIMS], stride[MTP_ST_MAX_DIMS]; /* as the pickle declares */
} mtp_pk_tensor;

typedef struct {
    mtp_pk_tensor *tensors; /* in the dict's order */
    int n_tensors;
    mtp_pk_storage *storages; /* each one that some tensor uses, once (shared storages) */
    int n_storages;
} mtp_pk_state_dict;

/* Interprets the pickle data[0, size) (path names it in messages). The top-level value must
 * be a dict or OrderedDict whose keys are strings and whose values are float32, bfloat16 or
 * float16 tensors. Shapes, strides and offsets are only checked to be >= 0: the caller
 * checks them against the storages' records. On failure *sd is left empty. */
int mtp_pickle_state_dict(mtp_pk_state_dict *sd, const uint8_t *data, size_t size, const char *path, mtp_err *err);
void mtp_pk_state_dict_free(mtp_pk_state_dict *sd);

#endif
