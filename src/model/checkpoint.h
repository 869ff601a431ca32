/* checkpoint.h: models as safetensors in Meta's llama layout (docs/formats.md).
 * Loading checks every expected tensor is present with its expected shape and nothing
 * else is there; F32, BF16 and F16 tensors are accepted. */
#ifndef MTP_CHECKPOINT_H
#define MTP_CHECKPOINT_H

#include "model/model.h"
#include "formats/safetensors.h"

/* Reads the config from the file's metadata and the weights; *m is initialised on success. */
int mtp_model_load(mtp_model *m, const char *path, mtp_err *err);
/* The config in an open model file's metadata, parsed and validated. */
int mtp_model_file_config(const mtp_safetensors *st, mtp_config *cfg, mtp_err *err);
/* Checks that an open file holds every tensor named `prefix` + parameter name with its
 * shape and a float dtype (and, if exact, nothing else); reads no tensor data. */
int mtp_check_params(const mtp_safetensors *st, const mtp_layout *lay, const char *prefix,
                     int exact, mtp_err *err);
/* Fills m's weights from tensors named `prefix` + parameter name in an open file. */
int mtp_load_params(const mtp_safetensors *st, const mtp_layout *lay, const char *prefix,
                    float *dst, int exact, mtp_err *err);
/* Writes the model with metadata format=mtp, config=<json>, plus extra (key, value) pairs. */
int mtp_model_save(const mtp_model *m, const char *path, const char *const *extra, int n_extra,
                   mtp_err *err);

#endif
