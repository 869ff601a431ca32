/* protobuf.h: a reader of the protobuf wire format, enough for SentencePiece's ModelProto:
 * walks the fields of one message in order. It knows nothing of schemas: the caller
 * switches on field numbers and checks each wire type it expects. Every length is checked
 * against the bytes that remain, so a corrupt message is an error, never a read past its end. */
#ifndef MTP_TEXT_PROTOBUF_H
#define MTP_TEXT_PROTOBUF_H

#include <stddef.h>
#include <stdint.h>

enum { MTP_PB_VARINT = 0, MTP_PB_I64 = 1, MTP_PB_LEN = 2, MTP_PB_I32 = 5 };

typedef struct {
    const uint8_t *p, *end;
} mtp_pb;

typedef struct {
    uint32_t number; /* field number */
    int wire;        /* MTP_PB_* */
    uint64_t u;      /* VARINT, I64, I32: the value */
    const uint8_t *data; /* LEN: the bytes (u of them) */
} mtp_pb_field;

/* The next field: 1, 0 at the end of the message, or -1 with a reason in *why (a static
 * string: "truncated varint", "length past the end", ...). Groups (wire types 3, 4) and
 * unknown wire types are errors: ModelProto has none. */
int mtp_pb_next(mtp_pb *r, mtp_pb_field *f, const char **why);

/* The field's value as the scalar types reinterpret it. */
static inline int32_t mtp_pb_int32(const mtp_pb_field *f) { return (int32_t)(uint32_t)f->u; }
float mtp_pb_float(const mtp_pb_field *f);

#endif
