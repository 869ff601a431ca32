/* mtp.h: the public C API of mtp, multi-token-prediction language models (Gloeckle et
 * al. 2024): a shared trunk feeds n_future heads (one transformer layer each) through one
 * shared norm and unembedding. Train them, evaluate them, decode them with head 1 alone
 * or self-speculatively (the future heads draft, head 1 verifies).
 *
 * Conventions
 * - Functions that can fail on user input return 0, or -1 with a one-line message in
 *   *err naming the file, field or option at fault (err may be NULL). Running out of
 *   memory is not a user error: it aborts with the size and place.
 * - Whoever opens or creates a handle closes it; results that own memory have a _free.
 * - Option structs start from their _default function; set only what you change.
 * - Token ids are 32-bit (mtp_token).
 * The mtp command's model commands (train, eval, info, generate, prepare) use only this
 * header. The library's internals (src/) are not part of the API. */
#ifndef MTP_H
#define MTP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define MTP_VERSION_MAJOR 0
#define MTP_VERSION_MINOR 3
#define MTP_VERSION_PATCH 0
#define MTP_VERSION "0.3.0"
const char *mtp_version(void); /* the library's version: MTP_VERSION when it was built */

/* ---- basics --------------------------------------------------------------------------- */

typedef uint32_t mtp_token; /* a token id (Llama 3's vocabulary has 128,256 entries) */

typedef struct {
    char msg[512]; /* one line, names the file or flag at fault */
} mtp_err;

#define MTP_MAX_FUTURE 64 /* most future heads a model may have */

typedef struct mtp_tokenizer mtp_tokenizer; /* text <-> ids; opaque, read-only once loaded */

/* Reads a whole regular file (a FIFO or device is refused) into a malloc'd buffer,
 * NUL-terminated; *len excludes the NUL. */
int mtp_read_file(const char *path, char **data, size_t *len, mtp_err *err);

/* The BLAS (OpenBLAS) is opened at the first call of mtp_set_threads, mtp_backend_describe
 * or a matrix product, after OPENBLAS_CORETYPE is set for this CPU when the user has not
 * set it (briefly, in this process's environment): make that first call before starting
 * threads of your own that read the environment.
 * Threads for the library's loops and the BLAS (<= 0: leave the default). */
void mtp_set_threads(int threads);
/* One line: which BLAS and kernel core, how many threads. */
const char *mtp_backend_describe(void);
/* What a user-set OPENBLAS_CORETYPE costs on this CPU (one line), or NULL. */
const char *mtp_backend_note(void);

/* ---- configuration: Meta's params.json keys plus n_future_tokens (docs/formats.md) --- */

typedef struct {
    int dim, n_layers, n_heads, n_kv_heads, vocab_size, multiple_of;
    float ffn_dim_multiplier; /* 0 when unset */
    float norm_eps, rope_theta;
    int max_seq_len;
    int n_future;   /* n_future_tokens: number of future heads */
    int hidden_dim; /* resolved FFN size (explicit, or Meta's rule) */
} mtp_config;

/* Parses JSON text (`what` names the source in messages), fills defaults for missing
 * optional keys, resolves hidden_dim, and validates. */
int mtp_config_parse(mtp_config *c, const char *json, const char *what, mtp_err *err);
int mtp_config_load(mtp_config *c, const char *path, mtp_err *err);
/* The config as compact JSON (malloc'd), the form stored in model files. */
char *mtp_config_to_json(const mtp_config *c);

/* ---- models --------------------------------------------------------------------------- */

/* The number type of a model's weight matrices when decoding (docs/formats.md): F32;
 * BF16; Q8, blocks of 32 int8 weights with one F16 scale each (like llama.cpp's Q8_0). */
typedef enum { MTP_F32, MTP_BF16, MTP_Q8 } mtp_wtype;
const char *mtp_wtype_name(mtp_wtype t);           /* "f32", "bf16", "q8" */
int mtp_wtype_parse(const char *s, mtp_wtype *t); /* those names; -1 for anything else */
const char *mtp_wtype_kernels(mtp_wtype t);       /* the kernels it runs on here: "AVX512-BF16", .. */

typedef struct mtp_model mtp_model; /* weights and config; opaque */

/* A model file (safetensors, docs/formats.md) with fp32 weights (bf16 widened, 8-bit
 * dequantized), for training, evaluation and decoding; *m is NULL on failure. */
