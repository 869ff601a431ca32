/* bpe_load.c: reads a Hugging Face tokenizer.json into the byte-level BPE tokenizer.
 * What is read: model BPE (vocab, merges as "a b" strings or [a, b] pairs, ignore_merges,
 * byte_fallback, unk_token, fuse_unk); normalizer null or NFC; pre_tokenizer ByteLevel, or
 * a Sequence of Split steps (Isolated, not inverted) ending in ByteLevel; decoder
 * ByteLevel; added_tokens; post_processor null, ByteLevel, TemplateProcessing or a
 * Sequence of them (only for BOS/EOS: encode adds no special tokens). Anything else, and
 * any field of the wrong type, is refused with one line naming the file: a tokenizer that
 * loads gives tokenizers' ids, or it does not load.
 * BOS/EOS: a TemplateProcessing whose "single" starts with a special token makes that
 * token BOS and adds_bos true (Llama 3); one ending with a special token after the
 * sequence makes that EOS. Otherwise BOS is the first special added token among
 * <|begin_of_text|>, <s>, <|startoftext|>, <|endoftext|> and EOS the first among
 * <|end_of_text|>, <|endoftext|>, </s> (GPT-2's <|endoftext|> is both), -1 when none. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <uninorm.h>

#include <cjson/cJSON.h>

#include "core/util.h"
#include "text/bpe.h"
#include "text/utf8.h"

typedef struct {
    const char *what;
    mtp_err *err;
} ld;

static int bad(ld *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(ld *l, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return mtp_fail(l->err, "%s: %s", l->what, msg);
}

static const cJSON *field(const cJSON *o, const char *key) {
    return cJSON_GetObjectItemCaseSensitive(o, key);
}

static int is_null(const cJSON *v) { return !v || cJSON_IsNull(v); }

/* A bool field: absent or null gives dflt. */
static int get_bool(ld *l, const cJSON *o, const char *key, int dflt, int *out, const char *where) {
    const cJSON *v = field(o, key);
    if (is_null(v)) *out = dflt;
    else if (cJSON_IsBool(v)) *out = cJSON_IsTrue(v);
    else return bad(l, "%s.%s is not true or false", where, key);
    return 0;
}

/* A string field that must be there. */
static int get_str(ld *l, const cJSON *o, const char *key, const char **out, const char *where) {
    const cJSON *v = field(o, key);
    if (!cJSON_IsString(v)) return bad(l, "%s.%s is missing or not a string", where, key);
    *out = v->valuestring;
    return 0;
}

static int as_id(const cJSON *v, int32_t *id) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0 && d < 2147483647.0 && d == floor(d))) return -1;
    *id = (int32_t)d;
    return 0;
}

/* The object's "type", which must be a string. */
static int get_type(ld *l, const cJSON *o, const char **type, const char *where) {
    if (!cJSON_IsObject(o)) return bad(l, "%s is not an object", where);
    return get_str(l, o, "type", type, where);
}

static int check_utf8(ld *l, const char *s, const char *where) {
    return mtp_utf8_valid((const uint8_t *)s, strlen(s)) ? 0 : bad(l, "%s is not valid UTF-8", where);
}

/* ---- model ----------------------------------------------------------------------------- */

typedef struct {
    const char *s;
    int32_t id;
} entry;

/* Reads model.vocab: checks ids, counts them; fills ent (n of them). */
static int read_vocab(ld *l, const cJSON *vocab, entry **ent, size_t *n) {
    if (!cJSON_IsObject(vocab)) return bad(l, "model.vocab is missing or not an object");
    size_t k = 0, cap = (size_t)cJSON_GetArraySize(vocab);
    *ent = xmalloc((cap + 1) * sizeof **ent);
    for (const cJSON *v = vocab->child; v; v = v->next) {
        int32_t id;
        if (!v->string || as_id(v, &id))
            return bad(l, "model.vocab[\"%.60s\"] is not an id (an integer from 0)", v->string ? v->string : "");
        if (check_utf8(l, v->string, "a model.vocab token")) return -1;
        if (!v->string[0]) return bad(l, "model.vocab has an empty token (id %d)", (int)id);
        (*ent)[k++] = (entry){v->string, id};
    }
    *n = k;
    return 0;
}

