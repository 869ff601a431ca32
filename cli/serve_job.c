/* serve_job.c: a completion in flight (serve.h). The engine's thread appends its tokens'
 * text, cuts it at stop strings (ending the request inside an accepted path, as mtp
 * generate does) and, when streaming, formats OpenAI's chunks; the connection's thread
 * reads them, or waits for the whole answer. Two references (the HTTP side's and the
 * engine's) keep it alive; the last one frees it. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "args.h"
#include "serve.h"
#include "text_out.h"

struct job {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    server *sv;
    char id[48];
    int64_t created;
    int chat, stream, include_usage, prompt_len;
    uint64_t engine_id;
    int submitted, ended, cancelled;
    const char *stop[SERVE_MAX_STOPS];
    char stop_buf[SERVE_MAX_STOPS][SERVE_MAX_STOP_LEN + 1];
    int n_stop;
    size_t hold;            /* bytes that might begin a stop string: not sent until settled */
    cli_text t;             /* the continuation so far (a byte-level model: detok NULL) */
    size_t shown;           /* bytes of it already sent in chunks */
    char *out;              /* streaming: SSE bytes ready */
    size_t out_len, out_cap, out_sent;
    mtp_end end;
    char msg[256];
    mtp_gen_result res;     /* the end's copy (tokens owned) */
};

static void grow(char **buf, size_t *cap, size_t need) {
    if (need > *cap) *buf = cli_realloc(*buf, *cap = 2 * need);
}

job *job_new(const server *sv, const completion_req *q, const char *id) {
    job *j = cli_realloc(NULL, sizeof *j);
    memset(j, 0, sizeof *j);
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->refs = 1;
    j->sv = (server *)sv;
    snprintf(j->id, sizeof j->id, "%s", id);
    j->created = (int64_t)time(NULL);
    j->chat = q->chat;
    j->stream = q->stream;
    j->include_usage = q->include_usage;
    j->prompt_len = q->len;
    for (int k = 0; k < q->n_stop; k++) {
        strcpy(j->stop_buf[k], q->stop[k]);
        j->stop[k] = j->stop_buf[k];
        size_t l = strlen(q->stop[k]);
        if (l - 1 > j->hold) j->hold = l - 1;
    }
    j->n_stop = q->n_stop;
    if (sv->tok) j->t.detok = mtp_detok_new(sv->tok, 1);
    return j;
}

static void unref(job *j) {
    pthread_mutex_lock(&j->mu);
    int left = --j->refs;
    pthread_mutex_unlock(&j->mu);
    if (left) return;
    cli_text_free(&j->t);
    mtp_gen_result_free(&j->res);
    free(j->out);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

void job_release(job *j) { unref(j); }

static const char *finish_reason(const job *j) {
    return j->t.stopped || j->res.hit_eos ? "stop" : "length";
}

static cJSON *usage_json(const job *j) {
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", j->prompt_len);
    cJSON_AddNumberToObject(u, "completion_tokens", j->res.n);
    cJSON_AddNumberToObject(u, "total_tokens", j->prompt_len + j->res.n);
    return u;
}

static cJSON *envelope(const job *j, const char *object) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "object", object);
    cJSON_AddNumberToObject(o, "created", (double)j->created);
    cJSON_AddStringToObject(o, "model", j->sv->model_name);
    return o;
}

static void sse(job *j, cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    size_t n = strlen(s);
    grow(&j->out, &j->out_cap, j->out_len + n + 9);
    j->out_len += (size_t)sprintf(j->out + j->out_len, "data: %s\n\n", s);
    free(s);
    cJSON_Delete(o);
}

