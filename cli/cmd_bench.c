/* cmd_bench.c: `mtp bench matmul` (GFLOP/s of the matrix products training uses) and
 * `mtp bench train` (one training configuration: tokens/s and peak memory, as JSON;
 * bench/train.py runs the table of them beside PyTorch, one process per row). */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "bench_rows.h"
#include "bench_shape.h"
#include "commands.h"
#include "kernels/backend.h"
#include "kernels/gemm.h"
#include "kernels/ops.h"
#include "model/checkpoint.h"
#include "formats/data.h"
#include "decode/generate.h"
#include "core/json.h"
#include "oracle/ops_ref.h"
#include "core/rng.h"
#include "train/train.h"

static const char *HELP =
    "usage: mtp bench matmul [--threads N]\n"
    "       mtp bench train [--dim 384 --n-layers 6 --n-heads 6 --hidden 1024 --vocab 8192\n"
    "                        --n-future 4 --batch 8 --seq 256 --steps 6\n"
    "                        --head-schedule sequential|naive --precision f32|bf16 --threads N]\n"
    "       mtp bench decode --model M --data SHARD [--prompts 8 --prompt-len 64 -n 128 --repeat 3\n"
    "                        --dtype f32|bf16|q8 --draft K --threads N]\n"
    "       mtp bench decode --shape 1b|7b [--dtype bf16|q8 -n 32 --prompt-len 64 --context 2048]\n"
    "       mtp bench rows [--dtype q8|bf16 --shape 7b|1b --repeat 5 --threads N]\n"
    "  train prints one JSON line: tok_per_s (steps after the first), peak_rss_mb\n"
    "  decode: plain vs block vs tree vs auto greedy decoding of the same prompts (windows of\n"
    "  the shard), at batch 1 (one prompt at a time) and batch = --prompts; outputs checked\n"
    "  equal; tok/s after the first token (prefill excluded), median of --repeat interleaved\n"
    "  rounds; speed-up: the median of the rounds' ratios to plain; --draft K: block, tree and\n"
    "  auto use the first K heads (1 + K-1 drafted tokens per pass) [all]; auto: the depth\n"
    "  from timed passes and acceptance, chosen before each pass (as generate --spec auto)\n"
    "  decode --shape: a random model of that shape made in bf16 or q8 (no fp32 copy): read\n"
    "  bandwidth measured first, the cost of a pass of 1-16 rows, plain/block/tree tok/s with\n"
    "  GB/s and % of the bandwidth at batch 1 and 4, prefill and peak memory at --context\n"
    "  matmul: the training products' GFLOP/s (mtp_gemm, mtp's AVX-512 fp32 and bf16), and\n"
    "  the products over one input as one job against one call per part\n"
    "  rows: one product of R = 1, 2, 4, 8, 16 rows with each matrix of the shape (weights\n"
    "  read from memory): the cost vs R = 1, and GB/s vs the read bandwidth of the same run\n";

typedef void (*gemm_fn)(int, int, int, int, int, float, const float *, int, const float *, int,
                        float, float *, int);

/* GFLOP/s of C (M,N) = op(A) @ op(B): the fastest of the calls made in 0.3 s after a
 * warm-up call (the machine is shared: the fastest call is the one least disturbed) */
static double time_gemm(gemm_fn f, int tA, int tB, int M, int N, int K, const float *a,
                        const float *b, float *c) {
    int lda = tA ? M : K, ldb = tB ? K : N;
    f(tA, tB, M, N, K, 1, a, lda, b, ldb, 0, c, N);
    double t0 = mtp_now(), best = 1e30, t;
    do {
        double t1 = mtp_now();
        f(tA, tB, M, N, K, 1, a, lda, b, ldb, 0, c, N);
        t = mtp_now();
        best = t - t1 < best ? t - t1 : best;
    } while (t - t0 < 0.3);
    return 2.0 * M * N * K / best / 1e9;
}

/* The fastest, over calls made in 0.3 s after a warm-up, of the parts as one job (best[1])
 * and as one call each (best[0]), alternating. */
