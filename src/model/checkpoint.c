/* checkpoint.c: see checkpoint.h. */
#include "model/checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static void shape_text(char *out, size_t n, const mtp_st_tensor *t) {
    out[0] = 0;
    for (int d = 0, w = 0; d < t->ndim && d < 4; d++)
        w += snprintf(out + w, n - (size_t)w, "%s%lld", d ? "," : "", (long long)t->shape[d]);
}

int mtp_param_tensor_find(const mtp_safetensors *st, const char *prefix, const mtp_param *p,
                          mtp_param_tensor *out, mtp_err *err) {
    char name[160], got[64];
    snprintf(name, sizeof name, "%s%s", prefix, p->name);
    const mtp_st_tensor *t = mtp_st_find(st, name);
    out->t = t, out->scale = NULL;
    if (!t) return mtp_fail(err, "%s: missing tensor '%s'", st->path, name);
    int ok = t->ndim == p->ndim && t->shape[0] == (int64_t)p->shape[0] &&
             (p->ndim == 1 || t->shape[1] == (int64_t)p->shape[1]);
    if (!ok) {
        shape_text(got, sizeof got, t);
        return mtp_fail(err, "%s: tensor '%s' has shape (%s), expected (%zu%s%.0zu)", st->path, name, got,
                        p->shape[0], p->ndim == 2 ? "," : "", p->ndim == 2 ? p->shape[1] : 0);
    }
    if (t->dtype == MTP_DT_I8 && p->ndim == 2) {
        char sname[170];
        snprintf(sname, sizeof sname, "%s_scale", name);
        const mtp_st_tensor *s = mtp_st_find(st, sname);
        int64_t nb = ((int64_t)p->shape[1] + 31) / 32;
        if (!s) return mtp_fail(err, "%s: 8-bit tensor '%s' has no scales '%s'", st->path, name, sname);
        if (s->dtype != MTP_DT_F16 || s->ndim != 2 || s->shape[0] != (int64_t)p->shape[0] || s->shape[1] != nb) {
            shape_text(got, sizeof got, s);
            return mtp_fail(err, "%s: scales '%s' are (%s) of another dtype or shape; expected F16 (%zu,%lld)",
                            st->path, sname, got, p->shape[0], (long long)nb);
        }
        out->scale = s;
        return 0;
    }
    if (t->dtype != MTP_DT_F32 && t->dtype != MTP_DT_BF16 && t->dtype != MTP_DT_F16)
        return mtp_fail(err, "%s: tensor '%s' is not F32, BF16, F16 (or an I8 matrix)", st->path, name);
    return 0;
}

int mtp_file_tokenizer(const mtp_safetensors *st, const mtp_st_tensor **t, mtp_err *err) {
    *t = mtp_st_find(st, MTP_TOKENIZER_TENSOR);
    if (*t && ((*t)->dtype != MTP_DT_U8 || (*t)->ndim != 1))
        return mtp_fail(err, "%s: tensor '" MTP_TOKENIZER_TENSOR "' is not 1-D U8 (a tokenizer file's bytes)", st->path);
    return 0;
}

int mtp_check_params(const mtp_safetensors *st, const mtp_layout *lay, const char *prefix,
                     int exact, mtp_err *err) {
    const mtp_st_tensor *tok;
    if (mtp_file_tokenizer(st, &tok, err)) return -1;
    int expected = lay->n_params + (tok != NULL);
    for (int i = 0; i < lay->n_params; i++) {
        mtp_param_tensor pt;
        if (mtp_param_tensor_find(st, prefix, &lay->params[i], &pt, err)) return -1;
        expected += pt.scale != NULL;
    }
    if (exact && st->n_tensors != expected) {
        size_t pl = strlen(prefix);
        for (int i = 0; i < st->n_tensors; i++) {
            char base[160];
            const char *n = st->tensors[i].name;
            snprintf(base, sizeof base, "%s", n);
            size_t bl = strlen(base);
            if (bl > 6 && !strcmp(base + bl - 6, "_scale")) base[bl - 6] = 0; /* an 8-bit matrix's */
            const mtp_st_tensor *of = mtp_st_find(st, base);
            int scale_of_i8 = strcmp(base, n) != 0 && of && of->dtype == MTP_DT_I8;
            if (&st->tensors[i] == tok) continue;
            if (strncmp(n, prefix, pl) != 0 || (!scale_of_i8 && !mtp_layout_find(lay, n + pl)))
                return mtp_fail(err, "%s: unexpected tensor '%s' for this config", st->path, n);
        }
    }
    return 0;
}

/* An 8-bit matrix as floats: q * scale per block of 32, row by row as decoding reads rows. */
static void dequantize(float *dst, const mtp_param_tensor *pt, size_t rows, size_t cols) {
    mtp_wrows t = {MTP_Q8, (int)rows, (int)cols, pt->t->data, pt->scale->data};
    for (size_t r = 0; r < rows; r++) mtp_wrows_get(&t, (int)r, dst + r * cols);
}

int mtp_param_to_f32(const mtp_safetensors *st, const mtp_param_tensor *pt, const mtp_param *p, float *dst,
                     mtp_err *err) {
    if (!pt->scale) return mtp_st_to_f32(st, pt->t, dst, err);
    dequantize(dst, pt, p->shape[0], p->shape[1]);
    return 0;
}

