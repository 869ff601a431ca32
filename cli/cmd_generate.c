/* cmd_generate.c: `mtp generate`: prompts in, continuations out, plain or self-speculative.
 * Models that carry a tokenizer, and byte-level models (vocab 256), take and print text,
 * streamed as it is accepted, and stop at EOS or a --stop string; any model takes
 * --prompt-tokens. */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "args.h"
#include "commands.h"
#include "text_out.h"
#include "mtp.h"

static const char *HELP =
    "usage: mtp generate --model FILE.safetensors (--prompt TEXT | --prompt-file FILE |\n"
    "                    --prompt-tokens IDS)... [options]\n"
    "  Each --prompt / --prompt-tokens (repeatable) is one sequence; all are decoded as one\n"
    "  batch. Text prompts need a model that carries a tokenizer (mtp convert --tokenizer)\n"
    "  or a byte-level model (vocab 256); BOS is added when the tokenizer's model expects it.\n"
    "  --prompt-file FILE  the file is one prompt; with --lines, each non-empty line is one\n"
    "  -n, --max-tokens N  tokens to generate per prompt      [128]\n"
    "  --spec S            none | block | tree | auto         [block if the model has future heads]\n"
    "                      auto: greedy prompts draft at the depth (0..all) that passes timed\n"
    "                      first and the acceptance so far make fastest; sampled ones plainly\n"
    "  --draft K           future heads used (1 + drafted tokens) [all]\n"
    "  --tree W1,W2,..     tree: candidates at drafted depth 1, 2, ..  [2,1,1,..]\n"
    "  --temp T            0 = greedy (exact speculation); > 0 samples [0]\n"
    "  --top-k K --top-p P sampling filters                   [off]\n"
    "  --seed S            sampling seed                      [1]\n"
    "  --stop S            end a sequence where its text contains S (repeatable; S is not\n"
    "                      printed); EOS ends it too unless --ignore-eos\n"
    "  --dtype T           f32 | bf16 | q8: decode an F32 model's weights as copies in T\n"
    "                      (packed once; bf16 and 8-bit files decode in their own type)\n"
    "  --threads N         threads                            [all cores]\n"
    "  --json              one JSON object per prompt: tokens, text (the continuation as it\n"
    "                      follows the prompt), finish (length, eos, stop, max_seq_len),\n"
    "                      tokens_per_forward, accept (per drafted depth), tok_per_s, ttft_s\n"
    "  --quiet             no statistics on stderr\n";

typedef struct {
    mtp_token **tok;
    int *len, n;
} prompt_list;

static void add_prompt(prompt_list *p, mtp_token *tok, int len) {
    p->tok = cli_realloc(p->tok, (p->n + 1) * sizeof *p->tok);
    p->len = cli_realloc(p->len, (p->n + 1) * sizeof *p->len);
    p->tok[p->n] = tok;
    p->len[p->n++] = len;
}

/* A text prompt: its bytes as ids (a byte-level model), or its tokens after BOS. */
static int add_text(prompt_list *p, const mtp_tokenizer *tok, const char *s, size_t n, mtp_err *err) {
    if (!tok) {
        mtp_token *t = cli_realloc(NULL, (n ? n : 1) * sizeof(mtp_token));
        for (size_t i = 0; i < n; i++) t[i] = (unsigned char)s[i];
        add_prompt(p, t, (int)n);
        return 0;
    }
    mtp_token *ids;
    size_t k;
    if (mtp_tokenize(tok, s, n, &ids, &k, err)) return -1;
    int bos = mtp_tokenizer_adds_bos(tok) && mtp_tokenizer_bos(tok) >= 0;
    mtp_token *t = cli_realloc(NULL, (k + bos + 1) * sizeof(mtp_token));
    if (bos) t[0] = (mtp_token)mtp_tokenizer_bos(tok);
    memcpy(t + bos, ids, k * sizeof(mtp_token));
    free(ids);
    add_prompt(p, t, (int)(k + bos));
    return 0;
}

