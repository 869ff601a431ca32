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
           o->save_every >= 0 && o->eval_every >= 0 && o->lr >= 0 && o->eps >= 0;
}

/* ---- options <-> JSON (the state file's record of the run) ------------------------ */

#define INT_FIELDS(X) X(batch) X(seq) X(steps) X(warmup) X(grad_accum) X(shuffle) X(cosine)
#define FLOAT_FIELDS(X) X(lr) X(min_lr) X(weight_decay) X(grad_clip) X(beta1) X(beta2) X(eps)
#define STR_FIELDS(X) X(data) X(val)

char *mtp_train_opts_to_json(const mtp_train_opts *o) {
    cJSON *j = cJSON_CreateObject();
#define ADD_NUM(f) mtp_json_add_number(j, #f, o->f);
#define ADD_STR(f) cJSON_AddStringToObject(j, #f, o->f);
    INT_FIELDS(ADD_NUM) FLOAT_FIELDS(ADD_NUM) STR_FIELDS(ADD_STR)
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
    cJSON_AddStringToObject(j, "seed", seed); /* as a string: 64 bits do not fit a double */
    cJSON_AddStringToObject(j, "head_schedule",
                            o->schedule == MTP_HEADS_NAIVE ? "naive" : "sequential");
    cJSON_AddStringToObject(j, "precision", o->precision == MTP_PRECISION_BF16 ? "bf16" : "f32");
    mtp_json_add_floats(j, "head_weight", o->head_weight, MTP_MAX_FUTURE);
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
    INT_FIELDS(GET_NUM) FLOAT_FIELDS(GET_NUM) STR_FIELDS(GET_STR)
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

static int save_state(const mtp_model *m, const mtp_train_opts *o, const float *mom,
                      const float *vel, int64_t step, const char *path, mtp_err *err) {
    const mtp_layout *lay = &m->lay;
    int n = 3 * lay->n_params;
    mtp_st_entry *e = xcalloc(n + 1, sizeof *e);
    char (*names)[160] = xcalloc(n, sizeof *names);
    const float *bufs[3] = {m->params, mom, vel};
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < lay->n_params; i++) {
            const mtp_param *p = &lay->params[i];
            mtp_st_entry *x = &e[k * lay->n_params + i];
            snprintf(names[k * lay->n_params + i], 160, "%s%s", STATE_PREFIX[k], p->name);
            x->name = names[k * lay->n_params + i];
            x->data = bufs[k] + p->offset;
            x->ndim = p->ndim;
            x->shape[0] = (int64_t)p->shape[0];
            x->shape[1] = (int64_t)p->shape[1];
        }
    char *cfg = mtp_config_to_json(&m->cfg), *opts = mtp_train_opts_to_json(o), stepbuf[32];
    snprintf(stepbuf, sizeof stepbuf, "%lld", (long long)step);
    const char *meta[] = {"format", "mtp-train-state", "config", cfg, "train", opts, "step", stepbuf};
    if (m->tok) e[n++] = (mtp_st_entry){MTP_TOKENIZER_TENSOR, m->tok_file, 1, {(int64_t)m->tok_bytes}, MTP_DT_U8};
    int rc = mtp_st_write(path, e, n, meta, 4, err);
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

static int load_state(const char *dir, mtp_model *m, float *mom, float *vel, int64_t *step,
                      mtp_err *err) {
    mtp_safetensors st;
    char path[1200];
    if (open_state(dir, &st, path, sizeof path, err)) return -1;
    float *bufs[3] = {m->params, mom, vel};
    int rc = 0;
    for (int k = 0; k < 3 && rc == 0; k++)
        rc = mtp_load_params(&st, &m->lay, STATE_PREFIX[k], bufs[k], 0, err);
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
    mtp_acts acts;
    float *grads, *mom, *vel;
    mtp_shardset data, val;
    mtp_batcher batcher;
    mtp_token *window;
    FILE *metrics;
    int64_t saved; /* step of the latest checkpoint in o->out; -1: none from this run */
} trainer;

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

static int save_checkpoint(trainer *t, int64_t step, mtp_err *err) {
    if (check_finite_params(t, step, err)) return -1;
    char path[1200], stepbuf[32];
    snprintf(path, sizeof path, "%s/state.safetensors", t->o->out);
    if (save_state(t->m, t->o, t->mom, t->vel, step, path, err)) return -1;
    snprintf(stepbuf, sizeof stepbuf, "%lld", (long long)step);
    const char *extra[] = {"step", stepbuf};
    snprintf(path, sizeof path, "%s/model.safetensors", t->o->out);
    if (mtp_model_save(t->m, path, extra, 1, err)) return -1;
    t->saved = step;
    return 0;
}

static void write_metrics(FILE *f, const mtp_train_report *r) {
    if (!f) return;
    cJSON *j = cJSON_CreateObject();
    mtp_json_add_number(j, "step", (double)r->step);
    mtp_json_add_numbers(j, r->is_val ? "val_loss" : "loss", r->stats.loss, r->n_future);
    if (!r->is_val) {
        mtp_json_add_number(j, "lr", r->lr);
        mtp_json_add_number(j, "grad_norm", r->grad_norm);
        mtp_json_add_number(j, "tok_per_s", r->tok_per_s);
        mtp_json_add_number(j, "elapsed_s", r->elapsed_s);
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

/* Mean per-head loss over the first eval_batches sequential batches of the val shard. */
static void validate(trainer *t, int64_t step, mtp_train_cb cb, void *ctx) {
    const mtp_train_opts *o = t->o;
    int nf = t->m->cfg.n_future;
    mtp_batcher vb;
    mtp_batcher_init(&vb, &t->val, o->batch, o->seq, nf, 0, 0);
    mtp_train_report r = {.step = step, .steps = o->steps, .n_future = nf, .is_val = 1};
    for (int k = 0; k < o->eval_batches; k++) {
        mtp_head_stats s;
        mtp_batcher_get(&vb, k, t->window);
        mtp_step(t->m, &t->acts, t->window, NULL, NULL, 0, &s);
        for (int i = 0; i < nf; i++) {
            r.stats.loss[i] += s.loss[i] / o->eval_batches;
            r.stats.acc[i] += s.acc[i] / o->eval_batches;
        }
    }
    mtp_batcher_free(&vb);
    write_metrics(t->metrics, &r);
    if (cb) cb(&r, ctx);
}

static void trainer_free(trainer *t) {
    mtp_acts_free(&t->acts);
    free(t->grads);
    free(t->mom);
    free(t->vel);
    free(t->window);
    mtp_batcher_free(&t->batcher);
    mtp_shardset_free(&t->data);
    mtp_shardset_free(&t->val);
    if (t->metrics) fclose(t->metrics);
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
    if (o->precision == MTP_PRECISION_BF16 && !mtp_gemm_bf16_available())
        return mtp_fail(err, "--precision bf16: needs a CPU with AVX512-BF16 and a build for it "
                        "(-march=native); this one has %s", mtp_gemm_avx512_available() ? "no AVX512-BF16" : "no AVX-512");
    trainer t = {.m = m, .o = o, .saved = -1};
    if (mtp_check_fits(3 * P * sizeof(float), "the gradients and AdamW moments", err)) return -1;
    /* the lists become the paths they expanded to, so the state reopens the same files */
    if (mtp_shardset_open(&t.data, o->data, c->vocab_size, err)) return -1;
    if (mtp_shardset_list(&t.data, o->data, sizeof o->data, err) ||
        (o->val[0] && (mtp_shardset_open(&t.val, o->val, c->vocab_size, err) ||
                       mtp_shardset_list(&t.val, o->val, sizeof o->val, err)))) {
        trainer_free(&t);
        return -1;
    }
    t.grads = falloc(P);
    t.mom = falloc(P);
    t.vel = falloc(P);
    memset(t.mom, 0, P * sizeof(float));
    memset(t.vel, 0, P * sizeof(float));
    int64_t step = 0;
    if (resume_dir && load_state(resume_dir, m, t.mom, t.vel, &step, err)) {
        trainer_free(&t);
        return -1;
    }
    if (resume_dir && !strcmp(resume_dir, o->out)) t.saved = step;
    if (o->out[0]) {
        char path[1200];
        if (mkdir(o->out, 0777) != 0 && errno != EEXIST) {
            trainer_free(&t);
            return mtp_fail(err, "--out %s: %s", o->out, strerror(errno));
        }
        snprintf(path, sizeof path, "%s/metrics.jsonl", o->out);
        if (resume_dir && trim_metrics(path, step, err)) {
            trainer_free(&t);
            return -1;
        }
        t.metrics = fopen(path, resume_dir ? "a" : "w");
        if (!t.metrics) {
            trainer_free(&t);
            return mtp_fail(err, "%s: %s", path, strerror(errno));
        }
    }
    if (mtp_acts_init(&t.acts, c, o->batch, o->seq, o->schedule, 1, err)) {
        trainer_free(&t);
        return -1;
    }
    t.window = xmalloc((size_t)o->batch * (o->seq + c->n_future) * sizeof(mtp_token));
    mtp_batcher_init(&t.batcher, &t.data, o->batch, o->seq, c->n_future, o->shuffle, o->seed);

    int64_t end = o->stop_at > 0 && o->stop_at < o->steps ? o->stop_at : o->steps;
    double t0 = mtp_now(), tokens = 0;
    int64_t first = step;
    int rc = 0;
    mtp_adamw hp = {0, o->beta1, o->beta2, o->eps, o->weight_decay};
    mtp_matmul_precision(o->precision == MTP_PRECISION_BF16); /* available: checked above */
    for (; step < end && rc == 0; step++) {
        mtp_train_report r = {.step = step + 1, .steps = o->steps, .n_future = c->n_future};
        memset(t.grads, 0, P * sizeof(float));
        for (int a = 0; a < o->grad_accum; a++) {
            mtp_head_stats s;
            mtp_batcher_get(&t.batcher, (uint64_t)step * o->grad_accum + a, t.window);
            mtp_step(m, &t.acts, t.window, o->head_weight, t.grads, 1.0f / o->grad_accum, &s);
            for (int i = 0; i < c->n_future; i++) {
                r.stats.loss[i] += s.loss[i] / o->grad_accum;
                r.stats.acc[i] += s.acc[i] / o->grad_accum;
            }
        }
        r.grad_norm = mtp_global_norm(t.grads, P);
        if ((rc = check_finite_step(&t, &r, err)) != 0) break;
        if (o->grad_clip > 0 && r.grad_norm > o->grad_clip) {
            /* torch.nn.utils.clip_grad_norm_ */
            float k = (float)(o->grad_clip / (r.grad_norm + 1e-6));
#pragma omp parallel for schedule(static)
            for (size_t i = 0; i < P; i++) t.grads[i] *= k;
        }
        hp.lr = mtp_lr_at(o, step);
        mtp_adamw_step(&hp, &m->lay, m->params, t.grads, t.mom, t.vel, step + 1);

        tokens += (double)o->batch * o->seq * o->grad_accum;
        double el = mtp_now() - t0;
        for (int i = 0; i < c->n_future; i++) r.loss += o->head_weight[i] * r.stats.loss[i];
        r.lr = hp.lr;
        r.elapsed_s = el;
        r.tok_per_s = tokens / (el > 0 ? el : 1e-9);
        r.eta_s = el / (double)(step + 1 - first) * (double)(end - step - 1);
        write_metrics(t.metrics, &r);
        if (cb) cb(&r, ctx);
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