int mtp_load_params(const mtp_safetensors *st, const mtp_layout *lay, const char *prefix,
                    float *dst, int exact, mtp_err *err) {
    if (mtp_check_params(st, lay, prefix, exact, err)) return -1;
    for (int i = 0; i < lay->n_params; i++) {
        const mtp_param *p = &lay->params[i];
        mtp_param_tensor pt;
        MTP_ASSERT(mtp_param_tensor_find(st, prefix, p, &pt, err) == 0);
        if (mtp_param_to_f32(st, &pt, p, dst + p->offset, err)) return -1;
    }
    return 0;
}

int mtp_model_file_config(const mtp_safetensors *st, mtp_config *cfg, mtp_err *err) {
    const char *json = mtp_st_meta(st, "config");
    if (!json)
        return mtp_fail(err, "%s: no \"config\" in the metadata (not an mtp model file?)", st->path);
    char what[600];
    snprintf(what, sizeof what, "%s: metadata \"config\"", st->path);
    return mtp_config_parse(cfg, json, what, err);
}

/* The model carries the file's tokenizer, if it has one. */
static int load_tokenizer(mtp_model *m, const mtp_safetensors *st, mtp_err *err) {
    const mtp_st_tensor *t;
    MTP_ASSERT(mtp_file_tokenizer(st, &t, err) == 0); /* checked with the parameters */
    if (!t) return 0;
    char what[600];
    snprintf(what, sizeof what, "%s: tensor '" MTP_TOKENIZER_TENSOR "'", st->path);
    return mtp_model_attach_tokenizer(m, t->data, t->nbytes, what, err);
}

/* Opens path and reads its config; with fp32 (else: decoding only, in the file's types). */
static int load(mtp_model *m, const char *path, int fp32, mtp_err *err) {
    mtp_safetensors st;
    if (mtp_st_open(&st, path, err)) return -1;
    mtp_config cfg;
    mtp_layout lay;
    int rc = mtp_model_file_config(&st, &cfg, err);
    if (rc == 0) {
        mtp_layout_init(&lay, &cfg);
        rc = mtp_check_params(&st, &lay, "", 1, err);
        int packed = 0; /* a bf16 or 8-bit matrix: decoding keeps the file's types */
        for (int i = 0; rc == 0 && i < lay.n_params; i++) {
            const mtp_st_tensor *t = mtp_st_find(&st, lay.params[i].name);
            packed |= lay.params[i].ndim == 2 && (t->dtype == MTP_DT_BF16 || t->dtype == MTP_DT_I8);
        }
        fp32 |= !packed;
        if (rc == 0 && !fp32)
            rc = mtp_check_fits(st.size, "the model's packed weights", err);
        if (rc == 0 && !fp32) {
            memset(m, 0, sizeof *m);
            m->cfg = cfg;
            m->lay = lay;
            m->file = st;
            mtp_weights_from_file(&m->dec, &m->file, &m->lay, &m->cfg);
            if (load_tokenizer(m, &m->file, err)) {
                mtp_model_free(m);
                return -1;
            }
            return 0;
        }
        mtp_layout_free(&lay);
    }
    if (rc == 0) rc = mtp_model_init(m, &cfg, err);
    if (rc == 0) {
        rc = mtp_load_params(&st, &m->lay, "", m->params, 1, err);
        if (rc == 0) rc = load_tokenizer(m, &st, err);
        if (rc) mtp_model_free(m);
    }
    mtp_st_close(&st);
    return rc;
}

int mtp_model_load(mtp_model *m, const char *path, mtp_err *err) { return load(m, path, 1, err); }

int mtp_model_load_decode(mtp_model *m, const char *path, mtp_err *err) { return load(m, path, 0, err); }

int mtp_model_save(const mtp_model *m, const char *path, const char *const *extra, int n_extra,
                   mtp_err *err) {
    if (!m->params) return mtp_fail(err, "%s: this model was opened for decoding only: no fp32 weights to save", path);
    const mtp_layout *lay = &m->lay;
    mtp_st_entry *e = xcalloc(lay->n_params + 1, sizeof *e);
    for (int i = 0; i < lay->n_params; i++) {
        const mtp_param *p = &lay->params[i];
        e[i].name = p->name;
        e[i].data = m->params + p->offset;
        e[i].ndim = p->ndim;
        e[i].shape[0] = (int64_t)p->shape[0];
        e[i].shape[1] = (int64_t)p->shape[1];
    }
    char *cfg = mtp_config_to_json(&m->cfg);
    const char **meta = xcalloc(4 + 2 * (size_t)n_extra, sizeof(char *));
    meta[0] = "format";
    meta[1] = "mtp";
    meta[2] = "config";
    meta[3] = cfg;
    for (int i = 0; i < 2 * n_extra; i++) meta[4 + i] = extra[i];
    int n = lay->n_params;
    if (m->tok) e[n++] = (mtp_st_entry){MTP_TOKENIZER_TENSOR, m->tok_file, 1, {(int64_t)m->tok_bytes}, MTP_DT_U8};
    int rc = mtp_st_write(path, e, n, meta, 2 + n_extra, err);
    free(meta);
    free(cfg);
    free(e);
    return rc;
}
