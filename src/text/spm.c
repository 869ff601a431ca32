/* spm.c: loads a SentencePiece model (tokenizer.model: a serialized ModelProto) for the
 * tokenizer layer, checking what SentencePiece 0.1.97 checks when it loads one (empty or
 * duplicate pieces, one unknown piece, byte pieces exactly when byte_fallback) and more
 * (every length, wire type and id), and refusing what it does not implement (WORD and CHAR
 * models, a denormalizer). Encoding is spm_normalize.c then spm_encode.c; decoding is a
 * table of surfaces built here, which tokenizer.c concatenates and repairs.
 * Field numbers are those of sentencepiece_model.proto. */
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "text/protobuf.h"
#include "text/spm.h"
#include "text/utf8.h"

static const char SPACE[] = "\xe2\x96\x81"; /* U+2581, SentencePiece's visible space */

typedef struct {
    int model_type, byte_fallback, treat_ws_suffix;
    int64_t ids[4]; /* trainer_spec unk_id, bos_id, eos_id, pad_id as stored (checked) */
    int has_id[4];
    /* unk, bos, eos piece names and the unknown surface: (pointer, length) into the file */
    const uint8_t *name[3];
    size_t name_len[3];
    const uint8_t *unk_surface;
    size_t unk_surface_len;
    int has_unk_surface;
    int add_dummy_prefix, remove_extra_ws, escape_ws;
    const uint8_t *charsmap;
    size_t charsmap_len;
    int denormalizer;
} spec;

typedef struct {
    const char *what, *why;
    const uint8_t *base;
    mtp_err *err;
} ctx;

static int bad(ctx *c, const uint8_t *at, const char *msg) {
    return mtp_fail(c->err, "%s: not a valid SentencePiece model: %s (at byte %zu)", c->what, msg,
                    (size_t)(at - c->base));
}

/* Each field of a message must come with its wire type. */
static int want(ctx *c, const mtp_pb *r, const mtp_pb_field *f, int wire, const char *field) {
    if (f->wire == wire) return 0;
    char msg[96];
    snprintf(msg, sizeof msg, "%s has the wrong wire type", field);
    return bad(c, r->p, msg);
}

static int next(ctx *c, mtp_pb *r, mtp_pb_field *f) {
    int k = mtp_pb_next(r, f, &c->why);
    if (k < 0) return bad(c, r->p, c->why), -1;
    return k;
}

static int parse_trainer(ctx *c, const uint8_t *p, size_t n, spec *s) {
    mtp_pb r = {p, p + n};
    mtp_pb_field f;
    int k;
    while ((k = next(c, &r, &f)) > 0) {
        switch (f.number) {
        case 3:
            if (want(c, &r, &f, MTP_PB_VARINT, "trainer_spec.model_type")) return -1;
            s->model_type = mtp_pb_int32(&f);
            break;
        case 24:
            if (want(c, &r, &f, MTP_PB_VARINT, "trainer_spec.treat_whitespace_as_suffix")) return -1;
            s->treat_ws_suffix = f.u != 0;
            break;
        case 35:
            if (want(c, &r, &f, MTP_PB_VARINT, "trainer_spec.byte_fallback")) return -1;
            s->byte_fallback = f.u != 0;
            break;
        case 40: case 41: case 42: case 43:
            if (want(c, &r, &f, MTP_PB_VARINT, "trainer_spec's unk/bos/eos/pad id")) return -1;
            s->ids[f.number - 40] = mtp_pb_int32(&f);
            s->has_id[f.number - 40] = 1;
            break;
        case 44:
            if (want(c, &r, &f, MTP_PB_LEN, "trainer_spec.unk_surface")) return -1;
            s->unk_surface = f.data, s->unk_surface_len = f.u, s->has_unk_surface = 1;
            break;
        case 45: case 46: case 47:
            if (want(c, &r, &f, MTP_PB_LEN, "trainer_spec's unk/bos/eos piece")) return -1;
            s->name[f.number - 45] = f.data, s->name_len[f.number - 45] = f.u;
            break;
        default: break; /* training options: they do not change how text is encoded */
        }
    }
    return k;
}