static int add_ids(prompt_list *p, const char *s) {
    int cap = 16, n = 0;
    mtp_token *t = cli_realloc(NULL, cap * sizeof(mtp_token));
    for (const char *c = s; *c;) {
        char *end;
        long v = strtol(c, &end, 10);
        if (end == c || v < 0 || v > (long)UINT32_MAX || (*end && *end != ',')) {
            free(t);
            return -1;
        }
        if (n == cap) t = cli_realloc(t, (cap *= 2) * sizeof(mtp_token));
        t[n++] = (mtp_token)v;
        c = *end ? end + 1 : end;
    }
    add_prompt(p, t, n);
    return 0;
}

#define MAX_STOPS 16

/* Each sequence's text so far (for --stop, streaming and the JSON output), and how much
 * of it is printed. */
typedef struct {
    cli_text t;
    size_t shown;
} seq_text;

typedef struct {
    seq_text *seq;
    const char *stop[MAX_STOPS];
    int n_stop;
    size_t hold;  /* bytes that might begin a stop string: not printed until settled */
    int stream;   /* print sequence 0's text as it arrives */
    int text;     /* the model speaks text (a tokenizer or bytes) */
} stream_ctx;

static void show(stream_ctx *c, seq_text *q, int all) {
    size_t upto = all ? q->t.len : q->t.len > c->hold ? q->t.len - c->hold : 0;
    if (upto <= q->shown) return;
    fwrite(q->t.text + q->shown, 1, upto - q->shown, stdout);
    fflush(stdout);
    q->shown = upto;
}

/* Tokens arrive: their text is appended; a stop string ends the sequence at the token that
 * completes it, even inside an accepted speculative path. */
static int on_tokens(int seq, const mtp_token *tok, int n, void *ctx) {
    stream_ctx *c = ctx;
    if (!c->text) return 0;
    seq_text *q = &c->seq[seq];
    for (int i = 0; i < n; i++)
        if (cli_text_add(&q->t, tok[i], c->stop, c->n_stop)) {
            if (c->stream && seq == 0) show(c, q, 1);
            return i + 1;
        }
    if (c->stream && seq == 0) show(c, q, 0);
    return 0;
}

/* The end of a sequence: text still held back by the decoder (unless a stop cut it). */
static void finish_text(stream_ctx *c, int seq) {
    cli_text_finish(&c->seq[seq].t, c->stop, c->n_stop);
    if (c->stream && seq == 0) show(c, &c->seq[seq], 1);
}

static double tokens_per_forward(const mtp_gen_result *r) {
    return r->forwards ? (double)r->n / r->forwards : 0;
}

static const char *finish_reason(const mtp_gen_result *r, const seq_text *q) {
    return q && q->t.stopped ? "stop" : r->hit_eos ? "eos" : r->hit_max_seq_len ? "max_seq_len" : "length";
}

static void print_json(int i, const mtp_gen_result *r, int depths, const seq_text *q) {
    cJSON *o = cJSON_CreateObject();
    mtp_json_add_number(o, "prompt", i);
    cJSON *t = cJSON_AddArrayToObject(o, "tokens");
    for (int k = 0; k < r->n; k++) cJSON_AddItemToArray(t, mtp_json_number(r->tokens[k]));
    if (q) { /* valid UTF-8 without NUL (a NUL byte would end cJSON's string) */
        char *s = cli_utf8_clean((const unsigned char *)(q->t.text ? q->t.text : ""), q->t.len);
        cJSON_AddStringToObject(o, "text", s);
        free(s);
    } else {
        cJSON_AddNullToObject(o, "text");
    }
    cJSON_AddStringToObject(o, "finish", finish_reason(r, q));
    mtp_json_add_number(o, "forwards", (double)r->forwards);
    mtp_json_add_number(o, "tokens_per_forward", tokens_per_forward(r));
    cJSON *a = cJSON_AddArrayToObject(o, "accept");
    for (int d = 1; d <= depths; d++)
        cJSON_AddItemToArray(a, mtp_json_number(r->drafted[d] ? (double)r->accepted[d] / r->drafted[d] : 0));
    double decode_s = r->total_s - r->first_token_s;
    mtp_json_add_number(o, "tok_per_s", r->n > 1 && decode_s > 0 ? (r->n - 1) / decode_s : 0);
    mtp_json_add_number(o, "ttft_s", r->first_token_s);
    mtp_json_add_number(o, "total_s", r->total_s);
    mtp_json_write_line(stdout, o);
    cJSON_Delete(o);
}

