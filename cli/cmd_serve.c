/* cmd_serve.c: `mtp serve`: an OpenAI-compatible HTTP server over the library's engine
 * (docs/serve.md). Starts the engine and the HTTP daemon, then waits for SIGTERM or
 * SIGINT: stops accepting, lets what is in flight finish for a while, cancels the rest,
 * exits 0. */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "args.h"
#include "commands.h"
#include "serve.h"

static const char *HELP =
    "usage: mtp serve --model FILE.safetensors [options]\n"
    "  OpenAI-compatible HTTP API: POST /v1/completions, /v1/chat/completions, /tokenize,\n"
    "  /detokenize; GET /v1/models, /health, /metrics (docs/serve.md)\n"
    "  --host ADDR         address to listen on                 [127.0.0.1]\n"
    "  --port N            port (0: any free one, printed)      [8080]\n"
    "  --api-key KEY       require 'Authorization: Bearer KEY'  [none] (also $MTP_API_KEY)\n"
    "  --parallel N        requests decoded at once (KV slots)  [4]\n"
    "  --ctx T             tokens per request, prompt + max_tokens [the model's max_seq_len]\n"
    "  --queue N           requests waiting for a slot, at most (then 503) [64]\n"
    "  --spec S            none | block | tree | auto           [auto]\n"
    "  --dtype T           f32 | bf16 | q8: decode an F32 model's weights as copies in T\n"
    "  --max-body BYTES    largest request body                 [1048576]\n"
    "  --grace SECONDS     on SIGTERM, time left to requests in flight [10]\n"
    "  --threads N         compute threads                      [all cores]\n";

int cmd_serve(int argc, char **argv) {
    static const struct option LONG[] = {
        {"model", 1, 0, 'm'},  {"host", 1, 0, 'H'},     {"port", 1, 0, 'p'},    {"api-key", 1, 0, 'k'},
        {"parallel", 1, 0, 'P'}, {"ctx", 1, 0, 'c'},    {"queue", 1, 0, 'Q'},   {"spec", 1, 0, 'S'},
        {"dtype", 1, 0, 'b'},  {"max-body", 1, 0, 'B'}, {"grace", 1, 0, 'g'},  {"threads", 1, 0, 'j'},
        {"help", 0, 0, 'h'},   {0, 0, 0, 0}};
    const char *model = NULL, *host = "127.0.0.1", *spec = "auto", *key = getenv("MTP_API_KEY");
    int port = 8080, threads = 0, max_body = 1 << 20, c, bad = 0, dtype_given = 0;
    float grace = 10;
    mtp_wtype dtype = MTP_F32;
    mtp_engine_opts eo;
    mtp_engine_opts_default(&eo);
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", LONG, NULL)) != -1 && !bad) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'H': host = optarg; break;
        case 'p': bad = arg_int("serve", "--port", optarg, 0, 65535, &port); break;
        case 'k': key = optarg; break;
        case 'P': bad = arg_int("serve", "--parallel", optarg, 1, 1024, &eo.parallel); break;
        case 'c': bad = arg_int("serve", "--ctx", optarg, 1, 1 << 24, &eo.ctx); break;
        case 'Q': bad = arg_int("serve", "--queue", optarg, 0, 1 << 20, &eo.queue); break;
        case 'S': spec = optarg; break;
        case 'b': bad = arg_dtype("serve", optarg, &dtype), dtype_given = 1; break;
        case 'B': bad = arg_int("serve", "--max-body", optarg, 1024, 1 << 30, &max_body); break;
        case 'g': bad = arg_float("serve", "--grace", optarg, 0, 3600, &grace); break;
        case 'j': bad = arg_int("serve", "--threads", optarg, 1, 1024, &threads); break;
        case 'h': fputs(HELP, stdout); return 0;
        default: return options_error("serve", c, argv);
        }
    }
    if (bad) return EXIT_USAGE;
    if (optind < argc) return usage_error("serve", "unexpected argument '%s'", argv[optind]);
    if (!model) return usage_error("serve", "--model is required");
    if (key && !*key) return usage_error("serve", "--api-key: the key is empty");
    const char *specs[] = {"none", "block", "tree", "auto"};
    int si = 0;
    while (si < 4 && strcmp(spec, specs[si])) si++;
    if (si == 4) return usage_error("serve", "--spec: expected none, block, tree or auto, got '%s'", spec);
    eo.spec = (mtp_serve_spec)si;

    /* SIGTERM and SIGINT go to the main thread's sigwait: blocked before any thread starts */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    mtp_model *m;
    mtp_err err;
    if (mtp_model_open_decode(&m, model, &err) || (dtype_given && mtp_model_decode_type(m, dtype, &err))) {
        fprintf(stderr, "mtp serve: %s: %s\n", model, err.msg);
        mtp_model_close(m);
        return EXIT_BAD_INPUT;
    }
    const mtp_config *cfg = mtp_model_config(m);
    if (eo.ctx > cfg->max_seq_len) {
        int msl = cfg->max_seq_len;
        mtp_model_close(m);
        return usage_error("serve", "--ctx %d: the model's max_seq_len is %d", eo.ctx, msl);
    }
    if ((eo.spec == MTP_SERVE_BLOCK || eo.spec == MTP_SERVE_TREE) && cfg->n_future < 2) {
        mtp_model_close(m);
        return usage_error("serve", "--spec %s needs a model with future heads (this one has 1)", spec);
    }
    cli_setup_threads(threads, 0);
    server sv = {.m = m, .tok = mtp_model_tokenizer(m), .api_key = key, .max_body = (size_t)max_body,
                 .created = (int64_t)time(NULL)};
    sv.text = sv.tok || cfg->vocab_size == 256;
    sv.ctx = eo.ctx ? eo.ctx : cfg->max_seq_len;
    const char *slash = strrchr(model, '/');
    sv.model_name = slash ? slash + 1 : model;
    pthread_mutex_init(&sv.mu, NULL);
    if (mtp_engine_new(&sv.engine, m, &eo, &err)) {
        fprintf(stderr, "mtp serve: %s\n", err.msg);
        mtp_model_close(m);
        return EXIT_BAD_INPUT;
    }
    struct MHD_Daemon *d;
    int bound;
    char msg[300];
    if (serve_http_start(&sv, host, port, 64 + 4 * eo.parallel + eo.queue, &d, &bound, msg, sizeof msg)) {
        fprintf(stderr, "mtp serve: %s\n", msg);
        mtp_engine_free(sv.engine);
        mtp_model_close(m);
        return EXIT_USAGE;
    }
    fprintf(stderr, "mtp serve: listening on http://%s:%d (%s, %d slots of %d tokens, --spec %s)\n", host, bound,
            sv.model_name, eo.parallel, sv.ctx, cfg->n_future < 2 ? "none" : spec);
    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "mtp serve: %s: finishing what is in flight (up to %g s)\n", sig == SIGTERM ? "SIGTERM" : "SIGINT",
            grace);
    serve_http_quiesce(d);
    int cancelled = mtp_engine_drain(sv.engine, grace);
    serve_http_stop(&sv, d, 2);
    mtp_engine_free(sv.engine);
    pthread_mutex_destroy(&sv.mu);
    mtp_model_close(m);
    fprintf(stderr, "mtp serve: stopped (%d request%s cancelled)\n", cancelled, cancelled == 1 ? "" : "s");
    return 0;
}