static int parse_normalizer(ctx *c, const uint8_t *p, size_t n, spec *s, int denorm) {
    mtp_pb r = {p, p + n};
    mtp_pb_field f;
    int k;
    while ((k = next(c, &r, &f)) > 0) {
        switch (f.number) {
        case 2:
            if (want(c, &r, &f, MTP_PB_LEN, "normalizer_spec.precompiled_charsmap")) return -1;
            if (denorm) s->denormalizer |= f.u > 0;
            else s->charsmap = f.data, s->charsmap_len = f.u;
            break;
        case 3: case 4: case 5:
            if (want(c, &r, &f, MTP_PB_VARINT, "a normalizer_spec flag")) return -1;
            if (denorm) break;
            if (f.number == 3) s->add_dummy_prefix = f.u != 0;
            if (f.number == 4) s->remove_extra_ws = f.u != 0;
            if (f.number == 5) s->escape_ws = f.u != 0;
            break;
        case 1: case 6:
            if (want(c, &r, &f, MTP_PB_LEN, "normalizer_spec's name or rules")) return -1;
            break; /* the name and the rules' source: the charsmap is what they compile to */
        default: break;
        }
    }
    return k;
}

/* One ModelProto.SentencePiece into piece i. */
static int parse_piece(ctx *c, spm_model *m, const uint8_t *p, size_t n, int i) {
    mtp_pb r = {p, p + n};
    mtp_pb_field f;
    int k, type = SPM_NORMAL;
    const uint8_t *text = NULL;
    size_t len = 0;
    float score = 0;
    while ((k = next(c, &r, &f)) > 0) {
        if (f.number == 1) {
            if (want(c, &r, &f, MTP_PB_LEN, "piece")) return -1;
            text = f.data, len = f.u;
        } else if (f.number == 2) {
            if (want(c, &r, &f, MTP_PB_I32, "piece score")) return -1;
            score = mtp_pb_float(&f);
        } else if (f.number == 3) {
            if (want(c, &r, &f, MTP_PB_VARINT, "piece type")) return -1;
            if (f.u < SPM_NORMAL || f.u > SPM_BYTE) return bad(c, r.p, "unknown piece type");
            type = (int)f.u;
        }
    }
    if (k < 0) return -1;
    if (!len) return bad(c, p, "empty piece");
    if (memchr(text, 0, len)) return bad(c, p, "a piece holds a NUL byte");
    m->piece[i] = xmalloc(len + 1);
    memcpy(m->piece[i], text, len);
    m->piece[i][len] = 0;
    m->len[i] = (uint32_t)len;
    m->score[i] = score;
    m->type[i] = (uint8_t)type;
    return 0;
}

static void model_free(void *impl) {
    spm_model *m = impl;
    if (!m) return;
    for (int i = 0; i < m->n; i++) {
        free(m->piece[i]);
        free(m->surface[i]);
    }
    free(m->piece);
    free(m->len);
    free(m->score);
    free(m->type);
    free(m->surface);
    free(m->surface_len);
    mtp_strmap_free(&m->normal);
    mtp_strmap_free(&m->reserved);
    mtp_strmap_free(&m->user);
    mtp_strmap_free(&m->lattice);
    mtp_charsmap_free(&m->charsmap);
    free(m);
}

/* "<0xNN>" (upper-case hex, as ByteToPiece writes it) -> NN, else -1. */
static int byte_of_piece(const char *s, size_t n) {
    static const char HEX[] = "0123456789ABCDEF";
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return -1;
    const char *hi = memchr(HEX, s[3], 16), *lo = memchr(HEX, s[4], 16);
    if (!hi || !lo || !s[3] || !s[4]) return -1;
    return (int)((hi - HEX) * 16 + (lo - HEX));
}

/* Every prefix of piece i into map: -1 for a proper prefix (unless it is a piece itself). */
static void add_prefixes(mtp_strmap *map, const spm_model *m, int i) {
    int added;
    for (uint32_t l = 1; l < m->len[i]; l++) mtp_strmap_upsert(map, m->piece[i], l, -1, &added);
    mtp_strmap_slot *s = mtp_strmap_upsert(map, m->piece[i], m->len[i], i, &added);
    if (s->value < 0) s->value = i;
}

/* What id decodes to (before the first-piece rule, which spm_token_bytes applies). */
static void make_surface(spm_model *m, const spec *s, int i) {
    const char *p = m->piece[i];
    size_t n = m->len[i], o = 0;
    char *out = xmalloc(n + 8 + s->unk_surface_len);
    if (m->type[i] == SPM_CONTROL) {
        /* invisible */
    } else if (m->type[i] == SPM_UNKNOWN) {
        memcpy(out, s->has_unk_surface ? (const char *)s->unk_surface : " \xe2\x81\x87 ",
               o = s->has_unk_surface ? s->unk_surface_len : 5);
    } else if (m->type[i] == SPM_BYTE) {
        out[o++] = (char)byte_of_piece(p, n);
    } else {
        for (size_t j = 0; j < n;) {
            if (n - j >= 3 && !memcmp(p + j, SPACE, 3)) out[o++] = ' ', j += 3;
            else out[o++] = p[j++];
        }
    }
    out[o] = 0;
    m->surface[i] = out;
    m->surface_len[i] = (uint32_t)o;
}