static void print_stats(const mtp_model *m, const mtp_gen_result *res, int n, int depths) {
    int64_t tokens = 0, fw = 0;
    double t = 0, ttft = 0;
    for (int i = 0; i < n; i++) {
        tokens += res[i].n;
        fw = res[i].forwards > fw ? res[i].forwards : fw;
        t = res[i].total_s > t ? res[i].total_s : t;
        ttft = res[i].first_token_s > ttft ? res[i].first_token_s : ttft;
    }
    fprintf(stderr, "\n[%lld tokens, %d prompt(s), %lld passes | %.2f tokens/pass per prompt | "
                    "%.1f tok/s | first token %.1f ms",
            (long long)tokens, n, (long long)fw, fw ? (double)tokens / n / fw : 0,
            t > ttft && tokens > n ? (tokens - n) / (t - ttft) : 0, 1e3 * ttft);
    if (depths) {
        fprintf(stderr, " | accepted at depth");
        for (int d = 1; d <= depths; d++) {
            int64_t dr = 0, ac = 0;
            for (int i = 0; i < n; i++) dr += res[i].drafted[d], ac += res[i].accepted[d];
            fprintf(stderr, " %d: %.0f%%", d, dr ? 100.0 * ac / dr : 0);
        }
    }
    mtp_wtype wt = mtp_model_wtype(m);
    fprintf(stderr, " | %s weights, %s kernels]\n", mtp_wtype_name(wt), mtp_wtype_kernels(wt));
}

