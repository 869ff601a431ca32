/* test_safetensors.c: checks the safetensors reader and writer (src/formats/safetensors.c):
 * write/read round trips, hand-made BF16/F16/unaligned files, and a corpus of malformed
 * files that must each be refused with a message naming the file. It does not test
 * model loading (that lives with the model tests). Runs in a fresh temp directory. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "formats/safetensors.h"

static char dir[1024], path[1400];
static int group_start_passed, group_start_failed; /* the counters when the group began */

static void group_done(const char *name) {
    printf("%-28s %d ok, %d failed\n", name, check_passed - group_start_passed, check_failed - group_start_failed);
    group_start_passed = check_passed, group_start_failed = check_failed;
}

static void write_bytes(const char *p, const void *data, size_t n) {
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) {
        perror(p);
        exit(1);
    }
}

/* A file made of: 8-byte little-endian hdr_len, the header text, then data_len bytes. */
static void craft_len(const char *p, uint64_t hdr_len, const char *header, size_t data_len) {
    size_t hl = strlen(header), n = 8 + hl + data_len;
    unsigned char *buf = malloc(n);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(hdr_len >> (8 * i));
    memcpy(buf + 8, header, hl);
    for (size_t i = 0; i < data_len; i++) buf[8 + hl + i] = (unsigned char)(i * 7 + 1);
    write_bytes(p, buf, n);
    free(buf);
}

static void craft(const char *p, const char *header, size_t data_len) {
    craft_len(p, strlen(header), header, data_len);
}

/* path must be refused: rc -1, a one-line message that starts with path and contains
 * expect (NULL: any reason), and *st left zeroed. */
static void expect_refused(const char *what, const char *expect) {
    static const mtp_safetensors zero;
    mtp_safetensors st;
    mtp_err err = {{0}};
    int rc = mtp_st_open(&st, path, &err);
    char label[1024];
    snprintf(label, sizeof label, "%s: refused (rc=%d, msg='%s')", what, rc, err.msg);
    CHECK(rc == -1, "%s", label);
    CHECK(strstr(err.msg, path) == err.msg && !strchr(err.msg, '\n'), "%s", label);
    CHECK(!expect || strstr(err.msg, expect), "%s", label);
    CHECK(memcmp(&st, &zero, sizeof st) == 0, "%s", label);
    if (rc == 0) mtp_st_close(&st);
}

static void set_path(const char *name) { snprintf(path, sizeof path, "%s/%s", dir, name); }

static int open_ok(mtp_safetensors *st, const char *what) {
    mtp_err err = {{0}};
    int rc = mtp_st_open(st, path, &err);
    char label[1024];
    snprintf(label, sizeof label, "%s: opens (%s)", what, err.msg);
    CHECK(rc == 0, "%s", label);
    return rc;
}

