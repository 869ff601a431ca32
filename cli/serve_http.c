/* serve_http.c: the HTTP front of mtp serve on libmicrohttpd (a thread per connection):
 * bodies read up to a limit, the API key checked in constant time, the routes, OpenAI's
 * error object on every refusal, server-sent events for streams. A connection's thread may wait for its request; a client
 * that hangs up cancels it (serve_job.c watches the socket). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "args.h"
#include "serve.h"
#include "text_out.h"

enum { MAX_JSON_DEPTH = 32, DROP_LIMIT = 64 };

typedef struct {
    char *body;
    size_t len, cap;
    int too_big;
    int counted; /* a completion: in sv->answering until its response is sent */
} conn_state;

typedef struct {
    job *j;
    int fd;
} stream;

char *serve_error_json(const char *message, const char *type, const char *param, const char *code) {
    cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "message", message);
    cJSON_AddStringToObject(e, "type", type);
    if (param) cJSON_AddStringToObject(e, "param", param);
    else cJSON_AddNullToObject(e, "param");
    if (code) cJSON_AddStringToObject(e, "code", code);
    else cJSON_AddNullToObject(e, "code");
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static enum MHD_Result send_text(server *sv, struct MHD_Connection *c, int status, char *text, const char *type) {
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result rc = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    pthread_mutex_lock(&sv->mu);
    sv->http_requests[status / 100 < 6 ? status / 100 : 5]++;
    pthread_mutex_unlock(&sv->mu);
    return rc;
}

static enum MHD_Result send_json(server *sv, struct MHD_Connection *c, int status, char *json) {
    return send_text(sv, c, status, json, "application/json");
}

static enum MHD_Result send_error(server *sv, struct MHD_Connection *c, int status, const char *msg,
                                  const char *param) {
    const char *type = status == 401 ? "authentication_error" : status >= 500 ? "server_error" : "invalid_request_error";
    const char *code = status == 401   ? "invalid_api_key"
                       : status == 404 ? "not_found"
                       : status == 405 ? "method_not_allowed"
                       : status == 413 ? "request_too_large"
                       : status == 503 ? "server_busy"
                       : strstr(msg, "exceed the context") ? "context_length_exceeded"
                                                           : "invalid_value";
    return send_json(sv, c, status, serve_error_json(msg, type, param, code));
}

/* Constant-time: every byte of the longer of the two is looked at, whatever matches. */
static int key_ok(const server *sv, struct MHD_Connection *c) {
    if (!sv->api_key) return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7)) return 0;
    h += 7;
    size_t a = strlen(h), b = strlen(sv->api_key), n = a > b ? a : b;
    unsigned diff = (unsigned)(a != b);
    for (size_t i = 0; i < n; i++) diff |= (unsigned char)(i < a ? h[i] : 0) ^ (unsigned char)(i < b ? sv->api_key[i] : 0);
    return diff == 0;
}

/* Nesting of arrays and objects, outside strings: refused past MAX_JSON_DEPTH before parsing. */
static int too_deep(const char *s, size_t n) {
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (in_str) {
            if (ch == '\\') i++;
            else if (ch == '"') in_str = 0;
        } else if (ch == '"') {
            in_str = 1;
        } else if (ch == '[' || ch == '{') {
            if (++depth > MAX_JSON_DEPTH) return 1;
        } else if (ch == ']' || ch == '}') {
            depth--;
        }
    }
    return 0;
}

static cJSON *parse_body(const conn_state *cs, char *msg, size_t size) {
    if (cs->len == 0) {
        snprintf(msg, size, "body: empty; expected a JSON object");
        return NULL;
    }
    if (too_deep(cs->body, cs->len)) {
        snprintf(msg, size, "body: JSON nested deeper than %d", MAX_JSON_DEPTH);
        return NULL;
    }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(cs->body, cs->len, &end, 0);
    if (!j) {
        snprintf(msg, size, "body: invalid JSON at byte %ld", end ? (long)(end - cs->body) : 0L);
        return NULL;
    }
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        snprintf(msg, size, "body: expected a JSON object");
        return NULL;
    }
    return j;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    stream *s = cls;
    for (;;) {
        long n = job_read(s->j, buf, max, 100);
        if (n > 0) return n;
        if (n < 0) return MHD_CONTENT_READER_END_OF_STREAM;
        if (job_client_gone(s->fd)) {
            job_cancel(s->j);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
}

static void stream_free(void *cls) {
    stream *s = cls;
    job_cancel(s->j); /* a no-op when it has ended */
    job_release(s->j);
    free(s);
}

static int client_fd(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

static enum MHD_Result completion(server *sv, struct MHD_Connection *c, const cJSON *body, int chat) {
    static uint64_t counter; /* ids only: a race makes two alike, nothing worse */
    char msg[600];
    const char *param;
    completion_req q;
    int rc = serve_parse_completion(sv, body, chat, &q, msg, sizeof msg, &param);
    if (rc) {
        serve_completion_free(&q);
        return send_error(sv, c, rc, msg, param);
    }
    char id[48];
    snprintf(id, sizeof id, "%s-%llx%04llx", chat ? "chatcmpl" : "cmpl", (unsigned long long)sv->created,
             (unsigned long long)__atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED));
    job *j = job_new(sv, &q, id);
    rc = job_submit(j, sv, &q, msg, sizeof msg);
    int streaming = q.stream;
    serve_completion_free(&q);
    if (rc) {
        job_release(j);
        return send_error(sv, c, rc, msg, rc == 400 ? (strstr(msg, "max_tokens") ? "max_tokens" : "prompt") : NULL);
    }
    if (streaming) {
        stream *s = cli_realloc(NULL, sizeof *s);
        s->j = j;
        s->fd = client_fd(c);
        struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 8192, stream_read, s, stream_free);
        MHD_add_response_header(r, "Content-Type", "text/event-stream");
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        enum MHD_Result ok = MHD_queue_response(c, MHD_HTTP_OK, r);
        MHD_destroy_response(r);
        pthread_mutex_lock(&sv->mu);
        sv->http_requests[2]++;
        pthread_mutex_unlock(&sv->mu);
        return ok;
    }
    int status;
    char *answer = job_wait_answer(j, client_fd(c), &status);
    job_release(j);
    if (!answer) return MHD_NO; /* the client left: close */
    return send_json(sv, c, status, answer);
}