int mtp_model_open(mtp_model **m, const char *path, mtp_err *err);
/* A model file for decoding only: bf16 and 8-bit files keep their types, packed once from
 * the file's map with no fp32 copy (training, evaluation and saving refuse such a model);
 * F32 files open as with mtp_model_open. */
int mtp_model_open_decode(mtp_model **m, const char *path, mtp_err *err);
/* From now on decoding multiplies by copies of the fp32 weights in type t (packed once;
 * F32: the weights themselves). A model without fp32 weights (mtp_model_open_decode of a
 * bf16 or 8-bit file) accepts only the type it has. */
int mtp_model_decode_type(mtp_model *m, mtp_wtype t, mtp_err *err);
mtp_wtype mtp_model_wtype(const mtp_model *m); /* the type decoding multiplies in */
/* A new model for cfg (as mtp_config_parse or _load leave it: hidden_dim resolved) with
 * seeded random weights (matrices N(0, 0.02), residual outputs scaled by
 * 1/sqrt(2 n_layers), norms 1). */
int mtp_model_create(mtp_model **m, const mtp_config *cfg, uint64_t seed, mtp_err *err);
void mtp_model_close(mtp_model *m); /* NULL is fine */
const mtp_config *mtp_model_config(const mtp_model *m);
/* The tokenizer a model file carries (tensor "tokenizer", docs/formats.md), or NULL; it
 * lives as long as the model. */
const mtp_tokenizer *mtp_model_tokenizer(const mtp_model *m);
/* From now on m carries the tokenizer file at path (saved with it; its ids must fit the
 * model's vocab_size). */
int mtp_model_set_tokenizer(mtp_model *m, const char *path, mtp_err *err);
/* Keeps future heads 1..k of m (1 <= k <= its n_future_tokens; the paper's fine-tuning
 * with n' = k): the config gets n_future_tokens k and n_layers minus the heads dropped,
 * the trunk, head blocks 1..k, norm, output and tokenizer stay (same names), the blocks
 * of heads k+1..n go. k = 1 leaves an ordinary next-token model. Needs fp32 weights. */
int mtp_model_keep_heads(mtp_model *m, int k, mtp_err *err);

typedef struct {
    size_t embedding, trunk, heads, norm_output, total;
} mtp_param_counts;

/* What a model file holds, read from its header alone (no weight is read). */
typedef struct {
    mtp_config cfg;
    mtp_param_counts params;
    int n_tensors;
    size_t file_bytes;
    size_t tensor_bytes[4]; /* bytes of F32, BF16, F16 and I8 tensors (8-bit scales: F16) */
    mtp_wtype wtype;        /* the matrices' type (mixed files: the unembedding's) */
    size_t tokenizer_bytes; /* the tokenizer file it carries; 0: none */
} mtp_model_info;
int mtp_model_info_read(const char *path, mtp_model_info *info, mtp_err *err);
/* Writes model file out from in with its matrices in type t (F32; BF16, rounded to nearest
 * even; Q8, docs/formats.md) and the norms in F32, one tensor in memory at a time. in is
 * an mtp model file, or Meta's release (docs/formats.md, "Meta's checkpoints"): a folder
 * with consolidated.pth and params.json, or that .pth. out carries a tokenizer: the file
 * at `tokenizer` if not NULL, else in's (a model file's own; Meta's tokenizer.model in
 * the folder or the one above, which must be there). Written atomically: on failure
 * nothing is left at out. */
int mtp_convert(const char *in, const char *out, mtp_wtype t, const char *tokenizer, mtp_err *err);

/* ---- training (README.md "Training"; the state file: docs/formats.md) ------------------- */

/* How the future heads run during a training step (the paper's memory-efficient order):
 * SEQUENTIAL: forward, loss and backward one head at a time, adding into one trunk-output
 *   gradient, so only one head's logits and activations are ever alive;
 * NAIVE: all heads forward (all logits alive), then all backward. Same gradients. */
typedef enum { MTP_HEADS_SEQUENTIAL, MTP_HEADS_NAIVE } mtp_head_schedule;

/* The parts of a model that fine-tuning can freeze (bits of mtp_train_opts.freeze):
 * TRUNK the trunk blocks, HEADS the future heads' blocks (head 1's included), EMBEDDINGS
 * tok_embeddings, OUTPUT the shared final norm and the unembedding (norm, output). */