static void time_parts(double best[2], int bf16, mtp_gemm_split split, int tA, int tB, int M, int N, int K,
                       const mtp_gemm_part *p, int np) {
    best[0] = best[1] = 1e30;
    double t0 = mtp_now();
    for (int rep = -1; rep < 0 || mtp_now() - t0 < 0.3; rep++)
        for (int one = 0; one < 2; one++) {
            double t1 = mtp_now();
            if (one) mtp_gemm_parts(bf16, split, tA, tB, M, N, K, 1, p, np, 0);
            for (int q = 0; q < np && !one; q++) {
                mtp_gemm_part alone = p[q];
                alone.n = split == MTP_SPLIT_M ? p[q].n : M;
                mtp_gemm_parts(bf16, MTP_SPLIT_M, tA, tB, split == MTP_SPLIT_M ? p[q].n : M,
                               split == MTP_SPLIT_N ? p[q].n : N, K, 1, &alone, 1, 0);
            }
            double t = mtp_now() - t1;
            if (rep >= 0 && t < best[one]) best[one] = t;
        }
}

/* The training step's products over one input (mtp_gemm_parts): forward q|k|v and w1|w3
 * (a shared x, the parts' weights along N), and their weight gradients (a shared input
 * along M); one job against one call per part. a, b, c: buffers of 2048 x 8192 floats. */
static void bench_parts(const float *a, const float *b, float *c) {
    static const struct { const char *name; int np, n; } S[] = {{"q|k|v", 3, 384}, {"w1|w3", 2, 1024}};
    printf("products over one input, one job (mtp_gemm_parts) against one call per part, ms:\n");
    printf("%-6s %-16s %-20s %8s %8s %6s\n", "", "parts", "M x N x K", "per part", "one job", "less");
    for (int bf16 = 0; bf16 <= mtp_gemm_bf16_available(); bf16++)
        for (size_t s = 0; s < sizeof S / sizeof *S; s++)
            for (int grad = 0; grad < 2; grad++) {
                mtp_gemm_part p[MTP_GEMM_PARTS];
                int np = S[s].np, n = S[s].n, tot = np * n;
                for (int q = 0; q < np; q++) /* forward: x (2048,384) @ W_q^T; gradient: dY_q^T @ x */
                    p[q] = grad ? (mtp_gemm_part){a + (size_t)q * 2048 * n, b, c + (size_t)q * n * 384, n, 384, 384, n}
                                : (mtp_gemm_part){a, b + (size_t)q * n * 384, c + (size_t)q * 2048 * n, 384, 384, n, n};
                int M = grad ? tot : 2048, N = grad ? 384 : tot, K = grad ? 2048 : 384;
                double best[2];
                time_parts(best, bf16, grad ? MTP_SPLIT_M : MTP_SPLIT_N, grad, !grad, M, N, K, p, np);
                char name[32];
                snprintf(name, sizeof name, "%s %s", grad ? "dW" : "fwd", S[s].name);
                printf("%-6s %-16s %5d x %5d x %5d %8.3f %8.3f %5.1f%%\n", bf16 ? "bf16" : "fp32", name, M, N, K,
                       1e3 * best[0], 1e3 * best[1], 100 * (1 - best[1] / best[0]));
            }
}