/* One merge's two tokens, from "a b" or ["a", "b"]. */
static int merge_pair(ld *l, const cJSON *m, size_t i, char *buf, size_t cap, const char **a,
                      const char **b) {
    if (cJSON_IsArray(m)) {
        const cJSON *x = cJSON_GetArrayItem(m, 0), *y = cJSON_GetArrayItem(m, 1);
        if (cJSON_GetArraySize(m) != 2 || !cJSON_IsString(x) || !cJSON_IsString(y))
            return bad(l, "model.merges[%zu] is not a pair of strings", i);
        *a = x->valuestring;
        *b = y->valuestring;
        return 0;
    }
    if (!cJSON_IsString(m)) return bad(l, "model.merges[%zu] is neither \"a b\" nor [a, b]", i);
    const char *s = m->valuestring, *sp = strchr(s, ' ');
    if (!sp || strchr(sp + 1, ' ') || strlen(s) >= cap)
        return bad(l, "model.merges[%zu] \"%.60s\" is not two tokens split by one space", i, s);
    memcpy(buf, s, strlen(s) + 1);
    buf[sp - s] = 0;
    *a = buf;
    *b = buf + (sp - s) + 1;
    return 0;
}

static int read_merges(ld *l, bpe_model *m, const cJSON *merges) {
    if (!cJSON_IsArray(merges)) return bad(l, "model.merges is missing or not an array");
    char *buf = NULL, *cat = NULL;
    size_t cap = 0;
    uint32_t rank = 0;
    size_t i = 0;
    int rc = 0;
    for (const cJSON *e = merges->child; e && !rc; e = e->next, i++) {
        /* "#version" lines of a merges.txt carried over are skipped, as tokenizers does */
        if (cJSON_IsString(e) && strncmp(e->valuestring, "#version", 8) == 0) continue;
        size_t need = (cJSON_IsString(e) ? strlen(e->valuestring) : 0) + 1;
        if (cJSON_IsArray(e))
            for (const cJSON *x = e->child; x; x = x->next)
                if (cJSON_IsString(x)) need += strlen(x->valuestring) + 1;
        if (need > cap) {
            cap = 2 * need;
            free(buf);
            free(cat);
            buf = xmalloc(cap);
            cat = xmalloc(cap);
        }
        const char *a = NULL, *b = NULL;
        if ((rc = merge_pair(l, e, i, buf, cap, &a, &b))) break;
        int32_t ia = bpe_vocab_id(&m->vocab, a, strlen(a));
        int32_t ib = bpe_vocab_id(&m->vocab, b, strlen(b));
        size_t la = strlen(a), lb = strlen(b);
        memcpy(cat, a, la);
        memcpy(cat + la, b, lb);
        int32_t ic = bpe_vocab_id(&m->vocab, cat, la + lb);
        if (ia < 0 || ib < 0 || ic < 0) {
            rc = bad(l, "model.merges[%zu] (\"%.40s\" \"%.40s\") names a token not in the vocab", i, a, b);
            break;
        }
        bpe_model_add_merge(m, (uint32_t)ia, (uint32_t)ib, rank++, (uint32_t)ic);
    }
    free(buf);
    free(cat);
    return rc;
}

/* Checks the model's options and reads its unknown token (after the vocab). */
static int read_model_options(ld *l, bpe_model *m, const cJSON *model) {
    const cJSON *v = field(model, "dropout");
    if (!is_null(v) && !(cJSON_IsNumber(v) && v->valuedouble == 0))
        return bad(l, "model.dropout is set; only null is supported (encoding must be deterministic)");
    const char *opt[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        v = field(model, opt[i]);
        if (!is_null(v) && !(cJSON_IsString(v) && !v->valuestring[0]))
            return bad(l, "model.%s is set; only null or \"\" is supported", opt[i]);
    }
    if (get_bool(l, model, "ignore_merges", 0, &m->ignore_merges, "model") ||
        get_bool(l, model, "byte_fallback", 0, &m->byte_fallback, "model") ||
        get_bool(l, model, "fuse_unk", 0, &m->fuse_unk, "model"))
        return -1;
    m->unk_id = -1;
    v = field(model, "unk_token");
    if (!is_null(v)) {
        if (!cJSON_IsString(v)) return bad(l, "model.unk_token is not a string");
        m->unk_id = bpe_vocab_id(&m->vocab, v->valuestring, strlen(v->valuestring));
        if (m->unk_id < 0) return bad(l, "model.unk_token \"%.60s\" is not in the vocab", v->valuestring);
    }
    return 0;
}

