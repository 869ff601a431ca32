/* bench_shape.c: `mtp bench decode --shape 1b|7b --dtype bf16|q8`: decoding at real sizes
 * on a random model made on the fly straight in bf16 or 8-bit (no fp32 copy at 7B), against
 * the machine's read bandwidth measured in the same run: plain decoding is bound by reading
 * every weight once per token, and speculation is the way past that bound.
 * Prints: read bandwidth; the cost of a pass of R rows relative to a plain step (the
 * weights are read once for all rows); plain / block / tree tok/s with GB/s of weights and
 * % of the bandwidth at batch 1 and 4; prefill tok/s and peak memory with a long context. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "args.h"
#include "bench_shape.h"
#include "core/rng.h"
#include "core/util.h"
#include "decode/decode.h"
#include "kernels/backend.h"
#include "model/model.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

static const char *SHAPES[][2] = {
    {"1b", "{\"dim\":2048,\"n_layers\":20,\"n_heads\":16,\"n_kv_heads\":16,\"hidden_dim\":5632,"
           "\"vocab_size\":32000,\"n_future_tokens\":4,\"max_seq_len\":4096}"},
    {"7b", "{\"dim\":4096,\"n_layers\":32,\"n_heads\":32,\"n_kv_heads\":32,\"hidden_dim\":11008,"
           "\"vocab_size\":32000,\"n_future_tokens\":4,\"max_seq_len\":4096}"},
};

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static volatile double sink; /* the sums go here, so the reads cannot be left out */

/* Read bandwidth of this machine now: the median of 5 sums of a buffer far larger than
 * every cache, on all threads, after one sum not counted (the first pass over the buffer
 * runs at about half speed: the threads start, the TLB fills). Eight independent sums keep
 * enough loads in flight; no software prefetch, which reads slower here than the hardware's
 * own on a plain stream. GB/s. */
double bench_read_bandwidth(void) {
    size_t n = (size_t)1 << 28, chunk = (size_t)1 << 16; /* 1 GiB of floats, in chunks of 256 KB */
    float *buf = xmalloc(n * sizeof(float));
    memset(buf, 1, n * sizeof(float));
    double gbs[5];
    for (int rep = -1; rep < 5; rep++) {
        double t0 = mtp_now(), total = 0;
#pragma omp parallel for schedule(static) reduction(+ : total)
        for (size_t c = 0; c < n; c += chunk) {
#if defined(__AVX512F__)
            __m512 a[8];
            for (int k = 0; k < 8; k++) a[k] = _mm512_setzero_ps();
            for (size_t i = c; i < c + chunk; i += 8 * 16)
                for (int k = 0; k < 8; k++) a[k] = _mm512_add_ps(a[k], _mm512_load_ps(buf + i + 16 * k));
            for (int k = 0; k < 8; k++) total += _mm512_reduce_add_ps(a[k]);
#else
            float s[16] = {0};
            for (size_t i = c; i < c + chunk; i += 16)
                for (int k = 0; k < 16; k++) s[k] += buf[i + k];
            for (int k = 0; k < 16; k++) total += s[k];
#endif
        }
        if (rep >= 0) gbs[rep] = n * sizeof(float) / (mtp_now() - t0) / 1e9;
        sink = total;
    }
    free(buf);
    qsort(gbs, 5, sizeof *gbs, cmp_double);
    return gbs[2]; /* the median */
}

static double peak_rss_gb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss * 1024.0 / 1e9;
}

/* Bytes of weights a pass reads: the trunk, the first `heads` future heads, the unembedding
 * (and one embedding row per token, negligible). */
double bench_pass_bytes(const mtp_model *m, int heads) {
    double b = (double)mtp_wmat_bytes(&m->dec.out);
    for (int l = 0; l < mtp_n_trunk(&m->cfg) + heads; l++) b += (double)mtp_wblock_bytes(&m->dec.blocks[l]);
    return b;
}

/* Seconds of one forward pass of R rows (a chain after a cached prefix of `prefix`). */
static double time_pass(mtp_decoder *d, int R, int kv_heads, int prefix, float *logits) {
    mtp_row rows[16];
    int V = d->m->cfg.vocab_size;
    for (int r = 0; r < R; r++) rows[r] = (mtp_row){0, prefix + r, prefix + r, r - 1, r, (mtp_token)((r * 31 + 7) % V)};
    double t0 = mtp_now();
    mtp_decoder_forward(d, rows, R, kv_heads, logits);
    return mtp_now() - t0;
}

static double median(double *t, int n) {
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return t[n / 2];
}

enum { NR = 5, ROUNDS = 7 };
static const int RS[NR] = {1, 2, 4, 8, 16};

