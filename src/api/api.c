/* api.c: the public API's own functions (mtp.h): handles over the internal structs, and
 * entry points that take paths where the internals take opened files. Everything else
 * mtp.h declares is defined in its layer (mtp_train in train/, mtp_generate in decode/). */
#include "mtp.h"

#include <stdlib.h>
#include <string.h>

#include "formats/data.h"
#include "formats/safetensors.h"
#include "model/checkpoint.h"
#include "model/model.h"
#include "train/eval.h"
#include "train/train.h"

const char *mtp_version(void) { return MTP_VERSION; }

int mtp_model_open(mtp_model **m, const char *path, mtp_err *err) {
    *m = xmalloc(sizeof **m);
    if (mtp_model_load(*m, path, err) == 0) return 0;
    free(*m);
    *m = NULL;
    return -1;
}

int mtp_model_open_decode(mtp_model **m, const char *path, mtp_err *err) {
    *m = xmalloc(sizeof **m);
    if (mtp_model_load_decode(*m, path, err) == 0) return 0;
    free(*m);
    *m = NULL;
    return -1;
}

int mtp_model_decode_type(mtp_model *m, mtp_wtype t, mtp_err *err) {
    if (m->dec.type == t) return 0;
    if (!m->params)
        return mtp_fail(err, "the model is stored in %s and opened for decoding only, so it decodes in %s only "
                        "(mtp convert makes the other types)", mtp_wtype_name(m->dec.type), mtp_wtype_name(m->dec.type));
    mtp_model_decode_as(m, t);
    return 0;
}

mtp_wtype mtp_model_wtype(const mtp_model *m) { return m->dec.type; }

int mtp_model_create(mtp_model **m, const mtp_config *cfg, uint64_t seed, mtp_err *err) {
    *m = xmalloc(sizeof **m);
    if (mtp_config_validate(cfg, "config", err) == 0 && mtp_model_init(*m, cfg, err) == 0) {
        mtp_model_randomize(*m, seed);
        return 0;
    }
    free(*m);
    *m = NULL;
    return -1;
}

void mtp_model_close(mtp_model *m) {
    if (!m) return;
    mtp_model_free(m);
    free(m);
}

const mtp_config *mtp_model_config(const mtp_model *m) { return &m->cfg; }

const mtp_tokenizer *mtp_model_tokenizer(const mtp_model *m) { return m->tok; }

int mtp_tokenizer_from_model_file(mtp_tokenizer **t, const char *path, mtp_err *err) {
    *t = NULL;
    mtp_safetensors st; /* maps the file; only the tokenizer's bytes are read */
    if (mtp_st_open(&st, path, err)) return -1;
    const mtp_st_tensor *tt;
    char what[1200];
    snprintf(what, sizeof what, "%s: tensor '" MTP_TOKENIZER_TENSOR "'", path);
    int rc = mtp_file_tokenizer(&st, &tt, err);
    if (rc == 0 && !tt) rc = mtp_fail(err, "%s: the model carries no tokenizer", path);
    if (rc == 0) rc = mtp_tokenizer_from_bytes(t, tt->data, tt->nbytes, what, err);
    mtp_st_close(&st);
    return rc;
}

int mtp_model_set_tokenizer(mtp_model *m, const char *path, mtp_err *err) {
    char *data;
    size_t n;
    if (mtp_read_file(path, &data, &n, err)) return -1;
    int rc = mtp_model_attach_tokenizer(m, data, n, path, err);
    free(data);
    return rc;
}

int mtp_model_info_read(const char *path, mtp_model_info *info, mtp_err *err) {
    memset(info, 0, sizeof *info);
    mtp_safetensors st; /* maps the file and checks its header; no weight is read */
    if (mtp_st_open(&st, path, err)) return -1;
    int rc = mtp_model_file_config(&st, &info->cfg, err);
    if (rc == 0) {
        mtp_layout lay;
        mtp_layout_init(&lay, &info->cfg);
        info->params = mtp_count_params(&lay, &info->cfg);
        rc = mtp_check_params(&st, &lay, "", 1, err); /* names and shapes, as a load would */
        mtp_layout_free(&lay);
        info->n_tensors = st.n_tensors;
        info->file_bytes = st.size;
        for (int i = 0; i < st.n_tensors; i++) {
            mtp_dtype dt = st.tensors[i].dtype;
            int k = dt == MTP_DT_F32 ? 0 : dt == MTP_DT_BF16 ? 1 : dt == MTP_DT_F16 ? 2 : dt == MTP_DT_I8 ? 3 : -1;
            if (k >= 0) info->tensor_bytes[k] += st.tensors[i].nbytes;
        }
        const mtp_st_tensor *tok = mtp_st_find(&st, MTP_TOKENIZER_TENSOR);
        info->tokenizer_bytes = tok ? tok->nbytes : 0;
        const mtp_st_tensor *out = mtp_st_find(&st, "output.weight");
        info->wtype = !out ? MTP_F32 : out->dtype == MTP_DT_BF16 ? MTP_BF16 : out->dtype == MTP_DT_I8 ? MTP_Q8 : MTP_F32;
    }
    mtp_st_close(&st);
    return rc;
}

int mtp_train_state_open(const char *dir, mtp_model **m, mtp_train_opts *o, mtp_err *err) {
    *m = xmalloc(sizeof **m);
    if (mtp_train_peek_state(dir, *m, o, err) == 0) return 0;
    free(*m);
    *m = NULL;
    return -1;
}

int mtp_eval_file(const mtp_model *m, const char *data, int B, int T, int batches,
                  mtp_head_stats *out, mtp_err *err) {
    if (!m->params)
        return mtp_fail(err, "evaluation needs fp32 weights: open the model with mtp_model_open, not for decoding only");
    mtp_shardset s;
    if (mtp_shardset_open(&s, data, m->cfg.vocab_size, err)) return -1;
    int rc = mtp_eval(m, &s, B, T, batches, out, err);
    mtp_shardset_free(&s);
    return rc;
}

void mtp_gen_opts_default(mtp_gen_opts *o) {
    memset(o, 0, sizeof *o);
    o->spec = MTP_SPEC_BLOCK;
    o->sampling.top_p = 1.0f;
    o->max_tokens = 128;
    o->seed = 1;
    o->eos = -1;
}

void mtp_gen_result_free(mtp_gen_result *r) {
    free(r->tokens);
    memset(r, 0, sizeof *r);
}