static enum MHD_Result tokenize(server *sv, struct MHD_Connection *c, const cJSON *body) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(body, "content");
    if (!t) t = cJSON_GetObjectItemCaseSensitive(body, "prompt");
    if (!cJSON_IsString(t)) return send_error(sv, c, 400, "content: expected a string", "content");
    char msg[600];
    mtp_token *ids;
    int n;
    if (serve_tokenize(sv, t->valuestring, strlen(t->valuestring), &ids, &n, msg, sizeof msg))
        return send_error(sv, c, 400, msg, "content");
    cJSON *o = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(o, "tokens");
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
    free(ids);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return send_json(sv, c, 200, s);
}

static enum MHD_Result detokenize(server *sv, struct MHD_Connection *c, const cJSON *body) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(body, "tokens");
    int V = mtp_model_config(sv->m)->vocab_size;
    if (!cJSON_IsArray(t)) return send_error(sv, c, 400, "tokens: expected an array of token ids", "tokens");
    if (!sv->text) return send_error(sv, c, 400, "tokens: this model carries no tokenizer", "tokens");
    int n = cJSON_GetArraySize(t), i = 0;
    mtp_token *ids = cli_realloc(NULL, (n ? n : 1) * sizeof(mtp_token));
    for (const cJSON *x = t->child; x; x = x->next, i++)
        if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble >= V || x->valuedouble != (int)x->valuedouble) {
            free(ids);
            char msg[120];
            snprintf(msg, sizeof msg, "tokens: entry %d: expected a token id in 0..%d", i, V - 1);
            return send_error(sv, c, 400, msg, "tokens");
        } else {
            ids[i] = (mtp_token)x->valuedouble;
        }
    char *text;
    size_t len;
    if (sv->tok) {
        mtp_err err;
        if (mtp_detokenize(sv->tok, ids, (size_t)n, &text, &len, &err)) {
            free(ids);
            return send_error(sv, c, 400, err.msg, "tokens");
        }
    } else {
        text = cli_realloc(NULL, (size_t)n + 1);
        for (int k = 0; k < n; k++) text[k] = (char)ids[k];
        len = (size_t)n;
    }
    free(ids);
    char *clean = cli_utf8_clean((const unsigned char *)text, len);
    free(text);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "content", clean);
    free(clean);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return send_json(sv, c, 200, s);
}

static enum MHD_Result models(server *sv, struct MHD_Connection *c) {
    cJSON *o = cJSON_CreateObject(), *d = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "data"), d);
    cJSON_AddStringToObject(d, "id", sv->model_name);
    cJSON_AddStringToObject(d, "object", "model");
    cJSON_AddNumberToObject(d, "created", (double)sv->created);
    cJSON_AddStringToObject(d, "owned_by", "mtp");
    cJSON_AddNumberToObject(d, "context_length", sv->ctx);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return send_json(sv, c, 200, s);
}

static void in_flight(server *sv, int d) {
    pthread_mutex_lock(&sv->mu);
    sv->answering += d;
    pthread_mutex_unlock(&sv->mu);
}