static void test_round_trip(void) {
    float w[12], s = 42.5f, b[8];
    for (int i = 0; i < 12; i++) w[i] = i * 0.25f - 1.0f;
    for (int i = 0; i < 8; i++) b[i] = 1.0f / (float)(i + 3);
    const mtp_st_entry entries[] = {
        {"layers.0/attn \"q\"", w, 2, {3, 4}, MTP_DT_F32},
        {"scalar", &s, 0, {0}, MTP_DT_F32},
        {"empty", NULL, 2, {0, 5}, MTP_DT_F32},
        {"b", b, 3, {2, 2, 2}, MTP_DT_F32},
    };
    const char *meta[] = {"format", "pt", "note", "quote \" backslash \\ newline \n tab \t unicode \xc3\xa9"};
    set_path("rt.safetensors");
    mtp_err err = {{0}};
    CHECK(mtp_st_write(path, entries, 4, meta, 2, &err) == 0, "round trip: write");

    FILE *f = fopen(path, "rb");
    unsigned char h[8] = {0};
    CHECK(f && fread(h, 1, 8, f) == 8, "round trip: read header length");
    if (f) fclose(f);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | h[i];
    CHECK(n % 8 == 0, "round trip: header padded to 8 bytes");

    mtp_safetensors st;
    if (open_ok(&st, "round trip") != 0) return;
    CHECK(st.n_tensors == 4, "round trip: tensor count");
    for (int i = 0; i < 4; i++) {
        const mtp_st_entry *e = &entries[i];
        const mtp_st_tensor *t = mtp_st_find(&st, e->name);
        CHECK(t != NULL && t == &st.tensors[i], "round trip: find, in entry order");
        if (!t) continue;
        CHECK(t->dtype == MTP_DT_F32 && t->ndim == e->ndim, "round trip: dtype and ndim");
        size_t numel = 1;
        for (int d = 0; d < e->ndim; d++) {
            CHECK(t->shape[d] == e->shape[d], "round trip: shape");
            numel *= (size_t)e->shape[d];
        }
        CHECK(t->numel == numel && t->nbytes == numel * 4, "round trip: numel and nbytes");
        float out[16];
        CHECK(mtp_st_to_f32(&st, t, out, &err) == 0, "round trip: to_f32");
        CHECK(numel == 0 || memcmp(out, e->data, numel * 4) == 0, "round trip: values bit-exact");
    }
    CHECK(mtp_st_find(&st, "missing") == NULL, "round trip: find missing is NULL");
    CHECK(st.n_meta == 2, "round trip: metadata count");
    for (int k = 0; k < 2; k++) {
        const char *v = mtp_st_meta(&st, meta[2 * k]);
        CHECK(v && strcmp(v, meta[2 * k + 1]) == 0, "round trip: metadata value");
    }
    CHECK(mtp_st_meta(&st, "missing") == NULL, "round trip: meta missing is NULL");
    mtp_st_close(&st);
    mtp_st_close(&st); /* closing a closed (zeroed) struct is safe */

    /* Overwriting replaces the file; no temp file is left behind. */
    float z = -7.0f;
    const mtp_st_entry one = {"z", &z, 1, {1}, MTP_DT_F32};
    CHECK(mtp_st_write(path, &one, 1, NULL, 0, &err) == 0, "round trip: overwrite");
    if (open_ok(&st, "overwrite") == 0) {
        float out = 0;
        CHECK(st.n_tensors == 1 && st.n_meta == 0 && mtp_st_find(&st, "z"), "overwrite: only the new tensor");
        CHECK(mtp_st_to_f32(&st, &st.tensors[0], &out, &err) == 0 && out == -7.0f, "overwrite: value");
        mtp_st_close(&st);
    }
    DIR *dp = opendir(dir);
    int tmp_left = 0;
    for (struct dirent *de; dp && (de = readdir(dp));) tmp_left |= strstr(de->d_name, ".tmp.") != NULL;
    if (dp) closedir(dp);
    CHECK(!tmp_left, "round trip: no temp file left");

    /* No tensors at all is a valid file. */
    set_path("none.safetensors");
    CHECK(mtp_st_write(path, NULL, 0, NULL, 0, &err) == 0, "empty: write");
    if (open_ok(&st, "empty") == 0) {
        CHECK(st.n_tensors == 0, "empty: no tensors");
        mtp_st_close(&st);
    }
    group_done("round trip");
}

/* Typed entries and the streaming writer: I8 and F16 bytes land as given, fill runs once
 * per entry without data, in order; a failing fill leaves no file. */
static int fill_calls;
static int fill_ramp(void *ctx, int i, void *buf, mtp_err *err) {
    (void)ctx, (void)err;
    fill_calls++;
    for (int k = 0; k < 6; k++) ((int8_t *)buf)[k] = (int8_t)(k * (i + 1) - 3);
    return 0;
}
static int fill_fails(void *ctx, int i, void *buf, mtp_err *err) {
    (void)ctx, (void)buf;
    return mtp_fail(err, "fill %d refused", i);
}

