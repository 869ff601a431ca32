/* serve_req.c: OpenAI-style request bodies -> completion_req (serve.h). Unknown fields
 * are ignored; a known field of the wrong type or out of range is refused with a message
 * naming it. The chat template for base models lives here (docs/serve.md). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "args.h"
#include "serve.h"

static int bad(char *msg, size_t size, const char **param, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int bad(char *msg, size_t size, const char **param, const char *field, const char *fmt, ...) {
    int n = snprintf(msg, size, "%s: ", field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, size - n, fmt, ap);
    va_end(ap);
    *param = field;
    return 400;
}

int serve_tokenize(const server *sv, const char *s, size_t n, mtp_token **ids, int *len, char *msg, size_t size) {
    if (!sv->text) {
        snprintf(msg, size, "this model carries no tokenizer and is not byte-level: give token ids");
        return -1;
    }
    if (n > (size_t)1 << 28) {
        snprintf(msg, size, "the text is too long");
        return -1;
    }
    if (!sv->tok) {
        *ids = cli_realloc(NULL, (n ? n : 1) * sizeof(mtp_token));
        for (size_t i = 0; i < n; i++) (*ids)[i] = (unsigned char)s[i];
        *len = (int)n;
        return 0;
    }
    mtp_token *t;
    size_t k;
    mtp_err err;
    if (mtp_tokenize(sv->tok, s, n, &t, &k, &err)) {
        snprintf(msg, size, "%s", err.msg);
        return -1;
    }
    int bos = mtp_tokenizer_adds_bos(sv->tok) && mtp_tokenizer_bos(sv->tok) >= 0;
    *ids = cli_realloc(NULL, (k + bos + 1) * sizeof(mtp_token));
    if (bos) (*ids)[0] = (mtp_token)mtp_tokenizer_bos(sv->tok);
    memcpy(*ids + bos, t, k * sizeof(mtp_token));
    free(t);
    *len = (int)(k + bos);
    return 0;
}

static void add_str(char **out, size_t *len, size_t *cap, const char *s) {
    size_t k = strlen(s);
    if (*len + k + 1 > *cap) *out = cli_realloc(*out, *cap = 2 * (*len + k + 1));
    memcpy(*out + *len, s, k + 1);
    *len += k;
}

/* A message's content: a string, or an array of parts {"type": "text", "text": ...}. */
static int content_text(const cJSON *c, char **out, size_t *len, size_t *cap) {
    if (cJSON_IsString(c)) {
        add_str(out, len, cap, c->valuestring);
        return 0;
    }
    if (!cJSON_IsArray(c)) return -1;
    for (const cJSON *p = c->child; p; p = p->next) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(p, "text");
        if (!cJSON_IsString(t)) return -1;
        add_str(out, len, cap, t->valuestring);
    }
    return 0;
}

/* The template: a system message as it is, then "User: ...", "Assistant: ..." lines,
 * ending with "Assistant:" for the model to continue. */
int serve_chat_text(const cJSON *messages, char **text, char *msg, size_t size) {
    if (!cJSON_IsArray(messages) || cJSON_GetArraySize(messages) == 0) {
        snprintf(msg, size, "messages: expected a non-empty array of {role, content}");
        return -1;
    }
    size_t len = 0, cap = 256;
    char *out = cli_realloc(NULL, cap);
    out[0] = 0;
    int i = 0;
    for (const cJSON *m = messages->child; m; m = m->next, i++) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        const char *r = cJSON_IsString(role) ? role->valuestring : "";
        const char *prefix = !strcmp(r, "system") || !strcmp(r, "developer") ? ""
                             : !strcmp(r, "user")                            ? "User: "
                             : !strcmp(r, "assistant")                       ? "Assistant: "
                                                                             : NULL;
        if (!prefix) {
            snprintf(msg, size, "messages[%d].role: expected system, developer, user or assistant", i);
            free(out);
            return -1;
        }
        add_str(&out, &len, &cap, prefix);
        if (!content || cJSON_IsNull(content)) {
            if (strcmp(r, "assistant")) {
                snprintf(msg, size, "messages[%d].content: missing", i);
                free(out);
                return -1;
            }
        } else if (content_text(content, &out, &len, &cap)) {
            snprintf(msg, size, "messages[%d].content: expected a string or an array of text parts", i);
            free(out);
            return -1;
        }
        add_str(&out, &len, &cap, *prefix ? "\n" : "\n\n");
    }
    add_str(&out, &len, &cap, "Assistant:");
    *text = out;
    return 0;
}