int cmd_generate(int argc, char **argv) {
    static const struct option LONG[] = {
        {"model", 1, 0, 'm'}, {"prompt", 1, 0, 'p'}, {"prompt-file", 1, 0, 'f'},
        {"prompt-tokens", 1, 0, 'i'}, {"lines", 0, 0, 'L'}, {"max-tokens", 1, 0, 'n'},
        {"spec", 1, 0, 'S'}, {"draft", 1, 0, 'd'}, {"tree", 1, 0, 'T'}, {"temp", 1, 0, 't'},
        {"top-k", 1, 0, 'k'}, {"top-p", 1, 0, 'P'}, {"seed", 1, 0, 's'}, {"threads", 1, 0, 'j'},
        {"json", 0, 0, 'J'}, {"quiet", 0, 0, 'q'}, {"dtype", 1, 0, 'b'}, {"stop", 1, 0, 'X'},
        {"ignore-eos", 0, 0, 'E'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *model = NULL, *spec = NULL, *files[64];
    const char *texts[256], *ids[256];
    int nfiles = 0, ntexts = 0, nids = 0, lines = 0, threads = 0, json = 0, quiet = 0, c, bad = 0;
    int dtype_given = 0, ignore_eos = 0;
    stream_ctx sc = {0};
    mtp_wtype dtype = MTP_F32;
    mtp_gen_opts o;
    mtp_gen_opts_default(&o);
    float tree[MTP_MAX_FUTURE];
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":n:", LONG, NULL)) != -1 && !bad) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'p':
            if (ntexts == 256) return usage_error("generate", "--prompt: at most 256");
            texts[ntexts++] = optarg;
            break;
        case 'i':
            if (nids == 256) return usage_error("generate", "--prompt-tokens: at most 256");
            ids[nids++] = optarg;
            break;
        case 'f':
            if (nfiles == 64) return usage_error("generate", "--prompt-file: at most 64");
            files[nfiles++] = optarg;
            break;
        case 'L': lines = 1; break;
        case 'n': bad = arg_int("generate", "--max-tokens", optarg, 0, 1 << 24, &o.max_tokens); break;
        case 'S': spec = optarg; break;
        case 'd': bad = arg_int("generate", "--draft", optarg, 1, MTP_MAX_FUTURE, &o.draft); break;
        case 'T':
            o.tree_depths = arg_floats("generate", "--tree", optarg, tree, MTP_MAX_FUTURE - 1);
            if (o.tree_depths == 0) usage_error("generate", "--tree: expected widths like 2,1,1");
            bad = o.tree_depths <= 0;
            for (int d = 0; d < o.tree_depths && !bad; d++) {
                o.tree_width[d] = tree[d] <= MTP_MAX_TREE_NODES ? (int)tree[d] : 0;
                if (tree[d] < 1 || tree[d] > MTP_MAX_TREE_NODES || o.tree_width[d] != tree[d])
                    bad = usage_error("generate", "--tree: widths are integers >= 1, got '%s'", optarg);
            }
            break;
        case 't': bad = arg_float("generate", "--temp", optarg, 0, 100, &o.sampling.temp); break;
        case 'k': bad = arg_int("generate", "--top-k", optarg, 0, 1 << 20, &o.sampling.top_k); break;
        case 'P': bad = arg_float("generate", "--top-p", optarg, 0.000001, 1, &o.sampling.top_p); break;
        case 's': bad = arg_u64("generate", "--seed", optarg, &o.seed); break;
        case 'j': bad = arg_int("generate", "--threads", optarg, 1, 1024, &threads); break;
        case 'J': json = 1; break;
        case 'q': quiet = 1; break;
        case 'b': bad = arg_dtype("generate", optarg, &dtype), dtype_given = 1; break;
        case 'X':
            if (sc.n_stop == MAX_STOPS) return usage_error("generate", "--stop: at most %d", MAX_STOPS);
            if (!*optarg) return usage_error("generate", "--stop: the string is empty");
            sc.stop[sc.n_stop++] = optarg;
            if (strlen(optarg) - 1 > sc.hold) sc.hold = strlen(optarg) - 1;
            break;
        case 'E': ignore_eos = 1; break;
        case 'h': fputs(HELP, stdout); return 0;
        default: return options_error("generate", c, argv);
        }
    }
    if (bad) return EXIT_USAGE;
    if (optind < argc) return usage_error("generate", "unexpected argument '%s'", argv[optind]);
    if (!model) return usage_error("generate", "--model is required");
    if (ntexts + nids + nfiles == 0)
        return usage_error("generate", "give a prompt: --prompt, --prompt-file or --prompt-tokens");
    if (spec && strcmp(spec, "none") && strcmp(spec, "block") && strcmp(spec, "tree") && strcmp(spec, "auto"))
        return usage_error("generate", "--spec: expected none, block, tree or auto, got '%s'", spec);
    if (spec && strcmp(spec, "tree") && o.tree_depths)
        return usage_error("generate", "--tree: only with --spec tree (got --spec %s)", spec);

    mtp_model *m;
    mtp_err err;
    if (mtp_model_open_decode(&m, model, &err) || (dtype_given && mtp_model_decode_type(m, dtype, &err))) {
        fprintf(stderr, "mtp generate: %s: %s\n", model, err.msg);
        mtp_model_close(m);
        return EXIT_BAD_INPUT;
    }
    const mtp_config *cfg = mtp_model_config(m);
    const mtp_tokenizer *tok = mtp_model_tokenizer(m);
    int bytes = !tok && cfg->vocab_size == 256, rc = 0;
    sc.text = tok || bytes;
    if (tok && !ignore_eos) o.eos = mtp_tokenizer_eos(tok);
    if (!spec) spec = o.tree_depths ? "tree" : cfg->n_future > 1 ? "block" : "none";
    o.spec = !strcmp(spec, "block") ? MTP_SPEC_BLOCK
             : !strcmp(spec, "tree") ? MTP_SPEC_TREE
             : !strcmp(spec, "auto") ? MTP_SPEC_AUTO : MTP_SPEC_NONE;
    if (o.spec != MTP_SPEC_NONE && cfg->n_future < 2) {
        mtp_model_close(m);
        return usage_error("generate", "--spec %s needs a model with future heads (this one has 1)", spec);
    }
    if (o.spec == MTP_SPEC_TREE && o.tree_depths) { /* the tree must fit: widths and size */
        long nodes = 1, level = 1;
        for (int d = 0; d < o.tree_depths; d++) {
            level *= o.tree_width[d];
            nodes += level;
            if (o.tree_width[d] > cfg->vocab_size || nodes > MTP_MAX_TREE_NODES) {
                int V = cfg->vocab_size;
                mtp_model_close(m);
                return usage_error("generate", "--tree: widths at most vocab_size (%d), at most %d nodes",
                                   V, MTP_MAX_TREE_NODES);
            }
        }
    }
    if (o.draft > cfg->n_future) {
        int nf = cfg->n_future;
        mtp_model_close(m);
        return usage_error("generate", "--draft %d: the model has %d future heads", o.draft, nf);
    }
    prompt_list p = {0};
    if ((ntexts || nfiles || sc.n_stop) && !sc.text)
        rc = usage_error("generate", "%s: this model carries no tokenizer (give one to mtp convert "
                         "--tokenizer) and is not byte-level; use --prompt-tokens",
                         sc.n_stop ? "--stop" : "text prompts");
    for (int i = 0; i < ntexts && !rc; i++)
        if (add_text(&p, tok, texts[i], strlen(texts[i]), &err)) {
            fprintf(stderr, "mtp generate: --prompt: %s\n", err.msg);
            rc = EXIT_BAD_INPUT;
        }
    for (int i = 0; i < nids && !rc; i++)
        if (add_ids(&p, ids[i]))
            rc = usage_error("generate", "--prompt-tokens: expected comma-separated ids, got '%s'", ids[i]);
    for (int i = 0; i < nfiles && !rc; i++) {
        char *data;
        size_t len;
        if (mtp_read_file(files[i], &data, &len, &err)) {
            fprintf(stderr, "mtp generate: %s\n", err.msg);
            rc = EXIT_BAD_INPUT;
            break;
        }
        if (!lines) {
            rc = add_text(&p, tok, data, len, &err);
        } else {
            for (char *s = data, *e; s < data + len && !rc; s = e + 1) {
                e = memchr(s, '\n', data + len - s);
                if (!e) e = data + len;
                if (e > s) rc = add_text(&p, tok, s, e - s, &err);
            }
        }
        free(data);
        if (rc) {
            fprintf(stderr, "mtp generate: %s: %s\n", files[i], err.msg);
            rc = EXIT_BAD_INPUT;
        }
    }
    mtp_gen_result *res = NULL;
    if (!rc && p.n == 0) {
        fprintf(stderr, "mtp generate: %s: no prompts (empty file or only empty lines)\n",
                nfiles ? files[0] : "--prompt");
        rc = EXIT_BAD_INPUT;
    }
    if (!rc) {
        cli_setup_threads(threads, 0);
        res = cli_realloc(NULL, p.n * sizeof *res);
        sc.stream = sc.text && p.n == 1 && !json;
        sc.seq = cli_realloc(NULL, p.n * sizeof *sc.seq);
        memset(sc.seq, 0, p.n * sizeof *sc.seq);
        for (int i = 0; tok && i < p.n; i++) sc.seq[i].t.detok = mtp_detok_new(tok, 1);
        if (mtp_generate(m, (const mtp_token *const *)p.tok, p.len, p.n, &o, res, on_tokens, &sc, &err)) {
            fprintf(stderr, "mtp generate: %s\n", err.msg);
            rc = EXIT_BAD_INPUT;
        }
        for (int i = 0; !rc && sc.text && i < p.n; i++) finish_text(&sc, i);
    }
    if (!rc) {
        int depths = o.spec == MTP_SPEC_NONE ? 0 : (o.draft ? o.draft : cfg->n_future) - 1;
        if (o.spec == MTP_SPEC_TREE && o.tree_depths && o.tree_depths < depths) depths = o.tree_depths;
        for (int i = 0; i < p.n; i++) {
            if (json) {
                print_json(i, &res[i], depths, sc.text ? &sc.seq[i] : NULL);
            } else if (!sc.stream) {
                printf("--- prompt %d\n", i + 1);
                if (sc.text) fwrite(sc.seq[i].t.text ? sc.seq[i].t.text : "", 1, sc.seq[i].t.len, stdout);
                for (int k = 0; !sc.text && k < res[i].n; k++) printf("%s%u", k ? "," : "", res[i].tokens[k]);
                putchar('\n');
            }
        }
        if (!quiet && !json) print_stats(m, res, p.n, depths);
    }
    for (int i = 0; res && i < p.n; i++) {
        mtp_gen_result_free(&res[i]);
        cli_text_free(&sc.seq[i].t);
    }
    free(sc.seq);
    free(res);
    for (int i = 0; i < p.n; i++) free(p.tok[i]);
    free(p.tok);
    free(p.len);
    mtp_model_close(m);
    return rc;
}