static int find_reserved(const spm_model *m, const uint8_t *name, size_t n, const char *dflt) {
    if (!name || !n) name = (const uint8_t *)dflt, n = strlen(dflt);
    const mtp_strmap_slot *sl = mtp_strmap_find(&m->reserved, (const char *)name, n, mtp_fnv((const char *)name, n));
    if (sl) return sl->value;
    sl = mtp_strmap_find(&m->normal, (const char *)name, n, mtp_fnv((const char *)name, n));
    return sl ? sl->value : m->unk;
}

static int spm_encode(const mtp_tokenizer *t, const char *text, size_t n, mtp_tokbuf *out, mtp_err *err) {
    const spm_model *m = t->impl;
    char *norm;
    size_t nn;
    if (spm_normalize(m, text, n, &norm, &nn, err)) return -1;
    if (nn > SPM_MAX_TEXT) {
        free(norm);
        return mtp_fail(err, "a text of %zu bytes (%zu normalized): SentencePiece encodes at most 1 GiB at once",
                        n, nn);
    }
    spm_encode_normalized(m, norm, nn, out);
    free(norm);
    return 0;
}

/* SentencePiece's DecodeSentencePiece: at the start of a text the first piece's leading
 * U+2581 is the dummy prefix (or, removing extra whitespace, any leading space) and is
 * dropped; with add_dummy_prefix only one is dropped. */
static const char *spm_token_bytes(const mtp_tokenizer *t, mtp_token id, int *first, size_t *n) {
    const spm_model *m = t->impl;
    const char *s = m->surface[id];
    *n = m->surface_len[id];
    int t_ = m->type[id];
    if (*first && t_ != SPM_CONTROL && t_ != SPM_UNKNOWN && t_ != SPM_BYTE &&
        (m->add_dummy_prefix || m->remove_extra_ws) && m->len[id] >= 3 &&
        !memcmp(m->piece[id], SPACE, 3)) {
        s++, (*n)--;
        if (!m->remove_extra_ws) *first = 0;
    }
    return s;
}