static void test_stream(void) {
    mtp_err err;
    mtp_safetensors st;
    set_path("stream.safetensors");
    uint16_t h[2] = {0x3c00, 0xc000}; /* 1, -2 */
    const mtp_st_entry e[] = {{"q", NULL, 2, {2, 3}, MTP_DT_I8}, {"h", h, 1, {2}, MTP_DT_F16},
                              {"r", NULL, 1, {6}, MTP_DT_I8}};
    fill_calls = 0;
    CHECK(mtp_st_write_stream(path, e, 3, NULL, 0, fill_ramp, NULL, &err) == 0, "stream: write: %s", err.msg);
    CHECK(fill_calls == 2, "stream: fill ran %d times, expected 2", fill_calls);
    if (open_ok(&st, "stream") == 0) {
        const mtp_st_tensor *q = mtp_st_find(&st, "q"), *r = mtp_st_find(&st, "r"), *ht = mtp_st_find(&st, "h");
        CHECK(q && q->dtype == MTP_DT_I8 && q->nbytes == 6 && (int8_t)q->data[5] == 2, "stream: I8 tensor q");
        CHECK(r && (int8_t)r->data[5] == 12 && (int8_t)r->data[0] == -3, "stream: I8 tensor r from its own fill");
        float hf[2];
        CHECK(ht && mtp_st_to_f32(&st, ht, hf, &err) == 0 && hf[0] == 1 && hf[1] == -2, "stream: F16 as given");
        mtp_st_close(&st);
    }
    set_path("stream_fail.safetensors");
    CHECK(mtp_st_write_stream(path, e, 3, NULL, 0, fill_fails, NULL, &err) == -1 && strstr(err.msg, "fill 0"),
          "stream: a failing fill fails the write");
    CHECK(access(path, F_OK) != 0, "stream: a failed write leaves no file");
    group_done("stream");
}

static void test_writer_errors(void) {
    float x[4] = {0};
    const char *const meta[] = {"k", "a", "k", "b"};
    const mtp_st_entry dup[] = {{"a", x, 1, {1}, MTP_DT_F32}, {"a", x, 1, {1}, MTP_DT_F32}};
    const mtp_st_entry bad_ndim = {"a", x, MTP_ST_MAX_DIMS + 1, {1, 1, 1, 1, 1, 1, 1, 1}, MTP_DT_F32};
    const mtp_st_entry neg = {"a", x, 1, {-1}, MTP_DT_F32};
    const mtp_st_entry reserved = {"__metadata__", x, 1, {1}, MTP_DT_F32};
    struct {
        const char *what;
        const mtp_st_entry *e;
        int n, n_meta;
    } cases[] = {
        {"duplicate names", dup, 2, 0}, {"ndim 9", &bad_ndim, 1, 0},     {"negative dim", &neg, 1, 0},
        {"reserved name", &reserved, 1, 0}, {"duplicate metadata key", dup, 1, 2},
    };
    set_path("werr.safetensors");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mtp_err err = {{0}};
        int rc = mtp_st_write(path, cases[i].e, cases[i].n, meta, cases[i].n_meta, &err);
        CHECK(rc == -1 && strstr(err.msg, path) == err.msg, "%s", cases[i].what);
        CHECK(access(path, F_OK) != 0, "%s", cases[i].what);
    }
    char nodir[1100];
    snprintf(nodir, sizeof nodir, "%s/no/such/dir.safetensors", dir);
    mtp_err err = {{0}};
    CHECK(mtp_st_write(nodir, dup, 1, NULL, 0, &err) == -1 && strstr(err.msg, nodir), "unwritable path");
    group_done("writer errors");
}