/* ---- normalizer, pre-tokenizer, decoder, post-processor --------------------------------- */

static int read_normalizer(ld *l, bpe_impl *b, const cJSON *n) {
    const char *type = NULL;
    if (is_null(n)) return 0;
    if (get_type(l, n, &type, "normalizer")) return -1;
    if (strcmp(type, "NFC") != 0)
        return bad(l, "normalizer type \"%.40s\" is not supported (only null or NFC)", type);
    b->nfc = 1;
    return 0;
}

static int read_split(ld *l, bpe_step *st, const cJSON *s) {
    const char *behavior = NULL;
    int invert = 0;
    if (get_str(l, s, "behavior", &behavior, "pre_tokenizer Split") ||
        get_bool(l, s, "invert", 0, &invert, "pre_tokenizer Split"))
        return -1;
    if (strcmp(behavior, "Isolated") != 0 || invert)
        return bad(l, "pre_tokenizer Split with behavior \"%.30s\"%s is not supported (only "
                      "Isolated, not inverted)", behavior, invert ? " inverted" : "");
    const cJSON *p = field(s, "pattern"), *re = field(p, "Regex"), *str = field(p, "String");
    if (!cJSON_IsString(re) && !cJSON_IsString(str))
        return bad(l, "pre_tokenizer Split.pattern is neither {\"Regex\": ...} nor {\"String\": ...}");
    st->kind = BPE_STEP_SPLIT;
    st->re = bpe_pretok_compile(cJSON_IsString(re) ? re->valuestring : str->valuestring,
                                cJSON_IsString(re), l->what, l->err);
    return st->re ? 0 : -1;
}

static int read_bytelevel(ld *l, bpe_step *st, const cJSON *s) {
    int use_regex = 0;
    if (get_bool(l, s, "add_prefix_space", 1, &st->add_prefix_space, "pre_tokenizer ByteLevel") ||
        get_bool(l, s, "use_regex", 1, &use_regex, "pre_tokenizer ByteLevel"))
        return -1;
    st->kind = BPE_STEP_BYTELEVEL;
    st->re = use_regex ? bpe_pretok_compile(bpe_gpt2_pattern, 1, l->what, l->err) : NULL;
    return use_regex && !st->re ? -1 : 0;
}

static int read_pretok(ld *l, bpe_pretok *p, const cJSON *pt) {
    const char *type = NULL;
    if (is_null(pt)) return bad(l, "pre_tokenizer is null; a byte-level BPE needs ByteLevel");
    if (get_type(l, pt, &type, "pre_tokenizer")) return -1;
    const cJSON *list = pt;
    if (strcmp(type, "Sequence") == 0) {
        list = field(pt, "pretokenizers");
        if (!cJSON_IsArray(list)) return bad(l, "pre_tokenizer.pretokenizers is not an array");
    }
    int n = strcmp(type, "Sequence") == 0 ? cJSON_GetArraySize(list) : 1;
    if (n < 1 || n > BPE_MAX_STEPS) return bad(l, "pre_tokenizer has %d steps (1 to %d supported)", n, BPE_MAX_STEPS);
    p->mctx = pcre2_match_context_create(NULL);
    pcre2_set_match_limit(p->mctx, 10u * 1000 * 1000);
    for (int i = 0; i < n; i++) {
        const cJSON *one = list == pt ? pt : cJSON_GetArrayItem(list, i);
        if (get_type(l, one, &type, "a pre_tokenizer step")) return -1;
        bpe_step *st = &p->steps[p->n_steps];
        int last = i == n - 1;
        if (strcmp(type, "Split") == 0 && !last) {
            if (read_split(l, st, one)) return -1;
        } else if (strcmp(type, "ByteLevel") == 0 && last) {
            if (read_bytelevel(l, st, one)) return -1;
        } else {
            return bad(l, "pre_tokenizer step \"%.40s\" is not supported %s (supported: Split steps, "
                          "then ByteLevel last)", type, last ? "last" : "there");
        }
        p->n_steps++;
    }
    return 0;
}

