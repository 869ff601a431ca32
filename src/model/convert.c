/* convert.c: mtp_convert (mtp.h): a model file, or Meta's PyTorch checkpoint (meta.h),
 * written as an mtp model file with its matrices in a number type: F32, BF16 (rounded to
 * nearest even) or Q8 (docs/formats.md), the norms in F32, and the tokenizer it carries.
 * It streams: one tensor is in memory at a time (as floats, then in the new type),
 * and the source's pages are let go once read, so memory stays far under the model's size. */
#include "mtp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "core/util.h"
#include "kernels/ops.h"
#include "kernels/q8.h"
#include "model/checkpoint.h"
#include "model/meta.h"
#include "model/model.h"

/* Where the tensors come from: an mtp model file or a PyTorch checkpoint (Meta's). */
typedef struct {
    const mtp_safetensors *st;
    const mtp_pth *pth;
} source;

/* Parameter p of the source as floats; its pages of the source's map are let go. */
static int source_f32(const source *src, const mtp_param *p, float *f, mtp_err *err) {
    if (src->pth) {
        const mtp_pth_tensor *t = mtp_pth_find(src->pth, p->name); /* checked by mtp_meta_open */
        mtp_pth_to_f32(t, f);
        mtp_pth_release(t);
        return 0;
    }
    mtp_param_tensor pt;
    if (mtp_param_tensor_find(src->st, "", p, &pt, err) || mtp_param_to_f32(src->st, &pt, p, f, err)) return -1;
    mtp_st_release(pt.t);
    if (pt.scale) mtp_st_release(pt.scale);
    return 0;
}

typedef struct {
    source src;
    const char *path;
    const mtp_layout *lay;
    const int *param;     /* (entries) the parameter entry i writes; a Q8 matrix has two */
    const int *is_scale;  /* (entries) the entry is a Q8 matrix's scales */
    mtp_wtype t;
    float *f;             /* the tensor as floats */
    uint16_t *scale;      /* the last quantized matrix's scales, for the entry after it */
} conv;

static int fill(void *ctx, int i, void *buf, mtp_err *err) {
    conv *c = ctx;
    const mtp_param *p = &c->lay->params[c->param[i]];
    size_t nb = p->ndim == 2 ? (p->shape[1] + MTP_Q8_BLOCK - 1) / MTP_Q8_BLOCK : 0;
    if (c->is_scale[i]) {
        memcpy(buf, c->scale, p->shape[0] * nb * sizeof(uint16_t));
        return 0;
    }
    if (source_f32(&c->src, p, c->f, err)) return -1;
    for (size_t k = 0; k < p->numel; k++)
        if (!(c->f[k] - c->f[k] == 0)) /* NaN or infinity */
            return mtp_fail(err, "%s: tensor '%s' holds a value that is not finite at element %zu", c->path,
                            p->name, k);
    if (p->ndim == 1 || c->t == MTP_F32) {
        memcpy(buf, c->f, p->numel * sizeof(float));
    } else if (c->t == MTP_BF16) {
        uint16_t *b = buf;
        for (size_t k = 0; k < p->numel; k++) b[k] = mtp_bf16_round(c->f[k]);
    } else {
        mtp_q8_quantize(buf, c->scale, c->f, (int)p->shape[1], (int)p->shape[0]);
    }
    return 0;
}

