/* cmd_train.c: `mtp train`: flags -> mtp_train_opts, progress on stderr. */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "commands.h"
#include "mtp.h"

static const char *HELP =
    "usage: mtp train (--config FILE.json | --model FILE.safetensors | --resume DIR) --data SHARDS\n"
    "                 [options]\n"
    "  --config FILE       new model from a params.json-style config (random init, --seed)\n"
    "  --model FILE        start from a model file's weights, config and tokenizer (fresh\n"
    "                      optimizer): fine-tuning\n"
    "  --n-future K        with --model: keep future heads 1..K of its n (K <= n; the\n"
    "                      paper's n' = 1 and n' = 4), writing a model with K heads [all]\n"
    "  --freeze PARTS      comma-separated of trunk, heads, embeddings, output (norm and\n"
    "                      unembedding): no gradient, update or AdamW moments   [none]\n"
    "  --resume DIR        continue DIR's run exactly (weights, optimizer, step, data order);\n"
    "                      may change --steps --stop-at --save-every --eval-every --val --out,\n"
    "                      and --batch for another number of ranks (the same global batch)\n"
    "  --data SHARDS       training tokens: llm.c shards, comma-separated paths or glob\n"
    "                      patterns ('d/train_*.bin', sorted), one stream; repeat to append\n"
    "  --val SHARDS        validation tokens (the same syntax); per-head loss every\n"
    "                      --eval-every steps and at the end\n"
    "  --batch B           sequences per micro-batch (per rank under mpirun)  [8]\n"
    "  --seq T             tokens per sequence                  [256]\n"
    "  --steps N           optimizer steps                      [1000]\n"
    "  --stop-at K         stop (and save) after step K of N, to --resume later   [off]\n"
    "  --lr LR             peak learning rate                   [1e-3]\n"
    "  --min-lr LR         final learning rate of the cosine    [1e-4]\n"
    "  --lr-schedule S     cosine | constant                    [cosine]\n"
    "  --warmup W          linear warmup steps                  [100]\n"
    "  --weight-decay WD   AdamW decoupled decay, 2-D weights   [0.1]\n"
    "  --grad-clip C       global-norm clipping, 0 = off        [1.0]\n"
    "  --beta1 B1 --beta2 B2 --eps E   AdamW                    [0.9 0.95 1e-8]\n"
    "  --grad-accum A      micro-batches per step               [1]\n"
    "  --shuffle | --no-shuffle   seeded window order per epoch, or sequential [shuffle]\n"
    "  --seed S            initialisation and data order        [1337]\n"
    "  --head-schedule S   sequential (memory-efficient) | naive [sequential]\n"
    "  --head-weights W,.. loss weight of each future head      [all 1]\n"
    "  --precision P       f32 | bf16: the matrix products with bf16 inputs and fp32 sums\n"
    "                      (AVX512-BF16 CPUs); weights, gradients, AdamW stay fp32 [f32]\n"
    "  --threads N         threads                              [all cores]\n"
    "  --tokenizer FILE    the tokenizer the data was prepared with: saved models carry it\n"
    "                      (so generate takes text) [--model's own; kept on --resume]\n"
    "  --save-every K      checkpoint every K steps (and at the end) [0: end only]\n"
    "  --eval-every K      validation every K steps             [0: end only]\n"
    "  --eval-batches K    validation batches                   [8]\n"
    "  --out DIR           DIR/model.safetensors, DIR/state.safetensors, DIR/metrics.jsonl\n"
    "  --quiet             no progress lines\n";

typedef struct {
    int tty, quiet;
} progress;

static void fmt_time(char *buf, size_t n, double s) {
    if (s < 60)
        snprintf(buf, n, "%.0fs", s);
    else if (s < 3600)
        snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else
        snprintf(buf, n, "%dh%02dm", (int)s / 3600, (int)s % 3600 / 60);
}

