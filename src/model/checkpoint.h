/* checkpoint.h: models as safetensors in Meta's llama layout (docs/formats.md).
 * Loading checks every expected tensor is present with its expected shape and nothing
 * else is there; F32, BF16 and F16 tensors are accepted, and 8-bit matrices: an I8
 * tensor NAME with its F16 scales NAME_scale, (rows, ceil(cols / 32)). */
#ifndef MTP_CHECKPOINT_H
#define MTP_CHECKPOINT_H

#include "model/model.h"
#include "formats/safetensors.h"

/* A model file may carry its tokenizer: the tokenizer file's bytes as this U8 tensor. */
#define MTP_TOKENIZER_TENSOR "tokenizer"
/* The tokenizer tensor of an open model file (checked: 1-D U8), or NULL when it has none. */
int mtp_file_tokenizer(const mtp_safetensors *st, const mtp_st_tensor **t, mtp_err *err);

/* Reads the config from the file's metadata and the weights as fp32 (bf16 and F16 widened,
 * 8-bit dequantized); *m is initialised on success. */
int mtp_model_load(mtp_model *m, const char *path, mtp_err *err);
/* For decoding only: a file whose matrices are all F32 (or F16) loads as mtp_model_load;
 * otherwise the model keeps no fp32 weights (params NULL) and decodes in the file's own
 * types (mtp_weights_from_file), the file staying mapped. */
int mtp_model_load_decode(mtp_model *m, const char *path, mtp_err *err);

/* A parameter's tensor in a file: t, and for an 8-bit matrix its scales. */
typedef struct {
    const mtp_st_tensor *t, *scale;
} mtp_param_tensor;
/* Finds `prefix` + p's name and checks its shape and dtype (and its scales'). */
int mtp_param_tensor_find(const mtp_safetensors *st, const char *prefix, const mtp_param *p,
                          mtp_param_tensor *out, mtp_err *err);
/* The config in an open model file's metadata, parsed and validated. */
int mtp_model_file_config(const mtp_safetensors *st, mtp_config *cfg, mtp_err *err);
/* The tensor as floats (numel): widened, or dequantized (an 8-bit matrix). */
int mtp_param_to_f32(const mtp_safetensors *st, const mtp_param_tensor *pt, const mtp_param *p, float *dst,
                     mtp_err *err);
/* Checks that an open file holds every tensor named `prefix` + parameter name with its
 * shape and a dtype above (and, if exact, nothing else); reads no tensor data. */
int mtp_check_params(const mtp_safetensors *st, const mtp_layout *lay, const char *prefix,
                     int exact, mtp_err *err);
/* Fills m's weights from tensors named `prefix` + parameter name in an open file. */
int mtp_load_params(const mtp_safetensors *st, const mtp_layout *lay, const char *prefix,
                    float *dst, int exact, mtp_err *err);
/* Writes the model with metadata format=mtp, config=<json>, plus extra (key, value) pairs. */
int mtp_model_save(const mtp_model *m, const char *path, const char *const *extra, int n_extra,
                   mtp_err *err);

#endif