static int read_decoder(ld *l, const cJSON *d) {
    const char *type = NULL;
    if (is_null(d)) return bad(l, "decoder is null; a byte-level BPE needs the ByteLevel decoder");
    if (get_type(l, d, &type, "decoder")) return -1;
    if (strcmp(type, "ByteLevel") != 0)
        return bad(l, "decoder type \"%.40s\" is not supported (only ByteLevel)", type);
    return 0;
}

/* The id a TemplateProcessing item names, when it is a SpecialToken; -1 when a Sequence. */
static int template_item(ld *l, const cJSON *item, const cJSON *specials, int vocab_size, int32_t *id) {
    const cJSON *st = field(item, "SpecialToken");
    *id = -1;
    if (!st) {
        if (!cJSON_IsObject(field(item, "Sequence")))
            return bad(l, "post_processor TemplateProcessing item is neither SpecialToken nor Sequence");
        return 0;
    }
    const char *name = NULL;
    if (get_str(l, st, "id", &name, "post_processor SpecialToken")) return -1;
    const cJSON *ids = field(field(specials, name), "ids");
    if (!cJSON_IsArray(ids) || cJSON_GetArraySize(ids) != 1 || as_id(ids->child, id) || *id >= vocab_size)
        return bad(l, "post_processor special_tokens[\"%.40s\"].ids is not one id in the vocab", name);
    return 0;
}

static int read_template(ld *l, mtp_tokenizer *t, const cJSON *pp) {
    const cJSON *single = field(pp, "single"), *specials = field(pp, "special_tokens");
    if (!cJSON_IsArray(single) || cJSON_GetArraySize(single) < 1)
        return bad(l, "post_processor TemplateProcessing.single is not a non-empty array");
    int n = cJSON_GetArraySize(single);
    int32_t first, last = -1;
    if (template_item(l, cJSON_GetArrayItem(single, 0), specials, t->vocab_size, &first)) return -1;
    if (n > 1 && template_item(l, cJSON_GetArrayItem(single, n - 1), specials, t->vocab_size, &last))
        return -1;
    if (first >= 0) {
        t->bos = first;
        t->adds_bos = 1;
    }
    if (last >= 0) t->eos = last;
    return 0;
}

static int read_post(ld *l, mtp_tokenizer *t, const cJSON *pp) {
    const char *type = NULL;
    if (is_null(pp)) return 0;
    if (get_type(l, pp, &type, "post_processor")) return -1;
    if (strcmp(type, "ByteLevel") == 0) return 0; /* offsets only */
    if (strcmp(type, "TemplateProcessing") == 0) return read_template(l, t, pp);
    if (strcmp(type, "Sequence") != 0)
        return bad(l, "post_processor type \"%.40s\" is not supported", type);
    const cJSON *list = field(pp, "processors");
    if (!cJSON_IsArray(list)) return bad(l, "post_processor.processors is not an array");
    for (const cJSON *e = list->child; e; e = e->next) {
        if (get_type(l, e, &type, "a post_processor step")) return -1;
        if (strcmp(type, "Sequence") == 0) return bad(l, "post_processor Sequence inside a Sequence");
        if (read_post(l, t, e)) return -1;
    }
    return 0;
}

/* ---- added tokens ---------------------------------------------------------------------- */

static int read_added(ld *l, bpe_impl *b, const cJSON *list) {
    if (is_null(list)) return 0;
    if (!cJSON_IsArray(list)) return bad(l, "added_tokens is not an array");
    b->added = xcalloc((size_t)cJSON_GetArraySize(list) + 1, sizeof *b->added);
    size_t i = 0;
    for (const cJSON *e = list->child; e; e = e->next, i++) {
        bpe_added a = {0};
        const char *content = NULL;
        int sw = 0, ls = 0, rs = 0, norm = 0, sp = 0;
        if (!cJSON_IsObject(e)) return bad(l, "added_tokens[%zu] is not an object", i);
        if (as_id(field(e, "id"), &a.id)) return bad(l, "added_tokens[%zu].id is not an id", i);
        if (get_str(l, e, "content", &content, "added_tokens[]") ||
            check_utf8(l, content, "an added token's content") ||
            get_bool(l, e, "special", 0, &sp, "added_tokens[]") ||
            get_bool(l, e, "single_word", 0, &sw, "added_tokens[]") ||
            get_bool(l, e, "lstrip", 0, &ls, "added_tokens[]") ||
            get_bool(l, e, "rstrip", 0, &rs, "added_tokens[]") ||
            get_bool(l, e, "normalized", !sp, &norm, "added_tokens[]"))
            return -1;
        if (!content[0]) continue; /* tokenizers ignores an empty added token */
        a.special = (unsigned char)sp;
        a.single_word = (unsigned char)sw;
        a.lstrip = (unsigned char)ls;
        a.rstrip = (unsigned char)rs;
        a.normalized = (unsigned char)norm;
        a.content = xstrdup(content);
        a.n = strlen(content);
        b->added[b->n_added++] = a;
    }
    return 0;
}

