/* cmd_experiment.c: `mtp experiment poly|induction`: the paper's two small-model
 * experiments (PAPER.md) end to end. Trains parameter-matched models with
 * n_future_tokens 1, 2, 4 (induction: 1 and 2, at several model sizes) on the same
 * tokens with the same compute, scores them on the fixed test sets, and writes
 * DIR/report.md with the tables, the commands and wall times, and SVG plots in the
 * spirit of the paper's Figures 7 and 8. Each run lives in its own folder and is
 * skipped when done or resumed from its checkpoint, so an interrupted experiment
 * continues where it stopped. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "args.h"
#include "kernels/backend.h"
#include "model/checkpoint.h"
#include "commands.h"
#include "formats/data.h"
#include "train/eval.h"
#include "core/json.h"
#include "svg.h"
#include "tasks/task_data.h"
#include "tasks/task_eval.h"
#include "tasks/task_induction.h"
#include "tasks/task_poly.h"
#include "train/train.h"

static const char *HELP =
    "usage: mtp experiment poly|induction --out DIR [--preset quick|laptop|big] [--seeds K]\n"
    "                      [--steps N] [--lr LR] [--eval-n N] [--pause P] [--report-only]\n"
    "                      [--threads N]\n"
    "  poly: n_future_tokens 1, 2, 4 at equal n_layers; accuracy per m (1..10)\n"
    "  induction: n_future_tokens 1, 2 at several model sizes; second-token accuracy\n"
    "  Presets (docs/tasks.md): quick (minutes), laptop (hours on 2 cores), big.\n"
    "  --steps N, --lr LR, --eval-n N: instead of the preset's (peak lr, the cosine ending\n"
    "  at LR/10; test expressions per m / test stories);\n"
    "  --pause P: poly with P pause tokens before the answer (the paper's appendix K).\n"
    "  --report-only: write the report from the runs finished so far, training nothing\n"
    "  (to look at a long experiment while it runs; unfinished runs are marked).\n"
    "  Rerunning the same command skips finished runs and resumes interrupted ones.\n";

typedef struct {
    int dims[4], n_dims, n_layers, n_heads, steps, batch, seq, eval_n;
    float lr;
} preset;

static const struct {
    const char *name;
    preset poly, induction;
} PRESETS[] = {
    {"quick", {{64}, 1, 4, 4, 400, 16, 128, 200, 2e-3f}, {{32, 64}, 2, 4, 4, 400, 16, 256, 200, 2e-3f}},
    {"laptop", {{128}, 1, 6, 4, 2000, 32, 128, 2000, 1e-3f}, {{32, 64, 128}, 3, 4, 4, 1500, 16, 256, 1000, 1e-3f}},
    {"big", {{384}, 1, 8, 8, 30000, 64, 128, 2000, 6e-4f}, {{64, 128, 256, 512}, 4, 6, 8, 10000, 32, 256, 1000, 6e-4f}},
};

typedef struct {
    double acc[POLY_MAX_M + 1]; /* poly: per m; induction: acc[0] */
    double head_loss[4];
    double wall_s;
    size_t params_nonemb;
    int done; /* 0: not finished (--report-only) */
} result;

static int file_exists(const char *p) { return access(p, F_OK) == 0; }

static void on_step(const mtp_train_report *r, void *ctx) {
    const char *name = ctx;
    if (r->is_val || (r->step % 100 && r->step != r->steps)) return;
    fprintf(stderr, "  %s: step %lld/%lld loss %.4f (%.0f tok/s, eta %.0fs)\n", name,
            (long long)r->step, (long long)r->steps, r->loss, r->tok_per_s, r->eta_s);
}