static enum MHD_Result route(server *sv, struct MHD_Connection *c, const char *url, const char *method,
                             conn_state *cs) {
    int get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    if (!strcmp(url, "/health")) return get ? send_json(sv, c, 200, strdup("{\"status\":\"ok\"}")) : send_error(sv, c, 405, "use GET", NULL);
    if (!strcmp(url, "/metrics"))
        return get ? send_text(sv, c, 200, serve_metrics_text(sv), "text/plain; version=0.0.4") : send_error(sv, c, 405, "use GET", NULL);
    int known = !strcmp(url, "/v1/models") || !strcmp(url, "/v1/completions") || !strcmp(url, "/v1/chat/completions") ||
                !strcmp(url, "/tokenize") || !strcmp(url, "/detokenize");
    if (!known) {
        char msg[300];
        snprintf(msg, sizeof msg, "no route %.200s", url);
        return send_error(sv, c, 404, msg, NULL);
    }
    if (!key_ok(sv, c)) return send_error(sv, c, 401, "missing or wrong API key (Authorization: Bearer KEY)", NULL);
    if (!strcmp(url, "/v1/models")) return get ? models(sv, c) : send_error(sv, c, 405, "use GET", NULL);
    if (!post) return send_error(sv, c, 405, "use POST", NULL);
    if (cs->too_big) {
        char msg[100];
        snprintf(msg, sizeof msg, "body: larger than %zu bytes", sv->max_body);
        return send_error(sv, c, 413, msg, NULL);
    }
    char msg[300];
    cJSON *body = parse_body(cs, msg, sizeof msg);
    if (!body) return send_error(sv, c, 400, msg, NULL);
    enum MHD_Result rc;
    if (!strcmp(url, "/tokenize")) {
        rc = tokenize(sv, c, body);
    } else if (!strcmp(url, "/detokenize")) {
        rc = detokenize(sv, c, body);
    } else { /* its answer may still be on its way when the engine is done: shutdown waits for it */
        cs->counted = 1;
        in_flight(sv, 1);
        rc = completion(sv, c, body, !strcmp(url, "/v1/chat/completions"));
    }
    cJSON_Delete(body);
    return rc;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    server *sv = cls;
    conn_state *cs = *con_cls;
    if (!cs) { /* the headers. A body past the limit is read and dropped, then refused (a
                * client still writing would otherwise see the connection closed, not the
                * 413); one past DROP_LIMIT times it is refused at once. */
        cs = cli_realloc(NULL, sizeof *cs);
        memset(cs, 0, sizeof *cs);
        *con_cls = cs;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) / DROP_LIMIT > sv->max_body) {
            char msg[100];
            snprintf(msg, sizeof msg, "body: larger than %zu bytes", sv->max_body);
            return send_error(sv, c, 413, msg, NULL);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (cs->len + *upload_size > sv->max_body) {
            cs->too_big = 1;
        } else {
            if (cs->len + *upload_size + 1 > cs->cap) cs->body = cli_realloc(cs->body, cs->cap = 2 * (cs->len + *upload_size + 1));
            memcpy(cs->body + cs->len, upload, *upload_size);
            cs->len += *upload_size;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    return route(sv, c, url, method, cs);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode why) {
    conn_state *cs = *con_cls;
    if (!cs) return;
    if (cs->counted) in_flight(cls, -1);
    free(cs->body);
    free(cs);
    *con_cls = NULL;
}

int serve_http_start(server *sv, const char *host, int port, int conn_limit, struct MHD_Daemon **d, int *bound,
                     char *msg, size_t size) {
    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    memset(&a4, 0, sizeof a4);
    memset(&a6, 0, sizeof a6);
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC;
    const struct sockaddr *addr;
    if (inet_pton(AF_INET, host, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        a4.sin_port = htons((uint16_t)port);
        addr = (const struct sockaddr *)&a4;
    } else if (inet_pton(AF_INET6, host, &a6.sin6_addr) == 1) {
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons((uint16_t)port);
        addr = (const struct sockaddr *)&a6;
        flags |= MHD_USE_IPv6;
    } else {
        snprintf(msg, size, "--host: '%s' is not an IPv4 or IPv6 address", host);
        return -1;
    }
    *d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, handler, sv, MHD_OPTION_SOCK_ADDR, addr,
                          MHD_OPTION_CONNECTION_LIMIT, (unsigned)conn_limit, MHD_OPTION_CONNECTION_TIMEOUT,
                          (unsigned)15, MHD_OPTION_NOTIFY_COMPLETED, completed, sv, MHD_OPTION_END);
    if (!*d) {
        snprintf(msg, size, "cannot listen on %s:%d (in use, or not this machine's address?)", host, port);
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(*d, MHD_DAEMON_INFO_BIND_PORT);
    *bound = info ? info->port : port;
    return 0;
}

void serve_http_quiesce(struct MHD_Daemon *d) {
    MHD_socket s = MHD_quiesce_daemon(d);
    if (s != MHD_INVALID_SOCKET) close(s);
}

void serve_http_stop(server *sv, struct MHD_Daemon *d, double seconds) {
    for (double waited = 0; waited < seconds; waited += 0.01) { /* answers of ended requests on their way out */
        pthread_mutex_lock(&sv->mu);
        int n = sv->answering;
        pthread_mutex_unlock(&sv->mu);
        if (n == 0) break;
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    }
    MHD_stop_daemon(d);
}
