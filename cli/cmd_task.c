/* cmd_task.c: `mtp task poly|induction`: print samples, write training shards and test
 * shards, and score a model on the fixed test sets (docs/tasks.md). */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "model/checkpoint.h"
#include "commands.h"
#include "formats/data.h"
#include "core/json.h"
#include "tasks/task_data.h"
#include "tasks/task_eval.h"
#include "tasks/task_induction.h"
#include "tasks/task_poly.h"

static const char *HELP =
    "usage: mtp task poly|induction [options]\n"
    "  --print N          print N samples (fresh from --seed, or the test set with --test)\n"
    "  --json             poly: one object per line: m, expr, answer (5 integers)\n"
    "  --m M              poly: samples with exactly M operations   [1..5 at random]\n"
    "  --test             print the fixed test set instead of fresh samples\n"
    "  --seed S           training stream seed                      [1]\n"
    "  --shard FILE --tokens N   write N tokens of training samples (never a test sample)\n"
    "  --test-shard FILE  write the test set as a shard (for `mtp eval` per-head losses)\n"
    "  --eval MODEL       accuracy on the test set (poly: per m, greedy, exact match of all\n"
    "                     5 coefficients; induction: second token of repeated names)\n"
    "  --pause P          poly: P pause tokens '.' between '=' and the answer, in samples,\n"
    "                     shards and --eval prompts (the paper's appendix K)  [0]\n"
    "  --m-max M          poly --eval: m = 1..M                     [10]\n"
    "  --n N              test samples per m (poly) / stories (induction) [2000 / 1000]\n"
    "  --threads N        threads\n";

typedef struct {
    int poly, print, json, m, test, m_max, n, threads, pause;
    uint64_t seed, tokens;
    const char *shard, *test_shard, *eval;
} task_opts;

/* JSON: the expression and answer only; text: also the pauses between them */
static void print_poly(const mtp_poly_sample *s, int json, int pause) {
    char expr[4096], dots[POLY_MAX_PAUSE + 2] = " ";
    mtp_poly_expr_text(s, expr, sizeof expr);
    memset(dots + 1, '.', pause);
    dots[pause ? pause + 1 : 0] = 0;
    const uint8_t *c = s->answer.c;
    if (json) {
        cJSON *j = cJSON_CreateObject();
        mtp_json_add_number(j, "m", s->m);
        cJSON_AddStringToObject(j, "expr", expr);
        int answer[5] = {c[0], c[1], c[2], c[3], c[4]};
        mtp_json_add_ints(j, "answer", answer, 5);
        mtp_json_write_line(stdout, j);
        cJSON_Delete(j);
    } else
        printf("m=%d  %s =%s [%d,%d,%d,%d,%d]\n", s->m, expr, dots, c[0], c[1], c[2], c[3], c[4]);
}

static void print_story(const mtp_story *s, int json) {
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON *t = cJSON_AddArrayToObject(j, "tokens");
        for (int i = 0; i < s->n; i++) cJSON_AddItemToArray(t, mtp_json_number(s->tok[i]));
        cJSON *sc = cJSON_AddArrayToObject(j, "scored");
        for (int i = 0; i < s->n_scored; i++) cJSON_AddItemToArray(sc, mtp_json_number(s->scored[i]));
        mtp_json_write_line(stdout, j);
        cJSON_Delete(j);
        return;
    }
    for (int i = 0; i < s->n; i++)
        printf("%s%s", i && s->tok[i] ? " " : "", mtp_induction_word(s->tok[i]));
}

static int run_eval(const task_opts *o) {
    mtp_model m;
    mtp_err err;
    if (mtp_model_load(&m, o->eval, &err)) {
        fprintf(stderr, "mtp task: %s\n", err.msg);
        return EXIT_BAD_INPUT;
    }
    int rc = 0;
    if (o->poly) {
        double acc[POLY_MAX_M + 1] = {0};
        int n = o->n ? o->n : POLY_TEST_PER_M;
        rc = mtp_poly_eval(&m, o->m_max, n, o->pause, acc, &err);
        if (rc == 0) {
            double in = 0, out = 0;
            int nin = 0, nout = 0;
            if (!o->json) printf("m    accuracy (%d expressions each)\n", n);
            for (int k = 1; k <= o->m_max; k++) {
                if (!o->json) printf("%-4d %.4f\n", k, acc[k]);
                if (k <= POLY_TRAIN_MAX_M) in += acc[k], nin++;
                else out += acc[k], nout++;
            }
            in = nin ? in / nin : 0, out = nout ? out / nout : 0;
            if (o->json) {
                cJSON *j = cJSON_CreateObject();
                mtp_json_add_numbers(j, "acc", acc + 1, o->m_max);
                mtp_json_add_number(j, "in_domain", in);
                mtp_json_add_number(j, "out_of_domain", out);
                mtp_json_write_line(stdout, j);
                cJSON_Delete(j);
            } else
                printf("in domain (m <= %d): %.4f   out of domain: %.4f\n", POLY_TRAIN_MAX_M, in, out);
        }
    } else {
        double acc = 0;
        rc = mtp_induction_eval(&m, o->n ? o->n : INDUCTION_TEST_STORIES, &acc, &err);
        if (rc == 0 && o->json) {
            cJSON *j = cJSON_CreateObject();
            mtp_json_add_number(j, "induction_acc", acc);
            mtp_json_write_line(stdout, j);
            cJSON_Delete(j);
        } else if (rc == 0) {
            printf("induction accuracy %.4f\n", acc);
        }
    }
    if (rc) fprintf(stderr, "mtp task: %s\n", err.msg);
    mtp_model_free(&m);
    return rc ? EXIT_BAD_INPUT : 0;
}