static void on_report(const mtp_train_report *r, void *ctx) {
    progress *p = ctx;
    if (p->quiet) return;
    char heads[512] = "", *w = heads;
    for (int i = 0; i < r->n_future && w < heads + sizeof heads - 16; i++)
        w += snprintf(w, heads + sizeof heads - w, "%s%.4f", i ? " " : "", r->stats.loss[i]);
    if (r->is_val) {
        fprintf(stderr, "%sval  step %lld | head loss [%s]\n", p->tty ? "\r\033[K" : "",
                (long long)r->step, heads);
        return;
    }
    char eta[32];
    fmt_time(eta, sizeof eta, r->eta_s);
    fprintf(stderr, "%sstep %lld/%lld | loss %.4f [%s] | lr %.2e | gnorm %.3f | %.0f tok/s | eta %s%s",
            p->tty ? "\r\033[K" : "", (long long)r->step, (long long)r->steps, r->loss, heads, r->lr,
            r->grad_norm, r->tok_per_s, eta, p->tty ? "" : "\n");
}

enum { O_CONFIG = 256, O_MODEL, O_RESUME, O_DATA, O_VAL, O_BATCH, O_SEQ, O_STEPS, O_STOP, O_LR,
       O_MINLR, O_SCHED, O_WARMUP, O_WD, O_CLIP, O_B1, O_B2, O_EPS, O_ACCUM, O_SHUF, O_NOSHUF,
       O_SEED, O_HSCHED, O_HW, O_THREADS, O_SAVE, O_EVAL, O_EVALB, O_OUT, O_TOK, O_QUIET, O_NFUT,
       O_FREEZE, O_PREC, O_HELP };

static const struct option LONG[] = {
    {"config", 1, 0, O_CONFIG}, {"model", 1, 0, O_MODEL}, {"resume", 1, 0, O_RESUME},
    {"data", 1, 0, O_DATA}, {"val", 1, 0, O_VAL}, {"batch", 1, 0, O_BATCH}, {"seq", 1, 0, O_SEQ},
    {"steps", 1, 0, O_STEPS}, {"stop-at", 1, 0, O_STOP}, {"lr", 1, 0, O_LR},
    {"min-lr", 1, 0, O_MINLR}, {"lr-schedule", 1, 0, O_SCHED}, {"warmup", 1, 0, O_WARMUP},
    {"weight-decay", 1, 0, O_WD}, {"grad-clip", 1, 0, O_CLIP}, {"beta1", 1, 0, O_B1},
    {"beta2", 1, 0, O_B2}, {"eps", 1, 0, O_EPS}, {"grad-accum", 1, 0, O_ACCUM},
    {"shuffle", 0, 0, O_SHUF}, {"no-shuffle", 0, 0, O_NOSHUF}, {"seed", 1, 0, O_SEED},
    {"head-schedule", 1, 0, O_HSCHED}, {"head-weights", 1, 0, O_HW}, {"threads", 1, 0, O_THREADS},
    {"tokenizer", 1, 0, O_TOK}, {"n-future", 1, 0, O_NFUT}, {"freeze", 1, 0, O_FREEZE},
    {"precision", 1, 0, O_PREC},
    {"save-every", 1, 0, O_SAVE}, {"eval-every", 1, 0, O_EVAL}, {"eval-batches", 1, 0, O_EVALB},
    {"out", 1, 0, O_OUT}, {"quiet", 0, 0, O_QUIET}, {"help", 0, 0, O_HELP}, {0, 0, 0, 0}};

/* On --resume only these may differ from the stored run. */
static int resumable_flag(int id) {
    return id == O_STEPS || id == O_STOP || id == O_SAVE || id == O_EVAL || id == O_EVALB ||
           id == O_VAL || id == O_OUT || id == O_THREADS || id == O_QUIET || id == O_RESUME ||
           id == O_DATA || id == O_BATCH;
}

/* Copies a path flag into a fixed buffer, refusing what does not fit. */
static int set_path(char *dst, size_t n, const char *flag, const char *v) {
    if (strlen(v) >= n) return usage_error("train", "%s: path too long", flag), -1;
    snprintf(dst, n, "%s", v);
    return 0;
}

/* Appends a shard list flag (repeated: joined by a comma), refusing what does not fit. */
static int add_list(char *dst, size_t n, const char *flag, const char *v) {
    size_t have = strlen(dst);
    if (have + 1 + strlen(v) >= n) return usage_error("train", "%s: shard list too long", flag), -1;
    snprintf(dst + have, n - have, "%s%s", have ? "," : "", v);
    return 0;
}

/* --freeze PARTS into bits, refusing an unknown name and a list that freezes everything. */
static int parse_freeze(const char *v, unsigned *parts) {
    mtp_err err;
    if (mtp_parts_parse(v, parts, "--freeze", &err)) return usage_error("train", "%s", err.msg), -1;
    if (*parts == MTP_PART_ALL)
        return usage_error("train", "--freeze %s: every part frozen leaves nothing to train", v), -1;
    return 0;
}