/* A chunk with text piece (NULL: none) and a finish reason (NULL: not yet). */
static void chunk(job *j, const char *piece, const char *finish, int first) {
    cJSON *o = envelope(j, j->chat ? "chat.completion.chunk" : "text_completion");
    cJSON *ch = cJSON_AddArrayToObject(o, "choices"), *c = cJSON_CreateObject();
    cJSON_AddItemToArray(ch, c);
    cJSON_AddNumberToObject(c, "index", 0);
    if (j->chat) {
        cJSON *d = cJSON_AddObjectToObject(c, "delta");
        if (first) cJSON_AddStringToObject(d, "role", "assistant");
        if (piece) cJSON_AddStringToObject(d, "content", piece);
    } else {
        cJSON_AddStringToObject(c, "text", piece ? piece : "");
        cJSON_AddNullToObject(c, "logprobs");
    }
    if (finish) cJSON_AddStringToObject(c, "finish_reason", finish);
    else cJSON_AddNullToObject(c, "finish_reason");
    sse(j, o);
}

/* Streams the text that is settled: all of it at the end, else all but what might begin
 * a stop string or ends inside a character. */
static void flush_text(job *j, int all) {
    size_t upto = all || j->t.stopped ? j->t.len : j->t.len > j->hold ? j->t.len - j->hold : 0;
    if (!all) upto = cli_utf8_complete(j->t.text, upto);
    if (upto <= j->shown) return;
    char *s = cli_utf8_clean((const unsigned char *)j->t.text + j->shown, upto - j->shown);
    chunk(j, s, NULL, 0);
    free(s);
    j->shown = upto;
}

static int on_tokens(job *j, const mtp_token *tok, int n) {
    if (!j->t.detok && !j->sv->text) return 0; /* ids only */
    for (int i = 0; i < n; i++)
        if (cli_text_add(&j->t, tok[i], j->stop, j->n_stop)) {
            if (j->stream) flush_text(j, 1);
            return i + 1;
        }
    if (j->stream) flush_text(j, 0);
    return 0;
}

static void on_end(job *j, const mtp_gen_result *res, mtp_end end, const char *msg) {
    j->end = end;
    j->res = *res;
    j->res.tokens = cli_realloc(NULL, (res->n ? res->n : 1) * sizeof(mtp_token));
    if (res->n) memcpy(j->res.tokens, res->tokens, res->n * sizeof(mtp_token)); /* a request cancelled in the queue has none */
    if (msg) snprintf(j->msg, sizeof j->msg, "%s", msg);
    cli_text_finish(&j->t, j->stop, j->n_stop);
    if (!j->stream) return;
    if (end == MTP_END_ERROR) {
        char *e = serve_error_json(j->msg, "server_error", NULL, NULL);
        grow(&j->out, &j->out_cap, j->out_len + strlen(e) + 9);
        j->out_len += (size_t)sprintf(j->out + j->out_len, "data: %s\n\n", e);
        free(e);
    } else {
        flush_text(j, 1);
        chunk(j, NULL, finish_reason(j), 0);
        if (j->include_usage) {
            cJSON *o = envelope(j, j->chat ? "chat.completion.chunk" : "text_completion");
            cJSON_AddArrayToObject(o, "choices");
            cJSON_AddItemToObject(o, "usage", usage_json(j));
            sse(j, o);
        }
    }
    grow(&j->out, &j->out_cap, j->out_len + 16);
    j->out_len += (size_t)sprintf(j->out + j->out_len, "data: [DONE]\n\n");
}

static int on_engine(void *ctx, const mtp_token *tok, int n, const mtp_gen_result *res, mtp_end end,
                     const char *msg) {
    job *j = ctx;
    pthread_mutex_lock(&j->mu);
    int keep = 0;
    if (n > 0) {
        keep = on_tokens(j, tok, n);
    } else {
        on_end(j, res, end, msg);
        j->ended = 1;
    }
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    if (n == 0) unref(j); /* the engine's reference */
    return keep;
}

int job_submit(job *j, server *sv, const completion_req *q, char *msg, size_t size) {
    mtp_request r = {.prompt = q->prompt, .len = q->len, .opts = q->opts, .cb = on_engine, .ctx = j};
    if (j->stream && j->chat) chunk(j, "", NULL, 1); /* the role first, as OpenAI sends it */
    pthread_mutex_lock(&j->mu);
    j->refs++;
    pthread_mutex_unlock(&j->mu);
    mtp_err err;
    uint64_t id;
    int rc = mtp_engine_submit(sv->engine, &r, &id, &err);
    if (rc) {
        pthread_mutex_lock(&j->mu);
        j->refs--;
        pthread_mutex_unlock(&j->mu);
        snprintf(msg, size, "%s", err.msg);
        return rc == MTP_BUSY ? 503 : 400;
    }
    pthread_mutex_lock(&j->mu);
    j->engine_id = id;
    j->submitted = 1;
    pthread_mutex_unlock(&j->mu);
    return 0;
}

