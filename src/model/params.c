/* params.c: see params.h. */
#include "model/params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t add(mtp_layout *lay, unsigned part, const char *name, size_t rows, size_t cols) {
    mtp_param *p = &lay->params[lay->n_params++];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->part = part;
    p->ndim = cols ? 2 : 1;
    p->shape[0] = rows;
    p->shape[1] = cols;
    p->numel = rows * (cols ? cols : 1);
    p->offset = lay->total;
    lay->total += p->numel;
    return p->offset;
}

static void block_name(char *out, size_t n, const mtp_config *c, int block) {
    int nt = mtp_n_trunk(c);
    if (block <= nt)
        snprintf(out, n, "layers.%d", block); /* trunk, and head 1 right after it */
    else
        snprintf(out, n, "extra_heads.%d", block - nt - 1);
}

void mtp_layout_init(mtp_layout *lay, const mtp_config *c) {
    memset(lay, 0, sizeof *lay);
    size_t d = c->dim, kv = mtp_kv_dim(c), f = c->hidden_dim, v = c->vocab_size;
    lay->n_blocks = c->n_layers;
    lay->params = xcalloc(3 + 9 * (size_t)c->n_layers, sizeof(mtp_param));
    lay->blocks = xcalloc(c->n_layers, sizeof(mtp_block_offsets));
    lay->tok_emb = add(lay, MTP_PART_EMBEDDINGS, "tok_embeddings.weight", v, d);
    for (int l = 0; l < c->n_layers; l++) {
        char pre[40], name[80];
        unsigned part = l < mtp_n_trunk(c) ? MTP_PART_TRUNK : MTP_PART_HEADS;
        block_name(pre, sizeof pre, c, l);
        mtp_block_offsets *b = &lay->blocks[l];
#define ADD(field, suffix, r, cc) \
    (snprintf(name, sizeof name, "%s.%s", pre, suffix), b->field = add(lay, part, name, r, cc))
        ADD(attn_norm, "attention_norm.weight", d, 0);
        ADD(wq, "attention.wq.weight", d, d);
        ADD(wk, "attention.wk.weight", kv, d);
        ADD(wv, "attention.wv.weight", kv, d);
        ADD(wo, "attention.wo.weight", d, d);
        ADD(ffn_norm, "ffn_norm.weight", d, 0);
        ADD(w1, "feed_forward.w1.weight", f, d);
        ADD(w2, "feed_forward.w2.weight", d, f);
        ADD(w3, "feed_forward.w3.weight", f, d);
#undef ADD
    }
    lay->norm = add(lay, MTP_PART_OUTPUT, "norm.weight", d, 0);
    lay->output = add(lay, MTP_PART_OUTPUT, "output.weight", v, d);
}

void mtp_layout_free(mtp_layout *lay) {
    free(lay->params);
    free(lay->blocks);
    memset(lay, 0, sizeof *lay);
}

const mtp_param *mtp_layout_find(const mtp_layout *lay, const char *name) {
    for (int i = 0; i < lay->n_params; i++)
        if (strcmp(lay->params[i].name, name) == 0) return &lay->params[i];
    return NULL;
}

size_t mtp_layout_trained(const mtp_layout *lay, unsigned frozen) {
    size_t n = 0;
    for (int i = 0; i < lay->n_params; i++)
        if (!(lay->params[i].part & frozen)) n += lay->params[i].numel;
    return n;
}

static const char *const PART_NAMES[] = {"trunk", "heads", "embeddings", "output"};

int mtp_parts_parse(const char *list, unsigned *parts, const char *flag, mtp_err *err) {
    *parts = 0;
    for (const char *s = list;; s++) {
        size_t len = strcspn(s, ",");
        int k = 0;
        while (k < 4 && (strlen(PART_NAMES[k]) != len || strncmp(s, PART_NAMES[k], len) != 0)) k++;
        if (k == 4)
            return mtp_fail(err, "%s: unknown part '%.*s' (expected trunk, heads, embeddings or output, "
                            "comma-separated)", flag, (int)(len < 64 ? len : 64), s);
        *parts |= 1u << k;
        s += len;
        if (!*s) return 0;
    }
}

void mtp_parts_name(unsigned parts, char *out, size_t n) {
    size_t w = 0;
    out[0] = 0;
    for (int k = 0; k < 4; k++)
        if (parts & (1u << k) && w < n)
            w += (size_t)snprintf(out + w, n - w, "%s%s", w ? "," : "", PART_NAMES[k]);
}

mtp_block_ptrs mtp_block_at(const mtp_layout *lay, float *base, int block) {
    MTP_ASSERT(block >= 0 && block < lay->n_blocks);
    const mtp_block_offsets *o = &lay->blocks[block];
    return (mtp_block_ptrs){base + o->attn_norm, base + o->wq, base + o->wk, base + o->wv,
                            base + o->wo, base + o->ffn_norm, base + o->w1, base + o->w3,
                            base + o->w2};
}

mtp_param_counts mtp_count_params(const mtp_layout *lay, const mtp_config *c) {
    mtp_param_counts n = {0};
    size_t per_block = (lay->norm - lay->blocks[0].attn_norm) / c->n_layers;
    n.embedding = lay->params[0].numel;
    n.trunk = per_block * mtp_n_trunk(c);
    n.heads = per_block * c->n_future;
    n.norm_output = lay->total - lay->norm;
    n.total = lay->total;
    return n;
}