/* The id of the first special added token among names, or -1. */
static int32_t special_named(const bpe_impl *b, const char *const *names) {
    for (; *names; names++)
        for (size_t i = 0; i < b->n_added; i++)
            if (b->added[i].special && strcmp(b->added[i].content, *names) == 0) return b->added[i].id;
    return -1;
}

/* ---- the whole file -------------------------------------------------------------------- */

/* vocab_size, the pieces (model tokens, then added tokens over them) and the vocab map. */
static int build_pieces(ld *l, mtp_tokenizer *t, bpe_impl *b, const entry *ent, size_t n_ent) {
    int64_t max_id = -1;
    size_t bytes = 0;
    for (size_t i = 0; i < n_ent; i++) {
        if (ent[i].id > max_id) max_id = ent[i].id;
        bytes += strlen(ent[i].s) + 1;
    }
    for (size_t i = 0; i < b->n_added; i++) {
        if (b->added[i].id > max_id) max_id = b->added[i].id;
        bytes += b->added[i].n + 1;
    }
    if (max_id < 0) return bad(l, "the vocab is empty");
    /* a dense vocabulary, gaps allowed, but not an id of 2^30 in a ten-token file */
    if ((uint64_t)max_id >= 2 * (uint64_t)(n_ent + b->n_added) + 1024)
        return bad(l, "id %lld is far past the %zu tokens (ids must be nearly dense)", (long long)max_id,
                   n_ent + b->n_added);
    t->vocab_size = (int)max_id + 1;
    b->pieces = xcalloc((size_t)t->vocab_size, sizeof *b->pieces);
    t->pieces = b->pieces;
    b->piece_pool = xmalloc(bytes + 1);
    char *w = b->piece_pool;
    mtp_strmap_init(&b->model.vocab, n_ent);
    for (size_t i = 0; i < n_ent; i++) {
        size_t len = strlen(ent[i].s);
        if (b->pieces[ent[i].id])
            return bad(l, "model.vocab gives id %d to both \"%.40s\" and \"%.40s\"", (int)ent[i].id,
                       b->pieces[ent[i].id], ent[i].s);
        memcpy(w, ent[i].s, len + 1);
        if (mtp_strmap_add(&b->model.vocab, w, len, ent[i].id))
            return bad(l, "model.vocab has \"%.60s\" twice", ent[i].s);
        b->pieces[ent[i].id] = w;
        w += len + 1;
    }
    for (size_t i = 0; i < b->n_added; i++) {
        bpe_added *a = &b->added[i];
        int32_t in_vocab = bpe_vocab_id(&b->model.vocab, a->content, a->n);
        if (in_vocab >= 0 && in_vocab != a->id)
            return bad(l, "added token \"%.40s\" has id %d but the vocab gives it %d", a->content,
                       (int)a->id, (int)in_vocab);
        for (size_t j = 0; j < i; j++)
            if (b->added[j].id == a->id || strcmp(b->added[j].content, a->content) == 0)
                return bad(l, "added tokens \"%.40s\" and \"%.40s\" share an id or content",
                           b->added[j].content, a->content);
        if (in_vocab < 0 && b->pieces[a->id])
            return bad(l, "added token \"%.40s\" has id %d, which the vocab gives \"%.40s\"",
                       a->content, (int)a->id, b->pieces[a->id]);
        if (in_vocab < 0) {
            memcpy(w, a->content, a->n + 1);
            b->pieces[a->id] = w;
            w += a->n + 1;
        }
    }
    *w = 0; /* ids nobody has (gaps) get the empty piece */
    for (int i = 0; i < t->vocab_size; i++)
        if (!b->pieces[i]) b->pieces[i] = w;
    return 0;
}

/* What each id decodes to: its piece through the ByteLevel decoder; special tokens to
 * nothing (decode skips them). */
