/* test_api.c: the public API as a program outside the library sees it: only mtp.h (and the
 * test harness). Handles, defaults, errors that leave results in a known state, and
 * speculative greedy output equal to plain through the public calls. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "mtp.h"

static mtp_model *small_model(void) {
    mtp_config cfg;
    mtp_err err;
    const char *json = "{\"dim\": 32, \"n_layers\": 4, \"n_heads\": 4, \"n_kv_heads\": 2, "
                       "\"vocab_size\": 50, \"multiple_of\": 16, \"n_future_tokens\": 3, "
                       "\"max_seq_len\": 64}";
    mtp_model *m = NULL;
    if (CHECK(mtp_config_parse(&cfg, json, "test config", &err) == 0, "config parses: %s", err.msg))
        CHECK(mtp_model_create(&m, &cfg, 7, &err) == 0 && m, "model created: %s", err.msg);
    return m;
}

int main(void) {
    CHECK(!strcmp(mtp_version(), MTP_VERSION), "mtp_version() is MTP_VERSION (%s)", MTP_VERSION);

    mtp_err err;
    mtp_model *none = (mtp_model *)&err; /* anything but NULL: open must clear it */
    CHECK(mtp_model_open(&none, "/nonexistent/model.safetensors", &err) == -1 && none == NULL,
          "a missing model file: -1 and a NULL handle");
    CHECK(strstr(err.msg, "/nonexistent/model.safetensors") != NULL, "the message names the file: %s",
          err.msg);
    mtp_model_close(NULL);

    mtp_config bad = {0};
    mtp_model *m2 = (mtp_model *)&err;
    CHECK(mtp_model_create(&m2, &bad, 1, &err) == -1 && m2 == NULL, "an invalid config is refused");

    mtp_model *m = small_model();
    if (!m) return check_finish();
    const mtp_config *c = mtp_model_config(m);
    CHECK(c->n_future == 3 && c->vocab_size == 50, "the handle's config");

    /* a failing call leaves every result empty, so freeing them is always safe */
    mtp_gen_opts o;
    mtp_gen_opts_default(&o);
    CHECK(o.spec == MTP_SPEC_BLOCK && o.sampling.temp == 0 && o.sampling.top_p == 1 && o.max_tokens > 0,
          "generation defaults: greedy block speculation");
    mtp_gen_result res[2];
    memset(res, 0xAB, sizeof res);
    const mtp_token ok_prompt[] = {1, 2, 3}, far[] = {1, 60};
    const mtp_token *prompts[] = {ok_prompt, far};
    int lens[] = {3, 2};
    CHECK(mtp_generate(m, prompts, lens, 2, &o, res, NULL, NULL, &err) == -1 &&
              strstr(err.msg, "out of range"),
          "an out-of-range id is refused: %s", err.msg);
    CHECK(res[0].tokens == NULL && res[0].n == 0 && res[1].tokens == NULL && res[1].n == 0,
          "after a failure every result is empty");
    for (int i = 0; i < 2; i++) mtp_gen_result_free(&res[i]);

    /* block speculation through the API gives plain greedy's tokens */
    mtp_gen_result plain, spec;
    o.max_tokens = 20;
    o.spec = MTP_SPEC_NONE;
    int rc = mtp_generate(m, prompts, lens, 1, &o, &plain, NULL, NULL, &err);
    o.spec = MTP_SPEC_BLOCK;
    rc |= mtp_generate(m, prompts, lens, 1, &o, &spec, NULL, NULL, &err);
    CHECK(rc == 0 && plain.n == 20 && spec.n == 20 &&
              !memcmp(plain.tokens, spec.tokens, 20 * sizeof(mtp_token)),
          "block speculation equals plain greedy through mtp.h");
    mtp_gen_result_free(&plain);
    mtp_gen_result_free(&spec);

    /* options out of range are refused before anything is opened or allocated */
    mtp_train_opts to;
    mtp_train_opts_default(&to);
    to.batch = 0;
    snprintf(to.data, sizeof to.data, "/nonexistent/shard.bin");
    CHECK(mtp_train(m, &to, NULL, NULL, NULL, &err) == -1 && strstr(err.msg, "batch 0"),
          "mtp_train refuses batch 0: %s", err.msg);
    /* a shard the model can read (bytes 1..40: below its vocabulary of 50), so that only
     * the size can be what eval refuses */
    char dir[] = "/tmp/mtp_test_api_XXXXXX", txt[64], out[80], shard[96];
    CHECK(mkdtemp(dir) != NULL, "a temporary folder");
    snprintf(txt, sizeof txt, "%s/ids.txt", dir);
    snprintf(out, sizeof out, "%s/data", dir);
    snprintf(shard, sizeof shard, "%s/train.bin", out);
    FILE *f = fopen(txt, "wb");
    for (int i = 0; i < 400; i++) fputc(1 + i % 40, f);
    fclose(f);
    mtp_prepare_stats ps;
    const char *inputs[] = {txt};
    mtp_prepare_opts po = {0};
    CHECK(mtp_prepare(inputs, 1, out, &po, &ps, &err) == 0, "prepare a shard: %s", err.msg);
    mtp_head_stats hs;
    CHECK(mtp_eval_file(m, shard, 2, 8, 1, &hs, &err) == 0, "mtp_eval_file on it: %s", err.msg);
    CHECK(mtp_eval_file(m, shard, 2, 0, 1, &hs, &err) == -1 && strstr(err.msg, "--seq 0"),
          "mtp_eval_file refuses --seq 0: %s", err.msg);
    unlink(shard), unlink(txt), rmdir(out), rmdir(dir);

    /* the JSON writer maps what JSON cannot hold to null */
    struct cJSON *j = mtp_json_number(NAN);
    char *text = mtp_json_text(j);
    CHECK(!strcmp(text, "null"), "NaN is written as null (got %s)", text);
    free(text);
    cJSON_Delete(j);

    /* fine-tuning: parts by name, and keeping future heads 1..k */
    unsigned parts = 0;
    CHECK(mtp_parts_parse("output,trunk", &parts, "--freeze", &err) == 0 &&
              parts == (MTP_PART_OUTPUT | MTP_PART_TRUNK), "parts parse: %s", err.msg);
    char names[64];
    mtp_parts_name(MTP_PART_ALL, names, sizeof names);
    CHECK(!strcmp(names, "trunk,heads,embeddings,output"), "part names (got %s)", names);
    CHECK(mtp_parts_parse("trunk,head", &parts, "--freeze", &err) == -1 && strstr(err.msg, "--freeze") &&
              strstr(err.msg, "'head'"), "an unknown part is refused, named: %s", err.msg);
    CHECK(mtp_model_keep_heads(m, 4, &err) == -1 && mtp_model_keep_heads(m, 0, &err) == -1 &&
              c->n_future == 3, "keeping 0 or more heads than the model has is refused: %s", err.msg);
    CHECK(mtp_model_keep_heads(m, 1, &err) == 0, "keep head 1 of 3: %s", err.msg);
    c = mtp_model_config(m);
    CHECK(c->n_future == 1 && c->n_layers == 2, "then n_future 1, n_layers 2 (got %d, %d)", c->n_future, c->n_layers);

    mtp_model_close(m);
    return check_finish();
}
