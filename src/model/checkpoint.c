/* checkpoint.c: see checkpoint.h. */
#include "model/checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mtp_check_params(const mtp_safetensors *st, const mtp_layout *lay, const char *prefix,
                     int exact, mtp_err *err) {
    char name[160];
    for (int i = 0; i < lay->n_params; i++) {
        const mtp_param *p = &lay->params[i];
        snprintf(name, sizeof name, "%s%s", prefix, p->name);
        const mtp_st_tensor *t = mtp_st_find(st, name);
        if (!t) return mtp_fail(err, "%s: missing tensor '%s'", st->path, name);
        int ok = t->ndim == p->ndim && t->shape[0] == (int64_t)p->shape[0] &&
                 (p->ndim == 1 || t->shape[1] == (int64_t)p->shape[1]);
        if (!ok) {
            char got[64] = "", *w = got;
            for (int d = 0; d < t->ndim && d < 4; d++)
                w += snprintf(w, got + sizeof got - w, "%s%lld", d ? "," : "", (long long)t->shape[d]);
            return mtp_fail(err, "%s: tensor '%s' has shape (%s), expected (%zu%s%.0zu)", st->path,
                            name, got, p->shape[0], p->ndim == 2 ? "," : "",
                            p->ndim == 2 ? p->shape[1] : 0);
        }
        if (t->dtype != MTP_DT_F32 && t->dtype != MTP_DT_BF16 && t->dtype != MTP_DT_F16)
            return mtp_fail(err, "%s: tensor '%s' is not F32, BF16 or F16", st->path, name);
    }
    if (exact && st->n_tensors != lay->n_params) {
        for (int i = 0; i < st->n_tensors; i++) {
            const char *n = st->tensors[i].name;
            size_t pl = strlen(prefix);
            if (strncmp(n, prefix, pl) != 0 || !mtp_layout_find(lay, n + pl))
                return mtp_fail(err, "%s: unexpected tensor '%s' for this config", st->path, n);
        }
    }
    return 0;
}

int mtp_load_params(const mtp_safetensors *st, const mtp_layout *lay, const char *prefix,
                    float *dst, int exact, mtp_err *err) {
    if (mtp_check_params(st, lay, prefix, exact, err)) return -1;
    char name[160];
    for (int i = 0; i < lay->n_params; i++) {
        const mtp_param *p = &lay->params[i];
        snprintf(name, sizeof name, "%s%s", prefix, p->name);
        if (mtp_st_to_f32(st, mtp_st_find(st, name), dst + p->offset, err)) return -1;
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

int mtp_model_load(mtp_model *m, const char *path, mtp_err *err) {
    mtp_safetensors st;
    if (mtp_st_open(&st, path, err)) return -1;
    mtp_config cfg;
    int rc = mtp_model_file_config(&st, &cfg, err);
    if (rc == 0) rc = mtp_model_init(m, &cfg, err);
    if (rc == 0) {
        rc = mtp_load_params(&st, &m->lay, "", m->params, 1, err);
        if (rc) mtp_model_free(m);
    }
    mtp_st_close(&st);
    return rc;
}

int mtp_model_save(const mtp_model *m, const char *path, const char *const *extra, int n_extra,
                   mtp_err *err) {
    const mtp_layout *lay = &m->lay;
    mtp_st_entry *e = xcalloc(lay->n_params, sizeof *e);
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
    int rc = mtp_st_write(path, e, lay->n_params, meta, 2 + n_extra, err);
    free(meta);
    free(cfg);
    free(e);
    return rc;
}