int cmd_task(int argc, char **argv) {
    static const struct option LONG[] = {
        {"print", 1, 0, 'p'}, {"json", 0, 0, 'j'}, {"m", 1, 0, 'm'}, {"test", 0, 0, 't'},
        {"seed", 1, 0, 's'}, {"shard", 1, 0, 'S'}, {"tokens", 1, 0, 'T'}, {"test-shard", 1, 0, 'X'},
        {"eval", 1, 0, 'e'}, {"m-max", 1, 0, 'M'}, {"n", 1, 0, 'n'}, {"threads", 1, 0, 'h'},
        {"pause", 1, 0, 'P'}, {"help", 0, 0, 'H'}, {0, 0, 0, 0}};
    if (argc < 2 || !strcmp(argv[1], "--help")) {
        fputs(HELP, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    task_opts o = {.m_max = POLY_TEST_MAX_M, .seed = 1};
    if (!strcmp(argv[1], "poly"))
        o.poly = 1;
    else if (strcmp(argv[1], "induction"))
        return usage_error("task", "unknown task '%s' (poly, induction)", argv[1]);
    int c, bad = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc - 1, argv + 1, ":", LONG, NULL)) != -1 && !bad) {
        switch (c) {
        case 'p': bad = arg_int("task", "--print", optarg, 0, 1 << 24, &o.print); break;
        case 'j': o.json = 1; break;
        case 'm': bad = arg_int("task", "--m", optarg, 1, POLY_MAX_M, &o.m); break;
        case 't': o.test = 1; break;
        case 's': bad = arg_u64("task", "--seed", optarg, &o.seed); break;
        case 'S': o.shard = optarg; break;
        case 'T': bad = arg_u64("task", "--tokens", optarg, &o.tokens); break;
        case 'X': o.test_shard = optarg; break;
        case 'e': o.eval = optarg; break;
        case 'M': bad = arg_int("task", "--m-max", optarg, 1, POLY_MAX_M, &o.m_max); break;
        case 'n': bad = arg_int("task", "--n", optarg, 1, 1 << 20, &o.n); break;
        case 'h': bad = arg_int("task", "--threads", optarg, 1, 1024, &o.threads); break;
        case 'P': bad = arg_int("task", "--pause", optarg, 0, POLY_MAX_PAUSE, &o.pause); break;
        case 'H': fputs(HELP, stdout); return 0;
        default: return options_error("task", c, argv + 1);
        }
    }
    if (bad) return EXIT_USAGE;
    if (optind < argc - 1) return usage_error("task", "unexpected argument '%s'", argv[optind + 1]);
    if (!o.print && !o.shard && !o.test_shard && !o.eval)
        return usage_error("task", "nothing to do: give --print, --shard, --test-shard or --eval");
    if (o.shard && (o.tokens == 0 || o.tokens > INT32_MAX))
        return usage_error("task", "--shard needs --tokens N (1..2^31-1)");
    if (o.pause && !o.poly) return usage_error("task", "--pause: only the poly task has pause tokens");
    if (o.test && o.m > POLY_TEST_MAX_M)
        return usage_error("task", "--m %d: the test set has m = 1..%d", o.m, POLY_TEST_MAX_M);
    cli_setup_threads(o.threads, 0);
    mtp_rng rng = {o.seed};
    for (int i = 0; i < o.print; i++) {
        if (o.poly) {
            mtp_poly_sample s;
            int m = o.m ? o.m : 1 + (int)mtp_rng_below(&rng, POLY_TRAIN_MAX_M);
            if (o.test)
                mtp_poly_test_sample(&s, o.m ? o.m : 1 + i / POLY_TEST_PER_M % POLY_TEST_MAX_M,
                                     i % POLY_TEST_PER_M);
            else
                mtp_poly_sample_draw(&s, m, &rng);
            print_poly(&s, o.json, o.pause);
        } else {
            mtp_story s;
            if (o.test)
                mtp_story_test(&s, i % INDUCTION_TEST_STORIES);
            else
                mtp_story_draw(&s, &rng, 0);
            print_story(&s, o.json);
        }
    }
    mtp_err err;
    if (o.shard) {
        mtp_token *t = mtp_task_train_tokens(o.poly ? MTP_TASK_POLY : MTP_TASK_INDUCTION, o.seed, o.pause,
                                            o.tokens);
        int rc = mtp_shard_write(o.shard, t, o.tokens, mtp_task_vocab(o.poly ? MTP_TASK_POLY : MTP_TASK_INDUCTION), &err);
        free(t);
        if (rc) return fprintf(stderr, "mtp task: %s\n", err.msg), EXIT_BAD_INPUT;
    }
    if (o.test_shard) {
        size_t n;
        mtp_token *t = mtp_task_test_tokens(o.poly ? MTP_TASK_POLY : MTP_TASK_INDUCTION,
                                           o.poly ? POLY_TEST_PER_M : INDUCTION_TEST_STORIES, o.pause, &n);
        int rc = mtp_shard_write(o.test_shard, t, n, mtp_task_vocab(o.poly ? MTP_TASK_POLY : MTP_TASK_INDUCTION), &err);
        free(t);
        if (rc) return fprintf(stderr, "mtp task: %s\n", err.msg), EXIT_BAD_INPUT;
    }
    return o.eval ? run_eval(&o) : 0;
}