static int load_result(const char *path, result *res) {
    char *text;
    size_t len;
    if (mtp_read_file(path, &text, &len, NULL)) return -1;
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!j) return -1;
    const cJSON *a = cJSON_GetObjectItem(j, "acc"), *h = cJSON_GetObjectItem(j, "head_loss");
    for (int i = 0; i < cJSON_GetArraySize(a) && i <= POLY_MAX_M; i++) res->acc[i] = cJSON_GetArrayItem(a, i)->valuedouble;
    for (int i = 0; i < cJSON_GetArraySize(h) && i < 4; i++) res->head_loss[i] = cJSON_GetArrayItem(h, i)->valuedouble;
    res->wall_s = cJSON_GetObjectItem(j, "wall_s") ? cJSON_GetObjectItem(j, "wall_s")->valuedouble : 0;
    res->params_nonemb = (size_t)(cJSON_GetObjectItem(j, "params_nonemb") ? cJSON_GetObjectItem(j, "params_nonemb")->valuedouble : 0);
    res->done = 1;
    cJSON_Delete(j);
    return 0;
}

static int save_result(const char *path, const result *res, int n_acc, int nf, mtp_err *err) {
    cJSON *j = cJSON_CreateObject();
    mtp_json_add_numbers(j, "acc", res->acc, n_acc);
    mtp_json_add_numbers(j, "head_loss", res->head_loss, nf);
    mtp_json_add_number(j, "wall_s", res->wall_s);
    mtp_json_add_number(j, "params_nonemb", (double)res->params_nonemb);
    char *text = mtp_json_text(j);
    cJSON_Delete(j);
    mtp_atomic_file af;
    int rc = mtp_atomic_open(&af, path, err);
    if (rc == 0) {
        mtp_atomic_write(&af, text, strlen(text));
        mtp_atomic_write(&af, "\n", 1);
        rc = mtp_atomic_commit(&af, err);
    }
    free(text);
    return rc;
}

/* One model: train (or resume), then score; results cached in RUN/result.json. With
 * train 0, only loads a finished run's result (res->done 0 if there is none). */
static int run_one(const char *dir, const char *name, int poly, int pause, int train, const preset *p, int dim,
                   int nf, uint64_t seed, const char *train_shard, const char *test_shard, result *res,
                   mtp_err *err) {
    char run[960], path[1300]; /* dir is at most 800 bytes (cmd_experiment) */
    snprintf(run, sizeof run, "%s/%s", dir, name);
    snprintf(path, sizeof path, "%s/result.json", run);
    if (file_exists(path) && load_result(path, res) == 0) {
        fprintf(stderr, "  %s: done earlier\n", name);
        return 0;
    }
    if (!train) {
        memset(res, 0, sizeof *res);
        fprintf(stderr, "  %s: not finished\n", name);
        return 0;
    }
    double t0 = mtp_now();
    mtp_model m;
    mtp_train_opts o;
    char state[1300];
    snprintf(state, sizeof state, "%s/state.safetensors", run);
    int resume = file_exists(state), rc;
    if (resume) {
        rc = mtp_train_peek_state(run, &m, &o, err);
        snprintf(o.out, sizeof o.out, "%s", run);
        o.save_every = 500;
        fprintf(stderr, "  %s: resuming\n", name);
    } else {
        char cfg_json[400];
        int vocab = poly ? POLY_VOCAB : mtp_induction_vocab();
        snprintf(cfg_json, sizeof cfg_json,
                 "{\"dim\":%d,\"n_layers\":%d,\"n_heads\":%d,\"vocab_size\":%d,\"multiple_of\":32,"
                 "\"n_future_tokens\":%d,\"max_seq_len\":%d}",
                 dim, p->n_layers, dim >= 64 ? p->n_heads : 2, vocab, nf, poly ? 512 : INDUCTION_MAX_TOKENS);
        mtp_config cfg;
        rc = mtp_config_parse(&cfg, cfg_json, name, err);
        if (rc == 0) rc = mtp_model_init(&m, &cfg, err);
        if (rc == 0) mtp_model_randomize(&m, seed);
        mtp_train_opts_default(&o);
        o.batch = p->batch, o.seq = p->seq, o.steps = p->steps, o.warmup = p->steps / 20;
        o.lr = p->lr, o.min_lr = p->lr / 10, o.seed = seed, o.save_every = 500;
        if (rc == 0 && mtp_shard_list_escape(o.data, sizeof o.data, train_shard)) {
            mtp_model_free(&m);
            rc = mtp_fail(err, "%s: path too long", train_shard);
        }
        snprintf(o.out, sizeof o.out, "%s", run);
    }
    if (rc) return -1;
    rc = mtp_train(&m, &o, resume ? run : NULL, on_step, (void *)name, err);
    if (rc == 0) {
        memset(res, 0, sizeof *res);
        mtp_param_counts pc = mtp_count_params(&m.lay, &m.cfg);
        res->params_nonemb = pc.trunk + pc.heads;
        if (poly)
            rc = mtp_poly_eval(&m, POLY_TEST_MAX_M, p->eval_n, pause, res->acc, err);
        else
            rc = mtp_induction_eval(&m, p->eval_n, &res->acc[0], err);
    }
    if (rc == 0) { /* per-head losses on the test set */
        mtp_shardset s;
        mtp_head_stats hs;
        rc = mtp_shardset_open_paths(&s, &test_shard, 1, m.cfg.vocab_size, err);
        if (rc == 0) rc = mtp_eval(&m, &s, 8, p->seq, 8, &hs, err);
        for (int i = 0; i < nf && rc == 0; i++) res->head_loss[i] = hs.loss[i];
        mtp_shardset_free(&s);
    }
    res->wall_s = mtp_now() - t0;
    res->done = rc == 0;
    if (rc == 0) rc = save_result(path, res, poly ? POLY_TEST_MAX_M + 1 : 1, nf, err);
    mtp_model_free(&m);
    return rc;
}