int mtp_spm_load(mtp_tokenizer *t, const uint8_t *data, size_t n, const char *what, mtp_err *err) {
    ctx c = {what, NULL, data, err};
    spec s = {.model_type = SPM_UNIGRAM, .add_dummy_prefix = 1, .remove_extra_ws = 1, .escape_ws = 1};
    spm_model *m = xcalloc(1, sizeof *m);
    t->impl = m;
    t->free_impl = model_free;
    t->encode = spm_encode;
    t->token_bytes = spm_token_bytes;
    t->repair = MTP_REPAIR_PER_BYTE;
    t->empty_splits = 1;

    /* First pass: count the pieces and read the specs. */
    mtp_pb r = {data, data + n};
    mtp_pb_field f;
    int k;
    size_t count = 0;
    while ((k = next(&c, &r, &f)) > 0) {
        if (f.number == 1) {
            if (want(&c, &r, &f, MTP_PB_LEN, "pieces")) return -1;
            count++;
        } else if (f.number == 2) {
            if (want(&c, &r, &f, MTP_PB_LEN, "trainer_spec") || parse_trainer(&c, f.data, f.u, &s)) return -1;
        } else if (f.number == 3 || f.number == 5) {
            if (want(&c, &r, &f, MTP_PB_LEN, "normalizer_spec") ||
                parse_normalizer(&c, f.data, f.u, &s, f.number == 5))
                return -1;
        }
    }
    if (k < 0) return -1;
    if (!count) return mtp_fail(err, "%s: not a SentencePiece model: no pieces", what);
    if (count > INT32_MAX / 2) return mtp_fail(err, "%s: too many pieces", what);
    if (s.model_type != SPM_BPE && s.model_type != SPM_UNIGRAM)
        return mtp_fail(err, "%s: SentencePiece model_type %d is not supported (only BPE and unigram)",
                        what, s.model_type);
    if (s.denormalizer)
        return mtp_fail(err, "%s: SentencePiece denormalization rules are not supported", what);
    m->n = (int)count;
    m->piece = xcalloc(count, sizeof *m->piece);
    m->len = xcalloc(count, sizeof *m->len);
    m->score = xcalloc(count, sizeof *m->score);
    m->type = xcalloc(count, 1);
    m->surface = xcalloc(count, sizeof *m->surface);
    m->surface_len = xcalloc(count, sizeof *m->surface_len);

    /* Second pass: the pieces. */
    r = (mtp_pb){data, data + n};
    int i = 0;
    while ((k = next(&c, &r, &f)) > 0)
        if (f.number == 1 && parse_piece(&c, m, f.data, f.u, i++)) return -1;
    if (k < 0) return -1;

    mtp_strmap_init(&m->normal, count);
    mtp_strmap_init(&m->reserved, 300);
    m->unk = -1;
    int n_bytes = 0;
    for (i = 0; i < 256; i++) m->byte_id[i] = -1;
    for (i = 0; i < m->n; i++) {
        int ty = m->type[i];
        int normal = ty == SPM_NORMAL || ty == SPM_USER_DEFINED || ty == SPM_UNUSED;
        if (mtp_strmap_add(normal ? &m->normal : &m->reserved, m->piece[i], m->len[i], i))
            return mtp_fail(err, "%s: SentencePiece model: piece %d (\"%.40s\") is defined twice", what, i, m->piece[i]);
        if (ty == SPM_USER_DEFINED) m->has_user = 1, add_prefixes(&m->user, m, i);
        if (ty == SPM_UNUSED) m->has_unused = 1;
        if (ty == SPM_UNKNOWN) {
            if (m->unk >= 0) return mtp_fail(err, "%s: SentencePiece model: two unknown pieces (%d, %d)", what, m->unk, i);
            m->unk = i;
        }
        if (ty == SPM_BYTE) {
            int b = byte_of_piece(m->piece[i], m->len[i]);
            if (!s.byte_fallback)
                return mtp_fail(err, "%s: SentencePiece model: byte piece %d but byte_fallback is off", what, i);
            if (b < 0) return mtp_fail(err, "%s: SentencePiece model: byte piece %d is not <0xNN>", what, i);
            if (m->byte_id[b] < 0) n_bytes++;
            m->byte_id[b] = i;
        }
    }
    if (m->unk < 0) return mtp_fail(err, "%s: SentencePiece model: no unknown piece", what);
    if (s.byte_fallback && n_bytes != 256)
        return mtp_fail(err, "%s: SentencePiece model: byte_fallback with %d of the 256 byte pieces", what, n_bytes);
    static const char *ID_NAMES[4] = {"unk_id", "bos_id", "eos_id", "pad_id"};
    for (int j = 0; j < 4; j++)
        if (s.has_id[j] && s.ids[j] >= m->n)
            return mtp_fail(err, "%s: SentencePiece model: trainer_spec.%s %lld is out of range (%d pieces)",
                            what, ID_NAMES[j], (long long)s.ids[j], m->n);
    if (s.charsmap_len) {
        const char *why;
        if (mtp_charsmap_init(&m->charsmap, s.charsmap, s.charsmap_len, &why))
            return mtp_fail(err, "%s: SentencePiece model: %s", what, why);
        m->has_charsmap = 1;
    }

    m->model_type = s.model_type;
    m->byte_fallback = s.byte_fallback;
    m->treat_ws_suffix = s.treat_ws_suffix;
    m->add_dummy_prefix = s.add_dummy_prefix;
    m->remove_extra_ws = s.remove_extra_ws;
    m->escape_ws = s.escape_ws;
    m->min_score = FLT_MAX;
    m->max_score = FLT_MIN; /* sic: SentencePiece starts here (the smallest positive float) */
    for (i = 0; i < m->n; i++) {
        make_surface(m, &s, i);
        if (m->type[i] == SPM_NORMAL) {
            if (m->score[i] < m->min_score) m->min_score = m->score[i];
            if (m->score[i] > m->max_score) m->max_score = m->score[i];
        }
    }
    for (i = 0; i < 128; i++) m->splits[i] = 1;
    for (i = 0; i < m->n; i++)
        if (m->type[i] == SPM_NORMAL || m->type[i] == SPM_USER_DEFINED || m->type[i] == SPM_UNUSED)
            for (uint32_t j = 0; j < m->len[i]; j++) m->splits[(uint8_t)m->piece[i][j]] = 0;
    if (m->model_type == SPM_UNIGRAM) {
        mtp_strmap_init(&m->lattice, 4 * count);
        for (i = 0; i < m->n; i++)
            if (m->type[i] == SPM_NORMAL || m->type[i] == SPM_USER_DEFINED || m->type[i] == SPM_UNUSED)
                add_prefixes(&m->lattice, m, i);
    }

    t->vocab_size = m->n;
    t->pieces = m->piece;
    /* SentencePiece's bos_id()/eos_id(): the piece so named, when it is a control piece */
    int bos = find_reserved(m, s.name[1], s.name_len[1], "<s>");
    int eos = find_reserved(m, s.name[2], s.name_len[2], "</s>");
    t->bos = m->type[bos] == SPM_CONTROL ? bos : -1;
    t->eos = m->type[eos] == SPM_CONTROL ? eos : -1;
    t->adds_bos = t->bos >= 0;
    return 0;
}