enum { MTP_PART_TRUNK = 1, MTP_PART_HEADS = 2, MTP_PART_EMBEDDINGS = 4, MTP_PART_OUTPUT = 8,
       MTP_PART_ALL = 15 };
/* A comma-separated list of part names (trunk, heads, embeddings, output) as bits;
 * -1 with a message naming `flag` for an unknown or empty name. */
int mtp_parts_parse(const char *list, unsigned *parts, const char *flag, mtp_err *err);
/* The names of the parts in bits, comma-separated, into out (at least 40 bytes). */
void mtp_parts_name(unsigned parts, char *out, size_t n);

/* The matrix products of a training step: F32, or BF16 (inputs rounded to bf16, sums in
 * fp32, on CPUs with AVX512-BF16; weights, gradients, AdamW and the rest stay fp32). */
typedef enum { MTP_PRECISION_F32, MTP_PRECISION_BF16 } mtp_precision;

typedef struct {
    int batch, seq, steps, warmup, grad_accum, shuffle, cosine;
    float lr, min_lr, weight_decay, grad_clip, beta1, beta2, eps;
    uint64_t seed;
    mtp_head_schedule schedule;
    mtp_precision precision;
    float head_weight[MTP_MAX_FUTURE]; /* per future head; 1 by default */
    unsigned freeze; /* MTP_PART_* bits: no gradient, no update, no AdamW moments; 0 */
    int save_every, eval_every, eval_batches, stop_at; /* stop_at 0: run to steps */
    char data[16384], val[16384]; /* shard lists (docs/formats.md); "": none */
    char out[1024];               /* run folder; "": none */
} mtp_train_opts;

void mtp_train_opts_default(mtp_train_opts *o);

/* What one step measured, per future head. */
typedef struct {
    double loss[MTP_MAX_FUTURE]; /* mean cross-entropy, nats */
    double acc[MTP_MAX_FUTURE];  /* top-1 accuracy */
} mtp_head_stats;

/* What the loop reports after each step (and after each validation, with is_val). */
typedef struct {
    int64_t step, steps;
    int n_future, is_val;
    mtp_head_stats stats;
    double loss, lr, grad_norm, tok_per_s, elapsed_s, eta_s;
} mtp_train_report;

typedef void (*mtp_train_cb)(const mtp_train_report *r, void *ctx);

/* Trains m in place. resume_dir != NULL continues from DIR/state.safetensors: weights,
 * AdamW moments and step are restored; the caller got m and o from mtp_train_state_open
 * and may have changed what does not alter the arithmetic (steps, stop_at, save_every,
 * eval_every, eval_batches, val, out) and data (the same tokens at another path: nothing
 * checks that they are the same). The shard lists in o->data and o->val are rewritten to
 * the paths they expanded to, the form the state file keeps. Under mpirun or srun every
 * process calls it with the same arguments and trains on its o->batch rows of a global
 * batch of ranks x o->batch (README.md "Training on many processes"). */
int mtp_train(mtp_model *m, mtp_train_opts *o, const char *resume_dir, mtp_train_cb cb,
              void *ctx, mtp_err *err);

/* This process's rank among the processes of a run under mpirun or srun (README.md
 * "Training on many processes"), known once mtp_train has started; 0 otherwise. Every
 * rank gets mtp_train's error; rank 0 is the one to print it. */
int mtp_train_rank(void);

/* Reads DIR/state.safetensors: the model (config and weights) and the stored options
 * (data and val paths included). */
int mtp_train_state_open(const char *dir, mtp_model **m, mtp_train_opts *o, mtp_err *err);

/* ---- evaluation ------------------------------------------------------------------------ */

/* Per-head mean cross-entropy and top-1 accuracy over the first `batches` sequential
 * batches of (B, T) tokens of `data`: a shard list (comma-separated, globs expanded in
 * sorted order, docs/formats.md), read as one stream. */
int mtp_eval_file(const mtp_model *m, const char *data, int B, int T, int batches,
                  mtp_head_stats *out, mtp_err *err);

/* ---- generation (docs/decoding.md) ----------------------------------------------------- */

/* AUTO: greedy sequences draft blockwise at the depth (0 to all heads) that measured pass
 * costs and acceptance say is fastest, chosen again before every pass (docs/decoding.md);
 * sampled ones decode plainly. */
