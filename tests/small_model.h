/* small_model.h: the small random 4-head model the decoding-session and engine tests run
 * (dim 32, 5 blocks, vocab 24), its weights scaled up from the default init for decisive,
 * varied distributions. */
#ifndef MTP_TEST_SMALL_MODEL_H
#define MTP_TEST_SMALL_MODEL_H

#include "check.h"
#include "model/model.h"

static void make_small_model(mtp_model *m, uint64_t seed) {
    const char *json = "{\"dim\":32,\"n_layers\":5,\"n_heads\":4,\"n_kv_heads\":2,\"vocab_size\":24,"
                       "\"hidden_dim\":48,\"max_seq_len\":96,\"n_future_tokens\":4}";
    mtp_config c;
    mtp_err err;
    MTP_ASSERT(mtp_config_parse(&c, json, "test", &err) == 0);
    MTP_ASSERT(mtp_model_init(m, &c, &err) == 0);
    mtp_model_randomize(m, seed);
    for (size_t i = 0; i < m->lay.total; i++)
        if (m->params[i] != 1.0f) m->params[i] *= 0.3f / 0.02f;
}

#endif