static int bench_matmul(void) {
    /* the products of a dim-384 training step (hidden 1024, vocab 8192) at B*T = 2048 rows:
     * forward x @ W^T, backward dX = dY @ W and dW = dY^T @ X */
    static const struct { int oc, c; } W[] = {{384, 384}, {1024, 384}, {384, 1024}, {8192, 384}};
    size_t max = (size_t)2048 * 8192;
    float *a = falloc(max), *b = falloc(max), *c = falloc(max);
    mtp_rng r = {1};
    for (size_t i = 0; i < max; i++) a[i] = b[i] = (float)mtp_rng_uniform(&r) - 0.5f;
    int avx512 = mtp_gemm_avx512_available(), bf16 = mtp_gemm_bf16_available();
    double p32 = mtp_peak_gflops(0), p16 = mtp_peak_gflops(1);
    printf("peak: fp32 FMA %.0f GFLOP/s, bf16 vdpbf16ps %.0f GFLOP/s\n", p32, p16);
    printf("%-8s %-20s %10s %10s %10s\n", "product", "M x N x K", "mtp_gemm", "avx512", "bf16");
    for (size_t s = 0; s < sizeof W / sizeof *W; s++)
        for (int kind = 0; kind < 3; kind++) {
            static const char *NAME[] = {"x W^T", "dY W", "dY^T X"};
            int M = kind == 2 ? W[s].oc : 2048, N = kind == 1 ? W[s].c : kind ? W[s].c : W[s].oc;
            int K = kind == 0 ? W[s].c : kind == 1 ? W[s].oc : 2048, tA = kind == 2, tB = kind == 0;
            printf("%-8s %5d x %5d x %5d %10.1f", NAME[kind], M, N, K, time_gemm(mtp_gemm, tA, tB, M, N, K, a, b, c));
            printf(" %10.1f", avx512 ? time_gemm(mtp_gemm_avx512, tA, tB, M, N, K, a, b, c) : 0);
            printf(" %10.1f\n", bf16 ? time_gemm(mtp_gemm_bf16, tA, tB, M, N, K, a, b, c) : 0);
        }
    /* the plain reference, on a size it finishes quickly */
    double t0 = mtp_now();
    mtp_matmul_fwd_ref(c, a, b, 256, 384, 384, 0);
    double ref = 2.0 * 256 * 384 * 384 / (mtp_now() - t0) / 1e9;
    double fast = time_gemm(mtp_gemm, 0, 1, 256, 384, 384, a, b, c);
    printf("256 x 384 x 384: mtp_gemm %.1f GFLOP/s, plain reference %.2f GFLOP/s (%.0fx)\n", fast,
           ref, fast / ref);
    if (avx512) bench_parts(a, b, c);
    free(a);
    free(b);
    free(c);
    return 0;
}

/* ctx = {elapsed at the end of step 1, at the end of the latest step} */
static void note_step_end(const mtp_train_report *r, void *ctx) {
    double *at = ctx;
    if (r->is_val) return;
    if (r->step == 1) at[0] = r->elapsed_s;
    at[1] = r->elapsed_s;
}

