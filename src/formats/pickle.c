/* pickle.c: the restricted pickle interpreter declared in pickle.h. It follows the pickle
 * machine's definition (Python's Lib/pickletools.py documents every opcode): a stack of
 * values, marks that open a group of them, and a memo of values by index. Values live in
 * one arena freed at the end, so the shared references the memo creates need no ownership
 * and nothing is ever freed twice; the arena's size is bounded. The only code that inspects
 * a value's children runs a fixed depth deep (a tensor's arguments, the top-level dict), so
 * deeply nested input cannot exhaust the C stack. */
#include "formats/pickle.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STACK (1 << 20)      /* values on the stack at once */
#define MAX_MARKS 1000           /* marks open at once: how deep groups nest */
#define MAX_MEMO (1 << 20)       /* memo indices */
#define MAX_ARENA (256u << 20)   /* bytes of values */
#define MAX_PIDS (1 << 20)       /* storage references */
#define MAX_KEY 4096             /* bytes of a tensor name or storage key */

/* The globals a torch state dict needs: nothing else can be named. Storage classes other
 * than float32/bfloat16/float16 are recognised, to say why such a tensor is refused. */
typedef enum { G_ORDEREDDICT, G_REBUILD_V2, G_REBUILD, G_REBUILD_PARAM, G_STORAGE } gkind;
static const struct {
    const char *module, *name;
    gkind kind;
    int dtype; /* mtp_dtype, or -1: a storage type that is not read */
    const char *what;
} globals[] = {
    {"collections", "OrderedDict", G_ORDEREDDICT, -1, ""},
    {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_V2, -1, ""},
    {"torch._utils", "_rebuild_tensor", G_REBUILD, -1, ""},
    {"torch._utils", "_rebuild_parameter", G_REBUILD_PARAM, -1, ""},
    {"torch", "FloatStorage", G_STORAGE, MTP_DT_F32, "float32"},
    {"torch", "BFloat16Storage", G_STORAGE, MTP_DT_BF16, "bfloat16"},
    {"torch", "HalfStorage", G_STORAGE, MTP_DT_F16, "float16"},
    {"torch", "DoubleStorage", G_STORAGE, -1, "float64"},
    {"torch", "LongStorage", G_STORAGE, -1, "int64"},
    {"torch", "IntStorage", G_STORAGE, -1, "int32"},
    {"torch", "ShortStorage", G_STORAGE, -1, "int16"},
    {"torch", "CharStorage", G_STORAGE, -1, "int8"},
    {"torch", "ByteStorage", G_STORAGE, -1, "uint8"},
    {"torch", "BoolStorage", G_STORAGE, -1, "bool"},
    {"torch", "ComplexFloatStorage", G_STORAGE, -1, "complex64"},
    {"torch", "ComplexDoubleStorage", G_STORAGE, -1, "complex128"},
    {"torch", "QInt8Storage", G_STORAGE, -1, "qint8"},
    {"torch", "QUInt8Storage", G_STORAGE, -1, "quint8"},
    {"torch", "QInt32Storage", G_STORAGE, -1, "qint32"},
    {"torch", "UntypedStorage", G_STORAGE, -1, "untyped bytes"},
};
#define N_GLOBALS ((int)(sizeof globals / sizeof globals[0]))

typedef enum { V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_TUPLE, V_LIST, V_DICT, V_GLOBAL, V_STORAGE, V_TENSOR } vkind;
static const char *const kind_names[] = {"None",     "a bool",  "an int",    "a float",     "a str",   "a tuple",
                                         "a list",   "a dict",  "a global",  "a storage",   "a tensor"};

typedef struct tensor_v {
    int pid; /* index into the persistent ids seen */
    int64_t offset;
    int ndim;
    int64_t shape[MTP_ST_MAX_DIMS], stride[MTP_ST_MAX_DIMS];
} tensor_v;

typedef struct value value;
struct value {
    vkind kind;
    union {
        int64_t i; /* V_BOOL, V_INT */
        struct {
            const char *s; /* into the pickle's bytes */
            size_t len;
        } str;
        struct {
            value **v; /* V_DICT: key, value, key, value... (n counts slots) */
            size_t n, cap;
        } seq;
        int global; /* index into globals */
        int pid;    /* V_STORAGE: index into the persistent ids seen */
        tensor_v *t;
    } u;
};