typedef enum { MTP_SPEC_NONE, MTP_SPEC_BLOCK, MTP_SPEC_TREE, MTP_SPEC_AUTO } mtp_spec;

#define MTP_MAX_TREE_NODES 128

typedef struct {
    float temp;  /* 0: greedy */
    int top_k;   /* 0: off */
    float top_p; /* 1: off */
} mtp_sampling;


typedef struct {
    mtp_spec spec;
    int draft;                          /* future heads used (1 + drafted depths); 0: all */
    int tree_width[MTP_MAX_FUTURE - 1]; /* tree: candidates at drafted depth d (head d+1) */
    int tree_depths;                    /* entries in tree_width; 0: the default shape */
    mtp_sampling sampling;
    uint64_t seed;                      /* sequence i draws from its own stream (seed, i) */
    int max_tokens;
    int64_t eos; /* a sequence ends with this id (kept in its tokens); -1: none */
} mtp_gen_opts;

/* Greedy, block speculation over every future head, 128 new tokens, seed 1, no EOS. */
void mtp_gen_opts_default(mtp_gen_opts *o);

typedef struct {
    mtp_token *tokens; /* (max_tokens) generated ids; owned: mtp_gen_result_free */
    int n;
    int64_t forwards; /* forward passes, the prompt's included */
    int64_t drafted[MTP_MAX_FUTURE]; /* [d]: passes that drafted a token at depth d (1-based) */
    int64_t accepted[MTP_MAX_FUTURE];
    double first_token_s, total_s;
    int hit_max_seq_len; /* stopped early: the model's context is full */
    int hit_eos;         /* ended with opts.eos */
    int stopped;         /* ended by the callback */
} mtp_gen_result;

void mtp_gen_result_free(mtp_gen_result *r);

/* Called whenever a sequence gains tokens (n >= 1: one, or an accepted speculative path),
 * in order. Returns 0 to go on, or k in 1..n: the sequence ends after the first k of these
 * tokens (a stop string ends inside them, say); only those k are kept. */
typedef int (*mtp_gen_cb)(int seq, const mtp_token *tokens, int n, void *ctx);

/* The default tree shape for k drafted depths: 2, 1, 1, ... candidates. */
void mtp_default_tree(int *width, int depths);

/* Generates for n prompts as one batch, each accepting its own number of drafted tokens
 * per pass. Greedy speculative output equals plain greedy output token for token; with
 * temp > 0 drafts are accepted by speculative sampling, so tokens are distributed as head
 * 1's samples. Prompts must be non-empty, shorter than max_seq_len, with ids < vocab_size
 * (checked: error naming the prompt). res[0..n) is always initialised (empty on failure),
 * so mtp_gen_result_free is safe on every entry. */
int mtp_generate(const mtp_model *m, const mtp_token *const *prompts, const int *lens, int n,
                 const mtp_gen_opts *o, mtp_gen_result *res, mtp_gen_cb cb, void *ctx,
                 mtp_err *err);

/* ---- serving (docs/serve.md) -------------------------------------------------------------
 * An engine decodes requests as they come: one thread of its own owns the model's decoding
 * (and the compute threads), other threads submit and cancel. Requests join and leave the
 * running batch between passes, each with its own sampling options, budget, EOS and seed;
 * long prompts fill in chunks beside the others' decoding; each request holds one of
 * `parallel` KV slots while it runs. A request's tokens equal mtp_generate's for its prompt
 * and options alone (stream (seed, 0)), whatever else shares the batch. */

typedef enum { MTP_SERVE_NONE, MTP_SERVE_BLOCK, MTP_SERVE_TREE, MTP_SERVE_AUTO } mtp_serve_spec;

typedef struct {
    int parallel;        /* sequences decoded at once: KV slots */
    int ctx;             /* positions per request, prompt + max_tokens; 0: the model's max_seq_len */
    int queue;           /* requests waiting for a slot, at most; past it submit says MTP_BUSY */
    int chunk;           /* prompt tokens per pass */
    mtp_serve_spec spec; /* AUTO: greedy requests draft only as deep as pays (docs/serve.md);
                            sampled ones decode plainly */
} mtp_engine_opts;

/* 4 slots, the model's context, a queue of 64, chunks of 256, AUTO (NONE without future heads). */
void mtp_engine_opts_default(mtp_engine_opts *o);

typedef enum { MTP_END_DONE, MTP_END_CANCELLED, MTP_END_ERROR } mtp_end;

