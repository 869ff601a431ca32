/* test_adamw.c: mtp_adamw_step against the plain update (oracle/adamw_ref.h), bit for
 * bit: a small model's layout (tensors that are not whole vectors of 16, 1-D ones without
 * weight decay), one part frozen, the gradient scaled by clipping's factor or not, on 1 and
 * 2 threads, over a few steps. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/rng.h"
#include "core/util.h"
#include "model/params.h"
#include "oracle/adamw_ref.h"
#include "train/adamw.h"

static mtp_rng rng = {7};

static float *rnd(size_t n, int positive) {
    float *x = falloc(n);
    for (size_t i = 0; i < n; i++) {
        float r = (float)mtp_rng_normal(&rng);
        x[i] = positive ? 1e-4f * r * r : r;
    }
    return x;
}

static float *dup(const float *x, size_t n) {
    float *y = falloc(n);
    memcpy(y, x, n * sizeof(float));
    return y;
}

/* three steps of the library on `threads` threads and of the reference, from the same start */
static void compare(const mtp_layout *lay, unsigned frozen, float grad_scale, int threads) {
    mtp_adamw h = {3e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, frozen};
    size_t P = lay->total, M = mtp_layout_trained(lay, frozen);
    float *w1 = rnd(P, 0), *g = rnd(P, 0), *m1 = rnd(M, 0), *v1 = rnd(M, 1);
    float *w2 = dup(w1, P), *g2 = falloc(P), *m2 = dup(m1, M), *v2 = dup(v1, M), *gkeep = dup(g, P);
    check_threads(threads);
    for (int t = 1; t <= 3; t++) {
        mtp_adamw_step(&h, lay, w1, g, grad_scale, m1, v1, t);
        memcpy(g2, g, P * sizeof(float));
        mtp_adamw_step_ref(&h, lay, w2, g2, grad_scale, m2, v2, t);
    }
    check_threads(2);
    const char *f = "adamw frozen %u grad_scale %g threads %d: %s";
    CHECK_SAME(w1, w2, P, f, frozen, grad_scale, threads, "weights");
    CHECK_SAME(m1, m2, M, f, frozen, grad_scale, threads, "first moments");
    CHECK_SAME(v1, v2, M, f, frozen, grad_scale, threads, "second moments");
    CHECK_SAME(g, gkeep, P, f, frozen, grad_scale, threads, "gradients left as they were");
    free(w1), free(g), free(m1), free(v1), free(w2), free(g2), free(m2), free(v2), free(gkeep);
}

int main(void) {
    const char *json = "{\"dim\":24,\"n_layers\":3,\"n_heads\":4,\"n_kv_heads\":2,\"vocab_size\":19,"
                       "\"hidden_dim\":36,\"max_seq_len\":16,\"n_future_tokens\":2}";
    mtp_config c;
    mtp_err err;
    MTP_ASSERT(mtp_config_parse(&c, json, "test", &err) == 0);
    mtp_layout lay;
    mtp_layout_init(&lay, &c);
    for (int threads = 1; threads <= 2; threads++) {
        compare(&lay, 0, 1.0f, threads);
        compare(&lay, 0, 0.37f, threads);
        compare(&lay, MTP_PART_HEADS, 0.37f, threads);
    }
    mtp_layout_free(&lay);
    return check_finish();
}