/* The median plain step, and each R's cost against it: the median over rounds of the
 * ratio within a round, each round timing the plain step and every R one after the other
 * (this machine's bandwidth moves by a third within a minute; apart, the ratios did). */
static double time_passes(mtp_decoder *d, int heads, int prefix, float *logits, double cost[NR]) {
    double plain[ROUNDS], ratio[NR][ROUNDS];
    for (int k = 0; k < ROUNDS; k++) {
        plain[k] = time_pass(d, 1, 1, prefix, logits);
        for (int i = 0; i < NR; i++) ratio[i][k] = time_pass(d, RS[i], heads, prefix, logits) / plain[k];
    }
    for (int i = 0; i < NR; i++) cost[i] = median(ratio[i], ROUNDS);
    return median(plain, ROUNDS);
}

int bench_pass_costs(const mtp_model *m, int heads, int prefix, double bw) {
    mtp_decoder d;
    mtp_err err;
    int cap = prefix + 16, V = m->cfg.vocab_size;
    if (mtp_decoder_init(&d, m, 1, &cap, prefix > 16 ? prefix : 16, &err)) {
        fprintf(stderr, "mtp bench: %s\n", err.msg);
        return EXIT_BAD_INPUT;
    }
    float *logits = falloc((size_t)prefix * V);
    mtp_row *rows = xmalloc((size_t)prefix * sizeof *rows);
    for (int j = 0; j < prefix; j++) rows[j] = (mtp_row){0, j, j, j - 1, -1, (mtp_token)(j * 13 % V)};
    mtp_decoder_forward(&d, rows, prefix, heads, logits);
    d.len[0] = prefix;
    double cost[NR], plain = time_passes(&d, heads, prefix, logits, cost), plain_gb = bench_pass_bytes(m, 1) / 1e9;
    printf("\npass of R rows after %d cached positions (trunk + head 1, keys and values of heads 2..%d) vs a "
           "plain step (%.3f ms, %.1f GB/s",
           prefix, heads, 1e3 * plain, plain_gb / plain);
    if (bw > 0) printf(", %.0f%% of the bandwidth", 100 * plain_gb / plain / bw);
    printf("; medians of %d rounds):\n  R   ", ROUNDS);
    for (int i = 0; i < NR; i++) printf(" %6d", RS[i]);
    printf("\n  cost");
    for (int i = 0; i < NR; i++) printf(" %5.2fx", cost[i]);
    mtp_row one = {0, prefix, prefix, -1, 0, 5};
    int zrow = 0, ones[MTP_MAX_FUTURE]; /* each head on the one row */
    for (int h = 0; h < MTP_MAX_FUTURE; h++) ones[h] = 1;
    mtp_decoder_forward(&d, &one, 1, heads, logits);
    double td[ROUNDS];
    for (int rep = 0; rep < ROUNDS; rep++) {
        double s = mtp_now();
        mtp_decoder_draft(&d, &one, &zrow, ones, 2, heads, logits);
        td[rep] = mtp_now() - s;
    }
    printf("\n  the draft pass (heads 2..%d on one row): %.2fx; weights it reads: %.2fx\n", heads,
           median(td, ROUNDS) / plain,
           (bench_pass_bytes(m, heads) - bench_pass_bytes(m, 1) + mtp_wmat_bytes(&m->dec.out)) / 1e9 / plain_gb);
    mtp_decoder_free(&d);
    free(logits);
    free(rows);
    return 0;
}

int bench_shape_config(mtp_config *c, const char *shape) {
    const char *json = NULL;
    for (size_t i = 0; i < sizeof SHAPES / sizeof *SHAPES; i++)
        if (!strcmp(shape, SHAPES[i][0])) json = SHAPES[i][1];
    if (!json) return usage_error("bench", "--shape: expected 1b or 7b, got '%s'", shape);
    mtp_err err;
    if (mtp_config_parse(c, json, "--shape", &err)) return usage_error("bench", "%s", err.msg);
    return 0;
}

