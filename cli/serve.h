/* serve.h: the parts of `mtp serve` (docs/serve.md): the HTTP front (serve_http.c, on
 * libmicrohttpd), the parsing of OpenAI-style requests (serve_req.c) and a request in
 * flight (serve_job.c: text, stop strings, chunks, the answer) and the metrics (serve_metrics.c), over the library's engine
 * (mtp.h). */
#ifndef MTP_CLI_SERVE_H
#define MTP_CLI_SERVE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "mtp.h"

#define SERVE_MAX_STOPS 5   /* OpenAI's limit of 4, and the chat template's own */
#define SERVE_MAX_STOP_LEN 256

/* What the server was started with. */
typedef struct {
    mtp_model *m;
    const mtp_tokenizer *tok; /* NULL: a byte-level model (a token is a byte) or ids only */
    int text;                 /* the model speaks text (a tokenizer, or bytes) */
    mtp_engine *engine;
    const char *api_key;      /* NULL: none asked */
    const char *model_name;   /* what /v1/models lists */
    int ctx;                  /* positions per request */
    size_t max_body;          /* bytes of a request body */
    int64_t created;          /* start time, for /v1/models */
    int64_t http_requests[6]; /* by status class: [2] 2xx, [4] 4xx, [5] 5xx (under mu) */
    int answering;            /* completions whose response is not sent yet (under mu) */
    pthread_mutex_t mu;
} server;

/* A completion request, parsed (serve_req.c). */
typedef struct {
    int chat;
    mtp_token *prompt; /* malloc'd */
    int len;
    mtp_gen_opts opts;
    char stop[SERVE_MAX_STOPS][SERVE_MAX_STOP_LEN + 1];
    int n_stop;
    int stream, include_usage;
} completion_req;

/* Parses a completions or chat body into *q (status 0), or returns the HTTP status of
 * the refusal (400) with a one-line message naming the field and its OpenAI `param`. */
int serve_parse_completion(const server *sv, const cJSON *body, int chat, completion_req *q, char *msg,
                           size_t msg_size, const char **param);
void serve_completion_free(completion_req *q);
/* The chat template (docs/serve.md) applied to messages: the text to continue. */
int serve_chat_text(const cJSON *messages, char **text, char *msg, size_t msg_size);
/* Text -> ids as mtp generate makes them (BOS when the tokenizer expects it; bytes). */
int serve_tokenize(const server *sv, const char *s, size_t n, mtp_token **ids, int *len, char *msg, size_t msg_size);

/* A request in flight: filled by the engine's thread, read by the connection's. */
typedef struct job job;
job *job_new(const server *sv, const completion_req *q, const char *id);
/* Submits to the engine: 0, or the HTTP status of the refusal (400, 503) with msg. */
int job_submit(job *j, server *sv, const completion_req *q, char *msg, size_t msg_size);
/* Waits up to `ms` for output or the end: copies up to max bytes of what is ready (the
 * SSE chunks when streaming); returns the bytes copied, 0 when nothing yet, -1 at the end
 * of everything. */
long job_read(job *j, char *buf, size_t max, int ms);
/* Waits for the end (non-streaming); returns the answer's JSON text (malloc'd) and sets
 * *status. fd: the client's socket, watched for a hang-up (which cancels). */
char *job_wait_answer(job *j, int fd, int *status);
void job_cancel(job *j);
int job_client_gone(int fd); /* the client's socket reads as closed */
void job_release(job *j); /* the HTTP side is done with it */

/* GET /metrics: Prometheus text (malloc'd). */
char *serve_metrics_text(server *sv);

/* OpenAI's error object as JSON text (malloc'd). */
char *serve_error_json(const char *message, const char *type, const char *param, const char *code);

/* Starts the HTTP daemon on host:port (0: any free one; *bound gets it). */
struct MHD_Daemon;
int serve_http_start(server *sv, const char *host, int port, int conn_limit, struct MHD_Daemon **d, int *bound,
                     char *msg, size_t msg_size);
void serve_http_quiesce(struct MHD_Daemon *d);
/* Stops the daemon once the answers under way are sent (at most `seconds`). */
void serve_http_stop(server *sv, struct MHD_Daemon *d, double seconds);

#endif