/* One persistent id ('storage', type, key, location, numel) as it appeared. */
typedef struct {
    const char *key;
    size_t key_len;
    int global;
    int64_t numel;
} pid_v;

typedef struct block {
    struct block *next;
    size_t used, cap;
    max_align_t data[]; /* cap bytes */
} block;

typedef struct {
    const uint8_t *d;
    size_t n, pos, op_at;
    const char *path;
    mtp_err *err;
    block *arena;
    size_t arena_bytes;
    value **stack;
    size_t sp, stack_cap;
    size_t marks[MAX_MARKS];
    int n_marks;
    value **memo;
    size_t memo_cap, memo_len;
    pid_v *pids;
    size_t n_pids, pids_cap;
} machine;

static void *arena_alloc(machine *m, size_t bytes) {
    bytes = (bytes + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    if (bytes > MAX_ARENA - m->arena_bytes) return NULL;
    block *b = m->arena;
    if (!b || b->cap - b->used < bytes) {
        size_t cap = bytes > (64u << 10) ? bytes : (64u << 10);
        b = xmalloc(sizeof *b + cap);
        b->next = m->arena;
        b->used = 0;
        b->cap = cap;
        m->arena = b;
        m->arena_bytes += cap;
    }
    void *p = (char *)b->data + b->used;
    b->used += bytes;
    return p;
}

static int fail_at(machine *m, const char *what) {
    return mtp_fail(m->err, "%s: pickle: %s (opcode at byte %zu)", m->path, what, m->op_at);
}

static value *new_value(machine *m, vkind k) {
    value *v = arena_alloc(m, sizeof *v);
    if (!v) return NULL;
    memset(v, 0, sizeof *v);
    v->kind = k;
    return v;
}

static int push(machine *m, value *v) {
    if (!v) return fail_at(m, "more than 256 MiB of values");
    if (m->sp == MAX_STACK) return fail_at(m, "more than 2^20 values on the stack");
    if (m->sp == m->stack_cap) {
        m->stack_cap = m->stack_cap ? 2 * m->stack_cap : 256;
        m->stack = xrealloc(m->stack, m->stack_cap * sizeof *m->stack);
    }
    m->stack[m->sp++] = v;
    return 0;
}

/* The lowest stack slot the current group may pop: values under the innermost mark
 * belong to the enclosing group. */
static size_t floor_of(const machine *m) { return m->n_marks ? m->marks[m->n_marks - 1] : 0; }

static value *pop(machine *m) {
    if (m->sp == floor_of(m)) {
        fail_at(m, "stack underflow");
        return NULL;
    }
    return m->stack[--m->sp];
}

static value *top(machine *m) {
    if (m->sp == floor_of(m)) {
        fail_at(m, "stack underflow");
        return NULL;
    }
    return m->stack[m->sp - 1];
}

/* Closes the innermost group: its values are stack[*start, m->sp). */
static int pop_mark(machine *m, size_t *start) {
    if (m->n_marks == 0) return fail_at(m, "no mark to close");
    *start = m->marks[--m->n_marks];
    return 0;
}

static const uint8_t *take(machine *m, size_t k) {
    if (k > m->n - m->pos) {
        mtp_fail(m->err, "%s: pickle: truncated (opcode at byte %zu needs %zu bytes more)", m->path, m->op_at, k);
        return NULL;
    }
    const uint8_t *p = m->d + m->pos;
    m->pos += k;
    return p;
}

static uint64_t le(const uint8_t *p, int k) {
    uint64_t x = 0;
    for (int i = k - 1; i >= 0; i--) x = x << 8 | p[i];
    return x;
}

static int seq_add(machine *m, value *s, value *x) {
    if (s->u.seq.n == s->u.seq.cap) {
        size_t cap = s->u.seq.cap ? 2 * s->u.seq.cap : 8;
        value **v = arena_alloc(m, cap * sizeof *v);
        if (!v) return fail_at(m, "more than 256 MiB of values");
        if (s->u.seq.n) memcpy(v, s->u.seq.v, s->u.seq.n * sizeof *v);
        s->u.seq.v = v;
        s->u.seq.cap = cap;
    }
    s->u.seq.v[s->u.seq.n++] = x;
    return 0;
}

/* A tuple of stack[start, m->sp), which it takes off the stack. */
static int make_tuple(machine *m, size_t start) {
    value *t = new_value(m, V_TUPLE);
    if (!t) return push(m, NULL);
    for (size_t i = start; i < m->sp; i++)
        if (seq_add(m, t, m->stack[i]) != 0) return -1;
    m->sp = start;
    return push(m, t);
}

static int push_str(machine *m, size_t len) {
    const uint8_t *s = take(m, len);
    if (!s) return -1;
    value *v = new_value(m, V_STR);
    if (v) {
        v->u.str.s = (const char *)s;
        v->u.str.len = len;
    }
    return push(m, v);
}

static int push_int(machine *m, int64_t x, vkind k) {
    value *v = new_value(m, k);
    if (v) v->u.i = x;
    return push(m, v);
}

/* A printable copy of s for a message: other bytes become '?', long names are cut. */
static void printable(char *out, size_t cap, const char *s, size_t len) {
    size_t k = 0;
    for (size_t i = 0; i < len && k + 4 < cap; i++) out[k++] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    if (k < len) memcpy(out + k, "...", 4);
    else out[k] = 0;
}

static int push_global(machine *m, const char *mod, size_t mod_len, const char *name, size_t name_len) {
    for (int g = 0; g < N_GLOBALS; g++)
        if (strlen(globals[g].module) == mod_len && memcmp(globals[g].module, mod, mod_len) == 0 &&
            strlen(globals[g].name) == name_len && memcmp(globals[g].name, name, name_len) == 0) {
            value *v = new_value(m, V_GLOBAL);
            if (v) v->u.global = g;
            return push(m, v);
        }
    char a[96], b[96];
    printable(a, sizeof a, mod, mod_len);
    printable(b, sizeof b, name, name_len);
    return mtp_fail(m->err, "%s: pickle: global '%s.%s' is not allowed (only torch tensors and OrderedDict)", m->path,
                    a, b);
}

/* GLOBAL's operand: "module\nname\n". */
static int op_global(machine *m) {
    const char *parts[2];
    size_t lens[2];
    for (int k = 0; k < 2; k++) {
        const uint8_t *s = m->d + m->pos, *nl = memchr(s, '\n', m->n - m->pos < 256 ? m->n - m->pos : 256);
        if (!nl) return fail_at(m, "GLOBAL without a newline-terminated name in its first 256 bytes");
        parts[k] = (const char *)s;
        lens[k] = (size_t)(nl - s);
        m->pos += lens[k] + 1;
    }
    return push_global(m, parts[0], lens[0], parts[1], lens[1]);
}

static int op_stack_global(machine *m) {
    value *name = pop(m), *mod = name ? pop(m) : NULL;
    if (!mod) return -1;
    if (mod->kind != V_STR || name->kind != V_STR) return fail_at(m, "STACK_GLOBAL of something other than two strings");
    return push_global(m, mod->u.str.s, mod->u.str.len, name->u.str.s, name->u.str.len);
}

static int memo_put(machine *m, uint64_t idx) {
    value *v = top(m);
    if (!v) return -1;
    if (idx >= MAX_MEMO) return fail_at(m, "memo index beyond 2^20");
    if (idx >= m->memo_cap) {
        size_t cap = m->memo_cap ? m->memo_cap : 64;
        while (cap <= idx) cap *= 2;
        m->memo = xrealloc(m->memo, cap * sizeof *m->memo);
        memset(m->memo + m->memo_cap, 0, (cap - m->memo_cap) * sizeof *m->memo);
        m->memo_cap = cap;
    }
    if (!m->memo[idx]) m->memo_len++;
    m->memo[idx] = v;
    return 0;
}

static int memo_get(machine *m, uint64_t idx) {
    if (idx >= m->memo_cap || !m->memo[idx]) return fail_at(m, "memo index not set");
    return push(m, m->memo[idx]);
}

/* ('storage', torch.<T>Storage, key, location, numel) -> a storage value. */
static int op_persid(machine *m) {
    value *p = pop(m);
    if (!p) return -1;
    value **a = p->u.seq.v;
    if (p->kind != V_TUPLE || p->u.seq.n != 5 || a[0]->kind != V_STR || a[0]->u.str.len != 7 ||
        memcmp(a[0]->u.str.s, "storage", 7) != 0)
        return fail_at(m, "persistent id is not ('storage', type, key, location, numel)");
    if (a[1]->kind != V_GLOBAL || globals[a[1]->u.global].kind != G_STORAGE)
        return fail_at(m, "persistent id's storage type is not a torch storage class");
    if (a[2]->kind != V_STR || a[2]->u.str.len == 0 || a[2]->u.str.len > MAX_KEY ||
        memchr(a[2]->u.str.s, 0, a[2]->u.str.len) || a[3]->kind != V_STR)
        return fail_at(m, "persistent id's key or location is not a string of 1 to 4096 non-NUL bytes");
    if (a[4]->kind != V_INT || a[4]->u.i < 0) return fail_at(m, "persistent id's element count is not an int >= 0");
    if (m->n_pids == MAX_PIDS) return fail_at(m, "more than 2^20 storage references");
    if (m->n_pids == m->pids_cap) {
        m->pids_cap = m->pids_cap ? 2 * m->pids_cap : 64;
        m->pids = xrealloc(m->pids, m->pids_cap * sizeof *m->pids);
    }
    m->pids[m->n_pids] = (pid_v){a[2]->u.str.s, a[2]->u.str.len, a[1]->u.global, a[4]->u.i};
    value *v = new_value(m, V_STORAGE);
    if (v) v->u.pid = (int)m->n_pids;
    m->n_pids++;
    return push(m, v);
}

static int is_empty_dict(const value *v) { return v->kind == V_DICT && v->u.seq.n == 0; }

/* A tuple of ints >= 0 of at most MTP_ST_MAX_DIMS, into out. */
static int int_tuple(const value *v, int64_t *out, int *n) {
    if (v->kind != V_TUPLE || v->u.seq.n > MTP_ST_MAX_DIMS) return -1;
    for (size_t i = 0; i < v->u.seq.n; i++) {
        if (v->u.seq.v[i]->kind != V_INT || v->u.seq.v[i]->u.i < 0) return -1;
        out[i] = v->u.seq.v[i]->u.i;
    }
    *n = (int)v->u.seq.n;
    return 0;
}

/* _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, backward_hooks[, metadata])
 * or _rebuild_tensor(storage, offset, size, stride): a view of the storage. */
static value *rebuild_tensor(machine *m, const value *args, int v2) {
    size_t n = args->u.seq.n;
    value **a = args->u.seq.v;
    if (v2 ? n != 6 && n != 7 : n != 4) {
        fail_at(m, v2 ? "_rebuild_tensor_v2 takes 6 or 7 arguments" : "_rebuild_tensor takes 4 arguments");
        return NULL;
    }
    if (a[0]->kind != V_STORAGE || a[1]->kind != V_INT || a[1]->u.i < 0) {
        fail_at(m, "a tensor's storage or storage offset is not what torch writes");
        return NULL;
    }
    if (v2 && (a[4]->kind != V_BOOL || !is_empty_dict(a[5]) || (n == 7 && a[6]->kind != V_NONE && a[6]->kind != V_DICT))) {
        fail_at(m, "a tensor's requires_grad, backward hooks (must be empty) or metadata is not what torch writes");
        return NULL;
    }
    tensor_v *t = arena_alloc(m, sizeof *t);
    value *v = t ? new_value(m, V_TENSOR) : NULL;
    if (!v) {
        fail_at(m, "more than 256 MiB of values");
        return NULL;
    }
    memset(t, 0, sizeof *t);
    int ns, nt;
    if (int_tuple(a[2], t->shape, &ns) != 0 || int_tuple(a[3], t->stride, &nt) != 0 || ns != nt) {
        fail_at(m, "a tensor's size and stride are not tuples of at most 8 ints >= 0 of one length");
        return NULL;
    }
    t->pid = a[0]->u.pid;
    t->offset = a[1]->u.i;
    t->ndim = ns;
    v->u.t = t;
    return v;
}

static int op_reduce(machine *m) {
    value *args = pop(m), *f = args ? pop(m) : NULL;
    if (!f) return -1;
    if (f->kind != V_GLOBAL) {
        char what[64];
        snprintf(what, sizeof what, "REDUCE calls %s, not an allowed function", kind_names[f->kind]);
        return fail_at(m, what);
    }
    if (args->kind != V_TUPLE) return fail_at(m, "REDUCE's arguments are not a tuple");
    value *r = NULL;
    switch (globals[f->u.global].kind) {
    case G_ORDEREDDICT:
        if (args->u.seq.n != 0) return fail_at(m, "OrderedDict() with arguments (torch writes none)");
        r = new_value(m, V_DICT);
        break;
    case G_REBUILD_V2:
    case G_REBUILD:
        r = rebuild_tensor(m, args, globals[f->u.global].kind == G_REBUILD_V2);
        if (!r) return -1;
        break;
    case G_REBUILD_PARAM: /* (tensor, requires_grad, backward_hooks): the tensor itself */
        if (args->u.seq.n != 3 || args->u.seq.v[0]->kind != V_TENSOR || args->u.seq.v[1]->kind != V_BOOL ||
            !is_empty_dict(args->u.seq.v[2]))
            return fail_at(m, "_rebuild_parameter's arguments are not (tensor, bool, empty hooks)");
        r = args->u.seq.v[0];
        break;
    case G_STORAGE: {
        char what[128];
        snprintf(what, sizeof what, "REDUCE of 'torch.%s' is not allowed", globals[f->u.global].name);
        return fail_at(m, what);
    }
    }
    return push(m, r);
}

/* BUILD sets an object's state. torch uses it once: an nn.Module's state_dict() is an
 * OrderedDict carrying a `_metadata` attribute. Setting an attribute does not change the
 * items, so on a dict with a dict (or None) state BUILD is accepted and the state dropped;
 * every other form is refused. */
static int op_build(machine *m) {
    value *state = pop(m), *obj = state ? top(m) : NULL;
    if (!obj) return -1;
    if (obj->kind != V_DICT || (state->kind != V_DICT && state->kind != V_NONE)) {
        char what[96];
        snprintf(what, sizeof what, "BUILD of %s with %s state is not allowed (only a dict's attributes)",
                 kind_names[obj->kind], kind_names[state->kind]);
        return fail_at(m, what);
    }
    return 0;
}

static int op_setitems(machine *m, int many) {
    size_t start = 0;
    if (many) {
        if (pop_mark(m, &start) != 0) return -1;
    } else {
        if (m->sp < floor_of(m) + 2) return fail_at(m, "stack underflow");
        start = m->sp - 2;
    }
    if ((m->sp - start) % 2) return fail_at(m, "SETITEMS with an odd number of values");
    if (start == floor_of(m) || m->stack[start - 1]->kind != V_DICT) return fail_at(m, "SETITEM on something not a dict");
    value *d = m->stack[start - 1];
    for (size_t i = start; i < m->sp; i++)
        if (seq_add(m, d, m->stack[i]) != 0) return -1;
    m->sp = start;
    return 0;
}

static int op_appends(machine *m, int many) {
    size_t start = 0;
    if (many) {
        if (pop_mark(m, &start) != 0) return -1;
    } else {
        if (m->sp < floor_of(m) + 1) return fail_at(m, "stack underflow");
        start = m->sp - 1;
    }
    if (start == floor_of(m) || m->stack[start - 1]->kind != V_LIST) return fail_at(m, "APPEND on something not a list");
    value *l = m->stack[start - 1];
    for (size_t i = start; i < m->sp; i++)
        if (seq_add(m, l, m->stack[i]) != 0) return -1;
    m->sp = start;
    return 0;
}

/* Opcodes that exist but are refused, named in the message. */
static const char *refused_name(uint8_t op) {
    switch (op) {
    case 'i': return "INST";
    case 'o': return "OBJ";
    case 0x81: return "NEWOBJ";
    case 0x92: return "NEWOBJ_EX";
    case 0x82: return "EXT1";
    case 0x83: return "EXT2";
    case 0x84: return "EXT4";
    case 'P': return "PERSID";
    case 'I': return "INT";
    case 'L': return "LONG";
    case 'F': return "FLOAT";
    case 'S': return "STRING";
    case 'T': return "BINSTRING";
    case 'U': return "SHORT_BINSTRING";
    case 'V': return "UNICODE";
    case 'B': return "BINBYTES";
    case 'C': return "SHORT_BINBYTES";
    case 0x8e: return "BINBYTES8";
    case 0x96: return "BYTEARRAY8";
    case 0x97: return "NEXT_BUFFER";
    case 0x98: return "READONLY_BUFFER";
    case 'g': return "GET";
    case 'p': return "PUT";
    case 'l': return "LIST";
    case 'd': return "DICT";
    case 0x8b: return "LONG4";
    case 0x8f: return "EMPTY_SET";
    case 0x90: return "ADDITEMS";
    case 0x91: return "FROZENSET";
    default: return NULL;
    }
}

/* One opcode; *done is set at STOP. */
static int step(machine *m, int *done) {
    m->op_at = m->pos;
    const uint8_t *p = take(m, 1);
    if (!p) return mtp_fail(m->err, "%s: pickle: truncated (no STOP opcode)", m->path);
    uint8_t op = *p;
    switch (op) {
    case 0x80: /* PROTO */
        if (!(p = take(m, 1))) return -1;
        if (*p < 2 || *p > 5) return fail_at(m, "protocol is not 2 to 5");
        return 0;
    case 0x95: /* FRAME: a length hint for buffered readers; the data follows in line */
        return take(m, 8) ? 0 : -1;
    case '.': /* STOP */
        *done = 1;
        return 0;
    case '(': /* MARK */
        if (m->n_marks == MAX_MARKS) return fail_at(m, "groups nested deeper than 1000");
        m->marks[m->n_marks++] = m->sp;
        return 0;
    case '0': /* POP: the top value, or, with none above the mark, the mark */
        if (m->sp > floor_of(m)) {
            m->sp--;
            return 0;
        } else {
            size_t start = 0;
            return pop_mark(m, &start);
        }
    case '1': { /* POP_MARK */
        size_t start = 0;
        if (pop_mark(m, &start) != 0) return -1;
        m->sp = start;
        return 0;
    }
    case '2': { /* DUP */
        value *v = top(m);
        return v ? push(m, v) : -1;
    }
    case '}': return push(m, new_value(m, V_DICT));
    case ']': return push(m, new_value(m, V_LIST));
    case ')': return push(m, new_value(m, V_TUPLE));
    case 't': { /* TUPLE */
        size_t start = 0;
        return pop_mark(m, &start) != 0 ? -1 : make_tuple(m, start);
    }
    case 0x85: case 0x86: case 0x87: { /* TUPLE1..3 */
        size_t k = (size_t)(op - 0x84);
        if (m->sp < floor_of(m) + k) return fail_at(m, "stack underflow");
        return make_tuple(m, m->sp - k);
    }
    case 'X': return (p = take(m, 4)) ? push_str(m, (size_t)le(p, 4)) : -1; /* BINUNICODE */
    case 0x8c: return (p = take(m, 1)) ? push_str(m, *p) : -1;              /* SHORT_BINUNICODE */
    case 0x8d: {                                                            /* BINUNICODE8 */
        if (!(p = take(m, 8))) return -1;
        uint64_t len = le(p, 8);
        if (len > SIZE_MAX) return fail_at(m, "string longer than memory");
        return push_str(m, (size_t)len);
    }
    case 'J': return (p = take(m, 4)) ? push_int(m, (int32_t)(uint32_t)le(p, 4), V_INT) : -1; /* BININT */
    case 'K': return (p = take(m, 1)) ? push_int(m, *p, V_INT) : -1;                         /* BININT1 */
    case 'M': return (p = take(m, 2)) ? push_int(m, (int64_t)le(p, 2), V_INT) : -1;          /* BININT2 */
    case 0x8a: { /* LONG1: n bytes, little-endian two's complement */
        if (!(p = take(m, 1))) return -1;
        int k = *p;
        if (k > 8) return fail_at(m, "integer wider than 64 bits");
        if (!(p = take(m, (size_t)k))) return -1;
        uint64_t x = le(p, k);
        if (k > 0 && k < 8 && (p[k - 1] & 0x80)) x |= ~(uint64_t)0 << (8 * k); /* sign-extend */
        return push_int(m, (int64_t)x, V_INT);
    }
    case 'G': { /* BINFLOAT: big-endian double */
        /* the value itself is never needed: no field of a tensor is a float */
        return take(m, 8) ? push(m, new_value(m, V_FLOAT)) : -1;
    }
    case 0x88: return push_int(m, 1, V_BOOL); /* NEWTRUE */
    case 0x89: return push_int(m, 0, V_BOOL); /* NEWFALSE */
    case 'N': return push(m, new_value(m, V_NONE));
    case 'q': return (p = take(m, 1)) ? memo_put(m, *p) : -1;       /* BINPUT */
    case 'r': return (p = take(m, 4)) ? memo_put(m, le(p, 4)) : -1; /* LONG_BINPUT */
    case 0x94: return memo_put(m, m->memo_len);                     /* MEMOIZE */
    case 'h': return (p = take(m, 1)) ? memo_get(m, *p) : -1;       /* BINGET */
    case 'j': return (p = take(m, 4)) ? memo_get(m, le(p, 4)) : -1; /* LONG_BINGET */
    case 's': return op_setitems(m, 0);
    case 'u': return op_setitems(m, 1);
    case 'a': return op_appends(m, 0);
    case 'e': return op_appends(m, 1);
    case 'c': return op_global(m);
    case 0x93: return op_stack_global(m);
    case 'R': return op_reduce(m);
    case 'Q': return op_persid(m);
    case 'b': return op_build(m);
    default: {
        const char *name = refused_name(op);
        return name ? mtp_fail(m->err, "%s: pickle: opcode %s (0x%02x) at byte %zu is not allowed in a torch state dict",
                               m->path, name, op, m->op_at)
                    : mtp_fail(m->err, "%s: pickle: unknown opcode 0x%02x at byte %zu", m->path, op, m->op_at);
    }
    }
}

static char *copy_str(const value *v) {
    char *s = xmalloc(v->u.str.len + 1);
    memcpy(s, v->u.str.s, v->u.str.len);
    s[v->u.str.len] = 0;
    return s;
}

/* A tensor's persistent id, to sort by key. */
typedef struct {
    pid_v p;
    int tensor;
} pid_use;

static int cmp_use(const void *a, const void *b) {
    const pid_use *x = a, *y = b;
    size_t n = x->p.key_len < y->p.key_len ? x->p.key_len : y->p.key_len;
    int c = memcmp(x->p.key, y->p.key, n);
    if (c) return c;
    if (x->p.key_len != y->p.key_len) return x->p.key_len < y->p.key_len ? -1 : 1;
    return x->tensor - y->tensor;
}

/* One storage per key; several references to one key must agree on its type and size. */
static int collect_storages(machine *m, mtp_pk_state_dict *sd, const int *tensor_pid) {
    int n = sd->n_tensors;
    pid_use *u = xmalloc((n ? (size_t)n : 1) * sizeof *u);
    for (int i = 0; i < n; i++) u[i] = (pid_use){m->pids[tensor_pid[i]], i};
    qsort(u, (size_t)n, sizeof *u, cmp_use);
    sd->storages = xcalloc(n ? (size_t)n : 1, sizeof *sd->storages);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        const pid_v *p = &u[i].p, *q = i ? &u[i - 1].p : NULL;
        if (q && q->key_len == p->key_len && memcmp(q->key, p->key, p->key_len) == 0) {
            if (q->global != p->global || q->numel != p->numel)
                rc = mtp_fail(m->err, "%s: pickle: storage '%s' is declared twice with different types or sizes",
                              m->path, sd->storages[sd->n_storages - 1].key);
        } else {
            mtp_pk_storage *s = &sd->storages[sd->n_storages++];
            s->key = xmalloc(p->key_len + 1);
            memcpy(s->key, p->key, p->key_len);
            s->key[p->key_len] = 0;
            s->dtype = (mtp_dtype)globals[p->global].dtype;
            s->numel = p->numel;
        }
        sd->tensors[u[i].tensor].storage = sd->n_storages - 1;
    }
    free(u);
    return rc;
}

