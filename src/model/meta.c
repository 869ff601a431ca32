/* meta.c: Meta's release folder (meta.h): where its files are, its params.json, and a check
 * that its tensors are the ones the config names, with their shapes. */
#include "model/meta.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/util.h"

static int is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

int mtp_meta_is_checkpoint(const char *path) {
    size_t n = strlen(path);
    return is_dir(path) || (n > 4 && !strcmp(path + n - 4, ".pth"));
}

/* dir of path ("." for a bare name), into out */
static void dir_of(const char *path, char *out, size_t cap) {
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(out, cap, ".");
    else if (slash == path) snprintf(out, cap, "/");
    else snprintf(out, cap, "%.*s", (int)(slash - path), path);
}

/* The .pth of a folder: consolidated.pth, or consolidated.00.pth when it is the only shard. */
static int find_pth(const char *dir, char *out, size_t cap, mtp_err *err) {
    snprintf(out, cap, "%s/consolidated.pth", dir);
    if (exists(out)) return 0;
    snprintf(out, cap, "%s/consolidated.01.pth", dir);
    if (exists(out))
        return mtp_fail(err, "%s: a model split into model-parallel shards (consolidated.00.pth, .01, ..): "
                        "only single-file checkpoints (Meta's 7B models) are read", dir);
    snprintf(out, cap, "%s/consolidated.00.pth", dir);
    if (exists(out)) return 0;
    return mtp_fail(err, "%s: no consolidated.pth (or consolidated.00.pth) in this folder", dir);
}

/* params.json -> config, with what the release leaves out filled in. */
static int read_params(mtp_config *cfg, const char *path, const mtp_pth *pth, mtp_err *err) {
    char *text;
    size_t n;
    if (mtp_read_file(path, &text, &n, err)) return -1;
    cJSON *j = cJSON_ParseWithLength(text, n);
    free(text);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return mtp_fail(err, "%s: not a JSON object", path);
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "vocab_size");
    if (cJSON_IsNumber(v) && v->valuedouble == -1) { /* Llama 2: the tokenizer's size */
        const mtp_pth_tensor *e = mtp_pth_find(pth, "tok_embeddings.weight");
        if (!e || e->ndim != 2) {
            cJSON_Delete(j);
            return mtp_fail(err, "%s: vocab_size is -1 and %s has no 2-D tok_embeddings.weight to take it from",
                            path, pth->path);
        }
        cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(j, "vocab_size"), (double)e->shape[0]);
    }
    if (!cJSON_GetObjectItemCaseSensitive(j, "max_seq_len")) cJSON_AddNumberToObject(j, "max_seq_len", 4096);
    char *json = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    int rc = mtp_config_parse(cfg, json, path, err);
    free(json);
    return rc;
}

/* Every parameter of the config is there with its shape, and nothing else but rope.freqs. */
static int check_tensors(const mtp_pth *pth, const mtp_config *cfg, mtp_err *err) {
    mtp_layout lay;
    mtp_layout_init(&lay, cfg);
    int rc = 0;
    for (int i = 0; rc == 0 && i < lay.n_params; i++) {
        const mtp_param *p = &lay.params[i];
        const mtp_pth_tensor *t = mtp_pth_find(pth, p->name);
        if (!t) {
            rc = mtp_fail(err, "%s: no tensor '%s', which the config (params.json) needs", pth->path, p->name);
            break;
        }
        int same = t->ndim == p->ndim;
        for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == (int64_t)p->shape[d];
        if (!same) {
            char got[96] = "", want[64];
            for (int d = 0; d < t->ndim; d++)
                snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "", (long long)t->shape[d]);
            if (p->ndim == 1) snprintf(want, sizeof want, "%zu", p->shape[0]);
            else snprintf(want, sizeof want, "%zu, %zu", p->shape[0], p->shape[1]);
            rc = mtp_fail(err, "%s: tensor '%s' has shape (%s), the config (params.json) says (%s)", pth->path,
                          p->name, got, want);
        }
    }
    for (int i = 0; rc == 0 && i < pth->n_tensors; i++) {
        const char *name = pth->tensors[i].name;
        if (strcmp(name, "rope.freqs") != 0 && !mtp_layout_find(&lay, name))
            rc = mtp_fail(err, "%s: unexpected tensor '%s' for the config in params.json", pth->path, name);
    }
    mtp_layout_free(&lay);
    return rc;
}

int mtp_meta_open(mtp_meta *c, const char *path, mtp_err *err) {
    memset(c, 0, sizeof *c);
    char dir[4096], pth[4200], params[4200];
    if (is_dir(path)) {
        snprintf(dir, sizeof dir, "%s", path);
        if (find_pth(dir, pth, sizeof pth, err)) return -1;
    } else {
        dir_of(path, dir, sizeof dir);
        snprintf(pth, sizeof pth, "%s", path);
    }
    snprintf(params, sizeof params, "%s/params.json", dir);
    if (!exists(params)) return mtp_fail(err, "%s: no params.json beside it (Meta's release has one per model)", pth);
    if (mtp_pth_open(&c->pth, pth, err)) return -1;
    if (read_params(&c->cfg, params, &c->pth, err) || check_tensors(&c->pth, &c->cfg, err)) {
        mtp_meta_close(c);
        return -1;
    }
    /* the release keeps tokenizer.model once, at the root beside the model folders */
    snprintf(c->tokenizer, sizeof c->tokenizer, "%s/tokenizer.model", dir);
    if (!exists(c->tokenizer)) snprintf(c->tokenizer, sizeof c->tokenizer, "%s/../tokenizer.model", dir);
    if (!exists(c->tokenizer)) c->tokenizer[0] = 0;
    return 0;
}

void mtp_meta_close(mtp_meta *c) {
    mtp_pth_close(&c->pth);
    memset(c, 0, sizeof *c);
}