/* An integer field in [lo, hi] (a JSON number with no fraction). */
static int get_int(const cJSON *body, const char *name, double lo, double hi, double *v, char *msg, size_t size,
                   const char **param) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(body, name);
    if (!f || cJSON_IsNull(f)) return 0;
    if (!cJSON_IsNumber(f) || f->valuedouble != floor(f->valuedouble))
        return bad(msg, size, param, name, "expected an integer");
    if (f->valuedouble < lo || f->valuedouble > hi)
        return bad(msg, size, param, name, "%.17g is out of range [%.17g, %.17g]", f->valuedouble, lo, hi);
    *v = f->valuedouble;
    return 0;
}

static int get_num(const cJSON *body, const char *name, double lo, double hi, int open_lo, double *v, char *msg,
                   size_t size, const char **param) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(body, name);
    if (!f || cJSON_IsNull(f)) return 0;
    if (!cJSON_IsNumber(f)) return bad(msg, size, param, name, "expected a number");
    if (!(open_lo ? f->valuedouble > lo : f->valuedouble >= lo) || f->valuedouble > hi)
        return bad(msg, size, param, name, "%g is out of range %s%g, %g]", f->valuedouble, open_lo ? "(" : "[", lo, hi);
    *v = f->valuedouble;
    return 0;
}

static int get_bool(const cJSON *body, const char *name, int *v, char *msg, size_t size, const char **param) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(body, name);
    if (!f || cJSON_IsNull(f)) return 0;
    if (!cJSON_IsBool(f)) return bad(msg, size, param, name, "expected true or false");
    *v = cJSON_IsTrue(f);
    return 0;
}

static int add_stop(completion_req *q, const cJSON *s, char *msg, size_t size, const char **param) {
    if (!cJSON_IsString(s)) return bad(msg, size, param, "stop", "expected a string or an array of strings");
    size_t n = strlen(s->valuestring);
    if (n == 0 || n > SERVE_MAX_STOP_LEN)
        return bad(msg, size, param, "stop", "each string has 1..%d bytes", SERVE_MAX_STOP_LEN);
    if (q->n_stop == SERVE_MAX_STOPS - 1) return bad(msg, size, param, "stop", "at most %d strings", SERVE_MAX_STOPS - 1);
    memcpy(q->stop[q->n_stop++], s->valuestring, n + 1);
    return 0;
}

/* prompt: a string, an array of token ids, or an array holding one string */
static int get_prompt(const server *sv, const cJSON *p, completion_req *q, char *msg, size_t size,
                      const char **param) {
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1 && cJSON_IsString(p->child)) p = p->child;
    if (cJSON_IsString(p)) {
        if (serve_tokenize(sv, p->valuestring, strlen(p->valuestring), &q->prompt, &q->len, msg + 8, size - 8)) {
            memcpy(msg, "prompt: ", 8);
            *param = "prompt";
            return 400;
        }
        return 0;
    }
    if (!cJSON_IsArray(p)) return bad(msg, size, param, "prompt", "expected a string or an array of token ids");
    int n = cJSON_GetArraySize(p), i = 0;
    q->prompt = cli_realloc(NULL, (n ? n : 1) * sizeof(mtp_token));
    for (const cJSON *t = p->child; t; t = t->next, i++) {
        if (!cJSON_IsNumber(t) || t->valuedouble != floor(t->valuedouble) || t->valuedouble < 0 ||
            t->valuedouble >= mtp_model_config(sv->m)->vocab_size)
            return bad(msg, size, param, "prompt", "entry %d: expected a token id in 0..%d", i,
                       mtp_model_config(sv->m)->vocab_size - 1);
        q->prompt[i] = (mtp_token)t->valuedouble;
    }
    q->len = n;
    return 0;
}

