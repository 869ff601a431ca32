/* wmat.c: see wmat.h. */
#include "kernels/wmat.h"

#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "kernels/bf16.h"
#include "core/util.h"

void mtp_wmat_from_f32(mtp_wmat *m, mtp_wtype t, const float *w, int C, int OC) {
    memset(m, 0, sizeof *m);
    m->type = t, m->C = C, m->OC = OC;
    if (t == MTP_F32) {
        m->f32 = w;
    } else if (t == MTP_BF16) {
        mtp_bf16_pack(&m->bf16, w, C, OC);
    } else {
        size_t nb = (size_t)(C + MTP_Q8_BLOCK - 1) / MTP_Q8_BLOCK;
        int8_t *q = xmalloc((size_t)OC * C);
        uint16_t *s = xmalloc((size_t)OC * nb * sizeof *s);
        mtp_q8_quantize(q, s, w, C, OC);
        mtp_q8_pack(&m->q8, q, s, C, OC);
        free(q);
        free(s);
    }
}

void mtp_wmat_from_bf16(mtp_wmat *m, const uint16_t *w, int C, int OC) {
    memset(m, 0, sizeof *m);
    m->type = MTP_BF16, m->C = C, m->OC = OC;
    mtp_bf16_pack_bf16(&m->bf16, w, C, OC);
}

void mtp_wmat_from_q8(mtp_wmat *m, const int8_t *q, const uint16_t *scale, int C, int OC) {
    memset(m, 0, sizeof *m);
    m->type = MTP_Q8, m->C = C, m->OC = OC;
    mtp_q8_pack(&m->q8, q, scale, C, OC);
}

void mtp_wmat_free(mtp_wmat *m) {
    if (m->type == MTP_BF16) mtp_bf16_free(&m->bf16);
    if (m->type == MTP_Q8) mtp_q8_free(&m->q8);
    memset(m, 0, sizeof *m);
}

size_t mtp_wmat_bytes(const mtp_wmat *m) {
    switch (m->type) {
    case MTP_F32: return (size_t)m->C * m->OC * sizeof(float);
    case MTP_BF16: return mtp_bf16_bytes(&m->bf16);
    default: return mtp_q8_bytes(&m->q8);
    }
}

size_t mtp_wmat_scratch(mtp_wtype t, int R, int C) {
    switch (t) {
    case MTP_F32: return 0;
    case MTP_BF16: return mtp_bf16_scratch(R, C) * sizeof(uint16_t);
    default: return mtp_q8_scratch(R, C);
    }
}

void mtp_wmat_matmul(float *out, const float *x, const mtp_wmat *m, int R, float beta, void *scratch) {
    switch (m->type) {
    case MTP_F32: mtp_matmul_rows(out, x, m->f32, R, m->C, m->OC, beta); break;
    case MTP_BF16: mtp_matmul_rows_bf16(out, x, &m->bf16, R, beta, scratch); break;
    default: mtp_matmul_rows_q8(out, x, &m->q8, R, beta, scratch); break;
    }
}

void mtp_wmat_matmul_pair(float *out_a, float *out_b, const float *x, const mtp_wmat *a, const mtp_wmat *b, int R,
                          void *scratch) {
    MTP_ASSERT(a->type == b->type && a->C == b->C);
    if (a->type == MTP_BF16) {
        mtp_matmul_rows_bf16_pair(out_a, out_b, x, &a->bf16, &b->bf16, R, scratch);
        return;
    }
    mtp_wmat_matmul(out_a, x, a, R, 0, scratch);
    mtp_wmat_matmul(out_b, x, b, R, 0, scratch);
}

const char *mtp_wtype_kernels(mtp_wtype t) {
    switch (t) {
    case MTP_F32: return mtp_decode_avx512_available() ? "AVX-512" : "portable";
    case MTP_BF16: return mtp_bf16_path();
    default: return mtp_q8_path();
    }
}

size_t mtp_wrows_row_bytes(const mtp_wrows *t) {
    return (size_t)t->dim * (t->type == MTP_F32 ? 4 : t->type == MTP_BF16 ? 2 : 1);
}

void mtp_wrows_get(const mtp_wrows *t, int row, float *out) {
    MTP_ASSERT(row >= 0 && row < t->n);
    const uint8_t *p = (const uint8_t *)t->data + (size_t)row * mtp_wrows_row_bytes(t);
    if (t->type == MTP_F32) {
        memcpy(out, p, (size_t)t->dim * sizeof(float));
    } else if (t->type == MTP_BF16) {
        for (int k = 0; k < t->dim; k++) out[k] = mtp_bf16_value((uint16_t)(p[2 * k] | p[2 * k + 1] << 8));
    } else {
        size_t nb = (size_t)(t->dim + MTP_Q8_BLOCK - 1) / MTP_Q8_BLOCK;
        const uint8_t *s = (const uint8_t *)t->scale + (size_t)row * nb * 2;
        for (int k = 0; k < t->dim; k++) {
            size_t b = (size_t)k / MTP_Q8_BLOCK;
            out[k] = (float)(int8_t)p[k] * mtp_f16_to_f32((uint16_t)(s[2 * b] | s[2 * b + 1] << 8));
        }
    }
}

const char *mtp_wtype_name(mtp_wtype t) { return t == MTP_F32 ? "f32" : t == MTP_BF16 ? "bf16" : "q8"; }

int mtp_wtype_parse(const char *s, mtp_wtype *t) {
    for (int i = MTP_F32; i <= MTP_Q8; i++)
        if (!strcmp(s, mtp_wtype_name((mtp_wtype)i))) {
            *t = (mtp_wtype)i;
            return 0;
        }
    return -1;
}