static void test_half_types(void) {
    mtp_safetensors st;
    mtp_err err = {{0}};
    /* BF16: 1, -2, 0.5, 3.140625 (all exact) */
    const unsigned char bf[] = {0x80, 0x3f, 0x00, 0xc0, 0x00, 0x3f, 0x49, 0x40};
    const float bf_want[] = {1.0f, -2.0f, 0.5f, 3.140625f};
    /* F16: 1, -2, 65504, 2^-24, 1023*2^-24, +inf, -inf, NaN, -0, 0x3555 */
    const uint16_t hf[] = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x7c00, 0xfc00, 0x7e00, 0x8000, 0x3555};
    const char *header = "{\"b\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,8]},"
                         "\"h\":{\"dtype\":\"F16\",\"shape\":[10],\"data_offsets\":[8,28]},"
                         "\"i\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[28,32]}}";
    unsigned char data[32] = {0};
    memcpy(data, bf, 8);
    for (int i = 0; i < 10; i++) data[8 + 2 * i] = (unsigned char)hf[i], data[9 + 2 * i] = (unsigned char)(hf[i] >> 8);
    size_t hl = strlen(header);
    unsigned char *file = malloc(8 + hl + sizeof data);
    for (int i = 0; i < 8; i++) file[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(file + 8, header, hl);
    memcpy(file + 8 + hl, data, sizeof data);
    set_path("half.safetensors");
    write_bytes(path, file, 8 + hl + sizeof data);
    free(file);
    if (open_ok(&st, "bf16/f16") != 0) return;
    float out[10];
    const mtp_st_tensor *b = mtp_st_find(&st, "b"), *h = mtp_st_find(&st, "h"), *it = mtp_st_find(&st, "i");
    CHECK(b && b->dtype == MTP_DT_BF16 && b->numel == 4, "bf16: dtype and numel");
    CHECK(b && mtp_st_to_f32(&st, b, out, &err) == 0 && memcmp(out, bf_want, sizeof bf_want) == 0, "bf16: values");
    CHECK(h && h->dtype == MTP_DT_F16 && h->numel == 10, "f16: dtype and numel");
    if (h && mtp_st_to_f32(&st, h, out, &err) == 0) {
        CHECK(out[0] == 1.0f && out[1] == -2.0f && out[2] == 65504.0f, "f16: normal values");
        CHECK(out[3] == 0x1p-24f && out[4] == 1023 * 0x1p-24f, "f16: subnormals");
        CHECK(isinf(out[5]) && out[5] > 0 && isinf(out[6]) && out[6] < 0, "f16: infinities");
        CHECK(isnan(out[7]), "f16: nan");
        CHECK(out[8] == 0.0f && signbit(out[8]), "f16: negative zero");
        CHECK(out[9] == 0.333251953125f, "f16: 0x3555");
    } else {
        CHECK(0, "f16: to_f32");
    }
    CHECK(it && it->dtype == MTP_DT_I32 && it->ndim == 0 && it->numel == 1, "i32 scalar: parsed");
    err.msg[0] = 0;
    CHECK(it && mtp_st_to_f32(&st, it, out, &err) == -1 && strstr(err.msg, path) == err.msg &&
              strstr(err.msg, "'i'"),
          "i32: to_f32 refused, naming tensor and file");
    mtp_st_close(&st);

    /* Header length 13 puts the F32 data at an odd address; zero-size tensors in the
     * middle and at the end; whitespace around the JSON is allowed. */
    const float vals[3] = {1.5f, -0.25f, 1e30f};
    const char *h2 = " {\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
                     "\"e\":{\"dtype\":\"F16\",\"shape\":[0,4],\"data_offsets\":[12,12]},"
                     "\"e0\":{\"dtype\":\"I64\",\"shape\":[2,0],\"data_offsets\":[0,0]},"
                     "\"u\":{\"dtype\":\"U16\",\"shape\":[1],\"data_offsets\":[12,14]},"
                     "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[14,14]}} \n";
    hl = strlen(h2);
    file = malloc(8 + hl + 14);
    for (int i = 0; i < 8; i++) file[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(file + 8, h2, hl);
    memcpy(file + 8 + hl, vals, 12);
    memset(file + 8 + hl + 12, 0, 2);
    set_path("unaligned.safetensors");
    write_bytes(path, file, 8 + hl + 14);
    free(file);
    if (open_ok(&st, "unaligned") == 0) {
        const mtp_st_tensor *a = mtp_st_find(&st, "a");
        CHECK(a && mtp_st_to_f32(&st, a, out, &err) == 0 && memcmp(out, vals, 12) == 0, "unaligned f32: values");
        CHECK(st.n_tensors == 5 && strcmp(st.tensors[0].name, "e0") == 0 && strcmp(st.tensors[4].name, "z") == 0,
              "zero-size tensors: offset order");
        mtp_st_close(&st);
    }
    group_done("bf16/f16/unaligned");
}

static void test_malformed(void) {
    /* {what, header, a word of the expected message}; each file has a 4-byte data
     * section, and each header is valid but for the one fault named. */
    static const char *const bad[][3] = {
        {"not JSON", "{\"a\":", "not valid JSON"},
        {"not JSON (word)", "hello", "not valid JSON"},
        {"JSON array", "[]", "header is not a JSON object"},
        {"JSON string", "\"x\"", "header is not a JSON object"},
        {"JSON number", "42", "header is not a JSON object"},
        {"bytes after JSON", "{} x", "bytes after the JSON"},
        {"tensor not an object", "{\"a\":5}", "tensor 'a' is not a JSON object"},
        {"unknown dtype", "{\"a\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,4]}}", "dtype 'F64'"},
        {"dtype not a string", "{\"a\":{\"dtype\":4,\"shape\":[],\"data_offsets\":[0,4]}}", "no dtype"},
        {"missing dtype", "{\"a\":{\"shape\":[],\"data_offsets\":[0,4]}}", "no dtype"},
        {"shape negative", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", "shape holds"},
        {"shape non-integer", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", "shape holds"},
        {"shape huge", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,4]}}", "shape holds"},
        {"shape string", "{\"a\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", "shape holds"},
        {"shape overflow",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4096],\"data_offsets\":[0,4]}}", "overflows"},
        {"shape not array", "{\"a\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", "no shape"},
        {"missing shape", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", "no shape"},
        {"too many dims", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
         "9 dims"},
        {"offsets one value", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", "[begin, end]"},
        {"offsets three values", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}",
         "[begin, end]"},
        {"offsets not array", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":4}}", "[begin, end]"},
        {"offsets negative", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", "[begin, end]"},
        {"offsets non-integer", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4.5]}}",
         "[begin, end]"},
        {"missing offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", "[begin, end]"},
        {"begin > end", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", "begin > end"},
        {"offsets beyond data", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
         "outside the file"},
        {"length != numel*size", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}",
         "bytes but shape"},
        {"length not a multiple", "{\"a\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,3]}}",
         "bytes but shape"},
        {"trailing bytes", "{\"a\":{\"dtype\":\"U16\",\"shape\":[1],\"data_offsets\":[0,2]}}", "2 trailing bytes"},
        {"first not at 0", "{\"a\":{\"dtype\":\"U16\",\"shape\":[1],\"data_offsets\":[2,4]}}",
         "gap of 2 bytes before tensor 'a'"},
        {"gap between tensors",
         "{\"a\":{\"dtype\":\"U16\",\"shape\":[],\"data_offsets\":[0,2]},"
         "\"b\":{\"dtype\":\"U16\",\"shape\":[0],\"data_offsets\":[4,4]}}",
         "gap of 2 bytes before tensor 'b'"},
        {"overlapping tensors",
         "{\"a\":{\"dtype\":\"U16\",\"shape\":[2],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"U16\",\"shape\":[],\"data_offsets\":[2,4]}}",
         "'b' overlaps"},
        {"same range twice",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}",
         "'b' overlaps"},
        {"duplicate names",
         "{\"a\":{\"dtype\":\"U16\",\"shape\":[],\"data_offsets\":[0,2]},"
         "\"a\":{\"dtype\":\"U16\",\"shape\":[],\"data_offsets\":[2,4]}}",
         "duplicate key 'a'"},
        {"metadata value number",
         "{\"__metadata__\":{\"k\":1},\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}",
         "'k' is not a string"},
        {"metadata value null",
         "{\"__metadata__\":{\"k\":null},\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}",
         "'k' is not a string"},
        {"metadata not object",
         "{\"__metadata__\":[\"k\"],\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}",
         "__metadata__ is not a JSON object"},
        {"metadata duplicate key",
         "{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"},\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}",
         "duplicate key 'k'"},
        {"metadata twice",
         "{\"__metadata__\":{},\"__metadata__\":{},\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}",
         "duplicate key '__metadata__'"},
    };
    set_path("bad.safetensors");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        craft(path, bad[i][1], 4);
        expect_refused(bad[i][0], bad[i][2]);
    }
    const unsigned char nul[] = {5, 0, 0, 0, 0, 0, 0, 0, '{', '}', 0, ' ', ' '};
    write_bytes(path, nul, sizeof nul);
    expect_refused("NUL after the JSON", "bytes after the JSON");

    /* Short files and bad header lengths. */
    const unsigned char zeros[8] = {0};
    for (size_t n = 0; n < 8; n++) {
        write_bytes(path, zeros, n);
        expect_refused("file shorter than 8 bytes", "too short");
    }
    craft_len(path, 0, "{}", 0);
    expect_refused("header length 0", "header length is 0");
    craft_len(path, (uint64_t)MTP_ST_MAX_HEADER + 1, "{}", 0);
    expect_refused("header length over the limit", "exceeds the limit");
    craft_len(path, UINT64_MAX, "{}", 0);
    expect_refused("header length 2^64-1", "exceeds the limit");
    craft_len(path, 100, "{}", 10);
    expect_refused("header length beyond the file", "runs past the end");
    craft_len(path, 1, "{}", 0);
    expect_refused("header length cuts the JSON", "not valid JSON");

    set_path("no-such-file.safetensors");
    expect_refused("missing file", "cannot open");
    snprintf(path, sizeof path, "%s", dir);
    expect_refused("a directory", "not a regular file");
    group_done("malformed corpus");
}

