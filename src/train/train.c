/* train.c: see train.h. */
#define _GNU_SOURCE /* mkdir */
#include "train/train.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "train/adamw.h"
#include "train/dist.h"
#include "model/checkpoint.h"
#include "formats/data.h"
#include "core/json.h"
#include "kernels/gemm.h"
#include "kernels/ops.h"

void mtp_train_opts_default(mtp_train_opts *o) {
    memset(o, 0, sizeof *o);
    o->batch = 8;
    o->seq = 256;
    o->steps = 1000;
    o->warmup = 100;
    o->grad_accum = 1;
    o->shuffle = 1;
    o->cosine = 1;
    o->lr = 1e-3f;
    o->min_lr = 1e-4f;
    o->weight_decay = 0.1f;
    o->grad_clip = 1.0f;
    o->beta1 = 0.9f;
    o->beta2 = 0.95f;
    o->eps = 1e-8f;
    o->seed = 1337;
    o->schedule = MTP_HEADS_SEQUENTIAL;
    o->precision = MTP_PRECISION_F32;
    for (int i = 0; i < MTP_MAX_FUTURE; i++) o->head_weight[i] = 1.0f;
    o->save_every = 0;
    o->eval_every = 0;
    o->eval_batches = 8;
}

/* The sizes and rates a run can take: what mtp_train accepts, and a stored state must hold. */
static int opts_in_range(const mtp_train_opts *o) {
    return o->batch >= 1 && o->batch <= 65536 && o->seq >= 1 && o->seq <= (1 << 20) &&
           o->grad_accum >= 1 && o->steps >= 0 && o->warmup >= 0 && o->eval_batches >= 0 &&
           o->save_every >= 0 && o->eval_every >= 0 && o->lr >= 0 && o->eps >= 0 &&
           o->freeze <= MTP_PART_ALL;
}

/* ---- options <-> JSON (the state file's record of the run) ------------------------ */

#define INT_FIELDS(X) X(batch) X(seq) X(steps) X(warmup) X(grad_accum) X(shuffle) X(cosine)
#define FLOAT_FIELDS(X) X(lr) X(min_lr) X(weight_decay) X(grad_clip) X(beta1) X(beta2) X(eps)
#define STR_FIELDS(X) X(data) X(val)
/* when to save and validate: recorded so that a resume keeps the schedule; absent in older
 * state files (their resume kept the defaults) */
#define SCHEDULE_FIELDS(X) X(save_every) X(eval_every) X(eval_batches)

char *mtp_train_opts_to_json(const mtp_train_opts *o) {
    cJSON *j = cJSON_CreateObject();
#define ADD_NUM(f) mtp_json_add_number(j, #f, o->f);
#define ADD_STR(f) cJSON_AddStringToObject(j, #f, o->f);
    INT_FIELDS(ADD_NUM) FLOAT_FIELDS(ADD_NUM) STR_FIELDS(ADD_STR) SCHEDULE_FIELDS(ADD_NUM)
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
    cJSON_AddStringToObject(j, "seed", seed); /* as a string: 64 bits do not fit a double */
    cJSON_AddStringToObject(j, "head_schedule",
                            o->schedule == MTP_HEADS_NAIVE ? "naive" : "sequential");
    cJSON_AddStringToObject(j, "precision", o->precision == MTP_PRECISION_BF16 ? "bf16" : "f32");
    mtp_json_add_floats(j, "head_weight", o->head_weight, MTP_MAX_FUTURE);
    char frozen[64];
    mtp_parts_name(o->freeze, frozen, sizeof frozen);
    cJSON_AddStringToObject(j, "freeze", frozen); /* "" when nothing is frozen */
    char *out = mtp_json_text(j);
    cJSON_Delete(j);
    return out;
}

int mtp_train_opts_from_json(mtp_train_opts *o, const char *json, const char *what, mtp_err *err) {
    cJSON *j = cJSON_ParseWithOpts(json, NULL, 1);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return mtp_fail(err, "%s: training options are not a JSON object", what);
    }
    int bad = 0;
    const cJSON *v;