int serve_parse_completion(const server *sv, const cJSON *body, int chat, completion_req *q, char *msg,
                           size_t size, const char **param) {
    memset(q, 0, sizeof *q);
    q->chat = chat;
    *param = NULL;
    if (!cJSON_IsObject(body)) return bad(msg, size, param, "body", "expected a JSON object");
    int rc;
    if (chat) {
        char *text;
        if (serve_chat_text(cJSON_GetObjectItemCaseSensitive(body, "messages"), &text, msg, size)) {
            *param = "messages";
            return 400;
        }
        rc = serve_tokenize(sv, text, strlen(text), &q->prompt, &q->len, msg, size);
        free(text);
        if (rc) {
            *param = "messages";
            return 400;
        }
    } else {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(body, "prompt");
        if (!p) return bad(msg, size, param, "prompt", "missing");
        if ((rc = get_prompt(sv, p, q, msg, size, param))) return rc;
    }
    if (q->len == 0) return bad(msg, size, param, chat ? "messages" : "prompt", "empty");
    mtp_gen_opts_default(&q->opts);
    int room = sv->ctx - q->len;
    double max_tokens = chat ? (room < 256 ? room : 256) : 16, temp = 1, top_p = 1, top_k = 0, n = 1;
    static uint64_t calls; /* no seed given: the time and a count, so that two differ */
    uint64_t mix = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull + __atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED);
    double seed = (double)(mix >> 11);
    int ignore_eos = 0;
    if ((rc = get_int(body, "max_tokens", 0, 1 << 24, &max_tokens, msg, size, param)) ||
        (chat && (rc = get_int(body, "max_completion_tokens", 0, 1 << 24, &max_tokens, msg, size, param))) ||
        (rc = get_num(body, "temperature", 0, 2, 0, &temp, msg, size, param)) ||
        (rc = get_num(body, "top_p", 0, 1, 1, &top_p, msg, size, param)) ||
        (rc = get_int(body, "top_k", 0, 1 << 20, &top_k, msg, size, param)) ||
        (rc = get_int(body, "seed", 0, 9007199254740991.0, &seed, msg, size, param)) ||
        (rc = get_int(body, "n", 1, 1, &n, msg, size, param)) ||
        (rc = get_bool(body, "stream", &q->stream, msg, size, param)) ||
        (rc = get_bool(body, "ignore_eos", &ignore_eos, msg, size, param)))
        return rc;
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(body, "stream_options");
    if (so && !cJSON_IsNull(so)) {
        if (!cJSON_IsObject(so)) return bad(msg, size, param, "stream_options", "expected an object");
        if ((rc = get_bool(so, "include_usage", &q->include_usage, msg, size, param))) return rc;
    }
    const cJSON *stop = cJSON_GetObjectItemCaseSensitive(body, "stop");
    if (stop && !cJSON_IsNull(stop)) {
        if (cJSON_IsArray(stop)) {
            for (const cJSON *s = stop->child; s; s = s->next)
                if ((rc = add_stop(q, s, msg, size, param))) return rc;
        } else if ((rc = add_stop(q, stop, msg, size, param))) {
            return rc;
        }
    }
    if (chat) strcpy(q->stop[q->n_stop++], "\nUser:"); /* the next turn */
    if (q->n_stop && !sv->text) return bad(msg, size, param, "stop", "this model speaks token ids only");
    q->opts.max_tokens = (int)max_tokens;
    q->opts.sampling.temp = (float)temp;
    q->opts.sampling.top_p = (float)top_p;
    q->opts.sampling.top_k = (int)top_k;
    q->opts.seed = (uint64_t)seed;
    q->opts.eos = sv->tok && !ignore_eos ? mtp_tokenizer_eos(sv->tok) : -1;
    return 0;
}

void serve_completion_free(completion_req *q) {
    free(q->prompt);
    q->prompt = NULL;
}