int cmd_train(int argc, char **argv) {
    mtp_train_opts o, given;
    mtp_train_opts_default(&o);
    const char *config = NULL, *model = NULL, *resume = NULL, *tokenizer = NULL;
    int threads = 0, n_hw = 0, keep = 0, seen[O_HELP + 1] = {0};
    progress prog = {isatty(2), 0};
    int c, bad = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", LONG, NULL)) != -1 && !bad) {
        if (c == '?' || c == ':') return options_error("train", c, argv);
        seen[c] = 1;
        switch (c) {
        case O_CONFIG: config = optarg; break;
        case O_TOK: tokenizer = optarg; break;
        case O_MODEL: model = optarg; break;
        case O_RESUME: resume = optarg; break;
        case O_DATA: bad = add_list(o.data, sizeof o.data, "--data", optarg); break;
        case O_VAL: bad = add_list(o.val, sizeof o.val, "--val", optarg); break;
        case O_OUT: bad = set_path(o.out, sizeof o.out, "--out", optarg); break;
        case O_BATCH: bad = arg_int("train", "--batch", optarg, 1, 65536, &o.batch); break;
        case O_SEQ: bad = arg_int("train", "--seq", optarg, 1, 1 << 20, &o.seq); break;
        case O_STEPS: bad = arg_int("train", "--steps", optarg, 0, 1 << 30, &o.steps); break;
        case O_STOP: bad = arg_int("train", "--stop-at", optarg, 0, 1 << 30, &o.stop_at); break;
        case O_LR: bad = arg_float("train", "--lr", optarg, 0, 10, &o.lr); break;
        case O_MINLR: bad = arg_float("train", "--min-lr", optarg, 0, 10, &o.min_lr); break;
        case O_WARMUP: bad = arg_int("train", "--warmup", optarg, 0, 1 << 30, &o.warmup); break;
        case O_WD: bad = arg_float("train", "--weight-decay", optarg, 0, 100, &o.weight_decay); break;
        case O_CLIP: bad = arg_float("train", "--grad-clip", optarg, 0, 1e9, &o.grad_clip); break;
        case O_B1: bad = arg_float("train", "--beta1", optarg, 0, 0.999999, &o.beta1); break;
        case O_B2: bad = arg_float("train", "--beta2", optarg, 0, 0.999999, &o.beta2); break;
        case O_EPS: bad = arg_float("train", "--eps", optarg, 0, 1, &o.eps); break;
        case O_ACCUM: bad = arg_int("train", "--grad-accum", optarg, 1, 1 << 20, &o.grad_accum); break;
        case O_SHUF: o.shuffle = 1; break;
        case O_NOSHUF: o.shuffle = 0; break;
        case O_SEED: bad = arg_u64("train", "--seed", optarg, &o.seed); break;
        case O_THREADS: bad = arg_int("train", "--threads", optarg, 1, 1024, &threads); break;
        case O_SAVE: bad = arg_int("train", "--save-every", optarg, 0, 1 << 30, &o.save_every); break;
        case O_EVAL: bad = arg_int("train", "--eval-every", optarg, 0, 1 << 30, &o.eval_every); break;
        case O_EVALB: bad = arg_int("train", "--eval-batches", optarg, 1, 1 << 20, &o.eval_batches); break;
        case O_QUIET: prog.quiet = 1; break;
        case O_NFUT: bad = arg_int("train", "--n-future", optarg, 1, MTP_MAX_FUTURE, &keep); break;
        case O_FREEZE: bad = parse_freeze(optarg, &o.freeze); break;
        case O_PREC: bad = arg_precision("train", optarg, &o.precision); break;
        case O_HELP: fputs(HELP, stdout); return 0;
        case O_SCHED:
            if (strcmp(optarg, "cosine") && strcmp(optarg, "constant"))
                return usage_error("train", "--lr-schedule: expected cosine or constant, got '%s'", optarg);
            o.cosine = !strcmp(optarg, "cosine");
            break;
        case O_HSCHED:
            if (strcmp(optarg, "sequential") && strcmp(optarg, "naive"))
                return usage_error("train", "--head-schedule: expected sequential or naive, got '%s'", optarg);
            o.schedule = strcmp(optarg, "naive") ? MTP_HEADS_SEQUENTIAL : MTP_HEADS_NAIVE;
            break;
        case O_HW:
            n_hw = arg_floats("train", "--head-weights", optarg, o.head_weight, MTP_MAX_FUTURE);
            bad = n_hw < 0;
            break;
        }
    }
    if (bad) return EXIT_USAGE;
    if (optind < argc) return usage_error("train", "unexpected argument '%s'", argv[optind]);
    if (!!config + !!model + !!resume != 1)
        return usage_error("train", "give exactly one of --config, --model, --resume");
    if (!resume && !o.data[0]) return usage_error("train", "--data is required");
    if (keep && config)
        return usage_error("train", "--n-future needs --model (a --config sets n_future_tokens itself)");
    cli_setup_threads(threads, !prog.quiet);

    mtp_model *m = NULL;
    mtp_err err;
    if (resume) {
        given = o;
        for (int id = O_CONFIG; id <= O_HELP; id++)
            if (seen[id] && !resumable_flag(id)) {
                const char *name = "?";
                for (const struct option *l = LONG; l->name; l++)
                    if (l->val == id) name = l->name;
                return usage_error("train", "--%s cannot change when resuming", name);
            }
        if (mtp_train_state_open(resume, &m, &o, &err)) {
            fprintf(stderr, "mtp train: %s\n", err.msg);
            return EXIT_BAD_INPUT;
        }
        if (seen[O_STEPS]) o.steps = given.steps;
        if (seen[O_BATCH]) o.batch = given.batch; /* mtp_train checks the global batch */
        if (seen[O_DATA]) memcpy(o.data, given.data, sizeof o.data);
        if (seen[O_VAL]) memcpy(o.val, given.val, sizeof o.val);
        snprintf(o.out, sizeof o.out, "%s", seen[O_OUT] ? given.out : resume);
        o.stop_at = given.stop_at;
        if (seen[O_SAVE]) o.save_every = given.save_every; /* else the run's own schedule */
        if (seen[O_EVAL]) o.eval_every = given.eval_every;
        if (seen[O_EVALB]) o.eval_batches = given.eval_batches;
    } else if (config) {
        mtp_config cfg;
        if (mtp_config_load(&cfg, config, &err)) {
            fprintf(stderr, "mtp train: %s\n", err.msg);
            return EXIT_BAD_INPUT;
        }
        if (mtp_model_create(&m, &cfg, o.seed, &err)) {
            fprintf(stderr, "mtp train: %s: %s\n", config, err.msg);
            return EXIT_BAD_INPUT;
        }
    } else if (mtp_model_open(&m, model, &err)) {
        fprintf(stderr, "mtp train: %s\n", err.msg);
        return EXIT_BAD_INPUT;
    } else if (keep && keep > mtp_model_config(m)->n_future) {
        int nf = mtp_model_config(m)->n_future;
        mtp_model_close(m);
        return usage_error("train", "--n-future %d: %s has %d future heads", keep, model, nf);
    } else if (keep && mtp_model_keep_heads(m, keep, &err)) {
        fprintf(stderr, "mtp train: %s: %s\n", model, err.msg);
        mtp_model_close(m);
        return EXIT_BAD_INPUT;
    }
    if (tokenizer && mtp_model_set_tokenizer(m, tokenizer, &err)) {
        fprintf(stderr, "mtp train: %s\n", err.msg);
        mtp_model_close(m);
        return EXIT_BAD_INPUT;
    }
    const mtp_config *cfg = mtp_model_config(m);
    if (n_hw > 0 && n_hw != cfg->n_future) {
        int nf = cfg->n_future;
        mtp_model_close(m);
        return usage_error("train", "--head-weights: %d weights for %d future heads", n_hw, nf);
    }
    if (!resume && o.seq > cfg->max_seq_len) {
        int max = cfg->max_seq_len;
        mtp_model_close(m);
        return usage_error("train", "--seq %d exceeds the model's max_seq_len %d", o.seq, max);
    }
    int rc = mtp_train(m, &o, resume, on_report, &prog, &err);
    if (prog.tty && !prog.quiet) fputc('\n', stderr);
    if (rc && mtp_train_rank() == 0) fprintf(stderr, "mtp train: %s\n", err.msg);
    mtp_model_close(m);
    return rc ? EXIT_BAD_INPUT : 0;
}