/* The top-level value: a dict of str -> tensor, into sd. */
static int convert(machine *m, const value *root, mtp_pk_state_dict *sd) {
    if (root->kind != V_DICT)
        return mtp_fail(m->err, "%s: pickle: the top-level value is %s, not a dict of tensors", m->path,
                        kind_names[root->kind]);
    size_t n = root->u.seq.n / 2;
    if (n > INT32_MAX) return mtp_fail(m->err, "%s: pickle: too many tensors", m->path);
    sd->tensors = xcalloc(n ? n : 1, sizeof *sd->tensors);
    int *tensor_pid = xmalloc((n ? n : 1) * sizeof *tensor_pid);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const value *k = root->u.seq.v[2 * i], *v = root->u.seq.v[2 * i + 1];
        if (k->kind != V_STR || k->u.str.len == 0 || k->u.str.len > MAX_KEY || memchr(k->u.str.s, 0, k->u.str.len)) {
            rc = mtp_fail(m->err, "%s: pickle: a key of the top-level dict is not a name (a string of 1 to 4096 non-NUL bytes)",
                          m->path);
            break;
        }
        mtp_pk_tensor *t = &sd->tensors[sd->n_tensors++];
        t->name = copy_str(k);
        if (v->kind != V_TENSOR) {
            rc = mtp_fail(m->err, "%s: pickle: '%s' is %s, not a tensor (only a state dict of tensors is read)",
                          m->path, t->name, kind_names[v->kind]);
            break;
        }
        const pid_v *p = &m->pids[v->u.t->pid];
        if (globals[p->global].dtype < 0) {
            rc = mtp_fail(m->err, "%s: pickle: tensor '%s' is stored as torch.%s (%s): only float32, bfloat16 and float16 are read",
                          m->path, t->name, globals[p->global].name, globals[p->global].what);
            break;
        }
        t->offset = v->u.t->offset;
        t->ndim = v->u.t->ndim;
        memcpy(t->shape, v->u.t->shape, sizeof t->shape);
        memcpy(t->stride, v->u.t->stride, sizeof t->stride);
        tensor_pid[i] = v->u.t->pid;
    }
    if (rc == 0) rc = collect_storages(m, sd, tensor_pid);
    free(tensor_pid);
    return rc;
}

int mtp_pickle_state_dict(mtp_pk_state_dict *sd, const uint8_t *data, size_t size, const char *path, mtp_err *err) {
    memset(sd, 0, sizeof *sd);
    machine m = {.d = data, .n = size, .path = path, .err = err};
    int done = 0, rc = 0;
    while (!done && rc == 0) rc = step(&m, &done);
    if (rc == 0) {
        value *root = pop(&m);
        rc = root ? convert(&m, root, sd) : -1;
    }
    while (m.arena) {
        block *b = m.arena;
        m.arena = b->next;
        free(b);
    }
    free(m.stack);
    free(m.memo);
    free(m.pids);
    if (rc != 0) mtp_pk_state_dict_free(sd);
    return rc;
}

void mtp_pk_state_dict_free(mtp_pk_state_dict *sd) {
    for (int i = 0; i < sd->n_tensors; i++) free(sd->tensors[i].name);
    for (int i = 0; i < sd->n_storages; i++) free(sd->storages[i].key);
    free(sd->tensors);
    free(sd->storages);
    memset(sd, 0, sizeof *sd);
}