#define GET_NUM(f) \
    v = cJSON_GetObjectItemCaseSensitive(j, #f); \
    if (cJSON_IsNumber(v) && fabs(v->valuedouble) <= (1 << 30)) o->f = v->valuedouble; else bad = 1;
#define GET_STR(f) \
    v = cJSON_GetObjectItemCaseSensitive(j, #f); \
    if (cJSON_IsString(v)) snprintf(o->f, sizeof o->f, "%s", v->valuestring); else bad = 1;
#define GET_OPTIONAL(f) \
    v = cJSON_GetObjectItemCaseSensitive(j, #f); \
    if (cJSON_IsNumber(v) && fabs(v->valuedouble) <= (1 << 30)) o->f = v->valuedouble; else if (v) bad = 1;
    INT_FIELDS(GET_NUM) FLOAT_FIELDS(GET_NUM) STR_FIELDS(GET_STR) SCHEDULE_FIELDS(GET_OPTIONAL)
    v = cJSON_GetObjectItemCaseSensitive(j, "seed");
    char *end = NULL;
    if (cJSON_IsString(v)) o->seed = strtoull(v->valuestring, &end, 10);
    if (!end || end == v->valuestring || *end) bad = 1;
    v = cJSON_GetObjectItemCaseSensitive(j, "head_schedule");
    if (cJSON_IsString(v)) o->schedule = strcmp(v->valuestring, "naive") ? MTP_HEADS_SEQUENTIAL : MTP_HEADS_NAIVE;
    else bad = 1;
    v = cJSON_GetObjectItemCaseSensitive(j, "precision"); /* absent in older state files: f32 */
    o->precision = MTP_PRECISION_F32;
    if (cJSON_IsString(v) && !strcmp(v->valuestring, "bf16")) o->precision = MTP_PRECISION_BF16;
    else if (v && !(cJSON_IsString(v) && !strcmp(v->valuestring, "f32"))) bad = 1;
    v = cJSON_GetObjectItemCaseSensitive(j, "head_weight");
    if (cJSON_GetArraySize(v) == MTP_MAX_FUTURE)
        for (int i = 0; i < MTP_MAX_FUTURE; i++) {
            const cJSON *w = cJSON_GetArrayItem(v, i);
            bad |= !cJSON_IsNumber(w);
            o->head_weight[i] = (float)w->valuedouble;
        }
    else bad = 1;
    v = cJSON_GetObjectItemCaseSensitive(j, "freeze"); /* absent in states before --freeze */
    o->freeze = 0;
    if (v && (!cJSON_IsString(v) || (*v->valuestring && mtp_parts_parse(v->valuestring, &o->freeze, "freeze", NULL))))
        bad = 1;
    cJSON_Delete(j);
    if (bad || !opts_in_range(o))
        return mtp_fail(err, "%s: training options are incomplete or invalid", what);
    return 0;
}

float mtp_lr_at(const mtp_train_opts *o, int64_t s) {
    if (s < o->warmup) return o->lr * (float)(s + 1) / (float)o->warmup;
    if (!o->cosine) return o->lr;
    int64_t span = o->steps - o->warmup > 1 ? o->steps - o->warmup : 1;
    double progress = (double)(s - o->warmup) / (double)span;
    if (progress > 1) progress = 1;
    return (float)(o->min_lr + 0.5 * (o->lr - o->min_lr) * (1.0 + cos(M_PI * progress)));
}

/* ---- training state: weights, moments and step, one safetensors file --------------- */

static const char *const STATE_PREFIX[3] = {"param.", "adam_m.", "adam_v."};

/* Every tensor's weights; the moments of those not frozen (packed, adamw.h). */
static int save_state(const mtp_model *m, const mtp_train_opts *o, const float *mom,
                      const float *vel, int64_t step, int ranks, const char *path, mtp_err *err) {
    const mtp_layout *lay = &m->lay;
    int n = 0;
    mtp_st_entry *e = xcalloc(3 * (size_t)lay->n_params + 1, sizeof *e);
    char (*names)[160] = xcalloc(3 * (size_t)lay->n_params, sizeof *names);
    const float *bufs[3] = {m->params, mom, vel};
    for (int k = 0; k < 3; k++) {
        size_t at = 0; /* where the moments of params[i] start */
        for (int i = 0; i < lay->n_params; i++) {
            const mtp_param *p = &lay->params[i];
            if (k > 0 && (p->part & o->freeze)) continue;
            mtp_st_entry *x = &e[n];
            snprintf(names[n], 160, "%s%s", STATE_PREFIX[k], p->name);
            x->name = names[n++];
            x->data = bufs[k] + (k == 0 ? p->offset : at);
            at += p->numel;
            x->ndim = p->ndim;
            x->shape[0] = (int64_t)p->shape[0];
            x->shape[1] = (int64_t)p->shape[1];
        }
    }
    char *cfg = mtp_config_to_json(&m->cfg), *opts = mtp_train_opts_to_json(o), stepbuf[32], rbuf[16];
    snprintf(stepbuf, sizeof stepbuf, "%lld", (long long)step);
    snprintf(rbuf, sizeof rbuf, "%d", ranks);
    const char *meta[] = {"format", "mtp-train-state", "config", cfg, "train", opts, "step", stepbuf,
                          "ranks", rbuf};
    if (m->tok) e[n++] = (mtp_st_entry){MTP_TOKENIZER_TENSOR, m->tok_file, 1, {(int64_t)m->tok_bytes}, MTP_DT_U8};
    int rc = mtp_st_write(path, e, n, meta, 5, err);
    free(cfg);
    free(opts);
    free(names);
    free(e);
    return rc;
}

static int open_state(const char *dir, mtp_safetensors *st, char *path, size_t pathlen,
                      mtp_err *err) {
    snprintf(path, pathlen, "%s/state.safetensors", dir);
    if (mtp_st_open(st, path, err)) return -1;
    const char *fmt = mtp_st_meta(st, "format");
    if (!fmt || strcmp(fmt, "mtp-train-state") != 0) {
        mtp_st_close(st);
        return mtp_fail(err, "%s: not an mtp training state (metadata format)", path);
    }
    return 0;
}

int mtp_train_peek_state(const char *dir, mtp_model *m, mtp_train_opts *o, mtp_err *err) {
    mtp_safetensors st;
    char path[1200];
    if (open_state(dir, &st, path, sizeof path, err)) return -1;
    mtp_config cfg;
    const char *cj = mtp_st_meta(&st, "config"), *tj = mtp_st_meta(&st, "train");
    int rc = 0;
    mtp_train_opts_default(o); /* for what the state does not record */
    if (!cj || !tj)
        rc = mtp_fail(err, "%s: metadata lacks config or train", path);
    else if (mtp_config_parse(&cfg, cj, path, err) || mtp_train_opts_from_json(o, tj, path, err))
        rc = -1;
    else if (o->seq > cfg.max_seq_len)
        rc = mtp_fail(err, "%s: stored seq %d exceeds the model's max_seq_len %d", path, o->seq,
                      cfg.max_seq_len);
    if (rc == 0) rc = mtp_model_init(m, &cfg, err);
    if (rc == 0) {
        const mtp_st_tensor *tok;
        if (mtp_load_params(&st, &m->lay, "param.", m->params, 0, err) || mtp_file_tokenizer(&st, &tok, err) ||
            (tok && mtp_model_attach_tokenizer(m, tok->data, tok->nbytes, path, err))) {
            mtp_model_free(m);
            rc = -1;
        }
    }
    mtp_st_close(&st);
    return rc;
}

/* The moments of the tensors not frozen, packed (adamw.h), from tensors prefix + name. */
static int load_moments(const mtp_safetensors *st, const mtp_layout *lay, unsigned frozen,
                        const char *prefix, float *dst, mtp_err *err) {
    size_t at = 0;
    for (int i = 0; i < lay->n_params; i++) {
        const mtp_param *p = &lay->params[i];
        if (p->part & frozen) continue;
        mtp_param_tensor pt;
        if (mtp_param_tensor_find(st, prefix, p, &pt, err) || mtp_param_to_f32(st, &pt, p, dst + at, err))
            return -1;
        at += p->numel;
    }
    return 0;
}

/* A state saved by K ranks with --batch B resumes on K' ranks with --batch B' where
 * K'B' = KB: the same global batch, so the same rows in each step (a missing "ranks" is 1). */
static int check_global_batch(const mtp_safetensors *st, const mtp_train_opts *o, int ranks,
                              const char *path, mtp_err *err) {
    mtp_train_opts so;
    mtp_train_opts_default(&so); /* for fields older state files lack */
    const char *rs = mtp_st_meta(st, "ranks"), *tj = mtp_st_meta(st, "train");
    char *end = NULL;
    long stored = rs ? strtol(rs, &end, 10) : 1;
    if ((rs && (*end || end == rs || stored < 1 || stored > 1 << 20)) || !tj)
        return mtp_fail(err, "%s: bad \"ranks\" or no \"train\" in metadata", path);
    if (mtp_train_opts_from_json(&so, tj, path, err)) return -1;
    long long global = (long long)so.batch * stored;
    if (global == (long long)o->batch * ranks) return 0;
    if (global % ranks)
        return mtp_fail(err, "%s: the run's global batch of %lld rows (--batch %d on %ld ranks) "
                        "does not split over %d ranks: resume on a number of ranks that divides it",
                        path, global, so.batch, stored, ranks);
    return mtp_fail(err, "%s: the run's global batch is %lld rows (--batch %d on %ld ranks): on %d "
                    "ranks resume with --batch %lld", path, global, so.batch, stored, ranks,
                    global / ranks);
}

/* Restores the weights, the step and this rank's moments: the tensors not frozen, packed
 * (adamw.h), floats [mlo, mlo + mn) of the run's (all of them with one rank). */
static int load_state(const char *dir, mtp_model *m, const mtp_train_opts *o, const mtp_dist *d,
                      size_t mlo, size_t mn, float *mom, float *vel, int64_t *step, mtp_err *err) {
    mtp_safetensors st;
    char path[1200];
    if (open_state(dir, &st, path, sizeof path, err)) return -1;
    size_t PM = mtp_layout_trained(&m->lay, o->freeze);
    float *full = mn == PM ? NULL : falloc(PM); /* one moment set at a time, sliced */
    float *bufs[2] = {mom, vel};
    int rc = check_global_batch(&st, o, d->size, path, err);
    if (rc == 0) rc = mtp_load_params(&st, &m->lay, STATE_PREFIX[0], m->params, 0, err);
    for (int k = 0; k < 2 && rc == 0; k++) {
        rc = load_moments(&st, &m->lay, o->freeze, STATE_PREFIX[k + 1], full ? full : bufs[k], err);
        if (rc == 0 && full) memcpy(bufs[k], full + mlo, mn * sizeof(float));
    }
    free(full);
    const char *s = mtp_st_meta(&st, "step");
    char *end = NULL;
    errno = 0;
    if (rc == 0 && (!s || (*step = strtoll(s, &end, 10)) < 0 || *end || end == s || errno))
        rc = mtp_fail(err, "%s: bad or missing \"step\" in metadata", path);
    mtp_st_close(&st);
    return rc;
}

/* ---- the loop ----------------------------------------------------------------------- */

typedef struct {
    mtp_model *m;
    mtp_train_opts *o;
    mtp_dist dist;
    mtp_layout slice; /* the parameters' pieces in this rank's slice, offsets from its start */
    mtp_acts acts;
    float *grads, *mom, *vel; /* grads: the whole layout; mom, vel: this rank's slice */
    size_t mlo, mn;           /* mom, vel: the run's packed moments [mlo, mlo + mn) (adamw.h) */
    mtp_shardset data, val;
    mtp_batcher batcher;
    mtp_token *window;
    FILE *metrics;
    int64_t saved; /* step of the latest checkpoint in o->out; -1: none from this run */
    double step_wait, step_sent; /* the last step's seconds in exchanges, bytes sent */
} trainer;

/* Floats of the tensors not frozen below offset x of the layout: where a rank's packed
 * moments start among the run's. */
static size_t trained_below(const mtp_layout *lay, unsigned frozen, size_t x) {
    size_t n = 0;
    for (int i = 0; i < lay->n_params; i++) {
        const mtp_param *p = &lay->params[i];
        if (!(p->part & frozen) && p->offset < x) n += x - p->offset < p->numel ? x - p->offset : p->numel;
    }
    return n;
}

/* The parameters' pieces inside [lo, hi), with offsets from lo: AdamW over one rank's
 * slice (with one rank, the layout itself). */
static void slice_layout(mtp_layout *s, const mtp_layout *lay, size_t lo, size_t hi) {
    memset(s, 0, sizeof *s);
    s->params = xcalloc((size_t)lay->n_params + 1, sizeof *s->params);
    for (int i = 0; i < lay->n_params; i++) {
        const mtp_param *p = &lay->params[i];
        size_t a = p->offset > lo ? p->offset : lo, end = p->offset + p->numel;
        size_t b = end < hi ? end : hi;
        if (a >= b) continue;
        mtp_param *q = &s->params[s->n_params++];
        *q = *p;
        q->offset = a - lo;
        q->numel = b - a;
    }
    s->total = hi - lo;
}

/* Per-head stats of one rank's rows -> the mean over all ranks (in rank order). */
static void mean_over_ranks(mtp_dist *d, mtp_head_stats *s, int nf) {
    double x[2 * MTP_MAX_FUTURE];
    memcpy(x, s->loss, nf * sizeof(double));
    memcpy(x + nf, s->acc, nf * sizeof(double));
    mtp_dist_sum(d, x, 2 * nf);
    for (int i = 0; i < nf; i++) {
        s->loss[i] = x[i] / d->size;
        s->acc[i] = x[nf + i] / d->size;
    }
}

/* The guard against a run that diverged: a loss or gradient norm that is NaN or
 * infinite stops the run before AdamW spreads it into every weight, and weights that
 * the update made non-finite are never saved, so DIR keeps the last good checkpoint. */
static int check_finite_step(const trainer *t, const mtp_train_report *r, mtp_err *err) {
    const char *keeps = t->saved >= 0 ? "; the latest checkpoint is from step " : "";
    char saved[32] = "";
    if (t->saved >= 0) snprintf(saved, sizeof saved, "%lld", (long long)t->saved);
    for (int i = 0; i < r->n_future; i++)
        if (!isfinite(r->stats.loss[i]))
            return mtp_fail(err, "step %lld: the loss of future head %d is not finite (%g)%s%s",
                            (long long)r->step, i + 1, r->stats.loss[i], keeps, saved);
    if (!isfinite(r->grad_norm))
        return mtp_fail(err, "step %lld: the gradient norm is not finite (%g)%s%s", (long long)r->step,
                        r->grad_norm, keeps, saved);
    return 0;
}

static int check_finite_params(const trainer *t, int64_t step, mtp_err *err) {
    const mtp_layout *lay = &t->m->lay;
    for (int i = 0; i < lay->n_params; i++) {
        const float *w = t->m->params + lay->params[i].offset;
        for (size_t j = 0; j < lay->params[i].numel; j++)
            if (!isfinite(w[j]))
                return mtp_fail(err, "step %lld: the update made weights of %s not finite; not saved",
                                (long long)step, lay->params[i].name);
    }
    return 0;
}

/* Rank 0 writes the whole state: the moments' slices are gathered to it. */
static int write_checkpoint(trainer *t, int64_t step, const float *mom, const float *vel,
                            mtp_err *err) {
    char path[1200], stepbuf[32];
    snprintf(path, sizeof path, "%s/state.safetensors", t->o->out);
    if (save_state(t->m, t->o, mom, vel, step, t->dist.size, path, err)) return -1;
    snprintf(stepbuf, sizeof stepbuf, "%lld", (long long)step);
    const char *extra[] = {"step", stepbuf};
    snprintf(path, sizeof path, "%s/model.safetensors", t->o->out);
    return mtp_model_save(t->m, path, extra, 1, err);
}

static int save_checkpoint(trainer *t, int64_t step, mtp_err *err) {
    mtp_dist *d = &t->dist;
    if (check_finite_params(t, step, err)) return -1; /* the same weights on every rank */
    float *mom = t->mom, *vel = t->vel;
    if (d->size > 1) { /* rank 0 gathers the moments into the spent gradients and one buffer */
        size_t PM = mtp_layout_trained(&t->m->lay, t->o->freeze);
        mom = d->rank == 0 ? t->grads : NULL;
        vel = d->rank == 0 ? falloc(PM) : NULL;
        mtp_dist_gather(d, t->mom, t->mn, mom);
        mtp_dist_gather(d, t->vel, t->mn, vel);
    }
    int rc = d->rank == 0 ? write_checkpoint(t, step, mom, vel, err) : 0;
    if (vel != t->vel) free(vel);
    if ((rc = mtp_dist_agree(d, rc, err)) == 0) t->saved = step;
    return rc;
}

static void write_metrics(const trainer *t, const mtp_train_report *r) {
    FILE *f = t->metrics;
    if (!f) return;
    cJSON *j = cJSON_CreateObject();
    mtp_json_add_number(j, "step", (double)r->step);
    mtp_json_add_numbers(j, r->is_val ? "val_loss" : "loss", r->stats.loss, r->n_future);
    if (!r->is_val) {
        mtp_json_add_number(j, "lr", r->lr);
        mtp_json_add_number(j, "grad_norm", r->grad_norm);
        mtp_json_add_number(j, "tok_per_s", r->tok_per_s);
        mtp_json_add_number(j, "elapsed_s", r->elapsed_s);
        if (t->dist.size > 1) {
            mtp_json_add_number(j, "ranks", t->dist.size);
            mtp_json_add_number(j, "wait_s", t->step_wait);
            mtp_json_add_number(j, "sent_bytes", t->step_sent);
        }
    }
    mtp_json_write_line(f, j);
    cJSON_Delete(j);
}

/* On resume, metrics.jsonl is cut back to what the checkpoint has seen: lines whose
 * step is at most `step`, without a torn line a kill left at the end (or any line that
 * is not JSON), rewritten atomically, so the resumed run appends each step once. */
static int trim_metrics(const char *path, int64_t step, mtp_err *err) {
    char *text = NULL;
    size_t len = 0;
    if (access(path, F_OK) != 0) return 0;
    if (mtp_read_file(path, &text, &len, err)) return -1;
    mtp_atomic_file af;
    if (mtp_atomic_open(&af, path, err)) {
        free(text);
        return -1;
    }
    for (char *line = text, *nl; (nl = memchr(line, '\n', text + len - line)) != NULL; line = nl + 1) {
        cJSON *j = cJSON_ParseWithLength(line, (size_t)(nl - line));
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "step");
        if (cJSON_IsNumber(s) && s->valuedouble <= (double)step) mtp_atomic_write(&af, line, nl + 1 - line);
        cJSON_Delete(j);
    }
    free(text);
    return mtp_atomic_commit(&af, err);
}

/* Mean per-head loss over the first eval_batches sequential batches of the val shard; each
 * rank evaluates its rows of each batch, as in training. */
static void validate(trainer *t, int64_t step, mtp_train_cb cb, void *ctx) {
    const mtp_train_opts *o = t->o;
    mtp_dist *d = &t->dist;
    int nf = t->m->cfg.n_future;
    mtp_batcher vb;
    mtp_batcher_init(&vb, &t->val, o->batch * d->size, o->seq, nf, 0, 0);
    mtp_batcher_rows(&vb, d->rank * o->batch, o->batch);
    mtp_train_report r = {.step = step, .steps = o->steps, .n_future = nf, .is_val = 1};
    for (int k = 0; k < o->eval_batches; k++) {
        mtp_head_stats s;
        mtp_batcher_get(&vb, k, t->window);
        mtp_step(t->m, &t->acts, t->window, NULL, NULL, 0, &s);
        mean_over_ranks(d, &s, nf);
        for (int i = 0; i < nf; i++) {
            r.stats.loss[i] += s.loss[i] / o->eval_batches;
            r.stats.acc[i] += s.acc[i] / o->eval_batches;
        }
    }
    mtp_batcher_free(&vb);
    write_metrics(t, &r);
    if (cb && d->rank == 0) cb(&r, ctx);
}

static void trainer_free(trainer *t) {
    mtp_acts_free(&t->acts);
    free(t->grads);
    free(t->mom);
    free(t->vel);
    free(t->window);
    free(t->slice.params);
    mtp_batcher_free(&t->batcher);
    mtp_shardset_free(&t->data);
    mtp_shardset_free(&t->val);
    if (t->metrics) fclose(t->metrics);
}

/* Opens the data, restores a resumed state and (rank 0) the run folder: what can fail on
 * one rank alone; the caller agrees on the outcome with the others. */
static int trainer_open(trainer *t, const char *resume_dir, int64_t *step, mtp_err *err) {
    mtp_train_opts *o = t->o;
    const mtp_config *c = &t->m->cfg;
    const mtp_dist *d = &t->dist;
    size_t P = t->m->lay.total;
    slice_layout(&t->slice, &t->m->lay, d->lo, d->hi);
    t->mlo = trained_below(&t->m->lay, o->freeze, d->lo);
    size_t n = t->mn = trained_below(&t->m->lay, o->freeze, d->hi) - t->mlo;
    if (mtp_check_fits((P + 2 * n) * sizeof(float), "the gradients and AdamW moments", err)) return -1;
    /* the lists become the paths they expanded to, so the state reopens the same files */
    if (mtp_shardset_open(&t->data, o->data, c->vocab_size, err) ||
        mtp_shardset_list(&t->data, o->data, sizeof o->data, err) ||
        (o->val[0] && (mtp_shardset_open(&t->val, o->val, c->vocab_size, err) ||
                       mtp_shardset_list(&t->val, o->val, sizeof o->val, err))))
        return -1;
    t->grads = falloc(P);
    t->mom = falloc(n ? n : 1);
    t->vel = falloc(n ? n : 1);
    memset(t->mom, 0, n * sizeof(float));
    memset(t->vel, 0, n * sizeof(float));
    if (resume_dir && load_state(resume_dir, t->m, o, d, t->mlo, n, t->mom, t->vel, step, err)) return -1;
    if (resume_dir && !strcmp(resume_dir, o->out)) t->saved = *step;
    if (o->out[0] && d->rank == 0) {
        char path[1200];
        if (mkdir(o->out, 0777) != 0 && errno != EEXIST)
            return mtp_fail(err, "--out %s: %s", o->out, strerror(errno));
        snprintf(path, sizeof path, "%s/metrics.jsonl", o->out);
        if (resume_dir && trim_metrics(path, *step, err)) return -1;
        t->metrics = fopen(path, resume_dir ? "a" : "w");
        if (!t->metrics) return mtp_fail(err, "%s: %s", path, strerror(errno));
    }
    if (mtp_acts_init(&t->acts, c, o->batch, o->seq, o->schedule, 1, err)) return -1;
    t->acts.frozen = o->freeze;
    return 0;
}

/* Every rank must run the same model with the same options (a rank started with other
 * flags would train something else in silence). */
static int check_same_run(trainer *t, mtp_err *err) {
    char *cfg = mtp_config_to_json(&t->m->cfg), *opts = mtp_train_opts_to_json(t->o);
    size_t nc = strlen(cfg), no = strlen(opts);
    char *both = xmalloc(nc + no + 1);
    memcpy(both, cfg, nc);
    memcpy(both + nc, opts, no + 1);
    int r = mtp_dist_differs(&t->dist, both, nc + no);
    free(both);
    free(cfg);
    free(opts);
    if (r >= 0)
        return mtp_fail(err, "rank %d was started with another model or other training options "
                        "than rank 0: every rank needs the same flags", r);
    return 0;
}

int mtp_train(mtp_model *m, mtp_train_opts *o, const char *resume_dir, mtp_train_cb cb,
              void *ctx, mtp_err *err) {
    const mtp_config *c = &m->cfg;
    size_t P = m->lay.total;
    if (!m->params)
        return mtp_fail(err, "training needs fp32 weights: this model was opened for decoding only");
    if (!opts_in_range(o))
        return mtp_fail(err, "training options out of range (batch %d, seq %d, grad_accum %d, "
                        "steps %d)", o->batch, o->seq, o->grad_accum, o->steps);
    if (o->seq > c->max_seq_len)
        return mtp_fail(err, "--seq %d exceeds the model's max_seq_len %d", o->seq, c->max_seq_len);
    size_t PM = mtp_layout_trained(&m->lay, o->freeze); /* floats AdamW keeps moments for */
    if (PM == 0) {
        char frozen[64];
        mtp_parts_name(o->freeze, frozen, sizeof frozen);
        return mtp_fail(err, "--freeze %s leaves no tensor to train", frozen);
    }
    if (o->precision == MTP_PRECISION_BF16 && !mtp_gemm_bf16_available())
        return mtp_fail(err, "--precision bf16: needs a CPU with AVX512-BF16 and a build for it "
                        "(-march=native); this one has %s", mtp_gemm_avx512_available() ? "no AVX512-BF16" : "no AVX-512");
    trainer t = {.m = m, .o = o, .saved = -1};
    mtp_dist *d = &t.dist;
    mtp_dist_init(d, P);
    int64_t step = 0;
    int rc = mtp_dist_agree(d, trainer_open(&t, resume_dir, &step, err), err);
    if (rc == 0) rc = mtp_dist_agree(d, check_same_run(&t, err), err);
    if (rc) {
        trainer_free(&t);
        return -1;
    }
    mtp_dist_bcast(d, m->params, P); /* a fresh model is the same on every rank, but be sure */
    size_t n = d->hi - d->lo;
    t.window = xmalloc((size_t)o->batch * (o->seq + c->n_future) * sizeof(mtp_token));
    /* rank r takes rows r*B .. r*B+B-1 of the global batch of K*B rows */
    mtp_batcher_init(&t.batcher, &t.data, o->batch * d->size, o->seq, c->n_future, o->shuffle, o->seed);
    mtp_batcher_rows(&t.batcher, d->rank * o->batch, o->batch);

    int64_t end = o->stop_at > 0 && o->stop_at < o->steps ? o->stop_at : o->steps;
    double t0 = mtp_now(), tokens = 0;
    int64_t first = step;
    mtp_adamw hp = {0, o->beta1, o->beta2, o->eps, o->weight_decay, o->freeze};
    mtp_matmul_precision(o->precision == MTP_PRECISION_BF16); /* available: checked above */
    for (; step < end && rc == 0; step++) {
        mtp_train_report r = {.step = step + 1, .steps = o->steps, .n_future = c->n_future};
        double wait0 = d->wait_s, sent0 = d->sent;
        mtp_zero(t.grads, P);
        for (int a = 0; a < o->grad_accum; a++) {
            mtp_head_stats s;
            mtp_batcher_get(&t.batcher, (uint64_t)step * o->grad_accum + a, t.window);
            mtp_step(m, &t.acts, t.window, o->head_weight, t.grads, 1.0f / (o->grad_accum * d->size), &s);
            for (int i = 0; i < c->n_future; i++) {
                r.stats.loss[i] += s.loss[i] / o->grad_accum;
                r.stats.acc[i] += s.acc[i] / o->grad_accum;
            }
        }
        mean_over_ranks(d, &r.stats, c->n_future);
        /* this rank's slice of the summed gradient; its norm from every slice's sum of squares */
        mtp_dist_reduce_scatter(d, t.grads);
        double sumsq = mtp_sum_squares(t.grads + d->lo, n);
        mtp_dist_sum(d, &sumsq, 1);
        r.grad_norm = sqrt(sumsq);
        if ((rc = check_finite_step(&t, &r, err)) != 0) break;
        /* torch.nn.utils.clip_grad_norm_'s factor, applied as AdamW reads the gradient */
        float clip = 1.0f;
        if (o->grad_clip > 0 && r.grad_norm > o->grad_clip) clip = (float)(o->grad_clip / (r.grad_norm + 1e-6));
        hp.lr = mtp_lr_at(o, step);
        mtp_adamw_step(&hp, &t.slice, m->params + d->lo, t.grads + d->lo, clip, t.mom, t.vel, step + 1);
        mtp_dist_allgather(d, m->params);
        int differs = d->check ? mtp_dist_differs(d, m->params, P * sizeof(float)) : -1;
        if (differs >= 0) {
            rc = mtp_fail(err, "step %lld: rank %d's weights differ from rank 0's", (long long)step + 1, differs);
            break;
        }
        t.step_wait = d->wait_s - wait0;
        t.step_sent = d->sent - sent0;

        tokens += (double)o->batch * d->size * o->seq * o->grad_accum;
        double el = mtp_now() - t0;
        for (int i = 0; i < c->n_future; i++) r.loss += o->head_weight[i] * r.stats.loss[i];
        r.lr = hp.lr;
        r.elapsed_s = el;
        r.tok_per_s = tokens / (el > 0 ? el : 1e-9);
        r.eta_s = el / (double)(step + 1 - first) * (double)(end - step - 1);
        write_metrics(&t, &r);
        if (cb && d->rank == 0) cb(&r, ctx);
        int last = step + 1 == end;
        if (o->val[0] && ((o->eval_every > 0 && (step + 1) % o->eval_every == 0) || last))
            validate(&t, step + 1, cb, ctx);
        if (o->out[0] && ((o->save_every > 0 && (step + 1) % o->save_every == 0) || last))
            rc = save_checkpoint(&t, step + 1, err);
    }
    mtp_matmul_precision(0);
    if (rc == 0 && o->out[0] && step == first) rc = save_checkpoint(&t, step, err);
    trainer_free(&t);
    return rc;
}