/* Writes the layout's tensors from src in type t, and the tokenizer file (if any). */
static int write_model(const char *out, const source *src, const char *in, const mtp_config *cfg,
                       mtp_wtype t, const void *tok, size_t tok_bytes, mtp_err *err) {
    mtp_layout lay;
    mtp_layout_init(&lay, cfg);
    int n = 0, cap = 2 * lay.n_params + 1, rc = 0;
    mtp_st_entry *e = xcalloc(cap, sizeof *e);
    int *param = xcalloc(cap, sizeof(int)), *is_scale = xcalloc(cap, sizeof(int));
    char **names = xcalloc(lay.n_params, sizeof(char *));
    size_t most = 1, most_scales = 1;
    for (int i = 0; i < lay.n_params; i++) {
        const mtp_param *p = &lay.params[i];
        int matrix = p->ndim == 2;
        mtp_dtype dt = !matrix || t == MTP_F32 ? MTP_DT_F32 : t == MTP_BF16 ? MTP_DT_BF16 : MTP_DT_I8;
        e[n] = (mtp_st_entry){p->name, NULL, p->ndim, {(int64_t)p->shape[0], (int64_t)p->shape[1]}, dt};
        param[n++] = i;
        most = p->numel > most ? p->numel : most;
        if (dt != MTP_DT_I8) continue;
        size_t nb = (p->shape[1] + MTP_Q8_BLOCK - 1) / MTP_Q8_BLOCK;
        names[i] = xmalloc(strlen(p->name) + 8);
        sprintf(names[i], "%s_scale", p->name);
        e[n] = (mtp_st_entry){names[i], NULL, 2, {(int64_t)p->shape[0], (int64_t)nb}, MTP_DT_F16};
        is_scale[n] = 1;
        param[n++] = i;
        most_scales = p->shape[0] * nb > most_scales ? p->shape[0] * nb : most_scales;
    }
    if (tok) e[n++] = (mtp_st_entry){MTP_TOKENIZER_TENSOR, tok, 1, {(int64_t)tok_bytes}, MTP_DT_U8};
    rc = mtp_check_fits(most * (sizeof(float) * 2) + most_scales * 2, "one tensor of the model", err);
    if (rc == 0) {
        conv c = {*src, in, &lay, param, is_scale, t, falloc(most), xmalloc(most_scales * sizeof(uint16_t))};
        char *json = mtp_config_to_json(cfg);
        const char *meta[] = {"format", "mtp", "config", json};
        rc = mtp_st_write_stream(out, e, n, meta, 2, fill, &c, err);
        free(json);
        free(c.f);
        free(c.scale);
    }
    for (int i = 0; i < lay.n_params; i++) free(names[i]);
    free(names);
    free(e);
    free(param);
    free(is_scale);
    mtp_layout_free(&lay);
    return rc;
}

int mtp_convert(const char *in, const char *out, mtp_wtype t, const char *tokenizer, mtp_err *err) {
    mtp_safetensors st = {0};
    mtp_meta meta = {0};
    source src = {0};
    mtp_config cfg;
    const void *tok = NULL; /* the tokenizer file to carry */
    size_t tok_bytes = 0;
    char *tok_file = NULL, what[4300];
    int rc;
    if (mtp_meta_is_checkpoint(in)) {
        if (mtp_meta_open(&meta, in, err)) return -1;
        cfg = meta.cfg;
        src.pth = &meta.pth;
        rc = !tokenizer && !meta.tokenizer[0]
                 ? mtp_fail(err, "%s: no tokenizer.model beside the checkpoint or in the folder above it; "
                            "give it with --tokenizer FILE", in)
                 : 0;
        if (!tokenizer) tokenizer = meta.tokenizer;
    } else {
        if (mtp_st_open(&st, in, err)) return -1;
        src.st = &st;
        mtp_layout lay;
        rc = mtp_model_file_config(&st, &cfg, err);
        if (rc == 0) {
            mtp_layout_init(&lay, &cfg);
            rc = mtp_check_params(&st, &lay, "", 1, err);
            mtp_layout_free(&lay);
        }
        const mtp_st_tensor *tt;
        if (rc == 0 && !tokenizer && !(rc = mtp_file_tokenizer(&st, &tt, err)) && tt) {
            tok = tt->data;
            tok_bytes = tt->nbytes;
            snprintf(what, sizeof what, "%s: tensor '" MTP_TOKENIZER_TENSOR "'", in);
        }
    }
    if (rc == 0 && tokenizer) {
        rc = mtp_read_file(tokenizer, &tok_file, &tok_bytes, err);
        tok = tok_file;
        snprintf(what, sizeof what, "%s", tokenizer);
    }
    mtp_tokenizer *check = NULL; /* a tokenizer carried must load and fit the vocabulary */
    if (rc == 0 && tok) rc = mtp_tokenizer_fits(&check, tok, tok_bytes, what, cfg.vocab_size, err);
    mtp_tokenizer_free(check);
    if (rc == 0) rc = write_model(out, &src, in, &cfg, t, tok, tok_bytes, err);
    free(tok_file);
    if (src.pth) mtp_meta_close(&meta);
    else mtp_st_close(&st);
    return rc;
}