static int bench_train(int argc, char **argv) {
    static const struct option LONG[] = {
        {"dim", 1, 0, 'd'}, {"n-layers", 1, 0, 'l'}, {"n-heads", 1, 0, 'a'}, {"hidden", 1, 0, 'f'},
        {"vocab", 1, 0, 'v'}, {"n-future", 1, 0, 'n'}, {"batch", 1, 0, 'b'}, {"seq", 1, 0, 's'},
        {"steps", 1, 0, 'k'}, {"head-schedule", 1, 0, 'S'}, {"threads", 1, 0, 't'},
        {"precision", 1, 0, 'p'}, {0, 0, 0, 0}};
    int dim = 384, layers = 6, heads = 6, hidden = 1024, vocab = 8192, nf = 4, threads = 0;
    mtp_train_opts o;
    mtp_train_opts_default(&o);
    o.steps = 6;
    o.warmup = 0;
    int c, bad = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", LONG, NULL)) != -1 && !bad) {
        switch (c) {
        case 'd': bad = arg_int("bench", "--dim", optarg, 2, 65536, &dim); break;
        case 'l': bad = arg_int("bench", "--n-layers", optarg, 1, 4096, &layers); break;
        case 'a': bad = arg_int("bench", "--n-heads", optarg, 1, 4096, &heads); break;
        case 'f': bad = arg_int("bench", "--hidden", optarg, 1, 1 << 20, &hidden); break;
        case 'v': bad = arg_int("bench", "--vocab", optarg, 2, 1 << 24, &vocab); break;
        case 'n': bad = arg_int("bench", "--n-future", optarg, 1, MTP_MAX_FUTURE, &nf); break;
        case 'b': bad = arg_int("bench", "--batch", optarg, 1, 65536, &o.batch); break;
        case 's': bad = arg_int("bench", "--seq", optarg, 1, 1 << 20, &o.seq); break;
        case 'k': bad = arg_int("bench", "--steps", optarg, 2, 1 << 20, &o.steps); break;
        case 't': bad = arg_int("bench", "--threads", optarg, 1, 1024, &threads); break;
        case 'p': bad = arg_precision("bench", optarg, &o.precision); break;
        case 'S':
            if (strcmp(optarg, "sequential") && strcmp(optarg, "naive"))
                return usage_error("bench", "--head-schedule: expected sequential or naive");
            o.schedule = strcmp(optarg, "naive") ? MTP_HEADS_SEQUENTIAL : MTP_HEADS_NAIVE;
            break;
        default: return options_error("bench", c, argv);
        }
    }
    if (bad) return EXIT_USAGE;
    mtp_set_threads(threads);
    char cfg_json[512];
    snprintf(cfg_json, sizeof cfg_json,
             "{\"dim\":%d,\"n_layers\":%d,\"n_heads\":%d,\"vocab_size\":%d,\"hidden_dim\":%d,"
             "\"n_future_tokens\":%d,\"max_seq_len\":%d}", dim, layers, heads, vocab, hidden, nf, o.seq);
    mtp_config cfg;
    mtp_err err;
    if (mtp_config_parse(&cfg, cfg_json, "bench config", &err)) {
        fprintf(stderr, "mtp bench: %s\n", err.msg);
        return EXIT_USAGE;
    }
    /* random tokens in a temporary shard */
    const char *tmpdir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char shard[1200];
    snprintf(shard, sizeof shard, "%s/mtp-bench-%ld.bin", tmpdir, (long)getpid());
    size_t n = (size_t)o.batch * o.seq * (o.steps + 1) + nf;
    mtp_token *tok = xmalloc(n * sizeof(mtp_token));
    mtp_rng r = {7};
    for (size_t i = 0; i < n; i++) tok[i] = (mtp_token)mtp_rng_below(&r, vocab);
    int rc = mtp_shard_write(shard, tok, n, vocab, &err);
    free(tok);
    if (rc == 0 && mtp_shard_list_escape(o.data, sizeof o.data, shard)) /* --data syntax */
        rc = mtp_fail(&err, "%s: path too long", shard);
    mtp_model m;
    if (rc == 0) {
        rc = mtp_model_init(&m, &cfg, &err);
    }
    /* the arithmetic peak, measured in the same process, for model FLOP/s as a share of it */
    double peak32 = mtp_peak_gflops(0), peak16 = mtp_peak_gflops(1);
    if (rc == 0) {
        mtp_model_randomize(&m, 1);
        o.shuffle = 0;
        /* the first step pays for page faults and setup; time the rest */
        double at[2] = {0, 0};
        rc = mtp_train(&m, &o, NULL, note_step_end, at, &err);
        double el = at[1] - at[0];
        o.steps -= 1; /* the timed ones */
        if (rc == 0) {
            cJSON *j = cJSON_CreateObject();
            mtp_json_add_number(j, "tok_per_s", (double)o.batch * o.seq * o.steps / el);
            mtp_json_add_number(j, "peak_rss_mb", mtp_peak_rss_bytes() / 1048576.0);
            mtp_json_add_number(j, "params", (double)m.lay.total);
            /* model FLOPs (PaLM's count): 3x the forward's, whose products are 2 per weight
             * of every block and of the unembedding per head, plus 2 T x T x hd products per
             * head and block (counted whole, the causal half included) */
            double d = cfg.dim, hd = d / cfg.n_heads, kv = cfg.n_kv_heads * hd;
            double block = 2 * (2 * d * d + 2 * d * kv + 3 * d * cfg.hidden_dim) + 4.0 * o.seq * d;
            double fwd = (mtp_n_trunk(&cfg) + nf) * block + nf * 2.0 * d * cfg.vocab_size;
            double gflops = 3 * fwd * o.batch * o.seq * o.steps / el / 1e9;
            mtp_json_add_number(j, "model_gflop_per_s", gflops);
            mtp_json_add_number(j, "peak_fp32_gflop_per_s", peak32);
            mtp_json_add_number(j, "peak_bf16_gflop_per_s", peak16);
            cJSON_AddStringToObject(j, "precision", o.precision == MTP_PRECISION_BF16 ? "bf16" : "f32");
            cJSON_AddStringToObject(j, "backend", mtp_backend_describe());
            mtp_json_write_line(stdout, j);
            cJSON_Delete(j);
        }
        mtp_model_free(&m);
    }
    unlink(shard);
    if (rc) fprintf(stderr, "mtp bench: %s\n", err.msg);
    return rc ? EXIT_BAD_INPUT : 0;
}