static void build_decode(mtp_tokenizer *t, bpe_impl *b) {
    size_t total = 0, v = (size_t)t->vocab_size;
    unsigned char *special = xcalloc(v, 1);
    for (size_t i = 0; i < b->n_added; i++) special[b->added[i].id] = b->added[i].special;
    for (size_t i = 0; i < v; i++) total += strlen(b->pieces[i]);
    b->dec_pool = xmalloc(total + 1);
    b->dec_off = xmalloc((v + 1) * sizeof *b->dec_off);
    size_t k = 0;
    for (size_t i = 0; i < v; i++) {
        b->dec_off[i] = (uint32_t)k;
        if (!special[i]) k += bpe_bytelevel_decode(b->pieces[i], strlen(b->pieces[i]), b->dec_pool + k);
    }
    b->dec_off[v] = (uint32_t)k;
    free(special);
}

/* Normalized added tokens are matched in normalized text, so in their normalized form. */
static void normalize_added(bpe_impl *b) {
    for (size_t i = 0; i < b->n_added; i++) {
        bpe_added *a = &b->added[i];
        size_t len = 0;
        uint8_t *nf;
        if (!b->nfc || !a->normalized) continue;
        nf = u8_normalize(UNINORM_NFC, (const uint8_t *)a->content, a->n, NULL, &len);
        MTP_ASSERT(nf != NULL);
        free(a->content);
        a->content = xrealloc(nf, len + 1);
        a->content[len] = 0;
        a->n = len;
    }
}

static int load(ld *l, mtp_tokenizer *t, bpe_impl *b, const cJSON *root) {
    const char *type = NULL;
    if (!cJSON_IsObject(root)) return bad(l, "not a tokenizer.json (the top level is no object)");
    const cJSON *model = field(root, "model");
    if (get_type(l, model, &type, "model")) return -1;
    if (strcmp(type, "BPE") != 0) return bad(l, "model type \"%.40s\" is not supported (only BPE)", type);
    entry *ent = NULL;
    size_t n_ent = 0;
    int rc = read_vocab(l, field(model, "vocab"), &ent, &n_ent);
    if (!rc) rc = read_added(l, b, field(root, "added_tokens"));
    if (!rc) rc = build_pieces(l, t, b, ent, n_ent);
    free(ent);
    if (rc || read_model_options(l, &b->model, model) || read_merges(l, &b->model, field(model, "merges")) ||
        read_normalizer(l, b, field(root, "normalizer")) ||
        read_pretok(l, &b->pretok, field(root, "pre_tokenizer")) ||
        read_decoder(l, field(root, "decoder")) || read_post(l, t, field(root, "post_processor")))
        return -1;
    normalize_added(b);
    bpe_added_set_build(&b->raw_set, b->added, b->n_added, 0);
    bpe_added_set_build(&b->norm_set, b->added, b->n_added, 1);
    build_decode(t, b);
    static const char *const bos_names[] = {"<|begin_of_text|>", "<s>", "<|startoftext|>", "<|endoftext|>", NULL};
    static const char *const eos_names[] = {"<|end_of_text|>", "<|endoftext|>", "</s>", NULL};
    if (t->bos < 0) t->bos = special_named(b, bos_names);
    if (t->eos < 0) t->eos = special_named(b, eos_names);
    return 0;
}

int mtp_bpe_load(mtp_tokenizer *t, const char *json, size_t n, const char *what, mtp_err *err) {
    bpe_impl *b = xcalloc(1, sizeof *b);
    t->impl = b;
    t->free_impl = bpe_impl_free;
    t->encode = bpe_encode;
    t->token_bytes = bpe_token_bytes;
    t->repair = MTP_REPAIR_LOSSY;
    t->bos = t->eos = -1;
    t->adds_bos = 0;
    ld l = {what, err};
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, n, &end, 0);
    if (!root)
        return bad(&l, "not valid JSON (at byte %zu)", end && end >= json ? (size_t)(end - json) : (size_t)0);
    while (end < json + n && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r')) end++;
    if (end != json + n && !(end == json + n - 1 && *end == 0)) {
        cJSON_Delete(root);
        return bad(&l, "not valid JSON (text after the end, at byte %zu)", (size_t)(end - json));
    }
    int rc = load(&l, t, b, root);
    cJSON_Delete(root);
    return rc;
}
