/* config.c: parse, validate and print the model configuration (config.h).
 * Unknown keys are ignored (Meta's params.json carries a few we do not use). */
#include "core/config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"

/* Meta's FFN size rule (llama/model.py, FeedForward.__init__). */
static int meta_hidden_dim(int dim, int multiple_of, float mult) {
    int hidden = 4 * dim;
    hidden = (int)(2 * hidden / 3);
    if (mult > 0) hidden = (int)(mult * hidden);
    return multiple_of * ((hidden + multiple_of - 1) / multiple_of);
}

/* Reads an optional integer key; refuses non-integers and out-of-range values. */
static int get_int(const cJSON *o, const char *key, int *out, int required, const char *what,
                   mtp_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) {
        if (required) return mtp_fail(err, "%s: missing key \"%s\"", what, key);
        return 0;
    }
    double d = v->valuedouble;
    if (!cJSON_IsNumber(v) || d != floor(d) || d < -1e9 || d > 1e9)
        return mtp_fail(err, "%s: \"%s\" must be an integer", what, key);
    *out = (int)d;
    return 0;
}

static int get_float(const cJSON *o, const char *key, float *out, const char *what, mtp_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return mtp_fail(err, "%s: \"%s\" must be a number", what, key);
    *out = (float)v->valuedouble;
    return 0;
}

int mtp_config_parse(mtp_config *c, const char *json, const char *what, mtp_err *err) {
    memset(c, 0, sizeof *c);
    c->multiple_of = 256;
    c->norm_eps = 1e-5f;
    c->rope_theta = 10000.0f;
    c->max_seq_len = 2048;
    c->n_future = 1;
    c->n_kv_heads = -1;
    cJSON *o = cJSON_ParseWithOpts(json, NULL, 1); /* nothing may follow the object */
    if (!o || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return mtp_fail(err, "%s: not a JSON object", what);
    }
    int hidden = 0, rc = 0;
    rc |= get_int(o, "dim", &c->dim, 1, what, err);
    rc |= rc ? 0 : get_int(o, "n_layers", &c->n_layers, 1, what, err);
    rc |= rc ? 0 : get_int(o, "n_heads", &c->n_heads, 1, what, err);
    rc |= rc ? 0 : get_int(o, "n_kv_heads", &c->n_kv_heads, 0, what, err);
    rc |= rc ? 0 : get_int(o, "vocab_size", &c->vocab_size, 1, what, err);
    rc |= rc ? 0 : get_int(o, "multiple_of", &c->multiple_of, 0, what, err);
    rc |= rc ? 0 : get_float(o, "ffn_dim_multiplier", &c->ffn_dim_multiplier, what, err);
    rc |= rc ? 0 : get_float(o, "norm_eps", &c->norm_eps, what, err);
    rc |= rc ? 0 : get_float(o, "rope_theta", &c->rope_theta, what, err);
    rc |= rc ? 0 : get_int(o, "max_seq_len", &c->max_seq_len, 0, what, err);
    rc |= rc ? 0 : get_int(o, "n_future_tokens", &c->n_future, 0, what, err);
    rc |= rc ? 0 : get_int(o, "hidden_dim", &hidden, 0, what, err);
    cJSON_Delete(o);
    if (rc) return -1;
    if (c->n_kv_heads == -1) c->n_kv_heads = c->n_heads;
    if (c->multiple_of <= 0) return mtp_fail(err, "%s: multiple_of must be positive", what);
    if (c->dim <= 0 || c->dim > (1 << 16)) return mtp_fail(err, "%s: dim out of range", what);
    c->hidden_dim = hidden ? hidden : meta_hidden_dim(c->dim, c->multiple_of, c->ffn_dim_multiplier);
    return mtp_config_validate(c, what, err);
}

int mtp_config_validate(const mtp_config *c, const char *what, mtp_err *err) {
    if (c->dim <= 0 || c->dim > (1 << 16)) return mtp_fail(err, "%s: dim out of range", what);
    if (c->n_heads <= 0 || c->dim % c->n_heads)
        return mtp_fail(err, "%s: n_heads must divide dim", what);
    if ((c->dim / c->n_heads) % 2)
        return mtp_fail(err, "%s: head_dim (dim/n_heads) must be even for rotary", what);
    if (c->n_kv_heads <= 0 || c->n_heads % c->n_kv_heads)
        return mtp_fail(err, "%s: n_kv_heads must divide n_heads", what);
    /* ids are 32-bit (uint32 shards); 2^24 is far above any released vocabulary */
    if (c->vocab_size <= 0 || c->vocab_size > (1 << 24))
        return mtp_fail(err, "%s: vocab_size must be in 1..16777216", what);
    if (c->n_future < 1 || c->n_future > 64)
        return mtp_fail(err, "%s: n_future_tokens must be in 1..64", what);
    if (c->n_layers < c->n_future || c->n_layers > 4096)
        return mtp_fail(err, "%s: n_layers must be at least n_future_tokens", what);
    if (c->hidden_dim <= 0 || c->hidden_dim > (1 << 20))
        return mtp_fail(err, "%s: hidden_dim out of range", what);
    if (c->max_seq_len <= 0 || c->max_seq_len > (1 << 24))
        return mtp_fail(err, "%s: max_seq_len out of range", what);
    if (!(c->norm_eps > 0) || !(c->rope_theta > 0))
        return mtp_fail(err, "%s: norm_eps and rope_theta must be positive", what);
    double d = c->dim, per_block = 2 * d * d + 2 * d * mtp_kv_dim(c) + 3 * d * c->hidden_dim + 2 * d;
    double total = per_block * c->n_layers + 2.0 * c->vocab_size * d + d;
    if (total > (double)(1ull << 37))
        return mtp_fail(err, "%s: %.3g parameters is beyond what mtp supports (2^37)", what, total);
    return 0;
}

int mtp_config_load(mtp_config *c, const char *path, mtp_err *err) {
    char *text;
    size_t len;
    if (mtp_read_file(path, &text, &len, err)) return -1;
    int rc = mtp_config_parse(c, text, path, err);
    free(text);
    return rc;
}

char *mtp_config_to_json(const mtp_config *c) {
    cJSON *o = cJSON_CreateObject();
    mtp_json_add_number(o, "dim", c->dim);
    mtp_json_add_number(o, "n_layers", c->n_layers);
    mtp_json_add_number(o, "n_heads", c->n_heads);
    mtp_json_add_number(o, "n_kv_heads", c->n_kv_heads);
    mtp_json_add_number(o, "vocab_size", c->vocab_size);
    mtp_json_add_number(o, "multiple_of", c->multiple_of);
    if (c->ffn_dim_multiplier > 0)
        mtp_json_add_number(o, "ffn_dim_multiplier", c->ffn_dim_multiplier);
    else
        cJSON_AddNullToObject(o, "ffn_dim_multiplier");
    mtp_json_add_number(o, "norm_eps", c->norm_eps);
    mtp_json_add_number(o, "rope_theta", c->rope_theta);
    mtp_json_add_number(o, "max_seq_len", c->max_seq_len);
    mtp_json_add_number(o, "n_future_tokens", c->n_future);
    mtp_json_add_number(o, "hidden_dim", c->hidden_dim);
    char *out = mtp_json_text(o);
    cJSON_Delete(o);
    return out;
}