static double median(const double *v, int n) {
    double s[99];
    memcpy(s, v, n * sizeof(double));
    for (int i = 1; i < n; i++) /* insertion sort: n is small */
        for (int j = i; j > 0 && s[j] < s[j - 1]; j--) {
            double t = s[j];
            s[j] = s[j - 1], s[j - 1] = t;
        }
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static int bench_decode(int argc, char **argv) {
    static const struct option LONG[] = {{"model", 1, 0, 'm'}, {"data", 1, 0, 'd'},
                                         {"prompts", 1, 0, 'p'}, {"prompt-len", 1, 0, 'l'},
                                         {"max-tokens", 1, 0, 'n'}, {"threads", 1, 0, 't'},
                                         {"repeat", 1, 0, 'r'}, {"dtype", 1, 0, 'P'},
                                         {"shape", 1, 0, 'S'}, {"context", 1, 0, 'C'},
                                         {"draft", 1, 0, 'D'}, {0, 0, 0, 0}};
    const char *model = NULL, *data = NULL, *shape = NULL;
    int context = 2048;
    int np = 8, plen = 64, ntok = 128, threads = 0, repeat = 3, dtype_given = 0, draft = 0, c, bad = 0;
    mtp_wtype dtype = MTP_F32;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":n:", LONG, NULL)) != -1 && !bad) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'd': data = optarg; break;
        case 'p': bad = arg_int("bench", "--prompts", optarg, 1, 256, &np); break;
        case 'l': bad = arg_int("bench", "--prompt-len", optarg, 1, 1 << 20, &plen); break;
        case 'n': bad = arg_int("bench", "--max-tokens", optarg, 2, 1 << 20, &ntok); break;
        case 't': bad = arg_int("bench", "--threads", optarg, 1, 1024, &threads); break;
        case 'r': bad = arg_int("bench", "--repeat", optarg, 1, 99, &repeat); break;
        case 'P': bad = arg_dtype("bench", optarg, &dtype), dtype_given = 1; break;
        case 'S': shape = optarg; break;
        case 'C': bad = arg_int("bench", "--context", optarg, 0, 4096, &context); break;
        case 'D': bad = arg_int("bench", "--draft", optarg, 1, MTP_MAX_FUTURE, &draft); break;
        default: return options_error("bench", c, argv);
        }
    }
    if (bad) return EXIT_USAGE;
    if (shape && (model || data || draft))
        return usage_error("bench", "decode --shape makes its own random model: no --model, --data or --draft");
    if (shape) {
        mtp_set_threads(threads);
        return bench_shape(shape, dtype_given ? dtype : MTP_BF16, ntok, plen, context);
    }
    if (!model || !data) return usage_error("bench", "decode needs --model and --data, or --shape");
    mtp_set_threads(threads);
    mtp_model m;
    mtp_shard s;
    mtp_err err;
    if (mtp_model_load_decode(&m, model, &err)) {
        fprintf(stderr, "mtp bench: %s\n", err.msg);
        return EXIT_BAD_INPUT;
    }
    if (dtype_given && mtp_model_decode_type(&m, dtype, &err)) {
        fprintf(stderr, "mtp bench: %s: %s\n", model, err.msg);
        mtp_model_free(&m);
        return EXIT_BAD_INPUT;
    }
    if (mtp_shard_open(&s, data, m.cfg.vocab_size, &err)) {
        fprintf(stderr, "mtp bench: %s\n", err.msg);
        mtp_model_free(&m);
        return EXIT_BAD_INPUT;
    }
    int nf = m.cfg.n_future;
    if (draft > nf) {
        mtp_model_free(&m);
        mtp_shard_free(&s);
        return usage_error("bench", "--draft %d: the model has %d future heads", draft, nf);
    }
    int heads = draft ? draft : nf; /* the heads block and tree run: 1 + their drafted depths */
    if (plen + ntok > m.cfg.max_seq_len || (size_t)plen >= s.n) {
        mtp_model_free(&m);
        mtp_shard_free(&s);
        return usage_error("bench", "--prompt-len + --max-tokens exceed max_seq_len or the shard");
    }
    const mtp_token *prompts[256];
    int lens[256];
    mtp_token *prompt_buf = xmalloc((size_t)np * plen * sizeof(mtp_token));
    for (int i = 0; i < np; i++) { /* evenly spaced windows of the shard */
        mtp_token *p = prompt_buf + (size_t)i * plen;
        for (int j = 0; j < plen; j++) p[j] = mtp_shard_at(&s, (s.n - plen) / np * i + j);
        prompts[i] = p;
        lens[i] = plen;
    }
    struct {
        const char *name;
        mtp_spec spec;
    } modes[] = {{"plain", MTP_SPEC_NONE}, {"block", MTP_SPEC_BLOCK}, {"tree", MTP_SPEC_TREE}, {"auto", MTP_SPEC_AUTO}};
    int nmodes = heads > 1 ? 4 : 1, rc = 0;
    int tiles = m.dec.type == MTP_BF16 && mtp_attend_bf16_available(mtp_head_dim(&m.cfg));
    printf("%s\n%s: %zu parameters, n_future %d, %d drafting; %d prompts of %d tokens, %d new tokens each, greedy;\n"
           "%s weights%s%s%s%s; decoding tok/s after the first token, median of %d interleaved rounds;\n"
           "speed-up: the median of the rounds' ratios\n",
           mtp_backend_describe(), model, m.lay.total, nf, heads, np, plen, ntok, mtp_wtype_name(m.dec.type),
           " on ", mtp_wtype_kernels(m.dec.type), tiles ? ", attention on tiles with " : "",
           tiles ? mtp_attend_bf16_path() : "", repeat);
    printf("%-6s %-6s %9s %8s %8s %8s  %s\n", "batch", "mode", "tok/s", "speedup", "tok/pass",
           "of ideal", "accepted at depth 1..");
    mtp_token *ref = xmalloc((size_t)np * ntok * sizeof(mtp_token));
    mtp_gen_result *res = xcalloc(np, sizeof *res);
    for (int batch = 1; batch <= np && rc == 0; batch = batch == 1 && np > 1 ? np : np + 1) {
        double tps[4][99], tpf[4] = {0}, acc[4][MTP_MAX_FUTURE] = {{0}}, dr[4][MTP_MAX_FUTURE] = {{0}};
        for (int round = 0; round < repeat && rc == 0; round++)
            for (int k = 0; k < nmodes && rc == 0; k++) {
                mtp_gen_opts o;
                mtp_gen_opts_default(&o);
                o.spec = modes[k].spec;
                o.draft = heads;
                o.max_tokens = ntok;
                double tokens = 0, fw = 0, secs = 0;
                for (int first = 0; first < np && rc == 0; first += batch) {
                    rc = mtp_generate(&m, prompts + first, lens + first, batch, &o, res, NULL, NULL, &err);
                    if (rc == 0) secs += res[0].total_s - res[0].first_token_s;
                    for (int i = 0; i < batch && rc == 0; i++) {
                        mtp_token *r = ref + (size_t)(first + i) * ntok;
                        if (k == 0 && round == 0) memcpy(r, res[i].tokens, ntok * sizeof(mtp_token));
                        if (res[i].n != ntok || memcmp(r, res[i].tokens, ntok * sizeof(mtp_token))) {
                            rc = -1;
                            snprintf(err.msg, sizeof err.msg, "%s output differs from plain", modes[k].name);
                        }
                        tokens += res[i].n - 1;
                        fw += res[i].forwards - 1; /* the prompt's passes excluded */
                        for (int d = 1; d < heads; d++)
                            acc[k][d] += res[i].accepted[d], dr[k][d] += res[i].drafted[d];
                    }
                    for (int i = 0; i < batch; i++) free(res[i].tokens);
                }
                tps[k][round] = tokens / secs;
                tpf[k] = tokens / fw;
            }
        for (int k = 0; k < nmodes && rc == 0; k++) {
            /* the speed-up within each round (the modes ran seconds apart), then the median:
             * a machine whose speed drifts (shared hosts) moves both sides of a ratio */
            double ratio[99];
            for (int round = 0; round < repeat; round++) ratio[round] = tps[k][round] / tps[0][round];
            double med = median(tps[k], repeat), speedup = median(ratio, repeat);
            /* ideal: tokens per pass x (weights a plain pass reads / weights this pass reads);
             * auto's passes read either, so it has none */
            double ideal = k ? tpf[k] * bench_pass_bytes(&m, 1) / bench_pass_bytes(&m, heads) : 1;
            printf("%-6d %-6s %9.1f %7.2fx %8.2f ", batch, modes[k].name, med, speedup, tpf[k]);
            if (modes[k].spec == MTP_SPEC_AUTO) printf("%8s  ", "-");
            else printf("%7.0f%%  ", 100 * speedup / ideal);
            for (int d = 1; k && d < heads; d++)
                printf("%s%.2f", d > 1 ? " " : "", dr[k][d] ? acc[k][d] / dr[k][d] : 0);
            printf("\n");
        }
    }
    if (rc) fprintf(stderr, "mtp bench: %s\n", err.msg);
    else if (heads > 1) { /* what a verification pass costs, midway through the new tokens */
        int prefix = plen + ntok / 2 < m.cfg.max_seq_len - 16 ? plen + ntok / 2 : m.cfg.max_seq_len - 16;
        rc = bench_pass_costs(&m, heads, prefix, 0);
    }
    free(ref);
    free(prompt_buf);
    free(res);
    mtp_shard_free(&s);
    mtp_model_free(&m);
    return rc ? EXIT_BAD_INPUT : 0;
}

int cmd_bench(int argc, char **argv) {
    if (argc < 2) {
        fputs(HELP, stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || (argc > 2 && !strcmp(argv[2], "--help"))) { /* also `bench decode --help` */
        fputs(HELP, stdout);
        return 0;
    }
    if (!strcmp(argv[1], "matmul")) {
        int threads = 0;
        if (argc > 2 && (argc != 4 || strcmp(argv[2], "--threads")))
            return usage_error("bench", "matmul takes only --threads N, got '%s'", argv[2]);
        if (argc == 4 && arg_int("bench", "--threads", argv[3], 1, 1024, &threads))
            return EXIT_USAGE;
        mtp_set_threads(threads);
        printf("%s\n", mtp_backend_describe());
        return bench_matmul();
    }
    if (!strcmp(argv[1], "train")) return bench_train(argc - 1, argv + 1);
    if (!strcmp(argv[1], "decode")) return bench_decode(argc - 1, argv + 1);
    if (!strcmp(argv[1], "rows")) return bench_rows(argc - 1, argv + 1);
    return usage_error("bench", "unknown benchmark '%s' (matmul, train, decode, rows)", argv[1]);
}
