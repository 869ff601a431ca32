/* tok_ids.c: a test helper for the tokenizers, through the public API only.
 *   tok_ids TOKENIZER --info        {"vocab_size":..,"bos":..,"eos":..,"adds_bos":..}
 *   tok_ids TOKENIZER --encode      each stdin line a JSON string; prints its ids, a JSON array
 *   tok_ids TOKENIZER --encode-raw  all of stdin one text (any bytes); prints its ids
 *   tok_ids TOKENIZER --encode-hex  each stdin line a text's bytes in hex (any bytes); prints its ids
 *   tok_ids TOKENIZER --decode      each stdin line a JSON array of ids; prints the text, a JSON string
 *   tok_ids TOKENIZER --bench       all of stdin one text, encoded line by line: prints MB/s
 * Exit status 1, with the library's one-line message, when the tokenizer does not load. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mtp.h"

static char *read_all(FILE *f, size_t *n) {
    size_t cap = 1 << 16, k = 0;
    char *s = malloc(cap);
    size_t r;
    while (s && (r = fread(s + k, 1, cap - k, f)) > 0)
        if ((k += r) == cap) s = realloc(s, cap *= 2);
    if (!s) exit(2);
    *n = k;
    return s;
}

static void print_ids(const mtp_token *ids, size_t n) {
    putchar('[');
    for (size_t i = 0; i < n; i++) printf(i ? ",%u" : "%u", (unsigned)ids[i]);
    puts("]");
}

static int encode(const mtp_tokenizer *t, const char *s, size_t n) {
    mtp_token *ids;
    size_t n_ids;
    mtp_err err;
    if (mtp_tokenize(t, s, n, &ids, &n_ids, &err)) {
        printf("{\"error\":\"%s\"}\n", err.msg);
        return 1;
    }
    print_ids(ids, n_ids);
    free(ids);
    return 0;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: tok_ids TOKENIZER --info|--encode|--encode-raw|--decode|--bench\n");
        return 2;
    }
    mtp_tokenizer *t;
    mtp_err err;
    if (mtp_tokenizer_load(&t, argv[1], &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const char *mode = argv[2];
    int rc = 0;
    if (strcmp(mode, "--info") == 0) {
        printf("{\"vocab_size\":%d,\"bos\":%lld,\"eos\":%lld,\"adds_bos\":%d}\n", mtp_tokenizer_vocab_size(t),
               (long long)mtp_tokenizer_bos(t), (long long)mtp_tokenizer_eos(t), mtp_tokenizer_adds_bos(t));
    } else if (strcmp(mode, "--encode-raw") == 0 || strcmp(mode, "--bench") == 0) {
        size_t n;
        char *s = read_all(stdin, &n);
        if (mode[2] == 'e') {
            rc = encode(t, s, n);
        } else { /* line by line, as a data loader feeds documents */
            size_t tokens = 0;
            double t0 = now();
            for (size_t i = 0; i < n;) {
                const char *nl = memchr(s + i, '\n', n - i);
                size_t len = nl ? (size_t)(nl - (s + i)) + 1 : n - i;
                mtp_token *ids;
                size_t n_ids;
                if (mtp_tokenize(t, s + i, len, &ids, &n_ids, &err)) return 1;
                tokens += n_ids;
                free(ids);
                i += len;
            }
            double dt = now() - t0;
            printf("{\"bytes\":%zu,\"tokens\":%zu,\"seconds\":%.4f,\"mb_per_s\":%.2f}\n", n, tokens, dt,
                   (double)n / 1e6 / dt);
        }
        free(s);
    } else {
        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        int decode = strcmp(mode, "--decode") == 0, hex = strcmp(mode, "--encode-hex") == 0;
        while ((len = getline(&line, &cap, stdin)) > 0) {
            if (hex) {
                size_t k = 0;
                for (ssize_t i = 0; i + 1 < len && line[i] != '\n'; i += 2) {
                    unsigned b;
                    if (sscanf(line + i, "%2x", &b) != 1) return 2;
                    line[k++] = (char)b;
                }
                rc |= encode(t, line, k);
                continue;
            }
            cJSON *j = cJSON_Parse(line);
            if (!decode && cJSON_IsString(j)) {
                rc |= encode(t, j->valuestring, strlen(j->valuestring));
            } else if (decode && cJSON_IsArray(j)) {
                size_t n = (size_t)cJSON_GetArraySize(j), k = 0;
                mtp_token *ids = malloc((n + 1) * sizeof *ids);
                for (cJSON *e = j->child; e; e = e->next) ids[k++] = (mtp_token)e->valuedouble;
                char *text;
                size_t tlen;
                if (mtp_detokenize(t, ids, n, &text, &tlen, &err)) {
                    printf("{\"error\":\"%s\"}\n", err.msg);
                    rc = 1;
                } else {
                    cJSON *str = cJSON_CreateString(text);
                    char *out = cJSON_PrintUnformatted(str);
                    puts(out);
                    free(out);
                    cJSON_Delete(str);
                    free(text);
                }
                free(ids);
            } else {
                fprintf(stderr, "tok_ids: a line is not a JSON %s\n", decode ? "array" : "string");
                rc = 2;
            }
            cJSON_Delete(j);
        }
        free(line);
    }
    mtp_tokenizer_free(t);
    return rc;
}