/* Called on the engine's thread, never with the engine's lock held: first with each batch
 * of new tokens (n >= 1, res NULL), returning 0 to go on or k in 1..n to end the request
 * after k of them (as mtp_gen_cb); then exactly once with n == 0 and the result (res:
 * tokens, passes, acceptance, ends; msg: why, for MTP_END_ERROR). After that last call the
 * engine no longer touches ctx. */
typedef int (*mtp_engine_cb)(void *ctx, const mtp_token *tokens, int n, const mtp_gen_result *res, mtp_end end,
                             const char *msg);

typedef struct {
    const mtp_token *prompt; /* copied at submit */
    int len;
    mtp_gen_opts opts;       /* sampling, max_tokens, seed, eos; spec, draft and tree: the engine's */
    mtp_engine_cb cb;
    void *ctx;
} mtp_request;

typedef struct {
    int64_t requests, done, cancelled, failed, refused_busy;
    int64_t prompt_tokens, tokens;  /* of ended requests */
    int64_t forwards;               /* their passes (sum over requests) */
    int64_t drafted[MTP_MAX_FUTURE], accepted[MTP_MAX_FUTURE]; /* [d], 1-based depth */
    int64_t steps, occupancy;       /* engine passes; active requests summed over them */
    int queued, active, slots;      /* now */
    double busy_s;                  /* time spent in passes */
} mtp_engine_stats;

typedef struct mtp_engine mtp_engine;

#define MTP_BUSY (-2) /* mtp_engine_submit: the queue is full, or the engine is draining */

/* Starts the engine's thread on m (which must outlive the engine); -1 on bad options or
 * memory the KV pool cannot have. */
int mtp_engine_new(mtp_engine **e, const mtp_model *m, const mtp_engine_opts *o, mtp_err *err);
/* Queues a request: 0 and *id, -1 with err naming what is wrong with it (the prompt, a
 * sampling option, max_tokens past the context), or MTP_BUSY. On anything but 0 the
 * callback is never called. */
int mtp_engine_submit(mtp_engine *e, const mtp_request *r, uint64_t *id, mtp_err *err);
/* Ends request id at the next pass (its last callback says MTP_END_CANCELLED); an id that
 * has ended already is ignored. */
void mtp_engine_cancel(mtp_engine *e, uint64_t id);
void mtp_engine_get_stats(mtp_engine *e, mtp_engine_stats *st);
/* Refuses new requests (MTP_BUSY), lets those in flight run up to `seconds`, cancels the
 * rest and stops the thread. Returns the number cancelled. */
int mtp_engine_drain(mtp_engine *e, double seconds);
void mtp_engine_free(mtp_engine *e); /* drains at once if not drained; NULL is fine */

/* ---- tokenizers (docs/tokenizers.md) --------------------------------------------------- */

typedef enum { MTP_TOK_SENTENCEPIECE, MTP_TOK_BYTE_BPE } mtp_tokenizer_kind;

/* A tokenizer from a file's bytes, told apart by content: a SentencePiece model
 * (tokenizer.model, a protobuf; BPE or unigram) or a Hugging Face tokenizer.json (BPE with
 * a ByteLevel pre-tokenizer). `what` names the source in messages. */
int mtp_tokenizer_from_bytes(mtp_tokenizer **t, const void *data, size_t n, const char *what,
                             mtp_err *err);
int mtp_tokenizer_load(mtp_tokenizer **t, const char *path, mtp_err *err);
/* The tokenizer a model file carries, read without its weights (an error if it has none). */
int mtp_tokenizer_from_model_file(mtp_tokenizer **t, const char *path, mtp_err *err);
void mtp_tokenizer_free(mtp_tokenizer *t); /* NULL is fine */
mtp_tokenizer_kind mtp_tokenizer_kind_of(const mtp_tokenizer *t);
int mtp_tokenizer_vocab_size(const mtp_tokenizer *t); /* every id is < this */
int64_t mtp_tokenizer_bos(const mtp_tokenizer *t);    /* -1: none */
int64_t mtp_tokenizer_eos(const mtp_tokenizer *t);    /* -1: none */
/* Whether a text given to the model starts with BOS (SentencePiece: Llama's convention,
 * yes when there is a BOS piece; tokenizer.json: its post-processor's template). */
int mtp_tokenizer_adds_bos(const mtp_tokenizer *t);

