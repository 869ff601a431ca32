/* protobuf.c: see protobuf.h. The format: each field is a varint key (number << 3 | wire
 * type) followed by a varint, 8 or 4 little-endian bytes, or a varint length and that
 * many bytes (strings, bytes, nested messages). */
#include "text/protobuf.h"

#include <string.h>

static int varint(mtp_pb *r, uint64_t *v) {
    uint64_t x = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (r->p == r->end) return -1;
        uint8_t b = *r->p++;
        if (shift == 63 && b > 1) return -1; /* more than 64 bits */
        x |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

int mtp_pb_next(mtp_pb *r, mtp_pb_field *f, const char **why) {
    if (r->p == r->end) return 0;
    uint64_t key;
    if (varint(r, &key)) return *why = "truncated or overlong varint", -1;
    if (key >> 3 == 0 || key >> 3 > 0x1FFFFFFF) return *why = "bad field number", -1;
    f->number = (uint32_t)(key >> 3);
    f->wire = (int)(key & 7);
    f->data = NULL;
    size_t left;
    switch (f->wire) {
    case MTP_PB_VARINT:
        if (varint(r, &f->u)) return *why = "truncated or overlong varint", -1;
        return 1;
    case MTP_PB_I64:
    case MTP_PB_I32: {
        size_t k = f->wire == MTP_PB_I64 ? 8 : 4;
        if ((size_t)(r->end - r->p) < k) return *why = "truncated fixed-size field", -1;
        f->u = 0;
        for (size_t i = 0; i < k; i++) f->u |= (uint64_t)r->p[i] << (8 * i);
        r->p += k;
        return 1;
    }
    case MTP_PB_LEN:
        if (varint(r, &f->u)) return *why = "truncated or overlong varint", -1;
        left = (size_t)(r->end - r->p);
        if (f->u > left) return *why = "length past the end", -1;
        f->data = r->p;
        r->p += f->u;
        return 1;
    default: return *why = "unsupported wire type", -1;
    }
}

float mtp_pb_float(const mtp_pb_field *f) {
    uint32_t b = (uint32_t)f->u;
    float x;
    memcpy(&x, &b, sizeof x);
    return x;
}