static void test_truncations(void) {
    float v[3] = {1, 2, 3};
    const mtp_st_entry e[] = {{"a", v, 1, {2}, MTP_DT_F32}, {"b", v + 2, 0, {0}, MTP_DT_F32}};
    const char *meta[] = {"k", "v"};
    mtp_err err = {{0}};
    set_path("full.safetensors");
    CHECK(mtp_st_write(path, e, 2, meta, 1, &err) == 0, "truncation: write the valid file");
    char *full = NULL;
    size_t size = 0;
    CHECK(mtp_read_file(path, &full, &size, &err) == 0 && size > 8, "truncation: read it back");
    set_path("cut.safetensors");
    for (size_t n = 0; full && n < size; n++) {
        write_bytes(path, full, n);
        char what[64];
        snprintf(what, sizeof what, "truncated to %zu of %zu bytes", n, size);
        expect_refused(what, NULL);
    }
    free(full);
    group_done("every truncation");
}

static void remove_dir(void) {
    DIR *dp = opendir(dir);
    for (struct dirent *de; dp && (de = readdir(dp));) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        unlink(path);
    }
    if (dp) closedir(dp);
    rmdir(dir);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* keep the lines if a sanitizer ends the run */
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/mtp_test_st_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror(dir);
        return 1;
    }
    test_round_trip();
    test_stream();
    test_writer_errors();
    test_half_types();
    test_malformed();
    test_truncations();
    remove_dir();
    return check_finish();
}