/* Encodes n bytes of text (not NUL-terminated) into *ids (malloc'd, *n_ids entries; free
 * with free()), with no BOS or EOS added: the ids the reference implementation gives
 * (SentencePiece's EncodeAsIds; tokenizers' encode with add_special_tokens false, added
 * tokens matched in the text as it matches them). */
int mtp_tokenize(const mtp_tokenizer *t, const char *text, size_t n, mtp_token **ids,
                 size_t *n_ids, mtp_err *err);
/* The piece of id as the tokenizer stores it ("\u2581the", "<0x0A>", "\u0120the"), or NULL
 * for an id out of range. */
const char *mtp_tokenizer_piece(const mtp_tokenizer *t, mtp_token id);
/* Decodes ids to text as the reference's decode does with special tokens skipped:
 * *text malloc'd, NUL-terminated, *len bytes. An id out of range is an error. */
int mtp_detokenize(const mtp_tokenizer *t, const mtp_token *ids, size_t n, char **text,
                   size_t *len, mtp_err *err);

/* Streaming decode, for text printed as tokens arrive: each push returns the text that has
 * become final (whole UTF-8 characters; bytes of a character still incomplete are held
 * back), finish returns the rest. The pieces concatenated equal mtp_detokenize of all ids
 * pushed. continuation != 0: the ids continue a text (a prompt's), so a leading space that
 * decoding drops at a text's start is kept. The returned text lives until the next call. */
typedef struct mtp_detok mtp_detok;
mtp_detok *mtp_detok_new(const mtp_tokenizer *t, int continuation);
int mtp_detok_push(mtp_detok *d, const mtp_token *ids, size_t n, const char **text,
                   size_t *len, mtp_err *err);
void mtp_detok_finish(mtp_detok *d, const char **text, size_t *len);
void mtp_detok_free(mtp_detok *d); /* NULL is fine */

/* ---- JSON output ------------------------------------------------------------------------
 * The one writer of the JSON mtp emits (metrics.jsonl, --json lines, reports), on cJSON
 * values: a number that is not finite becomes null, since JSON has no NaN or infinity. */
struct cJSON;
struct cJSON *mtp_json_number(double v); /* a number item, or null when not finite */
void mtp_json_add_number(struct cJSON *obj, const char *name, double v);
/* obj[name] = [v[0], .., v[n-1]], each as mtp_json_number */
void mtp_json_add_numbers(struct cJSON *obj, const char *name, const double *v, int n);
void mtp_json_add_floats(struct cJSON *obj, const char *name, const float *v, int n);
void mtp_json_add_ints(struct cJSON *obj, const char *name, const int *v, int n);
/* j as one line of text without a newline, malloc'd (free it with free()) */
char *mtp_json_text(const struct cJSON *j);
/* writes j as one line plus '\n' and flushes; -1 if the write failed */
int mtp_json_write_line(FILE *f, const struct cJSON *j);

/* ---- data ------------------------------------------------------------------------------ */

typedef struct {
    size_t files, skipped, train_tokens, val_tokens;
    size_t text_bytes; /* read (files and their separators) */
} mtp_prepare_stats;

typedef struct {
    double val_fraction;             /* share of files held out, in [0, 0.5] */
    size_t max_bytes;                /* stop adding files past this much text; 0: no cap */
    const mtp_tokenizer *tokenizer;  /* NULL: byte-level (vocab 256) */
    /* called as files are encoded (from one thread at a time); may be NULL */
    void (*progress)(size_t files_done, size_t files, size_t bytes_done, size_t bytes, void *ctx);
    void *ctx;
} mtp_prepare_opts;

/* Text/code files or directory trees -> token shards out_dir/train.bin and out_dir/val.bin
 * (docs/formats.md: uint16 ids when the vocabulary allows, else uint32), split by file (a
 * hash of the path). Each file is one document: its bytes and a newline (byte-level), or
 * BOS (when the tokenizer's model expects it), its ids, and EOS (when it has one). Files
 * are encoded in parallel; the shards do not depend on the thread count. Files that look
 * binary and hidden entries are skipped; directories are walked in sorted order, each
 * directory once (symbolic links that lead back are not followed twice). */
int mtp_prepare(const char *const *inputs, int n_inputs, const char *out_dir, const mtp_prepare_opts *o,
                mtp_prepare_stats *stats, mtp_err *err);

#endif