void job_cancel(job *j) {
    pthread_mutex_lock(&j->mu);
    int live = j->submitted && !j->ended && !j->cancelled;
    j->cancelled = 1;
    uint64_t id = j->engine_id;
    pthread_mutex_unlock(&j->mu);
    if (live) mtp_engine_cancel(j->sv->engine, id);
}

static void wait_ms(job *j, int ms) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_nsec += (long)ms * 1000000L;
    t.tv_sec += t.tv_nsec / 1000000000L;
    t.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&j->cv, &j->mu, &t);
}

long job_read(job *j, char *buf, size_t max, int ms) {
    pthread_mutex_lock(&j->mu);
    if (j->out_sent == j->out_len && !j->ended) wait_ms(j, ms);
    long n = 0;
    if (j->out_sent < j->out_len) {
        n = (long)(j->out_len - j->out_sent < max ? j->out_len - j->out_sent : max);
        memcpy(buf, j->out + j->out_sent, (size_t)n);
        j->out_sent += (size_t)n;
    } else if (j->ended) {
        n = -1;
    }
    pthread_mutex_unlock(&j->mu);
    return n;
}

int job_client_gone(int fd) {
    if (fd < 0) return 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0) return 0;
    if (p.revents & (POLLHUP | POLLERR)) return 1;
    char c;
    return (p.revents & POLLIN) && recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

static char *answer(job *j) {
    cJSON *o = envelope(j, j->chat ? "chat.completion" : "text_completion");
    cJSON *ch = cJSON_AddArrayToObject(o, "choices"), *c = cJSON_CreateObject();
    cJSON_AddItemToArray(ch, c);
    cJSON_AddNumberToObject(c, "index", 0);
    char *text = cli_utf8_clean((const unsigned char *)(j->t.text ? j->t.text : ""), j->t.len);
    if (j->chat) {
        cJSON *m = cJSON_AddObjectToObject(c, "message");
        cJSON_AddStringToObject(m, "role", "assistant");
        cJSON_AddStringToObject(m, "content", text);
    } else {
        cJSON_AddStringToObject(c, "text", text);
        cJSON_AddNullToObject(c, "logprobs");
    }
    free(text);
    cJSON_AddStringToObject(c, "finish_reason", finish_reason(j));
    cJSON_AddItemToObject(o, "usage", usage_json(j));
    cJSON *x = cJSON_AddObjectToObject(o, "mtp"); /* ours: the ids, and how decoding went */
    cJSON *t = cJSON_AddArrayToObject(x, "tokens");
    for (int k = 0; k < j->res.n; k++) cJSON_AddItemToArray(t, cJSON_CreateNumber(j->res.tokens[k]));
    cJSON_AddNumberToObject(x, "passes", (double)j->res.forwards);
    cJSON_AddStringToObject(x, "finish", j->t.stopped ? "stop" : j->res.hit_eos ? "eos"
                                         : j->res.hit_max_seq_len ? "max_seq_len" : "length");
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

char *job_wait_answer(job *j, int fd, int *status) {
    pthread_mutex_lock(&j->mu);
    while (!j->ended) {
        wait_ms(j, 100);
        if (!j->ended && !j->cancelled && job_client_gone(fd)) {
            pthread_mutex_unlock(&j->mu);
            job_cancel(j);
            pthread_mutex_lock(&j->mu);
        }
    }
    char *s = NULL;
    *status = 0;
    if (j->end == MTP_END_DONE) {
        s = answer(j);
        *status = 200;
    } else if (j->end == MTP_END_ERROR) {
        s = serve_error_json(j->msg, "server_error", NULL, NULL);
        *status = 500;
    }
    pthread_mutex_unlock(&j->mu);
    return s;
}