static int write_shards(const char *dir, int poly, int pause, size_t train_tokens, char *train,
                        char *test, size_t cap, mtp_err *err) {
    snprintf(train, cap, "%s/train.bin", dir);
    snprintf(test, cap, "%s/test.bin", dir);
    if (file_exists(train) && file_exists(test)) return 0;
    mtp_task task = poly ? MTP_TASK_POLY : MTP_TASK_INDUCTION;
    mtp_token *t = mtp_task_train_tokens(task, 20240430, pause, train_tokens);
    int rc = mtp_shard_write(train, t, train_tokens, mtp_task_vocab(task), err);
    free(t);
    size_t have; /* a slice of the test set, for per-head losses */
    t = mtp_task_test_tokens(task, poly ? 200 : 400, pause, &have);
    if (rc == 0) rc = mtp_shard_write(test, t, have, mtp_task_vocab(task), err);
    free(t);
    return rc;
}

/* DIR/settings records what the runs in DIR were trained with, so that a rerun with
 * other settings stops instead of mixing them. */
static int check_settings(const char *dir, const char *task, const char *preset_name, const preset *p,
                          int pause) {
    char path[1300], want[200];
    snprintf(path, sizeof path, "%s/settings", dir);
    int n = snprintf(want, sizeof want, "%s preset %s steps %d lr %g eval %d pause %d\n", task, preset_name, p->steps,
                     p->lr, p->eval_n, pause);
    char *have;
    size_t len;
    mtp_err err;
    if (mtp_read_file(path, &have, &len, NULL) == 0) {
        int same = len == (size_t)n && !memcmp(have, want, n);
        if (!same)
            fprintf(stderr, "mtp experiment: %s holds runs with other settings (%.*s); use another --out\n",
                    dir, (int)strcspn(have, "\n"), have);
        free(have);
        return same ? 0 : -1;
    }
    mtp_atomic_file af;
    int rc = mtp_atomic_open(&af, path, &err);
    if (rc == 0) mtp_atomic_write(&af, want, n), rc = mtp_atomic_commit(&af, &err);
    if (rc) fprintf(stderr, "mtp experiment: %s\n", err.msg);
    return rc;
}