int bench_shape(const char *shape, mtp_wtype t, int ntok, int plen, int context) {
    mtp_model m = {0};
    mtp_err err;
    int bad = bench_shape_config(&m.cfg, shape);
    if (bad) return bad;
    mtp_layout_init(&m.lay, &m.cfg);
    const mtp_config *c = &m.cfg;
    size_t bytes = m.lay.total * (t == MTP_F32 ? 4 : t == MTP_BF16 ? 2 : 1);
    if (mtp_check_fits(bytes + bytes / 8, "the random model's weights", &err)) {
        mtp_layout_free(&m.lay);
        return usage_error("bench", "--shape %s --dtype %s: %s", shape, mtp_wtype_name(t), err.msg);
    }
    int nf = c->n_future, V = c->vocab_size;
    printf("%s\n", mtp_backend_describe());
    double bw = bench_read_bandwidth();
    printf("read bandwidth (1 GiB summed on %d threads, median of 5): %.1f GB/s\n", mtp_backend_threads(), bw);
    double t0 = mtp_now();
    mtp_weights_random(&m.dec, &m.lay, c, t, 1);
    double plain_gb = bench_pass_bytes(&m, 1) / 1e9;
    printf("%s shape: dim %d, %d blocks (trunk %d + %d heads), hidden %d, vocab %d; %.2f B parameters, "
           "random %s weights on %s kernels (made in %.0f s)\n",
           shape, c->dim, c->n_layers, mtp_n_trunk(c), nf, c->hidden_dim, V,
           mtp_count_params(&m.lay, c).total / 1e9, mtp_wtype_name(t), mtp_wtype_kernels(t), mtp_now() - t0);
    printf("a plain step reads %.2f GB of weights: at most %.1f tok/s at %.1f GB/s\n", plain_gb, bw / plain_gb, bw);

    /* the cost of a pass of R rows against a plain step, after a cached prefix */
    int rc = bench_pass_costs(&m, nf, 64, bw);
    if (rc) {
        mtp_model_free(&m);
        return rc;
    }

    /* generation: plain, block, tree at batch 1 and 4 on random prompts */
    printf("\n%-6s %-6s %9s %8s %8s %8s %8s %9s\n", "batch", "mode", "tok/s", "GB/s", "of bw", "tok/pass",
           "speedup", "of ideal");
    mtp_rng r = {3};
    mtp_token *pbuf = xmalloc((size_t)4 * plen * sizeof(mtp_token));
    const mtp_token *prompts[4];
    int lens[4];
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < plen; j++) pbuf[(size_t)i * plen + j] = (mtp_token)mtp_rng_below(&r, V);
        prompts[i] = pbuf + (size_t)i * plen;
        lens[i] = plen;
    }
    mtp_spec modes[] = {MTP_SPEC_NONE, MTP_SPEC_BLOCK, MTP_SPEC_TREE};
    const char *names[] = {"plain", "block", "tree"};
    mtp_gen_result res[4];
    for (int batch = 1; batch <= 4 && !rc; batch += 3) {
        double plain_tps = 0;
        for (int k = 0; k < 3 && !rc; k++) {
            mtp_gen_opts o;
            mtp_gen_opts_default(&o);
            o.spec = modes[k];
            o.max_tokens = ntok;
            if ((rc = mtp_generate(&m, prompts, lens, batch, &o, res, NULL, NULL, &err))) break;
            double tokens = 0, fw = 0, secs = res[0].total_s - res[0].first_token_s;
            for (int i = 0; i < batch; i++) {
                tokens += res[i].n - 1, fw += res[i].forwards - 1;
                mtp_gen_result_free(&res[i]);
            }
            double tps = tokens / secs, passes = fw / batch / secs;
            if (k == 0) plain_tps = tps;
            /* ideal: tokens per pass x (weights a plain step reads / weights this pass reads) */
            double tpf = tokens / fw, ideal = k ? tpf * bench_pass_bytes(&m, 1) / bench_pass_bytes(&m, nf) : 1;
            double gbs = passes * bench_pass_bytes(&m, k ? nf : 1) / 1e9;
            printf("%-6d %-6s %9.2f %8.1f %7.0f%% %8.2f %7.2fx %8.0f%%\n", batch, names[k], tps, gbs, 100 * gbs / bw,
                   tpf, tps / plain_tps, 100 * tps / plain_tps / ideal);
        }
    }
    free(pbuf);

    /* prefill of a long prompt, and the memory a context of `context` tokens takes */
    if (!rc && context > 0) {
        int n = context - ntok - 16;
        mtp_token *p = xmalloc((size_t)n * sizeof(mtp_token));
        for (int j = 0; j < n; j++) p[j] = (mtp_token)mtp_rng_below(&r, V);
        const mtp_token *pp = p;
        mtp_gen_opts o;
        mtp_gen_opts_default(&o);
        o.max_tokens = ntok;
        if (!(rc = mtp_generate(&m, &pp, &n, 1, &o, res, NULL, NULL, &err))) {
            printf("\nprefill: a %d-token prompt in %.1f s (%.0f tok/s); block decoding with a %d-token context; "
                   "peak resident memory %.2f GB\n",
                   n, res[0].first_token_s, n / res[0].first_token_s, context, peak_rss_gb());
            mtp_gen_result_free(&res[0]);
        }
        free(p);
    }
    if (rc) fprintf(stderr, "mtp bench: %s\n", err.msg);
    mtp_model_free(&m);
    return rc ? EXIT_BAD_INPUT : 0;
}