int cmd_experiment(int argc, char **argv) {
    static const struct option LONG[] = {{"out", 1, 0, 'o'}, {"preset", 1, 0, 'p'}, {"seeds", 1, 0, 's'},
                                         {"threads", 1, 0, 't'}, {"steps", 1, 0, 'n'}, {"pause", 1, 0, 'P'},
                                         {"lr", 1, 0, 'L'}, {"report-only", 0, 0, 'R'}, {"eval-n", 1, 0, 'e'},
                                         {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    if (argc < 2 || !strcmp(argv[1], "--help")) {
        fputs(HELP, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    int poly = !strcmp(argv[1], "poly");
    if (!poly && strcmp(argv[1], "induction"))
        return usage_error("experiment", "unknown experiment '%s' (poly, induction)", argv[1]);
    const char *dir = NULL, *preset_name = "laptop";
    int seeds = 1, threads = 0, steps = 0, pause = 0, report_only = 0, eval_n = 0, c, bad = 0;
    float lr = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc - 1, argv + 1, ":", LONG, NULL)) != -1 && !bad) {
        switch (c) {
        case 'o': dir = optarg; break;
        case 'p': preset_name = optarg; break;
        case 's': bad = arg_int("experiment", "--seeds", optarg, 1, 16, &seeds); break;
        case 't': bad = arg_int("experiment", "--threads", optarg, 1, 1024, &threads); break;
        case 'n': bad = arg_int("experiment", "--steps", optarg, 1, 1 << 24, &steps); break;
        case 'P': bad = arg_int("experiment", "--pause", optarg, 0, POLY_MAX_PAUSE, &pause); break;
        case 'L': bad = arg_float("experiment", "--lr", optarg, 1e-7, 1, &lr); break;
        case 'R': report_only = 1; break;
        case 'e': bad = arg_int("experiment", "--eval-n", optarg, 1, poly ? POLY_TEST_PER_M : INDUCTION_TEST_STORIES, &eval_n); break;
        case 'h': fputs(HELP, stdout); return 0;
        default: return options_error("experiment", c, argv + 1);
        }
    }
    if (bad) return EXIT_USAGE;
    if (!dir) return usage_error("experiment", "--out DIR is required");
    if (strlen(dir) > 800) return usage_error("experiment", "--out: path too long");
    if (pause && !poly) return usage_error("experiment", "--pause: only the poly task has pause tokens");
    preset pr, *p = NULL;
    for (size_t i = 0; i < sizeof PRESETS / sizeof *PRESETS; i++)
        if (!strcmp(PRESETS[i].name, preset_name)) pr = poly ? PRESETS[i].poly : PRESETS[i].induction, p = &pr;
    if (!p) return usage_error("experiment", "--preset: expected quick, laptop or big, got '%s'", preset_name);
    if (steps) p->steps = steps;
    if (lr) p->lr = lr;
    if (eval_n) p->eval_n = eval_n;
    size_t tokens = (size_t)p->steps * p->batch * p->seq + p->seq * 2;
    if (tokens > INT32_MAX)
        return usage_error("experiment", "--steps %d: %zu training tokens, more than a shard holds", p->steps, tokens);
    if (report_only) { /* nothing is created: DIR must hold runs with these settings */
        char path[1000];
        snprintf(path, sizeof path, "%s/settings", dir);
        if (!file_exists(path)) {
            fprintf(stderr, "mtp experiment: %s holds no experiment (no settings file)\n", dir);
            return EXIT_BAD_INPUT;
        }
    } else if (mkdir(dir, 0777) && errno != EEXIST) {
        fprintf(stderr, "mtp experiment: %s: %s\n", dir, strerror(errno));
        return EXIT_BAD_INPUT;
    }
    if (check_settings(dir, argv[1], preset_name, p, pause)) return EXIT_BAD_INPUT;
    cli_setup_threads(threads, 1);
    mtp_err err;
    char train[1000], test[1000];
    if (report_only) /* the runs' shards are only read by training and scoring */
        snprintf(train, sizeof train, "%s/train.bin", dir), snprintf(test, sizeof test, "%s/test.bin", dir);
    else if (write_shards(dir, poly, pause, tokens, train, test, sizeof train, &err)) {
        fprintf(stderr, "mtp experiment: %s\n", err.msg);
        return EXIT_BAD_INPUT;
    }
    static const int NF_POLY[] = {1, 2, 4}, NF_IND[] = {1, 2};
    const int *nfs = poly ? NF_POLY : NF_IND;
    int n_nf = poly ? 3 : 2;
    result res[4][3][16]; /* [dim][nf][seed] */
    double t0 = mtp_now();
    for (int di = 0; di < p->n_dims; di++)
        for (int k = 0; k < n_nf; k++)
            for (int s = 0; s < seeds; s++) {
                char name[64];
                snprintf(name, sizeof name, "%s-d%d-n%d-s%d", poly ? "poly" : "ind", p->dims[di], nfs[k], s + 1);
                if (run_one(dir, name, poly, pause, !report_only, p, p->dims[di], nfs[k], 1000 + s, train, test, &res[di][k][s], &err)) {
                    fprintf(stderr, "mtp experiment: %s: %s\n", name, err.msg);
                    return EXIT_BAD_INPUT;
                }
            }
    double wall = mtp_now() - t0;
    int col_done[3] = {1, 1, 1}, all_done = 1; /* a column of the tables: one n_future */
    for (int di = 0; di < p->n_dims; di++)
        for (int k = 0; k < n_nf; k++)
            for (int s = 0; s < seeds; s++) col_done[k] &= res[di][k][s].done, all_done &= res[di][k][s].done;
    int any_done = 0;
    for (int k = 0; k < n_nf; k++) any_done |= col_done[k];

    /* the report */
    char path[1300];
    snprintf(path, sizeof path, "%s/report.md", dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "mtp experiment: %s: %s\n", path, strerror(errno));
        return EXIT_BAD_INPUT;
    }
    fprintf(f, "# %s experiment (preset %s)\n\n", poly ? "Polynomial arithmetic" : "Induction", preset_name);
    char extra[96] = "";
    if (steps) snprintf(extra, sizeof extra, " --steps %d", steps);
    if (lr) snprintf(extra + strlen(extra), sizeof extra - strlen(extra), " --lr %g", lr);
    if (eval_n) snprintf(extra + strlen(extra), sizeof extra - strlen(extra), " --eval-n %d", eval_n);
    if (pause) snprintf(extra + strlen(extra), sizeof extra - strlen(extra), " --pause %d", pause);
    fprintf(f, "Command: `mtp experiment %s --out %s --preset %s --seeds %d%s`  \n", argv[1], dir, preset_name,
            seeds, extra);
    fprintf(f, "Models: n_layers %d (trunk + future heads, parameter-matched), dims", p->n_layers);
    for (int di = 0; di < p->n_dims; di++) fprintf(f, " %d", p->dims[di]);
    fprintf(f, "; %d steps of %d x %d tokens, lr %g cosine; %d seed(s); %d test samples%s", p->steps, p->batch,
            p->seq, p->lr, seeds, p->eval_n, poly ? " per m" : " (stories)");
    if (pause) fprintf(f, "; %d pause tokens before each answer", pause);
    fprintf(f, ".  \n");
    double total = 0;
    for (int di = 0; di < p->n_dims; di++)
        for (int k = 0; k < n_nf; k++)
            for (int s = 0; s < seeds; s++) total += res[di][k][s].wall_s;
    fprintf(f, "Wall time: %.0f s for the runs (this invocation %.0f s). %s\n\n", total, wall, mtp_backend_describe());
    if (!all_done)
        fprintf(f, "**Partial report** (`--report-only`): columns marked - have runs that had not finished.\n\n");
    mtp_series series[3];
    double xs[3][16], ys[3][16];
    if (poly) {
        fprintf(f, "Accuracy (exact match of all 5 coefficients, greedy), mean over seeds:\n\n| m |");
        for (int k = 0; k < n_nf; k++) fprintf(f, " n=%d |", nfs[k]);
        fprintf(f, "\n|---|");
        for (int k = 0; k < n_nf; k++) fprintf(f, "---|");
        fprintf(f, "\n");
        double in[3] = {0}, out[3] = {0};
        for (int mm = 1; mm <= POLY_TEST_MAX_M; mm++) {
            fprintf(f, "| %d%s |", mm, mm > POLY_TRAIN_MAX_M ? " (ood)" : "");
            for (int k = 0; k < n_nf; k++) {
                double a = 0;
                for (int s = 0; s < seeds; s++) a += res[0][k][s].acc[mm] / seeds;
                fprintf(f, col_done[k] ? " %.3f |" : " - |", a);
                xs[k][mm - 1] = mm, ys[k][mm - 1] = a;
                (mm <= POLY_TRAIN_MAX_M ? in : out)[k] += a / (mm <= POLY_TRAIN_MAX_M ? POLY_TRAIN_MAX_M : POLY_TEST_MAX_M - POLY_TRAIN_MAX_M);
            }
            fprintf(f, "\n");
        }
        fprintf(f, "| in domain (m<=5) |");
        for (int k = 0; k < n_nf; k++) fprintf(f, col_done[k] ? " %.3f |" : " - |", in[k]);
        fprintf(f, "\n| out of domain (m>5) |");
        for (int k = 0; k < n_nf; k++) fprintf(f, col_done[k] ? " %.3f |" : " - |", out[k]);
        fprintf(f, any_done ? "\n\n![accuracy vs m](poly_accuracy.svg)\n\n" : "\n\n");
        char names[3][16];
        int ns = 0;
        for (int k = 0; k < n_nf; k++) {
            snprintf(names[k], sizeof names[k], "n=%d", nfs[k]);
            if (col_done[k]) series[ns++] = (mtp_series){names[k], xs[k], ys[k], POLY_TEST_MAX_M};
        }
        snprintf(path, sizeof path, "%s/poly_accuracy.svg", dir);
        if (ns && mtp_svg_plot(path, "Polynomial arithmetic: accuracy vs operations",
                               "m (operations; > 5 out of domain)", "accuracy", series, ns, 0, 1, &err))
            fprintf(stderr, "mtp experiment: %s\n", err.msg);
    } else {
        fprintf(f, "Accuracy on the second token of repeated names, mean over seeds:\n\n| dim | non-embedding params |");
        for (int k = 0; k < n_nf; k++) fprintf(f, " n=%d |", nfs[k]);
        fprintf(f, "\n|---|---|");
        for (int k = 0; k < n_nf; k++) fprintf(f, "---|");
        fprintf(f, "\n");
        for (int di = 0; di < p->n_dims; di++) {
            fprintf(f, "| %d | %zu |", p->dims[di], res[di][0][0].params_nonemb);
            for (int k = 0; k < n_nf; k++) {
                double a = 0;
                for (int s = 0; s < seeds; s++) a += res[di][k][s].acc[0] / seeds;
                fprintf(f, col_done[k] ? " %.3f |" : " - |", a);
                xs[k][di] = (double)res[di][k][0].params_nonemb, ys[k][di] = a;
            }
            fprintf(f, "\n");
        }
        fprintf(f, any_done ? "\n![induction accuracy vs model size](induction_accuracy.svg)\n\n" : "\n");
        char names[3][16];
        int ns = 0;
        for (int k = 0; k < n_nf; k++) {
            snprintf(names[k], sizeof names[k], "n=%d", nfs[k]);
            if (col_done[k]) series[ns++] = (mtp_series){names[k], xs[k], ys[k], p->n_dims};
        }
        snprintf(path, sizeof path, "%s/induction_accuracy.svg", dir);
        if (ns && mtp_svg_plot(path, "Induction: accuracy vs model size", "non-embedding parameters (log)",
                               "second-token accuracy", series, ns, 1, 1, &err))
            fprintf(stderr, "mtp experiment: %s\n", err.msg);
    }
    fprintf(f, "Per-head test loss (nats; head i predicts token t+i), seed 1:\n\n| run | head losses |\n|---|---|\n");
    for (int di = 0; di < p->n_dims; di++)
        for (int k = 0; k < n_nf; k++) {
            if (!res[di][k][0].done) continue;
            fprintf(f, "| d%d n=%d |", p->dims[di], nfs[k]);
            for (int i = 0; i < nfs[k]; i++) fprintf(f, " %.4f", res[di][k][0].head_loss[i]);
            fprintf(f, " |\n");
        }
    char pauses[32] = "";
    if (pause) snprintf(pauses, sizeof pauses, " --pause %d", pause);
    fprintf(f, "\nRe-evaluate a saved model: `mtp task %s --eval %s/<run>/model.safetensors --n %d%s`.\n",
            poly ? "poly" : "induction", dir, p->eval_n, pauses);
    fclose(f);
    printf("report: %s/report.md\n", dir);
    return 0;
}
